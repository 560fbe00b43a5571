//! A table's cursor: where the next sync asks from, and what near it was already delivered.
//!
//! The saved state is `last_updated` (the highest `meta.lastUpdated` delivered, capped at the
//! server's time when that sync began) and `seen`: a hash of resource type, id and versionId
//! for each resource delivered whose `lastUpdated` is within `overlap` of the cursor (or after
//! it). The next sync asks for `_lastUpdated=gt{last_updated - overlap}` and skips what is in
//! `seen`.
//!
//! Invariants:
//! - Nothing lost: everything whose `lastUpdated` is after `last_updated - overlap` is asked
//!   for again, and only what was delivered before (same id and versionId) is skipped; the
//!   cursor never passes the start of the sync that set it (by the server's clock), so a
//!   resource changed during a sync is asked for next time, whatever page it moved to.
//! - Bounded: `seen` holds only the versions inside the window, not the table.
//! - No data: instants and hashes only (an id may be an MRN on some servers).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The saved state of one table's cursor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    /// Nanoseconds since 1970 (UTC); `None` before the first sync.
    pub last_updated: Option<i64>,
    /// Version hash -> its `lastUpdated` (ns).
    pub seen: Vec<(String, i64)>,
}

impl CursorState {
    /// Reads a saved state; an unreadable one starts over (a full sync: nothing is lost).
    pub fn from_json(text: &str) -> CursorState {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Where the next search starts (exclusive): the cursor less the overlap.
    pub fn since(&self, overlap_ms: u64) -> Option<i64> {
        let overlap = i64::try_from(overlap_ms).unwrap_or(i64::MAX / 2_000_000).saturating_mul(1_000_000);
        self.last_updated.map(|t| t.saturating_sub(overlap))
    }
}

/// What identifies one version of a resource, read from its `id` and `meta`.
#[derive(Debug)]
pub struct Meta {
    pub id: Option<String>,
    pub version_id: Option<String>,
    /// `meta.lastUpdated` (ns since 1970), when present and readable.
    pub last_updated: Option<i64>,
    /// The version's hash (what `seen` keeps).
    pub hash: String,
}

impl Meta {
    /// A deletion found in a server's history: `version` is the deleted version (from the
    /// entry's `etag`), `last_updated` when it was deleted.
    pub fn deletion(resource_type: &str, id: &str, version: Option<String>, last_updated: Option<i64>) -> Meta {
        let key = format!("{resource_type}/{id}/deleted/{}", version.as_deref().unwrap_or(""));
        let hash = hex::encode(&Sha256::digest(key.as_bytes())[..16]);
        Meta { id: Some(id.to_string()), version_id: version, last_updated, hash }
    }

    pub fn of(resource: &sluice_fhir::Node, resource_type: &str) -> Meta {
        let text = |n: Option<&sluice_fhir::Node>| n.and_then(sluice_fhir::Node::as_str).map(str::to_string);
        let id = text(resource.get("id"));
        let meta = resource.get("meta");
        let version_id = text(meta.and_then(|m| m.get("versionId")));
        let last_updated_text = text(meta.and_then(|m| m.get("lastUpdated")));
        let last_updated = last_updated_text.as_deref().and_then(parse_instant);
        // A version is its id with its versionId, else with its lastUpdated; a resource with
        // neither (a server without meta) is told apart by its content.
        let version = match (&version_id, &last_updated_text) {
            (Some(v), _) => format!("v:{v}"),
            (None, Some(t)) => format!("t:{t}"),
            (None, None) => format!("c:{}", hex::encode(Sha256::digest(resource.to_json().as_bytes()))),
        };
        let key = format!("{resource_type}/{}/{version}", id.as_deref().unwrap_or(""));
        let hash = hex::encode(&Sha256::digest(key.as_bytes())[..16]);
        Meta { id, version_id, last_updated, hash }
    }
}

/// The versions known during one sync: those saved with the cursor, and those delivered now.
pub struct Seen {
    before: HashMap<String, i64>,
    now: HashMap<String, Option<i64>>,
    /// The server's time when the sync's search began (ns), from its first answer's `Date`.
    started: Option<i64>,
    /// The newest `lastUpdated` read but not delivered (history entries that are not
    /// deletions): the cursor may pass it too.
    examined: Option<i64>,
}

impl Seen {
    pub fn new(state: &CursorState) -> Seen {
        Seen { before: state.seen.iter().cloned().collect(), now: HashMap::new(), started: None, examined: None }
    }

    /// The server's time when the search began (ns), once known.
    pub fn started(&self) -> Option<i64> {
        self.started
    }

    /// Records a version read and passed over (not delivered): the next sync need not ask
    /// from before it.
    pub fn examined(&mut self, last_updated: Option<i64>) {
        self.examined = self.examined.max(last_updated);
    }

    /// Records the server's `Date` (seconds since 1970) of the search's first answer.
    pub fn started_at(&mut self, date: Option<i64>) {
        self.started = date.map(|s| s.saturating_mul(1_000_000_000));
    }

    /// Whether this version is new (not delivered before nor earlier in this sync); if so it
    /// counts as delivered from now on.
    pub fn first_time(&mut self, meta: &Meta) -> bool {
        if self.before.contains_key(&meta.hash) || self.now.contains_key(&meta.hash) {
            return false;
        }
        self.now.insert(meta.hash.clone(), meta.last_updated);
        true
    }

    /// The state to save once everything delivered in this sync is durable.
    pub fn next_state(&self, previous: &CursorState, overlap_ms: u64) -> CursorState {
        let newest = self.now.values().flatten().copied().chain(self.examined).max();
        let mut cursor = match (previous.last_updated, newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // Never past the start of this sync: what changed while it ran is asked for again.
        if let (Some(c), Some(started)) = (cursor, self.started) {
            cursor = Some(c.min(started.max(previous.last_updated.unwrap_or(i64::MIN))));
        }
        let mut next = CursorState { last_updated: cursor, seen: Vec::new() };
        let Some(floor) = next.since(overlap_ms) else { return next };
        let mut seen: HashMap<&str, i64> = HashMap::new();
        for (h, t) in &self.before {
            if *t > floor {
                seen.insert(h, *t);
            }
        }
        for (h, t) in &self.now {
            // A version without a readable lastUpdated is kept with the cursor's time, so it
            // stays skipped for one window.
            let t = t.unwrap_or(cursor.unwrap_or(0));
            if t > floor {
                seen.insert(h, t);
            }
        }
        next.seen = seen.into_iter().map(|(h, t)| (h.to_string(), t)).collect();
        next.seen.sort();
        next
    }
}

/// Parses a FHIR `instant` (`2024-01-15T10:30:00.123Z`, `...+02:00`) to ns since 1970 (UTC).
pub fn parse_instant(text: &str) -> Option<i64> {
    let utc = crate::time::normalize_rfc3339(text)?;
    let b = utc.as_bytes();
    let num = |r: std::ops::Range<usize>| utc.get(r)?.parse::<i64>().ok();
    let days = crate::time::days_from_civil(num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    let secs = days * 86_400 + num(11..13)? * 3600 + num(14..16)? * 60 + num(17..19)?;
    let mut nanos = 0i64;
    if b.get(19) == Some(&b'.') {
        let digits: String = utc[20..].chars().take_while(char::is_ascii_digit).take(9).collect();
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Writes ns since 1970 as an instant with milliseconds, rounded down
/// (`2024-01-15T10:30:00.123Z`): a search from it misses nothing after the exact time.
pub fn format_instant(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let millis = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let whole = crate::time::format_utc(secs);
    format!("{}.{millis:03}Z", whole.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str, version: &str, at: &str) -> sluice_fhir::Node {
        let json = format!(
            r#"{{"resourceType":"Patient","id":"{id}","meta":{{"versionId":"{version}","lastUpdated":"{at}"}}}}"#
        );
        sluice_fhir::json::parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn instants_round_trip_to_the_millisecond_and_read_offsets() {
        let t = parse_instant("2026-11-21T15:14:41.467Z").unwrap();
        assert_eq!(format_instant(t), "2026-11-21T15:14:41.467Z");
        assert_eq!(parse_instant("2026-11-21T17:14:41.467+02:00"), Some(t));
        assert_eq!(format_instant(t + 999_999), "2026-11-21T15:14:41.467Z", "rounded down");
        assert_eq!(parse_instant("2026-11-21T15:14:41Z"), Some(t - 467_000_000));
        assert_eq!(parse_instant("yesterday"), None);
        // a history entry's `lastModified` as Helios writes it: nanoseconds and an offset
        assert_eq!(parse_instant("2026-11-21T15:14:41.467653776+00:00"), Some(t + 653_776), "nanoseconds are kept");
    }

    #[test]
    fn ties_and_late_commits_in_the_window_are_found_and_delivered_once() {
        let overlap = 5_000;
        let mut seen = Seen::new(&CursorState::default());
        let a = Meta::of(&resource("a", "1", "2026-01-01T00:00:10.000Z"), "Patient");
        let b = Meta::of(&resource("b", "1", "2026-01-01T00:00:10.000Z"), "Patient");
        assert!(seen.first_time(&a) && seen.first_time(&b));
        assert!(!seen.first_time(&a), "a page seen twice delivers nothing twice");
        let state = seen.next_state(&CursorState::default(), overlap);
        assert_eq!(state.last_updated, parse_instant("2026-01-01T00:00:10Z"));
        assert_eq!(format_instant(state.since(overlap).unwrap()), "2026-01-01T00:00:05.000Z");
        // next sync: the tie c (same instant, committed late) is new; a and b are skipped;
        // a's next version is new
        let mut again = Seen::new(&state);
        let c = Meta::of(&resource("c", "1", "2026-01-01T00:00:10.000Z"), "Patient");
        let a2 = Meta::of(&resource("a", "2", "2026-01-01T00:01:00.000Z"), "Patient");
        assert!(!again.first_time(&a) && !again.first_time(&b));
        assert!(again.first_time(&c) && again.first_time(&a2));
        let later = again.next_state(&state, overlap);
        assert_eq!(later.last_updated, parse_instant("2026-01-01T00:01:00Z"));
        assert_eq!(later.seen.len(), 1, "only a2 is inside the new window: {later:?}");
        // the same id under another resource type is another resource
        assert_ne!(Meta::of(&resource("a", "1", "2026-01-01T00:00:10Z"), "Encounter").hash, a.hash);
    }

    #[test]
    fn the_cursor_never_passes_the_start_of_its_sync() {
        let mut seen = Seen::new(&CursorState::default());
        seen.started_at(parse_instant("2026-01-01T00:00:30Z").map(|ns| ns / 1_000_000_000));
        assert!(seen.first_time(&Meta::of(&resource("a", "1", "2026-01-01T00:00:10Z"), "Patient")));
        // changed while the sync ran (after its first page)
        let during = Meta::of(&resource("b", "3", "2026-01-01T00:00:40Z"), "Patient");
        assert!(seen.first_time(&during));
        let state = seen.next_state(&CursorState::default(), 1_000);
        assert_eq!(state.last_updated, parse_instant("2026-01-01T00:00:30Z"));
        assert!(state.seen.iter().any(|(h, _)| *h == during.hash), "kept, so the next sync skips it");
        assert_eq!(CursorState::from_json(&state.to_json()), state);
        assert_eq!(CursorState::from_json("not json"), CursorState::default());
    }
}
