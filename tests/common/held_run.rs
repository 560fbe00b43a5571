//! A run held at its sink while a test changes what it reads: the pipeline's sink becomes an
//! `http` sink to a [`Server`] that holds a request until the test has done its change, so the
//! change lands at a known point (after the objects before it were read, before the run
//! completes) without any timing. And the audit log's `object_gone` entries (RT184).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::http_server::Server;
use super::text;

/// The pipeline `spec` with its `sinks:` replaced by an `http` sink to `url` fed by `mask`,
/// one record per request.
pub fn with_http_sink(spec: &Path, url: &str) {
    let text = std::fs::read_to_string(spec).unwrap();
    let (start, end) = (text.find("sinks:").unwrap(), text.find("dlq:").unwrap());
    let sink = format!("sinks:\n  events:\n    type: http\n    inputs: [mask]\n    url: {url}\n    timeout: 60s\n");
    let text = format!("{}{sink}{}", &text[..start], &text[end..]).replace("batch_size: 64", "batch_size: 1");
    assert!(text.contains("batch_size: 1"), "{text}");
    std::fs::write(spec, text).unwrap();
}

/// Runs `command` until `server` sees a request from it (one the server's script holds), runs
/// `meanwhile`, lets the request go, and returns what the run printed. With objects of one
/// message each, every object before that record's has been read to its end by then.
pub fn run_held(command: &mut Command, server: &Server, meanwhile: impl FnOnce()) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = server.seen().len();
    while server.seen().len() == before {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("no request from the run: {}", text(&child.wait_with_output().unwrap().stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    meanwhile();
    server.release();
    child.wait_with_output().unwrap()
}

/// The `object_gone` entries of the audit log at `path`, as (object, reason).
pub fn objects_gone(path: &Path) -> Vec<(String, String)> {
    let audit = std::fs::read_to_string(path).unwrap();
    audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "object_gone")
        .map(|e| (e["object"].as_str().unwrap().to_string(), e["reason"].as_str().unwrap().to_string()))
        .collect()
}
