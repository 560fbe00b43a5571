//! Criterion benchmarks for the runtime end to end: compile the quick-start pipeline, and run
//! it (read, split, parse, filter, validate, map, mask, write JSONL + DLQ + audit) over
//! `MESSAGES` synthetic messages.
//!
//! Setup writes, under the system temp dir, one HL7 file (the bundled example feed repeated with
//! unique control ids) and a copy of `pipelines/quickstart.yaml` whose paths point at that file,
//! at the repository's `mappings/`, and at outputs inside the temp dir. Nothing outside the
//! repository is read. Run: `cargo bench -p sluice-runtime`. Measurements only, no thresholds.

#[allow(dead_code)] // shared with the codec benches and tests; this bench uses part of it
#[path = "../../bench/feed.rs"]
mod feed;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_compiler::compile::Compiler;
use sluice_runtime::RunOptions;

const MESSAGES: usize = 5000;
const CLOCK: &str = "2024-01-15T10:30:00Z";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus() -> String {
    feed::repeated_example_feed(&repo(), MESSAGES)
}

/// The quick-start pipeline with every path made absolute: input `data`, outputs under `dir`.
fn pipeline_yaml(dir: &Path, data: &Path) -> String {
    let mappings = repo().join("mappings/base");
    let m = |rel: &str| mappings.join(rel).to_string_lossy().into_owned();
    let o = |rel: &str| dir.join(rel).to_string_lossy().into_owned();
    format!(
        "kind: pipeline
name: bench
sources:
  hl7_files:
    type: files
    format: hl7v2
    path: '{data}'
    profile: '{profile}'
stages:
  adt_and_oru:
    type: filter
    inputs: [hl7_files]
    keep: 'MSH-9.1 == \"ADT\" or MSH-9.1 == \"ORU\"'
  validate:
    type: validate
    inputs: [adt_and_oru]
    rules: '{rules}'
  to_patient_event:
    type: map
    inputs: [validate]
    mapping: '{mapping}'
  mask:
    type: mask
    inputs: [to_patient_event]
    policy: '{policy}'
sinks:
  patient_events:
    type: jsonl
    inputs: [mask]
    path: '{out}'
dlq:
  path: '{dlq}'
audit:
  path: '{audit}'
defaults:
  batch_size: 64
",
        data = data.to_string_lossy(),
        profile = m("profiles/default.yaml"),
        rules = m("rules/patient-event.yaml"),
        mapping = m("hl7v2-patient-event.yaml"),
        policy = m("policies/quickstart.yaml"),
        out = o("out/patient-events.jsonl"),
        dlq = o("out/dlq.jsonl"),
        audit = o("out/audit.jsonl"),
    )
}

fn bench_pipeline(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let data = dir.join("feed.hl7");
    std::fs::write(&data, corpus()).expect("write data");
    let pipeline = dir.join("bench.yaml");
    std::fs::write(&pipeline, pipeline_yaml(&dir, &data)).expect("write pipeline");

    let compile = || {
        let mut compiler = Compiler::default();
        match compiler.plan(&pipeline) {
            Ok(Some(plan)) => plan,
            other => panic!("bench pipeline does not compile: {:?}", other.map(|p| p.is_some())),
        }
    };
    let plan = compile();

    let mut g = c.benchmark_group("runtime");
    g.sample_size(10);
    g.bench_function("compile quickstart", |b| b.iter(|| black_box(compile())));

    g.throughput(Throughput::Elements(MESSAGES as u64));
    for threads in [None, Some(1)] {
        let options = RunOptions { fixed_clock: Some(CLOCK.to_string()), threads, ..Default::default() };
        let name = match threads {
            None => "run quickstart (default threads)".to_string(),
            Some(n) => format!("run quickstart ({n} thread)"),
        };
        let summary = sluice_runtime::run(&plan, &options).expect("bench pipeline runs");
        assert!(summary.balanced && summary.records.records_in == MESSAGES as u64, "unexpected run: {summary:?}");
        g.bench_function(name, |b| b.iter(|| black_box(sluice_runtime::run(&plan, &options).expect("run"))));
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
