//! A local Plaid API (std::net on 127.0.0.1, one thread per connection) shaped as Plaid
//! documents it: `POST /accounts/get` and `POST /transactions/sync`, JSON bodies carrying
//! `client_id`, `secret` and `access_token`; `/transactions/sync` takes `cursor` (none or empty:
//! from the start) and `count` (1 to 500), and answers `added`, `modified`, `removed` (`{
//! transaction_id, account_id }`), `next_cursor` and `has_more`, as Plaid's reference and its
//! sandbox examples show. Errors are Plaid's error object (`error_type`, `error_code`,
//! `error_message`, `display_message`, `request_id`) with Plaid's statuses: 400
//! `INVALID_API_KEYS` / `INVALID_ACCESS_TOKEN` / `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`,
//! 400 `ITEM_ERROR` `ITEM_LOGIN_REQUIRED`, 429 `RATE_LIMIT_EXCEEDED`, 500 `API_ERROR`.
//!
//! The Item's changes are a log: each added, modified or removed transaction is one entry, and
//! a cursor is the position in the log it has read up to. A pending transaction that posts is
//! removed and a new one added with `pending_transaction_id` naming it, as Plaid does. Faults
//! are injected by the test in process.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::quickbooks::{read_request, respond};

pub const CLIENT_ID: &str = "5f3c0a1b2c3d4e5f6a7b8c9d";
pub const SECRET: &str = "plaid-test-secret-4c1f0e2d9b8a7";
pub const ACCESS_TOKEN: &str = "access-sandbox-8ab976e6-64bc-4b38-98f7-731e7a349970";
/// A merchant name the tests look for outside the sinks.
pub const MERCHANT: &str = "Quillfeather Stationers";

/// A fault to answer instead of a `/transactions/sync` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    RateLimit,
    ServerError,
    /// `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`: only to a request with a cursor past
    /// the start of its pagination (Plaid says it mid-pagination).
    Mutation,
    LoginRequired,
    /// The request is held (no answer) until [`Server::release`]: a run is killed meanwhile.
    Hold,
}

#[derive(Default)]
pub struct State {
    /// (kind, transaction) in the order they happened.
    log: Vec<(&'static str, Value)>,
    /// Current transactions by id.
    pub transactions: BTreeMap<String, Value>,
    next: u64,
    /// (fault, answer it once this many sync requests were answered, how many times).
    injected: Vec<(Fault, u64, u64)>,
    /// The `cursor` of every `/transactions/sync` request, in order ("" for none).
    pub cursors: Vec<String>,
    pub sync_requests: u64,
    pub faults_answered: u64,
    /// Requests held by [`Fault::Hold`] so far, and whether they are released.
    pub held: u64,
    pub released: bool,
    /// What `/accounts/get` answers (the test closes or renames accounts by changing it).
    pub accounts: Vec<Value>,
}

pub struct Server {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

fn transaction(id: &str, n: u64, pending: bool, pending_id: Option<&str>) -> Value {
    let merchant = if n % 7 == 3 {
        Value::Null
    } else if n.is_multiple_of(5) {
        json!(MERCHANT)
    } else {
        json!(format!("Merchant {n}"))
    };
    let category = if n % 11 == 4 {
        Value::Null
    } else {
        json!({"primary": "GENERAL_MERCHANDISE", "detailed": "GENERAL_MERCHANDISE_OFFICE_SUPPLIES", "confidence_level": "HIGH"})
    };
    json!({
        "transaction_id": id,
        "account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp",
        "account_owner": null,
        "amount": (n as f64) * 1.25 + 0.5,
        "iso_currency_code": "USD",
        "unofficial_currency_code": null,
        "date": format!("2024-02-{:02}", 1 + n % 28),
        "authorized_date": format!("2024-02-{:02}", 1 + n % 28),
        "datetime": null,
        "name": format!("PURCHASE {n}"),
        "merchant_name": merchant,
        "merchant_entity_id": null,
        "logo_url": null,
        "website": null,
        "payment_channel": "in store",
        "pending": pending,
        "pending_transaction_id": pending_id,
        "personal_finance_category": category,
        "category": null,
        "category_id": null,
        "check_number": null,
        "location": {"address": null, "city": null, "region": null, "postal_code": null, "country": null, "lat": null, "lon": null, "store_number": null},
        "payment_meta": {"by_order_of": null, "payee": null, "payer": null, "payment_method": null, "payment_processor": null, "ppd_id": null, "reason": null, "reference_number": null},
        "transaction_code": null,
        "transaction_type": "place"
    })
}

fn error(kind: &str, code: &str, message: &str) -> Value {
    json!({"error_type": kind, "error_code": code, "error_message": message, "display_message": null, "request_id": "HNTDNrA8F1shFEW"})
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            accounts: vec![json!({
                "account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp",
                "balances": {"available": 100.0, "current": 110.0, "iso_currency_code": "USD", "limit": null, "unofficial_currency_code": null},
                "mask": "0000", "name": "Plaid Checking", "official_name": "Plaid Gold Standard 0% Interest Checking",
                "subtype": "checking", "type": "depository"
            })],
            ..State::default()
        }));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || handle(conn, &st));
            }
        });
        Server { port, state }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds `count` transactions (`pending` or posted); returns their ids.
    pub fn add(&self, count: u64, pending: bool) -> Vec<String> {
        let mut s = self.state.lock().unwrap();
        (0..count)
            .map(|_| {
                s.next += 1;
                let n = s.next;
                let id = format!("txn{n:06}");
                let t = transaction(&id, n, pending, None);
                s.transactions.insert(id.clone(), t.clone());
                s.log.push(("added", t));
                id
            })
            .collect()
    }

    /// Adds `t` as Plaid would send it (the test writes every field, or leaves some out).
    pub fn add_raw(&self, t: Value) {
        let mut s = self.state.lock().unwrap();
        if let Some(id) = t["transaction_id"].as_str() {
            s.transactions.insert(id.to_string(), t.clone());
        }
        s.log.push(("added", t));
    }

    /// A transaction's amount changes.
    pub fn modify(&self, id: &str) {
        let mut s = self.state.lock().unwrap();
        let t = s.transactions.get_mut(id).unwrap();
        t["amount"] = json!(t["amount"].as_f64().unwrap() + 10.0);
        let t = t.clone();
        s.log.push(("modified", t));
    }

    pub fn remove(&self, id: &str) {
        let mut s = self.state.lock().unwrap();
        let t = s.transactions.remove(id).unwrap();
        s.log.push(("removed", json!({"transaction_id": id, "account_id": t["account_id"]})));
    }

    /// The pending transaction `id` posts: it is removed, and a posted one naming it added.
    /// Returns the posted one's id.
    pub fn post_pending(&self, id: &str) -> String {
        self.remove(id);
        let mut s = self.state.lock().unwrap();
        s.next += 1;
        let n = s.next;
        let posted = format!("txn{n:06}");
        let t = transaction(&posted, n, false, Some(id));
        s.transactions.insert(posted.clone(), t.clone());
        s.log.push(("added", t));
        posted
    }

    /// Answers `fault` to `count` sync requests, once `after` sync requests were answered.
    pub fn inject(&self, fault: Fault, count: u64, after: u64) {
        self.state.lock().unwrap().injected.push((fault, after, count));
    }

    /// Lets held requests go (unanswered: their client was killed).
    pub fn release(&self) {
        self.state.lock().unwrap().released = true;
    }

    pub fn cursors(&self) -> Vec<String> {
        self.state.lock().unwrap().cursors.clone()
    }
}

fn handle(conn: std::net::TcpStream, state: &Mutex<State>) {
    let Some(req) = read_request(&conn) else { return };
    let json_type = [("Content-Type", "application/json".to_string())];
    let answer = |conn, status, body: Value| respond(conn, status, &json_type, &body.to_string());
    if req.method != "POST" {
        return answer(conn, 404, error("INVALID_REQUEST", "UNKNOWN_ROUTE", "not found"));
    }
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return answer(conn, 400, error("INVALID_REQUEST", "INVALID_BODY", "body could not be parsed as JSON"));
    };
    if body["client_id"] != CLIENT_ID || body["secret"] != SECRET {
        return answer(conn, 400, error("INVALID_INPUT", "INVALID_API_KEYS", "invalid client_id or secret provided"));
    }
    if body["access_token"] != ACCESS_TOKEN {
        return answer(
            conn,
            400,
            error("INVALID_INPUT", "INVALID_ACCESS_TOKEN", "provided access token is in an invalid format"),
        );
    }
    let mut s = state.lock().unwrap();
    match req.path.as_str() {
        "/accounts/get" => {
            let accounts = s.accounts.clone();
            drop(s);
            answer(
                conn,
                200,
                json!({"accounts": accounts, "item": {"item_id": "eVBnVMp7zdTJLkRNr33Rs6zr7KNJqBFL9DrE6"}, "request_id": "bkVE1BHWMAZ9Rnr"}),
            )
        }
        "/transactions/sync" => {
            let cursor = body["cursor"].as_str().unwrap_or("").to_string();
            s.cursors.push(cursor.clone());
            let answered = s.sync_requests;
            s.sync_requests += 1;
            let mid = !cursor.is_empty() && s.cursors.len() > 1;
            let due = s
                .injected
                .iter()
                .position(|(f, after, left)| *left > 0 && answered >= *after && (*f != Fault::Mutation || mid));
            if let Some(i) = due.filter(|&i| s.injected[i].0 == Fault::Hold) {
                s.injected[i].2 -= 1;
                s.held += 1;
                drop(s);
                while !state.lock().unwrap().released {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                return;
            }
            if let Some(i) = due {
                s.injected[i].2 -= 1;
                s.faults_answered += 1;
                let (status, e) = match s.injected[i].0 {
                    Fault::RateLimit => (
                        429,
                        error(
                            "RATE_LIMIT_EXCEEDED",
                            "TRANSACTIONS_SYNC_LIMIT",
                            "rate limit exceeded for attempts to access this item",
                        ),
                    ),
                    Fault::ServerError => {
                        (500, error("API_ERROR", "INTERNAL_SERVER_ERROR", "an unexpected error occurred"))
                    }
                    Fault::Mutation => (
                        400,
                        error(
                            "TRANSACTIONS_ERROR",
                            "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION",
                            "Underlying transaction data changed since last page was fetched. Please restart pagination from last update.",
                        ),
                    ),
                    Fault::Hold => unreachable!("held above"),
                    Fault::LoginRequired => (
                        400,
                        error(
                            "ITEM_ERROR",
                            "ITEM_LOGIN_REQUIRED",
                            "the login details of this item have changed (credentials, MFA, or required user action) and a user login is required to update this information",
                        ),
                    ),
                };
                drop(s);
                return answer(conn, status, e);
            }
            let from: usize = match cursor.strip_prefix('c').map(str::parse) {
                _ if cursor.is_empty() => 0,
                Some(Ok(n)) => n,
                _ => {
                    drop(s);
                    return answer(conn, 400, error("INVALID_INPUT", "INVALID_FIELD", "cursor is invalid"));
                }
            };
            let count = body["count"].as_u64().unwrap_or(100).clamp(1, 500) as usize;
            let to = (from + count).min(s.log.len());
            let (mut added, mut modified, mut removed) = (vec![], vec![], vec![]);
            for (kind, t) in &s.log[from.min(to)..to] {
                match *kind {
                    "added" => added.push(t.clone()),
                    "modified" => modified.push(t.clone()),
                    _ => removed.push(t.clone()),
                }
            }
            let out = json!({
                "added": added, "modified": modified, "removed": removed,
                "next_cursor": format!("c{to}"), "has_more": to < s.log.len(),
                "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE", "accounts": [],
                "request_id": "Wvhy9PZHQLV8njG"
            });
            drop(s);
            answer(conn, 200, out)
        }
        _ => answer(conn, 404, error("INVALID_REQUEST", "UNKNOWN_ROUTE", "not found")),
    }
}
