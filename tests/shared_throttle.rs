//! Shared throttles (`throttle: {rate, shared: NAME}`), through the real binary: two `sluice
//! run` processes of two pipelines on one state store (SQLite, then PostgreSQL when
//! `SLUICE_TEST_PG_URL` is set), each POSTing to a test server on 127.0.0.1 that records when
//! each request arrives. The server holds its answers until both processes have sent their
//! first request, so the two runs overlap.
//!
//! With `shared: api` at 10/s, the N requests of both runs take starts at least 100 ms apart
//! on one time line, so the last arrives at least (N - 1) / 10 s after the first, less a small
//! tolerance for the first request's own way to the server (a lower bound: a slow machine only
//! lengthens it). Without `shared`, each run has its own bucket, and some one-second window
//! holds more than 10 requests: what the shared bucket prevents. No upper time bound anywhere.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PERMITS: usize = 10;

/// Arrivals: (which run, when).
type Arrivals = Arc<Mutex<Vec<(char, Instant)>>>;

struct Server {
    base: String,
    arrivals: Arrivals,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let arrivals: Arrivals = Arc::default();
        let log = Arc::clone(&arrivals);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || handle(conn, &log));
            }
        });
        Server { base, arrivals }
    }
}

fn handle(conn: TcpStream, log: &Arrivals) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let at = Instant::now();
    let run = if request_line.contains("/a ") { 'a' } else { 'b' };
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    let _ = reader.read_exact(&mut body);
    log.lock().unwrap().push((run, at));
    // The barrier: no answer until both runs have been heard from (a minute at most).
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let seen = log.lock().unwrap().iter().fold((false, false), |(a, b), (r, _)| (a || *r == 'a', b || *r == 'b'));
        if seen == (true, true) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut conn = conn;
    let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Pipeline `run` (`a` or `b`): the quick start, POSTing 3 records a request to the server's
/// `/a` or `/b`, with `throttle`, on the state store `state`, its other outputs in `out/<run>/`.
fn pipeline(dir: &Path, run: char, url: &str, throttle: &str, state: &str) -> String {
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let sink = format!(
        "sinks:\n  events:\n    type: http\n    inputs: [mask]\n    url: {url}/{run}\n    max_records: 3\n    throttle: {throttle}\n"
    );
    let (start, end) = (quickstart.find("sinks:").unwrap(), quickstart.find("dlq:").unwrap());
    let spec = format!("{}{}{}", &quickstart[..start], sink, &quickstart[end..])
        .replace("name: quickstart", &format!("name: shared-{run}"))
        .replace("path: ../out/quickstart/state.db", state)
        .replace("../out/quickstart/", &format!("../out/{run}/"));
    let file = format!("pipelines/shared-{run}.yaml");
    std::fs::write(dir.join(&file), spec).unwrap();
    file
}

fn spawn(dir: &Path, spec: &str, pg_url: Option<&str>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(["run", spec, "--quiet"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.env("NO_PROXY", "127.0.0.1");
    for v in ["ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"] {
        c.env_remove(v);
    }
    if let Some(url) = pg_url {
        c.env("SLUICE_STATE_URL", url);
    }
    c.spawn().unwrap()
}

/// Runs both pipelines at once; the arrival times, sorted, and how many requests each run sent.
fn run_both(name: &str, throttle: &str, pg_url: Option<&str>) -> (Vec<Instant>, usize, usize) {
    let dir = common::workspace(name);
    let server = Server::start();
    let state = match pg_url {
        Some(_) => "url: ${SLUICE_STATE_URL}".to_string(),
        None => "path: ../out/state.db".to_string(),
    };
    let a = pipeline(&dir, 'a', &server.base, throttle, &state);
    let b = pipeline(&dir, 'b', &server.base, throttle, &state);
    let children = [spawn(&dir, &a, pg_url), spawn(&dir, &b, pg_url)];
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}{}", common::text(&out.stdout), common::text(&out.stderr));
    }
    let arrivals = server.arrivals.lock().unwrap().clone();
    let count = |r: char| arrivals.iter().filter(|(x, _)| *x == r).count();
    let mut times: Vec<Instant> = arrivals.iter().map(|(_, t)| *t).collect();
    times.sort();
    (times, count('a'), count('b'))
}

/// The most requests that arrived within any one second.
fn busiest_second(times: &[Instant]) -> usize {
    (0..times.len())
        .map(|i| times[i..].iter().take_while(|t| **t - times[i] < Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

fn shared_bucket_spaces_both_runs(name: &str, pg_url: Option<&str>) {
    let (times, a, b) = run_both(name, "{rate: 10/s, shared: api}", pg_url);
    assert!(a >= 5 && b >= 5, "both runs posted: {a} and {b}");
    let n = times.len();
    let span = *times.last().unwrap() - times[0];
    let bound = Duration::from_millis(100) * (n as u32 - 1);
    let tolerance = Duration::from_millis(300);
    println!("{name}: {n} requests ({a} + {b}) over {span:?}; shared at 10/s needs at least {bound:?}");
    assert!(span + tolerance >= bound, "{n} requests within {span:?}: faster than 10/s together");
}

#[test]
fn a_shared_throttle_spaces_two_processes_on_a_sqlite_store() {
    shared_bucket_spaces_both_runs("throttle-shared-sqlite", None);
}

#[test]
fn a_shared_throttle_spaces_two_processes_on_a_postgres_store() {
    let Some(url) = common::pg_database("shared-throttle") else { return };
    shared_bucket_spaces_both_runs("throttle-shared-pg", Some(&url));
}

#[test]
fn without_shared_two_processes_together_exceed_the_rate() {
    let (times, a, b) = run_both("throttle-own", "{rate: 10/s}", None);
    let busiest = busiest_second(&times);
    println!("own buckets: {} requests ({a} + {b}), up to {busiest} within one second", times.len());
    assert!(busiest > PERMITS, "each run keeps its own 10/s, so together they send more: {busiest}");
}
