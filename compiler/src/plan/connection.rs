//! Connections (`connections:` of a pipeline): named credentials for the financial APIs, each
//! of one provider, several per provider (one per account). The runtime's `oauth` module gets
//! and keeps their tokens; `sluice connect NAME` runs the authorization code flow.
//!
//! Invariants:
//! - Secrets stay references (`client_secret`, `api_key`, `token_key`): the plan never holds a
//!   secret, a token or a code.
//! - Every URL here is `https`, or `http` to a loopback address (checked by the compiler,
//!   SL272), so a token or a client secret never crosses a network in clear.

use serde::{Deserialize, Serialize};

/// Providers with built-in endpoints, and the generic `oauth2`.
pub const PROVIDERS: &[&str] = &["oauth2", "stripe", "quickbooks", "plaid"];
/// How a connection authenticates.
pub const AUTHS: &[&str] = &["authorization_code", "client_credentials", "api_key"];

/// One named connection, as the runtime needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionPlan {
    pub name: String,
    pub provider: String,
    /// `authorization_code` (with PKCE and state, through `sluice connect`),
    /// `client_credentials` or `api_key` (a bearer secret key, such as Stripe's).
    pub auth: String,
    pub client_id: Option<String>,
    /// Secret reference.
    pub client_secret: Option<String>,
    /// How the client authenticates at the token endpoint: `basic` (HTTP Basic, the default)
    /// or `post` (in the form body).
    pub client_auth: String,
    /// Secret reference (`auth: api_key`).
    pub api_key: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Vec<String>,
    /// The port of the one-shot redirect listener on 127.0.0.1 (`http://127.0.0.1:PORT/callback`).
    pub redirect_port: u16,
    /// Secret reference: the AES-256-GCM key ring the tokens are sealed with in the state store.
    pub token_key: Option<String>,
    /// Refresh an access token this many seconds before it expires.
    pub refresh_before_s: u64,
    /// Warn this many days before the refresh token's hard expiry.
    pub warn_before_days: u32,
    /// The refresh token's lifetime when the token endpoint does not say (QuickBooks says, in
    /// `x_refresh_token_expires_in`).
    pub refresh_token_lifetime_days: Option<u32>,
}

impl ConnectionPlan {
    /// Whether the connection keeps OAuth tokens in the state store.
    pub fn is_oauth(&self) -> bool {
        self.auth != "api_key"
    }
}

/// The built-in endpoints and scopes of a provider: authorize URL, token URL, scopes.
pub fn provider_defaults(provider: &str) -> Option<(&'static str, &'static str, &'static [&'static str])> {
    match provider {
        "stripe" => Some((
            "https://connect.stripe.com/oauth/authorize",
            "https://connect.stripe.com/oauth/token",
            &["read_only"],
        )),
        "quickbooks" => Some((
            "https://appcenter.intuit.com/connect/oauth2",
            "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
            &["com.intuit.quickbooks.accounting"],
        )),
        _ => None,
    }
}

/// Whether a URL may carry tokens: `https`, or `http` to a loopback address.
pub fn url_allowed(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return lower.len() > "https://".len();
    }
    let Some(rest) = lower.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if authority.starts_with('[') {
        authority.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or("").to_string()
    };
    matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(url_allowed("https://oauth.example.com/token"));
        assert!(url_allowed("http://127.0.0.1:9000/token"));
        assert!(url_allowed("http://localhost/token"));
        assert!(url_allowed("http://[::1]:80/token"));
        assert!(!url_allowed("http://oauth.example.com/token"));
        assert!(!url_allowed("http://127.0.0.1.evil.example/token"));
        assert!(!url_allowed("http://u:p@127.0.0.1/token"));
        assert!(!url_allowed("ftp://127.0.0.1/"));
        assert!(!url_allowed("https://"));
    }
}
