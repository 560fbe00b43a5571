//! `connections:` and `sluice connect` against a real authorization server: panva's
//! oidc-provider (OpenID Certified; installed from npm by `scripts/setup-oidc-provider`,
//! started on 127.0.0.1 by `tests/servers/oidc.mjs`) with authorization code + PKCE (required),
//! rotating refresh tokens (reuse of an old one revokes the grant) and client credentials. The
//! browser is `tests/servers/browser.py`: it follows the redirects with a cookie jar and submits
//! the server's own login and consent forms.
//!
//! Checked: the code comes back to the one-shot listener and is exchanged with the verifier;
//! tokens are stored sealed (not in the store file in clear); the access token works at the
//! resource server (userinfo); it is refreshed before expiry and after a 401; the refresh token
//! rotates and the old one is refused; concurrent refreshers (separate store connections)
//! refresh once and lose nothing; a forged state is refused with nothing stored; client
//! credentials; the hard-expiry warning; and no token, code or secret in any output.

mod common;

use std::io::{BufRead, BufReader};

use std::process::{Command, Stdio};

use base64::Engine;
use common::oidc::*;
use common::text;
use sluice_runtime::oauth::Connection;
use sluice_runtime::secrets::Secret;

fn get_userinfo(server: &Server, token: &Secret) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {}", std::str::from_utf8(token.expose()).unwrap());
    agent.get(server.url("/me")).header("Authorization", auth).call().unwrap().status().as_u16()
}

fn form_post(server: &Server, path: &str, client: (&str, &str), form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut r = agent
        .post(server.url(path))
        .header("Authorization", format!("Basic {}", encode(&format!("{}:{}", client.0, client.1))))
        .content_type("application/x-www-form-urlencoded")
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    let json = serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default();
    (status, json)
}

/// The stored refresh token, opened with the test's key (what only the key holder can do).
fn stored_refresh_token(plan: &sluice_compiler::plan::Plan) -> String {
    let store = sluice_runtime::state::Store::open(plan.state.as_ref().unwrap(), None).unwrap();
    let row = store.token_row("finance", "app").unwrap().expect("a row");
    let ring = sluice_runtime::keys::KeyRing::parse(TOKEN_KEY.as_bytes()).unwrap();
    let plain = ring.open(&row.key_id, b"sluice connection\0finance\0app", &row.sealed).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    json["refresh_token"].as_str().unwrap().to_string()
}

fn generation(plan: &sluice_compiler::plan::Plan) -> i64 {
    let store = sluice_runtime::state::Store::open(plan.state.as_ref().unwrap(), None).unwrap();
    store.token_row("finance", "app").unwrap().expect("a row").generation
}

fn assert_no_secret(outputs: &[&str], secrets: &[&str]) {
    for out in outputs {
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            assert!(!out.contains(s), "a secret or token reached the output:\n{out}");
        }
    }
}

#[test]
fn authorization_code_with_pkce_then_refresh_rotation_and_401() {
    let server = Server::start();
    let dir = workspace("connect-code", &server, "5m");
    let (out, callback) = connect(&dir, "app");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("connection app (oauth2, authorization_code): authorized"), "{stdout}");
    assert!(stdout.contains("(generation 1)"), "{stdout}");
    // The URL sent the challenge, never a verifier, and the code came back to the listener.
    assert!(stdout.contains("code_challenge_method=S256"), "{stdout}");
    let code = callback.split("code=").nth(1).and_then(|c| c.split('&').next()).unwrap_or_default().to_string();
    assert!(!code.is_empty(), "{callback}");

    let plan = compile(&dir, "pipeline.yaml");
    let conn = Connection::open(&plan, "app").unwrap();
    let token = conn.bearer().unwrap();
    let access = String::from_utf8(token.expose().to_vec()).unwrap();
    assert_eq!(get_userinfo(&server, &token), 200, "the access token works at the resource server");
    // Sealed at rest: the store file holds neither token in clear.
    let refresh1 = stored_refresh_token(&plan);
    let db = std::fs::read(dir.join("out/state.db")).unwrap();
    let db_wal = std::fs::read(dir.join("out/state.db-wal")).unwrap_or_default();
    for t in [&access, &refresh1] {
        let hay = [db.as_slice(), db_wal.as_slice()].concat();
        assert!(!hay.windows(t.len()).any(|w| w == t.as_bytes()), "a token is in the store in clear");
    }
    // Fresh (600 s to live, refresh 5 min before): no refresh.
    assert_eq!(conn.bearer().unwrap().expose(), token.expose());
    assert_eq!(generation(&plan), 1);

    // The access token expires early at the server (injected): the API answers 401 and the
    // connection refreshes.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let expire = server.url(&format!("/test/expire-access-token?token={access}"));
    assert_eq!(agent.get(&expire).call().unwrap().status().as_u16(), 204);
    assert_eq!(get_userinfo(&server, &token), 401);
    let token2 = conn.unauthorized(&token).unwrap();
    assert_ne!(token2.expose(), token.expose());
    assert_eq!(get_userinfo(&server, &token2), 200);
    assert_eq!(generation(&plan), 2);
    let refresh2 = stored_refresh_token(&plan);
    assert_ne!(refresh2, refresh1, "the refresh token rotated and the newest is stored");

    // Refresh before expiry: the same connection wanting 20 minutes of margin on a 10-minute
    // token refreshes at once, and again the newest refresh token is kept.
    write_pipeline(&dir, "eager.yaml", &server, "20m", "");
    let eager = compile(&dir, "eager.yaml");
    let token3 = Connection::open(&eager, "app").unwrap().bearer().unwrap();
    assert_ne!(token3.expose(), token2.expose());
    assert_eq!(get_userinfo(&server, &token3), 200);
    assert_eq!(generation(&plan), 3);
    let refresh3 = stored_refresh_token(&plan);
    assert_ne!(refresh3, refresh2);

    // `--status` and `--refresh` through the CLI; the hard expiry (5 days, from
    // `x_refresh_token_expires_in`) is within the 14-day window: RT040.
    let status = sluice(&dir, &["connect", "app", "pipeline.yaml", "--status"]);
    assert!(status.status.success());
    assert!(text(&status.stdout).contains("refresh token expires at"), "{}", text(&status.stdout));
    assert!(text(&status.stderr).contains("warning[RT040]: connection `app`: its refresh token expires at"));
    let refreshed = sluice(&dir, &["connect", "app", "pipeline.yaml", "--refresh", "--json"]);
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
    let json: serde_json::Value = serde_json::from_slice(&refreshed.stdout).unwrap();
    assert_eq!(json["generation"], 4);
    assert_eq!(json["connected"], true);
    let refresh4 = stored_refresh_token(&plan);

    // The rotated-out refresh token is refused by the server (it is no longer usable by
    // anyone); done last, since oidc-provider then revokes the whole grant (reuse detection).
    let (reused, body) = form_post(
        &server,
        "/token",
        ("sluice-app", APP_SECRET),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh1)],
    );
    assert_eq!((reused, body["error"].as_str()), (400, Some("invalid_grant")));
    // After that revocation, a refresh fails with RT037 (authorize again), naming no token.
    let failed = sluice(&dir, &["connect", "app", "pipeline.yaml", "--refresh"]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(text(&failed.stderr).contains("error[RT037]"), "{}", text(&failed.stderr));

    let all = [
        stdout,
        stderr,
        text(&status.stdout),
        text(&status.stderr),
        text(&refreshed.stdout),
        text(&refreshed.stderr),
        text(&failed.stderr),
    ];
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let t2 = String::from_utf8(token2.expose().to_vec()).unwrap();
    let t3 = String::from_utf8(token3.expose().to_vec()).unwrap();
    assert_no_secret(
        &all,
        &[APP_SECRET, TOKEN_KEY, &code, &access, &t2, &t3, &refresh1, &refresh2, &refresh3, &refresh4],
    );
    // Nor in the audit log, which records each authorization, refresh and refusal.
    let audit = std::fs::read_to_string(dir.join("out/audit.jsonl")).unwrap();
    let events: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(events, ["connection_authorized", "connection_refreshed", "connection_refused"], "{audit}");
    assert!(audit.contains("\"code\":\"RT037\""), "{audit}");
    assert_no_secret(
        &[&audit],
        &[APP_SECRET, TOKEN_KEY, &code, &access, &t2, &t3, &refresh1, &refresh2, &refresh3, &refresh4],
    );
    // Nor in the plan.
    let plan_json = text(&sluice(&dir, &["plan", "pipeline.yaml", "--format", "json"]).stdout);
    assert!(plan_json.contains("\"client_secret\": \"${file:"), "{plan_json}");
    assert_no_secret(&[&plan_json], &[APP_SECRET, TOKEN_KEY, MACHINE_SECRET]);
}

#[test]
fn concurrent_refreshers_refresh_once_and_keep_the_newest_token() {
    let server = Server::start();
    let dir = workspace("connect-race", &server, "5m");
    let (out, _) = connect(&dir, "app");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = compile(&dir, "pipeline.yaml");
    let rejected = Connection::open(&plan, "app").unwrap().bearer().unwrap();
    // Eight processes' worth of connections (each its own store connection) see a 401 at once.
    let tokens: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (plan, rejected) = (&plan, &rejected);
                s.spawn(move || {
                    Connection::open(plan, "app").unwrap().unauthorized(rejected).unwrap().expose().to_vec()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(tokens.iter().all(|t| t == &tokens[0]), "all got the one new token");
    assert_eq!(generation(&plan), 2, "one refresh");
    // A second refresh with a stale refresh token would have made oidc-provider revoke the
    // grant: the token works, and so does the stored refresh token.
    assert_eq!(get_userinfo(&server, &Secret::from_bytes(tokens[0].clone())), 200);
    let refreshed = sluice(&dir, &["connect", "app", "pipeline.yaml", "--refresh"]);
    assert!(refreshed.status.success(), "{}", text(&refreshed.stderr));
}

#[test]
fn a_forged_state_is_refused_and_nothing_is_stored() {
    let server = Server::start();
    let dir = workspace("connect-state", &server, "5m");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&*dir)
        .args(["connect", "app", "pipeline.yaml", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    // An attacker's redirect: a code of theirs, a state that is not this attempt's.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let forged = format!("http://127.0.0.1:{}/callback?code=attacker-code-123&state=forged", server.redirect_port);
    assert_eq!(agent.get(&forged).call().unwrap().status().as_u16(), 400);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error[RT039]") && stderr.contains("`state`"), "{stderr}");
    assert!(!stderr.contains("attacker-code-123"));
    let status = sluice(&dir, &["connect", "app", "pipeline.yaml", "--status"]);
    assert!(
        text(&status.stdout).contains("app (oauth2, authorization_code): not authorized"),
        "{}",
        text(&status.stdout)
    );
}

#[test]
fn client_credentials_get_a_token_the_server_knows() {
    let server = Server::start();
    let dir = workspace("connect-machine", &server, "5m");
    let out = sluice(&dir, &["connect", "machine", "pipeline.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("connection machine (oauth2, client_credentials): authorized"));
    let plan = compile(&dir, "pipeline.yaml");
    let token = Connection::open(&plan, "machine").unwrap().bearer().unwrap();
    let access = String::from_utf8(token.expose().to_vec()).unwrap();
    let (status, body) =
        form_post(&server, "/token/introspection", ("sluice-machine", MACHINE_SECRET), &[("token", &access)]);
    assert_eq!((status, body["active"].as_bool()), (200, Some(true)), "{body}");
    assert_eq!(body["client_id"], "sluice-machine");
    // Wrong secret: RT038 naming the OAuth error code only.
    std::fs::write(dir.join("machine.secret"), "wrong-secret-value").unwrap();
    std::fs::remove_file(dir.join("out/state.db")).unwrap();
    let _ = std::fs::remove_file(dir.join("out/state.db-wal"));
    let _ = std::fs::remove_file(dir.join("out/state.db-shm"));
    let refused = sluice(&dir, &["connect", "machine", "pipeline.yaml"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("error[RT038]") && stderr.contains("`invalid_client`"), "{stderr}");
    assert_no_secret(
        &[&stderr, &text(&out.stdout), &text(&out.stderr)],
        &[MACHINE_SECRET, "wrong-secret-value", &access],
    );
}
