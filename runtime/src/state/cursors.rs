//! The cursors of `fhir.rest` sources: per pipeline, source and table, the last
//! `meta.lastUpdated` delivered and the versions seen near it ([`crate::fhir_rest::cursor`]
//! says what they mean).
//!
//! Invariants:
//! - A cursor row is replaced in one statement (an upsert): after a crash the store holds the
//!   last saved cursor, never half of one.
//! - No data value: the cursor is a time; the versions near it are hashes of id and versionId.
//! - The table is created when first used (`IF NOT EXISTS`), on either backend, so stores made
//!   before it existed keep their version.

use super::{Store, Value, text};
use crate::error::RunError;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS fhir_cursors (
    pipeline    TEXT NOT NULL,
    source      TEXT NOT NULL,
    tbl         TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (pipeline, source, tbl)
)";

impl Store {
    /// The saved state (JSON text) of a table's cursor, if any.
    pub fn fhir_cursor(&self, pipeline: &str, source: &str, table: &str) -> Result<Option<String>, RunError> {
        self.query("create the cursor table", CREATE, &[])?;
        let rows = self.query(
            "read a cursor",
            "SELECT state FROM fhir_cursors WHERE pipeline = $1 AND source = $2 AND tbl = $3",
            &[text(pipeline), text(source), text(table)],
        )?;
        Ok(rows.into_iter().next().and_then(|r| match r.into_iter().next() {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        }))
    }

    /// Saves a table's cursor state (JSON text), replacing the one before.
    pub fn save_fhir_cursor(
        &self,
        pipeline: &str,
        source: &str,
        table: &str,
        state: &str,
        at: &str,
    ) -> Result<(), RunError> {
        self.query("create the cursor table", CREATE, &[])?;
        self.query(
            "save a cursor",
            "INSERT INTO fhir_cursors (pipeline, source, tbl, state, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (pipeline, source, tbl) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            &[text(pipeline), text(source), text(table), text(state), text(at)],
        )?;
        Ok(())
    }
}
