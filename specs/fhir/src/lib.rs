//! FHIR R4: the schema of every resource and datatype, usable without the compiler.
//!
//! - [`schema`]: types and their elements (cardinality, types, choice `[x]`, contentReference,
//!   bindings and required codes, PHI classes), generated from the official StructureDefinitions.
//! - [`path`]: resolves element paths such as `Patient.name[0].family`,
//!   `Observation.value.as(Quantity).value` or `subject.resolve().birthDate` against it.
//! - [`generate`]: the generator of the embedded table (`gen-fhir-schema`).
//!
//! Invariants: no input makes any function here panic; path errors carry a char offset and
//! length into the path text (spec text, never data values) and did-you-mean candidates.

pub mod generate;
pub mod path;
pub mod schema;

pub use path::{PathError, PathErrorKind, Resolved};
pub use schema::{Binding, BindingStrength, ElementDef, Kind, Max, Schema, TypeDef, TypeRef, schema};
