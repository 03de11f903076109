//! When a lean connection reads: at once, unless it is sending a burst.
//!
//! A client that trickles ICE candidates, or a load test, writes frames a
//! few microseconds apart, each its own TCP segment. Read as they come,
//! every frame costs a wake-up, a `recv`, and a write to each recipient.
//! So a connection that is bursting has its read wait [`BURST_HOLD`]: the
//! rest of the burst piles up in the socket, arrives in one read, and goes
//! out to each recipient in one write. This is Nagle's bargain made on the
//! reading side: at most a timer tick (1-2 ms) more latency, only for a
//! connection that is bursting. Two rules say when:
//!
//! - Any connection whose read comes within [`CLOSE_READS`] of the one
//!   before has its next read held.
//! - A busy connection ([`BUSY_EVENTS`] events within a second or two) has
//!   its read held as soon as the socket wakes it within [`BURST_GAP`] of
//!   its last read: before reading, since the first segment of a burst
//!   wakes the task, and a read then takes that segment and the few
//!   behind it alone. Measured with the official client (one event of a
//!   tick at once, the other 19 together some tens of milliseconds later):
//!   a tick came in 2 reads this way, in 3-4 by the first rule alone.
//!
//! The second rule waits for a busy connection because holding every
//! early message also held a call's setup (a join, an offer or answer, a
//! handful of candidates, each on the critical path of the call's start):
//! ICE connected went from 8 to 15 ms p50 (`bench/call-setup.sh`).
//!
//! Sans-IO: the caller brings the time and does what [`Pace`] says, which
//! keeps the rules testable without sockets or timers.

use std::time::Duration;

use tokio::time::Instant;

/// Two reads this close mean any client is sending a burst.
pub(super) const CLOSE_READS: Duration = Duration::from_millis(1);
/// Data arriving this soon after a busy connection's last read means it is
/// sending a burst: long enough to span the official client's gap between
/// the first event of a tick and the rest of them (tens of milliseconds
/// under load).
pub(super) const BURST_GAP: Duration = Duration::from_millis(100);
/// How long a bursting connection's read waits.
pub(super) const BURST_HOLD: Duration = Duration::from_millis(1);
/// Events within the current and the previous second that make a
/// connection busy: more than a call's setup sends.
pub(super) const BUSY_EVENTS: u32 = 16;
const SECOND: Duration = Duration::from_secs(1);

/// When the connection may read next, and how busy it has been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Pace {
    when: When,
    activity: Activity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Read as soon as anything arrives; the last read that brought data
    /// was at `last` (`None`: not since the last hold).
    Ready { last: Option<Instant> },
    /// Bursting: leave the socket alone until `until`.
    Hold { until: Instant },
}

impl Default for When {
    fn default() -> Self {
        When::Ready { last: None }
    }
}

/// Events read in the second that began at `began`, and in the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Activity {
    began: Option<Instant>,
    this: u32,
    before: u32,
}

impl Activity {
    fn add(&mut self, now: Instant, events: u32) {
        match self.began {
            Some(began) if now.duration_since(began) < SECOND => {}
            Some(began) if now.duration_since(began) < 2 * SECOND => {
                self.before = self.this;
                self.this = 0;
                self.began = Some(began + SECOND);
            }
            _ => *self = Activity { began: Some(now), this: 0, before: 0 },
        }
        self.this = self.this.saturating_add(events);
    }

    /// Busy as of the last read; a connection quiet since then is not
    /// asked: the gap to its last read decides first.
    fn busy(&self) -> bool {
        self.this.saturating_add(self.before) >= BUSY_EVENTS
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
        match self.when {
            When::Ready { last: Some(last) }
                if socket_woke && now.duration_since(last) < BURST_GAP && self.activity.busy() =>
            {
                self.when = When::Hold { until: now + BURST_HOLD };
                false
            }
            When::Ready { .. } => true,
            When::Hold { until } if now < until => false,
            When::Hold { .. } => {
                self.when = When::Ready { last: None };
                true
            }
        }
    }

    /// A read brought `events` at `now`: hold the next one if it came
    /// hard on the last (the read that ends a hold does not count: it
    /// follows a `last` of `None`).
    pub(super) fn read(&mut self, now: Instant, events: u32) {
        self.activity.add(now, events);
        self.when = match self.when {
            When::Ready { last: Some(last) } if now.duration_since(last) < CLOSE_READS => {
                When::Hold { until: now + BURST_HOLD }
            }
            _ => When::Ready { last: Some(now) },
        };
    }

    /// The connection's timer fired. Its deadline is never later than a
    /// hold's end (see [`Pace::until`]), so any hold is over: one ended
    /// early by a heartbeat costs nothing.
    pub(super) fn timer_fired(&mut self, now: Instant) {
        if let When::Hold { until } = self.when {
            self.when = When::Hold { until: until.min(now) };
        }
    }

    /// When the hold ends, for the connection's timer.
    pub(super) fn until(&self) -> Option<Instant> {
        match self.when {
            When::Hold { until } => Some(until),
            When::Ready { .. } => None,
        }
    }

    pub(super) fn holding(&self) -> bool {
        matches!(self.when, When::Hold { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    const MS: Duration = Duration::from_millis(1);

    /// A connection that has just read enough to be busy.
    fn busy(t0: Instant) -> Pace {
        let mut p = Pace::default();
        p.read(t0, BUSY_EVENTS);
        p
    }

    /// Its timer ends the hold it is in; when that was.
    fn end_hold(p: &mut Pace) -> Instant {
        let end = p.until().expect("held");
        p.timer_fired(end);
        assert!(p.may_read(end, false), "free when the hold ends");
        end
    }

    #[test]
    fn reads_now_and_then_are_never_held() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        for i in 1..5 {
            let now = t0 + BURST_GAP * 2 * i;
            assert!(p.may_read(now, true), "read {i}");
            p.read(now, 1);
            assert_eq!(p.until(), None, "read {i}");
        }
    }

    #[test]
    fn data_soon_after_a_read_waits_for_the_hold() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        let t1 = t0 + 40 * MS; // the rest of the client's tick
        assert!(!p.may_read(t1, true));
        assert_eq!(p.until(), Some(t1 + BURST_HOLD));
        assert!(!p.may_read(t1 + BURST_HOLD - US, true), "held until the end");
        assert!(!p.may_read(t1 + BURST_HOLD - US, false), "whatever wakes it");
        assert!(p.may_read(t1 + BURST_HOLD, false), "and free after it");
        assert!(!p.holding());
    }

    #[test]
    fn any_connection_reading_twice_hard_on_itself_holds_the_third() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.read(t0, 1);
        assert!(!p.holding(), "one read is not a burst");
        let t1 = t0 + 20 * US;
        assert!(p.may_read(t1, false));
        p.read(t1, 1);
        assert_eq!(p.until(), Some(t1 + BURST_HOLD));
        assert!(!p.may_read(t1 + BURST_HOLD - US, true), "held until the end");
        assert!(p.may_read(t1 + BURST_HOLD, false), "and free after it");
        p.read(t1 + BURST_HOLD, 3);
        assert!(!p.holding(), "the read that ends a hold does not start one");
    }

    #[test]
    fn a_call_setting_up_is_never_held() {
        // A join, an offer, candidates: each on the call's critical path.
        let t0 = Instant::now();
        let mut p = Pace::default();
        for i in 0..BUSY_EVENTS - 1 {
            let now = t0 + 5 * MS * i;
            assert!(p.may_read(now, true), "event {i}");
            p.read(now, 1);
        }
        // Past the mark it is busy, and data hard on a read is held.
        let now = t0 + 5 * MS * BUSY_EVENTS;
        assert!(p.may_read(now, true));
        p.read(now, 1);
        assert!(!p.may_read(now + MS, true));
    }

    #[test]
    fn busy_lasts_into_the_next_second_and_lapses_after_two_quiet_ones() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        let t1 = t0 + 1500 * MS;
        p.read(t1, 1);
        assert!(!p.may_read(t1 + MS, true), "the last second's events still count");
        let mut p = busy(t0);
        let t2 = t0 + 2500 * MS;
        p.read(t2, 1);
        assert!(p.may_read(t2 + MS, true), "after two quiet seconds it starts afresh");
    }

    #[test]
    fn only_the_socket_starts_a_hold() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        // The outbox or a timer woke it: the read finds nothing, or data
        // that came with it, and costs nothing to try.
        assert!(p.may_read(t0 + 10 * US, false));
        assert!(!p.holding());
    }

    #[test]
    fn a_burst_that_goes_on_is_held_again_and_one_that_ended_is_not() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        assert!(!p.may_read(t0 + 10 * US, true));
        for _ in 0..3 {
            let end = end_hold(&mut p);
            p.read(end, 1); // the held bytes
            assert!(!p.may_read(end + 50 * US, true), "more data hard on them is held again");
        }
        // The burst ends within the hold: its read is the last, and the
        // next data, long after, is read at once.
        let end = end_hold(&mut p);
        p.read(end, 1);
        assert!(p.may_read(end + BURST_GAP, true), "data long after is read at once");
    }

    #[test]
    fn a_hold_that_found_nothing_holds_nothing_after_it() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        assert!(!p.may_read(t0 + MS, true));
        let end = end_hold(&mut p); // and the read finds nothing
        assert!(p.may_read(end + 50 * US, true), "no data came before: this is read at once");
    }

    #[test]
    fn the_timer_ends_a_hold_even_before_its_end() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        assert!(!p.may_read(t0 + US, true));
        let early = t0 + 2 * US;
        p.timer_fired(early); // a heartbeat due first
        assert!(p.may_read(early, false), "a fired timer never leaves a hold behind it");
    }

    #[test]
    fn a_timer_with_no_hold_changes_nothing() {
        let t0 = Instant::now();
        let mut p = busy(t0);
        let before = p;
        p.timer_fired(t0 + US);
        assert_eq!(p, before);
    }
}
