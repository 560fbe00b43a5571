//! The plan: what the compiler hands to the runtime. A checked DAG with every path resolved,
//! every type known and every PHI flow accounted for.
//!
//! Invariants:
//! - Deterministic: built only from ordered collections, so the same specs give the same JSON
//!   bytes and the same [`Plan::hash`].
//! - Self-contained: the runtime needs nothing else (no spec file is re-read at run time), and
//!   never re-checks what is here.
//! - No secret values and no data values: secrets stay as references (`${VAR}`).

pub mod amqp;
pub mod connection;
pub mod diff;
pub mod fhir;
pub mod kafka;
pub mod object_store;
pub mod pg_table;
pub mod pg_url;
pub mod render;
pub mod webhook;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_spec_core::{PhiClass, ValueType};

use crate::expr::ast::Expr;

/// Version of the plan's JSON shape; bumped when a change would confuse an older runtime.
pub const PLAN_FORMAT: u32 = 4;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub plan_format: u32,
    /// sha256 of the plan's JSON with this field empty.
    pub hash: String,
    pub pipeline: String,
    /// The pipeline file, as given on the command line.
    pub spec_file: String,
    /// Components in a topological order: every component comes after its inputs.
    pub components: Vec<Component>,
    pub dlq: Option<DlqTarget>,
    pub audit: Option<FileTarget>,
    pub state: Option<StateTarget>,
    pub defaults: Defaults,
    /// `fail_if`: the error-rate threshold that stops a file run.
    pub fail_if: Option<FailIfPlan>,
    /// Per sink, per output field: which PHI classes reach it and what is done to them.
    pub masking_matrix: Vec<MatrixRow>,
    /// `roles:`; absent from the JSON when none are declared, so older plans keep their hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RolePlan>,
    /// `retention:`; absent from the JSON when not declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPlan>,
    /// `connections:` ([`connection`]); absent from the JSON when none are declared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<connection::ConnectionPlan>,
    /// `reconcile:`, run once the run's sources have ended; absent from the JSON when none
    /// are declared, so other plans (and their hashes) are unchanged. Plans are compiled by
    /// the binary that runs them and never read back, so this part is not deserialized.
    #[serde(default, skip_serializing_if = "Vec::is_empty", skip_deserializing)]
    pub reconciliations: Vec<PipelineReconciliation>,
}

/// A reconciliation `sluice run` runs once the run's sources have ended: the checked plan of
/// its file, each side named in `inputs` reading that sink's file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PipelineReconciliation {
    /// The reconciliation file, as the plan shows files.
    pub spec: String,
    /// Side (`left`, `right`) and the sink whose file it reads; a side not listed reads the
    /// reconciliation's own `path`.
    pub sinks: Vec<(String, String)>,
    pub plan: crate::spec::reconcile::ReconcilePlan,
}

/// How long, in days, what the pipeline keeps is kept (`sluice purge` removes the rest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPlan {
    pub dlq_days: Option<u32>,
    pub audit_days: Option<u32>,
    pub state_days: Option<u32>,
}

/// A role of `roles:`: its name, the SHA-256 of its key and the operations it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolePlan {
    pub name: String,
    /// Hex, lower case.
    pub key_sha256: String,
    pub may: Vec<String>,
    /// The masking policy file of this role's audience (`masking:`): sinks with
    /// `audience: NAME` are masked with it. Absent from the JSON when not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masking: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub inputs: Vec<InputRef>,
    /// The record schema this component emits (`hl7v2/2.5.1`, `canonical/patient-event@1`).
    pub emits: String,
    #[serde(flatten)]
    pub kind: ComponentKind,
}

/// An edge: the upstream component, and for a route the branch taken.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputRef {
    pub component: String,
    pub branch: Option<String>,
}

impl std::fmt::Display for InputRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.branch {
            Some(b) => write!(f, "{}.{}", self.component, b),
            None => f.write_str(&self.component),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ComponentKind {
    Source(SourcePlan),
    Validate(ValidatePlan),
    Map(MapPlan),
    Mask(MaskPlan),
    Filter(FilterPlan),
    Route(RoutePlan),
    Sink(SinkPlan),
}

impl ComponentKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ComponentKind::Source(_) => "source",
            ComponentKind::Validate(_) => "validate",
            ComponentKind::Map(_) => "map",
            ComponentKind::Mask(_) => "mask",
            ComponentKind::Filter(_) => "filter",
            ComponentKind::Route(_) => "route",
            ComponentKind::Sink(_) => "sink",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcePlan {
    /// `files` or `mllp`.
    pub kind: String,
    pub format: String,
    /// Glob patterns, relative to the directory `sluice` runs in (`files` only).
    pub paths: Vec<String>,
    pub profile: ProfilePlan,
    /// The listener (`mllp` only). Absent from the JSON of other sources, so their plans (and
    /// hashes) are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mllp: Option<Box<MllpPlan>>,
    /// What a `format: fhir` source reads and how it validates (absent for `hl7v2`, so their
    /// plans and hashes are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir: Option<Box<FhirSourcePlan>>,
    /// What a `format: x12` source reads and where its acknowledgments go (absent for other
    /// formats, so their plans and hashes are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x12: Option<Box<X12SourcePlan>>,
    /// The object store `paths` are URLs in (`s3://`, `az://`, `gs://`); absent for local
    /// files, so their plans (and hashes) are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Box<object_store::StorePlan>>,
    /// The consumer (`kafka` only). Absent from the JSON of other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Box<kafka::KafkaSourcePlan>>,
    /// The consumer (`amqp` only). Absent from the JSON of other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp: Option<Box<amqp::AmqpSourcePlan>>,
    /// The endpoint (`webhook` only). Absent from the JSON of other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Box<webhook::WebhookSourcePlan>>,
    /// The server and tables (`fhir.rest` only; `fhir` then says how resources validate).
    /// Absent from the JSON of other sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_rest: Option<Box<crate::fhir_rest::FhirRestPlan>>,
    /// The account and object lists (`stripe` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe: Option<Box<crate::stripe::StripePlan>>,
    /// The company and entities (`quickbooks` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quickbooks: Option<Box<crate::quickbooks::QuickBooksPlan>>,
    /// The Items and tables (`plaid` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaid: Option<Box<crate::plaid::PlaidPlan>>,
}

impl SourcePlan {
    /// A source of `kind` reading `format`, with none of the kind-specific parts; callers set
    /// theirs with struct update syntax (`SourcePlan { mllp: Some(..), ..SourcePlan::new(..) }`).
    pub fn new(kind: &str, format: &str, paths: Vec<String>, profile: ProfilePlan) -> SourcePlan {
        SourcePlan {
            kind: kind.into(),
            format: format.into(),
            paths,
            profile,
            mllp: None,
            fhir: None,
            x12: None,
            store: None,
            kafka: None,
            amqp: None,
            webhook: None,
            fhir_rest: None,
            stripe: None,
            quickbooks: None,
            plaid: None,
        }
    }
}

/// A `files` source with `format: x12`: each transaction set is one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12SourcePlan {
    /// Implementation guide ids read (`005010X222A1`; empty: all); sets of others are filtered.
    pub guides: Vec<String>,
    /// `strict`: any envelope or guide error rejects the set; `lenient`: they warn.
    pub mode: Mode,
    /// The directory acknowledgments are written to (resolved path), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks: Option<String>,
    /// Sets of these guides are cut into one record per occurrence of the loop (`each:
    /// loop(2300)` in the mapping of a map stage it feeds; `sluice_x12::cut`). Set by the
    /// compiler from the pipeline's map stages, never written in the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<X12Split>,
    /// The trading partners of the source's `profile` (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partners: Option<Box<X12PartnersPlan>>,
}

/// An X12 profile (`kind: profile`, `format: x12`): its trading partners as checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12PartnersPlan {
    pub name: String,
    /// `unknown_partners: accept`.
    pub accept_unknown: bool,
    pub partners: Vec<X12PartnerPlan>,
}

/// One trading partner, its `processing` already merged with the profile's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12PartnerPlan {
    pub name: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gs_id: Option<String>,
    pub transaction_sets: Vec<String>,
    pub version: String,
    pub validate_isa: bool,
    pub validate_gs: bool,
    pub strict_segment_order: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<X12OverlayPlan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiters: Option<X12DelimitersPlan>,
}

/// One overlay: its guide (schema name) and what changes where, or what it adds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12OverlayPlan {
    pub guide: String,
    /// What changes (empty for an addition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `LOOP/SEG[(QUAL)]`: a segment added to every loop the path names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_segment: Option<String>,
    /// `PARENT/ID`: a loop added to every parent loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_loop: Option<String>,
    /// `required`, `optional`, `not_used`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_use: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<X12NewElementPlan>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<X12NewSegmentPlan>,
}

/// One segment of an added loop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12NewSegmentPlan {
    /// `SEG` or `SEG(QUAL)`.
    pub segment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_use: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<X12NewElementPlan>,
}

/// One element of an added segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12NewElementPlan {
    pub position: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// `AN`, `ID`, `N0`, ...
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    /// A PHI class name, or `none`; `None`: the guide's class for the place (see
    /// `sluice_x12::partner::NewPhi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi: Option<String>,
}

/// Acknowledgment delimiters, one character each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12DelimitersPlan {
    pub element: char,
    pub component: char,
    pub repetition: char,
    pub segment: char,
    pub line_break: bool,
}

/// One guide whose sets an X12 source cuts at a loop (or at several HL levels: a 271's
/// subscribers and dependents, `each: loop(2000C, 2000D)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12Split {
    pub guide: String,
    /// One record per occurrence of any of these loops.
    pub loops: Vec<String>,
}

/// A `files` source with `format: fhir`: each resource (each Bundle entry) is one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirSourcePlan {
    /// Resource types read (empty: all); others are filtered at the source.
    pub resource_types: Vec<String>,
    /// The StructureDefinition every resource of its type must meet, as given (resolved path).
    pub profile: Option<String>,
    /// `strict`: any validation error rejects the resource; `lenient`: FHIR101/FHIR102 warn.
    pub mode: Mode,
}

/// An MLLP listener, resolved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MllpPlan {
    /// `ip:port` or `localhost:port` (port 0: any free port).
    pub listen: String,
    pub max_frame_bytes: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: u64,
    pub tls: Option<TlsPlan>,
    /// A profile `encoding` name overriding MSH-18 and the profile, or `None`.
    pub charset: Option<String>,
    /// `original` or `enhanced`.
    pub ack_mode: String,
    /// `on_commit` or `on_receipt`.
    pub ack_timing: String,
    /// `interactive`, `normal` or `backfill` (`spec::shape::PRIORITIES`): which of a pipeline's
    /// listeners is served first when it is busy. Absent from the JSON when `normal`, so the
    /// plans (and hashes) written before it existed are unchanged.
    #[serde(default = "normal_priority", skip_serializing_if = "is_normal_priority")]
    pub priority: String,
}

fn normal_priority() -> String {
    "normal".into()
}

fn is_normal_priority(p: &String) -> bool {
    p == "normal"
}

/// TLS files: the certificate chain path (relative to the directory `sluice` runs in) and the
/// key as a secret reference (`${file:...}` with the path resolved the same way, or `${VAR}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPlan {
    pub cert: String,
    pub key: String,
}

/// A parser profile, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfilePlan {
    pub name: String,
    /// Version the paths were checked against, used when MSH-12 is empty.
    pub version: String,
    /// Versions accepted from MSH-12; others go to the DLQ.
    pub accept_versions: Vec<String>,
    /// Character set: `auto` (BOM, then MSH-18, then UTF-8) or a fixed set overriding MSH-18
    /// (`utf-8`, `ascii`, `iso-8859-1`..`9`, `iso-8859-15`, `windows-1252`, `utf-16[le|be]`).
    pub encoding: String,
    /// Segment separators tolerated: `cr`, `lf`, `crlf`.
    pub segment_terminators: Vec<String>,
    /// What to do with a segment the schema does not define: `fail`, `skip` or `parse`.
    pub unexpected_segments: String,
    /// Offset applied to HL7 times that carry none (`+00:00`, `-05:00`).
    pub timezone: String,
    pub z_segments: Vec<ZSegmentPlan>,
    /// How MSH-2 is read: `strict` (4 or 5 distinct characters) or `tolerant` (also a doubled
    /// escape character and a 3-character MSH-2, with a warning). Absent in older plans: strict.
    #[serde(default = "strict")]
    pub encoding_characters: String,
    /// A segment that cannot be parsed (HL7004) in a message whose MSH is sound: `reject` (the
    /// message goes to the DLQ) or `drop` (the segment goes to the DLQ, the message goes on).
    /// Left out of the JSON when `reject`, so plans (and hashes) that do not use it are unchanged.
    #[serde(default = "reject", skip_serializing_if = "is_reject")]
    pub bad_segments: String,
}

fn reject() -> String {
    "reject".into()
}

fn is_reject(s: &str) -> bool {
    s == "reject"
}

fn strict() -> String {
    "strict".into()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZSegmentPlan {
    pub id: String,
    pub fields: Vec<ZFieldPlan>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZFieldPlan {
    pub seq: usize,
    pub name: String,
    pub datatype: String,
    pub phi: Option<PhiClass>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A failed rule sends the record to the DLQ.
    Strict,
    /// A failed rule becomes a warning on the record, which goes on.
    Lenient,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Strict => "strict",
            Mode::Lenient => "lenient",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatePlan {
    pub rules_file: String,
    pub mode: Mode,
    /// Message types accepted (`ADT^A01`); empty means any.
    pub message_types: Vec<String>,
    pub rules: Vec<RulePlan>,
    /// The standard's own checks (structure, required fields, datatypes, tables), when the rules
    /// file asks for them. `version` is the one to assume when MSH-12 is empty.
    pub hl7_checks: Option<Hl7Checks>,
}

/// Which built-in HL7 v2 checks a validate stage runs (`sluice_hl7v2::validate`). Required
/// fields and primitive datatypes are always checked when the block is present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hl7Checks {
    pub version: String,
    /// Segment order, groups and cardinality against the message structure.
    pub structure: bool,
    /// Values longer than their field's maximum length (warnings).
    pub lengths: bool,
    /// ID values against HL7 tables (errors), IS values against user tables (ignored).
    pub tables: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RulePlan {
    /// Stable id shown in findings: the rule's `id`, or `<file stem>.<n>`.
    pub id: String,
    /// The path the rule is about, for findings (`PID-3`).
    pub path: String,
    /// Condition under which the rule applies.
    pub when: Option<Expr>,
    pub check: RuleCheck,
    /// Fixed explanation written by the spec author; never contains data.
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum RuleCheck {
    /// The path has a non-empty value.
    Required { value: Expr },
    /// Every value at the path is one of `values`.
    ValueSet { value: Expr, values: Vec<String> },
    /// Every value at the path has the format (`date`, `datetime`, `integer`, `decimal`).
    Format { value: Expr, format: String },
    /// Every value at the path matches the regular expression.
    Pattern { value: Expr, pattern: String },
    /// Every value is at most `max` characters long.
    MaxLength { value: Expr, max: usize },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapPlan {
    pub mapping: String,
    pub mapping_file: String,
    pub input_schema: String,
    pub output_schema: String,
    /// Message types the mapping accepts; a record of another type goes to the DLQ.
    pub message_types: Vec<String>,
    pub tables: Vec<CodeTable>,
    pub fields: Vec<FieldPlan>,
    /// Set when the mapping's output is a FHIR R4 Bundle (`fields` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir: Option<fhir::FhirBundlePlan>,
    /// How a table sink should store the records, from the output schema (message tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableKeys>,
    /// `each: loop(ID)` of an X12 mapping (`loop(2000C, 2000D)`: several HL levels): each
    /// record is one occurrence of the loop (its source cuts the sets there); a record holding
    /// another number goes to the DLQ. Empty: one record per set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x12_each: Vec<String>,
    /// `input: {schema: x12/<guide>, profile: FILE, partner: NAME}`: the mapping reads that
    /// partner's copy of the guide (its overlays of that guide, in order); the map stage
    /// identifies loops with it and sends a set of any other sender to the DLQ (RT312).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x12_partner: Option<X12MapPartnerPlan>,
}

/// The trading partner whose copy of its guide an X12 mapping reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct X12MapPartnerPlan {
    /// The partner's `name` (what records carry as `interchange.partner`).
    pub name: String,
    /// The partner's overlays of the mapping's guide, in the profile's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<X12OverlayPlan>,
}

/// Write mode, primary key and cursor of an output schema that describes a table
/// (`canonical/oru-message@1`: append, key `message_control_id`, cursor `message_datetime`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableKeys {
    pub write_mode: String,
    pub primary_key: Vec<String>,
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeTable {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

/// One output field and how it is computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldPlan {
    /// Output path, dotted (`patient.dob`).
    pub path: String,
    pub value_type: ValueType,
    pub required: bool,
    #[serde(flatten)]
    pub value: FieldValue,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "form", rename_all = "snake_case")]
pub enum FieldValue {
    /// One expression; `classes` are the PHI classes that flow into it.
    Scalar { expr: Expr, classes: Vec<PhiClass> },
    /// A list built from producers, concatenated in order.
    List { producers: Vec<Producer> },
}

/// Produces list items: one per value of `each` (bound to `var`), one per instance of a
/// segment group (`group`, bound to `var`), or a single item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Producer {
    pub each: Option<Expr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupEach>,
    /// `each: loop(ID)` over an X12 set: one item per occurrence of the loop (within the
    /// occurrence bound around it); paths in the item read that occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x12_loop: Option<String>,
    /// `each: Line[*]` over a Stripe, QuickBooks or Plaid object: one item per element of
    /// that array; paths on the variable read the element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array: Option<ArrayEach>,
    pub var: Option<String>,
    /// Items are produced only when this holds (evaluated per item when iterating).
    pub when: Option<Expr>,
    pub item: ItemPlan,
}

/// `each: Line[*]` over a finance object's JSON: the elements of the array at `path` (the
/// runtime form of a JSON path, [`Expr::Fhir`]'s: `Line`, `TxnTaxDetail.TaxLine`) in the
/// record, or in the item bound to variable `within` (`each: line.LinkedTxn[*]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayEach {
    pub within: Option<String>,
    pub path: String,
}

/// `each: group(NAME)` or `each: var.group(NAME)`: one item per instance of segment group
/// `name` in the message, or within the instance bound to group variable `within`. Paths on
/// the variable read the instance's own segments and those of its non-repeating subgroups;
/// segments of repeating subgroups (`OBSERVATION` in `ORDER_OBSERVATION`) are read by
/// iterating them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupEach {
    #[serde(flatten)]
    pub shape: GroupShape,
    pub within: Option<String>,
    /// The repeating subgroups (reached through non-repeating ones), for the fallback rule.
    pub hidden: Vec<GroupShape>,
    /// `each: segment(SEG)`: one item per segment `name` (among the segments `within` reads),
    /// not a group of the structure.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub segment: bool,
}

/// A segment group as the fallback rule sees it, for messages whose structure is unknown or
/// not followed: an instance opens at a segment of `starts` and goes on over the following
/// segments until the next segment that opens another instance or one of `closers` (a segment
/// of the message structure outside the group). Segments the structures do not know
/// (Z-segments, segments of other versions) stay with the instance. Unions over the
/// structures of the mapping's message types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupShape {
    pub name: String,
    pub starts: Vec<String>,
    pub members: Vec<String>,
    pub closers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "snake_case")]
pub enum ItemPlan {
    Scalar {
        expr: Expr,
        classes: Vec<PhiClass>,
    },
    /// Scalar members, then list members (nested lists such as `orders[*].observations`).
    Struct {
        members: Vec<MemberPlan>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        lists: Vec<ListMemberPlan>,
    },
}

/// A list member of a list item, built from its own producers in the item's scope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListMemberPlan {
    pub name: String,
    pub value_type: ValueType,
    pub producers: Vec<Producer>,
}

impl Producer {
    /// The PHI classes of every value this producer writes, nested lists included.
    pub fn classes(&self) -> Vec<PhiClass> {
        match &self.item {
            ItemPlan::Scalar { classes, .. } => classes.clone(),
            ItemPlan::Struct { members, lists } => members
                .iter()
                .flat_map(|m| m.classes.iter().copied())
                .chain(lists.iter().flat_map(|l| l.producers.iter().flat_map(Producer::classes)))
                .collect(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberPlan {
    pub name: String,
    /// The member's type in the output schema; the runtime coerces the value to it.
    pub value_type: ValueType,
    pub expr: Expr,
    pub classes: Vec<PhiClass>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskAction {
    /// Leave the value as it is: allowed only with a written reason.
    Keep,
    /// `***-**-1234`: keep the last N characters that are letters or digits, mask the rest
    /// (separators are kept).
    Partial,
    /// Moves a date by a number of days derived from the record's subject under the policy's
    /// key ([`DateShift`]): the same for every date of one person, in every run.
    ShiftDate,
    /// Less precise: ZIP to its first 3 digits, a date to its year, an age over 89 to 90+
    /// ([`Generalization`]).
    Generalize,
    /// A random token (`t:` + 32 hex digits) kept with the value, encrypted, in the state
    /// store's vault: the same value gets the same token in every run, and an authorised
    /// `sluice detokenize` gives the value back. Weaker than `hash` because it is reversible.
    Tokenize,
    /// Keyed HMAC-SHA256 pseudonym (hex), stable across runs for joins.
    Hash,
    /// Replace with `[REDACTED]`.
    Redact,
    /// Replace with null.
    Null,
}

impl MaskAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MaskAction::Keep => "keep",
            MaskAction::Partial => "partial",
            MaskAction::ShiftDate => "shift_date",
            MaskAction::Generalize => "generalize",
            MaskAction::Tokenize => "tokenize",
            MaskAction::Hash => "hash",
            MaskAction::Redact => "redact",
            MaskAction::Null => "null",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Treatment {
    pub action: MaskAction,
    /// For `partial`.
    pub keep_last: Option<usize>,
    /// For `keep`: why this PHI may leave in clear.
    pub reason: Option<String>,
    /// Where the decision was made: `file:line`.
    pub decided_at: String,
    /// For `generalize`. Absent from the JSON otherwise (as are the next), so plans written
    /// before these actions existed keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Generalization>,
    /// For `shift_date`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<DateShift>,
    /// For `tokenize`: the output field naming the person (`patient.id`), whose value (before
    /// masking) links each token to that person in the vault, as a keyed hash, so that
    /// `sluice purge --subject` reaches all of that person's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// What `generalize` keeps (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)(i)(B) and (C)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generalization {
    /// The first 3 digits of a ZIP code; `000` for the 3-digit areas of 20,000 people or fewer.
    Zip3,
    /// The year of a date (`1980-04-02` -> `1980`).
    Year,
    /// An age as it is up to 89; above, `90+` (text) or 90 (a number field).
    Age,
    /// A birth date's year, unless the person is 90 or older on the run's date (the run
    /// clock's UTC day, `--fixed-clock` in tests): then `90+`, the single category Safe Harbor
    /// requires (45 CFR 164.514(b)(2)(i)(C)). A birth date without month or day counts as the
    /// earliest it can be (fail safe: `1934` is `90+` anywhere in 2024).
    BirthYear,
}

impl Generalization {
    pub const NAMES: &'static [&'static str] = &["zip3", "year", "age", "birth_year"];

    pub fn parse(name: &str) -> Option<Generalization> {
        Some(match name {
            "zip3" => Generalization::Zip3,
            "year" => Generalization::Year,
            "age" => Generalization::Age,
            "birth_year" => Generalization::BirthYear,
            _ => return None,
        })
    }
}

/// How `shift_date` moves a record's dates: by `1..=max_days` days, earlier or later, chosen by
/// the keyed hash of the `subject` field's value (before masking), so one person's dates keep
/// their intervals and order across records and runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateShift {
    pub max_days: u32,
    /// Output field naming the person (`patient.id`).
    pub subject: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskPlan {
    /// The environment whose policy this is (`--env`); absent for the stage's own `policy`, so
    /// plans without environments keep their JSON and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub policy: String,
    pub policy_file: String,
    /// Rules for a named output field (`patient.name`), taking precedence over class rules.
    pub fields: Vec<(String, Treatment)>,
    /// Rules by PHI class.
    pub classes: Vec<(PhiClass, Treatment)>,
    /// Secret reference for `hash` (`${SLUICE_MASK_KEY}`); resolved at run time.
    pub hash_key: Option<String>,
    /// Secret reference for the keys that encrypt `tokenize`'s vault (the first is current);
    /// absent from the JSON when unused, so older plans keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_key: Option<String>,
}

impl MaskPlan {
    /// Whether any rule of the plan uses `action`.
    pub fn uses(&self, action: MaskAction) -> bool {
        self.fields.iter().map(|(_, t)| t).chain(self.classes.iter().map(|(_, t)| t)).any(|t| t.action == action)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilterPlan {
    /// Records for which this is true go on; the others are counted as filtered.
    pub keep: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutePlan {
    /// Branches tried in order; a record takes the first whose condition holds.
    pub branches: Vec<(String, Expr)>,
    /// Branch for records no condition matched; without one they are counted as filtered.
    pub default: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkPlan {
    /// `jsonl`, `http`, `postgres` or `csv`.
    pub kind: String,
    /// The output file (`jsonl`, `csv`); empty for other sinks.
    pub path: String,
    /// The endpoint (`http` only). Absent from the JSON of other sinks, so their plans (and
    /// hashes) are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Box<HttpSinkPlan>>,
    /// The table (`postgres` only). Absent from the JSON of other sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<Box<pg_table::PgSinkPlan>>,
    /// The columns (`csv` only). Absent from the JSON of other sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<Box<CsvSinkPlan>>,
    /// The directory layout and columns (`parquet` only). Absent from the JSON of other sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parquet: Option<Box<ParquetSinkPlan>>,
    /// The topic and key (`kafka` only). Absent from the JSON of other sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Box<kafka::KafkaSinkPlan>>,
    /// The exchange and routing key (`amqp` only). Absent from the JSON of other sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amqp: Option<Box<amqp::AmqpSinkPlan>>,
    /// `phi: {allowed: true, reason}`: the reason PHI may arrive here unmasked. Absent from the
    /// JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phi_allowed: Option<String>,
    /// `jsonl` and `csv` sinks with an object URL: `path` is then the local staging file the
    /// run uploads when it completes. Absent from the JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Box<object_store::ObjectSinkPlan>>,
    /// `audience: ROLE`: who reads this sink; its input is then the mask stage the compiler
    /// added with the role's policy (`<sink>~<role>`). Absent from the JSON otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// A `csv` sink's columns: those of a `postgres` table of the same records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvSinkPlan {
    pub columns: Vec<pg_table::PgColumn>,
}

/// A `parquet` sink: a directory of Parquet files with the columns of a `postgres` table of the
/// same records (`pg_table::columns`), typed where the schema says so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetSinkPlan {
    pub columns: Vec<pg_table::PgColumn>,
    /// The column whose value names a Hive-style sub-directory (`admit_date=2026-11-21/`).
    pub partition_by: Option<String>,
    /// A file is closed (and renamed at the next checkpoint) once it holds this many rows.
    pub roll_rows: u64,
    /// ... or once this many bytes are written to it (`roll: {bytes}`; absent: no limit, and
    /// absent from the plan, so plans without it keep their hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_bytes: Option<u64>,
}

/// Rows per file when `roll: {rows}` is not written.
pub const PARQUET_DEFAULT_ROLL_ROWS: u64 = 1_000_000;

impl ParquetSinkPlan {
    /// The Parquet schema, in the message-type notation of the Parquet format (`sluice plan`
    /// shows it; the runtime parses it). The record id is required; every other column is
    /// optional (a missing value is a null).
    pub fn schema(&self) -> String {
        let mut out = String::from("message sluice_record {\n");
        for c in &self.columns {
            let ty = match c.sql_type.as_str() {
                "bigint" => "int64",
                "numeric" => "double",
                "boolean" => "boolean",
                "date" => "int32",
                "timestamptz" => "int64",
                _ => "binary",
            };
            let logical = match c.sql_type.as_str() {
                "date" => " (DATE)",
                "timestamptz" => " (TIMESTAMP(MICROS,true))",
                "bigint" | "numeric" | "boolean" => "",
                _ => " (STRING)",
            };
            let rep = if c.path.is_empty() { "required" } else { "optional" };
            out.push_str(&format!("  {rep} {ty} {}{logical};\n", c.name));
        }
        out.push('}');
        out
    }
}

/// An `http` sink, resolved: its own `retry` keys merged over `defaults.retry`, its own
/// `throttle` (or the default one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HttpSinkPlan {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Header name -> value as written: a secret reference (`${VAR}`, `${file:path}` with the
    /// path resolved) or literal text.
    pub headers: Vec<(String, String)>,
    pub timeout_ms: u64,
    /// Most records in one request; `None`: a whole batch.
    pub max_records: Option<u64>,
    pub retry: RetryPlan,
    pub throttle: Option<ThrottlePlan>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileTarget {
    pub path: String,
}

/// Where the DLQ is (a JSON Lines file, or the state store's `dlq_entries` table) and how its
/// raw messages are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DlqTarget {
    /// The JSON Lines file; empty when the DLQ is in the state store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// `state`: the entries are rows of the `dlq_entries` table of the pipeline's state store
    /// (`Plan::state`). Left out of the JSON for a file, so plans (and their hashes) with a DLQ
    /// file are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// A secret reference (`${VAR}`, `${file:path}` with the path resolved) to the AES-256 key.
    pub encryption_key: Option<String>,
    /// Why raw messages may stay unencrypted.
    pub plaintext_reason: Option<String>,
}

impl DlqTarget {
    /// The DLQ is the state store's `dlq_entries` table, not a file.
    pub fn in_state_store(&self) -> bool {
        self.store.is_some()
    }

    /// Where the DLQ is, for messages: its file, or the state store (as
    /// [`StateTarget::shown`], never a password) and the table.
    pub fn shown(&self, state: Option<&StateTarget>) -> String {
        match (self.in_state_store(), state) {
            (true, Some(st)) => format!("state store `{}`, table dlq_entries", st.shown()),
            (true, None) => "the state store, table dlq_entries".to_string(),
            (false, _) => format!("`{}`", self.path),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailIfPlan {
    /// The run stops when the share of DLQ records among the last `window` records read is
    /// above this (a fraction: 0.005 for `0.5%`).
    pub max_error_rate: f64,
    pub window: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateTarget {
    /// `sqlite` or `postgres`.
    pub kind: String,
    /// The SQLite file (empty for PostgreSQL).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// The PostgreSQL URL as written: a secret reference (`${VAR}`, `${file:...}`) or a URL
    /// without a password (the compiler refuses one written into the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How often the writer commits a checkpoint (outputs synced, then the position).
    pub checkpoint_every_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct Defaults {
    pub batch_size: usize,
    /// Worker threads for the CPU stages; `None`: one per core. Left out of the plan's JSON
    /// when unset, so plans (and their hashes) without it are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    pub retry: RetryPlan,
    pub throttle: Option<ThrottlePlan>,
}

#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct RetryPlan {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Give up this long after the first attempt. Left out of the JSON at its default, so plans
    /// (and hashes) written before it existed are unchanged.
    #[serde(default = "default_max_elapsed", skip_serializing_if = "is_default_max_elapsed")]
    pub max_elapsed_ms: u64,
}

/// `retry.max_elapsed` when not written: 2 minutes.
pub const DEFAULT_MAX_ELAPSED_MS: u64 = 120_000;

fn default_max_elapsed() -> u64 {
    DEFAULT_MAX_ELAPSED_MS
}

fn is_default_max_elapsed(ms: &u64) -> bool {
    *ms == DEFAULT_MAX_ELAPSED_MS
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThrottlePlan {
    /// Permits per `per_seconds`.
    pub permits: u64,
    pub per_seconds: u64,
    /// The name of a bucket kept in the state store, shared by every sink (of any process)
    /// naming it; `None`: the sink's own bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// `per`: the output field whose value picks the bucket (one bucket per value); `None`: one
    /// bucket for every record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_key: Option<String>,
}

impl StateTarget {
    /// The store as messages and plans show it: the SQLite file, or the PostgreSQL URL as
    /// written (never with a password: see [`StateTarget::url`]).
    pub fn shown(&self) -> &str {
        self.url.as_deref().unwrap_or(&self.path)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatrixRow {
    pub sink: String,
    pub field: String,
    pub class: PhiClass,
    pub treatment: MaskAction,
    /// `file:line` of the rule that decided, or the mask stage when nothing did.
    pub decided_at: String,
    /// The sink's audience (a role) when its policy decided this treatment. Absent from the
    /// JSON otherwise, so plans without audiences keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Plan {
    /// Computes and stores the plan's hash. Call after the plan is complete.
    pub fn seal(&mut self) {
        self.hash = String::new();
        let bytes = serde_json::to_vec(self).expect("a plan always serializes");
        self.hash = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}
