//! Reconciliation specs (`kind: reconciliation`): two inputs by role (`left`, `right`), the
//! fields that carry each record's id, amount, currency, date, payee and links, a matching
//! ladder (`rules`), categorization rules and where the results go. `sluice reconcile` runs
//! them (`sluice_runtime::stages::reconcile`).
//!
//! Invariants:
//! - Everything the matcher needs is decided here: amounts tolerances in minor units or per
//!   mille, day windows as inclusive ranges, payee thresholds in [0, 1], time zones known to
//!   the bundled tz database, regular expressions that compile. The runtime never re-checks.
//! - A rule that can never match (the same as an earlier one, or a window inside an earlier
//!   window) is an error (SL293): the ladder is greedy, so the earlier rule has already taken
//!   everything the later one could.
//! - Messages name keys and roles, never data values.
//! - `outputs.statements` (the product brief's financial document per account) reads the
//!   account of each transaction from a field its input declares (`account`): a statements
//!   output over an input without one is an error (SL461), as is naming no role (SL460), and
//!   its input must say whose records they are (`source` or `default_source`, SL462): an
//!   account is its provider and its id together.
//! - An input's `connection` field (`canonical/financial-transaction@2` rows) makes a record
//!   its connection and its id together, as the rows' key does; without it an id is the
//!   input's (`@1` rows).
//! - `outputs.ledger` names one database by a secret reference (a written URL is SL205) and,
//!   per role, a table (SL220) and key columns (SL463); at least one role (SL464). Whether the
//!   table exists and fits is the runtime's to find out (RT124): the compiler never connects.
//! - No output is another's staging file (`<output>.partial`, SL299).
//! - Declared exchange rates are usable (positive decimals, ISO codes, real dates: SL476) and
//!   never ambiguous: one rate at most per pair of currencies (either way round) and day
//!   (SL477), so a conversion never depends on the order rates are written in. [`convert`] is
//!   exact until its one rounding (half away from zero).

use serde::Serialize;

use super::reader::{self, Cx, Spanned};
use super::shape::{Key, KeyType, Shape};
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::pg_table;
use crate::source::Span;
use crate::yaml::{Node, Value};

/// The two roles a reconciliation matches: each pair has one record of each.
pub const ROLES: &[&str] = &["left", "right"];

/// How an input writes its amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountUnit {
    /// Whole minor units (cents): `1050` is 10.50 USD.
    Minor,
    /// Decimal major units: `10.50`.
    Decimal,
}

/// One input, as its role reads it. Field names are top-level keys or dotted paths
/// (`balance_transaction.amount`) into each JSON record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InputPlan {
    pub role: String,
    /// The input's name in outputs (`stripe_payouts`).
    pub name: String,
    /// JSON Lines files, resolved against the spec's folder by the driver.
    pub paths: Vec<String>,
    /// The same files as written in the spec: what outputs name, so they do not depend on
    /// where the checkout is.
    pub written_paths: Vec<String>,
    pub id: String,
    pub amount: String,
    pub amount_unit: AmountUnit,
    /// Negate amounts (Plaid writes money into the account as negative).
    pub negate: bool,
    pub currency: Option<String>,
    pub default_currency: Option<String>,
    pub date: String,
    /// IANA time zone dates are bucketed in.
    pub time_zone: String,
    pub payee: Option<String>,
    pub merchant: Option<String>,
    pub mcc: Option<String>,
    pub status: Option<String>,
    /// Status values that take a record out of matching (`failed`, `canceled`).
    pub excluded_statuses: Vec<String>,
    /// Field holding the id of the record (same input) this one reverses or refunds.
    pub reverses: Option<String>,
    /// Field holding the id of a pending record (same input) this posted one replaces.
    pub supersedes: Option<String>,
    /// Boolean field: the record is still pending.
    pub pending: Option<String>,
    /// Declared link name -> field.
    pub links: Vec<(String, String)>,
    /// Field with the id of the account the record belongs to (`outputs.statements`).
    pub account: Option<String>,
    /// Field with the provider the record was read from (`source` of canonical rows): with
    /// `account`, the key of the record's account.
    pub source: Option<String>,
    /// The provider of records without a `source` value (raw Plaid transactions: `plaid`).
    pub default_source: Option<String>,
    /// Field with the connection the record was read through (`connection` of
    /// `canonical/financial-transaction@2` rows): ids are unique within a connection only, so
    /// with it a record is its connection and its id together (duplicates, `supersedes`,
    /// `reverses`), and its account is found by provider, connection and account id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
}

/// One rung of the matching ladder.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RulePlan {
    pub name: String,
    pub kind: RuleKind,
    /// Largest accepted amount difference.
    pub amount: Tolerance,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "match")]
pub enum RuleKind {
    /// The left id equals the right id.
    Ids,
    /// A declared link: the left's link field equals the right's.
    Link { link: String },
    /// Amount (tolerance on the rule), date and payee within tolerances.
    Window {
        /// Days from the left date to the right date, inclusive (`0..3`: same day to 3 later).
        days_min: i64,
        days_max: i64,
        /// Least payee similarity (word overlap), `None`: payee not compared.
        payee: Option<f64>,
    },
}

/// An amount tolerance: minor units or per mille of the left amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tolerance {
    Minor(i64),
    PerMille(i64),
}

impl Tolerance {
    /// Whether this tolerance accepts everything `other` accepts.
    fn covers(&self, other: &Tolerance) -> bool {
        match (self, other) {
            (Tolerance::Minor(a), Tolerance::Minor(b)) | (Tolerance::PerMille(a), Tolerance::PerMille(b)) => a >= b,
            (_, Tolerance::Minor(0) | Tolerance::PerMille(0)) => true,
            _ => false,
        }
    }
}

/// One categorization rule: every condition written must hold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryRule {
    pub category: String,
    pub tags: Vec<String>,
    /// Merchants (case-insensitive, whole value).
    pub merchants: Vec<String>,
    pub mccs: Vec<String>,
    /// A regular expression over the payee/description field.
    pub description: Option<String>,
    /// Signed amount range in minor units, inclusive.
    pub amount_min: Option<i64>,
    pub amount_max: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReconcilePlan {
    pub name: String,
    pub inputs: Vec<InputPlan>,
    pub rules: Vec<RulePlan>,
    pub categories: Vec<CategoryRule>,
    /// Output files, resolved against the spec's folder.
    pub matched: String,
    pub review: String,
    pub summary: String,
    /// The product brief's financial documents, one per account, when asked for.
    pub statements: Option<StatementsPlan>,
    /// `reconciled` written back into the PostgreSQL tables the inputs were loaded from.
    pub ledger: Option<LedgerPlan>,
    /// Declared rates that let a pair in two currencies match ([`ExchangeRate`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exchange_rates: Vec<ExchangeRate>,
}

/// A declared exchange rate: one unit of `from` buys `rate` units of `to`, on `date` or (without
/// one) on every day no dated rate covers. It converts both ways: a left amount in `to` is
/// divided by it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExchangeRate {
    pub from: String,
    pub to: String,
    /// As written (`1.0850`): what the matched output records as the rate used.
    pub rate: String,
    #[serde(skip)]
    pub scaled: ScaledRate,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// A positive rate as `units / 10^scale`: exact, so conversions round once, at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScaledRate {
    pub units: i128,
    pub scale: u32,
}

/// Most decimal places a rate may have (central banks publish 4 to 6).
pub const RATE_PLACES: usize = 12;

/// A rate's text (`1.0850`) as a [`ScaledRate`]; `None` unless it is a positive plain decimal
/// with at most [`RATE_PLACES`] places and 12 whole digits.
pub fn parse_rate(text: &str) -> Option<ScaledRate> {
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > RATE_PLACES || whole.len() > 12 {
        return None;
    }
    let units: i128 = format!("{whole}{frac}").parse().ok()?;
    (units > 0).then_some(ScaledRate { units, scale: frac.len() as u32 })
}

/// `amount` in minor units of `from` converted into minor units of `to` at `rate` (or, with
/// `inverse`, at 1 / `rate`), rounded half away from zero; `None` on overflow.
pub fn convert(amount: i64, from: &str, to: &str, rate: ScaledRate, inverse: bool) -> Option<i64> {
    let ten = |n: u32| 10_i128.checked_pow(n);
    let (from_digits, to_digits) = (minor_digits(from), minor_digits(to));
    // amount / 10^from_digits major units; times the rate; times 10^to_digits minor units.
    let (num, den) = if inverse {
        (
            i128::from(amount).checked_mul(ten(rate.scale)?)?.checked_mul(ten(to_digits)?)?,
            rate.units.checked_mul(ten(from_digits)?)?,
        )
    } else {
        (i128::from(amount).checked_mul(rate.units)?.checked_mul(ten(to_digits)?)?, ten(rate.scale + from_digits)?)
    };
    let half = den / 2;
    let rounded = if num >= 0 { (num + half) / den } else { (num - half) / den };
    i64::try_from(rounded).ok()
}

/// The column `outputs.ledger` writes (`canonical/financial-transaction@1`'s).
pub const RECONCILED_COLUMN: &str = "reconciled";

/// `outputs.ledger`: one PostgreSQL database, the table of each input named, all updated in
/// one transaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerPlan {
    /// The connection URL's secret reference as written (`${LEDGER_URL}`): never resolved here.
    pub url: String,
    /// The tables, left first.
    pub tables: Vec<LedgerTable>,
}

/// The table an input's records are rows of.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerTable {
    /// Index into [`ReconcilePlan::inputs`] (0 left, 1 right).
    pub input: usize,
    /// `table` or `schema.table`.
    pub table: String,
    /// Key columns, each read from the record's top-level field of the same name.
    pub key: Vec<String>,
}

/// `outputs.statements`: one financial document (metadata, account, transactions,
/// reconciliation) per account of a canonical accounts file, over the records of one input.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatementsPlan {
    /// Index into [`ReconcilePlan::inputs`] (0 left, 1 right) of the transactions' input.
    pub input: usize,
    /// JSON Lines of `canonical/financial-account@1` rows, resolved against the spec's folder.
    pub accounts: String,
    /// The same file as written in the spec: what outputs name.
    pub written_accounts: String,
    /// The documents, one JSON object per line.
    pub path: String,
    /// What could not be placed in a document: transactions without a known account, account
    /// lines that cannot be read.
    pub unassigned: String,
}

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: false, ty, doc }
}

pub static INPUT: Shape = Shape {
    name: "reconciliation.input",
    type_tag: None,
    doc: "One input of a reconciliation: JSON Lines files and the fields (top-level keys or dotted paths) that carry what matching needs.",
    keys: &[
        opt("name", KeyType::String, "Name of the input in outputs (default: the role)."),
        req("path", KeyType::StringOrList, "JSON Lines file(s), relative to this file."),
        req("id", KeyType::String, "Field with the record's id (duplicates of an id are reported)."),
        req("amount", KeyType::String, "Field with the amount."),
        opt("amount_unit", KeyType::Enum(&["minor", "decimal"]), "`minor` (cents, the default) or `decimal` (10.50)."),
        opt("sign", KeyType::Enum(&["as_is", "negate"]), "`negate` when money in is written negative (Plaid)."),
        opt("currency", KeyType::String, "Field with the ISO 4217 currency code."),
        opt("default_currency", KeyType::String, "Currency of records without a currency field."),
        req(
            "date",
            KeyType::String,
            "Field with the date: `YYYY-MM-DD`, `CCYYMMDD` (X12), RFC 3339 date-time, or Unix seconds.",
        ),
        req("time_zone", KeyType::String, "IANA time zone of the account, for bucketing date-times into dates."),
        opt("payee", KeyType::String, "Field with the payee or description."),
        opt("merchant", KeyType::String, "Field with the merchant name (categorization)."),
        opt("mcc", KeyType::String, "Field with the merchant category code (categorization)."),
        opt("status", KeyType::String, "Field with the record's status."),
        opt(
            "excluded_statuses",
            KeyType::ListOfStrings,
            "Status values taken out of matching (reason `status_excluded`).",
        ),
        opt(
            "reverses",
            KeyType::String,
            "Field naming the id of the record (same input) this one reverses or refunds.",
        ),
        opt(
            "supersedes",
            KeyType::String,
            "Field naming the id of the pending record (same input) this posted one replaces.",
        ),
        opt(
            "pending",
            KeyType::String,
            "Boolean field: the record is pending (reason `pending` unless a posted record replaces it).",
        ),
        opt("links", KeyType::MapOfStrings, "Declared links: link name -> field, used by `match: link` rules."),
        opt(
            "account",
            KeyType::String,
            "Field with the id of the account the record belongs to (`account_id`): read by `outputs.statements`.",
        ),
        opt(
            "source",
            KeyType::String,
            "Field with the provider the record was read from (`source` of canonical rows): with `account`, the key of its account (`outputs.statements`).",
        ),
        opt(
            "default_source",
            KeyType::String,
            "The provider of records without a `source` value, e.g. `plaid` for raw Plaid transactions.",
        ),
        opt(
            "connection",
            KeyType::String,
            "Field with the connection the record was read through (`connection` of `canonical/financial-transaction@2` rows, whose ids are unique per connection only): a record is then its connection and its id together (duplicates, `supersedes`, `reverses`), outputs name its connection, and `outputs.statements` finds its account by provider, connection and account id. Leave it out for `@1` rows.",
        ),
    ],
};

pub static RULE: Shape = Shape {
    name: "reconciliation.rule",
    type_tag: None,
    doc: "One rung of the matching ladder, tried in order; each record is matched at most once.",
    keys: &[
        req("name", KeyType::String, "Rule name, written on each pair it matched."),
        req("match", KeyType::Enum(&["ids", "link", "window"]), "`ids`, `link` (a declared link) or `window`."),
        opt("link", KeyType::String, "For `match: link`: the link name declared on both inputs."),
        opt("amount", KeyType::String, "Largest amount difference: `0.50` (major units) or `1%` (default 0)."),
        opt(
            "days",
            KeyType::String,
            "For `match: window`: days from the left date to the right date, `0..3` or `2` (= `-2..2`).",
        ),
        opt("payee", KeyType::String, "For `match: window`: least payee similarity, 0 to 1 (word overlap)."),
    ],
};

pub static CATEGORY: Shape = Shape {
    name: "reconciliation.category",
    type_tag: None,
    doc: "A categorization rule: the first rule whose conditions all hold gives the category; every rule that holds adds its tags.",
    keys: &[
        req("category", KeyType::String, "Category name."),
        opt("tags", KeyType::ListOfStrings, "Tags added."),
        opt("merchant", KeyType::StringOrList, "Merchant name(s), compared case-insensitively."),
        opt("mcc", KeyType::StringOrList, "Merchant category code(s)."),
        opt("description", KeyType::String, "Regular expression over the payee field."),
        opt("amount", KeyType::Object(&AMOUNT_RANGE), "Signed amount range (major units)."),
    ],
};

pub static AMOUNT_RANGE: Shape = Shape {
    name: "reconciliation.amount_range",
    type_tag: None,
    doc: "An inclusive amount range in major units; either end may be left out.",
    keys: &[
        opt("min", KeyType::String, "Least amount, e.g. `-100.00`."),
        opt("max", KeyType::String, "Greatest amount, e.g. `0`."),
    ],
};

pub static OUTPUTS: Shape = Shape {
    name: "reconciliation.outputs",
    type_tag: None,
    doc: "Where a reconciliation writes (relative to this file).",
    keys: &[
        req("matched", KeyType::String, "JSON Lines: one matched pair per line, with the rule that matched it."),
        req("review", KeyType::String, "JSON Lines: every record not matched, with its reason code."),
        req(
            "summary",
            KeyType::String,
            "JSON: the `reconciliation` block (matched, unmatched, duplicates) and counts.",
        ),
        opt(
            "statements",
            KeyType::Object(&STATEMENTS),
            "The product brief's financial document per account, built from the outcome and an accounts file.",
        ),
        opt(
            "ledger",
            KeyType::Object(&LEDGER),
            "PostgreSQL tables the inputs were loaded from: `reconciled` written into each record's row, in one transaction.",
        ),
    ],
};

pub static LEDGER: Shape = Shape {
    name: "reconciliation.ledger",
    type_tag: None,
    doc: "Writes the outcome back: `reconciled = true` in the row of each record of a matched pair, `false` for each record in review, in one transaction over every table, once the output files are complete.",
    keys: &[
        req(
            "url",
            KeyType::String,
            "The PostgreSQL connection URL as a secret reference (`${LEDGER_URL}`), as a `postgres` sink's.",
        ),
        opt("left", KeyType::Object(&LEDGER_TABLE), "The table the `left` input's records are rows of."),
        opt("right", KeyType::Object(&LEDGER_TABLE), "The table the `right` input's records are rows of."),
    ],
};

pub static LEDGER_TABLE: Shape = Shape {
    name: "reconciliation.ledger_table",
    type_tag: None,
    doc: "A table whose rows are an input's records, found by key.",
    keys: &[
        req("table", KeyType::String, "`name` or `schema.name`, with a boolean `reconciled` column."),
        req(
            "key",
            KeyType::ListOfStrings,
            "Key columns (`[source, id]`), each read from the record's top-level field of the same name.",
        ),
    ],
};

pub static STATEMENTS: Shape = Shape {
    name: "reconciliation.statements",
    type_tag: None,
    doc: "The product brief's \"Financial Output Format\": one JSON document per account (metadata, account, transactions with `reconciled`, reconciliation counts), one per line.",
    keys: &[
        req(
            "transactions",
            KeyType::Enum(&["left", "right"]),
            "The role whose records are the accounts' transactions; that input declares `account`.",
        ),
        req(
            "accounts",
            KeyType::String,
            "JSON Lines of `canonical/financial-account@1` rows (a `plaid-accounts` or `quickbooks-accounts` sink's file), relative to this file.",
        ),
        req("path", KeyType::String, "JSON Lines: one financial document per account."),
        req(
            "unassigned",
            KeyType::String,
            "JSON Lines: each transaction whose account is not in `accounts` (RT172, RT174) and each account line that cannot be read (RT173).",
        ),
    ],
};

pub static EXCHANGE_RATE: Shape = Shape {
    name: "reconciliation.exchange_rate",
    type_tag: None,
    doc: "One declared rate: one unit of `from` buys `rate` units of `to`. It converts both ways, and a dated rate wins over an undated one on its day.",
    keys: &[
        req("from", KeyType::String, "ISO 4217 code, e.g. `EUR`."),
        req("to", KeyType::String, "ISO 4217 code, e.g. `USD`."),
        req("rate", KeyType::String, "Units of `to` per unit of `from`, a positive decimal (`1.0850`; quote it)."),
        opt(
            "date",
            KeyType::String,
            "`YYYY-MM-DD`: the rate applies to left records of that day (in the left input's time zone); without it, to every other day.",
        ),
    ],
};

pub static RECONCILIATION: Shape = Shape {
    name: "reconciliation",
    type_tag: None,
    doc: "A reconciliation (`sluice reconcile`): two inputs by role, a matching ladder, categorization rules and outputs.",
    keys: &[
        req("kind", KeyType::Enum(&["reconciliation"]), "File kind."),
        req("name", KeyType::String, "Name."),
        opt("description", KeyType::String, "Free text."),
        req("inputs", KeyType::MapOf(&INPUT), "`left` and `right`."),
        req("rules", KeyType::ListOf(&RULE), "The matching ladder, tried in order."),
        opt("categories", KeyType::ListOf(&CATEGORY), "Categorization rules."),
        opt(
            "exchange_rates",
            KeyType::ListOf(&EXCHANGE_RATE),
            "Rates that let a pair in two currencies match: the left amount is converted into the right's currency before the rule's tolerance applies.",
        ),
        req("outputs", KeyType::Object(&OUTPUTS), "Output files."),
    ],
};

/// Decimal places of a currency's minor unit (ISO 4217; two for the codes not listed).
pub fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
        | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A decimal text (`-10.5`, `3`) as an integer scaled by 10^`digits`; `None` when it is not a
/// plain decimal or has more places than `digits`.
pub fn parse_scaled(text: &str, digits: u32) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > digits as usize
        || whole.len() > 15
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut frac_v: i64 = if frac.is_empty() { 0 } else { frac.parse().ok()? };
    for _ in frac.len()..digits as usize {
        frac_v *= 10;
    }
    let v = whole.checked_mul(10_i64.pow(digits))?.checked_add(frac_v)?;
    Some(if neg { -v } else { v })
}

/// `amount` of a rule: `0.50` (major units, read with two places) or `1%`/`0.5%`.
pub fn parse_amount_tolerance(text: &str) -> Option<Tolerance> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let pm = parse_scaled(p, 1)?;
        return (pm >= 0).then_some(Tolerance::PerMille(pm));
    }
    let v = parse_scaled(t, 2)?;
    (v >= 0).then_some(Tolerance::Minor(v))
}

/// `days` of a window: `a..b` (inclusive, a <= b) or `n` (= `-n..n`).
pub fn parse_days(text: &str) -> Option<(i64, i64)> {
    let t = text.trim();
    let (a, b) = match t.split_once("..") {
        Some((a, b)) => (a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?),
        None => {
            let n = t.parse::<i64>().ok()?;
            (-n, n)
        }
    };
    (a <= b && a.abs() <= 366 && b.abs() <= 366).then_some((a, b))
}

/// `payee`: a similarity from 0 to 1.
pub fn parse_similarity(text: &str) -> Option<f64> {
    let v: f64 = text.trim().parse().ok()?;
    (0.0..=1.0).contains(&v).then_some(v)
}

fn tolerance_error(cx: &mut Cx, s: &Spanned, what: &str, expected: &str, help: &str) {
    cx.push(
        Diagnostic::error(codes::RECONCILE_TOLERANCE, format!("`{}` is not a valid {what}", s.text.trim()))
            .label(s.span, format!("expected {expected}"))
            .help(help.to_string()),
    );
}

fn input(cx: &mut Cx, role: &str, node: &Node) -> Option<(InputPlan, Vec<Spanned>, Option<Span>)> {
    let o = reader::object(cx, node, &INPUT, &format!("input `{role}`"))?;
    let s = |cx: &mut Cx, key: &str| o.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let paths = o.get("path").map(|n| reader::string_list(cx, n, "`path`", true)).unwrap_or_default();
    let time_zone = s(cx, "time_zone");
    if let Some(tz) = &time_zone
        && jiff::tz::db().get(&tz.text).is_err()
    {
        let d = Diagnostic::error(codes::RECONCILE_TIME_ZONE, format!("`{}` is not a known time zone", tz.text))
            .label(tz.span, "not in the IANA time zone database");
        let names = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect::<Vec<_>>();
        cx.push(match crate::diagnostics::did_you_mean(&tz.text, names.iter().map(String::as_str)) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help("write the account's IANA zone, e.g. `America/New_York` or `UTC`"),
        });
    }
    let currency = s(cx, "currency");
    let default_currency = s(cx, "default_currency");
    if let Some(c) = &default_currency
        && !(c.text.len() == 3 && c.text.bytes().all(|b| b.is_ascii_uppercase()))
    {
        cx.push(
            Diagnostic::error(codes::RECONCILE_CURRENCY, format!("`{}` is not an ISO 4217 currency code", c.text))
                .label(c.span, "expected three capital letters")
                .help("write the code, e.g. `USD` or `EUR`"),
        );
    }
    if currency.is_none() && default_currency.is_none() {
        cx.push(
            Diagnostic::error(codes::RECONCILE_CURRENCY, format!("input `{role}` says nothing of its currency"))
                .label(o.anchor(), "amounts without a currency cannot be compared")
                .help("add `currency: <field>` naming the field with the ISO code, or `default_currency: USD`"),
        );
    }
    let mut links = Vec::new();
    let mut link_names = Vec::new();
    if let Some(entries) = o.get("links").and_then(|n| reader::entries(cx, n, "`links`")) {
        for (name, key, value) in entries {
            if let Some(field) = reader::string(cx, value, &format!("link `{name}`")) {
                links.push((name.to_string(), field.text));
                link_names.push(Spanned { text: name.to_string(), span: key.span });
            }
        }
    }
    let unit = o.get("amount_unit").and_then(|n| reader::one_of(cx, n, &["minor", "decimal"], "amount unit"));
    let sign = o.get("sign").and_then(|n| reader::one_of(cx, n, &["as_is", "negate"], "sign convention"));
    let excluded_statuses = o
        .get("excluded_statuses")
        .map(|n| reader::string_list(cx, n, "`excluded_statuses`", false).into_iter().map(|s| s.text).collect())
        .unwrap_or_default();
    let name = s(cx, "name").map_or_else(|| role.to_string(), |n| n.text);
    let plan = InputPlan {
        role: role.to_string(),
        name,
        paths: paths.iter().map(|p| p.text.clone()).collect(),
        written_paths: paths.iter().map(|p| p.text.clone()).collect(),
        id: s(cx, "id")?.text,
        amount: s(cx, "amount")?.text,
        amount_unit: if unit.is_some_and(|u| u.text == "decimal") { AmountUnit::Decimal } else { AmountUnit::Minor },
        negate: sign.is_some_and(|s| s.text == "negate"),
        currency: currency.map(|c| c.text),
        default_currency: default_currency.map(|c| c.text),
        date: s(cx, "date")?.text,
        time_zone: time_zone?.text,
        payee: s(cx, "payee").map(|p| p.text),
        merchant: s(cx, "merchant").map(|p| p.text),
        mcc: s(cx, "mcc").map(|p| p.text),
        status: s(cx, "status").map(|p| p.text),
        excluded_statuses,
        reverses: s(cx, "reverses").map(|p| p.text),
        supersedes: s(cx, "supersedes").map(|p| p.text),
        pending: s(cx, "pending").map(|p| p.text),
        links,
        account: s(cx, "account").map(|p| p.text),
        source: s(cx, "source").map(|p| p.text),
        default_source: s(cx, "default_source").map(|p| p.text),
        connection: s(cx, "connection").map(|p| p.text),
    };
    Some((plan, paths, o.get("path").map(|n| n.span)))
}

/// A rule, with the span of its `match` value (for SL293).
fn rule(cx: &mut Cx, node: &Node, inputs: &[InputPlan]) -> Option<(RulePlan, Span)> {
    let o = reader::object(cx, node, &RULE, "a rule")?;
    let name = o.get("name").and_then(|n| reader::string(cx, n, "`name`"))?;
    let kind_node = o.get("match")?;
    let kind = reader::one_of(cx, kind_node, &["ids", "link", "window"], "rule kind")?;
    let s = |cx: &mut Cx, key: &str| o.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let amount = match s(cx, "amount") {
        None => Tolerance::Minor(0),
        Some(a) => parse_amount_tolerance(&a.text).unwrap_or_else(|| {
            tolerance_error(
                cx,
                &a,
                "amount tolerance",
                "an amount such as `0.50` or a percentage such as `1%`",
                "write the largest accepted difference in major units (`0.50`, two places at most) or as a percentage of the left amount (`0.5%`)",
            );
            Tolerance::Minor(0)
        }),
    };
    let only_window = |cx: &mut Cx, key: &str| {
        if kind.text != "window"
            && let Some(span) = o.key_span(key)
        {
            cx.push(
                Diagnostic::error(codes::UNKNOWN_KEY, format!("`{key}` is for `match: window` rules"))
                    .label(span, format!("not a key of a `match: {}` rule", kind.text))
                    .help("remove it, or write `match: window`"),
            );
        }
    };
    only_window(cx, "days");
    only_window(cx, "payee");
    let rule_kind = match kind.text.as_str() {
        "ids" => RuleKind::Ids,
        "link" => {
            let Some(link) = s(cx, "link") else {
                cx.push(
                    Diagnostic::error(codes::MISSING_KEY, format!("rule `{}` is missing the key `link`", name.text))
                        .label(kind.span, "a `match: link` rule names the link it compares")
                        .help("add `link: <name>` naming a link declared under `links` of both inputs"),
                );
                return None;
            };
            for i in inputs {
                if !i.links.iter().any(|(n, _)| *n == link.text) {
                    let declared: Vec<&str> = i.links.iter().map(|(n, _)| n.as_str()).collect();
                    let d = Diagnostic::error(
                        codes::RECONCILE_UNDECLARED_FIELD,
                        format!("input `{}` declares no link `{}`", i.role, link.text),
                    )
                    .label(link.span, format!("not under `links` of input `{}`", i.role));
                    cx.push(match crate::diagnostics::did_you_mean(&link.text, declared.iter().copied()) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None => d.help(format!("declare it on both inputs: `links: {{{}: <field>}}`", link.text)),
                    });
                }
            }
            RuleKind::Link { link: link.text }
        }
        _ => {
            let days = match s(cx, "days") {
                None => (0, 0),
                Some(d) => parse_days(&d.text).unwrap_or_else(|| {
                    tolerance_error(
                        cx,
                        &d,
                        "day window",
                        "`a..b` with a <= b, or a number of days",
                        "write `0..3` (the right record is dated the same day as the left or up to 3 days later) or `2` (two days either way), at most 366",
                    );
                    (0, 0)
                }),
            };
            let payee = s(cx, "payee").and_then(|p| {
                let v = parse_similarity(&p.text);
                if v.is_none() {
                    tolerance_error(
                        cx,
                        &p,
                        "payee similarity",
                        "a number from 0 to 1",
                        "write the least share of words the payees must have in common, e.g. `0.5`",
                    );
                }
                if v.is_some() {
                    for i in inputs.iter().filter(|i| i.payee.is_none()) {
                        cx.push(
                            Diagnostic::error(
                                codes::RECONCILE_UNDECLARED_FIELD,
                                format!(
                                    "rule `{}` compares payees, and input `{}` declares no `payee`",
                                    name.text, i.role
                                ),
                            )
                            .label(p.span, "payees compared here")
                            .help(format!(
                                "add `payee: <field>` to input `{}`, or remove `payee` from the rule",
                                i.role
                            )),
                        );
                    }
                }
                v
            });
            RuleKind::Window { days_min: days.0, days_max: days.1, payee }
        }
    };
    Some((RulePlan { name: name.text, kind: rule_kind, amount }, kind.span))
}

/// Whether every pair `later` accepts, `earlier` accepts too (then `later` never matches).
fn subsumes(earlier: &RulePlan, later: &RulePlan) -> bool {
    if !earlier.amount.covers(&later.amount) {
        return false;
    }
    match (&earlier.kind, &later.kind) {
        (RuleKind::Ids, RuleKind::Ids) => true,
        (RuleKind::Link { link: a }, RuleKind::Link { link: b }) => a == b,
        (
            RuleKind::Window { days_min: a0, days_max: a1, payee: pa },
            RuleKind::Window { days_min: b0, days_max: b1, payee: pb },
        ) => {
            a0 <= b0
                && a1 >= b1
                && match (pa, pb) {
                    (None, _) => true,
                    (Some(x), Some(y)) => x <= y,
                    (Some(_), None) => false,
                }
        }
        _ => false,
    }
}

fn category(cx: &mut Cx, node: &Node, inputs: &[InputPlan]) -> Option<CategoryRule> {
    let o = reader::object(cx, node, &CATEGORY, "a category rule")?;
    let category = o.get("category").and_then(|n| reader::string(cx, n, "`category`"))?;
    let list = |cx: &mut Cx, key: &str| {
        o.get(key).map(|n| reader::string_list(cx, n, &format!("`{key}`"), true)).unwrap_or_default()
    };
    let tags: Vec<String> = list(cx, "tags").into_iter().map(|s| s.text).collect();
    let merchants = list(cx, "merchant");
    let mccs = list(cx, "mcc");
    for (key, values, declared) in [
        ("merchant", &merchants, inputs.iter().any(|i| i.merchant.is_some())),
        ("mcc", &mccs, inputs.iter().any(|i| i.mcc.is_some())),
    ] {
        if let (Some(first), false) = (values.first(), declared) {
            cx.push(
                Diagnostic::error(
                    codes::RECONCILE_UNDECLARED_FIELD,
                    format!("category `{}` tests `{key}`, and no input declares a `{key}` field", category.text),
                )
                .label(first.span, "this condition could never hold")
                .help(format!("add `{key}: <field>` to the input that carries it, or remove the condition")),
            );
        }
    }
    let description = o.get("description").and_then(|n| reader::string(cx, n, "`description`"));
    if let Some(d) = &description {
        if let Err(e) = regex_syntax::Parser::new().parse(&d.text) {
            cx.push(
                Diagnostic::error(
                    codes::CATEGORIZE_PATTERN,
                    format!("the `description` of category `{}` is not a valid regular expression", category.text),
                )
                .label(d.span, first_line(&e.to_string()))
                .help("fix the pattern (Rust regex syntax; `(?i)` for case-insensitive), e.g. `(?i)^github`"),
            );
        }
        if inputs.iter().all(|i| i.payee.is_none()) {
            cx.push(
                Diagnostic::error(
                    codes::RECONCILE_UNDECLARED_FIELD,
                    format!("category `{}` tests `description`, and no input declares a `payee` field", category.text),
                )
                .label(d.span, "this condition could never hold")
                .help("add `payee: <field>` to the input that carries the description"),
            );
        }
    }
    let (mut amount_min, mut amount_max) = (None, None);
    if let Some(r) = o.get("amount").and_then(|n| reader::object(cx, n, &AMOUNT_RANGE, "`amount`")) {
        let end = |cx: &mut Cx, key: &str| {
            let s = r.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")))?;
            let v = parse_scaled(&s.text, 2);
            if v.is_none() {
                cx.push(
                    Diagnostic::error(codes::CATEGORIZE_AMOUNT_RANGE, format!("`{}` is not an amount", s.text.trim()))
                        .label(s.span, "expected a decimal amount in major units")
                        .help("write e.g. `-100.00` or `250` (two decimal places at most)"),
                );
            }
            v.map(|v| (v, s.span))
        };
        let min = end(cx, "min");
        let max = end(cx, "max");
        if let (Some((lo, _)), Some((hi, span))) = (min, max)
            && lo > hi
        {
            cx.push(
                Diagnostic::error(
                    codes::CATEGORIZE_AMOUNT_RANGE,
                    format!("the amount range of category `{}` is empty", category.text),
                )
                .label(span, "`max` is below `min`")
                .help("swap `min` and `max`, or widen the range"),
            );
        }
        amount_min = min.map(|m| m.0);
        amount_max = max.map(|m| m.0);
    }
    Some(CategoryRule {
        category: category.text,
        tags,
        merchants: merchants.into_iter().map(|s| s.text).collect(),
        mccs: mccs.into_iter().map(|s| s.text).collect(),
        description: description.map(|d| d.text),
        amount_min,
        amount_max,
    })
}

fn first_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid pattern").trim().to_string()
}

/// Each output is a file of its own, and none is an input (nor the statements' accounts
/// file): one would overwrite the other.
fn outputs_apart(cx: &mut Cx, outputs: &[&Option<Spanned>], inputs: &[InputPlan], accounts: Option<&Spanned>) {
    let clean = |p: &str| p.trim().trim_start_matches("./").to_string();
    let written: Vec<&Spanned> = outputs.iter().copied().flatten().collect();
    for (i, o) in written.iter().enumerate() {
        let clash = written[..i].iter().any(|e| clean(&e.text) == clean(&o.text));
        // Each output is staged at its own name plus `.partial` before it is put in place.
        let staged = |a: &Spanned, b: &Spanned| format!("{}.partial", clean(&a.text)) == clean(&b.text);
        let staging = written[..i].iter().any(|e| staged(e, o) || staged(o, e));
        let input = inputs.iter().find(|inp| inp.paths.iter().any(|p| clean(p) == clean(&o.text)));
        let reads_accounts = accounts.is_some_and(|a| clean(&a.text) == clean(&o.text));
        let what = match (clash, input, reads_accounts) {
            (true, _, _) => "another output".to_string(),
            (false, _, _) if staging => "the temporary file of another output (`<output>.partial`)".to_string(),
            (false, Some(inp), _) => format!("input `{}`", inp.role),
            (false, None, true) => "the statements' `accounts` file".to_string(),
            (false, None, false) => continue,
        };
        cx.push(
            Diagnostic::error(codes::RECONCILE_OUTPUT_CLASH, format!("`{}` is also the path of {what}", o.text))
                .label(o.span, format!("this file would overwrite {what}"))
                .help("give each output a file of its own, apart from the inputs, e.g. `out/matched.jsonl`"),
        );
    }
}

/// `outputs.statements` as written: each part `None` when it is missing or wrong (the
/// diagnostic is pushed).
struct StatementsSpec {
    input: Option<usize>,
    accounts: Option<Spanned>,
    path: Option<Spanned>,
    unassigned: Option<Spanned>,
}

fn statements(cx: &mut Cx, node: &Node, inputs: &[InputPlan]) -> Option<StatementsSpec> {
    let o = reader::object(cx, node, &STATEMENTS, "`statements`")?;
    let s = |cx: &mut Cx, key: &str| o.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let role = s(cx, "transactions");
    let mut input = None;
    if let Some(role) = &role {
        match ROLES.iter().position(|r| *r == role.text) {
            None => {
                let d = Diagnostic::error(
                    codes::STATEMENTS_ROLE,
                    format!("`{}` is not a reconciliation role", role.text.trim()),
                )
                .label(role.span, "the transactions must be the records of one input");
                let named = inputs.iter().find(|i| i.name == role.text.trim());
                cx.push(match (named, crate::diagnostics::did_you_mean(&role.text, ROLES.iter().copied())) {
                    (Some(i), _) => d.help(format!(
                        "`{}` is the name of input `{}`: write its role, `transactions: {}`",
                        i.name, i.role, i.role
                    )),
                    (None, Some(best)) => d.help(format!(
                        "did you mean `{best}`? Write the role (`left` or `right`) whose records are the accounts' transactions"
                    )),
                    (None, None) => {
                        d.help("write the role (`left` or `right`) whose records are the accounts' transactions")
                    }
                });
            }
            Some(_) => match inputs.iter().position(|i| i.role == role.text) {
                // The input itself is missing: SL290 says so.
                None => {}
                Some(i) if inputs[i].account.is_none() => cx.push(
                    Diagnostic::error(
                        codes::STATEMENTS_ACCOUNT_FIELD,
                        format!("input `{}` declares no `account` field", role.text),
                    )
                    .label(role.span, "each transaction's account could not be known")
                    .help(format!(
                        "add `account: <field>` to input `{}`, naming the field with the account id (`account_id` for Plaid transactions and canonical financial transactions)",
                        role.text
                    )),
                ),
                Some(i) if inputs[i].source.is_none() && inputs[i].default_source.is_none() => cx.push(
                    Diagnostic::error(
                        codes::STATEMENTS_SOURCE,
                        format!("input `{}` says nothing of its provider", role.text),
                    )
                    .label(role.span, "each transaction's account could not be told from another provider's with the same id")
                    .help(format!(
                        "add `source: source` to input `{}` (canonical financial transactions carry it), or `default_source: <provider>` (`plaid`) when its records do not",
                        role.text
                    )),
                ),
                // `inputs` is sorted left first, so the role's position is the index.
                Some(_) => input = ROLES.iter().position(|r| *r == role.text),
            },
        }
    }
    Some(StatementsSpec { input, accounts: s(cx, "accounts"), path: s(cx, "path"), unassigned: s(cx, "unassigned") })
}

/// `outputs.ledger`: the URL a secret reference, each table's name and key usable.
fn ledger(cx: &mut Cx, node: &Node) -> Option<LedgerPlan> {
    let o = reader::object(cx, node, &LEDGER, "`ledger`")?;
    let url = o.get("url").and_then(|n| reader::secret(cx, n, "`url` of the ledger"));
    let mut tables = Vec::new();
    let mut complete = true;
    for (input, role) in ROLES.iter().enumerate() {
        let Some(n) = o.get(role) else { continue };
        let Some(t) = reader::object(cx, n, &LEDGER_TABLE, &format!("`{role}`")) else {
            complete = false;
            continue;
        };
        let table = t.get("table").and_then(|n| reader::string(cx, n, "`table`"));
        if let Some(t) = &table
            && !super::pipeline::check_table_name(cx, t, "`stripe_ledger` or `finance.stripe_ledger`")
        {
            complete = false;
        }
        let key = t.get("key").map(|n| (reader::string_list(cx, n, "`key`", true), n.span));
        if let Some((columns, span)) = &key {
            complete &= key_usable(cx, columns, *span);
        }
        match (table, key) {
            (Some(table), Some((columns, _))) => tables.push(LedgerTable {
                input,
                table: table.text,
                key: columns.into_iter().map(|c| c.text).collect(),
            }),
            _ => complete = false,
        }
    }
    if o.get("left").is_none() && o.get("right").is_none() {
        cx.push(
            Diagnostic::error(codes::LEDGER_NO_INPUT, "`ledger` names no input whose rows it updates")
                .label(o.key_span("url").unwrap_or(o.anchor()), "nothing would be written")
                .help("add `left: {table: <table>, key: [source, id]}` (or `right:`) for the input whose records are rows of a table, or remove `ledger`"),
        );
        return None;
    }
    if !complete {
        return None;
    }
    Some(LedgerPlan { url: url?.text, tables })
}

/// A ledger table's key: at least one column, each a column name, once, not `reconciled`.
fn key_usable(cx: &mut Cx, columns: &[Spanned], span: Span) -> bool {
    let mut ok = true;
    if columns.is_empty() {
        cx.push(
            Diagnostic::error(codes::LEDGER_KEY, "the ledger table's `key` is empty")
                .label(span, "no row could be found")
                .help("list the table's key columns, e.g. `[source, id]` for canonical financial transactions"),
        );
        return false;
    }
    for (i, c) in columns.iter().enumerate() {
        let column = !c.text.contains('.') && pg_table::valid_table_name(&c.text);
        let problem = if !column {
            Some(("is not a column name", "use the column's name: lower-case letters, digits and `_` (`source`, `account_id`), as the table's `postgres` sink made it".to_string()))
        } else if columns[..i].iter().any(|e| e.text == c.text) {
            Some(("is listed twice", "list each key column once".to_string()))
        } else if c.text == RECONCILED_COLUMN {
            Some((
                "is the column written",
                format!(
                    "the key finds the row; `{RECONCILED_COLUMN}` is what is written into it: list the table's key columns"
                ),
            ))
        } else {
            None
        };
        if let Some((what, help)) = problem {
            cx.push(
                Diagnostic::error(codes::LEDGER_KEY, format!("key column `{}` {what}", c.text))
                    .label(c.span, format!("this column {what}"))
                    .help(help),
            );
            ok = false;
        }
    }
    ok
}

/// What [`read`] returns: the plan with paths as written (the driver resolves them), and
/// where each input's `path` is written.
pub struct ReconcileSpec {
    pub plan: ReconcilePlan,
    pub path_spans: Vec<Option<Span>>,
}

pub fn read(cx: &mut Cx, node: &Node) -> Option<ReconcileSpec> {
    let o = reader::object(cx, node, &RECONCILIATION, "the reconciliation")?;
    let name = o.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    let mut inputs = Vec::new();
    let mut path_spans = Vec::new();
    if let Some(entries) = o.get("inputs").and_then(|n| reader::entries(cx, n, "`inputs`")) {
        for (role, key, body) in &entries {
            if !ROLES.contains(role) {
                let d = Diagnostic::error(codes::RECONCILE_ROLE, format!("`{role}` is not a reconciliation role"))
                    .label(key.span, "unknown role");
                cx.push(match crate::diagnostics::did_you_mean(role, ROLES.iter().copied()) {
                    Some(best) => d.help(format!("did you mean `{best}`? The roles are `left` and `right`")),
                    None => d.help("a reconciliation has two inputs, `left` and `right`; name each with `name:`"),
                });
                continue;
            }
            if let Some((plan, _, span)) = input(cx, role, body) {
                inputs.push(plan);
                path_spans.push(span);
            }
        }
        for role in ROLES {
            if !entries.iter().any(|(r, _, _)| r == role) {
                let at = o.key_span("inputs").unwrap_or(o.anchor());
                cx.push(
                    Diagnostic::error(codes::RECONCILE_ROLE, format!("the reconciliation has no `{role}` input"))
                        .label(at, format!("add `{role}:` here"))
                        .help("a reconciliation matches records of a `left` input with records of a `right` input"),
                );
            }
        }
    }
    // Left first, whatever the written order: pairs are always (left, right).
    inputs.sort_by_key(|i| i.role != "left");
    let mut rules: Vec<RulePlan> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    if let Some(n) = o.get("rules") {
        match &n.value {
            Value::Seq(items) if items.is_empty() => cx.push(
                Diagnostic::error(codes::RECONCILE_EMPTY_LADDER, "the matching ladder has no rules")
                    .label(n.span, "nothing would ever match")
                    .help("add at least one rule, e.g. `- {name: by_id, match: ids}`"),
            ),
            Value::Seq(items) => {
                for item in items {
                    let Some((r, span)) = rule(cx, item, &inputs) else { continue };
                    if let Some(earlier) = rules.iter().find(|e| subsumes(e, &r)) {
                        cx.push(
                            Diagnostic::error(
                                codes::RECONCILE_RULE_NEVER_MATCHES,
                                format!("rule `{}` can never match", r.name),
                            )
                            .label(span, format!("everything it accepts, the earlier rule `{}` takes first", earlier.name))
                            .help("remove it, or make it wider than the earlier rule (a larger window or tolerance), or move it before"),
                        );
                    }
                    if names.contains(&r.name) {
                        cx.push(
                            Diagnostic::error(
                                codes::RECONCILE_RULE_NEVER_MATCHES,
                                format!("two rules are named `{}`", r.name),
                            )
                            .label(span, "the pairs it matched could not be told apart")
                            .help("give each rule its own name"),
                        );
                    }
                    names.push(r.name.clone());
                    rules.push(r);
                }
            }
            _ => {
                cx.push(
                    Diagnostic::error(codes::WRONG_TYPE, format!("`rules` must be a list, found {}", n.kind_name()))
                        .label(n.span, "expected a list of rules")
                        .help("write one `- {name, match, ...}` per rule"),
                );
            }
        }
    }
    let categories = match o.get("categories").map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(|i| category(cx, i, &inputs)).collect(),
        Some(_) => {
            let n = o.get("categories")?;
            cx.push(
                Diagnostic::error(codes::WRONG_TYPE, format!("`categories` must be a list, found {}", n.kind_name()))
                    .label(n.span, "expected a list of category rules")
                    .help("write one `- {category, ...}` per rule"),
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    let exchange_rates = match o.get("exchange_rates") {
        Some(n) => exchange_rates(cx, n),
        None => Vec::new(),
    };
    let outputs = o.get("outputs").and_then(|n| reader::object(cx, n, &OUTPUTS, "`outputs`"))?;
    let out = |cx: &mut Cx, key: &str| outputs.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
    let (matched, review, summary) = (out(cx, "matched"), out(cx, "review"), out(cx, "summary"));
    let statements = outputs.get("statements").and_then(|n| statements(cx, n, &inputs));
    let ledger_node = outputs.get("ledger");
    let ledger = ledger_node.and_then(|n| ledger(cx, n));
    let (statements_path, unassigned, accounts) = match &statements {
        Some(s) => (s.path.clone(), s.unassigned.clone(), s.accounts.clone()),
        None => (None, None, None),
    };
    outputs_apart(cx, &[&matched, &review, &summary, &statements_path, &unassigned], &inputs, accounts.as_ref());
    if inputs.len() != 2 || rules.is_empty() || ledger_node.is_some() && ledger.is_none() {
        return None;
    }
    let statements = match statements {
        Some(s) => Some(StatementsPlan {
            input: s.input?,
            accounts: s.accounts.as_ref()?.text.clone(),
            written_accounts: s.accounts?.text,
            path: s.path?.text,
            unassigned: s.unassigned?.text,
        }),
        None => None,
    };
    Some(ReconcileSpec {
        plan: ReconcilePlan {
            name,
            inputs,
            rules,
            categories,
            matched: matched?.text,
            review: review?.text,
            summary: summary?.text,
            statements,
            ledger,
            exchange_rates,
        },
        path_spans,
    })
}

/// `exchange_rates`: each rate checked (SL476), and no two deciding the same conversion (SL477).
fn exchange_rates(cx: &mut Cx, node: &Node) -> Vec<ExchangeRate> {
    let Value::Seq(items) = &node.value else {
        cx.push(
            Diagnostic::error(
                codes::WRONG_TYPE,
                format!("`exchange_rates` must be a list, found {}", node.kind_name()),
            )
            .label(node.span, "expected a list of rates")
            .help("write one `- {from: EUR, to: USD, rate: \"1.0850\"}` per rate"),
        );
        return Vec::new();
    };
    let mut rates: Vec<ExchangeRate> = Vec::new();
    for item in items {
        let Some(o) = reader::object(cx, item, &EXCHANGE_RATE, "an exchange rate") else { continue };
        let field = |cx: &mut Cx, key: &str| o.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")));
        let (from, to, rate) = (field(cx, "from"), field(cx, "to"), field(cx, "rate"));
        let date = field(cx, "date");
        let bad = |cx: &mut Cx, at: Span, what: String, help: &str| {
            cx.push(
                Diagnostic::error(codes::RECONCILE_EXCHANGE_RATE, what)
                    .label(at, "cannot be used")
                    .help(help.to_string()),
            );
        };
        let mut ok = true;
        for c in [&from, &to].into_iter().flatten() {
            if c.text.len() != 3 || !c.text.bytes().all(|b| b.is_ascii_uppercase()) {
                bad(
                    cx,
                    c.span,
                    format!("`{}` is not an ISO 4217 currency code", c.text),
                    "write three capital letters, such as `EUR` or `USD`",
                );
                ok = false;
            }
        }
        if let (Some(f), Some(t)) = (&from, &to)
            && f.text == t.text
        {
            bad(
                cx,
                t.span,
                format!("a rate from `{}` to itself", f.text),
                "a pair in one currency needs no rate: remove it, or fix `from` or `to`",
            );
            ok = false;
        }
        let scaled = rate.as_ref().and_then(|r| {
            let parsed = parse_rate(&r.text);
            if parsed.is_none() {
                bad(
                    cx,
                    r.span,
                    "`rate` is not a positive decimal".into(),
                    "write the units of `to` one unit of `from` buys, such as `\"1.0850\"` (at most 12 decimal places)",
                );
            }
            parsed
        });
        if let Some(d) = &date
            && d.text.parse::<jiff::civil::Date>().is_err()
        {
            bad(
                cx,
                d.span,
                "`date` is not a calendar date".into(),
                "write `YYYY-MM-DD`, such as `2024-03-01`, or remove `date` for a rate of every day",
            );
            ok = false;
        }
        let (Some(from), Some(to), Some(rate), Some(scaled), true) = (from, to, rate, scaled, ok) else { continue };
        let date = date.map(|d| d.text);
        let twin = rates.iter().find(|r| {
            r.date == date && (r.from == from.text && r.to == to.text || r.from == to.text && r.to == from.text)
        });
        if let Some(earlier) = twin {
            let day = date.as_deref().map_or("every day".to_string(), str::to_string);
            cx.push(
                Diagnostic::error(
                    codes::RECONCILE_EXCHANGE_RATE_TWICE,
                    format!("two rates between `{}` and `{}` for {day}", earlier.from, earlier.to),
                )
                .label(item.span, "a second rate for the same conversion")
                .help(
                    "keep one: a rate converts both ways, and a dated rate already wins over an undated one on its day",
                ),
            );
            continue;
        }
        rates.push(ExchangeRate { from: from.text, to: to.text, rate: rate.text, scaled, date });
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_decimals() {
        assert_eq!(parse_scaled("10.5", 2), Some(1050));
        assert_eq!(parse_scaled("-0.01", 2), Some(-1));
        assert_eq!(parse_scaled("3", 0), Some(3));
        assert_eq!(parse_scaled("1.234", 3), Some(1234));
        for bad in ["", ".", "1.234", "1e3", "--1", "abc", "1.2.3", "9999999999999999"] {
            assert_eq!(parse_scaled(bad, 2), None, "{bad}");
        }
    }

    #[test]
    fn rates_convert_exactly_and_round_once() {
        let rate = parse_rate("1.0850").unwrap();
        assert_eq!(rate, ScaledRate { units: 10850, scale: 4 });
        // 100.00 EUR at 1.0850 is 108.50 USD; back again 108.50 / 1.0850 = 100.00.
        assert_eq!(convert(10000, "EUR", "USD", rate, false), Some(10850));
        assert_eq!(convert(10850, "USD", "EUR", rate, true), Some(10000));
        // Minor-unit exponents: 1,000 JPY at 0.0067 USD is 6.70 USD; 10.00 USD at 149.5 JPY is 1,495 JPY.
        assert_eq!(convert(1000, "JPY", "USD", parse_rate("0.0067").unwrap(), false), Some(670));
        assert_eq!(convert(1000, "USD", "JPY", parse_rate("149.5").unwrap(), false), Some(1495));
        // Half away from zero, for money in and out alike: 0.05 EUR at 1.5 is 0.075 -> 0.08.
        assert_eq!(convert(5, "EUR", "USD", parse_rate("1.5").unwrap(), false), Some(8));
        assert_eq!(convert(-5, "EUR", "USD", parse_rate("1.5").unwrap(), false), Some(-8));
        assert_eq!(convert(i64::MAX, "EUR", "USD", parse_rate("999999999999.5").unwrap(), false), None);
        for bad in ["0", "0.000", "-1.2", "1e3", "", ".5", "1.0000000000001", "abc"] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }

    #[test]
    fn tolerances() {
        assert_eq!(parse_amount_tolerance("0.50"), Some(Tolerance::Minor(50)));
        assert_eq!(parse_amount_tolerance("1%"), Some(Tolerance::PerMille(10)));
        assert_eq!(parse_amount_tolerance("0.5%"), Some(Tolerance::PerMille(5)));
        assert_eq!(parse_amount_tolerance("-1"), None);
        assert_eq!(parse_days("0..3"), Some((0, 3)));
        assert_eq!(parse_days("2"), Some((-2, 2)));
        assert_eq!(parse_days("3..0"), None);
        assert_eq!(parse_similarity("0.6"), Some(0.6));
        assert_eq!(parse_similarity("1.5"), None);
    }

    #[test]
    fn a_narrower_window_after_a_wider_one_is_subsumed() {
        let w = |a, b, p, amt| RulePlan {
            name: "w".into(),
            kind: RuleKind::Window { days_min: a, days_max: b, payee: p },
            amount: Tolerance::Minor(amt),
        };
        assert!(subsumes(&w(0, 3, None, 0), &w(0, 1, Some(0.5), 0)));
        assert!(!subsumes(&w(0, 1, None, 0), &w(0, 3, None, 0)));
        assert!(!subsumes(&w(0, 3, Some(0.5), 0), &w(0, 3, None, 0)));
        assert!(!subsumes(&w(0, 3, None, 0), &w(0, 3, None, 50)));
    }
}
