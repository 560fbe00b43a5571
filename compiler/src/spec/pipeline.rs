//! Pipeline specs (`kind: pipeline`): named sources, stages and sinks with their `inputs`.
//!
//! This module reads what is written; resolving referenced files, the graph and the types is
//! the driver's job ([`crate::compile`]).

use super::reader::{self, Cx, Spanned};
use super::shape::{self, Shape};
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::{Defaults, FailIfPlan, Mode, RetryPlan, ThrottlePlan, pg_table, pg_url};
use crate::source::Span;
use crate::yaml::{Node, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Source,
    Stage,
    Sink,
}

/// The keys of a `files` source with `format: fhir` beyond `path` and `profile` (which names a
/// StructureDefinition there).
#[derive(Debug)]
pub struct FhirFiles {
    /// Resource types read, with their spans (empty: all).
    pub resource_types: Vec<Spanned>,
    pub mode: Mode,
}

/// The keys of a `files` source with `format: x12` beyond `path`.
#[derive(Debug)]
pub struct X12Files {
    /// Implementation guide ids read, with their spans (empty: all).
    pub guides: Vec<Spanned>,
    pub mode: Mode,
    /// `acks`: the directory acknowledgments are written to.
    pub acks: Option<Spanned>,
}

/// `after: {tag: {key: value, ...}}` of a `files` source, as written: the span of the `tag`
/// key and each tag's key and value (checked against the store's rules by
/// [`crate::object_store::check_tags`]).
#[derive(Debug)]
pub struct TagSpec {
    pub span: Span,
    pub tags: Vec<(Spanned, Spanned)>,
}

#[derive(Debug)]
pub enum Body<'n> {
    Files {
        paths: Vec<Spanned>,
        profile: Option<Spanned>,
        /// `format: fhir`: what else the source says (`None` for `hl7v2`).
        fhir: Option<FhirFiles>,
        /// `format: x12`: what else the source says (`None` for other formats).
        x12: Option<X12Files>,
        store: Option<Box<StoreSpec>>,
        /// `after: {move_to}`.
        move_to: Option<Spanned>,
        /// `after: {tag}`.
        tag: Option<Box<TagSpec>>,
    },
    Mllp(Box<MllpSpec>),
    Kafka(Box<super::kafka::KafkaSourceSpec>),
    Amqp(Box<super::amqp::AmqpSourceSpec>),
    Webhook(Box<super::webhook::WebhookSourceSpec>),
    FhirRest(Box<crate::fhir_rest::FhirRestSpec>),
    Stripe(Box<crate::stripe::StripeSpec>),
    QuickBooks(Box<crate::quickbooks::QuickBooksSpec>),
    Plaid(Box<crate::plaid::PlaidSpec>),
    Validate {
        rules: Spanned,
        mode: Option<Mode>,
    },
    Map {
        mapping: Spanned,
    },
    /// `environments`: environment name (with its span) and policy file.
    Mask {
        policy: Spanned,
        environments: Vec<(Spanned, Spanned)>,
    },
    Filter {
        keep: &'n Node,
    },
    Route {
        routes: Vec<(String, Span, &'n Node)>,
        default: Option<Spanned>,
    },
    Jsonl {
        path: Spanned,
        store: Option<Box<StoreSpec>>,
    },
    Http(Box<HttpSpec>),
    Postgres(Box<PostgresSpec>),
    Csv {
        path: Spanned,
        store: Option<Box<StoreSpec>>,
    },
    Parquet(Box<ParquetSpec>),
    KafkaSink(Box<super::kafka::KafkaSinkSpec>),
    AmqpSink(Box<super::amqp::AmqpSinkSpec>),
}

/// A `store:` block as written (object-store paths); credentials are checked to be secret
/// references here (SL205).
#[derive(Debug)]
pub struct StoreSpec {
    /// The `store` key, for diagnostics.
    pub span: Span,
    pub region: Option<Spanned>,
    pub endpoint: Option<Spanned>,
    pub access_key_id: Option<Spanned>,
    pub secret_access_key: Option<Spanned>,
    pub account: Option<Spanned>,
    pub access_key: Option<Spanned>,
    pub service_account_key: Option<Spanned>,
}

fn store(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<Box<StoreSpec>> {
    let node = obj.get("store")?;
    let store = reader::object(cx, node, &shape::OBJECT_STORE, "`store`")?;
    let s = |cx: &mut Cx, key: &str| store.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let secret = |cx: &mut Cx, key: &str| store.get(key).and_then(|n| reader::secret(cx, n, &format!("`{key}`")));
    Some(Box::new(StoreSpec {
        span: node.span,
        region: s(cx, "region"),
        endpoint: s(cx, "endpoint"),
        access_key_id: secret(cx, "access_key_id"),
        secret_access_key: secret(cx, "secret_access_key"),
        account: s(cx, "account"),
        access_key: secret(cx, "access_key"),
        service_account_key: secret(cx, "service_account_key"),
    }))
}

/// A `parquet` sink as written; its columns come from the records' schema (the driver's job).
#[derive(Debug)]
pub struct ParquetSpec {
    /// The output directory.
    pub path: Spanned,
    pub partition_by: Option<Spanned>,
    /// `roll: {rows}`, checked to be more than zero.
    pub roll_rows: Option<u64>,
    /// `roll: {bytes}`, checked to be more than zero.
    pub roll_bytes: Option<u64>,
}

fn parquet(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<ParquetSpec> {
    let path = obj.get("path").and_then(|n| reader::string(cx, n, "`path`"));
    let partition_by = obj.get("partition_by").and_then(|n| reader::string(cx, n, "`partition_by`"));
    let roll = obj.get("roll").and_then(|n| reader::object(cx, n, &shape::PARQUET_ROLL, "`roll`"));
    let mut limit = |key: &str| -> Result<Option<u64>, ()> {
        let Some(node) = roll.as_ref().and_then(|r| r.get(key)) else { return Ok(None) };
        match reader::integer(cx, node, &format!("`{key}`")) {
            Some(0) => {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("`{key}` must be more than zero"))
                        .label(node.span, "zero")
                        .help("leave it out for the default (a file per 1,000,000 rows, whatever its size)"),
                );
                Err(())
            }
            n => Ok(n),
        }
    };
    let (roll_rows, roll_bytes) = (limit("rows"), limit("bytes"));
    Some(ParquetSpec { path: path?, partition_by, roll_rows: roll_rows.ok()?, roll_bytes: roll_bytes.ok()? })
}

/// A `postgres` sink as written; its columns come from the records' schema (the driver's job).
#[derive(Debug)]
pub struct PostgresSpec {
    pub url: Spanned,
    pub write: Spanned,
    pub table: Option<Spanned>,
    /// `key`, when written, and where.
    pub key: Option<(Vec<Spanned>, Span)>,
}

/// Whether `table` is a PostgreSQL table name Sluice can use (SL220 when not); `example`
/// shows the two accepted shapes in the hint. Shared by the postgres sink and the ledger of a
/// reconciliation.
pub(super) fn check_table_name(cx: &mut Cx, table: &Spanned, example: &str) -> bool {
    if pg_table::valid_table_name(&table.text) {
        return true;
    }
    cx.push(
        Diagnostic::error(codes::PG_TABLE_NAME, format!("`{}` is not a table name Sluice can use", table.text))
            .label(table.span, "expected `name` or `schema.name`")
            .help(format!(
                "use lower-case letters, digits and `_`, starting with a letter or `_`, at most {} bytes per part, e.g. {example}",
                pg_table::MAX_IDENTIFIER
            )),
    );
    false
}

fn postgres(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<PostgresSpec> {
    let url = obj.get("url").and_then(|n| reader::secret(cx, n, "`url` of a postgres sink"));
    let write = obj.get("write").and_then(|n| reader::one_of(cx, n, &["append", "upsert"], "write mode"));
    let table = obj.get("table").and_then(|n| reader::string(cx, n, "`table`"));
    if let Some(t) = &table {
        check_table_name(cx, t, "`adt_messages` or `warehouse.adt_messages`");
    }
    let key = obj.get("key").map(|n| (reader::string_list(cx, n, "`key`", true), n.span));
    Some(PostgresSpec { url: url?, write: write?, table, key })
}

/// An `http` sink as written. `retry` holds the keys written on the sink only; [`read`] merges
/// them over `defaults.retry` into `retry_plan`.
#[derive(Debug)]
pub struct HttpSpec {
    pub url: Spanned,
    /// Header name and value (a secret reference or literal text).
    pub headers: Vec<(String, Spanned)>,
    pub timeout_ms: u64,
    pub max_records: Option<u64>,
    pub retry: RetryKeys,
    pub retry_plan: RetryPlan,
    pub throttle: Option<ThrottlePlan>,
    /// Where the sink's own `throttle.per` is written.
    pub throttle_per: Option<Span>,
}

/// The keys of a `retry` object that are written.
#[derive(Debug, Default, Clone)]
pub struct RetryKeys {
    pub max_attempts: Option<u32>,
    pub initial_backoff_ms: Option<u64>,
    pub max_backoff_ms: Option<u64>,
    pub max_elapsed_ms: Option<u64>,
}

impl RetryKeys {
    /// These keys over `base`.
    pub fn over(&self, base: &RetryPlan) -> RetryPlan {
        RetryPlan {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff_ms: self.initial_backoff_ms.unwrap_or(base.initial_backoff_ms),
            max_backoff_ms: self.max_backoff_ms.unwrap_or(base.max_backoff_ms),
            max_elapsed_ms: self.max_elapsed_ms.unwrap_or(base.max_elapsed_ms),
        }
    }
}

/// `timeout` of an `http` sink when not written.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 30_000;

/// Header names whose values are credentials: they must be secret references (SL205).
fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["authorization", "cookie", "token", "key", "secret", "password", "signature"].iter().any(|w| n.contains(w))
}

/// An HTTP header name: an RFC 9110 token.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Header names Sluice sets itself.
const RESERVED_HEADERS: &[&str] = &["content-type", "content-length", "idempotency-key", "host", "transfer-encoding"];

/// Reads a `retry` object (of `defaults` or of a sink).
pub(crate) fn retry_keys(cx: &mut Cx, node: &Node) -> RetryKeys {
    let mut k = RetryKeys::default();
    let Some(r) = reader::object(cx, node, &shape::RETRY, "`retry`") else { return k };
    if let Some(n) = r.get("max_attempts")
        && let Some(v) = reader::integer(cx, n, "`max_attempts`")
    {
        if v == 0 {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, "`max_attempts` must be at least 1")
                    .label(n.span, "zero")
                    .help("it counts the first attempt too: `1` means no retries; the default is 3"),
            );
        } else {
            k.max_attempts = Some(v.min(u32::MAX as u64) as u32);
        }
    }
    k.initial_backoff_ms = r.get("initial_backoff").and_then(|n| reader::duration(cx, n, "`initial_backoff`"));
    k.max_backoff_ms = r.get("max_backoff").and_then(|n| reader::duration(cx, n, "`max_backoff`"));
    k.max_elapsed_ms = r.get("max_elapsed").and_then(|n| reader::duration(cx, n, "`max_elapsed`"));
    k
}

pub(crate) fn throttle(cx: &mut Cx, node: &Node) -> Option<ThrottlePlan> {
    let t = reader::object(cx, node, &shape::THROTTLE, "`throttle`")?;
    let shared = t.get("shared").and_then(|n| reader::string(cx, n, "`shared`")).and_then(|name| {
        let ok = !name.text.is_empty()
            && name.text.len() <= 100
            && name.text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a valid shared throttle name", name.text))
                    .label(name.span, "expected a name of letters, digits, `_`, `-` or `.`")
                    .help("name the bucket after the API it protects, e.g. `shared: ingest-api`"),
            );
        }
        ok.then_some(name.text)
    });
    let per_key = t.get("per").and_then(|n| reader::string(cx, n, "`per`")).map(|s| s.text);
    let (permits, per_seconds) = t.get("rate").and_then(|n| reader::rate(cx, n, "`rate`"))?;
    Some(ThrottlePlan { permits, per_seconds, shared, per_key })
}

fn http(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<HttpSpec> {
    let url = obj.get("url").and_then(|n| reader::string(cx, n, "`url`"))?;
    let lower = url.text.to_ascii_lowercase();
    let host = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    if !host.is_some_and(|h| !h.is_empty() && !h.starts_with('/') && !h.contains(char::is_whitespace)) {
        cx.push(
            Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not an http or https URL", url.text))
                .label(url.span, "expected `https://host/path`")
                .help("write the endpoint's full URL, e.g. `https://ingest.example.org/v1/events` (`http://` for a local test server only)"),
        );
    }
    if host.is_some_and(|h| h.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@'))) {
        cx.push(
            Diagnostic::error(codes::INLINE_SECRET, "the `url` holds credentials (`user:password@`)")
                .label(url.span, "a secret value written into the spec")
                .help(
                    "remove them from the URL and send them in a header: `headers: {Authorization: '${INGEST_TOKEN}'}`",
                ),
        );
    }
    let mut headers = Vec::new();
    if let Some(h) = obj.get("headers").and_then(|n| reader::entries(cx, n, "`headers`")) {
        for (name, name_node, value) in h {
            if !valid_header_name(name) || RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("`{name}` cannot be a header of this sink"))
                        .label(name_node.span, "not an HTTP header name, or one Sluice sets itself")
                        .help("header names are letters, digits and `-`; Sluice sets `Content-Type` and `Idempotency-Key` itself"),
                );
                continue;
            }
            let v = if is_credential_header(name) {
                reader::secret(cx, value, &format!("header `{name}`"))
            } else {
                reader::string(cx, value, &format!("header `{name}`"))
            };
            if let Some(v) = v {
                headers.push((name.to_string(), v));
            }
        }
    }
    let positive = |cx: &mut Cx, key: &str, n: Option<u64>, node: Option<&Node>| -> Option<u64> {
        match (n, node) {
            (Some(0), Some(node)) => {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("`{key}` must be more than zero"))
                        .label(node.span, "zero")
                        .help(format!("leave `{key}` out for the default")),
                );
                None
            }
            (n, _) => n,
        }
    };
    let timeout = obj.get("timeout").and_then(|n| reader::duration(cx, n, "`timeout`"));
    let timeout_ms = positive(cx, "timeout", timeout, obj.get("timeout")).unwrap_or(DEFAULT_HTTP_TIMEOUT_MS);
    let max_records = obj.get("max_records").and_then(|n| reader::integer(cx, n, "`max_records`"));
    let max_records = positive(cx, "max_records", max_records, obj.get("max_records"));
    let retry = obj.get("retry").map(|n| retry_keys(cx, n)).unwrap_or_default();
    let throttle_node = obj.get("throttle");
    let throttle_per = throttle_node.and_then(|n| match &n.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some("per")).map(|(_, v)| v.span),
        _ => None,
    });
    let throttle = throttle_node.and_then(|n| throttle(cx, n));
    Some(HttpSpec {
        url,
        headers,
        timeout_ms,
        max_records,
        retry,
        retry_plan: default_defaults().retry,
        throttle,
        throttle_per,
    })
}

/// An `mllp` source as written; paths are resolved by the driver.
#[derive(Debug)]
pub struct MllpSpec {
    pub listen: String,
    pub profile: Option<Spanned>,
    pub max_frame_bytes: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: u64,
    /// Certificate path and key reference.
    pub tls: Option<(Spanned, Spanned)>,
    pub charset: Option<String>,
    pub ack_mode: String,
    pub ack_timing: String,
    pub priority: String,
}

/// Reads `host:port`: an IP address (IPv6 in brackets) or `localhost`, and a port.
pub fn valid_listen_address(text: &str) -> bool {
    if text.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    text.strip_prefix("localhost:").is_some_and(|p| p.parse::<u16>().is_ok())
}

/// `after: {move_to, tag}` of a `files` source: at least one of them.
fn after(cx: &mut Cx, node: &Node) -> (Option<Spanned>, Option<Box<TagSpec>>) {
    let Some(after) = reader::object(cx, node, &shape::SOURCE_AFTER, "`after`") else { return (None, None) };
    let move_to = after.get("move_to").and_then(|n| reader::string(cx, n, "`move_to`"));
    let tag = after.get("tag").zip(after.key_span("tag")).and_then(|(n, span)| {
        let entries = reader::entries(cx, n, "`tag`")?;
        let tags = entries
            .into_iter()
            .filter_map(|(key, key_node, value)| {
                let value = reader::string(cx, value, &format!("the value of tag `{key}`"))?;
                Some((Spanned { text: key.to_string(), span: key_node.span }, value))
            })
            .collect();
        Some(Box::new(TagSpec { span, tags }))
    });
    if after.get("move_to").is_none() && after.get("tag").is_none() {
        cx.push(
            Diagnostic::error(codes::MISSING_KEY, "`after` says neither `move_to` nor `tag`")
                .label(after.anchor(), "add `move_to`, `tag` or both here")
                .help("`move_to: processed/` moves each object once its run completed; `tag: {sluice-status: processed}` tags it (S3)"),
        );
    }
    (move_to, tag)
}

fn mllp(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<MllpSpec> {
    let s = |cx: &mut Cx, key: &str| obj.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    if let Some(f) = obj.get("format") {
        reader::one_of(cx, f, &["hl7v2"], "source format");
    }
    let listen = s(cx, "listen")?;
    if !valid_listen_address(&listen.text) {
        cx.push(
            Diagnostic::error(
                codes::INVALID_LISTEN_ADDRESS,
                format!("`{}` is not an address and port to listen on", listen.text),
            )
            .label(listen.span, "expected ip:port")
            .help("write `127.0.0.1:2575` (this machine only), `0.0.0.0:2575` (every interface), `[::1]:2575` or `localhost:2575`"),
        );
        // The component stays, so its name still resolves in `inputs` (no follow-up errors).
    }
    let positive = |cx: &mut Cx, key: &str, default: u64| -> u64 {
        let Some(n) = obj.get(key) else { return default };
        match reader::integer(cx, n, &format!("`{key}`")) {
            Some(0) => {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, format!("`{key}` must be at least 1"))
                        .label(n.span, "zero")
                        .help(format!("the default is {default}")),
                );
                default
            }
            Some(v) => v,
            None => default,
        }
    };
    let max_frame_bytes = positive(cx, "max_frame_bytes", 1 << 20);
    let max_connections = positive(cx, "max_connections", 64);
    let idle_timeout_ms =
        obj.get("idle_timeout").and_then(|n| reader::duration(cx, n, "`idle_timeout`")).unwrap_or(60_000);
    let tls = match obj.get("tls").and_then(|n| reader::object(cx, n, &shape::MLLP_TLS, "`tls`")) {
        Some(t) => {
            let cert = t.get("cert").and_then(|n| reader::string(cx, n, "`cert`"));
            let key = t.get("key").and_then(|n| reader::secret(cx, n, "`key`"));
            // On an error (already reported) the source stays, without TLS, so its name still
            // resolves in `inputs`.
            cert.zip(key)
        }
        None => None,
    };
    let charset = obj.get("charset").and_then(|n| reader::one_of(cx, n, shape::ENCODINGS, "charset")).map(|c| c.text);
    let (mut ack_mode, mut ack_timing) = ("original".to_string(), "on_commit".to_string());
    if let Some(a) = obj.get("ack").and_then(|n| reader::object(cx, n, &shape::MLLP_ACK, "`ack`")) {
        if let Some(m) = a.get("mode").and_then(|n| reader::one_of(cx, n, shape::ACK_MODES, "acknowledgement mode")) {
            ack_mode = m.text;
        }
        if let Some(t) =
            a.get("timing").and_then(|n| reader::one_of(cx, n, shape::ACK_TIMINGS, "acknowledgement timing"))
        {
            ack_timing = t.text;
        }
    }
    let priority = obj
        .get("priority")
        .and_then(|n| reader::one_of(cx, n, shape::PRIORITIES, "source priority"))
        .map_or_else(|| "normal".to_string(), |p| p.text);
    Some(MllpSpec {
        listen: listen.text,
        profile: s(cx, "profile"),
        max_frame_bytes,
        idle_timeout_ms,
        max_connections,
        tls,
        charset,
        ack_mode,
        ack_timing,
        priority,
    })
}

#[derive(Debug)]
pub struct ComponentSpec<'n> {
    pub name: String,
    pub name_span: Span,
    pub section: Section,
    pub inputs: Vec<Spanned>,
    /// The `inputs` value, when the key is written (a missing key is reported as SL202).
    pub inputs_span: Option<Span>,
    pub body: Body<'n>,
    /// A sink's `phi: {allowed: true, reason}`: the reason, and where `allowed` is written.
    pub phi_allowed: Option<(String, Span)>,
    /// A sink's `audience`: the role whose masking policy applies to what it writes.
    pub audience: Option<Spanned>,
}

/// `error_rate > P% over N records` (spaces free; `record` or `records`).
pub fn parse_fail_if(text: &str) -> Option<FailIfPlan> {
    let rest = text.trim().strip_prefix("error_rate")?.trim_start().strip_prefix('>')?.trim_start();
    let (percent, rest) = rest.split_once('%')?;
    let percent: f64 = percent.trim().parse().ok()?;
    let rest = rest.trim_start().strip_prefix("over")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut words = rest.split_whitespace();
    let window: u64 = words.next()?.parse().ok()?;
    if !matches!(words.next(), Some("records" | "record")) || words.next().is_some() {
        return None;
    }
    (percent > 0.0 && percent < 100.0 && window >= 1).then_some(FailIfPlan { max_error_rate: percent / 100.0, window })
}

/// `state.checkpoint_every` when not written.
pub const DEFAULT_CHECKPOINT_EVERY_MS: u64 = 1000;

pub struct PipelineSpec<'n> {
    pub name: String,
    pub components: Vec<ComponentSpec<'n>>,
    pub dlq: Option<Spanned>,
    /// `dlq.encryption_key` (a secret reference) and `dlq.plaintext_reason`.
    pub dlq_key: Option<Spanned>,
    pub dlq_plaintext_reason: Option<String>,
    /// `dlq.store: state`: the DLQ is the state store's `dlq_entries` table (then `dlq` is
    /// `None`).
    pub dlq_store: Option<Spanned>,
    pub audit: Option<Spanned>,
    /// `state.path`: a SQLite store.
    pub state: Option<Spanned>,
    /// `state.url`: a PostgreSQL store (a secret reference or a URL without a password).
    pub state_url: Option<Spanned>,
    /// `state.checkpoint_every` in milliseconds.
    pub checkpoint_every_ms: u64,
    pub defaults: Defaults,
    pub fail_if: Option<FailIfPlan>,
    /// `roles:` ([`super::roles`]).
    pub roles: Vec<super::roles::RoleSpec>,
    /// `retention:` ([`super::retention`]).
    pub retention: Option<crate::plan::RetentionPlan>,
    /// `connections:` ([`super::connections`]).
    pub connections: Vec<super::connections::ConnectionSpec>,
    /// Where `phi_proof: lenient` is written, if it is (the default is strict).
    pub phi_lenient: Option<Span>,
    /// `reconcile:`, the reconciliations run when the run's sources have ended.
    pub reconcile: Vec<ReconcileStep>,
}

/// One `reconcile:` entry: a reconciliation file and the sinks its sides read. The compiler
/// loads the file, checks it, and puts the sinks' files in place of its inputs' `path`.
pub struct ReconcileStep {
    pub spec: Spanned,
    /// Side (`left`, `right`) and a sink named for it, in the order written (a side may name
    /// several: their files, in that order, are its input).
    pub inputs: Vec<(&'static str, Spanned)>,
    pub span: Span,
}

fn reconcile_steps(cx: &mut Cx, node: &Node) -> Vec<ReconcileStep> {
    let Value::Seq(items) = &node.value else {
        cx.push(
            Diagnostic::error(codes::WRONG_TYPE, format!("`reconcile` must be a list, found {}", node.kind_name()))
                .label(node.span, "expected a list of reconciliations")
                .help("write one `- {spec: payouts-vs-bank.yaml, inputs: {left: payouts, right: bank}}` per reconciliation"),
        );
        return Vec::new();
    };
    let mut steps = Vec::new();
    for item in items {
        let Some(o) = reader::object(cx, item, &shape::PIPELINE_RECONCILE, "a `reconcile` entry") else { continue };
        let Some(spec) = o.get("spec").and_then(|n| reader::string(cx, n, "`spec`")) else { continue };
        let mut inputs = Vec::new();
        if let Some(i) =
            o.get("inputs").and_then(|n| reader::object(cx, n, &shape::PIPELINE_RECONCILE_INPUTS, "`inputs`"))
        {
            for side in ["left", "right"] {
                if let Some(n) = i.get(side) {
                    inputs
                        .extend(reader::string_list(cx, n, &format!("`{side}`"), true).into_iter().map(|s| (side, s)));
                }
            }
        }
        steps.push(ReconcileStep { spec, inputs, span: item.span });
    }
    steps
}

pub fn read<'n>(cx: &mut Cx, node: &'n Node) -> Option<PipelineSpec<'n>> {
    let obj = reader::object(cx, node, &shape::PIPELINE, "the pipeline")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    let mut components = Vec::new();
    for (key, section, shapes) in [
        ("sources", Section::Source, shape::SOURCE_SHAPES),
        ("stages", Section::Stage, shape::STAGE_SHAPES),
        ("sinks", Section::Sink, shape::SINK_SHAPES),
    ] {
        let Some(n) = obj.get(key) else { continue };
        let Some(entries) = reader::entries(cx, n, &format!("`{key}`")) else { continue };
        for (cname, cname_node, body) in entries {
            if let Some(c) = component(cx, cname, cname_node.span, body, section, shapes) {
                components.push(c);
            }
        }
    }
    let file_target = |cx: &mut Cx, key: &str| {
        let n = obj.get(key)?;
        let o = reader::object(cx, n, &shape::FILE_TARGET, &format!("`{key}`"))?;
        o.get("path").and_then(|p| reader::string(cx, p, "`path`"))
    };
    let mut dlq_key = None;
    let mut dlq_plaintext_reason = None;
    let mut dlq_store: Option<Spanned> = None;
    let dlq = obj.get("dlq").and_then(|n| reader::object(cx, n, &shape::DLQ_TARGET, "`dlq`")).and_then(|o| {
        dlq_key = o.get("encryption_key").and_then(|n| reader::secret(cx, n, "`encryption_key`"));
        if let Some(reason) = o.get("plaintext_reason").and_then(|n| reader::string(cx, n, "`plaintext_reason`")) {
            if dlq_key.is_some() {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, "`dlq` has both `encryption_key` and `plaintext_reason`")
                        .label(reason.span, "the raw messages cannot be both encrypted and kept in plain text")
                        .help("keep `encryption_key` (recommended) or `plaintext_reason`, not both"),
                );
            } else if reason.text.trim().is_empty() {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, "`plaintext_reason` is empty")
                        .label(reason.span, "say why the raw messages may stay unencrypted")
                        .help("for example `plaintext_reason: synthetic test data, never real patients`"),
                );
            } else {
                dlq_plaintext_reason = Some(reason.text);
            }
        }
        let path = o.get("path").and_then(|p| reader::string(cx, p, "`path`"));
        let store = o.get("store").and_then(|s| reader::string(cx, s, "`store`"));
        match (&path, store) {
            (Some(_), Some(store)) => cx.push(
                Diagnostic::error(codes::DLQ_LOCATION_CHOICE, "`dlq` has both `path` and `store`")
                    .label(store.span, "the state store here, and a file in `path`")
                    .help("keep `path: out/dlq.jsonl` for a JSON Lines file, or `store: state` for the state store, not both"),
            ),
            (None, None) => cx.push(
                Diagnostic::error(codes::DLQ_LOCATION_CHOICE, "`dlq` has neither `path` nor `store`")
                    .label(o.anchor(), "where do rejected records go?")
                    .help("add `path: out/dlq.jsonl` (a JSON Lines file) or `store: state` (the pipeline's state store)"),
            ),
            (None, Some(store)) => dlq_store = Some(store),
            (Some(_), None) => {}
        }
        path
    });
    let audit = file_target(cx, "audit");
    let mut checkpoint_every_ms = DEFAULT_CHECKPOINT_EVERY_MS;
    let mut state_url = None;
    let state =
        obj.get("state").and_then(|n| reader::object(cx, n, &shape::STATE, "`state`")).and_then(|o| {
            if let Some(every) = o.get("checkpoint_every").and_then(|n| reader::duration(cx, n, "`checkpoint_every`")) {
                checkpoint_every_ms = every;
            }
            let path = o.get("path").and_then(|p| reader::string(cx, p, "`path`"));
            let url = o.get("url").and_then(|u| reader::string(cx, u, "`url`"));
            let kind = o.get("type").and_then(|t| t.as_str());
            match (&path, &url) {
            (Some(_), Some(u)) => cx.push(
                Diagnostic::error(codes::STATE_STORE_CHOICE, "`state` has both `path` and `url`")
                    .label(u.span, "a PostgreSQL store here, and a SQLite file in `path`")
                    .help("keep `path` for SQLite (one machine) or `url` for PostgreSQL (several instances), not both"),
            ),
            (None, None) => cx.push(
                Diagnostic::error(codes::STATE_STORE_CHOICE, "`state` has neither `path` nor `url`")
                    .label(o.anchor(), "which store?")
                    .help("add `path: out/state.db` (SQLite) or `url: ${SLUICE_STATE_URL}` (PostgreSQL)"),
            ),
            (Some(p), None) if kind == Some("postgres") => cx.push(
                Diagnostic::error(codes::STATE_STORE_CHOICE, "`state` says `type: postgres` and names a SQLite `path`")
                    .label(p.span, "a SQLite file")
                    .help("give the PostgreSQL store as `url: ${SLUICE_STATE_URL}`, or remove `type`"),
            ),
            (None, Some(u)) if kind == Some("sqlite") => cx.push(
                Diagnostic::error(codes::STATE_STORE_CHOICE, "`state` says `type: sqlite` and names a PostgreSQL `url`")
                    .label(u.span, "a PostgreSQL store")
                    .help("give the SQLite file as `path: out/state.db`, or remove `type`"),
            ),
            (None, Some(u)) => {
                if o.get("url").is_some_and(|node| state_url_ok(cx, node, u)) {
                    state_url = Some(u.clone());
                }
            }
            (Some(_), None) => {}
        }
            if url.is_some() { None } else { path }
        });
    if state.is_none() && state_url.is_none() {
        shared_throttles_need_state(cx, obj.get("sinks"), obj.get("defaults"));
        if let Some(store) = &dlq_store
            && obj.get("state").is_none()
        {
            cx.push(
                Diagnostic::error(codes::DLQ_STORE_WITHOUT_STATE, "`dlq: {store: state}` needs a state store")
                    .label(store.span, "the DLQ would be kept in the state store, and the pipeline has none")
                    .help(
                        "add `state: {path: out/state.db}` (or `state: {url: ${SLUICE_STATE_URL}}`), or keep the DLQ \
                         in a file with `path: out/dlq.jsonl`",
                    ),
            );
        }
    }
    let defaults = obj.get("defaults").map(|n| defaults(cx, n)).unwrap_or_else(default_defaults);
    for c in &mut components {
        if let Body::Http(h) = &mut c.body {
            h.retry_plan = h.retry.over(&defaults.retry);
            if h.throttle.is_none() {
                h.throttle.clone_from(&defaults.throttle);
            }
        }
        if let Body::FhirRest(f) = &mut c.body {
            f.retry_plan = Some(f.retry.over(&defaults.retry));
            if f.throttle.is_none() {
                f.throttle.clone_from(&defaults.throttle);
            }
        }
    }
    shared_rates_agree(cx, &components);
    let fail_if = obj.get("fail_if").and_then(|n| reader::string(cx, n, "`fail_if`")).and_then(|s| {
        let parsed = parse_fail_if(&s.text);
        if parsed.is_none() {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a valid `fail_if`", s.text.trim()))
                    .label(s.span, "expected `error_rate > P% over N records`")
                    .help(
                        "write it like `error_rate > 0.5% over 1000 records`: the run stops when more than 0.5% of \
                         the last 1000 records read went to the DLQ (P above 0 and below 100, N at least 1)",
                    ),
            );
        }
        parsed
    });
    Some(PipelineSpec {
        name,
        components,
        dlq,
        dlq_key,
        dlq_plaintext_reason,
        dlq_store,
        audit,
        state,
        state_url,
        checkpoint_every_ms,
        defaults,
        fail_if,
        roles: obj.get("roles").map(|n| super::roles::read(cx, n)).unwrap_or_default(),
        retention: obj.get("retention").and_then(|n| super::retention::read(cx, n)),
        connections: obj
            .get("connections")
            .map(|n| super::connections::read(cx, n, obj.get("state").is_some()))
            .unwrap_or_default(),
        phi_lenient: obj
            .get("phi_proof")
            .and_then(|n| reader::one_of(cx, n, &["strict", "lenient"], "`phi_proof`"))
            .filter(|s| s.text == "lenient")
            .map(|s| s.span),
        reconcile: obj.get("reconcile").map(|n| reconcile_steps(cx, n)).unwrap_or_default(),
    })
}

/// Checks `state.url`: a secret reference (checked when the run resolves it), or a PostgreSQL
/// URL without a password and without TLS.
fn state_url_ok(cx: &mut Cx, node: &Node, url: &Spanned) -> bool {
    if url.text.trim().starts_with("${") {
        return reader::secret(cx, node, "`url` of `state`").is_some();
    }
    let diag = match pg_url::check(&url.text, false) {
        Ok(()) => return true,
        Err(pg_url::Problem::NotPostgres) => {
            Diagnostic::error(codes::INVALID_VALUE, "`url` of `state` is not a PostgreSQL URL")
                .label(url.span, "expected `postgres://user@host:port/database`")
                .help("write e.g. `postgres://sluice@127.0.0.1:5432/sluice_state`, or `${SLUICE_STATE_URL}` to read it from the environment")
        }
        Err(pg_url::Problem::Password) => {
            Diagnostic::error(codes::INLINE_SECRET, "the `url` of `state` holds a password")
                .label(url.span, "a secret value written into the spec")
                .help("write `url: ${SLUICE_STATE_URL}` and set `SLUICE_STATE_URL` (with the password) where Sluice runs")
        }
        Err(pg_url::Problem::SslMode(mode)) => {
            Diagnostic::error(codes::INVALID_VALUE, format!("`sslmode={mode}` is not supported"))
                .label(url.span, "Sluice connects to PostgreSQL without TLS")
                .help("use `sslmode=disable` (or leave it out) with a server on this machine or a private network")
        }
    };
    cx.push(diag);
    false
}

/// Sinks of one pipeline naming the same shared bucket must give it the same rate: the
/// bucket spaces each start by the interval of the sink taking it.
fn shared_rates_agree(cx: &mut Cx, components: &[ComponentSpec<'_>]) {
    let mut first: Vec<(&str, &ThrottlePlan, &str)> = Vec::new();
    for c in components {
        let Body::Http(h) = &c.body else { continue };
        let Some(t) = &h.throttle else { continue };
        let Some(name) = &t.shared else { continue };
        match first.iter().find(|(n, _, _)| n == name) {
            None => first.push((name, t, &c.name)),
            Some((_, t0, sink0)) => {
                let same = u128::from(t.permits) * u128::from(t0.per_seconds)
                    == u128::from(t0.permits) * u128::from(t.per_seconds);
                if !same {
                    cx.push(
                        Diagnostic::error(
                            codes::INVALID_VALUE,
                            format!("sink `{}` shares the throttle `{name}` at another rate than sink `{sink0}`", c.name),
                        )
                        .label(c.name_span, format!("{}/{}s here, {}/{}s there", t.permits, t.per_seconds, t0.permits, t0.per_seconds))
                        .help("give every sink sharing a bucket the same `rate` (or `defaults.throttle`), or name different buckets"),
                    );
                }
            }
        }
    }
}

/// Reports each `throttle.shared` (of a sink or of `defaults`) in a pipeline without a state
/// store: the shared bucket lives there.
fn shared_throttles_need_state(cx: &mut Cx, sinks: Option<&Node>, defaults: Option<&Node>) {
    fn get<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
        match &node.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }
    let mut throttles: Vec<&Node> = defaults.and_then(|d| get(d, "throttle")).into_iter().collect();
    if let Some(Value::Map(entries)) = sinks.map(|n| &n.value) {
        throttles.extend(entries.iter().filter_map(|(_, body)| get(body, "throttle")));
    }
    for shared in throttles.into_iter().filter_map(|t| get(t, "shared")) {
        cx.push(
            Diagnostic::error(codes::SHARED_THROTTLE_WITHOUT_STATE, "a shared throttle needs a state store")
                .label(shared.span, "this bucket would be kept in the state store, and the pipeline has none")
                .help("add `state: {path: out/state.db}` (or `state: {url: ${SLUICE_STATE_URL}}`), or remove `shared`"),
        );
    }
}

pub fn default_defaults() -> Defaults {
    Defaults {
        batch_size: 256,
        retry: RetryPlan {
            max_attempts: 3,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
            max_elapsed_ms: crate::plan::DEFAULT_MAX_ELAPSED_MS,
        },
        throttle: None,
        workers: None,
    }
}

fn defaults(cx: &mut Cx, node: &Node) -> Defaults {
    let mut d = default_defaults();
    let Some(obj) = reader::object(cx, node, &shape::DEFAULTS, "`defaults`") else { return d };
    if let Some(b) = obj.get("batch_size").and_then(|n| reader::integer(cx, n, "`batch_size`")) {
        if b == 0 {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, "`batch_size` must be at least 1")
                    .label(obj.get("batch_size").map_or(obj.anchor(), |n| n.span), "zero")
                    .help("the default is 256"),
            );
        } else {
            d.batch_size = b as usize;
        }
    }
    if let Some(w) = obj.get("workers").and_then(|n| reader::integer(cx, n, "`workers`")) {
        if w == 0 {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, "`workers` must be at least 1")
                    .label(obj.get("workers").map_or(obj.anchor(), |n| n.span), "zero")
                    .help("leave it out for one worker per core"),
            );
        } else {
            d.workers = Some(w as usize);
        }
    }
    if let Some(n) = obj.get("retry") {
        d.retry = retry_keys(cx, n).over(&d.retry);
    }
    if let Some(n) = obj.get("throttle") {
        d.throttle = throttle(cx, n);
    }
    d
}

/// The keys of `format: fhir` and `format: x12` sources (`files` and bus sources alike):
/// `resource_types`, `guides`, `mode` (no `acks`: only `files` sources write them).
pub fn format_keys(cx: &mut Cx, obj: &reader::Obj<'_>, format: &str) -> (Option<FhirFiles>, Option<X12Files>) {
    let mode = |cx: &mut Cx| {
        obj.get("mode")
            .and_then(|n| reader::one_of(cx, n, shape::MODES, "validation mode"))
            .map_or(Mode::Strict, |m| if m.text == "lenient" { Mode::Lenient } else { Mode::Strict })
    };
    let fhir = (format == "fhir").then(|| FhirFiles {
        resource_types: obj
            .get("resource_types")
            .map(|n| reader::string_list(cx, n, "`resource_types`", false))
            .unwrap_or_default(),
        mode: mode(cx),
    });
    let x12 = (format == "x12").then(|| X12Files {
        guides: obj.get("guides").map(|n| reader::string_list(cx, n, "`guides`", false)).unwrap_or_default(),
        mode: mode(cx),
        acks: None,
    });
    (fhir, x12)
}

fn component<'n>(
    cx: &mut Cx,
    name: &str,
    name_span: Span,
    node: &'n Node,
    section: Section,
    shapes: &[&Shape],
) -> Option<ComponentSpec<'n>> {
    let what = format!("`{name}`");
    let entries = reader::entries(cx, node, &what)?;
    let tags: Vec<&str> = shapes.iter().filter_map(|s| s.type_tag).collect();
    let Some((_, _, type_node)) = entries.iter().find(|(k, _, _)| *k == "type") else {
        cx.push(
            Diagnostic::error(codes::MISSING_KEY, format!("{what} is missing the required key `type`"))
                .label(name_span, "add `type` here")
                .help(format!("`type` is one of: {}", tags.join(", "))),
        );
        return None;
    };
    let tag = reader::one_of(cx, type_node, &tags, &format!("{} type", section_name(section)))?;
    let shape = shapes.iter().find(|s| s.type_tag == Some(tag.text.as_str()))?;
    let obj = reader::object(cx, node, shape, &format!("{} `{name}`", section_name(section)))?;
    let inputs = match obj.get("inputs") {
        Some(n) if section != Section::Source => reader::string_list(cx, n, "`inputs`", true),
        Some(_) => {
            // Sources read from the outside world; the unknown-key check already said so.
            vec![]
        }
        None => vec![],
    };
    let s = |cx: &mut Cx, key: &str| obj.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let body = match tag.text.as_str() {
        "files" => {
            let format =
                obj.get("format").and_then(|f| reader::one_of(cx, f, &["hl7v2", "fhir", "x12"], "source format"));
            let format = format.map_or("hl7v2", |f| {
                if f.text == "fhir" {
                    "fhir"
                } else if f.text == "x12" {
                    "x12"
                } else {
                    "hl7v2"
                }
            });
            // Keys of one format only: (key, the formats it belongs to).
            let owned: [(&str, &[&str]); 4] =
                [("resource_types", &["fhir"]), ("mode", &["fhir", "x12"]), ("guides", &["x12"]), ("acks", &["x12"])];
            for (key, formats) in owned {
                if !formats.contains(&format)
                    && let Some(span) = obj.key_span(key)
                {
                    let want = formats.iter().map(|f| format!("`format: {f}`")).collect::<Vec<_>>().join(" or ");
                    cx.push(
                        Diagnostic::error(codes::UNKNOWN_KEY, format!("`{key}` is for {want} sources"))
                            .label(span, format!("not a key of an {format} files source"))
                            .help(format!("remove it, or write {want}")),
                    );
                }
            }
            let (fhir, x12) = format_keys(cx, &obj, format);
            let x12 = x12.map(|x| X12Files { acks: s(cx, "acks"), ..x });
            let (move_to, tag) = match obj.get("after") {
                Some(n) => after(cx, n),
                None => (None, None),
            };
            Body::Files {
                paths: obj.get("path").map(|n| reader::string_list(cx, n, "`path`", true)).unwrap_or_default(),
                profile: s(cx, "profile"),
                fhir,
                x12,
                store: store(cx, &obj),
                move_to,
                tag,
            }
        }
        "mllp" => Body::Mllp(Box::new(mllp(cx, &obj)?)),
        "fhir.rest" => Body::FhirRest(Box::new(crate::fhir_rest::source(cx, &obj)?)),
        "stripe" => Body::Stripe(Box::new(crate::stripe::source(cx, &obj)?)),
        "quickbooks" => Body::QuickBooks(Box::new(crate::quickbooks::source(cx, &obj)?)),
        "plaid" => Body::Plaid(Box::new(crate::plaid::source(cx, &obj)?)),
        "kafka" if section == Section::Source => Body::Kafka(Box::new(super::kafka::source(cx, &obj)?)),
        "kafka" => Body::KafkaSink(Box::new(super::kafka::sink(cx, &obj)?)),
        "amqp" if section == Section::Source => Body::Amqp(Box::new(super::amqp::source(cx, &obj)?)),
        "amqp" => Body::AmqpSink(Box::new(super::amqp::sink(cx, &obj)?)),
        "webhook" => Body::Webhook(Box::new(super::webhook::source(cx, &obj)?)),
        "validate" => Body::Validate {
            rules: s(cx, "rules")?,
            mode: obj
                .get("mode")
                .and_then(|n| reader::one_of(cx, n, shape::MODES, "validation mode"))
                .map(|m| if m.text == "lenient" { Mode::Lenient } else { Mode::Strict }),
        },
        "map" => Body::Map { mapping: s(cx, "mapping")? },
        "mask" => {
            let mut environments = Vec::new();
            if let Some(entries) = obj.get("environments").and_then(|n| reader::entries(cx, n, "`environments`")) {
                for (name, key, value) in entries {
                    if let Some(file) = reader::string(cx, value, &format!("the policy of environment `{name}`")) {
                        environments.push((Spanned { text: name.to_string(), span: key.span }, file));
                    }
                }
            }
            Body::Mask { policy: s(cx, "policy")?, environments }
        }
        "filter" => Body::Filter { keep: obj.get("keep")? },
        "route" => {
            let routes = obj
                .get("routes")
                .and_then(|n| reader::entries(cx, n, "`routes`"))
                .unwrap_or_default()
                .into_iter()
                .map(|(b, k, v)| (b.to_string(), k.span, v))
                .collect();
            Body::Route { routes, default: s(cx, "default") }
        }
        "http" => Body::Http(Box::new(http(cx, &obj)?)),
        "postgres" => Body::Postgres(Box::new(postgres(cx, &obj)?)),
        "csv" => Body::Csv { path: s(cx, "path")?, store: store(cx, &obj) },
        "parquet" => Body::Parquet(Box::new(parquet(cx, &obj)?)),
        _ => Body::Jsonl { path: s(cx, "path")?, store: store(cx, &obj) },
    };
    let inputs_span = obj.get("inputs").map(|n| n.span);
    let phi_allowed = obj.get("phi").and_then(|n| phi_allowed(cx, n, name));
    let audience = obj.get("audience").and_then(|n| reader::string(cx, n, "`audience`"));
    Some(ComponentSpec { name: name.to_string(), name_span, section, inputs, inputs_span, body, phi_allowed, audience })
}

/// A sink's `phi` object: the reason when `allowed` is true (SL607 without one).
fn phi_allowed(cx: &mut Cx, node: &Node, sink: &str) -> Option<(String, Span)> {
    let obj = reader::object(cx, node, &shape::SINK_PHI, "`phi`")?;
    let allowed = obj.get("allowed")?;
    if !reader::boolean(cx, allowed, "`allowed`")? {
        return None;
    }
    match obj.get("reason").and_then(|n| reader::string(cx, n, "`reason`")) {
        Some(r) if !r.text.trim().is_empty() => Some((r.text, allowed.span)),
        _ => {
            cx.push(
                Diagnostic::error(
                    codes::PHI_ALLOWED_WITHOUT_REASON,
                    format!("sink `{sink}` allows PHI without a reason"),
                )
                .label(allowed.span, "PHI allowed here")
                .help("write `phi: {allowed: true, reason: \"why this destination may hold PHI in clear\"}`"),
            );
            // The sink still counts as allowing PHI: the missing reason is the one error, not
            // every field that reaches it.
            Some((String::new(), allowed.span))
        }
    }
}

pub fn section_name(s: Section) -> &'static str {
    match s {
        Section::Source => "source",
        Section::Stage => "stage",
        Section::Sink => "sink",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn listen_addresses() {
        for ok in ["127.0.0.1:2575", "0.0.0.0:0", "[::1]:2575", "localhost:2575"] {
            assert!(super::valid_listen_address(ok), "{ok}");
        }
        for bad in ["example.org:2575", "127.0.0.1", "127.0.0.1:70000", "localhost", ":2575", "::1:2575"] {
            assert!(!super::valid_listen_address(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod fail_if_tests {
    use super::parse_fail_if;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_without_panic(text in "\\PC{0,60}") {
            if let Some(p) = parse_fail_if(&text) {
                prop_assert!(p.max_error_rate > 0.0 && p.max_error_rate < 1.0 && p.window >= 1);
            }
        }

        #[test]
        fn written_thresholds_read_back(percent in 1u32..9999, window in 1u64..1_000_000) {
            let text = format!("error_rate > {}.{:02}% over {window} records", percent / 100, percent % 100);
            let p = parse_fail_if(&text).unwrap();
            prop_assert!((p.max_error_rate * 100.0 - f64::from(percent) / 100.0).abs() < 1e-9);
            prop_assert_eq!(p.window, window);
        }
    }

    #[test]
    fn fail_if_grammar() {
        let p = parse_fail_if("error_rate > 0.5% over 1000 records").unwrap();
        assert_eq!((p.max_error_rate, p.window), (0.005, 1000));
        let p = parse_fail_if("  error_rate>2%   over 1 record ").unwrap();
        assert_eq!((p.max_error_rate, p.window), (0.02, 1));
        for bad in [
            "error_rate > 0.5%",
            "error_rate > 0.5% over 1000",
            "error_rate > 0% over 10 records",
            "error_rate > 100% over 10 records",
            "error_rate > 5 over 10 records",
            "error_rate < 5% over 10 records",
            "warning_rate > 5% over 10 records",
            "error_rate > 5% over 0 records",
            "error_rate > 5% over1000 records",
            "error_rate > 5% over 10 records please",
            "error_rate > -1% over 10 records",
        ] {
            assert!(parse_fail_if(bad).is_none(), "{bad}");
        }
    }
}
