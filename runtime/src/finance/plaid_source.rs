//! The `plaid` source: Plaid Items' accounts and transactions into the pipeline, on the sync
//! driver the `stripe`, `quickbooks` and `fhir.rest` sources share ([`crate::sync_source`]).
//!
//! ```text
//! sync thread (per source), Item by Item:
//!   accounts:      POST /accounts/get ─▶ one record per account (+ a deletion per account gone)
//!   transactions:  POST /transactions/sync from the saved cursor, every page (restarted whole
//!                  on TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION)
//!      each change ─RawInput (completion)─▶ executor (source step, stages, sinks)
//!   once every record of the table is durable (completions): save the table's cursor
//! ```
//!
//! Invariants:
//! - Nothing lost: a table's cursor (the `/transactions/sync` `next_cursor`, or the account ids
//!   delivered) is saved in the state store only after every record it covers is durable in
//!   the sinks or the DLQ. A run that stops early leaves the cursor where it was: the next run
//!   reads those changes again, and a sink keyed by `transaction_id` ends up with each once.
//! - Removed transactions, and accounts Plaid no longer returns (RT167), are records marked
//!   deleted in their envelope ([`crate::record::BusMeta::deleted`]), as the other cdc sources
//!   mark theirs: their payload holds the ids only. A pending transaction that posts is removed
//!   by Plaid, so it leaves a table keyed by `transaction_id` when its posted one arrives.
//! - Every item becomes one record: the source step ([`decode`]) rejects to the DLQ (RT164,
//!   reason naming the object and the field, never a value) what cannot be a record.
//! - No secret and no account data in logs or errors: messages name the source, the Item's
//!   name, counts and Plaid's error codes; the access token and the app's secret stay in
//!   [`Credentials`].
//! - Each record's envelope: file `plaid/<object>`, key = the object's id, headers
//!   `plaid.object`, `plaid.item`, `plaid.change` (`added`, `modified`, `removed`, or
//!   `current` for an account) and, for a posted transaction, `plaid.replaces` (the pending one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_compiler::plaid::{PlaidItemPlan, PlaidPlan};
use sluice_compiler::plan::ComponentKind;

use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::{RawInput, Totals};
use crate::finance::plaid::{ChangeKind, Credentials, Plaid};
use crate::findings;
use crate::record::{BusMeta, Doc};
use crate::secrets;
use crate::state::Store;
use crate::sync_source::{self, Pending, SyncJob};
use crate::time::Clock;

/// The bus header naming a record's object.
pub const OBJECT_HEADER: &str = "plaid.object";

/// Whether the plan's sources are `plaid` syncs.
pub fn syncs(plan: &sluice_compiler::plan::Plan) -> bool {
    plan.components
        .iter()
        .any(|c| matches!(&c.kind, ComponentKind::Source(s) if s.plaid.is_some() && s.kind == "plaid"))
}

/// A Plaid object read into a record.
#[derive(Debug)]
pub struct Decoded {
    pub id: String,
    /// The object (`transaction`).
    pub object: String,
    pub doc: Doc,
}

/// The id field of an object.
fn id_field(object: &str) -> &'static str {
    if object == "account" { "account_id" } else { "transaction_id" }
}

/// The source step: one object as read, or why it cannot be a record (RT164; the reason names
/// the field, never a value). `named`: the object its sync read it as (none for a line fed by
/// `sluice test`); `objects`: what the source emits.
pub fn decode(bytes: &[u8], named: Option<&str>, objects: &[String]) -> Result<Decoded, Rejection> {
    let reject = |path: Option<&str>, why: &str| Rejection::single(findings::PLAID_RECORD_REJECTED, path, why);
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| reject(None, "the object is not a JSON object"))?;
    if !v.is_object() {
        return Err(reject(None, "the object is not a JSON object"));
    }
    let object = match named {
        Some(n) => n.to_string(),
        None if objects.len() == 1 => objects[0].clone(),
        // A line of a source reading both tables: a transaction has a `transaction_id`.
        None if v.get("transaction_id").is_some() => "transaction".to_string(),
        None => "account".to_string(),
    };
    if !objects.contains(&object) {
        return Err(reject(None, &format!("a `{object}` is not an object the source reads")));
    }
    let field = id_field(&object);
    let Some(id) = v.get(field).and_then(|i| i.as_str()).filter(|i| !i.is_empty()) else {
        return Err(reject(Some(field), &format!("a `{object}` has no string `{field}`")));
    };
    Ok(Decoded { id: id.to_string(), object, doc: Doc::from_json(&v) })
}

/// One source's sync: where it reads and where it sends records.
struct Sync {
    source: usize,
    name: Arc<str>,
    plan: PlaidPlan,
    /// Per Item, in plan order.
    credentials: Vec<Credentials>,
    /// Where the Items' request budgets are shared ([`crate::finance::api::budget`]).
    state: Option<sluice_compiler::plan::StateTarget>,
    tx: crossbeam_channel::Sender<RawInput>,
}

/// Runs the pipeline fed by its `plaid` sources until every Item of each is synced; returns
/// the totals. A table whose sync fails keeps its cursor; the error is returned once the
/// records handed on are durable.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    progress: Option<Arc<crate::progress::Progress>>,
) -> Result<Totals, RunError> {
    let store = sync_source::open_store(c, "plaid")?;
    let mut jobs: Vec<SyncJob> = Vec::new();
    let mut feeds = Vec::new();
    for (i, comp) in c.plan.components.iter().enumerate() {
        let ComponentKind::Source(s) = &comp.kind else { continue };
        let Some(plan) = s.plaid.as_deref() else { continue };
        // Every secret is resolved before anything is fetched: a missing one stops the run here.
        let credentials = plan.items.iter().map(|item| credentials(c.plan, plan, item)).collect::<Result<_, _>>()?;
        let (tx, rx) = sync_source::feed();
        let state = c.plan.state.clone();
        let sync = Sync { source: i, name: Arc::clone(&c.names[i]), plan: plan.clone(), credentials, state, tx };
        jobs.push((
            Arc::clone(&sync.name),
            Box::new(move |store, pipeline, at, gone| run_sync(sync, store, pipeline, at, gone)),
        ));
        feeds.push(rx);
    }
    sync_source::drive(c, clock, run_id, threads, progress, store, feeds, jobs, "plaid")
}

/// The app's keys (from the source's connection) and the Item's access token.
fn credentials(
    plan: &sluice_compiler::plan::Plan,
    p: &PlaidPlan,
    item: &PlaidItemPlan,
) -> Result<Credentials, RunError> {
    let Some(conn) = plan.connections.iter().find(|c| c.name == p.connection) else {
        return Err(RunError::new(
            findings::CONNECTION_UNKNOWN,
            format!("pipeline `{}` declares no connection `{}`", plan.pipeline, p.connection),
        ));
    };
    let what = format!("connection `{}`", conn.name);
    let missing =
        |k: &str| RunError::new(findings::PLAN_INVALID, format!("{what} has no `{k}` (the compiler checks this)"));
    let client_id = conn.client_id.as_deref().ok_or_else(|| missing("client_id"))?;
    let secret = conn.client_secret.as_deref().ok_or_else(|| missing("client_secret"))?;
    Ok(Credentials {
        client_id: secrets::resolve(client_id, &format!("`client_id` of {what}"))?,
        secret: secrets::resolve(secret, &format!("`client_secret` of {what}"))?,
        access_token: secrets::resolve(&item.access_token, &format!("`access_token` of Plaid Item `{}`", item.name))?,
    })
}

/// The state-store key of an Item's table cursor: per pipeline, source, Item and table (the
/// cursor table is shared with the other sync sources, whose keys never start with `plaid:`).
fn cursor_key(item: &str, table: &str) -> String {
    format!("plaid:{item}:{table}")
}

/// One source's Items, one after the other, each table in the order written.
fn run_sync(sync: Sync, store: &Store, pipeline: &str, at: &str, gone: &AtomicBool) -> Result<(), RunError> {
    for (item, creds) in sync.plan.items.iter().zip(&sync.credentials) {
        let label = format!("{}/{}", sync.name, item.name);
        let mut client = Plaid::new(&sync.plan.base_url, creds, sync.plan.rate, &label, sync.state.as_ref())?;
        for table in &sync.plan.tables {
            let key = cursor_key(&item.name, table);
            let pending = Arc::new(Pending::default());
            let mut out = Out { sync: &sync, item: &item.name, pending: &pending, index: 0, gone };
            if table == "accounts" {
                let before: Option<Vec<String>> = sync_source::load_cursor(store, pipeline, &sync.name, &key)?;
                let mut counts = crate::finance::api::Counts::default();
                let fetched = client.accounts(&mut counts);
                let ids = fetched.and_then(|accounts| out.accounts(accounts, before.unwrap_or_default()));
                let drained = pending.drain(gone);
                let ids = ids?;
                if !drained {
                    return Err(stopped(&sync, &item.name, table));
                }
                sync_source::save_cursor(store, pipeline, &sync.name, &key, &ids, at)?;
                tracing::info!(component = %sync.name, item = %item.name, table = %table, fetched = ids.len(), requests = counts.requests, retries = counts.retries, "plaid accounts synced");
                continue;
            }
            let cursor: Option<String> = sync_source::load_cursor(store, pipeline, &sync.name, &key)?;
            let synced = client.sync(cursor.as_deref().filter(|c| !c.is_empty()))?;
            let handed = synced.changes.iter().try_for_each(|change| {
                let replaces = change.replaces.as_deref().map(|r| r.as_bytes().to_vec());
                out.hand_on(
                    "transaction",
                    change.kind.as_str(),
                    &change.transaction,
                    change.kind == ChangeKind::Removed,
                    replaces,
                )
            });
            let drained = pending.drain(gone);
            handed?;
            if !drained {
                return Err(stopped(&sync, &item.name, table));
            }
            if !synced.warnings.is_empty() {
                tracing::warn!(
                    component = %sync.name,
                    code = findings::PLAID_PARTIAL_RECORD,
                    item = %item.name,
                    count = synced.warnings.len(),
                    "plaid transactions without merchant_name or category, or with an odd amount, were read"
                );
            }
            sync_source::save_cursor(store, pipeline, &sync.name, &key, &synced.next_cursor, at)?;
            let removed = synced.changes.iter().filter(|c| c.kind == ChangeKind::Removed).count();
            tracing::info!(
                component = %sync.name,
                item = %item.name,
                table = %table,
                fetched = out.index,
                removed,
                restarts = synced.restarts,
                requests = synced.counts.requests,
                retries = synced.counts.retries,
                "plaid transactions synced"
            );
        }
    }
    Ok(())
}

/// Where one table's records go.
struct Out<'a> {
    sync: &'a Sync,
    item: &'a str,
    pending: &'a Arc<Pending>,
    index: u64,
    gone: &'a AtomicBool,
}

impl Out<'_> {
    /// The Item's accounts, then a deletion for each account delivered before and gone now
    /// (RT167); returns the ids delivered, the table's next cursor.
    fn accounts(&mut self, accounts: Vec<serde_json::Value>, before: Vec<String>) -> Result<Vec<String>, RunError> {
        let mut ids = Vec::new();
        for account in &accounts {
            if let Some(id) = account.get("account_id").and_then(|i| i.as_str()) {
                ids.push(id.to_string());
            }
            self.hand_on("account", "current", account, false, None)?;
        }
        let gone: Vec<&String> = before.iter().filter(|b| !ids.contains(b)).collect();
        if !gone.is_empty() {
            tracing::warn!(
                component = %self.sync.name,
                code = findings::PLAID_ACCOUNT_GONE,
                item = %self.item,
                count = gone.len(),
                "plaid accounts delivered before are no longer returned (closed, or given a new account_id): written as deletions"
            );
        }
        for id in gone {
            self.hand_on("account", "removed", &serde_json::json!({ "account_id": id }), true, None)?;
        }
        Ok(ids)
    }

    /// Hands one object on to the executor; it counts as pending until durable.
    fn hand_on(
        &mut self,
        object: &str,
        change: &str,
        value: &serde_json::Value,
        deleted: bool,
        replaces: Option<Vec<u8>>,
    ) -> Result<(), RunError> {
        let table = if object == "account" { "accounts" } else { "transactions" };
        if self.gone.load(Ordering::Relaxed) {
            return Err(stopped(self.sync, self.item, table));
        }
        let id = value.get(id_field(object)).and_then(|i| i.as_str()).map(|i| i.as_bytes().to_vec());
        let mut headers = vec![
            (OBJECT_HEADER.into(), Some(object.as_bytes().to_vec())),
            ("plaid.item".into(), Some(self.item.as_bytes().to_vec())),
            ("plaid.change".into(), Some(change.as_bytes().to_vec())),
        ];
        if replaces.is_some() {
            headers.push(("plaid.replaces".into(), replaces));
        }
        let raw = RawInput {
            source: self.sync.source,
            file: Arc::from(format!("plaid/{object}").as_str()),
            offset: 0,
            index: self.index,
            seq: 0,
            bytes: serde_json::to_vec(value).unwrap_or_default(),
            problem: None,
            completion: None,
            bus: Some(Arc::new(BusMeta { key: id, headers, deleted })),
        };
        self.index += 1;
        if sync_source::hand_on(&self.sync.tx, self.pending, raw) {
            Ok(())
        } else {
            Err(stopped(self.sync, self.item, table))
        }
    }
}

fn stopped(sync: &Sync, item: &str, table: &str) -> RunError {
    RunError::new(
        findings::PLAID_SYNC_STOPPED,
        format!("`{}`: the run stopped before Item `{item}`'s {table} were durable; its cursor was kept", sync.name),
    )
    .with_help("run again: the changes are read again from the saved cursor, and a sink keyed by id gets nothing twice")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_that_cannot_be_records_are_rejected_naming_the_field_only() {
        let both = vec!["account".to_string(), "transaction".to_string()];
        let ok = decode(br#"{"transaction_id":"t1","amount":1.5}"#, Some("transaction"), &both).unwrap();
        assert_eq!((ok.id.as_str(), ok.object.as_str()), ("t1", "transaction"));
        assert_eq!(decode(br#"{"account_id":"a1"}"#, None, &both).unwrap().object, "account");
        let one = vec!["transaction".to_string()];
        for (bytes, field) in [
            (&b"[1]"[..], None),
            (b"{\"transaction_id\":", None),
            (br#"{"account_owner":"Jo Bloggs","amount":3}"#, Some("transaction_id")),
            (br#"{"transaction_id":7}"#, Some("transaction_id")),
        ] {
            let r = decode(bytes, None, &one).unwrap_err();
            assert_eq!(r.code, findings::PLAID_RECORD_REJECTED);
            assert_eq!(r.findings[0].path.as_deref(), field);
            assert!(!r.reason.contains("Jo Bloggs"));
        }
        assert!(decode(br#"{"account_id":"a1"}"#, Some("account"), &one).is_err());
    }
}
