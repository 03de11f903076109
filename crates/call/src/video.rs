//! The call's video path on the RTP side: encoded VP8 frames in from the
//! app, out to the peer; the peer's RTP depacketized back into frames; and
//! keyframe requests (PLI) both ways. Encoding and decoding are the media
//! crate's business; this module moves encoded frames.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use rtc::sansio::Protocol;
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::media_path::{self, MediaSender, RemoteClock, Target};

/// One encoded VP8 frame.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub data: Bytes,
    pub keyframe: bool,
    /// RTP timestamp on receipt (90 kHz; for lip sync); 0 when sending.
    pub rtp_ts: u32,
}

impl VideoFrame {
    /// A frame to send.
    pub fn outgoing(data: impl Into<Bytes>, keyframe: bool) -> Self {
        VideoFrame { data: data.into(), keyframe, rtp_ts: 0 }
    }
}

/// Frames the app may queue toward the peer before the oldest is dropped
/// (a slow network must not grow memory; the encoder follows the
/// congestion controller's target anyway).
pub const SEND_QUEUE: usize = 8;
/// Received frames held for the app before the oldest is dropped.
pub const RECEIVE_QUEUE: usize = 30;

/// The app's handle for sending video. Never blocks.
pub type VideoSender = MediaSender<VideoFrame>;

/// A VP8 track for one session, with a fresh SSRC.
pub(crate) fn local_track() -> Result<(Arc<TrackLocalStaticSample>, u32), String> {
    let codec = RTCRtpCodec { mime_type: MIME_TYPE_VP8.to_owned(), clock_rate: 90_000, ..Default::default() };
    media_path::local_track(RtpCodecKind::Video, codec, "ringlet-video", "camera")
}

/// The engine-wide writer: takes the app's frames and writes them to
/// whichever session's track is current. Frames with no session are
/// dropped; after a session change the first frame written must be a
/// keyframe, so it waits for one (and asks for it).
pub(crate) fn spawn_writer(
    mut frames: mpsc::Receiver<VideoFrame>,
    mut target: watch::Receiver<Option<Target>>,
    keyframe_wanted: mpsc::UnboundedSender<()>,
) {
    tokio::spawn(async move {
        let mut need_key = true;
        while let Some(frame) = frames.recv().await {
            if target.has_changed().unwrap_or(false) {
                target.mark_unchanged();
                need_key = true;
            }
            let Some(t) = target.borrow().clone() else { continue };
            if need_key && !frame.keyframe {
                let _ = keyframe_wanted.send(());
                continue;
            }
            need_key = false;
            let sample = Sample {
                data: frame.data,
                duration: Duration::from_micros(33_333),
                ..Sample::new(Instant::now())
            };
            if let Err(e) = t.track.write_sample(t.ssrc, t.payload_type, &sample, &[]).await {
                tracing::debug!(error = %e, "video write failed");
            }
        }
    });
}

/// Watches a local track for the peer's keyframe requests.
pub(crate) fn spawn_feedback_reader(track: Arc<TrackLocalStaticSample>, keyframe_wanted: mpsc::UnboundedSender<()>) {
    tokio::spawn(async move {
        while let Some(e) = track.poll().await {
            if let TrackLocalEvent::OnRtcpPacket(packets) = e {
                if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                    tracing::debug!("keyframe requested by the peer");
                    let _ = keyframe_wanted.send(());
                }
            }
        }
    });
}

/// Reassembles VP8 frames from RTP as soon as their last packet (the one
/// with the marker bit) arrives. The library's `SampleBuilder` instead
/// waits for the *next* frame's first packet, holding every frame back one
/// frame interval (33 ms at 30 fps). A frame with a gap in its sequence
/// numbers, or whose end never came, is dropped and reported as a loss.
#[derive(Default)]
pub(crate) struct FrameAssembler {
    depacketizer: Vp8Packet,
    timestamp: Option<u32>,
    next_seq: Option<u16>,
    data: Vec<u8>,
    broken: bool,
}

/// What one packet completed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Assembled {
    Nothing,
    Frame(Bytes),
    /// A frame was lost (gap, missing start or end).
    Lost,
}

impl FrameAssembler {
    pub(crate) fn push(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &Bytes) -> Assembled {
        let mut lost = false;
        if self.timestamp != Some(timestamp) {
            // A new frame. The previous one never saw its marker: lost.
            if self.timestamp.is_some() && !self.data.is_empty() {
                lost = true;
            }
            self.timestamp = Some(timestamp);
            self.data.clear();
            self.broken = !self.depacketizer.is_partition_head(payload);
        } else if self.next_seq != Some(seq) {
            self.broken = true;
        }
        self.next_seq = Some(seq.wrapping_add(1));
        match self.depacketizer.depacketize(payload) {
            Ok(part) => self.data.extend_from_slice(&part),
            Err(_) => self.broken = true,
        }
        if marker {
            let frame = std::mem::take(&mut self.data);
            self.timestamp = None;
            if self.broken {
                return Assembled::Lost;
            }
            return Assembled::Frame(Bytes::from(frame));
        }
        if lost { Assembled::Lost } else { Assembled::Nothing }
    }
}

/// Depacketizes the peer's VP8 into frames for the app, asking for a
/// keyframe when the track opens and whenever frames were lost or dropped.
pub(crate) fn spawn_reader(
    track: Arc<dyn TrackRemote>,
    out: mpsc::Sender<VideoFrame>,
    clock: Arc<RemoteClock>,
    keyframe_wanted: Arc<tokio::sync::Notify>,
) {
    tokio::spawn(async move {
        let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
        let pli = |t: Arc<dyn TrackRemote>| async move {
            tracing::debug!(ssrc, "asking the peer for a keyframe (PLI)");
            if let Err(e) = t.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })]).await {
                tracing::debug!(error = %e, "PLI not sent");
            }
        };
        // The first frames may have been sent before we could decode them.
        pli(track.clone()).await;
        let mut assembler = FrameAssembler::default();
        let mut last_pli = Instant::now();
        let mut need_key = true;
        loop {
            let e = tokio::select! {
                e = track.poll() => e,
                // The app lost frames downstream (a slow view): ask anew.
                _ = keyframe_wanted.notified() => {
                    last_pli = Instant::now();
                    pli(track.clone()).await;
                    continue;
                }
            };
            let Some(e) = e else { break };
            match e {
                TrackRemoteEvent::OnRtpPacket(p) => {
                    let h = &p.header;
                    let trouble = match assembler.push(h.sequence_number, h.timestamp, h.marker, &p.payload) {
                        Assembled::Nothing => false,
                        Assembled::Lost => {
                            need_key = true;
                            true
                        }
                        Assembled::Frame(data) => {
                            // VP8 payload header: bit 0 of the first byte is 0 on a keyframe.
                            let keyframe = data.first().is_some_and(|b| b & 1 == 0);
                            if need_key && !keyframe {
                                true // undecodable until a keyframe comes
                            } else {
                                need_key = false;
                                let full = out.try_send(VideoFrame { data, keyframe, rtp_ts: h.timestamp }).is_err();
                                need_key |= full;
                                full
                            }
                        }
                    };
                    if trouble && last_pli.elapsed() > Duration::from_millis(300) {
                        last_pli = Instant::now();
                        pli(track.clone()).await;
                    }
                }
                TrackRemoteEvent::OnRtcpPacket(packets) => clock.observe(RtpCodecKind::Video, &packets),
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
    });
}

fn is_keyframe_request(p: &dyn rtc::rtcp::Packet) -> bool {
    p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
}

/// RTCP the application acts on: keyframe requests (PLI, FIR) for the
/// encoder, sender reports for lip sync.
fn for_the_app(p: &dyn rtc::rtcp::Packet) -> bool {
    is_keyframe_request(p) || p.as_any().is::<rtc::rtcp::sender_report::SenderReport>()
}

/// An interceptor that hands inbound keyframe requests (PLI, FIR) and
/// sender reports to the application: by default inbound RTCP ends inside
/// the interceptor chain.
#[derive(Default)]
pub(crate) struct AppRtcp {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for AppRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        // Everything passes on unchanged (later interceptors need their
        // reports); a compound packet with a PLI, FIR or SR is also marked
        // for the application.
        if let Packet::Rtcp(packets) = &msg.message.packet {
            if packets.iter().any(|p| for_the_app(p.as_ref())) {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for AppRtcp {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 RTP payload: a one-byte descriptor (S bit on the first packet
    /// of a frame) and the data (the depacketizer wants 4 bytes at least).
    fn payload(start: bool, data: &[u8]) -> Bytes {
        let mut v = vec![if start { 0x10 } else { 0x00 }];
        v.extend_from_slice(data);
        Bytes::from(v)
    }

    #[test]
    fn a_frame_is_out_on_its_marker() {
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(1, 100, false, &payload(true, b"aaaa")), Assembled::Nothing);
        assert_eq!(a.push(2, 100, true, &payload(false, b"cccc")), Assembled::Frame(Bytes::from_static(b"aaaacccc")));
        assert_eq!(a.push(3, 200, true, &payload(true, b"eeee")), Assembled::Frame(Bytes::from_static(b"eeee")));
    }

    #[test]
    fn a_gap_loses_the_frame_and_the_next_one_is_fine() {
        let mut a = FrameAssembler::default();
        a.push(1, 100, false, &payload(true, b"aaaa"));
        assert_eq!(a.push(3, 100, true, &payload(false, b"eeee")), Assembled::Lost);
        assert_eq!(a.push(4, 200, true, &payload(true, b"gggg")), Assembled::Frame(Bytes::from_static(b"gggg")));
    }

    #[test]
    fn a_frame_without_its_start_or_end_is_lost() {
        let mut a = FrameAssembler::default();
        assert_eq!(a.push(5, 100, true, &payload(false, b"xxxx")), Assembled::Lost, "no start");
        a.push(6, 200, false, &payload(true, b"aaaa"));
        assert_eq!(a.push(7, 300, false, &payload(true, b"cccc")), Assembled::Lost, "the marker of 200 never came");
        assert_eq!(a.push(8, 300, true, &payload(false, b"eeee")), Assembled::Frame(Bytes::from_static(b"cccceeee")));
    }
}
