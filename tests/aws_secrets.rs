//! `${aws-sm:NAME}` and `${aws-sm:NAME#key}` secret references against a real Secrets Manager
//! emulator: moto's server mode (installed into `target/venv-moto` by `scripts/setup-moto`,
//! which this test runs; no emulator is a failure, never a skip), started on 127.0.0.1 on a
//! free port, its secrets created with boto3 (AWS's own SDK, not our client).
//!
//! - The message-tables pipeline's masking key read from Secrets Manager gives byte for byte
//!   the output of the same key from the environment: the signed request (SigV4) was accepted
//!   and the value used.
//! - With moto checking signatures (its IAM auth), the request signed with a user's key is
//!   accepted, the same with a wrong secret key is refused (RT406), and so is a user whose
//!   policy does not allow `secretsmanager:GetSecretValue` (RT406).
//! - An unknown secret (RT405), a missing JSON key (RT408), an unreachable endpoint (RT407)
//!   and missing credentials (RT404) stop the run with their codes, and no output, log line or
//!   error shows the secret's value.
//! - Credentials and region from a shared credentials/config file profile (`AWS_PROFILE`, or
//!   `default` under `HOME`), checked by moto's IAM auth; environment variables win over the
//!   profile; a missing profile (RT046), missing files (RT047) and a malformed file (RT048) are
//!   coded errors that show no key.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::moto::{self, Moto, venv};
use common::{free_port, text};

const KEY: &str = "a-test-key-from-secrets-manager-7f3a";

/// Creates a secret in the emulator with boto3.
fn create_secret(moto: &Moto, name: &str, value: &str) {
    let script = "import boto3, sys\n\
        c = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
            aws_access_key_id='testing', aws_secret_access_key='testing')\n\
        c.create_secret(Name=sys.argv[2], SecretString=sys.argv[3])\n";
    let out = Command::new(venv().join("python")).args(["-c", script, &moto.endpoint, name, value]).output().unwrap();
    assert!(out.status.success(), "boto3 create_secret: {}", text(&out.stderr));
}

fn run(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(dir).args(["run", "pipelines/hl7-message-tables.yaml", "--fixed-clock", "2024-01-15T10:30:01Z"]);
    for v in ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        cmd.env_remove(v);
    }
    for v in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETSMANAGER", "AWS_PROFILE"] {
        cmd.env_remove(v);
    }
    // No shared credentials or config file but those a test writes (not the machine's).
    for v in ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"] {
        cmd.env_remove(v);
    }
    cmd.env("HOME", dir);
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn policy(hash_key: &str) -> String {
    format!(
        "kind: masking\nname: from-secrets-manager\nextends: hipaa_safe_harbor\nhash_key: {hash_key}\nclasses:\n  mrn: hash\n"
    )
}

fn output(dir: &Path) -> String {
    ["adt_messages", "orm_messages", "oru_messages"]
        .map(|t| std::fs::read_to_string(dir.join(format!("out/hl7-message-tables/{t}.jsonl"))).unwrap())
        .concat()
}

/// The records without their audit ids (the run id depends on the plan, whose hash covers the
/// reference's text).
fn records(dir: &Path) -> Vec<serde_json::Value> {
    output(dir)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["compliance"].as_object_mut().unwrap().remove("audit_log_id");
            v
        })
        .collect()
}

#[test]
fn a_masking_key_from_secrets_manager() {
    let moto = moto::start(None);
    create_secret(&moto, "sluice/mask-key", KEY);
    create_secret(&moto, "sluice/keys", &format!(r#"{{"hash":"{KEY}","other":"unused-value-1234"}}"#));
    let dir = common::workspace("aws-secrets");
    let policy_file = dir.join("mappings/base/policies/message-tables.yaml");
    let aws = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing-secret-access-key"),
        ("AWS_ENDPOINT_URL_SECRETSMANAGER", moto.endpoint.as_str()),
    ];

    // The reference: the same key from the environment.
    std::fs::write(&policy_file, policy("${SLUICE_TEST_MASK_KEY}")).unwrap();
    let out = run(&dir, &[("SLUICE_TEST_MASK_KEY", KEY)]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let expected = records(&dir);
    assert!(output(&dir).contains("\"h:"), "the policy hashes the MRNs");

    for reference in ["${aws-sm:sluice/mask-key}", "${aws-sm:sluice/keys#hash}"] {
        std::fs::write(&policy_file, policy(reference)).unwrap();
        let check = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&dir)
            .args(["plan", "pipelines/hl7-message-tables.yaml"])
            .output()
            .unwrap();
        assert!(check.status.success(), "{reference}: {}{}", text(&check.stdout), text(&check.stderr));
        let out = run(&dir, &aws);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{reference}: {said}");
        assert!(records(&dir) == expected, "{reference}: the key from Secrets Manager gives the same pseudonyms");
        assert!(!said.contains(KEY), "{reference}: the run shows the secret");
        assert!(!output(&dir).contains(KEY));
        for log in ["audit.jsonl", "dlq.jsonl"] {
            let p = dir.join("out/hl7-message-tables").join(log);
            assert!(!std::fs::read_to_string(&p).unwrap_or_default().contains(KEY), "{log}");
        }
    }

    // Errors: coded, naming the secret or setting, never a value.
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("${aws-sm:sluice/no-such-secret}", aws.to_vec(), "RT405"),
        ("${aws-sm:sluice/keys#missing}", aws.to_vec(), "RT408"),
        ("${aws-sm:sluice/mask-key#hash}", aws.to_vec(), "RT408"),
        (
            "${aws-sm:sluice/mask-key}",
            vec![aws[0], aws[1], aws[2], ("AWS_ENDPOINT_URL_SECRETSMANAGER", unreachable.as_str())],
            "RT407",
        ),
        ("${aws-sm:sluice/mask-key}", vec![aws[0], aws[3]], "RT404"),
    ];
    for (reference, env, code) in cases {
        std::fs::write(&policy_file, policy(reference)).unwrap();
        let out = run(&dir, &env);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!out.status.success(), "{reference} ({code}): {said}");
        assert!(said.contains(code), "{reference}: expected {code}: {said}");
        assert!(!said.contains(KEY) && !said.contains("unused-value-1234"), "{reference}: {said}");
        assert!(!said.contains("testing-secret-access-key"), "{reference}: {said}");
    }
}

/// The 6 requests moto serves before it checks signatures: two IAM users with access keys, one
/// allowed to read secrets, and the secret. Prints `reader_id reader_secret nobody_id nobody_secret`.
const IAM_SETUP: &str = "import boto3, json, sys\n\
kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
iam = boto3.client('iam', **kw)\n\
iam.create_user(UserName='reader')\n\
r = iam.create_access_key(UserName='reader')['AccessKey']\n\
allow = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'secretsmanager:GetSecretValue', 'Resource': '*'}]}\n\
iam.put_user_policy(UserName='reader', PolicyName='read', PolicyDocument=json.dumps(allow))\n\
iam.create_user(UserName='nobody')\n\
n = iam.create_access_key(UserName='nobody')['AccessKey']\n\
boto3.client('secretsmanager', **kw).create_secret(Name='sluice/mask-key', SecretString=sys.argv[2])\n\
print(r['AccessKeyId'], r['SecretAccessKey'], n['AccessKeyId'], n['SecretAccessKey'])\n";

/// Runs [`IAM_SETUP`] against `moto`: the access key id and secret of `reader`, then of `nobody`.
fn iam_users(moto: &moto::Moto) -> [String; 4] {
    let out = Command::new(venv().join("python")).args(["-c", IAM_SETUP, &moto.endpoint, KEY]).output().unwrap();
    assert!(out.status.success(), "boto3 IAM setup: {}", text(&out.stderr));
    let keys = text(&out.stdout);
    let words: Vec<String> = keys.split_whitespace().map(str::to_string).collect();
    words.try_into().unwrap_or_else(|_| panic!("unexpected setup output: {keys}"))
}

#[test]
fn signatures_are_checked_and_refusals_are_coded() {
    let moto = moto::start(Some(6));
    let [reader_id, reader_secret, nobody_id, nobody_secret] = &iam_users(&moto);
    let dir = common::workspace("aws-secrets-auth");
    std::fs::write(dir.join("mappings/base/policies/message-tables.yaml"), policy("${aws-sm:sluice/mask-key}"))
        .unwrap();
    let with = |id: &str, secret: &str| {
        let env = [
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_ENDPOINT_URL_SECRETSMANAGER", moto.endpoint.as_str()),
        ];
        let out = run(&dir, &env);
        (out.status.success(), format!("{}{}", text(&out.stdout), text(&out.stderr)))
    };
    let (ok, said) = with(reader_id, reader_secret);
    assert!(ok, "a request signed with the reader's key is accepted: {said}");
    for (id, secret, why) in [
        (reader_id, "not-the-secret-access-key", "a wrong secret key"),
        (nobody_id, nobody_secret, "a user without the permission"),
    ] {
        let (ok, said) = with(id, secret);
        assert!(!ok && said.contains("RT406"), "{why}: {said}");
        assert!(!said.contains(KEY) && !said.contains(secret), "{why}: {said}");
    }
}

/// `aws_access_key_id`/`aws_secret_access_key` lines of a credentials file section.
fn section(name: &str, id: &str, secret: &str) -> String {
    format!("[{name}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n")
}

#[test]
fn credentials_and_region_from_a_shared_profile() {
    let moto = moto::start(Some(6));
    let [reader_id, reader_secret, nobody_id, nobody_secret] = &iam_users(&moto);
    let dir = common::workspace("aws-secrets-profile");
    std::fs::write(dir.join("mappings/base/policies/message-tables.yaml"), policy("${aws-sm:sluice/mask-key}"))
        .unwrap();
    let files = dir.join("aws-files");
    std::fs::create_dir_all(&files).unwrap();
    let credentials = files.join("credentials");
    let config = files.join("config");
    std::fs::write(
        &credentials,
        format!(
            "# test profiles\n{}\n{}",
            section("reader", reader_id, reader_secret),
            section("nobody", nobody_id, nobody_secret)
        ),
    )
    .unwrap();
    std::fs::write(&config, "[profile reader]\nregion = us-east-1\n[profile nobody]\nregion = us-east-1\n").unwrap();
    let (credentials, config) = (credentials.display().to_string(), config.display().to_string());
    let endpoint = ("AWS_ENDPOINT_URL_SECRETSMANAGER", moto.endpoint.as_str());
    let files = [("AWS_SHARED_CREDENTIALS_FILE", credentials.as_str()), ("AWS_CONFIG_FILE", config.as_str())];
    let with = |env: &[(&str, &str)]| {
        let out = run(&dir, env);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(!said.contains(KEY) && !said.contains(reader_secret) && !said.contains(nobody_secret), "{said}");
        (out.status.success(), said)
    };

    // The named profile: its keys sign the request (moto checks them), its region is used (no
    // AWS_REGION anywhere).
    let (ok, said) = with(&[endpoint, files[0], files[1], ("AWS_PROFILE", "reader")]);
    assert!(ok, "profile `reader` from the shared files: {said}");
    // A profile whose identity may not read the secret: refused, so the profile's keys are the
    // ones used.
    let (ok, said) = with(&[endpoint, files[0], files[1], ("AWS_PROFILE", "nobody")]);
    assert!(!ok && said.contains("RT406"), "profile `nobody`: {said}");
    // Environment variables win over the profile: `nobody`'s keys with AWS_PROFILE=reader.
    let (ok, said) = with(&[
        endpoint,
        files[0],
        files[1],
        ("AWS_PROFILE", "reader"),
        ("AWS_ACCESS_KEY_ID", nobody_id),
        ("AWS_SECRET_ACCESS_KEY", nobody_secret),
    ]);
    assert!(!ok && said.contains("RT406"), "the environment's keys win: {said}");
    // The default profile, in `~/.aws` under HOME (the test's run sets HOME to the workspace).
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(dir.join(".aws/credentials"), section("default", reader_id, reader_secret)).unwrap();
    std::fs::write(dir.join(".aws/config"), "[default]\nregion = us-east-1\n").unwrap();
    let (ok, said) = with(&[endpoint]);
    assert!(ok, "the default profile under HOME: {said}");

    // Errors: coded, naming the profile and the files, never a key.
    let (ok, said) = with(&[endpoint, files[0], files[1], ("AWS_PROFILE", "auditor")]);
    assert!(!ok && said.contains("RT046") && said.contains("`auditor`"), "{said}");
    assert!(said.contains("nobody, reader"), "the help lists the profiles there are: {said}");
    let nowhere = dir.join("no-such-dir/credentials").display().to_string();
    let (ok, said) = with(&[
        endpoint,
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.as_str()),
        ("AWS_CONFIG_FILE", nowhere.as_str()),
        ("AWS_PROFILE", "reader"),
    ]);
    assert!(!ok && said.contains("RT047") && said.contains("no-such-dir/credentials"), "{said}");
    let broken = dir.join("aws-files/broken");
    std::fs::write(
        &broken,
        format!("[reader]\naws_access_key_id = {reader_id}\naws_secret_access_key: {reader_secret}\n"),
    )
    .unwrap();
    let broken = broken.display().to_string();
    let (ok, said) =
        with(&[endpoint, ("AWS_SHARED_CREDENTIALS_FILE", broken.as_str()), files[1], ("AWS_PROFILE", "reader")]);
    assert!(!ok && said.contains("RT048") && said.contains("line 3"), "{said}");
}
