//! Two engines in one process through a real `ringlet-signal` on loopback.

use std::sync::Arc;
use std::time::Duration;

use ringlet_call::{AudioPacket, Call, CallConfig, CallEvent, CallStats, DataMessage, SignalingConfig};
use ringlet_media::{OpusEncoder, ToneSource};
use ringlet_testkit::Proxy;
use ringlet_proto::{PeerId, RoomId};
use ringlet_signal::{Config, Server};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(15);

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG").unwrap_or_else(|_| "off".into()))
        .try_init();
}

async fn server() -> std::net::SocketAddr {
    logs();
    let server = Server::bind(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

fn peer(addr: std::net::SocketAddr, room: &str, id: &str) -> (Call, UnboundedReceiver<CallEvent>) {
    peer_via(&format!("http://{addr}"), room, id)
}

fn peer_via(url: &str, room: &str, id: &str) -> (Call, UnboundedReceiver<CallEvent>) {
    let mut config = CallConfig::new(SignalingConfig::new(
        url.to_string(),
        RoomId::new(room).unwrap(),
        PeerId::new(id).unwrap(),
    ));
    config.udp_bind = "127.0.0.1:0".into();
    Call::start(config)
}

type Events = UnboundedReceiver<CallEvent>;

/// Counts the audio packets `b` receives, from now on.
fn count_remote_audio(b: &Call) -> Arc<std::sync::atomic::AtomicU64> {
    let mut audio = b.take_remote_audio().unwrap();
    let heard = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&heard);
    tokio::spawn(async move {
        while audio.recv().await.is_some() {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    heard
}

/// A steady stream from `a` for `packets` × 20 ms: Opus every 20 ms, a
/// data message every 100 ms.
fn steady_stream(a: &Call, packets: u32) -> tokio::task::JoinHandle<()> {
    let a = a.clone();
    tokio::spawn(async move {
        let (mut tone, mut enc) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap());
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0..packets {
            tick.tick().await;
            a.audio().send(AudioPacket::outgoing(enc.encode(&tone.next_frame()).unwrap()));
            if i % 5 == 0 {
                a.send(format!("tick {i}"));
            }
        }
    })
}

/// Two peers in `room`, the second the newcomer, with their data channel open.
async fn open_pair(addr: std::net::SocketAddr, room: &str) -> (Call, Events, Call, Events) {
    let (a, mut a_rx) = peer(addr, room, "first");
    until(&mut a_rx, "joined", |e| matches!(e, CallEvent::Joined { .. })).await;
    let (b, mut b_rx) = peer(addr, room, "second");
    until(&mut a_rx, "a's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
    until(&mut b_rx, "b's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
    (a, a_rx, b, b_rx)
}

/// ICE restarts, one after another, each followed by a message a → b over
/// the new credentials.
async fn restart_rounds(a: &Call, a_rx: &mut Events, b: &Call, b_rx: &mut Events, rounds: u32, alternate: bool) {
    for round in 0..rounds {
        let restarter = if alternate && round % 2 == 1 { b } else { a };
        restarter.restart_ice();
        until(a_rx, "a negotiated", |e| matches!(e, CallEvent::Negotiated)).await;
        until(b_rx, "b negotiated", |e| matches!(e, CallEvent::Negotiated)).await;
        let text = format!("after restart {round}");
        a.send(text.clone());
        until(b_rx, &format!("message after restart {round}"), |e| *e == CallEvent::Data(text.clone())).await;
    }
}

/// Waits for the first event matching `f`, returning everything seen.
async fn until(rx: &mut UnboundedReceiver<CallEvent>, what: &str, f: impl Fn(&CallEvent) -> bool) -> Vec<CallEvent> {
    let mut seen = vec![];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                let hit = f(&e);
                seen.push(e);
                if hit {
                    return seen;
                }
            }
            Ok(None) => panic!("events ended before {what}: {seen:?}"),
            Err(_) => panic!("no {what} within {WAIT:?}: {seen:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_connect_and_exchange_data() {
    let addr = server().await;
    let (a, mut a_rx) = peer(addr, "r1", "alice");
    until(&mut a_rx, "alice joined", |e| matches!(e, CallEvent::Joined { .. })).await;
    let (b, mut b_rx) = peer(addr, "r1", "bob");
    until(&mut a_rx, "alice connected", |e| matches!(e, CallEvent::Connected { .. })).await;
    until(&mut b_rx, "bob's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
    until(&mut a_rx, "alice's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
    b.send("hello from bob");
    until(&mut a_rx, "bob's message", |e| *e == CallEvent::Data("hello from bob".into())).await;
    a.send_message(&DataMessage::Chat { text: "hello from alice".into() });
    until(&mut b_rx, "alice's chat", |e| *e == CallEvent::Chat("hello from alice".into())).await;
    let st = stats(&a).await;
    assert!(st.target_bitrate_bps >= 100_000, "congestion control publishes a target: {st:?}");
    assert!(st.rtt_ms.is_some_and(|r| r >= 0.0), "the selected pair has a round-trip time: {st:?}");
    b.set_media(true, false);
    until(&mut a_rx, "bob muted", |e| *e == CallEvent::RemoteMedia { audio_muted: true, video_muted: false }).await;
    b.hangup().await;
    // Said over the data channel first, then by the server.
    until(&mut a_rx, "bob hung up", |e| matches!(e, CallEvent::RemoteHangup)).await;
    until(&mut a_rx, "bob left", |e| matches!(e, CallEvent::PeerLeft { .. })).await;
    a.hangup().await;
}

async fn stats(c: &Call) -> CallStats {
    c.stats().await.expect("engine running")
}

/// Every candidate one side sent was applied by the other (none dropped,
/// none refused, none left waiting).
async fn no_candidate_lost(from: &Call, to: &Call) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, r) = (stats(from).await, stats(to).await);
        if r.candidates_applied == s.candidates_sent && s.candidates_sent > 0 {
            assert_eq!(r.candidates_dropped, 0, "{r:?}");
            assert_eq!(r.candidate_errors, 0, "{r:?}");
            assert_eq!(r.candidates_queued, 0, "{r:?}");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "sent {s:?}\nreceived {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Signaling to and from the answerer is slow (a delaying proxy; Socket.IO
/// keeps order, so delay, never reorder): the offerer's candidates reach it
/// right behind the offer, while it is still applying it, and its own
/// answer and candidates reach the offerer late. 50 calls in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_signaling_loses_no_candidate_50_times() {
    let addr = server().await;
    for run in 0..50 {
        let delay = Duration::from_millis(20 + (run % 5) * 30);
        let proxy = Proxy::with_delay(addr, delay).await;
        let room = format!("slow-{run}");
        let (a, mut a_rx) = peer_via(&proxy.url(), &room, "waiting");
        until(&mut a_rx, "joined", |e| matches!(e, CallEvent::Joined { .. })).await;
        let (b, mut b_rx) = peer(addr, &room, "newcomer");
        until(&mut a_rx, "connected", |e| matches!(e, CallEvent::Connected { .. })).await;
        until(&mut b_rx, "connected", |e| matches!(e, CallEvent::Connected { .. })).await;
        no_candidate_lost(&b, &a).await;
        no_candidate_lost(&a, &b).await;
        a.hangup().await;
        b.hangup().await;
    }
}

/// Both peers offer at the same instant when they meet: two offers cross.
/// The impolite one ignores the other's; the polite one rolls back and
/// answers. 50 calls, each must connect and carry data both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glare_resolves_every_time() {
    let addr = server().await;
    let (mut collisions, mut rollbacks) = (0, 0);
    for run in 0..50 {
        let room = format!("glare-{run}");
        let glare_peer = |id: &str| {
            let mut config = CallConfig::new(SignalingConfig::new(
                format!("http://{addr}"),
                RoomId::new(room.clone()).unwrap(),
                PeerId::new(id).unwrap(),
            ));
            config.udp_bind = "127.0.0.1:0".into();
            config.offer_on_peer_joined = true;
            Call::start(config)
        };
        let (a, mut a_rx) = glare_peer("first");
        until(&mut a_rx, "joined", |e| matches!(e, CallEvent::Joined { .. })).await;
        let (b, mut b_rx) = glare_peer("second");
        until(&mut a_rx, &format!("run {run}: a's data channel"), |e| matches!(e, CallEvent::DataOpen)).await;
        until(&mut b_rx, &format!("run {run}: b's data channel"), |e| matches!(e, CallEvent::DataOpen)).await;
        a.send("from a");
        b.send("from b");
        until(&mut b_rx, &format!("run {run}: a's message"), |e| *e == CallEvent::Data("from a".into())).await;
        until(&mut a_rx, &format!("run {run}: b's message"), |e| *e == CallEvent::Data("from b".into())).await;
        let (sa, sb) = (stats(&a).await, stats(&b).await);
        collisions += sa.collisions_ignored + sb.collisions_ignored;
        rollbacks += sa.rollbacks + sb.rollbacks;
        a.hangup().await;
        b.hangup().await;
    }
    // The offers did cross (not every run need collide, but most must).
    assert!(collisions > 0 && rollbacks > 0, "collisions {collisions}, rollbacks {rollbacks}");
}

/// The signaling server dies 5 s into a call and comes back 4 s later on
/// the same port: media never stops (Opus packets and data-channel messages
/// keep arriving the whole time), and both peers rejoin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_call() {

    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    let server = Server::bind(config.clone()).await.unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let (a, mut a_rx) = peer(addr, "restart", "a");
    until(&mut a_rx, "joined", |e| matches!(e, CallEvent::Joined { .. })).await;
    let (b, mut b_rx) = peer(addr, "restart", "b");
    until(&mut a_rx, "data open", |e| matches!(e, CallEvent::DataOpen)).await;
    until(&mut b_rx, "data open", |e| matches!(e, CallEvent::DataOpen)).await;
    let heard = count_remote_audio(&b);

    // A steady stream a → b the whole time: Opus every 20 ms, a data
    // message every 100 ms.
    let sender = steady_stream(&a, 1000);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    until(&mut b_rx, "signaling lost", |e| matches!(e, CallEvent::SignalingLost(_))).await;
    // While the server is down, the call carries on.
    let heard_before = heard.load(std::sync::atomic::Ordering::Relaxed);
    let mut during = 0;
    let down_until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(e)) = tokio::time::timeout_at(down_until, b_rx.recv()).await {
        if matches!(e, CallEvent::Data(_)) {
            during += 1;
        }
    }
    let heard_during = heard.load(std::sync::atomic::Ordering::Relaxed) - heard_before;
    assert!(during >= 40, "only {during} data messages while signaling was down");
    assert!(heard_during >= 150, "only {heard_during} audio packets in 4 s while signaling was down");
    let server = Server::bind(Config { listen: addr, ..config }).await.expect("same port again");
    tokio::spawn(server.run(std::future::pending()));
    until(&mut a_rx, "a rejoined", |e| matches!(e, CallEvent::Joined { rejoin: true, .. })).await;
    until(&mut b_rx, "b rejoined", |e| matches!(e, CallEvent::Joined { rejoin: true, .. })).await;
    let seen = until(&mut b_rx, "messages after the restart", |e| matches!(e, CallEvent::Data(_))).await;
    assert!(!seen.iter().any(|e| matches!(e, CallEvent::PeerLeft { .. })), "{seen:?}");
    assert!(stats(&a).await.rejoins >= 1 && stats(&b).await.rejoins >= 1);
    sender.abort();
    a.hangup().await;
    b.hangup().await;
}

/// One side restarts ICE; the call carries on over the new credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_the_call() {
    let addr = server().await;
    let (a, mut a_rx, b, mut b_rx) = open_pair(addr, "restart-ice").await;
    // Three restarts, alternating sides. Known limit (webrtc 0.21.1): from
    // the fifth ICE restart of one call on, data-channel messages stop
    // arriving although ICE and DTLS report connected; see below.
    restart_rounds(&a, &mut a_rx, &b, &mut b_rx, 3, true).await;
    a.hangup().await;
    b.hangup().await;
}

/// Known limit of webrtc 0.21.1, kept runnable so a fix upstream shows:
/// from the fifth ICE restart of one call on, data-channel messages stop
/// arriving although ICE and DTLS report connected (SCTP keeps exchanging
/// DATA and SACK chunks). Run with `cargo test -p ringlet-call -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails on webrtc 0.21.1: data stops after the fifth ICE restart of a call"]
async fn fifth_ice_restart() {
    let addr = server().await;
    let (a, mut a_rx, b, mut b_rx) = open_pair(addr, "restart-5").await;
    restart_rounds(&a, &mut a_rx, &b, &mut b_rx, 6, false).await;
    a.hangup().await;
    b.hangup().await;
}

/// Real VP8 from one engine to the other: the media crate's test pattern,
/// encoded by libvpx, sent over SRTP, depacketized and decoded; the stamps
/// read back in order. At least 95 % of the frames sent arrive decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_video_flows_and_decodes() {
    use ringlet_call::VideoFrame;
    use ringlet_media::{read_stamp, EncodeJob, EncoderConfig, EncoderThread, TestPattern, Vp8Decoder};

    let addr = server().await;
    let (a, _a_rx, b, _b_rx) = open_pair(addr, "video").await;
    let mut remote = b.take_remote_video().expect("first take");
    assert!(b.take_remote_video().is_none(), "taken once");

    let sink = a.video();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    let config = EncoderConfig { width: 320, height: 240, ..EncoderConfig::hd() };
    let enc = EncoderThread::spawn(config, move |f| {
        if sink.send(VideoFrame::outgoing(f.data, f.keyframe)) {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .unwrap();
    let decoder = std::thread::spawn(move || {
        let mut dec = Vp8Decoder::new().unwrap();
        let mut stamps = vec![];
        while let Some(f) = remote.blocking_recv() {
            if let Ok(Some(img)) = dec.decode(&f.data) {
                stamps.push(read_stamp(&img).expect("stamp readable").frame);
            }
            if stamps.len() == 90 {
                break;
            }
        }
        stamps
    });
    let mut pattern = TestPattern::new(320, 240);
    let mut tick = tokio::time::interval(Duration::from_micros(33_333));
    for _ in 0..90 {
        tick.tick().await;
        enc.submit(EncodeJob { frame: pattern.next_frame().0, keyframe: false, bitrate_kbps: None });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.hangup().await;
    b.hangup().await;
    tokio::task::spawn_blocking(move || enc.finish()).await.unwrap().unwrap();
    let stamps = tokio::task::spawn_blocking(move || decoder.join().unwrap()).await.unwrap();
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed) as usize;
    assert!(sent >= 85, "only {sent} of 90 frames left the encoder");
    assert!(stamps.len() * 100 >= sent * 95, "decoded {} of {sent}", stamps.len());
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "in order: {stamps:?}");
}

/// Real Opus from one engine to the other: the media crate's tone, 20 ms
/// packets, decoded on arrival; at least 95 % arrive, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_audio_flows_and_decodes() {
    use ringlet_call::AudioPacket;
    use ringlet_media::{rms, OpusDecoder, OpusEncoder, ToneSource};

    let addr = server().await;
    let (a, _a_rx, b, _b_rx) = open_pair(addr, "audio").await;
    let mut remote = b.take_remote_audio().expect("first take");
    let decoder = std::thread::spawn(move || {
        let mut dec = OpusDecoder::new().unwrap();
        let (mut seqs, mut loud) = (vec![], 0);
        while let Some(p) = remote.blocking_recv() {
            seqs.push(p.seq);
            if rms(&dec.decode(Some(&p.data)).unwrap()) > 1000.0 {
                loud += 1;
            }
            if seqs.len() == 100 {
                break;
            }
        }
        (seqs, loud)
    });
    let (mut tone, mut enc) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap());
    let sink = a.audio();
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..100 {
        tick.tick().await;
        sent += usize::from(sink.send(AudioPacket::outgoing(enc.encode(&tone.next_frame()).unwrap())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.hangup().await;
    b.hangup().await;
    let (seqs, loud) = tokio::task::spawn_blocking(move || decoder.join().unwrap()).await.unwrap();
    assert_eq!(sent, 100);
    assert!(seqs.len() >= 95, "received {} of {sent}", seqs.len());
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "consecutive: {seqs:?}");
    assert!(loud >= 90, "only {loud} frames carried the tone");
}

/// The receive path as the app runs it: the peer's Opus through the
/// adaptive jitter buffer to a (stand-in) speaker pulling 20 ms on its own
/// clock, and VP8 alongside; RTCP sender reports of both streams reach the
/// app, so lip sync can place each video frame against the audio playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_plays_through_the_jitter_buffer_and_lip_sync_has_its_clocks() {
    use ringlet_call::{AudioPacket, VideoFrame};
    use ringlet_media::{AudioPlayout, AvSync, EncodeJob, EncoderConfig, EncoderThread, OpusEncoder, PcmSource, TestPattern, ToneSource};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    let addr = server().await;
    let (a, _a_rx, b, _b_rx) = open_pair(addr, "playout").await;
    let playout = AudioPlayout::shared().unwrap();
    let mut remote_audio = b.take_remote_audio().unwrap();
    let feeder = Arc::clone(&playout);
    std::thread::spawn(move || {
        while let Some(p) = remote_audio.blocking_recv() {
            feeder.lock().unwrap().push(p.seq, p.rtp_ts, p.data.to_vec(), p.arrival);
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (speaker, stop2) = (Arc::clone(&playout), Arc::clone(&stop));
    let speaker = std::thread::spawn(move || {
        let mut pcm = vec![0i16; 960];
        let mut loud = 0;
        while !stop2.load(Relaxed) {
            speaker.lock().unwrap().fill(&mut pcm);
            loud += usize::from(ringlet_media::rms(&pcm) > 1000.0);
            std::thread::sleep(Duration::from_millis(20));
        }
        loud
    });
    let mut remote_video = b.take_remote_video().unwrap();
    let (clock, sync_playout) = (b.remote_clock(), Arc::clone(&playout));
    let video = std::thread::spawn(move || {
        let mut sync = AvSync::default();
        let (mut frames, mut placed) = (0, 0);
        while let Some(f) = remote_video.blocking_recv() {
            frames += 1;
            if let (Some(ar), Some(vr), Some((rtp, at))) = (clock.audio(), clock.video(), sync_playout.lock().unwrap().playing()) {
                sync.audio_sender_report(ar.ntp, ar.rtp);
                sync.video_sender_report(vr.ntp, vr.rtp);
                sync.audio_playing(rtp, at);
                sync.video_render_at(f.rtp_ts, std::time::Instant::now());
                placed += usize::from(sync.offset_ms().is_some());
            }
        }
        (frames, placed)
    });

    let sink = a.video();
    let enc = EncoderThread::spawn(EncoderConfig { width: 320, height: 240, ..EncoderConfig::hd() }, move |f| {
        sink.send(VideoFrame::outgoing(f.data, f.keyframe));
    })
    .unwrap();
    let (mut tone, mut opus) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap());
    let mut pattern = TestPattern::new(320, 240);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0;
    // Four seconds: sender reports go out about once a second.
    for i in 0..200 {
        tick.tick().await;
        sent += usize::from(a.audio().send(AudioPacket::outgoing(opus.encode(&tone.next_frame()).unwrap())));
        if i % 3 == 0 {
            enc.submit(EncodeJob { frame: pattern.next_frame().0, keyframe: false, bitrate_kbps: None });
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Relaxed);
    let loud = tokio::task::spawn_blocking(move || speaker.join().unwrap()).await.unwrap();
    let (audio_report, video_report) = (b.remote_clock().audio(), b.remote_clock().video());
    let (sent_stats, received_stats) = (stats(&a).await, stats(&b).await);
    assert!(received_stats.packets_received >= 200 && received_stats.bytes_received > 10_000, "{received_stats:?}");
    assert!(sent_stats.bytes_sent >= received_stats.bytes_received / 2, "{sent_stats:?}");
    a.hangup().await;
    b.hangup().await;
    tokio::task::spawn_blocking(move || enc.finish()).await.unwrap().unwrap();
    let (frames, placed) = tokio::task::spawn_blocking(move || video.join().unwrap()).await.unwrap();
    let stats = playout.lock().unwrap().stats();
    assert_eq!(sent, 200);
    assert!(stats.decoded + stats.jitter.accelerated >= 190, "played {stats:?}");
    assert_eq!(stats.jitter.late, 0, "{stats:?}");
    assert!(loud >= 150, "only {loud} loud 20 ms pulls of 200: {stats:?}");
    assert!(audio_report.is_some() && video_report.is_some(), "sender reports: audio {audio_report:?} video {video_report:?}");
    assert!(frames >= 60, "{frames} video frames");
    assert!(placed > 0, "no frame could be placed against the audio");
}

/// A person picks another camera mid-call: the capture switches source
/// (here the test pattern at another size; no camera on this machine), the
/// encoder follows with a keyframe, and the peer decodes the new picture,
/// all on the same track, with no new offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_camera_mid_call_needs_no_renegotiation() {
    use ringlet_call::VideoFrame;
    use ringlet_media::{EncodeJob, EncoderConfig, EncoderThread, VideoCapture, VideoInput, Vp8Decoder};
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    let addr = server().await;
    let (a, _a_rx, b, _b_rx) = open_pair(addr, "switch").await;
    let offers_before = (stats(&a).await.offers_sent, stats(&b).await.offers_sent);

    let capture = VideoCapture::start(VideoInput::TestPattern { width: 320, height: 240 }).unwrap();
    let sink = a.video();
    let enc = Arc::new(
        EncoderThread::spawn(EncoderConfig { width: 320, height: 240, ..EncoderConfig::hd() }, move |f| {
            sink.send(VideoFrame::outgoing(f.data, f.keyframe));
        })
        .unwrap(),
    );
    let (frames, feeder_enc, stop) = (capture.frames(), Arc::clone(&enc), Arc::new(AtomicBool::new(false)));
    let stop2 = Arc::clone(&stop);
    let feeder = std::thread::spawn(move || {
        while !stop2.load(Relaxed) {
            if let Some(frame) = frames.take_timeout(Duration::from_millis(100)) {
                feeder_enc.submit(EncodeJob { frame, keyframe: false, bitrate_kbps: None });
            }
        }
    });
    let mut remote = b.take_remote_video().unwrap();
    let (size_tx, mut sizes) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut dec = Vp8Decoder::new().unwrap();
        while let Some(f) = remote.blocking_recv() {
            if let Ok(Some(img)) = dec.decode(&f.data) {
                let _ = size_tx.send((img.width, img.height));
            }
        }
    });
    decoded_at(&mut sizes, (320, 240)).await;
    capture.switch(VideoInput::TestPattern { width: 640, height: 360 }).unwrap();
    decoded_at(&mut sizes, (640, 360)).await;

    let offers_after = (stats(&a).await.offers_sent, stats(&b).await.offers_sent);
    assert_eq!(offers_before, offers_after, "no renegotiation");
    stop.store(true, Relaxed);
    feeder.join().unwrap();
    drop(capture);
    a.hangup().await;
    b.hangup().await;
}

/// Waits until 15 frames of this size were decoded.
async fn decoded_at(sizes: &mut tokio::sync::mpsc::UnboundedReceiver<(usize, usize)>, want: (usize, usize)) {
    let mut n = 0;
    while n < 15 {
        let s = tokio::time::timeout(WAIT, sizes.recv()).await.expect("frames keep coming").expect("decoder alive");
        n += usize::from(s == want);
    }
}

/// A cluster node on its own runtime and thread, so that killing it
/// drops every task and socket at once, as a crash does (no goodbye to
/// Redis or to clients).
struct CrashableNode {
    addr: std::net::SocketAddr,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CrashableNode {
    fn start(redis_url: &str) -> CrashableNode {
        let mut cluster = ringlet_signal::ClusterConfig::new(redis_url);
        cluster.node_ttl = Duration::from_secs(1);
        let config = Config { listen: "127.0.0.1:0".parse().unwrap(), redis: Some(cluster), ..Config::default() };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (kill, killed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            let server = rt.block_on(Server::bind(config)).expect("node starts");
            addr_tx.send(server.local_addr()).unwrap();
            rt.spawn(server.run(std::future::pending()));
            let _ = killed.recv();
            rt.shutdown_background();
        });
        let addr = addr_rx.recv().expect("node address");
        CrashableNode { addr, kill: Some(kill), thread: Some(thread) }
    }

    fn crash(&mut self) {
        self.kill.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CrashableNode {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Two `ringlet-signal` nodes sharing one `redis-server`, a load balancer
/// in front: peer a reaches node 1 through it, peer b talks to node 2.
/// Node 1 crashes mid-call; a's engine reconnects through the balancer to
/// node 2, rejoins, and the call goes on: media and data never stop, b
/// never hears a leave, and an ICE restart afterwards (signaling through
/// node 2 both ways) succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_its_signaling_node_dying() {

    logs();
    let redis = ringlet_testkit::RedisServer::start();
    let mut n1 = CrashableNode::start(&redis.url());
    let n2 = CrashableNode::start(&redis.url());
    let balancer = Proxy::failover(vec![n1.addr, n2.addr]).await;

    let (a, mut a_rx) = peer_via(&balancer.url(), "cluster-call", "a");
    until(&mut a_rx, "a joined", |e| matches!(e, CallEvent::Joined { .. })).await;
    let (b, mut b_rx) = peer(n2.addr, "cluster-call", "b");
    until(&mut a_rx, "a's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
    until(&mut b_rx, "b's data channel", |e| matches!(e, CallEvent::DataOpen)).await;

    let heard = count_remote_audio(&b);
    let sender = steady_stream(&a, 1500);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let heard_before = heard.load(std::sync::atomic::Ordering::Relaxed);
    assert!(heard_before >= 50, "only {heard_before} audio packets before the crash");

    n1.crash();
    until(&mut a_rx, "a lost node 1", |e| matches!(e, CallEvent::SignalingLost(_))).await;
    until(&mut a_rx, "a rejoined on node 2", |e| matches!(e, CallEvent::Joined { rejoin: true, .. })).await;
    let heard_at_rejoin = heard.load(std::sync::atomic::Ordering::Relaxed);
    let seen = until(&mut b_rx, "data after the move", |e| matches!(e, CallEvent::Data(_))).await;
    assert!(!seen.iter().any(|e| matches!(e, CallEvent::PeerLeft { .. })), "{seen:?}");

    // Signaling works through node 2 both ways: an ICE restart completes.
    restart_rounds(&a, &mut a_rx, &b, &mut b_rx, 1, false).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard_after = heard.load(std::sync::atomic::Ordering::Relaxed) - heard_at_rejoin;
    assert!(heard_after >= 40, "only {heard_after} audio packets after the move");
    assert!(stats(&a).await.rejoins >= 1);
    sender.abort();
    a.hangup().await;
    b.hangup().await;
}
