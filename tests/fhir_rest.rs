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
//!
//! OAuth2 client credentials against the real authorization server of the connection tests
//! (panva's oidc-provider, tests/common/oidc.rs): the proxy acts as the resource server and
//! introspects every bearer token there; a token expired at the server mid-sync is refreshed
//! once and the page asked again (nothing lost, nothing twice), a token near its expiry is
//! refreshed before it is sent, and a server that refuses fresh tokens stops the run with
//! RT120 and no token in any output. Deletions: resources deleted on the server are found in
//! `_history` and their rows deleted from PostgreSQL, marked in a CSV file's `_deleted` column,
//! written as `_deleted` tombstones to JSON Lines, never delivered twice; a server without
//! `_history` is said once (RT121).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Introspection, request};
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

/// The hfs server behind a fault proxy, and the pipeline in a workspace.
fn serve_and_write(name: &str, auth: &str) -> (common::Workspace, FaultProxy, Helios, String) {
    let dir = workspace(name);
    let hfs_port = common::free_port();
    let proxy = FaultProxy::start(&format!("127.0.0.1:{hfs_port}"));
    let base = format!("http://127.0.0.1:{}", proxy.port);
    let hfs = start_helios(name, hfs_port, &base);
    write_pipeline(&dir, &base, auth);
    (dir, proxy, hfs, base)
}

/// The bearer tokens of requests, in order, deduplicated.
fn tokens(seen: &[common::fault_proxy::Seen]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in seen {
        if let Some(t) = s.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer "))
            && !out.iter().any(|o| o == t)
        {
            out.push(t.to_string());
        }
    }
    out
}

/// Each request refused for its token is followed, for the same table (the path before `?`),
/// by the same page asked with another token. The tables sync side by side on one
/// connection, so a request of another table may be refused too when the token expires: each
/// is checked, not only the first.
fn refused_pages_are_asked_again_with_a_new_token(seen: &[common::fault_proxy::Seen]) {
    let table = |target: &str| target.split('?').next().unwrap_or_default().to_string();
    for (i, refused) in seen.iter().enumerate().filter(|(_, s)| s.refused) {
        let again = seen[i + 1..]
            .iter()
            .find(|s| table(&s.target) == table(&refused.target))
            .unwrap_or_else(|| panic!("the refused {} is not asked again: {seen:?}", table(&refused.target)));
        assert_eq!(again.target, refused.target, "the refused page is asked again");
        assert_ne!(again.authorization, refused.authorization, "with a new token");
    }
}

#[test]
fn oauth2_client_credentials_tokens_refresh_before_expiry_and_once_on_401_or_invalid_token_403() {
    let Some(url) = pg_database("fhir-rest-oauth") else { return };
    let oidc = common::oidc::Server::start();
    let (dir, proxy, hfs, _) = serve_and_write("fhir-rest-oauth", "    auth: {type: oauth2, connection: ehr_oauth}\n");
    // A client-credentials connection to the real authorization server; its tokens live 600 s
    // and are refreshed once within 598 s of expiry: two seconds after they are issued.
    std::fs::write(dir.join("machine.secret"), common::oidc::MACHINE_SECRET).unwrap();
    std::fs::write(dir.join("token.key"), common::oidc::TOKEN_KEY).unwrap();
    let p = dir.join("pipelines/fhir-rest-sync.yaml");
    let mut spec = std::fs::read_to_string(&p).unwrap();
    spec.push_str(&format!(
        "connections:\n  ehr_oauth:\n    provider: oauth2\n    auth: client_credentials\n    client_id: sluice-machine\n    client_secret: ${{file:../machine.secret}}\n    token_url: {}\n    token_key: ${{file:../token.key}}\n    refresh_before: 598s\n",
        oidc.url("/token")
    ));
    std::fs::write(&p, spec).unwrap();
    proxy.introspect(Some(Introspection {
        port: oidc.port,
        client_id: "sluice-machine".into(),
        client_secret: common::oidc::MACHINE_SECRET.into(),
    }));
    let mut stderrs = Vec::new();

    // 1. Five patients (three pages of two); the token expires at the server when the second
    //    patients page is asked: 401, one refresh, the page again. Every patient once.
    let ids: Vec<String> = (0..5).map(|i| create(hfs.port, &patient(i, "female"))).collect();
    proxy.schedule_for("/Patient", vec![None, Some(Fault::ExpireToken)]);
    let first = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&first), 5, "{first}");
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(patient_rows(&url).into_iter().map(|(id, _)| id).collect::<Vec<_>>(), expected);
    let seen = proxy.seen();
    let expired: Vec<_> = seen.iter().filter(|s| s.fault.as_deref() == Some("ExpireToken")).collect();
    assert_eq!(expired.len(), 1, "{seen:?}");
    assert!(expired[0].refused && expired[0].target.starts_with("/Patient"), "401 at the expired token: {seen:?}");
    refused_pages_are_asked_again_with_a_new_token(&seen);
    assert!(stderrs[0].contains("refreshed once"), "{}", stderrs[0]);
    let first_tokens = tokens(&seen);

    // 2. Four more patients; the first patients page is slow (3.2 s): the token is then past
    //    its refresh time, and is refreshed before the next page, with no 401.
    for i in 5..9 {
        create(hfs.port, &patient(i, "male"));
    }
    let before = proxy.seen().len();
    proxy.schedule_for("/Patient", vec![Some(Fault::Slow(Duration::from_millis(3200)))]);
    let second = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&second), 4, "{second}");
    assert_eq!(patient_rows(&url).len(), 9);
    let during = &proxy.seen()[before..];
    assert!(during.iter().all(|s| !s.refused), "no 401: {during:?}");
    let patient_tokens =
        tokens(&during.iter().filter(|s| s.target.starts_with("/Patient")).cloned().collect::<Vec<_>>());
    // (The first page may still use the last token of step 1, when it is younger than 2 s.)
    assert!(patient_tokens.len() >= 2, "refreshed before expiry, mid-sync: {patient_tokens:?}");
    assert!(patient_tokens.iter().any(|t| !first_tokens.contains(t)));

    // 3. A server that answers an expired token 403 `error="invalid_token"` (RFC 6750 allows
    //    it; some EHRs do): treated like a 401, one refresh and the page again.
    proxy.refuse_with_403(true);
    create(hfs.port, &patient(9, "female"));
    let before = proxy.seen().len();
    proxy.schedule_for("/Patient", vec![Some(Fault::ExpireToken)]);
    let third = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&third), 1, "{third}");
    assert_eq!(patient_rows(&url).len(), 10);
    let during = &proxy.seen()[before..];
    assert!(
        during.iter().any(|s| s.refused && s.target.starts_with("/Patient")),
        "the expired token is refused: {during:?}"
    );
    refused_pages_are_asked_again_with_a_new_token(during);
    let refreshed = stderrs.last().unwrap();
    assert!(refreshed.contains("refreshed once") && refreshed.contains("403"), "{refreshed}");

    // 4. A 403 for a missing scope is not the token's age: no refresh, RT118 saying so.
    let before = proxy.seen().len();
    proxy.schedule_for("/Patient", vec![Some(Fault::InsufficientScope)]);
    let out = sluice(&dir, &url).output().unwrap();
    let err = text(&out.stderr);
    stderrs.push(err.clone());
    assert!(!out.status.success());
    assert!(err.contains("RT118") && err.contains("HTTP 403") && err.contains("scopes"), "{err}");
    assert!(!err.contains("refreshed once"), "{err}");
    let patient_requests = proxy.seen()[before..].iter().filter(|s| s.target.starts_with("/Patient")).count();
    assert_eq!(patient_requests, 1, "asked once, not refreshed and asked again");
    assert_eq!(patient_rows(&url).len(), 10, "nothing lost");
    proxy.refuse_with_403(false);

    // 5. A server that accepts none of the issuer's tokens: one refresh, then RT120.
    proxy.refuse_tokens(true);
    let out = sluice(&dir, &url).output().unwrap();
    let err = text(&out.stderr);
    stderrs.push(err.clone());
    assert!(!out.status.success());
    assert!(err.contains("RT120") && err.contains("ehr_oauth"), "{err}");
    assert_eq!(patient_rows(&url).len(), 10, "nothing lost");

    // 6. No token, secret or patient name in any output (stderr, audit, state store, DLQ);
    //    the tokens in the state store are sealed.
    let all_tokens = tokens(&proxy.seen());
    assert!(all_tokens.len() >= 4, "{all_tokens:?}");
    let mut outputs = stderrs.join("\n").into_bytes();
    for f in ["audit.jsonl", "state.db", "dlq.jsonl"] {
        outputs.extend(std::fs::read(dir.join("out/fhir-rest-sync").join(f)).unwrap_or_default());
    }
    let outputs = String::from_utf8_lossy(&outputs);
    for secret in all_tokens.iter().map(String::as_str).chain([common::oidc::MACHINE_SECRET]) {
        assert!(!outputs.contains(secret), "a token or secret leaked");
    }
    for family in FAMILIES {
        assert!(!outputs.contains(family), "{family} leaked");
    }
}

fn delete(port: u16, target: &str) {
    let (status, body) = request(port, "DELETE", target, None);
    assert!(status == 200 || status == 204, "delete {target}: {status} {body}");
}

#[test]
fn deletions_on_the_server_delete_rows_and_become_tombstones_once() {
    let Some(url) = pg_database("fhir-rest-deletions") else { return };
    let (dir, proxy, hfs, _) = serve_and_write("fhir-rest-deletions", "");
    // Patients also to JSON Lines, where a deletion is a tombstone.
    let p = dir.join("pipelines/fhir-rest-sync.yaml");
    let spec = std::fs::read_to_string(&p).unwrap().replacen(
        "sinks:\n",
        "sinks:\n  patients_file:\n    type: jsonl\n    inputs: [mask]\n    path: ../out/fhir-rest-sync/patients.jsonl\n  patients_csv:\n    type: csv\n    inputs: [mask]\n    path: ../out/fhir-rest-sync/patients.csv\n",
        1,
    );
    // A filter on content: deletions (which have none) pass it, or their rows would stay.
    let spec = spec.replacen(
        "  mask:\n    type: mask\n    inputs: [to_patient_event]\n",
        "  known_gender:\n    type: filter\n    inputs: [to_patient_event]\n    keep: 'patient.gender == \"F\" or patient.gender == \"M\"'\n  mask:\n    type: mask\n    inputs: [known_gender]\n",
        1,
    );
    assert!(spec.contains("known_gender"), "{spec}");
    std::fs::write(&p, spec).unwrap();
    let lines = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("out/fhir-rest-sync/patients.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut stderrs = Vec::new();

    // 1. Five patients and two observations, synced.
    let ids: Vec<String> = (0..5).map(|i| create(hfs.port, &patient(i, "female"))).collect();
    let obs: Vec<String> = ["61", "72"].iter().map(|v| create(hfs.port, &observation(&ids[0], v))).collect();
    let first = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&first), 5 + 2, "{first}");
    assert_eq!(patient_rows(&url).len(), 5);

    // 2. Two patients deleted, one deleted and created again, one observation deleted: the
    //    two rows go, the re-created one stays (updated), observations (append) ignore it.
    delete(hfs.port, &format!("/Patient/{}", ids[1]));
    delete(hfs.port, &format!("/Patient/{}", ids[2]));
    delete(hfs.port, &format!("/Patient/{}", ids[3]));
    let (status, body) = request(
        hfs.port,
        "PUT",
        &format!("/Patient/{}", ids[3]),
        Some(&patient(3, "male").replacen("{", &format!("{{\"id\":\"{}\",", ids[3]), 1)),
    );
    assert!(status == 200 || status == 201, "re-create: {status} {body}");
    delete(hfs.port, &format!("/Observation/{}", obs[0]));
    let before = proxy.seen().len();
    let second = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&second), 2 + 1, "two deletions and one re-created patient: {second}");
    let rows = patient_rows(&url);
    let mut expected = vec![ids[0].clone(), ids[3].clone(), ids[4].clone()];
    expected.sort();
    assert_eq!(rows.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), expected, "{rows:?}");
    assert_eq!(rows.iter().find(|(id, _)| *id == ids[3]).unwrap().1, "M");
    let mut tombstones: Vec<String> = lines(&dir)
        .iter()
        .filter(|l| l["_deleted"] == true)
        .map(|l| l["metadata"]["message_id"].as_str().unwrap().to_string())
        .collect();
    tombstones.sort();
    let mut gone = vec![ids[1].clone(), ids[2].clone()];
    gone.sort();
    assert_eq!(tombstones, gone, "one tombstone per deletion");
    // In the CSV file, a deletion's row is marked in the `_deleted` column; no other row is.
    let csv = std::fs::read_to_string(dir.join("out/fhir-rest-sync/patients.csv")).unwrap();
    let mut rows = csv.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"_deleted"), "the marker column comes last");
    // The message id column comes before any quoted cell (which could hold commas).
    let id_at = header.iter().position(|c| *c == "metadata_message_id").unwrap();
    let mut marked: Vec<String> = Vec::new();
    for row in rows {
        match row.rsplit(',').next().unwrap() {
            "true" => marked.push(row.split(',').nth(id_at).unwrap().to_string()),
            "false" => {}
            other => panic!("`_deleted` is `{other}`: {row}"),
        }
    }
    marked.sort();
    assert_eq!(marked, gone, "the deletions' rows, and only they, are marked");
    assert_eq!(observation_lines(&dir), 2, "append tables ignore deletions");
    let asked = &proxy.seen()[before..];
    assert!(
        asked.iter().any(|s| s.target.starts_with("/Patient/_history?") && s.target.contains("_since=")),
        "{asked:?}"
    );
    assert!(asked.iter().all(|s| !s.target.starts_with("/Observation/_history")), "{asked:?}");

    // 3. Nothing changed: the overlap window asks the history again; nothing twice.
    let third = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&third), 0, "{third}");
    assert_eq!(lines(&dir).iter().filter(|l| l["_deleted"] == true).count(), 2);

    // 4. A server without `_history`: said once (RT121), the sync goes on, the row stays.
    delete(hfs.port, &format!("/Patient/{}", ids[4]));
    proxy.schedule_for("/Patient/_history", vec![Some(Fault::Status(404, None))]);
    let fourth = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&fourth), 0, "{fourth}");
    assert_eq!(stderrs.last().unwrap().matches("RT121").count(), 1, "{}", stderrs.last().unwrap());
    assert_eq!(patient_rows(&url).len(), 3);
    // ... and found by the next run that can ask.
    let fifth = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&fifth), 1, "{fifth}");
    assert_eq!(patient_rows(&url).len(), 2);

    // 5. A CSV file started before the sink had its `_deleted` column (an upgrade): the run
    //    refuses to append rows under the old header (RT163) and writes nothing; once the
    //    file is moved away, the next run starts a new one with the new header.
    let csv_path = dir.join("out/fhir-rest-sync/patients.csv");
    let current = std::fs::read_to_string(&csv_path).unwrap();
    let (first, rest) = current.split_once('\n').unwrap();
    let old_file = format!("{}\n{rest}", first.trim_end_matches('\r').trim_end_matches(",_deleted").to_string() + "\r");
    std::fs::write(&csv_path, &old_file).unwrap();
    create(hfs.port, &patient(7, "male"));
    let out = sluice(&dir, &url).output().unwrap();
    let err = text(&out.stderr);
    stderrs.push(err.clone());
    assert!(!out.status.success());
    assert!(err.contains("RT163") && err.contains("this sink adds `_deleted`"), "{err}");
    assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), old_file, "nothing appended");
    std::fs::rename(&csv_path, dir.join("out/fhir-rest-sync/patients-old.csv")).unwrap();
    let sixth = run_ok(&dir, &url, &mut stderrs);
    assert_eq!(delivered(&sixth), 1, "{sixth}");
    let fresh = std::fs::read_to_string(&csv_path).unwrap();
    assert!(fresh.lines().next().unwrap().trim_end().ends_with(",_deleted"), "{fresh}");

    // 6. No patient name in any output but the sinks.
    let mut outputs = stderrs.join("\n").into_bytes();
    for f in ["audit.jsonl", "state.db", "dlq.jsonl"] {
        outputs.extend(std::fs::read(dir.join("out/fhir-rest-sync").join(f)).unwrap_or_default());
    }
    let outputs = String::from_utf8_lossy(&outputs);
    for family in FAMILIES {
        assert!(!outputs.contains(family), "{family} leaked");
    }
}
