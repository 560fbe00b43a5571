//! The PostgreSQL state store (`state: {url}`), through the real binary, against the real
//! server scripts/test starts (scripts/start-postgres; `SLUICE_TEST_PG_URL`): `kill -9` then
//! `--resume` gives every record exactly once; a second instance of the pipeline is refused
//! while the first runs, and let in once it is killed (the server drops its advisory lock);
//! DLQ replays and purges are recorded in PostgreSQL; the URL's password appears nowhere.
//! Each test has its own database. Without `SLUICE_TEST_PG_URL` they print SKIPPED and pass.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::checkpoints::{PER_COPY, error_code, expect_exactly_once, expect_totals, file_len, setup, summary};
use common::{pg_database, pg_rows, text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";
/// Written into the URL the runs get; trust authentication ignores it, and no output may show it.
const PASSWORD: &str = "pgS3cretPW";

/// The URL with the test password in it.
fn with_password(url: &str) -> String {
    url.replacen("://sluice@", &format!("://sluice:{PASSWORD}@"), 1)
}

fn sluice(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args).env("SLUICE_STATE_URL", with_password(url));
    c
}

/// The pipeline `pipeline` of `dir` with its SQLite store replaced by `${SLUICE_STATE_URL}`.
fn use_postgres(dir: &Path, pipeline: &str) {
    let path = dir.join("pipelines").join(pipeline);
    let spec = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in spec.lines() {
        if line.trim_start().starts_with("path: ") && line.contains("state.db") {
            out.push_str("  url: ${SLUICE_STATE_URL}\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("url: ${SLUICE_STATE_URL}"), "{out}");
    std::fs::write(&path, out).unwrap();
}

fn run(dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["run", "pipelines/resume.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    args.extend_from_slice(extra);
    sluice(dir, url, &args).output().unwrap()
}

fn spawn(dir: &Path, url: &str, extra: &[&str]) -> Child {
    let mut args = vec!["run", "pipelines/resume.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    args.extend_from_slice(extra);
    sluice(dir, url, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Starts a run and waits until its audit log passes `bytes`.
fn spawn_until(dir: &Path, url: &str, extra: &[&str], bytes: u64) -> Child {
    let audit = dir.join("out/audit.jsonl");
    let mut child = spawn(dir, url, extra);
    let started = Instant::now();
    while file_len(&audit) < bytes {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be stopped");
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn no_password(what: &str, out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(PASSWORD), "{what} shows the password: {all}");
}

#[test]
fn kill_9_then_resume_gives_every_record_exactly_once() {
    let Some(url) = pg_database("pg-resume-kill") else { return };
    let copies = 1500u64;
    let dir = setup("pg-resume-kill", copies as usize, "100ms");
    use_postgres(&dir, "resume.yaml");
    let audit = dir.join("out/audit.jsonl");
    let mut kills = 0;
    for (i, bytes) in [2_000_000u64, 6_000_000].into_iter().enumerate() {
        // Past what the killed run left, so each run cuts back and writes on before the kill.
        let mut child = spawn_until(&dir, &url, if i == 0 { &[] } else { &["--resume"] }, bytes);
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        no_password("a killed run", &out);
        kills += 1;
        let refused = run(&dir, &url, &[]);
        assert_eq!(error_code(&refused), "RT012", "{}", text(&refused.stderr));
        no_password("a refusal", &refused);
    }
    let rows = pg_rows(&url, "SELECT status, resumes FROM runs");
    assert_eq!(rows, vec![vec![Some("running".to_string()), Some("1".to_string())]], "one killed run, resumed once");
    let last = run(&dir, &url, &["--resume"]);
    assert!(last.status.success(), "{}", text(&last.stderr));
    no_password("the last run", &last);
    let s = summary(&last);
    expect_totals(&s, copies);
    assert!(s["resumed_from"].as_u64().is_some_and(|n| n > 0 && n < PER_COPY.0 * copies), "{s}");
    expect_exactly_once(&dir, copies);
    let completed: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&audit).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(completed["resumes"], kills);
    let rows = pg_rows(&url, "SELECT status FROM runs");
    assert_eq!(rows, vec![vec![Some("completed".to_string())]]);
}

#[test]
fn a_second_instance_is_refused_until_the_first_is_killed() {
    let Some(url) = pg_database("pg-lock") else { return };
    let dir = setup("pg-lock", 1000, "100ms");
    use_postgres(&dir, "resume.yaml");
    let mut first = spawn_until(&dir, &url, &[], 200_000);
    let second = run(&dir, &url, &["--resume"]);
    assert_eq!(error_code(&second), "RT011", "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("${SLUICE_STATE_URL}"), "names the store as written");
    no_password("the refusal", &second);
    // Another pipeline on the same store is not kept out.
    let other = workspace("pg-lock-other");
    use_postgres(&other, "quickstart.yaml");
    let quick = sluice(&other, &url, &["run", "pipelines/quickstart.yaml", "--fixed-clock", CLOCK]).output().unwrap();
    assert!(quick.status.success(), "{}", text(&quick.stderr));
    first.kill().unwrap();
    first.wait().unwrap();
    // The server ends the killed session and its lock with it (it notices the closed
    // connection; give it a moment on a loaded machine).
    let started = Instant::now();
    let resumed = loop {
        let out = run(&dir, &url, &["--resume"]);
        if error_code(&out) != "RT011" || started.elapsed() > Duration::from_secs(60) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    expect_totals(&summary(&resumed), 1000);
    expect_exactly_once(&dir, 1000);
}

#[test]
fn replay_and_purge_are_recorded_in_postgres() {
    let Some(url) = pg_database("pg-dlq") else { return };
    let dir = workspace("pg-dlq");
    use_postgres(&dir, "quickstart.yaml");
    let p = "pipelines/quickstart.yaml";
    let ok = |out: Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        no_password("a command", &out);
        out
    };
    ok(sluice(&dir, &url, &["run", p, "--fixed-clock", CLOCK]).output().unwrap());
    // The fix, as in tests/dlq.rs: `Q` becomes an accepted gender code.
    let rules = dir.join("mappings/base/rules/patient-event.yaml");
    let spec = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(&rules, spec.replace("in: [M, F, O, U, A, N]", "in: [M, F, O, U, A, N, Q]")).unwrap();
    let replayed =
        ok(sluice(&dir, &url, &["dlq", "replay", p, "--summary", "json", "--fixed-clock", CLOCK]).output().unwrap());
    let s: serde_json::Value = serde_json::from_str(text(&replayed.stdout).trim()).unwrap();
    assert_eq!((s["replayed"].as_u64(), s["delivered"].as_u64(), s["dlq"].as_u64()), (Some(6), Some(1), Some(5)));
    let outcomes = pg_rows(
        &url,
        "SELECT outcome, count(*) FROM replayed JOIN replays ON replays.id = replayed.replay
         WHERE replays.status = 'completed' GROUP BY outcome ORDER BY outcome",
    );
    let count = |o: &str, n: &str| vec![Some(o.to_string()), Some(n.to_string())];
    assert_eq!(outcomes, vec![count("delivered", "1"), count("dlq", "5")]);
    // `dlq list` reads the outcomes from PostgreSQL.
    let listed = ok(sluice(&dir, &url, &["dlq", "list", p, "--output", "json"]).output().unwrap());
    let statuses: Vec<serde_json::Value> = text(&listed.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].clone())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| s.as_str().is_some_and(|s| s.starts_with("replayed"))).count(),
        6,
        "{statuses:?}"
    );
    let dlq = dir.join("out/quickstart/dlq.jsonl");
    let before = std::fs::read_to_string(&dlq).unwrap().lines().count();
    let purged = ok(sluice(&dir, &url, &["dlq", "purge", p, "--replayed"]).output().unwrap());
    assert!(text(&purged.stdout).contains("purged 6 records"), "{}", text(&purged.stdout));
    assert_eq!(std::fs::read_to_string(&dlq).unwrap().lines().count(), before - 6, "the replayed records are gone");
}

#[test]
fn bad_urls_are_refused_without_showing_the_password() {
    let Some(url) = pg_database("pg-urls") else { return };
    let dir = workspace("pg-urls");
    use_postgres(&dir, "quickstart.yaml");
    let p = "pipelines/quickstart.yaml";
    let plan = sluice(&dir, &url, &["plan", p]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    assert!(text(&plan.stdout).contains("state ${SLUICE_STATE_URL} (postgres"), "{}", text(&plan.stdout));
    no_password("the plan", &plan);
    for (bad, expect) in [
        (url.replace("sslmode=disable", "sslmode=require"), "sslmode=require"),
        // Nothing listens on port 1.
        (url.rsplit_once(':').map(|(a, b)| format!("{a}:1/{}", b.split_once('/').unwrap().1)).unwrap(), "connect"),
    ] {
        let out = sluice(&dir, &bad, &["run", p, "--fixed-clock", CLOCK]).output().unwrap();
        assert_eq!(error_code(&out), "RT010", "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains(expect), "{}", text(&out.stderr));
        no_password("a refused URL", &out);
    }
}

/// Ctrl-C on a run with a PostgreSQL store: the text summary says where the checkpoint is (the
/// URL as written, never the password) and how to resume.
#[test]
fn an_interrupted_run_names_its_store_without_the_password() {
    let Some(url) = pg_database("pg-interrupt") else { return };
    let dir = setup("pg-interrupt", 1000, "100ms");
    use_postgres(&dir, "resume.yaml");
    let audit = dir.join("out/audit.jsonl");
    let child = sluice(&dir, &url, &["run", "pipelines/resume.yaml", "--fixed-clock", CLOCK])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while file_len(&audit) < 200_000 {
        assert!(started.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    no_password("an interrupted run", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("interrupted: checkpoint saved in ${SLUICE_STATE_URL}; continue with `sluice run --resume pipelines/resume.yaml`"),
        "{stdout}"
    );
}
