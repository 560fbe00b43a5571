//! Deletions of a cdc table, from the server's type-level history:
//! `GET [base]/[Type]/_history?_since={cursor - overlap}&_count=N`, following `link[next]`.
//!
//! A history Bundle lists every version created, updated or deleted since `_since`, newest
//! first (FHIR R4 3.1.0.11.4). An entry whose `request.method` is `DELETE` (Helios answers
//! `{"request": {"method": "DELETE", "url": "Patient/ID"}, "response": {"etag": "W/\"2\"",
//! "lastModified": ...}}`, without a resource) stands for a deletion; each id counts once, by
//! its newest entry, so a resource deleted then created again is not deleted.
//!
//! Invariants:
//! - Nothing lost: the deletions' own cursor (`TABLE#deleted` in the state store: the newest
//!   `lastModified` read, capped at the server's time when this history search began) is
//!   saved only once every deletion record handed on is durable. The first time, it starts at
//!   the table's search cursor as it was before this run (or, on the first sync of all, when
//!   this run's search began): anything delivered before was delivered before that.
//! - Nothing twice within the overlap: deletions delivered are kept as hashes of resource
//!   type, id and deleted version beside the cursor, as searches keep versions
//!   ([`super::cursor`]).
//! - A deletion record holds only `{"resourceType", "id"}` and is marked deleted in its
//!   envelope ([`crate::record::BusMeta::deleted`]): the map stage gives it the fields derived
//!   from the id, sinks delete its key (`postgres` upsert) or write it with
//!   `"_deleted": true`.
//! - A server that refuses the history interaction (400, 404, 405, 501) or answers something
//!   else than a history Bundle is said once (RT121, a warning); the sync goes on without
//!   deletions for the rest of the run.
//! - No data in messages: counts, table, status, the URL without its query.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_compiler::fhir_rest::FhirTablePlan;

use super::cursor::{self, CursorState, Meta, Seen};
use super::{MAX_PAGE_SIZE, Sync, bus_meta, hand_on, next_link, query_instant, same_origin, shown, stopped};
use crate::error::RunError;
use crate::findings;
use crate::state::Store;
use crate::sync_source::Pending;

/// Where a table's first deletion sync starts, from its search.
pub(super) struct From {
    /// The table's search cursor before this run (ns).
    pub search_cursor: Option<i64>,
    /// When this run's search of the table began, by the server's clock (ns).
    pub search_started: Option<i64>,
}

/// The key of a table's deletion cursor in the state store.
fn cursor_key(table: &FhirTablePlan) -> String {
    format!("{}#deleted", table.name)
}

/// Finds the deletions of `table` since its deletion cursor, hands them on, and saves the
/// cursor once they are durable.
pub(super) fn sync(
    sync: &mut Sync,
    table: &FhirTablePlan,
    from: From,
    store: &Store,
    pipeline: &str,
    at: &str,
    gone: &AtomicBool,
) -> Result<(), RunError> {
    let key = cursor_key(table);
    let state = match store.fhir_cursor(pipeline, &sync.name, &key)? {
        Some(text) => CursorState::from_json(&text),
        None => CursorState { last_updated: from.search_cursor.or(from.search_started), seen: Vec::new() },
    };
    let pending = Arc::new(Pending::default());
    let mut seen = Seen::new(&state);
    let found = find(sync, table, &state, &mut seen, &pending, gone);
    let drained = pending.drain(gone);
    let Some(deleted) = found? else { return Ok(()) };
    if !drained {
        return Err(RunError::new(
            findings::FHIR_REST_FAILED,
            format!(
                "`{}`: the run stopped before the deletions of table `{}` were durable; their cursor was kept",
                sync.name, table.name
            ),
        ));
    }
    store.save_fhir_cursor(pipeline, &sync.name, &key, &seen.next_state(&state, sync.plan.overlap_ms).to_json(), at)?;
    tracing::info!(component = %sync.name, table = %table.name, deleted, "fhir.rest deletions synced");
    Ok(())
}

/// The first page's URL of a table's history.
fn first_url(sync: &Sync, table: &FhirTablePlan, state: &CursorState, count: u64) -> String {
    let mut url = format!("{}/{}/_history?_count={count}", sync.plan.base_url, table.resource_type);
    if let Some(since) = state.since(sync.plan.overlap_ms) {
        url.push_str("&_since=");
        url.push_str(&query_instant(since));
    }
    url
}

/// Says once that the server has no usable `_history`; deletions are not asked again.
fn unsupported(sync: &mut Sync, table: &FhirTablePlan, what: &str) {
    sync.history = false;
    tracing::warn!(
        component = %sync.name,
        table = %table.name,
        code = findings::FHIR_REST_NO_HISTORY,
        answer = what,
        "the FHIR server does not support `_history`: deletions are not synced"
    );
}

/// The id an entry is about: from `request.url` (`Patient/ID[/_history/N]`), else `fullUrl`,
/// else the resource's own.
fn entry_id(entry: &sluice_fhir::Node, resource_type: &str) -> Option<String> {
    let after_type = |url: &str| {
        let mut parts = url.split(['?', '#']).next().unwrap_or_default().split('/');
        parts.by_ref().find(|p| *p == resource_type)?;
        parts.next().filter(|id| !id.is_empty()).map(str::to_string)
    };
    text(entry.get("request").and_then(|r| r.get("url")))
        .and_then(after_type)
        .or_else(|| text(entry.get("fullUrl")).and_then(after_type))
        .or_else(|| text(entry.get("resource").and_then(|r| r.get("id"))).map(str::to_string))
}

/// A string member, when there is one.
fn text(node: Option<&sluice_fhir::Node>) -> Option<&str> {
    node.and_then(sluice_fhir::Node::as_str)
}

/// `W/"2"` -> `2`.
fn etag_version(etag: &str) -> Option<String> {
    let v = etag.trim().trim_start_matches("W/").trim_matches('"');
    (!v.is_empty()).then(|| v.to_string())
}

/// Pages through the history and hands each new deletion on. `Ok(None)`: the server does not
/// support `_history` (said once).
fn find(
    sync: &mut Sync,
    table: &FhirTablePlan,
    state: &CursorState,
    seen: &mut Seen,
    pending: &Arc<Pending>,
    gone: &AtomicBool,
) -> Result<Option<u64>, RunError> {
    let mut count = sync.plan.page_size;
    let mut url = first_url(sync, table, state, count);
    let file: Arc<str> = Arc::from(table.resource_type.as_str());
    // Each id counts once, by its newest entry (the first met: newest first).
    let mut decided: HashSet<String> = HashSet::new();
    let (mut pages, mut pages_of_search, mut deleted, mut index) = (0u64, 0u64, 0u64, 0u64);
    loop {
        if gone.load(Ordering::Relaxed) {
            return Err(stopped(sync, table));
        }
        let page = match sync.client.page(&url, &table.name) {
            Ok(page) => page,
            Err(_) if pages == 0 && matches!(sync.client.last_status, Some(400 | 404 | 405 | 501)) => {
                let status = sync.client.last_status.unwrap_or_default();
                unsupported(sync, table, &format!("HTTP {status}"));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        pages += 1;
        pages_of_search += 1;
        if pages == 1 {
            seen.started_at(page.date);
        }
        let bundle = &page.bundle;
        if bundle.resource_type() != Some("Bundle")
            || bundle.get("type").and_then(sluice_fhir::Node::as_str) != Some("history")
        {
            if pages == 1 {
                unsupported(sync, table, "not a history Bundle");
                return Ok(None);
            }
            return Err(RunError::new(
                findings::FHIR_REST_FAILED,
                format!(
                    "`{}`: GET {} for table `{}` did not answer a history Bundle",
                    sync.name,
                    shown(&url),
                    table.name
                ),
            ));
        }
        let entries = bundle.get("entry").and_then(sluice_fhir::Node::as_array).unwrap_or_default();
        for entry in entries {
            let Some(id) = entry_id(entry, &table.resource_type) else { continue };
            let response = entry.get("response");
            let when = text(response.and_then(|r| r.get("lastModified")))
                .or_else(|| text(entry.get("resource").and_then(|r| r.get("meta")).and_then(|m| m.get("lastUpdated"))))
                .and_then(cursor::parse_instant);
            seen.examined(when);
            if !decided.insert(id.clone()) {
                continue;
            }
            if text(entry.get("request").and_then(|r| r.get("method"))) != Some("DELETE") {
                continue;
            }
            let version = text(response.and_then(|r| r.get("etag"))).and_then(etag_version);
            let meta = Meta::deletion(&table.resource_type, &id, version, when);
            if !seen.first_time(&meta) {
                continue;
            }
            let stub = serde_json::json!({"resourceType": table.resource_type, "id": id}).to_string();
            hand_on(sync, table, &file, index, stub.into_bytes(), bus_meta(table, &meta, true), pending)?;
            index += 1;
            deleted += 1;
        }
        match next_link(bundle) {
            Some(next) => url = same_origin(sync, table, next, "history page")?,
            // A full first page without a next link: the server does not page its history.
            // Asked again, larger (what was handed on is skipped), as searches are.
            None if pages_of_search == 1 && entries.len() as u64 >= count && count < MAX_PAGE_SIZE => {
                count = (count * 4).min(MAX_PAGE_SIZE);
                url = first_url(sync, table, state, count);
                pages_of_search = 0;
                decided.clear();
            }
            None if pages_of_search == 1 && entries.len() as u64 >= count => {
                return Err(RunError::new(
                    findings::FHIR_REST_FAILED,
                    format!(
                        "`{}`: table `{}`: the server's history gives no next link and more than {MAX_PAGE_SIZE} versions changed",
                        sync.name, table.name
                    ),
                )
                .with_help("enable paging on the server, or sync more often; the deletions' cursor was kept"));
            }
            None => return Ok(Some(deleted)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_versions_are_read_from_history_entries() {
        let entry = |json: &str| sluice_fhir::json::parse(json.as_bytes()).unwrap();
        let deleted = entry(
            r#"{"fullUrl":"http://h/Patient/a1","request":{"method":"DELETE","url":"Patient/a1"},"response":{"status":"204","etag":"W/\"2\""}}"#,
        );
        assert_eq!(entry_id(&deleted, "Patient").as_deref(), Some("a1"));
        let versioned = entry(r#"{"request":{"method":"DELETE","url":"Patient/b2/_history/3"}}"#);
        assert_eq!(entry_id(&versioned, "Patient").as_deref(), Some("b2"));
        let by_full_url = entry(r#"{"fullUrl":"https://h/fhir/Patient/c3"}"#);
        assert_eq!(entry_id(&by_full_url, "Patient").as_deref(), Some("c3"));
        assert_eq!(entry_id(&entry(r#"{"request":{"url":"Patient"}}"#), "Patient"), None);
        assert_eq!(etag_version("W/\"2\"").as_deref(), Some("2"));
        assert_eq!(etag_version("\"7\"").as_deref(), Some("7"));
        assert_eq!(etag_version("W/\"\""), None);
    }
}
