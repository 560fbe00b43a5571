//! `amqp` sources and sinks, resolved: what the runtime needs to connect, and nothing secret
//! (a URL with credentials stays a secret reference, resolved only when the run starts).

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
