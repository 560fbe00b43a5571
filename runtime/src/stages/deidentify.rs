//! The value transforms of the mask stage ([`super::mask`] decides which applies to a leaf):
//! `partial`, keyed `hash`, `generalize` (ZIP to 3 digits, date to year, age over 89 to 90+,
//! birth date to year or 90+) and `shift_date` (by a keyed, per-person number of days).
//!
//! Invariants:
//! - Each transform either returns the masked value or `None` when the value is not of the
//!   kind it masks (a ZIP that is not 5 or 9 digits, a date that is not a date); the caller
//!   then nulls the value (fail safe): a value is never passed through unmasked because it was
//!   malformed.
//! - The keyed transforms are deterministic for a key and a value (pseudonyms and shifts are
//!   stable across runs, so joins and intervals survive), and nothing can be learned about the
//!   value without the key (HMAC-SHA256).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::time::{civil_from_days, days_from_civil};

/// `123-45-6789`, keep 4 -> `***-**-6789`: the last `keep_last` letters or digits stay, the
/// others become `*`, separators stay.
pub fn partial(text: &str, keep_last: usize) -> String {
    let total = text.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    text.chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if total - seen < keep_last { c } else { '*' }
        })
        .collect()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// `h:` and the hex HMAC-SHA256 of the value under the policy's key.
pub fn hash(key: &[u8], text: &str) -> String {
    format!("h:{}", hex::encode(mac(key, &[text.as_bytes()])))
}

/// The 3-digit ZIP areas of 20,000 people or fewer (2000 census, as HHS lists them for Safe
/// Harbor, 45 CFR 164.514(b)(2)(i)(B)): their ZIP codes become `000`.
const SPARSE_ZIP3: [&str; 17] = [
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884", "890",
    "893",
];

/// `02139-4307` -> `021`; `03601` -> `000` (a sparse area). `None` unless the value is a US ZIP
/// code: 5 digits, or 9 with an optional dash after the fifth.
pub fn zip3(text: &str) -> Option<String> {
    let t = text.trim();
    let digits: String = t.chars().filter(|c| *c != '-').collect();
    let dash_ok = match t.find('-') {
        None => true,
        Some(i) => i == 5 && t.matches('-').count() == 1,
    };
    if !dash_ok || !matches!(digits.len(), 5 | 9) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let area = &digits[..3];
    Some(if SPARSE_ZIP3.contains(&area) { "000".to_string() } else { area.to_string() })
}

/// The year of a date or date-time (`1980-04-02`, `1980-04-02T10:00:00Z`, HL7 `19800402`):
/// `1980`. `None` unless it starts with 4 digits followed by nothing, `-` or a digit.
pub fn year(text: &str) -> Option<String> {
    let t = text.trim().as_bytes();
    if t.len() < 4 || !t[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    match t.get(4) {
        None | Some(b'-') => {}
        Some(b) if b.is_ascii_digit() => {}
        _ => return None,
    }
    Some(String::from_utf8_lossy(&t[..4]).into_owned())
}

/// The days since 1970-01-01 of the earliest day a birth date can mean: `1934-01-15`,
/// `19340115`, `1934-01-15T08:00:00Z`, `1934-01`, `193401`, `1934` (a missing month or day
/// counts as the first). `None` unless it is such a date with a valid month and day.
fn earliest_day(text: &str) -> Option<i64> {
    let t = text.trim();
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r.clone()).filter(|s| s.iter().all(u8::is_ascii_digit))?;
        t[r].parse().ok()
    };
    let y = i64::from(num(0..4)?);
    // `-` between the parts (ISO 8601) or none (HL7 v2); what follows the day is a time.
    let dashed = b.get(4) == Some(&b'-');
    let (m_at, d_at) = if dashed { (5, 8) } else { (4, 6) };
    let (m, d) = match b.len() {
        4 => (1, 1),
        n if n == m_at + 2 => (num(m_at..m_at + 2)?, 1),
        n if n >= d_at + 2 => {
            if dashed && b[7] != b'-' {
                return None;
            }
            if n > d_at + 2
                && !(b[d_at + 2] == b'T' || b[d_at + 2] == b' ' || (!dashed && b[d_at + 2].is_ascii_digit()))
            {
                return None;
            }
            (num(m_at..m_at + 2)?, num(d_at..d_at + 2)?)
        }
        _ => return None,
    };
    let day = days_from_civil(y, m, d);
    // Reject 1934-02-30 and the like: the day must come back as written.
    (civil_from_days(day) == (y, m, d)).then_some(day)
}

/// Whole years from the day `born` to the day `on` (both days since 1970-01-01): a person is
/// a year older on the anniversary of their birth day; someone born on 29 February, on
/// 1 March in a year that has none.
pub fn age_on(born: i64, on: i64) -> i64 {
    let ((by, bm, bd), (ry, rm, rd)) = (civil_from_days(born), civil_from_days(on));
    ry - by - i64::from((rm, rd) < (bm, bd))
}

/// A birth date generalized for Safe Harbor on the day `today` (days since 1970-01-01): its
/// year (`1980`), or `90+` when the person is 90 or older that day. A birth date that gives
/// only a year or a month counts from its earliest possible day, so the category is never
/// missed. `None` unless the value is a date ([`earliest_day`]).
pub fn birth_year(text: &str, today: i64) -> Option<String> {
    let born = earliest_day(text)?;
    Some(if age_on(born, today) >= 90 { "90+".to_string() } else { text.trim()[..4].to_string() })
}

/// An age generalized: as it is up to 89, else 90 (`as_number`) or `90+`. `None` unless the
/// value is a non-negative number.
pub fn age(text: &str, as_number: bool) -> Option<String> {
    let years: f64 = text.trim().parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    Some(match (years > 89.0, as_number) {
        (false, _) => text.trim().to_string(),
        (true, true) => "90".to_string(),
        (true, false) => "90+".to_string(),
    })
}

/// The days a person's dates move: in `1..=max_days`, earlier or later (never 0, so every date
/// moves), from the HMAC of the subject's value under the key.
pub fn shift_days(key: &[u8], subject: &str, max_days: u32) -> i64 {
    let m = mac(key, &[b"sluice shift_date\0", subject.as_bytes()]);
    let n = u64::from_be_bytes(m[..8].try_into().expect("8 bytes"));
    let span = u64::from(max_days.max(1));
    let magnitude = (n % span) as i64 + 1;
    if m[8] & 1 == 0 { -magnitude } else { magnitude }
}

/// A date (`YYYY-MM-DD`) or date-time (`YYYY-MM-DDThh:mm...`, the time and offset kept) moved
/// by `days`. `None` unless it starts with a valid calendar date.
pub fn shift_date(text: &str, days: i64) -> Option<String> {
    let t = text.trim();
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r.clone()).filter(|s| s.iter().all(u8::is_ascii_digit)).map(|_| &t[r]);
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || !(b.len() == 10 || b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let (y, m, d): (i64, u32, u32) =
        (digits(0..4)?.parse().ok()?, digits(5..7)?.parse().ok()?, digits(8..10)?.parse().ok()?);
    let day = days_from_civil(y, m, d);
    // Reject 2023-02-30 and the like: the day must come back as written.
    if civil_from_days(day) != (y, m, d) {
        return None;
    }
    let (y2, m2, d2) = civil_from_days(day + days);
    if !(0..=9999).contains(&y2) {
        return None;
    }
    Some(format!("{y2:04}-{m2:02}-{d2:02}{}", &t[10..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partial_masking() {
        assert_eq!(partial("123-45-6789", 4), "***-**-6789");
        assert_eq!(partial("AB12", 0), "****");
        assert_eq!(partial("12", 4), "12");
        assert_eq!(partial("", 4), "");
        assert_eq!(partial("Müller-Ö", 2), "*****r-Ö");
    }

    #[test]
    fn hashing_is_keyed_and_stable() {
        let a = hash(b"k1", "123");
        assert_eq!(a, hash(b"k1", "123"));
        assert_ne!(a, hash(b"k2", "123"));
        assert!(a.starts_with("h:") && a.len() == 66);
    }

    #[test]
    fn zip_codes_keep_three_digits_and_sparse_areas_become_000() {
        assert_eq!(zip3("02139").as_deref(), Some("021"));
        assert_eq!(zip3("02139-4307").as_deref(), Some("021"));
        assert_eq!(zip3(" 021394307 ").as_deref(), Some("021"));
        assert_eq!(zip3("03601").as_deref(), Some("000"));
        assert_eq!(zip3("89301-1234").as_deref(), Some("000"));
        for bad in ["", "0213", "021390", "ABCDE", "02-139", "02139-43", "K1A 0B1", "02139--4307"] {
            assert_eq!(zip3(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_keep_their_year() {
        assert_eq!(year("1980-04-02").as_deref(), Some("1980"));
        assert_eq!(year("1980-04-02T10:00:00Z").as_deref(), Some("1980"));
        assert_eq!(year("19800402").as_deref(), Some("1980"));
        assert_eq!(year("1980").as_deref(), Some("1980"));
        for bad in ["", "80-04-02", "April 1980", "1980/04/02", "198"] {
            assert_eq!(year(bad), None, "{bad:?}");
        }
    }

    fn day(text: &str) -> i64 {
        earliest_day(text).unwrap()
    }

    #[test]
    fn birth_dates_of_people_90_or_older_become_one_category() {
        let today = day("2024-01-15");
        // 90 on the exact day: the category; one day short of 90: the year.
        assert_eq!(birth_year("1934-01-15", today).as_deref(), Some("90+"));
        assert_eq!(birth_year("1934-01-16", today).as_deref(), Some("1934"));
        assert_eq!(birth_year("19340115", today).as_deref(), Some("90+"));
        assert_eq!(birth_year("19340116", today).as_deref(), Some("1934"));
        assert_eq!(birth_year("1934-01-15T23:59:00-05:00", today).as_deref(), Some("90+"));
        assert_eq!(birth_year("193401160830", today).as_deref(), Some("1934"));
        assert_eq!(birth_year("1926-06-06", today).as_deref(), Some("90+"));
        assert_eq!(birth_year("1980-04-02", today).as_deref(), Some("1980"));
        // Partial dates count from their earliest day: `1934` may be 1934-01-01, so `90+`.
        assert_eq!(birth_year("1934", today).as_deref(), Some("90+"));
        assert_eq!(birth_year("1934-02", today).as_deref(), Some("1934"));
        assert_eq!(birth_year("193401", today).as_deref(), Some("90+"));
        assert_eq!(birth_year("1935", today).as_deref(), Some("1935"));
        // Born after the reference day (bad data or a clock in the past): a year, no age.
        assert_eq!(birth_year("2030-01-01", today).as_deref(), Some("2030"));
        for bad in
            ["", "1934-13-01", "1934-02-30", "19340230", "1934/01/15", "34-01-15", "1934-1-15", "1934-01-15Z", "19340"]
        {
            assert_eq!(birth_year(bad, today), None, "{bad:?}");
        }
    }

    #[test]
    fn a_leap_day_birthday_comes_on_the_first_of_march_in_other_years() {
        let born = day("1932-02-29");
        assert_eq!(age_on(born, day("2022-02-28")), 89);
        assert_eq!(age_on(born, day("2022-03-01")), 90);
        assert_eq!(age_on(born, day("2024-02-28")), 91);
        assert_eq!(age_on(born, day("2024-02-29")), 92);
        assert_eq!(birth_year("1932-02-29", day("2022-02-28")).as_deref(), Some("1932"));
        assert_eq!(birth_year("1932-02-29", day("2022-03-01")).as_deref(), Some("90+"));
    }

    #[test]
    fn ages_over_89_are_one_category() {
        assert_eq!(age("89", false).as_deref(), Some("89"));
        assert_eq!(age("90", false).as_deref(), Some("90+"));
        assert_eq!(age("104", true).as_deref(), Some("90"));
        assert_eq!(age("89.5", true).as_deref(), Some("90"));
        assert_eq!(age("0", true).as_deref(), Some("0"));
        for bad in ["", "-3", "old", "NaN", "inf"] {
            assert_eq!(age(bad, true), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_shift_by_whole_days_keeping_the_time() {
        assert_eq!(shift_date("2024-02-28", 1).as_deref(), Some("2024-02-29"));
        assert_eq!(shift_date("2024-03-01", -1).as_deref(), Some("2024-02-29"));
        assert_eq!(shift_date("2023-12-31T23:59:00-05:00", 1).as_deref(), Some("2024-01-01T23:59:00-05:00"));
        for bad in ["", "2023-02-30", "20230215", "2023-2-15", "2023-02-15Z", "not a date"] {
            assert_eq!(shift_date(bad, 3), None, "{bad:?}");
        }
    }

    proptest! {
        /// One person's shift is stable, never zero and within bounds; different keys give
        /// unrelated shifts (checked loosely: not all equal over many subjects).
        #[test]
        fn shifts_are_stable_bounded_and_nonzero(subject in ".{0,40}", max in 1u32..3650) {
            let d = shift_days(b"key", &subject, max);
            prop_assert_eq!(d, shift_days(b"key", &subject, max));
            prop_assert!(d != 0 && d.unsigned_abs() <= u64::from(max));
        }

        /// Whoever is 90 or older on the day gets `90+`, everyone else the year of birth.
        #[test]
        fn birth_year_agrees_with_age(born in -40_000i64..20_000, today in -20_000i64..30_000) {
            let (y, m, d) = civil_from_days(born);
            let text = format!("{y:04}-{m:02}-{d:02}");
            let expected = if age_on(born, today) >= 90 { "90+".to_string() } else { format!("{y:04}") };
            prop_assert_eq!(birth_year(&text, today), Some(expected));
            prop_assert_eq!(age_on(born, born), 0);
        }

        /// Shifting keeps the interval between two dates of one person.
        #[test]
        fn shifting_keeps_intervals(a in 0i64..40_000, b in 0i64..40_000, days in -3650i64..3650) {
            let date = |n: i64| { let (y, m, d) = civil_from_days(n); format!("{y:04}-{m:02}-{d:02}") };
            let (sa, sb) = (shift_date(&date(a), days).unwrap(), shift_date(&date(b), days).unwrap());
            let back = |s: &str| days_from_civil(s[..4].parse().unwrap(), s[5..7].parse().unwrap(), s[8..10].parse().unwrap());
            prop_assert_eq!(back(&sb) - back(&sa), b - a);
        }

        /// No input makes a transform panic.
        #[test]
        fn transforms_never_panic(text in "\\PC{0,30}", days in -5000i64..5000) {
            let _ = (zip3(&text), year(&text), age(&text, true), shift_date(&text, days), partial(&text, 4));
            let _ = birth_year(&text, days);
        }
    }

    #[test]
    fn shifts_depend_on_the_key_and_the_subject() {
        let shifts: std::collections::BTreeSet<i64> =
            (0..50).map(|i| shift_days(b"key", &format!("MRN{i}"), 365)).collect();
        assert!(shifts.len() > 30, "subjects get different shifts: {shifts:?}");
        let other: Vec<i64> = (0..50).map(|i| shift_days(b"other", &format!("MRN{i}"), 365)).collect();
        let same: Vec<i64> = (0..50).map(|i| shift_days(b"key", &format!("MRN{i}"), 365)).collect();
        assert_ne!(other, same, "another key gives other shifts");
    }
}
