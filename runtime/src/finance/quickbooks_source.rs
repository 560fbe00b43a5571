//! The `quickbooks` source: incremental sync of a QuickBooks Online company's entities into
//! the pipeline, on the sync driver the `stripe` and `fhir.rest` sources share
//! ([`crate::sync_source`]).
//!
//! ```text
//! sync thread (per source), entity by entity:
//!   first run:   GET /v3/company/{realm}/query?query=SELECT * FROM E ... MAXRESULTS m ─▶ next page
//!                WHERE MetaData.LastUpdatedTime >= {newest read} ─▶ ... (crate::finance::quickbooks)
//!   later runs:  GET /v3/company/{realm}/cdc?entities=E&changedSince={cursor - lookback}
//!      each new entity (or deletion) ─RawInput (completion)─▶ executor (source step, stages, sinks)
//!   once every record of the entity is durable (completions): save the entity's cursor
//! ```
//!
//! Invariants:
//! - Nothing lost: an entity's cursor ([`crate::finance::quickbooks::Cursor`]) is saved in the
//!   state store only after every record its sync handed on is durable in the sinks or the DLQ.
//!   A run that stops early leaves the cursor where it was: the next run reads those entities
//!   again, and an idempotent sink (a `postgres` upsert by id) ends up with each once.
//! - Nothing twice within the lookback window: entities already delivered with the same `Id`
//!   and `SyncToken` are skipped ([`crate::finance::quickbooks`]).
//! - Deletions (CDC `status: Deleted`) are records marked deleted in their envelope
//!   ([`crate::record::BusMeta::deleted`]), as `fhir.rest` marks its: their payload is what
//!   QuickBooks sent (`Id`, `status`, `MetaData`), no data of the deleted entity.
//! - Every item becomes one record: the source step ([`decode`]) rejects to the DLQ (RT156,
//!   reason naming the entity and the field, never a value) what cannot be a record.
//! - No token and no customer data in logs or errors: messages name the source, the entity,
//!   counts and HTTP statuses.
//! - Each record's envelope: file `quickbooks/<Entity>`, key = the entity's `Id`, headers
//!   `quickbooks.entity`, `quickbooks.realm` and `quickbooks.sync_token`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_compiler::plan::ComponentKind;
use sluice_compiler::quickbooks::QuickBooksPlan;

use crate::compile::Compiled;
use crate::dlq::Rejection;
use crate::error::RunError;
use crate::executor::{RawInput, Totals};
use crate::finance::quickbooks::{Cursor, Item, QuickBooks, RealmLimit};
use crate::findings;
use crate::oauth::Connection;
use crate::record::{BusMeta, Doc};
use crate::state::Store;
use crate::sync_source::{self, Pending, SyncJob};
use crate::time::Clock;

/// The bus header naming a record's entity.
pub const ENTITY_HEADER: &str = "quickbooks.entity";

/// Whether the plan's sources are `quickbooks` syncs.
pub fn syncs(plan: &sluice_compiler::plan::Plan) -> bool {
    plan.components
        .iter()
        .any(|c| matches!(&c.kind, ComponentKind::Source(s) if s.quickbooks.is_some() && s.kind == "quickbooks"))
}

/// A QuickBooks entity read into a record.
#[derive(Debug)]
pub struct Decoded {
    pub id: String,
    /// The entity (`Purchase`).
    pub entity: String,
    pub doc: Doc,
}

/// The source step: one entity as read, or why it cannot be a record (RT156; the reason names
/// the field, never a value). `named`: the entity its sync read it as (none for a line fed by
/// `sluice test`); `entities`: what the source reads.
pub fn decode(bytes: &[u8], named: Option<&str>, entities: &[String]) -> Result<Decoded, Rejection> {
    let reject = |path: Option<&str>, why: &str| Rejection::single(findings::QUICKBOOKS_ENTITY_REJECTED, path, why);
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| reject(None, "the entity is not a JSON object"))?;
    let Some(obj) = v.as_object() else { return Err(reject(None, "the entity is not a JSON object")) };
    // A line may be wrapped as QuickBooks' read endpoint answers: `{"Purchase": {...}}`.
    let wrapped = obj.iter().filter(|(k, _)| *k != "time").collect::<Vec<_>>();
    let (entity, body) = match (named, wrapped.as_slice()) {
        (Some(n), _) => (n.to_string(), &v),
        (None, [(k, inner)]) if inner.is_object() && entities.iter().any(|e| e == *k) => ((*k).clone(), *inner),
        (None, _) if entities.len() == 1 => (entities[0].clone(), &v),
        (None, _) => {
            return Err(reject(
                None,
                "the source reads several entities and the line does not say which: wrap it as `{\"Purchase\": {...}}`",
            ));
        }
    };
    if !entities.contains(&entity) {
        return Err(reject(None, &format!("a `{entity}` is not an entity the source reads")));
    }
    let Some(id) = body.get("Id").and_then(|i| i.as_str()).filter(|i| !i.is_empty()) else {
        return Err(reject(Some("Id"), &format!("a `{entity}` has no string `Id`")));
    };
    Ok(Decoded { id: id.to_string(), entity, doc: Doc::from_json(body) })
}

/// One source's sync: where it reads and where it sends records.
struct Sync {
    source: usize,
    name: Arc<str>,
    plan: QuickBooksPlan,
    connection: Connection,
    /// The company's request budget, shared with the other sources reading it.
    limit: Arc<RealmLimit>,
    tx: crossbeam_channel::Sender<RawInput>,
}

/// Runs the pipeline fed by its `quickbooks` sources until every entity of each is synced;
/// returns the totals. An entity whose sync fails keeps its cursor; the error is returned once
/// the records handed on are durable.
pub fn serve(
    c: &Compiled<'_>,
    clock: &Clock,
    run_id: &str,
    threads: Option<usize>,
    progress: Option<Arc<crate::progress::Progress>>,
) -> Result<Totals, RunError> {
    let store = sync_source::open_store(c, "quickbooks")?;
    let plans: Vec<(usize, &QuickBooksPlan)> = c
        .plan
        .components
        .iter()
        .enumerate()
        .filter_map(|(i, comp)| match &comp.kind {
            ComponentKind::Source(s) => s.quickbooks.as_deref().map(|p| (i, p)),
            _ => None,
        })
        .collect();
    // One budget per company: QuickBooks counts requests per realm, whichever source sends
    // them. Its rate is the lowest any of those sources asks for.
    let mut limits: std::collections::BTreeMap<&str, Arc<RealmLimit>> = std::collections::BTreeMap::new();
    for (_, p) in &plans {
        let published = sluice_compiler::quickbooks::PUBLISHED_RATE;
        let slowest = plans
            .iter()
            .filter(|(_, q)| q.realm_id == p.realm_id)
            .map(|(_, q)| q.rate.unwrap_or(published))
            .min_by(|a, b| (u128::from(a.0) * u128::from(b.1)).cmp(&(u128::from(b.0) * u128::from(a.1))))
            .unwrap_or(published);
        if !limits.contains_key(p.realm_id.as_str()) {
            let limit = RealmLimit::new(&p.realm_id, slowest, c.plan.state.as_ref())?;
            limits.insert(p.realm_id.as_str(), Arc::new(limit));
        }
    }
    let mut jobs: Vec<SyncJob> = Vec::new();
    let mut feeds = Vec::new();
    for (i, plan) in plans.iter().copied() {
        let connection = Connection::open(c.plan, &plan.connection)?;
        let limit = Arc::clone(&limits[plan.realm_id.as_str()]);
        let (tx, rx) = sync_source::feed();
        let sync = Sync { source: i, name: Arc::clone(&c.names[i]), plan: plan.clone(), connection, limit, tx };
        jobs.push((
            Arc::clone(&sync.name),
            Box::new(move |store, pipeline, at, gone| run_sync(sync, store, pipeline, at, gone)),
        ));
        feeds.push(rx);
    }
    sync_source::drive(c, clock, run_id, threads, progress, store, feeds, jobs, "quickbooks")
}

/// The state-store key of an entity's cursor: per pipeline, source and entity (the cursor
/// table is shared with `fhir.rest` and `stripe` sources, whose keys never start with
/// `quickbooks:`). The company is part of it: a source pointed at another company starts over.
fn cursor_key(realm: &str, entity: &str) -> String {
    format!("quickbooks:{realm}:{entity}")
}

/// One source's entities, one after the other.
fn run_sync(sync: Sync, store: &Store, pipeline: &str, at: &str, gone: &AtomicBool) -> Result<(), RunError> {
    let mut client = QuickBooks::new(&sync.plan, &sync.connection, Arc::clone(&sync.limit))?;
    let lookback = i64::try_from(sync.plan.lookback_s).unwrap_or(i64::MAX);
    let now = crate::finance::quickbooks::parse_time(at).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    });
    for entity in &sync.plan.entities {
        let key = cursor_key(&sync.plan.realm_id, entity);
        let cursor: Option<Cursor> = sync_source::load_cursor(store, pipeline, &sync.name, &key)?;
        let pending = Arc::new(Pending::default());
        let file: Arc<str> = Arc::from(format!("quickbooks/{entity}").as_str());
        let mut index = 0u64;
        let synced = client.sync_pages(entity, cursor.as_ref(), lookback, sync.plan.cdc, now, &mut |page| {
            for item in page {
                if gone.load(Ordering::Relaxed) {
                    return Err(stopped(&sync, entity));
                }
                hand_on(&sync, entity, &file, index, item, &pending)?;
                index += 1;
            }
            Ok(())
        });
        // What was handed on becomes durable either way; the cursor moves only on success.
        let drained = pending.drain(gone);
        let synced = synced?;
        if !drained {
            return Err(stopped(&sync, entity));
        }
        // The client's RT155 messages name entities and fields; the log says which and how many.
        if !synced.warnings.is_empty() {
            tracing::warn!(
                component = %sync.name,
                code = findings::QUICKBOOKS_PARTIAL_RECORD,
                table = %entity,
                count = synced.warnings.len(),
                "quickbooks entities without SyncToken or LastUpdatedTime, or with an odd TotalAmt, were read"
            );
        }
        sync_source::save_cursor(store, pipeline, &sync.name, &key, &synced.cursor, at)?;
        tracing::info!(
            component = %sync.name,
            table = %entity,
            fetched = index,
            deleted = synced.deleted,
            skipped = synced.skipped,
            requests = synced.requests,
            retries = synced.retries,
            cdc = synced.cdc,
            "quickbooks entity synced"
        );
    }
    Ok(())
}

/// Hands one entity on to the executor; it counts as pending until durable.
fn hand_on(
    sync: &Sync,
    entity: &str,
    file: &Arc<str>,
    index: u64,
    item: Item,
    pending: &Arc<Pending>,
) -> Result<(), RunError> {
    let id = item.entity.get("Id").and_then(|i| i.as_str()).map(|i| i.as_bytes().to_vec());
    let token = item.entity.get("SyncToken").and_then(|t| t.as_str()).map(|t| t.as_bytes().to_vec());
    let bus = BusMeta {
        key: id,
        headers: vec![
            (ENTITY_HEADER.into(), Some(entity.as_bytes().to_vec())),
            ("quickbooks.realm".into(), Some(sync.plan.realm_id.as_bytes().to_vec())),
            ("quickbooks.sync_token".into(), token),
        ],
        deleted: item.deleted,
    };
    let raw = RawInput {
        source: sync.source,
        file: Arc::clone(file),
        offset: 0,
        index,
        seq: 0,
        bytes: serde_json::to_vec(&item.entity).unwrap_or_default(),
        problem: None,
        completion: None,
        bus: Some(Arc::new(bus)),
    };
    if sync_source::hand_on(&sync.tx, pending, raw) { Ok(()) } else { Err(stopped(sync, entity)) }
}

fn stopped(sync: &Sync, entity: &str) -> RunError {
    RunError::new(
        findings::QUICKBOOKS_SYNC_STOPPED,
        format!("`{}`: the run stopped before entity `{entity}` was durable; its cursor was kept", sync.name),
    )
    .with_help("run again: the entity is read again from its saved cursor, and an idempotent sink gets nothing twice")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entities() -> Vec<String> {
        vec!["Purchase".into(), "Deposit".into()]
    }

    #[test]
    fn entities_that_cannot_be_records_are_rejected_naming_the_field_only() {
        let ok = decode(br#"{"Id":"6842","SyncToken":"0"}"#, Some("Purchase"), &entities()).unwrap();
        assert_eq!((ok.id.as_str(), ok.entity.as_str()), ("6842", "Purchase"));
        let wrapped = decode(br#"{"Deposit":{"Id":"1"},"time":"2015-03-08T10:44:19.813-07:00"}"#, None, &entities());
        assert_eq!(wrapped.unwrap().entity, "Deposit");
        let one = decode(br#"{"Id":"1"}"#, None, &["Payment".to_string()]).unwrap();
        assert_eq!(one.entity, "Payment");
        for (bytes, named, field) in [
            (&b"[1]"[..], Some("Purchase"), None),
            (b"{\"Id\":", Some("Purchase"), None),
            (br#"{"EntityRef":{"name":"Jo Bloggs"}}"#, Some("Purchase"), Some("Id")),
            (br#"{"Id":"1"}"#, None, None),
            (br#"{"Id":"1"}"#, Some("Invoice"), None),
        ] {
            let r = decode(bytes, named, &entities()).unwrap_err();
            assert_eq!(r.code, findings::QUICKBOOKS_ENTITY_REJECTED);
            assert_eq!(r.findings[0].path.as_deref(), field);
            assert!(!r.reason.contains("Jo Bloggs"));
        }
    }
}
