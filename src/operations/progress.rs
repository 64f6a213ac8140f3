//! Progress of long operator commands: a bar with rate and ETA on a terminal
//! (`indicatif`), and a plain line every few seconds when stderr is a file or a pipe.
//! Both go to stderr; stdout keeps the command's result for programs.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is written when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Progress through `total` units (bytes of a file, plans of a list) while counting
/// `items` (rows) for the rate.
pub struct Progress {
    label: &'static str,
    total: u64,
    started: Instant,
    bar: Option<ProgressBar>,
    last_line: Instant,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new(label: &'static str, total: u64) -> Self {
        Self::with_terminal(label, total, std::io::stderr().is_terminal())
    }

    pub fn with_terminal(label: &'static str, total: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {percent:>3}% {msg} · {elapsed_precise} elapsed, ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label);
            bar
        });
        let now = Instant::now();
        Self {
            label,
            total,
            started: now,
            bar,
            last_line: now,
        }
    }

    /// `done` of `total` units, `items` counted so far.
    pub fn update(&mut self, done: u64, items: u64) {
        let rate = self.rate(items);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{items} rows, {rate:.0} rows/s"));
            }
            None if self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                eprintln!("{}", self.plain_line(done, items, rate));
            }
            None => {}
        }
    }

    /// A line above the bar (or a plain line), e.g. a refused row.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the bar (or writes the last plain line).
    pub fn finish(&mut self, items: u64) {
        let rate = self.rate(items);
        match self.bar.take() {
            Some(bar) => {
                bar.set_position(self.total);
                bar.finish_with_message(format!("{items} rows, {rate:.0} rows/s"));
            }
            None => eprintln!("{}", self.plain_line(self.total, items, rate)),
        }
    }

    fn rate(&self, items: u64) -> f64 {
        let seconds = self.started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            items as f64 / seconds
        } else {
            0.0
        }
    }

    /// `cards import: 45% (120000 rows, 4300 rows/s, 12 s elapsed, about 15 s left)`.
    pub fn plain_line(&self, done: u64, items: u64, rate: f64) -> String {
        let elapsed = self.started.elapsed().as_secs();
        let percent = done
            .saturating_mul(100)
            .checked_div(self.total)
            .unwrap_or(100);
        let left = if done == 0 || done >= self.total {
            0
        } else {
            // Time per unit so far, times the units left.
            let per_unit = self.started.elapsed().as_secs_f64() / done as f64;
            (per_unit * (self.total - done) as f64).round() as u64
        };
        format!(
            "{}: {percent}% ({items} rows, {rate:.0} rows/s, {elapsed} s elapsed, about {left} s left)",
            self.label
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_line_tells_the_share_done_the_rate_and_the_time_left() {
        let mut progress = Progress::with_terminal("cards import", 1_000, false);
        // Started 10 s ago, 250 of 1,000 bytes read: 30 s left at that pace.
        progress.started = Instant::now() - Duration::from_secs(10);
        let line = progress.plain_line(250, 5_000, 500.0);
        assert_eq!(
            line,
            "cards import: 25% (5000 rows, 500 rows/s, 10 s elapsed, about 30 s left)"
        );
        assert!(progress.plain_line(1_000, 20_000, 2_000.0).contains("100%"));
        assert!(progress
            .plain_line(1_000, 20_000, 2_000.0)
            .ends_with("about 0 s left)"));
    }

    #[test]
    fn an_empty_file_is_done_at_once() {
        let progress = Progress::with_terminal("cards import", 0, false);
        assert!(progress
            .plain_line(0, 0, 0.0)
            .starts_with("cards import: 100% (0 rows"));
    }
}
