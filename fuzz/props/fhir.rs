//! Properties of the FHIR codec, validator and streaming readers (fuzz targets `fhir_read`,
//! `fhir_stream`; regression tests in `specs/fhir/tests/fuzz_regressions.rs`).

use std::io::Read;

use sluice_fhir::stream::{BundleSplitter, NdjsonReader, Part};
use sluice_fhir::validate::{Options, Severity, validate};
use sluice_fhir::xml_stream::XmlBundleSplitter;
use sluice_fhir::{Limits, Node, codes, json, read, xml};

/// `fhir_read`: bytes as JSON or XML (the reader `read` picks). Reading and validating in one
/// go (`validate_document`) gives what `read` then `validate` give, the
/// same findings in the same order or the same error. If they read: the tree writes
/// to JSON that reads back to the same tree; XML and JSON readers agree with `read`; strict and
/// lenient validation do not panic, use registered codes, and lenient has no more errors than
/// strict. Errors carry registered codes and offsets inside the input.
pub fn read_round_trip(data: &[u8]) {
    let limits = Limits { max_depth: 64, max_bytes: 1 << 20 };
    let check_error = |e: &sluice_fhir::CodecError| {
        assert!(codes::title(e.code).is_some(), "unregistered {}", e.code);
        assert!(e.offset <= data.len().max(limits.max_bytes), "offset {} beyond input", e.offset);
    };
    // Both readers, whatever the first byte says.
    for r in [json::parse_with(data, limits), xml::parse_with(data, limits)] {
        match r {
            Ok(tree) => {
                let text = tree.to_json();
                let again = json::parse_with(text.as_bytes(), Limits { max_depth: 512, ..limits })
                    .unwrap_or_else(|e| panic!("written JSON does not read back: {e}"));
                assert_eq!(again, tree, "JSON -> tree -> JSON -> tree differs");
            }
            Err(e) => check_error(&e),
        }
    }
    let whole = sluice_fhir::read_with(data, limits).map(|t| validate(&t, &Options::default()));
    let in_one_go = sluice_fhir::validate_document(data, limits, &Options::default());
    assert_eq!(in_one_go, whole, "validate_document differs from read + validate");
    let tree = match sluice_fhir::read_with(data, limits) {
        Ok(t) => t,
        Err(e) => {
            check_error(&e);
            return;
        }
    };
    let strict = validate(&tree, &Options::default());
    let lenient = validate(&tree, &Options { lenient: true, profiles: &[] });
    for f in strict.iter().chain(&lenient) {
        assert!(codes::title(f.code).is_some(), "unregistered {}", f.code);
    }
    let errors = |v: &[sluice_fhir::validate::Finding]| v.iter().filter(|f| f.severity == Severity::Error).count();
    assert!(errors(&lenient) <= errors(&strict));
    assert_eq!(lenient.len(), strict.len(), "lenient changes severities, not findings");
    let _ = read(data);
}

/// `fhir_stream`: byte 0 picks a read size (1..=64, or all); the rest is a document. The
/// Bundle splitter gives the same parts whatever the read sizes; NDJSON lines are numbered in
/// order; the XML Bundle splitter likewise; and when the document is a JSON or XML Bundle
/// whose `entry` is an array (and holds no backslash, so member names are as written),
/// validation streamed entry by entry gives the same findings as validation of the whole tree.
pub fn stream_consistent(data: &[u8]) {
    let Some((&first, doc)) = data.split_first() else { return };
    let size = if first == 0 { usize::MAX } else { 1 + first as usize % 64 };
    let limits = Limits { max_depth: 64, max_bytes: 1 << 20 };
    let describe = |p: std::io::Result<Part>| match p.expect("memory reads do not fail") {
        Part::Start(h) => format!("S{}", String::from_utf8_lossy(&h)),
        Part::Entry { index, offset, bytes } => {
            assert!(offset < doc.len());
            format!("E{index}@{offset}:{:?}", bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
        }
        Part::End(h) => format!("X{:?}", h.map(|b| String::from_utf8_lossy(&b).into_owned())),
    };
    let parts =
        |chunk: usize| -> Vec<String> { BundleSplitter::new(Chunked(doc, chunk), limits).map(describe).collect() };
    assert_eq!(parts(size), parts(usize::MAX), "read size {size} changes the parts");
    let xml_parts =
        |chunk: usize| -> Vec<String> { XmlBundleSplitter::new(Chunked(doc, chunk), limits).map(describe).collect() };
    assert_eq!(xml_parts(size), xml_parts(usize::MAX), "read size {size} changes the XML parts");

    let mut last = 0;
    for line in NdjsonReader::new(doc, limits) {
        let line = line.expect("memory reads do not fail");
        assert!(line.number > last && line.offset <= doc.len());
        last = line.number;
    }

    let Ok(tree) = json::parse_with(doc, limits).or_else(|_| xml::parse_with(doc, limits)) else { return };
    let is_bundle_with_entries =
        tree.resource_type() == Some("Bundle") && matches!(tree.get("entry"), Some(Node::Array(_)));
    if !is_bundle_with_entries || doc.contains(&b'\\') {
        return;
    }
    let key = |v: Vec<sluice_fhir::validate::Finding>| {
        let mut k: Vec<String> =
            v.into_iter().map(|f| format!("{} {} {} {}", f.severity, f.code, f.location, f.message)).collect();
        k.sort();
        k
    };
    let whole = key(validate(&tree, &Options::default()));
    let streamed = sluice_fhir::stream::validate_streaming(Chunked(doc, size), limits, &Options::default())
        .expect("memory reads do not fail")
        .expect("a document that parses whole parses in parts");
    assert_eq!(key(streamed), whole, "streamed validation differs");
}

/// A reader handing out at most `n` bytes per call.
struct Chunked<'a>(&'a [u8], usize);

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(out.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}
