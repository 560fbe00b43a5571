//! Conformance of the codec and validator over the shared corpus (`../shared/corpus/fhir`):
//!
//! - every JSON file parses, and JSON -> tree -> JSON -> tree gives the same tree;
//! - every official R4 example (`hl7-r4-official-examples`) validates in strict mode without
//!   errors, or its errors are listed with a reason in `tests/data/official-disagreements.txt`
//!   (and every listed disagreement still happens, so the list stays true);
//! - the XML examples of `fhir-test-cases-r4-misc` convert to the same JSON as their
//!   counterparts among the official examples (member order aside), or the difference is
//!   listed with a reason in `tests/data/xml-differences.txt`.
//!
//! Prints a report per suite; without the corpus, a loud SKIPPED line and a pass.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sluice_fhir::validate::{Options, Severity, validate};
use sluice_fhir::{Node, read};

fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `code location` lines (after `#` comments are stripped), each with a reason after ` -- `.
fn listed(file: &str) -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, reason) = l.split_once(" -- ").unwrap_or((l, ""));
            assert!(!reason.trim().is_empty(), "{file}: `{l}` has no reason after ` -- `");
            (key.trim().to_string(), reason.trim().to_string())
        })
        .collect()
}

#[test]
fn every_json_file_parses_and_round_trips() {
    let Some(root) = common::corpus_root("fhir") else { return };
    let files = files_under(&root.join("fhir"), "json");
    assert!(!files.is_empty());
    let mut by_dir: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root.join("fhir")).unwrap_or(f);
        let dir = rel.components().next().map(|c| c.as_os_str().to_string_lossy().to_string()).unwrap_or_default();
        let bytes = std::fs::read(f).unwrap();
        let tally = by_dir.entry(dir).or_default();
        tally.0 += 1;
        let tree = match read(&bytes) {
            Ok(t) => t,
            Err(e) => {
                // Not every JSON file of the corpus is a resource (README-like metadata).
                failures.push(format!("{}: {e}", rel.display()));
                continue;
            }
        };
        let again = sluice_fhir::json::parse(tree.to_json().as_bytes()).unwrap();
        assert_eq!(again, tree, "{}: JSON -> tree -> JSON -> tree differs", rel.display());
        tally.1 += 1;
    }
    println!("\nFHIR JSON corpus: parse and round trip");
    println!("{:<48} {:>6} {:>8}", "folder", "files", "parsed");
    for (d, (n, ok)) in &by_dir {
        println!("{d:<48} {n:>6} {ok:>8}");
    }
    println!();
    assert!(failures.is_empty(), "{} files did not parse:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn official_examples_validate_strictly() {
    let Some(root) = common::corpus_root("fhir/hl7-r4-official-examples") else { return };
    let files = files_under(&root.join("fhir/hl7-r4-official-examples/json"), "json");
    let expected = listed("official-disagreements.txt");
    let mut seen = BTreeSet::new();
    let mut unexpected = Vec::new();
    let (mut valid, mut with_listed, mut warnings) = (0, 0, 0);
    let mut by_code: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let tree = read(&std::fs::read(f).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let findings = validate(&tree, &Options::default());
        let mut errors = 0;
        for x in &findings {
            *by_code.entry(x.code).or_default() += 1;
            if x.severity != Severity::Error {
                warnings += 1;
                continue;
            }
            errors += 1;
            let key = format!("{name} {} {}", x.code, x.location);
            if expected.contains_key(&key) {
                seen.insert(key);
            } else {
                unexpected.push(format!("{key} -- {}", x.message));
            }
        }
        if errors == 0 {
            valid += 1;
        } else {
            with_listed += 1;
        }
    }
    println!("\nFHIR R4 official examples, strict validation");
    println!(
        "  files: {}, valid: {valid}, with errors: {with_listed} (listed with reasons: {}), warnings: {warnings}",
        files.len(),
        expected.len()
    );
    for (code, n) in &by_code {
        println!("  {code}: {n}");
    }
    for u in &unexpected {
        println!("  UNEXPECTED {u}");
    }
    let stale: Vec<_> = expected.keys().filter(|k| !seen.contains(*k)).collect();
    for s in &stale {
        println!("  STALE (no longer found) {s}");
    }
    println!();
    assert!(unexpected.is_empty(), "{} errors not in tests/data/official-disagreements.txt", unexpected.len());
    assert!(stale.is_empty(), "{} listed disagreements no longer happen: remove them", stale.len());
}

#[test]
fn xml_examples_convert_to_the_official_json() {
    let Some(root) = common::corpus_root("fhir/fhir-test-cases-r4-misc") else { return };
    let json_dir = root.join("fhir/hl7-r4-official-examples/json");
    let expected = listed("xml-differences.txt");
    let mut compared = 0;
    let mut no_counterpart = Vec::new();
    let mut differ = Vec::new();
    let mut seen = BTreeSet::new();
    for f in files_under(&root.join("fhir/fhir-test-cases-r4-misc"), "xml") {
        let rel = f.strip_prefix(root.join("fhir/fhir-test-cases-r4-misc")).unwrap().display().to_string();
        let tree = read(&std::fs::read(&f).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let (Some(rt), Some(id)) = (tree.resource_type(), tree.get("id").and_then(Node::as_str)) else {
            no_counterpart.push(rel);
            continue;
        };
        let counterpart = json_dir.join(format!("{rt}-{id}.json"));
        let Ok(bytes) = std::fs::read(&counterpart) else {
            no_counterpart.push(rel);
            continue;
        };
        compared += 1;
        let official = read(&bytes).unwrap();
        if tree.canonical() != official.canonical() {
            let at = first_difference(&tree.canonical(), &official.canonical(), rt.to_string());
            if expected.contains_key(&rel) {
                seen.insert(rel.clone());
            } else {
                differ.push(format!("{rel}: first difference at {at}"));
            }
        }
    }
    println!("\nFHIR XML (fhir-test-cases-r4-misc) vs official JSON");
    println!(
        "  compared: {compared}, identical: {}, listed differences: {}, without counterpart: {}",
        compared - differ.len() - seen.len(),
        seen.len(),
        no_counterpart.len()
    );
    for n in &no_counterpart {
        println!("  no JSON counterpart: {n}");
    }
    for d in &differ {
        println!("  DIFFERS {d}");
    }
    println!();
    assert!(differ.is_empty(), "{} XML examples convert to other JSON than the official one", differ.len());
    let stale: Vec<_> = expected.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(stale.is_empty(), "listed XML differences no longer happen: {stale:?}");
}

/// The path of the first place two canonical trees differ.
fn first_difference(a: &Node, b: &Node, at: String) -> String {
    match (a, b) {
        (Node::Object(x), Node::Object(y)) => {
            for (k, v) in x {
                match y.iter().find(|(k2, _)| k2 == k) {
                    Some((_, w)) if v != w => return first_difference(v, w, format!("{at}.{k}")),
                    None => return format!("{at}.{k} (only in the XML)"),
                    _ => {}
                }
            }
            for (k, _) in y {
                if !x.iter().any(|(k2, _)| k2 == k) {
                    return format!("{at}.{k} (only in the JSON)");
                }
            }
            at
        }
        (Node::Array(x), Node::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if v != w {
                    return first_difference(v, w, format!("{at}[{i}]"));
                }
            }
            at
        }
        _ => format!("{at}: {} vs {}", short(a), short(b)),
    }
}

fn short(n: &Node) -> String {
    let s = n.to_json();
    s.chars().take(120).collect()
}

#[test]
fn streamed_bundles_give_the_same_findings_as_whole_ones() {
    let Some(root) = common::corpus_root("fhir") else { return };
    let mut files = files_under(&root.join("fhir/hl7-r4-official-examples/json"), "json");
    files.retain(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("Bundle-")));
    files.extend(files_under(&root.join("fhir/synthea"), "json"));
    let mut compared = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let whole = validate(&read(&bytes).unwrap(), &Options::default());
        // Read in small pieces, as a large file would be.
        let streamed = sluice_fhir::stream::validate_streaming(
            std::io::BufReader::with_capacity(4096, bytes.as_slice()),
            sluice_fhir::Limits::default(),
            &Options::default(),
        )
        .unwrap()
        .unwrap();
        let key = |v: &[sluice_fhir::validate::Finding]| {
            let mut k: Vec<String> =
                v.iter().map(|x| format!("{} {} {} {}", x.severity, x.code, x.location, x.message)).collect();
            k.sort();
            k
        };
        assert_eq!(key(&streamed), key(&whole), "{}", f.display());
        let in_one_go = sluice_fhir::validate_document(&bytes, sluice_fhir::Limits::default(), &Options::default());
        assert_eq!(in_one_go.as_ref(), Ok(&whole), "{} (read and validated in one go)", f.display());
        compared += 1;
    }
    println!(
        "\nFHIR Bundles streamed entry by entry, and read and validated in one go: \
         {compared} files, same findings as in memory\n"
    );
}

/// The XML resources of the corpus (narratives, extensions, comments, contained resources),
/// put as entries into one XML Bundle: cut out entry by entry as it streams, each entry is the
/// JSON the whole-document reader makes of it, and streamed validation finds what validation
/// of the whole tree finds.
#[test]
fn xml_bundles_stream_entry_by_entry_to_the_same_entries_and_findings() {
    use sluice_fhir::stream::Part;
    let Some(root) = common::corpus_root("fhir") else { return };
    let files = files_under(&root.join("fhir/fhir-test-cases-r4-misc"), "xml");
    let mut bundle = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- built from the corpus -->\n<Bundle xmlns=\"http://hl7.org/fhir\">\n  <type value=\"collection\"/>\n",
    );
    let mut used = 0;
    for (i, f) in files.iter().enumerate() {
        let text = std::fs::read_to_string(f).unwrap();
        // The resource without its XML declaration; skip what does not read alone.
        let body = match text.trim_start_matches('\u{feff}').trim_start().strip_prefix("<?xml") {
            Some(rest) => rest.split_once("?>").map_or("", |(_, r)| r),
            None => text.as_str(),
        };
        if read(body.as_bytes()).is_err() {
            continue;
        }
        bundle.push_str(&format!(
            "  <entry>\n    <fullUrl value=\"urn:uuid:00000000-0000-4000-8000-{i:012}\"/>\n    <resource>{body}</resource>\n  </entry>\n"
        ));
        used += 1;
    }
    bundle.push_str("</Bundle>\n");
    let whole = read(bundle.as_bytes()).expect("the built Bundle reads whole");
    let expected: Vec<String> = whole.get("entry").unwrap().as_array().unwrap().iter().map(Node::to_json).collect();
    assert_eq!(expected.len(), used);
    for chunk in [4096, 7] {
        let reader = std::io::BufReader::with_capacity(chunk, bundle.as_bytes());
        let entries: Vec<String> =
            sluice_fhir::xml_stream::XmlBundleSplitter::new(reader, sluice_fhir::Limits::default())
                .filter_map(|p| match p.unwrap() {
                    Part::Entry { bytes, .. } => Some(String::from_utf8(bytes.unwrap()).unwrap()),
                    _ => None,
                })
                .collect();
        assert_eq!(entries, expected, "read {chunk} bytes at a time");
    }
    let key = |v: &[sluice_fhir::validate::Finding]| {
        let mut k: Vec<String> =
            v.iter().map(|x| format!("{} {} {} {}", x.severity, x.code, x.location, x.message)).collect();
        k.sort();
        k
    };
    let in_memory = validate(&whole, &Options::default());
    let streamed = sluice_fhir::stream::validate_streaming(
        std::io::BufReader::with_capacity(4096, bundle.as_bytes()),
        sluice_fhir::Limits::default(),
        &Options::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(key(&streamed), key(&in_memory));
    println!(
        "\nFHIR XML: {used} corpus resources as one XML Bundle streamed entry by entry: same entries and findings as in memory\n"
    );
}
