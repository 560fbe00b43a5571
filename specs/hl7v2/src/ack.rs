//! HL7 v2 acknowledgements: the ACK a receiver sends back for an inbound message.
//!
//! Input: the inbound message's header ([`Header`], read from a parsed message, or salvaged
//! from raw bytes that did not parse) and an [`Outcome`] (accepted, or an error or a rejection
//! with [`AckFinding`]s). Output: the ACK message(s) ([`acknowledge`]), as a [`Message`] tree and
//! as text, built with this crate's codec so they always parse back.
//!
//! What the ACK holds:
//! - MSH: the inbound delimiters (MSH-1/MSH-2), sender and receiver swapped (MSH-3/4 <-> 5/6),
//!   MSH-7 the caller's timestamp, MSH-9 `ACK^<trigger>^ACK` (`ACK^<trigger>` before v2.3.1),
//!   MSH-10 a fresh control id derived from the inbound MSH-10 and the caller's seed
//!   ([`ack_control_id`]: deterministic, so tests can compare bytes), MSH-11, MSH-12 and MSH-18
//!   copied. Segments are separated by CR.
//! - MSA-1 the acknowledgement code, MSA-2 the inbound MSH-10 (MSA-3, a text, only before
//!   v2.5, where it is still in use).
//! - One ERR segment per finding. From v2.5: ERR-2 the location (ERL: segment, occurrence,
//!   field, repetition, component, subcomponent), ERR-3 the HL7 table 0357 code, ERR-4 the
//!   severity (E/W/I), ERR-5 Sluice's own code, ERR-8 the finding's message. Before v2.5:
//!   ERR-1 (ELD: segment, occurrence, field, then the 0357 code as `code&text&HL70357`).
//!
//! Modes (HL7 v2 section 2.9):
//! - Original: one application ACK, AA (accepted), AE (error: the message was understood but
//!   breaks a rule) or AR (reject: unparseable, unsupported type, version or processing id).
//! - Enhanced: an accept ACK, CA/CE/CR (the same three outcomes), sent when MSH-15 asks for it
//!   (`AL` always, `NE` never, `ER` only on error or reject, `SU` only on success; empty means
//!   `AL`), and an application ACK, AA/AE/AR, when MSH-16 asks for it (same values). [`Acks`]
//!   says which are due and, for the others, why not.
//!
//! Invariants: never panics, whatever the input; the ACK names locations and codes, and copies
//! only header fields (ids of applications and facilities, MSH-10, MSH-11/12/18) from the
//! inbound message, never its segments' values. Findings' messages are the caller's text,
//! which should hold no data values (validation findings never do).

use std::borrow::Cow;

use crate::charset::Charset;
use crate::codec::{self, Component, Delimiters, Field, Message, Repetition, Segment, SegmentSeparator};

/// Original or enhanced acknowledgement mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AckMode {
    #[default]
    Original,
    Enhanced,
}

impl AckMode {
    pub fn parse(s: &str) -> Option<AckMode> {
        match s {
            "original" => Some(AckMode::Original),
            "enhanced" => Some(AckMode::Enhanced),
            _ => None,
        }
    }
}

/// What happened to the inbound message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Accepted (delivered, or filtered on purpose): AA / CA.
    Accepted,
    /// Understood but breaks a rule (validation, mapping): AE / CE.
    Error,
    /// Not processed: unparseable, unsupported version or type: AR / CR.
    Rejected,
}

/// Severity written to ERR-4 (HL7 table 0516).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrSeverity {
    Error,
    Warning,
    Info,
}

impl ErrSeverity {
    fn code(self) -> &'static str {
        match self {
            ErrSeverity::Error => "E",
            ErrSeverity::Warning => "W",
            ErrSeverity::Info => "I",
        }
    }
}

/// One problem to report in an ERR segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckFinding {
    /// HL7 table 0357 code (`101` required field missing, `102` data type error, ...); see
    /// [`hl7_error_code`].
    pub hl7_code: &'static str,
    /// Sluice's own code (`HL7V201`, `RT101`), written to ERR-5 (v2.5+).
    pub code: String,
    /// Where, as `sluice validate` prints it (1-based): `PID-7`, `PID[2]-8`, `OBX[3]-5.1`,
    /// `OBX[2]` (a segment), or `None` (the whole message).
    pub location: Option<String>,
    /// A text without data values.
    pub message: String,
    pub severity: ErrSeverity,
}

/// The outcome to acknowledge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub findings: Vec<AckFinding>,
}

impl Outcome {
    pub fn accepted() -> Outcome {
        Outcome { status: Status::Accepted, findings: Vec::new() }
    }
}

/// The inbound header fields an ACK needs, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub delimiters: Delimiters,
    /// MSH-2 as written.
    pub encoding_characters: String,
    /// MSH-3 sending application, MSH-4 sending facility, MSH-5 receiving application,
    /// MSH-6 receiving facility.
    pub sending_application: Field<'static>,
    pub sending_facility: Field<'static>,
    pub receiving_application: Field<'static>,
    pub receiving_facility: Field<'static>,
    /// MSH-9.2, the trigger event.
    pub trigger: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    pub processing_id: Field<'static>,
    pub version: Field<'static>,
    /// MSH-15 and MSH-16 (first component), upper-cased.
    pub accept_ack_type: Option<String>,
    pub application_ack_type: Option<String>,
    pub charset: Field<'static>,
    /// True when the header was salvaged from bytes that did not parse as a message.
    pub salvaged: bool,
}

/// Longest value kept from a salvaged field: bounds what a broken message can make us echo.
const SALVAGE_MAX: usize = 200;

fn first_component(f: &Field, i: usize) -> Option<String> {
    let s = f.repetitions.first()?.components.get(i)?.subcomponents.first()?;
    (!s.is_empty()).then(|| s.to_string())
}

fn field_of(seg: &Segment, n: usize) -> Field<'static> {
    seg.field(n).cloned().map(Field::into_owned).unwrap_or_default()
}

fn plain(value: &str) -> Field<'static> {
    if value.is_empty() {
        return Field::default();
    }
    Field {
        repetitions: vec![Repetition {
            components: vec![Component { subcomponents: vec![Cow::Owned(value.to_string())] }],
        }],
    }
}

impl Header {
    /// The header of a parsed message; `None` when it does not start with MSH.
    pub fn from_message(m: &Message) -> Option<Header> {
        let msh = m.segments.first().filter(|s| s.id == "MSH")?;
        let upper = |n: usize| msh.field(n).and_then(|f| first_component(f, 0)).map(|s| s.trim().to_ascii_uppercase());
        Some(Header {
            delimiters: m.delimiters,
            encoding_characters: msh
                .field(2)
                .and_then(|f| f.repetitions.first()?.components.first()?.subcomponents.first().map(|s| s.to_string()))
                .unwrap_or_else(|| m.delimiters.encoding_characters()),
            sending_application: field_of(msh, 3),
            sending_facility: field_of(msh, 4),
            receiving_application: field_of(msh, 5),
            receiving_facility: field_of(msh, 6),
            trigger: msh.field(9).and_then(|f| first_component(f, 1)),
            control_id: msh.field(10).and_then(|f| first_component(f, 0)),
            processing_id: field_of(msh, 11),
            version: field_of(msh, 12),
            accept_ack_type: upper(15),
            application_ack_type: upper(16),
            charset: field_of(msh, 18),
            salvaged: false,
        })
    }

    /// What can be read from bytes that did not parse as a message: the MSH line, parsed on its
    /// own when it can be, else cut at the field separator with the standard delimiters. `None`
    /// when the bytes do not start with `MSH` (after a BOM and line breaks): there is no header.
    pub fn salvage(bytes: &[u8]) -> Option<Header> {
        let start = bytes.iter().position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0x0B)).unwrap_or(0);
        let mut b = &bytes[start..];
        if b.starts_with(b"\xEF\xBB\xBF") {
            b = &b[3..];
        }
        if !b.starts_with(b"MSH") {
            return None;
        }
        let end = b.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(b.len());
        let line = String::from_utf8_lossy(&b[..end]);
        if let Ok(m) = codec::parse_message(&line)
            && let Some(mut h) = Header::from_message(&m)
        {
            h.salvaged = true;
            return Some(h);
        }
        // MSH-1 must be a character that cannot be part of a value; else assume `|`.
        let fs = line.chars().nth(3).filter(|c| c.is_ascii_punctuation()).unwrap_or('|');
        let mut raw: Vec<&str> = line.get(3..).unwrap_or("").split(fs).collect();
        if !raw.is_empty() {
            raw.remove(0); // the text before the first separator (empty)
        }
        // raw[0] is MSH-2, raw[n - 2] is MSH-n.
        let d = Delimiters::default();
        // Raw values are escaped text: decode them, so the ACK's encoder does not escape twice.
        let clean = |n: usize| -> String {
            raw.get(n.wrapping_sub(2))
                .map(|v| {
                    let v: String = v.chars().filter(|c| !c.is_control()).take(SALVAGE_MAX).collect();
                    codec::unescape(&v, &d).into_owned()
                })
                .unwrap_or_default()
        };
        let comp = |n: usize, i: usize| -> Option<String> {
            let v = clean(n);
            let s = v.split(d.component).nth(i)?.trim().to_string();
            (!s.is_empty()).then_some(s)
        };
        Some(Header {
            delimiters: d,
            encoding_characters: d.encoding_characters(),
            sending_application: plain(&clean(3)),
            sending_facility: plain(&clean(4)),
            receiving_application: plain(&clean(5)),
            receiving_facility: plain(&clean(6)),
            trigger: comp(9, 1),
            control_id: comp(10, 0),
            processing_id: plain(&clean(11)),
            version: plain(&clean(12)),
            accept_ack_type: comp(15, 0).map(|s| s.to_ascii_uppercase()),
            application_ack_type: comp(16, 0).map(|s| s.to_ascii_uppercase()),
            charset: plain(&clean(18)),
            salvaged: true,
        })
    }

    /// The character set named by MSH-18, if any and known; the ACK is written in it.
    pub fn charset(&self) -> Option<Charset> {
        first_component(&self.charset, 0).and_then(|n| Charset::from_hl7_name(&n))
    }

    /// (major, minor, patch) of MSH-12.1, when it reads as a version.
    fn version_triple(&self) -> Option<(u32, u32, u32)> {
        let v = first_component(&self.version, 0)?;
        let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next()??;
        let minor = parts.next().flatten().unwrap_or(0);
        let patch = parts.next().flatten().unwrap_or(0);
        Some((major, minor, patch))
    }

    /// v2.5 and later report locations in ERR-2..ERR-8; earlier versions in ERR-1. Without a
    /// readable MSH-12 the v2.5 layout is used.
    fn uses_err_1(&self) -> bool {
        self.version_triple().is_some_and(|v| v < (2, 5, 0))
    }
}

/// Which ACK: the accept ACK of enhanced mode (CA/CE/CR) or the application ACK (AA/AE/AR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckKind {
    Accept,
    Application,
}

/// One acknowledgement message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub kind: AckKind,
    /// MSA-1: `AA`, `AE`, `AR`, `CA`, `CE` or `CR`.
    pub code: &'static str,
    pub message: Message<'static>,
    /// The encoded message (segments separated by CR, no trailing CR).
    pub text: String,
}

impl Ack {
    /// The ACK's bytes in the inbound message's character set (MSH-18; UTF-8 when it names
    /// none or one this crate does not know).
    pub fn to_bytes(&self, charset: Option<Charset>) -> Vec<u8> {
        crate::charset::encode(&self.text, charset.unwrap_or(Charset::Utf8))
    }
}

/// The acknowledgements due for one inbound message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Acks {
    /// Enhanced mode only, when MSH-15 asks for it.
    pub accept: Option<Ack>,
    /// Always in original mode; in enhanced mode when MSH-16 asks for it.
    pub application: Option<Ack>,
    /// Why an ACK is not due (`MSH-15 is NE: no accept acknowledgement`), for the caller to say.
    pub not_due: Vec<String>,
}

impl Acks {
    /// The ACK to send back on the connection the message came in on: the accept ACK in
    /// enhanced mode, the application ACK in original mode.
    pub fn immediate(&self, mode: AckMode) -> Option<&Ack> {
        match mode {
            AckMode::Original => self.application.as_ref(),
            AckMode::Enhanced => self.accept.as_ref(),
        }
    }
}

/// What the caller chooses: mode, MSH-7 and the seed of MSH-10.
#[derive(Clone, Debug)]
pub struct AckOptions<'a> {
    pub mode: AckMode,
    /// HL7 DTM written to MSH-7 (`20240115103000+0000`).
    pub timestamp: &'a str,
    /// Mixed into the ACK's MSH-10; give a different seed per message for fresh ids.
    pub seed: &'a str,
}

/// The ACK's MSH-10: `A` and 16 hex digits of a 64-bit FNV-1a hash of the seed, the inbound
/// control id and the kind. Deterministic; 17 characters, within every version's MSH-10 length.
pub fn ack_control_id(inbound: &str, seed: &str, kind: AckKind) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let tag: &[u8] = if kind == AckKind::Accept { b"C" } else { b"A" };
    for part in [seed.as_bytes(), b"\0", inbound.as_bytes(), b"\0", tag] {
        for &b in part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("A{h:016X}")
}

/// Whether an ACK is due under an MSH-15/MSH-16 value (`None`: empty, read as `AL`).
fn due(condition: Option<&str>, status: Status) -> Result<(), &'static str> {
    match condition.unwrap_or("AL") {
        "NE" => Err("NE (never)"),
        "ER" if status == Status::Accepted => Err("ER (errors only) and the message was accepted"),
        "SU" if status != Status::Accepted => Err("SU (successful completion only) and the message was not accepted"),
        _ => Ok(()),
    }
}

/// Builds the acknowledgements due for `header` under `outcome` (see the module docs).
pub fn acknowledge(header: &Header, outcome: &Outcome, options: &AckOptions) -> Acks {
    let mut acks = Acks::default();
    match options.mode {
        AckMode::Original => acks.application = Some(build(header, outcome, options, AckKind::Application)),
        AckMode::Enhanced => {
            match due(header.accept_ack_type.as_deref(), outcome.status) {
                Ok(()) => acks.accept = Some(build(header, outcome, options, AckKind::Accept)),
                Err(why) => acks.not_due.push(format!("no accept acknowledgement: MSH-15 is {why}")),
            }
            match due(header.application_ack_type.as_deref(), outcome.status) {
                Ok(()) => acks.application = Some(build(header, outcome, options, AckKind::Application)),
                Err(why) => acks.not_due.push(format!("no application acknowledgement: MSH-16 is {why}")),
            }
        }
    }
    acks
}

fn ack_code(kind: AckKind, status: Status) -> &'static str {
    match (kind, status) {
        (AckKind::Application, Status::Accepted) => "AA",
        (AckKind::Application, Status::Error) => "AE",
        (AckKind::Application, Status::Rejected) => "AR",
        (AckKind::Accept, Status::Accepted) => "CA",
        (AckKind::Accept, Status::Error) => "CE",
        (AckKind::Accept, Status::Rejected) => "CR",
    }
}

/// A field of components, each a single value (empty strings leave the component empty).
fn components(values: &[&str]) -> Field<'static> {
    let mut comps: Vec<Component<'static>> = values
        .iter()
        .map(|v| {
            if v.is_empty() {
                Component::default()
            } else {
                Component { subcomponents: vec![Cow::Owned(v.to_string())] }
            }
        })
        .collect();
    while comps.last().is_some_and(|c| c.subcomponents.is_empty()) {
        comps.pop();
    }
    if comps.is_empty() {
        return Field::default();
    }
    Field { repetitions: vec![Repetition { components: comps }] }
}

/// The location of a path as mappings and validation rules write it (0-based `[n]`:
/// `PID-3[1].1` is the second repetition) in the 1-based form of [`AckFinding::location`]
/// (`PID-3[2].1`). A path with `[*]` names no single place, and text that is not a path names
/// none either: `None`.
pub fn location_of_spec_path(path: &str) -> Option<String> {
    use crate::path::{Index, Path};
    let p = Path::parse(path).ok()?;
    let one_based = |i: Index| match i {
        Index::First => Some(String::new()),
        Index::Nth(n) => Some(format!("[{}]", n + 1)),
        Index::All => None,
    };
    let mut out = format!("{}{}-{}{}", p.segment, one_based(p.occurrence)?, p.field, one_based(p.repetition)?);
    if let Some(c) = p.component {
        out.push_str(&format!(".{c}"));
        if let Some(s) = p.subcomponent {
            out.push_str(&format!(".{s}"));
        }
    }
    Some(out)
}

/// An ERL/ELD location from a `sluice validate` path (1-based occurrences and repetitions):
/// segment id, occurrence, field, repetition, component, subcomponent. Unreadable text gives
/// `None` (the ERR segment then has no location).
pub fn parse_location(path: &str) -> Option<[Option<String>; 6]> {
    fn index(s: &str) -> Option<(&str, Option<usize>)> {
        match s.find('[') {
            Some(i) => {
                let n = s[i + 1..].strip_suffix(']')?.parse::<usize>().ok().filter(|n| *n > 0)?;
                Some((&s[..i], Some(n)))
            }
            None => Some((s, None)),
        }
    }
    let (seg_part, rest) = match path.split_once('-') {
        Some((s, r)) => (s, Some(r)),
        None => (path, None),
    };
    let (seg, occ) = index(seg_part)?;
    if seg.len() != 3 || !seg.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
        return None;
    }
    let mut out: [Option<String>; 6] = Default::default();
    out[0] = Some(seg.to_string());
    out[1] = Some(occ.unwrap_or(1).to_string());
    if let Some(rest) = rest {
        let mut parts = rest.split('.');
        let (field, rep) = index(parts.next()?)?;
        let field = field.parse::<usize>().ok().filter(|n| *n > 0)?;
        out[2] = Some(field.to_string());
        let positive = |c: &str| c.parse::<usize>().ok().filter(|n| *n > 0).ok_or(());
        let comp = parts.next().map(positive).transpose().ok()?;
        let sub = parts.next().map(positive).transpose().ok()?;
        if parts.next().is_some() {
            return None;
        }
        if rep.is_some() || comp.is_some() {
            out[3] = Some(rep.unwrap_or(1).to_string());
        }
        out[4] = comp.map(|c| c.to_string());
        out[5] = sub.map(|s| s.to_string());
    }
    Some(out)
}

/// HL7 table 0357 text for the codes [`hl7_error_code`] returns.
fn hl7_error_text(code: &str) -> &'static str {
    match code {
        "0" => "Message accepted",
        "100" => "Segment sequence error",
        "101" => "Required field missing",
        "102" => "Data type error",
        "103" => "Table value not found",
        "104" => "Value too long",
        "200" => "Unsupported message type",
        "201" => "Unsupported event code",
        "202" => "Unsupported processing id",
        "203" => "Unsupported version id",
        _ => "Application internal error",
    }
}

/// The HL7 table 0357 code for a Sluice finding code: structure findings (`HL7V1xx`) are
/// segment sequence errors (100), `HL7V201` a missing required field (101), datatype findings
/// (`HL7V30x`) data type errors (102), table findings (`HL7V31x`) 103, `HL7V204` 104, codec
/// parse errors (`HL7xxx`) 100, a version not accepted 203; anything else 207.
pub fn hl7_error_code(code: &str) -> &'static str {
    match code {
        "HL7V101" | "HL7V102" | "HL7V103" | "HL7V104" | "HL7V105" | "HL7V106" => "100",
        "HL7V201" => "101",
        "HL7V204" => "104",
        c if c.starts_with("HL7V30") => "102",
        c if c.starts_with("HL7V31") => "103",
        c if c.starts_with("HL7V") => "207",
        "RT103" | "RT107" => "203",
        c if c.starts_with("HL7") => "100",
        _ => "207",
    }
}

fn err_segment(header: &Header, f: &AckFinding, line: usize) -> Segment<'static> {
    let loc = f.location.as_deref().and_then(parse_location);
    let code_text = hl7_error_text(f.hl7_code);
    let mut fields: Vec<Field<'static>> = Vec::new();
    if header.uses_err_1() {
        // ELD: segment ^ sequence ^ field ^ code&text&HL70357
        let mut comps: Vec<Component<'static>> = Vec::new();
        let l = loc.unwrap_or_default();
        for v in l.iter().take(3) {
            comps.push(
                v.as_ref().map_or_else(Component::default, |s| Component { subcomponents: vec![s.clone().into()] }),
            );
        }
        comps.push(Component { subcomponents: vec![f.hl7_code.into(), code_text.into(), "HL70357".into()] });
        fields.push(Field { repetitions: vec![Repetition { components: comps }] });
    } else {
        fields.push(Field::default()); // ERR-1 (withdrawn from v2.5 on)
        let l = loc.unwrap_or_default();
        let parts: Vec<&str> = l.iter().map(|v| v.as_deref().unwrap_or("")).collect();
        fields.push(components(&parts)); // ERR-2 location
        fields.push(components(&[f.hl7_code, code_text, "HL70357"])); // ERR-3
        fields.push(plain(f.severity.code())); // ERR-4
        fields.push(plain(&f.code)); // ERR-5 application error code
        fields.push(Field::default()); // ERR-6
        fields.push(Field::default()); // ERR-7
        fields.push(plain(&f.message)); // ERR-8 user message
    }
    Segment { id: Cow::Borrowed("ERR"), fields, offset: 0, line, spellings: Vec::new() }
}

fn build(header: &Header, outcome: &Outcome, options: &AckOptions, kind: AckKind) -> Ack {
    let code = ack_code(kind, outcome.status);
    let inbound_id = header.control_id.clone().unwrap_or_default();
    let trigger = header.trigger.clone().unwrap_or_default();
    let with_structure = header.version_triple().is_none_or(|v| v >= (2, 3, 1));
    let msh9 = if with_structure { components(&["ACK", &trigger, "ACK"]) } else { components(&["ACK", &trigger]) };
    let mut msh = vec![
        plain(&header.delimiters.field.to_string()),
        plain(&header.encoding_characters),
        header.receiving_application.clone(),
        header.receiving_facility.clone(),
        header.sending_application.clone(),
        header.sending_facility.clone(),
        plain(options.timestamp),
        Field::default(),
        msh9,
        plain(&ack_control_id(&inbound_id, options.seed, kind)),
        header.processing_id.clone(),
        header.version.clone(),
    ];
    if !header.charset.repetitions.is_empty() {
        msh.resize(17, Field::default());
        msh.push(header.charset.clone());
    }
    let mut msa = vec![plain(code), plain(&inbound_id)];
    if header.uses_err_1()
        && let Some(first) = outcome.findings.first()
    {
        msa.push(plain(&first.message));
    }
    let mut segments = vec![
        Segment { id: Cow::Borrowed("MSH"), fields: msh, offset: 0, line: 1, spellings: Vec::new() },
        Segment { id: Cow::Borrowed("MSA"), fields: msa, offset: 0, line: 2, spellings: Vec::new() },
    ];
    for f in &outcome.findings {
        let line = segments.len() + 1;
        segments.push(err_segment(header, f, line));
    }
    let mut message = Message { delimiters: header.delimiters, segments, segment_separator: SegmentSeparator::Cr };
    let text = codec::encode(&message);
    // Offsets as parsing the text would give them, so the tree equals `parse_message(text)`.
    let mut offset = 0;
    for (seg, line) in message.segments.iter_mut().zip(text.split('\r')) {
        seg.offset = offset;
        offset += line.len() + 1;
    }
    Ack { kind, code, message, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ADT: &str = "MSH|^~\\&|SENDAPP|SENDFAC|RECVAPP|RECVFAC|20240115103000||ADT^A01^ADT_A01|MSG00001|P|2.5.1|||AL|NE||UNICODE UTF-8\rPID|1||123^^^H^MR||DOE^JOHN||19800101|M";

    fn opts(mode: AckMode) -> AckOptions<'static> {
        AckOptions { mode, timestamp: "20240115103001", seed: "seed" }
    }

    fn header(text: &str) -> Header {
        Header::from_message(&codec::parse_message(text).unwrap()).unwrap()
    }

    #[test]
    fn original_aa_swaps_sender_and_receiver() {
        let acks = acknowledge(&header(ADT), &Outcome::accepted(), &opts(AckMode::Original));
        let ack = acks.application.unwrap();
        assert_eq!(ack.code, "AA");
        let id = ack_control_id("MSG00001", "seed", AckKind::Application);
        assert_eq!(
            ack.text,
            format!(
                "MSH|^~\\&|RECVAPP|RECVFAC|SENDAPP|SENDFAC|20240115103001||ACK^A01^ACK|{id}|P|2.5.1||||||UNICODE UTF-8\rMSA|AA|MSG00001"
            )
        );
        assert_eq!(codec::parse_message(&ack.text).unwrap(), ack.message);
        assert!(acks.accept.is_none());
    }

    #[test]
    fn ae_carries_err_segments_with_locations() {
        let outcome = Outcome {
            status: Status::Error,
            findings: vec![AckFinding {
                hl7_code: hl7_error_code("HL7V301"),
                code: "HL7V301".into(),
                location: Some("PID[2]-7.1".into()),
                message: "value is not a valid DTM".into(),
                severity: ErrSeverity::Error,
            }],
        };
        let ack = acknowledge(&header(ADT), &outcome, &opts(AckMode::Original)).application.unwrap();
        assert_eq!(ack.code, "AE");
        let err = ack.text.split('\r').nth(2).unwrap();
        assert_eq!(err, "ERR||PID^2^7^1^1|102^Data type error^HL70357|E|HL7V301|||value is not a valid DTM");
        // v2.3: ERR-1
        let v23 = ADT.replace("|2.5.1|", "|2.3|");
        let ack = acknowledge(&header(&v23), &outcome, &opts(AckMode::Original)).application.unwrap();
        let lines: Vec<&str> = ack.text.split('\r').collect();
        assert!(lines[0].contains("|ACK^A01|"), "{}", lines[0]);
        assert_eq!(lines[1], "MSA|AE|MSG00001|value is not a valid DTM");
        assert_eq!(lines[2], "ERR|PID^2^7^102&Data type error&HL70357");
    }

    #[test]
    fn enhanced_mode_follows_msh15_and_msh16() {
        let h = header(ADT); // MSH-15 AL, MSH-16 NE
        let acks = acknowledge(&h, &Outcome::accepted(), &opts(AckMode::Enhanced));
        assert_eq!(acks.accept.as_ref().unwrap().code, "CA");
        assert!(acks.application.is_none());
        assert_eq!(acks.not_due, vec!["no application acknowledgement: MSH-16 is NE (never)".to_string()]);
        assert_eq!(acks.immediate(AckMode::Enhanced).unwrap().code, "CA");
        let rejected = Outcome { status: Status::Rejected, findings: vec![] };
        let h = header(&ADT.replace("|AL|NE|", "|ER|SU|"));
        let acks = acknowledge(&h, &rejected, &opts(AckMode::Enhanced));
        assert_eq!(acks.accept.unwrap().code, "CR");
        assert!(acks.application.is_none());
        let acks = acknowledge(&h, &Outcome::accepted(), &opts(AckMode::Enhanced));
        assert!(acks.accept.is_none());
        assert_eq!(acks.application.as_ref().unwrap().code, "AA");
        // accept and application ACKs get distinct control ids
        let h = header(&ADT.replace("|AL|NE|", "|AL|AL|"));
        let acks = acknowledge(&h, &Outcome::accepted(), &opts(AckMode::Enhanced));
        assert_ne!(acks.accept.unwrap().message.control_id(), acks.application.unwrap().message.control_id());
    }

    #[test]
    fn salvages_a_broken_message() {
        let broken = b"MSH|^~\\&|A|B|C|D|2024||ORU^R01|CTRL9|P|2.4\rbad segment\r";
        assert!(codec::parse_message(std::str::from_utf8(broken).unwrap()).is_err());
        let h = Header::salvage(broken).unwrap();
        assert_eq!(h.control_id.as_deref(), Some("CTRL9"));
        let out = Outcome { status: Status::Rejected, findings: vec![] };
        let ack = acknowledge(&h, &out, &opts(AckMode::Original)).application.unwrap();
        assert!(ack.text.starts_with("MSH|^~\\&|C|D|A|B|"), "{}", ack.text);
        assert!(ack.text.ends_with("MSA|AR|CTRL9"));
        // MSH-2 itself broken: cut by hand
        let h = Header::salvage(b"MSH|^^|A|B|C|D|2024||ADT^A04|X|P|2.5\r").unwrap();
        assert_eq!(h.control_id.as_deref(), Some("X"));
        assert_eq!(h.trigger.as_deref(), Some("A04"));
        assert!(Header::salvage(b"garbage").is_none());
        assert!(Header::salvage(b"").is_none());
    }

    #[test]
    fn spec_paths_become_one_based_locations() {
        assert_eq!(location_of_spec_path("PID-7").as_deref(), Some("PID-7"));
        assert_eq!(location_of_spec_path("PID-3[1].1").as_deref(), Some("PID-3[2].1"));
        assert_eq!(location_of_spec_path("OBX[0]-5[0].2.1").as_deref(), Some("OBX[1]-5[1].2.1"));
        assert_eq!(location_of_spec_path("PID-3[*].1"), None);
        assert_eq!(location_of_spec_path("patient.dob"), None);
        let loc = location_of_spec_path("PID-3[1].1").unwrap();
        assert_eq!(parse_location(&loc).unwrap()[3].as_deref(), Some("2"), "ERL repetition");
    }

    #[test]
    fn locations() {
        let l =
            |p: &str| parse_location(p).map(|a| a.iter().map(|v| v.clone().unwrap_or_default()).collect::<Vec<_>>());
        assert_eq!(l("PID-7").unwrap(), ["PID", "1", "7", "", "", ""]);
        assert_eq!(l("OBX[3]-5.1.2").unwrap(), ["OBX", "3", "5", "1", "1", "2"]);
        assert_eq!(l("PID-3[2]").unwrap(), ["PID", "1", "3", "2", "", ""]);
        assert_eq!(l("OBX[2]").unwrap(), ["OBX", "2", "", "", "", ""]);
        assert!(l("pid-1").is_none());
        assert!(l("PID-0").is_none());
        assert!(l("PID[0]-1").is_none());
    }

    proptest! {
        #[test]
        fn ack_parses_back_for_any_salvageable_input(bytes in proptest::collection::vec(any::<u8>(), 0..300), mode in any::<bool>()) {
            let mut input = b"MSH".to_vec();
            input.extend_from_slice(&bytes);
            let h = Header::salvage(&input).unwrap();
            let mode = if mode { AckMode::Enhanced } else { AckMode::Original };
            let out = Outcome { status: Status::Rejected, findings: vec![AckFinding {
                hl7_code: "207", code: "RT101".into(), location: None, message: "bad | ^ & \\ text\r".into(), severity: ErrSeverity::Error }] };
            let acks = acknowledge(&h, &out, &AckOptions { mode, timestamp: "2024", seed: "s" });
            for ack in acks.accept.iter().chain(acks.application.iter()) {
                let parsed = codec::parse_message(&ack.text).unwrap();
                prop_assert_eq!(&parsed, &ack.message);
                prop_assert_eq!(parsed.segments[1].field(2).and_then(|f| f.first()).unwrap_or(""), h.control_id.as_deref().unwrap_or(""));
            }
        }

        #[test]
        fn ack_parses_back_for_any_parsed_message(app in "[ -~]{0,20}", id in "[ -~]{0,20}", ver in "2\\.[3-8](\\.1)?") {
            let d = Delimiters::default();
            let text = format!("MSH|^~\\&|{}|F|R|G|2024||ADT^A01|{}|P|{ver}\rPID|1", codec::escape(&app, &d), codec::escape(&id, &d));
            let m = codec::parse_message(&text).unwrap();
            let h = Header::from_message(&m).unwrap();
            let acks = acknowledge(&h, &Outcome::accepted(), &AckOptions { mode: AckMode::Original, timestamp: "2024", seed: "s" });
            let ack = acks.application.unwrap();
            let parsed = codec::parse_message(&ack.text).unwrap();
            prop_assert_eq!(&parsed, &ack.message);
            prop_assert_eq!(parsed.segments[0].field(5), m.segments[0].field(3));
        }
    }
}
