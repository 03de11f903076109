//! When a lean connection reads: at once, unless it is sending a burst.
//!
//! A client that trickles ICE candidates, or a load test, writes frames a
//! few microseconds apart, each its own TCP segment. Read as they come,
//! every frame costs a wake-up, a `recv`, and a write to each recipient.
//! So once two reads come within [`BURST_GAP`], the next read waits
//! [`BURST_HOLD`]: the burst piles up in the socket and arrives in one
//! read, and goes out to each recipient in one write. This is Nagle's
//! bargain made on the reading side: at most a timer tick (1-2 ms) more
//! latency, only for a connection that is already bursting. A client
//! sending now and then is read at once.
//!
//! Sans-IO: the caller brings the time and does what [`Pace`] says, which
//! keeps the rules testable without sockets or timers.

use std::time::Duration;

use tokio::time::Instant;

/// Reads closer together than this mean the client is sending a burst.
pub(super) const BURST_GAP: Duration = Duration::from_millis(1);
/// How long a bursting connection's next read waits.
pub(super) const BURST_HOLD: Duration = Duration::from_millis(1);

/// When the connection may read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// Read as soon as anything arrives; the last read was at `last`
    /// (`None`: not lately).
    Ready { last: Option<Instant> },
    /// Bursting: leave the socket alone until `until`.
    Hold { until: Instant },
}

impl Default for Pace {
    fn default() -> Self {
        Pace::Ready { last: None }
    }
}

impl Pace {
    /// Whether to read now; ends a hold that is over. The read that ends a
    /// hold starts afresh: only another read hard on it holds again, so a
    /// burst that ended during the hold costs no second, empty hold (its
    /// timer, its wake-up, its socket options).
    pub(super) fn may_read(&mut self, now: Instant) -> bool {
        match *self {
            Pace::Ready { .. } => true,
            Pace::Hold { until } if now < until => false,
            Pace::Hold { .. } => {
                *self = Pace::Ready { last: None };
                true
            }
        }
    }

    /// A read brought data at `now`: hold the next one if it came hard on
    /// the last.
    pub(super) fn read(&mut self, now: Instant) {
        *self = match *self {
            Pace::Ready { last: Some(last) } if now.duration_since(last) < BURST_GAP => {
                Pace::Hold { until: now + BURST_HOLD }
            }
            _ => Pace::Ready { last: Some(now) },
        };
    }

    /// The connection's timer fired. Its deadline is never later than a
    /// hold's end (see [`Pace::until`]), so any hold is over: one ended
    /// early by a heartbeat costs nothing.
    pub(super) fn timer_fired(&mut self, now: Instant) {
        if let Pace::Hold { until } = *self {
            *self = Pace::Hold { until: until.min(now) };
        }
    }

    /// When the hold ends, for the connection's timer.
    pub(super) fn until(&self) -> Option<Instant> {
        match *self {
            Pace::Hold { until } => Some(until),
            Pace::Ready { .. } => None,
        }
    }

    pub(super) fn holding(&self) -> bool {
        matches!(self, Pace::Hold { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn reads_now_and_then_are_never_held() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        for i in 0..5 {
            let now = t0 + BURST_GAP * 2 * i;
            assert!(p.may_read(now));
            p.read(now);
            assert_eq!(p.until(), None, "read {i}");
        }
    }

    #[test]
    fn a_second_read_close_on_the_first_holds_the_third() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        assert!(!p.holding(), "one read is not a burst");
        let t1 = t0 + 20 * US;
        assert!(p.may_read(t1));
        p.read(t1);
        assert_eq!(p.until(), Some(t1 + BURST_HOLD));
        assert!(!p.may_read(t1 + BURST_HOLD - US), "held until the end");
        assert!(p.holding());
        assert!(p.may_read(t1 + BURST_HOLD), "and free after it");
        assert!(!p.holding());
    }

    #[test]
    fn a_burst_that_goes_on_is_held_again_and_one_that_ended_is_not() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        p.read(t0 + 10 * US);
        for _ in 0..3 {
            let end = p.until().expect("held");
            p.timer_fired(end);
            assert!(p.may_read(end));
            p.read(end + 5 * US); // the held bytes
            assert!(!p.holding(), "the read that ends a hold does not start one");
            p.read(end + 50 * US); // but the burst goes on
            assert!(p.holding(), "a read hard on it does");
        }
        // The burst ends within the hold: its read is the last, and no
        // further hold (nor its timer) follows.
        let end = p.until().unwrap();
        p.timer_fired(end);
        assert!(p.may_read(end));
        p.read(end + 5 * US);
        assert_eq!(p.until(), None);
        let later = end + BURST_GAP * 10;
        assert!(p.may_read(later));
        p.read(later);
        assert!(!p.holding(), "a read long after is taken at once");
    }

    #[test]
    fn the_timer_ends_a_hold_even_before_its_end() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        p.read(t0 + US);
        let early = t0 + 2 * US;
        assert!(!p.may_read(early));
        p.timer_fired(early); // a heartbeat due first
        assert!(p.may_read(early), "a fired timer never leaves a hold behind it");
    }

    #[test]
    fn a_timer_with_no_hold_changes_nothing() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        let before = p;
        p.timer_fired(t0 + US);
        assert_eq!(p, before);
    }
}
