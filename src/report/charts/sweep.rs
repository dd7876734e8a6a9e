//! The IOPS matrix of a swept phase: a heatmap for two swept keys, bars for one,
//! horizontal bars by combination for more.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ChartError;
use super::axes::{category, category_axis, finite_range, finite_sum, log_axis, log_bounds, num, si, zero_range};
use super::style::{Area, INK, MUTED, bold, color, style_mesh, text};
use crate::exec::PhaseSummary;

pub(super) struct SweepCell {
    /// One value per key, as text.
    values: Vec<String>,
    pub(super) iops: f64,
    mbps: f64,
    pub(super) runs: usize,
}

pub(super) struct SweepMatrix {
    pub(super) keys: Vec<String>,
    /// Values of each key in order of appearance.
    pub(super) axes: Vec<Vec<String>>,
    /// In order of first appearance.
    pub(super) cells: Vec<SweepCell>,
}

pub(super) fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        other => other.to_string(),
    }
}

pub(super) fn repeats_note(m: &SweepMatrix) -> String {
    let most = m.cells.iter().map(|c| c.runs).max().unwrap_or(1);
    if most > 1 { format!(" · mean of up to {most} repeats") } else { String::new() }
}

/// Total IOPS and MB/s of each combination of sweep values, repeats averaged; runs
/// without workers left out.
pub(super) fn sweep_matrix<'a>(runs: impl Iterator<Item = &'a PhaseSummary>) -> Option<SweepMatrix> {
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
pub(super) fn blues(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 3] = [(239.0, 246.0, 255.0), (107.0, 174.0, 214.0), (8.0, 48.0, 107.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 2.0;
    let i = (t.floor() as usize).min(1);
    let f = t - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

pub(super) fn draw_heatmap(area: &Area, m: &SweepMatrix) -> Result<(), ChartError> {
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

pub(super) fn draw_bars(area: &Area, m: &SweepMatrix) -> Result<(), ChartError> {
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
pub(super) fn draw_hbars(area: &Area, m: &SweepMatrix) -> Result<(), ChartError> {
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
