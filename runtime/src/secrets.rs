//! Resolution of secret references: `${VAR}` reads the environment variable `VAR`,
//! `${file:path}` reads a file (trailing line breaks removed), `${aws-sm:NAME}` and
//! `${aws-sm:NAME#key}` read AWS Secrets Manager ([`aws_sm`]).
//!
//! Invariants:
//! - A secret value is never printed, logged or put in an error: errors name the variable or
//!   the file only.
//! - Resolution happens once, before any record is processed, so a missing secret stops the
//!   run before anything is written.
//! - Text that is not a reference is taken literally (the compiler warns about literal
//!   secrets in specs).

use crate::error::RunError;
use crate::findings;

mod aws_profile;
mod aws_sm;
mod sigv4;

/// A resolved secret. `Debug` does not show the value.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret obtained otherwise than from a reference (an OAuth token, a PKCE verifier).
    pub fn from_bytes(bytes: Vec<u8>) -> Secret {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Resolves a reference. `what` names the plan item that needs it, for the error.
pub fn resolve(reference: &str, what: &str) -> Result<Secret, RunError> {
    resolve_with(reference, what, |name| std::env::var_os(name))
}

pub(crate) fn resolve_with(
    reference: &str,
    what: &str,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<Secret, RunError> {
    let trimmed = reference.trim();
    let Some(inner) = trimmed.strip_prefix("${").and_then(|s| s.strip_suffix('}')) else {
        return Ok(Secret(reference.as_bytes().to_vec()));
    };
    if let Some(rest) = inner.strip_prefix("aws-sm:") {
        return aws_sm::resolve(rest, what, env);
    }
    if let Some(path) = inner.strip_prefix("file:") {
        return match std::fs::read(path) {
            Ok(mut bytes) => {
                while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                    bytes.pop();
                }
                Ok(Secret(bytes))
            }
            Err(e) => Err(RunError::new(
                findings::SECRET_MISSING,
                format!("{what}: cannot read secret file `{path}`: {}", e.kind()),
            )),
        };
    }
    match env(inner) {
        Some(v) if !v.is_empty() => Ok(Secret(v.into_encoded_bytes())),
        _ => Err(RunError::new(findings::SECRET_MISSING, format!("{what}: environment variable `{inner}` is not set"))
            .with_help(format!("set `{inner}` in the environment of `sluice run`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_reference() {
        let env = |n: &str| (n == "KEY").then(|| std::ffi::OsString::from("s3cr3t"));
        let s = resolve_with("${KEY}", "mask", env).unwrap();
        assert_eq!(s.expose(), b"s3cr3t");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let err = resolve_with("${NOPE}", "mask `m`", env).unwrap_err();
        assert_eq!(err.code, "RT002");
        assert!(err.message.contains("NOPE"));
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn literal_and_file() {
        let env = |_: &str| None;
        assert_eq!(resolve_with("plain", "x", env).unwrap().expose(), b"plain");
        let dir = std::env::temp_dir().join(format!("sluice-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("k");
        std::fs::write(&f, "abc\n").unwrap();
        let r = format!("${{file:{}}}", f.display());
        assert_eq!(resolve_with(&r, "x", env).unwrap().expose(), b"abc");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
