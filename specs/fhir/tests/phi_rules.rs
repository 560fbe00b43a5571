//! The PHI rules of `data/phi.txt` cover every element that can hold a person's name, address,
//! telecom, birth date or photo, except the listed organisational ones: adding a resource or
//! forgetting a rule fails here, not in a user's PHI proof. Attachments count as covered by the
//! datatype rule on `Attachment.data`.

use sluice_fhir::schema;

/// Elements of a person-identifying datatype that are deliberately NOT classified, and why.
const NOT_PHI: &[(&str, &str)] = &[
    ("ContactDetail.telecom", "publisher contacts of conformance resources"),
    ("CareTeam.telecom", "a team's phone, not a person's"),
    ("Device.contact", "device vendor or support contact"),
    ("DeviceDefinition.contact", "device vendor or support contact"),
    ("Endpoint.contact", "technical endpoint contact"),
    ("HealthcareService.telecom", "a service's phone"),
    ("HealthcareService.photo", "a service's picture"),
    ("InsurancePlan.contact.name", "insurer's contact person (staff)"),
    ("InsurancePlan.contact.telecom", "insurer's contact (staff)"),
    ("InsurancePlan.contact.address", "insurer's address"),
    ("Location.telecom", "a place's phone"),
    ("Location.address", "a place's address"),
    ("MessageHeader.source.contact", "messaging system contact"),
    ("Organization.telecom", "an organisation's phone"),
    ("Organization.address", "an organisation's address"),
    ("Organization.contact.name", "organisation's contact person (staff)"),
    ("Organization.contact.telecom", "organisation's contact (staff)"),
    ("Organization.contact.address", "organisation's contact address"),
    ("OrganizationAffiliation.telecom", "an affiliation's phone"),
    ("PractitionerRole.telecom", "a role's work phone"),
    ("Subscription.contact", "subscription technical contact"),
];

const PERSON_TYPES: [&str; 4] = ["HumanName", "Address", "ContactPoint", "Attachment"];

#[test]
fn person_identifying_elements_are_classified_or_listed() {
    let s = schema();
    let mut missing = Vec::new();
    for t in s.types() {
        for e in &t.elements {
            // Open choices (`Extension.value[x]`, `Task.input.value[x]`) take any type; what
            // they hold depends on the extension or input, a run-time matter (docs/fhir-schema.md).
            let personal = (!e.choice && e.type_names().any(|n| PERSON_TYPES.contains(&n))) || e.name == "birthDate";
            if !personal || NOT_PHI.iter().any(|(p, _)| *p == e.path) {
                continue;
            }
            let resolved = s.resolve(&e.path).unwrap_or_else(|err| panic!("{}: {err}", e.path));
            // An Attachment is covered by the datatype rule on Attachment.data.
            let covered = resolved.phi.is_some()
                || (e.type_names().eq(["Attachment"])
                    && s.resolve(&format!("{}.data", e.path)).is_ok_and(|d| d.phi.is_some()));
            if !covered {
                missing.push(e.path.clone());
            }
        }
    }
    assert!(missing.is_empty(), "no PHI class and not listed in NOT_PHI: {missing:?}");
    for (path, _) in NOT_PHI {
        let resolved = s.resolve(path).unwrap_or_else(|e| panic!("NOT_PHI lists {path}: {e}"));
        assert_eq!(resolved.phi, None, "{path} is listed as not PHI but has a class");
    }
}
