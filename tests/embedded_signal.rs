//! The desktop app's embedded signaling server: it starts, answers, and
//! takes another port when the preferred one is busy.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn healthz(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[test]
fn embedded_server_starts_and_falls_back_to_a_free_port() {
    // The shell spawns the server on Tauri's runtime; use the same here.
    tauri::async_runtime::block_on(async {
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = busy.local_addr().unwrap();
        let info = ringlet_app::start_signal(taken).await.expect("starts on another port");
        assert_ne!(info.addr.port(), taken.port());
        assert_eq!(info.url, format!("http://127.0.0.1:{}", info.addr.port()));
        let reply = healthz(info.addr).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("ok\n"), "{reply}");
    });
}
