//! Resolving FHIR R4 paths in expressions over FHIR records (a `format: fhir` source, a
//! mapping with `input: {schema: fhir/r4, resource_type: ...}`), mirroring [`crate::hl7`].
//!
//! A path is written relative to the resource (`name[0].family`, `birthDate`,
//! `identifier[*].value`, `value.as(Quantity).value`, `contained.ofType(Patient).name`) and
//! checked by `sluice_fhir`'s resolver against the bundled R4 schema: its value type, whether
//! it yields a list, and the PHI class of its identifying elements.
//!
//! Invariants:
//! - The path the plan carries is in *runtime form*, which the runtime walks over the
//!   resource's JSON without the schema: member names as JSON names (a picked choice type is
//!   spelled out, `value.as(Quantity)` -> `valueQuantity`; an unpicked one is `value[x]`),
//!   `[n]` indexes, `first()`, `last()`, `ofType(T)` on resources. `[*]` only says "every
//!   repetition", which an unindexed repeating element yields anyway, so it is dropped.
//! - Every error is a diagnostic at the exact characters of the path in the YAML, with the
//!   element names that would have been valid there as a did-you-mean; messages quote only
//!   the path text.

use sluice_fhir::path::PathError;
use sluice_fhir::schema::{Kind, schema};
use sluice_spec_core::{PhiClass, ValueType};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::source::Span;

/// The schema name of FHIR records (`Record.schema`, a mapping's `input.schema`).
pub const SCHEMA: &str = "fhir/r4";

/// What FHIR paths are checked against: one resource type.
#[derive(Clone, Copy, Debug)]
pub struct FhirEnv {
    pub resource_type: &'static str,
}

/// What a path addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The runtime form (see the module header).
    pub path: String,
    /// The type of one value (the path may yield several: [`Self::multi`]).
    pub value_type: ValueType,
    pub phi: Option<PhiClass>,
    pub multi: bool,
}

/// The concrete R4 resource type named `name`, spelled as the schema spells it.
pub fn resource_type(name: &str) -> Option<&'static str> {
    let s = schema();
    s.type_def(name)
        .filter(|t| t.kind == Kind::Resource && !matches!(t.name.as_str(), "Resource" | "DomainResource"))
        .map(|t| t.name.as_str())
}

/// SL230 for a name that is not an R4 resource type, with a did-you-mean.
pub fn unknown_resource_type(name: &str, span: Span) -> Diagnostic {
    let d = Diagnostic::error(codes::FHIR_UNKNOWN_RESOURCE_TYPE, format!("FHIR R4 has no resource type `{name}`"))
        .label(span, "not an R4 resource type");
    let all: Vec<&str> = schema().resource_types().collect();
    match did_you_mean(name, all.iter().copied()) {
        Some(best) => d.help(format!("did you mean `{best}`? Resource types are case-sensitive")),
        None => d.help("write a resource type of FHIR R4 such as `Patient`, `Observation` or `Encounter`"),
    }
}

#[derive(Debug)]
enum StepKind {
    Name(String),
    /// `[n]`, or `[*]` (`None`).
    Index(Option<usize>),
    Call(String, Option<String>),
}

#[derive(Debug)]
struct Step {
    kind: StepKind,
    /// Char range in the path text.
    start: usize,
    end: usize,
}

/// Splits a path into steps; `Err((message, char offset, char len))`.
fn steps(text: &str) -> Result<Vec<Step>, (String, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let ident = |from: usize| {
        let mut end = from;
        while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        end
    };
    let mut out = Vec::new();
    let mut pos = 0;
    let mut expect_name = true;
    while pos < chars.len() {
        if expect_name {
            let end = ident(pos);
            if end == pos || !chars[pos].is_ascii_alphabetic() {
                return Err(("expected an element name".into(), pos, 1));
            }
            let name: String = chars[pos..end].iter().collect();
            if chars.get(end) == Some(&'(') {
                let close = chars[end..].iter().position(|&c| c == ')').map(|i| end + i);
                let Some(close) = close else { return Err(("`(` is not closed".into(), end, 1)) };
                let arg: String = chars[end + 1..close].iter().collect::<String>().trim().to_string();
                out.push(Step {
                    kind: StepKind::Call(name, (!arg.is_empty()).then_some(arg)),
                    start: pos,
                    end: close + 1,
                });
                pos = close + 1;
            } else {
                out.push(Step { kind: StepKind::Name(name), start: pos, end });
                pos = end;
            }
            expect_name = false;
            continue;
        }
        match chars[pos] {
            '.' => {
                expect_name = true;
                pos += 1;
            }
            '[' => {
                let close = chars[pos..].iter().position(|&c| c == ']').map(|i| pos + i);
                let Some(close) = close else { return Err(("`[` is not closed".into(), pos, 1)) };
                let inner: String = chars[pos + 1..close].iter().collect();
                let index = match inner.trim() {
                    "*" => None,
                    n => Some(n.parse::<usize>().map_err(|_| {
                        ("an index is a number from 0, or `*`".to_string(), pos + 1, (close - pos - 1).max(1))
                    })?),
                };
                out.push(Step { kind: StepKind::Index(index), start: pos, end: close + 1 });
                pos = close + 1;
            }
            c => return Err((format!("unexpected `{c}` in a FHIR path"), pos, 1)),
        }
    }
    if expect_name {
        return Err(("the path ends after `.`".into(), chars.len().saturating_sub(1), 1));
    }
    Ok(out)
}

/// The file span of chars `from..from + len` of `text` written at `span` (a quoted YAML
/// scalar's span is the text's; a plain one too).
fn sub_span(text: &str, span: Span, from: usize, len: usize) -> Span {
    let byte = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(b, _)| b);
    let (start, end) = (byte(from), byte(from + len.max(1)));
    if span.end - span.start < text.len() {
        return span;
    }
    Span::new(span.file, span.start + start, (span.start + end).min(span.end))
}

fn capitalized(t: &str) -> String {
    let mut c = t.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

impl FhirEnv {
    /// Resolves `text` (written at `span`, the span of the path's characters).
    pub fn resolve(&self, text: &str, span: Span) -> Result<Resolved, Diagnostic> {
        let invalid = |message: String, from: usize, len: usize, candidates: &[String]| {
            let at = sub_span(text, span, from, len);
            let d = Diagnostic::error(
                codes::FHIR_UNKNOWN_PATH,
                format!("`{text}` is not a path of FHIR R4 `{}`: {message}", self.resource_type),
            )
            .label(at, "not in the R4 schema here");
            let wrong: String = text.chars().skip(from).take(len).collect();
            match did_you_mean(&wrong, candidates.iter().map(String::as_str)) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None if !candidates.is_empty() && candidates.len() <= 12 => {
                    d.help(format!("valid here: {}", candidates.join(", ")))
                }
                None => d.help(format!(
                    "paths are relative to the resource, e.g. `name[0].family`; docs/fhir-schema.md lists the elements of `{}`",
                    self.resource_type
                )),
            }
        };
        let steps = steps(text).map_err(|(m, at, len)| invalid(m, at, len, &[]))?;
        // The text `sluice_fhir` resolves (`[*]` dropped) and where each of its chars came from.
        let mut cleaned = String::new();
        let mut origin: Vec<usize> = Vec::new();
        let mut prefixes = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if matches!(step.kind, StepKind::Index(None)) {
                prefixes.push(cleaned.clone());
                continue;
            }
            if i > 0 && !matches!(step.kind, StepKind::Index(_)) {
                cleaned.push('.');
                origin.push(step.start.saturating_sub(1));
            }
            for (k, c) in text.chars().skip(step.start).take(step.end - step.start).enumerate() {
                cleaned.push(c);
                origin.push(step.start + k);
            }
            prefixes.push(cleaned.clone());
        }
        let s = schema();
        let resolved = s.resolve_in(self.resource_type, &cleaned).map_err(|e: PathError| {
            let from = origin.get(e.offset).copied().unwrap_or(0);
            let to = origin.get(e.offset + e.len.max(1) - 1).copied().unwrap_or(from);
            let message = e.message.clone();
            invalid(message, from, to + 1 - from, &e.candidates)
        })?;
        // Runtime form: choice elements spelled out.
        let mut parts: Vec<String> = Vec::new();
        let mut skip_next = false;
        for (i, step) in steps.iter().enumerate() {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            match &step.kind {
                StepKind::Name(name) => {
                    let is_choice = s.resolve_in(self.resource_type, &prefixes[i]).is_ok_and(|r| r.is_choice);
                    let picked = match steps.get(i + 1).map(|n| &n.kind) {
                        Some(StepKind::Call(f, Some(t))) if is_choice && (f == "as" || f == "ofType") => Some(t),
                        _ => None,
                    };
                    let name = name.strip_suffix("[x]").unwrap_or(name);
                    parts.push(match (is_choice, picked) {
                        (true, Some(t)) => {
                            skip_next = true;
                            format!("{name}{}", capitalized(t))
                        }
                        (true, None) => format!("{name}[x]"),
                        (false, _) => name.to_string(),
                    });
                }
                StepKind::Index(Some(n)) => {
                    if let Some(last) = parts.last_mut() {
                        last.push_str(&format!("[{n}]"));
                    }
                }
                StepKind::Index(None) => {}
                StepKind::Call(f, arg) => {
                    let f = if f == "as" { "ofType" } else { f.as_str() };
                    parts.push(format!("{f}({})", arg.as_deref().unwrap_or("")));
                }
            }
        }
        let multi = resolved.many;
        let value_type = match resolved.value_type() {
            ValueType::List(inner) if multi => *inner,
            t => t,
        };
        Ok(Resolved { path: parts.join("."), value_type, phi: resolved.phi, multi })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;

    fn env(t: &'static str) -> FhirEnv {
        FhirEnv { resource_type: t }
    }

    fn span(text: &str) -> Span {
        Span::new(FileId(0), 100, 100 + text.len())
    }

    fn ok(t: &'static str, text: &str) -> Resolved {
        env(t).resolve(text, span(text)).unwrap_or_else(|d| panic!("{text}: {d:?}"))
    }

    #[test]
    fn paths_resolve_to_runtime_form_types_and_classes() {
        let r = ok("Patient", "name[0].family");
        assert_eq!((r.path.as_str(), &r.value_type, r.multi), ("name[0].family", &ValueType::String, false));
        assert_eq!(r.phi, Some(PhiClass::Name));
        let r = ok("Patient", "identifier[*].value");
        assert_eq!((r.path.as_str(), r.multi), ("identifier.value", true));
        assert_eq!(ok("Patient", "birthDate").value_type, ValueType::Date);
        let r = ok("Observation", "value.as(Quantity).value");
        assert_eq!((r.path.as_str(), &r.value_type), ("valueQuantity.value", &ValueType::Decimal));
        assert_eq!(ok("Observation", "valueQuantity.unit").path, "valueQuantity.unit");
        assert_eq!(ok("Observation", "effective").path, "effective[x]");
        assert_eq!(ok("Patient", "name.first().given.last()").path, "name.first().given.last()");
        assert_eq!(ok("Patient", "contained.ofType(Patient).gender").path, "contained.ofType(Patient).gender");
        let r = ok("Observation", "subject.resolve().birthDate");
        assert_eq!(
            (r.path.as_str(), &r.value_type, r.phi),
            ("subject.resolve().birthDate", &ValueType::Date, Some(PhiClass::Dob))
        );
    }

    #[test]
    fn wrong_paths_point_at_the_wrong_characters() {
        let text = "name[0].famly";
        let d = env("Patient").resolve(text, span(text)).unwrap_err();
        assert_eq!(d.code.code, "SL232");
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (108, 113));
        assert!(d.help.iter().any(|h| h.contains("family")), "{:?}", d.help);
        for bad in ["birthDate.x", "name[a]", "gender[0]", "value.value", "name..family", "x(", ""] {
            assert!(env("Observation").resolve(bad, span(bad)).is_err() || bad.is_empty(), "{bad}");
        }
        assert!(resource_type("Patient").is_some() && resource_type("patient").is_none());
        assert!(resource_type("DomainResource").is_none() && resource_type("HumanName").is_none());
    }
}
