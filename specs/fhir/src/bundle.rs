//! Bundles: validation entry by entry, the rules of each Bundle type (bdl-1 ... bdl-12), and
//! resolution of the references between entries: relative (`Patient/123`, against the
//! entry's fullUrl base), absolute (same base), `urn:uuid:`/`urn:oid:` fullUrls, versioned
//! (`/_history/2`) and logical (identifier) references. Local `#id` references are resolved
//! by the validator inside their resource.
//!
//! [`BundleChecker`] takes the Bundle's header (the Bundle without `entry`) and then one entry
//! at a time, so a streamed Bundle ([`crate::stream`]) is checked with memory flat in the
//! number of entries except for a small index (fullUrl, type, id, version, identifiers per
//! entry) and the pending references.
//!
//! [`validate_document`] reads and validates one document in one go: a JSON Bundle's entries
//! are checked as the reader hands them out, so the Bundle's tree is never built whole.
//!
//! Invariants: never panics; a missing target is a warning with the reference's location
//! (an error when a profile requires it, aggregation `bundled`); references to another server
//! (absolute URLs on another base) are not reported; messages never quote values.

use std::collections::HashMap;

use crate::codes;
use crate::json::{self, BundlePiece, CodecError, Limits};
use crate::model;
use crate::schema::schema;
use crate::tree::Node;
use crate::validate::{Finding, Options, Severity, Walker, validate};

/// Reads one FHIR document (JSON or XML) and validates it: the findings of
/// `validate(&read_with(input, limits)?, options)`, in the same order, and the same error for
/// input that does not read. A JSON Bundle whose `resourceType` and `type` come before its
/// entries is validated entry by entry as it is read ([`json::parse_with_entry_sink`]): each
/// entry's tree is dropped once checked, so the Bundle's whole tree is never held.
pub fn validate_document(input: &[u8], limits: Limits, options: &Options<'_>) -> Result<Vec<Finding>, CodecError> {
    if crate::is_xml(input) {
        return Ok(validate(&crate::read_with(input, limits)?, options));
    }
    let mut checker = None;
    let (document, _) =
        json::parse_with_entry_sink(input, limits, &mut |piece| take_piece(&mut checker, piece, options))?;
    let document = crate::require_resource(document)?;
    Ok(match checker {
        // Entries were handed out: `document` is the Bundle without them.
        Some(checker) => checker.finish(&document),
        None => validate(&document, options),
    })
}

fn take_piece<'o>(checker: &mut Option<BundleChecker<'o>>, piece: BundlePiece, options: &Options<'o>) {
    match piece {
        BundlePiece::Start(start) => *checker = Some(BundleChecker::new(&start, options)),
        BundlePiece::Entry(entry) => {
            if let Some(c) = checker.as_mut() {
                c.entry(&entry);
            }
        }
    }
}

/// Validates a whole Bundle tree (header, entries, rules, references).
pub fn validate_bundle(bundle: &Node, options: &Options<'_>) -> Vec<Finding> {
    let Some(members) = bundle.as_object() else {
        let mut w = Walker::new(options);
        w.top_resource(bundle, None);
        return w.findings;
    };
    let header = Node::Object(members.iter().filter(|(k, _)| k != "entry").cloned().collect());
    let mut c = BundleChecker::new(&header, options);
    match bundle.get("entry") {
        Some(Node::Array(entries)) => {
            if entries.is_empty() {
                c.findings.push(Finding {
                    severity: Severity::Error,
                    code: codes::EMPTY,
                    location: "Bundle.entry".into(),
                    message: "an empty array; leave the element out".into(),
                });
            }
            for e in entries {
                c.entry(e);
            }
        }
        Some(_) => c.findings.push(Finding {
            severity: if options.lenient { Severity::Warning } else { Severity::Error },
            code: codes::WRONG_SHAPE,
            location: "Bundle.entry".into(),
            message: "`entry` repeats (max *): its value must be an array".into(),
        }),
        None => {}
    }
    c.finish(&header)
}

/// What the index keeps of one entry.
#[derive(Debug, Default)]
struct EntryInfo {
    full_url: Option<String>,
    resource_type: Option<String>,
    id: Option<String>,
    version: Option<String>,
}

/// The Bundle's lookup tables. Their keys come from the data (fullUrls, ids, identifiers), so
/// the hasher is seeded per process (foldhash's `RandomState`), not a fixed function like the
/// schema's FNV, which a crafted file could fill with colliding keys. foldhash claims only
/// minimal resistance to such attacks, against SipHash's stronger one, which cost 5% of a
/// Bundle's validation; a Bundle is also bounded by the reader's size limits.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Checks a Bundle given piece by piece.
pub struct BundleChecker<'o> {
    walker: Walker<'o>,
    bundle_type: Option<String>,
    entries: Vec<EntryInfo>,
    by_full_url: Map<String, usize>,
    by_type_id: Map<(String, String), Vec<usize>>,
    /// By identifier system, then value (two levels, so a lookup takes two `&str` and
    /// allocates nothing).
    by_identifier: Map<String, Map<String, Vec<usize>>>,
    /// Findings so far (header, entries); [`Self::finish`] adds the references'.
    pub findings: Vec<Finding>,
}

impl<'o> BundleChecker<'o> {
    /// Starts with the Bundle's members before `entry` (for its `type`); the header is
    /// validated by [`Self::finish`], when members after `entry` are known too.
    pub fn new(start: &Node, options: &Options<'o>) -> Self {
        BundleChecker {
            walker: Walker::new(options),
            bundle_type: start.get("type").and_then(Node::as_str).map(str::to_string),
            entries: Vec::new(),
            by_full_url: Map::default(),
            by_type_id: Map::default(),
            by_identifier: Map::default(),
            findings: Vec::new(),
        }
    }

    /// The number of entries seen.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// Counts an entry that could not be read (its reader's error is reported by the caller),
    /// so later entries keep their numbers.
    pub fn skip_entry(&mut self) {
        self.entries.push(EntryInfo::default());
    }

    /// Validates the next entry and adds it to the index.
    pub fn entry(&mut self, entry: &Node) {
        let index = self.entries.len();
        self.walker.bundle_entry(entry, index);
        self.findings.append(&mut self.walker.findings);
        let loc = format!("Bundle.entry[{index}]");
        let mut rule = |at: &str, message: String| {
            self.findings.push(Finding {
                severity: Severity::Error,
                code: codes::BUNDLE_RULE,
                location: format!("{loc}{at}"),
                message,
            });
        };
        let t = self.bundle_type.as_deref().unwrap_or("");
        let has = |n: &str| entry.get(n).is_some();
        match (has("request"), matches!(t, "batch" | "transaction" | "history")) {
            (false, true) => rule("", format!("bdl-3: an entry of a {t} Bundle needs `request`")),
            (true, false) => rule(".request", format!("bdl-3: an entry of a {t} Bundle has no `request`")),
            _ => {}
        }
        match (has("response"), matches!(t, "batch-response" | "transaction-response" | "history")) {
            (false, true) => rule("", format!("bdl-4: an entry of a {t} Bundle needs `response`")),
            (true, false) => rule(".response", format!("bdl-4: an entry of a {t} Bundle has no `response`")),
            _ => {}
        }
        if has("search") && t != "searchset" {
            rule(".search", "bdl-2: `entry.search` only in a searchset Bundle".into());
        }
        if !has("resource") && !has("request") && !has("response") {
            rule("", "bdl-5: an entry needs a resource, a request or a response".into());
        }
        let resource = entry.get("resource");
        let resource_type = resource.and_then(Node::resource_type).map(str::to_string);
        if index == 0 {
            match (t, resource_type.as_deref()) {
                ("document", rt) if rt != Some("Composition") => {
                    rule("", "bdl-11: a document Bundle starts with a Composition".into())
                }
                ("message", rt) if rt != Some("MessageHeader") => {
                    rule("", "bdl-12: a message Bundle starts with a MessageHeader".into())
                }
                _ => {}
            }
        }
        let full_url = entry.get("fullUrl").and_then(Node::as_str).map(str::to_string);
        if let Some(u) = &full_url
            && u.contains("/_history/")
        {
            rule(".fullUrl", "bdl-8: fullUrl cannot be a version specific reference".into());
        }
        let info = EntryInfo {
            full_url: full_url.clone(),
            resource_type,
            id: resource.and_then(|r| r.get("id")).and_then(Node::as_str).map(str::to_string),
            version: resource
                .and_then(|r| r.get("meta"))
                .and_then(|m| m.get("versionId"))
                .and_then(Node::as_str)
                .map(str::to_string),
        };
        if let Some(u) = &full_url {
            // bdl-7: same fullUrl twice only with different versions (history Bundles).
            if let Some(&other) = self.by_full_url.get(u) {
                let same_version = self.entries[other].version == info.version;
                if same_version && t != "history" {
                    self.findings.push(Finding {
                        severity: Severity::Error,
                        code: codes::DUPLICATE_ENTRY,
                        location: format!("{loc}.fullUrl"),
                        message: format!("bdl-7: the same fullUrl as Bundle.entry[{other}]"),
                    });
                }
            } else {
                self.by_full_url.insert(u.clone(), index);
            }
        }
        if let (Some(rt), Some(id)) = (&info.resource_type, &info.id) {
            self.by_type_id.entry((rt.clone(), id.clone())).or_default().push(index);
        }
        if let Some(Node::Array(ids)) = resource.and_then(|r| r.get("identifier")) {
            for id in ids {
                if let (Some(s), Some(v)) =
                    (id.get("system").and_then(Node::as_str), id.get("value").and_then(Node::as_str))
                {
                    let values = match self.by_identifier.get_mut(s) {
                        Some(values) => values,
                        None => self.by_identifier.entry(s.to_string()).or_default(),
                    };
                    match values.get_mut(v) {
                        Some(found) => found.push(index),
                        None => {
                            values.insert(v.to_string(), vec![index]);
                        }
                    }
                }
            }
        }
        self.entries.push(info);
    }

    /// Validates the header (the Bundle's members except `entry`), then Bundle-level rules and
    /// reference resolution; returns every finding, the header's first.
    pub fn finish(mut self, header: &Node) -> Vec<Finding> {
        let mut w = Walker::new(&self.walker.options());
        w.top_resource(header, None);
        let entry_findings = std::mem::replace(&mut self.findings, w.findings);
        self.findings.extend(entry_findings);
        let t = self.bundle_type.clone().unwrap_or_default();
        if header.get("total").is_some() && !matches!(t.as_str(), "searchset" | "history") {
            self.findings.push(Finding {
                severity: Severity::Error,
                code: codes::BUNDLE_RULE,
                location: "Bundle.total".into(),
                message: "bdl-1: `total` only in searchset and history Bundles".into(),
            });
        }
        let references = std::mem::take(&mut self.walker.references);
        for site in references {
            let outcome = self.resolve(&site.reference, site.entry);
            let severity = if site.required { Severity::Error } else { Severity::Warning };
            match outcome {
                Resolution::Found(target) => {
                    let rt = self.entries[target].resource_type.as_deref().unwrap_or("");
                    if !site.targets.is_empty()
                        && !rt.is_empty()
                        && !site.targets.iter().any(|x| x == "Resource" || x == rt)
                    {
                        self.findings.push(Finding {
                            severity: Severity::Error,
                            code: codes::WRONG_REFERENCE_TARGET,
                            location: site.location,
                            message: format!(
                                "the reference resolves to a {rt} (Bundle.entry[{target}]), where {} is allowed",
                                site.targets.join(", ")
                            ),
                        });
                    }
                }
                Resolution::External => {}
                Resolution::Conditional => self.findings.push(Finding {
                    severity: Severity::Error,
                    code: codes::REFERENCE_MALFORMED,
                    location: site.location,
                    message: "a conditional reference (Type?search) is only allowed in transaction and batch Bundles"
                        .into(),
                }),
                Resolution::Malformed => self.findings.push(Finding {
                    severity: Severity::Error,
                    code: codes::REFERENCE_MALFORMED,
                    location: site.location,
                    message: "not a FHIR reference: Type/id, an absolute URL, urn:uuid:, urn:oid: or #id".into(),
                }),
                Resolution::Missing(why) => self.findings.push(Finding {
                    severity,
                    code: codes::REFERENCE_NOT_FOUND,
                    location: site.location,
                    message: format!("{why}{}", if site.required { " (the profile requires it)" } else { "" }),
                }),
            }
        }
        for site in std::mem::take(&mut self.walker.logical) {
            if self.identified(&site.system, &site.value).is_none() {
                self.findings.push(Finding {
                    severity: if site.required { Severity::Error } else { Severity::Warning },
                    code: codes::REFERENCE_NOT_FOUND,
                    location: site.location,
                    message: "no entry of the Bundle has the identifier of this logical reference".into(),
                });
            }
        }
        self.findings
    }

    /// The entries with the identifier `system`|`value`.
    fn identified(&self, system: &str, value: &str) -> Option<&Vec<usize>> {
        self.by_identifier.get(system)?.get(value)
    }

    /// The entry a reference made in entry `from` points at.
    fn resolve(&self, reference: &str, from: Option<usize>) -> Resolution {
        // `urn:uuid:` and `urn:oid:` first (half the references of a transaction): they name a
        // fullUrl, and cannot be conditional (`urn:...` is no resource type).
        if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
            return match self.by_full_url.get(reference) {
                Some(&i) => Resolution::Found(i),
                None => Resolution::Missing("no entry has this fullUrl".into()),
            };
        }
        // Conditional references (`Patient?identifier=system|value`): allowed in transactions
        // and batches, where the server resolves them; matched against the entries'
        // identifiers when they search by identifier.
        if let Some((t, query)) = reference.split_once('?')
            && model::is_concrete_resource(schema(), t)
        {
            let in_transaction = matches!(self.bundle_type.as_deref(), Some("transaction" | "batch"));
            if !in_transaction {
                return Resolution::Conditional;
            }
            let by_identifier = query
                .strip_prefix("identifier=")
                .and_then(|id| id.split_once('|'))
                .and_then(|(system, value)| self.identified(system, value))
                .and_then(|found| found.iter().find(|&&i| self.entries[i].resource_type.as_deref() == Some(t)));
            return by_identifier.map_or(Resolution::External, |&i| Resolution::Found(i));
        }
        let (without_version, version) = match split_history(reference) {
            Some((a, v)) => (a, Some(v)),
            None => (reference, None),
        };
        let from_base = from.and_then(|i| self.entries.get(i)).and_then(|e| e.full_url.as_deref()).and_then(base_of);
        let (absolute, base) = if has_scheme(reference) {
            let Some(base) = base_of(without_version) else { return Resolution::Malformed };
            (without_version.to_string(), Some(base))
        } else {
            if literal_type(reference).is_none() {
                return Resolution::Malformed;
            }
            match from_base {
                Some(b) => (format!("{b}{without_version}"), None),
                None => (without_version.to_string(), None),
            }
        };
        if let Some(&i) = self.by_full_url.get(&absolute) {
            return self.check_version(i, version);
        }
        // By type and id: for relative references, and absolute ones on the Bundle's base.
        if let Some(b) = base {
            let on_bundle_base = self.entries.iter().any(|e| e.full_url.as_deref().and_then(base_of) == Some(b));
            if !on_bundle_base {
                return Resolution::External;
            }
        }
        let tail = &without_version[without_version.len() - type_id_len(without_version)..];
        let Some((t, id)) = tail.split_once('/') else { return Resolution::Malformed };
        match self.by_type_id.get(&(t.to_string(), id.to_string())) {
            Some(found) => {
                let with_version =
                    version.and_then(|v| found.iter().find(|&&i| self.entries[i].version.as_deref() == Some(v)));
                match with_version {
                    Some(&i) => Resolution::Found(i),
                    None => self.check_version(found[0], version),
                }
            }
            None => Resolution::Missing(format!("no entry is the {t} this reference names")),
        }
    }

    fn check_version(&self, i: usize, version: Option<&str>) -> Resolution {
        match (version, self.entries[i].version.as_deref()) {
            (Some(want), Some(have)) if want != have => {
                Resolution::Missing("the entry is there but not in the version this reference names".into())
            }
            _ => Resolution::Found(i),
        }
    }
}

enum Resolution {
    Found(usize),
    /// On another server (or resolved by the server, for conditional references in a
    /// transaction): not expected in the Bundle.
    External,
    /// A conditional reference outside a transaction or batch.
    Conditional,
    Malformed,
    Missing(String),
}

/// The service base of a RESTful URL ending in `Type/id` (`http://x/fhir/` of
/// `http://x/fhir/Patient/1`), with its trailing slash.
fn base_of(url: &str) -> Option<&str> {
    let url = split_history(url).map_or(url, |(a, _)| a);
    let n = type_id_len(url);
    (n > 0 && n < url.len()).then(|| &url[..url.len() - n])
}

/// Length of the `Type/id` tail of `s` (0 if it has none): the two last `/`-separated parts
/// (what `rsplitn(3, '/')` gives), found by scanning bytes back from the end (every reference
/// is looked at here, twice; a `/` byte is never inside a multi-byte character).
fn type_id_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    let Some(slash) = bytes.iter().rposition(|&b| b == b'/') else { return 0 };
    let id = &s[slash + 1..];
    if crate::primitive::check_type(crate::primitive::Type::Id, id).is_err() {
        return 0;
    }
    let t = &s[bytes[..slash].iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1)..slash];
    if model::is_concrete_resource(schema(), t) { t.len() + 1 + id.len() } else { 0 }
}

/// The resource type of a literal reference `Type/id` (optionally absolute or versioned).
pub fn literal_type(reference: &str) -> Option<&str> {
    let r = split_history(reference).map_or(reference, |(a, _)| a);
    let n = type_id_len(r);
    if n == 0 {
        return None;
    }
    if n < r.len() && !has_scheme(r) {
        return None;
    }
    r[r.len() - n..].split('/').next()
}

/// `s` split around its first `/_history/` (what `s.split_once("/_history/")` gives). Every
/// reference is split this way; std's substring search sets up a two-way searcher per call,
/// which cost more than the rest of reading the reference, so this looks for the rare `_`.
fn split_history(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'_').map(|p| from + p) {
        if at > 0 && bytes[at - 1] == b'/' && bytes[at + 1..].starts_with(b"history/") {
            return Some((&s[..at - 1], &s[at + 9..]));
        }
        from = at + 1;
    }
    None
}

/// Whether `s` holds `://` (an absolute URL), without std's substring searcher (see
/// [`split_history`]).
fn has_scheme(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"://")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`type_id_len`] as first written, with std's splitting: the oracle of the byte scan.
    fn type_id_len_by_split(s: &str) -> usize {
        let mut parts = s.rsplitn(3, '/');
        let (Some(id), Some(t)) = (parts.next(), parts.next()) else { return 0 };
        let ok =
            !id.is_empty() && crate::primitive::check("id", id).is_ok() && model::is_concrete_resource(schema(), t);
        if ok { t.len() + 1 + id.len() } else { 0 }
    }

    proptest::proptest! {
        /// The reference scanners agree with std's substring search on strings made of the
        /// pieces that matter (`/`, `_`, `history`, `:`) and anything else.
        #[test]
        fn reference_scans_agree_with_substring_search(parts in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::strategy::Just("/".to_string()),
                proptest::strategy::Just("_".to_string()),
                proptest::strategy::Just("history".to_string()),
                proptest::strategy::Just("/_history/".to_string()),
                proptest::strategy::Just(":".to_string()),
                "[a-zé1:/_]{0,3}",
            ],
            0..12,
        )) {
            let s = parts.concat();
            proptest::prop_assert_eq!(split_history(&s), s.split_once("/_history/"));
            proptest::prop_assert_eq!(type_id_len(&s), type_id_len_by_split(&s));
            let patient = format!("{s}/Patient/{s}");
            proptest::prop_assert_eq!(type_id_len(&patient), type_id_len_by_split(&patient));
            proptest::prop_assert_eq!(has_scheme(&s), s.contains("://"));
        }
    }

    fn run(json: &str) -> Vec<(Severity, &'static str, String)> {
        let n = crate::json::parse(json.as_bytes()).unwrap();
        validate_bundle(&n, &Options::default()).into_iter().map(|f| (f.severity, f.code, f.location)).collect()
    }

    /// `validate_document` against `read` then `validate`, on the
    /// shapes where handing entries out could go wrong: what is streamed, what is not, and
    /// errors before, inside and after the entries.
    #[test]
    fn documents_validated_in_one_go_match_read_then_validate() {
        let entry = r#"{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","gender":"x","link":[{"other":{"reference":"Patient/9"}}]}}"#;
        let entries = format!("[{entry},\n {entry}, {{\"request\":{{}}}}, 7, {entry}]");
        let cases = [
            // Streamed: resourceType and type first.
            format!(r#"{{"resourceType":"Bundle","type":"collection","entry":{entries},"total":3}}"#),
            format!(r#"{{"resourceType":"Bundle","id":"b","type":"batch","entry":{entries}}}"#),
            // Not streamed: `type` or `resourceType` after the entries, an empty or non-array `entry`.
            format!(r#"{{"resourceType":"Bundle","entry":{entries},"type":"collection"}}"#),
            format!(r#"{{"type":"collection","entry":{entries},"resourceType":"Bundle"}}"#),
            r#"{"resourceType":"Bundle","type":"collection","entry":[ ]}"#.into(),
            r#"{"resourceType":"Bundle","type":"collection","entry":{"a":1}}"#.into(),
            format!(r#"{{"resourceType":"Patient","type":"x","entry":{entries}}}"#),
            // Errors: a second `entry`, a broken entry, text after the end, not a resource.
            format!(r#"{{"resourceType":"Bundle","type":"collection","entry":{entries},"entry":[]}}"#),
            format!(r#"{{"resourceType":"Bundle","type":"collection","entry":[{entry},{{"x":]}}"#),
            format!(r#"{{"resourceType":"Bundle","type":"collection","entry":[{entry}]}} x"#),
            format!(r#"{{"resourceType":"Bundle","type":"collection","entry":[{entry}"#),
            format!(r#"{{"resourceType":7,"type":"collection","entry":{entries}}}"#),
            "[1,2]".into(),
            r#"<Patient xmlns="http://hl7.org/fhir"><gender value="x"/></Patient>"#.into(),
        ];
        for case in &cases {
            let expected = crate::read(case.as_bytes()).map(|tree| validate(&tree, &Options::default()));
            let got = validate_document(case.as_bytes(), Limits::default(), &Options::default());
            assert_eq!(got, expected, "{case}");
        }
        // The first case has findings in entries, rules and references: the test compares
        // something.
        let first = validate_document(cases[0].as_bytes(), Limits::default(), &Options::default()).unwrap();
        assert!(first.len() >= 6, "{first:?}");
        // Nesting limits apply the same way.
        let limits = Limits { max_depth: 4, ..Limits::default() };
        let expected = crate::read_with(cases[0].as_bytes(), limits).map(|t| validate(&t, &Options::default()));
        assert!(expected.is_err());
        assert_eq!(validate_document(cases[0].as_bytes(), limits, &Options::default()), expected);
    }

    #[test]
    fn resolves_every_kind_of_reference() {
        let b = r##"{"resourceType":"Bundle","type":"collection","entry":[
          {"fullUrl":"http://x.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1","meta":{"versionId":"2"},"identifier":[{"system":"urn:mrn","value":"7"}]}},
          {"fullUrl":"urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162","resource":{"resourceType":"Practitioner"}},
          {"fullUrl":"http://x.org/fhir/Observation/o","resource":{"resourceType":"Observation","status":"final","code":{"text":"t"},
            "subject":{"reference":"Patient/1"},
            "performer":[{"reference":"urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162"},{"reference":"http://x.org/fhir/Patient/1/_history/2"},
               {"reference":"http://other.org/fhir/Practitioner/9"},{"identifier":{"system":"urn:mrn","value":"7"}},
               {"reference":"Practitioner/missing"},{"reference":"Patient/1/_history/3"},{"reference":"not a reference"}],
            "focus":[{"reference":"#c1"}],
            "contained":[{"resourceType":"Patient","id":"c1"}]}}]}"##;
        assert_eq!(
            run(b),
            [
                (Severity::Warning, codes::REFERENCE_NOT_FOUND, "Bundle.entry[2].resource.performer[4]".to_string()),
                (Severity::Warning, codes::REFERENCE_NOT_FOUND, "Bundle.entry[2].resource.performer[5]".to_string()),
                (Severity::Error, codes::REFERENCE_MALFORMED, "Bundle.entry[2].resource.performer[6]".to_string()),
            ]
        );
    }

    #[test]
    fn bundle_type_rules() {
        let t = r#"{"resourceType":"Bundle","type":"transaction","entry":[
          {"fullUrl":"urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162","resource":{"resourceType":"Practitioner","identifier":[{"system":"urn:npi","value":"9"}]},"request":{"method":"POST","url":"Practitioner"}},
          {"fullUrl":"urn:uuid:b76d9bbf-f293-4fb7-ad4c-2851cac77162","resource":{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},
            "participant":[{"individual":{"reference":"Practitioner?identifier=urn:npi|9"}},{"individual":{"reference":"Practitioner?identifier=urn:npi|8"}}],
            "serviceProvider":{"reference":"Organization?identifier=urn:x|1"}},"request":{"method":"POST","url":"Encounter"}}]}"#;
        assert_eq!(run(t), []);
        let c = t
            .replace("transaction", "collection")
            .replace(r#","request":{"method":"POST","url":"Practitioner"}"#, "")
            .replace(r#","request":{"method":"POST","url":"Encounter"}"#, "");
        assert_eq!(run(&c).into_iter().map(|(_, c, _)| c).collect::<Vec<_>>(), [codes::REFERENCE_MALFORMED; 3]);
        let b = r#"{"resourceType":"Bundle","type":"document","total":1,"entry":[{"resource":{"resourceType":"Patient"}},{"fullUrl":"urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162","request":{"method":"GET","url":"Patient"}}]}"#;
        let codes: Vec<_> = run(b).into_iter().map(|(_, c, l)| format!("{c} {l}")).collect();
        assert_eq!(codes, ["FHIR204 Bundle.entry[0]", "FHIR204 Bundle.entry[1].request", "FHIR204 Bundle.total",]);
    }
}
