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

use super::{Store, Value, text};
use crate::error::RunError;

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
    pub body: String,
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
            statements.push((
                "INSERT INTO webhook_events (pipeline, source, event_id, event_type, received_at, status, body)
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6) ON CONFLICT (pipeline, source, event_id) DO NOTHING",
                vec![
                    text(pipeline),
                    text(source),
                    text(e.event_id),
                    text(e.event_type),
                    text(received_at),
                    text(e.body),
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

    /// Up to `limit` queued events of `pipeline` after row `after`, oldest first.
    pub fn queued_webhooks(&self, pipeline: &str, after: i64, limit: i64) -> Result<Vec<QueuedRow>, RunError> {
        let rows = self.query(
            "read the webhook queue",
            "SELECT id, source, body FROM webhook_events
             WHERE pipeline = $1 AND status = 'queued' AND id > $2 ORDER BY id LIMIT $3",
            &[text(pipeline), Value::Int(after), Value::Int(limit)],
        )?;
        let bad = || self.err("read the webhook queue", "a row is not as this Sluice wrote it");
        rows.into_iter()
            .map(|r| {
                Ok(QueuedRow {
                    id: r[0].int().ok_or_else(bad)?,
                    source: r[1].text().ok_or_else(bad)?.to_string(),
                    body: r[2].text().ok_or_else(bad)?.to_string(),
                })
            })
            .collect()
    }

    /// Marks rows processed (their records are durable in the sinks or the DLQ) and drops
    /// their bodies, in one transaction.
    pub fn webhooks_processed(&self, ids: &[i64], at: &str) -> Result<(), RunError> {
        let statements: Vec<(&str, Vec<Value>)> = ids
            .iter()
            .map(|id| {
                (
                    "UPDATE webhook_events SET status = 'processed', body = NULL, processed_at = $1 WHERE id = $2",
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
