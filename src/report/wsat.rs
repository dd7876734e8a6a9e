//! The SNIA PTS Write Saturation page (`report_page: write_saturation`): IOPS against time
//! and against the total data written, from fresh out of the box until the run ends,
//! one self-contained HTML file `pts-<phase>.html`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::charts::{Area, ChartError, HEIGHT, WIDTH, color, device_line, frame, num, save, si, slug, style_mesh, zero_range};
use super::pts::{base64, header, header_rows, start};
use crate::exec::{Outcome, PhaseSummary, Summary};
use crate::plan::model::ReportPage;

/// One interval of the phase: start (s), IOPS, total data written by its end (GB).
type Point = (f64, f64, f64);

/// The phase's intervals, its workers added up (intervals of the same length only).
fn points(p: &PhaseSummary) -> Vec<Point> {
    let series: Vec<_> = p.workers.iter().filter_map(|w| w.result.timeseries.as_ref()).collect();
    let Some(first) = series.first() else { return Vec::new() };
    let dt = first.interval_ms as f64 / 1e3;
    let n = series.iter().filter(|t| t.interval_ms == first.interval_ms).map(|t| t.ios.len()).max().unwrap_or(0);
    let mut written = 0.0;
    (0..n)
        .map(|i| {
            let same = || series.iter().filter(|t| t.interval_ms == first.interval_ms);
            let ios: u64 = same().map(|t| t.ios.get(i).copied().unwrap_or(0)).sum();
            written += same().map(|t| t.bytes.get(i).copied().unwrap_or(0)).sum::<u64>() as f64 / 1e9;
            (i as f64 * dt, ios as f64 / dt, written)
        })
        .collect()
}

/// Writes `pts-<phase>.html` for every phase run that asked for the Write Saturation page,
/// with its charts in `chart_dir`; returns the paths written.
pub fn pages(dir: &Path, chart_dir: &Path, s: &Summary) -> Result<Vec<PathBuf>, ChartError> {
    let mut out = Vec::new();
    for p in s.phases.iter().filter(|p| p.report_page == Some(ReportPage::WriteSaturation) && p.outcome != Outcome::Skipped) {
        let pts = points(p);
        if pts.len() < 2 {
            continue;
        }
        // The last interval is partial: it would show as a drop that is not there.
        let pts = &pts[..pts.len() - 1];
        let stem = format!("pts-{}", slug(&p.label));
        let sub = format!("{} · {}", s.plan, device_line(s));
        let by_time = save(chart_dir, &format!("{stem}-iops-time.png"), (WIDTH, HEIGHT), |root| {
            draw(&frame(root, &format!("Write saturation: IOPS against time, {}", p.label), &sub)?, pts, |q| q.0, "Time (s)")
        })?;
        let by_data = save(chart_dir, &format!("{stem}-iops-written.png"), (WIDTH, HEIGHT), |root| {
            draw(&frame(root, &format!("Write saturation: IOPS against total data written, {}", p.label), &sub)?, pts, |q| q.2, "Total data written (GB)")
        })?;
        let mut h = String::new();
        let title = format!("SNIA PTS: {} — {} (write saturation)", s.plan, p.label);
        start(&mut h, &title)?;
        let n = pts.len();
        let fob = pts[..n.div_ceil(20)].iter().map(|q| q.1).fold(0.0, f64::max);
        let tail = &pts[n - n.div_ceil(5)..];
        let last = tail.iter().map(|q| q.1).sum::<f64>() / tail.len() as f64;
        let mut rows = header_rows(s, &p.name);
        rows.extend([
            ("Fresh out of the box", format!("{} IOPS (the fastest interval of the first 5 %)", num(fob, 4))),
            ("At the end", format!("{} IOPS (average of the last 20 % of the intervals)", num(last, 4))),
            ("Total data written", format!("{} GB in {} s", num(pts[n - 1].2, 4), num(p.seconds, 4))),
        ]);
        header(&mut h, s, rows)?;
        for (name, path) in [("IOPS against time", &by_time), ("IOPS against total data written", &by_data)] {
            writeln!(h, "<h2>{name}</h2>\n<img alt=\"{name}\" src=\"data:image/png;base64,{}\">", base64(&std::fs::read(path)?))?;
        }
        h.push_str("<h2>Intervals</h2>\n<table><tr><th>start (s)</th><th>IOPS</th><th>data written (GB)</th></tr>\n");
        for q in pts {
            writeln!(h, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", num(q.0, 4), num(q.1, 5), num(q.2, 4))?;
        }
        h.push_str("</table>\n</body></html>\n");
        super::write_atomic(dir, &format!("{stem}.html"), h.as_bytes())?;
        out.extend([by_time, by_data, dir.join(format!("{stem}.html"))]);
    }
    Ok(out)
}

fn draw(area: &Area, pts: &[Point], x: fn(&Point) -> f64, x_desc: &str) -> Result<(), ChartError> {
    let xmax = pts.iter().map(x).fold(0.0, f64::max).max(1e-9);
    let ymax = pts.iter().map(|q| q.1).fold(0.0, f64::max);
    let mut c =
        ChartBuilder::on(area).margin(12).margin_right(24).x_label_area_size(52).y_label_area_size(82).build_cartesian_2d(0.0..xmax, zero_range(ymax))?;
    style_mesh!(c.configure_mesh()).x_desc(x_desc).y_desc("IOPS").x_label_formatter(&|v| num(*v, 4)).y_label_formatter(&|v| si(*v, 4)).draw()?;
    c.draw_series(LineSeries::new(pts.iter().map(|q| (x(q), q.1)), color(0).stroke_width(2)))?;
    c.draw_series(pts.iter().map(|q| Circle::new((x(q), q.1), 3, color(0).filled())))?;
    Ok(())
}
