//! Roles: who may do the operator actions that reveal or change kept data (and export the
//! audit log). A pipeline that
//! declares `roles:` closes them: each action needs `--role NAME` naming a role whose `may`
//! lists it, and that role's key (read from a secret reference, `${SLUICE_ROLE_KEY}` unless
//! told otherwise), whose SHA-256 is the role's `key_sha256` in the spec. A pipeline without
//! `roles:` leaves them open, as before roles existed.
//!
//! Invariants:
//! - Every refusal is chained onto the pipeline's audit log (`access_refused`: the operation,
//!   the role as given, and why) before the error is returned; the entry never holds a key, a
//!   value or a token.
//! - The key is compared by its SHA-256, in constant time; the spec holds only the hash, so a
//!   spec in git gives no one a role.
//! - The error says what is missing (a role, a role that may, the right key) and never echoes
//!   the key given.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_compiler::plan::Plan;

use crate::error::RunError;
use crate::findings;
use crate::secrets::Secret;
use crate::time;

/// The operations roles govern, by the name `may` lists them with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `sluice dlq show --raw`: the decrypted message.
    DlqRaw,
    DlqReplay,
    DlqPurge,
    Detokenize,
    KeysRotate,
    /// `sluice purge`: expired data, or one person's.
    Purge,
    /// `sluice audit export`: the audit log, for other tools.
    AuditExport,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::DlqRaw => "dlq_raw",
            Operation::DlqReplay => "dlq_replay",
            Operation::DlqPurge => "dlq_purge",
            Operation::Detokenize => "detokenize",
            Operation::KeysRotate => "keys_rotate",
            Operation::Purge => "purge",
            Operation::AuditExport => "audit_export",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Operation::DlqRaw => "sluice dlq show --raw",
            Operation::DlqReplay => "sluice dlq replay",
            Operation::DlqPurge => "sluice dlq purge",
            Operation::Detokenize => "sluice detokenize",
            Operation::KeysRotate => "sluice keys rotate",
            Operation::Purge => "sluice purge",
            Operation::AuditExport => "sluice audit export",
        }
    }
}

/// Who asks: the role named, and the key given for it (`None` when it could not be read).
#[derive(Debug)]
pub struct Credentials {
    pub role: String,
    pub key: Option<Secret>,
}

#[derive(Serialize)]
struct Refused<'a> {
    event: &'static str,
    operation: &'static str,
    role: Option<&'a str>,
    why: &'static str,
}

/// The hex SHA-256 of a key, as `key_sha256` holds it.
pub fn key_sha256(key: &[u8]) -> String {
    hex::encode(Sha256::digest(key))
}

/// Allows `op` on the pipeline of `plan` for `who`, or records the refusal in the audit log and
/// returns RT034.
pub fn authorize(
    plan: &Plan,
    fixed_clock: Option<&str>,
    op: Operation,
    who: Option<&Credentials>,
) -> Result<(), RunError> {
    if plan.roles.is_empty() {
        return Ok(());
    }
    let allowed: Vec<&str> =
        plan.roles.iter().filter(|r| r.may.iter().any(|m| m == op.name())).map(|r| r.name.as_str()).collect();
    let why = match who {
        None => Some("no role given"),
        Some(c) => match plan.roles.iter().find(|r| r.name == c.role) {
            None => Some("no such role"),
            Some(r) if !r.may.iter().any(|m| m == op.name()) => Some("the role may not"),
            Some(r) => match &c.key {
                None => Some("no key given"),
                Some(k) => {
                    let given = Sha256::digest(k.expose());
                    let expected = hex::decode(&r.key_sha256).unwrap_or_default();
                    // Every byte compared, whatever differs first: no timing hint.
                    let differ = given.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b));
                    if expected.len() == given.len() && differ == 0 { None } else { Some("wrong key") }
                }
            },
        },
    };
    let Some(why) = why else { return Ok(()) };
    let clock = time::Clock::new(fixed_clock)?;
    let role = who.map(|c| c.role.as_str());
    crate::operator::record(
        plan,
        &clock,
        "refused",
        Refused { event: "access_refused", operation: op.name(), role, why },
    )?;
    let roles = if allowed.is_empty() { "no role".to_string() } else { allowed.join(", ") };
    Err(RunError::new(
        findings::ACCESS_REFUSED,
        format!("`{}` on pipeline `{}` refused: {why} (roles that may: {roles})", op.command(), plan.pipeline),
    )
    .with_help(format!(
        "give `--role NAME` (one of: {roles}) and that role's key in `SLUICE_ROLE_KEY` (or `--role-key ${{file:...}}`); \
         the refusal is in the audit log"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_of_a_key_is_hex_sha256() {
        assert_eq!(key_sha256(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
