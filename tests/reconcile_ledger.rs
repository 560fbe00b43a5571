//! `sluice reconcile` with `outputs.ledger`, against a real PostgreSQL server: the ledger is
//! loaded by the bundled `pipelines/stripe-ledger.yaml` (from the local Stripe API,
//! `tests/servers/stripe/`) into a `postgres` upsert sink keyed by `source` and `id`, with its
//! JSON Lines copy beside it; the reconciliation matches that copy against bank records made
//! for some of its transactions and writes `reconciled` back into the table.
//!
//! Checked: matched rows become true and the others false; a rerun writes no row (each row's
//! `xmin` is unchanged); a row the table lacks is reported (RT169) with its key in the summary
//! and never on the terminal; a table that cannot take the outcome (RT124), a key value of the
//! wrong type (RT168) and an unreachable server (RT123) leave every table and every output
//! file as they were, with no staged file behind.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::stripe::Server;
use common::{free_port, pg_database, pg_rows, text, workspace};

const KEY: &str = "sk_test_51LocalOnlyKey0000000000sRcE";
const SPEC: &str = "reconcile/ledger.yaml";
/// Bank records are made for the first transactions of the ledger, this many.
const MATCHED: usize = 4;

fn spec(tables: &str) -> String {
    format!(
        "kind: reconciliation
name: stripe-ledger-vs-bank
inputs:
  left:
    name: stripe_ledger
    path: ../out/stripe-ledger/transactions.jsonl
    id: id
    amount: amount
    amount_unit: decimal
    currency: currency
    date: date
    time_zone: UTC
    links:
      txn: id
  right:
    name: bank
    path: bank.jsonl
    id: transaction_id
    amount: amount
    amount_unit: decimal
    currency: currency
    date: date
    time_zone: UTC
    links:
      txn: reference
rules:
  - name: by_reference
    match: link
    link: txn
outputs:
  matched: ../out/ledger-reconcile/matched.jsonl
  review: ../out/ledger-reconcile/review.jsonl
  summary: ../out/ledger-reconcile/summary.json
  ledger:
    url: ${{LEDGER_URL}}
{tables}"
    )
}

const LEFT: &str = "    left:\n      table: stripe_ledger\n      key: [source, id]\n";

/// A workspace whose ledger is loaded: the table `stripe_ledger` and its JSON Lines copy, the
/// bank file and the reconciliation spec. Returns the database URL and the ledger's ids in
/// file order.
fn loaded(name: &str) -> Option<(common::Workspace, String, Vec<String>)> {
    let url = pg_database(name)?;
    let server = Server::start(KEY, 12, 1_700_000_000, &[]);
    let dir = workspace(name);
    let p = dir.join("pipelines/stripe-ledger.yaml");
    let pipeline = std::fs::read_to_string(&p).unwrap();
    let edited = pipeline
        .replace(
            "    lookback: 1h\n",
            &format!("    lookback: 1h\n    base_url: http://127.0.0.1:{}\n    rate: 200/s\n", server.port),
        )
        .replace(
            "    path: ../out/stripe-ledger/transactions.jsonl\n",
            "    path: ../out/stripe-ledger/transactions.jsonl\n  ledger_table:\n    type: postgres\n    inputs: [to_ledger]\n    url: ${SLUICE_SINK_URL}\n    table: stripe_ledger\n    write: upsert\n    key: [source, id]\n",
        );
    assert_eq!(edited.matches("base_url").count() + edited.matches("ledger_table").count(), 2, "{edited}");
    std::fs::write(&p, edited).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .args(["run", "pipelines/stripe-ledger.yaml"])
        .env("STRIPE_SECRET_KEY", KEY)
        .env("SLUICE_SINK_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let ledger: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("out/stripe-ledger/transactions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(ledger.len() > MATCHED + 2, "{} transactions", ledger.len());
    let bank: Vec<String> = ledger[..MATCHED]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({
                "transaction_id": format!("bank_{i}"), "amount": t["amount"], "currency": t["currency"],
                "date": t["date"], "reference": t["id"],
            })
            .to_string()
        })
        .collect();
    std::fs::create_dir_all(dir.join("reconcile")).unwrap();
    std::fs::write(dir.join("reconcile/bank.jsonl"), bank.join("\n") + "\n").unwrap();
    std::fs::write(dir.join(SPEC), spec(LEFT)).unwrap();
    let ids = ledger.iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    Some((dir, url, ids))
}

fn reconcile(dir: &Path, url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(["reconcile", SPEC])
        .env("LEDGER_URL", url)
        .output()
        .unwrap()
}

/// `reconciled` of each row, by id (`None`: empty).
fn reconciled(url: &str) -> BTreeMap<String, Option<String>> {
    pg_rows(url, "SELECT id, reconciled::text FROM stripe_ledger")
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone()))
        .collect()
}

/// Each row's version: PostgreSQL gives an updated row a new `xmin`.
fn versions(url: &str) -> Vec<Vec<Option<String>>> {
    pg_rows(url, "SELECT id, xmin::text FROM stripe_ledger ORDER BY id")
}

/// Every file of the output folder (staged ones included), with its text.
fn outputs(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir.join("out/ledger-reconcile"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn reconciled_is_written_back_once_and_missing_rows_are_reported() {
    let Some((dir, url, ids)) = loaded("reconcile-ledger") else { return };
    let n = ids.len();
    assert!(reconciled(&url).values().all(Option::is_none), "the pipeline leaves `reconciled` empty");

    let out = reconcile(&dir, &url);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!(
            "ledger `stripe_ledger`: {n} rows = {n} updated + 0 unchanged + 0 missing; 0 records without a key"
        )),
        "{}",
        text(&out.stdout)
    );
    let expected: BTreeMap<String, Option<String>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), Some(if i < MATCHED { "true" } else { "false" }.to_string())))
        .collect();
    assert_eq!(reconciled(&url), expected);

    // A rerun: the same pairs and review, and not a row written (the summary says so).
    let outcome = |dir: &Path| outputs(dir).into_iter().filter(|(n, _)| n != "summary.json").collect::<Vec<_>>();
    let files = outcome(&dir);
    let before = versions(&url);
    let out = reconcile(&dir, &url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("{n} rows = 0 updated + {n} unchanged + 0 missing")));
    assert_eq!(versions(&url), before, "a rerun rewrote rows");
    assert_eq!(outcome(&dir), files);

    // A row the table lacks: reported with its code, its key in the summary file only.
    let gone = &ids[MATCHED + 1];
    pg_rows(&url, &format!("DELETE FROM stripe_ledger WHERE id = '{gone}'"));
    let out = reconcile(&dir, &url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning[RT169]: 1 rows named by `stripe_ledger` are not in ledger table `stripe_ledger`"),
        "{stderr}"
    );
    assert!(text(&out.stdout).contains(&format!("{} rows = 0 updated + {} unchanged + 1 missing", n, n - 1)));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/ledger-reconcile/summary.json")).unwrap()).unwrap();
    let table = &summary["ledger"]["tables"][0];
    assert_eq!(table["missing_keys"], serde_json::json!([{"source": "stripe", "id": gone}]));
    assert_eq!((table["records"].as_u64(), table["rows"].as_u64()), (Some(n as u64), Some(n as u64)));
    let terminal = text(&out.stdout) + &stderr;
    for id in &ids {
        assert!(!terminal.contains(id.as_str()), "a transaction id reached the terminal: {terminal}");
    }
    assert!(!terminal.contains(&url), "the URL reached the terminal");
}

#[test]
fn a_failed_write_leaves_every_table_and_file_as_it_was() {
    let Some((dir, url, _ids)) = loaded("reconcile-ledger-fail") else { return };
    let out = reconcile(&dir, &url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    pg_rows(&url, "UPDATE stripe_ledger SET reconciled = NULL");
    let files = outputs(&dir);
    // The next run would match one pair less: its files would differ.
    let bank = dir.join("reconcile/bank.jsonl");
    let body = std::fs::read_to_string(&bank).unwrap();
    std::fs::write(&bank, body.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    // The left table is updated first, in the same transaction, then the right one fails.
    let both = format!("{LEFT}    right:\n      table: bank_ledger\n      key: [transaction_id]\n");
    std::fs::write(dir.join(SPEC), spec(&both)).unwrap();
    let unchanged = |what: &str| {
        assert!(reconciled(&url).values().all(Option::is_none), "{what}: a table was partly updated");
        assert_eq!(outputs(&dir), files, "{what}: the output files changed");
    };
    let cases = [
        ("", "error[RT124]: ledger table `bank_ledger` does not exist"),
        (
            "CREATE TABLE bank_ledger (transaction_id text PRIMARY KEY, reconciled text)",
            "error[RT124]: ledger table `bank_ledger` has a `reconciled` column of type `text`",
        ),
        (
            "DROP TABLE bank_ledger; CREATE TABLE bank_ledger (transaction_id text, reconciled boolean)",
            "error[RT124]: ledger table `bank_ledger` has no unique index or primary key within its key columns (transaction_id)",
        ),
        (
            "DROP TABLE bank_ledger; CREATE TABLE bank_ledger (transaction_id bigint PRIMARY KEY, reconciled boolean)",
            "error[RT168]: the reconciliation's ledger could not find the rows (table `bank_ledger`): SQLSTATE 22P02",
        ),
    ];
    for (sql, error) in cases {
        if !sql.is_empty() {
            pg_rows(&url, sql);
        }
        let out = reconcile(&dir, &url);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
        assert!(text(&out.stderr).contains(error), "{}", text(&out.stderr));
        unchanged(error);
    }

    // An unreachable server: named by its secret reference, never its URL.
    let nowhere = format!("postgres://sluice@127.0.0.1:{}/ledger", free_port());
    let out = reconcile(&dir, &nowhere);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("error[RT123]: the reconciliation's ledger cannot connect to ${LEDGER_URL}"), "{stderr}");
    assert!(!stderr.contains(&nowhere), "{stderr}");
    unchanged("unreachable");

    // Fixed: both tables are written, in one go.
    pg_rows(
        &url,
        "DROP TABLE bank_ledger; CREATE TABLE bank_ledger (transaction_id text PRIMARY KEY, reconciled boolean)",
    );
    pg_rows(&url, "INSERT INTO bank_ledger VALUES ('bank_1', NULL), ('bank_2', NULL), ('bank_3', NULL)");
    let out = reconcile(&dir, &url);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bank_rows = pg_rows(&url, "SELECT transaction_id, reconciled::text FROM bank_ledger ORDER BY 1");
    let s = |a: &str| Some(a.to_string());
    assert_eq!(bank_rows, [[s("bank_1"), s("true")], [s("bank_2"), s("true")], [s("bank_3"), s("true")]]);
    assert_eq!(reconciled(&url).values().filter(|v| v.as_deref() == Some("true")).count(), MATCHED - 1);
    assert_ne!(outputs(&dir), files);
}
