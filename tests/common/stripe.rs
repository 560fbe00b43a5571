//! The local Stripe API (`tests/servers/stripe/server.py`: Stripe's published example
//! objects, synthetic customers, pagination, and faults injected through `/_inject`,
//! `/_slow`, `/_bad`, `/_add`, counted by `/_stats`), started on 127.0.0.1 on a free port and
//! stopped when dropped. Shared by tests/stripe_client.rs and tests/stripe_source.rs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::{free_port, root};

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server accepting `key`, with `count` objects per list created from `base_created`
    /// (Unix seconds) on, and the server's other settings in `env`.
    pub fn start(key: &str, count: u64, base_created: i64, env: &[(&str, String)]) -> Server {
        let port = free_port();
        let mut child = Command::new("python3")
            .arg(root().join("tests/servers/stripe/server.py"))
            .env("PORT", port.to_string())
            .env("STRIPE_KEY", key)
            .env("COUNT", count.to_string())
            .env("BASE_CREATED", base_created.to_string())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("listening {port}"));
        Server { child, port }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A control call: `GET /_stats`, else a `POST` (`/_inject?...`, `/_add?...`), as JSON.
    pub fn control(&self, path: &str) -> serde_json::Value {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let url = format!("{}{path}", self.base());
        let mut r =
            if path.starts_with("/_stats") { agent.get(&url).call() } else { agent.post(&url).send("") }.unwrap();
        serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
    }
}
