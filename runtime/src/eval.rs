//! Expression evaluation: the typed [`Expr`] tree over an HL7 message, loop variables bound to
//! repetitions, group variables bound to segment group instances (paths on them read only the
//! instance's segments), or an output document; HL7 value conversion; built-in functions; lookup tables;
//! minijinja templates (plain `{{ name }}` templates by concatenation, [`crate::plain_template`]);
//! items of a finance object's arrays bound by `each: Line[*]` (paths on them walk the item's JSON);
//! a finance record's provenance (`connection()`, `envelope(...)`: [`Provenance`]).
//!
//! Invariants:
//! - Never panics and never fails: a value that cannot be converted becomes null plus a warning
//!   `{code, path, message}` where `path` is the output field and `message` names the source
//!   path and the expected form, never the value.
//! - Deterministic: no clock, no randomness, no hash-map iteration order in results.
//! - Paths and templates are prepared once per plan ([`Prepared::prepare`]), not per record,
//!   and found again per record by a fast hash of their spec text ([`PlanHasher`]: spec text
//!   is trusted, so it does not need SipHash's resistance to chosen keys; data never is a key).
//! - Types were checked by the compiler; evaluation does not re-check them, it only converts
//!   text as the expression's `value_type` says.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use minijinja::{AutoEscape, Environment};
use sluice_compiler::expr::ast::{BinaryOp, Expr, Function, Literal};
use sluice_hl7v2::path::Path;
use sluice_spec_core::ValueType;

use crate::findings;
use crate::hl7::{self, Binding};
use crate::plain_template::PlainTemplate;
use crate::record::{Doc, Issue, json_decimal};
use crate::time;

/// A value during evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    /// Decimal as JSON number text, kept as written (`72.50`).
    Dec(String),
    Str(String),
    List(Vec<Val>),
}

impl Val {
    pub fn is_empty(&self) -> bool {
        match self {
            Val::Null => true,
            Val::Str(s) => s.is_empty(),
            Val::List(l) => l.iter().all(Val::is_empty),
            _ => false,
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            other => !other.is_empty(),
        }
    }

    /// Text form (lists are joined with `,`); `None` for null.
    pub fn text(&self) -> Option<String> {
        self.as_text().map(Cow::into_owned)
    }

    /// [`Val::text`], borrowed for strings and decimals (compared, not kept).
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Val::Null => None,
            Val::Bool(b) => Some(Cow::Owned(b.to_string())),
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::Dec(d) | Val::Str(d) => Some(Cow::Borrowed(d)),
            Val::List(items) => Some(Cow::Owned(items.iter().filter_map(Val::text).collect::<Vec<_>>().join(","))),
        }
    }

    /// The value as a document member; strings move instead of being copied.
    pub fn into_doc(self) -> Doc {
        match self {
            Val::Null => Doc::Null,
            Val::Bool(b) => Doc::Bool(b),
            Val::Int(i) => Doc::Num(i.to_string()),
            Val::Dec(d) => json_decimal(&d).map(Doc::Num).unwrap_or(Doc::Str(d)),
            Val::Str(s) => Doc::Str(s),
            Val::List(items) => Doc::Arr(items.into_iter().map(Val::into_doc).collect()),
        }
    }

    pub fn from_doc(d: &Doc) -> Val {
        match d {
            Doc::Null | Doc::Obj(_) => Val::Null,
            Doc::Bool(b) => Val::Bool(*b),
            Doc::Num(n) => n.parse::<i64>().map(Val::Int).unwrap_or_else(|_| Val::Dec(n.clone())),
            Doc::Str(s) => Val::Str(s.clone()),
            Doc::Arr(a) => Val::List(a.iter().map(Val::from_doc).collect()),
        }
    }

    /// Template value; decimals are passed as text so they render as written.
    fn to_template(&self) -> minijinja::Value {
        match self {
            Val::Null => minijinja::Value::from(()),
            Val::Bool(b) => minijinja::Value::from(*b),
            Val::Int(i) => minijinja::Value::from(*i),
            Val::Dec(d) | Val::Str(d) => minijinja::Value::from(d.clone()),
            Val::List(items) => minijinja::Value::from(items.iter().map(Val::to_template).collect::<Vec<_>>()),
        }
    }
}

/// FxHash (as in rustc) for maps keyed by a plan's spec text (HL7 paths, template sources):
/// a few short keys looked up several times per record, where SipHash costs more than the
/// lookup. Never used for keys that come from data.
#[derive(Default)]
pub struct PlanHasher(u64);

impl PlanHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for PlanHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type PlanMap<'p, V> = HashMap<&'p str, V, BuildHasherDefault<PlanHasher>>;

/// HL7 and X12 paths and templates of a plan, parsed and compiled once.
pub struct Prepared<'p> {
    paths: PlanMap<'p, Path>,
    x12_paths: PlanMap<'p, sluice_x12::path::Path>,
    templates: Environment<'p>,
    /// Templates rendered without minijinja, by source.
    plain: PlanMap<'p, PlainTemplate<'p>>,
}

impl Default for Prepared<'_> {
    fn default() -> Self {
        let mut templates = Environment::new();
        templates.set_auto_escape_callback(|_| AutoEscape::None);
        Prepared { paths: PlanMap::default(), x12_paths: PlanMap::default(), templates, plain: PlanMap::default() }
    }
}

impl<'p> Prepared<'p> {
    /// Parses every HL7 path and compiles every template in `expr`. The error names the path
    /// or says which template failed (spec text, not data).
    pub fn prepare(&mut self, expr: &'p Expr) -> Result<(), String> {
        match expr {
            Expr::Lit { .. } | Expr::Var { .. } | Expr::Field { .. } | Expr::Fhir { .. } | Expr::Item { .. } => Ok(()),
            Expr::X12 { path, .. } => {
                if !self.x12_paths.contains_key(path.as_str()) {
                    let p = crate::x12_path::parse(path).ok_or_else(|| format!("X12 path `{path}` does not parse"))?;
                    self.x12_paths.insert(path, p);
                }
                Ok(())
            }
            Expr::Hl7 { path, .. } | Expr::Within { path, .. } => {
                if !self.paths.contains_key(path.as_str()) {
                    let p = hl7::parse_path(path).map_err(|e| format!("HL7 path `{path}`: {e}"))?;
                    self.paths.insert(path, p);
                }
                Ok(())
            }
            Expr::Call { args, .. } => args.iter().try_for_each(|a| self.prepare(a)),
            Expr::List { items } => items.iter().try_for_each(|a| self.prepare(a)),
            Expr::Lookup { value, default, .. } => {
                self.prepare(value)?;
                default.as_deref().map_or(Ok(()), |d| self.prepare(d))
            }
            Expr::Template { source, vars } => {
                if self.templates.get_template(source).is_err() {
                    self.templates
                        .add_template(source, source)
                        .map_err(|e| format!("template does not compile: {}", e.kind()))?;
                }
                // Every variable a template uses is bound by its call (the compiler checked it),
                // so a plain source compiles the same for every call.
                let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
                if let Some(plain) = PlainTemplate::parse(source, &names) {
                    self.plain.insert(source, plain);
                }
                vars.iter().try_for_each(|(_, e)| self.prepare(e))
            }
            Expr::Binary { lhs, rhs, .. } => {
                self.prepare(lhs)?;
                self.prepare(rhs)
            }
            Expr::Not { operand } => self.prepare(operand),
        }
    }

    pub fn path(&self, text: &str) -> Option<&Path> {
        self.paths.get(text)
    }
}

/// Code tables of a map stage: table -> code -> value.
pub type Tables = HashMap<String, HashMap<String, String>>;

/// What an expression is evaluated against.
pub struct Scope<'a> {
    pub prepared: &'a Prepared<'a>,
    pub msg: Option<&'a hl7::Reader<'a>>,
    pub doc: Option<&'a Doc>,
    pub tables: Option<&'a Tables>,
    pub vars: Vec<(&'a str, &'a Binding<'a>)>,
    /// Segment group variables (`each: group(...)`), innermost last.
    pub groups: Vec<(&'a str, &'a crate::groups::Instance)>,
    /// Normalised zone for HL7 times without an offset.
    pub zone: &'a str,
    /// Validation mode: HL7 values stay raw text (no conversion).
    pub raw: bool,
    /// Output field (or rule) being computed, for warnings.
    pub field: &'a str,
    /// The Bundle a FHIR record came from, for `resolve()`.
    pub bundle: Option<&'a crate::fhir_source::BundleIndex>,
    /// An X12 record's set, its loops identified once for all paths.
    pub x12: Option<&'a sluice_x12::loops::Identified<'a>>,
    /// The X12 loop occurrence bound by a list's `each: loop(ID)` (an instance of `x12`):
    /// paths through that loop read it.
    pub x12_at: Option<usize>,
    /// Where a finance record came from, for `connection()` and `envelope(...)`.
    pub provenance: Option<Provenance<'a>>,
    /// Items of a finance object's arrays bound by `each: Line[*]` (`as: line`), innermost
    /// last: `line.Amount` reads that item.
    pub items: &'a [(&'a str, &'a Doc)],
}

/// Where a finance record came from: its source's provenance (from the plan) and the envelope
/// the sync set on the record, if any (none in `sluice test`, nor after replaying a DLQ entry
/// written before entries kept envelopes).
#[derive(Clone, Copy)]
pub struct Provenance<'a> {
    pub source: &'a crate::compile::SourceProvenance,
    pub bus: Option<&'a crate::record::BusMeta>,
}

impl Provenance<'_> {
    /// The value of envelope `name`: the record's own, else the one its source fixes.
    fn envelope(&self, name: &str) -> Option<String> {
        let own = self.bus.and_then(|b| b.headers.iter().find(|(k, _)| k == name)).and_then(|(_, v)| v.as_deref());
        match own {
            Some(v) => std::str::from_utf8(v).ok().map(str::to_string),
            None => self.source.fixed.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()),
        }
    }
}

impl<'a> Scope<'a> {
    /// The scope a step starts from: no variables, no groups, values converted.
    pub fn root(
        prepared: &'a Prepared<'a>,
        msg: Option<&'a hl7::Reader<'a>>,
        doc: Option<&'a Doc>,
        tables: Option<&'a Tables>,
        zone: &'a str,
        field: &'a str,
    ) -> Scope<'a> {
        Scope {
            prepared,
            msg,
            doc,
            tables,
            vars: Vec::new(),
            groups: Vec::new(),
            zone,
            raw: false,
            field,
            bundle: None,
            x12: None,
            x12_at: None,
            provenance: None,
            items: &[],
        }
    }

    pub fn eval(&self, expr: &Expr, warnings: &mut Vec<Issue>) -> Val {
        match expr {
            Expr::Lit { value } => match value {
                Literal::Null => Val::Null,
                Literal::Bool(b) => Val::Bool(*b),
                Literal::Int(i) => Val::Int(*i),
                Literal::Dec(d) => json_decimal(d).map(Val::Dec).unwrap_or_else(|| Val::Str(d.clone())),
                Literal::Str(s) => Val::Str(s.clone()),
            },
            Expr::Hl7 { path, value_type, multi } | Expr::Within { path, value_type, multi, .. } => {
                let (Some(msg), Some(p)) = (self.msg, self.prepared.path(path)) else {
                    return if *multi { Val::List(Vec::new()) } else { Val::Null };
                };
                if !*multi && matches!(expr, Expr::Hl7 { .. }) {
                    // One value: read the first without collecting the others.
                    return match msg.first(p) {
                        Some(v) => self.convert(&v, value_type, path, warnings),
                        None => Val::Null,
                    };
                }
                let values: Vec<std::borrow::Cow<'_, str>> = match expr {
                    Expr::Within { var, .. } => match self.groups.iter().rev().find(|(n, _)| n == var) {
                        Some((_, g)) => {
                            hl7::select_among(msg.tree(), &g.visible, p).into_iter().map(Into::into).collect()
                        }
                        None => Vec::new(),
                    },
                    _ => msg.select(p),
                };
                if *multi {
                    Val::List(values.iter().map(|v| self.convert(v, value_type, path, warnings)).collect())
                } else {
                    match values.first() {
                        Some(v) => self.convert(v, value_type, path, warnings),
                        None => Val::Null,
                    }
                }
            }
            Expr::Var { name, component, subcomponent, value_type } => {
                let Some((_, b)) = self.vars.iter().rev().find(|(n, _)| n == name) else {
                    return Val::Null;
                };
                match hl7::binding_value(b, *component, *subcomponent) {
                    // The variable's text only names it in a conversion warning: formatted
                    // only for a type whose conversion can fail.
                    Some(v) if self.raw || !conversion_can_fail(value_type) => {
                        self.convert(v, value_type, "", warnings)
                    }
                    Some(v) => {
                        let what = var_text(name, *component, *subcomponent);
                        self.convert(v, value_type, &what, warnings)
                    }
                    None => Val::Null,
                }
            }
            Expr::Field { path, .. } => {
                self.doc.and_then(|d| d.get_dotted(path)).map(Val::from_doc).unwrap_or(Val::Null)
            }
            // A FHIR resource's values are typed JSON already: no text conversion.
            Expr::Fhir { path, multi, .. } => {
                let values = self.doc.map(|d| crate::fhir_path::select_in(d, self.bundle, path)).unwrap_or_default();
                if *multi {
                    Val::List(values.into_iter().map(Val::from_doc).collect())
                } else {
                    values.first().map_or(Val::Null, |d| Val::from_doc(d))
                }
            }
            // An item of a finance object's array: typed JSON, walked as a FHIR path is.
            Expr::Item { var, path, multi, .. } => {
                let values = match self.items.iter().rev().find(|(n, _)| n == var) {
                    Some((_, item)) => crate::fhir_path::select_in(item, None, path),
                    None => Vec::new(),
                };
                if *multi {
                    Val::List(values.into_iter().map(Val::from_doc).collect())
                } else {
                    values.first().map_or(Val::Null, |d| Val::from_doc(d))
                }
            }
            // An X12 set's values are text, converted to the element's type like HL7's.
            Expr::X12 { path, value_type, multi } => {
                let values = match (self.x12, self.prepared.x12_paths.get(path.as_str())) {
                    (Some(set), Some(p)) => crate::x12_path::select(set, p, self.x12_at),
                    _ => Vec::new(),
                };
                if *multi {
                    Val::List(values.iter().map(|v| self.convert(v, value_type, path, warnings)).collect())
                } else {
                    values.first().map_or(Val::Null, |v| self.convert(v, value_type, path, warnings))
                }
            }
            Expr::Call { function, args } => self.call(*function, args, warnings),
            Expr::Lookup { value, table, default } => {
                let v = self.eval(value, warnings);
                self.lookup(v, table, default.as_deref(), warnings)
            }
            Expr::Template { source, vars } => {
                let values: Vec<Val> = vars.iter().map(|(_, e)| self.eval(e, warnings)).collect();
                // The last binding of a name, as in the context minijinja gets.
                let text = |name: &str| match vars.iter().rposition(|(n, _)| n == name).map(|i| &values[i]) {
                    Some(Val::Str(s) | Val::Dec(s)) => Some(s.as_str()),
                    _ => None,
                };
                if let Some(plain) = self.prepared.plain.get(source.as_str())
                    && let Some(s) = plain.render(text)
                {
                    return Val::Str(s);
                }
                let ctx: std::collections::BTreeMap<&str, minijinja::Value> =
                    vars.iter().zip(&values).map(|((name, _), v)| (name.as_str(), v.to_template())).collect();
                let rendered =
                    self.prepared.templates.get_template(source).and_then(|t| t.render(minijinja::Value::from(ctx)));
                match rendered {
                    Ok(s) => Val::Str(s),
                    Err(_) => {
                        warnings.push(Issue::new(
                            findings::TEMPLATE_FAILED,
                            self.field,
                            "template could not be rendered",
                        ));
                        Val::Null
                    }
                }
            }
            Expr::Binary { operator, lhs, rhs } => self.binary(*operator, lhs, rhs, warnings),
            Expr::Not { operand } => Val::Bool(!self.eval(operand, warnings).truthy()),
            Expr::List { items } => Val::List(items.iter().map(|i| self.eval(i, warnings)).collect()),
        }
    }

    /// Evaluates `expr` for an output of type `target`. An HL7 value or loop variable of type
    /// `datetime` written to a `date` output is converted straight to a date, so a partial
    /// time stamp (`1980`) is reported instead of becoming a made-up day (`1980-01-01`).
    pub fn eval_for(&self, expr: &Expr, target: &ValueType, warnings: &mut Vec<Issue>) -> Val {
        let target = match target {
            ValueType::List(inner) => inner,
            other => other,
        };
        if *target != ValueType::Date {
            return self.eval(expr, warnings);
        }
        match expr {
            Expr::Hl7 { path, value_type: ValueType::DateTime, multi } => {
                let e = Expr::Hl7 { path: path.clone(), value_type: ValueType::Date, multi: *multi };
                self.eval(&e, warnings)
            }
            Expr::Var { name, component, subcomponent, value_type: ValueType::DateTime } => {
                let e = Expr::Var {
                    name: name.clone(),
                    component: *component,
                    subcomponent: *subcomponent,
                    value_type: ValueType::Date,
                };
                self.eval(&e, warnings)
            }
            _ => self.eval(expr, warnings),
        }
    }

    /// [`Scope::eval_for`] then [`coerce`] to `target`, for the output field (or member)
    /// `field`. A date or datetime its expression already converted to `target` is not parsed
    /// again: [`coerce`] would give the same text.
    pub fn eval_coerced(&self, expr: &Expr, target: &ValueType, field: &str, warnings: &mut Vec<Issue>) -> Val {
        let v = self.eval_for(expr, target, warnings);
        if self.converted_again_is_same(target) {
            let converted = match (target, expr) {
                // `eval_for` read these as dates.
                (ValueType::Date, Expr::Hl7 { value_type: ValueType::DateTime, multi: false, .. })
                | (ValueType::Date, Expr::Var { value_type: ValueType::DateTime, .. }) => Some(&ValueType::Date),
                _ => converted_type(expr),
            };
            if converted == Some(target) {
                return v;
            }
        }
        coerce(v, target, self.zone, field, warnings)
    }

    /// Whether converting a value already converted to `vt` gives it back unchanged: dates and
    /// datetimes, when values are converted at all and the zone reads back (`time` property
    /// test `conversions_are_idempotent`).
    fn converted_again_is_same(&self, vt: &ValueType) -> bool {
        !self.raw && matches!(vt, ValueType::Date | ValueType::DateTime) && time::is_rfc3339_zone(self.zone)
    }

    /// Converts HL7 text to `value_type` (unless in raw mode); failures warn and give null.
    pub fn convert(&self, text: &str, value_type: &ValueType, source: &str, warnings: &mut Vec<Issue>) -> Val {
        if self.raw {
            return Val::Str(text.to_string());
        }
        convert_text(text, value_type, self.zone, source, self.field, warnings)
    }

    fn lookup(&self, v: Val, table: &str, default: Option<&Expr>, warnings: &mut Vec<Issue>) -> Val {
        if let Val::List(items) = v {
            return Val::List(items.into_iter().map(|i| self.lookup(i, table, default, warnings)).collect());
        }
        let Some(key) = v.as_text().filter(|t| !t.is_empty()) else {
            return Val::Null;
        };
        if let Some(found) = self.tables.and_then(|t| t.get(table)).and_then(|t| t.get(key.as_ref())) {
            return Val::Str(found.clone());
        }
        match default {
            Some(d) => self.eval(d, warnings),
            None => {
                warnings.push(Issue::new(
                    findings::LOOKUP_MISS,
                    self.field,
                    format!("no entry in table `{table}` for the value"),
                ));
                Val::Null
            }
        }
    }

    fn call(&self, f: Function, args: &[Expr], warnings: &mut Vec<Issue>) -> Val {
        let arg = |i: usize, w: &mut Vec<Issue>| args.get(i).map(|a| self.eval(a, w)).unwrap_or(Val::Null);
        let what = || args.first().map(describe).unwrap_or_default();
        match f {
            Function::Date | Function::Datetime | Function::Integer | Function::Decimal => {
                let vt = match f {
                    Function::Date => ValueType::Date,
                    Function::Datetime => ValueType::DateTime,
                    Function::Integer => ValueType::Integer,
                    _ => ValueType::Decimal,
                };
                let v = arg(0, warnings);
                // A value its expression already converted to this type is left as it is:
                // converting it again gives the same text (`time` property tests).
                if self.converted_again_is_same(&vt) && args.first().and_then(converted_type) == Some(&vt) {
                    return v;
                }
                map_scalars(v, &mut |v| match v {
                    Val::Str(s) => convert_text(&s, &vt, self.zone, &what(), self.field, warnings),
                    Val::Int(i) if vt == ValueType::Decimal => Val::Dec(i.to_string()),
                    Val::Dec(d) if vt == ValueType::Integer => {
                        convert_text(&d, &vt, self.zone, &what(), self.field, warnings)
                    }
                    other => other,
                })
            }
            Function::Coalesce => {
                for a in args {
                    let v = self.eval(a, warnings);
                    if !v.is_empty() {
                        return v;
                    }
                }
                Val::Null
            }
            Function::Concat => {
                let parts: Vec<String> = args.iter().filter_map(|a| self.eval(a, warnings).text()).collect();
                Val::Str(parts.concat())
            }
            Function::Upper | Function::Lower | Function::Trim => map_scalars(arg(0, warnings), &mut |v| match v {
                Val::Str(s) => Val::Str(match f {
                    Function::Upper => s.to_uppercase(),
                    Function::Lower => s.to_lowercase(),
                    _ => s.trim().to_string(),
                }),
                other => other,
            }),
            Function::Present => Val::Bool(!arg(0, warnings).is_empty()),
            Function::If => {
                if arg(0, warnings).truthy() {
                    arg(1, warnings)
                } else {
                    arg(2, warnings)
                }
            }
            Function::StartsWith => {
                let (t, p) = (arg(0, warnings).text(), arg(1, warnings).text());
                Val::Bool(matches!((t, p), (Some(t), Some(p)) if t.starts_with(&p)))
            }
            Function::Contains => {
                let needle = arg(1, warnings).text();
                let found = match (arg(0, warnings), needle) {
                    (Val::List(items), Some(n)) => items.iter().any(|v| v.text().as_deref() == Some(n.as_str())),
                    (Val::Null, _) | (_, None) => false,
                    (other, Some(n)) => other.text().as_deref() == Some(n.as_str()),
                };
                Val::Bool(found)
            }
            Function::UnixDate | Function::UnixDatetime => map_scalars(arg(0, warnings), &mut |v| {
                let seconds = match v {
                    Val::Int(i) => Some(i),
                    Val::Str(s) | Val::Dec(s) => s.parse::<i64>().ok(),
                    _ => None,
                };
                // Years 0-9999 only: what RFC 3339 and a `date` can hold.
                match seconds.filter(|s| (-62_167_219_200..=253_402_300_799).contains(s)) {
                    Some(s) => {
                        let text = crate::time::format_utc(s);
                        Val::Str(if f == Function::UnixDate { text[..10].to_string() } else { text })
                    }
                    None => {
                        warnings.push(Issue::new(
                            findings::BAD_DATETIME,
                            self.field,
                            format!("`{}` is not a Unix time in seconds", what()),
                        ));
                        Val::Null
                    }
                }
            }),
            Function::Negate => map_scalars(arg(0, warnings), &mut |v| match v {
                Val::Int(i) => i.checked_neg().map_or_else(|| Val::Dec(format!("{}", -(i as i128))), Val::Int),
                Val::Dec(d) => Val::Dec(negate_decimal(&d)),
                Val::Str(s) => match json_decimal(&s) {
                    Some(d) => Val::Dec(negate_decimal(&d)),
                    None => {
                        warnings.push(Issue::new(
                            findings::BAD_NUMBER,
                            self.field,
                            format!("`{}` is not a number", what()),
                        ));
                        Val::Null
                    }
                },
                other => other,
            }),
            Function::Connection => self.provenance.map_or(Val::Null, |p| Val::Str(p.source.connection.clone())),
            Function::Envelope => match (self.provenance, args.first()) {
                (Some(p), Some(Expr::Lit { value: Literal::Str(name) })) => {
                    p.envelope(name).map_or(Val::Null, Val::Str)
                }
                _ => Val::Null,
            },
            Function::MinorUnits => {
                let currency = arg(1, warnings).text();
                map_scalars(arg(0, warnings), &mut |v| match (v, currency.as_deref()) {
                    (Val::Int(i), Some(c)) if !c.is_empty() => Val::Dec(sluice_finance::currency::to_major(i, c)),
                    (Val::Null, _) => Val::Null,
                    _ => {
                        warnings.push(Issue::new(
                            findings::BAD_NUMBER,
                            self.field,
                            format!("`{}` is not an integer amount with a currency", what()),
                        ));
                        Val::Null
                    }
                })
            }
            Function::Join => {
                let sep = arg(1, warnings).text().unwrap_or_default();
                match arg(0, warnings) {
                    Val::List(items) => Val::Str(
                        items.iter().filter_map(Val::text).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(&sep),
                    ),
                    Val::Null => Val::Null,
                    other => Val::Str(other.text().unwrap_or_default()),
                }
            }
        }
    }

    fn binary(&self, op: BinaryOp, lhs: &Expr, rhs: &Expr, warnings: &mut Vec<Issue>) -> Val {
        match op {
            BinaryOp::And => {
                return Val::Bool(self.eval(lhs, warnings).truthy() && self.eval(rhs, warnings).truthy());
            }
            BinaryOp::Or => {
                return Val::Bool(self.eval(lhs, warnings).truthy() || self.eval(rhs, warnings).truthy());
            }
            BinaryOp::Eq | BinaryOp::Ne => {
                // A comparison with a string literal (`MSH-9.1 == "ADT"`) compares with the
                // literal's text in place, without making a value of it.
                let literal = match (lhs, rhs) {
                    (other, Expr::Lit { value: Literal::Str(l) }) | (Expr::Lit { value: Literal::Str(l) }, other) => {
                        Some((other, l))
                    }
                    _ => None,
                };
                if let Some((other, l)) = literal {
                    let same = equal_str(&self.eval(other, warnings), l);
                    return Val::Bool(if op == BinaryOp::Eq { same } else { !same });
                }
            }
            _ => {}
        }
        let (a, b) = (self.eval(lhs, warnings), self.eval(rhs, warnings));
        match op {
            BinaryOp::Eq => Val::Bool(equal(&a, &b)),
            BinaryOp::Ne => Val::Bool(!equal(&a, &b)),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                let Some(ord) = compare(&a, &b) else {
                    return Val::Bool(false);
                };
                Val::Bool(match op {
                    BinaryOp::Lt => ord.is_lt(),
                    BinaryOp::Le => ord.is_le(),
                    BinaryOp::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                })
            }
            _ => add(a, b),
        }
    }
}

fn var_text(name: &str, c: Option<usize>, s: Option<usize>) -> String {
    match (c, s) {
        (Some(c), Some(s)) => format!("{name}.{c}.{s}"),
        (Some(c), None) => format!("{name}.{c}"),
        _ => name.to_string(),
    }
}

/// A short description of where an argument comes from, for warnings (spec text only).
fn describe(e: &Expr) -> String {
    match e {
        Expr::Hl7 { path, .. } | Expr::Fhir { path, .. } | Expr::X12 { path, .. } | Expr::Field { path, .. } => {
            path.clone()
        }
        Expr::Within { var, path, .. } => format!("{var}.{path}"),
        Expr::Item { .. } => e.to_string(),
        Expr::Var { name, component, subcomponent, .. } => var_text(name, *component, *subcomponent),
        Expr::Call { args, .. } => args.first().map(describe).unwrap_or_default(),
        _ => "expression".into(),
    }
}

fn map_scalars(v: Val, f: &mut dyn FnMut(Val) -> Val) -> Val {
    match v {
        Val::List(items) => Val::List(items.into_iter().map(|i| map_scalars(i, f)).collect()),
        Val::Null => Val::Null,
        other => f(other),
    }
}

/// The type a single value of `expr` was converted to by [`convert_text`] when not in raw mode
/// (a string is then that type's canonical text), if it is always converted.
fn converted_type(expr: &Expr) -> Option<&ValueType> {
    match expr {
        Expr::Hl7 { value_type, multi: false, .. }
        | Expr::Within { value_type, multi: false, .. }
        | Expr::Var { value_type, .. } => Some(value_type),
        Expr::Call { function: Function::Date, .. } => Some(&ValueType::Date),
        Expr::Call { function: Function::Datetime, .. } => Some(&ValueType::DateTime),
        _ => None,
    }
}

/// Whether [`coerce`] to `vt` can warn (and so use its `field`).
pub fn coercion_can_warn(vt: &ValueType) -> bool {
    match vt {
        ValueType::List(inner) => coercion_can_warn(inner),
        other => conversion_can_fail(other),
    }
}

/// Whether [`convert_text`] can fail (and warn) for `value_type`.
fn conversion_can_fail(value_type: &ValueType) -> bool {
    matches!(value_type, ValueType::Date | ValueType::DateTime | ValueType::Decimal | ValueType::Integer)
}

/// Converts text to a value of `value_type`. `source` names where the text came from and
/// `field` the output field, for the warning.
pub fn convert_text(
    text: &str,
    value_type: &ValueType,
    zone: &str,
    source: &str,
    field: &str,
    warnings: &mut Vec<Issue>,
) -> Val {
    let mut fail = |code: &'static str, expected: &str| {
        warnings.push(Issue::new(code, field, format!("value at {source} is not {expected}")));
        Val::Null
    };
    match value_type {
        ValueType::Date => match time::hl7_to_date(text) {
            Some(d) => Val::Str(d),
            None => fail(findings::BAD_DATE, "an HL7 date (at least YYYYMMDD)"),
        },
        ValueType::DateTime => match time::hl7_to_datetime(text, zone) {
            Some(d) => Val::Str(d),
            None => fail(findings::BAD_DATETIME, "an HL7 datetime (YYYY[MM[DD[HH[MM[SS]]]]][+/-ZZZZ])"),
        },
        ValueType::Decimal => match json_decimal(text) {
            Some(d) => Val::Dec(d),
            None => fail(findings::BAD_NUMBER, "a decimal number"),
        },
        ValueType::Integer => match parse_int(text) {
            Some(i) => Val::Int(i),
            None => fail(findings::BAD_NUMBER, "an integer"),
        },
        ValueType::Boolean => match text.trim() {
            "Y" | "y" | "true" | "1" => Val::Bool(true),
            "N" | "n" | "false" | "0" => Val::Bool(false),
            other => Val::Str(other.to_string()),
        },
        _ => Val::Str(text.to_string()),
    }
}

pub fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// Coerces a field's value to the output field's type (idempotent: values already converted by
/// their HL7 type pass through).
pub fn coerce(v: Val, vt: &ValueType, zone: &str, field: &str, warnings: &mut Vec<Issue>) -> Val {
    match (vt, v) {
        (ValueType::List(inner), Val::List(items)) => {
            Val::List(items.into_iter().map(|i| coerce(i, inner, zone, field, warnings)).collect())
        }
        (ValueType::List(_), Val::Null) => Val::List(Vec::new()),
        (ValueType::List(inner), other) => Val::List(vec![coerce(other, inner, zone, field, warnings)]),
        (_, Val::Null) => Val::Null,
        (ValueType::Date | ValueType::DateTime | ValueType::Integer | ValueType::Decimal, Val::Str(s)) => {
            convert_text(&s, vt, zone, field, field, warnings)
        }
        (ValueType::Integer, Val::Dec(d)) => convert_text(&d, vt, zone, field, field, warnings),
        (
            ValueType::String | ValueType::Code | ValueType::Identifier,
            v @ (Val::Int(_) | Val::Dec(_) | Val::Bool(_)),
        ) => Val::Str(v.text().unwrap_or_default()),
        (_, v) => v,
    }
}

fn number(v: &Val) -> Option<(i128, u32)> {
    match v {
        Val::Int(i) => Some((*i as i128, 0)),
        Val::Dec(d) => parse_scaled(d),
        _ => None,
    }
}

/// `12.50` -> (1250, 2).
fn parse_scaled(d: &str) -> Option<(i128, u32)> {
    let (i, f) = d.split_once('.').unwrap_or((d, ""));
    let scale = u32::try_from(f.len()).ok().filter(|s| *s <= 18)?;
    let m: i128 = format!("{i}{f}").parse().ok()?;
    Some((m, scale))
}

fn rescale(m: i128, from: u32, to: u32) -> Option<i128> {
    m.checked_mul(10i128.checked_pow(to - from)?)
}

fn format_scaled(m: i128, scale: u32) -> String {
    if scale == 0 {
        return m.to_string();
    }
    let neg = m < 0;
    let digits = m.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale as usize + 1);
    let (i, f) = digits.split_at(digits.len() - scale as usize);
    format!("{}{i}.{f}", if neg { "-" } else { "" })
}

fn compare_numbers(a: (i128, u32), b: (i128, u32)) -> Option<std::cmp::Ordering> {
    let s = a.1.max(b.1);
    Some(rescale(a.0, a.1, s)?.cmp(&rescale(b.0, b.1, s)?))
}

fn equal(a: &Val, b: &Val) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => compare_numbers(x, y).is_some_and(|o| o.is_eq()),
        _ => match (a, b) {
            (Val::Null, Val::Null) => true,
            (Val::Null, _) | (_, Val::Null) => false,
            (Val::List(x), Val::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q)),
            _ => a.as_text() == b.as_text(),
        },
    }
}

/// `equal(a, &Val::Str(l))`, without the value (a property test holds them together).
fn equal_str(a: &Val, l: &str) -> bool {
    !matches!(a, Val::Null) && a.as_text().as_deref() == Some(l)
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => compare_numbers(x, y),
        _ => match (a, b) {
            (Val::Null, _) | (_, Val::Null) | (Val::List(_), _) | (_, Val::List(_)) => None,
            _ => Some(a.as_text()?.cmp(&b.as_text()?)),
        },
    }
}

fn add(a: Val, b: Val) -> Val {
    if let (Some(x), Some(y)) = (number(&a), number(&b)) {
        let s = x.1.max(y.1);
        let sum = rescale(x.0, x.1, s).zip(rescale(y.0, y.1, s)).and_then(|(p, q)| p.checked_add(q));
        return match sum {
            Some(m) if s == 0 => i64::try_from(m).map(Val::Int).unwrap_or(Val::Null),
            Some(m) => Val::Dec(format_scaled(m, s)),
            None => Val::Null,
        };
    }
    match (a, b) {
        (Val::Null, Val::Null) => Val::Null,
        (Val::Str(x), y) => Val::Str(x + &y.text().unwrap_or_default()),
        (x, Val::Str(y)) => Val::Str(x.text().unwrap_or_default() + &y),
        _ => Val::Null,
    }
}

/// A decimal's text with its sign turned; zero stays unsigned.
fn negate_decimal(d: &str) -> String {
    match d.strip_prefix('-') {
        Some(positive) => positive.to_string(),
        None if d.bytes().all(|b| matches!(b, b'0' | b'.' | b'+')) => d.trim_start_matches('+').to_string(),
        None => format!("-{}", d.trim_start_matches('+')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn val() -> impl Strategy<Value = Val> {
        let leaf = prop_oneof![
            Just(Val::Null),
            any::<bool>().prop_map(Val::Bool),
            (-20i64..20).prop_map(Val::Int),
            "-?[0-9]{1,3}(\\.[0-9]{0,2})?".prop_map(Val::Dec),
            "|ADT|1|1.0|true|-3|[a-z0-9,.]{0,4}".prop_map(Val::Str),
        ];
        leaf.prop_recursive(2, 6, 3, |inner| proptest::collection::vec(inner, 0..3).prop_map(Val::List))
    }

    proptest! {
        #[test]
        fn equal_str_is_equal_to_a_string_value(a in val(), l in "|ADT|1|1.0|true|-3|[a-z0-9,.]{0,4}") {
            prop_assert_eq!(equal_str(&a, &l), equal(&a, &Val::Str(l.clone())));
            prop_assert_eq!(equal_str(&a, &l), equal(&Val::Str(l.clone()), &a));
        }
    }

    fn lit(s: &str) -> Expr {
        Expr::Lit { value: Literal::Str(s.into()) }
    }

    fn hl7(path: &str, vt: ValueType, multi: bool) -> Expr {
        Expr::Hl7 { path: path.into(), value_type: vt, multi }
    }

    const MSG: &str = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||111^^^H^MR~222^^^S^SS||DOE^JOHN||19800115|M|||||||||||123-45-6789\rPV1|1|I||||||||||||||||||||||||||||||||||||||||||20240115080000|bad";

    fn with_scope<R>(exprs: &[&Expr], f: impl FnOnce(&Scope) -> R) -> R {
        let mut prepared = Prepared::default();
        for e in exprs {
            prepared.prepare(e).unwrap();
        }
        let msg = hl7::Hl7Message::new(MSG.to_string(), Default::default());
        let msg = hl7::Reader::new(&msg);
        let mut tables = Tables::new();
        tables.insert("sex".into(), HashMap::from([("M".into(), "male".into())]));
        let scope = Scope::root(&prepared, Some(&msg), None, Some(&tables), "-05:00", "out.f");
        f(&scope)
    }

    #[test]
    fn connection_and_envelope_read_the_record_then_its_source() {
        let connection = Expr::Call { function: Function::Connection, args: Vec::new() };
        let realm = Expr::Call { function: Function::Envelope, args: vec![lit("quickbooks.realm")] };
        let item = Expr::Call { function: Function::Envelope, args: vec![lit("plaid.item")] };
        let source = crate::compile::SourceProvenance {
            connection: "qbo-east".into(),
            fixed: vec![("quickbooks.realm", "1111".into())],
        };
        let synced = crate::record::BusMeta {
            headers: vec![("quickbooks.realm".into(), Some(b"2222".to_vec()))],
            ..Default::default()
        };
        with_scope(&[&connection, &realm, &item], |s| {
            let mut w = Vec::new();
            // Not a finance record: nothing to read.
            assert_eq!(s.eval(&connection, &mut w), Val::Null);
            assert_eq!(s.eval(&realm, &mut w), Val::Null);
            // What the sync set on the record comes first.
            let provenance = Some(Provenance { source: &source, bus: Some(&synced) });
            let from_sync = Scope { provenance, vars: Vec::new(), groups: Vec::new(), ..*s };
            assert_eq!(from_sync.eval(&connection, &mut w), Val::Str("qbo-east".into()));
            assert_eq!(from_sync.eval(&realm, &mut w), Val::Str("2222".into()));
            assert_eq!(from_sync.eval(&item, &mut w), Val::Null);
            // A record without an envelope (`sluice test`, an old DLQ entry replayed): its
            // source's value stands in.
            let replayed = Scope {
                provenance: Some(Provenance { source: &source, bus: None }),
                vars: Vec::new(),
                groups: Vec::new(),
                ..*s
            };
            assert_eq!(replayed.eval(&realm, &mut w), Val::Str("1111".into()));
            assert!(w.is_empty());
        });
    }

    #[test]
    fn hl7_conversions_and_warnings() {
        let dob = hl7("PID-7", ValueType::Date, false);
        let admit = hl7("PV1-44", ValueType::DateTime, false);
        let discharge = hl7("PV1-45", ValueType::DateTime, false);
        let ids = hl7("PID-3[*]", ValueType::Identifier, true);
        with_scope(&[&dob, &admit, &discharge, &ids], |s| {
            let mut w = Vec::new();
            assert_eq!(s.eval(&dob, &mut w), Val::Str("1980-01-15".into()));
            assert_eq!(s.eval(&admit, &mut w), Val::Str("2024-01-15T08:00:00-05:00".into()));
            assert!(w.is_empty());
            assert_eq!(s.eval(&discharge, &mut w), Val::Null);
            assert_eq!(w.len(), 1);
            assert_eq!(w[0].code, "RT303");
            assert!(!w[0].message.contains("bad"));
            assert_eq!(s.eval(&ids, &mut w), Val::List(vec![Val::Str("111".into()), Val::Str("222".into())]));
        });
    }

    #[test]
    fn functions() {
        let sex = hl7("PID-8", ValueType::Code, false);
        let look = Expr::Lookup { value: Box::new(sex.clone()), table: "sex".into(), default: None };
        let miss = Expr::Lookup { value: Box::new(lit("Q")), table: "sex".into(), default: None };
        let tpl = Expr::Template {
            source: "{{ family }}, {{ given }}".into(),
            vars: vec![
                ("family".into(), hl7("PID-5", ValueType::String, false)),
                ("given".into(), hl7("PID-5.2", ValueType::String, false)),
            ],
        };
        let coalesce =
            Expr::Call { function: Function::Coalesce, args: vec![hl7("PID-6", ValueType::String, false), lit("x")] };
        let add = Expr::Binary {
            operator: BinaryOp::Add,
            lhs: Box::new(Expr::Lit { value: Literal::Dec("1.25".into()) }),
            rhs: Box::new(Expr::Lit { value: Literal::Int(2) }),
        };
        let cmp = Expr::Binary { operator: BinaryOp::Eq, lhs: Box::new(sex.clone()), rhs: Box::new(lit("M")) };
        let join =
            Expr::Call { function: Function::Join, args: vec![hl7("PID-3[*]", ValueType::Identifier, true), lit("|")] };
        let date = Expr::Call { function: Function::Date, args: vec![lit("20240115083000")] };
        with_scope(&[&look, &miss, &tpl, &coalesce, &add, &cmp, &join, &date], |s| {
            let mut w = Vec::new();
            assert_eq!(s.eval(&look, &mut w), Val::Str("male".into()));
            assert_eq!(s.eval(&tpl, &mut w), Val::Str("DOE, JOHN".into()));
            assert_eq!(s.eval(&coalesce, &mut w), Val::Str("x".into()));
            assert_eq!(s.eval(&add, &mut w), Val::Dec("3.25".into()));
            assert_eq!(s.eval(&cmp, &mut w), Val::Bool(true));
            assert_eq!(s.eval(&join, &mut w), Val::Str("111|222".into()));
            assert_eq!(s.eval(&date, &mut w), Val::Str("2024-01-15".into()));
            assert!(w.is_empty());
            assert_eq!(s.eval(&miss, &mut w), Val::Null);
            assert_eq!(w[0].code, "RT305");
        });
    }

    /// A date or datetime already converted is not converted again, with the same result as
    /// converting it again, including with a zone that does not read back (`+99:00`).
    #[test]
    fn converted_values_are_not_converted_again() {
        let admit = hl7("PV1-44", ValueType::DateTime, false);
        let dob = hl7("PID-7", ValueType::DateTime, false);
        let datetime = Expr::Call { function: Function::Datetime, args: vec![admit.clone()] };
        let date = Expr::Call { function: Function::Date, args: vec![dob.clone()] };
        with_scope(&[&admit, &dob, &datetime, &date], |s| {
            let mut w = Vec::new();
            let dt = s.eval_coerced(&datetime, &ValueType::DateTime, "f", &mut w);
            assert_eq!(dt, Val::Str("2024-01-15T08:00:00-05:00".into()));
            assert_eq!(s.eval_coerced(&date, &ValueType::Date, "f", &mut w), Val::Str("1980-01-15".into()));
            assert_eq!(s.eval_coerced(&dob, &ValueType::Date, "f", &mut w), Val::Str("1980-01-15".into()));
            assert!(w.is_empty());
            // The same values and warnings as converting again, in both zones.
            let odd = Scope { vars: Vec::new(), groups: Vec::new(), zone: "+99:00", ..*s };
            for scope in [s, &odd] {
                for (e, vt) in [
                    (&admit, ValueType::DateTime),
                    (&datetime, ValueType::DateTime),
                    (&date, ValueType::Date),
                    (&dob, ValueType::Date),
                ] {
                    let (mut fast, mut again) = (Vec::new(), Vec::new());
                    let v = scope.eval_coerced(e, &vt, "f", &mut fast);
                    let expected = coerce(scope.eval_for(e, &vt, &mut again), &vt, scope.zone, "f", &mut again);
                    assert_eq!((v, fast), (expected, again));
                }
            }
            let mut w = Vec::new();
            assert_eq!(odd.eval_coerced(&admit, &ValueType::DateTime, "f", &mut w), Val::Null);
            assert_eq!(w.len(), 1);
        });
    }

    #[test]
    fn numbers_and_coercion() {
        let mut w = Vec::new();
        assert_eq!(convert_text("+072.50", &ValueType::Decimal, "Z", "OBX-5", "f", &mut w), Val::Dec("72.50".into()));
        assert_eq!(convert_text("12a", &ValueType::Integer, "Z", "OBX-5", "f", &mut w), Val::Null);
        assert_eq!(w[0].code, "RT304");
        assert_eq!(
            coerce(Val::Str("2024-01-15T08:00:00Z".into()), &ValueType::Date, "Z", "f", &mut w),
            Val::Str("2024-01-15".into())
        );
        assert_eq!(
            coerce(Val::Null, &ValueType::List(Box::new(ValueType::String)), "Z", "f", &mut w),
            Val::List(vec![])
        );
        assert_eq!(Val::Dec("72.50".into()).into_doc().to_json_string(), "72.50");
        assert_eq!(add(Val::Dec("-0.5".into()), Val::Dec("0.25".into())), Val::Dec("-0.25".into()));
    }

    #[test]
    fn negate_turns_the_sign_of_numbers_and_leaves_zero_unsigned() {
        assert_eq!(negate_decimal("12.50"), "-12.50");
        assert_eq!(negate_decimal("-1500"), "1500");
        assert_eq!(negate_decimal("0.00"), "0.00");
        assert_eq!(negate_decimal("+3"), "-3");
    }
}
