//! The Plaid client (`sluice_runtime::finance::plaid`) against a local API shaped as Plaid
//! documents it (tests/common/plaid.rs): `/transactions/sync` paging with `has_more`, cursor
//! resumption across syncs, added/modified/removed, pending -> posted, a restart of the whole
//! pagination on `TRANSACTIONS_SYNC_MUTATION_DURING_PAGINATION`, 429 and 5xx retried,
//! `ITEM_LOGIN_REQUIRED` and refused keys as clear errors that show no key, token or data.
//!
//! Then the `type: plaid` source end to end: the bundled `pipelines/plaid-ledger.yaml` run by
//! the binary against the same server, with exact ledger rows, a rerun that fetches nothing
//! new, modified and removed transactions, pending -> posted, a mutation restart and a 429 in
//! a run, `ITEM_LOGIN_REQUIRED` as a clear run error that keeps the cursor, `kill -9` while
//! Plaid is asked and a rerun, `kill -9` between the sink's write and the cursor's save (the
//! state store's cursor table held locked) and a rerun into a PostgreSQL upsert table, the
//! `accounts` table with an account closed, the bundled `pipelines/plaid-accounts.yaml`
//! (canonical accounts, exact rows, the account number cut to its last four by a mask stage
//! and refused without it), and no secret, access token or account owner's name in the logs,
//! the audit, the DLQ or the plan.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::plaid::{ACCESS_TOKEN, CLIENT_ID, Fault, MERCHANT, SECRET, Server};
use serde_json::{Value, json};
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
    let mut plaid = Plaid::new(&server.base(), &creds, Some((1000, 1)), "bank", None).unwrap();

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
    let mut plaid = Plaid::new(&server.base(), &creds, Some((1000, 1)), "bank", None).unwrap();
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
    let mut plaid = Plaid::new(&server.base(), &creds, Some((1000, 1)), "bank", None).unwrap();
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
    let mut plaid = Plaid::new(&server.base(), &creds, None, "bank", None).unwrap();
    server.inject(Fault::LoginRequired, 1, 0);
    let e = plaid.sync(None).unwrap_err();
    assert_eq!(e.code, "RT159");
    assert!(e.help.as_deref().is_some_and(|h| h.contains("update mode")));
    assert_eq!(server.state.lock().unwrap().sync_requests, 1, "ITEM_LOGIN_REQUIRED is not retried");

    let wrong_secret = credentials("not-the-secret", ACCESS_TOKEN);
    let e = Plaid::new(&server.base(), &wrong_secret, None, "bank", None).unwrap().sync(None).unwrap_err();
    assert_eq!(e.code, "RT158");
    assert!(e.message.contains("INVALID_API_KEYS"), "{}", e.message);
    let wrong_token = credentials(SECRET, "access-sandbox-wrong");
    let e2 = Plaid::new(&server.base(), &wrong_token, None, "bank", None).unwrap().sync(None).unwrap_err();
    assert!(e2.message.contains("INVALID_ACCESS_TOKEN"), "{}", e2.message);
    for text in [&e.message, e.help.as_deref().unwrap_or(""), &e2.message, e2.help.as_deref().unwrap_or("")] {
        for secret in [SECRET, "not-the-secret", ACCESS_TOKEN, "access-sandbox-wrong", CLIENT_ID, MERCHANT] {
            assert!(!text.contains(secret), "{text}");
        }
        // Plaid's error_message text is not repeated.
        assert!(!text.contains("invalid client_id or secret provided"));
    }
}

/// An account owner's name, planted in a transaction: it must show nowhere outside the source.
const OWNER: &str = "Marguerite Okonkwo-Reyes";

/// The bundled pipeline pointed at the local server.
fn point_at(dir: &Path, server: &Server) {
    point_pipeline_at(dir, "plaid-ledger.yaml", server);
}

fn point_pipeline_at(dir: &Path, pipeline: &str, server: &Server) {
    let p = dir.join("pipelines").join(pipeline);
    let spec = std::fs::read_to_string(&p).unwrap();
    let spec = spec.replace("    base_url: sandbox\n", &format!("    base_url: {}\n", server.base()));
    assert!(spec.contains(&server.base()), "{spec}");
    std::fs::write(&p, spec).unwrap();
}

fn sluice(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .args(args)
        .env("PLAID_CLIENT_ID", CLIENT_ID)
        .env("PLAID_SECRET", SECRET)
        .env("PLAID_ACCESS_TOKEN", ACCESS_TOKEN)
        .env("SLUICE_LOG", "debug");
    c
}

fn run_ok(dir: &Path, stderrs: &mut Vec<String>) -> Value {
    run_pipeline_ok(dir, "pipelines/plaid-ledger.yaml", stderrs)
}

fn run_pipeline_ok(dir: &Path, pipeline: &str, stderrs: &mut Vec<String>) -> Value {
    let out = sluice(dir, &["run", pipeline, "--summary", "json"]).output().unwrap();
    stderrs.push(common::text(&out.stderr));
    assert!(out.status.success(), "run failed: {}\n{}", common::text(&out.stdout), common::text(&out.stderr));
    let summary: Value = serde_json::from_str(common::text(&out.stdout).trim())
        .unwrap_or_else(|e| panic!("{e}: {}", common::text(&out.stdout)));
    assert_eq!(summary["balanced"], true, "{summary}");
    summary
}

fn delivered(summary: &Value) -> u64 {
    summary["delivered"].as_u64().unwrap_or_else(|| panic!("no delivered count: {summary}"))
}

/// The ledger row the generator's `n`th transaction must give (tests/common/plaid.rs makes
/// transaction `n` with amount `1.25 n + 0.5`, money out; merchant and category as below).
fn expected_row(n: u64, pending: bool, replaces: Option<&str>) -> Value {
    let merchant = if n % 7 == 3 {
        Value::Null
    } else if n.is_multiple_of(5) {
        json!(MERCHANT)
    } else {
        json!(format!("Merchant {n}"))
    };
    let category = if n % 11 == 4 { Value::Null } else { json!("GENERAL_MERCHANDISE") };
    json!({
        "source": "plaid",
        "account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp",
        "id": format!("txn{n:06}"),
        "date": format!("2024-02-{:02}", 1 + n % 28),
        "amount": -((n as f64) * 1.25 + 0.5),
        "currency": "usd",
        "merchant": merchant,
        "category": category,
        "type": "in store",
        "pending": pending,
        "source_object": replaces,
    })
}

/// A row's business fields (what `expected_row` gives), amounts compared as numbers.
fn business(row: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in [
        "source",
        "account_id",
        "id",
        "date",
        "amount",
        "currency",
        "merchant",
        "category",
        "type",
        "pending",
        "source_object",
    ] {
        let v = row.get(k).cloned().unwrap_or(Value::Null);
        let v = if k == "amount" { v.as_f64().map_or(Value::Null, |f| json!(f)) } else { v };
        out.insert(k.to_string(), v);
    }
    Value::Object(out)
}

/// The ledger a table upserted by id (deleting `_deleted` rows) would hold: id -> amount.
fn folded(rows: &[Value]) -> BTreeMap<String, f64> {
    let mut ledger = BTreeMap::new();
    for r in rows {
        let id = r["id"].as_str().unwrap().to_string();
        if r["_deleted"] == true {
            ledger.remove(&id);
        } else {
            ledger.insert(id, r["amount"].as_f64().unwrap());
        }
    }
    ledger
}

#[test]
fn the_ledger_pipeline_syncs_then_fetches_only_changes_with_removals_pending_to_posted_and_faults() {
    let server = Server::start();
    server.add(5, false);
    let pending = server.add(1, true);
    // The account owner's name where Plaid puts it, and one object that cannot be a record.
    let mut owned = server.state.lock().unwrap().transactions["txn000001"].clone();
    owned["transaction_id"] = json!("owned000001");
    owned["account_owner"] = json!(OWNER);
    owned["name"] = json!(format!("TRANSFER FROM {OWNER}"));
    server.add_raw(owned);
    server
        .add_raw(json!({"account_id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp", "amount": 2.0, "account_owner": OWNER}));
    // Plaid throttles the first request once: retried.
    server.inject(Fault::RateLimit, 1, 0);
    let dir = common::workspace("plaid-ledger");
    point_at(&dir, &server);
    let mut stderrs = Vec::new();

    let first = run_ok(&dir, &mut stderrs);
    assert_eq!(delivered(&first), 7, "{first}");
    assert_eq!(first["dlq"], 1, "{first}");
    assert_eq!(server.state.lock().unwrap().faults_answered, 1);
    let ledger = dir.join("out/plaid-ledger/transactions.jsonl");
    let rows = common::json_lines(&ledger);
    // `connection: connection()`: the pipeline's name of the source's connection.
    assert!(rows.iter().all(|r| r["connection"] == "plaid"), "{rows:?}");
    let mut expected: Vec<Value> = (1..=5).map(|n| expected_row(n, false, None)).collect();
    expected.push(expected_row(6, true, None));
    let mut owned_row = expected_row(1, false, None);
    owned_row["id"] = json!("owned000001");
    expected.insert(6, owned_row);
    assert_eq!(rows.iter().map(business).collect::<Vec<_>>(), expected.iter().map(business).collect::<Vec<_>>());
    let dlq = common::json_lines(&dir.join("out/plaid-ledger/dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].to_string().contains("RT164"), "{}", dlq[0]);

    // Nothing new: one request from the saved cursor, nothing delivered.
    let before = server.cursors().len();
    let quiet = run_ok(&dir, &mut stderrs);
    assert_eq!(delivered(&quiet), 0, "{quiet}");
    let cursors = server.cursors();
    assert_eq!(cursors.len(), before + 1, "{cursors:?}");
    assert_eq!(cursors.last().map(String::as_str), Some("c8"), "the cursor saved after the first run");

    // A modification, a removal, the pending transaction posting, a new one; Plaid says the
    // Item changed during the pagination once: the pagination starts again from the cursor.
    server.modify("txn000002");
    server.remove("txn000003");
    let posted = server.post_pending(&pending[0]);
    server.add(1, false);
    let answered = server.state.lock().unwrap().sync_requests;
    server.inject(Fault::Mutation, 1, answered);
    let more = run_ok(&dir, &mut stderrs);
    // modified, removed, removed pending, added posted, added new.
    assert_eq!(delivered(&more), 5, "{more}");
    assert_eq!(server.state.lock().unwrap().faults_answered, 2, "the mutation was answered");
    assert_eq!(server.cursors()[before + 1..], ["c8".to_string(), "c8".to_string()], "started again from the cursor");
    let rows = common::json_lines(&ledger);
    let fresh = &rows[7..];
    let deleted: Vec<&str> =
        fresh.iter().filter(|r| r["_deleted"] == true).map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(deleted, vec!["txn000003", pending[0].as_str()]);
    let posted_row = fresh.iter().find(|r| r["id"] == posted.as_str()).unwrap();
    assert_eq!(business(posted_row), business(&expected_row(7, false, Some(&pending[0]))));
    let modified = fresh.iter().find(|r| r["id"] == "txn000002").unwrap();
    assert_eq!(modified["amount"].as_f64(), Some(-13.0), "3.0 + 10 out of the account");
    // Applied in order, the lines leave what Plaid has, each transaction once, the posted one
    // in place of the pending one.
    let want: BTreeMap<String, f64> = server
        .state
        .lock()
        .unwrap()
        .transactions
        .iter()
        .map(|(id, t)| (id.clone(), -t["amount"].as_f64().unwrap()))
        .collect();
    assert_eq!(folded(&rows), want);
    assert!(!folded(&rows).contains_key(&pending[0]));
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 0);

    // No secret, token or account owner's name outside the sinks; `sluice plan` shows none.
    let plan = sluice(&dir, &["plan", "pipelines/plaid-ledger.yaml"]).output().unwrap();
    assert!(plan.status.success(), "{}", common::text(&plan.stderr));
    let plan_text = common::text(&plan.stdout) + &common::text(&plan.stderr);
    assert!(plan_text.contains("plaid sync transactions of Items operating"), "{plan_text}");
    let audit = std::fs::read_to_string(dir.join("out/plaid-ledger/audit.jsonl")).unwrap();
    let dlq_text = std::fs::read_to_string(dir.join("out/plaid-ledger/dlq.jsonl")).unwrap();
    let ledger_text = std::fs::read_to_string(&ledger).unwrap();
    for (what, s) in stderrs.iter().map(|s| ("stderr", s)).chain([
        ("audit", &audit),
        ("dlq", &dlq_text),
        ("plan", &plan_text),
        ("ledger", &ledger_text),
    ]) {
        for secret in [SECRET, ACCESS_TOKEN, OWNER] {
            assert!(!s.contains(secret), "{what} shows a secret or the owner's name");
        }
    }
    for s in stderrs.iter().chain([&audit]) {
        assert!(!s.contains(MERCHANT), "a merchant name shows outside the sinks");
    }
    assert!(stderrs.iter().any(|s| s.contains("RT166")), "partial data is warned");
}

#[test]
fn a_dlq_record_of_one_of_two_items_is_replayed_with_its_item() {
    let server = Server::start();
    server.add(2, false);
    // A transaction without its `date`: the mapping cannot give the required `date`.
    let mut undated = server.state.lock().unwrap().transactions["txn000001"].clone();
    undated["transaction_id"] = json!("undated000001");
    undated.as_object_mut().unwrap().remove("date");
    server.add_raw(undated);
    let dir = common::workspace("plaid-two-items");
    point_at(&dir, &server);
    // Two Items (the local server answers both alike), and the Item in each row.
    let pipeline = dir.join("pipelines/plaid-ledger.yaml");
    let one = "      - name: operating\n        access_token: ${PLAID_ACCESS_TOKEN}\n";
    let spec = std::fs::read_to_string(&pipeline).unwrap();
    assert!(spec.contains(one), "{spec}");
    let two = format!("{one}      - name: payroll\n        access_token: ${{PLAID_ACCESS_TOKEN}}\n");
    std::fs::write(&pipeline, spec.replace(one, &two)).unwrap();
    let mapping = dir.join("mappings/base/plaid-ledger.yaml");
    let text = std::fs::read_to_string(&mapping).unwrap();
    let named =
        text.replace("  source_object: pending_transaction_id\n", "  source_object: envelope(\"plaid.item\")\n");
    assert_ne!(named, text);
    std::fs::write(&mapping, named).unwrap();
    let mut stderrs = Vec::new();

    let first = run_ok(&dir, &mut stderrs);
    assert_eq!((delivered(&first), first["dlq"].as_u64()), (4, Some(2)), "{first}");
    // Each entry keeps the record's key and headers (the Item among them), sealed as its
    // message is.
    let dlq = common::json_lines(&dir.join("out/plaid-ledger/dlq.jsonl"));
    assert_eq!(dlq.len(), 2);
    for entry in &dlq {
        let sealed = entry["envelope"].as_str().unwrap_or_else(|| panic!("no sealed envelope: {entry}"));
        assert!(!sealed.contains("payroll") && !sealed.contains("undated"), "{sealed}");
    }

    // Fixed and replayed: each record is given back its Item.
    let fixed = std::fs::read_to_string(&mapping)
        .unwrap()
        .replace("  date: date\n", "  date: coalesce(date, date(\"20240131\"))\n");
    std::fs::write(&mapping, fixed).unwrap();
    let out = sluice(&dir, &["dlq", "replay", "pipelines/plaid-ledger.yaml", "--summary", "json"]).output().unwrap();
    assert!(out.status.success(), "replay failed: {}\n{}", common::text(&out.stdout), common::text(&out.stderr));
    let rows = common::json_lines(&dir.join("out/plaid-ledger/transactions.jsonl"));
    let mut replayed: Vec<(&str, &str, &str)> = rows[4..]
        .iter()
        .map(|r| {
            (r["id"].as_str().unwrap(), r["date"].as_str().unwrap(), r["source_object"].as_str().unwrap_or("null"))
        })
        .collect();
    replayed.sort();
    assert_eq!(
        replayed,
        [("undated000001", "2024-01-31", "operating"), ("undated000001", "2024-01-31", "payroll")],
        "{rows:?}"
    );
    let mut items: Vec<&str> = rows[..4].iter().map(|r| r["source_object"].as_str().unwrap()).collect();
    items.sort();
    assert_eq!(items, ["operating", "operating", "payroll", "payroll"]);
}

#[test]
fn item_login_required_ends_the_run_with_rt159_and_the_next_run_reads_everything() {
    let server = Server::start();
    server.add(4, false);
    server.inject(Fault::LoginRequired, 1, 0);
    let dir = common::workspace("plaid-login");
    point_at(&dir, &server);
    let out = sluice(&dir, &["run", "pipelines/plaid-ledger.yaml", "--summary", "json"]).output().unwrap();
    let err = common::text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("RT159") && err.contains("ITEM_LOGIN_REQUIRED") && err.contains("update mode"), "{err}");
    for secret in [SECRET, ACCESS_TOKEN, "the login details of this item have changed"] {
        assert!(!err.contains(secret), "{err}");
    }
    assert_eq!(server.state.lock().unwrap().sync_requests, 1, "not retried");
    // The cursor was kept: the next run starts from the beginning and gets everything.
    let mut stderrs = Vec::new();
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 4);
    assert_eq!(server.cursors(), vec!["", ""]);
}

#[test]
fn a_spec_with_a_token_in_clear_or_plain_http_elsewhere_is_refused() {
    let server = Server::start();
    let dir = common::workspace("plaid-check");
    point_at(&dir, &server);
    let p = dir.join("pipelines/plaid-ledger.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        spec.replace(&server.base(), "http://bank-proxy.example.com").replace("${PLAID_ACCESS_TOKEN}", ACCESS_TOKEN),
    )
    .unwrap();
    let out = sluice(&dir, &["check", "pipelines/plaid-ledger.yaml"]).output().unwrap();
    let err = common::text(&out.stderr) + &common::text(&out.stdout);
    assert!(!out.status.success());
    assert!(err.contains("SL267") && err.contains("SL205"), "{err}");
}

#[test]
fn the_accounts_table_delivers_balances_and_a_deletion_for_an_account_plaid_no_longer_returns() {
    let server = Server::start();
    let mut savings = server.state.lock().unwrap().accounts[0].clone();
    savings["account_id"] = json!("dVzbVMLjrxTnLjX4G66XUp5GLklm4oiZy88yK");
    savings["name"] = json!("Plaid Saving");
    savings["subtype"] = json!("savings");
    server.state.lock().unwrap().accounts.push(savings);
    let dir = common::workspace("plaid-accounts");
    point_at(&dir, &server);
    // Raw accounts straight to a file the reviewer allowed PII in: the table as Plaid gives it.
    let p = dir.join("pipelines/plaid-ledger.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    let start = spec.find("stages:").unwrap();
    let end = spec.find("dlq:").unwrap();
    let spec = format!(
        "{}sinks:\n  accounts:\n    type: jsonl\n    inputs: [bank]\n    path: ../out/plaid-ledger/accounts.jsonl\n    phi:\n      allowed: true\n      reason: the bank's own account list, kept for reconciliation\n{}",
        &spec[..start],
        &spec[end..]
    )
    .replace("tables: [transactions]", "tables: [accounts]");
    std::fs::write(&p, spec).unwrap();
    let mut stderrs = Vec::new();
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 2);
    let rows = common::json_lines(&dir.join("out/plaid-ledger/accounts.jsonl"));
    assert_eq!(rows[0]["balances"]["current"], 110.0, "{}", rows[0]);
    assert_eq!(rows[1]["name"], "Plaid Saving");

    // The savings account is closed: Plaid no longer returns it.
    server.state.lock().unwrap().accounts.truncate(1);
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 2);
    let rows = common::json_lines(&dir.join("out/plaid-ledger/accounts.jsonl"));
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2]["account_id"], "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp");
    assert_eq!(rows[3]["_deleted"], true, "{}", rows[3]);
    assert_eq!(rows[3]["account_id"], "dVzbVMLjrxTnLjX4G66XUp5GLklm4oiZy88yK");
    assert!(stderrs[1].contains("RT167"), "{}", stderrs[1]);
    // Reported once: the next run knows it is gone.
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 1);
    assert!(!stderrs[2].contains("RT167"));
}

#[test]
fn kill_9_while_plaid_is_asked_then_a_rerun_loses_and_duplicates_nothing() {
    let server = Server::start();
    server.add(5, false);
    let dir = common::workspace("plaid-kill");
    point_at(&dir, &server);
    let mut stderrs = Vec::new();
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 5);
    server.add(3, false);
    server.remove("txn000001");
    // The next run's request is held: the run is killed while it waits for Plaid.
    let answered = server.state.lock().unwrap().sync_requests;
    server.inject(Fault::Hold, 1, answered);
    let mut child = sluice(&dir, &["run", "pipelines/plaid-ledger.yaml", "--summary", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.state.lock().unwrap().held == 0 {
        assert!(std::time::Instant::now() < deadline, "the run never asked Plaid");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    server.release();
    // The cursor was not moved: the rerun gets the 3 new transactions and the removal once.
    let again = run_ok(&dir, &mut stderrs);
    assert_eq!(delivered(&again), 4, "{again}");
    let rows = common::json_lines(&dir.join("out/plaid-ledger/transactions.jsonl"));
    let mut ids: Vec<&str> = rows.iter().filter(|r| r["_deleted"] != true).map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (8, 8), "every transaction once");
    let want: Vec<String> = server.state.lock().unwrap().transactions.keys().cloned().collect();
    assert_eq!(folded(&rows).into_keys().collect::<Vec<_>>(), want);
    assert_eq!(delivered(&run_ok(&dir, &mut stderrs)), 0);
}

/// A business account's number, longer than Plaid's usual mask: only its last four may show.
const LONG_MASK: &str = "98761234";

/// The canonical account row of the local server's checking account (tests/common/plaid.rs).
fn checking_row() -> Value {
    json!({
        "source": "plaid",
        "id": "BxBXxLj1m4HMXBm9WZZmCWVbPjX16EHwv99vp",
        "name": "Plaid Checking",
        "official_name": "Plaid Gold Standard 0% Interest Checking",
        "type": "depository",
        "subtype": "checking",
        "balance": 110.0,
        "available": 100.0,
        "limit": null,
        "currency": "usd",
        "mask": "0000",
        "as_of": null,
    })
}

/// A row's account fields (what `checking_row` gives), amounts compared as numbers.
fn account_fields(row: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in [
        "source",
        "id",
        "name",
        "official_name",
        "type",
        "subtype",
        "balance",
        "available",
        "limit",
        "currency",
        "mask",
        "as_of",
    ] {
        let v = row.get(k).cloned().unwrap_or(Value::Null);
        let v = match (k, v.as_f64()) {
            ("balance" | "available" | "limit", Some(f)) => json!(f),
            _ => v,
        };
        out.insert(k.to_string(), v);
    }
    Value::Object(out)
}

#[test]
fn the_accounts_pipeline_writes_canonical_accounts_with_the_last_four_and_a_deletion_once() {
    let server = Server::start();
    let mut card = server.state.lock().unwrap().accounts[0].clone();
    card["account_id"] = json!("3gE5gnRzNyfXpBK5wEEKcymJ5albGVUqg77gr");
    card["balances"] = json!({"available": 8590.5, "current": 1409.5, "iso_currency_code": "USD", "limit": 10000, "unofficial_currency_code": null, "last_updated_datetime": "2024-01-15T09:30:00Z"});
    card["mask"] = json!(LONG_MASK);
    card["name"] = json!("Plaid Credit Card");
    card["official_name"] = json!("Plaid Diamond 12.5% APR Interest Credit Card");
    card["type"] = json!("credit");
    card["subtype"] = json!("credit card");
    server.state.lock().unwrap().accounts.push(card);
    // An account object without its id cannot be a record: to the DLQ.
    server.state.lock().unwrap().accounts.push(json!({"balances": {"current": 1.0}, "mask": LONG_MASK, "name": "x"}));
    let dir = common::workspace("plaid-canonical-accounts");
    point_pipeline_at(&dir, "plaid-accounts.yaml", &server);
    let pipeline = "pipelines/plaid-accounts.yaml";
    let mut stderrs = Vec::new();
    let first = run_pipeline_ok(&dir, pipeline, &mut stderrs);
    assert_eq!((delivered(&first), first["dlq"].as_u64()), (2, Some(1)), "{first}");
    let sink = dir.join("out/plaid-accounts/accounts.jsonl");
    let rows = common::json_lines(&sink);
    assert!(rows.iter().all(|r| r["connection"] == "plaid"), "{rows:?}");
    let card_row = json!({
        "source": "plaid",
        "id": "3gE5gnRzNyfXpBK5wEEKcymJ5albGVUqg77gr",
        "name": "Plaid Credit Card",
        "official_name": "Plaid Diamond 12.5% APR Interest Credit Card",
        "type": "credit",
        "subtype": "credit card",
        "balance": 1409.5,
        "available": 8590.5,
        "limit": 10000.0,
        "currency": "usd",
        "mask": "****1234",
        "as_of": "2024-01-15T09:30:00Z",
    });
    assert_eq!(rows.iter().map(account_fields).collect::<Vec<_>>(), vec![checking_row(), card_row]);
    assert!(rows.iter().all(|r| r["compliance"]["pii_masked"] == true), "{rows:?}");
    let dlq = common::json_lines(&dir.join("out/plaid-accounts/dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].to_string().contains("RT164"), "{}", dlq[0]);

    // The card is closed: the next run writes the checking account again and the card's
    // deletion, once; the balance written is the new one.
    {
        let mut s = server.state.lock().unwrap();
        s.accounts.truncate(1);
        s.accounts[0]["balances"]["current"] = json!(95.25);
    }
    let second = run_pipeline_ok(&dir, pipeline, &mut stderrs);
    assert_eq!(delivered(&second), 2, "{second}");
    let rows = common::json_lines(&sink);
    assert_eq!(rows.len(), 4);
    let mut checking = checking_row();
    checking["balance"] = json!(95.25);
    assert_eq!(account_fields(&rows[2]), checking);
    assert_eq!(
        (rows[3]["_deleted"].as_bool(), rows[3]["id"].as_str()),
        (Some(true), Some("3gE5gnRzNyfXpBK5wEEKcymJ5albGVUqg77gr"))
    );
    assert!(stderrs[1].contains("RT167"), "{}", stderrs[1]);
    assert_eq!(delivered(&run_pipeline_ok(&dir, pipeline, &mut stderrs)), 1);

    // The full account number shows nowhere, not even in the sink; no secret outside it.
    let plan = sluice(&dir, &["plan", pipeline]).output().unwrap();
    assert!(plan.status.success(), "{}", common::text(&plan.stderr));
    let plan_text = common::text(&plan.stdout) + &common::text(&plan.stderr);
    let audit = std::fs::read_to_string(dir.join("out/plaid-accounts/audit.jsonl")).unwrap();
    let dlq_text = std::fs::read_to_string(dir.join("out/plaid-accounts/dlq.jsonl")).unwrap();
    let sink_text = std::fs::read_to_string(&sink).unwrap();
    for (what, s) in stderrs.iter().map(|s| ("stderr", s)).chain([
        ("audit", &audit),
        ("dlq", &dlq_text),
        ("plan", &plan_text),
        ("sink", &sink_text),
    ]) {
        for secret in [SECRET, ACCESS_TOKEN, LONG_MASK] {
            assert!(!s.contains(secret), "{what} shows a secret or an account number");
        }
    }

    // Without the mask stage, the PHI-flow proof refuses the pipeline: `mask` is an account
    // number.
    let p = dir.join(pipeline);
    let spec = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, spec.replace("inputs: [last_four]", "inputs: [to_accounts]")).unwrap();
    let check = sluice(&dir, &["check", pipeline]).output().unwrap();
    let err = common::text(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(err.contains("SL601") && err.contains("account_number"), "{err}");
}

/// The ledger pipeline writing into PostgreSQL: an upsert table keyed by `id` (removals delete
/// their row) and the state store, both in database `url` (`${PLAID_TEST_PG_URL}`).
fn to_postgres(dir: &Path) {
    let p = dir.join("pipelines/plaid-ledger.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    let spec = spec
        .replace(
            "    type: jsonl\n    inputs: [to_ledger]\n    path: ../out/plaid-ledger/transactions.jsonl\n",
            "    type: postgres\n    inputs: [to_ledger]\n    url: ${PLAID_TEST_PG_URL}\n    table: plaid_ledger\n    write: upsert\n    key: [id]\n",
        )
        .replace("  path: ../out/plaid-ledger/state.db\n", "  url: ${PLAID_TEST_PG_URL}\n");
    assert!(spec.contains("table: plaid_ledger") && spec.contains("state:\n  url:"), "{spec}");
    std::fs::write(&p, spec).unwrap();
}

/// The saved `/transactions/sync` cursor of the pipeline's Item.
fn saved_cursor(client: &mut impl postgres::GenericClient) -> String {
    let row =
        client.query_one("SELECT state FROM fhir_cursors WHERE tbl = 'plaid:operating:transactions'", &[]).unwrap();
    row.get(0)
}

#[test]
fn kill_9_between_the_sink_write_and_the_cursor_save_then_a_rerun_loses_and_duplicates_nothing() {
    let Some(url) = common::pg_database("plaid-kill-save") else { return };
    let server = Server::start();
    server.add(5, false);
    let dir = common::workspace("plaid-kill-save");
    point_at(&dir, &server);
    to_postgres(&dir);
    let run = |stderrs: &mut Vec<String>| {
        let out = sluice(&dir, &["run", "pipelines/plaid-ledger.yaml", "--summary", "json"])
            .env("PLAID_TEST_PG_URL", &url)
            .output()
            .unwrap();
        stderrs.push(common::text(&out.stderr));
        assert!(out.status.success(), "{}", common::text(&out.stderr));
        let summary: Value = serde_json::from_str(common::text(&out.stdout).trim()).unwrap();
        assert_eq!(summary["balanced"], true, "{summary}");
        summary
    };
    let ledger = |url: &str| -> BTreeMap<String, (f64, u64)> {
        common::pg_rows(url, "SELECT id, amount::text, count(*) OVER (PARTITION BY id) FROM plaid_ledger")
            .into_iter()
            .map(|r| {
                let n = |i: usize| r[i].clone().unwrap();
                (n(0), (n(1).parse().unwrap(), n(2).parse().unwrap()))
            })
            .collect()
    };
    let mut stderrs = Vec::new();
    assert_eq!(delivered(&run(&mut stderrs)), 5);
    let mut pg = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let before = saved_cursor(&mut pg);

    // Changes: three new transactions, one modified, one removed.
    server.add(3, false);
    server.modify("txn000002");
    server.remove("txn000001");
    let want: BTreeMap<String, (f64, u64)> = server
        .state
        .lock()
        .unwrap()
        .transactions
        .iter()
        .map(|(id, t)| (id.clone(), (-t["amount"].as_f64().unwrap(), 1)))
        .collect();
    // The test holds the cursor table: the run reads its cursor (reads are not blocked), writes
    // the changes to the sink, and then waits to save the new cursor; it is killed there.
    let mut holder = pg.transaction().unwrap();
    holder.batch_execute("LOCK TABLE fhir_cursors IN EXCLUSIVE MODE").unwrap();
    let mut child = sluice(&dir, &["run", "pipelines/plaid-ledger.yaml", "--summary", "json"])
        .env("PLAID_TEST_PG_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waiting_to_save = |url: &str| {
        common::pg_rows(
            url,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'fhir_cursors' AND NOT l.granted",
        )[0][0]
            .as_deref()
            != Some("0")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !(waiting_to_save(&url) && ledger(&url) == want) {
        assert!(child.try_wait().unwrap().is_none(), "the run ended although its cursor could not be saved");
        assert!(std::time::Instant::now() < deadline, "the run never wrote the changes and waited to save its cursor");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    // Killed with every change in the sink and the old cursor saved.
    assert_eq!(saved_cursor(&mut holder), before, "the cursor was not moved");
    holder.rollback().unwrap();
    assert_eq!(ledger(&url), want);

    // The rerun reads the same changes again from the old cursor: the upsert table ends up
    // with each transaction once, the removed one gone; then nothing is left to read.
    let asked = server.cursors().len();
    let again = run(&mut stderrs);
    assert_eq!(delivered(&again), 5, "3 added, 1 modified, 1 removed, read again: {again}");
    assert_eq!(server.cursors()[asked..].first(), Some(&serde_json::from_str::<String>(&before).unwrap()));
    assert_eq!(ledger(&url), want, "every transaction once, none lost, the removed one gone");
    assert_ne!(saved_cursor(&mut pg), before, "the rerun saved the new cursor");
    assert_eq!(delivered(&run(&mut stderrs)), 0);
    for s in &stderrs {
        assert!(!s.contains(SECRET) && !s.contains(ACCESS_TOKEN) && !s.contains(MERCHANT), "{s}");
    }
}
