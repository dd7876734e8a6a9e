//! IOPS and MB/s over time with the events of the phase marked: a shaded span for how
//! long each lasted, a dashed line where it fired and its name above the plot.

use std::ops::Range;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::ChartError;
use super::axes::{dur_us, num, si, zero_range};
use super::style::{Area, Entry, Mark, TOTAL, color, event_color, style_mesh, text, with_legend};
use crate::exec::{EventSummary, Outcome, PhaseSummary, WorkerSummary};

/// A step function: `vals[i]` holds on `[edges[i], edges[i + 1])`.
#[derive(Clone, Debug, Default)]
pub(super) struct Step {
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
    pub(super) fn points(&self) -> Vec<(f64, f64)> {
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

    pub(super) fn max(&self) -> f64 {
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

pub(super) struct WorkerRates {
    name: String,
    pub(super) iops: Step,
    mbps: Step,
}

pub(super) struct Rates {
    pub(super) workers: Vec<WorkerRates>,
    /// Over all workers, when there are several.
    pub(super) total: Option<(Step, Step)>,
    /// End of the x axis, seconds.
    pub(super) end: f64,
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

pub(super) fn phase_rates(p: &PhaseSummary) -> Option<Rates> {
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
pub(super) fn fired(events: &[EventSummary]) -> Vec<EventSummary> {
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

pub(super) fn draw_rates(area: &Area, r: &Rates, events: &[EventSummary]) -> Result<(), ChartError> {
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
pub(super) fn draw_event_lines(c: &mut TimeChart, events: &[EventSummary], y: Range<f64>, col: impl Fn(&EventSummary) -> RGBColor) -> Result<(), ChartError> {
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
pub(super) fn event_strip(area: &Area, x: Range<f64>, margin_right: u32, events: &[EventSummary]) -> Result<u32, ChartError> {
    if events.is_empty() {
        return Ok(8);
    }
    // Building a chart draws nothing: a probe with the same layout gives the columns.
    let probe = ChartBuilder::on(area).margin(12).margin_right(margin_right).y_label_area_size(82).build_cartesian_2d(x, 0.0..1.0)?;
    let rows = place_labels(area, &probe, events)?.iter().map(|p| p.row + 1).max().unwrap_or(0);
    Ok(rows as u32 * EVENT_ROW_H + 10)
}

pub(super) fn label_events(area: &Area, c: &TimeChart, events: &[EventSummary], col: impl Fn(&EventSummary) -> RGBColor) -> Result<(), ChartError> {
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

#[cfg(test)]
mod tests {
    use super::super::tests::worker;
    use super::*;
    use crate::ioworker::Timeseries;

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
}
