//! Operator actions on what a pipeline keeps, beside its runs: reading tokens back
//! (`sluice detokenize`), re-encrypting under the current key (`sluice keys rotate`) and
//! listing key ids (`sluice keys list`); and [`record`], which chains an operator action onto
//! the pipeline's audit log (also used by `sluice dlq purge`).
//!
//! Invariants:
//! - Audited first: the audit entry of an action that reveals or changes data is written
//!   before the action, so nothing happens unrecorded (a crash between the two leaves an entry
//!   for an action that may not have happened, never the reverse).
//! - Audit entries hold counts, key ids and the event name: never a value, never a token.
//! - A rotation takes the pipeline's lock, so it never runs beside a run of the pipeline.

use serde::Serialize;
use sluice_compiler::plan::{ComponentKind, Plan};

use crate::audit::{self, Chain};
use crate::error::RunError;
use crate::findings;
use crate::keys::KeyRing;
use crate::state::Store;
use crate::state::webhooks::BodySeal;
use crate::{RunOptions, time, vault};

/// Chains `body` (an object with an `event` member) onto the pipeline's audit log, if it has
/// one; `what` seeds the entry's run id (`purge`, `detokenize`, ...).
pub fn record<T: Serialize>(plan: &Plan, clock: &time::Clock, what: &str, body: T) -> Result<(), RunError> {
    let Some(a) = &plan.audit else { return Ok(()) };
    let path = std::path::Path::new(&a.path);
    // Opening for append first cuts a torn last line, so the chain goes on from a whole entry.
    let mut w = crate::sink::append(&a.path)?;
    let (last, head) = match audit::last_entry(path) {
        Ok(Some((seq, hash))) => (Some(seq), hash),
        Ok(None) => (None, String::new()),
        Err(e) => return Err(RunError::new(findings::IO, format!("audit log: {e}"))),
    };
    let run_id = crate::run_id(&plan.hash, &format!("{what}{}", clock.seed()));
    let mut chain = Chain::resume(&run_id, &plan.hash, &head);
    chain.write(&mut w, last.map_or(0, |l| l + 1), &clock.now(), body).map_err(|e| RunError::io("write", path, &e))?;
    crate::sink::finish(&mut w, &a.path)
}

fn needs_state(plan: &Plan, what: &str) -> RunError {
    RunError::new(
        findings::REPLAY_NEEDS_STATE,
        format!("pipeline `{}` has no state store, so it has no {what}", plan.pipeline),
    )
    .with_help("add `state: {path: ...}` to the pipeline")
}

/// The vault key rings of the pipeline's mask stages (one per distinct `vault_key`), each with
/// its reference.
pub fn vault_rings(plan: &Plan) -> Result<Vec<(String, KeyRing)>, RunError> {
    let mut rings: Vec<(String, KeyRing)> = Vec::new();
    for c in &plan.components {
        if let ComponentKind::Mask(m) = &c.kind
            && let Some(reference) = &m.vault_key
            && !rings.iter().any(|(r, _)| r == reference)
        {
            let ring = KeyRing::resolve(reference, &format!("vault_key of mask `{}`", c.name))?;
            rings.push((reference.clone(), ring));
        }
    }
    Ok(rings)
}

#[derive(Serialize)]
struct Detokenized {
    event: &'static str,
    tokens: u64,
}

/// The values of `tokens` (`None` for a token the vault does not have), after an audit entry
/// `detokenized` counting them. A token whose key is missing stops it (RT031).
pub fn detokenize(plan: &Plan, options: &RunOptions, tokens: &[String]) -> Result<Vec<Option<Vec<u8>>>, RunError> {
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let Some(target) = &plan.state else { return Err(needs_state(plan, "token vault")) };
    let rings = vault_rings(plan)?;
    if rings.is_empty() {
        return Err(RunError::new(
            findings::KEY_MISSING,
            format!("no mask stage of pipeline `{}` has a `vault_key`, so its vault cannot be read", plan.pipeline),
        )
        .with_help("detokenize with the pipeline whose policy `tokenize`s"));
    }
    let store = Store::open(target, None)?;
    record(plan, &clock, "detokenize", Detokenized { event: "detokenized", tokens: tokens.len() as u64 })?;
    tokens.iter().map(|t| vault::detokenize(&store, &rings, t)).collect()
}

/// What `sluice keys rotate` did.
#[derive(Clone, Debug, Serialize)]
pub struct RotateSummary {
    pub pipeline: String,
    /// Per vault key reference: the current key id and the rows re-encrypted.
    pub vaults: Vec<(String, String, u64)>,
    /// The DLQ's current key id and the entries re-encrypted, when it is encrypted.
    pub dlq: Option<(String, u64)>,
    /// The current key id and the queued webhook bodies re-encrypted, when the pipeline
    /// serves webhooks (`sluice serve`) and its DLQ has a key.
    pub webhooks: Option<(String, u64)>,
}

/// Replaces a file by `bytes` atomically: written beside it, synced, renamed over it, so a
/// crash leaves the old file or the new one, never a mix (`<path>.purge-tmp`, the name it had
/// when only `sluice dlq purge` rewrote files).
pub fn replace_file(path: &str, bytes: &[u8]) -> Result<(), RunError> {
    use std::io::Write;
    let tmp = format!("{path}.purge-tmp");
    let tmp_path = std::path::Path::new(&tmp);
    let mut f = std::fs::File::create(tmp_path).map_err(|e| RunError::io("create", tmp_path, &e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| RunError::io("write", tmp_path, &e))?;
    std::fs::rename(tmp_path, path).map_err(|e| RunError::io("replace", std::path::Path::new(path), &e))
}

/// Re-seals every DLQ entry not under the current key; how many.
fn rotate_dlq(plan: &Plan, store: &mut Store, key: &crate::dlq::DlqKey) -> Result<u64, RunError> {
    let Some(d) = &plan.dlq else { return Ok(0) };
    let bad = |e: String| {
        RunError::new(findings::DLQ_UNREADABLE, format!("DLQ {}: {e}", d.shown(plan.state.as_ref())))
            .with_help("add the key it names after the current one in `encryption_key`, then rotate again")
    };
    if d.in_state_store() {
        let mut changed = Vec::new();
        for (row, entry) in store.dlq_entries(&plan.pipeline)? {
            if let Some(new) = crate::dlq::reseal_line(&entry, key).map_err(bad)? {
                changed.push((row, new));
            }
        }
        store.dlq_replace(&plan.pipeline, &changed)?;
        return Ok(changed.len() as u64);
    }
    let text = match std::fs::read_to_string(&d.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(RunError::io("read", std::path::Path::new(&d.path), &e)),
    };
    let mut out = String::with_capacity(text.len());
    let mut changed = 0u64;
    for line in text.lines().filter(|l| !l.is_empty()) {
        match crate::dlq::reseal_line(line, key).map_err(bad)? {
            Some(new) => {
                changed += 1;
                out.push_str(&new);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    if changed > 0 {
        replace_file(&d.path, out.as_bytes())?;
    }
    Ok(changed)
}

#[derive(Serialize)]
struct Rotated<'a> {
    event: &'static str,
    current_keys: &'a [String],
}

/// Re-encrypts every vault row, DLQ entry and queued webhook body under the current key of
/// its ring, after an audit entry `keys_rotated` naming the current key ids. Refused while a
/// run of the pipeline is unfinished (a resume would cut the DLQ back to lengths this changes)
/// and while `sluice serve` of it runs (it holds the queue's lock).
pub fn rotate(plan: &Plan, options: &RunOptions) -> Result<RotateSummary, RunError> {
    let clock = time::Clock::new(options.fixed_clock.as_deref())?;
    let Some(target) = &plan.state else { return Err(needs_state(plan, "encrypted state to rotate")) };
    let rings = vault_rings(plan)?;
    let dlq_key = match &plan.dlq {
        Some(d) => crate::dlq::key_for(d)?,
        None => None,
    };
    let mut store = Store::open(target, Some(&plan.pipeline))?;
    // The webhook queue's lock too: never beside a `sluice serve` sealing under the old key.
    let queue_seal = if crate::webhooks::serves(plan) { Some(crate::webhooks::queue_seal(plan)?) } else { None };
    let _queue_lock = match &queue_seal {
        Some(BodySeal::Keys { .. }) => {
            Some(Store::open(target, Some(&crate::webhooks::queue_lock(&plan.pipeline))).map_err(|e| {
                if e.code != findings::STATE_LOCKED {
                    return e;
                }
                RunError::new(
                    findings::STATE_LOCKED,
                    format!("the webhook queue of pipeline `{}` is in use by a `sluice serve`", plan.pipeline),
                )
                .with_help("stop `sluice serve` (Ctrl-C or SIGTERM), rotate, then serve again with the same keys")
            })?)
        }
        _ => None,
    };
    if let Some(row) = store.unfinished(&plan.pipeline)? {
        return Err(RunError::new(
            findings::RUN_UNFINISHED,
            format!("run {} of pipeline `{}` did not finish ({})", row.run_id, plan.pipeline, row.status.as_str()),
        )
        .with_help("finish it first (`sluice run --resume`) or start over (`--restart`), then rotate"));
    }
    let mut current: Vec<String> = rings.iter().map(|(_, r)| r.current().id().to_string()).collect();
    current.extend(dlq_key.as_ref().map(|k| k.current_id().to_string()));
    record(plan, &clock, "rotate", Rotated { event: "keys_rotated", current_keys: &current })?;
    let mut vaults = Vec::new();
    for (reference, ring) in &rings {
        let done = vault::rotate(&mut store, ring, reference)?;
        vaults.push((reference.clone(), ring.current().id().to_string(), done.resealed));
    }
    let dlq = match &dlq_key {
        Some(key) => Some((key.current_id().to_string(), rotate_dlq(plan, &mut store, key)?)),
        None => None,
    };
    let webhooks = match &queue_seal {
        Some(seal @ BodySeal::Keys { ring, .. }) => {
            Some((ring.current().id().to_string(), store.reseal_webhooks(&plan.pipeline, seal)?))
        }
        _ => None,
    };
    Ok(RotateSummary { pipeline: plan.pipeline.clone(), vaults, dlq, webhooks })
}

/// One configured key ring as `sluice keys list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct KeyListing {
    /// `vault_key` or `dlq.encryption_key`.
    pub what: &'static str,
    pub reference: String,
    /// Key ids, the current one first.
    pub keys: Vec<String>,
}

/// What `sluice keys list` shows.
#[derive(Clone, Debug, Serialize)]
pub struct KeyReport {
    pub rings: Vec<KeyListing>,
    /// Per key id, the vault rows it seals (ids no ring holds included: those rows cannot be
    /// read).
    pub vault_rows: Vec<(String, u64)>,
}

/// The configured vault and DLQ keys, and how many vault rows each key id seals.
pub fn list(plan: &Plan) -> Result<KeyReport, RunError> {
    let rings = vault_rings(plan)?;
    let mut listings: Vec<KeyListing> = rings
        .iter()
        .map(|(reference, ring)| KeyListing {
            what: "vault_key",
            reference: reference.clone(),
            keys: ring.ids().map(str::to_string).collect(),
        })
        .collect();
    if let Some(d) = &plan.dlq
        && let (Some(reference), Some(key)) = (&d.encryption_key, crate::dlq::key_for(d)?)
    {
        listings.push(KeyListing {
            what: "dlq.encryption_key",
            reference: reference.clone(),
            keys: key.ids().map(str::to_string).collect(),
        });
    }
    let counts = match &plan.state {
        Some(target) => Store::open(target, None)?.vault_key_counts()?,
        None => Vec::new(),
    };
    Ok(KeyReport { rings: listings, vault_rows: counts })
}
