//! Discovery of a source's objects: each `paths` pattern (`s3://bucket/inbound/**/*.hl7`) is
//! listed under its literal prefix (`inbound/`), and the keys its glob matches are kept.
//!
//! Invariants:
//! - Complete: the listing is consumed to its end, every page of it (the client follows the
//!   continuation tokens), so no object is skipped however many there are.
//! - Deterministic: objects are de-duplicated and sorted by URL, like local files.
//! - Once per object version: objects whose (URL, ETag) an earlier run took are left out, so
//!   objects that arrived late (after, or during, an earlier run's listing) are taken by the
//!   next run, and none twice. An object without an ETag (no store here lacks one) is keyed
//!   by its size and modification time instead.

use std::collections::{BTreeMap, HashSet};

use futures_util::StreamExt;
use globset::GlobBuilder;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sluice_compiler::plan::object_store::ObjectUrl;

use super::{Remote, run_error};
use crate::error::RunError;
use crate::findings;
use crate::state::InputFile;

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// The ETag the state store keeps for an object.
fn version_of(meta: &object_store::ObjectMeta) -> String {
    match &meta.e_tag {
        Some(e) => e.clone(),
        None => format!("size={};modified={}", meta.size, meta.last_modified.timestamp_nanos_opt().unwrap_or(0)),
    }
}

/// The objects of source `source` (component index, named `name`) matching `patterns`, sorted,
/// without those in `taken`.
pub fn list(
    remote: &Remote,
    source: usize,
    name: &str,
    patterns: &[String],
    taken: &HashSet<(String, String)>,
) -> Result<Vec<InputFile>, RunError> {
    let mut found: BTreeMap<String, InputFile> = BTreeMap::new();
    for pattern in patterns {
        let Some(Ok(url)) = ObjectUrl::parse(pattern) else {
            // The compiler lets only object URLs of this store through.
            return Err(RunError::new(
                findings::BAD_GLOB,
                format!("source `{name}`: `{pattern}` is not an object URL"),
            ));
        };
        let parts: Vec<&str> = url.key.split('/').collect();
        let literal = parts.iter().take_while(|p| !has_meta(p)).count();
        let matcher = if literal == parts.len() {
            None
        } else {
            let glob = GlobBuilder::new(&url.key).literal_separator(true).build().map_err(|e| {
                RunError::new(
                    findings::BAD_GLOB,
                    format!("source `{name}`: invalid path pattern `{pattern}`: {}", e.kind()),
                )
            })?;
            Some(glob.compile_matcher())
        };
        // The literal directories before the first wildcard: what to list under.
        let prefix = match &matcher {
            None => url.key.clone(),
            Some(_) => parts[..literal].join("/"),
        };
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
        let target = match &prefix {
            Some(p) => format!("{}/{p}", remote.base),
            None => remote.base.clone(),
        };
        let metas: Vec<object_store::ObjectMeta> = remote.block_on(async {
            let mut out = Vec::new();
            let mut stream = remote.store.list(prefix.as_ref());
            while let Some(item) = stream.next().await {
                out.push(item.map_err(|e| run_error(&e, "list", &target, false))?);
            }
            Ok::<_, RunError>(out)
        })?;
        let mut matched = 0usize;
        for meta in metas {
            let key = meta.location.as_ref();
            let keep = match &matcher {
                Some(m) => m.is_match(key),
                None => key == url.key,
            };
            if !keep {
                continue;
            }
            matched += 1;
            let path = format!("{}/{key}", remote.base);
            let etag = version_of(&meta);
            if taken.contains(&(path.clone(), etag.clone())) {
                continue;
            }
            let modified_ns = meta.last_modified.timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
            found.insert(path.clone(), InputFile { source, path, size: meta.size, modified_ns, etag: Some(etag) });
        }
        if matcher.is_none() && matched == 0 {
            return Err(RunError::new(
                findings::SOURCE_MISSING,
                format!("source `{name}`: object `{pattern}` does not exist"),
            ));
        }
    }
    Ok(found.into_values().collect())
}

/// Why `input` (an object an interrupted run read) is no longer what that run read, if it is
/// not: a resume must read the same bytes again to number its records the same way.
pub fn changed(remote: &Remote, input: &InputFile) -> Result<Option<&'static str>, RunError> {
    let key = input.path.strip_prefix(&remote.base).unwrap_or(&input.path).trim_start_matches('/');
    let location = ObjectPath::from(key);
    match remote.block_on(remote.store.head(&location)) {
        Ok(meta) if Some(version_of(&meta)) != input.etag => Ok(Some("was overwritten (its ETag changed)")),
        Ok(_) => Ok(None),
        Err(object_store::Error::NotFound { .. }) => Ok(Some("is gone")),
        Err(e) => Err(run_error(&e, "read", &input.path, false)),
    }
}
