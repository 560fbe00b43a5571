//! The plan of a mapping whose output is a FHIR R4 transaction Bundle (`output: fhir/r4/Bundle`).
//!
//! Invariants:
//! - Every element path was checked against `sluice-fhir` (element names, cardinality, required
//!   bindings of literal and looked-up codes, element types); the runtime never re-checks.
//! - `classes` holds, per resource kind, the PHI classes of every leaf pattern it may write
//!   (`Patient.name[*].family`), unioned over the fields writing it; the runtime tags the leaves
//!   of the built resource by pattern, so the tags stay right whatever empty parts were pruned.

use serde::{Deserialize, Serialize};
use sluice_spec_core::{PhiClass, ValueType};

use super::GroupEach;
use crate::expr::ast::Expr;

/// The schema name a FHIR mapping emits.
pub const BUNDLE_SCHEMA: &str = "fhir/r4/Bundle";

/// One Bundle per message: the resources of `resources`, in their order, each in iteration
/// order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirBundlePlan {
    pub resources: Vec<FhirResourcePlan>,
}

/// One kind of resource of the Bundle (`patient`, `observation`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirResourcePlan {
    /// The name the mapping gives it; `ref(name)` points at it.
    pub name: String,
    pub resource_type: String,
    /// Built once per instance of this other resource, in its scope (its variables).
    pub within: Option<String>,
    pub each: Option<Expr>,
    pub group: Option<GroupEach>,
    pub var: Option<String>,
    pub when: Option<Expr>,
    /// The key parts of the deterministic id (see `docs/hl7v2-to-fhir.md`).
    pub id: Vec<Expr>,
    pub fields: Vec<FhirField>,
    /// Elements the resource must have (min >= 1, `value[x]` for a choice): a built resource
    /// without one sends the message to the DLQ.
    pub required: Vec<String>,
    /// Leaf pattern -> PHI classes.
    pub classes: Vec<(String, Vec<PhiClass>)>,
}

/// One step of an element path: `name`, `name[2]`; `list` when the element repeats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirStep {
    pub name: String,
    pub index: Option<usize>,
    pub list: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirField {
    /// Relative to the resource (or to the list item, inside a producer's `item`).
    pub path: Vec<FhirStep>,
    pub value: FhirValue,
}

/// A primitive value of FHIR type `fhir_type`, converted to `value_type` (HL7 dates and times
/// to FHIR `date`/`dateTime`, keeping the value's precision). `codes`: the codes of the
/// element's required binding (empty: any value); another value is not written. (A newtype
/// variant of the internally tagged enums below serializes as the struct variant did.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirScalar {
    pub expr: Expr,
    pub value_type: ValueType,
    pub fhir_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum FhirValue {
    /// A primitive value of FHIR type `fhir_type`, converted to `value_type` (HL7 dates and
    /// times to FHIR `date`/`dateTime`, keeping the value's precision). `codes`: the codes of
    /// the element's required binding (empty: any value); another value is not written.
    Scalar(FhirScalar),
    /// `ref(name)`: `{"reference": "urn:uuid:<id>"}` of the resource `name` in the same Bundle;
    /// `many` for a repeating element, which gets one reference per instance.
    Ref { target: String, many: bool },
    /// Items of a repeating element, from producers in order.
    List { producers: Vec<FhirProducer> },
}

/// Produces items of a repeating element, like a list producer of a canonical mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FhirProducer {
    pub each: Option<Expr>,
    pub group: Option<GroupEach>,
    pub var: Option<String>,
    pub when: Option<Expr>,
    pub item: FhirItem,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum FhirItem {
    /// An item of a primitive list (`given`, `category`); `codes` as for [`FhirValue::Scalar`].
    Scalar(FhirScalar),
    /// Fields of a complex item (`value`, `system`, `type.coding[0].code`).
    Fields { fields: Vec<FhirField> },
}

impl FhirBundlePlan {
    /// Every expression of the plan (`each`, `when`, id keys, values), for the runtime to
    /// prepare once.
    pub fn exprs(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        for r in &self.resources {
            out.extend(r.each.iter().chain(r.when.iter()).chain(r.id.iter()));
            fields_exprs(&r.fields, &mut out);
        }
        out
    }
}

fn fields_exprs<'p>(fields: &'p [FhirField], out: &mut Vec<&'p Expr>) {
    for f in fields {
        match &f.value {
            FhirValue::Scalar(s) => out.push(&s.expr),
            FhirValue::Ref { .. } => {}
            FhirValue::List { producers } => {
                for p in producers {
                    out.extend(p.each.iter().chain(p.when.iter()));
                    match &p.item {
                        FhirItem::Scalar(s) => out.push(&s.expr),
                        FhirItem::Fields { fields } => fields_exprs(fields, out),
                    }
                }
            }
        }
    }
}
