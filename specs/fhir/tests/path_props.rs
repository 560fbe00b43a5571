//! No path text makes resolution panic, and every error points inside the text it was given.

use proptest::prelude::*;
use sluice_fhir::schema;

/// Path-like text: names, dots, brackets, parentheses, digits, `[x]`, odd characters.
fn path_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Patient".to_string()),
        Just("Observation".to_string()),
        Just("Bundle".to_string()),
        Just("name".to_string()),
        Just("value".to_string()),
        Just("valueQuantity".to_string()),
        Just("entry".to_string()),
        Just("resource".to_string()),
        Just("subject".to_string()),
        Just("item".to_string()),
        Just("as(Quantity)".to_string()),
        Just("as(Patient)".to_string()),
        Just("resolve()".to_string()),
        Just("first()".to_string()),
        Just("[x]".to_string()),
        Just("[0]".to_string()),
        Just("[".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(".".to_string()),
        "[a-zA-Zé0-9_ .\\[\\]()*-]{0,4}",
    ];
    proptest::collection::vec(piece, 0..10).prop_map(|pieces| pieces.join(""))
}

proptest! {
    #[test]
    fn resolution_never_panics_and_errors_point_inside(text in path_text()) {
        let chars = text.chars().count();
        for result in [schema().resolve(&text).map(|_| ()), schema().resolve_in("Observation", &text).map(|_| ())] {
            if let Err(e) = result {
                prop_assert!(e.len >= 1);
                prop_assert!(e.offset <= chars, "{text:?}: offset {} beyond {chars}", e.offset);
                prop_assert!(e.offset + e.len <= chars + 1, "{text:?}: span {}+{} beyond {chars}", e.offset, e.len);
            }
        }
    }
}
