//! OAuth 2.0 for connections (`connections:`): the authorization code flow with PKCE and
//! state run by `sluice connect` ([`authorize`]), the token endpoint ([`endpoint`]), and the
//! tokens kept sealed in the state store and refreshed ([`tokens`]).
//!
//! ```text
//! sluice connect NAME: listen 127.0.0.1:PORT ─ print URL ─ browser ─ /callback?code&state
//!                      └─ check state ─ POST token_url (code + verifier) ─ seal ─ store
//! a source:            Connection::bearer() ─ refresh (lease, CAS) when near expiry / on 401
//! ```
//!
//! Invariants (each module keeps its own too):
//! - No token, code, verifier or secret in a log, an error, the plan or the audit log.
//! - Tokens at rest are AES-256-GCM sealed with key ids ([`crate::keys`]).

pub mod authorize;
pub mod endpoint;
pub mod tokens;

pub use tokens::{Connection, Status};
