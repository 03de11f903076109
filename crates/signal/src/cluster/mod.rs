//! Cluster mode (`--redis`): several equal `ringlet-signal` nodes behind a
//! load balancer, sharing one Redis.
//!
//! Two parts, each doing one job:
//!
//! - Fan-out between nodes is socketioxide's Redis adapter
//!   (`socketioxide-redis`): every socket joins a socketioxide room named
//!   by its socket id, and an event for a peer is emitted to that room; the
//!   adapter publishes it and the node holding the socket delivers it.
//!   Each node handles the adapter's requests in the order published, so
//!   one sender's messages reach a peer in order.
//! - Who is where lives in Redis ([`store`]): rooms, presence, capacity
//!   and held messages, changed only by atomic Lua scripts. A peer that
//!   reconnects to another node finds its place and its held messages.
//!
//! Events of one socket are handled by one task per socket, in arrival
//! order ([`io`]); the single-node path (`io.rs`, the in-memory hub) is
//! untouched.
//!
//! Liveness: each node refreshes a heartbeat key with a TTL and sweeps,
//! every [`SWEEP_EVERY`], with one script: peers online on a node whose
//! heartbeat expired go away (their grace starts), and grace periods that
//! ended become `peer-left`. Timers thus live in Redis (a sorted set of
//! deadlines), not in the memory of the node that saw the drop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::value::RawValue;
use socketioxide::socket::Sid;
use socketioxide::SocketIo;

use crate::io::Gate;
use crate::metrics::Metrics;
use crate::Config;

mod io;
pub mod store;

use store::{Outcome, Sends, Store};

/// The adapter every socket of a cluster node uses.
pub(crate) type ClusterAdapter = socketioxide_redis::RedisAdapter<socketioxide::adapter::Emitter>;

/// How often each node sweeps for ended grace periods and dead nodes.
pub const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// Events queued per socket while earlier ones wait on Redis; beyond it
/// an event is refused (`rate-limited`), never silently dropped.
pub const QUEUE: usize = 4096;

/// Cluster settings (`--redis`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `redis://host:port[/db]`. RESP3 is asked for (the adapter needs it).
    pub url: String,
    /// A node whose heartbeat is older than this is dead: its peers go
    /// away and start their grace period.
    pub node_ttl: Duration,
    /// Prefix of every key and channel, so clusters can share a Redis.
    pub prefix: String,
}

impl ClusterConfig {
    pub fn new(url: impl Into<String>) -> Self {
        ClusterConfig { url: url.into(), node_ttl: Duration::from_secs(3), prefix: "ringlet".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach redis at {url}: {source}")]
    Connect { url: String, source: redis::RedisError },
    #[error("the redis adapter did not start: {0}")]
    Adapter(String),
}

/// A node's shared state: the store, the local sockets' queues, and the
/// Socket.IO handle for emitting through the adapter.
pub struct Cluster {
    pub(crate) store: Store,
    /// Limits and invite tokens, as on a single node (per node: the
    /// connection and event limits count this node's sockets).
    pub(crate) gate: Gate,
    node: String,
    config: ClusterConfig,
    io: OnceLock<SocketIo<ClusterAdapter>>,
    queues: Mutex<HashMap<Sid, io::Queue>>,
    sockets: AtomicUsize,
    /// Set on shutdown: no more heartbeats, so the node reads as dead.
    stopping: std::sync::atomic::AtomicBool,
    /// This node's adapter channel, and whether Redis still counts a
    /// subscriber on it: the adapter's pub/sub connection does not
    /// reconnect, so after a Redis restart this node hears no other node.
    fanout_channel: OnceLock<String>,
    fanout_lost: std::sync::atomic::AtomicBool,
    pub(crate) metrics: Arc<Metrics>,
}

/// A running cluster node: the pieces `Server` needs.
pub(crate) struct Node {
    pub cluster: Arc<Cluster>,
    pub io: SocketIo<ClusterAdapter>,
    pub layer: socketioxide::layer::SocketIoLayer<ClusterAdapter>,
}

/// Connects to Redis, starts the adapter on `/signaling` and the node's
/// heartbeat and sweeper.
pub(crate) async fn start(
    config: ClusterConfig,
    server: &Config,
    metrics: Arc<Metrics>,
    builder: socketioxide::SocketIoBuilder,
) -> Result<Node, ClusterError> {
    let url = with_resp3(&config.url);
    let connect = |source| ClusterError::Connect { url: config.url.clone(), source };
    let client = redis::Client::open(url.as_str()).map_err(connect)?;
    // Bounded waits: with Redis gone, an event gets a readable `internal`
    // refusal after a few seconds instead of hanging its socket's queue.
    let manager = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let conn = redis::aio::ConnectionManager::new_with_config(client.clone(), manager).await.map_err(connect)?;
    let adapter_prefix = format!("{}-sio", config.prefix);
    let adapter_config = socketioxide_redis::RedisAdapterConfig::new()
        .with_prefix(adapter_prefix.clone())
        // Incoming fan-out waits here while this node delivers; a burst
        // from a fast sender must not overflow it (the driver would drop).
        .with_stream_buffer(64 * 1024);
    let adapter = socketioxide_redis::RedisAdapterCtr::new_with_redis_config(&client, adapter_config)
        .await
        .map_err(connect)?;

    let node = fresh_node_id();
    let cluster = Arc::new(Cluster {
        store: Store::new(conn, format!("{}:", config.prefix), server.hub.clone()),
        gate: Gate::new(server.limits, server.invites.clone(), server.hub.grace, Arc::clone(&metrics)),
        node,
        config,
        io: OnceLock::new(),
        queues: Mutex::new(HashMap::new()),
        sockets: AtomicUsize::new(0),
        stopping: Default::default(),
        fanout_channel: OnceLock::new(),
        fanout_lost: Default::default(),
        metrics,
    });
    // Register before serving: a sweep must not take us for dead.
    cluster.heartbeat(true).await;

    let (layer, sio) = builder.with_adapter::<ClusterAdapter>(adapter).with_state(Arc::clone(&cluster)).build_layer();
    io::register(&sio).await.map_err(|e| ClusterError::Adapter(format!("{e:?}")))?;
    let _ = cluster.io.set(sio.clone());
    // The channel the adapter subscribed for requests to this node only.
    let channel = format!("{adapter_prefix}-request#{}#{}#", ringlet_proto::NAMESPACE, sio.config().server_id);
    let _ = cluster.fanout_channel.set(channel);
    tokio::spawn(background(Arc::downgrade(&cluster)));
    tracing::info!(node = %cluster.node, "cluster node registered");
    Ok(Node { cluster, io: sio, layer })
}

/// `GET /healthz` of a cluster node: 503 once it cannot hear the other
/// nodes, so a load balancer stops sending it clients.
pub(crate) async fn health(cluster: Arc<Cluster>) -> (http::StatusCode, &'static str) {
    if cluster.fanout_lost.load(Ordering::Relaxed) {
        (http::StatusCode::SERVICE_UNAVAILABLE, "cluster fan-out lost (Redis restarted?); restart this node\n")
    } else {
        (http::StatusCode::OK, "ok\n")
    }
}

/// socketioxide-redis needs RESP3 (push messages for pub/sub).
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

fn fresh_node_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Heartbeat and sweep until the node is dropped.
async fn background(cluster: std::sync::Weak<Cluster>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let Some(cluster) = cluster.upgrade() else { return };
        if last_beat.elapsed() >= cluster.config.node_ttl / 3 {
            last_beat = tokio::time::Instant::now();
            cluster.heartbeat(false).await;
        }
        match cluster.store.sweep(256).await {
            Ok(outcome) => {
                cluster.apply(outcome).await;
            }
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
    }
}

impl Cluster {
    pub fn node_id(&self) -> &str {
        &self.node
    }

    async fn heartbeat(&self, first: bool) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        match self.store.heartbeat(&self.node, self.config.node_ttl).await {
            Ok(g) => {
                self.metrics.set_rooms(g.rooms.max(0) as usize);
                self.metrics.set_away(g.away.max(0) as usize);
                self.metrics.set_held(g.held.max(0));
                if g.was_swept && !first {
                    // Another node took us for dead (Redis unreachable or
                    // this process stalled past the TTL) and our peers are
                    // now away: close our sockets so their clients rejoin
                    // and take their places back.
                    tracing::warn!(node = %self.node, "this node was declared dead; closing its sockets so they rejoin");
                    if let Some(ops) = self.io.get().and_then(|io| io.of(ringlet_proto::NAMESPACE)) {
                        let _ = ops.local().disconnect().await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
        self.check_fanout().await;
    }

    async fn check_fanout(&self) {
        let Some(channel) = self.fanout_channel.get() else { return };
        let mut conn = self.store.conn();
        let Ok((_, subscribers)) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(channel).query_async::<(String, i64)>(&mut conn).await
        else {
            return;
        };
        let lost = subscribers == 0;
        if lost && !self.fanout_lost.swap(true, Ordering::Relaxed) {
            tracing::error!(
                node = %self.node,
                "lost the Redis adapter's subscription (Redis restarted?): this node no longer hears the others; \
                 /healthz now fails; restart this node"
            );
        }
    }

    /// Emits what a script decided, in order; counts dropped held messages.
    /// Returns whether a recipient on this node could not take a message.
    pub(crate) async fn apply(&self, outcome: Outcome) -> bool {
        if outcome.dropped > 0 {
            self.metrics.held_dropped(outcome.dropped as usize);
        }
        self.emit(outcome.sends).await
    }

    async fn emit(&self, sends: Sends) -> bool {
        let Some(io) = self.io.get() else { return false };
        let mut backlogged = false;
        for (ev, payload, sids) in sends.0 {
            let Some(ops) = io.of(ringlet_proto::NAMESPACE) else { return backlogged };
            let raw = match RawValue::from_string(payload) {
                Ok(raw) => raw,
                Err(e) => {
                    tracing::error!(error = %e, "a stored payload is not JSON");
                    continue;
                }
            };
            // Recipients all on this node: no need to go through Redis.
            // (Mixing both ways keeps order: each emit is done, locally,
            // before the next starts.)
            let local = {
                let queues = self.queues.lock();
                sids.iter().all(|s| s.parse::<Sid>().is_ok_and(|sid| queues.contains_key(&sid)))
            };
            let ops = if local { ops.local() } else { ops };
            if let Err(e) = ops.to(sids).emit(&ev, &raw).await {
                // A full socket buffer on this node; on other nodes the
                // adapter can only log it.
                tracing::debug!(error = %e, event = %ev, "not delivered");
                backlogged = true;
            }
        }
        backlogged
    }

    /// Forgets this node on a graceful shutdown: its heartbeat goes now, so
    /// the next sweep (ours, here) turns its peers away at once.
    pub(crate) async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        // socketioxide reports no disconnects once it is closed: end every
        // socket's task here (its peers go away, as on a dropped transport,
        // and come back through another node).
        self.queues.lock().clear();
        // Bounded: a Redis that is gone must not hold the exit up (the other
        // nodes' sweeps take our peers away once our heartbeat expires).
        let forget = async {
            let mut conn = self.store.conn();
            let key = format!("{}:node:{}", self.config.prefix, self.node);
            redis::cmd("DEL").arg(&key).query_async::<()>(&mut conn).await?;
            let outcome = self.store.sweep(100_000).await?;
            self.apply(outcome).await;
            Ok::<(), store::StoreError>(())
        };
        match tokio::time::timeout(Duration::from_secs(3), forget).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not hand this node's peers over on shutdown"),
            Err(_) => tracing::warn!("redis did not answer on shutdown; the other nodes will take our peers away"),
        }
    }

    fn socket_count_changed(&self, delta: isize) {
        let n = if delta > 0 {
            self.sockets.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.sockets.fetch_sub(1, Ordering::Relaxed) - 1
        };
        self.metrics.set_sockets(n);
    }
}

