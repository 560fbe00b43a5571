//! FHIR R4: the schema of every resource and datatype, and the codec and validator of FHIR
//! content, usable without the compiler.
//!
//! - [`schema`]: types and their elements (cardinality, types, choice `[x]`, contentReference,
//!   bindings and required codes, PHI classes), generated from the official StructureDefinitions.
//! - [`path`]: resolves element paths such as `Patient.name[0].family`,
//!   `Observation.value.as(Quantity).value` or `subject.resolve().birthDate` against it.
//! - [`generate`]: the generator of the embedded table (`gen-fhir-schema`).
//! - [`tree`], [`json`], [`xml`]: FHIR JSON and XML into one tree ([`tree::Node`]) and back to
//!   JSON, losslessly; [`read`] picks the reader from the first byte; [`validate_document`]
//!   reads and validates in one go (a JSON Bundle entry by entry, never whole).
//! - [`stream`]: NDJSON (Bulk Data) and large Bundles, one resource or entry at a time.
//! - [`validate`], [`primitive`], [`profile`], [`bundle`], [`version`]: validation against the
//!   schema and custom profiles, Bundle rules and reference resolution, version detection.
//! - [`codes`]: every `FHIRnnn` code with its explanation.
//!
//! Invariants: no input makes any function here panic or overflow the stack (readers bound
//! depth and size); path errors carry a char offset and length into the path text (spec text,
//! never data values) and did-you-mean candidates; codec errors and findings never quote data.

pub mod bundle;
pub mod codes;
pub mod generate;
pub mod json;
pub mod model;
pub mod path;
pub mod primitive;
pub mod profile;
pub mod schema;
pub mod stream;
pub mod tree;
pub mod validate;
pub mod version;
pub mod xml;
pub mod xml_stream;

pub use bundle::validate_document;
pub use json::{CodecError, Limits};
pub use path::{PathError, PathErrorKind, Resolved};
pub use schema::{Binding, BindingStrength, ElementDef, Kind, Max, Schema, TypeDef, TypeRef, schema};
pub use tree::{Name, Node};

/// Reads one FHIR resource, JSON or XML (whichever the first non-blank byte says: `<` is
/// XML), with the default [`Limits`].
pub fn read(input: &[u8]) -> Result<Node, CodecError> {
    read_with(input, Limits::default())
}

/// Reads one FHIR resource, JSON or XML, with these limits. The result is a resource object
/// (`resourceType` a string) or an error [`codes::NOT_A_RESOURCE`].
pub fn read_with(input: &[u8], limits: Limits) -> Result<Node, CodecError> {
    let node = if is_xml(input) { xml::parse_with(input, limits)? } else { json::parse_with(input, limits)? };
    require_resource(node)
}

/// `node` if it is a resource object (`resourceType` a string), else the error
/// [`codes::NOT_A_RESOURCE`].
pub fn require_resource(node: Node) -> Result<Node, CodecError> {
    if node.resource_type().is_none() {
        return Err(CodecError {
            code: codes::NOT_A_RESOURCE,
            offset: 0,
            message: "the JSON value is not an object with a `resourceType` string".into(),
        });
    }
    Ok(node)
}

/// Whether the input starts (after a BOM and blanks) with `<`.
pub fn is_xml(input: &[u8]) -> bool {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    input.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<')
}
