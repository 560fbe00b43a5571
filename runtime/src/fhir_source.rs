//! The `format: fhir` files source: FHIR R4 files cut into one record per resource (reader
//! thread, [`pieces`]), then each record read, filtered by resource type and validated
//! (worker, [`decode`]).
//!
//! Files: a JSON or XML resource, a JSON or XML Bundle (each entry is one record: streamed
//! entry by entry with `sluice_fhir::stream::Parts`, so memory holds one entry, not the
//! Bundle; XML entries are converted to JSON as they are cut out) and Bulk Data NDJSON (one
//! record a line; a file ending in `.ndjson`/`.jsonl`, or whose first line is a whole JSON
//! object with more lines after it).
//!
//! Invariants:
//! - Nothing is lost, nothing panics: every piece of input becomes exactly one record. An entry
//!   or line that cannot be read, a file that is not JSON or XML at all, a resource that breaks
//!   validation (strict: any error; lenient: FHIR101/FHIR102 only warn) each become a DLQ
//!   rejection (`RT115` unreadable, with the byte offset in the file; `RT116` invalid, one
//!   finding per error: its `FHIRnnn` code and FHIRPath-style location) and the other entries
//!   of the Bundle go on. Resources of a type not in `resource_types`, and Bundle entries
//!   without a resource (a `delete` request, a batch response), count as filtered. So a run
//!   still balances: in = delivered + DLQ + filtered.
//! - No value from the data reaches a reason, a finding or a warning: codec errors and
//!   validator findings name codes, elements and offsets only.
//! - A record's bytes (what the DLQ keeps, encrypted) are the entry or resource as JSON: as
//!   read for JSON and NDJSON, as converted for XML.
//! - Locations of entries are the entry's place in its Bundle: `Bundle.entry[2].resource.gender`.
//! - References: when a mapping of the plan uses `resolve()`, a Bundle file is read once more
//!   first, to index its entries' resources ([`BundleIndex`], by file, held for the run: flat
//!   memory is traded for resolution); otherwise nothing is held.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sluice_compiler::plan::{FhirSourcePlan, Mode};
use sluice_fhir::stream::{Part, Parts};
use sluice_fhir::validate::{Options, Severity};
use sluice_fhir::{CodecError, Limits, Node};

use crate::dlq::{Finding, Rejection};
use crate::error::RunError;
use crate::findings;
use crate::record::{Doc, Issue};

/// A FHIR source as prepared once per plan.
#[derive(Debug)]
pub struct FhirSource {
    resource_types: Vec<String>,
    profiles: Vec<sluice_fhir::profile::Profile>,
    lenient: bool,
    /// A mapping downstream reads `resolve()`: the reader indexes each Bundle's resources
    /// first, by file, for the map stage.
    keep_bundles: bool,
    bundles: Mutex<HashMap<String, Arc<BundleIndex>>>,
}

/// The resources of one Bundle, for `resolve()` in mappings: each entry's `fullUrl` (if any)
/// and resource.
#[derive(Debug, Default)]
pub struct BundleIndex {
    entries: Vec<(Option<String>, Doc)>,
}

impl BundleIndex {
    fn push(&mut self, entry: &Node) {
        let Some(resource) = entry.get("resource") else { return };
        let full_url = entry.get("fullUrl").and_then(Node::as_str).map(String::from);
        self.entries.push((full_url, to_doc(resource)));
    }

    /// The resource a reference names: the entry whose `fullUrl` it is, else (for `Type/id`,
    /// relative or absolute, versioned or not) the entry of that type and id.
    pub fn target(&self, reference: &str) -> Option<&Doc> {
        if let Some((_, d)) = self.entries.iter().find(|(u, _)| u.as_deref() == Some(reference)) {
            return Some(d);
        }
        let unversioned = reference.split("/_history/").next().unwrap_or(reference);
        let mut parts = unversioned.rsplit('/');
        let (id, ty) = (parts.next()?, parts.next()?);
        self.entries.iter().map(|(_, d)| d).find(|d| {
            matches!(d.get("resourceType"), Some(Doc::Str(t)) if t == ty)
                && matches!(d.get("id"), Some(Doc::Str(i)) if i == id)
        })
    }
}

impl FhirSource {
    /// The Bundle index of `file`, when the plan resolves references and the file is a Bundle.
    pub fn bundle(&self, file: &str) -> Option<Arc<BundleIndex>> {
        if !self.keep_bundles {
            return None;
        }
        self.bundles.lock().ok()?.get(file).cloned()
    }

    /// Indexes the Bundle in `path` (read once more through `open`, entry by entry) when the
    /// plan resolves references. What cannot be read is left out: its entry goes to the DLQ on
    /// the real pass.
    fn index_bundle(&self, open: &crate::source::Opener, path: &Path) {
        if !self.keep_bundles {
            return;
        }
        let mut index = BundleIndex::default();
        if let Ok(f) = open()
            && let Ok(parts) = Parts::new(BufReader::new(f), Limits::default())
        {
            for part in parts {
                if let Ok(Part::Entry { bytes: Ok(bytes), .. }) = part
                    && let Ok(entry) = sluice_fhir::json::parse(&bytes)
                {
                    index.push(&entry);
                }
            }
        }
        if let Ok(mut bundles) = self.bundles.lock() {
            bundles.insert(path.to_string_lossy().into_owned(), Arc::new(index));
        }
    }

    /// Reads the profile the compiler checked; it may have changed on disk since.
    /// `keep_bundles`: some mapping of the plan resolves references.
    pub fn new(plan: &FhirSourcePlan, keep_bundles: bool) -> Result<FhirSource, RunError> {
        let mut profiles = Vec::new();
        if let Some(path) = &plan.profile {
            let bytes = std::fs::read(path).map_err(|e| RunError::io("read", Path::new(path), &e))?;
            let p = sluice_fhir::profile::Profile::from_bytes(&bytes).map_err(|why| {
                RunError::new(findings::PLAN_INVALID, format!("the FHIR profile `{path}` cannot be used: {why}"))
            })?;
            profiles.push(p);
        }
        Ok(FhirSource {
            resource_types: plan.resource_types.clone(),
            profiles,
            lenient: plan.mode == Mode::Lenient,
            keep_bundles,
            bundles: Mutex::new(HashMap::new()),
        })
    }
}

/// One record's worth of a FHIR file, as the reader thread cuts it.
#[derive(Debug)]
pub struct Piece {
    /// Byte offset in the file (0 for what came from XML, which is read whole).
    pub offset: u64,
    /// 0-based: the entry's index in its Bundle, the NDJSON line's, or 0.
    pub index: u64,
    pub bytes: Vec<u8>,
    /// Set when the piece cannot be a record (it goes straight to the DLQ).
    pub problem: Option<Rejection>,
}

fn unreadable(e: &CodecError, at: u64, what: &str) -> Rejection {
    let reason = format!("{what} is not readable FHIR: {} at file offset {at}: {}", e.code, e.message);
    Rejection {
        code: findings::FHIR_UNREADABLE,
        findings: vec![Finding { code: e.code, rule: None, path: None, message: reason.clone() }],
        reason,
        attempts: 1,
    }
}

fn problem(offset: u64, index: u64, bytes: Vec<u8>, r: Rejection) -> Piece {
    Piece { offset, index, bytes, problem: Some(r) }
}

/// The pieces of one file of `src`, read as they are needed.
pub fn pieces(
    open: &crate::source::Opener,
    path: &Path,
    src: &FhirSource,
) -> Result<Box<dyn Iterator<Item = std::io::Result<Piece>> + Send>, RunError> {
    let mut reader = BufReader::with_capacity(64 * 1024, open()?);
    let prefix = reader.fill_buf().map_err(|e| crate::source::read_error(path, &e))?.to_vec();
    let name = path.to_string_lossy();
    let ndjson = name.ends_with(".ndjson")
        || name.ends_with(".jsonl")
        || (!sluice_fhir::is_xml(&prefix) && sluice_fhir::stream::looks_like_ndjson(&prefix));
    if !ndjson {
        src.index_bundle(open, path);
    }
    if ndjson {
        return Ok(Box::new(Lines { reader, offset: 0, index: 0, limits: Limits::default() }));
    }
    let parts = Parts::new(reader, Limits::default()).map_err(|e| crate::source::read_error(path, &e))?;
    Ok(Box::new(BundlePieces::new(parts)))
}

/// Bulk Data NDJSON: one piece a non-blank line, each bounded by the size limit.
struct Lines<R: BufRead> {
    reader: R,
    offset: u64,
    index: u64,
    limits: Limits,
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = std::io::Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let start = self.offset;
            let mut line = Vec::new();
            let mut too_long = false;
            loop {
                let chunk = match self.reader.fill_buf() {
                    Ok(c) => c,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Some(Err(e)),
                };
                if chunk.is_empty() {
                    break;
                }
                let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                if line.len() + take <= self.limits.max_bytes + 1 {
                    line.extend_from_slice(&chunk[..take]);
                } else {
                    too_long = true;
                }
                self.reader.consume(take);
                self.offset += take as u64;
                if end {
                    break;
                }
            }
            if self.offset == start {
                return None;
            }
            let index = self.index;
            self.index += 1;
            if too_long {
                let e = CodecError {
                    code: sluice_fhir::codes::TOO_LARGE,
                    offset: start as usize,
                    message: format!("the line is longer than the limit of {} bytes", self.limits.max_bytes),
                };
                return Some(Ok(problem(
                    start,
                    index,
                    Vec::new(),
                    unreadable(&e, start, &format!("line {}", index + 1)),
                )));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            return Some(Ok(Piece { offset: start, index, bytes: line, problem: None }));
        }
    }
}

/// A JSON or XML file: a Bundle streamed entry by entry, or one resource.
struct BundlePieces<R: BufRead> {
    parts: Parts<R>,
    /// Entries held until the document shows it is a Bundle (its `resourceType` came after
    /// `entry`); empty while streaming.
    held: Vec<Piece>,
    /// The document is a Bundle (known from the members before `entry`).
    bundle: Option<bool>,
    ready: VecDeque<Piece>,
    /// The `entry` array began.
    started: bool,
    /// The document's end was seen.
    ended: bool,
    done: bool,
}

impl<R: BufRead> BundlePieces<R> {
    fn new(parts: Parts<R>) -> Self {
        BundlePieces {
            parts,
            held: Vec::new(),
            bundle: None,
            ready: VecDeque::new(),
            started: false,
            ended: false,
            done: false,
        }
    }

    /// A non-Bundle resource whose `entry` array was cut into the held pieces: its members
    /// outside `entry` with `entry` added back (last: member order does not matter in FHIR
    /// JSON). An unreadable entry makes the whole resource unreadable, at that entry's offset.
    fn whole_resource(&mut self, header: Node) -> Result<Node, Piece> {
        // (`end` only calls this for an object with a `resourceType`.)
        let Node::Object(mut members) = header else { return Ok(header) };
        let mut entries = Vec::with_capacity(self.held.len());
        for piece in self.held.drain(..) {
            let read = match piece.problem {
                Some(_) => None,
                None => sluice_fhir::json::parse(&piece.bytes).ok(),
            };
            match read {
                Some(entry) => entries.push(entry),
                None => {
                    let e = CodecError {
                        code: sluice_fhir::codes::JSON_SYNTAX,
                        offset: piece.offset as usize,
                        message: format!("item {} of `entry` is not readable JSON", piece.index),
                    };
                    return Err(problem(piece.offset, 0, Vec::new(), unreadable(&e, piece.offset, "the file")));
                }
            }
        }
        members.push(("entry".into(), Node::Array(entries)));
        Ok(Node::Object(members))
    }

    /// What the members outside `entry` (the whole document when there is no `entry`) make.
    fn end(&mut self, header: Result<Vec<u8>, CodecError>, entries_seen: bool) {
        let (header, read) = match header {
            Ok(bytes) => {
                let read = sluice_fhir::json::parse(&bytes);
                (bytes, read)
            }
            Err(e) => (Vec::new(), Err(e)),
        };
        match read {
            Ok(h) if h.resource_type() == Some("Bundle") => self.ready.extend(self.held.drain(..)),
            Ok(h) if h.resource_type().is_some() && !entries_seen => {
                self.ready.push_back(Piece { offset: 0, index: 0, bytes: header, problem: None });
            }
            Ok(h) if h.resource_type().is_some() => {
                // Another resource with an `entry` member (a List): one record, put back
                // together from the members outside `entry` and the entries held (the input
                // may be an object in a store: it is not read a second time).
                let piece = match self.whole_resource(h) {
                    Ok(n) => Piece { offset: 0, index: 0, bytes: n.to_json().into_bytes(), problem: None },
                    Err(p) => p,
                };
                self.ready.push_back(piece);
            }
            Ok(_) => {
                self.ready.extend(self.held.drain(..));
                let e = CodecError {
                    code: sluice_fhir::codes::NOT_A_RESOURCE,
                    offset: 0,
                    message: "the JSON value is not an object with a `resourceType` string".into(),
                };
                self.ready.push_back(problem(0, 0, Vec::new(), unreadable(&e, 0, "the file")));
            }
            Err(e) => {
                // With entries, the offset is one in the members outside `entry`.
                self.ready.extend(self.held.drain(..));
                let what = if entries_seen { "the file (outside its entries)" } else { "the file" };
                self.ready.push_back(problem(e.offset as u64, 0, Vec::new(), unreadable(&e, e.offset as u64, what)));
            }
        }
    }
}

impl<R: BufRead> Iterator for BundlePieces<R> {
    type Item = std::io::Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(p) = self.ready.pop_front() {
                return Some(Ok(p));
            }
            if self.done {
                return None;
            }
            let part = match self.parts.next() {
                Some(Ok(p)) => p,
                Some(Err(e)) => return Some(Err(e)),
                None => {
                    self.done = true;
                    if !self.ended {
                        // An empty file: still one record, in the DLQ.
                        self.ready.extend(self.held.drain(..));
                        let e = CodecError {
                            code: sluice_fhir::codes::JSON_SYNTAX,
                            offset: 0,
                            message: "the input is empty".into(),
                        };
                        self.ready.push_back(problem(0, 0, Vec::new(), unreadable(&e, 0, "the file")));
                    }
                    continue;
                }
            };
            match part {
                Part::Start(header) => {
                    self.started = true;
                    self.bundle =
                        sluice_fhir::json::parse(&header).ok().and_then(|h| h.resource_type().map(|t| t == "Bundle"));
                }
                Part::Entry { index, offset, bytes } => {
                    let piece = match bytes {
                        Ok(b) => Piece { offset: offset as u64, index: index as u64, bytes: b, problem: None },
                        Err(e) => problem(
                            offset as u64,
                            index as u64,
                            Vec::new(),
                            unreadable(&e, offset as u64, &format!("entry {index} of the Bundle")),
                        ),
                    };
                    match self.bundle {
                        Some(true) => return Some(Ok(piece)),
                        _ => self.held.push(piece),
                    }
                }
                Part::End(header) => {
                    self.done = true;
                    self.ended = true;
                    self.end(header, self.started);
                }
            }
        }
    }
}

/// A resource that passed the source step.
#[derive(Debug)]
pub struct Decoded {
    pub resource: Doc,
    pub resource_type: String,
    /// `Patient/123` when the resource has an id (logical ids are server-assigned keys).
    pub id: Option<String>,
    /// Validation warnings (and, lenient, what strict would have rejected).
    pub warnings: Vec<Issue>,
}

/// A FHIR tree as a record document (numbers kept as written).
pub fn to_doc(node: &Node) -> Doc {
    match node {
        Node::Null => Doc::Null,
        Node::Bool(b) => Doc::Bool(*b),
        Node::Number(n) => Doc::Num(n.clone()),
        Node::String(s) => Doc::Str(s.clone()),
        Node::Array(a) => Doc::Arr(a.iter().map(to_doc).collect()),
        Node::Object(m) => Doc::Obj(m.iter().map(|(k, v)| (k.to_string(), to_doc(v))).collect()),
    }
}

/// Reads, filters and validates one piece (`offset`, `index` as in [`Piece`]). `Ok(None)`:
/// the record is filtered (another resource type, or an entry without a resource).
pub fn decode(bytes: &[u8], offset: u64, index: u64, src: &FhirSource) -> Result<Option<Decoded>, Rejection> {
    let node = sluice_fhir::json::parse(bytes).map_err(|e| {
        let at = offset + e.offset as u64;
        unreadable(&e, at, "the resource")
    })?;
    let (resource, prefix) = match (node.resource_type(), node.get("resource")) {
        (Some(_), _) => (&node, None),
        (None, Some(r)) => (r, Some(format!("Bundle.entry[{index}].resource"))),
        (None, None) if node.as_object().is_some() => return Ok(None),
        (None, None) => {
            let e = CodecError {
                code: sluice_fhir::codes::NOT_A_RESOURCE,
                offset: 0,
                message: "the JSON value is not an object with a `resourceType` string".into(),
            };
            return Err(unreadable(&e, offset, "the resource"));
        }
    };
    let Some(resource_type) = resource.resource_type() else {
        let e = CodecError {
            code: sluice_fhir::codes::NOT_A_RESOURCE,
            offset: 0,
            message: "the entry's `resource` is not an object with a `resourceType` string".into(),
        };
        return Err(unreadable(&e, offset, &format!("entry {index} of the Bundle")));
    };
    if !src.resource_types.is_empty() && !src.resource_types.iter().any(|t| t == resource_type) {
        return Ok(None);
    }
    let options = Options { lenient: src.lenient, profiles: &src.profiles };
    let located = |location: &str| match &prefix {
        Some(p) => match location.split_once('.') {
            Some((_, rest)) => format!("{p}.{rest}"),
            None => p.clone(),
        },
        None => location.to_string(),
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for f in sluice_fhir::validate::validate(resource, &options) {
        let location = located(&f.location);
        match f.severity {
            Severity::Error => {
                errors.push(Finding { code: f.code, rule: None, path: Some(location), message: f.message })
            }
            _ => warnings.push(Issue::new(f.code, location, f.message)),
        }
    }
    if !errors.is_empty() {
        let first = &errors[0];
        let reason = format!(
            "`{resource_type}` is not valid FHIR R4 ({} error(s); first {} at {})",
            errors.len(),
            first.code,
            first.path.as_deref().unwrap_or("")
        );
        return Err(Rejection { code: findings::FHIR_INVALID, reason, findings: errors, attempts: 1 });
    }
    let id = resource.get("id").and_then(Node::as_str).map(|id| format!("{resource_type}/{id}"));
    Ok(Some(Decoded { resource: to_doc(resource), resource_type: resource_type.to_string(), id, warnings }))
}

/// Reads a deletion's stub (`{"resourceType", "id"}`, made by the `fhir.rest` source from a
/// server's `_history`): not validated, since a deleted resource has nothing else to check.
pub fn decode_deletion(bytes: &[u8]) -> Result<Decoded, Rejection> {
    let node = sluice_fhir::json::parse(bytes).map_err(|e| unreadable(&e, 0, "the deletion"))?;
    let resource_type = node.resource_type().unwrap_or_default().to_string();
    let id = node.get("id").and_then(Node::as_str).map(|id| format!("{resource_type}/{id}"));
    Ok(Decoded { resource: to_doc(&node), resource_type, id, warnings: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn src(types: &[&str], lenient: bool) -> FhirSource {
        FhirSource {
            resource_types: types.iter().map(|t| t.to_string()).collect(),
            profiles: vec![],
            lenient,
            keep_bundles: true,
            bundles: Mutex::new(HashMap::new()),
        }
    }

    /// A file of its own under the temp directory (removed by the caller's `read_all`).
    fn temp(name: &str, text: &[u8]) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("sluice-fhir-source-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn read_all(text: &[u8], name: &str) -> Vec<Piece> {
        let path = temp(name, text);
        let out = pieces(&|| crate::source::open_local(&path), &path, &src(&[], false))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        out
    }

    const BUNDLE: &str = r#"{"resourceType":"Bundle","type":"collection","entry":[
{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"p1","gender":"female"}},
{"fullUrl":"urn:uuid:2","resource":{"resourceType":"Patient","id":"p2","gender":"SECRET-VALUE"}},
{"fullUrl":"urn:uuid:3","resource":{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}},
{"fullUrl":"urn:uuid:4","resource":{"resourceType":"Patient", bad json}},
{"request":{"method":"DELETE","url":"Patient/9"}}
]}"#;

    #[test]
    fn a_bundle_with_bad_entries_delivers_the_rest() {
        let pieces = read_all(BUNDLE.as_bytes(), "b.json");
        assert_eq!(pieces.len(), 5);
        let s = src(&["Patient"], false);
        let outcomes: Vec<String> = pieces
            .iter()
            .map(|p| match &p.problem {
                Some(r) => r.code.to_string(),
                None => match decode(&p.bytes, p.offset, p.index, &s) {
                    Ok(Some(d)) => d.id.unwrap(),
                    Ok(None) => "filtered".into(),
                    Err(r) => {
                        assert!(
                            !r.reason.contains("SECRET") && r.findings.iter().all(|f| !f.message.contains("SECRET"))
                        );
                        format!("{} {}", r.code, r.findings[0].path.clone().unwrap_or_default())
                    }
                },
            })
            .collect();
        assert_eq!(outcomes, ["Patient/p1", "RT116 Bundle.entry[1].resource.gender", "filtered", "RT115 ", "filtered"]);
        let bad = &pieces[3];
        let r = decode(&bad.bytes, bad.offset, bad.index, &s).unwrap_err();
        let at: u64 = r.reason.split("file offset ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
        assert!(at > bad.offset && (at as usize) < BUNDLE.len(), "{}", r.reason);
        // lenient: an unknown element warns
        let p = br#"{"resourceType":"Patient","nickname":"x"}"#;
        assert!(decode(p, 0, 0, &src(&[], false)).is_err());
        let d = decode(p, 0, 0, &src(&[], true)).unwrap().unwrap();
        assert_eq!(d.warnings.iter().map(|w| w.code).collect::<Vec<_>>(), ["FHIR101"]);
    }

    #[test]
    fn bundles_are_indexed_for_resolve_when_the_plan_resolves() {
        let s = src(&[], false);
        let path = temp("b.json", BUNDLE.as_bytes());
        let n = pieces(&|| crate::source::open_local(&path), &path, &s).unwrap().count();
        assert_eq!(n, 5);
        let b = s.bundle(&path.to_string_lossy()).unwrap();
        let p2 = b.target("urn:uuid:2").unwrap();
        assert_eq!(p2.get("id"), Some(&Doc::Str("p2".into())));
        assert!(b.target("Observation/o1").is_some() && b.target("http://x/fhir/Patient/p1/_history/3").is_some());
        assert!(b.target("Patient/nope").is_none() && b.target("nothing").is_none());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn ndjson_xml_single_resources_and_broken_files() {
        let nd = read_all(b"{\"resourceType\":\"Patient\"}\n\n{bad\n{\"resourceType\":\"Observation\"}\n", "x.ndjson");
        assert_eq!(nd.iter().map(|p| (p.offset, p.index)).collect::<Vec<_>>(), [(0, 0), (28, 2), (33, 3)]);
        let one = read_all(br#"{"resourceType":"Patient","id":"a"}"#, "p.json");
        assert_eq!(one.len(), 1);
        assert_eq!(decode(&one[0].bytes, 0, 0, &src(&[], false)).unwrap().unwrap().id.as_deref(), Some("Patient/a"));
        let xml = read_all(br#"<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>"#, "p.xml");
        assert_eq!(decode(&xml[0].bytes, 0, 0, &src(&[], false)).unwrap().unwrap().id.as_deref(), Some("Patient/x"));
        let garbage = read_all(b"{\"resourceType\": \"Patient\", \"id\": ", "g.json");
        assert_eq!(garbage.len(), 1);
        assert_eq!(garbage[0].problem.as_ref().unwrap().code, "RT115");
        let list = read_all(br#"{"resourceType":"List","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/1"}}]}"#, "l.json");
        assert_eq!(list.len(), 1);
        assert!(decode(&list[0].bytes, 0, 0, &src(&[], false)).unwrap().is_some());
        let late = read_all(
            br#"{"entry":[{"resource":{"resourceType":"Patient"}}],"resourceType":"Bundle","type":"collection"}"#,
            "late.json",
        );
        assert_eq!(late.len(), 1);
    }

    /// A List (not a Bundle) with `entry`, from an input that is not a local file (an object
    /// in a store): one record equal to the document, without reading the input again.
    #[test]
    fn a_list_with_entries_is_one_record_put_back_together_without_a_second_read() {
        let text = br#"{"resourceType":"List","id":"l","entry":[{"item":{"reference":"Patient/1"}},{"flag":{"text":"x"},"item":{"reference":"Patient/2"}}],"status":"current","mode":"working"}"#;
        let opened = std::sync::atomic::AtomicUsize::new(0);
        let open = || -> Result<Box<dyn std::io::Read + Send>, RunError> {
            opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Box::new(std::io::Cursor::new(text.to_vec())))
        };
        let path = Path::new("s3://bucket/lists/l.json");
        let iter = pieces(&open, path, &src(&[], false)).unwrap();
        let opened_before_reading = opened.load(std::sync::atomic::Ordering::SeqCst);
        let got: Vec<Piece> = iter.map(Result::unwrap).collect();
        assert_eq!(opened.load(std::sync::atomic::Ordering::SeqCst), opened_before_reading, "not opened again");
        assert_eq!(got.len(), 1);
        assert!(got[0].problem.is_none());
        let rebuilt = sluice_fhir::json::parse(&got[0].bytes).unwrap();
        assert_eq!(rebuilt.canonical(), sluice_fhir::json::parse(text).unwrap().canonical());

        let broken = br#"{"resourceType":"List","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/1"}},{"item":}]}"#;
        let open = || -> Result<Box<dyn std::io::Read + Send>, RunError> {
            Ok(Box::new(std::io::Cursor::new(broken.to_vec())))
        };
        let got: Vec<Piece> = pieces(&open, path, &src(&[], false)).unwrap().map(Result::unwrap).collect();
        assert_eq!(got.len(), 1, "one record, in the DLQ");
        assert_eq!(got[0].problem.as_ref().unwrap().code, "RT115");
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics_and_every_piece_is_one_outcome(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            bundle in any::<bool>(),
            ext in prop_oneof![Just("a.json"), Just("a.ndjson"), Just("a.xml")],
        ) {
            let mut input = bytes.clone();
            if bundle {
                let mut b = br#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":"#.to_vec();
                b.extend_from_slice(&bytes);
                input = b;
            }
            let path = temp(ext, &input);
            let s = src(&[], false);
            for piece in pieces(&|| crate::source::open_local(&path), &path, &s).unwrap() {
                let piece = piece.unwrap();
                if piece.problem.is_none() {
                    let _ = decode(&piece.bytes, piece.offset, piece.index, &s);
                }
            }
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
            let _ = decode(&input, 0, 0, &s);
        }
    }
}
