//! Progress of a running plan on the terminal: the phase run, elapsed and planned time,
//! live IOPS and errors, on one line of stderr that redraws itself. Off when stderr is not
//! a terminal (logs and CI stay clean) and with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::exec::{LiveStatus, Outcome, Summary};
use crate::plan::PhaseRun;

/// `12.3k`-style numbers for the live line.
pub fn si(x: f64) -> String {
    match x.abs() {
        v if v >= 1e9 => format!("{:.2}G", x / 1e9),
        v if v >= 1e6 => format!("{:.2}M", x / 1e6),
        v if v >= 1e4 => format!("{:.1}k", x / 1e3),
        _ => format!("{x:.0}"),
    }
}

/// The live line: `[3/56] iops io_size=4KiB  12.3 / 60.0 s  245.1k IOPS  0 errors`.
pub fn live_line(index: usize, total: usize, live: &LiveStatus<'_>, iops: f64) -> String {
    let time = match live.planned_s {
        Some(p) => format!("{:.1} / {:.1} s", live.elapsed_s, p),
        None => format!("{:.1} s", live.elapsed_s),
    };
    let errors = if live.errors == 1 { "1 error".to_string() } else { format!("{} errors", live.errors) };
    format!("[{}/{total}] {}  {time}  {} IOPS  {errors}", index + 1, live.label, si(iops))
}

/// The line printed when a phase run ends, and one line per unmet expectation or failed
/// event.
pub fn phase_lines(s: &Summary) -> Vec<String> {
    let Some(ph) = s.phases.last() else { return Vec::new() };
    let ios: u64 = ph.workers.iter().map(|w| w.result.io_count()).sum();
    let errors: u64 = ph.workers.iter().map(|w| w.result.error_count).sum();
    let mut out = vec![format!("  {}: {:?} ({:.1} s, {ios} I/Os, {errors} errors)", ph.label, ph.outcome, ph.seconds)];
    for c in ph.checks.iter().chain(ph.workers.iter().flat_map(|w| &w.checks)).filter(|c| !c.pass) {
        out.push(format!("    expected {} {}, got {}", c.what, c.expected, c.actual));
    }
    for e in ph.events.iter().filter(|e| e.outcome == Outcome::Fail) {
        out.push(format!("    event {} failed: {}", e.name, e.error.as_deref().unwrap_or("?")));
    }
    for m in ph.metamode.iter().filter(|m| m.outcome == Outcome::Fail) {
        out.push(format!("    metamode step {} ({}) failed: {}", m.index, m.step, m.error.as_deref().unwrap_or("?")));
    }
    out
}

/// Shows a run's progress: a live bar on a terminal, one line per phase run otherwise.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    index: usize,
    total: usize,
    last: Option<(Instant, u64)>,
    iops: f64,
}

impl Progress {
    /// Progress for a run: the live bar only when stderr is a terminal; nothing at all
    /// when `quiet`.
    pub fn new(quiet: bool) -> Progress {
        Progress::with_bar(quiet, !quiet && std::io::stderr().is_terminal())
    }

    /// As [`Progress::new`], with the live bar on or off.
    pub fn with_bar(quiet: bool, bar: bool) -> Progress {
        let bar = bar.then(|| {
            let b = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:24.cyan/blue} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
            b.set_style(style);
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        Progress { bar, quiet, index: 0, total: 0, last: None, iops: 0.0 }
    }

    /// Prints a line above the bar (or plainly when there is none).
    pub fn println(&self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// A phase run starts.
    pub fn phase_started(&mut self, run: &PhaseRun, index: usize, total: usize) {
        (self.index, self.total, self.last, self.iops) = (index, total, None, 0.0);
        if let Some(b) = &self.bar {
            b.set_position(0);
            b.set_message(format!("[{}/{total}] {}", index + 1, run.label));
        }
    }

    /// The running phase's counters.
    pub fn live(&mut self, live: &LiveStatus<'_>) {
        let now = Instant::now();
        match self.last {
            Some((t, n)) => {
                let dt = (now - t).as_secs_f64();
                if dt > 0.0 {
                    self.iops = live.ios.saturating_sub(n) as f64 / dt;
                }
            }
            // The first look: the mean since the phase started.
            None if live.elapsed_s > 0.0 => self.iops = live.ios as f64 / live.elapsed_s,
            None => {}
        }
        self.last = Some((now, live.ios));
        if let Some(b) = &self.bar {
            let frac = live.planned_s.filter(|p| *p > 0.0).map_or(0.0, |p| (live.elapsed_s / p).clamp(0.0, 1.0));
            b.set_position((frac * 1000.0) as u64);
            b.set_message(live_line(self.index, self.total, live, self.iops));
        }
    }

    /// A phase run ended.
    pub fn phase_done(&mut self, s: &Summary) {
        for l in phase_lines(s) {
            self.println(&l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_line_shows_phase_times_iops_and_errors() {
        let l = LiveStatus { label: "iops io_size=4KiB", elapsed_s: 12.34, planned_s: Some(60.0), ios: 5, errors: 1 };
        assert_eq!(live_line(2, 56, &l, 245_100.0), "[3/56] iops io_size=4KiB  12.3 / 60.0 s  245.1k IOPS  1 error");
        let l = LiveStatus { planned_s: None, errors: 0, ..l };
        assert_eq!(live_line(0, 1, &l, 950.0), "[1/1] iops io_size=4KiB  12.3 s  950 IOPS  0 errors");
    }

    #[test]
    fn si_keeps_three_significant_digits() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(999.0), "999");
    }
}
