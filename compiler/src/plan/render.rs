//! Plans for people and tools: text, JSON, Graphviz dot and Mermaid.
//!
//! Invariant: rendering is a pure function of the plan, so the same plan renders to the same
//! bytes (reviewers diff these in pull requests). No data values ever appear in a plan.

use std::fmt::Write as _;

use super::{ComponentKind, FieldValue, Plan};

pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).expect("a plan always serializes");
    s.push('\n');
    s
}

pub fn text(plan: &Plan) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "pipeline {} ({})", plan.pipeline, plan.spec_file);
    let _ = writeln!(o, "plan {}", plan.hash);
    let _ = writeln!(o);
    for c in &plan.components {
        let inputs = c.inputs.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        let arrow = if inputs.is_empty() { String::new() } else { format!(" <- {inputs}") };
        let _ = writeln!(o, "{} {}{arrow}  [emits {}]", c.kind.type_name(), c.name, c.emits);
        match &c.kind {
            ComponentKind::Source(s) => {
                if let Some(w) = &s.webhook {
                    let _ = writeln!(
                        o,
                        "    webhook {} at {} (sluice serve), verified on the raw body, max body {} bytes, tolerance {} ms, rate {}/{}s",
                        w.provider, w.path, w.max_body, w.tolerance_ms, w.rate, w.rate_per_secs
                    );
                    let _ = writeln!(
                        o,
                        "    answered once queued in the state store; event ids deduplicated; processed from the queue"
                    );
                    continue;
                }
                if let Some(p) = &s.quickbooks {
                    crate::quickbooks::render(&mut o, p);
                    continue;
                }
                if let Some(p) = &s.plaid {
                    crate::plaid::render(&mut o, p);
                    continue;
                }
                if let Some(p) = &s.stripe {
                    // Stripe objects are JSON: no HL7 profile to show.
                    crate::stripe::render(&mut o, p);
                    continue;
                }
                match (&s.mllp, &s.kafka) {
                    _ if s.amqp.is_some() => {
                        if let Some(a) = &s.amqp {
                            let _ = writeln!(
                                o,
                                "    amqp consume queue {} at {} ({}), prefetch {}, priority {}",
                                a.queue,
                                crate::plan::amqp::describe_url(&a.url),
                                s.format,
                                a.prefetch,
                                a.priority
                            );
                            let _ = writeln!(
                                o,
                                "    each message acknowledged once its record is durable (at least once); unacknowledged ones are redelivered"
                            );
                            if let Some(t) = &a.tls {
                                let _ = writeln!(o, "    {}", t.describe());
                            }
                        }
                    }
                    _ if s.fhir_rest.is_some() => {
                        if let Some(r) = &s.fhir_rest {
                            crate::fhir_rest::render(&mut o, r);
                        }
                    }
                    (_, Some(k)) => {
                        let security = k.security.as_ref().map_or_else(|| "plaintext".into(), |s| s.describe());
                        let _ = writeln!(
                            o,
                            "    kafka consume {} from {} as group {} ({}, {security}), start {}, session timeout {} ms, priority {}",
                            k.topics.join(", "),
                            k.brokers.join(", "),
                            k.group,
                            s.format,
                            k.start,
                            k.session_timeout_ms,
                            k.priority
                        );
                        let _ = writeln!(
                            o,
                            "    offsets committed per partition once every record before them is durable (at least once)"
                        );
                    }
                    (Some(m), None) => {
                        let tls = if m.tls.is_some() { ", tls" } else { "" };
                        let _ = writeln!(
                            o,
                            "    mllp listen {} ({}{tls}), ack {} {}, max frame {} bytes, idle timeout {} ms, max {} connections, priority {}",
                            m.listen,
                            s.format,
                            m.ack_mode,
                            m.ack_timing,
                            m.max_frame_bytes,
                            m.idle_timeout_ms,
                            m.max_connections,
                            m.priority
                        );
                    }
                    (None, None) => {
                        let _ = writeln!(o, "    files {} ({})", s.paths.join(", "), s.format);
                    }
                }
                if let Some(x) = &s.x12 {
                    let guides = if x.guides.is_empty() { "any bundled".into() } else { x.guides.join(" ") };
                    let mode = if x.mode == crate::plan::Mode::Lenient { "lenient" } else { "strict" };
                    let acks = x.acks.as_deref().map_or("none".to_string(), |d| format!("999/997/TA1 to {d}"));
                    let unit = if x.split.is_empty() {
                        "each transaction set is a record".to_string()
                    } else {
                        let cuts: Vec<String> = x
                            .split
                            .iter()
                            .map(|c| format!("{} sets cut into one record per loop {}", c.guide, c.loops.join(" or ")))
                            .collect();
                        format!("{}, other sets one record each", cuts.join(", "))
                    };
                    let _ = writeln!(o, "    x12: guides {guides}, validation {mode}, acknowledgments {acks}; {unit}");
                    if let Some(p) = &x.partners {
                        let each: Vec<String> = p
                            .partners
                            .iter()
                            .map(|t| {
                                let relaxed: Vec<&str> = [
                                    (!t.validate_isa).then_some("ISA warnings"),
                                    (!t.validate_gs).then_some("GS warnings"),
                                    (!t.strict_segment_order).then_some("any segment order"),
                                ]
                                .into_iter()
                                .flatten()
                                .collect();
                                let mut line = format!("{} ({} {})", t.name, t.transaction_sets.join("/"), t.version);
                                if !relaxed.is_empty() {
                                    line.push_str(&format!(", {}", relaxed.join(", ")));
                                }
                                if !t.overlays.is_empty() {
                                    line.push_str(&format!(", {} overlay(s)", t.overlays.len()));
                                    // What a partner sends beyond the guide, for review.
                                    let added: Vec<&str> = t
                                        .overlays
                                        .iter()
                                        .filter_map(|o| o.add_segment.as_deref().or(o.add_loop.as_deref()))
                                        .collect();
                                    if !added.is_empty() {
                                        line.push_str(&format!(" adding {}", added.join(", ")));
                                    }
                                }
                                line
                            })
                            .collect();
                        let unknown = if p.accept_unknown { "accepted" } else { "rejected (RT178)" };
                        let _ = writeln!(
                            o,
                            "    trading partners `{}`: {}; unknown senders {unknown}",
                            p.name,
                            each.join("; ")
                        );
                    }
                    continue;
                }
                if let Some(f) = &s.fhir {
                    let types = if f.resource_types.is_empty() { "any".into() } else { f.resource_types.join(" ") };
                    let mode = if f.mode == crate::plan::Mode::Lenient { "lenient" } else { "strict" };
                    let profile = f.profile.as_deref().unwrap_or("none");
                    let _ = writeln!(
                        o,
                        "    fhir R4: resource types {types}, validation {mode}, profile {profile}; each resource (each Bundle entry) is a record"
                    );
                    continue;
                }
                let p = &s.profile;
                let _ = writeln!(
                    o,
                    "    profile {}: checked as v{}, accepts {}, unexpected segments: {}, timezone {}",
                    p.name,
                    p.version,
                    p.accept_versions.join(" "),
                    p.unexpected_segments,
                    p.timezone
                );
                for z in &p.z_segments {
                    let _ = writeln!(o, "    z-segment {} ({} fields)", z.id, z.fields.len());
                }
            }
            ComponentKind::Validate(v) => {
                let types = if v.message_types.is_empty() { "any".into() } else { v.message_types.join(" ") };
                let _ = writeln!(
                    o,
                    "    rules {} ({} rules, {}), message types: {types}",
                    v.rules_file,
                    v.rules.len(),
                    v.mode.as_str()
                );
                for r in &v.rules {
                    let check = serde_json::to_value(&r.check)
                        .ok()
                        .and_then(|v| v.get("check").and_then(|c| c.as_str().map(String::from)))
                        .unwrap_or_default();
                    let when = if r.when.is_some() { " (conditional)" } else { "" };
                    let _ = writeln!(o, "      {}: {check} {}{when}", r.id, r.path);
                }
            }
            ComponentKind::Map(m) => {
                let _ = writeln!(
                    o,
                    "    mapping {} ({}): {} -> {}",
                    m.mapping, m.mapping_file, m.input_schema, m.output_schema
                );
                if let Some(p) = &m.x12_partner {
                    let _ = writeln!(
                        o,
                        "    trading partner {}: its copy of the guide ({} overlay(s)); other senders' sets to the DLQ (RT312)",
                        p.name,
                        p.overlays.len()
                    );
                }
                if let Some(b) = &m.fhir {
                    for r in &b.resources {
                        let per = match (&r.within, r.each.is_some() || r.group.is_some()) {
                            (Some(w), true) => format!(", each within {w}"),
                            (Some(w), false) => format!(", one per {w}"),
                            (None, true) => ", each".to_string(),
                            (None, false) => String::new(),
                        };
                        let _ =
                            writeln!(o, "    resource {}: {}{per}, {} fields", r.name, r.resource_type, r.fields.len());
                    }
                }
                if let Some(t) = &m.table {
                    let cursor = t.cursor.as_ref().map(|c| format!(", cursor {c}")).unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "    table: write mode {}, primary key {}{cursor}",
                        t.write_mode,
                        t.primary_key.join(", ")
                    );
                }
                for f in &m.fields {
                    let how = match &f.value {
                        FieldValue::Scalar { classes, .. } => classes_text(classes),
                        FieldValue::List { producers } => {
                            let mut cls: Vec<_> = producers.iter().flat_map(|p| p.classes()).collect();
                            cls.sort();
                            cls.dedup();
                            format!(" from {} producer(s){}", producers.len(), classes_text(&cls))
                        }
                    };
                    let req = if f.required { " required" } else { "" };
                    let _ = writeln!(o, "      {}: {}{req}{how}", f.path, f.value_type);
                }
            }
            ComponentKind::Mask(m) => {
                let env = m.environment.as_ref().map(|e| format!(", for environment {e}")).unwrap_or_default();
                let _ = writeln!(o, "    policy {} ({}){env}", m.policy, m.policy_file);
            }
            ComponentKind::Filter(_) => {
                let _ = writeln!(o, "    keeps records whose condition holds");
            }
            ComponentKind::Route(r) => {
                let branches = r.branches.iter().map(|b| b.0.as_str()).collect::<Vec<_>>().join(", ");
                let _ = writeln!(
                    o,
                    "    branches {branches}{}",
                    r.default.as_ref().map(|d| format!(", default {d}")).unwrap_or_default()
                );
            }
            ComponentKind::Sink(s) => match &s.http {
                Some(h) => {
                    let _ = writeln!(o, "    posts to {} (http, JSON Lines, timeout {} ms)", h.url, h.timeout_ms);
                    let names = h.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
                    if !names.is_empty() {
                        // Names only: a literal value may still be something the author would
                        // rather not see in a review.
                        let _ = writeln!(o, "    headers {names}");
                    }
                    let per = h.max_records.map(|n| format!("at most {n} records")).unwrap_or("a batch".into());
                    let _ =
                        writeln!(o, "    {per} per request, {}{}", retry_text(&h.retry), throttle_text(&h.throttle));
                }
                None if s.amqp.is_some() => {
                    if let Some(a) = &s.amqp {
                        let key = match (&a.routing_key, &a.routing_key_field) {
                            (Some(k), _) => format!("routing key {k:?}"),
                            (None, Some(f)) => format!("routing key from {f}"),
                            (None, None) => "routing key of the source message".to_string(),
                        };
                        let exchange = if a.exchange.is_empty() { "(default)" } else { a.exchange.as_str() };
                        let format = if a.relay_hl7 { "HL7 v2 as read" } else { "JSON" };
                        let _ = writeln!(
                            o,
                            "    publishes to exchange {exchange} at {} (amqp, {format}, {key}, persistent); every message confirmed per batch",
                            crate::plan::amqp::describe_url(&a.url)
                        );
                        if let Some(t) = &a.tls {
                            let _ = writeln!(o, "    {}", t.describe());
                        }
                    }
                }
                None => match (&s.postgres, &s.kafka) {
                    (_, Some(k)) => {
                        let security = k.security.as_ref().map_or_else(|| "plaintext".into(), |s| s.describe());
                        let key = k.key.as_deref().map_or_else(|| "no key".to_string(), |p| format!("key {p}"));
                        let _ = writeln!(
                            o,
                            "    produces to topic {} at {} (kafka, JSON, {key}, idempotent, {security}); flushed per batch",
                            k.topic,
                            k.brokers.join(", ")
                        );
                    }
                    (Some(pg), None) => {
                        let how = if pg.write == "upsert" {
                            format!("upsert by {}", pg.key.join(", "))
                        } else {
                            format!("append, idempotent by {}", crate::plan::pg_table::RECORD_ID_COLUMN)
                        };
                        let _ = writeln!(
                            o,
                            "    writes table {} at {} (postgres, {how}, one transaction per batch)",
                            pg.table, pg.url
                        );
                        let _ = writeln!(o, "    DDL (run when the run starts; missing columns are added):");
                        for line in pg.create_table().lines() {
                            let _ = writeln!(o, "      {line}");
                        }
                    }
                    (None, None) => {
                        let _ = writeln!(o, "    writes {} ({})", s.path, s.kind);
                        if let Some(csv) = &s.csv {
                            let names: Vec<&str> = csv.columns.iter().map(|c| c.name.as_str()).collect();
                            let _ = writeln!(o, "    header: {}", names.join(","));
                        }
                        if let Some(pq) = &s.parquet {
                            let by =
                                pq.partition_by.as_deref().map(|p| format!(", partitioned by {p}")).unwrap_or_default();
                            let bytes = pq.roll_bytes.map(|b| format!(" or {b} bytes")).unwrap_or_default();
                            let _ = writeln!(o, "    files of at most {} rows{bytes}{by}; schema:", pq.roll_rows);
                            for line in pq.schema().lines() {
                                let _ = writeln!(o, "      {line}");
                            }
                        }
                    }
                },
            },
        }
        if let ComponentKind::Sink(s) = &c.kind
            && let Some(reason) = &s.phi_allowed
        {
            let _ = writeln!(o, "    PHI ALLOWED in clear: {reason}");
        }
        if let ComponentKind::Sink(s) = &c.kind
            && let Some(audience) = &s.audience
        {
            let policy = plan.roles.iter().find(|r| &r.name == audience).and_then(|r| r.masking.as_deref());
            let _ = writeln!(o, "    audience {audience}: masked with {}", policy.unwrap_or("?"));
        }
    }
    let _ = writeln!(o);
    if let Some(d) = &plan.dlq {
        let raw = match (&d.encryption_key, &d.plaintext_reason) {
            (Some(key), _) => format!("raw messages encrypted, AES-256-GCM, key {key}"),
            (None, Some(reason)) => format!("raw messages in plain text: {reason}"),
            (None, None) => "raw messages: NO KEY, the run will refuse to start".to_string(),
        };
        let _ = writeln!(o, "dlq {} ({raw})", d.shown(plan.state.as_ref()));
    }
    if let Some(a) = &plan.audit {
        let _ = writeln!(o, "audit {}", a.path);
    }
    if let Some(f) = &plan.fail_if {
        let _ = writeln!(o, "fail_if error_rate > {}% over {} records", f.max_error_rate * 100.0, f.window);
    }
    if let Some(s) = &plan.state {
        let _ = writeln!(o, "state {} ({}, checkpoint every {} ms)", s.shown(), s.kind, s.checkpoint_every_ms);
    }
    for r in &plan.reconciliations {
        let _ = writeln!(o, "reconcile `{}` ({}) once the sources have ended:", r.plan.name, r.spec);
        for input in &r.plan.inputs {
            let sinks: Vec<&str> =
                r.sinks.iter().filter(|(side, _)| *side == input.role).map(|(_, sink)| sink.as_str()).collect();
            let from = match sinks.as_slice() {
                [] => input.paths.join(", "),
                [sink] => format!("sink {sink}'s file {}", input.paths.join(", ")),
                several => format!("sinks {}'s files {}", several.join(", "), input.paths.join(", ")),
            };
            let _ = writeln!(o, "  {} `{}` <- {from}", input.role, input.name);
        }
        let rules: Vec<&str> = r.plan.rules.iter().map(|rule| rule.name.as_str()).collect();
        let _ = writeln!(o, "  rules {}", rules.join(", "));
        let _ =
            writeln!(o, "  outputs: matched {}, review {}, summary {}", r.plan.matched, r.plan.review, r.plan.summary);
    }
    let d = &plan.defaults;
    let workers = d.workers.map_or_else(|| "one per core".to_string(), |w| w.to_string());
    let _ = writeln!(
        o,
        "defaults: batch {}, workers {workers}, {}{}",
        d.batch_size,
        retry_text(&d.retry),
        throttle_text(&d.throttle)
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "masking matrix (sink, field, class, treatment, decided at[, by audience]):");
    if plan.masking_matrix.is_empty() {
        let _ = writeln!(o, "  (no PHI reaches any sink)");
    }
    for r in &plan.masking_matrix {
        let _ = writeln!(
            o,
            "  {:<16} {:<32} {:<14} {:<8} {}{}",
            r.sink,
            r.field,
            r.class.as_str(),
            r.treatment.as_str(),
            r.decided_at,
            r.audience.as_ref().map(|a| format!(" (audience {a})")).unwrap_or_default()
        );
    }
    o
}

fn classes_text(classes: &[sluice_spec_core::PhiClass]) -> String {
    if classes.is_empty() {
        return String::new();
    }
    format!("  PHI: {}", classes.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "))
}

fn node_id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

pub fn dot(plan: &Plan) -> String {
    let mut o = format!("digraph \"{}\" {{\n  rankdir=LR;\n", plan.pipeline.replace('"', "'"));
    for c in &plan.components {
        let shape = match c.kind {
            ComponentKind::Source(_) => "cylinder",
            ComponentKind::Sink(_) => "folder",
            _ => "box",
        };
        let _ = writeln!(o, "  {} [label=\"{}\\n({})\", shape={shape}];", node_id(&c.name), c.name, c.kind.type_name());
    }
    for c in &plan.components {
        for i in &c.inputs {
            let label = i.branch.as_ref().map(|b| format!(" [label=\"{b}\"]")).unwrap_or_default();
            let _ = writeln!(o, "  {} -> {}{label};", node_id(&i.component), node_id(&c.name));
        }
    }
    o.push_str("}\n");
    o
}

pub fn mermaid(plan: &Plan) -> String {
    let mut o = String::from("flowchart LR\n");
    for c in &plan.components {
        let (open, close) = match c.kind {
            ComponentKind::Source(_) => ("[(", ")]"),
            ComponentKind::Sink(_) => ("[/", "/]"),
            _ => ("[", "]"),
        };
        let _ = writeln!(o, "  {}{open}\"{} ({})\"{close}", node_id(&c.name), c.name, c.kind.type_name());
    }
    for c in &plan.components {
        for i in &c.inputs {
            let label = i.branch.as_ref().map(|b| format!("|{b}|")).unwrap_or_default();
            let _ = writeln!(o, "  {} -->{label} {}", node_id(&i.component), node_id(&c.name));
        }
    }
    o
}

/// `retry 3 attempts 200ms..30000ms` (and `within N ms` when `max_elapsed` is not the default).
fn retry_text(r: &crate::plan::RetryPlan) -> String {
    let within = if r.max_elapsed_ms == crate::plan::DEFAULT_MAX_ELAPSED_MS {
        String::new()
    } else {
        format!(" within {}ms", r.max_elapsed_ms)
    };
    format!("retry {} attempts {}ms..{}ms{within}", r.max_attempts, r.initial_backoff_ms, r.max_backoff_ms)
}

fn throttle_text(t: &Option<crate::plan::ThrottlePlan>) -> String {
    t.as_ref().map(|t| format!(", throttle {}/{}s", t.permits, t.per_seconds)).unwrap_or_default()
}
