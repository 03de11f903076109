//! The Ringlet desktop shell: a Tauri window over `ui/`, and the embedded
//! signaling server. It stays thin: the engine lives in `crates/`.

use std::net::SocketAddr;
use std::sync::Mutex;

use serde::Serialize;
use tauri::Manager;

/// Where the embedded `ringlet-signal` listens, once it does.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignalInfo {
    pub url: String,
    pub addr: SocketAddr,
}

pub struct SignalState(pub Mutex<Result<SignalInfo, String>>);

/// The embedded server's address, or why it is not running.
#[tauri::command]
fn signal_info(state: tauri::State<'_, SignalState>) -> Result<SignalInfo, String> {
    state.0.lock().map_err(|_| "state poisoned".to_string())?.clone()
}

/// The preferred port for the embedded server: stable links across
/// restarts. If it is taken, any free port does.
const PREFERRED: &str = "0.0.0.0:3000";

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
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    Ok(SignalInfo { url: format!("http://{host}:{}", addr.port()), addr })
}

pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGLET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    tauri::Builder::default()
        .manage(SignalState(Mutex::new(Err("starting".into()))))
        .setup(|app| {
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let result = match std::env::var("RINGLET_SIGNAL_LISTEN").ok().as_deref().unwrap_or(PREFERRED).parse() {
                    Ok(listen) => start_signal(listen).await,
                    Err(e) => Err(format!("RINGLET_SIGNAL_LISTEN: {e}")),
                };
                match &result {
                    Ok(info) => tracing::info!(url = %info.url, "embedded signaling server listening"),
                    Err(e) => tracing::error!(error = %e, "embedded signaling server failed"),
                }
                if let Ok(mut s) = handle.state::<SignalState>().0.lock() {
                    *s = result;
                }
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![signal_info])
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("ringlet: cannot start the window: {e}");
            std::process::exit(1);
        });
}
