//! Properties of cutting sets at a repeating loop (`sluice_x12::cut`), over generated 837P and
//! 835 interchanges of random shape (billing providers, subscribers, claims, service lines;
//! header numbers, claim payments, service payments): one part per `CLM` (per `CLP`), in order,
//! each holding exactly its own claim with its own subscriber and billing provider, each a set
//! the guide reads without a finding the whole set did not have. Arbitrary bytes never panic.

use proptest::prelude::*;
use sluice_x12::codec::{self, Delimiters};
use sluice_x12::cut::{cut, occurrences};
use sluice_x12::loops::identify;
use sluice_x12::split::{Item, Splitter};

/// An 837P set: for each billing provider, its subscribers, each with its claims' line counts.
fn set_837(shape: &[Vec<Vec<usize>>]) -> (String, Vec<(String, String, String)>) {
    let mut s = String::from(
        "ST*837*0001*005010X222A1~BHT*0019*00*REF1*20240101*1200*CH~NM1*41*2*SUBMITTER*****46*S1~PER*IC*JANE*TE*5555551212~NM1*40*2*RECEIVER*****46*R1~",
    );
    let mut claims = Vec::new();
    let mut hl = 0;
    for (b, subscribers) in shape.iter().enumerate() {
        hl += 1;
        let parent = hl;
        s.push_str(&format!(
            "HL*{hl}**20*1~NM1*85*2*PROVIDER{b}*****XX*10000000{b:02}~N3*1 MAIN ST~N4*TOWN*NY*10001~REF*EI*12345678{b}~"
        ));
        for (m, lines) in subscribers.iter().enumerate() {
            hl += 1;
            s.push_str(&format!(
                "HL*{hl}*{parent}*22*0~SBR*P*18*******CI~NM1*IL*1*LAST{b}X{m}*FIRST****MI*M{b}X{m}~NM1*PR*2*PAYER*****PI*P1~"
            ));
            for (c, &n) in lines.iter().enumerate() {
                let id = format!("C{b}X{m}X{c}");
                s.push_str(&format!("CLM*{id}*{}***11:B:1*Y*A*Y*Y~HI*ABK:J449~", 10 * n));
                for l in 0..n {
                    s.push_str(&format!("LX*{}~SV1*HC:9921{l}*10*UN*1***1~DTP*472*D8*20240101~", l + 1));
                }
                claims.push((id, format!("LAST{b}X{m}"), format!("PROVIDER{b}")));
            }
        }
    }
    let count = s.matches('~').count() + 1;
    s.push_str(&format!("SE*{count}*0001~"));
    (s, claims)
}

/// An 835 set: for each header number (LX), its claim payments' service counts.
fn set_835(shape: &[Vec<usize>]) -> (String, Vec<String>) {
    let mut s = String::from(
        "ST*835*0001*005010X221A1~BPR*I*100*C*ACH*CCP*01*999999999*DA*123456*1512345678**01*999988880*DA*98765*20240120~TRN*1*EFT1*1512345678~N1*PR*PAYER~N3*1 WAY~N4*TOWN*CT*06103~PER*BL*EDI*TE*8005551234~N1*PE*PAYEE*XX*1234567893~",
    );
    let mut claims = Vec::new();
    for (h, payments) in shape.iter().enumerate() {
        s.push_str(&format!("LX*{}~", h + 1));
        for (p, &n) in payments.iter().enumerate() {
            let id = format!("P{h}X{p}");
            s.push_str(&format!("CLP*{id}*1*20*20*0*12*CN1*11*1~NM1*QC*1*LAST*FIRST****MI*M1~"));
            for _ in 0..n {
                s.push_str("SVC*HC:99213*10*10~");
            }
            claims.push(id);
        }
    }
    let count = s.matches('~').count() + 1;
    s.push_str(&format!("SE*{count}*0001~"));
    (s, claims)
}

fn elements(bytes: &[u8], id: &str, n: usize) -> Vec<String> {
    codec::segments(bytes, Delimiters::default(), 0)
        .filter(|s| s.id() == id.as_bytes())
        .map(|s| s.element_str(n).to_string())
        .collect()
}

fn check_cut(text: &str, guide: &str, loop_id: &str, key: &str) -> Result<Vec<Vec<u8>>, TestCaseError> {
    let guide = sluice_x12::guide::by_id(guide).expect("bundled");
    let segs: Vec<_> = codec::segments(text.as_bytes(), Delimiters::default(), 0).collect();
    let whole = identify(guide, segs, true);
    prop_assert!(whole.findings.is_empty(), "the generated set is valid: {:?}", whole.findings);
    let parts = cut(&whole, loop_id);
    let keys = elements(text.as_bytes(), key, 1);
    prop_assert_eq!(parts.len(), keys.len(), "one part per {}", key);
    let mut out = Vec::new();
    for (part, k) in parts.iter().zip(&keys) {
        prop_assert_eq!(elements(&part.bytes, key, 1), vec![k.clone()]);
        prop_assert_eq!(elements(&part.bytes, "SE", 1), vec![part.segment_count.to_string()]);
        let segs: Vec<_> = codec::segments(&part.bytes, Delimiters::default(), 0).collect();
        let again = identify(guide, segs, true);
        prop_assert!(again.findings.is_empty(), "a part reads alone: {:?}", again.findings);
        prop_assert_eq!(occurrences(&again, loop_id).len(), 1);
        out.push(part.bytes.clone());
    }
    Ok(out)
}

fn lines() -> impl Strategy<Value = usize> {
    1usize..4
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn an_837p_gives_one_part_per_clm_with_its_own_context(
        shape in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(lines(), 0..4), 1..4),
            1..4,
        )
    ) {
        let (text, claims) = set_837(&shape);
        let parts = check_cut(&text, "005010X222A1", "2300", "CLM")?;
        prop_assert_eq!(parts.len(), claims.len());
        for (part, (id, subscriber, provider)) in parts.iter().zip(&claims) {
            prop_assert_eq!(&elements(part, "CLM", 1), &vec![id.clone()]);
            let names = elements(part, "NM1", 3);
            // Its own subscriber and billing provider, and no one else's.
            prop_assert_eq!(names.iter().filter(|n| n.starts_with("LAST")).collect::<Vec<_>>(), vec![subscriber]);
            prop_assert_eq!(names.iter().filter(|n| n.starts_with("PROVIDER")).collect::<Vec<_>>(), vec![provider]);
        }
    }

    #[test]
    fn an_835_gives_one_part_per_clp_with_the_payment(
        shape in proptest::collection::vec(proptest::collection::vec(0usize..3, 1..4), 1..4)
    ) {
        let (text, claims) = set_835(&shape);
        let parts = check_cut(&text, "005010X221A1", "2100", "CLP")?;
        prop_assert_eq!(parts.len(), claims.len());
        for part in &parts {
            prop_assert_eq!(elements(part, "TRN", 2), vec!["EFT1".to_string()]);
            prop_assert_eq!(elements(part, "BPR", 2), vec!["100".to_string()]);
            prop_assert_eq!(elements(part, "LX", 1).len(), 1);
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_header_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut input = b"ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*1200*^*00501*000000001*0*T*:~GS*HC*A*B*20240101*1200*1*X*005010X222A1~ST*837*0001*005010X222A1~HL*1**20*1~HL*2*1*22*0~CLM*A*1~".to_vec();
        input.extend_from_slice(&bytes);
        let guide = sluice_x12::guide::by_id("005010X222A1").expect("bundled");
        for item in Splitter::new(&input[..]).flatten() {
            if let Item::Set(s) = item {
                let id = identify(guide, s.segments().collect(), s.closed);
                for l in ["2300", "2000B", "2400", "2010BA"] {
                    let _ = cut(&id, l);
                }
            }
        }
    }
}
