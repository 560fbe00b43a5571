//! The token endpoint (RFC 6749 sections 4.1.3, 4.4 and 6): exchanging a code (with its PKCE
//! verifier), client credentials, and refreshing; and reading its answer.
//!
//! Invariants:
//! - Requests are `application/x-www-form-urlencoded` POSTs with the client authenticated by
//!   HTTP Basic (`client_auth: basic`) or in the body (`post`); no redirect is followed.
//! - An error answer is reported by its RFC 6749 `error` code only (a fixed word); the
//!   server's free text (`error_description`) and the body are never shown, since servers
//!   echo what they were sent. Transport errors are reported by kind.
//! - Tokens come back as [`Secret`]s: their `Debug` shows nothing.

use std::time::Duration;

use base64::Engine;
use sluice_compiler::plan::connection::ConnectionPlan;

use crate::error::RunError;
use crate::findings;
use crate::secrets::Secret;

/// How long one request to the token endpoint may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A successful token response.
#[derive(Debug)]
pub struct Granted {
    pub access_token: Secret,
    pub token_type: String,
    /// Seconds from now.
    pub expires_in: Option<i64>,
    /// `None` when the server issued none (then a refresh keeps the old one).
    pub refresh_token: Option<Secret>,
    /// The refresh token's hard lifetime in seconds, when the server says it
    /// (`refresh_token_expires_in`, QuickBooks' `x_refresh_token_expires_in`).
    pub refresh_expires_in: Option<i64>,
}

/// What is asked of the token endpoint.
pub enum Grant<'a> {
    Code { code: &'a Secret, verifier: &'a Secret, redirect_uri: &'a str },
    Refresh(&'a Secret),
    ClientCredentials,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn text(s: &Secret) -> &str {
    std::str::from_utf8(s.expose()).unwrap_or("")
}

/// Asks the token endpoint of `conn` for tokens.
pub fn request(conn: &ConnectionPlan, client_secret: Option<&Secret>, grant: Grant<'_>) -> Result<Granted, RunError> {
    let name = &conn.name;
    let url = conn.token_url.as_deref().unwrap_or_default();
    let client_id = conn.client_id.as_deref().unwrap_or_default();
    let mut form = form_urlencoded::Serializer::new(String::new());
    match &grant {
        Grant::Code { code, verifier, redirect_uri } => {
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", text(code))
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_verifier", text(verifier));
        }
        Grant::Refresh(token) => {
            form.append_pair("grant_type", "refresh_token").append_pair("refresh_token", text(token));
        }
        Grant::ClientCredentials => {
            form.append_pair("grant_type", "client_credentials");
            if !conn.scopes.is_empty() {
                form.append_pair("scope", &conn.scopes.join(" "));
            }
        }
    }
    let mut request = agent().post(url).header("Accept", "application/json");
    match (conn.client_auth.as_str(), client_secret) {
        ("post", secret) => {
            form.append_pair("client_id", client_id);
            if let Some(secret) = secret {
                form.append_pair("client_secret", text(secret));
            }
        }
        (_, Some(secret)) => {
            // RFC 6749 2.3.1: each part form-encoded, then Basic.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(text(secret))));
            request = request.header("Authorization", format!("Basic {basic}"));
        }
        (_, None) => {
            // A public client: identified, not authenticated.
            form.append_pair("client_id", client_id);
        }
    }
    let body = form.finish();
    let what = match grant {
        Grant::Code { .. } => "exchange the authorization code",
        Grant::Refresh(_) => "refresh the access token",
        Grant::ClientCredentials => "get a token with the client credentials",
    };
    let mut response = request.content_type("application/x-www-form-urlencoded").send(body).map_err(|e| {
        RunError::new(findings::OAUTH_REFUSED, format!("connection `{name}`: cannot {what}: {}", transport(&e)))
            .with_help("check the connection's `token_url` and the network")
    })?;
    let status = response.status().as_u16();
    let json: Option<serde_json::Value> = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let field = |k: &str| json.as_ref().and_then(|j| j.get(k));
    if !(200..300).contains(&status) {
        let error: String = field("error")
            .and_then(|e| e.as_str())
            .map(|e| e.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect())
            .unwrap_or_default();
        let code = if error == "invalid_grant" && matches!(grant, Grant::Refresh(_)) {
            findings::NOT_CONNECTED
        } else {
            findings::OAUTH_REFUSED
        };
        let said = if error.is_empty() { format!("HTTP {status}") } else { format!("`{error}` (HTTP {status})") };
        return Err(RunError::new(code, format!("connection `{name}`: the token endpoint refused to {what}: {said}"))
            .with_help(match error.as_str() {
                "invalid_client" | "unauthorized_client" => "check the connection's `client_id` and `client_secret`",
                "invalid_grant" => {
                    "the code or refresh token is expired, used or revoked: authorize again with `sluice connect`"
                }
                _ => "check the connection's settings against the provider's documentation",
            }));
    }
    let secret = |k: &str| {
        field(k).and_then(|v| v.as_str()).filter(|s| !s.is_empty()).map(|s| Secret::from_bytes(s.as_bytes().to_vec()))
    };
    let seconds = |k: &str| field(k).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
    let Some(access_token) = secret("access_token") else {
        return Err(RunError::new(
            findings::OAUTH_REFUSED,
            format!("connection `{name}`: the token endpoint answered HTTP {status} without an `access_token`"),
        )
        .with_help("check that `token_url` is the provider's token endpoint"));
    };
    Ok(Granted {
        access_token,
        token_type: field("token_type").and_then(|v| v.as_str()).unwrap_or("Bearer").to_string(),
        expires_in: seconds("expires_in"),
        refresh_token: secret("refresh_token"),
        refresh_expires_in: seconds("refresh_token_expires_in").or_else(|| seconds("x_refresh_token_expires_in")),
    })
}

/// A transport error by kind (ureq's texts for some kinds quote the URL).
fn transport(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
        ureq::Error::Timeout(_) => "no answer in time".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        ureq::Error::HostNotFound => "host not found".to_string(),
        ureq::Error::BadUri(_) => "the URL is not valid".to_string(),
        _ => "HTTP client error".to_string(),
    }
}
