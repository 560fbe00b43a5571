//! Validation of a FHIR resource tree against the R4 schema: unknown elements, JSON shapes,
//! primitive formats, cardinality, required bindings, choice types, empty elements, primitive
//! extensions (`_birthDate`), a few simple invariants, references' target types, and the
//! rules of custom profiles ([`crate::profile`]). Bundles and reference resolution are in
//! [`crate::bundle`], which calls this walker entry by entry.
//!
//! Invariants:
//! - Never panics; recursion follows the tree, whose depth the readers bound.
//! - Every finding has a registered code ([`crate::codes`]), a FHIRPath-style location
//!   (`Patient.name[0].given[1]`, JSON names for choices: `Observation.valueQuantity.value`)
//!   and a message that never quotes a value from the data (values may be PHI): it names
//!   elements, types, cardinalities and the expected form only.
//! - Strict and lenient differ only in severity: lenient turns unknown elements and shape
//!   problems a reader could skip into warnings; nothing is dropped.

use crate::codes;
use crate::model::{self, Child, Context, Found, Index, JsonKind, ValueKind};
use crate::primitive;
use crate::profile::Profile;
use crate::schema::{Max, Schema, schema};
use crate::tree::{Name, Node};

pub use sluice_spec_core::Severity;

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// `FHIRnnn`, registered in [`crate::codes::CODES`].
    pub code: &'static str,
    /// FHIRPath-style: `Patient.name[0].given[1]`, `Bundle.entry[2].resource.subject`.
    pub location: String,
    /// What is wrong and what was expected; never a data value.
    pub message: String,
}

/// How to validate.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'p> {
    /// Lenient: unknown elements and wrong shapes are warnings instead of errors.
    pub lenient: bool,
    /// Profiles whose rules apply to every resource of their type.
    pub profiles: &'p [Profile],
}

/// A literal reference met during the walk, resolved later against a Bundle.
#[derive(Clone, Debug)]
pub struct ReferenceSite {
    pub location: String,
    /// `Patient/1`, `urn:uuid:...`, `http://x/fhir/Patient/1/_history/2`.
    pub reference: String,
    /// Allowed target types (`Resource` for any).
    pub targets: &'static [String],
    /// The entry of the Bundle it was found in.
    pub entry: Option<usize>,
    /// A profile requires the target to be in the Bundle (aggregation `bundled`).
    pub required: bool,
}

/// A logical reference (an `identifier` without `reference`).
#[derive(Clone, Debug)]
pub struct LogicalSite {
    pub location: String,
    pub system: String,
    pub value: String,
    pub targets: &'static [String],
    pub required: bool,
}

/// Validates one resource (a Bundle's entries included, and its references resolved: see
/// [`crate::bundle::validate_bundle`]). Findings come in document order.
pub fn validate(resource: &Node, options: &Options<'_>) -> Vec<Finding> {
    if resource.resource_type() == Some("Bundle") {
        return crate::bundle::validate_bundle(resource, options);
    }
    let mut w = Walker::new(options);
    w.top_resource(resource, None);
    w.findings
}

/// Walks trees and gathers findings and reference sites. [`crate::bundle`] drives it entry by
/// entry.
pub struct Walker<'o> {
    schema: &'static Schema,
    index: &'static Index,
    options: Options<'o>,
    pub findings: Vec<Finding>,
    pub references: Vec<ReferenceSite>,
    pub logical: Vec<LogicalSite>,
    /// Location being walked, as far as written: the text of `steps[..written]` after the
    /// start (`Bundle.entry[3]`, a resource type). Read only through [`Self::flush_loc`].
    loc: String,
    /// The members and items entered below the start, innermost last, with where each one's
    /// text starts in `loc` once written. Entering and leaving a member costs a push and a
    /// pop; the text is written only when a finding or a reference needs the location (a
    /// few thousand times per Bundle, against a hundred thousand members).
    steps: Vec<(Step, usize)>,
    /// How many of `steps` are written into `loc`.
    written: usize,
    /// Profile path of the current object (`Patient.name`), kept only when profiles are given.
    ppath: String,
    /// The resource type whose profile rules apply (the nearest enclosing resource).
    rtype: Vec<String>,
    /// Per non-contained resource: the ids of its contained resources and the `#id`s used.
    frames: Vec<Frame>,
    entry: Option<usize>,
    /// The values counted so far per element of the objects being walked, innermost last
    /// (each object truncates back to where it started): cardinality is checked from these
    /// rather than by matching every counted element's name against every member.
    tallies: Vec<Tally>,
}

/// One step of a location: `.name` (a known element's JSON name, from the schema) or `[i]`.
#[derive(Clone, Copy)]
enum Step {
    Member(&'static str),
    Item(usize),
}

/// How many values one element of an object has, following the members in order: a value
/// member sets the count, a `_name` member (primitive extensions) counts only when no value
/// member came before it.
struct Tally {
    def: &'static crate::schema::ElementDef,
    count: usize,
    seen_value: bool,
}

/// What one resource (not contained) holds for its local `#id` references.
#[derive(Default)]
struct Frame {
    /// Ids of its contained resources, with their locations.
    contained: Vec<(String, String)>,
    /// `#id` references made in it (and its contained resources), with their locations.
    local_refs: Vec<(String, String)>,
}

impl<'o> Walker<'o> {
    pub fn new(options: &Options<'o>) -> Self {
        Walker {
            schema: schema(),
            index: model::index(),
            options: *options,
            findings: Vec::new(),
            references: Vec::new(),
            logical: Vec::new(),
            loc: String::new(),
            steps: Vec::new(),
            written: 0,
            ppath: String::new(),
            rtype: Vec::new(),
            frames: Vec::new(),
            entry: None,
            tallies: Vec::new(),
        }
    }

    /// The options this walker validates with.
    pub fn options(&self) -> Options<'o> {
        self.options
    }

    fn report(&mut self, severity: Severity, code: &'static str, message: String) {
        self.flush_loc();
        self.findings.push(Finding { severity, code, location: self.loc.clone(), message });
    }

    /// Writes the steps not yet written into `loc`, which then holds the whole location.
    fn flush_loc(&mut self) {
        for k in self.written..self.steps.len() {
            let (step, _) = self.steps[k];
            self.steps[k].1 = self.loc.len();
            match step {
                Step::Member(name) => {
                    self.loc.push('.');
                    self.loc.push_str(name);
                }
                Step::Item(i) => push_index(&mut self.loc, i),
            }
        }
        self.written = self.steps.len();
    }

    fn step_in(&mut self, step: Step) {
        self.steps.push((step, 0));
    }

    /// Leaves the innermost step (and takes its text out of `loc` if it was written).
    fn step_out(&mut self) {
        if let Some((_, mark)) = self.steps.pop()
            && self.steps.len() < self.written
        {
            self.written = self.steps.len();
            self.loc.truncate(mark);
        }
    }

    /// Starts the location afresh at `start` (no steps).
    fn reset_loc(&mut self) {
        self.loc.clear();
        self.steps.clear();
        self.written = 0;
    }

    /// Strict: error; lenient: warning.
    fn shape_severity(&self) -> Severity {
        if self.options.lenient { Severity::Warning } else { Severity::Error }
    }

    /// A resource that is not contained: the root, or a Bundle entry's resource (then `entry`
    /// is its index and the location starts at `Bundle.entry[i].resource`).
    pub fn top_resource(&mut self, node: &Node, entry: Option<usize>) {
        self.entry = entry;
        self.flush_loc();
        if self.loc.is_empty() {
            self.loc.push_str(node.resource_type().unwrap_or("Resource"));
        }
        self.frames.push(Frame::default());
        self.resource(node, false);
        self.close_frame();
    }

    /// ref-1 and dom-3 for the resource whose frame ends: every `#id` names a contained
    /// resource, and every contained resource is referenced (`#` alone points at the container,
    /// which contained resources use to point back).
    fn close_frame(&mut self) {
        let frame = self.frames.pop().unwrap_or_default();
        for (id, location) in &frame.local_refs {
            if !id.is_empty() && !frame.contained.iter().any(|(c, _)| c == id) {
                self.findings.push(Finding {
                    severity: Severity::Error,
                    code: codes::REFERENCE_NOT_FOUND,
                    location: location.clone(),
                    message: "ref-1: the local reference names no contained resource of this resource".into(),
                });
            }
        }
        for (id, location) in frame.contained {
            if !frame.local_refs.iter().any(|(r, _)| *r == id) {
                self.findings.push(Finding {
                    severity: Severity::Warning,
                    code: codes::INVARIANT,
                    location,
                    message: "dom-3: the contained resource is not referenced from the resource that contains it"
                        .into(),
                });
            }
        }
    }

    /// Validates the Bundle entry object at `Bundle.entry[index]` (its resource included).
    pub fn bundle_entry(&mut self, entry: &Node, index: usize) {
        self.reset_loc();
        self.loc.push_str("Bundle.entry");
        push_index(&mut self.loc, index);
        self.entry = Some(index);
        self.rtype.push("Bundle".into());
        self.ppath.clear();
        self.ppath.push_str("Bundle.entry");
        let Some(members) = entry.as_object() else {
            self.report(self.shape_severity(), codes::WRONG_SHAPE, "a Bundle entry must be a JSON object".into());
            self.rtype.pop();
            return;
        };
        if members.is_empty() {
            self.report(Severity::Error, codes::EMPTY, "the Bundle entry is empty".into());
        }
        self.object(members, "Bundle.entry", self.index.context("Bundle.entry"), false);
        self.rtype.pop();
        self.reset_loc();
    }

    /// A resource object at the current location.
    fn resource(&mut self, node: &Node, contained: bool) {
        let Some(members) = node.as_object() else {
            self.report(self.shape_severity(), codes::WRONG_SHAPE, "a resource must be a JSON object".into());
            return;
        };
        let Some(rt) = node.resource_type() else {
            self.report(Severity::Error, codes::NOT_A_RESOURCE, "the resource has no `resourceType` string".into());
            return;
        };
        if let Some((version, evidence)) = crate::version::detect(node) {
            self.report(
                Severity::Warning,
                codes::OTHER_VERSION,
                format!("this looks like FHIR {version} content ({evidence}); it is validated against R4 (4.0.1)"),
            );
        }
        if !model::is_concrete_resource(self.schema, rt) {
            let note = crate::version::resource_type_version(rt)
                .map(|v| format!(" (it is a {v} resource type)"))
                .unwrap_or_default();
            self.report(
                Severity::Error,
                codes::UNKNOWN_RESOURCE_TYPE,
                format!("`{rt}` is not a FHIR R4 resource type{note}"),
            );
            return;
        }
        if contained {
            self.contained_rules(members);
        }
        let saved_ppath = std::mem::replace(&mut self.ppath, rt.to_string());
        self.rtype.push(rt.to_string());
        let rt_static = self.schema.type_def(rt).map(|t| t.name.as_str()).unwrap_or("Resource");
        self.object(members, rt_static, self.index.context(rt_static), true);
        self.rtype.pop();
        self.ppath = saved_ppath;
    }

    /// dom-2, dom-4, dom-5 on a contained resource.
    fn contained_rules(&mut self, members: &[(Name, Node)]) {
        let get = |n: &str| members.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        if get("contained").is_some() {
            self.report(
                Severity::Error,
                codes::INVARIANT,
                "dom-2: a contained resource holds contained resources".into(),
            );
        }
        if let Some(meta) = get("meta") {
            if meta.get("versionId").is_some() || meta.get("lastUpdated").is_some() {
                self.report(
                    Severity::Error,
                    codes::INVARIANT,
                    "dom-4: a contained resource has meta.versionId or meta.lastUpdated".into(),
                );
            }
            if meta.get("security").is_some() {
                self.report(Severity::Error, codes::INVARIANT, "dom-5: a contained resource has meta.security".into());
            }
        }
    }

    /// The members of an object whose children are looked up in `context` (`children`: its
    /// entry in the index, looked up by the caller).
    fn object(
        &mut self,
        members: &[(Name, Node)],
        context: &str,
        children: Option<&'static Context>,
        is_resource: bool,
    ) {
        let mut choices_seen: Vec<(&str, &str)> = Vec::new();
        // Most objects have no `_key` members: one scan here spares one per member.
        let has_extensions = members.iter().any(|(k, _)| k.starts_with('_'));
        let tallies_start = self.tallies.len();
        for (key, value) in members {
            if is_resource && key == "resourceType" {
                continue;
            }
            if let Some(base) = key.strip_prefix('_') {
                self.primitive_extension(members, context, children, base, value);
                if let Some(child) = children.and_then(|c| c.child(base)) {
                    self.tally(tallies_start, child.found.def, value, true);
                }
                continue;
            }
            let Some(child) = children.and_then(|c| c.child_named(key)) else {
                self.flush_loc();
                let mark = self.loc.len();
                self.loc.push('.');
                self.loc.push_str(key);
                self.report(
                    self.shape_severity(),
                    codes::UNKNOWN_ELEMENT,
                    format!("`{key}` is not an element of `{}` in FHIR R4", display_context(context)),
                );
                self.loc.truncate(mark);
                continue;
            };
            let found = child.found;
            if found.def.choice {
                if let Some((_, other)) = choices_seen.iter().find(|(n, _)| *n == found.def.name) {
                    let other = other.to_string();
                    self.flush_loc();
                    let mark = self.loc.len();
                    self.loc.push('.');
                    self.loc.push_str(key);
                    self.report(
                        Severity::Error,
                        codes::CHOICE,
                        format!("`{}[x]` has two types given: `{other}` and `{key}`", found.def.name),
                    );
                    self.loc.truncate(mark);
                } else {
                    choices_seen.push((&found.def.name, key));
                }
            }
            self.member(members, has_extensions, key, value, child);
            self.tally(tallies_start, found.def, value, false);
        }
        self.cardinality(tallies_start, context, children.map_or(&[], |c| c.counted()));
        self.tallies.truncate(tallies_start);
        if !self.options.profiles.is_empty() {
            self.profile_rules(members);
        }
    }

    /// One member `key` (a known element) with its value.
    /// `has_extensions`: whether any member of the object is a primitive extension (`_key`).
    fn member(
        &mut self,
        members: &[(Name, Node)],
        has_extensions: bool,
        key: &str,
        value: &Node,
        child: &'static Child,
    ) {
        let found = child.found;
        // `key` is the child's JSON name: the schema's copy goes on the location.
        self.step_in(Step::Member(&child.json_name));
        let pmark = self.ppath.len();
        if !self.options.profiles.is_empty() {
            self.ppath.push('.');
            self.ppath.push_str(&found.def.name);
            if found.def.choice {
                self.ppath.push_str("[x]");
            }
        }
        let extension = if has_extensions {
            members.iter().find(|(k, _)| k.strip_prefix('_') == Some(key)).map(|(_, v)| v)
        } else {
            None
        };
        match value {
            Node::Array(items) => {
                if !found.def.is_list() {
                    self.report(
                        self.shape_severity(),
                        codes::WRONG_SHAPE,
                        format!("`{}` does not repeat (max {}) but holds an array", found.def.name, found.def.max),
                    );
                }
                if items.is_empty() {
                    self.report(Severity::Error, codes::EMPTY, "an empty array; leave the element out".into());
                }
                for (i, item) in items.iter().enumerate() {
                    self.step_in(Step::Item(i));
                    let has_ext = extension
                        .and_then(|x| x.as_array())
                        .and_then(|a| a.get(i))
                        .is_some_and(|x| !matches!(x, Node::Null));
                    self.value(item, child, has_ext);
                    self.step_out();
                }
            }
            single => {
                if found.def.is_list() {
                    self.report(
                        self.shape_severity(),
                        codes::WRONG_SHAPE,
                        format!("`{}` repeats (max {}): its value must be an array", found.def.name, found.def.max),
                    );
                }
                self.value(single, child, extension.is_some());
            }
        }
        self.step_out();
        self.ppath.truncate(pmark);
    }

    /// One value of a known element at the current location.
    fn value(&mut self, value: &Node, child: &'static Child, has_extension: bool) {
        let found = child.found;
        match child.kind {
            ValueKind::Primitive(kind) => self.primitive(value, child, kind, has_extension),
            ValueKind::Resource => match value {
                Node::Object(_) => {
                    let is_contained = found.def.path.ends_with(".contained");
                    if is_contained && let Some(id) = value.get("id").and_then(Node::as_str) {
                        self.flush_loc();
                        let loc = self.loc.clone();
                        if let Some(f) = self.frames.last_mut() {
                            f.contained.push((id.to_string(), loc));
                        }
                    }
                    if is_contained {
                        self.resource(value, true);
                    } else if value.resource_type() == Some("Bundle") {
                        // A Bundle inside a resource (or a Bundle of Bundles): its references
                        // resolve among its own entries.
                        self.flush_loc();
                        for f in crate::bundle::validate_bundle(value, &self.options) {
                            let rest = f.location.strip_prefix("Bundle").unwrap_or(&f.location);
                            let location = format!("{}{rest}", self.loc);
                            self.findings.push(Finding { location, ..f });
                        }
                    } else {
                        // A resource inside a resource (Bundle.entry.resource, Parameters):
                        // its own contained and `#` references.
                        self.frames.push(Frame::default());
                        self.resource(value, false);
                        self.close_frame();
                    }
                }
                _ => self.report(self.shape_severity(), codes::WRONG_SHAPE, "a resource must be a JSON object".into()),
            },
            ValueKind::Complex => match value {
                Node::Object(members) => {
                    if members.is_empty() {
                        self.report(Severity::Error, codes::EMPTY, "an empty object; leave the element out".into());
                        return;
                    }
                    let children = child.context_id().and_then(|id| self.index.context_at(id));
                    self.object(members, child.context, children, false);
                    self.type_rules(members, found);
                }
                Node::Null => self.report(Severity::Error, codes::EMPTY, "`null` where a value is expected".into()),
                _ => self.report(
                    self.shape_severity(),
                    codes::WRONG_SHAPE,
                    format!("`{}` is a {} and must be a JSON object", found.def.name, found.type_code),
                ),
            },
        }
    }

    fn primitive(&mut self, value: &Node, child: &'static Child, kind: JsonKind, has_extension: bool) {
        let found = child.found;
        // The type (`id` for a resource's logical id), its rule and its required codes.
        let rules = child.primitive;
        let t = rules.type_name;
        let text = match (value, kind) {
            (Node::String(s), JsonKind::String) => s.as_str(),
            (Node::Number(n), JsonKind::Number) => n.as_str(),
            (Node::Bool(_), JsonKind::Bool) => return,
            (Node::Null, _) => {
                if !has_extension {
                    self.report(
                        Severity::Error,
                        codes::EMPTY,
                        "`null` without an extension in the matching `_` element".into(),
                    );
                }
                return;
            }
            (other, _) => {
                let want = match kind {
                    JsonKind::String => "a JSON string",
                    JsonKind::Number => "a JSON number",
                    JsonKind::Bool => "true or false",
                };
                self.report(
                    self.shape_severity(),
                    codes::WRONG_SHAPE,
                    format!("`{}` is a {t}, written as {want}, not {}", found.def.name, json_kind_name(other)),
                );
                return;
            }
        };
        if text.is_empty() {
            self.report(Severity::Error, codes::EMPTY, "an empty string; leave the element out".into());
            return;
        }
        if let Err(expected) = primitive::check_type(rules.rule, text) {
            self.report(Severity::Error, codes::BAD_PRIMITIVE, format!("the {t} value is not {expected}"));
            return;
        }
        if let Some(codes) = rules.required_codes
            && let Some(b) = &found.def.binding
            && !codes.iter().any(|c| c == text)
            && !MISSING_CODES.iter().any(|(vs, c)| *vs == b.value_set && *c == text)
        {
            let list = if codes.len() <= 12 { format!(": one of {}", codes.join(", ")) } else { String::new() };
            self.report(
                Severity::Error,
                codes::CODE_NOT_IN_VALUE_SET,
                format!("the code is not in the required value set {}{list}", b.value_set),
            );
        }
        if rules.is_reference {
            self.reference(text);
        }
    }

    /// `_name` beside `name`: an object (single) or an array aligned with `name`'s array.
    fn primitive_extension(
        &mut self,
        members: &[(Name, Node)],
        context: &str,
        children: Option<&'static Context>,
        base: &str,
        value: &Node,
    ) {
        self.flush_loc();
        let mark = self.loc.len();
        self.loc.push_str("._");
        self.loc.push_str(base);
        // Profile rules never address the id/extension object of a primitive.
        let pmark = self.ppath.len();
        self.ppath.push_str("._");
        self.ppath.push_str(base);
        let is_primitive =
            children.and_then(|c| c.child(base)).is_some_and(|c| matches!(c.kind, ValueKind::Primitive(_)));
        if !is_primitive {
            self.report(
                self.shape_severity(),
                codes::UNKNOWN_ELEMENT,
                format!("`_{base}` is not the extension of a primitive element of `{}`", display_context(context)),
            );
            self.loc.truncate(mark);
            self.ppath.truncate(pmark);
            return;
        }
        let values = members.iter().find(|(k, _)| k == base).map(|(_, v)| v);
        match value {
            Node::Object(m) => {
                if matches!(values, Some(Node::Array(_))) {
                    self.report(
                        Severity::Error,
                        codes::PRIMITIVE_EXTENSION,
                        format!("`{base}` is an array, so `_{base}` must be an array of the same length"),
                    );
                }
                self.object(m, "Element", self.index.context("Element"), false);
            }
            Node::Array(items) => {
                match values {
                    Some(Node::Array(v)) if v.len() != items.len() => self.report(
                        Severity::Error,
                        codes::PRIMITIVE_EXTENSION,
                        format!("`_{base}` has {} items and `{base}` {}: they must align", items.len(), v.len()),
                    ),
                    Some(Node::Array(_)) | None => {}
                    Some(_) => self.report(
                        Severity::Error,
                        codes::PRIMITIVE_EXTENSION,
                        format!("`{base}` is a single value, so `_{base}` must be an object"),
                    ),
                }
                for (i, item) in items.iter().enumerate() {
                    let imark = self.loc.len();
                    push_index(&mut self.loc, i);
                    match item {
                        Node::Object(m) => self.object(m, "Element", self.index.context("Element"), false),
                        Node::Null => {
                            let has_value = values
                                .and_then(Node::as_array)
                                .and_then(|a| a.get(i))
                                .is_some_and(|v| !matches!(v, Node::Null));
                            if !has_value {
                                self.report(Severity::Error, codes::EMPTY, "neither a value nor an extension".into());
                            }
                        }
                        _ => self.report(
                            Severity::Error,
                            codes::PRIMITIVE_EXTENSION,
                            "items of a `_` array are objects or null".into(),
                        ),
                    }
                    self.loc.truncate(imark);
                }
            }
            _ => self.report(
                Severity::Error,
                codes::PRIMITIVE_EXTENSION,
                format!("`_{base}` must be an object (id, extension) or an array of them"),
            ),
        }
        self.loc.truncate(mark);
        self.ppath.truncate(pmark);
    }

    /// Minimum and maximum cardinality of the children of `context`.
    /// Counts a member's values for its element (`extension`: a `_name` member).
    fn tally(&mut self, start: usize, def: &'static crate::schema::ElementDef, value: &Node, extension: bool) {
        if !(def.min > 0 || matches!(def.max, Max::N(n) if n > 1)) {
            return;
        }
        let n = match value {
            Node::Array(a) => a.len(),
            _ => 1,
        };
        let at = self.tallies[start..].iter().position(|t| std::ptr::eq(t.def, def));
        let tally = match at {
            Some(i) => &mut self.tallies[start + i],
            None => {
                self.tallies.push(Tally { def, count: 0, seen_value: false });
                let last = self.tallies.len() - 1;
                &mut self.tallies[last]
            }
        };
        if !extension {
            tally.seen_value = true;
            tally.count = n;
        } else if !tally.seen_value {
            tally.count = tally.count.max(n);
        }
    }

    /// Min and max of the counted elements of the object whose tallies start at `start`.
    fn cardinality(&mut self, start: usize, context: &str, counted: &[&'static crate::schema::ElementDef]) {
        for def in counted {
            let count = self.tallies[start..].iter().find(|t| std::ptr::eq(t.def, *def)).map_or(0, |t| t.count);
            if count < def.min as usize {
                let name = if def.choice { format!("{}[x]", def.name) } else { def.name.clone() };
                self.report(
                    Severity::Error,
                    codes::TOO_FEW,
                    format!(
                        "`{name}` is required ({}..{}) in `{}`, found {count}",
                        def.min,
                        def.max,
                        display_context(context)
                    ),
                );
            }
            if let Max::N(n) = def.max
                && n > 1
                && count > n as usize
            {
                self.report(
                    Severity::Error,
                    codes::TOO_MANY,
                    format!("`{}` allows at most {n} values, found {count}", def.name),
                );
            }
        }
    }

    /// Invariants of datatypes, checked on their object after its members.
    fn type_rules(&mut self, members: &[(Name, Node)], found: Found<'static>) {
        let get = |n: &str| members.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        match found.type_code {
            "Extension" => {
                let has_value = members.iter().any(|(k, _)| k.starts_with("value"));
                if has_value && get("extension").is_some() {
                    self.report(
                        Severity::Error,
                        codes::INVARIANT,
                        "ext-1: an extension has either a value or nested extensions, not both".into(),
                    );
                }
            }
            "Period" => {
                if let (Some(Node::String(s)), Some(Node::String(e))) = (get("start"), get("end"))
                    && primitive::check("dateTime", s).is_ok()
                    && primitive::check("dateTime", e).is_ok()
                    && s.len() == e.len()
                    && s.len() == 10
                    && s > e
                {
                    self.report(Severity::Error, codes::INVARIANT, "per-1: the period's start is after its end".into());
                }
            }
            "Quantity" | "Age" | "Duration" | "Distance" | "Count" | "SimpleQuantity" | "MoneyQuantity"
                if get("code").is_some() && get("system").is_none() =>
            {
                self.report(Severity::Error, codes::INVARIANT, "qty-3: a quantity with a code needs a system".into());
            }
            "Reference" => {
                if get("reference").is_none()
                    && let Some(Node::Object(id)) = get("identifier")
                {
                    let s = |n: &str| id.iter().find(|(k, _)| k == n).and_then(|(_, v)| v.as_str()).map(str::to_string);
                    if let (Some(system), Some(value)) = (s("system"), s("value")) {
                        let required = self.aggregation_required();
                        self.flush_loc();
                        self.logical.push(LogicalSite {
                            location: self.loc.clone(),
                            system,
                            value,
                            targets: reference_targets(found),
                            required,
                        });
                    }
                }
            }
            _ => {}
        }
        if found.type_code == "Reference"
            && let Some(Node::String(r)) = get("reference")
        {
            self.check_reference_type(r, found);
        }
    }

    /// The literal reference at the current location (`….reference`): local ones are checked
    /// at once, the others are kept for the Bundle.
    fn reference(&mut self, text: &str) {
        self.flush_loc();
        if let Some(id) = text.strip_prefix('#') {
            // Checked when the resource ends (contained resources may come after the
            // reference in JSON).
            let location = self.loc.clone();
            if let Some(f) = self.frames.last_mut() {
                f.local_refs.push((id.to_string(), location));
            }
            return;
        }
        let location = self.loc.strip_suffix(".reference").unwrap_or(&self.loc).to_string();
        let required = self.aggregation_required();
        self.references.push(ReferenceSite {
            location,
            reference: text.to_string(),
            targets: &[],
            entry: self.entry,
            required,
        });
    }

    /// `Type/id` of a literal reference against the element's target types; fills in the
    /// targets of the site recorded by [`Self::reference`].
    fn check_reference_type(&mut self, reference: &str, found: Found<'static>) {
        let targets = reference_targets(found);
        self.flush_loc();
        if let Some(site) = self.references.last_mut()
            && site.reference == reference
            && site.location == self.loc
        {
            site.targets = targets;
        }
        if reference.starts_with('#') || reference.starts_with("urn:") {
            return;
        }
        let Some(t) = crate::bundle::literal_type(reference) else {
            return;
        };
        if !targets.is_empty()
            && !targets.iter().any(|x| x == "Resource" || x == t)
            && model::is_concrete_resource(self.schema, t)
        {
            self.report(
                Severity::Error,
                codes::WRONG_REFERENCE_TARGET,
                format!("a reference to a {t}, where {} is allowed", targets.join(", ")),
            );
        }
    }

    fn aggregation_required(&self) -> bool {
        let Some(rt) = self.rtype.last() else { return false };
        self.options.profiles.iter().filter(|p| &p.type_name == rt).any(|p| p.requires_bundled(&self.ppath))
    }

    /// Rules of the profiles on the object at the current profile path.
    fn profile_rules(&mut self, members: &[(Name, Node)]) {
        let Some(rt) = self.rtype.last().cloned() else { return };
        let profiles = self.options.profiles;
        self.flush_loc();
        for p in profiles.iter().filter(|p| p.type_name == rt) {
            for f in p.check_object(&self.ppath, members) {
                self.findings.push(Finding { location: format!("{}{}", self.loc, f.suffix), ..f.finding });
            }
        }
    }
}

/// Codes of required value sets that the bundled table lacks (it takes them from the R4 JSON
/// Schema, written before 4.0.1 was published): accepted besides the table's codes.
const MISSING_CODES: &[(&str, &str)] = &[("http://hl7.org/fhir/ValueSet/FHIR-version", "4.0.1")];

/// The allowed target types of a Reference element (empty when unknown).
fn reference_targets(found: Found<'static>) -> &'static [String] {
    found.def.types.iter().find(|t| t.code == "Reference").map(|t| t.targets.as_slice()).unwrap_or(&[])
}

fn json_kind_name(n: &Node) -> &'static str {
    match n {
        Node::Null => "null",
        Node::Bool(_) => "a boolean",
        Node::Number(_) => "a number",
        Node::String(_) => "a string",
        Node::Array(_) => "an array",
        Node::Object(_) => "an object",
    }
}

/// `HumanName`, `Patient.contact`, `Element` as a user reads them.
fn display_context(context: &str) -> &str {
    context
}

/// Appends `[i]` to a location without allocating or going through `fmt` (this runs for
/// every array item).
fn push_index(loc: &mut String, i: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = i;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    loc.push('[');
    loc.extend(digits[at..].iter().map(|&d| char::from(d)));
    loc.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (code, location, message) of the cardinality findings of a resource.
    fn cardinality(json: &str) -> Vec<(&'static str, String, String)> {
        let resource = crate::json::parse(json.as_bytes()).unwrap();
        validate(&resource, &Options::default())
            .into_iter()
            .filter(|f| f.code == codes::TOO_FEW || f.code == codes::TOO_MANY)
            .map(|f| (f.code, f.location, f.message))
            .collect()
    }

    #[test]
    fn required_elements_are_counted_by_value_extension_or_choice_type() {
        // Observation.status and .code are 1..1.
        let missing = cardinality(r#"{"resourceType":"Observation"}"#);
        let names: Vec<&str> = missing.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(missing.len(), 2, "{missing:?}");
        assert!(names.iter().any(|m| m.starts_with("`status` is required (1..1) in `Observation`, found 0")));
        assert!(names.iter().any(|m| m.starts_with("`code` is required (1..1) in `Observation`, found 0")));
        assert!(missing.iter().all(|(c, l, _)| *c == codes::TOO_FEW && l == "Observation"));

        // A primitive given only by its extension (`_status`) counts as present.
        let ext = r#"{"resourceType":"Observation","code":{"text":"x"},
            "_status":{"extension":[{"url":"http://example.org/why","valueString":"unknown"}]}}"#;
        assert_eq!(cardinality(ext), vec![]);

        // A required choice (MedicationRequest.medication[x], 1..1): any one type counts.
        let base = r#""resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"}"#;
        assert_eq!(cardinality(&format!(r#"{{{base},"medicationCodeableConcept":{{"text":"x"}}}}"#)), vec![]);
        assert_eq!(cardinality(&format!(r#"{{{base},"medicationReference":{{"reference":"Medication/1"}}}}"#)), vec![]);
        let none = cardinality(&format!("{{{base}}}"));
        assert_eq!(none.len(), 1, "{none:?}");
        assert!(none[0].2.starts_with("`medication[x]` is required (1..1) in `MedicationRequest`, found 0"));

        // Nested objects are counted on their own: a contact's missing required element
        // does not borrow its parent's members, and the parent's count is untouched.
        let nested = cardinality(
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},
                "component":[{"valueString":"a"},{"code":{"text":"y"}}]}"#,
        );
        assert_eq!(nested.len(), 1, "{nested:?}");
        assert_eq!(nested[0].1, "Observation.component[0]");
        assert!(nested[0].2.starts_with("`code` is required (1..1)"));
    }
}
