//! Frames into the webview over a loopback WebSocket.
//!
//! Measured on this project's target (WebKitGTK, software GL, 2 cores): a
//! loopback WebSocket is the fastest path into the page; custom URI
//! schemes cannot stream on Linux, and a Tauri channel runs every frame
//! through the main thread with no back-pressure. The remote picture goes
//! through untouched as VP8 for the page's WebCodecs `VideoDecoder` (no
//! decode here at all); the local preview, and the remote picture for a
//! page without VP8 in WebCodecs, go as JPEG.
//!
//! Any local process can connect to a loopback port, and any web page can
//! try: the socket demands the per-run secret in its URL and an app origin
//! (`tauri://localhost`), or nobody sees the camera.
//!
//! Wire format, one binary message per frame: `[kind u8][flags u8]
//! [timestamp_us u64 BE][payload]`. Kinds: 1 remote VP8 (flag bit 0:
//! keyframe), 2 local preview JPEG, 3 remote JPEG. The timestamp is when
//! the frame left the app's pipeline (µs since the Unix epoch), so the page
//! can measure the latency it adds. The page says what it wants with a
//! text message `{"remote":"vp8"|"jpeg"|"none","preview":true|false}`
//! (default: VP8 and preview), and `{"keyframe":true}` when its decoder
//! needs to start over.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::broadcast;

pub const KIND_REMOTE_VP8: u8 = 1;
pub const KIND_PREVIEW_JPEG: u8 = 2;
pub const KIND_REMOTE_JPEG: u8 = 3;
const HEADER: usize = 10;
/// Frames a slow page may fall behind before it skips (and, for VP8,
/// waits for the keyframe it asks for).
const BACKLOG: usize = 8;

/// The origins of the app's own webview, per platform.
pub const APP_ORIGINS: [&str; 3] = ["tauri://localhost", "http://tauri.localhost", "https://tauri.localhost"];

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

fn message(kind: u8, flags: u8, ts_us: u64, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + payload.len());
    b.put_u8(kind);
    b.put_u8(flags);
    b.put_u64(ts_us);
    b.put_slice(payload);
    b.freeze()
}

/// Counters, for the frame-path benchmark and tests.
#[derive(Debug, Default)]
pub struct HubStats {
    pub sent: AtomicU64,
    /// Frames a connection skipped because it fell behind.
    pub skipped: AtomicU64,
    pub refused: AtomicU64,
    pub connections: AtomicU64,
}

struct Inner {
    secret: String,
    origins: Vec<String>,
    remote_vp8: broadcast::Sender<Bytes>,
    remote_jpeg: broadcast::Sender<Bytes>,
    preview: broadcast::Sender<Bytes>,
    /// A page needs a keyframe to (re)start decoding.
    keyframe_wanted: AtomicBool,
    stats: HubStats,
}

/// The frame socket. Cheap to clone; the server runs until the runtime
/// it was bound on stops.
#[derive(Clone)]
pub struct FrameHub {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl FrameHub {
    /// Binds 127.0.0.1 on a free port with a fresh secret; only pages of
    /// `origins` may connect.
    pub async fn bind(origins: &[&str]) -> std::io::Result<FrameHub> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let secret: String = (0..16).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let inner = Arc::new(Inner {
            secret,
            origins: origins.iter().map(|s| s.to_string()).collect(),
            remote_vp8: broadcast::channel(BACKLOG).0,
            remote_jpeg: broadcast::channel(BACKLOG).0,
            preview: broadcast::channel(BACKLOG).0,
            keyframe_wanted: AtomicBool::new(false),
            stats: HubStats::default(),
        });
        let app = Router::new().route("/frames", get(upgrade)).with_state(Arc::clone(&inner));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "frame socket stopped");
            }
        });
        Ok(FrameHub { addr, inner })
    }

    /// The URL a page connects to, secret included.
    pub fn url(&self) -> String {
        format!("ws://{}/frames?secret={}", self.addr, self.inner.secret)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// A received VP8 frame, as it came off the network.
    pub fn publish_remote_vp8(&self, data: &[u8], keyframe: bool, ts_us: u64) {
        if self.inner.remote_vp8.receiver_count() > 0 {
            let _ = self.inner.remote_vp8.send(message(KIND_REMOTE_VP8, u8::from(keyframe), ts_us, data));
        }
    }

    /// Whether any page wants the remote picture as JPEG (then, and only
    /// then, is it worth decoding here).
    pub fn wants_remote_jpeg(&self) -> bool {
        self.inner.remote_jpeg.receiver_count() > 0
    }

    pub fn publish_remote_jpeg(&self, jpeg: &[u8], ts_us: u64) {
        let _ = self.inner.remote_jpeg.send(message(KIND_REMOTE_JPEG, 0, ts_us, jpeg));
    }

    /// Whether any page shows the preview (else skip the JPEG encode).
    pub fn wants_preview(&self) -> bool {
        self.inner.preview.receiver_count() > 0
    }

    pub fn publish_preview(&self, jpeg: &[u8], ts_us: u64) {
        let _ = self.inner.preview.send(message(KIND_PREVIEW_JPEG, 0, ts_us, jpeg));
    }

    /// Whether a page asked for a keyframe since the last call (it joined,
    /// or fell behind and skipped frames it needed).
    pub fn take_keyframe_request(&self) -> bool {
        self.inner.keyframe_wanted.swap(false, Ordering::Relaxed)
    }
}

#[derive(Deserialize)]
struct Auth {
    secret: Option<String>,
}

/// Compares without an early exit, so timing says nothing about the secret.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn upgrade(State(inner): State<Arc<Inner>>, Query(auth): Query<Auth>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("");
    let origin_ok = inner.origins.iter().any(|o| o == origin);
    let secret_ok = auth.secret.as_deref().is_some_and(|s| same(s, &inner.secret));
    if !origin_ok || !secret_ok {
        inner.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(origin, secret_ok, "refused a frame socket connection");
        return (StatusCode::FORBIDDEN, "forbidden\n").into_response();
    }
    inner.stats.connections.fetch_add(1, Ordering::Relaxed);
    ws.max_message_size(4096).on_upgrade(move |socket| serve(socket, inner))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RemoteMode {
    Vp8,
    Jpeg,
    None,
}

#[derive(Deserialize)]
struct Wants {
    remote: Option<RemoteMode>,
    preview: Option<bool>,
    /// The page's decoder broke: skip to a keyframe (asked for).
    #[serde(default)]
    keyframe: bool,
}

/// One page: forwards what it subscribed to, skipping what it cannot keep
/// up with. A VP8 stream that skipped waits for a keyframe (asked for).
async fn serve(mut socket: WebSocket, inner: Arc<Inner>) {
    let mut mode = RemoteMode::Vp8;
    let mut vp8 = Some(inner.remote_vp8.subscribe());
    let mut jpeg: Option<broadcast::Receiver<Bytes>> = None;
    let mut preview = Some(inner.preview.subscribe());
    let mut need_key = true;
    inner.keyframe_wanted.store(true, Ordering::Relaxed);

    async fn next(rx: &mut Option<broadcast::Receiver<Bytes>>) -> Result<Bytes, broadcast::error::RecvError> {
        match rx {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    }

    loop {
        let (out, skipped_vp8) = tokio::select! {
            m = socket.recv() => {
                match m {
                    Some(Ok(Message::Text(t))) => {
                        let Ok(w) = serde_json::from_str::<Wants>(&t) else { continue };
                        if let Some(m) = w.remote {
                            if m != mode {
                                mode = m;
                                vp8 = (m == RemoteMode::Vp8).then(|| inner.remote_vp8.subscribe());
                                jpeg = (m == RemoteMode::Jpeg).then(|| inner.remote_jpeg.subscribe());
                                need_key = true;
                                inner.keyframe_wanted.store(true, Ordering::Relaxed);
                            }
                        }
                        if let Some(p) = w.preview {
                            preview = p.then(|| inner.preview.subscribe());
                        }
                        if w.keyframe {
                            need_key = true;
                            inner.keyframe_wanted.store(true, Ordering::Relaxed);
                        }
                        continue;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => break,
                }
            }
            r = next(&mut vp8) => match r {
                Ok(frame) => {
                    let keyframe = frame.get(1).is_some_and(|f| f & 1 == 1);
                    if need_key && !keyframe {
                        inner.stats.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    need_key = false;
                    (frame, false)
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    inner.stats.skipped.fetch_add(n, Ordering::Relaxed);
                    (Bytes::new(), true)
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            r = next(&mut jpeg) => match r {
                Ok(frame) => (frame, false),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    inner.stats.skipped.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            r = next(&mut preview) => match r {
                Ok(frame) => (frame, false),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    inner.stats.skipped.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        if skipped_vp8 {
            // Deltas after a gap cannot decode: wait for a keyframe.
            need_key = true;
            inner.keyframe_wanted.store(true, Ordering::Relaxed);
            continue;
        }
        if socket.send(Message::Binary(out)).await.is_err() {
            break;
        }
        inner.stats.sent.fetch_add(1, Ordering::Relaxed);
    }
}
