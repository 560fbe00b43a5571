//! `amqp` sources and sinks, resolved: what the runtime needs to connect, and nothing secret
//! (a URL with credentials stays a secret reference, resolved only when the run starts; so does
//! a TLS client key).

use serde::{Deserialize, Serialize};

/// An `amqp` source: a consumer of one queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmqpSourcePlan {
    /// A secret reference (`${AMQP_URL}`) or a URL without a password.
    pub url: String,
    pub queue: String,
    /// Unacknowledged messages the server may hand over (`basic.qos`).
    pub prefetch: u16,
    /// `interactive`, `normal` or `backfill` (`spec::shape::PRIORITIES`).
    pub priority: String,
    /// TLS settings beyond the defaults of `amqps://`. Absent from the JSON without them, so
    /// plans (and their hashes) written before TLS settings existed are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<AmqpTlsPlan>,
}

/// `tls` of an `amqp` source or sink: what to trust beyond the system's CA certificates and
/// which identity to present. Verification itself is not a setting: it always happens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmqpTlsPlan {
    /// A PEM file of CA certificates (a path, resolved against the pipeline file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The client certificate chain (a PEM file path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The client key: a secret reference (`${VAR}`, `${file:...}`), never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

impl AmqpTlsPlan {
    /// For `sluice plan`: what is trusted and presented, never a secret.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ca) = &self.ca_file {
            parts.push(format!("CA file {ca} and the system's CA certificates"));
        }
        if let Some(cert) = &self.client_cert {
            parts.push(format!("client certificate {cert}"));
        }
        format!("TLS: {}", if parts.is_empty() { "the system's CA certificates".to_string() } else { parts.join(", ") })
    }
}

/// An `amqp` sink: a publisher (with confirms) to one exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmqpSinkPlan {
    /// A secret reference (`${AMQP_URL}`) or a URL without a password.
    pub url: String,
    /// `""`: the default exchange.
    pub exchange: String,
    /// One routing key for every message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    /// The dotted path of the field whose value is each message's routing key (an HL7 v2 path
    /// when `relay_hl7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_field: Option<String>,
    /// `format: hl7v2`: each message's bytes as read, not a JSON line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay_hl7: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<AmqpTlsPlan>,
}

/// The server a URL names, for `sluice plan` and errors: `host:port/vhost` of a URL written
/// out (no user), or the reference itself.
pub fn describe_url(url: &str) -> String {
    let Some(rest) = url.strip_prefix("amqp://").or_else(|| url.strip_prefix("amqps://")) else {
        return url.to_string();
    };
    let scheme = if url.starts_with("amqps") { "amqps" } else { "amqp" };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}/{path}")
}
