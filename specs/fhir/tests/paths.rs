//! Path resolution against the bundled FHIR R4 schema: good paths (types, cardinality, choice
//! types, contentReference recursion, references, PHI classes, required codes) and bad paths
//! (kind, location in the path text, candidates).

use sluice_fhir::{PathErrorKind, Resolved, schema};
use sluice_spec_core::{PhiClass, ValueType};

fn ok(path: &str) -> Resolved<'static> {
    schema().resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The error of a bad path, with the text it points at.
fn bad(path: &str) -> (PathErrorKind, String, Vec<String>, String) {
    let e = schema().resolve(path).map(|r| r.types).expect_err(path);
    let pointed: String = path.chars().skip(e.offset).take(e.len).collect();
    (e.kind, pointed, e.candidates, e.message)
}

#[test]
fn simple_paths_give_type_cardinality_and_list_ness() {
    let family = ok("Patient.name[0].family");
    assert_eq!(family.types, ["string"]);
    assert!(!family.many);
    assert_eq!(family.value_type(), ValueType::String);
    assert_eq!(family.element().unwrap().path, "HumanName.family");

    let given = ok("Patient.name.given");
    assert!(given.many, "name repeats and given repeats");
    assert_eq!(given.value_type(), ValueType::List(Box::new(ValueType::String)));

    let first_given = ok("Patient.name[0].given[1]");
    assert!(!first_given.many);

    let birth = ok("Patient.birthDate");
    assert_eq!(birth.value_type(), ValueType::Date);
    assert_eq!((birth.element().unwrap().min, birth.element().unwrap().max), (0, sluice_fhir::Max::N(1)));

    assert_eq!(ok("Patient").types, ["Patient"]);
    assert!(ok("Patient").elements.is_empty());
    assert_eq!(ok("Patient.extension").types, ["Extension"]);
    assert!(ok("Patient.extension").many);
    assert_eq!(ok("Patient.identifier[0].system").value_type(), ValueType::String);
    assert_eq!(ok("Patient.maritalStatus.coding[0].code").value_type(), ValueType::Code);
    assert_eq!(ok("Observation.code.coding.display").value_type(), ValueType::List(Box::new(ValueType::String)));
    assert_eq!(ok("Patient.managingOrganization.reference").types, ["string"]);
}

#[test]
fn backbone_elements_and_their_inherited_children() {
    let contact = ok("Patient.contact[0].name.family");
    assert_eq!(contact.types, ["string"]);
    assert_eq!(ok("Patient.contact.id").types, ["System.String"]);
    assert_eq!(ok("Patient.contact.modifierExtension").types, ["Extension"]);
    assert_eq!(
        ok("Bundle.entry.request.method").required_codes.unwrap(),
        ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
    );
    assert_eq!(ok("Timing.repeat.periodUnit").types, ["code"]);
}

#[test]
fn choice_types_in_every_spelling() {
    let value = ok("Observation.value");
    assert!(value.is_choice);
    assert!(value.types.contains(&"Quantity".to_string()) && value.types.len() == 11);
    assert_eq!(value.value_type(), ValueType::Any);
    assert_eq!(ok("Observation.value[x]").types, value.types);

    let as_quantity = ok("Observation.value.as(Quantity).value");
    assert_eq!(as_quantity.types, ["decimal"]);
    assert_eq!(as_quantity.value_type(), ValueType::Decimal);
    assert_eq!(ok("Observation.value.ofType(Quantity).unit").types, ["string"]);
    assert_eq!(ok("Observation.valueQuantity.value").types, ["decimal"]);
    assert_eq!(ok("Observation.valueQuantity").types, ["Quantity"]);
    assert!(!ok("Observation.valueQuantity").is_choice);
    assert_eq!(ok("Observation.valueCodeableConcept.coding[0].code").types, ["code"]);
    assert_eq!(ok("Observation.valueDateTime").value_type(), ValueType::DateTime);
    assert_eq!(ok("Observation.component[0].valueString").value_type(), ValueType::String);
    assert_eq!(ok("Patient.deceasedBoolean").value_type(), ValueType::Boolean);
    assert_eq!(ok("Patient.deceased.as(dateTime)").value_type(), ValueType::DateTime);
    assert_eq!(ok("MedicationRequest.medicationReference.resolve().code").types, ["CodeableConcept"]);
}

#[test]
fn content_references_recurse() {
    assert_eq!(ok("Questionnaire.item.item.item[0].linkId").types, ["string"]);
    assert!(ok("Questionnaire.item.item").many);
    assert_eq!(ok("Observation.component.referenceRange.low.value").types, ["decimal"]);
    assert_eq!(ok("Bundle.entry.link.relation").types, ["string"]);
}

#[test]
fn resources_inside_resources_need_a_type() {
    let resource = ok("Bundle.entry.resource");
    assert_eq!(resource.types, ["Resource"]);
    assert_eq!(ok("Bundle.entry.resource.id").types, ["System.String"]);
    assert_eq!(ok("Bundle.entry[0].resource.as(Patient).birthDate").value_type(), ValueType::Date);
    assert_eq!(
        ok("Bundle.entry.resource.as(Patient).birthDate").value_type(),
        ValueType::List(Box::new(ValueType::Date))
    );
    assert_eq!(ok("Bundle.entry[0].resource.ofType(Observation).valueQuantity.value").types, ["decimal"]);
    assert_eq!(ok("Patient.contained.as(Organization).name").types, ["string"]);

    let (kind, pointed, candidates, message) = bad("Bundle.entry.resource.birthDate");
    assert_eq!(kind, PathErrorKind::ResourceNeedsType);
    assert_eq!(pointed, "birthDate");
    assert!(candidates.contains(&"as(Patient)".to_string()), "{candidates:?}");
    assert!(message.contains(".as(Patient)"), "{message}");

    let (kind, pointed, candidates, _) = bad("Bundle.entry.resource.as(Patien)");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::UnknownType, "Patien"));
    assert!(candidates.contains(&"Patient".to_string()));
    let (kind, pointed, _, _) = bad("Bundle.entry.resource.as(HumanName)");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::TypeNotAllowed, "HumanName"));
}

#[test]
fn references_resolve_to_their_targets() {
    let schema = schema();
    let dob = schema.resolve_in("Observation", "subject.resolve().birthDate").unwrap();
    assert_eq!(dob.types, ["date"]);
    assert_eq!(dob.element().unwrap().path, "Patient.birthDate");
    assert_eq!(dob.phi, Some(PhiClass::Dob), "resolve() starts afresh at the target");

    let target = ok("Observation.subject.resolve()");
    assert_eq!(target.types, ["Patient", "Group", "Device", "Location"]);
    // `name` exists on several targets with different types.
    let names = ok("Observation.subject.resolve().name");
    assert_eq!(names.types, ["HumanName", "string"]);
    assert_eq!(names.elements.len(), 3);
    assert_eq!(ok("Observation.subject.resolve().as(Patient).name.family").types, ["string"]);
    assert!(ok("Patient.generalPractitioner.resolve().name").many);
    assert_eq!(ok("Observation.focus.resolve()").types, ["Resource"]);

    let (kind, pointed, candidates, _) = bad("Observation.subject.resolve().birthDat");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::UnknownElement, "birthDat"));
    assert!(candidates.contains(&"birthDate".to_string()), "{candidates:?}");
    let (kind, pointed, _, _) = bad("Patient.name.resolve()");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::NotReference, "resolve()"));
}

#[test]
fn phi_classes_follow_the_outermost_classified_element() {
    assert_eq!(ok("Patient.name").phi, Some(PhiClass::Name));
    assert_eq!(ok("Patient.name[0].family").phi, Some(PhiClass::Name));
    assert_eq!(ok("Patient.birthDate").phi, Some(PhiClass::Dob));
    assert_eq!(ok("Patient.identifier[0].value").phi, Some(PhiClass::Mrn));
    assert_eq!(ok("Patient.telecom.value").phi, Some(PhiClass::Phone));
    assert_eq!(ok("Patient.address.postalCode").phi, Some(PhiClass::Address));
    assert_eq!(ok("Patient.contact.name.given").phi, Some(PhiClass::Name));
    assert_eq!(ok("Patient.photo.data").phi, Some(PhiClass::Photo), "outer class wins over Attachment.data");
    assert_eq!(ok("DocumentReference.content.attachment.data").phi, Some(PhiClass::OtherId));
    assert_eq!(ok("Observation.note.text").phi, Some(PhiClass::OtherId));
    assert_eq!(ok("Observation.effectiveDateTime").phi, Some(PhiClass::Date));
    assert_eq!(ok("Observation.subject.display").phi, Some(PhiClass::Name));
    assert_eq!(ok("Encounter.period.start").phi, Some(PhiClass::Date));
    assert_eq!(ok("Patient.gender").phi, None);
    assert_eq!(ok("Observation.valueQuantity.value").phi, None);
    assert_eq!(ok("Patient.text.div").phi, Some(PhiClass::OtherId));
}

#[test]
fn required_bindings_carry_their_codes() {
    let gender = ok("Patient.gender");
    assert_eq!(gender.required_codes.unwrap(), ["male", "female", "other", "unknown"]);
    assert_eq!(gender.binding.unwrap().value_set, "http://hl7.org/fhir/ValueSet/administrative-gender");
    assert!(ok("Observation.status").required_codes.unwrap().contains(&"final".to_string()));
    assert!(ok("Patient.maritalStatus").required_codes.is_none(), "extensible, not required");
    // Required, but the JSON Schema does not enumerate mimetypes.
    let mime = ok("Attachment.contentType");
    assert_eq!(mime.binding.unwrap().strength, sluice_fhir::BindingStrength::Required);
    assert!(mime.required_codes.is_none());
}

#[test]
fn bad_paths_point_at_the_mistake() {
    let (kind, pointed, candidates, message) = bad("Patient.nme.family");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::UnknownElement, "nme"));
    assert!(candidates.contains(&"name".to_string()));
    assert!(message.contains("`Patient`") && message.contains("`nme`"), "{message}");

    let (kind, pointed, candidates, _) = bad("Patient.name[0].famly");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::UnknownElement, "famly"));
    assert!(candidates.contains(&"family".to_string()));

    let (kind, pointed, _, message) = bad("Patient.gender[0]");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::NotRepeating, "[0]"));
    assert!(message.contains("0..1"), "{message}");

    let (kind, pointed, candidates, _) = bad("Observation.value.value");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::ChoiceNeedsType, "value"));
    assert!(candidates.contains(&"as(Quantity)".to_string()));
    assert_eq!(bad("Observation.valueQuantity.foo").0, PathErrorKind::UnknownElement);
    assert_eq!(bad("Observation.valueFoo").0, PathErrorKind::UnknownElement);
    assert_eq!(bad("Observation.value.as(HumanName)").0, PathErrorKind::TypeNotAllowed);
    assert_eq!(bad("Patient.name[x]").0, PathErrorKind::UnknownElement, "name is not a choice");

    let (kind, pointed, candidates, _) = bad("Patiant.name");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::UnknownType, "Patiant"));
    assert!(candidates.contains(&"Patient".to_string()));

    let (kind, pointed, _, _) = bad("Patient.id.value");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::NoChildren, "value"));

    let (kind, pointed, candidates, _) = bad("Patient.name.where(use)");
    assert_eq!((kind, pointed.as_str()), (PathErrorKind::UnknownFunction, "where"));
    assert!(candidates.contains(&"as".to_string()));
    assert_eq!(bad("Patient.name.first(x)").0, PathErrorKind::UnknownFunction);
    assert_eq!(bad("Observation.value.as()").0, PathErrorKind::UnknownFunction);

    for (path, at) in [
        ("Patient.", 8),
        ("Patient..name", 8),
        ("Patient.name[", 12),
        ("Patient.name[01]", 12),
        ("Patient.name[-1]", 12),
        ("Patient name", 7),
        ("", 0),
        ("Patient.name.as(", 15),
        ("Patient.deceased.as(date Time)", 20),
        ("Patiént.nàme", 4),
    ] {
        let e = schema().resolve(path).map(|r| r.types).expect_err(path);
        assert_eq!((e.kind, e.offset), (PathErrorKind::Syntax, at), "{path}: {e}");
    }
}

#[test]
fn first_and_last_make_one_value() {
    let first = ok("Patient.name.first().given.last()");
    assert!(!first.many);
    assert_eq!(first.types, ["string"]);
    assert!(ok("Patient.name.first().given").many);
    assert_eq!(bad("Patient.name.first()[0]").0, PathErrorKind::NotRepeating);
}

#[test]
fn relative_paths_start_at_a_context_type() {
    let s = schema();
    assert_eq!(s.resolve_in("HumanName", "family").unwrap().types, ["string"]);
    assert_eq!(s.resolve_in("Patient", "name[0].given").unwrap().types, ["string"]);
    assert_eq!(s.resolve_in("Nope", "name").unwrap_err().kind, PathErrorKind::UnknownType);
    let e = s.resolve_in("Patient", "nam").unwrap_err();
    assert_eq!((e.kind, e.offset, e.len), (PathErrorKind::UnknownElement, 0, 3));
}

#[test]
fn paths_continue_from_a_resolved_one() {
    let contact = ok("Patient.contact");
    let family = contact.then("name.family").unwrap();
    assert_eq!(family.types, ["string"]);
    assert!(family.many, "contact repeats");
    assert_eq!(family.phi, Some(PhiClass::Name));
    assert!(!ok("Patient.contact[0]").then("name.family").unwrap().many);
    let e = contact.then("nmae").unwrap_err();
    assert_eq!((e.kind, e.offset, e.len), (PathErrorKind::UnknownElement, 0, 4));
    assert!(e.message.contains("`Patient.contact`"), "{}", e.message);
    let entry = ok("Bundle.entry[0].resource.as(Observation)");
    assert_eq!(entry.then("subject.resolve().birthDate").unwrap().phi, Some(PhiClass::Dob));
    assert_eq!(entry.then("valueQuantity.value").unwrap().value_type(), ValueType::Decimal);
}
