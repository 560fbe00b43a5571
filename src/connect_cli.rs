//! `sluice connect NAME PIPELINE`: authorizes a connection of the pipeline's `connections:`
//! ([`sluice_runtime::oauth`]). For `auth: authorization_code` it listens on
//! `http://127.0.0.1:PORT/callback`, prints the authorization URL (stdout, one line), waits for
//! the browser to come back, checks the state and exchanges the code with the PKCE verifier;
//! for `client_credentials` it gets a token. `--status` shows whether a connection is
//! authorized and until when; `--refresh` refreshes now.
//!
//! Invariant: nothing printed holds a token, a code, a verifier or a secret: the URL carries
//! the PKCE challenge and the state only (which are public by design), the rest names the
//! connection, key ids and times.

use std::path::Path;
use std::time::Duration;

use sluice_compiler::diagnostics::Format;
use sluice_runtime::oauth::{Connection, Status, authorize};

use crate::commands::{FAILED, OK, compile, print_run_error};

/// What `sluice connect` is asked to do.
pub struct ConnectFlags {
    pub status: bool,
    pub refresh: bool,
    pub json: bool,
    pub timeout: Duration,
}

fn print_status(status: &Status, json: bool) {
    if json {
        println!("{}", serde_json::to_string(status).unwrap_or_default());
    } else {
        let state = if status.connected { "authorized" } else { "not authorized" };
        println!("connection {} ({}, {}): {state}", status.connection, status.provider, status.auth);
        if let Some(k) = &status.key_id {
            println!("  tokens sealed under key {k} (generation {})", status.generation.unwrap_or(0));
        }
        if let Some(at) = &status.access_expires_at {
            println!("  access token expires at {at}");
        }
        if let Some(at) = &status.refresh_expires_at {
            println!("  refresh token expires at {at}");
        }
    }
    if let Some(w) = &status.warning {
        eprintln!("warning[{}]: {w}", sluice_runtime::findings::REFRESH_TOKEN_EXPIRING);
    }
}

pub fn connect(name: &str, pipeline: &Path, flags: &ConnectFlags) -> u8 {
    let plan = match compile(pipeline, Format::Human) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let result = run(name, &plan, flags);
    // The audit log (when the pipeline keeps one) records authorizations, refreshes and
    // refusals: the connection, the key id and the error code; never a token or a code.
    if !flags.status {
        let event = match &result {
            Ok(s) => serde_json::json!({
                "event": if flags.refresh { "connection_refreshed" } else { "connection_authorized" },
                "connection": name,
                "key_id": s.key_id,
                "generation": s.generation,
            }),
            Err(e) => serde_json::json!({"event": "connection_refused", "connection": name, "code": e.code}),
        };
        let audited = sluice_runtime::time::Clock::new(None)
            .and_then(|clock| sluice_runtime::operator::record(&plan, &clock, "connect", event));
        if let Err(e) = audited {
            print_run_error(&e);
            return FAILED;
        }
    }
    match result {
        Ok(status) => {
            print_status(&status, flags.json);
            OK
        }
        Err(e) => {
            print_run_error(&e);
            FAILED
        }
    }
}

fn run(
    name: &str,
    plan: &sluice_compiler::plan::Plan,
    flags: &ConnectFlags,
) -> Result<Status, sluice_runtime::RunError> {
    let conn = Connection::open(plan, name)?;
    if flags.status {
        return conn.status();
    }
    if flags.refresh {
        return conn.refresh_now();
    }
    let p = conn.plan().clone();
    match p.auth.as_str() {
        "api_key" => Err(sluice_runtime::RunError::new(
            sluice_runtime::findings::CONNECTION_UNKNOWN,
            format!("connection `{name}` uses an API key (`auth: api_key`): there is nothing to authorize"),
        )
        .with_help(if p.provider == "plaid" {
            "a Plaid connection is the app's `client_id` and `client_secret`, and each Item's access token is a key of the `plaid` source: set the secrets they reference; `sluice connect` is for OAuth connections"
        } else {
            "set the secret its `api_key` references; `sluice connect` is for OAuth connections"
        })),
        "client_credentials" => {
            conn.bearer()?;
            conn.status()
        }
        _ => {
            let attempt = authorize::Attempt::new(p.redirect_port)?;
            let listener = authorize::listen(p.redirect_port)?;
            let url = attempt.url(
                p.authorize_url.as_deref().unwrap_or_default(),
                p.client_id.as_deref().unwrap_or_default(),
                &p.scopes,
            );
            eprintln!(
                "Open this URL in a browser and allow access for connection `{name}`; waiting on {}",
                attempt.redirect_uri
            );
            println!("{url}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let callback = authorize::wait(&listener, &attempt, flags.timeout)?;
            drop(listener);
            for (k, v) in &callback.extra {
                eprintln!("the provider also returned {k}={v}");
            }
            let now = sluice_runtime::time::format_utc(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
            );
            conn.exchange(&callback.code, &attempt.verifier, &attempt.redirect_uri, &now)
        }
    }
}
