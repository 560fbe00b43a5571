//! The shape of every object in the spec language, as data.
//!
//! One table drives both the unknown-key check (with did-you-mean) and the JSON Schema that
//! `sluice schema` emits for editors, so the two cannot drift apart.

/// What a key holds.
#[derive(Debug)]
pub enum KeyType {
    String,
    Integer,
    Bool,
    /// An expression in the mapping language (a string, or a YAML scalar literal).
    Expr,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A string or a list of strings.
    StringOrList,
    ListOfStrings,
    /// A duration such as `200ms`, `5s`, `2m`.
    Duration,
    /// A rate such as `50/min`, `10/s`.
    Rate,
    /// A secret reference: `${VARIABLE}` or `${file:path}`.
    Secret,
    Object(&'static Shape),
    /// A mapping from user-chosen names to objects of one shape.
    MapOf(&'static Shape),
    /// A mapping from user-chosen names to strings.
    MapOfStrings,
    ListOf(&'static Shape),
    /// A mapping whose values are components chosen by their `type` key.
    Components(&'static [&'static Shape]),
    /// Output field -> expression, list producers or nested object (mapping `fields`).
    FieldMap,
    /// PHI class or field -> treatment (masking policy).
    TreatmentMap,
    /// Any YAML value, read as JSON (expected records in test files).
    Any,
}

#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub required: bool,
    pub ty: KeyType,
    pub doc: &'static str,
}

#[derive(Debug)]
pub struct Shape {
    pub name: &'static str,
    /// For component shapes: the value of `type` that selects this shape.
    pub type_tag: Option<&'static str>,
    pub doc: &'static str,
    pub keys: &'static [Key],
}

impl Shape {
    pub fn key(&self, name: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn key_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.keys.iter().map(|k| k.name)
    }
}

const fn req(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: true, ty, doc }
}

const fn opt(name: &'static str, ty: KeyType, doc: &'static str) -> Key {
    Key { name, required: false, ty, doc }
}

pub const KINDS: &[&str] = &["pipeline", "mapping", "profile", "rules", "masking", "test", "pack", "reconciliation"];
pub const MODES: &[&str] = &["strict", "lenient"];

pub static RETRY: Shape = Shape {
    name: "retry",
    type_tag: None,
    doc: "Retry policy: exponential backoff with full jitter.",
    keys: &[
        opt("max_attempts", KeyType::Integer, "Attempts in all, including the first (default 3)."),
        opt("initial_backoff", KeyType::Duration, "Backoff before the first retry (default `200ms`)."),
        opt("max_backoff", KeyType::Duration, "Cap on any one backoff (default `30s`)."),
        opt(
            "max_elapsed",
            KeyType::Duration,
            "Give up once this long has passed since the first attempt, waits included (default `2m`); also caps a server's `Retry-After`.",
        ),
    ],
};

pub static THROTTLE: Shape = Shape {
    name: "throttle",
    type_tag: None,
    doc: "A token bucket: requests are spaced evenly at the rate, and wait (never dropped) while it is reached.",
    keys: &[
        req("rate", KeyType::Rate, "Requests per unit of time: `50/min`, `10/s`, `500/h`."),
        opt(
            "shared",
            KeyType::String,
            "Name of a bucket kept in the state store: every sink of any process or pipeline using the same store and name draws from it. Needs `state`.",
        ),
        opt(
            "per",
            KeyType::String,
            "An output field (`tenant_id`, `metadata.facility`): one bucket per value of it, each at `rate` (`rate: 10/s, per: realm`); a request holds the records of one value. Not a PHI field (SL211).",
        ),
    ],
};

pub static DEFAULTS: Shape = Shape {
    name: "defaults",
    type_tag: None,
    doc: "Defaults for every component of the pipeline.",
    keys: &[
        opt("batch_size", KeyType::Integer, "Records per batch handed to CPU stages (default 256)."),
        opt(
            "workers",
            KeyType::Integer,
            "Worker threads for the CPU stages (default: one per core; `sluice run --threads` overrides it).",
        ),
        opt("retry", KeyType::Object(&RETRY), "Retry policy for I/O (`http` sinks)."),
        opt(
            "throttle",
            KeyType::Object(&THROTTLE),
            "Throttle for I/O (`http` sinks; each has its own bucket unless `shared` names one).",
        ),
    ],
};

pub static FILE_TARGET: Shape = Shape {
    name: "file_target",
    type_tag: None,
    doc: "A JSON Lines file.",
    keys: &[req("path", KeyType::String, "File path, relative to the pipeline file.")],
};

pub static DLQ_TARGET: Shape = Shape {
    name: "dlq",
    type_tag: None,
    doc: "The dead-letter queue: rejected records, each with its reason and raw message, in a JSON Lines file (`path`) or in the state store (`store: state`); exactly one of the two. The raw messages hold patient data, so they are encrypted (AES-256-GCM) unless `plaintext_reason` says why not.",
    keys: &[
        opt("path", KeyType::String, "JSON Lines file, relative to the pipeline file."),
        opt(
            "store",
            KeyType::Enum(&["state"]),
            "`state`: keep the entries in the `dlq_entries` table of the pipeline's state store (`state:`, SQLite or PostgreSQL) instead of a file.",
        ),
        opt(
            "encryption_key",
            KeyType::String,
            "Key for the raw messages: a secret reference (`${VAR}` or `${file:path}`) to 32 bytes written as 64 hex digits or base64 (`openssl rand -hex 32`).",
        ),
        opt(
            "plaintext_reason",
            KeyType::String,
            "Why the raw messages may be kept unencrypted (synthetic or test data). Without it or a key, a run refuses to start.",
        ),
    ],
};

pub static STATE: Shape = Shape {
    name: "state",
    type_tag: None,
    doc: "The state store: run records and checkpoints, DLQ replays and shared throttles, so an interrupted run resumes with `sluice run --resume`. SQLite (`path`, one machine) or PostgreSQL (`url`, several instances); exactly one of the two.",
    keys: &[
        opt(
            "type",
            KeyType::Enum(&["sqlite", "postgres"]),
            "Store kind; implied by `path` (`sqlite`) or `url` (`postgres`).",
        ),
        opt("path", KeyType::String, "SQLite database file, relative to the pipeline file."),
        opt(
            "url",
            KeyType::String,
            "PostgreSQL connection URL, `postgres://user@host:port/database`, or a secret reference to one (`${SLUICE_STATE_URL}`) when it holds a password. Plain connections only: `sslmode` absent or `disable`.",
        ),
        opt(
            "checkpoint_every",
            KeyType::Duration,
            "How often the run commits a checkpoint: outputs synced to disk, then the source position (default `1s`).",
        ),
    ],
};

pub static OBJECT_STORE: Shape = Shape {
    name: "store",
    type_tag: None,
    doc: "Where the object store of an `s3://`, `az://` or `gs://` path is and how Sluice signs in to it. Credentials are secret references only (`${VARIABLE}`, `${file:path}`, `${aws-sm:name}`); keys left out fall back to the store's usual environment (`AWS_*`, `AZURE_*`, `GOOGLE_*` variables, instance metadata).",
    keys: &[
        opt("region", KeyType::String, "AWS region of the bucket (S3), e.g. `eu-west-1`."),
        opt(
            "endpoint",
            KeyType::String,
            "Endpoint of an S3-compatible store or an emulator (`http://127.0.0.1:9000`; path-style requests), or Azure's blob endpoint (`http://127.0.0.1:10000/devstoreaccount1` for Azurite).",
        ),
        opt("access_key_id", KeyType::Secret, "S3 access key id, as a reference (`${AWS_ACCESS_KEY_ID}`)."),
        opt("secret_access_key", KeyType::Secret, "S3 secret access key, as a reference."),
        opt("account", KeyType::String, "Azure storage account name."),
        opt("access_key", KeyType::Secret, "Azure storage account key, as a reference."),
        opt(
            "service_account_key",
            KeyType::Secret,
            "GCS service account key (JSON), as a reference (`${file:key.json}`).",
        ),
    ],
};

pub static SOURCE_AFTER: Shape = Shape {
    name: "source.files.after",
    type_tag: None,
    doc: "What becomes of an object once the run that read it has completed (every record of it durable in the sinks, the DLQ and the audit log).",
    keys: &[
        opt(
            "move_to",
            KeyType::String,
            "Key prefix the objects are moved under, in the same bucket (`processed/`: `inbound/a.hl7` becomes `processed/inbound/a.hl7`); outside what the source lists.",
        ),
        opt(
            "tag",
            KeyType::MapOfStrings,
            "S3 and Azure Blob: tags added to each object (`{sluice-status: processed}`), merged into the tags it already has; at most 10, literal text (Azure: ASCII letters, digits, spaces and `+ - . / : = _`). With `move_to`, objects are tagged first, and the moved copy carries the whole tag set. Not for GCS (no emulator here works with the client, so it could not be tested).",
        ),
    ],
};

pub static SOURCE_FILES: Shape = Shape {
    name: "source.files",
    type_tag: Some("files"),
    doc: "Reads messages from local files, or objects in S3, Azure Blob or GCS, matching glob patterns, streaming. Object-store sources process each object (key and ETag) once across runs: a new run lists the store and reads only the objects no earlier run took.",
    keys: &[
        req("type", KeyType::Enum(&["files"]), "Source kind."),
        req(
            "format",
            KeyType::Enum(&["hl7v2", "fhir", "x12"]),
            "Standard of the files: `hl7v2`, `fhir` (R4 JSON, XML, NDJSON) or `x12` (EDI interchanges).",
        ),
        req(
            "path",
            KeyType::StringOrList,
            "Glob pattern(s), relative to the pipeline file; or object URLs with a glob in the key (`s3://bucket/inbound/**/*.hl7`, `az://container/...`, `gs://bucket/...`), all in one bucket; every `format` reads them.",
        ),
        opt(
            "store",
            KeyType::Object(&OBJECT_STORE),
            "Where the object store of `s3://`, `az://` or `gs://` paths is, and its credentials.",
        ),
        opt(
            "after",
            KeyType::Object(&SOURCE_AFTER),
            "Object-store sources: move each object once the run that read it has completed.",
        ),
        opt(
            "profile",
            KeyType::String,
            "`hl7v2`: parser profile file (`kind: profile`). `fhir`: a StructureDefinition (JSON or XML) every resource of its type must meet.",
        ),
        opt(
            "resource_types",
            KeyType::ListOfStrings,
            "`fhir` only: the resource types read (`[Patient, Observation]`); others are counted as filtered. Default: all.",
        ),
        opt(
            "mode",
            KeyType::Enum(MODES),
            "`fhir` and `x12`: `strict` (default) rejects every validation error; `lenient` lets unknown elements and wrong JSON shapes (FHIR), or envelope and implementation-guide errors (X12), through as warnings.",
        ),
        opt(
            "guides",
            KeyType::ListOfStrings,
            "`x12` only: the implementation guides read (`[005010X222A1, 005010X221A1]`); sets of others are counted as filtered. Default: all.",
        ),
        opt(
            "acks",
            KeyType::String,
            "`x12` only: a directory to write a 999 (5010), 997 (4010) or TA1 to for every interchange read; control numbers come from the state store (`state:` is required).",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub const ACK_MODES: &[&str] = &["original", "enhanced"];
pub const ACK_TIMINGS: &[&str] = &["on_commit", "on_receipt"];
/// Source priorities, most urgent first ([`crate::plan::MllpPlan::priority`]).
pub const PRIORITIES: &[&str] = &["interactive", "normal", "backfill"];

pub static MLLP_TLS: Shape = Shape {
    name: "mllp.tls",
    type_tag: None,
    doc: "TLS for the listener (rustls; TLS 1.2 and 1.3).",
    keys: &[
        req("cert", KeyType::String, "Certificate chain (PEM file), relative to the pipeline file."),
        req(
            "key",
            KeyType::Secret,
            "Private key (PEM): `${file:path}` (relative to the pipeline file) or `${VARIABLE}` holding the PEM text.",
        ),
    ],
};

pub static MLLP_ACK: Shape = Shape {
    name: "mllp.ack",
    type_tag: None,
    doc: "How and when the listener acknowledges each message.",
    keys: &[
        opt(
            "mode",
            KeyType::Enum(ACK_MODES),
            "`original` (AA/AE/AR, default) or `enhanced` (accept ACK CA/CE/CR when MSH-15 asks for one).",
        ),
        opt(
            "timing",
            KeyType::Enum(ACK_TIMINGS),
            "`on_commit` (default): the ACK leaves once the record is written and synced to its sink or the DLQ; `on_receipt`: as soon as the frame is read and parsed.",
        ),
    ],
};

pub static SOURCE_MLLP: Shape = Shape {
    name: "source.mllp",
    type_tag: Some("mllp"),
    doc: "Listens for HL7 v2 messages over MLLP (TCP, optionally TLS) and acknowledges each. Runs until SIGINT or SIGTERM. A pipeline may have several `mllp` sources (each on its own address, with a `priority`) but no `files` source beside them.",
    keys: &[
        req("type", KeyType::Enum(&["mllp"]), "Source kind."),
        opt("format", KeyType::Enum(&["hl7v2"]), "Standard of the messages: `hl7v2` (the default and only one)."),
        req(
            "listen",
            KeyType::String,
            "Address and port to listen on: `127.0.0.1:2575`, `[::1]:2575`, `0.0.0.0:2575`, `localhost:2575` (port 0: any free port, printed at start).",
        ),
        opt("profile", KeyType::String, "Parser profile file (`kind: profile`)."),
        opt(
            "max_frame_bytes",
            KeyType::Integer,
            "Largest frame accepted, in bytes (default 1048576); larger frames get an AR.",
        ),
        opt("idle_timeout", KeyType::Duration, "A connection silent this long is closed (default `60s`)."),
        opt("max_connections", KeyType::Integer, "Connections served at once (default 64); more wait to be accepted."),
        opt("tls", KeyType::Object(&MLLP_TLS), "Serve MLLP over TLS."),
        opt(
            "charset",
            KeyType::Enum(ENCODINGS),
            "Character set of every message on this listener, whatever MSH-18 says (overrides the profile's `encoding`).",
        ),
        opt("ack", KeyType::Object(&MLLP_ACK), "Acknowledgement mode and timing."),
        opt(
            "priority",
            KeyType::Enum(PRIORITIES),
            "`interactive`, `normal` (default) or `backfill`: when the pipeline is busy, a record waiting on a more urgent source is taken first; the others queue (their connections wait), never dropped.",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static STAGE_VALIDATE: Shape = Shape {
    name: "stage.validate",
    type_tag: Some("validate"),
    doc: "Checks records against validation rules.",
    keys: &[
        req("type", KeyType::Enum(&["validate"]), "Stage kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("rules", KeyType::String, "Rules file (`kind: rules`)."),
        opt("mode", KeyType::Enum(MODES), "Overrides the rules file's mode."),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static STAGE_MAP: Shape = Shape {
    name: "stage.map",
    type_tag: Some("map"),
    doc: "Maps each message to an output schema.",
    keys: &[
        req("type", KeyType::Enum(&["map"]), "Stage kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("mapping", KeyType::String, "Mapping file (`kind: mapping`)."),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static STAGE_MASK: Shape = Shape {
    name: "stage.mask",
    type_tag: Some("mask"),
    doc: "Applies a masking policy to output records.",
    keys: &[
        req("type", KeyType::Enum(&["mask"]), "Stage kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("policy", KeyType::String, "Masking policy file (`kind: masking`)."),
        opt(
            "environments",
            KeyType::MapOfStrings,
            "Environment name -> masking policy file applied instead of `policy` when Sluice runs with `--env NAME`; each must be at least as strict as `policy` on every field (SL608).",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static STAGE_FILTER: Shape = Shape {
    name: "stage.filter",
    type_tag: Some("filter"),
    doc: "Keeps records for which an expression holds; the others are counted as filtered.",
    keys: &[
        req("type", KeyType::Enum(&["filter"]), "Stage kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("keep", KeyType::Expr, "Boolean expression."),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static STAGE_ROUTE: Shape = Shape {
    name: "stage.route",
    type_tag: Some("route"),
    doc: "Sends each record to the first branch whose condition holds.",
    keys: &[
        req("type", KeyType::Enum(&["route"]), "Stage kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("routes", KeyType::MapOfStrings, "Branch name -> boolean expression, tried in order."),
        opt("default", KeyType::String, "Branch for records no condition matched."),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static SINK_PHI: Shape = Shape {
    name: "sink.phi",
    type_tag: None,
    doc: "Declares that PHI may reach this sink unmasked, and why.",
    keys: &[
        req(
            "allowed",
            KeyType::Bool,
            "`true`: fields may arrive unmasked (each shows as `keep` in the masking matrix).",
        ),
        opt(
            "reason",
            KeyType::String,
            "Why this destination may hold PHI in clear (treatment, a covered entity's own EHR...); required with `allowed: true`.",
        ),
    ],
};

pub static SINK_JSONL: Shape = Shape {
    name: "sink.jsonl",
    type_tag: Some("jsonl"),
    doc: "Writes one JSON object per line.",
    keys: &[
        req("type", KeyType::Enum(&["jsonl"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req(
            "path",
            KeyType::String,
            "Output file, relative to the pipeline file; or an object URL (`s3://bucket/out/adt.jsonl`, `az://...`, `gs://...`): the run writes a local staging file and uploads it when the run completes, so a crash never leaves a partial object.",
        ),
        opt(
            "store",
            KeyType::Object(&OBJECT_STORE),
            "Where the object store of an object URL `path` is, and its credentials.",
        ),
        opt(
            "phi",
            KeyType::Object(&SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static SINK_HTTP: Shape = Shape {
    name: "sink.http",
    type_tag: Some("http"),
    doc: "POSTs the records to an HTTP(S) endpoint as JSON Lines (`application/x-ndjson`), one request per batch, with retries and a throttle. At least once: see the user guide.",
    keys: &[
        req("type", KeyType::Enum(&["http"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("url", KeyType::String, "Endpoint: `https://host/path` (or `http://`)."),
        opt(
            "headers",
            KeyType::MapOfStrings,
            "Extra request headers: name -> value; a value may be a secret reference (`${VAR}`, `${file:path}`), and must be one for names such as `Authorization`.",
        ),
        opt("timeout", KeyType::Duration, "Limit on one request, connecting included (default `30s`)."),
        opt("max_records", KeyType::Integer, "Most records in one request (default: the whole batch)."),
        opt("retry", KeyType::Object(&RETRY), "Retry policy; keys written here override `defaults.retry`."),
        opt("throttle", KeyType::Object(&THROTTLE), "Throttle; overrides `defaults.throttle`."),
        opt(
            "phi",
            KeyType::Object(&SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub const SOURCE_SHAPES: &[&Shape] = &[
    &SOURCE_FILES,
    &SOURCE_MLLP,
    &super::kafka::SOURCE_KAFKA,
    &super::amqp::SOURCE_AMQP,
    &super::webhook::SOURCE_WEBHOOK,
    &crate::fhir_rest::SOURCE_FHIR_REST,
    &crate::stripe::SOURCE_STRIPE,
    &crate::quickbooks::SOURCE_QUICKBOOKS,
    &crate::plaid::SOURCE_PLAID,
];
pub const STAGE_SHAPES: &[&Shape] = &[&STAGE_VALIDATE, &STAGE_MAP, &STAGE_MASK, &STAGE_FILTER, &STAGE_ROUTE];
pub static SINK_POSTGRES: Shape = Shape {
    name: "sink.postgres",
    type_tag: Some("postgres"),
    doc: "Writes the records into a PostgreSQL table made from their output schema (created, or given the columns it lacks, when the run starts; `sluice plan` shows the DDL): one transaction per batch, committed before the checkpoint, idempotent by record id (`append`) or by key (`upsert`), so a crash and `--resume` leave each record in the table once.",
    keys: &[
        req("type", KeyType::Enum(&["postgres"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req(
            "url",
            KeyType::Secret,
            "Connection URL, as a secret reference (`${WAREHOUSE_URL}`, set to `postgres://user:password@host:port/database`); never printed.",
        ),
        req(
            "write",
            KeyType::Enum(&["append", "upsert"]),
            "`append`: every record is a new row (inserts). `upsert`: one row per `key`, updated by later records (CDC tables; `INSERT ... ON CONFLICT DO UPDATE`); a deletion record (cdc) deletes the row of its key, while an `append` table leaves deletions out. There is no separate switch for deletions.",
        ),
        opt(
            "table",
            KeyType::String,
            "Table name, `name` or `schema.name` in lower case (default: from the output schema, `canonical/adt-message@1` -> `adt_message_v1`).",
        ),
        opt(
            "key",
            KeyType::ListOfStrings,
            "Fields of the `upsert` key, the table's primary key (default: the output schema's `@primary_key`).",
        ),
        opt(
            "phi",
            KeyType::Object(&SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static SINK_CSV: Shape = Shape {
    name: "sink.csv",
    type_tag: Some("csv"),
    doc: "Writes one CSV line per record (RFC 4180: quoted where needed, CRLF), under a header: the columns a `postgres` table of the records' output schema would have (`sluice_record_id`, then the fields outside lists with `_` for `.`, lists as JSON text). A missing value is an empty field, an empty text `\"\"`.",
    keys: &[
        req("type", KeyType::Enum(&["csv"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req(
            "path",
            KeyType::String,
            "Output file, relative to the pipeline file; or an object URL (`s3://bucket/out/adt.csv`, `az://...`, `gs://...`): the run writes a local staging file and uploads it when the run completes, so a crash never leaves a partial object.",
        ),
        opt(
            "store",
            KeyType::Object(&OBJECT_STORE),
            "Where the object store of an object URL `path` is, and its credentials.",
        ),
        opt(
            "phi",
            KeyType::Object(&SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static PARQUET_ROLL: Shape = Shape {
    name: "sink.parquet.roll",
    type_tag: None,
    doc: "When a Parquet file is closed and the next one started.",
    keys: &[
        opt("rows", KeyType::Integer, "Rows per file (default 1,000,000)."),
        opt(
            "bytes",
            KeyType::Integer,
            "Close a file once this many bytes (compressed, as on disk) are written to it (default: no limit); whichever of `rows` and `bytes` comes first.",
        ),
    ],
};

pub static SINK_PARQUET: Shape = Shape {
    name: "sink.parquet",
    type_tag: Some("parquet"),
    doc: "Writes the records into Parquet files in a directory, with the columns a `postgres` table of their output schema would have (typed: int64, double, boolean, DATE, TIMESTAMP; text and lists as strings; `sluice plan` shows the schema). Files are written under a hidden temporary name and renamed when complete, at each checkpoint and at the end of the run: `<run_id>-<first record>.parquet`, optionally in Hive-style `column=value/` directories.",
    keys: &[
        req("type", KeyType::Enum(&["parquet"]), "Sink kind."),
        req("inputs", KeyType::ListOfStrings, "Upstream components."),
        req("path", KeyType::String, "Output directory, relative to the pipeline file."),
        opt(
            "partition_by",
            KeyType::String,
            "A field of the records (dotted path, outside lists): one `column=value/` directory per value.",
        ),
        opt("roll", KeyType::Object(&PARQUET_ROLL), "When a file is closed and the next one started."),
        opt(
            "phi",
            KeyType::Object(&SINK_PHI),
            "PHI allowed in clear, with a reason (default: every PHI field must be masked).",
        ),
        opt("audience", KeyType::String, AUDIENCE_DOC),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub const SINK_SHAPES: &[&Shape] = &[
    &SINK_JSONL,
    &SINK_HTTP,
    &SINK_POSTGRES,
    &SINK_CSV,
    &SINK_PARQUET,
    &super::kafka::SINK_KAFKA,
    &super::amqp::SINK_AMQP,
];

pub static PIPELINE: Shape = Shape {
    name: "pipeline",
    type_tag: None,
    doc: "A pipeline: sources, stages and sinks forming a DAG.",
    keys: &[
        req("kind", KeyType::Enum(&["pipeline"]), "File kind."),
        req("name", KeyType::String, "Pipeline name."),
        opt("description", KeyType::String, "Free text."),
        req("sources", KeyType::Components(SOURCE_SHAPES), "Named sources."),
        opt("stages", KeyType::Components(STAGE_SHAPES), "Named stages."),
        req("sinks", KeyType::Components(SINK_SHAPES), "Named sinks."),
        req(
            "dlq",
            KeyType::Object(&DLQ_TARGET),
            "Dead-letter queue (a file or the state store): where every rejected record goes, with its reason.",
        ),
        opt("audit", KeyType::Object(&FILE_TARGET), "Audit log file (hash-chained JSON Lines)."),
        opt("state", KeyType::Object(&STATE), "State store."),
        opt("defaults", KeyType::Object(&DEFAULTS), "Defaults for every component."),
        opt(
            "fail_if",
            KeyType::String,
            "Stop a file run when too many records fail: `error_rate > 0.5% over 1000 records` (DLQ records among the last 1000 read).",
        ),
        opt(
            "phi_proof",
            KeyType::Enum(&["strict", "lenient"]),
            "`strict` (default): PHI reaching a sink unmasked is an error (SL601); `lenient`: a warning, and the masking matrix shows the field kept in clear by this line.",
        ),
        opt(
            "retention",
            KeyType::Object(&RETENTION),
            "How long the DLQ, the audit log and the state store keep what they hold; `sluice purge` removes what expired.",
        ),
        opt(
            "roles",
            KeyType::MapOf(&ROLE),
            "Who may do the operator actions on what the pipeline keeps; once declared, each action needs `--role` and the role's key.",
        ),
        opt(
            "connections",
            KeyType::MapOf(&super::connections::CONNECTION),
            "Named connections to financial APIs (several per provider, one per account): OAuth 2.0 or an API key. `sluice connect NAME PIPELINE` authorizes one.",
        ),
        opt(
            "reconcile",
            KeyType::ListOf(&PIPELINE_RECONCILE),
            "Reconciliations `sluice run` runs once the run's sources have ended, over what this pipeline's `jsonl` sinks wrote (a pipeline whose sources never end, such as an MLLP listener or a Kafka consumer, cannot have one).",
        ),
    ],
};

pub static PIPELINE_RECONCILE: Shape = Shape {
    name: "pipeline.reconcile",
    type_tag: None,
    doc: "A reconciliation (`kind: reconciliation`) run at the end of the pipeline's run.",
    keys: &[
        req("spec", KeyType::String, "The reconciliation file (`kind: reconciliation`), relative to the pipeline."),
        opt(
            "inputs",
            KeyType::Object(&PIPELINE_RECONCILE_INPUTS),
            "Which of this pipeline's `jsonl` sinks each side reads, in place of the reconciliation's own `path`; a side not named reads its own `path`.",
        ),
        opt("description", KeyType::String, "Free text."),
    ],
};

pub static PIPELINE_RECONCILE_INPUTS: Shape = Shape {
    name: "pipeline.reconcile.inputs",
    type_tag: None,
    doc: "The sinks the reconciliation's sides read.",
    keys: &[
        opt(
            "left",
            KeyType::StringOrList,
            "A `jsonl` sink of the pipeline, or a list of them: their files, in that order, are the `left` input.",
        ),
        opt(
            "right",
            KeyType::StringOrList,
            "A `jsonl` sink of the pipeline, or a list of them: their files, in that order, are the `right` input.",
        ),
    ],
};

pub static RETENTION: Shape = Shape {
    name: "retention",
    type_tag: None,
    doc: "Retention periods: a whole number and `d`, `w` or `y` (a year counts 366 days).",
    keys: &[
        opt("dlq", KeyType::String, "DLQ records older than this are removed by `sluice purge` (`30d`)."),
        opt(
            "audit",
            KeyType::String,
            "The audit log's period (`6y`): `sluice purge` deletes archived logs (`<path>.<n>`) whose newest entry is older; the live log is never cut.",
        ),
        opt(
            "state",
            KeyType::String,
            "The state store's period (`90d`): `sluice purge` deletes completed and abandoned run records (input lists, checkpoints) last written before it, except the newest run and runs that took object-store objects.",
        ),
    ],
};

/// The `audience` key of every sink.
pub const AUDIENCE_DOC: &str = "A role of `roles:` whose `masking` policy is applied to what this sink writes, on top of the mask stages on the way (the stronger action wins); the masking matrix shows which rows it decided.";

pub static ROLE: Shape = Shape {
    name: "role",
    type_tag: None,
    doc: "A role: the SHA-256 of its key, and the operator actions it may do.",
    keys: &[
        req(
            "key_sha256",
            KeyType::String,
            "The hex SHA-256 of the role's key (never the key): `printf %s \"$KEY\" | sha256sum`.",
        ),
        req(
            "may",
            KeyType::ListOfStrings,
            "Operations: `dlq_raw` (`dlq show --raw`), `dlq_replay`, `dlq_purge`, `detokenize`, `keys_rotate`, `purge`, `audit_export`.",
        ),
        opt(
            "masking",
            KeyType::String,
            "The masking policy (`kind: masking` file) of this role as an audience: sinks with `audience: NAME` are masked with it.",
        ),
    ],
};

pub static MAPPING_INPUT: Shape = Shape {
    name: "mapping.input",
    type_tag: None,
    doc: "What a mapping reads.",
    keys: &[
        req(
            "schema",
            KeyType::String,
            "Input schema: `hl7v2/<version>`, `fhir/r4`, or `x12/<guide>` (`x12/005010X222A1`, `x12/005010X221A1`).",
        ),
        opt(
            "resource_type",
            KeyType::String,
            "`fhir/r4` only (required there): the resource type mapped (`Patient`); paths are relative to it.",
        ),
        opt("message_types", KeyType::ListOfStrings, "Accepted message types (`ADT^A01`, `ADT^*`)."),
        opt(
            "profile",
            KeyType::String,
            "HL7 v2: the parser profile declaring Z-segments the mapping reads. X12: the trading-partner profile (`format: x12`) of `partner` (the two go together, SL481).",
        ),
        opt(
            "partner",
            KeyType::String,
            "X12 only: the `name` of the partner of `profile` whose copy of the guide (its overlays: added segments and loops, changed places) the paths are checked against and the map stage reads the sets with (SL482, SL483); its source must read that partner's sets with the same copy (SL484), and a set of another sender goes to the DLQ (RT312).",
        ),
    ],
};

pub static PRODUCER: Shape = Shape {
    name: "mapping.producer",
    type_tag: None,
    doc: "Produces items of a list field.",
    keys: &[
        opt(
            "each",
            KeyType::Expr,
            "A repeating path (`PID-3[*]`): one item per repetition; a segment group (`group(ORDER_OBSERVATION)`, `order.group(OBSERVATION)`): one item per group instance; `segment(AL1)`: one item per segment; over X12, a loop (`loop(2400)`): one item per occurrence, whose paths (`2400/SV1-02`) read that occurrence.",
        ),
        opt("as", KeyType::String, "Name of the iteration variable (default `it`)."),
        opt("when", KeyType::Expr, "Condition for producing an item."),
        req("item", KeyType::FieldMap, "Expression (list of scalars) or member -> expression."),
    ],
};

pub static MAPPING: Shape = Shape {
    name: "mapping",
    type_tag: None,
    doc: "Maps an input message to an output schema, one expression per output field.",
    keys: &[
        req("kind", KeyType::Enum(&["mapping"]), "File kind."),
        req("name", KeyType::String, "Mapping name."),
        opt("description", KeyType::String, "Free text."),
        opt(
            "extends",
            KeyType::String,
            "A base mapping file (relative path) this one changes: its keys replace the base's, `fields` and `tables` are merged entry by entry; the result is checked like any mapping.",
        ),
        opt(
            "input",
            KeyType::Object(&MAPPING_INPUT),
            "Input schema and message types (required, or inherited with `extends`).",
        ),
        opt(
            "output",
            KeyType::String,
            "Output schema, e.g. `canonical/patient-event@1`, or `fhir/r4/Bundle` (required, or inherited with `extends`).",
        ),
        opt("tables", KeyType::MapOfStrings, "Code tables: name -> {code: value}."),
        opt(
            "each",
            KeyType::Expr,
            "X12 mappings only: one output record per occurrence of a loop (`loop(2300)`: one per claim of an 837P, `loop(2100)`: one per claim payment of an 835); paths through the loop read that occurrence, paths to the set level and enclosing loops its context.",
        ),
        opt(
            "fields",
            KeyType::FieldMap,
            "Output field -> expression (or list producers). Required for an output schema.",
        ),
        opt(
            "resources",
            KeyType::MapOf(&FHIR_RESOURCE),
            "For `output: fhir/r4/Bundle` (instead of `fields`): name -> one kind of resource of the Bundle.",
        ),
    ],
};

pub static FHIR_RESOURCE: Shape = Shape {
    name: "mapping.resource",
    type_tag: None,
    doc: "One kind of FHIR resource of a mapping's transaction Bundle.",
    keys: &[
        req("type", KeyType::String, "FHIR R4 resource type (`Patient`, `Observation`)."),
        opt(
            "within",
            KeyType::String,
            "Build this resource once per instance of an earlier resource, in its scope (its `as` variable).",
        ),
        opt(
            "each",
            KeyType::Expr,
            "One resource per repetition (`PID-3[*]`), segment (`segment(AL1)`) or segment group (`group(ORDER_OBSERVATION)`, `order.group(OBSERVATION)`).",
        ),
        opt("as", KeyType::String, "Name of the iteration variable (default `it`)."),
        opt("when", KeyType::Expr, "Condition for building the resource."),
        req(
            "id",
            KeyType::StringOrList,
            "Key expressions of the deterministic id: a UUID from SHA-256 of the type and the key values.",
        ),
        req(
            "fields",
            KeyType::FieldMap,
            "Element path relative to the resource (`name[0].family`) -> expression, `ref(resource)`, or list producers.",
        ),
    ],
};

pub static Z_FIELD: Shape = Shape {
    name: "profile.z_field",
    type_tag: None,
    doc: "One field of a Z-segment.",
    keys: &[
        req("name", KeyType::String, "Field name."),
        req("type", KeyType::String, "HL7 datatype (`ST`, `NM`, `CX`...)."),
        opt("phi", KeyType::String, "PHI class of the field, if it identifies a person."),
    ],
};

pub static Z_SEGMENT: Shape = Shape {
    name: "profile.z_segment",
    type_tag: None,
    doc: "A site-specific segment.",
    keys: &[
        opt("description", KeyType::String, "Free text."),
        req("fields", KeyType::ListOf(&Z_FIELD), "Fields in order (field 1 first)."),
    ],
};

pub const SEGMENT_TERMINATORS: &[&str] = &["cr", "lf", "crlf"];
pub const UNEXPECTED_SEGMENTS: &[&str] = &["fail", "skip", "parse"];
/// Profile `encoding_characters` values; each is a name
/// `sluice_hl7v2::codec::EncodingCharacters::from_name` reads.
pub const ENCODING_CHARACTERS: &[&str] = &["strict", "tolerant"];
/// Profile `bad_segments` values; each is a name `sluice_hl7v2::codec::BadSegments::from_name`
/// reads.
pub const BAD_SEGMENTS: &[&str] = &["reject", "drop"];
/// Profile `encoding` values; each is a name `sluice_hl7v2::charset::CharsetPolicy::from_name` reads.
pub const ENCODINGS: &[&str] = &[
    "auto",
    "utf-8",
    "ascii",
    "iso-8859-1",
    "iso-8859-2",
    "iso-8859-3",
    "iso-8859-4",
    "iso-8859-5",
    "iso-8859-6",
    "iso-8859-7",
    "iso-8859-8",
    "iso-8859-9",
    "iso-8859-15",
    "windows-1252",
    "utf-16",
    "utf-16le",
    "utf-16be",
];

pub static PROFILE: Shape = Shape {
    name: "profile",
    type_tag: None,
    doc: "How to read a sender's messages: one HL7 v2 sender (`format: hl7v2`), or X12 trading partners (`format: x12`).",
    keys: &[
        req("kind", KeyType::Enum(&["profile"]), "File kind."),
        req("name", KeyType::String, "Profile name."),
        opt("description", KeyType::String, "Free text."),
        req("format", KeyType::Enum(&["hl7v2", "x12"]), "Standard."),
        opt(
            "version",
            KeyType::String,
            "`hl7v2` (required there): HL7 version paths are checked against; used when MSH-12 is empty. Not with `x12` (each partner has its `version`).",
        ),
        opt("accept_versions", KeyType::ListOfStrings, "Versions accepted in MSH-12 (default: `version` only)."),
        opt(
            "encoding",
            KeyType::Enum(ENCODINGS),
            "Character set of the messages: `auto` (default: byte-order mark, then MSH-18, then UTF-8) or one fixed set that overrides MSH-18, for senders that lie.",
        ),
        opt("segment_terminators", KeyType::ListOfStrings, "Tolerated separators: `cr`, `lf`, `crlf` (default all)."),
        opt(
            "unexpected_segments",
            KeyType::Enum(UNEXPECTED_SEGMENTS),
            "Segments the schema does not define (default `fail`).",
        ),
        opt("timezone", KeyType::String, "Offset for times without one, `+HH:MM` (default `+00:00`)."),
        opt(
            "encoding_characters",
            KeyType::Enum(ENCODING_CHARACTERS),
            "How MSH-2 is read: `strict` (default: 4 or 5 distinct characters) or `tolerant` (also a doubled escape character `^~\\\\&`, warning HL7006, and a 3-character MSH-2 with `&` assumed, warning HL7007).",
        ),
        opt(
            "bad_segments",
            KeyType::Enum(BAD_SEGMENTS),
            "A segment that cannot be parsed (HL7004: a stray line, an invalid segment id) inside a message whose MSH is sound: `reject` (default: the whole message goes to the DLQ) or `drop` (the segment goes to the DLQ on its own, the record goes on without it, with warning RT114).",
        ),
        opt("z_segments", KeyType::MapOf(&Z_SEGMENT), "Z-segment definitions by id."),
        opt(
            "partners",
            KeyType::ListOf(&X12_PARTNER),
            "`x12` (required there): the trading partners, each identified by the ISA06 (and ISA05) of what it sends.",
        ),
        opt(
            "processing",
            KeyType::Object(&X12_PROCESSING),
            "`x12`: which envelope and order checks are errors, for every partner (each may override).",
        ),
        opt(
            "unknown_partners",
            KeyType::Enum(X12_UNKNOWN_PARTNERS),
            "`x12`: an interchange whose sender is no partner: `reject` (default: X12068, TA1 note 006, its sets to the DLQ with RT178) or `accept` (read with the defaults).",
        ),
    ],
};

/// `unknown_partners` values of an X12 profile.
pub const X12_UNKNOWN_PARTNERS: &[&str] = &["reject", "accept"];
/// Overlay `usage` values: `optional` is the guides' situational (S).
pub const X12_USAGES: &[&str] = &["required", "optional", "not_used"];
/// Element types an added segment's elements may declare (simple ones: a composite needs
/// components, which an overlay cannot list).
pub const X12_ELEMENT_TYPES: &[&str] = &["AN", "ID", "N0", "N2", "R", "DT", "TM"];

pub static X12_PROCESSING: Shape = Shape {
    name: "profile.x12_processing",
    type_tag: None,
    doc: "Which X12 checks are errors (`true`) or warnings (`false`); a partner's own `processing` overrides the profile's key by key.",
    keys: &[
        opt(
            "validate_isa",
            KeyType::Bool,
            "ISA/IEA checks (fixed widths, codes, dates, times, ISA13, IEA01/IEA02; default `true`). `false`: they are warnings, in findings and acknowledgments.",
        ),
        opt(
            "validate_gs",
            KeyType::Bool,
            "GS/GE checks (GS01, GS04-GS06, GS08, GE01/GE02, a missing GE; default `true`). `false`: warnings.",
        ),
        opt(
            "strict_segment_order",
            KeyType::Bool,
            "A segment out of order in its loop (X12053, IK304 7; default `true`: an error). `false`: a warning, and the segment is placed where the guide has it (its elements checked, a required place counted as present).",
        ),
    ],
};

pub static X12_OVERLAY: Shape = Shape {
    name: "profile.x12_overlay",
    type_tag: None,
    doc: "One change to a partner's copy of an implementation guide, or one segment or loop added to it: exactly one of `path`, `add_segment`, `add_loop` (SL452).",
    keys: &[
        req(
            "guide",
            KeyType::String,
            "The bundled guide changed, as a mapping names it (`005010X222A1`, `005010X279A1/271`); one of the partner's transaction sets and version.",
        ),
        opt(
            "path",
            KeyType::String,
            "What changes: a loop (`2010BB`, `2000C/2300`), a segment (`2300/PWK`, `2300/REF(G1)`) or an element or component (`2300/CLM-11-1`, `2010BA/NM1-09`), at every place of the guide it names.",
        ),
        opt(
            "add_segment",
            KeyType::String,
            "A segment the guide lacks, added to every loop the path names: `2300/REF(ZZ)` (a REF qualified ZZ in each 2300), `2400/K3`. It must not fit a place loop identification could also choose (SL450).",
        ),
        opt(
            "add_loop",
            KeyType::String,
            "A loop the guide lacks: `PARENT/ID` (`2300/2310Z`), a new id, its segments in `segments` (the first starts it). Not an HL level.",
        ),
        opt(
            "usage",
            KeyType::Enum(X12_USAGES),
            "`required`, `optional` (situational) or `not_used`. A segment's qualifier element (NM101, REF01 that selects the place) stays required. An addition is `optional` unless told.",
        ),
        opt("min_length", KeyType::Integer, "Elements: the minimum length."),
        opt("max_length", KeyType::Integer, "Elements: the maximum length."),
        opt("add_codes", KeyType::ListOfStrings, "Elements with a code list: codes accepted besides the guide's."),
        opt(
            "max_use",
            KeyType::Integer,
            "Segments and loops: how many times they may repeat in one loop occurrence (at least 1). An addition repeats once unless told.",
        ),
        opt(
            "after",
            KeyType::String,
            "Additions: the place of the loop they follow, a segment (`PWK`, `REF(G1)`; the last when several) or an inner loop (`2310F`). Default: a segment after the loop's segments of the same id, else before its first inner loop; a loop after the last inner loop.",
        ),
        opt(
            "elements",
            KeyType::ListOf(&X12_NEW_ELEMENT),
            "`add_segment`: elements changed from the dictionary's entry (every element situational), or, for a segment the dictionary lacks, all of them in order (SL451).",
        ),
        opt(
            "segments",
            KeyType::ListOf(&X12_NEW_SEGMENT),
            "`add_loop`: its segments in order; the first starts the loop and is required in it.",
        ),
    ],
};

pub static X12_NEW_SEGMENT: Shape = Shape {
    name: "profile.x12_new_segment",
    type_tag: None,
    doc: "One segment of an added loop.",
    keys: &[
        req("segment", KeyType::String, "`SEG` or `SEG(QUAL)` (`NM1(ZZ)`: an NM1 whose NM101 is ZZ)."),
        opt(
            "usage",
            KeyType::Enum(X12_USAGES),
            "`required`, `optional` (the default) or `not_used`; the first segment is required.",
        ),
        opt("max_use", KeyType::Integer, "How many times it may repeat in one occurrence of the loop (default 1)."),
        opt("elements", KeyType::ListOf(&X12_NEW_ELEMENT), "As `elements` of `add_segment`."),
    ],
};

pub static X12_NEW_ELEMENT: Shape = Shape {
    name: "profile.x12_new_element",
    type_tag: None,
    doc: "One element of an added segment.",
    keys: &[
        req("position", KeyType::Integer, "1 for the segment's first element."),
        opt("usage", KeyType::Enum(X12_USAGES), "`required`, `optional` (the default) or `not_used`."),
        opt(
            "type",
            KeyType::Enum(X12_ELEMENT_TYPES),
            "Only for a segment the dictionary lacks (there it is required): `AN`, `ID`, `N0`, `N2`, `R`, `DT`, `TM`.",
        ),
        opt("min_length", KeyType::Integer, "The minimum length (the dictionary's unless given)."),
        opt("max_length", KeyType::Integer, "The maximum length (the dictionary's unless given)."),
        opt("codes", KeyType::ListOfStrings, "The only values accepted (default: any value of the type)."),
        opt(
            "phi",
            KeyType::String,
            "The PHI class of its values (`name`, `other_id`, ...; `none`: no PHI). Default: the class the guide gives the same element of its own segments with that id (`other_id` where they differ), none if it gives none.",
        ),
    ],
};

pub static X12_DELIMITERS: Shape = Shape {
    name: "profile.x12_delimiters",
    type_tag: None,
    doc: "The delimiters of the acknowledgments (999, 997, TA1) written to a partner; each one printable character, not a letter, digit, space, `-`, `.` or `_`, all distinct.",
    keys: &[
        opt("element", KeyType::String, "Element separator (default `*`)."),
        opt("component", KeyType::String, "Component separator, ISA16 (default `:`)."),
        opt(
            "repetition",
            KeyType::String,
            "Repetition separator, ISA11 of a 999 (default `^`; a 997 writes `U` there).",
        ),
        opt("segment", KeyType::String, "Segment terminator (default `~`)."),
        opt("line_break", KeyType::Bool, "A line feed after each segment terminator (default `true`)."),
    ],
};

pub static X12_PARTNER: Shape = Shape {
    name: "profile.x12_partner",
    type_tag: None,
    doc: "One X12 trading partner.",
    keys: &[
        req(
            "name",
            KeyType::String,
            "The partner's name: records carry it as `interchange.partner`, findings as `partner`.",
        ),
        req("id", KeyType::String, "ISA06 (interchange sender id) of what the partner sends, without its padding."),
        opt("qualifier", KeyType::String, "ISA05 (sender id qualifier: `ZZ`, `01`, `30`...); default any."),
        opt("gs_id", KeyType::String, "GS02 (application sender code) of the partner's groups; default any."),
        req("transaction_sets", KeyType::ListOfStrings, "ST01 values the partner sends (`837`, `835`, `270`...)."),
        req(
            "version",
            KeyType::String,
            "`5010` (GS08 005010...), `4010` (004010...) or one full version (`005010X222A1`).",
        ),
        opt("processing", KeyType::Object(&X12_PROCESSING), "This partner's checks (overrides the profile's)."),
        opt("overlays", KeyType::ListOf(&X12_OVERLAY), "Changes to the partner's copies of the guides."),
        opt("delimiters", KeyType::Object(&X12_DELIMITERS), "Delimiters of the acknowledgments written to it."),
    ],
};

pub static RULE: Shape = Shape {
    name: "rules.rule",
    type_tag: None,
    doc: "One validation rule: exactly one of `require`, `in`, `format`, `pattern`, `max_length`.",
    keys: &[
        opt("id", KeyType::String, "Stable id shown in findings (default `<rules name>.<n>`)."),
        opt("when", KeyType::Expr, "The rule applies only when this holds."),
        opt("require", KeyType::String, "Path that must have a value."),
        opt("path", KeyType::String, "Path the check applies to."),
        opt("in", KeyType::ListOfStrings, "Allowed values."),
        opt("format", KeyType::Enum(&["date", "datetime", "integer", "decimal"]), "Required format."),
        opt("pattern", KeyType::String, "Regular expression every value must match."),
        opt("max_length", KeyType::Integer, "Maximum length in characters."),
        opt("message", KeyType::String, "Explanation shown in findings (never include data)."),
    ],
};

pub static HL7_CHECKS: Shape = Shape {
    name: "rules.hl7_checks",
    type_tag: None,
    doc: "The standard's own checks, run before the rules: required fields and datatypes always, and these.",
    keys: &[
        opt(
            "structure",
            KeyType::Bool,
            "Segment order, groups and cardinality against the message structure (default true).",
        ),
        opt("lengths", KeyType::Bool, "Values longer than the field's maximum length, as warnings (default false)."),
        opt("tables", KeyType::Bool, "ID values against HL7 tables (default true)."),
    ],
};

pub static RULES: Shape = Shape {
    name: "rules",
    type_tag: None,
    doc: "Validation rules.",
    keys: &[
        req("kind", KeyType::Enum(&["rules"]), "File kind."),
        req("name", KeyType::String, "Rules name."),
        opt("description", KeyType::String, "Free text."),
        req("input", KeyType::String, "Schema the paths are checked against: `hl7v2/<version>`."),
        opt(
            "mode",
            KeyType::Enum(MODES),
            "`strict` (record to DLQ) or `lenient` (error on the record); default strict.",
        ),
        opt("message_types", KeyType::ListOfStrings, "Accepted message types; others go to the DLQ."),
        opt(
            "hl7_checks",
            KeyType::Object(&HL7_CHECKS),
            "Run the HL7 v2 standard's own checks too (see docs/hl7v2-validation.md).",
        ),
        req("rules", KeyType::ListOf(&RULE), "The rules."),
    ],
};

pub const MASK_ACTIONS: &[&str] =
    &["keep", "partial", "shift_date", "generalize", "tokenize", "hash", "redact", "null"];

pub static TREATMENT: Shape = Shape {
    name: "masking.treatment",
    type_tag: None,
    doc: "What to do with a PHI value: an action name, or this object.",
    keys: &[
        req("action", KeyType::Enum(MASK_ACTIONS), "Masking action."),
        opt("keep_last", KeyType::Integer, "For `partial`: characters kept at the end (default 4)."),
        opt("reason", KeyType::String, "For `keep`: why the value may leave in clear."),
        opt(
            "to",
            KeyType::Enum(crate::plan::Generalization::NAMES),
            "For `generalize` (required): `zip3` (first 3 digits; `000` where the 3-digit area has 20,000 people or fewer), `year` (a date's year), `age` (over 89 becomes `90+`, or 90 in a number field) or `birth_year` (a birth date's year, `90+` for a person 90 or older on the run's date).",
        ),
        opt(
            "subject",
            KeyType::String,
            "For `shift_date` (required): the output field naming the person (`patient.id`); each person's dates move by the same number of days. For `tokenize` (optional): the field naming the person whose tokens these are; the vault links them to a keyed hash of its value, so `sluice purge --subject ID` removes all of them.",
        ),
        opt(
            "max_days",
            KeyType::Integer,
            "For `shift_date`: the largest shift, in days, earlier or later (default 365).",
        ),
    ],
};

pub static PACK: Shape = Shape {
    name: "pack",
    type_tag: None,
    doc: "A mapping pack's manifest (`pack.yaml` at the pack's root): the folder's mappings, rules, policies and tests belong to it.",
    keys: &[
        req("kind", KeyType::Enum(&["pack"]), "File kind."),
        req("name", KeyType::String, "Pack name (`acme`)."),
        req("version", KeyType::String, "Version, `MAJOR.MINOR.PATCH` (semantic versioning)."),
        opt("description", KeyType::String, "Free text."),
        opt(
            "extends",
            KeyType::String,
            "The base pack's folder (relative path): this pack's mappings may extend only mappings of that pack or its own.",
        ),
        req(
            "schemas",
            KeyType::ListOfStrings,
            "The schemas the pack targets (`hl7v2/2.5.1`, `canonical/patient-event@1`): every mapping in it reads and writes one of these.",
        ),
    ],
};

pub static MASKING: Shape = Shape {
    name: "masking",
    type_tag: None,
    doc: "A masking policy: treatments by PHI class and by output field.",
    keys: &[
        req("kind", KeyType::Enum(&["masking"]), "File kind."),
        req("name", KeyType::String, "Policy name."),
        opt("description", KeyType::String, "Free text."),
        opt(
            "extends",
            KeyType::StringOrList,
            "Policies this one builds on, in order: built-in (`hipaa_safe_harbor`, `limited_data_set`, `pci`) or masking files (relative paths). A later one's rules override an earlier one's, and this policy's own override all.",
        ),
        opt("hash_key", KeyType::Secret, "Key for `hash`, `shift_date` and `tokenize`'s vault lookups: `${VARIABLE}`."),
        opt(
            "vault_key",
            KeyType::Secret,
            "For `tokenize` (required): the keys that encrypt the token vault, `${VARIABLE}` or `${file:...}`; one key (64 hex digits), or several separated by commas or lines, the first current and the others previous (read only, until `sluice keys rotate`).",
        ),
        opt("classes", KeyType::TreatmentMap, "PHI class -> treatment."),
        opt("fields", KeyType::TreatmentMap, "Output field -> treatment (wins over classes)."),
    ],
};

/// Input formats a test case may one day hold; only `hl7v2` runs today (the others are SL802).
pub const TEST_INPUT_FORMATS: &[&str] = &["hl7v2", "stripe", "quickbooks", "plaid", "x12", "fhir", "json"];

pub static TEST_INPUT: Shape = Shape {
    name: "test.input",
    type_tag: None,
    doc: "The messages a test case feeds in: exactly one format key. `hl7v2`, `x12`, `stripe`, `quickbooks` and `plaid` run today.",
    keys: &[
        opt(
            "source",
            KeyType::String,
            "For a pipeline test: the source component that reads the messages (default: the pipeline's first source).",
        ),
        opt(
            "hl7v2",
            KeyType::String,
            "HL7 v2 messages, one segment per line (in a YAML literal block scalar); each `MSH` line starts a new message. Lines are joined with the HL7 segment separator (CR).",
        ),
        opt(
            "stripe",
            KeyType::String,
            "Stripe objects as the API lists them, one JSON object a line (in a YAML literal block scalar), for a mapping with `input: {schema: stripe/<object>}` or a pipeline with a `stripe` source; nothing is fetched.",
        ),
        opt(
            "quickbooks",
            KeyType::String,
            "QuickBooks Online entities in the API's JSON form, one JSON object a line (in a YAML literal block scalar), for a mapping with `input: {schema: quickbooks/<Entity>}` or a pipeline with a `quickbooks` source; nothing is fetched.",
        ),
        opt(
            "plaid",
            KeyType::String,
            "Plaid transactions (or accounts) as the API answers them, one JSON object a line (in a YAML literal block scalar), for a mapping with `input: {schema: plaid/transaction}` (or `plaid/account`) or a pipeline with a `plaid` source; nothing is fetched.",
        ),
        opt(
            "x12",
            KeyType::String,
            "X12 interchanges, as written (a mapping test reads them with a `format: x12` source).",
        ),
        opt("fhir", KeyType::Any, "FHIR resources (not supported yet: SL802)."),
        opt("json", KeyType::Any, "JSON documents (not supported yet: SL802)."),
        opt(
            "connection",
            KeyType::String,
            "For `stripe`, `quickbooks` and `plaid` input: the `connection:` name the records were read through, what `connection()` gives (default: the source's connection; `test` in a mapping test).",
        ),
        opt(
            "envelope",
            KeyType::MapOfStrings,
            "For `quickbooks` and `plaid` input: envelope values the records carry, what `envelope(...)` gives: `quickbooks.realm` (default: the source's `realm_id`; `\"1\"` in a mapping test), `plaid.item` (default: the source's Item when it reads one; `test` in a mapping test). Other names are SL475.",
        ),
    ],
};

pub static TEST_EXPECT: Shape = Shape {
    name: "test.expect",
    type_tag: None,
    doc: "What the case must produce; a key left out expects nothing (no records, no DLQ entry, none filtered). `sluice test --update` writes it.",
    keys: &[
        opt(
            "outputs",
            KeyType::Any,
            "Sink name -> the records it receives, in order, as YAML (the JSON objects the sink writes). A mapping test has one sink, `output`.",
        ),
        opt(
            "dlq",
            KeyType::Any,
            "DLQ entries, in order: `message_index`, `stage`, `code`, `reason`, `findings` (and `part` for a dropped segment). Never the raw message; no ids, plan hash, time, attempts, files or offsets.",
        ),
        opt("filtered", KeyType::Integer, "How many input messages a filter or route dropped."),
    ],
};

pub static TEST_CASE: Shape = Shape {
    name: "test.case",
    type_tag: None,
    doc: "One test case: input messages and the expected outcome.",
    keys: &[
        req("name", KeyType::String, "Case name, unique in the file (shown in reports and JUnit)."),
        opt("description", KeyType::String, "Free text."),
        req("input", KeyType::Object(&TEST_INPUT), "The messages fed in."),
        opt(
            "expect",
            KeyType::Object(&TEST_EXPECT),
            "The expected outcome; put it last in the case, since `--update` rewrites it.",
        ),
    ],
};

pub static TEST: Shape = Shape {
    name: "test",
    type_tag: None,
    doc: "A test file (`*.test.yaml`): cases that run a pipeline, or a mapping with optional rules and policy, offline with `sluice test`.",
    keys: &[
        req("kind", KeyType::Enum(&["test"]), "File kind."),
        opt("name", KeyType::String, "Test suite name in reports and JUnit (default: the file's path)."),
        opt("description", KeyType::String, "Free text."),
        opt(
            "pipeline",
            KeyType::String,
            "The pipeline under test (a path relative to this file). Its sources read the case's input; its sinks, DLQ and audit are redirected to a temporary directory.",
        ),
        opt(
            "mapping",
            KeyType::String,
            "Or: the mapping under test; the runner builds a pipeline source -> [validate] -> map -> [mask] -> sink `output`.",
        ),
        opt("rules", KeyType::String, "With `mapping`: validation rules applied before it."),
        opt(
            "policy",
            KeyType::String,
            "With `mapping`: the masking policy applied after it (needed when the mapping outputs PHI, as in any pipeline).",
        ),
        opt(
            "profile",
            KeyType::String,
            "With `mapping`: the parser profile (default: the mapping's `input.profile`, else the built-in default).",
        ),
        opt(
            "clock",
            KeyType::String,
            "The fixed clock of every run (RFC 3339; default `2024-01-01T00:00:00Z`): `processed_at` and ids are stable.",
        ),
        opt(
            "mask_key",
            KeyType::String,
            "A test-only key for policies that `hash` or `shift_date` (replaces their `hash_key` in the test runs). Never a real secret: it is in the repository.",
        ),
        req("cases", KeyType::ListOf(&TEST_CASE), "The cases."),
    ],
};

/// The top-level shape for a `kind`.
pub fn for_kind(kind: &str) -> Option<&'static Shape> {
    Some(match kind {
        "pipeline" => &PIPELINE,
        "mapping" => &MAPPING,
        "profile" => &PROFILE,
        "rules" => &RULES,
        "masking" => &MASKING,
        "test" => &TEST,
        "pack" => &PACK,
        "reconciliation" => &super::reconcile::RECONCILIATION,
        _ => return None,
    })
}
