//! The browser side of the OAuth 2.0 authorization code flow (RFC 6749 4.1, with PKCE,
//! RFC 7636, and loopback redirects for native apps, RFC 8252): the authorization URL, and the
//! one-shot redirect listener on 127.0.0.1 that receives the code.
//!
//! Invariants:
//! - PKCE S256 always: a fresh 256-bit verifier per attempt, only its SHA-256 in the URL; the
//!   verifier goes to the token endpoint with the code, never anywhere else.
//! - `state` is 128 random bits, compared in constant time with what comes back; a redirect
//!   with another state (or none) is refused and nothing is exchanged.
//! - The listener binds 127.0.0.1 only, answers each request, and stops at the first request
//!   to `/callback` that carries this attempt's state (with a code or an error) or at the
//!   deadline; other requests (a browser's `/favicon.ico`) get 404 and are ignored.
//! - Neither the code, the verifier nor the state reaches a log, an error or the page shown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::error::RunError;
use crate::findings;
use crate::secrets::Secret;

/// The secrets of one authorization attempt.
pub struct Attempt {
    pub verifier: Secret,
    pub state: String,
    pub redirect_uri: String,
}

impl std::fmt::Debug for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attempt({})", self.redirect_uri)
    }
}

fn random_b64(bytes: usize) -> Result<String, RunError> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| RunError::new(findings::IO, "the system's random number generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// The S256 challenge of a verifier.
pub fn challenge(verifier: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier))
}

impl Attempt {
    /// A new attempt redirecting to `http://127.0.0.1:PORT/callback`.
    pub fn new(port: u16) -> Result<Attempt, RunError> {
        Ok(Attempt {
            verifier: Secret::from_bytes(random_b64(32)?.into_bytes()),
            state: random_b64(16)?,
            redirect_uri: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    /// The URL the user opens.
    pub fn url(&self, authorize_url: &str, client_id: &str, scopes: &[String]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("state", &self.state)
            .append_pair("code_challenge", &challenge(self.verifier.expose()))
            .append_pair("code_challenge_method", "S256");
        if !scopes.is_empty() {
            query.append_pair("scope", &scopes.join(" "));
        }
        let sep = if authorize_url.contains('?') { '&' } else { '?' };
        format!("{authorize_url}{sep}{}", query.finish())
    }
}

/// What the redirect brought back.
#[derive(Debug)]
pub struct Callback {
    pub code: Secret,
    /// Extra parameters the provider adds (QuickBooks' `realmId`): names and values, none
    /// secret.
    pub extra: Vec<(String, String)>,
}

/// Binds the listener (before the URL is shown, so a fast browser finds it).
pub fn listen(port: u16) -> Result<TcpListener, RunError> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        RunError::new(findings::LISTEN, format!("cannot listen on 127.0.0.1:{port} for the redirect: {}", e.kind()))
            .with_help("another program uses the port: stop it, or choose another `redirect_port` (and register its redirect URI with the provider)")
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn answer(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// Waits for the redirect of `attempt` until `timeout` has passed.
pub fn wait(listener: &TcpListener, attempt: &Attempt, timeout: Duration) -> Result<Callback, RunError> {
    let deadline = Instant::now() + timeout;
    listener.set_nonblocking(true).map_err(|e| RunError::new(findings::LISTEN, format!("listener: {}", e.kind())))?;
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(RunError::new(
                        findings::OAUTH_CALLBACK,
                        format!("the browser did not come back to {} in time", attempt.redirect_uri),
                    )
                    .with_help(
                        "open the URL printed above, sign in and allow access; raise `--timeout` if you need longer",
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(RunError::new(findings::LISTEN, format!("listener: {}", e.kind()))),
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => continue,
        });
        if reader.by_ref().take(8192).read_line(&mut line).is_err() {
            continue;
        }
        // The request line: `GET /callback?code=...&state=... HTTP/1.1`.
        let target = line.split_whitespace().nth(1).unwrap_or("");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != "/callback" {
            answer(&mut stream, "404 Not Found", "not found");
            continue;
        }
        let mut code = None;
        let mut state = None;
        let mut error = None;
        let mut extra = Vec::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match &*k {
                "code" => code = Some(v.into_owned()),
                "state" => state = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                // Free text from the server, or parameters that are not needed: not kept.
                "error_description" | "error_uri" | "iss" | "scope" | "session_state" => {}
                _ => extra.push((k.into_owned(), v.into_owned())),
            }
        }
        if !state.as_deref().is_some_and(|s| constant_time_eq(s.as_bytes(), attempt.state.as_bytes())) {
            // Not this attempt's redirect (stale, forged): refused, and the attempt is over,
            // since a code may have been sent to someone else's session.
            answer(
                &mut stream,
                "400 Bad Request",
                "<p>This sign-in does not match. Run <code>sluice connect</code> again.</p>",
            );
            return Err(RunError::new(
                findings::OAUTH_CALLBACK,
                "the redirect's `state` is not the one this authorization sent: refused, nothing was exchanged",
            )
            .with_help(
                "run `sluice connect` again and use the URL it prints (an old or someone else's link came back)",
            ));
        }
        if let Some(error) = error {
            answer(&mut stream, "200 OK", "<p>Authorization was not granted. You can close this tab.</p>");
            // The error code is a fixed word of RFC 6749 (never a secret); only safe characters
            // are shown.
            let shown: String = error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            return Err(RunError::new(
                findings::OAUTH_CALLBACK,
                format!("the authorization server answered `{shown}` instead of a code"),
            )
            .with_help("`access_denied`: access was refused in the browser; run `sluice connect` again and allow it"));
        }
        let Some(code) = code.filter(|c| !c.is_empty()) else {
            answer(&mut stream, "400 Bad Request", "<p>No authorization code came back.</p>");
            return Err(RunError::new(findings::OAUTH_CALLBACK, "the redirect carried no authorization code"));
        };
        answer(&mut stream, "200 OK", "<p>Sluice is connected. You can close this tab.</p>");
        extra.retain(|(k, v)| {
            k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
        return Ok(Callback { code: Secret::from_bytes(code.into_bytes()), extra });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_challenge() {
        assert_eq!(
            challenge(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn url_carries_challenge_not_verifier() {
        let a = Attempt::new(8765).unwrap();
        let url = a.url("https://as.example/authorize", "client", &["read".into(), "write".into()]);
        assert!(url.starts_with("https://as.example/authorize?response_type=code&client_id=client"));
        assert!(url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback"));
        assert!(url.contains("code_challenge_method=S256"));
        assert!(url.contains("scope=read+write"));
        assert!(!url.contains(std::str::from_utf8(a.verifier.expose()).unwrap()));
        assert_eq!(a.verifier.expose().len(), 43);
    }
}
