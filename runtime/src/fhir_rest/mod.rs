//! The `fhir.rest` source: incremental sync of clinical tables from a FHIR R4 server.
//!
//! ```text
//! sync thread (per source), table by table:
//!   GET [base]/[Type]?_count=N&_lastUpdated=gt{cursor - overlap} ─▶ page ─▶ link[next] ─▶ ...
//!      each new resource ─RawInput (completion)─▶ executor (FHIR source step, stages, sinks)
//!   once every record of the table is durable (completions): save the table's cursor
//! ```
//!
//! Invariants:
//! - Nothing lost: a table's cursor ([`cursor`]) is saved in the state store only after every
//!   record its sync handed on is durable in the sinks or the DLQ (each record's completion),
//!   and never passes the server's time when the sync began, so what changes during a sync is
//!   asked for again next time. A run that stops early (an error, `kill -9`) leaves the cursor
//!   where it was: the next run asks again, and an idempotent sink (a `postgres` upsert by id)
//!   ends up with each resource once.
//! - Nothing twice within the overlap: each sync asks from `cursor - overlap` (resources
//!   committed late with an earlier `lastUpdated` are still found) and skips what it already
//!   delivered, by resource type, id and `versionId` (hashes kept with the cursor); ties on
//!   one timestamp are all within the window, so none is lost.
//! - Paging: `Bundle.link[next]` is followed (only to the origin of `base_url`, so
//!   credentials never go elsewhere). A server that gives no next link ends the table with
//!   its page, unless that first page is full or short of its `Bundle.total`: then the search
//!   is made again with a `_count` four times larger (what was handed on is skipped), up to
//!   [`MAX_PAGE_SIZE`], past which the table fails (RT119, cursor kept). No `_sort` is asked
//!   for: many servers refuse it.
//! - Faults: 5xx, 408, 429 (after its `Retry-After`), timeouts and dropped connections are
//!   retried with backoff ([`crate::retry`]); every attempt takes a token of the source's
//!   throttle ([`crate::throttle`]). 401/403 stop the run (RT118); anything else that is not
//!   a searchset stops it too (RT119), records already handed on still become durable.
//! - OAuth2 (`auth: {type: oauth2, connection}`): each page asks the connection for its
//!   access token ([`crate::oauth::Connection::bearer`]: cached sealed in the state store,
//!   refreshed within `refresh_before` of its expiry). A refused token (a 401, or a 403 whose
//!   `WWW-Authenticate` says `error="invalid_token"`, as some servers answer an expired token)
//!   gets one refresh ([`crate::oauth::Connection::unauthorized`]) and the same page asked
//!   again; a second refusal stops the run (RT120). Any other 403 (`insufficient_scope`) is
//!   not the token's age: RT118 at once, saying so. Only whole pages are handed on, so a page refused and asked again
//!   delivers each of its resources once.
//! - Deletions ([`deletions`]): after a cdc table's search is durable and its cursor saved,
//!   `GET [Type]/_history?_since=...` finds the resources deleted since; each becomes a
//!   deletion record (`BusMeta::deleted`) with its own cursor (`TABLE#deleted`), saved once
//!   those records are durable. A server without `_history` is said once (RT121) and the
//!   sync goes on without deletions. Append tables ignore deletions.
//! - No PHI and no credential in logs, errors or the audit: messages name the source, table,
//!   status and counts; URLs are shown without their query (`_cursor` tokens may encode data);
//!   credentials are resolved from their references when the run starts and only ever sent in
//!   headers.
//! - Each record's envelope says where it came from: file `[Type]` (the table's resource type),
//!   and a [`BusMeta`] with key = the resource id and headers `fhir.table`, `fhir.ingestion`,
//!   `fhir.resource_type`, `fhir.version_id`, for sinks and audits that key on them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_compiler::fhir_rest::{FhirAuthPlan, FhirRestPlan, FhirTablePlan};
use sluice_compiler::plan::ComponentKind;

use crate::compile::Compiled;
use crate::error::RunError;
use crate::executor::{RawInput, Totals};
use crate::findings;
use crate::oauth::Connection;
use crate::record::BusMeta;
use crate::retry::{self, Class, GaveUp, Policy, RealTimer, Rng};
use crate::secrets;
use crate::state::Store;
use crate::sync_source::{self, Pending, SyncJob};
use crate::throttle::Throttle;
use crate::time::Clock;

pub mod cursor;
pub mod deletions;

use cursor::{CursorState, Seen};

/// The largest `_count` asked of a server that gives no next links.
const MAX_PAGE_SIZE: u64 = 10_000;

/// Whether the plan's sources are `fhir.rest` syncs.
pub fn syncs(plan: &sluice_compiler::plan::Plan) -> bool {
    plan.components.iter().any(|c| matches!(&c.kind, ComponentKind::Source(s) if s.fhir_rest.is_some()))
}

/// An HTTP client for one server: auth headers, retry policy, throttle.
struct Client {
    name: Arc<str>,
    base_url: String,
    agent: ureq::Agent,
    /// Auth headers, resolved (never shown: no `Debug`).
    headers: Vec<(String, Credential)>,
    /// `auth: oauth2`: the connection whose access token each request sends.
    connection: Option<Connection>,
    /// The status of the last refused request (after its retries), when it had one.
    last_status: Option<u16>,
    /// Whether the last page's failure was its access token refused ([`Failure::token_refused`]).
    last_token_refused: bool,
    policy: Policy,
    throttle: Option<Throttle>,
    rng: Rng,
    timer: RealTimer,
    /// Requests and retries made (for the stderr line; counts only).
    requests: u64,
    retries: u64,
}

/// A header value holding a credential.
struct Credential(String);

/// One page as fetched: its parsed Bundle, and the server's `Date` (seconds since 1970).
struct Page {
    bundle: sluice_fhir::Node,
    date: Option<i64>,
}

/// A failed attempt, described without data.
struct Failure {
    text: String,
    auth: bool,
    status: Option<u16>,
    /// The server said the access token itself is bad: a 401, or a 403 whose
    /// `WWW-Authenticate` carries `error="invalid_token"` (RFC 6750 §3.1; some servers answer
    /// an expired token so). Worth one refresh; any other 403 (`insufficient_scope`, no
    /// access to the resource type) is not.
    token_refused: bool,
}

/// Whether a `WWW-Authenticate` header says the bearer token is invalid or expired
/// (`Bearer realm="x", error="invalid_token", ...`).
fn says_invalid_token(www_authenticate: Option<&str>) -> bool {
    let Some(params) = www_authenticate.and_then(|h| {
        let h = h.trim_start();
        h.get(..6).filter(|scheme| scheme.eq_ignore_ascii_case("bearer")).map(|_| &h[6..])
    }) else {
        return false;
    };
    params.split(',').filter_map(|p| p.split_once('=')).any(|(k, v)| {
        k.trim().eq_ignore_ascii_case("error") && v.trim().trim_matches('"').eq_ignore_ascii_case("invalid_token")
    })
}

/// The URL as messages show it: no query (a `_cursor` may encode search values).
fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url[after..].find(['/', '?', '#']).map_or(url.len(), |i| after + i);
    &url[..end]
}

fn secret_text(reference: &str, what: &str) -> Result<String, RunError> {
    let secret = secrets::resolve(reference, what)?;
    let text = std::str::from_utf8(secret.expose())
        .map_err(|_| RunError::new(findings::SECRET_MISSING, format!("{what} is not UTF-8 text")))?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

impl Client {
    /// Builds the client and resolves the credentials (a missing secret stops the run before
    /// anything is fetched: RT002).
    fn open(name: &Arc<str>, plan: &FhirRestPlan, whole: &sluice_compiler::plan::Plan) -> Result<Client, RunError> {
        let state = whole.state.as_ref();
        use base64::Engine;
        let header = |name: &str, value: String| (name.to_string(), Credential(value));
        let headers = match &plan.auth {
            FhirAuthPlan::None => Vec::new(),
            FhirAuthPlan::ApiKey { header: h, key } => {
                vec![header(h, secret_text(key, &format!("the API key of `{name}`"))?)]
            }
            FhirAuthPlan::Basic { username, password } => {
                let password = secret_text(password, &format!("the password of `{name}`"))?;
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
                vec![header("Authorization", format!("Basic {token}"))]
            }
            FhirAuthPlan::Bearer { token } => {
                vec![header(
                    "Authorization",
                    format!("Bearer {}", secret_text(token, &format!("the token of `{name}`"))?),
                )]
            }
            FhirAuthPlan::OAuth2 { .. } => Vec::new(),
        };
        let connection = match &plan.auth {
            FhirAuthPlan::OAuth2 { connection } => Some(Connection::open(whole, connection)?),
            _ => None,
        };
        for (h, v) in &headers {
            if ureq::http::HeaderValue::from_str(&v.0).is_err() {
                return Err(RunError::new(
                    findings::HTTP_HEADER_INVALID,
                    format!("the `{h}` credential of `{name}` is not a valid HTTP header value"),
                )
                .with_help("a credential is one line of visible text: remove line breaks and control characters from the secret"));
            }
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(plan.timeout_ms.max(1))))
            .http_status_as_error(false)
            // Redirects could carry the credentials to another host: not followed.
            .max_redirects(0)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Client {
            name: Arc::clone(name),
            base_url: plan.base_url.clone(),
            agent,
            headers,
            connection,
            last_status: None,
            last_token_refused: false,
            policy: Policy::from_plan(&plan.retry),
            throttle: plan.throttle.as_ref().map(|t| Throttle::open(t, state)).transpose()?,
            rng: Rng::from_time(),
            timer: RealTimer::new(),
            requests: 0,
            retries: 0,
        })
    }

    /// GETs one page, retried as the policy says; with an OAuth connection, a refused token (a
    /// 401, or a 403 saying `invalid_token`) gets one refresh and the page is asked again.
    fn page(&mut self, url: &str, table: &str) -> Result<Page, RunError> {
        let token = match &self.connection {
            Some(connection) => connection.bearer()?,
            None => return self.page_with(url, table, None),
        };
        let refused = match self.page_with(url, table, Some(&token)) {
            Err(e) if self.last_token_refused => e,
            other => return other,
        };
        let Some(connection) = &self.connection else { return Err(refused) };
        let connection_name = connection.plan().name.clone();
        let status = self.last_status.unwrap_or(401);
        tracing::warn!(component = %self.name, table, status, "fhir.rest access token refused: refreshed once");
        let fresh = connection.unauthorized(&token)?;
        match self.page_with(url, table, Some(&fresh)) {
            Err(_) if self.last_token_refused => Err(RunError::new(
                findings::FHIR_REST_TOKEN_REFUSED,
                format!(
                    "`{}`: the server refused a freshly refreshed access token of connection `{connection_name}` for table `{table}` (HTTP {}, {})",
                    self.name,
                    self.last_status.unwrap_or(401),
                    shown(url)
                ),
            )
            .with_help("the token endpoint and the FHIR server disagree: check the connection's `client_id` and `scopes` and the issuer or audience the server accepts; the tables synced so far kept their cursors")),
            other => other,
        }
    }

    /// GETs one page with `bearer` (when given) as its `Authorization`.
    fn page_with(&mut self, url: &str, table: &str, bearer: Option<&crate::secrets::Secret>) -> Result<Page, RunError> {
        self.last_status = None;
        self.last_token_refused = false;
        let bearer = bearer.map(|t| Credential(format!("Bearer {}", String::from_utf8_lossy(t.expose()))));
        if bearer.as_ref().is_some_and(|b| ureq::http::HeaderValue::from_str(&b.0).is_err()) {
            return Err(RunError::new(
                findings::HTTP_HEADER_INVALID,
                format!("the access token of `{}` is not a valid HTTP header value", self.name),
            )
            .with_help("the token endpoint returned a token with line breaks or control characters"));
        }
        let Client {
            name,
            agent,
            headers,
            policy,
            throttle,
            rng,
            timer,
            requests,
            retries,
            last_status,
            last_token_refused,
            ..
        } = self;
        let outcome = retry::run(
            policy,
            rng,
            timer,
            |_, timer| {
                if let Some(Err(text)) = throttle.as_mut().map(|t| t.wait_turn(timer)) {
                    return Err((
                        Failure { text, auth: false, status: None, token_refused: false },
                        Class::Retryable { retry_after: None },
                    ));
                }
                *requests += 1;
                let mut req = agent.get(url).header("Accept", "application/fhir+json");
                for (h, v) in headers.iter() {
                    req = req.header(h.as_str(), v.0.as_str());
                }
                if let Some(b) = &bearer {
                    req = req.header("Authorization", b.0.as_str());
                }
                let mut resp = match req.call() {
                    Ok(r) => r,
                    Err(e) => {
                        let class = crate::http_sink::classify_error(&e);
                        return Err((
                            Failure {
                                text: crate::http_sink::describe(&e),
                                auth: false,
                                status: None,
                                token_refused: false,
                            },
                            class,
                        ));
                    }
                };
                let status = resp.status().as_u16();
                let header = |n: &str| resp.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                let date = header("date").and_then(|d| retry::parse_imf_fixdate(&d));
                if !(200..300).contains(&status) {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let retry_after = header("retry-after").and_then(|v| retry::parse_retry_after(&v, now));
                    let auth = matches!(status, 401 | 403);
                    let token_refused =
                        status == 401 || status == 403 && says_invalid_token(header("www-authenticate").as_deref());
                    // The body may quote the request or the data: read and dropped.
                    let _ = resp.body_mut().read_to_vec();
                    let class = match crate::http_sink::classify_status(status, retry_after) {
                        Class::Data => Class::Permanent,
                        c => c,
                    };
                    return Err((
                        Failure { text: format!("HTTP {status}"), auth, status: Some(status), token_refused },
                        class,
                    ));
                }
                let bytes = match resp.body_mut().with_config().limit(512 * 1024 * 1024).read_to_vec() {
                    Ok(b) => b,
                    Err(e) => {
                        let class = crate::http_sink::classify_error(&e);
                        return Err((
                            Failure {
                                text: crate::http_sink::describe(&e),
                                auth: false,
                                status: None,
                                token_refused: false,
                            },
                            class,
                        ));
                    }
                };
                match sluice_fhir::json::parse(&bytes) {
                    Ok(bundle) => Ok(Page { bundle, date }),
                    // A page cut short by a dropped connection does not parse: worth another try.
                    Err(e) => Err((
                        Failure {
                            text: format!("the answer is not FHIR JSON ({} at byte {})", e.code, e.offset),
                            auth: false,
                            status: None,
                            token_refused: false,
                        },
                        Class::Retryable { retry_after: None },
                    )),
                }
            },
            |f, wait| {
                *retries += 1;
                tracing::warn!(component = %name, table, status = %f.text, wait_ms = wait.as_millis() as u64, "fhir.rest request retried");
            },
        );
        let (failure, gave_up) = match outcome.result {
            Ok(page) => return Ok(page),
            Err(e) => e,
        };
        let attempts = outcome.attempts;
        *last_status = failure.status;
        *last_token_refused = failure.token_refused;
        if failure.auth {
            let help = if failure.status == Some(403) && !failure.token_refused {
                "the credentials were accepted but do not allow this search (HTTP 403, e.g. `insufficient_scope`): grant the account or the connection's `scopes` read access to the table's resource type, or drop the table"
            } else {
                "check the secret the source's `auth` names, and the account's access to the resource type"
            };
            return Err(RunError::new(
                findings::FHIR_REST_AUTH,
                format!(
                    "`{name}`: the server refused the credentials for table `{table}` ({}, {})",
                    failure.text,
                    shown(url)
                ),
            )
            .with_help(help));
        }
        let how = match gave_up {
            GaveUp::NotRetryable => "not retried".to_string(),
            GaveUp::Attempts => format!("gave up after {attempts} attempts"),
            GaveUp::Elapsed => format!("gave up after {attempts} attempts (retry.max_elapsed)"),
        };
        let code = if failure.text.starts_with("HTTP") || failure.text.contains("FHIR JSON") {
            findings::FHIR_REST_FAILED
        } else {
            findings::FHIR_REST_UNREACHABLE
        };
        Err(RunError::new(code, format!("`{name}`: GET {} for table `{table}`: {} ({how})", shown(url), failure.text))
            .with_help(
                "the tables synced so far kept their cursors; run again once the server answers: nothing is lost",
            ))
    }
}

/// One source's sync: its client, tables and where it sends records.
struct Sync {
    source: usize,
    name: Arc<str>,
    plan: FhirRestPlan,
    client: Client,
    tx: crossbeam_channel::Sender<RawInput>,
    /// Whether the server's `_history` is asked for deletions (until it refuses: RT121).
    history: bool,
}

/// What one table's sync did (counts only).
#[derive(Debug, Default)]
struct TableReport {
    fetched: u64,
    skipped: u64,
    pages: u64,
}

/// Runs the pipeline fed by its `fhir.rest` sources until every table of each is synced;
/// returns the totals. A table whose sync fails keeps its cursor; the error is returned once
/// the records handed on are durable.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    progress: Option<Arc<crate::progress::Progress>>,
) -> Result<Totals, RunError> {
    let store = sync_source::open_store(c, "fhir.rest")?;
    let mut syncs = Vec::new();
    let mut feeds = Vec::new();
    for (i, comp) in c.plan.components.iter().enumerate() {
        let ComponentKind::Source(s) = &comp.kind else { continue };
        let Some(plan) = s.fhir_rest.as_deref() else { continue };
        let name = Arc::clone(&c.names[i]);
        let client = Client::open(&name, plan, c.plan)?;
        let (tx, rx) = sync_source::feed();
        syncs.push(Sync { source: i, name, plan: plan.clone(), client, tx, history: true });
        feeds.push(rx);
    }
    let jobs: Vec<SyncJob> = syncs
        .into_iter()
        .map(|sync| -> SyncJob {
            (
                Arc::clone(&sync.name),
                Box::new(move |store, pipeline, at, gone| run_sync(sync, store, pipeline, at, gone)),
            )
        })
        .collect();
    sync_source::drive(c, clock, run_id, threads, progress, store, feeds, jobs, "fhir.rest")
}

/// One source's tables, one after the other.
fn run_sync(mut sync: Sync, store: &Store, pipeline: &str, at: &str, gone: &AtomicBool) -> Result<(), RunError> {
    let tables = sync.plan.tables.clone();
    for table in &tables {
        let pending = Arc::new(Pending::default());
        let saved = store.fhir_cursor(pipeline, &sync.name, &table.name)?;
        let state = saved.as_deref().map(CursorState::from_json).unwrap_or_default();
        let mut seen = Seen::new(&state);
        let fetched = sync_table(&mut sync, table, &state, &mut seen, &pending, gone);
        // What was handed on becomes durable either way; the cursor moves only on success.
        let drained = pending.drain(gone);
        let report = fetched?;
        if !drained {
            return Err(RunError::new(
                findings::FHIR_REST_FAILED,
                format!(
                    "`{}`: the run stopped before table `{}` was durable; its cursor was kept",
                    sync.name, table.name
                ),
            ));
        }
        let next = seen.next_state(&state, sync.plan.overlap_ms);
        store.save_fhir_cursor(pipeline, &sync.name, &table.name, &next.to_json(), at)?;
        tracing::info!(
            component = %sync.name,
            table = %table.name,
            fetched = report.fetched,
            skipped = report.skipped,
            pages = report.pages,
            "fhir.rest table synced"
        );
        if table.ingestion == "cdc" && sync.history {
            let from = deletions::From { search_cursor: state.last_updated, search_started: seen.started() };
            deletions::sync(&mut sync, table, from, store, pipeline, at, gone)?;
        }
    }
    tracing::info!(
        component = %sync.name,
        requests = sync.client.requests,
        retries = sync.client.retries,
        "fhir.rest sync done"
    );
    Ok(())
}

/// The envelope's key and headers of a resource (or a deletion) of `table`.
fn bus_meta(table: &FhirTablePlan, meta: &cursor::Meta, deleted: bool) -> BusMeta {
    let mut headers = vec![
        ("fhir.table".into(), Some(table.name.as_bytes().to_vec())),
        ("fhir.ingestion".into(), Some(table.ingestion.as_bytes().to_vec())),
        ("fhir.resource_type".into(), Some(table.resource_type.as_bytes().to_vec())),
        ("fhir.version_id".into(), meta.version_id.as_ref().map(|v| v.as_bytes().to_vec())),
    ];
    if deleted {
        headers.push(("fhir.deleted".into(), Some(b"true".to_vec())));
    }
    BusMeta { key: meta.id.as_ref().map(|i| i.as_bytes().to_vec()), headers, deleted }
}

/// Hands one record on to the executor; it counts as pending until durable.
fn hand_on(
    sync: &Sync,
    table: &FhirTablePlan,
    file: &Arc<str>,
    index: u64,
    bytes: Vec<u8>,
    bus: BusMeta,
    pending: &Arc<Pending>,
) -> Result<(), RunError> {
    let raw = RawInput {
        source: sync.source,
        file: Arc::clone(file),
        offset: 0,
        index,
        seq: 0,
        bytes,
        problem: None,
        completion: None,
        bus: Some(Arc::new(bus)),
    };
    if sync_source::hand_on(&sync.tx, pending, raw) { Ok(()) } else { Err(stopped(sync, table)) }
}

/// A next link the server gave (`what`: `page`, `history page`), refused unless it is at the
/// origin of `base_url`: credentials go nowhere else.
fn same_origin(sync: &Sync, table: &FhirTablePlan, next: String, what: &str) -> Result<String, RunError> {
    if origin(&next) == origin(&sync.client.base_url) {
        return Ok(next);
    }
    Err(RunError::new(
        findings::FHIR_REST_FAILED,
        format!(
            "`{}`: the server's next {what} for table `{}` is at {}, not at the origin of `base_url` ({})",
            sync.name,
            table.name,
            origin(&next),
            origin(&sync.client.base_url)
        ),
    )
    .with_help("set `base_url` to the base the server announces (its own base URL setting): Sluice sends credentials only there"))
}

fn stopped(sync: &Sync, table: &FhirTablePlan) -> RunError {
    RunError::new(findings::FHIR_REST_FAILED, format!("`{}`: the run stopped during table `{}`", sync.name, table.name))
}

/// The first page's URL of a table's search.
fn first_url(plan: &FhirRestPlan, table: &FhirTablePlan, state: &CursorState, count: u64) -> String {
    let mut url = format!("{}/{}?_count={count}", plan.base_url, table.resource_type);
    if let Some(since) = state.since(plan.overlap_ms) {
        url.push_str("&_lastUpdated=gt");
        url.push_str(&query_instant(since));
    }
    url
}

/// An instant as a query value (`2024-01-15T10%3A30%3A00.123Z`).
fn query_instant(ns: i64) -> String {
    cursor::format_instant(ns).replace(':', "%3A").replace('+', "%2B")
}

/// The `next` link of a searchset page, if any.
fn next_link(bundle: &sluice_fhir::Node) -> Option<String> {
    bundle.get("link")?.as_array()?.iter().find_map(|l| {
        (l.get("relation")?.as_str()? == "next").then(|| l.get("url")?.as_str().map(str::to_string)).flatten()
    })
}

/// Fetches one table's pages and hands each new resource on.
fn sync_table(
    sync: &mut Sync,
    table: &FhirTablePlan,
    state: &CursorState,
    seen: &mut Seen,
    pending: &Arc<Pending>,
    gone: &AtomicBool,
) -> Result<TableReport, RunError> {
    let mut report = TableReport::default();
    let mut count = sync.plan.page_size;
    let mut url = first_url(&sync.plan, table, state, count);
    // Pages of the current search (a server without next links is searched again, larger).
    let mut pages_of_search = 0u64;
    let file: Arc<str> = Arc::from(table.resource_type.as_str());
    let mut index = 0u64;
    loop {
        if gone.load(Ordering::Relaxed) {
            return Err(stopped(sync, table));
        }
        let page = sync.client.page(&url, &table.name)?;
        report.pages += 1;
        pages_of_search += 1;
        if report.pages == 1 {
            // Resources changed after the search began are asked for again next time.
            seen.started_at(page.date);
        }
        let bundle = &page.bundle;
        if bundle.resource_type() != Some("Bundle")
            || bundle.get("type").and_then(sluice_fhir::Node::as_str) != Some("searchset")
        {
            return Err(RunError::new(
                findings::FHIR_REST_FAILED,
                format!(
                    "`{}`: GET {} for table `{}` did not answer a searchset Bundle",
                    sync.name,
                    shown(&url),
                    table.name
                ),
            )
            .with_help("check that `base_url` is the server's FHIR base (the URL that `/metadata` follows)"));
        }
        let entries = bundle.get("entry").and_then(sluice_fhir::Node::as_array).unwrap_or_default();
        let mut on_page = 0u64;
        for entry in entries {
            // `include` and `outcome` entries are not the table's.
            let mode = entry.get("search").and_then(|s| s.get("mode")).and_then(sluice_fhir::Node::as_str);
            if mode.is_some_and(|m| m != "match") {
                continue;
            }
            let Some(resource) = entry.get("resource") else { continue };
            on_page += 1;
            let meta = cursor::Meta::of(resource, &table.resource_type);
            if !seen.first_time(&meta) {
                report.skipped += 1;
                continue;
            }
            report.fetched += 1;
            let bus = bus_meta(table, &meta, false);
            hand_on(sync, table, &file, index, resource.to_json().into_bytes(), bus, pending)?;
            index += 1;
        }
        match next_link(bundle) {
            Some(next) => url = same_origin(sync, table, next, "page")?,
            None => {
                let total = match bundle.get("total") {
                    Some(sluice_fhir::Node::Number(n)) => n.parse::<u64>().ok(),
                    _ => None,
                };
                // A first page without a next link that is full (or short of its `total`):
                // the server does not page. Ask again for more at once; what this sync
                // already handed on is skipped.
                let cut_short = on_page >= count || total.is_some_and(|t| t > on_page);
                if pages_of_search == 1 && on_page > 0 && cut_short {
                    if count >= MAX_PAGE_SIZE {
                        return Err(RunError::new(
                            findings::FHIR_REST_FAILED,
                            format!(
                                "`{}`: table `{}`: the server gives no next link and more than {MAX_PAGE_SIZE} resources changed",
                                sync.name, table.name
                            ),
                        )
                        .with_help("enable paging on the server, or sync more often; the cursor was kept"));
                    }
                    count = (count * 4).min(MAX_PAGE_SIZE);
                    url = first_url(&sync.plan, table, state, count);
                    pages_of_search = 0;
                    continue;
                }
                return Ok(report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::says_invalid_token;

    #[test]
    fn a_403_is_a_refused_token_only_when_its_challenge_says_invalid_token() {
        assert!(says_invalid_token(Some(r#"Bearer realm="fhir", error="invalid_token""#)));
        assert!(says_invalid_token(Some(r#"bearer error=invalid_token, error_description="expired""#)));
        assert!(!says_invalid_token(Some(r#"Bearer realm="fhir", error="insufficient_scope", scope="x""#)));
        assert!(!says_invalid_token(Some(r#"Basic realm="error=invalid_token""#)));
        assert!(!says_invalid_token(Some("Bearer")));
        assert!(!says_invalid_token(None));
    }
}
