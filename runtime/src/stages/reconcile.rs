//! Reconciliation: records of a `left` and a `right` input matched one-to-one by a ladder of
//! rules (ids, declared links, then a window on amount, date and payee), everything else sent
//! to review with a reason.
//!
//! Invariants:
//! - Nothing is lost: every record read (and every line that could not be read) ends in exactly
//!   one place: a matched pair (a left-right pair, or a reversal pair within one input) or the
//!   review output with one reason. [`Outcome::records_in`] equals matched records plus review
//!   entries, and the summary states both.
//! - Deterministic: the outcome depends only on the records and their reading order (files in
//!   the order written, lines in file order), never on thread count or timing. Each rule
//!   collects every candidate pair, sorts them by (score, left position, right position) and
//!   takes them greedily, so ties always break the same way.
//! - One-to-one: a record is in at most one pair; a rule only sees records no earlier rule
//!   matched.
//! - A pair in two currencies is matched only through a declared exchange rate
//!   (`exchange_rates`): the left amount is converted into the right's currency, rounded once,
//!   and the rule's tolerance applies to the converted amount; the matched output records the
//!   rate used. Without a rate such a pair is reported (`currency_mismatch`), never matched.
//! - Dates are bucketed in each input's time zone: a date-time is converted to the account's
//!   local date before any day window is measured.
//! - Reasons, codes and summaries name inputs, rules and fields, never values; the matched and
//!   review outputs hold ids, amounts, dates and categories (data, written where the spec says),
//!   never the payee text nor the whole record.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use sluice_compiler::spec::reconcile::{
    AmountUnit, ExchangeRate, InputPlan, ReconcilePlan, RuleKind, RulePlan, Tolerance, convert, minor_digits,
    parse_scaled,
};

use super::categorize::{Categorizer, Category, Facts};
use crate::findings;

/// Why a record is in review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The line is not a JSON object (RT160).
    Unreadable,
    /// A field matching needs is missing or cannot be read (RT161).
    InvalidField,
    /// Another record of the same input has this id; the first one read stays.
    Duplicate,
    /// Same amount, currency, date and payee as another record of its input, which matched.
    PossibleDuplicate,
    /// Its status is one of the input's `excluded_statuses` (failed, canceled...).
    StatusExcluded,
    /// Pending, and no posted record replaces it.
    Pending,
    /// Pending, replaced by a posted record (`supersedes`).
    Superseded,
    /// Reverses a record of its input for less than the whole amount.
    PartialReversal,
    /// Reverses a record its input does not hold (or one already reversed).
    ReversalWithoutOriginal,
    /// An id or link pointed at a partner in another currency.
    CurrencyMismatch,
    /// An id or link pointed at a partner whose amount is outside the rule's tolerance.
    AmountMismatch,
    /// No rule found a partner.
    NoCandidate,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unreadable => "unreadable",
            Reason::InvalidField => "invalid_field",
            Reason::Duplicate => "duplicate",
            Reason::PossibleDuplicate => "possible_duplicate",
            Reason::StatusExcluded => "status_excluded",
            Reason::Pending => "pending",
            Reason::Superseded => "superseded",
            Reason::PartialReversal => "partial_reversal",
            Reason::ReversalWithoutOriginal => "reversal_without_original",
            Reason::CurrencyMismatch => "currency_mismatch",
            Reason::AmountMismatch => "amount_mismatch",
            Reason::NoCandidate => "no_candidate",
        }
    }

    pub fn counts_as_duplicate(self) -> bool {
        matches!(self, Reason::Duplicate | Reason::PossibleDuplicate)
    }
}

/// One record of an input, read into what matching needs.
#[derive(Clone, Debug)]
pub struct Item {
    /// 0 left, 1 right.
    pub role: usize,
    pub file: String,
    /// 1-based line in its file.
    pub line: u64,
    pub id: String,
    /// Minor units, sign normalized (money in positive).
    pub amount: i64,
    pub currency: String,
    pub date: Date,
    payee_words: Vec<String>,
    pub category: Category,
    status: Option<String>,
    pub pending: bool,
    /// The merchant field's value (`outputs.statements` writes it; matching does not read it).
    pub merchant: Option<String>,
    /// The account field's value (`outputs.statements`).
    pub account: Option<String>,
    /// The provider: the `source` field's value, else the input's `default_source`.
    pub source: Option<String>,
    /// The connection the record was read through (the input's `connection` field): with the
    /// id, what identifies the record (ids are unique per connection only).
    pub connection: Option<String>,
    /// The values of the input's ledger table's key columns (`outputs.ledger`); `None` when
    /// the input has no table or one of them is missing.
    pub ledger_key: Option<Vec<String>>,
    /// The record's `metadata.processed_at` (canonical records carry it): when it was synced.
    pub processed_at: Option<String>,
    reverses: Option<String>,
    supersedes: Option<String>,
    links: Vec<Option<String>>,
}

/// A line that could not be read into an [`Item`].
#[derive(Clone, Debug)]
pub struct Unread {
    pub role: usize,
    pub file: String,
    pub line: u64,
    pub reason: Reason,
    /// What is wrong, naming the field, never its value.
    pub detail: String,
    /// As [`Item::ledger_key`]: a line with a bad amount may still name its row.
    pub ledger_key: Option<Vec<String>>,
}

/// What an input's files held.
#[derive(Default)]
pub struct Read {
    pub items: Vec<Item>,
    pub unread: Vec<Unread>,
}

/// The value at a dotted path (`balance_transaction.amount`, `items.0.id`).
fn at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, part| match v {
        Value::Object(m) => m.get(part),
        Value::Array(a) => a.get(part.parse::<usize>().ok()?),
        _ => None,
    })
}

/// A scalar as text (`null` and containers: none).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The record's local date in `tz`: `YYYY-MM-DD` or `CCYYMMDD` as is, an RFC 3339 date-time
/// converted, a date-time without offset taken as local, Unix seconds converted.
pub fn local_date(v: &Value, tz: &TimeZone) -> Option<Date> {
    match v {
        Value::Number(n) => {
            let ts = jiff::Timestamp::from_second(n.as_i64()?).ok()?;
            Some(ts.to_zoned(tz.clone()).date())
        }
        Value::String(s) => {
            let s = s.trim();
            if s.len() == 10 {
                return s.parse::<Date>().ok();
            }
            // X12 and HL7 dates: `CCYYMMDD` (BPR16, DTM02).
            if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
                let n = |r: std::ops::Range<usize>| s[r].parse::<i16>().ok();
                return Date::new(n(0..4)?, n(4..6)? as i8, n(6..8)? as i8).ok();
            }
            if let Ok(ts) = s.parse::<jiff::Timestamp>() {
                return Some(ts.to_zoned(tz.clone()).date());
            }
            s.parse::<jiff::civil::DateTime>().ok().map(|dt| dt.date())
        }
        _ => None,
    }
}

fn words(text: &str) -> Vec<String> {
    let mut w: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    w.sort();
    w.dedup();
    w
}

/// Share of the shorter payee's words found in the other (0 when either has none).
fn similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a.iter().filter(|w| b.binary_search(w).is_ok()).count();
    common as f64 / a.len().min(b.len()) as f64
}

/// Reads one line of an input (a JSON object) into an [`Item`], or says which field is wrong.
fn item(
    input: &InputPlan,
    role: usize,
    tz: &TimeZone,
    cats: &Categorizer,
    v: &Value,
    file: &str,
    line: u64,
) -> Result<Item, Unread> {
    let bad = |reason: Reason, detail: String| Unread {
        role,
        file: file.to_string(),
        line,
        reason,
        detail,
        ledger_key: None,
    };
    if !v.is_object() {
        return Err(bad(Reason::Unreadable, "the line is not a JSON object".into()));
    }
    let field = |name: &str| text(at(v, name));
    let invalid =
        |key: &str, f: &str| bad(Reason::InvalidField, format!("`{key}` field `{f}` is missing or cannot be read"));
    let id = field(&input.id).ok_or_else(|| invalid("id", &input.id))?;
    let currency = match &input.currency {
        Some(f) => field(f).map(|c| c.to_ascii_uppercase()).or_else(|| input.default_currency.clone()),
        None => input.default_currency.clone(),
    };
    let currency = currency
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        .ok_or_else(|| invalid("currency", input.currency.as_deref().unwrap_or("default_currency")))?;
    let digits = minor_digits(&currency);
    let raw_amount = at(v, &input.amount);
    let amount = match (input.amount_unit, raw_amount) {
        (AmountUnit::Minor, Some(Value::Number(n))) => n.as_i64(),
        (AmountUnit::Minor, Some(Value::String(s))) => s.trim().parse::<i64>().ok(),
        (AmountUnit::Decimal, Some(Value::Number(n))) => parse_scaled(&n.to_string(), digits),
        (AmountUnit::Decimal, Some(Value::String(s))) => parse_scaled(s, digits),
        _ => None,
    }
    .and_then(|a| if input.negate { a.checked_neg() } else { Some(a) })
    .ok_or_else(|| invalid("amount", &input.amount))?;
    let date = at(v, &input.date).and_then(|d| local_date(d, tz)).ok_or_else(|| invalid("date", &input.date))?;
    let payee = input.payee.as_deref().and_then(field);
    let merchant = input.merchant.as_deref().and_then(field);
    let mcc = input.mcc.as_deref().and_then(field);
    let category = cats.categorize(&Facts {
        merchant: merchant.as_deref(),
        mcc: mcc.as_deref(),
        description: payee.as_deref(),
        amount,
        digits,
    });
    Ok(Item {
        role,
        file: file.to_string(),
        line,
        id,
        amount,
        currency,
        date,
        payee_words: payee.as_deref().map(words).unwrap_or_default(),
        merchant,
        category,
        status: input.status.as_deref().and_then(field),
        pending: input.pending.as_deref().is_some_and(|p| matches!(at(v, p), Some(Value::Bool(true)))),
        account: input.account.as_deref().and_then(field),
        source: input.source.as_deref().and_then(field).or_else(|| input.default_source.clone()),
        connection: input.connection.as_deref().and_then(field),
        ledger_key: None,
        processed_at: text(at(v, "metadata.processed_at")),
        reverses: input.reverses.as_deref().and_then(field),
        supersedes: input.supersedes.as_deref().and_then(field),
        links: Vec::new(),
    })
}

/// Reads the lines of one input file (its text) into `out`.
pub fn read_lines(plan: &ReconcilePlan, role: usize, file: &str, body: &str, out: &mut Read) {
    let input = &plan.inputs[role];
    let tz = jiff::tz::db().get(&input.time_zone).unwrap_or(TimeZone::UTC);
    let cats = Categorizer::new(&plan.categories);
    // Link names in the order the rules use them, so an item's `links[k]` is rule link k.
    let link_names = link_names(plan);
    let key_columns =
        plan.ledger.as_ref().and_then(|l| l.tables.iter().find(|t| t.input == role)).map(|t| t.key.as_slice());
    for (n, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = n as u64 + 1;
        let parsed = serde_json::from_str::<Value>(line).map_err(|_| Unread {
            role,
            file: file.to_string(),
            line: line_no,
            reason: Reason::Unreadable,
            detail: "the line is not JSON".into(),
            ledger_key: None,
        });
        match parsed.and_then(|v| {
            let key = key_columns.and_then(|columns| ledger_key(&v, columns));
            let mut it = item(input, role, &tz, &cats, &v, file, line_no)
                .map_err(|u| Unread { ledger_key: key.clone(), ..u })?;
            it.links = link_names
                .iter()
                .map(|l| input.links.iter().find(|(n, _)| n == l).and_then(|(_, f)| text(at(&v, f))))
                .collect();
            it.ledger_key = key;
            Ok(it)
        }) {
            Ok(it) => out.items.push(it),
            Err(u) => out.unread.push(u),
        }
    }
}

/// The values of a ledger table's key columns in a record: each the top-level field of the
/// column's name, a string, number or boolean; `None` when one is missing.
fn ledger_key(v: &Value, columns: &[String]) -> Option<Vec<String>> {
    columns.iter().map(|c| text(v.get(c))).collect()
}

fn link_names(plan: &ReconcilePlan) -> Vec<String> {
    let mut names = Vec::new();
    for r in &plan.rules {
        if let RuleKind::Link { link } = &r.kind
            && !names.contains(link)
        {
            names.push(link.clone());
        }
    }
    names
}

/// A matched pair: indexes into the items, the rule's name.
#[derive(Clone, Debug)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub rule: String,
    /// For a pair in two currencies: the declared rate used (index into the plan's
    /// `exchange_rates`) and the left amount converted into the right's currency.
    pub exchange: Option<(usize, i64)>,
}

/// The rates declared between two currencies: each one's day (none: every other day) and its
/// index in the plan.
type DatedRates = Vec<(Option<Date>, usize)>;

/// The declared exchange rates by currency pair (either order), each with its day.
struct Rates<'p> {
    declared: &'p [ExchangeRate],
    by_pair: HashMap<(&'p str, &'p str), DatedRates>,
}

impl<'p> Rates<'p> {
    fn new(declared: &'p [ExchangeRate]) -> Rates<'p> {
        let mut by_pair: HashMap<(&str, &str), DatedRates> = HashMap::new();
        for (i, r) in declared.iter().enumerate() {
            let key = if r.from <= r.to { (r.from.as_str(), r.to.as_str()) } else { (r.to.as_str(), r.from.as_str()) };
            // The compiler checked the date.
            by_pair.entry(key).or_default().push((r.date.as_deref().and_then(|d| d.parse().ok()), i));
        }
        Rates { declared, by_pair }
    }

    /// `left`'s amount in `currency` at the rate for its day (a rate of that day, else an
    /// undated one), with the rate's index; `None` without a rate (or on overflow).
    fn converted(&self, left: &Item, currency: &str) -> Option<(usize, i64)> {
        let from = left.currency.as_str();
        let key = if from <= currency { (from, currency) } else { (currency, from) };
        let rates = self.by_pair.get(&key)?;
        let (_, i) =
            rates.iter().find(|(d, _)| *d == Some(left.date)).or_else(|| rates.iter().find(|(d, _)| d.is_none()))?;
        let rate = &self.declared[*i];
        let inverse = rate.from != from;
        Some((*i, convert(left.amount, from, currency, rate.scaled, inverse)?))
    }

    /// The left amount as its partner's currency counts it: itself in one currency.
    fn left_amount(&self, left: &Item, currency: &str) -> Option<(Option<usize>, i64)> {
        if left.currency == currency {
            return Some((None, left.amount));
        }
        self.converted(left, currency).map(|(i, amount)| (Some(i), amount))
    }
}

#[derive(Clone, Debug)]
pub struct Review {
    /// An item, or an unread line (index into [`Read::unread`]).
    pub item: Option<usize>,
    pub unread: Option<usize>,
    pub reason: Reason,
    /// The id of the record this one relates to (the first of a duplicate id, the posted record
    /// that superseded it, the partner in another currency...).
    pub related: Option<String>,
}

pub struct Outcome {
    pub items: Vec<Item>,
    pub unread: Vec<Unread>,
    pub pairs: Vec<Pair>,
    pub review: Vec<Review>,
    pub records_in: u64,
}

/// Runs the ladder over everything read (left and right items in reading order).
pub fn reconcile(plan: &ReconcilePlan, read: Read) -> Outcome {
    let Read { items, unread } = read;
    let n = items.len();
    // Where each item went: None still open.
    let mut done: Vec<bool> = vec![false; n];
    let mut review: Vec<Review> = Vec::new();
    let mut pairs: Vec<Pair> = Vec::new();
    let park = |i: usize, reason: Reason, related: Option<String>, done: &mut Vec<bool>, review: &mut Vec<Review>| {
        done[i] = true;
        review.push(Review { item: Some(i), unread: None, reason, related });
    };
    // 1. Duplicate ids within an input (and within a connection, when the input names one):
    // the first read stays.
    let mut first: HashMap<(usize, Option<&str>, &str), usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        match first.get(&(it.role, it.connection.as_deref(), it.id.as_str())) {
            Some(&f) => park(i, Reason::Duplicate, Some(items[f].id.clone()), &mut done, &mut review),
            None => {
                first.insert((it.role, it.connection.as_deref(), it.id.as_str()), i);
            }
        }
    }
    // 2. Statuses taken out of matching.
    for (i, it) in items.iter().enumerate() {
        let excluded = &plan.inputs[it.role].excluded_statuses;
        if !done[i] && it.status.as_ref().is_some_and(|s| excluded.iter().any(|e| e.eq_ignore_ascii_case(s))) {
            park(i, Reason::StatusExcluded, None, &mut done, &mut review);
        }
    }
    // 3. Pending records: replaced by a posted one, or still pending.
    for i in 0..n {
        if done[i] {
            continue;
        }
        if let Some(target) = items[i].supersedes.as_deref()
            && let Some(&p) = first.get(&(items[i].role, items[i].connection.as_deref(), target))
            && p != i
            && !done[p]
        {
            park(p, Reason::Superseded, Some(items[i].id.clone()), &mut done, &mut review);
        }
    }
    for i in 0..n {
        if !done[i] && items[i].pending {
            park(i, Reason::Pending, None, &mut done, &mut review);
        }
    }
    // 4. Reversals and refunds within an input: a whole reversal pairs with its original.
    for i in 0..n {
        let Some(target) = items[i].reverses.clone() else { continue };
        if done[i] {
            continue;
        }
        match first.get(&(items[i].role, items[i].connection.as_deref(), target.as_str())) {
            Some(&o) if o != i && !done[o] && items[o].currency == items[i].currency => {
                if items[o].amount.checked_add(items[i].amount) == Some(0) {
                    done[o] = true;
                    done[i] = true;
                    pairs.push(Pair { a: o, b: i, rule: "reversal".into(), exchange: None });
                } else {
                    park(i, Reason::PartialReversal, Some(target), &mut done, &mut review);
                }
            }
            _ => park(i, Reason::ReversalWithoutOriginal, Some(target), &mut done, &mut review),
        }
    }
    // 5. The ladder.
    let rates = Rates::new(&plan.exchange_rates);
    let link_names = link_names(plan);
    let mut near: BTreeMap<usize, (Reason, String)> = BTreeMap::new();
    for rule in &plan.rules {
        let mut edges = candidates(rule, &items, &done, &link_names, &rates, &mut near);
        edges.sort_unstable();
        for (_, l, r) in edges {
            if !done[l] && !done[r] {
                done[l] = true;
                done[r] = true;
                let exchange = match rates.left_amount(&items[l], &items[r].currency) {
                    Some((Some(rate), amount)) => Some((rate, amount)),
                    _ => None,
                };
                pairs.push(Pair { a: l, b: r, rule: rule.name.clone(), exchange });
            }
        }
    }
    // 6. What is left: a near miss, a possible duplicate of a matched record, or nothing.
    let matched_keys: HashMap<(usize, i64, &str, Date, &[String]), usize> = pairs
        .iter()
        .flat_map(|p| [p.a, p.b])
        .map(|i| {
            ((items[i].role, items[i].amount, items[i].currency.as_str(), items[i].date, &items[i].payee_words[..]), i)
        })
        .collect();
    for i in 0..n {
        if done[i] {
            continue;
        }
        let it = &items[i];
        let (reason, related) = match near.get(&i) {
            Some((reason, partner)) => (*reason, Some(partner.clone())),
            None => match matched_keys.get(&(it.role, it.amount, it.currency.as_str(), it.date, &it.payee_words[..])) {
                Some(&m) => (Reason::PossibleDuplicate, Some(items[m].id.clone())),
                None => (Reason::NoCandidate, None),
            },
        };
        park(i, reason, related, &mut done, &mut review);
    }
    for (u, line) in unread.iter().enumerate() {
        review.push(Review { item: None, unread: Some(u), reason: line.reason, related: None });
    }
    // Outputs in a fixed order: pairs by the first record's position, review by input then position.
    pairs.sort_by_key(|p| p.a.min(p.b));
    let position = |r: &Review| match (r.item, r.unread) {
        (Some(i), _) => (items[i].role, 0, i),
        (_, Some(u)) => (unread[u].role, 1, u),
        _ => (2, 2, 0),
    };
    review.sort_by_key(position);
    let records_in = (n + unread.len()) as u64;
    Outcome { items, unread, pairs, review, records_in }
}

/// How close a candidate pair is, smaller first: amount difference (minor units), days apart,
/// payee dissimilarity (per mille).
type Score = (u64, u64, u64);

/// Candidate pairs of one rule among open records: (score, left, right). Near misses of id and
/// link rules (another currency without a rate, an amount out of tolerance) are noted in
/// `near`. Amounts are compared in the right's currency (the left's converted when they differ).
fn candidates(
    rule: &RulePlan,
    items: &[Item],
    done: &[bool],
    link_names: &[String],
    rates: &Rates,
    near: &mut BTreeMap<usize, (Reason, String)>,
) -> Vec<(Score, usize, usize)> {
    let open = |role: usize| (0..items.len()).filter(move |&i| !done[i] && items[i].role == role);
    let mut edges = Vec::new();
    let key_of = |i: usize| -> Option<&str> {
        match &rule.kind {
            RuleKind::Ids => Some(items[i].id.as_str()),
            RuleKind::Link { link } => {
                let k = link_names.iter().position(|l| l == link)?;
                items[i].links.get(k)?.as_deref()
            }
            RuleKind::Window { .. } => None,
        }
    };
    match &rule.kind {
        RuleKind::Ids | RuleKind::Link { .. } => {
            let mut rights: HashMap<&str, Vec<usize>> = HashMap::new();
            for r in open(1) {
                if let Some(k) = key_of(r) {
                    rights.entry(k).or_default().push(r);
                }
            }
            for l in open(0) {
                let Some(k) = key_of(l) else { continue };
                for &r in rights.get(k).map(Vec::as_slice).unwrap_or_default() {
                    let (a, b) = (&items[l], &items[r]);
                    let Some((_, amount)) = rates.left_amount(a, &b.currency) else {
                        near.entry(l).or_insert((Reason::CurrencyMismatch, b.id.clone()));
                        near.entry(r).or_insert((Reason::CurrencyMismatch, a.id.clone()));
                        continue;
                    };
                    let diff = amount.abs_diff(b.amount);
                    if !within(rule.amount, amount, diff) {
                        near.entry(l).or_insert((Reason::AmountMismatch, b.id.clone()));
                        near.entry(r).or_insert((Reason::AmountMismatch, a.id.clone()));
                        continue;
                    }
                    edges.push(((diff, (b.date - a.date).get_days().unsigned_abs().into(), 0), l, r));
                }
            }
        }
        RuleKind::Window { days_min, days_max, payee } => {
            // Rights by currency, sorted by amount: each left looks at its amount range only.
            let mut rights: HashMap<&str, Vec<(i64, usize)>> = HashMap::new();
            for r in open(1) {
                rights.entry(items[r].currency.as_str()).or_default().push((items[r].amount, r));
            }
            for v in rights.values_mut() {
                v.sort();
            }
            for l in open(0) {
                let a = &items[l];
                // Each currency's pool: the left's own, and those a declared rate converts into.
                // (The edges are sorted afterwards, so the map's order does not matter.)
                for (currency, pool) in &rights {
                    let Some((_, amount)) = rates.left_amount(a, currency) else { continue };
                    window_edges(rule, l, amount, pool, items, (*days_min, *days_max, *payee), &mut edges);
                }
            }
        }
    }
    edges
}

/// The window rule's candidates for left `l` (its amount `amount` in the pool's currency)
/// among `pool`, open rights of one currency sorted by amount.
fn window_edges(
    rule: &RulePlan,
    l: usize,
    amount: i64,
    pool: &[(i64, usize)],
    items: &[Item],
    (days_min, days_max, payee): (i64, i64, Option<f64>),
    edges: &mut Vec<(Score, usize, usize)>,
) {
    let a = &items[l];
    let tol = tolerance_minor(rule.amount, amount);
    let lo = pool.partition_point(|(amt, _)| *amt < amount.saturating_sub(tol));
    for &(amt, r) in &pool[lo..] {
        if amt > amount.saturating_add(tol) {
            break;
        }
        let b = &items[r];
        let days = (b.date - a.date).get_days() as i64;
        if days < days_min || days > days_max {
            continue;
        }
        let sim = similarity(&a.payee_words, &b.payee_words);
        if payee.is_some_and(|least| sim < least) {
            continue;
        }
        let unlike = 1000 - (sim * 1000.0).round().clamp(0.0, 1000.0) as u64;
        edges.push(((amount.abs_diff(amt), days.unsigned_abs(), unlike), l, r));
    }
}

/// The tolerance in minor units for a left amount.
fn tolerance_minor(t: Tolerance, amount: i64) -> i64 {
    match t {
        Tolerance::Minor(m) => m,
        Tolerance::PerMille(pm) => (i128::from(amount).abs() * i128::from(pm) / 1000).min(i128::from(i64::MAX)) as i64,
    }
}

fn within(t: Tolerance, amount: i64, diff: u64) -> bool {
    diff <= tolerance_minor(t, amount).max(0) as u64
}

/// A minor-unit amount as a decimal in major units (`-1050`, USD: `-10.50`).
pub fn decimal(amount: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return amount.to_string();
    }
    let p = 10_u64.pow(digits);
    let sign = if amount < 0 { "-" } else { "" };
    let a = amount.unsigned_abs();
    format!("{sign}{}.{:0width$}", a / p, a % p, width = digits as usize)
}

fn side(plan: &ReconcilePlan, it: &Item) -> Value {
    let mut m = Map::new();
    m.insert("input".into(), json!(plan.inputs[it.role].name));
    if let Some(c) = &it.connection {
        m.insert("connection".into(), json!(c));
    }
    m.insert("id".into(), json!(it.id));
    m.insert("amount".into(), json!(decimal(it.amount, &it.currency)));
    m.insert("currency".into(), json!(it.currency));
    m.insert("date".into(), json!(it.date.to_string()));
    if let Some(c) = &it.category.category {
        m.insert("category".into(), json!(c));
    }
    if !it.category.tags.is_empty() {
        m.insert("tags".into(), json!(it.category.tags));
    }
    m.insert("file".into(), json!(it.file));
    m.insert("line".into(), json!(it.line));
    Value::Object(m)
}

impl Outcome {
    /// The matched output: one JSON object per pair.
    pub fn matched_lines(&self, plan: &ReconcilePlan) -> String {
        let mut out = String::new();
        for p in &self.pairs {
            let (a, b) = (&self.items[p.a], &self.items[p.b]);
            // A reversal pair cancels out (its difference is the sum); a match differs by b - a,
            // in b's currency (a's amount converted when the pair is in two).
            let left_amount = p.exchange.map_or(a.amount, |(_, converted)| converted);
            let (first, second, difference) = if p.rule == "reversal" {
                ("original", "reversal", a.amount.saturating_add(b.amount))
            } else {
                ("left", "right", b.amount.saturating_sub(left_amount))
            };
            let mut v = json!({
                "rule": p.rule,
                first: side(plan, a),
                second: side(plan, b),
                "difference": decimal(difference, &b.currency),
                "days_apart": (b.date - a.date).get_days(),
            });
            if let Some((rate, converted)) = p.exchange {
                let r = &plan.exchange_rates[rate];
                let mut used = json!({"from": r.from, "to": r.to, "rate": r.rate});
                if let Some(d) = &r.date {
                    used["date"] = json!(d);
                }
                v["exchange_rate"] = used;
                v["left_converted"] = json!(decimal(converted, &b.currency));
            }
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out
    }

    /// The review output: one JSON object per record not matched, with its reason.
    pub fn review_lines(&self, plan: &ReconcilePlan) -> String {
        let mut out = String::new();
        for r in &self.review {
            let mut m = Map::new();
            m.insert("reason".into(), json!(r.reason.as_str()));
            match (r.item, r.unread) {
                (Some(i), _) => {
                    let it = &self.items[i];
                    m.insert("role".into(), json!(plan.inputs[it.role].role));
                    if let Value::Object(s) = side(plan, it) {
                        m.extend(s);
                    }
                }
                (_, Some(u)) => {
                    let un = &self.unread[u];
                    m.insert("code".into(), json!(code(un.reason)));
                    m.insert("role".into(), json!(plan.inputs[un.role].role));
                    m.insert("input".into(), json!(plan.inputs[un.role].name));
                    m.insert("detail".into(), json!(un.detail));
                    m.insert("file".into(), json!(un.file));
                    m.insert("line".into(), json!(un.line));
                }
                _ => {}
            }
            if let Some(rel) = &r.related {
                m.insert("related".into(), json!(rel));
            }
            out.push_str(&Value::Object(m).to_string());
            out.push('\n');
        }
        out
    }

    /// Records in pairs.
    pub fn matched_records(&self) -> u64 {
        2 * self.pairs.len() as u64
    }

    /// The summary: the brief's `reconciliation` block (records), and counts by rule and reason.
    pub fn summary(&self, plan: &ReconcilePlan) -> Value {
        let duplicates = self.review.iter().filter(|r| r.reason.counts_as_duplicate()).count();
        let mut by_rule: BTreeMap<&str, u64> = BTreeMap::new();
        for p in &self.pairs {
            *by_rule.entry(p.rule.as_str()).or_default() += 1;
        }
        let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
        for r in &self.review {
            *by_reason.entry(r.reason.as_str()).or_default() += 1;
        }
        let per_input: Vec<Value> = plan
            .inputs
            .iter()
            .enumerate()
            .map(|(role, i)| {
                let read = self.items.iter().filter(|it| it.role == role).count()
                    + self.unread.iter().filter(|u| u.role == role).count();
                json!({"role": i.role, "input": i.name, "records": read})
            })
            .collect();
        json!({
            "name": plan.name,
            "reconciliation": {
                "matched": self.matched_records(),
                "unmatched": self.review.len(),
                "duplicates": duplicates,
            },
            "records_in": self.records_in,
            "inputs": per_input,
            "pairs": self.pairs.len(),
            "pairs_by_rule": by_rule,
            "review_by_reason": by_reason,
        })
    }
}

/// The finding code of an unread line.
pub fn code(reason: Reason) -> &'static str {
    match reason {
        Reason::Unreadable => findings::RECONCILE_UNREADABLE,
        _ => findings::RECONCILE_INVALID_FIELD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_compiler::spec::reconcile::{AmountUnit, InputPlan, RulePlan};

    fn input(role: &str) -> InputPlan {
        InputPlan {
            role: role.into(),
            name: role.into(),
            paths: vec![],
            written_paths: vec![],
            id: "id".into(),
            amount: "amount".into(),
            amount_unit: AmountUnit::Minor,
            negate: false,
            currency: Some("currency".into()),
            default_currency: None,
            date: "date".into(),
            time_zone: "America/New_York".into(),
            payee: Some("payee".into()),
            merchant: None,
            mcc: None,
            status: Some("status".into()),
            excluded_statuses: vec!["failed".into()],
            reverses: Some("reverses".into()),
            supersedes: Some("supersedes".into()),
            pending: Some("pending".into()),
            links: vec![("trace".into(), "trace".into())],
            account: None,
            source: None,
            default_source: None,
            connection: None,
        }
    }

    fn plan() -> ReconcilePlan {
        ReconcilePlan {
            name: "t".into(),
            inputs: vec![input("left"), input("right")],
            rules: vec![
                RulePlan { name: "ids".into(), kind: RuleKind::Ids, amount: Tolerance::Minor(0) },
                RulePlan {
                    name: "trace".into(),
                    kind: RuleKind::Link { link: "trace".into() },
                    amount: Tolerance::PerMille(10),
                },
                RulePlan {
                    name: "window".into(),
                    kind: RuleKind::Window { days_min: -1, days_max: 3, payee: Some(0.5) },
                    amount: Tolerance::Minor(5),
                },
            ],
            categories: vec![],
            matched: String::new(),
            review: String::new(),
            summary: String::new(),
            statements: None,
            ledger: None,
            exchange_rates: vec![],
        }
    }

    /// A record drawn from small domains, so ids, traces, amounts and dates collide often.
    fn record() -> impl Strategy<Value = String> {
        (
            0u8..12,
            prop::option::of(0u8..6),
            -3i64..6,
            prop::sample::select(vec!["USD", "CAD", "usd", "", "JPY"]),
            0u8..6,
            prop::sample::select(vec!["ACME CLINIC", "acme", "BLUE BOTTLE", ""]),
            prop::sample::select(vec!["paid", "failed"]),
            any::<bool>(),
            prop::option::of(0u8..12),
            prop::option::of(0u8..12),
        )
            .prop_map(|(id, trace, amount, cur, day, payee, status, pending, rev, sup)| {
                let mut v = json!({
                    "id": format!("x{id}"), "amount": amount * 100, "currency": cur,
                    "date": format!("2024-01-{:02}", 10 + day), "payee": payee, "status": status,
                    "pending": pending,
                });
                if let Some(t) = trace {
                    v["trace"] = json!(format!("T{t}"));
                }
                if let Some(r) = rev {
                    v["reverses"] = json!(format!("x{r}"));
                }
                if let Some(s) = sup {
                    v["supersedes"] = json!(format!("x{s}"));
                }
                v.to_string()
            })
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![8 => record(), 1 => "\\PC{0,30}", 1 => Just("{\"id\": 1}".to_string())]
    }

    proptest! {
        /// Every line read ends in exactly one place, pairs are one-to-one and cross inputs
        /// (a reversal pair stays within one), and the same lines give the same bytes.
        #[test]
        fn nothing_is_lost_and_the_outcome_is_deterministic(
            left in prop::collection::vec(line(), 0..25),
            right in prop::collection::vec(line(), 0..25),
        ) {
            let mut plan = plan();
            // CAD and USD pairs may match through a rate; JPY pairs with either never do.
            plan.exchange_rates = vec![ExchangeRate {
                from: "CAD".into(),
                to: "USD".into(),
                rate: "0.75".into(),
                scaled: sluice_compiler::spec::reconcile::parse_rate("0.75").unwrap(),
                date: None,
            }];
            let run = || {
                let mut read = Read::default();
                read_lines(&plan, 0, "left.jsonl", &left.join("\n"), &mut read);
                read_lines(&plan, 1, "right.jsonl", &right.join("\n"), &mut read);
                reconcile(&plan, read)
            };
            let o = run();
            let lines = left.iter().chain(&right).filter(|l| !l.trim().is_empty()).count() as u64;
            prop_assert_eq!(o.records_in, lines);
            prop_assert_eq!(o.records_in, o.matched_records() + o.review.len() as u64);
            let mut seen = vec![0u8; o.items.len()];
            for p in &o.pairs {
                seen[p.a] += 1;
                seen[p.b] += 1;
                let (a, b) = (&o.items[p.a], &o.items[p.b]);
                if a.currency == b.currency {
                    prop_assert!(p.exchange.is_none());
                } else {
                    prop_assert!(p.rule != "reversal" && p.exchange.is_some(), "{:?}", p);
                    prop_assert!([&a.currency, &b.currency].iter().all(|c| *c == "USD" || *c == "CAD"));
                }
                if p.rule == "reversal" {
                    prop_assert_eq!(a.role, b.role);
                    prop_assert_eq!(a.amount + b.amount, 0);
                } else {
                    prop_assert_eq!((a.role, b.role), (0, 1));
                }
            }
            for r in &o.review {
                if let Some(i) = r.item {
                    seen[i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "{:?}", seen);
            let again = run();
            prop_assert_eq!(o.matched_lines(&plan), again.matched_lines(&plan));
            prop_assert_eq!(o.review_lines(&plan), again.review_lines(&plan));
        }
    }

    #[test]
    fn a_declared_rate_lets_a_pair_in_two_currencies_match_and_the_output_names_it() {
        let mut plan = plan();
        let rate = |from: &str, to: &str, rate: &str, date: Option<&str>| ExchangeRate {
            from: from.into(),
            to: to.into(),
            rate: rate.into(),
            scaled: sluice_compiler::spec::reconcile::parse_rate(rate).unwrap(),
            date: date.map(str::to_string),
        };
        plan.exchange_rates =
            vec![rate("EUR", "USD", "1.0850", None), rate("EUR", "USD", "1.1000", Some("2024-01-12"))];
        let line = |id: &str, amount: i64, currency: &str, day: u8, payee: &str| {
            json!({"id": id, "amount": amount, "currency": currency, "date": format!("2024-01-{day:02}"),
                "payee": payee, "status": "paid"})
            .to_string()
        };
        let left = [
            // 100.00 EUR at the undated rate is 108.50 USD: the ids rule (no tolerance) matches.
            line("x1", 10000, "EUR", 10, "a"),
            // On the 12th the dated rate applies: 110.00 USD, not the right's 108.50.
            line("x2", 10000, "EUR", 12, "b"),
            // No rate between GBP and USD.
            line("x3", 1000, "GBP", 10, "c"),
            // The inverse: 108.50 USD is 100.00 EUR, which the window finds a day later.
            line("x4", 10850, "USD", 10, "acme clinic"),
        ]
        .join("\n");
        let right = [
            line("x1", 10850, "USD", 10, "a"),
            line("x2", 10850, "USD", 12, "b"),
            line("x3", 1270, "USD", 10, "c"),
            line("y4", 10000, "EUR", 11, "acme clinic"),
        ]
        .join("\n");
        let mut read = Read::default();
        read_lines(&plan, 0, "left.jsonl", &left, &mut read);
        read_lines(&plan, 1, "right.jsonl", &right, &mut read);
        let o = reconcile(&plan, read);
        let matched: Vec<serde_json::Value> =
            o.matched_lines(&plan).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(matched.len(), 2, "{matched:?}");
        assert_eq!(matched[0]["rule"], "ids");
        assert_eq!(matched[0]["exchange_rate"], json!({"from": "EUR", "to": "USD", "rate": "1.0850"}));
        assert_eq!((&matched[0]["left_converted"], &matched[0]["difference"]), (&json!("108.50"), &json!("0.00")));
        assert_eq!(matched[1]["rule"], "window");
        assert_eq!(matched[1]["right"]["id"], "y4");
        assert_eq!(matched[1]["left_converted"], "100.00");
        let reasons: Vec<(String, Reason)> =
            o.review.iter().filter_map(|r| Some((o.items[r.item?].id.clone(), r.reason))).collect();
        assert!(reasons.contains(&("x2".into(), Reason::AmountMismatch)), "{reasons:?}");
        assert!(reasons.contains(&("x3".into(), Reason::CurrencyMismatch)), "{reasons:?}");
    }

    #[test]
    fn a_late_evening_deposit_in_new_york_is_dated_that_day() {
        let ny = jiff::tz::db().get("America/New_York").unwrap();
        // 2024-01-31 23:30 in New York is 2024-02-01 04:30 UTC.
        let d = local_date(&json!("2024-02-01T04:30:00Z"), &ny).unwrap();
        assert_eq!(d.to_string(), "2024-01-31");
        let d = local_date(&json!(1_706_761_800), &ny).unwrap();
        assert_eq!(d.to_string(), "2024-01-31");
        let d = local_date(&json!("2024-01-31T23:30:00"), &ny).unwrap();
        assert_eq!(d.to_string(), "2024-01-31");
        assert_eq!(local_date(&json!("20240120"), &ny).unwrap().to_string(), "2024-01-20");
        assert_eq!(local_date(&json!("20241320"), &ny), None);
        assert_eq!(local_date(&json!("yesterday"), &ny), None);
    }

    #[test]
    fn with_a_connection_field_one_id_in_two_connections_is_two_records() {
        let mut plan = plan();
        plan.inputs[0].connection = Some("connection".into());
        let line = |connection: &str, id: &str, reverses: &str| {
            json!({"connection": connection, "id": id, "amount": if reverses.is_empty() { 1000 } else { -1000 },
                "currency": "USD", "date": "2024-01-02", "status": "paid", "reverses": reverses})
            .to_string()
        };
        let left = [
            line("east", "Purchase/101", ""),
            line("west", "Purchase/101", ""),
            line("east", "Purchase/101", ""),
            // A reversal pairs with the original of its own connection only.
            line("west", "Refund/7", "Purchase/101"),
        ]
        .join("\n");
        let mut read = Read::default();
        read_lines(&plan, 0, "left.jsonl", &left, &mut read);
        let o = reconcile(&plan, read);
        let duplicates: Vec<usize> =
            o.review.iter().filter(|r| r.reason == Reason::Duplicate).filter_map(|r| r.item).collect();
        assert_eq!(duplicates, [2], "only east's second copy is a duplicate");
        let reversal = o.pairs.iter().find(|p| p.rule == "reversal").expect("the refund pairs");
        assert_eq!((reversal.a, reversal.b), (1, 3));
        assert!(o.review_lines(&plan).contains("\"connection\":\"east\""));
        // Without the field (`@1` rows), the same lines are one id read three times.
        plan.inputs[0].connection = None;
        let mut read = Read::default();
        read_lines(&plan, 0, "left.jsonl", &left, &mut read);
        let o = reconcile(&plan, read);
        assert_eq!(o.review.iter().filter(|r| r.reason == Reason::Duplicate).count(), 2);
    }

    #[test]
    fn decimals_follow_the_currency() {
        assert_eq!(decimal(-1050, "USD"), "-10.50");
        assert_eq!(decimal(5, "USD"), "0.05");
        assert_eq!(decimal(1200, "JPY"), "1200");
        assert_eq!(decimal(1234, "KWD"), "1.234");
    }

    #[test]
    fn payee_similarity_is_the_shorter_payees_share() {
        let a = words("ACME Clinic payout");
        let b = words("STRIPE TRANSFER acme clinic");
        assert!((similarity(&a, &b) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(similarity(&a, &[]), 0.0);
    }
}
