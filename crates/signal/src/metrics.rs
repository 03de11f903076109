//! Counters and gauges for `GET /metrics`, in the Prometheus text format.
//! Plain atomics: updated on the hot path without locks, read on scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use ringlet_proto::{ErrorCode, RelayKind};

const CODES: [ErrorCode; 18] = ErrorCode::ALL;

const KINDS: [RelayKind; 3] = [RelayKind::SdpOffer, RelayKind::SdpAnswer, RelayKind::IceCandidate];

/// A limit a client ran into (`ringlet_limit_hits_total{limit=...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ConnectionsPerIp,
    EventRate,
    RoomsPerConnection,
    Rooms,
    HeldMessages,
    RoomCreation,
    AwayPerIp,
}

impl Limit {
    const ALL: [Limit; 7] = [
        Limit::ConnectionsPerIp,
        Limit::EventRate,
        Limit::RoomsPerConnection,
        Limit::Rooms,
        Limit::HeldMessages,
        Limit::RoomCreation,
        Limit::AwayPerIp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::EventRate => "event_rate",
            Limit::RoomsPerConnection => "rooms_per_connection",
            Limit::Rooms => "rooms",
            Limit::HeldMessages => "held_messages",
            Limit::RoomCreation => "room_creation",
            Limit::AwayPerIp => "away_per_ip",
        }
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    limit_hits: [AtomicU64; 7],
    kicked: AtomicU64,
    sockets: AtomicI64,
    rooms: AtomicI64,
    away: AtomicI64,
    held: AtomicI64,
    relayed: [AtomicU64; 3],
    refusals: [AtomicU64; 18],
    held_delivered: AtomicU64,
    held_dropped: AtomicU64,
    resumed: AtomicU64,
    replaced: AtomicU64,
    ignored: AtomicU64,
}

fn kind_index(k: RelayKind) -> usize {
    KINDS.iter().position(|x| *x == k).expect("every kind listed")
}

impl Metrics {
    pub fn set_sockets(&self, n: usize) {
        self.sockets.store(n as i64, Relaxed);
    }
    pub fn set_rooms(&self, n: usize) {
        self.rooms.store(n as i64, Relaxed);
    }
    pub fn set_away(&self, n: usize) {
        self.away.store(n as i64, Relaxed);
    }
    /// Cluster mode: the cluster-wide count read back from Redis.
    pub fn set_held(&self, n: i64) {
        self.held.store(n, Relaxed);
    }
    pub fn held_delta(&self, d: i64) {
        self.held.fetch_add(d, Relaxed);
    }
    pub fn relayed(&self, k: RelayKind) {
        self.relayed[kind_index(k)].fetch_add(1, Relaxed);
    }
    pub fn refused(&self, code: ErrorCode) {
        let i = CODES.iter().position(|c| *c == code).expect("every code listed");
        self.refusals[i].fetch_add(1, Relaxed);
    }
    pub fn held_delivered(&self) {
        self.held_delivered.fetch_add(1, Relaxed);
    }
    pub fn held_dropped(&self, n: usize) {
        self.held_dropped.fetch_add(n as u64, Relaxed);
    }
    pub fn resumed(&self) {
        self.resumed.fetch_add(1, Relaxed);
    }
    pub fn replaced(&self) {
        self.replaced.fetch_add(1, Relaxed);
    }
    pub fn limit_hit(&self, l: Limit) {
        self.limit_hits[l as usize].fetch_add(1, Relaxed);
    }
    pub fn kicked(&self) {
        self.kicked.fetch_add(1, Relaxed);
    }
    pub fn limit_hits(&self, l: Limit) -> u64 {
        self.limit_hits[l as usize].load(Relaxed)
    }
    pub fn ignored(&self) {
        self.ignored.fetch_add(1, Relaxed);
    }

    /// Connected sockets on `/signaling`.
    pub fn sockets(&self) -> i64 {
        self.sockets.load(Relaxed)
    }
    /// Messages currently held for away peers.
    pub fn held(&self) -> i64 {
        self.held.load(Relaxed)
    }
    pub fn relayed_total(&self) -> u64 {
        self.relayed.iter().map(|a| a.load(Relaxed)).sum()
    }
    pub fn refusals(&self, code: ErrorCode) -> u64 {
        let i = CODES.iter().position(|c| *c == code).expect("every code listed");
        self.refusals[i].load(Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge("ringlet_connected_sockets", "Sockets connected to /signaling.", self.sockets.load(Relaxed));
        gauge("ringlet_rooms", "Rooms with at least one peer.", self.rooms.load(Relaxed));
        gauge(
            "ringlet_away_peers",
            "Peers whose transport dropped, within their grace period.",
            self.away.load(Relaxed),
        );
        gauge("ringlet_held_messages", "Messages held for away peers.", self.held.load(Relaxed));
        let _ = writeln!(out, "# HELP ringlet_relayed_messages_total Messages relayed, by event.\n# TYPE ringlet_relayed_messages_total counter");
        for k in KINDS {
            let _ = writeln!(
                out,
                "ringlet_relayed_messages_total{{event=\"{}\"}} {}",
                k.event(),
                self.relayed[kind_index(k)].load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ringlet_refusals_total Events refused, by reason.\n# TYPE ringlet_refusals_total counter"
        );
        for (i, c) in CODES.iter().enumerate() {
            let _ = writeln!(out, "ringlet_refusals_total{{reason=\"{c}\"}} {}", self.refusals[i].load(Relaxed));
        }
        let _ = writeln!(out, "# HELP ringlet_limit_hits_total Requests refused by a limit, by limit.\n# TYPE ringlet_limit_hits_total counter");
        for l in Limit::ALL {
            let _ = writeln!(
                out,
                "ringlet_limit_hits_total{{limit=\"{}\"}} {}",
                l.as_str(),
                self.limit_hits[l as usize].load(Relaxed)
            );
        }
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "ringlet_held_delivered_total",
            "Held messages delivered to a returning peer.",
            self.held_delivered.load(Relaxed),
        );
        counter(
            "ringlet_held_dropped_total",
            "Held messages dropped when a grace period ended.",
            self.held_dropped.load(Relaxed),
        );
        counter(
            "ringlet_resumed_total",
            "Joins that took back a place held during a drop.",
            self.resumed.load(Relaxed),
        );
        counter(
            "ringlet_replaced_sockets_total",
            "Joins that replaced a stale socket of the same peer.",
            self.replaced.load(Relaxed),
        );
        counter("ringlet_ignored_events_total", "Unknown events ignored.", self.ignored.load(Relaxed));
        counter(
            "ringlet_kicked_total",
            "Connections closed for flooding past the event rate.",
            self.kicked.load(Relaxed),
        );
        out
    }
}
