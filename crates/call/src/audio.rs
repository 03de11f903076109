//! The call's audio path on the RTP side: Opus packets in from the app and
//! out to the peer, and the peer's packets (one Opus packet per RTP packet)
//! back to the app with their sequence numbers, so it can conceal or
//! rebuild (FEC) what was lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media_path::{self, MediaSender, RemoteClock, Target};

/// One Opus packet (20 ms).
#[derive(Debug, Clone)]
pub struct AudioPacket {
    pub data: Bytes,
    /// RTP sequence number on receipt (a gap means loss); 0 when sending.
    pub seq: u16,
    /// RTP timestamp on receipt (48 kHz; for the jitter buffer and lip
    /// sync); 0 when sending.
    pub rtp_ts: u32,
    /// When it arrived; when it was made, when sending.
    pub arrival: Instant,
}

impl AudioPacket {
    /// A packet to send.
    pub fn outgoing(data: impl Into<Bytes>) -> Self {
        AudioPacket { data: data.into(), seq: 0, rtp_ts: 0, arrival: Instant::now() }
    }
}

/// Packets the app may queue toward the peer (200 ms) before new ones drop.
pub const SEND_QUEUE: usize = 10;
/// Received packets held for the app (1 s) before new ones drop.
pub const RECEIVE_QUEUE: usize = 50;

/// The app's handle for sending audio. Never blocks.
pub type AudioSender = MediaSender<AudioPacket>;

/// An Opus track for one session, with a fresh SSRC.
pub(crate) fn local_track() -> Result<(Arc<TrackLocalStaticSample>, u32), String> {
    let codec = RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        ..Default::default()
    };
    media_path::local_track(RtpCodecKind::Audio, codec, "ringlet-audio", "microphone")
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
pub(crate) fn spawn_reader(track: Arc<dyn TrackRemote>, out: mpsc::Sender<AudioPacket>, clock: Arc<RemoteClock>) {
    tokio::spawn(async move {
        while let Some(e) = track.poll().await {
            match e {
                TrackRemoteEvent::OnRtpPacket(p) => {
                    let packet = AudioPacket {
                        data: p.payload.clone(),
                        seq: p.header.sequence_number,
                        rtp_ts: p.header.timestamp,
                        arrival: Instant::now(),
                    };
                    let _ = out.try_send(packet);
                }
                TrackRemoteEvent::OnRtcpPacket(packets) => clock.observe(RtpCodecKind::Audio, &packets),
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
    });
}
