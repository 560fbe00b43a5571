//! The webhook queue of `sluice serve` in both state stores (SQLite, and the PostgreSQL server
//! scripts/test starts): deduplication by event id, also between concurrent deliveries, feed
//! order, marking processed (the body dropped), and sync requests; bodies encrypted at rest
//! (no plain text in the SQLite file's bytes or a PostgreSQL row), re-encrypted by a rotation,
//! bound to their row, and a queue written before bodies were sealed migrated.

use sluice_compiler::plan::StateTarget;
use sluice_runtime::keys::KeyRing;
use sluice_runtime::state::Store;
use sluice_runtime::state::webhooks::{BodySeal, NewEvent};

mod common;

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
/// What a queued Stripe customer body holds: it must never be readable at rest.
const NAME: &str = "Ximena Quarterfield";
const EMAIL: &str = "ximena.quarterfield@example.org";

fn keys(text: &str) -> BodySeal {
    BodySeal::Keys { ring: KeyRing::parse(text.as_bytes()).unwrap(), reference: "${TEST_KEY}".into() }
}

fn pii_body(n: usize) -> String {
    format!(
        r#"{{"id":"evt_pii_{n}","type":"customer.updated","data":{{"object":{{"name":"{NAME}","email":"{EMAIL}"}}}}}}"#
    )
}

fn event<'a>(id: &'a str, sync: Option<Option<&'a str>>) -> NewEvent<'a> {
    NewEvent { event_id: id, event_type: "charge.updated", body: r#"{"event":"body"}"#, sync }
}

fn exercise(target: &StateTarget, seal: BodySeal) {
    let shared = std::sync::Arc::new(seal);
    let seal = &*shared;
    let store = std::sync::Arc::new(Store::open(target, Some("hooks#webhooks")).unwrap());
    store.prepare_webhooks().unwrap();
    let at = "2026-01-01T00:00:00Z";
    // A delivery of two events, then a redelivery of one of them with a new one.
    assert_eq!(
        store
            .enqueue_webhook("hooks", "stripe", "stripe", at, seal, &[event("evt_1", None), event("evt_2", None)])
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .enqueue_webhook("hooks", "stripe", "stripe", at, seal, &[event("evt_2", None), event("evt_3", None)])
            .unwrap(),
        1
    );
    // The same id at another source, or another pipeline, is another event.
    assert_eq!(
        store.enqueue_webhook("hooks", "stripe_connect", "stripe", at, seal, &[event("evt_1", None)]).unwrap(),
        1
    );
    assert_eq!(store.enqueue_webhook("other", "stripe", "stripe", at, seal, &[event("evt_1", None)]).unwrap(), 1);
    // Concurrent deliveries of one new event: one row, however they interleave.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (store, seal) = (std::sync::Arc::clone(&store), std::sync::Arc::clone(&shared));
            std::thread::spawn(move || {
                store.enqueue_webhook("hooks", "stripe", "stripe", at, &seal, &[event("evt_race", None)]).unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let queued = store.queued_webhooks("hooks", 0, 100, seal).unwrap();
    let ids: Vec<i64> = queued.iter().map(|r| r.id).collect();
    assert_eq!(queued.len(), 5, "{queued:?}");
    assert!(queued.iter().all(|r| r.body.as_deref() == Some(r#"{"event":"body"}"#)), "{queued:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(store.webhook_counts("hooks").unwrap(), (5, 0));
    // Paging after a row.
    assert_eq!(store.queued_webhooks("hooks", ids[1], 2, seal).unwrap().len(), 2);
    store.webhooks_processed(&ids[..3], at).unwrap();
    assert_eq!(store.webhook_counts("hooks").unwrap(), (2, 3));
    assert_eq!(store.queued_webhooks("hooks", 0, 100, seal).unwrap().len(), 2);
    // Processed events still deduplicate.
    assert_eq!(store.enqueue_webhook("hooks", "stripe", "stripe", at, seal, &[event("evt_1", None)]).unwrap(), 0);
    // Sync requests: recorded with their event, once.
    let plaid = [event("plaid-1", Some(Some("item-1"))), event("plaid-2", Some(None))];
    assert_eq!(store.enqueue_webhook("hooks", "plaid", "plaid", at, seal, &plaid).unwrap(), 2);
    assert_eq!(store.enqueue_webhook("hooks", "plaid", "plaid", at, seal, &plaid[..1]).unwrap(), 0);
    let requests = store.sync_requests("hooks").unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].account.as_deref(), Some("item-1"));
    assert_eq!(requests[1].account, None);
    assert_eq!(requests[0].status, "pending");
}

fn sqlite(dir: &std::path::Path) -> StateTarget {
    StateTarget {
        kind: "sqlite".into(),
        path: dir.join("state.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 1000,
    }
}

#[test]
fn the_queue_in_sqlite() {
    exercise(&sqlite(&common::scratch("serve-queue-sqlite")), keys(KEY_A));
    // A pipeline whose DLQ declares `plaintext_reason` keeps the queue the same way.
    exercise(&sqlite(&common::scratch("serve-queue-sqlite-plain")), BodySeal::Plain);
}

#[test]
fn the_queue_in_postgresql() {
    let Some(url) = common::pg_database("serve-queue") else { return };
    exercise(
        &StateTarget { kind: "postgres".into(), path: String::new(), url: Some(url), checkpoint_every_ms: 1000 },
        keys(KEY_A),
    );
}

/// Every byte of the SQLite store's files (the database, its WAL and journal), read by `cat`:
/// opening and closing them in this process would drop the POSIX locks SQLite holds on them
/// for the open store.
fn sqlite_bytes(dir: &std::path::Path) -> Vec<u8> {
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("state.db"))
        .map(|e| e.path())
        .collect();
    let out = std::process::Command::new("cat").args(&files).output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Queues PII-bearing bodies under key A; `raw` reads what the store holds at rest. Then a
/// rotation (ring `B,A`) re-seals them under B, a ring without B cannot read them (RT031), and
/// processing drops them.
fn sealed_at_rest(target: &StateTarget, raw: &dyn Fn() -> Vec<u8>, raw_keys: &dyn Fn() -> Vec<Option<String>>) {
    let store = Store::open(target, Some("hooks#webhooks")).unwrap();
    store.prepare_webhooks().unwrap();
    let a = keys(KEY_A);
    let bodies: Vec<String> = (0..3).map(pii_body).collect();
    let ids = ["evt_pii_0", "evt_pii_1", "evt_pii_2"];
    let events: Vec<NewEvent<'_>> = ids
        .iter()
        .zip(&bodies)
        .map(|(id, body)| NewEvent { event_id: id, event_type: "customer.updated", body, sync: None })
        .collect();
    assert_eq!(store.enqueue_webhook("hooks", "stripe", "stripe", "t", &a, &events).unwrap(), 3);
    let at_rest = raw();
    assert!(!contains(&at_rest, NAME) && !contains(&at_rest, EMAIL), "a webhook body is readable at rest");
    let id_a = KeyRing::parse(KEY_A.as_bytes()).unwrap().current().id().to_string();
    let id_b = KeyRing::parse(KEY_B.as_bytes()).unwrap().current().id().to_string();
    assert_eq!(raw_keys(), vec![Some(id_a.clone()); 3]);
    let opened: Vec<Option<String>> =
        store.queued_webhooks("hooks", 0, 10, &a).unwrap().into_iter().map(|r| r.body).collect();
    assert_eq!(opened, bodies.iter().cloned().map(Some).collect::<Vec<_>>());

    // Rotation: B first, A after it to read the old rows; then B alone reads them all.
    let rotated = keys(&format!("{KEY_B},{KEY_A}"));
    assert_eq!(store.reseal_webhooks("hooks", &rotated).unwrap(), 3);
    assert_eq!(store.reseal_webhooks("hooks", &rotated).unwrap(), 0, "nothing left under an old key");
    assert_eq!(raw_keys(), vec![Some(id_b.clone()); 3]);
    let at_rest = raw();
    assert!(!contains(&at_rest, NAME) && !contains(&at_rest, EMAIL), "a rotated body is readable at rest");
    let rows = store.queued_webhooks("hooks", 0, 10, &keys(KEY_B)).unwrap();
    assert_eq!(rows.iter().map(|r| r.body.clone()).collect::<Vec<_>>(), opened);
    // The old key alone no longer reads them: RT031, naming the key id, never a key or a body.
    let e = store.queued_webhooks("hooks", 0, 10, &a).unwrap_err();
    assert_eq!(e.code, "RT031");
    assert!(e.message.contains(&id_b) && !e.message.contains(KEY_B) && !e.message.contains(NAME), "{}", e.message);
    // Nor does a pipeline that keeps plain text.
    assert_eq!(store.queued_webhooks("hooks", 0, 10, &BodySeal::Plain).unwrap_err().code, "RT031");
    // Processed: the body and its key id are gone.
    store.webhooks_processed(&[rows[0].id], "t").unwrap();
    assert_eq!(store.queued_webhooks("hooks", 0, 10, &keys(KEY_B)).unwrap().len(), 2);
    assert_eq!(raw_keys().iter().filter(|k| k.is_none()).count(), 1);
}

/// `body_key` of every row, read with Python's sqlite3 (not through Sluice).
fn sqlite_keys(path: &str) -> Vec<Option<String>> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys,json; c=sqlite3.connect(sys.argv[1]); print(json.dumps([r[0] for r in c.execute('SELECT body_key FROM webhook_events ORDER BY id')]))",
            path,
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bodies_are_encrypted_at_rest_in_sqlite_and_rotate() {
    let dir = common::scratch("serve-queue-sealed-sqlite");
    let target = sqlite(&dir);
    sealed_at_rest(&target, &|| sqlite_bytes(&dir), &|| sqlite_keys(&target.path));
}

#[test]
fn bodies_are_encrypted_at_rest_in_postgresql_and_rotate() {
    let Some(url) = common::pg_database("serve-queue-sealed") else { return };
    let target =
        StateTarget { kind: "postgres".into(), path: String::new(), url: Some(url.clone()), checkpoint_every_ms: 1000 };
    let client = std::sync::Mutex::new(postgres::Client::connect(&url, postgres::NoTls).unwrap());
    let rows = || {
        client
            .lock()
            .unwrap()
            .query("SELECT body, body_key FROM webhook_events ORDER BY id", &[])
            .unwrap()
            .into_iter()
            .map(|r| (r.get::<_, Option<String>>(0), r.get::<_, Option<String>>(1)))
            .collect::<Vec<_>>()
    };
    sealed_at_rest(
        &target,
        &|| rows().into_iter().filter_map(|(body, _)| body).collect::<Vec<_>>().join("\n").into_bytes(),
        &|| rows().into_iter().map(|(_, key)| key).collect(),
    );
    // A sealed body copied onto another row does not open there (it is bound to its row): that
    // event reads as unreadable (fed empty, RT043 in the DLQ); the row it came from still opens.
    client
        .lock()
        .unwrap()
        .execute(
            "UPDATE webhook_events SET body = (SELECT body FROM webhook_events WHERE event_id = 'evt_pii_2')
             WHERE event_id = 'evt_pii_1'",
            &[],
        )
        .unwrap();
    let store = Store::open(&target, None).unwrap();
    let queued = store.queued_webhooks("hooks", 0, 10, &keys(KEY_B)).unwrap();
    assert_eq!(queued.iter().map(|r| r.body.is_some()).collect::<Vec<_>>(), [false, true]);
}

/// How an older Sluice created the queue: no `body_key`, bodies in plain text.
const OLD_QUEUE: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("""CREATE TABLE webhook_events (id INTEGER PRIMARY KEY AUTOINCREMENT, pipeline TEXT NOT NULL,
  source TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL, received_at TEXT NOT NULL,
  status TEXT NOT NULL, body TEXT, processed_at TEXT, UNIQUE (pipeline, source, event_id))""")
c.execute("INSERT INTO webhook_events (pipeline, source, event_id, event_type, received_at, status, body) "
          "VALUES ('hooks', 'stripe', 'evt_old', 'customer.updated', 't', 'queued', ?)", (sys.argv[2],))
c.commit()
c.close()
"#;

/// A queue an older Sluice wrote is migrated: the column is added, the queued bodies are
/// sealed, and afterwards no byte of the store's files holds their plain text.
#[test]
fn a_plain_text_queue_is_migrated_and_sealed() {
    let dir = common::scratch("serve-queue-migrate");
    let target = sqlite(&dir);
    drop(Store::open(&target, None).unwrap());
    let status =
        std::process::Command::new("python3").args(["-c", OLD_QUEUE, &target.path, &pii_body(9)]).status().unwrap();
    assert!(status.success());
    assert!(contains(&sqlite_bytes(&dir), EMAIL), "the old queue holds plain text");
    let store = Store::open(&target, Some("hooks#webhooks")).unwrap();
    store.prepare_webhooks().unwrap();
    // Readable as it is (plain text) until sealed.
    let plain = Some(pii_body(9));
    assert_eq!(store.queued_webhooks("hooks", 0, 10, &keys(KEY_A)).unwrap()[0].body, plain);
    assert_eq!(store.reseal_webhooks("hooks", &keys(KEY_A)).unwrap(), 1);
    assert_eq!(store.queued_webhooks("hooks", 0, 10, &keys(KEY_A)).unwrap()[0].body, plain);
    assert_eq!(sqlite_keys(&target.path).len(), 1);
    // At once, while the store is open (its WAL not yet folded back into the file by a close).
    let at_rest = sqlite_bytes(&dir);
    assert!(!contains(&at_rest, NAME) && !contains(&at_rest, EMAIL), "a migrated body is readable at rest");
    drop(store);
}
