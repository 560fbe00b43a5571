//! Prepares a plan for execution: resolves the DAG edges, parses HL7 paths, compiles
//! templates and regular expressions, builds lookup tables and resolves secrets — once, before
//! any record is read.
//!
//! Invariants:
//! - Everything that can fail for the plan as a whole fails here, as a [`RunError`], before
//!   any output file is touched or any record processed (missing hash key included).
//! - The runtime does not re-check what the compiler proved (types, PHI flows); it only refuses
//!   what it cannot build.

use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;
use sluice_compiler::expr::ast::Expr;
use sluice_compiler::plan::{ComponentKind, FieldValue, ItemPlan, PLAN_FORMAT, Plan, Producer, RuleCheck};

use crate::error::RunError;
use crate::eval::{Prepared, Tables};
use crate::findings;
use crate::source::Profile;
use crate::stages::{map, mask, validate};

/// Per-component data prepared once.
pub enum Prep {
    None,
    Source(Profile),
    /// A `format: fhir` files source.
    FhirSource(crate::fhir_source::FhirSource),
    /// A `format: x12` files source.
    X12Source(crate::x12_source::X12Source),
    /// A `webhook` source: its records are queued events ([`crate::webhooks::event::decode`]).
    WebhookSource,
    /// A `stripe` source: its records are list items ([`crate::finance::source::decode`]).
    StripeSource(Vec<sluice_compiler::stripe::StripeObjectPlan>),
    /// A `quickbooks` source: its records are entities
    /// ([`crate::finance::quickbooks_source::decode`]), of the entities it reads.
    QuickBooksSource(Vec<String>),
    /// A `plaid` source: its records are accounts or transactions
    /// ([`crate::finance::plaid_source::decode`]), of the objects it reads.
    PlaidSource(Vec<String>),
    Validate(Vec<Option<Regex>>),
    /// A map stage's lookup tables, and the guide an X12 mapping reads its sets with (its
    /// partner's copy when it names one), made once.
    Map(Tables, Option<&'static sluice_x12::guide::Guide>),
    /// Boxed: a vault's connection is large, and most plans have no mask stage.
    Mask(Box<mask::Keys>),
    /// A `kafka` or `amqp` sink relaying HL7 v2 (`format: hl7v2`): its key path, parsed once.
    RelayKey(sluice_hl7v2::path::Path),
}

pub struct Compiled<'p> {
    pub plan: &'p Plan,
    pub prepared: Prepared<'p>,
    pub preps: Vec<Prep>,
    /// Per component: downstream components and the route branch each listens to.
    pub children: Vec<Vec<(usize, Option<&'p str>)>>,
    pub emits: Vec<Arc<str>>,
    pub names: Vec<Arc<str>>,
    /// Encrypts the DLQ's raw messages; `None` when the plan keeps them in plain text on purpose.
    pub dlq_key: Option<crate::dlq::DlqKey>,
    /// Clients of the object-store sources and sinks (none for a plan without any).
    pub stores: crate::object_stores::Stores,
    /// Per component: what `connection()` and `envelope(...)` read for the records of a finance
    /// source (`None` for any other component).
    pub provenance: Vec<Option<SourceProvenance>>,
}

/// A finance source's provenance, from its plan: its connection's name, and the envelope
/// values fixed for all its records. A record's own envelope (what the sync set) comes first;
/// these stand in for a record that has none, as one a DLQ replay or `sluice test` feeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceProvenance {
    pub connection: String,
    pub fixed: Vec<(&'static str, String)>,
}

impl SourceProvenance {
    /// The provenance of a `stripe`, `plaid` or `quickbooks` source (`None` for other sources).
    /// A Plaid source's Item is fixed only when it reads one Item.
    pub fn of(source: &sluice_compiler::plan::SourcePlan) -> Option<SourceProvenance> {
        if let Some(q) = &source.quickbooks {
            let fixed = vec![(sluice_finance::QUICKBOOKS_REALM, q.realm_id.clone())];
            return Some(SourceProvenance { connection: q.connection.clone(), fixed });
        }
        if let Some(p) = &source.plaid {
            let fixed = match p.items.as_slice() {
                [one] => vec![(sluice_finance::PLAID_ITEM, one.name.clone())],
                _ => Vec::new(),
            };
            return Some(SourceProvenance { connection: p.connection.clone(), fixed });
        }
        source.stripe.as_ref().map(|s| SourceProvenance { connection: s.connection.clone(), fixed: Vec::new() })
    }
}

/// Whether a map stage of the plan reads a FHIR path through `resolve()` (its runtime form keeps
/// the call: `subject.resolve().birthDate`). Then FHIR sources index their Bundles.
fn resolves_references(plan: &Plan) -> bool {
    plan.components.iter().any(|c| match &c.kind {
        ComponentKind::Map(m) => serde_json::to_string(m).is_ok_and(|json| json.contains(".resolve()")),
        _ => false,
    })
}

fn invalid(msg: String) -> RunError {
    RunError::new(findings::PLAN_INVALID, msg).with_help("re-run `sluice check`; if it passes, please report this")
}

fn prepare_all<'p>(
    prepared: &mut Prepared<'p>,
    component: &str,
    exprs: impl IntoIterator<Item = &'p Expr>,
) -> Result<(), RunError> {
    for e in exprs {
        prepared.prepare(e).map_err(|m| invalid(format!("component `{component}`: {m}")))?;
    }
    Ok(())
}

/// Prepares the expressions of list producers, nested lists included.
fn prepare_producers<'p>(
    prepared: &mut Prepared<'p>,
    component: &str,
    producers: &'p [Producer],
) -> Result<(), RunError> {
    for p in producers {
        prepare_all(prepared, component, p.each.iter().chain(p.when.iter()))?;
        match &p.item {
            ItemPlan::Scalar { expr, .. } => prepare_all(prepared, component, [expr])?,
            ItemPlan::Struct { members, lists } => {
                prepare_all(prepared, component, members.iter().map(|m| &m.expr))?;
                for l in lists {
                    prepare_producers(prepared, component, &l.producers)?;
                }
            }
        }
    }
    Ok(())
}

impl<'p> Compiled<'p> {
    /// `clock` gives mask stages the run's date (`generalize: birth_year`).
    pub fn new(plan: &'p Plan, clock: &crate::time::Clock) -> Result<Compiled<'p>, RunError> {
        if plan.plan_format != PLAN_FORMAT {
            return Err(RunError::new(
                findings::PLAN_FORMAT,
                format!("plan format {} is not supported (this runtime reads format {PLAN_FORMAT})", plan.plan_format),
            ));
        }
        let Some(dlq_target) = &plan.dlq else {
            return Err(invalid("the plan has no DLQ target: records that fail would be lost".into()));
        };
        let dlq_key = crate::dlq::key_for(dlq_target)?;
        let index: HashMap<&str, usize> =
            plan.components.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
        let mut children = vec![Vec::new(); plan.components.len()];
        let mut prepared = Prepared::default();
        let mut preps = Vec::new();
        for (i, c) in plan.components.iter().enumerate() {
            for input in &c.inputs {
                let &from = index.get(input.component.as_str()).filter(|&&f| f < i).ok_or_else(|| {
                    invalid(format!("component `{}` reads `{}`, which does not come before it", c.name, input))
                })?;
                children[from].push((i, input.branch.as_deref()));
            }
            let name = c.name.as_str();
            preps.push(match &c.kind {
                ComponentKind::Source(s) => {
                    if !matches!(
                        s.kind.as_str(),
                        "files"
                            | "mllp"
                            | "kafka"
                            | "amqp"
                            | "webhook"
                            | "fhir.rest"
                            | "stripe"
                            | "quickbooks"
                            | "plaid"
                    ) {
                        return Err(invalid(format!("source `{name}`: kind `{}` is not supported yet", s.kind)));
                    }
                    match (&s.fhir, &s.x12, &s.webhook) {
                        _ if s.plaid.is_some() => {
                            Prep::PlaidSource(s.plaid.as_ref().map(|p| p.objects()).unwrap_or_default())
                        }
                        _ if s.quickbooks.is_some() => Prep::QuickBooksSource(
                            s.quickbooks.as_ref().map(|p| p.entities.clone()).unwrap_or_default(),
                        ),
                        _ if s.stripe.is_some() => {
                            Prep::StripeSource(s.stripe.as_ref().map(|p| p.objects.clone()).unwrap_or_default())
                        }
                        (Some(f), _, _) => {
                            Prep::FhirSource(crate::fhir_source::FhirSource::new(f, resolves_references(plan))?)
                        }
                        (None, Some(x), _) => {
                            Prep::X12Source(crate::x12_source::X12Source::new(x, plan.state.as_ref(), clock)?)
                        }
                        (None, None, Some(_)) => Prep::WebhookSource,
                        (None, None, None) => Prep::Source(Profile::new(&s.profile)),
                    }
                }
                ComponentKind::Validate(v) => {
                    for r in &v.rules {
                        let value = match &r.check {
                            RuleCheck::Required { value }
                            | RuleCheck::ValueSet { value, .. }
                            | RuleCheck::Format { value, .. }
                            | RuleCheck::Pattern { value, .. }
                            | RuleCheck::MaxLength { value, .. } => value,
                        };
                        prepare_all(&mut prepared, name, r.when.iter().chain([value]))?;
                    }
                    Prep::Validate(
                        validate::compile_patterns(v).map_err(|m| invalid(format!("validate `{name}`: {m}")))?,
                    )
                }
                ComponentKind::Map(m) => {
                    for f in &m.fields {
                        match &f.value {
                            FieldValue::Scalar { expr, .. } => prepare_all(&mut prepared, name, [expr])?,
                            FieldValue::List { producers } => prepare_producers(&mut prepared, name, producers)?,
                        }
                    }
                    if let Some(bundle) = &m.fhir {
                        prepare_all(&mut prepared, name, bundle.exprs())?;
                    }
                    let guide = map::x12_guide(m).map_err(|why| invalid(format!("map `{name}`: {why}")))?;
                    Prep::Map(map::tables(m), guide)
                }
                ComponentKind::Mask(m) => Prep::Mask(Box::new(mask::prepare(name, m, plan.state.as_ref(), clock)?)),
                ComponentKind::Filter(f) => {
                    prepare_all(&mut prepared, name, [&f.keep])?;
                    Prep::None
                }
                ComponentKind::Route(r) => {
                    prepare_all(&mut prepared, name, r.branches.iter().map(|(_, e)| e))?;
                    Prep::None
                }
                ComponentKind::Sink(s) => {
                    let known = match s.kind.as_str() {
                        "jsonl" => true,
                        "http" => s.http.is_some(),
                        "postgres" => s.postgres.is_some(),
                        "csv" => s.csv.is_some(),
                        "parquet" => s.parquet.is_some(),
                        "kafka" => s.kafka.is_some(),
                        "amqp" => s.amqp.is_some(),
                        _ => false,
                    };
                    if !known {
                        return Err(invalid(format!("sink `{name}`: kind `{}` is not supported yet", s.kind)));
                    }
                    let relay_key = match (s.kafka.as_deref(), s.amqp.as_deref()) {
                        (Some(k), _) if k.relay_hl7 => Some(&k.key),
                        (_, Some(a)) if a.relay_hl7 => Some(&a.routing_key_field),
                        _ => None,
                    };
                    match relay_key.and_then(Option::as_ref) {
                        Some(key) => Prep::RelayKey(
                            crate::hl7::parse_path(key)
                                .map_err(|e| invalid(format!("sink `{name}`: key `{key}`: {e}")))?,
                        ),
                        None => Prep::None,
                    }
                }
            });
        }
        Ok(Compiled {
            plan,
            prepared,
            preps,
            children,
            emits: plan.components.iter().map(|c| Arc::from(c.emits.as_str())).collect(),
            names: plan.components.iter().map(|c| Arc::from(c.name.as_str())).collect(),
            dlq_key,
            stores: crate::object_stores::Stores::new(plan)?,
            provenance: plan
                .components
                .iter()
                .map(|c| match &c.kind {
                    ComponentKind::Source(s) => SourceProvenance::of(s),
                    _ => None,
                })
                .collect(),
        })
    }
}
