//! What the financial API sources (`stripe`, `quickbooks`, `plaid`) share as written: their
//! `connection` looked up among the pipeline's connections, their `base_url` checked and
//! planned, and a mapping path checked against a vendor's schema table (`sluice_finance`).
//! Each source module keeps its own codes and wording and calls these with them.
//!
//! Invariants:
//! - A credential goes over plain http only to this machine: [`plain_http`] refuses a
//!   `base_url` that would send one elsewhere.
//! - Diagnostics quote only what the spec wrote (names, paths), never data.

use sluice_finance::paths::{Checked, PathError};

use crate::codes::Code;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::source::Span;
use crate::spec::connections::ConnectionSpec;
use crate::spec::reader::{self, Cx, Spanned};

/// The connection `name` of the pipeline, or `code` saying it is missing (with a did-you-mean,
/// or `declare` as the help when the pipeline has no connection at all).
pub fn find_connection<'a>(
    name: &Spanned,
    connections: &'a [ConnectionSpec],
    code: &'static Code,
    declare: &str,
) -> Result<&'a ConnectionSpec, Diagnostic> {
    if let Some(conn) = connections.iter().find(|c| c.plan.name == name.text) {
        return Ok(conn);
    }
    let names: Vec<&str> = connections.iter().map(|c| c.plan.name.as_str()).collect();
    let help = match did_you_mean(&name.text, names.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None if names.is_empty() => declare.to_string(),
        None => format!("the pipeline's connections are: {}", names.join(", ")),
    };
    Err(Diagnostic::error(code, format!("the pipeline has no connection `{}`", name.text))
        .label(name.span, "not under `connections:`")
        .help(help))
}

/// Reads `base_url`; `code` when it is not `http(s)://host[:port][/path]` (`default` is what
/// leaving it out gives, `credential` what the connection holds: "key", "token").
pub fn base_url(
    cx: &mut Cx,
    obj: &reader::Obj<'_>,
    code: &'static Code,
    default: &str,
    credential: &str,
) -> Option<Spanned> {
    let url = obj.get("base_url").and_then(|n| reader::string(cx, n, "`base_url`"))?;
    if !crate::fhir_rest::valid_base_url(&url.text) {
        cx.push(
            Diagnostic::error(code, "`base_url` is not a base URL Sluice can use")
                .label(url.span, "expected http(s)://host[:port][/path]")
                .help(format!(
                    "leave it out for `{default}`; it holds no credentials, query or fragment (the {credential} is the connection's)"
                )),
        );
    }
    Some(url)
}

/// `code` when `base_url` would send connection `name`'s `credential` ("key or token") over
/// plain http to another machine (`what`: "a Stripe key", the message's subject).
pub fn plain_http(
    base_url: Option<&Spanned>,
    name: &Spanned,
    code: &'static Code,
    what: &str,
    credential: &str,
) -> Option<Diagnostic> {
    let u = base_url.filter(|u| !crate::plan::connection::url_allowed(&u.text))?;
    Some(
        Diagnostic::error(code, format!("{what} would be sent over plain http to another machine"))
            .label(u.span, "http:// to a host that is not this machine")
            .label(name.span, format!("sends this connection's {credential}"))
            .help("use an https:// base URL (plain http is accepted only to 127.0.0.1, localhost or [::1]), or leave `base_url` out"),
    )
}

/// The planned base URL: as written or `default`, without a trailing `/`.
pub fn planned_base_url(base_url: Option<&Spanned>, default: &str) -> String {
    base_url.map_or(default, |u| u.text.as_str()).trim_end_matches('/').to_string()
}

/// How a vendor's paths are described in a path diagnostic.
pub struct PathWords<'a> {
    pub code: &'static Code,
    /// `a Stripe `charge``.
    pub what: &'a str,
    /// The label at the wrong step.
    pub label: &'a str,
    /// Said when no step matched at all: what paths look like.
    pub syntax: &'a str,
}

/// A path checked against a vendor's table (`checked`), as the compiler resolves it: walked at
/// run time like a FHIR path (the same JSON walk, `[*]` dropped), or a diagnostic pointing at
/// the first unknown step of `text` written at `span`, with a did-you-mean.
pub fn resolve_path(
    text: &str,
    span: Span,
    checked: Result<Checked, PathError>,
    words: &PathWords<'_>,
) -> Result<crate::fhir::Resolved, Diagnostic> {
    let e = match checked {
        Ok(c) => {
            return Ok(crate::fhir::Resolved {
                path: text.replace("[*]", ""),
                value_type: c.kind.value_type(),
                phi: c.class,
                multi: c.multi,
            });
        }
        Err(e) => e,
    };
    Err(path_error(text, span, e, words))
}

/// The diagnostic of a path `text` written at `span` that is not in a vendor's table: at the
/// first unknown step (`e`), with a did-you-mean among the steps valid there.
pub fn path_error(text: &str, span: Span, e: PathError, words: &PathWords<'_>) -> Diagnostic {
    let exact = span.end - span.start == text.len();
    let at = if exact && e.len > 0 {
        let end = (e.offset + e.len).min(text.len());
        Span::new(span.file, span.start + e.offset.min(end), span.start + end)
    } else {
        span
    };
    let wrong = text.get(e.offset..(e.offset + e.len).min(text.len())).unwrap_or(text);
    let valid = match e.candidates.len() {
        0 => words.syntax.to_string(),
        1..=16 => format!("valid here: {}", e.candidates.join(", ")),
        n => format!("valid here: {}, ... ({n} in all)", e.candidates[..12].join(", ")),
    };
    let best = did_you_mean(wrong, e.candidates.iter().map(String::as_str))
        .or_else(|| did_you_mean(text, e.candidates.iter().map(String::as_str)));
    let help = match best {
        Some(b) => {
            let mut c = valid.chars();
            let valid = c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default();
            format!("did you mean `{b}`? {valid}")
        }
        None => valid,
    };
    Diagnostic::error(words.code, format!("`{text}` is not a path of {}", words.what)).label(at, words.label).help(help)
}
