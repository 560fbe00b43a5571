//! Criterion benchmarks for the state store: a checkpoint save (one UPDATE, one transaction,
//! synced) and a shared throttle token (one upsert), on SQLite (a file under the system temp
//! dir) and, when `SLUICE_BENCH_PG_URL` is set (a database the bench may create tables in), on
//! PostgreSQL. Run: `cargo bench -p sluice-runtime --bench state`. Measurements only.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_compiler::plan::StateTarget;
use sluice_runtime::state::{Checkpoint, Counts, Store};

fn targets() -> Vec<(&'static str, StateTarget)> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut all = vec![(
        "sqlite",
        StateTarget {
            kind: "sqlite".into(),
            path: dir.join("state.db").display().to_string(),
            url: None,
            checkpoint_every_ms: 1000,
        },
    )];
    if let Ok(url) = std::env::var("SLUICE_BENCH_PG_URL") {
        all.push((
            "postgres",
            StateTarget { kind: "postgres".into(), path: String::new(), url: Some(url), checkpoint_every_ms: 1000 },
        ));
    } else {
        eprintln!("SLUICE_BENCH_PG_URL is not set: PostgreSQL not measured");
    }
    all
}

fn bench(c: &mut Criterion) {
    for (kind, target) in targets() {
        let store = Store::open(&target, Some("bench")).unwrap();
        let run = store.begin("bench-run", "bench", "sha256:bench", "t0", &[], &Checkpoint::default()).unwrap();
        let mut checkpoint = Checkpoint {
            records: 0,
            counts: Counts { per_source: vec![0], per_sink: vec![0], ..Counts::default() },
            outputs: vec![("out/events.jsonl".into(), 0), ("out/dlq.jsonl".into(), 0), ("out/audit.jsonl".into(), 0)],
            audit_head: "ab".repeat(32),
            at: "2024-01-15T10:30:00Z".into(),
            dlq_rows: None,
        };
        c.bench_function(&format!("{kind}: checkpoint save"), |b| {
            b.iter(|| {
                checkpoint.records += 64;
                store.save(run, black_box(&checkpoint)).unwrap();
            })
        });
        store.set_status(run, sluice_runtime::state::Status::Completed, "t1").unwrap();
        // An interval of a nanosecond: the bucket never makes the bench wait.
        c.bench_function(&format!("{kind}: shared throttle token"), |b| {
            b.iter(|| black_box(store.take_token("bench", Duration::from_nanos(1)).unwrap()))
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
