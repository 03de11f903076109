//! Lip sync, sans-IO: audio and video travel as separate RTP streams with
//! unrelated timestamps; RTCP sender reports tie each stream's RTP clock to
//! the sender's wall clock (NTP). Knowing which audio is playing now, a
//! video frame is shown when the audio of the same sender instant plays.
//!
//! Audio leads: its playout is continuous and a listener notices gaps more
//! than a late picture, so video waits for audio (never the reverse), up to
//! a bound past which waiting would look frozen.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ringlet_media::sync::{AvSync, ntp_from_secs};
//!
//! let mut sync = AvSync::default();
//! // Both streams' reports: RTP 0 of each is sender time 100 s.
//! sync.audio_sender_report(ntp_from_secs(100.0), 0);
//! sync.video_sender_report(ntp_from_secs(100.0), 0);
//! let now = Instant::now();
//! // The audio of sender time 100.0 s is playing now...
//! sync.audio_playing(0, now);
//! // ...so a frame of sender time 100.1 s (9000 ticks at 90 kHz) waits 100 ms.
//! assert_eq!(sync.video_render_at(9_000, now), now + Duration::from_millis(100));
//! ```

use std::time::{Duration, Instant};

/// Converts seconds to the 64-bit NTP format RTCP carries (32.32 fixed point).
pub fn ntp_from_secs(secs: f64) -> u64 {
    (secs * 4_294_967_296.0) as u64
}

fn secs_from_ntp(ntp: u64) -> f64 {
    ntp as f64 / 4_294_967_296.0
}

/// One stream's RTP clock against the sender's wall clock.
#[derive(Debug, Clone)]
pub struct RtpClock {
    rate: f64,
    /// The latest report: (RTP timestamp, sender seconds).
    anchor: Option<(u32, f64)>,
}

impl RtpClock {
    pub fn new(rate: u32) -> Self {
        RtpClock { rate: rate as f64, anchor: None }
    }

    pub fn sender_report(&mut self, ntp: u64, rtp: u32) {
        self.anchor = Some((rtp, secs_from_ntp(ntp)));
    }

    /// The sender's wall-clock time of `rtp`, in seconds, once a report came.
    pub fn sender_time(&self, rtp: u32) -> Option<f64> {
        let (anchor_rtp, anchor_secs) = self.anchor?;
        // Signed distance, so timestamps either side of the report and
        // across a 32-bit wrap map correctly.
        let ticks = rtp.wrapping_sub(anchor_rtp) as i32 as f64;
        Some(anchor_secs + ticks / self.rate)
    }
}

/// Decides when each video frame is shown so it matches the audio.
#[derive(Debug, Clone)]
pub struct AvSync {
    audio: RtpClock,
    video: RtpClock,
    /// Sender time of the audio playing at a local instant.
    playing: Option<(f64, Instant)>,
    /// The longest a frame is held for sync.
    pub max_video_delay: Duration,
    /// The last frame's audio-minus-video lag, in ms: positive when video
    /// had to wait, negative when it came later than its audio.
    last_offset_ms: Option<f64>,
}

impl Default for AvSync {
    fn default() -> Self {
        AvSync {
            audio: RtpClock::new(48_000),
            video: RtpClock::new(90_000),
            playing: None,
            max_video_delay: Duration::from_millis(500),
            last_offset_ms: None,
        }
    }
}

impl AvSync {
    pub fn audio_sender_report(&mut self, ntp: u64, rtp: u32) {
        self.audio.sender_report(ntp, rtp);
    }

    pub fn video_sender_report(&mut self, ntp: u64, rtp: u32) {
        self.video.sender_report(ntp, rtp);
    }

    /// The audio with RTP timestamp `rtp` starts playing at `at`.
    pub fn audio_playing(&mut self, rtp: u32, at: Instant) {
        if let Some(t) = self.audio.sender_time(rtp) {
            self.playing = Some((t, at));
        }
    }

    /// When to show a video frame with RTP timestamp `rtp` that is ready at
    /// `now`: at once without the reports and playout it takes, or when it
    /// is already late; otherwise when its audio plays, at most
    /// `max_video_delay` away.
    pub fn video_render_at(&mut self, rtp: u32, now: Instant) -> Instant {
        let (Some(video_t), Some((audio_t, at))) = (self.video.sender_time(rtp), self.playing) else {
            return now;
        };
        // The local instant the audio of `video_t` plays, extrapolated from
        // the last audio observation.
        let offset = video_t - audio_t;
        let due = if offset >= 0.0 {
            at.checked_add(Duration::from_secs_f64(offset))
        } else {
            at.checked_sub(Duration::from_secs_f64(-offset))
        }
        .unwrap_or(now);
        let wait = due.saturating_duration_since(now);
        self.last_offset_ms = Some(if due >= now {
            wait.as_secs_f64() * 1e3
        } else {
            -(now.duration_since(due).as_secs_f64() * 1e3)
        });
        if wait > self.max_video_delay {
            // Out of reach (clocks disagree, or audio stalled): don't freeze.
            return now;
        }
        now + wait
    }

    /// The last frame's lag behind (negative) or wait for (positive) its
    /// audio, in ms, for stats.
    pub fn offset_ms(&self) -> Option<f64> {
        self.last_offset_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rtp_clock_maps_both_sides_of_a_report_and_across_a_wrap() {
        let mut c = RtpClock::new(90_000);
        assert_eq!(c.sender_time(0), None);
        c.sender_report(ntp_from_secs(1000.0), u32::MAX - 44_999);
        assert!((c.sender_time(45_000).unwrap() - 1001.0).abs() < 1e-6, "forward across the wrap");
        assert!((c.sender_time(u32::MAX - 134_999).unwrap() - 999.0).abs() < 1e-6, "before the report");
    }

    #[test]
    fn video_waits_for_its_audio_and_never_for_long() {
        let mut s = AvSync::default();
        let now = Instant::now();
        assert_eq!(s.video_render_at(0, now), now, "no reports yet: show at once");
        s.audio_sender_report(ntp_from_secs(50.0), 48_000); // audio RTP 48000 = 50 s
        s.video_sender_report(ntp_from_secs(50.0), 0); // video RTP 0 = 50 s
        assert_eq!(s.video_render_at(0, now), now, "no audio playing yet");
        // The audio of 50.5 s plays at `now`.
        s.audio_playing(72_000, now);
        // Video of 50.6 s waits 100 ms; video of 50.3 s is late: at once.
        assert_eq!(s.video_render_at(54_000, now), now + Duration::from_millis(100));
        assert!((s.offset_ms().unwrap() - 100.0).abs() < 0.01);
        assert_eq!(s.video_render_at(27_000, now), now);
        assert!((s.offset_ms().unwrap() + 200.0).abs() < 0.01);
        // Ten seconds ahead: clocks disagree; don't hold the frame.
        assert_eq!(s.video_render_at(90_000 * 10, now), now);
    }
}
