//! PNG charts of a run for qualification reports: per phase run a latency histogram, a
//! latency-by-percentile (QoS) curve and IOPS / MB/s over time with the events marked;
//! per swept phase an IOPS matrix; across runs a side-by-side comparison.
//!
//! Every chart is drawn from a [`Summary`] alone, so that reports can be drawn again
//! from `summary.json`. A chart without data is left out, never an error.

use std::path::{Path, PathBuf};

use crate::exec::Summary;

/// Why a chart could not be written (file system, encoder, fonts).
pub type ChartError = Box<dyn std::error::Error + Send + Sync>;

mod axes;
mod compare;
mod latency;
mod merge;
mod rates;
mod style;
mod sweep;

use axes::finite_sum;
use compare::{RunData, draw_comparison};
use latency::{all_class, curve_points, draw_histogram, draw_qos, histogram_series, merged_curve, qos_series};
use rates::{draw_rates, fired, phase_rates};
use style::{HEADER, subtitle};
use sweep::{draw_bars, draw_hbars, draw_heatmap, repeats_note, sweep_matrix};

// merge.rs draws with these too: it takes this module's names (`use super::*`).
use axes::{category, category_axis, dur_us};
use latency::Curve;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub(super) use axes::{num, si, zero_range};
pub use merge::{GroupSeries, merge_charts};
pub(crate) use style::style_mesh;
pub(super) use style::{Area, Entry, GRID, GRID_LIGHT, HEIGHT, MUTED, Mark, WIDTH, color, device_line, frame, save, text, with_legend};

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

#[cfg(test)]
mod tests {
    use super::style::event_color;
    use super::sweep::{blues, value_text};
    use super::*;
    use crate::exec::{Device, EventSummary, Latency, Outcome, PhaseSummary, WorkerSummary};
    use crate::ioworker::{IoWorkerResult, Timeseries};
    use hdrhistogram::Histogram;

    /// A deterministic latency sample: mostly near `base_ns`, with a long tail.
    pub(super) fn latencies(n: usize, base_ns: u64, seed: u64) -> Histogram<u64> {
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

    pub(super) fn worker(name: &str, start_s: f64, classes: &[(&str, u64)], seed: u64) -> WorkerSummary {
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

    pub(super) fn phase(name: &str, label: &str, workers: Vec<WorkerSummary>, events: Vec<EventSummary>) -> PhaseSummary {
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
}
