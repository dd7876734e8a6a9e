//! PNG charts of a run for qualification reports: per phase run a latency histogram, a
//! latency-by-percentile (QoS) curve and IOPS / MB/s over time with the events marked;
//! per swept phase an IOPS matrix; across runs a side-by-side comparison.
//!
//! Every chart is drawn from a [`Summary`] alone, so that reports can be drawn again
//! from `summary.json`. A chart without data is left out, never an error.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::exec::{EventSummary, Latency, Outcome, PhaseSummary, Summary, WorkerSummary};

/// Why a chart could not be written (file system, encoder, fonts).
pub type ChartError = Box<dyn std::error::Error + Send + Sync>;

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The standard look of a mesh: light grid, readable labels (every chart of the reports).
macro_rules! style_mesh {
    ($mesh:expr) => {
        $mesh
            .bold_line_style($crate::report::charts::GRID)
            .light_line_style($crate::report::charts::GRID_LIGHT)
            .axis_style($crate::report::charts::MUTED)
            .label_style($crate::report::charts::text(15))
            .axis_desc_style($crate::report::charts::text(17))
    };
}
pub(crate) use style_mesh;

mod merge;
pub use merge::{GroupSeries, merge_charts};

const FONT: &str = "sans-serif";
pub(super) const WIDTH: u32 = 1200;
pub(super) const HEIGHT: u32 = 700;
/// Height taken by the title and subtitle of every chart.
const HEADER: u32 = 74;

pub(super) const INK: RGBColor = RGBColor(33, 33, 33);
pub(super) const MUTED: RGBColor = RGBColor(100, 100, 100);
pub(super) const GRID: RGBColor = RGBColor(215, 215, 215);
pub(super) const GRID_LIGHT: RGBColor = RGBColor(240, 240, 240);
/// Colour of a total over several workers.
const TOTAL: RGBColor = RGBColor(20, 20, 20);

/// Tableau 10: distinct, and readable for the common colour-vision deficiencies.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(super) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A darker shade of `c`: a worker's class curves stay visible where they run along its
/// own curve.
fn darker(c: RGBColor) -> RGBColor {
    let d = |v: u8| (v as f64 * 0.55).round() as u8;
    RGBColor(d(c.0), d(c.1), d(c.2))
}

/// Event markers use colours outside the palette so they never read as a worker.
fn event_color(kind: &str) -> RGBColor {
    match kind {
        "power_cycle" => RGBColor(165, 0, 38),
        "reset" => RGBColor(191, 91, 0),
        _ => RGBColor(84, 39, 143),
    }
}

/// Registers the DejaVu fonts once: plotters has no system fonts here.
fn fonts() -> Result<(), ChartError> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok() && register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err("the DejaVu fonts could not be loaded".into()) }
}

pub(super) fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&INK)
}

pub(super) fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size, FontStyle::Bold).into_font()).color(&INK)
}

// ---------------------------------------------------------------------------------------
// Public API

/// Charts of phase run `i` of `s`, written into `dir` (created if missing); returns the
/// paths written: `{i:02}-{slug}-latency-histogram.png`, `-latency-percentiles.png` and
/// `-iops.png`, each left out when the run has no data for it. An `i` past the phase
/// runs is an error.
pub fn phase_charts(dir: &Path, s: &Summary, i: usize) -> Result<Vec<PathBuf>, ChartError> {
    let p = s.phases.get(i).ok_or_else(|| format!("no phase run {i}: the summary has {}", s.phases.len()))?;
    let stem = format!("{i:02}-{}", slug(&p.label));
    let sub = subtitle(s, p);
    let mut out = Vec::new();
    if let Some(series) = histogram_series(p) {
        let title = format!("Latency histogram: {}", p.label);
        out.push(save(dir, &format!("{stem}-latency-histogram.png"), (WIDTH, HEIGHT), |root| {
            let area = frame(root, &title, &sub)?;
            draw_histogram(&area, &series)
        })?);
    }
    let curves = qos_series(p);
    if !curves.is_empty() {
        let title = format!("Latency by percentile: {}", p.label);
        out.push(save(dir, &format!("{stem}-latency-percentiles.png"), (WIDTH, HEIGHT), |root| {
            let area = frame(root, &title, &sub)?;
            draw_qos(&area, &curves, None)
        })?);
    }
    if let Some(rates) = phase_rates(p) {
        let title = format!("IOPS and throughput over time: {}", p.label);
        let events = fired(&p.events);
        out.push(save(dir, &format!("{stem}-iops.png"), (WIDTH, HEIGHT), |root| {
            let area = frame(root, &title, &sub)?;
            draw_rates(&area, &rates, &events)
        })?);
    }
    Ok(out)
}

/// One matrix chart per phase name whose runs have sweep values, `sweep-{slug(name)}.png`:
/// a heatmap of IOPS for two swept keys, bars for one, bars by combination for more.
/// Repeats of a combination are averaged.
pub fn sweep_charts(dir: &Path, s: &Summary) -> Result<Vec<PathBuf>, ChartError> {
    let mut names: Vec<&str> = Vec::new();
    for p in &s.phases {
        if !p.sweep.is_empty() && !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let Some(m) = sweep_matrix(s.phases.iter().filter(|p| p.name == name)) else { continue };
        let file = format!("sweep-{}.png", slug(name));
        let sub = format!("{} · {}{}", s.plan, device_line(s), repeats_note(&m));
        let path = match m.keys.len() {
            2 => {
                let title = format!("{name}: IOPS by {} and {}", m.keys[0], m.keys[1]);
                save(dir, &file, (WIDTH, HEIGHT), |root| draw_heatmap(&frame(root, &title, &sub)?, &m))?
            }
            1 => {
                let title = format!("{name}: IOPS by {}", m.keys[0]);
                save(dir, &file, (WIDTH, HEIGHT), |root| draw_bars(&frame(root, &title, &sub)?, &m))?
            }
            _ => {
                let title = format!("{name}: IOPS by {}", m.keys.join(", "));
                let h = (HEADER + 120 + 28 * m.cells.len() as u32).max(HEIGHT);
                save(dir, &file, (WIDTH, h), |root| draw_hbars(&frame(root, &title, &sub)?, &m))?
            }
        };
        out.push(path);
    }
    Ok(out)
}

/// Side-by-side comparison of several runs (drives, hosts, firmware versions): one chart
/// `compare-{j:02}-{slug(label)}.png` per phase label that more than one run has data
/// for, with total IOPS over time, the latency percentile curve and mean IOPS and MB/s
/// of each run. `runs` = (legend label, summary).
pub fn comparison_charts(dir: &Path, runs: &[(String, &Summary)]) -> Result<Vec<PathBuf>, ChartError> {
    let mut labels: Vec<&str> = Vec::new();
    for (_, s) in runs {
        for p in &s.phases {
            if !labels.contains(&p.label.as_str()) {
                labels.push(&p.label);
            }
        }
    }
    let mut out = Vec::new();
    for label in labels {
        let cmp: Vec<RunData> = runs
            .iter()
            .enumerate()
            .filter_map(|(k, (name, s))| {
                let p = s.phases.iter().find(|p| p.label == label && !p.workers.is_empty())?;
                let (rates, curve) = (phase_rates(p), merged_curve(&p.workers.iter().filter_map(|w| all_class(w)).collect::<Vec<_>>()));
                // A run with nothing over time and no latencies has nothing to compare.
                if rates.is_none() && curve_points(&curve).is_empty() {
                    return None;
                }
                Some(RunData {
                    name: name.clone(),
                    color: color(k),
                    rates,
                    curve,
                    iops: finite_sum(p.workers.iter().map(|w| w.iops)),
                    mbps: finite_sum(p.workers.iter().map(|w| w.mbps)),
                    events: fired(&p.events),
                })
            })
            .collect();
        if cmp.len() < 2 {
            continue;
        }
        let file = format!("compare-{:02}-{}.png", out.len(), slug(label));
        let title = format!("Comparison: {label}");
        let sub = format!("{} runs: {}", cmp.len(), cmp.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(" · "));
        out.push(save(dir, &file, (1800, HEIGHT), |root| draw_comparison(&frame(root, &title, &sub)?, &cmp))?);
    }
    Ok(out)
}

/// File-name-safe form of a label: lowercase ASCII alphanumerics, every other run of
/// characters one `-`, no `-` at either end, at most 60 characters (`unnamed` when
/// nothing is left).
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    let mut gap = false;
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('-');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    out.truncate(60);
    let out = out.trim_end_matches('-');
    if out.is_empty() { "unnamed".into() } else { out.into() }
}

// ---------------------------------------------------------------------------------------
// Files and frames

/// Draws into `dir/.{stem}.tmp.png`, then renames it to `dir/name`, so a reader never
/// sees half a picture.
pub(super) fn save(dir: &Path, name: &str, size: (u32, u32), draw: impl FnOnce(&Area) -> Result<(), ChartError>) -> Result<PathBuf, ChartError> {
    fonts()?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{}.tmp.png", name.trim_end_matches(".png")));
    let drawn = (|| -> Result<(), ChartError> {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
        Ok(())
    })();
    match drawn.and_then(|()| std::fs::rename(&tmp, &path).map_err(Into::into)) {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Title and subtitle on top; returns the area left for the chart.
pub(super) fn frame<'a>(root: &Area<'a>, title: &str, sub: &str) -> Result<Area<'a>, ChartError> {
    let w = root.dim_in_pixel().0.saturating_sub(48);
    root.draw_text(&fit(root, title, &bold(24), w)?, &bold(24), (24, 12))?;
    root.draw_text(&fit(root, sub, &text(15), w)?, &text(15).color(&MUTED), (24, 46))?;
    Ok(root.margin(HEADER, 6, 6, 10))
}

/// `s` shortened with an ellipsis to at most `max_w` pixels.
fn fit(area: &Area, s: &str, style: &TextStyle, max_w: u32) -> Result<String, ChartError> {
    if area.estimate_text_size(s, style)?.0 <= max_w {
        return Ok(s.into());
    }
    let chars: Vec<char> = s.chars().collect();
    let mut n = chars.len();
    while n > 1 {
        n = n * 9 / 10;
        let t: String = chars[..n].iter().chain(std::iter::once(&'…')).collect();
        if area.estimate_text_size(&t, style)?.0 <= max_w {
            return Ok(t);
        }
    }
    Ok("…".into())
}

pub(super) fn device_line(s: &Summary) -> String {
    match &s.device {
        Some(d) => format!("{} (SN {}, FW {})", d.model.trim(), d.serial.trim(), d.firmware.trim()),
        None => s.target.clone(),
    }
}

fn subtitle(s: &Summary, p: &PhaseSummary) -> String {
    let outcome = match p.outcome {
        Outcome::Pass => "pass",
        Outcome::Fail => "FAIL",
        Outcome::Interrupted => "interrupted",
        Outcome::Skipped => "skipped",
        Outcome::Incomplete => "incomplete",
    };
    format!("{} · {} · {} s · {outcome}", s.plan, device_line(s), num(p.seconds, 3))
}

// ---------------------------------------------------------------------------------------
// Legends

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Mark {
    Line,
    Thick,
    Dashed,
    Dotted,
    Box,
}

/// Line style and stroke width of a mark, as the series draw it.
fn dashes(mark: Mark) -> Option<(u32, u32)> {
    match mark {
        Mark::Dashed => Some((9, 5)),
        Mark::Dotted => Some((3, 4)),
        _ => None,
    }
}

pub(super) struct Entry {
    label: String,
    color: RGBColor,
    mark: Mark,
}

impl Entry {
    pub(super) fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> Entry {
        Entry { label: label.into(), color, mark }
    }
}

const LEGEND_FONT: u32 = 15;

/// Splits a legend column off the right of `area` (outside the plot, so it never covers
/// data) and draws `entries` in it; returns the area left.
pub(super) fn with_legend<'a>(area: &Area<'a>, entries: &[Entry]) -> Result<Area<'a>, ChartError> {
    if entries.is_empty() {
        return Ok(area.clone());
    }
    let (w, h) = area.dim_in_pixel();
    let style = text(LEGEND_FONT);
    let max_w = w / 4;
    let mut widest = 0;
    for e in entries {
        widest = widest.max(area.estimate_text_size(&e.label, &style)?.0);
    }
    let col = (widest + 62).clamp(130, max_w + 62);
    let (left, right) = area.split_horizontally(w.saturating_sub(col));
    let mut y = 24;
    for (k, e) in entries.iter().enumerate() {
        if y + 24 > h as i32 && k + 1 < entries.len() {
            right.draw_text(&format!("… {} more", entries.len() - k), &style.color(&MUTED), (12, y))?;
            break;
        }
        swatch(&right, e, (12, y + 9))?;
        right.draw_text(&fit(&right, &e.label, &style, col - 62)?, &style, (50, y))?;
        y += 24;
    }
    Ok(left)
}

fn swatch(area: &Area, e: &Entry, (x, y): (i32, i32)) -> Result<(), ChartError> {
    match e.mark {
        Mark::Box => {
            area.draw(&Rectangle::new([(x, y - 7), (x + 30, y + 7)], e.color.mix(0.35).filled()))?;
            area.draw(&Rectangle::new([(x, y - 7), (x + 30, y + 7)], e.color.stroke_width(2)))?;
        }
        Mark::Line | Mark::Thick => {
            let w = if e.mark == Mark::Thick { 3 } else { 2 };
            area.draw(&PathElement::new(vec![(x, y), (x + 30, y)], e.color.stroke_width(w)))?;
        }
        Mark::Dashed | Mark::Dotted => {
            let (on, off) = dashes(e.mark).unwrap_or((6, 4));
            let mut a = x;
            while a < x + 30 {
                let b = (a + on as i32).min(x + 30);
                area.draw(&PathElement::new(vec![(a, y), (b, y)], e.color.stroke_width(2)))?;
                a = b + off as i32;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Numbers and axes

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
pub(super) fn num(v: f64, digits: i32) -> String {
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
pub(super) fn si(v: f64, digits: i32) -> String {
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
fn dur_us(us: f64) -> String {
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
pub(super) fn zero_range(max: f64) -> Range<f64> {
    let m = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    0.0..m * 1.1
}

/// A linear axis with ticks where we want them: labelled `major` ticks, grid lines at
/// the `minor` ones too. Log and category axes are these over log10 values or indexes.
#[derive(Clone, Debug)]
struct Ticks {
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
fn log_axis(lo: f64, hi: f64) -> Option<Ticks> {
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

fn log_bounds(ax: &Ticks) -> Range<f64> {
    ax.range()
}

/// The "nines" position of percentile `p`: 90 → 1, 99 → 2, 99.9 → 3.
fn nines(p: f64) -> f64 {
    -(1.0 - p / 100.0).max(1e-9).log10()
}

// 0 % (the minimum) gets a grid line but no label: it would run into 50 %.
const NINES_LABELS: [(f64, &str); 6] = [(50.0, "50%"), (90.0, "90%"), (99.0, "99%"), (99.9, "99.9%"), (99.99, "99.99%"), (99.999, "99.999%")];

fn nines_axis() -> Ticks {
    let major = NINES_LABELS.iter().map(|&(p, _)| nines(p)).collect();
    let minor = [0.0, 75.0, 95.0, 99.5, 99.95, 99.995].iter().map(|&p| nines(p)).collect();
    Ticks { range: -0.08..5.12, major, minor }
}

fn nines_label(x: f64) -> String {
    NINES_LABELS.iter().map(|&(p, l)| (nines(p), l)).min_by(|a, b| (a.0 - x).abs().total_cmp(&(b.0 - x).abs())).map_or_else(String::new, |(_, l)| l.into())
}

fn finite_sum(it: impl Iterator<Item = f64>) -> f64 {
    it.filter(|v| v.is_finite() && *v > 0.0).sum()
}

fn finite_range<'a>(vs: impl IntoIterator<Item = &'a f64>) -> Option<(f64, f64)> {
    vs.into_iter().filter(|v| v.is_finite() && **v > 0.0).fold(None, |acc, &v| match acc {
        None => Some((v, v)),
        Some((a, b)) => Some((a.min(v), b.max(v))),
    })
}

// ---------------------------------------------------------------------------------------
// Latency histogram

struct HistSeries {
    label: String,
    /// `(lower µs, upper µs, count)`, sorted, all positive.
    buckets: Vec<(f64, f64, u64)>,
}

fn all_class(w: &WorkerSummary) -> Option<&Latency> {
    w.latency.iter().find(|l| l.class == "all" && l.count > 0)
}

fn clean_buckets(l: &Latency) -> Vec<(f64, f64, u64)> {
    let mut b: Vec<_> = l.histogram.iter().copied().filter(|&(lo, hi, n)| lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo && n > 0).collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    b
}

fn histogram_series(p: &PhaseSummary) -> Option<Vec<HistSeries>> {
    let v: Vec<HistSeries> = p
        .workers
        .iter()
        .filter_map(|w| {
            let l = all_class(w)?;
            let buckets = clean_buckets(l);
            if buckets.is_empty() {
                return None;
            }
            let n: u64 = buckets.iter().map(|b| b.2).sum();
            Some(HistSeries { label: format!("{}: {} I/Os, mean {}", w.name, si(n as f64, 3), dur_us(l.mean_us)), buckets })
        })
        .collect();
    (!v.is_empty()).then_some(v)
}

fn draw_histogram(area: &Area, series: &[HistSeries]) -> Result<(), ChartError> {
    let entries: Vec<Entry> = series.iter().enumerate().map(|(k, s)| Entry::new(&s.label, color(k), Mark::Box)).collect();
    let plot = with_legend(area, &entries)?;
    let lo = series.iter().flat_map(|s| s.buckets.iter().map(|b| b.0)).fold(f64::INFINITY, f64::min);
    let hi = series.iter().flat_map(|s| s.buckets.iter().map(|b| b.1)).fold(0.0, f64::max);
    let top = series.iter().flat_map(|s| s.buckets.iter().map(|b| b.2)).max().unwrap_or(1) as f64;
    let (Some(x), Some(y)) = (log_axis(lo, hi), log_axis(1.0, top * 1.5)) else { return Ok(()) };
    let floor = log_bounds(&y).start;
    let mut chart = ChartBuilder::on(&plot).margin(12).margin_right(20).x_label_area_size(52).y_label_area_size(82).build_cartesian_2d(x, y)?;
    style_mesh!(chart.configure_mesh())
        .x_desc("Completion latency (log scale, 20 buckets a decade)")
        .y_desc("Completions in bucket (log scale)")
        .x_label_formatter(&|v| dur_us(10f64.powf(*v)))
        .y_label_formatter(&|v| si(10f64.powf(*v), 3))
        .draw()?;
    for (k, s) in series.iter().enumerate() {
        let pts = step_outline(&s.buckets, floor);
        let c = color(k);
        chart.draw_series(std::iter::once(Polygon::new(pts.clone(), c.mix(0.14).filled())))?;
        chart.draw_series(std::iter::once(PathElement::new(pts, c.stroke_width(2))))?;
    }
    Ok(())
}

/// The outline of a histogram in log10 units: up and down at each bucket edge, down to
/// `floor` across gaps between buckets.
fn step_outline(buckets: &[(f64, f64, u64)], floor: f64) -> Vec<(f64, f64)> {
    let mut pts = Vec::with_capacity(buckets.len() * 2 + 4);
    let mut prev_hi: Option<f64> = None;
    for &(lo, hi, n) in buckets {
        let (lo, hi, y) = (lo.log10(), hi.log10(), (n as f64).log10());
        match prev_hi {
            Some(p) if (lo - p).abs() < 1e-3 => {}
            Some(p) => {
                pts.push((p, floor));
                pts.push((lo, floor));
            }
            None => pts.push((lo, floor)),
        }
        pts.push((lo, y));
        pts.push((hi, y));
        prev_hi = Some(hi);
    }
    if let Some(p) = prev_hi {
        pts.push((p, floor));
    }
    pts
}

// ---------------------------------------------------------------------------------------
// Latency by percentile

struct Curve {
    label: String,
    color: RGBColor,
    mark: Mark,
    /// `(nines, µs)`.
    points: Vec<(f64, f64)>,
}

fn curve_points(curve: &[(f64, f64)]) -> Vec<(f64, f64)> {
    curve.iter().filter(|&&(p, us)| p.is_finite() && (0.0..100.0).contains(&p) && us.is_finite() && us > 0.0).map(|&(p, us)| (nines(p), us)).collect()
}

/// One curve per worker (class `all`), and its read and write curves when it has both.
fn qos_series(p: &PhaseSummary) -> Vec<Curve> {
    let mut out = Vec::new();
    for (k, w) in p.workers.iter().enumerate() {
        let Some(all) = all_class(w) else { continue };
        let c = color(k);
        let max = all.percentiles.iter().find(|x| x.0 >= 100.0).map(|x| x.1);
        let label = match max {
            Some(m) if m.is_finite() && m > 0.0 => format!("{} (max {})", w.name, dur_us(m)),
            _ => w.name.clone(),
        };
        let pts = curve_points(&all.curve);
        if pts.is_empty() {
            continue;
        }
        out.push(Curve { label, color: c, mark: Mark::Thick, points: pts });
        let class = |name: &str| w.latency.iter().find(|l| l.class == name && l.count > 0);
        if let (Some(r), Some(wr)) = (class("read"), class("write")) {
            for (l, mark) in [(r, Mark::Dashed), (wr, Mark::Dotted)] {
                let pts = curve_points(&l.curve);
                if !pts.is_empty() {
                    out.push(Curve { label: format!("{} {}", w.name, l.class), color: darker(c), mark, points: pts });
                }
            }
        }
    }
    out
}

fn draw_qos(area: &Area, curves: &[Curve], x_desc: Option<&str>) -> Result<(), ChartError> {
    let entries: Vec<Entry> = curves.iter().map(|c| Entry::new(&c.label, c.color, c.mark)).collect();
    let plot = if x_desc.is_some() { area.clone() } else { with_legend(area, &entries)? };
    qos_panel(&plot, curves, x_desc.unwrap_or("Percentile of completions (nines scale)"))
}

fn qos_panel(plot: &Area, curves: &[Curve], x_desc: &str) -> Result<(), ChartError> {
    let Some((lo, hi)) = finite_range(curves.iter().flat_map(|c| c.points.iter().map(|p| &p.1))) else { return Ok(()) };
    let Some(y) = log_axis(lo, hi) else { return Ok(()) };
    let (ya, yb) = (log_bounds(&y).start, log_bounds(&y).end);
    // A wide right margin: the 99.999% label is centred on the right edge.
    let mut chart = ChartBuilder::on(plot).margin(12).margin_right(36).x_label_area_size(52).y_label_area_size(82).build_cartesian_2d(nines_axis(), y)?;
    style_mesh!(chart.configure_mesh())
        .x_desc(x_desc)
        .y_desc("Latency (log scale)")
        .x_label_formatter(&|v| nines_label(*v))
        .y_label_formatter(&|v| dur_us(10f64.powf(*v)))
        .draw()?;
    // Solid curves first, so that the dashed class curves stay visible on top of them.
    let mut order: Vec<&Curve> = curves.iter().collect();
    order.sort_by_key(|c| dashes(c.mark).is_some());
    for c in order {
        let pts: Vec<(f64, f64)> = c.points.iter().map(|&(x, us)| (x, us.log10().clamp(ya, yb))).collect();
        match dashes(c.mark) {
            Some((on, off)) => {
                chart.draw_series(DashedLineSeries::new(pts, on, off, c.color.stroke_width(2)))?;
            }
            None => {
                let w = if c.mark == Mark::Thick { 3 } else { 2 };
                chart.draw_series(LineSeries::new(pts, c.color.stroke_width(w)))?;
            }
        }
    }
    Ok(())
}

/// The percentile curve of several workers' latencies together; a lone worker's own
/// curve as it is.
fn merged_curve(lats: &[&Latency]) -> Vec<(f64, f64)> {
    if let [one] = lats {
        return one.curve.clone();
    }
    crate::exec::summary::merged_percentiles(lats, &crate::exec::summary::curve_percentiles())
}

// ---------------------------------------------------------------------------------------
// IOPS and MB/s over time

/// A step function: `vals[i]` holds on `[edges[i], edges[i + 1])`.
#[derive(Clone, Debug, Default)]
struct Step {
    edges: Vec<f64>,
    vals: Vec<f64>,
}

impl Step {
    fn at(&self, t: f64) -> f64 {
        let i = self.edges.partition_point(|&e| e <= t);
        if i == 0 || i >= self.edges.len() { 0.0 } else { self.vals[i - 1] }
    }

    /// Steps for a short series (one interval must still show); for a long one each
    /// value at the middle of its interval, lighter than steps when it is noisy.
    fn points(&self) -> Vec<(f64, f64)> {
        let it = self.vals.iter().enumerate();
        if self.vals.len() <= 20 {
            it.flat_map(|(i, &v)| [(self.edges[i], v), (self.edges[i + 1], v)]).collect()
        } else {
            it.map(|(i, &v)| ((self.edges[i] + self.edges[i + 1]) / 2.0, v)).collect()
        }
    }

    /// The area under the series, down to 0.
    fn area(&self) -> Vec<(f64, f64)> {
        let mut pts = self.points();
        if let (Some(&(a, _)), Some(&(b, _))) = (pts.first(), pts.last()) {
            pts.push((b, 0.0));
            pts.push((a, 0.0));
        }
        pts
    }

    fn max(&self) -> f64 {
        self.vals.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max)
    }

    fn end(&self) -> f64 {
        self.edges.last().copied().unwrap_or(0.0)
    }

    /// The sum of step functions, on the union of their edges.
    fn sum(steps: &[&Step]) -> Step {
        let mut edges: Vec<f64> = steps.iter().flat_map(|s| s.edges.iter().copied()).collect();
        edges.sort_by(f64::total_cmp);
        edges.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        let vals = edges.windows(2).map(|w| steps.iter().map(|s| s.at((w[0] + w[1]) / 2.0)).sum()).collect();
        if edges.len() < 2 { Step::default() } else { Step { edges, vals } }
    }
}

struct WorkerRates {
    name: String,
    iops: Step,
    mbps: Step,
}

struct Rates {
    workers: Vec<WorkerRates>,
    /// Over all workers, when there are several.
    total: Option<(Step, Step)>,
    /// End of the x axis, seconds.
    end: f64,
}

/// Completions and MB per second in each interval of the worker's timeseries, seconds
/// from the phase start. The last interval lasts only to the end of the worker's run.
fn worker_rates(w: &WorkerSummary) -> Option<WorkerRates> {
    let ts = w.result.timeseries.as_ref()?;
    if ts.interval_ms == 0 || ts.ios.is_empty() || ts.ios.iter().all(|&n| n == 0) {
        return None;
    }
    let int = ts.interval_ms as f64 / 1000.0;
    let run = w.result.mseconds as f64 / 1000.0;
    let start = if w.start_s.is_finite() && w.start_s >= 0.0 { w.start_s } else { 0.0 };
    let n = ts.ios.len();
    let (mut iops, mut mbps) = (Step::default(), Step::default());
    iops.edges.push(start);
    for (i, &ios) in ts.ios.iter().enumerate() {
        let t0 = i as f64 * int;
        let mut len = int;
        if i + 1 == n && run > t0 && run < t0 + int {
            len = run - t0;
            // A sliver of an interval gives a rate of a few I/Os: noise, not data.
            if len < 0.2 * int && n > 1 {
                break;
            }
        }
        iops.edges.push(start + t0 + len);
        iops.vals.push(ios as f64 / len);
        mbps.vals.push(ts.bytes.get(i).copied().unwrap_or(0) as f64 / 1e6 / len);
    }
    mbps.edges = iops.edges.clone();
    Some(WorkerRates { name: w.name.clone(), iops, mbps })
}

fn phase_rates(p: &PhaseSummary) -> Option<Rates> {
    let workers: Vec<WorkerRates> = p.workers.iter().filter_map(worker_rates).collect();
    if workers.is_empty() {
        return None;
    }
    let total = (workers.len() > 1)
        .then(|| (Step::sum(&workers.iter().map(|w| &w.iops).collect::<Vec<_>>()), Step::sum(&workers.iter().map(|w| &w.mbps).collect::<Vec<_>>())));
    let mut end = workers.iter().map(|w| w.iops.end()).fold(0.0, f64::max);
    for e in fired(&p.events) {
        end = end.max(e.actual_s + e.duration_ms / 1000.0);
    }
    if p.seconds.is_finite() && p.seconds > 0.0 {
        end = end.max(p.seconds);
    }
    Some(Rates { workers, total, end })
}

/// Events that were fired, with finite times.
fn fired(events: &[EventSummary]) -> Vec<EventSummary> {
    events.iter().filter(|e| e.outcome != Outcome::Skipped && e.actual_s.is_finite()).cloned().collect()
}

fn event_label(e: &EventSummary) -> String {
    let name = if e.name.is_empty() { e.kind.as_str() } else { e.name.as_str() };
    if e.duration_ms.is_finite() && e.duration_ms >= 1.0 { format!("{name} ({})", dur_us(e.duration_ms * 1000.0)) } else { name.into() }
}

fn kind_label(kind: &str) -> String {
    match kind {
        "power_cycle" => "power cycle (span: until back)".into(),
        "reset" => "reset (span: until done)".into(),
        "admin" => "admin command".into(),
        k => k.into(),
    }
}

/// Legend entries for the kinds of `events`, one each.
fn event_entries(events: &[EventSummary]) -> Vec<Entry> {
    let mut kinds: Vec<&str> = Vec::new();
    for e in events {
        if !kinds.contains(&e.kind.as_str()) {
            kinds.push(&e.kind);
        }
    }
    kinds.into_iter().map(|k| Entry::new(kind_label(k), event_color(k), Mark::Dashed)).collect()
}

/// Rows of event labels above the IOPS panel.
const EVENT_ROWS: usize = 3;
const EVENT_ROW_H: u32 = 19;

/// A panel of the rates chart: where, its unit, a worker's series, the total's.
type Panel<'p, 'a> = (&'p Area<'a>, &'static str, fn(&WorkerRates) -> &Step, Option<&'p Step>);

fn draw_rates(area: &Area, r: &Rates, events: &[EventSummary]) -> Result<(), ChartError> {
    let mut entries: Vec<Entry> = r.workers.iter().enumerate().map(|(k, w)| Entry::new(&w.name, color(k), Mark::Line)).collect();
    if r.total.is_some() {
        entries.push(Entry::new("total", TOTAL, Mark::Box));
    }
    entries.extend(event_entries(events));
    let plot = with_legend(area, &entries)?;
    let h = plot.dim_in_pixel().1;
    let (top, bottom) = plot.split_vertically(h * 56 / 100);
    let x = 0.0..(if r.end.is_finite() && r.end > 0.0 { r.end } else { 1.0 });
    let strip = event_strip(&top, x.clone(), 24, events)?;
    let panels: [Panel; 2] = [(&top, "IOPS", |w| &w.iops, r.total.as_ref().map(|t| &t.0)), (&bottom, "MB/s", |w| &w.mbps, r.total.as_ref().map(|t| &t.1))];
    for (k, (panel, unit, pick, total)) in panels.into_iter().enumerate() {
        let first = k == 0;
        let ymax = r.workers.iter().map(|w| pick(w).max()).chain(total.map(Step::max)).fold(0.0, f64::max);
        let mut c = ChartBuilder::on(panel)
            .margin(12)
            .margin_top(if first { strip } else { 4 })
            .margin_right(24)
            .x_label_area_size(if first { 0 } else { 52 })
            .y_label_area_size(82)
            .build_cartesian_2d(x.clone(), zero_range(ymax))?;
        let fmt = |v: &f64| if first { si(*v, 4) } else { num(*v, 4) };
        style_mesh!(c.configure_mesh()).x_desc("Time from phase start (s)").y_desc(unit).x_label_formatter(&|v| num(*v, 4)).y_label_formatter(&fmt).draw()?;
        let yr = c.y_range();
        draw_event_spans(&mut c, events, yr.clone(), |e| event_color(&e.kind))?;
        // The total as a grey area behind the workers, so that neither hides the other.
        if let Some(t) = total {
            c.draw_series(std::iter::once(Polygon::new(t.area(), TOTAL.mix(0.12).filled())))?;
            c.draw_series(LineSeries::new(t.points(), TOTAL.mix(0.55).stroke_width(1)))?;
        }
        for (k, w) in r.workers.iter().enumerate() {
            let pts = pick(w).points();
            let width = if pts.len() > 200 { 1 } else { 2 };
            c.draw_series(LineSeries::new(pts, color(k).stroke_width(width)))?;
        }
        draw_event_lines(&mut c, events, yr, |e| event_color(&e.kind))?;
        if first {
            label_events(panel, &c, events, |e| event_color(&e.kind))?;
        }
    }
    Ok(())
}

type TimeChart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A shaded span for as long as each event lasted (behind the data).
fn draw_event_spans(c: &mut TimeChart, events: &[EventSummary], y: Range<f64>, col: impl Fn(&EventSummary) -> RGBColor) -> Result<(), ChartError> {
    let xr = c.x_range();
    for e in events {
        if e.duration_ms.is_finite() && e.duration_ms > 0.0 {
            let t = e.actual_s.clamp(xr.start, xr.end);
            let t1 = (e.actual_s + e.duration_ms / 1000.0).clamp(xr.start, xr.end);
            c.draw_series(std::iter::once(Rectangle::new([(t, y.start), (t1, y.end)], col(e).mix(0.13).filled())))?;
        }
    }
    Ok(())
}

/// A dashed line where each event fired (over the data).
fn draw_event_lines(c: &mut TimeChart, events: &[EventSummary], y: Range<f64>, col: impl Fn(&EventSummary) -> RGBColor) -> Result<(), ChartError> {
    let xr = c.x_range();
    for e in events {
        let t = e.actual_s.clamp(xr.start, xr.end);
        c.draw_series(DashedLineSeries::new(vec![(t, y.start), (t, y.end)], 7, 4, col(e).stroke_width(2)))?;
    }
    Ok(())
}

struct Placed {
    /// Index of the event.
    i: usize,
    label: String,
    /// Pixel column of the event's line, and where its label starts.
    px: i32,
    x0: i32,
    row: usize,
}

/// Places event names in rows above a panel, each beside its line and clear of the
/// others; a label that finds no free row is left out (its line and the legend still
/// tell).
fn place_labels(area: &Area, c: &TimeChart, events: &[EventSummary]) -> Result<Vec<Placed>, ChartError> {
    let (xr, ytop) = (c.x_range(), c.y_range().end);
    let right_edge = c.backend_coord(&(xr.end, ytop)).0;
    let mut row_end = [i32::MIN; EVENT_ROWS];
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let label = event_label(e);
        let px = c.backend_coord(&(e.actual_s.clamp(xr.start, xr.end), ytop)).0;
        let w = area.estimate_text_size(&label, &text(14))?.0 as i32;
        let x0 = if px + 4 + w <= right_edge + 20 { px + 4 } else { px - 4 - w };
        let Some(row) = row_end.iter().position(|&end| end + 8 < x0) else { continue };
        row_end[row] = x0 + w;
        out.push(Placed { i, label, px, x0, row });
    }
    Ok(out)
}

/// Top margin of a time panel: room for the rows its event labels need.
fn event_strip(area: &Area, x: Range<f64>, margin_right: u32, events: &[EventSummary]) -> Result<u32, ChartError> {
    if events.is_empty() {
        return Ok(8);
    }
    // Building a chart draws nothing: a probe with the same layout gives the columns.
    let probe = ChartBuilder::on(area).margin(12).margin_right(margin_right).y_label_area_size(82).build_cartesian_2d(x, 0.0..1.0)?;
    let rows = place_labels(area, &probe, events)?.iter().map(|p| p.row + 1).max().unwrap_or(0);
    Ok(rows as u32 * EVENT_ROW_H + 10)
}

fn label_events(area: &Area, c: &TimeChart, events: &[EventSummary], col: impl Fn(&EventSummary) -> RGBColor) -> Result<(), ChartError> {
    let (ax, ay) = area.get_base_pixel();
    let py = c.backend_coord(&(c.x_range().start, c.y_range().end)).1;
    for p in place_labels(area, c, events)? {
        let e = &events[p.i];
        // Row 0 is the one nearest the plot.
        let ly = py - (p.row as i32 + 1) * EVENT_ROW_H as i32 - 2;
        let k = col(e);
        area.draw(&PathElement::new(vec![(p.px - ax, ly + 8 - ay), (p.px - ax, py - ay)], k.stroke_width(1)))?;
        area.draw_text(&p.label, &text(14).color(&k), (p.x0 - ax, ly - ay))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Sweeps

struct SweepCell {
    /// One value per key, as text.
    values: Vec<String>,
    iops: f64,
    mbps: f64,
    runs: usize,
}

struct SweepMatrix {
    keys: Vec<String>,
    /// Values of each key in order of appearance.
    axes: Vec<Vec<String>>,
    /// In order of first appearance.
    cells: Vec<SweepCell>,
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        other => other.to_string(),
    }
}

fn repeats_note(m: &SweepMatrix) -> String {
    let most = m.cells.iter().map(|c| c.runs).max().unwrap_or(1);
    if most > 1 { format!(" · mean of up to {most} repeats") } else { String::new() }
}

/// Total IOPS and MB/s of each combination of sweep values, repeats averaged; runs
/// without workers left out.
fn sweep_matrix<'a>(runs: impl Iterator<Item = &'a PhaseSummary>) -> Option<SweepMatrix> {
    let runs: Vec<&PhaseSummary> = runs.filter(|p| !p.sweep.is_empty() && !p.workers.is_empty()).collect();
    let mut keys: Vec<String> = Vec::new();
    for p in &runs {
        for k in p.sweep.keys() {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys.sort();
    let mut axes: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    let mut cells: Vec<SweepCell> = Vec::new();
    for p in runs {
        let values: Vec<String> = keys.iter().map(|k| p.sweep.get(k).map_or_else(|| "–".into(), value_text)).collect();
        for (axis, v) in axes.iter_mut().zip(&values) {
            if !axis.contains(v) {
                axis.push(v.clone());
            }
        }
        let (iops, mbps) = (finite_sum(p.workers.iter().map(|w| w.iops)), finite_sum(p.workers.iter().map(|w| w.mbps)));
        match cells.iter_mut().find(|c| c.values == values) {
            Some(c) => {
                c.iops += iops;
                c.mbps += mbps;
                c.runs += 1;
            }
            None => cells.push(SweepCell { values, iops, mbps, runs: 1 }),
        }
    }
    for c in &mut cells {
        c.iops /= c.runs as f64;
        c.mbps /= c.runs as f64;
    }
    (!cells.is_empty()).then_some(SweepMatrix { keys, axes, cells })
}

/// Blues, light to dark, at `t` in 0..=1.
fn blues(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [(239.0, 246.0, 255.0), (107.0, 174.0, 214.0), (8.0, 48.0, 107.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 2.0;
    let i = (t.floor() as usize).min(1);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Categories at 0, 1, ... with their labels as ticks.
fn category_axis(n: usize) -> Ticks {
    Ticks { range: -0.5..n as f64 - 0.5, major: (0..n).map(|i| i as f64).collect(), minor: Vec::new() }
}

fn category(labels: &[String], v: f64) -> String {
    let i = v.round();
    if i < 0.0 { String::new() } else { labels.get(i as usize).cloned().unwrap_or_default() }
}

fn draw_heatmap(area: &Area, m: &SweepMatrix) -> Result<(), ChartError> {
    let (cols, rows) = (&m.axes[0], &m.axes[1]);
    let (w, _) = area.dim_in_pixel();
    let (plot, bar) = area.split_horizontally(w.saturating_sub(150));
    let range = finite_range(m.cells.iter().map(|c| &c.iops));
    let (lo, hi) = range.map_or((0.0, 1.0), |(a, b)| (a.log10(), b.log10()));
    let shade = |v: f64| {
        if v > 0.0 && hi > lo {
            (v.log10() - lo) / (hi - lo)
        } else if v > 0.0 {
            0.6
        } else {
            0.0
        }
    };
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .margin_right(8)
        .x_label_area_size(52)
        .y_label_area_size(92)
        .build_cartesian_2d(category_axis(cols.len()), category_axis(rows.len()))?;
    let row_labels: Vec<String> = rows.iter().rev().cloned().collect();
    chart
        .configure_mesh()
        .disable_mesh()
        .axis_style(MUTED)
        .label_style(text(15))
        .axis_desc_style(text(17))
        .x_desc(&m.keys[0])
        .y_desc(&m.keys[1])
        .x_label_formatter(&|v| category(cols, *v))
        .y_label_formatter(&|v| category(&row_labels, *v))
        .draw()?;
    let (px0, py0) = chart.backend_coord(&(-0.5, -0.5));
    let (px1, py1) = chart.backend_coord(&(0.5, 0.5));
    let (cell_w, cell_h) = ((px1 - px0).abs(), (py0 - py1).abs());
    let size = (cell_w / 5).clamp(9, 18) as u32;
    for c in &m.cells {
        let (Some(x), Some(y)) = (cols.iter().position(|v| *v == c.values[0]), rows.iter().position(|v| *v == c.values[1])) else { continue };
        let (x, y) = (x as f64, (rows.len() - 1 - y) as f64);
        let t = shade(c.iops);
        let fill = blues(t);
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], fill.filled())))?;
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], WHITE.stroke_width(2))))?;
        let ink = if t > 0.55 { WHITE } else { INK };
        let center = Pos::new(HPos::Center, VPos::Center);
        let two = cell_h >= 2 * size as i32 + 14;
        let dy = if two { -(size as i32) / 2 - 1 } else { 0 };
        chart.draw_series(std::iter::once(EmptyElement::at((x, y)) + Text::new(si(c.iops, 3), (0, dy), bold(size).color(&ink).pos(center))))?;
        if two {
            let mb = format!("{} MB/s", num(c.mbps, 3));
            chart
                .draw_series(std::iter::once(EmptyElement::at((x, y)) + Text::new(mb, (0, size as i32 / 2 + 3), text(size * 3 / 4).color(&ink).pos(center))))?;
        }
    }
    // Colour scale: what the shades mean.
    let Some(y) = log_axis(10f64.powf(lo), 10f64.powf(hi)) else { return Ok(()) };
    let yr = log_bounds(&y);
    let mut scale =
        ChartBuilder::on(&bar).margin(12).margin_left(22).margin_top(30).x_label_area_size(52).right_y_label_area_size(70).build_cartesian_2d(0.0..1.0, y)?;
    scale.configure_mesh().disable_mesh().disable_x_axis().axis_style(MUTED).label_style(text(14)).y_label_formatter(&|v| si(10f64.powf(*v), 3)).draw()?;
    let steps = 60;
    scale.draw_series((0..steps).map(|i| {
        let a = yr.start + (yr.end - yr.start) * i as f64 / steps as f64;
        let b = yr.start + (yr.end - yr.start) * (i + 1) as f64 / steps as f64;
        Rectangle::new([(0.0, a), (1.0, b)], blues(shade(10f64.powf((a + b) / 2.0))).filled())
    }))?;
    bar.draw_text("IOPS", &bold(15), (22, 8))?;
    Ok(())
}

fn draw_bars(area: &Area, m: &SweepMatrix) -> Result<(), ChartError> {
    let labels = &m.axes[0];
    let max = m.cells.iter().map(|c| c.iops).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(52)
        .y_label_area_size(82)
        .build_cartesian_2d(category_axis(labels.len()), zero_range(max * 1.08))?;
    style_mesh!(chart.configure_mesh())
        .disable_x_mesh()
        .x_desc(&m.keys[0])
        .y_desc("IOPS (all workers)")
        .x_label_formatter(&|v| category(labels, *v))
        .y_label_formatter(&|v| si(*v, 4))
        .draw()?;
    let above = Pos::new(HPos::Center, VPos::Bottom);
    for c in &m.cells {
        let Some(i) = labels.iter().position(|v| *v == c.values[0]) else { continue };
        let (x, v) = (i as f64, if c.iops.is_finite() { c.iops } else { 0.0 });
        chart.draw_series(std::iter::once(Rectangle::new([(x - 0.35, 0.0), (x + 0.35, v)], color(0).filled())))?;
        chart.draw_series(std::iter::once(EmptyElement::at((x, v)) + Text::new(si(v, 3), (0, -4), text(14).pos(above))))?;
    }
    Ok(())
}

/// Horizontal bars, one per combination, labelled `key=value, ...`.
fn draw_hbars(area: &Area, m: &SweepMatrix) -> Result<(), ChartError> {
    let labels: Vec<String> =
        m.cells.iter().rev().map(|c| m.keys.iter().zip(&c.values).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")).collect();
    let mut widest = 0;
    for l in &labels {
        widest = widest.max(area.estimate_text_size(l, &text(14))?.0);
    }
    let label_w = (widest + 16).min(area.dim_in_pixel().0 / 2);
    let max = m.cells.iter().map(|c| c.iops).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(70)
        .x_label_area_size(52)
        .y_label_area_size(label_w)
        .build_cartesian_2d(zero_range(max), category_axis(labels.len()))?;
    style_mesh!(chart.configure_mesh())
        .disable_y_mesh()
        .label_style(text(14))
        .x_desc("IOPS (all workers)")
        .x_label_formatter(&|v| si(*v, 4))
        .y_label_formatter(&|v| category(&labels, *v))
        .draw()?;
    let right = Pos::new(HPos::Left, VPos::Center);
    let n = m.cells.len();
    for (i, c) in m.cells.iter().enumerate() {
        let (y, v) = ((n - 1 - i) as f64, if c.iops.is_finite() { c.iops } else { 0.0 });
        chart.draw_series(std::iter::once(Rectangle::new([(0.0, y - 0.35), (v, y + 0.35)], color(0).filled())))?;
        chart.draw_series(std::iter::once(EmptyElement::at((v, y)) + Text::new(si(v, 3), (5, 0), text(13).pos(right))))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Comparisons

struct RunData {
    name: String,
    color: RGBColor,
    rates: Option<Rates>,
    curve: Vec<(f64, f64)>,
    iops: f64,
    mbps: f64,
    events: Vec<EventSummary>,
}

fn draw_comparison(area: &Area, runs: &[RunData]) -> Result<(), ChartError> {
    let mut entries: Vec<Entry> = runs.iter().map(|r| Entry::new(&r.name, r.color, Mark::Thick)).collect();
    entries.push(Entry::new("event, in its run's colour", MUTED, Mark::Dashed));
    if !runs.iter().any(|r| !r.events.is_empty()) {
        entries.pop();
    }
    let plot = with_legend(area, &entries)?;
    let (w, _) = plot.dim_in_pixel();
    let (left, rest) = plot.split_horizontally(w * 42 / 100);
    let (middle, right) = rest.split_horizontally(w * 34 / 100);

    // Total IOPS over time.
    let totals: Vec<(Step, &RunData)> = runs
        .iter()
        .filter_map(|r| {
            let rates = r.rates.as_ref()?;
            let s = match &rates.total {
                Some(t) => t.0.clone(),
                None => rates.workers[0].iops.clone(),
            };
            Some((s, r))
        })
        .collect();
    if !totals.is_empty() {
        let end = runs.iter().filter_map(|r| r.rates.as_ref()).map(|r| r.end).fold(0.0, f64::max);
        let end = if end > 0.0 { end } else { 1.0 };
        let ymax = totals.iter().map(|t| t.0.max()).fold(0.0, f64::max);
        // Runs of one plan fire the same events at about the same times: label each once.
        let mut labelled: Vec<EventSummary> = Vec::new();
        for e in runs.iter().flat_map(|r| &r.events) {
            if !labelled.iter().any(|l| l.name == e.name && (l.actual_s - e.actual_s).abs() < end / 50.0) {
                labelled.push(e.clone());
            }
        }
        let left = left.titled("Total IOPS over time", bold(17))?;
        let strip = event_strip(&left, 0.0..end, 20, &labelled)?;
        let mut c = ChartBuilder::on(&left)
            .margin(12)
            .margin_top(strip)
            .margin_right(20)
            .x_label_area_size(52)
            .y_label_area_size(82)
            .build_cartesian_2d(0.0..end, zero_range(ymax))?;
        style_mesh!(c.configure_mesh())
            .x_desc("Time from phase start (s)")
            .y_desc("IOPS (all workers)")
            .x_label_formatter(&|v| num(*v, 4))
            .y_label_formatter(&|v| si(*v, 4))
            .draw()?;
        let yr = c.y_range();
        for (s, r) in &totals {
            let pts = s.points();
            let width = if pts.len() > 200 { 1 } else { 2 };
            c.draw_series(LineSeries::new(pts, r.color.stroke_width(width)))?;
        }
        for (_, r) in &totals {
            let k = r.color;
            draw_event_lines(&mut c, &r.events, yr.clone(), move |_| k)?;
        }
        label_events(&left, &c, &labelled, |_| INK)?;
    }

    // Latency by percentile.
    let curves: Vec<Curve> = runs
        .iter()
        .map(|r| Curve { label: r.name.clone(), color: r.color, mark: Mark::Thick, points: curve_points(&r.curve) })
        .filter(|c| !c.points.is_empty())
        .collect();
    if !curves.is_empty() {
        let cap = middle.titled("Latency by percentile (all workers)", bold(17))?;
        draw_qos(&cap, &curves, Some("Percentile (nines scale)"))?;
    }

    // Mean IOPS and MB/s.
    let h = right.dim_in_pixel().1;
    let (top, bottom) = right.split_vertically(h / 2);
    bar_panel(&top, runs, "Mean IOPS", |r| r.iops, |v| si(v, 3))?;
    bar_panel(&bottom, runs, "Mean MB/s", |r| r.mbps, |v| num(v, 4))?;
    Ok(())
}

fn bar_panel(area: &Area, runs: &[RunData], title: &str, value: fn(&RunData) -> f64, fmt: fn(f64) -> String) -> Result<(), ChartError> {
    let vals: Vec<f64> = runs.iter().map(value).map(|v| if v.is_finite() && v > 0.0 { v } else { 0.0 }).collect();
    let max = vals.iter().copied().fold(0.0, f64::max);
    let mut c = ChartBuilder::on(area)
        .margin(10)
        .margin_right(16)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption(title, bold(16))
        .build_cartesian_2d(category_axis(runs.len()), zero_range(max * 1.12))?;
    // Run names under the bars, shortened to their slot (the legend has them whole).
    let slot = area.dim_in_pixel().0.saturating_sub(100) / runs.len().max(1) as u32;
    let names = runs.iter().map(|r| fit(area, &r.name, &text(13), slot.saturating_sub(6))).collect::<Result<Vec<_>, _>>()?;
    style_mesh!(c.configure_mesh())
        .disable_x_mesh()
        .label_style(text(13))
        .y_labels(5)
        .x_label_formatter(&|v| category(&names, *v))
        .y_label_formatter(&|v| fmt(*v))
        .draw()?;
    let above = Pos::new(HPos::Center, VPos::Bottom);
    for (i, (r, v)) in runs.iter().zip(&vals).enumerate() {
        let x = i as f64;
        c.draw_series(std::iter::once(Rectangle::new([(x - 0.36, 0.0), (x + 0.36, *v)], r.color.filled())))?;
        c.draw_series(std::iter::once(EmptyElement::at((x, *v)) + Text::new(fmt(*v), (0, -3), text(13).pos(above))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Device;
    use crate::ioworker::{IoWorkerResult, Timeseries};
    use hdrhistogram::Histogram;

    /// A deterministic latency sample: mostly near `base_ns`, with a long tail.
    fn latencies(n: usize, base_ns: u64, seed: u64) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        for _ in 0..n {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = ((x >> 11) as f64 / (1u64 << 53) as f64).max(1e-12);
            // Exponential tail on top of a floor.
            let v = base_ns as f64 * (0.6 + 0.4 * -u.ln());
            h.record(v as u64 + 1).unwrap();
        }
        h
    }

    fn worker(name: &str, start_s: f64, classes: &[(&str, u64)], seed: u64) -> WorkerSummary {
        let mut latency = Vec::new();
        let mut all: Option<Histogram<u64>> = None;
        for (k, &(class, base)) in classes.iter().enumerate() {
            let h = latencies(20_000, base, seed + k as u64);
            latency.push(Latency::of(class, &h, &[]).unwrap());
            match &mut all {
                None => all = Some(h),
                Some(a) => a.add(&h).unwrap(),
            }
        }
        if let Some(a) = all {
            latency.push(Latency::of("all", &a, &[]).unwrap());
        }
        let ios: Vec<u64> = (0..40).map(|i| if (18..22).contains(&i) { 0 } else { 900 + (i * 37 % 100) }).collect();
        let bytes = ios.iter().map(|n| n * 4096).collect();
        let result = IoWorkerResult { mseconds: 3950, timeseries: Some(Timeseries::new(100, ios, bytes)), io_count_read: 36_000, ..Default::default() };
        WorkerSummary {
            qdepth: 1,
            regions: Vec::new(),
            name: name.into(),
            nsid: 1,
            cpu_id: None,
            outcome: Outcome::Pass,
            start_s,
            latency,
            checks: Vec::new(),
            iops: 9000.0,
            mbps: 36.9,
            result,
        }
    }

    fn event(name: &str, kind: &str, at: f64, ms: f64, outcome: Outcome) -> EventSummary {
        EventSummary {
            name: name.into(),
            kind: kind.into(),
            detail: String::new(),
            planned_s: at,
            actual_s: at,
            late_ms: 0.0,
            duration_ms: ms,
            status: None,
            cdw0: None,
            error: None,
            allow_failure: false,
            outcome,
        }
    }

    fn phase(name: &str, label: &str, workers: Vec<WorkerSummary>, events: Vec<EventSummary>) -> PhaseSummary {
        PhaseSummary {
            name: name.into(),
            label: label.into(),
            repeat: 0,
            sweep: std::collections::BTreeMap::new(),
            outcome: Outcome::Pass,
            start_s: 0.0,
            seconds: 4.0,
            planned_s: Some(4.0),
            checks: Vec::new(),
            events,
            workers,
            metamode: Vec::new(),
            report_page: None,
        }
    }

    fn summary(phases: Vec<PhaseSummary>) -> Summary {
        Summary {
            identity: Default::default(),
            plan: "test-plan".into(),
            file: "plans/test.yaml".into(),
            description: None,
            seed: 1,
            time_scale: 1.0,
            target: "sim".into(),
            device: Some(Device {
                transport: "simulator".into(),
                model: "nvplan sim".into(),
                serial: "S1".into(),
                firmware: "1.0".into(),
                vid: 0,
                namespaces: 1,
            }),
            percentiles: Vec::new(),
            started_unix: 0,
            seconds: 10.0,
            outcome: Outcome::Pass,
            complete: true,
            error: None,
            phases,
            steady_state: Vec::new(),
        }
    }

    fn sweep_run(name: &str, values: &[(&str, serde_json::Value)], iops: f64) -> PhaseSummary {
        let mut w = worker("w0", 0.0, &[("read", 50_000)], 3);
        w.iops = iops;
        w.mbps = iops * 4096.0 / 1e6;
        let mut p = phase(name, name, vec![w], Vec::new());
        p.sweep = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        p.label = format!("{name} {}", values.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect::<Vec<_>>().join(" "));
        p
    }

    fn tmp_dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nvplan-charts-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Width, height and RGB pixels of a PNG.
    fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
        let mut reader = png::Decoder::new(std::fs::File::open(path).unwrap()).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let n = info.color_type.samples();
        let px = buf[..info.buffer_size()].chunks(n).map(|c| [c[0], c[1], c[2]]).collect();
        (info.width, info.height, px)
    }

    /// The PNG has the size asked for and is really drawn on.
    fn assert_drawn(path: &Path, size: (u32, u32)) -> Vec<[u8; 3]> {
        let (w, h, px) = decode(path);
        assert_eq!((w, h), size, "{}", path.display());
        let ink = px.iter().filter(|p| **p != [255, 255, 255]).count();
        assert!(ink * 100 > px.len(), "{}: only {ink} of {} pixels drawn", path.display(), px.len());
        let distinct: std::collections::HashSet<_> = px.iter().collect();
        assert!(distinct.len() >= 8, "{}: {} colours", path.display(), distinct.len());
        px
    }

    fn has(px: &[[u8; 3]], c: RGBColor) -> bool {
        px.contains(&[c.0, c.1, c.2])
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn phase_charts_write_histogram_percentiles_and_iops_pngs() {
        let dir = tmp_dir("phase");
        let s = summary(vec![phase(
            "mixed",
            "mixed io_size=4KiB",
            vec![worker("w0", 0.0, &[("read", 80_000), ("write", 20_000)], 1), worker("w1", 0.5, &[("read", 120_000)], 9)],
            vec![event("reset", "reset", 1.9, 30.0, Outcome::Pass)],
        )]);
        let paths = phase_charts(&dir, &s, 0).unwrap();
        assert_eq!(
            names(&paths),
            ["00-mixed-io-size-4kib-latency-histogram.png", "00-mixed-io-size-4kib-latency-percentiles.png", "00-mixed-io-size-4kib-iops.png"]
        );
        for p in &paths {
            assert_drawn(p, (WIDTH, HEIGHT));
        }
        // Written through temporary files, none left behind.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with('.')).collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn iops_chart_marks_each_fired_event_and_no_skipped_one() {
        let dir = tmp_dir("events");
        let w = || vec![worker("w0", 0.0, &[("read", 50_000)], 1)];
        let s = summary(vec![
            phase(
                "pc",
                "pc fired",
                w(),
                vec![event("power_cycle", "power_cycle", 1.8, 400.0, Outcome::Pass), event("flush", "admin", 1.0, 0.2, Outcome::Pass)],
            ),
            phase("pc", "pc skipped", w(), vec![event("power_cycle", "power_cycle", 1.8, 0.0, Outcome::Skipped)]),
        ]);
        let fired = phase_charts(&dir, &s, 0).unwrap();
        let px = assert_drawn(fired.last().unwrap(), (WIDTH, HEIGHT));
        assert!(has(&px, event_color("power_cycle")), "power cycle not marked");
        assert!(has(&px, event_color("admin")), "admin command not marked");
        let skipped = phase_charts(&dir, &s, 1).unwrap();
        let px = assert_drawn(skipped.last().unwrap(), (WIDTH, HEIGHT));
        assert!(!has(&px, event_color("power_cycle")), "a skipped event was drawn");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn qos_chart_adds_read_and_write_curves_only_for_a_worker_with_both() {
        let p =
            phase("mixed", "mixed", vec![worker("w0", 0.0, &[("read", 80_000), ("write", 20_000)], 1), worker("w1", 0.0, &[("read", 120_000)], 2)], Vec::new());
        let curves = qos_series(&p);
        let labels: Vec<&str> = curves.iter().map(|c| c.label.split(" (").next().unwrap()).collect();
        assert_eq!(labels, ["w0", "w0 read", "w0 write", "w1"]);
        assert_eq!(curves[1].mark, Mark::Dashed);
        // 41 points from 0 to 99.999 %, on the nines scale up to 5.
        assert_eq!(curves[0].points.len(), 41);
        assert!((curves[0].points[40].0 - 5.0).abs() < 1e-6);
    }

    #[test]
    fn merged_curve_of_two_like_workers_follows_their_own_curves() {
        let a = Latency::of("all", &latencies(50_000, 60_000, 1), &[]).unwrap();
        let b = Latency::of("all", &latencies(50_000, 60_000, 2), &[]).unwrap();
        let m = merged_curve(&[&a, &b]);
        assert_eq!(m.len(), 41);
        for (k, (&(p, us), &(pa, ua))) in m.iter().zip(&a.curve).enumerate().skip(1).take(30) {
            assert!((p - pa).abs() < 1e-9);
            // Within a bucket (12 %) and a little sampling noise.
            assert!((us / ua - 1.0).abs() < 0.2, "k={k}: {us} vs {ua}");
        }
        assert!(m.windows(2).all(|w| w[1].1 >= w[0].1), "not monotonic: {m:?}");
        assert_eq!(merged_curve(&[&a]), a.curve);
        assert!(merged_curve(&[]).is_empty());
    }

    #[test]
    fn total_rate_adds_workers_that_start_at_different_times() {
        let a = Step { edges: vec![0.0, 1.0, 2.0], vals: vec![10.0, 20.0] };
        let b = Step { edges: vec![0.5, 1.5, 2.5], vals: vec![1.0, 2.0] };
        let t = Step::sum(&[&a, &b]);
        assert_eq!(t.edges, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        assert_eq!(t.vals, [10.0, 11.0, 21.0, 22.0, 2.0]);
    }

    #[test]
    fn last_partial_interval_is_a_rate_over_its_own_length() {
        let mut w = worker("w0", 1.0, &[("read", 50_000)], 1);
        w.result.timeseries = Some(Timeseries::new(1000, vec![1000, 500], vec![4_096_000, 2_048_000]));
        w.result.mseconds = 1500;
        let r = worker_rates(&w).unwrap();
        assert_eq!(r.iops.edges, [1.0, 2.0, 2.5]);
        assert_eq!(r.iops.vals, [1000.0, 1000.0]);
        assert!((r.mbps.vals[1] - 4.096).abs() < 1e-9);
    }

    #[test]
    fn sweep_with_two_keys_is_a_heatmap_with_repeats_averaged() {
        let dir = tmp_dir("sweep2");
        let mut phases = Vec::new();
        for bs in ["512B", "4KiB", "128KiB"] {
            for rp in [100, 65, 0] {
                let iops = 200_000.0 / (1.0 + phases.len() as f64);
                phases.push(sweep_run("iops", &[("io_size", bs.into()), ("read_percentage", rp.into())], iops));
            }
        }
        phases.push(sweep_run("iops", &[("io_size", "512B".into()), ("read_percentage", 100.into())], 100_000.0));
        phases.push(phase("purge", "purge", Vec::new(), Vec::new()));
        let s = summary(phases);
        let m = sweep_matrix(s.phases.iter().filter(|p| p.name == "iops")).unwrap();
        assert_eq!(m.keys, ["io_size", "read_percentage"]);
        assert_eq!(m.axes[0], ["512B", "4KiB", "128KiB"]);
        assert_eq!(m.axes[1], ["100", "65", "0"]);
        assert_eq!(m.cells.len(), 9);
        assert_eq!((m.cells[0].iops, m.cells[0].runs), (150_000.0, 2));
        let paths = sweep_charts(&dir, &s).unwrap();
        assert_eq!(names(&paths), ["sweep-iops.png"]);
        let px = assert_drawn(&paths[0], (WIDTH, HEIGHT));
        assert!(has(&px, blues(1.0)) && has(&px, blues(0.0)), "no colour scale");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sweep_with_one_key_or_three_keys_is_drawn_as_bars() {
        let dir = tmp_dir("sweep13");
        let mut phases = Vec::new();
        for (i, qd) in [1, 4, 16, 64].iter().enumerate() {
            phases.push(sweep_run("qd", &[("qdepth", (*qd).into())], 10_000.0 * (i + 1) as f64));
        }
        for bs in ["4KiB", "64KiB"] {
            for rp in [100, 0] {
                for qd in [1, 32] {
                    phases.push(sweep_run("three", &[("io_size", bs.into()), ("read_percentage", rp.into()), ("qdepth", qd.into())], 5e4));
                }
            }
        }
        let s = summary(phases);
        let paths = sweep_charts(&dir, &s).unwrap();
        assert_eq!(names(&paths), ["sweep-qd.png", "sweep-three.png"]);
        assert_drawn(&paths[0], (WIDTH, HEIGHT));
        assert_drawn(&paths[1], (WIDTH, HEIGHT));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn comparison_has_one_chart_per_label_in_more_than_one_run() {
        let dir = tmp_dir("compare");
        let a = summary(vec![
            phase("mixed", "mixed", vec![worker("w0", 0.0, &[("read", 80_000)], 1), worker("w1", 0.0, &[("write", 30_000)], 2)], Vec::new()),
            phase("only-a", "only-a", vec![worker("w0", 0.0, &[("read", 80_000)], 1)], Vec::new()),
        ]);
        let b = summary(vec![phase(
            "mixed",
            "mixed",
            vec![worker("w0", 0.0, &[("read", 60_000)], 3), worker("w1", 0.0, &[("write", 40_000)], 4)],
            vec![event("reset", "reset", 2.0, 50.0, Outcome::Pass)],
        )]);
        let paths = comparison_charts(&dir, &[("drive A fw 1.0".into(), &a), ("drive B fw 2.0".into(), &b)]).unwrap();
        assert_eq!(names(&paths), ["compare-00-mixed.png"]);
        let px = assert_drawn(&paths[0], (1800, HEIGHT));
        assert!(has(&px, color(0)) && has(&px, color(1)), "a run's colour is missing");
        assert!(comparison_charts(&dir, &[("a".into(), &a)]).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_or_degenerate_data_gives_no_chart_and_no_error() {
        let dir = tmp_dir("empty");
        let mut idle = worker("idle", 0.0, &[], 1);
        idle.result.timeseries = Some(Timeseries::new(100, vec![0, 0], vec![0, 0]));
        let mut broken = worker("broken", f64::NAN, &[], 1);
        broken.result.timeseries = Some(Timeseries::new(0, vec![5], vec![]));
        broken.iops = f64::NAN;
        let s = summary(vec![
            phase("purge", "purge", Vec::new(), vec![event("format", "admin", 0.0, 12.0, Outcome::Pass)]),
            phase("idle", "idle", vec![idle, broken], Vec::new()),
        ]);
        assert!(phase_charts(&dir, &s, 0).unwrap().is_empty());
        assert!(phase_charts(&dir, &s, 1).unwrap().is_empty());
        assert!(phase_charts(&dir, &s, 2).is_err(), "no phase run 2");
        assert!(sweep_charts(&dir, &s).unwrap().is_empty());
        assert!(comparison_charts(&dir, &[("a".into(), &s), ("b".into(), &s)]).unwrap().is_empty());
        assert!(comparison_charts(&dir, &[]).unwrap().is_empty());
        assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn odd_values_still_draw_without_panicking() {
        let dir = tmp_dir("odd");
        // One completion, one bucket, one interval, flat curve, infinite and NaN values.
        let mut w = worker("one", 0.0, &[], 1);
        let l = Latency {
            class: "all".into(),
            count: 1,
            mean_us: f64::NAN,
            percentiles: vec![(100.0, f64::INFINITY)],
            curve: vec![(0.0, 7.0), (50.0, 7.0), (100.0, 7.0), (99.0, f64::NAN)],
            histogram: vec![(6.31, 7.079, 1), (0.0, 1.0, 3), (f64::NAN, 1.0, 2)],
        };
        w.latency = vec![l];
        w.result.timeseries = Some(Timeseries::new(100, vec![1], vec![4096]));
        w.result.mseconds = 0;
        let mut p = phase("one", "one", vec![w], vec![event("late", "reset", f64::INFINITY, f64::NAN, Outcome::Fail)]);
        p.seconds = f64::NAN;
        let s = summary(vec![p]);
        let paths = phase_charts(&dir, &s, 0).unwrap();
        assert_eq!(paths.len(), 3);
        for p in &paths {
            decode(p);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slug_keeps_lowercase_alphanumerics_and_single_dashes() {
        assert_eq!(slug("iops io_size=4KiB read_percentage=65"), "iops-io-size-4kib-read-percentage-65");
        assert_eq!(slug("  --Power Loss #3--  "), "power-loss-3");
        assert_eq!(slug("µs/ä"), "s");
        assert_eq!(slug("***"), "unnamed");
        let long = slug(&"ab ".repeat(40));
        assert!(long.len() <= 60 && !long.ends_with('-'), "{long}");
    }

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
