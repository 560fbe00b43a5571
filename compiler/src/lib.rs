//! Sluice compiler: specs in YAML -> a checked, hashable [`plan::Plan`].
//!
//! Phases: [`yaml`] (text to spanned nodes) -> [`spec`] (nodes to spec values, key checks) ->
//! [`compile`] (references, graph, types, PHI flow) -> [`plan`]. Every phase reports into one
//! [`diagnostics::Diagnostics`] with codes from [`codes`].
//!
//! Layering: this crate knows nothing of I/O beyond reading spec files, and nothing of
//! terminals or exit codes (that is the CLI's job).
pub mod api_source;
pub mod codes;
pub mod compile;
pub mod diagnostics;
pub mod expr;
pub mod fhir;
pub mod fhir_rest;
pub mod finance_each;
pub mod hl7;
pub mod jsonschema;
pub mod object_store;
pub mod plaid;
pub mod plan;
pub mod quickbooks;
pub mod source;
pub mod spec;
pub mod stripe;
pub mod x12;
pub mod yaml;
