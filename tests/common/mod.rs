//! Shared by the end-to-end tests of the binary: the repository root, and fresh scratch copies
//! of the bundled pipelines, mappings and examples, so tests run in parallel and never touch
//! the user's `out/`; the messages of a file, and the names and SSNs in them (what a leak of
//! data would show).
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

pub mod amqp;
pub mod checkpoints;
pub mod fault_proxy;
pub mod held_run;
pub mod http_server;
pub mod kafka;
pub mod live;
pub mod moto;
pub mod oidc;
pub mod plaid;
pub mod quickbooks;
pub mod runs;
pub mod stripe;
pub mod x12_corpus;

use std::io::BufReader;
use std::path::{Path, PathBuf};

/// The message tables' policy with names and SSNs tokenized instead of redacted (written as
/// `policies/tokenized.yaml` beside `message-tables.yaml`; keys from the test environment).
pub const TOKENIZING_POLICY: &str = "\
kind: masking
name: message-tables-tokenized
extends: ./message-tables.yaml
hash_key: ${SLUICE_TEST_MASK_KEY}
vault_key: ${SLUICE_TEST_VAULT_KEY}
classes:
  name: tokenize
  ssn: tokenize
";

/// Writes `pipelines/<bus>.yaml` into `dir`: the quick start (named `<bus>-feed`) whose
/// `hl7_files` source is `source` (its keys, indented under it; the default profile is added),
/// with `sinks` (YAML under `sinks:`) and its DLQ and audit under `out/`, without a state file.
pub fn quickstart_fed_by(dir: &Path, bus: &str, source: &str, sinks: &str) -> PathBuf {
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let start = quickstart.find("sources:").unwrap();
    let stages = quickstart.find("stages:").unwrap();
    let sinks_at = quickstart.find("\nsinks:").unwrap();
    let dlq_at = quickstart.find("\ndlq:").unwrap();
    let tail =
        quickstart[dlq_at..].replace("../out/quickstart/", "../out/").replace("state:\n  path: ../out/state.db\n", "");
    let spec = format!(
        "{}sources:\n  hl7_files:\n{source}    profile: ../mappings/base/profiles/default.yaml\nstages:{}\nsinks:\n{sinks}{}",
        &quickstart[..start].replace("name: quickstart", &format!("name: {bus}-feed")),
        &quickstart[stages + "stages:".len()..sinks_at],
        tail
    );
    let path = dir.join(format!("pipelines/{bus}.yaml"));
    std::fs::write(&path, spec).unwrap();
    path
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A fresh temporary directory `sluice-<name>-<pid>` holding a copy of the bundled pipelines,
/// mappings and examples. It is removed when the test ends, unless the test failed: then it
/// stays, for a look at what the run wrote.
pub fn workspace(name: &str) -> Workspace {
    let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["pipelines", "mappings", "examples"] {
        copy_dir(&root().join(sub), &dir.join(sub));
    }
    Workspace(dir)
}

/// An empty temporary directory `sluice-<name>-<pid>`, removed as [`workspace`]'s is.
pub fn scratch(name: &str) -> Workspace {
    let dir = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Workspace(dir)
}

/// See [`workspace`].
pub struct Workspace(PathBuf);

impl std::ops::Deref for Workspace {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for Workspace {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `sluice ARGS` in `dir` at debug log level (so a PHI grep of its output covers the most
/// verbose logs) and waits for it.
pub fn sluice_debug(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(args)
        .env("SLUICE_LOG", "debug")
        .output()
        .expect("sluice runs")
}

/// The JSON values of a JSON Lines file, one a line (none when the file is missing).
pub fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    s.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The raw messages of a DLQ file written by a bundled pipeline, decrypted with the bundled
/// example key (`examples/dlq-example.key`), as text (lossy for bytes that are not UTF-8).
pub fn dlq_raws(dlq: &Path) -> Vec<String> {
    let key = std::fs::read(root().join("examples/dlq-example.key")).unwrap();
    let key = sluice_runtime::dlq::DlqKey::parse(&key).unwrap();
    sluice_runtime::dlq::read_entries(dlq)
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.raw_bytes(Some(&key)).unwrap()).into_owned())
        .collect()
}

/// The messages of a file, as the splitter cuts them.
pub fn messages(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::File::open(path).unwrap();
    let (stream, _) = sluice_hl7v2::charset::Utf8Stream::new(f).unwrap();
    sluice_hl7v2::split::MessageSplitter::new(BufReader::new(stream)).map(|r| r.unwrap().bytes).collect()
}

/// Every PID-5 name part (3+ letters) and PID-19 SSN in the files: what a leak would show.
pub fn phi_values(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        for line in text.split(['\r', '\n']).filter(|l| l.starts_with("PID|")) {
            let fields: Vec<&str> = line.split('|').collect();
            for name in fields.get(5).unwrap_or(&"").split(['~', '^']).take(2) {
                if name.len() >= 4 && name.chars().all(|c| c.is_alphabetic()) {
                    out.push(name.to_string());
                }
            }
            if let Some(ssn) = fields.get(19).filter(|s| s.len() >= 9) {
                out.push(ssn.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The port of a listener's `source ...: listening on ADDRESS:PORT ...` stderr line.
pub fn listening_port(line: &str) -> Option<u16> {
    let addr = line.split("listening on ").nth(1)?;
    addr.split_whitespace().next()?.rsplit(':').next()?.parse().ok()
}

/// A `sluice` process started with piped stdout and stderr; a thread collects stderr and hands
/// each line on, so a test can wait for what the process announces (`listening on`, `metrics:`).
/// Dropping it kills the process: a failed assertion never leaves a listener running.
pub struct Running {
    pub child: std::process::Child,
    /// Every stderr line so far.
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    pub fn spawn(command: &mut std::process::Command) -> Running {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("sluice runs");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, lines) = std::sync::mpsc::channel();
        let err = child.stderr.take().unwrap();
        let log = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
        Running { child, stderr, lines }
    }

    /// Waits (up to a minute) for the first stderr line `pick` finds something in; kills the
    /// process and fails with its stderr if none comes.
    pub fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&str) -> Option<T>) -> T {
        loop {
            match self.lines.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no {what} on stderr: {}", self.stderr.lock().unwrap())
                }
            }
        }
    }

    /// Sends `signal` (`INT`, `TERM`) and waits for the exit; returns the exit code, the summary
    /// (`--summary json` on stdout), stdout and stderr.
    pub fn stop(mut self, signal: &str) -> (Option<i32>, serde_json::Value, String, String) {
        use std::io::Read;
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
        let mut stdout = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        // The stderr thread may still be handing on the last lines.
        std::thread::sleep(std::time::Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        let summary = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (status.code(), summary, stdout, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new, empty PostgreSQL database `sluice_<name>` on the test server (`SLUICE_TEST_PG_URL`,
/// set by scripts/test through scripts/start-postgres), dropped first if it is there, so each
/// test has its own and tests run in parallel. Its URL; `None`, after a loud SKIPPED line,
/// when no test server is given (a plain `cargo test`).
pub fn pg_database(name: &str) -> Option<String> {
    let Ok(admin) = std::env::var("SLUICE_TEST_PG_URL") else {
        // Straight to stderr, past the test harness's capture, so a plain `cargo test` shows it.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "*** SKIPPED {name}: SLUICE_TEST_PG_URL is not set (scripts/test starts PostgreSQL and sets it) ***\n"
            )
            .as_bytes(),
        );
        return None;
    };
    let db = format!("sluice_{}", name.replace('-', "_"));
    let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("the test PostgreSQL server");
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).unwrap();
    client.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, q)| (b, q));
    let server = &base[..base.rfind('/').expect("a database in SLUICE_TEST_PG_URL")];
    Some(if query.is_empty() { format!("{server}/{db}") } else { format!("{server}/{db}?{query}") })
}

/// Rows of a query on a PostgreSQL database, every column read as text.
pub fn pg_rows(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect()
}

/// A TCP port nothing listens on right now, for a server a test starts (or for an address
/// that refuses connections).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
