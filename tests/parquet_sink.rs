//! `parquet` sinks, through the real binary, read back by another implementation of Parquet:
//! pyarrow (Apache Arrow's C++ reader), installed by scripts/setup-parquet-reader into
//! target/venv-parquet. Without python3 or PyPI the test fails (it does not skip): CI has both.
//!
//! The quickstart pipeline gets a `parquet` sink beside its JSON Lines one, partitioned by
//! message type and rolled every 5 rows: `sluice plan` shows the Parquet schema; the files
//! hold the same records as the JSON Lines file, with typed dates, timestamps and booleans;
//! no temporary file is left visible; a second run with the same fixed clock replaces its own
//! files (stale ones of that run id are deleted) and writes byte-identical files. A run
//! killed with `kill -9` several times and resumed leaves each delivered record in exactly one
//! visible file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::checkpoints::{PER_COPY, kill_at_random_moments, setup};
use common::{root, text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";

fn sluice(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().unwrap()
}

/// The pyarrow interpreter, installed if needed; panics (loudly) when it cannot be.
fn pyarrow() -> PathBuf {
    let out = Command::new(root().join("scripts/setup-parquet-reader")).output().unwrap();
    assert!(
        out.status.success(),
        "scripts/setup-parquet-reader failed (needs python3 and PyPI): {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    root().join("target/venv-parquet/bin/python")
}

/// Every file under `dir`, relative to it, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                todo.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

const READER: &str = r#"
import json, sys
import pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format="parquet", partitioning="hive").to_table()
print(json.dumps({"schema": {f.name: str(f.type) for f in t.schema}, "rows": [
    {"id": r["metadata_message_id"], "type": r["metadata_message_type"],
     "dob": r["patient_dob"].isoformat() if r["patient_dob"] else None,
     "received": r["metadata_received_at"].strftime("%Y-%m-%dT%H:%M:%SZ") if r["metadata_received_at"] else None,
     "hipaa": r["compliance_hipaa_compliant"], "identifiers": r["patient_identifiers"]}
    for r in t.to_pylist()]}))
"#;

#[test]
fn parquet_files_hold_the_records_of_the_json_lines_file_typed() {
    let python = pyarrow();
    let ws = workspace("parquet-sink");
    let pipeline = ws.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let sink = "sinks:\n  lake:\n    type: parquet\n    inputs: [mask]\n    path: ../out/quickstart/lake\n    \
                partition_by: metadata.message_type\n    roll: {rows: 5}\n";
    std::fs::write(&pipeline, spec.replacen("\nsinks:\n", &format!("\n{sink}"), 1)).unwrap();

    let plan = sluice(&ws, &["plan", "pipelines/quickstart.yaml"]);
    let shown = text(&plan.stdout);
    assert!(plan.status.success(), "{shown}{}", text(&plan.stderr));
    assert!(shown.contains("files of at most 5 rows, partitioned by metadata_message_type; schema:"), "{shown}");
    assert!(shown.contains("optional int32 patient_dob (DATE);"), "{shown}");
    assert!(shown.contains("optional int64 metadata_received_at (TIMESTAMP(MICROS,true));"), "{shown}");

    let lake = ws.join("out/quickstart/lake");
    let run = |ws: &Path| {
        let out = sluice(ws, &["run", "--fixed-clock", CLOCK, "pipelines/quickstart.yaml"]);
        assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    };
    let summary = run(&ws);
    assert!(summary.contains("sink lake: 39 records written"), "{summary}");
    let first = files(&lake);
    assert!(first.keys().all(|f| f.ends_with(".parquet") && !f.contains("/.")), "{:?}", first.keys());
    assert!(first.keys().any(|f| f.starts_with("metadata_message_type=ORU%5ER01/")), "{:?}", first.keys());
    // 39 records in 5-row files, per message type: more files than partitions.
    let partitions: std::collections::BTreeSet<&str> = first.keys().filter_map(|f| f.split('/').next()).collect();
    assert!(first.len() > partitions.len(), "{:?}", first.keys());

    let out = Command::new(&python).arg("-c").arg(READER).arg(&lake).output().unwrap();
    assert!(out.status.success(), "pyarrow could not read the files: {}", text(&out.stderr));
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let schema = &read["schema"];
    assert_eq!(schema["patient_dob"], "date32[day]");
    assert_eq!(schema["metadata_received_at"], "timestamp[us, tz=UTC]");
    assert_eq!(schema["compliance_hipaa_compliant"], "bool");
    assert_eq!(schema["sluice_record_id"], "string");
    let mut rows: Vec<serde_json::Value> = read["rows"].as_array().unwrap().clone();
    rows.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_string());

    let jsonl = std::fs::read_to_string(ws.join("out/quickstart/patient-events.jsonl")).unwrap();
    let mut expected: Vec<serde_json::Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    expected.sort_by_key(|r| r["metadata"]["message_id"].as_str().unwrap_or_default().to_string());
    assert_eq!(rows.len(), expected.len());
    assert_eq!(rows.len(), 39);
    for (got, want) in rows.iter().zip(&expected) {
        assert_eq!(got["id"], want["metadata"]["message_id"]);
        assert_eq!(got["type"], want["metadata"]["message_type"]);
        assert_eq!(got["dob"], want["patient"]["dob"]);
        assert_eq!(got["received"], want["metadata"]["received_at"]);
        assert_eq!(got["hipaa"], want["compliance"]["hipaa_compliant"]);
        let ids: serde_json::Value = serde_json::from_str(got["identifiers"].as_str().unwrap()).unwrap();
        assert_eq!(ids, want["patient"]["identifiers"]);
    }

    // A second run with the same clock: same run id, so it deletes its leftovers (a temporary
    // file of a crash, a finished file no longer written) and writes the same bytes.
    let (name, _) = first.iter().next().unwrap();
    let run_id = Path::new(name).file_name().unwrap().to_string_lossy().split('-').next().unwrap().to_string();
    let stale = lake.join(format!("{run_id}-000000009999.parquet"));
    let tmp = lake.join(format!(".{run_id}-000000000001.parquet.tmp"));
    std::fs::write(&stale, b"stale").unwrap();
    std::fs::write(&tmp, b"half").unwrap();
    run(&ws);
    assert_eq!(files(&lake), first, "a rerun with the same clock writes the same files, and only them");
}

/// Per file (in name order), the compressed bytes of each row group.
const GROUP_SIZES: &str = r#"
import glob, json, sys
import pyarrow.parquet as pq
out = []
for p in sorted(glob.glob(sys.argv[1] + "/*.parquet")):
    m = pq.ParquetFile(p).metadata
    out.append([sum(m.row_group(g).column(c).total_compressed_size for c in range(m.num_columns))
                for g in range(m.num_row_groups)])
print(json.dumps(out))
"#;

const IDS: &str = r#"
import sys
import pyarrow.dataset as ds
t = ds.dataset(sys.argv[1], format="parquet").to_table(columns=["sluice_record_id"])
print("\n".join(t.column("sluice_record_id").to_pylist()))
"#;

#[test]
fn killed_and_resumed_runs_leave_each_record_in_one_file() {
    let python = pyarrow();
    let copies = 300u64;
    let dir = setup("parquet-kill", copies as usize, "50ms");
    let pipeline = dir.join("pipelines/resume.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let sink = "sinks:\n  lake:\n    type: parquet\n    inputs: [mask]\n    path: ../out/lake\n    roll: {rows: 700}\n";
    std::fs::write(&pipeline, spec.replacen("\nsinks:\n", &format!("\n{sink}"), 1)).unwrap();
    let command = |resume: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.current_dir(&*dir).args(["run", "pipelines/resume.yaml", "--fixed-clock", CLOCK]);
        if resume {
            c.arg("--resume");
        }
        c
    };
    let kills = kill_at_random_moments(
        &dir,
        copies,
        3,
        |resume| {
            command(resume).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap()
        },
        || true,
        || command(false).output().unwrap(),
    );
    let last = command(true).output().unwrap();
    assert!(last.status.success(), "{}{}", text(&last.stdout), text(&last.stderr));
    println!("killed {} times", kills.kills);

    let lake = dir.join("out/lake");
    assert!(files(&lake).keys().all(|f| f.ends_with(".parquet") && !f.starts_with('.')), "temporary files left");
    let out = Command::new(&python).arg("-c").arg(IDS).arg(&lake).output().unwrap();
    assert!(out.status.success(), "pyarrow could not read the files: {}", text(&out.stderr));
    let ids: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a record is in two files");
    assert_eq!(ids.len() as u64, PER_COPY.1 * copies, "every delivered record is in a file");
    // The same records as the JSON Lines sink (its lines are cut back to each checkpoint).
    let jsonl = std::fs::read_to_string(dir.join("out/patient-events.jsonl")).unwrap();
    let from_jsonl: std::collections::BTreeSet<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["compliance"]["audit_log_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(unique.into_iter().cloned().collect::<std::collections::BTreeSet<String>>(), from_jsonl);
}

#[test]
fn files_roll_by_bytes_written_and_together_hold_every_record() {
    let python = pyarrow();
    let copies = 60;
    let dir = setup("parquet-roll-bytes", copies, "10s");
    let limit = 50_000u64;
    let pipeline = dir.join("pipelines/resume.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let sink = format!(
        "sinks:\n  lake:\n    type: parquet\n    inputs: [mask]\n    path: ../out/lake\n    roll: {{bytes: {limit}}}\n"
    );
    let start = spec.find("sinks:").unwrap();
    let end = spec.find("dlq:").unwrap();
    std::fs::write(&pipeline, format!("{}{sink}{}", &spec[..start], &spec[end..])).unwrap();

    let plan = sluice(&dir, &["plan", "pipelines/resume.yaml"]);
    assert!(
        text(&plan.stdout).contains(&format!("files of at most 1000000 rows or {limit} bytes; schema:")),
        "{}{}",
        text(&plan.stdout),
        text(&plan.stderr)
    );
    let out = sluice(&dir, &["run", "--fixed-clock", CLOCK, "pipelines/resume.yaml"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    let lake = dir.join("out/lake");
    let written = files(&lake);
    assert!(written.len() > 2, "several files: {:?}", written.keys());
    // Each file's column data (its row groups, compressed, as pyarrow reports them): every
    // file but the last was closed by the first row group that took it to the limit.
    let sizes = Command::new(&python).arg("-c").arg(GROUP_SIZES).arg(&lake).output().unwrap();
    assert!(sizes.status.success(), "pyarrow could not read the files: {}", text(&sizes.stderr));
    let sizes: Vec<Vec<u64>> = serde_json::from_slice(&sizes.stdout).unwrap();
    assert_eq!(sizes.len(), written.len());
    for (i, groups) in sizes.iter().enumerate() {
        let data: u64 = groups.iter().sum();
        let before_last: u64 = data - groups.last().copied().unwrap_or(0);
        assert!(before_last < limit, "file {i} went on past the limit: {groups:?}");
        if i + 1 < sizes.len() {
            assert!(data >= limit, "file {i} closed before the limit: {groups:?}");
        }
    }
    let ids = Command::new(&python).arg("-c").arg(IDS).arg(&lake).output().unwrap();
    assert!(ids.status.success(), "pyarrow could not read the files: {}", text(&ids.stderr));
    let ids: std::collections::BTreeSet<String> = text(&ids.stdout).lines().map(str::to_string).collect();
    assert_eq!(ids.len() as u64, PER_COPY.1 * copies as u64, "every delivered record once");
}
