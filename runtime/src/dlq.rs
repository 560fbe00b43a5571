//! The dead-letter queue: one JSON line per failing path of a record.
//!
//! Entry: `{"id", "run_id", "source", "file", "offset", "message_index", "stage", "code",
//! "reason", "findings": [{code, rule, path, message}], "raw"}` (and `"raw_encoding": "base64"`
//! when the bytes are not UTF-8). `id` is the record's, `<run_id>-<seq>`, as its audit entry's.
//! `stage` is the name of the component that rejected the record (a source component for
//! decode and parse failures).
//!
//! A record that came with a key and headers (a Kafka message's, the provenance a finance
//! source sets such as `plaid.item`, a `fhir.rest` deletion's mark: [`BusMeta`]) keeps them in
//! `"envelope"`, so a replay gives the pipeline the record as it first came
//! ([`StoredEntry::bus_meta`]). They are data (a key is often a patient id), kept as `raw` is:
//! sealed under the DLQ's key (a string, the sealed JSON) or, in a DLQ kept in plain text on
//! purpose, the JSON object `{"key": base64, "headers": [[name, base64 or null]], "deleted":
//! true}` (members absent when empty or false). Entries written before it was kept have none.
//!
//! A segment a parser profile with `bad_segments: drop` left out of a message gets an entry of
//! its own ([`part_entry_line`]): id `<record id>.seg<N>`, stage the source, the codec's code,
//! `offset` the segment's own byte offset, `raw` the segment's bytes only, and
//! `"part": {"kind": "segment", "record", "message_id", "segment", "message_offset"}` naming
//! the record (delivered, filtered or rejected on its own account) it was cut from. An entry
//! with a `part` is not a message: `sluice dlq replay` never feeds it to the pipeline (RT025).
//!
//! Invariants:
//! - Nothing is lost: every record that cannot go on gets an entry, with its raw bytes exactly
//!   (as text when they are UTF-8, else base64), so it can be inspected and replayed
//!   (`sluice dlq replay`, `crate::replay`).
//! - `reason` and finding messages never hold field values: they name rules, paths and codes.
//!   Only `raw` holds data; that is the point of a DLQ.
//! - Raw messages are encrypted at rest (AES-256-GCM, `raw_encoding: aes-256-gcm`) with the
//!   pipeline's `dlq.encryption_key`; a run without a key refuses to start unless the spec
//!   says why plain text is fine (`plaintext_reason`, for synthetic or test data).
//! - Entries are written by the writer thread in record order, so the file is deterministic.
//!
//! Where the entries go ([`Out`]): a JSON Lines file (`dlq: {path}`), or the `dlq_entries`
//! table of the pipeline's state store (`dlq: {store: state}`, [`crate::state::dlq`]), one
//! row per entry holding the same JSON line. Both are read back by one function,
//! [`read_plan_entries`], so `sluice dlq list | show | replay | purge` do not care which.
//! The table keeps the file's guarantees, kill -9 at any moment included:
//! - Durable before claimed. The writer holds a batch's rows in memory and commits them in one
//!   transaction whenever it would flush or sync a file (before it calls completions such as
//!   MLLP `on_commit` ACKs, before each checkpoint, at the end of the run, when a live feed is
//!   idle) and whenever [`PENDING_ROWS`] wait. A commit is durable (SQLite
//!   `synchronous = FULL`, PostgreSQL synchronous commit). A crash loses only rows not yet
//!   committed, whose records no ACK, checkpoint or summary has claimed.
//! - Exactly once after a crash. A checkpoint counting `n` records is saved after the rows of
//!   records `1..=n` are committed, and records the run's row count. A resume deletes the run's
//!   rows with `seq > n` (those a crash left after the checkpoint, committed or not is all one)
//!   and checks the count (RT014 if rows went missing); the records after `n` are then
//!   processed again and write their rows once. A transaction cut by the crash is rolled back
//!   by the database: there is no torn row, as there can be a torn last line in a file.
//! - A new file run (or `--restart`) deletes the pipeline's rows first, as it truncates a DLQ
//!   file; a live feed and a replay append. A replay that did not complete is undone by
//!   deleting its rows above the key it recorded when it started ([`crate::replay`]).

use serde::Serialize;

use crate::record::{BusMeta, Envelope};

/// One finding in a DLQ entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub rule: Option<String>,
    pub path: Option<String>,
    pub message: String,
}

/// Why a record goes to the DLQ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub reason: String,
    pub findings: Vec<Finding>,
    /// How many times the component tried the record before giving up: 1 for a stage or a
    /// source step, the requests made for an `http` sink.
    pub attempts: u32,
}

impl Rejection {
    /// A rejection with one finding of the same code.
    pub fn single(code: &'static str, path: Option<&str>, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Rejection {
            code,
            findings: vec![Finding { code, rule: None, path: path.map(str::to_string), message: reason.clone() }],
            reason,
            attempts: 1,
        }
    }
}

#[derive(Serialize)]
struct Entry<'a> {
    /// The record's id, `<run_id>-<seq>`: its audit entry is `seq` of that run. Every entry of
    /// one record (one per failing path) has the same id; a replay replays the record once.
    id: &'a str,
    run_id: &'a str,
    /// The plan the record ran through (a replay names its own).
    plan_hash: &'a str,
    /// When the entry was written (the run's clock).
    at: &'a str,
    source: &'a str,
    file: &'a str,
    offset: u64,
    message_index: u64,
    stage: &'a str,
    code: &'a str,
    /// How many times the component tried: 1 for a stage, the requests for an `http` sink.
    attempts: u32,
    reason: &'a str,
    findings: &'a [Finding],
    /// Set only on the entry of a dropped part of a record (left out of every other entry, so
    /// their lines are as before).
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<Part<'a>>,
    raw: &'a str,
    /// `base64` when the bytes are not UTF-8 (`raw` is then their base64), so nothing is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_encoding: Option<&'static str>,
    /// The record's bus key and headers ([`envelope_member`]); absent when it had none.
    #[serde(skip_serializing_if = "Option::is_none")]
    envelope: Option<serde_json::Value>,
    /// The id of the key that sealed `raw` ([`DlqKey`]); absent when it is not sealed.
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
}

/// What a part entry was cut from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Part<'a> {
    /// `segment` (the only kind so far).
    pub kind: std::borrow::Cow<'a, str>,
    /// The id of the record the part was cut from (`<run_id>-<seq>`, its audit entry).
    pub record: std::borrow::Cow<'a, str>,
    /// The record's message control id (MSH-10), if it has one.
    pub message_id: Option<std::borrow::Cow<'a, str>>,
    /// 1-based number of the segment in the message.
    pub segment: u64,
    /// Byte offset of the message in its file (the entry's `offset` is the segment's).
    pub message_offset: u64,
}

/// `raw_encoding` of an encrypted message.
pub const SEALED: &str = "aes-256-gcm";

/// The keys that encrypt the DLQ's raw messages (AES-256-GCM): the current one seals, the
/// previous ones (after it in the secret, comma- or line-separated) only open, until
/// `sluice keys rotate` re-seals every entry under the current one ([`reseal_line`]). A sealed
/// entry names its key's id (`key_id`, [`crate::keys::key_id`]); an entry written before key
/// ids were recorded has none, and is opened by whichever key fits. The entry's id is the
/// associated data, so a sealed message moved to another entry does not open.
///
/// Nonces are synthetic: the first 96 bits of an HMAC-SHA-256, under a key derived from the
/// sealing key, of the entry id and the message. A nonce therefore repeats only for the same id
/// and the same message, which then encrypt to the same text (so runs under a fixed clock stay
/// byte-identical); two different messages never share a nonce, which a counter could not
/// promise across runs that reuse a run id (fixed clock), and which random nonces would
/// promise at the price of determinism.
pub struct DlqKey {
    keys: Vec<SubKey>,
}

struct SubKey {
    id: String,
    aead: ring::aead::LessSafeKey,
    nonce_key: ring::hmac::Key,
}

impl std::fmt::Debug for DlqKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DlqKey(***)")
    }
}

impl DlqKey {
    /// The keys of a secret's text: one key (64 hex digits, or base64 of 32 bytes), or several
    /// separated by commas or line breaks, the first current. The error never holds a key.
    pub fn parse(text: &[u8]) -> Result<DlqKey, String> {
        let text = std::str::from_utf8(text).map_err(|_| "the key is not text".to_string())?;
        let parts: Vec<&str> = text.split([',', '\n', '\r']).map(str::trim).filter(|p| !p.is_empty()).collect();
        let mut keys: Vec<SubKey> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let which = |why: &str| if parts.len() == 1 { why.to_string() } else { format!("key {}: {why}", i + 1) };
            let bytes = crate::keys::key_bytes(part.as_bytes()).map_err(which)?;
            let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, &bytes)
                .map_err(|_| which("the key is unusable"))?;
            // A separate key for nonces, so the AES key is used for nothing else.
            let derived =
                ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes), b"sluice dlq nonce key");
            let id = crate::keys::key_id(&bytes);
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("key {} is listed twice", i + 1));
            }
            keys.push(SubKey {
                id,
                aead: ring::aead::LessSafeKey::new(key),
                nonce_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref()),
            });
        }
        if keys.is_empty() {
            return Err("the key is empty".to_string());
        }
        Ok(DlqKey { keys })
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// `nonce || ciphertext || tag`, base64, under the current key. `id` is the associated
    /// data (the entry's id for `raw`, [`envelope_aad`] for `envelope`).
    fn seal(&self, id: &str, bytes: &[u8]) -> Option<String> {
        use base64::Engine;
        let key = &self.keys[0];
        let mut ctx = ring::hmac::Context::with_key(&key.nonce_key);
        ctx.update(id.as_bytes());
        ctx.update(&[0]);
        ctx.update(bytes);
        let mut nonce = [0u8; ring::aead::NONCE_LEN];
        nonce.copy_from_slice(&ctx.sign().as_ref()[..ring::aead::NONCE_LEN]);
        let mut sealed = bytes.to_vec();
        key.aead
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(id.as_bytes()),
                &mut sealed,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// Opens a sealed member (`what`, `raw` or `envelope`) of entry `id` sealed with
    /// associated data `aad`: with the key `key_id` names, or (an entry without one) any key.
    fn open(&self, id: &str, what: &str, aad: &str, key_id: Option<&str>, text: &str) -> Result<Vec<u8>, String> {
        use base64::Engine;
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| format!("entry {id}: `{what}` is not valid base64"))?;
        if bytes.len() < ring::aead::NONCE_LEN {
            return Err(format!("entry {id}: `{what}` is too short to be encrypted"));
        }
        let sealed = bytes.split_off(ring::aead::NONCE_LEN);
        let candidates: Vec<&SubKey> = match key_id {
            Some(k) => match self.keys.iter().find(|s| s.id == k) {
                Some(s) => vec![s],
                None => {
                    return Err(format!(
                        "entry {id} was encrypted with key {k}, which the DLQ's `encryption_key` does not hold (RT031)"
                    ));
                }
            },
            None => self.keys.iter().collect(),
        };
        for key in candidates {
            let nonce =
                ring::aead::Nonce::try_assume_unique_for_key(&bytes).map_err(|_| format!("entry {id}: bad nonce"))?;
            let mut buf = sealed.clone();
            if let Ok(plain) = key.aead.open_in_place(nonce, ring::aead::Aad::from(aad.as_bytes()), &mut buf) {
                return Ok(plain.to_vec());
            }
        }
        Err(format!("entry {id}: cannot decrypt `{what}`: another key, or the entry was altered"))
    }
}

/// An entry's line re-sealed under the current key, or `None` when it needs nothing (not
/// sealed, or sealed under the current key already). Every other member stays as it was, in
/// its place.
pub fn reseal_line(line: &str, key: &DlqKey) -> Result<Option<String>, String> {
    let mut v: serde_json::Value = serde_json::from_str(line).map_err(|_| "not a DLQ entry".to_string())?;
    let entry: StoredEntry = serde_json::from_value(v.clone()).map_err(|_| "not a DLQ entry".to_string())?;
    if entry.raw_encoding.as_deref() != Some(SEALED) || entry.key_id.as_deref() == Some(key.current_id()) {
        return Ok(None);
    }
    let failed = || format!("entry {}: encryption failed", entry.id);
    let plain = entry.raw_bytes(Some(key))?;
    let sealed = key.seal(&entry.id, &plain).ok_or_else(failed)?;
    let envelope = match &entry.envelope {
        Some(serde_json::Value::String(text)) => {
            let plain = key.open(&entry.id, "envelope", &envelope_aad(&entry.id), entry.key_id.as_deref(), text)?;
            Some(key.seal(&envelope_aad(&entry.id), &plain).ok_or_else(failed)?)
        }
        _ => None,
    };
    let Some(obj) = v.as_object_mut() else { return Err("not a DLQ entry".to_string()) };
    obj.insert("raw".into(), sealed.into());
    if let Some(envelope) = envelope {
        obj.insert("envelope".into(), envelope.into());
    }
    obj.insert("key_id".into(), key.current_id().into());
    Ok(Some(serde_json::to_string(&v).unwrap_or_default()))
}

/// The DLQ key of a plan, resolved and checked; `None` when the plan keeps raw messages in
/// plain text on purpose (`plaintext_reason`). No key and no reason: the run must not start,
/// since the DLQ would hold patient data unencrypted.
pub fn key_for(target: &sluice_compiler::plan::DlqTarget) -> Result<Option<DlqKey>, crate::RunError> {
    use crate::findings;
    match (&target.encryption_key, &target.plaintext_reason) {
        (Some(reference), _) => {
            let secret = crate::secrets::resolve(reference, "the DLQ's `encryption_key`")?;
            DlqKey::parse(secret.expose()).map(Some).map_err(|why| {
                crate::RunError::new(
                    findings::DLQ_KEY_INVALID,
                    format!("the DLQ's `encryption_key` ({reference}): {why}"),
                )
                .with_help("use 32 random bytes written as 64 hex digits, e.g. `openssl rand -hex 32 > dlq.key`")
            })
        }
        (None, Some(_)) => Ok(None),
        (None, None) => Err(crate::RunError::new(
            findings::DLQ_UNENCRYPTED,
            format!("the DLQ ({}) would hold raw messages, which hold patient data, unencrypted", target.shown(None)),
        )
        .with_help(
            "add `encryption_key: ${SLUICE_DLQ_KEY}` (or `${file:dlq.key}`) to `dlq`, with 32 random bytes as 64 hex \
             digits (`openssl rand -hex 32`); or, for synthetic or test data only, `plaintext_reason: \"...\"`",
        )),
    }
}

/// What every entry of a batch shares: the run, its plan, the time and the key.
pub struct Writing<'a> {
    pub run_id: &'a str,
    pub plan_hash: &'a str,
    pub at: &'a str,
    pub key: Option<&'a DlqKey>,
}

/// One entry ready to write: its JSON line (without the line break) and what the state store's
/// table keeps beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub id: String,
    pub stage: String,
    pub code: &'static str,
    pub at: String,
    pub text: String,
}

/// The entry's line. With a key, `raw` is sealed.
pub fn entry_line(w: &Writing<'_>, env: &Envelope, raw: &[u8], stage: &str, r: &Rejection) -> Line {
    let id = format!("{}-{}", w.run_id, env.seq);
    line(w, id, env, env.offset, raw, stage, r, None)
}

/// The id of the entry of segment `segment` dropped from record `record_id`.
pub fn part_id(record_id: &str, segment: usize) -> String {
    format!("{record_id}.seg{segment}")
}

/// The entry of a segment dropped from the record `env` describes (stage: its source), and
/// the entry's id. The reason and finding say where and why, never what.
pub fn part_entry_line(w: &Writing<'_>, env: &Envelope, part: &crate::source::DroppedPart, stage: &str) -> Line {
    let record = format!("{}-{}", w.run_id, env.seq);
    let id = part_id(&record, part.segment);
    let reason = format!(
        "segment {} of record {record} could not be parsed ({} at file offset {}) and was dropped; the rest of the message went on",
        part.segment, part.code, part.offset
    );
    let r = Rejection {
        code: part.code,
        findings: vec![Finding {
            code: part.code,
            rule: None,
            path: None,
            message: format!("segment {}: {}", part.segment, part.message),
        }],
        reason,
        attempts: 1,
    };
    let p = Part {
        kind: "segment".into(),
        record: record.as_str().into(),
        message_id: env.control_id.as_deref().map(Into::into),
        segment: part.segment as u64,
        message_offset: env.offset,
    };
    line(w, id, env, part.offset, &part.bytes, stage, &r, Some(p))
}

#[allow(clippy::too_many_arguments)]
fn line(
    w: &Writing<'_>,
    id: String,
    env: &Envelope,
    offset: u64,
    raw: &[u8],
    stage: &str,
    r: &Rejection,
    part: Option<Part<'_>>,
) -> Line {
    let key = w.key;
    use base64::Engine;
    let key_id = key.map(DlqKey::current_id);
    let (raw, raw_encoding) = match (key, std::str::from_utf8(raw)) {
        // A message that cannot be sealed is not written in plain text.
        (Some(key), _) => (std::borrow::Cow::Owned(key.seal(&id, raw).unwrap_or_default()), Some(SEALED)),
        (None, Ok(text)) => (std::borrow::Cow::Borrowed(text), None),
        (None, Err(_)) => {
            (std::borrow::Cow::Owned(base64::engine::general_purpose::STANDARD.encode(raw)), Some("base64"))
        }
    };
    let entry = Entry {
        id: &id,
        run_id: w.run_id,
        plan_hash: w.plan_hash,
        at: w.at,
        source: &env.source,
        file: &env.file,
        offset,
        message_index: env.index,
        stage,
        code: r.code,
        attempts: r.attempts,
        reason: &r.reason,
        findings: &r.findings,
        envelope: if part.is_none() { env.bus.as_deref().and_then(|bus| envelope_member(&id, bus, key)) } else { None },
        part,
        raw: &raw,
        raw_encoding,
        key_id,
    };
    let text = serde_json::to_string(&entry).unwrap_or_default();
    Line { id, stage: stage.to_string(), code: r.code, at: w.at.to_string(), text }
}

/// The associated data that seals entry `id`'s `envelope`: not its `raw`'s, so neither opens
/// in the other's place.
fn envelope_aad(id: &str) -> String {
    format!("{id}#envelope")
}

/// An entry's `envelope` member: the JSON of `bus` (module header), sealed into a string with
/// `key`. `None` only if sealing fails, as `raw` is then left empty: nothing is written in
/// plain text that should not be.
fn envelope_member(id: &str, bus: &BusMeta, key: Option<&DlqKey>) -> Option<serde_json::Value> {
    use base64::Engine;
    let b64 = |bytes: &[u8]| serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(bytes));
    let mut obj = serde_json::Map::new();
    if let Some(k) = &bus.key {
        obj.insert("key".into(), b64(k));
    }
    if !bus.headers.is_empty() {
        let headers = bus
            .headers
            .iter()
            .map(|(name, value)| serde_json::json!([name, value.as_deref().map(b64)]))
            .collect::<Vec<_>>();
        obj.insert("headers".into(), headers.into());
    }
    if bus.deleted {
        obj.insert("deleted".into(), true.into());
    }
    let json = serde_json::Value::Object(obj);
    match key {
        Some(key) => key.seal(&envelope_aad(id), json.to_string().as_bytes()).map(serde_json::Value::from),
        None => Some(json),
    }
}

/// [`envelope_member`] read back.
fn bus_of_json(id: &str, json: &serde_json::Value) -> Result<BusMeta, String> {
    use base64::Engine;
    let bad = || format!("entry {id}: `envelope` is not a key and headers");
    let bytes = |v: &serde_json::Value| -> Result<Vec<u8>, String> {
        let text = v.as_str().ok_or_else(bad)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| bad())
    };
    let obj = json.as_object().ok_or_else(bad)?;
    let key = obj.get("key").map(bytes).transpose()?;
    let mut headers = Vec::new();
    for header in obj.get("headers").map(|h| h.as_array().ok_or_else(bad)).transpose()?.into_iter().flatten() {
        match header.as_array().map(Vec::as_slice) {
            Some([name, value]) => {
                let name = name.as_str().ok_or_else(bad)?.to_string();
                let value = if value.is_null() { None } else { Some(bytes(value)?) };
                headers.push((name, value));
            }
            _ => return Err(bad()),
        }
    }
    let deleted = match obj.get("deleted") {
        None => false,
        Some(d) => d.as_bool().ok_or_else(bad)?,
    };
    Ok(BusMeta { key, headers, deleted })
}

/// How many rows [`Out::Table`] holds in memory at most before it commits them (about a
/// megabyte of entries): bounds memory in a run with many rejects, between the commits the
/// writer asks for.
pub const PENDING_ROWS: usize = 1024;

/// Where the writer puts DLQ entries: the file, or the state store's table.
pub enum Out {
    File { path: String, w: std::io::BufWriter<std::fs::File> },
    Table(Table),
}

/// The DLQ in the state store, as the writer fills it: its own connection to the pipeline's
/// store (the run's checkpoints use another), and the rows not yet committed.
pub struct Table {
    store: crate::state::Store,
    pipeline: String,
    pending: Vec<crate::state::dlq::DlqRow>,
    /// The run's rows committed so far (from its start, for a resumed run), for checkpoints.
    committed: u64,
}

impl Out {
    /// Opens the plan's DLQ: `open_file` opens a file the way the run opens its outputs;
    /// `start` says what happens to a table's rows first: see [`TableStart`].
    pub fn open(
        plan: &sluice_compiler::plan::Plan,
        open_file: impl FnOnce(&str) -> Result<std::io::BufWriter<std::fs::File>, crate::RunError>,
        start: TableStart<'_>,
    ) -> Result<Out, crate::RunError> {
        let target = plan.dlq.as_ref();
        if !target.is_some_and(|d| d.in_state_store()) {
            let path = target.map(|d| d.path.clone()).unwrap_or_default();
            let w = open_file(&path)?;
            return Ok(Out::File { path, w });
        }
        let Some(state) = &plan.state else {
            return Err(crate::RunError::new(
                crate::findings::PLAN_INVALID,
                "the plan keeps its DLQ in the state store and has none",
            ));
        };
        let store = crate::state::Store::open(state, None)?;
        let pipeline = plan.pipeline.clone();
        let committed = match start {
            TableStart::Append => 0,
            TableStart::Fresh => {
                store.dlq_clear(&pipeline)?;
                0
            }
            TableStart::Resume { run_id, records, rows } => {
                let left = store.dlq_cut_back(&pipeline, run_id, records)?;
                if let Some(rows) = rows
                    && rows != left
                {
                    return Err(crate::RunError::new(
                        crate::findings::RESUME_INPUT_CHANGED,
                        format!(
                            "the DLQ in state store `{}` holds {left} entries of run {run_id} up to its checkpoint, which counted {rows}",
                            store.shown()
                        ),
                    )
                    .with_help("the DLQ changed since the run stopped; start over with `sluice run --restart`"));
                }
                left
            }
        };
        Ok(Out::Table(Table { store, pipeline, pending: Vec::new(), committed }))
    }

    /// Writes one entry of record `seq` of run `run_id` (a table commits when
    /// [`PENDING_ROWS`] wait).
    pub fn write(&mut self, line: &Line, run_id: &str, seq: u64) -> Result<(), crate::RunError> {
        match self {
            Out::File { path, w } => crate::sink::write_line(w, &line.text, path),
            Out::Table(t) => {
                t.pending.push(crate::state::dlq::DlqRow {
                    entry_id: line.id.clone(),
                    run_id: run_id.to_string(),
                    seq,
                    stage: line.stage.clone(),
                    code: line.code.to_string(),
                    at: line.at.clone(),
                    entry: line.text.clone(),
                });
                if t.pending.len() >= PENDING_ROWS { t.commit() } else { Ok(()) }
            }
        }
    }

    /// Hands what is written to the OS (`sync`: to the disk); a table commits its pending rows
    /// either way (a commit is durable).
    pub fn flush(&mut self, sync: bool) -> Result<(), crate::RunError> {
        use std::io::Write;
        match self {
            Out::File { path, w } => w
                .flush()
                .and_then(|_| if sync { w.get_ref().sync_data() } else { Ok(()) })
                .map_err(|e| crate::RunError::io("write", std::path::Path::new(path), &e)),
            Out::Table(t) => t.commit(),
        }
    }

    /// The end of a run: everything written made durable (a file synced with its metadata).
    pub fn finish(&mut self) -> Result<(), crate::RunError> {
        match self {
            Out::File { path, w } => crate::sink::finish(w, path),
            Out::Table(t) => t.commit(),
        }
    }

    /// The file and its writer, if the DLQ is a file.
    pub fn file(&self) -> Option<(&String, &std::io::BufWriter<std::fs::File>)> {
        match self {
            Out::File { path, w } => Some((path, w)),
            Out::Table(_) => None,
        }
    }

    /// The table's committed rows of the run, if the DLQ is a table (for a checkpoint).
    pub fn table_rows(&self) -> Option<u64> {
        match self {
            Out::File { .. } => None,
            Out::Table(t) => Some(t.committed),
        }
    }
}

impl Table {
    fn commit(&mut self) -> Result<(), crate::RunError> {
        self.store.append_dlq(&self.pipeline, &self.pending)?;
        self.committed += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
}

/// What happens to a DLQ table's rows when a run opens it.
pub enum TableStart<'a> {
    /// A live feed or a replay: rows are added to those there.
    Append,
    /// A new file run: the pipeline's rows are deleted first.
    Fresh,
    /// A resumed file run: the run's rows of records after `records` are deleted, and the run
    /// must have `rows` left (as its checkpoint counted, when it did).
    Resume { run_id: &'a str, records: u64, rows: Option<u64> },
}

#[cfg(test)]
mod key_tests {
    use super::*;

    const KEY: &[u8] = b"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn entry(id: &str, raw: String, encoding: Option<&str>) -> StoredEntry {
        StoredEntry {
            id: id.into(),
            run_id: "r".into(),
            plan_hash: None,
            at: None,
            source: "s".into(),
            file: "f".into(),
            offset: 0,
            message_index: 0,
            stage: "s".into(),
            code: "RT102".into(),
            attempts: None,
            reason: String::new(),
            findings: Vec::new(),
            part: None,
            raw,
            raw_encoding: encoding.map(String::from),
            envelope: None,
            key_id: None,
        }
    }

    #[test]
    fn a_ring_seals_with_its_first_key_and_reseals_what_older_keys_sealed() {
        let old = DlqKey::parse(KEY).unwrap();
        let sealed = old.seal("r-1", b"MSH|x").unwrap();
        let mut e = entry("r-1", sealed, Some(SEALED));
        e.key_id = Some(old.current_id().to_string());
        let line = serde_json::to_string(&e).unwrap();
        let new_text = [&[b'f'; 64][..], b",", KEY].concat();
        let ring = DlqKey::parse(&new_text).unwrap();
        assert_ne!(ring.current_id(), old.current_id());
        let resealed = reseal_line(&line, &ring).unwrap().expect("under an older key");
        let back: StoredEntry = serde_json::from_str(&resealed).unwrap();
        assert_eq!(back.key_id.as_deref(), Some(ring.current_id()));
        assert_eq!(back.raw_bytes(Some(&ring)).unwrap(), b"MSH|x");
        assert!(back.raw_bytes(Some(&old)).unwrap_err().contains(ring.current_id()), "names the missing key");
        assert_eq!(reseal_line(&resealed, &ring).unwrap(), None, "already under the current key");
        let mut legacy = e.clone();
        legacy.key_id = None;
        assert_eq!(legacy.raw_bytes(Some(&ring)).unwrap(), b"MSH|x", "an entry without a key id: any key");
    }

    #[test]
    fn sealed_messages_open_with_their_key_and_id_only() {
        let key = DlqKey::parse(KEY).unwrap();
        let message = b"MSH|^~\\&|A\rPID|1||\xc9LODIE".to_vec();
        let sealed = key.seal("r-1", &message).unwrap();
        assert!(!sealed.contains("PID"));
        assert_eq!(sealed, key.seal("r-1", &message).unwrap(), "deterministic");
        assert_ne!(sealed, key.seal("r-2", &message).unwrap(), "the id is in the nonce");
        let e = entry("r-1", sealed.clone(), Some(SEALED));
        assert_eq!(e.raw_bytes(Some(&key)).unwrap(), message);
        assert_eq!(e.raw_len(), message.len());
        assert!(e.raw_bytes(None).unwrap_err().contains("encrypted"));
        let other = DlqKey::parse(&[b'f'; 64]).unwrap();
        assert!(e.raw_bytes(Some(&other)).unwrap_err().contains("another key"));
        let moved = entry("r-9", sealed, Some(SEALED));
        assert!(moved.raw_bytes(Some(&key)).is_err(), "bound to its entry id");
    }

    fn record_envelope(bus: Option<BusMeta>) -> Envelope {
        Envelope {
            source: "in".into(),
            file: "topic/0".into(),
            offset: 7,
            index: 7,
            seq: 3,
            control_id: None,
            message_type: None,
            timezone: "Z".into(),
            errors: Vec::new(),
            warnings: Vec::new(),
            classes: Default::default(),
            masking: None,
            bus: bus.map(std::sync::Arc::new),
        }
    }

    fn written(key: Option<&DlqKey>, env: &Envelope) -> StoredEntry {
        let w = Writing { run_id: "r", plan_hash: "h", at: "2026-01-01T00:00:00Z", key };
        let line = entry_line(&w, env, b"MSH|x", "map", &Rejection::single("RT102", None, "why"));
        serde_json::from_str(&line.text).unwrap()
    }

    #[test]
    fn a_records_key_and_headers_are_kept_sealed_like_its_message_and_read_back() {
        let bus = BusMeta {
            key: Some(b"MRN-00042".to_vec()),
            headers: vec![("plaid.item".into(), Some(b"operating".to_vec())), ("trace".into(), None)],
            deleted: true,
        };
        let key = DlqKey::parse(KEY).unwrap();
        let sealed = written(Some(&key), &record_envelope(Some(bus.clone())));
        let text = sealed.envelope.as_ref().and_then(|v| v.as_str()).expect("sealed: a string");
        assert!(!text.contains("MRN") && !text.contains("operating"), "nothing in clear: {text}");
        assert_eq!(sealed.bus_meta(Some(&key)).unwrap(), Some(bus.clone()));
        assert!(sealed.bus_meta(None).unwrap_err().contains("encrypted"));
        // Bound to its entry and its member: neither another entry's nor the raw's place opens it.
        let mut moved = sealed.clone();
        moved.id = "r-9".into();
        assert!(moved.bus_meta(Some(&key)).unwrap_err().contains("altered"));
        let mut swapped = sealed.clone();
        swapped.raw = text.to_string();
        assert!(swapped.raw_bytes(Some(&key)).is_err(), "the envelope does not open as the message");

        // Rotation re-seals it with the message.
        let ring = DlqKey::parse(&[&[b'f'; 64][..], b",", KEY].concat()).unwrap();
        let line = serde_json::to_string(&sealed).unwrap();
        let resealed: StoredEntry = serde_json::from_str(&reseal_line(&line, &ring).unwrap().unwrap()).unwrap();
        assert_ne!(resealed.envelope, sealed.envelope);
        assert_eq!(resealed.bus_meta(Some(&ring)).unwrap(), Some(bus.clone()));
        assert_eq!(resealed.raw_bytes(Some(&ring)).unwrap(), b"MSH|x");

        // A DLQ in plain text on purpose: the object, values in base64.
        let plain = written(None, &record_envelope(Some(bus.clone())));
        assert_eq!(
            plain.envelope,
            Some(
                serde_json::json!({"key": "TVJOLTAwMDQy", "headers": [["plaid.item", "b3BlcmF0aW5n"], ["trace", null]], "deleted": true})
            )
        );
        assert_eq!(plain.bus_meta(None).unwrap(), Some(bus));
        // A record without any: no member, as in entries written before it was kept.
        let none = written(Some(&key), &record_envelope(None));
        assert_eq!(none.bus_meta(Some(&key)).unwrap(), None);
        assert_eq!(none.envelope, None);
        let mut broken = plain.clone();
        broken.envelope = Some(serde_json::json!({"headers": [["x"]]}));
        assert!(broken.bus_meta(None).unwrap_err().contains("not a key and headers"));
    }

    #[test]
    fn keys_are_64_hex_digits_or_base64_of_32_bytes() {
        assert!(DlqKey::parse(KEY).is_ok());
        assert!(DlqKey::parse(b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").is_ok());
        for bad in [&b"0001"[..], b"not a key at all", &[b'g'; 64], b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ=="]
        {
            let e = DlqKey::parse(bad).unwrap_err();
            assert!(!e.contains("0001") && !e.contains("AAEC"), "the error never holds the key: {e}");
        }
    }
}

/// A DLQ entry read back (`sluice dlq`).
#[derive(Clone, Debug, serde::Deserialize, Serialize)]
pub struct StoredEntry {
    pub id: String,
    pub run_id: String,
    /// Absent from entries written before it was recorded (as are `at` and `attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub source: String,
    pub file: String,
    pub offset: u64,
    pub message_index: u64,
    pub stage: String,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    pub reason: String,
    pub findings: Vec<serde_json::Value>,
    /// Set when the entry is a part dropped from a record, not a whole message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part<'static>>,
    pub raw: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_encoding: Option<String>,
    /// The record's bus key and headers, sealed (a string) or not (an object); absent when it
    /// had none, and from entries written before they were kept. Read with [`Self::bus_meta`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<serde_json::Value>,
    /// The id of the key that sealed `raw`; absent from entries written before key ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl StoredEntry {
    /// The entry holds a part dropped from a record (a segment), not a message that could be
    /// replayed.
    pub fn is_part(&self) -> bool {
        self.part.is_some()
    }

    /// The message's bytes as they were received (decrypted with `key` if sealed).
    pub fn raw_bytes(&self, key: Option<&DlqKey>) -> Result<Vec<u8>, String> {
        use base64::Engine;
        match (self.raw_encoding.as_deref(), key) {
            (None, _) => Ok(self.raw.clone().into_bytes()),
            (Some("base64"), _) => base64::engine::general_purpose::STANDARD
                .decode(&self.raw)
                .map_err(|_| format!("entry {}: `raw` is not valid base64", self.id)),
            (Some(SEALED), Some(key)) => key.open(&self.id, "raw", &self.id, self.key_id.as_deref(), &self.raw),
            (Some(SEALED), None) => {
                Err(format!("entry {} is encrypted and the pipeline's `dlq` has no `encryption_key`", self.id))
            }
            (Some(other), _) => Err(format!("entry {}: unknown `raw_encoding` `{other}`", self.id)),
        }
    }

    /// The key and headers the record came with (opened with `key` if sealed), or `None` if
    /// it had none. A replay gives them back to the pipeline.
    pub fn bus_meta(&self, key: Option<&DlqKey>) -> Result<Option<BusMeta>, String> {
        match (&self.envelope, key) {
            (None, _) => Ok(None),
            (Some(serde_json::Value::String(sealed)), Some(key)) => {
                let plain = key.open(&self.id, "envelope", &envelope_aad(&self.id), self.key_id.as_deref(), sealed)?;
                let json: serde_json::Value = serde_json::from_slice(&plain)
                    .map_err(|_| format!("entry {}: `envelope` is not a key and headers", self.id))?;
                bus_of_json(&self.id, &json).map(Some)
            }
            (Some(serde_json::Value::String(_)), None) => {
                Err(format!("entry {} is encrypted and the pipeline's `dlq` has no `encryption_key`", self.id))
            }
            (Some(json), _) => bus_of_json(&self.id, json).map(Some),
        }
    }

    /// The size of the message in bytes, without decrypting it.
    pub fn raw_len(&self) -> usize {
        use base64::Engine;
        let decoded = || base64::engine::general_purpose::STANDARD.decode(&self.raw).map(|b| b.len()).unwrap_or(0);
        match self.raw_encoding.as_deref() {
            None => self.raw.len(),
            Some(SEALED) => decoded().saturating_sub(ring::aead::NONCE_LEN + ring::aead::AES_256_GCM.tag_len()),
            Some(_) => decoded(),
        }
    }
}

/// The entries of a plan's DLQ, in the order written, wherever it is: its file
/// ([`read_entries`]) or the state store's table (read without the lock, so while a run goes
/// on). A line or row that is not an entry is RT018.
pub fn read_plan_entries(plan: &sluice_compiler::plan::Plan) -> Result<Vec<StoredEntry>, crate::RunError> {
    let unreadable = |e: String, help: &str| {
        crate::RunError::new(crate::findings::DLQ_UNREADABLE, format!("DLQ {e}")).with_help(help.to_string())
    };
    match (plan.dlq.as_ref(), plan.state.as_ref()) {
        (Some(d), Some(state)) if d.in_state_store() => {
            let rows = crate::state::Store::dlq_entries_in(state, &plan.pipeline)?;
            rows.into_iter()
                .map(|(key, entry)| {
                    serde_json::from_str(&entry).map_err(|_| {
                        unreadable(
                            format!("{}: row {key} is not a DLQ entry of this version of Sluice", d.shown(Some(state))),
                            "the `dlq_entries` table must hold only entries Sluice wrote; delete edited or foreign rows",
                        )
                    })
                })
                .collect()
        }
        (d, _) => {
            let path = d.map(|d| d.path.as_str()).unwrap_or_default();
            read_entries(std::path::Path::new(path)).map_err(|e| {
                unreadable(
                    e,
                    "the DLQ file must hold only entries Sluice wrote; move edited or foreign lines out of it",
                )
            })
        }
    }
}

/// Reads every entry of a DLQ file, in order. A missing file has none. A line that is not an
/// entry is an error naming its line number (never its content), except a last line without
/// its line break that does not parse: a write a crash cut short, which the next run that
/// appends cuts away (`crate::sink::append`), is skipped.
pub fn read_entries(path: &std::path::Path) -> Result<Vec<StoredEntry>, String> {
    use std::io::BufRead;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot open `{}`: {}", path.display(), e.kind())),
    };
    let mut reader = std::io::BufReader::new(file);
    let mut entries = Vec::new();
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("`{}` line {n}: cannot read: {}", path.display(), e.kind()))?;
        if read == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str(text) {
            Ok(entry) => entries.push(entry),
            Err(_) if !complete => break,
            Err(_) => {
                return Err(format!(
                    "`{}` line {n}: not a DLQ entry of this version of Sluice (no `id`?)",
                    path.display()
                ));
            }
        }
    }
    Ok(entries)
}
