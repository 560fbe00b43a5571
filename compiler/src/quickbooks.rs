//! The `quickbooks` source as written and as planned, and QuickBooks entity paths in mappings.
//!
//! A `quickbooks` source reads one QuickBooks Online company (`realm_id`) through a connection
//! of the pipeline (`connections:`, `provider: quickbooks`, OAuth through `sluice connect`),
//! one entity a record: the query endpoint (`SELECT * FROM Purchase WHERE
//! MetaData.LastUpdatedTime >= '...'`, paged with `STARTPOSITION`/`MAXRESULTS`) and, once a
//! cursor is recent enough, the change data capture endpoint (`/cdc`), which also reports
//! deletions. This module reads and checks what is written (SL278-SL284); the driver
//! ([`crate::compile`]) builds the plan and the record flow (`quickbooks/<Entity>` records).
//!
//! Mappings with `input: {schema: quickbooks/<Entity>}` (`quickbooks/Purchase`) read entities
//! with dotted paths as the API's JSON writes them (`TotalAmt`, `CurrencyRef.value`,
//! `Line[*].Amount`): [`QuickBooksEnv::resolve`] checks each against
//! `sluice_finance::quickbooks` (SL440, did-you-mean at the exact characters) and gives its type
//! and PII class, which feeds the PHI-flow proof.
//!
//! Invariants:
//! - The plan holds the connection's name and the company id, never a token; the base URL
//!   holds no credentials, and a token goes over plain http only to this machine (SL281).
//! - The published limits are the ceiling: a `rate` above 500 requests a minute per company is
//!   refused (SL284), so a source never gets a company throttled by configuration.
//! - Diagnostics quote only what the spec wrote (entity names, paths), never data.

use serde::{Deserialize, Serialize};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::source::Span;
use crate::spec::reader::{self, Cx, Spanned};
use crate::spec::shape::{Key, KeyType, Shape};
use crate::yaml::Value;

/// The schema prefix of QuickBooks records and mappings: `quickbooks/Purchase`.
pub const SCHEMA_PREFIX: &str = "quickbooks/";
/// `base_url` when not written: QuickBooks Online's production API.
pub const DEFAULT_BASE_URL: &str = "https://quickbooks.api.intuit.com";
/// `lookback` when not written: how far before the cursor each sync asks again.
pub const DEFAULT_LOOKBACK_S: u64 = 600;
/// The `minorversion` asked for when not written.
pub const DEFAULT_MINOR_VERSION: u64 = 75;
/// The most a query page may hold (QuickBooks' `MAXRESULTS` ceiling), and the default.
pub const MAX_PAGE: u64 = 1000;
/// QuickBooks' published throttle: 500 requests a minute per company (realm).
pub const PUBLISHED_RATE: (u64, u64) = (500, 60);

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: false, ty, doc }
}

pub static SOURCE_QUICKBOOKS: Shape = Shape {
    name: "source.quickbooks",
    type_tag: Some("quickbooks"),
    doc: "Incremental sync of a QuickBooks Online company's entities: per entity, `SELECT * FROM <Entity> WHERE MetaData.LastUpdatedTime >= '{cursor - lookback}' ORDERBY MetaData.LastUpdatedTime STARTPOSITION n MAXRESULTS m` on the query endpoint, each next page from the newest `MetaData.LastUpdatedTime` read (an entity saved while the sync pages moves to the end of that order and, by position, would push another out of sight; by position only within one second holding a page or more, with overlapping pages); once a cursor is younger than QuickBooks' 30-day CDC window, the change data capture endpoint (`/cdc?entities=<Entity>&changedSince=...`) instead, whose deleted entities (`status: Deleted`) become deletion records (a `postgres` sink with `write: upsert` deletes the row by its key, an `append` one leaves them out; other sinks get `\"_deleted\": true`). Entities already delivered with the same `Id` and `SyncToken` within the lookback window are skipped. One record per entity (`quickbooks/<Entity>`: read by a map stage whose mapping has `input: {schema: quickbooks/<Entity>}`). Each entity's cursor (the newest `MetaData.LastUpdatedTime` delivered) is saved in the state store only once every record of that sync is durable in the sinks or the DLQ. Requests are spaced at QuickBooks' published limit (500 a minute per company, one at a time); 429 and 5xx are retried with backoff; a 401 refreshes the connection's token once.",
    keys: &[
        req("type", KeyType::Enum(&["quickbooks"]), "Source kind."),
        req(
            "connection",
            KeyType::String,
            "The pipeline's connection (`connections:`, `provider: quickbooks`, authorized once with `sluice connect NAME PIPELINE`) the requests authenticate with; its tokens are refreshed before expiry and on 401.",
        ),
        req(
            "realm_id",
            KeyType::String,
            "The QuickBooks company id (the `realmId` QuickBooks gives when the company is connected): digits only.",
        ),
        req(
            "entities",
            KeyType::StringOrList,
            "Entities to sync, as the API names them: `Account`, `Bill`, `BillPayment`, `CreditMemo`, `Deposit`, `Invoice`, `JournalEntry`, `Payment`, `Purchase`, `RefundReceipt`, `SalesReceipt`, `Transfer`, `VendorCredit`. A map stage reads one entity: use one source per entity when you map several.",
        ),
        opt(
            "lookback",
            KeyType::Duration,
            "How far before the saved cursor each sync asks again (default `10m`): an entity saved in QuickBooks while the last sync ran is still delivered, once (entities already delivered with the same `Id` and `SyncToken` are skipped).",
        ),
        opt(
            "cdc",
            KeyType::Bool,
            "Whether incremental runs use the change data capture endpoint, which also reports deletions (default `true`). The first run, and any run whose cursor is older than QuickBooks' 30-day CDC window, uses the query endpoint.",
        ),
        opt(
            "page_size",
            KeyType::Integer,
            "`MAXRESULTS` of each query page, 1 to 1000 (default 1000, QuickBooks' ceiling).",
        ),
        opt("minorversion", KeyType::Integer, "The API minor version asked for with every request (default 75)."),
        opt(
            "base_url",
            KeyType::String,
            "The API's base URL (default `https://quickbooks.api.intuit.com`; `https://sandbox-quickbooks.api.intuit.com` for a sandbox company); `http://` only to this machine (a local test server).",
        ),
        opt(
            "rate",
            KeyType::String,
            "Requests per unit of time (`100/min`); default and ceiling QuickBooks' published limit, 500 a minute per company.",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// A `quickbooks` source as written.
#[derive(Debug)]
pub struct QuickBooksSpec {
    pub connection: Spanned,
    pub realm_id: Spanned,
    /// The entities, in the order written.
    pub entities: Vec<&'static str>,
    pub lookback_s: u64,
    pub cdc: bool,
    pub page_size: u64,
    pub minor_version: u64,
    pub base_url: Option<Spanned>,
    pub rate: Option<(u64, u64)>,
}

/// The plan of a `quickbooks` source: what the runtime reads, and nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuickBooksPlan {
    /// The connection's name.
    pub connection: String,
    pub realm_id: String,
    pub entities: Vec<String>,
    pub lookback_s: u64,
    pub cdc: bool,
    pub page_size: u64,
    pub minor_version: u64,
    /// Without a trailing `/`.
    pub base_url: String,
    /// (permits, seconds); `None`: QuickBooks' published limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<(u64, u64)>,
}

fn entities(cx: &mut Cx, obj: &reader::Obj<'_>) -> Vec<&'static str> {
    let Some(node) = obj.get("entities") else { return Vec::new() };
    let written = reader::string_list(cx, node, "`entities`", true);
    if written.is_empty() {
        cx.push(
            Diagnostic::error(codes::QUICKBOOKS_ENTITY, "`entities` is empty")
                .label(node.span, "no entity to sync")
                .help("name at least one entity: `entities: [Purchase]`"),
        );
    }
    let mut out: Vec<&'static str> = Vec::new();
    for w in &written {
        match sluice_finance::quickbooks::entity(&w.text) {
            Some(e) if out.contains(&e) => cx.push(
                Diagnostic::error(codes::QUICKBOOKS_ENTITY, format!("entity `{}` is named twice", w.text))
                    .label(w.span, "already in `entities`")
                    .help("name each entity once"),
            ),
            Some(e) => out.push(e),
            None => {
                let known = sluice_finance::quickbooks::ENTITIES;
                // Case or plural slips (`purchases`, `journal_entry`) are the likely ones.
                let folded = w.text.to_ascii_lowercase().replace('_', "");
                let by_case = known.iter().copied().find(|e| {
                    let e = e.to_ascii_lowercase();
                    folded == e || folded.strip_suffix('s') == Some(e.as_str()) || folded == format!("{e}es")
                });
                let help = match by_case.or_else(|| did_you_mean(&w.text, known.iter().copied())) {
                    Some(best) => {
                        format!("did you mean `{best}`? Entities are named as in the API (`SELECT * FROM {best}`)")
                    }
                    None => format!("the entities are: {}", known.join(", ")),
                };
                cx.push(
                    Diagnostic::error(
                        codes::QUICKBOOKS_ENTITY,
                        format!("`{}` is not an entity a quickbooks source reads", w.text),
                    )
                    .label(w.span, "not a known entity")
                    .help(help),
                );
            }
        }
    }
    out
}

/// `realm_id`, written as a number or a string: digits only (SL283).
fn realm_id(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<Spanned> {
    let node = obj.get("realm_id")?;
    let text = match &node.value {
        Value::Int(i) if *i >= 0 => i.to_string(),
        _ => reader::string(cx, node, "`realm_id`")?.text,
    };
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_digit()) {
        cx.push(
            Diagnostic::error(codes::QUICKBOOKS_REALM, "`realm_id` is not a QuickBooks company id")
                .label(node.span, "expected the company's digits, e.g. `9130348651845276`")
                .help("copy the company's `realmId`: `sluice connect` prints it (`the provider also returned realmId=...`), and QuickBooks shows it as the Company ID in the company's settings"),
        );
        return None;
    }
    Some(Spanned { text, span: node.span })
}

/// An integer key within `range` (SL284 outside it).
fn bounded(
    cx: &mut Cx,
    obj: &reader::Obj<'_>,
    key: &str,
    range: std::ops::RangeInclusive<u64>,
    help: &str,
) -> Option<u64> {
    let node = obj.get(key)?;
    let n = reader::integer(cx, node, &format!("`{key}`"))?;
    if !range.contains(&n) {
        cx.push(
            Diagnostic::error(
                codes::QUICKBOOKS_SYNC_OPTION,
                format!("`{key}` is {n}, outside {} to {}", range.start(), range.end()),
            )
            .label(node.span, "out of range")
            .help(help.to_string()),
        );
        return None;
    }
    Some(n)
}

/// Reads a `quickbooks` source.
pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<QuickBooksSpec> {
    let connection = obj.get("connection").and_then(|n| reader::string(cx, n, "`connection`"));
    let realm = realm_id(cx, obj);
    let entities = entities(cx, obj);
    let lookback_ms = obj.get("lookback").and_then(|n| reader::duration(cx, n, "`lookback`"));
    let cdc = obj.get("cdc").and_then(|n| reader::boolean(cx, n, "cdc"));
    let page_size = bounded(
        cx,
        obj,
        "page_size",
        1..=MAX_PAGE,
        "QuickBooks returns at most 1000 entities a query page: leave `page_size` out for 1000",
    );
    let minor_version = bounded(
        cx,
        obj,
        "minorversion",
        1..=999,
        "write the API minor version to ask for (Intuit's reference lists them), or leave it out for 75",
    );
    let base_url = crate::api_source::base_url(cx, obj, codes::QUICKBOOKS_BASE_URL, DEFAULT_BASE_URL, "token");
    let rate = obj.get("rate").and_then(|n| {
        let rate = reader::rate(cx, n, "`rate`")?;
        // Compare per second as fractions: permits/seconds against 500/60.
        let (permits, seconds) = rate;
        if u128::from(permits) * u128::from(PUBLISHED_RATE.1) > u128::from(PUBLISHED_RATE.0) * u128::from(seconds) {
            cx.push(
                Diagnostic::error(
                    codes::QUICKBOOKS_SYNC_OPTION,
                    "`rate` is above QuickBooks' published limit of 500 requests a minute per company",
                )
                .label(n.span, "QuickBooks answers 429 above this and may throttle the company")
                .help("leave `rate` out for 500/min, or write a lower rate such as `300/min`"),
            );
            return None;
        }
        Some(rate)
    });
    Some(QuickBooksSpec {
        connection: connection?,
        // A wrong or missing `realm_id` was said (SL283, or the missing key): the source stays,
        // so that stages naming it are not reported as naming nothing.
        realm_id: realm.unwrap_or_else(|| Spanned { text: String::new(), span: obj.node.span }),
        entities,
        lookback_s: lookback_ms.map_or(DEFAULT_LOOKBACK_S, |ms| ms / 1000),
        cdc: cdc.unwrap_or(true),
        page_size: page_size.unwrap_or(MAX_PAGE),
        minor_version: minor_version.unwrap_or(DEFAULT_MINOR_VERSION),
        base_url,
        rate,
    })
}

/// Checks the source's `connection` against the pipeline's connections: it exists and is an
/// OAuth QuickBooks connection (SL279), and its token goes over https or to this machine only
/// (SL281). `Some(None)`: the connection is missing because the pipeline has no state store
/// (`has_state` false), which refused it (SL271): the caller says SL280, whose fix is the same.
pub fn check_connection(
    spec: &QuickBooksSpec,
    connections: &[crate::spec::connections::ConnectionSpec],
    has_state: bool,
) -> Option<Option<Diagnostic>> {
    let name = &spec.connection;
    if !has_state && !connections.iter().any(|c| c.plan.name == name.text) {
        return Some(None);
    }
    let conn = match crate::api_source::find_connection(
        name,
        connections,
        codes::QUICKBOOKS_CONNECTION,
        "declare it under `connections:` in this pipeline: `connections: {qbo: {provider: quickbooks, client_id: ..., client_secret: ${QBO_CLIENT_SECRET}, token_key: ${SLUICE_TOKEN_KEY}}}`, then authorize it once with `sluice connect qbo PIPELINE`",
    ) {
        Ok(conn) => conn,
        Err(d) => return Some(Some(d)),
    };
    if conn.plan.provider != "quickbooks" || !conn.plan.is_oauth() {
        let why = if conn.plan.provider == "quickbooks" {
            "QuickBooks Online takes OAuth 2.0 tokens only, not an API key".to_string()
        } else {
            format!("a `{}` connection's credentials are not for QuickBooks' API", conn.plan.provider)
        };
        return Some(Some(
            Diagnostic::error(
                codes::QUICKBOOKS_CONNECTION,
                format!("connection `{}` is not a QuickBooks OAuth connection", name.text),
            )
            .label(name.span, why)
            .label(conn.span, "declared here")
            .help("name a connection with `provider: quickbooks` and `auth: authorization_code` (the default), authorized once with `sluice connect NAME PIPELINE`"),
        ));
    }
    crate::api_source::plain_http(
        spec.base_url.as_ref(),
        name,
        codes::QUICKBOOKS_BASE_URL,
        "a QuickBooks token",
        "token",
    )
    .map(Some)
}

/// The plan of a source read by [`source`].
pub fn plan(spec: &QuickBooksSpec) -> QuickBooksPlan {
    QuickBooksPlan {
        connection: spec.connection.text.clone(),
        realm_id: spec.realm_id.text.clone(),
        entities: spec.entities.iter().map(|e| (*e).to_string()).collect(),
        lookback_s: spec.lookback_s,
        cdc: spec.cdc,
        page_size: spec.page_size,
        minor_version: spec.minor_version,
        base_url: crate::api_source::planned_base_url(spec.base_url.as_ref(), DEFAULT_BASE_URL),
        rate: spec.rate,
    }
}

/// The lines `sluice plan` shows for a `quickbooks` source (no secret).
pub fn render(o: &mut String, p: &QuickBooksPlan) {
    use std::fmt::Write;
    let rate =
        p.rate.map_or_else(|| "QuickBooks' published limit (500/min)".to_string(), |(n, s)| format!("{n}/{s} s"));
    let _ = writeln!(
        o,
        "    quickbooks sync {} of company {} from {} (connection `{}`), lookback {} s, pages of {}, minorversion {}, {rate}",
        p.entities.join(", "),
        p.realm_id,
        p.base_url,
        p.connection,
        p.lookback_s,
        p.page_size,
        p.minor_version,
    );
    let how = if p.cdc { "query, then change data capture (with deletions)" } else { "query only (no deletions)" };
    let _ = writeln!(
        o,
        "    {how}; each entity's cursor (LastUpdatedTime) saved in the state store once every record fetched is durable"
    );
}

/// The entity of a `quickbooks/<Entity>` schema name.
pub fn schema_entity(schema: &str) -> Option<&'static str> {
    sluice_finance::quickbooks::entity(schema.strip_prefix(SCHEMA_PREFIX)?)
}

/// The entity a mapping's `input.schema` (`quickbooks/Purchase`) names, or SL441.
pub fn mapping_entity(schema: &str, span: Span) -> Result<&'static str, Diagnostic> {
    schema_entity(schema).ok_or_else(|| {
        let written = schema.strip_prefix(SCHEMA_PREFIX).unwrap_or(schema);
        let known = sluice_finance::quickbooks::ENTITIES;
        let by_case = known.iter().copied().find(|e| e.eq_ignore_ascii_case(written));
        let help = match by_case.or_else(|| did_you_mean(written, known.iter().copied())) {
            Some(b) => format!("did you mean `quickbooks/{b}`? Entities are spelt as the API spells them"),
            None => format!(
                "write `quickbooks/<Entity>`; the entities are {}",
                known.iter().map(|e| format!("quickbooks/{e}")).collect::<Vec<_>>().join(", ")
            ),
        };
        Diagnostic::error(codes::QUICKBOOKS_UNKNOWN_ENTITY, format!("`{schema}` names no QuickBooks entity"))
            .label(span, "not a QuickBooks entity")
            .help(help)
    })
}

/// What QuickBooks paths are checked against: one entity.
#[derive(Clone, Copy, Debug)]
pub struct QuickBooksEnv {
    pub entity: &'static str,
}

impl QuickBooksEnv {
    /// Resolves `text` written at `span` (the span of the path's characters). Walked at run
    /// time like a FHIR path (the same JSON walk), so it resolves to what a FHIR path does.
    pub fn resolve(&self, text: &str, span: Span) -> Result<crate::fhir::Resolved, Diagnostic> {
        let words = crate::api_source::PathWords {
            code: codes::QUICKBOOKS_UNKNOWN_PATH,
            what: &format!("a QuickBooks `{}`", self.entity),
            label: "not in the entity's schema here",
            syntax: "QuickBooks paths are dotted property names as the API's JSON writes them, e.g. `TotalAmt`, `CurrencyRef.value`, `Line[*].Amount`",
        };
        crate::api_source::resolve_path(text, span, sluice_finance::quickbooks::check(self.entity, text), &words)
    }
}

/// SL442: a map stage whose mapping reads `entity` records gets `wrong` records.
pub fn map_input_mismatch(stage: &str, entity: &str, wrong: &str, input_at: Span, mapping_at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::QUICKBOOKS_MAP_INPUT_MISMATCH,
        format!("map stage `{stage}` maps QuickBooks `{entity}` entities, but its input emits {wrong}"),
    )
    .label(input_at, format!("emits {wrong}"))
    .label(mapping_at, format!("the mapping reads quickbooks/{entity}"))
    .help(format!("feed it from a `quickbooks` source reading only `entities: [{entity}]`"))
}

/// SL443: a stage or sink `name` that cannot take raw QuickBooks entities (`what` it needs).
pub fn input_mismatch(kind: &str, name: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::QUICKBOOKS_INPUT_MISMATCH,
        format!("{kind} `{name}` needs {what}, but its input emits raw QuickBooks entities"),
    )
    .label(at, "emits quickbooks entities")
    .help("read QuickBooks entities with a map stage whose mapping has `input: {schema: quickbooks/<Entity>}` (paths such as `TotalAmt`, `EntityRef.name`); raw entities hold customers' and vendors' names and addresses")
}

/// SL280: a `quickbooks` source without a state store for its cursors.
pub fn needs_state(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::QUICKBOOKS_NEEDS_STATE,
        format!("the quickbooks source `{source}` has no state store to keep its cursors"),
    )
    .label(at, "needs a cursor per entity")
    .help("add `state: {path: state/sluice.db}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline; the connection's tokens live there too")
}

/// SL282: a `quickbooks` source beside sources of another kind.
pub fn not_alone(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::QUICKBOOKS_SOURCE_MIXED,
        format!("the quickbooks source `{source}` shares its pipeline with other kinds of sources"),
    )
    .label(at, "syncs on its own run loop")
    .help("put the other sources in their own pipeline; several `quickbooks` sources (several companies or entities) may share one")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileId;
    use sluice_spec_core::{PhiClass, ValueType};

    fn span(text: &str) -> Span {
        Span::new(FileId(0), 100, 100 + text.len())
    }

    #[test]
    fn paths_resolve_with_types_and_classes_or_point_at_the_wrong_step() {
        let env = QuickBooksEnv { entity: "Purchase" };
        let r = env.resolve("EntityRef.name", span("EntityRef.name")).unwrap();
        assert_eq!((r.value_type, r.phi), (ValueType::String, Some(PhiClass::Name)));
        assert_eq!(env.resolve("TotalAmt", span("TotalAmt")).unwrap().value_type, ValueType::Decimal);
        assert_eq!(env.resolve("Line[*].Amount", span("x")).unwrap().path, "Line.Amount");
        let text = "EntityRef.nmae";
        let d = env.resolve(text, span(text)).unwrap_err();
        assert_eq!(d.code.code, "SL440");
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (110, 114));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("did you mean `name`")), "{:?}", d.help);
        assert!(
            mapping_entity("quickbooks/purchase", span("x")).unwrap_err().help.unwrap().contains("quickbooks/Purchase")
        );
        assert_eq!(mapping_entity("quickbooks/Deposit", span("x")).unwrap(), "Deposit");
    }
}
