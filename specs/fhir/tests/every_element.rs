//! Every element of every type resolves by its own path, with its own types and cardinality,
//! in each spelling a mapping may use: as the StructureDefinition writes it (`value[x]`), by
//! base name (`value`), and by JSON name for each choice type (`valueQuantity`).

use sluice_fhir::{Kind, schema};

#[test]
fn every_element_resolves_by_its_own_path() {
    let s = schema();
    let mut checked = 0;
    for t in s.types() {
        for e in &t.elements {
            let resolved = s.resolve(&e.path).unwrap_or_else(|err| panic!("{}: {err}", e.path));
            assert_eq!(resolved.element().map(|r| r.path.as_str()), Some(e.path.as_str()), "{}", e.path);
            if e.content_reference.is_none() {
                let own: Vec<&str> = e.type_names().collect();
                assert_eq!(resolved.types, own, "{}", e.path);
            }
            assert!(resolved.phi.is_some() || e.phi.is_none(), "{}: own class lost", e.path);
            checked += 1;
            if e.choice {
                let base = e.path.strip_suffix("[x]").expect("choice paths end in [x]");
                let by_base = s.resolve(base).unwrap_or_else(|err| panic!("{base}: {err}"));
                assert!(by_base.is_choice && by_base.types == resolved.types, "{base}");
                for ty in &e.types {
                    let mut json = String::from(base);
                    let mut chars = ty.code.chars();
                    json.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                    json.push_str(chars.as_str());
                    let by_json = s.resolve(&json).unwrap_or_else(|err| panic!("{json}: {err}"));
                    assert_eq!(by_json.types, [ty.code.as_str()], "{json}");
                    let by_as = format!("{base}.as({})", ty.code);
                    assert_eq!(
                        s.resolve(&by_as).unwrap_or_else(|err| panic!("{by_as}: {err}")).types,
                        [ty.code.as_str()]
                    );
                    checked += 2;
                }
            }
        }
    }
    assert!(checked > 7000, "only {checked} paths checked");
}

#[test]
fn every_resource_has_the_resource_elements() {
    let s = schema();
    for r in s.resource_types() {
        for name in ["id", "meta", "implicitRules", "language"] {
            s.resolve(&format!("{r}.{name}")).unwrap_or_else(|e| panic!("{r}.{name}: {e}"));
        }
        assert!(s.type_def(r).is_some_and(|t| t.kind == Kind::Resource));
    }
}
