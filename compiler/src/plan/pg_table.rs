//! The table of a `postgres` sink: its columns, derived from the output schema of the records
//! that reach the sink, and the DDL that creates it (`sluice plan` shows it; the runtime runs
//! it, then adds the columns an older table lacks).
//!
//! Columns, in the schema's field order:
//! - `sluice_record_id text`: the record's audit id (`<run_id>-<seq>`, the same on a resumed
//!   run). Unique in an `append` table: inserts are `ON CONFLICT (sluice_record_id) DO
//!   NOTHING`, so a batch written again after a crash adds nothing.
//! - one per leaf field outside lists, named by its path with `.` as `_`
//!   (`patient.dob` -> `patient_dob`), typed from the schema ([`sql_type`]);
//! - one `jsonb` column per list field (`patient.identifiers`), holding the whole list.
//!
//! Invariants:
//! - Pure function of the schema and the sink's spec: the same specs give the same DDL.
//! - Identifiers are checked ([`valid_table_name`]) and column names come from schema paths
//!   (letters, digits, `_`), so nothing is interpolated into SQL that a user could escape from;
//!   every identifier is double-quoted all the same.

use serde::{Deserialize, Serialize};
use sluice_spec_core::ValueType;

/// The column every table gets: the record's audit id.
pub const RECORD_ID_COLUMN: &str = "sluice_record_id";

/// The column that marks deletions in a CSV or Parquet sink a `fhir.rest` source's deletions
/// reach (`true` on a deletion's row, `false` on every other row); also the member a deletion's
/// finalized record carries.
pub const DELETED_COLUMN: &str = "_deleted";

/// The [`DELETED_COLUMN`] of a CSV or Parquet sink.
pub fn deleted_column() -> PgColumn {
    PgColumn { name: DELETED_COLUMN.into(), path: DELETED_COLUMN.into(), sql_type: "boolean".into() }
}

/// PostgreSQL's limit on identifier length (longer names are cut, silently).
pub const MAX_IDENTIFIER: usize = 63;

/// A `postgres` sink, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgSinkPlan {
    /// The connection URL's secret reference as written (`${WAREHOUSE_URL}`).
    pub url: String,
    /// `table` or `schema.table`.
    pub table: String,
    /// `append` (inserts, idempotent by record id) or `upsert` (by `key`).
    pub write: String,
    /// Key columns of an `upsert` table (its primary key); empty for `append`.
    pub key: Vec<String>,
    pub columns: Vec<PgColumn>,
}

/// One column and where its value is in a sink line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgColumn {
    pub name: String,
    /// The field's dotted path in the record (`patient.identifiers`).
    pub path: String,
    /// `text`, `bigint`, `numeric`, `boolean`, `date`, `timestamptz` or `jsonb`.
    pub sql_type: String,
}

/// The column type of a schema type.
pub fn sql_type(t: &ValueType) -> &'static str {
    match t {
        ValueType::Integer => "bigint",
        ValueType::Decimal => "numeric",
        ValueType::Boolean => "boolean",
        ValueType::Date => "date",
        ValueType::DateTime => "timestamptz",
        ValueType::List(_) | ValueType::Struct => "jsonb",
        ValueType::String | ValueType::Code | ValueType::Identifier | ValueType::Null | ValueType::Any => "text",
    }
}

/// The column name of a field path.
pub fn column_name(path: &str) -> String {
    path.replace('.', "_")
}

/// The default table of a schema: `canonical/adt-message@1` -> `adt_message_v1`.
pub fn default_table(schema: &str) -> String {
    let base = schema.rsplit('/').next().unwrap_or(schema);
    base.replace('@', "_v").replace(['-', '.'], "_").to_ascii_lowercase()
}

/// `name` or `schema.name`, each a lower-case SQL identifier of at most 63 bytes.
pub fn valid_table_name(text: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= MAX_IDENTIFIER
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match text.split_once('.') {
        Some((schema, table)) => part(schema) && part(table),
        None => part(text),
    }
}

/// The columns of a table for records of `fields` (path, type), in order: the record id, then
/// the leaves outside lists and the lists themselves. Errors name the field paths whose
/// columns would clash or be too long.
pub fn columns<'a>(fields: impl IntoIterator<Item = (&'a str, &'a ValueType)>) -> Result<Vec<PgColumn>, String> {
    let fields: Vec<(&str, &ValueType)> = fields.into_iter().collect();
    let mut out = vec![PgColumn { name: RECORD_ID_COLUMN.into(), path: String::new(), sql_type: "text".into() }];
    for &(path, t) in &fields {
        if path.contains("[*]") {
            continue;
        }
        // A struct is spread into the columns of its members; one without members is kept whole.
        let has_members = fields.iter().any(|(p, _)| p.strip_prefix(path).is_some_and(|r| r.starts_with('.')));
        if *t == ValueType::Struct && has_members {
            continue;
        }
        let name = column_name(path);
        if name.len() > MAX_IDENTIFIER {
            return Err(format!("the column of `{path}` would be longer than {MAX_IDENTIFIER} bytes"));
        }
        if let Some(other) = out.iter().find(|c| c.name == name) {
            return Err(format!("`{path}` and `{}` would both be column `{name}`", other.path));
        }
        out.push(PgColumn { name, path: path.to_string(), sql_type: sql_type(t).into() });
    }
    Ok(out)
}

/// A quoted identifier; `schema.table` is quoted part by part.
pub fn quoted(name: &str) -> String {
    name.split('.').map(|p| format!("\"{}\"", p.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

impl PgSinkPlan {
    /// `CREATE TABLE IF NOT EXISTS ...`: what a new table looks like.
    pub fn create_table(&self) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let not_null = if c.name == RECORD_ID_COLUMN || self.key.contains(&c.name) { " NOT NULL" } else { "" };
                format!("  {} {}{not_null}", quoted(&c.name), c.sql_type)
            })
            .collect();
        if self.write == "upsert" {
            let key: Vec<String> = self.key.iter().map(|k| quoted(k)).collect();
            cols.push(format!("  PRIMARY KEY ({})", key.join(", ")));
        } else {
            cols.push(format!("  UNIQUE ({})", quoted(RECORD_ID_COLUMN)));
        }
        format!("CREATE TABLE IF NOT EXISTS {} (\n{}\n)", quoted(&self.table), cols.join(",\n"))
    }

    /// The columns a conflict is judged on: the key of an `upsert` table, the record id of an
    /// `append` one.
    pub fn conflict_columns(&self) -> Vec<String> {
        if self.write == "upsert" { self.key.clone() } else { vec![RECORD_ID_COLUMN.to_string()] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_spread_structs_and_keep_lists_whole() {
        let s = ValueType::String;
        let st = ValueType::Struct;
        let list = ValueType::List(Box::new(ValueType::Struct));
        let d = ValueType::Date;
        let fields = [
            ("metadata", &st),
            ("metadata.message_id", &s),
            ("patient", &st),
            ("patient.dob", &d),
            ("patient.identifiers", &list),
            ("patient.identifiers[*].value", &s),
            ("extra", &st),
        ];
        let cols = columns(fields).unwrap();
        let names: Vec<(&str, &str)> = cols.iter().map(|c| (c.name.as_str(), c.sql_type.as_str())).collect();
        assert_eq!(
            names,
            [
                ("sluice_record_id", "text"),
                ("metadata_message_id", "text"),
                ("patient_dob", "date"),
                ("patient_identifiers", "jsonb"),
                ("extra", "jsonb")
            ]
        );
        assert!(columns([("a.b_c", &s), ("a_b.c", &s)]).unwrap_err().contains("would both be column `a_b_c`"));
        let long = "x".repeat(64);
        assert!(columns([(long.as_str(), &s)]).is_err());
    }

    #[test]
    fn every_bundled_schema_is_a_table() {
        for name in sluice_canonical::names() {
            let schema = sluice_canonical::schema(name).unwrap();
            let cols = columns(schema.fields.iter().map(|f| (f.path.as_str(), &f.value_type)));
            assert!(cols.is_ok(), "{name}: {cols:?}");
            assert!(valid_table_name(&default_table(name)), "{name}");
            // A table schema's primary key is a column of one value.
            for key in schema.table.iter().flat_map(|t| &t.primary_key) {
                let cols = cols.as_ref().unwrap();
                assert!(cols.iter().any(|c| &c.path == key && c.sql_type != "jsonb"), "{name}: {key}");
            }
        }
    }

    #[test]
    fn table_names_and_defaults() {
        assert_eq!(default_table("canonical/adt-message@1"), "adt_message_v1");
        for ok in ["events", "warehouse.adt_message_v1", "_t1"] {
            assert!(valid_table_name(ok), "{ok}");
        }
        for bad in ["", "Events", "a.b.c", "1t", "t;drop table x", "a b", &"t".repeat(64)] {
            assert!(!valid_table_name(bad), "{bad}");
        }
        assert_eq!(quoted("w.t"), "\"w\".\"t\"");
    }

    #[test]
    fn ddl_has_the_key_or_the_unique_record_id() {
        let col = |n: &str, t: &str| PgColumn { name: n.into(), path: n.into(), sql_type: t.into() };
        let mut p = PgSinkPlan {
            url: "${U}".into(),
            table: "t".into(),
            write: "append".into(),
            key: vec![],
            columns: vec![col("sluice_record_id", "text"), col("id", "text")],
        };
        assert_eq!(
            p.create_table(),
            "CREATE TABLE IF NOT EXISTS \"t\" (\n  \"sluice_record_id\" text NOT NULL,\n  \"id\" text,\n  UNIQUE (\"sluice_record_id\")\n)"
        );
        p.write = "upsert".into();
        p.key = vec!["id".into()];
        assert!(p.create_table().contains("\"id\" text NOT NULL,\n  PRIMARY KEY (\"id\")"));
        assert_eq!(p.conflict_columns(), ["id"]);
    }
}
