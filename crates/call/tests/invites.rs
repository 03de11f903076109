//! The engine against a server that requires invite tokens: a room from
//! `POST /api/rooms`, a call on its token, a stranger without one refused.

use std::time::Duration;

use ringlet_call::rooms::create_room;
use ringlet_call::{Call, CallConfig, CallEvent, SignalingConfig};
use ringlet_proto::PeerId;
use ringlet_signal::{Config, Invites, Server};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(15);

async fn next_matching(rx: &mut UnboundedReceiver<CallEvent>, what: &str, f: impl Fn(&CallEvent) -> bool) -> CallEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) if f(&e) => return e,
            Ok(Some(_)) => {}
            Ok(None) => panic!("events ended before {what}"),
            Err(_) => panic!("no {what} within {WAIT:?}"),
        }
    }
}

fn call(url: &str, room: &ringlet_proto::RoomId, id: &str, token: Option<String>) -> (Call, UnboundedReceiver<CallEvent>) {
    let mut signaling = SignalingConfig::new(url.to_string(), room.clone(), PeerId::new(id).unwrap());
    signaling.token = token;
    let mut config = CallConfig::new(signaling);
    config.udp_bind = "127.0.0.1:0".into();
    Call::start(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_an_invite_and_a_stranger_turned_away() {
    let invites = Invites::new(b"engine test secret, long enough".to_vec(), Duration::from_secs(600), true).unwrap();
    let config = Config { listen: "127.0.0.1:0".parse().unwrap(), invites: Some(invites), ..Config::default() };
    let server = Server::bind(config).await.unwrap();
    let url = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));

    let new = create_room(&url).await.expect("the server names a room");
    assert!(new.from_server);
    let token = new.token.clone().expect("a token server hands out the first token");

    let (_stranger, mut s_rx) = call(&url, &new.room, "stranger", None);
    match next_matching(&mut s_rx, "a refusal", |e| matches!(e, CallEvent::Refused { .. })).await {
        CallEvent::Refused { code, message } => {
            assert_eq!(code, "token-required");
            assert!(message.contains("invite"), "{message}");
        }
        _ => unreachable!(),
    }

    let (_host, mut h_rx) = call(&url, &new.room, "host", Some(token.clone()));
    let joined = next_matching(&mut h_rx, "host joined", |e| matches!(e, CallEvent::Joined { .. })).await;
    let CallEvent::Joined { token: fresh, .. } = joined else { unreachable!() };
    let fresh = fresh.expect("the ack refreshes the token");
    // The guest comes in on the link the host shares (the fresh token).
    let (_guest, mut g_rx) = call(&url, &new.room, "guest", Some(fresh));
    next_matching(&mut h_rx, "host's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
    next_matching(&mut g_rx, "guest's data channel", |e| matches!(e, CallEvent::DataOpen)).await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_readable_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = create_room(&format!("http://{addr}")).await.unwrap_err();
    assert!(e.to_string().contains("cannot reach the server"), "{e}");
    assert!(create_room("ftp://example.com").await.unwrap_err().to_string().contains("http://"));
}
