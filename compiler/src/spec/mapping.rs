//! Mapping specs (`kind: mapping`): one typed expression per output field.
//!
//! Invariants:
//! - Every output path exists in the output schema, and no runtime-set field is mapped.
//! - Every expression type-checks against the input schema and fits its output field.
//! - The PHI classes of every output leaf are known (they feed the masking proof), nested list
//!   members included (`orders[*].observations[*].value`).
//! - `each: group(...)` names a segment group of the structures of `message_types` (checked by
//!   [`crate::expr::groups`]); its items read the group instance through a group variable.
//! - Over a Stripe, QuickBooks or Plaid object, `each` in a list field iterates an array of
//!   the object (`- each: Line[*]`, `as: line`), paths on the variable checked as the array's
//!   items' by [`crate::finance_each`] (SL490 for a path that is not an array); at the top of
//!   the mapping it is refused (SL427): one record per object.
//! - Over X12, `each` iterates loops only (`loop(2400)`, SL416 otherwise), in a list or at the
//!   top of the mapping (one record per occurrence, X12 only: SL427; a chain of HL levels such
//!   as `loop(2000C, 2000D)` at the top only, SL430); paths inside are checked against the
//!   loop's context by [`crate::x12::X12Env`].
//! - An X12 input with `profile` and `partner` reads that trading partner's copy of the guide
//!   (its overlays applied): paths are checked against the copy, and the plan carries the
//!   partner and its overlays of the guide so the map stage reads the sets with the same copy.
//!   `profile` and `partner` go together (SL481); the partner must be the profile's (SL482)
//!   and send the guide (SL483).

use std::collections::BTreeSet;

use sluice_canonical::{OutputSchema, Presence};
use sluice_hl7v2::schema::Version;
use sluice_spec_core::{PhiClass, ValueType};

use super::reader::{self, Cx, Spanned};
use super::rules::message_types;
use super::shape;
use super::{SchemaRef, schema_ref};
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::expr::ast::Expr;
use crate::expr::check::{self, Env, Scope, Typed, Var};
use crate::expr::groups::{self, Structures};
use crate::fhir::FhirEnv;
use crate::hl7::Hl7Env;
use crate::plan::{
    CodeTable, FieldPlan, FieldValue, ItemPlan, ListMemberPlan, MapPlan, MemberPlan, Producer, TableKeys,
    X12MapPartnerPlan, X12PartnersPlan, ZSegmentPlan,
};
use crate::source::Span;
use crate::yaml::{Node, Value};

pub struct Mapping {
    pub plan: MapPlan,
    pub input_version: Option<(Version, Span)>,
    /// `input: {schema: fhir/r4, resource_type: T}`: `T` and where it is written.
    pub input_fhir: Option<(&'static str, Span)>,
    /// `input: {schema: x12/<guide>}`: the guide and where it is written.
    pub input_x12: Option<(&'static sluice_x12::guide::Guide, Span)>,
    /// `input: {schema: stripe/<object>}`: the object type and where it is written.
    pub input_stripe: Option<(&'static str, Span)>,
    /// `input: {schema: quickbooks/<Entity>}`: the entity and where it is written.
    pub input_quickbooks: Option<(&'static str, Span)>,
    /// `input: {schema: plaid/<object>}`: the object and where it is written.
    pub input_plaid: Option<(&'static str, Span)>,
    pub output: &'static OutputSchema,
    /// Output leaf (list items as `[*]`) -> classes flowing into it, and where it is mapped.
    pub leaf_classes: Vec<(String, BTreeSet<PhiClass>, Span)>,
}

/// The parser profile a mapping names, read without reporting anything (the driver loads it
/// before checking the mapping, so Z-segment paths resolve).
pub fn profile_ref(node: &Node) -> Option<(String, Span)> {
    let Value::Map(top) = &node.value else { return None };
    let (_, input) = top.iter().find(|(k, _)| k.as_str() == Some("input"))?;
    let Value::Map(input) = &input.value else { return None };
    let (_, p) = input.iter().find(|(k, _)| k.as_str() == Some("profile"))?;
    p.as_str().map(|s| (s.to_string(), p.span))
}

/// Whether a mapping reads X12 (`input.schema: x12/...`), read without reporting anything (the
/// driver then loads `input.profile` as an X12 trading-partner profile).
pub fn input_is_x12(node: &Node) -> bool {
    let Value::Map(top) = &node.value else { return false };
    let Some((_, input)) = top.iter().find(|(k, _)| k.as_str() == Some("input")) else { return false };
    let Value::Map(input) = &input.value else { return false };
    input.iter().any(|(k, v)| {
        k.as_str() == Some("schema") && v.as_str().is_some_and(|t| t.starts_with(crate::x12::MAPPING_SCHEMA_PREFIX))
    })
}

/// The X12 trading-partner profile an X12 mapping's `input.profile` names, as the driver
/// loaded it.
#[derive(Clone, Copy)]
pub enum X12Profile<'a> {
    /// No `profile` (or not an X12 mapping).
    None,
    /// Named, but it could not be read or is not an X12 profile (reported where it is named).
    Failed,
    Loaded(&'a X12PartnersPlan),
}

pub fn read(cx: &mut Cx, node: &Node, z_segments: &[ZSegmentPlan], x12_profile: X12Profile<'_>) -> Option<Mapping> {
    let obj = reader::object(cx, node, &shape::MAPPING, "the mapping")?;
    let name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    // Optional in the shape because an overlay inherits them (`extends`); the merged mapping
    // must have both.
    for key in ["input", "output"] {
        if obj.get(key).is_none() {
            cx.push(
                Diagnostic::error(codes::MISSING_KEY, format!("the mapping is missing the required key `{key}`"))
                    .label(obj.anchor(), format!("add `{key}` here"))
                    .help("write it here, or `extends: base-mapping.yaml` to inherit it"),
            );
        }
    }
    let mut input_version = None;
    let mut input_fhir = None;
    let mut input_x12 = None;
    let mut x12_partner = None;
    let mut input_stripe = None;
    let mut input_quickbooks = None;
    let mut input_plaid = None;
    let mut types = Vec::new();
    let mut input_text = String::new();
    if let Some(input) = obj.get("input")
        && let Some(inp) = reader::object(cx, input, &shape::MAPPING_INPUT, "`input`")
    {
        let fhir_schema = inp.get("schema").filter(|n| n.as_str().is_some_and(|t| t.starts_with("fhir/")));
        if let Some(schema_node) = fhir_schema {
            input_text = crate::fhir::SCHEMA.to_string();
            input_fhir = fhir_input(cx, &inp, schema_node);
            input_fhir?;
        } else if let Some(span) = inp.key_span("resource_type") {
            cx.push(
                Diagnostic::error(codes::UNKNOWN_KEY, "`resource_type` is for `schema: fhir/r4`")
                    .label(span, "not a key of an HL7 v2 mapping's input")
                    .help("remove it, or read FHIR resources with `schema: fhir/r4`"),
            );
        }
        let x12_schema =
            inp.get("schema").filter(|n| n.as_str().is_some_and(|t| t.starts_with(crate::x12::MAPPING_SCHEMA_PREFIX)));
        if let Some(schema_node) = x12_schema {
            let schema = reader::string(cx, schema_node, "a schema name")?;
            match crate::x12::mapping_guide(&schema.text, schema.span) {
                Ok(g) => {
                    input_text = schema.text.clone();
                    // With `profile` and `partner`: that partner's copy of the guide.
                    let (guide, partner) = partner_copy(cx, &inp, g, schema.span, x12_profile)?;
                    input_x12 = Some((guide, schema.span));
                    x12_partner = partner;
                }
                Err(d) => {
                    cx.push(d);
                    return None;
                }
            }
        }
        if x12_schema.is_none()
            && let Some(span) = inp.key_span("partner")
        {
            cx.push(
                Diagnostic::error(codes::UNKNOWN_KEY, "`partner` is for `schema: x12/<guide>`")
                    .label(span, "not a key of this mapping's input")
                    .help("remove it: a trading partner's copy of a guide is read by X12 mappings only"),
            );
        }
        let stripe_schema =
            inp.get("schema").filter(|n| n.as_str().is_some_and(|t| t.starts_with(crate::stripe::SCHEMA_PREFIX)));
        if let Some(schema_node) = stripe_schema {
            let schema = reader::string(cx, schema_node, "a schema name")?;
            match crate::stripe::mapping_object(&schema.text, schema.span) {
                Ok(o) => {
                    input_text = schema.text.clone();
                    input_stripe = Some((o, schema.span));
                }
                Err(d) => {
                    cx.push(d);
                    return None;
                }
            }
        }
        let qbo_schema =
            inp.get("schema").filter(|n| n.as_str().is_some_and(|t| t.starts_with(crate::quickbooks::SCHEMA_PREFIX)));
        if let Some(schema_node) = qbo_schema {
            let schema = reader::string(cx, schema_node, "a schema name")?;
            match crate::quickbooks::mapping_entity(&schema.text, schema.span) {
                Ok(e) => {
                    input_text = schema.text.clone();
                    input_quickbooks = Some((e, schema.span));
                }
                Err(d) => {
                    cx.push(d);
                    return None;
                }
            }
        }
        let plaid_schema =
            inp.get("schema").filter(|n| n.as_str().is_some_and(|t| t.starts_with(crate::plaid::SCHEMA_PREFIX)));
        if let Some(schema_node) = plaid_schema {
            let schema = reader::string(cx, schema_node, "a schema name")?;
            match crate::plaid::mapping_object(&schema.text, schema.span) {
                Ok(o) => {
                    input_text = schema.text.clone();
                    input_plaid = Some((o, schema.span));
                }
                Err(d) => {
                    cx.push(d);
                    return None;
                }
            }
        }
        if fhir_schema.is_some()
            || x12_schema.is_some()
            || stripe_schema.is_some()
            || qbo_schema.is_some()
            || plaid_schema.is_some()
        {
        } else if let Some((r, s)) = inp.get("schema").and_then(|n| schema_ref(cx, n)) {
            input_text = s.text.clone();
            match r {
                SchemaRef::Hl7(v) => input_version = Some((v, s.span)),
                SchemaRef::Output(_) => cx.push(
                    Diagnostic::error(
                        codes::UNKNOWN_SCHEMA,
                        format!("a mapping reads a standard's messages, not `{}`", s.text),
                    )
                    .label(s.span, "an output schema")
                    .help("write `schema: hl7v2/<version>`"),
                ),
            }
        }
        types = inp.get("message_types").map(|n| message_types(cx, n)).unwrap_or_default();
    }
    let fhir_output = obj.get("output").filter(|n| n.as_str().is_some_and(|t| t.starts_with("fhir/")));
    let output = obj.get("output").filter(|_| fhir_output.is_none()).and_then(|n| schema_ref(cx, n)).and_then(
        |(r, s)| match r {
            SchemaRef::Output(o) => Some((o, s)),
            SchemaRef::Hl7(_) => {
                cx.push(
                    Diagnostic::error(
                        codes::UNKNOWN_SCHEMA,
                        format!("`{}` is an input standard, not an output schema", s.text),
                    )
                    .label(s.span, "not an output schema")
                    .help(format!("output schemas: {}", sluice_canonical::names().collect::<Vec<_>>().join(", "))),
                );
                None
            }
        },
    );
    let tables = obj.get("tables").map(|n| read_tables(cx, n)).unwrap_or_default();
    if let Some(out) = fhir_output {
        let Some((version, _)) = input_version else {
            if let Some((_, span)) = input_fhir {
                cx.push(
                    Diagnostic::error(codes::FHIR_INPUT_MISMATCH, "FHIR output is built from HL7 v2 messages")
                        .label(span, "a FHIR input")
                        .help("map FHIR resources to an output schema such as `canonical/patient-event@1`"),
                );
            }
            return None;
        };
        let hl7 = Hl7Env { schema: sluice_hl7v2::schema::schema(version), z_segments };
        let head = super::fhir_output::Head { name, input_schema: input_text, message_types: types, tables };
        let m = super::fhir_output::read(cx, &obj, out, hl7, version, head)?;
        return Some(Mapping {
            plan: m.plan,
            input_version,
            input_fhir,
            input_x12,
            input_stripe,
            input_quickbooks,
            input_plaid,
            output: m.output,
            leaf_classes: m.leaf_classes,
        });
    }
    // An output schema is mapped with `fields`; `resources` belongs to FHIR output.
    if obj.get("output").is_some() {
        if obj.get("fields").is_none() {
            cx.push(
                Diagnostic::error(codes::MISSING_KEY, "the mapping is missing the required key `fields`")
                    .label(obj.anchor(), "add `fields` here")
                    .help("`fields`: output field -> expression, one entry per field of the output schema"),
            );
        }
        if let Some(span) = obj.key_span("resources") {
            cx.push(
                Diagnostic::error(codes::UNKNOWN_KEY, "`resources` is for `output: fhir/r4/Bundle`")
                    .label(span, "not a key of a mapping to an output schema")
                    .help("map the output schema's fields under `fields`, or write `output: fhir/r4/Bundle`"),
            );
        }
    }
    let mut x12_each_loop = None;
    if let Some(each_node) = obj.get("each") {
        match input_x12 {
            Some((guide, _)) => {
                let env = crate::x12::X12Env { guide, within: None, outer: None };
                x12_each_loop = Some(x12_each(cx, each_node, env, None, true)?);
            }
            None if input_stripe.is_some() || input_quickbooks.is_some() || input_plaid.is_some() => {
                cx.push(
                    Diagnostic::error(
                        codes::MAPPING_EACH_UNSUPPORTED,
                        "one record per item of a finance object's array is not supported yet",
                    )
                    .label(each_node.span, "`each` at the top of the mapping")
                    .help("a mapping over a Stripe, QuickBooks or Plaid object maps one record per object: map the items as a list field (`lines: [{each: Line[*], as: line, item: {amount: line.Amount}}]`)"),
                );
                return None;
            }
            None => {
                cx.push(
                    Diagnostic::error(
                        codes::MAPPING_EACH_UNSUPPORTED,
                        "`each` for a whole mapping is only for X12 loops",
                    )
                    .label(each_node.span, "one record per what?")
                    .help("an X12 mapping writes `each: loop(2300)` (one record per claim); HL7 v2 and FHIR mappings give one record per message or resource and iterate repetitions in list fields (`- each: ...`)"),
                );
                return None;
            }
        }
    }
    let (scope, structures, output) = match (input_version, input_fhir, output) {
        (None, None, Some((output, _))) if input_stripe.is_some() => {
            let (object, _) = input_stripe?;
            // The map stage accepts objects of this type only (their `object` field).
            types = vec![object.to_string()];
            let env = crate::stripe::StripeEnv { object };
            (Scope::Stripe(env), Structures { version: Version::ALL[0], roots: vec![] }, output)
        }
        (None, None, Some((output, _))) if input_quickbooks.is_some() => {
            let (entity, _) = input_quickbooks?;
            // The map stage accepts entities of this kind only (the record's entity name).
            types = vec![entity.to_string()];
            let env = crate::quickbooks::QuickBooksEnv { entity };
            (Scope::QuickBooks(env), Structures { version: Version::ALL[0], roots: vec![] }, output)
        }
        (None, None, Some((output, _))) if input_plaid.is_some() => {
            let (object, _) = input_plaid?;
            // The map stage accepts objects of this kind only (the record's object name).
            types = vec![object.to_string()];
            let env = crate::plaid::PlaidEnv { object };
            (Scope::Plaid(env), Structures { version: Version::ALL[0], roots: vec![] }, output)
        }
        (None, None, Some((output, _))) if input_x12.is_some() => {
            let (guide, _) = input_x12?;
            // The map stage accepts sets of this guide's transaction set id.
            types = vec![guide.set_id.clone()];
            let levels = x12_each_loop.as_deref().unwrap_or(&[]);
            let outer = if levels.len() > 1 { levels.first().copied() } else { None };
            let env = crate::x12::X12Env { guide, within: levels.last().copied(), outer };
            (Scope::X12(env), Structures { version: Version::ALL[0], roots: vec![] }, output)
        }
        (Some((version, _)), _, Some((output, _))) => {
            let hl7 = Hl7Env { schema: sluice_hl7v2::schema::schema(version), z_segments };
            (Scope::Hl7(hl7), Structures::of(&types, version), output)
        }
        (None, Some((resource_type, _)), Some((output, _))) => {
            // The map stage accepts records of this resource type only (their "message type").
            types = vec![resource_type.to_string()];
            (Scope::Fhir(FhirEnv { resource_type }), Structures { version: Version::ALL[0], roots: vec![] }, output)
        }
        _ => return None,
    };
    let env = Env { scope, vars: vec![], tables: tables.iter().map(|t| t.name.clone()).collect() };
    let mut m = MappingChecker { output, structures, fields: vec![], leaf_classes: vec![], mapped: BTreeSet::new() };
    if let Some(fields) = obj.get("fields") {
        m.fields_of(cx, fields, "", &env);
        let anchor = obj.key_span("fields").unwrap_or(obj.anchor());
        for f in output.fields.iter().filter(|f| f.presence == Presence::Required) {
            if !m.mapped.contains(&f.path) {
                cx.push(
                    Diagnostic::error(
                        codes::UNMAPPED_REQUIRED,
                        format!("required output field `{}` is not mapped", f.path),
                    )
                    .label(anchor, format!("`{}` missing from these fields", f.path))
                    .help(format!("add `{}: <expression>` ({}: {})", f.path, f.value_type, f.description)),
                );
            }
        }
    }
    let plan = MapPlan {
        mapping: name,
        mapping_file: cx.sources.get(cx.file).name.clone(),
        input_schema: input_text,
        output_schema: output.name.to_string(),
        message_types: types,
        tables,
        fields: m.fields,
        fhir: None,
        table: output.table.as_ref().map(|t| TableKeys {
            write_mode: t.write_mode.clone(),
            primary_key: t.primary_key.clone(),
            cursor: t.cursor.clone(),
        }),
        x12_each: x12_each_loop.unwrap_or_default().iter().map(|l| l.id.clone()).collect(),
        x12_partner,
    };
    Some(Mapping {
        plan,
        input_version,
        input_fhir,
        input_x12,
        input_stripe,
        input_quickbooks,
        input_plaid,
        output,
        leaf_classes: m.leaf_classes,
    })
}

/// The resource type of a mapping reading `schema: fhir/r4` (required there).
fn fhir_input(cx: &mut Cx, inp: &reader::Obj, schema_node: &Node) -> Option<(&'static str, Span)> {
    let schema = reader::string(cx, schema_node, "a schema name")?;
    if schema.text != crate::fhir::SCHEMA {
        cx.push(
            Diagnostic::error(codes::UNKNOWN_SCHEMA, format!("unknown schema `{}`", schema.text))
                .label(schema.span, "not a bundled schema")
                .help("FHIR input is `schema: fhir/r4` (FHIR R4, 4.0.1)"),
        );
        return None;
    }
    if let Some(span) = inp.key_span("message_types") {
        cx.push(
            Diagnostic::error(codes::UNKNOWN_KEY, "`message_types` is for HL7 v2 input")
                .label(span, "not a key of a FHIR mapping's input")
                .help("a FHIR mapping reads one `resource_type`"),
        );
    }
    let Some(node) = inp.get("resource_type") else {
        cx.push(
            Diagnostic::error(codes::MISSING_KEY, "a mapping of `fhir/r4` needs `resource_type`")
                .label(schema.span, "add `resource_type: Patient` (or another type) beside this")
                .help("paths in the mapping are relative to that resource type"),
        );
        return None;
    };
    let t = reader::string(cx, node, "`resource_type`")?;
    match crate::fhir::resource_type(&t.text) {
        Some(rt) => Some((rt, t.span)),
        None => {
            cx.push(crate::fhir::unknown_resource_type(&t.text, t.span));
            None
        }
    }
}

fn read_tables(cx: &mut Cx, node: &Node) -> Vec<CodeTable> {
    let Some(entries) = reader::entries(cx, node, "`tables`") else { return vec![] };
    let mut out = Vec::new();
    for (name, _, value) in entries {
        let Some(rows) = reader::entries(cx, value, &format!("table `{name}`")) else { continue };
        let mut table = CodeTable { name: name.to_string(), entries: vec![] };
        for (code, _, v) in rows {
            if let Some(s) = reader::string(cx, v, &format!("the value of `{code}` in table `{name}`")) {
                table.entries.push((code.to_string(), s.text));
            }
        }
        out.push(table);
    }
    out
}

/// What an `each:` (with `as:`) iterates over, checked: a repeating path (`each`) or segment
/// groups/segments (`group`), the variable's name, and the variables in scope for the items.
pub(crate) struct Iteration {
    pub each: Option<crate::expr::ast::Expr>,
    pub group: Option<crate::plan::GroupEach>,
    /// `each: Line[*]` over a finance object ([`crate::finance_each`]).
    pub array: Option<crate::plan::ArrayEach>,
    pub var: Option<String>,
    pub vars: Vec<Var>,
    /// `each: loop(ID)` over X12: the scope of the items (the loop bound).
    pub x12: Option<crate::x12::X12Env>,
}

/// Checks the `each:` and `as:` keys of `obj` (a list producer, or a FHIR resource); without
/// `each:` nothing is iterated and the variables are those of `env`.
pub(crate) fn iteration(cx: &mut Cx, obj: &reader::Obj, env: &Env, structures: &Structures) -> Option<Iteration> {
    if let (Scope::Fhir(_), Some(each_node)) = (env.scope, obj.get("each")) {
        cx.push(
            Diagnostic::error(codes::FHIR_EACH_UNSUPPORTED, "`each` over FHIR elements is not supported yet")
                .label(each_node.span, "iterates over a FHIR element")
                .help("map repetitions by index (`identifier[0].value`) in `- item:` entries"),
        );
        return None;
    }
    if let (Scope::X12(x12), Some(each_node)) = (env.scope, obj.get("each")) {
        let l = x12_each(cx, each_node, x12, obj.key_span("as"), false)?;
        let within = crate::x12::X12Env { within: l.last().copied(), outer: None, ..x12 };
        return Some(Iteration {
            each: None,
            group: None,
            array: None,
            var: None,
            vars: env.vars.clone(),
            x12: Some(within),
        });
    }
    if let (Some(table), Some(each_node)) = (crate::finance_each::Table::of(&env.scope), obj.get("each")) {
        // `each: Line[*]` over a Stripe, QuickBooks or Plaid object: one item per element.
        let written = reader::string(cx, each_node, "`each`")?;
        let (array, item) = crate::finance_each::each(cx.diags, table, &written.text, written.span, env)?;
        let name = match obj.get("as") {
            Some(n) => reader::string(cx, n, "`as`")?,
            None => Spanned { text: "it".into(), span: each_node.span },
        };
        let mut vars = env.vars.clone();
        vars.push(crate::finance_each::var(name.text.clone(), item));
        return Some(Iteration { each: None, group: None, array: Some(array), var: Some(name.text), vars, x12: None });
    }
    if let Scope::Fhir(_) | Scope::X12(_) | Scope::Stripe(_) | Scope::QuickBooks(_) | Scope::Plaid(_) = env.scope {
        return Some(Iteration { each: None, group: None, array: None, var: None, vars: env.vars.clone(), x12: None });
    }
    let Scope::Hl7(hl7) = env.scope else { return None };
    let mut vars = env.vars.clone();
    let (mut each, mut var, mut group) = (None, None, None);
    let name_of = |cx: &mut Cx, each_node: &Node| match obj.get("as") {
        Some(n) => reader::string(cx, n, "`as`"),
        None => Some(Spanned { text: "it".into(), span: each_node.span }),
    };
    if let Some(each_node) = obj.get("each")
        && let Some((syn, base)) = check::group_syntax(each_node)
    {
        let mut ecx = check::ExprCx { sources: cx.sources, diags: cx.diags, base };
        let (g, gv) = groups::check_each(&mut ecx, &syn, env, structures)?;
        let name = name_of(cx, each_node)?;
        vars.push(Var {
            name: name.text.clone(),
            datatype: String::new(),
            classes: BTreeSet::new(),
            group: Some(gv),
            item: None,
        });
        group = Some(g);
        var = Some(name.text);
    } else if let Some(each_node) = obj.get("each") {
        let t = check::check_node(cx.sources, cx.diags, each_node, env)?;
        let (crate::expr::ast::Expr::Hl7 { path, .. } | crate::expr::ast::Expr::Within { path, .. }) = &t.expr else {
            cx.push(
                Diagnostic::error(codes::TYPE_MISMATCH, "`each` must be a repeating HL7 path")
                    .label(each_node.span, "not a path")
                    .help("write a path with `[*]`, such as `PID-3[*]`"),
            );
            return None;
        };
        if !t.multi {
            cx.push(
                Diagnostic::error(codes::TYPE_MISMATCH, "`each` needs a path that yields several values")
                    .label(each_node.span, "this path yields one value")
                    .help(format!(
                        "iterate over every repetition with `[*]`, e.g. `{}[*]`",
                        path.split('.').next().unwrap_or(path)
                    )),
            );
            return None;
        }
        let resolved = hl7.resolve(path, each_node.span).ok()?;
        // An iteration variable stands for one repetition: its components are addressed
        // relative to the field's datatype, or to the component's when `each` names one.
        let datatype = match resolved.path.component {
            None => resolved.field_datatype.clone(),
            Some(c) => hl7
                .schema
                .datatype(&resolved.field_datatype)
                .and_then(|d| d.component(c))
                .map_or("ST".to_string(), |cd| cd.datatype.clone()),
        };
        let name = name_of(cx, each_node)?;
        vars.push(Var { name: name.text.clone(), datatype, classes: t.classes.clone(), group: None, item: None });
        each = Some(t.expr);
        var = Some(name.text);
    }
    Some(Iteration { each, group, array: None, var, vars, x12: None })
}

/// The guide an X12 mapping reads: with `profile` and `partner`, that partner's copy of
/// `bundled` (SL481 when one is written without the other, SL482 an unknown partner, SL483 a
/// guide the partner does not send); the bundled guide without either. `None` after an error.
#[allow(clippy::type_complexity)]
fn partner_copy(
    cx: &mut Cx,
    inp: &reader::Obj,
    bundled: &'static sluice_x12::guide::Guide,
    schema_span: Span,
    profile: X12Profile<'_>,
) -> Option<(&'static sluice_x12::guide::Guide, Option<X12MapPartnerPlan>)> {
    let partner = match inp.get("partner") {
        Some(n) => Some(reader::string(cx, n, "`partner`")?),
        None => None,
    };
    let plan = match (profile, partner.as_ref()) {
        (X12Profile::None, None) => return Some((bundled, None)),
        (X12Profile::Failed, _) => return None,
        (X12Profile::None, Some(p)) => {
            cx.push(
                Diagnostic::error(
                    codes::X12_MAPPING_PROFILE,
                    format!("`partner: {}` names a trading partner, but the input names no `profile`", p.text),
                )
                .label(p.span, "a partner of which profile?")
                .help("add `profile: <file>` (the `format: x12` profile that defines the partner, relative to this mapping), or remove `partner` to read the bundled guide"),
            );
            return None;
        }
        (X12Profile::Loaded(plan), None) => {
            let at = inp.get("profile").map_or(schema_span, |n| n.span);
            let names: Vec<&str> = plan.partners.iter().map(|p| p.name.as_str()).collect();
            cx.push(
                Diagnostic::error(
                    codes::X12_MAPPING_PROFILE,
                    "an X12 mapping's `profile` needs `partner`: whose copy of the guide does it read?",
                )
                .label(at, "a profile of trading partners")
                .help(format!(
                    "add `partner: <name>` (partners: {}), or remove `profile` to read the bundled guide",
                    names.join(", ")
                )),
            );
            return None;
        }
        (X12Profile::Loaded(plan), Some(p)) => (plan, p),
    };
    let (plan, p) = plan;
    let Some(found) = plan.partners.iter().find(|x| x.name == p.text) else {
        let names: Vec<&str> = plan.partners.iter().map(|p| p.name.as_str()).collect();
        let d = Diagnostic::error(
            codes::X12_MAPPING_UNKNOWN_PARTNER,
            format!("`{}` is not a trading partner of profile `{}`", p.text, plan.name),
        )
        .label(p.span, "no partner of this name");
        let list = if names.is_empty() { "the profile has none".to_string() } else { names.join(", ") };
        cx.push(match crate::diagnostics::did_you_mean(&p.text, names.iter().copied()) {
            Some(best) => {
                d.help(format!("did you mean `{best}`? Partners are named by `name`, not their sender id: {list}"))
            }
            None => d.help(format!("partners are named by `name`, not their sender id: {list}")),
        });
        return None;
    };
    if !crate::spec::x12_profile::sends(found, bundled) {
        cx.push(
            Diagnostic::error(
                codes::X12_MAPPING_PARTNER_GUIDE,
                format!(
                    "partner `{}` does not send guide {} (transaction set {})",
                    found.name,
                    bundled.schema_name(),
                    bundled.set_id
                ),
            )
            .label(schema_span, "not one of the partner's guides")
            .help(format!(
                "the partner sends {} in version {}: map one of those guides, or add the set to the partner's `transaction_sets`",
                found.transaction_sets.join(", "),
                found.version
            )),
        );
        return None;
    }
    let overlays = crate::spec::x12_profile::overlays_on(found, bundled);
    match crate::spec::x12_profile::partner_copy(bundled, &overlays) {
        Ok(copy) => Some((copy, Some(X12MapPartnerPlan { name: found.name.clone(), overlays }))),
        // The profile's overlays were applied one by one when it was read: a misfit of the
        // whole was reported there (SL435, SL450, SL451).
        Err(_) => None,
    }
}

/// The loops of `each: loop(ID)` over X12 (SL416 for any other `each`, SL425 for an unknown
/// loop, SL429 for one not below the loop iterated around it; at the top of a mapping
/// (`top`), `loop(2000C, 2000D)` names a chain of HL levels, SL430 otherwise and in a list);
/// `as_at`: where `as:` is written, which names nothing here.
fn x12_each(
    cx: &mut Cx,
    each_node: &Node,
    x12: crate::x12::X12Env,
    as_at: Option<Span>,
    top: bool,
) -> Option<Vec<&'static sluice_x12::guide::Loop>> {
    let text = each_node.as_str().unwrap_or("");
    let Some(ids) = crate::x12::loop_call(text) else {
        cx.push(
            Diagnostic::error(codes::X12_EACH_UNSUPPORTED, "`each` over X12 iterates a loop: `each: loop(ID)`")
                .label(each_node.span, "not a loop")
                .help("iterate a loop (`each: loop(2400)`, paths in the item such as `2400/SV1-01-2` then read each occurrence), or map the list field to the path itself, one item per value (`claim_ids: 2300[*]/CLM-01`)"),
        );
        return None;
    };
    let first = ids[0].0;
    if let Some(span) = as_at {
        cx.push(
            Diagnostic::error(codes::UNKNOWN_KEY, "`as` names nothing over an X12 loop")
                .label(span, "not a key of `each: loop(...)`")
                .help(format!("remove it: paths through loop {first} (`{first}/...`) read the current occurrence")),
        );
        return None;
    }
    // Each id's characters inside `loop(...)`, when the node is the text as written.
    let verbatim = each_node.span.end - each_node.span.start >= text.len();
    let spans: Vec<(&str, Span)> = ids
        .iter()
        .map(|&(id, i)| {
            let at = if verbatim {
                let start = each_node.span.end - text.len() + i;
                Span::new(each_node.span.file, start, start + id.len())
            } else {
                each_node.span
            };
            (id, at)
        })
        .collect();
    if !top && spans.len() > 1 {
        cx.push(
            Diagnostic::error(codes::X12_EACH_LEVELS, "a list field iterates one X12 loop")
                .label(spans[1].1, "a second loop")
                .help(format!(
                    "write `- each: loop({first})`, and a second producer for the other loop; several HL levels (`each: loop(2000C, 2000D)`) are for the top of a mapping"
                )),
        );
        return None;
    }
    match x12.each_levels(&spans) {
        Ok(l) => Some(l),
        Err(d) => {
            cx.push(d);
            None
        }
    }
}

/// `t` when it is one value; SL508 at `span` when its path yields a list.
pub(crate) fn single(cx: &mut Cx, t: Typed, span: Span) -> Option<Typed> {
    if !t.multi {
        return Some(t);
    }
    cx.push(
        Diagnostic::error(codes::MULTI_VALUE, "this path yields a list where one value is expected")
            .label(span, "`[*]` yields every repetition")
            .help("pick one (`[0]`), use a list field with `each:`, or `join(..., \",\")`"),
    );
    None
}

struct MappingChecker {
    output: &'static OutputSchema,
    /// The message structures of the mapping's message types, for `each: group(...)`.
    structures: Structures,
    fields: Vec<FieldPlan>,
    leaf_classes: Vec<(String, BTreeSet<PhiClass>, Span)>,
    mapped: BTreeSet<String>,
}

fn sorted(classes: &BTreeSet<PhiClass>) -> Vec<PhiClass> {
    classes.iter().copied().collect()
}

impl MappingChecker {
    fn fields_of(&mut self, cx: &mut Cx, node: &Node, prefix: &str, env: &Env) {
        let Some(entries) = reader::entries(cx, node, "`fields`") else { return };
        for (key, key_node, value) in entries {
            let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
            let Some(def) = self.output.field(&path) else {
                let d = Diagnostic::error(
                    codes::UNKNOWN_OUTPUT_FIELD,
                    format!("{} has no field `{path}`", self.output.name),
                )
                .label(key_node.span, "unknown output field");
                cx.push(self.suggest_sibling(d, &path, key));
                continue;
            };
            if def.presence == Presence::Runtime {
                cx.push(
                    Diagnostic::error(
                        codes::RUNTIME_FIELD,
                        format!("`{path}` is set by the runtime and cannot be mapped"),
                    )
                    .label(key_node.span, "runtime-set field")
                    .help("remove this entry; Sluice fills it from what the run did"),
                );
                continue;
            }
            self.mapped.insert(path.clone());
            match (&value.value, &def.value_type) {
                (Value::Map(_), ValueType::Struct) => self.fields_of(cx, value, &path, env),
                (Value::Seq(items), ValueType::List(inner)) => {
                    let producers = items.iter().filter_map(|p| self.producer(cx, p, &path, inner, env)).collect();
                    self.fields.push(FieldPlan {
                        path,
                        value_type: def.value_type.clone(),
                        required: def.presence == Presence::Required,
                        value: FieldValue::List { producers },
                    });
                }
                (_, ValueType::Struct) => cx.push(
                    Diagnostic::error(
                        codes::WRONG_TYPE,
                        format!("`{path}` is a group of fields; map its fields one by one"),
                    )
                    .label(value.span, format!("expected a mapping of `{path}`'s fields")),
                ),
                (_, ValueType::List(inner))
                    if matches!(
                        env.scope,
                        Scope::X12(_) | Scope::Stripe(_) | Scope::QuickBooks(_) | Scope::Plaid(_)
                    ) && **inner != ValueType::Struct =>
                {
                    let Some(producer) = self.x12_values(cx, value, &path, inner, env) else { continue };
                    self.fields.push(FieldPlan {
                        path,
                        value_type: def.value_type.clone(),
                        required: def.presence == Presence::Required,
                        value: FieldValue::List { producers: vec![producer] },
                    });
                }
                (_, ValueType::List(_)) => cx.push(
                    Diagnostic::error(codes::WRONG_TYPE, format!("`{path}` is a list; give it a list of producers"))
                        .label(value.span, "expected a list such as `- each: PID-3[*]`")
                        .help("write `- each: <repeating path>` with `as:` and `item:`, or `- item: ...` for one item"),
                ),
                _ => {
                    let Some(t) = check::check_node(cx.sources, cx.diags, value, env) else { continue };
                    let Some(t) = single(cx, t, value.span) else { continue };
                    if !check::check_fits(cx.diags, &t, &def.value_type, value.span, &format!("`{path}`")) {
                        continue;
                    }
                    self.leaf_classes.push((path.clone(), t.classes.clone(), value.span));
                    self.fields.push(FieldPlan {
                        path,
                        value_type: def.value_type.clone(),
                        required: def.presence == Presence::Required,
                        value: FieldValue::Scalar { expr: t.expr, classes: sorted(&t.classes) },
                    });
                }
            }
        }
    }

    /// Help for an unknown output field: the closest field of the same group, compared by
    /// name (whole paths all share their group's prefix, which would make any sibling look
    /// close), or the list of the group's fields. Suggested in the form `key` was written.
    fn suggest_sibling(&self, d: Diagnostic, path: &str, key: &str) -> Diagnostic {
        let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
        let siblings: Vec<&str> = self
            .output
            .fields
            .iter()
            .filter(|f| f.presence != Presence::Runtime && !f.path.contains("[*]"))
            .filter_map(|f| match f.path.rsplit_once('.') {
                Some((p, l)) if p == parent => Some(l),
                None if parent.is_empty() => Some(f.path.as_str()),
                _ => None,
            })
            .collect();
        let written =
            |l: &str| if key.contains('.') && !parent.is_empty() { format!("{parent}.{l}") } else { l.to_string() };
        let list = siblings.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
        match crate::diagnostics::did_you_mean(leaf, siblings.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{}`?", written(best))),
            None if parent.is_empty() => d.help(format!("top-level fields: {list}")),
            None => d.help(format!("`{parent}` has the fields {list}")),
        }
    }

    /// A list of scalars in an X12 mapping written as one expression (`claim_ids:
    /// 2300[*]/CLM-01`): one item per value, as if written `- each: <expr>` with `item:` the
    /// value (`each` itself is SL416 over X12). An X12 path is iterated as the text sent and
    /// each item converted once, to the element's type.
    fn x12_values(&mut self, cx: &mut Cx, node: &Node, list: &str, inner: &ValueType, env: &Env) -> Option<Producer> {
        let t = check::check_node(cx.sources, cx.diags, node, env)?;
        // The variable is named after what it iterates, so a conversion warning names the path.
        let var = t.expr.to_string();
        if !check::check_fits(cx.diags, &t, inner, node.span, &format!("an item of `{list}`")) {
            return None;
        }
        self.leaf_classes.push((format!("{list}[*]"), t.classes.clone(), node.span));
        let each = match t.expr {
            Expr::X12 { path, multi, .. } => Expr::X12 { path, value_type: ValueType::String, multi },
            other => other,
        };
        let item = Expr::Var { name: var.clone(), component: None, subcomponent: None, value_type: t.ty };
        Some(Producer {
            each: Some(each),
            group: None,
            x12_loop: None,
            array: None,
            var: Some(var),
            when: None,
            item: ItemPlan::Scalar { classes: sorted(&t.classes), expr: item },
        })
    }

    fn producer(&mut self, cx: &mut Cx, node: &Node, list: &str, inner: &ValueType, env: &Env) -> Option<Producer> {
        let obj = reader::object(cx, node, &shape::PRODUCER, &format!("a producer of `{list}`"))?;
        let Iteration { each, group, array, var, vars, x12 } = iteration(cx, &obj, env, &self.structures)?;
        let x12_loop = x12.and_then(|e| e.within).map(|l| l.id.clone());
        let scope = x12.map_or(env.scope, Scope::X12);
        let inner_env = Env { scope, vars, tables: env.tables.clone() };
        let when = match obj.get("when") {
            Some(w) => {
                let t = check::check_node(cx.sources, cx.diags, w, &inner_env)?;
                if !check::check_fits(cx.diags, &t, &ValueType::Boolean, w.span, "`when`") {
                    return None;
                }
                Some(t.expr)
            }
            None => None,
        };
        let item_node = obj.get("item")?;
        let item = match (&item_node.value, inner) {
            (Value::Map(_), ValueType::Struct) => {
                let entries = reader::entries(cx, item_node, "`item`")?;
                let (mut members, mut lists) = (Vec::new(), Vec::new());
                for (member, key, value) in entries {
                    let path = format!("{list}[*].{member}");
                    let Some(def) = self.output.field(&path) else {
                        let d = Diagnostic::error(
                            codes::UNKNOWN_OUTPUT_FIELD,
                            format!("items of `{list}` have no member `{member}`"),
                        )
                        .label(key.span, "unknown member");
                        let names: Vec<String> = self
                            .output
                            .item_members(list)
                            .iter()
                            .map(|f| f.path.rsplit('.').next().unwrap_or("").to_string())
                            .collect();
                        cx.push(d.suggest(member, names.iter().map(String::as_str)));
                        continue;
                    };
                    if let (Value::Seq(items), ValueType::List(member_inner)) = (&value.value, &def.value_type) {
                        // A nested list: its producers run in this item's scope (its variables).
                        let producers = items
                            .iter()
                            .filter_map(|p| self.producer(cx, p, &path, member_inner, &inner_env))
                            .collect();
                        lists.push(ListMemberPlan {
                            name: member.to_string(),
                            value_type: def.value_type.clone(),
                            producers,
                        });
                        continue;
                    }
                    if let (ValueType::List(member_inner), Scope::X12(_) | Scope::Stripe(_)) =
                        (&def.value_type, inner_env.scope)
                        && **member_inner != ValueType::Struct
                    {
                        // A list of scalars written as one path (`service_types: 2110C/EB[*]-03`).
                        let Some(producer) = self.x12_values(cx, value, &path, member_inner, &inner_env) else {
                            continue;
                        };
                        lists.push(ListMemberPlan {
                            name: member.to_string(),
                            value_type: def.value_type.clone(),
                            producers: vec![producer],
                        });
                        continue;
                    }
                    let Some(t) = check::check_node(cx.sources, cx.diags, value, &inner_env) else { continue };
                    let Some(t) = single(cx, t, value.span) else { continue };
                    if !check::check_fits(cx.diags, &t, &def.value_type, value.span, &format!("`{path}`")) {
                        continue;
                    }
                    self.leaf_classes.push((path, t.classes.clone(), value.span));
                    members.push(MemberPlan {
                        name: member.to_string(),
                        value_type: def.value_type.clone(),
                        expr: t.expr,
                        classes: sorted(&t.classes),
                    });
                }
                ItemPlan::Struct { members, lists }
            }
            (Value::Map(_), _) => {
                cx.push(
                    Diagnostic::error(
                        codes::WRONG_TYPE,
                        format!("items of `{list}` are {inner}, not groups of fields"),
                    )
                    .label(item_node.span, "expected one expression"),
                );
                return None;
            }
            (_, ValueType::Struct) => {
                cx.push(
                    Diagnostic::error(codes::WRONG_TYPE, format!("items of `{list}` are groups of fields"))
                        .label(item_node.span, "expected `member: expression` entries"),
                );
                return None;
            }
            _ => {
                let t = check::check_node(cx.sources, cx.diags, item_node, &inner_env)?;
                let t = single(cx, t, item_node.span)?;
                if !check::check_fits(cx.diags, &t, inner, item_node.span, &format!("an item of `{list}`")) {
                    return None;
                }
                self.leaf_classes.push((format!("{list}[*]"), t.classes.clone(), item_node.span));
                ItemPlan::Scalar { classes: sorted(&t.classes), expr: t.expr }
            }
        };
        Some(Producer { each, group, x12_loop, array, var, when, item })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::Diagnostics;
    use crate::source::{SourceFile, SourceMap};

    /// Reads `text` as a mapping: the mapping (if it checks) and the codes reported.
    fn read_text(text: &str) -> (Option<Mapping>, Vec<&'static str>) {
        let mut sources = SourceMap::default();
        let file = sources.add(SourceFile::new(std::path::Path::new("m.yaml"), text.to_string()));
        let mut diags = Diagnostics::default();
        let node = crate::yaml::parse(file, sources.get(file), &mut diags).expect("YAML");
        let mut cx = Cx { sources: &sources, file, diags: &mut diags };
        let m = read(&mut cx, &node, &[], X12Profile::None);
        let codes = diags.items().iter().map(|d| d.code.code).collect();
        (m, codes)
    }

    fn finance(schema: &str, list: &str) -> String {
        format!(
            "kind: mapping\nname: m\ninput:\n  schema: {schema}\noutput: canonical/financial-transaction@2\nfields:\n  source: '\"quickbooks\"'\n  connection: connection()\n  id: Id\n  date: TxnDate\n  amount: \"0.00\"\n  currency: lower(CurrencyRef.value)\n  pending: \"false\"\n  fee_types:\n{list}"
        )
    }

    #[test]
    fn each_over_a_quickbooks_array_binds_the_item_and_keeps_the_flat_paths_classes() {
        let (m, codes) = read_text(&finance(
            "quickbooks/VendorCredit",
            "    - each: Line[*]\n      as: line\n      when: line.Amount > 0\n      item: concat(line.AccountBasedExpenseLineDetail.CustomerRef.name, DocNumber)\n",
        ));
        assert_eq!(codes, Vec::<&str>::new());
        let m = m.unwrap();
        let FieldValue::List { producers } = &m.plan.fields.iter().find(|f| f.path == "fee_types").unwrap().value
        else {
            panic!("a list")
        };
        let p = &producers[0];
        assert_eq!(p.array, Some(crate::plan::ArrayEach { within: None, path: "Line".into() }));
        assert_eq!(p.var.as_deref(), Some("line"));
        let ItemPlan::Scalar { expr, classes } = &p.item else { panic!("a scalar item") };
        assert_eq!(expr.to_string(), "concat(line.AccountBasedExpenseLineDetail.CustomerRef.name, DocNumber)");
        // The class of the flat path `Line[*].AccountBasedExpenseLineDetail.CustomerRef.name`.
        assert_eq!(classes, &[PhiClass::Name]);
        let leaf = m.leaf_classes.iter().find(|(p, ..)| p == "fee_types[*]").unwrap();
        assert_eq!(leaf.1, BTreeSet::from([PhiClass::Name]));
        let flat =
            sluice_finance::quickbooks::check("VendorCredit", "Line[*].AccountBasedExpenseLineDetail.CustomerRef.name");
        assert_eq!(flat.unwrap().class, Some(PhiClass::Name));
    }

    #[test]
    fn a_nested_each_reads_the_outer_item_and_an_array_of_values_is_its_own_item() {
        let (m, codes) = read_text(&finance(
            "quickbooks/JournalEntry",
            "    - each: TxnTaxDetail.TaxLine[*]\n      as: tax\n      item: concat(tax.TaxLineDetail.TaxRateRef.value, \":\", tax.Amount)\n",
        ));
        assert_eq!(codes, Vec::<&str>::new());
        let m = m.unwrap();
        let FieldValue::List { producers } = &m.plan.fields.iter().find(|f| f.path == "fee_types").unwrap().value
        else {
            panic!("a list")
        };
        assert_eq!(producers[0].array.as_ref().unwrap().path, "TxnTaxDetail.TaxLine");
        let plaid = "kind: mapping\nname: m\ninput:\n  schema: plaid/transaction\noutput: canonical/financial-transaction@2\nfields:\n  source: '\"plaid\"'\n  connection: connection()\n  id: transaction_id\n  date: date\n  amount: negate(amount)\n  currency: lower(iso_currency_code)\n  pending: pending\n  fee_types:\n    - each: category[*]\n      as: c\n      item: upper(c)\n";
        let (m, codes) = read_text(plaid);
        assert_eq!(codes, Vec::<&str>::new());
        let m = m.unwrap();
        let FieldValue::List { producers } = &m.plan.fields.iter().find(|f| f.path == "fee_types").unwrap().value
        else {
            panic!("a list")
        };
        let ItemPlan::Scalar { expr, .. } = &producers[0].item else { panic!("a scalar item") };
        assert_eq!(expr.to_string(), "upper(c)");
    }

    #[test]
    fn what_is_not_an_array_or_not_under_the_item_is_refused_with_its_code() {
        let cases = [
            ("    - each: CurrencyRef\n      as: c\n      item: c.value\n", "SL490"),
            ("    - each: Line[0]\n      as: line\n      item: line.Description\n", "SL490"),
            ("    - each: Lines[*]\n      as: line\n      item: line.Description\n", "SL440"),
            ("    - each: Line[*]\n      as: line\n      item: line.Descripton\n", "SL440"),
            // The variable's name is the item's only: `Line` stays the whole array (a list).
            ("    - each: Line[*]\n      as: line\n      item: Line.Description\n", "SL508"),
        ];
        for (list, code) in cases {
            let (m, codes) = read_text(&finance("quickbooks/JournalEntry", list));
            assert_eq!(codes, [code], "{list}");
            assert!(m.is_some_and(|m| m.plan.fields.iter().all(|f| match &f.value {
                FieldValue::List { producers } => producers.is_empty(),
                _ => true,
            })));
        }
        let top = finance("quickbooks/JournalEntry", "    - item: Id\n").replace("fields:", "each: Line[*]\nfields:");
        assert_eq!(read_text(&top).1, ["SL427"]);
    }

    /// A mapping of BillPayment lines to an output with a list of groups holding a list
    /// (`canonical/claim@2`, for the shape only): `codes` are those besides SL408 (the claim's
    /// required fields, not mapped here).
    fn nested(inner_each: &str) -> (Option<Mapping>, Vec<&'static str>) {
        let text = format!(
            "kind: mapping\nname: m\ninput:\n  schema: quickbooks/BillPayment\noutput: canonical/claim@2\nfields:\n  total_charge: Line[0].Amount\n  service_lines:\n    - each: Line[*]\n      as: line\n      item:\n        charge: line.Amount\n        procedure_modifiers:\n          - each: {inner_each}\n            as: txn\n            item: txn.TxnType\n"
        );
        let (m, codes) = read_text(&text);
        (m, codes.into_iter().filter(|c| *c != "SL408").collect())
    }

    #[test]
    fn an_items_own_array_is_iterated_by_a_nested_each_on_the_variable() {
        let (m, codes) = nested("line.LinkedTxn[*]");
        assert_eq!(codes, Vec::<&str>::new());
        let m = m.unwrap();
        let FieldValue::List { producers } = &m.plan.fields.iter().find(|f| f.path == "service_lines").unwrap().value
        else {
            panic!("a list")
        };
        let ItemPlan::Struct { members, lists } = &producers[0].item else { panic!("groups") };
        assert_eq!(members[0].expr.to_string(), "line.Amount");
        let inner = &lists[0].producers[0];
        assert_eq!(inner.array, Some(crate::plan::ArrayEach { within: Some("line".into()), path: "LinkedTxn".into() }));
        let ItemPlan::Scalar { expr, .. } = &inner.item else { panic!("a scalar item") };
        assert_eq!(expr.to_string(), "txn.TxnType");
        // The flat path with an index reads one line (QuickBooks' upper-case names after `[0].`).
        let total = m.plan.fields.iter().find(|f| f.path == "total_charge").unwrap();
        let FieldValue::Scalar { expr, .. } = &total.value else { panic!("a scalar") };
        assert_eq!(expr.to_string(), "Line[0].Amount");
        assert_eq!(nested("line.Amount").1, ["SL490"]);
        assert_eq!(nested("line.LinkedTxns[*]").1, ["SL440"]);
    }
}
