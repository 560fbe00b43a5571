//! Regenerates `specs/fhir/data/r4.txt` from the FHIR R4 StructureDefinitions and JSON Schema.
//!
//! Usage: `cargo run -p sluice-fhir --bin gen-fhir-schema [CORPUS_ROOT]`
//! (default `../shared/corpus` beside the repository; see docs/fhir-schema.md).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus =
        std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| manifest.join("../../../shared/corpus"));
    let out = manifest.join("data/r4.txt");
    match sluice_fhir::generate::generate(&corpus) {
        Ok(text) => match std::fs::write(&out, &text) {
            Ok(()) => {
                println!("wrote {} ({} bytes, {} lines)", out.display(), text.len(), text.lines().count());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", out.display());
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
