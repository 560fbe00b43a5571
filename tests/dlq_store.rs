//! The DLQ in the state store (`dlq: {store: state}`), through the real binary: the quick start
//! gives the same entries as with a DLQ file, and `sluice dlq list | show | replay | purge` work
//! the same on them; a replay that fails, or was killed, is undone in the table too; `kill -9`
//! at random moments of a 200,000-message run (about 9% of it rejected) and `--resume` give each
//! DLQ entry exactly once; and the same on PostgreSQL, where a store of version 1 also gets the
//! table (skipped loudly without `SLUICE_TEST_PG_URL`). No patient data in anything the
//! commands print.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::checkpoints::{
    expect_dlq_exactly_once, expect_sink_exactly_once, expect_totals, kill_at_random_moments, setup, summary,
};
use common::{pg_database, phi_values, text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";
const QUICKSTART: &str = "pipelines/quickstart.yaml";

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    out
}

/// The pipeline's `dlq.path` line replaced by `store: state`.
fn dlq_in_store(dir: &Path, pipeline: &str) {
    let path = dir.join(pipeline);
    let spec = std::fs::read_to_string(&path).unwrap();
    let changed: String = spec
        .lines()
        .map(|l| if l.starts_with("  path: ") && l.ends_with("dlq.jsonl") { "  store: state" } else { l })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(changed.contains("  store: state\n"), "{changed}");
    std::fs::write(&path, changed).unwrap();
}

fn list(dir: &Path, pipeline: &str) -> Vec<serde_json::Value> {
    let out = ok(sluice(dir, &["dlq", "list", pipeline, "--output", "json"]));
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The error code `sluice` printed.
fn error_code(out: &Output) -> String {
    common::checkpoints::error_code(out)
}

/// A workspace whose quick start keeps its DLQ in the state store, or in its file.
fn quickstart(name: &str, in_store: bool) -> common::Workspace {
    let dir = workspace(name);
    if in_store {
        dlq_in_store(&dir, QUICKSTART);
    }
    ok(sluice(&dir, &["run", QUICKSTART, "--fixed-clock", CLOCK]));
    dir
}

/// What two workspaces' commands print, with each one's run ids and plan hash (which differ,
/// since the plans do) replaced by placeholders.
struct Normalizer(Vec<(String, &'static str)>);

impl Normalizer {
    fn of(dir: &Path) -> Normalizer {
        let plan = ok(sluice(dir, &["plan", QUICKSTART, "--format", "json"]));
        let plan: serde_json::Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
        let audit = std::fs::read_to_string(dir.join("out/quickstart/audit.jsonl")).unwrap();
        let mut runs: Vec<String> = audit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["run_id"].as_str().unwrap().to_string())
            .collect();
        runs.dedup();
        let mut pairs = vec![(plan["hash"].as_str().unwrap().to_string(), "PLAN")];
        let names = ["RUN0", "RUN1", "RUN2", "RUN3"];
        pairs.extend(runs.into_iter().zip(names));
        Normalizer(pairs)
    }

    fn apply(&self, s: &str) -> String {
        self.0.iter().fold(s.to_string(), |s, (from, to)| s.replace(from.as_str(), to))
    }

    /// The other workspace's id of `id`, an id of this one's.
    fn translate(&self, id: &str, to: &Normalizer) -> String {
        to.0.iter().fold(self.apply(id), |s, (value, placeholder)| s.replace(placeholder, value))
    }
}

#[test]
fn the_quick_start_gives_the_same_dlq_in_the_state_store_as_in_a_file() {
    let file = quickstart("dlq-store-file", false);
    let store = quickstart("dlq-store-table", true);
    assert!(!store.join("out/quickstart/dlq.jsonl").exists(), "no DLQ file");
    let plan = ok(sluice(&store, &["plan", QUICKSTART]));
    assert!(
        text(&plan.stdout)
            .contains("dlq state store `out/quickstart/state.db`, table dlq_entries (raw messages encrypted"),
        "the plan shows where the DLQ is: {}",
        text(&plan.stdout)
    );

    // The rows hold the file's lines: the same entries but for the run id, the plan hash and
    // the sealed message (sealed under the entry id).
    let target = sluice_compiler::plan::StateTarget {
        kind: "sqlite".into(),
        path: store.join("out/quickstart/state.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 1000,
    };
    let rows = sluice_runtime::state::Store::dlq_entries_in(&target, "quickstart").unwrap();
    let lines: Vec<String> =
        std::fs::read_to_string(file.join("out/quickstart/dlq.jsonl")).unwrap().lines().map(String::from).collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows.len(), lines.len());
    let (nf, ns) = (Normalizer::of(&file), Normalizer::of(&store));
    let without_raw = |n: &Normalizer, json: &str| {
        let mut v: serde_json::Value = serde_json::from_str(&n.apply(json)).unwrap();
        assert_eq!(v["raw_encoding"], "aes-256-gcm");
        assert!(!json.contains("TESTPATIENT") && !json.contains("BADGENDER"), "sealed at rest: {json}");
        v.as_object_mut().unwrap().remove("raw");
        v
    };
    for ((_, row), line) in rows.iter().zip(&lines) {
        assert_eq!(without_raw(&ns, row), without_raw(&nf, line));
    }

    // `list` and `show` (with the message, decrypted) print the same.
    let both = |args: &[&str]| {
        let a = ok(sluice(&file, args));
        let b = ok(sluice(&store, args));
        assert_eq!(nf.apply(&text(&a.stdout)), ns.apply(&text(&b.stdout)), "{args:?}");
        (text(&b.stdout), text(&b.stderr))
    };
    let (listed, _) = both(&["dlq", "list", QUICKSTART, "--output", "json"]);
    let (listed_text, _) = both(&["dlq", "list", QUICKSTART]);
    assert!(listed_text.contains("6 records in the DLQ, 6 pending replay"), "{listed_text}");
    let ids: Vec<String> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().into())
        .collect();
    for id in &ids {
        let a = ok(sluice(&file, &["dlq", "show", QUICKSTART, &ns.translate(id, &nf), "--raw"]));
        let b = ok(sluice(&store, &["dlq", "show", QUICKSTART, id, "--raw"]));
        assert_eq!(nf.apply(&text(&a.stdout)), ns.apply(&text(&b.stdout)));
    }
    let gender = ok(sluice(&store, &["dlq", "show", QUICKSTART, &ids[2], "--raw"]));
    assert!(text(&gender.stdout).contains("BADGENDER"), "--raw opens the sealed message");
    let unknown = sluice(&store, &["dlq", "show", QUICKSTART, "nope-1"]);
    assert_eq!(unknown.status.code(), Some(1));

    // After the fix of tests/dlq.rs (`Q` becomes a gender code), a replay delivers one and
    // sends five back to the DLQ, in both.
    for dir in [&file, &store] {
        let rules = dir.join("mappings/base/rules/patient-event.yaml");
        let spec = std::fs::read_to_string(&rules).unwrap();
        std::fs::write(&rules, spec.replace("in: [M, F, O, U, A, N]", "in: [M, F, O, U, A, N, Q]")).unwrap();
    }
    let replay = ["dlq", "replay", QUICKSTART, "--summary", "json", "--fixed-clock", CLOCK];
    let (a, b) = (ok(sluice(&file, &replay)), ok(sluice(&store, &replay)));
    let s: serde_json::Value = serde_json::from_str(text(&b.stdout).trim()).unwrap();
    assert_eq!((s["replayed"].as_u64(), s["delivered"].as_u64(), s["dlq"].as_u64()), (Some(6), Some(1), Some(5)));
    let (nf, ns) = (Normalizer::of(&file), Normalizer::of(&store));
    assert_eq!(nf.apply(&text(&a.stdout)), ns.apply(&text(&b.stdout)));
    assert_eq!(
        sluice_runtime::verify_audit_chain(store.join("out/quickstart/audit.jsonl")),
        Ok(68 + 8),
        "the replay is audited as with a file"
    );
    let both = |args: &[&str]| {
        let a = ok(sluice(&file, args));
        let b = ok(sluice(&store, args));
        assert_eq!(nf.apply(&text(&a.stdout)), ns.apply(&text(&b.stdout)), "{args:?}");
        text(&b.stdout)
    };
    let after = both(&["dlq", "list", QUICKSTART]);
    assert!(after.contains("11 records in the DLQ, 5 pending replay"), "{after}");

    // Purge the replayed records, then one by id: the same in both, audited in both.
    let purged = both(&["dlq", "purge", QUICKSTART, "--replayed"]);
    assert!(purged.contains("purged 6 records (6 entries)"), "{purged}");
    let left = list(&store, QUICKSTART);
    assert_eq!(left.len(), 5);
    assert!(left.iter().all(|r| r["status"] == "pending"));
    let one = left[0]["id"].as_str().unwrap().to_string();
    let a = ok(sluice(&file, &["dlq", "purge", QUICKSTART, &ns.translate(&one, &nf)]));
    let b = ok(sluice(&store, &["dlq", "purge", QUICKSTART, &one]));
    assert_eq!(text(&a.stdout), text(&b.stdout));
    assert_eq!(list(&store, QUICKSTART).len(), 4);
    assert_eq!(sluice_runtime::state::Store::dlq_entries_in(&target, "quickstart").unwrap().len(), 4);
    assert_eq!(error_code(&sluice(&store, &["dlq", "purge", QUICKSTART, &one])), "RT017", "already gone");
    let audit = std::fs::read_to_string(store.join("out/quickstart/audit.jsonl")).unwrap();
    assert_eq!(audit.lines().filter(|l| l.contains("\"event\":\"dlq_purged\"")).count(), 2);
    assert!(sluice_runtime::verify_audit_chain(store.join("out/quickstart/audit.jsonl")).is_ok());

    // A new run starts the DLQ over, as it truncates a DLQ file (5 rejects, with the fix).
    ok(sluice(&store, &["run", QUICKSTART, "--fixed-clock", CLOCK]));
    let fresh = list(&store, QUICKSTART);
    assert_eq!(fresh.len(), 5);
    assert!(fresh.iter().all(|r| r["status"] == "pending"));

    // Nothing printed holds patient data (without --raw).
    let phi = phi_values(&[store.join("examples/hl7/rejects.hl7"), store.join("examples/hl7/feed-2024-01-15.hl7")]);
    assert!(!phi.is_empty());
    let printed = [listed, listed_text, after, purged].concat();
    for value in &phi {
        assert!(!printed.contains(value.as_str()), "a PHI value in the output");
    }
}

#[test]
fn a_replay_that_fails_or_was_killed_is_undone_in_the_table() {
    let dir = quickstart("dlq-store-undo", true);
    let out = dir.join("out/quickstart");
    let target = sluice_compiler::plan::StateTarget {
        kind: "sqlite".into(),
        path: out.join("state.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 1000,
    };
    let rows = || sluice_runtime::state::Store::dlq_entries_in(&target, "quickstart").unwrap();
    let before = rows();
    // The sink's disk is full for the replay: its DLQ rows are committed before the sink
    // fails (the table is flushed first), and must be taken back.
    let sink = out.join("patient-events.jsonl");
    let kept = std::fs::read(&sink).unwrap();
    std::fs::remove_file(&sink).unwrap();
    std::os::unix::fs::symlink("/dev/full", &sink).unwrap();
    let replay = ["dlq", "replay", QUICKSTART, "--summary", "json", "--fixed-clock", CLOCK];
    let failed = sluice(&dir, &replay);
    assert_eq!(error_code(&failed), "RT003", "{}", text(&failed.stderr));
    assert_eq!(rows(), before, "the replay's rows are gone");
    assert!(list(&dir, QUICKSTART).iter().all(|r| r["status"] == "pending"), "nothing marked replayed");
    std::fs::remove_file(&sink).unwrap();
    std::fs::write(&sink, &kept).unwrap();

    // A replay killed before it completed: its row says `running`, and it had committed DLQ
    // rows. The next replay deletes them first.
    {
        let mut store = sluice_runtime::state::Store::open(&target, Some("quickstart")).unwrap();
        let mark = store.dlq_mark("quickstart").unwrap();
        let outputs = vec![(sluice_runtime::replay::DLQ_TABLE.to_string(), mark)];
        store.begin_replay("killed", "quickstart", CLOCK, &outputs).unwrap();
        // Entries as the killed replay (run `killed`) would have written them.
        let run: serde_json::Value = serde_json::from_str(&before[0].1).unwrap();
        let run = run["run_id"].as_str().unwrap();
        let row = |seq: u64| sluice_runtime::state::dlq::DlqRow {
            entry_id: format!("killed-{seq}"),
            run_id: "killed".into(),
            seq,
            stage: "validate".into(),
            code: "RT207".into(),
            at: CLOCK.into(),
            entry: before[seq as usize].1.replace(run, "killed"),
        };
        store.append_dlq("quickstart", &[row(1), row(2)]).unwrap();
    }
    assert_eq!(rows().len(), 8);
    let after_kill = ok(sluice(&dir, &replay));
    let s: serde_json::Value = serde_json::from_str(text(&after_kill.stdout).trim()).unwrap();
    assert_eq!(s["undid_incomplete_replay"], true);
    assert_eq!(s["replayed"], 6, "the killed replay's rows were not replayed: they were undone");
    let all = rows();
    assert_eq!(all.len(), 12, "6 from the run, 6 from the replay, none from the killed one");
    assert!(all.iter().all(|(_, e)| !e.contains("killed")));
}

#[test]
fn kill_9_during_a_run_with_many_rejects_then_resume_gives_each_dlq_entry_exactly_once() {
    // 3031 copies of 66 records: 200,046 messages, 18,186 of them rejected.
    let copies = 3031u64;
    // Checkpoints 60 s apart, so that the writer commits DLQ rows between them (it does every
    // `dlq::PENDING_ROWS` = 1024 rows) and a kill leaves rows after the checkpoint for the
    // resume to delete; the test checks that it did. The interval must hold 1024 rejects even
    // on a loaded machine: with 3 s, and later with 10 s under load 10 on 2 CPUs (about 57
    // rejects a second, every try of three), the rows were committed only with each
    // checkpoint, so no moment had rows beyond it to kill at. On a fast machine the kills
    // come before the first checkpoint, and the resume deletes every row.
    let dir = setup("dlq-store-kill", copies as usize, "60s");
    dlq_in_store(&dir, "pipelines/resume.yaml");
    let args = ["run", "pipelines/resume.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    let spawn = |resume: bool| {
        let mut all = args.to_vec();
        if resume {
            all.push("--resume");
        }
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&dir)
            .args(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let target = sluice_compiler::plan::StateTarget {
        kind: "sqlite".into(),
        path: dir.join("out/state.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 60_000,
    };
    // The run's committed DLQ rows, and those its checkpoint counts. The two reads are not one
    // snapshot, so the rows are read first: a checkpoint committed between the reads can only
    // make `rows > durable` false, never true while the checkpoint already covers the rows
    // (reading the checkpoint first made the kills land on covered rows under load).
    let rows = || {
        let store = sluice_runtime::state::Store::open_for_reading(&target).ok()??;
        let rows = store.dlq_entries("resume-test").ok()?.len() as u64;
        let checkpoint = store.unfinished("resume-test").ok()??.checkpoint;
        Some((rows, checkpoint.dlq_rows.unwrap_or(0)))
    };
    // Each kill waits until the writer has committed rows after the last checkpoint, so that
    // the resume has rows to delete; the wait ends with a check made while the run is stopped
    // (`kill_at_random_moments`), so no checkpoint can cover those rows before the kill.
    let ready = || rows().is_some_and(|(rows, durable)| rows > durable);
    let beyond = std::cell::Cell::new(0u64);
    let refused = || {
        let (rows, durable) = rows().unwrap();
        assert!(rows >= durable, "every row the checkpoint counts is there");
        beyond.set(beyond.get() + rows - durable);
        sluice(&dir, &args)
    };
    let mut kills = kill_at_random_moments(&dir, copies, 3, spawn, ready, refused);
    assert!(kills.kills >= 1, "the kills should land inside the run: {}", kills.kills);
    println!("DLQ rows left beyond the checkpoints by the kills: {}", beyond.get());
    assert!(beyond.get() > 0, "the kills left DLQ rows after a checkpoint, which each resume deleted");
    let last = ok(kills.end(|| sluice(&dir, &[&args[..], &["--resume"]].concat())));
    let s = summary(&last);
    expect_totals(&s, copies);
    assert!(!dir.join("out/dlq.jsonl").exists());
    let rejected = expect_sink_exactly_once(&dir, copies);
    let listed = list(&dir, "pipelines/resume.yaml");
    let ids: Vec<String> = listed
        .iter()
        .flat_map(|r| {
            std::iter::repeat_n(r["id"].as_str().unwrap().to_string(), r["entries"].as_u64().unwrap() as usize)
        })
        .collect();
    expect_dlq_exactly_once(&ids, &rejected, copies);
    let console = kills.console + &text(&last.stdout) + &text(&last.stderr);
    assert!(!console.contains("TESTPATIENT") && !console.contains("panicked"), "{console}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn postgres_kill_9_then_resume_gives_each_dlq_entry_exactly_once_and_list_replay_purge_work() {
    let Some(url) = pg_database("dlq-store-pg") else { return };
    let copies = 1500u64;
    let dir = setup("dlq-store-pg", copies as usize, "100ms");
    let pipeline = "pipelines/resume.yaml";
    dlq_in_store(&dir, pipeline);
    let spec = std::fs::read_to_string(dir.join(pipeline)).unwrap();
    let spec = spec.replace("  path: ../out/state.db", "  url: ${SLUICE_STATE_URL}");
    assert!(spec.contains("url: ${SLUICE_STATE_URL}"));
    std::fs::write(dir.join(pipeline), spec).unwrap();
    let args = ["run", pipeline, "--summary", "json", "--fixed-clock", CLOCK];
    let command = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.current_dir(&dir).args(args).args(extra).env("SLUICE_STATE_URL", &url);
        c
    };
    let pg_list = |dir: &Path| -> Vec<serde_json::Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir)
            .args(["dlq", "list", pipeline, "--output", "json"])
            .env("SLUICE_STATE_URL", &url)
            .output()
            .unwrap();
        text(&ok(out).stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let mut kills = kill_at_random_moments(
        &dir,
        copies,
        2,
        |resume| {
            let extra: &[&str] = if resume { &["--resume"] } else { &[] };
            command(extra).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        },
        || true,
        || command(&[]).output().unwrap(),
    );
    assert!(kills.kills >= 1, "the kills should land inside the run");
    let last = ok(kills.end(|| command(&["--resume"]).output().unwrap()));
    expect_totals(&summary(&last), copies);
    let rejected = expect_sink_exactly_once(&dir, copies);
    let listed = pg_list(&dir);
    let ids: Vec<String> = listed.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert!(listed.iter().all(|r| r["entries"] == 1));
    expect_dlq_exactly_once(&ids, &rejected, copies);
    let rows = common::pg_rows(&url, "SELECT count(*), count(DISTINCT entry_id) FROM dlq_entries");
    let n = (6 * copies).to_string();
    assert_eq!(rows, vec![vec![Some(n.clone()), Some(n)]]);

    // Replay two records (they fail again) and purge them: recorded in PostgreSQL.
    let dlq = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&dir)
            .arg("dlq")
            .args(extra)
            .env("SLUICE_STATE_URL", &url)
            .output()
            .unwrap();
        ok(out)
    };
    dlq(&["replay", pipeline, &ids[0], &ids[1], "--fixed-clock", CLOCK]);
    assert_eq!(pg_list(&dir).len() as u64, 6 * copies + 2);
    let purged = dlq(&["purge", pipeline, "--replayed"]);
    assert!(text(&purged.stdout).contains("purged 2 records"), "{}", text(&purged.stdout));
    let rows = common::pg_rows(&url, "SELECT count(*) FROM dlq_entries");
    assert_eq!(rows, vec![vec![Some((6 * copies).to_string())]]);
    let console = kills.console + &text(&last.stdout) + &text(&last.stderr);
    assert!(!console.contains("TESTPATIENT") && !console.contains("panicked"), "{console}");
}

#[test]
fn a_postgres_store_of_version_1_gets_the_table_and_version_2() {
    let Some(url) = pg_database("dlq-store-pg-v1") else { return };
    // What Sluice before the DLQ table created (store version 1).
    common::pg_rows(
        &url,
        "CREATE TABLE runs (id BIGSERIAL PRIMARY KEY, run_id TEXT NOT NULL, pipeline TEXT NOT NULL,
             plan_hash TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
             resumes BIGINT NOT NULL DEFAULT 0, inputs TEXT NOT NULL, checkpoint TEXT NOT NULL);
         CREATE TABLE sluice_store (version BIGINT NOT NULL);
         INSERT INTO sluice_store (version) VALUES (1);",
    );
    let dir = workspace("dlq-store-pg-v1");
    dlq_in_store(&dir, QUICKSTART);
    let spec = std::fs::read_to_string(dir.join(QUICKSTART)).unwrap();
    std::fs::write(
        dir.join(QUICKSTART),
        spec.replace("  path: ../out/quickstart/state.db", "  url: ${SLUICE_STATE_URL}"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["run", QUICKSTART, "--fixed-clock", CLOCK])
        .env("SLUICE_STATE_URL", &url)
        .output()
        .unwrap();
    ok(out);
    assert_eq!(common::pg_rows(&url, "SELECT version FROM sluice_store"), vec![vec![Some("2".to_string())]]);
    assert_eq!(common::pg_rows(&url, "SELECT count(*) FROM dlq_entries"), vec![vec![Some("6".to_string())]]);
}
