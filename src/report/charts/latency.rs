//! Latency charts: the histogram of completion latencies and the latency-by-percentile
//! (QoS) curves.

use plotters::prelude::*;

use super::ChartError;
use super::axes::{dur_us, finite_range, log_axis, log_bounds, nines, nines_axis, nines_label, si};
use super::style::{Area, Entry, Mark, color, darker, dashes, style_mesh, with_legend};
use crate::exec::{Latency, PhaseSummary, WorkerSummary};

// ---------------------------------------------------------------------------------------
// Latency histogram

pub(super) struct HistSeries {
    label: String,
    /// `(lower µs, upper µs, count)`, sorted, all positive.
    buckets: Vec<(f64, f64, u64)>,
}

pub(super) fn all_class(w: &WorkerSummary) -> Option<&Latency> {
    w.latency.iter().find(|l| l.class == "all" && l.count > 0)
}

fn clean_buckets(l: &Latency) -> Vec<(f64, f64, u64)> {
    let mut b: Vec<_> = l.histogram.iter().copied().filter(|&(lo, hi, n)| lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo && n > 0).collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    b
}

pub(super) fn histogram_series(p: &PhaseSummary) -> Option<Vec<HistSeries>> {
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

pub(super) fn draw_histogram(area: &Area, series: &[HistSeries]) -> Result<(), ChartError> {
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

pub(super) struct Curve {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) mark: Mark,
    /// `(nines, µs)`.
    pub(super) points: Vec<(f64, f64)>,
}

pub(super) fn curve_points(curve: &[(f64, f64)]) -> Vec<(f64, f64)> {
    curve.iter().filter(|&&(p, us)| p.is_finite() && (0.0..100.0).contains(&p) && us.is_finite() && us > 0.0).map(|&(p, us)| (nines(p), us)).collect()
}

/// One curve per worker (class `all`), and its read and write curves when it has both.
pub(super) fn qos_series(p: &PhaseSummary) -> Vec<Curve> {
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

pub(super) fn draw_qos(area: &Area, curves: &[Curve], x_desc: Option<&str>) -> Result<(), ChartError> {
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
pub(super) fn merged_curve(lats: &[&Latency]) -> Vec<(f64, f64)> {
    if let [one] = lats {
        return one.curve.clone();
    }
    crate::exec::summary::merged_percentiles(lats, &crate::exec::summary::curve_percentiles())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{latencies, phase, worker};
    use super::*;

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
}
