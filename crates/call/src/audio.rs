//! The call's audio path on the RTP side: Opus packets in from the app and
//! out to the peer, and the peer's packets (one Opus packet per RTP packet)
//! back to the app with their sequence numbers, so it can conceal or
//! rebuild (FEC) what was lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::video::Target;

/// One Opus packet (20 ms).
#[derive(Debug, Clone)]
pub struct AudioPacket {
    pub data: Bytes,
    /// RTP sequence number on receipt (a gap means loss); 0 when sending.
    pub seq: u16,
}

/// Packets the app may queue toward the peer (200 ms) before new ones drop.
pub const SEND_QUEUE: usize = 10;
/// Received packets held for the app (1 s) before new ones drop.
pub const RECEIVE_QUEUE: usize = 50;

/// The app's handle for sending audio. Never blocks.
#[derive(Clone)]
pub struct AudioSender {
    tx: mpsc::Sender<AudioPacket>,
    dropped: Arc<AtomicU64>,
}

impl AudioSender {
    pub(crate) fn channel() -> (Self, mpsc::Receiver<AudioPacket>) {
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        (AudioSender { tx, dropped: Arc::default() }, rx)
    }

    /// Queues a packet; `false` if the queue was full and it was dropped.
    pub fn send(&self, packet: AudioPacket) -> bool {
        let ok = self.tx.try_send(packet).is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// An Opus track for one session, with a fresh SSRC.
pub(crate) fn local_track() -> Result<(Arc<TrackLocalStaticSample>, u32), String> {
    let ssrc = rand::random::<u32>();
    let codec = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        ..Default::default()
    };
    let track = MediaStreamTrack::new(
        "ringlet".to_owned(),
        "ringlet-audio".to_owned(),
        "microphone".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        }],
    );
    let track = TrackLocalStaticSample::new(Instant::now(), track).map_err(|e| format!("audio track: {e}"))?;
    Ok((Arc::new(track), ssrc))
}

/// Writes the app's packets to the current session's audio track.
pub(crate) fn spawn_writer(mut packets: mpsc::Receiver<AudioPacket>, target: watch::Receiver<Option<Target>>) {
    tokio::spawn(async move {
        while let Some(p) = packets.recv().await {
            let Some(t) = target.borrow().clone() else { continue };
            let sample = Sample { data: p.data, duration: Duration::from_millis(20), ..Sample::new(Instant::now()) };
            if let Err(e) = t.track.write_sample(t.ssrc, t.payload_type, &sample, &[]).await {
                tracing::debug!(error = %e, "audio write failed");
            }
        }
    });
}

/// Hands the peer's Opus packets to the app.
pub(crate) fn spawn_reader(track: Arc<dyn TrackRemote>, out: mpsc::Sender<AudioPacket>) {
    tokio::spawn(async move {
        while let Some(e) = track.poll().await {
            match e {
                TrackRemoteEvent::OnRtpPacket(p) => {
                    let packet = AudioPacket { data: p.payload.clone(), seq: p.header.sequence_number };
                    let _ = out.try_send(packet);
                }
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
    });
}
