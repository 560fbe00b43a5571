//! The `fhir.rest` source as written and as planned: incremental sync of clinical tables from
//! a FHIR R4 server's REST API (`GET [base]/[type]?_lastUpdated=gt...&_count=...`).
//!
//! This module reads and checks what is written (SL257-SL259, SL311); the driver
//! ([`crate::compile`]) builds the source's plan and its record flow (FHIR resources, as from
//! a `format: fhir` files source).
//!
//! Invariants:
//! - Tables come from one catalog ([`TABLES`]), the connector design's: a table name fixes
//!   its resource type and its ingestion (`cdc`: one row per id, upserted; `append`: every
//!   version added). Primary key `id`, cursor `meta.lastUpdated`, for every table.
//! - Credentials are only ever secret references (SL205): an API key, a basic password and a
//!   bearer token are resolved when the run starts and never sit in a plan.
//! - `base_url` is `http(s)://host[:port][/path]` without credentials, query or fragment, so
//!   the URL a plan or an error shows holds no secret (SL258).
//! - `auth: {type: oauth2, connection: NAME}` names a connection of the pipeline
//!   (`connections:`) that hands out OAuth access tokens (SL263, SL264), and an OAuth token
//!   is only sent over https or to a loopback address (SL265): the plan holds the name only.
//! - Deletions found in a cdc table's history are never written as if they were rows: every
//!   CSV or Parquet sink they can reach gets a `_deleted` column ([`mark_deletion_columns`]);
//!   JSON Lines, HTTP and Kafka sinks mark the record itself, a PostgreSQL upsert deletes.

use serde::{Deserialize, Serialize};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::spec::reader::{self, Cx, Spanned};
use crate::spec::shape::{Key, KeyType, Shape};

/// One table of the catalog: its name, FHIR resource type and ingestion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub resource_type: &'static str,
    pub ingestion: &'static str,
}

/// The tables a `fhir.rest` source can sync (the connector design's, plus `procedures`).
pub const TABLES: &[Table] = &[
    Table { name: "patients", resource_type: "Patient", ingestion: "cdc" },
    Table { name: "encounters", resource_type: "Encounter", ingestion: "cdc" },
    Table { name: "observations", resource_type: "Observation", ingestion: "append" },
    Table { name: "conditions", resource_type: "Condition", ingestion: "cdc" },
    Table { name: "medications", resource_type: "MedicationRequest", ingestion: "cdc" },
    Table { name: "procedures", resource_type: "Procedure", ingestion: "cdc" },
];

/// Auth kinds: `none`, `api_key`, `basic`, `bearer`, and `oauth2`: the access token of a
/// `connections:` entry (client credentials, or an authorization `sluice connect` made).
pub const AUTH_TYPES: &[&str] = &["none", "api_key", "basic", "bearer", "oauth2"];

/// `page_size` when not written (`_count`).
pub const DEFAULT_PAGE_SIZE: u64 = 100;
/// `overlap` when not written: how far before the cursor each sync asks again.
pub const DEFAULT_OVERLAP_MS: u64 = 5_000;
/// `timeout` when not written: one request.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: false, ty, doc }
}

pub static FHIR_REST_AUTH: Shape = Shape {
    name: "fhir.rest.auth",
    type_tag: None,
    doc: "How requests authenticate to the FHIR server. Every credential is a secret reference, resolved when the run starts and never printed.",
    keys: &[
        req(
            "type",
            KeyType::Enum(AUTH_TYPES),
            "`none`, `api_key` (a header), `basic`, `bearer`, or `oauth2` (the access token of a connection).",
        ),
        opt("header", KeyType::String, "`api_key`: the header carrying the key (default `X-API-Key`)."),
        opt("key", KeyType::Secret, "`api_key`: the key, as a secret reference (`${FHIR_API_KEY}`)."),
        opt("username", KeyType::String, "`basic`: the user name."),
        opt("password", KeyType::Secret, "`basic`: the password, as a secret reference."),
        opt("token", KeyType::Secret, "`bearer`: the access token, as a secret reference (`${FHIR_TOKEN}`)."),
        opt(
            "connection",
            KeyType::String,
            "`oauth2`: the pipeline's connection (`connections:`, `auth: client_credentials` or `authorization_code`) whose access token is sent as `Authorization: Bearer`; it is cached sealed in the state store, refreshed before it expires, and refreshed once on a 401.",
        ),
    ],
};

pub static SOURCE_FHIR_REST: Shape = Shape {
    name: "source.fhir.rest",
    type_tag: Some("fhir.rest"),
    doc: "Incremental sync from a FHIR R4 server's REST API: per table, `GET [base]/[type]?_lastUpdated=gt{cursor - overlap}&_count=N`, following `Bundle.link[next]`; resources already delivered (same id and versionId) are skipped. Each table's cursor (`meta.lastUpdated`) is saved in the state store only once every record of that sync is durable in the sinks or the DLQ, so a run that stops early loses nothing: the next one asks again. For cdc tables, resources deleted on the server are then found in `GET [base]/[type]/_history?_since=...` and delivered as deletion records: a `postgres` upsert sink deletes the row, `jsonl`, `http` and `kafka` sinks get the mapped record with `\"_deleted\": true` (a server without `_history`: RT121, once). The run ends when every table is synced.",
    keys: &[
        req("type", KeyType::Enum(&["fhir.rest"]), "Source kind."),
        req(
            "base_url",
            KeyType::String,
            "The server's FHIR base, `http(s)://host[:port][/path]` (no credentials, query or fragment).",
        ),
        req(
            "tables",
            KeyType::StringOrList,
            "Tables to sync: `patients` (Patient, cdc), `encounters` (Encounter, cdc), `observations` (Observation, append), `conditions` (Condition, cdc), `medications` (MedicationRequest, cdc), `procedures` (Procedure, cdc).",
        ),
        opt("page_size", KeyType::Integer, "Resources per page (`_count`, default 100)."),
        opt(
            "overlap",
            KeyType::Duration,
            "How far before the saved cursor each sync asks again (default `5s`): resources committed late with an earlier `lastUpdated` are still found; those already delivered are skipped by id and versionId.",
        ),
        opt("timeout", KeyType::Duration, "One request's time limit (default `30s`)."),
        opt("auth", KeyType::Object(&FHIR_REST_AUTH), "Authentication (default none)."),
        opt(
            "retry",
            KeyType::Object(&crate::spec::shape::RETRY),
            "Retry policy for 5xx, 408, 429 (after its `Retry-After`), timeouts and dropped connections; overrides `defaults.retry`.",
        ),
        opt(
            "throttle",
            KeyType::Object(&crate::spec::shape::THROTTLE),
            "Requests per unit of time to this server (`rate: 10/s`, optionally `shared:` across processes); overrides `defaults.throttle`.",
        ),
        opt(
            "mode",
            KeyType::Enum(crate::spec::shape::MODES),
            "`strict` (default): a resource that breaks R4 validation goes to the DLQ; `lenient`: unknown elements only warn.",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// A `fhir.rest` source as written.
#[derive(Debug)]
pub struct FhirRestSpec {
    pub base_url: Spanned,
    pub tables: Vec<&'static Table>,
    pub page_size: u64,
    pub overlap_ms: u64,
    pub timeout_ms: u64,
    pub auth: FhirAuthSpec,
    pub retry: crate::spec::pipeline::RetryKeys,
    /// `retry` over `defaults.retry`, set once the pipeline's defaults are read.
    pub retry_plan: Option<crate::plan::RetryPlan>,
    pub throttle: Option<crate::plan::ThrottlePlan>,
    pub lenient: bool,
}

/// `auth` as written (credentials as secret references).
#[derive(Debug, Clone)]
pub enum FhirAuthSpec {
    None,
    ApiKey { header: String, key: Spanned },
    Basic { username: String, password: Spanned },
    Bearer { token: Spanned },
    OAuth2 { connection: Spanned },
}

/// The plan of a `fhir.rest` source: what the runtime needs to sync, and nothing secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirRestPlan {
    /// Without a trailing `/`.
    pub base_url: String,
    pub tables: Vec<FhirTablePlan>,
    pub page_size: u64,
    pub overlap_ms: u64,
    pub timeout_ms: u64,
    pub auth: FhirAuthPlan,
    pub retry: crate::plan::RetryPlan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<crate::plan::ThrottlePlan>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirTablePlan {
    pub name: String,
    pub resource_type: String,
    /// `cdc` or `append`.
    pub ingestion: String,
}

/// Authentication, with every credential a secret reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FhirAuthPlan {
    None,
    ApiKey {
        header: String,
        key: String,
    },
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    /// The access token of connection `connection` (a name, never a token).
    #[serde(rename = "oauth2")]
    OAuth2 {
        connection: String,
    },
}

impl FhirAuthPlan {
    /// For `sluice plan`: the kind, never a secret.
    pub fn describe(&self) -> String {
        match self {
            FhirAuthPlan::None => "no auth".into(),
            FhirAuthPlan::ApiKey { header, .. } => format!("API key in `{header}`"),
            FhirAuthPlan::Basic { username, .. } => format!("basic auth as `{username}`"),
            FhirAuthPlan::Bearer { .. } => "bearer token".into(),
            FhirAuthPlan::OAuth2 { connection } => format!("OAuth2 token of connection `{connection}`"),
        }
    }
}

/// Whether `url` is a base URL the source accepts (see the module header).
pub fn valid_base_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")) else { return false };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty()
        && !rest.contains(['?', '#', '@', ' '])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

fn tables(cx: &mut Cx, obj: &reader::Obj<'_>) -> Vec<&'static Table> {
    let Some(node) = obj.get("tables") else { return Vec::new() };
    let written = reader::string_list(cx, node, "`tables`", true);
    if written.is_empty() {
        cx.push(
            Diagnostic::error(codes::FHIR_REST_TABLE, "`tables` is empty")
                .label(node.span, "no table to sync")
                .help("name at least one table: `tables: [patients, encounters]`"),
        );
    }
    let mut out: Vec<&'static Table> = Vec::new();
    for t in &written {
        match TABLES.iter().find(|k| k.name == t.text) {
            Some(k) if out.iter().any(|o| o.name == k.name) => cx.push(
                Diagnostic::error(codes::FHIR_REST_TABLE, format!("table `{}` is named twice", t.text))
                    .label(t.span, "already in `tables`")
                    .help("name each table once"),
            ),
            Some(k) => out.push(k),
            None => {
                let by_type = TABLES.iter().find(|k| k.resource_type == t.text);
                let help = match by_type
                    .map(|k| k.name)
                    .or_else(|| did_you_mean(&t.text, TABLES.iter().map(|k| k.name)))
                {
                    Some(best) => {
                        format!("did you mean `{best}`? Tables are named in lower case, after the resources they hold")
                    }
                    None => format!("the tables are: {}", TABLES.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")),
                };
                cx.push(
                    Diagnostic::error(
                        codes::FHIR_REST_TABLE,
                        format!("`{}` is not a table of the fhir.rest source", t.text),
                    )
                    .label(t.span, "not a known table")
                    .help(help),
                );
            }
        }
    }
    out
}

fn auth(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<FhirAuthSpec> {
    let Some(node) = obj.get("auth") else { return Some(FhirAuthSpec::None) };
    let a = reader::object(cx, node, &FHIR_REST_AUTH, "`auth`")?;
    let kind = a.get("type").and_then(|n| reader::one_of(cx, n, AUTH_TYPES, "auth type"))?;
    let secret = |cx: &mut Cx, key: &str| a.get(key).and_then(|n| reader::secret(cx, n, &format!("`{key}`")));
    let string = |cx: &mut Cx, key: &str| a.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    // The keys each type reads; any other key written is a mistake worth saying.
    let (needs, allowed): (&[&str], &[&str]) = match kind.text.as_str() {
        "api_key" => (&["key"], &["header", "key"]),
        "basic" => (&["username", "password"], &["username", "password"]),
        "bearer" => (&["token"], &["token"]),
        "oauth2" => (&["connection"], &["connection"]),
        _ => (&[], &[]),
    };
    for key in ["header", "key", "username", "password", "token", "connection"] {
        if !allowed.contains(&key)
            && let Some(span) = a.key_span(key)
        {
            cx.push(
                Diagnostic::error(codes::FHIR_REST_AUTH, format!("`{key}` is not read by auth type `{}`", kind.text))
                    .label(span, "ignored by this auth type")
                    .label(kind.span, "the auth type")
                    .help("`api_key` reads `header` and `key`; `basic` reads `username` and `password`; `bearer` reads `token`; `oauth2` reads `connection`"),
            );
            return None;
        }
    }
    if let Some(missing) = needs.iter().find(|k| a.key_span(k).is_none()) {
        cx.push(
            Diagnostic::error(codes::FHIR_REST_AUTH, format!("auth type `{}` needs `{missing}`", kind.text))
                .label(kind.span, format!("add `{missing}` beside it"))
                .help(if kind.text == "oauth2" {
                    "name one of the pipeline's `connections:`: `auth: {type: oauth2, connection: ehr_oauth}`"
                } else {
                    "credentials are secret references: `key: ${FHIR_API_KEY}`, `password: ${FHIR_PASSWORD}`, `token: ${FHIR_TOKEN}`"
                }),
        );
        return None;
    }
    Some(match kind.text.as_str() {
        "api_key" => {
            let header = string(cx, "header").map_or_else(|| "X-API-Key".to_string(), |h| h.text);
            FhirAuthSpec::ApiKey { header, key: secret(cx, "key")? }
        }
        "basic" => FhirAuthSpec::Basic { username: string(cx, "username")?.text, password: secret(cx, "password")? },
        "bearer" => FhirAuthSpec::Bearer { token: secret(cx, "token")? },
        "oauth2" => FhirAuthSpec::OAuth2 { connection: string(cx, "connection")? },
        _ => FhirAuthSpec::None,
    })
}

/// Reads a `fhir.rest` source.
pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<FhirRestSpec> {
    let base_url = obj.get("base_url").and_then(|n| reader::string(cx, n, "`base_url`"));
    if let Some(u) = &base_url
        && !valid_base_url(&u.text)
    {
        cx.push(
            Diagnostic::error(codes::FHIR_REST_URL, "`base_url` is not a FHIR base URL Sluice can use")
                .label(u.span, "expected http(s)://host[:port][/path]")
                .help("write the server's FHIR base without credentials, query or fragment, e.g. `https://ehr.example.org/fhir/r4`; put credentials under `auth`"),
        );
    }
    let tables = tables(cx, obj);
    let page_size = match obj.get("page_size") {
        Some(n) => match reader::integer(cx, n, "`page_size`") {
            Some(0) => {
                cx.push(
                    Diagnostic::error(codes::INVALID_VALUE, "`page_size` must be at least 1")
                        .label(n.span, "zero")
                        .help("leave it out for 100 resources a page"),
                );
                DEFAULT_PAGE_SIZE
            }
            Some(v) => v,
            None => DEFAULT_PAGE_SIZE,
        },
        None => DEFAULT_PAGE_SIZE,
    };
    let overlap_ms =
        obj.get("overlap").and_then(|n| reader::duration(cx, n, "`overlap`")).unwrap_or(DEFAULT_OVERLAP_MS);
    let timeout_ms =
        obj.get("timeout").and_then(|n| reader::duration(cx, n, "`timeout`")).unwrap_or(DEFAULT_TIMEOUT_MS);
    let retry = obj.get("retry").map(|n| crate::spec::pipeline::retry_keys(cx, n)).unwrap_or_default();
    let throttle = obj.get("throttle").and_then(|n| crate::spec::pipeline::throttle(cx, n));
    let lenient = obj
        .get("mode")
        .and_then(|n| reader::one_of(cx, n, crate::spec::shape::MODES, "validation mode"))
        .is_some_and(|m| m.text == "lenient");
    // What is wrong was said above; the component still exists, so that the stages reading it
    // are not reported as reading nothing.
    let auth = auth(cx, obj).unwrap_or(FhirAuthSpec::None);
    Some(FhirRestSpec {
        base_url: base_url?,
        tables,
        page_size,
        overlap_ms,
        timeout_ms,
        auth,
        retry,
        retry_plan: None,
        throttle,
        lenient,
    })
}

/// Checks a source's `auth: {type: oauth2, connection}` against the pipeline's connections:
/// the connection exists (SL263), hands out OAuth access tokens for a FHIR server (SL264),
/// and the token goes over https or to a loopback address only (SL265).
pub fn check_connection(
    spec: &FhirRestSpec,
    connections: &[crate::spec::connections::ConnectionSpec],
) -> Option<Diagnostic> {
    let FhirAuthSpec::OAuth2 { connection } = &spec.auth else { return None };
    let Some(conn) = connections.iter().find(|c| c.plan.name == connection.text) else {
        let names: Vec<&str> = connections.iter().map(|c| c.plan.name.as_str()).collect();
        let help = match did_you_mean(&connection.text, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None if names.is_empty() => "declare it under `connections:` in this pipeline: `connections: {ehr_oauth: {provider: oauth2, auth: client_credentials, client_id: ..., client_secret: ${FHIR_CLIENT_SECRET}, token_url: https://..., token_key: ${SLUICE_TOKEN_KEY}}}`".to_string(),
            None => format!("the pipeline's connections are: {}", names.join(", ")),
        };
        return Some(
            Diagnostic::error(
                codes::FHIR_REST_CONNECTION_UNKNOWN,
                format!("the pipeline has no connection `{}`", connection.text),
            )
            .label(connection.span, "not under `connections:`")
            .help(help),
        );
    };
    let plan = &conn.plan;
    if plan.auth == "api_key" || plan.provider != "oauth2" {
        let why = if plan.auth == "api_key" {
            "an `api_key` connection holds a financial API's secret key, not an OAuth access token".to_string()
        } else {
            format!(
                "a `{}` connection's tokens are for the {} API, not for a FHIR server",
                plan.provider, plan.provider
            )
        };
        return Some(
            Diagnostic::error(
                codes::FHIR_REST_CONNECTION_KIND,
                format!("connection `{}` cannot authenticate a FHIR server", connection.text),
            )
            .label(connection.span, why)
            .label(conn.span, "declared here")
            .help("use a `provider: oauth2` connection with `auth: client_credentials` (or `authorization_code` after `sluice connect`); for a static key use the source's `auth: {type: api_key}` or `{type: bearer}`"),
        );
    }
    if !crate::plan::connection::url_allowed(&spec.base_url.text) {
        return Some(
            Diagnostic::error(
                codes::FHIR_REST_TOKEN_IN_CLEAR,
                "an OAuth access token would be sent over plain http to another machine",
            )
            .label(spec.base_url.span, "http:// to a host that is not this machine")
            .label(connection.span, "sends this connection's access token")
            .help("use the server's https:// base URL (plain http is accepted only to 127.0.0.1, localhost or [::1])"),
        );
    }
    None
}

/// The plan of a source read by [`source`] (its `retry_plan` set from the defaults).
pub fn plan(spec: &FhirRestSpec) -> FhirRestPlan {
    FhirRestPlan {
        base_url: spec.base_url.text.trim_end_matches('/').to_string(),
        tables: spec
            .tables
            .iter()
            .map(|t| FhirTablePlan {
                name: t.name.into(),
                resource_type: t.resource_type.into(),
                ingestion: t.ingestion.into(),
            })
            .collect(),
        page_size: spec.page_size,
        overlap_ms: spec.overlap_ms,
        timeout_ms: spec.timeout_ms,
        auth: match &spec.auth {
            FhirAuthSpec::None => FhirAuthPlan::None,
            FhirAuthSpec::ApiKey { header, key } => {
                FhirAuthPlan::ApiKey { header: header.clone(), key: key.text.clone() }
            }
            FhirAuthSpec::Basic { username, password } => {
                FhirAuthPlan::Basic { username: username.clone(), password: password.text.clone() }
            }
            FhirAuthSpec::Bearer { token } => FhirAuthPlan::Bearer { token: token.text.clone() },
            FhirAuthSpec::OAuth2 { connection } => FhirAuthPlan::OAuth2 { connection: connection.text.clone() },
        },
        retry: spec
            .retry_plan
            .clone()
            .unwrap_or_else(|| spec.retry.over(&crate::spec::pipeline::default_defaults().retry)),
        throttle: spec.throttle.clone(),
    }
}

/// The lines `sluice plan` shows for a `fhir.rest` source (no secret).
pub fn render(o: &mut String, r: &FhirRestPlan) {
    use std::fmt::Write;
    let tables: Vec<String> =
        r.tables.iter().map(|t| format!("{} ({}, {})", t.name, t.resource_type, t.ingestion)).collect();
    let throttle =
        r.throttle.as_ref().map_or_else(String::new, |t| format!(", throttle {}/{} s", t.permits, t.per_seconds));
    let _ = writeln!(
        o,
        "    fhir.rest sync {} from {} ({}), _count {}, overlap {} ms, timeout {} ms, {} attempts{throttle}",
        tables.join(", "),
        r.base_url,
        r.auth.describe(),
        r.page_size,
        r.overlap_ms,
        r.timeout_ms,
        r.retry.max_attempts,
    );
    let _ = writeln!(
        o,
        "    each table's cursor (meta.lastUpdated) saved in the state store once every record fetched is durable"
    );
}

/// Gives every CSV or Parquet sink that records of a cdc `fhir.rest` table can reach (through
/// any stages) the boolean column `_deleted`, so a deletion's row is told from a resource's.
/// `components` are in the pipeline's topological order, as the driver builds them.
pub fn mark_deletion_columns(components: &mut [crate::plan::Component]) {
    use crate::plan::ComponentKind;
    let mut reached: std::collections::HashSet<String> = std::collections::HashSet::new();
    for c in components.iter_mut() {
        let deletes = match &c.kind {
            ComponentKind::Source(s) => {
                s.fhir_rest.as_ref().is_some_and(|f| f.tables.iter().any(|t| t.ingestion == "cdc"))
            }
            _ => c.inputs.iter().any(|i| reached.contains(&i.component)),
        };
        if !deletes {
            continue;
        }
        reached.insert(c.name.clone());
        if let ComponentKind::Sink(sink) = &mut c.kind {
            let columns = match (&mut sink.csv, &mut sink.parquet) {
                (Some(csv), _) => &mut csv.columns,
                (_, Some(parquet)) => &mut parquet.columns,
                _ => continue,
            };
            columns.push(crate::plan::pg_table::deleted_column());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for ok in ["http://127.0.0.1:8080", "https://ehr.example.org/fhir/r4", "http://[::1]:8080/"] {
            assert!(valid_base_url(ok), "{ok}");
        }
        for bad in ["ftp://x", "http://", "https://u:p@h/fhir", "http://h/fhir?x=1", "http://h/#a", "h:80"] {
            assert!(!valid_base_url(bad), "{bad}");
        }
    }

    #[test]
    fn the_catalog_names_each_table_once_with_an_r4_resource_type() {
        for t in TABLES {
            assert_eq!(TABLES.iter().filter(|o| o.name == t.name).count(), 1);
            assert!(crate::fhir::resource_type(t.resource_type).is_some(), "{}", t.resource_type);
            assert!(matches!(t.ingestion, "cdc" | "append"));
        }
    }
}
