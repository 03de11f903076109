//! NAT traversal against a real TURN server: Debian's coturn on loopback
//! with `use-auth-secret`, `ringlet-signal` minting credentials into the
//! join ack, and two `ringlet-peer` processes forced to relay-only ICE, so
//! the call can only happen through coturn.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringlet_signal::{Config, HubConfig, Server, TurnConfig};
use ringlet_testkit::coturn::Coturn;
use serde_json::Value;

const SECRET: &str = "north-sea";

/// The media-heavy tests (two VP8 encoders each) take turns: on two cores
/// they would otherwise starve each other.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn signal(turn: Option<TurnConfig>) -> String {
    let hub = HubConfig { turn: turn.map(std::sync::Arc::new), ..HubConfig::default() };
    let server = Server::bind(Config { listen: "127.0.0.1:0".parse().unwrap(), hub, ..Config::default() }).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    url
}

fn turn_config(coturn: &Coturn, secret: &str, ttl: Duration) -> TurnConfig {
    TurnConfig { urls: vec![coturn.url()], secret: secret.into(), ttl, stun_urls: vec![] }
}

/// What one `ringlet-peer` printed: its events and its summary.
struct Run {
    events: Vec<Value>,
    summary: Value,
    exit_ok: bool,
}

impl Run {
    fn stats_at(&self, after_ms: f64) -> Option<&Value> {
        self.events.iter().find(|e| e["event"] == "stats" && e["t_ms"].as_f64().unwrap_or(0.0) >= after_ms)
    }
}

/// Runs two relay-only peers in `room` for `secs` and returns what each
/// printed.
async fn pair(server: &str, room: &str, secs: f64, extra: &[&str]) -> (Run, Run) {
    let run = |id: &'static str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ringlet-peer"));
        cmd.args(["--server", server, "--room", room, "--peer-id", id, "--json"])
            .args(["--ice-policy", "relay", "--udp", "127.0.0.1:0", "--duration", &secs.to_string()])
            .args(extra)
            .env("RINGLET_LOG", "error")
            .kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(Duration::from_secs_f64(secs + 20.0), cmd.output())
                .await
                .expect("ringlet-peer ends after its duration")
                .expect("ringlet-peer runs");
            let events: Vec<Value> =
                String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
            let summary = events.iter().rev().find(|e| e["event"] == "summary").cloned().unwrap_or_else(|| {
                panic!("{id}: no summary; stderr:\n{}", String::from_utf8_lossy(&out.stderr))
            });
            Run { events, summary, exit_ok: out.status.success() }
        }
    };
    tokio::join!(run("a"), run("b"))
}

/// The usernames coturn allocated for, in order.
fn allocations(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("ALLOCATE processed, success"))
        .filter_map(|l| Some(l.split("user <").nth(1)?.split('>').next()?.to_owned()))
        .collect()
}

fn assert_relayed_call(name: &str, r: &Run) {
    let s = &r.summary;
    assert!(r.exit_ok && s["connected"] == true, "{name} did not connect: {s}");
    assert_eq!(s["selected_pair"]["local"], "relay", "{name} sent through TURN: {s}");
    assert!(s["audio_frames_received"].as_u64().unwrap() > 0, "{name} heard nothing: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_only_call_goes_through_coturn() {
    let _heavy = HEAVY.lock().await;
    let coturn = Coturn::start(SECRET).unwrap();
    let server = signal(Some(turn_config(&coturn, SECRET, Duration::from_secs(3600)))).await;
    let (a, b) = pair(&server, "relayed", 6.0, &[]).await;
    for (name, r) in [("a", &a), ("b", &b)] {
        assert_relayed_call(name, r);
        // The data channel (SCTP over DTLS) came through the relay too.
        assert!(r.summary["data_frames_received"].as_u64().unwrap() > 0, "{name}: no data channel: {}", r.summary);
        assert_eq!(r.summary["ice_refreshes"], 0, "an hour's credential needs no refresh");
        // Video is reported, not required: through webrtc-rs's TURN path the
        // first keyframe is often lost and its replacement can take seconds
        // on a loaded machine (see ARCHITECTURE.md).
        eprintln!("{name}: video frames received: {}", r.summary["video_frames_received"]);
    }
    let log = coturn.log();
    let users = allocations(&log);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    for peer in ["a", "b"] {
        let user = users.iter().find(|u| u.ends_with(&format!(":{peer}"))).unwrap_or_else(|| panic!("no allocation for {peer}:\n{log}"));
        let expiry: u64 = user.split(':').next().unwrap().parse().unwrap();
        assert!(expiry > now + 3000, "the credential lives about an hour: {user}");
    }
    assert!(log.contains("CHANNEL_BIND processed, success") || log.contains("CREATE_PERMISSION processed, success"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_or_an_expired_credential_is_refused() {
    let coturn = Coturn::start(SECRET).unwrap();
    // A signaling server that signs with the wrong secret.
    let wrong = signal(Some(turn_config(&coturn, "not-the-secret", Duration::from_secs(3600)))).await;
    // Credentials signed with the right secret, expired a minute ago.
    let plain = signal(None).await;
    let expired_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - 60;
    let expired = |peer: &str| {
        let (username, credential) = ringlet_signal::turn::credential(SECRET.as_bytes(), expired_at, peer);
        serde_json::json!({"urls": [coturn.url()], "username": username, "credential": credential}).to_string()
    };
    // Both peers of a pair use the same expired server entry (the peer id
    // in it is only a label to coturn).
    let expired_server = expired("a");
    let quiet = ["--video", "none", "--audio", "none"];
    let with_expired = [&quiet[..], &["--ice-server", &expired_server]].concat();
    let ((wa, wb), (ea, eb)) = tokio::join!(pair(&wrong, "wrong", 5.0, &quiet), pair(&plain, "expired", 5.0, &with_expired));
    for (name, r) in [("wrong a", &wa), ("wrong b", &wb), ("expired a", &ea), ("expired b", &eb)] {
        assert!(!r.exit_ok && r.summary["connected"] == false, "{name} connected without a valid credential: {}", r.summary);
        assert!(r.events.iter().any(|e| e["event"] == "joined"), "{name} never joined: the test proves nothing");
    }
    let log = coturn.log();
    assert!(allocations(&log).is_empty(), "coturn allocated for a bad credential:\n{log}");
    // coturn saw each credential and refused it.
    let wrong_user = log.lines().any(|l| l.contains(":a>") && l.contains("401"));
    let expired_user = log.lines().any(|l| l.contains(&format!("<{expired_at}:a>")) && l.contains("401"));
    assert!(wrong_user && expired_user, "coturn did not refuse both credentials:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_credentials_keep_a_relay_call_up() {
    let _heavy = HEAVY.lock().await;
    let coturn = Coturn::start(SECRET).unwrap();
    // Three-second credentials: each peer refreshes after ~2.4 s (four
    // fifths of what is left) and restarts ICE with the fresh one.
    let server = signal(Some(turn_config(&coturn, SECRET, Duration::from_secs(3)))).await;
    let (a, b) = pair(&server, "refreshed", 9.0, &["--video", "none"]).await;
    for (name, r) in [("a", &a), ("b", &b)] {
        assert_relayed_call(name, r);
        assert!(r.summary["ice_refreshes"].as_u64().unwrap() >= 2, "{name} refreshed too rarely: {}", r.summary);
        // Audio still arrives long after the first credential expired.
        let at = |ms| r.stats_at(ms).map_or(0, |s| s["audio_frames_received"].as_u64().unwrap());
        assert!(at(8000.0) > at(5000.0), "{name}: audio stopped after the refreshes ({} → {})", at(5000.0), at(8000.0));
    }
    // Each refresh made a new allocation with a newer credential (coturn
    // refuses to re-sign a live allocation under another username).
    let log = coturn.log();
    assert!(!log.contains("error 441"), "a live allocation was re-signed:\n{log}");
    let users = allocations(&log);
    for peer in ["a", "b"] {
        let expiries: std::collections::BTreeSet<&str> =
            users.iter().filter(|u| u.ends_with(&format!(":{peer}"))).map(|u| u.split(':').next().unwrap()).collect();
        assert!(expiries.len() >= 3, "{peer} allocated with too few credentials: {expiries:?}");
    }
}

/// Refresh joins outlive the invite token the call started with: a server
/// that requires tokens hands out a fresh one in each ack, and the
/// signaling client joins with the latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_outlive_the_first_invite_token() {
    use ringlet_call::{Call, CallConfig, CallEvent, SignalingConfig};
    use ringlet_proto::{PeerId, RoomId};
    let coturn = Coturn::start(SECRET).unwrap();
    // Four-second tokens, three-second TURN credentials: the second refresh
    // (after ~4.8 s) comes when the token the call started with has expired,
    // and passes only with the one the first refresh's ack carried.
    let invites = ringlet_signal::Invites::new(b"0123456789abcdef-token".to_vec(), Duration::from_secs(4), true).unwrap();
    let room = RoomId::new("with-tokens").unwrap();
    let token = invites.mint(&room, SystemTime::now()).token;
    let hub = HubConfig { turn: Some(std::sync::Arc::new(turn_config(&coturn, SECRET, Duration::from_secs(3)))), ..HubConfig::default() };
    let server = Server::bind(Config { listen: "127.0.0.1:0".parse().unwrap(), hub, invites: Some(invites), ..Config::default() })
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    let peer = |id: &str| {
        let mut signaling = SignalingConfig::new(url.clone(), room.clone(), PeerId::new(id).unwrap());
        signaling.token = Some(token.clone());
        let mut config = CallConfig::new(signaling);
        config.udp_bind = "127.0.0.1:0".into();
        Call::start(config)
    };
    let ((a, mut a_rx), (b, mut b_rx)) = (peer("a"), peer("b"));
    for rx in [&mut a_rx, &mut b_rx] {
        tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(e) = rx.recv().await {
                assert!(!matches!(e, CallEvent::Refused { .. }), "refused: {e:?}");
                if matches!(e, CallEvent::DataOpen) {
                    return;
                }
            }
        })
        .await
        .expect("the call connects");
    }
    tokio::time::sleep(Duration::from_secs(7)).await;
    for (name, call) in [("a", &a), ("b", &b)] {
        let st = call.stats().await.unwrap();
        assert!(st.ice_refreshes >= 2, "{name}: refreshes stopped once the first token expired: {st:?}");
    }
    a.send("still here");
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = b_rx.recv().await {
            if e == CallEvent::Data("still here".into()) {
                return;
            }
        }
    })
    .await
    .expect("the data channel works after the refreshes");
    a.hangup().await;
    b.hangup().await;
}
