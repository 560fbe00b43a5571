//! End-to-end tests of one record per claim of a 277 claim status response (`each: loop(2200D,
//! 2200E)`) with the real binary, on `pipelines/x12-claim-status.yaml` and the base pack's
//! `x12-277-claim-status.yaml` and `x12-277-4010-claim-status.yaml`, over the synthetic files of
//! `examples/x12-claim-status/data/` (copies of `tests/fixtures/x12/status/`):
//! - each claim status tracking loop, a subscriber's (2200D) or a dependent's (2200E), is
//!   exactly one record, in file order, with its own status, amounts, payment and service
//!   lines (a dependent's record holds its subscriber's identity, not the subscriber's claim);
//!   the payer's acknowledgment of the request (2200B) gives none;
//! - 5010 and 4010 responses give the same table (the 4010 statement date and action code);
//! - no name or member id of the files reaches the run's output, logs, audit, DLQ or the plan,
//!   and the plan says how each source cuts its sets.

use serde_json::{Value, json};

mod common;
use common::runs::{self, assert_absent, counts, mapped, normalized, outputs_and_plans};
use common::{json_lines as lines, sluice_debug as sluice, text, x12_corpus};

const CLOCK: &str = "2026-03-12T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-claim-status.yaml";
const OUT: &str = "out/x12-claim-status";

/// The fields of a record that say which claim it is and what the payer said about it.
fn status_of(row: &Value) -> Value {
    let keys = [
        "reference_id",
        "trace_number",
        "level",
        "claim_id",
        "payer_claim_id",
        "status_category",
        "status_code",
        "status_entity",
        "action_code",
        "total_charge",
        "payment_amount",
        "payment_method",
        "check_number",
        "service_from",
        "service_to",
    ];
    normalized(&Value::Object(keys.iter().map(|k| (k.to_string(), row[*k].clone())).collect()))
}

/// Each service line as (procedure code, charge, paid, status category, line control number).
fn lines_of(row: &Value) -> Vec<Value> {
    row["service_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            normalized(&json!([
                l["procedure_code"],
                l["charge"],
                l["payment_amount"],
                l["status_category"],
                l["control_number"]
            ]))
        })
        .collect()
}

#[test]
fn each_claim_of_a_277_is_one_record_with_its_own_status_and_lines() {
    let dir = common::workspace("x12-claim-status");
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    // Each source reads both files: its own guide's set is cut into two claims, the other
    // version's set is filtered out.
    assert_eq!(counts(&summary), [6, 4, 0, 2], "{summary}");
    let rows = lines(&dir.join(OUT).join("claim-status.jsonl"));
    assert_eq!(rows.len(), 4, "{rows:?}");
    // The sink's order across two sources is not fixed: sort by trace number.
    let mut rows: Vec<Value> = rows.iter().map(mapped).collect();
    rows.sort_by_key(|r| r["trace_number"].as_str().unwrap_or_default().to_string());
    let claim =
        |reference: &str, trace: &str, level: &str, ids: (&str, Option<&str>), status: (&str, &str, Option<&str>)| {
            json!({
                "reference_id": reference, "trace_number": trace, "level": level,
                "claim_id": ids.0, "payer_claim_id": ids.1,
                "status_category": status.0, "status_code": status.1, "status_entity": status.2,
            })
        };
    let with = |mut base: Value, more: Value| {
        base.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
        normalized(&base)
    };
    let want = [
        with(
            claim(
                "SYNRSP0001",
                "SYNTRACE0001",
                "subscriber",
                ("SYNPCN0001", Some("SYNPAYERCLM01")),
                ("F1", "65", None),
            ),
            json!({"action_code": null, "total_charge": 245.0, "payment_amount": 200.0, "payment_method": "CHK",
                   "check_number": "SYNCHK0042", "service_from": "2026-02-01", "service_to": "2026-02-03"}),
        ),
        with(
            claim(
                "SYNRSP0001",
                "SYNTRACE0002",
                "dependent",
                ("SYNPCN0002", Some("SYNPAYERCLM02")),
                ("P1", "20", Some("PR")),
            ),
            json!({"action_code": null, "total_charge": 80.0, "payment_amount": null, "payment_method": null,
                   "check_number": null, "service_from": "2026-02-05", "service_to": "2026-02-05"}),
        ),
        with(
            claim(
                "SYNRSP4010",
                "SYNTRACE4001",
                "subscriber",
                ("SYNPCN4001", Some("SYNPAYERCLM41")),
                ("F1", "65", None),
            ),
            json!({"action_code": "WQ", "total_charge": 310.0, "payment_amount": 250.0, "payment_method": "CHK",
                   "check_number": "SYNCHK4010", "service_from": "2024-02-14", "service_to": "2024-02-14"}),
        ),
        with(
            claim("SYNRSP4010", "SYNTRACE4002", "dependent", ("SYNPCN4002", None), ("P1", "20", Some("PR"))),
            json!({"action_code": "WQ", "total_charge": 95.0, "payment_amount": null, "payment_method": null,
                   "check_number": null, "service_from": "2024-02-20", "service_to": "2024-02-20"}),
        ),
    ];
    for (row, w) in rows.iter().zip(&want) {
        assert_eq!(status_of(row), *w, "\n got: {row}");
    }
    // Lines belong to their own claim only: the dependents' claims have none.
    let lines: Vec<Vec<Value>> = rows.iter().map(lines_of).collect();
    assert_eq!(
        lines[0],
        [
            normalized(&json!(["99213", 125.0, 100.0, "F1", "LINE0001"])),
            normalized(&json!(["85025", 120.0, 100.0, "F1", "LINE0002"]))
        ]
    );
    assert!(lines[1].is_empty() && lines[3].is_empty(), "{lines:?}");
    assert_eq!(
        lines[2],
        [
            normalized(&json!(["99214", 180.0, 150.0, "F1", "LINE4001"])),
            normalized(&json!(["93000", 130.0, 100.0, "F1", null]))
        ]
    );
    // A dependent's record holds its subscriber's (masked) member id and its own masked name.
    assert_eq!(rows[1]["subscriber"]["member_id"], "*******1222", "{}", rows[1]);
    assert_eq!(rows[1]["dependent"]["last_name"], "[REDACTED]", "{}", rows[1]);
    assert_eq!(rows[0]["dependent"]["last_name"], Value::Null, "{}", rows[0]);
    // No name or member id anywhere the run wrote, nor in the plan.
    let phi: Vec<String> =
        ["TESTSUBJECT", "MORGAN", "JORDAN", "ZZ900111222", "SAMPLEPERSON", "RILEY", "SKYLER", "ZZ800333444"]
            .map(String::from)
            .to_vec();
    let texts = outputs_and_plans(&out, &dir, &dir.join(OUT), PIPELINE);
    assert_absent(&texts, &phi);
    // The plan says how each source cuts its guide's sets.
    let plan = sluice(&dir, &["plan", PIPELINE, "--format", "json"]);
    let p: Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
    for (source, guide) in [("responses", "005010X212/277"), ("responses_4010", "004010X093A1/277")] {
        let c = p["components"].as_array().unwrap().iter().find(|c| c["name"] == source).unwrap().clone();
        assert_eq!(c["x12"]["split"], json!([{"guide": guide, "loops": ["2200D", "2200E"]}]), "{p}");
    }
}

/// The corpus's 277s (stupidedi's X212 HN277 `pass` files and the linuxforhealth samples, read
/// from `../shared/corpus` when it is there): every set gives one record per claim status
/// tracking loop of a subscriber or a dependent (a TRN under an HL of level 22 or 23), and a
/// set without one is one record in the DLQ (RT143); the run balances and nothing is filtered.
#[test]
fn corpus_277s_give_one_record_per_claim() {
    let Some(dirs) = x12_corpus::folders(&[
        "stupidedi-fixtures/005010/X212 HN277 Health Care Claim Status Request and Response/pass",
        "linuxforhealth-x12/277_005010X212",
    ]) else {
        return;
    };
    let dir = common::workspace("x12-status-corpus");
    let without_claims = std::cell::Cell::new(0);
    let (files, want) = x12_corpus::copy_counting(&dirs, "s", &dir.join("corpus"), |set| {
        let mut level = "";
        let mut claims = 0;
        for e in set {
            match e[0].as_str() {
                "HL" => level = e.get(3).map_or("", String::as_str),
                "TRN" if matches!(level, "22" | "23") => claims += 1,
                _ => {}
            }
        }
        without_claims.set(without_claims.get() + usize::from(claims == 0));
        claims
    });
    // Only the 5010 source reads the corpus: the 4010 one gets no file.
    let pipeline = std::fs::read_to_string(dir.join(PIPELINE))
        .unwrap()
        .replacen("../examples/x12-claim-status/data/*.x12", "../corpus/s*.edi", 1)
        .replacen("../examples/x12-claim-status/data/*.x12", "../corpus/none-*.edi", 1)
        .replace("mode: strict", "mode: lenient");
    std::fs::write(dir.join("pipelines/corpus.yaml"), pipeline).unwrap();
    let (_, summary) = runs::run(&dir, "pipelines/corpus.yaml", CLOCK);
    let rows = lines(&dir.join(OUT).join("claim-status.jsonl"));
    eprintln!(
        "x12 corpus per claim status: {files} files; {} records (want {want}); {} delivered, {} to the DLQ, {} filtered",
        summary["records_in"],
        rows.len(),
        summary["dlq"],
        summary["filtered"]
    );
    assert_eq!(summary["records_in"].as_u64().unwrap() as usize, want, "{summary}");
    assert_eq!(summary["filtered"], 0, "{summary}");
    assert!(!rows.is_empty(), "{summary}");
    // The DLQ holds exactly the sets without a claim (a status of the request or a provider).
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    assert_eq!(dlq.len(), without_claims.get(), "{dlq:?}");
    assert!(dlq.iter().all(|e| e["code"] == "RT143"), "{dlq:?}");
    // Every delivered record names its claim's trace number and a status category.
    for r in &rows {
        assert!(r["trace_number"].is_string() && r["status_category"].is_string(), "{r}");
    }
}
