//! Roles of a pipeline (`roles:`): who may do the operator actions that reveal or change
//! what the pipeline keeps (the decrypted DLQ, replays, purges, detokenization, key rotation).
//! The runtime enforces them (`sluice_runtime::access`); this reads and checks them. A role may
//! also name the masking policy of an audience (`masking: policy.yaml`): a sink with
//! `audience: ROLE` is masked with it (the compiler adds that mask before the sink).
//!
//! Invariants:
//! - A role is known by the SHA-256 of its key only (`key_sha256`, 64 hex digits): the spec,
//!   which lives in git, never holds a key.
//! - `may` names only operations Sluice governs ([`OPERATIONS`]), so a typo does not silently
//!   leave an operation closed to everyone.

use super::reader::{self, Cx};
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::RolePlan;
use crate::yaml::Node;

/// The operations `may` can list.
pub const OPERATIONS: &[&str] =
    &["dlq_raw", "dlq_replay", "dlq_purge", "detokenize", "keys_rotate", "purge", "audit_export"];

/// A role as written: its plan, where its name is, and its audience's masking policy file.
pub struct RoleSpec {
    pub plan: RolePlan,
    pub name_span: crate::source::Span,
    pub masking: Option<reader::Spanned>,
}

pub fn read(cx: &mut Cx, node: &Node) -> Vec<RoleSpec> {
    let Some(entries) = reader::entries(cx, node, "`roles`") else { return Vec::new() };
    let mut roles = Vec::new();
    for (name, key_node, body) in entries {
        let Some(obj) = reader::object(cx, body, &shape::ROLE, &format!("role `{name}`")) else { continue };
        let key = obj.get("key_sha256").and_then(|n| reader::string(cx, n, "`key_sha256`"));
        let key_ok = key.as_ref().is_some_and(|k| k.text.len() == 64 && k.text.bytes().all(|b| b.is_ascii_hexdigit()));
        if let (Some(k), false) = (&key, key_ok) {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("role `{name}`: `key_sha256` is not a SHA-256"))
                    .label(k.span, "expected 64 hex digits")
                    .help("write the hex SHA-256 of the role's key, never the key: `printf %s \"$KEY\" | sha256sum`"),
            );
        }
        let mut may = Vec::new();
        for op in obj.get("may").map(|n| reader::string_list(cx, n, "`may`", true)).unwrap_or_default() {
            if OPERATIONS.contains(&op.text.as_str()) {
                may.push(op.text);
            } else {
                let d = Diagnostic::error(codes::INVALID_VALUE, format!("role `{name}`: no operation `{}`", op.text))
                    .label(op.span, "not an operation roles govern")
                    .help(format!("the operations: {}", OPERATIONS.join(", ")));
                cx.push(d.suggest(&op.text, OPERATIONS.iter().copied()));
            }
        }
        let masking = obj.get("masking").and_then(|n| reader::string(cx, n, "`masking`"));
        if let (Some(k), true) = (key, key_ok) {
            let plan = RolePlan { name: name.to_string(), key_sha256: k.text.to_ascii_lowercase(), may, masking: None };
            roles.push(RoleSpec { plan, name_span: key_node.span, masking });
        }
    }
    roles
}
