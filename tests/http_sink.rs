//! `http` sinks through the real binary, against a real HTTP server this test starts on
//! 127.0.0.1 (std::net, one thread per connection, answers scripted per request number):
//! retries on 5xx, 429 with `Retry-After`, timeouts and resets; a permanent refusal sends the
//! records to the DLQ and the run still balances; a throttle spreads the requests; and no
//! secret header value, name or SSN reaches the console or the audit log.
//!
//! No timing is asserted: only what the server saw and what the run wrote.

mod common;
use common::http_server::{Reply, Server};

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

const TOKEN: &str = "Bearer tok-7f3a9c2e51d84b06";

/// A copy of the quick start whose sink POSTs to `url`; `sink` adds keys to the sink.
fn pipeline(dir: &Path, url: &str, sink: &str) -> String {
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let sink_block = format!(
        "sinks:\n  events:\n    type: http\n    inputs: [mask]\n    url: {url}\n    headers:\n      Authorization: ${{SLUICE_TEST_TOKEN}}\n      X-Source: sluice-test\n{sink}"
    );
    let start = quickstart.find("sinks:").unwrap();
    let end = quickstart.find("dlq:").unwrap();
    let spec = format!("{}{}{}", &quickstart[..start], sink_block, &quickstart[end..]);
    let spec = spec.replace("../out/quickstart/", "../out/http/");
    std::fs::write(dir.join("pipelines/http.yaml"), spec).unwrap();
    "pipelines/http.yaml".to_string()
}

fn run(dir: &Path, spec: &str) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(["run", spec, "--summary", "json", "--fixed-clock", "2024-01-15T10:30:00Z"])
        .env("SLUICE_TEST_TOKEN", TOKEN)
        // A proxy set for the machine would stand between the sink and the test server.
        .env("NO_PROXY", "127.0.0.1")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .unwrap();
    let stdout = common::text(&out.stdout);
    let summary = serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null);
    (out, summary)
}

fn retries(summary: &Value) -> u64 {
    summary["per_sink_retries"][0][1].as_u64().unwrap()
}

fn audit(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("out/http/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every record the audit says was delivered reached the server exactly once, in order, and
/// nothing else did.
fn assert_exactly_once_in_order(server: &Server, dir: &Path, summary: &Value) {
    let ids: Vec<String> =
        server.accepted().iter().map(|r| r["compliance"]["audit_log_id"].as_str().unwrap().to_string()).collect();
    let delivered: Vec<String> = audit(dir)
        .iter()
        .filter(|e| e["event"] == "delivered")
        .map(|e| format!("{}-{}", e["run_id"].as_str().unwrap(), e["seq"]))
        .collect();
    assert!(!ids.is_empty());
    assert_eq!(ids, delivered, "the server got each delivered record once, in record order");
    assert_eq!(summary["delivered"].as_u64().unwrap(), ids.len() as u64);
    assert_eq!(summary["per_sink"][0][1].as_u64().unwrap(), ids.len() as u64);
    assert_eq!(summary["balanced"], true);
}

fn assert_ok(out: &Output) {
    assert!(out.status.success(), "stdout:\n{}\nstderr:\n{}", common::text(&out.stdout), common::text(&out.stderr));
}

#[test]
fn server_errors_are_retried_and_every_record_arrives_once_in_order() {
    let dir = common::workspace("http-5xx");
    let server = Server::start(|n| if n <= 2 { Reply::Status(500, None) } else { Reply::Status(200, None) });
    let spec = pipeline(&dir, &server.url, "    retry: {max_attempts: 5, initial_backoff: 10ms, max_backoff: 50ms}\n");
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_exactly_once_in_order(&server, &dir, &summary);
    assert_eq!(retries(&summary), 2);
    let seen = server.seen();
    // The first request was tried three times, under one idempotency key; it names the run and
    // the first and last record of the request.
    assert_eq!(seen[0].key, seen[1].key);
    assert_eq!(seen[1].key, seen[2].key);
    let run_id = summary["run_id"].as_str().unwrap();
    assert!(seen[0].key.starts_with(&format!("{run_id}-1-")), "{}", seen[0].key);
    assert!(seen.iter().all(|s| s.content_type == "application/x-ndjson"));
    assert!(seen.iter().all(|s| s.authorization.as_deref() == Some(TOKEN)), "the secret header is sent");
    let completed = audit(&dir).pop().unwrap();
    assert_eq!(completed["event"], "run_completed");
    assert_eq!(completed["sink_retries"], serde_json::json!([["events", 2]]));
    let stdout = common::text(&out.stdout);
    assert!(stdout.contains("records delivered, 2 retries") || stdout.contains("\"per_sink_retries\""));
    assert_no_secret_or_phi(&dir, &out);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let dir = common::workspace("http-429");
    let server = Server::start(|n| if n == 1 { Reply::Status(429, Some("1")) } else { Reply::Status(200, None) });
    // A drawn backoff would be at most 1ms: only `Retry-After` makes the sink wait (not
    // asserted in time, only that the request then succeeds).
    let spec = pipeline(&dir, &server.url, "    retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms}\n");
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_exactly_once_in_order(&server, &dir, &summary);
    assert_eq!(retries(&summary), 1);
    let seen = server.seen();
    assert_eq!((seen[0].status, seen[1].status), (Some(429), Some(200)));
    assert_eq!(seen[0].key, seen[1].key);
}

#[test]
fn a_retry_after_beyond_max_elapsed_gives_up_and_the_records_go_to_the_dlq() {
    let dir = common::workspace("http-429-long");
    let server = Server::start(|_| Reply::Status(503, Some("3600")));
    let spec = pipeline(&dir, &server.url, "    retry: {max_attempts: 5, max_elapsed: 2s}\n");
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_eq!(summary["delivered"], 0);
    assert_eq!(retries(&summary), 0, "an hour's Retry-After is past max_elapsed: no wait, no retry");
    let entries = sluice_runtime::dlq::read_entries(&dir.join("out/http/dlq.jsonl")).unwrap();
    let refused: Vec<_> = entries.iter().filter(|e| e.stage == "events").collect();
    assert!(!refused.is_empty() && refused.iter().all(|e| e.code == "RT601"));
    assert!(refused[0].reason.contains("max_elapsed"), "{}", refused[0].reason);
    assert_eq!(summary["balanced"], true);
}

#[test]
fn timeouts_and_resets_are_retried() {
    let dir = common::workspace("http-timeout");
    let server = Server::start(|n| match n {
        1 => Reply::Late(Duration::from_millis(1500)),
        2 => Reply::Reset,
        _ => Reply::Status(200, None),
    });
    let spec = pipeline(
        &dir,
        &server.url,
        "    timeout: 300ms\n    retry: {max_attempts: 4, initial_backoff: 10ms, max_backoff: 20ms}\n",
    );
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_exactly_once_in_order(&server, &dir, &summary);
    assert_eq!(retries(&summary), 2);
    let seen = server.seen();
    assert_eq!(seen[0].key, seen[2].key, "the late request was sent again under its key");
}

#[test]
fn a_permanent_refusal_sends_the_records_to_the_dlq_and_the_run_goes_on() {
    let dir = common::workspace("http-400");
    let server = Server::start(|_| Reply::Status(400, None));
    let spec = pipeline(&dir, &server.url, "");
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_eq!(summary["delivered"], 0);
    assert_eq!(retries(&summary), 0);
    assert_eq!(summary["balanced"], true);
    let n = summary["records_in"].as_u64().unwrap();
    assert_eq!(n, summary["dlq"].as_u64().unwrap() + summary["filtered"].as_u64().unwrap());
    // Not retried: one request per batch that had records for the sink.
    let seen = server.seen();
    let keys: std::collections::BTreeSet<_> = seen.iter().map(|s| s.key.clone()).collect();
    assert_eq!(keys.len(), seen.len());
    let entries = sluice_runtime::dlq::read_entries(&dir.join("out/http/dlq.jsonl")).unwrap();
    let refused: Vec<_> = entries.iter().filter(|e| e.stage == "events").collect();
    let posted: usize = seen.iter().map(|s| s.body.lines().count()).sum();
    assert_eq!(refused.len(), posted, "every record of a refused request has a DLQ entry");
    assert!(refused.iter().all(|e| e.code == "RT603" && e.reason.contains("400")));
    assert!(refused.iter().all(|e| !e.reason.contains("tenant=")), "the URL's query stays out of reasons");
    // The entries hold the raw messages (encrypted), so they can be replayed.
    let raws = common::dlq_raws(&dir.join("out/http/dlq.jsonl"));
    assert_eq!(raws.len(), entries.len());
    assert!(entries.iter().zip(&raws).filter(|(e, _)| e.stage == "events").all(|(_, r)| r.starts_with("MSH|")));
    // The audit says where each of them went.
    let audit = audit(&dir);
    let to_sink: Vec<_> = audit.iter().filter(|e| e["event"] == "dlq" && e["component"] == "events").collect();
    assert_eq!(to_sink.len(), refused.len());
    assert!(to_sink.iter().all(|e| e["sinks"] == serde_json::json!([])));
    assert_no_secret_or_phi(&dir, &out);
}

#[test]
fn exhausted_retries_send_the_records_to_the_dlq() {
    let dir = common::workspace("http-503");
    let server = Server::start(|_| Reply::Status(503, None));
    let spec = pipeline(&dir, &server.url, "    retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms}\n");
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_eq!(summary["delivered"], 0);
    let requests = server.seen().len() as u64;
    assert_eq!(retries(&summary), requests / 2, "each request tried twice");
    let entries = sluice_runtime::dlq::read_entries(&dir.join("out/http/dlq.jsonl")).unwrap();
    let refused: Vec<_> = entries.iter().filter(|e| e.stage == "events").collect();
    assert!(!refused.is_empty() && refused.iter().all(|e| e.code == "RT601"));
    // Each entry says how often the sink tried, under which plan, and when.
    assert!(refused.iter().all(|e| e.attempts == Some(2)), "{:?}", refused[0].attempts);
    assert!(entries.iter().all(|e| e.plan_hash.as_deref() == summary["plan_hash"].as_str()));
    assert!(entries.iter().all(|e| e.at.as_deref() == Some("2024-01-15T10:30:00Z")));
    assert!(entries.iter().filter(|e| e.stage != "events").all(|e| e.attempts == Some(1)));
    assert_eq!(summary["balanced"], true);
}

#[test]
fn a_throttle_spreads_one_request_per_record() {
    let dir = common::workspace("http-throttle");
    let server = Server::start(|_| Reply::Status(200, None));
    let spec = pipeline(&dir, &server.url, "    max_records: 1\n    throttle: {rate: 20/s}\n");
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    assert_exactly_once_in_order(&server, &dir, &summary);
    let seen = server.seen();
    assert!(seen.len() >= 30, "{} requests", seen.len());
    assert!(seen.iter().all(|s| s.body.lines().count() == 1), "one record per request");
    let delivered = summary["delivered"].as_u64().unwrap();
    assert_eq!(seen.len() as u64, delivered);
    // Each request has its own key: `<run>-<seq>-<seq>`.
    let run_id = summary["run_id"].as_str().unwrap();
    for (s, r) in seen.iter().zip(server.accepted()) {
        let id = r["compliance"]["audit_log_id"].as_str().unwrap();
        let seq = id.rsplit('-').next().unwrap();
        assert_eq!(s.key, format!("{run_id}-{seq}-{seq}"));
    }
}

#[test]
fn the_plan_shows_the_sink_without_secrets_and_a_missing_secret_stops_the_run() {
    let dir = common::workspace("http-plan");
    let spec = pipeline(&dir, "https://ingest.example.org/v1/events", "    throttle: {rate: 50/min}\n");
    let plan = Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(&*dir).args(["plan", &spec]).output().unwrap();
    assert_ok(&plan);
    let text = common::text(&plan.stdout);
    assert!(text.contains("posts to https://ingest.example.org/v1/events (http"), "{text}");
    assert!(text.contains("headers Authorization, X-Source"), "{text}");
    assert!(text.contains("throttle 50/60s"), "{text}");
    assert!(!text.contains("tok-"));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&*dir)
        .args(["run", &spec])
        .env_remove("SLUICE_TEST_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = common::text(&out.stderr);
    assert!(stderr.contains("RT002") && stderr.contains("SLUICE_TEST_TOKEN"), "{stderr}");
}

/// Neither the header's secret value nor a name or SSN of the data reaches the console, the
/// audit log or the DLQ reasons.
fn assert_no_secret_or_phi(dir: &Path, out: &Output) {
    let examples: Vec<_> = std::fs::read_dir(dir.join("examples/hl7")).unwrap().flatten().map(|e| e.path()).collect();
    let phi = common::phi_values(&examples);
    assert!(phi.len() > 10);
    let reasons: String = sluice_runtime::dlq::read_entries(&dir.join("out/http/dlq.jsonl"))
        .unwrap()
        .iter()
        .map(|e| format!("{} {:?}\n", e.reason, e.findings))
        .collect();
    let audit = std::fs::read_to_string(dir.join("out/http/audit.jsonl")).unwrap();
    for (what, text) in [
        ("stdout", common::text(&out.stdout)),
        ("stderr", common::text(&out.stderr)),
        ("audit", audit),
        ("dlq", reasons),
    ] {
        assert!(!text.contains("tok-7f3a"), "the secret in {what}");
        for v in &phi {
            assert!(!text.contains(v.as_str()), "{v} in {what}");
        }
    }
}

/// `throttle: {rate: 20/s, per: metadata.message_type}`: a bucket per message type. Each request
/// holds records of one type, every record arrives once, and each type's requests keep its own
/// pace: the k-th request of a type arrives no earlier than (k - 1) intervals after the type's
/// first (a lower bound: delays only lengthen it), while types share no bucket.
#[test]
fn a_keyed_throttle_paces_each_key_on_its_own() {
    let dir = common::workspace("http-keyed-throttle");
    let server = Server::start(|_| Reply::Status(200, None));
    let spec =
        pipeline(&dir, &server.url, "    max_records: 1\n    throttle: {rate: 20/s, per: metadata.message_type}\n");
    // Each key's bucket is made after this instant, so its k-th request cannot reach the server
    // before `started + k * interval`, however late a slow machine sends any of them. (Measuring
    // from a key's first request instead failed under load: a late first request made the
    // next, sent on time, look early.)
    let started = std::time::Instant::now();
    let (out, summary) = run(&dir, &spec);
    assert_ok(&out);
    let accepted = server.accepted();
    assert_eq!(accepted.len() as u64, summary["delivered"].as_u64().unwrap(), "every record once");
    let seen = server.seen();
    let mut by_type: std::collections::BTreeMap<String, Vec<std::time::Instant>> = Default::default();
    for s in &seen {
        let types: std::collections::BTreeSet<String> = s
            .body
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["metadata"]["message_type"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(types.len(), 1, "one key per request: {types:?}");
        by_type.entry(types.into_iter().next().unwrap()).or_default().push(s.at);
    }
    assert!(by_type.len() >= 3, "several keys: {:?}", by_type.keys());
    // Enough requests on one key that an unthrottled run (all of them within moments of the
    // start) would break the floor below.
    assert!(by_type.values().any(|t| t.len() >= 10), "a busy key: {:?}", by_type.values().map(Vec::len));
    let interval = Duration::from_millis(50);
    for (key, times) in &by_type {
        for (k, t) in times.iter().enumerate() {
            let floor = interval * k as u32;
            assert!(
                t.duration_since(started) >= floor,
                "{key}: request {k} came {:?} after the run started, sooner than its bucket allows",
                t.duration_since(started)
            );
        }
    }
    println!("{} requests over {} keys", seen.len(), by_type.len());
}
