//! The `plaid` source as written and as planned, and Plaid object paths in mappings.
//!
//! A `plaid` source reads one or more Plaid Items (one login at one bank each, reached with
//! the Item's `access_token`) through a connection of the pipeline (`connections:`,
//! `provider: plaid`: the app's `client_id` and secret): the `accounts` table from
//! `/accounts/get` and the `transactions` table from `/transactions/sync`, from the cursor
//! the last run saved. This module reads and checks what is written (SL266-SL269); the driver
//! ([`crate::compile`]) builds the plan and the record flow (`plaid/<object>` records).
//!
//! Mappings with `input: {schema: plaid/transaction}` (or `plaid/account`) read Plaid's JSON
//! with dotted paths (`amount`, `personal_finance_category.primary`): [`PlaidEnv::resolve`]
//! checks each against `sluice_finance::plaid` (SL445, did-you-mean at the exact characters)
//! and gives its type and PII class, which feeds the PHI-flow proof.
//!
//! Invariants:
//! - The plan holds the connection's name, each Item's name and its access token as a secret
//!   reference, never a secret; the base URL holds no credentials, and the credentials go
//!   over plain http only to this machine (SL267).
//! - The published limit is the ceiling: a `rate` above 50 `/transactions/sync` requests a
//!   minute per Item is refused (SL268).
//! - Diagnostics quote only what the spec wrote (names, paths), never data or a secret.

use serde::{Deserialize, Serialize};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::source::Span;
use crate::spec::reader::{self, Cx, Spanned};
use crate::spec::shape::{Key, KeyType, Shape};
use crate::yaml::Value;

/// The schema prefix of Plaid records and mappings: `plaid/transaction`.
pub const SCHEMA_PREFIX: &str = "plaid/";
/// Plaid's environments, as `base_url` may name them.
pub const ENVIRONMENTS: &[(&str, &str)] = &[
    ("sandbox", "https://sandbox.plaid.com"),
    ("development", "https://development.plaid.com"),
    ("production", "https://production.plaid.com"),
];
/// `base_url` when not written: Plaid's production API.
pub const DEFAULT_BASE_URL: &str = "https://production.plaid.com";
/// Plaid's published limit on `/transactions/sync`: 50 requests a minute per Item.
pub const PUBLISHED_RATE: (u64, u64) = (50, 60);

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: false, ty, doc }
}

pub static PLAID_ITEM: Shape = Shape {
    name: "plaid.item",
    type_tag: None,
    doc: "One Plaid Item (one login at one bank) a `plaid` source reads.",
    keys: &[
        req(
            "name",
            KeyType::String,
            "The Item's name in this source (letters, digits, `-`, `_`): it keys the Item's cursors in the state store and names the Item in logs and records (`plaid.item`). Renaming it starts the Item over.",
        ),
        req(
            "access_token",
            KeyType::Secret,
            "The Item's access token (from `/item/public_token/exchange`), a secret reference: `${PLAID_ACCESS_TOKEN}`.",
        ),
    ],
};

pub static SOURCE_PLAID: Shape = Shape {
    name: "source.plaid",
    type_tag: Some("plaid"),
    doc: "Sync of Plaid Items: per Item, the `accounts` table from `/accounts/get` (every run, each account with its balances; an account the last run delivered and Plaid no longer returns, closed or given a new `account_id`, becomes a deletion record with warning RT167) and the `transactions` table from `/transactions/sync` (from the Item's saved cursor, page after page while `has_more`; the whole pagination starts again from the saved cursor when Plaid answers `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`). Added and modified transactions are records; removed ones are deletion records (a `postgres` sink with `write: upsert` deletes the row by its key, an `append` one leaves them out; other sinks get `\"_deleted\": true`); a pending transaction that posts is removed and its posted one added with `pending_transaction_id` naming it, so a table upserted by `transaction_id` ends with the posted one only. Transactions that arrive late (posted days after they happened) are changes like any other and come with the next sync whatever their `date`: no lookback window is needed. One record per object (`plaid/account`, `plaid/transaction`: read by a map stage whose mapping has `input: {schema: plaid/<object>}`). Each cursor is saved in the state store only once every record it covers is durable in the sinks or the DLQ. `/transactions/sync` requests are spaced at Plaid's published limit (50 a minute per Item); 429 and 5xx are retried with backoff; `ITEM_LOGIN_REQUIRED` ends the run with RT159.",
    keys: &[
        req("type", KeyType::Enum(&["plaid"]), "Source kind."),
        req(
            "connection",
            KeyType::String,
            "The pipeline's connection (`connections:`, `provider: plaid`, with `client_id` and `client_secret: ${PLAID_SECRET}`) the requests authenticate with.",
        ),
        req("items", KeyType::ListOf(&PLAID_ITEM), "The Items to read, each with its `name` and `access_token`."),
        req(
            "tables",
            KeyType::StringOrList,
            "`accounts` (`/accounts/get`: `plaid/account` records) and/or `transactions` (`/transactions/sync`: `plaid/transaction` records). A map stage reads one: use one source per table when you map both.",
        ),
        opt(
            "base_url",
            KeyType::String,
            "Plaid's environment, `sandbox`, `development` or `production` (the default), or the API's base URL; `http://` only to this machine (a local test server).",
        ),
        opt(
            "rate",
            KeyType::String,
            "`/transactions/sync` requests per unit of time per Item (`20/min`); default and ceiling Plaid's published limit, 50 a minute.",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// One Item as written.
#[derive(Debug)]
pub struct ItemSpec {
    pub name: Spanned,
    pub access_token: Spanned,
}

/// A `plaid` source as written.
#[derive(Debug)]
pub struct PlaidSpec {
    pub connection: Spanned,
    pub items: Vec<ItemSpec>,
    /// The tables, in the order written.
    pub tables: Vec<&'static str>,
    pub base_url: Option<Spanned>,
    pub rate: Option<(u64, u64)>,
}

/// One Item of a planned source: its name and its access token's secret reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaidItemPlan {
    pub name: String,
    /// Secret reference (`${PLAID_ACCESS_TOKEN}`), never the token.
    pub access_token: String,
}

/// The plan of a `plaid` source: what the runtime reads, and nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaidPlan {
    /// The connection's name.
    pub connection: String,
    pub items: Vec<PlaidItemPlan>,
    /// `accounts`, `transactions`.
    pub tables: Vec<String>,
    /// Without a trailing `/`.
    pub base_url: String,
    /// (permits, seconds); `None`: Plaid's published limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<(u64, u64)>,
}

impl PlaidPlan {
    /// The objects the source emits (`transaction`), in table order.
    pub fn objects(&self) -> Vec<String> {
        self.tables.iter().filter_map(|t| sluice_finance::plaid::table_object(t)).map(str::to_string).collect()
    }
}

fn option_error(message: String, at: Span, label: &str, help: &str) -> Diagnostic {
    Diagnostic::error(codes::PLAID_SOURCE_OPTION, message).label(at, label.to_string()).help(help.to_string())
}

fn tables(cx: &mut Cx, obj: &reader::Obj<'_>) -> Vec<&'static str> {
    let Some(node) = obj.get("tables") else { return Vec::new() };
    let written = reader::string_list(cx, node, "`tables`", true);
    if written.is_empty() {
        cx.push(option_error(
            "`tables` is empty".into(),
            node.span,
            "no table to sync",
            "name at least one table: `tables: [transactions]`",
        ));
    }
    let mut out: Vec<&'static str> = Vec::new();
    for w in &written {
        let known = sluice_finance::plaid::TABLES.iter().map(|(t, _)| *t).find(|t| *t == w.text);
        match known {
            Some(t) if out.contains(&t) => {
                cx.push(option_error(
                    format!("table `{}` is named twice", w.text),
                    w.span,
                    "already in `tables`",
                    "name each table once",
                ));
            }
            Some(t) => out.push(t),
            None => {
                let names = sluice_finance::plaid::TABLES.iter().map(|(t, _)| *t);
                let folded = w.text.to_ascii_lowercase();
                let best = names
                    .clone()
                    .find(|t| folded == *t || format!("{folded}s") == *t)
                    .or_else(|| did_you_mean(&w.text, names.clone()));
                let help = match best {
                    Some(b) => format!("did you mean `{b}`? A plaid source reads `accounts` and `transactions`"),
                    None => "a plaid source reads `accounts` (/accounts/get) and `transactions` (/transactions/sync)"
                        .to_string(),
                };
                cx.push(option_error(
                    format!("`{}` is not a table a plaid source reads", w.text),
                    w.span,
                    "not a known table",
                    &help,
                ));
            }
        }
    }
    out
}

fn items(cx: &mut Cx, obj: &reader::Obj<'_>) -> Vec<ItemSpec> {
    let Some(node) = obj.get("items") else { return Vec::new() };
    let Value::Seq(list) = &node.value else {
        cx.push(option_error(
            "`items` is not a list".into(),
            node.span,
            "expected a list of Items",
            "write `items: [{name: checking, access_token: ${PLAID_ACCESS_TOKEN}}]`",
        ));
        return Vec::new();
    };
    if list.is_empty() {
        cx.push(option_error(
            "`items` is empty".into(),
            node.span,
            "no Item to read",
            "name at least one Item: `items: [{name: checking, access_token: ${PLAID_ACCESS_TOKEN}}]`",
        ));
    }
    let mut out: Vec<ItemSpec> = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let what = format!("Item {} of `items`", i + 1);
        let Some(item) = reader::object(cx, entry, &PLAID_ITEM, &what) else { continue };
        let name = item.get("name").and_then(|n| reader::string(cx, n, "`name`"));
        let token = item.get("access_token").and_then(|n| reader::secret(cx, n, "`access_token`"));
        let Some(name) = name else { continue };
        let valid = !name.text.is_empty()
            && name.text.len() <= 64
            && name.text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            cx.push(option_error(
                format!("`{}` is not an Item name", name.text),
                name.span,
                "letters, digits, `-` and `_` only",
                "name the Item for what it is, e.g. `operating-checking`: the name keys its cursor",
            ));
            continue;
        }
        if out.iter().any(|o| o.name.text == name.text) {
            cx.push(option_error(
                format!("Item `{}` is named twice", name.text),
                name.span,
                "already in `items`",
                "give each Item its own name: each keeps its own cursor",
            ));
            continue;
        }
        if let Some(token) = token {
            out.push(ItemSpec { name, access_token: token });
        }
    }
    out
}

/// `base_url`: an environment's name, or a URL (SL267 when neither).
fn base_url(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<Spanned> {
    if let Some(node) = obj.get("base_url")
        && let Some(text) = node.as_str()
        && let Some((_, url)) = ENVIRONMENTS.iter().find(|(name, _)| *name == text)
    {
        return Some(Spanned { text: (*url).to_string(), span: node.span });
    }
    crate::api_source::base_url(cx, obj, codes::PLAID_BASE_URL, "production", "secret and access token")
}

/// Reads a `plaid` source.
pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<PlaidSpec> {
    let connection = obj.get("connection").and_then(|n| reader::string(cx, n, "`connection`"));
    let items = items(cx, obj);
    let tables = tables(cx, obj);
    let base_url = base_url(cx, obj);
    let rate = obj.get("rate").and_then(|n| {
        let (permits, seconds) = reader::rate(cx, n, "`rate`")?;
        if u128::from(permits) * u128::from(PUBLISHED_RATE.1) > u128::from(PUBLISHED_RATE.0) * u128::from(seconds) {
            cx.push(option_error(
                "`rate` is above Plaid's published limit of 50 `/transactions/sync` requests a minute per Item".into(),
                n.span,
                "Plaid answers 429 RATE_LIMIT_EXCEEDED above this",
                "leave `rate` out for 50/min, or write a lower rate such as `20/min`",
            ));
            return None;
        }
        Some((permits, seconds))
    });
    Some(PlaidSpec { connection: connection?, items, tables, base_url, rate })
}

/// Checks the source's `connection` against the pipeline's connections: it exists and is a
/// Plaid connection (SL266), and the credentials go over https or to this machine only (SL267).
pub fn check_connection(
    spec: &PlaidSpec,
    connections: &[crate::spec::connections::ConnectionSpec],
) -> Option<Diagnostic> {
    let name = &spec.connection;
    let conn = match crate::api_source::find_connection(
        name,
        connections,
        codes::PLAID_CONNECTION,
        "declare it under `connections:` in this pipeline: `connections: {plaid: {provider: plaid, client_id: ${PLAID_CLIENT_ID}, client_secret: ${PLAID_SECRET}}}`",
    ) {
        Ok(conn) => conn,
        Err(d) => return Some(d),
    };
    if conn.plan.provider != "plaid" {
        return Some(
            Diagnostic::error(codes::PLAID_CONNECTION, format!("connection `{}` is not a Plaid connection", name.text))
                .label(
                    name.span,
                    format!("a `{}` connection's credentials are not for Plaid's API", conn.plan.provider),
                )
                .label(conn.span, "declared here")
                .help("name a connection with `provider: plaid`, `client_id` and `client_secret: ${PLAID_SECRET}`"),
        );
    }
    crate::api_source::plain_http(
        spec.base_url.as_ref(),
        name,
        codes::PLAID_BASE_URL,
        "Plaid's secret and access tokens",
        "secret",
    )
}

/// The plan of a source read by [`source`]; `reference` makes a secret reference as the plan
/// keeps it (a `${file:...}` path resolved like other paths).
pub fn plan(spec: &PlaidSpec, reference: impl Fn(&Spanned) -> String) -> PlaidPlan {
    PlaidPlan {
        connection: spec.connection.text.clone(),
        items: spec
            .items
            .iter()
            .map(|i| PlaidItemPlan { name: i.name.text.clone(), access_token: reference(&i.access_token) })
            .collect(),
        tables: spec.tables.iter().map(|t| (*t).to_string()).collect(),
        base_url: crate::api_source::planned_base_url(spec.base_url.as_ref(), DEFAULT_BASE_URL),
        rate: spec.rate,
    }
}

/// The lines `sluice plan` shows for a `plaid` source (Item names, never a token).
pub fn render(o: &mut String, p: &PlaidPlan) {
    use std::fmt::Write;
    let rate = p.rate.map_or_else(
        || "Plaid's published limit (50/min per Item)".to_string(),
        |(n, s)| format!("{n}/{s} s per Item"),
    );
    let items: Vec<&str> = p.items.iter().map(|i| i.name.as_str()).collect();
    let _ = writeln!(
        o,
        "    plaid sync {} of Items {} from {} (connection `{}`), {rate}",
        p.tables.join(", "),
        items.join(", "),
        p.base_url,
        p.connection,
    );
    let _ = writeln!(
        o,
        "    /transactions/sync from each Item's cursor (removed -> deletions), saved in the state store once every record fetched is durable"
    );
}

/// The object of a `plaid/<object>` schema name.
pub fn schema_object(schema: &str) -> Option<&'static str> {
    sluice_finance::plaid::object(schema.strip_prefix(SCHEMA_PREFIX)?)
}

/// The object a mapping's `input.schema` (`plaid/transaction`) names, or SL446.
pub fn mapping_object(schema: &str, span: Span) -> Result<&'static str, Diagnostic> {
    schema_object(schema).ok_or_else(|| {
        let written = schema.strip_prefix(SCHEMA_PREFIX).unwrap_or(schema);
        let known = sluice_finance::plaid::OBJECTS;
        let folded = written.to_ascii_lowercase();
        let by_table = sluice_finance::plaid::table_object(&folded);
        let best = by_table
            .or_else(|| known.iter().copied().find(|o| o.eq_ignore_ascii_case(written)))
            .or_else(|| did_you_mean(written, known.iter().copied()));
        let help = match best {
            Some(b) => format!("did you mean `plaid/{b}`? Objects are named in the singular, in lower case"),
            None => "write `plaid/transaction` or `plaid/account`".to_string(),
        };
        Diagnostic::error(codes::PLAID_UNKNOWN_OBJECT, format!("`{schema}` names no Plaid object"))
            .label(span, "not a Plaid object")
            .help(help)
    })
}

/// What Plaid paths are checked against: one object.
#[derive(Clone, Copy, Debug)]
pub struct PlaidEnv {
    pub object: &'static str,
}

impl PlaidEnv {
    /// Resolves `text` written at `span` (the span of the path's characters). Walked at run
    /// time like a FHIR path (the same JSON walk), so it resolves to what a FHIR path does.
    pub fn resolve(&self, text: &str, span: Span) -> Result<crate::fhir::Resolved, Diagnostic> {
        let words = crate::api_source::PathWords {
            code: codes::PLAID_UNKNOWN_PATH,
            what: &format!("a Plaid `{}`", self.object),
            label: "not in the object's schema here",
            syntax: "Plaid paths are dotted property names as the API's JSON writes them, e.g. `amount`, `iso_currency_code`, `personal_finance_category.primary`",
        };
        crate::api_source::resolve_path(text, span, sluice_finance::plaid::check(self.object, text), &words)
    }
}

/// SL447: a map stage whose mapping reads `object` records gets `wrong` records.
pub fn map_input_mismatch(stage: &str, object: &str, wrong: &str, input_at: Span, mapping_at: Span) -> Diagnostic {
    let table = sluice_finance::plaid::TABLES.iter().find(|(_, o)| *o == object).map_or("transactions", |(t, _)| *t);
    Diagnostic::error(
        codes::PLAID_MAP_INPUT_MISMATCH,
        format!("map stage `{stage}` maps Plaid `{object}` objects, but its input emits {wrong}"),
    )
    .label(input_at, format!("emits {wrong}"))
    .label(mapping_at, format!("the mapping reads plaid/{object}"))
    .help(format!("feed it from a `plaid` source reading only `tables: [{table}]`"))
}

/// SL448: a stage or sink `name` that cannot take raw Plaid objects (`what` it needs).
pub fn input_mismatch(kind: &str, name: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::PLAID_INPUT_MISMATCH,
        format!("{kind} `{name}` needs {what}, but its input emits raw Plaid objects"),
    )
    .label(at, "emits plaid objects")
    .help("read Plaid objects with a map stage whose mapping has `input: {schema: plaid/transaction}` (or `plaid/account`); raw transactions can hold the account owner's and payees' names")
}

/// SL269: a `plaid` source without a state store for its cursors.
pub fn needs_state(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::PLAID_SYNC_SETUP,
        format!("the plaid source `{source}` has no state store to keep its cursors"),
    )
    .label(at, "needs a cursor per Item")
    .help("add `state: {path: state/sluice.db}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline")
}

/// SL269: a `plaid` source beside sources of another kind.
pub fn not_alone(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::PLAID_SYNC_SETUP,
        format!("the plaid source `{source}` shares its pipeline with other kinds of sources"),
    )
    .label(at, "syncs on its own run loop")
    .help(
        "put the other sources in their own pipeline; several `plaid` sources (several Items or tables) may share one",
    )
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
        let env = PlaidEnv { object: "transaction" };
        let r = env.resolve("account_owner", span("account_owner")).unwrap();
        assert_eq!((r.value_type, r.phi), (ValueType::String, Some(PhiClass::Name)));
        assert_eq!(env.resolve("amount", span("amount")).unwrap().value_type, ValueType::Decimal);
        let text = "personal_finance_category.primry";
        let d = env.resolve(text, span(text)).unwrap_err();
        assert_eq!(d.code.code, "SL445");
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (126, 132));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("did you mean `primary`")), "{:?}", d.help);
        assert!(
            mapping_object("plaid/transactions", span("x")).unwrap_err().help.unwrap().contains("plaid/transaction")
        );
        assert_eq!(mapping_object("plaid/account", span("x")).unwrap(), "account");
    }
}
