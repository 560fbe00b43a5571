//! The MLLP source end to end: `sluice run` on a listening pipeline, real peers, SIGINT.
//!
//! - python-hl7's `mllp_send` (a peer no one here wrote; installed into `target/venv-hl7` by
//!   `scripts/setup-mllp-peer`, which this test runs when it is missing) sends the examples and
//!   the shared HL7 corpus (when present; a loud SKIPPED line otherwise): every message gets an
//!   ACK with its MSH-10 in MSA-2, and AA/AE/AR add up to the run's summary.
//! - Raw TCP from this test: on_commit ordering (the sink line or DLQ entry is on disk when the
//!   ACK arrives), garbage, oversize and truncated frames, idle timeout, on_receipt,
//!   max_connections, SIGTERM.
//! - TLS with a self-signed certificate made here (rcgen) and a rustls client.
//! - After SIGINT or SIGTERM: exit 0, a balanced summary, DLQ and audit contents, an intact
//!   audit chain, and no patient name or SSN from the data in stdout, stderr or the audit log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sluice_hl7v2::ack::Header;
use sluice_hl7v2::codec::parse_message;
use sluice_hl7v2::mllp;

mod common;
use common::{messages, phi_values, root};

/// A fresh directory with the bundled pipelines, mappings and examples, and the listener
/// pipeline rewritten: any free port, and each `(from, to)` text replaced.
fn workspace(name: &str, edits: &[(&str, &str)]) -> common::Workspace {
    let dir = common::workspace(&format!("mllp-{name}"));
    let p = dir.join("pipelines/mllp-listener.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    let mut spec = spec.replace("listen: 127.0.0.1:2575", "listen: 127.0.0.1:0");
    for (from, to) in edits {
        assert!(spec.contains(from), "the bundled listener pipeline has `{from}`");
        spec = spec.replace(from, to);
    }
    std::fs::write(&p, spec).unwrap();
    dir
}

/// A running `sluice run` on the listener pipeline.
struct Server {
    running: common::Running,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut running = common::Running::spawn(Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args([
            "run",
            "pipelines/mllp-listener.yaml",
            "--summary",
            "json",
        ]));
        let port = running.wait_for("listening address", common::listening_port);
        Server { running, port, dir: dir.to_path_buf() }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// Sends the signal, waits for the exit; returns (exit code, summary JSON, stdout, stderr).
    fn stop(self, signal: &str) -> (Option<i32>, serde_json::Value, String, String) {
        self.running.stop(signal)
    }

    fn out(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join("out/mllp-listener").join(file)).unwrap_or_default()
    }
}

/// Reads one MLLP frame (the ACK) from `s`; `None` when the peer closed the connection.
fn read_frame(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut framer = mllp::Framer::new(1 << 20);
    let mut events = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        framer.push(&buf[..n], &mut events);
        if let Some(mllp::Event::Frame { payload, .. }) = events.pop() {
            return Some(payload);
        }
    }
}

/// MSA-1 and MSA-2 of an ACK.
fn msa(ack: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(ack);
    let m = parse_message(&text).unwrap_or_else(|e| panic!("the ACK parses: {e}: {text:?}"));
    let msa = m.segments_named("MSA").next().expect("an MSA segment");
    let f = |n| msa.field(n).and_then(|f| f.first()).unwrap_or_default().to_string();
    (f(1), f(2))
}

fn assert_no_phi(values: &[String], outputs: &[(&str, &str)]) {
    for (what, text) in outputs {
        for v in values {
            assert!(!text.contains(v.as_str()), "a value from the data leaked into {what}");
        }
    }
}

/// python-hl7's `mllp_send`, installed on first use by `scripts/setup-mllp-peer`.
fn mllp_send() -> PathBuf {
    let bin = root().join("target/venv-hl7/bin/mllp_send");
    if !bin.exists() {
        let status = Command::new(root().join("scripts/setup-mllp-peer")).status().expect("setup script runs");
        assert!(status.success(), "scripts/setup-mllp-peer failed (it needs python3 and PyPI)");
    }
    bin
}

/// The shared HL7 v2 corpus files, or `None` after a loud SKIPPED line.
fn corpus() -> Option<Vec<PathBuf>> {
    let dir = match std::env::var_os("SLUICE_CORPUS") {
        Some(r) => PathBuf::from(r).join("hl7v2"),
        None => root().join("../shared/corpus/hl7v2"),
    };
    if !dir.is_dir() {
        println!("\n*** SKIPPED: the HL7 corpus part of the MLLP peer test ({} not found) ***\n", dir.display());
        eprintln!("SKIPPED: ../shared/corpus not found; the MLLP peer test sent the examples only");
        return None;
    }
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("hl7" | "txt")) {
                files.push(p);
            }
        }
    }
    files.sort();
    Some(files)
}

#[test]
fn python_hl7_peer_gets_one_ack_per_message_and_the_run_balances() {
    let peer = mllp_send();
    let dir = workspace("peer", &[]);
    let mut files: Vec<PathBuf> =
        ["examples/hl7/feed-2024-01-15.hl7", "examples/hl7/rejects.hl7"].iter().map(|f| root().join(f)).collect();
    if let Some(c) = corpus() {
        files.extend(c);
    }
    // One MLLP stream of every message that has an MSH to answer (mllp_send splits its input
    // at FS and frames each part again). Its splitting would cut at a form feed (0x0C) too:
    // such messages are left out, and counted.
    let (mut framed, mut expected, mut left_out) = (Vec::new(), Vec::new(), 0);
    for f in &files {
        for m in messages(f) {
            let Some(h) = Header::salvage(&m) else {
                left_out += 1;
                continue;
            };
            if m.contains(&0x0C) {
                left_out += 1;
                continue;
            }
            framed.extend(mllp::frame(&m));
            expected.push(h.control_id.unwrap_or_default());
        }
    }
    println!(
        "sending {} messages from {} files ({left_out} without an MSH or with a form feed left out)",
        expected.len(),
        files.len()
    );
    let stream = dir.join("framed.mllp");
    std::fs::write(&stream, &framed).unwrap();
    let server = Server::start(&dir);
    let sent = Command::new(&peer)
        .args(["--file", stream.to_str().unwrap(), "--port", &server.port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    assert!(sent.status.success(), "mllp_send failed: {}", String::from_utf8_lossy(&sent.stderr));
    // mllp_send prints each answer (one socket read) and a newline.
    let mut acks = Vec::new();
    let mut framer = mllp::Framer::new(1 << 20);
    let mut events = Vec::new();
    framer.push(&sent.stdout, &mut events);
    framer.finish(&mut events);
    for e in events {
        match e {
            mllp::Event::Frame { payload, .. } => acks.push(payload),
            mllp::Event::Garbage { head, .. } => assert!(head.iter().all(|b| *b == b'\n'), "{head:?}"),
            other => panic!("not an ACK: {other:?}"),
        }
    }
    assert_eq!(acks.len(), expected.len(), "one ACK per message");
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    for (ack, id) in acks.iter().zip(&expected) {
        // An ACK is written in the message's MSH-18 set; read it the same way.
        let text = match sluice_hl7v2::charset::decode(ack, &Default::default()) {
            Ok(d) => d.text.into_owned(),
            // MSH-18 names a set Sluice does not know: the ACK was written in UTF-8.
            Err(_) => String::from_utf8_lossy(ack).into_owned(),
        };
        let (code, msa2) = msa(text.as_bytes());
        assert_eq!(&msa2, id, "MSA-2 echoes MSH-10");
        *codes.entry(code).or_default() += 1;
    }
    let (exit, summary, stdout, stderr) = server.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    assert!(stderr.contains("SIGINT: no new connections"), "{stderr}");
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(summary["balanced"], true);
    assert_eq!(n("records_in"), expected.len() as u64);
    let aa = codes.get("AA").copied().unwrap_or(0);
    let not_aa = codes.get("AE").copied().unwrap_or(0) + codes.get("AR").copied().unwrap_or(0);
    assert_eq!(aa, n("delivered") + n("filtered"), "{codes:?} {summary}");
    assert_eq!(not_aa, n("dlq"), "{codes:?} {summary}");
    assert!(aa > 30 && not_aa > 0, "{codes:?}");
    let dir_out = dir.join("out/mllp-listener");
    let dlq = std::fs::read_to_string(dir_out.join("dlq.jsonl")).unwrap();
    let sink = std::fs::read_to_string(dir_out.join("patient-events.jsonl")).unwrap();
    assert_eq!(sink.lines().count() as u64, n("delivered"));
    assert!(dlq.lines().count() as u64 >= n("dlq"));
    let audit_path = dir_out.join("audit.jsonl");
    // run_started, one entry per record, run_completed.
    assert_eq!(sluice_runtime::verify_audit_chain(&audit_path).unwrap(), n("records_in") + 2);
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    assert!(audit.contains("\"record\":\"hl7_listener:127.0.0.1:"), "audit names the peer and connection");
    let examples: Vec<PathBuf> = files.iter().take(2).cloned().collect();
    assert_no_phi(&phi_values(&examples), &[("stdout", &stdout), ("stderr", &stderr), ("the audit log", &audit)]);
}

const ADT: &str = "MSH|^~\\&|SENDER|FAC|RECV|RFAC|20240115103000||ADT^A01^ADT_A01|CTRL1|P|2.5.1\rEVN|A01|20240115103000\rPID|1||12345^^^HOSP^MR||ZEBULON^QUINTUS||19800101|M|||1 MAIN ST^^TOWN^ST^12345||||||||123-45-6789\rPV1|1|I|WARD^101^A\r";

#[test]
fn on_commit_acks_only_after_the_record_is_on_disk_and_bad_frames_get_ar_or_close() {
    let dir = workspace(
        "commit",
        &[("max_frame_bytes: 1048576", "max_frame_bytes: 2000"), ("idle_timeout: 60s", "idle_timeout: 1s")],
    );
    let server = Server::start(&dir);
    let mut s = server.connect();
    // 1. A valid ADT: its sink line is on disk when the AA arrives.
    s.write_all(&mllp::frame(ADT.as_bytes())).unwrap();
    let ack = read_frame(&mut s).expect("an ACK");
    assert_eq!(msa(&ack), ("AA".into(), "CTRL1".into()));
    assert!(server.out("patient-events.jsonl").contains("\"message_id\":\"CTRL1\""), "AA before the sink line");
    // 2. A message failing validation (no PID-3): AE with ERR, and its DLQ entry is on disk.
    let bad = ADT.replace("CTRL1", "CTRL2").replace("12345^^^HOSP^MR", "");
    s.write_all(&mllp::frame(bad.as_bytes())).unwrap();
    let ack = read_frame(&mut s).unwrap();
    assert_eq!(msa(&ack).0, "AE");
    assert!(String::from_utf8_lossy(&ack).contains("\rERR|"), "AE carries ERR segments");
    let dlq = common::dlq_raws(&server.dir.join("out/mllp-listener/dlq.jsonl"));
    assert!(dlq.iter().any(|raw| raw.contains("CTRL2")), "AE before the DLQ entry");
    // 3. Unparseable (bad segment id mid-message): AR from the salvaged MSH.
    let unparseable = ADT.replace("CTRL1", "CTRL3").replace("EVN|", "evn|");
    s.write_all(&mllp::frame(unparseable.as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AR".into(), "CTRL3".into()));
    // 4. Garbage between frames: skipped (DLQ), the next frame is answered.
    s.write_all(b"some junk\r\n").unwrap();
    s.write_all(&mllp::frame(ADT.replace("CTRL1", "CTRL4").as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AA".into(), "CTRL4".into()));
    // 5. Oversize frame: AR (its MSH is in the kept head); the connection goes on.
    let big = format!("{}NTE|1||{}\r", ADT.replace("CTRL1", "CTRL5"), "x".repeat(5000));
    s.write_all(&mllp::frame(big.as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AR".into(), "CTRL5".into()));
    s.write_all(&mllp::frame(ADT.replace("CTRL1", "CTRL6").as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AA".into(), "CTRL6".into()));
    // 6. Truncated frame, then silence: AR after the idle timeout, and the connection closes.
    let partial = ADT.replace("CTRL1", "CTRL7");
    s.write_all(&[mllp::VT]).unwrap();
    s.write_all(&partial.as_bytes()[..80]).unwrap();
    assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AR".into(), "CTRL7".into()));
    assert!(read_frame(&mut s).is_none(), "closed after a truncated frame");
    // 7. A frame with no MSH: nothing to answer with, the connection is closed.
    let mut s = server.connect();
    s.write_all(&mllp::frame(b"hello there")).unwrap();
    assert!(read_frame(&mut s).is_none());
    // 8. An idle connection is closed after idle_timeout, without a record.
    let mut s = server.connect();
    assert!(read_frame(&mut s).is_none());
    let (exit, summary, stdout, stderr) = server.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(summary["balanced"], true, "{summary}");
    // frames 1-7 (6 is truncated), the garbage and the no-MSH frame: 9 records
    assert_eq!(summary["records_in"], 9, "{summary}");
    let dlq = std::fs::read_to_string(dir.join("out/mllp-listener/dlq.jsonl")).unwrap();
    for code in ["\"code\":\"RT111\"", "\"code\":\"RT112\"", "\"code\":\"RT113\"", "\"stage\":\"validate\""] {
        assert!(dlq.contains(code), "{code} in the DLQ");
    }
    let audit = std::fs::read_to_string(dir.join("out/mllp-listener/audit.jsonl")).unwrap();
    let phi = ["ZEBULON".to_string(), "QUINTUS".to_string(), "123-45-6789".to_string()];
    assert_no_phi(&phi, &[("stdout", &stdout), ("stderr", &stderr), ("the audit log", &audit)]);
}

#[test]
fn a_restarted_listener_appends_and_keeps_one_audit_chain() {
    let dir = workspace("restart", &[]);
    let send = |server: &Server, ids: &[&str]| {
        let mut s = server.connect();
        for id in ids {
            s.write_all(&mllp::frame(ADT.replace("CTRL1", id).as_bytes())).unwrap();
            assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AA".into(), id.to_string()));
        }
    };
    let first = Server::start(&dir);
    send(&first, &["FIRST1", "FIRST2", "FIRST3"]);
    let (exit, _, _, stderr) = first.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    // What a crash in the middle of a write leaves: a partial line, of a record never ACKed.
    let sink = dir.join("out/mllp-listener/patient-events.jsonl");
    let audit = dir.join("out/mllp-listener/audit.jsonl");
    for file in [&sink, &audit] {
        let mut f = std::fs::OpenOptions::new().append(true).open(file).unwrap();
        f.write_all(b"{\"partial\":").unwrap();
    }
    let second = Server::start(&dir);
    send(&second, &["SECOND1", "SECOND2"]);
    let (exit, summary, _, stderr) = second.stop("TERM");
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(summary["records_in"], 2, "the summary counts this run");
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&sink).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<&str> = lines.iter().map(|r| r["metadata"]["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["FIRST1", "FIRST2", "FIRST3", "SECOND1", "SECOND2"], "the first run's records kept");
    // Two runs, one chain: run_started, 3 records, run_completed, then run_started, 2 records,
    // run_completed: seq 0..=8.
    assert_eq!(sluice_runtime::verify_audit_chain(&audit), Ok(9));
    let entries: Vec<serde_json::Value> =
        std::fs::read_to_string(&audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    let events: Vec<&str> = entries.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events[0], "run_started");
    assert_eq!(events[4], "run_completed");
    assert_eq!(events[5], "run_started");
    assert_eq!(events[8], "run_completed");
    assert_ne!(entries[0]["run_id"], entries[5]["run_id"], "each start is a run of its own");
    assert_eq!(lines[3]["compliance"]["audit_log_id"], format!("{}-6", entries[5]["run_id"].as_str().unwrap()));
}

#[test]
fn on_receipt_acks_max_connections_and_sigterm_drains() {
    let dir = workspace(
        "receipt",
        &[("timing: on_commit", "timing: on_receipt"), ("max_connections: 32", "max_connections: 1")],
    );
    let server = Server::start(&dir);
    let mut s = server.connect();
    for i in 0..20 {
        let m = ADT.replace("CTRL1", &format!("R{i}"));
        s.write_all(&mllp::frame(m.as_bytes())).unwrap();
        assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AA".into(), format!("R{i}")));
    }
    // Acknowledged on receipt, and no more messages coming: the records are not left in the
    // writer's buffers waiting for the next ones.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.out("patient-events.jsonl").lines().count() < 20 {
        assert!(std::time::Instant::now() < deadline, "the records were not written while the listener idles");
        std::thread::sleep(Duration::from_millis(20));
    }
    let unparseable = ADT.replace("CTRL1", "RBAD").replace("EVN|", "evn|");
    s.write_all(&mllp::frame(unparseable.as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut s).unwrap()).0, "AR");
    // max_connections 1: a second connection waits to be accepted until the first closes.
    let mut waiting = server.connect();
    waiting.write_all(&mllp::frame(ADT.replace("CTRL1", "LATER").as_bytes())).unwrap();
    waiting.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    assert!(waiting.read(&mut byte).is_err(), "not served while the first connection is open");
    drop(s);
    waiting.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(msa(&read_frame(&mut waiting).unwrap()), ("AA".into(), "LATER".into()));
    drop(waiting);
    let (exit, summary, _, stderr) = server.stop("TERM");
    assert_eq!(exit, Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert_eq!(summary["records_in"], 22);
    assert_eq!(summary["delivered"], 21);
    assert_eq!(summary["balanced"], true);
}

#[test]
fn enhanced_mode_and_tls() {
    let tls = "    max_connections: 32\n    tls:\n      cert: cert.pem\n      key: ${file:key.pem}\n";
    let dir = workspace("tls", &[("mode: original", "mode: enhanced"), ("    max_connections: 32\n", tls)]);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("pipelines/cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("pipelines/key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let server = Server::start(&dir);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, server.connect());
    // MSH-15 AL: an accept ACK (CA) comes back.
    let m = ADT.replace("|P|2.5.1\r", "|P|2.5.1|||AL|NE\r");
    tls.write_all(&mllp::frame(m.as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut tls).unwrap()), ("CA".into(), "CTRL1".into()));
    // A plain-text peer on the TLS port gets no ACK.
    let mut plain = server.connect();
    plain.write_all(&mllp::frame(ADT.as_bytes())).unwrap();
    assert!(read_frame(&mut plain).is_none());
    drop(tls);
    let (exit, summary, _, stderr) = server.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(summary["records_in"], 1);
    assert_eq!(summary["balanced"], true);
}

#[test]
fn two_listeners_with_priorities_both_ack_and_the_audit_names_each_source() {
    let backfill = concat!(
        "  hl7_backfill:\n",
        "    type: mllp\n",
        "    listen: 127.0.0.1:0\n",
        "    profile: ../mappings/base/profiles/default.yaml\n",
        "    priority: backfill\n",
        "stages:\n",
    );
    let dir = workspace(
        "priority",
        &[
            ("    max_connections: 32\n", "    max_connections: 32\n    priority: interactive\n"),
            ("stages:\n", backfill),
            ("inputs: [hl7_listener]", "inputs: [hl7_listener, hl7_backfill]"),
        ],
    );
    let plan = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["plan", "pipelines/mllp-listener.yaml"])
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{plan_text}");
    assert!(plan_text.contains("priority interactive") && plan_text.contains("priority backfill"), "{plan_text}");

    let (running, ports) = start_listeners(&dir, 2);
    for (source, port) in &ports {
        let mut s = TcpStream::connect(("127.0.0.1", *port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        for i in 0..3 {
            let id = format!("{}{i}", &source[4..6].to_uppercase());
            s.write_all(&mllp::frame(ADT.replace("CTRL1", &id).as_bytes())).unwrap();
            assert_eq!(msa(&read_frame(&mut s).unwrap()), ("AA".into(), id));
        }
    }
    let (exit, summary, stdout, stderr) = running.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(stderr.matches("SIGINT: no new connections").count(), 1, "one stop notice: {stderr}");
    assert_eq!(summary["records_in"], 6);
    assert_eq!(summary["delivered"], 6);
    assert_eq!(summary["balanced"], true);
    let audit_path = dir.join("out/mllp-listener/audit.jsonl");
    assert_eq!(sluice_runtime::verify_audit_chain(&audit_path).unwrap(), 8);
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    for source in ports.keys() {
        assert_eq!(audit.matches(&format!("\"record\":\"{source}:127.0.0.1:")).count(), 3, "{source}: {audit}");
    }
    let phi = ["ZEBULON", "QUINTUS", "123-45-6789", "19800101"].map(String::from);
    assert_no_phi(&phi, &[("stdout", &stdout), ("stderr", &stderr), ("the audit log", &audit)]);
}

/// Starts `sluice run` on the listener pipeline of `dir` and waits until its `count` sources
/// listen; returns the process and each source's port by name.
fn start_listeners(dir: &Path, count: usize) -> (common::Running, std::collections::BTreeMap<String, u16>) {
    let mut running = common::Running::spawn(Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args([
        "run",
        "pipelines/mllp-listener.yaml",
        "--summary",
        "json",
    ]));
    let mut ports = std::collections::BTreeMap::new();
    while ports.len() < count {
        let (source, port) = running.wait_for("the listening addresses", |line| {
            let source = line.strip_prefix("source ")?.split(':').next()?.to_string();
            Some((source, common::listening_port(line)?))
        });
        ports.insert(source, port);
    }
    (running, ports)
}

/// A busy pipeline (an `http` sink throttled to 20 requests of 4 records a second) with 400
/// backfill messages queued: a message on the interactive listener overtakes them. Its ACK
/// (on_commit: once durable) arrives while most of the backfill is still waiting. Counted in
/// records, not timed: without priority it would come after all 400.
#[test]
fn an_interactive_message_overtakes_a_queued_backfill() {
    use common::http_server::{Reply, Server};
    let http = Server::start(|_| Reply::Status(200, None));
    let backfill_source = concat!(
        "  hl7_backfill:\n",
        "    type: mllp\n",
        "    listen: 127.0.0.1:0\n",
        "    profile: ../mappings/base/profiles/default.yaml\n",
        "    priority: backfill\n",
        "    ack: {timing: on_receipt}\n",
        "stages:\n",
    );
    let http_sink = format!(
        "sinks:\n  slow_api:\n    type: http\n    inputs: [mask]\n    url: {}\n    throttle: {{rate: 20/s}}\n",
        http.url
    );
    let dir = workspace(
        "overtake",
        &[
            ("    max_connections: 32\n", "    max_connections: 32\n    priority: interactive\n"),
            ("stages:\n", backfill_source),
            ("inputs: [hl7_listener]", "inputs: [hl7_listener, hl7_backfill]"),
            ("sinks:\n", &http_sink),
            ("batch_size: 64", "batch_size: 4"),
        ],
    );
    let (running, ports) = start_listeners(&dir, 2);
    const BACKFILL: usize = 400;
    let backfill = TcpStream::connect(("127.0.0.1", ports["hl7_backfill"])).unwrap();
    backfill.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writer = backfill.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..BACKFILL {
            writer.write_all(&mllp::frame(ADT.replace("CTRL1", &format!("B{i}")).as_bytes())).unwrap();
        }
    });
    // The ACKs come back pipelined, several per read: one framer for the whole stream.
    let reader = {
        let (acked, mut backfill) = (Arc::clone(&acked), backfill);
        std::thread::spawn(move || {
            let mut framer = mllp::Framer::new(1 << 20);
            let (mut events, mut buf) = (Vec::new(), [0u8; 65536]);
            while acked.load(std::sync::atomic::Ordering::SeqCst) < BACKFILL {
                let n = backfill.read(&mut buf).expect("the backfill's ACKs keep coming");
                assert!(n > 0, "the listener closed the backfill connection");
                framer.push(&buf[..n], &mut events);
                for e in events.drain(..) {
                    let mllp::Event::Frame { payload, .. } = e else { panic!("not an ACK: {e:?}") };
                    assert_eq!(msa(&payload).0, "AA");
                    acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    // on_receipt: the backfill is acknowledged as it is queued; wait until it all is.
    reader.join().unwrap();
    sender.join().unwrap();
    let backfill_delivered = || http.accepted().iter().filter(|r| r["metadata"]["message_id"] != "LIVE1").count();
    assert!(backfill_delivered() < BACKFILL / 2, "the pipeline is busy: most of the backfill still waits");
    let mut live = TcpStream::connect(("127.0.0.1", ports["hl7_listener"])).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    live.write_all(&mllp::frame(ADT.replace("CTRL1", "LIVE1").as_bytes())).unwrap();
    assert_eq!(msa(&read_frame(&mut live).unwrap()), ("AA".into(), "LIVE1".into()));
    let ahead = backfill_delivered();
    println!("the interactive message was delivered after {ahead} of {BACKFILL} backfill records");
    assert!(ahead < BACKFILL / 2, "{ahead} backfill records went first");
    drop(live);
    // Everything still arrives: nothing queued was dropped.
    let (exit, summary, _, stderr) = running.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(summary["records_in"], BACKFILL as u64 + 1);
    assert_eq!(summary["delivered"], BACKFILL as u64 + 1);
    assert_eq!(http.accepted().len(), BACKFILL + 1);
}

/// A profile with `bad_segments: drop`: a message with one unparseable line is accepted (AA),
/// with a warning ERR naming the dropped segment and its DLQ entry, never its content; the
/// record reaches the sink and the line the DLQ.
#[test]
fn a_dropped_segment_is_acknowledged_with_a_warning() {
    let dir = workspace("dropped", &[("profile: ../mappings/base/profiles/default.yaml", "profile: lenient.yaml")]);
    let profile = std::fs::read_to_string(dir.join("mappings/base/profiles/default.yaml")).unwrap();
    let profile = profile.replace("name: default", "name: lenient") + "bad_segments: drop\n";
    std::fs::write(dir.join("pipelines/lenient.yaml"), profile).unwrap();
    let server = Server::start(&dir);
    let mut s = server.connect();
    let with_garbage = ADT.replace("\rPV1|", "\rfree text from the sender ZEBULON\rPV1|").replace("CTRL1", "DROP1");
    s.write_all(&mllp::frame(with_garbage.as_bytes())).unwrap();
    let ack = read_frame(&mut s).unwrap();
    assert_eq!(msa(&ack), ("AA".into(), "DROP1".into()));
    let text = String::from_utf8_lossy(&ack).into_owned();
    let m = parse_message(&text).unwrap();
    let err = m.segments_named("ERR").next().unwrap_or_else(|| panic!("an ERR segment: {text:?}"));
    let field = |n| err.field(n).and_then(|f| f.first()).unwrap_or_default().to_string();
    assert_eq!(field(4), "W", "a warning: {text:?}");
    assert_eq!(field(5), "RT114");
    assert!(text.contains("segment 4 could not be parsed (HL7004)") && text.contains(".seg4"), "{text:?}");
    assert!(!text.contains("ZEBULON") && !text.contains("free text"), "the ACK names the segment, not its content");
    drop(s);
    let (exit, summary, _, stderr) = server.stop("INT");
    assert_eq!(exit, Some(0), "{stderr}");
    assert_eq!(summary["delivered"], 1);
    assert_eq!(summary["parts_dropped"], 1);
    assert_eq!(server_out_lines(&dir, "patient-events.jsonl"), 1);
    assert_eq!(server_out_lines(&dir, "dlq.jsonl"), 1);
}

fn server_out_lines(dir: &Path, file: &str) -> usize {
    std::fs::read_to_string(dir.join("out/mllp-listener").join(file)).unwrap_or_default().lines().count()
}

#[test]
fn with_the_dlq_in_the_state_store_an_on_commit_ae_means_the_row_is_committed_and_listeners_append() {
    let dir = workspace(
        "dlq-store",
        &[
            ("  path: ../out/mllp-listener/dlq.jsonl", "  store: state"),
            (
                "audit:\n  path: ../out/mllp-listener/audit.jsonl\n",
                "audit:\n  path: ../out/mllp-listener/audit.jsonl\nstate:\n  path: ../out/mllp-listener/state.db\n",
            ),
        ],
    );
    let listed = || {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&dir)
            .args(["dlq", "list", "pipelines/mllp-listener.yaml", "--output", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let bad = |id: &str| ADT.replace("CTRL1", id).replace("12345^^^HOSP^MR", "");
    for (n, id) in ["CTRL1", "CTRL2"].into_iter().enumerate() {
        let server = Server::start(&dir);
        let mut s = server.connect();
        s.write_all(&mllp::frame(bad(id).as_bytes())).unwrap();
        assert_eq!(msa(&read_frame(&mut s).unwrap()).0, "AE");
        // Read while the listener runs: the row was committed before the AE left.
        assert_eq!(listed(), n + 1, "the entry is in the table when the AE arrives; a new listener appends");
        let (exit, summary, stdout, stderr) = server.stop("INT");
        assert_eq!(exit, Some(0), "{stderr}");
        assert_eq!(summary["dlq"], 1, "{summary}");
        assert!(!dir.join("out/mllp-listener/dlq.jsonl").exists());
        let phi = ["ZEBULON".to_string(), "QUINTUS".to_string(), "123-45-6789".to_string()];
        assert_no_phi(&phi, &[("stdout", &stdout), ("stderr", &stderr)]);
    }
}
