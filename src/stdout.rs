//! Standard output for the commands that print results (parse, validate, ack, explain, check
//! reports, audit export, keys): a write that fails ends the command at once instead of being
//! ignored.
//!
//! Invariants:
//! - A reader that went away (`sluice parse ... | head -1`) ends the command quietly with exit
//!   141 (128 + SIGPIPE, what a shell shows for `cat` cut short), with nothing on stderr.
//! - Any other failure (a full disk behind `> out.jsonl`) ends it with exit 2 and an error that
//!   names the kind of failure, so a truncated output is never reported as a success.
//! - Only stdout is concerned: sockets (MLLP, HTTP sinks) keep their own error handling.

use std::io::{BufWriter, StdoutLock, Write};

/// Exit code of a command whose stdout was closed by its reader.
pub(crate) const CLOSED: i32 = 141;

/// Stdout that stops the command when a write fails.
pub(crate) struct Output<W: Write>(W);

/// Locks stdout for a command's results, buffered: for commands that print many lines and
/// nothing through `println!` meanwhile (which would overtake the buffer).
pub(crate) fn lock() -> Output<BufWriter<StdoutLock<'static>>> {
    Output(BufWriter::new(std::io::stdout().lock()))
}

/// Locks stdout for a command's results, line-buffered as `println!` is, so both can be mixed.
pub(crate) fn lock_direct() -> Output<StdoutLock<'static>> {
    Output(std::io::stdout().lock())
}

/// Ends the command on a failed write of its results (see the module invariants).
pub(crate) fn stop(e: &std::io::Error) -> ! {
    stop_on(e.kind() == std::io::ErrorKind::BrokenPipe, &e.kind().to_string())
}

/// [`stop`], given whether the reader went away and what else went wrong.
pub(crate) fn stop_on(reader_gone: bool, what: &str) -> ! {
    if reader_gone {
        std::process::exit(CLOSED);
    }
    eprintln!("error: cannot write the output: {what}");
    std::process::exit(i32::from(crate::commands::USAGE));
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).or_else(|e| stop(&e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().or_else(|e| stop(&e))
    }
}

impl<W: Write> Drop for Output<W> {
    fn drop(&mut self) {
        // What is still buffered must reach the reader (or fail loudly), as an explicit flush.
        let _ = self.flush();
    }
}
