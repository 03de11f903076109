//! The lean WebSocket transport (src/lean) from the outside: what a raw
//! WebSocket client sees on the wire, the one hub it shares with
//! socketioxide's polling clients, and the socketioxide engine that still
//! serves direct websockets when asked to (`WsEngine::Socketioxide`).
//!
//! The raw client is tokio-tungstenite: it frames and masks, nothing more,
//! so every Engine.IO and Socket.IO packet here is written out by hand.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ringlet_proto::ErrorCode;
use ringlet_signal::metrics::Limit;
use ringlet_signal::{Config, HubConfig, LimitConfig, WsEngine, MAX_MESSAGE};
use rust_socketio::TransportType;
use serde_json::{json, Value};
use support::{answer, burst_arrives_in_order, cand, offer, test_config, Client, TestServer, WAIT};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a raw client reads next.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame and its code.
    Close(Option<u16>),
    /// The stream ended (or failed) without a close frame.
    End,
}

/// A raw WebSocket client: on the lean path unless the server is
/// configured with `WsEngine::Socketioxide`.
struct Raw {
    ws: Ws,
}

fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

impl Raw {
    /// Opens a direct WebSocket; returns it with the Engine.IO open
    /// packet's text (its first frame).
    async fn open(addr: SocketAddr) -> (Raw, String) {
        let (ws, res) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(ws_url(addr)))
            .await
            .expect("handshake in time")
            .expect("handshake");
        assert_eq!(res.status(), 101);
        let mut raw = Raw { ws };
        let open = raw.text().await;
        (raw, open)
    }

    /// A WebSocket over a TCP stream the test set up itself (socket
    /// options), after its Engine.IO open packet.
    async fn over(stream: tokio::net::TcpStream, addr: SocketAddr) -> Raw {
        let plain = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(ws_url(addr), plain))
            .await
            .expect("handshake in time")
            .expect("handshake");
        let mut raw = Raw { ws };
        let open = raw.text().await;
        assert!(open.starts_with("0{"), "{open}");
        raw
    }

    /// Opens and connects to `/signaling`; returns the socket id.
    async fn connect(addr: SocketAddr) -> (Raw, String) {
        let (mut raw, _) = Raw::open(addr).await;
        raw.send("40/signaling,").await;
        let sid = raw.connected().await;
        (raw, sid)
    }

    /// Reads the answer to a CONNECT, which must be an acceptance: the sid.
    async fn connected(&mut self) -> String {
        let mut got = self.text().await;
        // socketioxide pings as soon as a session opens.
        while got == "2" {
            self.send("3").await;
            got = self.text().await;
        }
        let body = got.strip_prefix("40/signaling,").unwrap_or_else(|| panic!("not a CONNECT: {got}"));
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"));
        let sid = v["sid"].as_str().unwrap_or_else(|| panic!("no sid in {body}")).to_owned();
        assert!(!sid.is_empty());
        sid
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    async fn send_msg(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    async fn recv(&mut self) -> Got {
        match tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame (or the end) in time") {
            None | Some(Err(_)) => Got::End,
            Some(Ok(m)) => match m {
                Message::Text(t) => Got::Text(t.to_string()),
                Message::Binary(b) => Got::Binary(b.to_vec()),
                Message::Ping(p) => Got::Ping(p.to_vec()),
                Message::Pong(p) => Got::Pong(p.to_vec()),
                Message::Close(c) => Got::Close(c.map(|c| u16::from(c.code))),
                Message::Frame(_) => unreachable!("only raw reads return frames"),
            },
        }
    }

    async fn text(&mut self) -> String {
        match self.recv().await {
            Got::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The ack with id `id`: `43/signaling,<id>[arg]`; returns `arg`.
    /// Pings that come first are answered.
    async fn ack(&mut self, id: u64) -> Value {
        loop {
            let t = self.text().await;
            if t == "2" {
                self.send("3").await;
                continue;
            }
            if let Some((got, arg)) = as_ack(&t) {
                if got == id {
                    return arg;
                }
            }
        }
    }

    /// Emits `ev` with an ack id and returns the ack's argument.
    async fn request(&mut self, id: u64, ev: &str, data: Value) -> Value {
        self.send(&format!("42/signaling,{id}{}", json!([ev, data]))).await;
        self.ack(id).await
    }

    /// The next event named `ev`, skipping other packets.
    async fn event(&mut self, ev: &str) -> Value {
        loop {
            if let Some((name, data)) = as_event(&self.text().await) {
                if name == ev {
                    return data;
                }
            }
        }
    }

    /// Reads until the server closes: the texts that came first, and how it
    /// ended (a close frame and its code, or the stream's end).
    async fn until_closed(&mut self) -> (Vec<String>, Got) {
        let mut texts = vec![];
        loop {
            match self.recv().await {
                Got::Text(t) => texts.push(t),
                end @ (Got::Close(_) | Got::End) => return (texts, end),
                Got::Ping(_) | Got::Pong(_) | Got::Binary(_) => {}
            }
        }
    }
}

/// `43/signaling,<id>[arg]` as (id, arg); a malformed ack fails the test.
fn as_ack(text: &str) -> Option<(u64, Value)> {
    let body = text.strip_prefix("43/signaling,")?;
    let at = body.find('[').unwrap_or_else(|| panic!("an ack without arguments: {text}"));
    let id = body[..at].parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    let mut args: Vec<Value> = serde_json::from_str(&body[at..]).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(args.len(), 1, "{text}");
    Some((id, args.swap_remove(0)))
}

/// `42/signaling,["name",data]` as (name, data).
fn as_event(text: &str) -> Option<(String, Value)> {
    let body = text.strip_prefix("42/signaling,")?;
    let mut v: Vec<Value> = serde_json::from_str(body).ok()?;
    let data = if v.len() > 1 { v.swap_remove(1) } else { Value::Null };
    Some((v.first()?.as_str()?.to_owned(), data))
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const RELAYS: [&str; 3] = ["sdp-offer", "sdp-answer", "ice-candidate"];

// ------------------------------------------------------- one hub, two engines

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lean_websocket_and_a_polling_peer_share_one_room() {
    let server = TestServer::start(HubConfig { grace: Duration::from_secs(5), ..HubConfig::default() }).await;
    // rust_socketio's websocket transport opens its WebSocket directly (no
    // polling handshake first), so it is served by the lean transport;
    // polling is socketioxide's. Each order: either one joins first, offers,
    // and is told the other left.
    let pairings = [
        ("lean-then-polling", TransportType::Websocket, TransportType::Polling),
        ("polling-then-lean", TransportType::Polling, TransportType::Websocket),
    ];
    for (name, ta, tb) in pairings {
        wait_for("the previous round's hang-ups", || server.metrics.sockets() == 0).await;
        let mut a = Client::connect_with(&server.url(), ta).await;
        let mut b = Client::connect_with(&server.url(), tb).await;
        let room = format!("mixed-{name}");
        let ja = a.join(json!({"roomId": room, "peerId": "a"})).await;
        assert_eq!(ja["ok"], true, "{name}: {ja}");
        let jb = b.join(json!({"roomId": room, "peerId": "b"})).await;
        assert_eq!(jb["ok"], true, "{name}: {jb}");
        assert_eq!(jb["peers"], json!([{"peerId": "a"}]), "{name}");
        assert_eq!(a.next("peer-joined").await, json!({"roomId": room, "peerId": "b"}), "{name}");

        assert_eq!(a.request("sdp-offer", offer(&room)).await, json!({"ok": true}), "{name}");
        let got = b.next("sdp-offer").await;
        assert_eq!((got["from"].as_str(), got["sdp"]["type"].as_str()), (Some("a"), Some("offer")), "{name}: {got}");
        assert_eq!(got["roomId"], room.as_str());
        b.emit("sdp-answer", answer(&room)).await;
        assert_eq!(a.next("sdp-answer").await["from"], "b", "{name}");

        assert_eq!(a.request("ice-candidate", cand(&room, 1)).await, json!({"ok": true}), "{name}");
        assert_eq!(b.request("ice-candidate", cand(&room, 2)).await, json!({"ok": true}), "{name}");
        let (at_b, at_a) = (b.next("ice-candidate").await, a.next("ice-candidate").await);
        assert_eq!((at_b["seq"].as_u64(), at_b["from"].as_str()), (Some(1), Some("a")), "{name}: {at_b}");
        assert_eq!((at_a["seq"].as_u64(), at_a["from"].as_str()), (Some(2), Some("b")), "{name}: {at_a}");

        // No echo: each heard the other once and itself never.
        for (who, c) in [("a", &mut a), ("b", &mut b)] {
            let stray = c.quiet_for(Duration::from_millis(300)).await;
            assert!(stray.iter().all(|r| !RELAYS.contains(&r.event.as_str())), "{name}: {who} got {stray:?}");
        }
        b.disconnect().await;
        assert_eq!(a.next("peer-left").await, json!({"roomId": room, "peerId": "b", "reason": "left"}), "{name}");
        a.disconnect().await;
    }

    // The same with a raw client, which is the lean path for certain.
    wait_for("the last round's hang-ups", || server.metrics.sockets() == 0).await;
    let (mut raw, _) = Raw::connect(server.addr).await;
    let mut p = Client::connect_with(&server.url(), TransportType::Polling).await;
    let ack = raw.request(1, "join", json!({"roomId": "raw-mixed", "peerId": "r"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(p.join(json!({"roomId": "raw-mixed", "peerId": "p"})).await["ok"], true);
    assert_eq!(raw.event("peer-joined").await, json!({"roomId": "raw-mixed", "peerId": "p"}));
    assert_eq!(raw.request(2, "sdp-offer", offer("raw-mixed")).await, json!({"ok": true}));
    assert_eq!(p.next("sdp-offer").await["from"], "r");
    p.emit("ice-candidate", cand("raw-mixed", 7)).await;
    let got = raw.event("ice-candidate").await;
    assert_eq!((got["seq"].as_u64(), got["from"].as_str()), (Some(7), Some("p")), "{got}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socketioxide_websocket_engine_still_relays_in_order() {
    // Far past the default event rate on purpose: this is about order and
    // loss on the old path, not limits.
    let limits = LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() };
    let config = Config { websocket: WsEngine::Socketioxide, limits, ..test_config() };
    let server = TestServer::start_with(config).await;
    let a = Client::connect(&server.url()).await;
    let mut b = Client::connect(&server.url()).await;
    assert_eq!(a.join(json!({"roomId": "old", "peerId": "a"})).await["ok"], true);
    assert_eq!(b.join(json!({"roomId": "old", "peerId": "b"})).await["ok"], true);
    assert_eq!(a.request("sdp-offer", offer("old")).await, json!({"ok": true}));
    assert_eq!(b.next("sdp-offer").await["from"], "a");

    let a = burst_arrives_in_order(a, &mut b, "old", 1_000, Some("a")).await;
    assert_eq!(server.metrics.refusals(ErrorCode::PeerBacklogged), 0);

    // A raw direct websocket is served here too, and by socketioxide: it
    // pings as soon as a session opens, where the lean transport would wait
    // the 25 s interval (longer than `raw.text()` waits).
    let (mut raw, open) = Raw::open(server.addr).await;
    assert!(open.starts_with("0{"), "{open}");
    raw.send("40/signaling,").await;
    let (mut pinged, mut connected) = (false, false);
    while !(pinged && connected) {
        let t = raw.text().await;
        if t == "2" {
            pinged = true;
            raw.send("3").await;
        } else {
            assert!(t.starts_with(r#"40/signaling,{"sid":"#), "{t}");
            connected = true;
        }
    }
    assert_eq!(raw.request(1, "heartbeat", json!({})).await, json!({"ok": true}));
    drop(a);
    server.stop().await;
}

// ------------------------------------------------------------ the raw wire

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_frame_is_the_open_packet_with_the_servers_settings() {
    let (ping_interval, ping_timeout) = (Duration::from_millis(7_000), Duration::from_millis(11_000));
    let config = Config { ping_interval, ping_timeout, ..test_config() };
    let server = TestServer::start_with(config).await;
    let (_a, open) = Raw::open(server.addr).await;
    assert!(open.starts_with(r#"0{"sid":""#), "{open}");
    let v: Value = serde_json::from_str(&open[1..]).unwrap_or_else(|e| panic!("{open}: {e}"));
    let sid = v["sid"].as_str().expect("a sid").to_owned();
    assert!(!sid.is_empty());
    assert_eq!(v["upgrades"], json!([]), "{open}");
    assert_eq!(v["pingInterval"], 7_000, "{open}");
    assert_eq!(v["pingTimeout"], 11_000, "{open}");
    assert_eq!(v["maxPayload"], MAX_MESSAGE, "{open}");
    assert_eq!(v.as_object().unwrap().len(), 5, "nothing else: {open}");
    let (_b, other) = Raw::open(server.addr).await;
    let other: Value = serde_json::from_str(&other[1..]).unwrap();
    assert_ne!(other["sid"], sid.as_str(), "each connection its own session id");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_answers_per_namespace_as_socketio_does() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut c, _) = Raw::open(server.addr).await;
    c.send("40/other,").await;
    assert_eq!(c.text().await, r#"44/other,{"message":"Invalid namespace"}"#);
    c.send("40").await;
    assert_eq!(c.text().await, r#"44{"message":"Invalid namespace"}"#);
    assert_eq!(server.metrics.sockets(), 0, "refused namespaces connect nothing");

    c.send("40/signaling,").await;
    let sid = c.connected().await;
    wait_for("the connection in the hub", || server.metrics.sockets() == 1).await;
    // A repeated CONNECT gets the same answer, not a second connection.
    c.send("40/signaling,").await;
    assert_eq!(c.connected().await, sid);
    assert_eq!(c.request(1, "heartbeat", json!({})).await, json!({"ok": true}));
    assert_eq!(server.metrics.sockets(), 1);

    // A namespace DISCONNECT leaves the hub; the WebSocket stays open and
    // may connect again, as a new socket.
    c.send("41/signaling,").await;
    wait_for("the DISCONNECT to leave the hub", || server.metrics.sockets() == 0).await;
    c.send("40/signaling,").await;
    let again = c.connected().await;
    assert_ne!(again, sid);
    assert_eq!(c.request(2, "heartbeat", json!({})).await, json!({"ok": true}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_an_ack_id_is_acked_with_that_id() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    c.send(r#"42/signaling,7["join",{"roomId":"r1"}]"#).await;
    let t = c.text().await;
    assert!(t.starts_with(r#"43/signaling,7[{"ok":true,"#), "{t}");
    let ack: Vec<Value> = serde_json::from_str(&t["43/signaling,7".len()..]).unwrap();
    assert_eq!(ack[0]["roomId"], "r1", "{t}");
    assert!(ack[0]["peerId"].is_string(), "{t}");
    c.send(r#"42/signaling,123456["heartbeat",{}]"#).await;
    assert_eq!(c.text().await, r#"43/signaling,123456[{"ok":true}]"#);
    // Refusals go to the ack too, and without an ack id as an `error` event.
    c.send(r#"42/signaling,8["sdp-offer",{"roomId":"elsewhere","sdp":{"type":"offer","sdp":"v=0"}}]"#).await;
    let refused = c.ack(8).await;
    let got = (refused["ok"].as_bool(), refused["error"]["code"].as_str());
    assert_eq!(got, (Some(false), Some("not-in-room")), "{refused}");
    c.send(r#"42/signaling,["join",null]"#).await;
    let e = c.event("error").await;
    assert_eq!((e["event"].as_str(), e["code"].as_str()), (Some("join"), Some("invalid-payload")), "{e}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_ping_gets_a_pong_with_its_payload() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    c.send_msg(Message::Ping(b"are you there?".to_vec().into())).await;
    assert_eq!(c.recv().await, Got::Pong(b"are you there?".to_vec()));
    c.send_msg(Message::Ping(Vec::new().into())).await;
    assert_eq!(c.recv().await, Got::Pong(vec![]));
    // An unsolicited pong is fine too.
    c.send_msg(Message::Pong(b"x".to_vec().into())).await;
    assert_eq!(c.request(1, "heartbeat", json!({})).await, json!({"ok": true}));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_attachments_are_refused_readably_and_the_connection_stays_usable() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    assert_eq!(c.request(1, "join", json!({"roomId": "bin", "peerId": "c"})).await["ok"], true);

    c.send(r#"451-/signaling,3["ice-candidate",{"_placeholder":true,"num":0}]"#).await;
    c.send_msg(Message::Binary(vec![1, 2, 3].into())).await;
    let t = c.text().await;
    assert!(t.starts_with(r#"43/signaling,3[{"ok":false,"error":{"code":"invalid-payload","#), "{t}");
    let ack: Vec<Value> = serde_json::from_str(&t["43/signaling,3".len()..]).unwrap();
    assert!(ack[0]["error"]["message"].as_str().unwrap().contains("binary"), "{t}");

    // Without an ack id: an `error` event naming the event. Two
    // attachments: the refusal waits for both.
    c.send(r#"452-/signaling,["sdp-offer",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#).await;
    c.send_msg(Message::Binary(vec![4].into())).await;
    c.send_msg(Message::Binary(vec![5].into())).await;
    let e = c.event("error").await;
    assert_eq!((e["code"].as_str(), e["event"].as_str()), (Some("invalid-payload"), Some("sdp-offer")), "{e}");

    // Still connected and in its room.
    assert_eq!(c.request(4, "heartbeat", json!({})).await, json!({"ok": true}));
    assert_eq!(c.request(5, "ice-candidate", cand("bin", 1)).await, json!({"ok": true}));
    assert!(server.metrics.refusals(ErrorCode::InvalidPayload) >= 2);
    assert_eq!(server.metrics.sockets(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_no_client_sends_close_the_connection_and_others_carry_on() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut bystander, _) = Raw::connect(server.addr).await;
    assert_eq!(bystander.request(1, "join", json!({"roomId": "calm", "peerId": "s"})).await["ok"], true);
    // `49`: a message whose Socket.IO packet type does not exist. `4`: a
    // message with no Socket.IO packet at all. `5`: an Engine.IO upgrade on
    // a connection that is already a websocket. `6`: a noop, polling-only.
    for (i, bad) in ["49", "4", "5", "6"].into_iter().enumerate() {
        let (mut c, _) = Raw::connect(server.addr).await;
        wait_for("the new connection", || server.metrics.sockets() == 2).await;
        c.send(bad).await;
        let (texts, end) = c.until_closed().await;
        assert!(texts.is_empty(), "{bad}: {texts:?}");
        assert_eq!(end, Got::Close(Some(1002)), "{bad}");
        wait_for("the closed connection to leave the hub", || server.metrics.sockets() == 1).await;
        let id = 10 + i as u64;
        assert_eq!(bystander.request(id, "heartbeat", json!({})).await, json!({"ok": true}), "after {bad}");
    }
    // New connections are still served.
    let (mut fresh, _) = Raw::connect(server.addr).await;
    assert_eq!(fresh.request(1, "join", json!({"roomId": "calm", "peerId": "f"})).await["ok"], true);
    assert_eq!(bystander.event("peer-joined").await["peerId"], "f");
    server.stop().await;
}

/// A WebSocket frame header, masked as a client's, announcing `len`
/// payload bytes.
fn client_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![0x80 | opcode, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_max_message_is_refused_with_1009() {
    let server = TestServer::start(HubConfig::default()).await;

    // Up to the limit, a large event is read and refused readably.
    let (mut c, _) = Raw::connect(server.addr).await;
    let sdp = "x".repeat(MAX_MESSAGE - 200);
    let big = format!("42/signaling,1{}", json!(["sdp-offer", {"roomId": "r", "sdp": {"type": "offer", "sdp": sdp}}]));
    assert!(big.len() <= MAX_MESSAGE && big.len() > MAX_MESSAGE - 1024, "{}", big.len());
    c.send(&big).await;
    let ack = c.ack(1).await;
    assert_eq!(ack["error"]["code"], "too-large", "{ack:.200}");

    // One byte over, announced in a frame header: refused from the
    // header, before any of it is sent (so before it is buffered).
    let (mut over, _) = Raw::connect(server.addr).await;
    wait_for("both connections", || server.metrics.sockets() == 2).await;
    let s = over.ws.get_mut();
    s.write_all(&client_header(1, MAX_MESSAGE as u64 + 1)).await.unwrap();
    s.flush().await.unwrap();
    let (texts, end) = over.until_closed().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(end, Got::Close(Some(1009)));
    wait_for("the refused connection to leave the hub", || server.metrics.sockets() == 1).await;

    // The same for a binary frame, and for a whole oversized message
    // actually sent (the server may reset the connection while the client
    // is still writing it: then the stream just ends).
    let (mut bin, _) = Raw::connect(server.addr).await;
    let s = bin.ws.get_mut();
    s.write_all(&client_header(2, u64::MAX >> 1)).await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(bin.until_closed().await.1, Got::Close(Some(1009)));
    let (mut whole, _) = Raw::connect(server.addr).await;
    let _ = whole.ws.send(Message::text("4".repeat(MAX_MESSAGE + 1))).await;
    let (texts, end) = whole.until_closed().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert!(matches!(end, Got::Close(Some(1009)) | Got::End), "{end:?}");

    // The connection that stayed within the limit is unharmed.
    assert_eq!(c.request(2, "heartbeat", json!({})).await, json!({"ok": true}));
    wait_for("only the first connection left", || server.metrics.sockets() == 1).await;
    server.stop().await;
}

/// Until it has connected to `/signaling`, a socket may send only small
/// messages (a CONNECT, pings): it does not count against its address
/// yet, so it must not make the server buffer megabytes for it. The limit
/// rises with the CONNECT, even for an event in the same write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconnected_socket_may_send_only_small_messages() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut early, _) = Raw::open(server.addr).await;
    early.send(&format!("4{}", "x".repeat(20 * 1024))).await;
    let (texts, end) = early.until_closed().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(end, Got::Close(Some(1009)));

    let (mut c, _) = Raw::open(server.addr).await;
    let sdp = "a=x ".repeat(15_000); // 60 KB, under the 64 KiB SDP limit
    let offer = json!(["sdp-offer", {"roomId": "r", "sdp": {"type": "offer", "sdp": sdp}}]);
    c.ws.feed(Message::text("40/signaling,")).await.unwrap();
    c.ws.feed(Message::text(format!("42/signaling,1{offer}"))).await.unwrap();
    c.ws.flush().await.unwrap();
    c.connected().await;
    let ack = c.ack(1).await;
    assert_eq!(ack["error"]["code"], "not-in-room", "read, and refused for what it says: {ack:.200}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engineio_heartbeat_keeps_answering_clients_and_drops_silent_ones() {
    let config =
        Config { ping_interval: Duration::from_millis(200), ping_timeout: Duration::from_millis(300), ..test_config() };
    let server = TestServer::start_with(config).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    wait_for("the connection in the hub", || server.metrics.sockets() == 1).await;

    // Answering every ping keeps it open well past interval + timeout.
    let start = tokio::time::Instant::now();
    let mut pings = 0;
    while pings < 3 || start.elapsed() < Duration::from_millis(1_200) {
        match c.recv().await {
            Got::Text(t) if t == "2" => {
                pings += 1;
                c.send("3").await;
            }
            other => panic!("after {pings} pings and {:?}: {other:?}", start.elapsed()),
        }
    }
    assert_eq!(c.request(1, "heartbeat", json!({})).await, json!({"ok": true}));
    assert_eq!(server.metrics.sockets(), 1);

    // A client that stops answering is closed, and leaves the hub.
    let (texts, end) = c.until_closed().await;
    assert!(texts.iter().all(|t| t == "2"), "only pings: {texts:?}");
    assert!(!texts.is_empty(), "it was pinged before being dropped");
    assert_eq!(end, Got::Close(Some(1000)));
    wait_for("the silent client to leave the hub", || server.metrics.sockets() == 0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_says_goodbye_on_every_connection() {
    let server = TestServer::start(HubConfig::default()).await;
    let (mut connected, _) = Raw::connect(server.addr).await;
    assert_eq!(connected.request(1, "join", json!({"roomId": "r", "peerId": "a"})).await["ok"], true);
    // Open but never connected to `/signaling`: no Socket.IO goodbye.
    let (mut open_only, _) = Raw::open(server.addr).await;
    let (metrics, addr) = (server.metrics.clone(), server.addr);
    server.stop().await;

    let (texts, end) = connected.until_closed().await;
    assert_eq!(texts, ["41/signaling,"]);
    assert_eq!(end, Got::Close(Some(1001)));
    let (texts, end) = open_only.until_closed().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(end, Got::Close(Some(1001)));
    assert_eq!(metrics.sockets(), 0);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still listening after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_connection_limit_covers_lean_connections() {
    let limits = LimitConfig { connections_per_ip: 1, ..LimitConfig::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }).await;
    let (mut first, _) = Raw::connect(server.addr).await;
    let (mut second, _) = Raw::open(server.addr).await;
    second.send("40/signaling,").await;
    let message = "limit-exceeded: too many connections from your address (at most 1); close some and retry";
    assert_eq!(second.text().await, format!(r#"44/signaling,{{"message":"{message}"}}"#));
    assert_eq!(server.metrics.limit_hits(Limit::ConnectionsPerIp), 1);
    assert_eq!(server.metrics.refusals(ErrorCode::LimitExceeded), 1);
    assert_eq!(server.metrics.sockets(), 1);
    // The refused one keeps its WebSocket; events before a CONNECT are
    // ignored.
    second.send(r#"42/signaling,1["heartbeat",{}]"#).await;

    // A WebSocket counts while it is open: the first leaving `/signaling`
    // but keeping its WebSocket frees nothing (or one address could keep
    // any number of sockets by connecting and disconnecting in turn).
    first.send("41/signaling,").await;
    wait_for("the first to leave the hub", || server.metrics.sockets() == 0).await;
    second.send("40/signaling,").await;
    assert!(second.text().await.starts_with(r#"44/signaling,{"message":"limit-exceeded: "#));
    assert_eq!(server.metrics.limit_hits(Limit::ConnectionsPerIp), 2);

    // Once the first closes its WebSocket, its place is free for a CONNECT
    // on the second's; and a third is now the one refused.
    first.ws.close(None).await.unwrap();
    first.until_closed().await;
    let mut tries = 0;
    loop {
        second.send("40/signaling,").await;
        let got = second.text().await;
        if got.starts_with("40/signaling,") {
            break;
        }
        assert!(got.starts_with("44/signaling,") && tries < 100, "{got}");
        tries += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.send(r#"42/signaling,2["heartbeat",{}]"#).await;
    assert_eq!(second.text().await, r#"43/signaling,2[{"ok":true}]"#, "no ack for the event sent unconnected");
    let (mut third, _) = Raw::open(server.addr).await;
    third.send("40/signaling,").await;
    assert!(third.text().await.starts_with(r#"44/signaling,{"message":"limit-exceeded: "#));
    // Past its places, an address gets as many again to wait in (to read
    // a refusal, retry a CONNECT), and no more: a fourth is closed at once.
    let (mut fourth, _) = Raw::open(server.addr).await;
    assert_eq!(fourth.until_closed().await, (vec![], Got::Close(Some(1008))));
    // Its waiting place is free again once the third has gone.
    third.ws.close(None).await.unwrap();
    third.until_closed().await;
    let mut tries = 0;
    loop {
        let (mut fifth, _) = Raw::open(server.addr).await;
        // (A probe that came too soon may be closed already.)
        let _ = fifth.ws.send(Message::text("40/signaling,")).await;
        match fifth.recv().await {
            Got::Text(t) => {
                assert!(t.starts_with(r#"44/signaling,{"message":"limit-exceeded: "#), "{t}");
                break;
            }
            other => assert!(matches!(other, Got::Close(Some(1008)) | Got::End) && tries < 100, "{other:?}"),
        }
        tries += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_lean_connection_is_refused_then_kicked_once() {
    let limits = LimitConfig { events_per_sec: 20.0, event_burst: 20.0, ..LimitConfig::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }).await;
    let a = Client::connect(&server.url()).await;
    let mut b = Client::connect(&server.url()).await;
    assert_eq!(a.join(json!({"roomId": "calm", "peerId": "a"})).await["ok"], true);
    assert_eq!(b.join(json!({"roomId": "calm", "peerId": "b"})).await["ok"], true);

    let (mut flooder, _) = Raw::connect(server.addr).await;
    assert_eq!(flooder.request(1, "join", json!({"roomId": "flood", "peerId": "f"})).await["ok"], true);
    // Back to back, in one write, without acks: refusals come as `error`
    // events, then the kick.
    for i in 0..200 {
        let packet = format!("42/signaling,{}", json!(["ice-candidate", cand("flood", i)]));
        flooder.ws.feed(Message::text(packet)).await.expect("feed");
    }
    let _ = flooder.ws.flush().await;
    let (texts, end) = flooder.until_closed().await;
    assert_eq!(end, Got::Close(Some(1008)), "after {texts:?}");
    let (last, errors) = texts.split_last().expect("something before the close");
    assert_eq!(last, "41/signaling,", "the Socket.IO disconnect comes last: {texts:?}");
    assert!(!errors.is_empty());
    for t in errors {
        let (name, e) = as_event(t).unwrap_or_else(|| panic!("not an event: {t}"));
        let got = (name.as_str(), e["code"].as_str(), e["event"].as_str());
        assert_eq!(got, ("error", Some("rate-limited"), Some("ice-candidate")), "{t}");
    }
    let kick = &as_event(errors.last().unwrap()).unwrap().1;
    assert!(kick["message"].as_str().unwrap().contains("disconnected"), "{kick}");

    wait_for("the flooder to leave the hub", || server.metrics.sockets() == 2).await;
    assert!(server.metrics.limit_hits(Limit::EventRate) >= 1);
    let kicked: Vec<String> =
        server.metrics.render().lines().filter(|l| l.starts_with("ringlet_kicked_total")).map(str::to_owned).collect();
    assert_eq!(kicked, ["ringlet_kicked_total 1"]);

    // The call next door never noticed.
    a.emit("sdp-offer", offer("calm")).await;
    assert_eq!(b.next("sdp-offer").await["from"], "a");
    server.stop().await;
}

/// A DISCONNECT and a CONNECT on the same WebSocket do not fill the event
/// budget again: cycling them is refused, then kicked, like any flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_again_on_one_websocket_does_not_refill_the_event_budget() {
    let limits = LimitConfig { events_per_sec: 2.0, event_burst: 20.0, ..LimitConfig::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    let mut id = 0;
    for _ in 0..5 {
        for _ in 0..20 {
            id += 1;
            c.ws.feed(Message::text(format!("42/signaling,{id}[\"heartbeat\",{{}}]"))).await.unwrap();
        }
        c.ws.feed(Message::text("41/signaling,")).await.unwrap();
        c.ws.feed(Message::text("40/signaling,")).await.unwrap();
    }
    let _ = c.ws.flush().await;
    let (texts, end) = c.until_closed().await;
    let acks: Vec<Value> = texts.iter().filter_map(|t| as_ack(t)).map(|(_, arg)| arg).collect();
    let ok = acks.iter().filter(|a| a["ok"] == true).count();
    assert!((20..=22).contains(&ok), "one burst and what trickles in, not one per CONNECT: {ok} of {}", acks.len());
    assert!(acks.iter().any(|a| a["error"]["code"] == "rate-limited"), "{acks:?}");
    assert_eq!(end, Got::Close(Some(1008)), "kicked");
    server.stop().await;
}

/// After a kick, a new connection from the same address starts with no
/// burst in hand: reconnecting is no way around the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_address_connects_again_without_a_burst() {
    let limits = LimitConfig { events_per_sec: 2.0, event_burst: 20.0, ..LimitConfig::default() };
    let server = TestServer::start_with(Config { limits, ..test_config() }).await;
    let (mut flooder, _) = Raw::connect(server.addr).await;
    for _ in 0..200 {
        flooder.ws.feed(Message::text(r#"42/signaling,["heartbeat",{}]"#)).await.unwrap();
    }
    let _ = flooder.ws.flush().await;
    assert_eq!(flooder.until_closed().await.1, Got::Close(Some(1008)));
    let (mut again, _) = Raw::connect(server.addr).await;
    let ack = again.request(1, "heartbeat", json!({})).await;
    assert_eq!(ack["error"]["code"], "rate-limited", "{ack}");
    // The budget comes back at the sustained rate (one per 500 ms here).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(again.request(2, "heartbeat", json!({})).await, json!({"ok": true}));
    server.stop().await;
}

/// A lost connection keeps its seats for the grace period, but an address
/// cannot pile up seats kept for no one by connecting, joining and
/// dropping in a loop: past as many lost connections per grace period as
/// it may have open, a lost connection gives its seats up at once, and the
/// server's rooms stay free for others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_cannot_fill_the_server_with_seats_kept_for_no_one() {
    let config = Config {
        hub: HubConfig { grace: Duration::from_secs(30), max_rooms: 12, ..HubConfig::default() },
        limits: LimitConfig { connections_per_ip: 2, ..LimitConfig::default() },
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    for cycle in 0..3 {
        let (mut c, _) = Raw::connect(server.addr).await;
        for room in 0..4 {
            let ack = c.request(room + 1, "join", json!({"roomId": format!("r{cycle}-{room}"), "peerId": "p"})).await;
            assert_eq!(ack["ok"], true, "cycle {cycle}: {ack}");
        }
        drop(c); // the transport drops: no hang-up
        wait_for("the connection to be gone", || server.metrics.sockets() == 0).await;
    }
    // Two connections' seats are kept (8 rooms); the third's are not.
    let (mut other, _) = Raw::connect(server.addr).await;
    let ack = other.request(1, "join", json!({"roomId": "elsewhere", "peerId": "o"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(server.metrics.limit_hits(Limit::AwayPerIp), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_browser_origins_are_refused_on_the_lean_path_too() {
    let server = TestServer::start(HubConfig::default()).await;
    let mut req = ws_url(server.addr).into_client_request().unwrap();
    req.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("a foreign origin got {:?}", other.map(|(_, r)| r.status())),
    }
    let mut req = ws_url(server.addr).into_client_request().unwrap();
    req.headers_mut().insert("origin", "tauri://localhost".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("the app's origin connects");
    let mut c = Raw { ws };
    assert!(c.text().await.starts_with("0{"));
    server.stop().await;
}

// ------------------------- bugs these found in the lean transport, now fixed

/// Answers `n` pings; the longest wait from a pong to the next ping.
async fn longest_ping_gap(c: &mut Raw, n: usize) -> Duration {
    let mut longest = Duration::ZERO;
    let mut ponged: Option<tokio::time::Instant> = None;
    for _ in 0..n {
        loop {
            match c.recv().await {
                Got::Text(t) if t == "2" => break,
                Got::Text(_) => {}
                other => panic!("while waiting for a ping: {other:?}"),
            }
        }
        if let Some(at) = ponged {
            longest = longest.max(at.elapsed());
        }
        c.send("3").await;
        ponged = Some(tokio::time::Instant::now());
    }
    longest
}

/// Engine.IO: the server pings every `pingInterval`; `pingTimeout` is only
/// how long it waits for the pong. A timeout longer than the interval (the
/// defaults are 25 s and 60 s) must not stretch the interval.
async fn pings_keep_their_interval(engine: WsEngine) {
    let config = Config {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_secs(5),
        websocket: engine,
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    let (mut c, _) = Raw::open(server.addr).await;
    c.send("40/signaling,").await;
    let gap = longest_ping_gap(&mut c, 4).await;
    // 200 ms expected; half the timeout is a wait, not a measurement.
    assert!(gap < Duration::from_millis(2_500), "{engine:?}: {gap:?} from a pong to the next ping");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_their_interval_when_the_timeout_is_longer_socketioxide() {
    pings_keep_their_interval(WsEngine::Socketioxide).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_their_interval_when_the_timeout_is_longer_lean() {
    pings_keep_their_interval(WsEngine::Lean).await;
}

/// A raw client whose every frame leaves in its own TCP segment, as
/// browsers and Node's `ws` send them (Nagle off).
async fn open_nodelay(addr: SocketAddr) -> Raw {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut raw = Raw::over(stream, addr).await;
    raw.send("40/signaling,").await;
    raw.connected().await;
    raw
}

/// The lean transport holds the read of data that comes soon after the
/// last for a moment, and keeps the socket quiet meanwhile
/// (src/lean/pace.rs). Nothing may be stranded by that: a burst's tail
/// that came during a hold, with nothing after it to wake the socket, must
/// be read when the hold ends.
/// The bursts here pause at points moving across a hold's 1-2 ms, and each
/// must arrive whole before the next is sent, so no later frame can rescue
/// it (the server's first ping is 25 s away, past `WAIT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_held_for_a_moment_arrives_whole_and_in_order() {
    let server = TestServer::start(HubConfig::default()).await;
    let mut a = open_nodelay(server.addr).await;
    let mut b = open_nodelay(server.addr).await;
    assert_eq!(a.request(1, "join", json!({"roomId": "held", "peerId": "a"})).await["ok"], true);
    assert_eq!(b.request(1, "join", json!({"roomId": "held", "peerId": "b"})).await["ok"], true);
    a.event("peer-joined").await;
    let mut seq = 0;
    for round in 0..24 {
        let first = seq;
        for i in 0..6 {
            if i == 2 {
                // The frames after the first are held; those after the
                // pause come within the hold or after it. A blocking
                // sleep: tokio's timer cannot wait less than a millisecond.
                std::thread::sleep(Duration::from_micros(round * 100));
            }
            a.send(&format!("42/signaling,{}", json!(["ice-candidate", cand("held", seq)]))).await;
            seq += 1;
        }
        for want in first..seq {
            let got = b.event("ice-candidate").await;
            assert_eq!((got["seq"].as_u64(), got["from"].as_str()), (Some(want), Some("a")), "round {round}: {got}");
        }
    }
    server.stop().await;
}

/// A raw client whose socket takes in little (a small receive buffer turns
/// off autotuning), so the server's writes to it block soon after it stops
/// reading.
async fn open_small_window(addr: SocketAddr) -> Raw {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    Raw::over(stream, addr).await
}

/// Two raw clients in `room`: `slow` (peer `s`, with a small window; the
/// tests stop it reading) and `fast` (peer `f`).
async fn slow_and_fast(config: Config, room: &str) -> (TestServer, Raw, Raw) {
    let server = TestServer::start_with(config).await;
    let mut slow = open_small_window(server.addr).await;
    slow.send("40/signaling,").await;
    slow.connected().await;
    assert_eq!(slow.request(1, "join", json!({"roomId": room, "peerId": "s"})).await["ok"], true);
    let (mut fast, _) = Raw::connect(server.addr).await;
    assert_eq!(fast.request(1, "join", json!({"roomId": room, "peerId": "f"})).await["ok"], true);
    (server, slow, fast)
}

const NUMBERED_PAD: usize = 1000;

/// A ~1 KB candidate relay numbered `n` (its text ends with the number),
/// asking for ack `n + 10` (ids below are the joins').
fn numbered_candidate(room: &str, n: u64) -> Message {
    let c = json!({"roomId": room, "candidate": {"candidate": format!("{}{n}", "x".repeat(NUMBERED_PAD))}});
    Message::text(format!("42/signaling,{}{}", n + 10, json!(["ice-candidate", c])))
}

/// The number a relayed [`numbered_candidate`] carries.
fn candidate_number(relayed: &Value) -> u64 {
    let text = relayed["candidate"]["candidate"].as_str().unwrap_or_else(|| panic!("{relayed}"));
    text[NUMBERED_PAD..].parse().unwrap_or_else(|_| panic!("{relayed}"))
}

/// Sends numbered candidates `ns` in writes of 100, each acked ok.
async fn relay_numbered(fast: &mut Raw, room: &str, ns: std::ops::Range<u64>) {
    for start in ns.clone().step_by(100) {
        let batch = start..(start + 100).min(ns.end);
        for n in batch.clone() {
            fast.ws.feed(numbered_candidate(room, n)).await.unwrap();
        }
        fast.ws.flush().await.unwrap();
        for n in batch {
            assert_eq!(fast.ack(n + 10).await["ok"], true, "relay {n} refused");
        }
    }
}

/// A peer that stops reading is `peer-backlogged` once what waits for it
/// passes `Config.backlog`, instead of the server buffering for it without
/// bound. Relays of ~1 KB from a fast peer, in batches with acks, until the
/// first refusal or 24 MB (far past the kernel's socket buffers, a few MB).
async fn a_peer_that_stops_reading_is_backlogged(engine: WsEngine) {
    let config = Config {
        websocket: engine,
        backlog: ringlet_signal::BacklogLimits { messages: 1024, bytes: 256 * 1024 },
        limits: LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() },
        ..test_config()
    };
    let (server, slow, mut fast) = slow_and_fast(config, "slow").await;
    // From here on `slow` reads nothing.
    let (mut delivered, mut refused) = (0u64, None);
    'send: for batch in 0..240u64 {
        let ns = (batch * 100)..((batch + 1) * 100);
        for n in ns.clone() {
            fast.ws.feed(numbered_candidate("slow", n)).await.unwrap();
        }
        fast.ws.flush().await.unwrap();
        for n in ns {
            let ack = fast.ack(n + 10).await;
            if ack["ok"] == true {
                delivered += 1;
            } else {
                assert_eq!(ack["error"]["code"], "peer-backlogged", "{ack}");
                refused = Some(ack);
                break 'send;
            }
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!("{engine:?}: all {delivered} relays (~{delivered} KB) accepted for a peer that reads nothing")
    });
    assert!(refused["error"]["message"].as_str().unwrap().contains("`s`"), "{refused}");
    assert!(server.metrics.refusals(ErrorCode::PeerBacklogged) >= 1);
    drop(slow);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_backlogged_socketioxide() {
    a_peer_that_stops_reading_is_backlogged(WsEngine::Socketioxide).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_backlogged_lean() {
    a_peer_that_stops_reading_is_backlogged(WsEngine::Lean).await;
}

/// A peer that stops reading long enough for relays to pile up behind a
/// full socket, then reads again without sending a thing, gets all of them
/// in order, at once: the server's write that unblocks must carry on with
/// what queued meanwhile, not wait for the peer's next packet or ping
/// (25 s here, past `WAIT`).
async fn a_peer_that_reads_again_gets_what_piled_up(engine: WsEngine) {
    let config = Config {
        websocket: engine,
        backlog: ringlet_signal::BacklogLimits { messages: 100_000, bytes: 64 << 20 },
        limits: LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() },
        ..test_config()
    };
    let (server, mut slow, mut fast) = slow_and_fast(config, "pile").await;
    assert_eq!(slow.event("peer-joined").await["peerId"], "f");
    // ~6 MB while `slow` reads nothing: past its window and the server's
    // send buffer (a few MB), so the rest waits in the server.
    let total = 6000u64;
    relay_numbered(&mut fast, "pile", 0..total).await;
    for want in 0..total {
        assert_eq!(candidate_number(&slow.event("ice-candidate").await), want, "{engine:?}: relay {want}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_again_gets_what_piled_up_socketioxide() {
    a_peer_that_reads_again_gets_what_piled_up(WsEngine::Socketioxide).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_reads_again_gets_what_piled_up_lean() {
    a_peer_that_reads_again_gets_what_piled_up(WsEngine::Lean).await;
}

/// A client whose backlog is full of its peer's relays still gets the acks
/// of the events it sends: its own replies are not refused with the relays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_backlog_still_takes_the_acks_of_the_clients_own_events() {
    let config = Config {
        backlog: ringlet_signal::BacklogLimits { messages: 1024, bytes: 256 * 1024 },
        limits: LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() },
        ..test_config()
    };
    let (server, mut slow, mut fast) = slow_and_fast(config, "full").await;
    // Relays until `slow`'s backlog refuses one (it reads nothing meanwhile).
    let mut sent = 0;
    'relay: for start in (0..10_000u64).step_by(100) {
        for n in start..start + 100 {
            fast.ws.feed(numbered_candidate("full", n)).await.unwrap();
        }
        fast.ws.flush().await.unwrap();
        for n in start..start + 100 {
            let ack = fast.ack(n + 10).await;
            if ack["ok"] != true {
                assert_eq!(ack["error"]["code"], "peer-backlogged", "{ack}");
                break 'relay;
            }
            sent += 1;
        }
    }
    assert!(sent < 10_000, "the backlog never filled");
    // Its own events' acks (100 of them, more than the room a refused
    // relay leaves) come after all that was queued before them.
    for id in 1000..1100 {
        slow.ws.feed(Message::text(format!("42/signaling,{id}[\"heartbeat\",{{}}]"))).await.unwrap();
    }
    slow.ws.flush().await.unwrap();
    let (mut relays, mut acks) = (0, vec![]);
    while acks.len() < 100 {
        let t = slow.text().await;
        if let Some(ack) = as_ack(&t) {
            acks.push(ack);
        } else if as_event(&t).is_some_and(|(ev, _)| ev == "ice-candidate") {
            assert!(acks.is_empty(), "a relay after an ack");
            relays += 1;
        }
    }
    assert!(acks.iter().enumerate().all(|(i, (id, ack))| *id == 1000 + i as u64 && *ack == json!({"ok": true})), "{acks:?}");
    assert_eq!(relays, sent, "every relay accepted came first");
    server.stop().await;
}

/// A client that stops reading is dropped once what waits for it has gone
/// nowhere for the ping timeout, though it keeps answering pings blindly
/// (a pong every 100 ms, never reading one): it would otherwise pin its
/// backlog for as long as it liked. Its peer keeps its place meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_dropped_though_it_answers_pings_blindly() {
    let config = Config {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        limits: LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() },
        ..test_config()
    };
    let (server, mut slow, mut fast) = slow_and_fast(config, "stuck").await;
    // (Until the server drops it: then its writes fail.)
    let blind = tokio::spawn(async move {
        while slow.ws.send(Message::text("3")).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Up to ~6 MB while `slow` reads nothing: past its window and the
    // server's send buffer, so bytes wait in the server and go nowhere
    // (until a relay is refused: `slow` may be gone by then, and what is
    // held for it full).
    'relay: for start in (0..6000u64).step_by(100) {
        for n in start..start + 100 {
            fast.ws.feed(numbered_candidate("stuck", n)).await.unwrap();
        }
        fast.ws.flush().await.unwrap();
        for n in start..start + 100 {
            if fast.ack(n + 10).await["ok"] != true {
                break 'relay;
            }
        }
    }
    // `fast` answers its pings meanwhile.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let answering = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return fast,
                got = fast.recv() => match got {
                    Got::Text(t) if t == "2" => fast.send("3").await,
                    Got::Close(_) | Got::End => panic!("the peer that reads was dropped: {got:?}"),
                    _ => {}
                },
            }
        }
    });
    wait_for("the client that reads nothing to be dropped", || server.metrics.sockets() == 1).await;
    blind.abort();
    stop.send(()).unwrap();
    let mut fast = answering.await.unwrap();
    assert_eq!(fast.request(9, "heartbeat", json!({})).await, json!({"ok": true}), "the peer carries on");
    server.stop().await;
}

/// Before it connects to `/signaling`, a socket that sends pings and reads
/// none of the pongs is closed once a little is left unread (it is not yet
/// counted against its address: it must not make the server hold
/// megabytes of its own replies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconnected_socket_that_reads_no_replies_is_closed() {
    let server = TestServer::start(HubConfig::default()).await;
    let mut c = open_small_window(server.addr).await;
    // 6.5 MB of pongs asked for, unread: past the kernel's buffers.
    for _ in 0..50_000 {
        c.ws.feed(Message::Ping(vec![7u8; 125].into())).await.unwrap();
    }
    c.ws.flush().await.unwrap();
    let mut pongs = 0;
    let end = loop {
        match c.recv().await {
            Got::Pong(_) => pongs += 1,
            end @ (Got::Close(_) | Got::End) => break end,
            other => panic!("after {pongs} pongs: {other:?}"),
        }
    };
    assert!(pongs < 50_000, "closed before answering all: {pongs} pongs, then {end:?}");
    assert!(matches!(end, Got::Close(Some(1008)) | Got::End), "{end:?}");
    server.stop().await;
}

/// A connection the server closes while the client is still sending (a
/// broken rule, then more) gets its close frame, not a reset: the server
/// reads on until the client's end (RFC 6455 §7.1.1), as closing a socket
/// with unread input makes the kernel reset it and throw away what was
/// still to be sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_when_closed_gets_the_close_frame() {
    let server = TestServer::start(HubConfig::default()).await;
    for round in 0..5 {
        let c = open_small_window(server.addr).await;
        let (mut tx, mut rx) = c.ws.split();
        // 50 KB of pongs asked for, a packet no client sends (close 1002),
        // then 1 MB more, unread by the server; the writes may fail once
        // it has gone.
        let writer = tokio::spawn(async move {
            // Pongs first, more than its window takes: the close frame
            // queues behind them in the server's socket.
            for _ in 0..400 {
                let _ = tx.feed(Message::Ping(vec![1u8; 125].into())).await;
            }
            let _ = tx.feed(Message::text("49")).await;
            for _ in 0..1000 {
                if tx.feed(Message::text("4".repeat(1000))).await.is_err() {
                    break;
                }
            }
            let _ = tx.flush().await;
        });
        tokio::time::sleep(Duration::from_millis(200)).await; // the server's window fills
        let mut end = Got::End;
        while let Ok(Some(m)) = tokio::time::timeout(WAIT, rx.next()).await.expect("in time").transpose() {
            if let Message::Close(c) = m {
                end = Got::Close(c.map(|c| u16::from(c.code)));
                break;
            }
        }
        assert_eq!(end, Got::Close(Some(1002)), "round {round}");
        writer.abort();
    }
    server.stop().await;
}

/// A client's close frame is answered with its own code (RFC 6455 §5.5.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_frame_is_answered_with_its_code() {
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    let server = TestServer::start(HubConfig::default()).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    c.send_msg(Message::Close(Some(CloseFrame { code: CloseCode::from(4001), reason: "bye".into() }))).await;
    let (_, end) = c.until_closed().await;
    assert_eq!(end, Got::Close(Some(4001)));
    server.stop().await;
}

/// On the socketioxide engine, relays queued in the server's backlog when
/// the recipient's transport dies are held for its return, ahead of what
/// comes after: it gets a gap-free tail, not the later messages alone.
/// (What was in socketioxide's own buffer or the kernel's is gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_left_by_a_dead_transport_is_held_for_the_return() {
    let config = Config {
        websocket: WsEngine::Socketioxide,
        hub: HubConfig { max_held_messages: 100_000, max_held_bytes: 64 << 20, ..HubConfig::default() },
        backlog: ringlet_signal::BacklogLimits { messages: 100_000, bytes: 64 << 20 },
        limits: LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() },
        ..test_config()
    };
    let (server, slow, mut fast) = slow_and_fast(config, "gone").await;
    // ~8 MB while `slow` reads nothing: past socketioxide's 1,024-packet
    // buffer (~1 MB) and the kernel's (a few MB), so the rest waits in
    // our backlog.
    let total = 8000u64;
    relay_numbered(&mut fast, "gone", 0..total).await;
    drop(slow);
    wait_for("the dead transport to be noticed", || server.metrics.sockets() == 1).await;
    for id in total..total + 10 {
        fast.send_msg(numbered_candidate("gone", id)).await;
        assert_eq!(fast.ack(id + 10).await["ok"], true, "held for the return");
    }
    let (mut back, _) = Raw::connect(server.addr).await;
    let ack = back.request(1, "join", json!({"roomId": "gone", "peerId": "s"})).await;
    assert_eq!((ack["ok"].clone(), ack["resumed"].clone()), (json!(true), json!(true)), "{ack}");
    let first = candidate_number(&back.event("ice-candidate").await);
    assert!(first < total, "nothing from before the loss was held (the first held is {first})");
    for want in first + 1..total + 10 {
        assert_eq!(candidate_number(&back.event("ice-candidate").await), want, "a gap or a reorder");
    }
    server.stop().await;
}

/// A client pipelining more acked events than `Config.backlog.messages` in
/// one write still gets every ack: the backlog limit is about peers that do
/// not keep up, and this client reads.
async fn pipelined_acks_all_arrive(engine: WsEngine) {
    let config = Config {
        websocket: engine,
        backlog: ringlet_signal::BacklogLimits { messages: 64, bytes: 256 * 1024 },
        ..test_config()
    };
    let server = TestServer::start_with(config).await;
    let (mut c, _) = Raw::connect(server.addr).await;
    for id in 1..=100u64 {
        c.ws.feed(Message::text(format!(r#"42/signaling,{id}["heartbeat",{{}}]"#))).await.unwrap();
    }
    c.ws.flush().await.unwrap();
    let mut missing: std::collections::BTreeSet<u64> = (1..=100).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !missing.is_empty() {
        let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(deadline, c.ws.next()).await else { break };
        if t == "2" {
            c.send("3").await; // socketioxide pings as soon as a session opens
            continue;
        }
        let id = t.strip_prefix("43/signaling,").and_then(|r| r.strip_suffix(r#"[{"ok":true}]"#));
        missing.remove(&id.unwrap_or_else(|| panic!("not a heartbeat ack: {t}")).parse().unwrap());
    }
    assert!(missing.is_empty(), "{engine:?}: no ack for {} of 100 events: {missing:?}", missing.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_acks_all_arrive_under_a_small_backlog_socketioxide() {
    pipelined_acks_all_arrive(WsEngine::Socketioxide).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_acks_all_arrive_under_a_small_backlog_lean() {
    pipelined_acks_all_arrive(WsEngine::Lean).await;
}
