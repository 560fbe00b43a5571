//! `amqp` sources and sinks as written (AMQP 0-9-1, RabbitMQ): server URL, queue, exchange,
//! routing key, TLS settings.
//!
//! This module reads and checks what is written (SL225-SL229, SL235, SL470, SL471); the
//! driver ([`crate::compile`]) resolves profiles, checks a sink's routing key field against its
//! records and the TLS files on disk (SL472).
//!
//! Invariants:
//! - A password never sits in the spec: `url` is either a secret reference (`${AMQP_URL}`,
//!   resolved when the run starts, never printed) or an `amqp://` / `amqps://` URL with no
//!   password in it (SL226).
//! - Certificate verification is never optional: `tls` only adds trust (a CA file) or an
//!   identity (a client certificate and key); there is no key that turns verification off.
//!   `tls` with a plain `amqp://` URL written out is refused (SL470), not ignored.
//! - Queue and exchange names are checked here against what AMQP 0-9-1 accepts, so a typo
//!   fails `sluice check` instead of a run that the server refuses.

use super::reader::{self, Cx, Spanned};
use super::shape::{KeyType, Shape};
use crate::codes;
use crate::diagnostics::Diagnostic;

/// `prefetch` when not written: enough unacknowledged messages to keep the workers busy.
pub const DEFAULT_PREFETCH: u64 = 256;

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> super::shape::Key {
    super::shape::Key { name, required: false, ty, doc }
}

const URL_DOC: &str = "Server URL: a secret reference (`${AMQP_URL}`, set to `amqp://user:password@host:5672/vhost`), or `amqp://` / `amqps://` (TLS, port 5671 by default; the server's certificate is verified against the system's CA certificates and `tls.ca_file`) without a password (`amqp://127.0.0.1:5672/%2f`). The virtual host is the URL's path, `%2f` for `/`.";

const TLS_DOC: &str = "TLS settings of an `amqps://` connection: a CA file to trust, a client certificate for mutual TLS (default: the system's CA certificates, no client certificate).";

pub static AMQP_TLS: Shape = Shape {
    name: "amqp.tls",
    type_tag: None,
    doc: "TLS for an `amqps://` connection (rustls; TLS 1.2 and 1.3). The server's certificate is always verified: its chain against the system's CA certificates and `ca_file`, its name against the URL's host; there is no setting that turns this off.",
    keys: &[
        opt(
            "ca_file",
            KeyType::String,
            "CA certificates (PEM file), relative to the pipeline file, trusted in addition to the system's: for a broker whose certificate a private CA signed.",
        ),
        opt(
            "client_cert",
            KeyType::String,
            "Client certificate chain (PEM file), relative to the pipeline file, for a server that requires mutual TLS (RabbitMQ `ssl_options.verify = verify_peer`, `fail_if_no_peer_cert = true`). With `client_key`.",
        ),
        opt(
            "client_key",
            KeyType::Secret,
            "The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1): `${file:path}` (relative to the pipeline file) or `${VARIABLE}` holding the PEM text. With `client_cert`.",
        ),
    ],
};

pub static SOURCE_AMQP: Shape = Shape {
    name: "source.amqp",
    type_tag: Some("amqp"),
    doc: "Consumes HL7 v2 messages, X12 interchanges or FHIR R4 JSON resources (`format`) from an AMQP 0-9-1 queue (RabbitMQ) with manual acknowledgements: a message is acknowledged only once its record is durable in the sinks or the DLQ (at least once; exactly once into idempotent sinks). Messages not acknowledged when a run stops or crashes are delivered again by the server. Runs until SIGINT or SIGTERM.",
    keys: &[
        req("type", KeyType::Enum(&["amqp"]), "Source kind."),
        super::bus::FORMAT,
        req("url", KeyType::String, URL_DOC),
        opt("tls", KeyType::Object(&AMQP_TLS), TLS_DOC),
        req("queue", KeyType::String, "Queue to consume (it must exist: Sluice does not declare queues)."),
        opt(
            "prefetch",
            KeyType::Integer,
            "How many messages the server hands over before their acknowledgements (`basic.qos`), 1 to 65535 (default 256).",
        ),
        super::bus::PROFILE,
        super::bus::RESOURCE_TYPES,
        super::bus::MODE,
        super::bus::GUIDES,
        super::bus::PRIORITY,
        super::bus::DESCRIPTION,
    ],
};

pub static SINK_AMQP: Shape = Shape {
    name: "sink.amqp",
    type_tag: Some("amqp"),
    doc: "Publishes each record as a persistent message to an AMQP 0-9-1 exchange (RabbitMQ) with publisher confirms: a batch counts as delivered only once the server confirmed every message of it.",
    keys: &[
        req("type", KeyType::Enum(&["amqp"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("url", KeyType::String, URL_DOC),
        opt("tls", KeyType::Object(&AMQP_TLS), TLS_DOC),
        req(
            "exchange",
            KeyType::String,
            "Exchange to publish to (it must exist); `\"\"` is the default exchange, which routes by queue name.",
        ),
        opt("routing_key", KeyType::String, "Routing key of every message (a constant, e.g. `adt.a01`)."),
        opt(
            "routing_key_field",
            KeyType::String,
            "A field of the records (dotted path, one value, e.g. `patient.id`) whose value is each message's routing key; with `format: hl7v2`, an HL7 v2 path (`MSH-9.2`: its first value). Not with `routing_key`. Without either, a record read from a message bus keeps its message's routing key (`amqp`) or key (`kafka`); others get an empty one.",
        ),
        opt(
            "format",
            KeyType::Enum(&["json", "hl7v2"]),
            "`json` (the default): each record as the JSON line a `jsonl` sink writes. `hl7v2`: each HL7 v2 message exactly as it was read (its bytes); the sink's input must be HL7 v2 messages.",
        ),
        opt(
            "phi",
            KeyType::Object(&super::shape::SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, super::shape::AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// An `amqp` source as written.
#[derive(Debug)]
pub struct AmqpSourceSpec {
    /// A secret reference or a URL without a password.
    pub url: Spanned,
    pub queue: String,
    pub prefetch: u16,
    pub tls: Option<AmqpTlsSpec>,
    /// `format`, `profile`, `priority` and the keys of the format.
    pub common: super::bus::Common,
}

/// `tls` as written.
#[derive(Debug)]
pub struct AmqpTlsSpec {
    /// A PEM file of CA certificates, as written (relative to the pipeline file).
    pub ca_file: Option<Spanned>,
    /// The client certificate chain (a PEM file) and its key (a secret reference).
    pub client: Option<(Spanned, Spanned)>,
}

/// An `amqp` sink as written.
#[derive(Debug)]
pub struct AmqpSinkSpec {
    pub url: Spanned,
    pub exchange: String,
    pub routing_key: Option<String>,
    pub routing_key_field: Option<Spanned>,
    /// `format: hl7v2`: relay the messages as read (`None`: JSON lines).
    pub format: Option<Spanned>,
    pub tls: Option<AmqpTlsSpec>,
}

/// Whether `text` is a secret reference rather than a URL written out.
fn is_reference(text: &str) -> bool {
    text.starts_with("${")
}

/// What is wrong with an AMQP URL written out, if anything: `Err((code, what, help))`.
pub fn check_url(text: &str) -> Result<(), (&'static crate::codes::Code, String, &'static str)> {
    let bad_scheme = || {
        (
            codes::AMQP_URL,
            format!("`{text}` is not an AMQP URL"),
            "write `amqp://host:5672/vhost` (or `amqps://` for TLS), or a secret reference such as `${AMQP_URL}`",
        )
    };
    let Some(rest) = text.strip_prefix("amqp://").or_else(|| text.strip_prefix("amqps://")) else {
        return Err(bad_scheme());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, host_port) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
    if userinfo.is_some_and(|u| u.contains(':')) {
        return Err((
            codes::AMQP_URL_PASSWORD,
            "the AMQP URL holds a password".to_string(),
            "put the whole URL in a secret and reference it: `url: ${AMQP_URL}` (set to `amqp://user:password@host:5672/vhost`)",
        ));
    }
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return Err(bad_scheme()),
        },
        None => host_port.rsplit_once(':').map_or((host_port, None), |(h, p)| (h, Some(p))),
    };
    let host_ok =
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '%' | '_'));
    if !host_ok || port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err((
            codes::AMQP_URL,
            format!("`{text}` has no usable host and port"),
            "write `amqp://host:5672/vhost`: a host name or IP address, then an optional port from 1 to 65535",
        ));
    }
    Ok(())
}

fn url(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<Spanned> {
    let node = obj.get("url")?;
    let written = reader::string(cx, node, "`url`")?;
    if is_reference(&written.text) {
        return reader::secret(cx, node, "`url`");
    }
    // A bad URL is reported, and the component kept, so its consumers are still checked.
    if let Err((code, what, help)) = check_url(&written.text) {
        let label =
            if code == codes::AMQP_URL_PASSWORD { "a password written into the spec" } else { "not an amqp:// URL" };
        cx.push(Diagnostic::error(code, what).label(written.span, label).help(help));
    }
    Some(written)
}

/// `tls` as written, checked against the URL (SL470) and for a client certificate without
/// its key or a key without its certificate (SL471). `None` when absent or refused (reported).
fn tls(cx: &mut Cx, obj: &reader::Obj<'_>, url: Option<&Spanned>) -> Option<AmqpTlsSpec> {
    let node = obj.get("tls")?;
    let t = reader::object(cx, node, &AMQP_TLS, "`tls`")?;
    let at = obj.key_span("tls").unwrap_or(node.span);
    if let Some(u) = url
        && u.text.starts_with("amqp://")
    {
        cx.push(
            Diagnostic::error(codes::AMQP_TLS_PLAIN_URL, "`tls` is set, but the URL connects without TLS")
                .label(u.span, "`amqp://`: plain TCP, the TLS settings would be ignored")
                .label(at, "TLS settings")
                .help("write `amqps://host:5671/vhost` to connect with TLS, or remove `tls`"),
        );
        // Reported once: its files are not looked at for a connection that would not use them.
        return None;
    }
    let ca_file = t.get("ca_file").and_then(|n| reader::string(cx, n, "`ca_file`"));
    let cert = t.get("client_cert").and_then(|n| reader::string(cx, n, "`client_cert`"));
    let key = t.get("client_key").and_then(|n| reader::secret(cx, n, "`client_key`"));
    let client = match (cert, key, t.get("client_cert"), t.get("client_key")) {
        (Some(cert), Some(key), _, _) => Some((cert, key)),
        (Some(cert), None, _, None) => {
            cx.push(
                Diagnostic::error(codes::AMQP_TLS_CLIENT_PAIR, "`client_cert` is set without `client_key`")
                    .label(cert.span, "a client certificate, but no private key to prove it")
                    .help("add `client_key: ${file:path/to/client.key}` (or `${VARIABLE}` holding the PEM key), or remove `client_cert`"),
            );
            None
        }
        (None, _, None, Some(k)) => {
            cx.push(
                Diagnostic::error(codes::AMQP_TLS_CLIENT_PAIR, "`client_key` is set without `client_cert`")
                    .label(t.key_span("client_key").unwrap_or(k.span), "a private key, but no certificate to present")
                    .help("add `client_cert: path/to/client.pem` (the certificate chain of that key), or remove `client_key`"),
            );
            None
        }
        _ => None,
    };
    Some(AmqpTlsSpec { ca_file, client })
}

/// Whether AMQP 0-9-1 accepts `name` as a queue or exchange name: at most 255 bytes of
/// letters, digits, `-`, `_`, `.` and `:` (RabbitMQ accepts more for queues; this keeps to
/// the protocol's portable set, plus `/` which RabbitMQ users often put in queue names).
pub fn valid_name(name: &str) -> bool {
    name.len() <= 255 && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
}

pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<AmqpSourceSpec> {
    let common = super::bus::common(cx, obj);
    let url = url(cx, obj);
    let queue = obj.get("queue").and_then(|n| reader::string(cx, n, "`queue`"));
    if let Some(q) = &queue
        && (q.text.is_empty() || !valid_name(&q.text) || q.text.starts_with("amq."))
    {
        cx.push(
            Diagnostic::error(codes::AMQP_QUEUE_NAME, format!("`{}` cannot be used as a queue to consume", q.text))
                .label(q.span, "empty, longer than 255 bytes, a server-named `amq.` queue, or unusual characters")
                .help("name the queue the messages are routed to, e.g. `queue: adt.inbound` (letters, digits, `-`, `_`, `.`, `:`, `/`)"),
        );
    }
    let mut prefetch = DEFAULT_PREFETCH;
    if let Some(node) = obj.get("prefetch")
        && let Some(n) = reader::integer(cx, node, "`prefetch`")
    {
        if n == 0 || n > u64::from(u16::MAX) {
            cx.push(
                Diagnostic::error(codes::AMQP_PREFETCH, format!("prefetch {n} is out of range"))
                    .label(node.span, "0 would let the server send without limit; the protocol's maximum is 65535")
                    .help("write a count from 1 to 65535, e.g. `prefetch: 256` (the default)"),
            );
        } else {
            prefetch = n;
        }
    }
    let tls = tls(cx, obj, url.as_ref());
    Some(AmqpSourceSpec {
        url: url?,
        queue: queue?.text,
        prefetch: u16::try_from(prefetch).unwrap_or(u16::MAX),
        tls,
        common,
    })
}

pub fn sink(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<AmqpSinkSpec> {
    let url = url(cx, obj);
    let exchange = obj.get("exchange").and_then(|n| reader::string(cx, n, "`exchange`"));
    if let Some(x) = &exchange
        && !valid_name(&x.text)
    {
        cx.push(
            Diagnostic::error(codes::AMQP_EXCHANGE_NAME, format!("`{}` is not an AMQP exchange name", x.text))
                .label(x.span, "longer than 255 bytes or unusual characters")
                .help("name an existing exchange, e.g. `exchange: adt` (letters, digits, `-`, `_`, `.`, `:`), or `\"\"` for the default exchange"),
        );
    }
    let routing_key = obj.get("routing_key").and_then(|n| reader::string(cx, n, "`routing_key`"));
    let routing_key_field = obj.get("routing_key_field").and_then(|n| reader::string(cx, n, "`routing_key_field`"));
    if let (Some(constant), Some(field)) = (&routing_key, &routing_key_field) {
        cx.push(
            Diagnostic::error(
                codes::AMQP_ROUTING_KEY_CHOICE,
                "the sink has both `routing_key` and `routing_key_field`",
            )
            .label(constant.span, "one routing key for every message")
            .label(field.span, "a routing key per record")
            .help("keep `routing_key` for a constant key, or `routing_key_field` to route by a field of the records"),
        );
    }
    if let Some(k) = &routing_key
        && k.text.len() > 255
    {
        cx.push(
            Diagnostic::error(codes::AMQP_ROUTING_KEY_CHOICE, "the routing key is longer than 255 bytes")
                .label(k.span, "AMQP routing keys are at most 255 bytes")
                .help("use a shorter routing key"),
        );
    }
    let format = obj.get("format").and_then(|n| reader::string(cx, n, "`format`"));
    let tls = tls(cx, obj, url.as_ref());
    Some(AmqpSinkSpec {
        url: url?,
        exchange: exchange?.text,
        routing_key: routing_key.map(|k| k.text),
        routing_key_field,
        format,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for ok in ["amqp://127.0.0.1:5672/%2f", "amqps://mq.example.org", "amqp://user@[::1]:5672/", "amqp://h/v"] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in ["http://h:5672", "h:5672", "amqp://", "amqp://h:0", "amqp://h:99999", "amqp://h h"] {
            assert_eq!(check_url(bad).map_err(|e| e.0), Err(codes::AMQP_URL), "{bad}");
        }
        assert_eq!(check_url("amqp://u:p@h:5672").map_err(|e| e.0), Err(codes::AMQP_URL_PASSWORD));
    }

    #[test]
    fn names() {
        for ok in ["adt", "adt.inbound", "a_b-c:1", "hl7/adt", ""] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["adt inbound", "adt\u{1}", &"x".repeat(256)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
