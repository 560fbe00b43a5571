//! A connection's credentials at run time ([`Connection`]): the bearer token a source sends,
//! refreshed before it expires and after a 401, kept sealed in the state store
//! ([`crate::state::connection_tokens`]).
//!
//! Invariants:
//! - Tokens are sealed with AES-256-GCM under the current key of `token_key` (key ids as the
//!   token vault: [`crate::keys`]), bound to `sluice connection\0PIPELINE\0NAME`, so a row
//!   copied to another connection does not open (RT041).
//! - One refresh at a time per connection across processes (a lease in the store); the new
//!   tokens replace the row in one statement checked against the generation read, so the
//!   newest refresh token of a rotating provider is never overwritten by an older one. A
//!   provider that issues no new refresh token keeps the old one.
//! - A refresh token's hard expiry (from the token endpoint, or `refresh_token_lifetime`)
//!   raises RT040 within `warn_before` of it.
//! - No token, code or secret in a log, an error or [`Status`]: those name the connection,
//!   key ids and times only.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sluice_compiler::plan::Plan;
use sluice_compiler::plan::connection::ConnectionPlan;

use super::endpoint::{self, Grant, Granted};
use crate::error::RunError;
use crate::findings;
use crate::keys::{self, KeyRing, OpenError};
use crate::secrets::{self, Secret};
use crate::state::Store;
use crate::state::connection_tokens::TokenRow;

/// How long a refresher holds the lease (longer than a token request may take).
const LEASE: i64 = 60;

/// What is sealed in a row.
#[derive(Serialize, Deserialize)]
struct Sealed {
    access_token: String,
    refresh_token: Option<String>,
    token_type: String,
}

/// What `sluice connect --status` shows: never a token.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Status {
    pub connection: String,
    pub provider: String,
    pub auth: String,
    pub connected: bool,
    pub key_id: Option<String>,
    /// RFC 3339 UTC.
    pub access_expires_at: Option<String>,
    pub refresh_expires_at: Option<String>,
    pub generation: Option<i64>,
    /// RT040's message, when the refresh token's hard expiry is near.
    pub warning: Option<String>,
}

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A connection of a plan, ready to hand out bearer tokens.
pub struct Connection {
    pipeline: String,
    plan: ConnectionPlan,
    store: Option<Store>,
    ring: Option<KeyRing>,
    client_secret: Option<Secret>,
    api_key: Option<Secret>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.plan.name)
    }
}

impl Connection {
    /// Opens connection `name` of `plan`: resolves its secrets and, for OAuth, opens the state
    /// store (creating the token table).
    pub fn open(plan: &Plan, name: &str) -> Result<Connection, RunError> {
        let Some(conn) = plan.connections.iter().find(|c| c.name == name) else {
            let names: Vec<&str> = plan.connections.iter().map(|c| c.name.as_str()).collect();
            return Err(RunError::new(
                findings::CONNECTION_UNKNOWN,
                format!("pipeline `{}` declares no connection `{name}`", plan.pipeline),
            )
            .with_help(if names.is_empty() {
                "declare it under `connections:` in the pipeline".to_string()
            } else {
                format!("the pipeline's connections: {}", names.join(", "))
            }));
        };
        let what = format!("connection `{name}`");
        let resolve = |r: &Option<String>, k: &str| {
            r.as_ref().map(|r| secrets::resolve(r, &format!("`{k}` of {what}"))).transpose()
        };
        let mut c = Connection {
            pipeline: plan.pipeline.clone(),
            plan: conn.clone(),
            store: None,
            ring: None,
            client_secret: resolve(&conn.client_secret, "client_secret")?,
            api_key: resolve(&conn.api_key, "api_key")?,
        };
        if conn.is_oauth() {
            let target = plan.state.as_ref().ok_or_else(|| {
                RunError::new(findings::PLAN_INVALID, format!("{what} needs a state store (the compiler checks this)"))
            })?;
            let reference = conn.token_key.as_deref().unwrap_or_default();
            c.ring = Some(KeyRing::resolve(reference, &format!("`token_key` of {what}"))?);
            let store = Store::open(target, None)?;
            store.tokens_create()?;
            c.store = Some(store);
        }
        Ok(c)
    }

    pub fn plan(&self) -> &ConnectionPlan {
        &self.plan
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("an OAuth connection has a store")
    }

    fn aad(&self) -> Vec<u8> {
        format!("sluice connection\0{}\0{}", self.pipeline, self.plan.name).into_bytes()
    }

    /// Seals granted tokens into a row (keeping `old_refresh` when none was issued).
    fn seal(&self, granted: &Granted, old: Option<(&Sealed, Option<i64>)>) -> Result<TokenRow, RunError> {
        let now = now_s();
        let new_refresh = granted.refresh_token.as_ref().map(|s| String::from_utf8_lossy(s.expose()).into_owned());
        let refresh_token = new_refresh.clone().or_else(|| old.and_then(|(s, _)| s.refresh_token.clone()));
        let refresh_expires_at = match (granted.refresh_expires_in, &new_refresh, self.plan.refresh_token_lifetime_days)
        {
            (Some(secs), _, _) => Some(now + secs),
            (None, Some(_), Some(days)) => Some(now + i64::from(days) * 86_400),
            // Not said, and the old refresh token goes on: so does its expiry.
            _ => old.and_then(|(_, at)| at),
        };
        let sealed = Sealed {
            access_token: String::from_utf8_lossy(granted.access_token.expose()).into_owned(),
            refresh_token,
            token_type: granted.token_type.clone(),
        };
        let json =
            serde_json::to_vec(&sealed).map_err(|_| RunError::new(findings::INTERNAL, "cannot encode tokens"))?;
        let ring = self.ring.as_ref().expect("an OAuth connection has a key ring");
        let (key_id, blob) = ring.seal(&self.aad(), &json)?;
        Ok(TokenRow {
            generation: 0,
            key_id,
            sealed: blob,
            access_expires_at: granted.expires_in.map(|s| now + s),
            refresh_expires_at,
        })
    }

    fn open_row(&self, row: &TokenRow) -> Result<Sealed, RunError> {
        let ring = self.ring.as_ref().expect("an OAuth connection has a key ring");
        let what = format!("the tokens of connection `{}`", self.plan.name);
        let reference = self.plan.token_key.as_deref().unwrap_or_default();
        let plain = ring.open(&row.key_id, &self.aad(), &row.sealed).map_err(|e| match e {
            OpenError::Missing(id) => keys::missing_key_error(&id, &what, reference),
            OpenError::Corrupt => RunError::new(
                findings::CONNECTION_TOKEN_CORRUPT,
                format!("{what} do not decrypt under key {}: altered, or copied from another connection", row.key_id),
            )
            .with_help(format!("authorize again: `sluice connect {} PIPELINE`", self.plan.name)),
        })?;
        serde_json::from_slice(&plain).map_err(|_| {
            RunError::new(findings::CONNECTION_TOKEN_CORRUPT, format!("{what} are not in the expected form"))
        })
    }

    /// Stores the tokens of a new authorization (`sluice connect`), replacing any; returns the
    /// status after it.
    pub fn store_granted(&self, granted: &Granted, at: &str) -> Result<Status, RunError> {
        let row = self.seal(granted, None)?;
        self.store().token_put(&self.pipeline, &self.plan.name, &row, at)?;
        self.status()
    }

    /// Exchanges an authorization code (with its PKCE verifier) and stores the tokens.
    pub fn exchange(&self, code: &Secret, verifier: &Secret, redirect_uri: &str, at: &str) -> Result<Status, RunError> {
        let granted =
            endpoint::request(&self.plan, self.client_secret.as_ref(), Grant::Code { code, verifier, redirect_uri })?;
        self.store_granted(&granted, at)
    }

    /// The bearer token to send now: the API key, or the stored access token (refreshed first
    /// when it expires within `refresh_before`; for client credentials, fetched when missing).
    pub fn bearer(&self) -> Result<Secret, RunError> {
        if let Some(key) = &self.api_key {
            return Ok(key.clone());
        }
        self.current(None)
    }

    /// After a 401 answered to `rejected`: a new access token (refreshed unless another
    /// process already replaced the rejected one).
    pub fn unauthorized(&self, rejected: &Secret) -> Result<Secret, RunError> {
        if self.api_key.is_some() {
            return Err(RunError::new(
                findings::OAUTH_REFUSED,
                format!("connection `{}`: the API refused its API key (HTTP 401)", self.plan.name),
            )
            .with_help("check the secret behind the connection's `api_key` (revoked or rolled keys are refused)"));
        }
        self.current(Some(rejected))
    }

    /// Forces a refresh now (`sluice connect NAME --refresh`).
    pub fn refresh_now(&self) -> Result<Status, RunError> {
        let current = self.current(None)?;
        self.current(Some(&current))?;
        self.status()
    }

    fn current(&self, rejected: Option<&Secret>) -> Result<Secret, RunError> {
        let store = self.store();
        let name = &self.plan.name;
        let started = Instant::now();
        loop {
            let now = now_s();
            let Some(row) = store.token_row(&self.pipeline, name)? else {
                if self.plan.auth == "client_credentials" {
                    let granted = endpoint::request(&self.plan, self.client_secret.as_ref(), Grant::ClientCredentials)?;
                    self.store_granted(&granted, &crate::time::format_utc(now))?;
                    continue;
                }
                return Err(not_connected(name));
            };
            let sealed = self.open_row(&row)?;
            let stale = rejected.is_some_and(|r| r.expose() == sealed.access_token.as_bytes())
                || row.access_expires_at.is_some_and(|at| at - (self.plan.refresh_before_s as i64) <= now);
            if !stale {
                self.warn_expiry(&row, now);
                return Ok(Secret::from_bytes(sealed.access_token.into_bytes()));
            }
            if self.plan.auth != "client_credentials" && sealed.refresh_token.is_none() {
                return Err(not_connected(name));
            }
            if !store.token_lease(&self.pipeline, name, row.generation, now, now + LEASE)? {
                // Another process is refreshing: wait for its row.
                if started.elapsed() > Duration::from_secs(LEASE as u64 + 10) {
                    return Err(RunError::new(
                        findings::OAUTH_REFUSED,
                        format!("connection `{name}`: another process has been refreshing its token for over a minute"),
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let grant = match &sealed.refresh_token {
                Some(rt) if self.plan.auth != "client_credentials" => {
                    let rt = Secret::from_bytes(rt.as_bytes().to_vec());
                    endpoint::request(&self.plan, self.client_secret.as_ref(), Grant::Refresh(&rt))
                }
                _ => endpoint::request(&self.plan, self.client_secret.as_ref(), Grant::ClientCredentials),
            };
            let granted = match grant {
                Ok(g) => g,
                Err(e) => {
                    let _ = store.token_release(&self.pipeline, name, row.generation);
                    return Err(e);
                }
            };
            let new_row = self.seal(&granted, Some((&sealed, row.refresh_expires_at)))?;
            if !store.token_replace(&self.pipeline, name, row.generation, &new_row, &crate::time::format_utc(now))? {
                // Only possible if our lease ran out and another process refreshed: its row is
                // the newest; ours is dropped (a rotating provider has invalidated one of the two).
                tracing::warn!(component = %name, code = findings::OAUTH_REFUSED, "token refresh raced another process");
                continue;
            }
            tracing::info!(component = %name, "access token refreshed");
            self.warn_expiry(&new_row, now);
            return Ok(granted.access_token);
        }
    }

    /// RT040's message when the refresh token expires within `warn_before`.
    fn expiry_warning(&self, row: &TokenRow, now: i64) -> Option<String> {
        let at = row.refresh_expires_at?;
        let left = at - now;
        (left <= i64::from(self.plan.warn_before_days) * 86_400).then(|| {
            let when = crate::time::format_utc(at);
            if left <= 0 {
                format!("connection `{}`: its refresh token expired at {when}", self.plan.name)
            } else {
                format!(
                    "connection `{}`: its refresh token expires at {when} ({} days): authorize again with `sluice connect` before then",
                    self.plan.name,
                    left / 86_400
                )
            }
        })
    }

    fn warn_expiry(&self, row: &TokenRow, now: i64) {
        if self.expiry_warning(row, now).is_some() {
            tracing::warn!(component = %self.plan.name, code = findings::REFRESH_TOKEN_EXPIRING, "refresh token near its hard expiry");
        }
    }

    /// Whether the connection is authorized, until when, under which key; never a token.
    pub fn status(&self) -> Result<Status, RunError> {
        let mut status = Status {
            connection: self.plan.name.clone(),
            provider: self.plan.provider.clone(),
            auth: self.plan.auth.clone(),
            connected: self.api_key.is_some(),
            key_id: None,
            access_expires_at: None,
            refresh_expires_at: None,
            generation: None,
            warning: None,
        };
        if let Some(store) = &self.store
            && let Some(row) = store.token_row(&self.pipeline, &self.plan.name)?
        {
            self.open_row(&row)?;
            status.connected = true;
            status.warning = self.expiry_warning(&row, now_s());
            status.key_id = Some(row.key_id);
            status.access_expires_at = row.access_expires_at.map(crate::time::format_utc);
            status.refresh_expires_at = row.refresh_expires_at.map(crate::time::format_utc);
            status.generation = Some(row.generation);
        }
        Ok(status)
    }
}

fn not_connected(name: &str) -> RunError {
    RunError::new(findings::NOT_CONNECTED, format!("connection `{name}` is not authorized (no usable token is stored)"))
        .with_help(format!("run `sluice connect {name} PIPELINE` and allow access in the browser"))
}
