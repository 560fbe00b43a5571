//! Validation of a parsed HL7 v2 message against the bundled tables: the segment structure of
//! its message type ([`crate::structure`]), required fields, repetition, lengths, primitive
//! datatypes (DTM/TS, DT, TM, NM, SI) and coded values (ID and IS against `data/tables.txt`).
//!
//! Invariants:
//! - No input makes [`validate`] panic; it only reads the message.
//! - A [`Finding`] never holds a value of the message (values may be PHI): it names a path
//!   (`PID-8`, `PID[2]-8`, `OBX[3]-5.1`), a segment number, a code and a fixed explanation
//!   ("value is not in table 0001"). Lengths, counts, table numbers, segment ids, message types
//!   and structure names are not values and may be said.
//! - Every code is registered in [`CODES`] with a title and an explanation (`sluice explain`).
//! - Severities are defaults: `Error` breaks the standard in a way a receiver may reject,
//!   `Warning` is suspicious but common (lengths, which are conformance lengths from v2.5 on),
//!   `Info` is a fact about how the message was checked or a local code in a user-defined
//!   table. Callers remap them per code ([`Options::severity_overrides`]): strict and lenient
//!   are the caller's policy, not this module's.
//! - Tables are data (`data/tables.txt`, documented at its top), parsed once; a malformed table
//!   fails the unit test `tables_parse`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use crate::codec::{Message, Repetition, Segment};
use crate::schema::{self, Schema, Version};
use crate::structure;

const TABLES_TXT: &str = include_str!("../data/tables.txt");

pub use sluice_spec_core::Severity;

/// One problem (or fact) found in a message. Never holds a value of the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `HL7Vnnn`, registered in [`CODES`].
    pub code: &'static str,
    /// Where: `MSH-9`, `PID[2]-8`, `OBX[3]-5.1`, or a segment (`OBX[2]`) for structure findings.
    pub path: String,
    /// 1-based segment number in the message ([`Segment::line`]).
    pub segment: usize,
    pub message: String,
}

impl Finding {
    pub fn new(severity: Severity, code: &'static str, path: &str, segment: usize, message: String) -> Self {
        Finding { severity, code, path: path.to_string(), segment, message }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}: {}", self.severity, self.code, self.path, self.message)
    }
}

/// The finding codes, by meaning.
pub mod codes {
    pub const NO_STRUCTURE: &str = "HL7V001";
    pub const STRUCTURE_OVERRIDDEN: &str = "HL7V002";
    pub const VERSION_NOT_BUNDLED: &str = "HL7V003";
    pub const VERSION_ASSUMED: &str = "HL7V004";
    pub const MISSING_SEGMENT: &str = "HL7V101";
    pub const MISSING_GROUP: &str = "HL7V102";
    pub const UNEXPECTED_SEGMENT: &str = "HL7V103";
    pub const OUT_OF_ORDER: &str = "HL7V104";
    pub const TOO_MANY: &str = "HL7V105";
    pub const UNDECLARED_Z: &str = "HL7V106";
    pub const REQUIRED_FIELD: &str = "HL7V201";
    pub const NOT_REPEATING: &str = "HL7V202";
    pub const FIELD_NOT_DEFINED: &str = "HL7V203";
    pub const TOO_LONG: &str = "HL7V204";
    pub const WITHDRAWN: &str = "HL7V205";
    pub const BAD_DTM: &str = "HL7V301";
    pub const BAD_DT: &str = "HL7V302";
    pub const BAD_TM: &str = "HL7V303";
    pub const BAD_NM: &str = "HL7V304";
    pub const BAD_SI: &str = "HL7V305";
    pub const NOT_IN_HL7_TABLE: &str = "HL7V310";
    pub const NOT_IN_USER_TABLE: &str = "HL7V311";
    pub const CODED_NOT_IN_TABLE: &str = "HL7V312";
}

/// Every code a [`Finding`] can carry: `(code, title, explanation)`.
pub const CODES: &[(&str, &str, &str)] = &[
    (
        "HL7V001",
        "The segment structure was not checked.",
        "No bundled structure matches the message type (MSH-9) in this version, or MSH-9.1 is empty. Fields are still checked. Bundled: ADT A01-A62, ORU^R01, ORM^O01, OML^O21, MDM^T01-T11, SIU^S12-S26, DFT^P03, VXU^V04 and ACK (docs/hl7v2-validation.md).",
    ),
    (
        "HL7V002",
        "MSH-9.3 names a structure that is not bundled; the standard one was used.",
        "MSH-9.3 (message structure) names a structure Sluice does not know, often a sender writing the event into it (`ADT_A04` instead of `ADT_A01`). The message was checked against the structure the standard assigns to MSH-9.1 and MSH-9.2.",
    ),
    (
        "HL7V003",
        "MSH-12 names a version whose tables are not bundled.",
        "Sluice bundles v2.3 to v2.8. An older version (2.1, 2.2) is checked against v2.3 and a newer one (2.8.1, 2.9) against v2.8; a profile can pin the version instead.",
    ),
    (
        "HL7V004",
        "MSH-12 is empty; the version was assumed.",
        "Without MSH-12 the message is checked against the profile's `version`, or v2.5.1 when no profile is given.",
    ),
    (
        "HL7V101",
        "A required segment is missing.",
        "The structure of the message type requires this segment at this place (within its group, when the group is present). Add it, or check that MSH-9 names the right message type.",
    ),
    (
        "HL7V102",
        "A required segment group is missing.",
        "The structure requires at least one occurrence of this group (for example ORDER_OBSERVATION in ORU^R01, starting with OBR).",
    ),
    (
        "HL7V103",
        "A segment is not part of the message structure.",
        "The segment does not occur anywhere in the structure of this message type and version. Z-segments are allowed anywhere unless the profile declares which ones are expected; other segments are reported here. A profile's `unexpected_segments` sets the severity (`fail`: error, `skip`/`parse`: warning).",
    ),
    (
        "HL7V104",
        "A segment is out of order.",
        "The segment belongs to the structure but not here: either the group it belongs to has not started (`OBX before OBR in ORDER_OBSERVATION group`: the OBR that opens the group is missing or comes later), or it belongs earlier in the message. Lenient receivers accept this; strict ones reject it.",
    ),
    (
        "HL7V105",
        "A segment occurs more often than the structure allows.",
        "The segment may occur once at this place (in this group occurrence), but occurs again.",
    ),
    (
        "HL7V106",
        "A Z-segment is not declared by the profile.",
        "The profile lists the Z-segments the sender uses (`z_segments`); this one is not among them.",
    ),
    (
        "HL7V201",
        "A required field is empty.",
        "The segment definition of this version marks the field required (optionality R). An explicit null (\"\") counts as present.",
    ),
    (
        "HL7V202",
        "A field that does not repeat has several repetitions.",
        "Only the first repetition is meaningful to receivers that follow the standard; the others are usually dropped.",
    ),
    (
        "HL7V203",
        "A field beyond the segment's definition has a value.",
        "The segment has more fields than this version defines. Often the sender uses a later version than MSH-12 says, or a local extension.",
    ),
    (
        "HL7V204",
        "A value is longer than the field's maximum length.",
        "Lengths are the v2.5 maximum (conformance) lengths of the bundled tables and are reported as warnings: receivers may truncate. The length is measured on the decoded value, with one character per delimiter between components.",
    ),
    (
        "HL7V205",
        "A withdrawn field has a value.",
        "The field is withdrawn in this version: receivers following the version ignore it.",
    ),
    (
        "HL7V301",
        "A value is not a valid date-time (DTM/TS).",
        "Expected YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]: digits only, a real calendar date, hours 00-23, minutes and seconds 00-59, an offset of four digits.",
    ),
    ("HL7V302", "A value is not a valid date (DT).", "Expected YYYY[MM[DD]] with a real calendar date."),
    (
        "HL7V303",
        "A value is not a valid time (TM).",
        "Expected HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ] with hours 00-23 and minutes and seconds 00-59.",
    ),
    (
        "HL7V304",
        "A value is not a valid number (NM).",
        "Expected an optional sign, digits and an optional decimal point: no exponent, no thousands separator, no units.",
    ),
    ("HL7V305", "A value is not a valid sequence id (SI).", "Expected a non-negative integer (digits only)."),
    (
        "HL7V310",
        "A coded value is not in its HL7 table.",
        "The field or component has datatype ID: its values are defined by HL7 (table number in the message). An unknown value is an error.",
    ),
    (
        "HL7V311",
        "A coded value is not among the suggested values of a user-defined table.",
        "IS values (and ID values of tables sites extend, like 0203 identifier types) come from tables each site defines; HL7 only suggests values. Reported as info so local codes can be reviewed.",
    ),
    (
        "HL7V312",
        "The identifier of a coded element is not in its table.",
        "A CE/CWE/CNE field bound to an HL7 table has an identifier (component 1) outside it while its coding system (component 3) is empty or names that HL7 table. CWE allows other code systems, so this is a warning.",
    ),
];

/// What to check and how.
#[derive(Clone, Debug)]
pub struct Options {
    /// Check against this version whatever MSH-12 says.
    pub version: Option<Version>,
    /// The version when MSH-12 is empty (default v2.5.1).
    pub default_version: Option<Version>,
    /// Match the segment sequence against the message structure.
    pub structure: bool,
    /// Report values longer than the maximum length.
    pub lengths: bool,
    /// Check ID and IS values against `data/tables.txt`.
    pub tables: bool,
    /// Severity of segments that are not part of the structure (HL7V103, HL7V106).
    pub unexpected_segments: Severity,
    /// `None`: any Z-segment is allowed anywhere. `Some(ids)`: only these; others get HL7V106.
    pub z_segments: Option<Vec<String>>,
    /// Per-code severities that replace the defaults (`("HL7V104", Warning)` for lenient order).
    pub severity_overrides: Vec<(String, Severity)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            version: None,
            default_version: None,
            structure: true,
            lengths: true,
            tables: true,
            unexpected_segments: Severity::Error,
            z_segments: None,
            severity_overrides: Vec::new(),
        }
    }
}

/// Checks `msg`; findings come sorted by segment number (message-level findings first).
pub fn validate(msg: &Message, options: &Options) -> Vec<Finding> {
    let mut out = Vec::new();
    let version = choose_version(msg, options, &mut out);
    if options.structure
        && let Some(sel) = structure::select(msg, version, &mut out)
    {
        out.extend(structure::check(msg, sel.group, options.unexpected_segments));
    }
    let schema = schema::schema(version);
    let mut occurrences: BTreeMap<&str, usize> = BTreeMap::new();
    for seg in &msg.segments {
        let id: &str = &seg.id;
        let n = occurrences.entry(id).or_insert(0);
        *n += 1;
        let seg_path = if *n == 1 { id.to_string() } else { format!("{id}[{n}]") };
        if id.starts_with('Z') {
            if let Some(declared) = &options.z_segments
                && !declared.iter().any(|d| d == id)
            {
                let message = format!("Z-segment {id} is not declared by the profile (segment {})", seg.line);
                out.push(Finding::new(options.unexpected_segments, codes::UNDECLARED_Z, &seg_path, seg.line, message));
            }
            continue;
        }
        check_segment(schema, seg, &seg_path, options, &mut out);
    }
    for f in &mut out {
        if let Some((_, s)) = options.severity_overrides.iter().find(|(c, _)| c == f.code) {
            f.severity = *s;
        }
    }
    out.sort_by_key(|f| f.segment);
    out
}

/// The version to check against, with a finding when it is not MSH-12 as written.
fn choose_version(msg: &Message, options: &Options, out: &mut Vec<Finding>) -> Version {
    if let Some(v) = options.version {
        return v;
    }
    let fallback = options.default_version.unwrap_or(Version::V2_5_1);
    let Some(text) = msg.version().map(str::trim).filter(|s| !s.is_empty()) else {
        let message = format!("MSH-12 is empty: checked as v{fallback}");
        out.push(Finding::new(Severity::Info, codes::VERSION_ASSUMED, "MSH-12", 1, message));
        return fallback;
    };
    if let Some(v) = Version::parse(text) {
        return v;
    }
    let parts: Option<Vec<u32>> = text.split('.').map(|p| p.parse().ok()).collect();
    let (v, why) = match parts {
        Some(p) if p.as_slice() < [2, 3].as_slice() => (Version::V2_3, "older than v2.3"),
        Some(p) if p.as_slice() > [2, 8].as_slice() => (Version::V2_8, "newer than v2.8"),
        _ => (fallback, "not a version Sluice knows"),
    };
    let message = format!("MSH-12 is {why}: checked as v{v}");
    out.push(Finding::new(Severity::Warning, codes::VERSION_NOT_BUNDLED, "MSH-12", 1, message));
    v
}

fn is_header(id: &str) -> bool {
    matches!(id, "MSH" | "FHS" | "BHS")
}

fn rep_is_empty(rep: &Repetition) -> bool {
    rep.components.iter().all(|c| c.subcomponents.iter().all(|s| s.is_empty()))
}

fn first_value<'r>(rep: &'r Repetition) -> &'r str {
    rep.components.first().and_then(|c| c.subcomponents.first()).map_or("", |s| s.as_ref())
}

/// Characters of a repetition as written, one per delimiter (escapes decoded).
fn rep_len(rep: &Repetition) -> usize {
    let comps: usize =
        rep.components.iter().map(|c| c.subcomponents.iter().map(|s| s.chars().count()).sum::<usize>()).sum();
    let subs: usize = rep.components.iter().map(|c| c.subcomponents.len().saturating_sub(1)).sum();
    comps + subs + rep.components.len().saturating_sub(1)
}

fn check_segment(schema: &Schema, seg: &Segment, seg_path: &str, options: &Options, out: &mut Vec<Finding>) {
    let Some(def) = schema.segment(&seg.id) else {
        return;
    };
    let header = is_header(&seg.id);
    let line = seg.line;
    let version = schema.version();
    for fd in &def.fields {
        let field = seg.field(fd.seq);
        let present = field.is_some_and(|f| f.repetitions.iter().any(|r| !rep_is_empty(r)));
        let header_field = header && fd.seq <= 2;
        if fd.required && !fd.withdrawn && !present && !header_field {
            let message = format!("required field ({}) is empty", fd.name);
            out.push(Finding::new(
                Severity::Error,
                codes::REQUIRED_FIELD,
                &field_path(seg_path, fd.seq),
                line,
                message,
            ));
        }
    }
    for (i, field) in seg.fields.iter().enumerate() {
        let seq = i + 1;
        if header && seq <= 2 {
            continue;
        }
        let reps: Vec<(usize, &Repetition)> =
            field.repetitions.iter().enumerate().filter(|(_, r)| !rep_is_empty(r)).collect();
        if reps.is_empty() {
            continue;
        }
        let fpath = field_path(seg_path, seq);
        let Some(fd) = def.field(seq) else {
            let message =
                format!("{fpath} has a value but {} defines {} fields in v{version}", seg.id, def.fields.len());
            out.push(Finding::new(Severity::Info, codes::FIELD_NOT_DEFINED, &fpath, line, message));
            continue;
        };
        if fd.withdrawn {
            let message = format!("{fpath} ({}) is withdrawn in v{version} but has a value", fd.name);
            out.push(Finding::new(Severity::Info, codes::WITHDRAWN, &fpath, line, message));
        }
        if !fd.repeating && field.repetitions.len() > 1 {
            let message = format!("{fpath} does not repeat but has {} repetitions", field.repetitions.len());
            out.push(Finding::new(Severity::Warning, codes::NOT_REPEATING, &fpath, line, message));
        }
        let many = field.repetitions.len() > 1;
        for (r, rep) in reps {
            let rpath = if many { format!("{fpath}[{}]", r + 1) } else { fpath.clone() };
            if options.lengths
                && let Some(max) = fd.max_len
            {
                let len = rep_len(rep);
                if len > max {
                    let message = format!("value has {len} characters, more than the maximum length {max}");
                    out.push(Finding::new(Severity::Warning, codes::TOO_LONG, &rpath, line, message));
                }
            }
            let datatype = if fd.datatype == "varies" {
                // OBX-5 takes its type from OBX-2.
                match (seg.id.as_ref(), seq) {
                    ("OBX", 5) => seg.field(2).and_then(|f| f.first()).unwrap_or("").trim().to_string(),
                    _ => String::new(),
                }
            } else {
                fd.datatype.clone()
            };
            let cx = Cx { schema, line, options };
            cx.check_rep(&datatype, fd.table, rep, &rpath, out);
        }
    }
}

fn field_path(seg_path: &str, seq: usize) -> String {
    format!("{seg_path}-{seq}")
}

struct Cx<'a> {
    schema: &'a Schema,
    line: usize,
    options: &'a Options,
}

impl Cx<'_> {
    fn check_rep(&self, datatype: &str, table: Option<u16>, rep: &Repetition, path: &str, out: &mut Vec<Finding>) {
        let Some(dt) = self.schema.datatype(datatype) else {
            return;
        };
        if dt.is_primitive() {
            self.check_primitive(datatype, table, first_value(rep), path, Severity::Error, out);
            return;
        }
        if matches!(datatype, "CE" | "CWE" | "CNE")
            && let Some(t) = table
        {
            let system = rep.components.get(2).and_then(|c| c.subcomponents.first()).map_or("", |s| s.as_ref());
            if system.is_empty() || system.eq_ignore_ascii_case(&format!("HL7{t:04}")) {
                let code = first_value(rep);
                self.check_table(t, "CWE", code, &format!("{path}.1"), out);
            }
        }
        for (c, comp) in rep.components.iter().enumerate() {
            let Some(cdef) = dt.component(c + 1) else {
                continue;
            };
            let ctable = component_table(datatype, c + 1);
            let cpath = format!("{path}.{}", c + 1);
            let Some(cdt) = self.schema.datatype(&cdef.datatype) else {
                continue;
            };
            if cdt.is_primitive() {
                let v = comp.subcomponents.first().map_or("", |s| s.as_ref());
                self.check_primitive(&cdef.datatype, ctable, v, &cpath, Severity::Error, out);
                continue;
            }
            for (s, sub) in comp.subcomponents.iter().enumerate() {
                let Some(sdef) = cdt.component(s + 1) else {
                    continue;
                };
                let stable = component_table(&cdef.datatype, s + 1);
                let spath = format!("{cpath}.{}", s + 1);
                self.check_primitive(&sdef.datatype, stable, sub, &spath, Severity::Error, out);
            }
        }
    }

    fn check_primitive(
        &self,
        datatype: &str,
        table: Option<u16>,
        value: &str,
        path: &str,
        severity: Severity,
        out: &mut Vec<Finding>,
    ) {
        // Empty, blank, or the explicit null "": nothing to check.
        if value.trim().is_empty() || value == "\"\"" {
            return;
        }
        let bad = |code: &'static str, what: &str| {
            Finding::new(severity, code, path, self.line, format!("value is not a valid {what}"))
        };
        match datatype {
            "DTM" | "TS" if !is_dtm(value) => out.push(bad(codes::BAD_DTM, "date-time (DTM)")),
            "DT" if !is_dt(value) => out.push(bad(codes::BAD_DT, "date (DT)")),
            "TM" if !is_tm(value) => out.push(bad(codes::BAD_TM, "time (TM)")),
            "NM" if !is_nm(value) => out.push(bad(codes::BAD_NM, "number (NM)")),
            "SI" if !is_si(value) => out.push(bad(codes::BAD_SI, "sequence id (SI)")),
            "ID" | "IS" => {
                if let Some(t) = table {
                    self.check_table(t, datatype, value, path, out);
                }
            }
            _ => {}
        }
    }

    /// Checks a coded value against table `number`, if bundled. `kind` is the datatype that
    /// carries it (ID, IS, or CWE for the identifier of a coded element).
    fn check_table(&self, number: u16, kind: &str, value: &str, path: &str, out: &mut Vec<Finding>) {
        if !self.options.tables || value.is_empty() || value == "\"\"" {
            return;
        }
        let Some(table) = code_tables().tables.get(&number) else {
            return;
        };
        if table.values.contains(value) {
            return;
        }
        let (severity, code) = match (kind, table.hl7) {
            ("ID", true) => (Severity::Error, codes::NOT_IN_HL7_TABLE),
            ("CWE", true) => (Severity::Warning, codes::CODED_NOT_IN_TABLE),
            _ => (Severity::Info, codes::NOT_IN_USER_TABLE),
        };
        let message = format!("value is not in table {number:04} ({})", table.name);
        out.push(Finding::new(severity, code, path, self.line, message));
    }
}

// ------------------------------------------------------------------------------------------
// Primitive datatypes.

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn num(s: &str) -> u32 {
    s.parse().unwrap_or(u32::MAX)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Splits a `+ZZZZ`/`-ZZZZ` offset off; false when the offset is malformed.
fn split_offset(s: &str) -> Option<(&str, bool)> {
    match s.find(['+', '-']) {
        None => Some((s, true)),
        Some(i) => {
            let off = &s[i + 1..];
            let ok = off.len() == 4 && digits(off) && num(&off[..2]) <= 23 && num(&off[2..]) <= 59;
            Some((&s[..i], ok))
        }
    }
}

/// `HH[MM[SS[.S[S[S[S]]]]]]`, no offset.
fn is_time_part(s: &str) -> bool {
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if !digits(main) || !matches!(main.len(), 2 | 4 | 6) {
        return false;
    }
    if let Some(f) = frac
        && (main.len() != 6 || !digits(f) || f.len() > 4)
    {
        return false;
    }
    num(&main[..2]) <= 23 && (main.len() < 4 || num(&main[2..4]) <= 59) && (main.len() < 6 || num(&main[4..6]) <= 59)
}

/// `YYYY[MM[DD]]` with a real calendar date.
pub fn is_dt(s: &str) -> bool {
    if !digits(s) || !matches!(s.len(), 4 | 6 | 8) {
        return false;
    }
    let year = num(&s[..4]);
    if s.len() >= 6 {
        let month = num(&s[4..6]);
        if !(1..=12).contains(&month) {
            return false;
        }
        if s.len() == 8 {
            let day = num(&s[6..8]);
            return day >= 1 && day <= days_in_month(year, month);
        }
    }
    true
}

/// `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`.
pub fn is_dtm(s: &str) -> bool {
    let Some((main, offset_ok)) = split_offset(s) else {
        return false;
    };
    if !offset_ok || main.len() < 4 {
        return false;
    }
    let date_len = main.len().min(8);
    let Some(date) = main.get(..date_len) else {
        return false;
    };
    if !is_dt(date) {
        return false;
    }
    match main.get(8..) {
        None | Some("") => true,
        Some(time) => date_len == 8 && is_time_part(time),
    }
}

/// `HH[MM[SS[.S[S[S[S]]]]]][+/-ZZZZ]`.
pub fn is_tm(s: &str) -> bool {
    match split_offset(s) {
        Some((main, true)) => is_time_part(main),
        _ => false,
    }
}

/// `[+|-]digits[.digits]` (at least one digit).
pub fn is_nm(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() || !frac.is_empty()) && all_digits(int) && all_digits(frac)
}

/// A non-negative integer.
pub fn is_si(s: &str) -> bool {
    digits(s)
}

// ------------------------------------------------------------------------------------------
// Code tables.

#[derive(Debug)]
struct CodeTable {
    name: String,
    /// HL7-defined (`hl7`) rather than user-defined.
    hl7: bool,
    values: BTreeSet<String>,
}

#[derive(Debug)]
struct CodeTables {
    tables: BTreeMap<u16, CodeTable>,
    components: BTreeMap<(String, usize), u16>,
}

fn code_tables() -> &'static CodeTables {
    static TABLES: OnceLock<CodeTables> = OnceLock::new();
    // `tables_parse` parses the same embedded text in every tested build.
    TABLES.get_or_init(|| parse_code_tables(TABLES_TXT).expect("bundled HL7 tables are checked by the unit tests"))
}

fn component_table(datatype: &str, seq: usize) -> Option<u16> {
    code_tables().components.get(&(datatype.to_string(), seq)).copied()
}

/// The values of bundled table `number` (`1` for 0001), if bundled.
pub fn table_values(number: u16) -> Option<Vec<&'static str>> {
    code_tables().tables.get(&number).map(|t| t.values.iter().map(String::as_str).collect())
}

fn parse_code_tables(text: &str) -> Result<CodeTables, String> {
    let mut tables: BTreeMap<u16, CodeTable> = BTreeMap::new();
    let mut components = BTreeMap::new();
    let mut current: Option<u16> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: &str| format!("tables.txt:{}: {e}", i + 1);
        let cols: Vec<&str> = line.split('|').collect();
        let number = |s: &str| s.parse::<u16>().map_err(|_| at("bad table number"));
        match cols[0] {
            "TABLE" => {
                let [_, n, name, kind] = cols[..] else {
                    return Err(at("expected TABLE|number|name|kind"));
                };
                let hl7 = match kind {
                    "hl7" => true,
                    "user" => false,
                    _ => return Err(at("kind is `hl7` or `user`")),
                };
                let n = number(n)?;
                let table = CodeTable { name: name.to_string(), hl7, values: BTreeSet::new() };
                if tables.insert(n, table).is_some() {
                    return Err(at("table defined twice"));
                }
                current = Some(n);
            }
            "COMPONENT" => {
                let [_, dt, seq, n] = cols[..] else {
                    return Err(at("expected COMPONENT|datatype|seq|table"));
                };
                let seq = seq.parse::<usize>().map_err(|_| at("bad component number"))?;
                components.insert((dt.to_string(), seq), number(n)?);
            }
            value => {
                if cols.len() != 2 || value.is_empty() {
                    return Err(at("expected value|description"));
                }
                let t = current.and_then(|n| tables.get_mut(&n)).ok_or_else(|| at("value before any TABLE"))?;
                if !t.values.insert(value.to_string()) {
                    return Err(at("value listed twice"));
                }
            }
        }
    }
    for ((dt, seq), n) in &components {
        if !tables.contains_key(n) {
            return Err(format!("tables.txt: component {dt}.{seq} names table {n:04}, which is not defined"));
        }
    }
    Ok(CodeTables { tables, components })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse() {
        let t = parse_code_tables(TABLES_TXT).unwrap_or_else(|e| panic!("{e}"));
        for n in [1, 2, 3, 4, 7, 8, 76, 78, 85, 103, 104, 125, 155, 203] {
            assert!(t.tables.contains_key(&n), "table {n:04} missing");
        }
        assert!(t.tables[&1].values.contains("F"));
        assert!(!t.tables[&1].hl7);
        assert!(t.tables[&8].hl7);
    }

    #[test]
    fn codes_are_registered_once() {
        let mut seen = BTreeSet::new();
        for (code, title, expl) in CODES {
            assert!(seen.insert(*code), "{code} twice");
            assert!(code.starts_with("HL7V") && code.len() == 7, "{code}");
            assert!(!title.is_empty() && !expl.is_empty());
        }
        for c in [
            codes::NO_STRUCTURE,
            codes::STRUCTURE_OVERRIDDEN,
            codes::VERSION_NOT_BUNDLED,
            codes::VERSION_ASSUMED,
            codes::MISSING_SEGMENT,
            codes::MISSING_GROUP,
            codes::UNEXPECTED_SEGMENT,
            codes::OUT_OF_ORDER,
            codes::TOO_MANY,
            codes::UNDECLARED_Z,
            codes::REQUIRED_FIELD,
            codes::NOT_REPEATING,
            codes::FIELD_NOT_DEFINED,
            codes::TOO_LONG,
            codes::WITHDRAWN,
            codes::BAD_DTM,
            codes::BAD_DT,
            codes::BAD_TM,
            codes::BAD_NM,
            codes::BAD_SI,
            codes::NOT_IN_HL7_TABLE,
            codes::NOT_IN_USER_TABLE,
            codes::CODED_NOT_IN_TABLE,
        ] {
            assert!(seen.contains(c), "{c} not in CODES");
        }
    }

    #[test]
    fn primitives() {
        for ok in ["2024", "202402", "20240229", "2024022913", "202402291305", "20240229130559", "20240229130559.1234"]
        {
            assert!(is_dtm(ok), "{ok}");
        }
        for ok in ["20240229130559+0100", "20240229-0500", "20240101000000.0-0800"] {
            assert!(is_dtm(ok), "{ok}");
        }
        for bad in [
            "",
            "24",
            "20230229",
            "20241301",
            "2024010",
            "202401011",
            "20240101246000",
            "20240101120000.",
            "20240101120000.12345",
            "2024-01-01",
            "20240101+01",
            "20240101+2500",
            "2024010112000A",
            "é2024",
        ] {
            assert!(!is_dtm(bad), "{bad}");
        }
        assert!(is_dt("19700101") && is_dt("1970") && !is_dt("19700132") && !is_dt("1970011"));
        assert!(is_tm("1230") && is_tm("123059.5") && is_tm("12+0100") && !is_tm("2400") && !is_tm("1260"));
        for ok in ["1", "-1.5", "+0.25", ".5", "5."] {
            assert!(is_nm(ok), "{ok}");
        }
        for bad in ["", "-", ".", "1e5", "1,000", "12 mg", "--1"] {
            assert!(!is_nm(bad), "{bad}");
        }
        assert!(is_si("0") && is_si("12") && !is_si("-1") && !is_si("1.0"));
    }
}
