//! One call: the engine, the local media attached to it, the peer's audio
//! through the jitter buffer to a speaker, and the peer's video (held for
//! lip sync) out to the page.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringlet_call::{Call, CallConfig, CallEvent, DataMessage, SignalingConfig};
use ringlet_media::{i420_to_jpeg, AudioPlayout, AvSync, ClockSpeaker, SharedSource, Speaker, Vp8Decoder};
use ringlet_proto::{IceServer, PeerId, RoomId};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::frames::{now_us, FrameHub};
use crate::local::{LocalMedia, Sinks};

/// What a call needs besides the local media.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Signaling server base URL.
    pub server: String,
    pub room: RoomId,
    pub peer_id: PeerId,
    pub name: Option<String>,
    /// The invite token from the link, for servers that require one.
    pub token: Option<String>,
    pub ice_servers: Vec<IceServer>,
    /// Output device id; `None` for the system default.
    pub speaker: Option<String>,
}

/// What the page hears about the call, in order. Serialized as
/// `{"type": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", rename_all_fields = "camelCase")]
pub enum SessionEvent {
    /// `token`: the server's fresh invite token, when it signs them.
    Joined {
        peer_id: String,
        others: Vec<String>,
        rejoin: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    Refused { code: String, message: String },
    PeerJoined { peer_id: String },
    PeerLeft { peer_id: String, reason: String },
    /// The signaling server is unreachable; the call itself may go on.
    SignalingLost { reason: String },
    /// webrtc's connection state: new, connecting, connected, disconnected, failed, closed.
    Connection { state: String },
    Connected,
    /// The data channel is open: chat and media state can flow.
    DataOpen,
    Chat { text: String },
    RemoteMedia { audio_muted: bool, video_muted: bool },
    RemoteHangup,
    IceRestart,
    /// A device or the network did something the person should know.
    Warning { message: String },
    /// The engine stopped (after a hang-up).
    Ended,
}

impl SessionEvent {
    fn from_call(e: CallEvent) -> Option<SessionEvent> {
        Some(match e {
            CallEvent::Joined { peer_id, others, rejoin, token, .. } => SessionEvent::Joined {
                peer_id: peer_id.to_string(),
                others: others.iter().map(|p| p.to_string()).collect(),
                rejoin,
                token,
            },
            CallEvent::Refused { code, message } => SessionEvent::Refused { code, message },
            CallEvent::PeerJoined(p) => SessionEvent::PeerJoined { peer_id: p.to_string() },
            CallEvent::PeerLeft { peer_id, reason } => SessionEvent::PeerLeft { peer_id: peer_id.to_string(), reason },
            CallEvent::SignalingLost(reason) => SessionEvent::SignalingLost { reason },
            CallEvent::Connection(state) => SessionEvent::Connection { state },
            CallEvent::Connected { .. } => SessionEvent::Connected,
            CallEvent::DataOpen => SessionEvent::DataOpen,
            CallEvent::Chat(text) => SessionEvent::Chat { text },
            CallEvent::RemoteMedia { audio_muted, video_muted } => SessionEvent::RemoteMedia { audio_muted, video_muted },
            CallEvent::RemoteHangup => SessionEvent::RemoteHangup,
            CallEvent::IceRestart => SessionEvent::IceRestart,
            CallEvent::Warning(message) => SessionEvent::Warning { message },
            CallEvent::IceState(_)
            | CallEvent::Frame { .. }
            | CallEvent::Data(_)
            | CallEvent::KeyframeRequested
            | CallEvent::Negotiated => return None,
        })
    }
}

/// The call quality the indicator shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quality {
    pub rtt_ms: Option<f64>,
    /// Packets lost of those expected since the last reading, in percent.
    pub loss_pct: f64,
    pub send_kbps: f64,
    pub receive_kbps: f64,
    /// The audio jitter buffer's delay.
    pub jitter_buffer_ms: f64,
    /// 20 ms frames of the peer's audio played so far, and those concealed.
    pub audio_played: u64,
    pub audio_concealed: u64,
    pub video_frames_shown: u64,
    /// The last frame's wait for (positive) or lag behind (negative) its audio.
    pub av_offset_ms: Option<f64>,
    pub target_kbps: u64,
}

/// Whatever pulls the playout: held only to keep it running.
#[allow(dead_code)]
enum Output {
    Device(Speaker),
    Clock(ClockSpeaker),
}

struct Counters {
    at: Instant,
    sent: u64,
    received: u64,
    packets: u64,
    lost: i64,
}

/// A running call. Dropping it does not hang up: call [`Session::hangup`].
pub struct Session {
    call: Call,
    local: Arc<LocalMedia>,
    playout: Arc<Mutex<AudioPlayout>>,
    output: Mutex<Option<Output>>,
    events: mpsc::UnboundedSender<SessionEvent>,
    last: Mutex<Option<Counters>>,
    shown: Arc<std::sync::atomic::AtomicU64>,
    av_offset: Arc<Mutex<Option<f64>>>,
}

impl Session {
    /// Joins the room and starts media both ways. Must run inside a tokio
    /// runtime.
    pub fn start(
        config: SessionConfig,
        local: Arc<LocalMedia>,
        hub: FrameHub,
    ) -> Result<(Session, mpsc::UnboundedReceiver<SessionEvent>), crate::SessionError> {
        let playout = AudioPlayout::shared().map_err(|e| crate::SessionError::Media(e.to_string()))?;
        let mut signaling = SignalingConfig::new(config.server.clone(), config.room.clone(), config.peer_id.clone());
        signaling.name = config.name.clone();
        signaling.token = config.token.clone();
        let mut call_config = CallConfig::new(signaling);
        call_config.ice_servers = config.ice_servers.clone();
        let (call, mut call_events) = Call::start(call_config);
        let (tx, rx) = mpsc::unbounded_channel();

        local.attach(Some(Sinks { video: call.video(), audio: call.audio() }));
        call.set_media(!local.mic_on(), !local.camera_on());

        // The peer's audio, into the jitter buffer as it arrives.
        if let Some(mut packets) = call.take_remote_audio() {
            let p = Arc::clone(&playout);
            tokio::spawn(async move {
                while let Some(pkt) = packets.recv().await {
                    if let Ok(mut pl) = p.lock() {
                        pl.push(pkt.seq, pkt.rtp_ts, pkt.data.to_vec(), pkt.arrival);
                    }
                }
            });
        }
        let shown = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let av_offset = Arc::new(Mutex::new(None));
        if let Some(frames) = call.take_remote_video() {
            spawn_remote_video(frames, hub, call.clone(), Arc::clone(&playout), Arc::clone(&shown), Arc::clone(&av_offset))
                .map_err(|e| crate::SessionError::Media(format!("remote video thread: {e}")))?;
        }

        let session = Session {
            call: call.clone(),
            local: Arc::clone(&local),
            playout,
            output: Mutex::new(None),
            events: tx.clone(),
            last: Mutex::new(None),
            shown,
            av_offset,
        };
        session.open_output(config.speaker.as_deref());

        // Engine events: forwarded, and the ones the media side acts on.
        let (events, local2, call2) = (tx, local, call);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    e = call_events.recv() => {
                        let Some(e) = e else { break };
                        match &e {
                            CallEvent::KeyframeRequested => local2.request_keyframe(),
                            CallEvent::Connected { .. } | CallEvent::DataOpen => {
                                local2.request_keyframe();
                                call2.set_media(!local2.mic_on(), !local2.camera_on());
                            }
                            _ => {}
                        }
                        if let Some(ev) = SessionEvent::from_call(e) {
                            if events.send(ev).is_err() {
                                break;
                            }
                        }
                    }
                    _ = tick.tick() => {
                        // The congestion controller's target, for the encoder.
                        if let Some(st) = call2.stats().await {
                            local2.set_bitrate_kbps((st.target_bitrate_bps / 1000) as u32);
                        }
                        for e in local2.events() {
                            if let ringlet_media::CaptureEvent::Lost { source, reason } = e {
                                let _ = events.send(SessionEvent::Warning { message: format!("{source} stopped: {reason}") });
                            }
                        }
                    }
                }
            }
            local2.attach(None);
            let _ = events.send(SessionEvent::Ended);
        });
        Ok((session, rx))
    }

    /// Opens the speaker (or the default one); where none can be opened,
    /// a clock stands in so the call goes on, and the page is told.
    fn open_output(&self, id: Option<&str>) {
        let source: SharedSource = self.playout.clone();
        let output = match Speaker::open(id, source.clone()) {
            Ok(s) => Output::Device(s),
            Err(e) => {
                let _ = self.events.send(SessionEvent::Warning { message: format!("No speaker: {e}. You will not hear the other person.") });
                Output::Clock(ClockSpeaker::start(source))
            }
        };
        if let Ok(mut o) = self.output.lock() {
            // The old device closes before the new one plays.
            *o = None;
            *o = Some(output);
        }
    }

    /// Plays on another output device, mid-call.
    pub fn switch_speaker(&self, id: Option<&str>) {
        self.open_output(id);
    }

    pub fn set_mic(&self, on: bool) {
        self.local.set_mic(on);
        self.call.set_media(!on, !self.local.camera_on());
    }

    pub fn set_camera(&self, on: bool) -> Result<(), ringlet_media::DeviceError> {
        self.local.set_camera(on)?;
        self.call.set_media(!self.local.mic_on(), !on);
        Ok(())
    }

    pub fn chat(&self, text: &str) {
        self.call.send_message(&DataMessage::Chat { text: text.to_owned() });
    }

    pub fn restart_ice(&self) {
        self.call.restart_ice();
    }

    /// Quality since the last reading (rates over that interval).
    pub async fn quality(&self) -> Quality {
        let mut q = Quality::default();
        if let Some(st) = self.call.stats().await {
            q.rtt_ms = st.rtt_ms;
            q.target_kbps = st.target_bitrate_bps / 1000;
            let now = Counters { at: Instant::now(), sent: st.bytes_sent, received: st.bytes_received, packets: st.packets_received, lost: st.packets_lost };
            if let Ok(mut last) = self.last.lock() {
                if let Some(l) = last.as_ref() {
                    let secs = now.at.duration_since(l.at).as_secs_f64().max(1e-3);
                    q.send_kbps = now.sent.saturating_sub(l.sent) as f64 * 8.0 / 1e3 / secs;
                    q.receive_kbps = now.received.saturating_sub(l.received) as f64 * 8.0 / 1e3 / secs;
                    let got = now.packets.saturating_sub(l.packets) as f64;
                    let lost = (now.lost - l.lost).max(0) as f64;
                    q.loss_pct = if got + lost > 0.0 { 100.0 * lost / (got + lost) } else { 0.0 };
                }
                *last = Some(now);
            }
        }
        if let Ok(p) = self.playout.lock() {
            let s = p.stats();
            q.jitter_buffer_ms = s.jitter.buffered_ms;
            q.audio_played = s.decoded;
            q.audio_concealed = s.concealed + s.recovered;
        }
        q.video_frames_shown = self.shown.load(std::sync::atomic::Ordering::Relaxed);
        q.av_offset_ms = self.av_offset.lock().ok().and_then(|o| *o);
        q
    }

    /// Says goodbye and leaves; the local media stays (for the next call
    /// or the pre-join screen).
    pub async fn hangup(&self) {
        self.local.attach(None);
        self.call.hangup().await;
        if let Ok(mut o) = self.output.lock() {
            *o = None;
        }
    }
}

/// Frames held for lip sync at most (at 30 fps, the 300 ms bound).
const MAX_HELD: usize = 10;

/// The peer's frames to the page: each held until its audio plays (lip
/// sync, bounded), then passed through as VP8. Holding is a delay, not a
/// rate: frames wait in a queue with their due times, so a steady offset
/// costs latency only. Decoded to JPEG (on a thread of its own) only while
/// a page asks for that.
fn spawn_remote_video(
    mut frames: mpsc::Receiver<ringlet_call::VideoFrame>,
    hub: FrameHub,
    call: Call,
    playout: Arc<Mutex<AudioPlayout>>,
    shown: Arc<std::sync::atomic::AtomicU64>,
    av_offset: Arc<Mutex<Option<f64>>>,
) -> std::io::Result<()> {
    let jpeg = spawn_jpeg_fallback(hub.clone(), call.clone())?;
    tokio::spawn(async move {
        let clock = call.remote_clock();
        let mut sync = AvSync::default();
        sync.max_video_delay = Duration::from_millis(300);
        let mut held: std::collections::VecDeque<(Instant, ringlet_call::VideoFrame)> = Default::default();
        let mut last_due = Instant::now();
        let publish = |f: ringlet_call::VideoFrame| {
            if hub.take_keyframe_request() {
                call.request_remote_keyframe();
            }
            hub.publish_remote_vp8(&f.data, f.keyframe, now_us());
            shown.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if hub.wants_remote_jpeg() {
                let _ = jpeg.try_send(Some(f));
            } else {
                let _ = jpeg.try_send(None);
            }
        };
        loop {
            let now = Instant::now();
            while held.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, f)) = held.pop_front() {
                    publish(f);
                }
            }
            let wait = held.front().map_or(Duration::from_millis(200), |(due, _)| due.saturating_duration_since(now));
            let f = match tokio::time::timeout(wait, frames.recv()).await {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => continue, // something is due, or nothing came
            };
            let now = Instant::now();
            let mut due = now;
            if let (Some(a), Some(v)) = (clock.audio(), clock.video()) {
                sync.audio_sender_report(a.ntp, a.rtp);
                sync.video_sender_report(v.ntp, v.rtp);
                if let Some((rtp, at)) = playout.lock().ok().and_then(|p| p.playing()) {
                    sync.audio_playing(rtp, at);
                }
                due = sync.video_render_at(f.rtp_ts, now);
                if let Ok(mut o) = av_offset.lock() {
                    *o = sync.offset_ms();
                }
            }
            // In order, whatever the estimate did.
            due = due.max(last_due);
            last_due = due;
            if held.len() >= MAX_HELD {
                if let Some((_, old)) = held.pop_front() {
                    publish(old);
                }
            }
            held.push_back((due, f));
        }
        for (_, f) in held {
            publish(f);
        }
    });
    Ok(())
}

/// Decodes the peer's VP8 to JPEG for a page whose WebCodecs cannot. Fed
/// every frame while wanted (`None` while not); a full queue loses frames,
/// so it starts over at a keyframe it asks for.
fn spawn_jpeg_fallback(hub: FrameHub, call: Call) -> std::io::Result<std::sync::mpsc::SyncSender<Option<ringlet_call::VideoFrame>>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Option<ringlet_call::VideoFrame>>(30);
    std::thread::Builder::new().name("remote-jpeg".into()).spawn(move || {
        let mut decoder: Option<Vp8Decoder> = None;
        while let Ok(first) = rx.recv() {
            // Every frame is decoded (VP8 needs them all); only the newest
            // picture is encoded, so a slow JPEG path drops pictures, not
            // time.
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let mut newest = None;
            for item in batch {
                let Some(f) = item else {
                    decoder = None;
                    newest = None;
                    continue;
                };
                let dec = match &mut decoder {
                    Some(d) => d,
                    None => {
                        call.request_remote_keyframe();
                        if !f.keyframe {
                            continue;
                        }
                        match Vp8Decoder::new() {
                            Ok(d) => decoder.insert(d),
                            Err(_) => continue,
                        }
                    }
                };
                match dec.decode(&f.data) {
                    Ok(Some(img)) => newest = Some(img),
                    Ok(None) => {}
                    Err(_) => decoder = None,
                }
            }
            if let Some(img) = newest {
                if let Ok(jpeg) = i420_to_jpeg(&img, 1280, 75) {
                    hub.publish_remote_jpeg(&jpeg, now_us());
                }
            }
        }
    })?;
    Ok(tx)
}
