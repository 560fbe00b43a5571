//! The lexical rules of the FHIR R4 primitive types (the regexes of the specification, written
//! out by hand so checking needs no regex engine): `date`, `dateTime`, `instant`, `time`,
//! `id`, `code`, `oid`, `uuid`, `integer`, `positiveInt`, `unsignedInt`, `base64Binary`...
//!
//! Invariants: never panics; [`check`] says what form was expected and never quotes the value.

/// Checks a primitive's text (numbers: their JSON text) against its type. `Err` says the
/// expected form.
pub fn check(type_code: &str, text: &str) -> Result<(), &'static str> {
    check_type(Type::of(type_code), text)
}

/// The lexical rule a type code selects ([`Type::of`]): the validator finds it once per
/// element of the schema instead of matching the type code's text for every value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Date,
    DateTime,
    Instant,
    Time,
    Id,
    Code,
    Oid,
    Uuid,
    Uri,
    Integer,
    PositiveInt,
    UnsignedInt,
    Decimal,
    Base64Binary,
    String,
    Xhtml,
    /// Any other type code: any text is accepted.
    Other,
}

impl Type {
    /// The rule of a FHIR or System type code (`dateTime`, `System.String`).
    pub fn of(type_code: &str) -> Type {
        match type_code {
            "date" | "System.Date" => Type::Date,
            "dateTime" | "System.DateTime" => Type::DateTime,
            "instant" => Type::Instant,
            "time" | "System.Time" => Type::Time,
            "id" => Type::Id,
            "code" => Type::Code,
            "oid" => Type::Oid,
            "uuid" => Type::Uuid,
            "uri" | "url" | "canonical" => Type::Uri,
            "integer" | "System.Integer" => Type::Integer,
            "positiveInt" => Type::PositiveInt,
            "unsignedInt" => Type::UnsignedInt,
            "decimal" | "System.Decimal" => Type::Decimal,
            "base64Binary" => Type::Base64Binary,
            "string" | "markdown" | "System.String" => Type::String,
            "xhtml" => Type::Xhtml,
            _ => Type::Other,
        }
    }

    /// What the rule expects, for a finding's message.
    pub fn expected(self) -> &'static str {
        match self {
            Type::Date => "a date YYYY, YYYY-MM or YYYY-MM-DD",
            Type::DateTime => {
                "a date YYYY, YYYY-MM, YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)"
            }
            Type::Instant => "an instant YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)",
            Type::Time => "a time hh:mm:ss(.sss)",
            Type::Id => "1 to 64 of A-Z, a-z, 0-9, `-` and `.`",
            Type::Code => "a code: no leading or trailing whitespace, single spaces inside",
            Type::Oid => "an OID urn:oid:1.2.3",
            Type::Uuid => "a UUID urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in lower case",
            Type::Uri => "a URI without whitespace",
            Type::Integer => "a 32-bit integer without fraction or exponent",
            Type::PositiveInt => "an integer above 0",
            Type::UnsignedInt => "an integer 0 or above",
            Type::Base64Binary => "base64 text",
            Type::Xhtml => "an XHTML <div> element",
            Type::Decimal | Type::String | Type::Other => "a non-empty value",
        }
    }
}

/// Checks a primitive's text against the rule of its type ([`check`] with the type code
/// already looked up).
pub fn check_type(t: Type, text: &str) -> Result<(), &'static str> {
    let ok = match t {
        Type::Date => is_date(text),
        Type::DateTime => is_date_time(text),
        Type::Instant => is_instant(text),
        Type::Time => is_time(text),
        Type::Id => {
            (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        Type::Code => is_code(text),
        Type::Oid => is_oid(text),
        Type::Uuid => is_uuid(text),
        Type::Uri => !text.is_empty() && !has_whitespace(text),
        Type::Integer => int_value(text).is_some(),
        Type::PositiveInt => int_value(text).is_some_and(|v| v > 0),
        Type::UnsignedInt => int_value(text).is_some_and(|v| v >= 0),
        Type::Decimal => !text.is_empty(),
        Type::Base64Binary => is_base64(text),
        // Nearly every string starts with a visible ASCII character, which settles it without
        // trimming (Unicode whitespace is only looked for otherwise).
        Type::String => text.as_bytes().first().is_some_and(|&b| b > b' ' && b < 0x7f) || !text.trim().is_empty(),
        Type::Xhtml => text.trim_start().starts_with("<div"),
        Type::Other => true,
    };
    if ok { Ok(()) } else { Err(t.expected()) }
}

fn int_value(text: &str) -> Option<i64> {
    let body = text.strip_prefix('-').unwrap_or(text);
    let canonical = body == "0" || (body.starts_with(|c: char| ('1'..='9').contains(&c)));
    if !canonical || !body.bytes().all(|b| b.is_ascii_digit()) || body.len() > 10 {
        return None;
    }
    let v: i64 = text.parse().ok()?;
    (i32::MIN as i64..=i32::MAX as i64).contains(&v).then_some(v)
}

// The date and time forms are checked byte by byte at fixed positions: every dateTime and
// instant of every resource goes through here, and splitting and searching strings cost a
// tenth of a Bundle's validation. `tests::reference` keeps the readable splitting version,
// and a property test holds the two equal.

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a real day of that month).
fn is_date(s: &str) -> bool {
    is_date_bytes(s.as_bytes())
}

fn is_date_bytes(b: &[u8]) -> bool {
    if !matches!(b.len(), 4 | 7 | 10) {
        return false;
    }
    let Some(year) = fixed_digits(b, 0, 4) else { return false };
    if b.len() == 4 {
        return true;
    }
    let Some(month @ 1..=12) = dash_then_2_digits(b, 4) else { return false };
    if b.len() == 7 {
        return true;
    }
    dash_then_2_digits(b, 7).is_some_and(|d| d >= 1 && d <= days_in_month(year, month))
}

/// The value of the `n` ASCII digits at `b[at..at + n]`.
fn fixed_digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + n)? {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u32::from(d);
    }
    Some(v)
}

/// `-DD` at `b[at..at + 3]`: the two digits' value.
fn dash_then_2_digits(b: &[u8], at: usize) -> Option<u32> {
    if b.get(at) != Some(&b'-') {
        return None;
    }
    fixed_digits(b, at + 1, 2)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `hh:mm:ss` with an optional fraction of one or more digits.
fn is_time(s: &str) -> bool {
    is_time_bytes(s.as_bytes())
}

fn is_time_bytes(b: &[u8]) -> bool {
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let clock = fixed_digits(b, 0, 2).is_some_and(|h| h <= 23)
        && fixed_digits(b, 3, 2).is_some_and(|m| m <= 59)
        && fixed_digits(b, 6, 2).is_some_and(|s| s <= 60);
    let fraction = match &b[8..] {
        [] => true,
        [b'.', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    clock && fraction
}

/// `Z`, `+hh:mm` or `-hh:mm` (hours up to 14).
fn is_zone_bytes(z: &[u8]) -> bool {
    match z {
        [b'Z'] => true,
        [b'+' | b'-', _, _, b':', _, _] => {
            fixed_digits(z, 1, 2).is_some_and(|h| h <= 14) && fixed_digits(z, 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// `YYYY-MM-DDThh:mm:ss(.sss)(Z|±hh:mm)`.
fn is_full_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 11 || b[10] != b'T' || !is_date_bytes(&b[..10]) {
        return false;
    }
    let rest = &b[11..];
    let zone_at = rest.iter().position(|c| matches!(c, b'Z' | b'+' | b'-')).unwrap_or(rest.len());
    is_time_bytes(&rest[..zone_at]) && is_zone_bytes(&rest[zone_at..])
}

/// A date (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`: at most 10 bytes) or a full date and time (more).
fn is_date_time(s: &str) -> bool {
    if s.len() > 10 { is_full_date_time(s) } else { is_date(s) }
}

fn is_instant(s: &str) -> bool {
    is_full_date_time(s)
}

/// Any whitespace character (Unicode's definition, as `char::is_whitespace`); ASCII text,
/// nearly every URI and code, is scanned as bytes.
fn has_whitespace(s: &str) -> bool {
    if !s.is_ascii() {
        return s.chars().any(char::is_whitespace);
    }
    any_below_0x21(s.as_bytes()) && s.bytes().any(is_ascii_space)
}

/// Whether any byte of ASCII text is a space or a control character (below 0x21), eight
/// bytes at a time: the usual answer for URIs and codes is no, which settles their checks
/// without looking at each byte.
fn any_below_0x21(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let w = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        // Exact for "is there one" on bytes below 0x80 (callers pass ASCII): a borrow only
        // marks bytes above a byte that is itself below 0x21.
        if w.wrapping_sub(ONES * 0x21) & !w & HIGHS != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| c < 0x21)
}

/// The ASCII characters `char::is_whitespace` accepts (vertical tab included, unlike
/// `u8::is_ascii_whitespace`).
fn is_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t'..=b'\r')
}

/// Not empty, no whitespace at either end, no tab or line break, no two spaces in a row.
fn is_code(s: &str) -> bool {
    if !s.is_ascii() {
        return !s.is_empty() && s.trim() == s && !s.contains("  ") && !s.contains(['\t', '\n', '\r']);
    }
    let b = s.as_bytes();
    if !b.is_empty() && !any_below_0x21(b) {
        return true;
    }
    let (Some(&first), Some(&last)) = (b.first(), b.last()) else { return false };
    if is_ascii_space(first) || is_ascii_space(last) {
        return false;
    }
    let mut previous_space = false;
    for &c in b {
        if matches!(c, b'\t' | b'\n' | b'\r') || (c == b' ' && previous_space) {
            return false;
        }
        previous_space = c == b' ';
    }
    true
}

fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else { return false };
    let mut arcs = rest.split('.');
    let first_ok = arcs.next().is_some_and(|a| matches!(a, "0" | "1" | "2"));
    let mut n = 0;
    let rest_ok = arcs.all(|a| {
        n += 1;
        !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) && (a == "0" || !a.starts_with('0'))
    });
    first_ok && rest_ok && n >= 1
}

fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else { return false };
    let mut groups = rest.split('-');
    let sized = [8, 4, 4, 4, 12].iter().all(|&n| {
        groups
            .next()
            .is_some_and(|g| g.len() == n && g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    });
    sized && groups.next().is_none()
}

fn is_base64(s: &str) -> bool {
    // One table lookup per byte instead of a chain of range tests (attachments are the
    // longest strings of many resources): the classes of all bytes are ANDed (a byte outside
    // both classes clears the bit they share), the data bytes counted by their low bit.
    // Runs of eight data bytes (no blanks: nearly all of an attachment) are settled as one
    // word first.
    let bytes = s.as_bytes();
    let mut at = 0;
    let mut n = 0usize;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        if !all_base64_data(u64::from_le_bytes(*word)) {
            break;
        }
        at += 8;
        n += 8;
    }
    let mut all = BASE64_BLANK | BASE64_DATA;
    for &b in &bytes[at..] {
        let class = BASE64_CLASS[usize::from(b)];
        all &= class;
        n += usize::from(class & 1);
    }
    all & 2 != 0 && n.is_multiple_of(4)
}

/// Whether all eight bytes of `w` are base64 data (`A-Z a-z 0-9 + / =`), as a word: for ASCII
/// bytes (below 0x80, checked first) `x + (0x80 - lo)` has its high bit set exactly when
/// `x >= lo` and `x + (0x7f - hi)` when `x > hi`, with no carry out of any byte.
fn all_base64_data(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    if w & HIGHS != 0 {
        return false;
    }
    let in_range = |x: u64, lo: u64, hi: u64| (x + ONES * (0x80 - lo)) & !(x + ONES * (0x7f - hi)) & HIGHS;
    // The high bit of each byte of `x` that is zero, exactly (`x` ASCII).
    let zero = |x: u64| !(((x & LOWS) + LOWS) | x) & HIGHS;
    // Letters: `| 0x20` folds A-Z onto a-z and nothing else onto a-z.
    let letters = in_range(w | (ONES * 0x20), 0x61, 0x7a);
    let digits = in_range(w, 0x30, 0x39);
    // `+` (0x2b) and `/` (0x2f) differ in bit 2 only.
    let plus_slash = zero((w | (ONES * 0x04)) ^ (ONES * 0x2f));
    let equals = zero(w ^ (ONES * 0x3d));
    letters | digits | plus_slash | equals == HIGHS
}

/// Base64 data: `A-Z a-z 0-9 + / =` (bit 0: counted; bit 1: allowed).
const BASE64_DATA: u8 = 3;
/// Blanks allowed between base64 data: space, tab, CR, LF.
const BASE64_BLANK: u8 = 2;
/// The class of every byte: [`BASE64_DATA`], [`BASE64_BLANK`] or 0 (not allowed).
static BASE64_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'=' {
            BASE64_DATA
        } else if c == b' ' || c == b'\t' || c == b'\r' || c == b'\n' {
            BASE64_BLANK
        } else {
            0
        };
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::check;
    use proptest::prelude::*;

    /// The date and time rules written with splits and searches, as first implemented: the
    /// oracle the byte-level checks must agree with.
    mod reference {
        fn digits(s: &str, n: usize) -> Option<u32> {
            if s.len() != n {
                return None;
            }
            s.bytes().try_fold(0u32, |v, b| b.is_ascii_digit().then(|| v * 10 + u32::from(b - b'0')))
        }

        pub fn is_date(s: &str) -> bool {
            let mut parts = s.splitn(3, '-');
            let Some(year) = parts.next().and_then(|y| digits(y, 4)) else { return false };
            let month = match parts.next() {
                None => return true,
                Some(m) => match digits(m, 2) {
                    Some(m @ 1..=12) => m,
                    _ => return false,
                },
            };
            match parts.next() {
                None => true,
                Some(d) => digits(d, 2).is_some_and(|d| d >= 1 && d <= super::super::days_in_month(year, month)),
            }
        }

        pub fn is_time(s: &str) -> bool {
            let (main, frac) = match s.split_once('.') {
                Some((m, f)) => (m, Some(f)),
                None => (s, None),
            };
            if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
                return false;
            }
            let p: Vec<&str> = main.split(':').collect();
            let [h, m, s] = p[..] else { return false };
            digits(h, 2).is_some_and(|h| h <= 23)
                && digits(m, 2).is_some_and(|m| m <= 59)
                && digits(s, 2).is_some_and(|s| s <= 60)
        }

        fn is_zone(z: &str) -> bool {
            if z == "Z" {
                return true;
            }
            let Some(rest) = z.strip_prefix('+').or_else(|| z.strip_prefix('-')) else { return false };
            let Some((h, m)) = rest.split_once(':') else { return false };
            digits(h, 2).is_some_and(|h| h <= 14) && digits(m, 2).is_some_and(|m| m <= 59)
        }

        pub fn is_full_date_time(s: &str) -> bool {
            let Some((date, rest)) = s.split_once('T') else { return false };
            if date.len() != 10 || !is_date(date) {
                return false;
            }
            let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
            let (time, zone) = rest.split_at(zone_at);
            is_time(time) && is_zone(zone)
        }

        pub fn is_date_time(s: &str) -> bool {
            if s.contains('T') { is_full_date_time(s) } else { is_date(s) }
        }

        pub fn is_code(s: &str) -> bool {
            !s.is_empty() && s.trim() == s && !s.contains("  ") && !s.contains(['\t', '\n', '\r'])
        }

        pub fn is_uri(s: &str) -> bool {
            !s.is_empty() && !s.chars().any(char::is_whitespace)
        }

        pub fn is_base64(s: &str) -> bool {
            let mut n = 0usize;
            for b in s.bytes() {
                match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' | b'=' => n += 1,
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    _ => return false,
                }
            }
            n.is_multiple_of(4)
        }
    }

    /// Strings near the date and time forms: digits and the separators, mostly in place.
    fn date_like() -> impl Strategy<Value = String> {
        const TEMPLATES: &[&str] = &[
            "2020",
            "2020-02",
            "2020-02-29",
            "10:00:00",
            "23:59:60.125",
            "2020-01-01T10:00:00Z",
            "2020-01-01T10:00:00.123+05:30",
            "2021-12-31T23:59:59-14:00",
            "1999-02-28T00:00:00.0Z",
        ];
        (
            proptest::sample::select(TEMPLATES),
            proptest::collection::vec(
                (
                    0usize..32,
                    proptest::sample::select(
                        &['0', '1', '2', '3', '5', '9', '-', ':', '.', 'T', 'Z', '+', ' ', 'é'][..],
                    ),
                ),
                0..4,
            ),
            any::<bool>(),
        )
            .prop_map(|(t, edits, truncate)| {
                let mut chars: Vec<char> = t.chars().collect();
                for (at, c) in edits {
                    match at % 3 {
                        0 if !chars.is_empty() => {
                            let i = at % chars.len();
                            chars[i] = c;
                        }
                        1 => {
                            let i = at % (chars.len() + 1);
                            chars.insert(i, c);
                        }
                        _ if !chars.is_empty() => {
                            chars.remove(at % chars.len());
                        }
                        _ => {}
                    }
                }
                if truncate && chars.len() > 1 {
                    chars.truncate(chars.len() - 1);
                }
                chars.into_iter().collect()
            })
    }

    proptest! {
        #[test]
        fn byte_level_date_and_time_checks_agree_with_the_reference(s in date_like()) {
            prop_assert_eq!(super::is_date(&s), reference::is_date(&s), "date {:?}", s);
            prop_assert_eq!(super::is_time(&s), reference::is_time(&s), "time {:?}", s);
            prop_assert_eq!(super::is_full_date_time(&s), reference::is_full_date_time(&s), "instant {:?}", s);
            prop_assert_eq!(super::is_date_time(&s), reference::is_date_time(&s), "dateTime {:?}", s);
        }

        #[test]
        fn code_and_uri_checks_agree_with_the_reference(s in "([ab/:]{0,9}[ab \t\n\x0b\x0c\r\x1f!\u{a0}\u{2003}é]?){0,5}") {
            prop_assert_eq!(check("code", &s).is_ok(), reference::is_code(&s), "code {:?}", s);
            prop_assert_eq!(check("uri", &s).is_ok(), reference::is_uri(&s), "uri {:?}", s);
        }

        #[test]
        fn base64_table_agrees_with_the_reference(s in "([A-Za-z0-9+/=]{0,9}[ \t\r\n\x0b_\\-é\x00]?){0,5}") {
            prop_assert_eq!(check("base64Binary", &s).is_ok(), reference::is_base64(&s), "{:?}", s);
        }

        #[test]
        fn base64_words_agree_with_the_reference(s in "[A-Za-z0-9+/=@\\[`{:*,.0-9 \n]{0,40}") {
            prop_assert_eq!(check("base64Binary", &s).is_ok(), reference::is_base64(&s), "{:?}", s);
            let long = format!("QUJD{s}RA==");
            prop_assert_eq!(check("base64Binary", &long).is_ok(), reference::is_base64(&long), "{:?}", long);
        }

        #[test]
        fn byte_level_checks_agree_on_any_text(s in ".{0,40}") {
            prop_assert_eq!(check("base64Binary", &s).is_ok(), reference::is_base64(&s));
            prop_assert_eq!(check("code", &s).is_ok(), reference::is_code(&s));
            prop_assert_eq!(check("uri", &s).is_ok(), reference::is_uri(&s));
            prop_assert_eq!(super::is_date_time(&s), reference::is_date_time(&s));
            prop_assert_eq!(super::is_time(&s), reference::is_time(&s));
        }
    }

    #[test]
    fn base64_word_check_agrees_with_the_table_for_every_byte_in_every_place() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"AZaz09+/";
                word[at] = b;
                let by_table = word.iter().all(|&c| super::BASE64_CLASS[usize::from(c)] == super::BASE64_DATA);
                assert_eq!(super::all_base64_data(u64::from_le_bytes(word)), by_table, "{b:#x} at {at}");
            }
        }
    }

    #[test]
    fn formats() {
        for (t, good, bad) in [
            ("date", &["2020", "2020-02", "2020-02-29"][..], &["2019-02-29", "20-01-01", "2020-13", "2020-1-01"][..]),
            (
                "dateTime",
                &["2020", "2020-01-01T10:00:00Z", "2020-01-01T10:00:00.123+05:30"],
                &["2020-01-01T10:00", "2020-01-01T10:00:00", "2020-01-01 10:00:00Z"],
            ),
            ("instant", &["2020-01-01T10:00:00-05:00"], &["2020-01-01"]),
            ("time", &["10:00:00", "23:59:59.5"], &["24:00:00", "10:00"]),
            ("id", &["a-1.B"], &["a_b", ""]),
            ("code", &["male", "a b"], &[" x", "a  b", ""]),
            ("integer", &["0", "-5", "2147483647"], &["01", "1.0", "2147483648"]),
            ("positiveInt", &["1"], &["0"]),
            ("unsignedInt", &["0"], &["-1"]),
            ("oid", &["urn:oid:2.16.840.1"], &["urn:oid:3.1", "2.16"]),
            (
                "uuid",
                &["urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162"],
                &["urn:uuid:A76D9BBF-F293-4FB7-AD4C-2851CAC77162"],
            ),
            ("base64Binary", &["aGk=", "aGVs bG8="], &["a$=="]),
        ] {
            for g in good {
                assert!(check(t, g).is_ok(), "{t} {g}");
            }
            for b in bad {
                assert!(check(t, b).is_err(), "{t} {b}");
            }
        }
    }
}
