//! `sluice reconcile` on the bundled scenario (examples/reconcile/stripe-payouts-vs-bank.yaml over
//! examples/reconcile/data): Stripe payouts against Plaid-shaped bank transactions, with
//! planted duplicates, a pending-then-posted pair, a late deposit, a deposit at 23:30 in New
//! York on the last day of January, a currency mismatch, a failed payout, a reversal, a
//! reversal of an unknown payout, an unreadable line and a record with a bad amount; and the
//! same scenario with a declared exchange rate, which matches the pair in two currencies.
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
    // The pipeline's `reconcile:` ran once both files were read, over its two sinks' files.
    let reconciled = &summary["reconciliations"];
    assert_eq!(reconciled.as_array().map(Vec::len), Some(1), "{summary}");
    assert_eq!(reconciled[0]["reconciliation"]["matched"], 6, "{summary}");
    let out_dir = dir.join("out/reconcile-claims");
    assert_scenario(&out_dir, "claims-vs-payments");
    let from_run: Vec<String> = ["matched.jsonl", "review.jsonl", "summary.json"]
        .iter()
        .map(|f| std::fs::read_to_string(out_dir.join(f)).unwrap())
        .collect();
    assert_eq!(&serde_json::from_str::<serde_json::Value>(&from_run[2]).unwrap(), &reconciled[0]);
    // `sluice reconcile` alone over the same files writes the same bytes.
    let out = sluice(&dir, &["reconcile", "examples/reconcile/claims-vs-payments.yaml"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let alone: Vec<String> = ["matched.jsonl", "review.jsonl", "summary.json"]
        .iter()
        .map(|f| std::fs::read_to_string(out_dir.join(f)).unwrap())
        .collect();
    assert_eq!(alone, from_run);
    // Without `--summary json`, the run's report ends with the reconciliation's.
    let human = sluice(&dir, &["run", "examples/reconcile/claims-and-payments.yaml"]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    assert!(
        text(&human.stdout)
            .contains("reconciled `claims-vs-payments`: 8 records in = 6 matched (3 pairs) + 2 to review"),
        "{}",
        text(&human.stdout)
    );
    let plan = sluice(&dir, &["plan", "examples/reconcile/claims-and-payments.yaml"]);
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let plan = text(&plan.stdout);
    assert!(plan.contains("reconcile `claims-vs-payments`"), "{plan}");
    assert!(plan.contains("left `claims_837p` <- sink claims_out's file"), "{plan}");
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

#[test]
fn a_side_reads_several_sinks_and_a_payment_two_feeds_deliver_is_matched_once() {
    let dir = common::workspace("reconcile-two-feeds");
    // The payments also come from the payer's portal: a second sink with the same records.
    let pipeline = dir.join("examples/reconcile/claims-and-payments.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    let portal = "  portal_out:\n    type: jsonl\n    inputs: [mask_payments]\n    path: ../../out/reconcile-claims/portal.jsonl\ndlq:";
    let spec = spec
        .replacen("dlq:", portal, 1)
        .replace("      right: payments_out", "      right: [payments_out, portal_out]");
    assert!(spec.contains("right: [payments_out, portal_out]"), "{spec}");
    std::fs::write(&pipeline, spec).unwrap();
    let run = sluice(&dir, &["run", "examples/reconcile/claims-and-payments.yaml", "--summary", "json"]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let reconciled = &summary["reconciliations"][0]["reconciliation"];
    // The same three pairs; each of the four payments read again from the portal's file is
    // its own duplicate, and the unanswered claim and the orphan payment are in review as before.
    assert_eq!(reconciled["matched"], 6, "{summary}");
    assert_eq!(reconciled["unmatched"], 6, "{summary}");
    assert_eq!(reconciled["duplicates"], 4, "{summary}");
    let out = dir.join("out/reconcile-claims");
    assert_eq!(found_pairs(&out.join("matched.jsonl")).len(), 3);
    let review = jsonl(&out.join("review.jsonl"));
    let copies: Vec<&serde_json::Value> = review.iter().filter(|r| r["reason"] == "duplicate").collect();
    assert_eq!(copies.len(), 4, "{review:?}");
    assert!(copies.iter().all(|r| r["input"] == "payments_835"), "{review:?}");
    assert!(copies.iter().all(|r| r["file"].as_str().is_some_and(|f| f.ends_with("portal.jsonl"))), "{review:?}");
    let plan = sluice(&dir, &["plan", "examples/reconcile/claims-and-payments.yaml"]);
    let plan = text(&plan.stdout);
    assert!(plan.contains("right `payments_835` <- sinks payments_out, portal_out's files"), "{plan}");
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
        ["matched.jsonl", "review.jsonl", "summary.json", "statements.jsonl", "unassigned.jsonl"]
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
fn a_declared_exchange_rate_matches_the_payout_in_another_currency_and_the_rest_stays_as_it_was() {
    // po_007 is 200.00 CAD, paid into the dollar account as tx_7 (148.00 USD) on January 22nd:
    // without a rate both are reviewed as `currency_mismatch` (the bundled scenario). With the
    // day's rate (0.74) the payout reference matches them; an undated rate (0.70, 140.00 USD)
    // is there to show that the day's rate wins.
    let dir = common::workspace("reconcile-fx");
    let spec = dir.join(SPEC);
    let mut body = std::fs::read_to_string(&spec).unwrap();
    body.push_str(
        "exchange_rates:\n  - {from: CAD, to: USD, rate: \"0.70\"}\n  - {from: CAD, to: USD, rate: \"0.74\", date: 2024-01-22}\n",
    );
    std::fs::write(&spec, body).unwrap();
    let plan = sluice(&dir, &["plan", SPEC]);
    assert!(
        text(&plan.stdout).contains("exchange rate: 1 CAD = 0.74 USD on 2024-01-22 (and back)"),
        "{}",
        text(&plan.stdout)
    );
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let matched = jsonl(&dir.join("out/reconcile/matched.jsonl"));
    let pair = matched.iter().find(|p| p["left"]["id"] == "po_007").expect("po_007 matched");
    assert_eq!((pair["rule"].as_str(), pair["right"]["id"].as_str()), (Some("payout_reference"), Some("tx_7")));
    assert_eq!(
        pair["exchange_rate"],
        serde_json::json!({"from": "CAD", "to": "USD", "rate": "0.74", "date": "2024-01-22"})
    );
    assert_eq!((pair["left_converted"].as_str(), pair["difference"].as_str()), (Some("148.00"), Some("0.00")));
    assert_eq!((pair["left"]["currency"].as_str(), pair["right"]["currency"].as_str()), (Some("CAD"), Some("USD")));

    // Everything else is the bundled scenario's outcome.
    let mut expected: BTreeSet<(String, String, String)> = csv("stripe-payouts-vs-bank.matches.csv")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    expected.insert(("payout_reference".into(), "po_007".into(), "tx_7".into()));
    assert_eq!(found_pairs(&dir.join("out/reconcile/matched.jsonl")), expected);
    let review = jsonl(&dir.join("out/reconcile/review.jsonl"));
    let reviewed: BTreeSet<String> = review.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
    let expected_review: BTreeSet<String> = csv("stripe-payouts-vs-bank.review.csv")
        .into_iter()
        .map(|r| r[1].clone())
        .filter(|id| !id.starts_with("line:") && id != "po_007" && id != "tx_7")
        .collect();
    assert_eq!(reviewed, expected_review);
    assert!(review.iter().all(|r| r["reason"] != "currency_mismatch"));
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
    // The statements' documents are data (merchants, account names); what they could not place
    // names ids and codes only.
    let unassigned = std::fs::read_to_string(dir.join("out/reconcile/unassigned.jsonl")).unwrap();
    let seen = [
        text(&out.stdout),
        text(&out.stderr),
        text(&json.stdout),
        text(&json.stderr),
        summary,
        review,
        matched,
        unassigned,
    ];
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

/// One bank transaction of a statement: the brief's seven members.
fn txn(
    id: &str,
    date: &str,
    amount: f64,
    category: Option<&str>,
    pending: bool,
    reconciled: bool,
) -> serde_json::Value {
    serde_json::json!({
        "id": id, "date": date, "amount": amount, "merchant": null, "category": category,
        "pending": pending, "reconciled": reconciled,
    })
}

const PROCESSOR: Option<&str> = Some("Card processor payout");

#[test]
fn statements_are_the_briefs_document_per_account_with_reconciled_from_the_outcome() {
    let dir = common::workspace("reconcile-statements");
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let docs = jsonl(&dir.join("out/reconcile/statements.jsonl"));
    let mut coffee = txn("tx_13", "2024-01-17", -4.5, Some("Food and Drink"), false, false);
    coffee["merchant"] = serde_json::json!("Blue Bottle");
    // The checking account's last line (the second sync) gives its balance and sync time; the
    // card's last line is a deletion (closed): no document. Savings has no transactions.
    let checking = serde_json::json!({
        "metadata": {
            "source": "plaid",
            "account_id": "acc_demo_checking",
            "sync_timestamp": "2024-02-06T14:01:47Z",
            "transaction_count": 11,
        },
        "account": {
            "id": "acc_demo_checking",
            "name": "Operating Checking",
            "type": "depository",
            "balance": 5230.75,
            "currency": "USD",
        },
        "transactions": [
            txn("tx_1", "2024-01-11", 1250.0, PROCESSOR, false, true),
            txn("tx_2", "2024-01-13", 980.0, PROCESSOR, false, true),
            txn("tx_3", "2024-01-31", 500.0, PROCESSOR, false, true),
            txn("tx_4", "2024-02-03", 500.0, PROCESSOR, false, true),
            txn("tx_7", "2024-01-23", 148.0, PROCESSOR, false, false),
            txn("tx_9", "2024-01-24", 410.0, None, false, true),
            txn("tx_p11", "2024-01-15", 310.0, PROCESSOR, true, false),
            txn("tx_11", "2024-01-16", 310.0, PROCESSOR, false, true),
            txn("tx_12", "2024-01-13", 980.0, PROCESSOR, false, false),
            coffee,
            txn("tx_14", "2024-01-28", -1250.0, None, false, false),
        ],
        "reconciliation": {"matched": 6, "unmatched": 5, "duplicates": 1},
    });
    let savings = serde_json::json!({
        "metadata": {
            "source": "plaid",
            "account_id": "acc_demo_savings",
            "sync_timestamp": "2024-02-06T14:01:47Z",
            "transaction_count": 0,
        },
        "account": {
            "id": "acc_demo_savings",
            "name": "Reserve Savings",
            "type": "depository",
            "balance": 20000.0,
            "currency": "USD",
        },
        "transactions": [],
        "reconciliation": {"matched": 0, "unmatched": 0, "duplicates": 0},
    });
    assert_eq!(docs, vec![checking, savings]);
    // Members in the brief's order.
    let first_line = std::fs::read_to_string(dir.join("out/reconcile/statements.jsonl")).unwrap();
    assert!(
        first_line.starts_with(r#"{"metadata":{"source":"plaid","account_id":"acc_demo_checking","sync_timestamp":"#),
        "{first_line}"
    );
    assert!(first_line.contains(r#"{"id":"tx_1","date":"2024-01-11","amount":1250.0,"merchant":null,"category":"Card processor payout","pending":false,"reconciled":true}"#));
    // Nothing lost: 11 bank records read, 11 listed; nothing unassigned.
    assert_eq!(std::fs::read_to_string(dir.join("out/reconcile/unassigned.jsonl")).unwrap(), "");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/reconcile/summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["statements"],
        serde_json::json!({
            "accounts": 2, "transactions_in": 11, "listed": 11, "duplicate_copies": 0, "other_currency": 0,
            "unassigned": {"account_unknown": 0, "account_closed": 0, "no_account": 0, "no_source": 0, "unreadable_accounts": 0},
        })
    );
    assert!(
        text(&out.stdout).contains(
            "statements: 2 accounts, 11 transactions of `bank_deposits` = 11 listed + 0 duplicate copies + 0 unassigned"
        ),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "");
}

/// Transactions of a closed account, of an account the file does not hold and without an
/// account id go to the unassigned output with their codes; a second copy of an id is
/// counted, not listed twice; a transaction in another currency says so; account lines that
/// cannot be read are reported. Every bank record is accounted for.
#[test]
fn statements_lose_nothing_and_report_what_they_cannot_place() {
    let dir = common::workspace("reconcile-statements-edges");
    let bank = dir.join("examples/reconcile/data/bank-transactions.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&bank).unwrap().lines().map(str::to_string).collect();
    let edit = |lines: &mut Vec<String>, id: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let at = lines.iter().position(|l| l.contains(&format!("\"transaction_id\": \"{id}\""))).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&lines[at]).unwrap();
        f(&mut v);
        lines[at] = v.to_string();
    };
    edit(&mut lines, "tx_7", &|v| v["account_id"] = serde_json::json!("acc_demo_card"));
    edit(&mut lines, "tx_9", &|v| v["account_id"] = serde_json::json!("acc_elsewhere"));
    edit(&mut lines, "tx_14", &|v| v["account_id"] = serde_json::Value::Null);
    edit(&mut lines, "tx_13", &|v| v["iso_currency_code"] = serde_json::json!("EUR"));
    let tx_2 = lines.iter().find(|l| l.contains("\"transaction_id\": \"tx_2\"")).unwrap().clone();
    lines.push(tx_2);
    std::fs::write(&bank, lines.join("\n") + "\n").unwrap();
    let accounts = dir.join("examples/reconcile/data/bank-accounts.jsonl");
    let mut body = std::fs::read_to_string(&accounts).unwrap();
    body.push_str("{\"name\": \"Petty Cash\", \"type\": \"depository\"}\nnot an account\n");
    std::fs::write(&accounts, body).unwrap();

    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let stderr = text(&out.stderr);
    for warning in [
        "warning[RT172]: 2 transactions of `bank_deposits` name an account the accounts file does not hold (1 unknown, 1 closed)",
        "warning[RT173]: 2 lines of the accounts file are not accounts",
        "warning[RT174]: 1 transactions of `bank_deposits` have no account id",
    ] {
        assert!(stderr.contains(warning), "{stderr}");
    }
    let terminal = text(&out.stdout) + &stderr;
    for secret in ["acc_elsewhere", "acc_demo_card", "acc_demo_checking", "Petty", "Blue Bottle", "STRIPE"] {
        assert!(!terminal.contains(secret), "`{secret}` reached the terminal");
    }
    let unassigned = jsonl(&dir.join("out/reconcile/unassigned.jsonl"));
    let brief: Vec<(String, String, String)> = unassigned
        .iter()
        .map(|u| {
            let what = u["id"].as_str().map_or_else(|| format!("line:{}", u["line"]), str::to_string);
            (u["code"].as_str().unwrap().into(), u["reason"].as_str().unwrap().into(), what)
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        brief,
        vec![
            s("RT172", "account_closed", "tx_7"),
            s("RT172", "account_unknown", "tx_9"),
            s("RT174", "no_account", "tx_14"),
            s("RT173", "unreadable_account", "line:7"),
            s("RT173", "unreadable_account", "line:8"),
        ]
    );
    // tx_9 still matched its payout: the unassigned entry says so.
    assert_eq!(unassigned[1]["reconciled"], true);
    assert_eq!(unassigned[1]["account_id"], "acc_elsewhere");
    assert_eq!(unassigned[1]["amount"], "410.00");

    let docs = jsonl(&dir.join("out/reconcile/statements.jsonl"));
    let checking = &docs[0];
    let ids: Vec<&str> =
        checking["transactions"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tx_1", "tx_2", "tx_3", "tx_4", "tx_p11", "tx_11", "tx_12", "tx_13"]);
    assert_eq!(checking["metadata"]["transaction_count"], 8);
    // 9 records of the account: 5 matched, 4 in review (the copy of tx_2 among them, not
    // listed again); tx_12 and the copy are duplicates.
    assert_eq!(checking["reconciliation"], serde_json::json!({"matched": 5, "unmatched": 4, "duplicates": 2}));
    let coffee = &checking["transactions"][7];
    assert_eq!((coffee["amount"].as_f64(), coffee["currency"].as_str()), (Some(-4.5), Some("EUR")));
    assert!(checking["transactions"][0].get("currency").is_none());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/reconcile/summary.json")).unwrap()).unwrap();
    assert_eq!(
        summary["statements"],
        serde_json::json!({
            "accounts": 2, "transactions_in": 12, "listed": 8, "duplicate_copies": 1, "other_currency": 1,
            "unassigned": {"account_unknown": 1, "account_closed": 1, "no_account": 1, "no_source": 0, "unreadable_accounts": 2},
        })
    );
    assert!(
        text(&out.stdout).contains("12 transactions of `bank_deposits` = 8 listed + 1 duplicate copies + 3 unassigned"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_missing_accounts_file_fails_with_its_code_and_writes_nothing() {
    let dir = common::workspace("reconcile-no-accounts");
    std::fs::remove_file(dir.join("examples/reconcile/data/bank-accounts.jsonl")).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error[RT162]: cannot read"), "{}", text(&out.stderr));
    assert!(!dir.join("out/reconcile").exists());
}

/// Accounts are told apart by provider and id: a QuickBooks account with the Plaid checking
/// account's id is an account of its own, and each transaction goes to the account of its own
/// provider (its `source` field, else the input's `default_source`); a transaction without a
/// provider is reported (RT175), not guessed.
#[test]
fn statements_match_accounts_by_provider_and_id() {
    let dir = common::workspace("reconcile-statements-providers");
    let accounts = dir.join("examples/reconcile/data/bank-accounts.jsonl");
    let mut body = std::fs::read_to_string(&accounts).unwrap();
    body.push_str(
        "{\"source\": \"quickbooks\", \"id\": \"acc_demo_checking\", \"name\": \"Checking (books)\", \"type\": \"Bank\", \"balance\": 99.5, \"currency\": \"usd\"}\n",
    );
    std::fs::write(&accounts, body).unwrap();
    let spec = dir.join(SPEC);
    let text_of = std::fs::read_to_string(&spec).unwrap();
    let with_field =
        text_of.replacen("    default_source: plaid ", "    source: provider\n    default_source: plaid ", 1);
    assert_ne!(text_of, with_field);
    std::fs::write(&spec, &with_field).unwrap();
    // tx_13 says it is the books' transaction; the others carry no provider: Plaid's, by default.
    let bank = dir.join("examples/reconcile/data/bank-transactions.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&bank)
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(mut v) if v["transaction_id"] == "tx_13" => {
                v["provider"] = serde_json::json!("quickbooks");
                v.to_string()
            }
            _ => l.to_string(),
        })
        .collect();
    std::fs::write(&bank, lines.join("\n") + "\n").unwrap();

    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let docs = jsonl(&dir.join("out/reconcile/statements.jsonl"));
    let heads: Vec<(String, String, usize)> = docs
        .iter()
        .map(|d| {
            (
                d["metadata"]["source"].as_str().unwrap().to_string(),
                d["account"]["id"].as_str().unwrap().to_string(),
                d["transactions"].as_array().unwrap().len(),
            )
        })
        .collect();
    let h = |s: &str, id: &str, n: usize| (s.to_string(), id.to_string(), n);
    assert_eq!(
        heads,
        [
            h("plaid", "acc_demo_checking", 10),
            h("plaid", "acc_demo_savings", 0),
            h("quickbooks", "acc_demo_checking", 1)
        ]
    );
    // Each keeps its own name and balance: the books' line did not replace the bank's.
    assert_eq!(docs[0]["account"]["balance"], 5230.75);
    assert_eq!(docs[2]["account"]["name"], "Checking (books)");
    assert_eq!(docs[2]["transactions"][0]["id"], "tx_13");

    // Without `default_source`, records without a provider cannot be placed.
    std::fs::write(&spec, with_field.replacen("    default_source: plaid ", "    # no default ", 1)).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning[RT175]: 10 transactions of `bank_deposits` have no provider"),
        "{}",
        text(&out.stderr)
    );
    let unassigned = jsonl(&dir.join("out/reconcile/unassigned.jsonl"));
    assert_eq!(unassigned.len(), 10);
    assert!(unassigned.iter().all(|u| u["code"] == "RT175" && u["reason"] == "no_source"));
    let docs = jsonl(&dir.join("out/reconcile/statements.jsonl"));
    assert_eq!(docs[2]["transactions"].as_array().unwrap().len(), 1);
}

#[test]
fn version_2_rows_are_told_apart_by_their_connection() {
    let dir = common::workspace("reconcile-statements-connections");
    // The accounts as `canonical/financial-account@2` rows of the connection `plaid`, and a
    // second login (`plaid_west`) with an account of the same id and its own balance.
    let accounts = dir.join("examples/reconcile/data/bank-accounts.jsonl");
    let mut rows: Vec<serde_json::Value> = jsonl(&accounts);
    for r in &mut rows {
        r["connection"] = serde_json::json!("plaid");
    }
    let mut west = rows[0].clone();
    west["connection"] = serde_json::json!("plaid_west");
    west["balance"] = serde_json::json!(12.0);
    rows.push(west);
    let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&accounts, &body).unwrap();
    let spec = dir.join(SPEC);
    let text_of = std::fs::read_to_string(&spec).unwrap();

    // Raw Plaid transactions (no connection) cannot say which login's account they are: two
    // logins have `acc_demo_checking`, so those are unassigned, none guessed.
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let unassigned = jsonl(&dir.join("out/reconcile/unassigned.jsonl"));
    assert!(!unassigned.is_empty() && unassigned.iter().all(|u| u["reason"] == "account_unknown"), "{unassigned:?}");

    // The transactions as read through `plaid`, one of them again through `plaid_west` with
    // the same id: with `connection: connection`, it is no duplicate, and each lands in the
    // document of its own login's account.
    let bank = dir.join("examples/reconcile/data/bank-transactions.jsonl");
    // Lines that are not JSON (the example has a cut-off one) stay as they are.
    let mut lines: Vec<String> = std::fs::read_to_string(&bank)
        .unwrap()
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(mut v) => {
                v["connection"] = serde_json::json!("plaid");
                v.to_string()
            }
            Err(_) => l.to_string(),
        })
        .collect();
    let tx_13 = lines.iter().find(|l| l.contains("\"transaction_id\":\"tx_13\"")).unwrap();
    lines.push(tx_13.replace("\"connection\":\"plaid\"", "\"connection\":\"plaid_west\""));
    std::fs::write(&bank, lines.join("\n") + "\n").unwrap();
    let with_field =
        text_of.replacen("    default_source: plaid ", "    connection: connection\n    default_source: plaid ", 1);
    assert_ne!(text_of, with_field);
    std::fs::write(&spec, &with_field).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(jsonl(&dir.join("out/reconcile/unassigned.jsonl")).is_empty());
    let docs = jsonl(&dir.join("out/reconcile/statements.jsonl"));
    let heads: Vec<(String, String, f64, usize)> = docs
        .iter()
        .map(|d| {
            (
                d["metadata"]["connection"].as_str().unwrap().to_string(),
                d["account"]["id"].as_str().unwrap().to_string(),
                d["account"]["balance"].as_f64().unwrap(),
                d["transactions"].as_array().unwrap().len(),
            )
        })
        .collect();
    let h = |c: &str, id: &str, balance: f64, n: usize| (c.to_string(), id.to_string(), balance, n);
    assert_eq!(
        heads,
        [
            h("plaid", "acc_demo_checking", 5230.75, 11),
            h("plaid", "acc_demo_savings", 20000.0, 0),
            h("plaid_west", "acc_demo_checking", 12.0, 1),
        ]
    );
    let review = jsonl(&dir.join("out/reconcile/review.jsonl"));
    let tx_13: Vec<&serde_json::Value> = review.iter().filter(|r| r.to_string().contains("\"tx_13\"")).collect();
    assert!(tx_13.iter().all(|r| r["reason"] != "duplicate"), "{tx_13:?}");
    assert!(review.iter().any(|r| r.to_string().contains("\"connection\":\"plaid_west\"")), "{review:?}");
}

/// Outputs whose names differ only by their extension are staged apart: both end up whole.
#[test]
fn outputs_that_differ_by_extension_only_are_both_written() {
    let dir = common::workspace("reconcile-extensions");
    let spec = dir.join(SPEC);
    let body = std::fs::read_to_string(&spec).unwrap();
    let body = body
        .replacen("matched: ../../out/reconcile/matched.jsonl", "matched: ../../out/reconcile/run.jsonl", 1)
        .replacen("summary: ../../out/reconcile/summary.json", "summary: ../../out/reconcile/run.json", 1);
    std::fs::write(&spec, body).unwrap();
    let out = sluice(&dir, &["reconcile", SPEC]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let out_dir = dir.join("out/reconcile");
    assert_scenario_pairs_in(&out_dir.join("run.jsonl"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(summary["name"], "stripe-payouts-vs-bank");
    let mut left: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    left.sort();
    assert!(left.is_empty(), "staging files left behind: {left:?}");
}

/// The matched output holds the scenario's pairs (and nothing else).
fn assert_scenario_pairs_in(matched: &Path) {
    let expected: BTreeSet<(String, String, String)> = csv("stripe-payouts-vs-bank.matches.csv")
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .collect();
    assert_eq!(found_pairs(matched), expected);
}

/// `sluice plan` of a reconciliation shows what `outputs.ledger` will update, its URL as the
/// secret reference (never resolved: the password in the environment does not show), and
/// `sluice check` accepts it.
#[test]
fn plan_shows_the_ledger_without_its_secret() {
    let dir = common::workspace("reconcile-plan-ledger");
    let spec = dir.join(SPEC);
    let mut body = std::fs::read_to_string(&spec).unwrap();
    body.push_str(
        "  ledger:\n    url: ${LEDGER_URL}\n    right:\n      table: plaid_ledger\n      key: [source, id]\n",
    );
    std::fs::write(&spec, body).unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&dir)
            .args(args)
            .env("LEDGER_URL", "postgres://finance:s3cr3t-pw@127.0.0.1:5432/ledger")
            .output()
            .unwrap()
    };
    let out = run(&["plan", SPEC]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ledger ${LEDGER_URL}: one transaction, committed once the files are staged"), "{stdout}");
    assert!(stdout.contains("`bank_deposits` -> table `plaid_ledger`"), "{stdout}");
    let json = run(&["plan", SPEC, "--format", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&text(&json.stdout)).unwrap();
    assert_eq!(
        plan["ledger"],
        serde_json::json!({"url": "${LEDGER_URL}", "tables": [{"input": 1, "table": "plaid_ledger", "key": ["source", "id"]}]})
    );
    let check = run(&["check", SPEC]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    for out in [&out, &json, &check] {
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(!all.contains("s3cr3t") && !all.contains("finance:"), "{all}");
    }
}
