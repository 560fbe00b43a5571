//! Criterion benchmarks of the FHIR codec and validator on a generated Bundle of 1,000
//! entries (about 5 MB of pretty-printed JSON: Patients, Encounters and Observations that
//! reference each other by `urn:uuid:` fullUrls, with narratives), built in memory so the bench
//! needs nothing outside the repository.
//!
//! Run: `cargo bench -p sluice-fhir`. Reports: read (JSON -> tree), read + validate (schema,
//! Bundle rules, reference resolution), write (tree -> JSON). Measurements only: nothing here
//! fails on a slow machine.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_fhir::validate::{Options, validate};

/// A Bundle of `entries` entries: one Patient per 10, each followed by an Encounter and 8
/// Observations referencing it.
fn bundle(entries: usize) -> String {
    let uuid = |n: usize| format!("urn:uuid:{n:08x}-0000-4000-8000-{n:012x}");
    let narrative = "<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\"><p>".to_string()
        + &"Generated narrative text. ".repeat(60)
        + "</p></div>";
    let mut out = String::from("{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  \"entry\": [\n");
    let (mut patient, mut encounter) = (0, 0);
    for i in 0..entries {
        if i > 0 {
            out.push_str(",\n");
        }
        let resource = match i % 10 {
            0 => {
                patient = i;
                format!(
                    r#"{{"resourceType": "Patient", "id": "p{i}", "text": {{"status": "generated", "div": "{narrative}"}}, "identifier": [{{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "{i}"}}], "name": [{{"use": "official", "family": "Family{i}", "given": ["Given", "Middle"]}}], "gender": "female", "birthDate": "1970-01-01", "address": [{{"line": ["1 Main St"], "city": "Town", "postalCode": "01234", "country": "US"}}]}}"#
                )
            }
            1 => {
                encounter = i;
                format!(
                    r#"{{"resourceType": "Encounter", "id": "e{i}", "text": {{"status": "generated", "div": "{narrative}"}}, "status": "finished", "class": {{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}}, "type": [{{"coding": [{{"system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up"}}]}}], "subject": {{"reference": "{}"}}, "period": {{"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"}}}}"#,
                    uuid(patient)
                )
            }
            _ => format!(
                r#"{{"resourceType": "Observation", "id": "o{i}", "text": {{"status": "generated", "div": "{narrative}"}}, "status": "final", "category": [{{"coding": [{{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}}]}}], "code": {{"coding": [{{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}}], "text": "Body Weight"}}, "subject": {{"reference": "{}"}}, "encounter": {{"reference": "{}"}}, "effectiveDateTime": "2020-01-01T10:30:00Z", "issued": "2020-01-01T10:30:00.000Z", "valueQuantity": {{"value": 72.50, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}}}}"#,
                uuid(patient),
                uuid(encounter)
            ),
        };
        let _ = write!(out, "    {{\n      \"fullUrl\": \"{}\",\n      \"resource\": {resource}\n    }}", uuid(i));
    }
    out.push_str("\n  ]\n}\n");
    out
}

fn benches(c: &mut Criterion) {
    let text = bundle(1000);
    let bytes = text.as_bytes();
    let tree = sluice_fhir::read(bytes).expect("generated bundle reads");
    assert!(validate(&tree, &Options::default()).is_empty(), "the generated bundle is valid");
    let mut g = c.benchmark_group(format!("bundle_1000_entries_{}KB", bytes.len() / 1024));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(20);
    g.bench_function("read", |b| b.iter(|| black_box(sluice_fhir::read(black_box(bytes)).unwrap())));
    g.bench_function("read_validate_resolve", |b| {
        b.iter(|| {
            let t = sluice_fhir::read(black_box(bytes)).unwrap();
            black_box(validate(&t, &Options::default()))
        })
    });
    g.bench_function("write_json", |b| b.iter(|| black_box(tree.to_json())));
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
