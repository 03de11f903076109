//! The embedded signaling server: with no server configured, the app
//! starts `ringlet-signal` in-process on the LAN, so two machines on one
//! network call each other with nothing else installed.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// Where the embedded `ringlet-signal` listens, once it does.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignalInfo {
    /// For this machine's own engine (loopback).
    pub url: String,
    /// For links shared with others: the LAN address when there is one.
    pub share_url: String,
    pub addr: SocketAddr,
}

/// The preferred port for the embedded server: stable links across
/// restarts. If it is taken, any free port does.
pub const PREFERRED: &str = "0.0.0.0:3000";

/// Starts the embedded signaling server on `listen` (falling back to any
/// free port) and serves it on the Tauri runtime until the app exits.
pub async fn start_signal(listen: SocketAddr) -> Result<SignalInfo, String> {
    let mut config = ringlet_signal::Config { listen, ..Default::default() };
    let server = match ringlet_signal::Server::bind(config.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%listen, error = %e, "preferred signaling port unavailable; using any free port");
            config.listen.set_port(0);
            ringlet_signal::Server::bind(config).await.map_err(|e| format!("cannot start signaling: {e}"))?
        }
    };
    let addr = server.local_addr();
    tauri::async_runtime::spawn(async move {
        if let Err(e) = server.run(std::future::pending()).await {
            tracing::error!(error = %e, "embedded signaling server stopped");
        }
    });
    let local = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    let share = match (addr.ip().is_unspecified(), lan_address()) {
        (true, Some(ip)) => ip.to_string(),
        _ => local.clone(),
    };
    Ok(SignalInfo { url: format!("http://{local}:{}", addr.port()), share_url: format!("http://{share}:{}", addr.port()), addr })
}

/// This machine's address on the network its default route leads to. A
/// UDP socket "connected" to a public address sends nothing, but makes the
/// kernel pick the outgoing interface; no route means no LAN.
pub fn lan_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?; // TEST-NET-1: never routed anywhere real
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}
