//! The webhook queue of `sluice serve` in both state stores (SQLite, and the PostgreSQL server
//! scripts/test starts): deduplication by event id, also between concurrent deliveries, feed
//! order, marking processed (the body dropped), and sync requests.

use sluice_compiler::plan::StateTarget;
use sluice_runtime::state::Store;
use sluice_runtime::state::webhooks::NewEvent;

mod common;

fn event<'a>(id: &'a str, sync: Option<Option<&'a str>>) -> NewEvent<'a> {
    NewEvent { event_id: id, event_type: "charge.updated", body: r#"{"event":"body"}"#, sync }
}

fn exercise(target: &StateTarget) {
    let store = std::sync::Arc::new(Store::open(target, Some("hooks#webhooks")).unwrap());
    store.prepare_webhooks().unwrap();
    let at = "2026-01-01T00:00:00Z";
    // A delivery of two events, then a redelivery of one of them with a new one.
    assert_eq!(
        store.enqueue_webhook("hooks", "stripe", "stripe", at, &[event("evt_1", None), event("evt_2", None)]).unwrap(),
        2
    );
    assert_eq!(
        store.enqueue_webhook("hooks", "stripe", "stripe", at, &[event("evt_2", None), event("evt_3", None)]).unwrap(),
        1
    );
    // The same id at another source, or another pipeline, is another event.
    assert_eq!(store.enqueue_webhook("hooks", "stripe_connect", "stripe", at, &[event("evt_1", None)]).unwrap(), 1);
    assert_eq!(store.enqueue_webhook("other", "stripe", "stripe", at, &[event("evt_1", None)]).unwrap(), 1);
    // Concurrent deliveries of one new event: one row, however they interleave.
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                store.enqueue_webhook("hooks", "stripe", "stripe", at, &[event("evt_race", None)]).unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let queued = store.queued_webhooks("hooks", 0, 100).unwrap();
    let ids: Vec<i64> = queued.iter().map(|r| r.id).collect();
    assert_eq!(queued.len(), 5, "{queued:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert_eq!(store.webhook_counts("hooks").unwrap(), (5, 0));
    // Paging after a row.
    assert_eq!(store.queued_webhooks("hooks", ids[1], 2).unwrap().len(), 2);
    store.webhooks_processed(&ids[..3], at).unwrap();
    assert_eq!(store.webhook_counts("hooks").unwrap(), (2, 3));
    assert_eq!(store.queued_webhooks("hooks", 0, 100).unwrap().len(), 2);
    // Processed events still deduplicate.
    assert_eq!(store.enqueue_webhook("hooks", "stripe", "stripe", at, &[event("evt_1", None)]).unwrap(), 0);
    // Sync requests: recorded with their event, once.
    let plaid = [event("plaid-1", Some(Some("item-1"))), event("plaid-2", Some(None))];
    assert_eq!(store.enqueue_webhook("hooks", "plaid", "plaid", at, &plaid).unwrap(), 2);
    assert_eq!(store.enqueue_webhook("hooks", "plaid", "plaid", at, &plaid[..1]).unwrap(), 0);
    let requests = store.sync_requests("hooks").unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].account.as_deref(), Some("item-1"));
    assert_eq!(requests[1].account, None);
    assert_eq!(requests[0].status, "pending");
}

#[test]
fn the_queue_in_sqlite() {
    let dir = common::scratch("serve-queue-sqlite");
    exercise(&StateTarget {
        kind: "sqlite".into(),
        path: dir.join("state.db").display().to_string(),
        url: None,
        checkpoint_every_ms: 1000,
    });
}

#[test]
fn the_queue_in_postgresql() {
    let Some(url) = common::pg_database("serve-queue") else { return };
    exercise(&StateTarget { kind: "postgres".into(), path: String::new(), url: Some(url), checkpoint_every_ms: 1000 });
}
