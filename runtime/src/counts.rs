//! The record counts every report of a run carries: the writer's totals, checkpoints, the
//! progress snapshot (line and metrics) and the run summary all hold one [`RecordCounts`],
//! so a new count is added once.
//!
//! Invariant: each source record has exactly one disposition, so a complete run balances:
//! `records_in == delivered + dlq + filtered` ([`RecordCounts::balanced`]). `warnings` and
//! `parts_dropped` count alongside, not in the balance.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordCounts {
    pub records_in: u64,
    /// Records that reached at least one sink and no DLQ.
    pub delivered: u64,
    /// Records with at least one DLQ entry (even if another branch reached a sink).
    pub dlq: u64,
    /// Records dropped by a filter or a route without a matching branch.
    pub filtered: u64,
    /// Records that carried at least one warning when they reached a sink or the DLQ.
    pub warnings: u64,
    /// Parts (segments) a parser profile with `bad_segments: drop` left out of records that
    /// went on, each kept in the DLQ as an entry of its own. Not in the balance, which counts
    /// records. (Absent from checkpoints written before it was counted.)
    #[serde(default)]
    pub parts_dropped: u64,
}

impl RecordCounts {
    pub fn balanced(&self) -> bool {
        self.records_in == self.delivered + self.dlq + self.filtered
    }
}
