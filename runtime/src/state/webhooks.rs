//! The webhook queue in the state store (`sluice serve`): `webhook_events`, one row per
//! accepted event, and `webhook_sync_requests`, one row per event that asks for a sync (Plaid,
//! FHIR subscriptions), for both backends.
//!
//! A delivery is answered only after [`Store::enqueue_webhook`] committed its events; the
//! pipeline is fed from the rows still `queued` ([`Store::queued_webhooks`]), and a row becomes
//! `processed` ([`Store::webhooks_processed`]) once the writer made the record durable in the
//! sinks or the DLQ; its body is then dropped (the event id stays, for deduplication).
//!
//! Invariants:
//! - `(pipeline, source, event_id)` is unique: a redelivery inserts nothing, whatever the
//!   interleaving of concurrent requests (`ON CONFLICT DO NOTHING`), so an event is processed
//!   from one row only.
//! - A delivery's events (and their sync requests) are inserted in one transaction: all of a
//!   QuickBooks notification or none.
//! - A `queued` row's body is the only copy of an accepted event until it is processed; a crash
//!   at any point leaves it `queued`, and the next `sluice serve` feeds it again (at least once
//!   into the sinks, exactly once into the queue).
//! - The tables are created when `sluice serve` first opens the store (`IF NOT EXISTS`); they
//!   do not change the store's version, so other commands and older stores are unaffected.
//! - Bodies are encrypted at rest ([`BodySeal::Keys`], the pipeline's `dlq.encryption_key`
//!   ring, AES-256-GCM, [`crate::keys`]): `body` holds the sealed blob and `body_key` the id of
//!   the key that sealed it, bound to the row's `(pipeline, source, event_id)` as associated
//!   data so a blob moved to another row does not open. `body_key` NULL means plain text: rows
//!   of a store written before bodies were sealed (sealed by [`Store::reseal_webhooks`] when
//!   `sluice serve` starts with a key), or of a pipeline whose DLQ declares `plaintext_reason`
//!   ([`BodySeal::Plain`]).
//! - [`Store::reseal_webhooks`] re-seals every queued body not under the current key in one
//!   transaction (`sluice keys rotate`, and the migration above): all rows or none.

use super::{Store, Value, text};
use crate::error::RunError;
use crate::keys::{KeyRing, OpenError};

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS webhook_events (
        id           {id},
        pipeline     TEXT NOT NULL,
        source       TEXT NOT NULL,
        event_id     TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        received_at  TEXT NOT NULL,
        status       TEXT NOT NULL,
        body         TEXT,
        processed_at TEXT,
        body_key     TEXT,
        UNIQUE (pipeline, source, event_id)
    )",
    "CREATE INDEX IF NOT EXISTS webhook_events_queued ON webhook_events (pipeline, status, id)",
    "CREATE TABLE IF NOT EXISTS webhook_sync_requests (
        id           {id},
        pipeline     TEXT NOT NULL,
        source       TEXT NOT NULL,
        provider     TEXT NOT NULL,
        account      TEXT,
        event_id     TEXT NOT NULL,
        event_type   TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        status       TEXT NOT NULL,
        UNIQUE (pipeline, source, event_id)
    )",
];

/// How the queue keeps bodies at rest.
#[derive(Debug)]
pub enum BodySeal {
    /// Sealed under the current key of the ring (the DLQ's `encryption_key`), whose reference
    /// names it in errors.
    Keys { ring: KeyRing, reference: String },
    /// In plain text: the pipeline's DLQ declares `plaintext_reason` (synthetic or test data).
    Plain,
}

impl BodySeal {
    /// The associated data of a row's body: which row it belongs to.
    fn aad(pipeline: &str, source: &str, event_id: &str) -> Vec<u8> {
        format!("sluice webhook body\0{pipeline}\0{source}\0{event_id}").into_bytes()
    }

    /// The stored form of a body: the column values `body` and `body_key`.
    fn seal(&self, pipeline: &str, source: &str, event_id: &str, body: &str) -> Result<(Value, Value), RunError> {
        match self {
            BodySeal::Plain => Ok((text(body), Value::Null)),
            BodySeal::Keys { ring, .. } => {
                let (id, blob) = ring.seal(&BodySeal::aad(pipeline, source, event_id), body.as_bytes())?;
                Ok((Value::Text(blob), Value::Text(id)))
            }
        }
    }

    /// A stored body opened: `Ok(None)` when it is under a configured key but does not open
    /// (altered, or moved from another row: the event goes to the DLQ as unreadable, RT043);
    /// an error when its key is not configured (RT031: nothing can be done without the key).
    fn open(&self, row: (&str, &str, &str), stored: &str, key_id: Option<&str>) -> Result<Option<String>, RunError> {
        let Some(id) = key_id else { return Ok(Some(stored.to_string())) };
        let BodySeal::Keys { ring, reference } = self else {
            return Err(crate::keys::missing_key_error(id, "a queued webhook body", "dlq.encryption_key (not set)"));
        };
        match ring.open(id, &BodySeal::aad(row.0, row.1, row.2), stored) {
            Ok(plain) => Ok(String::from_utf8(plain).ok()),
            Err(OpenError::Corrupt) => Ok(None),
            Err(OpenError::Missing(id)) => Err(crate::keys::missing_key_error(&id, "a queued webhook body", reference)),
        }
    }
}

/// An event to insert.
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub body: &'a str,
    /// `Some(account)` when the event asks for a sync (the account may be unknown: `None`
    /// inside).
    pub sync: Option<Option<&'a str>>,
}

/// A queued event, to feed.
#[derive(Clone, Debug)]
pub struct QueuedRow {
    pub id: i64,
    pub source: String,
    /// The body in plain text; `None` when its sealed form does not open under its key (the
    /// row was altered or moved): the event is fed as unreadable and reaches the DLQ (RT043).
    pub body: Option<String>,
}

/// A sync request as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SyncRequest {
    pub source: String,
    pub provider: String,
    pub account: Option<String>,
    pub event_id: String,
    pub event_type: String,
    pub requested_at: String,
    pub status: String,
}

impl Store {
    /// Creates the webhook tables if needed.
    pub fn prepare_webhooks(&self) -> Result<(), RunError> {
        let id = if self.key == "state.url" { "BIGSERIAL PRIMARY KEY" } else { "INTEGER PRIMARY KEY AUTOINCREMENT" };
        for ddl in TABLES {
            self.query("create the webhook queue", &ddl.replace("{id}", id), &[])?;
        }
        // A queue created before bodies were sealed lacks `body_key`: add it (its rows are
        // plain text until `reseal_webhooks` seals them).
        if self.query("read the webhook queue", "SELECT body_key FROM webhook_events WHERE 1 = 0", &[]).is_err() {
            self.query("migrate the webhook queue", "ALTER TABLE webhook_events ADD COLUMN body_key TEXT", &[])?;
        }
        Ok(())
    }

    /// Inserts a delivery's events (one transaction); returns how many were new (the others
    /// were delivered before).
    pub fn enqueue_webhook(
        &self,
        pipeline: &str,
        source: &str,
        provider: &str,
        received_at: &str,
        seal: &BodySeal,
        events: &[NewEvent<'_>],
    ) -> Result<usize, RunError> {
        let mut known = 0;
        for e in events {
            let rows = self.query(
                "read the webhook queue",
                "SELECT 1 FROM webhook_events WHERE pipeline = $1 AND source = $2 AND event_id = $3",
                &[text(pipeline), text(source), text(e.event_id)],
            )?;
            known += usize::from(!rows.is_empty());
        }
        let mut statements: Vec<(&str, Vec<Value>)> = Vec::new();
        for e in events {
            let (body, body_key) = seal.seal(pipeline, source, e.event_id, e.body)?;
            statements.push((
                "INSERT INTO webhook_events (pipeline, source, event_id, event_type, received_at, status, body, body_key)
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7) ON CONFLICT (pipeline, source, event_id) DO NOTHING",
                vec![
                    text(pipeline),
                    text(source),
                    text(e.event_id),
                    text(e.event_type),
                    text(received_at),
                    body,
                    body_key,
                ],
            ));
            if let Some(account) = e.sync {
                statements.push((
                    "INSERT INTO webhook_sync_requests (pipeline, source, provider, account, event_id, event_type, requested_at, status)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending') ON CONFLICT (pipeline, source, event_id) DO NOTHING",
                    vec![
                        text(pipeline),
                        text(source),
                        text(provider),
                        account.map_or(Value::Null, text),
                        text(e.event_id),
                        text(e.event_type),
                        text(received_at),
                    ],
                ));
            }
        }
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| self.err("write the webhook queue", e))?;
        Ok(events.len().saturating_sub(known))
    }

    /// Up to `limit` queued events of `pipeline` after row `after`, oldest first, their bodies
    /// opened with `seal`.
    pub fn queued_webhooks(
        &self,
        pipeline: &str,
        after: i64,
        limit: i64,
        seal: &BodySeal,
    ) -> Result<Vec<QueuedRow>, RunError> {
        let rows = self.query(
            "read the webhook queue",
            "SELECT id, source, event_id, body, body_key FROM webhook_events
             WHERE pipeline = $1 AND status = 'queued' AND id > $2 ORDER BY id LIMIT $3",
            &[text(pipeline), Value::Int(after), Value::Int(limit)],
        )?;
        let bad = || self.err("read the webhook queue", "a row is not as this Sluice wrote it");
        rows.into_iter()
            .map(|r| {
                let source = r[1].text().ok_or_else(bad)?;
                let event_id = r[2].text().ok_or_else(bad)?;
                let body = seal.open((pipeline, source, event_id), r[3].text().ok_or_else(bad)?, r[4].text())?;
                Ok(QueuedRow { id: r[0].int().ok_or_else(bad)?, source: source.to_string(), body })
            })
            .collect()
    }

    /// Re-seals under the ring's current key every queued body of `pipeline` that is not
    /// under it (plain-text rows included), in one transaction; returns how many. A body under
    /// a key the ring does not hold stops it (RT031), and nothing changes; one that does not
    /// open under its key is left as it is (it reaches the DLQ when fed, RT043). A SQLite
    /// store is then vacuumed (the old bytes are gone from the file); a PostgreSQL server
    /// keeps the old row versions until its own vacuum reuses their space.
    pub fn reseal_webhooks(&self, pipeline: &str, seal: &BodySeal) -> Result<u64, RunError> {
        let BodySeal::Keys { ring, .. } = seal else { return Ok(0) };
        let exists = {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.has_table("webhook_events").map_err(|e| self.err("read the webhook queue", e))?
        };
        if !exists {
            return Ok(0);
        }
        let current = ring.current().id();
        let rows = self.query(
            "read the webhook queue",
            "SELECT id, source, event_id, body, body_key FROM webhook_events
             WHERE pipeline = $1 AND status = 'queued' AND body IS NOT NULL
               AND (body_key IS NULL OR body_key <> $2) ORDER BY id",
            &[text(pipeline), text(current)],
        )?;
        let bad = || self.err("read the webhook queue", "a row is not as this Sluice wrote it");
        let mut statements: Vec<(&str, Vec<Value>)> = Vec::new();
        for r in rows {
            let (source, event_id) = (r[1].text().ok_or_else(bad)?, r[2].text().ok_or_else(bad)?);
            let Some(plain) = seal.open((pipeline, source, event_id), r[3].text().ok_or_else(bad)?, r[4].text())?
            else {
                continue;
            };
            let (body, body_key) = seal.seal(pipeline, source, event_id, &plain)?;
            statements.push((
                "UPDATE webhook_events SET body = $1, body_key = $2 WHERE id = $3",
                vec![body, body_key, Value::Int(r[0].int().ok_or_else(bad)?)],
            ));
        }
        if statements.is_empty() {
            return Ok(0);
        }
        {
            let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
            conn.transaction(&statements).map_err(|e| self.err("re-encrypt the webhook queue", e))?;
        }
        if self.key != "state.url" {
            // SQLite leaves a replaced row's old bytes in free pages and in the WAL: rewrite
            // the file and empty the WAL, so no byte of the store holds a body in plain text
            // (or under a retired key) any more.
            for sql in ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"] {
                self.query("compact the state store after re-encrypting", sql, &[])?;
            }
        }
        Ok(statements.len() as u64)
    }

    /// Marks rows processed (their records are durable in the sinks or the DLQ) and drops
    /// their bodies, in one transaction.
    pub fn webhooks_processed(&self, ids: &[i64], at: &str) -> Result<(), RunError> {
        let statements: Vec<(&str, Vec<Value>)> = ids
            .iter()
            .map(|id| {
                (
                    "UPDATE webhook_events SET status = 'processed', body = NULL, body_key = NULL, processed_at = $1 WHERE id = $2",
                    vec![text(at), Value::Int(*id)],
                )
            })
            .collect();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.transaction(&statements).map_err(|e| self.err("update the webhook queue", e))
    }

    /// How many events of `pipeline` are `queued` and `processed`.
    pub fn webhook_counts(&self, pipeline: &str) -> Result<(u64, u64), RunError> {
        let rows = self.query(
            "read the webhook queue",
            "SELECT status, COUNT(*) FROM webhook_events WHERE pipeline = $1 GROUP BY status",
            &[text(pipeline)],
        )?;
        let (mut queued, mut processed) = (0, 0);
        for r in rows {
            let n = r.get(1).and_then(Value::int).unwrap_or(0).max(0) as u64;
            match r.first().and_then(Value::text) {
                Some("queued") => queued = n,
                Some("processed") => processed = n,
                _ => {}
            }
        }
        Ok((queued, processed))
    }

    /// The pipeline's sync requests, oldest first: what a sync source (Plaid, FHIR) picks up.
    pub fn sync_requests(&self, pipeline: &str) -> Result<Vec<SyncRequest>, RunError> {
        let rows = self.query(
            "read the sync requests",
            "SELECT source, provider, account, event_id, event_type, requested_at, status
             FROM webhook_sync_requests WHERE pipeline = $1 ORDER BY id",
            &[text(pipeline)],
        )?;
        let bad = || self.err("read the sync requests", "a row is not as this Sluice wrote it");
        rows.into_iter()
            .map(|r| {
                let t = |i: usize| r[i].text().map(str::to_string).ok_or_else(bad);
                Ok(SyncRequest {
                    source: t(0)?,
                    provider: t(1)?,
                    account: r[2].text().map(str::to_string),
                    event_id: t(3)?,
                    event_type: t(4)?,
                    requested_at: t(5)?,
                    status: t(6)?,
                })
            })
            .collect()
    }
}
