//! Helpers for the tests of live runs over a message bus (tests/kafka.rs, tests/amqp.rs): a
//! sink file's lines and message ids, waiting on a running `sluice run` for a condition with a
//! deadline, the check that no PHI of the example feed reached an output, and the X12 and
//! FHIR JSON messages of the `format: x12` / `format: fhir` tests with their pipeline and
//! expected outcome.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Running, phi_values, root};

/// The lines of a file (none when it does not exist yet).
pub fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
}

/// Waits until `done` holds (checked every 200 ms), at most `limit`; fails at once with its
/// stderr if `run` ends meanwhile.
pub fn wait_until(run: &mut Running, what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        if let Ok(Some(status)) = run.child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!("the run ended ({status}) before {what}: {}", run.stderr.lock().unwrap());
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {}", run.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The message ids (`metadata.message_id`) of a JSON Lines sink file, with their counts.
pub fn message_ids(p: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for l in lines(p) {
        let v: serde_json::Value = serde_json::from_str(&l).expect("every sink line whole");
        *ids.entry(v["metadata"]["message_id"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    ids
}

/// Fails if any name or SSN of the example HL7 feed appears in one of `outputs`.
pub fn assert_no_phi(outputs: &[&str]) {
    let phi = phi_values(&[root().join("examples/hl7/feed-2024-01-15.hl7"), root().join("examples/hl7/rejects.hl7")]);
    assert!(!phi.is_empty());
    for out in outputs {
        for v in &phi {
            assert!(!out.contains(v.as_str()), "a PHI value reached the output: {out}");
        }
    }
}

/// The X12 and FHIR JSON messages the bus sources' `format: x12` and `format: fhir` tests
/// send: two interchanges (tests/fixtures/x12: 9 and 7 transaction sets), one message that
/// is no interchange and one interchange without a set; a valid Patient, an invalid one and one message that is not JSON
/// (examples/fhir).
pub struct Payloads {
    pub x12: Vec<Vec<u8>>,
    /// Transaction sets in the two interchanges: each a record.
    pub x12_sets: usize,
    pub fhir: Vec<Vec<u8>>,
}

pub fn payloads() -> Payloads {
    let read = |p: &str| std::fs::read(root().join(p)).unwrap();
    let interchanges = [read("tests/fixtures/x12/claims-60-837p.x12"), read("tests/fixtures/x12/remits-40-835.x12")];
    let x12_sets = interchanges
        .iter()
        .map(|i| String::from_utf8_lossy(i).split('~').filter(|s| s.trim_start().starts_with("ST*")).count())
        .sum();
    let mut x12 = interchanges.to_vec();
    x12.push(b"this message is not an X12 interchange".to_vec());
    // The claims' ISA with its IEA right after: an interchange holding no transaction set.
    let claims = String::from_utf8_lossy(&interchanges[0]).into_owned();
    let isa = claims.split('~').next().unwrap();
    x12.push(format!("{isa}~IEA*0*000000001~").into_bytes());
    let fhir = vec![
        read("examples/fhir/patient.json"),
        read("examples/fhir/patient-invalid.json"),
        b"{\"resourceType\": \"Patient\",".to_vec(),
    ];
    Payloads { x12, x12_sets, fhir }
}

/// Writes `pipelines/payloads.yaml` into `dir`: `sources` (YAML under `sources:`: an `x12`
/// source named `claims` and a `fhir` one named `patients`), each to its own JSON Lines sink.
pub fn payloads_pipeline(dir: &Path, sources: &str) {
    let spec = format!(
        "kind: pipeline\nname: bus-payloads\nsources:\n{sources}sinks:\n  sets:\n    type: jsonl\n    inputs: [claims]\n    path: ../out/sets.jsonl\n    phi: {{allowed: true, reason: synthetic test data}}\n  resources:\n    type: jsonl\n    inputs: [patients]\n    path: ../out/resources.jsonl\n    phi: {{allowed: true, reason: synthetic test data}}\ndlq:\n  path: ../out/dlq.jsonl\n  plaintext_reason: synthetic test data\naudit:\n  path: ../out/audit.jsonl\n"
    );
    std::fs::write(dir.join("pipelines/payloads.yaml"), spec).unwrap();
}

/// Waits until `run` (of [`payloads_pipeline`]) has every record of [`payloads`] in its audit
/// log, stops it (SIGTERM, a clean exit) and checks it ([`check_payloads_run`]).
pub fn finish_payloads_run(mut run: Running, dir: &Path, p: &Payloads) {
    let records = p.x12_sets + 2 + p.fhir.len();
    let audit = dir.join("out/audit.jsonl");
    // run_started, then one entry a record.
    wait_until(&mut run, "every record in the audit log", Duration::from_secs(90), || lines(&audit).len() > records);
    let (code, s, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    check_payloads_run(dir, p, &s);
}

/// Checks a run of [`payloads_pipeline`] over [`payloads`]: every transaction set and the
/// valid Patient delivered, each once; the message that is no interchange (RT141), the
/// interchange without a set (RT145), the invalid Patient (RT116) and the broken JSON (RT115)
/// in the DLQ with their codes and reasons; nothing else.
pub fn check_payloads_run(dir: &Path, p: &Payloads, summary: &serde_json::Value) {
    let s = summary;
    assert_eq!(s["records_in"], (p.x12_sets + 2 + p.fhir.len()) as u64, "{s}");
    assert_eq!(s["delivered"], (p.x12_sets + 1) as u64, "{s}");
    assert_eq!(s["dlq"], 4, "{s}");
    assert_eq!(s["balanced"], true, "{s}");
    let sets = lines(&dir.join("out/sets.jsonl"));
    assert_eq!(sets.len(), p.x12_sets, "one line per transaction set");
    let resources = lines(&dir.join("out/resources.jsonl"));
    assert_eq!(resources.len(), 1, "the valid Patient: {resources:?}");
    let dlq: Vec<serde_json::Value> =
        lines(&dir.join("out/dlq.jsonl")).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut codes: Vec<String> = dlq.iter().map(|e| e["code"].as_str().unwrap_or_default().to_string()).collect();
    codes.sort();
    assert_eq!(codes, ["RT115", "RT116", "RT141", "RT145"], "{dlq:?}");
    for e in &dlq {
        assert!(!e["reason"].as_str().unwrap_or_default().is_empty(), "each entry has its reason: {e}");
    }
}
