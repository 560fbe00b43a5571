//! Segment group instances of one message, for `each: group(NAME)` in map stages.
//!
//! A message is partitioned once (lazily, only by mappings that iterate groups): its structure
//! is chosen as the validator chooses it (MSH-9.3, else the standard structure of MSH-9.1/9.2,
//! in the version of MSH-12 or else the record's schema) and every segment is placed in it
//! ([`sluice_hl7v2::structure::place`]). When the message has no bundled structure or does not
//! follow it, the **fallback rule** forms the instances instead, from the shapes the compiler
//! put in the plan: an instance of a group opens at a segment that can start the group (an
//! `OBR` or `ORC` for `ORDER_OBSERVATION`) and goes on over the following segments, until a
//! segment that opens another instance (one that was already seen in this instance, or any
//! opener once a non-opening segment came) or a segment of the structure outside the group
//! (`PID` for an order). Segments the structures do not know (Z-segments, a `PRT` in a v2.5
//! structure) stay with the instance. Within an instance, the segments of its repeating
//! subgroups are claimed the same way (an `OBX` opens an `OBSERVATION`, an `SPM` a
//! `SPECIMEN`, whose `OBX` then stay in the specimen), and iterating a subgroup reads the
//! segments it claimed. The record gets one warning (`RT309`) saying the fallback was used.
//!
//! Invariants:
//! - Instances come in message order; each holds segment indices in message order.
//! - `visible` (what paths on the group variable read) is the instance's own segments and
//!   those of its non-repeating subgroups; segments of repeating subgroups (an `OBX` of an
//!   `OBSERVATION`) are reached only by iterating them, so nothing is flattened.
//! - Never panics; messages and warnings never contain field values.

use std::collections::HashMap;

use sluice_compiler::plan::{GroupEach, GroupShape};
use sluice_hl7v2::codec::Message;
use sluice_hl7v2::schema::Version;
use sluice_hl7v2::structure::{self, GroupInstance};

/// How a message's segments were grouped.
pub enum Partition {
    /// Per segment, the group instances enclosing it (outermost first).
    Exact(Vec<Vec<GroupInstance<'static>>>),
    /// The fallback rule, applied per iteration.
    Fallback,
}

/// One instance of a segment group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Instance {
    /// The instance in the exact partition: group name and number.
    key: Option<(String, u32)>,
    /// Every segment of the instance, nested groups included (where subgroups are looked for).
    pub all: Vec<usize>,
    /// The segments paths on the group variable read.
    pub visible: Vec<usize>,
    /// Fallback rule only: the instance's repeating subgroups, and the segments each claimed.
    hidden: Vec<String>,
    claimed: Vec<(usize, String)>,
}

/// Partitions `msg`. `default_version` is used when MSH-12 names no known version. The second
/// value explains, without data, why the fallback rule is used.
pub fn partition(msg: &Message<'_>, default_version: Option<Version>) -> (Partition, Option<String>) {
    let msh12 = msg
        .segments
        .first()
        .and_then(|s| s.field(12))
        .and_then(|f| f.repetitions.first())
        .and_then(|r| r.components.first().and_then(|c| c.subcomponents.first()).map(|v| v.trim().to_string()));
    let Some(version) = msh12.as_deref().and_then(Version::parse).or(default_version) else {
        return (Partition::Fallback, Some("the message's HL7 version has no bundled structures".into()));
    };
    let mut ignored = Vec::new();
    let Some(selected) = structure::select(msg, version, &mut ignored) else {
        return (
            Partition::Fallback,
            Some(format!("no bundled message structure for this message type in v{version}")),
        );
    };
    match structure::place(msg, selected.group) {
        Ok(placed) => (Partition::Exact(placed), None),
        Err(line) => (
            Partition::Fallback,
            Some(format!("segment {line} does not fit message structure {} (v{version})", selected.name)),
        ),
    }
}

impl Partition {
    /// The instances of `each`'s group in `parent` (or in the whole message).
    pub fn instances(&self, msg: &Message<'_>, each: &GroupEach, parent: Option<&Instance>) -> Vec<Instance> {
        let all: Vec<usize>;
        let candidates = match parent {
            Some(p) if p.key.is_none() && p.hidden.contains(&each.shape.name) => {
                all = p.claimed.iter().filter(|(_, g)| *g == each.shape.name).map(|(i, _)| *i).collect();
                &all
            }
            Some(p) => &p.all,
            None => {
                all = (0..msg.segments.len()).collect();
                &all
            }
        };
        match self {
            Partition::Exact(placed) => exact(placed, candidates, &each.shape.name, parent),
            Partition::Fallback => fallback(msg, candidates, &each.shape, &each.hidden),
        }
    }
}

/// `each: segment(SEG)`: every SEG among the segments the parent's variable reads (or in the
/// message), each an instance of its own. Needs no partition.
pub fn segments(msg: &Message<'_>, id: &str, parent: Option<&Instance>) -> Vec<Instance> {
    let one = |i: usize| Instance { all: vec![i], visible: vec![i], ..Instance::default() };
    let is = |i: &usize| msg.segments.get(*i).is_some_and(|s| s.id == id);
    match parent {
        Some(p) => p.visible.iter().copied().filter(is).map(one).collect(),
        None => (0..msg.segments.len()).filter(is).map(one).collect(),
    }
}

fn exact(
    placed: &[Vec<GroupInstance<'_>>],
    candidates: &[usize],
    name: &str,
    parent: Option<&Instance>,
) -> Vec<Instance> {
    let mut out: Vec<Instance> = Vec::new();
    // Instance number -> its index in `out` (messages with thousands of OBX stay linear).
    let mut index: HashMap<u32, usize> = HashMap::new();
    for &i in candidates {
        let Some(path) = placed.get(i) else { continue };
        let from = match parent.and_then(|p| p.key.as_ref()) {
            Some((pn, pid)) => match path.iter().position(|g| g.name == pn && g.instance == *pid) {
                Some(at) => at + 1,
                None => continue,
            },
            None => 0,
        };
        let Some(at) = path.iter().skip(from).position(|g| g.name == name).map(|p| p + from) else { continue };
        let id = path[at].instance;
        let visible = path[at + 1..].iter().all(|g| !g.repeating);
        let at = *index.entry(id).or_insert_with(|| {
            out.push(Instance { key: Some((name.to_string(), id)), ..Instance::default() });
            out.len() - 1
        });
        let inst = &mut out[at];
        inst.all.push(i);
        if visible {
            inst.visible.push(i);
        }
    }
    out
}

fn has(list: &[String], id: &str) -> bool {
    list.iter().any(|s| s == id)
}

fn fallback(msg: &Message<'_>, candidates: &[usize], shape: &GroupShape, hidden: &[GroupShape]) -> Vec<Instance> {
    let id = |i: usize| msg.segments.get(i).map_or("", |s| &s.id);
    let mut out: Vec<Instance> = Vec::new();
    // The instance being filled, if one is open.
    let mut open: Option<Instance> = None;
    for &i in candidates {
        let seg = id(i);
        let starts = has(&shape.starts, seg);
        match open.as_mut() {
            // An opener continues the instance while only openers came, each once (ORC, OBR).
            Some(cur) if starts && !cur.all.iter().any(|&j| id(j) == seg || !has(&shape.starts, id(j))) => {
                cur.all.push(i)
            }
            Some(cur) if !starts && !has(&shape.closers, seg) => cur.all.push(i),
            _ => {
                out.extend(open.take());
                if starts {
                    open = Some(Instance { key: None, all: vec![i], ..Instance::default() });
                }
            }
        }
    }
    out.extend(open);
    for inst in &mut out {
        claim(msg, inst, hidden);
    }
    out
}

/// Splits a fallback instance into the segments its variable reads and those its repeating
/// subgroups claim: a segment that opens a subgroup starts a claim, which goes on while the
/// segments are not outside that subgroup.
fn claim(msg: &Message<'_>, inst: &mut Instance, hidden: &[GroupShape]) {
    inst.hidden = hidden.iter().map(|h| h.name.clone()).collect();
    let mut inside: Option<&GroupShape> = None;
    for (n, &i) in inst.all.iter().enumerate() {
        let seg = msg.segments.get(i).map_or("", |s| &s.id);
        if n > 0 {
            let reopens = inside.is_some_and(|h| has(&h.starts, seg));
            if let Some(h) = inside.filter(|h| !has(&h.closers, seg) && !reopens) {
                inst.claimed.push((i, h.name.clone()));
                continue;
            }
            inside = hidden.iter().find(|h| has(&h.starts, seg));
            if let Some(h) = inside {
                inst.claimed.push((i, h.name.clone()));
                continue;
            }
        }
        inst.visible.push(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    fn shape(name: &str, starts: &[&str], members: &[&str], closers: &[&str]) -> GroupShape {
        GroupShape { name: name.into(), starts: v(starts), members: v(members), closers: v(closers) }
    }

    fn each(shape: GroupShape, hidden: Vec<GroupShape>) -> GroupEach {
        GroupEach { shape, within: None, hidden, segment: false }
    }

    fn ids(msg: &Message<'_>, list: &[usize]) -> String {
        list.iter().map(|&i| format!("{}{}", msg.segments[i].id, msg.segments[i].line)).collect::<Vec<_>>().join(" ")
    }

    const ORU: &str = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||1\rORC|RE\rOBR|1\rNTE|1\rOBX|1\rNTE|1\rOBX|2\rOBR|2\rOBX|1";

    // ORU_R01 v2.5.1, abridged: the root holds MSH, PID, PV1 and the order's segments.
    fn observation_shape() -> GroupShape {
        shape("OBSERVATION", &["OBX"], &["NTE", "OBX"], &["MSH", "OBR", "ORC", "PID", "PV1", "SPM"])
    }

    fn order() -> GroupEach {
        let specimen = shape("SPECIMEN", &["SPM"], &["OBX", "SPM"], &["MSH", "NTE", "OBR", "ORC", "PID", "PV1"]);
        each(
            shape("ORDER_OBSERVATION", &["OBR", "ORC"], &["NTE", "OBR", "OBX", "ORC", "SPM"], &["MSH", "PID", "PV1"]),
            vec![observation_shape(), specimen],
        )
    }

    fn observation() -> GroupEach {
        each(observation_shape(), vec![])
    }

    /// The exact partition and the fallback rule agree on a message that follows ORU_R01.
    #[test]
    fn orders_and_observations_exact_and_fallback() {
        let msg = sluice_hl7v2::codec::parse_message(ORU).unwrap();
        let (exact, why) = partition(&msg, None);
        assert!(why.is_none() && matches!(exact, Partition::Exact(_)));
        for p in [&exact, &Partition::Fallback] {
            let orders = p.instances(&msg, &order(), None);
            assert_eq!(orders.len(), 2);
            assert_eq!(ids(&msg, &orders[0].all), "ORC3 OBR4 NTE5 OBX6 NTE7 OBX8");
            assert_eq!(ids(&msg, &orders[0].visible), "ORC3 OBR4 NTE5");
            assert_eq!(ids(&msg, &orders[1].all), "OBR9 OBX10");
            let obs = p.instances(&msg, &observation(), Some(&orders[0]));
            assert_eq!(obs.len(), 2);
            assert_eq!(ids(&msg, &obs[0].visible), "OBX6 NTE7");
            assert_eq!(ids(&msg, &obs[1].visible), "OBX8");
            assert_eq!(p.instances(&msg, &observation(), None).len(), 3);
        }
    }

    /// Any segment sequence, placed exactly or by the fallback rule: no panic, instances in
    /// message order, each segment in at most one instance of a group, what a variable reads
    /// is part of its instance, and nested instances stay inside their parent.
    fn check_instances(msg: &Message<'_>, p: &Partition) {
        let orders = p.instances(msg, &order(), None);
        let mut seen = std::collections::BTreeSet::new();
        for o in &orders {
            assert!(o.all.windows(2).all(|w| w[0] < w[1]));
            assert!(o.visible.iter().all(|i| o.all.contains(i)));
            assert!(o.all.iter().all(|i| seen.insert(*i)), "a segment in two orders");
            let mut in_obs = std::collections::BTreeSet::new();
            for obs in p.instances(msg, &observation(), Some(o)) {
                assert!(obs.all.iter().all(|i| o.all.contains(i) && in_obs.insert(*i)));
            }
            assert!(in_obs.iter().all(|i| !o.visible.contains(i)), "an OBX read through its order");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_segment_order_partitions_sanely(
            ids in proptest::collection::vec(
                proptest::sample::select(vec!["PID", "PV1", "ORC", "OBR", "NTE", "OBX", "SPM", "TQ1", "ZXX", "PRT", "DSC"]),
                0..30,
            ),
            version in proptest::sample::select(vec!["2.3", "2.5.1", "2.8", "9.9"]),
        ) {
            let mut text = format!("MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|{version}");
            for (n, id) in ids.iter().enumerate() {
                text.push_str(&format!("\r{id}|{n}"));
            }
            let msg = sluice_hl7v2::codec::parse_message(&text).unwrap();
            let (p, _) = partition(&msg, Version::parse("2.5.1"));
            check_instances(&msg, &p);
            check_instances(&msg, &Partition::Fallback);
        }
    }

    #[test]
    fn segment_iteration_reads_what_the_parent_reads() {
        let msg = sluice_hl7v2::codec::parse_message(ORU).unwrap();
        let (p, _) = partition(&msg, None);
        let orders = p.instances(&msg, &order(), None);
        let notes = segments(&msg, "NTE", Some(&orders[0]));
        assert_eq!(notes.iter().map(|n| ids(&msg, &n.visible)).collect::<Vec<_>>(), ["NTE5"], "not the OBX's NTE");
        assert_eq!(segments(&msg, "OBX", None).len(), 3);
    }

    #[test]
    fn messages_off_their_structure_use_the_fallback() {
        let off = ORU.replace("PID|1||1\r", "").replace("ORC|RE", "OBX|0\rPID|1");
        let msg = sluice_hl7v2::codec::parse_message(&off).unwrap();
        let (p, why) = partition(&msg, None);
        assert!(matches!(p, Partition::Fallback));
        assert!(why.unwrap().contains("does not fit message structure ORU_R01"));
        assert_eq!(p.instances(&msg, &order(), None).len(), 2);
        // Unknown segments (a PRT of v2.7, a Z-segment) stay with their order; the OBX of a
        // specimen stays in the specimen.
        let odd =
            "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5.1\rOBX|0\rPID|1\rOBR|1\rPRT|1\rOBX|1\rZXX|1\rSPM|1\rOBX|2\rOBR|2";
        let msg = sluice_hl7v2::codec::parse_message(odd).unwrap();
        let (p, _) = partition(&msg, None);
        let orders = p.instances(&msg, &order(), None);
        assert_eq!(ids(&msg, &orders[0].all), "OBR4 PRT5 OBX6 ZXX7 SPM8 OBX9");
        assert_eq!(ids(&msg, &orders[0].visible), "OBR4 PRT5");
        let obs = p.instances(&msg, &observation(), Some(&orders[0]));
        assert_eq!(obs.iter().map(|o| ids(&msg, &o.visible)).collect::<Vec<_>>(), ["OBX6 ZXX7"]);
        let unknown = sluice_hl7v2::codec::parse_message("MSH|^~\\&|A|B|C|D|1||ZZZ^Z01|1|P|2.5.1\rOBR|1").unwrap();
        let (p, why) = partition(&unknown, None);
        assert!(matches!(p, Partition::Fallback) && why.is_some());
        assert_eq!(p.instances(&unknown, &order(), None).len(), 1);
    }
}
