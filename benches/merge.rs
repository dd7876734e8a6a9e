//! The cost of `nvplan report --merge` over a campaign: 1,000 run directories of one phase
//! run each (two workers, each with a 600-sample timeseries and latency histograms: a
//! ten-minute run), from 42 hosts, 3 models and 2 firmware revisions, merged into one
//! report (summary, long CSV, runs table, JUnit, charts). Prints the time and the peak
//! resident memory of the merge (the peak is reset after the directories are written).
//!
//! `cargo bench --bench merge` (RUNS=N for another number of runs).

use std::path::Path;
use std::time::Instant;

use nvplan::exec::{Outcome, Summary};
use nvplan::report;

/// The fixture's events phase run, passed, with a ten-minute timeseries per worker.
fn one_phase_run() -> Summary {
    let mut s = report::read_summary(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/report"))).expect("fixture");
    let mut p = s.phases.pop().expect("the events phase run");
    p.outcome = Outcome::Pass;
    for w in &mut p.workers {
        w.outcome = Outcome::Pass;
        w.checks.iter_mut().for_each(|c| c.pass = true);
        let ts = w.result.timeseries.as_mut().expect("timeseries");
        ts.ios = (0..600).map(|i| 20_000 + (i * 37 % 1000)).collect();
        ts.bytes = ts.ios.iter().map(|n| n * 4096).collect();
    }
    p.checks.iter_mut().for_each(|c| c.pass = true);
    s.phases = vec![p];
    (s.outcome, s.complete) = (Outcome::Pass, true);
    s
}

/// `VmHWM` of this process, bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
}

fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-merge");
    let _ = std::fs::remove_dir_all(&base);
    let dirs = base.join("runs");
    let t = Instant::now();
    let mut s = one_phase_run();
    let iops: Vec<f64> = s.phases[0].workers.iter().map(|w| w.iops).collect();
    let mut bytes = 0u64;
    for k in 0..runs {
        let id = &mut s.identity;
        id.host = format!("host{:02}", k / 24);
        id.serial = format!("S{k:05}");
        id.model = format!("MODEL-{}", k % 3);
        id.firmware = format!("FW{}", k % 2);
        id.run_id = format!("{}-1796145016-{k}", id.host);
        for (w, base) in s.phases[0].workers.iter_mut().zip(&iops) {
            w.iops = base * (1.0 + (k % 17) as f64 / 100.0);
        }
        let d = dirs.join(format!("task-{k:04}"));
        report::write_summary(&d, &s).expect("write a run");
        bytes += std::fs::metadata(d.join("summary.json")).map_or(0, |m| m.len());
    }
    drop(s);
    println!("{runs} run directories written in {:.1} s ({:.1} MiB of summary.json)", t.elapsed().as_secs_f64(), bytes as f64 / 1048576.0);
    // Forget the peak of writing them: writing 5 to clear_refs resets VmHWM (Linux 4.0+).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = peak_rss();
    let t = Instant::now();
    let (m, problems) = nvplan::fleet::merge_report(&[dirs], &base.join("merged")).expect("merge");
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((m.counts.pass, m.groups.len()), (runs, 6));
    println!(
        "merge of {runs} runs: {secs:.2} s, peak RSS {:.0} MiB{} (limits: 30 s, 2048 MiB)",
        peak as f64 / 1048576.0,
        if reset { format!(" (reset to {:.0} MiB before the merge)", before as f64 / 1048576.0) } else { ", the peak of the whole process".into() }
    );
}
