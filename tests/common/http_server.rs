//! A real HTTP/1.1 server on 127.0.0.1 for the tests of `http` sinks (std::net, one thread per
//! connection), answering each request as a script says by its number: a status (with an
//! optional `Retry-After`), a late answer, an answer held until the test releases it, or a
//! reset. It keeps what it saw of each request, with the moment it arrived.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the server does with request number `n` (1-based).
#[derive(Clone, Copy)]
pub enum Reply {
    Status(u16, Option<&'static str>),
    /// Answers 200, but only after this long (past the sink's `timeout`).
    Late(Duration),
    /// Closes the connection with the request body unread: the kernel answers with a reset.
    Reset,
    /// Answers 200 once the test calls [`Server::release`] (a run held at its sink while the
    /// test changes something): the n-th request held waits for the n-th release.
    Held,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The status it was answered with in time (`None`: late or reset).
    pub status: Option<u16>,
    pub key: String,
    pub content_type: String,
    pub authorization: Option<String>,
    pub body: String,
    /// When its request head had been read.
    pub at: Instant,
}

pub struct Server {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    released: Arc<Releases>,
}

/// How many held requests were let go, and how many were held.
#[derive(Default)]
struct Releases {
    counts: Mutex<(usize, usize)>,
    wake: Condvar,
}

impl Server {
    pub fn start(script: fn(usize) -> Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/ingest?tenant=t1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let released = Arc::new(Releases::default());
        let (log, release) = (Arc::clone(&seen), Arc::clone(&released));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (log, count, release) = (Arc::clone(&log), Arc::clone(&count), Arc::clone(&release));
                std::thread::spawn(move || handle(conn, script, &count, &log, &release));
            }
        });
        Server { url, seen, released }
    }

    /// Lets the next request answered [`Reply::Held`] have its answer.
    pub fn release(&self) {
        self.released.counts.lock().unwrap().0 += 1;
        self.released.wake.notify_all();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The records of the requests answered 2xx in time, in the order they arrived.
    pub fn accepted(&self) -> Vec<Value> {
        self.seen()
            .iter()
            .filter(|s| s.status.is_some_and(|c| (200..300).contains(&c)))
            .flat_map(|s| s.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>())
            .collect()
    }
}

fn handle(
    conn: TcpStream,
    script: fn(usize) -> Reply,
    count: &AtomicUsize,
    log: &Mutex<Vec<Seen>>,
    release: &Releases,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
    let reply = script(n);
    let mut seen = Seen {
        status: None,
        key: header("idempotency-key").unwrap_or_default(),
        content_type: header("content-type").unwrap_or_default(),
        authorization: header("authorization"),
        body: String::new(),
        at: Instant::now(),
    };
    if let Reply::Reset = reply {
        log.lock().unwrap().push(seen);
        return; // dropped with the body unread: RST
    }
    let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    seen.body = String::from_utf8(body).unwrap();
    match reply {
        Reply::Status(code, _) => seen.status = Some(code),
        Reply::Held => seen.status = Some(200),
        _ => {}
    }
    // Logged before answering, so a run that ends meanwhile finds it in the log.
    log.lock().unwrap().push(seen);
    let (status, extra) = match reply {
        Reply::Status(code, retry_after) => {
            (code, retry_after.map(|r| format!("Retry-After: {r}\r\n")).unwrap_or_default())
        }
        Reply::Late(d) => {
            std::thread::sleep(d);
            (200, String::new())
        }
        Reply::Held => {
            let mut counts = release.counts.lock().unwrap();
            counts.1 += 1;
            let mine = counts.1;
            let _released = release.wake.wait_while(counts, |(released, _)| *released < mine).unwrap();
            (200, String::new())
        }
        Reply::Reset => unreachable!(),
    };
    let mut conn = conn;
    let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n{extra}\r\n");
}
