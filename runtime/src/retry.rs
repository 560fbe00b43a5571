//! Retry policy: exponential backoff with full jitter, capped, bounded by attempts and by time.
//!
//! Before retry `n` (1-based) the wait is uniform in `[0, min(max_backoff, initial * 2^(n-1))]`
//! ("full jitter": clients that failed together do not come back together). A server's
//! `Retry-After` replaces the drawn wait. The caller classes each failure ([`Class`]): only a
//! retryable one is tried again.
//!
//! Invariants:
//! - At most `max_attempts` attempts, the first included.
//! - Never waits past `max_elapsed` from the first attempt: a wait (drawn or asked for by the
//!   server) that would end after it gives up instead, at once.
//! - No real time here: waits go through a [`Timer`], so tests run on a fake clock, and the
//!   jitter comes from a seedable [`Rng`].

use std::time::{Duration, Instant};

use sluice_compiler::plan::RetryPlan;

/// The retry policy of one sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_elapsed: Duration,
}

impl Policy {
    pub fn from_plan(p: &RetryPlan) -> Policy {
        Policy {
            max_attempts: p.max_attempts.max(1),
            initial_backoff: Duration::from_millis(p.initial_backoff_ms),
            max_backoff: Duration::from_millis(p.max_backoff_ms),
            max_elapsed: Duration::from_millis(p.max_elapsed_ms),
        }
    }

    /// The largest wait before retry `retry` (1-based): `min(max_backoff, initial * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doubling = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial_backoff.checked_mul(doubling).unwrap_or(Duration::MAX).min(self.max_backoff)
    }

    /// The wait before retry `retry`: uniform in `[0, ceiling(retry)]`.
    pub fn backoff(&self, retry: u32, rng: &mut Rng) -> Duration {
        let cap = self.ceiling(retry).as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rng.below_inclusive(cap))
    }
}

/// How a failed attempt is treated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Worth another attempt (timeouts, refused or reset connections, 5xx, 408, 429), after
    /// the server's `Retry-After` when it gave one.
    Retryable { retry_after: Option<Duration> },
    /// Will fail the same way again (most 4xx, 3xx, TLS or URL problems): a setting to fix.
    Permanent,
    /// The receiver refused the content (400, 409, 413, 415, 422): the records to fix.
    Data,
}

/// Why the retries stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GaveUp {
    /// The failure was not retryable.
    NotRetryable,
    /// `max_attempts` attempts failed.
    Attempts,
    /// The next wait would have ended after `max_elapsed`.
    Elapsed,
}

/// What [`run`] ended with, and how many attempts it took.
#[derive(Debug)]
pub struct Outcome<T, E> {
    pub result: Result<T, (E, GaveUp)>,
    pub attempts: u32,
}

/// Time as the retry loop and the throttle see it.
pub trait Timer {
    /// Time since some fixed start.
    fn now(&self) -> Duration;
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
pub struct RealTimer(Instant);

impl RealTimer {
    pub fn new() -> RealTimer {
        RealTimer(Instant::now())
    }
}

impl Default for RealTimer {
    fn default() -> Self {
        RealTimer::new()
    }
}

impl Timer for RealTimer {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// SplitMix64: small, fast, and good enough for jitter (not for secrets).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the clock and the process id, so processes retrying together spread out.
    pub fn from_time() -> Rng {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Rng((nanos as u64) ^ (u64::from(std::process::id()) << 32))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, max]` (Lemire's multiply-shift; the bias is below 2^-64 per draw).
    pub fn below_inclusive(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            None => self.next_u64(),
            Some(n) => ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64,
        }
    }
}

/// Runs `attempt` (given the attempt number, 1-based) until it succeeds or the policy gives
/// up. `on_retry` hears of each retry before its wait (the failure, the wait).
pub fn run<T, E>(
    policy: &Policy,
    rng: &mut Rng,
    timer: &mut dyn Timer,
    mut attempt: impl FnMut(u32, &mut dyn Timer) -> Result<T, (E, Class)>,
    mut on_retry: impl FnMut(&E, Duration),
) -> Outcome<T, E> {
    let started = timer.now();
    let mut n = 0u32;
    loop {
        n += 1;
        let (err, class) = match attempt(n, timer) {
            Ok(v) => return Outcome { result: Ok(v), attempts: n },
            Err(e) => e,
        };
        let wait = match class {
            Class::Permanent | Class::Data => None,
            Class::Retryable { retry_after } => Some(retry_after.unwrap_or_else(|| policy.backoff(n, rng))),
        };
        let Some(wait) = wait else {
            return Outcome { result: Err((err, GaveUp::NotRetryable)), attempts: n };
        };
        if n >= policy.max_attempts {
            return Outcome { result: Err((err, GaveUp::Attempts)), attempts: n };
        }
        let spent = timer.now().saturating_sub(started);
        if spent.saturating_add(wait) > policy.max_elapsed {
            return Outcome { result: Err((err, GaveUp::Elapsed)), attempts: n };
        }
        on_retry(&err, wait);
        timer.sleep(wait);
    }
}

/// `Retry-After`: delay seconds, or an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37
/// GMT`) turned into a wait from `now_unix` (seconds since 1970). A date in the past is no
/// wait. Anything else is ignored (`None`).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_imf_fixdate(v)?;
    Some(Duration::from_secs(at.saturating_sub(now_unix).max(0) as u64))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` -> seconds since 1970.
pub(crate) fn parse_imf_fixdate(v: &str) -> Option<i64> {
    let (_, rest) = v.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(crate::time::days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::Rng;
    use super::*;
    use proptest::prelude::*;

    /// A clock that moves only when slept on.
    #[derive(Default)]
    pub(crate) struct FakeTimer {
        pub now: Duration,
        pub slept: Vec<Duration>,
    }

    impl Timer for FakeTimer {
        fn now(&self) -> Duration {
            self.now
        }
        fn sleep(&mut self, d: Duration) {
            self.now += d;
            self.slept.push(d);
        }
    }

    fn policy(attempts: u32, initial_ms: u64, max_ms: u64, elapsed_ms: u64) -> Policy {
        Policy {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
            max_elapsed: Duration::from_millis(elapsed_ms),
        }
    }

    proptest! {
        #[test]
        fn backoff_is_within_zero_and_the_capped_exponential(
            seed in any::<u64>(), initial in 1u64..10_000, max in 1u64..600_000, retry in 1u32..80,
        ) {
            let p = policy(100, initial, max, u64::MAX / 2);
            let ceiling = p.ceiling(retry);
            let expected = Duration::from_millis(initial)
                .checked_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
                .unwrap_or(Duration::MAX)
                .min(Duration::from_millis(max));
            prop_assert_eq!(ceiling, expected);
            prop_assert!(ceiling <= Duration::from_millis(max), "capped");
            let mut rng = Rng::seeded(seed);
            for _ in 0..32 {
                prop_assert!(p.backoff(retry, &mut rng) <= ceiling);
            }
        }

        #[test]
        fn ceilings_double_until_the_cap(initial in 1u64..1000, max in 1u64..100_000) {
            let p = policy(100, initial, max, 1);
            for r in 1..40 {
                let (a, b) = (p.ceiling(r), p.ceiling(r + 1));
                prop_assert!(b == a * 2 || b == Duration::from_millis(max));
                prop_assert!(b >= a);
            }
        }

        #[test]
        fn run_never_exceeds_attempts_or_elapsed(
            seed in any::<u64>(), attempts in 1u32..12, elapsed in 0u64..20_000, after in proptest::option::of(0u64..5),
        ) {
            let p = policy(attempts, 100, 2_000, elapsed);
            let mut timer = FakeTimer::default();
            let mut rng = Rng::seeded(seed);
            let out: Outcome<(), ()> = run(
                &p,
                &mut rng,
                &mut timer,
                |_, _| Err(((), Class::Retryable { retry_after: after.map(Duration::from_secs) })),
                |_, _| {},
            );
            prop_assert!(out.attempts >= 1 && out.attempts <= attempts);
            prop_assert!(timer.now <= Duration::from_millis(elapsed), "waited {:?}", timer.now);
            prop_assert_eq!(timer.slept.len() as u32, out.attempts - 1);
            let gave_up = out.result.unwrap_err().1;
            prop_assert!(gave_up == GaveUp::Attempts || gave_up == GaveUp::Elapsed);
        }
    }

    #[test]
    fn full_jitter_spreads_over_the_whole_range() {
        // 4000 draws over [0, 1000ms]: every tenth of the range is hit, and the mean is near the
        // middle (a fixed seed, so this is deterministic).
        let p = policy(10, 1000, 1000, 1);
        let mut rng = Rng::seeded(7);
        let mut deciles = [0u32; 10];
        let mut sum = 0u128;
        for _ in 0..4000 {
            let d = p.backoff(1, &mut rng).as_millis();
            sum += d;
            deciles[(d as usize * 10 / 1001).min(9)] += 1;
        }
        assert!(deciles.iter().all(|&n| n > 300), "{deciles:?}");
        let mean = sum / 4000;
        assert!((450..=550).contains(&mean), "mean {mean}");
    }

    #[test]
    fn retries_then_succeeds_and_honours_retry_after() {
        let p = policy(5, 100, 1000, 60_000);
        let mut timer = FakeTimer::default();
        let mut rng = Rng::seeded(1);
        let mut retries = 0;
        let out: Outcome<&str, &str> = run(
            &p,
            &mut rng,
            &mut timer,
            |n, _| match n {
                1 => Err(("busy", Class::Retryable { retry_after: Some(Duration::from_secs(3)) })),
                2 => Err(("reset", Class::Retryable { retry_after: None })),
                _ => Ok("ok"),
            },
            |_, _| retries += 1,
        );
        assert_eq!(out.result.unwrap(), "ok");
        assert_eq!((out.attempts, retries), (3, 2));
        assert_eq!(timer.slept[0], Duration::from_secs(3), "Retry-After replaces the drawn wait");
        assert!(timer.slept[1] <= Duration::from_millis(200));
    }

    #[test]
    fn permanent_and_data_errors_are_not_retried() {
        for class in [Class::Permanent, Class::Data] {
            let mut timer = FakeTimer::default();
            let out: Outcome<(), u16> = run(
                &policy(5, 100, 1000, 60_000),
                &mut Rng::seeded(1),
                &mut timer,
                |_, _| Err((400, class.clone())),
                |_, _| {},
            );
            assert_eq!(out.attempts, 1);
            assert_eq!(out.result.unwrap_err(), (400, GaveUp::NotRetryable));
            assert!(timer.slept.is_empty());
        }
    }

    #[test]
    fn a_retry_after_beyond_max_elapsed_gives_up_at_once() {
        let mut timer = FakeTimer::default();
        let out: Outcome<(), ()> = run(
            &policy(5, 100, 1000, 10_000),
            &mut Rng::seeded(1),
            &mut timer,
            |_, _| Err(((), Class::Retryable { retry_after: Some(Duration::from_secs(11)) })),
            |_, _| {},
        );
        assert_eq!(out.result.unwrap_err().1, GaveUp::Elapsed);
        assert_eq!((out.attempts, timer.now), (1, Duration::ZERO));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(parse_retry_after("1", 0), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 120 ", 0), Some(Duration::from_secs(120)));
        // 1994-11-06T08:49:37Z is 784111777.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_999), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "soon", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 32 Nov 1994 08:49:37 GMT"] {
            assert_eq!(parse_retry_after(bad, 0), None, "{bad}");
        }
    }
}
