//! A throwaway RabbitMQ node for the `amqp` tests (scripts/start-rabbitmq: Debian's
//! rabbitmq-server, installed if missing, started on 127.0.0.1 on free ports with its own data
//! directory, cookie and epmd), stopped when dropped; and the tests' independent AMQP client
//! (pika, through tests/servers/amqp_client.py). No server is a failure, never a skip.

use std::io::Write as _;
use std::path::PathBuf;
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
}

impl Rabbit {
    pub fn start(name: &str) -> Rabbit {
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
            let out = Command::new(root().join("scripts/start-rabbitmq")).arg("start").arg(&dir).output().unwrap();
            if out.status.success() {
                let port = text(&out.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("AMQP_PORT=").map(|p| p.trim().parse().unwrap()))
                    .expect("start-rabbitmq prints AMQP_PORT");
                return Rabbit { dir, port };
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
