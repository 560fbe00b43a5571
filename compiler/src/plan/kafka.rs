//! `kafka` sources and sinks, resolved: what the runtime needs to connect, and nothing secret
//! (a SASL password stays a reference, resolved only when the run starts).

use serde::{Deserialize, Serialize};

/// TLS and SASL settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSecurityPlan {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`); `None` without SASL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A secret reference (`${VAR}`, `${file:...}`), never the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A PEM file of CA certificates (a path, resolved against the pipeline file), trusted
    /// instead of the system's. Absent from the JSON without it, so plans (and their hashes)
    /// written before the TLS files existed are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The client certificate chain (a PEM file path), for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The client key: a secret reference (`${VAR}`, `${file:...}`), never the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

/// A `kafka` source: a consumer group member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSourcePlan {
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    pub group: String,
    /// `earliest` or `latest`: where a group without a committed offset starts.
    pub start: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<KafkaSecurityPlan>,
    /// `interactive`, `normal` or `backfill` (`spec::shape::PRIORITIES`).
    pub priority: String,
    /// How long the group waits for a silent member before giving its partitions to others.
    pub session_timeout_ms: u64,
}

/// A `kafka` sink: a producer to one topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSinkPlan {
    pub brokers: Vec<String>,
    pub topic: String,
    /// The dotted path of the field whose value keys each message (an HL7 v2 path when
    /// `relay_hl7`); `None`: no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `format: hl7v2`: each message's bytes as read, not a JSON line. Absent (false) from the
    /// JSON of other sinks, so their plans (and hashes) are unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relay_hl7: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<KafkaSecurityPlan>,
}

impl KafkaSecurityPlan {
    /// One line for `sluice plan`: the protocol and mechanism, what TLS trusts and presents,
    /// never a secret.
    pub fn describe(&self) -> String {
        let mut text = match &self.mechanism {
            Some(m) => format!("{} {m}", self.protocol),
            None if self.protocol.starts_with("sasl_") => format!("{} PLAIN", self.protocol),
            None => self.protocol.clone(),
        };
        if let Some(ca) = &self.ca_file {
            text.push_str(&format!(", CA file {ca}"));
        }
        if let Some(cert) = &self.client_cert {
            text.push_str(&format!(", client certificate {cert}"));
        }
        text
    }
}
