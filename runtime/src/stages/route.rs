//! Filter and route stages: conditions over the record (HL7 message or output document).
//!
//! Invariants:
//! - A filter whose `keep` is false drops the record as *filtered* (counted, audited). A
//!   deletion (`Envelope::deleted`, from a `fhir.rest` cdc table) always passes a filter: it
//!   holds only what identifies the resource, so no condition on its content can judge it, and
//!   dropping it would leave the deleted resource's row in the sinks for good.
//! - A route sends the record to the first branch whose condition holds, else to `default`,
//!   else the record is filtered. Branches are tried in plan order (deterministic).
//! - Conversion warnings raised while evaluating a condition are not added to the record.

use sluice_compiler::expr::ast::Expr;
use sluice_compiler::plan::{FilterPlan, RoutePlan};

use super::Step;
use crate::eval::{Prepared, Scope};
use crate::hl7::Reader;
use crate::record::{Payload, Record};

fn holds(expr: &Expr, prepared: &Prepared<'_>, rec: &Record, field: &str) -> bool {
    let (reader, doc) = match &rec.payload {
        Payload::Hl7(m) => (Some(Reader::new(m)), None),
        Payload::Doc(d) => (None, Some(d)),
    };
    let scope = Scope::root(prepared, reader.as_ref(), doc, None, &rec.env.timezone, field);
    scope.eval(expr, &mut Vec::new()).truthy()
}

pub fn filter<'p>(component: &str, plan: &FilterPlan, prepared: &Prepared<'_>, rec: Record) -> Step<'p> {
    if rec.env.deleted() || holds(&plan.keep, prepared, &rec, component) {
        Step::Next(rec, None)
    } else {
        Step::Filtered(rec)
    }
}

pub fn route<'p>(component: &str, plan: &'p RoutePlan, prepared: &Prepared<'_>, rec: Record) -> Step<'p> {
    for (branch, cond) in &plan.branches {
        if holds(cond, prepared, &rec, component) {
            return Step::Next(rec, Some(branch));
        }
    }
    match &plan.default {
        Some(d) => Step::Next(rec, Some(d)),
        None => Step::Filtered(rec),
    }
}
