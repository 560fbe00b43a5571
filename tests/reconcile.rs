//! `sluice reconcile` on the bundled scenario (examples/reconcile/stripe-payouts-vs-bank.yaml over
//! examples/reconcile/data): Stripe payouts against Plaid-shaped bank transactions, with
//! planted duplicates, a pending-then-posted pair, a late deposit, a deposit at 23:30 in New
//! York on the last day of January, a currency mismatch, a failed payout, a reversal, a
//! reversal of an unknown payout, an unreadable line and a record with a bad amount.
//!
//! Every expected pair is listed in tests/fixtures/reconcile/*.matches.csv and every expected
//! review entry in *.review.csv; the test prints precision and recall and asserts the exact
//! lists (no thresholds).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{root, text};

const SPEC: &str = "examples/reconcile/stripe-payouts-vs-bank.yaml";

fn sluice(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(dir).args(args).output().expect("sluice runs")
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Rows of a fixture CSV (comments and the header left out).
fn csv(name: &str) -> Vec<Vec<String>> {
    let body = std::fs::read_to_string(root().join("tests/fixtures/reconcile").join(name)).unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// (rule, left, right) of each pair in a matched output.
fn found_pairs(matched: &Path) -> BTreeSet<(String, String, String)> {
    jsonl(matched)
        .iter()
        .map(|p| {
            let rule = p["rule"].as_str().unwrap().to_string();
            let (a, b) = if rule == "reversal" { ("original", "reversal") } else { ("left", "right") };
            (rule, p[a]["id"].as_str().unwrap().to_string(), p[b]["id"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Compares a run's outputs in `out` with the fixtures `<fixture>.matches.csv` and
/// `<fixture>.review.csv`: prints precision and recall, then asserts the exact lists.
fn assert_scenario(out: &Path, fixture: &str) {
    let expected: BTreeSet<(String, String, String)> = csv(&format!("{fixture}.matches.csv"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    let found = found_pairs(&out.join("matched.jsonl"));
    let unrule = |s: &BTreeSet<(String, String, String)>| -> BTreeSet<(String, String)> {
        s.iter().map(|(_, l, r)| (l.clone(), r.clone())).collect()
    };
    let true_positives = unrule(&found).intersection(&unrule(&expected)).count();
    let precision = true_positives as f64 / found.len().max(1) as f64;
    let recall = true_positives as f64 / expected.len() as f64;
    println!(
        "{fixture}: {} expected pairs, {} found, {true_positives} correct: precision {precision:.3}, recall {recall:.3}",
        expected.len(),
        found.len(),
    );
    assert_eq!(found, expected, "pairs (rule, left, right)");

    let expected_review: BTreeSet<(String, String, String, String)> = csv(&format!("{fixture}.review.csv"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r.get(3).cloned().unwrap_or_default()))
        .collect();
    let review = jsonl(&out.join("review.jsonl"));
    let found_review: BTreeSet<(String, String, String, String)> = review
        .iter()
        .map(|r| {
            let record = match r["id"].as_str() {
                Some(id) => id.to_string(),
                None => format!("line:{}", r["line"]),
            };
            (
                r["input"].as_str().unwrap().to_string(),
                record,
                r["reason"].as_str().unwrap().to_string(),
                r["related"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(found_review, expected_review, "review entries (input, record, reason, related)");
    assert_eq!(review.len(), expected_review.len(), "one review entry per record");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["reconciliation"]["matched"], 2 * found.len());
    assert_eq!(summary["reconciliation"]["unmatched"], review.len());
}

#[test]
fn the_bundled_scenario_matches_every_listed_pair_and_reviews_the_rest() {
    let dir = common::workspace("reconcile-scenario");
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_scenario(&dir.join("out/reconcile"), "stripe-payouts-vs-bank");

    let review = jsonl(&dir.join("out/reconcile/review.jsonl"));
    let unreadable = review.iter().find(|r| r["reason"] == "unreadable").unwrap();
    assert_eq!(unreadable["code"], "RT160");
    let invalid = review.iter().find(|r| r["reason"] == "invalid_field").unwrap();
    assert_eq!(invalid["code"], "RT161");
    assert_eq!(invalid["detail"], "`amount` field `amount` is missing or cannot be read");

    // Nothing lost: 13 payout lines + 13 bank lines = 14 matched + 12 to review.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/reconcile/summary.json")).unwrap()).unwrap();
    assert_eq!(summary["reconciliation"], serde_json::json!({"matched": 14, "unmatched": 12, "duplicates": 2}));
    assert_eq!(summary["records_in"], 26);
    assert!(text(&out.stdout).contains("26 records in = 14 matched (7 pairs) + 12 to review"), "{}", text(&out.stdout));

    // Amounts normalized to the account's view (money in positive), categories and tags.
    let pairs = jsonl(&dir.join("out/reconcile/matched.jsonl"));
    let first = pairs.iter().find(|p| p["left"]["id"] == "po_001").unwrap();
    assert_eq!(first["left"]["amount"], "1250.00");
    assert_eq!(first["right"]["amount"], "1250.00");
    assert_eq!(first["difference"], "0.00");
    assert_eq!(first["left"]["file"], "data/stripe-payouts.jsonl");
    assert_eq!(first["left"]["category"], "Card processor payout");
    assert_eq!(first["left"]["tags"], serde_json::json!(["processor", "large"]));
    let coffee = review.iter().find(|r| r["id"] == "tx_13").unwrap();
    assert_eq!(coffee["amount"], "-4.50");
    assert_eq!(coffee["category"], "Food and Drink");
    // The deposit at 23:30 in New York on January 31st is a January 31st payout.
    let late_evening = pairs.iter().find(|p| p["left"]["id"] == "po_003").unwrap();
    assert_eq!(late_evening["left"]["date"], "2024-01-31");
    assert_eq!(late_evening["days_apart"], 0);
    let reversal = pairs.iter().find(|p| p["rule"] == "reversal").unwrap();
    assert_eq!(reversal["difference"], "0.00");
}

/// 835 remittances as `sluice parse --format x12` prints them (synthetic sets from
/// bench/synth.py, bundled) against ACH deposits: EFT trace (TRN02) links, then amount and
/// date; a zero-pay remittance, a deposit for less than its remittance and an unrelated deposit
/// of the same amount as an unpaid remittance, weeks later.
#[test]
fn remittances_match_their_deposits_by_eft_trace_then_amount_and_date() {
    let dir = common::workspace("reconcile-835");
    let parsed = sluice(&dir, &["parse", "--format", "x12", "examples/reconcile/data/remittances-835.x12"]);
    assert!(parsed.status.success(), "{}", text(&parsed.stderr));
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("out/remittances-835.jsonl"), &parsed.stdout).unwrap();
    let out = sluice(&dir, &["reconcile", "examples/reconcile/remittances-vs-bank.yaml"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_scenario(&dir.join("out/reconcile-835"), "remittances-vs-bank");
    // The sets name patients (NM1*QC); nothing of them reaches the terminal or the outputs.
    let outputs: String = ["matched.jsonl", "review.jsonl", "summary.json"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join("out/reconcile-835").join(f)).unwrap())
        .collect();
    for name in patient_names(&text(&parsed.stdout)) {
        for seen in [&text(&out.stdout), &text(&out.stderr), &outputs] {
            assert!(!seen.contains(&name), "a patient name leaked");
        }
    }
}

#[test]
fn claims_match_the_payments_that_answer_them_by_control_number() {
    let dir = common::workspace("reconcile-claims");
    // One record per 837P claim and per 835 claim payment (`each: loop(...)`), masked.
    let run = sluice(&dir, &["run", "examples/reconcile/claims-and-payments.yaml", "--summary", "json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    // 6 claims (2 of them in a set the guide rejects) and 4 payments.
    assert_eq!((summary["records_in"].as_u64(), summary["dlq"].as_u64()), (Some(10), Some(2)), "{summary}");
    let out = sluice(&dir, &["reconcile", "examples/reconcile/claims-vs-payments.yaml"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert_scenario(&dir.join("out/reconcile-claims"), "claims-vs-payments");
    // The sets name patients (NM1*QC, NM1*IL); the claims and payments are masked, and
    // nothing of them reaches the terminal or the reconciliation's outputs.
    let parsed = sluice(
        &dir,
        &[
            "parse",
            "--format",
            "x12",
            "examples/x12-claims/data/claims-837p.x12",
            "examples/reconcile/data/payments-835.x12",
        ],
    );
    let names = patient_names(&text(&parsed.stdout));
    let outputs: String = ["matched.jsonl", "review.jsonl", "summary.json", "claims.jsonl", "payments.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join("out/reconcile-claims").join(f)).unwrap())
        .collect();
    for name in names {
        for seen in [&text(&run.stderr), &text(&out.stdout), &text(&out.stderr), &outputs] {
            assert!(!seen.contains(&name), "a patient name leaked");
        }
    }
}

/// The last names of the NM1*QC (patient) and NM1*IL (subscriber) segments of parsed sets.
fn patient_names(parsed: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in parsed.lines() {
        let set: serde_json::Value = serde_json::from_str(line).unwrap();
        for seg in set["segments"].as_array().unwrap() {
            if seg[0] == "NM1" && (seg[1] == "QC" || seg[1] == "IL") {
                names.insert(seg[3].as_str().unwrap().to_string());
            }
        }
    }
    assert!(!names.is_empty());
    names
}

#[test]
fn outputs_are_byte_identical_across_runs() {
    let dir = common::workspace("reconcile-determinism");
    let read = |dir: &Path| -> Vec<Vec<u8>> {
        ["matched.jsonl", "review.jsonl", "summary.json"]
            .iter()
            .map(|f| std::fs::read(dir.join("out/reconcile").join(f)).unwrap())
            .collect()
    };
    assert!(sluice(&dir, &["reconcile", SPEC]).status.success());
    let first = read(&dir);
    assert!(sluice(&dir, &["reconcile", SPEC]).status.success());
    assert_eq!(first, read(&dir));
}

#[test]
fn dates_are_bucketed_in_the_accounts_time_zone() {
    // Bucketed in UTC, the 23:30 New York payout is dated February 1st, the day after the
    // deposit of January 31st that paid it: outside the `0..3` window, so both go unmatched.
    let dir = common::workspace("reconcile-tz");
    let spec = dir.join(SPEC);
    let body = std::fs::read_to_string(&spec).unwrap();
    let utc = body.replacen("time_zone: America/New_York", "time_zone: UTC", 1);
    assert_ne!(body, utc);
    std::fs::write(&spec, utc).unwrap();
    assert!(sluice(&dir, &["reconcile", SPEC]).status.success());
    let found = found_pairs(&dir.join("out/reconcile/matched.jsonl"));
    assert!(!found.iter().any(|(_, l, r)| l == "po_003" || r == "tx_3"), "{found:?}");
    let review = jsonl(&dir.join("out/reconcile/review.jsonl"));
    let po_003 = review.iter().find(|r| r["id"] == "po_003").unwrap();
    assert_eq!((po_003["date"].as_str(), po_003["reason"].as_str()), (Some("2024-02-01"), Some("no_candidate")));
}

#[test]
fn no_payee_or_account_text_reaches_the_terminal_or_the_summary() {
    let dir = common::workspace("reconcile-pii");
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success());
    let json = sluice(&dir, &["reconcile", SPEC, "--summary", "json"]);
    let summary = std::fs::read_to_string(dir.join("out/reconcile/summary.json")).unwrap();
    let review = std::fs::read_to_string(dir.join("out/reconcile/review.jsonl")).unwrap();
    let matched = std::fs::read_to_string(dir.join("out/reconcile/matched.jsonl")).unwrap();
    let seen = [text(&out.stdout), text(&out.stderr), text(&json.stdout), text(&json.stderr), summary, review, matched];
    for secret in [
        "ACME",
        "Acme",
        "BLUE BOTTLE",
        "Blue Bottle",
        "RENT",
        "acc_demo_checking",
        "MOBILE DEPOSIT",
        "twelve",
        "cut off",
    ] {
        for s in &seen {
            assert!(!s.contains(secret), "`{secret}` leaked:\n{s}");
        }
    }
}

#[test]
fn a_missing_input_fails_with_its_code_and_writes_nothing() {
    let dir = common::workspace("reconcile-missing");
    std::fs::remove_file(dir.join("examples/reconcile/data/bank-transactions.jsonl")).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error[RT162]: cannot read"), "{}", text(&out.stderr));
    assert!(!dir.join("out/reconcile").exists());
}

#[test]
fn a_spec_with_errors_does_not_run() {
    let dir = common::workspace("reconcile-broken");
    let spec = dir.join(SPEC);
    let body = std::fs::read_to_string(&spec).unwrap().replacen("days: 0..5", "days: 5..0", 1);
    std::fs::write(&spec, body).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("SL292"), "{}", text(&out.stderr));
    assert!(!dir.join("out/reconcile").exists());

    // An output on an input's path would replace the data it was read from.
    let body = std::fs::read_to_string(root().join(SPEC)).unwrap().replacen(
        "summary: ../../out/reconcile/summary.json",
        "summary: data/stripe-payouts.jsonl",
        1,
    );
    std::fs::write(&spec, body).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`data/stripe-payouts.jsonl` is also the path of input `left`"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(dir.join("examples/reconcile/data/stripe-payouts.jsonl")).unwrap(),
        std::fs::read(root().join("examples/reconcile/data/stripe-payouts.jsonl")).unwrap()
    );
}
