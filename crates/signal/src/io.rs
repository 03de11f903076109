//! The socketioxide glue: turns Socket.IO events into [`Hub`] calls and hub
//! output into emits.
//!
//! # Why the work happens in extractors
//!
//! socketioxide 0.18 spawns one task per incoming event (and per connect and
//! disconnect). On a multi-thread runtime those tasks run in any order: a
//! burst of candidates from one sender was measured arriving out of order.
//! The *extractors* of a handler, though, run synchronously on the
//! connection's read path, in the order packets arrive. So every event here
//! is handled inside [`Inbound`]'s extraction and the spawned handler body is
//! empty. Connect ([`Attach`], in a connect middleware, which runs before
//! CONNECT is sent so no event can beat the handler registration) and
//! disconnect ([`Detach`]) work the same way.
//!
//! # Why there is a backlog
//!
//! A socket's outgoing buffer is a bounded channel with only a non-blocking
//! `try_reserve`. A burst larger than it would fail with
//! `InternalChannelFull`, so each connection keeps its own bounded
//! [`Backlog`] behind it, drained in order as the transport catches up.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use ringlet_proto::{
    event, Ack, ErrorBody, ErrorCode, ErrorEvent, JoinAccepted, JoinRequest, LeaveRequest, RelayKind, RelayView,
};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, SocketRef, State};
use socketioxide::handler::{FromConnectParts, FromDisconnectParts, FromMessage, FromMessageParts};
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::{SendError, SocketError};
use socketioxide_core::Value;

use crate::hub::{Departure, Hub, Outgoing, Sink, SinkError, Timer, To, Unsent};
use crate::invite::Invites;
use crate::limits::{EventRate, LimitConfig, PerIp, RateByIp, Verdict};
use crate::metrics::Metrics;
use crate::tls::PeerAddr;

type A = LocalAdapter;

/// Limits of a connection's [`Backlog`].
#[derive(Debug, Clone, Copy)]
pub struct BacklogLimits {
    pub messages: usize,
    pub bytes: usize,
}

impl Default for BacklogLimits {
    fn default() -> Self {
        BacklogLimits { messages: 16 * 1024, bytes: 8 * 1024 * 1024 }
    }
}

/// State shared by every connection: the hub behind one lock, and the
/// limits kept per connection and per address.
pub struct Shared {
    pub(crate) hub: Mutex<Hub<Sid, Outlet>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) backlog: BacklogLimits,
    pub(crate) gate: Gate,
}

/// Who may connect, send and join: the limits and invite tokens, the same
/// for the single-node path and cluster mode (`crate::cluster`).
pub(crate) struct Gate {
    pub(crate) limits: LimitConfig,
    /// Present when joins need an invite token.
    pub(crate) invites: Option<Invites>,
    guard: Mutex<Guard>,
    /// Per address, connections lost with their seats kept for the grace
    /// period (see [`Gate::keeps_seats`]).
    kept_seats: Mutex<RateByIp>,
    metrics: Arc<Metrics>,
}

/// Addresses [`Gate::kept_seats`] tracks at most (past that, a lost
/// connection from a new address gives its seats up at once).
const MAX_KEPT_SEATS_TRACKED: usize = 16 * 1024;

/// What the limits remember: connections per address, and each
/// connection's event rate. Bounded by the live connections.
#[derive(Default)]
pub(crate) struct Guard {
    per_ip: PerIp,
    /// Lean WebSockets that opened while their address had no place left:
    /// allowed as many again, so a client can read its refusal and retry
    /// its CONNECT, but no more.
    waiting: PerIp,
    conns: foldhash::HashMap<Sid, ConnGuard>,
    /// Addresses a connection of which was disconnected for flooding, and
    /// until when their new connections start without a burst in hand
    /// (`EventRate::after_kick`). Bounded: see [`Gate::remember_kick`].
    kicked: foldhash::HashMap<IpAddr, Instant>,
}

/// Addresses [`Guard::kicked`] holds at most: past that, kicks are not
/// remembered until some lapse (a flood from that many addresses is past
/// what a per-address memory can help with).
const MAX_KICKED_REMEMBERED: usize = 4096;

struct ConnGuard {
    /// The address, if counted here (and given back at detach).
    counted: Option<IpAddr>,
    /// The address, whoever counts it: a kick is remembered against it.
    from: Option<IpAddr>,
    rate: EventRate,
    /// Disconnected for flooding: it leaves its rooms at once.
    kicked: bool,
}

impl Shared {
    pub(crate) fn new(
        hub: Hub<Sid, Outlet>,
        metrics: Arc<Metrics>,
        backlog: BacklogLimits,
        limits: LimitConfig,
        invites: Option<Invites>,
    ) -> Self {
        let gate = Gate::new(limits, invites, hub.config().grace, Arc::clone(&metrics));
        Shared { hub: Mutex::new(hub), metrics, backlog, gate }
    }
}

impl Shared {
    /// Runs `f` on the hub, then schedules the timers it asked for.
    pub(crate) fn with_hub<R>(self: &Arc<Self>, f: impl FnOnce(&mut Hub<Sid, Outlet>) -> R) -> R {
        let (r, timers) = {
            let mut hub = self.hub.lock();
            let r = f(&mut hub);
            (r, hub.take_timers())
        };
        for t in timers {
            self.schedule(t);
        }
        r
    }

    fn schedule(self: &Arc<Self>, timer: Timer) {
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(timer.after).await;
            shared.with_hub(|hub| hub.expire(&timer));
        });
    }
}

pub(crate) type SharedState = Arc<Shared>;

impl Gate {
    /// `grace`: how long a lost connection's seats are kept.
    pub(crate) fn new(limits: LimitConfig, invites: Option<Invites>, grace: Duration, metrics: Arc<Metrics>) -> Gate {
        // As many lost connections kept per grace period as an address may
        // have open: a network blip keeps every seat behind a NAT, while
        // connecting, joining and dropping in a loop cannot fill the
        // server's rooms with seats kept for no one.
        let burst = limits.connections_per_ip as f64;
        let rate = burst / grace.as_secs_f64().max(1.0);
        let kept_seats = Mutex::new(RateByIp::new(rate, burst, MAX_KEPT_SEATS_TRACKED));
        Gate { limits, invites, guard: Mutex::default(), kept_seats, metrics }
    }

    /// Whether a connection from `from` that was lost (not hung up or
    /// kicked) keeps its seats for the grace period; if not, it leaves its
    /// rooms at once, as if it had hung up.
    pub(crate) fn keeps_seats(&self, from: Option<IpAddr>) -> bool {
        let (Some(ip), true) = (from, self.limits.connections_per_ip > 0) else { return true };
        if self.kept_seats.lock().take(ip, Instant::now()) {
            return true;
        }
        self.metrics.limit_hit(crate::metrics::Limit::AwayPerIp);
        tracing::info!(%ip, "a lost connection gives up its seats: its address keeps too many");
        false
    }

    /// Connect: counts the address (refusing one over its limit) and starts
    /// the connection's event budget.
    pub(crate) fn attach<Ad: Adapter>(&self, s: &Socket<Ad>) -> Result<(), ConnectRefused> {
        // Absent only when the router is served without connect info
        // (in-process tests): then there is no address to count.
        let ip = s.req_parts().extensions.get::<axum::extract::ConnectInfo<PeerAddr>>().map(|c| c.0 .0.ip());
        self.attach_sid(s.id, ip)
    }

    /// [`Gate::attach`] for a connection known by its id and address
    /// (`None`: not counted here, or already by [`Gate::hold_address`]).
    pub(crate) fn attach_sid(&self, sid: Sid, ip: Option<IpAddr>) -> Result<(), ConnectRefused> {
        self.attach_with(sid, ip, ip, None)
    }

    /// A connection whose address is counted elsewhere (a lean WebSocket:
    /// by [`Gate::hold_address`]), coming from `from`; with `carried`, the
    /// event budget it left with at its last DISCONNECT on the same
    /// transport (connecting again must not fill it).
    pub(crate) fn attach_counted(&self, sid: Sid, from: Option<IpAddr>, carried: Option<EventRate>) {
        self.attach_with(sid, None, from, carried).expect("nothing to count, nothing to refuse");
    }

    fn attach_with(
        &self,
        sid: Sid,
        count: Option<IpAddr>,
        from: Option<IpAddr>,
        carried: Option<EventRate>,
    ) -> Result<(), ConnectRefused> {
        let mut guard = self.guard.lock();
        if let Some(ip) = count {
            if !guard.per_ip.try_add(ip, self.limits.connections_per_ip) {
                drop(guard);
                return Err(self.address_full(ip));
            }
        }
        let now = Instant::now();
        let after_kick = from.and_then(|ip| guard.kicked.get(&ip)).is_some_and(|&until| now < until);
        let rate = match carried {
            Some(rate) => rate,
            None if after_kick => EventRate::after_kick(&self.limits, now),
            None => EventRate::new(&self.limits, now),
        };
        guard.conns.insert(sid, ConnGuard { counted: count, from, rate, kicked: false });
        Ok(())
    }

    /// Counts a transport against its address from the moment it opens,
    /// for as long as it stays open (a lean WebSocket: connecting to and
    /// disconnecting from `/signaling` over and over cannot get around
    /// the limit then); false when the address has no place left.
    pub(crate) fn hold_address(&self, ip: IpAddr) -> bool {
        self.guard.lock().per_ip.try_add(ip, self.limits.connections_per_ip)
    }

    /// For a transport whose address had no place: one of as many places
    /// again to wait in (see `Guard::waiting`); false when those are full
    /// too, and the transport is to be closed.
    pub(crate) fn hold_waiting(&self, ip: IpAddr) -> bool {
        self.guard.lock().waiting.try_add(ip, self.limits.connections_per_ip)
    }

    /// Gives back a place taken by [`Gate::hold_address`] or, with
    /// `waiting`, by [`Gate::hold_waiting`].
    pub(crate) fn release_address(&self, ip: IpAddr, waiting: bool) {
        let mut guard = self.guard.lock();
        if waiting {
            guard.waiting.remove(ip);
        } else {
            guard.per_ip.remove(ip);
        }
    }

    /// The refusal of a CONNECT from an address with no place left.
    pub(crate) fn address_full(&self, ip: IpAddr) -> ConnectRefused {
        self.metrics.refused(ErrorCode::LimitExceeded);
        self.metrics.limit_hit(crate::metrics::Limit::ConnectionsPerIp);
        tracing::debug!(%ip, "refused: too many connections from this address");
        ConnectRefused(format!(
            "{}: too many connections from your address (at most {}); close some and retry",
            ErrorCode::LimitExceeded,
            self.limits.connections_per_ip
        ))
    }

    /// Disconnect: forgets the connection; whether it was kicked for flooding.
    pub(crate) fn detach(&self, sid: Sid) -> bool {
        self.remove(sid).is_some_and(|c| c.kicked)
    }

    /// How a connection that ended without hanging up leaves: `Lost`
    /// (its seats kept for the grace period), unless it was kicked or its
    /// address has kept too many seats of late ([`Gate::keeps_seats`]).
    pub(crate) fn detach_lost(&self, sid: Sid) -> Departure {
        match self.remove(sid) {
            Some(c) if c.kicked || !self.keeps_seats(c.from) => Departure::Deliberate,
            _ => Departure::Lost,
        }
    }

    /// [`Gate::detach`], and the event budget the connection leaves with
    /// (for [`Gate::attach_counted`] to carry on).
    pub(crate) fn detach_rate(&self, sid: Sid) -> Option<EventRate> {
        self.remove(sid).map(|c| c.rate)
    }

    /// Forgets a connection, giving back its place under its address's
    /// limit if it was counted here.
    fn remove(&self, sid: Sid) -> Option<ConnGuard> {
        let mut guard = self.guard.lock();
        let conn = guard.conns.remove(&sid)?;
        if let Some(ip) = conn.counted {
            guard.per_ip.remove(ip);
        }
        Some(conn)
    }

    /// New connections from `ip` start without a burst in hand for a
    /// while: reconnecting is no way around a kick.
    fn remember_kick(&self, guard: &mut Guard, ip: IpAddr, now: Instant) {
        let lasts = EventRate::kick_lasts(&self.limits);
        if guard.kicked.len() >= MAX_KICKED_REMEMBERED {
            guard.kicked.retain(|_, until| now < *until);
        }
        if guard.kicked.len() < MAX_KICKED_REMEMBERED || guard.kicked.contains_key(&ip) {
            guard.kicked.insert(ip, now + lasts);
        }
    }

    /// Whether the connection's next event is within its rate: the reply
    /// back when it is; else the event is refused (and a persistent
    /// flooder disconnected) here.
    /// `ev` names the event, for the refusal (only looked at then).
    pub(crate) fn admit<'e, R: Respond>(&self, reply: R, ev: impl FnOnce() -> Option<&'e str>) -> Option<R> {
        self.admit_at(reply, Instant::now(), ev)
    }

    /// [`Gate::admit`] for an event read at `now` (a transport that reads
    /// several events at once asks the clock once for all of them).
    pub(crate) fn admit_at<'e, R: Respond>(
        &self,
        reply: R,
        now: Instant,
        ev: impl FnOnce() -> Option<&'e str>,
    ) -> Option<R> {
        let verdict = {
            let mut guard = self.guard.lock();
            match guard.conns.get_mut(&reply.sid()) {
                None => Verdict::Admit,
                Some(conn) => {
                    let verdict = conn.rate.check(now);
                    if verdict == Verdict::Disconnect {
                        conn.kicked = true;
                        if let Some(ip) = conn.from {
                            self.remember_kick(&mut guard, ip, now);
                        }
                    }
                    verdict
                }
            }
        };
        if verdict == Verdict::Admit {
            return Some(reply);
        }
        self.metrics.refused(ErrorCode::RateLimited);
        self.metrics.limit_hit(crate::metrics::Limit::EventRate);
        let sid = reply.sid();
        let per_sec = self.limits.events_per_sec;
        let message = if verdict == Verdict::Disconnect {
            format!("too many events (over {per_sec}/s) for too long; disconnected")
        } else {
            format!("too many events (over {per_sec}/s); slow down")
        };
        if verdict == Verdict::Disconnect {
            self.metrics.kicked();
            tracing::info!(%sid, "disconnected a connection that kept flooding");
            reply.refuse_and_disconnect(ev(), ErrorBody { code: ErrorCode::RateLimited, message });
        } else {
            reply.refuse(ev(), None, ErrorBody { code: ErrorCode::RateLimited, message });
        }
        None
    }

    /// A join's invite token, when the server requires one.
    pub(crate) fn check_join(&self, req: &JoinRequest, now: SystemTime) -> Result<(), ErrorBody> {
        if let Some(invites) = &self.invites {
            if let Err(e) = invites.check(req.room_id(), req.token(), now) {
                self.metrics.refused(e.code());
                return Err(e.to_body());
            }
        }
        Ok(())
    }

    /// A fresh token in an accepted join, for links shared from here on
    /// and for rejoins after the first one has expired.
    pub(crate) fn stamp(&self, accepted: &mut JoinAccepted, now: SystemTime) {
        if let Some(invites) = &self.invites {
            accepted.token = Some(invites.mint(&accepted.room_id, now).token);
        }
    }
}

/// The event name of a packet, for an error event about it.
pub(crate) fn event_name(v: &Value) -> Option<&str> {
    match v {
        Value::Str(text, _) => split_packet(text).map(|p| p.event),
        Value::Bytes(_) => None,
    }
}

// ------------------------------------------------------------------ outgoing

#[derive(Default)]
struct Backlog {
    queue: VecDeque<Unsent>,
    bytes: usize,
    draining: bool,
    /// The socket closed with this backlog: it waits (still bounded, still
    /// in order) for the hub to take it into held queues at the disconnect.
    closed: bool,
}

/// A connection's outgoing side: socketioxide's buffer, then our backlog.
#[derive(Clone)]
pub struct SocketSink {
    socket: SocketRef<A>,
    backlog: Arc<Mutex<Backlog>>,
    limits: BacklogLimits,
}

/// A connection's outgoing side, whichever transport carries it.
#[derive(Clone)]
pub enum Outlet {
    /// A socketioxide socket (polling, upgrades, TLS).
    Sio(SocketSink),
    /// A direct WebSocket served by the lean transport.
    Lean(crate::lean::Outbox),
}

impl Sink for Outlet {
    fn send(&self, to: To<'_>, ev: &'static str, payload: &Outgoing<'_>) -> Result<(), SinkError> {
        match self {
            Outlet::Sio(s) => s.send(to, ev, payload),
            Outlet::Lean(o) => o.send(to, ev, payload),
        }
    }

    fn take_unsent(&self) -> Vec<Unsent> {
        match self {
            Outlet::Sio(s) => s.take_unsent(),
            Outlet::Lean(o) => o.take_unsent(),
        }
    }

    fn take_unsent_for(&self, to: To<'_>) -> Vec<Unsent> {
        match self {
            Outlet::Sio(s) => s.take_unsent_for(to),
            Outlet::Lean(o) => o.take_unsent_for(to),
        }
    }
}

enum Emit {
    Sent,
    Full,
    Closed,
}

fn emit(socket: &SocketRef<A>, ev: &str, payload: &RawValue) -> Emit {
    match socket.emit(ev, payload) {
        Ok(()) => Emit::Sent,
        Err(SendError::Socket(SocketError::InternalChannelFull)) => Emit::Full,
        Err(SendError::Socket(SocketError::Closed)) => Emit::Closed,
        Err(SendError::Serialize(e)) => {
            // Payloads are validated JSON; this would be a bug, not input.
            tracing::error!(error = %e, "could not serialize an outgoing event");
            Emit::Sent
        }
    }
}

impl Sink for SocketSink {
    fn send(&self, to: To<'_>, ev: &'static str, payload: &Outgoing<'_>) -> Result<(), SinkError> {
        let payload = payload.payload();
        let mut b = self.backlog.lock();
        if b.queue.is_empty() {
            match emit(&self.socket, ev, payload.raw()) {
                Emit::Sent => return Ok(()),
                Emit::Closed => return Err(SinkError::Closed),
                Emit::Full => {}
            }
        }
        let size = payload.get().len();
        if b.queue.len() >= self.limits.messages || b.bytes + size > self.limits.bytes {
            return Err(SinkError::Backlogged);
        }
        // Behind a backlog, even a closed socket's: order first.
        let unsent = Unsent { room: to.room.clone(), peer: to.peer.clone(), event: ev, payload: payload.clone() };
        b.queue.push_back(unsent);
        b.bytes += size;
        if !b.draining && !b.closed {
            b.draining = true;
            tokio::spawn(drain(self.socket.clone(), Arc::clone(&self.backlog)));
        }
        Ok(())
    }

    fn take_unsent(&self) -> Vec<Unsent> {
        let mut b = self.backlog.lock();
        b.bytes = 0;
        b.queue.drain(..).collect()
    }

    fn take_unsent_for(&self, to: To<'_>) -> Vec<Unsent> {
        let mut b = self.backlog.lock();
        let (mine, rest): (VecDeque<Unsent>, VecDeque<Unsent>) =
            std::mem::take(&mut b.queue).into_iter().partition(|u| u.room == *to.room && u.peer == *to.peer);
        b.queue = rest;
        b.bytes -= mine.iter().map(|u| u.payload.get().len()).sum::<usize>();
        mine.into()
    }
}

/// Feeds the backlog into the socket as its buffer frees up. The socket
/// offers no way to wait for room, so this polls: at the timer's
/// resolution while the client keeps taking, backing off to 64 ms while
/// it takes nothing (each try re-reads the front payload, up to an SDP's
/// 64 KiB: a client that stopped reading must not cost a core). It runs
/// only while a backlog exists.
async fn drain(socket: SocketRef<A>, backlog: Arc<Mutex<Backlog>>) {
    const MIN_WAIT: Duration = Duration::from_millis(1);
    const MAX_WAIT: Duration = Duration::from_millis(64);
    let mut wait = MIN_WAIT;
    loop {
        tokio::time::sleep(wait).await;
        let mut b = backlog.lock();
        let before = b.queue.len();
        while let Some(u) = b.queue.front() {
            match emit(&socket, u.event, u.payload.raw()) {
                Emit::Sent => {
                    let size = u.payload.get().len();
                    b.queue.pop_front();
                    b.bytes -= size;
                }
                Emit::Full => break,
                Emit::Closed => {
                    // Kept for the hub, which holds it for the peer's
                    // return when it hears of the disconnect.
                    tracing::debug!(sid = %socket.id, unsent = b.queue.len(), "socket closed with a backlog");
                    b.closed = true;
                    b.draining = false;
                    return;
                }
            }
        }
        if b.queue.is_empty() {
            b.draining = false;
            return;
        }
        wait = if b.queue.len() < before { MIN_WAIT } else { (wait * 2).min(MAX_WAIT) };
    }
}

// ------------------------------------------------------------------ incoming

fn state(s: &Arc<Socket<A>>) -> SharedState {
    let mut none = Value::Str(Default::default(), None);
    State::<SharedState>::from_message_parts(s, &mut none, &None).expect("state is installed by the builder").0
}

/// Connect extractor: registers the connection and its handlers, unless
/// its address already has as many connections as it may.
pub(crate) struct Attach;

/// Why a connection was refused; the client reads it in its
/// `connect_error`.
#[derive(Debug)]
pub(crate) struct ConnectRefused(pub(crate) String);

impl std::fmt::Display for ConnectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectRefused {}

impl FromConnectParts<A> for Attach {
    type Error = ConnectRefused;
    fn from_connect_parts(s: &Arc<Socket<A>>, _auth: &Option<Value>) -> Result<Self, ConnectRefused> {
        let shared = State::<SharedState>::from_connect_parts(s, &None).expect("state is installed by the builder").0;
        shared.gate.attach(s)?;
        let socket = SocketRef::from(Arc::clone(s));
        let sink = SocketSink { socket: socket.clone(), backlog: Default::default(), limits: shared.backlog };
        shared.with_hub(|hub| hub.connect(s.id, Outlet::Sio(sink.clone())));
        socket.on_fallback(|_: Inbound| async {});
        socket.on_disconnect(|_: Detach| async {});
        tracing::debug!(sid = %s.id, "connected");
        forget_if_never_connected(shared, sink);
        Ok(Attach)
    }
}

/// How long after this middleware the connect step is surely over.
pub(crate) const CONNECT_SETTLE: Duration = Duration::from_secs(1);

/// socketioxide sends CONNECT right after this middleware; if that fails
/// because the transport closed meanwhile, it drops the socket without a
/// disconnect, and the hub would keep the connection (and, through its
/// sink, the engine socket) forever. Found by the socket fuzzer: a client
/// that repeats CONNECT on its namespace and drops its transport leaked
/// one connection every few tries. So a socket that never became connected
/// and is still registered as itself is let go once the step is over.
fn forget_if_never_connected(shared: SharedState, sink: SocketSink) {
    tokio::spawn(async move {
        tokio::time::sleep(CONNECT_SETTLE).await;
        if sink.socket.connected() {
            return; // a live socket: its disconnect will come
        }
        let sid = sink.socket.id;
        let ours = shared.with_hub(|hub| {
            let ours = hub.sink(&sid).is_some_and(|s| matches!(s, Outlet::Sio(s) if Arc::ptr_eq(&s.backlog, &sink.backlog)));
            if ours {
                tracing::debug!(%sid, "connect never completed: forgetting the socket");
                hub.disconnect(sid, Departure::Lost);
            }
            ours
        });
        // Its limit entries too (registered with it, so still its own), or
        // the address would count a connection that is gone.
        if ours {
            shared.gate.detach(sid);
        }
    });
}

/// Disconnect extractor: tells the hub, in order with the socket's events.
pub(crate) struct Detach;

impl FromDisconnectParts<A> for Detach {
    type Error = Infallible;
    fn from_disconnect_parts(s: &Arc<Socket<A>>, reason: DisconnectReason) -> Result<Self, Infallible> {
        let shared = State::<SharedState>::from_disconnect_parts(s, reason).expect("state is installed").0;
        let how = match reason {
            DisconnectReason::ClientNSDisconnect => {
                shared.gate.detach(s.id);
                Departure::Deliberate
            }
            // A flooder gets no grace: its place is not worth keeping; nor
            // does an address that keeps too many seats already.
            _ => shared.gate.detach_lost(s.id),
        };
        tracing::debug!(sid = %s.id, %reason, "disconnected");
        shared.with_hub(|hub| hub.disconnect(s.id, how));
        Ok(Detach)
    }
}

/// Event extractor: handles the event itself (see the module docs).
///
/// It always "fails" with [`Handled`]: socketioxide then skips calling the
/// (empty) handler, which saves spawning a task per event on the hot path.
pub(crate) struct Inbound;

/// Not an error: the event was handled during extraction.
#[derive(Debug)]
pub(crate) struct Handled;

impl std::fmt::Display for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("handled during extraction")
    }
}

impl std::error::Error for Handled {}

impl FromMessage<A> for Inbound {
    type Error = Handled;
    fn from_message(s: Arc<Socket<A>>, v: Value, ack_id: Option<i64>) -> Result<Self, Handled> {
        let shared = state(&s);
        let mut v = v;
        let ack = AckSender::from_message_parts(&s, &mut v, &ack_id).expect("infallible");
        let reply = Reply { socket: SocketRef::from(s), ack: ack_id.map(|_| ack) };
        if let Some(reply) = shared.gate.admit(reply, || event_name(&v)) {
            let (text, binary) = match &v {
                Value::Str(text, bins) => (&**text, bins.as_ref().is_some_and(|b| !b.is_empty())),
                Value::Bytes(_) => ("", true),
            };
            handle(&shared, reply, text, binary);
        }
        Err(Handled)
    }
}

/// Where a refusal goes: the ack when the client asked for one, else an
/// `error` event. (Generic: cluster mode uses it with the Redis adapter.)
pub(crate) struct Reply<Ad: Adapter = A> {
    pub(crate) socket: SocketRef<Ad>,
    pub(crate) ack: Option<AckSender<Ad>>,
}

/// How an event is answered, whichever transport it came on: its ack when
/// the client asked for one, else an `error` event for a refusal.
pub(crate) trait Respond: Sized {
    /// The connection the event came from.
    fn sid(&self) -> Sid;
    fn wants_ack(&self) -> bool;
    /// Sends `body` as the ack, if the client asked for one.
    fn ack<T: serde::Serialize>(self, body: &Ack<T>);
    fn error_event(self, body: &ErrorEvent);
    /// Disconnects the connection (it keeps flooding) after `refuse`.
    fn refuse_and_disconnect(self, ev: Option<&str>, err: ErrorBody);

    fn ok(self) {
        self.ack(&Ack::Ok(serde_json::Map::new()));
    }

    fn refuse(self, ev: Option<&str>, room: Option<&str>, err: ErrorBody) {
        tracing::debug!(sid = %self.sid(), event = ?ev, code = %err.code, message = %err.message, "refused");
        if self.wants_ack() {
            self.ack::<()>(&Ack::Err(err));
        } else {
            let body = ErrorEvent {
                code: err.code,
                message: err.message,
                event: ev.map(str::to_owned),
                room_id: room.map(str::to_owned),
            };
            self.error_event(&body);
        }
    }
}

impl<Ad: Adapter> Respond for Reply<Ad> {
    fn sid(&self) -> Sid {
        self.socket.id
    }

    fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    fn ack<T: serde::Serialize>(self, body: &Ack<T>) {
        if let Some(ack) = self.ack {
            if let Err(e) = ack.send(body) {
                tracing::debug!(error = %e, "ack not sent");
            }
        }
    }

    fn error_event(self, body: &ErrorEvent) {
        let _ = self.socket.emit(event::ERROR, body);
    }

    fn refuse_and_disconnect(self, ev: Option<&str>, err: ErrorBody) {
        let socket = self.socket.clone();
        self.refuse(ev, None, err);
        let _ = socket.disconnect();
    }
}

/// The event name and first argument of a packet, borrowed from its text.
pub(crate) struct Packet<'a> {
    pub(crate) event: &'a str,
    pub(crate) data: Option<&'a RawValue>,
}

pub(crate) fn split_packet(text: &str) -> Option<Packet<'_>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Packet<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("[event, ...args]")
        }
        fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Packet<'de>, S::Error> {
            let event: &'de str = seq.next_element()?.ok_or_else(|| serde::de::Error::custom("no event name"))?;
            let data: Option<&'de RawValue> = seq.next_element()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Packet { event, data })
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_seq(&mut de, V).ok()
}

/// Handles one event: `text` is its `[event, ...args]` JSON; `binary`
/// whether it carried attachments.
pub(crate) fn handle(shared: &Arc<Shared>, reply: impl Respond, text: &str, binary: bool) {
    if !binary {
        if let Some((kind, view)) = relay_front(text) {
            return relay_view(shared, reply, kind, view);
        }
    }
    let Some(packet) = split_packet(text) else {
        // socketioxide already checked the event name; this is unreachable
        // short of a parser change, and still must not panic.
        return reply.refuse(
            None,
            None,
            ErrorBody { code: ErrorCode::InvalidPayload, message: "unreadable packet".into() },
        );
    };
    let ev = packet.event;
    if binary {
        shared.metrics.refused(ErrorCode::InvalidPayload);
        return reply.refuse(Some(ev), None, invalid(ev, "binary attachments are not accepted"));
    }
    let data = packet.data.map(RawValue::get).unwrap_or("null");
    if let Some(kind) = RelayKind::from_event(ev) {
        return relay(shared, reply, kind, data);
    }
    match ev {
        event::JOIN => match JoinRequest::parse(data) {
            Ok(req) => {
                let room = req.room_id().to_string();
                let now = SystemTime::now();
                if let Err(e) = shared.gate.check_join(&req, now) {
                    return reply.refuse(Some(ev), Some(&room), e);
                }
                let sid = reply.sid();
                shared.with_hub(|hub| {
                    hub.join(sid, req, |ack| match ack {
                        // A fresh token for links shared from here on and
                        // for rejoins after the first one has expired.
                        Ack::Ok(accepted) if shared.gate.invites.is_some() => {
                            let mut accepted = accepted.clone();
                            shared.gate.stamp(&mut accepted, now);
                            reply.ack(&Ack::Ok(accepted))
                        }
                        Ack::Ok(_) => reply.ack(ack),
                        Ack::Err(e) => reply.refuse(Some(ev), Some(&room), e.clone()),
                    })
                });
            }
            Err(e) => {
                shared.metrics.refused(e.code());
                reply.refuse(Some(ev), None, e.to_body());
            }
        },
        event::LEAVE => match LeaveRequest::parse(data) {
            Ok(req) => match shared.with_hub(|hub| hub.leave(reply.sid(), &req.room_id)) {
                Ok(()) => reply.ok(),
                Err(e) => reply.refuse(Some(ev), Some(req.room_id.as_str()), e),
            },
            Err(e) => {
                shared.metrics.refused(e.code());
                reply.refuse(Some(ev), None, e.to_body());
            }
        },
        event::HEARTBEAT => reply.ok(),
        _ => {
            // Unknown events are ignored, as Socket.IO servers do; counted.
            shared.metrics.ignored();
            tracing::trace!(event = ev, "ignored unknown event");
        }
    }
}

fn relay(shared: &Arc<Shared>, reply: impl Respond, kind: RelayKind, data: &str) {
    match RelayView::parse(kind, data) {
        Ok(view) => relay_view(shared, reply, kind, view),
        Err(e) => {
            shared.metrics.refused(e.code());
            reply.refuse(Some(kind.event()), None, e.to_body());
        }
    }
}

fn relay_view(shared: &Arc<Shared>, reply: impl Respond, kind: RelayKind, view: RelayView<'_>) {
    match shared.with_hub(|hub| hub.relay(reply.sid(), &view)) {
        Ok(()) => reply.ok(),
        Err(e) => reply.refuse(Some(kind.event()), Some(&view.room_id), e),
    }
}

/// The hot path: a well-formed relay (`["ice-candidate",{...}]`) read in
/// one pass, without splitting the packet first. `None` for anything else,
/// valid or not (the general path then reads it and words any refusal).
fn relay_front(text: &str) -> Option<(RelayKind, RelayView<'_>)> {
    let rest = text.strip_prefix("[\"")?;
    let (name, rest) = rest.split_once('"')?;
    if name.contains('\\') {
        return None; // an escaped name: let the JSON parser read it
    }
    let kind = RelayKind::from_event(name)?;
    let json_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let rest = rest.trim_start_matches(json_ws).strip_prefix(',')?.trim_start_matches(json_ws);
    let (view, after) = RelayView::parse_front(kind, rest).ok()?;
    // More arguments after the first: the general path checks they are JSON.
    (after.trim_matches(json_ws) == "]").then_some((kind, view))
}

pub(crate) fn invalid(ev: &str, detail: &str) -> ErrorBody {
    ErrorBody { code: ErrorCode::InvalidPayload, message: format!("payload is not valid for `{ev}`: {detail}") }
}
