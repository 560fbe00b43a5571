//! Character sets: which encoding a message's bytes are in, and decoding them to text.
//!
//! # Detection (`CharsetPolicy::Auto`)
//!
//! In this order, the first that applies decides:
//! 1. a byte-order mark: UTF-8 (`EF BB BF`), UTF-16 LE (`FF FE`) or UTF-16 BE (`FE FF`);
//! 2. the NUL pattern of UTF-16 without a BOM: in the first bytes, NUL at every odd position
//!    (LE) or every even position (BE) and nowhere else;
//! 3. MSH-18 (first repetition, first component), read from the raw bytes by an ASCII scan of
//!    the first segment using the field separator at byte 3 and the encoding characters in
//!    MSH-2. HL7 table 0211 names (`ASCII`, `8859/1`..`8859/9`, `8859/15`, `UNICODE`,
//!    `UNICODE UTF-8`, `UNICODE UTF-16`, `GB 18030-2000`, `KS X 1001`, `BIG-5`) and common
//!    lies (`UTF-8`, `UTF8`, `ISO-8859-1`, `LATIN1`, `CP1252`, ...) are understood, ignoring case
//!    and spacing. Two corrections, both documented lies seen in real feeds:
//!    - a declared single-byte set (`ASCII`, `8859/n`, `CP1252`) is overruled by UTF-8 when the
//!      bytes are valid UTF-8 *and* hold at least one multi-byte sequence (text in a single-byte
//!      set practically never forms valid multi-byte UTF-8);
//!    - a declared UTF-16 (or plain `UNICODE`) when steps 1-2 found no UTF-16 means UTF-8: the
//!      MSH segment was just read as ASCII, so the bytes cannot be UTF-16.
//!
//!    An MSH-18 naming a set not supported here is an error (`HL7012`), never a guess.
//! 4. otherwise UTF-8.
//!
//! `CharsetPolicy::Fixed` (the profile's `encoding`, for senders that lie) skips all of this:
//! the bytes are decoded in that set; only a BOM of that same set is dropped. `Utf16` picks the
//! byte order from a BOM or the NUL pattern, big-endian when neither says.
//!
//! # Decoding
//!
//! - UTF-8 text is borrowed (a leading BOM is kept in the text, so text offsets are byte offsets;
//!   the codec skips it). UTF-16 drops its BOM.
//! - `8859/1` is true ISO-8859-1 (each byte is the code point of the same number, C1 controls
//!   included), *not* windows-1252 as the WHATWG label `iso-8859-1` means in `encoding_rs`;
//!   `8859/9` is decoded the same way with its six Turkish letters. Other parts, windows-1252
//!   and the CJK sets use `encoding_rs`.
//!
//! Invariants: no input panics; nothing is replaced silently: a byte (sequence) that is not valid
//! in the chosen set is an error (`HL7011`) with its byte offset; errors never quote message
//! content (an unsupported MSH-18 name is quoted only when it is short printable ASCII, since it
//! is a code, not data).

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{DecoderResult, Encoding};

/// Error codes of this module, for the docs: (code, title, explanation).
pub const ERROR_CODES: &[(&str, &str, &str)] = &[
    (
        "HL7011",
        "The bytes are not valid in the message's character set.",
        "The message was decoded in the character set its BOM, MSH-18 or the parser profile's `encoding` names, and the byte (sequence) at the reported offset is not valid in that set (for example a byte above 0x7F in ASCII, or invalid UTF-8 or UTF-16). Set the profile's `encoding` to what the sender really uses, or fix the sender.",
    ),
    (
        "HL7012",
        "MSH-18 names a character set that is not supported.",
        "MSH-18 (character set) holds a name that is not in HL7 table 0211 as supported here (ASCII, 8859/1-9, 8859/15, UNICODE UTF-8, UNICODE UTF-16, GB 18030-2000, KS X 1001, BIG-5) nor a common alias. Rather than guess, the message is refused; set the profile's `encoding` to decode this sender's messages in a fixed set.",
    ),
];

/// A character set a message can be decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Charset {
    Ascii,
    Utf8,
    Utf16Le,
    Utf16Be,
    /// ISO-8859 part 1 to 9 or 15.
    Iso8859(u8),
    Windows1252,
    Gb18030,
    Big5,
    /// KS X 1001 (EUC-KR).
    EucKr,
}

impl Charset {
    /// The HL7 table 0211 name (`8859/1`, `UNICODE UTF-8`, ...).
    pub fn hl7_name(self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Utf8 => "UNICODE UTF-8",
            Charset::Utf16Le | Charset::Utf16Be => "UNICODE UTF-16",
            Charset::Iso8859(n) => match n {
                1 => "8859/1",
                2 => "8859/2",
                3 => "8859/3",
                4 => "8859/4",
                5 => "8859/5",
                6 => "8859/6",
                7 => "8859/7",
                8 => "8859/8",
                9 => "8859/9",
                _ => "8859/15",
            },
            Charset::Windows1252 => "windows-1252",
            Charset::Gb18030 => "GB 18030-2000",
            Charset::Big5 => "BIG-5",
            Charset::EucKr => "KS X 1001",
        }
    }

    /// Reads an HL7 table 0211 name or a common alias, ignoring case, spaces, `-` and `_`.
    pub fn from_hl7_name(name: &str) -> Option<Charset> {
        let key: String =
            name.chars().filter(|c| !matches!(c, ' ' | '-' | '_' | '\t')).map(|c| c.to_ascii_uppercase()).collect();
        let k = key.as_str();
        if let Some(part) =
            k.strip_prefix("8859/").or_else(|| k.strip_prefix("ISO8859")).map(|p| p.trim_start_matches('/'))
            && let Ok(n) = part.parse::<u8>()
        {
            return matches!(n, 1..=9 | 15).then_some(Charset::Iso8859(n));
        }
        Some(match k {
            "ASCII" | "USASCII" | "ISOIR6" => Charset::Ascii,
            "UNICODE" | "UNICODEUTF8" | "UTF8" | "ISOIR192" => Charset::Utf8,
            "UNICODEUTF16" | "UTF16" | "UTF16BE" => Charset::Utf16Be,
            "UTF16LE" => Charset::Utf16Le,
            "LATIN1" | "ISOIR100" | "L1" => Charset::Iso8859(1),
            "LATIN2" => Charset::Iso8859(2),
            "LATIN9" => Charset::Iso8859(15),
            "WINDOWS1252" | "CP1252" => Charset::Windows1252,
            "GB180302000" | "GB18030" => Charset::Gb18030,
            "BIG5" => Charset::Big5,
            "KSX1001" | "EUCKR" => Charset::EucKr,
            _ => return None,
        })
    }

    /// One byte per character (ASCII, ISO-8859-n, windows-1252).
    pub fn is_single_byte(self) -> bool {
        matches!(self, Charset::Ascii | Charset::Iso8859(_) | Charset::Windows1252)
    }

    pub fn is_utf16(self) -> bool {
        matches!(self, Charset::Utf16Le | Charset::Utf16Be)
    }

    fn encoding(self) -> Option<&'static Encoding> {
        Some(match self {
            Charset::Utf16Le => encoding_rs::UTF_16LE,
            Charset::Utf16Be => encoding_rs::UTF_16BE,
            Charset::Iso8859(2) => encoding_rs::ISO_8859_2,
            Charset::Iso8859(3) => encoding_rs::ISO_8859_3,
            Charset::Iso8859(4) => encoding_rs::ISO_8859_4,
            Charset::Iso8859(5) => encoding_rs::ISO_8859_5,
            Charset::Iso8859(6) => encoding_rs::ISO_8859_6,
            Charset::Iso8859(7) => encoding_rs::ISO_8859_7,
            Charset::Iso8859(8) => encoding_rs::ISO_8859_8,
            Charset::Iso8859(15) => encoding_rs::ISO_8859_15,
            Charset::Windows1252 => encoding_rs::WINDOWS_1252,
            Charset::Gb18030 => encoding_rs::GB18030,
            Charset::Big5 => encoding_rs::BIG5,
            Charset::EucKr => encoding_rs::EUC_KR,
            _ => return None,
        })
    }
}

impl fmt::Display for Charset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.hl7_name())
    }
}

/// How to choose the character set: the parser profile's `encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CharsetPolicy {
    /// BOM, then UTF-16 NUL pattern, then MSH-18, then UTF-8 (see the module docs).
    #[default]
    Auto,
    /// Always this set, whatever MSH-18 says.
    Fixed(Charset),
    /// UTF-16, byte order from the BOM or the NUL pattern (big-endian when neither says).
    Utf16,
}

impl CharsetPolicy {
    /// Reads a profile `encoding` value: `auto`, `utf-8`, `ascii`, `iso-8859-1`..`iso-8859-9`,
    /// `iso-8859-15`, `windows-1252`, `utf-16`, `utf-16le`, `utf-16be` (and `latin-1`).
    pub fn from_name(name: &str) -> Option<CharsetPolicy> {
        let n = name.trim().to_ascii_lowercase().replace('_', "-");
        match n.as_str() {
            "auto" => Some(CharsetPolicy::Auto),
            "utf-16" | "utf16" => Some(CharsetPolicy::Utf16),
            "utf-8" | "utf8" => Some(CharsetPolicy::Fixed(Charset::Utf8)),
            "ascii" | "us-ascii" => Some(CharsetPolicy::Fixed(Charset::Ascii)),
            "utf-16le" => Some(CharsetPolicy::Fixed(Charset::Utf16Le)),
            "utf-16be" => Some(CharsetPolicy::Fixed(Charset::Utf16Be)),
            "latin-1" | "latin1" => Some(CharsetPolicy::Fixed(Charset::Iso8859(1))),
            "windows-1252" | "cp1252" => Some(CharsetPolicy::Fixed(Charset::Windows1252)),
            _ => {
                let part = n.strip_prefix("iso-8859-").or_else(|| n.strip_prefix("iso8859-"))?;
                match part.parse::<u8>() {
                    Ok(p @ (1..=9 | 15)) => Some(CharsetPolicy::Fixed(Charset::Iso8859(p))),
                    _ => None,
                }
            }
        }
    }
}

/// What decided the character set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectedBy {
    ByteOrderMark,
    NulPattern,
    Msh18,
    /// MSH-18 declared a single-byte set but the bytes are multi-byte UTF-8.
    Utf8Evidence,
    /// Nothing said otherwise: UTF-8.
    Default,
    /// The policy fixed it.
    Profile,
}

/// Decoded text and how it was decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub text: Cow<'a, str>,
    pub charset: Charset,
    pub detected_by: DetectedBy,
    /// Bytes of a BOM that was dropped from `text` (UTF-16 only; a UTF-8 BOM stays in `text`).
    pub bom_len: usize,
}

impl Decoded<'_> {
    /// Maps a byte offset in `text` (as reported by the codec) back to a byte offset in the
    /// decoded bytes. Exact for UTF-8, UTF-16 and the single-byte sets; for the CJK sets it
    /// re-encodes the prefix.
    pub fn source_offset(&self, text_offset: usize) -> usize {
        let mut off = text_offset.min(self.text.len());
        while !self.text.is_char_boundary(off) {
            off -= 1;
        }
        let prefix = &self.text[..off];
        match self.charset {
            Charset::Utf8 => off,
            Charset::Utf16Le | Charset::Utf16Be => self.bom_len + 2 * prefix.encode_utf16().count(),
            c if c.is_single_byte() => prefix.chars().count(),
            c => c.encoding().map_or(off, |e| e.encode(prefix).0.len()),
        }
    }
}

/// A decoding failure: code (`HL7011`, `HL7012`), a message without content, and the byte offset
/// in the given bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharsetError {
    pub code: &'static str,
    pub message: String,
    pub offset: usize,
    /// The set the bytes were being decoded in (`None` for `HL7012`).
    pub charset: Option<Charset>,
}

impl fmt::Display for CharsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.code, self.offset, self.message)
    }
}

impl std::error::Error for CharsetError {}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The UTF-16 byte order the NUL pattern of the first bytes shows, if any.
fn nul_pattern(bytes: &[u8]) -> Option<Charset> {
    let n = bytes.len().min(64) & !1;
    if n < 4 {
        return None;
    }
    let head = &bytes[..n];
    let even_nul = head.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd_nul = head.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    let half = n / 2;
    // Text that is mostly ASCII: one byte of each unit is NUL, the other never is.
    if even_nul == 0 && odd_nul * 4 >= half * 3 {
        Some(Charset::Utf16Le)
    } else if odd_nul == 0 && even_nul * 4 >= half * 3 {
        Some(Charset::Utf16Be)
    } else {
        None
    }
}

/// Field `n` (1-based, `n >= 2`) of the MSH segment at the start of `bytes`, read by an ASCII
/// scan: its byte offset and raw bytes (escapes not decoded). `None` when `bytes` does not start
/// with `MSH` (after an optional UTF-8 BOM) and an ASCII field separator, or the field is absent.
pub fn raw_msh_field(bytes: &[u8], n: usize) -> Option<(usize, &[u8])> {
    if n < 2 {
        return None;
    }
    let (start, fs, line) = msh_line(bytes)?;
    msh_field(start, fs, line, n)
}

/// The MSH line at the start of `bytes`: the offset of `MSH` (after an optional UTF-8 BOM),
/// the field separator and the line up to its terminator. `None` without `MSH` and an ASCII
/// field separator.
fn msh_line(bytes: &[u8]) -> Option<(usize, u8, &[u8])> {
    let start = if bytes.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
    let b = bytes.get(start..)?;
    if !b.starts_with(b"MSH") {
        return None;
    }
    let fs = *b.get(3)?;
    if !fs.is_ascii() || fs.is_ascii_alphanumeric() || fs == b'\r' || fs == b'\n' {
        return None;
    }
    let end = crate::bytes::find_any(b, [b'\r', b'\n']).unwrap_or(b.len());
    Some((start, fs, &b[..end]))
}

/// Field `n` (`n >= 2`) of an MSH line found by [`msh_line`]: its offset and bytes.
fn msh_field(start: usize, fs: u8, line: &[u8], n: usize) -> Option<(usize, &[u8])> {
    let mut pos = 4;
    // fields after MSH-1: MSH-2 is the first.
    for (i, field) in line.get(4..)?.split(|&c| c == fs).enumerate() {
        if i + 2 == n {
            return Some((start + pos, field));
        }
        pos += field.len() + 1;
    }
    None
}

/// MSH-18's first repetition's first component, trimmed: offset and bytes. The MSH line is
/// found once for MSH-2 and MSH-18.
pub fn raw_msh18(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (start, fs, line) = msh_line(bytes)?;
    let (_, enc) = msh_field(start, fs, line, 2)?;
    let (off, v) = msh_field(start, fs, line, 18)?;
    let stop = v.iter().position(|c| enc.get(..2).is_some_and(|e| e.contains(c))).unwrap_or(v.len());
    let v = &v[..stop];
    let lead = v.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let v = &v[lead..];
    let trail = v.iter().rev().take_while(|c| c.is_ascii_whitespace()).count();
    let v = &v[..v.len() - trail];
    (!v.is_empty()).then_some((off + lead, v))
}

fn printable_name(v: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(v).ok()?;
    (s.len() <= 32 && s.bytes().all(|c| c.is_ascii_graphic() || c == b' ')).then_some(s)
}

fn has_multibyte_utf8(bytes: &[u8]) -> bool {
    !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok()
}

/// Picks the character set for `bytes` under `policy` (see the module docs).
pub fn detect(bytes: &[u8], policy: &CharsetPolicy) -> Result<(Charset, DetectedBy), CharsetError> {
    let bom = if bytes.starts_with(UTF8_BOM) {
        Some(Charset::Utf8)
    } else if bytes.starts_with(b"\xFF\xFE") {
        Some(Charset::Utf16Le)
    } else if bytes.starts_with(b"\xFE\xFF") {
        Some(Charset::Utf16Be)
    } else {
        None
    };
    match *policy {
        CharsetPolicy::Fixed(c) => Ok((c, DetectedBy::Profile)),
        CharsetPolicy::Utf16 => Ok(match bom.filter(|c| c.is_utf16()).or_else(|| nul_pattern(bytes)) {
            Some(c) => (c, DetectedBy::Profile),
            None => (Charset::Utf16Be, DetectedBy::Profile),
        }),
        CharsetPolicy::Auto => {
            if let Some(c) = bom {
                return Ok((c, DetectedBy::ByteOrderMark));
            }
            if let Some(c) = nul_pattern(bytes) {
                return Ok((c, DetectedBy::NulPattern));
            }
            let Some((off, name)) = raw_msh18(bytes) else {
                return Ok((Charset::Utf8, DetectedBy::Default));
            };
            let declared = std::str::from_utf8(name).ok().and_then(Charset::from_hl7_name);
            match declared {
                None => Err(CharsetError {
                    code: "HL7012",
                    message: match printable_name(name) {
                        Some(n) => format!("MSH-18 names character set `{n}`, which is not supported"),
                        None => "MSH-18 does not name a supported character set".into(),
                    },
                    offset: off,
                    charset: None,
                }),
                Some(c) if c.is_utf16() => Ok((Charset::Utf8, DetectedBy::Msh18)),
                Some(c) if c.is_single_byte() && has_multibyte_utf8(bytes) => {
                    Ok((Charset::Utf8, DetectedBy::Utf8Evidence))
                }
                Some(c) => Ok((c, DetectedBy::Msh18)),
            }
        }
    }
}

fn invalid(charset: Charset, offset: usize) -> CharsetError {
    CharsetError {
        code: "HL7011",
        message: format!("byte at offset {offset} is not valid {}", charset.hl7_name()),
        offset,
        charset: Some(charset),
    }
}

/// Decodes `bytes` under `policy`. Never panics; never replaces a byte silently.
pub fn decode<'a>(bytes: &'a [u8], policy: &CharsetPolicy) -> Result<Decoded<'a>, CharsetError> {
    let (charset, detected_by) = detect(bytes, policy)?;
    let (text, bom_len) = decode_as(bytes, charset)?;
    Ok(Decoded { text, charset, detected_by, bom_len })
}

/// Decodes `bytes` in `charset`; returns the text and the length of a dropped BOM.
pub fn decode_as(bytes: &[u8], charset: Charset) -> Result<(Cow<'_, str>, usize), CharsetError> {
    match charset {
        Charset::Utf8 => match std::str::from_utf8(bytes) {
            Ok(t) => Ok((Cow::Borrowed(t), 0)),
            Err(e) => Err(invalid(charset, e.valid_up_to())),
        },
        Charset::Ascii => match bytes.iter().position(|b| !b.is_ascii()) {
            // All ASCII, so valid UTF-8.
            None => Ok((Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default()), 0)),
            Some(i) => Err(invalid(charset, i)),
        },
        Charset::Iso8859(1) => Ok((latin(bytes, |b| b as char), 0)),
        Charset::Iso8859(9) => Ok((
            latin(bytes, |b| match b {
                0xD0 => '\u{11E}',
                0xDD => '\u{130}',
                0xDE => '\u{15E}',
                0xF0 => '\u{11F}',
                0xFD => '\u{131}',
                0xFE => '\u{15F}',
                b => b as char,
            }),
            0,
        )),
        c => {
            let Some(enc) = c.encoding() else {
                return Err(invalid(c, 0));
            };
            let bom = match c {
                Charset::Utf16Le if bytes.starts_with(b"\xFF\xFE") => 2,
                Charset::Utf16Be if bytes.starts_with(b"\xFE\xFF") => 2,
                _ => 0,
            };
            if !c.is_utf16() && bytes.is_ascii() {
                // ASCII-compatible sets: ASCII bytes are themselves.
                return Ok((Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default()), 0));
            }
            decode_with(enc, &bytes[bom..], bom, c).map(|s| (Cow::Owned(s), bom))
        }
    }
}

fn latin(bytes: &[u8], map: impl Fn(u8) -> char) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(t) if bytes.is_ascii() => Cow::Borrowed(t),
        _ => Cow::Owned(bytes.iter().map(|&b| map(b)).collect()),
    }
}

fn decode_with(enc: &'static Encoding, bytes: &[u8], base: usize, charset: Charset) -> Result<String, CharsetError> {
    let mut decoder = enc.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(bytes.len().saturating_mul(3) / 2 + 16);
    let mut read_total = 0;
    loop {
        let (result, read) = decoder.decode_to_string_without_replacement(&bytes[read_total..], &mut out, true);
        read_total += read;
        match result {
            DecoderResult::InputEmpty => return Ok(out),
            DecoderResult::OutputFull => out.reserve(bytes.len() - read_total + 16),
            DecoderResult::Malformed(bad, after) => {
                let at = read_total.saturating_sub(usize::from(bad) + usize::from(after));
                return Err(invalid(charset, base + at));
            }
        }
    }
}

/// Encodes `text` in `charset` (for messages Sluice writes, like ACKs). Characters the set
/// cannot represent become `?`; a UTF-16 text gets no BOM.
pub fn encode(text: &str, charset: Charset) -> Vec<u8> {
    match charset {
        Charset::Utf8 => text.as_bytes().to_vec(),
        Charset::Ascii => text.chars().map(|c| if c.is_ascii() { c as u8 } else { b'?' }).collect(),
        Charset::Iso8859(1) => text.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect(),
        Charset::Utf16Le => text.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Charset::Utf16Be => text.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        _ if text.is_ascii() => text.as_bytes().to_vec(),
        Charset::Iso8859(9) => text
            .chars()
            .map(|c| match c {
                '\u{11E}' => 0xD0,
                '\u{130}' => 0xDD,
                '\u{15E}' => 0xDE,
                '\u{11F}' => 0xF0,
                '\u{131}' => 0xFD,
                '\u{15F}' => 0xFE,
                '\u{D0}' | '\u{DD}' | '\u{DE}' | '\u{F0}' | '\u{FD}' | '\u{FE}' => b'?',
                c => u8::try_from(u32::from(c)).unwrap_or(b'?'),
            })
            .collect(),
        c => match c.encoding() {
            Some(enc) => match enc.encode(text) {
                (bytes, _, false) => bytes.into_owned(),
                // encoding_rs writes HTML numeric references for unmappable characters; HL7 has
                // no such thing, so encode char by char and write `?` for those.
                _ => {
                    let mut buf = [0u8; 4];
                    text.chars()
                        .flat_map(|ch| match enc.encode(ch.encode_utf8(&mut buf)) {
                            (_, _, true) => vec![b'?'],
                            (b, _, false) => b.into_owned(),
                        })
                        .collect()
                }
            },
            None => text.as_bytes().to_vec(),
        },
    }
}

/// A byte stream made UTF-8 for the splitter, which cuts at CR and LF bytes and so cannot read
/// UTF-16. A UTF-16 stream (byte-order mark, or the NUL pattern in its first bytes) is transcoded
/// as it is read, in bounded memory; any other stream passes through untouched, byte for byte.
///
/// Offsets that readers of a transcoded stream report are offsets in the UTF-8 text, not in the
/// file. Malformed UTF-16 (an unpaired surrogate) is an `InvalidData` error naming the byte
/// offset in the file: nothing is replaced silently.
pub struct Utf8Stream<R> {
    inner: std::io::BufReader<std::io::Chain<std::io::Cursor<Vec<u8>>, R>>,
    decoder: Option<encoding_rs::Decoder>,
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes of `inner` consumed so far (for error offsets).
    consumed: usize,
    done: bool,
}

/// Bytes looked at to recognise UTF-16 without a byte-order mark.
const SNIFF: usize = 64;

impl<R: std::io::Read> Utf8Stream<R> {
    /// Sniffs the start of `inner`; returns the stream and the UTF-16 form found, if any.
    pub fn new(mut inner: R) -> std::io::Result<(Utf8Stream<R>, Option<Charset>)> {
        let mut head = Vec::with_capacity(SNIFF);
        while head.len() < SNIFF {
            let mut chunk = [0u8; SNIFF];
            let n = match inner.read(&mut chunk[..SNIFF - head.len()]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        let utf16 = if head.starts_with(&[0xFF, 0xFE]) {
            Some(Charset::Utf16Le)
        } else if head.starts_with(&[0xFE, 0xFF]) {
            Some(Charset::Utf16Be)
        } else {
            nul_pattern(&head)
        };
        let decoder = utf16.and_then(Charset::encoding).map(Encoding::new_decoder_with_bom_removal);
        let inner =
            std::io::BufReader::with_capacity(64 * 1024, std::io::Read::chain(std::io::Cursor::new(head), inner));
        Ok((Utf8Stream { inner, decoder, out: Vec::new(), out_pos: 0, consumed: 0, done: false }, utf16))
    }
}

impl<R: std::io::Read> std::io::Read for Utf8Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::BufRead;
        let Some(decoder) = &mut self.decoder else {
            return self.inner.read(buf);
        };
        loop {
            if self.out_pos < self.out.len() {
                let n = buf.len().min(self.out.len() - self.out_pos);
                buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let input = self.inner.fill_buf()?;
            let last = input.is_empty();
            // Each UTF-16 unit becomes at most 3 UTF-8 bytes; a pending unit adds a few more.
            self.out.resize(input.len() / 2 * 3 + 16, 0);
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(input, &mut self.out, last);
            self.out.truncate(written);
            self.out_pos = 0;
            if let DecoderResult::Malformed(bad, extra) = result {
                let at = (self.consumed + read).saturating_sub(bad as usize + extra as usize);
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("invalid UTF-16 at byte {at}"),
                ));
            }
            self.inner.consume(read);
            self.consumed += read;
            if last && result == DecoderResult::InputEmpty {
                self.done = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The simple version [`raw_msh_field`] replaces: a byte loop to the line end, then split.
    fn raw_msh_field_simple(bytes: &[u8], n: usize) -> Option<(usize, &[u8])> {
        let start = if bytes.starts_with(UTF8_BOM) { UTF8_BOM.len() } else { 0 };
        let b = bytes.get(start..)?;
        if !b.starts_with(b"MSH") || n < 2 {
            return None;
        }
        let fs = *b.get(3)?;
        if !fs.is_ascii() || fs.is_ascii_alphanumeric() || fs == b'\r' || fs == b'\n' {
            return None;
        }
        let end = b.iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(b.len());
        let mut pos = 4;
        for (i, field) in b[4..end].split(|&c| c == fs).enumerate() {
            if i + 2 == n {
                return Some((start + pos, field));
            }
            pos += field.len() + 1;
        }
        None
    }

    proptest! {
        #[test]
        fn msh_fields_are_found_as_by_the_simple_scan(
            head in proptest::sample::select(vec!["MSH|", "\u{FEFF}MSH|", "MSH^", "MSH", "MSH\r", "PID|"]),
            body in "[|^~&A1 \r\n]{0,80}",
            n in 0usize..22,
        ) {
            let text = format!("{head}{body}");
            let bytes = text.as_bytes();
            prop_assert_eq!(raw_msh_field(bytes, n), raw_msh_field_simple(bytes, n));
        }
    }

    #[test]
    fn names() {
        assert_eq!(Charset::from_hl7_name("8859/1"), Some(Charset::Iso8859(1)));
        assert_eq!(Charset::from_hl7_name("unicode utf-8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_hl7_name("UTF8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_hl7_name("ISO-8859-15"), Some(Charset::Iso8859(15)));
        assert_eq!(Charset::from_hl7_name("8859/10"), None);
        assert_eq!(Charset::from_hl7_name("UNICODE UTF-32"), None);
        assert_eq!(CharsetPolicy::from_name("iso-8859-2"), Some(CharsetPolicy::Fixed(Charset::Iso8859(2))));
        assert_eq!(CharsetPolicy::from_name("auto"), Some(CharsetPolicy::Auto));
        assert_eq!(CharsetPolicy::from_name("iso-8859-10"), None);
    }

    #[test]
    fn msh_fields() {
        let m = b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|X|P|2.5|||||| 8859/1 ^x~UNICODE\rPID|1";
        let (off, v) = raw_msh18(m).unwrap();
        assert_eq!(v, b"8859/1");
        assert_eq!(&m[off..off + 6], b"8859/1");
        assert_eq!(raw_msh_field(m, 10).unwrap().1, b"X");
        assert!(raw_msh18(b"MSH|^~\\&|A\rPID||||||||||||||||||x").is_none());
        assert!(raw_msh18(b"PID|1").is_none());
    }

    #[test]
    fn utf16_files_stream_as_utf8() {
        use std::io::Read;
        let text = "MSH|^~\\&|A|B|||20240115||ADT^A01|1|P|2.5.1|||||||UNICODE UTF-16\rPID|1||1^^^H^MR||M\u{fc}LLER^J\u{f6}RG\r\n";
        for (bom, le) in [(true, true), (true, false), (false, true), (false, false)] {
            let mut bytes = Vec::new();
            if bom {
                bytes.extend_from_slice(if le { &[0xFF, 0xFE] } else { &[0xFE, 0xFF] });
            }
            for unit in text.encode_utf16() {
                bytes.extend_from_slice(&if le { unit.to_le_bytes() } else { unit.to_be_bytes() });
            }
            // A tiny buffer forces units to straddle reads.
            let (mut stream, found) = Utf8Stream::new(std::io::BufReader::with_capacity(3, &bytes[..])).unwrap();
            assert_eq!(found, Some(if le { Charset::Utf16Le } else { Charset::Utf16Be }));
            let mut out = String::new();
            stream.read_to_string(&mut out).unwrap();
            assert_eq!(out, text, "bom={bom} le={le}");
        }
    }

    #[test]
    fn other_streams_pass_through_and_bad_utf16_is_an_error() {
        use std::io::Read;
        let latin = b"MSH|^~\\&|A\xE9\r".to_vec();
        let (mut s, found) = Utf8Stream::new(&latin[..]).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!((found, out), (None, latin));
        let mut bad = vec![0xFF, 0xFE];
        for u in "MSH|".encode_utf16() {
            bad.extend_from_slice(&u.to_le_bytes());
        }
        bad.extend_from_slice(&0xD800u16.to_le_bytes()); // unpaired surrogate
        bad.extend_from_slice(&u16::from(b'X').to_le_bytes());
        let (mut s, _) = Utf8Stream::new(&bad[..]).unwrap();
        let err = s.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("byte 10"), "{err}");
    }
}
