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

/// An `amqp://` or `amqps://` URL split around its authority, without its user information
/// (user name, password): what messages show and what TLS checks.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerOfUrl<'a> {
    /// `amqp` or `amqps`.
    pub scheme: &'a str,
    /// The host as TLS checks it: no brackets around an IPv6 address, no port.
    pub host: &'a str,
    /// `host:port` as written (`[::1]:5671`).
    pub host_port: &'a str,
    /// What follows the authority (the virtual host and any query), without its leading `/`.
    pub path: &'a str,
}

/// Splits an `amqp://` or `amqps://` URL ([`ServerOfUrl`]); `None` for anything else (a
/// secret reference). The user information ends at the last `@` anywhere in the URL: a
/// password with a `/` or `@` left unencoded is cut off with it, never shown as a path.
pub fn server_of_url(url: &str) -> Option<ServerOfUrl<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "amqp" && scheme != "amqps" {
        return None;
    }
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host_port, path) = (&rest[..end], rest[end..].strip_prefix('/').unwrap_or(&rest[end..]));
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(v6, |(h, _)| h),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    Some(ServerOfUrl { scheme, host, host_port, path })
}

/// The server a URL names, for `sluice plan` and errors: `host:port/vhost` of a URL written
/// out (no user), or the reference itself.
pub fn describe_url(url: &str) -> String {
    match server_of_url(url) {
        Some(s) => format!("{}://{}/{}", s.scheme, s.host_port, s.path),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_and_its_host_checked_without_user_or_password() {
        assert_eq!(describe_url("amqps://u:p@mq.example.org:5671/%2f"), "amqps://mq.example.org:5671/%2f");
        assert_eq!(describe_url("amqp://127.0.0.1"), "amqp://127.0.0.1/");
        assert_eq!(describe_url("${AMQP_URL}"), "${AMQP_URL}");
        // A password with `/` or `@` left unencoded is cut off, not shown as the path.
        assert_eq!(describe_url("amqp://u:pa/ss@h:5672/v"), "amqp://h:5672/v");
        assert_eq!(describe_url("amqp://u:p@ss@h/v?heartbeat=10"), "amqp://h/v?heartbeat=10");
        let host = |url| server_of_url(url).unwrap().host;
        assert_eq!(host("amqps://u:p@mq.example.org:5671/%2f"), "mq.example.org");
        assert_eq!(host("amqps://127.0.0.1"), "127.0.0.1");
        assert_eq!(host("amqps://u@[::1]:5671/v"), "::1");
        assert_eq!(host("amqps://h?x=1"), "h");
        assert_eq!(server_of_url("https://h/"), None);
    }
}
