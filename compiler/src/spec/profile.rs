//! Parser profiles (`kind: profile`): how to read one sender's HL7 v2 messages.
//!
//! Invariants: every value the reader accepts is one the runtime understands (`encoding` is
//! checked against `shape::ENCODINGS`, each of which `sluice_hl7v2::charset::CharsetPolicy`
//! reads; a test holds them together); a key left out takes the documented default
//! (`encoding: auto`, `unexpected_segments: fail`, `timezone: +00:00`, every separator,
//! `encoding_characters: strict`, `bad_segments: reject`); `encoding_characters` and
//! `bad_segments` values are the codec's `EncodingCharacters::NAMES` and `BadSegments::NAMES`
//! (a test holds them together).

use sluice_hl7v2::schema::{self, Version};
use sluice_spec_core::PhiClass;

use super::reader::{self, Cx};
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::{ProfilePlan, ZFieldPlan, ZSegmentPlan};
use crate::yaml::{Node, Value};

/// The profile used by a source that names none: the HL7 version most mappings are written
/// against, every version accepted, character set detected (`auto`), any separator, unknown
/// segments kept.
pub fn default_profile() -> ProfilePlan {
    ProfilePlan {
        name: "default".into(),
        version: "2.5.1".into(),
        accept_versions: Version::ALL.iter().map(|v| v.as_str().to_string()).collect(),
        encoding: "auto".into(),
        segment_terminators: shape::SEGMENT_TERMINATORS.iter().map(|s| s.to_string()).collect(),
        unexpected_segments: "parse".into(),
        timezone: "+00:00".into(),
        z_segments: vec![],
        encoding_characters: "strict".into(),
        bad_segments: "reject".into(),
    }
}

/// Reads an HL7 version, reporting SL401 with the list of bundled versions.
pub fn version(cx: &mut Cx, node: &Node, what: &str) -> Option<Version> {
    let s = reader::string(cx, node, what)?;
    if let Some(v) = Version::parse(&s.text) {
        return Some(v);
    }
    let names: Vec<&str> = Version::ALL.iter().map(|v| v.as_str()).collect();
    cx.push(
        Diagnostic::error(codes::UNKNOWN_SCHEMA, format!("HL7 v2 version `{}` is not bundled", s.text))
            .label(s.span, "unknown version")
            .help(format!("bundled versions: {}", names.join(", "))),
    );
    None
}

/// `Z` or `+HH:MM` / `-HH:MM` with hours 00-23 and minutes 00-59 (what RFC 3339 allows, so
/// every datetime read in this zone can be written out).
fn timezone_ok(tz: &str) -> bool {
    let b = tz.as_bytes();
    let two_digits = |s: &[u8], max: u8| s.iter().all(u8::is_ascii_digit) && (s[0] - b'0') * 10 + (s[1] - b'0') <= max;
    tz == "Z"
        || (b.len() == 6
            && matches!(b[0], b'+' | b'-')
            && b[3] == b':'
            && two_digits(&b[1..3], 23)
            && two_digits(&b[4..6], 59))
}

pub fn read(cx: &mut Cx, node: &Node) -> Option<ProfilePlan> {
    let obj = reader::object(cx, node, &shape::PROFILE, "the profile")?;
    let mut p = default_profile();
    p.unexpected_segments = "fail".into();
    p.name = obj.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
    if let Some(n) = obj.get("format") {
        reader::one_of(cx, n, &["hl7v2", "x12"], "profile format");
    }
    super::x12_profile::other_format_keys(cx, &obj, super::x12_profile::X12_KEYS, "hl7v2", "x12");
    if obj.get("version").is_none() {
        cx.push(
            Diagnostic::error(codes::MISSING_KEY, "the profile is missing the required key `version`")
                .label(obj.anchor(), "add `version` here")
                .help("`version`: HL7 version paths are checked against; used when MSH-12 is empty."),
        );
    }
    let v = obj.get("version").and_then(|n| version(cx, n, "`version`"));
    if let Some(v) = v {
        p.version = v.as_str().into();
        p.accept_versions = vec![p.version.clone()];
    }
    if let Some(n) = obj.get("accept_versions") {
        p.accept_versions = Vec::new();
        let items = match &n.value {
            Value::Seq(items) => items.iter().collect::<Vec<_>>(),
            _ => {
                reader::string_list(cx, n, "`accept_versions`", false);
                vec![]
            }
        };
        for item in items {
            if let Some(v) = version(cx, item, "each accepted version") {
                p.accept_versions.push(v.as_str().into());
            }
        }
    }
    if let Some(n) = obj.get("encoding")
        && let Some(e) = reader::one_of(cx, n, shape::ENCODINGS, "encoding")
    {
        p.encoding = e.text;
    }
    if let Some(n) = obj.get("segment_terminators") {
        p.segment_terminators = Vec::new();
        for item in reader::string_list(cx, n, "`segment_terminators`", false) {
            if shape::SEGMENT_TERMINATORS.contains(&item.text.as_str()) {
                p.segment_terminators.push(item.text);
            } else {
                let d = Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a segment terminator", item.text))
                    .label(item.span, "expected `cr`, `lf` or `crlf`");
                cx.push(d.suggest(&item.text, shape::SEGMENT_TERMINATORS.iter().copied()));
            }
        }
    }
    if let Some(n) = obj.get("unexpected_segments")
        && let Some(s) = reader::one_of(cx, n, shape::UNEXPECTED_SEGMENTS, "`unexpected_segments` policy")
    {
        p.unexpected_segments = s.text;
    }
    if let Some(n) = obj.get("encoding_characters")
        && let Some(s) = reader::one_of(cx, n, shape::ENCODING_CHARACTERS, "`encoding_characters` mode")
    {
        p.encoding_characters = s.text;
    }
    if let Some(n) = obj.get("bad_segments")
        && let Some(s) = reader::one_of(cx, n, shape::BAD_SEGMENTS, "`bad_segments` policy")
    {
        p.bad_segments = s.text;
    }
    if let Some(n) = obj.get("timezone")
        && let Some(s) = reader::string(cx, n, "`timezone`")
    {
        if timezone_ok(&s.text) {
            p.timezone = s.text;
        } else {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`{}` is not a UTC offset", s.text))
                    .label(s.span, "expected `+HH:MM`, `-HH:MM` (hours 00-23, minutes 00-59) or `Z`")
                    .help("write the sender's offset, e.g. `-05:00`; named zones are not supported"),
            );
        }
    }
    if let Some(n) = obj.get("z_segments") {
        let version = v.unwrap_or(Version::V2_5_1);
        p.z_segments = z_segments(cx, n, version);
    }
    Some(p)
}

fn z_segments(cx: &mut Cx, node: &Node, version: Version) -> Vec<ZSegmentPlan> {
    let Some(entries) = reader::entries(cx, node, "`z_segments`") else { return vec![] };
    let schema = schema::schema(version);
    let mut out = Vec::new();
    for (id, key, value) in entries {
        let b = id.as_bytes();
        let id_ok = b.len() == 3 && b[0] == b'Z' && b[1..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !id_ok {
            cx.push(
                Diagnostic::error(codes::INVALID_Z_SEGMENT, format!("`{id}` is not a Z-segment id"))
                    .label(key.span, "expected `Z` and two upper-case letters or digits")
                    .help("Z-segment ids look like `ZPI`; standard segments are defined by the HL7 version"),
            );
            continue;
        }
        let Some(obj) = reader::object(cx, value, &shape::Z_SEGMENT, &format!("Z-segment `{id}`")) else { continue };
        let mut fields = Vec::new();
        if let Some(Node { value: Value::Seq(items), .. }) = obj.get("fields") {
            for (i, item) in items.iter().enumerate() {
                let Some(f) = reader::object(cx, item, &shape::Z_FIELD, &format!("field {id}-{}", i + 1)) else {
                    continue;
                };
                let name =
                    f.get("name").and_then(|n| reader::string(cx, n, "`name`")).map(|s| s.text).unwrap_or_default();
                let datatype = f.get("type").and_then(|n| reader::string(cx, n, "`type`"));
                let datatype = match datatype {
                    Some(dt) if schema.datatype(&dt.text).is_some() => dt.text,
                    Some(dt) => {
                        let names: Vec<&str> = [
                            "ST", "NM", "SI", "DT", "DTM", "TS", "ID", "IS", "CX", "XPN", "XAD", "XTN", "CWE", "CE",
                            "HD", "EI",
                        ]
                        .into_iter()
                        .filter(|n| schema.datatype(n).is_some())
                        .collect();
                        let d = Diagnostic::error(
                            codes::INVALID_Z_SEGMENT,
                            format!("`{}` is not an HL7 v{version} datatype", dt.text),
                        )
                        .label(dt.span, "unknown datatype");
                        cx.push(match crate::diagnostics::did_you_mean(&dt.text, names.iter().copied()) {
                            Some(best) => d.help(format!("did you mean `{best}`?")),
                            None => d.help(format!("common datatypes: {}", names.join(", "))),
                        });
                        "ST".into()
                    }
                    None => "ST".into(),
                };
                let phi = f.get("phi").and_then(|n| phi_class(cx, n));
                fields.push(ZFieldPlan { seq: i + 1, name, datatype, phi });
            }
        } else if let Some(n) = obj.get("fields") {
            cx.push(
                Diagnostic::error(codes::WRONG_TYPE, format!("`fields` must be a list, found {}", n.kind_name()))
                    .label(n.span, "expected a list of `{name, type}`"),
            );
        }
        out.push(ZSegmentPlan { id: id.to_string(), fields });
    }
    out
}

/// Reads a PHI class name, reporting SL603 with did-you-mean.
pub fn phi_class(cx: &mut Cx, node: &Node) -> Option<PhiClass> {
    let s = reader::string(cx, node, "PHI class")?;
    if let Some(c) = PhiClass::parse(&s.text) {
        return Some(c);
    }
    let d = Diagnostic::error(codes::UNKNOWN_PHI_CLASS, format!("`{}` is not a PHI class", s.text))
        .label(s.span, "unknown class");
    let names: Vec<&str> = PhiClass::ALL.iter().map(|c| c.as_str()).collect();
    cx.push(match crate::diagnostics::did_you_mean(&s.text, names.iter().copied()) {
        Some(best) => d.help(format!("did you mean `{best}`?")),
        None => d.help(format!("classes: {}", names.join(", "))),
    });
    None
}

#[cfg(test)]
mod tests {
    use sluice_hl7v2::charset::CharsetPolicy;

    #[test]
    fn every_encoding_is_one_the_runtime_reads() {
        for e in super::shape::ENCODINGS {
            assert!(CharsetPolicy::from_name(e).is_some(), "{e}");
        }
        assert_eq!(CharsetPolicy::from_name(&super::default_profile().encoding), Some(CharsetPolicy::Auto));
    }

    #[test]
    fn encoding_characters_are_the_codec_modes() {
        use sluice_hl7v2::codec::EncodingCharacters;
        assert_eq!(super::shape::ENCODING_CHARACTERS, EncodingCharacters::NAMES);
        for name in EncodingCharacters::NAMES {
            assert!(EncodingCharacters::from_name(name).is_some(), "{name}");
        }
        let default = EncodingCharacters::from_name(&super::default_profile().encoding_characters);
        assert_eq!(default, Some(EncodingCharacters::Strict));
    }

    #[test]
    fn bad_segments_are_the_codec_modes() {
        use sluice_hl7v2::codec::BadSegments;
        assert_eq!(super::shape::BAD_SEGMENTS, BadSegments::NAMES);
        assert_eq!(BadSegments::from_name(&super::default_profile().bad_segments), Some(BadSegments::Reject));
    }

    #[test]
    fn timezones_are_real_utc_offsets() {
        for ok in ["Z", "+00:00", "-05:00", "+23:59", "+05:30"] {
            assert!(super::timezone_ok(ok), "{ok}");
        }
        for bad in ["+24:00", "+99:00", "-05:60", "+5:00", "05:00", "EST", "+05:3a", ""] {
            assert!(!super::timezone_ok(bad), "{bad}");
        }
    }
}
