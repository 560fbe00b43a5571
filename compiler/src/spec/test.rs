//! Test files (`kind: test`, named `*.test.yaml`): cases that feed messages through a pipeline,
//! or through a mapping with optional rules and policy, and the outcome they expect.
//!
//! This module only reads and checks the file (with spans, so `sluice check` and `sluice test`
//! point at the exact line); running the cases is the runtime's job (`sluice_runtime::testing`)
//! and comparing and reporting the CLI's.
//!
//! Invariants:
//! - A case's input is in exactly one format; formats that cannot run yet (`fhir`, `json`) are
//!   refused with SL802, never skipped silently. X12 input runs through a `format: x12` source
//!   (a mapping test's pipeline reads X12 when its mapping does).
//! - HL7 v2 input is written one segment per line; lines are joined with CR, the HL7 segment
//!   separator, so what runs is what a sender would send.
//! - Every span needed to rewrite a case's `expect` (`sluice test --update`) is kept: the case,
//!   and its `expect` key and value.

use super::reader::{self, Cx, Spanned};
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::source::Span;
use crate::yaml::{self, Node, Value};

/// The clock of test runs when the file does not set one.
pub const DEFAULT_CLOCK: &str = "2024-01-01T00:00:00Z";

/// The sink of the pipeline built for a mapping test.
pub const MAPPING_SINK: &str = "output";

/// What a test file exercises.
#[derive(Clone, Debug)]
pub enum Target {
    Pipeline(Spanned),
    Mapping { mapping: Spanned, rules: Option<Spanned>, policy: Option<Spanned>, profile: Option<Spanned> },
}

#[derive(Clone, Debug)]
pub struct TestFile {
    pub name: Option<String>,
    pub target: Target,
    pub clock: String,
    pub mask_key: Option<String>,
    pub cases: Vec<Case>,
    /// Where each top-level key starts (bounds for rewriting a case's `expect`).
    pub top_keys: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: Spanned,
    /// The whole case (a mapping in the `cases` list).
    pub span: Span,
    /// `input.source`, for pipelines with several sources.
    pub source: Option<Spanned>,
    /// The messages: HL7 v2 segments separated by CR, X12 interchanges as written, or Stripe
    /// objects one JSON object a line.
    pub hl7v2: Vec<u8>,
    /// `input.connection`: the connection name the case's finance records were read through.
    pub connection: Option<Spanned>,
    /// `input.envelope`: envelope values (`quickbooks.realm`) the case's finance records carry.
    pub envelope: Vec<(Spanned, Spanned)>,
    pub expect: Expect,
    /// The `expect` key and its value, when the case has one.
    pub expect_at: Option<(Span, Span)>,
    /// Spans of the case's keys, in order (where `--update` may insert an `expect`).
    pub key_spans: Vec<Span>,
}

/// The expected outcome. Left-out keys expect nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    /// Sink name (spanned, for SL803) -> records.
    pub outputs: Vec<(Spanned, Vec<serde_json::Value>)>,
    pub dlq: Vec<serde_json::Value>,
    pub filtered: u64,
}

/// Reads a test file; `None` when it has errors (they are in `cx`).
pub fn read(cx: &mut Cx, node: &Node) -> Option<TestFile> {
    let errors_before = cx.diags.count(crate::diagnostics::Severity::Error);
    let obj = reader::object(cx, node, &shape::TEST, "the test file")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text);
    let mut get = |key: &str| obj.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let (pipeline, mapping) = (get("pipeline"), get("mapping"));
    let (rules, policy, profile) = (get("rules"), get("policy"), get("profile"));
    let clock = get("clock");
    let mask_key = get("mask_key").map(|s| s.text);
    let target = match (pipeline, mapping) {
        (Some(p), None) => {
            for extra in [&rules, &policy, &profile].into_iter().flatten() {
                cx.push(
                    Diagnostic::error(
                        codes::TEST_TARGET,
                        "a pipeline test takes its rules, policy and profile from the pipeline",
                    )
                    .label(extra.span, "only for a `mapping` test")
                    .help("remove this key, or test the mapping on its own with `mapping:` instead of `pipeline:`"),
                );
            }
            Some(Target::Pipeline(p))
        }
        (None, Some(mapping)) => Some(Target::Mapping { mapping, rules, policy, profile }),
        (Some(p), Some(m)) => {
            cx.push(
                Diagnostic::error(codes::TEST_TARGET, "a test file tests either a pipeline or a mapping, not both")
                    .label(m.span, "second target")
                    .label(p.span, "first target")
                    .help("split the cases into two test files"),
            );
            None
        }
        (None, None) => {
            cx.push(
                Diagnostic::error(codes::TEST_TARGET, "the test file names nothing to test")
                    .label(obj.anchor(), "add `pipeline:` or `mapping:` here")
                    .help("`pipeline: ../pipelines/x.yaml`, or `mapping: x.yaml` with optional `rules:` and `policy:`"),
            );
            None
        }
    };
    let clock = match clock {
        Some(c) if is_rfc3339_utc(&c.text) => c.text,
        Some(c) => {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not an RFC 3339 UTC time", c.text))
                    .label(c.span, "expected e.g. 2024-01-15T10:30:00Z")
                    .help("write the clock as `YYYY-MM-DDThh:mm:ssZ`"),
            );
            DEFAULT_CLOCK.to_string()
        }
        None => DEFAULT_CLOCK.to_string(),
    };
    let mut cases: Vec<Case> = Vec::new();
    if let Some(list) = obj.get("cases") {
        match &list.value {
            Value::Seq(items) => {
                for item in items {
                    if let Some(case) = read_case(cx, item) {
                        if let Some(first) = cases.iter().find(|c| c.name.text == case.name.text) {
                            cx.push(
                                Diagnostic::error(
                                    codes::DUPLICATE_TEST_CASE,
                                    format!("two cases are named `{}`", case.name.text),
                                )
                                .label(case.name.span, "second case")
                                .label(first.name.span, "first case")
                                .help("give each case its own name"),
                            );
                        }
                        cases.push(case);
                    }
                }
            }
            _ => cx.push(
                Diagnostic::error(codes::WRONG_TYPE, format!("`cases` must be a list, found {}", list.kind_name()))
                    .label(list.span, "expected a list of cases")
                    .help("write each case as `- name: ...` under `cases:`"),
            ),
        }
    }
    let target = target?;
    let top_keys = match &node.value {
        Value::Map(entries) => entries.iter().map(|(k, _)| k.span.start).collect(),
        _ => Vec::new(),
    };
    (cx.diags.count(crate::diagnostics::Severity::Error) == errors_before).then_some(TestFile {
        name,
        target,
        clock,
        mask_key,
        cases,
        top_keys,
    })
}

fn read_case(cx: &mut Cx, node: &Node) -> Option<Case> {
    let obj = reader::object(cx, node, &shape::TEST_CASE, "a test case")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "the case `name`"))?;
    let input_node = obj.get("input")?;
    let input = reader::object(cx, input_node, &shape::TEST_INPUT, "the case `input`")?;
    let source = input.get("source").and_then(|n| reader::string(cx, n, "`source`"));
    let connection = input.get("connection").and_then(|n| reader::string(cx, n, "`connection`"));
    let mut envelope = Vec::new();
    if let Some(n) = input.get("envelope") {
        for (name, key, value) in reader::entries(cx, n, "`envelope`")? {
            let value = reader::string(cx, value, "an envelope value")?;
            envelope.push((Spanned { text: name.to_string(), span: key.span }, value));
        }
    }
    let formats: Vec<(&str, &Node)> =
        shape::TEST_INPUT_FORMATS.iter().filter_map(|f| input.get(f).map(|n| (*f, n))).collect();
    let hl7v2 = match formats.as_slice() {
        [("hl7v2", n)] => segments(&reader::string(cx, n, "`hl7v2`")?.text),
        [("stripe", n)] => json_lines(&reader::string(cx, n, "`stripe`")?.text),
        [("quickbooks", n)] => json_lines(&reader::string(cx, n, "`quickbooks`")?.text),
        [("plaid", n)] => json_lines(&reader::string(cx, n, "`plaid`")?.text),
        // X12 as written: the reader skips line breaks between segments.
        [("x12", n)] => reader::string(cx, n, "`x12`")?.text.into_bytes(),
        [(other, _)] => {
            let span = input.key_span(other).unwrap_or(input_node.span);
            cx.push(
                Diagnostic::error(codes::UNSUPPORTED_TEST_INPUT, format!("`{other}` input cannot run yet"))
                    .label(span, "only `hl7v2`, `x12`, `stripe`, `quickbooks` and `plaid` input run today")
                    .help("test HL7 v2 messages, X12 interchanges, Stripe objects, QuickBooks entities or Plaid objects for now; FHIR and JSON inputs come with their input sources"),
            );
            return None;
        }
        [] => {
            cx.push(
                Diagnostic::error(codes::UNSUPPORTED_TEST_INPUT, "the case `input` holds no messages")
                    .label(input.anchor(), "add `hl7v2: |` with the messages here")
                    .help("write the messages one segment per line in a block scalar: `hl7v2: |`"),
            );
            return None;
        }
        [_, (second, _), ..] => {
            let span = input.key_span(second).unwrap_or(input_node.span);
            cx.push(
                Diagnostic::error(codes::UNSUPPORTED_TEST_INPUT, "the case `input` holds more than one format")
                    .label(span, "second format")
                    .help("give each format its own case"),
            );
            return None;
        }
    };
    let mut expect = Expect::default();
    let mut expect_at = None;
    if let Some(e) = obj.get("expect") {
        expect_at = obj.key_span("expect").map(|k| (k, e.span));
        // `expect:` with nothing under it (null) expects nothing.
        if !matches!(e.value, Value::Null) {
            expect = read_expect(cx, e)?;
        }
    }
    let key_spans = match &node.value {
        Value::Map(entries) => entries.iter().map(|(k, v)| Span::new(k.span.file, k.span.start, v.span.end)).collect(),
        _ => Vec::new(),
    };
    Some(Case { name, span: node.span, source, hl7v2, connection, envelope, expect, expect_at, key_spans })
}

fn read_expect(cx: &mut Cx, node: &Node) -> Option<Expect> {
    let obj = reader::object(cx, node, &shape::TEST_EXPECT, "the case `expect`")?;
    let mut expect = Expect::default();
    if let Some(outputs) = obj.get("outputs").filter(|n| !matches!(n.value, Value::Null)) {
        for (sink, key, records) in reader::entries(cx, outputs, "`outputs`")? {
            let name = Spanned { text: sink.to_string(), span: key.span };
            expect.outputs.push((name, records_of(cx, records, "a sink's records")?));
        }
    }
    if let Some(dlq) = obj.get("dlq") {
        expect.dlq = records_of(cx, dlq, "`dlq`")?;
    }
    if let Some(n) = obj.get("filtered") {
        expect.filtered = reader::integer(cx, n, "`filtered`")?;
    }
    Some(expect)
}

/// A list of records (or `null`/`[]` for none).
fn records_of(cx: &mut Cx, node: &Node, what: &str) -> Option<Vec<serde_json::Value>> {
    match &node.value {
        Value::Null => Some(Vec::new()),
        Value::Seq(items) => Some(items.iter().map(yaml::to_json).collect()),
        _ => {
            cx.push(
                Diagnostic::error(codes::WRONG_TYPE, format!("{what} must be a list, found {}", node.kind_name()))
                    .label(node.span, "expected a list")
                    .help("write one `- ` item per record, in order"),
            );
            None
        }
    }
}

/// HL7 v2 text as written in a test file (one segment per line, LF or CRLF) to what a sender
/// sends: segments ended by CR. Blank lines are dropped.
pub fn segments(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split(['\n', '\r']).filter(|l| !l.trim().is_empty()) {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\r');
    }
    out
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() >= 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && s.ends_with('Z')
}

/// Stripe objects written one a line: the non-empty lines, trimmed, each ending in a newline.
fn json_lines(text: &str) -> Vec<u8> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).flat_map(|l| l.bytes().chain([b'\n'])).collect()
}

/// What a mapping under test reads, so its test pipeline gets the source that emits it.
#[derive(Clone, Copy, Debug)]
pub enum MappingInput<'a> {
    Hl7v2,
    /// X12 interchanges, read by a `format: x12` files source.
    X12,
    /// Stripe objects of the list `list`: a `stripe` source, which the test feeds from the
    /// case's lines (its connection is never opened).
    Stripe {
        list: &'a str,
    },
    /// QuickBooks entities of kind `entity`: a `quickbooks` source, fed from the case's lines
    /// (its connection is never opened).
    QuickBooks {
        entity: &'a str,
    },
    /// Plaid objects of kind `object`: a `plaid` source reading the object's table, fed from
    /// the case's lines (its connection is never opened).
    Plaid {
        object: &'a str,
    },
}

/// The pipeline a mapping test runs: source `input` -> [validate] -> map -> [mask] -> sink
/// `output`, with paths as the test file wrote them (resolved against the test file's folder,
/// since the text is compiled as if it were there).
pub fn mapping_pipeline(
    name: &str,
    mapping: &str,
    rules: Option<&str>,
    policy: Option<&str>,
    profile: Option<&str>,
    input: MappingInput<'_>,
) -> String {
    let quote = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let files = |format: &str| {
        format!(
            "kind: pipeline\nname: {}\nsources:\n  input:\n    type: files\n    format: {format}\n    path: input.hl7\n",
            quote(name)
        )
    };
    let mut y = match input {
        MappingInput::Stripe { list } => format!(
            "kind: pipeline\nname: {}\nstate:\n  path: state.db\nconnections:\n  test:\n    provider: stripe\n    auth: api_key\n    api_key: ${{SLUICE_TEST_STRIPE_KEY}}\nsources:\n  input:\n    type: stripe\n    connection: test\n    objects: [{list}]\n",
            quote(name)
        ),
        MappingInput::QuickBooks { entity } => format!(
            "kind: pipeline\nname: {}\nstate:\n  path: state.db\nconnections:\n  test:\n    provider: quickbooks\n    client_id: sluice-test\n    token_key: ${{SLUICE_TEST_TOKEN_KEY}}\nsources:\n  input:\n    type: quickbooks\n    connection: test\n    realm_id: \"1\"\n    entities: [{entity}]\n",
            quote(name)
        ),
        MappingInput::Plaid { object } => format!(
            "kind: pipeline\nname: {}\nstate:\n  path: state.db\nconnections:\n  test:\n    provider: plaid\n    client_id: sluice-test\n    client_secret: ${{SLUICE_TEST_PLAID_SECRET}}\nsources:\n  input:\n    type: plaid\n    connection: test\n    items:\n      - name: test\n        access_token: ${{SLUICE_TEST_PLAID_TOKEN}}\n    tables: [{}]\n",
            quote(name),
            sluice_finance::plaid::TABLES.iter().find(|(_, o)| *o == object).map_or("transactions", |(t, _)| *t)
        ),
        MappingInput::X12 => files("x12"),
        MappingInput::Hl7v2 => files("hl7v2"),
    };
    if let Some(p) = profile {
        y += &format!("    profile: {}\n", quote(p));
    }
    y += "stages:\n";
    let mut last = "input";
    if let Some(r) = rules {
        y += &format!("  validate:\n    type: validate\n    inputs: [{last}]\n    rules: {}\n", quote(r));
        last = "validate";
    }
    y += &format!("  map:\n    type: map\n    inputs: [{last}]\n    mapping: {}\n", quote(mapping));
    last = "map";
    if let Some(p) = policy {
        y += &format!("  mask:\n    type: mask\n    inputs: [{last}]\n    policy: {}\n", quote(p));
        last = "mask";
    }
    y += &format!(
        "sinks:\n  {MAPPING_SINK}:\n    type: jsonl\n    inputs: [{last}]\n    path: output.jsonl\ndlq:\n  path: dlq.jsonl\n  plaintext_reason: sluice test\n"
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_end_with_cr() {
        assert_eq!(segments("MSH|^~\\&|A\nPID|1\n\n"), b"MSH|^~\\&|A\rPID|1\r".to_vec());
        assert_eq!(segments("MSH|x\r\nPID|1\r\n"), b"MSH|x\rPID|1\r".to_vec());
    }

    #[test]
    fn clock_must_be_utc() {
        assert!(is_rfc3339_utc("2024-01-15T10:30:00Z"));
        assert!(!is_rfc3339_utc("2024-01-15"));
        assert!(!is_rfc3339_utc("2024-01-15T10:30:00+01:00"));
    }
}
