//! Timing tool of `bench/fhir.sh`: for each file, reads it into memory once, then `REPS` times
//! parses it (JSON or XML, NDJSON line by line) and validates it strictly (schema, Bundle
//! rules, reference resolution). `BENCH_MODE=tree|document` says how a JSON or XML document is
//! read and validated: the whole tree then validation, or (the default, what `sluice validate`
//! does) [`sluice_fhir::validate_document`], entries validated as they are read. Prints one
//! JSON line per file with the median and minimum wall time in milliseconds and the mean CPU
//! time per run (user + system, from /proc/self/stat: robust when the machine is loaded), and
//! a total line. Measures, asserts nothing.
//!
//!     cargo run --release -p sluice-fhir --example fhir_bench -- REPS FILE...

use std::time::Instant;

// The allocator the `sluice` binary uses (src/main.rs): freeing one large tree is a visible
// part of the time, and the system allocator's costs are not the product's.
#[global_allocator]
static ALLOCATOR: sluice_alloc::Allocator = sluice_alloc::Allocator;

use sluice_fhir::validate::{Options, validate};
use sluice_fhir::{Limits, Node};

/// How a JSON or XML document is read and validated (`BENCH_MODE`).
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// What `sluice validate` does: [`sluice_fhir::validate_document`], a Bundle's entries
    /// validated as they are read (the default).
    Document,
    /// The whole tree read, then validated.
    Tree,
}

/// Reads and validates once; returns the number of findings.
fn run(bytes: &[u8], ndjson: bool, mode: Mode) -> usize {
    let options = Options::default();
    if ndjson {
        let lines = sluice_fhir::stream::NdjsonReader::new(bytes, Limits::default());
        return lines.flatten().filter_map(|l| l.resource.ok()).map(|r| validate(&r, &options).len()).sum();
    }
    match mode {
        Mode::Tree => validate(&sluice_fhir::read(bytes).expect("bench input reads"), &options).len(),
        Mode::Document => {
            sluice_fhir::validate_document(bytes, Limits::default(), &options).expect("bench input reads").len()
        }
    }
}

/// Resources in a file (the document and its Bundle entries, or NDJSON lines), counted once,
/// outside the timing.
fn resources(bytes: &[u8], ndjson: bool) -> usize {
    if ndjson {
        return sluice_fhir::stream::NdjsonReader::new(bytes, Limits::default()).flatten().count();
    }
    let r = sluice_fhir::read(bytes).expect("bench input reads");
    1 + r.get("entry").and_then(Node::as_array).map_or(0, <[Node]>::len)
}

/// CPU time of this process so far (user + system), in milliseconds; 0 where /proc is absent.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    // The kernel reports in clock ticks of 10 ms (USER_HZ 100 on Linux).
    ticks * 10.0
}

fn main() {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(5);
    let mode = if std::env::var("BENCH_MODE").as_deref() == Ok("tree") { Mode::Tree } else { Mode::Document };
    let (mut total_ms, mut total_cpu, mut total_bytes, mut total_resources) = (0.0, 0.0, 0usize, 0usize);
    for file in args {
        let bytes = std::fs::read(&file).expect("bench input exists");
        let ndjson = file.ends_with(".ndjson");
        let mut times = Vec::with_capacity(reps);
        let resources = resources(&bytes, ndjson);
        let mut findings = 0;
        let cpu_start = cpu_ms();
        for _ in 0..reps {
            let start = Instant::now();
            findings = std::hint::black_box(run(&bytes, ndjson, mode));
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let cpu = (cpu_ms() - cpu_start) / reps as f64;
        total_cpu += cpu;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        total_ms += median;
        total_bytes += bytes.len();
        total_resources += resources;
        say(format!(
            "{{\"file\":{:?},\"bytes\":{},\"resources\":{},\"findings\":{},\"median_ms\":{median:.3},\"min_ms\":{:.3},\"cpu_ms\":{cpu:.1}}}",
            file,
            bytes.len(),
            resources,
            findings,
            times[0]
        ));
    }
    say(format!(
        "{{\"total\":true,\"bytes\":{total_bytes},\"resources\":{total_resources},\"median_ms\":{total_ms:.3},\"cpu_ms\":{total_cpu:.1}}}"
    ));
}

/// Prints a line; a reader that went away (`| head -1`) ends the tool quietly instead of the
/// panic `println!` gives on a closed pipe.
fn say(line: String) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
        std::process::exit(0);
    }
}
