//! Checkpoints and resume, through the real binary: `kill -9` at random moments of a
//! 200,000-message run, Ctrl-C (SIGINT) and `--resume`, and every refusal (RT011-RT015).
//!
//! The input is the bundled examples (`feed-2024-01-15.hl7` and `rejects.hl7`: 66 records, of
//! which 39 are delivered, 6 go to the DLQ and 21 are filtered) repeated, so the expected
//! counts are known exactly and the DLQ is exercised on every copy.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::checkpoints::{
    PER_COPY, error_code, expect_exactly_once, expect_totals, file_len, kill_at_random_moments, setup, summary,
};
use common::text;

const CLOCK: &str = "2024-01-01T00:00:00Z";
fn sluice(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir);
    c
}

fn run(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", "pipelines/resume.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    args.extend_from_slice(extra);
    sluice(dir).args(&args).output().unwrap()
}

fn spawn(dir: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["run", "pipelines/resume.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    args.extend_from_slice(extra);
    sluice(dir).args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn kill_9_five_times_then_resume_gives_every_record_exactly_once() {
    // 3031 copies of 66 records: 200,046 messages.
    let copies = 3031u64;
    let dir = setup("resume-kill", copies as usize, "100ms");
    let audit = dir.join("out/audit.jsonl");
    let mut ended = kill_at_random_moments(
        &dir,
        copies,
        5,
        |resume| spawn(&dir, if resume { &["--resume"] } else { &[] }),
        || true,
        || run(&dir, &[]),
    );
    let kills = ended.kills;
    assert!(kills >= 3, "the kills should land inside the run: {kills}");
    let last = ended.end(|| run(&dir, &["--resume"]));
    let mut console = ended.console;
    console.push_str(&text(&last.stdout));
    console.push_str(&text(&last.stderr));
    assert!(last.status.success(), "{}", text(&last.stderr));
    let s = summary(&last);
    expect_totals(&s, copies);
    assert!(s["resumed_from"].as_u64().is_some());
    expect_exactly_once(&dir, copies);
    let completed = std::fs::read_to_string(&audit).unwrap().lines().last().unwrap().to_string();
    let completed: serde_json::Value = serde_json::from_str(&completed).unwrap();
    assert_eq!(completed["event"], "run_completed");
    assert_eq!(completed["resumes"], kills, "each resume is counted in the audit");
    assert!(!console.contains("TESTPATIENT") && !console.contains("panicked"), "{console}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_resume_gives_the_uninterrupted_output() {
    let copies = 400;
    let dir = setup("resume-sigint", copies, "1s");
    // The reference: the same run, uninterrupted.
    let whole = run(&dir, &[]);
    assert!(whole.status.success(), "{}", text(&whole.stderr));
    std::fs::rename(dir.join("out"), dir.join("reference")).unwrap();

    let mut child = spawn(&dir, &[]);
    let started = Instant::now();
    while file_len(&dir.join("out/audit.jsonl")) < 1_000_000 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(5));
    }
    // SIGINT, as Ctrl-C sends it.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    let s = summary(&out);
    assert_eq!(s["interrupted"], true);
    assert_eq!(s["balanced"], true, "what was read was drained");
    let stopped_at = s["records_in"].as_u64().unwrap();
    assert!(stopped_at > 0 && stopped_at < PER_COPY.0 * copies as u64, "{s}");
    // Everything read before the signal is durable and audited; no `run_completed` yet.
    assert_eq!(sluice_runtime::verify_audit_chain(dir.join("out/audit.jsonl")), Ok(stopped_at + 1));

    let refused = run(&dir, &[]);
    assert_eq!(error_code(&refused), "RT012", "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("interrupted"), "{}", text(&refused.stderr));

    let resumed = run(&dir, &["--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let s = summary(&resumed);
    assert_eq!(s["resumed_from"], stopped_at);
    expect_totals(&s, copies as u64);
    for file in ["patient-events.jsonl", "dlq.jsonl"] {
        let a = std::fs::read(dir.join("out").join(file)).unwrap();
        let b = std::fs::read(dir.join("reference").join(file)).unwrap();
        assert!(a == b, "{file}: the resumed run wrote what the uninterrupted one did");
    }
    // The audit too, but for `run_completed`, which counts the resume.
    let a = std::fs::read_to_string(dir.join("out/audit.jsonl")).unwrap();
    let b = std::fs::read_to_string(dir.join("reference/audit.jsonl")).unwrap();
    let (a_lines, b_lines): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    assert_eq!(a_lines.len(), b_lines.len());
    assert!(a_lines[..a_lines.len() - 1] == b_lines[..b_lines.len() - 1], "audit record entries identical");
    assert!(a_lines.last().unwrap().contains("\"resumes\":1"));
    assert!(!b_lines.last().unwrap().contains("resumes"));
    expect_exactly_once(&dir, copies as u64);

    // Nothing left to resume now.
    let again = run(&dir, &["--resume"]);
    assert_eq!(error_code(&again), "RT015", "{}", text(&again.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Interrupts (SIGTERM) a run of `dir` once it has written a few hundred records.
fn interrupt_mid_run(dir: &Path) -> u64 {
    // The audit log of an earlier run would look like progress before this run truncates it.
    let _ = std::fs::remove_file(dir.join("out/audit.jsonl"));
    let mut child = spawn(dir, &[]);
    let started = Instant::now();
    while file_len(&dir.join("out/audit.jsonl")) < 200_000 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        assert!(started.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    summary(&out)["records_in"].as_u64().unwrap()
}

#[test]
fn resume_refuses_what_would_skip_or_repeat_records() {
    let copies = 200;
    let dir = setup("resume-refusals", copies, "50ms");

    // No unfinished run.
    let none = run(&dir, &["--resume"]);
    assert_eq!(error_code(&none), "RT015", "{}", text(&none.stderr));

    interrupt_mid_run(&dir);

    // Another process holds the store.
    let lock = std::fs::OpenOptions::new().write(true).open(dir.join("out/state.db.resume-test.lock")).unwrap();
    lock.try_lock().unwrap();
    let locked = run(&dir, &["--resume"]);
    assert_eq!(error_code(&locked), "RT011", "{}", text(&locked.stderr));
    drop(lock);

    // The plan changed.
    let pipeline = dir.join("pipelines/resume.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, spec.replace("batch_size: 64", "batch_size: 32")).unwrap();
    let changed = run(&dir, &["--resume"]);
    assert_eq!(error_code(&changed), "RT013", "{}", text(&changed.stderr));
    std::fs::write(&pipeline, &spec).unwrap();

    // An input changed.
    let input = dir.join("input/feed.hl7");
    let original = std::fs::read(&input).unwrap();
    std::fs::write(&input, [&original[..], b"MSH|^~\\&|X\r\n"].concat()).unwrap();
    let grown = run(&dir, &["--resume"]);
    assert_eq!(error_code(&grown), "RT014", "{}", text(&grown.stderr));
    std::fs::write(&input, &original).unwrap();
    // (Same size and content, new modification time: still refused, as it cannot be told
    // from an edit.)
    let touched = run(&dir, &["--resume"]);
    assert_eq!(error_code(&touched), "RT014", "{}", text(&touched.stderr));
    assert!(text(&touched.stderr).contains("was modified"), "{}", text(&touched.stderr));

    // `--restart` abandons the interrupted run and starts over from the (new) input.
    let restarted = run(&dir, &["--restart"]);
    assert!(restarted.status.success(), "{}", text(&restarted.stderr));
    expect_totals(&summary(&restarted), copies as u64);
    expect_exactly_once(&dir, copies as u64);

    // An output cut short after the checkpoint is refused.
    interrupt_mid_run(&dir);
    let sink = dir.join("out/patient-events.jsonl");
    let f = std::fs::OpenOptions::new().write(true).open(&sink).unwrap();
    f.set_len(10).unwrap();
    let short = run(&dir, &["--resume"]);
    assert_eq!(error_code(&short), "RT014", "{}", text(&short.stderr));
    assert!(text(&short.stderr).contains("shorter than its checkpoint"), "{}", text(&short.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_a_state_store_there_is_nothing_to_resume() {
    let dir = setup("resume-nostate", 1, "1s");
    let pipeline = dir.join("pipelines/resume.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let without: String = spec
        .lines()
        .filter(|l| !l.starts_with("state:") && !l.contains("state.db") && !l.contains("checkpoint_every"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&pipeline, without).unwrap();
    let out = run(&dir, &["--resume"]);
    assert_eq!(error_code(&out), "RT015", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no state store"), "{}", text(&out.stderr));
    let plain = run(&dir, &[]);
    assert!(plain.status.success());
    expect_totals(&summary(&plain), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_stops_the_run_with_a_clear_error_and_resume_finishes_it() {
    let copies = 100;
    let dir = setup("resume-diskfull", copies, "50ms");
    // The sink's file is a link to /dev/full: every write that reaches it fails with ENOSPC.
    std::fs::create_dir_all(dir.join("out")).unwrap();
    let sink = dir.join("out/patient-events.jsonl");
    std::os::unix::fs::symlink("/dev/full", &sink).unwrap();
    let full = run(&dir, &[]);
    assert_eq!(full.status.code(), Some(1), "{}", text(&full.stderr));
    assert_eq!(error_code(&full), "RT003", "{}", text(&full.stderr));
    let err = text(&full.stderr);
    assert!(err.contains("patient-events.jsonl") && err.contains("no storage space"), "{err}");
    assert!(!err.contains("TESTPATIENT") && !err.contains("panicked"), "{err}");
    // The run is recorded as unfinished, with a checkpoint that the disk backs.
    let refused = run(&dir, &[]);
    assert_eq!(error_code(&refused), "RT012", "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("failed"), "{}", text(&refused.stderr));
    // Space again: the resume finishes the run, every record once.
    std::fs::remove_file(&sink).unwrap();
    std::fs::write(&sink, "").unwrap();
    let resumed = run(&dir, &["--resume"]);
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    expect_totals(&summary(&resumed), copies as u64);
    expect_exactly_once(&dir, copies as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_output_directory_that_cannot_be_made_stops_the_run_before_it_starts() {
    let dir = setup("resume-notdir", 1, "1s");
    // `out` is a file, so `out/patient-events.jsonl` cannot be created.
    std::fs::write(dir.join("out"), "not a directory").unwrap();
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error[RT"), "{err}");
    assert!(err.contains("out"), "names the path: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn fail_if_stops_a_run_whose_error_rate_is_too_high() {
    let copies = 200;
    let dir = setup("resume-failif", copies, "1s");
    let pipeline = dir.join("pipelines/resume.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    // Each copy of the examples ends with its 6 rejected messages: at the third, 3 of the last
    // 50 records (6%) went to the DLQ.
    std::fs::write(&pipeline, format!("{spec}fail_if: error_rate > 5% over 50 records\n")).unwrap();
    let plan = sluice(&dir).args(["plan", "pipelines/resume.yaml"]).output().unwrap();
    assert!(text(&plan.stdout).contains("fail_if error_rate > 5% over 50 records"), "{}", text(&plan.stdout));
    let out = run(&dir, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(error_code(&out), "RT020", "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("3 of the last 50 records went to the DLQ (6.00%)"), "{err}");
    assert!(err.contains("sluice dlq list"), "says where to look: {err}");
    // It stopped early, with what it read written and audited, and the run recorded as failed.
    let audited = sluice_runtime::verify_audit_chain(dir.join("out/audit.jsonl")).unwrap();
    assert!(audited >= 66 && audited < PER_COPY.0 * copies as u64, "stopped after {audited} records");
    let refused = run(&dir, &[]);
    assert_eq!(error_code(&refused), "RT012", "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("failed"));

    // Under the limit, the same run completes.
    std::fs::write(&pipeline, format!("{spec}fail_if: error_rate > 20% over 50 records\n")).unwrap();
    let out = run(&dir, &["--restart"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    expect_totals(&summary(&out), copies as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}
