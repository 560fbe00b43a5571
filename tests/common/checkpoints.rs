//! Checkpoint tests shared by tests/resume.rs (SQLite) and tests/pg_state.rs (PostgreSQL): a
//! workspace whose pipeline `resume.yaml` is the quick start's over the examples repeated, and
//! the checks that every record was written exactly once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

use super::{text, workspace};

/// Records per copy of the examples, and how they end.
pub const PER_COPY: (u64, u64, u64, u64) = (66, 39, 6, 21);

/// A workspace whose pipeline `resume.yaml` is the quick start's, reading `input/` (the
/// examples repeated `copies` times into one file) and checkpointing every `every`.
pub fn setup(name: &str, copies: usize, every: &str) -> super::Workspace {
    let dir = workspace(name);
    let mut one = Vec::new();
    for file in ["feed-2024-01-15.hl7", "rejects.hl7"] {
        one.extend(std::fs::read(dir.join("examples/hl7").join(file)).unwrap());
        one.extend_from_slice(b"\r\n");
    }
    std::fs::create_dir_all(dir.join("input")).unwrap();
    std::fs::write(dir.join("input/feed.hl7"), one.repeat(copies)).unwrap();
    let quickstart = std::fs::read_to_string(dir.join("pipelines/quickstart.yaml")).unwrap();
    let pipeline = quickstart
        .replace("name: quickstart", "name: resume-test")
        .replace("../examples/hl7/*.hl7", "../input/*.hl7")
        .replace("../out/quickstart/", "../out/")
        .replace("path: ../out/state.db", &format!("path: ../out/state.db\n  checkpoint_every: {every}"));
    assert!(pipeline.contains("checkpoint_every"), "the quick start keeps a state store");
    std::fs::write(dir.join("pipelines/resume.yaml"), pipeline).unwrap();
    dir
}

pub fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_str(text(&out.stdout).trim())
        .unwrap_or_else(|_| panic!("no summary: {}{}", text(&out.stdout), text(&out.stderr)))
}

/// The code of the error `sluice` printed (after any log lines).
pub fn error_code(out: &Output) -> String {
    let err = text(&out.stderr);
    err.lines().find_map(|l| l.strip_prefix("error[")).and_then(|e| e.split(']').next()).unwrap_or_default().to_string()
}

pub fn expect_totals(s: &serde_json::Value, copies: u64) {
    let (n, delivered, dlq, filtered) = PER_COPY;
    assert_eq!(s["records_in"], n * copies, "{s}");
    assert_eq!(s["delivered"], delivered * copies, "{s}");
    assert_eq!(s["dlq"], dlq * copies, "{s}");
    assert_eq!(s["filtered"], filtered * copies, "{s}");
    assert_eq!(s["balanced"], true);
}

pub fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Every record exactly once: the audit chain verifies and numbers its entries 0..=N+1 with no
/// gap or repeat (run_started, the records, run_completed), the sink holds one line per delivered entry (by `audit_log_id`), and the DLQ
/// file one entry per rejected message of the input, each the audit's.
pub fn expect_exactly_once(dir: &Path, copies: u64) {
    let rejected = expect_sink_exactly_once(dir, copies);
    let dlq = std::fs::read_to_string(dir.join("out/dlq.jsonl")).unwrap();
    let ids: Vec<String> = dlq
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).expect("every DLQ line whole");
            e["id"].as_str().unwrap().to_string()
        })
        .collect();
    expect_dlq_exactly_once(&ids, &rejected, copies);
}

/// The DLQ's entry ids (in any location) are the audit's DLQ records, each once: one entry per
/// rejected message of the input.
pub fn expect_dlq_exactly_once(entry_ids: &[String], rejected: &BTreeSet<String>, copies: u64) {
    assert_eq!(entry_ids.len() as u64, PER_COPY.2 * copies, "one DLQ entry per rejected message");
    let unique: BTreeSet<String> = entry_ids.iter().cloned().collect();
    assert_eq!(unique.len(), entry_ids.len(), "no DLQ entry twice");
    assert!(unique == *rejected, "the DLQ holds exactly the records the audit says went there");
}

/// [`expect_exactly_once`] for the audit and the sink; returns the ids of the records the
/// audit says went to the DLQ.
pub fn expect_sink_exactly_once(dir: &Path, copies: u64) -> BTreeSet<String> {
    let out = dir.join("out");
    let n = PER_COPY.0 * copies;
    assert_eq!(sluice_runtime::verify_audit_chain(out.join("audit.jsonl")), Ok(n + 2));
    let audit = std::fs::read_to_string(out.join("audit.jsonl")).unwrap();
    let mut delivered = BTreeSet::new();
    let mut rejected = BTreeSet::new();
    for (i, line) in audit.lines().enumerate() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["seq"], i as u64, "audit entries numbered without gap or repeat");
        let id = format!("{}-{}", e["run_id"].as_str().unwrap(), e["seq"]);
        if e["event"] == "delivered" {
            delivered.insert(id);
        } else if e["event"] == "dlq" {
            rejected.insert(id);
        }
    }
    let sink = std::fs::read_to_string(out.join("patient-events.jsonl")).unwrap();
    let ids: Vec<String> = sink
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).expect("every sink line whole");
            r["compliance"]["audit_log_id"].as_str().unwrap().to_string()
        })
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no record twice in the sink");
    assert_eq!(unique, delivered, "the sink holds exactly the delivered records");
    rejected
}

/// A small deterministic generator (the seed is printed, so a failure can be replayed with
/// `SLUICE_KILL_SEED`).
struct Lcg(u64);

impl Lcg {
    fn next_fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What [`kill_at_random_moments`] did.
pub struct Kills {
    pub kills: u64,
    /// Everything the runs printed.
    pub console: String,
    /// The last run, when it finished before its kill target: nothing is left to resume, and
    /// its output is the run's end (under load a run can outpace the kills).
    pub finished: Option<Output>,
}

impl Kills {
    /// The run's end: the run that finished on its own, else `resume()` (the interrupted run
    /// resumed to its end).
    pub fn end(&mut self, resume: impl FnOnce() -> Output) -> Output {
        self.finished.take().unwrap_or_else(resume)
    }
}

/// Starts a run of `dir`'s pipeline (`spawn(resume)`: with `--resume` after the first) and
/// kills it (`kill -9`) when its audit log passes a random size, `times` times (or until a run
/// finishes first). Each time the target is between 5% and 35% of the way from the log's
/// current size to its final one (estimated low, at 330 bytes an entry, so the kills land
/// inside the run); since it is beyond what the killed run left, each run must cut back to its
/// checkpoint and write past it before it is killed. Past the target, the kill waits for
/// `ready()` too (a state the test wants the crash to find), checked once more with the run
/// stopped (SIGSTOP), so that the state it saw is the state the kill leaves: a checkpoint
/// cannot commit between the check and the kill. After each kill, `refused()` (a plain run)
/// must be refused with RT012.
pub fn kill_at_random_moments(
    dir: &Path,
    copies: u64,
    times: usize,
    mut spawn: impl FnMut(bool) -> std::process::Child,
    mut ready: impl FnMut() -> bool,
    mut refused: impl FnMut() -> Output,
) -> Kills {
    use std::time::{Duration, Instant};
    let seed = std::env::var("SLUICE_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    println!("kill seed {seed} (SLUICE_KILL_SEED={seed} replays it)");
    let mut rng = Lcg(seed);
    let estimate = (PER_COPY.0 * copies) as f64 * 330.0;
    let audit = dir.join("out/audit.jsonl");
    let mut kills = 0;
    let mut targets = Vec::new();
    let mut console = String::new();
    let mut finished = None;
    for i in 0..times {
        let now = file_len(&audit) as f64;
        let target = (now + (estimate - now).max(0.0) * (0.05 + 0.30 * rng.next_fraction())) as u64;
        targets.push(target);
        let mut child = spawn(i > 0);
        let started = Instant::now();
        let killed = loop {
            if let Some(status) = child.try_wait().unwrap() {
                // It finished before reaching the target: nothing to kill.
                assert!(status.success(), "run {i} failed: {status}");
                break false;
            }
            if file_len(&audit) >= target && ready() && ready_while_stopped(&child, &mut ready) {
                child.kill().unwrap();
                break true;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "run {i} made no progress");
            std::thread::sleep(Duration::from_millis(5));
        };
        let out = child.wait_with_output().unwrap();
        console.push_str(&text(&out.stdout));
        console.push_str(&text(&out.stderr));
        if !killed {
            finished = Some(out);
            break;
        }
        kills += 1;
        // A plain run refuses to overwrite the killed run's outputs.
        let refused = refused();
        assert_eq!(refused.status.code(), Some(1));
        assert_eq!(error_code(&refused), "RT012", "{}", text(&refused.stderr));
    }
    println!("killed {kills} times at audit sizes {targets:?} (estimated final size {estimate:.0})");
    Kills { kills, console, finished }
}

/// `ready()` checked with `child` stopped (SIGSTOP). When it holds, the child stays stopped
/// for the kill that follows (SIGKILL ends a stopped process); otherwise it is continued.
fn ready_while_stopped(child: &std::process::Child, ready: &mut impl FnMut() -> bool) -> bool {
    let signal = |name: &str| {
        let status =
            std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} {}", child.id());
    };
    signal("STOP");
    if ready() {
        return true;
    }
    signal("CONT");
    false
}
