//! The CPU stages a record passes through: validate, map, mask, filter and route.
//!
//! Invariants:
//! - A stage never fails the run and never panics on data: it passes the record on
//!   ([`Step::Next`]), rejects it to the DLQ ([`Step::Dlq`]) or drops it as filtered
//!   ([`Step::Filtered`]). Every record gets exactly one of these per stage.
//! - Stages are pure functions of the record and the plan (plus the hash key), so running them
//!   on rayon in any order gives the same output.
//! - Rejections and findings name rules, paths and codes, never values.

pub mod categorize;
pub mod deidentify;
pub mod map;
pub mod mask;
pub mod reconcile;
pub mod route;
pub mod statements;
pub mod validate;

use crate::dlq::Rejection;
use crate::record::Record;

pub enum Step<'p> {
    /// Go on; for a route, the branch taken.
    Next(Record, Option<&'p str>),
    Dlq(Record, Rejection),
    Filtered(Record),
}

/// Whether a message type (`ADT^A01`) is accepted by `accepted` (`ADT^A01`, `ADT^*`, `ADT`);
/// an empty list accepts any.
pub fn message_type_accepted(accepted: &[String], actual: Option<&str>) -> bool {
    if accepted.is_empty() {
        return true;
    }
    let Some(actual) = actual else { return false };
    let (code, event) = actual.split_once('^').unwrap_or((actual, ""));
    let event = event.split('^').next().unwrap_or("");
    accepted.iter().any(|a| {
        let (ac, ae) = a.split_once('^').unwrap_or((a, "*"));
        let ae = ae.split('^').next().unwrap_or("");
        ac == code && (ae == "*" || ae == event)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types() {
        let acc = vec!["ADT^A01".to_string(), "ORU^*".to_string()];
        assert!(message_type_accepted(&acc, Some("ADT^A01")));
        assert!(!message_type_accepted(&acc, Some("ADT^A08")));
        assert!(message_type_accepted(&acc, Some("ORU^R01")));
        assert!(!message_type_accepted(&acc, None));
        assert!(message_type_accepted(&[], None));
        assert!(message_type_accepted(&["ADT".to_string()], Some("ADT^A04")));
    }
}
