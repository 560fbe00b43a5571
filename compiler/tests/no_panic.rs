//! The compiler never panics, whatever the spec text: bundled specs with random edits (deleted,
//! inserted or replaced characters, swapped lines) and arbitrary text are checked end to end.
//! Each case writes a small spec pack into a temporary directory and runs `check_paths` on it.

use std::path::PathBuf;

use proptest::prelude::*;
use sluice_compiler::compile::Compiler;

const FILES: &[(&str, &str)] = &[
    ("pipelines/quickstart.yaml", include_str!("../../pipelines/quickstart.yaml")),
    ("mappings/base/hl7v2-patient-event.yaml", include_str!("../../mappings/base/hl7v2-patient-event.yaml")),
    ("mappings/base/profiles/default.yaml", include_str!("../../mappings/base/profiles/default.yaml")),
    ("mappings/base/rules/patient-event.yaml", include_str!("../../mappings/base/rules/patient-event.yaml")),
    ("mappings/base/policies/quickstart.yaml", include_str!("../../mappings/base/policies/quickstart.yaml")),
    ("mappings/base/hl7v2-patient-event.test.yaml", include_str!("../../mappings/base/hl7v2-patient-event.test.yaml")),
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    SwapLines(usize, usize),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match *e {
            Edit::Delete(i) => {
                if !chars.is_empty() {
                    chars.remove(i % n);
                }
            }
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Replace(i, c) => {
                if !chars.is_empty() {
                    chars[i % n] = c;
                }
            }
            Edit::SwapLines(a, b) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if !lines.is_empty() {
                    let (a, b) = (a % lines.len(), b % lines.len());
                    lines.swap(a, b);
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop_oneof![
        Just(':'),
        Just('-'),
        Just(' '),
        Just('\n'),
        Just('"'),
        Just('\''),
        Just('['),
        Just(']'),
        Just('{'),
        Just('*'),
        Just('.'),
        Just('('),
        Just('\t'),
        Just('é'),
        any::<char>()
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
    ]
}

fn check_pack(case: u64, files: &[(&str, String)]) {
    let dir = std::env::temp_dir().join(format!("sluice-nopanic-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let mut c = Compiler::default();
    let _ = c.check_paths(&[PathBuf::from(&dir)]);
    // Every diagnostic renders in every format without panicking.
    for d in c.diags.items() {
        for f in [
            sluice_compiler::diagnostics::Format::Human,
            sluice_compiler::diagnostics::Format::Json,
            sluice_compiler::diagnostics::Format::Github,
        ] {
            let _ = sluice_compiler::diagnostics::render(d, &c.sources, f);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn edited_bundled_specs_never_panic(which in 0..FILES.len(), edits in prop::collection::vec(edit(), 1..6), case in any::<u64>()) {
        let files: Vec<(&str, String)> = FILES
            .iter()
            .enumerate()
            .map(|(i, (rel, text))| (*rel, if i == which { apply(text, &edits) } else { text.to_string() }))
            .collect();
        check_pack(case, &files);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}", case in any::<u64>()) {
        check_pack(case, &[("a.yaml", text)]);
    }
}
