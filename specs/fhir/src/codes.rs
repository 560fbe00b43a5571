//! The codes of everything the FHIR codec, validator and reference resolver report: `FHIR0nn`
//! reading (JSON and XML), `FHIR1nn` validation against the schema, `FHIR12n` profiles,
//! `FHIR13n` versions, `FHIR2nn` Bundles and references.
//!
//! Invariants: every code a finding or an error can carry is in [`CODES`] with a title and an
//! explanation (`sluice explain`, `docs/diagnostics.md` through `tests/docs_sync.rs`); codes are
//! never reused. The unit test `codes_are_registered` checks both.

pub const JSON_SYNTAX: &str = "FHIR001";
pub const TOO_DEEP: &str = "FHIR002";
pub const TOO_LARGE: &str = "FHIR003";
pub const DUPLICATE_MEMBER: &str = "FHIR004";
pub const NOT_UTF8: &str = "FHIR005";
pub const XML_SYNTAX: &str = "FHIR006";
pub const NOT_A_RESOURCE: &str = "FHIR007";
pub const XML_SHAPE: &str = "FHIR008";

pub const UNKNOWN_ELEMENT: &str = "FHIR101";
pub const WRONG_SHAPE: &str = "FHIR102";
pub const BAD_PRIMITIVE: &str = "FHIR103";
pub const TOO_FEW: &str = "FHIR104";
pub const TOO_MANY: &str = "FHIR105";
pub const CODE_NOT_IN_VALUE_SET: &str = "FHIR106";
pub const CHOICE: &str = "FHIR107";
pub const EMPTY: &str = "FHIR108";
pub const INVARIANT: &str = "FHIR109";
pub const UNKNOWN_RESOURCE_TYPE: &str = "FHIR110";
pub const PRIMITIVE_EXTENSION: &str = "FHIR111";
pub const WRONG_REFERENCE_TARGET: &str = "FHIR112";

pub const PROFILE_REQUIRED: &str = "FHIR120";
pub const PROFILE_LIMIT: &str = "FHIR121";
pub const PROFILE_VALUE: &str = "FHIR122";
pub const PROFILE_UNUSABLE: &str = "FHIR123";

pub const OTHER_VERSION: &str = "FHIR130";

pub const REFERENCE_NOT_FOUND: &str = "FHIR201";
pub const REFERENCE_MALFORMED: &str = "FHIR202";
pub const DUPLICATE_ENTRY: &str = "FHIR203";
pub const BUNDLE_RULE: &str = "FHIR204";

/// Every code with its title and explanation.
pub const CODES: &[(&str, &str, &str)] = &[
    (
        JSON_SYNTAX,
        "The FHIR JSON is not valid JSON.",
        "The text breaks the JSON grammar (RFC 8259) at the byte given: a missing comma or quote, a trailing comma, a number such as `01` or `1.`. Nothing of the resource was read.",
    ),
    (
        TOO_DEEP,
        "The input is nested too deeply.",
        "Objects and arrays (JSON) or elements (XML) are nested deeper than the limit (128 by default). Real resources stay far below it; such input is refused rather than risking a stack overflow.",
    ),
    (
        TOO_LARGE,
        "The input is larger than the limit.",
        "One resource (or one Bundle entry when a Bundle is streamed) is larger than the size limit (256 MiB by default). Split the input, or send the Bundle as Bulk Data NDJSON.",
    ),
    (
        DUPLICATE_MEMBER,
        "A JSON object has the same member twice.",
        "FHIR JSON forbids repeating a property in one object; which value was meant is unknown. Merge repetitions into one array.",
    ),
    (
        NOT_UTF8,
        "The text is not valid UTF-8.",
        "FHIR JSON and XML are UTF-8. Convert the file from its character set to UTF-8.",
    ),
    (
        XML_SYNTAX,
        "The FHIR XML is not well-formed XML.",
        "The XML parser stopped at the position given: unclosed or mismatched tags, a bad entity, or a DTD (refused, as FHIR forbids them).",
    ),
    (
        NOT_A_RESOURCE,
        "The input is not a FHIR resource.",
        "JSON input must be an object with a `resourceType` string; XML input must have a root element in the FHIR namespace `http://hl7.org/fhir`.",
    ),
    (
        XML_SHAPE,
        "The FHIR XML has a shape FHIR does not use.",
        "Text directly inside a FHIR element (values go in `value` attributes), an attribute other than `value`, `id` or `url`, or a resource container (`contained`, `resource`) without exactly one resource inside.",
    ),
    (
        UNKNOWN_ELEMENT,
        "The element is not defined for this type.",
        "The name is not an element of the resource or datatype at this place in FHIR R4 (nor a choice form such as `valueQuantity`). Check the spelling, the FHIR version, or move custom data into an `extension`. An error in strict mode, a warning in lenient mode.",
    ),
    (
        WRONG_SHAPE,
        "The element has the wrong JSON shape.",
        "An object where a primitive is expected (or the reverse), an array for an element that does not repeat, a single value for one that does, or a number, string or boolean for a primitive of another JSON type (`\"72\"` for a decimal).",
    ),
    (
        BAD_PRIMITIVE,
        "The value does not match its primitive type.",
        "The value breaks the format of its FHIR primitive type: `date` is `YYYY`, `YYYY-MM` or `YYYY-MM-DD`; `dateTime` adds a time with a time zone; `instant` needs seconds and a zone; `id` is 1-64 of `A-Za-z0-9-.`; `positiveInt` is above 0; `code` has no leading or trailing whitespace; and so on.",
    ),
    (
        TOO_FEW,
        "A required element is missing.",
        "The element's minimum cardinality in FHIR R4 is higher than the number of values present (`Observation.status` and `Observation.code` are 1..1).",
    ),
    (
        TOO_MANY,
        "The element has more values than allowed.",
        "The element repeats more often than its maximum cardinality allows.",
    ),
    (
        CODE_NOT_IN_VALUE_SET,
        "The code is not in the required value set.",
        "The element is bound to a value set with strength `required` and the code is not one of its codes (`Patient.gender` takes `male`, `female`, `other`, `unknown`). Only value sets whose codes are bundled are checked (docs/fhir-schema.md).",
    ),
    (
        CHOICE,
        "A choice element has more than one type given.",
        "A choice element (`value[x]`) takes exactly one of its types: `valueQuantity` and `valueString` together is an error.",
    ),
    (
        EMPTY,
        "The element is empty.",
        "FHIR forbids empty values: an empty string, object or array, a `null` outside a primitive-extension array, or an XML element without a `value` and without children (invariant ele-1). Leave the element out instead.",
    ),
    (
        INVARIANT,
        "A FHIR invariant is broken.",
        "One of the simple invariants Sluice checks is false; the message names it: ext-1 (an extension has a value or extensions, not both), dom-2 (contained resources hold no contained), dom-3 (every contained resource is referenced), dom-4/dom-5 (contained resources have no versionId, lastUpdated or security), per-1 (Period start before end), qty-3 (a Quantity code needs a system), ref-1 (a local `#id` reference needs a contained resource).",
    ),
    (
        UNKNOWN_RESOURCE_TYPE,
        "The resource type is not a FHIR R4 resource.",
        "`resourceType` (or the XML root or container element) names no concrete FHIR R4 resource. It may come from another FHIR version (FHIR130 says which) or be misspelled.",
    ),
    (
        PRIMITIVE_EXTENSION,
        "A primitive's `_element` does not match its value.",
        "In FHIR JSON the id and extensions of primitive `x` go in `_x`: an object for a single value, an array aligned with `x` (same length, `null` where a value has none) for a repeating one. This one is not an object/array of that shape, or its length differs.",
    ),
    (
        WRONG_REFERENCE_TARGET,
        "The reference points at a resource type the element does not allow.",
        "A literal reference (`Patient/1`) or its resolved target is of a type not among the element's target types (`Observation.subject` takes Patient, Group, Device or Location).",
    ),
    (
        PROFILE_REQUIRED,
        "An element the profile requires is missing.",
        "A profile given with `--profile` (a StructureDefinition with a differential) raises the element's minimum cardinality above what the resource has: US Core Patient requires `identifier`, `name` and `gender`.",
    ),
    (
        PROFILE_LIMIT,
        "The profile limits or forbids this element.",
        "The profile lowers the element's maximum cardinality (to 0, forbidding it, or to 1), or restricts a choice element to fewer types, and the resource has more.",
    ),
    (
        PROFILE_VALUE,
        "The value is not the one the profile fixes or requires.",
        "The profile fixes the element's value (`fixed[x]`), gives a pattern (`pattern[x]`) the value does not contain, or binds it to a value set with strength `required` whose codes it lists, and the value differs.",
    ),
    (
        PROFILE_UNUSABLE,
        "The profile cannot be used.",
        "The file given with `--profile` is not a StructureDefinition with a `type` and a `differential` (or `snapshot`), or names a path the base type does not have.",
    ),
    (
        OTHER_VERSION,
        "The content is from another FHIR version than R4.",
        "`fhirVersion`, `meta.profile` or the shape of elements show STU3 (3.0), R4B (4.3) or R5 (5.0) content. Sluice validates against R4 (4.0.1); findings on such content are expected. Convert the resource, or read it with a validator for its version.",
    ),
    (
        REFERENCE_NOT_FOUND,
        "The reference does not resolve.",
        "No resource in the Bundle (or among the resource's contained resources, for `#id`) matches the reference: by fullUrl, `Type/id` (relative to the Bundle's base), `urn:uuid:`, version (`/_history/n`) or logical identifier. A warning: the target may live on a server. An error when a profile requires the target to be present or for a local `#id` reference.",
    ),
    (
        REFERENCE_MALFORMED,
        "The reference is not a valid FHIR reference.",
        "`reference` is none of `Type/id`, `Type/id/_history/v`, an absolute URL ending in those, `urn:uuid:<uuid>`, `urn:oid:<oid>` or `#id`; or it is a conditional reference (`Type?search`) outside a transaction or batch Bundle (inside one the server resolves it; Sluice matches `Type?identifier=system|value` against the entries).",
    ),
    (
        DUPLICATE_ENTRY,
        "Two Bundle entries have the same fullUrl.",
        "Each entry's fullUrl identifies it; two equal ones (without different versions) make references ambiguous (invariant bdl-7).",
    ),
    (
        BUNDLE_RULE,
        "The Bundle breaks a rule of its type.",
        "A rule of Bundle types is broken: a document starts with a Composition and a message with a MessageHeader (bdl-11, bdl-12); transaction and batch entries have a `request` and only they do (bdl-3, bdl-4); `total` only in searchset and history (bdl-1); `entry.search` only in a searchset (bdl-2); a `fullUrl` is absolute (bdl-5 ...); an entry has a resource, request or response (bdl-5).",
    ),
];

/// The title of a code, if registered.
pub fn title(code: &str) -> Option<&'static str> {
    CODES.iter().find(|(c, _, _)| c.eq_ignore_ascii_case(code)).map(|(_, t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_registered() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, title, explanation) in CODES {
            assert!(seen.insert(*code), "{code} twice");
            assert!(code.starts_with("FHIR") && code.len() == 7, "{code}");
            assert!(!title.is_empty() && !explanation.is_empty());
        }
    }
}
