//! The receive side of audio: packets from the network go into the jitter
//! buffer; the speaker pulls 48 kHz mono PCM, which is decoded on demand
//! (Opus, with FEC rebuilding and concealment where the buffer says so).
//! Pulling, not pushing, keeps the speaker's clock in charge: the buffer
//! absorbs the difference between it and the sender's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::audio::{rms, OpusDecoder, FRAME_SAMPLES};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};

/// Anything a speaker can pull 48 kHz mono samples from.
pub trait PcmSource: Send {
    /// Fills `out` completely (silence when there is nothing to play).
    fn fill(&mut self, out: &mut [i16]);
}

/// A [`PcmSource`] shared between whoever feeds it and the speaker thread.
pub type SharedSource = Arc<Mutex<dyn PcmSource>>;

/// What was played, for a quality indicator and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayoutStats {
    pub jitter: JitterStats,
    pub decoded: u64,
    pub concealed: u64,
    pub recovered: u64,
    pub decode_errors: u64,
    /// RMS level of the last frame played (0..32767), for a level meter.
    pub level: f64,
}

/// Jitter buffer plus decoder: push packets in, pull PCM out.
pub struct AudioPlayout {
    jitter: JitterBuffer,
    decoder: OpusDecoder,
    pcm: VecDeque<i16>,
    stats: PlayoutStats,
    /// RTP timestamp of a frame and when it reaches the speaker.
    playing: Option<(u32, Instant)>,
}

impl AudioPlayout {
    pub fn new() -> Result<Self, crate::AudioError> {
        Ok(AudioPlayout {
            jitter: JitterBuffer::new(JitterConfig::default()),
            decoder: OpusDecoder::new()?,
            pcm: VecDeque::with_capacity(2 * FRAME_SAMPLES),
            stats: PlayoutStats::default(),
            playing: None,
        })
    }

    /// A shared playout, ready for a speaker and a network task.
    pub fn shared() -> Result<Arc<Mutex<AudioPlayout>>, crate::AudioError> {
        Ok(Arc::new(Mutex::new(Self::new()?)))
    }

    /// A packet from the network (RTP sequence number and timestamp).
    pub fn push(&mut self, seq: u16, rtp_ts: u32, payload: Vec<u8>, arrival: Instant) {
        self.jitter.push(seq, rtp_ts, payload, arrival);
    }

    pub fn stats(&self) -> PlayoutStats {
        PlayoutStats { jitter: self.jitter.stats(), ..self.stats.clone() }
    }

    /// Which audio (RTP timestamp) reaches the speaker when, as of the
    /// last pull: what lip sync aligns video to.
    pub fn playing(&self) -> Option<(u32, Instant)> {
        self.playing
    }

    /// The next 20 ms, decoded.
    fn next_frame(&mut self) -> Vec<i16> {
        let decoded = match self.jitter.pop() {
            Playout::Packet(p) => self.decoder.decode(Some(&p)).map(|f| (f, &mut self.stats.decoded)),
            Playout::Recover(next) => self.decoder.recover(&next).map(|f| (f, &mut self.stats.recovered)),
            Playout::Conceal => self.decoder.decode(None).map(|f| (f, &mut self.stats.concealed)),
            Playout::Silence => Ok((vec![0; FRAME_SAMPLES], &mut 0)),
        };
        let mut frame = match decoded {
            Ok((frame, counter)) => {
                *counter += 1;
                frame
            }
            Err(e) => {
                // A corrupt packet costs its 20 ms, not the call.
                tracing::debug!(error = %e, "opus decode failed");
                self.stats.decode_errors += 1;
                vec![0; FRAME_SAMPLES]
            }
        };
        frame.resize(FRAME_SAMPLES, 0);
        self.stats.level = rms(&frame);
        frame
    }
}

impl PcmSource for AudioPlayout {
    fn fill(&mut self, out: &mut [i16]) {
        while self.pcm.len() < out.len() {
            let frame = self.next_frame();
            if let Some(rtp) = self.jitter.played_rtp() {
                // It plays after what is already queued.
                let ahead = std::time::Duration::from_secs_f64(self.pcm.len() as f64 / crate::SAMPLE_RATE as f64);
                self.playing = Some((rtp, Instant::now() + ahead));
            }
            self.pcm.extend(frame);
        }
        let n = out.len();
        for (o, s) in out.iter_mut().zip(self.pcm.drain(..n)) {
            *o = s;
        }
    }
}

/// Stands in for a speaker where there is none (a headless peer, a
/// machine without a sound card): pulls 20 ms every 20 ms on a thread of
/// its own, so the jitter buffer, concealment and lip sync run as they do
/// with a device. Dropping it stops the thread.
pub struct ClockSpeaker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClockSpeaker {
    pub fn start(source: SharedSource) -> ClockSpeaker {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let halt = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("clock-speaker".into())
            .spawn(move || {
                let mut pcm = vec![0i16; FRAME_SAMPLES];
                let period = std::time::Duration::from_millis(20);
                let mut next = Instant::now();
                while !halt.load(Ordering::Relaxed) {
                    if let Ok(mut s) = source.lock() {
                        s.fill(&mut pcm);
                    }
                    next += period;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
            .ok();
        ClockSpeaker { stop, thread }
    }
}

impl Drop for ClockSpeaker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OpusEncoder, ToneSource};
    use std::time::Duration;

    #[test]
    fn packets_come_out_as_continuous_audio_with_a_lost_one_rebuilt() {
        let (mut tone, mut enc) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap());
        let mut p = AudioPlayout::new().unwrap();
        let t0 = Instant::now();
        let mut out = vec![0i16; 480]; // 10 ms pulls, as a speaker does
        let mut levels = vec![];
        for i in 0..100u16 {
            let packet = enc.encode(&tone.next_frame()).unwrap();
            if i != 60 {
                p.push(i, i as u32 * 960, packet, t0 + Duration::from_millis(20 * i as u64));
            }
            for _ in 0..2 {
                p.fill(&mut out);
                levels.push(rms(&out));
            }
        }
        let s = p.stats();
        assert_eq!(s.recovered, 1, "{s:?}");
        assert!(s.decoded >= 97, "{s:?}");
        // Once started, no silent gap: the lost frame was rebuilt (FEC
        // carries it at a lower quality, so its level dips, ~400-700 here,
        // but never to silence).
        let started = levels.iter().position(|l| *l > 1000.0).unwrap();
        assert!(levels[started..].iter().all(|l| *l > 200.0), "a gap in {levels:?}");
    }

    #[test]
    fn garbage_packets_cost_their_frame_only() {
        let mut p = AudioPlayout::new().unwrap();
        let t0 = Instant::now();
        let (mut tone, mut enc) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap());
        for i in 0..20u16 {
            let packet = if i == 10 { vec![0xff; 3] } else { enc.encode(&tone.next_frame()).unwrap() };
            p.push(i, i as u32 * 960, packet, t0);
        }
        let mut out = vec![0i16; FRAME_SAMPLES * 20];
        p.fill(&mut out);
        let s = p.stats();
        assert!(s.decoded >= 18, "{s:?}");
    }
}
