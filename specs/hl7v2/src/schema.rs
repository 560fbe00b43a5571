//! HL7 v2 schema tables: segments, fields, components and datatypes for v2.3 to v2.8, with the
//! PHI class of every identifying field. The compiler resolves and type-checks paths such as
//! `PID-5.1` or `PID-3[*].4.1` against them and traces PHI from the class of each field.
//!
//! Invariants:
//! - The tables are data, not code: `data/segments.txt` and `data/datatypes.txt` (their format
//!   is documented at the top of each file) are embedded at build time with `include_str!`.
//!   Nothing is read from disk at run time.
//! - Each version's [`Schema`] is built once, lazily, in a `OnceLock`, and lives for the
//!   program's lifetime ([`schema`] returns `&'static Schema`).
//! - A malformed table is a build-time test failure, never a runtime panic for users: the unit
//!   test `every_version_builds` builds every version and checks the whole table (syntax,
//!   field and component numbering without gaps, every referenced datatype defined in that
//!   version, known PHI classes). [`schema`] may therefore `expect` an internal table error:
//!   it cannot happen in a binary whose tests passed.
//! - A field's PHI class covers the whole field: components and subcomponents inherit it.
//! - [`Schema::defines`] answers what `segment(id).is_some()` answers (a property test holds
//!   them together), from a bitmap of the usual three-character ids: the source step asks it
//!   for every segment of every message.
//! - Withdrawn fields stay defined (with [`FieldDef::withdrawn`] set), so a path written
//!   against an older version still resolves under a newer one.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use sluice_spec_core::{PhiClass, ValueType};

const SEGMENTS_TXT: &str = include_str!("../data/segments.txt");
const DATATYPES_TXT: &str = include_str!("../data/datatypes.txt");

/// An HL7 v2 version with bundled tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    V2_3,
    V2_3_1,
    V2_4,
    V2_5,
    V2_5_1,
    V2_6,
    V2_7,
    V2_8,
}

impl Version {
    /// Every supported version, oldest first.
    pub const ALL: [Version; 8] = [
        Version::V2_3,
        Version::V2_3_1,
        Version::V2_4,
        Version::V2_5,
        Version::V2_5_1,
        Version::V2_6,
        Version::V2_7,
        Version::V2_8,
    ];

    /// Parses `"2.5.1"` or `"v2.5.1"` (as written in MSH-12 or a parser profile).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.strip_prefix('v').or_else(|| s.strip_prefix('V')).unwrap_or(s);
        Version::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The version as HL7 writes it: `"2.5.1"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2_3 => "2.3",
            Version::V2_3_1 => "2.3.1",
            Version::V2_4 => "2.4",
            Version::V2_5 => "2.5",
            Version::V2_5_1 => "2.5.1",
            Version::V2_6 => "2.6",
            Version::V2_7 => "2.7",
            Version::V2_8 => "2.8",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One field of a segment, as defined in one version.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Sequence number: `PID-5` has seq 5.
    pub seq: usize,
    pub name: String,
    /// Datatype id, defined in the same version's table (`XPN`, `CX`, `TS`, `varies`...).
    pub datatype: String,
    pub repeating: bool,
    /// Optionality `R` in this version.
    pub required: bool,
    /// Maximum length where known (informative; v2.5 values for most fields).
    pub max_len: Option<usize>,
    /// HL7 table number (`Some(1)` for table 0001, Administrative Sex).
    pub table: Option<u16>,
    /// PHI class of the whole field; components inherit it.
    pub phi: Option<PhiClass>,
    /// Withdrawn in this version: still resolves, but new messages should not use it.
    pub withdrawn: bool,
}

/// A segment as defined in one version.
#[derive(Debug, Clone)]
pub struct SegmentDef {
    pub id: String,
    pub name: String,
    /// Fields in order; `fields[i].seq == i + 1`.
    pub fields: Vec<FieldDef>,
}

impl SegmentDef {
    /// The field with sequence number `seq` (1-based).
    pub fn field(&self, seq: usize) -> Option<&FieldDef> {
        seq.checked_sub(1).and_then(|i| self.fields.get(i))
    }
}

/// One component (or subcomponent) of a composite datatype.
#[derive(Debug, Clone)]
pub struct ComponentDef {
    pub seq: usize,
    pub name: String,
    /// Datatype id, defined in the same version's table: a composite here means the path may
    /// go one level deeper (`PID-5.1.1`: XPN.1 is FN, FN.1 is ST).
    pub datatype: String,
}

/// A datatype as defined in one version.
#[derive(Debug, Clone)]
pub struct DataTypeDef {
    pub id: String,
    pub name: String,
    /// Components in order; `components[i].seq == i + 1`. Empty for primitive types.
    pub components: Vec<ComponentDef>,
}

impl DataTypeDef {
    /// A primitive datatype has no components (`ST`, `NM`, `DTM`...).
    pub fn is_primitive(&self) -> bool {
        self.components.is_empty()
    }

    /// The component with sequence number `seq` (1-based).
    pub fn component(&self, seq: usize) -> Option<&ComponentDef> {
        seq.checked_sub(1).and_then(|i| self.components.get(i))
    }
}

/// The segment and datatype tables of one HL7 v2 version.
pub struct Schema {
    version: Version,
    segments: BTreeMap<String, SegmentDef>,
    datatypes: BTreeMap<String, DataTypeDef>,
    /// One bit per id of the shape [`id_bit`] numbers: set when the id is in `segments`.
    defined: Vec<u64>,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("version", &self.version)
            .field("segments", &self.segments.len())
            .field("datatypes", &self.datatypes.len())
            .finish()
    }
}

impl Schema {
    pub fn version(&self) -> Version {
        self.version
    }

    /// The segment with this id (`"PID"`), if the version defines it.
    pub fn segment(&self, id: &str) -> Option<&SegmentDef> {
        self.segments.get(id)
    }

    /// Whether this version defines segment `id`: `segment(id).is_some()`, without the map
    /// look-up for ids of the usual shape (an uppercase letter, then two uppercase letters or
    /// digits).
    pub fn defines(&self, id: &str) -> bool {
        match id_bit(id) {
            Some(i) => self.defined.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1),
            None => self.segments.contains_key(id),
        }
    }

    /// Ids of every segment of this version, sorted.
    pub fn segment_ids(&self) -> impl Iterator<Item = &str> {
        self.segments.keys().map(String::as_str)
    }

    /// The datatype with this id (`"XPN"`), if the version defines it.
    pub fn datatype(&self, id: &str) -> Option<&DataTypeDef> {
        self.datatypes.get(id)
    }

    /// Ids of every datatype of this version, sorted.
    pub fn datatype_ids(&self) -> impl Iterator<Item = &str> {
        self.datatypes.keys().map(String::as_str)
    }
}

/// The tables of `version`, built on first use and kept for the life of the process.
pub fn schema(version: Version) -> &'static Schema {
    static SCHEMAS: [OnceLock<Schema>; 8] = [const { OnceLock::new() }; 8];
    SCHEMAS[version.index()].get_or_init(|| {
        // The unit test `every_version_builds` builds every version from the same embedded
        // text, so this cannot fail in a tested build.
        build(version).expect("bundled HL7 v2 tables are checked by the unit tests")
    })
}

/// Value type of a primitive HL7 datatype: ST/TX/FT -> String, ID/IS -> Code, NM -> Decimal,
/// SI -> Integer, DT -> Date, DTM/TS -> DateTime, TM -> String; composite types -> Struct
/// (unknown -> String).
///
/// `TS` is a composite before v2.7 (TS.1 is the time, TS.2 its precision) but a path to a TS
/// field means its time in practice, so it is `DateTime` in every version.
pub fn value_type(datatype: &str) -> ValueType {
    match datatype {
        "ST" | "TX" | "FT" | "TM" => ValueType::String,
        "ID" | "IS" => ValueType::Code,
        "NM" => ValueType::Decimal,
        "SI" => ValueType::Integer,
        "DT" => ValueType::Date,
        "DTM" | "TS" => ValueType::DateTime,
        other => {
            let composite =
                Version::ALL.iter().rev().any(|v| schema(*v).datatype(other).is_some_and(|dt| !dt.is_primitive()));
            if composite { ValueType::Struct } else { ValueType::String }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Parsing: the text tables become version-independent rows once, then one Schema per version.

/// A value that may change between versions: `(first version, value)`, ascending, the first
/// entry at v2.3.
#[derive(Debug, Clone)]
struct Versioned(Vec<(Version, String)>);

impl Versioned {
    fn parse(s: &str) -> Result<Versioned, String> {
        let mut parts = s.split(';');
        let base = parts.next().unwrap_or("").trim().to_string();
        let mut entries = vec![(Version::V2_3, base)];
        for part in parts {
            let (ver, value) = part.split_once('=').ok_or_else(|| format!("expected `<version>=<value>` in {s:?}"))?;
            let ver = parse_version(ver.trim())?;
            if ver <= entries[entries.len() - 1].0 {
                return Err(format!("versions must ascend in {s:?}"));
            }
            entries.push((ver, value.trim().to_string()));
        }
        Ok(Versioned(entries))
    }

    fn at(&self, version: Version) -> &str {
        self.0.iter().rev().find(|(since, _)| *since <= version).map_or("", |(_, value)| value.as_str())
    }

    fn all_values(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
struct Range {
    since: Version,
    until: Version,
}

impl Range {
    fn parse(since: &str, until: &str) -> Result<Range, String> {
        let since = if since.is_empty() { Version::V2_3 } else { parse_version(since)? };
        let until = if until.is_empty() { Version::V2_8 } else { parse_version(until)? };
        if since > until {
            return Err(format!("since {since} is after until {until}"));
        }
        Ok(Range { since, until })
    }

    fn contains(self, v: Version) -> bool {
        self.since <= v && v <= self.until
    }
}

fn parse_version(s: &str) -> Result<Version, String> {
    Version::parse(s).ok_or_else(|| format!("unknown version {s:?}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Field,
    All,
}

#[derive(Debug)]
struct Rule {
    scope: Scope,
    since: Version,
    from: String,
    to: String,
}

#[derive(Debug)]
struct RawComponent {
    line: usize,
    seq: usize,
    name: Versioned,
    datatype: Versioned,
    range: Range,
}

#[derive(Debug)]
struct RawDatatype {
    line: usize,
    id: String,
    name: String,
    range: Range,
    components: Vec<RawComponent>,
}

#[derive(Debug)]
struct RawField {
    line: usize,
    seq: usize,
    name: Versioned,
    datatype: Versioned,
    opt: Versioned,
    rep: Versioned,
    len: Versioned,
    table: Versioned,
    phi: Option<PhiClass>,
    range: Range,
}

#[derive(Debug)]
struct RawSegment {
    line: usize,
    id: String,
    name: String,
    range: Range,
    fields: Vec<RawField>,
}

#[derive(Debug)]
struct RawTables {
    rules: Vec<Rule>,
    datatypes: Vec<RawDatatype>,
    segments: Vec<RawSegment>,
}

/// Data lines of a table file: `(line number, columns)`, comments and blank lines skipped.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            None
        } else {
            Some((i + 1, line.split('|').map(str::trim).collect()))
        }
    })
}

/// Column `i`, or "" when a trailing empty column was left out.
fn col<'a>(cols: &[&'a str], i: usize) -> &'a str {
    cols.get(i).copied().unwrap_or("")
}

fn parse_seq(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("bad sequence number {s:?}")),
    }
}

fn check_width(cols: &[&str], max: usize) -> Result<(), String> {
    if cols.len() > max { Err(format!("{} columns, at most {max} expected", cols.len())) } else { Ok(()) }
}

fn parse_datatypes(text: &str, file: &str) -> Result<(Vec<Rule>, Vec<RawDatatype>), String> {
    let mut rules = Vec::new();
    let mut datatypes: Vec<RawDatatype> = Vec::new();
    for (line, cols) in data_lines(text) {
        let at = |e: String| format!("{file}:{line}: {e}");
        match cols[0] {
            "RULE" => {
                check_width(&cols, 5).map_err(at)?;
                let scope = match col(&cols, 1) {
                    "field" => Scope::Field,
                    "all" => Scope::All,
                    other => return Err(at(format!("unknown rule scope {other:?}"))),
                };
                let since = parse_version(col(&cols, 2)).map_err(at)?;
                let (from, to) = (col(&cols, 3), col(&cols, 4));
                if from.is_empty() || to.is_empty() {
                    return Err(at("a rule needs both datatypes".into()));
                }
                rules.push(Rule { scope, since, from: from.into(), to: to.into() });
            }
            "DT" => {
                check_width(&cols, 5).map_err(at)?;
                let id = col(&cols, 1);
                if id.is_empty() {
                    return Err(at("datatype without id".into()));
                }
                datatypes.push(RawDatatype {
                    line,
                    id: id.into(),
                    name: col(&cols, 2).into(),
                    range: Range::parse(col(&cols, 3), col(&cols, 4)).map_err(at)?,
                    components: Vec::new(),
                });
            }
            _ => {
                check_width(&cols, 5).map_err(at)?;
                let dt = datatypes.last_mut().ok_or_else(|| at("component before any DT line".into()))?;
                dt.components.push(RawComponent {
                    line,
                    seq: parse_seq(cols[0]).map_err(at)?,
                    name: Versioned::parse(col(&cols, 1)).map_err(at)?,
                    datatype: Versioned::parse(col(&cols, 2)).map_err(at)?,
                    range: Range::parse(col(&cols, 3), col(&cols, 4)).map_err(at)?,
                });
            }
        }
    }
    Ok((rules, datatypes))
}

fn parse_segments(text: &str, file: &str) -> Result<Vec<RawSegment>, String> {
    let mut segments: Vec<RawSegment> = Vec::new();
    for (line, cols) in data_lines(text) {
        let at = |e: String| format!("{file}:{line}: {e}");
        if cols[0] == "SEG" {
            check_width(&cols, 5).map_err(at)?;
            let id = col(&cols, 1);
            let valid_id = id.len() == 3 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !valid_id {
                return Err(at(format!("bad segment id {id:?}")));
            }
            segments.push(RawSegment {
                line,
                id: id.into(),
                name: col(&cols, 2).into(),
                range: Range::parse(col(&cols, 3), col(&cols, 4)).map_err(at)?,
                fields: Vec::new(),
            });
            continue;
        }
        check_width(&cols, 10).map_err(at)?;
        let segment = segments.last_mut().ok_or_else(|| at("field before any SEG line".into()))?;
        let phi = match col(&cols, 7) {
            "" => None,
            name => Some(PhiClass::parse(name).ok_or_else(|| at(format!("unknown PHI class {name:?}")))?),
        };
        let field = RawField {
            line,
            seq: parse_seq(cols[0]).map_err(at)?,
            name: Versioned::parse(col(&cols, 1)).map_err(at)?,
            datatype: Versioned::parse(col(&cols, 2)).map_err(at)?,
            opt: Versioned::parse(col(&cols, 3)).map_err(at)?,
            rep: Versioned::parse(col(&cols, 4)).map_err(at)?,
            len: Versioned::parse(col(&cols, 5)).map_err(at)?,
            table: Versioned::parse(col(&cols, 6)).map_err(at)?,
            phi,
            range: Range::parse(col(&cols, 8), col(&cols, 9)).map_err(at)?,
        };
        // Check every per-version value now, so that building a version only resolves.
        for v in field.opt.all_values() {
            parse_opt(v).map_err(at)?;
        }
        for v in field.rep.all_values() {
            parse_rep(v).map_err(at)?;
        }
        for v in field.len.all_values() {
            parse_len(v).map_err(at)?;
        }
        for v in field.table.all_values() {
            parse_table(v).map_err(at)?;
        }
        segment.fields.push(field);
    }
    Ok(segments)
}

/// `(required, withdrawn)` for an optionality code.
fn parse_opt(s: &str) -> Result<(bool, bool), String> {
    match s {
        "R" => Ok((true, false)),
        "O" | "C" | "B" => Ok((false, false)),
        "W" => Ok((false, true)),
        other => Err(format!("unknown optionality {other:?} (R, O, C, B or W)")),
    }
}

fn parse_rep(s: &str) -> Result<bool, String> {
    match s {
        "" => Ok(false),
        "Y" => Ok(true),
        other => Err(format!("unknown repetition flag {other:?} (Y or empty)")),
    }
}

fn parse_len(s: &str) -> Result<Option<usize>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| format!("bad length {s:?}"))
}

fn parse_table(s: &str) -> Result<Option<u16>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() != 4 {
        return Err(format!("table number {s:?} must have 4 digits"));
    }
    s.parse().map(Some).map_err(|_| format!("bad table number {s:?}"))
}

fn raw_tables() -> Result<&'static RawTables, String> {
    static RAW: OnceLock<Result<RawTables, String>> = OnceLock::new();
    RAW.get_or_init(|| {
        let (rules, datatypes) = parse_datatypes(DATATYPES_TXT, "data/datatypes.txt")?;
        let segments = parse_segments(SEGMENTS_TXT, "data/segments.txt")?;
        Ok(RawTables { rules, datatypes, segments })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn apply_rules(rules: &[Rule], version: Version, is_field: bool, datatype: &str) -> String {
    let mut dt = datatype.to_string();
    for rule in rules {
        let in_scope = is_field || rule.scope == Scope::All;
        if in_scope && version >= rule.since && dt == rule.from {
            dt.clone_from(&rule.to);
        }
    }
    dt
}

/// Builds and checks the tables of one version.
fn build(version: Version) -> Result<Schema, String> {
    let raw = raw_tables()?;

    let mut datatypes = BTreeMap::new();
    for dt in raw.datatypes.iter().filter(|d| d.range.contains(version)) {
        let at = |line: usize, e: String| format!("data/datatypes.txt:{line}: {version}: {e}");
        let mut components = Vec::new();
        for c in dt.components.iter().filter(|c| c.range.contains(version)) {
            if c.seq != components.len() + 1 {
                return Err(at(c.line, format!("{} component {} follows {}", dt.id, c.seq, components.len())));
            }
            let datatype = apply_rules(&raw.rules, version, false, c.datatype.at(version));
            components.push(ComponentDef { seq: c.seq, name: c.name.at(version).to_string(), datatype });
        }
        let def = DataTypeDef { id: dt.id.clone(), name: dt.name.clone(), components };
        if datatypes.insert(dt.id.clone(), def).is_some() {
            return Err(at(dt.line, format!("datatype {} defined twice", dt.id)));
        }
    }

    let mut segments = BTreeMap::new();
    for seg in raw.segments.iter().filter(|s| s.range.contains(version)) {
        let at = |line: usize, e: String| format!("data/segments.txt:{line}: {version}: {e}");
        let mut fields = Vec::new();
        for f in seg.fields.iter().filter(|f| f.range.contains(version)) {
            if f.seq != fields.len() + 1 {
                return Err(at(f.line, format!("{} field {} follows {}", seg.id, f.seq, fields.len())));
            }
            let name = f.name.at(version);
            if name.is_empty() {
                return Err(at(f.line, format!("{}-{} has no name", seg.id, f.seq)));
            }
            let (required, withdrawn) = parse_opt(f.opt.at(version)).map_err(|e| at(f.line, e))?;
            fields.push(FieldDef {
                seq: f.seq,
                name: name.to_string(),
                datatype: apply_rules(&raw.rules, version, true, f.datatype.at(version)),
                repeating: parse_rep(f.rep.at(version)).map_err(|e| at(f.line, e))?,
                required,
                max_len: parse_len(f.len.at(version)).map_err(|e| at(f.line, e))?,
                table: parse_table(f.table.at(version)).map_err(|e| at(f.line, e))?,
                phi: f.phi,
                withdrawn,
            });
        }
        let def = SegmentDef { id: seg.id.clone(), name: seg.name.clone(), fields };
        if segments.insert(seg.id.clone(), def).is_some() {
            return Err(at(seg.line, format!("segment {} defined twice", seg.id)));
        }
    }

    // Every datatype named by a field or a component must exist in this version.
    for dt in datatypes.values() {
        for c in &dt.components {
            if !datatypes.contains_key(&c.datatype) {
                return Err(format!(
                    "data/datatypes.txt: {version}: {}.{} ({}) uses undefined datatype {:?}",
                    dt.id, c.seq, c.name, c.datatype
                ));
            }
        }
    }
    for seg in segments.values() {
        for f in &seg.fields {
            if !datatypes.contains_key(&f.datatype) {
                return Err(format!(
                    "data/segments.txt: {version}: {}-{} ({}) uses undefined datatype {:?}",
                    seg.id, f.seq, f.name, f.datatype
                ));
            }
        }
    }

    let mut defined = vec![0u64; ID_BITS.div_ceil(64)];
    for i in segments.keys().filter_map(|id| id_bit(id)) {
        defined[i / 64] |= 1 << (i % 64);
    }
    Ok(Schema { version, segments, datatypes, defined })
}

/// How many ids [`id_bit`] numbers: 26 first characters, 36 for each of the other two.
const ID_BITS: usize = 26 * 36 * 36;

/// The number of a segment id of the usual shape (`PID`, `PV1`, `ZX9`): an uppercase letter,
/// then two uppercase letters or digits; `None` for any other id.
fn id_bit(id: &str) -> Option<usize> {
    let &[a, b, c] = id.as_bytes() else { return None };
    let rest = |x: u8| match x {
        b'A'..=b'Z' => Some(usize::from(x - b'A')),
        b'0'..=b'9' => Some(usize::from(x - b'0') + 26),
        _ => None,
    };
    let first = a.is_ascii_uppercase().then(|| usize::from(a - b'A'))?;
    Some((first * 36 + rest(b)?) * 36 + rest(c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The bitmap answers what the map answers, for defined ids, other ids of the usual
        /// shape and ids of any other shape.
        #[test]
        fn defines_is_segment_is_some(id in "[A-Z0-9a-z]{0,4}|PID|MSH|OBX|PV1|ZZ1|EVN", v in 0usize..8) {
            let s = schema(Version::ALL[v]);
            proptest::prop_assert_eq!(s.defines(&id), s.segment(&id).is_some());
        }
    }

    #[test]
    fn defines_every_segment_id() {
        for v in Version::ALL {
            let s = schema(v);
            assert!(s.segment_ids().all(|id| s.defines(id)));
            assert!(!s.defines("ZZZ") && !s.defines("PI") && !s.defines(""));
        }
    }

    /// The guarantee behind `schema()`'s `expect`: every version's tables parse and check.
    #[test]
    fn every_version_builds() {
        for v in Version::ALL {
            if let Err(e) = build(v) {
                panic!("HL7 v{v} tables are invalid: {e}");
            }
        }
    }

    #[test]
    fn versions_round_trip() {
        for v in Version::ALL {
            assert_eq!(Version::parse(v.as_str()), Some(v));
            assert_eq!(Version::parse(&format!("v{v}")), Some(v));
            assert_eq!(v.to_string(), v.as_str());
        }
        assert_eq!(Version::parse("2.5.1"), Some(Version::V2_5_1));
        assert_eq!(Version::parse("2.9"), None);
        assert_eq!(Version::parse(""), None);
        assert!(Version::V2_3 < Version::V2_8);
    }

    #[test]
    fn versioned_values_resolve_by_version() {
        let v = Versioned::parse("O;2.5=B;2.7=W").unwrap();
        assert_eq!(v.at(Version::V2_3), "O");
        assert_eq!(v.at(Version::V2_4), "O");
        assert_eq!(v.at(Version::V2_5), "B");
        assert_eq!(v.at(Version::V2_6), "B");
        assert_eq!(v.at(Version::V2_8), "W");
        assert!(Versioned::parse("O;2.7=W;2.5=B").is_err());
        assert!(Versioned::parse("O;2.9=W").is_err());
        assert!(Versioned::parse("O;W").is_err());
    }

    #[test]
    fn malformed_rows_are_rejected_with_a_line_number() {
        let bad = [
            "SEG|PID|x\n1|a|ST|Q\n",
            "SEG|PID|x\n1|a|ST|O|N\n",
            "SEG|PID|x\n1|a|ST|O||x\n",
            "SEG|PID|x\n1|a|ST|O|||1\n",
            "SEG|PID|x\n1|a|ST|O||||secret\n",
            "SEG|PID|x\n1|a|ST|O||||||2.9\n",
            "SEG|pid|x\n",
            "1|a|ST\n",
        ];
        for text in bad {
            let err = parse_segments(text, "t").unwrap_err();
            assert!(err.starts_with("t:"), "{err}");
        }
    }

    #[test]
    fn rules_rewrite_datatypes_from_their_version() {
        let pid = schema(Version::V2_5).segment("PID").unwrap();
        assert_eq!(pid.field(7).unwrap().datatype, "TS");
        assert_eq!(pid.field(8).unwrap().datatype, "IS");
        let pid = schema(Version::V2_7).segment("PID").unwrap();
        assert_eq!(pid.field(7).unwrap().datatype, "DTM");
        assert_eq!(pid.field(8).unwrap().datatype, "CWE");
        assert_eq!(pid.field(10).unwrap().datatype, "CWE");
        // Components follow the `all` rules only: HD.1 stays IS in 2.7.
        let hd = schema(Version::V2_7).datatype("HD").unwrap();
        assert_eq!(hd.component(1).unwrap().datatype, "IS");
        let cq = schema(Version::V2_7).datatype("CQ").unwrap();
        assert_eq!(cq.component(2).unwrap().datatype, "CWE");
    }

    #[test]
    fn value_types_of_primitives_and_composites() {
        assert_eq!(value_type("ST"), ValueType::String);
        assert_eq!(value_type("TX"), ValueType::String);
        assert_eq!(value_type("FT"), ValueType::String);
        assert_eq!(value_type("TM"), ValueType::String);
        assert_eq!(value_type("ID"), ValueType::Code);
        assert_eq!(value_type("IS"), ValueType::Code);
        assert_eq!(value_type("NM"), ValueType::Decimal);
        assert_eq!(value_type("SI"), ValueType::Integer);
        assert_eq!(value_type("DT"), ValueType::Date);
        assert_eq!(value_type("DTM"), ValueType::DateTime);
        assert_eq!(value_type("TS"), ValueType::DateTime);
        assert_eq!(value_type("XPN"), ValueType::Struct);
        assert_eq!(value_type("CM_MSG"), ValueType::Struct);
        assert_eq!(value_type("MSG"), ValueType::Struct);
        assert_eq!(value_type("varies"), ValueType::String);
        assert_eq!(value_type("ZZZ"), ValueType::String);
    }

    #[test]
    fn field_and_component_lookups_are_one_based() {
        let s = schema(Version::V2_5_1);
        let pid = s.segment("PID").unwrap();
        assert!(pid.field(0).is_none());
        assert_eq!(pid.field(1).unwrap().seq, 1);
        assert!(pid.field(pid.fields.len() + 1).is_none());
        let xpn = s.datatype("XPN").unwrap();
        assert!(xpn.component(0).is_none());
        assert_eq!(xpn.component(1).unwrap().datatype, "FN");
        assert!(s.datatype("ST").unwrap().is_primitive());
    }
}
