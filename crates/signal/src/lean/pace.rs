//! When a lean connection reads: at once, unless it is sending a burst.
//!
//! A client that trickles ICE candidates, or a load test, writes frames a
//! few microseconds apart, each its own TCP segment. Read as they come,
//! every frame costs a wake-up, a `recv`, and a write to each recipient.
//! So when the socket wakes a connection within [`BURST_GAP`] of its last
//! read, the read waits [`BURST_HOLD`]: the rest of the burst piles up in
//! the socket, arrives in one read, and goes out to each recipient in one
//! write. This is Nagle's bargain made on the reading side: at most a timer
//! tick (1-2 ms) more latency, only for a connection that sent something
//! lately. A client that sends now and then is read at once.
//!
//! The hold is decided before the read, when the socket wakes the task,
//! not after it: the first segment of a burst wakes the task, and a read
//! then would take that segment and the few behind it alone. Measured with
//! the official client (which sends one event at once and the rest of a
//! tick's events together, some tens of milliseconds later): 20 events
//! came in 2 reads this way, in 3-4 when the hold began after two reads.
//!
//! Sans-IO: the caller brings the time and does what [`Pace`] says, which
//! keeps the rules testable without sockets or timers.

use std::time::Duration;

use tokio::time::Instant;

/// Data arriving this soon after a read means the client is sending a
/// burst: long enough to span the official client's gap between the first
/// event of a tick and the rest of them (tens of milliseconds under load).
pub(super) const BURST_GAP: Duration = Duration::from_millis(100);
/// How long a bursting connection's read waits.
pub(super) const BURST_HOLD: Duration = Duration::from_millis(1);

/// When the connection may read next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pace {
    /// Read as soon as anything arrives; the last read that brought data
    /// was at `last` (`None`: not since the last hold).
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
    /// Whether to read now; ends a hold that is over. `socket_woke`: the
    /// socket's readiness for reading is what woke the connection (not its
    /// outbox, a waiting write or the timer), so data has come in. Other
    /// wake-ups read at once: a read that finds nothing costs no syscall,
    /// and a hold with nothing to gather would cost its timer and socket
    /// options for nothing.
    pub(super) fn may_read(&mut self, now: Instant, socket_woke: bool) -> bool {
        match *self {
            Pace::Ready { last: Some(last) } if socket_woke && now.duration_since(last) < BURST_GAP => {
                *self = Pace::Hold { until: now + BURST_HOLD };
                false
            }
            Pace::Ready { .. } => true,
            Pace::Hold { until } if now < until => false,
            Pace::Hold { .. } => {
                *self = Pace::Ready { last: None };
                true
            }
        }
    }

    /// A read brought data at `now`.
    pub(super) fn read(&mut self, now: Instant) {
        *self = Pace::Ready { last: Some(now) };
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

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn reads_now_and_then_are_never_held() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        for i in 0..5 {
            let now = t0 + BURST_GAP * 2 * i;
            assert!(p.may_read(now, true), "read {i}");
            p.read(now);
            assert_eq!(p.until(), None, "read {i}");
        }
    }

    #[test]
    fn data_soon_after_a_read_waits_for_the_hold() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        assert!(p.may_read(t0, true), "the first read is taken at once");
        p.read(t0);
        let t1 = t0 + 40 * MS; // the rest of the client's tick
        assert!(!p.may_read(t1, true));
        assert_eq!(p.until(), Some(t1 + BURST_HOLD));
        assert!(!p.may_read(t1 + BURST_HOLD - US, true), "held until the end");
        assert!(!p.may_read(t1 + BURST_HOLD - US, false), "whatever wakes it");
        assert!(p.may_read(t1 + BURST_HOLD, false), "and free after it");
        assert!(!p.holding());
    }

    #[test]
    fn only_the_socket_starts_a_hold() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        // The outbox or a timer woke it: the read finds nothing, or data
        // that came with it, and costs nothing to try.
        assert!(p.may_read(t0 + 10 * US, false));
        assert!(!p.holding());
    }

    #[test]
    fn a_burst_that_goes_on_is_held_again_and_one_that_ended_is_not() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        assert!(!p.may_read(t0 + 10 * US, true));
        for _ in 0..3 {
            let end = p.until().expect("held");
            p.timer_fired(end);
            assert!(p.may_read(end, false));
            p.read(end); // the held bytes
            assert!(!p.may_read(end + 50 * US, true), "more data hard on them is held again");
        }
        // The burst ends within the hold: its read is the last, and the
        // next data, long after, is read at once.
        let end = p.until().unwrap();
        p.timer_fired(end);
        assert!(p.may_read(end, false));
        p.read(end);
        assert!(p.may_read(end + BURST_GAP, true), "data long after is read at once");
    }

    #[test]
    fn a_hold_that_found_nothing_holds_nothing_after_it() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        assert!(!p.may_read(t0 + MS, true));
        let end = p.until().unwrap();
        p.timer_fired(end);
        assert!(p.may_read(end, false)); // and the read finds nothing
        assert!(p.may_read(end + 50 * US, true), "no data came before: this is read at once");
    }

    #[test]
    fn the_timer_ends_a_hold_even_before_its_end() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0);
        assert!(!p.may_read(t0 + US, true));
        let early = t0 + 2 * US;
        p.timer_fired(early); // a heartbeat due first
        assert!(p.may_read(early, false), "a fired timer never leaves a hold behind it");
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
