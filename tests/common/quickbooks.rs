//! A local QuickBooks Online API (std::net on 127.0.0.1, one thread per connection) shaped as
//! Intuit documents the v3 API: `GET /v3/company/{realmId}/query?query=SELECT * FROM <Entity>
//! [WHERE MetaData.LastUpdatedTime >= '<time>'] [ORDERBY MetaData.LastUpdatedTime]
//! STARTPOSITION n MAXRESULTS m&minorversion=N` (at most 1000 a page), `GET
//! /v3/company/{realmId}/cdc?entities=A,B&changedSince=<time>&minorversion=N` (30 days back at
//! most, deleted entities as `{"status": "Deleted", ...}`), JSON answers to `Accept:
//! application/json`, and `Fault` bodies for errors (401 `AUTHENTICATION` 3200, 429 `SERVICE`
//! 3001 ThrottleExceeded, 400 `ValidationFault`, 5xx). It is also the app's OAuth server for
//! `sluice connect`: `GET /connect/oauth2` redirects back with a code and `realmId`, `POST
//! /oauth2/v1/tokens/bearer` exchanges codes and refresh tokens (rotating both tokens, with
//! Intuit's `x_refresh_token_expires_in`).
//!
//! The entities are made from the fixtures' entities (`tests/fixtures/quickbooks/entities.json`,
//! derived from quickbooks-ruby's recorded responses): new `Id`s, `SyncToken`s, times and
//! amounts. Faults are injected, and entities added, changed, deleted, by the test in process,
//! also between two query requests of a sync (an entity saved again moves to the end of the
//! `ORDERBY MetaData.LastUpdatedTime` order), and a query request can be held while the test
//! kills the run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::root;

/// One entity as the server keeps it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub id: u64,
    pub sync_token: u64,
    /// `MetaData.LastUpdatedTime`, Unix seconds.
    pub updated: i64,
    pub deleted: bool,
    /// The entity's JSON without `Id`, `SyncToken`, `MetaData` (written on the way out).
    pub body: Value,
}

/// A fault to answer instead of the next matching requests.
#[derive(Clone, Debug)]
struct Injected {
    status: u16,
    /// Answer the fault once this many API requests were answered.
    after: u64,
    left: u64,
}

#[derive(Default)]
pub struct State {
    pub entities: BTreeMap<String, Vec<Stored>>,
    next_id: u64,
    /// The access token the API accepts now, and the refresh token the token endpoint takes.
    access: Option<String>,
    refresh: Option<String>,
    generation: u64,
    injected: Vec<Injected>,
    /// API requests answered (any status), by endpoint (`query`, `cdc`).
    pub requests: BTreeMap<String, u64>,
    pub queries: Vec<String>,
    pub unauthorized: u64,
    pub faults_answered: u64,
    pub refreshes: u64,
    pub realm: String,
    /// Entities saved again just before the query request of that number (1-based) is
    /// answered: QuickBooks users working while a sync pages.
    saves_before_query: Vec<(u64, String, u64)>,
    /// The query request of this number (1-based) is held, unanswered, until [`Server::release`].
    hold_query: Option<u64>,
    pub held: u64,
    released: bool,
}

pub struct Server {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Unix seconds as QuickBooks writes them for a company in US Pacific standard time.
pub fn qbo_time(secs: i64) -> String {
    let local = secs - 8 * 3600;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}-08:00", s / 3600, s / 60 % 60, s % 60)
}

/// The day of a time, as `TxnDate`.
fn qbo_date(secs: i64) -> String {
    qbo_time(secs)[..10].to_string()
}

/// `YYYY-MM-DDTHH:MM:SS(Z|±HH:MM)` (optional fraction) or `YYYY-MM-DD` to Unix seconds.
pub fn parse_time(t: &str) -> Option<i64> {
    let num = |s: &str| s.parse::<i64>().ok();
    let days = days_from_civil(num(t.get(0..4)?)?, num(t.get(5..7)?)?, num(t.get(8..10)?)?);
    if t.len() == 10 {
        return Some(days * 86_400);
    }
    let secs = days * 86_400 + num(t.get(11..13)?)? * 3600 + num(t.get(14..16)?)? * 60 + num(t.get(17..19)?)?;
    let rest = t.get(19..)?;
    let rest =
        if let Some(r) = rest.strip_prefix('.') { r.trim_start_matches(|c: char| c.is_ascii_digit()) } else { rest };
    if rest == "Z" {
        return Some(secs);
    }
    let sign = match rest.get(0..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let offset = num(rest.get(1..3)?)? * 3600 + num(rest.get(4..6)?)? * 60;
    Some(secs - sign * offset)
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The fixtures' entities of `entity`, without deletions (templates for synthetic ones).
fn templates(entity: &str) -> Vec<Value> {
    let all: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/fixtures/quickbooks/entities.json")).unwrap())
            .unwrap();
    all[entity]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("status").is_none() && e.get("TotalAmt").is_some())
        .cloned()
        .collect()
}

impl Stored {
    /// As the API writes it.
    pub fn json(&self) -> Value {
        if self.deleted {
            return json!({
                "domain": "QBO",
                "status": "Deleted",
                "Id": self.id.to_string(),
                "MetaData": {"LastUpdatedTime": qbo_time(self.updated)},
            });
        }
        let mut v = self.body.clone();
        let o = v.as_object_mut().unwrap();
        // A raw entity written with its own `Id` (even `null`) keeps it.
        o.entry("Id").or_insert(json!(self.id.to_string()));
        o.insert("SyncToken".into(), json!(self.sync_token.to_string()));
        o.insert(
            "MetaData".into(),
            json!({"CreateTime": qbo_time(self.updated - 3600), "LastUpdatedTime": qbo_time(self.updated)}),
        );
        v
    }
}

fn fault(kind: &str, code: &str, message: &str) -> Value {
    json!({"Fault": {"Error": [{"Message": message, "Detail": "See the QuickBooks Online API reference", "code": code}], "type": kind}, "time": qbo_time(now_s())})
}

impl Server {
    /// The API of company `realm` with `counts` entities of each entity kind, their
    /// `LastUpdatedTime` a minute apart from `base` (Unix seconds) on.
    pub fn start(realm: &str, counts: &[(&str, u64)], base: i64) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State { realm: realm.to_string(), next_id: 100, ..State::default() }));
        {
            let mut s = state.lock().unwrap();
            for (entity, count) in counts {
                add(&mut s, entity, *count, base);
            }
        }
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || handle(conn, &state));
            }
        });
        Server { port, state }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next `count` requests to the API, once `after` were answered, get `status`.
    pub fn inject(&self, status: u16, count: u64, after: u64) {
        self.state.lock().unwrap().injected.push(Injected { status, after, left: count });
    }

    /// `count` new entities updated from `at` on, a minute apart.
    pub fn add(&self, entity: &str, count: u64, at: i64) -> Vec<u64> {
        add(&mut self.state.lock().unwrap(), entity, count, at)
    }

    /// An entity as written (for entities a source must reject or warn about).
    pub fn add_raw(&self, entity: &str, body: Value, at: i64) {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.entities.entry(entity.to_string()).or_default().push(Stored {
            id,
            sync_token: 0,
            updated: at,
            deleted: false,
            body,
        });
    }

    /// Saves entity `id` again at `at`: a new `SyncToken`, `TotalAmt` plus one.
    pub fn update(&self, entity: &str, id: u64, at: i64) {
        update(&mut self.state.lock().unwrap(), entity, id, at);
    }

    /// Saves entity `id` again (as [`Server::update`], at the time of the request) just before
    /// the `nth` query request (1-based) is answered.
    pub fn update_before_query(&self, nth: u64, entity: &str, id: u64) {
        self.state.lock().unwrap().saves_before_query.push((nth, entity.to_string(), id));
    }

    /// Holds the `nth` query request (1-based) unanswered until [`Server::release`]: a run is
    /// killed meanwhile.
    pub fn hold_query(&self, nth: u64) {
        self.state.lock().unwrap().hold_query = Some(nth);
    }

    /// Lets a held request go (unanswered: its client was killed).
    pub fn release(&self) {
        self.state.lock().unwrap().released = true;
    }

    /// Deletes entity `id` at `at` (CDC reports it, queries no longer find it).
    pub fn delete(&self, entity: &str, id: u64, at: i64) {
        let mut s = self.state.lock().unwrap();
        let e = s.entities.get_mut(entity).unwrap().iter_mut().find(|e| e.id == id).unwrap();
        e.deleted = true;
        e.updated = at;
    }

    /// The access token expires early (revoked at Intuit): the API answers 401 to it.
    pub fn expire_access_token(&self) {
        self.state.lock().unwrap().access = Some("expired-before-its-time".to_string());
    }

    pub fn requests(&self, endpoint: &str) -> u64 {
        self.state.lock().unwrap().requests.get(endpoint).copied().unwrap_or(0)
    }

    pub fn ids(&self, entity: &str) -> Vec<u64> {
        self.state.lock().unwrap().entities[entity].iter().map(|e| e.id).collect()
    }
}

fn update(s: &mut State, entity: &str, id: u64, at: i64) {
    let e = s.entities.get_mut(entity).unwrap().iter_mut().find(|e| e.id == id).unwrap();
    e.sync_token += 1;
    e.updated = at;
    let total = e.body["TotalAmt"].as_f64().unwrap_or(0.0) + 1.0;
    e.body["TotalAmt"] = json!(total);
}

fn add(s: &mut State, entity: &str, count: u64, at: i64) -> Vec<u64> {
    let templates = templates(entity);
    let mut ids = Vec::new();
    for i in 0..count {
        s.next_id += 1;
        let id = s.next_id;
        let mut body = templates[(i as usize) % templates.len()].clone();
        let updated = at + i as i64 * 60;
        let o = body.as_object_mut().unwrap();
        for k in ["Id", "SyncToken", "MetaData", "_fixture"] {
            o.remove(k);
        }
        // Amounts in cents' steps, a day per entity, and a currency on every transaction.
        o.insert("TotalAmt".into(), json!(((id % 997) as f64) + 0.25));
        o.insert("TxnDate".into(), json!(qbo_date(updated)));
        o.entry("CurrencyRef").or_insert(json!({"value": "USD", "name": "United States Dollar"}));
        s.entities.entry(entity.to_string()).or_default().push(Stored {
            id,
            sync_token: 0,
            updated,
            deleted: false,
            body,
        });
        ids.push(id);
    }
    ids
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

pub fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len = headers.get("content-length").and_then(|l| l.parse::<usize>().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    Some(Request { method, path: path.to_string(), query, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

pub fn respond(mut conn: TcpStream, status: u16, headers: &[(&str, String)], body: &str) {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}

fn handle(conn: TcpStream, state: &Mutex<State>) {
    let Some(req) = read_request(&conn) else { return };
    let json_type = [("Content-Type", "application/json".to_string())];
    // The app's OAuth endpoints (`sluice connect`, refresh).
    if req.path == "/connect/oauth2" {
        let (Some(redirect), Some(st)) = (req.query.get("redirect_uri"), req.query.get("state")) else {
            return respond(conn, 400, &[], "missing redirect_uri or state");
        };
        let realm = state.lock().unwrap().realm.clone();
        let location = format!("{redirect}?code=code-{}&state={st}&realmId={realm}", now_s());
        return respond(conn, 302, &[("Location", location)], "");
    }
    if req.path == "/oauth2/v1/tokens/bearer" && req.method == "POST" {
        let form: BTreeMap<String, String> = form_urlencoded::parse(req.body.as_bytes()).into_owned().collect();
        let mut s = state.lock().unwrap();
        let ok = match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => form.contains_key("code") && form.contains_key("code_verifier"),
            Some("refresh_token") => form.get("refresh_token") == s.refresh.as_ref(),
            _ => false,
        };
        if !ok || !req.headers.get("authorization").is_some_and(|a| a.starts_with("Basic ")) {
            return respond(conn, 400, &json_type, r#"{"error":"invalid_grant"}"#);
        }
        if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
            s.refreshes += 1;
        }
        s.generation += 1;
        let (access, refresh) = (format!("qbo-access-{}", s.generation), format!("qbo-refresh-{}", s.generation));
        s.access = Some(access.clone());
        s.refresh = Some(refresh.clone());
        let body = json!({"token_type": "bearer", "access_token": access, "refresh_token": refresh, "expires_in": 3600, "x_refresh_token_expires_in": 8_726_400});
        return respond(conn, 200, &json_type, &body.to_string());
    }
    // The API.
    let mut s = state.lock().unwrap();
    let prefix = format!("/v3/company/{}/", s.realm);
    let Some(endpoint) = req.path.strip_prefix(&prefix).map(str::to_string) else {
        return respond(conn, 404, &json_type, &fault("ValidationFault", "610", "Object Not Found").to_string());
    };
    *s.requests.entry(endpoint.clone()).or_default() += 1;
    let answered: u64 = s.requests.values().sum::<u64>() - 1;
    let bearer = req.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string);
    if bearer.is_none() || bearer != s.access {
        s.unauthorized += 1;
        let body = json!({"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401", "detail": "Token expired", "code": "3200"}], "type": "AUTHENTICATION"}, "time": qbo_time(now_s())});
        return respond(conn, 401, &json_type, &body.to_string());
    }
    if let Some(i) = s.injected.iter().position(|f| f.left > 0 && answered >= f.after) {
        s.injected[i].left -= 1;
        s.faults_answered += 1;
        let status = s.injected[i].status;
        let body = if status == 429 {
            fault("SERVICE", "3001", "message=ThrottleExceeded; errorCode=003001; statusCode=429")
        } else {
            fault("SERVICE", "10000", "An application error has occurred while processing your request")
        };
        return respond(conn, status, &json_type, &body.to_string());
    }
    if !req.headers.get("accept").is_some_and(|a| a.contains("application/json")) {
        return respond(conn, 400, &[], "this server answers JSON only (Accept: application/json)");
    }
    if req.query.get("minorversion").and_then(|m| m.parse::<u32>().ok()).is_none() {
        let f = fault("ValidationFault", "2010", "Invalid minorversion");
        return respond(conn, 400, &json_type, &f.to_string());
    }
    let answer = match endpoint.as_str() {
        "query" => {
            let nth = s.requests["query"];
            if s.hold_query == Some(nth) {
                s.held += 1;
                drop(s);
                while !state.lock().unwrap().released {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                return;
            }
            let due: Vec<(String, u64)> =
                s.saves_before_query.iter().filter(|(n, _, _)| *n == nth).map(|(_, e, id)| (e.clone(), *id)).collect();
            for (entity, id) in due {
                update(&mut s, &entity, id, now_s());
            }
            let q = req.query.get("query").cloned().unwrap_or_default();
            s.queries.push(q.clone());
            query(&s, &q)
        }
        "cdc" => cdc(&s, &req.query),
        _ => Err(fault("ValidationFault", "610", "Object Not Found")),
    };
    match answer {
        Ok(v) => respond(conn, 200, &json_type, &v.to_string()),
        Err(f) => respond(conn, 400, &json_type, &f.to_string()),
    }
}

/// `SELECT * FROM E [WHERE MetaData.LastUpdatedTime >= 'T'] [ORDERBY MetaData.LastUpdatedTime]
/// [STARTPOSITION n] [MAXRESULTS m]`, as much of QuickBooks' query language as a sync uses.
fn query(s: &State, q: &str) -> Result<Value, Value> {
    let bad = || fault("ValidationFault", "4000", "message=Error parsing query; errorCode=004000; statusCode=400");
    let words: Vec<&str> = q.split_whitespace().collect();
    let [select, star, from, entity, rest @ ..] = words.as_slice() else { return Err(bad()) };
    if !select.eq_ignore_ascii_case("select") || *star != "*" || !from.eq_ignore_ascii_case("from") {
        return Err(bad());
    }
    let (mut since, mut start, mut max) = (None, 1usize, 100usize);
    let mut i = 0;
    while i < rest.len() {
        match rest[i].to_ascii_uppercase().as_str() {
            "WHERE" => {
                let (Some(field), Some(op), Some(value)) = (rest.get(i + 1), rest.get(i + 2), rest.get(i + 3)) else {
                    return Err(bad());
                };
                if !field.eq_ignore_ascii_case("MetaData.LastUpdatedTime") || *op != ">=" {
                    return Err(bad());
                }
                since = Some(parse_time(value.trim_matches('\'')).ok_or_else(bad)?);
                i += 4;
            }
            "ORDERBY" => i += 2,
            "STARTPOSITION" => {
                start = rest.get(i + 1).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                i += 2;
            }
            "MAXRESULTS" => {
                max = rest.get(i + 1).and_then(|n| n.parse().ok()).filter(|m| *m <= 1000).ok_or_else(bad)?;
                i += 2;
            }
            _ => return Err(bad()),
        }
    }
    let mut found: Vec<&Stored> = s
        .entities
        .get(*entity)
        .map(|v| v.iter().filter(|e| !e.deleted && since.is_none_or(|t| e.updated >= t)).collect())
        .unwrap_or_default();
    found.sort_by_key(|e| (e.updated, e.id));
    let page: Vec<Value> = found.iter().skip(start.saturating_sub(1)).take(max).map(|e| e.json()).collect();
    let mut response = serde_json::Map::new();
    if !page.is_empty() {
        response.insert("startPosition".into(), json!(start));
        response.insert("maxResults".into(), json!(page.len()));
        response.insert((*entity).to_string(), Value::Array(page));
    }
    Ok(json!({"QueryResponse": response, "time": qbo_time(now_s())}))
}

fn cdc(s: &State, params: &BTreeMap<String, String>) -> Result<Value, Value> {
    let since = params.get("changedSince").and_then(|t| parse_time(t));
    let (Some(entities), Some(since)) = (params.get("entities"), since) else {
        return Err(fault("ValidationFault", "2020", "Required param missing: entities or changedSince"));
    };
    if now_s() - since > 30 * 86_400 {
        return Err(fault("ValidationFault", "2040", "changedSince parameter must be within 30 days"));
    }
    let mut responses = Vec::new();
    for entity in entities.split(',') {
        let mut found: Vec<&Stored> =
            s.entities.get(entity).map(|v| v.iter().filter(|e| e.updated >= since).collect()).unwrap_or_default();
        found.sort_by_key(|e| (e.updated, e.id));
        found.truncate(1000);
        let items: Vec<Value> = found.iter().map(|e| e.json()).collect();
        let n = items.len();
        responses.push(if n == 0 {
            json!({})
        } else {
            json!({entity: items, "startPosition": 1, "maxResults": n, "totalCount": n})
        });
    }
    Ok(json!({"CDCResponse": [{"QueryResponse": responses}], "time": qbo_time(now_s())}))
}
