//! A financial API's object schema as a table of paths (`object <TAB> path <TAB> type <TAB>
//! class`), shared by the Stripe ([`crate::stripe`]) and QuickBooks ([`crate::quickbooks`])
//! tables: parsing the embedded TSV, and checking a path written in a mapping against it.
//!
//! Invariants:
//! - A path is written with `.` between properties and `[*]` (or `[n]`) at an array step;
//!   [`Table::check`] accepts a path when, with every `[n]` read as `[*]`, it is in the table.
//! - An array (what `each:` iterates, `Line[*]`) is a path that some row continues with `[*]`;
//!   [`Table::array`] gives it in the table's form, so that paths under one of its items are
//!   checked as the array's path followed by theirs (`Line[*].Amount`).
//! - Values are typed as the vendor sends them: nothing is converted here.
//! - A malformed table fails the crate's tests, so the `expect`s on embedded data cannot fire
//!   for users.

use sluice_spec_core::{PhiClass, ValueType};

/// What a path holds, as the vendor's API types it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Integer,
    Number,
    /// An integer in the minor units of the object's `currency` (Stripe).
    Amount,
    /// A decimal amount in major units of the transaction's currency (QuickBooks `TotalAmt`).
    Decimal,
    /// Integer seconds since 1970-01-01T00:00:00Z.
    Timestamp,
    /// A calendar day, `YYYY-MM-DD` (QuickBooks `TxnDate`).
    Date,
    /// An RFC 3339 date and time with its offset (QuickBooks `MetaData.LastUpdatedTime`).
    DateTime,
    /// An ISO 4217 code.
    Currency,
    /// An object id, or a reference to another object by id.
    Id,
    /// A map (`metadata`) or a free-form object (`event.data.object`): a leaf.
    Object,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "string" => Kind::String,
            "boolean" => Kind::Boolean,
            "integer" => Kind::Integer,
            "number" => Kind::Number,
            "amount" => Kind::Amount,
            "decimal" => Kind::Decimal,
            "timestamp" => Kind::Timestamp,
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "currency" => Kind::Currency,
            "id" => Kind::Id,
            "object" => Kind::Object,
            _ => return None,
        })
    }

    /// The name the docs and diagnostics use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::Amount => "amount (integer, minor units)",
            Kind::Decimal => "amount (decimal, major units)",
            Kind::Timestamp => "timestamp (integer, Unix seconds)",
            Kind::Date => "date (YYYY-MM-DD)",
            Kind::DateTime => "date and time (RFC 3339)",
            Kind::Currency => "currency (ISO 4217)",
            Kind::Id => "id",
            Kind::Object => "object",
        }
    }

    /// The value type expressions see.
    pub fn value_type(self) -> ValueType {
        match self {
            Kind::String => ValueType::String,
            Kind::Boolean => ValueType::Boolean,
            Kind::Integer | Kind::Amount | Kind::Timestamp => ValueType::Integer,
            Kind::Number | Kind::Decimal => ValueType::Decimal,
            Kind::Date => ValueType::Date,
            Kind::DateTime => ValueType::DateTime,
            Kind::Currency => ValueType::Code,
            Kind::Id => ValueType::Identifier,
            Kind::Object => ValueType::Any,
        }
    }
}

/// One path of one object.
#[derive(Clone, Debug)]
pub struct Field {
    pub object: String,
    /// With `[*]` at array steps.
    pub path: String,
    pub kind: Kind,
    pub class: Option<PhiClass>,
}

/// A path that is not in the table.
#[derive(Debug, PartialEq, Eq)]
pub struct PathError {
    /// Byte offset and length in the path text of the first step that is not known.
    pub offset: usize,
    pub len: usize,
    /// The step names valid there (or whole paths, when nothing matched at all).
    pub candidates: Vec<String>,
}

/// What a checked path addresses.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub kind: Kind,
    pub class: Option<PhiClass>,
    /// It goes through an array without picking one item (`[*]`, or an array step written
    /// without an index).
    pub multi: bool,
    /// The table's form: every index written as `[*]`.
    pub normalized: String,
}

/// Why a path is not an array of the object ([`Table::array`]).
#[derive(Debug, PartialEq, Eq)]
pub enum ArrayError {
    /// A step of the path is not known: where, as [`Table::check`] says it.
    Unknown(PathError),
    /// The path is known but holds one value or one object; `arrays` are the object's arrays
    /// (table form, `Line[*]`), sorted.
    NotArray { arrays: Vec<String> },
}

/// The parsed rows of one embedded table.
pub struct Table {
    rows: Vec<Field>,
}

impl Table {
    /// Parses `tsv` (`#` lines are comments); `name` is for the panic message of a malformed
    /// table, which the crate's tests catch.
    pub fn parse(tsv: &str, name: &str) -> Table {
        let rows = tsv
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                let class = cols.get(3).copied().unwrap_or_default();
                Field {
                    object: cols[0].to_string(),
                    path: cols[1].to_string(),
                    kind: Kind::parse(cols[2]).unwrap_or_else(|| panic!("a known kind in {name}")),
                    class: (!class.is_empty())
                        .then(|| PhiClass::parse(class).unwrap_or_else(|| panic!("a known class in {name}"))),
                }
            })
            .collect();
        Table { rows }
    }

    /// The fields of object type `object`, in table order; empty for an unknown type.
    pub fn fields<'t, 'o>(&'t self, object: &'o str) -> impl Iterator<Item = &'t Field> + use<'t, 'o> {
        self.rows.iter().filter(move |f| f.object == object)
    }

    /// Checks `text` against the paths of `object`.
    pub fn check(&self, object: &str, text: &str) -> Result<Checked, PathError> {
        let normalized = normalize(text);
        if let Some(f) = self.fields(object).find(|f| f.path == normalized) {
            return Ok(Checked { kind: f.kind, class: f.class, multi: text.contains("[*]"), normalized });
        }
        // An array step written without its index: still every item.
        let bare = |p: &str| p.replace("[*]", "");
        if let Some(f) = self.fields(object).find(|f| f.path.contains("[*]") && bare(&f.path) == normalized) {
            return Ok(Checked { kind: f.kind, class: f.class, multi: true, normalized: f.path.clone() });
        }
        // The longest prefix of whole steps that is a prefix of some path says where it went wrong.
        let steps: Vec<&str> = normalized.split('.').collect();
        let mut offset = 0usize;
        let mut prefix = String::new();
        for (i, step) in steps.iter().enumerate() {
            let candidate = if i == 0 { step.to_string() } else { format!("{prefix}.{step}") };
            let known = self.fields(object).any(|f| {
                f.path == candidate
                    || f.path.starts_with(&format!("{candidate}."))
                    || f.path.starts_with(&format!("{candidate}["))
            });
            if !known {
                let mut names: Vec<String> = self
                    .fields(object)
                    .filter_map(|f| {
                        let rest =
                            if i == 0 { Some(f.path.as_str()) } else { f.path.strip_prefix(&format!("{prefix}.")) };
                        rest.map(|r| r.split('.').next().unwrap_or(r).to_string())
                    })
                    .collect();
                names.sort();
                names.dedup();
                let step_len = original_len(text, offset);
                return Err(PathError { offset, len: step_len, candidates: names });
            }
            prefix = candidate;
            offset += original_len(text, offset) + 1;
        }
        // Every step is known but the path stops inside an object.
        let mut names: Vec<String> = self
            .fields(object)
            .filter_map(|f| {
                f.path
                    .strip_prefix(&format!("{prefix}."))
                    .map(|r| format!("{prefix}.{}", r.split('.').next().unwrap_or(r)))
            })
            .collect();
        names.sort();
        names.dedup();
        Err(PathError { offset: 0, len: text.len(), candidates: names })
    }
}

impl Table {
    /// The array `text` names (`Line[*]`, or `Line` without its index), in the table's form
    /// (every index `[*]`, ending in `[*]`): some path of `object` continues it with `.` or
    /// ends there (an array of values, Plaid's `category[*]`).
    pub fn array(&self, object: &str, text: &str) -> Result<String, ArrayError> {
        let normalized = normalize(text);
        let base = normalized.strip_suffix("[*]").unwrap_or(&normalized);
        let array = format!("{base}[*]");
        let continues = |f: &Field, p: &str| {
            f.path == p || f.path.starts_with(&format!("{p}.")) || f.path.starts_with(&format!("{p}["))
        };
        if self.fields(object).any(|f| continues(f, &array)) {
            return Ok(array);
        }
        if !base.is_empty()
            && !self.fields(object).any(|f| continues(f, base))
            && let Err(mut e) = self.check(object, base)
        {
            // Only steps on the way to an array are valid here.
            let arrays = self.arrays(object);
            let toward: Vec<String> =
                e.candidates.iter().filter(|c| arrays.iter().any(|a| a.split('.').any(|s| s == *c))).cloned().collect();
            if !toward.is_empty() {
                e.candidates = toward;
            }
            return Err(ArrayError::Unknown(e));
        }
        Err(ArrayError::NotArray { arrays: self.arrays(object) })
    }

    /// The arrays of `object` (table form, `Line[*]`, `Line[*].LinkedTxn[*]`), sorted.
    pub fn arrays(&self, object: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .fields(object)
            .flat_map(|f| f.path.match_indices("[*]").map(|(i, _)| f.path[..i + 3].to_string()).collect::<Vec<_>>())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// `text` with every `[n]` written as `[*]`.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find(']') else {
            out.push_str(&rest[i..]);
            return out;
        };
        let inner = &rest[i + 1..i + j];
        if inner == "*" || (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit())) {
            out.push_str("[*]");
        } else {
            out.push_str(&rest[i..=i + j]);
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// The length in the original text of the step starting at `offset`.
fn original_len(text: &str, offset: usize) -> usize {
    let rest = text.get(offset..).unwrap_or_default();
    rest.find('.').unwrap_or(rest.len())
}
