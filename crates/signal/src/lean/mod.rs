//! The lean transport: direct WebSocket connections (`EIO=4`,
//! `transport=websocket`, no `sid`) served without socketioxide's
//! per-session machinery.
//!
//! # Why it exists
//!
//! Every Ringlet client (the engine and the web page) and most Socket.IO
//! clients configured for it open a WebSocket straight away. For those,
//! socketioxide costs three tasks, two channels and a tungstenite stream per
//! connection (about 20 KB idle) and a dozen hops per relayed message.
//! Here a connection is one task and one outgoing buffer, reads land in a
//! per-thread scratch buffer so an idle connection holds none, and a relay
//! is decoded, validated and framed once, straight into the recipient's
//! buffer, which its task writes with one syscall per wake-up. The
//! measured difference is in BENCHMARKS.md.
//!
//! Everything else stays on socketioxide: HTTP long-polling, upgrades from
//! it (the seed's browser client), and cluster mode, whose fan-out is
//! socketioxide's Redis adapter. Both transports drive the same [`Hub`]
//! through the same `handle` and [`Gate`](crate::io::Gate), so a peer on one
//! talks to a peer on the other and every rule (validation, limits, tokens,
//! grace, held messages) is one piece of code.
//!
//! [`Hub`]: crate::hub::Hub

mod conn;
mod pace;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio_util::task::TaskTracker;

use crate::hub::{Outgoing, Sink, SinkError, To};
use crate::io::{BacklogLimits, SharedState};
use crate::tls::PeerAddr;

/// How long a graceful shutdown waits for connections to say goodbye.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Settings of the lean transport, taken from the server's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeanConfig {
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    /// A connection that has not connected to `/signaling` by then is
    /// closed (socketioxide's `connect_timeout`).
    pub(crate) connect_timeout: Duration,
    pub(crate) max_message: usize,
    pub(crate) backlog: BacklogLimits,
}

/// The lean transport's shared part: settings, and the live connections
/// (so a shutdown can close them).
pub(crate) struct Lean {
    pub(crate) shared: SharedState,
    pub(crate) config: LeanConfig,
    conns: Mutex<HashMap<u64, Outbox>>,
    next_id: AtomicU64,
    tasks: TaskTracker,
}

impl Lean {
    pub(crate) fn new(shared: SharedState, config: LeanConfig) -> Arc<Lean> {
        Arc::new(Lean {
            shared,
            config,
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            tasks: TaskTracker::new(),
        })
    }

    fn register(&self, outbox: &Outbox) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns.lock().insert(id, outbox.clone());
        // Upgraded after a shutdown began (which closes the tracker before
        // it reads the list): this one must end too.
        if self.tasks.is_closed() {
            outbox.end(End::Shutdown);
        }
        id
    }

    fn unregister(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    /// Tells every connection the server is going away (a Socket.IO
    /// DISCONNECT, then a WebSocket close) and waits for them to finish.
    pub(crate) async fn shutdown(&self) {
        self.tasks.close();
        let outboxes: Vec<Outbox> = self.conns.lock().values().cloned().collect();
        for o in outboxes {
            o.end(End::Shutdown);
        }
        if tokio::time::timeout(SHUTDOWN_WAIT, self.tasks.wait()).await.is_err() {
            tracing::warn!(left = self.tasks.len(), "lean connections did not close in time");
        }
    }
}

/// Takes direct WebSocket connections to `/socket.io/`; passes every other
/// request on (to socketioxide).
pub(crate) async fn intercept(State(lean): State<Arc<Lean>>, mut req: Request, next: Next) -> Response {
    let Some(key) = direct_websocket(&req) else { return next.run(req).await };
    if lean.tasks.is_closed() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let accept = wire::accept_key(key.as_bytes());
    let peer = req.extensions().get::<axum::extract::ConnectInfo<PeerAddr>>().map(|c| c.0);
    let ip = peer.map(|p| p.0.ip());
    let fd = peer.and_then(|p| p.1);
    let upgrade = hyper::upgrade::on(&mut req);
    let tracked = Arc::clone(&lean);
    lean.tasks.spawn(async move {
        match upgrade.await {
            Ok(io) => conn::serve(tracked, hyper_util::rt::TokioIo::new(io), ip, fd).await,
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, HeaderValue::from_str(&accept).expect("base64 is a header value"));
    res
}

/// The client's `Sec-WebSocket-Key` when `req` opens an Engine.IO v4
/// WebSocket directly. Anything else (polling, an upgrade of a polling
/// session, protocol v3, a malformed handshake) is socketioxide's to serve
/// or refuse.
fn direct_websocket(req: &Request) -> Option<String> {
    if req.method() != http::Method::GET || req.uri().path().trim_end_matches('/') != "/socket.io" {
        return None;
    }
    let query = req.uri().query()?;
    let (mut eio4, mut ws) = (false, false);
    for pair in query.split('&') {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("EIO", v) => eio4 = v == "4",
            ("transport", v) => ws = v == "websocket",
            ("sid", _) => return None,
            _ => {}
        }
    }
    let headers = req.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let upgrade = has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade");
    let version = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?;
    (eio4 && ws && upgrade && version && !key.is_empty()).then(|| key.to_owned())
}

// ------------------------------------------------------------------ outbox

/// A lean connection's outgoing side: framed bytes waiting for its task,
/// which writes all of them at its next wake-up. Relays from other
/// connections, the hub's presence events and the connection's own acks
/// all go through it, so they leave in the order they were decided.
#[derive(Clone)]
pub struct Outbox(Arc<OutboxInner>);

struct OutboxInner {
    out: Mutex<Out>,
    waker: AtomicWaker,
    /// Set with every wake-up the outbox gives, so the task can tell them
    /// from the socket's (which alone may start a read hold).
    woke: AtomicBool,
    limits: BacklogLimits,
}

#[derive(Default)]
struct Out {
    bytes: Vec<u8>,
    frames: usize,
    end: Option<End>,
}

/// Why a connection's task must stop, told from outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The server is shutting down.
    Shutdown,
    /// Disconnected for flooding.
    Kick,
    /// The task has ended; nothing more is accepted.
    Closed,
}

impl Outbox {
    fn new(limits: BacklogLimits) -> Outbox {
        Outbox(Arc::new(OutboxInner { out: Mutex::default(), waker: AtomicWaker::new(), woke: AtomicBool::new(false), limits }))
    }

    /// Appends one text frame made of `parts`; wakes the task if it was idle.
    /// A reply of the connection to its own client (an ack, an error
    /// event, a pong, a CONNECT answer).
    fn push(&self, parts: &[&[u8]]) -> Result<(), SinkError> {
        self.push_frame(wire::OP_TEXT, parts, From::Itself)
    }

    /// Appends one frame. Everything is bounded in bytes (a client that
    /// pings and never reads fills its own outbox, nothing more); relays
    /// from others are also bounded in count, as socketioxide's buffer is.
    /// A client's own replies are not: a client pipelining many acked
    /// events in one write is reading, and gets every ack.
    fn push_frame(&self, opcode: u8, parts: &[&[u8]], from: From) -> Result<(), SinkError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = self.0.out.lock();
        if out.end == Some(End::Closed) {
            return Err(SinkError::Closed);
        }
        let limits = self.0.limits;
        let too_many = from == From::Others && out.frames >= limits.messages;
        // Relays from others fill up to the limit; the connection's own
        // replies (acks, pongs, the goodbye) have a little more, so a full
        // backlog does not swallow the ack of an event the client sent.
        let cap = match from {
            From::Others => limits.bytes,
            From::Itself => limits.bytes + OWN_REPLY_RESERVE,
        };
        if too_many || out.bytes.len() + wire::frame_len(len) > cap {
            return Err(SinkError::Backlogged);
        }
        let was_empty = out.bytes.is_empty();
        wire::frame(&mut out.bytes, opcode, parts);
        if from == From::Others {
            out.frames += 1;
        }
        drop(out);
        if was_empty {
            self.wake();
        }
        Ok(())
    }

    /// A Socket.IO event on `/signaling`: `42/signaling,["ev",payload]`.
    fn event(&self, ev: &str, payload: &str, from: From) -> Result<(), SinkError> {
        self.event_pieces(ev, [payload, "", "", ""], from)
    }

    /// [`Outbox::event`] with the payload in pieces (see [`Outgoing`]).
    fn event_pieces(&self, ev: &str, payload: [&str; 4], from: From) -> Result<(), SinkError> {
        let [a, b, c, d] = payload.map(str::as_bytes);
        let parts: [&[u8]; 8] = [b"42/signaling,[\"", ev.as_bytes(), b"\",", a, b, c, d, b"]"];
        self.push_frame(wire::OP_TEXT, &parts, from)
    }

    /// Asks the task to stop (a shutdown or a kick; the first reason wins).
    fn end(&self, why: End) {
        let mut out = self.0.out.lock();
        if out.end.is_none() {
            out.end = Some(why);
        }
        drop(out);
        self.wake();
    }

    fn wake(&self) {
        self.0.woke.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Registers the task's waker; whether the outbox woke the task since
    /// the last call.
    fn register(&self, waker: &std::task::Waker) -> bool {
        self.0.waker.register(waker);
        self.0.woke.swap(false, Ordering::AcqRel)
    }

    /// Bytes queued and not yet taken by the task.
    fn queued(&self) -> usize {
        self.0.out.lock().bytes.len()
    }

    /// Whether the task was asked to stop.
    fn ending(&self) -> Option<End> {
        self.0.out.lock().end
    }

    /// The task has ended: from now on sends fail with `Closed`.
    fn close(&self) {
        let mut out = self.0.out.lock();
        out.end = Some(End::Closed);
        out.bytes = Vec::new();
        out.frames = 0;
    }

    /// Moves what is queued onto `wbuf` once `wbuf` has been written
    /// (so a client that stops reading leaves its bytes here, where the
    /// limits see them); the reason to stop, if any.
    fn take(&self, wbuf: &mut Vec<u8>) -> Option<End> {
        let mut out = self.0.out.lock();
        if wbuf.is_empty() && !out.bytes.is_empty() {
            std::mem::swap(wbuf, &mut out.bytes);
            out.frames = 0;
        }
        out.end
    }

    /// The last of it, whatever `wbuf` holds: the goodbye.
    fn take_rest(&self, wbuf: &mut Vec<u8>) {
        let mut out = self.0.out.lock();
        wbuf.extend_from_slice(&out.bytes);
        out.bytes.clear();
    }
}

/// Room past the backlog's byte limit that only a connection's own
/// replies may use (see [`Outbox::push_frame`]): a client that reads
/// nothing at all is dropped after the ping timeout long before it matters.
const OWN_REPLY_RESERVE: usize = 64 * 1024;

/// Who queued a frame: the limits differ (see [`Outbox::push_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Itself,
    Others,
}

impl Sink for Outbox {
    fn send(&self, _to: To<'_>, ev: &'static str, payload: &Outgoing<'_>) -> Result<(), SinkError> {
        self.event_pieces(ev, *payload.pieces(), From::Others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path_and_query: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = http::Request::builder().method("GET").uri(path_and_query);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    const WS: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn only_direct_engineio4_websockets_are_taken() {
        let key = Some("dGhlIHNhbXBsZSBub25jZQ==".to_owned());
        assert_eq!(direct_websocket(&get("/socket.io/?EIO=4&transport=websocket", &WS)), key);
        assert_eq!(direct_websocket(&get("/socket.io?transport=websocket&EIO=4&t=x", &WS)), key);
        for uri in [
            "/socket.io/?EIO=4&transport=polling",
            "/socket.io/?EIO=3&transport=websocket",
            "/socket.io/?EIO=4&transport=websocket&sid=abc", // an upgrade: socketioxide's session
            "/other/?EIO=4&transport=websocket",
            "/socket.io/",
        ] {
            assert_eq!(direct_websocket(&get(uri, &WS)), None, "{uri}");
        }
        for missing in 0..WS.len() {
            let headers: Vec<_> = WS.iter().enumerate().filter(|(i, _)| *i != missing).map(|(_, h)| *h).collect();
            assert_eq!(direct_websocket(&get("/socket.io/?EIO=4&transport=websocket", &headers)), None);
        }
    }

    #[test]
    fn the_outbox_tells_its_wake_ups_from_others() {
        let o = Outbox::new(BacklogLimits { messages: 8, bytes: 1 << 20 });
        let waker = std::task::Waker::noop();
        assert!(!o.register(waker), "nothing pushed yet");
        o.push(&[b"3"]).unwrap();
        assert!(o.register(waker), "a push woke the task");
        assert!(!o.register(waker), "and is told once");
        o.push(&[b"3"]).unwrap(); // on bytes not yet taken: no second wake-up
        assert!(!o.register(waker));
        o.take(&mut Vec::new());
        o.event("a", "1", From::Others).unwrap();
        assert!(o.register(waker), "a relay from another connection");
        o.end(End::Shutdown);
        assert!(o.register(waker), "an ending");
    }

    #[test]
    fn the_outbox_is_bounded_ordered_and_closes() {
        let o = Outbox::new(BacklogLimits { messages: 3, bytes: 1 << 20 });
        o.event("a", "1", From::Others).unwrap();
        o.event("b", "2", From::Others).unwrap();
        o.event("c", "3", From::Others).unwrap();
        assert_eq!(o.event("d", "4", From::Others), Err(SinkError::Backlogged));
        let mut wbuf = vec![];
        assert_eq!(o.take(&mut wbuf), None);
        let text = String::from_utf8_lossy(&wbuf);
        let (a, b, c) = (text.find("[\"a\",1]"), text.find("[\"b\",2]"), text.find("[\"c\",3]"));
        assert!(a < b && b < c && a.is_some(), "{text}");
        o.event("d", "4", From::Others).unwrap();
        o.end(End::Kick);
        o.end(End::Shutdown);
        assert_eq!(o.take(&mut wbuf), Some(End::Kick), "the first reason wins");
        assert_eq!(o.event("e", "5", From::Others), Ok(()), "a kicked connection still says goodbye");
        o.close();
        assert_eq!(o.event("e", "5", From::Others), Err(SinkError::Closed));
        let bytes = Outbox::new(BacklogLimits { messages: 100, bytes: 40 });
        bytes.event("a", "1", From::Others).unwrap();
        assert_eq!(bytes.event("b", &"x".repeat(30), From::Others), Err(SinkError::Backlogged));
    }
}
