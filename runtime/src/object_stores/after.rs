//! `after: {move_to: processed/}`: objects moved once the run that read them has completed.
//!
//! Invariants:
//! - Only after completion: a run's objects are moved after every record of them is durable
//!   in the sinks, the DLQ and the audit log, and the run is marked completed; an interrupted
//!   or failed run moves nothing (its resume reads the objects again, in place).
//! - Catching up: each completed run moves every object of the source still in place that an
//!   earlier run took (a crash between completion and the moves, a move that failed), so no
//!   object is left behind for good; none is read twice meanwhile (it is taken).
//! - A move that fails (RT139) is logged with the source's name and retried by the next run; it
//!   never fails a run whose records are already durable.

use std::collections::HashSet;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sluice_compiler::plan::ComponentKind;

use crate::compile::Compiled;
use crate::findings;
use crate::state::InputFile;

/// Moves the objects of every source with `move_to` that `taken` (URL and ETag: this run's
/// inputs and earlier runs') names and that are still in place. Returns how many moved.
pub fn move_taken(c: &Compiled<'_>, taken: &HashSet<(String, String)>) -> u64 {
    let mut moved = 0;
    for (i, comp) in c.plan.components.iter().enumerate() {
        let ComponentKind::Source(s) = &comp.kind else { continue };
        let (Some(remote), Some(prefix)) = (c.stores.get(i), s.store.as_ref().and_then(|p| p.move_to.as_ref())) else {
            continue;
        };
        // Listed again: what is still in place (`taken` holds no object that is not).
        let everything = HashSet::new();
        let listed = match super::list::list(remote, i, &comp.name, &s.paths, &everything) {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(code = findings::OBJECT_MOVE_FAILED, component = %comp.name, error = %e, "objects not moved");
                continue;
            }
        };
        for input in listed.iter().filter(|input| is_taken(input, taken)) {
            let key = input.path.strip_prefix(&remote.base).unwrap_or(&input.path).trim_start_matches('/');
            let (from, to) = (ObjectPath::from(key), ObjectPath::from(format!("{prefix}{key}")));
            match remote.block_on(remote.store.rename(&from, &to)) {
                Ok(()) => moved += 1,
                Err(e) => {
                    let e = super::run_error(&e, "move", &input.path, false);
                    tracing::warn!(code = findings::OBJECT_MOVE_FAILED, component = %comp.name, error = %e, "object not moved");
                }
            }
        }
    }
    moved
}

fn is_taken(input: &InputFile, taken: &HashSet<(String, String)>) -> bool {
    input.etag.as_ref().is_some_and(|etag| taken.contains(&(input.path.clone(), etag.clone())))
}
