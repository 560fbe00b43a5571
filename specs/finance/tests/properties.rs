//! Properties of the Stripe path checker and the minor-unit conversion, on any input.

use proptest::prelude::*;
use sluice_finance::{currency, stripe};

proptest! {
    /// Any text: a path of the table, or an error whose range lies inside the text.
    #[test]
    fn any_path_text_checks_without_panicking(text in "[a-z_.\\[\\]*0-9]{0,40}", object in prop::sample::select(vec!["charge", "balance_transaction", "event", "nothing"])) {
        match stripe::check(object, &text) {
            Ok(c) => prop_assert!(stripe::fields(object).any(|f| f.path == c.normalized)),
            Err(e) => prop_assert!(e.offset + e.len <= text.len()),
        }
    }

    /// Every path of the table checks, with an index in place of each `[*]` too.
    #[test]
    fn table_paths_check_with_any_index(pick in 0usize..10_000, n in 0usize..50) {
        let all: Vec<_> = stripe::OBJECTS.iter().flat_map(|(o, _)| stripe::fields(o)).collect();
        let f = all[pick % all.len()];
        let indexed = f.path.replace("[*]", &format!("[{n}]"));
        let c = stripe::check(&f.object, &indexed).unwrap();
        prop_assert_eq!((c.kind, c.class, c.multi), (f.kind, f.class, false));
    }

    /// Major units read back as the same number of minor units.
    #[test]
    fn major_units_round_trip(minor in any::<i64>(), code in prop::sample::select(vec!["usd", "jpy", "kwd", "EUR", "xof"])) {
        let major = currency::to_major(minor, code);
        let digits: String = major.chars().filter(|c| c.is_ascii_digit()).collect();
        let exp = currency::exponent(code) as usize;
        prop_assert_eq!(major.split('.').nth(1).map_or(0, str::len), exp);
        prop_assert_eq!(digits.trim_start_matches('0').to_string(), minor.unsigned_abs().to_string().trim_start_matches('0').to_string());
        prop_assert_eq!(major.starts_with('-'), minor < 0);
    }
}
