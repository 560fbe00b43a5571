//! A command whose stdout reader has gone (`sluice parse ... | head -1`) stops quietly with exit
//! 141 (128 + SIGPIPE), as other command-line tools do: no panic message, no backtrace. One whose
//! stdout cannot take the output (a full disk) stops with exit 2 and says so: a cut-off output
//! is never a success.

use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_stops_the_command_quietly() {
    for args in [
        &["schema"][..],
        &["parse", "--format", "hl7v2", "examples/hl7/feed-2024-01-15.hl7"][..],
        &["explain", "SL201"][..],
    ] {
        // The read end is closed before the command starts, so its first write fails: no race
        // with how much a pipe buffer would have taken.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "sluice {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "sluice {args:?}: {stderr}");
    }
}

#[test]
fn a_full_stdout_is_an_error_not_a_success() {
    if !std::path::Path::new("/dev/full").exists() {
        println!("SKIPPED: no /dev/full on this machine");
        return;
    }
    for args in [&["schema"][..], &["parse", "--format", "hl7v2", "examples/hl7/feed-2024-01-15.hl7"][..]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .stdout(Stdio::from(full))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "sluice {args:?}: {stderr}");
        assert!(stderr.contains("error: cannot write the output"), "sluice {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "sluice {args:?}: {stderr}");
    }
}
