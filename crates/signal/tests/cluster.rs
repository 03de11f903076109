//! Cluster mode: two `ringlet-signal` processes sharing one real
//! `redis-server`, with real `rust_socketio` clients on each. Rooms,
//! relays, capacity, presence, held messages and grace expiry must work
//! across nodes, including when a node dies.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ringlet_testkit::{Proxy, RedisServer};
use serde_json::{json, Value};
use support::{Client, WAIT};

/// A `ringlet-signal --redis` process, killed (SIGKILL: no goodbye) on drop.
struct Node {
    addr: SocketAddr,
    child: Child,
}

impl Node {
    fn start(redis: &RedisServer, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringlet-signal"));
        if extra.contains(&"--require-token") {
            child.env("RINGLET_TOKEN_SECRET", "a cluster-wide secret of enough length");
        }
        if extra.contains(&"--turn-url") {
            child.env("RINGLET_TURN_SECRET", "a TURN secret");
        }
        let mut child = child
            .args(["--listen", "127.0.0.1:0", "--no-web", "--redis", &redis.url(), "--redis-node-ttl", "1s"])
            .args(extra)
            .env("RINGLET_LOG", std::env::var("RINGLET_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ringlet-signal");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("read the listening line");
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {line:?}"));
        Node { addr: addr.parse().unwrap(), child }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn metric(&self, name: &str) -> i64 {
        let body = support::http(self.addr, "GET", "/metrics", &[]).await.body;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    }

    /// Waits until a cluster-wide gauge (read back from Redis about three
    /// times a second) reads `want`.
    async fn wait_metric(&self, name: &str, want: i64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if self.metric(name).await == want {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{name} never reached {want}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn cluster(extra: &[&str]) -> (RedisServer, Node, Node) {
    let redis = RedisServer::start();
    let n1 = Node::start(&redis, extra);
    let n2 = Node::start(&redis, extra);
    (redis, n1, n2)
}

async fn joined(url: &str, room: &str, peer: &str) -> (Client, Value) {
    let c = Client::connect(url).await;
    let ack = c.join(json!({"roomId": room, "peerId": peer})).await;
    assert_eq!(ack["ok"], true, "{peer} joins {room}: {ack}");
    (c, ack)
}

fn candidate(room: &str, i: usize) -> Value {
    let candidate = format!("candidate:{i} 1 udp 1 192.0.2.1 {i} typ host");
    json!({"roomId": room, "candidate": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_both_ways_across_nodes_with_presence_and_no_echo() {
    let (_redis, n1, n2) = cluster(&[]);
    let (mut a, _) = joined(&n1.url(), "r1", "a").await;
    let (mut b, ack) = joined(&n2.url(), "r1", "b").await;
    assert_eq!(ack["peers"], json!([{"peerId": "a"}]), "b sees a, who is on the other node");
    assert_eq!(ack["polite"], true);
    assert_eq!(a.next("peer-joined").await["peerId"], "b");

    let offer = json!({"roomId": "r1", "sdp": {"type": "offer", "sdp": "v=0 offer"}});
    assert_eq!(a.request("sdp-offer", offer).await["ok"], true);
    let got = b.next("sdp-offer").await;
    assert_eq!((got["from"].as_str(), got["sdp"]["sdp"].as_str()), (Some("a"), Some("v=0 offer")));
    let answer = json!({"roomId": "r1", "sdp": {"type": "answer", "sdp": "v=0 answer"}});
    assert_eq!(b.request("sdp-answer", answer).await["ok"], true);
    assert_eq!(a.next("sdp-answer").await["from"], "b");
    // Neither hears its own message back.
    let echo = a.quiet_for(Duration::from_millis(300)).await;
    assert!(echo.iter().all(|r| r.event != "sdp-offer"), "{echo:?}");
    let echo = b.quiet_for(Duration::from_millis(100)).await;
    assert!(echo.iter().all(|r| r.event != "sdp-answer"), "{echo:?}");

    // A deliberate leave on node 2 is heard at once on node 1.
    assert_eq!(b.request("leave", json!({"roomId": "r1"})).await["ok"], true);
    let left = a.next("peer-left").await;
    assert_eq!((left["peerId"].as_str(), left["reason"].as_str()), (Some("b"), Some("left")));
    // A hang-up (namespace disconnect) too.
    let (c, _) = joined(&n2.url(), "r1", "c").await;
    assert_eq!(a.next("peer-joined").await["peerId"], "c");
    c.disconnect().await;
    let left = a.next("peer-left").await;
    assert_eq!((left["peerId"].as_str(), left["reason"].as_str()), (Some("c"), Some("left")));
    n1.wait_metric("ringlet_rooms", 1).await;
    a.disconnect().await;
    n2.wait_metric("ringlet_rooms", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_and_capacity_hold_across_nodes() {
    let (_redis, n1, n2) = cluster(&["--max-peers", "3"]);
    let (a, _) = joined(&n1.url(), "r2", "a").await;
    let (mut b, _) = joined(&n2.url(), "r2", "b").await;
    let (mut c, _) = joined(&n1.url(), "r2", "c").await;
    let d = Client::connect(&n2.url()).await;
    let full = d.join(json!({"roomId": "r2", "peerId": "d"})).await;
    assert_eq!(full["error"]["code"], "room-full", "{full}");

    // `to` reaches only its peer, whichever node either is on.
    let mut msg = candidate("r2", 1);
    msg["to"] = json!("b");
    assert_eq!(a.request("ice-candidate", msg).await["ok"], true);
    assert_eq!(b.next("ice-candidate").await["from"], "a");
    let mut msg = candidate("r2", 2);
    msg["to"] = json!("nobody");
    assert_eq!(a.request("ice-candidate", msg).await["error"]["code"], "unknown-peer");
    let heard = c.quiet_for(Duration::from_millis(300)).await;
    assert!(heard.iter().all(|r| r.event != "ice-candidate"), "c got a message for b: {heard:?}");

    // A seat frees up when someone leaves, on any node.
    c.disconnect().await;
    assert_eq!(b.next("peer-left").await["peerId"], "c");
    assert_eq!(d.join(json!({"roomId": "r2", "peerId": "d"})).await["ok"], true);
}

/// Messages for a peer whose transport dropped on node 1 are held in
/// Redis and delivered, in order, when it rejoins on node 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_messages_follow_a_peer_to_the_other_node() {
    let (_redis, n1, n2) = cluster(&["--grace", "30s"]);
    let proxy = Proxy::start(n1.addr).await;
    let (a, _) = joined(&proxy.url(), "r3", "a").await;
    let (b, _) = joined(&n2.url(), "r3", "b").await;
    proxy.cut();
    n2.wait_metric("ringlet_away_peers", 1).await;
    for i in 0..50 {
        assert_eq!(b.request("ice-candidate", candidate("r3", i)).await["ok"], true);
    }
    n2.wait_metric("ringlet_held_messages", 50).await;
    drop(a);

    let mut a = Client::connect(&n2.url()).await;
    let ack = a.join(json!({"roomId": "r3", "peerId": "a"})).await;
    assert_eq!((ack["ok"].as_bool(), ack["resumed"].as_bool()), (Some(true), Some(true)), "{ack}");
    for i in 0..50 {
        let got = a.next("ice-candidate").await;
        assert_eq!(got["candidate"]["candidate"], format!("candidate:{i} 1 udp 1 192.0.2.1 {i} typ host"));
        assert_eq!(got["from"], "b");
    }
    n1.wait_metric("ringlet_held_messages", 0).await;
    // Held messages are gone from Redis, and no one heard a `peer-left`.
    let mut b = b;
    let heard = b.quiet_for(Duration::from_millis(200)).await;
    assert!(heard.iter().all(|r| r.event != "peer-left"), "{heard:?}");
}

/// The node holding a peer's socket dies (SIGKILL): no node saw the
/// transport drop, yet the other node's sweep turns the peer away and,
/// when its grace ends, the room hears `peer-left` (timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_expires_even_when_the_peers_node_died() {
    let (_redis, mut n1, n2) = cluster(&["--grace", "1s"]);
    let (_a, _) = joined(&n1.url(), "r4", "a").await;
    let (mut b, _) = joined(&n2.url(), "r4", "b").await;
    n1.kill();
    let left = b.next("peer-left").await;
    assert_eq!((left["peerId"].as_str(), left["reason"].as_str()), (Some("a"), Some("timeout")));
    n2.wait_metric("ringlet_away_peers", 0).await;
    // The seat is free again.
    let (_c, ack) = joined(&n2.url(), "r4", "c").await;
    assert_eq!(ack["peers"], json!([{"peerId": "b"}]));
}

/// One sender's burst keeps its order across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_keeps_its_order_across_nodes() {
    const N: usize = 2000;
    // The event budget (a per-socket limit) allows this burst at once.
    let (_redis, n1, n2) = cluster(&["--event-burst", "5000"]);
    let (a, _) = joined(&n1.url(), "r5", "a").await;
    let (mut b, _) = joined(&n2.url(), "r5", "b").await;
    for i in 0..N {
        a.emit("ice-candidate", candidate("r5", i)).await;
    }
    for i in 0..N {
        let got = b.next("ice-candidate").await;
        assert_eq!(got["candidate"]["candidate"], format!("candidate:{i} 1 udp 1 192.0.2.1 {i} typ host"), "message {i}");
    }
    assert_eq!(n1.metric("ringlet_refusals_total{reason=\"rate-limited\"}").await, 0);
}

fn signal(node: &Node, sig: &str) {
    let ok = Command::new("kill").args([sig, &node.child.id().to_string()]).status().expect("kill").success();
    assert!(ok, "kill {sig}");
}

/// A node that stops gracefully (SIGTERM) hands its peers over: they are
/// away, not gone, and resume on the other node with what was held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutting_down_leaves_its_peers_a_way_back() {
    let (_redis, mut n1, n2) = cluster(&["--grace", "30s"]);
    let (_a, _) = joined(&n1.url(), "r6", "a").await;
    let (mut b, _) = joined(&n2.url(), "r6", "b").await;
    signal(&n1, "-TERM");
    assert!(n1.child.wait().expect("exit").success(), "a clean exit");
    n2.wait_metric("ringlet_away_peers", 1).await;
    assert_eq!(b.request("ice-candidate", candidate("r6", 7)).await["ok"], true);
    let mut a = Client::connect(&n2.url()).await;
    let ack = a.join(json!({"roomId": "r6", "peerId": "a"})).await;
    assert_eq!(ack["resumed"], true, "{ack}");
    assert_eq!(a.next("ice-candidate").await["from"], "b");
    let heard = b.quiet_for(Duration::from_millis(200)).await;
    assert!(heard.iter().all(|r| r.event != "peer-left"), "{heard:?}");
}

/// A node that stalls past its TTL is declared dead by the other's sweep
/// (its peers go away); when it wakes up it closes its sockets so their
/// clients rejoin, rather than speak for peers Redis no longer has online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_that_was_declared_dead_lets_its_clients_rejoin() {
    let (_redis, n1, n2) = cluster(&["--grace", "30s"]);
    let (_a, _) = joined(&n1.url(), "r7", "a").await;
    let (_b, _) = joined(&n2.url(), "r7", "b").await;
    signal(&n1, "-STOP");
    n2.wait_metric("ringlet_away_peers", 1).await;
    signal(&n1, "-CONT");
    n1.wait_metric("ringlet_connected_sockets", 0).await;
    let a = Client::connect(&n1.url()).await;
    let ack = a.join(json!({"roomId": "r7", "peerId": "a"})).await;
    assert_eq!(ack["resumed"], true, "{ack}");
    n2.wait_metric("ringlet_away_peers", 0).await;
}

/// The single-node checks apply on every node: invite tokens (minted by
/// one node, accepted by another: they share the secret), rooms per
/// socket, and the room limit, which counts the whole cluster's rooms; and
/// the ack carries TURN credentials as on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_limits_apply_across_nodes() {
    let limits = ["--require-token", "--max-rooms", "1", "--max-rooms-per-socket", "1"];
    let (_redis, n1, n2) = cluster(&[&limits[..], &["--turn-url", "turn:127.0.0.1:3478"]].concat());
    let created = support::http(n1.addr, "POST", "/api/rooms", &[]).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created: Value = serde_json::from_str(&created.body).unwrap();
    let (room, token) = (created["roomId"].as_str().unwrap(), created["token"].as_str().unwrap());

    let a = Client::connect(&n2.url()).await;
    let ack = a.join(json!({"roomId": room, "peerId": "a"})).await;
    assert_eq!(ack["error"]["code"], "token-required", "{ack}");
    let ack = a.join(json!({"roomId": room, "peerId": "a", "token": token})).await;
    assert_eq!(ack["ok"], true, "a token from node 1 opens the room on node 2: {ack}");
    assert!(ack["token"].is_string(), "a fresh token in the ack: {ack}");
    let turn = &ack["iceServers"][0];
    assert_eq!(turn["urls"], json!(["turn:127.0.0.1:3478"]), "{ack}");
    assert!(turn["username"].as_str().unwrap().ends_with(":a"), "a TURN credential for peer a: {ack}");

    // One room per socket (with a valid invite to a second room).
    let second: Value =
        serde_json::from_str(&support::http(n1.addr, "POST", "/api/rooms", &[]).await.body).unwrap();
    let invite = json!({"roomId": second["roomId"], "peerId": "a", "token": second["token"]});
    assert_eq!(a.join(invite).await["error"]["code"], "limit-exceeded");
    // One room in the whole cluster: a second one, on the other node, is refused.
    let b = Client::connect(&n1.url()).await;
    let ack = b.join(json!({"roomId": second["roomId"], "peerId": "b", "token": second["token"]})).await;
    assert_eq!(ack["error"]["code"], "limit-exceeded", "{ack}");
    assert!(ack["error"]["message"].as_str().unwrap().contains("as many rooms"), "{ack}");
    let ack = b.join(json!({"roomId": room, "peerId": "b", "token": token})).await;
    assert_eq!(ack["ok"], true, "{ack}");
}

/// After a Redis restart the adapter's subscription is gone (it does not
/// reconnect): the node says so on `/healthz` (503), so a load balancer
/// stops sending it clients and an operator knows to restart it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_fan_out_fails_its_health_check() {
    let (mut redis, n1, _n2) = cluster(&[]);
    assert_eq!(support::http(n1.addr, "GET", "/healthz", &[]).await.status, 200);
    redis.restart();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = support::http(n1.addr, "GET", "/healthz", &[]).await;
        if r.status == 503 {
            assert!(r.body.contains("restart this node"), "{}", r.body);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {} after the restart", r.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A peer resumes on the other node while messages keep coming: it gets
/// every one, in order, with no gap — what was held, then what arrived
/// while that was being handed over, then the live stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stays_in_order_across_a_resume_on_the_other_node() {
    const N: usize = 400;
    let (_redis, n1, n2) = cluster(&["--grace", "30s", "--event-burst", "5000"]);
    let proxy = Proxy::start(n1.addr).await;
    let (a, _) = joined(&proxy.url(), "r8", "a").await;
    let (b, _) = joined(&n2.url(), "r8", "b").await;
    proxy.cut();
    n2.wait_metric("ringlet_away_peers", 1).await;
    drop(a);
    let sender = tokio::spawn(async move {
        for i in 0..N {
            assert_eq!(b.request("ice-candidate", candidate("r8", i)).await["ok"], true, "message {i}");
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        b
    });
    // Resume once a good part of the stream is held.
    let deadline = tokio::time::Instant::now() + WAIT;
    while n2.metric("ringlet_held_messages").await < 50 {
        assert!(tokio::time::Instant::now() < deadline, "nothing held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut a = Client::connect(&n2.url()).await;
    let ack = a.join(json!({"roomId": "r8", "peerId": "a"})).await;
    assert_eq!(ack["resumed"], true, "{ack}");
    for i in 0..N {
        let got = a.next("ice-candidate").await;
        assert_eq!(got["candidate"]["candidate"], format!("candidate:{i} 1 udp 1 192.0.2.1 {i} typ host"), "message {i}");
    }
    sender.await.unwrap();
    n2.wait_metric("ringlet_held_messages", 0).await;
}
