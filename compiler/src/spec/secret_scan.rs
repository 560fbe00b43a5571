//! Finds live credentials written into a spec: every string value of every spec file is matched
//! against the shapes of well-known secrets (private keys, cloud and payment API keys, access
//! tokens), wherever it is written, so a key pasted into a description, a header or a mapping
//! literal is refused (SL205) before the spec reaches git.
//!
//! Invariants:
//! - The diagnostic names the kind of secret and points at the value; its text never repeats the
//!   value (the snippet under it shows the user's own line, as every diagnostic does).
//! - Only distinctive shapes count: a prefix that vendors reserve for secrets and a body of the
//!   right alphabet and length, so ordinary data (identifiers, codes, hashes) is never flagged.
//!   References (`${VAR}`, `${file:...}`) never match.

use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::yaml::{Node, Value};

/// What a secret-shaped value is, if it is one.
pub fn secret_kind(text: &str) -> Option<&'static str> {
    let t = text.trim();
    if t.contains("-----BEGIN") && t.contains("PRIVATE KEY-----") {
        return Some("a PEM private key");
    }
    // Tokens inside longer text (`Authorization: Bearer sk_live_...`) count too.
    t.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '=' | ':')).find_map(token_kind)
}

fn alnum(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn token_kind(token: &str) -> Option<&'static str> {
    let body_after = |prefix: &str| token.strip_prefix(prefix);
    for prefix in ["sk_live_", "rk_live_", "sk_test_", "rk_test_", "whsec_"] {
        if let Some(body) = body_after(prefix)
            && body.len() >= 16
            && alnum(body)
        {
            return Some("a Stripe secret key");
        }
    }
    if token.len() == 20
        && (token.starts_with("AKIA") || token.starts_with("ASIA"))
        && token[4..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Some("an AWS access key id");
    }
    for prefix in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        if let Some(body) = body_after(prefix)
            && body.len() >= 36
            && alnum(body)
        {
            return Some("a GitHub token");
        }
    }
    if let Some(body) = body_after("github_pat_")
        && body.len() >= 40
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Some("a GitHub token");
    }
    for prefix in ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-"] {
        if let Some(body) = body_after(prefix)
            && body.len() >= 20
            && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some("a Slack token");
        }
    }
    if let Some(body) = body_after("AIza")
        && body.len() == 35
        && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Some("a Google API key");
    }
    if is_jwt(token) {
        return Some("a JSON Web Token");
    }
    None
}

/// Three base64url parts, the first two JSON objects (`eyJ` is `{"` encoded).
fn is_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && parts.iter().all(|p| p.len() >= 10 && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

/// SL205 for every string value of `root` (keys are names, not values) shaped like a secret.
pub fn scan(root: &Node, out: &mut Vec<Diagnostic>) {
    match &root.value {
        Value::Str { text, .. } => {
            if let Some(kind) = secret_kind(text) {
                out.push(
                    Diagnostic::error(codes::INLINE_SECRET, format!("this value looks like {kind}"))
                        .label(root.span, "a secret written into the spec")
                        .help(
                            "revoke it if it was ever committed, then reference it instead: `${VARIABLE}` set where Sluice runs, or `${file:path}` outside the repository",
                        ),
                );
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| scan(i, out)),
        Value::Map(entries) => entries.iter().for_each(|(_, v)| scan(v, out)),
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn well_known_secret_shapes_are_recognised() {
        let stripe = format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc");
        let cases = [
            (stripe.as_str(), "a Stripe secret key"),
            ("Bearer sk_test_51H8xYzAbCdEfGhIjKlMnOp", "a Stripe secret key"),
            ("AKIAIOSFODNN7EXAMPLE", "an AWS access key id"),
            ("ghp_0123456789abcdefghijABCDEFGHIJ012345", "a GitHub token"),
            ("xoxb-123456789012-1234567890123-AbCdEf", "a Slack token"),
            ("AIzaSyA-1234567890abcdefghijklmnopqrstu", "a Google API key"),
            (
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "a JSON Web Token",
            ),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...\n-----END RSA PRIVATE KEY-----", "a PEM private key"),
        ];
        for (text, kind) in cases {
            assert_eq!(secret_kind(text), Some(kind), "{text}");
        }
    }

    #[test]
    fn ordinary_values_and_references_pass() {
        for text in [
            "${STRIPE_SECRET_KEY}",
            "${file:keys/stripe.key}",
            "sk_live_",
            "sk_live_short",
            "AKIA123",
            "MSH-9.1 == \"ADT\"",
            "patient.identifiers[*].value",
            "h:3f1a9c0b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a",
            "-----BEGIN CERTIFICATE-----",
            "https://api.example.com/ingest?tenant=t1",
            "eyJhbGciOi.notatoken",
        ] {
            assert_eq!(secret_kind(text), None, "{text}");
        }
    }

    proptest! {
        #[test]
        fn any_text_is_scanned_without_panicking(text in "\\PC{0,200}") {
            let _ = secret_kind(&text);
        }
    }
}
