//! Reading FHIR paths in their runtime form (`sluice_compiler::fhir`) from a resource held as a
//! [`Doc`]: `name[0].family`, `identifier.value`, `valueQuantity.value`, `effective[x]`,
//! `name.first().given.last()`, `contained.ofType(Patient).gender`,
//! `subject.resolve().birthDate`.
//!
//! Semantics are FHIRPath's: every step maps over a collection, arrays are flattened, `[n]`
//! and `first()`/`last()` pick from the collection so far, a missing element yields nothing.
//!
//! Invariants: never panics, whatever the path or the document (the compiler checked the path
//! against the schema; the document may still be anything); no recursion.

use crate::fhir_source::BundleIndex;
use crate::record::Doc;

/// The resource a Reference (`{"reference": "Patient/1"}`) points at, if it is at hand.
fn target<'d>(resource: &'d Doc, bundle: Option<&'d BundleIndex>, reference: &Doc) -> Option<&'d Doc> {
    let Some(Doc::Str(r)) = reference.get("reference") else { return None };
    if let Some(id) = r.strip_prefix('#') {
        let Some(Doc::Arr(contained)) = resource.get("contained") else { return None };
        return contained.iter().find(|c| matches!(c.get("id"), Some(Doc::Str(i)) if i == id));
    }
    bundle?.target(r)
}

/// The values `path` selects in `resource`, in document order.
pub fn select<'d>(resource: &'d Doc, path: &str) -> Vec<&'d Doc> {
    select_in(resource, None, path)
}

/// Like [`select`], `resolve()` finding the targets of references among the resources
/// `contained` in `resource` (`#id`) and the entries of `bundle` (fullUrl, or type and id); a
/// reference whose target is in neither yields nothing.
pub fn select_in<'d>(resource: &'d Doc, bundle: Option<&'d BundleIndex>, path: &str) -> Vec<&'d Doc> {
    let mut focus: Vec<&'d Doc> = vec![resource];
    for step in path.split('.').filter(|s| !s.is_empty()) {
        if step == "resolve()" {
            focus = focus.iter().filter_map(|d| target(resource, bundle, d)).collect();
            continue;
        }
        if let Some(arg) = step.strip_prefix("ofType(").and_then(|s| s.strip_suffix(')')) {
            focus.retain(|d| matches!(d.get("resourceType"), Some(Doc::Str(t)) if t == arg));
            continue;
        }
        match step {
            "first()" => focus.truncate(1),
            "last()" => {
                let last = focus.pop();
                focus = last.into_iter().collect();
            }
            _ => {
                let (name, indexes) = match step.find('[') {
                    Some(i) => (&step[..i], &step[i..]),
                    None => (step, ""),
                };
                let choice = indexes.starts_with("[x]");
                let mut next = Vec::new();
                for d in &focus {
                    let Doc::Obj(members) = d else { continue };
                    for (k, v) in members {
                        let hit = if choice {
                            k.strip_prefix(name).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
                        } else {
                            k == name
                        };
                        if hit {
                            match v {
                                Doc::Arr(items) => next.extend(items.iter()),
                                Doc::Null => {}
                                other => next.push(other),
                            }
                        }
                    }
                }
                focus = next;
                let indexes = if choice { &indexes[3..] } else { indexes };
                for n in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
                    focus = n.parse::<usize>().ok().and_then(|n| focus.get(n).copied()).into_iter().collect();
                }
            }
        }
    }
    focus
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: &str) -> Doc {
        crate::fhir_source::to_doc(&sluice_fhir::json::parse(json.as_bytes()).unwrap())
    }

    fn texts(d: &Doc, path: &str) -> Vec<String> {
        select(d, path).iter().map(|v| v.to_json_string()).collect()
    }

    #[test]
    fn paths_map_over_collections() {
        let p = doc(r#"{"resourceType":"Patient","name":[{"family":"A","given":["x","y"]},{"family":"B"}],
            "identifier":[{"value":"1"},{"value":"2"}],"birthDate":"1980-01-02",
            "contained":[{"resourceType":"Organization","name":"o"},{"resourceType":"Patient","gender":"male"}]}"#);
        assert_eq!(texts(&p, "name[0].family"), ["\"A\""]);
        assert_eq!(texts(&p, "name.family"), ["\"A\"", "\"B\""]);
        assert_eq!(texts(&p, "identifier.value"), ["\"1\"", "\"2\""]);
        assert_eq!(texts(&p, "name.first().given.last()"), ["\"y\""]);
        assert_eq!(texts(&p, "name[5].family"), Vec::<String>::new());
        assert_eq!(texts(&p, "contained.ofType(Patient).gender"), ["\"male\""]);
        assert_eq!(texts(&p, "birthDate"), ["\"1980-01-02\""]);
        let o = doc(r#"{"resourceType":"Observation","valueQuantity":{"value":72.50},"effectiveDateTime":"2024"}"#);
        assert_eq!(texts(&o, "valueQuantity.value"), ["72.50"]);
        assert_eq!(texts(&o, "effective[x]"), ["\"2024\""]);
        // references: contained ones always, Bundle entries when the Bundle is at hand
        let o = doc(
            r##"{"resourceType":"Observation","subject":{"reference":"#p"},"performer":[{"reference":"Practitioner/9"}],
            "contained":[{"resourceType":"Patient","id":"p","birthDate":"1970"}]}"##,
        );
        assert_eq!(texts(&o, "subject.resolve().birthDate"), ["\"1970\""]);
        assert_eq!(texts(&o, "performer.resolve().id"), Vec::<String>::new());
        for weird in ["", ".", "[", "x[", "ofType(", "a[1][2].b[x]", "first().last()"] {
            let _ = select(&o, weird);
        }
    }
}
