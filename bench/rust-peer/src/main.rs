//! `hl7-peer PARSER TASK FILE [OUT]`: the Rust side of `bench/hl7.sh`.
//!
//! PARSER:
//! - `sluice-view`: Sluice's lazy `view::MessageView` (what the B2 fast path uses);
//! - `sluice-tree`: Sluice's full `codec::parse_message` tree;
//! - `sluice-splitter`: `split::MessageSplitter` + `parse_message`, what `sluice parse` does
//!   before its JSON (B1 only);
//! - `hl7-parser`: the `hl7-parser` crate (nom, zero-copy; escapes decoded on display);
//! - `rust-hl7`: the `rust-hl7` crate (`rusthl7`; eager `&str` vectors; escapes decoded by its
//!   `EscapeSequence`).
//!
//! Every parser except `sluice-splitter` gets the messages split on `\n` (trailing CR removed),
//! exactly as `bench/peers.py` splits them for the Python peers.
//!
//! TASK:
//! - `b1`: parse every message; count the segments.
//! - `b2`: parse and extract `B2_FIELDS` (bench/feed.rs) with escapes decoded, writing one JSON
//!   object a line to OUT.
//!
//! `hl7-peer obx5 BYTES` times the large OBX-5 message instead (see `obx5`).
//!
//! Prints `ok failed loop_seconds` (the loop only: reading the file is excluded; B2 includes
//! writing the JSON lines to a buffered file).

#[path = "../../feed.rs"]
#[allow(dead_code)]
mod feed;

use std::borrow::Cow;
use std::io::Write;
use std::time::Instant;

use sluice_hl7v2::path::Path;
use sluice_hl7v2::split::MessageSplitter;

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|m| m.trim_end_matches('\r')).filter(|m| !m.trim().is_empty())
}

/// One B2 record: the values in `B2_FIELDS` order, `""` for a missing value.
fn write_record<W: Write>(out: &mut W, values: &[Cow<'_, str>]) {
    out.write_all(b"{").expect("write");
    for (i, ((key, _), v)) in feed::B2_FIELDS.iter().zip(values).enumerate() {
        if i > 0 {
            out.write_all(b",").expect("write");
        }
        serde_json::to_writer(&mut *out, key).expect("write");
        out.write_all(b":").expect("write");
        serde_json::to_writer(&mut *out, v.as_ref()).expect("write");
    }
    out.write_all(b"}\n").expect("write");
}

/// (segment, field, component) of each B2 field, 1-based, for the crates' own accessors.
fn b2_coordinates() -> Vec<(String, usize, usize)> {
    feed::B2_FIELDS
        .iter()
        .map(|(_, p)| {
            let p = Path::parse(p).expect("valid path");
            (p.segment, p.field, p.component.unwrap_or(1))
        })
        .collect()
}

/// Decoded B2 values of one message with the `hl7-parser` crate.
fn hl7_parser_b2<'m>(m: &'m hl7_parser::Message<'m>, coords: &[(String, usize, usize)]) -> Vec<Cow<'m, str>> {
    coords
        .iter()
        .map(|(seg, f, c)| {
            let sub = m
                .segment(seg)
                .and_then(|s| s.field(*f))
                .and_then(|f| f.repeat(1))
                .and_then(|r| r.component(*c))
                .and_then(|c| c.subcomponent(1))
                .map(|s| s.raw_value())
                .unwrap_or("");
            if sub.contains(m.separators.escape) {
                Cow::Owned(m.separators.decode(sub).to_string())
            } else {
                Cow::Borrowed(sub)
            }
        })
        .collect()
}

/// Decoded B2 values of one message with the `rust-hl7` crate. Its segments hold the segment
/// name in `fields[0]`; for MSH, `fields[1]` is MSH-2 (MSH-1 is not a field), so MSH-n is
/// `fields[n - 1]` and any other X-n is `fields[n]`.
fn rust_hl7_b2<'m>(
    m: &rusthl7::message::Message<'m>,
    esc: &rusthl7::escape_sequence::EscapeSequence,
    coords: &[(String, usize, usize)],
) -> Vec<Cow<'m, str>> {
    coords
        .iter()
        .map(|(seg, f, c)| {
            let idx = if seg == "MSH" { f - 1 } else { *f };
            let raw: &'m str = m
                .segments
                .iter()
                .find(|s| s.fields.first().map(|f| f.source) == Some(seg.as_str()))
                .and_then(|s| s.fields.get(idx))
                .and_then(|f| f.subcomponents.first())
                .and_then(|r| r.get(c - 1))
                .and_then(|c| c.first())
                .copied()
                .unwrap_or("");
            esc.decode(raw)
        })
        .collect()
}

/// `hl7-peer obx5 BYTES`: one message whose OBX-5 carries BYTES of Base64 text, parsed 20
/// times into the tree and into the view (reading OBX-5.5); prints the minimum and median
/// times and whether the payload was borrowed (its pointer lies inside the message text).
fn obx5(size: usize) {
    let text = feed::large_obx5_message(size);
    let inside = |v: &str| {
        let start = text.as_ptr() as usize;
        let p = v.as_ptr() as usize;
        v.len() == size && p >= start && p + v.len() <= start + text.len()
    };
    let path = Path::parse("OBX-5.5").expect("valid path");
    let time = |f: &dyn Fn() -> bool| {
        let mut times = Vec::new();
        let mut borrowed = true;
        for _ in 0..20 {
            let t = Instant::now();
            borrowed &= f();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        (times[0], times[times.len() / 2], borrowed)
    };
    let tree = time(&|| {
        let m = sluice_hl7v2::codec::parse_message(&text).expect("parses");
        let sub = &m.segments[3].fields[4].repetitions[0].components[4].subcomponents[0];
        matches!(sub, Cow::Borrowed(_)) && inside(sub)
    });
    let view = time(&|| {
        let v = sluice_hl7v2::view::MessageView::parse(&text).expect("parses");
        let value = v.first(&path).expect("OBX-5.5");
        matches!(value, Cow::Borrowed(_)) && inside(&value)
    });
    println!("5 MB OBX-5 message: {} bytes, payload {size} bytes, 20 runs each", text.len());
    for (name, (min, median, borrowed)) in [("codec::parse_message", tree), ("view::MessageView + OBX-5.5", view)] {
        println!("  {name}: min {min:.3} ms, median {median:.3} ms, payload borrowed (not copied): {borrowed}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, size] = args.as_slice()
        && mode == "obx5"
    {
        obx5(size.parse().expect("a size in bytes"));
        return;
    }
    let (parser, task, path) = match args.as_slice() {
        [p, t, f, ..] => (p.as_str(), t.as_str(), f.as_str()),
        _ => {
            eprintln!("usage: hl7-peer sluice-view|sluice-tree|sluice-splitter|hl7-parser|rust-hl7 b1|b2 FILE [OUT]");
            std::process::exit(2);
        }
    };
    let b2 = task == "b2";
    let out_path = args.get(3).cloned().unwrap_or_else(|| "/dev/null".into());
    let text = std::fs::read_to_string(path).expect("readable UTF-8 file");
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&out_path).expect("create OUT"));
    let coords = b2_coordinates();
    let paths: Vec<Path> = feed::B2_FIELDS.iter().map(|(_, p)| Path::parse(p).expect("valid path")).collect();

    let started = Instant::now();
    let (mut ok, mut failed, mut segments) = (0usize, 0usize, 0usize);
    match parser {
        "sluice-view" => {
            for msg in lines(&text) {
                let Ok(v) = sluice_hl7v2::view::MessageView::parse(msg) else {
                    failed += 1;
                    continue;
                };
                ok += 1;
                segments += v.segments.len();
                if b2 {
                    let values: Vec<Cow<str>> = paths.iter().map(|p| v.first(p).unwrap_or_default()).collect();
                    write_record(&mut out, &values);
                }
            }
        }
        "sluice-tree" => {
            for msg in lines(&text) {
                let Ok(m) = sluice_hl7v2::codec::parse_message(msg) else {
                    failed += 1;
                    continue;
                };
                ok += 1;
                segments += m.segments.len();
                if b2 {
                    let values: Vec<Cow<str>> =
                        paths.iter().map(|p| Cow::Borrowed(m.select(p).first().copied().unwrap_or(""))).collect();
                    write_record(&mut out, &values);
                }
            }
        }
        "sluice-splitter" if !b2 => {
            for raw in MessageSplitter::new(text.as_bytes()) {
                let raw = raw.expect("in-memory read");
                match std::str::from_utf8(&raw.bytes).ok().and_then(|t| sluice_hl7v2::codec::parse_message(t).ok()) {
                    Some(m) => {
                        ok += 1;
                        segments += m.segments.len();
                    }
                    None => failed += 1,
                }
            }
        }
        "hl7-parser" => {
            for msg in lines(&text) {
                let Ok(m) = hl7_parser::Message::parse(msg) else {
                    failed += 1;
                    continue;
                };
                ok += 1;
                segments += m.segments().count();
                if b2 {
                    write_record(&mut out, &hl7_parser_b2(&m, &coords));
                }
            }
        }
        "rust-hl7" => {
            for msg in lines(&text) {
                // The crate unwraps inside its parser; a panic counts as a failure.
                let parsed = std::panic::catch_unwind(|| rusthl7::message::Message::try_from(msg));
                let Ok(Ok(m)) = parsed else {
                    failed += 1;
                    continue;
                };
                ok += 1;
                segments += m.segments.len();
                if b2 {
                    // Built per message: the decoder depends on the message's delimiters.
                    let esc = rusthl7::escape_sequence::EscapeSequence::new(m.get_separators());
                    write_record(&mut out, &rust_hl7_b2(&m, &esc, &coords));
                }
            }
        }
        other => {
            eprintln!("unknown parser/task {other} {task}");
            std::process::exit(2);
        }
    }
    out.flush().expect("flush");
    let secs = started.elapsed().as_secs_f64();
    std::hint::black_box(segments);
    println!("{ok} {failed} {secs:.6}");
}
