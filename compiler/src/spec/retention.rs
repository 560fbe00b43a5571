//! `retention:` of a pipeline: how long the DLQ, the audit log and the state store keep what
//! they hold (`dlq: 30d`, `audit: 6y`), read as whole days for `sluice purge`.
//!
//! Invariant: a retention is never shorter than written: a year counts 366 days, a week 7.

use super::reader::{self, Cx};
use super::shape;
use crate::codes;
use crate::diagnostics::Diagnostic;
use crate::plan::RetentionPlan;
use crate::yaml::Node;

/// Days in `30d`, `12w`, `6y`; `None` when it is not such a duration (or is zero).
pub fn days(text: &str) -> Option<u32> {
    let t = text.trim();
    // At a character boundary: the text may end in any character.
    let (number, unit) = t.split_at(t.char_indices().last()?.0);
    let n: u32 = number.trim().parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(match unit {
        "d" => 1,
        "w" => 7,
        "y" => 366,
        _ => return None,
    })
}

pub fn read(cx: &mut Cx, node: &Node) -> Option<RetentionPlan> {
    let obj = reader::object(cx, node, &shape::RETENTION, "`retention`")?;
    let mut get = |key: &str| {
        let s = obj.get(key).and_then(|n| reader::string(cx, n, &format!("`{key}`")))?;
        let d = days(&s.text);
        if d.is_none() {
            cx.push(
                Diagnostic::error(codes::INVALID_VALUE, format!("`retention.{key}` is not a retention period"))
                    .label(s.span, "expected days, weeks or years: `30d`, `12w`, `6y`")
                    .help("a whole number above 0 followed by `d`, `w` or `y` (a year counts 366 days)"),
            );
        }
        d
    };
    Some(RetentionPlan { dlq_days: get("dlq"), audit_days: get("audit"), state_days: get("state") })
}

#[cfg(test)]
mod tests {
    #[test]
    fn periods() {
        assert_eq!(super::days("30d"), Some(30));
        assert_eq!(super::days("12w"), Some(84));
        assert_eq!(super::days("6y"), Some(2196));
        for bad in ["", "d", "0d", "3m", "-1d", "1.5y", "99999999999y", "3é"] {
            assert_eq!(super::days(bad), None, "{bad}");
        }
    }
}
