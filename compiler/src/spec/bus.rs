//! What the message-bus sources as written (`kafka`, `amqp`) share: the keys that say what
//! the messages are (`format` and the keys of each format) and how urgently the source is
//! served, and how they are read.
//!
//! Invariants:
//! - Both sources document and read these keys alike, so a pipeline moved from one bus to the
//!   other keeps its meaning.
//! - A key of another format than the source's (`guides` on an `hl7v2` source, `profile` on
//!   an `x12` one) is refused (SL246), never silently ignored.

use super::pipeline::{FhirFiles, X12Files};
use super::reader::{self, Cx, Spanned};
use super::shape::{Key, KeyType, MODES, PRIORITIES};
use crate::codes;
use crate::diagnostics::Diagnostic;

/// What a bus message can be.
pub const FORMATS: &[&str] = &["hl7v2", "x12", "fhir"];

/// `format`: what each message is.
pub const FORMAT: Key = Key {
    name: "format",
    required: false,
    ty: KeyType::Enum(FORMATS),
    doc: "Standard of each message: `hl7v2` (the default: one HL7 v2 message), `x12` (one interchange, cut into one record per transaction set as a `files` source cuts X12 files) or `fhir` (one FHIR R4 resource as JSON).",
};

/// `profile`: how the messages are parsed or checked.
pub const PROFILE: Key = Key {
    name: "profile",
    required: false,
    ty: KeyType::String,
    doc: "`hl7v2`: parser profile file (`kind: profile`). `fhir`: a StructureDefinition (JSON or XML) every resource of its type must meet. `x12`: a trading-partner profile (`kind: profile`, `format: x12`).",
};

/// `resource_types` (`fhir`).
pub const RESOURCE_TYPES: Key = Key {
    name: "resource_types",
    required: false,
    ty: KeyType::ListOfStrings,
    doc: "`fhir` only: the resource types read (`[Patient, Observation]`); messages of others are counted as filtered. Default: all.",
};

/// `mode` (`fhir`, `x12`).
pub const MODE: Key = Key {
    name: "mode",
    required: false,
    ty: KeyType::Enum(MODES),
    doc: "`fhir` and `x12`: `strict` (default) rejects every validation error; `lenient` lets unknown elements and wrong JSON shapes (FHIR), or envelope and implementation-guide errors (X12), through as warnings.",
};

/// `guides` (`x12`).
pub const GUIDES: Key = Key {
    name: "guides",
    required: false,
    ty: KeyType::ListOfStrings,
    doc: "`x12` only: the implementation guides read (`[005010X222A1, 005010X221A1]`); sets of others are counted as filtered. Default: all.",
};

/// `priority`: which live source is served first.
pub const PRIORITY: Key = Key {
    name: "priority",
    required: false,
    ty: KeyType::Enum(PRIORITIES),
    doc: "`interactive`, `normal` (default) or `backfill`: which of a pipeline's live sources is served first when it is busy.",
};

/// `description`.
pub const DESCRIPTION: Key = Key { name: "description", required: false, ty: KeyType::String, doc: "Free text." };

/// The keys every bus source reads beside its connection settings, as written.
#[derive(Debug)]
pub struct Common {
    pub profile: Option<Spanned>,
    /// One of [`PRIORITIES`] (`normal` when not written).
    pub priority: String,
    /// `format: fhir`: what else the source says (`None` for other formats).
    pub fhir: Option<FhirFiles>,
    /// `format: x12`: what else the source says (`None` for other formats).
    pub x12: Option<X12Files>,
}

/// Reads `format` and the keys of each format, `profile` and `priority`.
pub fn common(cx: &mut Cx, obj: &reader::Obj<'_>) -> Common {
    let format = obj
        .get("format")
        .and_then(|f| reader::one_of(cx, f, FORMATS, "source format"))
        .map_or_else(|| "hl7v2".to_string(), |f| f.text);
    // Keys of some formats only: (key, the formats it belongs to).
    let owned: [(&str, &[&str]); 4] = [
        ("profile", &["hl7v2", "fhir", "x12"]),
        ("resource_types", &["fhir"]),
        ("mode", &["fhir", "x12"]),
        ("guides", &["x12"]),
    ];
    for (key, formats) in owned {
        if !formats.contains(&format.as_str())
            && let Some(span) = obj.key_span(key)
        {
            let want = formats.iter().map(|f| format!("`format: {f}`")).collect::<Vec<_>>().join(" or ");
            cx.push(
                Diagnostic::error(
                    codes::BUS_FORMAT_KEY,
                    format!("`{key}` is for {want} messages, and this source reads `{format}`"),
                )
                .label(span, format!("not a key of a `format: {format}` source"))
                .help(format!("remove `{key}`, or set the source's `format` to what its messages are ({want})")),
            );
        }
    }
    let (fhir, x12) = super::pipeline::format_keys(cx, obj, &format);
    let priority = obj
        .get("priority")
        .and_then(|n| reader::one_of(cx, n, PRIORITIES, "source priority"))
        .map_or_else(|| "normal".to_string(), |p| p.text);
    let profile = obj.get("profile").and_then(|n| reader::string(cx, n, "`profile`"));
    Common { profile, priority, fhir, x12 }
}
