//! moto (the AWS emulator from PyPI) in server mode on 127.0.0.1, for the tests that talk to
//! S3 or Secrets Manager: `scripts/setup-moto` installs it once into `target/venv-moto`. Objects
//! are put and read back with boto3 (AWS's own SDK, not our client).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, root, text};

/// The S3 credentials the tests use (moto accepts any unless told to check signatures); a
/// pipeline reads them from `SLUICE_TEST_S3_KEY_ID` / `SLUICE_TEST_S3_SECRET` ([`store_block`]).
pub const KEY_ID: &str = "AKIDOBJECTSTORETEST";
pub const SECRET: &str = "secret-of-the-object-store-test-9d2c";

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

/// Runs a boto3 script against moto: `s3` is a client; `argv[2:]` are the arguments.
pub fn boto3(moto: &Moto, body: &str, args: &[&str]) -> String {
    let script = format!(
        "import boto3, sys\n\
         s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
             aws_access_key_id='{KEY_ID}', aws_secret_access_key='{SECRET}')\n{body}"
    );
    let mut cmd = Command::new(venv().join("python"));
    cmd.arg("-c").arg(&script).arg(&moto.endpoint).args(args);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "boto3: {}", text(&out.stderr));
    text(&out.stdout)
}

pub fn create_bucket(moto: &Moto, bucket: &str) {
    boto3(moto, "s3.create_bucket(Bucket=sys.argv[2])\n", &[bucket]);
}

/// Puts the local file `from` as `key`.
pub fn put(moto: &Moto, bucket: &str, key: &str, from: &Path) {
    boto3(moto, "s3.upload_file(sys.argv[4], sys.argv[2], sys.argv[3])\n", &[bucket, key, from.to_str().unwrap()]);
}

/// A source's or sink's `store:` block for `moto` (indented for a component's keys), its
/// credentials from the environment (`SLUICE_TEST_S3_KEY_ID`, `SLUICE_TEST_S3_SECRET`).
pub fn store_block(moto: &Moto) -> String {
    format!(
        "store:\n      endpoint: {}\n      region: us-east-1\n      access_key_id: ${{SLUICE_TEST_S3_KEY_ID}}\n      secret_access_key: ${{SLUICE_TEST_S3_SECRET}}",
        moto.endpoint
    )
}
