//! `ringlet-signal` end to end: a real server on loopback, real
//! `rust_socketio` clients.

mod support;

use std::time::Duration;

use ringlet_signal::{Config, HubConfig};
use rust_socketio::TransportType;
use serde_json::{json, Value};
use support::*;

fn hub() -> HubConfig {
    HubConfig { grace: Duration::from_secs(5), ..HubConfig::default() }
}

async fn pair(url: &str, room: &str) -> (Client, Client) {
    let a = Client::connect(url).await;
    let b = Client::connect(url).await;
    assert_eq!(a.join(json!({"roomId": room, "peerId": "a"})).await["ok"], true);
    assert_eq!(b.join(json!({"roomId": room, "peerId": "b"})).await["ok"], true);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_flow_over_both_transports() {
    let server = TestServer::start(hub()).await;
    let transports = [
        ("websocket", TransportType::Websocket),
        ("any", TransportType::Any),
        ("polling", TransportType::Polling),
    ];
    for (_name, transport) in transports {
        // The previous round's hang-ups have landed: no rooms left.
        wait_for(|| server.metrics.sockets() == 0).await;
        let mut a = Client::connect_with(&server.url(), transport.clone()).await;
        let mut b = Client::connect_with(&server.url(), transport).await;
        // The seed's bare-string join, without an ack.
        a.emit("join", json!("room-1")).await;
        // No ack in the seed's form: wait until a's join has landed so that
        // a is the one who hears b arrive.
        wait_for(|| server.metrics.render().contains("ringlet_rooms 1")).await;
        b.emit("join", json!("room-1")).await;
        // a hears b arrive: both are in before anything is relayed.
        let joined = a.next("peer-joined").await;
        assert_eq!(joined["roomId"], "room-1");

        a.emit("sdp-offer", offer("room-1")).await;
        let got = b.next("sdp-offer").await;
        assert_eq!(got["sdp"]["type"], "offer");
        assert_eq!(got["roomId"], "room-1");
        assert!(got["from"].is_string());

        b.emit("sdp-answer", json!({"roomId": "room-1", "sdp": {"type": "answer", "sdp": "v=0\r\n"}})).await;
        let got = a.next("sdp-answer").await;
        assert_eq!(got["sdp"]["type"], "answer", "the seed's server forgot this relay; ours does not");
        assert_eq!(got["from"], joined["peerId"]);

        a.emit("ice-candidate", cand("room-1", 1)).await;
        b.emit("ice-candidate", cand("room-1", 2)).await;
        assert_eq!(b.next("ice-candidate").await["seq"], 1);
        assert_eq!(a.next("ice-candidate").await["seq"], 2);
        // No echo: neither sees its own messages.
        let echoes: Vec<_> = a.quiet_for(Duration::from_millis(200)).await;
        assert!(
            echoes.iter().all(|r| r.event != "sdp-offer" && r.event != "ice-candidate" || r.data["seq"] != 1),
            "{echoes:?}"
        );
        a.disconnect().await;
        b.disconnect().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_join_acks_presence_and_capacity() {
    let server = TestServer::start(hub()).await;
    let mut a = Client::connect(&server.url()).await;
    let b = Client::connect(&server.url()).await;
    let c = Client::connect(&server.url()).await;

    let ja = a.join(json!({"roomId": "r", "peerId": "alice", "name": "Alice"})).await;
    assert_eq!(
        ja,
        json!({"ok": true, "roomId": "r", "peerId": "alice", "peers": [], "polite": false, "iceServers": [], "resumed": false})
    );
    let jb = b.join(json!({"roomId": "r", "peerId": "bob"})).await;
    assert_eq!(jb["polite"], true);
    assert_eq!(jb["peers"], json!([{"peerId": "alice", "name": "Alice"}]));
    assert_eq!(a.next("peer-joined").await, json!({"roomId": "r", "peerId": "bob"}));

    let jc = c.join(json!("r")).await;
    assert_eq!(jc["ok"], false);
    assert_eq!(jc["error"]["code"], "room-full");
    assert!(jc["error"]["message"].as_str().unwrap().contains("full"));

    // Seed-form join with an ack gets an assigned peer id.
    let d = Client::connect(&server.url()).await;
    let jd = d.join(json!("other")).await;
    assert_eq!(jd["ok"], true);
    assert_eq!(jd["peerId"].as_str().unwrap().len(), 16);

    assert_eq!(b.request("leave", json!({"roomId": "r"})).await, json!({"ok": true}));
    assert_eq!(a.next("peer-left").await, json!({"roomId": "r", "peerId": "bob", "reason": "left"}));
    // Now there is room for c.
    assert_eq!(c.join(json!("r")).await["ok"], true);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated_and_relays_need_membership() {
    let server = TestServer::start(hub()).await;
    let (a, mut b) = pair(&server.url(), "one").await;
    let (c, mut d) = pair(&server.url(), "two").await;
    a.emit("ice-candidate", cand("one", 1)).await;
    c.emit("ice-candidate", cand("two", 2)).await;
    assert_eq!(b.next("ice-candidate").await["seq"], 1);
    assert_eq!(d.next("ice-candidate").await["seq"], 2);
    // c is not in room one: refused, and b hears nothing.
    let r = c.request("ice-candidate", cand("one", 3)).await;
    assert_eq!(r["error"]["code"], "not-in-room");
    let stray = b.quiet_for(Duration::from_millis(300)).await;
    assert!(stray.iter().all(|r| r.event != "ice-candidate"), "{stray:?}");
    let stray = d.quiet_for(Duration::from_millis(100)).await;
    assert!(stray.is_empty(), "{stray:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_of_every_kind_is_refused_readably_and_harms_no_one() {
    let server = TestServer::start(hub()).await;
    let (a, mut b) = pair(&server.url(), "calm").await;
    let mut bad = Client::connect(&server.url()).await;
    assert_eq!(bad.join(json!({"roomId": "mess", "peerId": "x"})).await["ok"], true);

    let huge = "x".repeat(200 * 1024);
    let garbage = [
        Value::Null,
        json!(42),
        json!(-1.5e300),
        json!(true),
        json!("not a room!"),
        json!([]),
        json!([1, [2, [3]]]),
        json!({}),
        json!({"roomId": null}),
        json!({"roomId": 7, "sdp": 1}),
        json!({"roomId": "../../etc/passwd"}),
        json!({"roomId": "mess", "sdp": {"type": "offer"}}),
        json!({"roomId": "mess", "sdp": {"type": 5, "sdp": []}}),
        json!({"roomId": "mess", "candidate": "not an object"}),
        json!({"roomId": "mess", "candidate": {"candidate": {"deep": [null]}}}),
        json!({"roomId": "mess", "to": "no such peer!", "candidate": {"candidate": ""}}),
        json!(huge),
        json!({"roomId": "mess", "sdp": {"type": "offer", "sdp": huge}}),
        json!({"roomId": "mess", "candidate": {"candidate": huge}}),
    ];
    for ev in ["join", "sdp-offer", "sdp-answer", "ice-candidate", "leave"] {
        for g in &garbage {
            if (ev == "join" || ev == "leave") && g.get("roomId") == Some(&json!("mess")) {
                continue; // well-formed for these two, extra fields and all
            }
            let r = bad.request(ev, g.clone()).await;
            assert_eq!(r["ok"], false, "{ev} {g:.80}: {r}");
            let code = r["error"]["code"].as_str().unwrap_or_else(|| panic!("{ev}: no code in {r}"));
            assert!(!code.is_empty());
            assert!(r["error"]["message"].is_string());
        }
        // Without an ack: an `error` event naming the event.
        bad.emit(ev, Value::Null).await;
        let e = bad.next("error").await;
        assert_eq!(e["event"], ev);
        assert!(e["code"].is_string(), "{e}");
    }
    // Unknown events are ignored; nothing comes back.
    bad.emit("no-such-event", json!({"x": 1})).await;
    bad.emit("__proto__", Value::Null).await;
    let got = bad.quiet_for(Duration::from_millis(200)).await;
    assert!(got.is_empty(), "{got:?}");

    // The calm room never noticed and still works.
    a.emit("sdp-offer", offer("calm")).await;
    assert_eq!(b.next("sdp-offer").await["from"], "a");
    let health = reqwest_get(&server, "/healthz").await;
    assert_eq!(health, "ok\n");
    let metrics = reqwest_get(&server, "/metrics").await;
    assert!(metrics.contains("ringlet_refusals_total{reason=\"invalid-payload\"}"));
    server.stop().await;
}

/// A minimal HTTP GET over a raw socket (the server speaks HTTP/1.1).
async fn reqwest_get(server: &TestServer, path: &str) -> String {
    http_get(server.addr, path, None).await.1
}

async fn http_get(addr: std::net::SocketAddr, path: &str, origin: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    let r = http(addr, "GET", path, &headers).await;
    (r.status, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_candidates_arrive_complete_and_in_order() {
    // Far past the default event rate on purpose: this is about order and
    // loss, not limits (tests/limits.rs covers those).
    let limits = ringlet_signal::LimitConfig { events_per_sec: 0.0, ..Default::default() };
    let server = TestServer::start_with(Config { hub: hub(), limits, ..test_config() }).await;
    let (a, mut b) = pair(&server.url(), "burst").await;
    let a = burst_arrives_in_order(a, &mut b, "burst", 10_000, None).await;
    assert_eq!(server.metrics.refusals(ringlet_proto::ErrorCode::PeerBacklogged), 0);
    drop(a);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_follow_a_peer_across_a_network_drop() {
    let server = TestServer::start(hub()).await;
    let mut a = Client::connect(&server.url()).await;
    let proxy = Proxy::start(server.addr).await;
    let b = Client::connect(&proxy.url()).await;
    assert_eq!(a.join(json!({"roomId": "r", "peerId": "a"})).await["ok"], true);
    assert_eq!(b.join(json!({"roomId": "r", "peerId": "b"})).await["ok"], true);
    a.next("peer-joined").await;

    proxy.cut();
    // The server notices the dead transport; wait until b is away.
    wait_for(|| server.metrics.render().contains("ringlet_away_peers 1")).await;
    a.emit("sdp-offer", offer("r")).await;
    for i in 0..5 {
        a.emit("ice-candidate", cand("r", i)).await;
    }
    wait_for(|| server.metrics.held() == 6).await;

    let mut b2 = Client::connect(&server.url()).await;
    let ack = b2.join(json!({"roomId": "r", "peerId": "b"})).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["resumed"], true);
    assert_eq!(ack["polite"], true);
    assert_eq!(b2.next("sdp-offer").await["from"], "a");
    for i in 0..5 {
        assert_eq!(b2.next("ice-candidate").await["seq"], i);
    }
    // a never heard that b left.
    let seen = a.quiet_for(Duration::from_millis(300)).await;
    assert!(seen.iter().all(|r| r.event != "peer-left"), "{seen:?}");
    assert_eq!(server.metrics.held(), 0);
    drop(b);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_expiry_tells_the_room_and_frees_the_place() {
    let server = TestServer::start(HubConfig { grace: Duration::from_millis(700), ..hub() }).await;
    let mut a = Client::connect(&server.url()).await;
    let proxy = Proxy::start(server.addr).await;
    let b = Client::connect(&proxy.url()).await;
    a.join(json!({"roomId": "r", "peerId": "a"})).await;
    b.join(json!({"roomId": "r", "peerId": "b"})).await;
    a.next("peer-joined").await;
    proxy.cut();
    let left = a.next("peer-left").await;
    assert_eq!(left, json!({"roomId": "r", "peerId": "b", "reason": "timeout"}));
    // The place is free: a newcomer gets in.
    let c = Client::connect(&server.url()).await;
    assert_eq!(c.join(json!("r")).await["ok"], true);
    assert!(server.metrics.render().contains("ringlet_away_peers 0"));
    drop(b);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_up_is_immediate() {
    let server = TestServer::start(hub()).await;
    let (mut a, b) = pair(&server.url(), "r").await;
    a.next("peer-joined").await;
    b.disconnect().await;
    assert_eq!(a.next("peer-left").await["reason"], "left");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_while_the_old_socket_lingers_takes_over() {
    let server = TestServer::start(hub()).await;
    let (a, old_b) = pair(&server.url(), "r").await;
    let mut new_b = Client::connect(&server.url()).await;
    let ack = new_b.join(json!({"roomId": "r", "peerId": "b"})).await;
    assert_eq!(ack["resumed"], true);
    a.emit("ice-candidate", cand("r", 9)).await;
    assert_eq!(new_b.next("ice-candidate").await["seq"], 9);
    let r = old_b.request("ice-candidate", cand("r", 1)).await;
    assert_eq!(r["error"]["code"], "not-in-room");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_browser_origins_are_refused_and_app_origins_allowed() {
    let server = TestServer::start_with(Config { hub: hub(), ..test_config() }).await;
    let path = "/socket.io/?EIO=4&transport=polling";
    let (status, _) = http_get(server.addr, path, Some("http://evil.example")).await;
    assert_eq!(status, 403);
    let (status, body) = http_get(server.addr, path, Some("tauri://localhost")).await;
    assert_eq!(status, 200, "{body}");
    let same = format!("http://{}", server.addr);
    let (status, _) = http_get(server.addr, path, Some(&same)).await;
    assert_eq!(status, 200);
    let (status, _) = http_get(server.addr, path, None).await;
    assert_eq!(status, 200, "native clients send no Origin");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_is_acked() {
    let server = TestServer::start(hub()).await;
    let c = Client::connect(&server.url()).await;
    assert_eq!(c.request("heartbeat", json!({})).await, json!({"ok": true}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_sockets_and_returns() {
    let server = TestServer::start(hub()).await;
    let (_a, _b) = pair(&server.url(), "r").await;
    let (metrics, addr) = (server.metrics.clone(), server.addr);
    assert_eq!(metrics.sockets(), 2);
    server.stop().await;
    wait_for(|| metrics.sockets() == 0).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after shutdown");
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition not reached in {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
