//! [`RunError`]: why a run could not start or had to stop.
//!
//! Invariants:
//! - Messages and help never include data values or secret values: they name components,
//!   files, paths in a message, environment variables and codes only.
//! - Every code is registered in [`crate::findings::FINDINGS`] (`RT0xx`).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunError {
    pub code: &'static str,
    pub message: String,
    pub help: Option<String>,
}

impl RunError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        RunError { code, message: message.into(), help: None }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// An I/O error on a file; the error's own text names no data. The help says what to check
    /// for the common kinds, and that a run with a state store can be resumed.
    pub fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let fix = match err.kind() {
            K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
                "free space on that file system (or raise the quota)"
            }
            K::PermissionDenied | K::ReadOnlyFilesystem => "check the file's and its directory's permissions",
            K::NotFound => "check the path (relative paths in specs are relative to the spec file)",
            K::NotADirectory | K::IsADirectory => {
                "a part of the path is a file where a directory is expected, or the other way round"
            }
            _ => "check the path, the disk and the permissions",
        };
        RunError::new(crate::findings::IO, format!("cannot {what} `{}`: {}", path.display(), err.kind())).with_help(
            format!("{fix}; a run with a state store (`state:`) then continues from its last checkpoint with `sluice run --resume`"),
        )
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {}
