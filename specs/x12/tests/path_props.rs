//! Properties of the X12 mapping path parser (`sluice_x12::path`): whatever the text, `parse`,
//! `check` (against every bundled guide) and `resolve` (over a real 837P set) return without
//! panicking, and an error's place lies inside the text it was given.

use proptest::prelude::*;
use sluice_x12::guide::bundled;
use sluice_x12::loops::identify;
use sluice_x12::path;
use sluice_x12::split::{Item, RawSet, Splitter};

const CLAIMS: &str = include_str!("../../../examples/x12-claims/data/claims-837p.x12");

fn first_set() -> RawSet {
    Splitter::new(CLAIMS.as_bytes())
        .find_map(|i| match i {
            Ok(Item::Set(s)) => Some(s),
            _ => None,
        })
        .expect("the example file has a set")
}

fn exercise(text: &str, set: &RawSet) -> Result<(), TestCaseError> {
    match path::parse(text) {
        Ok(p) => {
            let guide = sluice_x12::guide::by_id("005010X222A1").expect("bundled");
            let id = identify(guide, set.segments().collect(), set.closed);
            let values = p.resolve_strings(&id);
            prop_assert!(p.many() || values.len() <= 1, "`{text}` gave {} values without [*]", values.len());
        }
        Err(e) => prop_assert!(e.offset <= text.len(), "`{text}`: error at {} past the end", e.offset),
    }
    for guide in bundled() {
        if let Err(e) = path::check(guide, text) {
            prop_assert!(e.offset <= text.len(), "`{text}`: error at {} past the end", e.offset);
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_is_parsed_checked_and_resolved_without_panic(s in "\\PC{0,40}") {
        exercise(&s, &first_set())?;
    }

    #[test]
    fn path_like_text_is_parsed_checked_and_resolved_without_panic(
        s in "[0-9A-Z\\[\\]\\*\\(\\)/\\-]{0,30}"
    ) {
        exercise(&s, &first_set())?;
    }

    #[test]
    fn well_formed_paths_over_real_loops_and_segments_never_panic(
        loops in proptest::collection::vec(
            ("(2000A|2000B|2000C|2010AA|2010BA|2010BB|2300|2310B|2400|2420A|9999)", "(|\\[\\*\\]|\\[[0-9]{1,3}\\])"),
            0..3,
        ),
        segment in "(CLM|NM1|SV1|DMG|REF\\(EI\\)|DTP\\(472\\)|HI|BHT|XYZ)",
        element in 0u8..40,
        component in proptest::option::of(0u16..300),
    ) {
        let mut text: String = loops.iter().map(|(id, idx)| format!("{id}{idx}/")).collect();
        text.push_str(&format!("{segment}-{element:02}"));
        if let Some(c) = component {
            text.push_str(&format!("-{c}"));
        }
        exercise(&text, &first_set())?;
    }
}
