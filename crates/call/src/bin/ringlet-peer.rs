//! `ringlet-peer`: a headless Ringlet peer for tests, benchmarks and bots.
//!
//! Until the media crate lands, `--video synthetic` sends "frames" as
//! data-channel heartbeats at 30 per second (each carrying a counter and a
//! send timestamp) and counts the ones received; `camera`, `mic` and the
//! real codecs come with the media issue.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ringlet_call::{Call, CallConfig, CallEvent, DataMessage, SignalingConfig};
use ringlet_proto::{PeerId, RoomId};
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
    /// ICE connectivity-check interval in milliseconds
    #[arg(long, default_value_t = 20)]
    ice_check_ms: u64,
}

#[derive(Default)]
struct Stats {
    connected: bool,
    both_in_room: Option<Instant>,
    setup_ms: Option<f64>,
    frames_sent: u64,
    frames_received: u64,
    audio_received: u64,
    reconnects: u64,
    last_seq: Option<u64>,
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
    if args.video == VideoSource::Camera || args.audio == AudioSource::Mic {
        anyhow::bail!("--video camera and --audio mic need the media crate, which is not built yet; use synthetic or none");
    }
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
    let mut config = CallConfig::new(SignalingConfig::new(args.server.clone(), room, peer_id));
    config.udp_bind = args.udp.clone();
    config.ice_check_interval = Duration::from_millis(args.ice_check_ms.max(1));
    let (call, mut events) = Call::start(config);
    let mut stats = Stats::default();
    let sending = args.video == VideoSource::Synthetic;
    let mut frame_tick = tokio::time::interval(Duration::from_micros(33_333));
    let mut stats_tick = tokio::time::interval(Duration::from_secs(1));
    let mut data_open = false;
    let deadline = args.duration.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s));
    let stop = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            e = events.recv() => {
                let Some(e) = e else { break };
                match e {
                    CallEvent::Joined { peer_id, polite, others, rejoin } => {
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
                        out.event("connected", json!({"peer_id": peer_id}));
                    }
                    CallEvent::DataOpen => {
                        data_open = true;
                        out.event("data_open", json!({}));
                    }
                    CallEvent::Frame { n, .. } => on_frame(&out, &mut stats, n),
                    CallEvent::Chat(text) => out.event("chat", json!({"text": text})),
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
                let n = stats.frames_sent;
                call.send_message(&DataMessage::Frame { n, ts_us: now_us() as u64 });
                stats.frames_sent += 1;
            }
            _ = stats_tick.tick() => {
                out.event("stats", json!({
                    "connected": stats.connected,
                    "video_frames_sent": stats.frames_sent,
                    "video_frames_received": stats.frames_received,
                    "reconnects": stats.reconnects,
                }));
            }
        }
    }
    call.hangup().await;
    let summary = json!({
        "event": "summary",
        "connected": stats.connected,
        "setup_ms": stats.setup_ms,
        "video_frames_sent": stats.frames_sent,
        "video_frames_received": stats.frames_received,
        "audio_frames_received": stats.audio_received,
        "reconnects": stats.reconnects,
        "media": "data-channel heartbeat (real VP8/Opus arrive with the media crate)",
    });
    if args.json {
        println!("{summary}");
    } else {
        eprintln!("{summary:#}");
    }
    Ok(stats.connected)
}

fn on_frame(out: &Out, stats: &mut Stats, n: u64) {
    stats.frames_received += 1;
    if stats.frames_received == 1 {
        if let Some(t) = stats.both_in_room {
            stats.setup_ms = Some((t.elapsed().as_secs_f64() * 1e4).round() / 10.0);
        }
        out.event("first_remote_frame", json!({"n": n, "setup_ms": stats.setup_ms}));
    }
    stats.last_seq = Some(n);
}
