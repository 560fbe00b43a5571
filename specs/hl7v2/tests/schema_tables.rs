//! Checks of the bundled HL7 v2 schema tables through the public API: every required segment
//! in every version, the fields the compiler relies on, datatypes that resolve, and PHI classes
//! on every identifying field (data-driven, so a forgotten class fails here).

use sluice_hl7v2::schema::{self, Schema, Version};
use sluice_spec_core::PhiClass;

/// Segments every version must define.
const REQUIRED_SEGMENTS: &[&str] = &[
    "MSH", "EVN", "PID", "PD1", "NK1", "PV1", "PV2", "MRG", "ORC", "OBR", "OBX", "NTE", "AL1", "DG1", "PR1", "IN1",
    "GT1", "TXA", "SCH", "AIS", "RGS", "MSA", "ERR", "FHS", "FTS", "BHS", "BTS", "DSC",
];

/// Segments that exist only in some versions: `(id, first version, last version)`.
const VERSION_LIMITED_SEGMENTS: &[(&str, Version, Version)] = &[
    ("SFT", Version::V2_5, Version::V2_8),
    ("SPM", Version::V2_5, Version::V2_8),
    ("TQ1", Version::V2_5, Version::V2_8),
    ("QRD", Version::V2_3, Version::V2_4),
];

fn all() -> impl Iterator<Item = &'static Schema> {
    Version::ALL.into_iter().map(schema::schema)
}

fn field(s: &Schema, seg: &str, seq: usize) -> &'static schema::FieldDef {
    let s: &'static Schema = schema::schema(s.version());
    s.segment(seg)
        .unwrap_or_else(|| panic!("v{}: no segment {seg}", s.version()))
        .field(seq)
        .unwrap_or_else(|| panic!("v{}: no field {seg}-{seq}", s.version()))
}

#[test]
fn every_version_parses_and_reports_its_version() {
    for v in Version::ALL {
        let s = schema::schema(v);
        assert_eq!(s.version(), v);
        assert!(s.segment_ids().count() >= REQUIRED_SEGMENTS.len());
        // Built once: the same instance every time.
        assert!(std::ptr::eq(s, schema::schema(v)));
    }
}

#[test]
fn required_segments_exist_in_every_version() {
    for s in all() {
        for id in REQUIRED_SEGMENTS {
            let seg = s.segment(id).unwrap_or_else(|| panic!("v{}: missing segment {id}", s.version()));
            assert_eq!(seg.id, *id);
            assert!(!seg.name.is_empty());
            assert!(!seg.fields.is_empty(), "v{}: {id} has no fields", s.version());
        }
    }
}

#[test]
fn version_limited_segments_exist_exactly_in_their_range() {
    for s in all() {
        for (id, since, until) in VERSION_LIMITED_SEGMENTS {
            let expected = *since <= s.version() && s.version() <= *until;
            assert_eq!(s.segment(id).is_some(), expected, "v{}: segment {id} presence", s.version());
        }
    }
}

#[test]
fn segment_ids_are_sorted_and_unique() {
    for s in all() {
        let ids: Vec<&str> = s.segment_ids().collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "v{}", s.version());
    }
}

#[test]
fn field_and_component_numbers_are_contiguous_from_one() {
    for s in all() {
        for id in s.segment_ids() {
            let seg = s.segment(id).unwrap();
            for (i, f) in seg.fields.iter().enumerate() {
                assert_eq!(f.seq, i + 1, "v{}: {id} field order", s.version());
                assert!(!f.name.is_empty(), "v{}: {id}-{} unnamed", s.version(), f.seq);
            }
        }
        for id in s.datatype_ids() {
            let dt = s.datatype(id).unwrap();
            for (i, c) in dt.components.iter().enumerate() {
                assert_eq!(c.seq, i + 1, "v{}: {id} component order", s.version());
            }
        }
    }
}

#[test]
fn every_referenced_datatype_is_defined_in_its_version() {
    for s in all() {
        for id in s.segment_ids() {
            for f in &s.segment(id).unwrap().fields {
                assert!(
                    s.datatype(&f.datatype).is_some(),
                    "v{}: {id}-{} uses undefined {}",
                    s.version(),
                    f.seq,
                    f.datatype
                );
            }
        }
        for id in s.datatype_ids() {
            for c in &s.datatype(id).unwrap().components {
                assert!(
                    s.datatype(&c.datatype).is_some(),
                    "v{}: {id}.{} uses undefined {}",
                    s.version(),
                    c.seq,
                    c.datatype
                );
            }
        }
    }
}

#[test]
fn required_datatypes_are_defined_in_every_version() {
    const PRIMITIVE: &[&str] = &["ST", "TX", "FT", "ID", "IS", "NM", "SI", "DT", "TM", "DTM"];
    const COMPOSITE: &[&str] = &[
        "TS", "HD", "EI", "CX", "XPN", "XAD", "XTN", "XCN", "XON", "CE", "CWE", "CNE", "CF", "PL", "PT", "CQ", "FN",
        "DLN", "JCC", "FC", "EIP", "DR", "TQ", "MO", "SN", "ED", "RP", "CP", "CM", "OSD", "PPN",
    ];
    for s in all() {
        for id in PRIMITIVE {
            let dt = s.datatype(id).unwrap_or_else(|| panic!("v{}: {id}", s.version()));
            assert!(dt.is_primitive(), "v{}: {id} should be primitive", s.version());
        }
        for id in COMPOSITE {
            let dt = s.datatype(id).unwrap_or_else(|| panic!("v{}: {id}", s.version()));
            assert!(!dt.is_primitive(), "v{}: {id} should be composite", s.version());
        }
    }
    // Types introduced along the way.
    let since = |id: &str, first: Version| {
        for s in all() {
            assert_eq!(s.datatype(id).is_some(), s.version() >= first, "v{}: {id}", s.version());
        }
    };
    since("MSG", Version::V2_5);
    since("ERL", Version::V2_5);
    since("PRL", Version::V2_5);
    since("SAD", Version::V2_4);
    since("NDL", Version::V2_4);
    since("ELD", Version::V2_4);
    since("DLD", Version::V2_4);
    since("SPS", Version::V2_4);
    since("VID", Version::V2_3_1);
}

#[test]
fn composite_components_reference_their_datatypes() {
    for s in all() {
        let comp = |dt: &str, seq: usize| {
            s.datatype(dt)
                .and_then(|d| d.component(seq))
                .unwrap_or_else(|| panic!("v{}: {dt}.{seq}", s.version()))
                .datatype
                .clone()
        };
        assert_eq!(comp("XPN", 1), "FN");
        assert_eq!(comp("XCN", 2), "FN");
        assert_eq!(comp("CX", 4), "HD");
        assert_eq!(comp("CX", 6), "HD");
        assert_eq!(comp("EIP", 1), "EI");
        assert_eq!(comp("TQ", 1), "CQ");
        assert_eq!(comp("CP", 1), "MO");
        assert_eq!(comp("TS", 1), "DTM");
        let pl1 = comp("PL", 1);
        if s.version() >= Version::V2_7 {
            assert_eq!(pl1, "HD");
        } else {
            assert_eq!(pl1, "IS");
        }
        if s.version() >= Version::V2_4 {
            assert_eq!(comp("XAD", 1), "SAD");
        }
    }
}

#[test]
fn subcomponent_paths_resolve() {
    // PID-5.1.1: patient name, family name, surname.
    for s in all() {
        let pid5 = field(s, "PID", 5);
        let xpn = s.datatype(&pid5.datatype).unwrap();
        let fam = xpn.component(1).unwrap();
        let fn_ = s.datatype(&fam.datatype).unwrap();
        let surname = fn_.component(1).unwrap();
        assert_eq!(surname.datatype, "ST", "v{}", s.version());
        // PID-3.4.1: identifier list, assigning authority, namespace id.
        let cx = s.datatype(&field(s, "PID", 3).datatype).unwrap();
        let hd = s.datatype(&cx.component(4).unwrap().datatype).unwrap();
        assert_eq!(hd.id, "HD");
        assert_eq!(hd.component(1).unwrap().name, "Namespace ID");
    }
}

#[test]
fn pid_fields_the_compiler_relies_on() {
    for s in all() {
        let v = s.version();
        let pid3 = field(s, "PID", 3);
        assert_eq!(pid3.datatype, "CX", "v{v}");
        assert!(pid3.repeating, "v{v}: PID-3 repeats");
        assert!(pid3.required, "v{v}: PID-3 required");
        assert_eq!(pid3.phi, Some(PhiClass::Mrn), "v{v}");

        let pid5 = field(s, "PID", 5);
        assert_eq!(pid5.name, "Patient Name");
        assert_eq!(pid5.datatype, "XPN", "v{v}");
        assert_eq!(pid5.phi, Some(PhiClass::Name), "v{v}");

        let pid7 = field(s, "PID", 7);
        assert_eq!(pid7.phi, Some(PhiClass::Dob), "v{v}");
        let expected = if v >= Version::V2_7 { "DTM" } else { "TS" };
        assert_eq!(pid7.datatype, expected, "v{v}");

        let pid8 = field(s, "PID", 8);
        assert_eq!(pid8.table, Some(1), "v{v}");

        let pid19 = field(s, "PID", 19);
        assert_eq!(pid19.phi, Some(PhiClass::Ssn), "v{v}");
        assert_eq!(pid19.withdrawn, v >= Version::V2_7, "v{v}: PID-19 withdrawn");

        let expected = [
            (2, PhiClass::Mrn),
            (4, PhiClass::Mrn),
            (6, PhiClass::Name),
            (9, PhiClass::Name),
            (11, PhiClass::Address),
            (12, PhiClass::Address),
            (13, PhiClass::Phone),
            (14, PhiClass::Phone),
            (18, PhiClass::AccountNumber),
            (20, PhiClass::LicenseNumber),
            (21, PhiClass::OtherId),
            (23, PhiClass::Address),
            (29, PhiClass::Date),
        ];
        for (seq, class) in expected {
            assert_eq!(field(s, "PID", seq).phi, Some(class), "v{v}: PID-{seq}");
        }
    }
    assert!(schema::schema(Version::V2_3).segment("PID").unwrap().field(31).is_none());
    assert!(schema::schema(Version::V2_7).segment("PID").unwrap().field(40).is_some());
}

#[test]
fn other_classified_fields() {
    use PhiClass::*;
    let expected: &[(&str, usize, PhiClass)] = &[
        ("NK1", 2, Name),
        ("NK1", 4, Address),
        ("NK1", 5, Phone),
        ("NK1", 16, Dob),
        ("NK1", 37, Ssn),
        ("PV1", 19, AccountNumber),
        ("PV1", 44, Date),
        ("PV1", 45, Date),
        ("PV1", 50, OtherId),
        ("MRG", 1, Mrn),
        ("MRG", 3, AccountNumber),
        ("MRG", 7, Name),
        ("GT1", 3, Name),
        ("GT1", 5, Address),
        ("GT1", 6, Phone),
        ("GT1", 8, Dob),
        ("GT1", 12, Ssn),
        ("IN1", 16, Name),
        ("IN1", 18, Dob),
        ("IN1", 19, Address),
        ("IN1", 36, HealthPlanId),
        ("IN1", 49, HealthPlanId),
        ("EVN", 2, Date),
        ("OBR", 7, Date),
        ("OBX", 14, Date),
        ("DG1", 5, Date),
        ("PR1", 5, Date),
        ("AL1", 6, Date),
        ("TXA", 4, Date),
        ("SCH", 11, Date),
    ];
    for s in all() {
        for (seg, seq, class) in expected {
            assert_eq!(field(s, seg, *seq).phi, Some(*class), "v{}: {seg}-{seq}", s.version());
        }
        // Not patient PHI: facilities, providers, clinical values.
        for (seg, seq) in [("PD1", 3), ("PV1", 7), ("OBX", 5), ("OBR", 16), ("MSH", 4)] {
            assert_eq!(field(s, seg, seq).phi, None, "v{}: {seg}-{seq}", s.version());
        }
    }
}

/// Fields of the person segments whose names mention one of these words must carry a class.
const PHI_KEYWORDS: &[&str] = &["name", "address", "phone", "birth", "ssn", "social security", "number"];

/// Deliberate exceptions to `PHI_KEYWORDS`, each with its reason.
const NOT_PHI: &[(&str, usize, &str)] = &[
    ("PID", 24, "multiple birth indicator is a yes/no flag, not an identifier"),
    ("PID", 25, "birth order is a small ordinal, not an identifier"),
    ("IN1", 4, "the payer's name is an organisation"),
    ("IN1", 5, "the payer's address is an organisation's"),
    ("IN1", 7, "the payer's phone number is an organisation's"),
    ("IN1", 9, "the plan's group name is an organisation"),
    ("IN1", 11, "the employer group's name is an organisation"),
    ("GT1", 51, "the guarantor employer's organisation name is an organisation"),
];

#[test]
fn phi_keywords_are_classified() {
    let mut missing = Vec::new();
    for s in all() {
        for seg_id in ["PID", "NK1", "GT1", "IN1", "MRG"] {
            let seg = s.segment(seg_id).unwrap();
            for f in &seg.fields {
                let name = f.name.to_lowercase();
                let mentions = PHI_KEYWORDS.iter().any(|k| name.contains(k));
                let exempt = NOT_PHI.iter().any(|(id, seq, _)| *id == seg_id && *seq == f.seq);
                if mentions && !exempt && f.phi.is_none() {
                    missing.push(format!("v{} {seg_id}-{} {}", s.version(), f.seq, f.name));
                }
            }
        }
    }
    assert!(missing.is_empty(), "fields without a PHI class: {missing:#?}");
}

#[test]
fn phi_exceptions_still_name_real_fields() {
    // An exception for a field that no longer matches a keyword is dead weight: drop it.
    let s = schema::schema(Version::V2_5);
    for (seg, seq, reason) in NOT_PHI {
        let f = field(s, seg, *seq);
        let name = f.name.to_lowercase();
        assert!(PHI_KEYWORDS.iter().any(|k| name.contains(k)), "{seg}-{seq} ({reason}) no longer needs an exception");
        assert_eq!(f.phi, None, "{seg}-{seq} is classed; drop the exception");
    }
}

#[test]
fn msh_9_message_type_components_resolve() {
    for s in all() {
        let v = s.version();
        let msh9 = field(s, "MSH", 9);
        assert!(msh9.datatype == "MSG" || msh9.datatype.starts_with("CM"), "v{v}: MSH-9 is {}", msh9.datatype);
        let dt = s.datatype(&msh9.datatype).unwrap();
        assert_eq!(dt.component(1).unwrap().datatype, "ID", "v{v}");
        assert_eq!(dt.component(2).unwrap().name, "Trigger Event", "v{v}");
        assert_eq!(dt.component(3).is_some(), v >= Version::V2_3_1, "v{v}");
        if v >= Version::V2_5 {
            assert_eq!(msh9.datatype, "MSG");
            assert_eq!(dt.component(1).unwrap().name, "Message Code");
        }
        assert!(msh9.required);
        assert_eq!(field(s, "MSH", 10).name, "Message Control ID");
        let msh12 = field(s, "MSH", 12);
        let expected = if v >= Version::V2_3_1 { "VID" } else { "ID" };
        assert_eq!(msh12.datatype, expected, "v{v}");
    }
}

#[test]
fn obx_5_exists_and_is_variable() {
    for s in all() {
        let obx5 = field(s, "OBX", 5);
        assert_eq!(obx5.name, "Observation Value");
        assert_eq!(obx5.datatype, "varies");
        assert!(obx5.repeating);
        assert_eq!(obx5.phi, None);
        assert_eq!(field(s, "OBX", 3).name, "Observation Identifier");
        assert!(field(s, "OBX", 11).required);
    }
}

#[test]
fn common_field_names_and_types() {
    let checks: &[(&str, usize, &str, &str)] = &[
        ("EVN", 2, "Recorded Date/Time", ""),
        ("PV1", 2, "Patient Class", ""),
        ("PV1", 3, "Assigned Patient Location", "PL"),
        ("PV1", 7, "Attending Doctor", "XCN"),
        ("PV1", 19, "Visit Number", "CX"),
        ("NK1", 2, "Name", "XPN"),
        ("NK1", 4, "Address", "XAD"),
        ("ORC", 1, "Order Control", "ID"),
        ("ORC", 2, "Placer Order Number", "EI"),
        ("OBR", 4, "Universal Service Identifier", ""),
        ("OBR", 16, "Ordering Provider", "XCN"),
        ("OBX", 2, "Value Type", "ID"),
        ("OBX", 6, "Units", ""),
        ("NTE", 3, "Comment", "FT"),
        ("MSA", 1, "Acknowledgment Code", "ID"),
        ("MSA", 2, "Message Control ID", "ST"),
        ("IN1", 3, "Insurance Company ID", "CX"),
        ("GT1", 3, "Guarantor Name", "XPN"),
        ("TXA", 12, "Unique Document Number", "EI"),
        ("SCH", 1, "Placer Appointment ID", "EI"),
        ("AIS", 3, "Universal Service Identifier", ""),
        ("RGS", 1, "Set ID - RGS", "SI"),
        ("FHS", 1, "File Field Separator", "ST"),
        ("BHS", 11, "Batch Control ID", "ST"),
        ("BTS", 1, "Batch Message Count", "ST"),
        ("FTS", 1, "File Batch Count", "NM"),
        ("DSC", 1, "Continuation Pointer", "ST"),
    ];
    for s in all() {
        for (seg, seq, name, dt) in checks {
            let f = field(s, seg, *seq);
            assert_eq!(f.name, *name, "v{}: {seg}-{seq}", s.version());
            if !dt.is_empty() {
                assert_eq!(f.datatype, *dt, "v{}: {seg}-{seq}", s.version());
            }
        }
    }
}

#[test]
fn v27_replaces_ce_ts_and_is_in_fields() {
    for v in [Version::V2_7, Version::V2_8] {
        let s = schema::schema(v);
        for id in s.segment_ids() {
            for f in &s.segment(id).unwrap().fields {
                assert!(
                    !matches!(f.datatype.as_str(), "CE" | "TS" | "IS"),
                    "v{v}: {id}-{} is still {}",
                    f.seq,
                    f.datatype
                );
            }
        }
    }
    let s = schema::schema(Version::V2_6);
    assert_eq!(field(s, "OBX", 3).datatype, "CE");
    assert_eq!(field(s, "MSH", 7).datatype, "TS");
}

#[test]
fn value_types_follow_datatypes() {
    use sluice_spec_core::ValueType;
    assert_eq!(schema::value_type("TS"), ValueType::DateTime);
    assert_eq!(schema::value_type("DT"), ValueType::Date);
    assert_eq!(schema::value_type("SI"), ValueType::Integer);
    assert_eq!(schema::value_type("CX"), ValueType::Struct);
    assert_eq!(schema::value_type("unknown"), ValueType::String);
}
