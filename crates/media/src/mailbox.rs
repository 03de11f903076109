//! The bounded hand-over between a producer that must never wait (a camera,
//! a capture clock) and a consumer that may be slow (an encoder).

use std::sync::{Condvar, Mutex};

/// A one-slot mailbox: `put` replaces what is there (the older frame is
/// dropped and counted), `take` waits for something. Capture never blocks
/// and memory never grows, whatever the consumer does.
#[derive(Debug)]
pub struct Latest<T> {
    slot: Mutex<(Option<T>, bool, u64)>,
    ready: Condvar,
}

impl<T> Default for Latest<T> {
    fn default() -> Self {
        Latest { slot: Mutex::new((None, false, 0)), ready: Condvar::new() }
    }
}

impl<T> Latest<T> {
    /// Stores `value`; returns whether an unconsumed one was dropped.
    pub fn put(&self, value: T) -> bool {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = s.0.replace(value).is_some();
        s.2 += u64::from(dropped);
        self.ready.notify_one();
        dropped
    }

    /// Waits for a value; `None` once closed and empty.
    pub fn take(&self) -> Option<T> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = s.0.take() {
                return Some(v);
            }
            if s.1 {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Like [`take`](Self::take), but gives up after `timeout`.
    pub fn take_timeout(&self, timeout: std::time::Duration) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = s.0.take() {
                return Some(v);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if s.1 || left.is_zero() {
                return None;
            }
            s = self.ready.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    pub fn close(&self) {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.ready.notify_all();
    }

    /// Values replaced before anyone took them.
    pub fn dropped(&self) -> u64 {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).2
    }
}
