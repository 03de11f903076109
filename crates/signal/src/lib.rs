//! `ringlet-signal`: the Socket.IO signaling server that introduces Ringlet
//! peers to each other.
//!
//! It speaks the seed tutorial's protocol on the `/signaling` namespace (its
//! browser client works unchanged) and Ringlet's superset: stable peer ids,
//! acks with readable errors, presence events, and a grace period during
//! which a peer whose transport dropped keeps its place and has its messages
//! held. Relays from one sender arrive in the order sent, with no loss under
//! a burst.
//!
//! Run it embedded (the desktop app does) or as the `ringlet-signal` binary:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ringlet_signal::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
//! let server = Server::bind(config).await?;
//! println!("signaling on {}", server.local_addr());
//! server.run(std::future::pending()).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub mod cli;
pub mod cluster;
pub mod hub;
pub mod invite;
mod io;
mod lean;
pub mod limits;
pub mod metrics;
pub mod tls;
pub mod turn;
pub mod web;

pub use cluster::ClusterConfig;
pub use hub::HubConfig;
pub use invite::Invites;
pub use io::BacklogLimits;
pub use limits::LimitConfig;
pub use metrics::Metrics;
pub use tls::{PeerAddr, TlsFiles};
pub use turn::TurnConfig;
pub use web::WebClient;

/// The largest Socket.IO message read, on either transport. Anything up to
/// it gets a readable refusal (`too-large` past the per-event limits);
/// beyond it the connection is closed before the message is buffered
/// whole, as Socket.IO's own `maxHttpBufferSize` (1 MB) does.
pub const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// How long a connection may stay without joining `/signaling`
/// (socketioxide's default, used by both transports).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// Origins the desktop app's webview uses on each platform.
pub const APP_ORIGINS: [&str; 3] = ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"];

/// Which browser origins may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Any origin (`--cors-origin '*'`): only for development.
    Any,
    /// These origins, plus same-origin pages and clients that send no Origin
    /// (native clients: the app's engine, Node, curl).
    List(Vec<String>),
}

impl Default for Origins {
    fn default() -> Self {
        Origins::List(APP_ORIGINS.iter().map(|s| s.to_string()).collect())
    }
}

impl Origins {
    fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        match self {
            Origins::Any => true,
            Origins::List(list) => {
                list.iter().any(|o| o.eq_ignore_ascii_case(origin))
                    || host.is_some_and(|h| {
                        origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(h)
                    })
            }
        }
    }
}

/// Everything the server can be told. [`cli::Args`] builds one from flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub hub: HubConfig,
    pub origins: Origins,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub backlog: BacklogLimits,
    /// The web client served at `/` and `/r/<room>`.
    pub web: WebClient,
    /// Connections per address, events per second, room creation.
    pub limits: LimitConfig,
    /// When set, a join needs an invite token signed with this policy.
    pub invites: Option<Invites>,
    /// Serve HTTPS/WSS with this certificate instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Cluster mode: state in Redis, fan-out through socketioxide's Redis
    /// adapter (see [`cluster`]). `None`: the in-memory hub.
    pub redis: Option<ClusterConfig>,
    /// Who serves direct WebSocket connections on a single node.
    pub websocket: WsEngine,
}

/// Who serves clients that open a WebSocket directly (`transport=websocket`
/// without a polling session first): every Ringlet client does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WsEngine {
    /// Ringlet's own lean transport: one task and one buffer per
    /// connection (see BENCHMARKS.md for what that saves).
    #[default]
    Lean,
    /// socketioxide, like every other transport. Cluster mode always uses
    /// it (its fan-out is socketioxide's Redis adapter).
    Socketioxide,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            hub: HubConfig::default(),
            origins: Origins::default(),
            // The seed's values: long enough for slow ICE gathering.
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(60),
            backlog: BacklogLimits::default(),
            web: WebClient::default(),
            limits: LimitConfig::default(),
            invites: None,
            tls: None,
            redis: None,
            websocket: WsEngine::default(),
        }
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    Tls(tls::TlsListener),
}

/// A bound, not yet serving, signaling server.
pub struct Server {
    listener: Listener,
    local_addr: SocketAddr,
    router: Router,
    mode: Mode,
    metrics: Arc<Metrics>,
}

enum Mode {
    Local(SocketIo, Arc<io::Shared>, Option<Arc<lean::Lean>>),
    Cluster(cluster::Node),
}

impl Server {
    /// Binds the listening socket (and reads the TLS files, if any). Port 0
    /// picks a free one: read it back with [`Server::local_addr`]. With
    /// `redis` set, also connects to Redis and registers the node.
    pub async fn bind(mut config: Config) -> std::io::Result<Server> {
        let tls = config.tls.take().map(|files| files.load()).transpose()?;
        let tcp = tokio::net::TcpListener::bind(config.listen).await?;
        let local_addr = tcp.local_addr()?;
        let listener = match tls {
            Some(tls) => Listener::Tls(tls::TlsListener::new(tcp, tls)?),
            None => Listener::Tcp(tcp),
        };
        if let Some(cluster) = config.redis.clone() {
            let metrics = Arc::new(Metrics::default());
            let node = cluster::start(cluster, &config, Arc::clone(&metrics), sio_builder(&config))
                .await
                .map_err(std::io::Error::other)?;
            let layer = node.layer.clone();
            let cluster = Arc::clone(&node.cluster);
            let router = routes(Arc::clone(&metrics), config, |r| {
                r.layer(layer).route("/healthz", get(move || cluster::health(Arc::clone(&cluster))))
            });
            return Ok(Server { listener, local_addr, router, mode: Mode::Cluster(node), metrics });
        }
        let (router, io, shared, lean) = app_parts(config);
        let metrics = Arc::clone(&shared.metrics);
        Ok(Server { listener, local_addr, router, mode: Mode::Local(io, shared, lean), metrics })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `https` when serving TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        match self.listener {
            Listener::Tcp(_) => "http",
            Listener::Tls(_) => "https",
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The invite policy, when joins need tokens: an embedding app mints
    /// its own rooms' links with it.
    pub fn invites(&self) -> Option<&Invites> {
        match &self.mode {
            Mode::Local(_, shared, _) => shared.gate.invites.as_ref(),
            Mode::Cluster(node) => node.cluster.gate.invites.as_ref(),
        }
    }

    /// Serves until `shutdown` completes, then closes every socket and
    /// returns once connections have drained.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let mode = self.mode;
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: closing every socket");
            match mode {
                Mode::Local(io, shared, lean) => {
                    if let Some(lean) = lean {
                        lean.shutdown().await;
                    }
                    io.close().await;
                    shared.hub.lock().clear();
                }
                Mode::Cluster(node) => {
                    node.io.close().await;
                    node.cluster.shutdown().await;
                }
            }
        };
        let service = self.router.into_make_service_with_connect_info::<PeerAddr>();
        match self.listener {
            Listener::Tcp(l) => axum::serve(l, service).with_graceful_shutdown(shutdown).await,
            Listener::Tls(l) => axum::serve(l, service).with_graceful_shutdown(shutdown).await,
        }
    }
}

/// The HTTP application: Socket.IO on `/socket.io/`, `GET /healthz`,
/// `GET /metrics`, the web client on `/` and `/r/<room>`, with the origin
/// policy in front. Single node only (`config.redis` is ignored): cluster
/// mode connects to Redis, which [`Server::bind`] does.
pub fn app(config: Config) -> (Router, SocketIo, Arc<Metrics>) {
    let (router, io, shared, _) = app_parts(config);
    (router, io, Arc::clone(&shared.metrics))
}

fn app_parts(config: Config) -> (Router, SocketIo, Arc<io::Shared>, Option<Arc<lean::Lean>>) {
    let metrics = Arc::new(Metrics::default());
    let shared = Arc::new(io::Shared::new(
        hub::Hub::new(config.hub.clone(), Arc::clone(&metrics)),
        Arc::clone(&metrics),
        config.backlog,
        config.limits,
        config.invites.clone(),
    ));
    let (layer, sio) = sio_builder(&config).with_state(Arc::clone(&shared)).build_layer();
    // Attach runs in a connect *middleware*: those run before the socket is
    // registered and before CONNECT goes out, so no event can arrive before
    // the handlers exist (the connect handler proper runs after CONNECT).
    sio.ns(ringlet_proto::NAMESPACE, (async || {}).with(async |_: io::Attach| Ok::<(), std::convert::Infallible>(())));
    let lean = (config.websocket == WsEngine::Lean).then(|| {
        lean::Lean::new(
            Arc::clone(&shared),
            lean::LeanConfig {
                ping_interval: config.ping_interval,
                ping_timeout: config.ping_timeout,
                connect_timeout: CONNECT_TIMEOUT,
                max_message: MAX_MESSAGE,
                backlog: config.backlog,
            },
        )
    });
    let intercept = lean.clone();
    let router = routes(metrics, config, |r| {
        let r = r.layer(layer);
        // Outside socketioxide's layer: direct WebSockets never reach it.
        let r = match intercept {
            Some(lean) => r.layer(middleware::from_fn_with_state(lean, lean::intercept)),
            None => r,
        };
        r.route("/healthz", get(|| async { "ok\n" }))
    });
    (router, sio, shared, lean)
}

/// Socket.IO settings both modes share.
fn sio_builder(config: &Config) -> socketioxide::SocketIoBuilder {
    let builder = SocketIo::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .ping_interval(config.ping_interval)
        .ping_timeout(config.ping_timeout)
        .max_payload(MAX_MESSAGE as u64)
        .ws_max_message_size(MAX_MESSAGE)
        .ws_max_frame_size(MAX_MESSAGE)
        // Signaling messages are small; a connection's read buffer grows on
        // demand for the rare large SDP. Saves memory per idle client.
        .ws_read_buffer_size(1024);
    // A node delivers what other nodes relay straight into this buffer
    // (the adapter cannot wait for room), so a cluster node allows a
    // deeper one; it is allocated only as it fills.
    builder.max_buffer_size(if config.redis.is_some() { 16 * 1024 } else { 1024 })
}

/// The HTTP routes around a Socket.IO layer (`with_sio` adds it, and
/// `/healthz`, which differs by mode), with the origin policy in front.
fn routes(metrics: Arc<Metrics>, config: Config, with_sio: impl FnOnce(Router) -> Router) -> Router {
    let origins = Arc::new(config.origins);
    let cors_origins = Arc::clone(&origins);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, parts| {
            let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
            origin.to_str().is_ok_and(|o| cors_origins.allows(o, host))
        }))
        .allow_methods([http::Method::GET, http::Method::POST])
        .allow_headers([header::CONTENT_TYPE]);

    let m = Arc::clone(&metrics);
    let router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = Arc::clone(&m);
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render()) }
            }),
        )
        .route("/api/rooms", axum::routing::post(new_room))
        .with_state(Arc::new(RoomMint {
            invites: config.invites.clone(),
            per_ip: Mutex::new(limits::RateByIp::new(
                config.limits.room_creation_per_sec,
                config.limits.room_creation_burst,
                10_000,
            )),
            metrics: Arc::clone(&metrics),
        }))
        .merge(web::routes(config.web));
    with_sio(router)
        .layer(middleware::from_fn(detach_request_buffers))
        .layer(cors)
        .layer(middleware::from_fn_with_state(origins, origin_guard))
}

struct RoomMint {
    invites: Option<Invites>,
    per_ip: Mutex<limits::RateByIp>,
    metrics: Arc<Metrics>,
}

/// `POST /api/rooms`: a new room with an unguessable id, and its invite
/// token when the server requires them. This is how a client starts a call
/// on a server that requires tokens: the server names the room, so no one
/// can mint a token for a room whose id they merely learned.
///
/// `201 {"roomId": "...", "token": "...", "expiresAt": <unix seconds>}`
/// (`token` and `expiresAt` only with tokens), or `429` with a readable
/// error when an address creates rooms too fast.
async fn new_room(State(mint): State<Arc<RoomMint>>, req: Request) -> Response {
    use ringlet_proto::{Ack, ErrorBody, ErrorCode};
    // Absent only when served without connect info (in-process tests).
    if let Some(axum::extract::ConnectInfo(PeerAddr(addr, _))) = req.extensions().get() {
        if !mint.per_ip.lock().take(addr.ip(), std::time::Instant::now()) {
            mint.metrics.refused(ErrorCode::RateLimited);
            mint.metrics.limit_hit(metrics::Limit::RoomCreation);
            let body = Ack::<()>::Err(ErrorBody {
                code: ErrorCode::RateLimited,
                message: "too many new rooms from your address; wait a little".into(),
            });
            return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        }
    }
    let now = std::time::SystemTime::now();
    let body = match &mint.invites {
        Some(invites) => {
            let (room, minted) = invites.new_room(now);
            serde_json::json!({ "roomId": room, "token": minted.token, "expiresAt": minted.expires_at })
        }
        None => serde_json::json!({ "roomId": invite::random_room_id() }),
    };
    (StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// Copies the request line and headers out of hyper's read buffer.
///
/// engineioxide keeps each session's handshake request (`req_parts`) for
/// the life of the connection, and hyper's parsed header values and URI are
/// slices of its 16 KiB read buffer: keeping them kept that whole buffer
/// alive, which was over half of the memory of an idle connection.
/// Measured with massif: 16 KiB of an idle connection's ~29 KiB.
async fn detach_request_buffers(req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut headers = http::HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.append(name.clone(), v);
        }
    }
    parts.headers = headers;
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    // axum's copy of the URI shares the same buffer.
    parts.extensions.remove::<axum::extract::OriginalUri>();
    next.run(Request::from_parts(parts, body)).await
}

/// Refuses requests from browser origins outside the policy. CORS alone does
/// not cover WebSocket upgrades: browsers send Origin but do not enforce
/// CORS on them, so the check has to happen here.
async fn origin_guard(State(origins): State<Arc<Origins>>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let allowed = origin.to_str().is_ok_and(|o| origins.allows(o, host));
        if !allowed {
            tracing::debug!(?origin, "refused origin");
            return (StatusCode::FORBIDDEN, "origin not allowed; start ringlet-signal with --cors-origin\n")
                .into_response();
        }
    }
    next.run(req).await
}
