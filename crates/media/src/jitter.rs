//! An adaptive jitter buffer for 20 ms audio packets, sans-IO: the caller
//! says when a packet arrived and asks for the next 20 ms when the speaker
//! wants it; nothing here reads a clock or touches a device, so it tests
//! with simulated networks.
//!
//! How it adapts (the same idea as WebRTC's NetEq, at frame granularity):
//! - It measures each packet's transit time (arrival minus RTP time) and
//!   keeps the recent spread of it: the target delay is the 95th
//!   percentile of that spread plus one frame, within `[min, max]`.
//! - When the next packet has not arrived and nothing later has either, it
//!   *expands*: it plays a concealment frame without moving on, so a late
//!   packet still plays (and the delay grows by one frame).
//! - When the next packet is missing but later ones cover the target, it is
//!   lost: rebuilt from the following packet's FEC if that one is here,
//!   concealed otherwise.
//! - When more than the target plus a margin is buffered, it *accelerates*:
//!   drops one frame to bring the delay back down.
//! - After a long silence (the peer muted, or the network went away) it goes
//!   back to buffering and plays silence, instead of concealing forever.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ringlet_media::jitter::{JitterBuffer, JitterConfig, Playout};
//!
//! let mut jb = JitterBuffer::new(JitterConfig::default());
//! let t0 = Instant::now();
//! jb.push(1, 960, vec![1], t0);
//! jb.push(2, 1920, vec![2], t0 + Duration::from_millis(20));
//! assert_eq!(jb.pop(), Playout::Packet(vec![1]));
//! assert_eq!(jb.pop(), Playout::Packet(vec![2]));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Milliseconds of audio in one packet.
pub const FRAME_MS: f64 = 20.0;
/// RTP clock ticks per millisecond (Opus runs at 48 kHz).
const TICKS_PER_MS: f64 = 48.0;
/// RTP ticks in one packet.
const FRAME_TICKS: u32 = 960;

#[derive(Debug, Clone)]
pub struct JitterConfig {
    /// The least delay kept, even on a perfect network.
    pub min_delay: Duration,
    /// The most delay ever targeted: beyond it, late packets are lost.
    pub max_delay: Duration,
    /// Packets held at most; past it the oldest go.
    pub capacity: usize,
    /// Packets whose transit times shape the target (5 s).
    pub window: usize,
    /// Concealment frames played on an empty buffer before it falls back
    /// to buffering and silence.
    pub max_expand: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            capacity: 100,
            window: 250,
            max_expand: 10,
        }
    }
}

/// What to play for the next 20 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode this packet.
    Packet(Vec<u8>),
    /// The packet due now was lost; rebuild it from this, the following
    /// packet's in-band FEC (Opus `decode_fec`).
    Recover(Vec<u8>),
    /// Nothing to decode: conceal (Opus PLC).
    Conceal,
    /// Not playing (buffering, or the stream went quiet): silence.
    Silence,
}

/// Counters, for the quality indicator and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    /// Arrived after their turn had passed.
    pub late: u64,
    pub duplicates: u64,
    /// Dropped because the buffer was full.
    pub overflow: u64,
    /// Given up on (then recovered or concealed).
    pub lost: u64,
    pub recovered: u64,
    /// Concealment frames played while waiting for a late packet.
    pub expanded: u64,
    /// Frames dropped to bring the delay down.
    pub accelerated: u64,
    /// Times playback restarted from buffering.
    pub rebuffers: u64,
    pub target_ms: f64,
    pub buffered_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Buffering,
    Playing { next: u64, expanding: u32 },
}

/// The buffer. See the module docs for how it behaves.
#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    state: State,
    /// Payloads with their RTP timestamps, by extended sequence number.
    packets: BTreeMap<u64, (u32, Vec<u8>)>,
    /// RTP timestamp of the audio the last pop played.
    played_rtp: Option<u32>,
    seq: Unwrapper<16>,
    rtp: Unwrapper<32>,
    epoch: Option<Instant>,
    /// Recent transit times in ms (arrival minus RTP time, any offset).
    transits: VecDeque<f64>,
    target_ms: f64,
    stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> Self {
        let target_ms = config.min_delay.as_secs_f64() * 1e3;
        JitterBuffer {
            transits: VecDeque::with_capacity(config.window),
            config,
            state: State::Buffering,
            packets: BTreeMap::new(),
            played_rtp: None,
            seq: Unwrapper::default(),
            rtp: Unwrapper::default(),
            epoch: None,
            target_ms,
            stats: JitterStats { target_ms, ..Default::default() },
        }
    }

    /// A packet arrived: its RTP sequence number and timestamp, payload and
    /// arrival time.
    pub fn push(&mut self, seq: u16, rtp_ts: u32, payload: Vec<u8>, arrival: Instant) {
        self.stats.received += 1;
        let seq = self.seq.unwrap(seq as u64);
        let rtp = self.rtp.unwrap(rtp_ts as u64);
        self.observe_transit(rtp, arrival);
        if let State::Playing { next, .. } = self.state {
            if seq < next {
                self.stats.late += 1;
                return;
            }
            // A jump far past anything the buffer could bridge: the sender
            // restarted its stream. Start over from this packet.
            if seq > next + 3 * self.config.capacity as u64 {
                self.packets.clear();
                self.state = State::Buffering;
            }
        }
        if self.packets.contains_key(&seq) {
            self.stats.duplicates += 1;
            return;
        }
        self.packets.insert(seq, (rtp_ts, payload));
        while self.packets.len() > self.config.capacity {
            self.packets.pop_first();
            self.stats.overflow += 1;
        }
    }

    /// The next 20 ms to play.
    pub fn pop(&mut self) -> Playout {
        let out = self.pop_inner();
        self.stats.buffered_ms = self.buffered_ms();
        if matches!(out, Playout::Packet(_) | Playout::Recover(_)) {
            self.stats.played += 1;
        }
        out
    }

    fn pop_inner(&mut self) -> Playout {
        let (next, expanding) = match self.state {
            State::Playing { next, expanding } => (next, expanding),
            State::Buffering => {
                let Some(first) = self.packets.keys().next().copied() else { return Playout::Silence };
                if self.buffered_span(first) < self.target_ms {
                    return Playout::Silence;
                }
                self.stats.rebuffers += 1;
                (first, 0)
            }
        };
        // Too much buffered: drop the frame due now (it exists, and so does
        // the one after, so nothing audible is lost but 20 ms of delay).
        let mut next = next;
        if self.buffered_span(next) > self.target_ms + 3.0 * FRAME_MS
            && self.packets.contains_key(&next)
            && self.packets.contains_key(&(next + 1))
        {
            self.packets.remove(&next);
            self.stats.accelerated += 1;
            next += 1;
        }
        if let Some((rtp, p)) = self.packets.remove(&next) {
            self.state = State::Playing { next: next + 1, expanding: 0 };
            self.played_rtp = Some(rtp);
            return Playout::Packet(p);
        }
        if self.packets.is_empty() {
            // Nothing at all: wait for the packet (it may only be late), up
            // to a point; then stop and buffer afresh.
            if expanding >= self.config.max_expand {
                self.state = State::Buffering;
                return Playout::Silence;
            }
            self.stats.expanded += 1;
            self.state = State::Playing { next, expanding: expanding + 1 };
            return Playout::Conceal;
        }
        // A gap. If what is buffered beyond it covers the target, the
        // missing packet is lost; otherwise it may still come.
        if self.buffered_span(next) < self.target_ms && expanding < self.config.max_expand {
            self.stats.expanded += 1;
            self.state = State::Playing { next, expanding: expanding + 1 };
            return Playout::Conceal;
        }
        self.stats.lost += 1;
        self.state = State::Playing { next: next + 1, expanding: 0 };
        self.played_rtp = self.played_rtp.map(|r| r.wrapping_add(FRAME_TICKS));
        match self.packets.get(&(next + 1)) {
            Some((rtp, following)) => {
                self.played_rtp = Some(rtp.wrapping_sub(FRAME_TICKS));
                self.stats.recovered += 1;
                Playout::Recover(following.clone())
            }
            None => Playout::Conceal,
        }
    }

    /// RTP timestamp of the audio the last [`pop`](Self::pop) gave out
    /// (for lip sync); `None` before anything played.
    pub fn played_rtp(&self) -> Option<u32> {
        self.played_rtp
    }

    /// The delay the buffer aims for now.
    pub fn target(&self) -> Duration {
        Duration::from_secs_f64(self.target_ms / 1e3)
    }

    pub fn stats(&self) -> JitterStats {
        JitterStats { target_ms: self.target_ms, buffered_ms: self.buffered_ms(), ..self.stats.clone() }
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    fn buffered_ms(&self) -> f64 {
        match self.state {
            State::Playing { next, .. } => self.buffered_span(next),
            State::Buffering => self.packets.keys().next().map_or(0.0, |f| self.buffered_span(*f)),
        }
    }

    /// Milliseconds from `from` to the end of the newest packet held.
    fn buffered_span(&self, from: u64) -> f64 {
        match self.packets.keys().next_back() {
            Some(&last) if last >= from => (last - from + 1) as f64 * FRAME_MS,
            _ => 0.0,
        }
    }

    fn observe_transit(&mut self, rtp: u64, arrival: Instant) {
        let epoch = *self.epoch.get_or_insert(arrival);
        let arrival_ms = arrival.saturating_duration_since(epoch).as_secs_f64() * 1e3;
        let transit = arrival_ms - rtp as f64 / TICKS_PER_MS;
        if self.transits.len() == self.config.window {
            self.transits.pop_front();
        }
        self.transits.push_back(transit);
        let min = self.transits.iter().copied().fold(f64::INFINITY, f64::min);
        let mut spread: Vec<f64> = self.transits.iter().map(|t| t - min).collect();
        spread.sort_by(|a, b| a.total_cmp(b));
        let p95 = spread[((spread.len() - 1) as f64 * 0.95).round() as usize];
        let (lo, hi) = (self.config.min_delay.as_secs_f64() * 1e3, self.config.max_delay.as_secs_f64() * 1e3);
        self.target_ms = (p95 + FRAME_MS).clamp(lo, hi);
    }
}

/// Extends a wrapping `BITS`-bit counter (RTP sequence numbers, timestamps)
/// to 64 bits, taking the nearest interpretation to the last value seen.
#[derive(Debug, Default, Clone, Copy)]
struct Unwrapper<const BITS: u32> {
    last: Option<u64>,
}

impl<const BITS: u32> Unwrapper<BITS> {
    fn unwrap(&mut self, v: u64) -> u64 {
        let modulus = 1u64 << BITS;
        let Some(last) = self.last else {
            // Start one cycle up so early values before the first stay positive.
            let first = modulus + v;
            self.last = Some(first);
            return first;
        };
        let base = last & !(modulus - 1);
        let candidates = [base.wrapping_sub(modulus) + v, base + v, base + modulus + v];
        let out = candidates.into_iter().min_by_key(|c| c.abs_diff(last)).unwrap();
        if out > last {
            self.last = Some(out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A simulated call: packet `i` is sent at `i * 20 ms` and arrives
    /// `delay(i)` later (`None`: lost); the speaker pops every 20 ms.
    /// Returns what was played, in order, by packet index (`u64::MAX`
    /// marks a rebuilt or concealed frame) and the buffer.
    fn simulate(n: u64, delay: impl Fn(u64) -> Option<f64>, first_seq: u16) -> (Vec<u64>, JitterBuffer) {
        let t0 = Instant::now();
        let at = |ms: f64| t0 + Duration::from_secs_f64(ms / 1e3);
        let mut arrivals: Vec<(f64, u64)> = (0..n).filter_map(|i| delay(i).map(|d| (i as f64 * FRAME_MS + d, i))).collect();
        arrivals.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut played = vec![];
        let mut k = 0;
        let end = n as f64 * FRAME_MS + 1000.0;
        let mut now = 0.0;
        // Until everything sent has arrived and played.
        while now < end && !(k == arrivals.len() && jb.is_empty()) {
            while k < arrivals.len() && arrivals[k].0 <= now {
                let i = arrivals[k].1;
                let seq = first_seq.wrapping_add(i as u16);
                jb.push(seq, (i as u32).wrapping_mul(960).wrapping_add(12345), i.to_be_bytes().to_vec(), at(arrivals[k].0));
                k += 1;
            }
            match jb.pop() {
                Playout::Packet(p) => played.push(u64::from_be_bytes(p.try_into().unwrap())),
                Playout::Recover(_) | Playout::Conceal => played.push(u64::MAX),
                Playout::Silence => {}
            }
            now += FRAME_MS;
        }
        // The stream's end is concealed for a while: not part of it.
        while played.last() == Some(&u64::MAX) {
            played.pop();
        }
        (played, jb)
    }

    fn real(played: &[u64]) -> Vec<u64> {
        played.iter().copied().filter(|p| *p != u64::MAX).collect()
    }

    #[test]
    fn a_clean_network_plays_everything_in_order_at_the_least_delay() {
        let (played, jb) = simulate(500, |_| Some(5.0), 0);
        assert_eq!(played, (0..500).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.expanded, s.accelerated), (0, 0, 0, 0));
        assert_eq!(s.target_ms, 20.0);
    }

    #[test]
    fn jitter_raises_the_target_and_nothing_is_lost_once_adapted() {
        // Arrival delay swings between 0 and 90 ms, deterministically.
        let delay = |i: u64| Some(((i * 37) % 10) as f64 * 10.0);
        let (played, jb) = simulate(1000, delay, 0);
        let s = jb.stats();
        assert!(s.target_ms >= 80.0, "target {} ms for 90 ms of jitter", s.target_ms);
        let real = real(&played);
        assert!(real.windows(2).all(|w| w[0] < w[1]), "played in order");
        // After the first seconds of adapting, every packet plays.
        let later: Vec<u64> = real.iter().copied().filter(|i| *i >= 300).collect();
        assert_eq!(later, (300..1000).collect::<Vec<_>>(), "late drops after adapting: {s:?}");
    }

    #[test]
    fn a_lost_packet_is_rebuilt_from_the_next_ones_fec() {
        let (played, jb) = simulate(100, |i| (i != 50).then_some(3.0), 0);
        let s = jb.stats();
        assert_eq!((s.lost, s.recovered), (1, 1), "{s:?}");
        assert_eq!(real(&played), (0..100).filter(|i| *i != 50).collect::<Vec<_>>());
        // Until 51 arrives, 50 might only be late: the buffer stretches
        // (expands) before it gives 50 up and rebuilds it.
        let stand_ins = played.iter().filter(|p| **p == u64::MAX).count() as u64;
        assert_eq!(stand_ins, 1 + s.expanded, "{s:?}");
        // Two in a row: the first is concealed (no FEC source), the second rebuilt.
        let (played, jb) = simulate(100, |i| (i != 50 && i != 51).then_some(3.0), 0);
        assert_eq!((jb.stats().lost, jb.stats().recovered), (2, 1));
        assert_eq!(real(&played).len(), 98);
    }

    #[test]
    fn reordered_packets_play_in_order() {
        // Every tenth packet arrives 30 ms late, after its successor.
        let (played, jb) = simulate(400, |i| Some(if i % 10 == 5 { 30.0 } else { 2.0 }), 0);
        assert_eq!(real(&played), (0..400).collect::<Vec<_>>(), "{:?}", jb.stats());
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let (played, _) = simulate(300, |_| Some(1.0), u16::MAX - 100);
        assert_eq!(played, (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn late_and_duplicate_packets_are_counted_and_ignored() {
        let t = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(10, 0, vec![10], t);
        jb.push(10, 0, vec![10], t);
        assert_eq!(jb.pop(), Playout::Packet(vec![10]));
        jb.push(9, 0, vec![9], t);
        jb.push(10, 0, vec![10], t);
        let s = jb.stats();
        assert_eq!((s.duplicates, s.late), (1, 2));
        assert!(jb.is_empty());
    }

    #[test]
    fn memory_is_bounded_when_nobody_plays() {
        let t = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        for i in 0..10_000u32 {
            jb.push(i as u16, i * 960, vec![0; 100], t + Duration::from_millis(20 * i as u64));
        }
        assert_eq!(jb.len(), 100);
        assert_eq!(jb.stats().overflow, 9_900);
    }

    #[test]
    fn calmer_network_brings_the_delay_back_down() {
        // 200 ms of jitter for 10 s, then a clean network.
        let delay = |i: u64| Some(if i < 500 { ((i * 37) % 11) as f64 * 20.0 } else { 1.0 });
        let (played, jb) = simulate(1500, delay, 0);
        let s = jb.stats();
        assert!(s.accelerated > 0, "{s:?}");
        assert!(s.target_ms <= 40.0, "target back down: {s:?}");
        assert!(s.buffered_ms <= 40.0, "delay back down: {s:?}");
        assert!(real(&played).windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_silent_stream_stops_concealing_and_resumes_when_packets_return() {
        // Packets 0..100, nothing for 3 s (the peer muted), then 250..400.
        let (played, jb) = simulate(400, |i| (i < 100 || i >= 250).then_some(2.0), 0);
        let s = jb.stats();
        let concealed = played.iter().filter(|p| **p == u64::MAX).count();
        assert!(concealed <= JitterConfig::default().max_expand as usize + 1, "{concealed} concealed: {s:?}");
        assert_eq!(s.rebuffers, 2);
        assert_eq!(real(&played), (0..100).chain(250..400).collect::<Vec<_>>());
    }

    #[test]
    fn a_restarted_stream_is_followed() {
        let t = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.push(100, 0, vec![1], t);
        assert_eq!(jb.pop(), Playout::Packet(vec![1]));
        jb.push(20_000, 0, vec![2], t);
        assert_eq!(jb.pop(), Playout::Packet(vec![2]));
    }

    #[test]
    fn the_played_rtp_timestamp_follows_the_audio() {
        let t = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let push = |jb: &mut JitterBuffer, i: u16| {
            jb.push(i, 1000 + i as u32 * 960, vec![i as u8], t + Duration::from_millis(20 * i as u64));
        };
        push(&mut jb, 0);
        push(&mut jb, 1);
        assert_eq!(jb.played_rtp(), None);
        assert_eq!(jb.pop(), Playout::Packet(vec![0]));
        assert_eq!(jb.played_rtp(), Some(1000));
        jb.pop();
        assert_eq!(jb.played_rtp(), Some(1960));
        push(&mut jb, 3);
        push(&mut jb, 4);
        assert_eq!(jb.pop(), Playout::Recover(vec![3]), "2 is lost, 3 carries its FEC");
        assert_eq!(jb.played_rtp(), Some(2920));
        jb.pop();
        assert_eq!(jb.played_rtp(), Some(3880));
    }

    #[test]
    fn unwrapping_follows_both_directions() {
        let mut u = Unwrapper::<16>::default();
        let a = u.unwrap(65_530);
        assert_eq!(u.unwrap(3) - a, 9);
        assert_eq!(a - u.unwrap(65_520), 10);
    }
}
