//! Sources: file discovery and the source step (bytes -> parsed, profile-checked HL7 message).
//!
//! Invariants:
//! - Deterministic: `paths` glob patterns (relative to the process's working directory) are
//!   expanded, de-duplicated and sorted; sources are read in plan order, files in sorted order,
//!   messages in file order.
//! - Streaming: files are read through a buffered reader and cut by
//!   `sluice_hl7v2::batch::BatchReader` (the splitter plus batch envelope checks and DSC/MSH-14
//!   continuation reassembly); a file is never read whole.
//! - Character sets: each message is decoded with `sluice_hl7v2::charset` under the profile's
//!   `encoding` (`auto`: BOM, UTF-16 NUL pattern, MSH-18, else UTF-8; or one fixed set that
//!   overrides MSH-18). Then `ADD` segments are joined onto the segment they continue
//!   (`batch::join_add_segments`) and the text is parsed, MSH-2 read as the profile's
//!   `encoding_characters` says; what `tolerant` accepts becomes a record warning with the
//!   codec's code (`HL7006`, `HL7007`).
//! - Nothing is lost, nothing panics: bytes that do not decode (`RT101`), name an unsupported
//!   charset (`RT108`), do not parse or break the profile become DLQ rejections (with the byte
//!   offset in the file, never the value); bytes outside any message (garbage before the first
//!   MSH) arrive as their own raw message and are rejected the same way. Envelope problems
//!   (`RT109`) and incomplete continuations (`RT110`) arrive as their own items
//!   ([`problem_rejection`]): each is one record in, one DLQ entry, so the run still balances.
//! - Partial processing: under the profile's `bad_segments: drop`, a segment that cannot be
//!   parsed (`HL7004`) in a message whose MSH is sound is left out ([`Decoded::dropped`]: its
//!   number, file offset, code and exact bytes, for the DLQ) and the record goes on with a
//!   warning (`RT114`) naming the segment's number, never its content; kept segments keep
//!   their numbers. Whatever makes the whole message unreadable is still a rejection. Under
//!   `reject` (the default) nothing changes: the same scan fails on the first such segment.
//! - Offsets: a decode error's offset is exact; a parse error's offset is mapped back from the
//!   decoded text to the bytes (exact for UTF-8, UTF-16 and single-byte sets). In a message
//!   reassembled from fragments or `ADD` segments, offsets after the first join are offsets in
//!   the reassembled message, counted from its first fragment.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use globset::GlobBuilder;
use sluice_compiler::plan::ProfilePlan;
use sluice_hl7v2::codec::{BadSegments, EncodingCharacters, ParseOptions};
use sluice_hl7v2::path::{Index, Path as Hl7Path};
use sluice_hl7v2::view::MessageView;

use crate::dlq::{Finding, Rejection};
use crate::error::RunError;
use crate::findings;
use crate::hl7::{self, CharsetPolicy, Hl7Message, SegmentSeparator, charset};
use crate::record::Issue;
use crate::time;

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Expands `paths` to a sorted, de-duplicated list of files.
pub fn expand(source: &str, patterns: &[String]) -> Result<Vec<PathBuf>, RunError> {
    let mut files = BTreeSet::new();
    for pattern in patterns {
        if !has_meta(pattern) {
            let p = PathBuf::from(pattern);
            if !p.is_file() {
                return Err(RunError::new(
                    findings::SOURCE_MISSING,
                    format!("source `{source}`: file `{pattern}` does not exist"),
                ));
            }
            files.insert(p);
            continue;
        }
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| {
                RunError::new(
                    findings::BAD_GLOB,
                    format!("source `{source}`: invalid path pattern `{pattern}`: {}", e.kind()),
                )
            })?
            .compile_matcher();
        let parts: Vec<&str> = pattern.split('/').collect();
        let literal = parts.iter().take_while(|p| !has_meta(p)).count();
        let (base, implicit) = match parts[..literal].join("/") {
            b if b.is_empty() && pattern.starts_with('/') => (PathBuf::from("/"), false),
            b if b.is_empty() => (PathBuf::from("."), true),
            b => (PathBuf::from(b), false),
        };
        let mut walk = walkdir::WalkDir::new(&base).follow_links(true).sort_by_file_name();
        if !pattern.contains("**") {
            walk = walk.max_depth(parts.len() - literal);
        }
        for entry in walk.into_iter().filter_map(Result::ok) {
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let path = if implicit { path.strip_prefix(".").unwrap_or(path) } else { path };
            if glob.is_match(path) {
                files.insert(path.to_path_buf());
            }
        }
    }
    Ok(files.into_iter().collect())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unexpected {
    Fail,
    Skip,
    Parse,
}

/// A source's parser profile, prepared once.
#[derive(Debug)]
pub struct Profile {
    version: String,
    accept_versions: Vec<String>,
    terminators: Vec<String>,
    unexpected: Unexpected,
    z_segments: HashSet<String>,
    charset: CharsetPolicy,
    parse_options: ParseOptions,
    /// Normalised (`Z`, `-05:00`).
    pub zone: Arc<str>,
}

impl Profile {
    pub fn new(p: &ProfilePlan) -> Profile {
        Profile {
            version: p.version.clone(),
            accept_versions: p.accept_versions.clone(),
            terminators: p.segment_terminators.iter().map(|t| t.to_ascii_lowercase()).collect(),
            unexpected: match p.unexpected_segments.as_str() {
                "fail" => Unexpected::Fail,
                "skip" => Unexpected::Skip,
                _ => Unexpected::Parse,
            },
            z_segments: p.z_segments.iter().map(|z| z.id.clone()).collect(),
            // The compiler only lets known names through; anything else reads as `auto`.
            charset: CharsetPolicy::from_name(&p.encoding).unwrap_or_default(),
            // Likewise: only `strict` and `tolerant` get through; anything else reads as strict.
            parse_options: ParseOptions {
                encoding_characters: EncodingCharacters::from_name(&p.encoding_characters).unwrap_or_default(),
                bad_segments: BadSegments::from_name(&p.bad_segments).unwrap_or_default(),
            },
            zone: time::normalize_zone(&p.timezone).into(),
        }
    }
}

/// A message that passed the source step.
#[derive(Debug)]
pub struct Decoded {
    pub message: Hl7Message,
    pub message_type: Option<String>,
    pub control_id: Option<String>,
    pub warnings: Vec<Issue>,
    /// Segments left out under `bad_segments: drop`, in message order (each also has a
    /// warning in `warnings`).
    pub dropped: Vec<DroppedPart>,
}

/// A segment the source step left out of a message (`bad_segments: drop`): what its DLQ entry
/// and the record's audit entry say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedPart {
    /// 1-based number of the segment in the message (the dropped ones counted).
    pub segment: usize,
    /// Byte offset of the segment in the file (or stream), like a record's offset.
    pub offset: u64,
    /// Why: the codec's code (`HL7004`) and its content-free message.
    pub code: &'static str,
    pub message: String,
    /// The segment's bytes as received (without its line break): the DLQ's payload.
    pub bytes: Vec<u8>,
}

fn separator_name(s: SegmentSeparator) -> &'static str {
    match s {
        SegmentSeparator::Cr => "cr",
        SegmentSeparator::Lf => "lf",
        SegmentSeparator::CrLf => "crlf",
        SegmentSeparator::Mixed => "mixed",
    }
}

/// Decodes, parses and checks one raw message against the profile. `file_offset` is the
/// message's byte offset in its file (for findings).
pub fn decode(bytes: &[u8], file_offset: u64, profile: &Profile) -> Result<Decoded, Rejection> {
    let decoded = match charset::decode(bytes, &profile.charset) {
        Ok(d) => d,
        Err(e) => {
            let at = file_offset + e.offset as u64;
            let (code, reason) = match e.charset {
                Some(c) => (
                    findings::INVALID_UTF8,
                    format!("message is not valid {}: invalid byte at file offset {at}", c.hl7_name()),
                ),
                None => (findings::CHARSET_UNSUPPORTED, format!("{} (MSH-18 at file offset {at})", e.message)),
            };
            return Err(Rejection {
                code,
                findings: vec![Finding { code: e.code, rule: None, path: None, message: reason.clone() }],
                reason,
                attempts: 1,
            });
        }
    };
    let text = hl7::join_add_segments(&decoded.text);
    let joined = matches!(text, std::borrow::Cow::Owned(_));
    let mut warnings = Vec::new();
    // The view accepts and rejects exactly what the full parser does, with the same errors and
    // warnings; the tree is only built later, by a step that needs it.
    let view = match MessageView::parse_with(&text, profile.parse_options) {
        Ok(view) => view,
        Err(e) => {
            let in_bytes = if joined { e.offset } else { decoded.source_offset(e.offset) };
            let at = file_offset + in_bytes as u64;
            let reason = format!("HL7 parse error {} at file offset {at}: {}", e.code, e.message);
            return Err(Rejection {
                code: e.code,
                findings: vec![Finding { code: e.code, rule: None, path: None, message: reason.clone() }],
                reason,
                attempts: 1,
            });
        }
    };
    // Tolerated spellings (`encoding_characters: tolerant`) keep the codec's code.
    for w in &view.warnings {
        warnings.push(Issue::new(w.code, "MSH-2", w.message.clone()));
    }
    let dropped = if view.dropped.is_empty() {
        Vec::new()
    } else {
        // Offsets in a reassembled text (`ADD` joined) are offsets in that text: its bytes then.
        let (raw, to_bytes): (&[u8], &dyn Fn(usize) -> usize) =
            if joined { (text.as_bytes(), &|o| o) } else { (bytes, &|o| decoded.source_offset(o)) };
        dropped_parts(&view.dropped, raw, file_offset, to_bytes)
    };
    for d in &dropped {
        warnings.push(Issue::new(
            findings::SEGMENT_DROPPED,
            format!("segment {}", d.segment),
            format!(
                "segment {} could not be parsed ({}) and was dropped (bad_segments: drop); it is in the DLQ",
                d.segment, d.code
            ),
        ));
    }
    // The index the record keeps (with every field separator located), taken now so that the
    // header fields below are read through it too.
    // Where the dropped segments were (the view rebuilt from the index below has no list).
    let dropped_at: Vec<usize> = view.dropped.iter().map(|d| d.range.start).collect();
    let index = view.index(&text);
    let indexed = index.as_ref().map(|i| MessageView::from_index(&text, i));
    let view = indexed.as_ref().unwrap_or(&view);
    let header = header_paths();
    let version = view.first(&header.version).map_or_else(|| profile.version.clone(), Cow::into_owned);
    if !profile.accept_versions.is_empty() && !profile.accept_versions.contains(&version) {
        return Err(Rejection::single(
            findings::VERSION_NOT_ACCEPTED,
            Some("MSH-12"),
            format!("the version in MSH-12 is not one of accept_versions ({})", profile.accept_versions.join(", ")),
        ));
    }
    let sep = view.segment_separator;
    let allowed = profile.terminators.is_empty()
        || match sep {
            SegmentSeparator::Mixed => profile.terminators.len() > 1,
            s => profile.terminators.iter().any(|t| t == separator_name(s)),
        };
    if !allowed {
        return Err(Rejection::single(
            findings::SEPARATOR_NOT_ALLOWED,
            None,
            format!(
                "segment separator `{}` is not in segment_terminators ({})",
                separator_name(sep),
                profile.terminators.join(", ")
            ),
        ));
    }
    let message_type = match (view.first(&header.code), view.first(&header.event)) {
        (Some(code), Some(event)) => Some(format!("{code}^{event}")),
        (Some(code), None) => Some(code.into_owned()),
        (None, _) => None,
    };
    let control_id = view.first(&header.control_id).map(Cow::into_owned);
    let mut skipped = Vec::new();
    if profile.unexpected != Unexpected::Parse {
        let schema = [version.as_str(), profile.version.as_str()]
            .into_iter()
            .find_map(|v| hl7::schema_of(v).map(|schema| (v, schema)));
        let Some((schema_version, schema)) = schema else {
            return Err(Rejection::single(
                findings::UNKNOWN_VERSION,
                Some("MSH-12"),
                "no HL7 schema for the message's version or the profile's version",
            ));
        };
        // The schema first: almost every segment is in it, and then the Z-segment set is not
        // consulted.
        let unexpected = |id: &str| !schema.defines(id) && !profile.z_segments.contains(id);
        // Segment lines are 1-based, as in the tree, and count the dropped segments.
        let line = |i: usize, offset: usize| i + 1 + dropped_at.iter().take_while(|&&at| at < offset).count();
        let bad: Vec<(String, usize)> = view
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| unexpected(s.id))
            .map(|(i, s)| (s.id.to_string(), line(i, s.offset)))
            .collect();
        if !bad.is_empty() {
            if profile.unexpected == Unexpected::Fail {
                let findings = bad
                    .iter()
                    .map(|(id, line)| Finding {
                        code: findings::UNEXPECTED_SEGMENT,
                        rule: None,
                        path: Some(id.clone()),
                        message: format!(
                            "segment {line} (`{id}`) is not defined by HL7 {schema_version} nor declared as a Z-segment"
                        ),
                    })
                    .collect();
                let ids: Vec<&str> = bad.iter().map(|(id, _)| id.as_str()).collect();
                return Err(Rejection {
                    code: findings::UNEXPECTED_SEGMENT,
                    reason: format!("unexpected segment(s): {}", ids.join(", ")),
                    findings,
                    attempts: 1,
                });
            }
            for (id, line) in &bad {
                warnings.push(Issue::new(
                    findings::SEGMENT_SKIPPED,
                    id.clone(),
                    format!("segment {line} (`{id}`) is not defined by the schema and was skipped"),
                ));
            }
            skipped = bad.into_iter().map(|(_, line)| line).collect();
        }
    }
    let options = profile.parse_options;
    let message = if skipped.is_empty() {
        drop(indexed);
        Hl7Message::with_index(text.into_owned(), options, index)
    } else {
        let held = Hl7Message::new(text.into_owned(), options);
        let mut tree = held.tree().clone();
        tree.segments.retain(|s| !skipped.contains(&s.line));
        held.into_edited(tree)
    };
    Ok(Decoded { message_type, control_id, message, warnings, dropped })
}

/// The dropped segments of a message as the DLQ keeps them: each one's bytes exactly as
/// received (`to_bytes` maps an offset in the parsed text to one in `bytes`; for a text
/// reassembled from `ADD` segments, `bytes` is that text).
#[cold]
fn dropped_parts(
    dropped: &[sluice_hl7v2::codec::DroppedSegment],
    bytes: &[u8],
    file_offset: u64,
    to_bytes: &dyn Fn(usize) -> usize,
) -> Vec<DroppedPart> {
    dropped
        .iter()
        .map(|d| {
            let (start, end) = (to_bytes(d.range.start), to_bytes(d.range.end));
            let raw = bytes.get(start..end).unwrap_or_default();
            DroppedPart {
                segment: d.line,
                offset: file_offset + start as u64,
                code: d.error.code,
                message: d.error.message.clone(),
                bytes: raw.to_vec(),
            }
        })
        .collect()
}

/// MSH-12, MSH-9.1, MSH-9.2 and MSH-10, parsed once.
struct HeaderPaths {
    version: Hl7Path,
    code: Hl7Path,
    event: Hl7Path,
    control_id: Hl7Path,
}

fn header_paths() -> &'static HeaderPaths {
    static PATHS: OnceLock<HeaderPaths> = OnceLock::new();
    PATHS.get_or_init(|| {
        let msh = |field, component| Hl7Path {
            segment: "MSH".into(),
            occurrence: Index::First,
            field,
            repetition: Index::First,
            component,
            subcomponent: None,
        };
        HeaderPaths { version: msh(12, None), code: msh(9, Some(1)), event: msh(9, Some(2)), control_id: msh(10, None) }
    })
}

/// The rejection for a problem item of `batch::BatchReader` (an envelope or continuation
/// problem), at `file_offset`.
pub fn problem_rejection(p: &hl7::Problem, file_offset: u64) -> Rejection {
    let code = match p.code {
        "HL7022" | "HL7023" => findings::CONTINUATION,
        _ => findings::ENVELOPE,
    };
    let reason = format!("{} at file offset {file_offset}: {}", p.code, p.message);
    Rejection {
        code,
        findings: vec![Finding { code: p.code, rule: None, path: None, message: reason.clone() }],
        reason,
        attempts: 1,
    }
}

/// A source file (or object) as the splitter reads it: UTF-8 (UTF-16 files are transcoded as
/// they stream).
pub type Input = std::io::BufReader<sluice_hl7v2::charset::Utf8Stream<Box<dyn std::io::Read + Send>>>;

/// Opens a file for streaming. A UTF-16 file (BOM or NUL pattern) is transcoded to UTF-8 on the
/// fly, because the splitter cuts at CR/LF bytes; byte offsets in its findings then count bytes
/// of that UTF-8 text.
pub fn open(path: &Path) -> Result<Input, RunError> {
    let f = std::fs::File::open(path).map_err(|e| RunError::io("open", path, &e))?;
    open_stream(Box::new(f), path)
}

/// [`open`] for any byte stream (an object being downloaded); `path` names it in errors.
pub fn open_stream(stream: Box<dyn std::io::Read + Send>, path: &Path) -> Result<Input, RunError> {
    let (stream, _) = sluice_hl7v2::charset::Utf8Stream::new(stream).map_err(|e| read_error(path, &e))?;
    Ok(std::io::BufReader::with_capacity(64 * 1024, stream))
}

/// One input's raw bytes, opened as often as a reader needs them (a FHIR Bundle is read twice
/// when references are resolved): a local file, or an object downloaded from its store.
pub type Opener<'a> = dyn Fn() -> Result<Box<dyn std::io::Read + Send>, RunError> + 'a;

/// Opens a local file's raw bytes (the [`Opener`] of a local input).
pub fn open_local(path: &Path) -> Result<Box<dyn std::io::Read + Send>, RunError> {
    let f = std::fs::File::open(path).map_err(|e| RunError::io("open", path, &e))?;
    Ok(Box::new(f))
}

/// What a failed read of `path` means: RT137 when the object was deleted or overwritten since
/// it was listed (the reader goes on with the next input), the object store's own finding
/// (RT135/RT136) when its download failed, else a plain read error.
pub fn read_error(path: &Path, e: &std::io::Error) -> RunError {
    if crate::object_stores::read::vanished(e) {
        return RunError::new(
            crate::findings::OBJECT_VANISHED,
            "an object was deleted or overwritten after it was listed; the next run reads its new version",
        );
    }
    crate::object_stores::read::run_error_in(e).unwrap_or_else(|| RunError::io("read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_hl7v2::split::MessageSplitter;

    fn profile(unexpected: &str, terms: &[&str]) -> Profile {
        Profile::new(&ProfilePlan {
            name: "p".into(),
            version: "2.5.1".into(),
            accept_versions: vec!["2.5.1".into(), "2.5".into()],
            encoding: "utf-8".into(),
            segment_terminators: terms.iter().map(|s| s.to_string()).collect(),
            unexpected_segments: unexpected.into(),
            timezone: "+00:00".into(),
            z_segments: vec![],
            encoding_characters: "strict".into(),
            bad_segments: "reject".into(),
        })
    }

    #[test]
    fn tolerant_encoding_characters_warn_and_strict_rejects() {
        let doubled = b"MSH|^~\\\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||123^^^H&x";
        let three = b"MSH|^~\\|A|B|C|D|20240101||ADT^A01|X2|P|2.5.1\rPID|1||123^^^H&x";
        let strict = profile("parse", &["cr"]);
        assert_eq!(decode(doubled, 0, &strict).unwrap_err().code, "HL7003");
        assert_eq!(decode(three, 0, &strict).unwrap_err().code, "HL7002");
        let mut plan_tolerant = strict_plan();
        plan_tolerant.encoding_characters = "tolerant".into();
        let tolerant = Profile::new(&plan_tolerant);
        for (bytes, code) in [(&doubled[..], "HL7006"), (&three[..], "HL7007")] {
            let d = decode(bytes, 0, &tolerant).unwrap();
            let codes: Vec<&str> = d.warnings.iter().map(|w| w.code).collect();
            assert_eq!(codes, [code]);
            let d_ = d.message.tree().delimiters;
            assert_eq!((d_.escape, d_.subcomponent), (Some('\\'), '&'));
            assert_eq!(d.message.tree().segments[1].fields[2].repetitions[0].components[3].subcomponents, ["H", "x"]);
        }
        // a repeat that is not a doubled escape character is still rejected
        assert_eq!(decode(b"MSH|^&&^|A\rPID|1", 0, &tolerant).unwrap_err().code, "HL7003");
    }

    fn strict_plan() -> ProfilePlan {
        ProfilePlan {
            name: "p".into(),
            version: "2.5.1".into(),
            accept_versions: vec!["2.5.1".into(), "2.5".into()],
            encoding: "utf-8".into(),
            segment_terminators: vec!["cr".into()],
            unexpected_segments: "parse".into(),
            timezone: "+00:00".into(),
            z_segments: vec![],
            encoding_characters: "strict".into(),
            bad_segments: "reject".into(),
        }
    }

    #[test]
    fn rejections() {
        let p = profile("parse", &["cr"]);
        let ok = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||123";
        let d = decode(ok, 0, &p).unwrap();
        assert_eq!(d.message_type.as_deref(), Some("ADT^A01"));
        assert_eq!(d.control_id.as_deref(), Some("X1"));
        let bad = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||\xff\xfe";
        let r = decode(bad, 100, &p).unwrap_err();
        assert_eq!(r.code, "RT101");
        assert!(r.reason.contains(&format!("{}", 100 + bad.len() - 2)));
        let v23 = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.3\rPID|1";
        assert_eq!(decode(v23, 0, &p).unwrap_err().code, "RT103");
        let lf = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\nPID|1";
        assert_eq!(decode(lf, 0, &p).unwrap_err().code, "RT104");
        assert!(decode(lf, 0, &profile("parse", &["cr", "lf"])).is_ok());
        assert!(decode(b"garbage", 0, &p).is_err());
        assert!(decode(b"", 0, &p).is_err());
    }

    #[test]
    fn skipped_segments_are_gone_from_what_steps_read() {
        let text = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||123\rQQQ|secret\rPV1|1|I";
        let path = |p: &str| sluice_hl7v2::path::Path::parse(p).unwrap();
        let skip = decode(text, 0, &profile("skip", &["cr"])).unwrap();
        assert_eq!(skip.warnings.iter().map(|w| w.code).collect::<Vec<_>>(), [findings::SEGMENT_SKIPPED]);
        assert!(skip.warnings[0].message.contains("segment 3"));
        let reader = hl7::Reader::new(&skip.message);
        assert!(reader.select(&path("QQQ-1")).is_empty());
        assert_eq!(reader.select(&path("PV1-2")), ["I"]);
        assert_eq!(reader.tree().segments.iter().map(|s| s.id.as_ref()).collect::<Vec<_>>(), ["MSH", "PID", "PV1"]);
        assert_eq!(decode(text, 0, &profile("fail", &["cr"])).unwrap_err().code, findings::UNEXPECTED_SEGMENT);
        let kept = decode(text, 0, &profile("parse", &["cr"])).unwrap();
        assert_eq!(hl7::Reader::new(&kept.message).select(&path("QQQ-1")), ["secret"]);
    }

    #[test]
    fn bad_segments_drop_keeps_the_rest_and_reports_each_dropped_segment() {
        let text = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|X1|P|2.5.1\rPID|1||123\rSMITH JOHN 123-45-6789\rQQQ|secret\rpv1|x\rPV1|1|I";
        let path = |p: &str| sluice_hl7v2::path::Path::parse(p).unwrap();
        let mut plan = strict_plan();
        assert_eq!(decode(text, 0, &Profile::new(&plan)).unwrap_err().code, "HL7004", "reject: as before");
        plan.bad_segments = "drop".into();
        plan.unexpected_segments = "skip".into();
        let d = decode(text, 1000, &Profile::new(&plan)).unwrap();
        let dropped: Vec<(usize, u64, &str, &[u8])> =
            d.dropped.iter().map(|p| (p.segment, p.offset, p.code, p.bytes.as_slice())).collect();
        let at = |needle: &[u8]| 1000 + text.windows(needle.len()).position(|w| w == needle).unwrap() as u64;
        assert_eq!(
            dropped,
            [(3, at(b"SMITH"), "HL7004", &b"SMITH JOHN 123-45-6789"[..]), (5, at(b"pv1"), "HL7004", &b"pv1|x"[..])]
        );
        // one warning per dropped segment, by number, never by content; the skipped QQQ is
        // numbered as in the message (4), the dropped lines counted
        let warnings: Vec<(&str, &str, &str)> =
            d.warnings.iter().map(|w| (w.code, w.path.as_str(), w.message.as_str())).collect();
        assert_eq!(
            warnings.iter().map(|w| (w.0, w.1)).collect::<Vec<_>>(),
            [
                (findings::SEGMENT_DROPPED, "segment 3"),
                (findings::SEGMENT_DROPPED, "segment 5"),
                (findings::SEGMENT_SKIPPED, "QQQ")
            ]
        );
        assert!(warnings[2].2.contains("segment 4"), "{}", warnings[2].2);
        assert!(warnings.iter().all(|w| !w.2.contains("SMITH") && !w.2.contains("123-45")));
        let reader = hl7::Reader::new(&d.message);
        assert_eq!(reader.select(&path("PV1-2")), ["I"]);
        let lines: Vec<(&str, usize)> = reader.tree().segments.iter().map(|s| (s.id.as_ref(), s.line)).collect();
        assert_eq!(lines, [("MSH", 1), ("PID", 2), ("PV1", 6)]);
        // read through the view (nothing skipped), the tree is built from the same text
        plan.unexpected_segments = "parse".into();
        let d = decode(text, 0, &Profile::new(&plan)).unwrap();
        let reader = hl7::Reader::new(&d.message);
        assert_eq!(reader.select(&path("PID-3")), ["123"]);
        assert_eq!(reader.select(&path("QQQ-1")), ["secret"]);
        assert_eq!(d.message.tree().segments.len(), 4);
        // a message that cannot be read at all is still rejected whole
        assert_eq!(decode(b"MSH|^~|A\rPID|1", 0, &Profile::new(&plan)).unwrap_err().code, "HL7002");
    }

    #[test]
    fn expands_relative_and_recursive_patterns_sorted() {
        // Tests run in the package directory, so this pattern is relative to it.
        let files = expand("s", &["tests/fixtures/*.hl7".into(), "tests/fixtures/two_adt.hl7".into()]).unwrap();
        assert_eq!(files, vec![PathBuf::from("tests/fixtures/two_adt.hl7")]);
        let deep = expand("s", &["tests/**/*.hl7".into()]).unwrap();
        assert!(deep.contains(&PathBuf::from("tests/fixtures/two_adt.hl7")));
        assert!(expand("s", &["tests/fixtures/*.nothing".into()]).unwrap().is_empty());
        assert_eq!(expand("s", &["tests/fixtures/missing.hl7".into()]).unwrap_err().code, "RT005");
        assert_eq!(expand("s", &["tests/[".into()]).unwrap_err().code, "RT004");
        let mut splitter = MessageSplitter::new(open(&files[0]).unwrap());
        let first = splitter.next().unwrap().unwrap();
        assert_eq!(decode(&first.bytes, 0, &profile("parse", &["cr"])).unwrap().control_id.as_deref(), Some("FIX0001"));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), lf in any::<bool>(), drop in any::<bool>()) {
            let mut plan = strict_plan();
            if drop {
                plan.bad_segments = "drop".into();
                plan.unexpected_segments = "skip".into();
            }
            let p = Profile::new(&plan);
            let mut input = bytes.clone();
            if lf { input.splice(0..0, b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X|P|2.5.1\r".iter().copied()); }
            for raw in MessageSplitter::new(&input[..]) {
                let raw = raw.unwrap();
                if let Ok(d) = decode(&raw.bytes, raw.offset as u64, &p) {
                    // what was kept reads as a tree; each dropped part is bytes of the message
                    let _ = d.message.tree();
                    for part in &d.dropped {
                        let at = (part.offset - raw.offset as u64) as usize;
                        prop_assert_eq!(raw.bytes.get(at..at + part.bytes.len()), Some(&part.bytes[..]));
                    }
                }
            }
            let _ = decode(&bytes, 0, &p);
        }
    }
}
