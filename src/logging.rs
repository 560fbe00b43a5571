//! The logs of `sluice run` (`--log-level`, `--log-format`): the runtime's `tracing` events
//! (run started and ended, checkpoints, resumes, rejected records, `fail_if`, an HTTP sink's
//! retries), written on
//! stderr as text or JSON lines by a layer that redacts.
//!
//! Invariants:
//! - No data value reaches a log line. An event's fields are written only when their name is
//!   in [`ALLOWED_FIELDS`] (ids, counts, codes, component names); any other field is written
//!   as `[redacted]`, whatever it holds, so a field added carelessly later cannot leak.
//!   Messages are fixed strings: the runtime never formats a value into one (a test scans the
//!   runtime's sources for log calls with `{` in their message).
//! - Lines go through the progress line's printer, so they never garble it.

use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The field names whose values may be written. Every other field is redacted.
pub const ALLOWED_FIELDS: &[&str] = &[
    "run_id",
    "pipeline",
    "plan_hash",
    "inputs",
    "resumed_from",
    "resumes",
    "records",
    "records_in",
    "delivered",
    "dlq",
    "filtered",
    "interrupted",
    "elapsed_ms",
    "record_id",
    "component",
    "code",
    "window",
    // An HTTP sink's retries: the status or transport error (never a response body) and the wait.
    "status",
    "wait_ms",
    // A Kafka source's partitions assigned or revoked, and topics subscribed: counts.
    "partitions",
    "topics",
    // A fhir.rest source's tables (catalog names) and what each sync did: counts.
    "table",
    "fetched",
    "skipped",
    "pages",
    "requests",
    "retries",
    // An `after: {tag}` failure's cause (RT122): fixed words, an HTTP status and tag counts,
    // never an object key or a URL (runtime/src/object_stores/tagging.rs).
    "tag_error",
    // Why an object of the run was gone at its `after` step (RT184): fixed words, never a key.
    "object_gone",
    // A plaid source's Item (the name the spec gives it, never its token) and its sync: counts.
    "item",
    "removed",
    "restarts",
];

/// What is written for a field that is not allowed.
pub const REDACTED: &str = "[redacted]";

/// Where lines go (stderr, above the progress line).
pub type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The layer: events at `level` or more severe, as text or JSON.
pub struct RedactingLayer {
    level: Level,
    json: bool,
    out: LineSink,
}

impl RedactingLayer {
    pub fn new(level: Level, json: bool, out: LineSink) -> RedactingLayer {
        RedactingLayer { level, json, out }
    }
}

/// An event's message and fields, redacted as they are recorded.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: serde_json::Value) {
        let value = if ALLOWED_FIELDS.contains(&field.name()) { value } else { REDACTED.into() };
        self.fields.push((field.name(), value));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.push(field, format!("{value:?}").into());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.push(field, value.into());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
}

fn now() -> String {
    let ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let mut at = sluice_runtime::time::format_utc(ms.div_euclid(1000));
    // `...:SSZ` -> `...:SS.mmmZ`
    if at.ends_with('Z') {
        at.pop();
        let _ = write!(at, ".{:03}Z", ms.rem_euclid(1000));
    }
    at
}

impl RedactingLayer {
    /// The line for an event (no line break).
    fn render(&self, level: &Level, target: &str, fields: &Fields) -> String {
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("at".into(), now().into());
            obj.insert("level".into(), level.as_str().into());
            obj.insert("target".into(), target.into());
            obj.insert("message".into(), fields.message.clone().into());
            for (name, value) in &fields.fields {
                obj.insert((*name).into(), value.clone());
            }
            serde_json::Value::Object(obj).to_string()
        } else {
            let mut line = format!("{} {:<5} {}", now(), level.as_str(), fields.message);
            for (name, value) in &fields.fields {
                match value {
                    serde_json::Value::String(s) => {
                        let _ = write!(line, " {name}={s}");
                    }
                    other => {
                        let _ = write!(line, " {name}={other}");
                    }
                }
            }
            line
        }
    }
}

impl<S: Subscriber> Layer<S> for RedactingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // Level order in `tracing`: ERROR is the smallest, TRACE the largest.
        if *meta.level() > self.level {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        (self.out)(&self.render(meta.level(), meta.target(), &fields));
    }
}

/// Installs the layer for this process (once; later calls are ignored).
pub fn install(level: Level, json: bool, out: LineSink) {
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::registry().with(RedactingLayer::new(level, json, out));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn capture(json: bool, level: Level, emit: impl FnOnce()) -> Vec<String> {
        use tracing_subscriber::layer::SubscriberExt;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&lines);
        let out: LineSink = Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string()));
        let subscriber = tracing_subscriber::registry().with(RedactingLayer::new(level, json, out));
        tracing::subscriber::with_default(subscriber, emit);
        lines.lock().unwrap().clone()
    }

    #[test]
    fn fields_outside_the_allowlist_are_redacted_whatever_their_type() {
        let lines = capture(true, Level::INFO, || {
            tracing::info!(run_id = "r1", records = 3u64, patient_name = "ZEBULON", ssn = 123456789u64, "run ended");
        });
        assert_eq!(lines.len(), 1);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["message"], "run ended");
        assert_eq!(v["level"], "INFO");
        assert_eq!((v["run_id"].as_str(), v["records"].as_u64()), (Some("r1"), Some(3)));
        assert_eq!((v["patient_name"].as_str(), v["ssn"].as_str()), (Some(REDACTED), Some(REDACTED)));
        assert!(!lines[0].contains("ZEBULON") && !lines[0].contains("123456789"));
    }

    #[test]
    fn text_lines_and_the_level_filter() {
        let lines = capture(false, Level::INFO, || {
            tracing::debug!(records = 1u64, "checkpoint saved");
            tracing::warn!(window = 50u64, secret = "x", "fail_if tripped: stopping");
        });
        assert_eq!(lines.len(), 1, "debug is below info: {lines:?}");
        assert!(lines[0].contains(" WARN  fail_if tripped: stopping window=50 secret=[redacted]"), "{}", lines[0]);
    }
}
