//! Property tests: the parsers that read what users and other programs write (DLQ files, audit
//! logs, DLQ keys, `Retry-After` headers) never panic, whatever the input, and give back what
//! they were given when it is well formed.

use proptest::prelude::*;
use sluice_runtime::dlq::{DlqKey, read_entries};

/// A file in the temp directory, named for this process and test (each test removes its own).
fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("sluice-parsers-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn dlq_files_of_any_bytes_read_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let path = temp_file("dlq.jsonl", &bytes);
        if let Err(e) = read_entries(&path) {
            // The error names a line, never its content.
            prop_assert!(e.contains("line"), "{e}");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn audit_logs_of_any_bytes_verify_or_fail_cleanly(lines in proptest::collection::vec("[ -~]{0,80}", 0..6)) {
        let path = temp_file("audit.jsonl", lines.join("\n").as_bytes());
        let _ = sluice_runtime::verify_audit_chain(&path);
        let _ = sluice_runtime::audit::last_entry(&path);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn dlq_keys_of_any_bytes_parse_or_fail_without_showing_them(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Err(why) = DlqKey::parse(&bytes) {
            let text = String::from_utf8_lossy(&bytes);
            prop_assert!(text.trim().len() < 4 || !why.contains(text.trim()), "{why}");
        }
    }

    #[test]
    fn any_32_byte_key_in_hex_or_base64_parses(key in proptest::collection::vec(any::<u8>(), 32)) {
        use base64::Engine;
        prop_assert!(DlqKey::parse(hex::encode(&key).as_bytes()).is_ok());
        prop_assert!(DlqKey::parse(base64::engine::general_purpose::STANDARD.encode(&key).as_bytes()).is_ok());
    }

    #[test]
    fn retry_after_of_any_text_never_panics(text in "\\PC{0,40}", now in any::<i64>()) {
        let _ = sluice_runtime::retry::parse_retry_after(&text, now);
    }

    #[test]
    fn retry_after_seconds_read_back(secs in 0u64..10_000_000) {
        prop_assert_eq!(
            sluice_runtime::retry::parse_retry_after(&secs.to_string(), 0),
            Some(std::time::Duration::from_secs(secs))
        );
    }
}
