//! What a sync source (`fhir.rest`, `stripe`) has handed on and not yet seen durable: a
//! counter the source raises for each record it sends and the executor's completion lowers
//! once the record is in the sinks or the DLQ.
//!
//! Invariant: a sync source saves a cursor only after [`Pending::drain`] returned `true` for
//! the records that cursor covers, so a run that stops early never moves a cursor past a
//! record that was not made durable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Records handed on and not yet durable.
#[derive(Default)]
pub struct Pending {
    count: Mutex<u64>,
    moved: Condvar,
}

impl Pending {
    pub fn add(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    pub fn done(&self) {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        *c = c.saturating_sub(1);
        self.moved.notify_all();
    }

    /// Waits until none is pending, or the executor is gone; returns whether none is.
    pub fn drain(&self, gone: &AtomicBool) -> bool {
        let mut c = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *c > 0 {
            if gone.load(Ordering::Relaxed) {
                return false;
            }
            c = self.moved.wait_timeout(c, Duration::from_millis(50)).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}
