//! Properties of the spec compiler: the expression parser and checker (fuzz target
//! `expr_parse`) and YAML text to diagnostics (`spec_yaml`).
//!
//! Shared by the fuzz crate and `compiler/tests/fuzz_regressions.rs` (through `#[path]`).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;

use sluice_compiler::compile::Compiler;
use sluice_compiler::diagnostics::{self, Diagnostics, Format};
use sluice_compiler::expr::check::{Env, Scope, check_text};
use sluice_compiler::expr::syntax::{self, Syn, SynKind};
use sluice_compiler::hl7::Hl7Env;
use sluice_compiler::source::{SourceFile, SourceMap, Span};
use sluice_hl7v2::schema::{Version, schema};

fn assert_span(text: &str, span: &Range<usize>, what: &str) {
    assert!(
        span.start <= span.end && span.end <= text.len(),
        "{what} span {span:?} is outside the text ({} bytes): {text:?}",
        text.len()
    );
    assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "{what} span {span:?} splits a character: {text:?}"
    );
}

fn assert_spans(text: &str, syn: &Syn) {
    assert_span(text, &syn.span, "node");
    match &syn.kind {
        SynKind::Call { name_span, args, .. } => {
            assert_span(text, name_span, "call name");
            for a in args {
                if let Some((_, span)) = &a.name {
                    assert_span(text, span, "argument name");
                }
                assert_spans(text, &a.value);
            }
        }
        SynKind::Binary { lhs, rhs, .. } => {
            assert_spans(text, lhs);
            assert_spans(text, rhs);
        }
        SynKind::Not(inner) => assert_spans(text, inner),
        SynKind::List(items) => items.iter().for_each(|i| assert_spans(text, i)),
        SynKind::Scoped { path_span, .. } => assert_span(text, path_span, "group path"),
        _ => {}
    }
}

fn render_all(diags: &Diagnostics, sources: &SourceMap) {
    for d in diags.items() {
        for f in [Format::Human, Format::Json, Format::Github] {
            let _ = diagnostics::render(d, sources, f);
        }
    }
}

/// `expr_parse`: bytes -> lossy UTF-8 -> `expr::syntax::parse`. Every span of the tree or the
/// error is a range of the text on character boundaries. The text is then type-checked against
/// HL7 v2.5.1 and every diagnostic rendered in every format.
pub fn expr_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match syntax::parse(&text) {
        Ok(syn) => assert_spans(&text, &syn),
        Err(e) => assert_span(&text, &e.span, "error"),
    }
    let mut sources = SourceMap::default();
    let file = sources.add(SourceFile::new(std::path::Path::new("expr.yaml"), text.to_string()));
    let mut diags = Diagnostics::default();
    let env = Env {
        scope: Scope::Hl7(Hl7Env { schema: schema(Version::V2_5_1), z_segments: &[] }),
        vars: vec![],
        tables: vec![],
    };
    let _ = check_text(&sources, &mut diags, &text, Span::new(file, 0, text.len()), &env);
    render_all(&diags, &sources);
}

const BUNDLED: &[(&str, &str)] = &[
    ("mappings/base/hl7v2-patient-event.yaml", include_str!("../../mappings/base/hl7v2-patient-event.yaml")),
    ("mappings/base/profiles/default.yaml", include_str!("../../mappings/base/profiles/default.yaml")),
    ("mappings/base/rules/patient-event.yaml", include_str!("../../mappings/base/rules/patient-event.yaml")),
    ("mappings/base/policies/quickstart.yaml", include_str!("../../mappings/base/policies/quickstart.yaml")),
    ("mappings/base/hl7v2-adt-messages.yaml", include_str!("../../mappings/base/hl7v2-adt-messages.yaml")),
    ("mappings/base/hl7v2-orm-messages.yaml", include_str!("../../mappings/base/hl7v2-orm-messages.yaml")),
    ("mappings/base/hl7v2-oru-messages.yaml", include_str!("../../mappings/base/hl7v2-oru-messages.yaml")),
    ("mappings/base/policies/message-tables.yaml", include_str!("../../mappings/base/policies/message-tables.yaml")),
];

fn spec_dir_path() -> PathBuf {
    std::env::temp_dir().join(format!("sluice-fuzz-spec-{}", std::process::id()))
}

/// A private directory holding the bundled mapping, profile, rules and policy files under
/// `mappings/base/`, so a fuzzed pipeline at `pipelines/fuzz.yaml` can reference them as the
/// bundled pipelines do (`../mappings/base/...`).
fn spec_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = spec_dir_path();
        for (rel, text) in BUNDLED {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().expect("bundled paths have a parent")).expect("temp dir");
            std::fs::write(path, text).expect("temp dir");
        }
        std::fs::create_dir_all(dir.join("pipelines")).expect("temp dir");
        dir
    })
}

/// `spec_yaml`: bytes -> lossy UTF-8, written as `pipelines/fuzz.yaml` next to the bundled
/// mappings, then `Compiler::check_paths` on it (pipelines are compiled in full). It never
/// panics, and every diagnostic renders in every format.
pub fn spec_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = spec_dir().join("pipelines").join("fuzz.yaml");
    std::fs::write(&path, text.as_bytes()).expect("temp dir");
    let mut c = Compiler::default();
    let _ = c.check_paths(std::slice::from_ref(&path));
    render_all(&c.diags, &c.sources);
}

/// Removes this process's spec directory (the regression tests call it when done; the fuzzer
/// leaves it to the end of the run).
pub fn remove_spec_dir() {
    let _ = std::fs::remove_dir_all(spec_dir_path());
}
