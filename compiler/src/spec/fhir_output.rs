//! Mappings whose output is a FHIR R4 transaction Bundle (`output: fhir/r4/Bundle`): one
//! Bundle per message, built from `resources:`, each a kind of resource with an optional
//! iteration (`each:`, `within:`), a deterministic `id:` and `fields:` keyed by element paths.
//!
//! Invariants:
//! - Every element path is checked against `sluice-fhir`: element names (SL410, with
//!   did-you-mean from the schema's candidates), cardinality and value forms (SL411), required
//!   bindings of literal and looked-up codes (SL412), references between resources (SL413);
//!   expression types against the element's type (SL502).
//! - PHI flows as for canonical outputs: each leaf pattern (`Patient.name[*].family`) carries
//!   the classes of its expression and the FHIR schema's class of the element; the patterns
//!   form the output schema the masking proof and mask stages check against.

use std::collections::{BTreeMap, BTreeSet};

use sluice_canonical::{FieldDef, OutputSchema, Presence};
use sluice_fhir::{PathError, PathErrorKind, Resolved, Schema};
use sluice_hl7v2::schema::Version;
use sluice_spec_core::{PhiClass, ValueType};

use super::mapping::{Iteration, iteration, single};
use super::reader::{self, Cx, Obj};
use super::shape;
use crate::codes;
use crate::diagnostics::{Diagnostic, did_you_mean};
use crate::expr::ast::{Expr, Function, Literal};
use crate::expr::check::{self, Env, Scope, Var};
use crate::expr::groups::Structures;
use crate::hl7::Hl7Env;
use crate::plan::fhir::{
    BUNDLE_SCHEMA, FhirBundlePlan, FhirField, FhirItem, FhirProducer, FhirResourcePlan, FhirScalar, FhirStep, FhirValue,
};
use crate::plan::{CodeTable, MapPlan};
use crate::source::Span;
use crate::yaml::{Node, Value};

/// What the mapping file says besides its resources.
pub struct Head {
    pub name: String,
    pub input_schema: String,
    pub message_types: Vec<String>,
    pub tables: Vec<CodeTable>,
}

pub struct FhirMapping {
    pub plan: MapPlan,
    /// The leaf patterns the Bundle may hold, as an output schema for masking checks.
    pub output: &'static OutputSchema,
    pub leaf_classes: Vec<(String, BTreeSet<PhiClass>, Span)>,
}

/// A resource kind as declared, for `within` and `ref(...)` checks.
struct Declared {
    name: String,
    resource_type: String,
    within: Option<String>,
    iterates: bool,
    /// The variables its fields see (set once its iteration is checked).
    vars: Vec<Var>,
}

struct Checker<'t> {
    schema: &'static Schema,
    tables: &'t [CodeTable],
    structures: Structures,
    declared: Vec<Declared>,
    /// The resource whose fields are being checked.
    current: usize,
    leaves: Vec<(String, BTreeSet<PhiClass>, Span, ValueType)>,
}

pub fn read(cx: &mut Cx, obj: &Obj, out: &Node, hl7: Hl7Env, version: Version, head: Head) -> Option<FhirMapping> {
    let text = out.as_str().unwrap_or_default();
    if text != BUNDLE_SCHEMA {
        cx.push(
            Diagnostic::error(codes::UNKNOWN_SCHEMA, format!("unknown schema `{text}`"))
                .label(out.span, "not a bundled schema")
                .help(format!("a FHIR mapping writes `{BUNDLE_SCHEMA}` (one transaction Bundle per message)")),
        );
        return None;
    }
    if let Some(span) = obj.key_span("fields") {
        cx.push(
            Diagnostic::error(codes::UNKNOWN_KEY, "a FHIR mapping lists `resources`, not `fields`")
                .label(span, "`fields` maps an output schema")
                .help("move the fields under `resources: {<name>: {type: ..., id: ..., fields: ...}}`"),
        );
    }
    let Some(resources) = obj.get("resources") else {
        cx.push(
            Diagnostic::error(codes::MISSING_KEY, "the mapping is missing the required key `resources`")
                .label(obj.anchor(), "add `resources` here")
                .help("`resources`: name -> one kind of resource of the Bundle (`type`, `id`, `fields`)"),
        );
        return None;
    };
    let entries = reader::entries(cx, resources, "`resources`")?;
    let schema = sluice_fhir::schema();
    let mut c = Checker {
        schema,
        tables: &head.tables,
        structures: Structures::of(&head.message_types, version),
        declared: Vec::new(),
        current: 0,
        leaves: Vec::new(),
    };
    // First every declaration (type, within), so `ref(...)` may point at a later resource.
    let mut objs = Vec::new();
    for (name, _, node) in &entries {
        let Some(o) = reader::object(cx, node, &shape::FHIR_RESOURCE, &format!("resource `{name}`")) else {
            continue;
        };
        let Some(resource_type) = c.resource_type(cx, &o) else { continue };
        let within = o.get("within").and_then(|w| c.within(cx, w));
        c.declared.push(Declared {
            name: name.to_string(),
            resource_type,
            within,
            iterates: o.get("each").is_some(),
            vars: Vec::new(),
        });
        objs.push(o);
    }
    let tables: Vec<String> = head.tables.iter().map(|t| t.name.clone()).collect();
    let mut plans = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        c.current = i;
        let outer_vars = match &c.declared[i].within {
            Some(w) => c.declared.iter().find(|d| &d.name == w).map(|d| d.vars.clone()).unwrap_or_default(),
            None => Vec::new(),
        };
        let env = Env { scope: Scope::Hl7(hl7), vars: outer_vars, tables: tables.clone() };
        if let Some(plan) = c.resource(cx, o, &env) {
            plans.push(plan);
        }
    }
    let leaf_classes = c.leaves.iter().map(|(p, cl, s, _)| (p.clone(), cl.clone(), *s)).collect();
    let mut fields: BTreeMap<String, ValueType> = BTreeMap::new();
    for (p, _, _, vt) in &c.leaves {
        fields.entry(p.clone()).or_insert_with(|| vt.clone());
    }
    // One small schema per FHIR mapping, alive for the whole compilation like the bundled ones.
    let output: &'static OutputSchema = Box::leak(Box::new(OutputSchema {
        name: BUNDLE_SCHEMA,
        fields: fields
            .into_iter()
            .map(|(path, value_type)| FieldDef {
                path,
                value_type,
                presence: Presence::Optional,
                values: Vec::new(),
                description: String::new(),
            })
            .collect(),
        table: None,
    }));
    let plan = MapPlan {
        mapping: head.name,
        mapping_file: cx.sources.get(cx.file).name.clone(),
        input_schema: head.input_schema,
        output_schema: BUNDLE_SCHEMA.to_string(),
        message_types: head.message_types,
        tables: head.tables.clone(),
        fields: Vec::new(),
        fhir: Some(FhirBundlePlan { resources: plans }),
        table: None,
        x12_each: Vec::new(),
        x12_partner: None,
    };
    Some(FhirMapping { plan, output, leaf_classes })
}

/// `Patient`, `name[0].family`... split into steps; `None` when a step is not `name` or
/// `name[n]`.
fn steps_of(key: &str) -> Option<Vec<(String, Option<usize>)>> {
    key.split('.')
        .map(|part| match part.split_once('[') {
            None if is_name(part) => Some((part.to_string(), None)),
            Some((name, rest)) if is_name(name) => {
                let n = rest.strip_suffix(']')?.parse().ok()?;
                Some((name.to_string(), Some(n)))
            }
            _ => None,
        })
        .collect()
}

fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `ref(name)` written as a field value.
fn ref_target(node: &Node) -> Option<&str> {
    node.as_str()?.trim().strip_prefix("ref(")?.strip_suffix(')').map(str::trim)
}

/// The span of chars `offset..offset+len` of a key written at `span` (plain ASCII keys).
fn sub_span(span: Span, offset: usize, len: usize) -> Span {
    let start = (span.start + offset).min(span.end);
    Span::new(span.file, start, (start + len.max(1)).min(span.end.max(start + 1)))
}

/// A checked primitive value.
struct Scalar {
    expr: Expr,
    value_type: ValueType,
    fhir_type: String,
    codes: Vec<String>,
}

/// A checked element path: where it leads and its steps.
struct Walked {
    resolved: Resolved<'static>,
    steps: Vec<FhirStep>,
    /// `Patient.name[*].family`.
    pattern: String,
}

impl Checker<'_> {
    fn resource_type(&self, cx: &mut Cx, o: &Obj) -> Option<String> {
        let t = reader::string(cx, o.get("type")?, "`type`")?;
        if self.schema.resource_types().any(|r| r == t.text) {
            return Some(t.text);
        }
        let d = Diagnostic::error(codes::FHIR_UNKNOWN_ELEMENT, format!("`{}` is not a FHIR R4 resource type", t.text))
            .label(t.span, "unknown resource type");
        cx.push(match did_you_mean(&t.text, self.schema.resource_types()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help("write a resource type such as `Patient`, `Encounter` or `Observation`"),
        });
        None
    }

    fn within(&self, cx: &mut Cx, node: &Node) -> Option<String> {
        let w = reader::string(cx, node, "`within`")?;
        if self.declared.iter().any(|d| d.name == w.text) {
            return Some(w.text);
        }
        let d = Diagnostic::error(
            codes::FHIR_REFERENCE,
            format!("`within` names `{}`, which is not a resource declared before this one", w.text),
        )
        .label(w.span, "no such earlier resource");
        cx.push(d.suggest(&w.text, self.declared.iter().map(|d| d.name.as_str())));
        None
    }

    fn resource(&mut self, cx: &mut Cx, o: &Obj, env: &Env) -> Option<FhirResourcePlan> {
        let Iteration { each, group, var, vars, .. } = iteration(cx, o, env, &self.structures)?;
        self.declared[self.current].vars = vars.clone();
        let env = Env { scope: env.scope, vars, tables: env.tables.clone() };
        let when = match o.get("when") {
            Some(w) => {
                let t = check::check_node(cx.sources, cx.diags, w, &env)?;
                Some(check::check_fits(cx.diags, &t, &ValueType::Boolean, w.span, "`when`").then_some(t.expr)?)
            }
            None => None,
        };
        let id_nodes: Vec<&Node> = match o.get("id").map(|n| &n.value) {
            Some(Value::Seq(items)) => items.iter().collect(),
            Some(_) => o.get("id").into_iter().collect(),
            None => Vec::new(),
        };
        let mut id = Vec::new();
        for n in id_nodes {
            let t = check::check_node(cx.sources, cx.diags, n, &env)?;
            id.push(single(cx, t, n.span)?.expr);
        }
        let resource_type = self.declared[self.current].resource_type.clone();
        let before = self.leaves.len();
        let mut fields = Vec::new();
        if let Some(node) = o.get("fields") {
            for (key, key_node, value) in reader::entries(cx, node, "`fields`")? {
                if let Some(f) = self.field(cx, &resource_type, "", key, key_node.span, value, &env) {
                    fields.push(f);
                }
            }
        }
        let required = self.required_elements(cx, o, &resource_type, &fields);
        let mut classes: BTreeMap<String, BTreeSet<PhiClass>> = BTreeMap::new();
        for (p, cl, _, _) in &self.leaves[before..] {
            classes.entry(p.clone()).or_default().extend(cl.iter().copied());
        }
        let d = &self.declared[self.current];
        Some(FhirResourcePlan {
            name: d.name.clone(),
            resource_type,
            within: d.within.clone(),
            each,
            group,
            var,
            when,
            id,
            fields,
            required,
            classes: classes
                .into_iter()
                .filter(|(_, c)| !c.is_empty())
                .map(|(p, c)| (p, c.into_iter().collect()))
                .collect(),
        })
    }

    /// The resource's required elements (min >= 1); SL408 for each one no field writes.
    fn required_elements(&self, cx: &mut Cx, o: &Obj, rtype: &str, fields: &[FhirField]) -> Vec<String> {
        let required: Vec<String> =
            self.schema.children(rtype).filter(|e| e.min >= 1).map(|e| e.name.clone()).collect();
        for name in &required {
            if !fields.iter().any(|f| f.path.first().is_some_and(|s| satisfies(&s.name, name))) {
                let at = o.key_span("fields").unwrap_or(o.anchor());
                cx.push(
                    Diagnostic::error(
                        codes::UNMAPPED_REQUIRED,
                        format!("{rtype} requires `{name}`, which is not mapped"),
                    )
                    .label(at, format!("`{name}` missing from these fields"))
                    .help(format!("add `{name}: <expression>` (a {rtype} without it is not valid FHIR)")),
                );
            }
        }
        required
    }

    /// Resolves `base` + `key` in `rtype` (`base` is `identifier[0].` inside a list item) and
    /// checks that every repeating element before the last step has an index.
    fn walk(&self, cx: &mut Cx, rtype: &str, base: &str, key: &str, span: Span) -> Option<Walked> {
        let Some(parts) = steps_of(key) else {
            cx.push(
                Diagnostic::error(codes::FHIR_UNKNOWN_ELEMENT, format!("`{key}` is not a FHIR element path"))
                    .label(span, "expected names with optional `[n]`, separated by dots")
                    .help("write element paths such as `name[0].family` or `valueQuantity.value`"),
            );
            return None;
        };
        let full = format!("{base}{key}");
        let resolved = match self.schema.resolve_in(rtype, &full) {
            Ok(r) => r,
            Err(e) => {
                self.path_error(cx, base, key, span, &e);
                return None;
            }
        };
        let mut steps = Vec::new();
        let mut offset = 0;
        let mut pattern = format!("{rtype}.{}", base.replace("[0]", "[*]"));
        for (i, (name, index)) in parts.iter().enumerate() {
            let upto = format!("{base}{}", &key[..offset + name.len()]);
            let list = self
                .schema
                .resolve_in(rtype, &upto)
                .ok()
                .and_then(|r| r.element().map(|e| e.is_list()))
                .unwrap_or(false);
            if list && index.is_none() && i + 1 < parts.len() {
                cx.push(
                    Diagnostic::error(
                        codes::FHIR_CARDINALITY,
                        format!("`{name}` repeats: say which item holds the value"),
                    )
                    .label(sub_span(span, offset, name.len()), "a repeating element")
                    .help(format!("write `{name}[0]` for the first item, or map the items with a list of producers")),
                );
                return None;
            }
            if i > 0 {
                pattern.push('.');
            }
            pattern.push_str(name);
            if list {
                pattern.push_str("[*]");
            }
            steps.push(FhirStep { name: name.clone(), index: *index, list });
            offset += key[offset..].split('.').next().map_or(0, str::len) + 1;
        }
        Some(Walked { resolved, steps, pattern })
    }

    fn path_error(&self, cx: &mut Cx, base: &str, key: &str, span: Span, e: &PathError) {
        let offset = e.offset.saturating_sub(base.chars().count());
        let wrong: String = key.chars().skip(offset).take(e.len).collect();
        let code = match e.kind {
            PathErrorKind::NotRepeating | PathErrorKind::ChoiceNeedsType => codes::FHIR_CARDINALITY,
            _ => codes::FHIR_UNKNOWN_ELEMENT,
        };
        let d = Diagnostic::error(code, e.message.clone()).label(sub_span(span, offset, e.len), "not valid here");
        let wrong = wrong.split('[').next().unwrap_or_default().to_string();
        cx.push(match did_you_mean(&wrong, e.candidates.iter().map(String::as_str)) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None if !e.candidates.is_empty() => d.help(format!(
                "valid here: {}",
                e.candidates.iter().take(12).map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
            )),
            None => d,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn field(
        &mut self,
        cx: &mut Cx,
        rtype: &str,
        base: &str,
        key: &str,
        span: Span,
        value: &Node,
        env: &Env,
    ) -> Option<FhirField> {
        let w = self.walk(cx, rtype, base, key, span)?;
        let last = w.steps.last()?;
        let repeats = last.list && last.index.is_none();
        if let Some(target) = ref_target(value) {
            let many = self.check_ref(cx, &w, target, value.span)?;
            if many && !repeats {
                cx.push(
                    Diagnostic::error(
                        codes::FHIR_CARDINALITY,
                        format!("`ref({target})` gives one reference per `{target}`, but `{key}` holds one"),
                    )
                    .label(value.span, "several references")
                    .help("write it to a repeating Reference element (`result`, `specimen`)"),
                );
                return None;
            }
            return Some(FhirField { path: w.steps, value: FhirValue::Ref { target: target.to_string(), many } });
        }
        if let Value::Seq(items) = &value.value {
            if !repeats {
                cx.push(
                    Diagnostic::error(
                        codes::FHIR_CARDINALITY,
                        format!("`{key}` holds one value; it takes no list of producers"),
                    )
                    .label(value.span, "a list of producers")
                    .help("map it with one expression, or index the repeating element (`[0]`)"),
                );
                return None;
            }
            let list = format!("{base}{key}");
            let producers = items.iter().filter_map(|p| self.producer(cx, rtype, &list, &w, p, env)).collect();
            return Some(FhirField { path: w.steps, value: FhirValue::List { producers } });
        }
        let Scalar { expr, value_type, fhir_type, codes } = self.scalar(cx, &w, key, value, env)?;
        Some(FhirField { path: w.steps, value: FhirValue::Scalar(FhirScalar { expr, value_type, fhir_type, codes }) })
    }

    /// One primitive value: type, binding and PHI checks; records the leaf.
    fn scalar(&mut self, cx: &mut Cx, w: &Walked, key: &str, value: &Node, env: &Env) -> Option<Scalar> {
        let ty = match w.resolved.types.as_slice() {
            [one] => one.clone(),
            several => {
                let name = &w.steps.last()?.name;
                let forms: Vec<String> = several.iter().map(|t| format!("`{name}{}`", upper_first(t))).collect();
                cx.push(
                    Diagnostic::error(codes::FHIR_CARDINALITY, format!("`{key}` is a choice of types"))
                        .label(value.span, "which type?")
                        .help(format!("write one of {}", forms.join(", "))),
                );
                return None;
            }
        };
        let value_type = sluice_fhir::schema::value_type(&ty);
        if value_type == ValueType::Struct {
            let children: Vec<String> = self
                .schema
                .children(&ty)
                .filter(|e| !matches!(e.name.as_str(), "id" | "extension" | "modifierExtension"))
                .map(|e| format!("`{key}.{}`", e.name))
                .take(6)
                .collect();
            cx.push(
                Diagnostic::error(codes::FHIR_CARDINALITY, format!("`{key}` is a {ty}, not a single value"))
                    .label(value.span, "one expression")
                    .help(format!("map its elements one by one: {}", children.join(", "))),
            );
            return None;
        }
        let t = check::check_node(cx.sources, cx.diags, value, env)?;
        let t = single(cx, t, value.span)?;
        if !check::check_fits(cx.diags, &t, &value_type, value.span, &format!("`{key}`")) {
            return None;
        }
        if let Some(codes) = w.resolved.required_codes {
            self.check_codes(cx, &t.expr, codes, key, value.span)?;
        }
        let mut classes = t.classes.clone();
        if writes_data(&t.expr) {
            classes.extend(w.resolved.phi);
        }
        self.leaves.push((w.pattern.clone(), classes, value.span, value_type.clone()));
        let codes = w.resolved.required_codes.map(<[String]>::to_vec).unwrap_or_default();
        Some(Scalar { expr: t.expr, value_type, fhir_type: ty, codes })
    }

    /// Literal codes and the values of looked-up tables must be codes of the required value set.
    fn check_codes(&self, cx: &mut Cx, expr: &Expr, allowed: &[String], key: &str, span: Span) -> Option<()> {
        let mut written: Vec<String> = Vec::new();
        self.codes_written(expr, &mut written);
        let Some(bad) = written.iter().find(|c| !allowed.contains(c)) else { return Some(()) };
        let d = Diagnostic::error(
            codes::FHIR_BINDING,
            format!("`{bad}` is not a code of the required value set of `{key}`"),
        )
        .label(span, "writes this code");
        let list = allowed.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
        cx.push(match did_you_mean(bad, allowed.iter().map(String::as_str)) {
            Some(best) => d.help(format!("did you mean `{best}`? codes: {list}")),
            None => d.help(format!("codes: {list}")),
        });
        None
    }

    /// The codes an expression can write that are known from the spec: literals, the values
    /// of looked-up tables and their defaults, through `if` branches and `coalesce`.
    fn codes_written(&self, expr: &Expr, out: &mut Vec<String>) {
        match expr {
            // An empty text is never written (FHIR has no empty values).
            Expr::Lit { value: Literal::Str(s) } if !s.is_empty() => out.push(s.clone()),
            Expr::Lookup { table, default, .. } => {
                if let Some(t) = self.tables.iter().find(|t| &t.name == table) {
                    out.extend(t.entries.iter().map(|(_, v)| v.clone()));
                }
                if let Some(d) = default {
                    self.codes_written(d, out);
                }
            }
            Expr::Call { function: Function::If, args } => args.iter().skip(1).for_each(|a| self.codes_written(a, out)),
            Expr::Call { function: Function::Coalesce, args } => args.iter().for_each(|a| self.codes_written(a, out)),
            _ => {}
        }
    }

    /// Checks `ref(target)`; true when it yields one reference per instance of `target`.
    fn check_ref(&self, cx: &mut Cx, w: &Walked, target: &str, span: Span) -> Option<bool> {
        let Some(t) = self.declared.iter().find(|d| d.name == target) else {
            let d =
                Diagnostic::error(codes::FHIR_REFERENCE, format!("`ref({target})` names no resource of this mapping"))
                    .label(span, "unknown resource");
            cx.push(d.suggest(target, self.declared.iter().map(|d| d.name.as_str())));
            return None;
        };
        let me = &self.declared[self.current];
        let mut ancestors = Vec::new();
        let mut up = me.within.clone();
        while let Some(a) = up {
            up = self.declared.iter().find(|d| d.name == a).and_then(|d| d.within.clone());
            ancestors.push(a);
        }
        let single = !t.iterates && t.within.is_none();
        let child = t.within.as_deref() == Some(me.name.as_str());
        if t.name == me.name || !(single || child || ancestors.contains(&t.name)) {
            cx.push(
                Diagnostic::error(
                    codes::FHIR_REFERENCE,
                    format!("`{}` cannot point at `{target}`: it is not one resource in this scope", me.name),
                )
                .label(span, "ambiguous reference")
                .help(format!(
                    "point at a resource without `each`/`within`, one `{}` is built within, or one built `within: {}`",
                    me.name, me.name
                )),
            );
            return None;
        }
        let targets: Vec<&str> = w
            .resolved
            .element()
            .filter(|_| w.resolved.types.iter().any(|t| t == "Reference"))
            .map(|e| e.types.iter().flat_map(|t| t.targets.iter().map(String::as_str)).collect())
            .unwrap_or_default();
        if targets.is_empty() {
            cx.push(
                Diagnostic::error(
                    codes::FHIR_CARDINALITY,
                    "`ref(...)` is written to an element that is not a Reference",
                )
                .label(span, "not a Reference element")
                .help("write references to Reference elements such as `subject`, `patient`, `encounter`"),
            );
            return None;
        }
        if !targets.iter().any(|x| *x == t.resource_type || *x == "Resource") {
            cx.push(
                Diagnostic::error(
                    codes::FHIR_REFERENCE,
                    format!("this element references {}, not {}", targets.join(", "), t.resource_type),
                )
                .label(span, format!("`{target}` is a {}", t.resource_type))
                .help("point at a resource of an allowed type"),
            );
            return None;
        }
        Some(child && t.iterates)
    }

    fn producer(
        &mut self,
        cx: &mut Cx,
        rtype: &str,
        key: &str,
        w: &Walked,
        node: &Node,
        env: &Env,
    ) -> Option<FhirProducer> {
        let obj = reader::object(cx, node, &shape::PRODUCER, &format!("a producer of `{key}`"))?;
        let Iteration { each, group, var, vars, .. } = iteration(cx, &obj, env, &self.structures)?;
        let inner = Env { scope: env.scope, vars, tables: env.tables.clone() };
        let when = match obj.get("when") {
            Some(n) => {
                let t = check::check_node(cx.sources, cx.diags, n, &inner)?;
                Some(check::check_fits(cx.diags, &t, &ValueType::Boolean, n.span, "`when`").then_some(t.expr)?)
            }
            None => None,
        };
        let item_node = obj.get("item")?;
        let item = if let Value::Map(_) = &item_node.value {
            let base = format!("{key}[0].");
            let mut fields = Vec::new();
            for (k, kn, v) in reader::entries(cx, item_node, "`item`")? {
                if let Some(f) = self.field(cx, rtype, &base, k, kn.span, v, &inner) {
                    fields.push(f);
                }
            }
            FhirItem::Fields { fields }
        } else {
            let item_walk = Walked { resolved: w.resolved.clone(), steps: w.steps.clone(), pattern: w.pattern.clone() };
            let Scalar { expr, value_type, fhir_type, codes } = self.scalar(cx, &item_walk, key, item_node, &inner)?;
            FhirItem::Scalar(FhirScalar { expr, value_type, fhir_type, codes })
        };
        Some(FhirProducer { each, group, var, when, item })
    }
}

/// Whether the value written can come from the message: a literal (or an `if` choosing
/// between literals, such as a code system written only when the code is present) cannot, so
/// the element's PHI class does not apply to it.
fn writes_data(e: &Expr) -> bool {
    match e {
        Expr::Lit { .. } => false,
        Expr::Call { function: Function::If, args } => args.iter().skip(1).any(writes_data),
        _ => true,
    }
}

/// Whether JSON member `written` is element `name` (`valueQuantity` is `value[x]`).
pub fn satisfies(written: &str, name: &str) -> bool {
    match name.strip_suffix("[x]") {
        Some(stem) => written.starts_with(stem) && written[stem.len()..].starts_with(|c: char| c.is_ascii_uppercase()),
        None => written == name,
    }
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}
