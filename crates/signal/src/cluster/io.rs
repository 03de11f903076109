//! The socketioxide glue in cluster mode.
//!
//! As on a single node, events are taken in the connection's read path,
//! in arrival order (inside an extractor; see `crate::io`). But each one
//! now needs Redis, which is async: so the extractor only queues it, into
//! the socket's bounded queue, and one task per socket handles the queue
//! in order. A full queue is a readable refusal, never a silent drop.
//! The disconnect closes the queue; the task finishes the events before
//! it and then ends the socket's memberships.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use ringlet_proto::{
    event, Ack, ErrorBody, ErrorCode, JoinAccepted, JoinRequest, LeaveRequest, PeerId, RelayKind, RelayView, RoomId,
};
use serde_json::value::RawValue;
use socketioxide::extract::{AckSender, SocketRef, State};
use socketioxide::handler::{ConnectHandler, FromConnectParts, FromDisconnectParts, FromMessage, FromMessageParts};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::SocketIo;
use socketioxide_core::Value;
use tokio::sync::mpsc;

use super::store::{Ending, JoinHow, StoreError};
use super::{Cluster, ClusterAdapter as CA, QUEUE};
use crate::io::{event_name, invalid, split_packet, ConnectRefused, Handled, Reply, Respond};

/// A socket's queue, as the extractors see it.
pub(crate) struct Queue {
    tx: mpsc::Sender<Job>,
    /// How the socket ended, for the task to act on once it drained.
    ending: Arc<Mutex<Option<Ending>>>,
}

pub(crate) struct Job {
    value: Value,
    ack: Option<AckSender<CA>>,
}

/// Installs the handlers on `/signaling` and starts the adapter there.
pub(crate) async fn register(
    io: &SocketIo<CA>,
) -> Result<(), socketioxide_redis::InitError<socketioxide_redis::drivers::redis::RedisDriver>> {
    io.ns(ringlet_proto::NAMESPACE, (async || {}).with(async |_: Attach| Ok::<(), Infallible>(()))).await
}

fn cluster_of(s: &Arc<Socket<CA>>) -> Arc<Cluster> {
    let mut none = Value::Str(Default::default(), None);
    State::<Arc<Cluster>>::from_message_parts(s, &mut none, &None).expect("state is installed by the builder").0
}

/// Connect extractor (in a connect middleware, before CONNECT goes out).
pub(crate) struct Attach;

impl FromConnectParts<CA> for Attach {
    type Error = ConnectRefused;
    fn from_connect_parts(s: &Arc<Socket<CA>>, _auth: &Option<Value>) -> Result<Self, ConnectRefused> {
        let cluster = cluster_of(s);
        cluster.gate.attach(s)?;
        let socket = SocketRef::from(Arc::clone(s));
        // The socket's own room: what the adapter delivers to, from any node.
        socket.join(s.id.to_string());
        let (tx, rx) = mpsc::channel(QUEUE);
        let ending = Arc::new(Mutex::new(None));
        cluster.queues.lock().insert(s.id, Queue { tx, ending: Arc::clone(&ending) });
        cluster.socket_count_changed(1);
        forget_if_never_connected(Arc::clone(&cluster), socket.clone(), Arc::clone(&ending));
        let conn = Conn { cluster, sid: s.id.to_string(), socket: socket.clone(), rooms: Vec::new() };
        tokio::spawn(conn.serve(rx, ending));
        socket.on_fallback(|_: Inbound| async {});
        socket.on_disconnect(|_: Detach| async {});
        tracing::debug!(sid = %s.id, "connected");
        Ok(Attach)
    }
}

/// As on one node (`crate::io`): a socket whose CONNECT raced its
/// transport's close gets no disconnect from socketioxide; once the
/// connect step is over, one that never became connected and whose queue
/// is still its own ends as a lost transport would.
fn forget_if_never_connected(cluster: Arc<Cluster>, socket: SocketRef<CA>, ending: Arc<Mutex<Option<Ending>>>) {
    tokio::spawn(async move {
        tokio::time::sleep(crate::io::CONNECT_SETTLE).await;
        if socket.connected() {
            return;
        }
        let sid = socket.id;
        let mine = {
            let mut queues = cluster.queues.lock();
            match queues.get(&sid) {
                Some(q) if Arc::ptr_eq(&q.ending, &ending) => queues.remove(&sid),
                _ => None,
            }
        };
        if let Some(q) = mine {
            tracing::debug!(%sid, "connect never completed: forgetting the socket");
            cluster.gate.detach(sid);
            *q.ending.lock() = Some(Ending::Lost);
            cluster.socket_count_changed(-1);
        }
    });
}

/// Disconnect extractor: closes the socket's queue.
pub(crate) struct Detach;

impl FromDisconnectParts<CA> for Detach {
    type Error = Infallible;
    fn from_disconnect_parts(s: &Arc<Socket<CA>>, reason: DisconnectReason) -> Result<Self, Infallible> {
        let cluster = cluster_of(s);
        let how = match reason {
            DisconnectReason::ClientNSDisconnect => {
                cluster.gate.detach(s.id);
                Ending::HangUp
            }
            // A flooder gets no grace: its place is not worth keeping; nor
            // does an address that keeps too many seats already.
            _ => match cluster.gate.detach_lost(s.id) {
                crate::hub::Departure::Deliberate => Ending::HangUp,
                crate::hub::Departure::Lost => Ending::Lost,
            },
        };
        tracing::debug!(sid = %s.id, %reason, "disconnected");
        // Dropping the only sender ends the task once the queue is drained.
        if let Some(q) = cluster.queues.lock().remove(&s.id) {
            *q.ending.lock() = Some(how);
            cluster.socket_count_changed(-1);
        }
        Ok(Detach)
    }
}

/// Event extractor: queues the event for the socket's task.
pub(crate) struct Inbound;

impl FromMessage<CA> for Inbound {
    type Error = Handled;
    fn from_message(s: Arc<Socket<CA>>, v: Value, ack_id: Option<i64>) -> Result<Self, Handled> {
        let cluster = cluster_of(&s);
        let mut v = v;
        let ack = ack_id.map(|_| AckSender::from_message_parts(&s, &mut v, &ack_id).expect("infallible"));
        // The event rate is checked here, in arrival order, as on one node.
        let Some(Reply { ack, .. }) = cluster.gate.admit(Reply { socket: SocketRef::from(Arc::clone(&s)), ack }, || event_name(&v))
        else {
            return Err(Handled);
        };
        let refused = match cluster.queues.lock().get(&s.id) {
            Some(q) => q.tx.try_send(Job { value: v, ack }).err().map(|e| e.into_inner()),
            None => None, // closing: nothing more is handled
        };
        if let Some(job) = refused {
            let ev = match &job.value {
                Value::Str(text, _) => split_packet(text).map(|p| p.event.to_owned()),
                Value::Bytes(_) => None,
            };
            cluster.metrics.refused(ErrorCode::RateLimited);
            let err = ErrorBody {
                code: ErrorCode::RateLimited,
                message: format!("more than {QUEUE} events are waiting to be handled; slow down"),
            };
            Reply { socket: SocketRef::from(s), ack: job.ack }.refuse(ev.as_deref(), None, err);
        }
        Err(Handled)
    }
}

/// One socket's task: its events in order, then its departure.
struct Conn {
    cluster: Arc<Cluster>,
    sid: String,
    socket: SocketRef<CA>,
    /// The rooms this socket speaks in, and as whom. Redis has the last
    /// word: a socket replaced by a newer one (on any node) is refused.
    rooms: Vec<(RoomId, PeerId)>,
}

fn unavailable(e: StoreError) -> ErrorBody {
    tracing::warn!(error = %e, "cluster state unavailable");
    ErrorBody { code: ErrorCode::Internal, message: "the signaling cluster's state is unavailable; try again".into() }
}

impl Conn {
    async fn serve(mut self, mut rx: mpsc::Receiver<Job>, ending: Arc<Mutex<Option<Ending>>>) {
        while let Some(job) = rx.recv().await {
            self.handle(job).await;
        }
        let how = ending.lock().take().unwrap_or(Ending::Lost);
        for (room, peer) in std::mem::take(&mut self.rooms) {
            // Retried: a departure that is never recorded would leave the
            // peer online in Redis (a ghost in its seat) until it rejoins
            // or this node stops and the sweep takes it away.
            let mut wait = Duration::from_millis(100);
            loop {
                match self.cluster.store.end(&room, &peer, &self.sid, how).await {
                    Ok(outcome) => {
                        self.cluster.apply(outcome).await;
                        break;
                    }
                    Err(e) if wait < Duration::from_secs(10) => {
                        tracing::debug!(error = %e, room = %room, peer = %peer, "departure not recorded yet; retrying");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, room = %room, peer = %peer, "departure not recorded");
                        break;
                    }
                }
            }
        }
    }

    fn peer_in(&self, room: &str) -> Option<PeerId> {
        self.rooms.iter().find(|(r, _)| r.as_str() == room).map(|(_, p)| p.clone())
    }

    fn forget(&mut self, room: &str) {
        self.rooms.retain(|(r, _)| r.as_str() != room);
    }

    async fn handle(&mut self, job: Job) {
        let Job { value, ack } = job;
        let reply = Reply { socket: self.socket.clone(), ack };
        let (text, binary) = match &value {
            Value::Str(text, bins) => (&**text, bins.as_ref().is_some_and(|b| !b.is_empty())),
            Value::Bytes(_) => ("", true),
        };
        let Some(packet) = split_packet(text) else {
            let e = ErrorBody { code: ErrorCode::InvalidPayload, message: "unreadable packet".into() };
            return reply.refuse(None, None, e);
        };
        let ev = packet.event;
        let metrics = &self.cluster.metrics;
        if binary {
            metrics.refused(ErrorCode::InvalidPayload);
            return reply.refuse(Some(ev), None, invalid(ev, "binary attachments are not accepted"));
        }
        let data = packet.data.map(RawValue::get).unwrap_or("null");
        if let Some(kind) = RelayKind::from_event(ev) {
            return self.relay(reply, kind, data).await;
        }
        match ev {
            event::JOIN => match JoinRequest::parse(data) {
                Ok(req) => self.join(reply, req).await,
                Err(e) => {
                    metrics.refused(e.code());
                    reply.refuse(Some(ev), None, e.to_body());
                }
            },
            event::LEAVE => match LeaveRequest::parse(data) {
                Ok(req) => self.leave(reply, req.room_id).await,
                Err(e) => {
                    metrics.refused(e.code());
                    reply.refuse(Some(ev), None, e.to_body());
                }
            },
            event::HEARTBEAT => reply.ok(),
            _ => {
                metrics.ignored();
                tracing::trace!(event = ev, "ignored unknown event");
            }
        }
    }

    async fn join(&mut self, reply: Reply<CA>, req: JoinRequest) {
        let ev = Some(event::JOIN);
        let room = req.room_id().clone();
        let cluster = Arc::clone(&self.cluster);
        // The same checks as on a single node, before Redis is asked.
        let now = std::time::SystemTime::now();
        if let Err(e) = cluster.gate.check_join(&req, now) {
            return reply.refuse(ev, Some(room.as_str()), e);
        }
        let max = cluster.store.config().max_rooms_per_connection;
        if self.peer_in(room.as_str()).is_none() && self.rooms.len() >= max {
            cluster.metrics.refused(ErrorCode::LimitExceeded);
            cluster.metrics.limit_hit(crate::metrics::Limit::RoomsPerConnection);
            let message = format!("a connection may be in at most {max} rooms at once; leave one first");
            return reply.refuse(ev, Some(room.as_str()), ErrorBody { code: ErrorCode::LimitExceeded, message });
        }
        let fresh = crate::hub::fresh_peer_id();
        let result = cluster.store.join(&room, req.peer_id(), req.name(), &self.sid, cluster.node_id(), &fresh).await;
        let (outcome, joined) = match result {
            Ok(r) => r,
            Err(e) => {
                cluster.metrics.refused(ErrorCode::Internal);
                return reply.refuse(ev, Some(room.as_str()), unavailable(e));
            }
        };
        let Some(joined) = joined else {
            let refusal = outcome.refusal.clone().expect("a join without a peer is a refusal");
            cluster.metrics.refused(refusal.code);
            if refusal.code == ErrorCode::LimitExceeded {
                cluster.metrics.limit_hit(crate::metrics::Limit::Rooms);
            }
            cluster.apply(outcome).await;
            return reply.refuse(ev, Some(room.as_str()), refusal);
        };
        match joined.how {
            JoinHow::Resumed => cluster.metrics.resumed(),
            JoinHow::Replaced => cluster.metrics.replaced(),
            JoinHow::Fresh => {}
        }
        self.forget(room.as_str());
        self.rooms.push((room.clone(), joined.peer_id.clone()));
        let mut accepted = JoinAccepted {
            room_id: room,
            peer_id: joined.peer_id,
            peers: joined.peers,
            polite: joined.polite,
            ice_servers: Vec::new(),
            resumed: joined.how != JoinHow::Fresh,
            token: None,
        };
        // Minted per ack, as on one node: a join again on the same socket
        // is how a client refreshes its TURN credential.
        if let Some(turn) = &cluster.store.config().turn {
            accepted.ice_servers = turn.ice_servers(&accepted.peer_id, now);
        }
        cluster.gate.stamp(&mut accepted, now);
        reply.ack(&Ack::Ok(accepted));
        // Right after the ack, in order, as on a single node; then what
        // was held meanwhile, until Redis confirms none is left: only then
        // do new messages go straight to the socket, behind these.
        let (room, peer) = self.rooms.last().cloned().expect("just joined");
        let mut flushing = !joined.held.is_empty();
        self.emit_held(joined.held);
        let mut wait = Duration::from_millis(100);
        while flushing {
            match cluster.store.flush(&room, &peer, &self.sid).await {
                Ok(more) => {
                    flushing = !more.is_empty();
                    self.emit_held(more);
                }
                // Messages stay held (bounded) meanwhile.
                Err(e) if wait < Duration::from_secs(10) => {
                    tracing::debug!(error = %e, "flush failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    // The peer would stay half-resumed: let the client
                    // rejoin (its place and what is held are kept).
                    tracing::warn!(error = %e, "could not finish handing over held messages; closing the socket");
                    let _ = self.socket.clone().disconnect();
                    break;
                }
            }
        }
        cluster.apply(outcome).await;
    }

    fn emit_held(&self, held: Vec<(String, String)>) {
        for (ev, payload) in held {
            self.cluster.metrics.held_delivered();
            match RawValue::from_string(payload) {
                Ok(raw) => {
                    if let Err(e) = self.socket.emit(&ev, &raw) {
                        tracing::debug!(error = %e, "held message not delivered");
                    }
                }
                Err(e) => tracing::error!(error = %e, "a held payload is not JSON"),
            }
        }
    }

    async fn relay(&mut self, reply: Reply<CA>, kind: RelayKind, data: &str) {
        let ev = kind.event();
        let cluster = Arc::clone(&self.cluster);
        let view = match RelayView::parse(kind, data) {
            Ok(view) => view,
            Err(e) => {
                cluster.metrics.refused(e.code());
                return reply.refuse(Some(ev), None, e.to_body());
            }
        };
        let not_in_room = || ErrorBody {
            code: ErrorCode::NotInRoom,
            message: format!("join room `{}` before relaying to it", view.room_id),
        };
        let (Some(peer), Ok(room)) = (self.peer_in(&view.room_id), RoomId::new(view.room_id.as_ref())) else {
            cluster.metrics.refused(ErrorCode::NotInRoom);
            return reply.refuse(Some(ev), Some(&view.room_id), not_in_room());
        };
        let payload = view.with_from(peer.as_str());
        let outcome = match cluster.store.relay(&room, &peer, &self.sid, view.to.as_deref(), ev, &payload).await {
            Ok(o) => o,
            Err(e) => {
                cluster.metrics.refused(ErrorCode::Internal);
                return reply.refuse(Some(ev), Some(room.as_str()), unavailable(e));
            }
        };
        let refusal = outcome.refusal.clone();
        let backlogged = cluster.apply(outcome).await;
        match refusal {
            Some(e) => {
                if e.code == ErrorCode::NotInRoom {
                    // Replaced by a newer socket of the same peer.
                    self.forget(room.as_str());
                }
                cluster.metrics.refused(e.code);
                reply.refuse(Some(ev), Some(room.as_str()), e);
            }
            None if backlogged => {
                cluster.metrics.refused(ErrorCode::PeerBacklogged);
                let message = "a recipient is not keeping up; message dropped".into();
                let e = ErrorBody { code: ErrorCode::PeerBacklogged, message };
                reply.refuse(Some(ev), Some(room.as_str()), e);
            }
            None => {
                cluster.metrics.relayed(kind);
                reply.ok();
            }
        }
    }

    async fn leave(&mut self, reply: Reply<CA>, room: RoomId) {
        let ev = Some(event::LEAVE);
        let cluster = Arc::clone(&self.cluster);
        let Some(peer) = self.peer_in(room.as_str()) else {
            cluster.metrics.refused(ErrorCode::NotInRoom);
            let e = ErrorBody { code: ErrorCode::NotInRoom, message: format!("not in room `{room}`") };
            return reply.refuse(ev, Some(room.as_str()), e);
        };
        self.forget(room.as_str());
        match cluster.store.end(&room, &peer, &self.sid, Ending::Leave).await {
            Ok(outcome) => {
                let refusal = outcome.refusal.clone();
                cluster.apply(outcome).await;
                match refusal {
                    Some(e) => {
                        cluster.metrics.refused(e.code);
                        reply.refuse(ev, Some(room.as_str()), e);
                    }
                    None => reply.ok(),
                }
            }
            Err(e) => {
                cluster.metrics.refused(ErrorCode::Internal);
                reply.refuse(ev, Some(room.as_str()), unavailable(e));
            }
        }
    }
}
