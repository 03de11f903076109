//! Two engines in one process through a real `ringlet-signal` on loopback.

use std::time::Duration;

use ringlet_call::{Call, CallConfig, CallEvent, SignalingConfig};
use ringlet_proto::{PeerId, RoomId};
use ringlet_signal::{Config, Server};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(15);

async fn server() -> std::net::SocketAddr {
    let server = Server::bind(Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

fn peer(addr: std::net::SocketAddr, room: &str, id: &str) -> (Call, UnboundedReceiver<CallEvent>) {
    let mut config = CallConfig::new(SignalingConfig::new(
        format!("http://{addr}"),
        RoomId::new(room).unwrap(),
        PeerId::new(id).unwrap(),
    ));
    config.udp_bind = "127.0.0.1:0".into();
    Call::start(config)
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
    a.send("hello from alice");
    until(&mut b_rx, "alice's message", |e| *e == CallEvent::Data("hello from alice".into())).await;
    b.hangup().await;
    until(&mut a_rx, "bob left", |e| matches!(e, CallEvent::PeerLeft { .. })).await;
    a.hangup().await;
}
