//! `kafka` sources and sinks through the real binary, against a real Kafka-protocol broker:
//! tansu 0.6.0 (memory storage), built once by `scripts/setup-tansu` into a cache and started
//! here on 127.0.0.1 on a free port, one broker per test. No broker is a failure, never a skip.
//!
//! - A source delivers every message once through the same source step as files (parse,
//!   profile, DLQ), a message without a value goes to the DLQ (RT129), the group's offsets
//!   end at the topic's end (a second run reads nothing), and a `kafka` sink in the same
//!   pipeline carries each record on with its source message's key and headers.
//! - `kill -9` mid-way, then a new run: every record is in the PostgreSQL upsert table exactly
//!   once and in the JSON Lines sink at least once (at least once end to end).
//! - Scale-out: two `sluice run` processes in one consumer group share a 3-partition topic;
//!   one is killed; the other takes its partitions; the table holds exactly the expected rows.
//! - A `kafka` sink fed by files: its topic, read back, holds each delivered record as the
//!   JSON a `jsonl` sink writes, keyed by the declared field.
//! - The scale-out proof, chained: HL7 v2 files in an S3-compatible store (moto) -> a relaying
//!   run -> a 3-partition topic -> two instances in one group, one killed mid-way ->
//!   PostgreSQL, which then holds exactly the rows one local run of the same files delivers.
//! - Unreachable brokers (RT125) and a missing topic (RT126) stop the run with their codes.
//!
//! No output of any run shows a patient's name or SSN from the data.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::checkpoints::{PER_COPY, error_code, summary};
use common::kafka::{Msg, Tansu, example_messages, kafka_pipeline, produce, read_topic};
use common::live::{assert_no_phi, finish_payloads_run, lines, message_ids, payloads, payloads_pipeline, wait_until};
use common::moto::{self, KEY_ID, SECRET, create_bucket, put, store_block};
use common::{Running, free_port, messages, pg_database, pg_rows, root, text, workspace};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The offsets group `group` committed on `topic`'s partitions.
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition(topic, p);
    }
    let got = consumer.committed_offsets(list, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

const JSONL_SINK: &str =
    "  patient_events:\n    type: jsonl\n    inputs: [mask]\n    path: ../out/patient-events.jsonl\n";

fn upsert_sink() -> String {
    "  warehouse:\n    type: postgres\n    inputs: [mask]\n    url: ${SLUICE_SINK_URL}\n    write: upsert\n    key: [metadata.message_id]\n    table: kafka_events\n".into()
}

fn sluice(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args);
    c
}

fn start_run(dir: &Path, pg: Option<&str>) -> Running {
    let mut c = sluice(dir, &["run", "pipelines/kafka.yaml", "--summary", "json", "--log-level", "info"]);
    if let Some(url) = pg {
        c.env("SLUICE_SINK_URL", url);
    }
    Running::spawn(&mut c)
}

#[test]
fn a_kafka_source_delivers_every_message_once_with_its_key_and_headers_and_commits_its_offsets() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("adt", 3);
    tansu.create_topic("adt-out", 3);
    let mut input = example_messages(1);
    input.push(Msg { key: "tombstone".into(), value: None, headers: vec![] });
    produce(&brokers, "adt", &input);
    let dir = workspace("kafka-source");
    let relay =
        format!("  relay:\n    type: kafka\n    inputs: [mask]\n    brokers: [{brokers}]\n    topic: adt-out\n");
    kafka_pipeline(&dir, &brokers, "adt", "sluice-adt", &format!("{JSONL_SINK}{relay}"));

    let plan = sluice(&dir, &["plan", "pipelines/kafka.yaml"]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(plan.contains(&format!("kafka consume adt from {brokers} as group sluice-adt")), "{plan}");
    assert!(plan.contains("produces to topic adt-out"), "{plan}");

    let records = input.len();
    let mut run = start_run(&dir, None);
    let audit = dir.join("out/audit.jsonl");
    // run_started, then one audit entry per record.
    wait_until(&mut run, "every record in the audit log", Duration::from_secs(90), || lines(&audit).len() > records);
    let (code, s, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Like an MLLP listener's "listening on", the CLI says what the source consumes.
    assert!(
        stderr.contains("source hl7_files: consuming adt as group sluice-adt (Kafka); stop with Ctrl-C or SIGTERM"),
        "{stderr}"
    );
    let (n, delivered, dlq, filtered) = PER_COPY;
    assert_eq!(s["records_in"], n + 1, "{s}");
    assert_eq!(s["delivered"], delivered, "{s}");
    assert_eq!(s["dlq"], dlq + 1, "{s}: the rejected examples and the tombstone");
    assert_eq!(s["filtered"], filtered, "{s}");
    assert_eq!(s["balanced"], true);
    let ids = message_ids(&dir.join("out/patient-events.jsonl"));
    assert_eq!(ids.len() as u64, delivered);
    assert!(ids.values().all(|c| *c == 1), "each record once: {ids:?}");
    let dlq_text = std::fs::read_to_string(dir.join("out/dlq.jsonl")).unwrap();
    assert!(dlq_text.contains("RT129"), "the tombstone went to the DLQ with RT129");

    // Offsets: committed at the end of every partition, so a second run reads nothing.
    let offsets = committed(&brokers, "sluice-adt", "adt", 3);
    assert_eq!(offsets.iter().sum::<i64>(), records as i64, "{offsets:?}");
    let mut again = start_run(&dir, None);
    again.wait_for("the partitions assigned", |l| l.contains("kafka partitions assigned").then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    let (code, s2, _, stderr2) = again.stop("INT");
    assert_eq!(code, Some(0), "{stderr2}");
    assert_eq!(s2["records_in"], 0, "nothing read again: {s2}");

    // The relay sink: each delivered record, as the jsonl sink wrote it, with the key and the
    // headers of the message it came from.
    let by_id: BTreeMap<String, &Msg> = input
        .iter()
        .filter_map(|m| {
            let v = text(m.value.as_ref()?);
            let msh = v.split('\r').next()?;
            Some((msh.split('|').nth(9)?.to_string(), m))
        })
        .collect();
    let relayed = read_topic(&brokers, "adt-out", delivered as usize);
    assert_eq!(relayed.len() as u64, delivered);
    let jsonl: BTreeSet<String> = lines(&dir.join("out/patient-events.jsonl")).into_iter().collect();
    for (key, value, headers) in &relayed {
        assert!(jsonl.contains(value), "the relayed message is the jsonl sink's line");
        let doc: serde_json::Value = serde_json::from_str(value).unwrap();
        let source = by_id[doc["metadata"]["message_id"].as_str().unwrap()];
        assert_eq!(key.as_deref(), Some(source.key.as_str()), "the source message's key");
        assert_eq!(headers, &source.headers, "the source message's headers, in order");
    }

    // The DLQ keeps each record's key and headers, sealed: no key (a patient id) in clear.
    let dlq_path = dir.join("out/dlq.jsonl");
    let dlq_ids = |path: &Path| -> BTreeSet<String> {
        lines(path).iter().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string()).collect()
    };
    let first_ids = dlq_ids(&dlq_path);
    assert_eq!(first_ids.len() as u64, dlq + 1);
    let dlq_text = std::fs::read_to_string(&dlq_path).unwrap();
    for m in input.iter().filter(|m| m.key.len() > 3) {
        assert!(!dlq_text.contains(&format!("\"{}\"", m.key)), "a message key in clear in the DLQ");
    }
    // Replayed (the rules reject them again), each record comes back with the key and headers
    // it came with: its new entry holds them. A replay is recorded in a state store.
    let spec_path = dir.join("pipelines/kafka.yaml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    assert!(!spec.contains("\nstate:"), "{spec}");
    std::fs::write(&spec_path, format!("{}\nstate:\n  path: ../out/state.db\n", spec.trim_end())).unwrap();
    let replay = sluice(&dir, &["dlq", "replay", "pipelines/kafka.yaml", "--summary", "json"]).output().unwrap();
    assert!(replay.status.success(), "{}{}", text(&replay.stdout), text(&replay.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&replay.stdout).trim()).unwrap();
    assert_eq!((summary["replayed"].as_u64(), summary["dlq"].as_u64()), (Some(dlq + 1), Some(dlq + 1)), "{summary}");
    let new_ids: Vec<String> = dlq_ids(&dlq_path).difference(&first_ids).cloned().collect();
    assert_eq!(new_ids.len() as u64, dlq + 1);
    let mut checked = BTreeSet::new();
    for id in &new_ids {
        let id = id.trim_matches('"');
        let show = sluice(&dir, &["dlq", "show", "pipelines/kafka.yaml", id, "--raw"]).output().unwrap();
        assert!(show.status.success(), "{}", text(&show.stderr));
        let stdout = text(&show.stdout);
        let entry =
            serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>().next().unwrap().unwrap();
        let envelope = &entry["envelope"];
        let key = envelope["key"].as_str().unwrap_or_else(|| panic!("no key kept: {entry}"));
        let raw = entry["raw"].as_str().unwrap();
        // Each message's value is its own (a unique MSH-10), the tombstone's empty.
        let source = input.iter().find(|m| m.value.as_deref().unwrap_or_default() == raw.as_bytes()).unwrap();
        assert_eq!(key, source.key, "the key of the message the record came from");
        let headers: Vec<(String, String)> = envelope["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(headers, source.headers, "the headers of message {key}, in order");
        checked.insert(key.to_string());
    }
    assert!(checked.contains("tombstone"), "{checked:?}");
    assert_no_phi(&[&stdout, &stderr, &stderr2]);
}

/// Runs in `dir` until the JSON Lines sink holds `at_least` lines, then `kill -9`.
fn kill_when(dir: &Path, pg: &str, at_least: usize) {
    let mut run = start_run(dir, Some(pg));
    let sink = dir.join("out/patient-events.jsonl");
    wait_until(&mut run, "records before the kill", Duration::from_secs(600), || lines(&sink).len() >= at_least);
    run.child.kill().unwrap();
    run.child.wait().unwrap();
}

#[test]
fn kill_9_mid_way_and_a_new_run_lose_nothing_and_the_upsert_table_holds_each_record_once() {
    let Some(pg) = pg_database("kafka-kill") else { return };
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("adt", 3);
    let copies = 30;
    let input = example_messages(copies);
    produce(&brokers, "adt", &input);
    let dir = workspace("kafka-kill");
    kafka_pipeline(&dir, &brokers, "adt", "sluice-kill", &format!("{JSONL_SINK}{}", upsert_sink()));
    let delivered = PER_COPY.1 as usize * copies;

    kill_when(&dir, &pg, delivered / 3);
    let mut run = start_run(&dir, Some(&pg));
    let sink = dir.join("out/patient-events.jsonl");
    wait_until(&mut run, "every record delivered", Duration::from_secs(600), || message_ids(&sink).len() >= delivered);
    let (code, _, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");

    let ids = message_ids(&sink);
    assert_eq!(ids.len(), delivered, "every delivered record is in the jsonl sink");
    let twice = ids.values().filter(|c| **c > 1).count();
    // At least once: only records after the last commit before the kill come again.
    assert!(twice < delivered, "{twice} records twice");
    let rows = pg_rows(&pg, "SELECT metadata_message_id FROM kafka_events");
    let in_table: BTreeSet<String> = rows.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(in_table.len(), delivered, "one row per record in the upsert table");
    assert_eq!(in_table, ids.keys().cloned().collect::<BTreeSet<_>>());
    let count = pg_rows(&pg, "SELECT count(*) FROM kafka_events");
    assert_eq!(count[0][0].as_deref(), Some(delivered.to_string().as_str()));
    let offsets = committed(&brokers, "sluice-kill", "adt", 3);
    assert_eq!(offsets.iter().sum::<i64>(), input.len() as i64, "all committed after the drain: {offsets:?}");
    assert_no_phi(&[&stdout, &stderr]);
}

/// Two instances of the quick start fed by `adt` in consumer group `group`, upserting into one
/// table, each in its own directory (its own DLQ and audit log), both started and given their
/// share of the partitions.
fn two_instances(name: &str, brokers: &str, group: &str, pg: &str) -> ([common::Workspace; 2], [Running; 2]) {
    let dirs = [workspace(&format!("{name}-a")), workspace(&format!("{name}-b"))];
    for dir in &dirs {
        kafka_pipeline(dir, brokers, "adt", group, &format!("{JSONL_SINK}{}", upsert_sink()));
    }
    let mut first = start_run(&dirs[0], Some(pg));
    first.wait_for("the first instance's partitions", |l| l.contains("kafka partitions assigned").then_some(()));
    let mut second = start_run(&dirs[1], Some(pg));
    second.wait_for("the second instance's partitions", |l| l.contains("kafka partitions assigned").then_some(()));
    // Both members have their share before the input arrives: the second member's join makes
    // the group rebalance, and the first logs its new (smaller) assignment.
    first.wait_for("the first instance's share after the rebalance", |l| {
        l.contains("kafka partitions assigned").then_some(())
    });
    (dirs, [first, second])
}

/// Kills `run` (`kill -9`) once its JSON Lines sink in `dir` holds 50 records.
fn kill_after_its_first_records(mut run: Running, dir: &Path) {
    let sink = dir.join("out/patient-events.jsonl");
    wait_until(&mut run, "the instance's first records", Duration::from_secs(600), || lines(&sink).len() >= 50);
    run.child.kill().unwrap();
    run.child.wait().unwrap();
}

#[test]
fn two_instances_share_a_topic_and_when_one_is_killed_the_other_takes_its_partitions() {
    let Some(pg) = pg_database("kafka-scale") else { return };
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("adt", 3);
    let copies = 40;
    let input = example_messages(copies);
    let delivered = PER_COPY.1 as usize * copies;
    let ([a, b], [mut first, second]) = two_instances("kafka-scale", &brokers, "sluice-scale", &pg);
    produce(&brokers, "adt", &input);
    kill_after_its_first_records(second, &b);
    let sink_b = b.join("out/patient-events.jsonl");
    let by_b = message_ids(&sink_b).len();

    let count = || pg_rows(&pg, "SELECT count(*) FROM kafka_events")[0][0].clone().unwrap().parse::<usize>().unwrap();
    wait_until(&mut first, "every record in the table", Duration::from_secs(600), || count() >= delivered);
    let (code, _, stdout, stderr) = first.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let by_a = message_ids(&a.join("out/patient-events.jsonl"));
    assert!(by_b > 0 && !by_a.is_empty(), "both instances took part: a {}, b {by_b}", by_a.len());
    let rows = pg_rows(&pg, "SELECT metadata_message_id FROM kafka_events");
    let in_table: BTreeSet<String> = rows.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(count(), delivered, "exactly the expected rows");
    let mut expected: BTreeSet<String> = message_ids(&a.join("out/patient-events.jsonl")).into_keys().collect();
    expected.extend(message_ids(&sink_b).into_keys());
    assert_eq!(in_table, expected, "the table holds what the two instances delivered, each once");
    let offsets = committed(&brokers, "sluice-scale", "adt", 3);
    assert_eq!(offsets.iter().sum::<i64>(), input.len() as i64, "{offsets:?}");
    assert_no_phi(&[&stdout, &stderr]);
}

#[test]
fn a_kafka_sink_fed_by_files_holds_each_delivered_record_keyed_by_the_declared_field() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("events", 3);
    let dir = workspace("kafka-sink");
    let path = dir.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&path).unwrap().replacen(
        "\nsinks:\n",
        &format!(
            "\nsinks:\n  bus:\n    type: kafka\n    inputs: [mask]\n    brokers: {brokers}\n    topic: events\n    key: patient.id\n"
        ),
        1,
    );
    std::fs::write(&path, spec).unwrap();
    let out: Output = sluice(&dir, &["run", "pipelines/quickstart.yaml", "--summary", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = summary(&out);
    let delivered = s["delivered"].as_u64().unwrap() as usize;
    assert!(delivered > 0);
    let jsonl = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert_eq!(jsonl.len(), delivered);
    let got = read_topic(&brokers, "events", delivered);
    assert_eq!(got.len(), delivered, "each delivered record once in the topic");
    let mut want: Vec<&String> = jsonl.iter().collect();
    let mut have: Vec<&String> = got.iter().map(|(_, v, _)| v).collect();
    want.sort();
    have.sort();
    assert_eq!(want, have, "the messages are the jsonl sink's lines");
    // Keyed by patient.id, and in the jsonl sink's order per key.
    let mut per_key: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (key, value, _) in &got {
        let doc: serde_json::Value = serde_json::from_str(value).unwrap();
        assert_eq!(key.as_deref(), doc["patient"]["id"].as_str(), "keyed by patient.id");
        per_key.entry(key.clone().unwrap_or_default()).or_default().push(value);
    }
    for (key, values) in per_key {
        let expected: Vec<&String> = jsonl
            .iter()
            .filter(|l| {
                let d: serde_json::Value = serde_json::from_str(l).unwrap();
                d["patient"]["id"].as_str() == Some(key.as_str())
            })
            .collect();
        assert_eq!(values, expected, "one key's records in order");
    }
    assert_no_phi(&[&text(&out.stdout), &text(&out.stderr)]);
}

#[test]
fn unreachable_brokers_and_a_missing_topic_stop_the_run_with_their_codes() {
    let tansu = Tansu::start();
    let dir = workspace("kafka-errors");
    let nobody = format!("127.0.0.1:{}", free_port());
    kafka_pipeline(&dir, &nobody, "adt", "g", JSONL_SINK);
    let out = sluice(&dir, &["run", "pipelines/kafka.yaml"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(error_code(&out), "RT125", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&nobody), "names the brokers");

    kafka_pipeline(&dir, &tansu.brokers(), "no-such-topic", "g", JSONL_SINK);
    let out = sluice(&dir, &["run", "pipelines/kafka.yaml"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(error_code(&out), "RT126", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no-such-topic"));
}

#[test]
fn hl7_files_relayed_to_a_topic_are_consumed_like_the_files_themselves() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("relay", 3);
    let dir = workspace("kafka-relay");
    // Pipeline 1: the example files, as read, to the topic, keyed by the patient (PID-3.1).
    let relay = format!(
        "kind: pipeline
name: relay
sources:
  hl7_files:
    type: files
    format: hl7v2
    path: ../examples/hl7/*.hl7
    profile: ../mappings/base/profiles/default.yaml
sinks:
  feed:
    type: kafka
    inputs: [hl7_files]
    brokers: {brokers}
    topic: relay
    format: hl7v2
    key: PID-3.1
    phi: {{allowed: true, reason: the feed stays inside the integration network}}
dlq:
  path: ../out/relay-dlq.jsonl
  plaintext_reason: synthetic test fixture
"
    );
    std::fs::write(dir.join("pipelines/relay.yaml"), relay).unwrap();
    let out = sluice(&dir, &["run", "pipelines/relay.yaml", "--summary", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let relayed = summary(&out)["delivered"].as_u64().unwrap() as usize;
    // The messages in the topic are the files' messages, byte for byte, each once, keyed by
    // PID-3.1, in file order per key.
    let files = [root().join("examples/hl7/feed-2024-01-15.hl7"), root().join("examples/hl7/rejects.hl7")];
    let read: Vec<String> = files.iter().flat_map(|f| messages(f)).map(|m| text(&m)).collect();
    let got = read_topic(&brokers, "relay", relayed);
    assert_eq!(got.len(), relayed, "each relayed message once");
    let mut per_key: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for (key, value, _) in &got {
        assert!(read.contains(value), "a message not as read: {}", value.len());
        let pid = value.split(['\r', '\n']).find(|l| l.starts_with("PID|")).unwrap_or_default();
        let pid3 = pid.split('|').nth(3).unwrap_or_default().split('^').next().unwrap_or_default();
        assert_eq!(key.as_deref().unwrap_or_default(), pid3, "keyed by PID-3.1");
        per_key.entry(pid3.to_string()).or_default().push(value);
    }
    for (key, values) in &per_key {
        let in_files: Vec<&String> = read.iter().filter(|m| values.contains(m)).collect();
        assert_eq!(values, &in_files, "the messages of key {key} in file order");
    }

    // Pipeline 2: the quick start fed by the topic gives the quick start's records.
    let local = sluice(&dir, &["run", "pipelines/quickstart.yaml", "--summary", "json"]).output().unwrap();
    assert!(local.status.success(), "{}", text(&local.stderr));
    let expected = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert!(relayed > 0 && !expected.is_empty());
    kafka_pipeline(&dir, &brokers, "relay", "relay-consumers", JSONL_SINK);
    let mut run = start_run(&dir, None);
    let sink = dir.join("out/patient-events.jsonl");
    wait_until(&mut run, "every record", Duration::from_secs(120), || lines(&sink).len() >= expected.len());
    let (code, _, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    // Run-specific members (the run's time and audit ids) aside, the same records.
    let comparable = |lines: Vec<String>| -> Vec<String> {
        let mut out: Vec<String> = lines
            .iter()
            .map(|l| {
                let mut r: serde_json::Value = serde_json::from_str(l).unwrap();
                r["metadata"]["processed_at"] = serde_json::Value::Null;
                r["compliance"]["audit_log_id"] = serde_json::Value::Null;
                r.to_string()
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(comparable(lines(&sink)), comparable(expected), "the records of the files, from the topic");
    assert_no_phi(&[&stdout, &stderr, &text(&out.stdout), &text(&out.stderr)]);
}

/// The `metadata.message_id`s that one local run of the quick start delivers from `input`
/// (the same files, read from disk): the oracle for what a chain of runs must deliver.
fn delivered_locally(dir: &Path, input: &[Msg]) -> BTreeSet<String> {
    let mut bytes = Vec::new();
    for m in input {
        bytes.extend_from_slice(m.value.as_deref().unwrap());
        bytes.extend_from_slice(b"\r\n");
    }
    std::fs::create_dir_all(dir.join("local")).unwrap();
    std::fs::write(dir.join("local/feed.hl7"), bytes).unwrap();
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let local =
        quickstart.replace("../examples/hl7/*.hl7", "../local/*.hl7").replace("../out/quickstart/", "../out/local/");
    std::fs::write(dir.join("pipelines/local.yaml"), local).unwrap();
    let out = sluice(dir, &["run", "pipelines/local.yaml", "--summary", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    message_ids(&dir.join("out/local/patient-events.jsonl")).into_keys().collect()
}

#[test]
fn objects_relayed_through_a_topic_to_two_instances_reach_postgres_exactly_once_though_one_is_killed() {
    let Some(pg) = pg_database("kafka-proof") else { return };
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("adt", 3);
    let s3 = moto::start(None);
    create_bucket(&s3, "landing");
    // The examples 15 times, each message with its own control id, one object per copy.
    let copies = 15;
    let input = example_messages(copies);
    let per_object = input.len() / copies;
    let staging = workspace("kafka-proof-objects");
    for (n, object) in input.chunks(per_object).enumerate() {
        let file = staging.join(format!("feed-{n:02}.hl7"));
        let bytes: Vec<u8> = object.iter().flat_map(|m| [m.value.as_deref().unwrap(), b"\r\n"].concat()).collect();
        std::fs::write(&file, bytes).unwrap();
        put(&s3, "landing", &format!("adt/feed-{n:02}.hl7"), &file);
    }

    // 1. Two instances of the quick start fed by the topic, one group, one table, both with
    //    their share of the partitions before the files land.
    let expected = delivered_locally(&staging, &input);
    assert_eq!(expected.len(), PER_COPY.1 as usize * copies);
    let ([a, b], [mut first, second]) = two_instances("kafka-proof", &brokers, "sluice-proof", &pg);

    // 2. The relay: every object's messages, as read, to the topic, keyed by the patient.
    // `batch_size: 1` makes each message its own record batch: tansu 0.6.0 answers a fetch
    // that starts inside a batch with nothing, and the surviving instance resumes from
    // the killed one's committed offsets (Apache Kafka has no such limit; docs/user-guide.md).
    let relay_dir = workspace("kafka-proof-relay");
    let relay = format!(
        "kind: pipeline
name: landing-relay
sources:
  landing:
    type: files
    format: hl7v2
    path: s3://landing/adt/*.hl7
    {store}
    profile: ../mappings/base/profiles/default.yaml
sinks:
  feed:
    type: kafka
    inputs: [landing]
    brokers: {brokers}
    topic: adt
    format: hl7v2
    key: PID-3.1
    phi: {{allowed: true, reason: the feed stays inside the integration network}}
dlq:
  path: ../out/relay-dlq.jsonl
  plaintext_reason: synthetic test fixture
state:
  path: ../out/relay-state.db
defaults:
  batch_size: 1
",
        store = store_block(&s3)
    );
    std::fs::write(relay_dir.join("pipelines/relay.yaml"), relay).unwrap();
    let relaying = sluice(&relay_dir, &["run", "pipelines/relay.yaml", "--summary", "json"])
        .env("SLUICE_TEST_S3_KEY_ID", KEY_ID)
        .env("SLUICE_TEST_S3_SECRET", SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // 3. While the files still land, one instance is killed; the other takes its partitions.
    kill_after_its_first_records(second, &b);
    let sink_b = b.join("out/patient-events.jsonl");
    let relayed = relaying.wait_with_output().unwrap();
    assert!(relayed.status.success(), "{}", text(&relayed.stderr));
    let relay_summary = summary(&relayed);
    assert_eq!(relay_summary["records_in"], input.len(), "{relay_summary}");
    assert_eq!(relay_summary["balanced"], true, "{relay_summary}");
    let in_topic = relay_summary["delivered"].as_u64().unwrap() as usize;
    assert!(lines(&sink_b).len() < expected.len(), "the kill came before the end");

    let count = || pg_rows(&pg, "SELECT count(*) FROM kafka_events")[0][0].clone().unwrap().parse::<usize>().unwrap();
    // Done when the table is full and the group has committed every message (the last ones
    // may be filtered or go to the DLQ, after the last row).
    let all_committed = || committed(&brokers, "sluice-proof", "adt", 3).iter().sum::<i64>() == in_topic as i64;
    wait_until(&mut first, "every record in the table, every offset committed", Duration::from_secs(600), || {
        count() >= expected.len() && all_committed()
    });
    let (code, _, stdout, stderr) = first.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let by_a = message_ids(&a.join("out/patient-events.jsonl")).len();
    let by_b = message_ids(&sink_b).len();
    assert!(by_a > 0 && by_b > 0, "both instances took part: a {by_a}, b {by_b}");

    // 4. Exactly the expected rows: one per record a local run of the same files delivers,
    //    none twice.
    let rows = pg_rows(&pg, "SELECT metadata_message_id FROM kafka_events");
    let in_table: BTreeSet<String> = rows.into_iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(count(), expected.len(), "one row per record");
    assert_eq!(in_table, expected, "the rows a local run of the same files delivers");
    let offsets = committed(&brokers, "sluice-proof", "adt", 3);
    assert_eq!(offsets.iter().sum::<i64>(), in_topic as i64, "every relayed message committed: {offsets:?}");
    assert_no_phi(&[&stdout, &stderr, &text(&relayed.stdout), &text(&relayed.stderr)]);
}

#[test]
fn x12_and_fhir_json_messages_become_records_bad_ones_reach_the_dlq_and_every_offset_is_committed() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    tansu.create_topic("claims", 1);
    tansu.create_topic("patients", 1);
    let p = payloads();
    let msgs = |bodies: &[Vec<u8>]| -> Vec<Msg> {
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| Msg { key: format!("m{i}"), value: Some(b.clone()), headers: vec![] })
            .collect()
    };
    produce(&brokers, "claims", &msgs(&p.x12));
    produce(&brokers, "patients", &msgs(&p.fhir));
    let dir = workspace("kafka-payloads");
    let source = |name: &str, format: &str, topic: &str, extra: &str| {
        format!(
            "  {name}:\n    type: kafka\n    format: {format}\n    brokers: [{brokers}]\n    topics: [{topic}]\n    group: sluice-{topic}\n    session_timeout: 6s\n{extra}"
        )
    };
    let sources = format!(
        "{}{}",
        source("claims", "x12", "claims", "    guides: [005010X222A1, 005010X221A1]\n"),
        source("patients", "fhir", "patients", "    resource_types: [Patient]\n")
    );
    payloads_pipeline(&dir, &sources);
    let check = sluice(&dir, &["check", "pipelines/payloads.yaml"]).output().unwrap();
    assert!(check.status.success(), "{}", text(&check.stderr));

    let run = Running::spawn(&mut sluice(
        &dir,
        &["run", "pipelines/payloads.yaml", "--summary", "json", "--log-level", "info"],
    ));
    finish_payloads_run(run, &dir, &p);
    // Each message's offset committed once all its records were durable (an interchange's
    // sets and the DLQ entries alike).
    assert_eq!(committed(&brokers, "sluice-claims", "claims", 1), [p.x12.len() as i64]);
    assert_eq!(committed(&brokers, "sluice-patients", "patients", 1), [p.fhir.len() as i64]);
}
