//! `csv` sinks: one RFC 4180 line per record, the columns of a `postgres` table of the same
//! schema (`sluice_compiler::plan::pg_table::columns`: the record id, the leaves outside lists,
//! the lists as JSON text), under a header line naming them.
//!
//! The file is written like a JSON Lines sink's (`crate::sink`): by the writer thread, in
//! record order, cut back to its checkpoint length on `--resume`, appended to by a live feed.
//! The header is written when the file is empty (a new file, or a live feed's first record);
//! a file a live feed appends to must already start with the same header (RT163 otherwise:
//! rows under another header would be read with the wrong column names).
//!
//! Invariants:
//! - RFC 4180: fields holding `,`, `"`, CR or LF are quoted, `"` doubled; lines end with CRLF
//!   (the writer adds the LF, so a line here ends with CR).
//! - A missing value is an empty field; an empty text is `""` (as PostgreSQL's `COPY ... CSV`
//!   reads them), so the two stay apart.

use super::column_values;
use crate::error::RunError;
use crate::record::Doc;
use sluice_compiler::plan::pg_table::PgColumn;

/// The header line (without its LF).
pub fn header(columns: &[PgColumn]) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&c.name, &mut out);
    }
    out.push('\r');
    out
}

/// Writes the header into a file that is still empty (new, or a live feed's first); a file
/// that already has lines must start with the same header, or its rows would no longer line
/// up with their column names (RT163).
pub fn write_or_check_header(
    w: &mut std::io::BufWriter<std::fs::File>,
    sink: &str,
    path: &str,
    columns: &[PgColumn],
) -> Result<(), RunError> {
    let len = w.get_ref().metadata().map_err(|e| RunError::io("read", std::path::Path::new(path), &e))?.len();
    let expected = header(columns);
    if len == 0 && w.buffer().is_empty() {
        return crate::sink::write_line(w, &expected, path);
    }
    let found = first_line(path)?;
    if found == expected.trim_end_matches('\r') {
        return Ok(());
    }
    let names = |line: &str| line.split(',').map(|n| n.trim_matches('"').to_string()).collect::<Vec<_>>();
    let (old, new) = (names(&found), names(expected.trim_end_matches('\r')));
    let difference = match old.iter().zip(&new).position(|(a, b)| a != b) {
        Some(i) => format!("column {} is `{}` there, `{}` here", i + 1, old[i], new[i]),
        None if old.len() < new.len() => format!("this sink adds `{}`", new[old.len()..].join("`, `")),
        None => format!("the file has {} more", old.len() - new.len()),
    };
    Err(RunError::new(
        crate::findings::CSV_HEADER_MISMATCH,
        format!(
            "csv sink `{sink}`: `{path}` was started with other columns ({} there, {} now: {difference})",
            old.len(),
            new.len()
        ),
    )
    .with_help(
        "the sink's columns changed since the file was started (a mapping or schema change, or the `_deleted` column cdc deletions add): move the file away or point `path` at a new file, and run again; nothing was written",
    ))
}

/// The first line of the file at `path`, without its line end (at most 1 MiB of it).
fn first_line(path: &str) -> Result<String, RunError> {
    use std::io::{BufRead, Read};
    let f = std::fs::File::open(path).map_err(|e| RunError::io("read", std::path::Path::new(path), &e))?;
    let mut line = Vec::new();
    std::io::BufReader::new(f.take(1 << 20))
        .read_until(b'\n', &mut line)
        .map_err(|e| RunError::io("read", std::path::Path::new(path), &e))?;
    let text = String::from_utf8_lossy(&line);
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

/// The line of a record (without its LF).
pub fn line(doc: &Doc, record_id: &str, columns: &[PgColumn]) -> String {
    let mut out = String::with_capacity(256);
    for (i, v) in column_values(doc, record_id, columns).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match v {
            None => {}
            Some(s) if s.is_empty() => out.push_str("\"\""),
            Some(s) => field(s, &mut out),
        }
    }
    out.push('\r');
    out
}

fn field(text: &str, out: &mut String) {
    if text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn col(name: &str) -> PgColumn {
        // The record id's column has no path: its value is the record's id.
        let path = if name == "sluice_record_id" { "" } else { name };
        PgColumn { name: name.into(), path: path.into(), sql_type: "text".into() }
    }

    #[test]
    fn a_file_with_lines_must_start_with_the_same_header() {
        let dir = std::env::temp_dir().join(format!("sluice-csv-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.csv");
        let p = path.to_str().unwrap();
        let cols = [col("sluice_record_id"), col("a"), col("b")];
        let append = || {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
            std::io::BufWriter::new(f)
        };
        use std::io::Write;
        // Empty: the header is written.
        let mut w = append();
        write_or_check_header(&mut w, "out", p, &cols).unwrap();
        w.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sluice_record_id,a,b\r\n");
        // The same header: appended to, nothing written.
        let mut w = append();
        write_or_check_header(&mut w, "out", p, &cols).unwrap();
        assert!(w.buffer().is_empty());
        // A column more, one renamed, one fewer: RT163, naming the first difference.
        let more = [col("sluice_record_id"), col("a"), col("b"), col("_deleted")];
        let e = write_or_check_header(&mut append(), "out", p, &more).unwrap_err();
        assert_eq!(e.code, crate::findings::CSV_HEADER_MISMATCH);
        assert!(e.message.contains("(3 there, 4 now: this sink adds `_deleted`)"), "{}", e.message);
        let renamed = [col("sluice_record_id"), col("a"), col("c")];
        let e = write_or_check_header(&mut append(), "out", p, &renamed).unwrap_err();
        assert!(e.message.contains("column 3 is `b` there, `c` here"), "{}", e.message);
        let fewer = [col("sluice_record_id"), col("a")];
        let e = write_or_check_header(&mut append(), "out", p, &fewer).unwrap_err();
        assert!(e.message.contains("the file has 1 more"), "{}", e.message);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "sluice_record_id,a,b\r\n", "never written");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A minimal RFC 4180 reader, to read back what [`line`] wrote.
    fn parse(line: &str) -> Vec<Option<String>> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut out = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            let value = if chars.peek() == Some(&'"') {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            s.push('"');
                        }
                        Some('"') | None => break,
                        Some(c) => s.push(c),
                    }
                }
                Some(s)
            } else {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                (!s.is_empty()).then_some(s)
            };
            out.push(value);
            match chars.next() {
                Some(',') => continue,
                _ => break,
            }
        }
        out
    }

    #[test]
    fn quoting_follows_rfc_4180() {
        let cols = [col("sluice_record_id"), col("a"), col("b"), col("c"), col("d")];
        let doc = Doc::Obj(vec![
            ("a".into(), Doc::Str("O'Brien, \"Jr\"".into())),
            ("b".into(), Doc::Str(String::new())),
            ("c".into(), Doc::Null),
            ("d".into(), Doc::Str("two\r\nlines".into())),
        ]);
        assert_eq!(line(&doc, "r-1", &cols), "r-1,\"O'Brien, \"\"Jr\"\"\",\"\",,\"two\r\nlines\"\r");
        assert_eq!(header(&cols), "sluice_record_id,a,b,c,d\r");
    }

    proptest! {
        #[test]
        fn any_values_read_back(values in proptest::collection::vec(proptest::option::of("[a-z,\"\r\n ]{0,6}"), 1..5)) {
            let cols: Vec<PgColumn> =
                std::iter::once(col("sluice_record_id")).chain((0..values.len()).map(|i| col(&format!("f{i}")))).collect();
            let doc = Doc::Obj(
                values.iter().enumerate().map(|(i, v)| (format!("f{i}"), v.clone().map_or(Doc::Null, Doc::Str))).collect(),
            );
            let mut expected = vec![Some("id".to_string())];
            expected.extend(values.iter().cloned());
            prop_assert_eq!(parse(&line(&doc, "id", &cols)), expected);
        }
    }
}
