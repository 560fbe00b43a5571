//! The `stripe` source as written and as planned, and Stripe object paths in mappings.
//!
//! A `stripe` source reads Stripe's list endpoints (`balance_transactions`, `charges`,
//! `refunds`, `payouts`, `disputes`, `events`) through a connection of the pipeline
//! (`connections:`, `provider: stripe`), one object a record. This module reads and checks
//! what is written (SL273-SL277); the driver ([`crate::compile`]) builds the plan and the
//! record flow (`stripe/<object>` records).
//!
//! Mappings with `input: {schema: stripe/<object>}` (`stripe/balance_transaction`) read the
//! objects with dotted paths (`amount`, `billing_details.email`, `fee_details[*].amount`):
//! [`StripeEnv::resolve`] checks each against `sluice_finance::stripe` (the table derived from
//! Stripe's OpenAPI spec; SL417 with a did-you-mean at the exact characters) and gives its
//! type and PII/PCI class, which feeds the PHI-flow proof like an HL7 path's.
//!
//! Invariants:
//! - The plan holds the connection's name, never a key or token; the base URL holds no
//!   credentials, and a key goes over plain http only to this machine (SL276).
//! - A path the plan carries is in the runtime form of a JSON path (`[*]` dropped, `[n]`
//!   kept), walked over the object's JSON by the runtime as FHIR paths are
//!   (`Expr::Fhir`: the same walk over a JSON document).
//! - Diagnostics quote only what the spec wrote (object names, paths), never data.

use serde::{Deserialize, Serialize};

use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::source::Span;
use crate::spec::reader::{self, Cx, Spanned};
use crate::spec::shape::{Key, KeyType, Shape};

/// The schema prefix of Stripe records and mappings: `stripe/charge`.
pub const SCHEMA_PREFIX: &str = "stripe/";

/// The lists a `stripe` source reads (the runtime client's), with the object type of each.
pub const LISTS: &[(&str, &str)] = &[
    ("balance_transactions", "balance_transaction"),
    ("charges", "charge"),
    ("refunds", "refund"),
    ("payouts", "payout"),
    ("disputes", "dispute"),
    ("events", "event"),
];

/// `base_url` when not written.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";
/// `lookback` when not written: how far before the cursor each sync asks again.
pub const DEFAULT_LOOKBACK_S: u64 = 3600;

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: false, ty, doc }
}

pub static SOURCE_STRIPE: Shape = Shape {
    name: "source.stripe",
    type_tag: Some("stripe"),
    doc: "Incremental sync of a Stripe account's objects: per object list, `GET /v1/<list>?limit=100&created[gte]={cursor - lookback}`, following `starting_after` while `has_more`; objects already delivered within the lookback window are skipped by id. One record per object (`stripe/<object>`: read by a map stage whose mapping has `input: {schema: stripe/<object>}`). Each list's cursor (the newest `created` delivered, and the ids near it) is saved in the state store only once every record of that sync is durable in the sinks or the DLQ: a run that stops early (even `kill -9`) loses nothing, and the next run delivers again only what was not durable. Requests are spaced at Stripe's published rate (100/s live keys, 25/s test keys); 429 and 5xx are retried after `Retry-After` unless `Stripe-Should-Retry: false`; a 401 refreshes an OAuth connection's token once.",
    keys: &[
        req("type", KeyType::Enum(&["stripe"]), "Source kind."),
        req(
            "connection",
            KeyType::String,
            "The pipeline's connection (`connections:`, `provider: stripe`: an `api_key` secret key or an OAuth (Connect) authorization) the requests authenticate with.",
        ),
        req(
            "objects",
            KeyType::StringOrList,
            "Object lists to sync: `balance_transactions`, `charges`, `refunds`, `payouts`, `disputes`, `events`. A map stage reads one object type: route by `metadata` or use one source per list when you map several.",
        ),
        opt(
            "lookback",
            KeyType::Duration,
            "How far before the saved cursor each sync asks again (default `1h`): objects that show up late in a list (a balance transaction created before the last sync but listed after it) are still delivered, once.",
        ),
        opt(
            "base_url",
            KeyType::String,
            "The API's base URL (default `https://api.stripe.com`); `http://` only to this machine (a local test server).",
        ),
        opt(
            "rate",
            KeyType::String,
            "Requests per unit of time (`25/s`); default Stripe's published rate for the key (100/s live, 25/s test or OAuth).",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

/// A `stripe` source as written.
#[derive(Debug)]
pub struct StripeSpec {
    pub connection: Spanned,
    /// (list, object type), in the order written.
    pub objects: Vec<(&'static str, &'static str)>,
    pub lookback_s: u64,
    pub base_url: Option<Spanned>,
    pub rate: Option<(u64, u64)>,
}

/// The plan of a `stripe` source: what the runtime reads, and nothing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripePlan {
    /// The connection's name.
    pub connection: String,
    pub objects: Vec<StripeObjectPlan>,
    pub lookback_s: u64,
    /// Without a trailing `/`.
    pub base_url: String,
    /// (permits, seconds); `None`: Stripe's published rate for the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeObjectPlan {
    /// The list (`charges`).
    pub list: String,
    /// The object type its items have (`charge`).
    pub object: String,
}

fn objects(cx: &mut Cx, obj: &reader::Obj<'_>) -> Vec<(&'static str, &'static str)> {
    let Some(node) = obj.get("objects") else { return Vec::new() };
    let written = reader::string_list(cx, node, "`objects`", true);
    if written.is_empty() {
        cx.push(
            Diagnostic::error(codes::STRIPE_OBJECT, "`objects` is empty")
                .label(node.span, "no object list to sync")
                .help("name at least one list: `objects: [balance_transactions]`"),
        );
    }
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for w in &written {
        match LISTS.iter().find(|(l, _)| *l == w.text) {
            Some(l) if out.contains(l) => cx.push(
                Diagnostic::error(codes::STRIPE_OBJECT, format!("object list `{}` is named twice", w.text))
                    .label(w.span, "already in `objects`")
                    .help("name each list once"),
            ),
            Some(l) => out.push(*l),
            None => {
                // The object type (`charge`) for its list (`charges`) is the likely slip.
                let by_type = LISTS.iter().find(|(_, o)| *o == w.text).map(|(l, _)| *l);
                let help = match by_type.or_else(|| did_you_mean(&w.text, LISTS.iter().map(|(l, _)| *l))) {
                    Some(best) => {
                        format!("did you mean `{best}`? Lists are named as in Stripe's API paths (`/v1/{best}`)")
                    }
                    None => format!("the lists are: {}", LISTS.iter().map(|(l, _)| *l).collect::<Vec<_>>().join(", ")),
                };
                cx.push(
                    Diagnostic::error(
                        codes::STRIPE_OBJECT,
                        format!("`{}` is not an object list a stripe source reads", w.text),
                    )
                    .label(w.span, "not a known list")
                    .help(help),
                );
            }
        }
    }
    out
}

/// Reads a `stripe` source.
pub fn source(cx: &mut Cx, obj: &reader::Obj<'_>) -> Option<StripeSpec> {
    let connection = obj.get("connection").and_then(|n| reader::string(cx, n, "`connection`"));
    let objects = objects(cx, obj);
    let lookback_ms = obj.get("lookback").and_then(|n| reader::duration(cx, n, "`lookback`"));
    let base_url = crate::api_source::base_url(cx, obj, codes::STRIPE_BASE_URL, DEFAULT_BASE_URL, "key");
    let rate = obj.get("rate").and_then(|n| reader::rate(cx, n, "`rate`"));
    Some(StripeSpec {
        connection: connection?,
        objects,
        lookback_s: lookback_ms.map_or(DEFAULT_LOOKBACK_S, |ms| ms / 1000),
        base_url,
        rate,
    })
}

/// Checks the source's `connection` against the pipeline's connections: it exists and is a
/// Stripe connection (SL274), and its key or token goes over https or to this machine only
/// (SL276).
pub fn check_connection(
    spec: &StripeSpec,
    connections: &[crate::spec::connections::ConnectionSpec],
) -> Option<Diagnostic> {
    let name = &spec.connection;
    let conn = match crate::api_source::find_connection(
        name,
        connections,
        codes::STRIPE_CONNECTION,
        "declare it under `connections:` in this pipeline: `connections: {stripe_us: {provider: stripe, auth: api_key, api_key: ${STRIPE_SECRET_KEY}}}`",
    ) {
        Ok(conn) => conn,
        Err(d) => return Some(d),
    };
    if conn.plan.provider != "stripe" {
        return Some(
            Diagnostic::error(codes::STRIPE_CONNECTION, format!("connection `{}` is not a Stripe connection", name.text))
                .label(name.span, format!("a `{}` connection's credentials are not for Stripe's API", conn.plan.provider))
                .label(conn.span, "declared here")
                .help("name a connection with `provider: stripe` (`auth: api_key` with the secret key, or `authorization_code` for Stripe Connect)"),
        );
    }
    crate::api_source::plain_http(spec.base_url.as_ref(), name, codes::STRIPE_BASE_URL, "a Stripe key", "key or token")
}

/// The plan of a source read by [`source`].
pub fn plan(spec: &StripeSpec) -> StripePlan {
    StripePlan {
        connection: spec.connection.text.clone(),
        objects: spec
            .objects
            .iter()
            .map(|(l, o)| StripeObjectPlan { list: (*l).to_string(), object: (*o).to_string() })
            .collect(),
        lookback_s: spec.lookback_s,
        base_url: crate::api_source::planned_base_url(spec.base_url.as_ref(), DEFAULT_BASE_URL),
        rate: spec.rate,
    }
}

/// The lines `sluice plan` shows for a `stripe` source (no secret).
pub fn render(o: &mut String, p: &StripePlan) {
    use std::fmt::Write;
    let lists: Vec<String> = p.objects.iter().map(|x| format!("{} ({})", x.list, x.object)).collect();
    let rate = p.rate.map_or_else(|| "Stripe's published rate".to_string(), |(n, s)| format!("{n}/{s} s"));
    let _ = writeln!(
        o,
        "    stripe sync {} from {} (connection `{}`), lookback {} s, {rate}",
        lists.join(", "),
        p.base_url,
        p.connection,
        p.lookback_s,
    );
    let _ =
        writeln!(o, "    each list's cursor (created) saved in the state store once every record fetched is durable");
}

/// The object type of a `stripe/<object>` schema name.
pub fn schema_object(schema: &str) -> Option<&'static str> {
    let o = schema.strip_prefix(SCHEMA_PREFIX)?;
    sluice_finance::stripe::OBJECTS.iter().map(|(o, _)| *o).find(|k| *k == o)
}

/// The object type a mapping's `input.schema` (`stripe/charge`) names, or SL418.
pub fn mapping_object(schema: &str, span: Span) -> Result<&'static str, Diagnostic> {
    schema_object(schema).ok_or_else(|| {
        let written = schema.strip_prefix(SCHEMA_PREFIX).unwrap_or(schema);
        let known: Vec<&str> = sluice_finance::stripe::OBJECTS.iter().map(|(o, _)| *o).collect();
        // The list's name (`charges`) for its object type is the likely slip.
        let by_list = sluice_finance::stripe::object_of_list(written);
        let best = by_list.or_else(|| did_you_mean(written, known.iter().copied()));
        let help = match best {
            Some(b) => format!("did you mean `stripe/{b}`? Mappings name the object type, in the singular"),
            None => format!(
                "write `stripe/<object>`; the objects are {}",
                known.iter().map(|o| format!("stripe/{o}")).collect::<Vec<_>>().join(", ")
            ),
        };
        Diagnostic::error(codes::STRIPE_UNKNOWN_OBJECT, format!("`{schema}` names no Stripe object type"))
            .label(span, "not a Stripe object")
            .help(help)
    })
}

/// What Stripe paths are checked against: one object type.
#[derive(Clone, Copy, Debug)]
pub struct StripeEnv {
    pub object: &'static str,
}

impl StripeEnv {
    /// Resolves `text` written at `span` (the span of the path's characters).
    /// A Stripe path is walked at run time like a FHIR path (the same JSON walk), so it
    /// resolves to what a FHIR path does.
    pub fn resolve(&self, text: &str, span: Span) -> Result<crate::fhir::Resolved, Diagnostic> {
        let words = crate::api_source::PathWords {
            code: codes::STRIPE_UNKNOWN_PATH,
            what: &format!("a Stripe `{}`", self.object),
            label: "not in Stripe's schema here",
            syntax: "Stripe paths are dotted property names as in Stripe's API reference, e.g. `amount`, `billing_details.email`, `fee_details[*].amount`",
        };
        crate::api_source::resolve_path(text, span, sluice_finance::stripe::check(self.object, text), &words)
    }
}

/// SL419: a map stage whose mapping reads `object` records gets `wrong` records.
pub fn map_input_mismatch(stage: &str, object: &str, wrong: &str, input_at: Span, mapping_at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::STRIPE_MAP_INPUT_MISMATCH,
        format!("map stage `{stage}` maps Stripe `{object}` objects, but its input emits {wrong}"),
    )
    .label(input_at, format!("emits {wrong}"))
    .label(mapping_at, format!("the mapping reads stripe/{object}"))
    .help(format!(
        "feed it from a `stripe` source reading only `{}`",
        LISTS.iter().find(|(_, o)| *o == object).map_or(object, |(l, _)| *l)
    ))
}

/// SL420: a stage or sink `name` that cannot take raw Stripe objects (`what` it needs).
pub fn input_mismatch(kind: &str, name: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::error(codes::STRIPE_INPUT_MISMATCH, format!("{kind} `{name}` needs {what}, but its input emits raw Stripe objects"))
        .label(at, "emits stripe objects")
        .help("read Stripe objects with a map stage whose mapping has `input: {schema: stripe/<object>}` (paths such as `amount`, `billing_details.email`); raw objects hold customers' names, e-mail addresses and card details")
}

/// SL275: a `stripe` source without a state store for its cursors.
pub fn needs_state(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::STRIPE_NEEDS_STATE,
        format!("the stripe source `{source}` has no state store to keep its cursors"),
    )
    .label(at, "needs a cursor per object list")
    .help("add `state: {path: state/sluice.db}` (SQLite) or `state: {url: ...}` (PostgreSQL) to the pipeline")
}

/// SL277: a `stripe` source beside sources of another kind.
pub fn not_alone(source: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::STRIPE_SOURCE_MIXED,
        format!("the stripe source `{source}` shares its pipeline with other kinds of sources"),
    )
    .label(at, "syncs on its own run loop")
    .help("put the other sources in their own pipeline; several `stripe` sources may share one")
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
    fn every_list_is_one_the_client_reads_and_the_schema_knows() {
        for (list, object) in LISTS {
            assert_eq!(sluice_finance::stripe::object_of_list(list), Some(*object));
        }
    }

    #[test]
    fn paths_resolve_with_types_and_classes_or_point_at_the_wrong_step() {
        let env = StripeEnv { object: "charge" };
        let r = env.resolve("billing_details.email", span("billing_details.email")).unwrap();
        assert_eq!((r.value_type, r.phi, r.multi), (ValueType::String, Some(PhiClass::Email), false));
        let r = env.resolve("amount", span("amount")).unwrap();
        assert_eq!(r.value_type, ValueType::Integer);
        let text = "billing_details.emial";
        let d = env.resolve(text, span(text)).unwrap_err();
        assert_eq!(d.code.code, "SL417");
        assert_eq!((d.labels[0].0.start, d.labels[0].0.end), (116, 121));
        assert!(d.help.as_deref().is_some_and(|h| h.contains("did you mean `email`")), "{:?}", d.help);
        let env = StripeEnv { object: "balance_transaction" };
        assert_eq!(env.resolve("fee_details[*].amount", span("x")).unwrap().path, "fee_details.amount");
        assert!(mapping_object("stripe/charges", span("x")).unwrap_err().help.unwrap().contains("stripe/charge"));
        assert_eq!(mapping_object("stripe/refund", span("x")).unwrap(), "refund");
    }
}
