//! `sluice check --format sarif|junit`: documents that code-scanning tools and CI test reports
//! read, checked by parsing them (serde_json, roxmltree), on a clean tree and on broken specs.

use std::process::Command;

mod common;
use common::{root, text};

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(root()).arg("check").args(args).output().unwrap();
    (out.status.code(), text(&out.stdout))
}

#[test]
fn sarif_lists_each_finding_with_its_rule_and_place() {
    let (code, out) =
        check(&["--format", "sarif", "tests/ui/SL604-mask-hash-key", "tests/ui/SL605-mask-type-mismatch"]);
    assert_eq!(code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "sluice");
    let results = run["results"].as_array().unwrap();
    let ids: Vec<&str> = results.iter().map(|r| r["ruleId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["SL604", "SL605"]);
    for r in results {
        assert_eq!(r["level"], "error");
        let place = &r["locations"][0]["physicalLocation"];
        assert!(place["artifactLocation"]["uri"].as_str().unwrap().starts_with("tests/ui/SL60"));
        assert!(place["region"]["startLine"].as_u64().unwrap() > 0);
    }
    let rules: Vec<&str> =
        run["tool"]["driver"]["rules"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(rules, ["SL604", "SL605"], "each rule once, with its description");
}

#[test]
fn junit_has_a_case_per_file_and_fails_the_broken_ones() {
    let (code, out) = check(&["--format", "junit", "pipelines", "mappings"]);
    assert_eq!(code, Some(0), "{out}");
    let doc = roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let suites = doc.root_element();
    let cases = suites.descendants().filter(|n| n.has_tag_name("testcase")).count();
    assert!(cases > 15, "one case per spec file: {cases}");
    assert_eq!(suites.attribute("tests"), Some(cases.to_string().as_str()));
    assert_eq!(suites.attribute("failures"), Some("0"));

    let (code, out) =
        check(&["--format", "junit", "tests/ui/SL203-policy-extends-itself", "tests/ui/SL604-mask-hash-key"]);
    assert_eq!(code, Some(1));
    let doc = roxmltree::Document::parse(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let failed: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|c| {
            let f = c.children().find(|n| n.has_tag_name("failure"))?;
            Some((c.attribute("name")?.to_string(), f.attribute("type")?.to_string()))
        })
        .collect();
    assert!(
        failed.iter().any(|(file, code)| file.ends_with("SL604-mask-hash-key/policy.yaml") && code == "SL604"),
        "{failed:?}"
    );
    assert!(failed.iter().any(|(_, code)| code == "SL203"), "{failed:?}");
    assert_eq!(doc.root_element().attribute("failures"), Some(failed.len().to_string().as_str()));
}
