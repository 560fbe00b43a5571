//! Objects already tagged by `after: {tag}` (`object_tags_applied`), for both backends: one row
//! per pipeline, object URL and ETag. Used by `crate::object_stores::after`, so that a completed
//! run tags only the objects no run tagged yet (this run's, and earlier ones' whose tagging
//! failed or was cut short by a crash), instead of asking the store about every object it
//! ever read.
//!
//! The table is created on first use (`CREATE TABLE IF NOT EXISTS`), like the vault's: a store
//! whose pipelines never tagged has none, and its version does not change.
//!
//! Invariants: a row is written only after the store accepted the tags; a missing row costs
//! one more (idempotent) tag request, never a lost tag.

use std::collections::HashSet;

use super::{Store, text};
use crate::error::RunError;

const DDL: &str = "CREATE TABLE IF NOT EXISTS object_tags_applied (
    pipeline    TEXT NOT NULL,
    url         TEXT NOT NULL,
    etag        TEXT NOT NULL,
    PRIMARY KEY (pipeline, url, etag)
)";

impl Store {
    /// The objects (URL and ETag) of `pipeline` that carry its tags.
    pub fn tagged_objects(&self, pipeline: &str) -> Result<HashSet<(String, String)>, RunError> {
        self.query("create the tagged objects' table", DDL, &[])?;
        let rows = self.query(
            "read the tagged objects",
            "SELECT url, etag FROM object_tags_applied WHERE pipeline = $1",
            &[text(pipeline)],
        )?;
        Ok(rows.iter().filter_map(|r| Some((r.first()?.text()?.to_string(), r.get(1)?.text()?.to_string()))).collect())
    }

    /// Records that the object `url` with `etag` carries `pipeline`'s tags.
    pub fn record_tagged(&self, pipeline: &str, url: &str, etag: &str) -> Result<(), RunError> {
        self.query("create the tagged objects' table", DDL, &[])?;
        self.query(
            "record a tagged object",
            "INSERT INTO object_tags_applied (pipeline, url, etag) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[text(pipeline), text(url), text(etag)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::state::Store;

    #[test]
    fn tagged_objects_are_kept_per_pipeline_across_connections() {
        let dir = std::env::temp_dir().join(format!("sluice-object-tags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = sluice_compiler::plan::StateTarget {
            kind: "sqlite".into(),
            path: dir.join("state.db").to_string_lossy().into_owned(),
            url: None,
            checkpoint_every_ms: 1000,
        };
        let a = Store::open(&target, None).unwrap();
        assert!(a.tagged_objects("p").unwrap().is_empty());
        a.record_tagged("p", "s3://b/k", "\"e1\"").unwrap();
        a.record_tagged("p", "s3://b/k", "\"e1\"").unwrap();
        drop(a);
        let b = Store::open(&target, None).unwrap();
        let expected: std::collections::HashSet<_> = [("s3://b/k".to_string(), "\"e1\"".to_string())].into();
        assert_eq!(b.tagged_objects("p").unwrap(), expected);
        assert!(b.tagged_objects("q").unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
