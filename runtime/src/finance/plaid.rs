//! The Plaid API of one Item (one login at one bank, reached with its `access_token`):
//! `/accounts/get` (the Item's accounts with their balances) and `/transactions/sync` (the
//! changes since a cursor: added, modified and removed transactions).
//!
//! Invariants:
//! - Every request is a `POST` of a JSON body holding `client_id`, `secret` and `access_token`
//!   (Plaid's authentication); none of the three, nor any value of an answer, reaches an error
//!   or a warning: messages carry Plaid's `error_type` and `error_code` only (fixed words; its
//!   `error_message` and `display_message` may quote data).
//! - Paging as Plaid documents it: `/transactions/sync` from the saved cursor, then from each
//!   answer's `next_cursor` while `has_more`. The changes of one pagination are kept until its
//!   last page and handed on only then, as Plaid asks: when Plaid answers
//!   `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`, what was read is dropped and the whole
//!   loop starts again from the saved cursor (at most [`MAX_RESTARTS`] times), so nothing of a
//!   pagination that changed under it reaches a sink.
//! - Pending to posted: when a pending transaction posts, Plaid removes the pending one (in
//!   `removed`) and adds the posted one with `pending_transaction_id` naming it; [`Change`]
//!   says which pending id a posted transaction replaces, and the removed one becomes a
//!   deletion, so a ledger keyed by `transaction_id` ends up with the posted row only.
//! - Requests to one Item are spaced at Plaid's published per-Item limit on
//!   `/transactions/sync` (50 a minute) or the configured rate, one budget per Item shared by
//!   every source and process reading it through the state store ([`api::budget`]); `429 RATE_LIMIT_EXCEEDED` and
//!   5xx are retried with growing backoff; `ITEM_LOGIN_REQUIRED` is not retried and fails with
//!   its own code (RT159), since only the user can fix it (Plaid Link's update mode).
//! - Partial data is kept: a transaction without `merchant_name` or a category is delivered,
//!   with a warning naming the field, never a value ([`Synced::warnings`]).

use std::time::Duration;

use sluice_compiler::plan::StateTarget;

use crate::error::RunError;
use crate::finance::api::{self, Counts, Failure, Retrying};
use crate::findings;
use crate::retry::{Class, Policy};
use crate::secrets::Secret;
use crate::throttle::Throttle;

/// Plaid's published limit on `/transactions/sync`: 50 requests a minute per Item (the
/// compiler's ceiling for a source's `rate`).
pub use sluice_compiler::plaid::PUBLISHED_RATE;
/// How many transactions one `/transactions/sync` page asks for (Plaid's maximum is 500).
pub const PAGE: u64 = 500;
/// How often a pagination is started again after `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`.
pub const MAX_RESTARTS: u32 = 5;
/// Plaid's production API.
pub use sluice_compiler::plaid::DEFAULT_BASE_URL as API;

/// The error code Plaid answers when the Item changed during a pagination.
const MUTATION: &str = "TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION";
/// The error code Plaid answers when the user must log in to the bank again.
const LOGIN_REQUIRED: &str = "ITEM_LOGIN_REQUIRED";

/// What Plaid needs to read one Item: the app's `client_id` and `secret`, and the Item's
/// `access_token`.
pub struct Credentials {
    pub client_id: Secret,
    pub secret: Secret,
    pub access_token: Secret,
}

/// How a transaction changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    /// Only `transaction_id` and `account_id` are known: a deletion.
    Removed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Removed => "removed",
        }
    }
}

/// One change of a sync: the transaction as Plaid sent it.
#[derive(Debug)]
pub struct Change {
    pub kind: ChangeKind,
    pub transaction: serde_json::Value,
    /// The pending transaction this posted one replaces (`pending_transaction_id`).
    pub replaces: Option<String>,
}

impl Change {
    pub fn id(&self) -> Option<&str> {
        self.transaction.get("transaction_id").and_then(|i| i.as_str())
    }
}

/// What one `/transactions/sync` pagination read.
#[derive(Debug, Default)]
pub struct Synced {
    pub changes: Vec<Change>,
    /// The cursor after the last page: save it once every change is durable.
    pub next_cursor: String,
    /// Paginations started again after a mutation.
    pub restarts: u32,
    /// Partial-data messages (the field; never a value).
    pub warnings: Vec<String>,
    pub counts: Counts,
}

/// A Plaid client for one Item.
pub struct Plaid<'c> {
    base_url: String,
    credentials: &'c Credentials,
    agent: ureq::Agent,
    /// The Item's request budget (shared through the state store when there is one).
    budget: Throttle,
    retrying: Retrying,
    /// The source's name, for messages.
    source: String,
}

impl<'c> Plaid<'c> {
    /// A client of `base_url` (normally [`API`]) for one Item, at `rate` (permits, seconds;
    /// `None`: [`PUBLISHED_RATE`]), drawing on the Item's budget in `state` (shared with every
    /// process reading the Item; `None`: this client's own).
    pub fn new(
        base_url: &str,
        credentials: &'c Credentials,
        rate: Option<(u64, u64)>,
        source: &str,
        state: Option<&StateTarget>,
    ) -> Result<Plaid<'c>, RunError> {
        let budget_name = format!("plaid:{}", api::credential_id(&credentials.access_token));
        Ok(Plaid {
            base_url: base_url.trim_end_matches('/').to_string(),
            credentials,
            agent: api::agent(Duration::from_secs(120)),
            budget: api::budget(budget_name, rate.unwrap_or(PUBLISHED_RATE), state)?,
            // Plaid's limits are per minute: back off from 1 s up to a minute.
            retrying: Retrying::new(Policy {
                max_attempts: 8,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                max_elapsed: Duration::from_secs(600),
            }),
            source: source.to_string(),
        })
    }

    /// `/accounts/get`: the Item's accounts, each with its `balances`.
    pub fn accounts(&mut self, counts: &mut Counts) -> Result<Vec<serde_json::Value>, RunError> {
        let answer = self.post("/accounts/get", serde_json::Map::new(), counts).map_err(|e| e.into_error(self))?;
        Ok(answer.get("accounts").and_then(|a| a.as_array()).cloned().unwrap_or_default())
    }

    /// Every change since `cursor` (from the start without one), through every page; started
    /// again from `cursor` when Plaid says the Item changed during the pagination.
    pub fn sync(&mut self, cursor: Option<&str>) -> Result<Synced, RunError> {
        let mut out = Synced::default();
        'pagination: loop {
            out.changes.clear();
            out.warnings.clear();
            let mut at = cursor.map(str::to_string);
            loop {
                let mut body = serde_json::Map::new();
                if let Some(c) = &at {
                    body.insert("cursor".into(), c.clone().into());
                }
                body.insert("count".into(), PAGE.into());
                let page = match self.post("/transactions/sync", body, &mut out.counts) {
                    Ok(page) => page,
                    Err(e) if e.code.as_deref() == Some(MUTATION) && out.restarts < MAX_RESTARTS => {
                        out.restarts += 1;
                        continue 'pagination;
                    }
                    Err(e) => return Err(e.into_error(self)),
                };
                for (key, kind) in
                    [("added", ChangeKind::Added), ("modified", ChangeKind::Modified), ("removed", ChangeKind::Removed)]
                {
                    for t in page.get(key).and_then(|a| a.as_array()).into_iter().flatten() {
                        out.changes.push(change(kind, t.clone(), &mut out.warnings));
                    }
                }
                let next = page.get("next_cursor").and_then(|c| c.as_str()).map(str::to_string);
                let has_more = page.get("has_more").and_then(serde_json::Value::as_bool).unwrap_or(false);
                match next {
                    Some(next) if has_more => at = Some(next),
                    Some(next) => {
                        out.next_cursor = next;
                        return Ok(out);
                    }
                    None => {
                        return Err(RunError::new(
                            findings::PLAID_REQUEST_FAILED,
                            format!("`{}`: a Plaid `/transactions/sync` answer has no `next_cursor`", self.source),
                        )
                        .with_help("check `base_url`: it should be Plaid's API; the saved cursor was kept"));
                    }
                }
            }
        }
    }

    /// One POST with the credentials in the body, the Item's throttle and retries.
    fn post(
        &mut self,
        path: &str,
        mut body: serde_json::Map<String, serde_json::Value>,
        counts: &mut Counts,
    ) -> Result<serde_json::Value, Refused> {
        let text = |s: &Secret| String::from_utf8_lossy(s.expose()).into_owned();
        body.insert("client_id".into(), text(&self.credentials.client_id).into());
        body.insert("secret".into(), text(&self.credentials.secret).into());
        body.insert("access_token".into(), text(&self.credentials.access_token).into());
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let url = format!("{}{path}", self.base_url);
        let (agent, budget) = (&self.agent, &mut self.budget);
        let mut code = None;
        let answer = self.retrying.attempts(counts, |timer| {
            api::wait_turn(budget, timer)?;
            attempt(agent, &url, &bytes, &mut code)
        });
        answer.map_err(|(failure, why)| Refused { failure, why, code, path: path.to_string() })
    }
}

/// A request Plaid refused for good: the failure, why, and Plaid's `error_code`.
struct Refused {
    failure: Failure,
    why: &'static str,
    code: Option<String>,
    path: String,
}

impl Refused {
    fn into_error(self, client: &Plaid<'_>) -> RunError {
        let Refused { failure: f, why, code, path } = self;
        if code.as_deref() == Some(LOGIN_REQUIRED) {
            return RunError::new(
                findings::PLAID_ITEM_LOGIN_REQUIRED,
                format!("`{}`: Plaid needs the Item's user to log in to the bank again (ITEM_LOGIN_REQUIRED)", client.source),
            )
            .with_help("send the user through Plaid Link in update mode with this Item's access token, then run again; the cursor was kept, nothing is lost");
        }
        RunError::new(
            findings::PLAID_REQUEST_FAILED,
            format!("`{}`: Plaid `{path}` {why}: {}{}", client.source, f.status_prefix(), f.what),
        )
        .with_help(match (f.status, code.as_deref()) {
            (_, Some(MUTATION)) => "the Item kept changing during every pagination: run again later; the cursor was kept",
            (_, Some("INVALID_API_KEYS")) => "Plaid refused `client_id` or `secret`: check the secrets behind them (sandbox and production keys differ)",
            (_, Some("INVALID_ACCESS_TOKEN")) => "Plaid refused the Item's `access_token`: check the secret behind it (it belongs to one environment)",
            (Some(429), _) => "Plaid kept rate-limiting the Item: lower the source's `rate` or run later",
            _ => "check Plaid's status page and the source's keys; records read so far are kept",
        })
    }
}

/// One transaction of a page, noting partial data.
fn change(kind: ChangeKind, transaction: serde_json::Value, warnings: &mut Vec<String>) -> Change {
    if kind != ChangeKind::Removed {
        let missing = |k: &str| transaction.get(k).is_none_or(serde_json::Value::is_null);
        if missing("merchant_name") {
            warnings.push("a transaction has no `merchant_name`".to_string());
        }
        if missing("personal_finance_category") && missing("category") {
            warnings.push("a transaction has no category".to_string());
        }
        if transaction.get("amount").is_some_and(|a| !a.is_number()) {
            warnings.push("a transaction's `amount` is not a number".to_string());
        }
    }
    let replaces = (kind == ChangeKind::Added)
        .then(|| transaction.get("pending_transaction_id").and_then(|p| p.as_str()).map(str::to_string))
        .flatten();
    Change { kind, transaction, replaces }
}

fn attempt(
    agent: &ureq::Agent,
    url: &str,
    body: &[u8],
    code: &mut Option<String>,
) -> Result<serde_json::Value, (Failure, Class)> {
    let request = agent.post(url).header("Content-Type", "application/json");
    let mut response = request.send(body).map_err(|e| api::transport_failure(&e))?;
    let status = response.status().as_u16();
    let retry_after = api::retry_after(&response);
    let answer = api::json_body(&mut response, 256 << 20);
    if (200..300).contains(&status) {
        return match answer {
            Some(v) if v.is_object() => Ok(v),
            _ => Err((
                Failure {
                    status: Some(status),
                    what: "the answer is not a JSON object".to_string(),
                    unauthorized: false,
                },
                Class::Retryable { retry_after: None },
            )),
        };
    }
    // Plaid's error object: `error_type` and `error_code` are fixed words.
    let kind = api::word(answer.as_ref().and_then(|a| a.get("error_type")));
    *code = api::word(answer.as_ref().and_then(|a| a.get("error_code")));
    let what = match (&kind, &*code) {
        (Some(t), Some(c)) => format!("`{t}` (`{c}`)"),
        (None, Some(c)) => format!("`{c}`"),
        (Some(t), None) => format!("`{t}`"),
        _ => "no Plaid error object".to_string(),
    };
    let failure = Failure { status: Some(status), what, unauthorized: false };
    Err((failure, api::status_class(status, retry_after)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_transactions_name_the_pending_one_they_replace_and_partial_data_is_warned() {
        let mut w = Vec::new();
        let posted = serde_json::json!({"transaction_id": "t2", "pending_transaction_id": "t1", "amount": 12.5,
            "merchant_name": null, "personal_finance_category": {"primary": "FOOD_AND_DRINK"}});
        let c = change(ChangeKind::Added, posted, &mut w);
        assert_eq!((c.id(), c.replaces.as_deref()), (Some("t2"), Some("t1")));
        assert_eq!(w, vec!["a transaction has no `merchant_name`".to_string()]);
        let removed = change(ChangeKind::Removed, serde_json::json!({"transaction_id": "t1"}), &mut w);
        assert!(removed.replaces.is_none());
        assert_eq!(w.len(), 1);
    }
}
