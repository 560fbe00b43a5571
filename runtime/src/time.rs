//! Time: the run clock (fixed for tests, else the system clock) and HL7 DT/DTM conversions.
//!
//! Invariants:
//! - Pure functions of their input: no conversion reads the system clock or the local zone, so
//!   output is deterministic (invariant 6). Only [`Clock::now`] without a fixed clock does.
//! - Conversions return `None` on bad input; callers turn that into a warning that names the
//!   path, never the value.
//! - HL7 times without an offset take the source profile's `timezone`; `+00:00` is written `Z`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::RunError;
use crate::findings;

/// An RFC 3339 UTC instant as [`Clock::now`] writes it (`2024-01-15T10:30:00.123Z`) as an
/// HL7 DTM (`20240115103000.123+0000`), for MSH-7 of messages Sluice writes.
pub fn rfc3339_to_hl7(text: &str) -> String {
    let (body, zone) = match text.strip_suffix('Z') {
        Some(b) => (b, "+0000".to_string()),
        None if text.len() > 6 && matches!(text.as_bytes()[text.len() - 6], b'+' | b'-') => {
            let (b, z) = text.split_at(text.len() - 6);
            (b, z.replace(':', ""))
        }
        None => (text, String::new()),
    };
    let digits: String = body.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    format!("{digits}{zone}")
}

/// The run's clock: a fixed instant (RFC 3339, normalised to UTC `Z`) or the system clock.
#[derive(Clone, Debug)]
pub struct Clock {
    fixed: Option<String>,
}

impl Clock {
    pub fn new(fixed: Option<&str>) -> Result<Clock, RunError> {
        let fixed = match fixed {
            None => None,
            Some(text) => Some(normalize_rfc3339(text).ok_or_else(|| {
                RunError::new(findings::BAD_CLOCK, "the fixed clock is not an RFC 3339 timestamp")
                    .with_help("write it like `2024-01-15T10:30:00Z`")
            })?),
        };
        Ok(Clock { fixed })
    }

    /// The current instant as RFC 3339 UTC (`...Z`).
    pub fn now(&self) -> String {
        if let Some(f) = &self.fixed {
            return f.clone();
        }
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut s = format_utc(d.as_secs() as i64);
        // Milliseconds, so entries of one second stay distinguishable.
        s.insert_str(s.len() - 1, &format!(".{:03}", d.subsec_millis()));
        s
    }

    /// A value that seeds the run id: the fixed instant, or the system time in nanoseconds.
    pub fn seed(&self) -> String {
        match &self.fixed {
            Some(f) => f.clone(),
            None => {
                let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
            }
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60);
    }
    // The usual case, written digit by digit: `format!` cost more than the rest of a date
    // conversion, and mapping converts several dates per record.
    let mut out = String::with_capacity(20);
    let mut push = |n: u32, width: u32, sep: Option<char>| {
        push_digits(&mut out, n, width);
        if let Some(c) = sep {
            out.push(c);
        }
    };
    push(y as u32, 4, Some('-'));
    push(m, 2, Some('-'));
    push(d, 2, Some('T'));
    push((rem / 3600) as u32, 2, Some(':'));
    push(((rem % 3600) / 60) as u32, 2, Some(':'));
    push((rem % 60) as u32, 2, Some('Z'));
    out
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn num(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_date(y: i64, m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

/// Parses RFC 3339 (`2024-01-15T10:30:00Z`, `...T10:30:00.5+02:00`) and writes it in UTC with
/// `Z`, keeping a fraction of a second as written.
pub fn normalize_rfc3339(text: &str) -> Option<String> {
    let t = text.trim();
    if t.len() < 20 || !t.is_ascii() {
        return None;
    }
    let b = t.as_bytes();
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let y = num(&t[0..4])? as i64;
    let (mo, d, h, mi, s) = (num(&t[5..7])?, num(&t[8..10])?, num(&t[11..13])?, num(&t[14..16])?, num(&t[17..19])?);
    if !valid_date(y, mo, d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac = "";
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        frac = &r[..n];
        rest = &r[n..];
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let (oh, om) = (num(&rest[1..3])?, num(&rest[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh as i64 * 3600 + om as i64 * 60)
        }
    };
    let secs =
        days_from_civil(y, mo, d) * 86400 + (h as i64) * 3600 + (mi as i64) * 60 + s.min(59) as i64 - offset_secs;
    let mut out = format_utc(secs);
    if !frac.is_empty() {
        out.insert_str(out.len() - 1, &format!(".{frac}"));
    }
    Some(out)
}

/// The parts of an HL7 DTM value.
#[derive(Debug, PartialEq, Eq)]
struct Dtm<'a> {
    y: i64,
    mo: Option<u32>,
    d: Option<u32>,
    h: Option<u32>,
    mi: Option<u32>,
    s: Option<u32>,
    frac: &'a str,
    /// `+HHMM` / `-HHMM` as written.
    offset: Option<(char, u32, u32)>,
}

/// `YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`, every part range-checked.
fn parse_dtm(text: &str) -> Option<Dtm<'_>> {
    let t = text.trim();
    if !t.is_ascii() {
        return None;
    }
    let (main, offset) = match t.find(['+', '-']) {
        Some(i) => {
            let z = &t[i + 1..];
            if z.len() != 4 {
                return None;
            }
            let (oh, om) = (num(&z[..2])?, num(&z[2..])?);
            if oh > 14 || om > 59 {
                return None;
            }
            (&t[..i], Some((t.as_bytes()[i] as char, oh, om)))
        }
        None => (t, None),
    };
    let (digits, frac) = match main.split_once('.') {
        Some((d, f)) => {
            if d.len() != 14 || !all_digits(f) {
                return None;
            }
            (d, f)
        }
        None => (main, ""),
    };
    if !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14) || !all_digits(digits) {
        return None;
    }
    let part = |i: usize| (digits.len() >= i + 2).then(|| num(&digits[i..i + 2])).flatten();
    let dtm = Dtm {
        y: num(&digits[..4])? as i64,
        mo: part(4),
        d: part(6),
        h: part(8),
        mi: part(10),
        s: part(12),
        frac,
        offset,
    };
    let mo = dtm.mo.unwrap_or(1);
    if !(1..=12).contains(&mo)
        || dtm.d.is_some_and(|d| !valid_date(dtm.y, mo, d))
        || dtm.h.is_some_and(|h| h > 23)
        || dtm.mi.is_some_and(|m| m > 59)
        || dtm.s.is_some_and(|s| s > 59)
    {
        return None;
    }
    Some(dtm)
}

/// HL7 DT: exactly `YYYYMMDD`, a real calendar date.
pub fn is_hl7_date(text: &str) -> bool {
    let t = text.trim();
    t.len() == 8 && parse_dtm(t).is_some()
}

/// HL7 DTM (any precision from `YYYY`, optional fraction and offset).
pub fn is_hl7_datetime(text: &str) -> bool {
    parse_dtm(text).is_some()
}

/// HL7 DT/DTM (at least `YYYYMMDD`) -> `YYYY-MM-DD`. Text already in `YYYY-MM-DD[T...]` form
/// (the output of a datetime conversion) is accepted too.
pub fn hl7_to_date(text: &str) -> Option<String> {
    let t = text.trim();
    if let Some(iso) = iso_date_prefix(t) {
        return Some(iso);
    }
    let dtm = parse_dtm(t)?;
    let (mo, d) = (dtm.mo?, dtm.d?);
    Some(format!("{:04}-{mo:02}-{d:02}", dtm.y))
}

fn iso_date_prefix(t: &str) -> Option<String> {
    let b = t.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || !t.is_ascii() {
        return None;
    }
    if b.len() > 10 && normalize_rfc3339(t).is_none() {
        return None;
    }
    let (y, m, d) = (num(&t[..4])? as i64, num(&t[5..7])?, num(&t[8..10])?);
    valid_date(y, m, d).then(|| t[..10].to_string())
}

/// A profile time zone (`+00:00`, `-05:00`, `-0500`, `Z`, `UTC`) in RFC 3339 form (`Z`,
/// `-05:00`). Unreadable zones give `Z` (the compiler checks them).
pub fn normalize_zone(zone: &str) -> String {
    let z = zone.trim();
    if z.is_empty() || z.eq_ignore_ascii_case("z") || z.eq_ignore_ascii_case("utc") {
        return "Z".into();
    }
    let digits: String = z.chars().skip(1).filter(|c| *c != ':').collect();
    match (z.chars().next(), digits.len(), num(&digits)) {
        (Some(sign @ ('+' | '-')), 4, Some(_)) => {
            format_zone(sign, num(&digits[..2]).unwrap_or(0), num(&digits[2..]).unwrap_or(0))
        }
        _ => "Z".into(),
    }
}

/// Whether `zone` (from [`normalize_zone`]) is an offset RFC 3339 accepts: `Z`, or `+HH:MM` /
/// `-HH:MM` with hours up to 23 and minutes up to 59. The compiler lets a profile say `+99:00`;
/// datetimes written with such a zone do not read back.
pub fn is_rfc3339_zone(zone: &str) -> bool {
    let b = zone.as_bytes();
    zone == "Z"
        || (b.len() == 6
            && matches!(b[0], b'+' | b'-')
            && b[3] == b':'
            && num(&zone[1..3]).is_some_and(|h| h <= 23)
            && num(&zone[4..6]).is_some_and(|m| m <= 59))
}

fn format_zone(sign: char, h: u32, m: u32) -> String {
    if h == 0 && m == 0 { "Z".into() } else { format!("{sign}{h:02}:{m:02}") }
}

/// HL7 DTM -> RFC 3339 `YYYY-MM-DDTHH:MM:SS[.S]` plus offset. Missing month and day are 01,
/// missing time parts 00; the offset is the value's own, else `default_zone` (already
/// normalised by [`normalize_zone`]). RFC 3339 text is accepted as is.
pub fn hl7_to_datetime(text: &str, default_zone: &str) -> Option<String> {
    let t = text.trim();
    if t.len() >= 20 && t.as_bytes().get(4) == Some(&b'-') {
        return normalize_rfc3339(t).map(|_| t.to_string());
    }
    let dtm = parse_dtm(t)?;
    // Written digit by digit, as in `format_utc` (a property test holds it to `format!`).
    let mut out = String::with_capacity(26 + dtm.frac.len() + default_zone.len());
    push_digits(&mut out, u32::try_from(dtm.y).ok().filter(|y| *y <= 9999)?, 4);
    out.push('-');
    push_digits(&mut out, dtm.mo.unwrap_or(1), 2);
    out.push('-');
    push_digits(&mut out, dtm.d.unwrap_or(1), 2);
    out.push('T');
    push_digits(&mut out, dtm.h.unwrap_or(0), 2);
    out.push(':');
    push_digits(&mut out, dtm.mi.unwrap_or(0), 2);
    out.push(':');
    push_digits(&mut out, dtm.s.unwrap_or(0), 2);
    if !dtm.frac.is_empty() {
        out.push('.');
        out.push_str(dtm.frac);
    }
    match dtm.offset {
        Some((sign, h, m)) => out.push_str(&format_zone(sign, h, m)),
        None => out.push_str(default_zone),
    }
    Some(out)
}

/// `n` in `width` decimal digits, zero-padded (`n` must fit).
fn push_digits(out: &mut String, n: u32, width: u32) {
    for p in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_as_hl7() {
        assert_eq!(super::rfc3339_to_hl7("2024-01-15T10:30:00.123Z"), "20240115103000.123+0000");
        assert_eq!(super::rfc3339_to_hl7("2024-01-15T10:30:00-05:00"), "20240115103000-0500");
    }

    use super::*;

    proptest::proptest! {
        #[test]
        fn format_utc_writes_what_format_writes(secs in -100_000_000_000i64..300_000_000_000) {
            let (y, m, d) = civil_from_days(secs.div_euclid(86400));
            let rem = secs.rem_euclid(86400);
            let expected =
                format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem % 3600) / 60, rem % 60);
            proptest::prop_assert_eq!(format_utc(secs), expected);
        }

        /// Converting a converted value again gives it back unchanged, so the evaluator does
        /// not convert a value its expression already converted (`date(PID-7)`, a `datetime`
        /// output fed by `datetime(MSH-7)`).
        #[test]
        fn conversions_are_idempotent(
            t in proptest::prop_oneof![
                "[0-9]{4}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}(\\.[0-9]{1,4})?)?)?)?)?)?([+-][0-9]{4})?",
                "[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,3})?([Zz]|[+-][0-9]{2}:[0-9]{2}))?",
            ],
            zone in "[+-][0-9]{4}|Z",
        ) {
            let zone = normalize_zone(&zone);
            let zone = zone.as_str();
            if !is_rfc3339_zone(zone) {
                proptest::prop_assert!(hl7_to_datetime("20240115", zone).and_then(|dt| hl7_to_datetime(&dt, zone)).is_none());
                return Ok(());
            }
            if let Some(dt) = hl7_to_datetime(&t, zone) {
                proptest::prop_assert_eq!(hl7_to_datetime(&dt, zone), Some(dt.clone()));
                if let Some(d) = hl7_to_date(&dt) {
                    proptest::prop_assert_eq!(hl7_to_date(&d), Some(d.clone()));
                }
            }
            if let Some(d) = hl7_to_date(&t) {
                proptest::prop_assert_eq!(hl7_to_date(&d), Some(d.clone()));
            }
        }

        /// `hl7_to_datetime` gives what the `format!` version it replaced gave.
        #[test]
        fn hl7_to_datetime_writes_what_format_writes(
            t in "[0-9]{4}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}(\\.[0-9]{1,4})?)?)?)?)?)?([+-][0-9]{4})?",
            zone in proptest::sample::select(vec!["Z", "-05:00", "+01:00"]),
        ) {
            let expected = parse_dtm(&t).map(|dtm| {
                let zone = match dtm.offset {
                    Some((sign, h, m)) => format_zone(sign, h, m),
                    None => zone.to_string(),
                };
                let frac = if dtm.frac.is_empty() { String::new() } else { format!(".{}", dtm.frac) };
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
                    dtm.y,
                    dtm.mo.unwrap_or(1),
                    dtm.d.unwrap_or(1),
                    dtm.h.unwrap_or(0),
                    dtm.mi.unwrap_or(0),
                    dtm.s.unwrap_or(0),
                )
            });
            proptest::prop_assert_eq!(hl7_to_datetime(&t, zone), expected);
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000, -1, 0, 1, 19_737, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_705_314_600), "2024-01-15T10:30:00Z");
    }

    #[test]
    fn rfc3339_normalisation() {
        assert_eq!(normalize_rfc3339("2024-01-15T10:30:00Z").unwrap(), "2024-01-15T10:30:00Z");
        assert_eq!(normalize_rfc3339("2024-01-15T12:30:00.25+02:00").unwrap(), "2024-01-15T10:30:00.25Z");
        assert_eq!(normalize_rfc3339("2024-01-01T01:00:00+05:00").unwrap(), "2023-12-31T20:00:00Z");
        for bad in ["", "2024-01-15", "2024-13-01T00:00:00Z", "2024-01-15T10:30:00", "yesterday"] {
            assert!(normalize_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(hl7_to_date("19800115").unwrap(), "1980-01-15");
        assert_eq!(hl7_to_date("198001151230-0500").unwrap(), "1980-01-15");
        assert_eq!(hl7_to_date("2024-01-15T08:00:00Z").unwrap(), "2024-01-15");
        for bad in ["1980", "198001", "19800230", "1980011", "abc", "", "19800115+99", "２０２４０１０１"] {
            assert!(hl7_to_date(bad).is_none(), "{bad}");
        }
        assert!(is_hl7_date("20240229"));
        assert!(!is_hl7_date("20230229"));
        assert!(!is_hl7_date("2024022912"));
    }

    #[test]
    fn datetimes() {
        let z = normalize_zone("+00:00");
        assert_eq!(z, "Z");
        assert_eq!(hl7_to_datetime("20240115083000", &z).unwrap(), "2024-01-15T08:30:00Z");
        assert_eq!(hl7_to_datetime("202401150830", &z).unwrap(), "2024-01-15T08:30:00Z");
        assert_eq!(hl7_to_datetime("2024", &z).unwrap(), "2024-01-01T00:00:00Z");
        assert_eq!(hl7_to_datetime("20240115083000.1234-0500", &z).unwrap(), "2024-01-15T08:30:00.1234-05:00");
        assert_eq!(hl7_to_datetime("20240115083000+0000", "-05:00").unwrap(), "2024-01-15T08:30:00Z");
        assert_eq!(hl7_to_datetime("20240115", &normalize_zone("-0500")).unwrap(), "2024-01-15T00:00:00-05:00");
        assert_eq!(hl7_to_datetime("2024-01-15T08:30:00Z", "Z").unwrap(), "2024-01-15T08:30:00Z");
        for bad in ["", "20241", "20240115250000", "20240115083000.", "2024011508300", "20240115+05", "x2024"] {
            assert!(hl7_to_datetime(bad, "Z").is_none(), "{bad}");
        }
        assert!(is_hl7_datetime("20240115083000.5+0100"));
    }

    #[test]
    fn clock() {
        let c = Clock::new(Some("2024-01-15T12:30:00+02:00")).unwrap();
        assert_eq!(c.now(), "2024-01-15T10:30:00Z");
        assert_eq!(Clock::new(Some("nope")).unwrap_err().code, "RT006");
        assert!(Clock::new(None).unwrap().now().ends_with('Z'));
    }
}
