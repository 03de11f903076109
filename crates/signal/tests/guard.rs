//! Who may connect and join, and how much: connection, event and room
//! limits, invite tokens, and TLS. Real server, real `rust_socketio`
//! clients, raw HTTP where the request must go out exactly as written.

mod support;

use std::time::{Duration, SystemTime};

use ringlet_proto::RoomId;
use ringlet_signal::metrics::Limit;
use ringlet_signal::{Config, HubConfig, Invites, LimitConfig, TlsFiles};
use serde_json::{json, Value};
use support::{http, test_config, Client, TestServer, WAIT};

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn offer(room: &str) -> Value {
    json!({"roomId": room, "sdp": {"type": "offer", "sdp": "v=0\r\n"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped_readably_and_freed_on_close() {
    let limits = LimitConfig {
        connections_per_ip: 2,
        ..LimitConfig::default()
    };
    let server = TestServer::start_with(Config {
        limits,
        ..test_config()
    })
    .await;
    let a = Client::try_connect(&server.url(), None)
        .await
        .expect("first connects");
    let _b = Client::try_connect(&server.url(), None)
        .await
        .expect("second connects");
    let refused = Client::try_connect(&server.url(), None)
        .await
        .err()
        .expect("third is refused");
    assert!(
        refused.contains("limit-exceeded") && refused.contains("too many connections"),
        "{refused}"
    );
    assert_eq!(server.metrics.limit_hits(Limit::ConnectionsPerIp), 1);

    a.disconnect().await;
    wait_for("the closed connection to be released", || {
        server.metrics.sockets() == 1
    })
    .await;
    let c = Client::try_connect(&server.url(), None)
        .await
        .expect("a freed slot admits again");
    assert_eq!(c.join(json!("after")).await["ok"], true);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_connection_is_refused_then_dropped_and_others_call_on() {
    let limits = LimitConfig {
        events_per_sec: 20.0,
        event_burst: 20.0,
        ..LimitConfig::default()
    };
    let server = TestServer::start_with(Config {
        limits,
        ..test_config()
    })
    .await;

    let a = Client::connect(&server.url()).await;
    let mut b = Client::connect(&server.url()).await;
    assert_eq!(
        a.join(json!({"roomId": "calm", "peerId": "a"})).await["ok"],
        true
    );
    assert_eq!(
        b.join(json!({"roomId": "calm", "peerId": "b"})).await["ok"],
        true
    );

    let mut flooder = Client::connect(&server.url()).await;
    assert_eq!(
        flooder
            .join(json!({"roomId": "flood", "peerId": "f"}))
            .await["ok"],
        true
    );
    // Back to back, without acks: refusals come as `error` events.
    for i in 0..400 {
        if flooder
            .sio
            .emit(
                "ice-candidate",
                json!({"roomId": "flood", "candidate": {"candidate": format!("c{i}")}}),
            )
            .await
            .is_err()
        {
            break;
        }
    }
    let first = flooder.next("error").await;
    assert_eq!(first["code"], "rate-limited", "{first}");
    assert_eq!(first["event"], "ice-candidate");
    wait_for("the flooder to be disconnected", || {
        server.metrics.sockets() == 2
    })
    .await;
    assert!(server.metrics.limit_hits(Limit::EventRate) >= 1);
    assert!(server.metrics.render().contains("ringlet_kicked_total 1"));

    // The call next door never noticed.
    a.emit("sdp-offer", offer("calm")).await;
    let got = b.next("sdp-offer").await;
    assert_eq!(got["from"], "a");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_limits_are_readable_refusals() {
    let hub = HubConfig {
        max_rooms_per_connection: 2,
        max_rooms: 3,
        ..HubConfig::default()
    };
    let server = TestServer::start(hub).await;
    let a = Client::connect(&server.url()).await;
    assert_eq!(a.join(json!("r1")).await["ok"], true);
    assert_eq!(a.join(json!("r2")).await["ok"], true);
    let ack = a.join(json!("r3")).await;
    assert_eq!(ack["error"]["code"], "limit-exceeded", "{ack}");
    assert!(ack["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2 rooms"));

    let b = Client::connect(&server.url()).await;
    assert_eq!(b.join(json!("r3")).await["ok"], true);
    let ack = b.join(json!("r4")).await;
    assert_eq!(ack["error"]["code"], "limit-exceeded", "{ack}");
    assert_eq!(
        b.join(json!("r1")).await["ok"],
        true,
        "an existing room still takes peers"
    );
    assert_eq!(server.metrics.limit_hits(Limit::RoomsPerConnection), 1);
    assert_eq!(server.metrics.limit_hits(Limit::Rooms), 1);
    server.stop().await;
}

const SECRET: &[u8] = b"test secret, sixteen bytes or more";

fn token_server_config() -> Config {
    let limits = LimitConfig {
        room_creation_per_sec: 0.001,
        room_creation_burst: 3.0,
        ..LimitConfig::default()
    };
    Config {
        invites: Some(Invites::new(SECRET.to_vec(), Duration::from_secs(3600), true).unwrap()),
        limits,
        ..test_config()
    }
}

async fn post_room(server: &TestServer) -> (u16, Value) {
    let r = http(
        server.addr,
        "POST",
        "/api/rooms",
        &[("Content-Length", "0")],
    )
    .await;
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_only_an_invite_gets_in() {
    let server = TestServer::start_with(token_server_config()).await;
    let checker = Invites::new(SECRET.to_vec(), Duration::from_secs(3600), true).unwrap();

    let (status, created) = post_room(&server).await;
    assert_eq!(status, 201, "{created}");
    let room = created["roomId"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(room.len(), 22, "128 random bits");
    assert!(created["expiresAt"].as_u64().unwrap() > 1_700_000_000);

    let c = Client::connect(&server.url()).await;
    // The seed's bare-string join cannot carry a token.
    let ack = c.join(json!(room)).await;
    assert_eq!(ack["error"]["code"], "token-required", "{ack}");
    let ack = c
        .join(json!({"roomId": room, "token": "1999999999.AAAA"}))
        .await;
    assert_eq!(ack["error"]["code"], "token-invalid", "{ack}");
    // A genuine token names one room.
    let (_, other) = post_room(&server).await;
    let ack = c
        .join(json!({"roomId": room, "token": other["token"]}))
        .await;
    assert_eq!(ack["error"]["code"], "token-invalid", "{ack}");
    // A genuine token past its time.
    let stale = checker.mint(
        &RoomId::new(&room).unwrap(),
        SystemTime::now() - Duration::from_secs(7200),
    );
    let ack = c.join(json!({"roomId": room, "token": stale.token})).await;
    assert_eq!(ack["error"]["code"], "token-expired", "{ack}");
    assert!(ack["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ask for a new link"));
    // Without an ack, the refusal is an `error` event naming the event.
    let mut d = Client::connect(&server.url()).await;
    d.emit("join", json!({"roomId": room})).await;
    let e = d.next("error").await;
    assert_eq!(
        (e["code"].as_str(), e["event"].as_str()),
        (Some("token-required"), Some("join")),
        "{e}"
    );
    assert_eq!(server.metrics.sockets(), 2);

    let ack = c
        .join(json!({"roomId": room, "peerId": "host", "token": token}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let fresh = ack["token"]
        .as_str()
        .expect("the ack carries a fresh token")
        .to_owned();
    assert_eq!(
        checker.check(
            &RoomId::new(&room).unwrap(),
            Some(&fresh),
            SystemTime::now()
        ),
        Ok(())
    );
    // The fresh token admits a guest too.
    let guest = Client::connect(&server.url()).await;
    assert_eq!(
        guest.join(json!({"roomId": room, "token": fresh})).await["ok"],
        true
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_creation_is_rate_limited_per_address() {
    let server = TestServer::start_with(token_server_config()).await;
    for _ in 0..3 {
        assert_eq!(post_room(&server).await.0, 201);
    }
    let (status, body) = post_room(&server).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "rate-limited", "{body}");
    assert_eq!(server.metrics.limit_hits(Limit::RoomCreation), 1);
    // Without tokens the endpoint still names rooms (a client need not
    // know whether the server requires them).
    let open = TestServer::start_with(test_config()).await;
    let r = http(open.addr, "POST", "/api/rooms", &[("Content-Length", "0")]).await;
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(r.status, 201);
    assert!(
        body["roomId"].is_string() && body.get("token").is_none(),
        "{body}"
    );
    server.stop().await;
    open.stop().await;
}

/// A throwaway directory under the system temp dir.
fn scratch(name: &str) -> std::path::PathBuf {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("ringlet-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_wss_with_a_self_signed_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = scratch("tls");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

    let tls = Some(TlsFiles {
        cert: cert_path.clone(),
        key: key_path.clone(),
    });
    let server = TestServer::start_with(Config {
        tls,
        ..test_config()
    })
    .await;
    let url = format!("https://localhost:{}", server.addr.port());
    // Trust exactly this certificate: verification stays on.
    let connector = || {
        let root = native_tls::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
        native_tls::TlsConnector::builder()
            .add_root_certificate(root)
            .build()
            .unwrap()
    };
    let a = Client::try_connect(&url, Some(connector()))
        .await
        .expect("wss connects");
    let mut b = Client::try_connect(&url, Some(connector()))
        .await
        .expect("wss connects");
    assert_eq!(
        a.join(json!({"roomId": "secure", "peerId": "a"})).await["ok"],
        true
    );
    assert_eq!(
        b.join(json!({"roomId": "secure", "peerId": "b"})).await["ok"],
        true
    );
    a.emit("sdp-offer", offer("secure")).await;
    assert_eq!(b.next("sdp-offer").await["from"], "a");

    // A client that does not trust the certificate is turned away.
    assert!(Client::try_connect(&url, None).await.is_err());
    // Plain HTTP on the TLS port gets no HTTP answer.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await;
        assert!(
            !String::from_utf8_lossy(&buf).contains("ok"),
            "plaintext was served"
        );
    }
    server.stop().await;

    // Bad files fail at start-up, naming the file.
    let missing = dir.join("missing.pem");
    let err = ringlet_signal::Server::bind(Config {
        tls: Some(TlsFiles {
            cert: cert_path,
            key: missing,
        }),
        ..test_config()
    })
    .await
    .err()
    .expect("a missing key is an error");
    assert!(err.to_string().contains("missing.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
