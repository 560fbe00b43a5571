//! `kafka` sources and sinks as written: brokers, topics, consumer group, security.
//!
//! This module reads and checks what is written (SL240-SL244, SL437, SL438); the driver
//! ([`crate::compile`]) resolves profiles, checks a sink's key against its records and the TLS
//! files on disk (SL439).
//!
//! Invariants:
//! - A SASL password and a TLS client key are only ever secret references (`${VAR}`,
//!   `${file:...}`): the reader refuses anything else (SL205), so they never sit in git or in
//!   a plan.
//! - Certificate verification is never optional: the TLS keys (named as `amqp`'s `tls` keys
//!   are) only add trust (a CA file) or an identity (a client certificate and key); there is
//!   no key that turns verification or host name checking off. TLS keys with a protocol that
//!   does not use TLS are refused (SL437), not ignored.
//! - A broker is `host:port` and a topic a name Kafka accepts, checked here, so a typo fails
//!   `sluice check` instead of a run that waits for a broker that cannot exist.

use super::reader::{self, Cx, Spanned};
use super::shape::{KeyType, Shape};
use crate::codes;
use crate::diagnostics::Diagnostic;

/// `security.protocol` values (librdkafka's names, lower case).
pub const PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// `security.mechanism` values.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// Where a consumer group with no committed offset starts.
pub const STARTS: &[&str] = &["earliest", "latest"];

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: false, ty, doc }
}

pub static KAFKA_SECURITY: Shape = Shape {
    name: "kafka.security",
    type_tag: None,
    doc: "How the client connects and authenticates to the brokers: TLS (librdkafka with OpenSSL; the brokers' certificates are always verified, their chain against the system's CA certificates or `ca_file`, their name against the broker address) and SASL.",
    keys: &[
        req(
            "protocol",
            KeyType::Enum(PROTOCOLS),
            "`plaintext` (default without `security`), `ssl`, `sasl_plaintext` or `sasl_ssl` (Azure Event Hubs, Confluent Cloud).",
        ),
        opt(
            "mechanism",
            KeyType::Enum(MECHANISMS),
            "SASL mechanism: `PLAIN` (default), `SCRAM-SHA-256` or `SCRAM-SHA-512`. Needs a `sasl_*` protocol.",
        ),
        opt(
            "username",
            KeyType::String,
            "SASL user name (for Azure Event Hubs: `$ConnectionString`). Needs a `sasl_*` protocol.",
        ),
        opt(
            "password",
            KeyType::Secret,
            "SASL password, as a secret reference (`${KAFKA_PASSWORD}`); never printed. Needs a `sasl_*` protocol.",
        ),
        opt(
            "ca_file",
            KeyType::String,
            "CA certificates (PEM file), relative to the pipeline file, trusted instead of the system's: for brokers whose certificates a private CA signed. Needs `ssl` or `sasl_ssl`.",
        ),
        opt(
            "client_cert",
            KeyType::String,
            "Client certificate chain (PEM file), relative to the pipeline file, for brokers that require mutual TLS (`ssl.client.auth=required`). With `client_key`; needs `ssl` or `sasl_ssl`.",
        ),
        opt(
            "client_key",
            KeyType::Secret,
            "The client certificate's private key (PEM, unencrypted): `${file:path}` (relative to the pipeline file) or `${VARIABLE}` holding the PEM text. With `client_cert`.",
        ),
    ],
};

pub static SOURCE_KAFKA: Shape = Shape {
    name: "source.kafka",
    type_tag: Some("kafka"),
    doc: "Consumes HL7 v2 messages, X12 interchanges or FHIR R4 JSON resources (`format`) from Kafka topics as a member of a consumer group: several `sluice run` processes with the same `group` share the topics' partitions. A partition's offset is committed only once every record before it is durable in the sinks or the DLQ (at least once; exactly once into idempotent sinks). Runs until SIGINT or SIGTERM.",
    keys: &[
        req("type", KeyType::Enum(&["kafka"]), "Source kind."),
        super::bus::FORMAT,
        req(
            "brokers",
            KeyType::StringOrList,
            "Bootstrap brokers, `host:port` each: `127.0.0.1:9092`, `[kafka-1:9092, kafka-2:9092]`.",
        ),
        req("topics", KeyType::StringOrList, "Topic name(s) to consume."),
        req(
            "group",
            KeyType::String,
            "Consumer group id: processes with the same group share the partitions; offsets are kept per group.",
        ),
        super::bus::PROFILE,
        super::bus::RESOURCE_TYPES,
        super::bus::MODE,
        super::bus::GUIDES,
        opt(
            "start",
            KeyType::Enum(STARTS),
            "Where a group with no committed offset starts: `earliest` (default, the whole topic) or `latest`.",
        ),
        opt(
            "session_timeout",
            KeyType::Duration,
            "How long the group waits for a member that stopped answering (a crashed process) before its partitions go to the others (default `45s`; brokers accept 6s to 5m by default).",
        ),
        opt("security", KeyType::Object(&KAFKA_SECURITY), "TLS and SASL settings (default: plaintext)."),
        super::bus::PRIORITY,
        super::bus::DESCRIPTION,
    ],
};

pub static SINK_KAFKA: Shape = Shape {
    name: "sink.kafka",
    type_tag: Some("kafka"),
    doc: "Produces each record as a JSON message to a Kafka topic (idempotent producer, acks from all in-sync replicas), keyed by a field so one key's records keep their order in one partition. Each batch is flushed and acknowledged before the records count as delivered.",
    keys: &[
        req("type", KeyType::Enum(&["kafka"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("brokers", KeyType::StringOrList, "Bootstrap brokers, `host:port` each."),
        req("topic", KeyType::String, "Topic to write to (it must exist)."),
        opt(
            "key",
            KeyType::String,
            "A field of the records (dotted path, one value, e.g. `patient.id`) whose value is the message key; with `format: hl7v2`, an HL7 v2 path (`PID-3.1`: its first value). Without it messages have no key.",
        ),
        opt(
            "format",
            KeyType::Enum(&["json", "hl7v2"]),
            "`json` (the default): each record as the JSON line a `jsonl` sink writes. `hl7v2`: each HL7 v2 message exactly as it was read (its bytes), to relay a feed to a topic that `kafka` sources read; the sink's input must be HL7 v2 messages.",
        ),
        opt("security", KeyType::Object(&KAFKA_SECURITY), "TLS and SASL settings (default: plaintext)."),
        opt(
            "phi",
            KeyType::Object(&super::shape::SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, super::shape::AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// `security` as written.
#[derive(Debug, Clone)]
pub struct SecuritySpec {
    pub protocol: String,
    pub mechanism: Option<String>,
    pub username: Option<String>,
    pub password: Option<Spanned>,
    /// A PEM file of CA certificates, as written (relative to the pipeline file).
    pub ca_file: Option<Spanned>,
    /// The client certificate chain (a PEM file) and its key (a secret reference).
    pub client: Option<(Spanned, Spanned)>,
}

/// A `kafka` source as written.
#[derive(Debug)]
pub struct KafkaSourceSpec {
    pub brokers: Vec<String>,
    pub topics: Vec<String>,
    pub group: String,
    /// `format`, `profile`, `priority` and the keys of the format.
    pub common: super::bus::Common,
    pub start: String,
    pub security: Option<SecuritySpec>,
    pub session_timeout_ms: u64,
}

/// A `kafka` sink as written.
#[derive(Debug)]
pub struct KafkaSinkSpec {
    pub brokers: Vec<String>,
    pub topic: String,
    pub key: Option<Spanned>,
    /// `format: hl7v2`: relay the messages as read (`None`: JSON lines).
    pub format: Option<Spanned>,
    pub security: Option<SecuritySpec>,
}

/// Whether `text` is `host:port` (a host name, an IPv4 address or an IPv6 one in brackets).
pub fn valid_broker(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else { return false };
    if port.parse::<u16>().map_or(true, |p| p == 0) || host.is_empty() {
        return false;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    host.len() <= 253 && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// Whether Kafka accepts `name` as a topic: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn brokers(cx: &mut Cx, obj: &reader::Obj<'_>) -> Vec<String> {
    let Some(node) = obj.get("brokers") else { return Vec::new() };
    let list = reader::string_list(cx, node, "`brokers`", true);
    if matches!(&node.value, crate::yaml::Value::Seq(items) if items.is_empty()) {
        cx.push(
            Diagnostic::error(codes::KAFKA_BROKER_ADDRESS, "`brokers` is empty")
                .label(node.span, "no broker to connect to")
                .help("name at least one broker: `brokers: [127.0.0.1:9092]`"),
        );
    }
    for b in &list {
        if !valid_broker(&b.text) {
            cx.push(
                Diagnostic::error(codes::KAFKA_BROKER_ADDRESS, format!("`{}` is not a broker address", b.text))
                    .label(b.span, "expected host:port")
                    .help("write `host:port`: `127.0.0.1:9092`, `kafka-1.example.org:9092`, `[::1]:9092`"),
            );
        }
    }
    list.into_iter().map(|b| b.text).collect()
}

fn topic(cx: &mut Cx, t: &Spanned) {
    if !valid_topic(&t.text) {
        cx.push(
            Diagnostic::error(codes::KAFKA_TOPIC_NAME, format!("`{}` is not a Kafka topic name", t.text))
                .label(t.span, "not a topic name")
                .help("a topic name is 1 to 249 letters, digits, `.`, `_` or `-` (e.g. `adt.inbound`)"),
        );
    }
}

fn security(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<SecuritySpec> {
    let node = obj.get("security")?;
    let sec = reader::object(cx, node, &KAFKA_SECURITY, "`security`")?;
    let protocol = sec.get("protocol").and_then(|n| reader::one_of(cx, n, PROTOCOLS, "security protocol"))?;
    let mechanism = sec.get("mechanism").and_then(|n| reader::one_of(cx, n, MECHANISMS, "SASL mechanism"));
    let username = sec.get("username").and_then(|n| reader::string(cx, n, "`username`"));
    let password = sec.get("password").and_then(|n| reader::secret(cx, n, "`password`"));
    let sasl = protocol.text.starts_with("sasl_");
    if sasl && (username.is_none() || password.is_none()) {
        let missing = if username.is_none() { "username" } else { "password" };
        cx.push(
            Diagnostic::error(
                codes::KAFKA_SECURITY,
                format!("protocol `{}` needs a SASL `{missing}`", protocol.text),
            )
            .label(protocol.span, "authenticates with SASL")
            .help("write `username:` and `password: ${KAFKA_PASSWORD}` (a secret reference), or use `protocol: ssl` or `plaintext`"),
        );
        return None;
    }
    if !sasl {
        let written =
            [("mechanism", mechanism.as_ref()), ("username", username.as_ref()), ("password", password.as_ref())];
        if let Some((key, Some(at))) = written.iter().find(|(_, v)| v.is_some()) {
            cx.push(
                Diagnostic::error(
                    codes::KAFKA_SECURITY,
                    format!("`{key}` is a SASL setting, but protocol `{}` does not use SASL", protocol.text),
                )
                .label(at.span, "ignored by this protocol")
                .label(protocol.span, "no SASL")
                .help(
                    "use `protocol: sasl_ssl` (or `sasl_plaintext` on a trusted network), or remove the SASL settings",
                ),
            );
            return None;
        }
    }
    let (ca_file, client) = tls_files(cx, &sec, &protocol)?;
    Some(SecuritySpec {
        protocol: protocol.text,
        mechanism: mechanism.map(|m| m.text),
        username: username.map(|u| u.text),
        password,
        ca_file,
        client,
    })
}

/// The TLS keys of `security`: refused with a protocol without TLS (SL437), a client
/// certificate without its key or a key without its certificate refused (SL438). `None` when
/// refused (reported); the files themselves are checked on disk by the driver (SL439).
#[allow(clippy::type_complexity)]
fn tls_files(
    cx: &mut Cx,
    sec: &reader::Obj<'_>,
    protocol: &Spanned,
) -> Option<(Option<Spanned>, Option<(Spanned, Spanned)>)> {
    let tls = protocol.text.ends_with("ssl");
    if !tls && let Some(key) = ["ca_file", "client_cert", "client_key"].into_iter().find(|k| sec.get(k).is_some()) {
        let at = sec.key_span(key).or_else(|| sec.get(key).map(|n| n.span)).unwrap_or(protocol.span);
        cx.push(
            Diagnostic::error(
                codes::KAFKA_TLS_WITHOUT_TLS,
                format!("`{key}` is a TLS setting, but protocol `{}` does not use TLS", protocol.text),
            )
            .label(at, "would be ignored")
            .label(protocol.span, "plain TCP, no TLS")
            .help(format!(
                "use `protocol: {}` to connect with TLS, or remove the TLS settings",
                if protocol.text.starts_with("sasl_") { "sasl_ssl" } else { "ssl" }
            )),
        );
        return None;
    }
    let ca_file = sec.get("ca_file").and_then(|n| reader::string(cx, n, "`ca_file`"));
    let cert = sec.get("client_cert").and_then(|n| reader::string(cx, n, "`client_cert`"));
    let key = sec.get("client_key").and_then(|n| reader::secret(cx, n, "`client_key`"));
    let client = match (cert, key, sec.get("client_cert"), sec.get("client_key")) {
        (Some(cert), Some(key), _, _) => Some((cert, key)),
        (Some(cert), None, _, None) => {
            cx.push(
                Diagnostic::error(codes::KAFKA_TLS_CLIENT_PAIR, "`client_cert` is set without `client_key`")
                    .label(cert.span, "a client certificate, but no private key to prove it")
                    .help("add `client_key: ${file:path/to/client.key}` (or `${VARIABLE}` holding the PEM key), or remove `client_cert`"),
            );
            return None;
        }
        (None, _, None, Some(k)) => {
            cx.push(
                Diagnostic::error(codes::KAFKA_TLS_CLIENT_PAIR, "`client_key` is set without `client_cert`")
                    .label(sec.key_span("client_key").unwrap_or(k.span), "a private key, but no certificate to present")
                    .help("add `client_cert: path/to/client.pem` (the certificate chain of that key), or remove `client_key`"),
            );
            return None;
        }
        _ => None,
    };
    Some((ca_file, client))
}

pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<KafkaSourceSpec> {
    let common = super::bus::common(cx, obj);
    let brokers = brokers(cx, obj);
    let topics = obj.get("topics").map(|n| reader::string_list(cx, n, "`topics`", true)).unwrap_or_default();
    for t in &topics {
        topic(cx, t);
    }
    let group = obj.get("group").and_then(|n| reader::string(cx, n, "`group`"));
    if let Some(g) = &group
        && (g.text.trim().is_empty() || g.text.len() > 255 || g.text.chars().any(char::is_control))
    {
        cx.push(
            Diagnostic::error(codes::KAFKA_GROUP, "the consumer group id cannot be used")
                .label(g.span, "empty, longer than 255 bytes, or holding control characters")
                .help("name the group after the pipeline, e.g. `group: sluice-adt`"),
        );
    }
    let start = obj
        .get("start")
        .and_then(|n| reader::one_of(cx, n, STARTS, "start position"))
        .map_or_else(|| "earliest".to_string(), |s| s.text);
    let session_timeout_ms =
        obj.get("session_timeout").and_then(|n| reader::duration(cx, n, "`session_timeout`")).unwrap_or(45_000);
    let security = security(cx, obj);
    Some(KafkaSourceSpec {
        brokers,
        topics: topics.into_iter().map(|t| t.text).collect(),
        group: group?.text,
        common,
        start,
        security,
        session_timeout_ms,
    })
}

pub fn sink(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<KafkaSinkSpec> {
    let brokers = brokers(cx, obj);
    let topic_name = obj.get("topic").and_then(|n| reader::string(cx, n, "`topic`"));
    if let Some(t) = &topic_name {
        topic(cx, t);
    }
    let key = obj.get("key").and_then(|n| reader::string(cx, n, "`key`"));
    let format = obj.get("format").and_then(|n| reader::string(cx, n, "`format`"));
    let security = security(cx, obj);
    Some(KafkaSinkSpec { brokers, topic: topic_name?.text, key, format, security })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        for ok in ["127.0.0.1:9092", "localhost:9092", "kafka-1.example.org:9093", "[::1]:9092"] {
            assert!(valid_broker(ok), "{ok}");
        }
        for bad in ["", "localhost", ":9092", "host:0", "host:99999", "ho st:9092", "[zz]:9092", "tcp://h:9092"] {
            assert!(!valid_broker(bad), "{bad}");
        }
    }

    #[test]
    fn topic_names() {
        for ok in ["adt", "adt.inbound", "a_b-c.1"] {
            assert!(valid_topic(ok), "{ok}");
        }
        for bad in ["", ".", "..", "adt inbound", "adt/in", &"x".repeat(250)] {
            assert!(!valid_topic(bad), "{bad}");
        }
    }
}
