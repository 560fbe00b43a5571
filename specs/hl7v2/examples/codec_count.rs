//! A fixed amount of codec work for instruction counting (callgrind), where criterion's
//! timing loop would make the count depend on the run: split a file of HL7 v2 messages, parse
//! each one, and with `encode` also encode it back; with `view`, locate each one's segments
//! with the lazy view instead (what `sluice run`'s source step does).
//!
//! ```sh
//! cargo build --release -p sluice-hl7v2 --example codec_count
//! valgrind --tool=callgrind target/release/examples/codec_count FILE [encode|view]
//! ```
//!
//! `callgrind_annotate --inclusive=yes` then gives the instructions of `codec::parse_message`,
//! `codec::encode` and `view::MessageView::parse_with` alone (docs/benchmarks.md).

use sluice_hl7v2::codec::{encode, parse_message};
use sluice_hl7v2::split::MessageSplitter;
use sluice_hl7v2::view::MessageView;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: codec_count FILE [encode|view]");
        std::process::exit(2);
    };
    let bytes = std::fs::read(path).expect("read the input file");
    let messages: Vec<String> = MessageSplitter::new(bytes.as_slice())
        .map(|m| String::from_utf8_lossy(&m.expect("in-memory read").bytes).into_owned())
        .collect();
    let with_encode = args.get(2).is_some_and(|a| a == "encode");
    let (mut parsed, mut segments, mut bytes_out) = (0usize, 0usize, 0usize);
    if args.get(2).is_some_and(|a| a == "view") {
        for text in &messages {
            if let Ok(v) = MessageView::parse(text) {
                parsed += 1;
                segments += v.segments.len();
            }
        }
        println!("{} messages, {parsed} located by the view, {segments} segments", messages.len());
        return;
    }
    for text in &messages {
        if let Ok(m) = parse_message(text) {
            parsed += 1;
            segments += m.segments.len();
            if with_encode {
                bytes_out += encode(&m).len();
            }
        }
    }
    println!("{} messages, {parsed} parsed, {segments} segments, {bytes_out} bytes encoded", messages.len());
}
