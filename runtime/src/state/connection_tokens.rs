//! The OAuth tokens of connections (`connection_tokens`), for both backends: one row per
//! pipeline and connection, the tokens sealed (AES-256-GCM, [`crate::keys`]) under a key of
//! the connection's `token_key` and bound to the pipeline and connection names; the expiry
//! times in clear (they say when to refresh and warn, and nothing about the account).
//! The logic is in [`crate::oauth`].
//!
//! The table is created when a connection is first used (`CREATE TABLE IF NOT EXISTS`), not
//! with the store's other tables: a store without connections has none, and its version does
//! not change.
//!
//! Invariants:
//! - A row is replaced in one statement, checked against the `generation` it was read at
//!   ([`Store::token_replace`]): a refresh that lost a race changes nothing, so the newest
//!   refresh token (a rotating provider invalidates the old one) is never overwritten by an
//!   older one.
//! - One refresh at a time per connection, across processes and machines sharing the store:
//!   a refresher first takes a lease ([`Store::token_lease`], a compare-and-set on `lease_until`
//!   and `generation`); the others wait and read its result.
//! - Nothing here is in clear but times, key ids and names.

use super::{Store, Value, text};
use crate::error::RunError;

const DDL: &str = "CREATE TABLE IF NOT EXISTS connection_tokens (
    pipeline           TEXT NOT NULL,
    connection         TEXT NOT NULL,
    generation         BIGINT NOT NULL,
    key_id             TEXT NOT NULL,
    sealed             TEXT NOT NULL,
    access_expires_at  BIGINT,
    refresh_expires_at BIGINT,
    lease_until        BIGINT NOT NULL,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (pipeline, connection)
)";

/// A connection's row: its sealed tokens and when they expire (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub generation: i64,
    pub key_id: String,
    pub sealed: String,
    pub access_expires_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
}

fn opt_int(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Int)
}

impl Store {
    /// Creates the table if it is missing.
    pub fn tokens_create(&self) -> Result<(), RunError> {
        self.query("create the connection token table", DDL, &[]).map(|_| ())
    }

    /// The row of a connection, if it was ever authorized.
    pub fn token_row(&self, pipeline: &str, connection: &str) -> Result<Option<TokenRow>, RunError> {
        let rows = self.query(
            "read a connection's tokens",
            "SELECT generation, key_id, sealed, access_expires_at, refresh_expires_at FROM connection_tokens \
             WHERE pipeline = $1 AND connection = $2",
            &[text(pipeline), text(connection)],
        )?;
        Ok(rows.first().and_then(|r| {
            Some(TokenRow {
                generation: r.first()?.int()?,
                key_id: r.get(1)?.text()?.to_string(),
                sealed: r.get(2)?.text()?.to_string(),
                access_expires_at: r.get(3).and_then(Value::int),
                refresh_expires_at: r.get(4).and_then(Value::int),
            })
        }))
    }

    /// Stores the tokens of a new authorization, replacing any row (its generation goes on
    /// counting); returns the new generation.
    pub fn token_put(&self, pipeline: &str, connection: &str, row: &TokenRow, at: &str) -> Result<i64, RunError> {
        let rows = self.query(
            "store a connection's tokens",
            "INSERT INTO connection_tokens (pipeline, connection, generation, key_id, sealed, access_expires_at, \
             refresh_expires_at, lease_until, updated_at) VALUES ($1, $2, 1, $3, $4, $5, $6, 0, $7) \
             ON CONFLICT (pipeline, connection) DO UPDATE SET generation = connection_tokens.generation + 1, \
             key_id = excluded.key_id, sealed = excluded.sealed, access_expires_at = excluded.access_expires_at, \
             refresh_expires_at = excluded.refresh_expires_at, lease_until = 0, updated_at = excluded.updated_at \
             RETURNING generation",
            &[
                text(pipeline),
                text(connection),
                text(&row.key_id),
                text(&row.sealed),
                opt_int(row.access_expires_at),
                opt_int(row.refresh_expires_at),
                text(at),
            ],
        )?;
        Ok(rows.first().and_then(|r| r.first()?.int()).unwrap_or(1))
    }

    /// Takes the refresh lease of a connection until `until` (Unix seconds), if the row is
    /// still at `generation` and nobody holds an unexpired lease; whether it was taken.
    pub fn token_lease(
        &self,
        pipeline: &str,
        connection: &str,
        generation: i64,
        now: i64,
        until: i64,
    ) -> Result<bool, RunError> {
        let rows = self.query(
            "lease a connection's refresh",
            "UPDATE connection_tokens SET lease_until = $1 WHERE pipeline = $2 AND connection = $3 \
             AND generation = $4 AND lease_until <= $5 RETURNING generation",
            &[Value::Int(until), text(pipeline), text(connection), Value::Int(generation), Value::Int(now)],
        )?;
        Ok(!rows.is_empty())
    }

    /// Replaces a connection's tokens read at `generation` (and releases the lease) in one
    /// statement; `false` when the row moved on meanwhile (nothing is changed then).
    pub fn token_replace(
        &self,
        pipeline: &str,
        connection: &str,
        generation: i64,
        row: &TokenRow,
        at: &str,
    ) -> Result<bool, RunError> {
        let rows = self.query(
            "replace a connection's tokens",
            "UPDATE connection_tokens SET generation = generation + 1, key_id = $1, sealed = $2, \
             access_expires_at = $3, refresh_expires_at = $4, lease_until = 0, updated_at = $5 \
             WHERE pipeline = $6 AND connection = $7 AND generation = $8 RETURNING generation",
            &[
                text(&row.key_id),
                text(&row.sealed),
                opt_int(row.access_expires_at),
                opt_int(row.refresh_expires_at),
                text(at),
                text(pipeline),
                text(connection),
                Value::Int(generation),
            ],
        )?;
        Ok(!rows.is_empty())
    }

    /// Gives a lease back without a new token (the refresh failed).
    pub fn token_release(&self, pipeline: &str, connection: &str, generation: i64) -> Result<(), RunError> {
        self.query(
            "release a connection's refresh lease",
            "UPDATE connection_tokens SET lease_until = 0 WHERE pipeline = $1 AND connection = $2 AND generation = $3",
            &[text(pipeline), text(connection), Value::Int(generation)],
        )
        .map(|_| ())
    }
}
