//! The `fhir.rest` source against a real FHIR server that no one here wrote: the Helios FHIR
//! server (`hfs`, scripts/setup-helios builds it once into ~/.cache/sluice/tools/helios),
//! started on a free port of 127.0.0.1 with a SQLite database in a temporary directory, behind
//! a fault-injecting proxy (tests/common/fault_proxy.rs) for what the server will not do by
//! itself: 500s, 429 with `Retry-After`, slow pages, dropped connections, pages cut short,
//! refused credentials. Patients are upserted into PostgreSQL (scripts/test starts it;
//! without `SLUICE_TEST_PG_URL` the test prints SKIPPED and passes), observations appended to
//! JSON Lines. Checked: paging through `link[next]`, a second run that fetches only what
//! changed (and skips what it delivered, by id and versionId), retries, `kill -9` mid-sync
//! then a run that loses nothing and duplicates nothing in the upsert sink, bearer auth, and
//! no patient name in any stderr, audit or state store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, request};
use common::{pg_database, pg_rows, text, workspace};

const TOKEN: &str = "tok-9f3c2a7e51d8";
/// Family names of the patients created: none may appear in any output but the sinks.
const FAMILIES: &[&str] = &[
    "Quixotezz",
    "Wolfensteen",
    "Abernathyx",
    "Thistlewood",
    "Marchbanksy",
    "Penhaligonn",
    "Featherstonq",
    "Blackwoodiv",
    "Ravenscroftt",
    "Ashcombezz",
    "Fairweatherx",
    "Huntingdonq",
];

/// The Helios server in a temporary directory, killed when dropped.
struct Helios {
    child: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Helios {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn hfs_binary() -> PathBuf {
    let out = Command::new(common::root().join("scripts/setup-helios")).output().expect("scripts/setup-helios runs");
    assert!(out.status.success(), "scripts/setup-helios failed: {}", text(&out.stderr));
    PathBuf::from(text(&out.stdout).trim())
}

/// Starts hfs on a free port; its links name `public_base` (the proxy in front of it).
fn start_helios(name: &str, port: u16, public_base: &str) -> Helios {
    let dir = std::env::temp_dir().join(format!("sluice-hfs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = std::fs::File::create(dir.join("hfs.log")).unwrap();
    let child = Command::new(hfs_binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "warn"])
        .arg("--database-url")
        .arg(dir.join("db.sqlite"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["--base-url", public_base])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("hfs starts");
    let h = Helios { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() && request(port, "GET", "/metadata", None).0 == 200
        {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "hfs did not answer within 60 s: {}",
            std::fs::read_to_string(h.dir.join("hfs.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create(port: u16, resource: &str) -> String {
    let ty = resource.split("\"resourceType\":\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let (status, body) = request(port, "POST", &format!("/{ty}"), Some(resource));
    assert_eq!(status, 201, "create {ty}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn patient(i: usize, gender: &str) -> String {
    format!(
        r#"{{"resourceType":"Patient","identifier":[{{"system":"urn:mrn","value":"MRN{i:04}"}}],"name":[{{"family":"{}","given":["Ann"]}}],"gender":"{gender}","birthDate":"1970-01-{:02}"}}"#,
        FAMILIES[i],
        i + 1
    )
}

fn observation(patient_id: &str, value: &str) -> String {
    format!(
        r#"{{"resourceType":"Observation","status":"final","code":{{"text":"heart rate"}},"subject":{{"reference":"Patient/{patient_id}"}},"effectiveDateTime":"2024-05-01T10:00:00Z","valueQuantity":{{"value":{value},"unit":"/min"}}}}"#
    )
}

/// The pipeline: the bundled example for patients (upserted into PostgreSQL), plus a second
/// source for observations, appended to JSON Lines.
fn write_pipeline(dir: &Path, base: &str, auth: &str) {
    let p = dir.join("pipelines/fhir-rest-sync.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    let spec = spec
        .replace("base_url: http://127.0.0.1:8080", &format!("base_url: {base}"))
        .replace("page_size: 50", "page_size: 2")
        .replace(
            "retry: {max_attempts: 5, initial_backoff: 200ms, max_backoff: 5s}",
            "retry: {max_attempts: 6, initial_backoff: 100ms, max_backoff: 1s}\n    timeout: 4s",
        )
        .replace("    # auth: {type: bearer, token: \"${FHIR_TOKEN}\"}\n", auth);
    let obs_source = format!(
        "  ehr_observations:\n    type: fhir.rest\n    base_url: {base}\n    tables: observations\n    page_size: 2\n    retry: {{max_attempts: 6, initial_backoff: 100ms, max_backoff: 1s}}\n{auth}"
    );
    let spec = spec.replacen("stages:\n", &format!("{obs_source}stages:\n  to_obs_event:\n    type: map\n    inputs: [ehr_observations]\n    mapping: ../obs-event.yaml\n  mask_obs:\n    type: mask\n    inputs: [to_obs_event]\n    policy: ../obs-policy.yaml\n"), 1);
    let spec = spec.replacen(
        "sinks:\n",
        "sinks:\n  observations:\n    type: jsonl\n    inputs: [mask_obs]\n    path: ../out/fhir-rest-sync/observations.jsonl\n",
        1,
    );
    std::fs::write(&p, spec).unwrap();
    std::fs::write(
        dir.join("obs-event.yaml"),
        "kind: mapping\nname: fhir-observation-event\ninput:\n  schema: fhir/r4\n  resource_type: Observation\noutput: canonical/patient-event@1\nfields:\n  metadata:\n    source_system: '\"fhir\"'\n    message_type: '\"Observation\"'\n    message_id: id\n    received_at: meta.lastUpdated\n  patient:\n    id: subject.reference\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("obs-policy.yaml"),
        "kind: masking\nname: obs\nclasses:\n  mrn: {action: keep, reason: \"join key\"}\n",
    )
    .unwrap();
}

fn sluice(dir: &Path, url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .args(["run", "pipelines/fhir-rest-sync.yaml", "--summary", "json"])
        .env("SLUICE_SINK_URL", url)
        .env("FHIR_TOKEN", TOKEN);
    c
}

fn run_ok(dir: &Path, url: &str, stderrs: &mut Vec<String>) -> serde_json::Value {
    let out: Output = sluice(dir, url).output().unwrap();
    stderrs.push(text(&out.stderr));
    assert!(out.status.success(), "run failed: {}\n{}", text(&out.stdout), text(&out.stderr));
    serde_json::from_str(text(&out.stdout).trim()).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn delivered(summary: &serde_json::Value) -> u64 {
    summary["delivered"].as_u64().unwrap_or_else(|| panic!("no delivered count: {summary}"))
}

/// (id, gender) of every row of the patients table, sorted.
fn patient_rows(url: &str) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> =
        pg_rows(url, "SELECT metadata_message_id, coalesce(patient_gender, '') FROM fhir_patients")
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect();
    rows.sort();
    rows
}

fn observation_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("out/fhir-rest-sync/observations.jsonl")).map_or(0, |s| s.lines().count())
}

#[test]
fn syncs_incrementally_through_faults_and_a_crash_losing_and_duplicating_nothing() {
    let Some(url) = pg_database("fhir-rest") else { return };
    let dir = workspace("fhir-rest");
    let hfs_port = common::free_port();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{hfs_port}"));
    let base = format!("http://127.0.0.1:{}", proxy.port);
    let hfs = start_helios("sync", hfs_port, &base);
    write_pipeline(&dir, &base, "");
    let mut stderrs = Vec::new();

    // 1. Initial sync: five patients (three pages of two), three observations.
    let mut ids: Vec<String> = (0..5).map(|i| create(hfs.port, &patient(i, "female"))).collect();
    for v in ["61", "72.50", "80"] {
        create(hfs.port, &observation(&ids[0], v));
    }
    let first = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&first), 5 + 3, "{first}");
    let rows = patient_rows(&url);
    assert_eq!(rows.len(), 5);
    assert_eq!(observation_lines(&dir), 3);
    let first_requests = proxy.seen();
    assert!(
        first_requests.iter().any(|s| s.target.contains("_cursor=")),
        "paged through link[next]: {first_requests:?}"
    );
    assert!(first_requests.iter().all(|s| !s.target.contains("_lastUpdated")), "the first sync asks for everything");
    assert!(first_requests.iter().all(|s| !s.target.contains("_sort")), "no _sort");

    // 2. Nothing changed: the overlap window asks again, and every version is skipped.
    let again = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&again), 0, "{again}");
    let asked = &proxy.seen()[first_requests.len()..];
    assert!(asked.iter().any(|s| s.target.contains("_lastUpdated=gt")), "{asked:?}");

    // 3. One patient updated (a new versionId), one created, one observation created.
    let (status, body) = request(
        hfs.port,
        "PUT",
        &format!("/Patient/{}", ids[1]),
        Some(&patient(1, "male").replacen("{", &format!("{{\"id\":\"{}\",", ids[1]), 1)),
    );
    assert!(status == 200 || status == 201, "update: {status} {body}");
    ids.push(create(hfs.port, &patient(5, "female")));
    create(hfs.port, &observation(&ids[5], "90"));
    let third = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&third), 3, "only the changes: {third}");
    let rows = patient_rows(&url);
    assert_eq!(rows.len(), 6, "upserted by id: {rows:?}");
    assert_eq!(rows.iter().find(|(id, _)| *id == ids[1]).unwrap().1, "M", "the update reached the row");
    assert_eq!(observation_lines(&dir), 4, "append: one line per new observation");

    // 4. Faults from the proxy: a 500, a 429 with Retry-After, a slow page, a dropped
    //    connection, a page cut short. The run retries through them all.
    for i in 6..9 {
        ids.push(create(hfs.port, &patient(i, "female")));
    }
    let before = proxy.seen().len();
    proxy.schedule(vec![
        Some(Fault::Status(500, None)),
        None,
        Some(Fault::Status(429, Some("1"))),
        Some(Fault::Slow(Duration::from_millis(1500))),
        Some(Fault::Drop),
        Some(Fault::Truncate),
        Some(Fault::Status(503, None)),
    ]);
    let started = Instant::now();
    let faulty = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&faulty), 3, "{faulty}");
    assert_eq!(patient_rows(&url).len(), 9);
    let during = &proxy.seen()[before..];
    assert!(during.iter().filter(|s| s.fault.is_some()).count() == 6 || during.len() >= 7, "{during:?}");
    assert!(started.elapsed() >= Duration::from_secs(1), "the 429's Retry-After was waited for");
    // The two sources sync at once: the retry of the 429 is the next request for its type.
    let path = |s: &common::fault_proxy::Seen| s.target.split('?').next().unwrap_or_default().to_string();
    let at_429 = during.iter().position(|s| s.fault.as_deref().is_some_and(|f| f.contains("429"))).unwrap();
    let retry = during[at_429 + 1..].iter().find(|s| path(s) == path(&during[at_429])).unwrap();
    assert!(retry.at.duration_since(during[at_429].at) >= Duration::from_millis(900), "Retry-After: 1 honoured");
    assert!(stderrs.last().unwrap().contains("retried"), "{}", stderrs.last().unwrap());

    // 5. kill -9 in the middle of a sync (a slow page holds it there), then a plain run:
    //    every patient once in the table, none lost.
    for i in 9..12 {
        ids.push(create(hfs.port, &patient(i, "other")));
    }
    proxy.schedule_for("/Patient", vec![None, Some(Fault::Slow(Duration::from_secs(4)))]);
    let before = proxy.seen().len();
    let mut child =
        sluice(&dir, &url).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.seen()[before..].iter().filter(|s| s.target.starts_with("/Patient")).count() < 2 {
        assert!(Instant::now() < deadline, "the run never reached its second page");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let after_crash = run_ok(&dir, &url, &mut stderrs);
    assert!(delivered(&after_crash) >= 3, "the crashed sync's patients come again: {after_crash}");
    let rows = patient_rows(&url);
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(rows.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), expected, "each patient exactly once");
    assert_eq!(observation_lines(&dir), 4, "observations did not change");
    let quiet = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&quiet), 0, "{quiet}");

    // 6. A server that gives no next link: the first page is full, so the source searches
    //    again with a larger `_count` (what it already handed on is skipped).
    for i in 12..15 {
        ids.push(create(hfs.port, &patient(i % FAMILIES.len(), "unknown")));
    }
    let before = proxy.seen().len();
    proxy.schedule_for("/Patient", vec![Some(Fault::NoNextLink), Some(Fault::NoNextLink)]);
    let unpaged = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&unpaged), 3, "{unpaged}");
    let patients: Vec<String> =
        proxy.seen()[before..].iter().filter(|s| s.target.starts_with("/Patient")).map(|s| s.target.clone()).collect();
    // (The overlap window also holds the patients of the steps before: the second search may
    // be full too, and grows again.)
    assert!(patients.len() >= 2, "{patients:?}");
    assert!(patients[0].contains("_count=2") && patients[1].contains("_count=8"), "{patients:?}");
    assert_eq!(patient_rows(&url).len(), ids.len());

    // 7. Bearer auth: the server demands the token; a wrong one stops the run with RT118.
    proxy.require_authorization(Some(&format!("Bearer {TOKEN}")));
    let p = dir.join("pipelines/fhir-rest-sync.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, spec.replace("    tables:", "    auth: {type: bearer, token: \"${FHIR_TOKEN}\"}\n    tables:"))
        .unwrap();
    let ok = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&ok), 0);
    let refused = sluice(&dir, &url).env("FHIR_TOKEN", "wrong-token-77").output().unwrap();
    let err = text(&refused.stderr);
    stderrs.push(err.clone());
    assert!(!refused.status.success());
    assert!(err.contains("RT118"), "{err}");
    assert!(!err.contains("wrong-token-77") && !err.contains(TOKEN), "{err}");

    // 8. No patient name anywhere but the sinks: stderr of every run, the audit, the state
    //    store, the DLQ.
    let mut outputs = stderrs.join("\n").into_bytes();
    for f in ["audit.jsonl", "state.db"] {
        outputs.extend(std::fs::read(dir.join("out/fhir-rest-sync").join(f)).unwrap());
    }
    outputs.extend(std::fs::read(dir.join("out/fhir-rest-sync/dlq.jsonl")).unwrap_or_default());
    let outputs = String::from_utf8_lossy(&outputs);
    for family in FAMILIES {
        assert!(!outputs.contains(family), "{family} leaked");
    }
    assert!(!outputs.contains(TOKEN));
}

#[test]
fn unknown_and_repeated_tables_are_refused_at_check() {
    let dir = workspace("fhir-rest-check");
    let p = dir.join("pipelines/fhir-rest-sync.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, spec.replace("tables: [patients]", "tables: [patient, observations, observations]")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&*dir)
        .args(["check", "pipelines/fhir-rest-sync.yaml"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("SL257") && err.contains("did you mean `patients`"), "{err}");
    assert_eq!(err.matches("SL257").count(), 2, "{err}");
}
