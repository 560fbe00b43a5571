//! Financial statements: the product brief's "Financial Output Format" (one document per
//! account: `metadata`, `account`, `transactions`, `reconciliation`), built from a
//! reconciliation's outcome and a file of canonical financial accounts
//! (`canonical/financial-account@1` rows, as the `plaid-accounts` and `quickbooks-accounts`
//! pipelines write them).
//!
//! Invariants:
//! - Nothing is lost: every record read from the transactions' input is listed in its
//!   account's document, or is a second copy of an id already listed there (counted in that
//!   document's `duplicates`), or is in the unassigned output with a code (RT172 unknown or
//!   closed account, RT174 no account id). Every line of the accounts file is an account, a
//!   deletion, or an unassigned entry (RT173). [`Statements::counts`] states each number.
//! - Deterministic: documents follow the accounts file's order (an account's first line),
//!   transactions the reading order of their input; `sync_timestamp` is the latest
//!   `metadata.processed_at` of the account's row and its transactions (when the data was
//!   synced), never the wall clock. The same files give the same bytes.
//! - An account is its provider and its id together (`canonical/financial-account@1`'s key,
//!   `source` + `id`): a transaction belongs to the account whose `source` is the
//!   transaction's provider (its input's `source` field, else `default_source`) and whose `id`
//!   is its account id. Two providers' accounts with one id are two accounts. A
//!   `canonical/financial-account@2` row adds its `connection` to the key (a QuickBooks account
//!   id is unique per company only): a transaction whose input declares `connection` belongs
//!   to the account of its connection, or, when the file has that account without a
//!   connection (`@1` rows), to that one; a transaction without a connection (raw provider
//!   records) to the account of its provider and id when a single connection has one.
//! - An account's later line replaces its earlier one (a later sync: new balance, new name);
//!   a line with `"_deleted": true` closes the account, a later line opens it again.
//! - `reconciled` is the outcome's: true when the record is in a matched pair (a rule of the
//!   ladder, or a whole reversal within its input), false when it is in review.
//! - Amounts are the reconciliation's (the input's `sign` applied: money into the account
//!   positive), in major units of the transaction's currency. A transaction in another
//!   currency than its account's carries its own `currency` member; the others do not.
//! - The documents and the unassigned output are data, written where the spec says; counts
//!   are what the terminal gets, never an account id, a name or a merchant.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Number, Value, json};
use sluice_compiler::spec::reconcile::{ReconcilePlan, StatementsPlan, minor_digits};

use super::reconcile::{Item, Outcome, Reason, decimal};
use crate::findings;

/// An account's key: its provider (`source`), its connection (`canonical/financial-account@2`
/// rows carry it; `None` for `@1` rows) and its id.
type AccountKey = (String, Option<String>, String);

/// One account, as its last line in the accounts file gives it.
#[derive(Clone, Debug)]
struct Account {
    id: String,
    source: String,
    connection: Option<String>,
    name: Value,
    kind: Value,
    balance: Value,
    /// Upper-cased ISO code, as the reconciliation reads transactions' currencies.
    currency: Option<String>,
    processed_at: Option<String>,
}

/// An accounts-file line that cannot be an account (RT173).
#[derive(Clone, Debug)]
struct UnreadAccount {
    file: String,
    line: u64,
    detail: &'static str,
}

/// What the accounts file held: open accounts in the order of their first line, the ids of
/// closed ones, and the lines that could not be read.
#[derive(Default)]
pub struct Accounts {
    order: Vec<AccountKey>,
    open: HashMap<AccountKey, Account>,
    closed: BTreeSet<AccountKey>,
    unread: Vec<UnreadAccount>,
}

fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Accounts {
    /// The key of a transaction's account, as the file knows it: with the transaction's
    /// connection; else, for a transaction with a connection, the account without one (`@1`
    /// rows); for one without (raw provider records, `@1` rows), the account of that provider
    /// and id when one connection alone has it (two would be a guess: none is taken).
    fn key_of(&self, source: &str, connection: Option<&str>, account: &str) -> AccountKey {
        let exact = (source.to_string(), connection.map(str::to_string), account.to_string());
        let known = |k: &AccountKey| self.open.contains_key(k) || self.closed.contains(k);
        if known(&exact) {
            return exact;
        }
        if connection.is_some() {
            let without = (source.to_string(), None, account.to_string());
            return if known(&without) { without } else { exact };
        }
        let mut of_any =
            self.order.iter().chain(&self.closed).filter(|(s, c, id)| s == source && c.is_some() && id == account);
        match (of_any.next(), of_any.next()) {
            (Some(one), None) => one.clone(),
            _ => exact,
        }
    }

    /// Reads the lines of an accounts file (its text; `file` as the spec writes it).
    pub fn read(&mut self, file: &str, body: &str) {
        for (n, line) in body.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let unread = |detail| UnreadAccount { file: file.to_string(), line: n as u64 + 1, detail };
            let Ok(Value::Object(row)) = serde_json::from_str::<Value>(line) else {
                self.unread.push(unread("the line is not a JSON object"));
                continue;
            };
            let Some(id) = scalar_text(row.get("id")) else {
                self.unread.push(unread("the row has no `id`"));
                continue;
            };
            let Some(source) = scalar_text(row.get("source")) else {
                self.unread.push(unread("the row has no `source`"));
                continue;
            };
            let connection = scalar_text(row.get("connection"));
            let key = (source.clone(), connection.clone(), id.clone());
            if row.get("_deleted") == Some(&Value::Bool(true)) {
                self.open.remove(&key);
                self.closed.insert(key);
                continue;
            }
            self.closed.remove(&key);
            if !self.order.contains(&key) {
                self.order.push(key.clone());
            }
            let field = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
            let account = Account {
                id,
                source,
                connection,
                name: field("name"),
                kind: field("type"),
                balance: field("balance"),
                currency: scalar_text(row.get("currency")).map(|c| c.to_ascii_uppercase()),
                processed_at: scalar_text(row.get("metadata").and_then(|m| m.get("processed_at"))),
            };
            self.open.insert(key, account);
        }
    }
}

/// How many of what went where; the terminal and the summary show these.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Documents written (open accounts).
    pub accounts: u64,
    /// Records of the transactions' input (lines that could be read).
    pub transactions_in: u64,
    /// Transactions listed in documents.
    pub listed: u64,
    /// Second copies of an id already listed in the same account's document.
    pub duplicate_copies: u64,
    /// Transactions listed in another currency than their account's.
    pub other_currency: u64,
    /// Transactions in the unassigned output, by code.
    pub account_unknown: u64,
    pub account_closed: u64,
    pub no_account: u64,
    /// Transactions whose provider is not known (no `source` value, no `default_source`).
    pub no_source: u64,
    /// Account lines that could not be read.
    pub unreadable_accounts: u64,
}

impl Counts {
    pub fn unassigned_transactions(&self) -> u64 {
        self.account_unknown + self.account_closed + self.no_account + self.no_source
    }

    /// `in = listed + duplicate copies + unassigned`.
    pub fn balanced(&self) -> bool {
        self.transactions_in == self.listed + self.duplicate_copies + self.unassigned_transactions()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "accounts": self.accounts,
            "transactions_in": self.transactions_in,
            "listed": self.listed,
            "duplicate_copies": self.duplicate_copies,
            "other_currency": self.other_currency,
            "unassigned": {
                "account_unknown": self.account_unknown,
                "account_closed": self.account_closed,
                "no_account": self.no_account,
                "no_source": self.no_source,
                "unreadable_accounts": self.unreadable_accounts,
            },
        })
    }
}

/// The two outputs (JSON Lines text) and their counts.
pub struct Statements {
    pub documents: String,
    pub unassigned: String,
    pub counts: Counts,
}

/// Where a transaction's record went in the reconciliation.
#[derive(Clone, Copy, Default)]
struct Fate {
    reconciled: bool,
    /// In review as `duplicate`: a second copy of an id.
    copy: bool,
    /// Counts in `reconciliation.duplicates` (`duplicate` or `possible_duplicate`).
    duplicate: bool,
}

/// A decimal text in major units as a JSON number (`-25.50` -> -25.5; JPY `1200` -> 1200).
fn amount_number(amount: i64, currency: &str) -> Value {
    if minor_digits(currency) == 0 {
        return json!(amount);
    }
    decimal(amount, currency).parse::<f64>().ok().and_then(Number::from_f64).map_or(Value::Null, Value::Number)
}

/// The later of two RFC 3339 timestamps (the text of the later one); unreadable ones lose.
fn later(a: Option<String>, b: Option<&String>) -> Option<String> {
    let ts = |s: &str| s.parse::<jiff::Timestamp>().ok();
    match (a, b) {
        (None, b) => b.filter(|b| ts(b).is_some()).cloned(),
        (Some(a), None) => Some(a),
        (Some(a), Some(b)) => match (ts(&a), ts(b)) {
            (Some(x), Some(y)) if y > x => Some(b.clone()),
            (None, Some(_)) => Some(b.clone()),
            _ => Some(a),
        },
    }
}

/// One transaction of a document (the brief's seven members, and `currency` when it differs
/// from the account's).
fn transaction(it: &Item, reconciled: bool, account_currency: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(it.id));
    m.insert("date".into(), json!(it.date.to_string()));
    m.insert("amount".into(), amount_number(it.amount, &it.currency));
    if account_currency != Some(it.currency.as_str()) {
        m.insert("currency".into(), json!(it.currency));
    }
    m.insert("merchant".into(), json!(it.merchant));
    m.insert("category".into(), json!(it.category.category));
    m.insert("pending".into(), json!(it.pending));
    m.insert("reconciled".into(), json!(reconciled));
    Value::Object(m)
}

/// The documents and the unassigned output of `st` over `outcome`.
pub fn build(plan: &ReconcilePlan, st: &StatementsPlan, outcome: &Outcome, accounts: &Accounts) -> Statements {
    let mut fate = vec![Fate::default(); outcome.items.len()];
    for p in &outcome.pairs {
        fate[p.a].reconciled = true;
        fate[p.b].reconciled = true;
    }
    for r in &outcome.review {
        if let Some(i) = r.item {
            fate[i].copy = r.reason == Reason::Duplicate;
            fate[i].duplicate = r.reason.counts_as_duplicate();
        }
    }
    let mut counts = Counts {
        accounts: accounts.order.iter().filter(|id| accounts.open.contains_key(*id)).count() as u64,
        unreadable_accounts: accounts.unread.len() as u64,
        ..Counts::default()
    };
    // Each open account's transactions (item indexes, reading order).
    let mut by_account: HashMap<AccountKey, Vec<usize>> = HashMap::new();
    let mut unassigned = String::new();
    let input = &plan.inputs[st.input];
    for (i, it) in outcome.items.iter().enumerate().filter(|(_, it)| it.role == st.input) {
        counts.transactions_in += 1;
        let key = match (&it.source, &it.account) {
            (Some(source), Some(account)) => Some(accounts.key_of(source, it.connection.as_deref(), account)),
            _ => None,
        };
        let (code, reason) = match (key, &it.account) {
            (Some(k), _) if accounts.open.contains_key(&k) => {
                by_account.entry(k).or_default().push(i);
                continue;
            }
            (Some(k), _) if accounts.closed.contains(&k) => {
                counts.account_closed += 1;
                (findings::STATEMENTS_ACCOUNT_UNKNOWN, "account_closed")
            }
            (Some(_), _) => {
                counts.account_unknown += 1;
                (findings::STATEMENTS_ACCOUNT_UNKNOWN, "account_unknown")
            }
            (None, None) => {
                counts.no_account += 1;
                (findings::STATEMENTS_NO_ACCOUNT, "no_account")
            }
            (None, Some(_)) => {
                counts.no_source += 1;
                (findings::STATEMENTS_NO_SOURCE, "no_source")
            }
        };
        let v = json!({
            "code": code,
            "reason": reason,
            "input": input.name,
            "id": it.id,
            "source": it.source,
            "account_id": it.account,
            "date": it.date.to_string(),
            "amount": decimal(it.amount, &it.currency),
            "currency": it.currency,
            "reconciled": fate[i].reconciled,
            "file": it.file,
            "line": it.line,
        });
        unassigned.push_str(&v.to_string());
        unassigned.push('\n');
    }
    for u in &accounts.unread {
        let v = json!({
            "code": findings::STATEMENTS_ACCOUNT_UNREADABLE,
            "reason": "unreadable_account",
            "detail": u.detail,
            "file": u.file,
            "line": u.line,
        });
        unassigned.push_str(&v.to_string());
        unassigned.push('\n');
    }
    let mut documents = String::new();
    for key in &accounts.order {
        let Some(account) = accounts.open.get(key) else { continue };
        let items = by_account.get(key).map(Vec::as_slice).unwrap_or_default();
        let (mut matched, mut unmatched, mut duplicates) = (0u64, 0u64, 0u64);
        let mut listed_ids: BTreeSet<&str> = BTreeSet::new();
        let mut transactions = Vec::new();
        let mut synced = account.processed_at.clone();
        for &i in items {
            let (it, f) = (&outcome.items[i], fate[i]);
            if f.reconciled {
                matched += 1;
            } else {
                unmatched += 1;
            }
            duplicates += u64::from(f.duplicate);
            synced = later(synced, it.processed_at.as_ref());
            // A second copy of an id already listed: the same transaction read twice.
            if f.copy && listed_ids.contains(it.id.as_str()) {
                counts.duplicate_copies += 1;
                continue;
            }
            listed_ids.insert(it.id.as_str());
            if account.currency.as_deref() != Some(it.currency.as_str()) {
                counts.other_currency += 1;
            }
            transactions.push(transaction(it, f.reconciled, account.currency.as_deref()));
        }
        counts.listed += transactions.len() as u64;
        let mut doc = json!({
            "metadata": {
                "source": account.source,
                "account_id": account.id,
                "sync_timestamp": synced,
                "transaction_count": transactions.len(),
            },
            "account": {
                "id": account.id,
                "name": account.name,
                "type": account.kind,
                "balance": account.balance,
                "currency": account.currency,
            },
            "transactions": transactions,
            "reconciliation": {"matched": matched, "unmatched": unmatched, "duplicates": duplicates},
        });
        // An `@2` account's connection: which company or login the document is of.
        if let (Some(c), Some(m)) = (&account.connection, doc.get_mut("metadata").and_then(Value::as_object_mut)) {
            m.insert("connection".into(), json!(c));
        }
        documents.push_str(&doc.to_string());
        documents.push('\n');
    }
    Statements { documents, unassigned, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_of_an_account_wins_and_a_deletion_closes_it_until_it_comes_back() {
        let mut a = Accounts::default();
        a.read(
            "accounts.jsonl",
            concat!(
                "{\"source\": \"plaid\", \"id\": \"a\", \"name\": \"Old\", \"currency\": \"usd\", \"metadata\": {\"processed_at\": \"2024-01-01T00:00:00Z\"}}\n",
                "{\"source\": \"plaid\", \"id\": \"b\", \"name\": \"B\"}\n",
                "\n",
                "{\"source\": \"plaid\", \"id\": \"a\", \"name\": \"New\"}\n",
                "{\"source\": \"plaid\", \"id\": \"b\", \"_deleted\": true}\n",
                "{\"source\": \"plaid\", \"id\": \"c\", \"_deleted\": true}\n",
                "{\"source\": \"plaid\", \"id\": \"c\", \"name\": \"C\"}\n",
                "[1]\n",
                "{\"source\": \"plaid\", \"name\": \"no id\"}\n",
                "{\"id\": \"d\", \"name\": \"no source\"}\n",
                "{\"source\": \"quickbooks\", \"id\": \"a\", \"name\": \"Other provider\"}\n",
            ),
        );
        let k = |s: &str, id: &str| (s.to_string(), None, id.to_string());
        assert_eq!(a.order, [k("plaid", "a"), k("plaid", "b"), k("plaid", "c"), k("quickbooks", "a")]);
        assert_eq!(a.open[&k("plaid", "a")].name, json!("New"));
        assert_eq!(a.open[&k("quickbooks", "a")].name, json!("Other provider"));
        let plaid_a = &a.open[&k("plaid", "a")];
        assert_eq!((plaid_a.currency.as_deref(), plaid_a.processed_at.as_deref()), (None, None));
        assert!(!a.open.contains_key(&k("plaid", "b")) && a.closed.contains(&k("plaid", "b")));
        assert!(a.open.contains_key(&k("plaid", "c")) && !a.closed.contains(&k("plaid", "c")));
        let lines: Vec<(u64, &str)> = a.unread.iter().map(|u| (u.line, u.detail)).collect();
        assert_eq!(
            lines,
            [(8, "the line is not a JSON object"), (9, "the row has no `id`"), (10, "the row has no `source`")]
        );
    }

    #[test]
    fn version_2_accounts_are_keyed_by_connection_too() {
        let mut a = Accounts::default();
        a.read(
            "accounts.jsonl",
            concat!(
                "{\"source\": \"quickbooks\", \"connection\": \"east\", \"id\": \"35\", \"name\": \"East checking\"}\n",
                "{\"source\": \"quickbooks\", \"connection\": \"west\", \"id\": \"35\", \"name\": \"West checking\"}\n",
                "{\"source\": \"plaid\", \"id\": \"acc1\", \"name\": \"A version 1 row\"}\n",
            ),
        );
        let k = |s: &str, c: Option<&str>, id: &str| (s.to_string(), c.map(str::to_string), id.to_string());
        assert_eq!(a.order.len(), 3);
        assert_eq!(a.key_of("quickbooks", Some("west"), "35"), k("quickbooks", Some("west"), "35"));
        assert_eq!(a.open[&a.key_of("quickbooks", Some("west"), "35")].name, json!("West checking"));
        // A connection the file does not know: no account; without a connection, two companies'
        // account `35` is a guess: none.
        assert!(!a.open.contains_key(&a.key_of("quickbooks", Some("north"), "35")));
        assert!(!a.open.contains_key(&a.key_of("quickbooks", None, "35")));
        // An `@1` accounts file (no connection) still holds the account of an `@2` transaction.
        assert_eq!(a.key_of("plaid", Some("bank"), "acc1"), k("plaid", None, "acc1"));
        // A transaction without a connection (raw Plaid records): the account of its provider
        // and id when one connection alone has it.
        a.read("more.jsonl", "{\"source\": \"plaid\", \"connection\": \"plaid\", \"id\": \"acc2\", \"name\": \"B\"}\n");
        assert_eq!(a.key_of("plaid", None, "acc2"), k("plaid", Some("plaid"), "acc2"));
    }

    #[test]
    fn the_sync_timestamp_is_the_latest_readable_one() {
        let s = |t: &str| Some(t.to_string());
        assert_eq!(
            later(s("2024-01-02T00:00:00Z"), s("2024-01-01T23:00:00-02:00").as_ref()),
            s("2024-01-01T23:00:00-02:00")
        );
        assert_eq!(later(s("2024-01-02T00:00:00Z"), s("2024-01-01T00:00:00Z").as_ref()), s("2024-01-02T00:00:00Z"));
        assert_eq!(later(None, s("yesterday").as_ref()), None);
        assert_eq!(later(s("2024-01-02T00:00:00Z"), s("yesterday").as_ref()), s("2024-01-02T00:00:00Z"));
        assert_eq!(later(None, None), None);
    }

    #[test]
    fn amounts_are_numbers_in_major_units() {
        assert_eq!(amount_number(-2550, "USD").to_string(), "-25.5");
        assert_eq!(amount_number(1200, "JPY").to_string(), "1200");
        assert_eq!(amount_number(1234, "KWD").to_string(), "1.234");
    }
}
