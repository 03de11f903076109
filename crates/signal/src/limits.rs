//! Per-connection and per-address limits, sans-IO (time is passed in).
//! Room limits (per connection, in all) are the hub's: they are about rooms.
//!
//! A client over a limit gets a readable refusal; a client that keeps
//! pushing past the event rate is disconnected ([`Verdict::Disconnect`]),
//! so one abusive connection cannot make the server spend its CPU refusing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Every limit, each with a default sized for calls of a few peers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    /// Socket.IO connections from one IP address (0: no limit).
    pub connections_per_ip: usize,
    /// Sustained events per second per connection (0: no limit).
    pub events_per_sec: f64,
    /// Events a connection may send at once above the sustained rate.
    pub event_burst: f64,
    /// Rooms an address may create over `POST /api/rooms`, sustained per
    /// second and at once.
    pub room_creation_per_sec: f64,
    pub room_creation_burst: f64,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            // Several tabs and an app behind one NAT, not a botnet.
            connections_per_ip: 64,
            // Call setup is a few dozen candidates and two SDPs; an ICE
            // restart repeats it. Far above any honest client's rate.
            events_per_sec: 100.0,
            event_burst: 500.0,
            room_creation_per_sec: 1.0,
            room_creation_burst: 20.0,
        }
    }
}

/// A token bucket: `rate` tokens a second, up to `burst`.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    pub fn full(rate: f64, burst: f64, now: Instant) -> Self {
        Bucket { tokens: burst, rate, burst, at: now }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What to do with an incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Admit,
    /// Refuse it readably (`rate-limited`).
    Refuse,
    /// Refuse it and close the connection: it kept going past the limit.
    Disconnect,
}

/// One connection's event rate: a bucket for events, and a second one for
/// refusals. An honest burst that overflows is refused for a moment and
/// recovers; a client refused faster than the refusal bucket refills (more
/// than about twice the allowed rate, for `burst / rate` seconds) is gone.
#[derive(Debug, Clone)]
pub struct EventRate {
    events: Bucket,
    refusals: Bucket,
    unlimited: bool,
}

impl EventRate {
    pub fn new(config: &LimitConfig, now: Instant) -> Self {
        EventRate {
            events: Bucket::full(config.events_per_sec, config.event_burst.max(1.0), now),
            refusals: Bucket::full(config.events_per_sec, config.event_burst.max(1.0), now),
            unlimited: config.events_per_sec <= 0.0,
        }
    }

    /// The budget of a new connection from an address whose connection
    /// was just disconnected for flooding: no events in hand (they come at
    /// the sustained rate), the refusals a new one has. Reconnecting then
    /// buys a flooder nothing but refusals, and an honest client behind
    /// the same address loses a few milliseconds.
    pub fn after_kick(config: &LimitConfig, now: Instant) -> Self {
        let mut rate = EventRate::new(config, now);
        rate.events.tokens = 0.0;
        rate
    }

    /// How long after a kick [`EventRate::after_kick`] applies: until an
    /// empty bucket would have filled again.
    pub fn kick_lasts(config: &LimitConfig) -> Duration {
        if config.events_per_sec <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((config.event_burst.max(1.0) / config.events_per_sec).clamp(1.0, 60.0))
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.unlimited || self.events.take(now) {
            Verdict::Admit
        } else if self.refusals.take(now) {
            Verdict::Refuse
        } else {
            Verdict::Disconnect
        }
    }
}

/// Connections per IP address. Entries go when their count reaches zero,
/// so the map is bounded by the connections themselves.
#[derive(Debug, Default)]
pub struct PerIp {
    counts: HashMap<IpAddr, usize>,
}

impl PerIp {
    /// Counts a new connection from `ip`, unless that would pass `max`
    /// (0: no limit).
    pub fn try_add(&mut self, ip: IpAddr, max: usize) -> bool {
        // A refused attempt takes no slot and leaves no entry.
        if max > 0 && self.counts.get(&ip).is_some_and(|n| *n >= max) {
            return false;
        }
        *self.counts.entry(ip).or_insert(0) += 1;
        true
    }

    pub fn remove(&mut self, ip: IpAddr) {
        if let Some(n) = self.counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }

    /// Addresses with at least one connection.
    pub fn addresses(&self) -> usize {
        self.counts.len()
    }
}

/// A token bucket per IP address (room creation over HTTP). Idle
/// addresses (full buckets) are pruned once the map passes `max_entries`,
/// so a scan of many addresses cannot grow it without bound.
#[derive(Debug)]
pub struct RateByIp {
    buckets: HashMap<IpAddr, Bucket>,
    rate: f64,
    burst: f64,
    max_entries: usize,
}

impl RateByIp {
    pub fn new(rate: f64, burst: f64, max_entries: usize) -> Self {
        RateByIp { buckets: HashMap::new(), rate, burst, max_entries }
    }

    pub fn take(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.buckets.len() >= self.max_entries && !self.buckets.contains_key(&ip) {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, b| {
                let mut probe = b.clone();
                probe.tokens = (probe.tokens + now.saturating_duration_since(probe.at).as_secs_f64() * rate).min(burst);
                probe.tokens < burst
            });
            if self.buckets.len() >= self.max_entries {
                // Every entry is busy: a flood from many addresses.
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets.entry(ip).or_insert_with(|| Bucket::full(rate, burst, now)).take(now)
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(10.0, 5.0, t0);
        assert_eq!((0..8).filter(|_| b.take(t0)).count(), 5);
        // 10 a second: one more every 100 ms, never above the burst.
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(150)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..8).filter(|_| b.take(later)).count(), 5);
    }

    #[test]
    fn an_overflowing_burst_is_refused_then_recovers() {
        let cfg = LimitConfig { events_per_sec: 10.0, event_burst: 20.0, ..LimitConfig::default() };
        let t0 = Instant::now();
        let mut r = EventRate::new(&cfg, t0);
        let verdicts: Vec<Verdict> = (0..30).map(|_| r.check(t0)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Admit).count(), 20);
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Refuse).count(), 10);
        // A calm second later: admitted again.
        assert_eq!(r.check(t0 + Duration::from_secs(1)), Verdict::Admit);
    }

    #[test]
    fn a_client_that_keeps_flooding_is_disconnected() {
        let cfg = LimitConfig { events_per_sec: 10.0, event_burst: 20.0, ..LimitConfig::default() };
        let t0 = Instant::now();
        let mut r = EventRate::new(&cfg, t0);
        // 100 events a second, ten times the rate.
        let mut disconnected_at = None;
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 10);
            if r.check(now) == Verdict::Disconnect {
                disconnected_at = Some(i);
                break;
            }
        }
        let i = disconnected_at.expect("a flood ends in a disconnect");
        assert!(i > 20, "the burst itself is not an offence (at {i})");
    }

    #[test]
    fn twice_the_rate_is_refused_but_not_disconnected() {
        let cfg = LimitConfig { events_per_sec: 10.0, event_burst: 20.0, ..LimitConfig::default() };
        let t0 = Instant::now();
        let mut r = EventRate::new(&cfg, t0);
        let mut refused = 0;
        for i in 0..400u64 {
            match r.check(t0 + Duration::from_millis(i * 50)) {
                Verdict::Disconnect => panic!("disconnected at {i}"),
                Verdict::Refuse => refused += 1,
                Verdict::Admit => {}
            }
        }
        assert!(refused > 100);
    }

    #[test]
    fn zero_means_no_limit() {
        let cfg = LimitConfig { events_per_sec: 0.0, ..LimitConfig::default() };
        let t0 = Instant::now();
        let mut r = EventRate::new(&cfg, t0);
        assert!((0..100_000).all(|_| r.check(t0) == Verdict::Admit));
        let mut ips = PerIp::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!((0..1000).all(|_| ips.try_add(ip, 0)));
    }

    #[test]
    fn connections_per_ip_are_counted_and_released() {
        let mut ips = PerIp::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(ips.try_add(a, 2));
        assert!(ips.try_add(a, 2));
        assert!(!ips.try_add(a, 2));
        assert!(ips.try_add(b, 2));
        ips.remove(a);
        assert!(ips.try_add(a, 2));
        ips.remove(a);
        ips.remove(a);
        ips.remove(b);
        assert_eq!(ips.addresses(), 0);
    }

    #[test]
    fn rate_by_ip_is_per_address_and_bounded() {
        let t0 = Instant::now();
        let mut r = RateByIp::new(1.0, 3.0, 4);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!((0..5).filter(|_| r.take(a, t0)).count(), 3);
        assert!(r.take("10.0.0.2".parse().unwrap(), t0));
        for i in 3..10u8 {
            r.take(IpAddr::from([10, 0, 0, i]), t0 + Duration::from_secs(100));
        }
        assert!(r.len() <= 4, "{}", r.len());
    }

    #[test]
    fn after_a_kick_a_new_connection_gets_the_rate_not_the_burst() {
        let config = LimitConfig { events_per_sec: 10.0, event_burst: 50.0, ..LimitConfig::default() };
        let t0 = Instant::now();
        let mut r = EventRate::after_kick(&config, t0);
        assert_eq!(r.check(t0), Verdict::Refuse, "nothing in hand");
        assert_eq!(r.check(t0 + Duration::from_millis(100)), Verdict::Admit, "one comes every 100 ms");
        assert_eq!(r.check(t0 + Duration::from_millis(100)), Verdict::Refuse);
        assert_eq!(EventRate::kick_lasts(&config), Duration::from_secs(5));
        assert_eq!(EventRate::kick_lasts(&LimitConfig { events_per_sec: 0.0, ..config }), Duration::ZERO);
    }
}
