//! Numbers and axes: tick labels with significant digits, SI suffixes and latency units,
//! and the log, nines (percentile) and category axes.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

/// `v` rounded to `digits` significant digits.
fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(v.abs().log10().floor() as i32 - digits + 1);
    (v / scale).round() * scale
}

/// `v` with at most `digits` significant digits and no trailing zeros: `0.25`, `12.5`,
/// `1200`.
pub(in crate::report) fn num(v: f64, digits: i32) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let r = round_sig(v, digits);
    if r == 0.0 {
        return "0".into();
    }
    let decimals = (digits - 1 - r.abs().log10().floor() as i32).clamp(0, 9) as usize;
    let s = format!("{r:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').into() } else { s }
}

/// `v` with a k / M / G suffix: `950`, `12.5k`, `1.2M`.
pub(in crate::report) fn si(v: f64, digits: i32) -> String {
    let r = round_sig(v, digits);
    let a = r.abs();
    if a >= 1e9 {
        format!("{}G", num(r / 1e9, digits))
    } else if a >= 1e6 {
        format!("{}M", num(r / 1e6, digits))
    } else if a >= 1e3 {
        format!("{}k", num(r / 1e3, digits))
    } else {
        num(r, digits)
    }
}

/// A latency in µs in the unit that suits it: `0.8 µs`, `85 µs`, `1.5 ms`, `2 s`.
pub(super) fn dur_us(us: f64) -> String {
    let r = round_sig(us, 3);
    let a = r.abs();
    if a >= 1e6 {
        format!("{} s", num(r / 1e6, 3))
    } else if a >= 1e3 {
        format!("{} ms", num(r / 1e3, 3))
    } else {
        format!("{} µs", num(r, 3))
    }
}

/// A linear axis from 0 that holds `max` with some headroom; never empty.
pub(in crate::report) fn zero_range(max: f64) -> Range<f64> {
    let m = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    0.0..m * 1.1
}

/// A linear axis with ticks where we want them: labelled `major` ticks, grid lines at
/// the `minor` ones too. Log and category axes are these over log10 values or indexes.
#[derive(Clone, Debug)]
pub(super) struct Ticks {
    range: Range<f64>,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl Ranged for Ticks {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        if span.is_nan() || span <= 0.0 || !v.is_finite() {
            return (limit.0 + limit.1) / 2;
        }
        let f = ((v - self.range.start) / span).clamp(-1.0, 2.0);
        limit.0 + ((limit.1 - limit.0) as f64 * f + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() { self.minor.clone() } else { self.major.clone() }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// A log10 axis holding `lo..hi` (positive): bounds in log10 units, labelled ticks at
/// the decades (and at 2 and 5 when it spans few), grid lines at the other digits.
pub(super) fn log_axis(lo: f64, hi: f64) -> Option<Ticks> {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo) {
        return None;
    }
    let (mut a, mut b) = (lo.log10(), hi.log10());
    let pad = ((b - a) * 0.04).max(0.04);
    a -= pad;
    b += pad;
    if b - a < 1.0 {
        let c = (a + b) / 2.0;
        (a, b) = (c - 0.5, c + 0.5);
    }
    let few = b - a < 2.5;
    let (mut major, mut minor) = (Vec::new(), Vec::new());
    for d in (a.floor() as i32)..=(b.ceil() as i32) {
        for m in 1..10 {
            let x = d as f64 + (m as f64).log10();
            if x < a || x > b {
                continue;
            }
            if m == 1 || (few && (m == 2 || m == 5)) { major.push(x) } else { minor.push(x) }
        }
    }
    Some(Ticks { range: a..b, major, minor })
}

pub(super) fn log_bounds(ax: &Ticks) -> Range<f64> {
    ax.range()
}

/// The "nines" position of percentile `p`: 90 → 1, 99 → 2, 99.9 → 3.
pub(super) fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-9).log10()
}

// 0 % (the minimum) gets a grid line but no label: it would run into 50 %.
const NINES_LABELS: [(f64, &str); 6] = [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%")];

pub(super) fn nines_axis() -> Ticks {
    let major = NINES_LABELS.iter().map(|&(p, _)| nines(p)).collect();
    let minor = [0.0, 75.0, 95.0, 99.5, 99.95, 99.995].iter().map(|&p| nines(p)).collect();
    Ticks { range: -0.08..5.12, major, minor }
}

pub(super) fn nines_label(x: f64) -> String {
    NINES_LABELS.iter().map(|&(p, l)| (nines(p), l)).min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs())).map_or_else(String::new, |(_, l)| l.into())
}

/// Categories at 0, 1, ... with their labels as ticks.
pub(super) fn category_axis(n: usize) -> Ticks {
    Ticks { range: -0.5..n as f64 - 0.5, major: (0..n).map(|i| i as f64).collect(), minor: Vec::new() }
}

pub(super) fn category(labels: &[String], v: f64) -> String {
    let i = v.round();
    if i < 0.0 { String::new() } else { labels.get(i as usize).cloned().unwrap_or_default() }
}

pub(super) fn finite_sum(it: impl Iterator<Item = f64>) -> f64 {
    it.filter(|v| v.is_finite() && *v > 0.0).sum()
}

pub(super) fn finite_range<'a>(vs: impl IntoIterator<Item = &'a f64>) -> Option<(f64, f64)> {
    vs.into_iter().filter(|v| v.is_finite() && **v > 0.0).fold(None, |acc, &v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short_and_carry_units() {
        assert_eq!(si(10_000.0, 4), "10k");
        assert_eq!(si(1_250_000.0, 4), "1.25M");
        assert_eq!(si(950.0, 3), "950");
        assert_eq!(si(0.0, 3), "0");
        assert_eq!(num(0.30000000000000004, 4), "0.3");
        assert_eq!(num(2.0, 4), "2");
        assert_eq!(dur_us(10f64.powf(2.0f64.log10())), "2 µs");
        assert_eq!(dur_us(1500.0), "1.5 ms");
        assert_eq!(dur_us(0.1), "0.1 µs");
        assert_eq!(dur_us(2_000_000.0), "2 s");
        assert_eq!(nines_label(nines(99.9)), "99.9%");
        assert_eq!(nines_label(nines(50.0)), "50%");
        let ax = log_axis(3.0, 3.0).unwrap();
        assert!(ax.range().end - ax.range().start >= 1.0, "a single value still gets a decade");
        assert!(log_axis(0.0, 5.0).is_none() && log_axis(f64::NAN, 1.0).is_none());
    }
}
