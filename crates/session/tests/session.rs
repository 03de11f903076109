//! A desktop call without the window: two sessions with the test sources
//! through a real `ringlet-signal`, and a page's view of the frame socket
//! (a real WebSocket client, as the webview is).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ringlet_media::{read_stamp, AudioInput, VideoInput, Vp8Decoder};
use ringlet_proto::{PeerId, RoomId};
use ringlet_session::frames::{KIND_PREVIEW_JPEG, KIND_REMOTE_JPEG, KIND_REMOTE_VP8};
use ringlet_session::{FrameHub, LocalMedia, Session, SessionConfig, SessionEvent, APP_ORIGINS};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(15);

type Page = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn page(url: &str, origin: &str) -> Result<Page, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Origin", origin.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

/// The next binary frame of `kind`: (flags, payload).
async fn next_of(ws: &mut Page, kind: u8) -> (u8, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await.expect("socket open").expect("no socket error") {
                Message::Binary(b) if b[0] == kind => return (b[1], b[10..].to_vec()),
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no frame of kind {kind}"))
}

async fn until(rx: &mut UnboundedReceiver<SessionEvent>, what: &str, f: impl Fn(&SessionEvent) -> bool) {
    tokio::time::timeout(WAIT, async {
        while let Some(e) = rx.recv().await {
            if f(&e) {
                return;
            }
        }
        panic!("events ended before {what}");
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

fn pattern() -> VideoInput {
    VideoInput::TestPattern { width: 320, height: 240 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_socket_wants_the_secret_and_an_app_origin() {
    let hub = FrameHub::bind(&APP_ORIGINS).await.unwrap();
    let _local = LocalMedia::start(pattern(), AudioInput::Tone, hub.clone()).unwrap();
    let url = hub.url();
    let no_secret = url.split('?').next().unwrap().to_string();
    let wrong_secret = format!("{no_secret}?secret={}", "0".repeat(32));
    assert!(page(&no_secret, "tauri://localhost").await.is_err(), "no secret");
    assert!(page(&wrong_secret, "tauri://localhost").await.is_err(), "wrong secret");
    assert!(page(&url, "http://evil.example").await.is_err(), "foreign origin");
    assert!(page(&url, "null").await.is_err(), "opaque origin");
    assert_eq!(hub.stats().refused.load(std::sync::atomic::Ordering::Relaxed), 4);

    // The app's page gets the preview as JPEG.
    let mut ws = page(&url, "tauri://localhost").await.expect("the app's origin with the secret");
    let (_, jpeg) = next_of(&mut ws, KIND_PREVIEW_JPEG).await;
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    // It can stop the preview: nothing more comes.
    ws.send(Message::text(r#"{"preview":false}"#)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), ws.next()).await {}
    assert!(tokio::time::timeout(Duration::from_millis(500), ws.next()).await.is_err(), "preview stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_desktop_sessions_call_each_other() {
    let server = ringlet_signal::Server::bind(ringlet_signal::Config { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() })
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));

    let start = |id: &'static str| {
        let url = url.clone();
        async move {
            let hub = FrameHub::bind(&APP_ORIGINS).await.unwrap();
            let local = Arc::new(LocalMedia::start(pattern(), AudioInput::Tone, hub.clone()).unwrap());
            let config = SessionConfig {
                server: url,
                room: RoomId::new("desk").unwrap(),
                peer_id: PeerId::new(id).unwrap(),
                name: Some(id.into()),
                token: None,
                ice_servers: vec![],
                speaker: None,
            };
            let (session, events) = Session::start(config, Arc::clone(&local), hub.clone()).unwrap();
            (hub, local, session, events)
        }
    };
    let (_ahub, _alocal, alice, mut a_rx) = start("alice").await;
    until(&mut a_rx, "alice joined", |e| matches!(e, SessionEvent::Joined { .. })).await;
    let (bhub, _blocal, bob, mut b_rx) = start("bob").await;
    until(&mut b_rx, "bob connected", |e| *e == SessionEvent::Connected).await;
    // Chat and media state flow once both data channels are open.
    until(&mut b_rx, "bob's data channel", |e| *e == SessionEvent::DataOpen).await;
    until(&mut a_rx, "alice's data channel", |e| *e == SessionEvent::DataOpen).await;

    // Bob's page: the remote picture as VP8, passed through untouched,
    // starting at a keyframe; it decodes to alice's stamped pattern.
    let mut ws = page(&bhub.url(), "tauri://localhost").await.unwrap();
    ws.send(Message::text(r#"{"preview":false}"#)).await.unwrap();
    let (flags, first) = next_of(&mut ws, KIND_REMOTE_VP8).await;
    assert_eq!(flags & 1, 1, "a page starts at a keyframe");
    let mut dec = Vp8Decoder::new().unwrap();
    let mut stamps = vec![read_stamp(&dec.decode(&first).unwrap().expect("a picture")).expect("stamped").frame];
    while stamps.len() < 20 {
        let (_, f) = next_of(&mut ws, KIND_REMOTE_VP8).await;
        if let Ok(Some(img)) = dec.decode(&f) {
            stamps.push(read_stamp(&img).expect("stamped").frame);
        }
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "in order: {stamps:?}");

    // The fallback: the page asks for JPEG instead.
    ws.send(Message::text(r#"{"remote":"jpeg"}"#)).await.unwrap();
    let (_, jpeg) = next_of(&mut ws, KIND_REMOTE_JPEG).await;
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);

    // Audio plays through bob's jitter buffer; the indicator has numbers.
    let _ = bob.quality().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let q = bob.quality().await;
    assert!(q.rtt_ms.is_some(), "{q:?}");
    assert!(q.receive_kbps > 0.0, "{q:?}");
    assert!(q.video_frames_shown >= 20, "{q:?}");
    assert!(q.audio_played >= 25, "the peer's audio plays: {q:?}");

    alice.chat("hello bob");
    until(&mut b_rx, "alice's chat", |e| *e == SessionEvent::Chat { text: "hello bob".into() }).await;
    alice.set_mic(false);
    until(&mut b_rx, "alice muted", |e| matches!(e, SessionEvent::RemoteMedia { audio_muted: true, .. })).await;
    alice.set_camera(false).unwrap();
    until(&mut b_rx, "alice's camera off", |e| matches!(e, SessionEvent::RemoteMedia { video_muted: true, .. })).await;


    alice.hangup().await;
    until(&mut b_rx, "alice hung up", |e| matches!(e, SessionEvent::RemoteHangup | SessionEvent::PeerLeft { .. })).await;
    bob.hangup().await;
}
