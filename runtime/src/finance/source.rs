//! The `stripe` source: incremental sync of a Stripe account's object lists into the pipeline.
//!
//! ```text
//! sync thread (per source), list by list:
//!   GET /v1/<list>?limit=100&created[gte]={cursor - lookback}[&starting_after=...] ─▶ page ─▶ ...
//!      each new object ─RawInput (completion)─▶ executor (Stripe source step, stages, sinks)
//!   once every record of the list is durable (completions): save the list's cursor
//! ```
//!
//! Invariants:
//! - Nothing lost: a list's cursor ([`crate::finance::stripe::Cursor`]) is saved in the state
//!   store only after every record its sync handed on is durable in the sinks or the DLQ (each
//!   record's completion). A run that stops early (an error, `kill -9`) leaves the cursor where
//!   it was: the next run reads those objects again, and an idempotent sink (a `postgres`
//!   upsert by id) ends up with each object once.
//! - Nothing twice within the lookback window: the client asks from `cursor - lookback` and
//!   skips the ids it delivered there ([`crate::finance::stripe`]).
//! - Memory holds one page: pages are handed on as they are read
//!   ([`crate::finance::stripe::Stripe::sync_pages`]), the channel to the executor is bounded.
//! - Every item of a page becomes one record: the source step ([`decode`]) rejects to the DLQ
//!   (RT152, reason naming the list and the field, never a value) what cannot be a record, so
//!   a run balances: in = delivered + DLQ + filtered.
//! - No key, token or customer data in logs or errors: messages name the source, the list,
//!   counts and HTTP statuses; the key is the connection's, sent only in a header.
//! - Each record's envelope: file `stripe/<list>`, key = the object id, headers
//!   `stripe.list` and `stripe.object`, for sinks that key on them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_compiler::plan::ComponentKind;
use sluice_compiler::stripe::{StripeObjectPlan, StripePlan};

use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::{RawInput, Totals};
use crate::finance::stripe::{Cursor, Stripe};
use crate::findings;
use crate::oauth::Connection;
use crate::record::{BusMeta, Doc};
use crate::state::Store;
use crate::sync_source::{self, Pending, SyncJob};
use crate::time::Clock;

/// Whether the plan's sources are `stripe` syncs (not a `stripe` source `sluice test` turned
/// into a file of objects).
pub fn syncs(plan: &sluice_compiler::plan::Plan) -> bool {
    plan.components
        .iter()
        .any(|c| matches!(&c.kind, ComponentKind::Source(s) if s.stripe.is_some() && s.kind == "stripe"))
}

/// The objects of a file, one JSON object a line (what `sluice test` feeds a `stripe` source):
/// (offset, index, bytes); empty lines are skipped.
pub fn lines(bytes: Box<dyn std::io::Read + Send>) -> impl Iterator<Item = std::io::Result<(u64, usize, Vec<u8>)>> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(bytes);
    let (mut offset, mut index) = (0u64, 0usize);
    std::iter::from_fn(move || {
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return None,
                Ok(n) => {
                    let at = offset;
                    offset += n as u64;
                    let text = line.trim_ascii().to_vec();
                    if text.is_empty() {
                        continue;
                    }
                    index += 1;
                    return Some(Ok((at, index - 1, text)));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    })
}

/// A Stripe object read into a record.
#[derive(Debug)]
pub struct Decoded {
    pub id: String,
    /// The object type (`charge`).
    pub object: String,
    pub doc: Doc,
}

/// The source step: one item of a list of `object`s (`charge`) as read, or why it cannot be a
/// record (RT152; the reason names the field, never a value).
pub fn decode(bytes: &[u8], lists: &[StripeObjectPlan]) -> Result<Decoded, Rejection> {
    let reject = |path: Option<&str>, why: &str| Rejection::single(findings::STRIPE_OBJECT_REJECTED, path, why);
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| reject(None, "the list item is not a JSON object"))?;
    let Some(obj) = v.as_object() else { return Err(reject(None, "the list item is not a JSON object")) };
    let Some(kind) = obj.get("object").and_then(|o| o.as_str()) else {
        return Err(reject(Some("object"), "the list item has no `object` type"));
    };
    if !lists.iter().any(|l| l.object == kind) {
        return Err(reject(Some("object"), "the list item's `object` type is not the type its list holds"));
    }
    let Some(id) = obj.get("id").and_then(|i| i.as_str()).filter(|i| !i.is_empty()) else {
        return Err(reject(Some("id"), &format!("a `{kind}` has no `id`")));
    };
    if !obj.get("created").is_some_and(|c| c.is_i64()) {
        return Err(reject(Some("created"), &format!("a `{kind}`'s `created` is not Unix seconds")));
    }
    if obj.get("amount").is_some_and(|a| !a.is_i64() && !a.is_null()) {
        return Err(reject(Some("amount"), &format!("a `{kind}`'s `amount` is not a whole number of minor units")));
    }
    Ok(Decoded { id: id.to_string(), object: kind.to_string(), doc: Doc::from_json(&v) })
}

/// One source's sync: where it reads and where it sends records.
struct Sync {
    source: usize,
    name: Arc<str>,
    plan: StripePlan,
    connection: Connection,
    /// Where the account's request budget is shared ([`crate::finance::api::budget`]).
    state: Option<sluice_compiler::plan::StateTarget>,
    tx: crossbeam_channel::Sender<RawInput>,
}

/// Runs the pipeline fed by its `stripe` sources until every list of each is synced; returns
/// the totals. A list whose sync fails keeps its cursor; the error is returned once the
/// records handed on are durable.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    progress: Option<Arc<crate::progress::Progress>>,
) -> Result<Totals, RunError> {
    let store = sync_source::open_store(c, "stripe")?;
    let mut syncs = Vec::new();
    let mut feeds = Vec::new();
    for (i, comp) in c.plan.components.iter().enumerate() {
        let ComponentKind::Source(s) = &comp.kind else { continue };
        let Some(plan) = s.stripe.as_deref() else { continue };
        let connection = Connection::open(c.plan, &plan.connection)?;
        let (tx, rx) = sync_source::feed();
        let state = c.plan.state.clone();
        syncs.push(Sync { source: i, name: Arc::clone(&c.names[i]), plan: plan.clone(), connection, state, tx });
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
    sync_source::drive(c, clock, run_id, threads, progress, store, feeds, jobs, "stripe")
}

/// The state-store key of a list's cursor: per pipeline, source and list (the cursor table is
/// shared with `fhir.rest` sources, whose tables never start with `stripe:`).
fn cursor_key(list: &str) -> String {
    format!("stripe:{list}")
}

/// One source's lists, one after the other.
fn run_sync(sync: Sync, store: &Store, pipeline: &str, at: &str, gone: &AtomicBool) -> Result<(), RunError> {
    let mut client = Stripe::new(&sync.plan.base_url, &sync.connection, sync.plan.rate, sync.state.as_ref())?;
    let lookback = i64::try_from(sync.plan.lookback_s).unwrap_or(i64::MAX);
    for list in &sync.plan.objects {
        let key = cursor_key(&list.list);
        let cursor: Option<Cursor> = sync_source::load_cursor(store, pipeline, &sync.name, &key)?;
        let pending = Arc::new(Pending::default());
        let file: Arc<str> = Arc::from(format!("stripe/{}", list.list).as_str());
        let mut index = 0u64;
        let synced = client.sync_pages(&list.list, cursor.as_ref(), lookback, &mut |page| {
            for obj in page {
                if gone.load(Ordering::Relaxed) {
                    return Err(stopped(&sync, list));
                }
                let id = obj.get("id").and_then(|i| i.as_str()).map(|i| i.as_bytes().to_vec());
                let bytes = serde_json::to_vec(&obj).unwrap_or_default();
                hand_on(&sync, list, &file, index, bytes, id, &pending)?;
                index += 1;
            }
            Ok(())
        });
        // What was handed on becomes durable either way; the cursor moves only on success.
        let drained = pending.drain(gone);
        let synced = synced?;
        if !drained {
            return Err(stopped(&sync, list));
        }
        // The client's RT151 messages name object types and fields; the log says the list.
        if !synced.warnings.is_empty() {
            tracing::warn!(
                component = %sync.name,
                code = findings::STRIPE_PARTIAL_RECORD,
                table = %list.list,
                "stripe objects without id or created, or with an odd amount, were read"
            );
        }
        sync_source::save_cursor(store, pipeline, &sync.name, &key, &synced.cursor, at)?;
        tracing::info!(
            component = %sync.name,
            table = %list.list,
            fetched = index,
            skipped = synced.skipped,
            requests = synced.requests,
            retries = synced.retries,
            "stripe list synced"
        );
    }
    Ok(())
}

/// Hands one object on to the executor; it counts as pending until durable.
fn hand_on(
    sync: &Sync,
    list: &StripeObjectPlan,
    file: &Arc<str>,
    index: u64,
    bytes: Vec<u8>,
    id: Option<Vec<u8>>,
    pending: &Arc<Pending>,
) -> Result<(), RunError> {
    let bus = BusMeta {
        key: id,
        headers: vec![
            ("stripe.list".into(), Some(list.list.as_bytes().to_vec())),
            ("stripe.object".into(), Some(list.object.as_bytes().to_vec())),
        ],
        deleted: false,
    };
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
    if sync_source::hand_on(&sync.tx, pending, raw) { Ok(()) } else { Err(stopped(sync, list)) }
}

fn stopped(sync: &Sync, list: &StripeObjectPlan) -> RunError {
    RunError::new(
        findings::STRIPE_SYNC_STOPPED,
        format!("`{}`: the run stopped before list `{}` was durable; its cursor was kept", sync.name, list.list),
    )
    .with_help("run again: the list is read again from its saved cursor, and an idempotent sink gets nothing twice")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lists() -> Vec<StripeObjectPlan> {
        vec![StripeObjectPlan { list: "charges".into(), object: "charge".into() }]
    }

    #[test]
    fn items_that_cannot_be_records_are_rejected_naming_the_field_only() {
        let ok = decode(br#"{"id":"ch_1","object":"charge","created":1,"amount":100}"#, &lists()).unwrap();
        assert_eq!((ok.id.as_str(), ok.object.as_str()), ("ch_1", "charge"));
        for (bytes, field) in [
            (&b"[1]"[..], None),
            (b"{\"id\":", None),
            (br#"{"id":"x","object":"refund","created":1}"#, Some("object")),
            (br#"{"object":"charge","created":1,"billing_details":{"email":"jo@example.org"}}"#, Some("id")),
            (br#"{"id":"x","object":"charge","created":"yesterday"}"#, Some("created")),
            (br#"{"id":"x","object":"charge","created":1,"amount":10.5}"#, Some("amount")),
        ] {
            let r = decode(bytes, &lists()).unwrap_err();
            assert_eq!(r.code, findings::STRIPE_OBJECT_REJECTED);
            assert_eq!(r.findings[0].path.as_deref(), field);
            assert!(!r.reason.contains("jo@example.org"));
        }
    }
}
