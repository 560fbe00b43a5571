//! moto (the AWS emulator from PyPI) in server mode on 127.0.0.1, for the tests that talk to
//! S3 or Secrets Manager: `scripts/setup-moto` installs it once into `target/venv-moto`.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, root};

/// moto's server on 127.0.0.1, stopped when dropped.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The virtualenv's `bin` (moto_server, python with boto3).
pub fn venv() -> PathBuf {
    root().join("target/venv-moto/bin")
}

/// moto on a free port; `no_auth_actions`: when set, moto checks every request's SigV4
/// signature against its IAM users' keys (and their policies) after that many requests.
pub fn start(no_auth_actions: Option<u32>) -> Moto {
    let status = Command::new(root().join("scripts/setup-moto")).status().expect("scripts/setup-moto runs");
    assert!(status.success(), "scripts/setup-moto could not install moto: this test needs it (PyPI access)");
    let port = free_port();
    let mut cmd = Command::new(venv().join("moto_server"));
    if let Some(n) = no_auth_actions {
        cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
    }
    let child = cmd
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen on port {port} within 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    moto
}
