//! The `quickbooks` source end to end: the bundled `pipelines/quickbooks-ledger.yaml`
//! (QuickBooks purchases and deposits to canonical financial transactions) run by the binary
//! against a local QuickBooks Online API (`tests/common/quickbooks.rs`: the v3 query and CDC
//! endpoints, JSON answers, Fault bodies, and the app's OAuth endpoints for `sluice connect`),
//! serving entities made from quickbooks-ruby's recorded API responses.
//!
//! Checked: the connection is authorized with `sluice connect` (which prints the company's
//! `realmId`); a first run pages through the query endpoint (each next page from the newest
//! `LastUpdatedTime` read) with a 429 and a 503 injected mid-pagination, retried; an entity without `Id` goes to the DLQ
//! (RT156) and the run balances; a second run asks CDC only and delivers nothing (overlap
//! deduplicated by Id+SyncToken); changes, a deletion and new entities are delivered once by
//! the next run, the deletion as a `"_deleted": true` line; an access token refused with 401
//! is refreshed once through the token endpoint and the sync goes on; the token never shows in
//! stderr or the audit; a 400 ends the run with RT154 and the next run reads everything; a CDC
//! answer at its 1000-entity maximum is completed through the query endpoint, nothing twice;
//! the bundled `pipelines/quickbooks-accounts.yaml` writes the chart of accounts as canonical
//! financial accounts (exact rows) and an account saved again with its new balance, once;
//! two companies whose entity ids collide, each through its own connection, write one ledger
//! (a `jsonl` file and a PostgreSQL upsert table keyed by `connection, id`) with every row of
//! both, `connection()` and `envelope("quickbooks.realm")` filled, and a DLQ record replayed
//! after a mapping fix keeps its connection and company; journal entries mapped with `- each:
//! Line[*]` give one list item per debit line (exact values, the entry's `DocNumber` read
//! inside the item), an entry without lines an empty list, and the run balances.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::quickbooks::Server;
use common::{json_lines, text, workspace};

const REALM: &str = "4620816365213547";
const CLIENT_ID: &str = "ABqbo-local-client";
const CLIENT_SECRET: &str = "qbo-local-client-secret-9f1e";
const TOKEN_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const PURCHASES: u64 = 250;
const DEPOSITS: u64 = 30;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The API with this test's company: entities updated over the last days (inside CDC's window).
fn start_server(base: i64) -> Server {
    Server::start(REALM, &[("Purchase", PURCHASES), ("Deposit", DEPOSITS)], base)
}

/// The bundled pipeline pointed at the local server (API and OAuth endpoints), in pages of 100.
fn point_at(dir: &Path, server: &Server) {
    point_pipeline_at(dir, "quickbooks-ledger.yaml", server);
}

fn point_pipeline_at(dir: &Path, pipeline: &str, server: &Server) {
    let p = dir.join("pipelines").join(pipeline);
    let spec = std::fs::read_to_string(&p).unwrap();
    let spec = spec
        .replace(
            "    token_key: ${SLUICE_TOKEN_KEY}\n",
            &format!(
                "    token_key: ${{SLUICE_TOKEN_KEY}}\n    authorize_url: {0}/connect/oauth2\n    token_url: {0}/oauth2/v1/tokens/bearer\n    redirect_port: {1}\n",
                server.base(),
                common::free_port()
            ),
        )
        .replace("    lookback: 10m\n", &format!("    lookback: 10m\n    base_url: {}\n    page_size: 100\n", server.base()));
    assert!(spec.contains("page_size: 100") && spec.contains("token_url"), "{spec}");
    std::fs::write(&p, spec).unwrap();
}

fn sluice(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .args(args)
        .env("QBO_CLIENT_ID", CLIENT_ID)
        .env("QBO_CLIENT_SECRET", CLIENT_SECRET)
        .env("SLUICE_TOKEN_KEY", TOKEN_KEY)
        .env("SLUICE_LOG", "debug");
    c
}

/// `sluice connect qbo`, with this test as the browser: it follows the printed URL to the
/// server's authorization endpoint, which redirects back to the callback with a code.
fn connect(dir: &Path) -> Output {
    connect_pipeline(dir, "pipelines/quickbooks-ledger.yaml")
}

fn connect_pipeline(dir: &Path, pipeline: &str) -> Output {
    connect_as(dir, "qbo", pipeline)
}

/// `sluice connect CONNECTION PIPELINE`, with the authorization page opened as a browser would;
/// the command's output.
fn connect_as(dir: &Path, connection: &str, pipeline: &str) -> Output {
    let mut child = sluice(dir, &["connect", connection, pipeline, "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    assert!(url.starts_with("http://127.0.0.1:"), "no URL printed: {url}");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut page = agent.get(url.trim()).call().unwrap();
    let page = page.body_mut().read_to_string().unwrap();
    assert!(page.contains("Sluice is connected"), "{page}");
    child.wait_with_output().unwrap()
}

fn run_ok(dir: &Path, stderrs: &mut Vec<String>) -> serde_json::Value {
    run_pipeline_ok(dir, "pipelines/quickbooks-ledger.yaml", stderrs)
}

fn run_pipeline_ok(dir: &Path, pipeline: &str, stderrs: &mut Vec<String>) -> serde_json::Value {
    let out = sluice(dir, &["run", pipeline, "--summary", "json"]).output().unwrap();
    stderrs.push(text(&out.stderr));
    assert!(out.status.success(), "run failed: {}\n{}", text(&out.stdout), text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(text(&out.stdout).trim()).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(summary["balanced"], true, "{summary}");
    summary
}

fn count(summary: &serde_json::Value, key: &str) -> u64 {
    summary[key].as_u64().unwrap_or_else(|| panic!("no {key} count: {summary}"))
}

#[test]
fn syncs_the_ledger_by_query_then_cdc_with_deletions_through_faults() {
    let base = now() - 3 * 86_400;
    let server = start_server(base);
    let dir = workspace("quickbooks-ledger");
    point_at(&dir, &server);
    let connected = connect(&dir);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    assert!(text(&connected.stderr).contains(&format!("realmId={REALM}")), "{}", text(&connected.stderr));

    // An entity that cannot be a record, and a throttle and a server error after the first page.
    server.add_raw("Purchase", serde_json::json!({"Id": null, "TotalAmt": 5, "TxnDate": "2024-01-01"}), base + 30);
    server.inject(429, 1, 1);
    server.inject(503, 1, 3);
    let mut stderrs = Vec::new();
    let first = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&first, "records_in"), PURCHASES + DEPOSITS + 1, "{first}");
    assert_eq!(count(&first, "delivered"), PURCHASES + DEPOSITS, "{first}");
    assert_eq!(count(&first, "dlq"), 1, "{first}");
    assert_eq!(server.state.lock().unwrap().faults_answered, 2);
    // 251 purchases in pages of 100 (3 pages, two of them retried once) and one page of deposits.
    assert_eq!(server.requests("query"), 3 + 2 + 1, "{:?}", server.state.lock().unwrap().queries);
    assert_eq!(server.requests("cdc"), 0);
    let queries = server.state.lock().unwrap().queries.clone();
    // The pages after the first ask from the newest time read (each re-reads that time's
    // entities and drops them by Id/SyncToken), at position 1.
    let later = queries.iter().filter(|q| q.starts_with("SELECT * FROM Purchase WHERE MetaData.LastUpdatedTime >= "));
    assert_eq!(later.filter(|q| q.ends_with("STARTPOSITION 1 MAXRESULTS 100")).count(), 2, "{queries:?}");

    let ledger = dir.join("out/quickbooks-ledger/transactions.jsonl");
    let rows = json_lines(&ledger);
    assert_eq!(rows.len() as u64, PURCHASES + DEPOSITS);
    assert!(rows.iter().all(|r| r["connection"] == "qbo"), "the source's connection on every row");
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, PURCHASES + DEPOSITS, "each transaction once");
    let purchase = rows.iter().find(|r| r["id"].as_str().unwrap().starts_with("Purchase/")).unwrap();
    assert!(purchase["amount"].as_f64().unwrap() < 0.0, "a purchase is money out: {purchase}");
    assert_eq!((purchase["source"].as_str(), purchase["currency"].as_str()), (Some("quickbooks"), Some("usd")));
    let deposit = rows.iter().find(|r| r["id"].as_str().unwrap().starts_with("Deposit/")).unwrap();
    assert!(deposit["amount"].as_f64().unwrap() > 0.0, "a deposit is money in: {deposit}");
    let dlq = json_lines(&dir.join("out/quickbooks-ledger/dlq.jsonl"));
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].to_string().contains("RT156"), "{}", dlq[0]);

    // Nothing changed: CDC only (one call per entity), nothing delivered.
    let quiet = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&quiet, "delivered"), 0, "{quiet}");
    assert_eq!(server.requests("cdc"), 2);
    assert_eq!(server.requests("query"), 6, "no query once a cursor is within CDC's window");

    // Two purchases saved again, one deleted, three new deposits.
    let at = now() - 60;
    let purchases = server.ids("Purchase");
    server.update("Purchase", purchases[0], at);
    server.update("Purchase", purchases[1], at);
    server.delete("Purchase", purchases[2], at);
    server.add("Deposit", 3, at);
    let more = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&more, "delivered"), 6, "{more}");
    assert_eq!(server.requests("cdc"), 4);
    let rows = json_lines(&ledger);
    assert_eq!(rows.len() as u64, PURCHASES + DEPOSITS + 6);
    let deleted: Vec<&serde_json::Value> = rows.iter().filter(|r| r["_deleted"] == true).collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert_eq!(deleted[0]["id"], format!("Purchase/{}", purchases[2]));
    let updated = rows.iter().filter(|r| r["id"] == format!("Purchase/{}", purchases[0])).count();
    assert_eq!(updated, 2, "the first version, then the one saved again");
    let again = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&again, "delivered"), 0, "{again}");

    // No token in the logs or the audit; no payee name (the fixtures' customers and vendors)
    // in the logs, the audit, the DLQ or the ledger.
    let audit = std::fs::read_to_string(dir.join("out/quickbooks-ledger/audit.jsonl")).unwrap();
    let dlq_text = std::fs::read_to_string(dir.join("out/quickbooks-ledger/dlq.jsonl")).unwrap();
    let ledger_text = std::fs::read_to_string(&ledger).unwrap();
    for s in stderrs.iter().chain([&audit]) {
        assert!(!s.contains("qbo-access-") && !s.contains("qbo-refresh-"), "a token shows");
        assert!(!s.contains(CLIENT_SECRET));
    }
    for s in stderrs.iter().chain([&audit, &dlq_text, &ledger_text]) {
        for name in ["Mr V3 Service Customer", "Norton Lumber", "Brosnahan"] {
            assert!(!s.contains(name), "a payee name shows");
        }
    }
}

#[test]
fn an_access_token_refused_with_401_is_refreshed_once_and_the_sync_goes_on() {
    let base = now() - 86_400;
    let server = start_server(base);
    let dir = workspace("quickbooks-refresh");
    point_at(&dir, &server);
    assert!(connect(&dir).status.success());
    // Intuit revoked the access token before its expiry: the API answers 401.
    server.expire_access_token();
    let mut stderrs = Vec::new();
    let first = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&first, "delivered"), PURCHASES + DEPOSITS, "{first}");
    // Each source (purchases, deposits) may meet the 401 before the other refreshed; the token
    // is refreshed once, and the one that comes second uses the new token.
    let s = server.state.lock().unwrap();
    assert!((1..=2).contains(&s.unauthorized), "{}", s.unauthorized);
    assert_eq!(s.refreshes, 1, "one refresh for both sources");
    drop(s);
    // The next run uses the refreshed token: no 401.
    let again = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&again, "delivered"), 0, "{again}");
    let s = server.state.lock().unwrap();
    assert_eq!(s.refreshes, 1);
    assert!((1..=2).contains(&s.unauthorized));
}

#[test]
fn a_refused_request_fails_the_run_with_rt154_and_the_next_run_reads_everything() {
    let base = now() - 86_400;
    let server = start_server(base);
    let dir = workspace("quickbooks-refused");
    point_at(&dir, &server);
    assert!(connect(&dir).status.success());
    // QuickBooks refuses the deposits' first page (a 400 is not retried).
    server.inject(400, 1, 2);
    let out = sluice(&dir, &["run", "pipelines/quickbooks-ledger.yaml", "--summary", "json"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("RT154") && err.contains("HTTP 400") && err.contains("Fault `SERVICE`"), "{err}");
    assert!(!err.contains("qbo-access-") && !err.contains("application error"), "no token, no Fault text: {err}");
    // Nothing was lost: the next run reads what the failed one had not saved a cursor for.
    let mut stderrs = Vec::new();
    let next = run_ok(&dir, &mut stderrs);
    let rows = json_lines(&dir.join("out/quickbooks-ledger/transactions.jsonl"));
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, PURCHASES + DEPOSITS, "every transaction, after both runs: {next}");
}

#[test]
fn a_full_cdc_answer_is_completed_through_the_query_endpoint() {
    let base = now() - 86_400;
    let server = Server::start(REALM, &[("Purchase", 5), ("Deposit", 1)], base);
    let dir = workspace("quickbooks-cdc-full");
    point_at(&dir, &server);
    assert!(connect(&dir).status.success());
    let mut stderrs = Vec::new();
    assert_eq!(count(&run_ok(&dir, &mut stderrs), "delivered"), 6);
    // More changes than CDC answers at once (1000): the rest come from the query endpoint.
    server.add("Purchase", 1050, now() - 2 * 3600);
    let queries_before = server.requests("query");
    let next = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&next, "delivered"), 1050, "{next}");
    assert_eq!(server.requests("cdc"), 2, "one CDC request per entity");
    // The window again in pages of 100: 11 pages, the last one short.
    assert_eq!(server.requests("query") - queries_before, 11);
    let rows = json_lines(&dir.join("out/quickbooks-ledger/transactions.jsonl"));
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), rows.len(), "nothing twice: CDC's 1000 are skipped by Id and SyncToken");
}

#[test]
fn a_payee_name_mapped_to_an_unmasked_sink_is_refused_by_the_phi_flow_proof() {
    let dir = workspace("quickbooks-payee");
    let m = dir.join("mappings/base/quickbooks-ledger.yaml");
    let mapping = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &m,
        mapping.replace("  category: PaymentType\n", "  category: PaymentType\n  merchant: EntityRef.name\n"),
    )
    .unwrap();
    let out = sluice(&dir, &["check", "pipelines/quickbooks-ledger.yaml"]).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr) + &text(&out.stdout);
    assert!(err.contains("SL601"), "{err}");
}

/// A chart-of-accounts entry as the API writes it (the shape of quickbooks-ruby's
/// accounts.xml in JSON), without the `Id`, `SyncToken` and `MetaData` the server adds.
fn account_body(name: &str, kind: &str, subtype: &str, balance: f64) -> serde_json::Value {
    serde_json::json!({
        "Name": name, "FullyQualifiedName": name, "AccountType": kind, "AccountSubType": subtype,
        "Active": true, "Classification": "Asset", "SubAccount": false,
        "CurrencyRef": {"name": "United States Dollar", "value": "USD"},
        "CurrentBalance": balance, "CurrentBalanceWithSubAccounts": balance,
        "domain": "QBO", "sparse": false,
    })
}

/// A row's account fields, balances compared as numbers.
fn account_fields(row: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for k in ["source", "id", "name", "official_name", "type", "subtype", "balance", "currency", "active", "as_of"] {
        let v = row.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let v = if k == "balance" { v.as_f64().map_or(serde_json::Value::Null, |f| serde_json::json!(f)) } else { v };
        out.insert(k.to_string(), v);
    }
    serde_json::Value::Object(out)
}

#[test]
fn the_accounts_pipeline_writes_the_chart_of_accounts_and_a_new_balance_once() {
    use common::quickbooks::qbo_time;
    let base = now() - 2 * 86_400;
    let server = Server::start(REALM, &[], base);
    server.add_raw("Account", account_body("Checking", "Bank", "Checking", 1201.5), base);
    server.add_raw("Account", account_body("Mastercard", "Credit Card", "CreditCard", 157.72), base + 60);
    let ids = server.ids("Account");
    let dir = workspace("quickbooks-accounts");
    let pipeline = "pipelines/quickbooks-accounts.yaml";
    point_pipeline_at(&dir, "quickbooks-accounts.yaml", &server);
    let connected = connect_pipeline(&dir, pipeline);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    let mut stderrs = Vec::new();
    let first = run_pipeline_ok(&dir, pipeline, &mut stderrs);
    assert_eq!(count(&first, "delivered"), 2, "{first}");
    let row = |id: u64, name: &str, kind: &str, subtype: &str, balance: f64, at: i64| {
        serde_json::json!({
            "source": "quickbooks", "id": id.to_string(), "name": name, "official_name": name,
            "type": kind, "subtype": subtype, "balance": balance, "currency": "usd", "active": true,
            "as_of": qbo_time(at),
        })
    };
    let sink = dir.join("out/quickbooks-accounts/accounts.jsonl");
    let rows = json_lines(&sink);
    assert_eq!(
        rows.iter().map(account_fields).collect::<Vec<_>>(),
        vec![
            row(ids[0], "Checking", "Bank", "Checking", 1201.5, base),
            row(ids[1], "Mastercard", "Credit Card", "CreditCard", 157.72, base + 60),
        ]
    );

    // A payment clears the card: QuickBooks saves the account again (a new SyncToken); the next
    // run (CDC) writes its new balance, once, and nothing else.
    let paid = now() - 60;
    {
        let mut s = server.state.lock().unwrap();
        let card = s.entities.get_mut("Account").unwrap().iter_mut().find(|e| e.id == ids[1]).unwrap();
        card.sync_token += 1;
        card.updated = paid;
        card.body["CurrentBalance"] = serde_json::json!(0.0);
    }
    let second = run_pipeline_ok(&dir, pipeline, &mut stderrs);
    assert_eq!(count(&second, "delivered"), 1, "{second}");
    assert!(server.requests("cdc") >= 1, "the second run asks CDC");
    let rows = json_lines(&sink);
    assert_eq!(rows.len(), 3);
    assert_eq!(account_fields(&rows[2]), row(ids[1], "Mastercard", "Credit Card", "CreditCard", 0.0, paid));
    assert_eq!(count(&run_pipeline_ok(&dir, pipeline, &mut stderrs), "delivered"), 0);
    for s in &stderrs {
        assert!(!s.contains(CLIENT_SECRET) && !s.contains("qbo-access-"), "a secret in stderr");
    }
}

/// The purchases pipeline alone (no deposits source), pointed at `server`, in pages of `page`.
fn purchases_only(dir: &Path, server: &Server, page: u64) {
    point_at(dir, server);
    let p = dir.join("pipelines/quickbooks-ledger.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    let start = spec.find("  deposits:\n").unwrap();
    let end = spec.find("stages:").unwrap();
    let spec = format!("{}{}", &spec[..start], &spec[end..]);
    let start = spec.find("  deposits_to_ledger:\n").unwrap();
    let end = spec.find("sinks:").unwrap();
    let spec = format!("{}{}", &spec[..start], &spec[end..])
        .replace("inputs: [purchases_to_ledger, deposits_to_ledger]", "inputs: [purchases_to_ledger]")
        .replace("page_size: 100", &format!("page_size: {page}"));
    std::fs::write(&p, spec).unwrap();
}

/// What an upsert table keyed by `id` holds after the ledger's lines, in order: id -> amount.
fn folded(rows: &[serde_json::Value]) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for r in rows {
        let id = r["id"].as_str().unwrap().to_string();
        if r["_deleted"] == true {
            out.remove(&id);
        } else {
            out.insert(id, r["amount"].as_f64().unwrap());
        }
    }
    out
}

/// The purchases the server holds now, as ledger ids and amounts (money out: negative).
fn server_purchases(server: &Server) -> std::collections::BTreeMap<String, f64> {
    let s = server.state.lock().unwrap();
    s.entities["Purchase"]
        .iter()
        // Not the ones written without an `Id` (the DLQ's).
        .filter(|e| !e.deleted && !e.body.get("Id").is_some_and(serde_json::Value::is_null))
        .map(|e| (format!("Purchase/{}", e.id), -e.body["TotalAmt"].as_f64().unwrap()))
        .collect()
}

#[test]
fn an_entity_saved_between_two_pages_makes_no_other_entity_skipped() {
    let base = now() - 2 * 86_400;
    let server = Server::start(REALM, &[("Purchase", 7)], base);
    let ids = server.ids("Purchase");
    // Someone saves the first purchase while the sync is between its first and second page:
    // it moves to the end of the order, and by position the third purchase would move onto
    // the first page, already read.
    server.update_before_query(2, "Purchase", ids[0]);
    let dir = workspace("quickbooks-shift");
    purchases_only(&dir, &server, 2);
    let connected = connect(&dir);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    let mut stderrs = Vec::new();
    let first = run_ok(&dir, &mut stderrs);
    let rows = json_lines(&dir.join("out/quickbooks-ledger/transactions.jsonl"));
    let queries = server.state.lock().unwrap().queries.clone();
    // Every purchase, the one saved again in its newest version; none twice in one version.
    assert_eq!(folded(&rows), server_purchases(&server), "{queries:#?}");
    let mut versions: Vec<String> = rows.iter().map(|r| format!("{}={}", r["id"], r["amount"])).collect();
    versions.sort_unstable();
    let n = versions.len();
    versions.dedup();
    assert_eq!(versions.len(), n, "a version delivered twice: {versions:?}");
    assert_eq!(count(&first, "delivered"), 8, "7 purchases and the saved one's new version: {first}");
    // Each next page starts from the last time read, not from a position.
    assert!(queries[1..].iter().all(|q| q.contains("WHERE MetaData.LastUpdatedTime >= ")), "{queries:#?}");
    assert_eq!(count(&run_ok(&dir, &mut stderrs), "delivered"), 0);
}

#[test]
fn more_entities_at_one_time_than_a_page_are_all_read() {
    let base = now() - 2 * 86_400;
    let server = Server::start(REALM, &[("Purchase", 3)], base);
    // Five purchases saved in the same second (a bulk import), between the others.
    {
        let mut s = server.state.lock().unwrap();
        for e in s.entities.get_mut("Purchase").unwrap().iter_mut() {
            e.updated = base + 600;
        }
    }
    server.add("Purchase", 2, base + 1200);
    let more = server.add("Purchase", 2, base);
    {
        let mut s = server.state.lock().unwrap();
        for e in s.entities.get_mut("Purchase").unwrap().iter_mut().filter(|e| more.contains(&e.id)) {
            e.updated = base + 600;
        }
    }
    // And one that cannot be a record (no `Id`), in that second too: the overlapping pages read
    // it more than once, and it reaches the DLQ once.
    server.add_raw("Purchase", serde_json::json!({"Id": null, "TotalAmt": 5, "TxnDate": "2024-01-01"}), base + 600);
    let dir = workspace("quickbooks-same-time");
    purchases_only(&dir, &server, 2);
    let connected = connect(&dir);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    let mut stderrs = Vec::new();
    let first = run_ok(&dir, &mut stderrs);
    assert_eq!((count(&first, "delivered"), count(&first, "dlq")), (7, 1), "{first}");
    let reads = server.state.lock().unwrap().queries.len();
    assert!(reads > 4, "pages overlapped within the second: {reads} queries");
    let rows = json_lines(&dir.join("out/quickbooks-ledger/transactions.jsonl"));
    assert_eq!(rows.len(), 7);
    assert_eq!(folded(&rows), server_purchases(&server));
}

#[test]
fn kill_9_mid_sync_then_a_rerun_loses_and_duplicates_nothing() {
    let base = now() - 2 * 86_400;
    let server = Server::start(REALM, &[("Purchase", 9)], base);
    let ids = server.ids("Purchase");
    let dir = workspace("quickbooks-kill");
    purchases_only(&dir, &server, 2);
    let connected = connect(&dir);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    // The third page is held: the run is killed with two pages handed on (perhaps written),
    // and a purchase of the first page saved again meanwhile.
    server.update_before_query(2, "Purchase", ids[1]);
    server.hold_query(3);
    let mut child = sluice(&dir, &["run", "pipelines/quickbooks-ledger.yaml", "--summary", "json"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.state.lock().unwrap().held == 0 {
        assert!(std::time::Instant::now() < deadline, "the run never asked for its third page");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    server.release();
    let ledger = dir.join("out/quickbooks-ledger/transactions.jsonl");
    let before = if ledger.exists() { json_lines(&ledger).len() } else { 0 };
    assert!(before <= 4, "at most the first two pages were written: {before}");

    // The cursor was not saved: the rerun reads everything again, and a table upserted by id
    // holds every purchase once, in its newest version.
    let mut stderrs = Vec::new();
    let again = run_ok(&dir, &mut stderrs);
    assert_eq!(count(&again, "delivered"), 9, "{again}");
    let rows = json_lines(&ledger);
    assert_eq!(folded(&rows), server_purchases(&server));
    assert_eq!(rows[before..].len(), 9, "each purchase once in the rerun");
    assert_eq!(count(&run_ok(&dir, &mut stderrs), "delivered"), 0);
}

/// A pipeline of two QuickBooks companies (each its own connection, authorized against its
/// own server) into one ledger: a `jsonl` file, and a `postgres` upsert table keyed by the
/// schema's primary key (`connection, id`) when `pg_url` is given.
fn two_companies(dir: &Path, east: &Server, west: &Server, pg_url: Option<&str>) {
    let connection = |name: &str, server: &Server| {
        format!(
            "  {name}:\n    provider: quickbooks\n    client_id: ${{QBO_CLIENT_ID}}\n    client_secret: ${{QBO_CLIENT_SECRET}}\n    token_key: ${{SLUICE_TOKEN_KEY}}\n    authorize_url: {0}/connect/oauth2\n    token_url: {0}/oauth2/v1/tokens/bearer\n    redirect_port: {1}\n",
            server.base(),
            common::free_port()
        )
    };
    let source = |name: &str, realm: &str, server: &Server| {
        format!(
            "  {name}_purchases:\n    type: quickbooks\n    connection: {name}\n    realm_id: \"{realm}\"\n    entities: [Purchase]\n    base_url: {}\n",
            server.base()
        )
    };
    let map = |name: &str| {
        format!(
            "  {name}_ledger:\n    type: map\n    inputs: [{name}_purchases]\n    mapping: ../mappings/base/quickbooks-ledger.yaml\n"
        )
    };
    let mut spec = format!(
        "kind: pipeline\nname: two-companies\nconnections:\n{}{}sources:\n{}{}stages:\n{}{}sinks:\n  ledger:\n    type: jsonl\n    inputs: [east_ledger, west_ledger]\n    path: ../out/two/transactions.jsonl\n",
        connection("east", east),
        connection("west", west),
        source("east", EAST_REALM, east),
        source("west", WEST_REALM, west),
        map("east"),
        map("west"),
    );
    if pg_url.is_some() {
        spec += "  warehouse:\n    type: postgres\n    inputs: [east_ledger, west_ledger]\n    url: ${TWO_COMPANIES_PG_URL}\n    write: upsert\n";
    }
    spec += "dlq:\n  path: ../out/two/dlq.jsonl\n  plaintext_reason: synthetic test data\nstate:\n  path: ../out/two/state.db\n";
    std::fs::write(dir.join("pipelines/two-companies.yaml"), spec).unwrap();
}

const EAST_REALM: &str = "1111111111";
const WEST_REALM: &str = "2222222222";

fn connect_named(dir: &Path, connection: &str, realm: &str) {
    let out = connect_as(dir, connection, "pipelines/two-companies.yaml");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&format!("realmId={realm}")), "{}", text(&out.stderr));
}

/// Each company's purchases as its ledger rows: (connection, id) -> amount.
fn company_rows(server: &Server, connection: &str) -> std::collections::BTreeMap<(String, String), f64> {
    server_purchases(server).into_iter().map(|(id, amount)| ((connection.to_string(), id), amount)).collect()
}

#[test]
fn two_companies_with_the_same_ids_share_one_table_keyed_by_connection() {
    let base = now() - 3 * 86_400;
    let east = Server::start(EAST_REALM, &[("Purchase", 12)], base);
    let west = Server::start(WEST_REALM, &[("Purchase", 12)], base);
    // QuickBooks numbers entities per company: both companies have purchases 101..112. The
    // west company's amounts differ, so a row of one company overwritten by the other's shows.
    assert_eq!(east.ids("Purchase"), west.ids("Purchase"));
    for e in west.state.lock().unwrap().entities.get_mut("Purchase").unwrap() {
        let amount = e.body["TotalAmt"].as_f64().unwrap();
        e.body["TotalAmt"] = serde_json::json!(amount + 1000.0);
    }
    let pg_url = common::pg_database("quickbooks-two-companies");
    let dir = workspace("quickbooks-two-companies");
    two_companies(&dir, &east, &west, pg_url.as_deref());
    // The company's realm, as the sync sets it on each record, in a field of the rows.
    let mapping = dir.join("mappings/base/quickbooks-ledger.yaml");
    let with_realm = std::fs::read_to_string(&mapping)
        .unwrap()
        .replace("  source_object: DocNumber\n", "  source_object: envelope(\"quickbooks.realm\")\n");
    assert!(with_realm.contains("envelope("));
    std::fs::write(&mapping, with_realm).unwrap();
    connect_named(&dir, "east", EAST_REALM);
    connect_named(&dir, "west", WEST_REALM);

    let mut stderrs = Vec::new();
    let run = |stderrs: &mut Vec<String>| {
        let mut c = sluice(&dir, &["run", "pipelines/two-companies.yaml", "--summary", "json"]);
        if let Some(url) = &pg_url {
            c.env("TWO_COMPANIES_PG_URL", url);
        }
        let out = c.output().unwrap();
        stderrs.push(text(&out.stderr));
        assert!(out.status.success(), "run failed: {}\n{}", text(&out.stdout), text(&out.stderr));
        serde_json::from_str::<serde_json::Value>(text(&out.stdout).trim()).unwrap()
    };
    let summary = run(&mut stderrs);
    assert_eq!(summary["balanced"], true, "{summary}");
    assert_eq!(count(&summary, "delivered"), 24, "{summary}");

    let mut want = company_rows(&east, "east");
    want.extend(company_rows(&west, "west"));
    assert_eq!(want.len(), 24, "the same 12 ids in each company, told apart by connection");
    let rows = json_lines(&dir.join("out/two/transactions.jsonl"));
    let got: std::collections::BTreeMap<(String, String), f64> = rows
        .iter()
        .map(|r| {
            let key = (r["connection"].as_str().unwrap().to_string(), r["id"].as_str().unwrap().to_string());
            (key, r["amount"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 24);
    assert_eq!(got, want, "each company's purchases, each once, with its own amounts");
    for r in &rows {
        let realm = if r["connection"] == "east" { EAST_REALM } else { WEST_REALM };
        assert_eq!(r["source_object"], realm, "{r}");
    }

    if let Some(url) = &pg_url {
        // The upsert table (financial_transaction_v2, keyed by connection and id) holds every
        // row of both companies: none overwrote another.
        let table = common::pg_rows(url, "SELECT connection, id, amount::text FROM financial_transaction_v2");
        let in_table: std::collections::BTreeMap<(String, String), f64> = table
            .into_iter()
            .map(|r| ((r[0].clone().unwrap(), r[1].clone().unwrap()), r[2].as_deref().unwrap().parse().unwrap()))
            .collect();
        assert_eq!(in_table, want);
        let key = common::pg_rows(
            url,
            "SELECT string_agg(a.attname, ',' ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'financial_transaction_v2'::regclass AND i.indisprimary",
        );
        assert_eq!(key[0][0].as_deref(), Some("connection,id"));
    }

    // A purchase of the west company the mapping cannot take (no `TxnDate`: the required `date`
    // is empty) goes to the DLQ; replayed after the mapping is fixed, its row still says
    // `west`: `connection()` is the source's, which the DLQ entry names.
    west.add_raw(
        "Purchase",
        serde_json::json!({"AccountRef": {"value": "35"}, "CurrencyRef": {"value": "USD"}, "PaymentType": "Cash", "TotalAmt": 7.25}),
        now() - 60,
    );
    let second = run(&mut stderrs);
    assert_eq!((count(&second, "delivered"), count(&second, "dlq")), (0, 1), "{second}");
    let fixed = std::fs::read_to_string(&mapping)
        .unwrap()
        .replace("  date: TxnDate\n", "  date: coalesce(TxnDate, date(\"20240131\"))\n");
    std::fs::write(&mapping, fixed).unwrap();
    let mut replay = sluice(&dir, &["dlq", "replay", "pipelines/two-companies.yaml", "--summary", "json"]);
    if let Some(url) = &pg_url {
        replay.env("TWO_COMPANIES_PG_URL", url);
    }
    let out = replay.output().unwrap();
    assert!(out.status.success(), "replay failed: {}\n{}", text(&out.stdout), text(&out.stderr));
    let rows = json_lines(&dir.join("out/two/transactions.jsonl"));
    let replayed = rows.last().unwrap();
    assert_eq!(
        (replayed["connection"].as_str(), replayed["date"].as_str()),
        (Some("west"), Some("2024-01-31")),
        "{replayed}"
    );
    assert_eq!(replayed["amount"].as_f64(), Some(-7.25));
    // The realm the record came with, kept (sealed) in the DLQ entry's `envelope`.
    assert_eq!(replayed["source_object"], WEST_REALM, "{replayed}");
}

/// A journal entry's lines, as QuickBooks writes them: `(line id, amount, posting type,
/// account id)`.
fn journal_entry(doc: &str, lines: &[(&str, f64, &str, &str)]) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = lines
        .iter()
        .map(|(id, amount, posting, account)| {
            serde_json::json!({
                "Id": id, "Amount": amount, "DetailType": "JournalEntryLineDetail", "Description": "fee",
                "JournalEntryLineDetail": {
                    "PostingType": posting, "AccountRef": {"value": account, "name": "Bank Charges"},
                },
            })
        })
        .collect();
    serde_json::json!({
        "DocNumber": doc, "TxnDate": "2026-11-02", "Adjustment": false,
        "CurrencyRef": {"value": "CAD", "name": "Canadian Dollar"}, "Line": lines,
        "domain": "QBO", "sparse": false,
    })
}

#[test]
fn journal_entry_lines_are_mapped_one_item_per_line_with_the_entry_readable() {
    let base = now() - 2 * 86_400;
    let server = Server::start(REALM, &[], base);
    server.add_raw(
        "JournalEntry",
        journal_entry("49", &[("0", 125.5, "Debit", "65"), ("1", 125.5, "Credit", "50"), ("2", 6.25, "Debit", "66")]),
        base,
    );
    // An entry without lines: its record is delivered with an empty list.
    server.add_raw("JournalEntry", journal_entry("50", &[]), base + 60);
    let ids = server.ids("JournalEntry");
    let dir = workspace("quickbooks-journal");
    let accounts = std::fs::read_to_string(dir.join("pipelines/quickbooks-accounts.yaml")).unwrap();
    let spec = accounts
        .replace("name: quickbooks-accounts", "name: quickbooks-journal")
        .replace("entities: [Account]", "entities: [JournalEntry]")
        .replace("../mappings/base/quickbooks-accounts.yaml", "../mappings/journal-lines.yaml")
        .replace("quickbooks-accounts/", "quickbooks-journal/");
    std::fs::write(dir.join("pipelines/quickbooks-journal.yaml"), spec).unwrap();
    // Every debit line as `line id:amount:account:entry`, the entry's DocNumber read inside
    // the item; the credit line is left out by `when`.
    std::fs::write(
        dir.join("mappings/journal-lines.yaml"),
        r#"kind: mapping
name: journal-lines
input:
  schema: quickbooks/JournalEntry
output: canonical/financial-transaction@2
fields:
  source: '"quickbooks"'
  connection: connection()
  id: concat("JournalEntry/", Id)
  date: TxnDate
  amount: "0.00"
  currency: lower(CurrencyRef.value)
  pending: "false"
  fee_types:
    - each: Line[*]
      as: line
      when: line.JournalEntryLineDetail.PostingType == "Debit"
      item: concat(line.Id, ":", line.Amount, ":", line.JournalEntryLineDetail.AccountRef.value, ":", DocNumber)
"#,
    )
    .unwrap();
    let pipeline = "pipelines/quickbooks-journal.yaml";
    point_pipeline_at(&dir, "quickbooks-journal.yaml", &server);
    let connected = connect_pipeline(&dir, pipeline);
    assert!(connected.status.success(), "{}", text(&connected.stderr));
    let mut stderrs = Vec::new();
    let summary = run_pipeline_ok(&dir, pipeline, &mut stderrs);
    assert_eq!((count(&summary, "delivered"), count(&summary, "dlq")), (2, 0), "{summary}");
    let rows = json_lines(&dir.join("out/quickbooks-journal/accounts.jsonl"));
    let lines: Vec<(String, serde_json::Value)> =
        rows.iter().map(|r| (r["id"].as_str().unwrap().to_string(), r["fee_types"].clone())).collect();
    assert_eq!(
        lines,
        vec![
            (format!("JournalEntry/{}", ids[0]), serde_json::json!(["0:125.5:65:49", "2:6.25:66:49"])),
            (format!("JournalEntry/{}", ids[1]), serde_json::json!([])),
        ]
    );
}
