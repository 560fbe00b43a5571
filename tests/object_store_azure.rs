//! Azure Blob Storage sources and sinks against a real Azure-compatible server: Azurite
//! (Microsoft's emulator, installed from npm into `target/azurite` by `scripts/setup-azurite`,
//! which this test runs; no server is a failure, never a skip), started on 127.0.0.1 on a free
//! port. Blobs are put and read back with Microsoft's Python SDK (`azure-storage-blob`), not
//! our client. Azurite checks the Shared Key signature of every request.
//!
//! - HL7 files in a container -> `sluice run` -> JSON Lines uploaded to another container:
//!   the quick start's counts, the blob holds the staging file's bytes; a rerun takes nothing;
//!   a new blob is the only one the next run takes.
//! - A wrong account key stops the run with RT136; no key, name or SSN shows in the output.
//! - `after: {tag}`: each blob read is tagged once its run completed (Set Blob Tags, signed
//!   with Shared Key, which Azurite checks), merged with the tags another client set, as the
//!   SDK reads them back; its ETag is unchanged and it is never read again; a late blob is
//!   tagged by the run that reads it.
//! - A blob that cannot be tagged (10 tags already) is the warning RT122 and stays in place
//!   (with `move_to`), without the request's signature or key in any message; the next run
//!   reads nothing, and tags and moves it. Moved blobs (Azure's copy drops tags) carry the
//!   whole tag set, other clients' tags too.
//! - A blob moved away by someone else after its read and before the run completed is the
//!   warning RT184 (without its name), an `object_gone` entry in the audit log (with it), and
//!   the run's other blob is moved; later runs read nothing and say nothing of it again.
//! - With a SAS token (`AZURE_STORAGE_SAS_KEY`) instead of the key: one without the tag
//!   permission is RT122 (HTTP 403, the token's signature not shown), and with it the next run
//!   tags the blob without reading it again.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::checkpoints::{PER_COPY, error_code, expect_totals, summary};
use common::{root, text, workspace};

/// Azurite's well-known development account and key (public, in Microsoft's docs).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CLOCK: &str = "2024-01-01T00:00:00Z";

/// Azurite's blob service on 127.0.0.1, stopped when dropped.
struct Azurite {
    child: Child,
    endpoint: String,
    _data: common::Workspace,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prefix() -> PathBuf {
    root().join("target/azurite")
}

/// Azurite with its own data directory: tests run in parallel, each with a server of its own.
fn start_azurite(name: &str) -> Azurite {
    let status = Command::new(root().join("scripts/setup-azurite")).status().expect("scripts/setup-azurite runs");
    assert!(status.success(), "scripts/setup-azurite could not install Azurite: this test needs it (npm, PyPI)");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let data = common::scratch(&format!("azurite-data-{name}"));
    let child = Command::new(prefix().join("node_modules/.bin/azurite-blob"))
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string(), "--silent", "--skipApiVersionCheck"])
        .arg("--location")
        .arg(&*data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("azurite-blob starts");
    let azurite = Azurite { child, endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"), _data: data };
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "azurite did not listen on port {port} within 120 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    azurite
}

/// Runs a Python script with `svc`, a `BlobServiceClient` of the emulator; `argv[2:]` are the
/// arguments.
fn sdk(azurite: &Azurite, body: &str, args: &[&str]) -> String {
    let script = format!(
        "import sys\n\
         from azure.storage.blob import BlobServiceClient\n\
         conn = 'DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint=' + sys.argv[1]\n\
         svc = BlobServiceClient.from_connection_string(conn)\n{body}"
    );
    let out = Command::new(prefix().join("venv/bin/python"))
        .arg("-c")
        .arg(&script)
        .arg(&azurite.endpoint)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "azure-storage-blob: {}", text(&out.stderr));
    text(&out.stdout)
}

fn put(azurite: &Azurite, container: &str, name: &str, from: &Path) {
    sdk(
        azurite,
        "svc.get_blob_client(sys.argv[2], sys.argv[3]).upload_blob(open(sys.argv[4], 'rb').read(), overwrite=True)\n",
        &[container, name, from.to_str().unwrap()],
    );
}

fn setup(azurite: &Azurite, name: &str) -> common::Workspace {
    let dir = workspace(name);
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let store = format!(
        "store:\n      endpoint: {}\n      account: {ACCOUNT}\n      access_key: ${{SLUICE_TEST_AZURE_KEY}}",
        azurite.endpoint
    );
    let pipeline = quickstart
        .replace("name: quickstart", "name: azure-objects")
        .replace("path: ../examples/hl7/*.hl7", &format!("path: az://inbound/adt/*.hl7\n    {store}"))
        .replace(
            "path: ../out/quickstart/patient-events.jsonl",
            &format!("path: az://results/events-{{run_id}}.jsonl\n    {store}"),
        )
        .replace("../out/quickstart/", "../out/");
    std::fs::write(dir.join("pipelines/objects.yaml"), pipeline).unwrap();
    dir
}

fn run(dir: &Path, key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(dir)
        .env("SLUICE_TEST_AZURE_KEY", key)
        .args(["run", "pipelines/objects.yaml", "--summary", "json", "--fixed-clock", CLOCK])
        .output()
        .unwrap()
}

/// The tags of blob `name` in container `inbound` as the SDK reads them (Get Blob Tags),
/// sorted `key=value` pairs.
fn tags_of(azure: &Azurite, name: &str) -> String {
    sdk(
        azure,
        "t = svc.get_blob_client('inbound', sys.argv[2]).get_blob_tags()\n\
         print(sorted(k + '=' + v for k, v in t.items()))\n",
        &[name],
    )
    .trim()
    .to_string()
}

/// Sets the tags of blob `name` in container `inbound` (the SDK's Set Blob Tags), as another
/// client would; `argv[3:]` are `key=value` pairs.
fn set_tags(azure: &Azurite, name: &str, tags: &[(&str, &str)]) {
    let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec![name];
    args.extend(pairs.iter().map(String::as_str));
    sdk(
        azure,
        "svc.get_blob_client('inbound', sys.argv[2]).set_blob_tags(dict(a.split('=', 1) for a in sys.argv[3:]))\n",
        &args,
    );
}

fn etag_of(azure: &Azurite, name: &str) -> String {
    sdk(azure, "print(svc.get_blob_client('inbound', sys.argv[2]).get_blob_properties().etag)\n", &[name])
        .trim()
        .to_string()
}

fn blobs(azure: &Azurite) -> String {
    sdk(azure, "print(sorted(b.name for b in svc.get_container_client('inbound').list_blobs()))\n", &[])
        .trim()
        .to_string()
}

/// The `objects.yaml` of `setup` with `after` added to its source.
fn with_after(dir: &Path, after: &str) {
    let spec = dir.join("pipelines/objects.yaml");
    let pipeline = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("path: az://inbound/adt/*.hl7\n", &format!("path: az://inbound/adt/*.hl7\n    after: {after}\n"));
    std::fs::write(&spec, pipeline).unwrap();
}

/// Neither the key, nor a signature, nor a name or an SSN of the examples in `console`.
fn expect_no_secret_or_phi(console: &str) {
    assert!(!console.contains(KEY) && !console.contains("SharedKey") && !console.contains("sig="), "{console}");
    let hl7 = root().join("examples/hl7");
    for value in common::phi_values(&[hl7.join("feed-2024-01-15.hl7"), hl7.join("rejects.hl7")]) {
        assert!(!console.contains(&value), "PHI value in the output: {value}");
    }
}

#[test]
fn after_tag_tags_each_blob_once_its_run_completed_and_keeps_its_other_tags() {
    let azurite = start_azurite("tag");
    sdk(&azurite, "svc.create_container('inbound')\nsvc.create_container('results')\n", &[]);
    let hl7 = root().join("examples/hl7");
    let (feed, rejects) = (hl7.join("feed-2024-01-15.hl7"), hl7.join("rejects.hl7"));
    put(&azurite, "inbound", "adt/feed.hl7", &feed);
    put(&azurite, "inbound", "adt/rejects.hl7", &rejects);
    // A tag another client set: kept (Set Blob Tags replaces the whole set; Sluice merges).
    set_tags(&azurite, "adt/feed.hl7", &[("owner", "lab")]);
    let etags = [etag_of(&azurite, "adt/feed.hl7"), etag_of(&azurite, "adt/rejects.hl7")];
    let dir = setup(&azurite, "objstore-azure-tag");
    with_after(&dir, "{tag: {sluice-status: processed, sluice-by: objstore-az}}");
    let first = run(&dir, KEY);
    assert!(first.status.success(), "{}", text(&first.stderr));
    expect_totals(&summary(&first), 1);
    assert!(!text(&first.stderr).contains("RT122"), "{}", text(&first.stderr));
    expect_no_secret_or_phi(&(text(&first.stdout) + &text(&first.stderr)));
    assert_eq!(tags_of(&azurite, "adt/feed.hl7"), "['owner=lab', 'sluice-by=objstore-az', 'sluice-status=processed']");
    assert_eq!(tags_of(&azurite, "adt/rejects.hl7"), "['sluice-by=objstore-az', 'sluice-status=processed']");
    // Tags change neither content nor ETag: the blobs stay in place, taken, not read again.
    assert_eq!([etag_of(&azurite, "adt/feed.hl7"), etag_of(&azurite, "adt/rejects.hl7")], etags);
    let again = run(&dir, KEY);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(summary(&again)["records_in"], 0);
    // A late blob: read by the next run alone, and tagged then.
    put(&azurite, "inbound", "adt/late.hl7", &rejects);
    assert_eq!(tags_of(&azurite, "adt/late.hl7"), "[]");
    let next = run(&dir, KEY);
    assert!(next.status.success(), "{}", text(&next.stderr));
    assert_eq!(summary(&next)["records_in"], common::messages(&rejects).len() as u64);
    assert_eq!(tags_of(&azurite, "adt/late.hl7"), "['sluice-by=objstore-az', 'sluice-status=processed']");
}

#[test]
fn a_blob_that_cannot_be_tagged_is_a_warning_and_is_tagged_and_moved_by_a_later_run_without_being_read_again() {
    let azurite = start_azurite("tag-full");
    sdk(&azurite, "svc.create_container('inbound')\nsvc.create_container('results')\n", &[]);
    let hl7 = root().join("examples/hl7");
    let (feed, rejects) = (hl7.join("feed-2024-01-15.hl7"), hl7.join("rejects.hl7"));
    put(&azurite, "inbound", "adt/feed.hl7", &feed);
    put(&azurite, "inbound", "adt/rejects.hl7", &rejects);
    set_tags(&azurite, "adt/rejects.hl7", &[("owner", "lab")]);
    // Ten tags already: one more would pass Azure's limit, so the blob is not tagged (RT122).
    let full: Vec<(String, String)> = (0..10).map(|n| (format!("t{n}"), "x".to_string())).collect();
    let full_refs: Vec<(&str, &str)> = full.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    set_tags(&azurite, "adt/feed.hl7", &full_refs);
    let dir = setup(&azurite, "objstore-azure-tag-full");
    with_after(&dir, "{tag: {sluice-status: processed}, move_to: processed/}");
    let out = run(&dir, KEY);
    assert!(out.status.success(), "{}", text(&out.stderr));
    expect_totals(&summary(&out), 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("RT122") && stderr.contains("more than Azure Blob Storage's limit of 10"), "{stderr}");
    expect_no_secret_or_phi(&(text(&out.stdout) + &stderr));
    // Tagged, then moved, the copy given the whole set; the untagged one stays in place.
    assert_eq!(blobs(&azurite), "['adt/feed.hl7', 'processed/adt/rejects.hl7']");
    assert_eq!(tags_of(&azurite, "processed/adt/rejects.hl7"), "['owner=lab', 'sluice-status=processed']");
    // Room made: the next run reads nothing (the blob was taken), and tags and moves it.
    set_tags(&azurite, "adt/feed.hl7", &full_refs[..9]);
    let next = run(&dir, KEY);
    assert!(next.status.success(), "{}", text(&next.stderr));
    assert_eq!(summary(&next)["records_in"], 0);
    assert!(!text(&next.stderr).contains("RT122"), "{}", text(&next.stderr));
    assert_eq!(blobs(&azurite), "['processed/adt/feed.hl7', 'processed/adt/rejects.hl7']");
    let tags = tags_of(&azurite, "processed/adt/feed.hl7");
    assert!(
        tags.contains("'sluice-status=processed'") && tags.contains("'t8=x'") && !tags.contains("'t9=x'"),
        "{tags}"
    );
}

#[test]
fn with_a_sas_token_instead_of_the_key_blobs_are_tagged_and_a_sas_without_the_tag_permission_is_rt122() {
    let azurite = start_azurite("sas");
    sdk(&azurite, "svc.create_container('inbound')\nsvc.create_container('results')\n", &[]);
    let rejects = root().join("examples/hl7/rejects.hl7");
    put(&azurite, "inbound", "adt/rejects.hl7", &rejects);
    let dir = setup(&azurite, "objstore-azure-sas");
    with_after(&dir, "{tag: {sluice-status: processed}}");
    // No key in the store: the client takes `AZURE_STORAGE_SAS_KEY` from the environment.
    let spec = dir.join("pipelines/objects.yaml");
    let pipeline = std::fs::read_to_string(&spec).unwrap().replace("\n      access_key: ${SLUICE_TEST_AZURE_KEY}", "");
    std::fs::write(&spec, pipeline).unwrap();
    let sas = |permissions: &str| {
        sdk(
            &azurite,
            "import datetime\n\
             from azure.storage.blob import generate_account_sas, ResourceTypes, AccountSasPermissions\n\
             print(generate_account_sas('devstoreaccount1', svc.credential.account_key, \
             ResourceTypes(service=True, container=True, object=True), AccountSasPermissions.from_string(sys.argv[2]), \
             datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))\n",
            &[permissions],
        )
        .trim()
        .to_string()
    };
    let run_with = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(&*dir)
            .env("AZURE_STORAGE_SAS_KEY", token)
            .args(["run", "pipelines/objects.yaml", "--summary", "json", "--fixed-clock", CLOCK])
            .output()
            .unwrap()
    };
    // Reads and writes allowed, tags not: the run's records are durable, the tag is RT122.
    let no_tags = sas("rwdlac");
    let first = run_with(&no_tags);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let stderr = text(&first.stderr);
    assert!(stderr.contains("RT122") && stderr.contains("access denied (HTTP 403"), "{stderr}");
    assert!(!stderr.contains(no_tags.split("sig=").nth(1).unwrap()), "the SAS signature in the output: {stderr}");
    assert_eq!(tags_of(&azurite, "adt/rejects.hl7"), "[]");
    // With the tag permission: nothing read again, the blob tagged.
    let next = run_with(&sas("rwdlact"));
    assert!(next.status.success(), "{}", text(&next.stderr));
    assert_eq!(summary(&next)["records_in"], 0);
    assert!(!text(&next.stderr).contains("RT122"), "{}", text(&next.stderr));
    assert_eq!(tags_of(&azurite, "adt/rejects.hl7"), "['sluice-status=processed']");
}

#[test]
fn blobs_in_a_container_are_read_once_and_the_output_uploaded_to_another() {
    let azurite = start_azurite("read");
    sdk(&azurite, "svc.create_container('inbound')\nsvc.create_container('results')\n", &[]);
    let hl7 = root().join("examples/hl7");
    let (feed, rejects) = (hl7.join("feed-2024-01-15.hl7"), hl7.join("rejects.hl7"));
    put(&azurite, "inbound", "adt/feed.hl7", &feed);
    put(&azurite, "inbound", "adt/rejects.hl7", &rejects);
    let dir = setup(&azurite, "objstore-azure");
    let mut console = String::new();

    let first = run(&dir, KEY);
    console.push_str(&(text(&first.stdout) + &text(&first.stderr)));
    assert!(first.status.success(), "{}", text(&first.stderr));
    let s = summary(&first);
    expect_totals(&s, 1);
    let name = format!("events-{}.jsonl", s["run_id"].as_str().unwrap());
    let blob = sdk(
        &azurite,
        "sys.stdout.write(svc.get_blob_client('results', sys.argv[2]).download_blob().readall().decode())\n",
        &[&name],
    );
    assert_eq!(blob.lines().count() as u64, PER_COPY.1);
    let staged =
        std::fs::read_to_string(dir.join("pipelines/.sluice-staging/patient_events/events-{run_id}.jsonl")).unwrap();
    assert_eq!(blob, staged, "the blob holds the staging file's bytes");

    let again = run(&dir, KEY);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(summary(&again)["records_in"], 0, "nothing new, nothing read");

    put(&azurite, "inbound", "adt/late.hl7", &rejects);
    let late = run(&dir, KEY);
    console.push_str(&(text(&late.stdout) + &text(&late.stderr)));
    assert_eq!(summary(&late)["records_in"], common::messages(&rejects).len() as u64);

    // A wrong key: the emulator refuses the signature.
    let wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk=";
    let denied = run(&dir, wrong_key);
    assert_eq!(error_code(&denied), "RT136", "{}", text(&denied.stderr));
    console.push_str(&text(&denied.stderr));
    assert!(!console.contains(KEY) && !console.contains(wrong_key), "a key in the output");
    for value in common::phi_values(&[feed, rejects]) {
        assert!(!console.contains(&value), "PHI value in the output: {value}");
    }
}

#[test]
fn a_blob_moved_away_by_someone_else_before_its_move_is_rt184_once_and_named_in_the_audit() {
    use common::held_run::{objects_gone, run_held, with_http_sink};
    use common::http_server::{Reply, Server};
    let azurite = start_azurite("gone");
    sdk(&azurite, "svc.create_container('inbound')\n", &[]);
    // One message each, so a blob whose record reached the sink has been read to its end.
    let files = workspace("azure-gone-input");
    let one = files.join("one.hl7");
    std::fs::write(&one, &common::messages(&root().join("examples/hl7/feed-2024-01-15.hl7"))[0]).unwrap();
    put(&azurite, "inbound", "adt/a-taken-away.hl7", &one);
    put(&azurite, "inbound", "adt/b-kept.hl7", &one);
    let server = Server::start(|n| if n == 1 { Reply::Held } else { Reply::Status(200, None) });
    let dir = setup(&azurite, "azure-gone");
    with_http_sink(&dir.join("pipelines/objects.yaml"), &server.url);
    with_after(&dir, "{move_to: processed/}");
    let sluice = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
        c.current_dir(&dir).env("SLUICE_TEST_AZURE_KEY", KEY).args([
            "run",
            "pipelines/objects.yaml",
            "--summary",
            "json",
            "--fixed-clock",
            CLOCK,
        ]);
        c
    };
    // Another client moves the first blob elsewhere (a copy, then a delete) while the run is
    // held at its sink.
    let out = run_held(&mut sluice(), &server, || {
        sdk(
            &azurite,
            "src = svc.get_blob_client('inbound', 'adt/a-taken-away.hl7')\n\
             svc.get_blob_client('inbound', 'elsewhere/a.hl7').upload_blob(src.download_blob().readall())\n\
             src.delete_blob()\n",
            &[],
        );
    });
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary(&out)["records_in"], 2);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("RT184")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("deleted or moved away by someone else before it was moved"), "{stderr}");
    assert!(!stderr.contains("taken-away") && !stderr.contains("RT139"), "{stderr}");
    expect_no_secret_or_phi(&(text(&out.stdout) + &stderr));
    assert_eq!(
        objects_gone(&dir.join("out/audit.jsonl")),
        [(
            "az://inbound/adt/a-taken-away.hl7".to_string(),
            "deleted or moved away by someone else before it was moved".to_string()
        )]
    );
    assert_eq!(blobs(&azurite), "['elsewhere/a.hl7', 'processed/adt/b-kept.hl7']");
    // Later runs: nothing read, nothing said again.
    let next = sluice().output().unwrap();
    let stderr = text(&next.stderr);
    assert!(next.status.success(), "{stderr}");
    assert_eq!(summary(&next)["records_in"], 0);
    assert!(!stderr.contains("RT184"), "{stderr}");
    assert!(objects_gone(&dir.join("out/audit.jsonl")).is_empty());
}
