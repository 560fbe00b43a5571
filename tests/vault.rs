//! Reversible tokenization through the real binary: the bundled message-tables pipeline with a
//! policy that `tokenize`s names and SSNs, its vault in a SQLite store (and in PostgreSQL when
//! scripts/test runs one). Names and SSNs become `t:` tokens, none of the data is in the
//! output or the state store, a second run gives the same tokens, `sluice detokenize` gives the
//! values back (audited, with a count only), and `sluice keys rotate` re-encrypts the vault
//! under a new key, after which the old key alone can no longer read it (RT031 naming the key).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{phi_values, text};

const OLD: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const NEW: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";
const CLOCK: &str = "2024-01-15T10:30:01Z";

fn sluice(dir: &Path, vault_keys: &str, state_url: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir)
        .args(args)
        .env("SLUICE_TEST_MASK_KEY", "a-test-key-for-tokenization")
        .env("SLUICE_TEST_VAULT_KEY", vault_keys)
        .env("SLUICE_LOG", "debug");
    if let Some(url) = state_url {
        c.env("SLUICE_STATE_URL", url);
    }
    c.output().unwrap()
}

/// The message-tables pipeline of `dir` with the tokenizing policy and a state store.
fn setup(dir: &Path, state: &str) {
    let policies = dir.join("mappings/base/policies");
    std::fs::write(policies.join("tokenized.yaml"), common::TOKENIZING_POLICY).unwrap();
    let path = dir.join("pipelines/hl7-message-tables.yaml");
    let spec =
        std::fs::read_to_string(&path).unwrap().replace("policies/message-tables.yaml", "policies/tokenized.yaml");
    std::fs::write(&path, format!("{spec}state:\n  {state}\n")).unwrap();
}

const PIPELINE: &str = "pipelines/hl7-message-tables.yaml";

/// The ADT rows by message control id.
fn rows(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(dir.join("out/hl7-message-tables/adt_messages.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["message_control_id"].as_str().unwrap().to_string(), v))
        .collect()
}

/// Every string in `v` that has the shape of a token.
fn tokens(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if sluice_runtime::vault::is_token(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|i| tokens(i, out)),
        Value::Object(o) => o.values().for_each(|i| tokens(i, out)),
        _ => {}
    }
}

fn exercise(dir: &Path, state_url: Option<&str>, state_db: Option<&Path>) {
    let run = |keys: &str| {
        let out = sluice(dir, keys, state_url, &["run", PIPELINE, "--fixed-clock", CLOCK]);
        assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
        out
    };
    let first_run = run(OLD);
    let first = rows(dir);
    let mut all = BTreeSet::new();
    for table in ["adt_messages", "orm_messages", "oru_messages"] {
        let text = std::fs::read_to_string(dir.join(format!("out/hl7-message-tables/{table}.jsonl"))).unwrap();
        text.lines().for_each(|l| tokens(&serde_json::from_str(l).unwrap(), &mut all));
    }
    assert!(all.len() > 10, "names and SSNs became tokens: {}", all.len());
    let name_token = first.values().find_map(|v| v.pointer("/patient/family_name").and_then(Value::as_str));
    assert!(name_token.is_some_and(sluice_runtime::vault::is_token), "{name_token:?}");

    let second_run = run(OLD);
    assert_eq!(rows(dir), first, "a second run gives every value the same token");

    // No value in the output, the console or the store.
    let examples: Vec<_> =
        ["examples/hl7", "examples/hl7-orders-results"].iter().flat_map(|d| common_files(&dir.join(d))).collect();
    // A name also written where it is not about a patient (a facility `ST MARY & ST JOSEPH`)
    // may rightly be in the output: left out of the search.
    let elsewhere: String = examples
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .flat_map(|t| {
            t.split(['\r', '\n'])
                .filter(|l| !l.starts_with("PID|") && !l.starts_with("NK1|"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let phi: Vec<String> = phi_values(&examples).into_iter().filter(|v| !holds(&elsewhere, v)).collect();
    assert!(phi.len() > 10);
    let output = std::fs::read_to_string(dir.join("out/hl7-message-tables/adt_messages.jsonl")).unwrap();
    let store = state_db.map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()).unwrap_or_default();
    let console = format!("{}{}{}", text(&first_run.stderr), text(&second_run.stderr), text(&second_run.stdout));
    for v in &phi {
        for (what, hay) in [("sink", &output), ("state store", &store), ("console", &console)] {
            assert!(!holds(hay, v), "a name or SSN of the data is in the {what}");
        }
    }

    // The values come back, for every token.
    let list: Vec<String> = all.iter().cloned().collect();
    let mut args = vec!["detokenize", PIPELINE, "--fixed-clock", CLOCK];
    args.extend(list.iter().map(String::as_str));
    let out = sluice(dir, OLD, state_url, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let values: BTreeMap<String, String> = text(&out.stdout)
        .lines()
        .map(|l| l.split_once('\t').map(|(t, v)| (t.to_string(), v.to_string())).unwrap())
        .collect();
    assert_eq!(values.len(), list.len());
    let found = values.values().filter(|v| phi.contains(v)).count();
    assert!(found >= 10, "the values are names and SSNs of the data: {found}");
    let pid_lines: String = examples
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned())
        .flat_map(|t| t.split(['\r', '\n']).filter(|l| l.starts_with("PID|")).map(String::from).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .join("\n");
    let strays = values.values().filter(|v| !pid_lines.contains(v.as_str())).count();
    assert_eq!(strays, 0, "every value is in a PID segment of the data");
    let audit = std::fs::read_to_string(dir.join("out/hl7-message-tables/audit.jsonl")).unwrap();
    let entry = audit.lines().rev().find(|l| l.contains("\"detokenized\"")).expect("detokenize is audited");
    assert!(entry.contains(&format!("\"tokens\":{}", list.len())) && !list.iter().any(|t| entry.contains(t.as_str())));
    let unknown = sluice(dir, OLD, state_url, &["detokenize", PIPELINE, "t:00000000000000000000000000000000"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("not in the vault"));

    // Rotation: the new key first, the old one after it.
    let both = format!("{NEW},{OLD}");
    let rotated = sluice(dir, &both, state_url, &["keys", "rotate", PIPELINE, "--fixed-clock", CLOCK]);
    assert!(rotated.status.success(), "{}", text(&rotated.stderr));
    let new_id = sluice_runtime::keys::key_id(&hex_bytes(NEW));
    let old_id = sluice_runtime::keys::key_id(&hex_bytes(OLD));
    assert!(
        text(&rotated.stdout).contains(&format!("re-encrypted {} vault rows under {new_id}", list.len())),
        "{}",
        text(&rotated.stdout)
    );
    let listed = text(&sluice(dir, NEW, state_url, &["keys", "list", PIPELINE]).stdout);
    assert!(listed.contains(&format!("{new_id}: {} vault rows", list.len())) && !listed.contains(&old_id), "{listed}");
    let again = sluice(dir, &both, state_url, &["keys", "rotate", PIPELINE]);
    assert!(text(&again.stdout).contains("re-encrypted 0 vault rows"), "{}", text(&again.stdout));
    // The new key alone reads everything; the old one alone nothing, and says which key it needs.
    let out = sluice(dir, NEW, state_url, &["detokenize", PIPELINE, &list[0]]);
    assert_eq!(text(&out.stdout).trim_end(), format!("{}\t{}", list[0], values[&list[0]]));
    let out = sluice(dir, OLD, state_url, &["detokenize", PIPELINE, &list[0]]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("error[RT031]") && err.contains(&new_id), "{err}");
    assert!(!err.contains(NEW) && !err.contains(OLD), "no key in errors");
    let audit = std::fs::read_to_string(dir.join("out/hl7-message-tables/audit.jsonl")).unwrap();
    let rotated_entry = format!("\"keys_rotated\",\"current_keys\":[\"{new_id}\",");
    assert!(audit.contains(&rotated_entry), "rotation is audited");
    let verify = sluice(dir, NEW, state_url, &["audit", "verify", "out/hl7-message-tables/audit.jsonl"]);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    // A run under the new key keeps the tokens.
    run(NEW);
    assert_eq!(rows(dir), first, "tokens survive a rotation");
}

/// Whether `value` is in `hay` as a word of its own (`MARY` in `PRIMARY KEY` is not a leak).
fn holds(hay: &str, value: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    hay.match_indices(value)
        .any(|(i, _)| boundary(hay[..i].chars().next_back()) && boundary(hay[i + value.len()..].chars().next()))
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

fn common_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    out.sort();
    out
}

#[test]
fn tokens_are_stable_reversible_and_rotate_in_sqlite() {
    let dir = common::workspace("vault-sqlite");
    setup(&dir, "path: ../out/hl7-message-tables/state.db");
    exercise(&dir, None, Some(&dir.join("out/hl7-message-tables/state.db")));
}

#[test]
fn tokens_are_stable_reversible_and_rotate_in_postgres() {
    let Some(url) = common::pg_database("vault") else { return };
    let dir = common::workspace("vault-postgres");
    setup(&dir, "url: ${SLUICE_STATE_URL}");
    exercise(&dir, Some(&url), None);
    let rows = common::pg_rows(&url, "SELECT count(*) FROM vault_tokens");
    assert!(rows[0][0].as_deref().is_some_and(|n| n.parse::<u32>().unwrap() > 10));
}

#[test]
fn a_policy_that_tokenizes_needs_a_vault_key_and_a_state_store() {
    let dir = common::workspace("vault-check");
    let policies = dir.join("mappings/base/policies");
    std::fs::write(
        policies.join("tokenized.yaml"),
        common::TOKENIZING_POLICY.replace("vault_key: ${SLUICE_TEST_VAULT_KEY}\n", ""),
    )
    .unwrap();
    let path = dir.join("pipelines/hl7-message-tables.yaml");
    let spec =
        std::fs::read_to_string(&path).unwrap().replace("policies/message-tables.yaml", "policies/tokenized.yaml");
    std::fs::write(&path, &spec).unwrap();
    let out = sluice(&dir, OLD, None, &["check", PIPELINE]);
    assert!(text(&out.stderr).contains("SL610"), "{}", text(&out.stderr));
    std::fs::write(policies.join("tokenized.yaml"), common::TOKENIZING_POLICY).unwrap();
    let out = sluice(&dir, OLD, None, &["check", PIPELINE]);
    assert!(text(&out.stderr).contains("SL611"), "{}", text(&out.stderr));
    // A bad key stops the run before anything is written, naming the reference only.
    std::fs::write(&path, format!("{spec}state:\n  path: ../out/state.db\n")).unwrap();
    let out = sluice(&dir, "0011", None, &["run", PIPELINE]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("RT032") && !text(&out.stderr).contains("0011"), "{}", text(&out.stderr));
}
