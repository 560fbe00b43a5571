//! One diagnostic type for every phase, and its three renderings: human (miette), JSON lines,
//! and GitHub workflow annotations.
//!
//! Invariants:
//! - Every diagnostic has a registered code, a message and a primary span in a user's file.
//! - Passes push into [`Diagnostics`] and go on; nothing stops at the first problem.
//! - Messages describe specs, never data: no value from a message can reach a diagnostic.

use std::fmt::Write as _;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

use crate::codes::Code;
use crate::source::{SourceMap, Span};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub code: &'static Code,
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary one; the others must be in the same file.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, severity: Severity::Error, message: message.into(), labels: vec![], help: None }
    }

    pub fn warning(code: &'static Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }

    pub fn label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push((span, text.into()));
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Diagnostic {
        self.help = Some(text.into());
        self
    }

    /// Adds "did you mean `x`?" when a candidate is close enough to `wrong`.
    pub fn suggest<'a>(self, wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Diagnostic {
        match did_you_mean(wrong, candidates) {
            Some(best) => self.help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    pub fn primary(&self) -> Option<Span> {
        self.labels.first().map(|(s, _)| *s)
    }
}

/// The candidate most likely meant: the fewest edits (transpositions count as one), then one
/// with the same letters (`PDI` -> `PID` rather than `PD1`), then Jaro-Winkler similarity;
/// `None` when nothing is close enough to be a likely typo.
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_l = wrong.to_ascii_lowercase();
    let sorted = |s: &str| {
        let mut c: Vec<char> = s.chars().collect();
        c.sort_unstable();
        c
    };
    let wrong_sorted = sorted(&wrong_l);
    let max_edits = (wrong_l.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            let cl = c.to_ascii_lowercase();
            let edits = strsim::osa_distance(&wrong_l, &cl);
            let jw = strsim::jaro_winkler(&wrong_l, &cl);
            (edits <= max_edits || jw >= 0.85).then_some((edits, sorted(&cl) != wrong_sorted, -jw, c))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)).then(a.3.cmp(b.3)))
        .map(|(_, _, _, c)| c)
}

/// Every diagnostic of a compilation, in the order found.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.items.iter().filter(|d| d.severity == severity).count()
    }

    /// Sorts by file, then position, then code, and drops exact duplicates, so output is stable.
    pub fn sort(&mut self, sources: &SourceMap) {
        let key = |d: &Diagnostic| {
            let span = d.primary();
            (span.map(|s| sources.get(s.file).name.clone()), span.map(|s| s.start), d.code.code, d.message.clone())
        };
        self.items.sort_by_key(key);
        self.items.dedup_by(|a, b| key(a) == key(b));
    }
}

/// Output formats for diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Github,
    /// SARIF 2.1.0 (code scanning): one document for every diagnostic ([`render_document`]).
    Sarif,
    /// JUnit XML: one test case per checked file ([`render_document`]).
    Junit,
}

impl Format {
    /// Whether the diagnostics make one document (rendered whole by [`render_document`])
    /// rather than one entry each.
    pub fn is_document(self) -> bool {
        matches!(self, Format::Sarif | Format::Junit)
    }
}

/// One diagnostic in a per-entry format; in a document format alone, its JSON line.
pub fn render(d: &Diagnostic, sources: &SourceMap, format: Format) -> String {
    match format {
        Format::Human => render_human(d, sources),
        Format::Json | Format::Sarif | Format::Junit => render_json(d, sources),
        Format::Github => render_github(d, sources),
    }
}

/// Where a diagnostic points: file name, 1-based line and column.
fn position(d: &Diagnostic, sources: &SourceMap) -> Option<(String, usize, usize)> {
    d.labels.first().map(|(s, _)| {
        let f = sources.get(s.file);
        let (line, column) = f.line_col(s.start);
        (f.name.clone(), line, column)
    })
}

/// Every diagnostic as one document: SARIF 2.1.0, or JUnit XML with a test case per file of
/// `files` (the files checked; a file with an error fails, its warnings go to `system-out`).
/// Other formats: the entries, one per line.
pub fn render_document(diags: &[Diagnostic], sources: &SourceMap, format: Format, files: &[String]) -> String {
    match format {
        Format::Sarif => render_sarif(diags, sources),
        Format::Junit => render_junit(diags, sources, files),
        _ => diags.iter().map(|d| render(d, sources, format) + "\n").collect(),
    }
}

fn render_sarif(diags: &[Diagnostic], sources: &SourceMap) -> String {
    let mut rules: Vec<&'static Code> = diags.iter().map(|d| d.code).collect();
    rules.sort_by_key(|c| c.code);
    rules.dedup_by_key(|c| c.code);
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.code, "name": c.name,
                "shortDescription": {"text": c.title},
                "fullDescription": {"text": c.explanation},
                "helpUri": docs_url(c),
            })
        })
        .collect();
    let results: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let mut message = d.message.clone();
            if let Some(h) = &d.help {
                message.push_str("\nhelp: ");
                message.push_str(h);
            }
            let locations: Vec<serde_json::Value> = position(d, sources)
                .map(|(file, line, column)| {
                    serde_json::json!({"physicalLocation": {
                        "artifactLocation": {"uri": file},
                        "region": {"startLine": line, "startColumn": column},
                    }})
                })
                .into_iter()
                .collect();
            serde_json::json!({
                "ruleId": d.code.code,
                "level": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": {"text": message},
                "locations": locations,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": "sluice", "version": env!("CARGO_PKG_VERSION"), "rules": rules}},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).expect("SARIF serializes") + "\n"
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn render_junit(diags: &[Diagnostic], sources: &SourceMap, files: &[String]) -> String {
    use std::fmt::Write;
    let mut names: Vec<String> = files.to_vec();
    for d in diags {
        if let Some((file, ..)) = position(d, sources)
            && !names.contains(&file)
        {
            names.push(file);
        }
    }
    let of = |name: &str, severity: Severity| -> Vec<&Diagnostic> {
        diags
            .iter()
            .filter(|d| d.severity == severity && position(d, sources).is_some_and(|(f, ..)| f == name))
            .collect()
    };
    let failures = names.iter().filter(|n| !of(n, Severity::Error).is_empty()).count();
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(o, r#"<testsuites name="sluice check" tests="{}" failures="{failures}">"#, names.len());
    let _ =
        writeln!(o, r#"  <testsuite name="sluice check" tests="{}" failures="{failures}" errors="0">"#, names.len());
    let line = |d: &Diagnostic| {
        let at = position(d, sources).map(|(f, l, c)| format!("{f}:{l}:{c}: ")).unwrap_or_default();
        let help = d.help.as_ref().map(|h| format!(" (help: {h})")).unwrap_or_default();
        format!("{at}{} {}{help}", d.code.code, d.message)
    };
    for name in &names {
        let (errors, warnings) = (of(name, Severity::Error), of(name, Severity::Warning));
        let _ = writeln!(o, r#"    <testcase classname="sluice.check" name="{}">"#, xml_escape(name));
        if let Some(first) = errors.first() {
            let body: Vec<String> = errors.iter().map(|d| line(d)).collect();
            let _ = writeln!(
                o,
                r#"      <failure type="{}" message="{}">{}</failure>"#,
                first.code.code,
                xml_escape(&first.message),
                xml_escape(&body.join("\n"))
            );
        }
        if !warnings.is_empty() {
            let body: Vec<String> = warnings.iter().map(|d| line(d)).collect();
            let _ = writeln!(o, "      <system-out>{}</system-out>", xml_escape(&body.join("\n")));
        }
        let _ = writeln!(o, "    </testcase>");
    }
    let _ = writeln!(o, "  </testsuite>");
    let _ = writeln!(o, "</testsuites>");
    o
}

/// Documentation anchor for a code.
pub fn docs_url(code: &Code) -> String {
    format!("docs/diagnostics.md#{}", code.code.to_ascii_lowercase())
}

struct MietteView<'a> {
    d: &'a Diagnostic,
    source: Option<NamedSource<String>>,
}

impl std::fmt::Debug for MietteView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::fmt::Display for MietteView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for MietteView<'_> {}

impl miette::Diagnostic for MietteView<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        Some(Box::new(self.d.code.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn std::fmt::Display + 'b>> {
        let docs = docs_url(self.d.code);
        Some(Box::new(match &self.d.help {
            Some(h) => format!("{h}\nsee {docs}"),
            None => format!("see {docs}"),
        }))
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary = self.d.primary()?;
        // The first label is the primary one: the `file:line:column` header points at it, as
        // the JSON output does, even when another label comes earlier in the file.
        Some(Box::new(self.d.labels.iter().enumerate().filter(move |(_, (s, _))| s.file == primary.file).map(
            |(i, (s, text))| {
                let span = SourceSpan::from((s.start, s.end - s.start));
                if i == 0 {
                    LabeledSpan::new_primary_with_span(Some(text.clone()), span)
                } else {
                    LabeledSpan::new_with_span(Some(text.clone()), span)
                }
            },
        )))
    }
}

fn render_human(d: &Diagnostic, sources: &SourceMap) -> String {
    let source = d.primary().map(|s| {
        let f = sources.get(s.file);
        NamedSource::new(f.name.clone(), f.text.clone())
    });
    let view = MietteView { d, source };
    let mut out = String::new();
    let handler =
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor()).with_width(100).with_links(false);
    if handler.render_report(&mut out, &view).is_err() {
        let _ = write!(out, "{}: {}", d.code.code, d.message);
    }
    out
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: Severity,
    message: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    label: Option<&'a str>,
    help: Option<&'a str>,
    docs: String,
}

fn render_json(d: &Diagnostic, sources: &SourceMap) -> String {
    let primary = d.labels.first();
    let (file, start, end) = match primary {
        Some((s, _)) => {
            let f = sources.get(s.file);
            (Some(f.name.as_str()), Some(f.line_col(s.start)), Some(f.line_col(s.end)))
        }
        None => (None, None, None),
    };
    let j = JsonDiagnostic {
        code: d.code.code,
        severity: d.severity,
        message: &d.message,
        file,
        line: start.map(|p| p.0),
        column: start.map(|p| p.1),
        end_line: end.map(|p| p.0),
        end_column: end.map(|p| p.1),
        label: primary.map(|(_, l)| l.as_str()),
        help: d.help.as_deref(),
        docs: docs_url(d.code),
    };
    serde_json::to_string(&j).expect("diagnostic serializes")
}

/// GitHub workflow command; values are escaped as the runner requires.
fn render_github(d: &Diagnostic, sources: &SourceMap) -> String {
    fn esc_data(s: &str) -> String {
        s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
    }
    fn esc_prop(s: &str) -> String {
        esc_data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut props = Vec::new();
    if let Some((s, _)) = d.labels.first() {
        let f = sources.get(s.file);
        let (line, col) = f.line_col(s.start);
        let (end_line, end_col) = f.line_col(s.end);
        props.push(format!("file={}", esc_prop(&f.name)));
        props.push(format!("line={line}"));
        props.push(format!("col={col}"));
        props.push(format!("endLine={end_line}"));
        props.push(format!("endColumn={end_col}"));
    }
    props.push(format!("title={}", esc_prop(d.code.code)));
    let mut message = d.message.clone();
    if let Some(h) = &d.help {
        message.push('\n');
        message.push_str(h);
    }
    format!("::{level} {}::{}", props.join(","), esc_data(&message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use crate::source::{FileId, SourceFile};
    use std::path::Path;

    fn sample() -> (SourceMap, Diagnostic) {
        let mut sources = SourceMap::default();
        let id = sources.add(SourceFile::new(Path::new("p.yaml"), "kind: pipeline\nsorces: {}\n".into()));
        let d = Diagnostic::error(codes::UNKNOWN_KEY, "unknown key `sorces`")
            .label(Span::new(id, 15, 21), "not a pipeline key")
            .suggest("sorces", ["sources", "sinks", "stages"]);
        assert_eq!(id, FileId(0));
        (sources, d)
    }

    #[test]
    fn did_you_mean_picks_the_closest() {
        assert_eq!(did_you_mean("sorces", ["sinks", "sources"]), Some("sources"));
        assert_eq!(did_you_mean("zzzzzz", ["sinks", "sources"]), None);
        assert_eq!(did_you_mean("PDI", ["PD1", "PID", "PV1"]), Some("PID"));
        assert_eq!(did_you_mean("mappnig", ["mapping", "inputs"]), Some("mapping"));
        assert_eq!(did_you_mean("strikt", ["strict", "lenient"]), Some("strict"));
    }

    #[test]
    fn human_rendering_points_at_the_span() {
        let (sources, d) = sample();
        let text = render(&d, &sources, Format::Human);
        assert!(text.contains("SL201"), "{text}");
        assert!(text.contains("p.yaml:2:1"), "{text}");
        assert!(text.contains("did you mean `sources`?"), "{text}");
    }

    #[test]
    fn json_and_github_have_positions() {
        let (sources, d) = sample();
        let json: serde_json::Value = serde_json::from_str(&render(&d, &sources, Format::Json)).unwrap();
        assert_eq!(json["line"], 2);
        assert_eq!(json["column"], 1);
        assert_eq!(json["end_column"], 7);
        let gh = render(&d, &sources, Format::Github);
        assert!(gh.starts_with("::error file=p.yaml,line=2,col=1,endLine=2,endColumn=7,title=SL201::"), "{gh}");
    }
}
