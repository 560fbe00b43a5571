//! Implementation guides as data: the bundled TR3 structures (`specs/x12/guides/*.txt`), their
//! parser, and guide selection from the envelopes.
//!
//! Bundled guides cost only what is used: the [`catalog`] reads each guide's `guide` and `also`
//! lines (enough to select it, name it, list it), and a guide's structure is parsed the first
//! time something asks for it ([`Bundled::guide`]), after its edition's segment dictionary,
//! which is parsed once for all the guides that share it.
//!
//! # The guide format
//!
//! A guide is a text file, one statement per line; `#` starts a comment. A segment dictionary
//! (`segments-5010.txt`, or `segments-4010.txt` for the 4010 guides, whose element lists and
//! lengths differ) is read before the guide:
//!
//! ```text
//! def NM1 01:ID:2-3 02:ID:1-1 03:AN:1-60 ...      element position, type, min-max length
//! def CLM 05:C 05-1:AN:1-2 05-2:ID:1-2 ...        a composite and its components
//! def EB 03:ID:1-2:99 ...                         a repeating element (at most 99 values)
//! guide 005010X222A1 837 HC Health Care Claim: Professional   id, set (ST01), GS01, title
//! also 005010X223A3                               another GS08/ST03 read with this structure
//! codes POS 01 02 03 ...                          a named code list, used as `=@POS`
//! ST R 1 !01R=837 02R 03R=005010X222A1             a segment: id, usage, max repeats, elements
//! loop 2010AA R 1 Billing Provider Name            a loop: id, usage, max repeats, title
//!   NM1 R 1 !01R=85 02R=1,2 03R^name ...           its segments and loops, indented 2 spaces
//! ref 2300 S 100                                   a loop defined earlier, again here
//! ```
//!
//! Usage is `R` (required), `S` (situational) or `N` (not used); max repeats a number or `>1`
//! (unbounded). An element token is `NN[-K]U[=codes][^phi]`: position (and component), usage,
//! allowed codes (comma-separated, or `@LIST`), and the PHI class of its values (names as in
//! `sluice_spec_core::PhiClass`: `name`, `dob`, `address`, `health_plan_id`, ...). Elements
//! (and components of a used composite) not listed are not used. A token starting with `!` is
//! the segment's *key*: the segment matches a place in the guide only when that element holds
//! one of its codes (how `NM1*85` and `NM1*87` go to different loops). A loop's first segment
//! starts it. Loops started by `HL` may come in any order; `parent=ID` in their title says
//! which loop an HL02 must point to.
//!
//! Invariants: bundled guides and dictionaries parse, and the catalog's header of each agrees
//! with its parse (unit tests hold both, so the `panic`s in [`Bundled::guide`] and [`catalog`]
//! cannot fire); a guide is parsed at most once per process; every loop starts with a segment;
//! positions are 1-based and within the dictionary; a key has codes.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use sluice_spec_core::{PhiClass, ValueType};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Usage {
    Required,
    Situational,
    NotUsed,
}

impl Usage {
    fn parse(c: char) -> Option<Usage> {
        match c {
            'R' => Some(Usage::Required),
            'S' => Some(Usage::Situational),
            'N' => Some(Usage::NotUsed),
            _ => None,
        }
    }
}

/// X12 data element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// String (`AN`).
    Text,
    /// Code (`ID`).
    Id,
    /// Integer with `n` implied decimals (`N0`, `N2`).
    Numeric(u8),
    /// Decimal (`R`).
    Decimal,
    /// `CCYYMMDD` (`DT`).
    Date,
    /// `HHMM[SS[D[D]]]` (`TM`).
    Time,
    /// A composite (`C`): its components are listed.
    Composite,
}

impl ElementType {
    /// The type an X12 name (`AN`, `ID`, `N0`, `N2`, `R`, `DT`, `TM`, `C`) stands for.
    pub fn parse(s: &str) -> Option<ElementType> {
        Some(match s {
            "AN" => ElementType::Text,
            "ID" => ElementType::Id,
            "R" => ElementType::Decimal,
            "DT" => ElementType::Date,
            "TM" => ElementType::Time,
            "C" => ElementType::Composite,
            n if n.len() == 2 && n.starts_with('N') => ElementType::Numeric(n[1..].parse().ok()?),
            _ => return None,
        })
    }

    /// The X12 name (`AN`, `ID`, `N0`, `R`, `DT`, `TM`, `C`).
    pub fn as_str(self) -> &'static str {
        match self {
            ElementType::Text => "AN",
            ElementType::Id => "ID",
            ElementType::Numeric(0) => "N0",
            ElementType::Numeric(_) => "N2",
            ElementType::Decimal => "R",
            ElementType::Date => "DT",
            ElementType::Time => "TM",
            ElementType::Composite => "C",
        }
    }

    /// The Sluice value type of such an element in a mapping.
    pub fn value_type(self) -> ValueType {
        match self {
            ElementType::Text | ElementType::Time => ValueType::String,
            ElementType::Id => ValueType::Code,
            ElementType::Numeric(0) => ValueType::Integer,
            ElementType::Numeric(_) | ElementType::Decimal => ValueType::Decimal,
            ElementType::Date => ValueType::Date,
            ElementType::Composite => ValueType::Struct,
        }
    }
}

/// One element (or component) as a guide uses it.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementUse {
    /// 1-based position in the segment (or in the composite, for a component).
    pub position: usize,
    pub usage: Usage,
    pub ty: ElementType,
    pub min: usize,
    pub max: usize,
    /// Allowed codes (ID elements the guide restricts); `None`: any value of the type.
    pub codes: Option<Arc<Vec<String>>>,
    pub phi: Option<PhiClass>,
    /// How many values the element may hold, split by the repetition separator (1: no repeats).
    pub repeats: usize,
    /// The components of a composite, by position.
    pub components: Vec<ElementUse>,
}

/// A segment at one place of a guide.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentUse {
    pub id: String,
    pub usage: Usage,
    /// `None`: unbounded.
    pub max: Option<u32>,
    /// Every element of the segment's dictionary entry, by position (unused ones included).
    pub elements: Vec<ElementUse>,
    /// The key: element, component (0 when simple) and the codes that select this place.
    pub key: Option<(usize, usize, Arc<Vec<String>>)>,
}

impl SegmentUse {
    /// The key value of `seg` (`NM101`, `HI01-1`), when the use has a key.
    pub fn key_matches(&self, value: Option<&[u8]>) -> bool {
        match &self.key {
            None => true,
            Some((_, _, codes)) => value.is_some_and(|v| codes.iter().any(|c| c.as_bytes() == v)),
        }
    }
}

/// A loop (or the transaction set itself, the root loop with an empty id).
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    pub id: String,
    pub title: String,
    pub usage: Usage,
    pub max: Option<u32>,
    /// For HL loops: the loop an HL02 must point to.
    pub parent: Option<String>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Segment(SegmentUse),
    Loop(Loop),
}

impl Node {
    pub fn usage(&self) -> Usage {
        match self {
            Node::Segment(s) => s.usage,
            Node::Loop(l) => l.usage,
        }
    }
    pub fn max(&self) -> Option<u32> {
        match self {
            Node::Segment(s) => s.max,
            Node::Loop(l) => l.max,
        }
    }
    /// The segment that starts this node: itself, or a loop's first segment.
    pub fn trigger(&self) -> Option<&SegmentUse> {
        match self {
            Node::Segment(s) => Some(s),
            Node::Loop(l) => l.trigger(),
        }
    }
}

impl Loop {
    pub fn trigger(&self) -> Option<&SegmentUse> {
        match self.children.first() {
            Some(Node::Segment(s)) => Some(s),
            _ => None,
        }
    }

    /// Loops started by `HL` come in any order (the hierarchy says where they belong).
    pub fn is_hierarchical(&self) -> bool {
        self.trigger().is_some_and(|t| t.id == "HL")
    }

    /// The loop `id` at any depth below this one.
    pub fn find(&self, id: &str) -> Option<&Loop> {
        self.children.iter().find_map(|c| match c {
            Node::Loop(l) if l.id == id => Some(l),
            Node::Loop(l) => l.find(id),
            Node::Segment(_) => None,
        })
    }

    /// Whether segment `id` appears anywhere in this loop or below.
    pub fn uses_segment(&self, id: &[u8]) -> bool {
        self.children.iter().any(|c| match c {
            Node::Segment(s) => s.id.as_bytes() == id,
            Node::Loop(l) => l.uses_segment(id),
        })
    }
}

/// One implementation guide.
#[derive(Clone, Debug, PartialEq)]
pub struct Guide {
    /// `005010X222A1`.
    pub id: String,
    /// ST01: `837`.
    pub set_id: String,
    /// GS01: `HC`.
    pub functional_id: String,
    pub title: String,
    /// Other versions (GS08/ST03) read with this structure: errata that change code lists and
    /// notes, not loops or segments (`005010X223A3` for `005010X223A2`).
    pub aliases: Vec<String>,
    /// The transaction set: ST, the loops, SE.
    pub root: Loop,
}

/// A bundled guide file that does not parse: line and reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuideError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for GuideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Dictionary entry of one element.
#[derive(Clone, Debug)]
struct ElementDef {
    ty: ElementType,
    min: usize,
    max: usize,
    repeats: usize,
    components: Vec<ElementDef>,
}

/// A parsed segment dictionary: each segment id's element definitions.
type Dictionary = HashMap<String, Vec<ElementDef>>;

/// Parses a guide, `dictionary` (the `def` lines) first.
pub fn parse(dictionary: &str, text: &str) -> Result<Guide, GuideError> {
    parse_with(&parse_dictionary(dictionary)?, text)
}

/// Parses the `def` lines of a segment dictionary.
fn parse_dictionary(dictionary: &str) -> Result<Dictionary, GuideError> {
    let mut defs: Dictionary = HashMap::new();
    for (n, line) in dictionary.lines().enumerate() {
        let line = strip(line);
        if line.trim().is_empty() {
            continue;
        }
        let err = |m: String| GuideError { line: n + 1, message: format!("dictionary: {m}") };
        let mut words = line.split_whitespace();
        if words.next() != Some("def") {
            return Err(err("only `def` lines belong in the dictionary".into()));
        }
        let id = words.next().ok_or_else(|| err("`def` needs a segment id".into()))?;
        let mut elements: Vec<ElementDef> = Vec::new();
        for token in words {
            let parts: Vec<&str> = token.split(':').collect();
            let (pos, comp) = position(parts[0]).ok_or_else(|| err(format!("bad position in `{token}`")))?;
            let ty = parts
                .get(1)
                .and_then(|t| ElementType::parse(t))
                .ok_or_else(|| err(format!("bad type in `{token}`")))?;
            let (min, max) = match (ty, parts.get(2)) {
                (ElementType::Composite, None) => (0, 0),
                (_, Some(range)) => {
                    let (a, b) = range.split_once('-').ok_or_else(|| err(format!("bad length in `{token}`")))?;
                    (
                        a.parse().map_err(|_| err(format!("bad length in `{token}`")))?,
                        b.parse().map_err(|_| err(format!("bad length in `{token}`")))?,
                    )
                }
                _ => return Err(err(format!("`{token}` needs a length"))),
            };
            let repeats = match parts.get(3) {
                None => 1,
                Some(n) => n.parse().ok().filter(|&n| n > 0).ok_or_else(|| err(format!("bad repeats in `{token}`")))?,
            };
            let def = ElementDef { ty, min, max, repeats, components: Vec::new() };
            if comp == 0 {
                if pos != elements.len() + 1 {
                    return Err(err(format!("`{token}`: elements must be listed in order")));
                }
                elements.push(def);
            } else {
                let parent = elements.get_mut(pos - 1).filter(|e| e.ty == ElementType::Composite);
                let parent = parent.ok_or_else(|| err(format!("`{token}`: component of an unknown composite")))?;
                if comp != parent.components.len() + 1 {
                    return Err(err(format!("`{token}`: components must be listed in order")));
                }
                parent.components.push(def);
            }
        }
        if defs.insert(id.to_string(), elements).is_some() {
            return Err(err(format!("segment {id} is defined twice")));
        }
    }

    Ok(defs)
}

/// Parses a guide against an already parsed dictionary (shared by every bundled guide of one
/// edition, so it is read once).
fn parse_with(defs: &Dictionary, text: &str) -> Result<Guide, GuideError> {
    let mut header: Option<(String, String, String, String)> = None;
    let mut lists: HashMap<String, Arc<Vec<String>>> = HashMap::new();
    let mut aliases: Vec<String> = Vec::new();
    // The loops being filled, outermost first; the root is the set.
    let mut stack: Vec<(usize, Loop)> = vec![(0, new_loop("", "", Usage::Required, Some(1)))];
    for (n, raw) in text.lines().enumerate() {
        let err = |m: String| GuideError { line: n + 1, message: m };
        let line = strip(raw);
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if !indent.is_multiple_of(2) {
            return Err(err("indent by 2 spaces".into()));
        }
        let depth = indent / 2;
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        match first {
            "guide" => {
                let w: Vec<&str> = words.collect();
                if w.len() < 3 {
                    return Err(err("`guide ID SET GS01 title`".into()));
                }
                header = Some((w[0].into(), w[1].into(), w[2].into(), w[3..].join(" ")));
                continue;
            }
            "also" => {
                let version = words.next().ok_or_else(|| err("`also VERSION`".into()))?;
                aliases.push(version.to_string());
                continue;
            }
            "codes" => {
                let name = words.next().ok_or_else(|| err("`codes NAME code...`".into()))?;
                lists.insert(name.to_string(), Arc::new(words.map(str::to_string).collect()));
                continue;
            }
            _ => {}
        }
        // Close loops deeper than this line.
        while stack.len() > depth + 1 {
            let (_, done) = stack.pop().expect("len > 1");
            if done.trigger().is_none() {
                return Err(err(format!("loop {} does not start with a segment", done.id)));
            }
            stack.last_mut().expect("root stays").1.children.push(Node::Loop(done));
        }
        if stack.len() < depth + 1 {
            return Err(err("indented deeper than the loop it is in".into()));
        }
        match first {
            "loop" | "ref" => {
                let id = words.next().ok_or_else(|| err("`loop ID USAGE MAX`".into()))?;
                let usage =
                    words.next().and_then(single_char).and_then(Usage::parse).ok_or_else(|| err("bad usage".into()))?;
                let max = words.next().and_then(parse_max).ok_or_else(|| err("bad max repeats".into()))?;
                let rest: Vec<&str> = words.collect();
                if first == "ref" {
                    let found = stack.iter().find_map(|(_, l)| l.find(id).cloned());
                    let mut copy = found.ok_or_else(|| err(format!("`ref {id}`: no such loop above")))?;
                    copy.usage = usage;
                    copy.max = max;
                    stack.last_mut().expect("root stays").1.children.push(Node::Loop(copy));
                } else {
                    let parent = rest.iter().find_map(|w| w.strip_prefix("parent=")).map(str::to_string);
                    let title: Vec<&str> = rest.iter().copied().filter(|w| !w.starts_with("parent=")).collect();
                    let mut l = new_loop(id, &title.join(" "), usage, max);
                    l.parent = parent;
                    stack.push((depth, l));
                }
            }
            seg_id => {
                let dict = defs.get(seg_id).ok_or_else(|| err(format!("segment {seg_id} is not in the dictionary")))?;
                let usage =
                    words.next().and_then(single_char).and_then(Usage::parse).ok_or_else(|| err("bad usage".into()))?;
                let max = words.next().and_then(parse_max).ok_or_else(|| err("bad max repeats".into()))?;
                let mut elements: Vec<ElementUse> = dict.iter().enumerate().map(|(i, d)| unused(i + 1, d)).collect();
                let mut key = None;
                for token in words {
                    let (is_key, token) = match token.strip_prefix('!') {
                        Some(t) => (true, t),
                        None => (false, token),
                    };
                    let (token, phi) = match token.split_once('^') {
                        Some((t, p)) => {
                            (t, Some(PhiClass::parse(p).ok_or_else(|| err(format!("unknown PHI class `{p}`")))?))
                        }
                        None => (token, None),
                    };
                    let (token, codes) = match token.split_once('=') {
                        Some((t, c)) => {
                            let list = match c.strip_prefix('@') {
                                Some(name) => {
                                    lists.get(name).cloned().ok_or_else(|| err(format!("unknown code list @{name}")))?
                                }
                                None => Arc::new(c.split(',').map(str::to_string).collect()),
                            };
                            (t, Some(list))
                        }
                        None => (token, None),
                    };
                    let u = token
                        .chars()
                        .last()
                        .and_then(Usage::parse)
                        .ok_or_else(|| err(format!("`{token}` needs a usage (R, S, N)")))?;
                    let (pos, comp) =
                        position(&token[..token.len() - 1]).ok_or_else(|| err(format!("bad position `{token}`")))?;
                    let el = elements
                        .get_mut(pos.wrapping_sub(1))
                        .ok_or_else(|| err(format!("{seg_id} has no element {pos:02}")))?;
                    let target = if comp == 0 {
                        el
                    } else {
                        el.components
                            .get_mut(comp - 1)
                            .ok_or_else(|| err(format!("{seg_id}{pos:02} has no component {comp}")))?
                    };
                    target.usage = u;
                    if codes.is_some() {
                        target.codes = codes.clone();
                    }
                    target.phi = phi;
                    if is_key {
                        let codes = codes.ok_or_else(|| err(format!("key `{token}` needs codes")))?;
                        key = Some((pos, comp, codes));
                    }
                }
                stack.last_mut().expect("root stays").1.children.push(Node::Segment(SegmentUse {
                    id: seg_id.to_string(),
                    usage,
                    max,
                    elements,
                    key,
                }));
            }
        }
    }
    while stack.len() > 1 {
        let (_, done) = stack.pop().expect("len > 1");
        if done.trigger().is_none() {
            return Err(GuideError { line: 0, message: format!("loop {} does not start with a segment", done.id) });
        }
        stack.last_mut().expect("root stays").1.children.push(Node::Loop(done));
    }
    let (_, root) = stack.pop().expect("root");
    let (id, set_id, functional_id, title) =
        header.ok_or_else(|| GuideError { line: 0, message: "no `guide` line".into() })?;
    Ok(Guide { id, set_id, functional_id, title, aliases, root })
}

fn new_loop(id: &str, title: &str, usage: Usage, max: Option<u32>) -> Loop {
    Loop { id: id.to_string(), title: title.to_string(), usage, max, parent: None, children: Vec::new() }
}

/// An element not listed at a place: not used (its components too).
fn unused(position: usize, d: &ElementDef) -> ElementUse {
    ElementUse {
        position,
        usage: Usage::NotUsed,
        ty: d.ty,
        min: d.min,
        max: d.max,
        codes: None,
        phi: None,
        repeats: d.repeats,
        components: d.components.iter().enumerate().map(|(i, c)| unused(i + 1, c)).collect(),
    }
}

fn strip(line: &str) -> &str {
    line.split('#').next().unwrap_or("").trim_end()
}

fn single_char(s: &str) -> Option<char> {
    let mut c = s.chars();
    let first = c.next()?;
    c.next().is_none().then_some(first)
}

fn parse_max(s: &str) -> Option<Option<u32>> {
    if s == ">1" { Some(None) } else { s.parse().ok().filter(|&n| n > 0).map(Some) }
}

/// `05` or `05-1`: element and component (0 when none), both 1-based.
fn position(s: &str) -> Option<(usize, usize)> {
    let (e, c) = match s.split_once('-') {
        Some((e, c)) => (e, Some(c)),
        None => (s, None),
    };
    if e.len() != 2 || !e.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let e: usize = e.parse().ok().filter(|&n| n > 0)?;
    let c = match c {
        Some(c) => c.parse().ok().filter(|&n| n > 0)?,
        None => 0,
    };
    Some((e, c))
}

/// The segment dictionary a bundled guide is read after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edition {
    /// `segments-5010.txt`.
    X5010,
    /// `segments-4010.txt`: 4010 element lists and lengths differ from 5010 (no ST03, NM1
    /// without NM112, shorter REF02 and NM103, 7-component C003 and C022; see the file).
    X4010,
}

impl Edition {
    fn text(self) -> &'static str {
        match self {
            Edition::X5010 => include_str!("../guides/segments-5010.txt"),
            Edition::X4010 => include_str!("../guides/segments-4010.txt"),
        }
    }

    /// The dictionary, parsed once for all the guides of this edition.
    fn dictionary(self) -> &'static Dictionary {
        static X5010: OnceLock<Dictionary> = OnceLock::new();
        static X4010: OnceLock<Dictionary> = OnceLock::new();
        let cell = match self {
            Edition::X5010 => &X5010,
            Edition::X4010 => &X4010,
        };
        cell.get_or_init(|| {
            parse_dictionary(self.text())
                .unwrap_or_else(|e| panic!("bundled segment dictionary {self:?} does not parse: {e}"))
        })
    }
}

/// The elements the segment dictionary of `guide_id`'s edition gives segment `id`, each not
/// used (its components too), as a guide place starts before its element tokens; `None` when
/// no bundled guide has the id or the dictionary does not define the segment. What a trading
/// partner's added segment is read with (`crate::partner`).
pub fn dictionary_elements(guide_id: &str, id: &str) -> Option<Vec<ElementUse>> {
    let edition = catalog().iter().find(|g| g.id == guide_id)?.edition;
    let defs = edition.dictionary().get(id)?;
    Some(defs.iter().enumerate().map(|(i, d)| unused(i + 1, d)).collect())
}

/// The bundled guide files: (file name, the segment dictionary it is read after, text).
const BUNDLED: &[(&str, Edition, &str)] = &[
    ("005010X222A1.txt", Edition::X5010, include_str!("../guides/005010X222A1.txt")),
    ("005010X223A2.txt", Edition::X5010, include_str!("../guides/005010X223A2.txt")),
    ("005010X224A2.txt", Edition::X5010, include_str!("../guides/005010X224A2.txt")),
    ("005010X221A1.txt", Edition::X5010, include_str!("../guides/005010X221A1.txt")),
    ("005010X279A1-270.txt", Edition::X5010, include_str!("../guides/005010X279A1-270.txt")),
    ("005010X279A1-271.txt", Edition::X5010, include_str!("../guides/005010X279A1-271.txt")),
    ("005010X212-276.txt", Edition::X5010, include_str!("../guides/005010X212-276.txt")),
    ("005010X212-277.txt", Edition::X5010, include_str!("../guides/005010X212-277.txt")),
    ("005010X220A1.txt", Edition::X5010, include_str!("../guides/005010X220A1.txt")),
    ("005010X231A1.txt", Edition::X5010, include_str!("../guides/005010X231A1.txt")),
    ("005010X230.txt", Edition::X5010, include_str!("../guides/005010X230.txt")),
    ("004010X098A1.txt", Edition::X4010, include_str!("../guides/004010X098A1.txt")),
    ("004010X096A1.txt", Edition::X4010, include_str!("../guides/004010X096A1.txt")),
    ("004010X091A1.txt", Edition::X4010, include_str!("../guides/004010X091A1.txt")),
    ("004010X092A1-270.txt", Edition::X4010, include_str!("../guides/004010X092A1-270.txt")),
    ("004010X092A1-271.txt", Edition::X4010, include_str!("../guides/004010X092A1-271.txt")),
    ("004010X093A1-276.txt", Edition::X4010, include_str!("../guides/004010X093A1-276.txt")),
    ("004010X093A1-277.txt", Edition::X4010, include_str!("../guides/004010X093A1-277.txt")),
    ("004010X095A1.txt", Edition::X4010, include_str!("../guides/004010X095A1.txt")),
    ("004010-997.txt", Edition::X4010, include_str!("../guides/004010-997.txt")),
];

/// One bundled guide as the catalog knows it before it is parsed: its `guide` and `also` lines
/// (all that selection, schema names and the compiler's guide lists need), and the parsed
/// guide once something asks for its structure.
#[derive(Debug)]
pub struct Bundled {
    /// The guide file (`005010X222A1.txt`).
    pub file: &'static str,
    /// `005010X222A1`.
    pub id: String,
    /// ST01: `837`.
    pub set_id: String,
    /// GS01: `HC`.
    pub functional_id: String,
    /// Other versions read with this structure (see [`Guide::aliases`]).
    pub aliases: Vec<String>,
    /// The name a mapping's input schema gives the guide (see [`Guide::schema_name`]).
    pub schema_name: String,
    edition: Edition,
    text: &'static str,
    parsed: OnceLock<Guide>,
}

impl Bundled {
    /// The guide, parsed on first use (its dictionary too, once per edition).
    pub fn guide(&self) -> &Guide {
        self.parsed.get_or_init(|| {
            parse_with(self.edition.dictionary(), self.text)
                .unwrap_or_else(|e| panic!("bundled guide {} does not parse: {e}", self.file))
        })
    }

    /// Whether sets of `version` (GS08 or ST03) are read with this guide: its id or an alias.
    pub fn reads_version(&self, version: &str) -> bool {
        self.id == version || self.aliases.iter().any(|a| a == version)
    }
}

/// The bundled guides, in [`BUNDLED`] order, each parsed only when used: a process that reads
/// 837Ps parses the 837P guide and the 5010 dictionary, not the 19 others.
pub fn catalog() -> &'static [Bundled] {
    static CATALOG: OnceLock<Vec<Bundled>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut entries: Vec<Bundled> = BUNDLED
            .iter()
            .map(|&(file, edition, text)| {
                let (id, set_id, functional_id, aliases) =
                    read_header(text).unwrap_or_else(|| panic!("bundled guide {file} has no `guide ID SET GS01` line"));
                Bundled {
                    file,
                    id,
                    set_id,
                    functional_id,
                    aliases,
                    schema_name: String::new(),
                    edition,
                    text,
                    parsed: OnceLock::new(),
                }
            })
            .collect();
        let names: Vec<String> = entries
            .iter()
            .map(|e| {
                // The 270 and the 271 share `005010X279A1`: the set id tells them apart.
                if entries.iter().filter(|o| o.id == e.id).count() > 1 {
                    format!("{}/{}", e.id, e.set_id)
                } else {
                    e.id.clone()
                }
            })
            .collect();
        for (e, name) in entries.iter_mut().zip(names) {
            e.schema_name = name;
        }
        entries
    })
}

/// The `guide` and `also` lines of a guide, read without its structure or dictionary, as
/// [`parse`] reads them (the last `guide` line wins; every `also` adds an alias). `None`
/// without a well-formed `guide` line. A unit test holds that it agrees with [`parse`] on every
/// bundled guide.
fn read_header(text: &str) -> Option<(String, String, String, Vec<String>)> {
    // Only a line holding `guide` or `also` can be one of these: the lines are found with a
    // substring search instead of splitting every line of every guide (this runs for all the
    // bundled guides at the first X12 command of a process).
    let mut starts: Vec<usize> = ["guide", "also"]
        .iter()
        .flat_map(|word| text.match_indices(word).map(|(i, _)| text[..i].rfind('\n').map_or(0, |n| n + 1)))
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut header = None;
    let mut aliases = Vec::new();
    for raw in starts.into_iter().filter_map(|start| text[start..].lines().next()) {
        let mut words = strip(raw).split_whitespace();
        match words.next() {
            Some("guide") => {
                let w: Vec<&str> = words.collect();
                header = (w.len() >= 3).then(|| (w[0].to_string(), w[1].to_string(), w[2].to_string()));
            }
            Some("also") => aliases.extend(words.next().map(str::to_string)),
            _ => {}
        }
    }
    let (id, set_id, functional_id) = header?;
    Some((id, set_id, functional_id, aliases))
}

/// Every bundled guide, parsed (all of them: for tests and tools that walk every guide; the
/// product looks guides up through [`catalog`], [`by_id`], [`by_schema_name`] or [`select`]).
pub fn bundled() -> impl Iterator<Item = &'static Guide> {
    catalog().iter().map(Bundled::guide)
}

/// The first bundled guide with this id (`005010X222A1`). Two guides share `005010X279A1` (the
/// 270 and the 271): name one by [`by_schema_name`], or choose by ST01 with [`select`].
pub fn by_id(id: &str) -> Option<&'static Guide> {
    catalog().iter().find(|g| g.id == id).map(Bundled::guide)
}

impl Guide {
    /// The name a mapping's input schema gives the guide (`x12/<name>`): its id, or `id/set`
    /// when bundled guides share the id (`005010X279A1/271`).
    pub fn schema_name(&self) -> String {
        if catalog().iter().filter(|g| g.id == self.id).count() > 1 {
            format!("{}/{}", self.id, self.set_id)
        } else {
            self.id.clone()
        }
    }
}

/// The bundled guide a mapping's input schema names (see [`Guide::schema_name`]); a bare id
/// shared by several guides names none.
pub fn by_schema_name(name: &str) -> Option<&'static Guide> {
    catalog().iter().find(|g| g.schema_name == name).map(Bundled::guide)
}

/// What the envelopes say about a set, to choose its guide.
#[derive(Clone, Copy, Debug, Default)]
pub struct Selector<'a> {
    /// ISA12 (`00501`).
    pub isa12: &'a str,
    /// GS01 (`HC`).
    pub gs01: &'a str,
    /// GS08 (`005010X222A1`).
    pub gs08: &'a str,
    /// ST01 (`837`).
    pub st01: &'a str,
    /// ST03 (`005010X222A1`; 5010 only, may be empty).
    pub st03: &'a str,
}

/// Why no guide was chosen: a fixed explanation naming what was found (guide identifiers, not
/// data: ST01, GS01, GS08/ST03).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unknown(pub String);

/// Chooses the guide: ST03 names it in 5010 (else GS08), by its id or one of its aliases, and it
/// must be for ST01. A guide whose
/// functional identifier differs from GS01 is still chosen (the GS01 mismatch is reported
/// separately, see [`gs01_mismatch`]).
pub fn select(s: &Selector) -> Result<&'static Guide, Unknown> {
    let version = if s.st03.is_empty() { s.gs08 } else { s.st03 };
    let found = catalog().iter().find(|g| g.reads_version(version) && g.set_id == s.st01);
    found.map(Bundled::guide).ok_or_else(|| {
        let digits = |v: &str, n: usize| v.len() == n && v.bytes().all(|b| b.is_ascii_digit());
        let isa = if digits(s.isa12, 5) { format!(", ISA12 {}", s.isa12) } else { String::new() };
        let version_shaped =
            (1..=12).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        Unknown(format!(
            "no bundled implementation guide for transaction set {} version {} (GS01 {}{isa}); bundled: {}",
            shown(s.st01, digits(s.st01, 3), "not a set id"),
            shown(version, version_shaped, "not a version"),
            shown(s.gs01, s.gs01.len() == 2 && s.gs01.bytes().all(|b| b.is_ascii_uppercase()), "not a functional id"),
            catalog().iter().map(|g| format!("{} {}", g.set_id, g.id)).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// GS01 does not fit the chosen guide (an 837 in an `HP` group).
pub fn gs01_mismatch(guide: &Guide, gs01: &str) -> bool {
    !gs01.is_empty() && gs01 != guide.functional_id
}

/// An identifier from the envelopes, named only when it has the shape of one (a set id, a
/// version, a functional id): anything else may be data shifted into the wrong element.
fn shown<'a>(v: &'a str, shaped: bool, otherwise: &'a str) -> String {
    match (v.is_empty(), shaped) {
        (true, _) => "(empty)".into(),
        (false, true) => v.into(),
        (false, false) => format!("({otherwise})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_guides_parse() {
        let ids: Vec<&str> = bundled().map(|g| g.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "005010X222A1",
                "005010X223A2",
                "005010X224A2",
                "005010X221A1",
                "005010X279A1",
                "005010X279A1",
                "005010X212",
                "005010X212",
                "005010X220A1",
                "005010X231A1",
                "005010X230",
                "004010X098A1",
                "004010X096A1",
                "004010X091A1",
                "004010X092A1",
                "004010X092A1",
                "004010X093A1",
                "004010X093A1",
                "004010X095A1",
                "004010"
            ]
        );
        let p = by_id("005010X222A1").unwrap();
        assert_eq!((p.set_id.as_str(), p.functional_id.as_str()), ("837", "HC"));
        let l2300 = p.root.find("2300").unwrap();
        assert_eq!(l2300.trigger().unwrap().id, "CLM");
        // `ref 2300` puts the claim loop under the patient level too.
        assert!(p.root.find("2000C").unwrap().find("2300").is_some());
        let nm1 = p.root.find("2010BA").unwrap().trigger().unwrap();
        assert_eq!(nm1.elements[2].phi, Some(PhiClass::Name));
        assert_eq!(nm1.elements[5].usage, Usage::NotUsed);
        assert!(nm1.key_matches(Some(b"IL")) && !nm1.key_matches(Some(b"QC")));
        assert!(p.root.find("2000A").unwrap().is_hierarchical());
    }

    #[test]
    fn the_catalog_reads_what_the_parse_reads() {
        for entry in catalog() {
            let g = entry.guide();
            let parsed = (&g.id, &g.set_id, &g.functional_id, &g.aliases);
            assert_eq!((&entry.id, &entry.set_id, &entry.functional_id, &entry.aliases), parsed, "{}", entry.file);
            assert_eq!(entry.schema_name, g.schema_name(), "{}", entry.file);
            // The parse through the shared dictionary is the parse of the texts.
            assert_eq!(g, &parse(entry.edition.text(), entry.text).unwrap(), "{}", entry.file);
            assert!(std::ptr::eq(g, entry.guide()), "parsed once");
        }
        assert!(read_header("# no guide line\nST R 1").is_none());
        assert!(read_header("guide X 1").is_none(), "a guide line needs ID SET GS01");
        // Only a line whose first word is `guide` or `also` counts, wherever the words appear.
        let text = "# also NOT\nguides A B C\nguide X 837 HC Title\n  ST R 1 # guide Y 1 2\n  also X2\nalsoX3\nguide Z 837 HC\n";
        let expected = ("Z".to_string(), "837".to_string(), "HC".to_string(), vec!["X2".to_string()]);
        assert_eq!(read_header(text), Some(expected));
    }

    #[test]
    fn eligibility_guides_share_an_id_and_differ_by_set() {
        let s = Selector { isa12: "00501", gs01: "HB", gs08: "005010X279A1", st01: "271", st03: "005010X279A1" };
        let g271 = select(&s).unwrap();
        assert_eq!((g271.set_id.as_str(), g271.functional_id.as_str()), ("271", "HB"));
        let g270 = select(&Selector { gs01: "HS", st01: "270", ..s }).unwrap();
        assert_eq!(g270.set_id, "270");
        assert_eq!(g271.schema_name(), "005010X279A1/271");
        assert_eq!(by_schema_name("005010X279A1/270").unwrap().set_id, "270");
        assert!(by_schema_name("005010X279A1").is_none(), "a shared id is ambiguous");
        assert_eq!(by_schema_name("005010X222A1").unwrap().schema_name(), "005010X222A1");
        // EB03 repeats; LS/LE wrap the benefit related entity loop.
        let eb = g271.root.find("2110C").unwrap().trigger().unwrap();
        assert_eq!(eb.elements[2].repeats, 99);
        assert!(g271.root.find("2110C").unwrap().find("2120C").is_some());
        assert_eq!(g270.root.find("2100D").unwrap().trigger().unwrap().elements[2].phi, Some(PhiClass::Name));
    }

    #[test]
    fn guide_errors_name_the_line() {
        let dict = "def AA 01:ID:1-2 02:C 02-1:AN:1-3";
        let e = parse(dict, "guide X 1 HC t\nAA R 1 03R").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("no element 03"));
        assert!(parse(dict, "guide X 1 HC t\nloop 1 R 1\n  BB R 1").is_err());
        assert!(parse(dict, "guide X 1 HC t\nAA R 1 !01R").unwrap_err().message.contains("needs codes"));
        assert!(parse(dict, "guide X 1 HC t\nAA R 1 02-1R=@NOPE").is_err());
        let g = parse(dict, "guide X 1 HC t\ncodes L a b\nAA R >1 !01R=@L 02S 02-1R").unwrap();
        let Node::Segment(s) = &g.root.children[0] else { panic!() };
        assert_eq!(s.max, None);
        assert_eq!(s.elements[1].components[0].usage, Usage::Required);
        assert!(s.key_matches(Some(b"b")));
    }

    #[test]
    fn selection_names_what_was_found() {
        let s = Selector { isa12: "00501", gs01: "HC", gs08: "005010X222A1", st01: "837", st03: "" };
        assert_eq!(select(&s).unwrap().id, "005010X222A1");
        assert_eq!(select(&Selector { st03: "005010X223A2", ..s }).unwrap().id, "005010X223A2");
        assert_eq!(select(&Selector { st03: "005010X223A3", ..s }).unwrap().id, "005010X223A2", "the A3 errata");
        assert_eq!(select(&Selector { gs08: "005010X224A2", ..s }).unwrap().id, "005010X224A2");
        let s = Selector { st03: "005010X096A1", ..s };
        let Unknown(msg) = select(&s).unwrap_err();
        assert!(msg.contains("transaction set 837 version 005010X096A1 (GS01 HC, ISA12 00501)"), "{msg}");
        let s = Selector { st01: "835", st03: "005010X222A1", ..s };
        assert!(select(&s).is_err(), "the guide must be for ST01");
        assert!(gs01_mismatch(by_id("005010X221A1").unwrap(), "HC"));
        // Values not shaped like identifiers are not quoted (they may be shifted data).
        let s = Selector { isa12: "SMITH", gs01: "John", gs08: "", st01: "JOHN SMITH", st03: "19430501 X" };
        let Unknown(msg) = select(&s).unwrap_err();
        assert!(msg.starts_with("no bundled implementation guide for transaction set (not a set id) version (not a version) (GS01 (not a functional id)); bundled:"), "{msg}");
    }
}
