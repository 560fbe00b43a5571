//! `kafka` `security` through the real binary, against real servers on 127.0.0.1: the tansu
//! 0.6.0 broker, with SASL required (`--authentication`) where a test logs in, behind stunnel
//! (Debian's stunnel4, installed by scripts/setup-stunnel) as the TLS terminator, since tansu
//! itself serves no TLS; it advertises stunnel's address, so metadata sends clients back
//! through TLS. Certificates come from a CA made for each test with `openssl`
//! (tests/common/amqp.rs).
//!
//! - TLS (`ssl`): with the test CA as `ca_file`, a `kafka` sink's records all arrive; a broker
//!   certificate from another CA (or only the system's CAs), or for another host name, fails
//!   with RT181 naming the cause, within the run's connect timeout. Mutual TLS (stunnel
//!   `verifyChain`): a client certificate from the test CA works; none, or one another CA
//!   signed, is refused with RT181; a client key file that holds no key stops the run before
//!   it connects (RT182).
//! - SCRAM, against a broker whose users are kept (tansu's SQLite storage, the user made while
//!   the broker did not yet require SASL, then the broker restarted on the same file with
//!   `--authentication`): SCRAM-SHA-256 over `sasl_plaintext` with a wrong password is refused
//!   (RT127); with the user's password a `kafka` sink's records all arrive and a `kafka` source
//!   consumes every message; SCRAM-SHA-512 over `sasl_ssl` (through stunnel) delivers too. The
//!   password shows in no output, log or audit file.
//! - The Azure Event Hubs settings (`sasl_ssl`, PLAIN, user `$ConnectionString`, a connection
//!   string from an environment variable as the password): the plan shows the protocol and
//!   mechanism and only the secret's reference; tansu 0.6.0 offers no PLAIN mechanism (its
//!   rsasl build leaves it out), so the login is refused with RT127, and the connection string
//!   shows in no output, plan, log or audit file.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::amqp::make_certificates;
use common::checkpoints::{PER_COPY, error_code, summary};
use common::kafka::{Storage, Tansu, client, example_messages, produce_with, read_topic_with};
use common::live::{assert_no_phi, lines, wait_until};
use common::{Running, free_port, text, workspace};
use rdkafka::ClientConfig;

const SCRAM_USER: &str = "sluice-scram";
const SCRAM_PASSWORD: &str = "scram-Pa55word-7f3a9c";
/// What an Event Hubs connection string looks like (the key is made up).
const CONNECTION_STRING: &str = "Endpoint=sb://sluice-test.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=c2x1aWNlLXRlc3Qta2V5LW5vdC1yZWFsLTEyMzQ1Njc4OQ==";

/// stunnel on 127.0.0.1: TLS on `port`, plain TCP on to `to`; stopped when dropped.
struct Stunnel {
    child: Child,
    port: u16,
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Stunnel {
    /// Serves `certs/server.pem` (key `server.key`) on `port`; with `require_client_cert`,
    /// only to clients whose certificate `certs/ca.pem` signed.
    fn start(certs: &Path, port: u16, to: u16, require_client_cert: bool) -> Stunnel {
        let out = Command::new(common::root().join("scripts/setup-stunnel")).output().expect("setup-stunnel runs");
        assert!(out.status.success(), "scripts/setup-stunnel could not provide stunnel: {}", text(&out.stderr));
        let bin = PathBuf::from(text(&out.stdout).trim());
        let mut conf = format!(
            "foreground = yes\npid =\ndebug = 4\noutput = {log}\n[kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{to}\ncert = {cert}\nkey = {key}\n",
            log = certs.join(format!("stunnel-{port}.log")).display(),
            cert = certs.join("server.pem").display(),
            key = certs.join("server.key").display(),
        );
        if require_client_cert {
            conf.push_str(&format!(
                "verifyChain = yes\nrequireCert = yes\nCAfile = {}\n",
                certs.join("ca.pem").display()
            ));
        }
        let path = certs.join(format!("stunnel-{port}.conf"));
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(bin).arg(&path).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let stunnel = Stunnel { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "stunnel did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        stunnel
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A broker with memory storage that requires SASL, behind stunnel (`certs`), whose metadata
/// sends clients back through stunnel.
fn secured_broker(certs: &Path) -> (Tansu, Stunnel) {
    let (port, tls_port) = (free_port(), free_port());
    let tansu = Tansu::start_with(port, Storage::Memory, &format!("tcp://127.0.0.1:{tls_port}"), true);
    let stunnel = Stunnel::start(certs, tls_port, port, false);
    (tansu, stunnel)
}

/// A `security` block (YAML, under a component at 4 spaces) from `key: value` lines.
fn security(lines: &[&str]) -> String {
    let mut out = String::from("    security:\n");
    for l in lines {
        out.push_str(&format!("      {l}\n"));
    }
    out
}

/// The quick start with one more sink: `bus`, a `kafka` sink to `topic` on `brokers` with
/// `block` as its security. Its path.
fn quickstart_to_kafka(dir: &Path, brokers: &str, topic: &str, block: &str) -> PathBuf {
    let path = dir.join("pipelines/quickstart.yaml");
    let spec = std::fs::read_to_string(&path).unwrap().replacen(
        "\nsinks:\n",
        &format!(
            "\nsinks:\n  bus:\n    type: kafka\n    inputs: [mask]\n    brokers: {brokers}\n    topic: {topic}\n    key: patient.id\n{block}"
        ),
        1,
    );
    std::fs::write(&path, spec).unwrap();
    path
}

fn sluice(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).args(args);
    c
}

/// Every file under `dir` (recursively) as text.
fn all_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// Fails if `secret` appears in any of `outputs` or in any file the run wrote under `out/`.
fn assert_secret_hidden(dir: &Path, secret: &str, outputs: &[&str]) {
    for o in outputs {
        assert!(!o.contains(secret), "the secret leaked into the output: {o}");
    }
    for (path, content) in all_files(&dir.join("out")) {
        assert!(!content.contains(secret), "the secret leaked into {}", path.display());
    }
}

/// Runs the quick start (with its `kafka` sink) once with `env`, from a fresh `out/` (a failed
/// run would otherwise wait for `--resume`, RT012); its output.
fn run_quickstart(dir: &Path, env: &[(&str, &str)]) -> Output {
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let mut c = sluice(dir, &["run", "pipelines/quickstart.yaml", "--summary", "json", "--log-level", "info"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Checks a quick start run that ended well: its topic holds each delivered record once.
fn assert_sink_delivered(out: &Output, dir: &Path, reader: &ClientConfig, topic: &str) {
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let s = summary(out);
    let delivered = s["delivered"].as_u64().unwrap() as usize;
    assert!(delivered > 0, "{s}");
    let jsonl = lines(&dir.join("out/quickstart/patient-events.jsonl"));
    assert_eq!(jsonl.len(), delivered);
    let got = read_topic_with(reader, topic, delivered);
    assert_eq!(got.len(), delivered, "each delivered record once in the topic");
    let mut want: Vec<&String> = jsonl.iter().collect();
    let mut have: Vec<&String> = got.iter().map(|(_, v, _)| v).collect();
    want.sort();
    have.sort();
    assert_eq!(want, have, "the messages are the jsonl sink's lines");
}

/// The test client's settings for a SCRAM login as [`SCRAM_USER`] with `mechanism` over
/// `protocol` to `brokers`, trusting `ca` for `sasl_ssl`.
fn scram_client(brokers: &str, protocol: &str, mechanism: &str, ca: Option<&Path>) -> ClientConfig {
    let mut config = client(brokers);
    config
        .set("security.protocol", protocol)
        .set("sasl.mechanism", mechanism)
        .set("sasl.username", SCRAM_USER)
        .set("sasl.password", SCRAM_PASSWORD);
    if let Some(ca) = ca {
        config.set("ssl.ca.location", ca.display().to_string());
    }
    config
}

/// A SCRAM `security` block for [`SCRAM_USER`], the password from `KAFKA_PASSWORD`.
fn scram_security(protocol: &str, mechanism: &str, ca_file: Option<&str>) -> String {
    let mut keys = vec![
        format!("protocol: {protocol}"),
        format!("mechanism: {mechanism}"),
        format!("username: {SCRAM_USER}"),
        "password: ${KAFKA_PASSWORD}".to_string(),
    ];
    keys.extend(ca_file.map(|ca| format!("ca_file: {ca}")));
    security(&keys.iter().map(String::as_str).collect::<Vec<_>>())
}

fn restore_quickstart(dir: &Path) {
    std::fs::copy(common::root().join("pipelines/quickstart.yaml"), dir.join("pipelines/quickstart.yaml")).unwrap();
}

#[test]
fn scram_logins_with_the_users_password_produce_and_consume_and_a_wrong_password_is_refused_with_rt127() {
    let dir = workspace("kafka-scram");
    let certs = dir.join("certs");
    make_certificates(&certs, "IP:127.0.0.1,DNS:localhost");
    let data = dir.join("broker");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let itself = format!("tcp://127.0.0.1:{port}");

    // 1. Topics and the user's SCRAM credentials, kept in the broker's SQLite file, made while
    //    the broker does not yet require SASL (tansu's own commands do not log in).
    {
        let setup = Tansu::start_with(port, Storage::Sqlite(&data), &itself, false);
        for topic in ["events", "adt", "secure"] {
            setup.create_topic(topic, 3);
        }
        setup.create_user(SCRAM_USER, SCRAM_PASSWORD, "scram256");
        setup.create_user(SCRAM_USER, SCRAM_PASSWORD, "scram512");
    }

    // 2. The same storage with SASL required: SCRAM-SHA-256 over `sasl_plaintext`.
    let tansu = Tansu::start_with(port, Storage::Sqlite(&data), &itself, true);
    let brokers = tansu.brokers();
    let plaintext = scram_security("sasl_plaintext", "SCRAM-SHA-256", None);
    quickstart_to_kafka(&dir, &brokers, "events", &plaintext);
    let wrong = "not-the-Pa55word-4d1e";
    let out = run_quickstart(&dir, &[("KAFKA_PASSWORD", wrong)]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(error_code(&out), "RT127", "{stderr}");
    assert!(stderr.contains(&format!("refused the credentials of user `{SCRAM_USER}`")), "{stderr}");
    assert!(stderr.contains(&brokers), "names the brokers: {stderr}");
    assert_secret_hidden(&dir, wrong, &[&text(&out.stdout), &stderr]);

    let out = run_quickstart(&dir, &[("KAFKA_PASSWORD", SCRAM_PASSWORD)]);
    let reader = scram_client(&brokers, "sasl_plaintext", "SCRAM-SHA-256", None);
    assert_sink_delivered(&out, &dir, &reader, "events");
    assert_secret_hidden(&dir, SCRAM_PASSWORD, &[&text(&out.stdout), &text(&out.stderr)]);
    restore_quickstart(&dir);

    // A `kafka` source logging in the same way consumes what a logged-in client produced.
    let input = example_messages(1);
    produce_with(&reader, "adt", &input);
    let source = format!(
        "    type: kafka\n    brokers: {brokers}\n    topics: [adt]\n    group: sluice-scram\n    session_timeout: 6s\n{plaintext}"
    );
    let sink = "  patient_events:\n    type: jsonl\n    inputs: [mask]\n    path: ../out/patient-events.jsonl\n";
    common::quickstart_fed_by(&dir, "kafka", &source, sink);
    let mut command = sluice(&dir, &["run", "pipelines/kafka.yaml", "--summary", "json", "--log-level", "info"]);
    let mut run = Running::spawn(command.env("KAFKA_PASSWORD", SCRAM_PASSWORD));
    let audit = dir.join("out/audit.jsonl");
    // run_started, then one audit entry per record.
    wait_until(&mut run, "every record in the audit log", Duration::from_secs(90), || {
        lines(&audit).len() > input.len()
    });
    let (code, s, stdout, stderr) = run.stop("TERM");
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (records, delivered, _, _) = PER_COPY;
    assert_eq!((s["records_in"].as_u64(), s["delivered"].as_u64()), (Some(records), Some(delivered)), "{s}");
    assert_eq!(lines(&dir.join("out/patient-events.jsonl")).len() as u64, delivered);
    assert_secret_hidden(&dir, SCRAM_PASSWORD, &[&stdout, &stderr]);
    assert_no_phi(&[&stdout, &stderr]);
    drop(tansu);

    // 3. SCRAM-SHA-512 over `sasl_ssl`: the broker restarted on the same storage, behind
    //    stunnel, whose address it now advertises.
    let tls_port = free_port();
    let _tansu = Tansu::start_with(port, Storage::Sqlite(&data), &format!("tcp://127.0.0.1:{tls_port}"), true);
    let tls = Stunnel::start(&certs, tls_port, port, false);
    let over_tls = scram_security("sasl_ssl", "SCRAM-SHA-512", Some("../certs/ca.pem"));
    quickstart_to_kafka(&dir, &tls.brokers(), "secure", &over_tls);
    let out = run_quickstart(&dir, &[("KAFKA_PASSWORD", SCRAM_PASSWORD)]);
    let reader = scram_client(&tls.brokers(), "sasl_ssl", "SCRAM-SHA-512", Some(&certs.join("ca.pem")));
    assert_sink_delivered(&out, &dir, &reader, "secure");
    assert_secret_hidden(&dir, SCRAM_PASSWORD, &[&text(&out.stdout), &text(&out.stderr)]);
}

#[test]
fn the_event_hubs_settings_reach_the_broker_over_tls_and_the_connection_string_is_never_shown() {
    let dir = workspace("kafka-eventhubs");
    let certs = dir.join("certs");
    make_certificates(&certs, "IP:127.0.0.1,DNS:localhost");
    let (_tansu, tls) = secured_broker(&certs);
    // As the user guide writes them for Event Hubs, plus the test CA.
    let block = security(&[
        "protocol: sasl_ssl",
        "mechanism: PLAIN",
        "username: $ConnectionString",
        "password: ${EVENTHUBS_CONNECTION_STRING}",
        "ca_file: ../certs/ca.pem",
    ]);
    quickstart_to_kafka(&dir, &tls.brokers(), "events", &block);
    let env = [("EVENTHUBS_CONNECTION_STRING", CONNECTION_STRING)];
    let plan = sluice(&dir, &["plan", "pipelines/quickstart.yaml"]).envs(env).output().unwrap();
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    assert!(text(&plan.stdout).contains("sasl_ssl PLAIN, CA file"), "{}", text(&plan.stdout));
    let plan_json =
        sluice(&dir, &["plan", "pipelines/quickstart.yaml", "--format", "json"]).envs(env).output().unwrap();
    assert!(plan_json.status.success(), "{}", text(&plan_json.stderr));
    assert!(text(&plan_json.stdout).contains("${EVENTHUBS_CONNECTION_STRING}"), "the plan keeps the reference");
    let out = run_quickstart(&dir, &env);
    let stderr = text(&out.stderr);
    assert_eq!(error_code(&out), "RT127", "{stderr}");
    assert!(stderr.contains("refused the credentials of user `$ConnectionString`"), "{stderr}");
    for shown in [&plan, &plan_json, &out] {
        for secret in [CONNECTION_STRING, "SharedAccessKey=", "c2x1aWNlLXRlc3Qta2V5"] {
            assert_secret_hidden(&dir, secret, &[&text(&shown.stdout), &text(&shown.stderr)]);
        }
    }
    assert_no_phi(&[&text(&out.stdout), &stderr]);
}

/// A `kafka` sink run against `brokers` with `block` as its security; it must fail with RT181
/// and say `cause`.
fn assert_tls_refused(dir: &Path, brokers: &str, block: &str, cause: &str) {
    quickstart_to_kafka(dir, brokers, "events", block);
    let out = run_quickstart(dir, &[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(error_code(&out), "RT181", "{stderr}");
    assert!(stderr.contains(cause), "{cause}: {stderr}");
    assert!(stderr.contains(brokers), "names the brokers: {stderr}");
    // Restore the quick start for the next case.
    restore_quickstart(dir);
}

#[test]
fn tls_with_the_right_ca_delivers_and_a_certificate_from_another_ca_or_for_another_host_name_fails_with_rt181() {
    let dir = workspace("kafka-tls-refused");
    let certs = dir.join("certs");
    make_certificates(&certs, "IP:127.0.0.1,DNS:localhost");
    // Its own CA, and a server certificate for a name the client does not connect to.
    let named = dir.join("certs-named");
    make_certificates(&named, "DNS:kafka.invalid");
    // tansu advertises the good stunnel: metadata sends the client back through it.
    let (port, good_port) = (free_port(), free_port());
    let tansu = Tansu::start_with(port, Storage::Memory, &format!("tcp://127.0.0.1:{good_port}"), false);
    let good = Stunnel::start(&certs, good_port, tansu.port, false);
    let misnamed = Stunnel::start(&named, free_port(), tansu.port, false);

    let other_ca = security(&["protocol: ssl", "ca_file: ../certs/other-ca.pem"]);
    assert_tls_refused(&dir, &good.brokers(), &other_ca, "signed by a CA this client does not trust (unknown CA)");
    let system_only = security(&["protocol: ssl"]);
    assert_tls_refused(&dir, &good.brokers(), &system_only, "signed by a CA this client does not trust (unknown CA)");
    let wrong_name = security(&["protocol: ssl", "ca_file: ../certs-named/ca.pem"]);
    assert_tls_refused(
        &dir,
        &misnamed.brokers(),
        &wrong_name,
        "not valid for the host name `127.0.0.1` (wrong host name)",
    );

    // The right CA: every delivered record arrives through TLS.
    tansu.create_topic("events", 3);
    let right = security(&["protocol: ssl", "ca_file: ../certs/ca.pem"]);
    quickstart_to_kafka(&dir, &good.brokers(), "events", &right);
    let out = run_quickstart(&dir, &[]);
    let mut reader = client(&good.brokers());
    reader.set("security.protocol", "ssl").set("ssl.ca.location", certs.join("ca.pem").display().to_string());
    assert_sink_delivered(&out, &dir, &reader, "events");
}

#[test]
fn mutual_tls_takes_a_client_certificate_of_the_ca_and_refuses_none_or_another() {
    let dir = workspace("kafka-mtls");
    let certs = dir.join("certs");
    make_certificates(&certs, "IP:127.0.0.1,DNS:localhost");
    let (port, tls_port) = (free_port(), free_port());
    let tansu = Tansu::start_with(port, Storage::Memory, &format!("tcp://127.0.0.1:{tls_port}"), false);
    tansu.create_topic("events", 3);
    let mtls = Stunnel::start(&certs, tls_port, port, true);
    let brokers = mtls.brokers();

    let none = security(&["protocol: ssl", "ca_file: ../certs/ca.pem"]);
    assert_tls_refused(&dir, &brokers, &none, "requires a client certificate");
    let foreign = security(&[
        "protocol: ssl",
        "ca_file: ../certs/ca.pem",
        "client_cert: ../certs/other-client.pem",
        "client_key: ${file:../certs/other-client.key}",
    ]);
    assert_tls_refused(&dir, &brokers, &foreign, "refused the client certificate");

    // A key file that holds no private key: refused before connecting (RT182), naming the
    // reference, never the content.
    let not_a_key = security(&[
        "protocol: ssl",
        "ca_file: ../certs/ca.pem",
        "client_cert: ../certs/client.pem",
        "client_key: ${file:../certs/client.csr}",
    ]);
    quickstart_to_kafka(&dir, &brokers, "events", &not_a_key);
    let out = run_quickstart(&dir, &[]);
    assert_eq!(error_code(&out), "RT182", "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is not a PEM private key"), "{}", text(&out.stderr));
    restore_quickstart(&dir);

    let ours = security(&[
        "protocol: ssl",
        "ca_file: ../certs/ca.pem",
        "client_cert: ../certs/client.pem",
        "client_key: ${file:../certs/client.key}",
    ]);
    quickstart_to_kafka(&dir, &brokers, "events", &ours);
    let plan = sluice(&dir, &["plan", "pipelines/quickstart.yaml"]).output().unwrap();
    assert!(text(&plan.stdout).contains("client certificate"), "{}", text(&plan.stdout));
    let out = run_quickstart(&dir, &[]);
    let mut reader = client(&brokers);
    reader
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", certs.join("ca.pem").display().to_string())
        .set("ssl.certificate.location", certs.join("client.pem").display().to_string())
        .set("ssl.key.location", certs.join("client.key").display().to_string());
    assert_sink_delivered(&out, &dir, &reader, "events");
    let key = std::fs::read_to_string(certs.join("client.key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert_secret_hidden(&dir, key_body, &[&text(&out.stdout), &text(&out.stderr), &text(&plan.stdout)]);
}
