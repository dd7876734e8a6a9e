//! Side-by-side comparison of several runs: total IOPS over time, the latency percentile
//! curves and the mean IOPS and MB/s of each run.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ChartError;
use super::axes::{category, category_axis, num, si, zero_range};
use super::latency::{Curve, curve_points, draw_qos};
use super::rates::{Rates, Step, draw_event_lines, event_strip, label_events};
use super::style::{Area, Entry, INK, MUTED, Mark, bold, fit, style_mesh, text, with_legend};
use crate::exec::EventSummary;

pub(super) struct RunData {
    pub(super) name: String,
    pub(super) color: RGBColor,
    pub(super) rates: Option<Rates>,
    pub(super) curve: Vec<(f64, f64)>,
    pub(super) iops: f64,
    pub(super) mbps: f64,
    pub(super) events: Vec<EventSummary>,
}

pub(super) fn draw_comparison(area: &Area, runs: &[RunData]) -> Result<(), ChartError> {
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
