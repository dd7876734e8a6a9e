//! The steady-state rule of the SNIA Solid State Storage Performance Test Specification
//! (PTS 2.0.2 §2.1, "Steady State" and "Measurement Window"): a tracking variable, one
//! value per round, is steady when over the last `window` rounds
//!
//! - its range (largest minus smallest value) is at most `range_pct` % of their average
//!   (PTS: 20 %), and
//! - the least-squares line through them changes by at most `slope_pct` % of their
//!   average across the window (PTS: 10 %), that is |slope| × (window − 1).
//!
//! Steady state is reached in the first round that ends such a window.

use serde::{Deserialize, Serialize};

use super::summary::{Check, PhaseSummary};
use crate::plan::model::{TrackMetric, TrackSpec};

/// The parameters of the rule (PTS defaults: window 5, range 20 %, slope 10 %, 25 rounds).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Rounds in the measurement window.
    pub window: u32,
    /// Largest range of the window's values, % of their average.
    pub range_pct: f64,
    /// Largest change of the least-squares line across the window, % of the average.
    pub slope_pct: f64,
    /// Rounds after which the rounds stop, steady or not.
    pub max_rounds: u32,
}

impl Default for Rule {
    fn default() -> Self {
        Rule { window: 5, range_pct: 20.0, slope_pct: 10.0, max_rounds: 25 }
    }
}

/// The statistics of one measurement window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// First round of the window, from 1.
    pub first_round: u32,
    /// Last round of the window.
    pub last_round: u32,
    /// Average of the values.
    pub average: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// `max - min`.
    pub range: f64,
    /// The range, % of the average.
    pub range_pct: f64,
    /// Slope of the least-squares line, per round.
    pub slope: f64,
    /// The line's value at round 0 (so its value at round r is `intercept + slope × r`).
    pub intercept: f64,
    /// How much the line changes across the window: |slope| × (rounds − 1).
    pub excursion: f64,
    /// The excursion, % of the average.
    pub excursion_pct: f64,
    /// The range is within the rule's limit.
    pub range_ok: bool,
    /// The excursion is within the rule's limit.
    pub slope_ok: bool,
}

impl Window {
    /// Both conditions hold.
    pub fn steady(&self) -> bool {
        self.range_ok && self.slope_ok
    }
}

/// The statistics of `values`, the tracking variable of rounds `first_round`,
/// `first_round + 1`, ..., judged by `rule`. An average that is not above zero (a device
/// that did nothing) is never steady.
pub fn window(values: &[f64], first_round: u32, rule: &Rule) -> Window {
    let n = values.len().max(1) as f64;
    let average = values.iter().sum::<f64>() / n;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    // Least squares over the round numbers.
    let xs: Vec<f64> = (0..values.len()).map(|i| (first_round as usize + i) as f64).collect();
    let x_mean = xs.iter().sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - x_mean).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(values).map(|(x, y)| (x - x_mean) * (y - average)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let intercept = average - slope * x_mean;
    let excursion = slope.abs() * (n - 1.0);
    let pct = |v: f64| if average > 0.0 { v / average * 100.0 } else { f64::INFINITY };
    let (range_pct, excursion_pct) = (pct(range), pct(excursion));
    Window {
        first_round,
        last_round: first_round + values.len().saturating_sub(1) as u32,
        average,
        min,
        max,
        range,
        range_pct,
        slope,
        intercept,
        excursion,
        excursion_pct,
        range_ok: range_pct <= rule.range_pct,
        slope_ok: excursion_pct <= rule.slope_pct,
    }
}

/// The verdict on a series of rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The round in which steady state was reached (from 1), if it was.
    pub reached: Option<u32>,
    /// The window that reached it; otherwise the last full window (none before `window`
    /// rounds).
    pub window: Option<Window>,
}

/// Judges `series` (the tracking variable of rounds 1, 2, ...): the first round that ends
/// a steady window, else the last full window.
pub fn judge(series: &[f64], rule: &Rule) -> Verdict {
    let w = rule.window.max(1) as usize;
    let mut last = None;
    for end in w..=series.len() {
        let first = (end - w) as u32 + 1;
        let win = window(&series[end - w..end], first, rule);
        if win.steady() {
            return Verdict { reached: Some(end as u32), window: Some(win) };
        }
        last = Some(win);
    }
    Verdict { reached: None, window: last }
}

/// The rounds of one steady-state phase, as `summary.json` keeps them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SteadyStateSummary {
    /// The phase.
    pub phase: String,
    /// The tracked cell: its sweep values (`io_size=4KiB read_percentage=0`), empty
    /// without a sweep.
    pub cell: String,
    /// The tracking variable: `iops`, `mbps`, `latency_mean_us`, `latency_max_us` or
    /// `latency_us[99.999]`.
    pub track: String,
    /// The rule applied.
    pub rule: Rule,
    /// The tracking variable of each round so far, round 1 first.
    pub series: Vec<f64>,
    /// The round in which steady state was reached; none while rounds go on, or when
    /// it was not reached.
    pub reached: Option<u32>,
    /// The rounds ended: steady state reached, or `max_rounds` run.
    pub done: bool,
    /// The measurement window: the one that reached steady state, else the last full one.
    pub window: Option<Window>,
    /// The phase's expectation of steady state, checked when the rounds ended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// How a tracking variable is named in reports.
pub fn track_name(t: &TrackSpec) -> String {
    match t {
        TrackSpec::Metric(TrackMetric::Iops) => "iops".into(),
        TrackSpec::Metric(TrackMetric::Mbps) => "mbps".into(),
        TrackSpec::Metric(TrackMetric::LatencyMeanUs) => "latency_mean_us".into(),
        TrackSpec::Metric(TrackMetric::LatencyMaxUs) => "latency_max_us".into(),
        TrackSpec::Percentile { latency_us } => format!("latency_us[{latency_us}]"),
    }
}

/// The tracking variable of one phase run: rates add up over its workers; the mean
/// latency is over all their I/Os; a percentile or the maximum is the largest of theirs.
pub fn track_value(p: &PhaseSummary, t: &TrackSpec) -> f64 {
    let all = || p.workers.iter().filter_map(|w| w.latency.iter().find(|l| l.class == "all"));
    let at = |q: f64| all().filter_map(|l| l.percentiles.iter().find(|x| x.0 == q).map(|x| x.1)).fold(0.0, f64::max);
    match t {
        TrackSpec::Metric(TrackMetric::Iops) => p.workers.iter().map(|w| w.iops).sum(),
        TrackSpec::Metric(TrackMetric::Mbps) => p.workers.iter().map(|w| w.mbps).sum(),
        TrackSpec::Metric(TrackMetric::LatencyMeanUs) => {
            let n: u64 = all().map(|l| l.count).sum();
            if n == 0 { 0.0 } else { all().map(|l| l.mean_us * l.count as f64).sum::<f64>() / n as f64 }
        }
        TrackSpec::Metric(TrackMetric::LatencyMaxUs) => at(100.0),
        TrackSpec::Percentile { latency_us } => at(*latency_us),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn window_statistics_match_values_computed_by_hand() {
        // Rounds 3..7: 100, 104, 98, 102, 106. Average 102, range 8 (7.843 %).
        // x̄ = 5; Σ(x−x̄)² = 10; Σ(x−x̄)(y−ȳ) = (−2)(−2) + (−1)(2) + 0 + (1)(0) + (2)(4) = 10,
        // slope 1.0 per round, intercept 102 − 5 = 97, excursion 4 (3.922 %).
        let w = window(&[100.0, 104.0, 98.0, 102.0, 106.0], 3, &Rule::default());
        assert_eq!((w.first_round, w.last_round), (3, 7));
        assert!(close(w.average, 102.0) && close(w.min, 98.0) && close(w.max, 106.0) && close(w.range, 8.0));
        assert!(close(w.range_pct, 800.0 / 102.0), "{}", w.range_pct);
        assert!(close(w.slope, 1.0) && close(w.intercept, 97.0), "{} {}", w.slope, w.intercept);
        assert!(close(w.excursion, 4.0) && close(w.excursion_pct, 400.0 / 102.0));
        assert!(w.steady());
    }

    #[test]
    fn a_falling_window_has_a_negative_slope_and_a_positive_excursion() {
        // 50, 40, 30, 20, 10 over rounds 1..5: slope −10, intercept 60, excursion 40 of an
        // average of 30 (133 %); range 40 (133 %).
        let w = window(&[50.0, 40.0, 30.0, 20.0, 10.0], 1, &Rule::default());
        assert!(close(w.slope, -10.0) && close(w.intercept, 60.0) && close(w.excursion, 40.0));
        assert!(!w.range_ok && !w.slope_ok);
    }

    #[test]
    fn steady_state_reached_in_round_7_when_the_decline_settles() {
        // Fresh out of box 1000, falling to a level near 500 by round 3.
        let s = [1000.0, 800.0, 520.0, 500.0, 510.0, 495.0, 505.0, 500.0];
        let v = judge(&s, &Rule::default());
        assert_eq!(v.reached, Some(7), "{v:?}");
        let w = v.window.unwrap();
        assert_eq!((w.first_round, w.last_round), (3, 7));
        // Rounds 2..6 (800 .. 495) were not steady: that window is where it last failed.
        assert!(!window(&s[1..6], 2, &Rule::default()).steady());
    }

    #[test]
    fn a_flat_series_is_steady_in_the_round_that_fills_the_window() {
        assert_eq!(judge(&[10.0; 5], &Rule::default()).reached, Some(5));
        assert_eq!(judge(&[10.0; 4], &Rule::default()).reached, None, "no full window yet");
        assert_eq!(judge(&[10.0; 4], &Rule::default()).window, None);
    }

    #[test]
    fn a_series_that_keeps_falling_never_reaches_steady_state() {
        let s: Vec<f64> = (0..25).map(|i| 1000.0 * 0.9f64.powi(i)).collect();
        let v = judge(&s, &Rule::default());
        assert_eq!(v.reached, None);
        let w = v.window.unwrap();
        assert_eq!((w.first_round, w.last_round), (21, 25), "the last full window is reported");
        assert!(!w.slope_ok);
    }

    #[test]
    fn steady_in_range_but_not_in_slope_is_not_steady() {
        // A steady climb of 3 % a round: range 12 % of the average (within 20 %), the
        // line's excursion 12 % (above 10 %).
        let s = [100.0, 103.0, 106.0, 109.0, 112.0];
        let w = window(&s, 1, &Rule::default());
        assert!(w.range_ok && !w.slope_ok, "{w:?}");
        assert!(close(w.range_pct, 1200.0 / 106.0) && close(w.excursion_pct, 1200.0 / 106.0));
        assert_eq!(judge(&s, &Rule::default()).reached, None);
    }

    #[test]
    fn steady_in_slope_but_not_in_range_is_not_steady() {
        // Swings of ±15 around 100 with no trend: the line is flat (slope 0) but the range is
        // 30 % of the average.
        let s = [85.0, 115.0, 100.0, 115.0, 85.0];
        let w = window(&s, 1, &Rule::default());
        assert!(close(w.slope, 0.0) && w.slope_ok && !w.range_ok, "{w:?}");
        assert_eq!(judge(&s, &Rule::default()).reached, None);
    }

    #[test]
    fn the_limits_and_the_window_are_the_plans_to_choose() {
        let s = [100.0, 103.0, 106.0, 109.0, 112.0];
        let loose = Rule { slope_pct: 15.0, ..Rule::default() };
        assert_eq!(judge(&s, &loose).reached, Some(5));
        let short = Rule { window: 3, ..Rule::default() };
        // Rounds 1..3: range 6 of 103 (5.8 %), excursion 6 (5.8 %): steady in round 3.
        assert_eq!(judge(&s, &short).reached, Some(3));
        let strict = Rule { range_pct: 5.0, window: 3, ..Rule::default() };
        assert_eq!(judge(&s, &strict).reached, None);
    }

    #[test]
    fn a_device_that_did_nothing_is_never_steady() {
        assert_eq!(judge(&[0.0; 6], &Rule::default()).reached, None);
    }
}
