//! ISO 4217 minor units as Stripe counts them: an amount of `1000` is 10.00 USD, but 1000 JPY.
//!
//! Invariants: a currency not listed here has 2 decimals (Stripe's rule for every currency
//! that is not zero-decimal or three-decimal); codes are compared without case (Stripe writes
//! them in lower case).

/// Zero-decimal currencies (Stripe's list, "Zero-decimal currencies").
const ZERO: &[&str] =
    &["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"];
/// Three-decimal currencies (Stripe's list, "Three-decimal currencies").
const THREE: &[&str] = &["bhd", "jod", "kwd", "omr", "tnd"];

/// How many decimals an amount of `code` has in minor units.
pub fn exponent(code: &str) -> u32 {
    let lower = code.to_ascii_lowercase();
    if ZERO.contains(&lower.as_str()) {
        0
    } else if THREE.contains(&lower.as_str()) {
        3
    } else {
        2
    }
}

/// `minor` units of `code` as a decimal text in major units: `(-2550, "usd")` -> `-25.50`,
/// `(1000, "jpy")` -> `1000`. Exact (no floating point).
pub fn to_major(minor: i64, code: &str) -> String {
    let exp = exponent(code) as usize;
    let digits = minor.unsigned_abs().to_string();
    let sign = if minor < 0 { "-" } else { "" };
    if exp == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = exp + 1);
    let (int, frac) = padded.split_at(padded.len() - exp);
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_follow_the_currency_exponent() {
        assert_eq!(to_major(-2550, "usd"), "-25.50");
        assert_eq!(to_major(5, "USD"), "0.05");
        assert_eq!(to_major(0, "eur"), "0.00");
        assert_eq!(to_major(1000, "jpy"), "1000");
        assert_eq!(to_major(-1, "jpy"), "-1");
        assert_eq!(to_major(1234, "kwd"), "1.234");
        assert_eq!(to_major(i64::MIN, "usd"), "-92233720368547758.08");
    }
}
