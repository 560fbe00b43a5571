//! `after: {move_to: processed/, tag: {...}}`: objects tagged and moved once the run that read
//! them has completed.
//!
//! Invariants:
//! - Only after completion: a run's objects are tagged and moved after every record of them is
//!   durable in the sinks, the DLQ and the audit log, and the run is marked completed; an
//!   interrupted or failed run tags and moves nothing (its resume reads the objects again, in
//!   place).
//! - Only what a run took: an object is tagged or moved when it is still in place with the
//!   ETag a run took it with; one overwritten since (a new ETag) is a new object, for the next
//!   run to read, and is neither tagged nor moved.
//! - Catching up: each completed run handles every object of the source still in place that an
//!   earlier run took and that is not yet tagged (the state store's record) or moved (a crash
//!   between completion and these steps, a request that failed), so none is left behind for
//!   good; none is read twice meanwhile (it is taken), and tagging does not change an
//!   object's ETag, so it never makes an object look new.
//! - Tag, then move: with both, an object is moved only once it carries the tags, so a moved
//!   object always has them; one whose tagging failed stays in place. S3's copy keeps the
//!   tags; Azure's Copy Blob does not, so there the copy is given the object's whole tag set
//!   (its other tools' tags too) before the original is deleted.
//! - A tag (RT122) or a move (RT139) that fails is logged with the source's name and retried by
//!   the next run; it never fails a run whose records are already durable.

use std::collections::HashSet;

use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use sluice_compiler::plan::ComponentKind;

use crate::compile::Compiled;
use crate::findings;
use crate::state::InputFile;

/// What [`after_taken`] did.
#[derive(Debug, Default)]
pub struct Done {
    pub moved: u64,
    /// The objects (URL and ETag) tagged now, for the state store's record.
    pub tagged: Vec<(String, String)>,
}

/// Tags and moves the objects of every source with `after` that `taken` (URL and ETag: this
/// run's inputs and earlier runs') names and that are still in place; objects in `tagged`
/// already carry the tags.
pub fn after_taken(c: &Compiled<'_>, taken: &HashSet<(String, String)>, tagged: &HashSet<(String, String)>) -> Done {
    let mut done = Done::default();
    for (i, comp) in c.plan.components.iter().enumerate() {
        let ComponentKind::Source(s) = &comp.kind else { continue };
        let (Some(remote), Some(plan)) = (c.stores.get(i), s.store.as_ref()) else { continue };
        let tagger = remote.tagger.as_ref().filter(|_| !plan.tags.is_empty());
        if plan.move_to.is_none() && tagger.is_none() {
            continue;
        }
        // Listed again: what is still in place, with its ETag now.
        let everything = HashSet::new();
        let listed = match super::list::list(remote, i, &comp.name, &s.paths, &everything) {
            Ok(listed) => listed,
            Err(e) => {
                let code =
                    if plan.move_to.is_some() { findings::OBJECT_MOVE_FAILED } else { findings::OBJECT_TAG_FAILED };
                tracing::warn!(code, component = %comp.name, error = %e, "objects not tagged or moved");
                continue;
            }
        };
        for input in &listed {
            let Some(id) = taken_id(input, taken) else { continue };
            let key =
                ObjectPath::from(input.path.strip_prefix(&remote.base).unwrap_or(&input.path).trim_start_matches('/'));
            // A move on a store whose copy drops tags (Azure) tags the copy itself: it needs
            // the object's tag set, so the object's tags are read even when a run tagged it.
            let tags_for_copy = plan.move_to.is_some() && tagger.is_some_and(|t| !t.copy_keeps_tags());
            let mut tags_now = None;
            if let Some(tagger) = tagger.filter(|_| tags_for_copy || !tagged.contains(&id)) {
                match remote.block_on(tagger.tag(&key, &plan.tags)) {
                    Ok((_, now)) => {
                        if !tagged.contains(&id) {
                            done.tagged.push(id);
                        }
                        tags_now = Some(now);
                    }
                    Err(why) => {
                        warn_not_tagged(&comp.name, &input.path, &why);
                        continue;
                    }
                }
            }
            let Some(prefix) = &plan.move_to else { continue };
            let to = ObjectPath::from(format!("{prefix}{key}"));
            let moved = match (tagger, tags_now) {
                (Some(tagger), Some(tags)) if tags_for_copy => {
                    move_and_tag(remote, tagger, (&key, &to), &tags, &comp.name, &input.path)
                }
                _ => remote.block_on(remote.store.rename(&key, &to)).map_err(Some),
            };
            match moved {
                Ok(()) => done.moved += 1,
                Err(Some(e)) => {
                    let e = super::run_error(&e, "move", &input.path, false);
                    tracing::warn!(code = findings::OBJECT_MOVE_FAILED, component = %comp.name, error = %e, "object not moved");
                }
                // Already said (RT122).
                Err(None) => {}
            }
        }
    }
    done
}

/// The object's URL and ETag when a run took it with that ETag.
fn taken_id(input: &InputFile, taken: &HashSet<(String, String)>) -> Option<(String, String)> {
    let id = (input.path.clone(), input.etag.clone()?);
    taken.contains(&id).then_some(id)
}

fn warn_not_tagged(component: &str, object: &str, why: &str) {
    tracing::warn!(
        code = findings::OBJECT_TAG_FAILED,
        component = %component,
        object = %object,
        tag_error = %why,
        "object not tagged"
    );
}

/// A move on a store whose copy drops tags: copy, give the copy `tags` (the object's whole set),
/// and only then delete the original, so a moved object always carries them. A copy that cannot
/// be tagged is a warning (RT122) and the original stays, for the next run to move again (the
/// copy is overwritten then). `Err(None)`: already said.
fn move_and_tag(
    remote: &super::Remote,
    tagger: &super::tagging::Tagger,
    (from, to): (&ObjectPath, &ObjectPath),
    tags: &std::collections::BTreeMap<String, String>,
    component: &str,
    object: &str,
) -> Result<(), Option<object_store::Error>> {
    remote.block_on(remote.store.copy(from, to)).map_err(Some)?;
    if let Err(why) = remote.block_on(tagger.put(to, tags)) {
        warn_not_tagged(component, object, &format!("the moved copy: {why}"));
        return Err(None);
    }
    remote.block_on(remote.store.delete(from)).map_err(Some)
}
