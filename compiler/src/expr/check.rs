//! Type checking: an untyped [`Syn`] tree plus an environment -> a typed [`Expr`], its type,
//! whether it yields a list, and the PHI classes that flow into it.
//!
//! Invariants:
//! - Every error is a diagnostic at the exact sub-span of the expression; checking goes on
//!   with `any` so one mistake gives one error, not a cascade.
//! - PHI classes flow through every value-preserving operation (concatenation, lookups,
//!   templates, conversions, `if`, `coalesce`); predicates (`present`, comparisons,
//!   `starts_with`) yield booleans that carry no class.
//! - `connection()` and `envelope(...)` read where a finance record came from (names the spec
//!   gives, company ids), not the record: they carry no class, and only mappings of finance
//!   records may use them, with envelope names their input carries.

use std::collections::BTreeSet;

use sluice_canonical::OutputSchema;
use sluice_spec_core::{PhiClass, ValueType};

use super::ast::{BinaryOp, Expr, Function, Literal};
use super::syntax::{self, Arg, Syn, SynKind};
use crate::codes;
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::fhir::FhirEnv;
use crate::hl7::Hl7Env;
use crate::source::{SourceMap, Span};
use crate::x12::X12Env;
use crate::yaml::{Node, Value};

/// What names in an expression refer to.
#[derive(Clone, Copy)]
pub enum Scope<'a> {
    /// Records are HL7 v2 messages: paths like `PID-5.1`.
    Hl7(Hl7Env<'a>),
    /// Records are already in an output schema: dotted field names like `metadata.message_type`.
    Output(&'static OutputSchema),
    /// Records are FHIR resources of one type: paths like `name[0].family`, `birthDate`.
    Fhir(FhirEnv),
    /// Records are X12 transaction sets of one guide: paths like `2300/CLM-01`.
    X12(X12Env),
    /// Records are Stripe objects of one type: paths like `amount`, `billing_details.email`.
    Stripe(crate::stripe::StripeEnv),
    /// Records are QuickBooks entities of one kind: paths like `TotalAmt`, `CurrencyRef.value`.
    QuickBooks(crate::quickbooks::QuickBooksEnv),
    /// Records are Plaid objects of one kind: paths like `amount`, `personal_finance_category.primary`.
    Plaid(crate::plaid::PlaidEnv),
}

/// An iteration variable bound by `each` / `as`: one repetition of a field (its datatype and
/// classes), one instance of a segment group (`group`), or one item of a finance object's
/// array (`item`: the array's path in the table's form, `Line[*]`; [`crate::finance_each`]).
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub datatype: String,
    pub classes: BTreeSet<PhiClass>,
    pub group: Option<super::groups::GroupVar>,
    pub item: Option<String>,
}

pub struct Env<'a> {
    pub scope: Scope<'a>,
    pub vars: Vec<Var>,
    pub tables: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Typed {
    pub expr: Expr,
    pub ty: ValueType,
    pub multi: bool,
    pub classes: BTreeSet<PhiClass>,
}

impl Typed {
    fn new(expr: Expr, ty: ValueType) -> Typed {
        Typed { expr, ty, multi: false, classes: BTreeSet::new() }
    }
}

/// Name, parameter count and result of each built-in, for `sluice` docs and checks.
pub const FUNCTIONS: &[(&str, &str, &str)] = &[
    ("date", "date(value) -> date", "HL7 DT/DTM text (or a datetime) to a calendar date."),
    (
        "datetime",
        "datetime(value) -> datetime",
        "HL7 DTM text to RFC 3339; offset from the value or the profile's timezone.",
    ),
    ("coalesce", "coalesce(a, b, ...) -> type of a", "First argument that is present."),
    ("concat", "concat(a, b, ...) -> string", "Text of the present arguments, joined."),
    ("upper", "upper(text) -> string", "Upper case."),
    ("lower", "lower(text) -> string", "Lower case."),
    ("trim", "trim(text) -> string", "Without leading and trailing white space."),
    ("present", "present(value) -> boolean", "True when the value is present and not empty."),
    ("if", "if(condition, then, else) -> type of then", "Chooses a value."),
    ("integer", "integer(text) -> integer", "Parses a whole number (null with a warning when it is not one)."),
    ("decimal", "decimal(text) -> decimal", "Parses a decimal number, kept as written."),
    ("starts_with", "starts_with(text, prefix) -> boolean", "Prefix test."),
    ("join", "join(list, separator) -> string", "Joins the values of a repeating path."),
    (
        "contains",
        "contains(list, value) -> boolean",
        "True when one of the values of a repeating path equals the value.",
    ),
    ("unix_date", "unix_date(seconds) -> date", "Unix seconds (Stripe's `created`) to the UTC calendar date."),
    ("unix_datetime", "unix_datetime(seconds) -> datetime", "Unix seconds to RFC 3339 in UTC."),
    (
        "minor_units",
        "minor_units(amount, currency) -> decimal",
        "An integer amount in the currency's minor units to a decimal in major units (1050 USD -> 10.50, 1050 JPY -> 1050).",
    ),
    (
        "negate",
        "negate(number) -> type of number",
        "The number with its sign turned (`12.50` -> `-12.50`, `-3` -> `3`): for providers whose sign is the other way round, such as Plaid's (positive is money out).",
    ),
    (
        "connection",
        "connection() -> string",
        "The `connection:` name of the `stripe`, `plaid` or `quickbooks` source the record was read from: which company, login or account it belongs to. Configuration, not data: no PHI class.",
    ),
    (
        "envelope",
        "envelope(\"name\") -> string",
        "A provenance value the finance source set on the record: `quickbooks.realm` (the company's `realm_id`) for QuickBooks input, `plaid.item` (the Item's `name`) for Plaid input. No PHI class.",
    ),
    ("lookup", "lookup(value, table, default=value) -> string", "Looks the value up in a code table of the mapping."),
    (
        "template",
        "template(\"...\", name=value, ...) -> string",
        "Renders a minijinja template; every variable it uses must be passed.",
    ),
    (
        "classify",
        "classify(value, \"class\") -> type of value",
        "The value unchanged, with a PHI class added (the mapping knows more than the schema).",
    ),
];

/// The checking context: where the expression text sits in the file, and where errors go.
pub struct ExprCx<'a> {
    pub sources: &'a SourceMap,
    pub diags: &'a mut Diagnostics,
    /// File span of byte 0 of the expression text.
    pub base: Span,
}

impl ExprCx<'_> {
    /// The file span of a byte range of the expression text.
    pub fn span(&self, r: &std::ops::Range<usize>) -> Span {
        let start = (self.base.start + r.start).min(self.base.end);
        let end = (self.base.start + r.end).min(self.base.end).max(start);
        Span::new(self.base.file, start, if end == start { (start + 1).min(self.base.end.max(start + 1)) } else { end })
    }

    fn error(&mut self, d: Diagnostic) -> Option<Typed> {
        self.diags.push(d);
        None
    }

    /// Reports `d`; checking of this expression stops.
    pub fn fail<T>(&mut self, d: Diagnostic) -> Option<T> {
        self.diags.push(d);
        None
    }
}

/// Checks an expression written as a YAML value: strings are parsed; numbers, booleans and
/// null are literals.
pub fn check_node(sources: &SourceMap, diags: &mut Diagnostics, node: &Node, env: &Env) -> Option<Typed> {
    let lit = |value| Some(Typed::new(Expr::Lit { value }, ValueType::Null));
    match &node.value {
        Value::Null => lit(Literal::Null),
        Value::Bool(b) => Some(Typed::new(Expr::Lit { value: Literal::Bool(*b) }, ValueType::Boolean)),
        Value::Int(i) => Some(Typed::new(Expr::Lit { value: Literal::Int(*i) }, ValueType::Integer)),
        Value::Float(_) => {
            let text = node.scalar_text(sources.get(node.span.file)).unwrap_or_default();
            Some(Typed::new(Expr::Lit { value: Literal::Dec(text) }, ValueType::Decimal))
        }
        Value::Str { text, quoted } => {
            let base = Span::new(node.span.file, node.span.start + usize::from(*quoted), node.span.end);
            check_text(sources, diags, text, base, env)
        }
        Value::Seq(_) | Value::Map(_) => {
            diags.push(
                Diagnostic::error(
                    codes::WRONG_TYPE,
                    format!("an expression must be a string, found {}", node.kind_name()),
                )
                .label(node.span, "expected an expression such as `PID-5.1`"),
            );
            None
        }
    }
}

/// The parsed `each:` text when it iterates segment groups or segments (`group(...)`,
/// `x.group(...)`, `segment(...)`), with the file span of its first byte; `None` for any other
/// expression.
pub fn group_syntax(node: &Node) -> Option<(Syn, Span)> {
    let Value::Str { text, quoted } = &node.value else { return None };
    let syn = syntax::parse(text).ok()?;
    let base = Span::new(node.span.file, node.span.start + usize::from(*quoted), node.span.end);
    super::groups::is_group_call(&syn).then_some((syn, base))
}

/// Checks expression `text` whose first byte is at `base` in the file.
pub fn check_text(sources: &SourceMap, diags: &mut Diagnostics, text: &str, base: Span, env: &Env) -> Option<Typed> {
    let mut cx = ExprCx { sources, diags, base };
    match syntax::parse(text) {
        Ok(syn) => check(&mut cx, &syn, env),
        Err(e) => {
            let mut d = Diagnostic::error(codes::EXPR_SYNTAX, format!("invalid expression: {}", e.message))
                .label(cx.span(&e.span), "here");
            if let Some(h) = e.help {
                d = d.help(h);
            }
            cx.error(d)
        }
    }
}

fn union(items: &[&Typed]) -> BTreeSet<PhiClass> {
    items.iter().flat_map(|t| t.classes.iter().copied()).collect()
}

fn text_like(t: &ValueType) -> bool {
    matches!(t, ValueType::String | ValueType::Code | ValueType::Identifier | ValueType::Any | ValueType::Null)
}

/// Checks that `t` is a single value, reporting SL508 otherwise.
fn single(cx: &mut ExprCx, t: Typed, syn: &Syn) -> Option<Typed> {
    if t.multi {
        return cx.error(
            Diagnostic::error(codes::MULTI_VALUE, "this path yields a list where one value is expected")
                .label(cx.span(&syn.span), "`[*]` yields every repetition")
                .help("pick one (`[0]`), use it in a list field with `each:`, or `join(..., \",\")`"),
        );
    }
    Some(t)
}

pub fn check(cx: &mut ExprCx, syn: &Syn, env: &Env) -> Option<Typed> {
    let lit = |value, ty| Some(Typed::new(Expr::Lit { value }, ty));
    match &syn.kind {
        SynKind::Str(s) => lit(Literal::Str(s.clone()), ValueType::String),
        SynKind::Int(n) => lit(Literal::Int(*n), ValueType::Integer),
        SynKind::Dec(d) => lit(Literal::Dec(d.clone()), ValueType::Decimal),
        SynKind::Bool(b) => lit(Literal::Bool(*b), ValueType::Boolean),
        SynKind::Null => lit(Literal::Null, ValueType::Null),
        SynKind::Hl7Path(text) => check_hl7_path(cx, text, syn, env),
        SynKind::FhirPath(text) => check_fhir_path(cx, text, syn, env),
        SynKind::X12Path(text) => check_x12_path(cx, text, syn, env),
        SynKind::Name(parts) => check_name(cx, parts, syn, env),
        SynKind::Scoped { .. } => super::groups::check_scoped(cx, syn, env),
        SynKind::Not(inner) => {
            let t = check(cx, inner, env)?;
            let t = single(cx, t, inner)?;
            expect_type(cx, &t, &ValueType::Boolean, inner, "`not` needs a boolean")?;
            Some(Typed::new(Expr::Not { operand: Box::new(t.expr) }, ValueType::Boolean))
        }
        SynKind::List(items) => {
            let mut exprs = Vec::new();
            let mut ty = ValueType::Null;
            let mut classes = BTreeSet::new();
            for item in items {
                let t = check(cx, item, env)?;
                let t = single(cx, t, item)?;
                if ty == ValueType::Null {
                    ty = t.ty.clone();
                }
                classes.extend(t.classes);
                exprs.push(t.expr);
            }
            Some(Typed { expr: Expr::List { items: exprs }, ty: ValueType::List(Box::new(ty)), multi: false, classes })
        }
        SynKind::Binary { op, lhs, rhs } => check_binary(cx, *op, lhs, rhs, syn, env),
        SynKind::Call { name, name_span, args } => check_call(cx, name, name_span, args, syn, env),
    }
}

/// A FHIR path, or a Stripe path: each checked against its schema, then walked over the
/// record's JSON by the runtime the same way (`crate::stripe`'s module header).
fn check_fhir_path(cx: &mut ExprCx, text: &str, syn: &Syn, env: &Env) -> Option<Typed> {
    if let (Some(table), Some((var, rest))) =
        (crate::finance_each::Table::of(&env.scope), crate::finance_each::item_var(&env.vars, text))
    {
        return match crate::finance_each::resolve_item(table, var, rest, text, cx.span(&syn.span)) {
            Ok(t) => Some(t),
            Err(d) => cx.error(d),
        };
    }
    let resolved = match env.scope {
        Scope::Fhir(fhir) => fhir.resolve(text, cx.span(&syn.span)),
        Scope::Stripe(stripe) => stripe.resolve(text, cx.span(&syn.span)),
        Scope::QuickBooks(qbo) => qbo.resolve(text, cx.span(&syn.span)),
        Scope::Plaid(plaid) => plaid.resolve(text, cx.span(&syn.span)),
        _ => {
            return cx.error(
                Diagnostic::error(
                    codes::FHIR_INPUT_MISMATCH,
                    format!("`{text}` is a FHIR path, but records here are not FHIR resources"),
                )
                .label(cx.span(&syn.span), "FHIR path")
                .help("FHIR paths are read by mappings with `input: {schema: fhir/r4, resource_type: ...}`"),
            );
        }
    };
    match resolved {
        Ok(r) => Some(Typed {
            expr: Expr::Fhir { path: r.path, value_type: r.value_type.clone(), multi: r.multi },
            ty: r.value_type,
            multi: r.multi,
            classes: r.phi.into_iter().collect(),
        }),
        Err(d) => cx.error(d),
    }
}

fn check_x12_path(cx: &mut ExprCx, text: &str, syn: &Syn, env: &Env) -> Option<Typed> {
    let Scope::X12(x12) = env.scope else {
        return cx.error(
            Diagnostic::error(
                codes::X12_MAP_INPUT_MISMATCH,
                format!("`{text}` is an X12 path, but records here are not X12 transaction sets"),
            )
            .label(cx.span(&syn.span), "X12 path")
            .help("X12 paths are read by mappings with `input: {schema: x12/<guide>}`, such as `x12/005010X222A1`"),
        );
    };
    match x12.resolve(text, cx.span(&syn.span)) {
        Ok(r) => Some(Typed {
            expr: Expr::X12 { path: r.path, value_type: r.value_type.clone(), multi: r.multi },
            ty: r.value_type,
            multi: r.multi,
            classes: r.phi.into_iter().collect(),
        }),
        Err(d) => cx.error(d),
    }
}

fn check_hl7_path(cx: &mut ExprCx, text: &str, syn: &Syn, env: &Env) -> Option<Typed> {
    // A set-level X12 path (`BHT-04`) lexes as an HL7 path.
    if let Scope::X12(_) = env.scope {
        return check_x12_path(cx, text, syn, env);
    }
    if let Scope::Plaid(p) = env.scope {
        return cx.error(
            Diagnostic::error(
                codes::PLAID_MAP_INPUT_MISMATCH,
                format!("`{text}` is an HL7 v2 path, but records here are Plaid `{}` objects", p.object),
            )
            .label(cx.span(&syn.span), "HL7 path")
            .help("write a Plaid path, such as `amount`, `date` or `iso_currency_code`"),
        );
    }
    if let Scope::QuickBooks(q) = env.scope {
        return cx.error(
            Diagnostic::error(
                codes::QUICKBOOKS_MAP_INPUT_MISMATCH,
                format!("`{text}` is an HL7 v2 path, but records here are QuickBooks `{}` entities", q.entity),
            )
            .label(cx.span(&syn.span), "HL7 path")
            .help("write a QuickBooks path, such as `TotalAmt`, `TxnDate` or `CurrencyRef.value`"),
        );
    }
    if let Scope::Stripe(s) = env.scope {
        return cx.error(
            Diagnostic::error(
                codes::STRIPE_MAP_INPUT_MISMATCH,
                format!("`{text}` is an HL7 v2 path, but records here are Stripe `{}` objects", s.object),
            )
            .label(cx.span(&syn.span), "HL7 path")
            .help("write a Stripe path, such as `amount`, `currency` or `billing_details.email`"),
        );
    }
    if let Scope::Fhir(f) = env.scope {
        return cx.error(
            Diagnostic::error(
                codes::FHIR_INPUT_MISMATCH,
                format!("`{text}` is an HL7 v2 path, but records here are FHIR `{}` resources", f.resource_type),
            )
            .label(cx.span(&syn.span), "HL7 path")
            .help("write a FHIR path relative to the resource, such as `name[0].family` or `birthDate`"),
        );
    }
    let Scope::Hl7(hl7) = env.scope else {
        return cx.error(
            Diagnostic::error(
                codes::INCOMPATIBLE_INPUT,
                format!("`{text}` is an HL7 v2 path, but records here are already mapped"),
            )
            .label(cx.span(&syn.span), "HL7 path")
            .help("after a map stage, refer to output fields such as `metadata.message_type`"),
        );
    };
    match hl7.resolve(text, cx.span(&syn.span)) {
        Ok(r) => Some(Typed {
            expr: Expr::Hl7 { path: r.path.to_string(), value_type: r.value_type.clone(), multi: r.multi },
            ty: r.value_type,
            multi: r.multi,
            classes: r.phi.into_iter().collect(),
        }),
        Err(d) => cx.error(d),
    }
}

fn check_name(cx: &mut ExprCx, parts: &[String], syn: &Syn, env: &Env) -> Option<Typed> {
    let first = &parts[0];
    if let Some(var) = env.vars.iter().rev().find(|v| &v.name == first) {
        if var.item.is_some() {
            return check_fhir_path(cx, &parts.join("."), syn, env);
        }
        let Scope::Hl7(hl7) = env.scope else { return None };
        if var.group.is_some() {
            return super::groups::group_as_value(cx, syn, &format!("`{first}`"));
        }
        let nums: Result<Vec<usize>, _> = parts[1..].iter().map(|p| p.parse::<usize>()).collect();
        let nums = match nums {
            Ok(n) if n.len() <= 2 && n.iter().all(|x| *x > 0) => n,
            _ => {
                return cx.error(
                    Diagnostic::error(
                        codes::INVALID_PATH,
                        format!("`{}` is not a component of `{first}`", parts.join(".")),
                    )
                    .label(cx.span(&syn.span), "expected `name.component` or `name.component.subcomponent`")
                    .help(format!("components are numbered from 1: `{first}.1`")),
                );
            }
        };
        let (c, s) = (nums.first().copied(), nums.get(1).copied());
        return match hl7.component_type(&var.datatype, c, s) {
            Ok(ty) => Some(Typed {
                expr: Expr::Var { name: first.clone(), component: c, subcomponent: s, value_type: ty.clone() },
                ty,
                multi: false,
                classes: if c.is_none_or(|c| crate::hl7::component_carries_class(&var.datatype, c)) {
                    var.classes.clone()
                } else {
                    BTreeSet::new()
                },
            }),
            Err(msg) => cx
                .error(Diagnostic::error(codes::UNKNOWN_COMPONENT, msg).label(cx.span(&syn.span), "no such component")),
        };
    }
    if let Scope::Fhir(_) | Scope::Stripe(_) | Scope::QuickBooks(_) | Scope::Plaid(_) = env.scope {
        return check_fhir_path(cx, &parts.join("."), syn, env);
    }
    if let Scope::Output(schema) = env.scope {
        let path = parts.join(".");
        return match schema.field(&path) {
            Some(f) => Some(Typed::new(Expr::Field { path, value_type: f.value_type.clone() }, f.value_type.clone())),
            None => {
                let d =
                    Diagnostic::error(codes::UNKNOWN_OUTPUT_FIELD, format!("{} has no field `{path}`", schema.name))
                        .label(cx.span(&syn.span), "unknown field");
                let d = d.suggest(&path, schema.fields.iter().map(|f| f.path.as_str()));
                cx.error(d)
            }
        };
    }
    let mut d = Diagnostic::error(codes::UNKNOWN_VARIABLE, format!("unknown name `{first}`"))
        .label(cx.span(&syn.span), "not a variable, path or literal");
    let vars: Vec<&str> = env.vars.iter().map(|v| v.name.as_str()).collect();
    if let Some(best) = did_you_mean(first, vars.iter().copied()) {
        d = d.help(format!("did you mean `{best}`?"));
    } else if parts.len() == 1 {
        d = d.help(format!("a text literal needs double quotes inside the YAML value: '\"{first}\"'"));
    }
    cx.error(d)
}

fn expect_type(cx: &mut ExprCx, t: &Typed, want: &ValueType, syn: &Syn, why: &str) -> Option<()> {
    if t.ty.fits(want) {
        return Some(());
    }
    cx.error(
        Diagnostic::error(codes::TYPE_MISMATCH, format!("{why}, found {}", t.ty))
            .label(cx.span(&syn.span), format!("this is {}", t.ty)),
    )?;
    None
}

fn check_binary(cx: &mut ExprCx, op: BinaryOp, lhs: &Syn, rhs: &Syn, syn: &Syn, env: &Env) -> Option<Typed> {
    let l = check(cx, lhs, env);
    let r = check(cx, rhs, env);
    let (l, r) = (single(cx, l?, lhs)?, single(cx, r?, rhs)?);
    let ty = match op {
        BinaryOp::And | BinaryOp::Or => {
            expect_type(cx, &l, &ValueType::Boolean, lhs, &format!("`{}` needs booleans", op.symbol()))?;
            expect_type(cx, &r, &ValueType::Boolean, rhs, &format!("`{}` needs booleans", op.symbol()))?;
            ValueType::Boolean
        }
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            if !(l.ty.fits(&r.ty) || r.ty.fits(&l.ty)) {
                return cx.error(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("cannot compare {} with {}", l.ty, r.ty))
                        .label(cx.span(&syn.span), "operands of different types")
                        .help("convert one side, e.g. `date(...)`, `integer(...)`"),
                );
            }
            ValueType::Boolean
        }
        BinaryOp::Add => {
            let numeric = |t: &ValueType| matches!(t, ValueType::Integer | ValueType::Decimal);
            if text_like(&l.ty) && text_like(&r.ty) {
                ValueType::String
            } else if numeric(&l.ty) && numeric(&r.ty) {
                if l.ty == ValueType::Decimal || r.ty == ValueType::Decimal {
                    ValueType::Decimal
                } else {
                    ValueType::Integer
                }
            } else {
                return cx.error(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("`+` cannot combine {} and {}", l.ty, r.ty))
                        .label(cx.span(&syn.span), "`+` joins text or adds numbers")
                        .help("use `concat(...)` to join values of other types as text"),
                );
            }
        }
    };
    let classes = if ty == ValueType::Boolean { BTreeSet::new() } else { union(&[&l, &r]) };
    Some(Typed {
        expr: Expr::Binary { operator: op, lhs: Box::new(l.expr), rhs: Box::new(r.expr) },
        ty,
        multi: false,
        classes,
    })
}

/// A conversion function's argument: text, or one of the `accepted` types.
fn convertible(cx: &mut ExprCx, t: &Typed, accepted: &[ValueType], syn: &Syn, why: &str) -> Option<()> {
    if text_like(&t.ty) || accepted.contains(&t.ty) {
        return Some(());
    }
    expect_type(cx, t, &ValueType::String, syn, why)
}

fn wrong_args(cx: &mut ExprCx, syn: &Syn, name: &str, message: String) -> Option<Typed> {
    let sig = FUNCTIONS.iter().find(|f| f.0 == name).map_or("", |f| f.1);
    cx.error(
        Diagnostic::error(codes::WRONG_ARGUMENTS, message)
            .label(cx.span(&syn.span), "this call")
            .help(format!("the signature is `{sig}`")),
    )
}

fn check_call(
    cx: &mut ExprCx,
    name: &str,
    name_span: &std::ops::Range<usize>,
    args: &[Arg],
    syn: &Syn,
    env: &Env,
) -> Option<Typed> {
    let function = match (Function::by_name(name), name) {
        (Some(f @ (Function::Connection | Function::Envelope)), _) => return check_provenance(cx, f, args, syn, env),
        (Some(f), _) => f,
        (None, "lookup") => return check_lookup(cx, args, syn, env),
        (None, "template") => return check_template(cx, args, syn, env),
        (None, "classify") => return check_classify(cx, args, syn, env),
        _ if super::groups::is_group_call(syn) => {
            return super::groups::group_as_value(cx, syn, &format!("`{name}(...)`"));
        }
        _ => {
            let d = Diagnostic::error(codes::UNKNOWN_FUNCTION, format!("unknown function `{name}`"))
                .label(cx.span(name_span), "not a built-in function");
            let d = match did_you_mean(name, FUNCTIONS.iter().map(|f| f.0)) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help(format!(
                    "built-in functions: {}",
                    FUNCTIONS.iter().map(|f| format!("`{}`", f.0)).collect::<Vec<_>>().join(", ")
                )),
            };
            return cx.error(d);
        }
    };
    if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
        return wrong_args(cx, syn, name, format!("`{name}` takes no named argument `{}`", named.0));
    }
    let (min, max) = match function {
        Function::Date
        | Function::Datetime
        | Function::Upper
        | Function::Lower
        | Function::Trim
        | Function::Present
        | Function::Integer
        | Function::Decimal
        | Function::UnixDate
        | Function::UnixDatetime
        | Function::Negate
        | Function::Envelope => (1, 1),
        Function::Connection => (0, 0),
        Function::StartsWith | Function::Join | Function::Contains | Function::MinorUnits => (2, 2),
        Function::If => (3, 3),
        Function::Coalesce => (2, usize::MAX),
        Function::Concat => (1, usize::MAX),
    };
    if args.len() < min || args.len() > max {
        let want = if min == max { format!("{min}") } else { format!("at least {min}") };
        return wrong_args(cx, syn, name, format!("`{name}` takes {want} argument(s), found {}", args.len()));
    }
    let mut typed = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let t = check(cx, &a.value, env)?;
        let list_arg = matches!(function, Function::Join | Function::Contains) && i == 0;
        let t = if function == Function::Present || list_arg { t } else { single(cx, t, &a.value)? };
        typed.push(t);
    }
    let arg_syn = |i: usize| &args[i].value;
    let refs: Vec<&Typed> = typed.iter().collect();
    let (ty, classes) = match function {
        Function::Date | Function::Datetime => {
            let accepted = [ValueType::Date, ValueType::DateTime];
            convertible(cx, &typed[0], &accepted, arg_syn(0), &format!("`{name}` needs HL7 date text or a date"))?;
            (if function == Function::Date { ValueType::Date } else { ValueType::DateTime }, union(&refs))
        }
        Function::Upper | Function::Lower | Function::Trim => {
            expect_type(cx, &typed[0], &ValueType::String, arg_syn(0), &format!("`{name}` needs text"))?;
            (ValueType::String, union(&refs))
        }
        Function::Integer | Function::Decimal => {
            let accepted = [ValueType::Integer, ValueType::Decimal];
            convertible(cx, &typed[0], &accepted, arg_syn(0), &format!("`{name}` needs text or a number"))?;
            (if function == Function::Integer { ValueType::Integer } else { ValueType::Decimal }, union(&refs))
        }
        Function::Present => (ValueType::Boolean, BTreeSet::new()),
        Function::StartsWith => {
            expect_type(cx, &typed[0], &ValueType::String, arg_syn(0), "`starts_with` needs text")?;
            expect_type(cx, &typed[1], &ValueType::String, arg_syn(1), "`starts_with` needs a text prefix")?;
            (ValueType::Boolean, BTreeSet::new())
        }
        Function::Join => {
            expect_type(cx, &typed[1], &ValueType::String, arg_syn(1), "`join` needs a text separator")?;
            (ValueType::String, union(&refs))
        }
        Function::Concat => (ValueType::String, union(&refs)),
        Function::Contains => (ValueType::Boolean, BTreeSet::new()),
        Function::UnixDate | Function::UnixDatetime => {
            expect_type(
                cx,
                &typed[0],
                &ValueType::Integer,
                arg_syn(0),
                &format!("`{name}` needs Unix seconds (an integer)"),
            )?;
            (if function == Function::UnixDate { ValueType::Date } else { ValueType::DateTime }, union(&refs))
        }
        Function::Negate => {
            let ty = typed[0].ty.clone();
            if !matches!(ty, ValueType::Integer | ValueType::Decimal | ValueType::Null | ValueType::Any) {
                return cx.error(
                    Diagnostic::error(codes::TYPE_MISMATCH, format!("`negate` needs a number, found {ty}"))
                        .label(cx.span(&arg_syn(0).span), "not a number")
                        .help("convert text with `decimal(...)` first"),
                );
            }
            (if ty == ValueType::Integer { ValueType::Integer } else { ValueType::Decimal }, union(&refs))
        }
        // Checked by `check_provenance`.
        Function::Connection | Function::Envelope => (ValueType::String, BTreeSet::new()),
        Function::MinorUnits => {
            expect_type(
                cx,
                &typed[0],
                &ValueType::Integer,
                arg_syn(0),
                "`minor_units` needs an integer amount in minor units",
            )?;
            expect_type(cx, &typed[1], &ValueType::Code, arg_syn(1), "`minor_units` needs a currency code")?;
            (ValueType::Decimal, union(&refs))
        }
        Function::Coalesce => {
            let first = typed.iter().map(|t| t.ty.clone()).find(|t| *t != ValueType::Null).unwrap_or(ValueType::Null);
            for (i, t) in typed.iter().enumerate() {
                expect_type(cx, t, &first, arg_syn(i), &format!("`coalesce` arguments must all be {first}"))?;
            }
            (first, union(&refs))
        }
        Function::If => {
            expect_type(cx, &typed[0], &ValueType::Boolean, arg_syn(0), "the condition of `if` must be boolean")?;
            let then_ty = if typed[1].ty == ValueType::Null { typed[2].ty.clone() } else { typed[1].ty.clone() };
            expect_type(cx, &typed[2], &then_ty, arg_syn(2), &format!("both branches of `if` must be {then_ty}"))?;
            (then_ty, union(&refs[1..]))
        }
    };
    Some(Typed {
        expr: Expr::Call { function, args: typed.into_iter().map(|t| t.expr).collect() },
        ty,
        multi: false,
        classes,
    })
}

/// The `envelope(name)` names a mapping of `scope`'s records may read; `None` when its records
/// do not come from a finance source. Only values fixed per source and kept through a DLQ replay
/// are offered (`crate::codes::ENVELOPE_NAME` says why the others are not).
pub fn envelope_names(scope: &Scope) -> Option<&'static [&'static str]> {
    match scope {
        Scope::QuickBooks(_) => Some(&[sluice_finance::QUICKBOOKS_REALM]),
        Scope::Plaid(_) => Some(&[sluice_finance::PLAID_ITEM]),
        Scope::Stripe(_) => Some(&[]),
        _ => None,
    }
}

/// `connection()` and `envelope("name")`: provenance of a finance record, text without a PHI
/// class (names the spec gives and ids of companies, not data about people).
fn check_provenance(cx: &mut ExprCx, function: Function, args: &[Arg], syn: &Syn, env: &Env) -> Option<Typed> {
    let name = function.name();
    let Some(allowed) = envelope_names(&env.scope) else {
        let records = match env.scope {
            Scope::Hl7(_) => "HL7 v2 messages",
            Scope::Fhir(_) => "FHIR resources",
            Scope::X12(_) => "X12 transaction sets",
            _ => "already mapped",
        };
        return cx.error(
            Diagnostic::error(
                codes::PROVENANCE_INPUT,
                format!("`{}` reads where a finance record came from, but records here are {records}", match function {
                    Function::Connection => "connection()",
                    _ => "envelope(...)",
                }),
            )
            .label(cx.span(&syn.span), "no finance source here")
            .help(if matches!(env.scope, Scope::Output(_)) {
                "map the value to an output field in the finance mapping (`connection: connection()`) and read that field here (`connection`)"
            } else {
                "only mappings with a `stripe/...`, `plaid/...` or `quickbooks/...` input read `connection()` and `envelope(...)`"
            }),
        );
    };
    if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
        return wrong_args(cx, syn, name, format!("`{name}` takes no named argument `{}`", named.0));
    }
    let arguments = match function {
        Function::Connection => 0,
        _ => 1,
    };
    if args.len() != arguments {
        return wrong_args(cx, syn, name, format!("`{name}` takes {arguments} argument(s), found {}", args.len()));
    }
    let mut typed = Vec::new();
    if function == Function::Envelope {
        let arg = &args[0].value;
        let listed = || {
            if allowed.is_empty() {
                "Stripe records carry no envelope value: the Stripe account is the connection, read it with `connection()`"
                    .to_string()
            } else {
                format!(
                    "records of this input carry: {}",
                    allowed.iter().map(|n| format!("`\"{n}\"`")).collect::<Vec<_>>().join(", ")
                )
            }
        };
        let SynKind::Str(header) = &arg.kind else {
            return cx.error(
                Diagnostic::error(codes::ENVELOPE_NAME, "`envelope` needs the name as a string literal")
                    .label(cx.span(&arg.span), "not a string literal")
                    .help(listed()),
            );
        };
        if !allowed.contains(&header.as_str()) {
            let d = Diagnostic::error(
                codes::ENVELOPE_NAME,
                format!("records of this mapping's input carry no envelope value `{header}`"),
            )
            .label(cx.span(&arg.span), "not set by this input's source");
            let d = match did_you_mean(header, allowed.iter().copied()) {
                Some(best) => d.help(format!("did you mean `\"{best}\"`? {}", listed())),
                None => d.help(listed()),
            };
            return cx.error(d);
        }
        typed.push(Expr::Lit { value: Literal::Str(header.clone()) });
    }
    Some(Typed::new(Expr::Call { function, args: typed }, ValueType::String))
}

fn check_lookup(cx: &mut ExprCx, args: &[Arg], syn: &Syn, env: &Env) -> Option<Typed> {
    let positional: Vec<&Arg> = args.iter().filter(|a| a.name.is_none()).collect();
    if positional.len() != 2 {
        return wrong_args(
            cx,
            syn,
            "lookup",
            format!("`lookup` takes a value and a table, found {} positional argument(s)", positional.len()),
        );
    }
    let mut default = None;
    for a in args.iter().filter(|a| a.name.is_some()) {
        let (n, span) = a.name.as_ref()?;
        if n != "default" {
            return cx.error(
                Diagnostic::error(codes::WRONG_ARGUMENTS, format!("`lookup` has no argument `{n}`"))
                    .label(cx.span(span), "unknown named argument")
                    .help("the signature is `lookup(value, table, default=value)`"),
            );
        }
        let t = check(cx, &a.value, env)?;
        default = Some(single(cx, t, &a.value)?);
    }
    let value = check(cx, &positional[0].value, env)?;
    let value = single(cx, value, &positional[0].value)?;
    let table_syn = &positional[1].value;
    let SynKind::Name(parts) = &table_syn.kind else {
        return wrong_args(cx, syn, "lookup", "the second argument of `lookup` must be a table name".into());
    };
    let table = parts.join(".");
    if !env.tables.contains(&table) {
        let d = Diagnostic::error(codes::UNKNOWN_TABLE, format!("no code table named `{table}`"))
            .label(cx.span(&table_syn.span), "unknown table");
        let d = match did_you_mean(&table, env.tables.iter().map(String::as_str)) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help("declare it under `tables:` in the mapping"),
        };
        return cx.error(d);
    }
    let mut classes = value.classes.clone();
    if let Some(d) = &default {
        classes.extend(d.classes.iter().copied());
    }
    Some(Typed {
        expr: Expr::Lookup { value: Box::new(value.expr), table, default: default.map(|d| Box::new(d.expr)) },
        ty: ValueType::String,
        multi: false,
        classes,
    })
}

/// `classify(value, "ssn")`: compile-time only. The value passes through unchanged; the class
/// joins its classes so masking treats it accordingly (e.g. an SSN sent in a PID-3 repetition,
/// which the schema classes as `mrn`). Classes can be added, never removed.
fn check_classify(cx: &mut ExprCx, args: &[Arg], syn: &Syn, env: &Env) -> Option<Typed> {
    if args.len() != 2 || args.iter().any(|a| a.name.is_some()) {
        return wrong_args(
            cx,
            syn,
            "classify",
            format!("`classify` takes a value and a class name, found {} argument(s)", args.len()),
        );
    }
    let SynKind::Str(class_name) = &args[1].value.kind else {
        return wrong_args(cx, syn, "classify", "the class must be a string literal such as \"ssn\"".into());
    };
    let Some(class) = PhiClass::parse(class_name) else {
        let d = Diagnostic::error(codes::UNKNOWN_PHI_CLASS, format!("`{class_name}` is not a PHI class"))
            .label(cx.span(&args[1].value.span), "unknown class");
        return cx.error(d.suggest(class_name, PhiClass::ALL.iter().map(|c| c.as_str())));
    };
    let mut t = check(cx, &args[0].value, env)?;
    t.classes.insert(class);
    Some(t)
}

fn check_template(cx: &mut ExprCx, args: &[Arg], syn: &Syn, env: &Env) -> Option<Typed> {
    let Some(first) = args.first().filter(|a| a.name.is_none()) else {
        return wrong_args(cx, syn, "template", "`template` needs the template text first".into());
    };
    let SynKind::Str(source) = &first.value.kind else {
        return wrong_args(cx, syn, "template", "the template must be a string literal, so it can be checked".into());
    };
    let menv = minijinja::Environment::new();
    let used = match menv.template_from_str(source) {
        Ok(t) => t.undeclared_variables(false),
        Err(e) => {
            return cx.error(
                Diagnostic::error(
                    codes::TEMPLATE_ERROR,
                    format!("the template does not parse: {}", e.detail().unwrap_or("syntax error")),
                )
                .label(cx.span(&first.value.span), "this template"),
            );
        }
    };
    let mut vars = Vec::new();
    let mut classes = BTreeSet::new();
    for a in &args[1..] {
        let Some((n, _)) = &a.name else {
            return wrong_args(cx, syn, "template", "template variables are passed by name: `name=value`".into());
        };
        let t = check(cx, &a.value, env)?;
        let t = single(cx, t, &a.value)?;
        classes.extend(t.classes.iter().copied());
        vars.push((n.clone(), t.expr));
    }
    let mut used: Vec<String> = used.into_iter().collect();
    used.sort();
    for u in used {
        if !vars.iter().any(|(n, _)| *n == u) {
            return cx.error(
                Diagnostic::error(codes::TEMPLATE_ERROR, format!("the template uses `{u}`, which is not passed"))
                    .label(cx.span(&first.value.span), format!("uses `{u}`"))
                    .help(format!("pass it as a named argument: `{u}=...`")),
            );
        }
    }
    Some(Typed { expr: Expr::Template { source: source.clone(), vars }, ty: ValueType::String, multi: false, classes })
}

/// Reports SL502 when an expression's type does not fit a target (an output field, a rule).
pub fn check_fits(diags: &mut Diagnostics, t: &Typed, target: &ValueType, span: Span, what: &str) -> bool {
    if t.ty.fits(target) {
        return true;
    }
    let mut d = Diagnostic::error(codes::TYPE_MISMATCH, format!("{what} is {target}, but the expression is {}", t.ty))
        .label(span, format!("this is {}", t.ty));
    let hint = match (&t.ty, target) {
        (ValueType::DateTime | ValueType::String | ValueType::Code, ValueType::Date) => {
            Some("convert it with `date(...)`")
        }
        (ValueType::String | ValueType::Date | ValueType::Code, ValueType::DateTime) => {
            Some("convert it with `datetime(...)`")
        }
        (ValueType::String | ValueType::Code, ValueType::Integer) => Some("convert it with `integer(...)`"),
        (ValueType::String | ValueType::Code, ValueType::Decimal) => Some("convert it with `decimal(...)`"),
        (_, ValueType::String) => Some("convert it to text with `concat(...)`"),
        _ => None,
    };
    if let Some(h) = hint {
        d = d.help(h);
    }
    diags.push(d);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    /// Checks `text` in `scope`: the typed expression, or the codes of its diagnostics.
    fn checked(text: &str, scope: Scope) -> Result<Typed, Vec<&'static str>> {
        let mut sources = SourceMap::default();
        let file = sources.add(SourceFile::new(std::path::Path::new("m.yaml"), text.to_string()));
        let mut diags = Diagnostics::default();
        let env = Env { scope, vars: Vec::new(), tables: Vec::new() };
        let typed = check_text(&sources, &mut diags, text, Span::new(file, 0, text.len()), &env);
        match typed {
            Some(t) if diags.items().is_empty() => Ok(t),
            _ => Err(diags.items().iter().map(|d| d.code.code).collect()),
        }
    }

    const QUICKBOOKS: Scope = Scope::QuickBooks(crate::quickbooks::QuickBooksEnv { entity: "Purchase" });
    const PLAID: Scope = Scope::Plaid(crate::plaid::PlaidEnv { object: "transaction" });
    const STRIPE: Scope = Scope::Stripe(crate::stripe::StripeEnv { object: "balance_transaction" });

    #[test]
    fn connection_and_envelope_are_text_without_a_phi_class_in_finance_mappings() {
        for scope in [QUICKBOOKS, PLAID, STRIPE] {
            let t = checked("connection()", scope).unwrap();
            assert_eq!((t.ty, t.multi, t.classes.is_empty()), (ValueType::String, false, true));
            assert_eq!(t.expr, Expr::Call { function: Function::Connection, args: Vec::new() });
        }
        let realm = checked("envelope(\"quickbooks.realm\")", QUICKBOOKS).unwrap();
        assert_eq!(
            realm.expr,
            Expr::Call {
                function: Function::Envelope,
                args: vec![Expr::Lit { value: Literal::Str("quickbooks.realm".into()) }]
            }
        );
        assert_eq!(realm.ty, ValueType::String);
        assert_eq!(checked("envelope(\"plaid.item\")", PLAID).unwrap().ty, ValueType::String);
        // Joined with a payee's name, the value carries the name's class only.
        let joined = checked("concat(connection(), \"/\", EntityRef.name)", QUICKBOOKS).unwrap();
        assert_eq!(joined.classes.into_iter().collect::<Vec<_>>(), vec![PhiClass::Name]);
        assert_eq!(
            format!("{}", checked("concat(connection(), envelope(\"quickbooks.realm\"))", QUICKBOOKS).unwrap().expr),
            "concat(connection(), envelope(\"quickbooks.realm\"))"
        );
    }

    #[test]
    fn envelope_names_are_checked_per_input() {
        assert_eq!(checked("envelope(\"plaid.item\")", QUICKBOOKS).unwrap_err(), ["SL474"]);
        assert_eq!(checked("envelope(\"quickbooks.realm\")", PLAID).unwrap_err(), ["SL474"]);
        assert_eq!(checked("envelope(\"stripe.list\")", STRIPE).unwrap_err(), ["SL474"]);
        // Per-delivery values are not offered: a replayed record could not give them.
        assert_eq!(checked("envelope(\"quickbooks.sync_token\")", QUICKBOOKS).unwrap_err(), ["SL474"]);
        // The name must be a literal, to be checked.
        assert_eq!(checked("envelope(Id)", QUICKBOOKS).unwrap_err(), ["SL474"]);
        assert_eq!(checked("envelope()", QUICKBOOKS).unwrap_err(), ["SL504"]);
        assert_eq!(checked("connection(\"qbo\")", QUICKBOOKS).unwrap_err(), ["SL504"]);
    }

    #[test]
    fn records_not_from_a_finance_source_have_no_provenance() {
        let output = Scope::Output(sluice_canonical::schema("canonical/financial-transaction@2").unwrap());
        let fhir = Scope::Fhir(crate::fhir::FhirEnv { resource_type: "Patient" });
        for scope in [output, fhir] {
            assert_eq!(checked("connection()", scope).unwrap_err(), ["SL473"]);
            assert_eq!(checked("envelope(\"quickbooks.realm\")", scope).unwrap_err(), ["SL473"]);
        }
        // After a map stage the connection is an output field, read by its name.
        assert_eq!(checked("connection", output).unwrap().ty, ValueType::String);
    }
}
