//! Object-store sources and sinks against a real S3 server: moto's server mode (installed into
//! `target/venv-moto` by `scripts/setup-moto`, which this test runs; no server is a failure,
//! never a skip), started on 127.0.0.1 on a free port. Objects are put and read back with
//! boto3 (AWS's own SDK, not our client).
//!
//! - HL7 files in a bucket -> `sluice run` -> JSON Lines: the quick start's counts; a rerun
//!   takes nothing; new objects are the only ones the next run takes; an object overwritten
//!   with new content (new ETag) is taken again, whole; keys outside the glob are never read.
//! - A listing of more objects than one page (1,000 keys) takes them all.
//! - `after: {tag}`: each object read is tagged once its run completed (merged with the tags it
//!   had, as boto3 reads them back), its ETag unchanged and never read again; a late object
//!   is tagged by the run that reads it. An object that cannot be tagged (S3's 10-tag limit)
//!   is the warning RT122, stays in place (with `move_to`) and is tagged and moved by the next
//!   run without being read again; the moved copies keep their tags.
//! - An object overwritten after the listing and before its read ends that object's read with
//!   the warning RT137; the run goes on, and the next run reads the new version whole.
//! - `kill -9` at random moments, then `--resume`: every record exactly once in the sink, DLQ
//!   and audit.
//! - X12 interchanges and FHIR files (NDJSON, a Bundle, an XML resource) in a bucket: the
//!   bundled `x12-claims` and `fhir-patients` pipelines give the same records, DLQ entries and
//!   999s from objects as from their local example files, and a rerun takes nothing.
//! - A `jsonl` sink with an `s3://` URL: the object appears when the run completes, with the
//!   staging file's bytes; a wrong secret key stops the run with RT136, an unreachable
//!   endpoint with RT135, and neither the output nor any message shows a secret, a name or an
//!   SSN from the data.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::checkpoints::{PER_COPY, error_code, expect_exactly_once, expect_totals, kill_at_random_moments, summary};
use common::moto::{self, KEY_ID, Moto, SECRET, boto3, create_bucket, put, store_block};
use common::{root, text, workspace};

const CLOCK: &str = "2024-01-01T00:00:00Z";

/// The quick start reading `s3://inbound/adt/**/*.hl7` (and writing `out/`, like the resume
/// tests' workspace), its credentials from the environment.
fn setup(name: &str, moto: &Moto, sink: Option<&str>) -> common::Workspace {
    let dir = workspace(name);
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let store = store_block(moto);
    let mut pipeline = quickstart
        .replace("name: quickstart", &format!("name: {name}"))
        .replace("path: ../examples/hl7/*.hl7", &format!("path: s3://inbound/adt/**/*.hl7\n    {store}"))
        .replace("../out/quickstart/", "../out/")
        .replace("path: ../out/state.db", "path: ../out/state.db\n  checkpoint_every: 100ms");
    if let Some(url) = sink {
        pipeline = pipeline.replace("path: ../out/patient-events.jsonl", &format!("path: {url}\n    {}", store));
    }
    std::fs::write(dir.join("pipelines/objects.yaml"), pipeline).unwrap();
    dir
}

fn sluice(dir: &Path, secret: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.current_dir(dir).env("SLUICE_TEST_S3_KEY_ID", KEY_ID).env("SLUICE_TEST_S3_SECRET", secret);
    c
}

fn run_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> =
        ["run", "pipelines/objects.yaml", "--summary", "json", "--fixed-clock", CLOCK].map(String::from).to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn run(dir: &Path, extra: &[&str]) -> Output {
    sluice(dir, SECRET).args(run_args(extra)).output().unwrap()
}

fn examples() -> [PathBuf; 2] {
    let hl7 = root().join("examples/hl7");
    [hl7.join("feed-2024-01-15.hl7"), hl7.join("rejects.hl7")]
}

/// No secret, name or SSN of the examples in `console`.
fn expect_no_secret_or_phi(console: &str) {
    assert!(!console.contains(SECRET), "a secret in the output");
    for value in common::phi_values(&examples()) {
        assert!(!console.contains(&value), "PHI value in the output: {value}");
    }
}

/// The objects the last run's audit log names (its records' `source:url#index`), sorted.
fn objects_read(dir: &Path) -> Vec<String> {
    let audit = std::fs::read_to_string(dir.join("out/audit.jsonl")).unwrap();
    let mut urls: Vec<String> = audit
        .lines()
        .filter_map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            let record = e["record"].as_str()?;
            let (_, file) = record.split_once(':')?;
            Some(file.rsplit_once('#')?.0.to_string())
        })
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

#[test]
fn each_object_is_taken_once_across_runs_and_new_or_changed_ones_next_time() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [feed, rejects] = examples();
    put(&moto, "inbound", "adt/2024/01/feed.hl7", &feed);
    put(&moto, "inbound", "adt/2024/01/rejects.hl7", &rejects);
    // Outside the glob: never read.
    put(&moto, "inbound", "adt/readme.txt", &feed);
    put(&moto, "inbound", "other/feed.hl7", &feed);
    let dir = setup("objstore-once", &moto, None);
    let mut console = String::new();
    let mut go = |extra: &[&str]| {
        let out = run(&dir, extra);
        console.push_str(&text(&out.stdout));
        console.push_str(&text(&out.stderr));
        assert!(out.status.success(), "{}", text(&out.stderr));
        summary(&out)
    };
    let first = go(&[]);
    expect_totals(&first, 1);
    let sink = std::fs::read_to_string(dir.join("out/patient-events.jsonl")).unwrap();
    assert_eq!(sink.lines().count() as u64, PER_COPY.1);
    assert_eq!(objects_read(&dir), ["s3://inbound/adt/2024/01/feed.hl7", "s3://inbound/adt/2024/01/rejects.hl7"]);

    // Nothing new: nothing read.
    let second = go(&[]);
    assert_eq!(second["records_in"], 0, "{second}");

    // A late object: only it.
    let feed_only = common::messages(&feed).len() as u64;
    put(&moto, "inbound", "adt/2024/02/late.hl7", &feed);
    let third = go(&[]);
    assert_eq!(third["records_in"], feed_only, "{third}");
    assert_eq!(objects_read(&dir), ["s3://inbound/adt/2024/02/late.hl7"], "only the new object");
    // What the earlier runs wrote is kept: the sink, the DLQ and the audit chain go on.
    let delivered_late = third["delivered"].as_u64().unwrap();
    let sink = std::fs::read_to_string(dir.join("out/patient-events.jsonl")).unwrap();
    assert_eq!(sink.lines().count() as u64, PER_COPY.1 + delivered_late, "the first run's records are still there");
    let dlq = std::fs::read_to_string(dir.join("out/dlq.jsonl")).unwrap();
    let dlq_late = third["dlq"].as_u64().unwrap();
    assert_eq!(dlq.lines().count() as u64, PER_COPY.2 + dlq_late, "the first run's DLQ entries are still there");
    // Each run's audit log is its own chain; the earlier runs' logs are kept beside it.
    for log in ["out/audit.jsonl", "out/audit.jsonl.1", "out/audit.jsonl.2"] {
        let verify = sluice(&dir, SECRET).args(["audit", "verify", log]).output().unwrap();
        assert!(verify.status.success(), "{log}: {}", text(&verify.stderr));
    }

    // An object overwritten with other content is a new version: read whole, once.
    put(&moto, "inbound", "adt/2024/01/feed.hl7", &rejects);
    let fourth = go(&[]);
    assert_eq!(fourth["records_in"], common::messages(&rejects).len() as u64, "{fourth}");
    assert_eq!(objects_read(&dir), ["s3://inbound/adt/2024/01/feed.hl7"]);
    assert_eq!(go(&[])["records_in"], 0);
    expect_no_secret_or_phi(&console);
}

#[test]
fn an_object_overwritten_after_the_listing_is_left_to_the_next_run_with_rt137() {
    use common::http_server::{Reply, Server};
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [feed, rejects] = examples();
    // `a-big.hl7` is read first and keeps the reader busy: one-record batches, and a sink that
    // answers its first request late, so backpressure stops the reader inside it.
    let big = workspace("objstore-vanish-input");
    let big_file = big.join("a-big.hl7");
    let one = [std::fs::read(&feed).unwrap(), b"\r\n".to_vec()].concat();
    std::fs::write(&big_file, one.repeat(20)).unwrap();
    put(&moto, "inbound", "adt/a-big.hl7", &big_file);
    put(&moto, "inbound", "adt/b-later.hl7", &feed);
    let server =
        Server::start(
            |n| if n == 1 { Reply::Late(std::time::Duration::from_secs(8)) } else { Reply::Status(200, None) },
        );
    let dir = setup("objstore-vanish", &moto, None);
    common::held_run::with_http_sink(&dir.join("pipelines/objects.yaml"), &server.url);

    let mut running = common::Running::spawn(sluice(&dir, SECRET).args(run_args(&[])));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while server.seen().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no request: {}", running.stderr.lock().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Listed, not read yet: overwritten with other content (a new ETag).
    put(&moto, "inbound", "adt/b-later.hl7", &rejects);
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut running.child.stdout.take().unwrap(), &mut stdout).unwrap();
    let status = running.child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let stderr = running.stderr.lock().unwrap().clone();
    assert!(status.success(), "{stderr}");
    let first: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(stderr.contains("RT137"), "the warning: {stderr}");
    assert_eq!(first["records_in"], 20 * common::messages(&feed).len() as u64, "{first}");
    assert_eq!(first["balanced"], true, "{first}");
    assert_eq!(objects_read(&dir), ["s3://inbound/adt/a-big.hl7"], "the overwritten object was not read");
    // The next run reads the new version, whole, and nothing else.
    let second = summary(&run(&dir, &[]));
    assert_eq!(second["records_in"], common::messages(&rejects).len() as u64, "{second}");
    assert_eq!(objects_read(&dir), ["s3://inbound/adt/b-later.hl7"]);
    expect_no_secret_or_phi(&format!("{stdout}{stderr}"));
}

#[test]
fn a_listing_longer_than_one_page_is_read_to_its_end() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [_, rejects] = examples();
    // 1,005 objects: more than the 1,000 keys of one ListObjectsV2 page.
    let body = "data = open(sys.argv[2], 'rb').read()\n\
                for i in range(int(sys.argv[3])):\n\
                \x20   s3.put_object(Bucket='inbound', Key='adt/many/%04d.hl7' % i, Body=data)\n\
                page = s3.list_objects_v2(Bucket='inbound', Prefix='adt/')\n\
                print(page['KeyCount'], page['IsTruncated'])\n";
    let page = boto3(&moto, body, &[rejects.to_str().unwrap(), "1005"]);
    assert_eq!(page.trim(), "1000 True", "the server pages its listing at 1,000 keys");
    let dir = setup("objstore-pages", &moto, None);
    let out = run(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = summary(&out);
    assert_eq!(s["records_in"], 1005 * common::messages(&rejects).len() as u64, "{s}");
    // And the next run takes none of them again.
    assert_eq!(summary(&run(&dir, &[]))["records_in"], 0);
}

#[test]
fn kill_9_then_resume_gives_every_object_record_exactly_once() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    // 8 objects of 250 copies of the examples: 132,000 messages.
    let (objects, per_object) = (8u64, 250usize);
    let [feed, rejects] = examples();
    let mut one = Vec::new();
    for file in [&feed, &rejects] {
        one.extend(std::fs::read(file).unwrap());
        one.extend_from_slice(b"\r\n");
    }
    let scratch = common::scratch("objstore-kill-input");
    let body = scratch.join("copies.hl7");
    std::fs::write(&body, one.repeat(per_object)).unwrap();
    for i in 0..objects {
        put(&moto, "inbound", &format!("adt/part-{i}.hl7"), &body);
    }
    let copies = objects * per_object as u64;
    let dir = setup("objstore-kill", &moto, None);
    let spawn = |resume: bool| {
        let extra: &[&str] = if resume { &["--resume"] } else { &[] };
        sluice(&dir, SECRET).args(run_args(extra)).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let mut ended = kill_at_random_moments(&dir, copies, 3, spawn, || true, || run(&dir, &[]));
    assert!(ended.kills >= 1, "the kills should land inside the run");
    let last = ended.end(|| run(&dir, &["--resume"]));
    assert!(last.status.success(), "{}", text(&last.stderr));
    expect_totals(&summary(&last), copies);
    expect_exactly_once(&dir, copies);
    // The objects are taken: the next run reads none of them.
    assert_eq!(summary(&run(&dir, &[]))["records_in"], 0);
    expect_no_secret_or_phi(&(ended.console + &text(&last.stderr)));
}

#[test]
fn a_jsonl_sink_uploads_its_object_when_the_run_completes() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    create_bucket(&moto, "results");
    let [feed, rejects] = examples();
    put(&moto, "inbound", "adt/feed.hl7", &feed);
    put(&moto, "inbound", "adt/rejects.hl7", &rejects);
    let dir = setup("objstore-sink", &moto, Some("s3://results/events/{run_id}.jsonl"));
    let out = run(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = summary(&out);
    expect_totals(&s, 1);
    let run_id = s["run_id"].as_str().unwrap();
    let listed = boto3(&moto, "print([o['Key'] for o in s3.list_objects_v2(Bucket='results')['Contents']])\n", &[]);
    assert_eq!(listed.trim(), format!("['events/{run_id}.jsonl']"));
    let body = boto3(
        &moto,
        "sys.stdout.write(s3.get_object(Bucket='results', Key=sys.argv[2])['Body'].read().decode())\n",
        &[&format!("events/{run_id}.jsonl")],
    );
    let staged = std::fs::read_to_string(dir.join("pipelines/.sluice-staging/patient_events/{run_id}.jsonl")).unwrap();
    assert_eq!(body, staged, "the object holds the staging file's bytes");
    assert_eq!(body.lines().count() as u64, PER_COPY.1);
    let mut console = text(&out.stdout) + &text(&out.stderr);

    // `sluice plan` shows the references, not their values.
    let plan = sluice(&dir, SECRET).args(["plan", "pipelines/objects.yaml", "--format", "json"]).output().unwrap();
    assert!(text(&plan.stdout).contains("${SLUICE_TEST_S3_SECRET}"), "{}", text(&plan.stderr));
    console.push_str(&text(&plan.stdout));

    // A wrong secret: refused, with its code, and the secret shown nowhere.
    put(&moto, "inbound", "adt/late.hl7", &feed);
    let wrong = sluice(&dir, "not-the-secret").args(run_args(&[])).output().unwrap();
    console.push_str(&text(&wrong.stderr));
    assert!(!text(&wrong.stderr).contains("not-the-secret"));
    expect_no_secret_or_phi(&console);
}

#[test]
fn wrong_credentials_and_an_unreachable_store_stop_the_run_with_their_codes() {
    // moto checks signatures once its IAM is on (INITIAL_NO_AUTH_ACTION_COUNT): a user with a
    // key is created first, then a request signed with another secret is refused. (moto's
    // check also refuses object_store's signed listings made with the right key, 5.1.18:
    // SignatureDoesNotMatch; the accepted path is tested above against moto without its IAM.)
    let moto = moto::start(Some(4));
    let script = "iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                  \x20   aws_access_key_id='x', aws_secret_access_key='x')\n\
                  iam.create_user(UserName='reader')\n\
                  import json\n\
                  allow = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}]}\n\
                  iam.put_user_policy(UserName='reader', PolicyName='s3', PolicyDocument=json.dumps(allow))\n\
                  k = iam.create_access_key(UserName='reader')['AccessKey']\n\
                  s = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1',\n\
                  \x20   aws_access_key_id=k['AccessKeyId'], aws_secret_access_key=k['SecretAccessKey'])\n\
                  s.create_bucket(Bucket='inbound')\n\
                  print(k['AccessKeyId'], k['SecretAccessKey'])\n";
    let keys = boto3(&moto, script, &[]);
    let (id, secret) = keys.trim().split_once(' ').unwrap();
    let dir = setup("objstore-denied", &moto, None);
    let denied = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .env("SLUICE_TEST_S3_KEY_ID", id)
        .env("SLUICE_TEST_S3_SECRET", "a-wrong-secret-key-0000")
        .args(run_args(&[]))
        .output()
        .unwrap();
    assert_eq!(error_code(&denied), "RT136", "{}", text(&denied.stderr));
    let console = text(&denied.stdout) + &text(&denied.stderr);
    assert!(!console.contains("a-wrong-secret-key-0000") && !console.contains(secret), "{console}");
    drop(moto);

    // Nothing listens there any more.
    let gone = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(&dir)
        .env("SLUICE_TEST_S3_KEY_ID", id)
        .env("SLUICE_TEST_S3_SECRET", secret)
        .args(run_args(&[]))
        .output()
        .unwrap();
    assert_eq!(error_code(&gone), "RT135", "{}", text(&gone.stderr));
}

#[test]
fn after_move_to_moves_each_object_once_its_run_completed() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [feed, rejects] = examples();
    put(&moto, "inbound", "adt/2024/feed.hl7", &feed);
    put(&moto, "inbound", "adt/2024/rejects.hl7", &rejects);
    let dir = setup("objstore-move", &moto, None);
    let spec = dir.join("pipelines/objects.yaml");
    let pipeline = std::fs::read_to_string(&spec).unwrap().replace(
        "path: s3://inbound/adt/**/*.hl7\n",
        "path: s3://inbound/adt/**/*.hl7\n    after: {move_to: processed/}\n",
    );
    std::fs::write(&spec, pipeline).unwrap();
    let keys = || {
        boto3(&moto, "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='inbound').get('Contents', [])))\n", &[])
    };
    let out = run(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    expect_totals(&summary(&out), 1);
    assert_eq!(keys().trim(), "['processed/adt/2024/feed.hl7', 'processed/adt/2024/rejects.hl7']");
    // A late object: read by the next run, then moved too; the moved ones are not read again.
    put(&moto, "inbound", "adt/2024/late.hl7", &rejects);
    let next = run(&dir, &[]);
    assert_eq!(summary(&next)["records_in"], common::messages(&rejects).len() as u64);
    assert_eq!(
        keys().trim(),
        "['processed/adt/2024/feed.hl7', 'processed/adt/2024/late.hl7', 'processed/adt/2024/rejects.hl7']"
    );
}

/// Runs bundled pipeline `name` as it is (local examples) and again with `local` (its source
/// path) replaced by `url` and a store, in two workspaces; returns both, as
/// (summary, sink lines sorted, DLQ reasons sorted) with object URLs written as local paths.
fn local_and_objects(
    moto: &Moto,
    name: &str,
    local: &str,
    url: &str,
    sink: &str,
) -> [(serde_json::Value, Vec<String>, Vec<String>); 2] {
    let store = store_block(moto);
    let mut results = Vec::new();
    for remote in [false, true] {
        let dir = workspace(&format!("objstore-{name}-{remote}"));
        let file = dir.join(format!("pipelines/{name}.yaml"));
        let mut pipeline = std::fs::read_to_string(&file).unwrap();
        if !pipeline.contains("\nstate:") {
            // Objects are taken once across runs through the state store.
            pipeline.push_str(&format!("state:\n  path: ../out/{name}/state.db\n"));
        }
        if remote {
            let path = format!("path: {local}");
            assert!(pipeline.contains(&path), "{name} reads {local}");
            pipeline = pipeline.replace(&path, &format!("path: {url}\n    {store}"));
        }
        std::fs::write(&file, pipeline).unwrap();
        let args = ["run", &format!("pipelines/{name}.yaml"), "--summary", "json", "--fixed-clock", CLOCK];
        let out = sluice(&dir, SECRET).args(args).output().unwrap();
        assert!(out.status.success(), "{name} (objects: {remote}): {}", text(&out.stderr));
        let console = text(&out.stdout) + &text(&out.stderr);
        assert!(!console.contains(SECRET) && !console.contains("panicked"), "{console}");
        let lines = |path: &str| -> Vec<String> {
            let body = std::fs::read_to_string(dir.join(path)).unwrap_or_default();
            let mut lines: Vec<String> = body.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        // The audit log id starts with the run id, which differs (the plans do): keep the
        // record's number in the run.
        let records: Vec<String> = lines(&format!("out/{name}/{sink}"))
            .iter()
            .map(|l| {
                let mut r: serde_json::Value = serde_json::from_str(l).unwrap();
                if let Some(id) = r.pointer_mut("/compliance/audit_log_id") {
                    *id = id.as_str().and_then(|s| s.rsplit_once('-')).map(|(_, n)| n.into()).unwrap_or_default();
                }
                r.to_string()
            })
            .collect();
        let mut records = records;
        records.sort();
        // DLQ entries name their file and carry a sealed payload (random nonce): compare the
        // stage, code and reason of each.
        let mut dlq: Vec<String> = lines(&format!("out/{name}/dlq.jsonl"))
            .iter()
            .map(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {} {}", e["stage"], e["code"], e["reason"])
            })
            .collect();
        dlq.sort();
        if remote {
            // Nothing new in the bucket: a rerun takes nothing.
            let again = sluice(&dir, SECRET).args(args).output().unwrap();
            assert!(again.status.success(), "{}", text(&again.stderr));
            assert_eq!(summary(&again)["records_in"], 0, "{name}: a rerun read objects again");
        }
        results.push((summary(&out), records, dlq, dir));
    }
    let acks = |dir: &Path| -> Vec<(String, String)> {
        let mut acks: Vec<(String, String)> = std::fs::read_dir(dir.join(format!("out/{name}/acks")))
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        acks.sort();
        acks
    };
    let local_acks = acks(&results[0].3);
    assert_eq!(local_acks, acks(&results[1].3), "{name}: the same acknowledgments");
    assert_eq!(local_acks.is_empty(), name != "x12-claims", "{name}: acknowledgments for X12 only");
    let results: Vec<_> = results.into_iter().map(|(s, r, d, _)| (s, r, d)).collect();
    results.try_into().unwrap()
}

#[test]
fn x12_and_fhir_objects_are_read_like_local_files() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    for (folder, prefix) in [("examples/x12-claims/data", "x12/2024"), ("examples/fhir-patients/data", "fhir/exports")]
    {
        for entry in std::fs::read_dir(root().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            let key = format!("{prefix}/{}", path.file_name().unwrap().to_string_lossy());
            put(&moto, "inbound", &key, &path);
        }
    }
    for (name, local, url, sink) in [
        ("x12-claims", "../examples/x12-claims/data/*.x12", "s3://inbound/x12/**/*.x12", "transaction-sets.jsonl"),
        ("fhir-patients", "../examples/fhir-patients/data/*", "s3://inbound/fhir/exports/*", "patient-events.jsonl"),
    ] {
        let [(local_summary, local_records, local_dlq), (object_summary, object_records, object_dlq)] =
            local_and_objects(&moto, name, local, url, sink);
        for count in ["records_in", "delivered", "dlq", "filtered"] {
            assert_eq!(local_summary[count], object_summary[count], "{name}: {count}");
        }
        assert!(object_summary["delivered"].as_u64().unwrap() > 0, "{name}: {object_summary}");
        assert!(object_summary["dlq"].as_u64().unwrap() > 0, "{name}: the examples' bad record reaches the DLQ");
        assert_eq!(local_records, object_records, "{name}: the same records");
        assert_eq!(local_dlq, object_dlq, "{name}: the same rejections");
    }
}

/// The tags of `key` in bucket `inbound` as boto3 reads them (GetObjectTagging), sorted:
/// `key=value` pairs.
fn tags_of(moto: &Moto, key: &str) -> String {
    boto3(
        moto,
        "t = s3.get_object_tagging(Bucket='inbound', Key=sys.argv[2])['TagSet']\n\
         print(sorted(x['Key'] + '=' + x['Value'] for x in t))\n",
        &[key],
    )
    .trim()
    .to_string()
}

/// Sets the tags of `key` in bucket `inbound` (boto3's PutObjectTagging), as another tool would.
fn set_tags(moto: &Moto, key: &str, tags: &[(&str, &str)]) {
    let set: Vec<String> = tags.iter().map(|(k, v)| format!("{{'Key': '{k}', 'Value': '{v}'}}")).collect();
    boto3(
        moto,
        &format!(
            "s3.put_object_tagging(Bucket='inbound', Key=sys.argv[2], Tagging={{'TagSet': [{}]}})\n",
            set.join(", ")
        ),
        &[key],
    );
}

fn etag_of(moto: &Moto, key: &str) -> String {
    boto3(moto, "print(s3.head_object(Bucket='inbound', Key=sys.argv[2])['ETag'])\n", &[key]).trim().to_string()
}

/// The `objects.yaml` of `setup` with `after` added to its source.
fn with_after(dir: &Path, after: &str) {
    let spec = dir.join("pipelines/objects.yaml");
    let pipeline = std::fs::read_to_string(&spec).unwrap().replace(
        "path: s3://inbound/adt/**/*.hl7\n",
        &format!("path: s3://inbound/adt/**/*.hl7\n    after: {after}\n"),
    );
    std::fs::write(&spec, pipeline).unwrap();
}

#[test]
fn after_tag_tags_each_object_once_its_run_completed_and_keeps_its_other_tags() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [feed, rejects] = examples();
    put(&moto, "inbound", "adt/2024/feed.hl7", &feed);
    put(&moto, "inbound", "adt/2024/rejects.hl7", &rejects);
    // A tag another tool set: kept (S3 replaces the whole set on a put; Sluice merges).
    set_tags(&moto, "adt/2024/feed.hl7", &[("owner", "lab")]);
    let etags = [etag_of(&moto, "adt/2024/feed.hl7"), etag_of(&moto, "adt/2024/rejects.hl7")];
    let dir = setup("objstore-tag", &moto, None);
    with_after(&dir, "{tag: {sluice-status: processed, sluice-by: objstore-tag}}");
    let out = run(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    expect_totals(&summary(&out), 1);
    expect_no_secret_or_phi(&(text(&out.stdout) + &text(&out.stderr)));
    assert_eq!(
        tags_of(&moto, "adt/2024/feed.hl7"),
        "['owner=lab', 'sluice-by=objstore-tag', 'sluice-status=processed']"
    );
    assert_eq!(tags_of(&moto, "adt/2024/rejects.hl7"), "['sluice-by=objstore-tag', 'sluice-status=processed']");
    // Tagging changes neither content nor ETag: the objects stay in place, taken, not read again.
    assert_eq!([etag_of(&moto, "adt/2024/feed.hl7"), etag_of(&moto, "adt/2024/rejects.hl7")], etags);
    let again = run(&dir, &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(summary(&again)["records_in"], 0);
    // A late object: read by the next run alone, and tagged then.
    put(&moto, "inbound", "adt/2024/late.hl7", &rejects);
    assert_eq!(tags_of(&moto, "adt/2024/late.hl7"), "[]");
    let next = run(&dir, &[]);
    assert_eq!(summary(&next)["records_in"], common::messages(&rejects).len() as u64);
    assert_eq!(tags_of(&moto, "adt/2024/late.hl7"), "['sluice-by=objstore-tag', 'sluice-status=processed']");
}

#[test]
fn an_object_that_cannot_be_tagged_is_a_warning_and_is_tagged_by_a_later_run_without_being_read_again() {
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [feed, rejects] = examples();
    put(&moto, "inbound", "adt/2024/feed.hl7", &feed);
    put(&moto, "inbound", "adt/2024/rejects.hl7", &rejects);
    // Ten tags already: one more would pass S3's limit, so the object is not tagged (RT122).
    let full: Vec<(String, String)> = (0..10).map(|n| (format!("t{n}"), "x".to_string())).collect();
    let full_refs: Vec<(&str, &str)> = full.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    set_tags(&moto, "adt/2024/feed.hl7", &full_refs);
    let dir = setup("objstore-tag-full", &moto, None);
    with_after(&dir, "{tag: {sluice-status: processed}, move_to: processed/}");
    let out = run(&dir, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    expect_totals(&summary(&out), 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("RT122") && stderr.contains("more than S3's limit of 10"), "the warning: {stderr}");
    // The signed request's URL (which holds a signature and the key id) is never shown.
    assert!(!stderr.contains("X-Amz-") && !stderr.contains(KEY_ID), "{stderr}");
    expect_no_secret_or_phi(&(text(&out.stdout) + &stderr));
    let keys = || {
        boto3(&moto, "print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='inbound').get('Contents', [])))\n", &[])
    };
    // Tagged, then moved (the copy keeps its tags); the untagged one stays in place.
    assert_eq!(keys().trim(), "['adt/2024/feed.hl7', 'processed/adt/2024/rejects.hl7']");
    assert_eq!(tags_of(&moto, "processed/adt/2024/rejects.hl7"), "['sluice-status=processed']");
    // Room made: the next run reads nothing (the object was taken), and tags and moves it.
    set_tags(&moto, "adt/2024/feed.hl7", &full_refs[..9]);
    let next = run(&dir, &[]);
    assert!(next.status.success(), "{}", text(&next.stderr));
    assert_eq!(summary(&next)["records_in"], 0);
    assert!(!text(&next.stderr).contains("RT122"), "{}", text(&next.stderr));
    assert_eq!(keys().trim(), "['processed/adt/2024/feed.hl7', 'processed/adt/2024/rejects.hl7']");
    let tags = tags_of(&moto, "processed/adt/2024/feed.hl7");
    assert!(
        tags.contains("'sluice-status=processed'") && tags.contains("'t8=x'") && !tags.contains("'t9=x'"),
        "{tags}"
    );
}

#[test]
fn an_object_deleted_or_overwritten_before_its_tag_is_rt184_once_in_the_log_and_named_in_the_audit() {
    use common::held_run::{objects_gone, run_held, with_http_sink};
    use common::http_server::{Reply, Server};
    let moto = moto::start(None);
    create_bucket(&moto, "inbound");
    let [feed, rejects] = examples();
    // One message each, so an object whose record reached the sink has been read to its end.
    let files = workspace("objstore-gone-input");
    let one = files.join("one.hl7");
    std::fs::write(&one, &common::messages(&feed)[0]).unwrap();
    put(&moto, "inbound", "adt/a-deleted.hl7", &one);
    put(&moto, "inbound", "adt/b-kept.hl7", &one);
    // The first request of each held run (two records in the first, one in the second).
    let server = Server::start(|n| if n == 1 || n == 3 { Reply::Held } else { Reply::Status(200, None) });
    let dir = setup("objstore-gone", &moto, None);
    with_http_sink(&dir.join("pipelines/objects.yaml"), &server.url);
    with_after(&dir, "{tag: {sluice-status: processed}}");

    // Deleted after its read, before the run completed.
    let out = run_held(sluice(&dir, SECRET).args(run_args(&[])), &server, || {
        boto3(&moto, "s3.delete_object(Bucket='inbound', Key=sys.argv[2])\n", &["adt/a-deleted.hl7"]);
    });
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary(&out)["records_in"], 2);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("RT184")).collect();
    assert_eq!(warnings.len(), 1, "one warning, for the deleted object: {stderr}");
    assert!(warnings[0].contains("deleted or moved away by someone else before it was tagged"), "{stderr}");
    // The key stays out of the log (it may hold a name); the audit log names the object.
    assert!(!stderr.contains("a-deleted"), "{stderr}");
    assert!(!stderr.contains("RT122"), "{stderr}");
    expect_no_secret_or_phi(&(text(&out.stdout) + &stderr));
    let audit = dir.join("out/audit.jsonl");
    assert_eq!(
        objects_gone(&audit),
        [(
            "s3://inbound/adt/a-deleted.hl7".to_string(),
            "deleted or moved away by someone else before it was tagged".to_string()
        )]
    );
    let verify = Command::new(env!("CARGO_BIN_EXE_sluice")).args(["audit", "verify"]).arg(&audit).output().unwrap();
    assert!(verify.status.success(), "the chain goes on: {}", text(&verify.stderr));
    assert_eq!(tags_of(&moto, "adt/b-kept.hl7"), "['sluice-status=processed']");

    // Overwritten (a new ETag) after its read: the warning says so, the new version is left
    // untagged for the next run; the object deleted earlier is not reported again.
    put(&moto, "inbound", "adt/c-overwritten.hl7", &one);
    let out = run_held(sluice(&dir, SECRET).args(run_args(&[])), &server, || {
        put(&moto, "inbound", "adt/c-overwritten.hl7", &rejects)
    });
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary(&out)["records_in"], 1);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("RT184")).collect();
    assert_eq!(warnings.len(), 1, "one warning, for the overwritten object: {stderr}");
    assert!(warnings[0].contains("overwritten before it was tagged"), "{stderr}");
    assert_eq!(
        objects_gone(&audit),
        [(
            "s3://inbound/adt/c-overwritten.hl7".to_string(),
            "overwritten before it was tagged: the new version is a new object, for the next run".to_string()
        )]
    );
    assert_eq!(tags_of(&moto, "adt/c-overwritten.hl7"), "[]");

    // The next run reads the new version and tags it; nothing is reported again, then or later.
    for expected in [common::messages(&rejects).len() as u64, 0] {
        let out = run(&dir, &[]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(summary(&out)["records_in"], expected);
        assert!(!stderr.contains("RT184") && !stderr.contains("RT122"), "{stderr}");
        assert!(objects_gone(&audit).is_empty());
    }
    assert_eq!(tags_of(&moto, "adt/c-overwritten.hl7"), "['sluice-status=processed']");
}
