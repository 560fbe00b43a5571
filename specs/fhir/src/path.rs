//! FHIR element paths, resolved against the R4 schema: what a mapping may write, what type and
//! cardinality it yields, its required codes and its PHI class.
//!
//! Syntax (a FHIRPath subset; docs/fhir-schema.md has the full table):
//! - `Patient.name.family`: a type name, then element names. [`Schema::resolve_in`] starts at a
//!   context type instead: `subject.resolve().birthDate` against `Observation`.
//! - `[n]` (0-based) after a repeating element: `Patient.name[0].family`. Indexing an element
//!   whose max is 1 is an error.
//! - Choice elements: `Observation.value` (all its types), `Observation.value[x]` (the same, as
//!   the StructureDefinition writes it), `Observation.valueQuantity` (the JSON name: that type)
//!   or `Observation.value.as(Quantity)` / `.ofType(Quantity)`. Going into a choice needs one
//!   type: `Observation.value.value` is an error, `Observation.valueQuantity.value` is not.
//! - `Bundle.entry.resource` and `Patient.contained` are any resource: `.as(Patient)` or
//!   `.ofType(Patient)` picks one before going further (only `id`, `meta`, `implicitRules`
//!   and `language` exist on every resource).
//! - `.resolve()` on a Reference goes to its target types: `Observation.subject.resolve()` is a
//!   Patient, Group, Device or Location; a following name keeps the targets that define it
//!   (`.birthDate`: Patient). A reference to any resource needs `.as(...)` like `resource`.
//! - `.first()`, `.last()`: one value of a list.
//! - [`Resolved::then`] continues from where a resolved path ended (`Patient.contact`, then
//!   `name.family`).
//!
//! Invariants: resolution never panics; an error carries a kind, a char offset and length into
//! the path text, and the names that would have been valid there (the compiler picks a
//! did-you-mean from them). Error messages quote only the path text, never data values.
//! The PHI class of a path is that of its outermost classified element since the start or the
//! last `resolve()` (see `data/phi.txt`).

use std::fmt;

use sluice_spec_core::{PhiClass, ValueType};

use crate::schema::{Binding, ElementDef, Kind, Max, Schema, TypeRef, value_type};

/// Functions a path may call.
pub const FUNCTIONS: [&str; 5] = ["as", "ofType", "resolve", "first", "last"];

/// What went wrong in a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathErrorKind {
    /// Not a path: unexpected character, unclosed bracket, missing name.
    Syntax,
    /// The root (or an `as()` argument) is not a FHIR R4 type.
    UnknownType,
    /// The type or element has no child of that name.
    UnknownElement,
    /// `[n]` on an element whose max is 1 (or on something that is not an element).
    NotRepeating,
    /// A member of a choice element (`value[x]`) before picking its type.
    ChoiceNeedsType,
    /// A member of "any resource" before picking one with `as()` / `ofType()`.
    ResourceNeedsType,
    /// `as(T)` / `ofType(T)` where the value cannot be a `T`.
    TypeNotAllowed,
    /// `resolve()` on something that is not a Reference.
    NotReference,
    /// A primitive value (`Patient.id`) has no children.
    NoChildren,
    /// A function other than [`FUNCTIONS`], or one called with the wrong arguments.
    UnknownFunction,
}

/// An error in a path, located in the path text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    pub kind: PathErrorKind,
    pub message: String,
    /// Char offset within the path text where it went wrong.
    pub offset: usize,
    /// Length in chars of the wrong part (at least 1).
    pub len: usize,
    /// What would have been valid at that place (element names, types or functions), in
    /// schema order: the caller picks a did-you-mean.
    pub candidates: Vec<String>,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.offset)
    }
}

impl std::error::Error for PathError {}

/// What a path resolves to.
#[derive(Clone, Debug)]
pub struct Resolved<'s> {
    /// The elements the path ends at: usually one; several after `resolve()` when more than
    /// one target type defines the name; none when it ends at a type (`Patient`,
    /// `subject.resolve()`).
    pub elements: Vec<&'s ElementDef>,
    /// The FHIR types the value may have (`["HumanName"]`, `["Quantity"]` after `as()`,
    /// every type of an unpicked choice).
    pub types: Vec<String>,
    /// An unpicked choice: `types` lists its types.
    pub is_choice: bool,
    /// The path yields a list: some repeating element on it was neither indexed nor followed
    /// by `first()`/`last()`.
    pub many: bool,
    /// PHI class: the outermost classified element since the start or the last `resolve()`.
    pub phi: Option<PhiClass>,
    /// The binding of the element the path ends at (when it is one element).
    pub binding: Option<&'s Binding>,
    /// The codes of that binding when it is required and the source enumerates them.
    pub required_codes: Option<&'s [String]>,
    schema: &'s Schema,
    focus: Focus<'s>,
    /// The path as resolved so far, for messages of [`Self::then`].
    described: String,
}

impl<'s> Resolved<'s> {
    /// Resolves `path` from where this one ended: `schema.resolve("Patient.contact")?` then
    /// `.then("name.family")`, as a mapping iterating over contacts would. Error offsets are
    /// into `path`.
    pub fn then(&self, path: &str) -> Result<Resolved<'s>, PathError> {
        let steps = parse(path)?;
        self.schema.walk(self.focus.clone(), &steps, &self.described)
    }

    /// The element the path ends at, when there is exactly one.
    pub fn element(&self) -> Option<&ElementDef> {
        match self.elements.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The Sluice value type: the scalar of a primitive, `struct` for complex types, `any`
    /// when several types are possible; `list<...>` when [`Self::many`].
    pub fn value_type(&self) -> ValueType {
        let mut kinds = self.types.iter().map(|t| value_type(t));
        let first = kinds.next().unwrap_or(ValueType::Any);
        let single = if kinds.all(|k| k == first) { first } else { ValueType::Any };
        if self.many { ValueType::List(Box::new(single)) } else { single }
    }
}

impl Schema {
    /// Resolves a path that starts with a type name: `Patient.name[0].family`.
    pub fn resolve(&self, path: &str) -> Result<Resolved<'_>, PathError> {
        let steps = parse(path)?;
        let Some((Step { kind: StepKind::Member { name, explicit_choice: false }, offset, len, .. }, rest)) =
            steps.split_first()
        else {
            return Err(err(PathErrorKind::Syntax, "a path starts with a type name, such as `Patient`", 0, 1, vec![]));
        };
        let root = self.type_def(name).ok_or_else(|| {
            err(
                PathErrorKind::UnknownType,
                &format!("FHIR R4 has no type `{name}`"),
                *offset,
                *len,
                self.types().filter(|t| t.kind != Kind::Primitive).map(|t| t.name.clone()).collect(),
            )
        })?;
        self.walk(Focus::root(&root.name), rest, &root.name)
    }

    /// Resolves a path relative to a type: `subject.resolve().birthDate` in `Observation`.
    pub fn resolve_in(&self, context_type: &str, path: &str) -> Result<Resolved<'_>, PathError> {
        if self.type_def(context_type).is_none() {
            return Err(err(
                PathErrorKind::UnknownType,
                &format!("FHIR R4 has no type `{context_type}`"),
                0,
                1,
                vec![],
            ));
        }
        let steps = parse(path)?;
        self.walk(Focus::root(context_type), &steps, context_type)
    }

    fn walk<'s>(&'s self, mut focus: Focus<'s>, steps: &[Step], start: &str) -> Result<Resolved<'s>, PathError> {
        let mut described = start.to_string();
        for step in steps {
            focus = match &step.kind {
                StepKind::Member { name, explicit_choice } => {
                    self.member(focus, name, *explicit_choice, step, &described)?
                }
                StepKind::Index(_) => index(focus, step, &described)?,
                StepKind::Call { name, arg } => self.call(focus, name, arg.as_ref(), step, &described)?,
            };
            described = step.describe(&described);
        }
        Ok(self.finish(focus, described))
    }

    fn member<'s>(
        &'s self,
        focus: Focus<'s>,
        name: &str,
        explicit_choice: bool,
        step: &Step,
        described: &str,
    ) -> Result<Focus<'s>, PathError> {
        if focus.mode == Mode::Choice {
            let types: Vec<String> = focus.cands.iter().map(|c| c.type_name.clone()).collect();
            return Err(err(
                PathErrorKind::ChoiceNeedsType,
                &format!(
                    "`{described}` is a choice of {}: pick one with `.as({})` before `.{name}`",
                    types.join(", "),
                    types[0]
                ),
                step.offset,
                step.len,
                types.iter().map(|t| format!("as({t})")).collect(),
            ));
        }
        let mut matches: Vec<(&ElementDef, Option<&TypeRef>)> = Vec::new();
        for cand in &focus.cands {
            if let Some(found) = self.child(&cand.children_of, name, explicit_choice)
                && !matches.iter().any(|(e, _)| std::ptr::eq(*e, found.0))
            {
                matches.push(found);
            }
        }
        if matches.is_empty() {
            return Err(self.no_member(&focus, name, step, described));
        }
        let mut next = Focus {
            cands: Vec::new(),
            mode: if matches.len() > 1 { Mode::Union } else { Mode::Plain },
            elements: Vec::new(),
            many_before: focus.many_before || focus.step_many,
            step_many: false,
            phi: focus.phi,
            indexable: true,
        };
        for (element, picked) in matches {
            next.step_many |= element.is_list();
            next.phi = next.phi.or(element.phi);
            next.elements.push(element);
            let (types, children_path) = match &element.content_reference {
                Some(target) => match self.element(target) {
                    Some(t) => (t.types.iter().collect::<Vec<_>>(), t.path.as_str()),
                    None => (Vec::new(), target.as_str()),
                },
                None => (picked.map_or_else(|| element.types.iter().collect(), |t| vec![t]), element.path.as_str()),
            };
            if element.choice && picked.is_none() && types.len() > 1 {
                next.mode = Mode::Choice;
            }
            for t in types {
                let children_of =
                    if self.has_children(children_path) { children_path.to_string() } else { t.code.clone() };
                next.cands.push(Cand { type_name: t.code.clone(), children_of, targets: t.targets.clone() });
            }
        }
        Ok(next)
    }

    /// The child `name` of a type or backbone element: by name, by `name[x]`, or by the JSON
    /// name of a choice (`valueQuantity`), which also picks the type.
    fn child(&self, parent: &str, name: &str, explicit_choice: bool) -> Option<(&ElementDef, Option<&TypeRef>)> {
        let mut children = self.children(parent);
        if explicit_choice {
            return children.find(|e| e.choice && e.name == name).map(|e| (e, None));
        }
        if let Some(e) = self.children(parent).find(|e| e.name == name) {
            return Some((e, None));
        }
        children.filter(|e| e.choice).find_map(|e| {
            let suffix = name.strip_prefix(e.name.as_str())?;
            e.types.iter().find(|t| capitalized(&t.code) == suffix).map(|t| (e, Some(t)))
        })
    }

    fn no_member(&self, focus: &Focus<'_>, name: &str, step: &Step, described: &str) -> PathError {
        let any_resource = focus.mode != Mode::Union
            && focus
                .cands
                .iter()
                .any(|c| self.type_def(&c.type_name).is_some_and(|t| t.kind == Kind::Resource && t.is_abstract));
        if any_resource {
            let having: Vec<String> = self
                .resource_types()
                .filter(|r| self.child(r, name, false).is_some())
                .map(|r| format!("as({r})"))
                .collect();
            let example = having.first().map_or("as(Patient)".to_string(), |h| h.clone());
            return err(
                PathErrorKind::ResourceNeedsType,
                &format!("`{described}` may be any resource: pick one with `.{example}` before `.{name}`"),
                step.offset,
                step.len,
                having,
            );
        }
        let names: Vec<String> = {
            let mut names: Vec<String> = Vec::new();
            for cand in &focus.cands {
                for e in self.children(&cand.children_of) {
                    if !names.contains(&e.name) {
                        names.push(e.name.clone());
                    }
                }
            }
            names
        };
        if names.is_empty() {
            return err(
                PathErrorKind::NoChildren,
                &format!("`{described}` is a primitive value: it has no `.{name}`"),
                step.offset,
                step.len,
                vec![],
            );
        }
        let types: Vec<&str> = focus.cands.iter().map(|c| c.type_name.as_str()).collect();
        let whose = if focus.cands.len() == 1 && focus.cands[0].children_of.contains('.') {
            format!("`{described}`")
        } else {
            format!("`{described}` ({})", types.join(", "))
        };
        err(PathErrorKind::UnknownElement, &format!("{whose} has no element `{name}`"), step.offset, step.len, names)
    }

    fn call<'s>(
        &'s self,
        focus: Focus<'s>,
        name: &str,
        arg: Option<&(String, usize, usize)>,
        step: &Step,
        described: &str,
    ) -> Result<Focus<'s>, PathError> {
        let wants_arg = matches!(name, "as" | "ofType");
        if !FUNCTIONS.contains(&name) {
            return Err(err(
                PathErrorKind::UnknownFunction,
                &format!("unknown function `{name}()` in an element path"),
                step.offset,
                name.chars().count(),
                FUNCTIONS.iter().map(|f| f.to_string()).collect(),
            ));
        }
        if wants_arg != arg.is_some() {
            let usage = if wants_arg { format!("`{name}(Type)`") } else { format!("`{name}()`") };
            return Err(err(PathErrorKind::UnknownFunction, &format!("write {usage}"), step.offset, step.len, vec![]));
        }
        match (name, arg) {
            ("as" | "ofType", Some((wanted, offset, len))) => self.narrow(focus, wanted, *offset, *len, described),
            ("resolve", _) => self.resolve_reference(focus, step, described),
            _ => Ok(Focus { many_before: false, step_many: false, indexable: false, ..focus }),
        }
    }

    fn narrow<'s>(
        &'s self,
        focus: Focus<'s>,
        wanted: &str,
        offset: usize,
        len: usize,
        described: &str,
    ) -> Result<Focus<'s>, PathError> {
        // What `as()` could have named: computed only for an error message.
        let allowed = || -> Vec<String> {
            focus
                .cands
                .iter()
                .flat_map(|c| match self.type_def(&c.type_name) {
                    Some(t) if t.kind == Kind::Resource && t.is_abstract => {
                        self.resource_types().filter(|r| self.is_a(r, &c.type_name)).map(str::to_string).collect()
                    }
                    _ => vec![c.type_name.clone()],
                })
                .collect()
        };
        if self.type_def(wanted).is_none() {
            return Err(err(
                PathErrorKind::UnknownType,
                &format!("FHIR R4 has no type `{wanted}`"),
                offset,
                len,
                allowed(),
            ));
        }
        let Some(cand) = focus.cands.iter().find(|c| self.is_a(wanted, &c.type_name)) else {
            return Err(err(
                PathErrorKind::TypeNotAllowed,
                &format!("`{described}` is never a `{wanted}`"),
                offset,
                len,
                allowed(),
            ));
        };
        let children_of = if cand.type_name == wanted { cand.children_of.clone() } else { wanted.to_string() };
        let cand = Cand { type_name: wanted.to_string(), children_of, targets: cand.targets.clone() };
        Ok(Focus { cands: vec![cand], mode: Mode::Plain, indexable: false, ..focus })
    }

    fn resolve_reference<'s>(&'s self, focus: Focus<'s>, step: &Step, described: &str) -> Result<Focus<'s>, PathError> {
        let references: Vec<&Cand> = focus.cands.iter().filter(|c| c.type_name == "Reference").collect();
        if references.is_empty() {
            let types: Vec<&str> = focus.cands.iter().map(|c| c.type_name.as_str()).collect();
            return Err(err(
                PathErrorKind::NotReference,
                &format!("`resolve()` needs a Reference; `{described}` is {}", types.join(" or ")),
                step.offset,
                step.len,
                vec![],
            ));
        }
        let mut targets: Vec<String> = Vec::new();
        for t in references.iter().flat_map(|c| c.targets.iter()) {
            if !targets.contains(t) {
                targets.push(t.clone());
            }
        }
        // `Reference` without targets, or to `Resource`: any resource.
        if targets.is_empty() || targets.iter().any(|t| t == "Resource") {
            targets = vec!["Resource".to_string()];
        }
        let cands: Vec<Cand> = targets
            .into_iter()
            .filter(|t| self.type_def(t).is_some())
            .map(|t| Cand { children_of: t.clone(), type_name: t, targets: Vec::new() })
            .collect();
        Ok(Focus {
            mode: if cands.len() > 1 { Mode::Union } else { Mode::Plain },
            cands,
            elements: Vec::new(),
            many_before: focus.many_before || focus.step_many,
            step_many: false,
            phi: None,
            indexable: false,
        })
    }

    fn finish<'s>(&'s self, focus: Focus<'s>, described: String) -> Resolved<'s> {
        let mut types: Vec<String> = Vec::new();
        for c in &focus.cands {
            if !types.contains(&c.type_name) {
                types.push(c.type_name.clone());
            }
        }
        let binding = match focus.elements.as_slice() {
            [one] => one.binding.as_ref(),
            _ => None,
        };
        let required_codes = binding
            .filter(|b| b.strength == crate::schema::BindingStrength::Required)
            .and_then(|b| self.value_set_codes(&b.value_set));
        Resolved {
            elements: focus.elements.clone(),
            types,
            is_choice: focus.mode == Mode::Choice,
            many: focus.many_before || focus.step_many,
            phi: focus.phi,
            binding,
            required_codes,
            schema: self,
            focus,
            described,
        }
    }
}

/// `[n]` on the element just reached.
fn index<'s>(focus: Focus<'s>, step: &Step, described: &str) -> Result<Focus<'s>, PathError> {
    if !focus.indexable || focus.elements.is_empty() {
        return Err(err(
            PathErrorKind::NotRepeating,
            &format!("`[n]` follows a repeating element, not `{described}`"),
            step.offset,
            step.len,
            vec![],
        ));
    }
    if !focus.step_many {
        let e = focus.elements[0];
        let max = match e.max {
            Max::N(n) => n.to_string(),
            Max::Many => "*".to_string(),
        };
        return Err(err(
            PathErrorKind::NotRepeating,
            &format!("`{described}` is not repeating ({}..{max}): remove `{}`", e.min, step.text),
            step.offset,
            step.len,
            vec![],
        ));
    }
    Ok(Focus { step_many: false, indexable: false, ..focus })
}

/// `Quantity` -> `Quantity`, `dateTime` -> `DateTime`: the suffix of a choice's JSON name.
fn capitalized(type_name: &str) -> String {
    let mut chars = type_name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn err(kind: PathErrorKind, message: &str, offset: usize, len: usize, candidates: Vec<String>) -> PathError {
    PathError { kind, message: message.to_string(), offset, len: len.max(1), candidates }
}

// ------------------------------------------------------------------------------------------
// Resolution state.

/// One type the value may have, and where its children are listed: the type's name, or the
/// path of a backbone element (`Patient.contact`) whose children are inline.
#[derive(Clone, Debug)]
struct Cand {
    type_name: String,
    children_of: String,
    /// Targets when the type is `Reference`.
    targets: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One type, or several alternatives that all define what follows.
    Plain,
    /// An unpicked choice: going further needs `as()`.
    Choice,
    /// Several possible resource types after `resolve()`: a name keeps those defining it.
    Union,
}

#[derive(Clone, Debug)]
struct Focus<'s> {
    cands: Vec<Cand>,
    mode: Mode,
    /// The elements just reached (empty at a type).
    elements: Vec<&'s ElementDef>,
    /// A list was produced before the current step.
    many_before: bool,
    /// The current step is a repeating element (not yet indexed).
    step_many: bool,
    phi: Option<PhiClass>,
    /// `[n]` may follow (the last step was an element name).
    indexable: bool,
}

impl Focus<'_> {
    fn root(type_name: &str) -> Focus<'static> {
        Focus {
            cands: vec![Cand { type_name: type_name.to_string(), children_of: type_name.to_string(), targets: vec![] }],
            mode: Mode::Plain,
            elements: Vec::new(),
            many_before: false,
            step_many: false,
            phi: None,
            indexable: false,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Parsing.

#[derive(Clone, Debug, PartialEq, Eq)]
enum StepKind {
    Member {
        name: String,
        explicit_choice: bool,
    },
    Index(usize),
    /// A function call; the argument is `(type name, char offset, char len)`.
    Call {
        name: String,
        arg: Option<(String, usize, usize)>,
    },
}

#[derive(Clone, Debug)]
struct Step {
    kind: StepKind,
    offset: usize,
    len: usize,
    /// The step as written (for messages).
    text: String,
}

impl Step {
    /// The path so far, for messages: `Patient.name` + `[0]`.
    fn describe(&self, before: &str) -> String {
        match self.kind {
            StepKind::Index(_) => format!("{before}{}", self.text),
            _ => format!("{before}.{}", self.text),
        }
    }
}

fn parse(path: &str) -> Result<Vec<Step>, PathError> {
    let chars: Vec<char> = path.chars().collect();
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();
    let ident = |pos: usize| {
        let mut end = pos;
        while end < chars.len() && (chars[end].is_ascii_alphanumeric() || chars[end] == '_') {
            end += 1;
        }
        let starts_well = chars.get(pos).is_some_and(|c| c.is_ascii_alphabetic() || *c == '_');
        if starts_well { Some(end) } else { None }
    };
    let mut steps = Vec::new();
    let mut pos = 0;
    let mut expect_name = true;
    while pos < chars.len() || expect_name {
        if expect_name {
            let Some(end) = ident(pos) else {
                let what =
                    if pos >= chars.len() { "expected an element name at the end" } else { "expected an element name" };
                return Err(err(PathErrorKind::Syntax, what, pos, 1, vec![]));
            };
            let name = text(pos, end);
            if chars.get(end) == Some(&'(') {
                let close = chars[end..]
                    .iter()
                    .position(|c| *c == ')')
                    .map(|i| end + i)
                    .ok_or_else(|| err(PathErrorKind::Syntax, "unclosed `(`", end, 1, vec![]))?;
                let inner_start = end + 1;
                let raw = text(inner_start, close);
                let trimmed = raw.trim();
                let arg = if trimmed.is_empty() {
                    None
                } else {
                    let lead = raw.chars().take_while(|c| c.is_whitespace()).count();
                    let start = inner_start + lead;
                    if ident(start) != Some(start + trimmed.chars().count()) {
                        return Err(err(
                            PathErrorKind::Syntax,
                            "expected a type name as the argument",
                            start,
                            trimmed.chars().count(),
                            vec![],
                        ));
                    }
                    Some((trimmed.to_string(), start, trimmed.chars().count()))
                };
                steps.push(Step {
                    kind: StepKind::Call { name, arg },
                    offset: pos,
                    len: close + 1 - pos,
                    text: text(pos, close + 1),
                });
                pos = close + 1;
            } else if chars.get(end) == Some(&'[')
                && chars.get(end + 1) == Some(&'x')
                && chars.get(end + 2) == Some(&']')
            {
                steps.push(Step {
                    kind: StepKind::Member { name, explicit_choice: true },
                    offset: pos,
                    len: end + 3 - pos,
                    text: text(pos, end + 3),
                });
                pos = end + 3;
            } else {
                steps.push(Step {
                    kind: StepKind::Member { name: name.clone(), explicit_choice: false },
                    offset: pos,
                    len: end - pos,
                    text: name,
                });
                pos = end;
            }
            expect_name = false;
            continue;
        }
        match chars[pos] {
            '.' => {
                pos += 1;
                expect_name = true;
            }
            '[' => {
                let close = chars[pos..].iter().position(|c| *c == ']').map(|i| pos + i);
                let Some(close) = close else {
                    return Err(err(PathErrorKind::Syntax, "unclosed `[`", pos, 1, vec![]));
                };
                let inner = text(pos + 1, close);
                let n = inner.parse::<usize>().ok().filter(|_| inner == "0" || !inner.starts_with('0'));
                let Some(n) = n else {
                    return Err(err(
                        PathErrorKind::Syntax,
                        "expected a 0-based index such as `[0]`",
                        pos,
                        close + 1 - pos,
                        vec![],
                    ));
                };
                steps.push(Step {
                    kind: StepKind::Index(n),
                    offset: pos,
                    len: close + 1 - pos,
                    text: text(pos, close + 1),
                });
                pos = close + 1;
            }
            _ => return Err(err(PathErrorKind::Syntax, "expected `.` or `[`", pos, 1, vec![])),
        }
    }
    Ok(steps)
}
