//! Element checks of one placed segment against its place in the guide: requirement, not-used
//! elements, element and component counts, repetitions, types (numbers, dates, times,
//! characters), lengths and code lists; plus the date format a qualifier announces (DTP02 for
//! DTP03, DMG01 for DMG02).
//!
//! Invariants: total on any input; at most one finding per element (or component); findings
//! name positions (`CLM05-3`) and the loop, never the value.

use crate::codec::Segment;
use crate::envelope::{Finding, GuideDetail, default_severity, valid_date};
use crate::guide::{ElementType, ElementUse, SegmentUse, Usage};

struct Ctx<'s> {
    seg: &'s Segment<'s>,
    number: usize,
    loop_id: &'s str,
}

impl Ctx<'_> {
    fn push(
        &self,
        out: &mut Vec<Finding>,
        code: &'static str,
        ik403: &'static str,
        element: usize,
        component: usize,
        what: &str,
    ) {
        let id = self.seg.id_str();
        let position =
            if component == 0 { format!("{id}{element:02}") } else { format!("{id}{element:02}-{component}") };
        let where_ = if self.loop_id.is_empty() { String::new() } else { format!(" (loop {})", self.loop_id) };
        out.push(Finding {
            severity: default_severity(code),
            code,
            offset: self.seg.offset,
            message: format!("{position} {what}{where_}"),
            position,
            segment_number: self.number,
            guide: Some(GuideDetail {
                segment_id: id.to_string(),
                loop_id: self.loop_id.to_string(),
                segment_code: "8",
                element: Some((element, component)),
                element_code: Some(ik403),
            }),
        });
    }
}

/// The message of a value past a definition's last element or component (`of`): reported at
/// `first`, the first position the definition lacks, saying where the value is when later.
fn beyond(of: &str, first: usize, at: usize) -> String {
    if at == first {
        format!("is beyond the {of}")
    } else {
        format!("is beyond the {of} (the first value is at position {at})")
    }
}

/// Checks `seg` (segment number `number` of its set, in loop `loop_id`) against `use_`.
pub fn check_segment(seg: &Segment, use_: &SegmentUse, number: usize, loop_id: &str, out: &mut Vec<Finding>) {
    let ctx = Ctx { seg, number, loop_id };
    // This segment's findings start here (the date check below looks at them only).
    let first_finding = out.len();
    let mut count = 0;
    for (i, value) in seg.elements().enumerate() {
        count = i + 1;
        match use_.elements.get(i) {
            Some(eu) => check_element(&ctx, value, eu, out),
            None if !value.is_empty() => {
                // Reported at the first position the definition lacks: IK401 holds two digits,
                // and a value may come after any number of empty elements.
                let first = use_.elements.len() + 1;
                let what = beyond("elements the segment has", first, i + 1);
                ctx.push(out, "X12059", "3", first, 0, &what);
                return;
            }
            None => {}
        }
    }
    for eu in use_.elements.iter().skip(count) {
        if eu.usage == Usage::Required {
            ctx.push(out, "X12057", "1", eu.position, 0, "is required and missing");
        }
    }
    // Dates whose format a qualifier gives: DTP03 per DTP02, DMG02 per DMG01.
    let dated = match seg.id() {
        b"DTP" => Some((2, 3)),
        b"DMG" => Some((1, 2)),
        _ => None,
    };
    if let Some((format, value)) = dated {
        // Not when the element already has a finding of its own (a length or a code).
        let reported =
            out[first_finding..].iter().any(|f| f.guide.as_ref().is_some_and(|g| g.element == Some((value, 0))));
        if !reported {
            check_dated(&ctx, format, value, out);
        }
    }
}

fn check_element(ctx: &Ctx, value: &[u8], eu: &ElementUse, out: &mut Vec<Finding>) {
    let d = ctx.seg.delimiters;
    if value.is_empty() {
        if eu.usage == Usage::Required {
            ctx.push(out, "X12057", "1", eu.position, 0, "is required and missing");
        }
        return;
    }
    if eu.usage == Usage::NotUsed {
        ctx.push(out, "X12058", "I10", eu.position, 0, "is not used by this implementation guide");
        return;
    }
    // Most values hold neither a repetition nor a component separator: one scan tells.
    let plain = !value.iter().any(|&b| b == d.component || Some(b) == d.repetition);
    if plain && eu.ty != ElementType::Composite {
        if let Some((code, ik, what)) = check_value(value, eu) {
            ctx.push(out, code, ik, eu.position, 0, &what);
        }
        return;
    }
    let value = match d.repetition.and_then(|r| value.iter().position(|&b| b == r)) {
        Some(_) if eu.repeats > 1 && eu.ty != ElementType::Composite => {
            return check_repeats(ctx, value, eu, out);
        }
        Some(i) => {
            ctx.push(out, "X12065", "12", eu.position, 0, "repeats; the guide allows one value");
            &value[..i]
        }
        None => value,
    };
    if eu.ty != ElementType::Composite {
        if value.contains(&d.component) {
            ctx.push(out, "X12059", "13", eu.position, 0, "has components; it is a simple element");
            return;
        }
        if let Some((code, ik, what)) = check_value(value, eu) {
            ctx.push(out, code, ik, eu.position, 0, &what);
        }
        return;
    }
    let mut n = 0;
    for (i, comp) in value.split(|&b| b == d.component).enumerate() {
        n = i + 1;
        let Some(cu) = eu.components.get(i) else {
            if !comp.is_empty() {
                let first = eu.components.len() + 1;
                let what = beyond("components the composite has", first, i + 1);
                ctx.push(out, "X12059", "13", eu.position, first, &what);
                return;
            }
            continue;
        };
        if comp.is_empty() {
            if cu.usage == Usage::Required {
                ctx.push(out, "X12057", "1", eu.position, i + 1, "is required and missing");
            }
        } else if cu.usage == Usage::NotUsed {
            ctx.push(out, "X12058", "I10", eu.position, i + 1, "is not used by this implementation guide");
        } else if let Some((code, ik, what)) = check_value(comp, cu) {
            ctx.push(out, code, ik, eu.position, i + 1, &what);
        }
    }
    for cu in eu.components.iter().skip(n) {
        if cu.usage == Usage::Required {
            ctx.push(out, "X12057", "1", eu.position, cu.position, "is required and missing");
        }
    }
}

/// A repeating simple element (`EB03`, `EQ01`): at most `eu.repeats` values, each checked; the
/// first problem is reported.
fn check_repeats(ctx: &Ctx, value: &[u8], eu: &ElementUse, out: &mut Vec<Finding>) {
    let d = ctx.seg.delimiters;
    let Some(r) = d.repetition else { return };
    let mut n = 0;
    for one in value.split(|&b| b == r) {
        n += 1;
        if n > eu.repeats {
            let what = format!("repeats more than the {} times the guide allows", eu.repeats);
            ctx.push(out, "X12065", "12", eu.position, 0, &what);
            return;
        }
        if one.is_empty() {
            continue;
        }
        if one.contains(&d.component) {
            ctx.push(out, "X12059", "13", eu.position, 0, "has components; it is a simple element");
            return;
        }
        if let Some((code, ik, what)) = check_value(one, eu) {
            ctx.push(out, code, ik, eu.position, 0, &what);
            return;
        }
    }
}

/// The first problem of a non-empty simple value: `(code, IK403 code, what)`.
fn check_value(v: &[u8], eu: &ElementUse) -> Option<(&'static str, &'static str, String)> {
    if let Some(codes) = &eu.codes {
        // Codes are a few bytes: compared in place rather than through a `memcmp` call each.
        if codes.iter().any(|c| c.len() == v.len() && c.bytes().zip(v).all(|(a, &b)| a == b)) {
            return None;
        }
        return Some(("X12062", "7", "is not one of the guide's codes".into()));
    }
    let len = match eu.ty {
        ElementType::Numeric(_) => {
            let digits = v.strip_prefix(b"-").unwrap_or(v);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Some(("X12061", "6", "is not a whole number".into()));
            }
            digits.len()
        }
        ElementType::Decimal => {
            let body = v.strip_prefix(b"-").unwrap_or(v);
            let digits = body.iter().filter(|b| b.is_ascii_digit()).count();
            let dots = body.iter().filter(|&&b| b == b'.').count();
            if digits == 0 || dots > 1 || digits + dots != body.len() {
                return Some(("X12061", "6", "is not a decimal number".into()));
            }
            digits
        }
        ElementType::Date => {
            let ok = (v.len() == 8 && valid_date(v, true)) || (eu.min <= 6 && v.len() == 6 && valid_date(v, false));
            return (!ok).then(|| ("X12063", "8", "is not a date (CCYYMMDD)".into()));
        }
        ElementType::Time => {
            return (!valid_time(v))
                .then(|| ("X12064", "9", "is not a time (HHMM, HHMMSS, HHMMSSD or HHMMSSDD)".into()));
        }
        ElementType::Text | ElementType::Id | ElementType::Composite => {
            if v.iter().any(|&b| b < 0x20 || b == 0x7F) {
                return Some(("X12061", "6", "holds a control character".into()));
            }
            if v.is_ascii() {
                // Most values: one byte per character, no UTF-8 decoding needed.
                v.len()
            } else {
                match std::str::from_utf8(v) {
                    Ok(s) => s.chars().count(),
                    Err(_) => return Some(("X12061", "6", "is not UTF-8 text".into())),
                }
            }
        }
    };
    if len < eu.min {
        return Some(("X12060", "4", format!("is shorter than {} characters", eu.min)));
    }
    if len > eu.max {
        return Some(("X12060", "5", format!("is longer than {} characters", eu.max)));
    }
    None
}

/// `HHMM`, `HHMMSS`, `HHMMSSD` or `HHMMSSDD`.
pub fn valid_time(v: &[u8]) -> bool {
    matches!(v.len(), 4 | 6 | 7 | 8)
        && v.iter().all(u8::is_ascii_digit)
        && crate::envelope::valid_time(&v[..4])
        && v.get(4..6).is_none_or(|s| s <= &b"59"[..])
}

/// Element `value` in the format element `format` names (DTP02 for DTP03, DMG01 for DMG02):
/// `D8` a date, `RD8` two dates joined by `-`.
fn check_dated(ctx: &Ctx, format: usize, value: usize, out: &mut Vec<Finding>) {
    let (Some(f), Some(v)) = (ctx.seg.element(format), ctx.seg.element(value)) else { return };
    if v.is_empty() {
        return;
    }
    let ok = match f {
        b"D8" => valid_date(v, true),
        b"RD8" => v.len() == 17 && v[8] == b'-' && valid_date(&v[..8], true) && valid_date(&v[9..], true),
        _ => return,
    };
    if !ok {
        let (id, n) = (ctx.seg.id_str(), format);
        let what = if f == b"D8" {
            format!("is not a date (CCYYMMDD, as {id}{n:02} says)")
        } else {
            format!("is not a date range (CCYYMMDD-CCYYMMDD, as {id}{n:02} says)")
        };
        ctx.push(out, "X12063", "8", value, 0, &what);
    }
}
