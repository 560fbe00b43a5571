//! The typed expression tree that mapping fields, rule conditions, filters and routes compile to.
//!
//! This is the contract between the compiler and the runtime: the compiler produces it with every
//! path resolved and every type known; the runtime evaluates it and never re-checks types.
//! It serializes into the plan, so its shape is part of the plan format (`plan_format` in
//! [`crate::plan::Plan`]).

use serde::{Deserialize, Serialize};
use sluice_spec_core::ValueType;

/// A literal value written in a spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "lit", content = "value", rename_all = "snake_case")]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    /// Decimal kept as written, so `72.50` stays `72.50`.
    Dec(String),
    Str(String),
}

/// A compiled expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Expr {
    Lit {
        value: Literal,
    },
    /// A path into an HL7 v2 message, in canonical text form (`PID-3[*].1`). `value_type` is the
    /// schema type of the addressed primitive; the runtime converts the raw text to it
    /// (`datetime` text becomes RFC 3339, `decimal` is checked) and reports a data warning when
    /// it cannot. `multi` is true when the path has a `[*]` and yields a list.
    Hl7 {
        path: String,
        value_type: ValueType,
        multi: bool,
    },
    /// A component of the current iteration variable: `id.1`, `id.4.2`. With no component the
    /// first component is meant (HL7 convention).
    Var {
        name: String,
        component: Option<usize>,
        subcomponent: Option<usize>,
        value_type: ValueType,
    },
    /// A path into the segments of one segment group instance, the current value of the group
    /// variable `var` (bound by `each: group(...)`): `order.OBR-4.1` reads OBR-4.1 of that
    /// order only. Occurrence indices (`OBX[1]`) count within the group instance.
    Within {
        var: String,
        path: String,
        value_type: ValueType,
        multi: bool,
    },
    /// A path into a FHIR resource, in the runtime form of [`crate::fhir`] (`name[0].family`,
    /// `valueQuantity.value`, `identifier.value`): JSON member names, `[n]`, `first()`,
    /// `last()`, `ofType(T)`, `name[x]` for an unpicked choice. `value_type` is the R4 type of
    /// one value; `multi` when it yields a list.
    Fhir {
        path: String,
        value_type: ValueType,
        multi: bool,
    },
    /// A path into the item of a finance object's array bound to `var` by `each:` / `as:`
    /// (`each: Line[*]`, `as: line`): `line.Amount` is `{var: line, path: Amount}`, in the
    /// runtime form of [`Expr::Fhir`] walked over the item's JSON (`[*]` dropped); an empty
    /// `path` is the item itself (an array of values, Plaid's `category[*]`). `value_type` is
    /// the type of one value; `multi` when it yields a list.
    Item {
        var: String,
        path: String,
        value_type: ValueType,
        multi: bool,
    },
    /// A path into an X12 transaction set, as written (`2300/CLM-01`, `2400[*]/SV1-01-2`),
    /// checked against the mapping's guide by [`crate::x12`]. `value_type` is the type of one
    /// value; `multi` when it yields a list.
    X12 {
        path: String,
        value_type: ValueType,
        multi: bool,
    },
    /// A field of a record that is already in an output schema (used by filters and routes
    /// placed after a map stage): `metadata.message_type`.
    Field {
        path: String,
        value_type: ValueType,
    },
    Call {
        function: Function,
        args: Vec<Expr>,
    },
    /// `lookup(x, table)`: `table` names an entry of the mapping's `tables`.
    Lookup {
        value: Box<Expr>,
        table: String,
        default: Option<Box<Expr>>,
    },
    /// `template("{{ a }} {{ b }}", a=..., b=...)`, rendered by minijinja. Every variable the
    /// template uses is bound here; the compiler checked it.
    Template {
        source: String,
        vars: Vec<(String, Expr)>,
    },
    Binary {
        operator: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Not {
        operand: Box<Expr>,
    },
    List {
        items: Vec<Expr>,
    },
}

/// Built-in functions with declared signatures (see `expr::functions` for the signatures).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Function {
    /// `date(x)`: HL7 DT/DTM text or a datetime -> `YYYY-MM-DD`.
    Date,
    /// `datetime(x)`: HL7 DTM text -> RFC 3339 (offset from the value, else the profile's zone).
    Datetime,
    /// `coalesce(a, b, ...)`: first non-null, non-empty argument.
    Coalesce,
    /// `concat(a, b, ...)`: text of the non-null arguments joined.
    Concat,
    Upper,
    Lower,
    Trim,
    /// `present(x)`: true when x is non-null and non-empty.
    Present,
    /// `if(cond, then, else)`.
    If,
    /// `integer(x)`, `decimal(x)`: parse text, null with a warning when not a number.
    Integer,
    Decimal,
    /// `starts_with(text, prefix)`.
    StartsWith,
    /// `join(list, separator)`.
    Join,
    /// `contains(list, value)`: true when one of the values equals `value`.
    Contains,
    /// `unix_date(seconds)`: Unix seconds (Stripe's timestamps) -> the UTC calendar date.
    UnixDate,
    /// `unix_datetime(seconds)`: Unix seconds -> RFC 3339 in UTC.
    UnixDatetime,
    /// `minor_units(amount, currency)`: an integer amount in the currency's minor units ->
    /// a decimal in major units (`1050, "usd"` -> `10.50`; `1050, "jpy"` -> `1050`).
    MinorUnits,
    /// `negate(number)`: the number with its sign turned (Plaid writes money out positive).
    Negate,
    /// `connection()`: the `connection:` name of the finance source the record came from
    /// (configuration, not data: it carries no PHI class).
    Connection,
    /// `envelope("quickbooks.realm")`: a provenance value the finance source set on the record
    /// (its one argument is a literal name the compiler checked against the mapping's input).
    Envelope,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    /// `+`: concatenation of text, addition of numbers.
    Add,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Add => "+",
        }
    }
}

impl Function {
    /// Every built-in function called by its name (`lookup`, `template` and `classify` are
    /// checked on their own).
    pub const ALL: [Function; 20] = [
        Function::Date,
        Function::Datetime,
        Function::Coalesce,
        Function::Concat,
        Function::Upper,
        Function::Lower,
        Function::Trim,
        Function::Present,
        Function::If,
        Function::Integer,
        Function::Decimal,
        Function::StartsWith,
        Function::Join,
        Function::Contains,
        Function::UnixDate,
        Function::UnixDatetime,
        Function::MinorUnits,
        Function::Negate,
        Function::Connection,
        Function::Envelope,
    ];

    /// The function a spec names, if any.
    pub fn by_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The name written in specs.
    pub fn name(self) -> &'static str {
        match self {
            Function::Date => "date",
            Function::Datetime => "datetime",
            Function::Coalesce => "coalesce",
            Function::Concat => "concat",
            Function::Upper => "upper",
            Function::Lower => "lower",
            Function::Trim => "trim",
            Function::Present => "present",
            Function::If => "if",
            Function::Integer => "integer",
            Function::Decimal => "decimal",
            Function::StartsWith => "starts_with",
            Function::Join => "join",
            Function::Contains => "contains",
            Function::UnixDate => "unix_date",
            Function::UnixDatetime => "unix_datetime",
            Function::MinorUnits => "minor_units",
            Function::Negate => "negate",
            Function::Connection => "connection",
            Function::Envelope => "envelope",
        }
    }
}

/// The expression written back in the mapping language (as a reviewer reads it in a plan
/// diff): the same meaning, not necessarily the same spelling (parentheses are explicit).
impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, items: &[Expr]| -> std::fmt::Result {
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{e}")?;
            }
            Ok(())
        };
        match self {
            Expr::Lit { value } => match value {
                Literal::Null => f.write_str("null"),
                Literal::Bool(b) => write!(f, "{b}"),
                Literal::Int(n) => write!(f, "{n}"),
                Literal::Dec(d) => f.write_str(d),
                Literal::Str(s) => write!(f, "{s:?}"),
            },
            Expr::Hl7 { path, .. } | Expr::Fhir { path, .. } | Expr::X12 { path, .. } | Expr::Field { path, .. } => {
                f.write_str(path)
            }
            Expr::Var { name, component, subcomponent, .. } => {
                f.write_str(name)?;
                if let Some(c) = component {
                    write!(f, ".{c}")?;
                }
                if let Some(s) = subcomponent {
                    write!(f, ".{s}")?;
                }
                Ok(())
            }
            Expr::Within { var, path, .. } => write!(f, "{var}.{path}"),
            Expr::Item { var, path, .. } if path.is_empty() => f.write_str(var),
            Expr::Item { var, path, .. } => write!(f, "{var}.{path}"),
            Expr::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                list(f, args)?;
                f.write_str(")")
            }
            Expr::Lookup { value, table, default } => match default {
                Some(d) => write!(f, "lookup({value}, {table}, {d})"),
                None => write!(f, "lookup({value}, {table})"),
            },
            Expr::Template { source, vars } => {
                write!(f, "template({source:?}")?;
                for (name, e) in vars {
                    write!(f, ", {name}={e}")?;
                }
                f.write_str(")")
            }
            Expr::Binary { operator, lhs, rhs } => write!(f, "({lhs} {} {rhs})", operator.symbol()),
            Expr::Not { operand } => write!(f, "not {operand}"),
            Expr::List { items } => {
                f.write_str("[")?;
                list(f, items)?;
                f.write_str("]")
            }
        }
    }
}
