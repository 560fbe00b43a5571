//! The Plaid client (`sluice_runtime::finance::plaid`) against a local API shaped as Plaid
//! documents it (tests/common/plaid.rs): `/transactions/sync` paging with `has_more`, cursor
//! resumption across syncs, added/modified/removed, pending -> posted, a restart of the whole
//! pagination on `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`, 429 and 5xx retried,
//! `ITEM_LOGIN_REQUIRED` and refused keys as clear errors that show no key, token or data.
//! (The `type: plaid` pipeline source is not built yet: these test the client it will run.)

mod common;

use std::collections::BTreeMap;

use common::plaid::{ACCESS_TOKEN, CLIENT_ID, Fault, MERCHANT, SECRET, Server};
use sluice_runtime::finance::api::Counts;
use sluice_runtime::finance::plaid::{ChangeKind, Credentials, Plaid, Synced};
use sluice_runtime::secrets::Secret;

fn credentials(secret: &str, token: &str) -> Credentials {
    Credentials {
        client_id: Secret::from_bytes(CLIENT_ID.as_bytes().to_vec()),
        secret: Secret::from_bytes(secret.as_bytes().to_vec()),
        access_token: Secret::from_bytes(token.as_bytes().to_vec()),
    }
}

/// What a ledger keyed by `transaction_id` holds after applying `synced` in order.
fn apply(ledger: &mut BTreeMap<String, f64>, synced: &Synced) {
    for c in &synced.changes {
        let id = c.id().unwrap().to_string();
        match c.kind {
            ChangeKind::Removed => {
                ledger.remove(&id);
            }
            _ => {
                ledger.insert(id, c.transaction["amount"].as_f64().unwrap());
            }
        }
    }
}

fn server_ledger(server: &Server) -> BTreeMap<String, f64> {
    let s = server.state.lock().unwrap();
    s.transactions.iter().map(|(id, t)| (id.clone(), t["amount"].as_f64().unwrap())).collect()
}

#[test]
fn pages_then_resumes_from_the_cursor_delivering_each_change_once_with_pending_to_posted() {
    let server = Server::start();
    server.add(1100, false);
    let pending = server.add(2, true);
    let creds = credentials(SECRET, ACCESS_TOKEN);
    let mut plaid = Plaid::new(&server.base(), &creds, Some((1000, 1)), "bank");

    let mut counts = Counts::default();
    let accounts = plaid.accounts(&mut counts).unwrap();
    assert_eq!(accounts[0]["balances"]["current"], 110.0);

    let first = plaid.sync(None).unwrap();
    assert_eq!(first.changes.len(), 1102);
    assert!(first.changes.iter().all(|c| c.kind == ChangeKind::Added));
    assert_eq!(first.counts.requests, 3, "pages of 500 while has_more");
    assert_eq!(server.cursors(), vec!["", "c500", "c1000"]);
    // Partial data is kept, with warnings naming the field only.
    assert!(first.warnings.iter().any(|w| w == "a transaction has no `merchant_name`"));
    assert!(first.warnings.iter().any(|w| w == "a transaction has no category"));
    assert!(first.warnings.iter().all(|w| !w.contains(MERCHANT)));
    let mut ledger = BTreeMap::new();
    apply(&mut ledger, &first);

    // Nothing new: one request, no change.
    let again = plaid.sync(Some(&first.next_cursor)).unwrap();
    assert!(again.changes.is_empty());
    assert_eq!(again.next_cursor, first.next_cursor);

    // New, modified, removed, and a pending transaction that posts.
    let new = server.add(3, false);
    server.modify("txn000010");
    server.remove("txn000011");
    let posted = server.post_pending(&pending[0]);
    let second = plaid.sync(Some(&again.next_cursor)).unwrap();
    let kinds: Vec<(ChangeKind, &str)> = second.changes.iter().map(|c| (c.kind, c.id().unwrap())).collect();
    let mut expected: Vec<(ChangeKind, &str)> = new.iter().map(|i| (ChangeKind::Added, i.as_str())).collect();
    expected.push((ChangeKind::Added, posted.as_str()));
    expected.push((ChangeKind::Modified, "txn000010"));
    expected.push((ChangeKind::Removed, "txn000011"));
    expected.push((ChangeKind::Removed, pending[0].as_str()));
    assert_eq!(kinds, expected);
    let replaced = second.changes.iter().find(|c| c.id() == Some(posted.as_str())).unwrap();
    assert_eq!(replaced.replaces.as_deref(), Some(pending[0].as_str()));
    apply(&mut ledger, &second);
    assert_eq!(ledger, server_ledger(&server), "the ledger holds each transaction once, as Plaid has it");
    assert!(!ledger.contains_key(&pending[0]), "the posted transaction replaced the pending one");
}

#[test]
fn a_mutation_during_pagination_restarts_the_loop_from_the_saved_cursor() {
    let server = Server::start();
    server.add(1200, false);
    let creds = credentials(SECRET, ACCESS_TOKEN);
    let mut plaid = Plaid::new(&server.base(), &creds, Some((1000, 1)), "bank");
    let first = plaid.sync(None).unwrap();
    server.add(700, false);
    // The second page of the next pagination is refused once.
    let answered = server.state.lock().unwrap().sync_requests;
    server.inject(Fault::Mutation, 1, answered + 1);
    let second = plaid.sync(Some(&first.next_cursor)).unwrap();
    assert_eq!(second.restarts, 1);
    assert_eq!(second.changes.len(), 700, "what was read before the restart is dropped");
    let c0 = first.next_cursor.clone();
    assert_eq!(server.cursors()[3..], [c0.clone(), "c1700".into(), c0, "c1700".into()]);
    let mut ids: Vec<&str> = second.changes.iter().filter_map(|c| c.id()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 700);

    // A mutation on every page gives up after the restarts with RT158, keeping the cursor.
    server.add(600, false);
    server.inject(Fault::Mutation, 100, 0);
    let e = plaid.sync(Some(&second.next_cursor)).unwrap_err();
    assert_eq!(e.code, "RT158");
    assert!(e.message.contains("TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION"), "{}", e.message);
}

#[test]
fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let server = Server::start();
    server.add(800, false);
    server.inject(Fault::RateLimit, 1, 1);
    server.inject(Fault::ServerError, 1, 1);
    let creds = credentials(SECRET, ACCESS_TOKEN);
    let mut plaid = Plaid::new(&server.base(), &creds, Some((1000, 1)), "bank");
    let synced = plaid.sync(None).unwrap();
    assert_eq!(synced.changes.len(), 800);
    assert_eq!(synced.counts.retries, 2);
    assert_eq!(server.state.lock().unwrap().faults_answered, 2);
}

#[test]
fn login_required_and_refused_keys_are_clear_errors_without_secrets_or_data() {
    let server = Server::start();
    server.add(10, false);
    let creds = credentials(SECRET, ACCESS_TOKEN);
    let mut plaid = Plaid::new(&server.base(), &creds, None, "bank");
    server.inject(Fault::LoginRequired, 1, 0);
    let e = plaid.sync(None).unwrap_err();
    assert_eq!(e.code, "RT159");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("update mode")));
    assert_eq!(server.state.lock().unwrap().sync_requests, 1, "ITEM_LOGIN_REQUIRED is not retried");

    let wrong_secret = credentials("not-the-secret", ACCESS_TOKEN);
    let e = Plaid::new(&server.base(), &wrong_secret, None, "bank").sync(None).unwrap_err();
    assert_eq!(e.code, "RT158");
    assert!(e.message.contains("INVALID_API_KEYS"), "{}", e.message);
    let wrong_token = credentials(SECRET, "access-sandbox-wrong");
    let e2 = Plaid::new(&server.base(), &wrong_token, None, "bank").sync(None).unwrap_err();
    assert!(e2.message.contains("INVALID_ACCESS_TOKEN"), "{}", e2.message);
    for text in [&e.message, e.help.as_deref().unwrap_or(""), &e2.message, e2.help.as_deref().unwrap_or("")] {
        for secret in [SECRET, "not-the-secret", ACCESS_TOKEN, "access-sandbox-wrong", CLIENT_ID, MERCHANT] {
            assert!(!text.contains(secret), "{text}");
        }
        // Plaid's error_message text is not repeated.
        assert!(!text.contains("invalid client_id or secret provided"));
    }
}
