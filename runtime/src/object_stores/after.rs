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
//! - Gone is said once (RT184): an object of this run that is no longer in place as the run
//!   read it (deleted, moved away by someone else, overwritten) is reported by this run, and
//!   only by it: later runs do not list it (or list its new version as a new object), and
//!   earlier runs' objects, moved or tagged long ago, are never compared with the listing. A
//!   404 to the tag or the move of any taken object is the same report, and nothing retries
//!   it. The log line never names the object (a key may hold a name); the caller records the
//!   objects gone in the audit log ([`Done::gone`]).

use std::collections::{HashMap, HashSet};

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
    /// The objects found gone before they could be tagged or moved (RT184).
    pub gone: Vec<Gone>,
}

/// An object a run read that was no longer in place, as that run read it, when its `after`
/// step came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    /// The source's component name.
    pub component: String,
    pub url: String,
    /// The ETag the run read it with.
    pub etag: String,
    pub reason: &'static str,
}

/// Why an object is gone, in fixed words (they reach the log as `object_gone`).
#[derive(Clone, Copy)]
enum Vanished {
    /// Not listed at its key any more, or a 404 to the tag or move.
    Deleted,
    /// Listed at its key with another ETag.
    Overwritten,
}

fn reason(why: Vanished, tagging: bool) -> &'static str {
    match (why, tagging) {
        (Vanished::Deleted, true) => "deleted or moved away by someone else before it was tagged",
        (Vanished::Deleted, false) => "deleted or moved away by someone else before it was moved",
        (Vanished::Overwritten, true) => {
            "overwritten before it was tagged: the new version is a new object, for the next run"
        }
        (Vanished::Overwritten, false) => {
            "overwritten before it was moved: the new version is a new object, for the next run"
        }
    }
}

/// Tags and moves the objects of every source with `after` that `taken` (URL and ETag: this
/// run's inputs and earlier runs') names and that are still in place; objects in `tagged`
/// already carry the tags. `this_run` (this run's inputs) are the objects reported when they
/// are no longer in place (RT184).
pub fn after_taken(
    c: &Compiled<'_>,
    this_run: &[InputFile],
    taken: &HashSet<(String, String)>,
    tagged: &HashSet<(String, String)>,
) -> Done {
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
        let tagging = tagger.is_some();
        let gone =
            |done: &mut Done, input: &InputFile, why: Vanished| report_gone(done, &comp.name, input, why, tagging);
        let now: HashMap<&str, Option<&str>> = listed.iter().map(|l| (l.path.as_str(), l.etag.as_deref())).collect();
        for input in this_run.iter().filter(|f| f.source == i) {
            let Some(etag) = input.etag.as_deref() else { continue };
            if tagged.contains(&(input.path.clone(), etag.to_string())) {
                continue;
            }
            match now.get(input.path.as_str()) {
                None => gone(&mut done, input, Vanished::Deleted),
                Some(listed_etag) if *listed_etag != Some(etag) => gone(&mut done, input, Vanished::Overwritten),
                Some(_) => {}
            }
        }
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
                        match gone_since(remote, &key) {
                            Some(why_gone) => gone(&mut done, input, why_gone),
                            None => warn_not_tagged(&comp.name, &input.path, &why),
                        }
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
                Err(Some(object_store::Error::NotFound { .. })) => {
                    report_gone(&mut done, &comp.name, input, Vanished::Deleted, false)
                }
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

/// Warns that `input` is gone (RT184), without its key, and keeps it for the audit log.
fn report_gone(done: &mut Done, component: &str, input: &InputFile, why: Vanished, tagging: bool) {
    let Some(etag) = input.etag.clone() else { return };
    let reason = reason(why, tagging);
    tracing::warn!(
        code = findings::OBJECT_GONE_BEFORE_AFTER,
        component = %component,
        object = %input.path,
        object_gone = reason,
        "object gone before its after step"
    );
    done.gone.push(Gone { component: component.to_string(), url: input.path.clone(), etag, reason });
}

/// Whether the object at `key` is gone, after a failed tag request: `None` when it is still
/// there (or the store cannot say), so the failure is the tag's own. Only a 404 counts: a
/// HEAD's ETag is not written like the listing's on every store (Azure quotes one and not the
/// other), and an overwrite since the listing is a moment's race the listing already covers.
fn gone_since(remote: &super::Remote, key: &ObjectPath) -> Option<Vanished> {
    match remote.block_on(remote.store.head(key)) {
        Err(object_store::Error::NotFound { .. }) => Some(Vanished::Deleted),
        _ => None,
    }
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
