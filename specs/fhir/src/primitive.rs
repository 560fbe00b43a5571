//! The lexical rules of the FHIR R4 primitive types (the regexes of the specification, written
//! out by hand so checking needs no regex engine): `date`, `dateTime`, `instant`, `time`,
//! `id`, `code`, `oid`, `uuid`, `integer`, `positiveInt`, `unsignedInt`, `base64Binary`...
//!
//! Invariants: never panics; [`check`] says what form was expected and never quotes the value.

/// Checks a primitive's text (numbers: their JSON text) against its type. `Err` says the
/// expected form.
pub fn check(type_code: &str, text: &str) -> Result<(), &'static str> {
    let ok = match type_code {
        "date" | "System.Date" => is_date(text),
        "dateTime" | "System.DateTime" => is_date_time(text),
        "instant" => is_instant(text),
        "time" | "System.Time" => is_time(text),
        "id" => {
            (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        "code" => is_code(text),
        "oid" => is_oid(text),
        "uuid" => is_uuid(text),
        "uri" | "url" | "canonical" => !text.is_empty() && !text.chars().any(char::is_whitespace),
        "integer" | "System.Integer" => int_value(text).is_some(),
        "positiveInt" => int_value(text).is_some_and(|v| v > 0),
        "unsignedInt" => int_value(text).is_some_and(|v| v >= 0),
        "decimal" | "System.Decimal" => !text.is_empty(),
        "base64Binary" => is_base64(text),
        "string" | "markdown" | "System.String" => !text.trim().is_empty(),
        "xhtml" => text.trim_start().starts_with("<div"),
        _ => true,
    };
    if ok { Ok(()) } else { Err(expected(type_code)) }
}

fn expected(type_code: &str) -> &'static str {
    match type_code {
        "date" | "System.Date" => "a date YYYY, YYYY-MM or YYYY-MM-DD",
        "dateTime" | "System.DateTime" => {
            "a date YYYY, YYYY-MM, YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)"
        }
        "instant" => "an instant YYYY-MM-DDThh:mm:ss(.sss) with a time zone (Z or +hh:mm)",
        "time" | "System.Time" => "a time hh:mm:ss(.sss)",
        "id" => "1 to 64 of A-Z, a-z, 0-9, `-` and `.`",
        "code" => "a code: no leading or trailing whitespace, single spaces inside",
        "oid" => "an OID urn:oid:1.2.3",
        "uuid" => "a UUID urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in lower case",
        "uri" | "url" | "canonical" => "a URI without whitespace",
        "integer" | "System.Integer" => "a 32-bit integer without fraction or exponent",
        "positiveInt" => "an integer above 0",
        "unsignedInt" => "an integer 0 or above",
        "base64Binary" => "base64 text",
        "xhtml" => "an XHTML <div> element",
        _ => "a non-empty value",
    }
}

/// The value of exactly `n` (at most 9) ASCII digits.
fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n {
        return None;
    }
    s.bytes().try_fold(0u32, |v, b| b.is_ascii_digit().then(|| v * 10 + u32::from(b - b'0')))
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

fn is_date(s: &str) -> bool {
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
        Some(d) => digits(d, 2).is_some_and(|d| d >= 1 && d <= days_in_month(year, month)),
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn is_time(s: &str) -> bool {
    let (main, frac) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if frac.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    // No allocation: this runs for every dateTime and instant of every resource.
    let mut p = main.split(':');
    let (Some(h), Some(m), Some(s), None) = (p.next(), p.next(), p.next(), p.next()) else { return false };
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

/// `YYYY-MM-DDThh:mm:ss(.sss)(Z|±hh:mm)`.
fn is_full_date_time(s: &str) -> bool {
    let Some((date, rest)) = s.split_once('T') else { return false };
    if date.len() != 10 || !is_date(date) {
        return false;
    }
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    is_time(time) && is_zone(zone)
}

fn is_date_time(s: &str) -> bool {
    if s.contains('T') { is_full_date_time(s) } else { is_date(s) }
}

fn is_instant(s: &str) -> bool {
    is_full_date_time(s)
}

fn is_code(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.contains("  ") && !s.contains(['\t', '\n', '\r'])
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

#[cfg(test)]
mod tests {
    use super::check;

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
