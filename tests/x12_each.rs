//! End-to-end tests of one record per claim (`each: loop(2300)`) and per claim payment
//! (`each: loop(2100)`) with the real binary, on `pipelines/x12-claims-per-claim.yaml` and the
//! base pack's `x12-837p-claim.yaml` / `x12-835-remittance.yaml`:
//! - each CLM (CLP) of the data is exactly one record, in file order, with its own context
//!   (billing provider, subscriber, service lines; payment BPR/TRN, payer, payee), read here
//!   independently of Sluice's codec;
//! - the run balances, `in` counting claims (a set cut at its claims is that many records);
//! - a claim that fails its mapping goes to the DLQ alone, at its own offset, and the other
//!   claims of its set are delivered;
//! - no name, member id, street or full date of birth reaches any output, log or audit;
//! - one set longer than the source's read limit (read in parts, cut in two passes) gives the
//!   same records;
//! - corpus conformance (`../shared/corpus/x12`, skipped loudly when absent): records = CLMs.

use std::path::Path;

use serde_json::Value;

mod common;
use common::runs::{self, counts};
use common::{json_lines as lines, sluice_debug as sluice, text, x12_corpus};

const CLOCK: &str = "2024-01-20T12:00:00Z";
const PIPELINE: &str = "pipelines/x12-claims-per-claim.yaml";
const OUT: &str = "out/x12-claims-per-claim";

/// One segment: its elements (id first) and its byte offset in the file.
type Seg = (Vec<String>, usize);

/// The segments of an X12 file read with its own delimiters (element at byte 3, component at
/// 104, terminator at 105 of the ISA).
fn segments(bytes: &[u8]) -> (Vec<Seg>, char) {
    let t = String::from_utf8_lossy(bytes).into_owned();
    let (el, comp, term) = (t.as_bytes()[3] as char, t.as_bytes()[104] as char, t.as_bytes()[105] as char);
    let mut out = Vec::new();
    let mut at = 0;
    for raw in t.split(term) {
        let lead = raw.len() - raw.trim_start().len();
        let s = raw.trim();
        if !s.is_empty() {
            out.push((s.split(el).map(str::to_string).collect(), at + lead));
        }
        at += raw.len() + 1;
    }
    (out, comp)
}

fn el(seg: &[String], n: usize) -> String {
    seg.get(n).cloned().unwrap_or_default()
}

/// What one 837P claim should give, read from the file.
#[derive(Debug, Default, Clone)]
struct Claim {
    set: String,
    reference: String,
    id: String,
    charge: String,
    offset: usize,
    npi: String,
    member: String,
    last: String,
    first: String,
    dob: String,
    street: String,
    procedures: Vec<String>,
}

fn claims_of(bytes: &[u8]) -> Vec<Claim> {
    let (segs, comp) = segments(bytes);
    let mut out: Vec<Claim> = Vec::new();
    let mut ctx = Claim::default();
    let mut in_claim = false;
    let mut last_nm1 = String::new();
    // Billing providers by HL id, and each HL's parent, to find a claim's provider.
    let mut providers: std::collections::HashMap<String, String> = Default::default();
    let mut parents: std::collections::HashMap<String, String> = Default::default();
    let mut hl = String::new();
    for (e, offset) in segs {
        match e[0].as_str() {
            "ST" => {
                ctx = Claim { set: el(&e, 2), ..Default::default() };
                in_claim = false;
            }
            "BHT" => ctx.reference = el(&e, 3),
            "HL" => {
                hl = el(&e, 1);
                parents.insert(hl.clone(), el(&e, 2));
                if el(&e, 3) == "22" {
                    ctx.npi = providers.get(&el(&e, 2)).cloned().unwrap_or_default();
                }
                in_claim = false;
            }
            "NM1" => {
                last_nm1 = el(&e, 1);
                match last_nm1.as_str() {
                    "85" => {
                        providers.insert(hl.clone(), el(&e, 9));
                    }
                    "IL" => {
                        (ctx.last, ctx.first, ctx.member) = (el(&e, 3), el(&e, 4), el(&e, 9));
                        ctx.street.clear();
                        ctx.dob.clear();
                    }
                    _ => {}
                }
            }
            "N3" if last_nm1 == "IL" && !in_claim => ctx.street = el(&e, 1),
            "DMG" if !in_claim => ctx.dob = el(&e, 2),
            "CLM" => {
                in_claim = true;
                out.push(Claim { id: el(&e, 1), charge: el(&e, 2), offset, procedures: vec![], ..ctx.clone() });
            }
            "SV1" => {
                if let Some(c) = out.last_mut() {
                    c.procedures.push(el(&e, 1).split(comp).nth(1).unwrap_or("").to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// What one 835 claim payment should give.
#[derive(Debug, Default, Clone)]
struct Payment {
    trace: String,
    total: String,
    payee: String,
    id: String,
    paid: String,
    last: String,
    member: String,
    procedures: Vec<String>,
    /// CAS02 (reason) of each service line's adjustments.
    line_reasons: Vec<Vec<String>>,
}

fn payments_of(bytes: &[u8]) -> Vec<Payment> {
    let (segs, comp) = segments(bytes);
    let mut out: Vec<Payment> = Vec::new();
    let mut ctx = Payment::default();
    for (e, _) in segs {
        match e[0].as_str() {
            "BPR" => ctx = Payment { total: el(&e, 2), ..Default::default() },
            "TRN" => ctx.trace = el(&e, 2),
            "N1" if el(&e, 1) == "PE" => ctx.payee = el(&e, 2),
            "CLP" => out.push(Payment { id: el(&e, 1), paid: el(&e, 4), ..ctx.clone() }),
            "NM1" if el(&e, 1) == "QC" => {
                if let Some(p) = out.last_mut() {
                    (p.last, p.member) = (el(&e, 3), el(&e, 9));
                }
            }
            "SVC" => {
                if let Some(p) = out.last_mut() {
                    p.procedures.push(el(&e, 1).split(comp).nth(1).unwrap_or("").to_string());
                    p.line_reasons.push(Vec::new());
                }
            }
            "CAS" => {
                if let Some(line) = out.last_mut().and_then(|p| p.line_reasons.last_mut()) {
                    line.push(el(&e, 2));
                }
            }
            _ => {}
        }
    }
    out
}

fn num(v: &Value) -> f64 {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(f64::NAN)
}

/// Every claim row equals its claim's values from the file, masked as the policy says.
fn assert_claims(rows: &[Value], want: &[&Claim]) {
    assert_eq!(rows.len(), want.len(), "one row per claim");
    for (row, c) in rows.iter().zip(want) {
        assert_eq!(row["claim_id"], c.id, "{row}");
        assert_eq!(row["reference_id"], c.reference, "{row}");
        assert_eq!(num(&row["total_charge"]), c.charge.parse::<f64>().unwrap(), "{row}");
        assert_eq!(row["billing_provider"]["npi"], c.npi, "{row}");
        let procedures: Vec<&str> =
            row["service_lines"].as_array().unwrap().iter().map(|l| l["procedure_code"].as_str().unwrap()).collect();
        assert_eq!(procedures, c.procedures, "{row}");
        let masked = row["subscriber"]["member_id"].as_str().unwrap();
        assert!(masked != c.member && masked.ends_with(&c.member[c.member.len() - 4..]), "{row}");
        assert_eq!(row["subscriber"]["last_name"], "[REDACTED]", "{row}");
        assert_eq!(row["subscriber"]["dob"], c.dob[..4], "the birth year only: {row}");
    }
}

fn assert_payments(rows: &[Value], want: &[Payment]) {
    assert_eq!(rows.len(), want.len(), "one row per claim payment");
    for (row, p) in rows.iter().zip(want) {
        assert_eq!(row["claim_id"], p.id, "{row}");
        assert_eq!(row["trace_number"], p.trace, "{row}");
        assert_eq!(num(&row["payment"]["total"]), p.total.parse::<f64>().unwrap(), "{row}");
        assert_eq!(num(&row["paid_amount"]), p.paid.parse::<f64>().unwrap(), "{row}");
        assert_eq!(row["payee"]["name"], p.payee, "{row}");
        let procedures: Vec<&str> =
            row["service_lines"].as_array().unwrap().iter().map(|l| l["procedure_code"].as_str().unwrap()).collect();
        assert_eq!(procedures, p.procedures, "{row}");
        let reasons: Vec<Vec<&str>> = row["service_lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["adjustments"].as_array().unwrap().iter().map(|a| a["reason"].as_str().unwrap()).collect())
            .collect();
        assert_eq!(reasons, p.line_reasons, "each line's own adjustments: {row}");
        assert_eq!(row["patient"]["last_name"], "[REDACTED]", "{row}");
        let masked = row["patient"]["member_id"].as_str().unwrap();
        assert!(masked != p.member && masked.ends_with(&p.member[p.member.len() - 4..]), "{row}");
    }
}

/// No value of `phi` in the run's stdout, stderr or any file it wrote under `out`.
fn assert_no_phi(out: &std::process::Output, dir: &Path, phi: &[String]) {
    let mut texts = vec![("stdout".to_string(), text(&out.stdout)), ("stderr".to_string(), text(&out.stderr))];
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        texts.push((f.path().display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    for (what, t) in &texts {
        for v in phi {
            assert!(!t.contains(v.as_str()), "`{v}` (PHI from the data) in {what}");
        }
    }
}

fn claim_phi(claims: &[Claim]) -> Vec<String> {
    let mut phi = Vec::new();
    for c in claims {
        phi.extend([c.last.clone(), c.first.clone(), c.member.clone(), c.street.clone(), c.dob.clone()]);
        if c.dob.len() == 8 {
            phi.push(format!("{}-{}-{}", &c.dob[..4], &c.dob[4..6], &c.dob[6..]));
        }
    }
    phi.retain(|v| v.len() > 3);
    phi
}

#[test]
fn each_claim_and_each_claim_payment_is_one_record_with_its_context() {
    let dir = common::workspace("x12-each-run");
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    let data = dir.join("examples/x12-claims/data");
    let claims = claims_of(&std::fs::read(data.join("claims-837p.x12")).unwrap());
    let payments = payments_of(&std::fs::read(data.join("remits-835.x12")).unwrap());
    assert_eq!((claims.len(), payments.len()), (6, 4));
    // claims source: 6 claims (set 0002's 2 to the DLQ: its DMG02 is not a date) + the 2
    // remittance sets filtered; remits source: 4 claim payments + the 3 claim sets filtered,
    // the broken one too (it is the claims source's to reject: in the DLQ once, not twice).
    assert_eq!(counts(&summary), [15, 8, 2, 5], "{summary}");
    let delivered: Vec<&Claim> = claims.iter().filter(|c| c.set != "0002").collect();
    assert_claims(&lines(&dir.join(OUT).join("claims.jsonl")), &delivered);
    assert_payments(&lines(&dir.join(OUT).join("remittances.jsonl")), &payments);
    // The DLQ holds each claim of the broken set on its own, at the claim's offset.
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    let mine: Vec<&Value> = dlq.iter().filter(|e| e["source"] == "claims").collect();
    assert_eq!(mine.len(), dlq.len(), "only the claims source rejects the broken 837 set: {dlq:?}");
    let broken: Vec<u64> = claims.iter().filter(|c| c.set == "0002").map(|c| c.offset as u64).collect();
    assert_eq!(mine.iter().map(|e| e["offset"].as_u64().unwrap()).collect::<Vec<_>>(), broken, "{dlq:?}");
    assert!(mine.iter().all(|e| e["code"] == "RT140"), "{dlq:?}");
    let mut phi = claim_phi(&claims);
    for p in &payments {
        phi.extend([p.last.clone(), p.member.clone()]);
    }
    assert_no_phi(&out, &dir.join(OUT), &phi);
    // The plan says how the sources cut their sets.
    let plan = sluice(&dir, &["plan", PIPELINE, "--format", "json"]);
    let p: Value = serde_json::from_str(&text(&plan.stdout)).unwrap();
    let split = |name: &str| {
        let c = p["components"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone();
        c["x12"]["split"].clone()
    };
    assert_eq!(split("claims"), serde_json::json!([{"guide": "005010X222A1", "loops": ["2300"]}]), "{p}");
    assert_eq!(split("remits"), serde_json::json!([{"guide": "005010X221A1", "loops": ["2100"]}]), "{p}");
}

#[test]
fn synthetic_interchanges_give_one_record_per_clm_and_per_clp() {
    let dir = common::workspace("x12-each-synth");
    let fixtures = common::root().join("tests/fixtures/x12");
    let data = dir.join("examples/x12-claims/data");
    std::fs::remove_dir_all(&data).unwrap();
    common::copy_dir(&fixtures, &data);
    std::fs::remove_file(data.join("README.md")).unwrap();
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    let claims = claims_of(&std::fs::read(data.join("claims-60-837p.x12")).unwrap());
    let payments = payments_of(&std::fs::read(data.join("remits-40-835.x12")).unwrap());
    assert_eq!((claims.len(), payments.len()), (60, 40));
    // in = 60 claims + 40 claim payments + 9 + 7 sets of the other guide, filtered.
    assert_eq!(counts(&summary), [116, 100, 0, 16], "{summary}");
    assert_claims(&lines(&dir.join(OUT).join("claims.jsonl")), &claims.iter().collect::<Vec<_>>());
    assert_payments(&lines(&dir.join(OUT).join("remittances.jsonl")), &payments);
    assert_no_phi(&out, &dir.join(OUT), &claim_phi(&claims));
}

/// One interchange of one 837P set of `n` claims (a subscriber each) and one of one 835 set of
/// `n` claim payments, each set longer than the source's read limit (1 MiB), so each is read
/// in parts and cut in two passes.
fn long_sets(n: usize) -> (String, String) {
    let isa = |n: &str| {
        format!(
            "ISA*00*          *00*          *ZZ*SUBMITTER{n}   *ZZ*RECEIVER684    *240115*1030*^*00501*000000001*0*P*:~"
        )
    };
    let mut claims = format!(
        "{}GS*HC*SENDER*RECEIVER*20240115*1030*1*X*005010X222A1~ST*837*0001*005010X222A1~\
BHT*0019*00*474354*20240115*1030*CH~NM1*41*2*SUBMITTER CLINIC*****46*73370~PER*IC*BILLING DEPT*TE*5551234567~\
NM1*40*2*ACME CLEARINGHOUSE*****46*61033~HL*1**20*1~NM1*85*2*SPRINGFIELD MEDICAL GROUP*****XX*1234567893~\
N3*123 MAIN ST~N4*SPRINGFIELD*IL*62701~REF*EI*123456789~",
        isa("240")
    );
    let mut remits = format!(
        "{}GS*HP*SENDER*RECEIVER*20240115*1030*1*X*005010X221A1~ST*835*0001~\
BPR*I*1480.20*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*20240120~\
TRN*1*EFT4654038560*1512345678~DTM*405*20240118~N1*PR*ACME HEALTH PLAN~N3*1 INSURANCE WAY~\
N4*HARTFORD*CT*06103~PER*BL*EDI SUPPORT*TE*8005551234~N1*PE*SPRINGFIELD MEDICAL GROUP*XX*1234567893~LX*1~",
        isa("882")
    );
    for k in 0..n {
        claims.push_str(&format!(
            "HL*{}*1*22*0~SBR*P*18*******CI~NM1*IL*1*LASTNAME{k:05}*FIRSTNAME{k:05}****MI*M{k:08}~\
N3*{k} ELM STREETNAME~N4*SPRINGFIELD*IL*62701~DMG*D8*1984{:02}15*M~NM1*PR*2*ACME HEALTH PLAN*****PI*68042~\
CLM*PC{k:08}*{}***11:B:1*Y*A*Y*Y~HI*ABK:I10~LX*1~SV1*HC:99213*75*UN*1***1~DTP*472*D8*20240408~\
LX*2~SV1*HC:85025*{}*UN*1***1~DTP*472*D8*20240409~",
            k + 2,
            k % 12 + 1,
            75 + k % 100,
            k % 100,
        ));
        remits.push_str(&format!(
            "CLP*PR{k:08}*1*200*120.0*80.0*12*CN{k:010}*11*1~NM1*QC*1*PAYLAST{k:05}*PAYFIRST****MI*Q{k:08}~\
SVC*HC:99213*200*120.0~CAS*CO*45*80.0~"
        ));
    }
    let count = |s: &str| s[s.find("~ST*").unwrap()..].matches('~').count();
    claims += &format!("SE*{}*0001~GE*1*1~IEA*1*000000001~", count(&claims));
    remits += &format!("SE*{}*0001~GE*1*1~IEA*1*000000001~", count(&remits));
    (claims, remits)
}

#[test]
fn one_set_longer_than_the_read_limit_gives_one_record_per_claim_and_per_claim_payment() {
    let dir = common::workspace("x12-each-long-set");
    let data = dir.join("examples/x12-claims/data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let (claims_file, remits_file) = long_sets(8_000);
    let sizes = (claims_file.len(), remits_file.len());
    assert!(sizes.0 > 1 << 20 && sizes.1 > 1 << 20, "both sets are read in parts: {sizes:?}");
    std::fs::write(data.join("claims.x12"), &claims_file).unwrap();
    std::fs::write(data.join("remits.x12"), &remits_file).unwrap();
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    let claims = claims_of(claims_file.as_bytes());
    let payments = payments_of(remits_file.as_bytes());
    assert_eq!((claims.len(), payments.len()), (8_000, 8_000));
    // Each source filters the other's set (one record each).
    assert_eq!(counts(&summary), [16_002, 16_000, 0, 2], "{summary}");
    assert_claims(&lines(&dir.join(OUT).join("claims.jsonl")), &claims.iter().collect::<Vec<_>>());
    assert_payments(&lines(&dir.join(OUT).join("remittances.jsonl")), &payments);
    let mut phi = claim_phi(&claims);
    for p in &payments {
        phi.extend([p.last.clone(), p.member.clone()]);
    }
    assert_no_phi_by_words(&out, &dir.join(OUT), &phi);
}

/// [`assert_no_phi`] for many values over large outputs (56,000 values, 20 MB): a value can
/// only be in a text when each of its words is one of the text's words, so only those values
/// are searched for.
fn assert_no_phi_by_words(out: &std::process::Output, dir: &Path, phi: &[String]) {
    let mut texts = vec![("stdout".to_string(), text(&out.stdout)), ("stderr".to_string(), text(&out.stderr))];
    for f in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        texts.push((f.path().display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    let words_of = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
    };
    let phi: std::collections::BTreeSet<&String> = phi.iter().collect();
    for (what, t) in &texts {
        let words: std::collections::HashSet<String> = words_of(t).into_iter().collect();
        for v in &phi {
            if words_of(v).iter().all(|w| words.contains(w)) {
                assert!(!t.contains(v.as_str()), "`{v}` (PHI from the data) in {what}");
            }
        }
    }
}

#[test]
fn a_claim_that_fails_its_mapping_goes_to_the_dlq_alone() {
    let dir = common::workspace("x12-each-bad-claim");
    let file = dir.join("examples/x12-claims/data/claims-837p.x12");
    let original = std::fs::read_to_string(&file).unwrap();
    // The second claim of set 0001: a total charge that is not a number. Lenient, the guide
    // only warns; the mapping cannot fill the required `total_charge`.
    assert!(original.contains("CLM*PC07999533*795*"));
    std::fs::write(&file, original.replace("CLM*PC07999533*795*", "CLM*PC07999533*7X5*")).unwrap();
    let pipeline = dir.join(PIPELINE);
    let spec = std::fs::read_to_string(&pipeline).unwrap().replace("mode: strict", "mode: lenient");
    std::fs::write(&pipeline, spec).unwrap();
    let (out, summary) = runs::run(&dir, PIPELINE, CLOCK);
    let claims = claims_of(original.as_bytes());
    let bad = claims.iter().find(|c| c.id == "PC07999533").unwrap();
    let dlq = lines(&dir.join(OUT).join("dlq.jsonl"));
    let mine: Vec<&Value> = dlq.iter().filter(|e| e["source"] == "claims").collect();
    assert_eq!(mine.len(), 1, "the bad claim alone: {dlq:?}");
    assert_eq!(mine[0]["offset"].as_u64(), Some(bad.offset as u64), "at its own CLM: {dlq:?}");
    assert_eq!(mine[0]["stage"], "to_claims", "{dlq:?}");
    assert!(mine[0]["findings"].to_string().contains("total_charge"), "{dlq:?}");
    // Lenient: set 0002 (its DMG02 warns) is delivered too, so 5 of the 6 claims.
    let rows = lines(&dir.join(OUT).join("claims.jsonl"));
    let ids: Vec<&str> = rows.iter().map(|r| r["claim_id"].as_str().unwrap()).collect();
    let want: Vec<&str> = claims.iter().filter(|c| c.id != bad.id).map(|c| c.id.as_str()).collect();
    assert_eq!(ids, want, "{summary}");
    assert_no_phi(&out, &dir.join(OUT), &claim_phi(&claims));
}

#[test]
fn a_whole_set_replayed_into_a_per_claim_mapping_goes_to_the_dlq() {
    // A per-set pipeline sends its sets to the DLQ (a required field it cannot fill); it is
    // then changed to map per claim (the base pack's mapping) and the DLQ replayed: a whole set
    // cannot be cut any more, so it goes back to the DLQ with RT144 and how many claims it holds.
    let dir = common::workspace("x12-each-replay");
    let mapping = dir.join("examples/x12-claims/claim-set.yaml");
    let m =
        std::fs::read_to_string(&mapping).unwrap().replace("  reference_id: BHT-03", "  reference_id: 2300[3]/CLM-01");
    std::fs::write(&mapping, m).unwrap();
    let pipeline = dir.join("pipelines/x12-claim-sets.yaml");
    let spec = std::fs::read_to_string(&pipeline).unwrap() + "state:\n  path: ../out/x12-claim-sets/state.db\n";
    std::fs::write(&pipeline, &spec).unwrap();
    let (_, summary) = runs::run(&dir, "pipelines/x12-claim-sets.yaml", CLOCK);
    assert_eq!(counts(&summary), [5, 0, 3, 2], "{summary}");
    let per_claim = spec
        .replace("../examples/x12-claims/claim-set.yaml", "../mappings/base/x12-837p-claim.yaml")
        .replace("../examples/x12-claims/policy.yaml", "../mappings/base/policies/x12-claims.yaml");
    std::fs::write(&pipeline, per_claim).unwrap();
    let replay = sluice(&dir, &["dlq", "replay", "pipelines/x12-claim-sets.yaml"]);
    assert!(replay.status.success(), "{}{}", text(&replay.stdout), text(&replay.stderr));
    let dlq = lines(&dir.join("out/x12-claim-sets/dlq.jsonl"));
    let again: Vec<&Value> = dlq.iter().filter(|e| e["code"] == "RT144").collect();
    assert_eq!(again.len(), 2, "the two sets the mapping refused: {dlq:?}");
    assert!(
        again.iter().all(|e| e["reason"].as_str().unwrap().contains("holds 2 occurrences of loop 2300")),
        "{dlq:?}"
    );
}

/// The corpus's 837P and 835 fixtures (stupidedi's X222A1 and X221A1 `pass` files, read from
/// `../shared/corpus` when it is there): every file gives one record per CLM (per CLP), and a
/// set without one is one record in the DLQ; the runs balance.
#[test]
fn corpus_claims_and_payments_give_one_record_each() {
    let Some(dirs) = x12_corpus::folders(&[
        "stupidedi-fixtures/005010/X222A1 HC837 Health Care Claim Professional/pass",
        "stupidedi-fixtures/005010/X221A1 HP835 Health Care Claim Payment Advice/pass",
    ]) else {
        return;
    };
    let dir = common::workspace("x12-each-corpus");
    let input = dir.join("corpus");
    // Per source: its loop's occurrences (CLM; CLP), at least one a set.
    let occurrences = |key: &'static str| move |set: &[Vec<String>]| set.iter().filter(|e| e[0] == key).count();
    let (claims, want_claims) = x12_corpus::copy_counting(&dirs[..1], "c", &input, occurrences("CLM"));
    let (payments, want_payments) = x12_corpus::copy_counting(&dirs[1..], "p", &input, occurrences("CLP"));
    let (files, want) = (claims + payments, [want_claims, want_payments]);
    let pipeline = std::fs::read_to_string(dir.join(PIPELINE))
        .unwrap()
        .replacen("../examples/x12-claims/data/*.x12", "../corpus/c*.edi", 1)
        .replacen("../examples/x12-claims/data/*.x12", "../corpus/p*.edi", 1)
        .replace("mode: strict", "mode: lenient");
    std::fs::write(dir.join("pipelines/corpus.yaml"), pipeline).unwrap();
    let (_, summary) = runs::run(&dir, "pipelines/corpus.yaml", CLOCK);
    let per = |name: &str| {
        summary["per_source"].as_array().unwrap().iter().find(|s| s[0] == name).and_then(|s| s[1].as_u64()).unwrap()
    };
    let rows = lines(&dir.join(OUT).join("claims.jsonl")).len() + lines(&dir.join(OUT).join("remittances.jsonl")).len();
    eprintln!(
        "x12 corpus per claim: {files} files; records claims {} (want {}), remits {} (want {}); {rows} delivered, {} to the DLQ, {} filtered",
        per("claims"),
        want[0],
        per("remits"),
        want[1],
        summary["dlq"],
        summary["filtered"]
    );
    assert_eq!((per("claims") as usize, per("remits") as usize), (want[0], want[1]), "{summary}");
    assert!(rows > 0, "{summary}");
}
