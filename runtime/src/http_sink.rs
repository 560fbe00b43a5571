//! `http` sinks: the records a batch sends to a sink, POSTed as JSON Lines
//! (`Content-Type: application/x-ndjson`), one request per batch (or per `max_records`), with
//! retries ([`crate::retry`]) and a throttle ([`crate::throttle`]).
//!
//! Each request carries `Idempotency-Key: <run_id>-<first seq>-<last seq>` (the records' `seq`
//! in the run), the same for a request sent again by a retry or by a resumed run, so an
//! endpoint can drop duplicates.
//!
//! Invariants:
//! - Nothing is lost: a request that fails for good (retries exhausted, or a failure not worth
//!   retrying) is reported with its records ([`Refused`]); the writer sends them to the DLQ
//!   and counts them as `dlq`, not delivered.
//! - At least once, not exactly once: requests run in the writer thread, before the batch's
//!   checkpoint, so a checkpoint never covers a record that was not acknowledged (2xx); a run
//!   killed between a request and the next checkpoint sends those records again on resume.
//! - No secret and no data in messages: header values (secret references resolved once, at
//!   open) are never printed; a failure is described by status line or transport error and
//!   the URL without its query, never by a response body (an endpoint may echo the records).
//! - Requests of one sink leave in record order, one at a time.

use std::sync::Arc;
use std::time::Duration;

use sluice_compiler::plan::{HttpSinkPlan, StateTarget};

use crate::dlq::Rejection;
use crate::error::RunError;
use crate::findings;
use crate::retry::{self, Class, GaveUp, Policy, RealTimer, Rng, Timer};
use crate::secrets::{self, Secret};
use crate::sinks::{Refusals, SinkSet, refuse};
use crate::throttle::Throttle;

/// One `http` sink, ready to send.
pub struct HttpSink {
    name: Arc<str>,
    url: String,
    /// The URL as messages show it: without query or fragment (they may hold tokens).
    shown_url: String,
    headers: Vec<(String, Secret)>,
    agent: ureq::Agent,
    policy: Policy,
    /// The throttle of an unkeyed sink.
    bucket: Option<Throttle>,
    /// A keyed throttle (`per`): a bucket per value of a field of the records.
    keyed: Option<Keyed>,
    max_records: usize,
    rng: Rng,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Attempts after the first, over every request.
    pub retries: u64,
}

/// `throttle: {per: FIELD}`: one bucket per value of FIELD, opened when a value first comes.
struct Keyed {
    /// The field's JSON pointer in a sink line (`/metadata/facility`).
    pointer: String,
    plan: sluice_compiler::plan::ThrottlePlan,
    state: Option<StateTarget>,
    buckets: std::collections::HashMap<String, Throttle>,
}

impl Keyed {
    /// The bucket for `key`: a shared throttle's is named `<shared>/<key>` in the store.
    fn bucket(&mut self, key: &str) -> Result<&mut Throttle, RunError> {
        if !self.buckets.contains_key(key) {
            let mut plan = self.plan.clone();
            plan.shared = plan.shared.map(|name| format!("{name}/{key}"));
            let throttle = Throttle::open(&plan, self.state.as_ref())?;
            self.buckets.insert(key.to_string(), throttle);
        }
        Ok(self.buckets.get_mut(key).expect("inserted above"))
    }
}

/// The value of a field in a sink line, as the key of its bucket (`""` when it is missing).
fn key_of(line: &str, pointer: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line).ok().as_ref().and_then(|v| v.pointer(pointer)) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// A failed attempt, described without data; `data` when the endpoint refused the content.
#[derive(Debug)]
struct Failure {
    text: String,
    data: bool,
}

impl HttpSink {
    /// Builds the client and resolves the header secrets (a missing one stops the run before
    /// anything is written: RT002).
    /// `state`: the pipeline's state store, where a shared throttle's bucket lives.
    pub fn open(name: &Arc<str>, plan: &HttpSinkPlan, state: Option<&StateTarget>) -> Result<HttpSink, RunError> {
        let mut headers = Vec::new();
        for (header, reference) in &plan.headers {
            let value = secrets::resolve(reference, &format!("header `{header}` of sink `{name}`"))?;
            let valid = ureq::http::HeaderName::from_bytes(header.as_bytes()).is_ok()
                && ureq::http::HeaderValue::from_bytes(value.expose()).is_ok();
            if !valid {
                return Err(RunError::new(
                    findings::HTTP_HEADER_INVALID,
                    format!("header `{header}` of sink `{name}` ({reference}) is not a valid HTTP header"),
                )
                .with_help("a header value is one line of visible text: remove line breaks and control characters from the secret"));
            }
            headers.push((header.clone(), value));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(plan.timeout_ms.max(1))))
            // Statuses are classed here, not turned into errors; a redirect of a POST is an
            // endpoint to fix, not to follow.
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(HttpSink {
            name: Arc::clone(name),
            shown_url: shown_url(&plan.url),
            url: plan.url.clone(),
            headers,
            agent,
            policy: Policy::from_plan(&plan.retry),
            bucket: plan
                .throttle
                .as_ref()
                .filter(|t| t.per_key.is_none())
                .map(|t| Throttle::open(t, state))
                .transpose()?,
            keyed: plan.throttle.as_ref().and_then(|t| {
                let field = t.per_key.as_ref()?;
                let pointer =
                    field.split('.').map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1"))).collect();
                Some(Keyed { pointer, plan: t.clone(), state: state.cloned(), buckets: Default::default() })
            }),
            max_records: plan.max_records.map_or(usize::MAX, |n| n.clamp(1, usize::MAX as u64) as usize),
            rng: Rng::from_time(),
            requests: 0,
            retries: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `lines` (each a record's `seq` and line, in record order) in requests of at most
    /// `max_records`. Returns the requests that failed for good: the positions in `lines` of
    /// their records, and why.
    ///
    /// With a keyed throttle, the lines are grouped by their key (in the order keys first
    /// come; record order within a key) and each request holds one key's records and takes a
    /// token from that key's bucket.
    pub fn send(&mut self, run_id: &str, lines: &[(u64, &str)], timer: &mut dyn Timer) -> Vec<Refused> {
        let groups: Vec<(Option<String>, Vec<usize>)> = match &self.keyed {
            None => vec![(None, (0..lines.len()).collect())],
            Some(k) => {
                let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
                for (i, (_, line)) in lines.iter().enumerate() {
                    let key = key_of(line, &k.pointer);
                    match groups.iter_mut().find(|(g, _)| g.as_deref() == Some(key.as_str())) {
                        Some((_, positions)) => positions.push(i),
                        None => groups.push((Some(key), vec![i])),
                    }
                }
                groups
            }
        };
        let mut refused = Vec::new();
        for (key, positions) in groups {
            for chunk in positions.chunks(self.max_records) {
                let (first, last) = (lines[chunk[0]].0, lines[chunk[chunk.len() - 1]].0);
                let mut body = Vec::with_capacity(chunk.iter().map(|&p| lines[p].1.len() + 1).sum());
                for &p in chunk {
                    body.extend_from_slice(lines[p].1.as_bytes());
                    body.push(b'\n');
                }
                let idempotency = format!("{run_id}-{first}-{last}");
                if let Err(why) = self.post_throttled(key.as_deref(), &body, &idempotency, first, last, timer) {
                    refused.push(Refused { positions: chunk.to_vec(), why });
                }
            }
        }
        refused
    }

    /// One request with the bucket of `key` (or the sink's own), retried as the policy says.
    fn post_throttled(
        &mut self,
        key: Option<&str>,
        body: &[u8],
        idempotency: &str,
        first: u64,
        last: u64,
        timer: &mut dyn Timer,
    ) -> Result<(), Rejection> {
        // The bucket is taken out for the request and put back after (it is borrowed with the
        // rest of the sink during the request).
        let mut bucket = match (key, self.keyed.as_mut()) {
            (Some(k), Some(keyed)) => match keyed.bucket(k) {
                Ok(_) => keyed.buckets.remove(k),
                Err(e) => {
                    let reason = format!("sink `{}`: throttle: {}", self.name, e.message);
                    return Err(Rejection::single(e.code, None, reason));
                }
            },
            _ => self.bucket.take(),
        };
        let result = self.post(body, idempotency, first, last, timer, bucket.as_mut());
        match (key, self.keyed.as_mut(), bucket) {
            (Some(k), Some(keyed), Some(b)) => {
                keyed.buckets.insert(k.to_string(), b);
            }
            (_, _, b) => self.bucket = b,
        }
        result
    }

    /// One request, retried as the policy says, each attempt taking a token from `bucket`.
    fn post(
        &mut self,
        body: &[u8],
        key: &str,
        first: u64,
        last: u64,
        timer: &mut dyn Timer,
        mut bucket: Option<&mut Throttle>,
    ) -> Result<(), Rejection> {
        let HttpSink { name, agent, url, headers, policy, rng, requests, retries, .. } = self;
        let outcome = retry::run(
            policy,
            rng,
            timer,
            |_, timer| {
                // Never send unthrottled: the attempt fails, and is retried.
                if let Some(Err(text)) = bucket.as_mut().map(|b| b.wait_turn(timer)) {
                    return Err((Failure { text, data: false }, Class::Retryable { retry_after: None }));
                }
                *requests += 1;
                let mut req = agent
                    .post(url.as_str())
                    .header("Content-Type", "application/x-ndjson")
                    .header("Idempotency-Key", key);
                for (name, value) in headers.iter() {
                    req = req.header(name.as_str(), value.expose());
                }
                match req.send(body) {
                    Ok(mut resp) => {
                        let status = resp.status();
                        // Read (and drop) the answer, so the connection can serve the next request.
                        let _ = resp.body_mut().with_config().limit(1 << 20).read_to_vec();
                        if status.is_success() {
                            return Ok(());
                        }
                        let retry_after = resp
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| retry::parse_retry_after(v, unix_now()));
                        let text = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
                        let class = classify_status(status.as_u16(), retry_after);
                        Err((Failure { text: text.trim_end().to_string(), data: class == Class::Data }, class))
                    }
                    Err(e) => Err((Failure { text: describe(&e), data: false }, classify_error(&e))),
                }
            },
            |failure, wait| {
                *retries += 1;
                tracing::warn!(
                    component = %name,
                    status = %failure.text,
                    wait_ms = wait.as_millis() as u64,
                    "request failed; retrying"
                );
            },
        );
        let attempts = outcome.attempts;
        let Err((Failure { text: what, data }, gave_up)) = outcome.result else { return Ok(()) };
        let records = if first == last { format!("record {first}") } else { format!("records {first}-{last}") };
        let (code, how) = match gave_up {
            GaveUp::Attempts => {
                (findings::HTTP_RETRIES_EXHAUSTED, format!("failed {attempts} times (`max_attempts`), last: {what}"))
            }
            GaveUp::Elapsed => (
                findings::HTTP_RETRIES_EXHAUSTED,
                format!(
                    "failed {attempts} time(s), last: {what}; the next retry would end after `max_elapsed` ({} s)",
                    policy.max_elapsed.as_secs()
                ),
            ),
            GaveUp::NotRetryable if data => {
                (findings::HTTP_DATA_REFUSED, format!("the endpoint refused the records: {what} (not retried)"))
            }
            GaveUp::NotRetryable => (findings::HTTP_REFUSED, format!("{what} (not retried)")),
        };
        let reason = format!("sink `{}`: POST of {records} to {} {how}", self.name, self.shown_url);
        Err(Rejection { attempts, ..Rejection::single(code, None, reason) })
    }
}

/// A request that failed for good.
#[derive(Debug)]
pub struct Refused {
    /// Positions of its records in the lines given to [`HttpSink::send`].
    pub positions: Vec<usize>,
    pub why: Rejection,
}

/// Statuses that say the content itself was refused.
const DATA_STATUSES: &[u16] = &[400, 409, 413, 415, 422];

/// How a status other than 2xx is treated.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Class {
    match status {
        408 | 429 | 500..=599 => Class::Retryable { retry_after },
        s if DATA_STATUSES.contains(&s) => Class::Data,
        _ => Class::Permanent,
    }
}

/// How a transport error is treated: what the network did is worth another try; what the
/// settings cause (TLS, URL, protocol limits) is not.
pub(crate) fn classify_error(e: &ureq::Error) -> Class {
    use ureq::Error as E;
    match e {
        E::Timeout(_) | E::Io(_) | E::ConnectionFailed | E::HostNotFound | E::Protocol(_) | E::BodyStalled => {
            Class::Retryable { retry_after: None }
        }
        _ => Class::Permanent,
    }
}

/// A transport error in words, without data (ureq's own texts name kinds, not payloads).
pub(crate) fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
        ureq::Error::Timeout(_) => "no answer within `timeout`".to_string(),
        // These carry a URL (with its query, which may hold a token) or a proxy address with
        // its credentials: say what failed without them.
        ureq::Error::BadUri(_) => "the URL is not valid".to_string(),
        ureq::Error::RequireHttpsOnly(_) => "the URL is not https".to_string(),
        ureq::Error::ConnectProxyFailed(_) | ureq::Error::InvalidProxyUrl => "the proxy failed".to_string(),
        ureq::Error::Other(_) => "HTTP client error".to_string(),
        other => other.to_string(),
    }
}

/// The URL as messages show it: scheme, host, port and path; no query, fragment or
/// `user:password@` (the compiler refuses the latter; this is the second line of defence).
fn shown_url(url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or_default();
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_string(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Every `http` sink of a run, by component index, and the clock their waits use.
#[derive(Default)]
pub struct HttpSinks {
    sinks: SinkSet<HttpSink>,
    timer: RealTimer,
}

impl HttpSinks {
    pub fn add(&mut self, component: usize, slot: usize, sink: HttpSink) {
        self.sinks.add(component, slot, sink);
    }

    /// The `per_sink` slot of component `component`, when it is an `http` sink.
    pub fn slot(&self, component: usize) -> Option<usize> {
        self.sinks.slot(component)
    }

    /// Sends one batch: `lines` are each record's sink lines (component, line), in record
    /// order, with the record's `seq`. Returns, per record, the `http` sinks that refused it
    /// (component, why).
    pub fn send_batch<'l>(
        &mut self,
        run_id: &str,
        records: impl Iterator<Item = (u64, &'l [(usize, String)])> + Clone,
    ) -> Refusals {
        let mut refused = Refusals::new();
        let HttpSinks { sinks, timer } = self;
        for (component, sink) in sinks.iter_mut() {
            // (record position, seq, line) of this sink's lines.
            let mut mine = Vec::new();
            for (pos, (seq, lines)) in records.clone().enumerate() {
                for (c, line) in lines {
                    if *c == component {
                        mine.push((pos, seq, line.as_str()));
                    }
                }
            }
            if mine.is_empty() {
                continue;
            }
            let lines: Vec<(u64, &str)> = mine.iter().map(|(_, seq, line)| (*seq, *line)).collect();
            for r in sink.send(run_id, &lines, timer) {
                for &(pos, _, _) in r.positions.iter().map(|&p| &mine[p]) {
                    refuse(&mut refused, pos, component, || r.why.clone());
                }
            }
        }
        refused
    }

    /// Retries so far, per `http` sink (in plan order).
    pub fn retries(&self) -> Vec<(String, u64)> {
        self.sinks.iter().map(|s| (s.name().to_string(), s.retries)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_are_described_without_urls_or_proxy_credentials() {
        for e in [
            ureq::Error::BadUri("https://h/x?token=s3cret".into()),
            ureq::Error::RequireHttpsOnly("http://h/x?token=s3cret".into()),
            ureq::Error::ConnectProxyFailed("user:s3cret@proxy".into()),
        ] {
            assert!(!describe(&e).contains("s3cret"), "{}", describe(&e));
        }
    }

    #[test]
    fn urls_are_shown_without_query_or_credentials() {
        assert_eq!(shown_url("https://u:p@h.example:8443/v1/e?key=k#f"), "https://h.example:8443/v1/e");
        assert_eq!(shown_url("http://127.0.0.1:9/ingest?tenant=t1"), "http://127.0.0.1:9/ingest");
        assert_eq!(shown_url("https://h.example"), "https://h.example");
    }

    #[test]
    fn a_keyed_throttle_keeps_a_bucket_per_value_and_reads_keys_from_lines() {
        let plan = sluice_compiler::plan::ThrottlePlan {
            permits: 20,
            per_seconds: 1,
            shared: None,
            per_key: Some("metadata.message_type".into()),
        };
        let mut keyed =
            Keyed { pointer: "/metadata/message_type".into(), plan, state: None, buckets: Default::default() };
        let now = Duration::ZERO;
        assert_eq!(keyed.bucket("ADT^A01").unwrap().take(now).unwrap(), Duration::ZERO);
        assert_eq!(keyed.bucket("ADT^A01").unwrap().take(now).unwrap(), Duration::from_millis(50), "same key: waits");
        assert_eq!(keyed.bucket("ORU^R01").unwrap().take(now).unwrap(), Duration::ZERO, "another key: its own bucket");
        assert_eq!(keyed.buckets.len(), 2);
        let line = r#"{"metadata":{"message_type":"ADT^A01","n":7},"x":null}"#;
        assert_eq!(key_of(line, "/metadata/message_type"), "ADT^A01");
        assert_eq!(key_of(line, "/metadata/n"), "7");
        assert_eq!(key_of(line, "/x"), "");
        assert_eq!(key_of(line, "/missing"), "");
        assert_eq!(key_of("not json", "/a"), "");
    }

    #[test]
    fn statuses_are_classed() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(matches!(classify_status(s, None), Class::Retryable { .. }), "{s}");
        }
        for s in [400, 409, 413, 415, 422] {
            assert_eq!(classify_status(s, None), Class::Data, "{s}");
        }
        for s in [301, 302, 401, 403, 404, 405, 410] {
            assert_eq!(classify_status(s, None), Class::Permanent, "{s}");
        }
        let after = Some(Duration::from_secs(1));
        assert_eq!(classify_status(429, after), Class::Retryable { retry_after: after });
    }
}
