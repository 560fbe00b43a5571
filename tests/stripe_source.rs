//! The `stripe` source end to end: the bundled `pipelines/stripe-ledger.yaml` (Stripe balance
//! transactions to canonical financial transactions) run by the binary against a local Stripe
//! API (`tests/servers/stripe/server.py`: Stripe's list endpoints and error shapes, objects made
//! from Stripe's published example objects, with synthetic customers).
//!
//! Checked: a first run pages through 250 balance transactions and balances (in = out + DLQ,
//! objects that cannot be records in the DLQ with RT152), amounts converted from minor units
//! with the currency's exponent (USD cents, JPY none); 429 and 503 injected mid-pagination are
//! retried; a second run delivers nothing; new objects and a late arrival inside the lookback
//! window are delivered once by the next run; `kill -9` in the middle of a sync and a rerun
//! leave every transaction exactly once in a PostgreSQL upsert sink; a charges pipeline with
//! masked customer e-mails leaks no customer name, e-mail or card digits into stderr (debug
//! logs), the audit, the state store or the DLQ file; and the PHI-flow proof refuses the same
//! pipeline without its mask stage (SL601). Two pipelines reading one account with the same key
//! (their connections named differently), run at once on one state store, share the account's
//! request budget there: together they keep the source's rate; on two stores each keeps its own.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::stripe::Server;
use common::{json_lines, pg_database, pg_rows, text, workspace};

const KEY: &str = "sk_test_51LocalOnlyKey0000000000sRcE";
const COUNT: i64 = 250;
const BASE_CREATED: i64 = 1_700_000_000;
const FAMILIES: [&str; 5] = ["Quimby", "Vantongeren", "Okonkwo-Birch", "Haldorsen", "Marchetti"];

/// The local Stripe API with this test's key and objects.
fn start_server() -> Server {
    Server::start(KEY, COUNT as u64, BASE_CREATED, &[])
}

/// Requests the server answered on `/v1/<list>`.
fn requests(server: &Server, list: &str) -> u64 {
    server.control("/_stats")["requests"][format!("/v1/{list}")].as_u64().unwrap_or(0)
}

/// The bundled pipeline pointed at the local server, at a rate a test can wait for.
fn point_at(dir: &Path, pipeline: &str, server: &Server) {
    let p = dir.join("pipelines").join(pipeline);
    let spec = std::fs::read_to_string(&p).unwrap();
    let spec = spec.replace(
        "    lookback: 1h\n",
        &format!("    lookback: 1h\n    base_url: http://127.0.0.1:{}\n    rate: 200/s\n", server.port),
    );
    std::fs::write(&p, spec).unwrap();
}

fn sluice(dir: &Path, pipeline: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .args(["run", &format!("pipelines/{pipeline}"), "--summary", "json"])
        .env("STRIPE_SECRET_KEY", KEY)
        .env("STRIPE_TEST_MASK_KEY", "stripe-source-test-mask-key")
        .env("SLUICE_LOG", "debug");
    c
}

fn run_ok(dir: &Path, pipeline: &str, stderrs: &mut Vec<String>) -> serde_json::Value {
    let out: Output = sluice(dir, pipeline).output().unwrap();
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
fn syncs_the_ledger_incrementally_through_faults_with_bad_objects_in_the_dlq() {
    let server = start_server();
    let dir = workspace("stripe-ledger");
    point_at(&dir, "stripe-ledger.yaml", &server);
    // Two objects that cannot be records, and faults after the first page.
    server.control(&format!("/_bad?object=balance_transactions&kind=float_amount&created={}", BASE_CREATED + 30));
    server.control(&format!("/_bad?object=balance_transactions&kind=wrong_object&created={}", BASE_CREATED + 90));
    server.control("/_inject?status=429&count=1&retry_after=1&after=1");
    let mut stderrs = Vec::new();
    let first = run_ok(&dir, "stripe-ledger.yaml", &mut stderrs);
    assert_eq!(count(&first, "records_in"), COUNT as u64 + 2, "{first}");
    assert_eq!(count(&first, "delivered"), COUNT as u64, "{first}");
    assert_eq!(count(&first, "dlq"), 2, "{first}");
    let stats = server.control("/_stats");
    assert_eq!(stats["injected"], 1, "{stats}");
    assert_eq!(requests(&server, "balance_transactions"), 4, "3 pages of 100, one of them twice: {stats}");

    let ledger = dir.join("out/stripe-ledger/transactions.jsonl");
    let rows = json_lines(&ledger);
    assert_eq!(rows.len(), COUNT as usize);
    // `connection: connection()`: the pipeline's name of the Stripe account's connection.
    assert!(rows.iter().all(|r| r["connection"] == "stripe_us"), "{rows:?}");
    let mut ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), COUNT as usize, "each transaction once");
    let by_id = |n: u64| rows.iter().find(|r| r["id"] == format!("txn_{n:014}")).unwrap_or_else(|| panic!("txn {n}"));
    // Serial 1: 101 cents, USD; serial 5: 105 yen (no minor unit); serial 7: pending.
    let usd = by_id(1);
    assert_eq!((usd["amount"].to_string().as_str(), usd["currency"].as_str()), ("1.01", Some("usd")), "{usd}");
    // Decimals are written as computed (`1.00`, not `1`): read the line's text.
    let usd_line = std::fs::read_to_string(&ledger).unwrap();
    let usd_line = usd_line.lines().find(|l| l.contains("\"txn_00000000000001\"")).unwrap();
    assert!(usd_line.contains("\"fee\":0.01") && usd_line.contains("\"net\":1.00"), "{usd_line}");
    assert_eq!(usd["fee_types"], serde_json::json!(["stripe_fee"]), "{usd}");
    assert_eq!((usd["date"].as_str(), usd["source"].as_str()), (Some("2023-11-14"), Some("stripe")), "{usd}");
    assert_eq!((usd["category"].as_str(), usd["pending"].as_bool()), (Some("charge"), Some(false)));
    let yen = by_id(5);
    assert_eq!((yen["amount"].to_string().as_str(), yen["currency"].as_str()), ("105", Some("jpy")), "{yen}");
    assert_eq!(by_id(7)["pending"], true);

    let dlq: Vec<serde_json::Value> = json_lines(&dir.join("out/stripe-ledger/dlq.jsonl"));
    assert_eq!(dlq.len(), 2);
    for e in &dlq {
        let line = e.to_string();
        assert!(line.contains("RT152"), "{line}");
        assert!(!line.contains("customers.example"), "an e-mail in a DLQ entry's clear text: {line}");
    }

    // Nothing new: nothing delivered; the cursor asked only from the lookback window.
    let quiet = run_ok(&dir, "stripe-ledger.yaml", &mut stderrs);
    assert_eq!(count(&quiet, "delivered"), 0, "{quiet}");

    // Three new transactions and one that shows up late, inside the lookback window.
    let newest = BASE_CREATED + (COUNT - 1) * 60;
    server.control(&format!("/_add?object=balance_transactions&count=3&created={}", newest + 120));
    server.control(&format!("/_add?object=balance_transactions&count=1&created={}", newest - 600));
    let before = requests(&server, "balance_transactions");
    let more = run_ok(&dir, "stripe-ledger.yaml", &mut stderrs);
    assert_eq!(count(&more, "delivered"), 4, "{more}");
    assert_eq!(requests(&server, "balance_transactions") - before, 1, "one page: only the window is asked for");
    assert_eq!(json_lines(&ledger).len(), COUNT as usize + 4);
    let again = run_ok(&dir, "stripe-ledger.yaml", &mut stderrs);
    assert_eq!(count(&again, "delivered"), 0, "{again}");

    // The key never shows.
    for s in &stderrs {
        assert!(!s.contains(KEY), "the key leaked: {s}");
    }
}

#[test]
fn five_hundreds_mid_pagination_are_retried_and_a_refused_key_is_not_shown() {
    let server = start_server();
    let dir = workspace("stripe-5xx");
    point_at(&dir, "stripe-ledger.yaml", &server);
    server.control("/_inject?status=503&count=2&after=2");
    let mut stderrs = Vec::new();
    let run = run_ok(&dir, "stripe-ledger.yaml", &mut stderrs);
    assert_eq!(count(&run, "delivered"), COUNT as u64, "{run}");
    assert_eq!(server.control("/_stats")["injected"], 2);
    assert_eq!(requests(&server, "balance_transactions"), 5);

    let wrong = "sk_test_51WrongKey000000000000000zZz9";
    let out = sluice(&dir, "stripe-ledger.yaml").env("STRIPE_SECRET_KEY", wrong).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("RT038") && err.contains("401"), "{err}");
    assert!(!err.contains(wrong) && !err.contains("zZz9"), "{err}");
}

/// The ledger written to PostgreSQL, upserted by transaction id.
fn to_postgres(dir: &Path) {
    let p = dir.join("pipelines/stripe-ledger.yaml");
    let spec = std::fs::read_to_string(&p).unwrap();
    let spec = spec.replace(
        "    type: jsonl\n    inputs: [to_ledger]\n    path: ../out/stripe-ledger/transactions.jsonl\n",
        "    type: postgres\n    inputs: [to_ledger]\n    url: ${SLUICE_SINK_URL}\n    table: stripe_ledger\n    write: upsert\n    key: [id]\n",
    );
    std::fs::write(&p, spec).unwrap();
}

#[test]
fn kill_9_mid_sync_then_a_rerun_loses_and_duplicates_nothing() {
    let Some(url) = pg_database("stripe-source") else { return };
    let server = start_server();
    let dir = workspace("stripe-kill");
    point_at(&dir, "stripe-ledger.yaml", &server);
    to_postgres(&dir);
    // The second page answers slowly: the run is killed while it waits for it, with the first
    // page handed on (and perhaps committed).
    server.control("/_slow?ms=5000&count=1&after=1");
    let mut child = sluice(&dir, "stripe-ledger.yaml")
        .env("SLUICE_SINK_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while requests(&server, "balance_transactions") < 2 {
        assert!(Instant::now() < deadline, "the run never asked for its second page");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
    let _ = child.wait();
    let rows = |url: &str| pg_rows(url, "SELECT id, count(*) FROM stripe_ledger GROUP BY id");
    let before = rows(&url).len();
    assert!(before <= 100, "at most the first page was written before the kill: {before}");
    eprintln!("rows in the sink when the run was killed: {before}");

    let mut stderrs = Vec::new();
    let out = sluice(&dir, "stripe-ledger.yaml").env("SLUICE_SINK_URL", &url).output().unwrap();
    stderrs.push(text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(count(&summary, "delivered"), COUNT as u64, "the cursor was not saved: all again: {summary}");
    let after = rows(&url);
    assert_eq!(after.len(), COUNT as usize, "every transaction");
    assert!(after.iter().all(|r| r[1].as_deref() == Some("1")), "none twice");
    let all = pg_rows(&url, "SELECT count(*) FROM stripe_ledger");
    assert_eq!(all[0][0].as_deref(), Some(COUNT.to_string().as_str()));
    let quiet = sluice(&dir, "stripe-ledger.yaml").env("SLUICE_SINK_URL", &url).output().unwrap();
    let quiet: serde_json::Value = serde_json::from_str(text(&quiet.stdout).trim()).unwrap();
    assert_eq!(count(&quiet, "delivered"), 0, "{quiet}");
}

/// A charges pipeline: the payer's e-mail as `merchant`, hashed by a mask stage (or not, when
/// `masked` is false).
fn write_charges_pipeline(dir: &Path, server: &Server, masked: bool) {
    std::fs::write(
        dir.join("charges.yaml"),
        "kind: mapping\nname: charges\ninput:\n  schema: stripe/charge\noutput: canonical/financial-transaction@1\nfields:\n  source: '\"stripe\"'\n  id: id\n  date: unix_date(created)\n  amount: minor_units(amount, currency)\n  currency: currency\n  pending: status == \"pending\"\n  merchant: billing_details.email\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("charges-policy.yaml"),
        "kind: masking\nname: charges\nhash_key: ${STRIPE_TEST_MASK_KEY}\nclasses:\n  email: hash\n",
    )
    .unwrap();
    let (stage, input) = if masked {
        ("  mask:\n    type: mask\n    inputs: [to_charges]\n    policy: ../charges-policy.yaml\n", "mask")
    } else {
        ("", "to_charges")
    };
    let spec = format!(
        "kind: pipeline\nname: stripe-charges\nconnections:\n  stripe_us:\n    provider: stripe\n    auth: api_key\n    api_key: ${{STRIPE_SECRET_KEY}}\nsources:\n  stripe:\n    type: stripe\n    connection: stripe_us\n    objects: charges\n    base_url: http://127.0.0.1:{}\n    rate: 200/s\nstages:\n  to_charges:\n    type: map\n    inputs: [stripe]\n    mapping: ../charges.yaml\n{stage}sinks:\n  charges:\n    type: jsonl\n    inputs: [{input}]\n    path: ../out/charges/charges.jsonl\ndlq:\n  path: ../out/charges/dlq.jsonl\n  encryption_key: ${{file:../examples/dlq-example.key}}\naudit:\n  path: ../out/charges/audit.jsonl\nstate:\n  path: ../out/charges/state.db\n",
        server.port
    );
    std::fs::write(dir.join("pipelines/stripe-charges.yaml"), spec).unwrap();
}

#[test]
fn no_customer_data_outside_the_sink_and_the_proof_refuses_an_unmasked_email() {
    let server = start_server();
    let dir = workspace("stripe-pii");
    write_charges_pipeline(&dir, &server, true);
    server.control(&format!("/_bad?object=charges&kind=no_id&created={}", BASE_CREATED + 45));
    let mut stderrs = Vec::new();
    let run = run_ok(&dir, "stripe-charges.yaml", &mut stderrs);
    assert_eq!((count(&run, "delivered"), count(&run, "dlq")), (COUNT as u64, 1), "{run}");
    let charges = json_lines(&dir.join("out/charges/charges.jsonl"));
    assert_eq!(charges.len(), COUNT as usize);
    assert!(charges.iter().all(|c| !c["merchant"].as_str().unwrap_or_default().contains('@')), "hashed");
    // The DLQ keeps the bad charge, encrypted: its customer data is there, but only decrypted.
    let raws = common::dlq_raws(&dir.join("out/charges/dlq.jsonl"));
    assert_eq!(raws.len(), 1);
    assert!(raws[0].contains("customers.example"), "the DLQ keeps the object as received");

    let mut outputs = stderrs.join("\n").into_bytes();
    for f in ["audit.jsonl", "state.db", "dlq.jsonl"] {
        outputs.extend(std::fs::read(dir.join("out/charges").join(f)).unwrap());
    }
    outputs.extend(text(&sluice_plan(&dir, "stripe-charges.yaml").stdout).into_bytes());
    let outputs = String::from_utf8_lossy(&outputs);
    for family in FAMILIES {
        assert!(!outputs.contains(family), "{family} leaked");
    }
    assert!(!outputs.contains("customers.example"), "an e-mail leaked");
    assert!(!outputs.contains("Elm Street"), "an address leaked");
    assert!(!outputs.contains(KEY));
    assert!(!outputs.contains("AOB934RVNwzk6xtn"), "a card fingerprint leaked");

    // Without the mask stage, the PHI-flow proof refuses the pipeline before anything runs.
    write_charges_pipeline(&dir, &server, false);
    let check = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&*dir)
        .args(["check", "pipelines/stripe-charges.yaml"])
        .output()
        .unwrap();
    let err = text(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{err}");
    assert!(err.contains("SL601") && err.contains("`merchant` carries PHI class `email`"), "{err}");
    let before = requests(&server, "charges");
    let refused = sluice(&dir, "stripe-charges.yaml").output().unwrap();
    assert!(!refused.status.success());
    assert_eq!(requests(&server, "charges"), before, "nothing was read");
}

fn sluice_plan(dir: &Path, pipeline: &str) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(["plan", &format!("pipelines/{pipeline}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("stripe sync charges (charge)"), "{plan}");
    assert!(plan.contains("connection `stripe_us`"), "{plan}");
    out
}

/// A second pipeline over the same account and key: `pipelines/stripe-books.yaml`, its
/// connection named `stripe_books`, its outputs in `out/stripe-books/`, its state store
/// `state` (a path relative to `pipelines/`).
fn books_pipeline(dir: &Path, state: &str) {
    let ledger = std::fs::read_to_string(dir.join("pipelines/stripe-ledger.yaml")).unwrap();
    let books = ledger
        .replace("name: stripe-ledger", "name: stripe-books")
        .replace("stripe_us", "stripe_books")
        .replace("../out/stripe-ledger/", "../out/stripe-books/")
        .replace("path: ../out/stripe-books/state.db", &format!("path: {state}"));
    assert!(books.contains(&format!("path: {state}")), "{books}");
    std::fs::write(dir.join("pipelines/stripe-books.yaml"), books).unwrap();
}

/// Both pipelines at 2 requests a second, started together (the server answers no list request
/// before both have asked), each reading the 250 balance transactions in 3 pages; the arrival
/// times of their requests, sorted.
fn both_at_once(name: &str, books_state: &str) -> Vec<f64> {
    let server = start_server();
    let dir = workspace(name);
    point_at(&dir, "stripe-ledger.yaml", &server);
    let ledger = dir.join("pipelines/stripe-ledger.yaml");
    let spec = std::fs::read_to_string(&ledger).unwrap().replace("rate: 200/s", "rate: 2/s");
    std::fs::write(&ledger, spec).unwrap();
    books_pipeline(&dir, books_state);
    server.control("/_barrier?count=2");
    let runs = ["stripe-ledger.yaml", "stripe-books.yaml"]
        .map(|p| sluice(&dir, p).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
        let summary: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        assert_eq!(count(&summary, "delivered"), COUNT as u64, "{summary}");
        assert!(!text(&out.stderr).contains(KEY), "the key leaked");
    }
    let stats = server.control("/_stats");
    let mut arrivals: Vec<f64> = stats["arrivals"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    arrivals.sort_by(f64::total_cmp);
    assert_eq!(arrivals.len(), 6, "3 pages each: {stats}");
    arrivals
}

#[test]
fn two_pipelines_on_one_key_share_its_budget_through_the_state_store() {
    // One store: one bucket, `stripe:<digest of the key>`, whichever connection names the key.
    // Six requests at 2 a second on one time line: the last at least 2.5 s after the first,
    // less a little for the first one's way to the server (a lower bound only).
    let arrivals = both_at_once("stripe-shared-budget", "../out/stripe-ledger/state.db");
    let span = arrivals[5] - arrivals[0];
    println!("shared store: 6 requests over {span:.2} s");
    assert!(span + 0.3 >= 2.5, "6 requests within {span:.2} s: faster than 2/s together");

    // Two stores: each run keeps its own budget, so some second holds more than 2 requests.
    let arrivals = both_at_once("stripe-own-budgets", "../out/stripe-books/state.db");
    let busiest = (0..arrivals.len())
        .map(|i| arrivals[i..].iter().take_while(|t| **t - arrivals[i] < 1.0).count())
        .max()
        .unwrap_or(0);
    println!("two stores: up to {busiest} requests within one second");
    assert!(busiest > 2, "each run keeps 2/s on its own store, so together they send more: {busiest}");
}
