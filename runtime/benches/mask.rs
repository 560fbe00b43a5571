//! Criterion benchmarks for what `tokenize` costs next to a keyed hash (`hash`), per value:
//! - `hash`: one HMAC-SHA256 (what the mask stage does for `hash`);
//! - `tokenize, seen`: a value this run already tokenized (the vault's in-memory cache);
//! - `tokenize, in vault`: a value an earlier run tokenized (one indexed SELECT);
//! - `tokenize, new`: a value never seen (random token, AES-256-GCM seal, one committed
//!   INSERT, and the SELECT that reads the winner back);
//! - `tokenize, new, with subject`: the same plus the committed link to its person.
//!
//! On a SQLite state store under the system temp dir. Run:
//! `cargo bench -p sluice-runtime --bench mask`. Measurements only.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sluice_compiler::plan::StateTarget;
use sluice_runtime::keys::KeyRing;
use sluice_runtime::state::Store;
use sluice_runtime::vault::Vault;

const KEY: &[u8] = b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("sluice-bench-mask-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("hash.key");
    std::fs::write(&key_file, "a-bench-key-for-hashing").unwrap();
    let hash_key =
        sluice_runtime::secrets::resolve(&format!("${{file:{}}}", key_file.display()), "bench hash key").unwrap();
    let ring = KeyRing::parse(KEY).unwrap();
    let target = StateTarget {
        kind: "sqlite".into(),
        path: dir.join("state.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 1000,
    };
    let vault = Vault::open(Store::open(&target, None).unwrap(), &hash_key, ring).unwrap();

    c.bench_function("hash", |b| {
        b.iter(|| black_box(sluice_runtime::stages::deidentify::hash(hash_key.expose(), black_box("123-45-6789"))))
    });
    vault.token("123-45-6789", None).unwrap();
    c.bench_function("tokenize, seen", |b| b.iter(|| black_box(vault.token(black_box("123-45-6789"), None).unwrap())));
    // The store the vault reads an earlier run's token from, past its cache.
    let store = Store::open(&target, None).unwrap();
    let mut n = 0u64;
    c.bench_function("tokenize, new", |b| {
        b.iter(|| {
            n += 1;
            black_box(vault.token(&format!("value-{n}"), None).unwrap())
        })
    });
    let mut m = 0u64;
    c.bench_function("tokenize, in vault", |b| {
        b.iter(|| {
            // What the vault does for a value an earlier run tokenized: its lookup, one SELECT.
            m = m % n + 1;
            let lookup = sluice_runtime::vault::lookup(&hash_key, &format!("value-{m}"));
            black_box(store.vault_token(&lookup).unwrap().unwrap())
        })
    });
    let mut k = 0u64;
    c.bench_function("tokenize, new, with subject", |b| {
        b.iter(|| {
            k += 1;
            black_box(vault.token(&format!("other-{k}"), Some("PATIENT-1")).unwrap())
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
