//! `postgres` sinks, through the real binary, against the real server scripts/test starts
//! (scripts/start-postgres; `SLUICE_TEST_PG_URL`): the table is created from the output
//! schema (and `sluice plan` shows its DDL), every delivered record is a row; `kill -9` then
//! `--resume` leaves each record in the table exactly once; `upsert` keeps one row per key; an
//! older table gets its missing columns; rows the database refuses go to the DLQ with a reason
//! that holds no data; an unreachable server, a missing privilege and a column of another type
//! stop the run with their codes. The URL's password and the data's PHI appear in no output.
//! Each test has its own database. Without `SLUICE_TEST_PG_URL` they print SKIPPED and pass.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::checkpoints::{PER_COPY, error_code, expect_exactly_once, expect_totals, file_len, setup, summary};
use common::{pg_database, pg_rows, phi_values, text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";
/// Written into the URL the runs get; trust authentication ignores it, and no output may show it.
const PASSWORD: &str = "sinkS3cretPW";

fn with_password(url: &str, user: &str) -> String {
    url.replacen("://sluice@", &format!("://{user}:{PASSWORD}@"), 1)
}

fn sluice(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args).env("SLUICE_SINK_URL", url);
    c
}

/// Adds a `postgres` sink `warehouse` (fed by the `mask` stage, with `extra` keys) to the
/// pipeline `pipeline` of `dir`.
fn add_sink(dir: &Path, pipeline: &str, extra: &str) {
    let path = dir.join("pipelines").join(pipeline);
    let spec = std::fs::read_to_string(&path).unwrap();
    let sink =
        format!("sinks:\n  warehouse:\n    type: postgres\n    inputs: [mask]\n    url: ${{SLUICE_SINK_URL}}\n{extra}");
    assert!(spec.contains("\nsinks:\n"));
    std::fs::write(&path, spec.replacen("\nsinks:\n", &format!("\n{sink}"), 1)).unwrap();
}

/// Adds a `csv` sink `table_file` (fed by the `mask` stage) writing `path`.
fn add_csv_sink(dir: &Path, pipeline: &str, path: &str) {
    let file = dir.join("pipelines").join(pipeline);
    let spec = std::fs::read_to_string(&file).unwrap();
    let sink = format!("sinks:\n  table_file:\n    type: csv\n    inputs: [mask]\n    path: {path}\n");
    std::fs::write(&file, spec.replacen("\nsinks:\n", &format!("\n{sink}"), 1)).unwrap();
}

/// Loads a CSV file into a new table `name` shaped like `like`, with PostgreSQL's own CSV
/// reader (`COPY ... CSV HEADER`): another implementation of RFC 4180 than the sink's.
fn copy_csv(url: &str, csv: &Path, name: &str, like: &str) {
    use std::io::Write;
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute(&format!("CREATE TABLE {name} (LIKE {like})")).unwrap();
    let mut w = client.copy_in(&format!("COPY {name} FROM STDIN WITH (FORMAT csv, HEADER true)")).unwrap();
    w.write_all(&std::fs::read(csv).unwrap()).unwrap();
    w.finish().unwrap();
}

/// Rows of `a` not in `b` and of `b` not in `a`, counted with their repeats.
fn differences(url: &str, a: &str, b: &str) -> Vec<Vec<Option<String>>> {
    pg_rows(
        url,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) x), \
                    (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) y)"
        ),
    )
}

fn no_secret_and_no_phi(dir: &Path, what: &str, out: &Output) {
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains(PASSWORD), "{what} shows the password: {all}");
    for v in phi_values(&[dir.join("examples/hl7/feed-2024-01-15.hl7"), dir.join("examples/hl7/rejects.hl7")]) {
        assert!(!all.contains(&v), "{what} shows `{v}`: {all}");
    }
}

/// The ids of the records the audit log says were delivered.
fn delivered_ids(audit: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "delivered")
        .map(|e| format!("{}-{}", e["run_id"].as_str().unwrap(), e["seq"]))
        .collect()
}

fn table_ids(url: &str, table: &str) -> Vec<String> {
    pg_rows(url, &format!("SELECT sluice_record_id FROM {table} ORDER BY sluice_record_id"))
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
}

#[test]
fn the_quick_start_into_a_table_with_its_ddl_in_the_plan() {
    let Some(url) = pg_database("sink-quickstart") else { return };
    let dir = workspace("pg-sink-quickstart");
    add_sink(&dir, "quickstart.yaml", "    write: append\n");
    add_csv_sink(&dir, "quickstart.yaml", "../out/quickstart/patient-events.csv");
    let url = with_password(&url, "sluice");
    let p = "pipelines/quickstart.yaml";
    let plan = sluice(&dir, &url, &["plan", p]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let shown = text(&plan.stdout);
    assert!(
        shown.contains(
            "writes table patient_event_v1 at ${SLUICE_SINK_URL} (postgres, append, idempotent by sluice_record_id"
        ),
        "{shown}"
    );
    for ddl in [
        "CREATE TABLE IF NOT EXISTS \"patient_event_v1\" (",
        "\"sluice_record_id\" text NOT NULL,",
        "\"metadata_received_at\" timestamptz,",
        "\"patient_dob\" date,",
        "\"patient_identifiers\" jsonb,",
        "\"compliance_pii_masked\" boolean,",
        "UNIQUE (\"sluice_record_id\")",
    ] {
        assert!(shown.contains(ddl), "the plan shows `{ddl}`: {shown}");
    }
    no_secret_and_no_phi(&dir, "the plan", &plan);

    let out = sluice(&dir, &url, &["run", p, "--summary", "json", "--fixed-clock", CLOCK]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    no_secret_and_no_phi(&dir, "the run", &out);
    let s = summary(&out);
    let delivered = delivered_ids(&dir.join("out/quickstart/audit.jsonl"));
    assert_eq!(s["delivered"].as_u64(), Some(delivered.len() as u64));
    let ids = table_ids(&url, "patient_event_v1");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), delivered, "one row per delivered record");
    assert_eq!(ids.len(), delivered.len());

    // The row holds what the JSON Lines sink wrote, typed: compare one record's fields.
    let line = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let id = first["compliance"]["audit_log_id"].as_str().unwrap();
    let row = pg_rows(
        &url,
        &format!(
            "SELECT patient_id, patient_dob::text, metadata_validation_status, compliance_pii_masked::text, \
             jsonb_array_length(patient_identifiers)::text FROM patient_event_v1 WHERE sluice_record_id = '{id}'"
        ),
    );
    let field = |v: &serde_json::Value| v.as_str().map(str::to_string);
    assert_eq!(
        row,
        vec![vec![
            field(&first["patient"]["id"]),
            field(&first["patient"]["dob"]),
            field(&first["metadata"]["validation_status"]),
            Some(first["compliance"]["pii_masked"].to_string()),
            Some(first["patient"]["identifiers"].as_array().unwrap().len().to_string()),
        ]]
    );

    // The CSV sink wrote the same rows: read back by PostgreSQL's CSV reader, they are the
    // table's, value for value (nulls, empty texts, quotes, lists as JSON).
    let csv = dir.join("out/quickstart/patient-events.csv");
    let header = std::fs::read_to_string(&csv).unwrap().lines().next().unwrap().to_string();
    assert!(header.starts_with("sluice_record_id,metadata_source_system,"), "{header}");
    copy_csv(&url, &csv, "from_csv", "patient_event_v1");
    assert_eq!(differences(&url, "patient_event_v1", "from_csv"), vec![vec![Some("0".into()), Some("0".into())]]);
}

#[test]
fn kill_9_then_resume_leaves_every_record_in_the_table_exactly_once() {
    let Some(url) = pg_database("sink-resume-kill") else { return };
    let url = with_password(&url, "sluice");
    let copies = 1500u64;
    let dir = setup("pg-sink-resume-kill", copies as usize, "100ms");
    add_sink(&dir, "resume.yaml", "    write: append\n");
    add_csv_sink(&dir, "resume.yaml", "../out/patient-events.csv");
    let audit = dir.join("out/audit.jsonl");
    let args = ["run", "pipelines/resume.yaml", "--summary", "json", "--fixed-clock", CLOCK];
    let spawn = |extra: &[&str]| -> Child {
        sluice(&dir, &url, &args).args(extra).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    for (i, bytes) in [2_000_000u64, 6_000_000].into_iter().enumerate() {
        let mut child = spawn(if i == 0 { &[] } else { &["--resume"] });
        let started = Instant::now();
        while file_len(&audit) < bytes {
            assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be stopped");
            assert!(started.elapsed() < Duration::from_secs(300), "no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!text(&out.stderr).contains(PASSWORD));
    }
    let rows_before = pg_rows(&url, "SELECT count(*) FROM patient_event_v1");
    let last = sluice(&dir, &url, &args).arg("--resume").output().unwrap();
    assert!(last.status.success(), "{}", text(&last.stderr));
    no_secret_and_no_phi(&dir, "the last run", &last);
    let s = summary(&last);
    expect_totals(&s, copies);
    expect_exactly_once(&dir, copies);
    let ids = table_ids(&url, "patient_event_v1");
    let delivered = delivered_ids(&audit);
    assert_eq!(
        ids.len() as u64,
        PER_COPY.1 * copies,
        "one row per delivered record (before the last run: {rows_before:?})"
    );
    assert_eq!(ids.into_iter().collect::<BTreeSet<_>>(), delivered, "the rows are the audit's delivered records");
    // The CSV file, cut back and written on by each resume, holds the same rows, under one
    // header (a second header line would not load: `metadata_received_at` is no timestamp).
    copy_csv(&url, &dir.join("out/patient-events.csv"), "from_csv", "patient_event_v1");
    assert_eq!(differences(&url, "patient_event_v1", "from_csv"), vec![vec![Some("0".into()), Some("0".into())]]);
}

#[test]
fn upsert_keeps_one_row_per_key_across_runs() {
    let Some(url) = pg_database("sink-upsert") else { return };
    let url = with_password(&url, "sluice");
    let dir = workspace("pg-sink-upsert");
    add_sink(&dir, "quickstart.yaml", "    write: upsert\n    key: [metadata.message_type]\n    table: by_type\n");
    let p = "pipelines/quickstart.yaml";
    for _ in 0..2 {
        let out = sluice(&dir, &url, &["run", p, "--summary", "json", "--fixed-clock", CLOCK]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // What the JSON Lines sink of the second run wrote: the last record of each type wins.
    let lines = std::fs::read_to_string(dir.join("out/quickstart/patient-events.jsonl")).unwrap();
    let mut last = std::collections::BTreeMap::new();
    for l in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        last.insert(
            v["metadata"]["message_type"].as_str().unwrap().to_string(),
            v["compliance"]["audit_log_id"].as_str().unwrap().to_string(),
        );
    }
    assert!(last.len() < lines.lines().count(), "the examples repeat a message type");
    let rows = pg_rows(&url, "SELECT metadata_message_type, sluice_record_id FROM by_type");
    let rows: std::collections::BTreeMap<String, String> =
        rows.into_iter().map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap())).collect();
    assert_eq!(rows, last, "one row per message type, from its last record of the last run");
    let indexes = pg_rows(&url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'by_type'");
    assert_eq!(indexes.len(), 1, "the primary key only, not a second index by the second run: {indexes:?}");
}

#[test]
fn an_older_table_gets_its_columns_and_refused_rows_go_to_the_dlq() {
    let Some(url) = pg_database("sink-refused") else { return };
    let url = with_password(&url, "sluice");
    let dir = workspace("pg-sink-refused");
    add_sink(&dir, "quickstart.yaml", "    write: append\n");
    // A table made by someone else, with two of the columns (one a `varchar`).
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin.batch_execute("CREATE TABLE patient_event_v1 (sluice_record_id text, patient_id varchar(40))").unwrap();
    let p = "pipelines/quickstart.yaml";
    let first = sluice(&dir, &url, &["run", p, "--summary", "json", "--fixed-clock", CLOCK]).output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let all = summary(&first)["delivered"].as_u64().unwrap();
    let females: u64 = pg_rows(&url, "SELECT count(*) FROM patient_event_v1 WHERE patient_gender = 'F'")[0][0]
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(females > 0 && females < all, "the examples have women and men: {females} of {all}");
    // Then a rule the data breaks.
    admin
        .batch_execute(
            "TRUNCATE patient_event_v1;
             ALTER TABLE patient_event_v1 ADD CONSTRAINT no_female CHECK (patient_gender IS DISTINCT FROM 'F')",
        )
        .unwrap();
    let second = sluice(&dir, &url, &["run", p, "--summary", "json", "--fixed-clock", CLOCK]).output().unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    no_secret_and_no_phi(&dir, "the run", &second);
    let s = summary(&second);
    let dlq_before = summary(&first)["dlq"].as_u64().unwrap();
    assert_eq!(s["delivered"].as_u64(), Some(all - females), "{s}");
    assert_eq!(s["dlq"].as_u64(), Some(dlq_before + females), "{s}");
    assert_eq!(s["balanced"], true);
    let rows = pg_rows(&url, "SELECT count(*) FROM patient_event_v1");
    assert_eq!(rows[0][0].as_deref(), Some((all - females).to_string().as_str()));
    let indexes = pg_rows(&url, "SELECT indexname FROM pg_indexes WHERE tablename = 'patient_event_v1'");
    assert_eq!(indexes, vec![vec![Some("patient_event_v1_sluice_conflict".to_string())]], "made once, for ON CONFLICT");
    // The DLQ entries say why, by code, SQLSTATE and constraint, without a value.
    let dlq = std::fs::read_to_string(dir.join("out/quickstart/dlq.jsonl")).unwrap();
    let refused: Vec<serde_json::Value> = dlq
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["code"] == "RT607")
        .collect();
    assert_eq!(refused.len() as u64, females);
    for e in &refused {
        assert_eq!(e["stage"], "warehouse", "{e}");
        assert_eq!(
            e["reason"],
            "sink `warehouse`: PostgreSQL refused the row for table `patient_event_v1`: SQLSTATE 23514 \
             (check_violation), constraint `no_female`",
            "{e}"
        );
    }
    // The refused records are whole in the DLQ: fixed table, replayed, delivered.
    admin.batch_execute("ALTER TABLE patient_event_v1 DROP CONSTRAINT no_female").unwrap();
    let replay =
        sluice(&dir, &url, &["dlq", "replay", p, "--summary", "json", "--fixed-clock", CLOCK]).output().unwrap();
    assert!(replay.status.success(), "{}", text(&replay.stderr));
    let r: serde_json::Value = serde_json::from_str(text(&replay.stdout).trim()).unwrap();
    assert_eq!(r["delivered"].as_u64(), Some(females), "{r}");
    let rows = pg_rows(&url, "SELECT count(*) FROM patient_event_v1");
    assert_eq!(rows[0][0].as_deref(), Some(all.to_string().as_str()));
}

#[test]
fn unreachable_server_missing_privilege_and_column_type_stop_the_run_with_their_codes() {
    let Some(url) = pg_database("sink-errors") else { return };
    let dir = workspace("pg-sink-errors");
    add_sink(&dir, "quickstart.yaml", "    write: append\n");
    let p = "pipelines/quickstart.yaml";
    // A run that stops before it starts writing stays in the state store as failed: the next
    // one starts over.
    let run = |url: &str| sluice(&dir, url, &["run", p, "--restart", "--fixed-clock", CLOCK]).output().unwrap();

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = format!("postgres://sluice:{PASSWORD}@127.0.0.1:{port}/postgres?sslmode=disable");
    let out = run(&closed);
    assert_eq!(error_code(&out), "RT604", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("postgres sink `warehouse` cannot connect to ${SLUICE_SINK_URL}"));
    no_secret_and_no_phi(&dir, "an unreachable server", &out);

    // A user who may connect but not create tables.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE sink_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        )
        .unwrap();
    let out = run(&with_password(&url, "sink_reader"));
    assert_eq!(error_code(&out), "RT605", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("may not create the table (table `patient_event_v1`)"), "{}", text(&out.stderr));
    no_secret_and_no_phi(&dir, "a missing privilege", &out);

    // A table whose date column is text.
    admin.batch_execute("CREATE TABLE patient_event_v1 (sluice_record_id text, patient_dob text)").unwrap();
    let out = run(&with_password(&url, "sluice"));
    assert_eq!(error_code(&out), "RT606", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(
            "column `patient_dob` of table `patient_event_v1` is `text`, and the records' `patient.dob` needs `date`"
        ),
        "{}",
        text(&out.stderr)
    );
    no_secret_and_no_phi(&dir, "a column of another type", &out);
}
