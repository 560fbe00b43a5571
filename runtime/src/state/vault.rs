//! The token vault's table in the state store (`vault_tokens`), for both backends: one row per
//! tokenized value, `lookup` (the keyed hash that finds a value's token without the value),
//! `token`, `key_id` (the key that sealed it) and `sealed` (the value, AES-256-GCM, bound to
//! the token). The logic is in [`crate::vault`].
//!
//! `vault_subjects` links tokens to the person they are about (`tokenize` with a `subject`):
//! one row per (subject hash, lookup), the subject as a keyed hash, never in clear.
//!
//! The tables are created here, when a vault is first opened (`CREATE TABLE IF NOT EXISTS`),
//! not with the store's other tables: a store that never tokenized has none, and its version
//! does not change (an older Sluice reads such a store as before, and cannot tokenize).
//!
//! Invariants:
//! - A value's row is inserted once (`ON CONFLICT (lookup) DO NOTHING`) and committed before
//!   its token is handed out: two processes that tokenize the same value at once get the same
//!   token (the loser reads the winner's), and a token written to a sink is always in the vault.
//! - A re-encryption (rotation) replaces `key_id` and `sealed` of one row in one statement,
//!   checked against the row's old key id, so a crash leaves each row whole, under one key.
//! - Nothing here is in clear: the value is sealed; `lookup` is an HMAC under the policy's key.

use super::{Store, Value, text};
use crate::error::RunError;

const DDL: &str = "CREATE TABLE IF NOT EXISTS vault_tokens (
    lookup      TEXT PRIMARY KEY,
    token       TEXT NOT NULL UNIQUE,
    key_id      TEXT NOT NULL,
    sealed      TEXT NOT NULL
)";

const SUBJECTS_DDL: &str = "CREATE TABLE IF NOT EXISTS vault_subjects (
    subject     TEXT NOT NULL,
    lookup      TEXT NOT NULL,
    PRIMARY KEY (subject, lookup)
)";

/// A row as read for decryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRow {
    pub token: String,
    pub key_id: String,
    pub sealed: String,
}

impl Store {
    /// Creates the vault's table if it is missing.
    pub fn vault_create(&self) -> Result<(), RunError> {
        self.query("create the token vault", DDL, &[])?;
        self.query("create the token vault", SUBJECTS_DDL, &[]).map(|_| ())
    }

    /// Links the value whose lookup hash is `lookup` to the person whose subject hash is
    /// `subject` (once: a second link is dropped).
    pub fn vault_link(&self, subject: &str, lookup: &str) -> Result<(), RunError> {
        self.query(
            "write the token vault",
            "INSERT INTO vault_subjects (subject, lookup) VALUES ($1, $2) ON CONFLICT (subject, lookup) DO NOTHING",
            &[text(subject), text(lookup)],
        )
        .map(|_| ())
    }

    /// Deletes the rows of every value linked to the subject hash `subject` and not to another
    /// person (a value two people share, a common surname, stays for the other), then the
    /// subject's links, in one transaction. Returns (rows deleted, rows kept as shared).
    pub fn vault_forget_subject(&self, subject: &str) -> Result<(u64, u64), RunError> {
        if !self.has_vault()? {
            return Ok((0, 0));
        }
        let mine = "SELECT lookup FROM vault_subjects WHERE subject = $1";
        let shared = "SELECT lookup FROM vault_subjects WHERE subject <> $1";
        let counts = self.query(
            "read the token vault",
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN lookup IN ({shared}) THEN 1 ELSE 0 END), 0) \
                 FROM vault_tokens WHERE lookup IN ({mine})"
            ),
            &[text(subject)],
        )?;
        let row = counts.first();
        let total = row.and_then(|r| r.first()).and_then(Value::int).unwrap_or(0);
        let kept = row.and_then(|r| r.get(1)).and_then(Value::int).unwrap_or(0);
        let forget_values = format!("DELETE FROM vault_tokens WHERE lookup IN ({mine}) AND lookup NOT IN ({shared})");
        let statements: [(&str, Vec<Value>); 2] = [
            (&forget_values, vec![text(subject)]),
            ("DELETE FROM vault_subjects WHERE subject = $1", vec![text(subject)]),
        ];
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| self.err("delete from the token vault", e))?;
        let (total, kept) = (u64::try_from(total).unwrap_or(0), u64::try_from(kept).unwrap_or(0));
        Ok((total - kept.min(total), kept))
    }

    /// The token of the value whose lookup hash is `lookup`, if it has one.
    pub fn vault_token(&self, lookup: &str) -> Result<Option<String>, RunError> {
        let rows =
            self.query("read the token vault", "SELECT token FROM vault_tokens WHERE lookup = $1", &[text(lookup)])?;
        Ok(rows.first().and_then(|r| r[0].text()).map(str::to_string))
    }

    /// Inserts a row unless the lookup has one already (then this one is dropped).
    pub fn vault_insert(&self, lookup: &str, row: &SealedRow) -> Result<(), RunError> {
        self.query(
            "write the token vault",
            "INSERT INTO vault_tokens (lookup, token, key_id, sealed) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (lookup) DO NOTHING",
            &[text(lookup), text(&row.token), text(&row.key_id), text(&row.sealed)],
        )
        .map(|_| ())
    }

    /// The row of a token. `None` when the store has no vault or no such token.
    pub fn vault_row(&self, token: &str) -> Result<Option<SealedRow>, RunError> {
        if !self.has_vault()? {
            return Ok(None);
        }
        let rows = self.query(
            "read the token vault",
            "SELECT token, key_id, sealed FROM vault_tokens WHERE token = $1",
            &[text(token)],
        )?;
        Ok(rows.first().and_then(|r| sealed_row(r)))
    }

    /// The rows not sealed under `key_id`, at most `limit` of them (a rotation's next batch).
    pub fn vault_rows_not_under(&self, key_id: &str, limit: u32) -> Result<Vec<SealedRow>, RunError> {
        if !self.has_vault()? {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "read the token vault",
            "SELECT token, key_id, sealed FROM vault_tokens WHERE key_id <> $1 ORDER BY token LIMIT $2",
            &[text(key_id), Value::Int(i64::from(limit))],
        )?;
        Ok(rows.iter().filter_map(|r| sealed_row(r.as_slice())).collect())
    }

    /// How many rows each key id seals.
    pub fn vault_key_counts(&self) -> Result<Vec<(String, u64)>, RunError> {
        if !self.has_vault()? {
            return Ok(Vec::new());
        }
        let rows = self.query(
            "read the token vault",
            "SELECT key_id, COUNT(*) FROM vault_tokens GROUP BY key_id ORDER BY key_id",
            &[],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r[0].text()?.to_string(), u64::try_from(r[1].int()?).unwrap_or(0))))
            .collect())
    }

    /// Re-seals rows (rotation), in one transaction; each only if still under its old key.
    pub fn vault_reseal(&mut self, rows: &[(SealedRow, String)]) -> Result<(), RunError> {
        let statements: Vec<(&str, Vec<Value>)> = rows
            .iter()
            .map(|(new, old_key)| {
                (
                    "UPDATE vault_tokens SET key_id = $1, sealed = $2 WHERE token = $3 AND key_id = $4",
                    vec![text(&new.key_id), text(&new.sealed), text(&new.token), text(old_key)],
                )
            })
            .collect();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| self.err("re-encrypt the token vault", e))
    }

    /// Deletes the row of the value whose lookup hash is `lookup`; whether there was one.
    pub fn vault_forget(&self, lookup: &str) -> Result<bool, RunError> {
        if !self.has_vault()? {
            return Ok(false);
        }
        let rows = self.query(
            "delete from the token vault",
            "DELETE FROM vault_tokens WHERE lookup = $1 RETURNING token",
            &[text(lookup)],
        )?;
        Ok(!rows.is_empty())
    }

    fn has_vault(&self) -> Result<bool, RunError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.has_table("vault_tokens").map_err(|e| self.err("read the token vault", e))
    }
}

fn sealed_row(r: &[Value]) -> Option<SealedRow> {
    Some(SealedRow {
        token: r.first()?.text()?.to_string(),
        key_id: r.get(1)?.text()?.to_string(),
        sealed: r.get(2)?.text()?.to_string(),
    })
}
