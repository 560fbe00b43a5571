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

    /// An I/O error on a file; the error's own text names no data.
    pub fn io(what: &str, path: &std::path::Path, err: &std::io::Error) -> Self {
        RunError::new(crate::findings::IO, format!("cannot {what} `{}`: {}", path.display(), err.kind()))
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
