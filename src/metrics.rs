//! `sluice run --metrics ADDRESS`: a Prometheus endpoint (`GET /metrics`, text exposition
//! format 0.0.4) serving the live counts of the run from a [`Progress`], on its own thread, for
//! the life of the run.
//!
//! It lives in the CLI crate because it is a way of watching a run, like the progress line:
//! the runtime only publishes counts ([`Progress`]) and knows nothing of HTTP.
//!
//! Invariants:
//! - Only counts, component names, the pipeline name and the run id: never a data value.
//! - Counters come from one snapshot per scrape, so they are consistent with each other and
//!   never go down between scrapes (the snapshot's own guarantee).
//! - Every source and sink of the plan has its series from the first scrape (at 0 until the
//!   run counts it), so a series never appears halfway through a run.
//! - A minimal HTTP/1.1 responder: one request per connection (`Connection: close`), requests
//!   read with a timeout and a size limit, anything but `GET /metrics` answered 404 (405 for
//!   another method on `/metrics`). Connections are served one at a time on the server's
//!   thread, so a client cannot make it allocate without bound.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_runtime::progress::{Progress, Snapshot};

/// The longest request head read; longer requests get a 404 for what was read.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoint, serving until [`MetricsServer::stop`].
pub struct MetricsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Why the endpoint cannot start.
pub enum MetricsError {
    /// The text is not `IP:PORT`.
    BadAddress(String),
    /// Binding failed (in use, not an address of this machine, privileged port).
    Bind(String),
}

impl MetricsServer {
    /// Binds `address` (`IP:PORT`; port 0 picks a free one) and serves `progress` for the run
    /// of `run`.
    pub fn start(address: &str, run: RunNames, progress: Arc<Progress>) -> Result<MetricsServer, MetricsError> {
        let wanted: SocketAddr = address.parse().map_err(|_| {
            MetricsError::BadAddress(format!(
                "--metrics `{address}` is not an IP address and port (for example 127.0.0.1:9464)"
            ))
        })?;
        let listener = TcpListener::bind(wanted)
            .map_err(|e| MetricsError::Bind(format!("--metrics cannot listen on {wanted}: {e}")))?;
        let address = listener.local_addr().map_err(|e| MetricsError::Bind(format!("--metrics: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("sluice-metrics".into())
                .spawn(move || serve(&listener, &stop, &run, &progress))
                .map_err(|e| MetricsError::Bind(format!("--metrics: cannot start its thread: {e}")))?
        };
        Ok(MetricsServer { address, stop, thread: Some(thread) })
    }

    /// The address bound (with the port chosen when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and waits for the server's thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking `accept` with a connection of our own.
        let _ = TcpStream::connect_timeout(&wake_address(self.address), Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Where to connect to reach a listener bound on `bound` (an unspecified address is reached
/// on loopback).
fn wake_address(bound: SocketAddr) -> SocketAddr {
    let mut a = bound;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

fn serve(listener: &TcpListener, stop: &AtomicBool, run: &RunNames, progress: &Progress) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // A failed connection (reset, timeout) concerns that client only.
        if let Ok(conn) = conn {
            let _ = answer(conn, run, progress);
        }
    }
}

/// Reads one request head and writes one response.
fn answer(mut conn: TcpStream, run: &RunNames, progress: &Progress) -> std::io::Result<()> {
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    conn.set_write_timeout(Some(READ_TIMEOUT))?;
    let head = read_head(&mut conn)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    // A query string does not change the answer (Prometheus may add one).
    let path = target.split('?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render(run, progress.run_id(), &progress.snapshot()))
        }
        (_, "/metrics") => ("405 Method Not Allowed", "text/plain; charset=utf-8", "only GET /metrics\n".to_string()),
        _ => ("404 Not Found", "text/plain; charset=utf-8", "not found: metrics are at /metrics\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        response.push_str("Allow: GET\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    conn.write_all(response.as_bytes())?;
    conn.flush()
}

/// The request line and headers, up to the blank line (or the size limit, or the end).
fn read_head(conn: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < MAX_REQUEST_BYTES && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// What the metrics are labelled with: the pipeline, and its sources and sinks (so that their
/// series exist, at 0, from the first scrape, before the run publishes its first counts).
pub struct RunNames {
    pub pipeline: String,
    pub sources: Vec<String>,
    pub sinks: Vec<String>,
}

impl RunNames {
    pub fn of(plan: &sluice_compiler::plan::Plan) -> RunNames {
        use sluice_compiler::plan::ComponentKind;
        let names = |pick: fn(&ComponentKind) -> bool| {
            plan.components.iter().filter(|c| pick(&c.kind)).map(|c| c.name.clone()).collect()
        };
        RunNames {
            pipeline: plan.pipeline.clone(),
            sources: names(|k| matches!(k, ComponentKind::Source(_))),
            sinks: names(|k| matches!(k, ComponentKind::Sink(_))),
        }
    }
}

/// The exposition text of one snapshot.
fn render(run: &RunNames, run_id: Option<&str>, s: &Snapshot) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: u64| vec![(String::new(), v)];
    family(
        "sluice_run_info",
        "gauge",
        "The pipeline and the run this process executes (always 1; run_id is empty until the run has started).",
        &[(labels(&[("pipeline", &run.pipeline), ("run_id", run_id.unwrap_or_default())]), 1)],
    );
    family(
        "sluice_run_up",
        "gauge",
        "1 while the run is going, 0 once its last batch is written.",
        &one(u64::from(!s.done)),
    );
    family(
        "sluice_records_in_total",
        "counter",
        "Records read from the sources (a resumed run counts from its first record).",
        &one(s.records.records_in),
    );
    family(
        "sluice_records_delivered_total",
        "counter",
        "Records that reached at least one sink and no DLQ.",
        &one(s.records.delivered),
    );
    family("sluice_records_dlq_total", "counter", "Records with at least one DLQ entry.", &one(s.records.dlq));
    family(
        "sluice_records_filtered_total",
        "counter",
        "Records dropped by a filter or a route without a matching branch.",
        &one(s.records.filtered),
    );
    family(
        "sluice_records_warnings_total",
        "counter",
        "Records that carried at least one warning when they reached a sink or the DLQ.",
        &one(s.records.warnings),
    );
    family(
        "sluice_parts_dropped_total",
        "counter",
        "Segments a parser profile with bad_segments: drop left out of records that went on (each in the DLQ).",
        &one(s.records.parts_dropped),
    );
    // Every component the plan names, at 0 until the run counts it.
    let per = |key: &str, names: &[String], counts: &[(String, u64)]| -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = names.iter().map(|n| (n.clone(), 0)).collect();
        for (name, n) in counts {
            match all.iter_mut().find(|(known, _)| known == name) {
                Some(slot) => slot.1 = *n,
                None => all.push((name.clone(), *n)),
            }
        }
        all.into_iter().map(|(name, n)| (labels(&[(key, &name)]), n)).collect()
    };
    family(
        "sluice_source_records_total",
        "counter",
        "Records read, per source.",
        &per("source", &run.sources, &s.per_source),
    );
    family("sluice_sink_records_total", "counter", "Lines written, per sink.", &per("sink", &run.sinks, &s.per_sink));
    family(
        "sluice_checkpoints_total",
        "counter",
        "Checkpoints saved in the state store by this process.",
        &one(s.checkpoints),
    );
    out
}

/// `{a="x",b="y"}`, with label values escaped as the format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::counts::RecordCounts;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("sink", "a\"b\\c\nd")]), r#"{sink="a\"b\\c\nd"}"#);
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let s = Snapshot {
            records: RecordCounts { records_in: 5, delivered: 3, dlq: 1, filtered: 1, parts_dropped: 2, warnings: 0 },
            per_source: vec![("src".into(), 5)],
            per_sink: vec![("out".into(), 3)],
            ..Default::default()
        };
        let run =
            RunNames { pipeline: "p".into(), sources: vec!["src".into()], sinks: vec!["out".into(), "idle".into()] };
        let text = render(&run, Some("abc"), &s);
        let mut declared = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared = rest.split(' ').next().map(str::to_string);
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(declared.as_deref(), Some(name), "{line}");
            }
        }
        assert!(text.contains("sluice_run_info{pipeline=\"p\",run_id=\"abc\"} 1\n"));
        assert!(text.contains("\nsluice_parts_dropped_total 2\n"), "{text}");
        assert!(text.contains("sluice_source_records_total{source=\"src\"} 5\n"));
        assert!(text.contains("sluice_sink_records_total{sink=\"out\"} 3\n"));
        assert!(text.contains("sluice_sink_records_total{sink=\"idle\"} 0\n"), "a sink not yet counted is at 0");
        assert!(text.contains("sluice_run_up 1\n"));
    }
}
