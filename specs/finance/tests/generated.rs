//! The committed `data/stripe-paths.tsv` is what `scripts/gen_stripe_paths.py` makes of Stripe's
//! OpenAPI spec (when the corpus, which is not in a user's clone, is beside the repository).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_table_is_the_generator_output() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spec = crate_dir.join("../../../shared/corpus/fin/stripe-openapi/e0123a3-2022-04-12/spec3.json");
    if !spec.is_file() {
        eprintln!("*** SKIPPED: {} not found (the corpus is not in a user's clone) ***", spec.display());
        return;
    }
    let out = Command::new("python3")
        .arg(crate_dir.join("scripts/gen_stripe_paths.py"))
        .arg(&spec)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read_to_string(crate_dir.join("data/stripe-paths.tsv")).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout) == committed, "regenerate data/stripe-paths.tsv with the script");
}

/// `data/quickbooks-paths.tsv` and the test server's `entities.json` are what
/// `scripts/gen_quickbooks.py` makes of the QuickBooks responses in `tests/fixtures/quickbooks/xml/`.
#[test]
fn the_quickbooks_table_and_entities_are_the_generator_output() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let xml = crate_dir.join("../../tests/fixtures/quickbooks/xml");
    for (mode, committed) in
        [("paths", crate_dir.join("data/quickbooks-paths.tsv")), ("json", xml.join("../entities.json"))]
    {
        let out = Command::new("python3")
            .arg(crate_dir.join("scripts/gen_quickbooks.py"))
            .arg(mode)
            .arg(&xml)
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let committed = std::fs::read_to_string(&committed).unwrap();
        assert!(String::from_utf8_lossy(&out.stdout) == committed, "regenerate {mode} with the script");
    }
}
