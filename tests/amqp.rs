//! `amqp` sources and sinks through the real binary, against a real RabbitMQ node (Debian's
//! rabbitmq-server 3.10, started per test on 127.0.0.1 by scripts/start-rabbitmq through
//! tests/common/amqp.rs). Messages are published and read back with pika, a client independent
//! of Sluice's own. No server is a failure, never a skip.
//!
//! - A source delivers every message of a queue through the same source step as files
//!   (parse, profile, DLQ), a message with an empty body goes to the DLQ (RT133), every
//!   message is acknowledged (the queue ends empty), and an `amqp` sink in the same pipeline
//!   publishes each delivered record with confirms, routed by a field, with the source
//!   message's headers; pika reads them back.
//! - `kill -9` mid-way, then a new run: every record is in the JSON Lines sink (at least once)
//!   and the queue ends empty: messages not acknowledged were delivered again.
//! - A `format: hl7v2` sink fed by files relays each message byte for byte through the default
//!   exchange to the queue its constant routing key names, in file order.
//! - A queue or exchange that does not exist (RT131) and a refused login (RT130) stop the run
//!   with their codes.
//!
//! No output of any run shows a patient's name or SSN from the data.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::amqp::{Message, Rabbit};
use common::checkpoints::{PER_COPY, error_code};
use common::live::{assert_no_phi, finish_payloads_run, lines, message_ids, payloads, payloads_pipeline, wait_until};
use common::{Running, messages, root, text, workspace};

/// The example messages (66 per copy: 39 delivered, 6 to the DLQ, 21 filtered by the quick
/// start), `copies` times, each with a unique control id (MSH-10 `A<n>`) and two headers.
fn example_messages(copies: usize) -> Vec<Message> {
    let mut one = Vec::new();
    for file in ["feed-2024-01-15.hl7", "rejects.hl7"] {
        one.extend(messages(&root().join("examples/hl7").join(file)));
    }
    assert_eq!(one.len() as u64, PER_COPY.0);
    let mut out = Vec::new();
    for copy in 0..copies {
        for (i, m) in one.iter().enumerate() {
            let n = copy * one.len() + i;
            let text = String::from_utf8_lossy(m).into_owned();
            let segments: Vec<String> = text
                .split('\r')
                .map(|s| {
                    let mut f: Vec<&str> = s.split('|').collect();
                    let id = format!("A{n}");
                    if s.starts_with("MSH|") && f.len() > 9 {
                        f[9] = &id;
                        return f.join("|");
                    }
                    s.to_string()
                })
                .collect();
            let headers =
                vec![("trace-id".to_string(), format!("t-{n}")), ("origin".to_string(), "ward-7".to_string())];
            out.push((segments.join("\r").into_bytes(), headers));
        }
    }
    out
}

/// Writes `pipelines/amqp.yaml` into `dir`: the quick start fed by an `amqp` source reading
/// `queue` (prefetch `prefetch`), with `sinks` (YAML under `sinks:`) and its outputs under
/// `out/`. The server's URL is the secret `${AMQP_URL}`.
fn amqp_pipeline(dir: &Path, queue: &str, prefetch: u32, sinks: &str) -> PathBuf {
    let source = format!("    type: amqp\n    url: ${{AMQP_URL}}\n    queue: {queue}\n    prefetch: {prefetch}\n");
    common::quickstart_fed_by(dir, "amqp", &source, sinks)
}

const JSONL_SINK: &str =
    "  patient_events:\n    type: jsonl\n    inputs: [mask]\n    path: ../out/patient-events.jsonl\n";

fn sluice(dir: &Path, rabbit: &Rabbit, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args).env("AMQP_URL", rabbit.url());
    c
}

fn start_run(dir: &Path, rabbit: &Rabbit) -> Running {
    Running::spawn(&mut sluice(
        dir,
        rabbit,
        &["run", "pipelines/amqp.yaml", "--summary", "json", "--log-level", "info"],
    ))
}

#[test]
fn an_amqp_source_delivers_and_acknowledges_every_message_and_an_amqp_sink_publishes_them_confirmed() {
    let rabbit = Rabbit::start("source");
    rabbit.declare_queue("adt");
    rabbit.declare_queue("adt-out");
    rabbit.client(&["declare-exchange", "patient-events", "topic"], None);
    rabbit.client(&["bind", "adt-out", "patient-events", "#"], None);
    let mut input = example_messages(1);
    input.push((Vec::new(), vec![("trace-id".into(), "empty".into())]));
    rabbit.publish("adt", &input);
    assert_eq!(rabbit.count("adt"), input.len());

    let dir = workspace("amqp-source");
    let relay = "  relay:\n    type: amqp\n    inputs: [mask]\n    url: ${AMQP_URL}\n    exchange: patient-events\n    routing_key_field: metadata.message_id\n";
    amqp_pipeline(&dir, "adt", 16, &format!("{JSONL_SINK}{relay}"));

    let plan = sluice(&dir, &rabbit, &["plan", "pipelines/amqp.yaml"]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(plan.contains("amqp consume queue adt at ${AMQP_URL} (hl7v2), prefetch 16"), "{plan}");
    assert!(plan.contains("publishes to exchange patient-events at ${AMQP_URL} (amqp, JSON, routing key from metadata.message_id, persistent)"), "{plan}");
    assert!(!plan.contains(common::amqp::PASSWORD), "{plan}");

    let records = input.len();
    let mut run = start_run(&dir, &rabbit);
    let audit = dir.join("out/audit.jsonl");
    // run_started, then one audit entry per record.
    wait_until(&mut run, "every record in the audit log", Duration::from_secs(90), || lines(&audit).len() > records);
    let (code, s, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stderr.contains("source hl7_files: consuming queue adt (AMQP); stop with Ctrl-C or SIGTERM"), "{stderr}");
    let (n, delivered, dlq, filtered) = PER_COPY;
    assert_eq!(s["records_in"], n + 1, "{s}");
    assert_eq!(s["delivered"], delivered, "{s}");
    assert_eq!(s["dlq"], dlq + 1, "{s}: the rejected examples and the empty message");
    assert_eq!(s["filtered"], filtered, "{s}");
    assert_eq!(s["balanced"], true, "{s}");
    // Every message acknowledged: none is left ready (the connection is closed, so any
    // unacknowledged one would be back in the queue).
    assert_eq!(rabbit.count("adt"), 0, "every message acknowledged");

    let ids = message_ids(&dir.join("out/patient-events.jsonl"));
    assert_eq!(ids.len() as u64, delivered);
    assert!(ids.values().all(|c| *c == 1), "each record once: {ids:?}");
    let dlq_text = std::fs::read_to_string(dir.join("out/dlq.jsonl")).unwrap();
    assert!(dlq_text.contains("RT133"), "the empty message is in the DLQ with its code");

    // The sink's messages, read back by pika: one per delivered record, the JSON line of the
    // jsonl sink, routed by its message id, persistent, with the source message's headers.
    let published = rabbit.drain("adt-out");
    assert_eq!(published.len() as u64, delivered);
    let jsonl: BTreeMap<String, serde_json::Value> = lines(&dir.join("out/patient-events.jsonl"))
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["metadata"]["message_id"].as_str().unwrap().to_string(), v)
        })
        .collect();
    for m in &published {
        let body: serde_json::Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
        let id = body["metadata"]["message_id"].as_str().unwrap();
        assert_eq!(m["routing_key"], id, "routed by the field");
        assert_eq!(jsonl.get(id), Some(&body), "the same record as the jsonl sink's");
        assert_eq!(m["content_type"], "application/json");
        assert_eq!(m["delivery_mode"], 2, "persistent");
        let n = id.trim_start_matches('A');
        assert_eq!(m["headers"]["trace-id"], format!("t-{n}"), "{m}");
        assert_eq!(m["headers"]["origin"], "ward-7");
    }
    assert_no_phi(&[&plan, &stdout, &stderr]);
}

#[test]
fn a_run_killed_mid_way_loses_nothing_the_server_delivers_unacknowledged_messages_again() {
    let rabbit = Rabbit::start("kill");
    rabbit.declare_queue("adt");
    let copies = 10;
    let input = example_messages(copies);
    rabbit.publish("adt", &input);
    let dir = workspace("amqp-kill");
    amqp_pipeline(&dir, "adt", 8, JSONL_SINK);
    let sink = dir.join("out/patient-events.jsonl");

    let mut first = start_run(&dir, &rabbit);
    wait_until(&mut first, "the first records in the sink", Duration::from_secs(90), || !lines(&sink).is_empty());
    assert!(Command::new("kill").args(["-KILL", &first.child.id().to_string()]).status().unwrap().success());
    let _ = first.child.wait();
    let first_stderr = first.stderr.lock().unwrap().clone();
    drop(first);
    // The killed run's connection is gone: what it had not acknowledged is back in the queue.
    let mut left = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        left = rabbit.count("adt");
        if left > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(left > 0 && left < input.len(), "the run was killed mid-way: {left} of {} messages left", input.len());

    let (_, delivered, _, _) = PER_COPY;
    let expected = delivered as usize * copies;
    let mut second = start_run(&dir, &rabbit);
    wait_until(&mut second, "every record in the sink", Duration::from_secs(120), || {
        message_ids(&sink).len() >= expected
    });
    let (code, s, stdout, stderr) = second.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(s["balanced"], true, "{s}");
    let ids = message_ids(&sink);
    assert_eq!(ids.len(), expected, "every delivered record at least once");
    assert_eq!(rabbit.count("adt"), 0, "every message acknowledged in the end");
    assert_no_phi(&[&first_stderr, &stdout, &stderr]);
}

#[test]
fn a_missing_queue_or_exchange_and_a_refused_login_stop_the_run_with_their_codes() {
    let rabbit = Rabbit::start("missing");
    rabbit.declare_queue("adt");
    let dir = workspace("amqp-missing");

    amqp_pipeline(&dir, "no-such-queue", 8, JSONL_SINK);
    let out = sluice(&dir, &rabbit, &["run", "pipelines/amqp.yaml"]).output().unwrap();
    assert_eq!(error_code(&out), "RT131", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("queue `no-such-queue` does not exist"), "{}", text(&out.stderr));

    let relay = "  relay:\n    type: amqp\n    inputs: [mask]\n    url: ${AMQP_URL}\n    exchange: no-such-exchange\n";
    amqp_pipeline(&dir, "adt", 8, &format!("{JSONL_SINK}{relay}"));
    let out = sluice(&dir, &rabbit, &["run", "pipelines/amqp.yaml"]).output().unwrap();
    assert_eq!(error_code(&out), "RT131", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("exchange `no-such-exchange` does not exist"), "{}", text(&out.stderr));

    amqp_pipeline(&dir, "adt", 8, JSONL_SINK);
    let wrong = rabbit.url().replace(common::amqp::PASSWORD, "not-the-password");
    let out = sluice(&dir, &rabbit, &["run", "pipelines/amqp.yaml"]).env("AMQP_URL", &wrong).output().unwrap();
    assert_eq!(error_code(&out), "RT130", "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("not-the-password"), "no password in errors: {}", text(&out.stderr));
}

#[test]
fn an_amqp_sink_relays_hl7_files_byte_for_byte_through_the_default_exchange() {
    let rabbit = Rabbit::start("relay");
    rabbit.declare_queue("adt-relay");
    let dir = workspace("amqp-relay");
    let file = root().join("examples/hl7/feed-2024-01-15.hl7");
    let spec = "kind: pipeline\nname: relay\nsources:\n  hl7_files:\n    type: files\n    format: hl7v2\n    path: ../examples/hl7/feed-2024-01-15.hl7\nsinks:\n  relay:\n    type: amqp\n    inputs: [hl7_files]\n    url: ${AMQP_URL}\n    exchange: \"\"\n    routing_key: adt-relay\n    format: hl7v2\n    phi: {allowed: true, reason: synthetic test data relayed to a test queue}\ndlq:\n  path: ../out/dlq.jsonl\n  encryption_key: ${file:../examples/dlq-example.key}\n";
    std::fs::write(dir.join("pipelines/relay.yaml"), spec).unwrap();

    let plan = sluice(&dir, &rabbit, &["plan", "pipelines/relay.yaml"]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(plan.contains("publishes to exchange (default) at ${AMQP_URL} (amqp, HL7 v2 as read, routing key \"adt-relay\", persistent)"), "{plan}");

    let out = sluice(&dir, &rabbit, &["run", "pipelines/relay.yaml", "--summary", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let sent = messages(&file);
    assert_eq!(s["delivered"], sent.len(), "{s}");

    let published = rabbit.drain("adt-relay");
    let bodies: Vec<String> = published.iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = sent.iter().map(|m| text(m)).collect();
    assert_eq!(bodies, expected, "each message as read, in file order");
    for m in &published {
        assert_eq!(m["routing_key"], "adt-relay");
        assert_eq!(m["content_type"], "application/hl7-v2");
        assert_eq!(m["delivery_mode"], 2);
    }
    assert_no_phi(&[&plan, &text(&out.stdout), &text(&out.stderr)]);
}

#[test]
fn x12_and_fhir_json_messages_become_records_bad_ones_reach_the_dlq_and_every_message_is_acknowledged() {
    let rabbit = Rabbit::start("payloads");
    rabbit.declare_queue("claims");
    rabbit.declare_queue("patients");
    let p = payloads();
    let msgs = |bodies: &[Vec<u8>]| -> Vec<Message> { bodies.iter().map(|b| (b.clone(), Vec::new())).collect() };
    rabbit.publish("claims", &msgs(&p.x12));
    rabbit.publish("patients", &msgs(&p.fhir));
    let dir = workspace("amqp-payloads");
    let source = |name: &str, format: &str, queue: &str, extra: &str| {
        format!("  {name}:\n    type: amqp\n    format: {format}\n    url: ${{AMQP_URL}}\n    queue: {queue}\n{extra}")
    };
    let sources = format!(
        "{}{}",
        source("claims", "x12", "claims", "    guides: [005010X222A1, 005010X221A1]\n"),
        source("patients", "fhir", "patients", "    resource_types: [Patient]\n    mode: strict\n")
    );
    payloads_pipeline(&dir, &sources);

    let run = Running::spawn(&mut sluice(
        &dir,
        &rabbit,
        &["run", "pipelines/payloads.yaml", "--summary", "json", "--log-level", "info"],
    ));
    finish_payloads_run(run, &dir, &p);
    // Each message acknowledged once all its records were durable: none is back in a queue.
    assert_eq!(rabbit.count("claims"), 0, "every X12 message acknowledged");
    assert_eq!(rabbit.count("patients"), 0, "every FHIR message acknowledged");
}

/// A files pipeline relaying the example feed to `exchange` with routing key `key` (`format:
/// hl7v2`), written as `pipelines/NAME.yaml`.
fn relay_pipeline(dir: &Path, name: &str, exchange: &str, key: &str) -> String {
    let spec = format!(
        "kind: pipeline\nname: {name}\nsources:\n  hl7_files:\n    type: files\n    format: hl7v2\n    path: ../examples/hl7/feed-2024-01-15.hl7\nsinks:\n  relay:\n    type: amqp\n    inputs: [hl7_files]\n    url: ${{AMQP_URL}}\n    exchange: {exchange}\n    routing_key: {key}\n    format: hl7v2\n    phi: {{allowed: true, reason: synthetic test data relayed to a test queue}}\ndlq:\n  path: ../out/{name}-dlq.jsonl\n  encryption_key: ${{file:../examples/dlq-example.key}}\n"
    );
    std::fs::write(dir.join(format!("pipelines/{name}.yaml")), spec).unwrap();
    format!("pipelines/{name}.yaml")
}

#[test]
fn an_amqp_sink_whose_messages_the_server_nacks_or_returns_stops_the_run_with_rt134() {
    let rabbit = Rabbit::start("refused");
    // A queue that holds one message and refuses more: RabbitMQ nacks the other publishes.
    rabbit.client(&["declare-queue", "full", "1"], None);
    // An exchange without a binding: a mandatory message comes back unroutable.
    rabbit.client(&["declare-exchange", "nowhere", "direct"], None);
    let dir = workspace("amqp-refused");

    let nacked = relay_pipeline(&dir, "nacked", "\"\"", "full");
    let out = sluice(&dir, &rabbit, &["run", &nacked, "--summary", "json"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(error_code(&out), "RT134", "{err}");
    assert!(err.contains("nacked"), "{err}");
    assert_eq!(rabbit.count("full"), 1, "the queue kept the one message it holds");

    let returned = relay_pipeline(&dir, "returned", "nowhere", "adt");
    let out = sluice(&dir, &rabbit, &["run", &returned, "--summary", "json"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(error_code(&out), "RT134", "{err}");
    assert!(err.contains("returned unroutable"), "{err}");
    assert_no_phi(&[&err, &text(&out.stdout)]);
}

#[test]
fn a_server_stopping_mid_run_ends_the_run_with_rt132_and_keeps_what_was_durable() {
    let rabbit = Rabbit::start("stopped");
    rabbit.declare_queue("adt");
    rabbit.publish("adt", &example_messages(1));
    let dir = workspace("amqp-stopped");
    amqp_pipeline(&dir, "adt", 8, JSONL_SINK);
    let mut run = start_run(&dir, &rabbit);
    let audit = dir.join("out/audit.jsonl");
    let records = PER_COPY.0 as usize;
    wait_until(&mut run, "every record in the audit log", Duration::from_secs(90), || lines(&audit).len() > records);

    rabbit.stop_node();
    // The run notices the closed connection and ends on its own, with the consumer's code.
    run.wait_for("the consumer's error", |l| l.contains("RT132").then_some(()));
    let status = run.child.wait().unwrap();
    assert!(!status.success(), "a run whose server went away fails: {}", run.stderr.lock().unwrap());
    let (_, delivered, _, _) = PER_COPY;
    let ids = message_ids(&dir.join("out/patient-events.jsonl"));
    assert_eq!(ids.len() as u64, delivered, "what was durable before the server stopped stays");
    assert_no_phi(&[&run.stderr.lock().unwrap().clone()]);
}
