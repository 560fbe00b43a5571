//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 for the `fhir.rest` tests (std::net, one
//! thread per connection, one request per connection): it forwards each request to the real
//! FHIR server behind it and answers with what the server said, except when its schedule says
//! otherwise for that request: an error status (with an optional `Retry-After`), a slow answer,
//! a dropped connection (closed before any answer), or an answer cut short. It can also demand
//! an `Authorization` header (401 otherwise), or act as an OAuth 2.0 resource server: check
//! each bearer token by introspection (RFC 7662) at a real authorization server, and expire a
//! token there mid-sync ([`Fault::ExpireToken`]); it keeps each request's target and the
//! moment it arrived. Faults the real server will not produce, on a real wire.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with one request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answers this status itself (with `Retry-After` when given), without asking the server.
    Status(u16, Option<&'static str>),
    /// Forwards, but answers only after this long.
    Slow(Duration),
    /// Closes the connection without an answer.
    Drop,
    /// Forwards, then sends only the first half of the answer's body and closes.
    Truncate,
    /// Forwards, with the `next` link taken out of the Bundle (a server that does not page).
    NoNextLink,
    /// With introspection on: destroys the request's access token at the authorization server
    /// first (an expiry mid-sync), so that the request is refused with a 401 (or the 403 of
    /// [`FaultProxy::refuse_with_403`]).
    ExpireToken,
    /// Answers 403 with `WWW-Authenticate: Bearer error="insufficient_scope"`: a valid token
    /// without the scope for this search.
    InsufficientScope,
}

/// Where bearer tokens are introspected: the authorization server's port, and the client id
/// and secret the proxy authenticates with.
#[derive(Clone, Debug)]
pub struct Introspection {
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
}

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    pub authorization: Option<String>,
    pub at: Instant,
    /// The fault it got, if any.
    pub fault: Option<String>,
    /// Whether it was answered 401 for its credentials.
    pub refused: bool,
}

#[derive(Default)]
struct Shared {
    /// Faults for the next requests, in order, each for the requests whose path starts with
    /// its prefix (`None`: any request); a request takes the first one meant for it.
    faults: VecDeque<(Option<String>, Option<Fault>)>,
    seen: Vec<Seen>,
    require: Option<String>,
    introspection: Option<Introspection>,
    /// Every bearer token refused (a server that accepts none of the issuer's tokens).
    refuse_tokens: bool,
    /// Refused tokens are answered 403 `error="invalid_token"` instead of 401.
    refuse_with_403: bool,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub port: u16,
    upstream: String,
    shared: Arc<Mutex<Shared>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`127.0.0.1:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = FaultProxy { port, upstream: upstream.to_string(), shared: Arc::default() };
        let p = proxy.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let p = p.clone();
                std::thread::spawn(move || p.serve(stream));
            }
        });
        proxy
    }

    /// Queues faults for the next requests (`None`: forward that one untouched).
    pub fn schedule(&self, faults: Vec<Option<Fault>>) {
        self.shared.lock().unwrap().faults.extend(faults.into_iter().map(|f| (None, f)));
    }

    /// Queues faults for the next requests whose path starts with `prefix` (`/Patient`).
    pub fn schedule_for(&self, prefix: &str, faults: Vec<Option<Fault>>) {
        self.shared.lock().unwrap().faults.extend(faults.into_iter().map(|f| (Some(prefix.to_string()), f)));
    }

    /// Demands `Authorization: <value>` of every request from now on (`None`: no check).
    pub fn require_authorization(&self, value: Option<&str>) {
        self.shared.lock().unwrap().require = value.map(str::to_string);
    }

    /// Checks every request's bearer token by introspection from now on (`None`: no check).
    pub fn introspect(&self, at: Option<Introspection>) {
        self.shared.lock().unwrap().introspection = at;
    }

    /// With introspection on: refuses every token, active or not.
    pub fn refuse_tokens(&self, refuse: bool) {
        self.shared.lock().unwrap().refuse_tokens = refuse;
    }

    /// Answers refused tokens with 403 and `WWW-Authenticate: Bearer error="invalid_token"`
    /// (as some servers answer an expired token) instead of 401.
    pub fn refuse_with_403(&self, on: bool) {
        self.shared.lock().unwrap().refuse_with_403 = on;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    fn serve(&self, mut client: TcpStream) {
        let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut head = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
            head.push(line.trim_end().to_string());
        }
        let Some(request_line) = head.first().cloned() else { return };
        let target = request_line.split(' ').nth(1).unwrap_or_default().to_string();
        let header = |name: &str| {
            head.iter().skip(1).find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let authorization = header("authorization");
        let at = Instant::now();
        let (fault, require, introspection, refuse_tokens, refuse_with_403) = {
            let mut s = self.shared.lock().unwrap();
            let mine = s.faults.iter().position(|(p, _)| p.as_deref().is_none_or(|p| target.starts_with(p)));
            let fault = mine.and_then(|i| s.faults.remove(i)).and_then(|(_, f)| f);
            (fault, s.require.clone(), s.introspection.clone(), s.refuse_tokens, s.refuse_with_403)
        };
        let bearer = authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::to_string);
        let token_refused = introspection.as_ref().is_some_and(|i| {
            let Some(token) = &bearer else { return true };
            if matches!(fault, Some(Fault::ExpireToken)) {
                expire(i, token);
            }
            refuse_tokens || !active(i, token)
        });
        let refused = token_refused || (require.is_some() && authorization != require);
        self.shared.lock().unwrap().seen.push(Seen {
            target: target.clone(),
            authorization: authorization.clone(),
            at,
            fault: fault.as_ref().map(|f| format!("{f:?}")),
            refused,
        });
        if refused && token_refused && refuse_with_403 {
            let _ = client.write_all(
                b"HTTP/1.1 403 Forbidden\r\nWWW-Authenticate: Bearer realm=\"fhir\", error=\"invalid_token\", error_description=\"The access token expired\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        if refused {
            let _ = client.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        match fault {
            Some(Fault::InsufficientScope) => {
                let _ = client.write_all(
                    b"HTTP/1.1 403 Forbidden\r\nWWW-Authenticate: Bearer realm=\"fhir\", error=\"insufficient_scope\", scope=\"system/Patient.read\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
            Some(Fault::Status(status, retry_after)) => {
                let extra = retry_after.map_or(String::new(), |r| format!("Retry-After: {r}\r\n"));
                let body = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}"#;
                let _ = write!(
                    client,
                    "HTTP/1.1 {status} Fault\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                    body.len()
                );
                return;
            }
            Some(Fault::Drop) => return,
            _ => {}
        }
        // Forwarded with the connection closed after the answer, so the answer ends at EOF.
        let mut upstream = TcpStream::connect(&self.upstream).unwrap();
        let mut out = format!("{request_line}\r\n");
        for h in head.iter().skip(1) {
            let name = h.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
            if name != "connection" {
                out.push_str(h);
                out.push_str("\r\n");
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        upstream.write_all(out.as_bytes()).unwrap();
        upstream.write_all(&body).unwrap();
        let mut answer = Vec::new();
        let _ = upstream.read_to_end(&mut answer);
        match fault {
            Some(Fault::Slow(d)) => std::thread::sleep(d),
            Some(Fault::Truncate) => {
                let split = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| i + 4);
                let cut = split + (answer.len() - split) / 2;
                answer.truncate(cut);
            }
            Some(Fault::NoNextLink) => answer = without_next_link(&answer),
            _ => {}
        }
        let _ = client.write_all(&answer);
        let _ = client.flush();
    }
}

/// Whether the authorization server says `token` is active (RFC 7662).
fn active(at: &Introspection, token: &str) -> bool {
    use base64::Engine;
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", at.client_id, at.client_secret));
    let body = form_urlencoded::Serializer::new(String::new()).append_pair("token", token).finish();
    let Ok(mut r) = agent
        .post(format!("http://127.0.0.1:{}/token/introspection", at.port))
        .header("Authorization", format!("Basic {basic}"))
        .content_type("application/x-www-form-urlencoded")
        .send(body)
    else {
        return false;
    };
    let json: serde_json::Value =
        serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default();
    json["active"] == true
}

/// Destroys `token` at the authorization server (its test endpoint), as an expiry would.
fn expire(at: &Introspection, token: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("token", token).finish();
    let _ = agent.get(format!("http://127.0.0.1:{}/test/expire-access-token?{query}", at.port)).call();
}

/// The answer with its Bundle's `next` link taken out (sent whole, with a Content-Length).
fn without_next_link(answer: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let body = if chunked { dechunk(body) } else { body.to_string() };
    let mut bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
    if let Some(links) = bundle.get_mut("link").and_then(serde_json::Value::as_array_mut) {
        links.retain(|l| l["relation"] != "next");
    }
    let body = serde_json::to_string(&bundle).unwrap();
    let mut out = String::new();
    for line in head.split("\r\n") {
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if name != "transfer-encoding" && name != "content-length" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// A plain HTTP/1.1 request to `127.0.0.1:port` (a body is FHIR JSON); the status and body.
pub fn request(port: u16, method: &str, target: &str, body: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/fhir+json\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(rest) } else { rest.to_string() })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
