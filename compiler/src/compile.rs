//! The driver: load spec files, resolve the files they reference, check every component in
//! graph order, prove the PHI flow, and assemble the [`Plan`].
//!
//! Invariants:
//! - Every file is loaded and checked once per compilation, however many specs refer to it,
//!   so each problem is reported once.
//! - Every pass runs even when an earlier one found errors; a plan is returned only when there
//!   are no errors.
//! - Paths in plans are normalized lexically and relative to the working directory, so a plan
//!   does not depend on where the repository is checked out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use sluice_canonical::OutputSchema;
use sluice_hl7v2::schema::Version;
use sluice_spec_core::{PhiClass, ValueType};

use crate::codes;
use crate::diagnostics::{Diagnostic, Diagnostics, Severity, did_you_mean};
use crate::expr::check::{self, Env, Scope};
use crate::hl7::Hl7Env;
use crate::plan::connection::ConnectionPlan;
use crate::plan::{
    Component, ComponentKind, DlqTarget, FileTarget, FilterPlan, HttpSinkPlan, InputRef, MapPlan, MaskAction, MaskPlan,
    MatrixRow, MllpPlan, PLAN_FORMAT, Plan, ProfilePlan, RoutePlan, SinkPlan, SourcePlan, StateTarget, TlsPlan,
    ValidatePlan,
};
use crate::source::{FileId, SourceFile, SourceMap, Span, display_path, normalize};
use crate::spec::mapping::{self, Mapping};
use crate::spec::masking::{self, Policy};
use crate::spec::overlay;
use crate::spec::pack;
use crate::spec::pipeline::{self, Body, ComponentSpec, Section};
use crate::spec::profile;
use crate::spec::reader::{Cx, Spanned};
use crate::spec::rules::{self, Rules};
use crate::spec::test::{self as test_spec, Target, TestFile};
use crate::spec::{SchemaRef, kind_of};
use crate::yaml::{self, Node};

/// The schema of the records flowing out of a component.
#[derive(Clone, Copy, Debug)]
enum Flow {
    Hl7(Version),
    /// FHIR R4 resources from a `format: fhir` source: of one type when the source reads one.
    Fhir(Option<&'static str>),
    /// X12 transaction sets from a `format: x12` source (envelope context and segments).
    X12,
    /// Stripe objects from a `stripe` source: of one type when the source reads one list.
    Stripe(Option<&'static str>),
    /// QuickBooks entities from a `quickbooks` source: of one entity when the source reads one.
    QuickBooks(Option<&'static str>),
    /// Plaid objects from a `plaid` source: of one object when the source reads one table.
    Plaid(Option<&'static str>),
    Output(&'static OutputSchema),
    /// Upstream had errors: checks that depend on the schema are skipped.
    Unknown,
}

impl Flow {
    fn name(&self) -> String {
        match self {
            Flow::Hl7(v) => format!("hl7v2/{v}"),
            Flow::Fhir(Some(t)) => format!("{}/{t}", crate::fhir::SCHEMA),
            Flow::Fhir(None) => crate::fhir::SCHEMA.to_string(),
            Flow::X12 => crate::x12::SCHEMA.to_string(),
            Flow::Stripe(Some(o)) => format!("{}{o}", crate::stripe::SCHEMA_PREFIX),
            Flow::Stripe(None) => "stripe objects of several types".to_string(),
            Flow::QuickBooks(Some(e)) => format!("{}{e}", crate::quickbooks::SCHEMA_PREFIX),
            Flow::QuickBooks(None) => "quickbooks entities of several kinds".to_string(),
            Flow::Plaid(Some(o)) => format!("{}{o}", crate::plaid::SCHEMA_PREFIX),
            Flow::Plaid(None) => "plaid objects of several kinds".to_string(),
            Flow::Output(o) => o.name.to_string(),
            Flow::Unknown => "unknown".into(),
        }
    }
}

/// PHI reaching a point of the graph: (output field, class) -> the masking decision so far.
type PhiState = BTreeMap<(String, PhiClass), Option<Decision>>;

#[derive(Clone, Debug, PartialEq)]
struct Decision {
    action: MaskAction,
    decided_at: String,
    /// The sink audience (a role) whose policy decided, for the matrix.
    audience: Option<String>,
}

/// Where an unmasked flow started, for the SL601 help.
#[derive(Clone, Debug, Default)]
struct Origins(BTreeMap<(String, PhiClass), String>);

/// All files of one compilation and the results of checking them.
#[derive(Default)]
pub struct Compiler {
    pub sources: SourceMap,
    pub diags: Diagnostics,
    trees: Vec<Option<Node>>,
    kinds: HashMap<FileId, Option<String>>,
    profiles: HashMap<FileId, Option<ProfilePlan>>,
    x12_profiles: HashMap<FileId, Option<crate::plan::X12PartnersPlan>>,
    rules: HashMap<FileId, Option<Rules>>,
    policies: HashMap<FileId, Option<Policy>>,
    mappings: HashMap<FileId, Option<Mapping>>,
    plans: HashMap<FileId, Option<Plan>>,
    tests: HashMap<FileId, Option<(TestFile, Plan)>>,
    /// The environment to compile for (`--env`): mask stages apply its policy, where they name
    /// one, instead of their own.
    pub env: Option<String>,
    /// Per mapping (overlays merged): where each output field is set and what it overrides.
    provenance: HashMap<FileId, Vec<overlay::Provenance>>,
    /// `phi_proof: lenient` of the pipeline being compiled (where it is written): SL601 is then
    /// a warning, and the matrix shows the field kept in clear, decided there.
    phi_lenient: Option<String>,
}

/// What `sluice check` found.
pub struct CheckReport {
    pub files: Vec<String>,
    pub pipelines: usize,
}

impl Compiler {
    /// Loads a file named on the command line.
    pub fn load_root(&mut self, path: &Path) -> Result<FileId, String> {
        let path = absolute(path);
        if let Some(id) = self.sources.find(&path) {
            return Ok(id);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", display_path(&path)))?;
        Ok(self.add_file(&path, text))
    }

    fn add_file(&mut self, path: &Path, text: String) -> FileId {
        let id = self.sources.add(SourceFile::new(path, text));
        let tree = yaml::parse(id, self.sources.get(id), &mut self.diags);
        if let Some(root) = &tree {
            let mut found = Vec::new();
            crate::spec::secret_scan::scan(root, &mut found);
            found.into_iter().for_each(|d| self.diags.push(d));
        }
        self.trees.push(tree);
        id
    }

    /// Loads a file referenced from a spec, relative to the referring file; SL102 at `from`.
    fn load_ref(&mut self, from: &Spanned) -> Option<FileId> {
        let path = self.resolve(from);
        if let Some(id) = self.sources.find(&path) {
            return Some(id);
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => Some(self.add_file(&path, text)),
            Err(e) => {
                let reason = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_string(),
                    _ => e.to_string(),
                };
                self.diags.push(
                    Diagnostic::error(codes::FILE_NOT_FOUND, format!("cannot read `{}`: {reason}", from.text))
                        .label(from.span, format!("resolved to {}", display_path(&path)))
                        .help("paths are relative to the directory of the file that names them"),
                );
                None
            }
        }
    }

    /// A path written in a spec, resolved against the spec's directory.
    fn resolve(&self, from: &Spanned) -> PathBuf {
        let base = self.sources.get(from.span.file).path.parent().map(Path::to_path_buf).unwrap_or_default();
        normalize(&base.join(&from.text))
    }

    /// A secret reference as the plan keeps it: a `${file:...}` path is a path like any other,
    /// resolved against the spec's directory; `${VAR}` is kept as written.
    fn secret_reference(&self, key: &Spanned) -> String {
        match key.text.strip_prefix("${file:").and_then(|r| r.strip_suffix('}')) {
            Some(path) => {
                let at = Spanned { text: path.to_string(), span: key.span };
                format!("${{file:{}}}", display_path(&self.resolve(&at)))
            }
            None => key.text.clone(),
        }
    }

    fn cx(&mut self, file: FileId) -> (Cx<'_>, Option<&Node>) {
        (Cx { sources: &self.sources, file, diags: &mut self.diags }, self.trees[file.0].as_ref())
    }

    fn kind(&mut self, id: FileId) -> Option<String> {
        if let Some(k) = self.kinds.get(&id) {
            return k.clone();
        }
        let (mut cx, node) = self.cx(id);
        let kind = node.and_then(|n| kind_of(&mut cx, n));
        self.kinds.insert(id, kind.clone());
        kind
    }

    /// Loads a referenced file and checks it is of `expected` kind (SL204 otherwise).
    fn load_kind(&mut self, from: &Spanned, expected: &str) -> Option<FileId> {
        let id = self.load_ref(from)?;
        let kind = self.kind(id)?;
        if kind != expected {
            self.diags.push(
                Diagnostic::error(
                    codes::WRONG_FILE_KIND,
                    format!("`{}` is a {kind} file, not a {expected} file", from.text),
                )
                .label(from.span, format!("expected `kind: {expected}`"))
                .help(format!("point this at a file with `kind: {expected}`")),
            );
            return None;
        }
        Some(id)
    }

    /// The format a profile file declares (`hl7v2` unless it says `x12`).
    fn profile_format(&mut self, id: FileId) -> &'static str {
        let (_, node) = self.cx(id);
        match node.map(crate::spec::x12_profile::format_of) {
            Some("x12") => "x12",
            _ => "hl7v2",
        }
    }

    /// SL431: the profile `from` names is of `format`, where one of `want` is needed.
    fn profile_format_mismatch(&mut self, from: &Spanned, format: &str, want: &str) {
        let what = |f: &str| if f == "x12" { "an X12 trading-partner profile" } else { "an HL7 v2 parser profile" };
        self.diags.push(
            Diagnostic::error(
                codes::X12_PROFILE_FORMAT,
                format!("`{}` is {} (`format: {format}`), not {}", from.text, what(format), what(want)),
            )
            .label(from.span, format!("expected a profile with `format: {want}`"))
            .help(format!("point this at a `kind: profile` file with `format: {want}`")),
        );
    }

    /// An HL7 v2 profile named at `from` (SL431 when it is an X12 one).
    fn hl7_profile_at(&mut self, from: &Spanned) -> Option<ProfilePlan> {
        let pid = self.load_kind(from, "profile")?;
        if self.profile_format(pid) == "x12" {
            self.profile_format_mismatch(from, "x12", "hl7v2");
            return None;
        }
        self.profile(pid)
    }

    fn profile(&mut self, id: FileId) -> Option<ProfilePlan> {
        if !self.profiles.contains_key(&id) {
            let (mut cx, node) = self.cx(id);
            let p = node.and_then(|n| profile::read(&mut cx, n));
            self.profiles.insert(id, p);
        }
        self.profiles[&id].clone()
    }

    /// An X12 trading-partner profile named at `from` (SL431 when it is an HL7 v2 one).
    fn x12_profile_at(&mut self, from: &Spanned) -> Option<crate::plan::X12PartnersPlan> {
        let pid = self.load_kind(from, "profile")?;
        if self.profile_format(pid) != "x12" {
            self.profile_format_mismatch(from, "hl7v2", "x12");
            return None;
        }
        self.x12_profile(pid)
    }

    fn x12_profile(&mut self, id: FileId) -> Option<crate::plan::X12PartnersPlan> {
        if !self.x12_profiles.contains_key(&id) {
            let (mut cx, node) = self.cx(id);
            let p = node.and_then(|n| crate::spec::x12_profile::read(&mut cx, n));
            self.x12_profiles.insert(id, p);
        }
        self.x12_profiles[&id].clone()
    }

    fn rules(&mut self, id: FileId) -> Option<&Rules> {
        if !self.rules.contains_key(&id) {
            let (mut cx, node) = self.cx(id);
            let r = node.and_then(|n| rules::read(&mut cx, n));
            self.rules.insert(id, r);
        }
        self.rules[&id].as_ref()
    }

    /// A masking policy merged over the policies it extends (each read once).
    fn policy(&mut self, id: FileId) -> Option<&Policy> {
        if !self.policies.contains_key(&id) {
            let p = self.merged_policy(id, &mut Vec::new());
            // A policy that extends none was checked as it was read (`masking::read`).
            if let Some(p) = &p
                && !p.extends.is_empty()
                && let (Some((action, at)), None) = (p.first_keyed, &p.plan.hash_key)
            {
                let action = action.as_str();
                self.diags.push(
                    Diagnostic::error(
                        codes::MASK_HASH_KEY,
                        format!("the policy uses `{action}` but neither it nor a policy it extends has a `hash_key`"),
                    )
                    .label(at, format!("`{action}` needs a key"))
                    .help("add `hash_key: ${SLUICE_MASK_KEY}` and set the variable where Sluice runs"),
                );
            }
            if let Some(p) = &p
                && !p.extends.is_empty()
                && let (Some(at), None) = (p.first_tokenize, &p.plan.vault_key)
            {
                self.diags.push(masking::vault_key_missing(at, " neither it nor a policy it extends"));
            }
            self.policies.insert(id, p);
        }
        self.policies[&id].as_ref()
    }

    /// Reads policy `id` and puts the policies it extends under it, in order. `chain` holds the
    /// policies being merged above this one, to refuse a cycle.
    fn merged_policy(&mut self, id: FileId, chain: &mut Vec<FileId>) -> Option<Policy> {
        let (mut cx, node) = self.cx(id);
        let own = node.and_then(|n| masking::read(&mut cx, n))?;
        let mut base: Option<Policy> = None;
        for reference in own.extends.clone() {
            let bid = match masking::BUILTIN.iter().find(|(name, _)| *name == reference.text) {
                Some((name, text)) => {
                    let path = PathBuf::from(format!("<built-in>/{name}.yaml"));
                    match self.sources.find(&path) {
                        Some(id) => id,
                        None => self.add_file(&path, (*text).to_string()),
                    }
                }
                None if !reference.text.contains(['/', '.']) => {
                    let names: Vec<&str> = masking::BUILTIN.iter().map(|(n, _)| *n).collect();
                    let d = Diagnostic::error(codes::INVALID_VALUE, format!("no built-in policy `{}`", reference.text))
                        .label(reference.span, "not a built-in policy nor a file path")
                        .help(format!(
                            "built-in policies: {}; a file is named by its path (`base/policy.yaml`)",
                            names.join(", ")
                        ));
                    self.diags.push(d.suggest(&reference.text, names.iter().copied()));
                    return None;
                }
                None => self.load_kind(&reference, "masking")?,
            };
            if bid == id || chain.contains(&bid) {
                self.diags.push(
                    Diagnostic::error(
                        codes::INVALID_VALUE,
                        format!("masking policies extend each other in a cycle: `{}` comes back here", reference.text),
                    )
                    .label(reference.span, "a policy that extends this one, directly or through others")
                    .help("remove this entry: a policy cannot build on itself, directly or through another"),
                );
                return None;
            }
            let next = match self.policies.get(&bid) {
                Some(done) => done.clone(),
                None => {
                    chain.push(id);
                    let p = self.merged_policy(bid, chain);
                    chain.pop();
                    self.policies.insert(bid, p.clone());
                    p
                }
            };
            let next = next?;
            base = Some(match base {
                Some(earlier) => next.over(earlier),
                None => next,
            });
        }
        Some(match base {
            Some(base) => own.over(base),
            None => own,
        })
    }

    /// A mapping's tree, laid over the mappings it extends, and where each field is set.
    fn mapping_tree(&mut self, id: FileId, chain: &mut Vec<FileId>) -> Option<(Node, Vec<overlay::Provenance>)> {
        let tree = self.trees[id.0].clone()?;
        let Some((base, span)) = overlay::extends_of(&tree) else {
            let provenance = overlay::provenance(&tree);
            return Some((tree, provenance));
        };
        let bid = self.load_kind(&Spanned { text: base.clone(), span }, "mapping")?;
        if bid == id || chain.contains(&bid) {
            self.diags.push(
                Diagnostic::error(
                    codes::INVALID_VALUE,
                    format!("mappings extend each other in a cycle: `{base}` comes back here"),
                )
                .label(span, "a mapping that extends this one, directly or through others")
                .help("a mapping cannot build on itself: point `extends` at the base mapping"),
            );
            return None;
        }
        chain.push(id);
        let merged_base = self.mapping_tree(bid, chain);
        chain.pop();
        let (base_tree, base_provenance) = merged_base?;
        Some(overlay::overlay(&base_tree, &base_provenance, &tree))
    }

    /// Where output field `field` of each loaded mapping is set, and what it overrides:
    /// `(mapping file, [place, overridden place, ...])` (`sluice plan --explain`).
    pub fn explain(&self, field: &str) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = self
            .provenance
            .iter()
            .filter_map(|(id, fields)| {
                let p = fields.iter().find(|p| p.field == field)?;
                Some((self.sources.get(*id).name.clone(), p.chain.iter().map(|s| self.sources.location(*s)).collect()))
            })
            .collect();
        out.sort();
        out
    }

    fn mapping(&mut self, id: FileId) -> Option<&Mapping> {
        if !self.mappings.contains_key(&id) {
            let Some((tree, provenance)) = self.mapping_tree(id, &mut Vec::new()) else {
                self.mappings.insert(id, None);
                return None;
            };
            self.provenance.insert(id, provenance);
            let profile_ref = mapping::profile_ref(&tree);
            // An X12 mapping's profile is a trading-partner profile (a partner's copy of the
            // guide); an HL7 v2 mapping's, a parser profile (its Z-segments).
            let (z, x12) = match profile_ref {
                Some((text, span)) if mapping::input_is_x12(&tree) => {
                    let r = Spanned { text, span };
                    (vec![], Some(self.x12_profile_at(&r)))
                }
                Some((text, span)) => {
                    let r = Spanned { text, span };
                    (self.hl7_profile_at(&r).map(|p| p.z_segments).unwrap_or_default(), None)
                }
                None => (vec![], None),
            };
            let x12 = match &x12 {
                None => mapping::X12Profile::None,
                Some(None) => mapping::X12Profile::Failed,
                Some(Some(p)) => mapping::X12Profile::Loaded(p),
            };
            let mut cx = Cx { sources: &self.sources, file: id, diags: &mut self.diags };
            let m = mapping::read(&mut cx, &tree, &z, x12);
            self.mappings.insert(id, m);
        }
        self.mappings[&id].as_ref()
    }

    /// Checks one file of any kind; pipelines are compiled in full.
    pub fn check_file(&mut self, id: FileId) {
        match self.kind(id).as_deref() {
            Some("pipeline") => {
                self.pipeline(id);
            }
            Some("mapping") => {
                self.mapping(id);
            }
            Some("profile") => {
                if self.profile_format(id) == "x12" {
                    self.x12_profile(id);
                } else {
                    self.profile(id);
                }
            }
            Some("rules") => {
                self.rules(id);
            }
            Some("masking") => {
                self.policy(id);
            }
            Some("test") => {
                self.test_file(id);
            }
            Some("pack") => self.check_pack(id),
            Some("reconciliation") => {
                self.reconciliation_of(id);
            }
            _ => {}
        }
    }

    /// Reads a `kind: reconciliation` file (`crate::spec::reconcile`), its paths resolved
    /// against the file's folder.
    fn reconciliation_of(&mut self, id: FileId) -> Option<crate::spec::reconcile::ReconcilePlan> {
        let tree = self.trees[id.0].clone()?;
        let mut cx = Cx { sources: &self.sources, file: id, diags: &mut self.diags };
        let mut plan = crate::spec::reconcile::read(&mut cx, &tree)?.plan;
        // Shown like sink paths: relative to the working directory when inside it.
        let at = |text: &str| {
            let base = self.sources.get(id).path.parent().map(Path::to_path_buf).unwrap_or_default();
            display_path(&base.join(text))
        };
        for input in &mut plan.inputs {
            input.paths = input.paths.iter().map(|p| at(p)).collect();
        }
        plan.matched = at(&plan.matched);
        plan.review = at(&plan.review);
        plan.summary = at(&plan.summary);
        if let Some(st) = &mut plan.statements {
            st.accounts = at(&st.accounts);
            st.path = at(&st.path);
            st.unassigned = at(&st.unassigned);
        }
        Some(plan)
    }

    /// The `kind` of the file at `path` (`pipeline`, `reconciliation`...), when it can be read.
    pub fn file_kind(&mut self, path: &Path) -> Option<String> {
        let id = self.load_root(path).ok()?;
        self.kind(id)
    }

    /// `sluice reconcile`: the checked plan of a reconciliation file, or None when it has
    /// errors (they are in `diags`).
    pub fn reconciliation(&mut self, path: &Path) -> Result<Option<crate::spec::reconcile::ReconcilePlan>, String> {
        let id = self.load_root(path)?;
        if self.kind(id).as_deref() != Some("reconciliation") && !self.diags.has_errors() {
            return Err(format!("{} is not a reconciliation (it has no `kind: reconciliation`)", display_path(path)));
        }
        let plan = self.reconciliation_of(id);
        self.diags.sort(&self.sources);
        Ok(if self.diags.has_errors() { None } else { plan })
    }

    /// A pack manifest, and the pack's mappings against it: each reads and writes schemas the
    /// manifest lists (SL209) and extends only mappings of the pack or its base packs (SL210).
    fn check_pack(&mut self, id: FileId) {
        let (mut cx, node) = self.cx(id);
        let Some(manifest) = node.and_then(|n| pack::read(&mut cx, n)) else { return };
        let Some(root) = self.sources.get(id).path.parent().map(Path::to_path_buf) else { return };
        // This pack's folder and its base packs' folders, following `extends`.
        let mut allowed = vec![root.clone()];
        let mut next = manifest.extends.clone();
        while let Some(reference) = next.take() {
            let dir = self.resolve(&reference);
            let Some(bid) = self
                .load_kind(&Spanned { text: format!("{}/pack.yaml", reference.text), span: reference.span }, "pack")
            else {
                break;
            };
            if allowed.contains(&dir) {
                break;
            }
            allowed.push(dir);
            next = self.trees[bid.0].as_ref().and_then(pack::extends_of);
        }
        let declared: Vec<&str> = manifest.schemas.iter().map(|s| s.text.as_str()).collect();
        let Ok(files) = collect_specs(std::slice::from_ref(&root)) else { return };
        for path in files {
            // Files of a pack nested in this one belong to that pack.
            let nested = path.ancestors().skip(1).take_while(|d| *d != root).any(|d| d.join("pack.yaml").is_file());
            if nested || path.file_name().is_some_and(|f| f == "pack.yaml") {
                continue;
            }
            let Ok(fid) = self.load_root(&path) else { continue };
            if self.kind(fid).as_deref() != Some("mapping") {
                continue;
            }
            let tree = self.trees[fid.0].clone();
            if let Some((base, span)) = tree.as_ref().and_then(overlay::extends_of) {
                let target = self.resolve(&Spanned { text: base.clone(), span });
                if !allowed.iter().any(|a| target.starts_with(a)) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::PACK_BOUNDARY,
                            format!("`{base}` is outside pack `{}` and the packs it builds on", manifest.name),
                        )
                        .label(span, "extends a mapping of another pack")
                        .help("extend the base pack's mapping, or add the pack this one builds on as `extends` in pack.yaml"),
                    );
                }
            }
            let Some(m) = self.mapping(fid) else { continue };
            let (input, output) = (m.plan.input_schema.clone(), m.plan.output_schema.clone());
            for (key, schema) in [("input", input), ("output", output)] {
                if schema.is_empty() || declared.contains(&schema.as_str()) {
                    continue;
                }
                let at =
                    tree.as_ref().map_or(Span { file: fid, start: 0, end: 0 }, |t| key_span(t, key).unwrap_or(t.span));
                self.diags.push(
                    Diagnostic::error(
                        codes::PACK_SCHEMA_UNDECLARED,
                        format!("this mapping's {key} is `{schema}`, which pack `{}` does not list", manifest.name),
                    )
                    .label(at, format!("{key} schema not in the pack's `schemas`"))
                    .help(format!(
                        "add `{schema}` to `schemas` in the pack's pack.yaml, or move this mapping to its pack"
                    )),
                );
            }
        }
    }

    /// `sluice check PATHS`: every `.yaml`/`.yml` file under the paths, sorted.
    pub fn check_paths(&mut self, paths: &[PathBuf]) -> Result<CheckReport, String> {
        let files = collect_specs(paths)?;
        let mut pipelines = 0;
        for f in &files {
            let id = self.load_root(f)?;
            if self.kind(id).as_deref() == Some("pipeline") {
                pipelines += 1;
            }
            self.check_file(id);
        }
        self.diags.sort(&self.sources);
        Ok(CheckReport { files: files.iter().map(|f| display_path(f)).collect(), pipelines })
    }

    /// Loads one parser profile file (`sluice validate --profile`); None when it has errors
    /// (they are in `diags`).
    pub fn load_profile(&mut self, path: &Path) -> Result<Option<ProfilePlan>, String> {
        let id = self.load_root(path)?;
        if self.kind(id).as_deref() != Some("profile") && !self.diags.has_errors() {
            return Err(format!("{} is not a profile (it has no `kind: profile`)", display_path(path)));
        }
        if self.profile_format(id) == "x12" {
            return Err(format!(
                "{} is an X12 trading-partner profile (`format: x12`); use it with `--format x12`",
                display_path(path)
            ));
        }
        let p = self.profile(id);
        Ok(p.filter(|_| !self.diags.has_errors()))
    }

    /// Loads one X12 trading-partner profile file (`sluice validate --format x12 --profile`);
    /// None when it has errors (they are in `diags`).
    pub fn load_x12_profile(&mut self, path: &Path) -> Result<Option<crate::plan::X12PartnersPlan>, String> {
        let id = self.load_root(path)?;
        if self.kind(id).as_deref() != Some("profile") && !self.diags.has_errors() {
            return Err(format!("{} is not a profile (it has no `kind: profile`)", display_path(path)));
        }
        if self.profile_format(id) != "x12" && !self.diags.has_errors() {
            return Err(format!(
                "{} is an HL7 v2 parser profile; `--format x12` needs one with `format: x12` (trading partners)",
                display_path(path)
            ));
        }
        let p = self.x12_profile(id);
        self.diags.sort(&self.sources);
        Ok(p.filter(|_| !self.diags.has_errors()))
    }

    /// Loads a test file and compiles what it tests (`sluice test`): the file and the plan its
    /// cases run, or None when either has errors (they are in `diags`).
    pub fn load_test(&mut self, path: &Path) -> Result<Option<(TestFile, Plan)>, String> {
        let id = self.load_root(path)?;
        if self.kind(id).as_deref() != Some("test") && !self.diags.has_errors() {
            return Err(format!("{} is not a test file (it has no `kind: test`)", display_path(path)));
        }
        let t = self.test_file(id);
        self.diags.sort(&self.sources);
        Ok(if self.diags.has_errors() { None } else { t })
    }

    /// Reads a test file, compiles its target (the pipeline, or the pipeline built around the
    /// mapping) and checks the names its cases use against it (SL803).
    fn test_file(&mut self, id: FileId) -> Option<(TestFile, Plan)> {
        if let Some(t) = self.tests.get(&id) {
            return t.clone();
        }
        let t = self.compile_test(id);
        self.tests.insert(id, t.clone());
        t
    }

    fn compile_test(&mut self, id: FileId) -> Option<(TestFile, Plan)> {
        let tree = self.trees[id.0].clone()?;
        let file = {
            let mut cx = Cx { sources: &self.sources, file: id, diags: &mut self.diags };
            test_spec::read(&mut cx, &tree)?
        };
        let plan = match &file.target {
            Target::Pipeline(p) => {
                let pid = self.load_kind(p, "pipeline")?;
                self.pipeline(pid)?
            }
            Target::Mapping { mapping, rules, policy, profile } => {
                let mid = self.load_kind(mapping, "mapping")?;
                for (r, kind) in [(rules, "rules"), (policy, "masking"), (profile, "profile")] {
                    if let Some(r) = r {
                        self.load_kind(r, kind)?;
                    }
                }
                let abs = |s: &Spanned, this: &Self| this.resolve(s).display().to_string();
                // Without `profile`, the mapping's own `input.profile` (relative to the mapping).
                let profile = match profile {
                    Some(p) => Some(abs(p, self)),
                    None => self.trees[mid.0]
                        .as_ref()
                        .and_then(mapping::profile_ref)
                        .map(|(text, span)| abs(&Spanned { text, span }, self)),
                };
                let test_path = self.sources.get(id).path.clone();
                let stem = test_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                let virtual_path = test_path.with_file_name(format!("{stem}#pipeline"));
                let input = match self.mapping(mid) {
                    Some(m) if m.input_x12.is_some() => test_spec::MappingInput::X12,
                    Some(m) if m.input_quickbooks.is_some() => match m.input_quickbooks {
                        Some((entity, _)) => test_spec::MappingInput::QuickBooks { entity },
                        None => test_spec::MappingInput::Hl7v2,
                    },
                    Some(m) if m.input_plaid.is_some() => match m.input_plaid {
                        Some((object, _)) => test_spec::MappingInput::Plaid { object },
                        None => test_spec::MappingInput::Hl7v2,
                    },
                    Some(m) => match m.input_stripe.and_then(|(object, _)| {
                        crate::stripe::LISTS.iter().find(|(_, o)| *o == object).map(|(l, _)| *l)
                    }) {
                        Some(list) => test_spec::MappingInput::Stripe { list },
                        None => test_spec::MappingInput::Hl7v2,
                    },
                    None => test_spec::MappingInput::Hl7v2,
                };
                let text = test_spec::mapping_pipeline(
                    &format!("test of {}", mapping.text),
                    &abs(mapping, self),
                    rules.as_ref().map(|r| abs(r, self)).as_deref(),
                    policy.as_ref().map(|p| abs(p, self)).as_deref(),
                    profile.as_deref(),
                    input,
                );
                let pid = match self.sources.find(&virtual_path) {
                    Some(pid) => pid,
                    None => self.add_file(&virtual_path, text),
                };
                self.pipeline(pid)?
            }
        };
        let names = |want: &dyn Fn(&ComponentKind) -> bool| -> Vec<&str> {
            plan.components.iter().filter(|c| want(&c.kind)).map(|c| c.name.as_str()).collect()
        };
        let sinks = names(&|k| matches!(k, ComponentKind::Sink(_)));
        let sources = names(&|k| matches!(k, ComponentKind::Source(_)));
        let mut ok = true;
        for case in &file.cases {
            ok &= self.case_provenance(&plan, case);
            let unknown = case
                .expect
                .outputs
                .iter()
                .map(|(s, _)| (s, &sinks, "sink"))
                .chain(case.source.iter().map(|s| (s, &sources, "source")))
                .filter(|(s, known, _)| !known.contains(&s.text.as_str()));
            for (s, known, what) in unknown {
                ok = false;
                self.diags.push(
                    Diagnostic::error(
                        codes::UNKNOWN_TEST_SINK,
                        format!("the pipeline under test has no {what} `{}`", s.text),
                    )
                    .label(s.span, format!("not a {what} of `{}`", plan.pipeline))
                    .help(match did_you_mean(&s.text, known.iter().copied()) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => format!("its {what}s: {}", known.join(", ")),
                    }),
                );
            }
        }
        ok.then_some((file, plan))
    }

    /// SL475: a case's `input.connection` and `input.envelope` fit the source it feeds (a
    /// finance source, with the envelope names its records carry). True when they do.
    fn case_provenance(&mut self, plan: &Plan, case: &test_spec::Case) -> bool {
        if case.connection.is_none() && case.envelope.is_empty() {
            return true;
        }
        let source = plan.components.iter().find_map(|c| match &c.kind {
            ComponentKind::Source(s) if case.source.as_ref().is_none_or(|n| n.text == c.name) => Some(s),
            _ => None,
        });
        let allowed: Option<&[&str]> = match source {
            Some(s) if s.quickbooks.is_some() => Some(&[sluice_finance::QUICKBOOKS_REALM]),
            Some(s) if s.plaid.is_some() => Some(&[sluice_finance::PLAID_ITEM]),
            Some(s) if s.stripe.is_some() => Some(&[]),
            _ => None,
        };
        let mut ok = true;
        let Some(allowed) = allowed else {
            let at = case.connection.iter().map(|c| c.span).chain(case.envelope.iter().map(|(n, _)| n.span));
            for span in at {
                ok = false;
                self.diags.push(
                    Diagnostic::error(
                        codes::TEST_PROVENANCE,
                        "this case's records do not come from a `stripe`, `plaid` or `quickbooks` source",
                    )
                    .label(span, "no finance source reads them")
                    .help("remove `connection` and `envelope`: only finance records carry them"),
                );
            }
            return ok;
        };
        for (name, _) in &case.envelope {
            if allowed.contains(&name.text.as_str()) {
                continue;
            }
            ok = false;
            let d = Diagnostic::error(
                codes::TEST_PROVENANCE,
                format!("this case's records carry no envelope value `{}`", name.text),
            )
            .label(name.span, "not set by their source");
            self.diags.push(match allowed {
                [] => d.help("Stripe records carry no envelope value: give the account with `connection`"),
                _ => d.help(format!(
                    "their source sets: {}",
                    allowed.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
                )),
            });
        }
        ok
    }

    /// Compiles a pipeline file into a plan (None when there are errors).
    pub fn plan(&mut self, path: &Path) -> Result<Option<Plan>, String> {
        let id = self.load_root(path)?;
        if self.kind(id).as_deref() != Some("pipeline") && !self.diags.has_errors() {
            return Err(format!("{} is not a pipeline (it has no `kind: pipeline`)", display_path(path)));
        }
        let plan = self.pipeline(id);
        self.diags.sort(&self.sources);
        Ok(if self.diags.has_errors() { None } else { plan })
    }

    fn pipeline(&mut self, id: FileId) -> Option<Plan> {
        if let Some(p) = self.plans.get(&id) {
            return p.clone();
        }
        let plan = self.compile_pipeline(id);
        self.plans.insert(id, plan.clone());
        plan
    }

    /// The pipeline's `reconcile:` entries, each reconciliation loaded, checked and reading the
    /// files of the sinks named for its sides (SL478); refused in a pipeline whose sources
    /// never end (SL479) and where an output of the reconciliation is a file the pipeline
    /// writes (SL480). `None` when any is refused (the diagnostics say why).
    fn pipeline_reconciliations(
        &mut self,
        spec: &crate::spec::pipeline::PipelineSpec<'_>,
        plan: &Plan,
    ) -> Option<Vec<crate::plan::PipelineReconciliation>> {
        let mut ok = true;
        if let Some(live) = spec
            .components
            .iter()
            .find(|c| matches!(c.body, Body::Mllp(_) | Body::Kafka(_) | Body::Amqp(_) | Body::Webhook(_)))
        {
            for step in &spec.reconcile {
                self.diags.push(
                    Diagnostic::error(
                        codes::RECONCILE_LIVE_SOURCE,
                        format!("pipeline `{}` reads the source `{}`, which never ends", spec.name, live.name),
                    )
                    .label(step.span, "runs once the run's sources have ended")
                    .label(live.name_span, "runs until it is stopped")
                    .help(
                        "write the live feed to a jsonl sink and reconcile its file with `sluice reconcile` (on a \
                         schedule), or move the reconciliation to a pipeline of files or finance syncs",
                    ),
                );
            }
            return None;
        }
        // Files the pipeline writes, which no reconciliation output may be.
        let mut written: Vec<(String, String)> = Vec::new();
        for c in &plan.components {
            if let ComponentKind::Sink(s) = &c.kind
                && !s.path.is_empty()
            {
                written.push((s.path.clone(), format!("sink `{}`", c.name)));
            }
        }
        written.extend(plan.dlq.iter().filter(|d| d.store.is_none()).map(|d| (d.path.clone(), "the DLQ".into())));
        written.extend(plan.audit.iter().map(|a| (a.path.clone(), "the audit log".into())));
        // The sinks a side may read: jsonl sinks writing a local file (not an object URL).
        let local_jsonl: Vec<(&str, &Spanned)> = spec
            .components
            .iter()
            .filter_map(|c| match &c.body {
                Body::Jsonl { path, .. } if !crate::plan::object_store::is_url(&path.text) => {
                    Some((c.name.as_str(), path))
                }
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for step in &spec.reconcile {
            let Some(rid) = self.load_kind(&step.spec, "reconciliation") else {
                ok = false;
                continue;
            };
            let errors_before = self.diags.count(Severity::Error);
            let Some(mut rplan) = self.reconciliation_of(rid) else {
                ok = false;
                continue;
            };
            if self.diags.count(Severity::Error) > errors_before {
                ok = false;
                continue;
            }
            let mut sinks: Vec<(String, String)> = Vec::new();
            for (side, sink) in &step.inputs {
                if sinks.iter().any(|(s, name)| s == side && *name == sink.text) {
                    self.diags.push(
                        Diagnostic::error(codes::RECONCILE_SINK, format!("the `{side}` side names sink `{}` twice", sink.text))
                            .label(sink.span, "named again here")
                            .help("name each sink once: its file would be read twice and every record reviewed as its own duplicate"),
                    );
                    ok = false;
                    continue;
                }
                let jsonl = local_jsonl.iter().find(|(name, _)| *name == sink.text).map(|(_, path)| *path);
                let (Some(path), Some(input)) = (jsonl, rplan.inputs.iter_mut().find(|i| i.role == *side)) else {
                    let local: Vec<&str> = local_jsonl.iter().map(|(name, _)| *name).collect();
                    let what = match spec.components.iter().find(|c| c.name == sink.text) {
                        None => format!("pipeline `{}` has no sink `{}`", spec.name, sink.text),
                        Some(_) => format!("`{}` is not a jsonl sink writing a local file", sink.text),
                    };
                    let help = if local.is_empty() {
                        "the pipeline has no local jsonl sink: add one (`type: jsonl`, `path: out/ledger.jsonl`) fed by \
                         the records this side reconciles, and name it here"
                            .to_string()
                    } else {
                        format!("name one of the pipeline's local jsonl sinks: {}", local.join(", "))
                    };
                    self.diags.push(
                        Diagnostic::error(codes::RECONCILE_SINK, what)
                            .label(sink.span, format!("the `{side}` side of the reconciliation reads this sink's file"))
                            .help(help)
                            .suggest(&sink.text, local.iter().copied()),
                    );
                    ok = false;
                    continue;
                };
                // The side's first sink replaces the reconciliation's own `path`; more are added.
                if !sinks.iter().any(|(s, _)| s == side) {
                    input.paths.clear();
                    input.written_paths.clear();
                }
                input.paths.push(display_path(&self.resolve(path)));
                input.written_paths.push(path.text.clone());
                sinks.push((side.to_string(), sink.text.clone()));
            }
            let mut outputs = vec![&rplan.matched, &rplan.review, &rplan.summary];
            if let Some(st) = &rplan.statements {
                outputs.extend([&st.path, &st.unassigned]);
            }
            // Sink paths are shown relative to the working directory, reconciliation paths are
            // joined to their file's folder: compared as absolute paths.
            let absolute = |p: &str| normalize(&std::env::current_dir().unwrap_or_default().join(p));
            for output in outputs {
                let resolved = absolute(output.as_str());
                if let Some((_, by)) = written.iter().find(|(w, _)| absolute(w.as_str()) == resolved) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::RECONCILE_OUTPUT_OVERLAP,
                            format!(
                                "reconciliation `{}` would write {}, which {by} writes",
                                rplan.name,
                                display_path(Path::new(output.as_str()))
                            ),
                        )
                        .label(step.spec.span, "its outputs are written once the run has ended")
                        .help(
                            "give the reconciliation's `outputs` files of their own (`out/reconcile/matched.jsonl`...)",
                        ),
                    );
                    ok = false;
                }
            }
            out.push(crate::plan::PipelineReconciliation {
                spec: display_path(&self.resolve(&step.spec)),
                sinks,
                plan: rplan,
            });
        }
        ok.then_some(out)
    }

    fn compile_pipeline(&mut self, id: FileId) -> Option<Plan> {
        let tree = self.trees[id.0].clone()?;
        let spec = {
            let mut cx = Cx { sources: &self.sources, file: id, diags: &mut self.diags };
            pipeline::read(&mut cx, &tree)?
        };
        let order = self.graph(&spec)?;
        self.phi_lenient = spec.phi_lenient.map(|span| format!("{} (phi_proof: lenient)", self.sources.location(span)));
        let mut flows: HashMap<String, Flow> = HashMap::new();
        let mut phi: HashMap<String, (PhiState, Origins)> = HashMap::new();
        let mut components = Vec::new();
        let mut matrix = Vec::new();
        let mut ok = true;
        for idx in order {
            let c = &spec.components[idx];
            let mut inputs: Vec<InputRef> = c.inputs.iter().map(|i| input_ref(&i.text)).collect();
            let (mut in_flow, mut in_phi) = self.merge_inputs(c, &inputs, &flows, &phi);
            // A sink with an audience reads from the mask stage of its role's policy.
            if let Some(audience) = &c.audience {
                let Some((mask, flow, masked)) =
                    self.audience_mask(&spec.roles, c, audience, &inputs, in_flow, in_phi, &mut matrix)
                else {
                    ok = false;
                    flows.insert(c.name.clone(), Flow::Unknown);
                    phi.insert(c.name.clone(), Default::default());
                    continue;
                };
                inputs = vec![InputRef { component: mask.name.clone(), branch: None }];
                (in_flow, in_phi) = (flow, masked);
                components.push(mask);
            }
            let Some((mut kind, out_flow, out_phi)) = self.component(c, in_flow, in_phi, &mut matrix) else {
                ok = false;
                flows.insert(c.name.clone(), Flow::Unknown);
                phi.insert(c.name.clone(), Default::default());
                continue;
            };
            if let ComponentKind::Sink(sink) = &mut kind {
                sink.audience = c.audience.as_ref().map(|a| a.text.clone());
            }
            flows.insert(c.name.clone(), out_flow);
            phi.insert(c.name.clone(), out_phi);
            components.push(Component { name: c.name.clone(), inputs, emits: out_flow.name(), kind });
        }
        crate::fhir_rest::mark_deletion_columns(&mut components);
        if let Some(env) = &self.env {
            let masks: Vec<&ComponentSpec> =
                spec.components.iter().filter(|c| matches!(c.body, Body::Mask { .. })).collect();
            let known: BTreeSet<&str> = masks
                .iter()
                .filter_map(|c| match &c.body {
                    Body::Mask { environments, .. } => Some(environments.iter().map(|(n, _)| n.text.as_str())),
                    _ => None,
                })
                .flatten()
                .collect();
            if !known.contains(env.as_str()) {
                let at = masks.first().map_or(tree.span, |c| c.name_span);
                let help = if known.is_empty() {
                    "no mask stage lists `environments`: add `environments: {NAME: policy.yaml}` to them, or run without `--env`".to_string()
                } else {
                    format!("the environments are: {}", known.iter().copied().collect::<Vec<_>>().join(", "))
                };
                let d = Diagnostic::error(
                    codes::UNKNOWN_ENVIRONMENT,
                    format!("no mask stage of pipeline `{}` has a policy for environment `{env}`", spec.name),
                )
                .label(at, "would mask as in production")
                .help(help);
                self.diags.push(d.suggest(env, known.iter().copied()));
                ok = false;
            }
        }
        let target = |t: &Option<Spanned>, this: &Self| t.as_ref().map(|s| display_path(&this.resolve(s)));
        let mut plan = Plan {
            plan_format: PLAN_FORMAT,
            hash: String::new(),
            pipeline: spec.name.clone(),
            spec_file: self.sources.get(id).name.clone(),
            components,
            dlq: target(&spec.dlq, self).or_else(|| spec.dlq_store.as_ref().map(|_| String::new())).map(|path| {
                DlqTarget {
                    store: path.is_empty().then(|| "state".to_string()),
                    path,
                    encryption_key: spec.dlq_key.as_ref().map(|k| self.secret_reference(k)),
                    plaintext_reason: spec.dlq_plaintext_reason.clone(),
                }
            }),
            audit: target(&spec.audit, self).map(|path| FileTarget { path }),
            state: match (target(&spec.state, self), &spec.state_url) {
                (Some(path), _) => Some(StateTarget {
                    kind: "sqlite".into(),
                    path,
                    url: None,
                    checkpoint_every_ms: spec.checkpoint_every_ms,
                }),
                (None, Some(url)) => Some(StateTarget {
                    kind: "postgres".into(),
                    path: String::new(),
                    url: Some(self.secret_reference(url)),
                    checkpoint_every_ms: spec.checkpoint_every_ms,
                }),
                (None, None) => None,
            },
            defaults: spec.defaults.clone(),
            fail_if: spec.fail_if.clone(),
            masking_matrix: matrix,
            roles: spec.roles.iter().map(|r| self.role_plan(r)).collect(),
            retention: spec.retention.clone(),
            connections: spec
                .connections
                .iter()
                .map(|c| {
                    let reference = |r: &Option<String>| {
                        r.as_ref().map(|text| self.secret_reference(&Spanned { text: text.clone(), span: c.span }))
                    };
                    ConnectionPlan {
                        client_secret: reference(&c.plan.client_secret),
                        api_key: reference(&c.plan.api_key),
                        token_key: reference(&c.plan.token_key),
                        ..c.plan.clone()
                    }
                })
                .collect(),
            reconciliations: Vec::new(),
        };
        if !spec.reconcile.is_empty() {
            match self.pipeline_reconciliations(&spec, &plan) {
                Some(r) => plan.reconciliations = r,
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let span_of = |name: &str| spec.components.iter().find(|c| c.name == name).map_or(tree.span, |c| c.name_span);
        if !crate::x12::plan_splits(&mut self.diags, &mut plan, &span_of) {
            return None;
        }
        if !crate::x12::check_partner_sources(&mut self.diags, &plan, &span_of) {
            return None;
        }
        if plan.state.is_none()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::FhirRest(_)))
        {
            self.diags.push(
                Diagnostic::error(
                    codes::FHIR_REST_NEEDS_STATE,
                    format!("the fhir.rest source `{}` has no state store to keep its cursors", c.name),
                )
                .label(c.name_span, "syncs incrementally from the cursors it saved")
                .help("add `state: {path: out/state.db}` (or `state: {url: ${SLUICE_STATE_URL}}`) to the pipeline"),
            );
            return None;
        }
        if plan.state.is_none()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::Stripe(_)))
        {
            self.diags.push(crate::stripe::needs_state(&c.name, c.name_span));
            return None;
        }
        if plan.state.is_none()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::QuickBooks(_)))
        {
            self.diags.push(crate::quickbooks::needs_state(&c.name, c.name_span));
            return None;
        }
        if plan.state.is_none()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::Plaid(_)))
        {
            self.diags.push(crate::plaid::needs_state(&c.name, c.name_span));
            return None;
        }
        if plan.state.is_none() {
            for c in &spec.components {
                if let Body::Files { x12: Some(crate::spec::pipeline::X12Files { acks: Some(acks), .. }), .. } = &c.body
                {
                    self.diags.push(crate::x12::acks_need_state(&c.name, acks.span));
                    return None;
                }
            }
        }
        if plan.state.is_none() {
            for comp in &plan.components {
                if let ComponentKind::Mask(m) = &comp.kind
                    && m.uses(MaskAction::Tokenize)
                    && let Some(c) = spec.components.iter().find(|c| {
                        c.name == comp.name
                            || c.audience.as_ref().is_some_and(|a| comp.name == audience_stage(&c.name, &a.text))
                    })
                {
                    self.diags.push(
                        Diagnostic::error(
                            codes::TOKENIZE_NEEDS_STATE,
                            format!("mask `{}` tokenizes values, and the pipeline has no state store to keep its vault", c.name),
                        )
                        .label(c.name_span, "its policy tokenizes values")
                        .help("add `state: {path: state/sluice.db}` (or `state: {url: ...}`): the vault keeps each value, encrypted, with its token"),
                    );
                    return None;
                }
            }
        }
        if let (Some(at), Some(d)) = (spec.dlq.as_ref().or(spec.dlq_store.as_ref()), &plan.dlq)
            && d.encryption_key.is_none()
            && d.plaintext_reason.is_none()
        {
            self.diags.push(
                Diagnostic::warning(
                    codes::DLQ_UNENCRYPTED,
                    "the DLQ would keep raw messages, patient data, unencrypted",
                )
                .label(at.span, "no `encryption_key` and no `plaintext_reason`")
                .help(
                    "add `encryption_key: ${SLUICE_DLQ_KEY}` to `dlq` (32 random bytes as 64 hex digits); \
                         `sluice run` refuses to start without it (RT021) unless `plaintext_reason` says why",
                ),
            );
        }
        plan.seal();
        Some(plan)
    }

    /// Names, inputs, cycles and unused components; returns components in topological order.
    fn graph(&mut self, spec: &pipeline::PipelineSpec) -> Option<Vec<usize>> {
        let mut graph: DiGraph<usize, ()> = DiGraph::new();
        let mut index: BTreeMap<&str, NodeIndex> = BTreeMap::new();
        let mut ok = true;
        for (i, c) in spec.components.iter().enumerate() {
            if let Some(&first) = index.get(c.name.as_str()) {
                let first_span = spec.components[graph[first]].name_span;
                self.diags.push(
                    Diagnostic::error(codes::DUPLICATE_COMPONENT, format!("two components are named `{}`", c.name))
                        .label(c.name_span, "second component with this name")
                        .label(first_span, "first one")
                        .help("sources, stages and sinks share one namespace; rename one"),
                );
                ok = false;
                continue;
            }
            index.insert(&c.name, graph.add_node(i));
        }
        // Listening sources run until stopped and file sources end: a pipeline has one kind.
        let file_sources = spec.components.iter().filter(|c| matches!(c.body, Body::Files { .. })).count();
        // A listener acknowledges what every sink made durable; a Parquet sink's rows are
        // durable only at the next checkpoint (its open file is deleted by a resume).
        if let Some(listener) = spec.components.iter().find(|c| {
            matches!(
                c.body,
                Body::Mllp(_)
                    | Body::Kafka(_)
                    | Body::Amqp(_)
                    | Body::Webhook(_)
                    | Body::FhirRest(_)
                    | Body::Stripe(_)
                    | Body::QuickBooks(_)
                    | Body::Plaid(_)
            )
        }) {
            // What the source counts on the sinks for (fhir.rest and stripe syncs end, but move
            // their cursors the same way a listener acknowledges).
            let (kind, counts_on) = match listener.body {
                Body::FhirRest(_) => ("fhir.rest source", "saves its cursor once the sinks have its records"),
                Body::Stripe(_) => ("stripe source", "saves its cursors once the sinks have its records"),
                Body::QuickBooks(_) => ("quickbooks source", "saves its cursors once the sinks have its records"),
                Body::Plaid(_) => ("plaid source", "saves its cursors once the sinks have its records"),
                Body::Kafka(_) => ("kafka source", "commits its offsets once the sinks have the messages"),
                Body::Amqp(_) => ("amqp source", "acknowledges each message once the sinks have it"),
                _ => ("listening source", "acknowledges each message once the sinks have it"),
            };
            for sink in spec.components.iter().filter(|c| matches!(c.body, Body::Parquet(_))) {
                self.diags.push(
                    Diagnostic::error(
                        codes::PARQUET_AFTER_LISTENER,
                        format!("parquet sink `{}` cannot be fed by the {kind} `{}`", sink.name, listener.name),
                    )
                    .label(sink.name_span, "holds rows in an open file until a checkpoint")
                    .label(listener.name_span, counts_on)
                    .help("write the live feed to a jsonl, csv or postgres sink, and make Parquet files from it in a file pipeline"),
                );
                ok = false;
            }
            // An object sink uploads its file when a run completes: never, for a listener's
            // acknowledged messages, until it stops.
            for sink in spec.components.iter() {
                let (Body::Jsonl { path, .. } | Body::Csv { path, .. }) = &sink.body else { continue };
                if crate::plan::object_store::is_url(&path.text) {
                    self.diags.push(
                        Diagnostic::error(
                            codes::OBJECT_SINK_AFTER_LISTENER,
                            format!("sink `{}` writes to an object store and is fed by the {kind} `{}`", sink.name, listener.name),
                        )
                        .label(path.span, "uploaded when a run completes")
                        .label(listener.name_span, counts_on)
                        .help("write the live feed to a local jsonl or csv file (or postgres), and copy it to the store from a file pipeline"),
                    );
                    ok = false;
                }
            }
        }
        // A Kafka consumer runs until stopped, like a listener; it shares a pipeline only with
        // other Kafka sources (an MLLP listener's ACKs and a consumer's offsets are kept apart).
        // The same holds for AMQP consumers, whose acknowledgements are their own again.
        let count = |f: fn(&Body) -> bool| spec.components.iter().filter(|c| f(&c.body)).count();
        let mllp_sources = count(|b| matches!(b, Body::Mllp(_)));
        let kafka_sources = count(|b| matches!(b, Body::Kafka(_)));
        let amqp_sources = count(|b| matches!(b, Body::Amqp(_)));
        for c in spec.components.iter().filter(|c| matches!(c.body, Body::Kafka(_) | Body::Amqp(_))) {
            let (kind, others) = match c.body {
                Body::Kafka(_) => ("kafka", amqp_sources),
                _ => ("amqp", kafka_sources),
            };
            if file_sources + mllp_sources + others > 0 {
                self.diags.push(
                    Diagnostic::error(
                        codes::LIVE_SOURCE_NOT_ALONE,
                        format!("the {kind} source `{}` shares its pipeline with other kinds of sources", c.name),
                    )
                    .label(c.name_span, "consumes until stopped, beside other kinds of sources")
                    .help("move the other sources to a pipeline of their own"),
                );
                ok = false;
            }
        }
        ok &= self.check_webhook_sources(spec);
        for c in &spec.components {
            if let Body::FhirRest(f) = &c.body
                && let Some(d) = crate::fhir_rest::check_connection(f, &spec.connections)
            {
                self.diags.push(d);
                ok = false;
            }
        }
        for c in &spec.components {
            if let Body::Stripe(f) = &c.body
                && let Some(d) = crate::stripe::check_connection(f, &spec.connections)
            {
                self.diags.push(d);
                ok = false;
            }
        }
        for c in &spec.components {
            let has_state = spec.state.is_some() || spec.state_url.is_some();
            if let Body::QuickBooks(f) = &c.body
                && let Some(d) = crate::quickbooks::check_connection(f, &spec.connections, has_state)
                    .map(|d| d.unwrap_or_else(|| crate::quickbooks::needs_state(&c.name, c.name_span)))
            {
                self.diags.push(d);
                ok = false;
            }
        }
        for c in &spec.components {
            if let Body::Plaid(f) = &c.body
                && let Some(d) = crate::plaid::check_connection(f, &spec.connections)
            {
                self.diags.push(d);
                ok = false;
            }
        }
        // A plaid source syncs on its own run loop: only beside other plaid sources.
        let plaid_sources = spec.components.iter().filter(|c| matches!(c.body, Body::Plaid(_))).count();
        if plaid_sources > 0
            && plaid_sources < spec.components.iter().filter(|c| c.section == Section::Source).count()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::Plaid(_)))
        {
            self.diags.push(crate::plaid::not_alone(&c.name, c.name_span));
            ok = false;
        }
        // A quickbooks source syncs on its own run loop: only beside other quickbooks sources.
        let qbo_sources = spec.components.iter().filter(|c| matches!(c.body, Body::QuickBooks(_))).count();
        if qbo_sources > 0
            && qbo_sources < spec.components.iter().filter(|c| c.section == Section::Source).count()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::QuickBooks(_)))
        {
            self.diags.push(crate::quickbooks::not_alone(&c.name, c.name_span));
            ok = false;
        }
        // A stripe source syncs on its own run loop: only beside other stripe sources.
        let stripe_sources = spec.components.iter().filter(|c| matches!(c.body, Body::Stripe(_))).count();
        if stripe_sources > 0
            && stripe_sources < spec.components.iter().filter(|c| c.section == Section::Source).count()
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::Stripe(_)))
        {
            self.diags.push(crate::stripe::not_alone(&c.name, c.name_span));
            ok = false;
        }
        // A fhir.rest source syncs on its own run loop: only beside other fhir.rest sources.
        let rest_sources = spec.components.iter().filter(|c| matches!(c.body, Body::FhirRest(_))).count();
        let all_sources = spec.components.iter().filter(|c| c.section == Section::Source).count();
        if rest_sources > 0
            && rest_sources < all_sources
            && let Some(c) = spec.components.iter().find(|c| matches!(c.body, Body::FhirRest(_)))
        {
            self.diags.push(
                Diagnostic::error(
                    codes::LIVE_SOURCE_NOT_ALONE,
                    format!("the fhir.rest source `{}` shares its pipeline with other kinds of sources", c.name),
                )
                .label(c.name_span, "syncs from a FHIR server, beside sources of other kinds")
                .help("move the other sources to a pipeline of their own"),
            );
            ok = false;
        }
        let mut addresses: HashMap<&str, Span> = HashMap::new();
        for c in spec.components.iter() {
            let Body::Mllp(m) = &c.body else { continue };
            if file_sources > 0 {
                self.diags.push(
                    Diagnostic::error(
                        codes::LIVE_SOURCE_NOT_ALONE,
                        format!("the mllp source `{}` shares its pipeline with file sources", c.name),
                    )
                    .label(c.name_span, format!("listens until stopped, beside {file_sources} file source(s)"))
                    .help("move the file sources to a pipeline of their own"),
                );
                ok = false;
            }
            // Port 0 takes any free port, so two of those never clash.
            if m.listen.ends_with(":0") {
                continue;
            }
            if let Some(first) = addresses.insert(&m.listen, c.name_span) {
                self.diags.push(
                    Diagnostic::error(
                        codes::DUPLICATE_LISTEN_ADDRESS,
                        format!("two mllp sources listen on `{}`", m.listen),
                    )
                    .label(c.name_span, "second source on this address")
                    .label(first, "first one")
                    .help("give each listening source its own port"),
                );
                ok = false;
            }
        }
        let names: Vec<&str> = index.keys().copied().collect();
        for (i, c) in spec.components.iter().enumerate() {
            let Some(&to) = index.get(c.name.as_str()) else { continue };
            if graph[to] != i {
                // A second component with a taken name (SL305): its inputs are not the first one's.
                continue;
            }
            if c.section != Section::Source && c.inputs.is_empty() {
                // Without the key, SL202 (missing required key) has said it already.
                if let Some(span) = c.inputs_span {
                    self.diags.push(
                        Diagnostic::error(
                            codes::MISSING_INPUTS,
                            format!("{} `{}` has no inputs", pipeline::section_name(c.section), c.name),
                        )
                        .label(span, "nothing flows into this component")
                        .help("name the source or stage that feeds it: `inputs: [<source or stage>]`"),
                    );
                }
                ok = false;
            }
            for input in &c.inputs {
                let r = input_ref(&input.text);
                let Some(&from) = index.get(r.component.as_str()) else {
                    let d = Diagnostic::error(codes::UNKNOWN_INPUT, format!("no component named `{}`", r.component))
                        .label(input.span, "unknown input");
                    let d = match did_you_mean(&r.component, names.iter().copied().filter(|n| *n != c.name)) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None => d.help(format!("components: {}", names.join(", "))),
                    };
                    self.diags.push(d);
                    ok = false;
                    continue;
                };
                let upstream = &spec.components[graph[from]];
                if upstream.section == Section::Sink {
                    self.diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN_INPUT,
                            format!("`{}` is a sink; sinks emit nothing", r.component),
                        )
                        .label(input.span, "a sink cannot be an input")
                        .help("take the input from the stage that feeds the sink"),
                    );
                    ok = false;
                    continue;
                }
                if let Some(branch) = &r.branch {
                    let branches = match &upstream.body {
                        Body::Route { routes, default } => {
                            routes.iter().map(|r| r.0.clone()).chain(default.iter().map(|d| d.text.clone())).collect()
                        }
                        _ => vec![],
                    };
                    if !branches.contains(branch) {
                        let d = Diagnostic::error(
                            codes::UNKNOWN_BRANCH,
                            format!("`{}` has no branch `{branch}`", r.component),
                        )
                        .label(input.span, "unknown branch");
                        let d = if branches.is_empty() {
                            d.help(format!("only routes have branches; write `{}`", r.component))
                        } else {
                            match did_you_mean(branch, branches.iter().map(String::as_str)) {
                                Some(best) => d.help(format!("did you mean `{best}`?")),
                                None => {
                                    let list: Vec<String> = branches.iter().map(|b| format!("`{b}`")).collect();
                                    d.help(format!("`{}` has the branches {}", r.component, list.join(", ")))
                                }
                            }
                        };
                        self.diags.push(d);
                        ok = false;
                        continue;
                    }
                }
                graph.add_edge(from, to, ());
            }
        }
        for scc in tarjan_scc(&graph) {
            let cyclic = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
            if !cyclic {
                continue;
            }
            let mut members: Vec<&ComponentSpec> = scc.iter().map(|n| &spec.components[graph[*n]]).collect();
            members.sort_by_key(|c| c.name_span.start);
            let names: Vec<&str> = members.iter().map(|c| c.name.as_str()).collect();
            let mut d = Diagnostic::error(codes::CYCLE, format!("components {} form a cycle", names.join(" -> ")))
                .help("records flow from sources to sinks; remove one of the inputs that closes the loop");
            for m in &members {
                d = d.label(m.name_span, "in the cycle");
            }
            self.diags.push(d);
            ok = false;
        }
        // Unused components are only reported on a complete graph: with an unknown or missing
        // input, the component that input was meant to name would be reported too.
        for (i, c) in spec.components.iter().enumerate().filter(|_| ok) {
            let Some(&n) = index.get(c.name.as_str()) else { continue };
            if graph[n] != i || c.section == Section::Sink {
                continue;
            }
            if graph.neighbors_directed(n, petgraph::Direction::Outgoing).next().is_none() {
                self.diags.push(
                    Diagnostic::warning(
                        codes::UNUSED_COMPONENT,
                        format!("the output of {} `{}` goes nowhere", pipeline::section_name(c.section), c.name),
                    )
                    .label(c.name_span, "no component takes this as input")
                    .help("connect it to a stage or sink through `inputs`, or remove it"),
                );
            }
        }
        if ok {
            self.unused_branches(spec);
        }
        if !ok {
            return None;
        }
        let sorted = toposort(&graph, None).ok()?;
        Some(sorted.into_iter().map(|n| graph[n]).collect())
    }

    /// Warns about route branches no component takes: their records could only go to the DLQ.
    /// A consumer that names the route without a branch takes every branch.
    /// Where a `files` source reads (any format): its paths checked (SL250-SL255) and, for
    /// object URLs, its store; object URLs stay as written, local paths are resolved against the
    /// spec's folder. `None` when a check failed or no path is given (SL2xx said why).
    fn locate_paths(
        &mut self,
        paths: &[Spanned],
        store: Option<&crate::spec::pipeline::StoreSpec>,
        (move_to, tag): (Option<&Spanned>, Option<&crate::spec::pipeline::TagSpec>),
        c: &pipeline::ComponentSpec,
    ) -> Option<(Vec<String>, Option<Box<crate::plan::object_store::StorePlan>>)> {
        let located = crate::object_store::check(&mut self.diags, paths, store, &c.name, c.name_span)
            .and_then(|l| crate::object_store::check_move_to(&mut self.diags, l, paths, move_to))
            .and_then(|l| crate::object_store::check_tags(&mut self.diags, l, tag))?;
        if paths.is_empty() {
            return None;
        }
        Some(match located {
            crate::object_store::Paths::Local => (paths.iter().map(|p| display_path(&self.resolve(p))).collect(), None),
            crate::object_store::Paths::Remote(store) => (paths.iter().map(|p| p.text.clone()).collect(), Some(store)),
        })
    }

    /// `webhook` sources: served from the state store's queue (SL287), in a pipeline of their
    /// own (SL288), each on its own path (SL289). Returns whether all is well.
    fn check_webhook_sources(&mut self, spec: &pipeline::PipelineSpec) -> bool {
        let webhooks: Vec<&pipeline::ComponentSpec> =
            spec.components.iter().filter(|c| matches!(c.body, Body::Webhook(_))).collect();
        let Some(first) = webhooks.first() else { return true };
        let mut ok = true;
        if spec.state.is_none() && spec.state_url.is_none() {
            self.diags.push(
                Diagnostic::error(
                    codes::WEBHOOK_NEEDS_STATE,
                    format!("pipeline `{}` has webhook sources but no state store", spec.name),
                )
                .label(first.name_span, "queues its deliveries in the state store")
                .help("add `state: {path: state/webhooks.db}` (SQLite) or `state: {url: ${STATE_URL}}` (PostgreSQL)"),
            );
            ok = false;
        }
        for other in spec
            .components
            .iter()
            .filter(|c| matches!(c.body, Body::Files { .. } | Body::Mllp(_) | Body::Kafka(_) | Body::Amqp(_)))
        {
            self.diags.push(
                Diagnostic::error(
                    codes::WEBHOOK_NOT_ALONE,
                    format!("source `{}` shares its pipeline with webhook sources", other.name),
                )
                .label(other.name_span, "another kind of source")
                .label(first.name_span, "served by `sluice serve`")
                .help("put the webhook sources in a pipeline of their own"),
            );
            ok = false;
        }
        let mut paths: HashMap<&str, Span> = HashMap::new();
        for c in &webhooks {
            let Body::Webhook(w) = &c.body else { continue };
            if let Some(taken) = paths.insert(&w.path.text, w.path.span) {
                self.diags.push(
                    Diagnostic::error(
                        codes::WEBHOOK_PATH_TAKEN,
                        format!("two webhook sources have the path `{}`", w.path.text),
                    )
                    .label(w.path.span, "second source on this path")
                    .label(taken, "first one")
                    .help("give each endpoint its own path, e.g. `/hooks/stripe` and `/hooks/stripe-connect`"),
                );
                ok = false;
            }
        }
        ok
    }

    fn unused_branches(&mut self, spec: &pipeline::PipelineSpec) {
        let consumed: BTreeSet<(String, Option<String>)> = spec
            .components
            .iter()
            .flat_map(|c| c.inputs.iter())
            .map(|i| {
                let r = input_ref(&i.text);
                (r.component, r.branch)
            })
            .collect();
        for c in &spec.components {
            let Body::Route { routes, default } = &c.body else { continue };
            if consumed.contains(&(c.name.clone(), None)) {
                continue;
            }
            let branches = routes.iter().map(|(b, span, _)| (b.as_str(), *span));
            let branches = branches.chain(default.iter().map(|d| (d.text.as_str(), d.span)));
            for (branch, span) in branches {
                if !consumed.contains(&(c.name.clone(), Some(branch.to_string()))) {
                    self.diags.push(
                        Diagnostic::warning(
                            codes::UNUSED_COMPONENT,
                            format!("branch `{branch}` of route `{}` goes nowhere", c.name),
                        )
                        .label(span, "no component takes this branch as input")
                        .help(format!(
                            "its records would go to the DLQ; take it as input (`{}.{branch}`) or remove the branch",
                            c.name
                        )),
                    );
                }
            }
        }
    }

    fn merge_inputs(
        &mut self,
        c: &ComponentSpec,
        inputs: &[InputRef],
        flows: &HashMap<String, Flow>,
        phi: &HashMap<String, (PhiState, Origins)>,
    ) -> (Flow, (PhiState, Origins)) {
        let mut flow: Option<Flow> = None;
        let mut state = PhiState::new();
        let mut origins = Origins::default();
        for (i, input) in inputs.iter().enumerate() {
            let f = flows.get(&input.component).copied().unwrap_or(Flow::Unknown);
            if let Some((s, o)) = phi.get(&input.component) {
                for (k, v) in s {
                    // With several inputs, a field is only as masked as its least-masked path.
                    let merged = match (state.get(k), v) {
                        (Some(None), _) | (_, None) => None,
                        (_, Some(d)) => Some(d.clone()),
                    };
                    state.insert(k.clone(), merged);
                }
                origins.0.extend(o.0.clone());
            }
            match (flow, f) {
                (None, f) => flow = Some(f),
                (Some(Flow::Unknown), _) | (_, Flow::Unknown) => flow = Some(Flow::Unknown),
                (Some(a), b) if a.name() != b.name() => {
                    self.diags.push(
                        Diagnostic::error(
                            codes::INCOMPATIBLE_INPUT,
                            format!("`{}` receives both {} and {} records", c.name, a.name(), b.name()),
                        )
                        .label(c.inputs[i].span, format!("emits {}", b.name()))
                        .help("give each schema its own stage, or map both to the same output schema first"),
                    );
                    flow = Some(Flow::Unknown);
                }
                _ => {}
            }
        }
        (flow.unwrap_or(Flow::Unknown), (state, origins))
    }

    /// Checks one component given the records it receives; returns its plan, what it emits
    /// and the PHI state after it.
    fn component(
        &mut self,
        c: &ComponentSpec,
        flow: Flow,
        (mut state, mut origins): (PhiState, Origins),
        matrix: &mut Vec<MatrixRow>,
    ) -> Option<(ComponentKind, Flow, (PhiState, Origins))> {
        let need_hl7 = |this: &mut Self, what: &str| -> Option<Version> {
            match flow {
                Flow::Hl7(v) => Some(v),
                Flow::Unknown => None,
                Flow::Fhir(_) => {
                    this.diags.push(
                        Diagnostic::error(
                            codes::FHIR_INPUT_MISMATCH,
                            format!("{what} `{}` needs HL7 v2 messages, but its input emits FHIR resources", c.name),
                        )
                        .label(c.inputs.first().map_or(c.name_span, |i| i.span), format!("emits {}", flow.name()))
                        .help("FHIR resources are validated by their source (`mode`, `profile`) and mapped by a mapping with `input: {schema: fhir/r4, resource_type: ...}`"),
                    );
                    None
                }
                Flow::X12 => {
                    let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    this.diags.push(crate::x12::input_mismatch(what, &c.name, "HL7 v2 messages", at));
                    None
                }
                Flow::Stripe(_) => {
                    let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    this.diags.push(crate::stripe::input_mismatch(what, &c.name, "HL7 v2 messages", at));
                    None
                }
                Flow::QuickBooks(_) => {
                    let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    this.diags.push(crate::quickbooks::input_mismatch(what, &c.name, "HL7 v2 messages", at));
                    None
                }
                Flow::Plaid(_) => {
                    let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    this.diags.push(crate::plaid::input_mismatch(what, &c.name, "HL7 v2 messages", at));
                    None
                }
                Flow::Output(o) => {
                    this.diags.push(
                        Diagnostic::error(
                            codes::INCOMPATIBLE_INPUT,
                            format!(
                                "{what} `{}` needs HL7 v2 messages, but its input emits {} records",
                                c.name, o.name
                            ),
                        )
                        .label(c.inputs.first().map_or(c.name_span, |i| i.span), format!("emits {}", o.name))
                        .help("take the input from the source (or a stage before the map stage)"),
                    );
                    None
                }
            }
        };
        match &c.body {
            Body::Files { paths, profile, fhir: Some(fhir), store, move_to, tag, .. } => {
                let located = self.locate_paths(paths, store.as_deref(), (move_to.as_ref(), tag.as_deref()), c);
                let (plan, flow) = self.fhir_source(profile.as_ref(), fhir)?;
                let (paths, store) = located?;
                let kind = ComponentKind::Source(SourcePlan {
                    fhir: Some(Box::new(plan)),
                    store,
                    ..SourcePlan::new("files", "fhir", paths, profile::default_profile())
                });
                Some((kind, flow, (state, origins)))
            }
            Body::Files { paths, profile, x12: Some(x12), store, move_to, tag, .. } => {
                let located = self.locate_paths(paths, store.as_deref(), (move_to.as_ref(), tag.as_deref()), c);
                let acks = x12.acks.as_ref().map(|a| display_path(&self.resolve(a)));
                let partners = match profile {
                    Some(p) => Some(Box::new(self.x12_profile_at(p)?)),
                    None => None,
                };
                let mut plan = crate::x12::source_plan(&mut self.diags, x12, acks)?;
                plan.partners = partners;
                let (paths, store) = located?;
                let kind = ComponentKind::Source(SourcePlan {
                    x12: Some(Box::new(plan)),
                    store,
                    ..SourcePlan::new("files", "x12", paths, profile::default_profile())
                });
                Some((kind, Flow::X12, (state, origins)))
            }
            Body::Files { paths, profile, fhir: None, store, move_to, tag, .. } => {
                let located = self.locate_paths(paths, store.as_deref(), (move_to.as_ref(), tag.as_deref()), c);
                let profile = match profile {
                    Some(p) => self.hl7_profile_at(p)?,
                    None => profile::default_profile(),
                };
                let version = Version::parse(&profile.version)?;
                let (paths, store) = located?;
                let kind =
                    ComponentKind::Source(SourcePlan { store, ..SourcePlan::new("files", "hl7v2", paths, profile) });
                Some((kind, Flow::Hl7(version), (state, origins)))
            }
            Body::Mllp(m) => {
                let mut profile = match &m.profile {
                    Some(p) => self.hl7_profile_at(p)?,
                    None => profile::default_profile(),
                };
                // The listener's `charset` wins over the profile's `encoding` for its messages.
                if let Some(cs) = &m.charset {
                    profile.encoding = cs.clone();
                }
                let version = Version::parse(&profile.version)?;
                if let Some((cert, _)) = &m.tls
                    && !self.resolve(cert).is_file()
                {
                    self.diags.push(
                        Diagnostic::error(codes::FILE_NOT_FOUND, format!("cannot read `{}`: no such file", cert.text))
                            .label(cert.span, format!("resolved to {}", display_path(&self.resolve(cert))))
                            .help("the certificate chain is a PEM file; paths are relative to the pipeline file"),
                    );
                    return None;
                }
                let tls = m.tls.as_ref().map(|(cert, key)| TlsPlan {
                    cert: display_path(&self.resolve(cert)),
                    key: self.secret_reference(key),
                });
                let plan = MllpPlan {
                    listen: m.listen.clone(),
                    max_frame_bytes: m.max_frame_bytes,
                    idle_timeout_ms: m.idle_timeout_ms,
                    max_connections: m.max_connections,
                    tls,
                    charset: m.charset.clone(),
                    ack_mode: m.ack_mode.clone(),
                    ack_timing: m.ack_timing.clone(),
                    priority: m.priority.clone(),
                };
                let kind = ComponentKind::Source(SourcePlan {
                    mllp: Some(Box::new(plan)),
                    ..SourcePlan::new("mllp", "hl7v2", vec![], profile)
                });
                Some((kind, Flow::Hl7(version), (state, origins)))
            }
            Body::Kafka(k) => {
                let (payload, flow) = self.bus_payload(&k.common)?;
                let plan = crate::plan::kafka::KafkaSourcePlan {
                    brokers: k.brokers.clone(),
                    topics: k.topics.clone(),
                    group: k.group.clone(),
                    start: k.start.clone(),
                    security: match &k.security {
                        Some(s) => Some(self.kafka_security(s)?),
                        None => None,
                    },
                    priority: k.common.priority.clone(),
                    session_timeout_ms: k.session_timeout_ms,
                };
                let kind =
                    ComponentKind::Source(SourcePlan { kind: "kafka".into(), kafka: Some(Box::new(plan)), ..payload });
                Some((kind, flow, (state, origins)))
            }
            Body::Amqp(a) => {
                let (payload, flow) = self.bus_payload(&a.common)?;
                let tls = match &a.tls {
                    Some(t) => Some(self.amqp_tls(t)?),
                    None => None,
                };
                let plan = crate::plan::amqp::AmqpSourcePlan {
                    url: self.secret_reference(&a.url),
                    queue: a.queue.clone(),
                    prefetch: a.prefetch,
                    priority: a.common.priority.clone(),
                    tls,
                };
                let kind =
                    ComponentKind::Source(SourcePlan { kind: "amqp".into(), amqp: Some(Box::new(plan)), ..payload });
                Some((kind, flow, (state, origins)))
            }
            Body::Webhook(w) => {
                let schema = sluice_canonical::schema(crate::plan::webhook::EVENT_SCHEMA)?;
                let plan = crate::plan::webhook::WebhookSourcePlan {
                    provider: w.provider.clone(),
                    path: w.path.text.clone(),
                    secret: w.secret.as_ref().map(|s| self.secret_reference(s)),
                    client_id: w.client_id.as_ref().map(|s| self.secret_reference(s)),
                    key_url: w.key_url.clone(),
                    tolerance_ms: w.tolerance_ms,
                    max_body: w.max_body,
                    rate: w.rate.0,
                    rate_per_secs: w.rate.1,
                };
                let kind = ComponentKind::Source(SourcePlan {
                    webhook: Some(Box::new(plan)),
                    ..SourcePlan::new("webhook", "json", vec![], profile::default_profile())
                });
                Some((kind, Flow::Output(schema), (state, origins)))
            }
            Body::FhirRest(f) => {
                let plan = crate::fhir_rest::plan(f);
                let flow = match f.tables.as_slice() {
                    [one] => Flow::Fhir(Some(one.resource_type)),
                    _ => Flow::Fhir(None),
                };
                let fhir = crate::plan::FhirSourcePlan {
                    resource_types: plan.tables.iter().map(|t| t.resource_type.clone()).collect(),
                    profile: None,
                    mode: if f.lenient { crate::plan::Mode::Lenient } else { crate::plan::Mode::Strict },
                };
                let kind = ComponentKind::Source(SourcePlan {
                    fhir: Some(Box::new(fhir)),
                    fhir_rest: Some(Box::new(plan)),
                    ..SourcePlan::new("fhir.rest", "fhir", vec![], profile::default_profile())
                });
                Some((kind, flow, (state, origins)))
            }
            Body::Stripe(f) => {
                let plan = crate::stripe::plan(f);
                let flow = match f.objects.as_slice() {
                    [(_, one)] => Flow::Stripe(Some(one)),
                    // What is wrong with `objects` was said (SL273).
                    [] => Flow::Unknown,
                    _ => Flow::Stripe(None),
                };
                let kind = ComponentKind::Source(SourcePlan {
                    stripe: Some(Box::new(plan)),
                    ..SourcePlan::new("stripe", "json", vec![], profile::default_profile())
                });
                Some((kind, flow, (state, origins)))
            }
            Body::QuickBooks(f) => {
                let plan = crate::quickbooks::plan(f);
                let flow = match f.entities.as_slice() {
                    [one] => Flow::QuickBooks(Some(one)),
                    // What is wrong with `entities` was said (SL278).
                    [] => Flow::Unknown,
                    _ => Flow::QuickBooks(None),
                };
                let kind = ComponentKind::Source(SourcePlan {
                    quickbooks: Some(Box::new(plan)),
                    ..SourcePlan::new("quickbooks", "json", vec![], profile::default_profile())
                });
                Some((kind, flow, (state, origins)))
            }
            Body::Plaid(f) => {
                let plan = crate::plaid::plan(f, |s| self.secret_reference(s));
                let flow = match f.tables.as_slice() {
                    [one] => Flow::Plaid(sluice_finance::plaid::table_object(one)),
                    // What is wrong with `tables` was said (SL268).
                    [] => Flow::Unknown,
                    _ => Flow::Plaid(None),
                };
                let kind = ComponentKind::Source(SourcePlan {
                    plaid: Some(Box::new(plan)),
                    ..SourcePlan::new("plaid", "json", vec![], profile::default_profile())
                });
                Some((kind, flow, (state, origins)))
            }
            Body::Validate { rules, mode } => {
                let version = need_hl7(self, "validate stage");
                let rid = self.load_kind(rules, "rules")?;
                let rules_file = self.sources.get(rid).name.clone();
                let r = self.rules(rid)?;
                let (rule_input, rules_name) = (r.input.as_ref().map(|(s, sp)| (*s, sp.clone())), r.name.clone());
                let plan = ValidatePlan {
                    rules_file,
                    mode: mode.unwrap_or(r.mode),
                    message_types: r.message_types.clone(),
                    rules: r.rules.clone(),
                    hl7_checks: r.hl7_checks.clone(),
                };
                let version = version?;
                if let Some((SchemaRef::Hl7(rv), span)) = rule_input
                    && rv != version
                {
                    self.mismatch(c, &format!("rules `{rules_name}`"), &span, version);
                    return None;
                }
                Some((ComponentKind::Validate(plan), flow, (state, origins)))
            }
            Body::Map { mapping } => {
                let mid = self.load_kind(mapping, "mapping")?;
                let fhir_input = self.mapping(mid)?.input_fhir;
                if let Some((t, t_span)) = fhir_input {
                    return self.fhir_map(c, mid, flow, (t, t_span), (state, origins));
                }
                let stripe_input = self.mapping(mid)?.input_stripe;
                if let Some((object, o_span)) = stripe_input {
                    let input_at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    return match flow {
                        Flow::Unknown => None,
                        Flow::Stripe(Some(o)) if o == object => self.mapped(mid, (state, origins)),
                        other => {
                            let d = crate::stripe::map_input_mismatch(&c.name, object, &other.name(), input_at, o_span);
                            self.diags.push(d);
                            None
                        }
                    };
                }
                let qbo_input = self.mapping(mid)?.input_quickbooks;
                if let Some((entity, e_span)) = qbo_input {
                    let input_at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    return match flow {
                        Flow::Unknown => None,
                        Flow::QuickBooks(Some(e)) if e == entity => self.mapped(mid, (state, origins)),
                        other => {
                            let d =
                                crate::quickbooks::map_input_mismatch(&c.name, entity, &other.name(), input_at, e_span);
                            self.diags.push(d);
                            None
                        }
                    };
                }
                let plaid_input = self.mapping(mid)?.input_plaid;
                if let Some((object, o_span)) = plaid_input {
                    let input_at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    return match flow {
                        Flow::Unknown => None,
                        Flow::Plaid(Some(o)) if o == object => self.mapped(mid, (state, origins)),
                        other => {
                            let d = crate::plaid::map_input_mismatch(&c.name, object, &other.name(), input_at, o_span);
                            self.diags.push(d);
                            None
                        }
                    };
                }
                let x12_input = self.mapping(mid)?.input_x12;
                if let Some((guide, g_span)) = x12_input {
                    let input_at = c.inputs.first().map_or(c.name_span, |i| i.span);
                    return match flow {
                        Flow::Unknown => None,
                        Flow::X12 => self.mapped(mid, (state, origins)),
                        other => {
                            let d = crate::x12::map_input_mismatch(&c.name, &guide.id, &other.name(), input_at, g_span);
                            self.diags.push(d);
                            None
                        }
                    };
                }
                let version = need_hl7(self, "map stage");
                let m = self.mapping(mid)?;
                let (plan, output, input_version): (MapPlan, _, _) = (m.plan.clone(), m.output, m.input_version);
                let spans: Vec<(String, BTreeSet<PhiClass>, Span)> = m.leaf_classes.clone();
                let leaves: Vec<(String, BTreeSet<PhiClass>, String)> =
                    spans.into_iter().map(|(p, c, s)| (p, c, self.sources.location(s))).collect();
                let version = version?;
                if let Some((mv, span)) = input_version
                    && mv != version
                {
                    let s = Spanned { text: format!("hl7v2/{mv}"), span };
                    self.mismatch(c, &format!("mapping `{}`", plan.mapping), &s, version);
                    return None;
                }
                // A map stage replaces the record: only what the mapping writes flows on.
                state.clear();
                origins.0.clear();
                for (path, classes, at) in leaves {
                    for class in classes {
                        state.insert((path.clone(), class), None);
                        origins.0.insert((path.clone(), class), at.clone());
                    }
                }
                Some((ComponentKind::Map(plan), Flow::Output(output), (state, origins)))
            }
            Body::Mask { policy, environments } => {
                let pid = self.load_kind(policy, "masking")?;
                let chosen = self.env.as_ref().and_then(|e| environments.iter().find(|(name, _)| &name.text == e));
                // The stage's own policy, which an environment's may only make stricter.
                let (pid, base) = match chosen {
                    Some((_, file)) => {
                        let base = self.policy(pid)?.plan.clone();
                        (self.load_kind(file, "masking")?, Some(base))
                    }
                    None => (pid, None),
                };
                let p = self.policy(pid)?;
                let mut plan: MaskPlan = p.plan.clone();
                plan.environment = chosen.map(|(name, _)| name.text.clone());
                let field_spans: Vec<(String, Span)> =
                    p.field_rules.iter().map(|f| (f.field.clone(), f.span)).collect();
                let subjects = p.subjects.clone();
                let class_spans = p.class_spans.clone();
                let schema = match flow {
                    Flow::Output(o) => o,
                    Flow::Unknown => return None,
                    Flow::Fhir(_) => {
                        self.diags.push(
                            Diagnostic::error(
                                codes::INCOMPATIBLE_INPUT,
                                format!(
                                    "mask stage `{}` needs mapped records, but its input emits FHIR resources",
                                    c.name
                                ),
                            )
                            .label(c.inputs.first().map_or(c.name_span, |i| i.span), format!("emits {}", flow.name()))
                            .help("mask after a map stage: masking policies name output fields and PHI classes"),
                        );
                        return None;
                    }
                    Flow::X12 => {
                        let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                        self.diags.push(crate::x12::input_mismatch("mask stage", &c.name, "mapped records", at));
                        return None;
                    }
                    Flow::Stripe(_) => {
                        let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                        self.diags.push(crate::stripe::input_mismatch("mask stage", &c.name, "mapped records", at));
                        return None;
                    }
                    Flow::QuickBooks(_) => {
                        let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                        self.diags.push(crate::quickbooks::input_mismatch("mask stage", &c.name, "mapped records", at));
                        return None;
                    }
                    Flow::Plaid(_) => {
                        let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                        self.diags.push(crate::plaid::input_mismatch("mask stage", &c.name, "mapped records", at));
                        return None;
                    }
                    Flow::Hl7(_) => {
                        self.diags.push(
                            Diagnostic::error(
                                codes::INCOMPATIBLE_INPUT,
                                format!(
                                    "mask stage `{}` needs mapped records, but its input emits HL7 v2 messages",
                                    c.name
                                ),
                            )
                            .label(c.inputs.first().map_or(c.name_span, |i| i.span), "emits HL7 v2 messages")
                            .help("mask after a map stage: masking policies name output fields and PHI classes"),
                        );
                        return None;
                    }
                };
                for (field, span) in field_spans.iter().chain(&subjects) {
                    if schema.field(field).is_none() {
                        let d = Diagnostic::error(
                            codes::UNKNOWN_OUTPUT_FIELD,
                            format!("{} has no field `{field}`", schema.name),
                        )
                        .label(*span, "unknown output field");
                        self.diags.push(d.suggest(field, schema.fields.iter().map(|f| f.path.as_str())));
                    }
                }
                let mut type_errors = Vec::new();
                let mut weaker = Vec::new();
                for ((field, class), decision) in state.iter_mut() {
                    let by_field = plan.fields.iter().position(|(f, _)| f == field);
                    let by_class = plan.classes.iter().position(|(c, _)| c == class);
                    let (t, span) = match (by_field, by_class) {
                        (Some(i), _) => {
                            (&plan.fields[i].1, field_spans.iter().find(|(f, _)| f == field).map(|(_, s)| *s))
                        }
                        (None, Some(i)) => {
                            (&plan.classes[i].1, class_spans.iter().find(|(c, _)| c == class).map(|(_, s)| *s))
                        }
                        (None, None) => continue,
                    };
                    // A later mask stage only masks more: the stronger action stands (as at run
                    // time, `stages::mask`), and the matrix shows where it was decided.
                    if decision.as_ref().is_some_and(|d| d.action >= t.action) {
                        continue;
                    }
                    *decision = Some(Decision { action: t.action, decided_at: t.decided_at.clone(), audience: None });
                    if let (Some(base), Some((name, _))) = (&base, chosen)
                        && let Some(own) = compile_time_rule(base, field, *class)
                        && own.action > t.action
                    {
                        weaker.push((field.clone(), *class, own.clone(), t.clone(), name.clone()));
                    }
                    let field_type = schema.field(field).map(|f| f.value_type.clone());
                    if let Some(ty) = field_type
                        && let Some(writes) = mask_output_misfit(t, &ty)
                    {
                        type_errors.push((field.clone(), *class, t.action, ty, writes, span));
                    }
                }
                for (field, class, own, env, name) in weaker {
                    self.diags.push(
                        Diagnostic::error(
                            codes::ENVIRONMENT_POLICY_WEAKER,
                            format!(
                                "in environment `{}`, `{field}` ({class}) would be `{}` where the stage's own policy says `{}`",
                                name.text,
                                env.action.as_str(),
                                own.action.as_str()
                            ),
                        )
                        .label(name.span, format!("the `{}` policy is weaker here", name.text))
                        .help(format!(
                            "an environment's policy may only mask more: give `{field}` ({class}) `{}` or stronger there (decided at {}; the stage's own at {})",
                            own.action.as_str(),
                            env.decided_at,
                            own.decided_at
                        )),
                    );
                }
                for (field, class, action, ty, writes, span) in type_errors {
                    let action = action.as_str();
                    let d = Diagnostic::error(
                        codes::MASK_TYPE_MISMATCH,
                        format!("`{action}` on class `{class}` would write {writes} into `{field}`, a {ty} field"),
                    )
                    .label(span.unwrap_or(c.name_span), format!("`{action}` writes {writes}"))
                    .help(format!("use `null` for {ty} fields, or add a rule for `{field}` under `fields:`"));
                    self.diags.push(d);
                }
                Some((ComponentKind::Mask(plan), flow, (state, origins)))
            }
            Body::Filter { keep } => {
                let keep = self.condition(c, keep, flow)?;
                Some((ComponentKind::Filter(FilterPlan { keep }), flow, (state, origins)))
            }
            Body::Route { routes, default } => {
                let mut branches = Vec::new();
                for (name, _, cond) in routes {
                    branches.push((name.clone(), self.condition(c, cond, flow)?));
                }
                let plan = RoutePlan { branches, default: default.as_ref().map(|d| d.text.clone()) };
                Some((ComponentKind::Route(plan), flow, (state, origins)))
            }
            Body::Jsonl { .. }
            | Body::Http(_)
            | Body::Postgres(_)
            | Body::Csv { .. }
            | Body::Parquet(_)
            | Body::KafkaSink(_)
            | Body::AmqpSink(_) => {
                let mut sink = match &c.body {
                    Body::Http(h) => self.http_sink(h),
                    Body::Postgres(p) => self.postgres_sink(c, p, flow)?,
                    Body::Csv { path, store } => {
                        let (path, object) = self.file_sink_target(c, path, store.as_deref())?;
                        let (_, columns) = self.table_columns(c, flow, "csv")?;
                        SinkPlan {
                            kind: "csv".into(),
                            path,
                            http: None,
                            postgres: None,
                            csv: Some(Box::new(crate::plan::CsvSinkPlan { columns })),
                            parquet: None,
                            kafka: None,
                            amqp: None,
                            phi_allowed: None,
                            audience: None,
                            object,
                        }
                    }
                    Body::Parquet(p) => self.parquet_sink(c, p, flow)?,
                    Body::KafkaSink(k) => self.kafka_sink(c, k, flow)?,
                    Body::AmqpSink(a) => self.amqp_sink(c, a, flow)?,
                    Body::Jsonl { path, store } => {
                        let (path, object) = self.file_sink_target(c, path, store.as_deref())?;
                        SinkPlan {
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
                            object,
                        }
                    }
                    _ => return None,
                };
                // A keyed throttle's key: a field of the records, never PHI (its values name
                // buckets, kept in the state store when shared, and show in logs).
                if let (Body::Http(h), Flow::Output(schema)) = (&c.body, flow)
                    && let Some(field) = h.throttle.as_ref().and_then(|t| t.per_key.as_ref())
                {
                    let at = h.throttle_per.unwrap_or(c.name_span);
                    if schema.field(field).is_none() {
                        let d = Diagnostic::error(
                            codes::UNKNOWN_OUTPUT_FIELD,
                            format!("{} has no field `{field}`", schema.name),
                        )
                        .label(at, "the throttle's key must be a field of the records");
                        self.diags.push(d.suggest(field, schema.fields.iter().map(|f| f.path.as_str())));
                        return None;
                    }
                    if let Some(((_, class), _)) = state.iter().find(|((f, _), _)| f == field) {
                        self.diags.push(
                            Diagnostic::error(codes::THROTTLE_KEY_PHI, format!("the throttle key `{field}` carries PHI class `{class}`"))
                                .label(at, "bucket names would hold patient data")
                                .help("key the throttle by a field that names the tenant, facility or account, not the person"),
                        );
                        return None;
                    }
                }
                // A partition column's values name directories: never PHI (paths show in listings,
                // logs and error messages).
                if let Body::Parquet(p) = &c.body
                    && let Some(field) = &p.partition_by
                    && let Some(((_, class), _)) = state.iter().find(|((f, _), _)| *f == field.text)
                {
                    self.diags.push(
                        Diagnostic::error(
                            codes::PARQUET_PARTITION_PHI,
                            format!("the partition field `{}` carries PHI class `{class}`", field.text),
                        )
                        .label(field.span, "directory names would hold patient data")
                        .help("partition by a field that is not about the person: a date of processing, a message type, a facility"),
                    );
                    return None;
                }
                // The PHI proof is the same for every kind of sink: whatever reaches it leaves.
                let phi_allowed = c.phi_allowed.as_ref().map(|(reason, span)| {
                    (reason.clone(), format!("{} (phi allowed: {reason})", self.sources.location(*span)))
                });
                sink.phi_allowed = phi_allowed.as_ref().map(|(reason, _)| reason.clone());
                // `phi_proof: lenient`: a leak is a warning, and the plan says where it was allowed.
                let lenient = self.phi_lenient.clone();
                let leak = |message: String| match &lenient {
                    Some(_) => Diagnostic::warning(codes::PHI_UNMASKED, message),
                    None => Diagnostic::error(codes::PHI_UNMASKED, message),
                };
                if let Flow::Fhir(_) = flow
                    && phi_allowed.is_none()
                {
                    self.diags.push(
                        leak(format!("sink `{}` receives raw FHIR resources, which carry PHI", c.name))
                            .label(c.name_span, "unmasked resources reach this sink")
                            .help("map the resources to an output schema and mask them before the sink"),
                    );
                    lenient.as_ref()?;
                }
                if let Flow::X12 = flow
                    && phi_allowed.is_none()
                {
                    self.diags.push(
                        leak(format!("sink `{}` receives raw X12 transaction sets, which carry PHI", c.name))
                            .label(c.name_span, "unmasked claims and remittances reach this sink")
                            .help("X12 sets hold names, member ids and dates of birth: map them with a mapping that reads `schema: x12/<guide>` and mask them, or allow PHI at this sink with `phi: {allowed: true, reason: ...}`"),
                    );
                    lenient.as_ref()?;
                }
                if let Flow::Stripe(_) = flow
                    && phi_allowed.is_none()
                {
                    self.diags.push(
                        leak(format!("sink `{}` receives raw Stripe objects, which carry customers' PII", c.name))
                            .label(c.name_span, "unmasked objects reach this sink")
                            .help("Stripe objects hold names, e-mail addresses, addresses and card details: map them with a mapping that reads `schema: stripe/<object>` and mask them, or allow PII at this sink with `phi: {allowed: true, reason: ...}`"),
                    );
                    lenient.as_ref()?;
                }
                if let Flow::QuickBooks(_) = flow
                    && phi_allowed.is_none()
                {
                    self.diags.push(
                        leak(format!("sink `{}` receives raw QuickBooks entities, which carry customers' and vendors' PII", c.name))
                            .label(c.name_span, "unmasked entities reach this sink")
                            .help("QuickBooks entities hold customers', vendors' and employees' names, addresses and e-mail addresses: map them with a mapping that reads `schema: quickbooks/<Entity>` and mask them, or allow PII at this sink with `phi: {allowed: true, reason: ...}`"),
                    );
                    lenient.as_ref()?;
                }
                if let Flow::Plaid(_) = flow
                    && phi_allowed.is_none()
                {
                    self.diags.push(
                        leak(format!("sink `{}` receives raw Plaid objects, which carry account owners' and payees' PII", c.name))
                            .label(c.name_span, "unmasked objects reach this sink")
                            .help("Plaid transactions can hold the account owner's and payees' names and where a purchase was made: map them with a mapping that reads `schema: plaid/transaction` and mask them, or allow PII at this sink with `phi: {allowed: true, reason: ...}`"),
                    );
                    lenient.as_ref()?;
                }
                if let Flow::Hl7(v) = flow
                    && phi_allowed.is_none()
                {
                    self.diags.push(
                        leak(format!("sink `{}` receives raw HL7 v{v} messages, which carry PHI", c.name))
                            .label(c.name_span, "unmasked messages reach this sink")
                            .help("map the messages to an output schema and mask them before the sink"),
                    );
                    // Strict (no `phi_proof: lenient`): no plan.
                    lenient.as_ref()?;
                }
                let mut unmasked = false;
                for ((field, class), decision) in &state {
                    match decision {
                        Some(d) => matrix.push(MatrixRow {
                            sink: c.name.clone(),
                            field: field.clone(),
                            class: *class,
                            treatment: d.action,
                            decided_at: d.decided_at.clone(),
                            audience: d.audience.clone(),
                        }),
                        None if phi_allowed.is_some() => matrix.push(MatrixRow {
                            sink: c.name.clone(),
                            field: field.clone(),
                            class: *class,
                            treatment: MaskAction::Keep,
                            decided_at: phi_allowed.as_ref().map(|(_, at)| at.clone()).unwrap_or_default(),
                            audience: None,
                        }),
                        None => {
                            let from = origins.0.get(&(field.clone(), *class)).cloned().unwrap_or_default();
                            self.diags.push(
                                leak(format!("`{field}` carries PHI class `{class}` and reaches sink `{}` unmasked", c.name))
                                    .label(c.name_span, format!("`{field}` ({class}) arrives here in clear"))
                                    .help(match &c.audience {
                                        Some(a) => format!("mapped at {from}; add a rule for `{class}` (or `{field}`) to the `masking` policy of audience `{}`, or to a mask stage before this sink", a.text),
                                        None => format!("mapped at {from}; add a rule for `{class}` (or `{field}`) to a masking policy on the way to this sink"),
                                    }),
                            );
                            match &lenient {
                                Some(at) => matrix.push(MatrixRow {
                                    sink: c.name.clone(),
                                    field: field.clone(),
                                    class: *class,
                                    treatment: MaskAction::Keep,
                                    decided_at: at.clone(),
                                    audience: None,
                                }),
                                None => unmasked = true,
                            }
                        }
                    }
                }
                if unmasked {
                    return None;
                }
                Some((ComponentKind::Sink(sink), flow, (state, origins)))
            }
        }
    }

    /// A role's plan, with its audience policy file resolved as other paths are.
    fn role_plan(&self, role: &crate::spec::roles::RoleSpec) -> crate::plan::RolePlan {
        let masking = role.masking.as_ref().map(|m| display_path(&self.resolve(m)));
        crate::plan::RolePlan { masking, ..role.plan.clone() }
    }

    /// The mask stage in front of sink `sink` whose `audience` names a role: the role's
    /// `masking` policy, checked like a mask stage's (SL601 is then checked at the sink with
    /// what it decided). Decisions it made are marked with the audience for the matrix.
    /// SL612 when the audience is no role, SL613 when the role has no policy.
    #[allow(clippy::too_many_arguments)]
    fn audience_mask(
        &mut self,
        roles: &[crate::spec::roles::RoleSpec],
        sink: &ComponentSpec,
        audience: &Spanned,
        inputs: &[InputRef],
        flow: Flow,
        phi: (PhiState, Origins),
        matrix: &mut Vec<MatrixRow>,
    ) -> Option<(Component, Flow, (PhiState, Origins))> {
        let Some(role) = roles.iter().find(|r| r.plan.name == audience.text) else {
            let names: Vec<&str> = roles.iter().map(|r| r.plan.name.as_str()).collect();
            let help = if names.is_empty() {
                "the pipeline declares no `roles:`; add the role with `key_sha256`, `may` and `masking: policy.yaml`"
                    .to_string()
            } else {
                format!("the roles are: {}; an audience is a role with `masking: policy.yaml`", names.join(", "))
            };
            let d = Diagnostic::error(
                codes::UNKNOWN_AUDIENCE,
                format!("sink `{}`: audience `{}` is not a role of the pipeline", sink.name, audience.text),
            )
            .label(audience.span, "no role of this name")
            .help(help);
            self.diags.push(d.suggest(&audience.text, names.iter().copied()));
            return None;
        };
        let Some(policy) = &role.masking else {
            self.diags.push(
                Diagnostic::error(
                    codes::AUDIENCE_WITHOUT_POLICY,
                    format!("sink `{}`: role `{}` names no masking policy for its audience", sink.name, audience.text),
                )
                .label(audience.span, "this audience has no policy")
                .help(format!(
                    "add `masking: policies/{}.yaml` to role `{}` (at {}), or remove `audience` from the sink",
                    audience.text,
                    audience.text,
                    self.sources.location(role.name_span)
                )),
            );
            return None;
        };
        let name = audience_stage(&sink.name, &audience.text);
        let stage = ComponentSpec {
            name: name.clone(),
            name_span: audience.span,
            section: crate::spec::pipeline::Section::Stage,
            inputs: sink.inputs.clone(),
            inputs_span: sink.inputs_span,
            body: Body::Mask { policy: policy.clone(), environments: Vec::new() },
            phi_allowed: None,
            audience: None,
        };
        let before = phi.0.clone();
        let (kind, flow, (mut state, origins)) = self.component(&stage, flow, phi, matrix)?;
        for (key, decision) in state.iter_mut() {
            if let Some(d) = decision
                && before.get(key).and_then(|b| b.as_ref()) != Some(d)
            {
                d.audience = Some(audience.text.clone());
            }
        }
        let component = Component { name, inputs: inputs.to_vec(), emits: flow.name(), kind };
        Some((component, flow, (state, origins)))
    }

    /// Kafka `security`, with a `${file:...}` password or key reference resolved like other
    /// paths, its TLS files checked on disk (SL439; `None` when one is missing, reported).
    fn kafka_security(
        &mut self,
        s: &crate::spec::kafka::SecuritySpec,
    ) -> Option<crate::plan::kafka::KafkaSecurityPlan> {
        self.tls_files_exist(s.ca_file.as_ref(), s.client.as_ref(), codes::KAFKA_TLS_FILE).then(|| {
            crate::plan::kafka::KafkaSecurityPlan {
                protocol: s.protocol.clone(),
                mechanism: s.mechanism.clone(),
                username: s.username.clone(),
                password: s.password.as_ref().map(|p| self.secret_reference(p)),
                ca_file: s.ca_file.as_ref().map(|f| display_path(&self.resolve(f))),
                client_cert: s.client.as_ref().map(|(c, _)| display_path(&self.resolve(c))),
                client_key: s.client.as_ref().map(|(_, k)| self.secret_reference(k)),
            }
        })
    }

    /// A `kafka` sink: its `key` checked against the records reaching it (one value of an
    /// output schema: UNKNOWN_OUTPUT_FIELD when it is no field, SL244 when a list, a struct,
    /// or the records are HL7 messages).
    fn kafka_sink(&mut self, c: &ComponentSpec, k: &crate::spec::kafka::KafkaSinkSpec, flow: Flow) -> Option<SinkPlan> {
        let relay_hl7 = k.format.as_ref().is_some_and(|f| f.text == "hl7v2");
        if relay_hl7 {
            let at = k.format.as_ref().map_or(c.name_span, |f| f.span);
            self.relay_key(c, at, k.key.as_ref(), flow, codes::KAFKA_RELAY_INPUT)?;
        } else if let Some(key) = &k.key {
            self.record_key(c, key, flow, codes::KAFKA_SINK_KEY, "key", ("the message key", "a key", "key"))?;
        }
        let plan = crate::plan::kafka::KafkaSinkPlan {
            brokers: k.brokers.clone(),
            topic: k.topic.clone(),
            key: k.key.as_ref().map(|key| key.text.clone()),
            relay_hl7,
            security: match &k.security {
                Some(s) => Some(self.kafka_security(s)?),
                None => None,
            },
        };
        Some(SinkPlan {
            kind: "kafka".into(),
            path: String::new(),
            http: None,
            postgres: None,
            csv: None,
            parquet: None,
            kafka: Some(Box::new(plan)),
            amqp: None,
            phi_allowed: None,
            audience: None,
            object: None,
        })
    }

    /// An `amqp` sink: its `routing_key_field` checked like a `kafka` sink's key (SL236, and
    /// SL237 for `format: hl7v2` fed anything but HL7 v2 messages).
    fn amqp_sink(&mut self, c: &ComponentSpec, a: &crate::spec::amqp::AmqpSinkSpec, flow: Flow) -> Option<SinkPlan> {
        let relay_hl7 = a.format.as_ref().is_some_and(|f| f.text == "hl7v2");
        if relay_hl7 {
            let at = a.format.as_ref().map_or(c.name_span, |f| f.span);
            self.relay_key(c, at, a.routing_key_field.as_ref(), flow, codes::AMQP_RELAY_INPUT)?;
        } else if let Some(field) = &a.routing_key_field {
            self.record_key(
                c,
                field,
                flow,
                codes::AMQP_ROUTING_KEY_FIELD,
                "routing_key_field",
                ("the routing key", "a routing key", "route"),
            )?;
        }
        let plan = crate::plan::amqp::AmqpSinkPlan {
            url: self.secret_reference(&a.url),
            exchange: a.exchange.clone(),
            routing_key: a.routing_key.clone(),
            routing_key_field: a.routing_key_field.as_ref().map(|f| f.text.clone()),
            relay_hl7,
            tls: match &a.tls {
                Some(t) => Some(self.amqp_tls(t)?),
                None => None,
            },
        };
        Some(SinkPlan {
            kind: "amqp".into(),
            path: String::new(),
            http: None,
            postgres: None,
            csv: None,
            parquet: None,
            kafka: None,
            amqp: Some(Box::new(plan)),
            phi_allowed: None,
            audience: None,
            object: None,
        })
    }

    /// An `amqp` source's or sink's `tls`, its files checked on disk (SL472).
    fn amqp_tls(&mut self, t: &crate::spec::amqp::AmqpTlsSpec) -> Option<crate::plan::amqp::AmqpTlsPlan> {
        self.tls_files_exist(t.ca_file.as_ref(), t.client.as_ref(), codes::AMQP_TLS_FILE).then(|| {
            crate::plan::amqp::AmqpTlsPlan {
                ca_file: t.ca_file.as_ref().map(|f| display_path(&self.resolve(f))),
                client_cert: t.client.as_ref().map(|(c, _)| display_path(&self.resolve(c))),
                client_key: t.client.as_ref().map(|(_, k)| self.secret_reference(k)),
            }
        })
    }

    /// TLS files as written (`amqp` `tls`, `kafka` `security`), checked on disk (`code`): the
    /// CA file and client certificate exist and hold a PEM certificate; a `${file:...}` client
    /// key exists (it is a secret: its content is read only when the run starts). False when
    /// one does not (reported).
    fn tls_files_exist(
        &mut self,
        ca_file: Option<&Spanned>,
        client: Option<&(Spanned, Spanned)>,
        code: &'static codes::Code,
    ) -> bool {
        let mut ok = true;
        let certificates = [(ca_file, "CA file"), (client.map(|c| &c.0), "client certificate")];
        for (file, what) in certificates {
            let Some(file) = file else { continue };
            let path = self.resolve(file);
            let problem = match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist"),
                Err(_) => Some("cannot be read"),
                Ok(bytes) if !bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    Some("holds no PEM certificate")
                }
                Ok(_) => None,
            };
            if let Some(problem) = problem {
                ok = false;
                self.diags.push(
                    Diagnostic::error(code, format!("the {what} `{}` {problem}", file.text))
                        .label(file.span, format!("resolved to {}", display_path(&path)))
                        .help("name a PEM file (`-----BEGIN CERTIFICATE-----`), relative to the pipeline file; convert a DER file with `openssl x509 -inform der -in cert.der -out cert.pem`"),
                );
            }
        }
        if let Some((_, key)) = client
            && let Some(path) = key.text.strip_prefix("${file:").and_then(|r| r.strip_suffix('}'))
        {
            let resolved = self.resolve(&Spanned { text: path.to_string(), span: key.span });
            if !resolved.is_file() {
                ok = false;
                self.diags.push(
                    Diagnostic::error(code, format!("the client key `{path}` does not exist"))
                        .label(key.span, format!("resolved to {}", display_path(&resolved)))
                        .help(
                            "name the PEM file of the client certificate's private key, relative to the pipeline file",
                        ),
                );
            }
        }
        ok
    }

    /// A message key taken from the records (`kafka` `key`, `amqp` `routing_key_field`): one
    /// value of an output schema (UNKNOWN_OUTPUT_FIELD when it is no field; `code` when a
    /// list, a struct, or the records have no fields). `words`: the key's name in full and
    /// short, and the verb of the help (`key`, `route`).
    fn record_key(
        &mut self,
        c: &ComponentSpec,
        key: &Spanned,
        flow: Flow,
        code: &'static codes::Code,
        setting: &str,
        words: (&str, &str, &str),
    ) -> Option<()> {
        let (role, short, verb) = words;
        match flow {
            Flow::Output(schema) => match schema.field(&key.text) {
                None => {
                    let d = Diagnostic::error(
                        codes::UNKNOWN_OUTPUT_FIELD,
                        format!("{} has no field `{}`", schema.name, key.text),
                    )
                    .label(key.span, format!("{role} must be a field of the records"));
                    let fields = schema.leaves().filter(|f| !f.path.contains('[')).map(|f| f.path.as_str());
                    self.diags.push(d.suggest(&key.text, fields));
                    None
                }
                Some(f) if matches!(f.value_type, ValueType::Struct | ValueType::List(_)) || f.path.contains('[') => {
                    self.diags.push(
                        Diagnostic::error(
                            code,
                            format!(
                                "{setting} `{}` of sink `{}` is a list or a struct, not one value",
                                key.text, c.name
                            ),
                        )
                        .label(key.span, "holds several values")
                        .help(format!("{verb} the messages by a single-valued field, such as `patient.id`")),
                    );
                    None
                }
                Some(_) => Some(()),
            },
            Flow::Hl7(_) | Flow::Fhir(_) | Flow::X12 | Flow::Stripe(_) | Flow::QuickBooks(_) | Flow::Plaid(_) => {
                let what = match flow {
                    Flow::Hl7(_) => "HL7 v2 messages",
                    Flow::X12 => "X12 transaction sets",
                    Flow::Stripe(_) => "Stripe objects",
                    Flow::QuickBooks(_) => "QuickBooks entities",
                    Flow::Plaid(_) => "Plaid objects",
                    _ => "FHIR resources",
                };
                self.diags.push(
                    Diagnostic::error(
                        code,
                        format!("sink `{}` receives {what}, which have no field `{}`", c.name, key.text),
                    )
                    .label(key.span, format!("{short} is a field of mapped records"))
                    .help(format!("map the messages to an output schema first (a `map` stage), or remove `{setting}`")),
                );
                None
            }
            Flow::Unknown => None,
        }
    }

    /// A sink with `format: hl7v2` (`kafka`, `amqp`): its input must be HL7 v2 messages
    /// (`code`: SL245, SL237), and its key, if any, an HL7 v2 path of their version
    /// (SL220-SL224 as in mappings).
    fn relay_key(
        &mut self,
        c: &ComponentSpec,
        format_at: Span,
        key: Option<&Spanned>,
        flow: Flow,
        code: &'static codes::Code,
    ) -> Option<()> {
        let Flow::Hl7(version) = flow else {
            if !matches!(flow, Flow::Unknown) {
                self.diags.push(
                    Diagnostic::error(
                        code,
                        format!("sink `{}` relays HL7 v2 messages, but its input gives `{}` records", c.name, flow.name()),
                    )
                    .label(format_at, "relays messages as they were read")
                    .help("take the sink's input from an HL7 v2 source (or a validate or filter stage after it), or remove `format: hl7v2` to write JSON lines"),
                );
            }
            return None;
        };
        if let Some(key) = key {
            let env = crate::hl7::Hl7Env { schema: sluice_hl7v2::schema::schema(version), z_segments: &[] };
            if let Err(d) = env.resolve(&key.text, key.span) {
                self.diags.push(d);
                return None;
            }
        }
        Some(())
    }

    /// An `http` sink's plan: `${file:...}` header references resolved like other paths.
    /// Where a `jsonl` or `csv` sink writes: a local file; or, for an object URL, a local
    /// staging file (`.sluice-staging/<sink>/` beside the pipeline file) and the object the
    /// run uploads it to when it completes.
    fn file_sink_target(
        &mut self,
        c: &ComponentSpec,
        path: &Spanned,
        store: Option<&crate::spec::pipeline::StoreSpec>,
    ) -> Option<(String, Option<Box<crate::plan::object_store::ObjectSinkPlan>>)> {
        let located =
            crate::object_store::check(&mut self.diags, std::slice::from_ref(path), store, &c.name, c.name_span)?;
        match located {
            crate::object_store::Paths::Local => Some((display_path(&self.resolve(path)), None)),
            crate::object_store::Paths::Remote(store) => {
                if !crate::object_store::check_sink_key(&mut self.diags, path) {
                    return None;
                }
                let file = path.text.rsplit('/').next().unwrap_or("out");
                let staging = Spanned { text: format!(".sluice-staging/{}/{file}", c.name), span: path.span };
                let object = crate::plan::object_store::ObjectSinkPlan { url: path.text.clone(), store: *store };
                Some((display_path(&self.resolve(&staging)), Some(Box::new(object))))
            }
        }
    }

    fn http_sink(&self, h: &crate::spec::pipeline::HttpSpec) -> SinkPlan {
        let headers = h.headers.iter().map(|(name, value)| (name.clone(), self.secret_reference(value))).collect();
        let http = HttpSinkPlan {
            url: h.url.text.clone(),
            headers,
            timeout_ms: h.timeout_ms,
            max_records: h.max_records,
            retry: h.retry_plan.clone(),
            throttle: h.throttle.clone(),
        };
        SinkPlan {
            kind: "http".into(),
            path: String::new(),
            http: Some(Box::new(http)),
            postgres: None,
            csv: None,
            parquet: None,
            kafka: None,
            amqp: None,
            phi_allowed: None,
            audience: None,
            object: None,
        }
    }

    /// A `parquet` sink: the columns of a table of its records, and the column of its
    /// `partition_by` (SL222 when it names none).
    fn parquet_sink(
        &mut self,
        c: &ComponentSpec,
        p: &crate::spec::pipeline::ParquetSpec,
        flow: Flow,
    ) -> Option<SinkPlan> {
        let (_, columns) = self.table_columns(c, flow, "parquet")?;
        let partition_by = match &p.partition_by {
            None => None,
            Some(field) => match columns.iter().find(|col| !col.path.is_empty() && col.path == field.text) {
                Some(col) if col.sql_type != "jsonb" => Some(col.name.clone()),
                _ => {
                    let names: Vec<&str> = columns
                        .iter()
                        .filter(|col| col.sql_type != "jsonb" && !col.path.is_empty())
                        .map(|col| col.path.as_str())
                        .collect();
                    self.diags.push(
                        Diagnostic::error(
                            codes::PARQUET_PARTITION,
                            format!("parquet sink `{}` cannot be partitioned by `{}`", c.name, field.text),
                        )
                        .label(field.span, "not a single-valued field of the records")
                        .help(format!("use one of: {}", names.join(", "))),
                    );
                    return None;
                }
            },
        };
        let plan = crate::plan::ParquetSinkPlan {
            columns,
            partition_by,
            roll_rows: p.roll_rows.unwrap_or(crate::plan::PARQUET_DEFAULT_ROLL_ROWS),
            roll_bytes: p.roll_bytes,
        };
        Some(SinkPlan {
            kind: "parquet".into(),
            path: display_path(&self.resolve(&p.path)),
            http: None,
            postgres: None,
            csv: None,
            parquet: Some(Box::new(plan)),
            kafka: None,
            amqp: None,
            phi_allowed: None,
            audience: None,
            object: None,
        })
    }

    /// The columns of a table (or CSV file) of the records reaching sink `c`: only records of
    /// an output schema (not HL7 messages, not FHIR Bundles) make rows.
    fn table_columns(
        &mut self,
        c: &ComponentSpec,
        flow: Flow,
        kind: &str,
    ) -> Option<(&'static OutputSchema, Vec<crate::plan::pg_table::PgColumn>)> {
        let schema = match flow {
            Flow::Output(o) if o.name != crate::plan::fhir::BUNDLE_SCHEMA => o,
            Flow::Unknown => return None,
            other => {
                self.diags.push(
                    Diagnostic::error(
                        codes::INCOMPATIBLE_INPUT,
                        format!("{kind} sink `{}` needs records of an output schema, but its input emits {}", c.name, other.name()),
                    )
                    .label(c.inputs.first().map_or(c.name_span, |i| i.span), format!("emits {}", other.name()))
                    .help("map the messages to a table schema such as `canonical/adt-message@1` (and mask them) before the sink"),
                );
                return None;
            }
        };
        match crate::plan::pg_table::columns(schema.fields.iter().map(|f| (f.path.as_str(), &f.value_type))) {
            Ok(columns) => Some((schema, columns)),
            Err(why) => {
                // Only a schema with clashing paths gets here: the bundled ones are checked by a test.
                self.diags.push(
                    Diagnostic::error(
                        codes::INCOMPATIBLE_INPUT,
                        format!("the records of {} cannot be a table: {why}", schema.name),
                    )
                    .label(c.name_span, "this sink"),
                );
                None
            }
        }
    }

    /// A `postgres` sink: its table's columns from the schema of the records reaching it, and
    /// its key checked against them.
    fn postgres_sink(
        &mut self,
        c: &ComponentSpec,
        p: &crate::spec::pipeline::PostgresSpec,
        flow: Flow,
    ) -> Option<SinkPlan> {
        use crate::plan::pg_table;
        let (schema, columns) = self.table_columns(c, flow, "postgres")?;
        let upsert = p.write.text == "upsert";
        let written: Vec<Spanned> = p.key.as_ref().map(|(k, _)| k.clone()).unwrap_or_default();
        let key_span = p.key.as_ref().map_or(p.write.span, |(_, span)| *span);
        let key: Vec<Spanned> = match (&p.key, upsert) {
            (Some(_), false) => {
                self.diags.push(
                    Diagnostic::error(codes::PG_KEY, format!("append sink `{}` has a `key`", c.name))
                        .label(key_span, "an `append` table has no key")
                        .help("each record is a new row, made idempotent by `sluice_record_id`: remove `key`, or write `write: upsert` to keep one row per key"),
                );
                return None;
            }
            (Some(_), true) => written,
            (None, true) => match schema.table.as_ref().filter(|t| !t.primary_key.is_empty()) {
                Some(t) => t.primary_key.iter().map(|k| Spanned { text: k.clone(), span: p.write.span }).collect(),
                None => {
                    self.diags.push(
                        Diagnostic::error(codes::PG_KEY, format!("upsert sink `{}` has no key", c.name))
                            .label(p.write.span, format!("{} declares no primary key", schema.name))
                            .help("write the fields that identify a row: `key: [patient.id]`"),
                    );
                    return None;
                }
            },
            (None, false) => vec![],
        };
        let mut key_columns = Vec::new();
        for k in &key {
            match columns.iter().find(|col| col.path == k.text) {
                Some(col) if col.sql_type != "jsonb" => key_columns.push(col.name.clone()),
                found => {
                    let why = if found.is_some() {
                        "a list or a struct, not one value"
                    } else {
                        "not a field of the records"
                    };
                    let d = Diagnostic::error(
                        codes::PG_KEY,
                        format!("key field `{}` of sink `{}` is {why}", k.text, c.name),
                    )
                    .label(k.span, format!("{} has no single-valued field `{}`", schema.name, k.text));
                    let fields = columns.iter().filter(|col| col.sql_type != "jsonb" && !col.path.is_empty());
                    self.diags.push(d.suggest(&k.text, fields.map(|col| col.path.as_str())));
                    return None;
                }
            }
        }
        let table = p.table.as_ref().map_or_else(|| pg_table::default_table(schema.name), |t| t.text.clone());
        let plan = pg_table::PgSinkPlan {
            url: self.secret_reference(&p.url),
            table,
            write: p.write.text.clone(),
            key: key_columns,
            columns,
        };
        Some(SinkPlan {
            kind: "postgres".into(),
            path: String::new(),
            http: None,
            postgres: Some(Box::new(plan)),
            csv: None,
            parquet: None,
            kafka: None,
            amqp: None,
            phi_allowed: None,
            audience: None,
            object: None,
        })
    }

    fn condition(&mut self, c: &ComponentSpec, node: &Node, flow: Flow) -> Option<crate::expr::ast::Expr> {
        let scope = match flow {
            Flow::Hl7(v) => Scope::Hl7(Hl7Env { schema: sluice_hl7v2::schema::schema(v), z_segments: &[] }),
            Flow::Output(o) if o.name == crate::plan::fhir::BUNDLE_SCHEMA => {
                // Bundle leaves are patterns over entries, not fields a condition can read.
                self.diags.push(
                    Diagnostic::error(
                        codes::INCOMPATIBLE_INPUT,
                        format!("`{}` needs records with fields, but its input emits FHIR Bundles", c.name),
                    )
                    .label(c.inputs.first().map_or(c.name_span, |i| i.span), "emits fhir/r4/Bundle")
                    .help("filter or route the HL7 messages before the FHIR map stage"),
                );
                return None;
            }
            Flow::Output(o) => Scope::Output(o),
            Flow::Fhir(Some(resource_type)) => Scope::Fhir(crate::fhir::FhirEnv { resource_type }),
            Flow::Fhir(None) => {
                self.diags.push(
                    Diagnostic::error(
                        codes::FHIR_INPUT_MISMATCH,
                        format!("`{}` reads FHIR resources of any type, so its paths cannot be checked", c.name),
                    )
                    .label(c.inputs.first().map_or(c.name_span, |i| i.span), "emits fhir/r4 resources of any type")
                    .help("give the source `resource_types: [OneType]`, or put the condition after a map stage"),
                );
                return None;
            }
            Flow::X12 => {
                let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                self.diags.push(crate::x12::input_mismatch("stage", &c.name, "records whose paths can be checked", at));
                return None;
            }
            Flow::Stripe(_) => {
                let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                self.diags.push(crate::stripe::input_mismatch(
                    "stage",
                    &c.name,
                    "records whose paths can be checked",
                    at,
                ));
                return None;
            }
            Flow::QuickBooks(_) => {
                let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                self.diags.push(crate::quickbooks::input_mismatch(
                    "stage",
                    &c.name,
                    "records whose paths can be checked",
                    at,
                ));
                return None;
            }
            Flow::Plaid(_) => {
                let at = c.inputs.first().map_or(c.name_span, |i| i.span);
                self.diags.push(crate::plaid::input_mismatch(
                    "stage",
                    &c.name,
                    "records whose paths can be checked",
                    at,
                ));
                return None;
            }
            Flow::Unknown => return None,
        };
        let env = Env { scope, vars: vec![], tables: vec![] };
        let t = check::check_node(&self.sources, &mut self.diags, node, &env)?;
        if !check::check_fits(
            &mut self.diags,
            &t,
            &sluice_spec_core::ValueType::Boolean,
            node.span,
            &format!("the condition of `{}`", c.name),
        ) {
            return None;
        }
        Some(t.expr)
    }

    fn mismatch(&mut self, c: &ComponentSpec, what: &str, declared: &Spanned, version: Version) {
        self.diags.push(
            Diagnostic::error(
                codes::MAPPING_INPUT_MISMATCH,
                format!("{what} is written for {}, but `{}` receives hl7v2/{version} messages", declared.text, c.name),
            )
            .label(declared.span, format!("declared here; the source reads hl7v2/{version}"))
            .help(format!("change this to `hl7v2/{version}`, or set the source profile's `version` to match")),
        );
    }
}

/// The name of the mask stage the compiler puts in front of a sink with an audience
/// (`analytics~analyst`). Component names written by users never hold `~` in practice; one
/// that did and matched would be shadowed by this stage.
fn audience_stage(sink: &str, audience: &str) -> String {
    format!("{sink}~{audience}")
}

fn input_ref(text: &str) -> InputRef {
    match text.split_once('.') {
        Some((c, b)) => InputRef { component: c.to_string(), branch: Some(b.to_string()) },
        None => InputRef { component: text.to_string(), branch: None },
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return normalize(path);
    }
    normalize(&std::env::current_dir().unwrap_or_default().join(path))
}

/// Spec files under the given paths: files as given, directories searched recursively for
/// `.yaml` and `.yml`, sorted so output is stable.
pub fn collect_specs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = BTreeSet::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if meta.is_file() {
            out.insert(absolute(p));
            continue;
        }
        let mut stack = vec![p.clone()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                    out.insert(absolute(&path));
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The rule of `plan` that decides `field` of class `class` at compile time: a field rule for
/// it, else the class rule (as the mask stage's check decides).
fn compile_time_rule<'p>(plan: &'p MaskPlan, field: &str, class: PhiClass) -> Option<&'p crate::plan::Treatment> {
    let by_field = plan.fields.iter().find(|(f, _)| f == field).map(|(_, t)| t);
    by_field.or_else(|| plan.classes.iter().find(|(c, _)| *c == class).map(|(_, t)| t))
}

/// What a masking treatment would write into a field of type `ty` when that breaks the type
/// (`None` when it fits): `partial`, `hash`, `redact` and `generalize` to `zip3` write text;
/// `generalize` to `year` or `birth_year` (a year or `90+`) and `shift_date` keep a date a date
/// (or text); `generalize` to `age`
/// keeps a number a number (90 for 90 and over) or writes `90+` into text.
fn mask_output_misfit(t: &crate::plan::Treatment, ty: &ValueType) -> Option<&'static str> {
    use crate::plan::Generalization;
    let dates = matches!(ty, ValueType::Date | ValueType::DateTime);
    let text = ty.fits(&ValueType::String);
    let fits = match (t.action, t.to) {
        (MaskAction::Keep | MaskAction::Null, _) => true,
        (MaskAction::ShiftDate, _)
        | (MaskAction::Generalize, Some(Generalization::Year | Generalization::BirthYear)) => dates || text,
        (MaskAction::Generalize, Some(Generalization::Age)) => {
            text || matches!(ty, ValueType::Integer | ValueType::Decimal)
        }
        _ => text,
    };
    match (fits, t.action) {
        (true, _) => None,
        (false, MaskAction::ShiftDate) => Some("a shifted date"),
        (false, MaskAction::Generalize) if matches!(t.to, Some(Generalization::Year | Generalization::BirthYear)) => {
            Some("a year")
        }
        (false, MaskAction::Generalize) if t.to == Some(Generalization::Age) => Some("an age"),
        (false, _) => Some("text"),
    }
}

/// Where a top-level key's value is written (`input` of a mapping; for `input`, its `schema`).
fn key_span(tree: &Node, key: &str) -> Option<Span> {
    let crate::yaml::Value::Map(top) = &tree.value else { return None };
    let (_, v) = top.iter().find(|(k, _)| k.as_str() == Some(key))?;
    match &v.value {
        crate::yaml::Value::Map(inner) => {
            inner.iter().find(|(k, _)| k.as_str() == Some("schema")).map(|(_, s)| s.span).or(Some(v.span))
        }
        _ => Some(v.span),
    }
}

/// FHIR sources and map stages over FHIR resources (`crate::fhir` checks the paths).
impl Compiler {
    /// Checks a `format: fhir` source's `resource_types` and `profile`; returns its plan and
    /// what it emits.
    fn fhir_source(
        &mut self,
        profile: Option<&Spanned>,
        fhir: &pipeline::FhirFiles,
    ) -> Option<(crate::plan::FhirSourcePlan, Flow)> {
        let mut types = Vec::new();
        let mut ok = true;
        for t in &fhir.resource_types {
            match crate::fhir::resource_type(&t.text) {
                Some(rt) => types.push(rt),
                None => {
                    self.diags.push(crate::fhir::unknown_resource_type(&t.text, t.span));
                    ok = false;
                }
            }
        }
        let profile = match profile {
            Some(p) => {
                let path = self.resolve(p);
                let problem = match std::fs::read(&path) {
                    Err(e) => Some(format!("cannot read {}: {e}", display_path(&path))),
                    Ok(bytes) => sluice_fhir::profile::Profile::from_bytes(&bytes).err(),
                };
                if let Some(problem) = problem {
                    self.diags.push(
                        Diagnostic::error(
                            codes::FHIR_PROFILE_UNUSABLE,
                            format!("`{}` is not a usable StructureDefinition: {problem}", p.text),
                        )
                        .label(p.span, format!("resolved to {}", display_path(&path)))
                        .help("name a StructureDefinition (JSON or XML); `sluice validate --format fhir --profile FILE` checks it"),
                    );
                    ok = false;
                }
                Some(display_path(&path))
            }
            None => None,
        };
        if !ok {
            return None;
        }
        let one = match types.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        let plan = crate::plan::FhirSourcePlan {
            resource_types: types.iter().map(|t| t.to_string()).collect(),
            profile,
            mode: fhir.mode,
        };
        Some((plan, Flow::Fhir(one)))
    }

    /// What a bus source's (`kafka`, `amqp`) messages are, as its plan says it: the format,
    /// the HL7 v2 parser profile, the FHIR or X12 reading, and what flows out of the source.
    fn bus_payload(&mut self, common: &crate::spec::bus::Common) -> Option<(SourcePlan, Flow)> {
        if let Some(fhir) = &common.fhir {
            let (plan, flow) = self.fhir_source(common.profile.as_ref(), fhir)?;
            let source = SourcePlan {
                fhir: Some(Box::new(plan)),
                ..SourcePlan::new("", "fhir", vec![], profile::default_profile())
            };
            return Some((source, flow));
        }
        if let Some(x12) = &common.x12 {
            let partners = match &common.profile {
                Some(p) => Some(Box::new(self.x12_profile_at(p)?)),
                None => None,
            };
            let mut plan = crate::x12::source_plan(&mut self.diags, x12, None)?;
            plan.partners = partners;
            let source = SourcePlan {
                x12: Some(Box::new(plan)),
                ..SourcePlan::new("", "x12", vec![], profile::default_profile())
            };
            return Some((source, Flow::X12));
        }
        let profile = match &common.profile {
            Some(p) => self.hl7_profile_at(p)?,
            None => profile::default_profile(),
        };
        let version = Version::parse(&profile.version)?;
        Some((SourcePlan::new("", "hl7v2", vec![], profile), Flow::Hl7(version)))
    }

    /// A map stage whose mapping reads FHIR resources of type `resource_type` (written at
    /// `at`): its input must be FHIR resources that can be of that type.
    fn fhir_map(
        &mut self,
        c: &ComponentSpec,
        mid: FileId,
        flow: Flow,
        (resource_type, at): (&'static str, Span),
        (state, origins): (PhiState, Origins),
    ) -> Option<(ComponentKind, Flow, (PhiState, Origins))> {
        let input_at = c.inputs.first().map_or(c.name_span, |i| i.span);
        let wrong = match flow {
            Flow::Unknown => return None,
            Flow::Fhir(Some(t)) if t != resource_type => Some(format!("FHIR `{t}` resources")),
            Flow::Fhir(_) => None,
            Flow::Hl7(_) => Some("HL7 v2 messages".to_string()),
            Flow::X12 => Some("X12 transaction sets".to_string()),
            Flow::Stripe(_) => Some("Stripe objects".to_string()),
            Flow::QuickBooks(_) => Some("QuickBooks entities".to_string()),
            Flow::Plaid(_) => Some("Plaid objects".to_string()),
            Flow::Output(o) => Some(format!("{} records", o.name)),
        };
        if let Some(wrong) = wrong {
            self.diags.push(
                Diagnostic::error(
                    codes::FHIR_INPUT_MISMATCH,
                    format!(
                        "map stage `{}` maps FHIR `{resource_type}` resources, but its input emits {wrong}",
                        c.name
                    ),
                )
                .label(input_at, format!("emits {}", flow.name()))
                .label(at, format!("the mapping reads `{resource_type}`"))
                .help(format!("feed it from a `format: fhir` source with `resource_types: [{resource_type}]`")),
            );
            return None;
        }
        self.mapped(mid, (state, origins))
    }

    /// A map stage over FHIR resources or X12 sets (its input checked) with mapping `mid`:
    /// its plan, and the PHI state of what flows on.
    fn mapped(
        &mut self,
        mid: FileId,
        (mut state, mut origins): (PhiState, Origins),
    ) -> Option<(ComponentKind, Flow, (PhiState, Origins))> {
        let m = self.mapping(mid)?;
        let (plan, output) = (m.plan.clone(), m.output);
        let spans: Vec<(String, BTreeSet<PhiClass>, Span)> = m.leaf_classes.clone();
        let leaves: Vec<(String, BTreeSet<PhiClass>, String)> =
            spans.into_iter().map(|(p, c, s)| (p, c, self.sources.location(s))).collect();
        // A map stage replaces the record: only what the mapping writes flows on.
        state.clear();
        origins.0.clear();
        for (path, classes, at) in leaves {
            for class in classes {
                state.insert((path.clone(), class), None);
                origins.0.insert((path.clone(), class), at.clone());
            }
        }
        Some((ComponentKind::Map(plan), Flow::Output(output), (state, origins)))
    }
}
