//! Character set detection and decoding: BOMs, UTF-16 with and without BOM, MSH-18 for every
//! ISO-8859 part, lying senders overridden by the profile, undecodable bytes with their offset,
//! and arbitrary bytes never panicking.

use proptest::prelude::*;
use sluice_hl7v2::charset::{Charset, CharsetPolicy, DetectedBy, decode};
use sluice_hl7v2::codec::parse_message;

fn msg(msh18: &str, pid5: &[u8]) -> Vec<u8> {
    let mut m = format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1||||||{msh18}\rPID|1||1||").into_bytes();
    m.extend_from_slice(pid5);
    m
}

fn pid5(text: &str) -> String {
    let m = parse_message(text).unwrap();
    m.segments[1].fields[4].repetitions[0].components[0].subcomponents[0].to_string()
}

#[test]
fn every_8859_part_from_msh18() {
    for (part, byte, ch) in [
        (1, 0xE9, 'é'),
        (2, 0xB1, 'ą'),
        (3, 0xBB, 'ğ'),
        (4, 0xBB, 'ģ'),
        (5, 0xB0, 'А'),
        (6, 0xC7, 'ا'),
        (7, 0xC1, 'Α'),
        (8, 0xE0, 'א'),
        (9, 0xF0, 'ğ'),
        (9, 0xFD, 'ı'),
        (15, 0xA4, '€'),
    ] {
        let bytes = msg(&format!("8859/{part}"), &[b'X', byte, b'Y']);
        let d = decode(&bytes, &CharsetPolicy::Auto).unwrap_or_else(|e| panic!("8859/{part}: {e}"));
        assert_eq!(d.charset, Charset::Iso8859(part));
        assert_eq!(d.detected_by, DetectedBy::Msh18);
        assert_eq!(pid5(&d.text), format!("X{ch}Y"), "8859/{part} byte {byte:#x}");
        // The same part named by the profile decodes the same, whatever MSH-18 says.
        let lying = msg("UNICODE UTF-8", &[b'X', byte, b'Y']);
        let fixed = decode(&lying, &CharsetPolicy::Fixed(Charset::Iso8859(part))).unwrap();
        assert_eq!(pid5(&fixed.text), format!("X{ch}Y"));
        assert_eq!(fixed.detected_by, DetectedBy::Profile);
    }
}

#[test]
fn latin1_is_true_latin1_not_windows_1252() {
    let bytes = msg("8859/1", &[0x80, 0x93]);
    let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
    assert_eq!(pid5(&d.text), "\u{80}\u{93}");
    let w = decode(&bytes, &CharsetPolicy::Fixed(Charset::Windows1252)).unwrap();
    assert_eq!(pid5(&w.text), "€“");
}

#[test]
fn unicode_names_and_lies() {
    for name in ["UNICODE UTF-8", "UTF-8", "UTF8", "unicode utf-8", "UNICODE"] {
        let bytes = msg(name, "Zoë".as_bytes());
        let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
        assert_eq!((d.charset, pid5(&d.text).as_str()), (Charset::Utf8, "Zoë"), "{name}");
    }
    // Declared UTF-16, but the bytes were just read as ASCII: UTF-8.
    let bytes = msg("UNICODE UTF-16", b"A");
    let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
    assert_eq!(d.charset, Charset::Utf8);
    // No MSH-18: UTF-8.
    let bytes = msg("", "Zoë".as_bytes());
    let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
    assert_eq!((d.charset, d.detected_by), (Charset::Utf8, DetectedBy::Default));
}

#[test]
fn lying_msh18_overruled_by_utf8_evidence_or_by_the_profile() {
    // MSH-18 says Latin-1 but the bytes are multi-byte UTF-8: auto reads UTF-8.
    let bytes = msg("8859/1", "GARCÍA".as_bytes());
    let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
    assert_eq!((d.charset, d.detected_by), (Charset::Utf8, DetectedBy::Utf8Evidence));
    assert_eq!(pid5(&d.text), "GARCÍA");
    // A sender that says UTF-8 but sends Latin-2: the profile's fixed encoding wins.
    let bytes = msg("UNICODE UTF-8", &[b'K', 0xB3, b'o']);
    let e = decode(&bytes, &CharsetPolicy::Auto).unwrap_err();
    assert_eq!((e.code, e.offset), ("HL7011", bytes.len() - 2));
    let d = decode(&bytes, &CharsetPolicy::Fixed(Charset::Iso8859(2))).unwrap();
    assert_eq!(pid5(&d.text), "Kło");
    // Declared ASCII with a Latin-1 byte: an error at the byte, fixed by the profile.
    let bytes = msg("ASCII", &[b'A', 0xE9]);
    let e = decode(&bytes, &CharsetPolicy::Auto).unwrap_err();
    assert_eq!((e.code, e.offset), ("HL7011", bytes.len() - 1));
    assert!(e.message.contains(&format!("offset {}", bytes.len() - 1)));
    assert_eq!(pid5(&decode(&bytes, &CharsetPolicy::Fixed(Charset::Iso8859(1))).unwrap().text), "Aé");
}

#[test]
fn unsupported_msh18_is_an_error_at_the_field() {
    let bytes = msg("UNICODE UTF-32", b"A");
    let e = decode(&bytes, &CharsetPolicy::Auto).unwrap_err();
    assert_eq!(e.code, "HL7012");
    assert_eq!(&bytes[e.offset..e.offset + 7], b"UNICODE");
    // The profile decides instead.
    assert!(decode(&bytes, &CharsetPolicy::Fixed(Charset::Utf8)).is_ok());
}

#[test]
fn undecodable_bytes_give_their_offset() {
    let cases: &[(CharsetPolicy, &[u8], usize)] = &[
        (CharsetPolicy::Fixed(Charset::Utf8), b"MSH|^~\\&|\xC3(", 9),
        (CharsetPolicy::Fixed(Charset::Ascii), b"MSH|^~\\&|ab\x80", 11),
        (CharsetPolicy::Fixed(Charset::Iso8859(3)), b"MSH|^~\\&|\xA5", 9),
        (CharsetPolicy::Fixed(Charset::Iso8859(7)), b"MSH|^~\\&|ab\xD2", 11),
        (CharsetPolicy::Fixed(Charset::Iso8859(8)), b"MSH|^~\\&|\xA1", 9),
    ];
    for (policy, bytes, at) in cases {
        let e = decode(bytes, policy).unwrap_err();
        assert_eq!((e.code, e.offset), ("HL7011", *at), "{policy:?}");
    }
}

fn utf16(text: &str, le: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(if le { b"\xFF\xFE" } else { b"\xFE\xFF" });
    }
    for u in text.encode_utf16() {
        out.extend_from_slice(&if le { u.to_le_bytes() } else { u.to_be_bytes() });
    }
    out
}

#[test]
fn utf16_with_and_without_bom() {
    let text = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1||||||UNICODE UTF-16\rPID|1||1||Zoë 𝄞";
    for (le, bom) in [(true, true), (false, true), (true, false), (false, false)] {
        let bytes = utf16(text, le, bom);
        let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
        assert_eq!(d.charset, if le { Charset::Utf16Le } else { Charset::Utf16Be });
        assert_eq!(d.detected_by, if bom { DetectedBy::ByteOrderMark } else { DetectedBy::NulPattern });
        assert_eq!(d.text, text);
        assert_eq!(pid5(&d.text), "Zoë 𝄞");
        // Offsets map back to the bytes: PID starts at unit 68 (+ the BOM).
        let pid = d.text.find("PID").unwrap();
        assert_eq!(d.source_offset(pid), usize::from(bom) * 2 + 2 * pid);
        let fixed = decode(&bytes, &CharsetPolicy::Utf16).unwrap();
        assert_eq!(fixed.text, text);
    }
    // A lone surrogate and an odd trailing byte are errors at their offset.
    let mut bad = utf16("MSH|", true, true);
    bad.extend_from_slice(&[0x00, 0xD8, b'A', 0]);
    let e = decode(&bad, &CharsetPolicy::Auto).unwrap_err();
    assert_eq!((e.code, e.offset), ("HL7011", 10));
    let mut odd = utf16("MSH|", false, true);
    odd.push(0x41);
    let e = decode(&odd, &CharsetPolicy::Auto).unwrap_err();
    assert_eq!((e.code, e.offset), ("HL7011", 10));
}

#[test]
fn utf8_bom_is_kept_in_text_and_detected() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(msg("8859/1", "ë".as_bytes()));
    let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
    assert_eq!((d.charset, d.detected_by), (Charset::Utf8, DetectedBy::ByteOrderMark));
    assert_eq!(pid5(&d.text), "ë");
    assert_eq!(d.source_offset(d.text.find("PID").unwrap()), bytes.windows(3).position(|w| w == b"PID").unwrap());
}

#[test]
fn single_byte_offsets_map_back() {
    let bytes = msg("8859/1", &[0xE9, 0xE9, b'|', b'Z']);
    let d = decode(&bytes, &CharsetPolicy::Auto).unwrap();
    let z = d.text.rfind('Z').unwrap();
    assert_eq!(d.source_offset(z), bytes.len() - 1);
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), head in 0usize..4) {
        let mut input = match head {
            0 => Vec::new(),
            1 => b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X|P|2.5||||||".to_vec(),
            2 => b"\xFF\xFE".to_vec(),
            _ => b"\xEF\xBB\xBF".to_vec(),
        };
        input.extend_from_slice(&bytes);
        for policy in [
            CharsetPolicy::Auto,
            CharsetPolicy::Utf16,
            CharsetPolicy::Fixed(Charset::Utf8),
            CharsetPolicy::Fixed(Charset::Ascii),
            CharsetPolicy::Fixed(Charset::Iso8859(3)),
            CharsetPolicy::Fixed(Charset::Gb18030),
            CharsetPolicy::Fixed(Charset::Utf16Be),
        ] {
            match decode(&input, &policy) {
                Ok(d) => {
                    let _ = d.source_offset(d.text.len() / 2);
                }
                Err(e) => prop_assert!(e.offset <= input.len()),
            }
        }
    }
}
