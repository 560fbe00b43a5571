//! Semantic diff of two plans (`sluice plan --diff BASE`): what a change to the specs does to
//! the pipeline, as a reviewer needs it in a pull request.
//!
//! Sections, in this order: PHI newly exposed (a masking-matrix row that appears with `keep`,
//! or whose treatment gets weaker) first; then components added, removed, retyped or rewired;
//! output fields of map stages added, removed or whose expression changed; validation rules;
//! the masking matrix; sink delivery (retries, throttles); and the pipeline's targets and
//! defaults.
//!
//! Invariants:
//! - Only plan content is compared, never data: the diff is as safe to post as the plans are.
//! - Two plans with the same hash have no changes; a change anywhere in the plan JSON shows in
//!   at least one entry (anything not covered by a section is reported as a settings change of
//!   its component or of the pipeline).

use serde::Serialize;
use serde_json::Value;

use super::{Component, ComponentKind, FieldPlan, FieldValue, MatrixRow, Plan, RuleCheck, RulePlan};

/// Which part of the plan a change is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// PHI that newly reaches a sink in clear, or less masked than before.
    PhiExposure,
    Components,
    Fields,
    Rules,
    Masking,
    Delivery,
    Pipeline,
}

impl Section {
    pub fn title(self) -> &'static str {
        match self {
            Section::PhiExposure => "PHI newly exposed",
            Section::Components => "components",
            Section::Fields => "output fields",
            Section::Rules => "validation rules",
            Section::Masking => "masking matrix",
            Section::Delivery => "delivery (retries, throttles)",
            Section::Pipeline => "pipeline",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Added,
    Removed,
    Changed,
}

impl Kind {
    pub fn sign(self) -> &'static str {
        match self {
            Kind::Added => "+",
            Kind::Removed => "-",
            Kind::Changed => "~",
        }
    }
}

/// One change: what (`subject`), and the before and after, as short text.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub section: Section,
    pub kind: Kind,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanDiff {
    pub pipeline: String,
    pub base_hash: String,
    pub head_hash: String,
    /// Sorted by section (PHI exposure first), then as found.
    pub changes: Vec<Change>,
}

impl PlanDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Whether PHI newly reaches a sink in clear or less masked.
    pub fn exposes_phi(&self) -> bool {
        self.changes.iter().any(|c| c.section == Section::PhiExposure)
    }
}

struct Diff {
    changes: Vec<Change>,
}

impl Diff {
    fn push(&mut self, section: Section, kind: Kind, subject: String, before: Option<String>, after: Option<String>) {
        self.changes.push(Change { section, kind, subject, before, after });
    }

    /// Added, removed and changed entries of two keyed lists.
    fn keyed<T: PartialEq>(
        &mut self,
        section: Section,
        base: &[(String, T)],
        head: &[(String, T)],
        text: impl Fn(&T) -> String,
    ) {
        for (k, b) in base {
            match head.iter().find(|(hk, _)| hk == k) {
                None => self.push(section, Kind::Removed, k.clone(), Some(text(b)), None),
                Some((_, h)) if h != b => self.push(section, Kind::Changed, k.clone(), Some(text(b)), Some(text(h))),
                Some(_) => {}
            }
        }
        for (k, h) in head {
            if !base.iter().any(|(bk, _)| bk == k) {
                self.push(section, Kind::Added, k.clone(), None, Some(text(h)));
            }
        }
    }
}

/// The semantic diff from `base` to `head`.
pub fn diff(base: &Plan, head: &Plan) -> PlanDiff {
    let mut d = Diff { changes: Vec::new() };
    if base.hash != head.hash || base != head {
        components(&mut d, base, head);
        masking(&mut d, &base.masking_matrix, &head.masking_matrix);
        pipeline(&mut d, base, head);
    }
    d.changes.sort_by_key(|c| c.section);
    PlanDiff {
        pipeline: head.pipeline.clone(),
        base_hash: base.hash.clone(),
        head_hash: head.hash.clone(),
        changes: d.changes,
    }
}

fn components(d: &mut Diff, base: &Plan, head: &Plan) {
    let described = |c: &Component| format!("{} emitting {}", c.kind.type_name(), c.emits);
    for b in &base.components {
        let Some(h) = head.components.iter().find(|h| h.name == b.name) else {
            d.push(Section::Components, Kind::Removed, b.name.clone(), Some(described(b)), None);
            continue;
        };
        if b.kind.type_name() != h.kind.type_name() || b.emits != h.emits {
            d.push(Section::Components, Kind::Changed, b.name.clone(), Some(described(b)), Some(described(h)));
        }
        if b.inputs != h.inputs {
            let inputs = |c: &Component| c.inputs.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
            d.push(Section::Components, Kind::Changed, format!("{} inputs", b.name), Some(inputs(b)), Some(inputs(h)));
        }
        component_parts(d, b, h);
    }
    for h in &head.components {
        if !base.components.iter().any(|b| b.name == h.name) {
            d.push(Section::Components, Kind::Added, h.name.clone(), None, Some(described(h)));
            component_parts(d, &empty_like(h), h);
        }
    }
}

/// A component of the same name and kind with nothing in it, so an added component's fields
/// and rules are listed as added.
fn empty_like(c: &Component) -> Component {
    let mut kind = c.kind.clone();
    match &mut kind {
        ComponentKind::Map(m) => m.fields.clear(),
        ComponentKind::Validate(v) => v.rules.clear(),
        _ => {}
    }
    Component { name: c.name.clone(), inputs: vec![], emits: c.emits.clone(), kind }
}

fn field_text(f: &FieldPlan) -> String {
    let value = match &f.value {
        FieldValue::Scalar { expr, .. } => expr.to_string(),
        FieldValue::List { producers } => format!("list from {} producer(s)", producers.len()),
    };
    let required = if f.required { ", required" } else { "" };
    format!("{value} ({}{required})", f.value_type)
}

/// A masking rule as a reviewer reads it: `partial (last 4)`, `keep (reason: ...)`.
fn treatment_text(t: &super::Treatment) -> String {
    let detail = match t.action {
        super::MaskAction::Partial => t.keep_last.map(|n| format!(" (last {n})")),
        super::MaskAction::Keep => t.reason.as_ref().map(|r| format!(" (reason: {r})")),
        super::MaskAction::Generalize => t.to.map(|g| {
            format!(
                " to {}",
                serde_json::to_value(g).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
            )
        }),
        super::MaskAction::ShiftDate => {
            t.shift.as_ref().map(|s| format!(" by {} (up to {} days)", s.subject, s.max_days))
        }
        _ => None,
    };
    format!("{}{} at {}", t.action.as_str(), detail.unwrap_or_default(), t.decided_at)
}

fn rule_text(r: &RulePlan) -> String {
    let check = match &r.check {
        RuleCheck::Required { value } => format!("required {value}"),
        RuleCheck::ValueSet { value, values } => format!("{value} in [{}]", values.join(", ")),
        RuleCheck::Format { value, format } => format!("{value} is a {format}"),
        RuleCheck::Pattern { value, pattern } => format!("{value} matches {pattern:?}"),
        RuleCheck::MaxLength { value, max } => format!("{value} at most {max} characters"),
    };
    match &r.when {
        Some(w) => format!("{check} when {w}"),
        None => check,
    }
}

/// What is left of a component's JSON once the parts diffed on their own are taken out.
fn settings(kind: &ComponentKind) -> Value {
    let mut v = serde_json::to_value(kind).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for part in ["fields", "rules", "classes", "retry", "throttle"] {
            m.remove(part);
        }
        if let Some(Value::Object(http)) = m.get_mut("http") {
            http.remove("retry");
            http.remove("throttle");
        }
    }
    v
}

fn component_parts(d: &mut Diff, b: &Component, h: &Component) {
    let name = &h.name;
    match (&b.kind, &h.kind) {
        (ComponentKind::Map(bm), ComponentKind::Map(hm)) => {
            let fields = |m: &super::MapPlan| {
                m.fields.iter().map(|f| (format!("{name}: {}", f.path), f.clone())).collect::<Vec<_>>()
            };
            d.keyed(Section::Fields, &fields(bm), &fields(hm), field_text);
        }
        (ComponentKind::Validate(bv), ComponentKind::Validate(hv)) => {
            let rules = |v: &super::ValidatePlan| {
                v.rules.iter().map(|r| (format!("{name}: {}", r.id), r.clone())).collect::<Vec<_>>()
            };
            d.keyed(Section::Rules, &rules(bv), &rules(hv), rule_text);
            if bv.mode != hv.mode {
                d.push(
                    Section::Rules,
                    Kind::Changed,
                    format!("{name}: mode"),
                    Some(format!("{:?}", bv.mode).to_lowercase()),
                    Some(format!("{:?}", hv.mode).to_lowercase()),
                );
            }
        }
        (ComponentKind::Mask(bm), ComponentKind::Mask(hm)) => {
            let classes = |m: &super::MaskPlan| {
                m.classes.iter().map(|(c, t)| (format!("{name}: class {c}"), t.clone())).collect::<Vec<_>>()
            };
            let fields = |m: &super::MaskPlan| {
                m.fields.iter().map(|(f, t)| (format!("{name}: field {f}"), t.clone())).collect::<Vec<_>>()
            };
            d.keyed(Section::Masking, &classes(bm), &classes(hm), treatment_text);
            d.keyed(Section::Masking, &fields(bm), &fields(hm), treatment_text);
        }
        (ComponentKind::Sink(bs), ComponentKind::Sink(hs)) => {
            let (br, bt) = bs.http.as_ref().map_or((None, None), |h| (Some(&h.retry), h.throttle.as_ref()));
            let (hr, ht) = hs.http.as_ref().map_or((None, None), |h| (Some(&h.retry), h.throttle.as_ref()));
            if br != hr {
                let text = |r: Option<&super::RetryPlan>| {
                    r.map(|r| {
                        format!(
                            "{} attempts, backoff {}..{} ms, at most {} ms",
                            r.max_attempts, r.initial_backoff_ms, r.max_backoff_ms, r.max_elapsed_ms
                        )
                    })
                };
                d.push(Section::Delivery, Kind::Changed, format!("{name} retry"), text(br), text(hr));
            }
            if bt != ht {
                let text = |t: Option<&super::ThrottlePlan>| {
                    Some(t.map_or("none".to_string(), |t| serde_json::to_string(t).unwrap_or_default()))
                };
                d.push(Section::Delivery, Kind::Changed, format!("{name} throttle"), text(bt), text(ht));
            }
        }
        _ => {}
    }
    if b.kind.type_name() == h.kind.type_name() {
        let (bs, hs) = (settings(&b.kind), settings(&h.kind));
        if bs != hs {
            for (key, before, after) in changed_keys(&bs, &hs) {
                d.push(Section::Components, Kind::Changed, format!("{name} {key}"), before, after);
            }
        }
    }
}

/// The top-level keys whose values differ, with compact JSON of each side.
fn changed_keys(b: &Value, h: &Value) -> Vec<(String, Option<String>, Option<String>)> {
    let (Value::Object(bm), Value::Object(hm)) = (b, h) else {
        return vec![("settings".into(), Some(b.to_string()), Some(h.to_string()))];
    };
    let mut keys: Vec<&String> = bm.keys().chain(hm.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| bm.get(*k) != hm.get(*k))
        .map(|k| ((*k).clone(), bm.get(k).map(Value::to_string), hm.get(k).map(Value::to_string)))
        .collect()
}

fn masking(d: &mut Diff, base: &[MatrixRow], head: &[MatrixRow]) {
    let key = |r: &MatrixRow| format!("{} {} ({})", r.sink, r.field, r.class);
    let text = |r: &MatrixRow| format!("{} at {}", r.treatment.as_str(), r.decided_at);
    for h in head {
        match base.iter().find(|b| key(b) == key(h)) {
            None => {
                let section =
                    if h.treatment == super::MaskAction::Keep { Section::PhiExposure } else { Section::Masking };
                d.push(section, Kind::Added, key(h), None, Some(text(h)));
            }
            Some(b) if b != h => {
                let section = if h.treatment < b.treatment { Section::PhiExposure } else { Section::Masking };
                d.push(section, Kind::Changed, key(h), Some(text(b)), Some(text(h)));
            }
            Some(_) => {}
        }
    }
    for b in base {
        if !head.iter().any(|h| key(h) == key(b)) {
            d.push(Section::Masking, Kind::Removed, key(b), Some(text(b)), None);
        }
    }
}

fn pipeline(d: &mut Diff, base: &Plan, head: &Plan) {
    let part = |p: &Plan| {
        serde_json::json!({
            "dlq": p.dlq, "audit": p.audit, "state": p.state, "defaults": p.defaults,
            "fail_if": p.fail_if, "pipeline": p.pipeline, "plan_format": p.plan_format,
        })
    };
    for (key, before, after) in changed_keys(&part(base), &part(head)) {
        d.push(Section::Pipeline, Kind::Changed, key, before, after);
    }
}

/// The diff for a terminal: one line a change, under its section's title.
pub fn text(d: &PlanDiff) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "pipeline {}: plan {} -> {}", d.pipeline, d.base_hash, d.head_hash);
    if d.is_empty() {
        let _ = writeln!(o, "no changes");
        return o;
    }
    let mut section = None;
    for c in &d.changes {
        if section != Some(c.section) {
            section = Some(c.section);
            let title = c.section.title();
            let _ = writeln!(
                o,
                "\n{}:",
                if c.section == Section::PhiExposure { title.to_uppercase() } else { title.to_string() }
            );
        }
        let mark = if c.section == Section::PhiExposure { "!" } else { c.kind.sign() };
        let _ = match (&c.before, &c.after) {
            (Some(b), Some(a)) => writeln!(o, "  {mark} {}: {b} -> {a}", c.subject),
            (None, Some(a)) => writeln!(o, "  {mark} {}: {a}", c.subject),
            (Some(b), None) => writeln!(o, "  {mark} {}: was {b}", c.subject),
            (None, None) => writeln!(o, "  {mark} {}", c.subject),
        };
    }
    o
}

/// The pull-request comment: rendered from [`MARKDOWN`] with minijinja.
const MARKDOWN: &str = r#"### Sluice plan diff: `{{ d.pipeline }}`

`{{ d.base_hash }}` → `{{ d.head_hash }}`
{% if d.changes == 0 %}
No changes.
{% else %}
{% if exposes %}> [!WARNING]
> **PHI newly exposed**: a field reaches a sink in clear, or less masked than before.
{% endif %}
{% for section in sections %}
#### {{ section.title }}

| | what | before | after |
|---|---|---|---|
{% for c in section.changes %}| {{ c.sign }} | `{{ c.subject | cell }}` | {{ c.before | cell }} | {{ c.after | cell }} |
{% endfor %}{% endfor %}{% endif %}"#;

pub fn markdown(d: &PlanDiff) -> String {
    use minijinja::Value as V;
    use std::collections::BTreeMap;
    let mut env = minijinja::Environment::new();
    // Table cells: no line breaks, and `|` escaped so a value never splits its row.
    env.add_filter("cell", |v: Option<String>| v.unwrap_or_default().replace('|', "\\|").replace('\n', " "));
    let mut sections: Vec<(Section, Vec<V>)> = Vec::new();
    for c in &d.changes {
        let sign = if c.section == Section::PhiExposure { "⚠" } else { c.kind.sign() };
        let row: BTreeMap<&str, V> = BTreeMap::from([
            ("sign", V::from(sign)),
            ("subject", V::from(c.subject.as_str())),
            ("before", c.before.as_deref().map_or(V::from(()), V::from)),
            ("after", c.after.as_deref().map_or(V::from(()), V::from)),
        ]);
        match sections.last_mut() {
            Some((s, rows)) if *s == c.section => rows.push(V::from(row)),
            _ => sections.push((c.section, vec![V::from(row)])),
        }
    }
    let sections: Vec<V> = sections
        .into_iter()
        .map(|(s, rows)| V::from(BTreeMap::from([("title", V::from(s.title())), ("changes", V::from(rows))])))
        .collect();
    let summary: BTreeMap<&str, V> = BTreeMap::from([
        ("pipeline", V::from(d.pipeline.as_str())),
        ("base_hash", V::from(d.base_hash.as_str())),
        ("head_hash", V::from(d.head_hash.as_str())),
        ("changes", V::from(d.changes.len())),
    ]);
    env.add_template("diff", MARKDOWN).expect("the template parses");
    env.get_template("diff")
        .and_then(|t| t.render(minijinja::context! { d => summary, sections => sections, exposes => d.exposes_phi() }))
        .unwrap_or_else(|e| format!("plan diff: cannot render markdown: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Compiler;
    use crate::plan::MaskAction;

    fn quickstart() -> Plan {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Compiler::default().plan(&root.join("pipelines/quickstart.yaml")).unwrap().expect("the quick start compiles")
    }

    #[test]
    fn the_same_plan_has_no_changes() {
        let p = quickstart();
        assert!(diff(&p, &p).is_empty());
    }

    #[test]
    fn weaker_masking_is_called_out_first_and_other_changes_follow() {
        let base = quickstart();
        let mut head = base.clone();
        head.hash = "sha256:changed".into();
        let ssn = head.masking_matrix.iter_mut().find(|r| r.class.as_str() == "ssn").unwrap();
        ssn.treatment = MaskAction::Keep;
        head.components.retain(|c| c.name != "adt_and_oru");
        for c in &mut head.components {
            if c.name == "validate" {
                c.inputs = vec![crate::plan::InputRef { component: "hl7_files".into(), branch: None }];
            }
            if let ComponentKind::Map(m) = &mut c.kind {
                m.fields.retain(|f| f.path != "patient.gender");
            }
            if let ComponentKind::Validate(v) = &mut c.kind {
                v.rules.retain(|r| r.id != "gender");
            }
        }
        head.defaults.batch_size = 512;
        let d = diff(&base, &head);
        assert!(d.exposes_phi());
        let first = &d.changes[0];
        assert_eq!((first.section, first.kind), (Section::PhiExposure, Kind::Changed));
        assert!(first.subject.contains("(ssn)") && first.after.as_deref().unwrap().starts_with("keep"), "{first:?}");
        let has = |section, kind, subject: &str| {
            d.changes.iter().any(|c| c.section == section && c.kind == kind && c.subject.contains(subject))
        };
        assert!(has(Section::Components, Kind::Removed, "adt_and_oru"));
        assert!(has(Section::Components, Kind::Changed, "validate inputs"));
        assert!(has(Section::Fields, Kind::Removed, "to_patient_event: patient.gender"));
        assert!(has(Section::Rules, Kind::Removed, "validate: gender"));
        assert!(has(Section::Pipeline, Kind::Changed, "defaults"));
        let sections: Vec<Section> = d.changes.iter().map(|c| c.section).collect();
        assert!(sections.windows(2).all(|w| w[0] <= w[1]), "sorted by section");
    }

    #[test]
    fn expressions_read_as_the_mapping_language() {
        let p = quickstart();
        let map = p
            .components
            .iter()
            .find_map(|c| match &c.kind {
                ComponentKind::Map(m) => Some(m),
                _ => None,
            })
            .unwrap();
        let dob = map.fields.iter().find(|f| f.path == "patient.dob").unwrap();
        assert_eq!(field_text(dob), "date(PID-7) (date)");
    }
}
