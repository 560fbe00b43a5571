//! Tokenizer throughput: the streaming splitter plus tokenizing every segment and element of
//! every set, over an in-memory interchange of synthetic 837P claims (the fixture's sets
//! repeated); then the same plus loop identification against the 837P guide (issue 6's
//! "tokenize plus loop identification at 100 MB/s on one core"), and full guide validation.
//! Run with `cargo bench -p sluice-x12`; results in docs/benchmarks.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_x12::envelope::{Checker, Mode};
use sluice_x12::split::{Item, Splitter};

const FIXTURE: &str = include_str!("../tests/fixtures/claims-837p.x12");

/// An interchange of `sets` copies of the fixture's transaction set, about 1.5 KB each.
fn input(sets: usize) -> Vec<u8> {
    let st = FIXTURE.find("ST*").unwrap();
    let se_end = FIXTURE.find("GE*").unwrap();
    let (head, set) = (&FIXTURE[..st], &FIXTURE[st..se_end]);
    let mut out = String::from(head);
    for _ in 0..sets {
        out += set;
    }
    out += &format!("GE*{sets}*1~\nIEA*1*000000001~\n");
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let data = input(4000);
    let mut g = c.benchmark_group("x12");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("split_and_tokenize", |b| {
        b.iter(|| {
            let mut elements = 0usize;
            for item in Splitter::new(data.as_slice()) {
                if let Ok(Item::Set(set)) = item {
                    for seg in set.segments() {
                        elements += seg.elements().count();
                    }
                }
            }
            elements
        })
    });
    g.bench_function("split_tokenize_and_check_envelopes", |b| {
        b.iter(|| {
            let mut checker = Checker::new(Mode::Strict);
            let mut findings = 0usize;
            for item in Splitter::new(data.as_slice()).flatten() {
                findings += checker.check(&item).len();
                checker.take_done();
            }
            findings
        })
    });
    let guide = sluice_x12::guide::by_id("005010X222A1").expect("bundled 837P guide");
    g.bench_function("split_tokenize_and_identify_loops", |b| {
        b.iter(|| {
            let mut placed = 0usize;
            for item in Splitter::new(data.as_slice()).flatten() {
                if let Item::Set(set) = item {
                    let id = sluice_x12::loops::identify(guide, set.segments().collect(), set.closed);
                    placed += id.placements.iter().filter(|p| p.use_.is_some()).count();
                }
            }
            assert!(placed > 0, "the sets are placed in the guide's loops");
            placed
        })
    });
    g.bench_function("split_and_validate_against_the_guide", |b| {
        b.iter(|| {
            let mut checker = Checker::with_guides(Mode::Strict);
            let mut findings = 0usize;
            for item in Splitter::new(data.as_slice()).flatten() {
                findings += checker.check(&item).len();
                checker.take_done();
            }
            findings
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
