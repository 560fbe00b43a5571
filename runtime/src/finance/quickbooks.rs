//! The QuickBooks Online v3 API of one company (realm): one sync of one entity reads every
//! entity changed since the cursor (minus the lookback window), through the query endpoint or
//! the change data capture (CDC) endpoint, and hands on the entities not delivered before.
//!
//! Invariants:
//! - Paging that skips nothing while the company is being worked in: `SELECT * FROM <Entity>
//!   [WHERE MetaData.LastUpdatedTime >= '<since>'] ORDERBY MetaData.LastUpdatedTime
//!   STARTPOSITION n MAXRESULTS m` until a page holds fewer than `m`. An entity saved between
//!   two pages moves to the end of that order and would shift a later one onto a page already
//!   read if pages went by position; so each next page asks from the newest
//!   `LastUpdatedTime` read, at position 1, and drops what it already delivered by
//!   `Id`/`SyncToken` ([`Page`]). Only within one time holding a page or more does it go by
//!   position, with overlapping pages.
//! - CDC (`/cdc?entities=<Entity>&changedSince=<since>`) only with a cursor younger than
//!   QuickBooks' 30-day CDC window; its deleted entities (`status: Deleted`) are handed on as
//!   deletions. CDC answers at most 1000 entities: when it gives that many, the same window is
//!   read again through the query endpoint, so no change is lost.
//! - Incremental: the [`Cursor`] holds the newest `MetaData.LastUpdatedTime` delivered and the
//!   `Id`/`SyncToken` pairs delivered within the lookback window before it; the next sync asks
//!   from `cursor - lookback` and skips the pairs already delivered (an entity saved again has
//!   a new `SyncToken` and is delivered again).
//! - Every request asks `Accept: application/json` and carries `minorversion`; requests are
//!   spaced at QuickBooks' published limit (500 a minute per company) or the source's `rate`,
//!   through one [`RealmLimit`] shared by every source of the run reading that company (and,
//!   through the state store, with every other process reading it), which also keeps at most
//!   10 of the run's requests in flight (QuickBooks' concurrency limit);
//!   429 and 5xx are retried with growing backoff (QuickBooks' `Retry-After` is honoured when
//!   given, not relied on); other 4xx are not; a 401 asks the connection for a new token once.
//! - No token and no Fault message text (it may quote data) in errors or warnings: the Fault's
//!   `type` and error `code` only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sluice_compiler::plan::StateTarget;
use sluice_compiler::quickbooks::QuickBooksPlan;

use crate::error::RunError;
use crate::finance::api::{self, Counts, Failure, Retrying, word};
use crate::findings;
use crate::oauth::Connection;
use crate::retry::{Class, Policy, Timer};
use crate::secrets::Secret;
use crate::throttle::Throttle;

/// How far back QuickBooks' CDC endpoint answers (30 days).
pub const CDC_WINDOW_S: i64 = 30 * 86_400;
/// The most entities one CDC answer holds per entity.
pub const CDC_MAX: usize = 1000;
/// QuickBooks' limit of concurrent requests per company and app.
pub const MAX_IN_FLIGHT: usize = 10;

/// The request budget of one company (realm), shared by the sources of a run that read it:
/// starts spaced at its rate (through the state store's `quickbooks:<realm>` bucket, which
/// every process reading the company shares, when the pipeline has a store), and at most
/// [`MAX_IN_FLIGHT`] of this process's requests at a time.
pub struct RealmLimit {
    origin: Instant,
    budget: Mutex<Throttle>,
    in_flight: Mutex<usize>,
    freed: Condvar,
}

impl RealmLimit {
    /// A budget of `permits` requests per `per_seconds` for company `realm`, in `state`.
    pub fn new(realm: &str, rate: (u64, u64), state: Option<&StateTarget>) -> Result<RealmLimit, RunError> {
        Ok(RealmLimit {
            origin: Instant::now(),
            budget: Mutex::new(api::budget(format!("quickbooks:{realm}"), rate, state)?),
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
        })
    }

    /// Waits for a slot and the request's turn; the slot is held until the guard drops. A
    /// shared budget the store cannot serve is a failed attempt (its slot freed).
    fn acquire(&self, timer: &mut dyn Timer) -> Result<InFlight<'_>, (Failure, Class)> {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= MAX_IN_FLIGHT {
            n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
        drop(n);
        let slot = InFlight(self);
        // The process's own bucket counts from `origin`, one time line for every thread.
        let wait = self.budget.lock().unwrap_or_else(|p| p.into_inner()).turn(self.origin.elapsed());
        let wait = wait.map_err(api::no_turn)?;
        timer.sleep(wait);
        Ok(slot)
    }
}

/// A request in flight; frees its slot when dropped.
struct InFlight<'a>(&'a RealmLimit);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// The `SyncToken` a deletion is remembered with (deletions carry none).
const DELETED: &str = "deleted";

/// Where an incremental sync of one entity stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The newest `MetaData.LastUpdatedTime` delivered (Unix seconds).
    pub last_updated: i64,
    /// `Id` -> (`SyncToken`, `LastUpdatedTime`) of what was delivered within the lookback
    /// window before [`Cursor::last_updated`].
    pub recent: BTreeMap<String, (String, i64)>,
}

/// Where the next query page starts: from a `MetaData.LastUpdatedTime` (keyset) and, only
/// when one time holds more entities than a page, a position among the entities from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Page {
    since: Option<i64>,
    start: u64,
}

impl Page {
    /// The page after a full one of `returned` entities whose newest `LastUpdatedTime` is
    /// `newest_read`. It asks again from that time at position 1: an entity saved meanwhile
    /// moves to the end of the order, which shifts positions but not times, so nothing after
    /// the time is skipped; the entities of that time read again are dropped by their
    /// `Id`/`SyncToken`. When the page did not get past its own starting time (one time holds
    /// a page or more), it goes on by position within that time, overlapping the page before
    /// by a tenth of a page so that entities of that time saved meanwhile (each moves one
    /// later entity back by one) are still read.
    fn next(self, newest_read: Option<i64>, returned: u64, page_size: u64) -> Page {
        match newest_read {
            Some(t) if self.since.is_none_or(|s| t > s) => Page { since: Some(t), start: 1 },
            _ => {
                let overlap = (page_size / 10).max(1).min(page_size.saturating_sub(1));
                Page { since: self.since, start: self.start + returned.saturating_sub(overlap).max(1) }
            }
        }
    }
}

/// One entity read: as QuickBooks sent it, and whether CDC reported it deleted.
#[derive(Debug)]
pub struct Item {
    pub entity: serde_json::Value,
    pub deleted: bool,
}

/// What one sync read.
#[derive(Debug, Default)]
pub struct Synced {
    pub cursor: Cursor,
    /// Entities seen again with the `SyncToken` already delivered, skipped.
    pub skipped: u64,
    pub deleted: u64,
    /// Whether the CDC endpoint was read.
    pub cdc: bool,
    /// RT155 messages (entity, field; never a value).
    pub warnings: Vec<String>,
    pub requests: u64,
    pub retries: u64,
}

/// A QuickBooks Online client for one company and connection.
pub struct QuickBooks<'c> {
    base_url: String,
    realm: String,
    minor_version: u64,
    page_size: u64,
    connection: &'c Connection,
    agent: ureq::Agent,
    limit: Arc<RealmLimit>,
    retrying: Retrying,
}

/// RFC 3339 with offset (`2016-04-13T07:34:55-07:00`) to Unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Unix seconds as QuickBooks' query and CDC take them (`2016-04-13T14:34:55+00:00`).
pub fn format_time(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00+00:00".to_string())
}

fn last_updated(entity: &serde_json::Value) -> Option<i64> {
    entity.pointer("/MetaData/LastUpdatedTime").and_then(|t| t.as_str()).and_then(parse_time)
}

impl<'c> QuickBooks<'c> {
    /// A client of the plan's company for `connection`, within `limit` (the company's budget,
    /// shared with the run's other sources reading it).
    pub fn new(
        plan: &QuickBooksPlan,
        connection: &'c Connection,
        limit: Arc<RealmLimit>,
    ) -> Result<QuickBooks<'c>, RunError> {
        Ok(QuickBooks {
            base_url: plan.base_url.trim_end_matches('/').to_string(),
            realm: plan.realm_id.clone(),
            minor_version: plan.minor_version,
            page_size: plan.page_size.clamp(1, sluice_compiler::quickbooks::MAX_PAGE),
            connection,
            agent: api::agent(Duration::from_secs(120)),
            limit,
            // The throttle resets by the minute: back off from 1 s up to a minute.
            retrying: Retrying::new(Policy {
                max_attempts: 8,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                max_elapsed: Duration::from_secs(600),
            }),
        })
    }

    /// Reads the changes of `entity` since `cursor` (everything without one), going back
    /// `lookback` seconds before it, through CDC when `cdc` and the cursor is within its window
    /// at `now` (Unix seconds). Each page's new items go to `on_page` as soon as it is read
    /// (memory holds one page). The cursor returned covers every page handed on: save it only
    /// once they are durable.
    pub fn sync_pages(
        &mut self,
        entity: &str,
        cursor: Option<&Cursor>,
        lookback: i64,
        cdc: bool,
        now: i64,
        on_page: &mut dyn FnMut(Vec<Item>) -> Result<(), RunError>,
    ) -> Result<Synced, RunError> {
        let since = cursor.map(|c| c.last_updated - lookback.max(0));
        let mut out = Synced { cursor: cursor.cloned().unwrap_or_default(), ..Synced::default() };
        let mut delivered: BTreeMap<String, (String, i64)> = BTreeMap::new();
        // Entities without `Id`, `SyncToken` or a readable time, as handed on in this sync: a
        // page that starts again from the newest time read meets them again.
        let mut unkeyed: BTreeSet<String> = BTreeSet::new();
        let mut query_too = true;
        if let Some(since) = since
            && cdc
            && now - since < CDC_WINDOW_S
        {
            out.cdc = true;
            let url = self.url("cdc", &[("entities", entity.to_string()), ("changedSince", format_time(since))]);
            let answer = self.get(entity, &url, &mut out)?;
            let items = cdc_items(&answer, entity);
            query_too = items.len() >= CDC_MAX;
            let fresh = self.fresh(entity, items, &mut out, &mut delivered, &mut unkeyed);
            on_page(fresh)?;
        }
        if query_too {
            let mut page = Page { since, start: 1 };
            loop {
                let filter = page
                    .since
                    .map_or_else(String::new, |s| format!(" WHERE MetaData.LastUpdatedTime >= '{}'", format_time(s)));
                let query = format!(
                    "SELECT * FROM {entity}{filter} ORDERBY MetaData.LastUpdatedTime STARTPOSITION {} MAXRESULTS {}",
                    page.start, self.page_size
                );
                let url = self.url("query", &[("query", query)]);
                let answer = self.get(entity, &url, &mut out)?;
                let items = query_items(&answer, entity);
                let returned = items.len() as u64;
                let newest_read = items.iter().filter_map(|i| last_updated(&i.entity)).max();
                let fresh = self.fresh(entity, items, &mut out, &mut delivered, &mut unkeyed);
                on_page(fresh)?;
                if returned < self.page_size {
                    break;
                }
                page = page.next(newest_read, returned, self.page_size);
            }
        }
        let newest =
            delivered.values().map(|(_, t)| *t).max().unwrap_or(out.cursor.last_updated).max(out.cursor.last_updated);
        let floor = newest - lookback.max(0);
        let mut recent = std::mem::take(&mut out.cursor.recent);
        recent.extend(delivered);
        recent.retain(|_, (_, t)| *t >= floor);
        out.cursor = Cursor { last_updated: newest, recent };
        Ok(out)
    }

    /// The items of a page not delivered before (by `Id` and `SyncToken`), noting warnings and
    /// what is delivered.
    fn fresh(
        &self,
        entity: &str,
        items: Vec<Item>,
        out: &mut Synced,
        delivered: &mut BTreeMap<String, (String, i64)>,
        unkeyed: &mut BTreeSet<String>,
    ) -> Vec<Item> {
        let mut fresh = Vec::with_capacity(items.len());
        for item in items {
            let e = &item.entity;
            let id = e.get("Id").and_then(|i| i.as_str()).map(str::to_string);
            let token = if item.deleted {
                Some(DELETED.to_string())
            } else {
                e.get("SyncToken").and_then(|t| t.as_str()).map(str::to_string)
            };
            let updated = last_updated(e);
            // Delivered before (an earlier sync, or an earlier page of this one): same version.
            // An entity without the keys is known by its whole text, within this sync only.
            let seen = match (&id, &token, updated) {
                (Some(id), Some(token), Some(_)) => {
                    out.cursor.recent.get(id).is_some_and(|(t, _)| t == token)
                        || delivered.get(id).is_some_and(|(t, _)| t == token)
                }
                (Some(id), Some(token), None) if out.cursor.recent.get(id).is_some_and(|(t, _)| t == token) => true,
                _ => !unkeyed.insert(e.to_string()),
            };
            if seen {
                out.skipped += 1;
                continue;
            }
            if token.is_none() {
                out.warnings.push(format!("a `{entity}` has no `SyncToken`"));
            }
            if updated.is_none() {
                out.warnings.push(format!("a `{entity}` has no readable `MetaData.LastUpdatedTime`"));
            }
            if e.get("TotalAmt").is_some_and(|a| !a.is_number() && !a.is_null()) {
                out.warnings.push(format!("a `{entity}`'s `TotalAmt` is not a number"));
            }
            if item.deleted {
                out.deleted += 1;
            }
            if let (Some(id), Some(token), Some(t)) = (id, token, updated) {
                delivered.insert(id, (token, t));
            }
            fresh.push(item);
        }
        fresh
    }

    fn url(&self, endpoint: &str, params: &[(&str, String)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            query.append_pair(k, v);
        }
        query.append_pair("minorversion", &self.minor_version.to_string());
        format!("{}/v3/company/{}/{endpoint}?{}", self.base_url, self.realm, query.finish())
    }

    /// One GET with the company's throttle, retries and one token renewal on 401.
    fn get(&mut self, entity: &str, url: &str, out: &mut Synced) -> Result<serde_json::Value, RunError> {
        let (agent, limit, connection) = (&self.agent, &self.limit, self.connection);
        let mut counts = Counts::default();
        let answer = self.retrying.request(
            connection,
            &mut counts,
            |token, timer| {
                let _slot = limit.acquire(timer)?;
                attempt(agent, url, token)
            },
            |f, why| {
                RunError::new(
                    findings::QUICKBOOKS_REQUEST_FAILED,
                    format!(
                        "connection `{}`: reading QuickBooks `{entity}` {why}: {}{}",
                        connection.plan().name,
                        f.status_prefix(),
                        f.what
                    ),
                )
                .with_help(match f.status {
                    Some(401) => "the authorization is not accepted even after a refresh: run `sluice connect` for the connection again",
                    Some(403) => "the app or the connected user may not read this company or entity",
                    Some(400) => "QuickBooks refused the request: check `realm_id`, `minorversion` and the entity",
                    Some(429) => "QuickBooks kept throttling the company: lower the source's `rate` or run later",
                    _ => "check Intuit's status page and the connection; records read so far are kept",
                })
            },
        );
        out.requests += counts.requests;
        out.retries += counts.retries;
        answer
    }
}

/// The entities of a query answer: `{"QueryResponse": {"<Entity>": [...], ...}}`.
fn query_items(answer: &serde_json::Value, entity: &str) -> Vec<Item> {
    answer
        .get("QueryResponse")
        .and_then(|q| q.get(entity))
        .and_then(|a| a.as_array())
        .map(|a| a.iter().map(|e| Item { entity: e.clone(), deleted: false }).collect())
        .unwrap_or_default()
}

/// The entities of a CDC answer: `{"CDCResponse": [{"QueryResponse": [{"<Entity>": [...]}]}]}`.
fn cdc_items(answer: &serde_json::Value, entity: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let responses = answer.get("CDCResponse").and_then(|c| c.as_array()).into_iter().flatten();
    for r in responses {
        let queries = r.get("QueryResponse").and_then(|q| q.as_array()).into_iter().flatten();
        for q in queries {
            for e in q.get(entity).and_then(|a| a.as_array()).into_iter().flatten() {
                let deleted = e.get("status").and_then(|s| s.as_str()) == Some("Deleted");
                items.push(Item { entity: e.clone(), deleted });
            }
        }
    }
    items
}

/// A Fault's `type` and first error `code`: fixed words (QuickBooks writes the keys
/// capitalised in some answers and not in others).
fn fault_words(body: Option<&serde_json::Value>) -> String {
    let fault = body.and_then(|b| b.get("Fault").or_else(|| b.get("fault")));
    let kind = word(fault.and_then(|f| f.get("type")));
    let first = fault
        .and_then(|f| f.get("Error").or_else(|| f.get("error")))
        .and_then(|e| e.as_array())
        .and_then(|e| e.first());
    let code = word(first.and_then(|e| e.get("code")));
    match (kind, code) {
        (Some(t), Some(c)) => format!("Fault `{t}` (error {c})"),
        (Some(t), None) => format!("Fault `{t}`"),
        (None, Some(c)) => format!("error {c}"),
        _ => "no QuickBooks Fault".to_string(),
    }
}

fn attempt(agent: &ureq::Agent, url: &str, token: &Secret) -> Result<serde_json::Value, (Failure, Class)> {
    let bearer = format!("Bearer {}", String::from_utf8_lossy(token.expose()));
    let request = agent.get(url).header("Authorization", &bearer).header("Accept", "application/json");
    let mut response = request.call().map_err(|e| api::transport_failure(&e))?;
    let status = response.status().as_u16();
    let retry_after = api::retry_after(&response);
    let body = api::json_body(&mut response, 256 << 20);
    if (200..300).contains(&status) {
        // QuickBooks answers some failures with 200 and a Fault.
        return match body {
            Some(v) if v.get("QueryResponse").is_some() || v.get("CDCResponse").is_some() => Ok(v),
            Some(v) if v.get("Fault").is_some() || v.get("fault").is_some() => Err((
                Failure { status: Some(status), what: fault_words(Some(&v)), unauthorized: false },
                Class::Permanent,
            )),
            _ => Err((
                Failure {
                    status: Some(status),
                    what: "the answer is not a QuickBooks query or CDC response".to_string(),
                    unauthorized: false,
                },
                Class::Retryable { retry_after: None },
            )),
        };
    }
    let failure = Failure { status: Some(status), what: fault_words(body.as_ref()), unauthorized: status == 401 };
    Err((failure, api::status_class(status, retry_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A timer that records the waits asked of it and does not sleep.
    #[derive(Default)]
    struct Waits(Vec<Duration>);

    impl Timer for Waits {
        fn now(&self) -> Duration {
            Duration::ZERO
        }
        fn sleep(&mut self, d: Duration) {
            self.0.push(d);
        }
    }

    #[test]
    fn a_company_has_one_budget_in_the_state_store_whoever_reads_it() {
        let dir = crate::state::temp_dir("qbo-budget");
        let target = crate::state::sqlite_target(&dir.join("state.db"));
        // Two limits of one company stand for two processes; one request per 10 s.
        let rate = (1, 10);
        let (a, b) = (
            RealmLimit::new("123", rate, Some(&target)).unwrap(),
            RealmLimit::new("123", rate, Some(&target)).unwrap(),
        );
        let mut waits = Waits::default();
        drop(a.acquire(&mut waits).unwrap());
        drop(b.acquire(&mut waits).unwrap());
        drop(a.acquire(&mut waits).unwrap());
        assert_eq!(waits.0[0], Duration::ZERO);
        let ten = Duration::from_secs(10);
        assert!(waits.0[1] > ten - Duration::from_secs(1) && waits.0[1] <= ten, "{:?}", waits.0);
        assert!(waits.0[2] > 2 * ten - Duration::from_secs(1) && waits.0[2] <= 2 * ten, "{:?}", waits.0);
        // Another company has its own budget.
        let mut other = Waits::default();
        drop(RealmLimit::new("456", rate, Some(&target)).unwrap().acquire(&mut other).unwrap());
        assert_eq!(other.0, vec![Duration::ZERO]);
        // Without a store, each limit is its process's own.
        let (c, d) = (RealmLimit::new("123", rate, None).unwrap(), RealmLimit::new("123", rate, None).unwrap());
        let mut own = Waits::default();
        drop(c.acquire(&mut own).unwrap());
        drop(d.acquire(&mut own).unwrap());
        assert_eq!(own.0, vec![Duration::ZERO, Duration::ZERO]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn times_read_with_their_offset_and_are_written_in_utc() {
        assert_eq!(parse_time("2016-04-13T07:34:55-07:00"), Some(1_460_558_095));
        assert_eq!(format_time(1_460_558_095), "2016-04-13T14:34:55+00:00");
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn faults_say_their_type_and_code_only() {
        let body = serde_json::json!({"Fault": {"Error": [{"Message": "message=ThrottleExceeded", "Detail": "Customer Jo Bloggs", "code": "3001"}], "type": "SERVICE"}});
        let w = fault_words(Some(&body));
        assert_eq!(w, "Fault `SERVICE` (error 3001)");
        let lower = serde_json::json!({"fault": {"error": [{"code": "3200"}], "type": "AUTHENTICATION"}});
        assert_eq!(fault_words(Some(&lower)), "Fault `AUTHENTICATION` (error 3200)");
    }

    #[test]
    fn pages_go_on_from_the_newest_time_read_and_by_position_only_within_one_time() {
        let first = Page { since: None, start: 1 };
        assert_eq!(first.next(Some(100), 10, 10), Page { since: Some(100), start: 1 });
        let keyset = Page { since: Some(100), start: 1 };
        assert_eq!(keyset.next(Some(160), 10, 10), Page { since: Some(160), start: 1 });
        // A page that did not get past its own time: by position, overlapping by a tenth.
        assert_eq!(keyset.next(Some(100), 10, 10), Page { since: Some(100), start: 10 });
        assert_eq!(Page { since: Some(100), start: 10 }.next(Some(100), 10, 10), Page { since: Some(100), start: 19 });
        assert_eq!(keyset.next(Some(100), 1000, 1000), Page { since: Some(100), start: 901 });
        // Pages of one still move on; times unreadable: by position.
        assert_eq!(keyset.next(Some(100), 1, 1), Page { since: Some(100), start: 2 });
        assert_eq!(first.next(None, 5, 5), Page { since: None, start: 5 });
    }

    #[test]
    fn cdc_answers_mark_deletions() {
        let answer = serde_json::json!({"CDCResponse": [{"QueryResponse": [
            {"Purchase": [{"Id": "39", "status": "Deleted", "domain": "QBO"}, {"Id": "40", "SyncToken": "1"}]},
            {"Deposit": [{"Id": "1"}]}
        ]}]});
        let items = cdc_items(&answer, "Purchase");
        assert_eq!(items.len(), 2);
        assert!(items[0].deleted && !items[1].deleted);
    }
}
