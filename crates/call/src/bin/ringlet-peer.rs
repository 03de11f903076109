//! `ringlet-peer`: a headless Ringlet peer for tests, benchmarks and bots.
//!
//! `--video synthetic` sends the media crate's test pattern at 1280×720,
//! 30 fps, as real VP8 (libvpx, at the congestion controller's target), and
//! decodes what it receives; each decoded frame's stamp gives its one-way
//! latency. The data channel carries 30 test frames a second too (counted
//! apart), so a browser page without media can prove the channel.
//! `--audio synthetic` sends a test tone as Opus (20 ms frames, FEC on) and
//! plays what it receives as the app does: through the adaptive jitter
//! buffer (rebuilding or concealing lost packets) to a speaker, a real one
//! with `--speaker`, otherwise a clock pulling 20 ms at a time. Each decoded
//! video frame is placed against the audio playing (lip sync through RTCP
//! sender reports) and the offsets are summarised.
//! `--video camera` and `--audio mic` use the real devices (nokhwa, cpal)
//! through the same encoders.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use ringlet_call::{AudioPacket, Call, CallConfig, CallEvent, CallStats, DataMessage, IcePolicy, RemoteClock, SignalingConfig, VideoFrame};
use ringlet_media::{
    read_stamp, AudioPlayout, AvSync, ClockSpeaker, CameraCapture, CameraEvent, EncodeJob, EncoderConfig, EncoderThread, Microphone,
    OpusEncoder, Speaker, TestPattern, ToneSource, Vp8Decoder,
};
use ringlet_proto::{IceServer, PeerId, RoomId};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VideoSource {
    Synthetic,
    Camera,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AudioSource {
    Synthetic,
    Mic,
    None,
}

/// A headless Ringlet peer: joins a room and calls whoever is there.
#[derive(Debug, Parser)]
#[command(name = "ringlet-peer", version, about)]
struct Args {
    /// Signaling server base URL
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    server: String,
    /// Room to join
    #[arg(long)]
    room: String,
    /// Stable peer id (default: random)
    #[arg(long)]
    peer_id: Option<String>,
    /// Invite token, for a server started with --require-token
    #[arg(long, env = "RINGLET_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[arg(long, value_enum, default_value_t = VideoSource::Synthetic)]
    video: VideoSource,
    #[arg(long, value_enum, default_value_t = AudioSource::Synthetic)]
    audio: AudioSource,
    /// Stop after this many seconds (default: run until Ctrl-C)
    #[arg(long)]
    duration: Option<f64>,
    /// One JSON object per line for each event, and a summary last
    #[arg(long)]
    json: bool,
    /// Local UDP address for ICE
    #[arg(long, default_value = "0.0.0.0:0")]
    udp: String,
    /// Camera index for `--video camera`
    #[arg(long, default_value_t = 0)]
    camera: u32,
    /// Play the peer's audio on this output device (e.g. `default`);
    /// without it a clock stands in for the speaker
    #[arg(long)]
    speaker: Option<String>,
    /// Microphone id for `--audio mic` (default: the system's default input)
    #[arg(long)]
    mic: Option<String>,
    /// A chat line to send each time the data channel opens (repeatable)
    #[arg(long)]
    chat: Vec<String>,
    /// ICE connectivity-check interval in milliseconds
    #[arg(long, default_value_t = 20)]
    ice_check_ms: u64,
    /// Which ICE candidates to use: `relay` sends everything through TURN
    /// (servers from the join ack or --ice-server)
    #[arg(long, value_enum, default_value_t = IcePolicyArg::All)]
    ice_policy: IcePolicyArg,
    /// A STUN/TURN server besides the join ack's (repeatable): a URL such as
    /// `stun:host:3478`, or JSON `{"urls":["turn:host:3478"],"username":"…","credential":"…"}`
    #[arg(long, value_parser = parse_ice_server)]
    ice_server: Vec<IceServer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum IcePolicyArg {
    All,
    Relay,
}

fn parse_ice_server(s: &str) -> Result<IceServer, String> {
    let s = s.trim();
    if s.starts_with('{') {
        return serde_json::from_str(s).map_err(|e| format!("not an ICE server object: {e}"));
    }
    if ["stun:", "stuns:", "turn:", "turns:"].iter().any(|p| s.starts_with(p)) {
        return Ok(IceServer { urls: vec![s.to_owned()], username: None, credential: None });
    }
    Err(format!("expected a stun:/turn: URL or a JSON object, got {s:?}"))
}

#[derive(Default)]
struct Stats {
    connected: bool,
    both_in_room: Option<Instant>,
    setup_ms: Option<f64>,
    data_frames_sent: u64,
    data_frames_received: u64,
    reconnects: u64,
    chats_received: u64,
}

/// What the decoder thread learns.
#[derive(Default)]
struct Received {
    decoded: AtomicU64,
    decode_errors: AtomicU64,
    first_at: Mutex<Option<Instant>>,
    /// One-way latencies (capture stamp → decoded), microseconds.
    latencies_us: Mutex<Vec<u64>>,
    /// How long each frame would wait for its audio (negative: how late
    /// it is behind it), microseconds.
    av_offsets_us: Mutex<Vec<i64>>,
}

/// Decodes the peer's frames on a thread of its own (libvpx contexts stay
/// on one thread), reading each frame's stamp.
fn spawn_decoder(
    mut frames: tokio::sync::mpsc::Receiver<VideoFrame>,
    rx: Arc<Received>,
    out: Out,
    clock: Arc<RemoteClock>,
    playout: Arc<Mutex<AudioPlayout>>,
) {
    std::thread::spawn(move || {
        let mut sync = AvSync::default();
        let mut dec = match Vp8Decoder::new() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "no VP8 decoder");
                return;
            }
        };
        while let Some(f) = frames.blocking_recv() {
            match dec.decode(&f.data) {
                Ok(Some(img)) => {
                    // When the app would show it to match the audio (a
                    // headless peer shows nothing: it records the offset).
                    if let (Some(a), Some(v)) = (clock.audio(), clock.video()) {
                        sync.audio_sender_report(a.ntp, a.rtp);
                        sync.video_sender_report(v.ntp, v.rtp);
                        if let Some((rtp, at)) = playout.lock().ok().and_then(|p| p.playing()) {
                            sync.audio_playing(rtp, at);
                            sync.video_render_at(f.rtp_ts, Instant::now());
                            if let (Some(o), Ok(mut v)) = (sync.offset_ms(), rx.av_offsets_us.lock()) {
                                if v.len() < 100_000 {
                                    v.push((o * 1e3) as i64);
                                }
                            }
                        }
                    }
                    if rx.decoded.fetch_add(1, Relaxed) == 0 {
                        *rx.first_at.lock().unwrap() = Some(Instant::now());
                        out.event("first_remote_frame", json!({"stamp": read_stamp(&img).map(|s| s.frame)}));
                    }
                    if let Some(stamp) = read_stamp(&img) {
                        let now = now_us() as u64;
                        if let Ok(mut l) = rx.latencies_us.lock() {
                            if l.len() < 100_000 {
                                l.push(now.saturating_sub(stamp.captured_us));
                            }
                        }
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    rx.decode_errors.fetch_add(1, Relaxed);
                }
            }
        }
    });
}

/// Plays the peer's audio: packets go into the jitter buffer as they
/// arrive, and a speaker pulls 20 ms at a time: a real one with
/// `--speaker`, otherwise a clock standing in for one (so the jitter
/// buffer, loss concealment and FEC all run as in the app).
fn spawn_audio_playout(mut packets: tokio::sync::mpsc::Receiver<AudioPacket>, playout: Arc<Mutex<AudioPlayout>>) {
    std::thread::spawn(move || {
        while let Some(p) = packets.blocking_recv() {
            if let Ok(mut pl) = playout.lock() {
                pl.push(p.seq, p.rtp_ts, p.data.to_vec(), p.arrival);
            }
        }
    });
}

/// The latest counters, keeping the last selected pair seen: the session
/// (and its pair) is gone once the other peer has left.
fn keep_pair(mut st: CallStats, last: &CallStats) -> CallStats {
    if st.selected_pair.is_none() {
        st.selected_pair = last.selected_pair.clone();
    }
    st
}

fn percentile(v: &mut [u64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1000.0)
}

fn now_us() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

struct Out {
    json: bool,
    t0: Instant,
}

impl Out {
    fn event(&self, name: &str, mut fields: Value) {
        if self.json {
            if let Value::Object(m) = &mut fields {
                m.insert("event".into(), json!(name));
                m.insert("t_ms".into(), json!((self.t0.elapsed().as_secs_f64() * 1e3).round()));
            }
            println!("{fields}");
        } else {
            eprintln!("[{:>8.1} ms] {name} {fields}", self.t0.elapsed().as_secs_f64() * 1e3);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let room = RoomId::new(args.room.clone()).context("--room")?;
    let peer_id = match &args.peer_id {
        Some(p) => PeerId::new(p.clone()).context("--peer-id")?,
        None => PeerId::new(format!("peer-{:08x}", rand::random::<u32>())).expect("valid"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let connected = rt.block_on(run(args, room, peer_id))?;
    std::process::exit(if connected { 0 } else { 1 });
}

async fn run(args: Args, room: RoomId, peer_id: PeerId) -> anyhow::Result<bool> {
    let out = Out { json: args.json, t0: Instant::now() };
    let mut signaling = SignalingConfig::new(args.server.clone(), room, peer_id);
    signaling.token = args.token.clone();
    let mut config = CallConfig::new(signaling);
    config.udp_bind = args.udp.clone();
    config.ice_check_interval = Duration::from_millis(args.ice_check_ms.max(1));
    config.ice_servers = args.ice_server.clone();
    config.ice_policy = match args.ice_policy {
        IcePolicyArg::All => IcePolicy::All,
        IcePolicyArg::Relay => IcePolicy::Relay,
    };
    let (call, mut events) = Call::start(config);
    let mut stats = Stats::default();
    let sending = args.video != VideoSource::None;
    // Real devices first: a missing one is a clear error before we join.
    let camera_dev = match args.video {
        VideoSource::Camera => {
            let cap = CameraCapture::open(args.camera, 1280, 720, 30)
                .with_context(|| format!("opening camera {} (try --video synthetic)", args.camera))?;
            let (w, h) = match cap.events.recv_timeout(Duration::from_secs(5)) {
                Ok(CameraEvent::Started { width, height, fps }) => {
                    out.event("camera", json!({"width": width, "height": height, "fps": fps}));
                    (width as usize & !1, height as usize & !1)
                }
                Ok(CameraEvent::Lost(e)) => anyhow::bail!("camera {} failed: {e}", args.camera),
                Err(_) => anyhow::bail!("camera {} did not start", args.camera),
            };
            Some((cap, w, h))
        }
        _ => None,
    };
    let mic = match args.audio {
        AudioSource::Mic => {
            let m = Microphone::open(args.mic.as_deref()).context("opening the microphone (try --audio synthetic)")?;
            out.event("microphone", json!({"id": m.device.id, "name": m.device.name, "rate": m.device.sample_rate}));
            Some(m)
        }
        _ => None,
    };
    let received = Arc::new(Received::default());
    let playout = AudioPlayout::shared().context("Opus decoder")?;
    if let Some(remote) = call.take_remote_audio() {
        spawn_audio_playout(remote, Arc::clone(&playout));
    }
    let (_speaker, _clock_speaker) = match &args.speaker {
        Some(id) => {
            let sp = Speaker::open(Some(id), playout.clone()).context("opening the speaker")?;
            out.event("speaker", json!({"id": sp.device.id, "name": sp.device.name, "rate": sp.device.sample_rate}));
            (Some(sp), None)
        }
        None => (None, Some(ClockSpeaker::start(playout.clone()))),
    };
    let mut tone = ToneSource::default();
    let mut opus = if args.audio == AudioSource::Synthetic { Some(OpusEncoder::new(32_000).context("Opus encoder")?) } else { None };
    let mut audio_sent = 0u64;
    let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
    let mic_sent = Arc::new(AtomicU64::new(0));
    // Media flows once the peer connection is up.
    let camera_on = Arc::new(AtomicBool::new(false));
    if let Some(m) = mic {
        // The microphone's own clock paces the frames.
        let (sink, sent, on) = (call.audio(), Arc::clone(&mic_sent), Arc::clone(&camera_on));
        std::thread::spawn(move || {
            // Take the whole Microphone: capturing only `m.frames` would
            // drop its stream, and capture with it.
            let mic = m;
            let Ok(mut enc) = OpusEncoder::new(32_000) else { return };
            while let Ok(frame) = mic.frames.recv() {
                if !on.load(Relaxed) {
                    continue;
                }
                if let Ok(data) = enc.encode(&frame) {
                    if sink.send(AudioPacket::outgoing(data)) {
                        sent.fetch_add(1, Relaxed);
                    }
                }
            }
        });
    }
    if let Some(remote) = call.take_remote_video() {
        spawn_decoder(remote, Arc::clone(&received), Out { json: out.json, t0: out.t0 }, call.remote_clock(), Arc::clone(&playout));
    }
    // The encoder: the pattern goes in at 30 fps, VP8 comes out to the call.
    let keyframe = Arc::new(AtomicBool::new(true));
    let video_sent = Arc::new(AtomicU64::new(0));
    let encoder = if sending {
        let (sink, sent) = (call.video(), Arc::clone(&video_sent));
        Some(
            EncoderThread::spawn(
                match &camera_dev {
                    Some((_, w, h)) => EncoderConfig { width: *w, height: *h, ..EncoderConfig::hd() },
                    None => EncoderConfig::hd(),
                },
                move |f| {
                if sink.send(VideoFrame::outgoing(f.data, f.keyframe)) {
                    sent.fetch_add(1, Relaxed);
                }
            })
            .context("starting the VP8 encoder")?,
        )
    } else {
        None
    };
    // The camera: paints the pattern at 30 fps on a thread of its own (so
    // the event loop and the audio clock never wait for it) while the call
    // is connected.

    let target_kbps = Arc::new(AtomicU64::new(0));
    let camera = encoder.map(|enc| {
        let (on, kf, kbps) = (Arc::clone(&camera_on), Arc::clone(&keyframe), Arc::clone(&target_kbps));
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let camera_dev = camera_dev;
        let handle = std::thread::spawn(move || {
            if let Some((cap, _, _)) = camera_dev {
                // The real camera paces itself; take what it gives.
                while !stop2.load(Relaxed) {
                    let Some(frame) = cap.frames.take() else { break };
                    if on.load(Relaxed) {
                        let k = kbps.load(Relaxed) as u32;
                        enc.submit(EncodeJob { frame, keyframe: kf.swap(false, Relaxed), bitrate_kbps: (k > 0).then_some(k) });
                    }
                }
                return enc.finish();
            }
            let mut pattern = TestPattern::new(1280, 720);
            let period = Duration::from_micros(33_333);
            let mut next = Instant::now();
            while !stop2.load(Relaxed) {
                next += period;
                if on.load(Relaxed) {
                    let (frame, _) = pattern.next_frame();
                    let k = kbps.load(Relaxed) as u32;
                    enc.submit(EncodeJob { frame, keyframe: kf.swap(false, Relaxed), bitrate_kbps: (k > 0).then_some(k) });
                }
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
            }
            enc.finish()
        });
        (stop, handle)
    });
    let mut frame_tick = tokio::time::interval(Duration::from_micros(33_333));
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let mut data_open = false;
    // The engine's counters, kept from the last poll (the summary is
    // printed after hang-up, when the engine is gone).
    let mut call_stats = CallStats::default();
    let deadline = args.duration.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    // The deadline or Ctrl-C, whichever comes first: both hang up and
    // print the summary.
    let stop = async move {
        let deadline = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            e = events.recv() => {
                let Some(e) = e else { break };
                match e {
                    CallEvent::Joined { peer_id, polite, others, rejoin, .. } => {
                        if rejoin { stats.reconnects += 1; }
                        if !others.is_empty() && stats.both_in_room.is_none() { stats.both_in_room = Some(Instant::now()); }
                        out.event(if rejoin { "rejoined" } else { "joined" }, json!({"peer_id": peer_id, "polite": polite, "others": others}));
                    }
                    CallEvent::PeerJoined(p) => {
                        if stats.both_in_room.is_none() { stats.both_in_room = Some(Instant::now()); }
                        out.event("peer_joined", json!({"peer_id": p}));
                    }
                    CallEvent::PeerLeft { peer_id, reason } => {
                        data_open = false;
                        out.event("peer_left", json!({"peer_id": peer_id, "reason": reason}));
                    }
                    CallEvent::Refused { code, message } => {
                        out.event("refused", json!({"code": code, "message": message}));
                        break;
                    }
                    CallEvent::SignalingLost(reason) => out.event("signaling_lost", json!({"reason": reason})),
                    CallEvent::IceState(s) => out.event("ice_state", json!({"state": s})),
                    CallEvent::Connection(s) => out.event("connection_state", json!({"state": s})),
                    CallEvent::Connected { peer_id } => {
                        stats.connected = true;
                        camera_on.store(true, Relaxed);
                        out.event("connected", json!({"peer_id": peer_id}));
                    }
                    CallEvent::DataOpen => {
                        data_open = true;
                        out.event("data_open", json!({}));
                        for text in &args.chat {
                            call.send_message(&DataMessage::Chat { text: text.clone() });
                        }
                    }
                    CallEvent::Frame { .. } => stats.data_frames_received += 1,
                    CallEvent::KeyframeRequested => keyframe.store(true, Relaxed),
                    CallEvent::Chat(text) => {
                        stats.chats_received += 1;
                        out.event("chat", json!({"text": text}));
                    }
                    CallEvent::RemoteMedia { audio_muted, video_muted } => out.event("remote_media", json!({"audio_muted": audio_muted, "video_muted": video_muted})),
                    CallEvent::RemoteHangup => {
                        data_open = false;
                        out.event("remote_hangup", json!({}));
                    }
                    CallEvent::Data(text) => out.event("data", json!({"text": text})),
                    CallEvent::IceRestart => out.event("ice_restart", json!({})),
                    CallEvent::Negotiated => out.event("negotiated", json!({})),
                    CallEvent::Warning(w) => out.event("warning", json!({"message": w})),
                }
            }
            _ = frame_tick.tick(), if sending && data_open => {
                let n = stats.data_frames_sent;
                call.send_message(&DataMessage::Frame { n, ts_us: now_us() as u64 });
                stats.data_frames_sent += 1;
            }
            _ = audio_tick.tick(), if opus.is_some() && stats.connected => {
                if let Some(enc) = opus.as_mut() {
                    if let Ok(data) = enc.encode(&tone.next_frame()) {
                        if call.audio().send(AudioPacket::outgoing(data)) {
                            audio_sent += 1;
                        }
                    }
                }
            }
            _ = stats_tick.tick() => {
                if let Some(st) = call.stats().await {
                    target_kbps.store(st.target_bitrate_bps / 1000, Relaxed);
                    call_stats = keep_pair(st, &call_stats);
                }
                out.event("stats", json!({
                    "connected": stats.connected,
                    "video_frames_sent": video_sent.load(Relaxed),
                    "video_frames_received": received.decoded.load(Relaxed),
                    "data_frames_received": stats.data_frames_received,
                    "audio_frames_received": playout.lock().map(|p| p.stats().decoded).unwrap_or(0),
                    "reconnects": stats.reconnects,
                }));
            }
        }
    }
    if let Some(st) = call.stats().await {
        call_stats = keep_pair(st, &call_stats);
    }
    call.hangup().await;
    if let Some((stop, handle)) = camera {
        stop.store(true, Relaxed);
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    if let (Some(t), Some(first)) = (stats.both_in_room, *received.first_at.lock().unwrap()) {
        stats.setup_ms = Some((first.saturating_duration_since(t).as_secs_f64() * 1e4).round() / 10.0);
    }
    let mut lat = received.latencies_us.lock().unwrap().clone();
    let mut av: Vec<i64> = received.av_offsets_us.lock().unwrap().clone();
    av.sort_unstable();
    let av_at = |p: f64| (!av.is_empty()).then(|| av[((av.len() as f64 * p) as usize).min(av.len() - 1)] as f64 / 1000.0);
    let audio = playout.lock().map(|p| p.stats()).unwrap_or_default();
    let summary = json!({
        "event": "summary",
        "connected": stats.connected,
        "setup_ms": stats.setup_ms,
        "video_frames_sent": video_sent.load(Relaxed),
        "video_frames_received": received.decoded.load(Relaxed),
        "video_decode_errors": received.decode_errors.load(Relaxed),
        "latency_ms": {"p50": percentile(&mut lat, 0.5), "p95": percentile(&mut lat, 0.95)},
        "data_frames_sent": stats.data_frames_sent,
        "data_frames_received": stats.data_frames_received,
        "audio_frames_sent": audio_sent + mic_sent.load(Relaxed),
        "audio_frames_received": audio.decoded,
        "audio_frames_concealed": audio.concealed + audio.recovered,
        "audio_frames_recovered": audio.recovered,
        "audio_jitter": {
            "target_ms": audio.jitter.target_ms,
            "late": audio.jitter.late,
            "lost": audio.jitter.lost,
            "expanded": audio.jitter.expanded,
            "accelerated": audio.jitter.accelerated,
        },
        "av_offset_ms": {"p05": av_at(0.05), "p50": av_at(0.5), "p95": av_at(0.95), "frames": av.len()},
        "sender_reports": {"audio": call.remote_clock().audio().is_some(), "video": call.remote_clock().video().is_some()},
        "reconnects": stats.reconnects,
        "chats_received": stats.chats_received,
        "rtt_ms": call_stats.rtt_ms,
        "ice_restarts": call_stats.ice_restarts,
        "ice_refreshes": call_stats.ice_refreshes,
        "selected_pair": call_stats.selected_pair.as_ref().map(|(l, r)| json!({"local": l, "remote": r})),
    });
    if args.json {
        println!("{summary}");
    } else {
        eprintln!("{summary:#}");
    }
    Ok(stats.connected)
}

