//! Connections of a pipeline (`connections:`): named credentials for financial APIs, several
//! per provider ([`crate::plan::connection`]). This reads and checks them.
//!
//! Invariants:
//! - Secrets are references only (`client_secret`, `api_key`, `token_key`; SL205), so the spec
//!   in git never holds one.
//! - A connection has what its `auth` needs (SL270): a client id, endpoints (the provider's,
//!   or written), a client secret for client credentials, an API key for `api_key`.
//! - OAuth tokens live in the state store, sealed with `token_key`: an OAuth connection needs
//!   both (SL271).
//! - Endpoints are `https`, or `http` to a loopback address (SL272).

use super::reader::{self, Cx, Spanned};
use super::shape::{KeyType, Shape};
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::connection::{AUTHS, ConnectionPlan, PROVIDERS, provider_defaults, url_allowed};
use crate::source::Span;
use crate::yaml::Node;

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: false, ty, doc }
}

pub static CONNECTION: Shape = Shape {
    name: "connection",
    type_tag: None,
    doc: "A named connection to a financial API, or to a FHIR server (a `fhir.rest` source's `auth: {type: oauth2, connection: NAME}`): how Sluice authenticates to one account. `sluice connect NAME PIPELINE` authorizes an `authorization_code` connection.",
    keys: &[
        req(
            "provider",
            KeyType::Enum(PROVIDERS),
            "`stripe`, `quickbooks` (their endpoints and scopes built in), `plaid` (the app's `client_id` and `client_secret`, sent in each request's body: no OAuth) or `oauth2` (any OAuth 2.0 server: write `authorize_url` and `token_url`).",
        ),
        opt(
            "auth",
            KeyType::Enum(AUTHS),
            "`authorization_code` (default; OAuth 2.0 with PKCE and state through `sluice connect`), `client_credentials`, or `api_key` (a bearer secret key, such as Stripe's `sk_...`; the only one, and the default, for `provider: plaid`, whose `client_id` and `client_secret` are its keys).",
        ),
        opt("client_id", KeyType::String, "The OAuth client id (not a secret)."),
        opt("client_secret", KeyType::Secret, "The OAuth client secret: a secret reference."),
        opt(
            "client_auth",
            KeyType::Enum(&["basic", "post"]),
            "How the client secret is sent to the token endpoint: `basic` (HTTP Basic, default) or `post` (form body).",
        ),
        opt(
            "api_key",
            KeyType::Secret,
            "`auth: api_key`: the API secret key, a secret reference (`${STRIPE_SECRET_KEY}`).",
        ),
        opt("authorize_url", KeyType::String, "The authorization endpoint (default: the provider's)."),
        opt("token_url", KeyType::String, "The token endpoint (default: the provider's)."),
        opt("scopes", KeyType::ListOfStrings, "Scopes requested (default: the provider's)."),
        opt(
            "redirect_port",
            KeyType::Integer,
            "Port of the one-shot redirect listener `sluice connect` runs on 127.0.0.1 (default 8765); the redirect URI to register is `http://127.0.0.1:PORT/callback`.",
        ),
        opt(
            "token_key",
            KeyType::Secret,
            "OAuth connections: the AES-256-GCM key (64 hex digits; several comma-separated to rotate, the first current) the tokens are sealed with in the state store.",
        ),
        opt("refresh_before", KeyType::Duration, "Refresh an access token this long before it expires (default `5m`)."),
        opt(
            "warn_before",
            KeyType::String,
            "Warn (RT040) this long before the refresh token's hard expiry: days, `14d` (default).",
        ),
        opt(
            "refresh_token_lifetime",
            KeyType::String,
            "The refresh token's lifetime in days (`100d`) when the token endpoint does not say it (QuickBooks says it).",
        ),
    ],
};

/// A connection as read, with the span of its name and its `${file:...}` references still
/// relative to the spec (the driver resolves them).
#[derive(Debug)]
pub struct ConnectionSpec {
    pub plan: ConnectionPlan,
    pub span: Span,
}

/// `14d` -> 14.
fn days(cx: &mut Cx, node: &Node, what: &str) -> Option<u32> {
    let s = reader::string(cx, node, what)?;
    let n = s.text.trim().strip_suffix('d').and_then(|n| n.trim().parse::<u32>().ok());
    if n.is_none() {
        cx.push(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a number of days for {what}", s.text))
                .label(s.span, "expected a whole number and `d`")
                .help("write days like `14d`"),
        );
    }
    n
}

/// Reads `connections:`; `has_state` says whether the pipeline declares a state store.
pub fn read(cx: &mut Cx, node: &Node, has_state: bool) -> Vec<ConnectionSpec> {
    let Some(entries) = reader::entries(cx, node, "`connections`") else { return Vec::new() };
    let mut out = Vec::new();
    for (name, key, body) in entries {
        let what = format!("connection `{name}`");
        let Some(obj) = reader::object(cx, body, &CONNECTION, &what) else { continue };
        let s = |cx: &mut Cx, k: &str| obj.get(k).and_then(|n| reader::string(cx, n, &format!("`{k}`")));
        let secret = |cx: &mut Cx, k: &str| obj.get(k).and_then(|n| reader::secret(cx, n, &format!("`{k}`")));
        let Some(provider) = obj.get("provider").and_then(|n| reader::one_of(cx, n, PROVIDERS, "`provider`")) else {
            continue;
        };
        // Plaid has no OAuth: its app keys go in each request's body, like an API key.
        let plaid = provider.text == "plaid";
        let auth = obj
            .get("auth")
            .and_then(|n| reader::one_of(cx, n, AUTHS, "`auth`"))
            .map_or_else(|| if plaid { "api_key" } else { "authorization_code" }.to_string(), |a| a.text);
        let client_id = s(cx, "client_id");
        let client_secret = secret(cx, "client_secret");
        let api_key = secret(cx, "api_key");
        let token_key = secret(cx, "token_key");
        // A secret written in clear was reported (SL205); the connection is not taken.
        if [("client_secret", &client_secret), ("api_key", &api_key), ("token_key", &token_key)]
            .iter()
            .any(|(k, v)| obj.get(k).is_some() && v.is_none())
        {
            continue;
        }
        let authorize_url = s(cx, "authorize_url");
        let token_url = s(cx, "token_url");
        let client_auth = obj
            .get("client_auth")
            .and_then(|n| reader::one_of(cx, n, &["basic", "post"], "`client_auth`"))
            .map_or_else(|| "basic".to_string(), |a| a.text);
        let scopes = obj.get("scopes").map(|n| reader::string_list(cx, n, "`scopes`", true));
        let redirect_port = obj.get("redirect_port").and_then(|n| {
            let port = reader::integer(cx, n, "`redirect_port`")?;
            let ok = u16::try_from(port).ok().filter(|p| *p > 0);
            if ok.is_none() {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("{what}: `redirect_port` is not a port"))
                        .label(n.span, "expected 1 to 65535")
                        .help("choose a free port and register `http://127.0.0.1:PORT/callback` with the provider"),
                );
            }
            ok
        });
        let refresh_before_ms = obj.get("refresh_before").and_then(|n| reader::duration(cx, n, "`refresh_before`"));
        let warn_before_days = obj.get("warn_before").and_then(|n| days(cx, n, "`warn_before`"));
        let lifetime = obj.get("refresh_token_lifetime").and_then(|n| days(cx, n, "`refresh_token_lifetime`"));

        let defaults = provider_defaults(&provider.text);
        let mut missing: Vec<&str> = Vec::new();
        match auth.as_str() {
            _ if plaid => {
                if auth != "api_key" {
                    missing.push("auth: api_key");
                }
                if client_id.is_none() && obj.get("client_id").is_none() {
                    missing.push("client_id");
                }
                if obj.get("client_secret").is_none() {
                    missing.push("client_secret");
                }
            }
            "api_key" => {
                if obj.get("api_key").is_none() {
                    missing.push("api_key");
                }
            }
            _ => {
                if client_id.is_none() && obj.get("client_id").is_none() {
                    missing.push("client_id");
                }
                if defaults.is_none() && obj.get("token_url").is_none() {
                    missing.push("token_url");
                }
                if auth == "authorization_code" && defaults.is_none() && obj.get("authorize_url").is_none() {
                    missing.push("authorize_url");
                }
                if auth == "client_credentials" && obj.get("client_secret").is_none() {
                    missing.push("client_secret");
                }
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
            cx.push(
                Diagnostic::error(codes::CONNECTION_AUTH, format!("{what}: `auth: {auth}` needs {}", list.join(", ")))
                    .label(key.span, "this connection")
                    .help(match auth.as_str() {
                        _ if plaid => "a Plaid connection is the app's `client_id` and `client_secret: ${PLAID_SECRET}`, with `auth` left out (Plaid has no OAuth)".to_string(),
                        "api_key" => "add `api_key: ${STRIPE_SECRET_KEY}` (a secret reference)".to_string(),
                        "client_credentials" => {
                            "add the client's `client_id`, `client_secret: ${CLIENT_SECRET}` and, for `provider: oauth2`, `token_url`"
                                .to_string()
                        }
                        _ => "add the client's `client_id` and, for `provider: oauth2`, the server's `authorize_url` and `token_url`"
                            .to_string(),
                    }),
            );
            continue;
        }
        let mut bad_url = false;
        for (k, url) in [("authorize_url", &authorize_url), ("token_url", &token_url)] {
            if let Some(url) = url
                && !url_allowed(&url.text)
            {
                bad_url = true;
                cx.push(
                    Diagnostic::error(codes::CONNECTION_URL, format!("{what}: `{k}` must be https"))
                        .label(url.span, "tokens and secrets would cross the network in clear")
                        .help("use the server's `https://` URL; plain `http` is accepted only to 127.0.0.1, localhost or [::1]"),
                );
            }
        }
        if bad_url {
            continue;
        }
        if auth != "api_key" && (!has_state || obj.get("token_key").is_none()) {
            let why =
                if has_state { "a `token_key` to seal them with" } else { "a state store (`state:`) to keep them in" };
            cx.push(
                Diagnostic::error(codes::CONNECTION_TOKEN_STORE, format!("{what} keeps OAuth tokens and needs {why}"))
                    .label(key.span, "an OAuth connection")
                    .help(if has_state {
                        "add `token_key: ${SLUICE_TOKEN_KEY}` (64 hex digits: `openssl rand -hex 32`)"
                    } else {
                        "add `state: {path: out/state.db}` (or a PostgreSQL `url`) to the pipeline"
                    }),
            );
            continue;
        }
        let field = |v: Option<Spanned>| v.map(|s| s.text);
        out.push(ConnectionSpec {
            span: key.span,
            plan: ConnectionPlan {
                name: name.to_string(),
                provider: provider.text.clone(),
                auth: auth.clone(),
                client_id: field(client_id),
                client_secret: field(client_secret),
                client_auth,
                api_key: field(api_key),
                authorize_url: field(authorize_url).or_else(|| defaults.map(|d| d.0.to_string())),
                token_url: field(token_url).or_else(|| defaults.map(|d| d.1.to_string())),
                scopes: scopes.map(|v| v.into_iter().map(|s| s.text).collect()).unwrap_or_else(|| {
                    defaults.map(|d| d.2.iter().map(|s| s.to_string()).collect()).unwrap_or_default()
                }),
                redirect_port: redirect_port.unwrap_or(8765),
                token_key: field(token_key),
                refresh_before_s: refresh_before_ms.map_or(300, |ms| ms / 1000),
                warn_before_days: warn_before_days.unwrap_or(14),
                refresh_token_lifetime_days: lifetime,
            },
        });
    }
    out
}
