//! Checks of object-store paths (`s3://`, `az://`, `gs://`) and their `store:` blocks, for
//! `files` sources and `jsonl`/`csv` sinks: URL shape (SL250), one store per source (SL251),
//! keys that fit the store (SL252), complete credential pairs (SL253), `after.move_to` outside
//! what the source lists (SL254), `after.tag` on S3 and Azure only (SL247) with tags the store accepts
//! (SL248, SL249), whatever the source's format (HL7 v2, FHIR, X12). Inline credentials are refused
//! earlier, by the spec reader (SL205).
//!
//! Invariants: pure (no I/O); a plan's [`StorePlan`] holds secret references only.

use crate::codes;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::plan::object_store::{ObjectUrl, StorePlan};
use crate::source::Span;
use crate::spec::pipeline::{StoreSpec, TagSpec};
use crate::spec::reader::Spanned;

/// What a component's paths turned out to be.
pub enum Paths {
    /// Local files (no URL among them, no `store`).
    Local,
    /// Objects of one store.
    Remote(Box<StorePlan>),
}

fn url_diagnostic(path: &Spanned, why: String) -> Diagnostic {
    Diagnostic::error(codes::OBJECT_URL, format!("`{}` is not an object URL Sluice can use: {why}", path.text))
        .label(path.span, "expected `s3://bucket/key`, `az://container/key` or `gs://bucket/key`")
        .help("write the bucket (or container) right after `://`; local paths have no `scheme://`")
}

/// Classifies a source's (or sink's) paths and builds the store's plan; `None` after a
/// diagnostic. `component` names the source or sink for messages.
pub fn check(
    diags: &mut Diagnostics,
    paths: &[Spanned],
    store: Option<&StoreSpec>,
    component: &str,
    name_span: Span,
) -> Option<Paths> {
    let mut remote: Option<(ObjectUrl, &Spanned)> = None;
    let mut local: Option<&Spanned> = None;
    let mut ok = true;
    for path in paths {
        match ObjectUrl::parse(&path.text) {
            None => local = local.or(Some(path)),
            Some(Err(problem)) => {
                diags.push(url_diagnostic(path, problem.describe()));
                ok = false;
            }
            Some(Ok(url)) => match &remote {
                Some((first, at)) if first.store_url() != url.store_url() => {
                    diags.push(
                        Diagnostic::error(
                            codes::OBJECT_STORE_MIXED,
                            format!("`{component}` reads from `{}` and from `{}`", first.store_url(), url.store_url()),
                        )
                        .label(path.span, "another bucket")
                        .label(at.span, "the first one")
                        .help("one source reads one bucket (or container): give each its own source"),
                    );
                    ok = false;
                }
                Some(_) => {}
                None => remote = Some((url, path)),
            },
        }
    }
    if !ok {
        return None;
    }
    match (remote, local) {
        (Some((_, url_at)), Some(local_at)) => {
            diags.push(
                Diagnostic::error(
                    codes::OBJECT_STORE_MIXED,
                    format!("`{component}` mixes local paths and object URLs"),
                )
                .label(local_at.span, "a local path")
                .label(url_at.span, "an object URL")
                .help("read local files and objects in two sources"),
            );
            None
        }
        (None, _) => match store {
            Some(s) => {
                diags.push(
                    Diagnostic::error(
                        codes::OBJECT_STORE_MISPLACED,
                        format!("`{component}` has a `store` block, and its paths are local"),
                    )
                    .label(s.span, "describes an object store")
                    .label(name_span, "reads local paths")
                    .help("write the paths as `s3://bucket/...`, `az://container/...` or `gs://bucket/...`, or remove `store`"),
                );
                None
            }
            None => Some(Paths::Local),
        },
        (Some((url, _)), _) => store_plan(diags, &url, store).map(|p| Paths::Remote(Box::new(p))),
    }
}

/// The store's plan for `url`, its keys checked against the scheme.
fn store_plan(diags: &mut Diagnostics, url: &ObjectUrl, store: Option<&StoreSpec>) -> Option<StorePlan> {
    let mut plan = StorePlan { scheme: url.scheme.clone(), bucket: url.bucket.clone(), ..StorePlan::default() };
    let Some(s) = store else { return Some(plan) };
    let text = |v: &Option<Spanned>| v.as_ref().map(|s| s.text.clone());
    let foreign: &[(&str, &Option<Spanned>)] = match url.scheme.as_str() {
        "s3" => {
            &[("account", &s.account), ("access_key", &s.access_key), ("service_account_key", &s.service_account_key)]
        }
        "az" => &[
            ("region", &s.region),
            ("access_key_id", &s.access_key_id),
            ("secret_access_key", &s.secret_access_key),
            ("service_account_key", &s.service_account_key),
        ],
        _ => &[
            ("region", &s.region),
            ("access_key_id", &s.access_key_id),
            ("secret_access_key", &s.secret_access_key),
            ("account", &s.account),
            ("access_key", &s.access_key),
        ],
    };
    let mut ok = true;
    for (key, value) in foreign {
        if let Some(v) = value {
            diags.push(
                Diagnostic::error(
                    codes::OBJECT_STORE_MISPLACED,
                    format!("`{key}` does not apply to a `{}://` store", url.scheme),
                )
                .label(v.span, format!("not a key of {}", scheme_name(&url.scheme)))
                .help("remove it; `docs/spec-reference.md` lists each store's keys"),
            );
            ok = false;
        }
    }
    if let Some(e) = &s.endpoint
        && !(e.text.starts_with("http://") || e.text.starts_with("https://"))
    {
        diags.push(
            Diagnostic::error(codes::OBJECT_URL, format!("the endpoint `{}` is not an http(s) URL", e.text))
                .label(e.span, "expected `https://host[:port]` or `http://127.0.0.1:port`")
                .help("write the endpoint's full URL, with its scheme"),
        );
        ok = false;
    }
    let half = match (&s.access_key_id, &s.secret_access_key) {
        (Some(k), None) => Some((k.span, "`access_key_id` without `secret_access_key`")),
        (None, Some(k)) => Some((k.span, "`secret_access_key` without `access_key_id`")),
        _ => None,
    };
    let half = half.or(match (&s.access_key, &s.account) {
        (Some(k), None) => Some((k.span, "`access_key` without `account`")),
        _ => None,
    });
    if let Some((span, what)) = half {
        diags.push(
            Diagnostic::error(
                codes::OBJECT_STORE_CREDENTIALS,
                format!("the store's credentials are incomplete: {what}"),
            )
            .label(span, "half of a credential")
            .help(
                "write both keys as secret references (`${VARIABLE}`), or neither to use the environment's credentials",
            ),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    plan.region = text(&s.region);
    plan.endpoint = text(&s.endpoint);
    plan.access_key_id = text(&s.access_key_id);
    plan.secret_access_key = text(&s.secret_access_key);
    plan.account = text(&s.account);
    plan.access_key = text(&s.access_key);
    plan.service_account_key = text(&s.service_account_key);
    Some(plan)
}

fn scheme_name(scheme: &str) -> &'static str {
    match scheme {
        "s3" => "S3",
        "az" => "Azure Blob Storage",
        _ => "Google Cloud Storage",
    }
}

/// A sink's object URL must name one object: no glob in the key, and a key at all; `{run_id}`
/// (replaced by the run's id at upload) is the one placeholder.
pub fn check_sink_key(diags: &mut Diagnostics, path: &Spanned) -> bool {
    let Some(Ok(url)) = ObjectUrl::parse(&path.text) else { return true };
    let key = url.key.replace("{run_id}", "");
    if url.key.is_empty() || url.key.ends_with('/') || key.contains(['*', '?', '[', '{', '}']) {
        diags.push(url_diagnostic(
            path,
            "a sink writes one object: name its key, without wildcards (`{run_id}` is the only placeholder)".into(),
        ));
        return false;
    }
    true
}

/// `after: {move_to}` of a source: only for objects, a plain key prefix, outside every
/// pattern's listed prefix (a moved object would be listed again, as a new one). Puts the
/// prefix, ending in `/`, into the store's plan.
pub fn check_move_to(
    diags: &mut Diagnostics,
    located: Paths,
    paths: &[Spanned],
    move_to: Option<&Spanned>,
) -> Option<Paths> {
    let Some(m) = move_to else { return Some(located) };
    let refuse = |diags: &mut Diagnostics, why: String| {
        diags.push(
            Diagnostic::error(codes::OBJECT_MOVE_TO, format!("`move_to: {}` cannot be used here: {why}", m.text))
                .label(m.span, "moved objects go here")
                .help("use a key prefix beside the source's, e.g. `processed/` for `inbound/**/*.hl7`"),
        );
    };
    let Paths::Remote(mut store) = located else {
        refuse(diags, "the source reads local files, which are not moved".into());
        return None;
    };
    let prefix = format!("{}/", m.text.trim_matches('/'));
    if crate::plan::object_store::is_url(&m.text) || m.text.contains(['*', '?', '[', '{']) || prefix == "/" {
        refuse(diags, "it must be a key prefix in the same bucket, without `scheme://` or wildcards".into());
        return None;
    }
    for path in paths {
        let Some(Ok(url)) = ObjectUrl::parse(&path.text) else { continue };
        let listed: Vec<&str> = url.key.split('/').take_while(|p| !p.contains(['*', '?', '[', '{'])).collect();
        let listed = listed.join("/");
        // A pattern without wildcards lists one key; with them, everything under its literal part.
        let under =
            if listed == url.key { prefix.starts_with(&format!("{listed}/")) } else { prefix.starts_with(&listed) };
        if under {
            refuse(diags, format!("`{}` lists that prefix too, and would read the moved objects again", path.text));
            return None;
        }
    }
    store.move_to = Some(prefix);
    Some(Paths::Remote(store))
}

/// The limits S3 and Azure Blob Storage share on an object's tags: how many, and the length
/// of a key and of a value in characters.
pub const MAX_TAGS: usize = 10;
const MAX_TAG_KEY: usize = 128;
const MAX_TAG_VALUE: usize = 256;

/// A store whose objects Sluice can tag, with that store's own rules for tag text.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TagRules {
    /// S3: letters, digits and spaces (Unicode), and `+ - = . _ : / @`; `aws:` keys reserved.
    S3,
    /// Azure Blob index tags: ASCII letters, digits and spaces, and `+ - . / : = _` only.
    Azure,
}

impl TagRules {
    fn store(self) -> &'static str {
        match self {
            TagRules::S3 => "S3",
            TagRules::Azure => "Azure Blob Storage",
        }
    }

    fn allows(self, c: char) -> bool {
        match self {
            TagRules::S3 => {
                c.is_alphanumeric() || c == ' ' || matches!(c, '+' | '-' | '=' | '.' | '_' | ':' | '/' | '@')
            }
            TagRules::Azure => c.is_ascii_alphanumeric() || matches!(c, ' ' | '+' | '-' | '.' | '/' | ':' | '=' | '_'),
        }
    }

    fn help(self) -> &'static str {
        match self {
            TagRules::S3 => {
                "tags are literal text: letters, digits, spaces and `+ - = . _ : / @`; keys up to 128 characters, values up to 256"
            }
            TagRules::Azure => {
                "Azure blob tags are literal ASCII text: letters a-z and A-Z, digits, spaces and `+ - . / : = _`; keys up to 128 characters, values up to 256"
            }
        }
    }
}

/// Why a tag key or value is not one the store accepts, if it is not.
fn tag_problem(rules: TagRules, text: &str, max: usize, key: bool) -> Option<String> {
    let what = if key { "key" } else { "value" };
    let len = text.chars().count();
    if key && len == 0 {
        return Some("a tag key cannot be empty".into());
    }
    if len > max {
        return Some(format!("a tag {what} is at most {max} characters, this one has {len}"));
    }
    if let Some(c) = text.chars().find(|c| !rules.allows(*c)) {
        return Some(format!("`{}` is not allowed in a tag {what}", c.escape_debug()));
    }
    if rules == TagRules::S3 && key && text.to_ascii_lowercase().starts_with("aws:") {
        return Some("tag keys starting with `aws:` are reserved by AWS".into());
    }
    None
}

/// `after: {tag}` of a source: only for `s3://` and `az://` objects (SL247), at most
/// [`MAX_TAGS`] tags (SL249), each key and value within that store's rules (SL248). Puts the
/// tags into the store's plan.
pub fn check_tags(diags: &mut Diagnostics, located: Paths, tag: Option<&TagSpec>) -> Option<Paths> {
    let Some(tag) = tag else { return Some(located) };
    let (store, rules) = match located {
        Paths::Remote(store) if store.scheme == "s3" => (Some(store), TagRules::S3),
        Paths::Remote(store) if store.scheme == "az" => (Some(store), TagRules::Azure),
        Paths::Remote(store) => {
            diags.push(
                Diagnostic::error(
                    codes::OBJECT_TAG_UNSUPPORTED,
                    "`after.tag` cannot be used here: tagging is implemented for S3 and Azure Blob Storage, not for Google Cloud Storage",
                )
                .label(tag.span, format!("objects of `{}://` are not tagged", store.scheme))
                .help("remove `tag`, or mark processed objects with `move_to: processed/`"),
            );
            (None, TagRules::S3)
        }
        Paths::Local => {
            diags.push(
                Diagnostic::error(
                    codes::OBJECT_TAG_UNSUPPORTED,
                    "`after.tag` cannot be used here: the source reads local files, which have no tags",
                )
                .label(tag.span, "local files are not tagged")
                .help("remove `tag`; tags are for `s3://` and `az://` sources"),
            );
            (None, TagRules::S3)
        }
    };
    let mut ok = store.is_some();
    let name = rules.store();
    if tag.tags.len() > MAX_TAGS {
        diags.push(
            Diagnostic::error(
                codes::OBJECT_TAG_COUNT,
                format!("`after.tag` names {} tags; {name} keeps at most {MAX_TAGS} on an object", tag.tags.len()),
            )
            .label(tag.span, "too many tags")
            .help(format!("name at most {MAX_TAGS} tags (fewer leaves room for the tags other tools set)")),
        );
        ok = false;
    }
    for (key, value) in &tag.tags {
        for (part, max, is_key) in [(key, MAX_TAG_KEY, true), (value, MAX_TAG_VALUE, false)] {
            if let Some(why) = tag_problem(rules, &part.text, max, is_key) {
                diags.push(
                    Diagnostic::error(
                        codes::OBJECT_TAG_INVALID,
                        format!("tag `{}` is not a valid {name} tag: {why}", key.text),
                    )
                    .label(part.span, if is_key { "this key" } else { "this value" })
                    .help(rules.help()),
                );
                ok = false;
            }
        }
    }
    let mut store = store?;
    if !ok {
        return None;
    }
    store.tags = tag.tags.iter().map(|(k, v)| (k.text.clone(), v.text.clone())).collect();
    Some(Paths::Remote(store))
}

#[cfg(test)]
mod tests {
    use super::{TagRules, tag_problem};

    #[test]
    fn tags_follow_azures_rules() {
        let azure = |text: &str, max: usize, key: bool| tag_problem(TagRules::Azure, text, max, key);
        assert_eq!(azure("sluice-status", 128, true), None);
        assert_eq!(azure("Site A+B_c.d/2:3=x", 256, false), None);
        assert_eq!(azure("", 256, false), None);
        assert!(azure("", 128, true).is_some());
        assert!(azure(&"k".repeat(129), 128, true).is_some());
        assert!(azure(&"v".repeat(257), 256, false).is_some());
        assert!(azure("für", 128, true).is_some(), "ASCII only");
        assert!(azure("a@b", 256, false).is_some(), "`@` is S3's, not Azure's");
        assert!(azure("${TOKEN}", 256, false).is_some());
        assert_eq!(azure("aws:created", 128, true), None, "`aws:` is reserved by AWS only");
    }

    #[test]
    fn tags_follow_s3s_rules() {
        let tag_problem = |text: &str, max: usize, key: bool| tag_problem(TagRules::S3, text, max, key);
        assert_eq!(tag_problem("sluice-status", 128, true), None);
        assert_eq!(tag_problem("Abteilung für Aufnahme: 2/3 @ site=a+b_c.d", 128, true), None);
        assert_eq!(tag_problem("", 256, false), None);
        assert!(tag_problem("", 128, true).is_some());
        assert!(tag_problem(&"k".repeat(129), 128, true).is_some());
        assert_eq!(tag_problem(&"é".repeat(128), 128, true), None);
        assert!(tag_problem(&"v".repeat(257), 256, false).is_some());
        assert!(tag_problem("AWS:created", 128, true).is_some());
        assert!(tag_problem("${TOKEN}", 256, false).is_some());
        assert!(tag_problem("a,b", 256, false).is_some());
    }
}
