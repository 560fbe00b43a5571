//! The progress line of `sluice run` on a terminal: records in, delivered, DLQ, filtered, the
//! recent rate, per-source counts and checkpoints, redrawn a few times a second on stderr from
//! the run's [`Progress`] snapshots.
//!
//! Invariants:
//! - Drawn only when stderr is a terminal (and not with `--quiet`); otherwise nothing is
//!   written, so logs and pipes see exactly what they saw without it.
//! - It reads snapshots on its own thread: the run never waits for it.
//! - Counts and component names only, never a data value.
//! - Other stderr lines of the run go through a [`LinePrinter`], which lifts the line,
//!   prints, and redraws it, so they are never garbled; the line is cleared before the summary.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sluice_runtime::progress::{Progress, Snapshot};

/// How often the line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);
/// The rate shown is over about this much recent time.
const RATE_WINDOW: Duration = Duration::from_secs(3);

/// The line while the run goes; `None` inside when it is not shown.
pub struct ProgressLine {
    shown: Option<Shown>,
}

struct Shown {
    bar: ProgressBar,
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl ProgressLine {
    /// Starts the line, given the run's counts when it is to be shown (stderr is a terminal
    /// and not `--quiet`); without them, a line that prints nothing.
    pub fn start(progress: Option<Arc<Progress>>) -> ProgressLine {
        let Some(progress) = progress else {
            return ProgressLine { shown: None };
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(8));
        let style = ProgressStyle::with_template("{spinner} {elapsed_precise} {wide_msg}")
            .expect("the template is valid")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        bar.set_style(style);
        let mut rate = Rate::default();
        // The first draw happens now, so even a run shorter than one redraw shows its line.
        bar.set_message(describe(&progress.snapshot(), rate.update(Instant::now(), 0)));
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = {
            let bar = bar.clone();
            std::thread::spawn(move || redraw(&bar, &progress, &mut rate, &stopped))
        };
        ProgressLine { shown: Some(Shown { bar, stop, thread }) }
    }

    /// A handle that prints stderr lines above the line, from any thread.
    pub fn printer(&self) -> LinePrinter {
        LinePrinter { bar: self.shown.as_ref().map(|s| s.bar.clone()) }
    }

    /// Stops redrawing and clears the line.
    pub fn finish(self) {
        if let Some(s) = self.shown {
            let _ = s.stop.send(());
            let _ = s.thread.join();
            s.bar.finish_and_clear();
        }
    }
}

/// Prints stderr lines above the progress line (or plainly when there is none).
#[derive(Clone)]
pub struct LinePrinter {
    bar: Option<ProgressBar>,
}

impl LinePrinter {
    /// Prints `line` on stderr (lifting the progress line, then redrawing it).
    pub fn eprintln(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

fn redraw(bar: &ProgressBar, progress: &Progress, rate: &mut Rate, stopped: &Receiver<()>) {
    loop {
        match stopped.recv_timeout(REDRAW) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let s = progress.snapshot();
        let per_second = rate.update(Instant::now(), s.records.records_in);
        bar.set_message(describe(&s, per_second));
    }
}

/// Records per second over the last [`RATE_WINDOW`].
#[derive(Default)]
struct Rate {
    samples: VecDeque<(Instant, u64)>,
}

impl Rate {
    fn update(&mut self, now: Instant, records: u64) -> f64 {
        self.samples.push_back((now, records));
        while self.samples.len() > 2 && self.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (t0, n0) = self.samples.front().copied().unwrap_or((now, records));
        let secs = now.duration_since(t0).as_secs_f64();
        if secs > 0.0 { records.saturating_sub(n0) as f64 / secs } else { 0.0 }
    }
}

/// The text of the line.
fn describe(s: &Snapshot, per_second: f64) -> String {
    let mut line = format!(
        "in {} · delivered {} · dlq {} · filtered {} · {:.0} records/s",
        s.records.records_in, s.records.delivered, s.records.dlq, s.records.filtered, per_second
    );
    // Several sources: how much each has read.
    if s.per_source.len() > 1 {
        for (name, n) in &s.per_source {
            line.push_str(&format!(" · {name} {n}"));
        }
    }
    if s.checkpoints > 0 {
        line.push_str(&format!(" · {} checkpoints", s.checkpoints));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::counts::RecordCounts;

    #[test]
    fn the_rate_is_over_the_recent_window() {
        let mut r = Rate::default();
        let t = Instant::now();
        assert_eq!(r.update(t, 0), 0.0);
        assert_eq!(r.update(t + Duration::from_secs(1), 100), 100.0);
        assert_eq!(r.update(t + Duration::from_secs(2), 300), 150.0);
        // After a pause, the old fast samples leave the window.
        let slow = r.update(t + Duration::from_secs(10), 310);
        let slower = r.update(t + Duration::from_secs(11), 310);
        assert!(slower < slow && slower < 10.0, "{slow} {slower}");
    }

    #[test]
    fn the_line_names_counts_and_sources() {
        let s = Snapshot {
            records: RecordCounts { records_in: 66, delivered: 39, dlq: 6, filtered: 21, ..Default::default() },
            per_source: vec![("hl7_files".into(), 66)],
            checkpoints: 2,
            ..Default::default()
        };
        assert_eq!(describe(&s, 12.4), "in 66 · delivered 39 · dlq 6 · filtered 21 · 12 records/s · 2 checkpoints");
        let two = Snapshot { per_source: vec![("a".into(), 40), ("b".into(), 26)], ..s };
        assert_eq!(
            describe(&two, 0.0),
            "in 66 · delivered 39 · dlq 6 · filtered 21 · 0 records/s · a 40 · b 26 · 2 checkpoints"
        );
    }
}
