//! HL7 v2 message structures: which segments a message of a given type may hold, in which order,
//! grouped how and how often, and a matcher that checks a parsed message against them.
//!
//! Invariants:
//! - The structures are data, not code: `data/structures.txt` (format documented at its top) is
//!   embedded with `include_str!` and parsed once, lazily, into one resolved tree per structure
//!   and version ([`tables`] returns `&'static`). Nothing is read from disk at run time.
//! - A malformed file is a test failure (`every_structure_parses`), never a user's panic:
//!   [`tables`] may `expect` because every build whose tests pass parses the same text.
//! - The matcher is deterministic and linear in the number of segments (times the depth of the
//!   structure): a segment is placed at the first position, reading forward from the current
//!   one, where it may start (HL7's own rule, as in HAPI); it never backtracks. A segment that
//!   cannot be placed forward is reported (out of order, repeated, or not part of the
//!   structure) and skipped, and matching goes on from the same position.
//! - Findings name segment ids, group names and segment numbers, never field values.
//! - Z-segments are skipped by the matcher: the caller decides whether they are allowed
//!   (see [`crate::validate::Options`]).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::codec::Message;
use crate::schema::Version;
use crate::validate::{Finding, Severity, codes};

const STRUCTURES_TXT: &str = include_str!("../data/structures.txt");

/// A segment group (or a whole message structure) resolved for one version.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group name (`ORDER_OBSERVATION`), or the structure name (`ORU_R01`) at the root.
    pub name: String,
    pub items: Vec<Item>,
    /// A choice: exactly one of `items` (each an alternative).
    pub choice: bool,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub optional: bool,
    pub repeating: bool,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Segment(String),
    Group(Group),
}

impl Item {
    /// Can `seg` be the first segment of one occurrence of this item?
    fn can_start(&self, seg: &str) -> bool {
        match &self.kind {
            Kind::Segment(id) => id == seg,
            Kind::Group(g) => g.can_start(seg),
        }
    }

    /// Whether `seg`, starting an occurrence of this item, lands on a required item of its
    /// innermost group.
    fn starts_required(&self, seg: &str) -> bool {
        match &self.kind {
            Kind::Segment(_) => !self.optional,
            Kind::Group(g) => g.items.iter().find(|i| i.can_start(seg)).is_some_and(|i| i.starts_required(seg)),
        }
    }

    /// What must come first in an occurrence of this item (the segment a finding can name).
    fn anchor(&self) -> &str {
        match &self.kind {
            Kind::Segment(id) => id,
            Kind::Group(g) => {
                let first = g.items.iter().find(|i| !i.optional || g.choice).or(g.items.first());
                first.map_or("?", Item::anchor)
            }
        }
    }
}

impl Group {
    /// The FIRST set: the leading optional items and the first required one.
    fn can_start(&self, seg: &str) -> bool {
        for item in &self.items {
            if item.can_start(seg) {
                return true;
            }
            if !item.optional && !self.choice {
                return false;
            }
        }
        false
    }

    /// Segments that can open an occurrence of this group (its FIRST set: the leading
    /// optional items and the first required one), sorted and without duplicates.
    pub fn first_segments(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for item in &self.items {
            match &item.kind {
                Kind::Segment(id) => out.push(id.as_str()),
                Kind::Group(g) => out.extend(g.first_segments()),
            }
            if !item.optional && !self.choice {
                break;
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every segment id that occurs in this group, at any depth, sorted and without duplicates.
    pub fn segment_ids(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for item in &self.items {
            match &item.kind {
                Kind::Segment(id) => out.push(id.as_str()),
                Kind::Group(g) => out.extend(g.segment_ids()),
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The named groups directly or indirectly inside this one, outermost first (choices are
    /// looked through: they carry their parent's name and are not groups of their own).
    pub fn subgroups(&self) -> Vec<&Group> {
        let mut out = Vec::new();
        for item in &self.items {
            if let Kind::Group(g) = &item.kind {
                if !g.choice {
                    out.push(g);
                }
                out.extend(g.subgroups());
            }
        }
        out
    }

    /// Every position of `seg` in this group, as paths of item indices.
    fn slots(&self, seg: &str, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        for (i, item) in self.items.iter().enumerate() {
            prefix.push(i);
            match &item.kind {
                Kind::Segment(id) if id == seg => out.push(prefix.clone()),
                Kind::Segment(_) => {}
                Kind::Group(g) => g.slots(seg, prefix, out),
            }
            prefix.pop();
        }
    }

    /// The group at `path` (item indices, each naming a group item), starting here.
    fn at(&self, path: &[usize]) -> Option<&Group> {
        let mut g = self;
        for &i in path {
            match &g.items.get(i)?.kind {
                Kind::Group(inner) => g = inner,
                Kind::Segment(_) => return None,
            }
        }
        Some(g)
    }
}

// ------------------------------------------------------------------------------------------
// Tables: parsed once.

/// All bundled structures, resolved per version, and the event map.
#[derive(Debug)]
pub struct Tables {
    /// `(structure name, version) -> root group`.
    structures: BTreeMap<(String, Version), Group>,
    /// `(message code, trigger event or "*") -> structure name`.
    events: BTreeMap<(String, String), String>,
}

impl Tables {
    /// The structure `name` as defined in `version`.
    pub fn structure(&self, name: &str, version: Version) -> Option<&Group> {
        self.structures.get(&(name.to_string(), version))
    }

    /// Names of the structures bundled for `version`, sorted.
    pub fn names(&self, version: Version) -> Vec<&str> {
        self.structures.keys().filter(|(_, v)| *v == version).map(|(n, _)| n.as_str()).collect()
    }

    /// The standard structure for a message type and trigger event (`ADT`, `A04` -> `ADT_A01`).
    pub fn for_event(&self, code: &str, event: &str) -> Option<&str> {
        self.events
            .get(&(code.to_string(), event.to_string()))
            .or_else(|| self.events.get(&(code.to_string(), "*".to_string())))
            .map(String::as_str)
    }

    /// Every `(code, event, structure)` of the event map.
    pub fn events(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.events.iter().map(|((c, e), s)| (c.as_str(), e.as_str(), s.as_str()))
    }
}

/// The bundled structures, parsed on first use.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        // `every_structure_parses` parses the same embedded text in every tested build.
        parse_tables(STRUCTURES_TXT).expect("bundled HL7 v2 structures are checked by the unit tests")
    })
}

#[derive(Debug, Clone, Copy)]
struct Range {
    since: Version,
    until: Version,
}

impl Range {
    const ALL: Range = Range { since: Version::V2_3, until: Version::V2_8 };

    fn parse(s: &str) -> Result<Range, String> {
        let v = |t: &str, default: Version| {
            if t.is_empty() { Ok(default) } else { Version::parse(t).ok_or_else(|| format!("unknown version {t:?}")) }
        };
        let (since, until) = match s.split_once('-') {
            Some((a, b)) => (v(a, Version::V2_3)?, v(b, Version::V2_8)?),
            None => (v(s, Version::V2_3)?, Version::V2_8),
        };
        if since > until {
            return Err(format!("empty version range {s:?}"));
        }
        Ok(Range { since, until })
    }

    fn contains(self, v: Version) -> bool {
        self.since <= v && v <= self.until
    }

    fn intersect(self, o: Range) -> Range {
        Range { since: self.since.max(o.since), until: self.until.min(o.until) }
    }
}

/// An item as written, with its version range.
#[derive(Debug, Clone)]
struct RawItem {
    kind: RawKind,
    optional: bool,
    repeating: bool,
    range: Range,
}

#[derive(Debug, Clone)]
enum RawKind {
    Segment(String),
    Group { name: String, items: Vec<RawItem>, choice: bool },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open(char),
    Close(char),
    Bar,
    Label(String),
    Name(String),
    Range(String),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '[' | '{' | '<' => {
                chars.next();
                out.push(Tok::Open(c));
            }
            ']' | '}' | '>' => {
                chars.next();
                out.push(Tok::Close(c));
            }
            '|' => {
                chars.next();
                out.push(Tok::Bar);
            }
            '@' => {
                chars.next();
                let mut s = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_digit() || d == '.' || d == '-' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Range(s));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut s = String::new();
                while let Some(&d) = chars.peek() {
                    if d.is_ascii_alphanumeric() || d == '_' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if chars.peek() == Some(&':') {
                    chars.next();
                    out.push(Tok::Label(s));
                } else {
                    out.push(Tok::Name(s));
                }
            }
            other => return Err(format!("unexpected character {other:?}")),
        }
    }
    Ok(out)
}

struct ItemParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl ItemParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// Items until a closing bracket, `|` or the end.
    fn seq(&mut self) -> Result<Vec<RawItem>, String> {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            if matches!(t, Tok::Close(_) | Tok::Bar) {
                break;
            }
            items.push(self.item()?);
        }
        Ok(items)
    }

    fn item(&mut self) -> Result<RawItem, String> {
        let mut item = match self.next() {
            Some(Tok::Name(id)) => {
                let b = id.as_bytes();
                let ok = b.len() == 3
                    && b[0].is_ascii_uppercase()
                    && b[1..].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
                if !ok {
                    return Err(format!("{id:?} is not a segment id (groups need a `NAME:` label)"));
                }
                RawItem { kind: RawKind::Segment(id), optional: false, repeating: false, range: Range::ALL }
            }
            Some(Tok::Open('<')) => {
                let mut alts = vec![self.body()?];
                while self.peek() == Some(&Tok::Bar) {
                    self.next();
                    alts.push(self.body()?);
                }
                self.expect_close('>')?;
                let kind = RawKind::Group { name: String::new(), items: alts, choice: true };
                RawItem { kind, optional: false, repeating: false, range: Range::ALL }
            }
            Some(Tok::Open(open)) => {
                let mut inner = self.body()?;
                if self.peek() == Some(&Tok::Bar) {
                    return Err("`|` outside `< >`".into());
                }
                self.expect_close(if open == '[' { ']' } else { '}' })?;
                if open == '[' {
                    inner.optional = true;
                } else {
                    inner.repeating = true;
                }
                inner
            }
            other => return Err(format!("expected a segment or a bracket, found {other:?}")),
        };
        if let Some(Tok::Range(r)) = self.peek().cloned() {
            self.next();
            item.range = item.range.intersect(Range::parse(&r)?);
        }
        Ok(item)
    }

    /// The inside of brackets: `NAME: items` (a group) or exactly one item.
    fn body(&mut self) -> Result<RawItem, String> {
        if let Some(Tok::Label(name)) = self.peek().cloned() {
            self.next();
            let items = self.seq()?;
            if items.is_empty() {
                return Err(format!("group {name} is empty"));
            }
            return Ok(RawItem {
                kind: RawKind::Group { name, items, choice: false },
                optional: false,
                repeating: false,
                range: Range::ALL,
            });
        }
        let mut items = self.seq()?;
        match items.len() {
            1 => Ok(items.remove(0)),
            0 => Err("empty brackets".into()),
            _ => Err("several items in brackets need a group name (`[{NAME: A B}]`)".into()),
        }
    }

    fn expect_close(&mut self, close: char) -> Result<(), String> {
        match self.next() {
            Some(Tok::Close(c)) if c == close => Ok(()),
            other => Err(format!("expected `{close}`, found {other:?}")),
        }
    }
}

fn parse_items(text: &str) -> Result<Vec<RawItem>, String> {
    let mut p = ItemParser { toks: tokenize(text)?, pos: 0 };
    let items = p.seq()?;
    if let Some(t) = p.peek() {
        return Err(format!("unbalanced {t:?}"));
    }
    Ok(items)
}

/// The items of `raw` that exist in `version`, as a resolved group.
fn resolve(name: &str, raw: &[RawItem], choice: bool, version: Version) -> Result<Group, String> {
    let mut items = Vec::new();
    for r in raw.iter().filter(|r| r.range.contains(version)) {
        let kind = match &r.kind {
            RawKind::Segment(id) => Kind::Segment(id.clone()),
            RawKind::Group { name: inner, items, choice } => {
                let inner = if inner.is_empty() { name } else { inner.as_str() };
                Kind::Group(resolve(inner, items, *choice, version)?)
            }
        };
        items.push(Item { kind, optional: r.optional, repeating: r.repeating });
    }
    if items.len() > 64 {
        return Err(format!("group {name} has more than 64 items"));
    }
    if items.is_empty() {
        return Err(format!("group {name} has no items in v{version}"));
    }
    Ok(Group { name: name.to_string(), items, choice })
}

fn parse_tables(text: &str) -> Result<Tables, String> {
    // Join continuation lines to their definition: (line number, text).
    let mut records: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let last =
                records.last_mut().ok_or_else(|| format!("structures.txt:{}: continuation of nothing", i + 1))?;
            last.1.push(' ');
            last.1.push_str(trimmed);
        } else {
            records.push((i + 1, trimmed.to_string()));
        }
    }
    let mut structures = BTreeMap::new();
    let mut events = BTreeMap::new();
    for (line, rec) in records {
        let at = |e: String| format!("structures.txt:{line}: {e}");
        if let Some(rest) = rec.strip_prefix("EVENTS ") {
            let (name, list) =
                rest.split_once(':').ok_or_else(|| at("expected `EVENTS NAME: CODE^EVENT ...`".into()))?;
            for pair in list.split_whitespace() {
                let (code, event) =
                    pair.split_once('^').ok_or_else(|| at(format!("expected CODE^EVENT, found {pair:?}")))?;
                let key = (code.to_string(), event.to_string());
                if events.insert(key, name.trim().to_string()).is_some() {
                    return Err(at(format!("{pair} is mapped twice")));
                }
            }
            continue;
        }
        let (head, body) = rec.split_once('=').ok_or_else(|| at("expected `NAME = items` or `EVENTS`".into()))?;
        let head = head.trim();
        let (name, range) = match head.split_once('@') {
            Some((n, r)) => (n, Range::parse(r).map_err(at)?),
            None => (head, Range::ALL),
        };
        let raw = parse_items(body).map_err(at)?;
        for v in Version::ALL.into_iter().filter(|v| range.contains(*v)) {
            let group = resolve(name, &raw, false, v).map_err(at)?;
            if !matches!(group.items.first(), Some(Item { kind: Kind::Segment(s), optional: false, .. }) if s == "MSH")
            {
                return Err(at(format!("{name} must start with a required MSH")));
            }
            if structures.insert((name.to_string(), v), group).is_some() {
                return Err(at(format!("{name} is defined twice for v{v}")));
            }
        }
    }
    for ((code, event), name) in &events {
        if !structures.keys().any(|(n, _)| n == name) {
            return Err(format!("structures.txt: {code}^{event} maps to undefined structure {name}"));
        }
    }
    Ok(Tables { structures, events })
}

// ------------------------------------------------------------------------------------------
// Choosing a structure for a message.

/// The structure a message is checked against, and how it was chosen.
#[derive(Debug, Clone)]
pub struct Selected {
    pub name: String,
    pub group: &'static Group,
}

fn msh9(msg: &Message, component: usize) -> Option<String> {
    let msh = msg.segments.first().filter(|s| s.id == "MSH")?;
    let rep = msh.field(9)?.repetitions.first()?;
    let v = rep.components.get(component)?.subcomponents.first()?.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A message code, trigger event or structure name (`ADT`, `A01`, `ADT_A01`, `ZA1`): at most 7
/// ASCII letters, digits or `_`. Only such MSH-9 values are quoted in findings.
fn is_code_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 7 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Chooses the structure for `msg` in `version`: MSH-9.3 when it names a bundled structure,
/// else the standard structure for MSH-9.1/MSH-9.2. Info findings say why a message gets no
/// structure check, or that MSH-9.3 was overridden.
pub fn select(msg: &Message, version: Version, findings: &mut Vec<Finding>) -> Option<Selected> {
    let t = tables();
    let code = msh9(msg, 0);
    let event = msh9(msg, 1);
    let declared = msh9(msg, 2);
    let mut info = |code: &'static str, message: String| {
        findings.push(Finding::new(Severity::Info, code, "MSH-9", 1, message));
    };
    if let Some(d) = &declared
        && let Some(g) = t.structure(d, version)
    {
        return Some(Selected { name: d.clone(), group: g });
    }
    let Some(code) = code else {
        info(codes::NO_STRUCTURE, "MSH-9.1 is empty: the segment structure was not checked".into());
        return None;
    };
    let standard = t.for_event(&code, event.as_deref().unwrap_or(""));
    // MSH-9 is quoted only when it is shaped like a code: in a malformed message it may hold
    // anything, PHI included.
    let typ = match &event {
        Some(e) if is_code_like(&code) && is_code_like(e) => format!("{code}^{e}"),
        None if is_code_like(&code) => code.clone(),
        _ => "the message type in MSH-9 (not shaped like a code)".to_string(),
    };
    let Some(name) = standard else {
        info(codes::NO_STRUCTURE, format!("no bundled structure for {typ}: the segment structure was not checked"));
        return None;
    };
    let Some(group) = t.structure(name, version) else {
        info(
            codes::NO_STRUCTURE,
            format!("structure {name} is not bundled for v{version}: the segment structure was not checked"),
        );
        return None;
    };
    if let Some(d) = &declared
        && d != name
    {
        info(
            codes::STRUCTURE_OVERRIDDEN,
            match is_code_like(d) {
                true => format!(
                    "MSH-9.3 names {d}, not a bundled structure; checked as {name}, the standard structure of {typ}"
                ),
                false => format!(
                    "MSH-9.3 is not a bundled structure name; checked as {name}, the standard structure of {typ}"
                ),
            },
        );
    }
    Some(Selected { name: name.to_string(), group })
}

// ------------------------------------------------------------------------------------------
// The matcher.

struct Frame<'g> {
    group: &'g Group,
    /// Current item.
    idx: usize,
    /// Occurrences of the current item in this group instance.
    count: u32,
    /// Items seen at least once in this group instance (bit per item index).
    seen: u64,
    /// Number of this group instance in the message (the root is 0), for [`place`].
    instance: u32,
}

impl<'g> Frame<'g> {
    fn new(group: &'g Group) -> Self {
        Frame { group, idx: 0, count: 0, seen: 0, instance: 0 }
    }

    fn set(&mut self, idx: usize, count: u32) {
        self.idx = idx;
        self.count = count;
        self.seen |= 1 << idx;
    }
}

/// `OBX` for the first occurrence of a segment, `OBX[3]` for the third.
fn segment_path(id: &str, occurrence: usize) -> String {
    if occurrence <= 1 { id.to_string() } else { format!("{id}[{occurrence}]") }
}

/// Matches `msg` against `structure`. Z-segments (ids starting with `Z`) are skipped.
/// `unexpected` is the severity for segments that are not part of the structure at all.
pub fn check(msg: &Message, structure: &Group, unexpected: Severity) -> Vec<Finding> {
    let mut m = Matcher::new(structure);
    let mut occurrences: BTreeMap<&str, usize> = BTreeMap::new();
    for seg in &msg.segments {
        let id: &str = &seg.id;
        let n = occurrences.entry(id).or_insert(0);
        *n += 1;
        if id.starts_with('Z') {
            continue;
        }
        let path = segment_path(id, *n);
        if !m.place(id, seg.line) {
            m.misplaced(id, &path, seg.line, unexpected);
        } else {
            m.last = Some((id.to_string(), seg.line));
        }
    }
    let end = msg.segments.last().map_or(1, |s| s.line);
    m.close_from(0, end, true);
    let mut findings = m.findings;
    // A segment reported out of order is not also missing.
    let misplaced: Vec<String> = findings
        .iter()
        .filter(|f| f.code == codes::OUT_OF_ORDER)
        .map(|f| format!("required segment {} ", f.path.split('[').next().unwrap_or("")))
        .collect();
    findings.retain(|f| !(f.code == codes::MISSING_SEGMENT && misplaced.iter().any(|m| f.message.starts_with(m))));
    findings
}

/// One group instance enclosing a segment: the group's name and the instance's number (unique
/// within one message, in the order instances open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupInstance<'g> {
    pub name: &'g str,
    pub instance: u32,
    /// The group may occur several times where it stands (`[{...}]`, `{...}`).
    pub repeating: bool,
}

/// Where each segment of `msg` sits in `structure`: for segment `i`, the group instances that
/// enclose it, outermost first (the structure's root is left out). Uses the same forward
/// placement as [`check`]. A Z-segment belongs to the groups of the segment before it.
/// `Err(line)` gives the number of the first segment that cannot be placed (out of order,
/// repeated, or not part of the structure): the message does not follow the structure.
pub fn place<'g>(msg: &Message, structure: &'g Group) -> Result<Vec<Vec<GroupInstance<'g>>>, usize> {
    let mut m = Matcher::new(structure);
    let mut out: Vec<Vec<GroupInstance<'g>>> = Vec::with_capacity(msg.segments.len());
    for seg in &msg.segments {
        if seg.id.starts_with('Z') {
            out.push(out.last().cloned().unwrap_or_default());
            continue;
        }
        if !m.place(&seg.id, seg.line) {
            return Err(seg.line);
        }
        let groups = m
            .stack
            .windows(2)
            .filter(|w| !w[1].group.choice)
            .map(|w| GroupInstance {
                name: w[1].group.name.as_str(),
                instance: w[1].instance,
                repeating: w[0].group.items.get(w[0].idx).is_some_and(|i| i.repeating),
            })
            .collect();
        out.push(groups);
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Pass {
    Needed,
    Required,
    Any,
}

struct Matcher<'g> {
    root: &'g Group,
    stack: Vec<Frame<'g>>,
    findings: Vec<Finding>,
    last: Option<(String, usize)>,
    /// Group instances opened so far (numbers the next one).
    opened: u32,
}

impl<'g> Matcher<'g> {
    fn new(root: &'g Group) -> Self {
        Matcher { root, stack: vec![Frame::new(root)], findings: Vec::new(), last: None, opened: 0 }
    }

    fn missing(&mut self, group: &Group, item: &Item, line: usize, end: bool) {
        let (code, what) = match &item.kind {
            Kind::Segment(id) => (codes::MISSING_SEGMENT, format!("required segment {id}")),
            Kind::Group(g) => {
                (codes::MISSING_GROUP, format!("required group {} (starting with {})", g.name, item.anchor()))
            }
        };
        let path = match &item.kind {
            Kind::Segment(id) => id.clone(),
            Kind::Group(_) => item.anchor().to_string(),
        };
        let place = if end { format!("after segment {line}") } else { format!("before segment {line}") };
        let message = format!("{what} is missing in {} ({place})", group_label(group, self.root));
        self.findings.push(Finding::new(Severity::Error, code, &path, line, message));
    }

    /// Reports the required items left unfilled in frames `from..` (they are being closed).
    fn close_from(&mut self, from: usize, line: usize, end: bool) {
        let frames: Vec<(&'g Group, usize, u32)> =
            self.stack[from..].iter().rev().map(|f| (f.group, f.idx, f.count)).collect();
        for (group, idx, count) in frames {
            if group.choice {
                continue;
            }
            for (i, item) in group.items.iter().enumerate().skip(idx) {
                let occurred = if i == idx { count } else { 0 };
                if !item.optional && occurred == 0 {
                    self.missing(group, item, line, end);
                }
            }
        }
    }

    /// Places `seg` forward from the current position; false when it cannot be. The
    /// standard's structures are ambiguous in places (an ORC after a specimen may open a new
    /// ORDER or the `[ORC]` of a prior result), so positions are tried in three passes, each
    /// from the deepest open group outwards: first a required item the open group instances
    /// still lack, then a position where the segment is required in its group, then any.
    fn place(&mut self, seg: &str, line: usize) -> bool {
        [Pass::Needed, Pass::Required, Pass::Any].into_iter().any(|pass| self.place_pass(seg, line, pass))
    }

    fn place_pass(&mut self, seg: &str, line: usize, pass: Pass) -> bool {
        for depth in (0..self.stack.len()).rev() {
            let (group, start, count) = {
                let f = &self.stack[depth];
                (f.group, f.idx, f.count)
            };
            let top = depth + 1 == self.stack.len();
            for i in start..group.items.len() {
                let item = &group.items[i];
                let occurred = if i == start { count } else { 0 };
                let room = occurred == 0 || item.repeating;
                // A segment item that is the current one at a deeper level was tried there.
                let wanted = match pass {
                    Pass::Needed => !item.optional && occurred == 0,
                    Pass::Required => item.starts_required(seg),
                    Pass::Any => true,
                };
                if room && wanted && item.can_start(seg) {
                    // Close the deeper frames and report the required items skipped here.
                    if !top {
                        self.close_from(depth + 1, line, false);
                    }
                    self.stack.truncate(depth + 1);
                    for (j, skipped) in group.items.iter().enumerate().take(i).skip(start) {
                        let occ = if j == start { count } else { 0 };
                        if !group.choice && !skipped.optional && occ == 0 && j != i {
                            self.missing(group, skipped, line, false);
                        }
                    }
                    self.stack[depth].set(i, occurred + 1);
                    if let Kind::Group(g) = &item.kind {
                        self.enter(g, seg);
                    }
                    return true;
                }
                if group.choice {
                    break;
                }
            }
        }
        false
    }

    /// Opens `group` for a segment in its FIRST set, down to that segment.
    fn enter(&mut self, group: &'g Group, seg: &str) {
        let mut g = group;
        loop {
            let mut frame = Frame::new(g);
            self.opened += 1;
            frame.instance = self.opened;
            let Some(i) = g.items.iter().position(|item| item.can_start(seg)) else {
                self.stack.push(frame);
                return;
            };
            frame.set(i, 1);
            self.stack.push(frame);
            match &g.items[i].kind {
                Kind::Group(inner) => g = inner,
                Kind::Segment(_) => return,
            }
        }
    }

    /// Reports a segment that cannot be placed forward.
    fn misplaced(&mut self, seg: &str, path: &str, line: usize, unexpected: Severity) {
        let structure = &self.root.name;
        let mut slots = Vec::new();
        self.root.slots(seg, &mut Vec::new(), &mut slots);
        if slots.is_empty() {
            let message = format!("segment {seg} is not part of {structure} (segment {line})");
            self.findings.push(Finding::new(unexpected, codes::UNEXPECTED_SEGMENT, path, line, message));
            return;
        }
        let cursor: Vec<usize> = self.stack.iter().map(|f| f.idx).collect();
        // A slot ahead of the cursor: its group was not opened (its first segment is missing).
        if let Some(slot) = slots.iter().find(|s| s.as_slice() > cursor.as_slice()) {
            let k = slot.iter().zip(&cursor).take_while(|(a, b)| a == b).count();
            if let Some(parent) = self.root.at(&slot[..k])
                && let Some(item) = parent.items.get(slot[k])
                && let Kind::Group(g) = &item.kind
            {
                let message = format!("{seg} before {} in {} group (segment {line})", item.anchor(), g.name);
                self.findings.push(Finding::new(Severity::Error, codes::OUT_OF_ORDER, path, line, message));
                return;
            }
        }
        // Behind the cursor: a second occurrence of a non-repeating item in an open group...
        for (depth, frame) in self.stack.iter().enumerate() {
            for slot in &slots {
                if slot.len() == depth + 1 && slot[..depth] == cursor[..depth] {
                    let i = slot[depth];
                    let item = &frame.group.items[i];
                    if frame.seen & (1 << i) != 0 && !item.repeating {
                        let message = format!(
                            "{seg} occurs again, but {} allows one {} (segment {line})",
                            group_label(frame.group, self.root),
                            seg
                        );
                        self.findings.push(Finding::new(Severity::Error, codes::TOO_MANY, path, line, message));
                        return;
                    }
                }
            }
        }
        // ... or a segment that belongs earlier.
        let after = match &self.last {
            Some((id, n)) => format!("after {id} (segment {n})"),
            None => "here".to_string(),
        };
        let within = slots
            .first()
            .and_then(|s| self.root.at(&s[..s.len() - 1]))
            .map_or_else(|| structure.clone(), |g| group_label(g, self.root));
        let message = format!("{seg} {after} is out of order: it belongs earlier in {within} (segment {line})");
        self.findings.push(Finding::new(Severity::Error, codes::OUT_OF_ORDER, path, line, message));
    }
}

fn group_label(group: &Group, root: &Group) -> String {
    if std::ptr::eq(group, root) { group.name.clone() } else { format!("{} group", group.name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_structure_parses() {
        let t = parse_tables(STRUCTURES_TXT).unwrap_or_else(|e| panic!("{e}"));
        for v in Version::ALL {
            for name in ["ACK", "ADT_A01", "ADT_A39", "ORU_R01", "ORM_O01", "MDM_T02", "SIU_S12", "DFT_P03", "VXU_V04"]
            {
                assert!(t.structure(name, v).is_some(), "{name} missing for v{v}");
            }
        }
        assert!(t.structure("OML_O21", Version::V2_3).is_none());
        assert_eq!(t.for_event("ADT", "A04"), Some("ADT_A01"));
        assert_eq!(t.for_event("ACK", "A01"), Some("ACK"));
        assert_eq!(t.for_event("SIU", "S26"), Some("SIU_S12"));
        // v2.3 ORU has no SPECIMEN group; v2.5 has.
        let has_spm = |v| {
            let mut out = Vec::new();
            t.structure("ORU_R01", v).unwrap().slots("SPM", &mut Vec::new(), &mut out);
            !out.is_empty()
        };
        assert!(!has_spm(Version::V2_3));
        assert!(has_spm(Version::V2_5_1));
        // Every ADT event from A01 to A62 that the standard defines is mapped.
        let mapped = t.events().filter(|(c, _, _)| *c == "ADT").count();
        assert!(mapped >= 55, "{mapped} ADT events mapped");
    }

    #[test]
    fn place_assigns_group_instances() {
        let text = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||1\rORC|RE\rOBR|1\rNTE|1\rOBX|1\rNTE|1\r\
                    OBX|2\rZXX|1\rOBR|2\rOBX|1";
        let msg = crate::codec::parse_message(text).unwrap();
        let oru = tables().structure("ORU_R01", Version::V2_5_1).unwrap();
        let placed = place(&msg, oru).unwrap();
        let names = |i: usize| placed[i].iter().map(|g| (g.name, g.instance, g.repeating)).collect::<Vec<_>>();
        assert!(placed[0].is_empty());
        assert_eq!(names(1), [("PATIENT_RESULT", 1, true), ("PATIENT", 2, false)]);
        let order1 = names(3)[1];
        assert_eq!(order1.0, "ORDER_OBSERVATION");
        assert_eq!(names(2)[1], order1, "ORC and OBR open the same order");
        assert_eq!(names(4), names(3), "the NTE after OBR belongs to the order itself");
        let obs1 = names(5);
        assert_eq!(obs1.len(), 3);
        assert_eq!((obs1[2].0, obs1[2].2), ("OBSERVATION", true));
        assert_eq!(names(6), obs1, "the NTE after OBX belongs to the observation");
        assert_ne!(names(7)[2], obs1[2], "each OBX opens an observation");
        assert_eq!(names(8), names(7), "a Z-segment stays with the segment before it");
        assert_ne!(names(9)[1], order1, "a second OBR opens a second order");
        assert_eq!(names(10)[1], names(9)[1]);
        let bad = crate::codec::parse_message("MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5.1\rOBX|1\rPID|1").unwrap();
        assert_eq!(place(&bad, oru).unwrap_err(), 2, "an OBX before any OBR cannot be placed");
    }

    #[test]
    fn syntax_errors_are_reported() {
        for bad in ["X = MSH [PID PV1]", "X = MSH [{PID}", "X = MSH <PID>]", "X = PID", "X = MSH FOOO", "X@2.9 = MSH"] {
            assert!(parse_tables(bad).is_err(), "{bad}");
        }
        assert!(parse_tables("X = MSH <A: PID | PV1> [{G: OBX [NTE]@2.5}]").is_ok());
    }
}
