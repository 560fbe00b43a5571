//! A throwaway RabbitMQ node for the `amqp` tests (scripts/start-rabbitmq: Debian's
//! rabbitmq-server, installed if missing, started on 127.0.0.1 on free ports with its own data
//! directory, cookie and epmd), stopped when dropped; and the tests' independent AMQP client
//! (pika, through tests/servers/amqp_client.py). No server is a failure, never a skip.
//! [`Rabbit::start_tls`] adds a TLS listener with certificates [`make_certificates`] writes
//! with `openssl` (a throwaway CA, a server certificate for the names a test gives, a client
//! certificate, an unrelated CA and a client certificate it signed; [`expire_server_certificate`]
//! swaps in an expired server certificate).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::{root, text};

/// The user scripts/start-rabbitmq creates.
pub const USER: &str = "sluice";
pub const PASSWORD: &str = "sluice-test";

/// A message to publish: its body and headers (names and text values).
pub type Message = (Vec<u8>, Vec<(String, String)>);

/// A RabbitMQ node, stopped (and its directory removed) when dropped.
pub struct Rabbit {
    dir: PathBuf,
    pub port: u16,
    /// The TLS listener's port ([`Rabbit::start_tls`]).
    pub tls_port: Option<u16>,
}

/// Runs `openssl` with `args` in `dir`; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out.stderr));
}

/// A new RSA key `NAME.key` and a request `NAME.csr` for it with common name `cn`, in `dir`.
fn key_and_request(dir: &Path, name: &str, cn: &str) {
    let (key, csr, subject) = (format!("{name}.key"), format!("{name}.csr"), format!("/CN={cn}"));
    openssl(dir, &["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subject]);
}

/// Signs `NAME.csr` in `dir` with the CA named `ca` (its `.pem` and `.key`) into `NAME.pem`,
/// with the extensions of the file `ext`, valid two days from now.
fn sign(dir: &Path, name: &str, ca: &str, ext: &str, serial: &str) {
    let (csr, pem, ca_pem, ca_key) =
        (format!("{name}.csr"), format!("{name}.pem"), format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-set_serial",
            serial,
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            ext,
        ],
    );
}

/// Writes into `dir` (created): `ca.pem` (a CA made for this test), `server.pem`/`server.key`
/// (signed by it, for `server_names`, `IP:127.0.0.1,DNS:localhost` say), `client.pem`/
/// `client.key` (signed by it, for client use), `other-ca.pem` (a CA that signed none of
/// those) and `other-client.pem`/`other-client.key` (a client certificate `other-ca` signed).
/// RSA keys, valid two days.
pub fn make_certificates(dir: &Path, server_names: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    ext(
        "ca.ext",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n",
    );
    ext(
        "server.ext",
        &format!(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName={server_names}\n"
        ),
    );
    ext(
        "client.ext",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    );
    for (ca, cn) in [("ca", "Sluice test CA"), ("other-ca", "Another test CA")] {
        key_and_request(dir, ca, cn);
        let (csr, key, pem) = (format!("{ca}.csr"), format!("{ca}.key"), format!("{ca}.pem"));
        openssl(
            dir,
            &["x509", "-req", "-in", &csr, "-signkey", &key, "-out", &pem, "-days", "2", "-extfile", "ca.ext"],
        );
    }
    for (leaf, cn, ca, ext, serial) in [
        ("server", "localhost", "ca", "server.ext", "1001"),
        ("client", "sluice-client", "ca", "client.ext", "1002"),
        ("other-client", "sluice-client", "other-ca", "client.ext", "1003"),
    ] {
        key_and_request(dir, leaf, cn);
        sign(dir, leaf, ca, ext, serial);
    }
}

/// Replaces `server.pem` in `dir` ([`make_certificates`]) with one for the same key and names,
/// signed by the same CA, that expired: valid for January 2020 only. `openssl ca` sets the
/// dates (`x509 -req` here cannot set a start date in the past).
pub fn expire_server_certificate(dir: &Path) {
    let ca_dir = dir.join("expired-ca");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("index.txt"), "").unwrap();
    let config = "[ca]\ndefault_ca = test\n[test]\ndir = expired-ca\ndatabase = $dir/index.txt\nnew_certs_dir = $dir\nserial = $dir/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = none\n[any]\ncommonName = supplied\n";
    std::fs::write(dir.join("expired-ca.cnf"), config).unwrap();
    std::fs::write(ca_dir.join("serial"), "2001\n").unwrap();
    openssl(
        dir,
        &[
            "ca",
            "-batch",
            "-config",
            "expired-ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "server.csr",
            "-out",
            "server.pem",
            "-notext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200201000000Z",
            "-extfile",
            "server.ext",
        ],
    );
}

impl Rabbit {
    pub fn start(name: &str) -> Rabbit {
        Rabbit::start_with(name, None)
    }

    /// A node with a TLS listener too, using `certs` ([`make_certificates`]); `verify_peer`:
    /// it requires a client certificate signed by `certs/ca.pem` (mutual TLS).
    pub fn start_tls(name: &str, certs: &Path, verify_peer: bool) -> Rabbit {
        Rabbit::start_with(name, Some((certs, verify_peer)))
    }

    fn start_with(name: &str, tls: Option<(&Path, bool)>) -> Rabbit {
        let out = Command::new(root().join("scripts/setup-amqp-client")).output().expect("setup-amqp-client runs");
        assert!(out.status.success(), "scripts/setup-amqp-client: {}", text(&out.stderr));
        // scripts/start-rabbitmq picks free ports and releases them before the node binds them,
        // so a node another test starts at the same time may take one first (the node then
        // stops with `dist_port_already_used`): a fresh directory, with fresh ports, is tried.
        let mut failures = String::new();
        for attempt in 0..3 {
            let dir = std::env::temp_dir().join(format!("sluice-rabbit-{name}-{}-{attempt}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut start = Command::new(root().join("scripts/start-rabbitmq"));
            start.arg("start").arg(&dir);
            if let Some((certs, verify_peer)) = tls {
                start.env("SLUICE_RABBIT_TLS", certs);
                if verify_peer {
                    start.env("SLUICE_RABBIT_TLS_VERIFY", "peer");
                }
            }
            let out = start.output().unwrap();
            if out.status.success() {
                let stdout = text(&out.stdout);
                let port_of = |key: &str| {
                    stdout.lines().find_map(|l| l.strip_prefix(key).map(|p| p.trim().parse::<u16>().unwrap()))
                };
                let port = port_of("AMQP_PORT=").expect("start-rabbitmq prints AMQP_PORT");
                let tls_port = port_of("AMQPS_PORT=");
                assert_eq!(tls_port.is_some(), tls.is_some(), "start-rabbitmq prints AMQPS_PORT with TLS: {stdout}");
                return Rabbit { dir, port, tls_port };
            }
            failures.push_str(&text(&out.stderr));
            // The node is gone; its epmd is not (`start-rabbitmq stop` would wait on the node).
            let epmd_port = std::fs::read_to_string(dir.join("ports"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("EPMD_PORT=").map(str::to_string));
            if let Some(port) = epmd_port {
                let _ = Command::new("epmd").args(["-port", port.trim(), "-kill"]).output();
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("scripts/start-rabbitmq could not start a node in 3 tries: {failures}");
    }

    /// Stops the node now (as a server going away mid-run would); dropping it later is fine.
    pub fn stop_node(&self) {
        let out = Command::new(root().join("scripts/start-rabbitmq")).arg("stop").arg(&self.dir).output().unwrap();
        assert!(out.status.success(), "scripts/start-rabbitmq stop: {}", text(&out.stderr));
    }

    /// `amqp://sluice:...@127.0.0.1:PORT/%2f`: what the pipelines' `${AMQP_URL}` is set to.
    pub fn url(&self) -> String {
        format!("amqp://{USER}:{PASSWORD}@127.0.0.1:{}/%2f", self.port)
    }

    /// `amqps://sluice:...@HOST:TLS_PORT/%2f`: the TLS listener, by `host` (`127.0.0.1`).
    pub fn tls_url(&self, host: &str) -> String {
        format!("amqps://{USER}:{PASSWORD}@{host}:{}/%2f", self.tls_port.expect("a node started with TLS"))
    }

    /// Runs the independent client; its stdout.
    pub fn client(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new(root().join("target/venv-amqp/bin/python"))
            .arg(root().join("tests/servers/amqp_client.py"))
            .arg(self.url())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the AMQP test client runs");
        child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "amqp_client.py {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    pub fn declare_queue(&self, name: &str) {
        self.client(&["declare-queue", name], None);
    }

    /// Publishes `messages` (body, headers) to `queue` through the default exchange, confirmed.
    pub fn publish(&self, queue: &str, messages: &[Message]) {
        let mut input = String::new();
        for (body, headers) in messages {
            let headers: serde_json::Map<String, serde_json::Value> =
                headers.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            input.push_str(&serde_json::json!({"body": B64.encode(body), "headers": headers}).to_string());
            input.push('\n');
        }
        self.client(&["publish", queue], Some(&input));
    }

    /// The ready messages of `queue` (unacknowledged ones are not counted).
    pub fn count(&self, queue: &str) -> usize {
        self.client(&["count", queue], None).trim().parse().unwrap()
    }

    /// Every ready message of `queue`, acknowledged: routing key, body, headers, content type,
    /// delivery mode.
    pub fn drain(&self, queue: &str) -> Vec<serde_json::Value> {
        self.client(&["drain", queue], None)
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                let body = B64.decode(v["body"].as_str().unwrap()).unwrap();
                v["body"] = serde_json::Value::String(text(&body));
                v
            })
            .collect()
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/start-rabbitmq")).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
