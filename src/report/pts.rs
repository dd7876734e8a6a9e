//! SNIA PTS report pages: one self-contained HTML file per phase that ran in rounds until
//! steady state (`pts-<phase>.html`), with its charts embedded as PNG data, so that the
//! file can be attached to a qualification report as it is. The pages follow the PTS
//! 2.0.2 report layout: a header, steady-state convergence, the measurement window,
//! the measurement table and its 2D plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::charts::{Area, ChartError, Entry, HEIGHT, Mark, WIDTH, color, device_line, frame, num, save, si, slug, style_mesh, with_legend, zero_range};
use super::junit::escape as esc;
use crate::exec::steady::{SteadyStateSummary, track_value};
use crate::exec::{Outcome, PhaseSummary, Summary};
use crate::plan::model::{TrackMetric, TrackSpec};

/// The tracking variable's unit, from its name in the summary.
fn unit(track: &str) -> &'static str {
    match track {
        "iops" => "IOPS",
        "mbps" => "MB/s",
        _ => "µs",
    }
}

/// The tracking variable from its name in the summary.
fn track_spec(track: &str) -> TrackSpec {
    match track {
        "iops" => TrackSpec::Metric(TrackMetric::Iops),
        "mbps" => TrackSpec::Metric(TrackMetric::Mbps),
        "latency_mean_us" => TrackSpec::Metric(TrackMetric::LatencyMeanUs),
        "latency_max_us" => TrackSpec::Metric(TrackMetric::LatencyMaxUs),
        t => TrackSpec::Percentile { latency_us: t.trim_start_matches("latency_us[").trim_end_matches(']').parse().unwrap_or(99.0) },
    }
}

/// A sweep value as a table shows it.
fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        o => o.to_string(),
    }
}

fn cell_label(p: &PhaseSummary) -> String {
    p.sweep.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect::<Vec<_>>().join(" ")
}

/// The rounds of one steady-state phase: every cell's value in every round.
struct Rounds<'a> {
    e: &'a SteadyStateSummary,
    /// Sweep keys, in the summary's order.
    keys: Vec<String>,
    /// Cells in the order of a round, each with its sweep values.
    cells: Vec<(String, BTreeMap<String, serde_json::Value>)>,
    /// `values[cell][round - 1]`.
    values: Vec<Vec<f64>>,
    /// Latency of each cell over the window: (average, 99.999 %, maximum) µs, averaged.
    latency: Vec<(f64, f64, f64)>,
}

fn rounds<'a>(s: &Summary, e: &'a SteadyStateSummary) -> Rounds<'a> {
    let track = track_spec(&e.track);
    let runs: Vec<&PhaseSummary> = s.phases.iter().filter(|p| p.name == e.phase && p.outcome != Outcome::Skipped).collect();
    let mut cells: Vec<(String, BTreeMap<String, serde_json::Value>)> = Vec::new();
    let mut values: Vec<Vec<f64>> = Vec::new();
    let mut lat: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    let window = e.window.as_ref().map(|w| w.first_round..=w.last_round);
    for p in &runs {
        let label = cell_label(p);
        let k = match cells.iter().position(|c| c.0 == label) {
            Some(k) => k,
            None => {
                cells.push((label, p.sweep.clone()));
                values.push(Vec::new());
                lat.push(Vec::new());
                cells.len() - 1
            }
        };
        values[k].push(track_value(p, &track));
        if window.as_ref().is_some_and(|w| w.contains(&(p.repeat + 1))) {
            let avg = track_value(p, &TrackSpec::Metric(TrackMetric::LatencyMeanUs));
            let five9 = track_value(p, &TrackSpec::Percentile { latency_us: 99.999 });
            let max = track_value(p, &TrackSpec::Metric(TrackMetric::LatencyMaxUs));
            lat[k].push((avg, five9, max));
        }
    }
    let mean = |v: &[(f64, f64, f64)]| {
        let n = v.len().max(1) as f64;
        (v.iter().map(|x| x.0).sum::<f64>() / n, v.iter().map(|x| x.1).sum::<f64>() / n, v.iter().map(|x| x.2).fold(0.0, f64::max))
    };
    let keys = runs.first().map(|p| p.sweep.keys().cloned().collect()).unwrap_or_default();
    Rounds { e, keys, cells, values, latency: lat.iter().map(|v| mean(v)).collect() }
}

impl Rounds<'_> {
    /// The average of cell `k` over the measurement window (all rounds without one).
    fn window_average(&self, k: usize) -> f64 {
        let v = &self.values[k];
        let (a, b) = match &self.e.window {
            Some(w) => (w.first_round as usize - 1, (w.last_round as usize).min(v.len())),
            None => (0, v.len()),
        };
        let sl = &v[a.min(b)..b];
        if sl.is_empty() { 0.0 } else { sl.iter().sum::<f64>() / sl.len() as f64 }
    }

    /// The cells the convergence chart shows: those that differ from the tracked cell in
    /// `io_size` alone (every block size at the tracked mix), else all of them.
    fn convergence_cells(&self) -> Vec<usize> {
        let tracked = self.cells.iter().position(|c| c.0 == self.e.cell);
        let (Some(t), true) = (tracked, self.keys.iter().any(|k| k == "io_size")) else { return (0..self.cells.len()).collect() };
        let same_mix = |k: usize| self.cells[k].1.iter().all(|(key, v)| key == "io_size" || self.cells[t].1.get(key) == Some(v));
        (0..self.cells.len()).filter(|&k| same_mix(k)).collect()
    }
}

/// Writes `pts-<phase>.html` for every phase of `s` that ran in rounds, with its charts in
/// `chart_dir`; returns the paths written (charts first).
pub fn pages(dir: &Path, chart_dir: &Path, s: &Summary) -> Result<Vec<PathBuf>, ChartError> {
    let mut out = Vec::new();
    for e in s.steady_state.iter().filter(|e| !e.series.is_empty()) {
        let r = rounds(s, e);
        let stem = format!("pts-{}", slug(&e.phase));
        let sub = format!("{} · {}", s.plan, device_line(s));
        let u = unit(&e.track);
        let conv = save(chart_dir, &format!("{stem}-convergence.png"), (WIDTH, HEIGHT), |root| {
            let title = format!("Steady-state convergence: {} ({u}) by round", e.phase);
            draw_convergence(&frame(root, &title, &sub)?, &r, u)
        })?;
        let win = save(chart_dir, &format!("{stem}-window.png"), (WIDTH, HEIGHT), |root| {
            let title = format!("Measurement window: {} of {}", e.track, if e.cell.is_empty() { &e.phase } else { &e.cell });
            draw_window(&frame(root, &title, &sub)?, e, u)
        })?;
        let mut charts = vec![("Steady-state convergence", conv), ("Measurement window", win)];
        if r.keys.len() == 2 {
            let plot = save(chart_dir, &format!("{stem}-2d.png"), (WIDTH, HEIGHT), |root| {
                let title = format!("{}: {u} by {} and {} (measurement window average)", e.phase, r.keys[0], r.keys[1]);
                draw_2d(&frame(root, &title, &sub)?, &r, u)
            })?;
            charts.push(("2D plot", plot));
        }
        let html = page(s, &r, &charts)?;
        let path = dir.join(format!("{stem}.html"));
        super::write_atomic(dir, &format!("{stem}.html"), html.as_bytes())?;
        out.extend(charts.into_iter().map(|c| c.1));
        out.push(path);
    }
    Ok(out)
}

fn rounds_axis(n: usize) -> std::ops::Range<f64> {
    0.5..(n.max(1) as f64 + 0.5)
}

fn draw_convergence(area: &Area, r: &Rounds, u: &str) -> Result<(), ChartError> {
    let shown = r.convergence_cells();
    let label = |k: usize| match r.cells[k].1.get("io_size") {
        Some(v) if shown.len() < r.cells.len() => value_text(v),
        _ => r.cells[k].0.clone(),
    };
    let entries: Vec<Entry> =
        shown.iter().enumerate().map(|(i, &k)| Entry::new(label(k), color(i), if r.cells[k].0 == r.e.cell { Mark::Thick } else { Mark::Line })).collect();
    let plot = with_legend(area, &entries)?;
    let n = r.values.iter().map(Vec::len).max().unwrap_or(1);
    let ymax = shown.iter().flat_map(|&k| r.values[k].iter().copied()).fold(0.0, f64::max);
    let mut c =
        ChartBuilder::on(&plot).margin(12).margin_right(24).x_label_area_size(52).y_label_area_size(82).build_cartesian_2d(rounds_axis(n), zero_range(ymax))?;
    style_mesh!(c.configure_mesh())
        .x_desc("Round")
        .y_desc(u)
        .x_labels(n.min(25))
        .x_label_formatter(&|v| num(*v, 3))
        .y_label_formatter(&|v| si(*v, 4))
        .draw()?;
    for (i, &k) in shown.iter().enumerate() {
        let pts: Vec<(f64, f64)> = r.values[k].iter().enumerate().map(|(j, &v)| ((j + 1) as f64, v)).collect();
        let w = if r.cells[k].0 == r.e.cell { 3 } else { 2 };
        c.draw_series(LineSeries::new(pts.clone(), color(i).stroke_width(w)))?;
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color(i).filled())))?;
    }
    Ok(())
}

fn draw_window(area: &Area, e: &SteadyStateSummary, u: &str) -> Result<(), ChartError> {
    let entries = [
        Entry::new(e.track.clone(), color(0), Mark::Thick),
        Entry::new("window average", color(1), Mark::Dashed),
        Entry::new(format!("±{}% of the average", num(e.rule.slope_pct, 3)), color(1), Mark::Box),
        Entry::new("least-squares line", color(2), Mark::Line),
    ];
    let plot = with_legend(area, &entries)?;
    let n = e.series.len();
    let ymax = e.series.iter().copied().fold(0.0, f64::max);
    let mut c = ChartBuilder::on(&plot)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(52)
        .y_label_area_size(82)
        .build_cartesian_2d(rounds_axis(n), zero_range(ymax * 1.15))?;
    style_mesh!(c.configure_mesh())
        .x_desc("Round")
        .y_desc(u)
        .x_labels(n.min(25))
        .x_label_formatter(&|v| num(*v, 3))
        .y_label_formatter(&|v| si(*v, 4))
        .draw()?;
    // The band behind the series, the average and the line over it, so none hides another.
    if let Some(w) = &e.window {
        let band = e.rule.slope_pct / 100.0;
        let (a, b) = (w.first_round as f64, w.last_round as f64);
        c.draw_series(std::iter::once(Rectangle::new([(a, w.average * (1.0 - band)), (b, w.average * (1.0 + band))], color(1).mix(0.15).filled())))?;
    }
    let pts: Vec<(f64, f64)> = e.series.iter().enumerate().map(|(j, &v)| ((j + 1) as f64, v)).collect();
    c.draw_series(LineSeries::new(pts.clone(), color(0).stroke_width(3)))?;
    c.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color(0).filled())))?;
    if let Some(w) = &e.window {
        let (a, b) = (w.first_round as f64, w.last_round as f64);
        c.draw_series(DashedLineSeries::new(vec![(a, w.average), (b, w.average)], 9, 5, color(1).stroke_width(2)))?;
        c.draw_series(LineSeries::new(vec![(a, w.intercept + w.slope * a), (b, w.intercept + w.slope * b)], color(2).stroke_width(2)))?;
    }
    Ok(())
}

fn draw_2d(area: &Area, r: &Rounds, u: &str) -> Result<(), ChartError> {
    // Rows: values of the first key (block sizes) in round order; a line per value of the
    // second (read/write mixes).
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for (_, sw) in &r.cells {
        let (x, l) = (value_text(&sw[&r.keys[0]]), value_text(&sw[&r.keys[1]]));
        if !rows.contains(&x) {
            rows.push(x);
        }
        if !cols.contains(&l) {
            cols.push(l);
        }
    }
    let entries: Vec<Entry> = cols.iter().enumerate().map(|(i, l)| Entry::new(format!("{}={l}", r.keys[1]), color(i), Mark::Line)).collect();
    let plot = with_legend(area, &entries)?;
    let avgs: Vec<f64> = (0..r.cells.len()).map(|k| r.window_average(k)).collect();
    let ymax = avgs.iter().copied().fold(0.0, f64::max);
    let mut c = ChartBuilder::on(&plot)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(52)
        .y_label_area_size(82)
        .build_cartesian_2d(-0.5..(rows.len() as f64 - 0.5), zero_range(ymax))?;
    let row_label = |v: &f64| rows.get(v.round().max(0.0) as usize).filter(|_| (v - v.round()).abs() < 1e-6).cloned().unwrap_or_default();
    style_mesh!(c.configure_mesh())
        .x_desc(r.keys[0].as_str())
        .y_desc(u)
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&row_label)
        .y_label_formatter(&|v| si(*v, 4))
        .draw()?;
    for (i, l) in cols.iter().enumerate() {
        let pts: Vec<(f64, f64)> = (0..r.cells.len())
            .filter(|&k| value_text(&r.cells[k].1[&r.keys[1]]) == *l)
            .filter_map(|k| Some((rows.iter().position(|x| *x == value_text(&r.cells[k].1[&r.keys[0]]))? as f64, avgs[k])))
            .collect();
        c.draw_series(LineSeries::new(pts.clone(), color(i).stroke_width(2)))?;
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color(i).filled())))?;
    }
    Ok(())
}

/// Standard base64 (RFC 4648 §4), for the data URIs of the charts.
pub(super) fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16 | (*ch.get(1).unwrap_or(&0) as u32) << 8 | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= ch.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// What ran before the rounds: purges (admin events that sanitize or format) and the
/// phase runs that wrote data (preconditioning).
fn before_rounds(s: &Summary, phase: &str) -> (Vec<String>, Vec<String>) {
    let end = s.phases.iter().position(|p| p.name == phase).unwrap_or(s.phases.len());
    let (mut purge, mut pre) = (Vec::new(), Vec::new());
    for p in &s.phases[..end] {
        for e in p.events.iter().filter(|e| e.detail.contains("sanitize") || e.detail.contains("format")) {
            purge.push(format!(
                "{}: {} ({}, status {})",
                p.label,
                e.detail,
                if e.outcome == Outcome::Pass { "done" } else { "failed" },
                e.status.as_deref().unwrap_or("none")
            ));
        }
        // Bytes moved by the writers (MB/s over their run time), and where.
        let writers: Vec<_> = p.workers.iter().filter(|w| w.result.lba_count_write > 0).collect();
        let bytes: f64 = writers.iter().map(|w| w.mbps * 1e3 * w.result.mseconds as f64).sum();
        if bytes > 0.0 {
            let at = writers.iter().map(|w| format!("{} ({})", w.name, regions(&w.regions))).collect::<Vec<_>>().join(", ");
            pre.push(format!("{}: {} MB written by {at}", p.label, num(bytes / 1e6, 4)));
        }
    }
    (purge, pre)
}

/// LBA regions as `LBA a to b`.
fn regions(r: &[(u64, u64)]) -> String {
    if r.is_empty() {
        return "region not recorded".into();
    }
    r.iter().map(|(a, b)| format!("LBA {a} to {}", b.saturating_sub(1))).collect::<Vec<_>>().join(", ")
}

/// Outstanding I/O and active range of the rounds' workers, as the header gives them.
fn rounds_io(s: &Summary, phase: &str) -> (String, String) {
    let Some(p) = s.phases.iter().find(|p| p.name == phase && !p.workers.is_empty()) else { return (String::new(), String::new()) };
    let total: u32 = p.workers.iter().map(|w| w.qdepth).sum();
    let each = p.workers.iter().map(|w| format!("{} QD {}", w.name, w.qdepth)).collect::<Vec<_>>().join(", ");
    let range = p.workers.iter().map(|w| format!("{}: {}", w.name, regions(&w.regions))).collect::<Vec<_>>().join("; ");
    (format!("{total} ({} worker(s): {each})", p.workers.len()), range)
}

/// The start of a page, up to its title.
pub(super) fn start(h: &mut String, title: &str) -> std::fmt::Result {
    writeln!(h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>", esc(title))?;
    h.push_str("<style>body{font-family:sans-serif;max-width:1240px;margin:2em auto;color:#212121}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f3f3f3}.h td,.h th{text-align:left}img{max-width:100%}</style></head><body>\n");
    writeln!(h, "<h1>{}</h1>", esc(title))
}

/// The header rows every PTS page starts with: the plan, device, platform, purge,
/// preconditioning, outstanding I/O and active range of `phase`.
pub(super) fn header_rows(s: &Summary, phase: &str) -> Vec<(&'static str, String)> {
    let (purge, pre) = before_rounds(s, phase);
    let (oio, range) = rounds_io(s, phase);
    let dev = s.device.as_ref();
    vec![
        ("Plan", format!("{} ({})", s.plan, s.file)),
        ("Description", s.description.clone().unwrap_or_default()),
        ("Device", dev.map_or(s.target.clone(), |d| format!("{}, serial {}, firmware {}, {}", d.model, d.serial, d.firmware, d.transport))),
        ("Test platform", format!("nvplan {} on {} {}; target {}", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH, s.target)),
        ("Purge", if purge.is_empty() { "none in this plan".into() } else { purge.join("; ") }),
        ("Preconditioning", if pre.is_empty() { "none in this plan".into() } else { pre.join("; ") }),
        ("Outstanding I/O", oio),
        ("Active range", range),
    ]
}

/// The header table, with the time scale and outcome last.
pub(super) fn header(h: &mut String, s: &Summary, mut rows: Vec<(&str, String)>) -> std::fmt::Result {
    rows.push(("Time scale", if s.time_scale == 1.0 { "1 (as written)".into() } else { format!("{} (every duration of the plan multiplied)", s.time_scale) }));
    rows.push(("Outcome", format!("{:?}", s.outcome).to_lowercase()));
    h.push_str("<table class=\"h\">\n");
    for (k, v) in rows {
        writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v))?;
    }
    h.push_str("</table>\n");
    Ok(())
}

fn page(s: &Summary, r: &Rounds, charts: &[(&str, PathBuf)]) -> Result<String, ChartError> {
    let e = r.e;
    let mut h = String::new();
    let title = format!("SNIA PTS: {} — {}", s.plan, e.phase);
    start(&mut h, &title)?;
    let steady = match (e.reached, &e.window) {
        (Some(n), Some(w)) => format!("reached in round {n} (measurement window: rounds {} to {})", w.first_round, w.last_round),
        _ if !e.done => format!("not reached yet after {} rounds (the run did not end)", e.series.len()),
        _ => format!("not reached in {} rounds", e.series.len()),
    };
    let mut rows = header_rows(s, &e.phase);
    rows.extend([
        ("Tracking variable", format!("{} of {}", e.track, if e.cell.is_empty() { "the phase" } else { &e.cell })),
        (
            "Steady-state rule",
            format!(
                "window {} rounds; range ≤ {} % and least-squares excursion ≤ {} % of the window average; at most {} rounds",
                e.rule.window,
                num(e.rule.range_pct, 3),
                num(e.rule.slope_pct, 3),
                e.rule.max_rounds
            ),
        ),
        ("Steady state", steady),
    ]);
    header(&mut h, s, rows)?;
    if let Some(w) = &e.window {
        writeln!(
            h,
            "<p>Window rounds {}–{}: average {}, range {} ({} % of the average, limit {} %), least-squares slope {} per round, excursion {} ({} %, limit {} %).</p>",
            w.first_round,
            w.last_round,
            num(w.average, 5),
            num(w.range, 4),
            num(w.range_pct, 3),
            num(e.rule.range_pct, 3),
            num(w.slope, 4),
            num(w.excursion, 4),
            num(w.excursion_pct, 3),
            num(e.rule.slope_pct, 3)
        )?;
    }
    for (name, path) in charts {
        let png = std::fs::read(path)?;
        writeln!(h, "<h2>{}</h2>\n<img alt=\"{}\" src=\"data:image/png;base64,{}\">", esc(name), esc(name), base64(&png))?;
    }
    // Measurement table: window averages, block size by mix when the sweep has two keys.
    let u = unit(&e.track);
    writeln!(h, "<h2>Measurement table ({}, measurement window average)</h2>", esc(u))?;
    if r.keys.len() == 2 {
        let (mut rows, mut cols): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (_, sw) in &r.cells {
            let (a, b) = (value_text(&sw[&r.keys[0]]), value_text(&sw[&r.keys[1]]));
            if !rows.contains(&a) {
                rows.push(a);
            }
            if !cols.contains(&b) {
                cols.push(b);
            }
        }
        write!(h, "<table><tr><th>{} \\ {}</th>", esc(&r.keys[0]), esc(&r.keys[1]))?;
        for c in &cols {
            write!(h, "<th>{}</th>", esc(c))?;
        }
        h.push_str("</tr>\n");
        for row in &rows {
            write!(h, "<tr><th>{}</th>", esc(row))?;
            for c in &cols {
                let k = r.cells.iter().position(|(_, sw)| value_text(&sw[&r.keys[0]]) == *row && value_text(&sw[&r.keys[1]]) == *c);
                write!(h, "<td>{}</td>", k.map_or(String::new(), |k| num(r.window_average(k), 5)))?;
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    } else {
        h.push_str("<table><tr><th>cell</th><th>value</th></tr>\n");
        for (k, (label, _)) in r.cells.iter().enumerate() {
            writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(if label.is_empty() { &e.phase } else { label }), num(r.window_average(k), 5))?;
        }
        h.push_str("</table>\n");
    }
    // Latency of every cell over the window (the PTS latency test's table).
    h.push_str("<h2>Latency over the measurement window (µs)</h2>\n<table><tr><th>cell</th><th>average</th><th>99.999 %</th><th>maximum</th></tr>\n");
    for (k, (label, _)) in r.cells.iter().enumerate() {
        let (a, f, m) = r.latency[k];
        writeln!(
            h,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(if label.is_empty() { &e.phase } else { label }),
            num(a, 4),
            num(f, 4),
            num(m, 4)
        )?;
    }
    h.push_str("</table>\n");
    write!(h, "<h2>Rounds</h2>\n<table><tr><th>round</th><th>{}</th></tr>\n", esc(&e.track))?;
    for (j, v) in e.series.iter().enumerate() {
        writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", j + 1, num(*v, 5))?;
    }
    h.push_str("</table>\n</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        for (i, o) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
