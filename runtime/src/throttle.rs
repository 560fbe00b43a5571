//! Throttle: a token bucket per sink, from its `rate` (`10/s`, `50/min`), or one shared through
//! the state store (`shared: NAME`) by every sink of any process that names it.
//!
//! The bucket holds one token and refills one every `per / permits`, so requests leave evenly
//! spaced: in no window of length `per` do more than `permits` requests start (a bucket as
//! deep as the rate could start twice that many across the boundary of two windows, which a
//! strict API would refuse). Each attempt takes a token, retries included: servers count
//! every request.
//!
//! A shared bucket is the same algorithm, kept in the store's `throttles` table (one row per
//! name: the next free start, in nanoseconds since the Unix epoch): taking a token is one
//! atomic upsert (`INSERT .. ON CONFLICT DO UPDATE .. RETURNING`, [`Store::take_token`]) that
//! reserves `max(next, now)` and moves `next` one interval on, so concurrent takers in any
//! process get distinct, evenly spaced starts. Clocks: on PostgreSQL `now` is the server's
//! (`statement_timestamp()`), so instances on machines whose clocks disagree still share one
//! time line; only the wait comes back, and a wait is a duration, which skew does not change.
//! On SQLite the store is a file on this machine, and `now` is this machine's wall clock, the
//! same for every process using the file. A reservation further ahead than
//! [`SHARED_HORIZON_INTERVALS`] intervals can only come from a clock that jumped back (or a
//! queue of takers longer than that), so it is dropped and the bucket starts again from `now`:
//! a clock set back an hour does not stall every sink for an hour.
//!
//! Invariants:
//! - Waits, never drops: [`Bucket::take`] returns how long to wait before the request may
//!   start, and reserves that start. A shared bucket whose store cannot be reached fails the
//!   attempt (retried by the sink's policy) rather than send unthrottled.
//! - No real time in [`Bucket`]: the caller passes the time ([`crate::retry::Timer`]), so
//!   tests run on a fake clock. A shared bucket's time is the store's (see above).
//! - Sinks naming the same shared bucket with different rates (in different pipelines: the
//!   compiler refuses it within one) each space their own start from the one before by their
//!   own interval.

use std::time::Duration;

use sluice_compiler::plan::{StateTarget, ThrottlePlan};

use crate::error::RunError;
use crate::state::Store;

/// How many intervals ahead a shared bucket's reservation may be before it is taken for a
/// clock that jumped back (see the module header).
pub const SHARED_HORIZON_INTERVALS: i64 = 1000;

/// This machine's wall clock, in nanoseconds since the Unix epoch (a SQLite store's `now`).
pub fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A sink's throttle: its own bucket, or a bucket shared through the state store.
pub enum Throttle {
    Own(Bucket),
    /// Boxed: a store connection is large beside a bucket.
    Shared {
        name: String,
        interval: Duration,
        store: Box<Store>,
    },
}

impl Throttle {
    /// The sink's throttle; a shared one opens its own (unlocked) connection to the store.
    pub fn open(plan: &ThrottlePlan, state: Option<&StateTarget>) -> Result<Throttle, RunError> {
        let bucket = Bucket::from_plan(plan);
        match (&plan.shared, state) {
            (Some(name), Some(target)) => Ok(Throttle::Shared {
                name: name.clone(),
                interval: bucket.interval,
                store: Box::new(Store::open(target, None)?),
            }),
            (Some(name), None) => Err(RunError::new(
                crate::findings::PLAN_INVALID,
                format!("the shared throttle `{name}` has no state store to live in"),
            )),
            (None, _) => Ok(Throttle::Own(bucket)),
        }
    }

    /// Takes a token at time `now` (the caller's timer; a shared bucket uses the store's
    /// clock): the wait before the request may start.
    pub fn take(&mut self, now: Duration) -> Result<Duration, RunError> {
        match self {
            Throttle::Own(b) => Ok(b.take(now)),
            Throttle::Shared { name, interval, store } => store.take_token(name, *interval),
        }
    }

    /// Waits on `timer` for this request's turn. A shared bucket the store cannot serve is an
    /// `Err` with the text of a failed attempt (retried like one: a request is never sent
    /// unthrottled).
    pub fn wait_turn(&mut self, timer: &mut dyn crate::retry::Timer) -> Result<(), String> {
        let wait = self.turn(timer.now())?;
        timer.sleep(wait);
        Ok(())
    }

    /// [`Throttle::take`], a store that cannot serve it said as a failed attempt's text.
    pub fn turn(&mut self, now: Duration) -> Result<Duration, String> {
        self.take(now).map_err(|e| format!("shared throttle: {}", e.message))
    }
}

#[derive(Clone, Debug)]
pub struct Bucket {
    /// Time between two starts.
    interval: Duration,
    /// When the next request may start (time as the caller's timer counts it).
    next_start: Option<Duration>,
}

impl Bucket {
    pub fn from_plan(t: &ThrottlePlan) -> Bucket {
        // Rounded up to the nanosecond, so `permits` intervals never add up to less than `per`.
        let per = u128::from(t.per_seconds.max(1)) * 1_000_000_000;
        let nanos = per.div_ceil(u128::from(t.permits.max(1)));
        Bucket { interval: Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64), next_start: None }
    }

    /// Takes a token at time `now`: the wait before the request may start (zero when a token
    /// is there).
    pub fn take(&mut self, now: Duration) -> Duration {
        let start = self.next_start.map_or(now, |n| n.max(now));
        self.next_start = Some(start + self.interval);
        start - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bucket(permits: u64, per_seconds: u64) -> Bucket {
        Bucket::from_plan(&ThrottlePlan { permits, per_seconds, shared: None, per_key: None })
    }

    #[test]
    fn twenty_per_second_spaces_requests_50ms_apart() {
        let mut b = bucket(20, 1);
        let mut now = Duration::ZERO;
        let mut starts = Vec::new();
        for _ in 0..40 {
            now += b.take(now);
            starts.push(now);
        }
        assert_eq!(starts[0], Duration::ZERO, "the first request does not wait");
        assert!(starts.windows(2).all(|w| w[1] - w[0] == Duration::from_millis(50)));
        assert_eq!(starts[39], Duration::from_millis(1950));
    }

    #[test]
    fn an_idle_bucket_does_not_save_up_a_burst() {
        let mut b = bucket(10, 1);
        assert_eq!(b.take(Duration::ZERO), Duration::ZERO);
        // Idle for a minute: the next request goes at once, the one after waits its interval.
        let later = Duration::from_secs(60);
        assert_eq!(b.take(later), Duration::ZERO);
        assert_eq!(b.take(later), Duration::from_millis(100));
    }

    proptest! {
        /// Whatever the arrival times, no window of length `per` holds more than `permits`
        /// starts, and no request waits longer than the queue ahead of it needs.
        #[test]
        fn never_more_than_the_rate_in_any_window(
            permits in 1u64..50, per in prop::sample::select(vec![1u64, 60]),
            gaps in proptest::collection::vec(0u64..3_000, 1..120),
        ) {
            let mut b = bucket(permits, per);
            let interval = b.interval;
            let mut now = Duration::ZERO;
            let mut starts: Vec<Duration> = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                let wait = b.take(now);
                let start = now + wait;
                if let Some(prev) = starts.last() {
                    prop_assert!(start >= *prev + interval);
                    prop_assert!(wait == Duration::ZERO || start == *prev + interval, "waits no longer than needed");
                }
                starts.push(start);
                now = start;
            }
            let window = Duration::from_secs(per);
            for (i, s) in starts.iter().enumerate() {
                let within = starts[i..].iter().take_while(|t| **t < *s + window).count() as u64;
                prop_assert!(within <= permits, "{within} starts within {window:?} of {s:?}");
            }
        }
    }
}
