//! `sluice serve`: webhook deliveries signed by signers no one here wrote (Stripe's `stripe`
//! npm package, the `jose` JOSE library, Python's `hmac`), sent over real HTTP(S) to the real
//! binary; good, tampered, stale, future, oversize and replayed deliveries; Plaid's key fetched
//! from an endpoint shaped like Plaid's; `kill -9` with events still queued; and no payload in
//! stderr, the DLQ, the audit log or the sink.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;
use common::{Running, root, scratch};

const STRIPE_SECRET: &str = "whsec_test_0123456789abcdef";
const QBO_TOKEN: &str = "verifier-token-for-tests";
const FHIR_AUTH: &str = "Bearer fhir-subscription-token";
/// What the Stripe fixture's customer is called (tests/fixtures/webhooks/README.md): it must
/// never leave the queue.
const PII: &[&str] = &["customer@example.org", "Example Customer"];

fn signers() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let status = Command::new(root().join("scripts/setup-webhook-signers")).status().expect("setup runs");
            assert!(status.success(), "scripts/setup-webhook-signers failed (it needs node, npm and the npm registry)");
            root().join("target/webhook-signers")
        })
        .clone()
}

fn node(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("node")
        .arg(root().join("tests/fixtures/webhooks/signers.mjs"))
        .args(args)
        .env("SIGNERS", signers())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "signers.mjs {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The `Stripe-Signature` header, from `stripe.webhooks.generateTestHeaderString`.
fn stripe_header(body: &[u8], timestamp: i64) -> String {
    node(&["stripe", STRIPE_SECRET, &timestamp.to_string()], body)
}

/// The `intuit-signature` header, from Python's `hmac` and `base64`.
fn intuit_signature(body: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,hmac,sys; sys.stdout.write(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).digest()).decode())",
            QBO_TOKEN,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// A Stripe event around the pay-rails `charge.updated` data (with the customer's e-mail).
fn stripe_event(id: &str) -> Vec<u8> {
    let data: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/webhooks/stripe/charge.updated.data.json")).unwrap(),
    )
    .unwrap();
    serde_json::to_vec(&serde_json::json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": 1_700_000_000,
        "livemode": false, "pending_webhooks": 1, "type": "charge.updated", "data": data,
    }))
    .unwrap()
}

/// One HTTP/1.1 request; returns the status and the body.
fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body, and close.
    let _ = s.write_all(body);
    response(&mut s)
}

fn response(s: &mut impl Read) -> (u16, String) {
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn pipeline(dir: &Path, sources: &str, sink: &str) {
    pipeline_with_dlq(dir, sources, sink, "  plaintext_reason: refusals hold no bytes; test events are synthetic\n");
}

/// The test pipeline with `dlq` holding `path` and then `dlq_keys` (how it keeps data).
fn pipeline_with_dlq(dir: &Path, sources: &str, sink: &str, dlq_keys: &str) {
    let names: Vec<&str> = sources
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    let spec = format!(
        "kind: pipeline\nname: hooks\nsources:\n{sources}sinks:\n  events:\n    inputs: [{}]\n{sink}state:\n  path: state/hooks.db\ndlq:\n  path: out/dlq.jsonl\n{dlq_keys}audit:\n  path: out/audit.jsonl\n",
        names.join(", ")
    );
    std::fs::write(dir.join("hooks.yaml"), spec).unwrap();
}

const JSONL_SINK: &str = "    type: jsonl\n    path: out/events.jsonl\n";

fn serve(dir: &Path, extra: &[&str]) -> (Running, u16) {
    let mut running = Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(dir)
            .env("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
            .env("QBO_VERIFIER_TOKEN", QBO_TOKEN)
            .env("FHIR_SUBSCRIPTION_AUTH", FHIR_AUTH)
            .env("PLAID_CLIENT_ID", "client-for-tests")
            .env("PLAID_SECRET", "secret-for-tests")
            .args(["serve", "hooks.yaml", "--listen", "127.0.0.1:0", "--summary", "json"])
            .args(extra),
    );
    let port = running.wait_for("listening address", common::listening_port);
    (running, port)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn assert_no_payload(dir: &Path, stderr: &str) {
    let mut outputs = vec![("stderr".to_string(), stderr.to_string())];
    for f in ["out/events.jsonl", "out/dlq.jsonl", "out/audit.jsonl"] {
        outputs.push((f.to_string(), std::fs::read_to_string(dir.join(f)).unwrap_or_default()));
    }
    for (what, text) in outputs {
        for v in PII {
            assert!(!text.contains(v), "a value from a payload reached {what}");
        }
        assert!(!text.contains(STRIPE_SECRET) && !text.contains(QBO_TOKEN), "a secret reached {what}");
    }
}

const STRIPE_SOURCE: &str = "  stripe:\n    type: webhook\n    provider: stripe\n    path: /hooks/stripe\n    secret: ${STRIPE_WEBHOOK_SECRET}\n    max_body: 16384\n";

#[test]
fn stripe_deliveries_are_verified_deduplicated_and_refused_with_the_right_status() {
    let dir = scratch("serve-stripe");
    let sources = format!(
        "{STRIPE_SOURCE}  quickbooks:\n    type: webhook\n    provider: quickbooks\n    path: /hooks/qbo\n    secret: ${{QBO_VERIFIER_TOKEN}}\n  fhir:\n    type: webhook\n    provider: fhir_subscription\n    path: /hooks/fhir\n    secret: ${{FHIR_SUBSCRIPTION_AUTH}}\n"
    );
    pipeline(&dir, &sources, JSONL_SINK);
    let (running, port) = serve(&dir, &[]);

    // Good: signed now by Stripe's library.
    let body = stripe_event("evt_good_1");
    let (status, answer) = post(port, "/hooks/stripe", &[("Stripe-Signature", &stripe_header(&body, now()))], &body);
    assert_eq!((status, answer.as_str()), (200, r#"{"accepted":1,"duplicates":0}"#));
    // Redelivered (a new signature, as Stripe retries): 200, not processed twice.
    let (status, answer) = post(port, "/hooks/stripe", &[("Stripe-Signature", &stripe_header(&body, now()))], &body);
    assert_eq!((status, answer.as_str()), (200, r#"{"accepted":0,"duplicates":1}"#));
    // The OpenAPI example event, unchanged.
    let example = std::fs::read(root().join("tests/fixtures/webhooks/stripe/event.openapi.json")).unwrap();
    assert_eq!(post(port, "/hooks/stripe", &[("Stripe-Signature", &stripe_header(&example, now()))], &example).0, 200);

    // Tampered: one byte of the body changed after signing.
    let signed = stripe_header(&body, now());
    let mut tampered = body.clone();
    let at = tampered.windows(3).position(|w| w == b"500").unwrap_or(10);
    tampered[at] = b'9';
    assert_eq!(post(port, "/hooks/stripe", &[("Stripe-Signature", &signed)], &tampered).0, 401);
    // Signed with another secret.
    let other = node(&["stripe", "whsec_someone_else", &now().to_string()], &body);
    assert_eq!(post(port, "/hooks/stripe", &[("Stripe-Signature", &other)], &body).0, 401);
    // Stale and future: outside the 5-minute tolerance either way.
    let (stale_body, future_body) = (stripe_event("evt_stale"), stripe_event("evt_future"));
    let stale = stripe_header(&stale_body, now() - 600);
    assert_eq!(post(port, "/hooks/stripe", &[("Stripe-Signature", &stale)], &stale_body).0, 401);
    let future = stripe_header(&future_body, now() + 600);
    assert_eq!(post(port, "/hooks/stripe", &[("Stripe-Signature", &future)], &future_body).0, 401);
    // No header; oversize (`max_body: 16384`), even well signed.
    assert_eq!(post(port, "/hooks/stripe", &[], &body).0, 400);
    let mut big = serde_json::from_slice::<serde_json::Value>(&stripe_event("evt_big")).unwrap();
    big["data"]["object"]["metadata"] = serde_json::json!({"padding": "x".repeat(20_000)});
    let big = serde_json::to_vec(&big).unwrap();
    // The declared length is refused before the body is read: ask first (`Expect:
    // 100-continue`) and send no body, so the answer cannot race a reset of unread bytes.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /hooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: {}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        stripe_header(&big, now()),
        big.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    assert_eq!(response(&mut s).0, 413);
    // Unknown path; wrong method.
    assert_eq!(post(port, "/hooks/nothing", &[], b"{}").0, 404);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /hooks/stripe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(response(&mut s).0, 405);

    // QuickBooks, signed with Python's hmac: a legacy notification of two entities, and a
    // CloudEvents batch; then the legacy one again (duplicates) and tampered.
    let legacy = br#"{"eventNotifications":[{"realmId":"9130348651845276","dataChangeEvent":{"entities":[{"name":"Deposit","id":"145","operation":"Create","lastUpdated":"2024-03-01T10:42:19-0800"},{"name":"Payment","id":"207","operation":"Update","lastUpdated":"2024-03-01T10:43:02-0800"}]}}]}"#;
    let sig = intuit_signature(legacy);
    assert_eq!(
        post(port, "/hooks/qbo", &[("intuit-signature", &sig)], legacy),
        (200, r#"{"accepted":2,"duplicates":0}"#.into())
    );
    assert_eq!(
        post(port, "/hooks/qbo", &[("intuit-signature", &sig)], legacy),
        (200, r#"{"accepted":0,"duplicates":2}"#.into())
    );
    let cloud = br#"[{"specversion":"1.0","id":"88cd52ab-1a3a-4f1e-9d34-6a1a4b4a0f11","source":"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.deposit.created.v1","datacontenttype":"application/json","time":"2024-03-01T18:44:10.000Z","intuitentityid":"146","intuitaccountid":"9130348651845276","data":{}}]"#;
    assert_eq!(post(port, "/hooks/qbo", &[("intuit-signature", &intuit_signature(cloud))], cloud).0, 200);
    let mut bad = legacy.to_vec();
    bad[60] ^= 1;
    assert_eq!(post(port, "/hooks/qbo", &[("intuit-signature", &sig)], &bad).0, 401);

    // A FHIR subscription notification (R4B Bundle): the Authorization header it was set up with.
    let notification = br#"{"resourceType":"Bundle","id":"notification-1","type":"history","entry":[{"resource":{"resourceType":"SubscriptionStatus","type":"event-notification","subscription":{"reference":"Subscription/encounters"}}},{"resource":{"resourceType":"Encounter","id":"enc-1"}}]}"#;
    assert_eq!(post(port, "/hooks/fhir", &[("Authorization", FHIR_AUTH)], notification).0, 200);
    assert_eq!(post(port, "/hooks/fhir", &[("Authorization", "Bearer wrong")], notification).0, 401);

    // Processing is asynchronous: wait for the 6 accepted events in the sink.
    let events = dir.join("out/events.jsonl");
    for _ in 0..600 {
        if lines(&events).len() >= 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, summary, _, stderr) = running.stop("TERM");
    assert_eq!(code, Some(0), "{stderr}");
    let written = lines(&events);
    let ids: Vec<&str> = written.iter().map(|r| r["event_id"].as_str().unwrap()).collect();
    assert_eq!(written.len(), 6, "{ids:?}");
    assert_eq!(ids.iter().filter(|i| **i == "evt_good_1").count(), 1, "a redelivery was processed twice");
    assert!(ids.contains(&"evt_1Pgc76B7WZ01zgkWwyRHS12y"));
    assert!(ids.contains(&"88cd52ab-1a3a-4f1e-9d34-6a1a4b4a0f11"));
    assert!(ids.contains(&"fhir-notification-1"));
    let good = written.iter().find(|r| r["event_id"] == "evt_good_1").unwrap();
    assert_eq!(good["event_type"], "charge.updated");
    assert_eq!(good["provider"], "stripe");
    let data: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/webhooks/stripe/charge.updated.data.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(good["amount"], data["object"]["amount"]);
    assert_eq!(good["currency"], "usd");
    assert_eq!(good["object_type"], "charge");
    let deposit = written.iter().find(|r| r["event_type"] == "Deposit.Create").unwrap();
    assert_eq!(deposit["account"], "9130348651845276");
    assert_eq!(deposit["occurred_at"], "2024-03-01T18:42:19Z");
    let fhir = written.iter().find(|r| r["provider"] == "fhir_subscription").unwrap();
    assert_eq!(fhir["sync_requested"], true);
    assert_eq!(fhir["account"], "Subscription/encounters");
    // Refused: tampered, other secret, stale, future, no header, oversize (Stripe), tampered
    // (QuickBooks), wrong Authorization (FHIR): in the DLQ with a reason, without bytes.
    let dlq = lines(&dir.join("out/dlq.jsonl"));
    assert_eq!(dlq.len(), 8, "{dlq:?}");
    let reasons: Vec<String> = dlq.iter().map(|e| e["reason"].as_str().unwrap_or_default().to_string()).collect();
    assert!(reasons.iter().all(|r| r.contains("delivery refused")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("(413)")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("older than the tolerance")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("in the future")), "{reasons:?}");
    assert_eq!(summary["delivered"], 6);
    assert_eq!(summary["dlq"], 8);
    // The audit chain holds every record and verifies.
    let audited = sluice_runtime::audit::verify_audit_chain(dir.join("out/audit.jsonl")).expect("the chain verifies");
    assert!(audited >= 14, "{audited}");
    assert_no_payload(&dir, &stderr);
    assert!(stderr.contains("source stripe: stripe webhooks at http://127.0.0.1:"), "{stderr}");
}

/// Plaid: ES256 JWTs signed with `jose`, the key fetched by `kid` from an endpoint shaped like
/// Plaid's `/webhook_verification_key/get` (and cached); the trigger recorded as a sync request.
#[test]
fn plaid_webhooks_verify_their_jwt_and_request_a_sync() {
    let dir = scratch("serve-plaid");
    let keys: serde_json::Value = serde_json::from_str(&node(&["plaid-keys"], b"")).unwrap();
    let (private, public) = (keys["private"].to_string(), keys["public"].to_string());
    let mut key_server = Command::new("node")
        .arg(root().join("tests/fixtures/webhooks/signers.mjs"))
        .args(["plaid-key-server", &public, "client-for-tests", "secret-for-tests"])
        .env("SIGNERS", signers())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut key_out = std::io::BufReader::new(key_server.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut key_out, &mut first).unwrap();
    let key_port: u16 = first.trim().parse().unwrap();
    let sources = format!(
        "  plaid:\n    type: webhook\n    provider: plaid\n    path: /hooks/plaid\n    key_url: http://127.0.0.1:{key_port}/webhook_verification_key/get\n    client_id: ${{PLAID_CLIENT_ID}}\n    secret: ${{PLAID_SECRET}}\n"
    );
    pipeline(&dir, &sources, JSONL_SINK);
    let (running, port) = serve(&dir, &[]);
    let body = br#"{"environment":"sandbox","webhook_code":"SYNC_UPDATES_AVAILABLE","webhook_type":"TRANSACTIONS","item_id":"wz666MBjYWTp2PDzzggYhM6oWWmBb","initial_update_complete":true,"historical_update_complete":false}"#;
    let jwt = node(&["plaid-sign", &private, &now().to_string()], body);
    assert_eq!(
        post(port, "/hooks/plaid", &[("Plaid-Verification", &jwt)], body),
        (200, r#"{"accepted":1,"duplicates":0}"#.into())
    );
    // The same delivery again: deduplicated.
    assert_eq!(post(port, "/hooks/plaid", &[("Plaid-Verification", &jwt)], body).1, r#"{"accepted":0,"duplicates":1}"#);
    // Tampered body (the signed hash no longer matches), stale and future iat, no header.
    let mut tampered = body.to_vec();
    tampered[30] = b'X';
    assert_eq!(post(port, "/hooks/plaid", &[("Plaid-Verification", &jwt)], &tampered).0, 401);
    let stale = node(&["plaid-sign", &private, &(now() - 400).to_string()], body);
    assert_eq!(post(port, "/hooks/plaid", &[("Plaid-Verification", &stale)], body).0, 401);
    let future = node(&["plaid-sign", &(private.clone()), &(now() + 400).to_string()], body);
    assert_eq!(post(port, "/hooks/plaid", &[("Plaid-Verification", &future)], body).0, 401);
    assert_eq!(post(port, "/hooks/plaid", &[], body).0, 400);
    // A key Plaid does not know (another kid): refused.
    let other: serde_json::Value = serde_json::from_str(&node(&["plaid-keys"], b"")).unwrap();
    let mut other_private = other["private"].clone();
    other_private["kid"] = "kid-unknown".into();
    let forged = node(&["plaid-sign", &other_private.to_string(), &now().to_string()], body);
    assert_eq!(post(port, "/hooks/plaid", &[("Plaid-Verification", &forged)], body).0, 401);
    // A JWT signed by another key under the known kid: the signature does not verify.
    let mut impostor = other["private"].clone();
    impostor["kid"] = keys["private"]["kid"].clone();
    let forged = node(&["plaid-sign", &impostor.to_string(), &now().to_string()], body);
    assert_eq!(post(port, "/hooks/plaid", &[("Plaid-Verification", &forged)], body).0, 401);
    let events = dir.join("out/events.jsonl");
    for _ in 0..600 {
        if !lines(&events).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, _, stderr) = running.stop("TERM");
    assert_eq!(code, Some(0), "{stderr}");
    let written = lines(&events);
    assert_eq!(written.len(), 1);
    assert_eq!(written[0]["event_type"], "TRANSACTIONS.SYNC_UPDATES_AVAILABLE");
    assert_eq!(written[0]["sync_requested"], true);
    assert_eq!(written[0]["account"], "wz666MBjYWTp2PDzzggYhM6oWWmBb");
    // The key was fetched once for the known kid and then cached; the unknown kid was asked for.
    let _ = key_server.kill();
    let mut served = String::new();
    let _ = key_out.read_to_string(&mut served);
    let _ = key_server.wait();
    assert_eq!(served.lines().filter(|l| l.ends_with(" 200")).count(), 1, "{served}");
    assert_eq!(lines(&dir.join("out/dlq.jsonl")).len(), 6);
    // The trigger is visible: `sluice serve --sync-requests`.
    let listed = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["serve", "hooks.yaml", "--sync-requests"])
        .output()
        .unwrap();
    assert!(listed.status.success());
    let requests: Vec<serde_json::Value> =
        String::from_utf8_lossy(&listed.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["provider"], "plaid");
    assert_eq!(requests[0]["account"], "wz666MBjYWTp2PDzzggYhM6oWWmBb");
    assert_eq!(requests[0]["status"], "pending");
    assert_no_payload(&dir, &stderr);
}

/// A TCP server on `port` for an `http` sink: first holding every request unanswered, then
/// (after `answer` is set) answering 200 and keeping the bodies.
struct Endpoint {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Endpoint {
    fn start(port: u16, answer: bool) -> Endpoint {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, b) = (stop.clone(), bodies.clone());
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) if !answer => held.push(conn),
                    Ok((conn, _)) => {
                        let b = b.clone();
                        std::thread::spawn(move || answer_requests(conn, &b));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Endpoint { stop, bodies, thread: Some(thread) }
    }

    fn ids(&self) -> std::collections::BTreeSet<String> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .flat_map(|b| b.split("\"event_id\":\"").skip(1).map(|r| r.split('"').next().unwrap().to_string()))
            .collect()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer_requests(mut conn: TcpStream, bodies: &std::sync::Mutex<Vec<String>>) {
    conn.set_nonblocking(false).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            bodies.lock().unwrap().push(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned());
            buf.drain(..end + 4 + len);
            if conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                return;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn queue_counts(dir: &Path) -> (u64, u64) {
    let target = sluice_compiler::plan::StateTarget {
        kind: "sqlite".into(),
        path: dir.join("state/hooks.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 1000,
    };
    let store = sluice_runtime::state::Store::open(&target, None).unwrap();
    store.webhook_counts("hooks").unwrap()
}

/// Accepted deliveries are durable before the answer: `kill -9` while the sink holds every
/// record loses none; the next `sluice serve` processes them.
#[test]
fn kill_9_between_accept_and_processing_loses_nothing() {
    let dir = scratch("serve-kill9");
    let sink_port = common::free_port();
    let sink = format!(
        "    type: http\n    url: http://127.0.0.1:{sink_port}/ingest\n    timeout: 10m\n    phi:\n      allowed: true\n      reason: webhook event records carry no PHI\n"
    );
    pipeline(&dir, STRIPE_SOURCE, &sink);
    let hanging = Endpoint::start(sink_port, false);
    let (mut running, port) = serve(&dir, &[]);
    let n = 25;
    for i in 0..n {
        let body = stripe_event(&format!("evt_kill_{i:02}"));
        let (status, _) = post(port, "/hooks/stripe", &[("Stripe-Signature", &stripe_header(&body, now()))], &body);
        assert_eq!(status, 200);
    }
    // Every event is accepted and none processed (the sink holds its requests).
    assert_eq!(queue_counts(&dir), (n, 0));
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    drop(hanging);
    assert_eq!(queue_counts(&dir), (n, 0));

    let answering = Endpoint::start(sink_port, true);
    let (running, _) = serve(&dir, &[]);
    // Said before it listens.
    let said = running.stderr.lock().unwrap().clone();
    assert!(said.contains(&format!("queue: {n} event(s) accepted before the last stop")), "{said}");
    for _ in 0..600 {
        if answering.ids().len() as u64 >= n && queue_counts(&dir).0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, _, stderr) = running.stop("TERM");
    assert_eq!(code, Some(0), "{stderr}");
    let ids = answering.ids();
    let expected: std::collections::BTreeSet<String> = (0..n).map(|i| format!("evt_kill_{i:02}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(queue_counts(&dir), (0, n));
    assert_no_payload(&dir, &stderr);
}

/// `--tls-cert`/`--tls-key`: HTTPS with rustls; a plain-text request on the TLS port gets no
/// answer; the endpoint's rate limit answers 429 beyond it.
#[test]
fn tls_and_rate_limits() {
    let dir = scratch("serve-tls");
    let sources = STRIPE_SOURCE.replace("    max_body: 16384\n", "    rate_limit: 3/min\n");
    pipeline(&dir, &sources, JSONL_SINK);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    let (running, port) = serve(&dir, &["--tls-cert", "cert.pem", "--tls-key", "key.pem"]);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let https = |body: &[u8]| {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let head = format!(
            "POST /hooks/stripe HTTP/1.1\r\nHost: localhost\r\nStripe-Signature: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            stripe_header(body, now()),
            body.len()
        );
        tls.write_all(head.as_bytes()).unwrap();
        tls.write_all(body).unwrap();
        response(&mut tls).0
    };
    for i in 0..3 {
        assert_eq!(https(&stripe_event(&format!("evt_tls_{i}"))), 200);
    }
    // The fourth within the minute: 429 (not read, not audited).
    assert_eq!(https(&stripe_event("evt_tls_3")), 429);
    // Plain HTTP on the TLS port: no HTTP answer.
    let (status, _) = post(port, "/hooks/stripe", &[], b"{}");
    assert_eq!(status, 0);
    std::thread::sleep(Duration::from_millis(500));
    let (code, _, _, stderr) = running.stop("TERM");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("listening on https://127.0.0.1:"), "{stderr}");
    assert_eq!(lines(&dir.join("out/events.jsonl")).len(), 3);
    assert_no_payload(&dir, &stderr);
}

/// Every byte of the state store's files (the SQLite database, its WAL, ...), read by `cat`
/// (not opened in this process, where closing them would drop SQLite's POSIX locks).
fn state_bytes(dir: &Path) -> Vec<u8> {
    let files: Vec<PathBuf> = std::fs::read_dir(dir.join("state")).unwrap().flatten().map(|e| e.path()).collect();
    let out = Command::new("cat").args(&files).output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

/// With `dlq.encryption_key`, queued bodies are encrypted at rest: after `kill -9` with events
/// queued, no byte of the state store holds the Stripe customer's name or e-mail; `sluice keys
/// rotate` re-encrypts them under the new key, and a `sluice serve` with the new key alone
/// processes them all.
#[test]
fn queued_bodies_are_encrypted_at_rest_and_rotate_with_the_dlq_key() {
    let dir = scratch("serve-sealed");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("keys/dlq.key"), KEY_A).unwrap();
    let sink_port = common::free_port();
    let sink = format!(
        "    type: http\n    url: http://127.0.0.1:{sink_port}/ingest\n    timeout: 10m\n    phi:\n      allowed: true\n      reason: webhook event records carry no PHI\n"
    );
    pipeline_with_dlq(&dir, STRIPE_SOURCE, &sink, "  encryption_key: ${file:keys/dlq.key}\n");
    let hanging = Endpoint::start(sink_port, false);
    let (mut running, port) = serve(&dir, &[]);
    let n = 5;
    for i in 0..n {
        let body = stripe_event(&format!("evt_sealed_{i}"));
        assert!(holds(&body, PII[0]) && holds(&body, PII[1]), "the fixture holds the customer");
        let (status, _) = post(port, "/hooks/stripe", &[("Stripe-Signature", &stripe_header(&body, now()))], &body);
        assert_eq!(status, 200);
    }
    assert_eq!(queue_counts(&dir), (n, 0));
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    drop(hanging);
    let at_rest = state_bytes(&dir);
    assert!(!at_rest.is_empty());
    for v in PII {
        assert!(!holds(&at_rest, v), "a queued webhook body is readable in the state store");
    }

    // Rotate: the new key first, the old one after it.
    std::fs::write(dir.join("keys/dlq.key"), format!("{KEY_B},{KEY_A}")).unwrap();
    let rotated = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["keys", "rotate", "hooks.yaml"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&rotated.stdout);
    assert!(rotated.status.success(), "{said}{}", String::from_utf8_lossy(&rotated.stderr));
    let id_b = sluice_runtime::keys::key_id(&hex_bytes(KEY_B));
    assert!(said.contains(&format!("webhook queue: re-encrypted {n} queued bodies under {id_b}")), "{said}");
    for v in PII {
        assert!(!holds(&state_bytes(&dir), v), "a rotated body is readable in the state store");
    }
    // The old key is gone: the new one alone reads every queued body.
    std::fs::write(dir.join("keys/dlq.key"), KEY_B).unwrap();
    let answering = Endpoint::start(sink_port, true);
    let (running, _) = serve(&dir, &[]);
    for _ in 0..600 {
        if answering.ids().len() as u64 >= n && queue_counts(&dir).0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, _, stderr) = running.stop("TERM");
    assert_eq!(code, Some(0), "{stderr}");
    let expected: std::collections::BTreeSet<String> = (0..n).map(|i| format!("evt_sealed_{i}")).collect();
    assert_eq!(answering.ids(), expected);
    assert_eq!(queue_counts(&dir), (0, n));
    assert!(!stderr.contains(KEY_A) && !stderr.contains(KEY_B));
    assert_no_payload(&dir, &stderr);
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// A DLQ with neither a key nor a `plaintext_reason`: `sluice serve` refuses to start (RT045),
/// saying how to set a key, and queues nothing.
#[test]
fn serve_without_a_key_refuses_to_start() {
    let dir = scratch("serve-no-key");
    pipeline_with_dlq(&dir, STRIPE_SOURCE, JSONL_SINK, "");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .env("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
        .args(["serve", "hooks.yaml", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[RT045]: pipeline `hooks` would keep webhook bodies"), "{stderr}");
    assert!(stderr.contains("help: add `encryption_key: ${SLUICE_DLQ_KEY}`"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    assert!(!dir.join("state/hooks.db").exists(), "nothing was queued");
}

/// A DLQ with `plaintext_reason` (synthetic data): the queue keeps plain text, and says so.
#[test]
fn serve_with_a_plaintext_reason_says_the_queue_is_plain_text() {
    let dir = scratch("serve-plain");
    pipeline(&dir, STRIPE_SOURCE, JSONL_SINK);
    let (running, _) = serve(&dir, &[]);
    let (code, _, _, stderr) = running.stop("TERM");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("queue: webhook bodies are kept in plain text in the state store"), "{stderr}");
}
