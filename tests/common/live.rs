//! Helpers for the tests of live runs over a message bus (tests/kafka.rs, tests/amqp.rs): a
//! sink file's lines and message ids, waiting on a running `sluice run` for a condition with a
//! deadline, and the check that no PHI of the example feed reached an output.

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
