//! Which FHIR version content looks like, when it does not look like R4 (4.0.1): from
//! `fhirVersion`, from `meta.profile` URLs of the versioned specification, from resource types
//! that exist only in STU3, R4B or R5, and from element names typical of those versions
//! (`Observation.context` in STU3, `Encounter.actualPeriod` in R5).
//!
//! Invariants: the evidence named in a message is a version number, a resource type or an
//! element name, never a data value; an R4 resource yields nothing.

use crate::tree::Node;

/// Resource types not in R4, with the version(s) they belong to.
const TYPES: &[(&str, &str)] = &[
    ("BodySite", "STU3"),
    ("DataElement", "STU3"),
    ("DeviceComponent", "STU3"),
    ("EligibilityRequest", "STU3"),
    ("EligibilityResponse", "STU3"),
    ("ExpansionProfile", "STU3"),
    ("ImagingManifest", "STU3"),
    ("ProcedureRequest", "STU3"),
    ("ProcessRequest", "STU3"),
    ("ProcessResponse", "STU3"),
    ("ReferralRequest", "STU3"),
    ("Sequence", "STU3"),
    ("ServiceDefinition", "STU3"),
    ("AdministrableProductDefinition", "R4B or R5"),
    ("Citation", "R4B or R5"),
    ("ClinicalUseDefinition", "R4B or R5"),
    ("Ingredient", "R4B or R5"),
    ("ManufacturedItemDefinition", "R4B or R5"),
    ("NutritionProduct", "R4B or R5"),
    ("PackagedProductDefinition", "R4B or R5"),
    ("RegulatedAuthorization", "R4B or R5"),
    ("SubscriptionStatus", "R4B or R5"),
    ("SubscriptionTopic", "R4B or R5"),
    ("ActorDefinition", "R5"),
    ("ArtifactAssessment", "R5"),
    ("BiologicallyDerivedProductDispense", "R5"),
    ("ConditionDefinition", "R5"),
    ("DeviceDispense", "R5"),
    ("DeviceUsage", "R5"),
    ("EncounterHistory", "R5"),
    ("FormularyItem", "R5"),
    ("GenomicStudy", "R5"),
    ("ImagingSelection", "R5"),
    ("InventoryItem", "R5"),
    ("InventoryReport", "R5"),
    ("NutritionIntake", "R5"),
    ("Permission", "R5"),
    ("Requirements", "R5"),
    ("TestPlan", "R5"),
    ("Transport", "R5"),
];

/// Element names of other versions that R4 does not have, per resource type.
const ELEMENTS: &[(&str, &str, &str)] = &[
    ("Observation", "context", "STU3"),
    ("Condition", "assertedDate", "STU3"),
    ("AllergyIntolerance", "assertedDate", "STU3"),
    ("MedicationRequest", "context", "STU3"),
    ("Patient", "animal", "STU3"),
    ("Immunization", "notGiven", "STU3"),
    ("Immunization", "practitioner", "STU3"),
    ("Immunization", "date", "STU3"),
    ("Procedure", "definition", "STU3"),
    ("DiagnosticReport", "codedDiagnosis", "STU3"),
    ("Encounter", "incomingReferral", "STU3"),
    ("Encounter", "actualPeriod", "R5"),
    ("Encounter", "plannedStartDate", "R5"),
    ("Encounter", "virtualService", "R5"),
    ("Encounter", "subjectStatus", "R5"),
    ("Observation", "triggeredBy", "R5"),
    ("Observation", "bodyStructure", "R5"),
    ("MedicationRequest", "medication", "R5"),
    ("MedicationStatement", "medication", "R5"),
    ("Condition", "participant", "R5"),
    ("AllergyIntolerance", "participant", "R5"),
    ("Appointment", "class", "R5"),
];

/// The version(s) a resource type not in R4 belongs to.
pub fn resource_type_version(resource_type: &str) -> Option<&'static str> {
    TYPES.iter().find(|(t, _)| *t == resource_type).map(|(_, v)| *v)
}

/// The version a `fhirVersion` value or a `4.0.1`-style number names, when not R4.
fn version_of_number(v: &str) -> Option<&'static str> {
    if v.starts_with("4.0") {
        None
    } else if v.starts_with("3.0") {
        Some("STU3")
    } else if v.starts_with("4.3") || v.starts_with("4.1") {
        Some("R4B")
    } else if v.starts_with('5') || v.starts_with("4.2") || v.starts_with("4.4") || v.starts_with("4.5") {
        Some("R5")
    } else if v.starts_with("1.0") {
        Some("DSTU2")
    } else {
        None
    }
}

/// Why a resource looks like another version than R4, if it does: `(version, evidence)`.
pub fn detect(resource: &Node) -> Option<(&'static str, String)> {
    let rt = resource.resource_type()?;
    if let Some(v) = resource_type_version(rt) {
        return Some((v, format!("the resource type {rt}")));
    }
    if let Some(v) = resource.get("fhirVersion").and_then(Node::as_str).and_then(version_of_number) {
        return Some((v, "fhirVersion".into()));
    }
    if let Some(Node::Array(profiles)) = resource.get("meta").and_then(|m| m.get("profile")) {
        for p in profiles.iter().filter_map(Node::as_str) {
            let v = if p.contains("hl7.org/fhir/R5/") || p.contains("hl7.org/fhir/5.0") {
                Some("R5")
            } else if p.contains("hl7.org/fhir/R4B/") || p.contains("hl7.org/fhir/4.3") {
                Some("R4B")
            } else if p.contains("hl7.org/fhir/STU3/") || p.contains("hl7.org/fhir/3.0") {
                Some("STU3")
            } else {
                None
            };
            if let Some(v) = v {
                return Some((v, "meta.profile".into()));
            }
        }
    }
    let members = resource.as_object()?;
    ELEMENTS
        .iter()
        .find(|(t, e, _)| *t == rt && members.iter().any(|(k, _)| k == e))
        .map(|(t, e, v)| (*v, format!("the element {t}.{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_other_versions() {
        let j = |s: &str| crate::json::parse(s.as_bytes()).unwrap();
        assert_eq!(detect(&j(r#"{"resourceType":"ProcedureRequest"}"#)).unwrap().0, "STU3");
        assert_eq!(detect(&j(r#"{"resourceType":"CapabilityStatement","fhirVersion":"5.0.0"}"#)).unwrap().0, "R5");
        assert_eq!(detect(&j(r#"{"resourceType":"CapabilityStatement","fhirVersion":"4.3.0"}"#)).unwrap().0, "R4B");
        assert_eq!(detect(&j(r#"{"resourceType":"Encounter","actualPeriod":{}}"#)).unwrap().0, "R5");
        assert_eq!(detect(&j(r#"{"resourceType":"Observation","context":{}}"#)).unwrap().0, "STU3");
        assert!(detect(&j(r#"{"resourceType":"Patient","fhirVersion":"4.0.1"}"#)).is_none());
    }
}
