//! What the financial API clients ([`crate::finance::stripe`], [`crate::finance::quickbooks`],
//! [`crate::finance::plaid`]) share about one request: the retry policy run over attempts that
//! each wait their throttle turn, one token renewal on 401, the counts of requests and
//! retries, the classing of transport failures and `Retry-After`, and the request budget of
//! one vendor account ([`budget`]).
//!
//! Invariants:
//! - A request asks the connection for a new token at most once (a second 401 is final).
//! - A [`Failure`] holds fixed words only (a status, a vendor's error type or code): never a
//!   token, a key or a vendor's error message, which may quote data. Each client turns it into
//!   its own error code and help.
//! - One budget per vendor account, not per client: every client of every process that reads
//!   the same account (a QuickBooks company, a Plaid Item, a Stripe account) through one state
//!   store draws on one bucket there, named after the account ([`budget`]); two overlapping runs
//!   together stay within the vendor's limit. Without a state store the budget is the
//!   process's own. A budget the store cannot serve fails the attempt (retried), never sends
//!   unthrottled. Names never hold a secret: a credential that names an account appears as a
//!   digest ([`credential_id`]).

use sha2::{Digest, Sha256};
use sluice_compiler::plan::{StateTarget, ThrottlePlan};

use crate::error::RunError;
use crate::oauth::Connection;
use crate::retry::{self, Class, Policy, RealTimer, Rng, Timer};
use crate::secrets::Secret;
use crate::throttle::Throttle;

/// A failed attempt: its HTTP status (none when no answer came), what went wrong in fixed
/// words, and whether the credentials were refused (401).
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub what: String,
    pub unauthorized: bool,
}

impl Failure {
    /// `HTTP 429, ` (empty without a status): the start of a failure's message.
    pub fn status_prefix(&self) -> String {
        self.status.map_or_else(String::new, |s| format!("HTTP {s}, "))
    }
}

/// Requests and retries sent, for the sync's log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub requests: u64,
    pub retries: u64,
}

/// A client's retry state: the policy, its clock and its jitter.
pub struct Retrying {
    policy: Policy,
    timer: RealTimer,
    rng: Rng,
}

impl Retrying {
    pub fn new(policy: Policy) -> Retrying {
        Retrying { policy, timer: RealTimer::new(), rng: Rng::from_time() }
    }

    /// One request: `attempt` (given the connection's current token and the timer, on which it
    /// waits its throttle turn) until it succeeds or the policy gives up; a 401 asks the
    /// connection for a new token once and starts over. What finally failed goes to `fail`
    /// with why (`refused` or `still failing after retries`), which makes the client's error.
    pub fn request<T>(
        &mut self,
        connection: &Connection,
        counts: &mut Counts,
        mut attempt: impl FnMut(&Secret, &mut dyn Timer) -> Result<T, (Failure, Class)>,
        fail: impl FnOnce(Failure, &str) -> RunError,
    ) -> Result<T, RunError> {
        let mut token = connection.bearer()?;
        let mut renewed = false;
        loop {
            match self.attempts(counts, |timer| attempt(&token, timer)) {
                Ok(v) => return Ok(v),
                Err((f, _)) if f.unauthorized && !renewed => {
                    renewed = true;
                    token = connection.unauthorized(&token)?;
                }
                Err((f, why)) => return Err(fail(f, why)),
            }
        }
    }

    /// `attempt` until it succeeds or the policy gives up: then the last failure and why
    /// (`refused` or `still failing after retries`). For APIs whose credentials are not a
    /// renewable token (Plaid's are in the body).
    pub fn attempts<T>(
        &mut self,
        counts: &mut Counts,
        mut attempt: impl FnMut(&mut dyn Timer) -> Result<T, (Failure, Class)>,
    ) -> Result<T, (Failure, &'static str)> {
        let mut requests = 0u64;
        let outcome = retry::run(
            &self.policy,
            &mut self.rng,
            &mut self.timer,
            |_, timer: &mut dyn Timer| {
                requests += 1;
                attempt(timer)
            },
            |_, _| {},
        );
        counts.requests += requests;
        counts.retries += u64::from(outcome.attempts.saturating_sub(1));
        outcome.result.map_err(|(f, gave_up)| {
            let why = match gave_up {
                retry::GaveUp::NotRetryable => "refused",
                _ => "still failing after retries",
            };
            (f, why)
        })
    }
}

/// The request budget of one vendor account, named `name` (`quickbooks:<realm>`,
/// `plaid:<item digest>`, `stripe:<key digest>`): requests spaced at `rate` (permits,
/// seconds), through the state store's bucket of that name when the pipeline has a store (so
/// every process reading the account shares it), else through this process's own.
pub fn budget(
    name: String,
    (permits, per_seconds): (u64, u64),
    state: Option<&StateTarget>,
) -> Result<Throttle, RunError> {
    let plan = ThrottlePlan { permits, per_seconds, shared: state.map(|_| name), per_key: None };
    Throttle::open(&plan, state)
}

/// Waits on `timer` for a request's turn in `budget`; a shared budget the store cannot serve
/// is a failed attempt, retried like a transport failure.
pub fn wait_turn(budget: &mut Throttle, timer: &mut dyn Timer) -> Result<(), (Failure, Class)> {
    budget.wait_turn(timer).map_err(no_turn)
}

/// A turn a shared budget could not give ([`Throttle::turn`]'s text): a failed attempt,
/// retried like a transport failure.
pub fn no_turn(what: String) -> (Failure, Class) {
    (Failure { status: None, what, unauthorized: false }, Class::Retryable { retry_after: None })
}

/// A credential's stand-in in a budget name: the first 16 hex digits of its SHA-256. It tells
/// accounts apart (the same API key or access token in two pipelines is one account) and
/// reveals nothing of the secret, which is long and random.
pub fn credential_id(secret: &Secret) -> String {
    Sha256::digest(secret.expose()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// An HTTP agent for an API: answers of every status returned (not errors), no redirects
/// (a token is never sent on to another host), `timeout` for the whole exchange.
pub fn agent(timeout: std::time::Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A request that got no answer: retryable, in fixed words (never the URL or a header).
pub fn transport_failure(e: &ureq::Error) -> (Failure, Class) {
    let what = match e {
        ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
        ureq::Error::Timeout(_) => "no answer in time".to_string(),
        _ => "HTTP client error".to_string(),
    };
    (Failure { status: None, what, unauthorized: false }, Class::Retryable { retry_after: None })
}

/// The answer's `Retry-After`, as a wait from now.
pub fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<std::time::Duration> {
    let value = response.headers().get("Retry-After").and_then(|v| v.to_str().ok())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    retry::parse_retry_after(value, now)
}

/// The answer's body as JSON, read up to `limit` bytes (none when it is not JSON).
pub fn json_body(response: &mut ureq::http::Response<ureq::Body>, limit: u64) -> Option<serde_json::Value> {
    response.body_mut().with_config().limit(limit).read_to_vec().ok().and_then(|b| serde_json::from_slice(&b).ok())
}

/// How a failed answer's status is retried: 429 and 5xx after `retry_after` (or the
/// policy's backoff), anything else not.
pub fn status_class(status: u16, retry_after: Option<std::time::Duration>) -> Class {
    match status {
        429 | 500..=599 => Class::Retryable { retry_after },
        _ => Class::Permanent,
    }
}

/// A vendor's error word (a type or a code) kept to the characters such words have, so
/// nothing else a vendor put there reaches a message.
pub fn word(v: Option<&serde_json::Value>) -> Option<String> {
    v.and_then(|v| v.as_str())
        .map(|s| s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect::<String>())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_is_named_by_a_digest_that_tells_accounts_apart() {
        let key = Secret::from_bytes(b"sk_test_51LocalOnlyKey0000000000sRcE".to_vec());
        let id = credential_id(&key);
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(id, credential_id(&Secret::from_bytes(b"sk_test_51LocalOnlyKey0000000000sRcE".to_vec())));
        assert_ne!(id, credential_id(&Secret::from_bytes(b"sk_test_51LocalOnlyKey0000000000sRcF".to_vec())));
    }
}
