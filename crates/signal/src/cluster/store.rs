//! The cluster's shared state: typed calls to the Lua scripts that keep
//! rooms, presence and held messages in Redis (see `state.lua` for the
//! keys). Each call is one atomic script, so the decisions of all nodes
//! fall into one order, as the single-node hub's lock gives.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, Value};
use ringlet_proto::{ErrorBody, ErrorCode, PeerId, PeerInfo, RoomId};

use crate::HubConfig;

macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("state.lua"), "\n", include_str!($file))
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from a state script: {0}")]
    Reply(&'static str),
}

/// Events the caller must emit, in order, through the adapter: each to
/// the sockets listed (socket ids, which are also room names).
#[derive(Debug, Default)]
pub struct Sends(pub Vec<(String, String, Vec<String>)>);

/// What every script returns: a refusal (or none), how many held messages
/// were dropped, and what to send.
#[derive(Debug)]
pub struct Outcome {
    pub refusal: Option<ErrorBody>,
    pub dropped: u64,
    pub sends: Sends,
}

/// A join that was accepted.
#[derive(Debug)]
pub struct Joined {
    pub peer_id: PeerId,
    pub polite: bool,
    pub how: JoinHow,
    pub peers: Vec<PeerInfo>,
    /// Messages held while away, oldest first: (event, payload).
    pub held: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinHow {
    /// A new peer, or the same socket joining again.
    Fresh,
    /// Took back its place after a drop.
    Resumed,
    /// Replaced a socket of the same peer that still looked alive.
    Replaced,
}

/// How a socket's membership ends.
#[derive(Debug, Clone, Copy)]
pub enum Ending {
    /// `leave`: an error when not in the room.
    Leave,
    /// A deliberate disconnect (hang-up).
    HangUp,
    /// The transport dropped: away for the grace period.
    Lost,
}

/// The gauges the heartbeat reads back, cluster-wide.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// This node had been declared dead by another node's sweep.
    pub was_swept: bool,
    pub rooms: i64,
    pub away: i64,
    pub held: i64,
}

pub struct Store {
    conn: ConnectionManager,
    prefix: String,
    config: HubConfig,
    join: Script,
    relay: Script,
    leave: Script,
    sweep: Script,
    heartbeat: Script,
    flush: Script,
}

struct Reply {
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    fn next(&mut self) -> Result<Value, StoreError> {
        self.items.next().ok_or(StoreError::Reply("too short"))
    }
    fn string(&mut self) -> Result<String, StoreError> {
        match self.next()? {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| StoreError::Reply("not UTF-8")),
            Value::SimpleString(s) => Ok(s),
            Value::Int(i) => Ok(i.to_string()),
            _ => Err(StoreError::Reply("expected a string")),
        }
    }
    fn int(&mut self) -> Result<i64, StoreError> {
        match self.next()? {
            Value::Int(i) => Ok(i),
            Value::BulkString(b) => {
                std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()).ok_or(StoreError::Reply("expected a number"))
            }
            _ => Err(StoreError::Reply("expected a number")),
        }
    }

    /// A count, then that many held "event\npayload" items.
    fn held(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        let h = self.int()?;
        let mut held = Vec::with_capacity(h.max(0) as usize);
        for _ in 0..h {
            let item = self.string()?;
            let (ev, payload) = item.split_once('\n').ok_or(StoreError::Reply("bad held message"))?;
            held.push((ev.to_owned(), payload.to_owned()));
        }
        Ok(held)
    }

    /// The common head: refusal, dropped count, sends.
    fn outcome(&mut self) -> Result<Outcome, StoreError> {
        let code = self.string()?;
        let message = self.string()?;
        let refusal = if code.is_empty() {
            None
        } else {
            let code: ErrorCode = serde_json::from_value(serde_json::Value::String(code))
                .map_err(|_| StoreError::Reply("unknown error code"))?;
            Some(ErrorBody { code, message })
        };
        let dropped = self.int()?.max(0) as u64;
        let n = self.int()?;
        let mut sends = Vec::with_capacity(n.max(0) as usize);
        for _ in 0..n {
            let ev = self.string()?;
            let payload = self.string()?;
            let sids = self.string()?.split(',').map(str::to_owned).collect();
            sends.push((ev, payload, sids));
        }
        Ok(Outcome { refusal, dropped, sends: Sends(sends) })
    }
}

impl Store {
    pub fn new(conn: ConnectionManager, prefix: String, config: HubConfig) -> Store {
        Store {
            conn,
            prefix,
            config,
            join: Script::new(script!("join.lua")),
            relay: Script::new(script!("relay.lua")),
            leave: Script::new(script!("leave.lua")),
            sweep: Script::new(script!("sweep.lua")),
            heartbeat: Script::new(script!("heartbeat.lua")),
            flush: Script::new(script!("flush.lua")),
        }
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    async fn run(&self, script: &Script, args: &[&str]) -> Result<Reply, StoreError> {
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(self.config.max_held_messages)
            .arg(self.config.max_held_bytes)
            .arg(ms(self.config.grace))
            // Held messages outlive the grace by a margin: the sweep, not
            // the expiry, ends an absence; expiry only cleans up after a
            // cluster that stopped altogether.
            .arg(ms(self.config.grace) + 60_000);
        for a in args {
            inv.arg(*a);
        }
        let mut conn = self.conn.clone();
        let v: Value = inv.invoke_async(&mut conn).await?;
        match v {
            Value::Array(items) => Ok(Reply { items: items.into_iter() }),
            _ => Err(StoreError::Reply("expected an array")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        room: &RoomId,
        peer: Option<&PeerId>,
        name: Option<&str>,
        sid: &str,
        node: &str,
        fresh: &PeerId,
    ) -> Result<(Outcome, Option<Joined>), StoreError> {
        let (max, rooms) = (self.config.max_peers.to_string(), self.config.max_rooms.to_string());
        let args =
            [room.as_str(), peer.map_or("", |p| p.as_str()), name.unwrap_or(""), sid, node, &max, fresh.as_str(), &rooms];
        let mut r = self.run(&self.join, &args).await?;
        let outcome = r.outcome()?;
        if outcome.refusal.is_some() {
            return Ok((outcome, None));
        }
        let peer_id = PeerId::new(r.string()?).map_err(|_| StoreError::Reply("bad peer id"))?;
        let polite = r.int()? == 1;
        let how = match r.int()? {
            1 => JoinHow::Resumed,
            2 => JoinHow::Replaced,
            _ => JoinHow::Fresh,
        };
        let n = r.int()?;
        let mut peers = Vec::new();
        for _ in 0..n {
            let id = PeerId::new(r.string()?).map_err(|_| StoreError::Reply("bad peer id"))?;
            let name = r.string()?;
            peers.push(PeerInfo { peer_id: id, name: (!name.is_empty()).then_some(name) });
        }
        let held = r.held()?;
        Ok((outcome, Some(Joined { peer_id, polite, how, peers, held })))
    }

    /// After a resume's held messages were emitted: what was held
    /// meanwhile (emit it and flush again), or nothing (the peer is now
    /// plainly online).
    pub async fn flush(&self, room: &RoomId, peer: &PeerId, sid: &str) -> Result<Vec<(String, String)>, StoreError> {
        let mut r = self.run(&self.flush, &[room.as_str(), peer.as_str(), sid]).await?;
        r.outcome()?;
        r.held()
    }

    pub async fn relay(
        &self,
        room: &RoomId,
        peer: &PeerId,
        sid: &str,
        to: Option<&str>,
        event: &str,
        payload: &str,
    ) -> Result<Outcome, StoreError> {
        self.run(&self.relay, &[room.as_str(), peer.as_str(), sid, to.unwrap_or(""), event, payload]).await?.outcome()
    }

    pub async fn end(&self, room: &RoomId, peer: &PeerId, sid: &str, how: Ending) -> Result<Outcome, StoreError> {
        let how = match how {
            Ending::Leave => "leave",
            Ending::HangUp => "left",
            Ending::Lost => "lost",
        };
        self.run(&self.leave, &[room.as_str(), peer.as_str(), sid, how]).await?.outcome()
    }

    pub async fn sweep(&self, limit: usize) -> Result<Outcome, StoreError> {
        self.run(&self.sweep, &[&limit.to_string()]).await?.outcome()
    }

    pub async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<Gauges, StoreError> {
        let mut r = self.run(&self.heartbeat, &[node, &ttl.as_millis().to_string()]).await?;
        r.outcome()?;
        Ok(Gauges { was_swept: r.int()? == 1, rooms: r.int()?, away: r.int()?, held: r.int()? })
    }
}
