//! The committed `data/r4.txt` is exactly what the generator makes from the corpus today.
//! Fix a failure with `cargo run -p sluice-fhir --bin gen-fhir-schema` and commit the result.

mod common;

#[test]
fn committed_table_matches_the_generator() {
    let Some(root) = common::corpus_root(sluice_fhir::generate::STRUCTURE_DEFINITIONS_DIR) else {
        return;
    };
    let generated = sluice_fhir::generate::generate(&root).unwrap_or_else(|e| panic!("generator failed: {e}"));
    let committed = include_str!("../data/r4.txt");
    if generated != committed {
        let first_diff = generated.lines().zip(committed.lines()).position(|(a, b)| a != b);
        panic!(
            "data/r4.txt is stale (first differing line: {:?}; {} vs {} lines): run \
             `cargo run -p sluice-fhir --bin gen-fhir-schema` and commit it",
            first_diff.map(|i| i + 1),
            generated.lines().count(),
            committed.lines().count()
        );
    }
}
