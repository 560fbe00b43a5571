//! The fuzz corpus as plain regression tests: every file under `tests/fuzz_corpus/<target>/` is
//! run through the property of fuzz target `<target>` (`fuzz/props/hl7.rs`, the same code the
//! fuzz targets call). No fuzzer needed. See `docs/fuzzing.md` for how the files were found and
//! how to refresh them.

#[path = "../../../fuzz/props/hl7.rs"]
mod props;

#[path = "../../../fuzz/props/corpus.rs"]
mod corpus;

/// Runs `property` over this crate's committed corpus for `target`.
fn run_corpus(target: &str, property: fn(&[u8])) {
    corpus::run_corpus(env!("CARGO_MANIFEST_DIR"), target, property);
}

#[test]
fn hl7_parse_corpus() {
    run_corpus("hl7_parse", props::parse_round_trip);
}

#[test]
fn hl7_split_corpus() {
    run_corpus("hl7_split", props::split_consistent);
}

#[test]
fn hl7_escape_corpus() {
    run_corpus("hl7_escape", props::escape_inverse);
}

#[test]
fn hl7_path_corpus() {
    run_corpus("hl7_path", props::path_round_trip);
}

/// Found by `hl7_escape` (and failing `hl7_parse`'s round trip): `escape` writes
/// `\F\ \S\ \T\ \R\ \E\ \X0D\ \X0A\`, so one of their characters in MSH-2 split them and values did
/// not round trip (`\X7C\` decoded to `|`, re-encoded as `\F\`, which the component character
/// `F` then split). Such delimiters are now rejected with HL7003; other letters still parse.
#[test]
fn escape_sequence_characters_as_delimiters_are_hl7003() {
    use sluice_hl7v2::codec::parse_message;
    for text in ["MSH|F~\\&\rPID|\\X7C\\", "MSH|D~\\&\rPID|a\\X0d\\b", "MSH|^~\\0", "MSH|^~\\&A", "MSH|^~E&"] {
        let e = parse_message(text).expect_err(text);
        assert_eq!(e.code, "HL7003", "{text:?}: {e}");
    }
    for text in ["MSH!$r?@!A", "MSH|^~\\Z", "MSH|^~\\&1"] {
        assert!(parse_message(text).is_ok(), "{text:?}");
    }
}

#[test]
fn hl7_batch_corpus() {
    run_corpus("hl7_batch", props::batch_conserves);
}

#[test]
fn hl7_charset_corpus() {
    run_corpus("hl7_charset", props::charset_decodes_faithfully);
}

#[test]
fn hl7_validate_corpus() {
    run_corpus("hl7_validate", props::validate_is_safe);
}

#[test]
fn mllp_framer_corpus() {
    run_corpus("mllp_framer", props::mllp_consistent);
}

/// ACK building over its own corpus and every committed input of the parser and framer corpora.
#[test]
fn hl7_ack_corpus() {
    run_corpus("hl7_ack", props::ack_round_trip);
    run_corpus("hl7_parse", props::ack_round_trip);
    run_corpus("mllp_framer", props::ack_round_trip);
}
