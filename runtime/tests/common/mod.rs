//! Plan builders and HL7 fixtures for the runtime's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_compiler::expr::ast::{BinaryOp, Expr, Function, Literal};
use sluice_compiler::plan::*;
use sluice_spec_core::ValueType;

pub const CLOCK: &str = "2024-01-15T10:30:00Z";

/// A fresh, empty directory under the system temp dir, removed when the test passes.
pub struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-rt-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

pub fn p(dir: &Path, rel: &str) -> String {
    dir.join(rel).to_string_lossy().into_owned()
}

/// A segment from (field number, value) pairs.
pub fn seg(id: &str, fields: &[(usize, &str)]) -> String {
    let max = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut v = vec![""; max];
    for (n, val) in fields {
        v[n - 1] = val;
    }
    format!("{id}|{}", v.join("|"))
}

pub struct Adt<'a> {
    pub kind: &'a str,
    pub control: &'a str,
    pub ids: &'a str,
    pub name: &'a str,
    pub dob: &'a str,
    pub sex: &'a str,
    pub ssn: &'a str,
    pub admit: &'a str,
    pub charge: &'a str,
}

impl Default for Adt<'_> {
    fn default() -> Self {
        Adt {
            kind: "ADT^A01",
            control: "MSG0001",
            ids: "MRN001^^^HOSP^MR~987654^^^SSA^SS",
            name: "DOE^JOHN^Q",
            dob: "19800115",
            sex: "M",
            ssn: "123-45-6789",
            admit: "20240115080000",
            charge: "72.50",
        }
    }
}

impl Adt<'_> {
    pub fn text(&self) -> String {
        let msh = format!("MSH|^~\\&|SEND|FAC|RECV|FAC|20240115103000-0500||{}|{}|P|2.5.1", self.kind, self.control);
        let pid = seg(
            "PID",
            &[
                (1, "1"),
                (3, self.ids),
                (5, self.name),
                (7, self.dob),
                (8, self.sex),
                (13, "555-123-4567"),
                (19, self.ssn),
            ],
        );
        let pv1 = seg("PV1", &[(1, "1"), (2, "I"), (44, self.admit), (47, self.charge)]);
        format!("{msh}\r{pid}\r{pv1}")
    }
}

pub fn hl7(path: &str, vt: ValueType) -> Expr {
    Expr::Hl7 { path: path.into(), value_type: vt, multi: path.contains("[*]") }
}

pub fn lit(s: &str) -> Expr {
    Expr::Lit { value: Literal::Str(s.into()) }
}

pub fn var(name: &str, c: usize) -> Expr {
    Expr::Var { name: name.into(), component: Some(c), subcomponent: None, value_type: ValueType::String }
}

pub fn call(f: Function, args: Vec<Expr>) -> Expr {
    Expr::Call { function: f, args }
}

pub fn eq(a: Expr, b: Expr) -> Expr {
    Expr::Binary { operator: BinaryOp::Eq, lhs: Box::new(a), rhs: Box::new(b) }
}

pub fn field(path: &str) -> Expr {
    Expr::Field { path: path.into(), value_type: ValueType::String }
}

pub fn input(c: &str) -> InputRef {
    InputRef { component: c.into(), branch: None }
}

pub fn branch(c: &str, b: &str) -> InputRef {
    InputRef { component: c.into(), branch: Some(b.into()) }
}

pub fn component(name: &str, inputs: Vec<InputRef>, emits: &str, kind: ComponentKind) -> Component {
    Component { name: name.into(), inputs, emits: emits.into(), kind }
}

pub fn profile(unexpected: &str) -> ProfilePlan {
    ProfilePlan {
        name: "default".into(),
        version: "2.5.1".into(),
        accept_versions: vec!["2.5.1".into(), "2.5".into()],
        encoding: "utf-8".into(),
        segment_terminators: vec!["cr".into(), "lf".into(), "crlf".into()],
        unexpected_segments: unexpected.into(),
        timezone: "-05:00".into(),
        z_segments: vec![],
        encoding_characters: "strict".into(),
        bad_segments: "reject".into(),
    }
}

pub fn source(name: &str, paths: Vec<String>, unexpected: &str) -> Component {
    component(
        name,
        vec![],
        "hl7v2/2.5.1",
        ComponentKind::Source(SourcePlan::new("files", "hl7v2", paths, profile(unexpected))),
    )
}

pub fn sink(name: &str, from: InputRef, emits: &str, path: String) -> Component {
    component(
        name,
        vec![from],
        emits,
        ComponentKind::Sink(SinkPlan {
            kind: "jsonl".into(),
            path,
            http: None,
            postgres: None,
            csv: None,
            parquet: None,
            kafka: None,
            amqp: None,
            phi_allowed: None,
            audience: None,
            object: None,
        }),
    )
}

pub fn rule(id: &str, path: &str, check: RuleCheck) -> RulePlan {
    RulePlan { id: id.into(), path: path.into(), when: None, check, message: None }
}

pub fn validate(name: &str, from: &str, mode: Mode, rules: Vec<RulePlan>) -> Component {
    component(
        name,
        vec![input(from)],
        "hl7v2/2.5.1",
        ComponentKind::Validate(ValidatePlan {
            rules_file: "rules/adt.yaml".into(),
            mode,
            message_types: vec!["ADT^*".into(), "ORU^R01".into()],
            rules,
            hl7_checks: None,
        }),
    )
}

pub fn scalar(
    path: &str,
    vt: ValueType,
    required: bool,
    expr: Expr,
    classes: Vec<sluice_spec_core::PhiClass>,
) -> FieldPlan {
    FieldPlan { path: path.into(), value_type: vt, required, value: FieldValue::Scalar { expr, classes } }
}

pub const CANONICAL: &str = "canonical/patient-event@1";

/// The patient-event mapping used by most tests.
pub fn patient_map(name: &str, from: &str) -> Component {
    use sluice_spec_core::PhiClass as C;
    let fields = vec![
        scalar("metadata.source_system", ValueType::String, true, lit("hl7"), vec![]),
        scalar(
            "metadata.message_type",
            ValueType::String,
            true,
            call(Function::Concat, vec![hl7("MSH-9.1", ValueType::Code), lit("^"), hl7("MSH-9.2", ValueType::Code)]),
            vec![],
        ),
        scalar("metadata.message_id", ValueType::String, true, hl7("MSH-10", ValueType::String), vec![]),
        scalar("metadata.received_at", ValueType::DateTime, false, hl7("MSH-7", ValueType::DateTime), vec![]),
        scalar("patient.id", ValueType::Identifier, true, hl7("PID-3.1", ValueType::Identifier), vec![C::Mrn]),
        scalar(
            "patient.name",
            ValueType::String,
            false,
            Expr::Template {
                source: "{{ given }} {{ family }}".into(),
                vars: vec![
                    ("given".into(), hl7("PID-5.2", ValueType::String)),
                    ("family".into(), hl7("PID-5.1", ValueType::String)),
                ],
            },
            vec![C::Name],
        ),
        scalar("patient.dob", ValueType::Date, false, hl7("PID-7", ValueType::DateTime), vec![C::Dob]),
        scalar(
            "patient.gender",
            ValueType::Code,
            false,
            Expr::Lookup {
                value: Box::new(hl7("PID-8", ValueType::Code)),
                table: "gender".into(),
                default: Some(Box::new(lit("unknown"))),
            },
            vec![],
        ),
        scalar("patient.ssn", ValueType::String, false, hl7("PID-19", ValueType::String), vec![C::Ssn]),
        FieldPlan {
            path: "patient.identifiers".into(),
            value_type: ValueType::List(Box::new(ValueType::Struct)),
            required: false,
            value: FieldValue::List {
                producers: vec![Producer {
                    each: Some(hl7("PID-3[*]", ValueType::Struct)),
                    group: None,
                    x12_loop: None,
                    array: None,
                    var: Some("id".into()),
                    when: None,
                    item: ItemPlan::Struct {
                        members: vec![
                            MemberPlan {
                                name: "type".into(),
                                value_type: ValueType::Code,
                                expr: var("id", 5),
                                classes: vec![],
                            },
                            MemberPlan {
                                name: "value".into(),
                                value_type: ValueType::Identifier,
                                expr: var("id", 1),
                                classes: vec![C::Mrn],
                            },
                        ],
                        lists: vec![],
                    },
                }],
            },
        },
        scalar("encounter.admit_date", ValueType::DateTime, false, hl7("PV1-44", ValueType::DateTime), vec![C::Date]),
        scalar("encounter.charge", ValueType::Decimal, false, hl7("PV1-47", ValueType::Decimal), vec![]),
    ];
    component(
        name,
        vec![input(from)],
        CANONICAL,
        ComponentKind::Map(MapPlan {
            mapping: "hl7-adt-to-patient-event".into(),
            mapping_file: "mappings/base/adt.yaml".into(),
            input_schema: "hl7v2/2.5.1".into(),
            output_schema: CANONICAL.into(),
            message_types: vec!["ADT^*".into(), "ORU^R01".into()],
            tables: vec![CodeTable {
                name: "gender".into(),
                entries: vec![("M".into(), "male".into()), ("F".into(), "female".into())],
            }],
            fields,
            fhir: None,
            table: None,
            x12_each: Vec::new(),
            x12_partner: None,
        }),
    )
}

pub fn treatment(action: MaskAction, keep_last: Option<usize>, reason: Option<&str>) -> Treatment {
    Treatment {
        action,
        keep_last,
        reason: reason.map(str::to_string),
        decided_at: "policies/default.yaml:1".into(),
        to: None,
        shift: None,
        subject: None,
    }
}

pub fn mask(name: &str, from: &str, hash_key: Option<String>) -> Component {
    use sluice_spec_core::PhiClass as C;
    component(
        name,
        vec![input(from)],
        CANONICAL,
        ComponentKind::Mask(MaskPlan {
            environment: None,
            policy: "default".into(),
            policy_file: "policies/default.yaml".into(),
            fields: vec![("patient.name".into(), treatment(MaskAction::Redact, None, None))],
            classes: vec![
                (C::Ssn, treatment(MaskAction::Partial, Some(4), None)),
                (C::Mrn, treatment(MaskAction::Hash, None, None)),
                (C::Dob, treatment(MaskAction::Keep, None, Some("needed for patient matching"))),
                (C::Date, treatment(MaskAction::Keep, None, Some("encounter dates are needed"))),
            ],
            hash_key,
            vault_key: None,
        }),
    )
}

pub fn plan(name: &str, dir: &Path, components: Vec<Component>) -> Plan {
    let mut plan = Plan {
        plan_format: PLAN_FORMAT,
        hash: String::new(),
        pipeline: name.into(),
        spec_file: format!("pipelines/{name}.yaml"),
        components,
        dlq: Some(DlqTarget {
            path: p(dir, "out/dlq.jsonl"),
            store: None,
            encryption_key: None,
            plaintext_reason: Some("synthetic test data".into()),
        }),
        audit: Some(FileTarget { path: p(dir, "out/audit.jsonl") }),
        state: None,
        fail_if: None,
        defaults: Defaults { batch_size: 2, ..Default::default() },
        masking_matrix: vec![],
        roles: vec![],
        retention: None,
        connections: Vec::new(),
        reconciliations: Vec::new(),
    };
    plan.seal();
    plan
}

pub fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn lines(path: &str) -> Vec<serde_json::Value> {
    read(path).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}
