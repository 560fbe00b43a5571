//! Watching a run, through the real binary: `sluice run --metrics` (a Prometheus endpoint) and
//! the progress line.
//!
//! - A live MLLP listener with `--metrics 127.0.0.1:0`: the endpoint is scraped before, while
//!   and after messages arrive. Every scrape parses with `prometheus-parse` (a parser written
//!   by others) and passes a strict line check of the 0.0.4 text format; counters never go
//!   down; the last scrape equals the final summary; other paths get 404; no name or SSN from
//!   the data appears in the metrics text.
//! - A bad `--metrics` address, and a port in use: RT019, and the run does not start.
//! - The progress line: nothing on stderr when it is not a terminal (the quick start's stderr
//!   stays empty); under a pseudo-terminal (`script` from util-linux) the line is drawn and
//!   cleared before the summary, and `--quiet` turns it off.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_hl7v2::ack::Header;
use sluice_hl7v2::mllp;

mod common;
use common::{messages, phi_values, text};

fn sluice() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
}

/// A running `sluice run PIPELINE --summary json --metrics 127.0.0.1:0`, with the addresses it
/// printed on stderr.
struct Run {
    running: common::Running,
    metrics: SocketAddr,
    mllp_port: u16,
}

impl Run {
    fn start(dir: &Path, pipeline: &str) -> Run {
        let mut running = common::Running::spawn(sluice().current_dir(dir).args([
            "run",
            pipeline,
            "--summary",
            "json",
            "--metrics",
            "127.0.0.1:0",
        ]));
        // The metrics address is printed before the run starts, so before the listener's.
        let metrics = running.wait_for("metrics address", |line| {
            let url = line.strip_prefix("metrics: http://")?;
            Some(url.strip_suffix("/metrics").expect("the URL ends in /metrics").parse().expect("a socket address"))
        });
        let mllp_port = running.wait_for("listening address", common::listening_port);
        Run { running, metrics, mllp_port }
    }

    /// SIGTERM, then the exit code, the summary and stderr.
    fn stop(self) -> (Option<i32>, serde_json::Value, String) {
        let (code, summary, _, stderr) = self.running.stop("TERM");
        (code, summary, stderr)
    }
}

/// Sends `request` as is and returns the whole response (the server closes the connection).
fn http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let response = http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"));
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_string(), body.to_string())
}

/// Reads one MLLP frame (an ACK) from `conn`.
fn read_ack(conn: &mut TcpStream) {
    let mut framer = mllp::Framer::new(1 << 20);
    let (mut events, mut buf) = (Vec::new(), [0u8; 4096]);
    while !events.iter().any(|e| matches!(e, mllp::Event::Frame { .. })) {
        let n = conn.read(&mut buf).expect("an ACK");
        assert!(n > 0, "the listener closed the connection instead of answering");
        framer.push(&buf[..n], &mut events);
    }
}

/// One scrape: the text, and every sample as `name{labels}` -> value.
struct Scrape {
    text: String,
    values: BTreeMap<String, f64>,
}

impl Scrape {
    fn get(&self, key: &str) -> u64 {
        *self.values.get(key).unwrap_or_else(|| panic!("no `{key}` in:\n{}", self.text)) as u64
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    parse_response(&http(addr, "GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n"))
}

/// Checks and parses the response to `GET /metrics`.
fn parse_response(response: &str) -> Scrape {
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let body = body.to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Type: text/plain; version=0.0.4"), "{head}");
    assert!(head.contains("\r\nConnection: close"), "{head}");
    check_lines(&body);
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("the text parses");
    let sample_lines = body.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(parsed.samples.len(), sample_lines, "the parser read every sample:\n{body}");
    let mut values = BTreeMap::new();
    for s in parsed.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v) => {
                assert!(s.metric.ends_with("_total"), "a counter ends in _total: {}", s.metric);
                v
            }
            prometheus_parse::Value::Gauge(v) => v,
            other => panic!("{} is neither a counter nor a gauge: {other:?}", s.metric),
        };
        assert!(parsed.docs.contains_key(&s.metric), "{} has a # HELP line", s.metric);
        let labels: BTreeMap<_, _> = s.labels.iter().collect();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let key = if labels.is_empty() { s.metric.clone() } else { format!("{}{{{}}}", s.metric, labels.join(",")) };
        values.insert(key, value);
    }
    Scrape { text: body, values }
}

/// The 0.0.4 text format, strictly: each family is `# HELP`, `# TYPE`, then its samples (name,
/// optional labels with quoted values, an integer), and nothing else.
fn check_lines(body: &str) {
    assert!(body.ends_with('\n'), "the text ends with a line feed");
    let is_name = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || (i > 0 && c.is_ascii_digit()))
    };
    let mut lines = body.lines().peekable();
    while let Some(help) = lines.next() {
        let name = help.strip_prefix("# HELP ").and_then(|h| h.split(' ').next()).expect("a family starts with # HELP");
        assert!(is_name(name), "{help}");
        let kind = lines.next().and_then(|t| t.strip_prefix(&format!("# TYPE {name} "))).expect("then # TYPE");
        assert!(kind == "counter" || kind == "gauge", "{kind}");
        while let Some(sample) = lines.next_if(|l| !l.starts_with('#')) {
            let (series, value) = sample.rsplit_once(' ').expect("a sample has a value");
            assert!(value.parse::<u64>().is_ok(), "an integer value: {sample}");
            let labels = series.strip_prefix(name).expect("the sample belongs to its family");
            if !labels.is_empty() {
                let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}')).expect("{labels}");
                for pair in inner.split(',') {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(is_name(k), "{sample}");
                    assert!(v.len() >= 2 && v.starts_with('"') && v.ends_with('"'), "{sample}");
                }
            }
        }
    }
}

/// The counters a scrape and a summary share, as (metric key, summary key).
const COUNTERS: &[(&str, &str)] = &[
    ("sluice_records_in_total", "records_in"),
    ("sluice_records_delivered_total", "delivered"),
    ("sluice_records_dlq_total", "dlq"),
    ("sluice_records_filtered_total", "filtered"),
    ("sluice_records_warnings_total", "warnings"),
    ("sluice_parts_dropped_total", "parts_dropped"),
];

fn counters(s: &Scrape) -> Vec<(String, u64)> {
    s.values.iter().filter(|(k, _)| k.contains("_total")).map(|(k, v)| (k.clone(), *v as u64)).collect()
}

fn assert_not_decreasing(before: &Scrape, after: &Scrape) {
    for (key, was) in counters(before) {
        let now = after.get(&key);
        assert!(now >= was, "{key} went down from {was} to {now}");
    }
}

#[test]
fn a_live_run_is_scraped_while_it_runs_and_ends_at_its_summary() {
    let dir = common::workspace("metrics-live");
    let p = dir.join("pipelines/mllp-listener.yaml");
    let spec = std::fs::read_to_string(&p).unwrap().replace("listen: 127.0.0.1:2575", "listen: 127.0.0.1:0");
    std::fs::write(&p, spec).unwrap();
    let examples: Vec<PathBuf> =
        ["examples/hl7/feed-2024-01-15.hl7", "examples/hl7/rejects.hl7"].iter().map(|f| dir.join(f)).collect();
    // Each message is sent after the ACK of the one before (an unacknowledged message may be
    // dropped with its connection, as MLLP allows): so only messages with an MSH to answer.
    let all: Vec<Vec<u8>> =
        examples.iter().flat_map(|f| messages(f)).filter(|m| Header::salvage(m).is_some()).collect();
    let run = Run::start(&dir, "pipelines/mllp-listener.yaml");

    let first = scrape(run.metrics);
    assert_eq!(first.get("sluice_run_up"), 1);
    assert_eq!(first.get("sluice_records_in_total"), 0);
    assert_eq!(first.get("sluice_source_records_total{source=\"hl7_listener\"}"), 0, "series exist from the start");
    assert_eq!(first.get("sluice_sink_records_total{sink=\"patient_events\"}"), 0);
    let info: Vec<&String> = first.values.keys().filter(|k| k.starts_with("sluice_run_info{")).collect();
    assert_eq!(info.len(), 1, "{}", first.text);
    assert!(info[0].starts_with("sluice_run_info{pipeline=\"mllp-listener\",run_id=\""), "{}", info[0]);

    // Half the messages, one ACK each, then scrapes until the counts show them all.
    let mut scrapes = vec![first];
    let (half, rest) = all.split_at(all.len() / 2);
    let mut sent = 0;
    for part in [half, rest] {
        let mut conn = TcpStream::connect(("127.0.0.1", run.mllp_port)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        for m in part {
            conn.write_all(&mllp::frame(m)).unwrap();
            scrapes.push(scrape(run.metrics));
            read_ack(&mut conn);
        }
        drop(conn);
        sent += part.len() as u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = scrape(run.metrics);
            let seen = s.get("sluice_records_in_total");
            scrapes.push(s);
            if seen == sent {
                break;
            }
            assert!(seen < sent && Instant::now() < deadline, "{seen} records in after sending {sent}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mid = scrapes.last().unwrap();
        assert_eq!(mid.get("sluice_run_up"), 1, "the run is still going");
    }
    for pair in scrapes.windows(2) {
        assert_not_decreasing(&pair[0], &pair[1]);
    }

    // Other paths and methods.
    for path in ["/", "/metric", "/metrics/x", "/../metrics"] {
        let (head, _) = get(run.metrics, path);
        assert!(head.starts_with("HTTP/1.1 404 "), "{path}: {head}");
    }
    let post = http(run.metrics, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    let junk = http(run.metrics, "\u{1}\u{2} nonsense\r\n\r\n");
    assert!(junk.starts_with("HTTP/1.1 404 "), "{junk}");

    let last = scrape(run.metrics);
    let metrics = run.metrics;
    let (exit, summary, stderr) = run.stop();
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(summary["balanced"], true);
    assert_eq!(summary["records_in"].as_u64(), Some(all.len() as u64));
    for (metric, key) in COUNTERS {
        assert_eq!(Some(last.get(metric)), summary[key].as_u64(), "{metric} = summary {key}");
    }
    for (name, n) in summary["per_source"].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap(), &p[1])) {
        assert_eq!(Some(last.get(&format!("sluice_source_records_total{{source=\"{name}\"}}"))), n.as_u64());
    }
    for (name, n) in summary["per_sink"].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap(), &p[1])) {
        assert_eq!(Some(last.get(&format!("sluice_sink_records_total{{sink=\"{name}\"}}"))), n.as_u64());
    }
    let run_id = summary["run_id"].as_str().unwrap();
    assert_eq!(last.get(&format!("sluice_run_info{{pipeline=\"mllp-listener\",run_id=\"{run_id}\"}}")), 1);
    assert_eq!(last.get("sluice_checkpoints_total"), 0, "a listener keeps no checkpoints");
    assert!(TcpStream::connect_timeout(&metrics, Duration::from_secs(1)).is_err(), "the endpoint ends with the run");

    let phi = phi_values(&examples);
    assert!(phi.len() > 10, "the examples have names and SSNs to look for");
    for s in &scrapes {
        for v in &phi {
            assert!(!s.text.contains(v.as_str()), "a value from the data is in the metrics");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn error_code(stderr: &str) -> &str {
    stderr.strip_prefix("error[").and_then(|e| e.split(']').next()).unwrap_or_default()
}

#[test]
fn a_bad_metrics_address_stops_the_run_before_it_starts() {
    let dir = common::workspace("metrics-bad");
    for (address, exit) in [("localhost", 2), ("127.0.0.1", 2), ("127.0.0.1:99999", 2)] {
        let out = sluice()
            .current_dir(&dir)
            .args(["run", "pipelines/quickstart.yaml", "--metrics", address])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(exit), "{address}: {stderr}");
        assert_eq!(error_code(&stderr), "RT019", "{stderr}");
        assert!(stderr.contains(address) && stderr.contains("help: "), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out =
        sluice().current_dir(&dir).args(["run", "pipelines/quickstart.yaml", "--metrics", &address]).output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(error_code(&stderr), "RT019", "{stderr}");
    assert!(stderr.contains(&address), "{stderr}");
    assert!(!dir.join("out/quickstart").exists(), "the run did not start");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_progress_line_when_stderr_is_not_a_terminal() {
    let dir = common::workspace("metrics-notty");
    let out = sluice().current_dir(&dir).args(["run", "pipelines/quickstart.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "nothing on stderr");
    assert!(text(&out.stdout).starts_with("run "), "{}", text(&out.stdout));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `sluice ARGS` under a pseudo-terminal (`script` from util-linux) and returns everything
/// it wrote there; `None` after a loud SKIPPED line when `script` is missing.
fn under_a_terminal(dir: &Path, args: &[&str]) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        println!("\n*** SKIPPED: the progress line on a terminal (`script` from util-linux not found) ***\n");
        return None;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut command = quote(env!("CARGO_BIN_EXE_sluice"));
    for a in args {
        command.push(' ');
        command.push_str(&quote(a));
    }
    let out = Command::new("script")
        .current_dir(dir)
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    Some(text(&out.stdout))
}

#[test]
fn on_a_terminal_the_progress_line_is_drawn_then_cleared_before_the_summary() {
    let dir = common::workspace("metrics-tty");
    let Some(shown) = under_a_terminal(&dir, &["run", "pipelines/quickstart.yaml"]) else { return };
    let summary_at = shown.find("run ").unwrap_or_else(|| panic!("a summary: {shown:?}"));
    let (line, summary) = shown.split_at(summary_at);
    assert!(line.contains("in 0 · delivered 0 · dlq 0 · filtered 0"), "the line is drawn at the start: {line:?}");
    assert!(line.ends_with("\r\u{1b}[2K"), "and cleared before the summary: {line:?}");
    assert!(summary.contains("in 66 = delivered 39 + dlq 6 + filtered 21 (balanced)"), "{summary:?}");
    assert!(!summary.contains('\u{1b}'), "the summary is plain text: {summary:?}");

    let quiet = under_a_terminal(&dir, &["run", "pipelines/quickstart.yaml", "--quiet"]).unwrap();
    assert!(quiet.starts_with("run "), "--quiet: no progress line: {quiet:?}");
    assert!(!quiet.contains('\u{1b}'), "{quiet:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_run_id_label_and_counts_of_a_file_run_end_at_its_summary() {
    // A file run ends by itself; scrapes while it runs never go down and never pass the summary.
    let dir = common::workspace("metrics-file");
    let feed = std::fs::read(dir.join("examples/hl7/feed-2024-01-15.hl7")).unwrap();
    std::fs::create_dir_all(dir.join("input")).unwrap();
    std::fs::write(dir.join("input/feed.hl7"), [feed.as_slice(), b"\r\n"].concat().repeat(100)).unwrap();
    let spec = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    assert!(spec.contains("../examples/hl7/*.hl7"));
    std::fs::write(dir.join("pipelines/big.yaml"), spec.replace("../examples/hl7/*.hl7", "../input/*.hl7")).unwrap();
    let mut child = sluice()
        .current_dir(&dir)
        .args(["run", "pipelines/big.yaml", "--summary", "json", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("metrics: http://")
        .and_then(|u| u.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    let mut scrapes = Vec::new();
    while let Ok(mut s) = TcpStream::connect(addr) {
        // At the end of the run the endpoint may close between connect and answer.
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        let mut response = String::new();
        if s.read_to_string(&mut response).is_err() || !response.starts_with("HTTP/1.1 200") {
            break;
        }
        scrapes.push(parse_response(&response));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert!(!scrapes.is_empty(), "the endpoint answered at least once");
    for pair in scrapes.windows(2) {
        assert_not_decreasing(&pair[0], &pair[1]);
    }
    let last = scrapes.last().unwrap();
    for (metric, key) in COUNTERS {
        assert!(Some(last.get(metric)) <= summary[key].as_u64(), "{metric} <= summary {key}");
    }
    if last.get("sluice_records_in_total") > 0 {
        let run_id = summary["run_id"].as_str().unwrap();
        assert_eq!(last.get(&format!("sluice_run_info{{pipeline=\"quickstart\",run_id=\"{run_id}\"}}")), 1);
    }
    println!("{} scrapes during a run of {} records", scrapes.len(), summary["records_in"]);
    let _ = std::fs::remove_dir_all(&dir);
}
