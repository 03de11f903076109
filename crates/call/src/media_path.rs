//! What the audio and video paths share: the app's non-blocking sender, a
//! local track with a fresh SSRC, and where the current session wants
//! samples written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;

/// The app's handle for sending encoded media toward the peer: a bounded
/// queue that never blocks; a full queue drops the new item and counts it.
pub struct MediaSender<T> {
    tx: mpsc::Sender<T>,
    dropped: Arc<AtomicU64>,
}

impl<T> Clone for MediaSender<T> {
    fn clone(&self) -> Self {
        MediaSender { tx: self.tx.clone(), dropped: Arc::clone(&self.dropped) }
    }
}

impl<T> MediaSender<T> {
    pub(crate) fn channel(capacity: usize) -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(capacity);
        (MediaSender { tx, dropped: Arc::default() }, rx)
    }

    /// Queues an item; `false` if the queue was full and it was dropped
    /// (for video: ask the encoder for a keyframe next).
    pub fn send(&self, item: T) -> bool {
        let ok = self.tx.try_send(item).is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Items dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Where the current session wants samples of one kind written.
#[derive(Clone)]
pub(crate) struct Target {
    pub track: Arc<TrackLocalStaticSample>,
    pub ssrc: u32,
    pub payload_type: u8,
}

/// A local track of `kind` with a fresh SSRC.
pub(crate) fn local_track(
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    track_id: &str,
    label: &str,
) -> Result<(Arc<TrackLocalStaticSample>, u32), String> {
    let ssrc = rand::random::<u32>();
    let track = MediaStreamTrack::new(
        "ringlet".to_owned(),
        track_id.to_owned(),
        label.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    let track = TrackLocalStaticSample::new(Instant::now(), track).map_err(|e| format!("{label} track: {e}"))?;
    Ok((Arc::new(track), ssrc))
}

/// The latest RTCP sender report of one remote stream: which RTP timestamp
/// was the sender's wall-clock time `ntp` (64-bit NTP format). Lip sync
/// maps each stream's timestamps to that common clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    pub ntp: u64,
    pub rtp: u32,
}

/// The peer's latest sender reports, audio and video; readable any time.
#[derive(Debug, Default)]
pub struct RemoteClock {
    audio: Mutex<Option<SenderReport>>,
    video: Mutex<Option<SenderReport>>,
}

impl RemoteClock {
    pub fn audio(&self) -> Option<SenderReport> {
        *self.audio.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn video(&self) -> Option<SenderReport> {
        *self.video.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, kind: RtpCodecKind, report: SenderReport) {
        let slot = if kind == RtpCodecKind::Audio { &self.audio } else { &self.video };
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// Records every sender report in `packets` (what a remote track's
    /// reader gets for RTCP marked for the application).
    pub(crate) fn observe(&self, kind: RtpCodecKind, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        for p in packets {
            if let Some(sr) = p.as_any().downcast_ref::<rtc::rtcp::sender_report::SenderReport>() {
                self.set(kind, SenderReport { ntp: sr.ntp_time, rtp: sr.rtp_time });
            }
        }
    }
}
