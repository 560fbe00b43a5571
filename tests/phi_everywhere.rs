//! Every byte Sluice writes outside a sink, searched for the patients in the data: two bundled
//! pipelines run with a state store and debug logs in JSON; then their plans (text and JSON),
//! `sluice check`, `dlq list` and `dlq show`, `audit verify` and `audit export`, a resume
//! refusal, a DLQ replay (which must succeed) and purge; for the message tables, whose policy here tokenizes names
//! and SSNs (the token vault in the state store), `sluice detokenize` (its stderr: its stdout is
//! the values, by design), `keys list`, `keys rotate` to a new key, `purge --subject`, and with
//! `roles:` declared refused `detokenize`, `dlq show --raw` and `audit export` (then exported
//! with the auditor's role). The quick start gets a second sink for the `analyst` audience,
//! whose policy redacts names and SSNs. Their stdout and stderr,
//! every file under `out/` that is not a sink (DLQ, audit, exports) and the state database (the
//! vault included) are searched for each name and SSN of the example messages: zero hits. In the
//! sinks, what the policy masks is not there either: the message tables tokenize names and
//! SSNs, the quick start keeps names (with a written reason) and only the last four digits of
//! an SSN, and its analysts' sink has neither.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::{phi_values, text};

const AUDITOR_KEY: &str = "auditor-key-for-exports";
const ANALYST_POLICY: &str = "\
kind: masking
name: analyst
classes:
  name: redact
  mrn: redact
  ssn: redact
  dob: {action: generalize, to: birth_year}
  date: {action: generalize, to: year}
  account_number: redact
";
const OLD_VAULT_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const NEW_VAULT_KEY: &str = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100";

fn sluice(dir: &Path, args: &[&str]) -> Output {
    sluice_with_vault_key(dir, OLD_VAULT_KEY, args)
}

fn sluice_with_vault_key(dir: &Path, vault_key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .args(args)
        .env("SLUICE_LOG", "debug")
        .env("SLUICE_ROLE_KEY", AUDITOR_KEY)
        .env("SLUICE_TEST_MASK_KEY", "a-test-key-for-tokenization")
        .env("SLUICE_TEST_VAULT_KEY", vault_key)
        .output()
        .expect("sluice runs")
}

/// Whether `value` is in `hay` as a word of its own: a name (`MARY`) inside a longer word
/// (`PRIMARY KEY` in the state database's schema) is not a leak.
fn holds(hay: &str, value: &str) -> bool {
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    hay.match_indices(value)
        .any(|(i, _)| boundary(hay[..i].chars().next_back()) && boundary(hay[i + value.len()..].chars().next()))
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

#[test]
fn no_name_or_ssn_outside_the_sinks_at_debug_verbosity() {
    let dir = common::workspace("phi-everywhere");
    let examples: Vec<PathBuf> =
        ["feed-2024-01-15.hl7", "rejects.hl7"].iter().map(|f| dir.join("examples/hl7").join(f)).collect();
    // A name that is also written in a field that is not about a patient (a facility called
    // `ST MARY & ST JOSEPH`) may rightly appear in output: left out of the search.
    let elsewhere: String = examples
        .iter()
        .flat_map(|f| {
            let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
            text.split(['\r', '\n'])
                .filter(|l| !l.starts_with("PID|") && !l.starts_with("NK1|"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let phi: Vec<String> = phi_values(&examples).into_iter().filter(|v| !holds(&elsewhere, v)).collect();
    let ssns: Vec<&String> = phi.iter().filter(|v| v.contains('-')).collect();
    assert!(phi.len() > 20 && ssns.len() > 5, "the data has names and SSNs to look for: {}", phi.len());

    let mut console = Vec::new();
    let mut keep = |what: &str, out: Output| {
        console.push((what.to_string(), format!("{}{}", text(&out.stdout), text(&out.stderr))));
        out
    };
    let mut sinks = Vec::new();
    let policies = dir.join("mappings/base/policies");
    std::fs::write(policies.join("tokenized.yaml"), common::TOKENIZING_POLICY).unwrap();
    let tables = dir.join("pipelines/hl7-message-tables.yaml");
    let spec = std::fs::read_to_string(&tables).unwrap();
    std::fs::write(&tables, spec.replace("policies/message-tables.yaml", "policies/tokenized.yaml")).unwrap();
    for (pipeline, out_dir, sink_files) in [
        ("quickstart", "quickstart", vec!["patient-events.jsonl", "analytics.jsonl"]),
        (
            "hl7-message-tables",
            "hl7-message-tables",
            vec!["adt_messages.jsonl", "orm_messages.jsonl", "oru_messages.jsonl"],
        ),
    ] {
        let spec_path = dir.join(format!("pipelines/{pipeline}.yaml"));
        let mut spec = std::fs::read_to_string(&spec_path).unwrap();
        if pipeline == "quickstart" {
            // A second sink for analysts, masked by their audience's policy.
            std::fs::write(policies.join("analyst.yaml"), ANALYST_POLICY).unwrap();
            let sink = "sinks:\n  analytics:\n    type: jsonl\n    inputs: [mask]\n    \
                        path: ../out/quickstart/analytics.jsonl\n    audience: analyst\n";
            // Roles declared close the operator actions: the analysts may replay and purge.
            let role = format!(
                "roles:\n  analyst:\n    key_sha256: {}\n    may: [dlq_replay, dlq_purge, audit_export]\n    \
                 masking: ../mappings/base/policies/analyst.yaml\n",
                sluice_runtime::access::key_sha256(AUDITOR_KEY.as_bytes())
            );
            spec = format!("{}{role}", spec.replacen("sinks:\n", sink, 1));
            std::fs::write(&spec_path, &spec).unwrap();
        }
        if !spec.contains("\nstate:") {
            std::fs::write(&spec_path, format!("{spec}state:\n  path: ../out/{out_dir}/state.db\n")).unwrap();
        }
        let p = format!("pipelines/{pipeline}.yaml");
        keep("check", sluice(&dir, &["check", &p]));
        keep("plan", sluice(&dir, &["plan", &p]));
        keep("plan json", sluice(&dir, &["plan", &p, "--format", "json"]));
        let run = keep(
            "run",
            sluice(&dir, &["run", &p, "--log-level", "debug", "--log-format", "json", "--summary", "json"]),
        );
        assert!(run.status.success(), "{}", text(&run.stderr));
        keep("resume refusal", sluice(&dir, &["run", &p, "--resume", "--log-level", "debug"]));
        let list = keep("dlq list", sluice(&dir, &["dlq", "list", &p, "--output", "json"]));
        let first_id = text(&list.stdout)
            .lines()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["id"].as_str().map(String::from));
        if let Some(id) = first_id {
            keep("dlq show", sluice(&dir, &["dlq", "show", &p, &id]));
        }
        let role: &[&str] = if pipeline == "quickstart" { &["--role", "analyst"] } else { &[] };
        let replay = keep("dlq replay", sluice(&dir, &[&["dlq", "replay", &p], role].concat()));
        assert!(replay.status.success(), "{}", text(&replay.stderr));
        keep("dlq purge", sluice(&dir, &[&["dlq", "purge", &p, "--replayed"], role].concat()));
        if pipeline == "hl7-message-tables" {
            let sink = std::fs::read_to_string(dir.join("out/hl7-message-tables/adt_messages.jsonl")).unwrap();
            let tokens: Vec<&str> = sink
                .split('"')
                .filter(|s| sluice_runtime::vault::is_token(s))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            assert!(tokens.len() > 10, "names and SSNs are tokenized: {}", tokens.len());
            let mut args = vec!["detokenize", &p];
            args.extend(tokens.iter().copied());
            let values = sluice(&dir, &args);
            assert!(values.status.success(), "{}", text(&values.stderr));
            assert!(phi.iter().any(|v| holds(&text(&values.stdout), v)), "detokenize gives the names back");
            // Its stdout holds the values, by design; its stderr is searched.
            keep("detokenize (stderr)", Output { stdout: Vec::new(), ..values });
            keep("detokenize unknown", sluice(&dir, &["detokenize", &p, "t:00000000000000000000000000000000"]));
            keep("keys list", sluice(&dir, &["keys", "list", &p]));
            let both = format!("{NEW_VAULT_KEY},{OLD_VAULT_KEY}");
            let rotated = keep("keys rotate", sluice_with_vault_key(&dir, &both, &["keys", "rotate", &p]));
            assert!(rotated.status.success(), "{}", text(&rotated.stderr));
            let refused = keep("detokenize, key rotated out", sluice(&dir, &["detokenize", &p, tokens[0]]));
            assert!(text(&refused.stderr).contains("RT031"), "{}", text(&refused.stderr));
            // One person's data out: the id of a patient in the DLQ.
            let rejects = std::fs::read_to_string(dir.join("examples/hl7/rejects.hl7")).unwrap();
            let subject = rejects
                .split(['\r', '\n'])
                .filter(|l| l.starts_with("PID|"))
                .find_map(|l| l.split('|').nth(3)?.split('^').next().filter(|id| !id.is_empty()).map(String::from))
                .expect("a rejected message with a patient id");
            let purged = keep("purge --subject", sluice(&dir, &["purge", &p, "--subject", &subject]));
            assert!(purged.status.success(), "{}", text(&purged.stderr));
            // Roles declared: refusals, audited.
            let spec = std::fs::read_to_string(&tables).unwrap();
            let roles = format!(
                "roles:\n  privacy_officer:\n    key_sha256: \
                 0000000000000000000000000000000000000000000000000000000000000000\n    may: [detokenize]\n  \
                 auditor:\n    key_sha256: {}\n    may: [audit_export]\n",
                sluice_runtime::access::key_sha256(AUDITOR_KEY.as_bytes())
            );
            std::fs::write(&tables, format!("{spec}{roles}")).unwrap();
            let refused = keep("detokenize without a role", sluice(&dir, &["detokenize", &p, tokens[0]]));
            assert!(text(&refused.stderr).contains("RT034"), "{}", text(&refused.stderr));
            let args =
                ["detokenize", &p, tokens[0], "--role", "privacy_officer", "--role-key", "${SLUICE_TEST_MASK_KEY}"];
            let refused = keep("detokenize with a wrong key", sluice(&dir, &args));
            assert!(text(&refused.stderr).contains("wrong key"), "{}", text(&refused.stderr));
            let refused = keep("dlq show --raw without a role", sluice(&dir, &["dlq", "show", &p, "x", "--raw"]));
            assert_eq!(refused.status.code(), Some(1));
        }
        let audit = format!("out/{out_dir}/audit.jsonl");
        assert!(dir.join(&audit).exists(), "{pipeline} keeps an audit log");
        keep("audit verify", sluice(&dir, &["audit", "verify", &audit]));
        let key_file = dir.join("auditor.key");
        std::fs::write(&key_file, AUDITOR_KEY).unwrap();
        let role_key = format!("${{file:{}}}", key_file.display());
        let mut args = vec!["audit", "export", &audit, "--format", "jsonl"];
        // Their roles govern the export; refused without one, and audited.
        let refused = keep("audit export without a role", sluice(&dir, &args));
        assert!(text(&refused.stderr).contains("RT034"), "{}", text(&refused.stderr));
        match pipeline {
            "quickstart" => args.extend(["--role", "analyst"]),
            _ => args.extend(["--role", "auditor", "--role-key", &role_key]),
        }
        let export = keep("audit export", sluice(&dir, &args));
        assert!(export.status.success() && !export.stdout.is_empty(), "{}", text(&export.stderr));
        sinks.extend(sink_files.iter().map(|f| dir.join(format!("out/{out_dir}/{f}"))));
    }

    let mut searched = 0;
    for (what, output) in &console {
        for v in &phi {
            assert!(!holds(output, v), "a name or SSN from the data is in the output of `{what}`");
        }
        searched += output.len();
    }
    for f in files(&dir.join("out")) {
        if sinks.contains(&f) {
            continue;
        }
        // The state database and every other file, as bytes (the database is binary).
        let bytes = std::fs::read(&f).unwrap();
        let content = String::from_utf8_lossy(&bytes);
        for v in &phi {
            assert!(!holds(&content, v), "a name or SSN from the data is in {}", f.display());
        }
        searched += bytes.len();
    }
    assert!(files(&dir.join("out")).iter().any(|f| f.ends_with("state.db")), "the state database was searched");
    println!("searched {searched} bytes outside the sinks for {} names and SSNs", phi.len());

    // In the sinks, what the policies mask.
    for sink in &sinks {
        let content = std::fs::read_to_string(sink).unwrap_or_else(|e| panic!("{}: {e}", sink.display()));
        let quickstart = sink.ends_with("patient-events.jsonl");
        for v in &phi {
            let is_ssn = v.contains('-');
            if quickstart && !is_ssn {
                continue; // names are kept, with a reason, for the care-team roster
            }
            assert!(!holds(&content, v), "a masked value is in {}", sink.display());
        }
    }
}
