//! `webhook` sources, resolved: what `sluice serve` needs to route, verify and limit each
//! endpoint's deliveries, and nothing secret (secrets stay references, resolved when serving
//! starts).

use serde::{Deserialize, Serialize};

/// One endpoint of `sluice serve`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSourcePlan {
    /// `stripe`, `quickbooks`, `plaid` or `fhir_subscription`.
    pub provider: String,
    /// URL path, e.g. `/hooks/stripe`.
    pub path: String,
    /// A secret reference (`${VAR}`, `${file:...}`): signing secret, verifier token,
    /// `Authorization` value, or Plaid's API secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Plaid: a secret reference to the API client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Plaid: the `/webhook_verification_key/get` URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_url: Option<String>,
    /// Largest difference, either way, between a signed time and now.
    pub tolerance_ms: u64,
    /// Largest body accepted, in bytes.
    pub max_body: u64,
    /// Deliveries accepted per `rate_per_secs` seconds.
    pub rate: u64,
    pub rate_per_secs: u64,
}

/// The schema of the records every `webhook` source emits.
pub const EVENT_SCHEMA: &str = "canonical/webhook-event@1";
