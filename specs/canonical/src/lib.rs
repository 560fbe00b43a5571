//! Output schemas: the record shapes Sluice writes (`canonical/patient-event@1`, ...).
//!
//! Each schema is a table in `data/`, embedded at build time. A path is dotted; list items are
//! addressed with `[*]` (`patient.identifiers[*].value`).
//!
//! Invariants:
//! - Field names are a published contract: a change is a new schema version (`@2`), never an edit.
//! - Tables are parsed once; a malformed table fails this crate's tests, so `expect` on the
//!   embedded data cannot fire for users.

use std::sync::OnceLock;

use sluice_spec_core::ValueType;

/// Who sets a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// A mapping must set it; a record without a value goes to the DLQ.
    Required,
    /// A mapping may set it.
    Optional,
    /// Set by the runtime (processing time, validation status, compliance); not mappable.
    Runtime,
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub path: String,
    pub value_type: ValueType,
    pub presence: Presence,
    pub values: Vec<String>,
    pub description: String,
}

#[derive(Debug)]
pub struct OutputSchema {
    pub name: &'static str,
    pub fields: Vec<FieldDef>,
    /// Set when the schema describes a table (header lines `@write_mode`, `@primary_key`,
    /// `@cursor`): how table sinks store its records.
    pub table: Option<Table>,
}

/// How records of a table schema are stored: `append` (every record is a new row) or
/// `upsert` (by primary key); the cursor is the field incremental reads resume from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub write_mode: String,
    /// Top-level field paths.
    pub primary_key: Vec<String>,
    pub cursor: Option<String>,
}

impl OutputSchema {
    pub fn field(&self, path: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// Fields that hold values (not the structs that group them).
    pub fn leaves(&self) -> impl Iterator<Item = &FieldDef> {
        self.fields.iter().filter(|f| f.value_type != ValueType::Struct)
    }

    /// Direct members of a list-of-struct field: `patient.identifiers` -> `type`, `value`.
    pub fn item_members(&self, list_path: &str) -> Vec<&FieldDef> {
        let prefix = format!("{list_path}[*].");
        self.fields.iter().filter(|f| f.path.strip_prefix(&prefix).is_some_and(|rest| !rest.contains('.'))).collect()
    }
}

const SCHEMAS: &[(&str, &str)] = &[
    ("canonical/patient-event@1", include_str!("../data/patient-event@1.txt")),
    ("canonical/adt-message@1", include_str!("../data/adt-message@1.txt")),
    ("canonical/orm-message@1", include_str!("../data/orm-message@1.txt")),
    ("canonical/oru-message@1", include_str!("../data/oru-message@1.txt")),
    ("canonical/webhook-event@1", include_str!("../data/webhook-event@1.txt")),
    ("canonical/claim-set@1", include_str!("../data/claim-set@1.txt")),
    ("canonical/financial-transaction@1", include_str!("../data/financial-transaction@1.txt")),
    ("canonical/financial-account@1", include_str!("../data/financial-account@1.txt")),
    ("canonical/financial-transaction@2", include_str!("../data/financial-transaction@2.txt")),
    ("canonical/financial-account@2", include_str!("../data/financial-account@2.txt")),
    ("canonical/claim@1", include_str!("../data/claim@1.txt")),
    ("canonical/claim@2", include_str!("../data/claim@2.txt")),
    ("canonical/remittance@1", include_str!("../data/remittance@1.txt")),
    ("canonical/eligibility@1", include_str!("../data/eligibility@1.txt")),
    ("canonical/enrollment@1", include_str!("../data/enrollment@1.txt")),
    ("canonical/claim-status@1", include_str!("../data/claim-status@1.txt")),
];

/// Names of all bundled output schemas.
pub fn names() -> impl Iterator<Item = &'static str> {
    SCHEMAS.iter().map(|(name, _)| *name)
}

/// The output schema with this name (`canonical/patient-event@1`).
pub fn schema(name: &str) -> Option<&'static OutputSchema> {
    static PARSED: OnceLock<Vec<OutputSchema>> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        SCHEMAS.iter().map(|(name, text)| parse_table(name, text).expect("bundled schema table is valid")).collect()
    });
    all.iter().find(|s| s.name == name)
}

fn parse_table(name: &'static str, text: &str) -> Result<OutputSchema, String> {
    let mut fields = Vec::new();
    let (mut write_mode, mut primary_key, mut cursor) = (None, Vec::new(), None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('@') {
            let (key, value) =
                header.split_once(':').ok_or_else(|| format!("{name}:{}: expected `@key: value`", n + 1))?;
            let value = value.trim().to_string();
            match key.trim() {
                "write_mode" if value == "append" || value == "upsert" => write_mode = Some(value),
                "primary_key" => primary_key = value.split(',').map(|k| k.trim().to_string()).collect(),
                "cursor" => cursor = Some(value),
                other => return Err(format!("{name}:{}: unknown header `@{other}` or value", n + 1)),
            }
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let [path, ty, flags, values, description] = cols[..] else {
            return Err(format!("{name}:{}: expected 5 columns", n + 1));
        };
        let value_type = ValueType::parse(ty).ok_or_else(|| format!("{name}:{}: unknown type {ty}", n + 1))?;
        let presence = match flags {
            "required" => Presence::Required,
            "optional" => Presence::Optional,
            "runtime" => Presence::Runtime,
            other => return Err(format!("{name}:{}: unknown flag {other}", n + 1)),
        };
        let values = values.split(',').map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect();
        fields.push(FieldDef {
            path: path.to_string(),
            value_type,
            presence,
            values,
            description: description.to_string(),
        });
    }
    let table = match write_mode {
        Some(write_mode) => {
            for key in primary_key.iter().chain(&cursor) {
                if !fields.iter().any(|f| &f.path == key && f.presence == Presence::Required) {
                    return Err(format!("{name}: key or cursor `{key}` is not a required field"));
                }
            }
            Some(Table { write_mode, primary_key, cursor })
        }
        None if primary_key.is_empty() && cursor.is_none() => None,
        None => return Err(format!("{name}: `@primary_key` and `@cursor` need `@write_mode`")),
    };
    Ok(OutputSchema { name, fields, table })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_schema_parses() {
        for name in names() {
            let schema = schema(name).expect("schema loads");
            assert!(!schema.fields.is_empty());
        }
    }

    #[test]
    fn patient_event_contract() {
        let s = schema("canonical/patient-event@1").unwrap();
        assert_eq!(s.field("patient.dob").unwrap().value_type, ValueType::Date);
        assert_eq!(s.field("metadata.message_id").unwrap().presence, Presence::Required);
        assert_eq!(s.field("compliance.pii_masked").unwrap().presence, Presence::Runtime);
        let members: Vec<_> = s.item_members("patient.identifiers").iter().map(|f| f.path.clone()).collect();
        assert_eq!(members, ["patient.identifiers[*].type", "patient.identifiers[*].value"]);
    }

    #[test]
    fn message_tables_have_keys_and_nested_lists() {
        for (name, lists) in [
            ("canonical/adt-message@1", &["patient.identifiers", "diagnoses"][..]),
            ("canonical/orm-message@1", &["orders", "orders[*].observations"][..]),
            ("canonical/oru-message@1", &["orders", "orders[*].observations"][..]),
        ] {
            let s = schema(name).unwrap();
            let t = s.table.as_ref().unwrap();
            assert_eq!(t.write_mode, "append");
            assert_eq!(t.primary_key, ["message_control_id"]);
            assert_eq!(t.cursor.as_deref(), Some("message_datetime"));
            for l in lists {
                assert!(matches!(s.field(l).unwrap().value_type, ValueType::List(_)), "{name} {l}");
                assert!(!s.item_members(l).is_empty(), "{name} {l}");
            }
        }
        let oru = schema("canonical/oru-message@1").unwrap();
        assert!(oru.field("orders[*].observations[*].value").is_some());
        let notes = &oru.field("orders[*].observations[*].notes").unwrap().value_type;
        assert_eq!(notes, &ValueType::List(Box::new(ValueType::String)));
        assert!(schema("canonical/patient-event@1").unwrap().table.is_none());
        assert!(parse_table("x", "@cursor: a\na | string | required | | x").is_err());
        assert!(parse_table("x", "@write_mode: append\n@primary_key: b\na | string | required | | x").is_err());
    }

    #[test]
    fn financial_account_joins_transactions_by_source_and_id() {
        let account = schema("canonical/financial-account@1").unwrap();
        let table = account.table.as_ref().unwrap();
        assert_eq!(table.write_mode, "upsert");
        assert_eq!(table.primary_key, ["source", "id"]);
        for f in ["id", "name", "type"] {
            assert_eq!(account.field(f).unwrap().presence, Presence::Required, "{f}");
        }
        assert_eq!(account.field("balance").unwrap().value_type, ValueType::Decimal);
        // A transaction's `source` and `account_id` are an account's key.
        let transaction = schema("canonical/financial-transaction@1").unwrap();
        let sources = &transaction.field("source").unwrap().values;
        assert!(account.field("source").unwrap().values.iter().all(|s| sources.contains(s)));
        assert_eq!(transaction.field("account_id").unwrap().value_type, account.field("id").unwrap().value_type);
    }

    #[test]
    fn version_2_keys_financial_rows_by_connection_and_keeps_version_1_fields() {
        for (v1, v2, key) in [
            ("canonical/financial-transaction@1", "canonical/financial-transaction@2", &["connection", "id"][..]),
            ("canonical/financial-account@1", "canonical/financial-account@2", &["source", "connection", "id"][..]),
        ] {
            let (old, new) = (schema(v1).unwrap(), schema(v2).unwrap());
            assert_eq!(new.table.as_ref().unwrap().primary_key, key, "{v2}");
            let connection = new.field("connection").unwrap();
            assert_eq!((connection.presence, &connection.value_type), (Presence::Required, &ValueType::String));
            // @2 is @1 plus a required connection: same fields, same types, nothing else.
            let paths =
                |s: &OutputSchema| s.fields.iter().map(|f| f.path.clone()).collect::<std::collections::BTreeSet<_>>();
            let mut expected = paths(old);
            expected.insert("connection".into());
            assert_eq!(paths(new), expected, "{v2}");
            for f in &old.fields {
                assert_eq!(new.field(&f.path).unwrap().value_type, f.value_type, "{v2} {}", f.path);
            }
        }
    }

    #[test]
    fn every_field_has_its_parent() {
        for name in names() {
            let s = schema(name).unwrap();
            for f in &s.fields {
                if let Some((parent, _)) = f.path.rsplit_once('.') {
                    let parent = parent.strip_suffix("[*]").unwrap_or(parent);
                    assert!(s.field(parent).is_some(), "{} has no parent {parent}", f.path);
                }
            }
        }
    }
}
