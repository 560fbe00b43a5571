//! `amqps://` sources and sinks through the real binary, against a real RabbitMQ node with a
//! TLS listener on 127.0.0.1 (scripts/start-rabbitmq, through tests/common/amqp.rs), whose
//! certificates each test makes with `openssl`: a throwaway CA, a server certificate for
//! 127.0.0.1 and localhost, a client certificate, and an unrelated CA. Messages are published
//! and read back with pika on the node's plain listener, independent of Sluice's client.
//!
//! - A source and a sink both over `amqps://` with `tls.ca_file` carry every message of a
//!   queue to another queue, and `sluice plan` says what TLS trusts; a sink trusts the CA
//!   through the system's store (`SSL_CERT_FILE`, which rustls-native-certs reads) with no
//!   `tls` at all.
//! - The handshake fails with RT176 naming the cause: a CA that did not sign the server's
//!   certificate (unknown CA), an `amqps://` URL at the plain AMQP port. `tls` with a plain
//!   `amqp://` URL from a secret stops the run with RT177. No output shows the password.
//! - Mutual TLS (the node requires a client certificate): a sink with `client_cert` and
//!   `client_key` publishes; without them the run stops with RT176 saying the server requires
//!   a client certificate; with one signed by another CA, RT176 saying the server refused it.
//! - A URL host the server's certificate does not name (127.0.0.1 for a certificate of
//!   `localhost`) is RT176 "wrong host name"; a server certificate that expired (made with
//!   `openssl ca` and dates in 2020) is RT176 "expired".

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::amqp::{Message, PASSWORD, Rabbit, expire_server_certificate, make_certificates};
use common::checkpoints::error_code;
use common::live::{assert_no_phi, lines, wait_until};
use common::{Running, messages, root, text, workspace};

const FEED: &str = "examples/hl7/feed-2024-01-15.hl7";

fn sluice(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    // The system's CA store is the machine's unless a test points it at its CA.
    c.current_dir(dir).args(args).env("AMQP_URL", url).env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    c
}

/// `tls:` lines (6 spaces deep) for a component, from `(key, value)` pairs; empty for none.
fn tls_block(settings: &[(&str, &str)]) -> String {
    if settings.is_empty() {
        return String::new();
    }
    let mut out = "    tls:\n".to_string();
    for (k, v) in settings {
        out.push_str(&format!("      {k}: {v}\n"));
    }
    out
}

/// A files pipeline relaying the example feed over `${AMQP_URL}` to `queue` through the
/// default exchange, with `tls`; written as `pipelines/NAME.yaml`, its path returned.
fn relay_pipeline(dir: &Path, name: &str, queue: &str, tls: &[(&str, &str)]) -> String {
    let spec = format!(
        "kind: pipeline\nname: {name}\nsources:\n  hl7_files:\n    type: files\n    format: hl7v2\n    path: ../{FEED}\nsinks:\n  relay:\n    type: amqp\n    inputs: [hl7_files]\n    url: ${{AMQP_URL}}\n{}    exchange: \"\"\n    routing_key: {queue}\n    format: hl7v2\n    phi: {{allowed: true, reason: synthetic test data relayed to a test queue}}\ndlq:\n  path: ../out/{name}-dlq.jsonl\n  encryption_key: ${{file:../examples/dlq-example.key}}\n",
        tls_block(tls)
    );
    std::fs::write(dir.join(format!("pipelines/{name}.yaml")), spec).unwrap();
    format!("pipelines/{name}.yaml")
}

/// The example feed's messages as read, sorted (a live source's workers may reorder them).
fn feed_sorted() -> Vec<String> {
    let mut m: Vec<String> = messages(&root().join(FEED)).iter().map(|m| text(m)).collect();
    m.sort();
    m
}

/// The bodies of every message in `queue`, drained, sorted.
fn drained_sorted(rabbit: &Rabbit, queue: &str) -> Vec<String> {
    let mut b: Vec<String> = rabbit.drain(queue).iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    b.sort();
    b
}

fn failed_with(out: &Output, code: &str, words: &str) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(error_code(out), code, "{err}");
    assert!(err.contains(words), "`{words}` in: {err}");
    assert!(!err.contains(PASSWORD) && !text(&out.stdout).contains(PASSWORD), "no password in output: {err}");
    assert_no_phi(&[&err, &text(&out.stdout)]);
}

#[test]
fn an_amqps_source_and_sink_carry_every_message_and_a_ca_that_did_not_sign_the_server_is_refused_with_rt176() {
    let dir = workspace("amqp-tls");
    let certs = dir.join("certs");
    make_certificates(&certs, "IP:127.0.0.1,DNS:localhost");
    let rabbit = Rabbit::start_tls("tls", &certs, false);
    rabbit.declare_queue("adt");
    rabbit.declare_queue("adt-out");
    let input: Vec<Message> = messages(&root().join(FEED)).into_iter().map(|m| (m, Vec::new())).collect();
    rabbit.publish("adt", &input);
    let url = rabbit.tls_url("127.0.0.1");

    // Source and sink over amqps, trusting the test's CA through `tls.ca_file`.
    let ca = [("ca_file", "../certs/ca.pem")];
    let spec = format!(
        "kind: pipeline\nname: tls-feed\nsources:\n  adt_queue:\n    type: amqp\n    url: ${{AMQP_URL}}\n{tls}    queue: adt\n    prefetch: 8\nsinks:\n  events:\n    type: jsonl\n    inputs: [adt_queue]\n    path: ../out/events.jsonl\n    phi: {{allowed: true, reason: synthetic test data}}\n  relay:\n    type: amqp\n    inputs: [adt_queue]\n    url: ${{AMQP_URL}}\n{tls}    exchange: \"\"\n    routing_key: adt-out\n    format: hl7v2\n    phi: {{allowed: true, reason: synthetic test data relayed to a test queue}}\ndlq:\n  path: ../out/dlq.jsonl\n  encryption_key: ${{file:../examples/dlq-example.key}}\n",
        tls = tls_block(&ca)
    );
    std::fs::write(dir.join("pipelines/tls-feed.yaml"), spec).unwrap();
    let plan = sluice(&dir, &url, &["plan", "pipelines/tls-feed.yaml"]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert_eq!(plan.matches("TLS: CA file ").count(), 2, "the source's and the sink's TLS: {plan}");
    assert!(plan.contains("certs/ca.pem and the system's CA certificates"), "{plan}");

    let mut run = Running::spawn(&mut sluice(
        &dir,
        &url,
        &["run", "pipelines/tls-feed.yaml", "--summary", "json", "--log-level", "info"],
    ));
    let events = dir.join("out/events.jsonl");
    wait_until(&mut run, "every message in the jsonl sink", Duration::from_secs(90), || {
        lines(&events).len() >= input.len()
    });
    let (code, s, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(s["delivered"], input.len(), "{s}");
    assert_eq!(s["balanced"], true, "{s}");
    assert_eq!(rabbit.count("adt"), 0, "every message acknowledged over TLS");
    assert_eq!(drained_sorted(&rabbit, "adt-out"), feed_sorted(), "every message published over TLS, as read");
    assert!(!stderr.contains(PASSWORD) && !plan.contains(PASSWORD));

    // No `tls`: the system's CA certificates, here the test's CA through SSL_CERT_FILE.
    let system = relay_pipeline(&dir, "system-roots", "adt-out", &[]);
    let out = sluice(&dir, &url, &["run", &system]).env("SSL_CERT_FILE", certs.join("ca.pem")).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(drained_sorted(&rabbit, "adt-out"), feed_sorted());
    // Without it, the machine's store does not know the test's CA.
    let out = sluice(&dir, &url, &["run", &system]).output().unwrap();
    failed_with(&out, "RT176", "unknown CA");

    // A CA file that did not sign the server's certificate.
    let other = relay_pipeline(&dir, "other-ca", "adt-out", &[("ca_file", "../certs/other-ca.pem")]);
    let out = sluice(&dir, &url, &["run", &other]).output().unwrap();
    failed_with(&out, "RT176", "unknown CA");
    assert!(text(&out.stderr).contains("tls.ca_file"), "the help says what to set: {}", text(&out.stderr));

    // amqps:// at the plain AMQP port.
    let plain_port = url.replace(&rabbit.tls_port.unwrap().to_string(), &rabbit.port.to_string());
    let trusted = relay_pipeline(&dir, "trusted", "adt-out", &ca);
    let out = sluice(&dir, &plain_port, &["run", &trusted]).output().unwrap();
    // Said as "did not answer with TLS", or as a closed connection when the server's close
    // overtakes its answer: RT176 either way.
    failed_with(&out, "RT176", "TLS handshake");

    // `tls` with a plain amqp:// URL behind the secret: refused, not ignored.
    let out = sluice(&dir, &rabbit.url(), &["run", &trusted]).output().unwrap();
    failed_with(&out, "RT177", "plain amqp:// URL");
    assert_eq!(rabbit.count("adt-out"), 0, "no failed run published anything");
}

#[test]
fn mutual_tls_a_sink_with_a_client_certificate_publishes_one_without_or_from_another_ca_and_a_wrong_host_name_are_rt176()
 {
    let dir = workspace("amqp-mtls");
    let certs = dir.join("certs");
    // For the name `localhost` only: 127.0.0.1 is a host name the certificate does not hold.
    make_certificates(&certs, "DNS:localhost");
    let rabbit = Rabbit::start_tls("mtls", &certs, true);
    rabbit.declare_queue("adt-relay");
    let url = rabbit.tls_url("localhost");

    let with_cert = relay_pipeline(
        &dir,
        "with-cert",
        "adt-relay",
        &[
            ("ca_file", "../certs/ca.pem"),
            ("client_cert", "../certs/client.pem"),
            ("client_key", "${file:../certs/client.key}"),
        ],
    );
    let plan = sluice(&dir, &url, &["plan", &with_cert]).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    assert!(text(&plan.stdout).contains("client certificate"), "{}", text(&plan.stdout));
    let out = sluice(&dir, &url, &["run", &with_cert]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(drained_sorted(&rabbit, "adt-relay"), feed_sorted(), "published over mutual TLS (host localhost)");

    let without = relay_pipeline(&dir, "without-cert", "adt-relay", &[("ca_file", "../certs/ca.pem")]);
    let out = sluice(&dir, &url, &["run", &without]).output().unwrap();
    // The server's alert (certificate required) or, when its close overtakes the alert, the
    // closed connection: either way RT176 says a client certificate is wanted.
    failed_with(&out, "RT176", "client certificate");
    assert!(text(&out.stderr).contains("tls.client_cert"), "{}", text(&out.stderr));
    assert_eq!(rabbit.count("adt-relay"), 0);
    // A client certificate signed by a CA the server does not trust: refused by the server.
    let other_client = relay_pipeline(
        &dir,
        "other-client",
        "adt-relay",
        &[
            ("ca_file", "../certs/ca.pem"),
            ("client_cert", "../certs/other-client.pem"),
            ("client_key", "${file:../certs/other-client.key}"),
        ],
    );
    let out = sluice(&dir, &url, &["run", &other_client]).output().unwrap();
    // The server's alert (unknown CA) or, when its close overtakes the alert, the closed
    // connection after the certificate was sent: RT176 either way, naming the refusal.
    failed_with(&out, "RT176", "refused the client certificate");
    assert!(!text(&out.stderr).contains("requires a client certificate"), "{}", text(&out.stderr));

    // The server's certificate is for `localhost`; the URL says 127.0.0.1: checked by this
    // client before any client certificate matters.
    let wrong_name = rabbit.tls_url("127.0.0.1");
    let out = sluice(&dir, &wrong_name, &["run", &with_cert]).output().unwrap();
    failed_with(&out, "RT176", "not valid for the host name `127.0.0.1` (wrong host name)");
    assert_eq!(rabbit.count("adt-relay"), 0);
}

#[test]
fn an_expired_server_certificate_is_refused_with_rt176() {
    let dir = workspace("amqp-tls-expired");
    let certs = dir.join("certs");
    make_certificates(&certs, "IP:127.0.0.1,DNS:localhost");
    expire_server_certificate(&certs);
    let rabbit = Rabbit::start_tls("expired", &certs, false);
    rabbit.declare_queue("adt-out");
    let trusted = relay_pipeline(&dir, "trusted", "adt-out", &[("ca_file", "../certs/ca.pem")]);
    let out = sluice(&dir, &rabbit.tls_url("127.0.0.1"), &["run", &trusted]).output().unwrap();
    failed_with(&out, "RT176", "the server's certificate has expired");
    assert!(text(&out.stderr).contains("renewed"), "the help says what to do: {}", text(&out.stderr));
    assert_eq!(rabbit.count("adt-out"), 0);
}
