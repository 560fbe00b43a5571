//! The authorization server of the OAuth tests: panva's oidc-provider (installed by
//! `scripts/setup-oidc-provider`, run by `tests/servers/oidc.mjs` on 127.0.0.1), a pipeline
//! with connections to it (secrets in files), and `sluice connect` driven with the browser of
//! `tests/servers/browser.py`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use super::{root, text};

pub const APP_SECRET: &str = "app-secret-5c1e7d0b9a";
pub const MACHINE_SECRET: &str = "machine-secret-77f3e2a1";
pub const TOKEN_KEY: &str = "6f1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff0";
/// What the server adds as `x_refresh_token_expires_in` (5 days: inside the default 14-day
/// warning window).
pub const REFRESH_LIFETIME_S: u64 = 5 * 86_400;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The authorization server, stopped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub redirect_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start() -> Server {
        let status = Command::new(root().join("scripts/setup-oidc-provider")).status().expect("setup script runs");
        assert!(status.success(), "scripts/setup-oidc-provider could not install oidc-provider (needs node, npm)");
        let (port, redirect_port) = (free_port(), free_port());
        let mut child = Command::new("node")
            .arg(root().join("tests/servers/oidc.mjs"))
            .env("OIDC_PROVIDER_DIR", root().join("target/oidc-provider"))
            .env("PORT", port.to_string())
            .env("REDIRECT_PORT", redirect_port.to_string())
            .env("APP_SECRET", APP_SECRET)
            .env("MACHINE_SECRET", MACHINE_SECRET)
            .env("X_REFRESH_EXPIRES_IN", REFRESH_LIFETIME_S.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), format!("listening {port}"), "the server did not start");
        Server { child, port, redirect_port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A pipeline with connection `app` (authorization code) and `machine` (client credentials),
/// its secrets in files; `refresh_before` of `app` as given.
pub fn workspace(name: &str, server: &Server, refresh_before: &str) -> super::Workspace {
    let dir = super::scratch(name);
    for f in ["mapping.yaml", "policy.yaml"] {
        std::fs::copy(root().join("tests/ui/SL207-state-store-choice").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("app.secret"), APP_SECRET).unwrap();
    std::fs::write(dir.join("machine.secret"), MACHINE_SECRET).unwrap();
    std::fs::write(dir.join("token.key"), TOKEN_KEY).unwrap();
    write_pipeline(&dir, "pipeline.yaml", server, refresh_before, "");
    dir
}

/// `extra`: more connections, appended under `connections:`.
pub fn write_pipeline(dir: &Path, file: &str, server: &Server, refresh_before: &str, extra: &str) {
    let base = server.url("");
    let pipeline = format!(
        "kind: pipeline
name: finance
sources:
  adt_feed:
    type: mllp
    listen: 127.0.0.1:2575
stages:
  to_event:
    type: map
    inputs: [adt_feed]
    mapping: mapping.yaml
  mask:
    type: mask
    inputs: [to_event]
    policy: policy.yaml
sinks:
  events:
    type: jsonl
    inputs: [mask]
    path: out/events.jsonl
dlq:
  path: out/dlq.jsonl
  plaintext_reason: synthetic test fixture
audit:
  path: out/audit.jsonl
state:
  path: out/state.db
connections:
  app:
    provider: oauth2
    client_id: sluice-app
    client_secret: ${{file:app.secret}}
    authorize_url: {base}/auth
    token_url: {base}/token
    scopes: [openid]
    redirect_port: {}
    token_key: ${{file:token.key}}
    refresh_before: {refresh_before}
  machine:
    provider: oauth2
    auth: client_credentials
    client_id: sluice-machine
    client_secret: ${{file:machine.secret}}
    token_url: {base}/token
    token_key: ${{file:token.key}}
{extra}",
        server.redirect_port
    );
    std::fs::write(dir.join(file), pipeline).unwrap();
}

pub fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
}

/// Runs `sluice connect NAME` with the browser; returns its output and the callback URL the
/// browser reached (it holds the code).
pub fn connect(dir: &Path, name: &str) -> (Output, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(["connect", name, "pipeline.yaml", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "no URL printed: {url}");
    let browser =
        Command::new("python3").arg(root().join("tests/servers/browser.py")).arg(url.trim()).output().unwrap();
    assert!(browser.status.success(), "browser: {}", text(&browser.stderr));
    let browsed = text(&browser.stdout);
    let callback = browsed.lines().next().unwrap_or_default().to_string();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stdout = format!("{url}{rest}").into_bytes();
    assert!(browsed.contains("Sluice is connected"), "{browsed}");
    (out, callback)
}

pub fn compile(dir: &Path, file: &str) -> sluice_compiler::plan::Plan {
    let mut c = sluice_compiler::compile::Compiler::default();
    let plan = c.plan(&dir.join(file)).unwrap();
    plan.unwrap_or_else(|| panic!("{file} does not compile: {:?}", c.diags))
}
