//! X12 acknowledgment control numbers in the state store (`x12_control_numbers`), for both
//! backends: one row per counter (`isa ZZ:RECEIVER`, `gs ZZ:RECEIVER`: the interchange and
//! group control numbers of the acknowledgments sent as that id), holding the last number
//! handed out. Used by `crate::x12_source` (a pipeline's `acks:`) and by `sluice ack --state`,
//! which share the counters of a store.
//!
//! The table is created on first use (`CREATE TABLE IF NOT EXISTS`), like the vault's: a store
//! that never acknowledged X12 has none, and its version does not change.
//!
//! Invariants: numbers are reserved in one atomic statement (`INSERT .. ON CONFLICT DO UPDATE
//! .. RETURNING`), committed before they are used, so two runs (or two processes) never get
//! the same number; they count from 1 and wrap after 999,999,999 (nine digits, ISA13's width).

use sluice_x12::envelope::InterchangeResult;

use super::{Store, Value, text};
use crate::error::RunError;

const DDL: &str = "CREATE TABLE IF NOT EXISTS x12_control_numbers (
    name        TEXT PRIMARY KEY,
    last        BIGINT NOT NULL
)";

/// The largest control number; the next is 1 again.
const MAX: i64 = 999_999_999;

impl Store {
    /// Reserves `n` (at least 1) consecutive control numbers of counter `name`; returns the
    /// first. A range that would pass [`MAX`] starts at 1 instead.
    pub fn x12_control_numbers(&self, name: &str, n: u32) -> Result<u32, RunError> {
        let n = i64::from(n.max(1));
        self.query("create the X12 control numbers", DDL, &[])?;
        let rows = self.query(
            "reserve X12 control numbers",
            "INSERT INTO x12_control_numbers (name, last) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET last = CASE
                 WHEN x12_control_numbers.last + $2 > $3 THEN $2
                 ELSE x12_control_numbers.last + $2 END
             RETURNING last",
            &[text(name), Value::Int(n), Value::Int(MAX)],
        )?;
        let last = self.returned("reserve X12 control numbers", rows)?;
        Ok(u32::try_from(last - n + 1).unwrap_or(1))
    }

    /// The ISA13 and first GS06 of the acknowledgment of `ic`: one interchange number and one
    /// group number per functional group (at least one), reserved under the id `ic` was sent to
    /// (ISA07:ISA08), which is the id its acknowledgment is sent as.
    pub fn x12_ack_control_numbers(&self, ic: &InterchangeResult) -> Result<(u32, u32), RunError> {
        let groups = ic.groups.iter().filter(|g| !g.functional_id.is_empty()).count().max(1);
        let groups = u32::try_from(groups).unwrap_or(u32::MAX);
        let sender = format!("{}:{}", ic.isa_element(7), ic.isa_element(8));
        let isa13 = self.x12_control_numbers(&format!("isa {sender}"), 1)?;
        let gs06 = self.x12_control_numbers(&format!("gs {sender}"), groups)?;
        Ok((isa13, gs06))
    }
}

#[cfg(test)]
mod tests {
    use crate::state::Store;

    #[test]
    fn numbers_never_repeat_across_connections() {
        let dir = std::env::temp_dir().join(format!("sluice-x12-numbers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = sluice_compiler::plan::StateTarget {
            kind: "sqlite".into(),
            path: dir.join("state.db").to_string_lossy().into_owned(),
            url: None,
            checkpoint_every_ms: 1000,
        };
        let a = Store::open(&target, None).unwrap();
        assert_eq!(a.x12_control_numbers("isa ZZ:X", 1).unwrap(), 1);
        assert_eq!(a.x12_control_numbers("gs ZZ:X", 3).unwrap(), 1);
        drop(a);
        let b = Store::open(&target, None).unwrap();
        assert_eq!(b.x12_control_numbers("isa ZZ:X", 1).unwrap(), 2);
        assert_eq!(b.x12_control_numbers("gs ZZ:X", 1).unwrap(), 4);
        assert_eq!(b.x12_control_numbers("isa ZZ:Y", 1).unwrap(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
