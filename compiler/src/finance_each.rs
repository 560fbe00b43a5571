//! `each:` over the arrays of a Stripe, QuickBooks or Plaid object in a list field of a mapping
//! (`- each: Line[*]`, `as: line`, items from `line.Amount`), and the paths on its variable.
//!
//! An array is checked against the provider's path table (`sluice_finance`): it must be an
//! array of the object, or of the item of an outer `each` (`each: line.LinkedTxn[*]`), and is
//! written with `[*]` or without an index (SL490 otherwise, with the object's arrays in the
//! help; an unknown step is the provider's unknown-path code, SL417/SL440/SL445, at the exact
//! characters). A path on the variable (`line.JournalEntryLineDetail.PostingType`) is checked
//! as the array's path followed by it (`Line[*].JournalEntryLineDetail.PostingType`).
//!
//! Invariants:
//! - A path under an item resolves to the type and PII/PCI class of the same path written
//!   flat (`Line[*].Amount`), so the PHI-flow proof sees the same classes either way.
//! - A diagnostic about a path under an item points at the characters as written (`line.Amout`
//!   at `Amout`) and quotes only what the spec wrote.
//! - The object itself stays readable inside the item (`TxnDate`, `Id`): paths without the
//!   variable read the record, as they do outside the list.

use std::collections::BTreeSet;

use sluice_finance::paths::{ArrayError, Checked, PathError};

use crate::codes::{self, Code};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::expr::ast::Expr;
use crate::expr::check::{Env, Scope, Typed, Var};
use crate::plan::ArrayEach;
use crate::source::Span;

/// The path table of a finance scope: one provider's object.
#[derive(Clone, Copy)]
pub struct Table {
    /// `Stripe`, `QuickBooks`, `Plaid`.
    pub provider: &'static str,
    pub object: &'static str,
    check: fn(&str, &str) -> Result<Checked, PathError>,
    array: fn(&str, &str) -> Result<String, ArrayError>,
    unknown: &'static Code,
}

impl Table {
    /// The table of `scope`, when it reads a finance object.
    pub fn of(scope: &Scope<'_>) -> Option<Table> {
        Some(match scope {
            Scope::Stripe(s) => Table {
                provider: "Stripe",
                object: s.object,
                check: sluice_finance::stripe::check,
                array: sluice_finance::stripe::array,
                unknown: codes::STRIPE_UNKNOWN_PATH,
            },
            Scope::QuickBooks(q) => Table {
                provider: "QuickBooks",
                object: q.entity,
                check: sluice_finance::quickbooks::check,
                array: sluice_finance::quickbooks::array,
                unknown: codes::QUICKBOOKS_UNKNOWN_PATH,
            },
            Scope::Plaid(p) => Table {
                provider: "Plaid",
                object: p.object,
                check: sluice_finance::plaid::check,
                array: sluice_finance::plaid::array,
                unknown: codes::PLAID_UNKNOWN_PATH,
            },
            _ => return None,
        })
    }

    fn what(&self) -> String {
        format!("a {} `{}`", self.provider, self.object)
    }
}

/// The variable `text` starts with (`line` of `line.Amount`, `line[0]` is not one), when it is
/// an item variable of `vars`, with the rest of the path after its `.` (empty for the
/// variable alone).
pub fn item_var<'v, 't>(vars: &'v [Var], text: &'t str) -> Option<(&'v Var, &'t str)> {
    let end = text.find(['.', '[']).unwrap_or(text.len());
    let (first, rest) = text.split_at(end);
    if rest.starts_with('[') {
        return None;
    }
    let var = vars.iter().rev().find(|v| v.name == first)?;
    var.item.as_ref()?;
    Some((var, rest.strip_prefix('.').unwrap_or(rest)))
}

/// `text` (written at `span`) as a path on the item variable `var` (`rest` after its `.`):
/// typed and classed as the array's path followed by `rest`, or the provider's unknown-path
/// diagnostic at the characters of `text` that are wrong.
pub fn resolve_item(table: Table, var: &Var, rest: &str, text: &str, span: Span) -> Result<Typed, Diagnostic> {
    let array = var.item.as_deref().unwrap_or_default();
    let full = if rest.is_empty() { array.to_string() } else { format!("{array}.{rest}") };
    let words = crate::api_source::PathWords {
        code: table.unknown,
        what: &format!("an item of `{array}` of {}", table.what()),
        label: "not in the item's schema here",
        syntax: "paths on an item variable are its fields as the API's JSON writes them, e.g. `line.Amount`",
    };
    let checked = match (table.check)(table.object, &full) {
        Ok(c) => c,
        Err(e) => {
            // Offsets in `full` past the array's path are offsets in `text` past the variable.
            let (head, written) = (array.len() + 1, var.name.len() + 1);
            let e = if e.offset >= head && !rest.is_empty() {
                PathError { offset: e.offset - head + written, len: e.len, candidates: under(array, e.candidates) }
            } else {
                PathError { offset: 0, len: text.len(), candidates: under(array, e.candidates) }
            };
            return Err(crate::api_source::path_error(text, span, e, &words));
        }
    };
    // Several values when `rest` goes through an array without picking one item.
    let extra = checked.normalized.matches("[*]").count().saturating_sub(array.matches("[*]").count());
    let picked =
        rest.match_indices('[').filter(|(i, _)| rest[i + 1..].starts_with(|c: char| c.is_ascii_digit())).count();
    let multi = extra > picked;
    let value_type = checked.kind.value_type();
    Ok(Typed {
        expr: Expr::Item {
            var: var.name.clone(),
            path: rest.replace("[*]", ""),
            value_type: value_type.clone(),
            multi,
        },
        ty: value_type,
        multi,
        classes: checked.class.into_iter().collect(),
    })
}

/// Candidates of a path error under `array` as the user writes them: relative to the item.
fn under(array: &str, candidates: Vec<String>) -> Vec<String> {
    let prefix = format!("{array}.");
    candidates.into_iter().map(|c| c.strip_prefix(&prefix).map_or(c.clone(), str::to_string)).collect()
}

/// Checks `each: <array>` written as `text` at `span` over a finance scope: the array (of the
/// record, or of an outer item variable) and the table form of one of its items' paths
/// (`Line[*]`), which the variable bound by `as:` carries.
pub fn each(diags: &mut Diagnostics, table: Table, text: &str, span: Span, env: &Env) -> Option<(ArrayEach, String)> {
    let (within, full, rest, skipped) = match item_var(&env.vars, text) {
        Some((var, rest)) if !rest.is_empty() => {
            let array = var.item.clone().unwrap_or_default();
            (Some(var.name.clone()), format!("{array}.{rest}"), rest, (array.len() + 1, var.name.len() + 1))
        }
        _ => (None, text.to_string(), text, (0, 0)),
    };
    let exact = span.end - span.start == text.len();
    let at = |offset: usize, len: usize| {
        if exact {
            let start = offset.min(text.len());
            Span::new(span.file, span.start + start, span.start + (start + len).min(text.len()))
        } else {
            span
        }
    };
    let picks_one = text.ends_with(']') && !text.ends_with("[*]");
    match (table.array)(table.object, &full) {
        Ok(array) if !picks_one => {
            let path = rest.replace("[*]", "");
            Some((ArrayEach { within, path }, array))
        }
        Ok(array) => {
            let open = text.rfind('[').unwrap_or(0);
            let every = format!("{}[*]", &text[..open]);
            diags.push(
                Diagnostic::error(codes::FINANCE_EACH_NOT_ARRAY, format!("`each: {text}` picks one item of an array"))
                    .label(at(open, text.len() - open), "one item, not every item")
                    .help(format!("iterate every item of `{array}` with `each: {every}`")),
            );
            None
        }
        Err(ArrayError::NotArray { arrays }) => {
            let arrays: Vec<String> = match &within {
                Some(v) => {
                    let outer = full[..full.len() - rest.len() - 1].to_string();
                    arrays
                        .iter()
                        .filter_map(|a| a.strip_prefix(&format!("{outer}.")).map(|r| format!("{v}.{r}")))
                        .collect()
                }
                None => arrays,
            };
            let help = if arrays.is_empty() {
                format!("{} has no array here to iterate; map its fields directly", table.what())
            } else {
                format!(
                    "the arrays here are {}",
                    arrays.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                )
            };
            diags.push(
                Diagnostic::error(
                    codes::FINANCE_EACH_NOT_ARRAY,
                    format!("`each: {text}` does not name an array of {}", table.what()),
                )
                .label(at(0, text.len()), "one value, not an array")
                .help(help),
            );
            None
        }
        Err(ArrayError::Unknown(e)) => {
            let e = if e.offset >= skipped.0 {
                PathError { offset: e.offset - skipped.0 + skipped.1, len: e.len, candidates: e.candidates }
            } else {
                PathError { offset: 0, len: text.len(), candidates: e.candidates }
            };
            let what = table.what();
            let words = crate::api_source::PathWords {
                code: table.unknown,
                what: &what,
                label: "not in the object's schema here",
                syntax: "`each` names an array of the object, e.g. `each: Line[*]`",
            };
            diags.push(crate::api_source::path_error(text, span, e, &words));
            None
        }
    }
}

/// The variable `name` bound to one item of `array` (table form).
pub fn var(name: String, array: String) -> Var {
    Var { name, datatype: String::new(), classes: BTreeSet::new(), group: None, item: Some(array) }
}
