//! The Stripe API's list endpoints (`balance_transactions`, `charges`, `refunds`, `payouts`,
//! `disputes`, `events`): one sync of one object type reads every page newer than the cursor
//! (minus the lookback window) and returns the objects not delivered before, and the next
//! cursor.
//!
//! Invariants:
//! - Pagination as Stripe documents it: `limit=100`, `starting_after=<last id of the page>`
//!   while `has_more`; objects come newest first.
//! - Incremental: the [`Cursor`] holds the newest `created` delivered and the ids delivered
//!   within the lookback window before it; the next sync asks `created[gte]=cursor - lookback`
//!   (objects that show up late in the list are caught) and skips those ids (nothing is
//!   delivered twice).
//! - Requests are spaced by a token bucket at Stripe's published rate (100 reads/s in live
//!   mode, 25/s in test mode), one per account shared by every source and process using the
//!   same key (or OAuth connection) through the state store ([`api::budget`]); 429 and 5xx are retried with backoff after `Retry-After`,
//!   unless `Stripe-Should-Retry: false`; other 4xx are not; a 401 asks the connection for a
//!   new token once (OAuth) or fails (API key, RT038).
//! - Amounts stay as Stripe sends them: integers in minor units. Objects with missing `id`,
//!   `created` or a non-integer `amount` are kept, with a warning (RT151).
//! - No key, token or Stripe error message (it may quote the key) in errors or warnings.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_compiler::plan::StateTarget;

use crate::error::RunError;
use crate::finance::api::{self, Counts, Failure, Retrying};
use crate::findings;
use crate::oauth::Connection;
use crate::retry::{Class, Policy};
use crate::secrets::Secret;
use crate::throttle::Throttle;

/// The object types a Stripe sync reads, with their list paths.
pub const OBJECTS: &[(&str, &str)] = &[
    ("balance_transactions", "/v1/balance_transactions"),
    ("charges", "/v1/charges"),
    ("refunds", "/v1/refunds"),
    ("payouts", "/v1/payouts"),
    ("disputes", "/v1/disputes"),
    ("events", "/v1/events"),
];

/// Stripe's production API.
pub const API: &str = "https://api.stripe.com";
const PAGE: u32 = 100;

/// Where an incremental sync of one object type stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The newest `created` delivered (Unix seconds).
    pub created: i64,
    /// Ids delivered with `created` within the lookback window before [`Cursor::created`],
    /// with their `created`.
    pub recent: BTreeMap<String, i64>,
}

/// What one sync read.
#[derive(Debug, Default)]
pub struct Synced {
    /// Objects not delivered before, newest first, as Stripe sent them.
    pub objects: Vec<serde_json::Value>,
    pub cursor: Cursor,
    /// Objects seen again within the lookback window (already delivered) and skipped.
    pub skipped: u64,
    /// RT151 messages (object type, field; never a value).
    pub warnings: Vec<String>,
    pub requests: u64,
    pub retries: u64,
}

/// A Stripe API client for one connection.
pub struct Stripe<'c> {
    base_url: String,
    connection: &'c Connection,
    agent: ureq::Agent,
    /// The account's request budget (shared through the state store when there is one).
    budget: Throttle,
    retrying: Retrying,
}

/// The published rate for a key: live keys 100 reads/s, test keys (and OAuth tokens, whose
/// mode is unknown until asked) 25/s.
pub fn default_rate(key: &Secret) -> (u64, u64) {
    let k = key.expose();
    if k.starts_with(b"sk_live_") || k.starts_with(b"rk_live_") { (100, 1) } else { (25, 1) }
}

impl<'c> Stripe<'c> {
    /// A client of `base_url` (normally [`API`]) for `connection`, at `rate` (permits, seconds;
    /// `None`: Stripe's published rate for the key), drawing on the account's budget in `state`
    /// (shared with every process using the same key; `None`: this client's own).
    pub fn new(
        base_url: &str,
        connection: &'c Connection,
        rate: Option<(u64, u64)>,
        state: Option<&StateTarget>,
    ) -> Result<Stripe<'c>, RunError> {
        let plan = connection.plan();
        // An API key names its account; an OAuth token changes at each refresh, so the
        // connection's name stands in (connections of that name in other pipelines share it:
        // slower if they are other accounts, never over a limit).
        let (key, budget_name) = if plan.auth == "api_key" {
            let key = connection.bearer()?;
            let name = format!("stripe:{}", api::credential_id(&key));
            (Some(key), name)
        } else {
            (None, format!("stripe:connection:{}", plan.name))
        };
        let rate = match (rate, key) {
            (Some(r), _) => r,
            (None, Some(key)) => default_rate(&key),
            (None, None) => default_rate(&connection.bearer()?),
        };
        Ok(Stripe {
            base_url: base_url.trim_end_matches('/').to_string(),
            connection,
            agent: api::agent(Duration::from_secs(60)),
            retrying: Retrying::new(Policy {
                max_attempts: 6,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(30),
                max_elapsed: Duration::from_secs(300),
            }),
            budget: api::budget(budget_name, rate, state)?,
        })
    }

    /// Reads the objects of `object` newer than `cursor` (all of them without one), going back
    /// `lookback` seconds before it.
    pub fn sync(&mut self, object: &str, cursor: Option<&Cursor>, lookback: i64) -> Result<Synced, RunError> {
        let mut objects = Vec::new();
        let mut synced = self.sync_pages(object, cursor, lookback, &mut |page| {
            objects.extend(page);
            Ok(())
        })?;
        synced.objects = objects;
        Ok(synced)
    }

    /// Like [`Stripe::sync`], handing each page's new objects to `on_page` as soon as the page
    /// is read (memory holds one page); the returned [`Synced::objects`] is empty. The cursor
    /// returned covers every page handed on: save it only once they are durable.
    pub fn sync_pages(
        &mut self,
        object: &str,
        cursor: Option<&Cursor>,
        lookback: i64,
        on_page: &mut dyn FnMut(Vec<serde_json::Value>) -> Result<(), RunError>,
    ) -> Result<Synced, RunError> {
        let Some((_, path)) = OBJECTS.iter().find(|(o, _)| *o == object) else {
            return Err(RunError::new(findings::PLAN_INVALID, format!("Stripe has no object list `{object}` here")));
        };
        let since = cursor.map(|c| c.created - lookback.max(0));
        let mut out = Synced { cursor: cursor.cloned().unwrap_or_default(), ..Synced::default() };
        let mut delivered: Vec<(i64, String)> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", &PAGE.to_string());
            if let Some(since) = since {
                query.append_pair("created[gte]", &since.to_string());
            }
            if let Some(after) = &after {
                query.append_pair("starting_after", after);
            }
            let url = format!("{}{path}?{}", self.base_url, query.finish());
            let page = self.get(object, &url, &mut out)?;
            let data = page.get("data").and_then(|d| d.as_array()).cloned().unwrap_or_default();
            let has_more = page.get("has_more").and_then(serde_json::Value::as_bool).unwrap_or(false);
            after = data.last().and_then(|o| o.get("id")).and_then(|i| i.as_str()).map(str::to_string);
            let mut fresh = Vec::with_capacity(data.len());
            for obj in data {
                let id = obj.get("id").and_then(|i| i.as_str()).map(str::to_string);
                let created = obj.get("created").and_then(serde_json::Value::as_i64);
                if id.is_none() {
                    out.warnings.push(format!("a `{object}` object has no `id`"));
                }
                if created.is_none() {
                    out.warnings.push(format!("a `{object}` object has no `created`"));
                }
                if obj.get("amount").is_some_and(|a| !a.is_i64() && !a.is_null()) {
                    out.warnings.push(format!("a `{object}` object's `amount` is not a whole number of minor units"));
                }
                if let Some(id) = &id
                    && out.cursor.recent.contains_key(id)
                {
                    out.skipped += 1;
                    continue;
                }
                if let (Some(id), Some(created)) = (id, created) {
                    delivered.push((created, id));
                }
                fresh.push(obj);
            }
            on_page(fresh)?;
            if !has_more || after.is_none() {
                break;
            }
        }
        let newest = delivered.iter().map(|(c, _)| *c).max().unwrap_or(out.cursor.created).max(out.cursor.created);
        let floor = newest - lookback.max(0);
        let mut recent = std::mem::take(&mut out.cursor.recent);
        recent.extend(delivered.into_iter().map(|(c, id)| (id, c)));
        recent.retain(|_, c| *c >= floor);
        out.cursor = Cursor { created: newest, recent };
        Ok(out)
    }

    /// One GET with the throttle, retries and one token renewal on 401.
    fn get(&mut self, object: &str, url: &str, out: &mut Synced) -> Result<serde_json::Value, RunError> {
        let (agent, budget, connection) = (&self.agent, &mut self.budget, self.connection);
        let mut counts = Counts::default();
        let answer = self.retrying.request(
            connection,
            &mut counts,
            |token, timer| {
                api::wait_turn(budget, timer)?;
                attempt(agent, url, token)
            },
            |f, why| {
                RunError::new(
                    findings::STRIPE_REQUEST_FAILED,
                    format!(
                        "connection `{}`: listing Stripe `{object}` {why}: {}{}",
                        connection.plan().name,
                        f.status_prefix(),
                        f.what
                    ),
                )
                .with_help(match f.status {
                    Some(401) => "the API key or token is not accepted: check the connection's secret",
                    Some(403) => "the key lacks the permission to read this object type (restricted key?)",
                    Some(429) => "Stripe kept rate-limiting: lower the source's rate or run later",
                    _ => "check Stripe's status page and the connection; records read so far are kept",
                })
            },
        );
        out.requests += counts.requests;
        out.retries += counts.retries;
        answer
    }
}

fn attempt(agent: &ureq::Agent, url: &str, token: &Secret) -> Result<serde_json::Value, (Failure, Class)> {
    let bearer = format!("Bearer {}", String::from_utf8_lossy(token.expose()));
    let mut response =
        agent.get(url).header("Authorization", &bearer).call().map_err(|e| api::transport_failure(&e))?;
    let status = response.status().as_u16();
    let retry_after = api::retry_after(&response);
    let should_retry = response.headers().get("Stripe-Should-Retry").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = api::json_body(&mut response, 64 << 20);
    if (200..300).contains(&status) {
        return match body {
            Some(v) if v.get("data").is_some_and(serde_json::Value::is_array) => Ok(v),
            _ => Err((
                Failure {
                    status: Some(status),
                    what: "the answer is not a Stripe list".to_string(),
                    unauthorized: false,
                },
                Class::Retryable { retry_after: None },
            )),
        };
    }
    // Stripe's error `type` and `code` are fixed words; its `message` may quote the key.
    let error = body.as_ref().and_then(|b| b.get("error"));
    let word = |k: &str| api::word(error.and_then(|e| e.get(k)));
    let what = match (word("type"), word("code")) {
        (Some(t), Some(c)) => format!("`{t}` (`{c}`)"),
        (Some(t), None) => format!("`{t}`"),
        _ => "no Stripe error object".to_string(),
    };
    let failure = Failure { status: Some(status), what, unauthorized: status == 401 };
    let class = match (status, should_retry.as_deref()) {
        (_, Some("false")) => Class::Permanent,
        (429, _) | (500..=599, _) | (_, Some("true")) => Class::Retryable { retry_after },
        _ => Class::Permanent,
    };
    Err((failure, class))
}
