//! The signaling state machine: rooms, peers, presence and held messages.
//!
//! Sans-IO: it knows nothing of Socket.IO. A connection is a key `K` and a
//! [`Sink`] that takes outgoing events; timers are requests the caller
//! schedules ([`Hub::take_timers`]) and reports back ([`Hub::expire`]). The
//! socketioxide glue in `io.rs` drives it under one lock, so every decision
//! (who is in a room, what is held for whom) happens in one order for all.
//!
//! A peer is its stable [`PeerId`], not its connection: when a transport
//! drops, the peer turns [`Presence::Away`] for the grace period, messages for
//! it are held (bounded), and a join with the same peer id takes the place
//! back and receives them in order. Only when the grace ends does the room
//! hear `peer-left`.

use std::cell::OnceCell;
use std::collections::VecDeque;

use foldhash::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use ringlet_proto::{
    event, Ack, ErrorBody, ErrorCode, JoinAccepted, JoinRequest, LeaveReason, PeerId, PeerInfo, PeerJoined, PeerLeft,
    RelayView, RoomId,
};
use serde_json::value::RawValue;

use crate::metrics::Metrics;

/// A JSON payload ready to send, shared between recipients. Valid JSON by
/// construction (serialized here, or a validated relay with `from` added),
/// so it is not parsed again on the way out.
#[derive(Debug, Clone)]
pub struct Payload(Arc<str>);

impl Payload {
    pub fn get(&self) -> &str {
        &self.0
    }

    /// As a `RawValue`, for serializers that need one (socketioxide).
    pub fn raw(&self) -> &RawValue {
        serde_json::from_str(&self.0).expect("payloads are valid JSON")
    }
}

/// A payload on its way out, as pieces of its JSON text.
///
/// A relay is the sender's object with `from` put first. Sinks that frame
/// bytes themselves (the lean transport) write the pieces straight into
/// their buffers, so a relay to an online peer copies the sender's bytes
/// once, with no allocation. A whole [`Payload`] is made, once, only for
/// what keeps one: a message held for an away peer, socketioxide's queue.
pub struct Outgoing<'a> {
    pieces: [&'a str; 4],
    whole: OnceCell<Payload>,
}

impl<'a> Outgoing<'a> {
    /// The JSON text `pieces.concat()`, which must be valid JSON.
    fn new(pieces: [&'a str; 4]) -> Self {
        Outgoing { pieces, whole: OnceCell::new() }
    }

    /// The text, in order.
    pub fn pieces(&self) -> &[&'a str; 4] {
        &self.pieces
    }

    /// The text as one shared string, made on first use.
    pub fn payload(&self) -> &Payload {
        self.whole.get_or_init(|| Payload(Arc::from(self.pieces.concat())))
    }
}

impl<'a> From<&'a Payload> for Outgoing<'a> {
    fn from(p: &'a Payload) -> Self {
        Outgoing { pieces: [p.get(), "", "", ""], whole: OnceCell::from(p.clone()) }
    }
}

/// Where a connection's outgoing events go.
pub trait Sink {
    /// Queues `event` for the connection, in call order; `to` is the peer
    /// it is for (the connection speaks as it in `to.room`).
    fn send(&self, to: To<'_>, event: &'static str, payload: &Outgoing<'_>) -> Result<(), SinkError>;

    /// What was accepted but never left, in order: asked when the
    /// connection is lost, so a peer that comes back gets it from the
    /// held queue instead of missing it. A sink that cannot tell its
    /// events apart once queued (framed bytes) has nothing to give.
    fn take_unsent(&self) -> Vec<Unsent> {
        Vec::new()
    }

    /// [`Sink::take_unsent`] for one peer only, the rest left to go out:
    /// asked when a rejoin replaces the connection as that peer.
    fn take_unsent_for(&self, _to: To<'_>) -> Vec<Unsent> {
        Vec::new()
    }
}

/// Where [`Hub::deliver`] put a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    Sent,
    Held,
}

/// The peer an outgoing event is for.
#[derive(Debug, Clone, Copy)]
pub struct To<'a> {
    pub room: &'a RoomId,
    pub peer: &'a PeerId,
}

/// An event a sink accepted and never sent (see [`Sink::take_unsent`]).
#[derive(Debug, Clone)]
pub struct Unsent {
    pub room: RoomId,
    pub peer: PeerId,
    pub event: &'static str,
    pub payload: Payload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The connection's outgoing queue is full: it reads too slowly.
    #[error("the connection's outgoing queue is full")]
    Backlogged,
    /// The connection is gone (its close has not been processed yet).
    #[error("the connection is closed")]
    Closed,
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// The client closed its namespace on purpose (hang-up): leave at once.
    Deliberate,
    /// The transport dropped or timed out: keep the place for the grace period.
    Lost,
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Peers a room holds, away ones included.
    pub max_peers: usize,
    /// How long a dropped peer keeps its place.
    pub grace: Duration,
    /// Held messages per away peer.
    pub max_held_messages: usize,
    /// Held bytes per away peer.
    pub max_held_bytes: usize,
    /// Rooms one connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Rooms on the server in all.
    pub max_rooms: usize,
    /// STUN/TURN servers for the join ack, with credentials minted per join.
    pub turn: Option<Arc<crate::turn::TurnConfig>>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_peers: 2,
            grace: Duration::from_secs(15),
            max_held_messages: 1024,
            max_held_bytes: 1024 * 1024,
            max_rooms_per_connection: 4,
            max_rooms: 100_000,
            turn: None,
        }
    }
}

/// A request to call [`Hub::expire`] after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub room: RoomId,
    pub peer: PeerId,
    pub epoch: u64,
    pub after: Duration,
}

#[derive(Debug)]
enum Presence<K> {
    Online(K),
    Away { epoch: u64, held: Held },
}

#[derive(Debug, Default)]
struct Held {
    messages: VecDeque<(&'static str, Payload)>,
    bytes: usize,
}

impl Held {
    fn push(&mut self, ev: &'static str, payload: &Payload) {
        self.messages.push_back((ev, payload.clone()));
        self.bytes += payload.get().len();
    }
}

#[derive(Debug)]
struct Peer<K> {
    id: PeerId,
    name: Option<String>,
    /// Join order; the later joiner of a pair is the polite one.
    seq: u64,
    /// Whether the client chose its peer id (Ringlet's join form) and so can
    /// come back as the same peer. A seed-form peer cannot: holding its
    /// place would only keep its own reload out of a full room.
    resumable: bool,
    presence: Presence<K>,
}

#[derive(Debug)]
struct Room<K> {
    /// Few peers per room (`max_peers`): a vector beats a map here.
    peers: Vec<Peer<K>>,
}

impl<K: Copy + Eq> Room<K> {
    fn by_key(&self, key: K) -> Option<usize> {
        self.peers.iter().position(|p| matches!(p.presence, Presence::Online(k) if k == key))
    }
    fn by_id(&self, id: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.id.as_str() == id)
    }
}

struct Conn<S> {
    sink: S,
    /// The rooms this connection speaks in, and as whom.
    memberships: Vec<(RoomId, PeerId)>,
    /// Peers it spoke as that went away when its sink was found closed,
    /// before its disconnect came (with the epoch of that absence): if the
    /// disconnect says the client hung up, they leave at once after all.
    gone_early: Vec<(RoomId, PeerId, u64)>,
}

/// Rooms and the connections in them. See the module docs.
pub struct Hub<K, S> {
    config: HubConfig,
    // foldhash: randomly seeded like std's SipHash (room ids are the
    // clients' choice), and several times cheaper on every relay.
    rooms: HashMap<RoomId, Room<K>>,
    conns: HashMap<K, Conn<S>>,
    timers: Vec<Timer>,
    next_seq: u64,
    /// Peers currently away (kept as a count: gauges update on every join
    /// and leave, and a scan of every room there would be O(rooms)).
    away: usize,
    metrics: Arc<Metrics>,
}

type Refusal = ErrorBody;

/// Which of a returning peer's held presence events its join ack already
/// tells (by their place in the queue): the ack lists who is in the room
/// now, so of each other peer's `peer-joined` / `peer-left` while it was
/// away only the news it could not know from the list is kept. A peer it
/// knew that left: one `peer-left`. One it knew that left and came back:
/// that `peer-left` and the last `peer-joined` (a new session, to be
/// negotiated afresh). One it never knew: nothing (listed if present).
fn presence_told_by_the_ack(held: &Held, ack: &JoinAccepted) -> std::collections::HashSet<usize> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Who {
        peer_id: String,
    }
    // Per peer: where its presence events are, and whether each is a join.
    let mut per_peer: HashMap<String, Vec<(usize, bool)>> = HashMap::default();
    for (i, (ev, payload)) in held.messages.iter().enumerate() {
        let joined = match *ev {
            event::PEER_JOINED => true,
            event::PEER_LEFT => false,
            _ => continue,
        };
        if let Ok(who) = serde_json::from_str::<Who>(payload.get()) {
            per_peer.entry(who.peer_id).or_default().push((i, joined));
        }
    }
    let mut skip = std::collections::HashSet::new();
    for (peer, events) in per_peer {
        let (first, last) = (events[0], events[events.len() - 1]);
        let listed = ack.peers.iter().any(|p| p.peer_id.as_str() == peer);
        let keep: &[usize] = match (first.1, last.1) {
            // Unknown to it before: the list says all there is.
            (true, _) => &[],
            (false, false) => &[last.0],
            (false, true) if listed => &[first.0, last.0],
            (false, true) => &[first.0],
        };
        skip.extend(events.iter().map(|e| e.0).filter(|i| !keep.contains(i)));
    }
    skip
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    ErrorBody { code, message: message.into() }
}

fn backlogged(to: &str) -> Refusal {
    refusal(ErrorCode::PeerBacklogged, format!("peer `{to}` is not keeping up; message dropped"))
}

fn to_payload<T: serde::Serialize>(value: &T) -> Payload {
    Payload(Arc::from(serde_json::to_string(value).expect("protocol types serialize")))
}

impl<K, S> Hub<K, S>
where
    K: Copy + Eq + Hash + std::fmt::Display,
    S: Sink,
{
    pub fn new(config: HubConfig, metrics: Arc<Metrics>) -> Self {
        Hub { config, rooms: HashMap::default(), conns: HashMap::default(), timers: Vec::new(), next_seq: 0, away: 0, metrics }
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Registers a new connection.
    pub fn connect(&mut self, key: K, sink: S) {
        self.conns.insert(key, Conn { sink, memberships: Vec::new(), gone_early: Vec::new() });
        self.metrics.set_sockets(self.conns.len());
    }

    /// The sink registered for `key`, if any.
    pub fn sink(&self, key: &K) -> Option<&S> {
        self.conns.get(key).map(|c| &c.sink)
    }

    /// Timers the last calls asked for; the caller schedules each and calls
    /// [`Hub::expire`] when it fires.
    pub fn take_timers(&mut self) -> Vec<Timer> {
        std::mem::take(&mut self.timers)
    }

    /// Handles `join`. `reply` gets the ack before anything held for a
    /// returning peer is delivered, so the client learns it resumed first.
    pub fn join(&mut self, key: K, req: JoinRequest, reply: impl FnOnce(&Ack<JoinAccepted>)) {
        match self.try_join(key, req) {
            Ok((mut accepted, held, unsent)) => {
                // Minted per ack: a join again on the same socket is how a
                // client refreshes its TURN credential before it expires.
                if let Some(turn) = &self.config.turn {
                    accepted.ice_servers = turn.ice_servers(&accepted.peer_id, std::time::SystemTime::now());
                }
                let (room, peer) = (accepted.room_id.clone(), accepted.peer_id.clone());
                let skip = held.as_ref().map(|h| presence_told_by_the_ack(h, &accepted)).unwrap_or_default();
                reply(&Ack::Ok(accepted));
                if let Some(held) = held {
                    self.metrics.held_delta(-(held.messages.len() as i64));
                    for (i, (ev, payload)) in held.messages.into_iter().enumerate() {
                        if skip.contains(&i) {
                            continue;
                        }
                        // A failure here re-holds (closed) or is counted
                        // (backlogged); nothing else can be done for it.
                        if let Ok(Delivered::Sent) = self.deliver(&room, peer.as_str(), ev, &payload) {
                            self.metrics.held_delivered();
                        }
                    }
                }
                // What the connection it replaced had taken for it and not
                // sent: after the ack, in order, before anything newer.
                for u in unsent {
                    let _ = self.deliver(&room, peer.as_str(), u.event, &u.payload);
                }
            }
            Err(e) => {
                self.metrics.refused(e.code);
                reply(&Ack::Err(e));
            }
        }
    }

    fn try_join(&mut self, key: K, req: JoinRequest) -> Result<(JoinAccepted, Option<Held>, Vec<Unsent>), Refusal> {
        if !self.conns.contains_key(&key) {
            return Err(refusal(ErrorCode::Internal, "connection is not registered"));
        }
        let room_id = req.room_id().clone();
        let name = req.name().map(str::to_owned);
        let max_peers = self.config.max_peers;
        // Limits first, so a refused join leaves no empty room behind.
        let memberships = &self.conns[&key].memberships;
        if !memberships.iter().any(|(r, _)| *r == room_id) && memberships.len() >= self.config.max_rooms_per_connection
        {
            let max = self.config.max_rooms_per_connection;
            self.metrics.limit_hit(crate::metrics::Limit::RoomsPerConnection);
            return Err(refusal(
                ErrorCode::LimitExceeded,
                format!("a connection may be in at most {max} rooms at once; leave one first"),
            ));
        }
        if !self.rooms.contains_key(&room_id) && self.rooms.len() >= self.config.max_rooms {
            self.metrics.limit_hit(crate::metrics::Limit::Rooms);
            return Err(refusal(
                ErrorCode::LimitExceeded,
                "the server has as many rooms as it can hold; try again later",
            ));
        }
        let room = self.rooms.entry(room_id.clone()).or_insert_with(|| Room { peers: Vec::new() });

        // The same socket joining again (a client retrying): answer the same.
        if let Some(idx) = room.by_key(key) {
            if req.peer_id().is_none_or(|p| *p == room.peers[idx].id) {
                return Ok((accepted(&room_id, room, idx, false), None, Vec::new()));
            }
            return Err(refusal(ErrorCode::PeerIdTaken, "this connection already speaks as another peer in this room"));
        }

        if let Some(idx) = req.peer_id().and_then(|p| room.by_id(p.as_str())) {
            let peer = &mut room.peers[idx];
            let previous = std::mem::replace(&mut peer.presence, Presence::Online(key));
            if name.is_some() {
                peer.name = name;
            }
            let peer_id = peer.id.clone();
            let (held, unsent) = match previous {
                Presence::Away { held, .. } => {
                    self.metrics.resumed();
                    self.away -= 1;
                    (Some(held), Vec::new())
                }
                Presence::Online(stale) => {
                    // A rejoin while the old transport still looks alive: the
                    // client knows better than our ping timer. The old socket
                    // stops speaking for this peer, and hands over what it
                    // had for it and had not sent.
                    let mut unsent = Vec::new();
                    if let Some(conn) = self.conns.get_mut(&stale) {
                        conn.memberships.retain(|(r, p)| !(r == &room_id && p == &peer_id));
                        unsent = conn.sink.take_unsent_for(To { room: &room_id, peer: &peer_id });
                    }
                    self.metrics.replaced();
                    (None, unsent)
                }
            };
            let accepted = accepted(&room_id, room, idx, true);
            self.conn_mut(key).memberships.push((room_id, peer_id));
            self.update_gauges();
            return Ok((accepted, held, unsent));
        }

        if room.peers.len() >= max_peers {
            return Err(refusal(ErrorCode::RoomFull, format!("room is full ({max_peers} of {max_peers} peers)")));
        }
        let peer_id = req.peer_id().cloned().unwrap_or_else(fresh_peer_id);
        self.next_seq += 1;
        let resumable = req.peer_id().is_some();
        room.peers.push(Peer {
            id: peer_id.clone(),
            name: name.clone(),
            seq: self.next_seq,
            resumable,
            presence: Presence::Online(key),
        });
        let accepted = accepted(&room_id, room, room.peers.len() - 1, false);
        self.conn_mut(key).memberships.push((room_id.clone(), peer_id.clone()));
        self.update_gauges();
        let joined = to_payload(&PeerJoined { room_id: room_id.clone(), peer_id: peer_id.clone(), name });
        self.broadcast(&room_id, &peer_id, event::PEER_JOINED, &joined);
        Ok((accepted, None, Vec::new()))
    }

    /// Handles `sdp-offer`, `sdp-answer` and `ice-candidate`: to everyone
    /// else in the room, or to `to` only, with `from` set to the sender.
    pub fn relay(&mut self, key: K, msg: &RelayView<'_>) -> Result<(), Refusal> {
        let result = self.try_relay(key, msg);
        match &result {
            Ok(()) => self.metrics.relayed(msg.kind),
            Err(e) => self.metrics.refused(e.code),
        }
        result
    }

    fn try_relay(&mut self, key: K, msg: &RelayView<'_>) -> Result<(), Refusal> {
        let not_in_room =
            || refusal(ErrorCode::NotInRoom, format!("join room `{}` before relaying to it", msg.room_id));
        let (room_id, room) = self.rooms.get_key_value(msg.room_id.as_ref()).ok_or_else(not_in_room)?;
        let sender = room.by_key(key).ok_or_else(not_in_room)?;
        let from = &room.peers[sender].id;
        if let Some(to) = &msg.to {
            if to.as_ref() == from.as_str() || room.by_id(to).is_none() {
                return Err(refusal(ErrorCode::UnknownPeer, format!("no peer `{to}` in room `{room_id}`")));
            }
        }
        let whole;
        let out = match msg.pieces_with_from(from.as_str()) {
            Some(pieces) => Outgoing::new(pieces),
            None => {
                whole = Payload(Arc::from(msg.with_from(from.as_str())));
                Outgoing::from(&whole)
            }
        };
        let ev = msg.kind.event();
        // The common case, allocation-free: online targets get it straight
        // from here. The rest (away, or a sink that just closed) go through
        // `deliver`, which holds messages and marks peers away.
        let mut result = Ok(());
        let mut later: Vec<PeerId> = Vec::new();
        for (i, p) in room.peers.iter().enumerate() {
            if i == sender || msg.to.as_ref().is_some_and(|to| to.as_ref() != p.id.as_str()) {
                continue;
            }
            let sent = match p.presence {
                Presence::Online(k) => {
                    self.conns.get(&k).map(|c| c.sink.send(To { room: room_id, peer: &p.id }, ev, &out))
                }
                Presence::Away { .. } => None,
            };
            match sent {
                Some(Ok(())) => {}
                Some(Err(SinkError::Backlogged)) => result = result.and(Err(backlogged(p.id.as_str()))),
                Some(Err(SinkError::Closed)) | None => later.push(p.id.clone()),
            }
        }
        if !later.is_empty() {
            let payload = out.payload().clone();
            let room_id = room_id.clone();
            for t in later {
                if let Err(e) = self.deliver(&room_id, t.as_str(), ev, &payload) {
                    result = result.and(Err(e));
                }
            }
        }
        result
    }

    /// Handles `leave`.
    pub fn leave(&mut self, key: K, room_id: &RoomId) -> Result<(), Refusal> {
        let Some(idx) = self.rooms.get(room_id).and_then(|r| r.by_key(key)) else {
            let e = refusal(ErrorCode::NotInRoom, format!("not in room `{room_id}`"));
            self.metrics.refused(e.code);
            return Err(e);
        };
        let peer = self.remove_peer(room_id, idx, LeaveReason::Left);
        self.conn_mut(key).memberships.retain(|(r, p)| !(r == room_id && *p == peer));
        Ok(())
    }

    /// A connection ended. `Deliberate` leaves every room at once; `Lost`
    /// keeps each place for the grace period.
    pub fn disconnect(&mut self, key: K, how: Departure) {
        let Some(conn) = self.conns.remove(&key) else {
            return;
        };
        let mut away = Vec::new();
        for (room_id, peer_id) in conn.memberships {
            let Some(idx) = self.rooms.get(&room_id).and_then(|r| r.by_key(key)) else {
                continue;
            };
            debug_assert_eq!(self.rooms[&room_id].peers[idx].id, peer_id);
            match how {
                Departure::Deliberate => {
                    self.remove_peer(&room_id, idx, LeaveReason::Left);
                }
                Departure::Lost => {
                    self.mark_away(&room_id, idx);
                    away.push((room_id, peer_id));
                }
            }
        }
        // A hang-up whose transport was found closed first: the peers that
        // went away then leave now, as they would have (unless back since).
        if how == Departure::Deliberate {
            for (room_id, peer_id, epoch) in conn.gone_early {
                let still_away = self.rooms.get(&room_id).and_then(|r| {
                    let idx = r.by_id(peer_id.as_str())?;
                    matches!(r.peers[idx].presence, Presence::Away { epoch: e, .. } if e == epoch).then_some(idx)
                });
                if let Some(idx) = still_away {
                    self.remove_peer(&room_id, idx, LeaveReason::Left);
                }
            }
        }
        // What the lost connection accepted and never sent goes first into
        // the held queues it was for: nothing later can be held before it,
        // as everything that holds runs under this same lock.
        // Held past the held queue's limits if need be: their senders were
        // told they were accepted, and the transport's backlog, which bounds
        // them, held them until now. (What comes later meets the limits.)
        for u in conn.sink.take_unsent() {
            if away.iter().any(|(r, p)| *r == u.room && *p == u.peer) {
                self.hold_accepted(&u.room, u.peer.as_str(), u.event, &u.payload);
            }
        }
        self.update_gauges();
    }

    /// A grace timer fired: if the peer is still away in that same absence,
    /// it is gone for good.
    pub fn expire(&mut self, timer: &Timer) {
        let Some(room) = self.rooms.get(&timer.room) else {
            return;
        };
        let Some(idx) = room.by_id(timer.peer.as_str()) else {
            return;
        };
        if matches!(room.peers[idx].presence, Presence::Away { epoch, .. } if epoch == timer.epoch) {
            self.remove_peer(&timer.room, idx, LeaveReason::Timeout);
        }
    }

    /// Forgets everything: the server is shutting down and every socket is
    /// closed (socketioxide does not report those closes once its
    /// namespaces are gone).
    pub fn clear(&mut self) {
        let held: usize = self
            .rooms
            .values()
            .flat_map(|r| &r.peers)
            .map(|p| match &p.presence {
                Presence::Away { held, .. } => held.messages.len(),
                Presence::Online(_) => 0,
            })
            .sum();
        self.metrics.held_delta(-(held as i64));
        self.metrics.held_dropped(held);
        self.rooms.clear();
        self.conns.clear();
        self.away = 0;
        self.update_gauges();
    }

    /// Number of rooms (for tests and metrics).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Whether `peer` is in `room` and connected.
    pub fn is_online(&self, room: &str, peer: &str) -> Option<bool> {
        let room = self.rooms.get(room)?;
        let idx = room.by_id(peer)?;
        Some(matches!(room.peers[idx].presence, Presence::Online(_)))
    }

    // ---------------------------------------------------------------- internals

    fn conn_mut(&mut self, key: K) -> &mut Conn<S> {
        self.conns.get_mut(&key).expect("connection registered before use")
    }

    /// Delivers to one peer of a room: straight to its connection when
    /// online, into its held queue when away.
    fn deliver(&mut self, room_id: &RoomId, to: &str, ev: &'static str, payload: &Payload) -> Result<Delivered, Refusal> {
        let gone = || refusal(ErrorCode::UnknownPeer, format!("peer `{to}` has left room `{room_id}`"));
        let room = self.rooms.get_mut(room_id).ok_or_else(gone)?;
        let idx = room.by_id(to).ok_or_else(gone)?;
        if let Presence::Online(k) = room.peers[idx].presence {
            let sink = &self.conns.get(&k).expect("online peer has a connection").sink;
            match sink.send(To { room: room_id, peer: &room.peers[idx].id }, ev, &Outgoing::from(payload)) {
                Ok(()) => return Ok(Delivered::Sent),
                Err(SinkError::Backlogged) => return Err(backlogged(to)),
                Err(SinkError::Closed) => {
                    // The transport died and its close is not processed yet:
                    // treat the peer as away now and hold the message.
                    if let Some(conn) = self.conns.get_mut(&k) {
                        conn.memberships.retain(|(r, p)| !(r == room_id && p.as_str() == to));
                    }
                    self.mark_away(room_id, idx);
                    let gone = self.rooms.get(room_id).and_then(|r| {
                        let p = &r.peers[r.by_id(to)?];
                        match p.presence {
                            Presence::Away { epoch, .. } => Some((room_id.clone(), p.id.clone(), epoch)),
                            Presence::Online(_) => None,
                        }
                    });
                    if let (Some(gone), Some(conn)) = (gone, self.conns.get_mut(&k)) {
                        conn.gone_early.push(gone);
                    }
                }
            }
        }
        let (max_n, max_b) = (self.config.max_held_messages, self.config.max_held_bytes);
        // With no grace (or no way back), mark_away removed the peer.
        let room = self.rooms.get_mut(room_id).ok_or_else(gone)?;
        let idx = room.by_id(to).ok_or_else(gone)?;
        let Presence::Away { held, .. } = &mut room.peers[idx].presence else {
            return Err(refusal(ErrorCode::Internal, "peer neither online nor away"));
        };
        let size = payload.get().len();
        if held.messages.len() >= max_n || held.bytes + size > max_b {
            self.metrics.limit_hit(crate::metrics::Limit::HeldMessages);
            return Err(refusal(
                ErrorCode::HeldFull,
                format!("peer `{to}` is reconnecting and has too much waiting; message dropped"),
            ));
        }
        held.push(ev, payload);
        self.metrics.held_delta(1);
        Ok(Delivered::Held)
    }

    /// Holds a message already accepted for an away peer, whatever the
    /// held queue's limits (see [`Hub::disconnect`]).
    fn hold_accepted(&mut self, room_id: &RoomId, to: &str, ev: &'static str, payload: &Payload) {
        let Some(peer) = self.rooms.get_mut(room_id).and_then(|r| r.by_id(to).map(|i| &mut r.peers[i])) else {
            return;
        };
        if let Presence::Away { held, .. } = &mut peer.presence {
            held.push(ev, payload);
            self.metrics.held_delta(1);
        }
    }

    fn mark_away(&mut self, room_id: &RoomId, idx: usize) {
        let grace = self.config.grace;
        if grace.is_zero() || !self.rooms[room_id].peers[idx].resumable {
            self.remove_peer(room_id, idx, LeaveReason::Timeout);
            return;
        }
        self.next_seq += 1;
        let epoch = self.next_seq;
        let peer = &mut self.rooms.get_mut(room_id).expect("room exists").peers[idx];
        debug_assert!(matches!(peer.presence, Presence::Online(_)), "only an online peer goes away");
        peer.presence = Presence::Away { epoch, held: Held::default() };
        self.away += 1;
        self.timers.push(Timer { room: room_id.clone(), peer: peer.id.clone(), epoch, after: grace });
        self.update_gauges();
    }

    /// Removes a peer, tells the others, and drops the room when empty.
    fn remove_peer(&mut self, room_id: &RoomId, idx: usize, reason: LeaveReason) -> PeerId {
        let room = self.rooms.get_mut(room_id).expect("room exists");
        let peer = room.peers.remove(idx);
        if let Presence::Away { held, .. } = &peer.presence {
            self.away -= 1;
            self.metrics.held_delta(-(held.messages.len() as i64));
            self.metrics.held_dropped(held.messages.len());
        }
        if room.peers.is_empty() {
            self.rooms.remove(room_id);
        } else {
            let left = to_payload(&PeerLeft { room_id: room_id.clone(), peer_id: peer.id.clone(), reason });
            self.broadcast(room_id, &peer.id, event::PEER_LEFT, &left);
        }
        self.update_gauges();
        peer.id
    }

    fn broadcast(&mut self, room_id: &RoomId, except: &PeerId, ev: &'static str, payload: &Payload) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let targets: Vec<PeerId> = room.peers.iter().filter(|p| &p.id != except).map(|p| p.id.clone()).collect();
        for t in targets {
            if let Err(e) = self.deliver(room_id, t.as_str(), ev, payload) {
                tracing::debug!(room = %room_id, peer = %t, code = %e.code, "presence event not delivered");
            }
        }
    }

    fn update_gauges(&self) {
        self.metrics.set_rooms(self.rooms.len());
        self.metrics.set_sockets(self.conns.len());
        self.metrics.set_away(self.away);
    }
}

fn accepted<K>(room_id: &RoomId, room: &Room<K>, idx: usize, resumed: bool) -> JoinAccepted {
    let me = &room.peers[idx];
    JoinAccepted {
        room_id: room_id.clone(),
        peer_id: me.id.clone(),
        peers: room
            .peers
            .iter()
            .filter(|p| p.id != me.id)
            .map(|p| PeerInfo { peer_id: p.id.clone(), name: p.name.clone() })
            .collect(),
        polite: room.peers.iter().any(|p| p.seq < me.seq),
        ice_servers: Vec::new(),
        resumed,
        token: None,
    }
}

/// A server-assigned peer id for clients that did not choose one (the seed's).
pub(crate) fn fresh_peer_id() -> PeerId {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let s: String = (0..16).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    PeerId::new(s).expect("alphabet is valid")
}

#[cfg(test)]
mod tests;
