//! The cost of a report: a fill phase run and a 56-cell sweep (SNIA's 8 block sizes × 7 mixes) with two
//! workers a cell, each with a 600-sample timeseries and latency histograms, written as a
//! run writes it (after every phase run: summary, CSVs, JUnit, manifest, that phase run's
//! charts; the sweep chart at the end). The reference measured in the same run is writing
//! `summary.json` alone, what every phase run cost before the report existed.
//!
//! `cargo bench --bench report`.

use std::path::Path;
use std::time::Instant;

use nvplan::exec::Summary;
use nvplan::report::{self, Report};

/// The fixture run with its matrix phase run copied into 56 cells of two workers each.
fn matrix() -> Summary {
    let mut s = report::read_summary(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/report"))).expect("fixture");
    let events = s.phases.pop().expect("the events phase run");
    let mut cell = s.phases.remove(1);
    let mut w = events.workers[0].result.timeseries.clone().expect("timeseries");
    w.ios = (0..600).map(|i| 20_000 + (i * 37 % 1000)).collect();
    w.bytes = w.ios.iter().map(|n| n * 4096).collect();
    cell.workers[0].result.timeseries = Some(w);
    let second = {
        let mut x = serde_json::to_value(&cell.workers[0]).unwrap();
        x["name"] = "rnd2".into();
        serde_json::from_value(x).unwrap()
    };
    cell.workers.push(second);
    s.phases.truncate(1);
    let sizes = ["512B", "4KiB", "8KiB", "16KiB", "32KiB", "64KiB", "128KiB", "1MiB"];
    let mixes = [100, 95, 65, 50, 35, 5, 0];
    for (i, bs) in sizes.iter().enumerate() {
        for (j, rp) in mixes.iter().enumerate() {
            let mut c: nvplan::exec::PhaseSummary = serde_json::from_value(serde_json::to_value(&cell).unwrap()).unwrap();
            c.label = format!("iops io_size={bs} read_percentage={rp}");
            c.name = "iops".into();
            c.sweep = [("io_size".to_string(), serde_json::json!(bs)), ("read_percentage".to_string(), serde_json::json!(rp))].into();
            for w in &mut c.workers {
                w.iops = 300_000.0 / (i + 1) as f64 * (1.0 + j as f64 / 10.0);
            }
            s.phases.push(c);
        }
    }
    s
}

fn main() {
    let full = matrix();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-report");
    let _ = std::fs::remove_dir_all(&dir);
    let n = full.phases.len();

    // Reference: summary.json after every phase run.
    let t = Instant::now();
    let mut s = Summary { phases: Vec::new(), ..serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap() };
    let mut snapshots = Vec::new();
    for p in &full.phases {
        s.phases.push(serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap());
        snapshots.push(serde_json::to_value(&s).unwrap());
    }
    let _ = t;
    // The summary as it stands after each phase run, built before the clocks start.
    let states = || -> Vec<Summary> { snapshots.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect() };
    let runs = states();
    let t = Instant::now();
    for s in &runs {
        report::write_summary(&dir.join("ref"), s).unwrap();
    }
    let reference = t.elapsed();
    drop(runs);

    let runs = states();
    let t = Instant::now();
    let (mut r, _) = Report::create(&dir.join("report"), vec![], None).unwrap();
    for s in &runs[..n - 1] {
        r.update(s);
    }
    let problems = r.finish(&runs[n - 1]);
    let whole = t.elapsed();
    assert!(problems.is_empty(), "{problems:?}");

    let t = Instant::now();
    for i in 0..n {
        nvplan::report::charts::phase_charts(&dir.join("charts-only"), &full, i).unwrap();
    }
    let charts = t.elapsed();
    let size = std::fs::metadata(dir.join("ref/summary.json")).map_or(0, |m| m.len());
    println!("report of {n} phase runs (a fill and a 56-cell sweep, 2 workers a cell), written after every phase run; final summary.json {} KiB", size >> 10);
    println!(
        "{:<44} {:>9.1} ms  ({:.2} ms a phase run)",
        "summary.json alone (reference)",
        reference.as_secs_f64() * 1e3,
        reference.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "{:<44} {:>9.1} ms  ({:.2} ms a phase run, {:.1}x the reference)",
        "whole report (summary, CSVs, JUnit, charts)",
        whole.as_secs_f64() * 1e3,
        whole.as_secs_f64() * 1e3 / n as f64,
        whole.as_secs_f64() / reference.as_secs_f64()
    );
    println!("{:<44} {:>9.1} ms  ({:.2} ms a phase run, 3 PNGs)", "of which charts", charts.as_secs_f64() * 1e3, charts.as_secs_f64() * 1e3 / n as f64);
}
