//! Generated documentation stays true: `docs/diagnostics.md` lists every code the compiler and
//! the runtime can report, and `docs/sluice-spec.schema.json` is what `sluice schema` prints;
//! every bundled spec validates against that schema. Run with `SLUICE_BLESS=1` to regenerate.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compare_or_bless(rel: &str, generated: &str) {
    let path = root().join(rel);
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{rel} is out of date: run `SLUICE_BLESS=1 cargo test --test docs_sync` and commit it"
    );
}

fn diagnostics_doc() -> String {
    let mut o = String::from(
        "# Diagnostics\n\n\
         <!-- Generated from compiler/src/codes.rs and runtime/src/findings.rs by tests/docs_sync.rs; \
         edit those, then run `SLUICE_BLESS=1 cargo test --test docs_sync`. -->\n\n\
         Every problem Sluice reports has a stable code. Codes are never reused.\n\
         `sluice explain CODE` prints the entry for a code.\n\n\
         - **SL1xx-SL7xx** come from the compiler (`sluice check`, `plan`, `run`): a problem in a spec file,\n  \
         reported with the file, line and column, a label on the exact place, and help. Each has a broken\n  \
         example under `tests/ui/<CODE>-<name>/` with its exact output.\n\
         - **RTxxx** come from the runtime: a record that went to the DLQ, a warning on a record, or a\n  \
         reason a run could not start. They name paths and rules, never values.\n\n## Compiler\n\n",
    );
    for c in sluice_compiler::codes::ALL {
        let _ = write!(
            o,
            "### {}\n\n**{}** `{}`\n\n{}\n\nExample: [`tests/ui/{}-{}/`](../tests/ui/{}-{}/)\n\n",
            c.code.to_ascii_lowercase(),
            c.code,
            c.name,
            c.explanation,
            c.code,
            c.name,
            c.code,
            c.name
        );
        // The heading is the lowercase code so `docs/diagnostics.md#sl201` anchors work; the
        // bold line repeats it with the title.
        o = o.replacen(
            &format!("**{}** `{}`", c.code, c.name),
            &format!("**{}: {}** (`{}`)", c.code, c.title, c.name),
            1,
        );
    }
    o.push_str(
        "## HL7 v2 codec\n\nParse errors keep the codec's own code in DLQ entries and in `sluice parse` output.\n\n",
    );
    let hl7_codes =
        [sluice_hl7v2::codec::ERROR_CODES, sluice_hl7v2::charset::ERROR_CODES, sluice_hl7v2::batch::ERROR_CODES];
    for (code, title, explanation) in hl7_codes.into_iter().flatten() {
        let _ = write!(o, "### {}\n\n**{code}: {title}**\n\n{explanation}\n\n", code.to_ascii_lowercase());
    }
    o.push_str(
        "## HL7 v2 validation\n\nFindings of `sluice validate --format hl7v2` (see `docs/hl7v2-validation.md`).\n\n",
    );
    for (code, title, explanation) in sluice_hl7v2::validate::CODES {
        let _ = write!(o, "### {}\n\n**{code}: {title}**\n\n{explanation}\n\n", code.to_ascii_lowercase());
    }
    o.push_str(
        "## X12\n\nFindings of the X12 splitter and envelope checks, in `sluice validate --format x12` (see `docs/x12.md`).\n\n",
    );
    let x12_codes = sluice_x12::codec::ERROR_CODES
        .iter()
        .copied()
        .chain(sluice_x12::envelope::CODES.iter().map(|(c, _, t, e)| (*c, *t, *e)));
    for (code, title, explanation) in x12_codes {
        let _ = write!(o, "### {}\n\n**{code}: {title}**\n\n{explanation}\n\n", code.to_ascii_lowercase());
    }
    o.push_str(
        "## FHIR codec and validation\n\nErrors of `sluice parse --format fhir` and findings of `sluice validate --format fhir` (see `docs/fhir.md`).\n\n",
    );
    for (code, title, explanation) in sluice_fhir::codes::CODES {
        let _ = write!(o, "### {}\n\n**{code}: {title}**\n\n{explanation}\n\n", code.to_ascii_lowercase());
    }
    o.push_str("## Runtime\n\n");
    for f in sluice_runtime::FINDINGS {
        let _ = write!(
            o,
            "### {}\n\n**{}: {}** ({:?})\n\n{}\n\n",
            f.code.to_ascii_lowercase(),
            f.code,
            f.title,
            f.kind,
            f.explanation
        );
    }
    o
}

/// Replaces the text between `<!-- BEGIN GENERATED: name -->` and its END marker.
fn fill(doc: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- BEGIN GENERATED: {name} -->");
    let end = format!("<!-- END GENERATED: {name} -->");
    let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end)) else {
        panic!("docs/spec-reference.md lacks the {name} markers");
    };
    format!("{}{begin}\n{body}{}", &doc[..b], &doc[e..])
}

fn key_type(t: &sluice_compiler::spec::shape::KeyType) -> String {
    use sluice_compiler::spec::shape::KeyType as K;
    match t {
        K::String => "string".into(),
        K::Integer => "integer".into(),
        K::Bool => "boolean".into(),
        K::Expr => "expression".into(),
        K::Enum(v) => v.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(" \\| "),
        K::StringOrList => "string or list of strings".into(),
        K::ListOfStrings => "list of strings".into(),
        K::Duration => "duration (`200ms`, `5s`, `2m`, `1h`)".into(),
        K::Rate => "rate (`10/s`, `50/min`, `500/h`)".into(),
        K::Secret => "secret reference `${VAR}`".into(),
        K::Object(s) => format!("[{}](#{})", s.name, s.name.replace('.', "")),
        K::MapOf(s) => format!("name -> [{}](#{})", s.name, s.name.replace('.', "")),
        K::MapOfStrings => "name -> value".into(),
        K::ListOf(s) => format!("list of [{}](#{})", s.name, s.name.replace('.', "")),
        K::Components(v) => {
            v.iter().map(|s| format!("[{}](#{})", s.name, s.name.replace('.', ""))).collect::<Vec<_>>().join(", ")
        }
        K::FieldMap => "output field -> expression, nested fields, or list producers".into(),
        K::TreatmentMap => "class or field -> action or [masking.treatment](#maskingtreatment)".into(),
        K::Any => "any YAML value".into(),
    }
}

fn spec_reference() -> String {
    use sluice_compiler::spec::shape;
    let mut doc = std::fs::read_to_string(root().join("docs/spec-reference.md")).unwrap();
    let mut f = String::from("### Functions\n\n| function | signature | what it does |\n|---|---|---|\n");
    for (name, sig, what) in sluice_compiler::expr::check::FUNCTIONS {
        let _ = writeln!(f, "| `{name}` | `{sig}` | {what} |");
    }
    doc = fill(&doc, "functions", &f);
    let mut p = String::from("### PHI classes\n\n| class | what it covers |\n|---|---|\n");
    for c in sluice_spec_core::PhiClass::ALL {
        let _ = writeln!(p, "| `{}` | {} |", c.as_str(), c.description());
    }
    doc = fill(&doc, "phi-classes", &p);
    let mut o = String::from("## Output schemas\n\n");
    for name in sluice_canonical::names() {
        let s = sluice_canonical::schema(name).unwrap();
        let _ = writeln!(o, "### `{name}`\n");
        if let Some(t) = &s.table {
            let cursor = t.cursor.as_ref().map(|c| format!(", cursor `{c}`")).unwrap_or_default();
            let _ = writeln!(
                o,
                "A table: write mode `{}`, primary key `{}`{cursor}.\n",
                t.write_mode,
                t.primary_key.join("`, `")
            );
        }
        let _ = writeln!(o, "| field | type | set by | values | description |\n|---|---|---|---|---|");
        for fd in &s.fields {
            let by = match fd.presence {
                sluice_canonical::Presence::Required => "mapping (required)",
                sluice_canonical::Presence::Optional => "mapping",
                sluice_canonical::Presence::Runtime => "runtime",
            };
            let _ = writeln!(
                o,
                "| `{}` | {} | {by} | {} | {} |",
                fd.path,
                fd.value_type,
                fd.values.join(", "),
                fd.description
            );
        }
        o.push('\n');
    }
    doc = fill(&doc, "output-schemas", &o);
    let mut k =
        String::from("## Every key\n\nGenerated from the compiler's shape tables (`compiler/src/spec/shape.rs`).\n\n");
    // Every shape reachable from the five file kinds, each once, depth first: a shape added to
    // the tables shows up here without anyone listing it.
    let mut shapes: Vec<&shape::Shape> = Vec::new();
    for top in [
        &shape::PIPELINE,
        &shape::MAPPING,
        &shape::PROFILE,
        &shape::RULES,
        &shape::MASKING,
        &shape::TEST,
        &sluice_compiler::spec::reconcile::RECONCILIATION,
    ] {
        collect_shapes(top, &mut shapes);
    }
    for s in shapes {
        let _ =
            writeln!(k, "### {}\n\n{}\n\n| key | required | type | description |\n|---|---|---|---|", s.name, s.doc);
        for key in s.keys {
            let _ = writeln!(
                k,
                "| `{}` | {} | {} | {} |",
                key.name,
                if key.required { "yes" } else { "" },
                key_type(&key.ty),
                key.doc
            );
        }
        k.push('\n');
    }
    fill(&doc, "keys", &k)
}

#[test]
fn spec_reference_generated_sections_are_current() {
    compare_or_bless("docs/spec-reference.md", &spec_reference());
}

#[test]
fn diagnostics_doc_lists_every_code() {
    compare_or_bless("docs/diagnostics.md", &diagnostics_doc());
}

#[test]
fn schema_doc_is_what_sluice_schema_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).arg("schema").output().unwrap();
    assert!(out.status.success());
    compare_or_bless("docs/sluice-spec.schema.json", &String::from_utf8(out.stdout).unwrap());
}

#[test]
fn bundled_specs_validate_against_the_schema() {
    let schema = sluice_compiler::jsonschema::spec_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    let files = sluice_compiler::compile::collect_specs(&[root().join("pipelines"), root().join("mappings")]).unwrap();
    assert!(files.len() >= 5, "bundled specs found: {files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let source = sluice_compiler::source::SourceFile::new(&f, text);
        let mut diags = sluice_compiler::diagnostics::Diagnostics::default();
        let node = sluice_compiler::yaml::parse(sluice_compiler::source::FileId(0), &source, &mut diags).unwrap();
        let json = sluice_compiler::yaml::to_json(&node);
        let errors: Vec<String> =
            validator.iter_errors(&json).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{} does not match the schema: {errors:?}", f.display());
    }
}

#[test]
fn schema_rejects_an_unknown_key() {
    let schema = sluice_compiler::jsonschema::spec_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad = serde_json::json!({"kind": "masking", "name": "x", "clases": {}});
    assert!(!validator.is_valid(&bad));
    let good = serde_json::json!({"kind": "masking", "name": "x", "classes": {"ssn": "redact"}});
    assert!(validator.is_valid(&good), "{:?}", validator.iter_errors(&good).map(|e| e.to_string()).collect::<Vec<_>>());
}

/// Adds `s` and, depth first, every shape its keys nest, skipping shapes already in `out`.
fn collect_shapes(
    s: &'static sluice_compiler::spec::shape::Shape,
    out: &mut Vec<&'static sluice_compiler::spec::shape::Shape>,
) {
    use sluice_compiler::spec::shape::KeyType as K;
    if out.iter().any(|o| std::ptr::eq(*o, s)) {
        return;
    }
    out.push(s);
    for key in s.keys {
        match &key.ty {
            K::Object(n) | K::MapOf(n) | K::ListOf(n) => collect_shapes(n, out),
            K::Components(list) => list.iter().for_each(|n| collect_shapes(n, out)),
            // Mapping `fields` hold list producers; policy treatments are objects of one shape.
            K::FieldMap => collect_shapes(&sluice_compiler::spec::shape::PRODUCER, out),
            K::TreatmentMap => collect_shapes(&sluice_compiler::spec::shape::TREATMENT, out),
            _ => {}
        }
    }
}
