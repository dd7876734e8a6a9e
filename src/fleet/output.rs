//! The files of a merged report: `summary.json` (every run with its origin, the sums),
//! `merged.csv` (one long-format table of every number), `runs.csv` (every run and how it
//! ended: the missing, incomplete and failed ones at a glance), `junit.xml` (a suite per
//! run) and comparison charts by drive model and firmware.

use std::path::Path;

use super::merge::{Aggregate, MERGE_KIND, Merged, MergedRun, PhaseNumbers, Status};
use crate::exec::Identity;
use crate::report::csv::{Doc, num, outcome, percentile_name};
use crate::report::junit;
use crate::report::write_atomic;

/// Columns of `merged.csv`.
pub const MERGED_COLUMNS: [&str; 11] = ["run", "host", "serial", "model", "firmware", "phase", "worker", "metric", "value", "unit", "outcome"];

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Failed => "failed",
        Status::Incomplete => "incomplete",
        Status::Missing => "missing",
    }
}

/// The rows of one set of numbers: IOPS, MB/s, bytes, I/Os, errors, latency percentiles.
#[allow(clippy::too_many_arguments)]
fn metric_rows(
    d: &mut Doc,
    who: &[&str; 5],
    phase: &str,
    worker: &str,
    iops: f64,
    mbps: f64,
    bytes: u64,
    ios: u64,
    errors: u64,
    lat: &[(f64, f64)],
    out: &str,
) {
    let mut row = |metric: String, value: String, unit: &str| {
        let mut r: Vec<String> = who.iter().map(|s| s.to_string()).collect();
        r.extend([phase.to_string(), worker.to_string(), metric, value, unit.to_string(), out.to_string()]);
        d.row(r);
    };
    row("iops".into(), num(iops, 1), "IO/s");
    row("mbps".into(), num(mbps, 3), "MB/s");
    row("bytes".into(), bytes.to_string(), "B");
    row("ios".into(), ios.to_string(), "commands");
    row("errors".into(), errors.to_string(), "commands");
    for &(p, us) in lat {
        row(format!("latency_{}", percentile_name(p)), num(us, 2), "us");
    }
}

/// `merged.csv`: one row per number. Per worker and per phase run of each run (worker
/// `all`: the workers summed), then the sums over all runs (run `all`) and over each drive
/// model and firmware (run `group`, with the group's model and firmware).
pub fn merged_csv(m: &Merged) -> String {
    let mut d = Doc::new(&MERGED_COLUMNS);
    for r in m.runs.iter().filter(|r| r.status != Status::Missing) {
        let i = &r.identity;
        let who = [i.run_id.as_str(), &i.host, &i.serial, &i.model, &i.firmware];
        for p in &r.phases {
            for w in &p.workers {
                metric_rows(&mut d, &who, &p.label, &w.name, w.iops, w.mbps, w.bytes, w.ios, w.errors, &w.latency_us, &outcome(w.outcome));
            }
            phase_rows(&mut d, &who, p);
        }
    }
    let aggregate =
        |d: &mut Doc, who: &[&str; 5], a: &Aggregate| metric_rows(d, who, &a.label, "all", a.iops, a.mbps, a.bytes, a.ios, a.errors, &a.latency_us, "");
    for a in &m.totals {
        aggregate(&mut d, &["all", "", "", "", ""], a);
    }
    for g in &m.groups {
        for a in &g.phases {
            aggregate(&mut d, &["group", "", "", &g.model, &g.firmware], a);
        }
    }
    d.finish()
}

fn phase_rows(d: &mut Doc, who: &[&str; 5], p: &PhaseNumbers) {
    metric_rows(d, who, &p.label, "all", p.iops, p.mbps, p.bytes, p.ios, p.errors, &p.latency_us, &outcome(p.outcome));
}

/// `runs.csv`: every run, its identity and how it ended, with the reason when it did not
/// pass.
pub fn runs_csv(m: &Merged) -> String {
    let mut header: Vec<&str> = vec!["dir"];
    header.extend(Identity::COLUMNS);
    header.extend(["status", "outcome", "complete", "seconds", "reason"]);
    let mut d = Doc::new(&header);
    for r in &m.runs {
        let mut row = vec![r.dir.clone()];
        row.extend(r.identity.values().map(String::from));
        row.extend([
            status_name(r.status).into(),
            r.outcome.map(outcome).unwrap_or_default(),
            r.complete.to_string(),
            num(r.seconds, 3),
            r.reason.clone().unwrap_or_default(),
        ]);
        d.row(row);
    }
    d.finish()
}

/// A suite of one error case, for a run without a summary or for the merge itself.
fn error_suite(name: &str, case: &str, message: &str) -> junit::Suite {
    let x = format!(
        "  <testsuite name=\"{}\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"0.000\">\n    <testcase name=\"{}\" classname=\"nvplan.merge\" time=\"0.000\">\n      <error message=\"{}\" type=\"merge\"/>\n    </testcase>\n  </testsuite>\n",
        junit::escape(name),
        junit::escape(case),
        junit::escape(message)
    );
    junit::Suite { xml: x, tests: 1, failures: 0, errors: 1, skipped: 0, time: 0.0 }
}

/// `junit.xml`: each run's own suite, in the merge's order; a missing run is a suite with
/// an error, and plans run from different texts are an error of their own.
pub fn junit_xml(m: &Merged) -> String {
    let mut suites: Vec<junit::Suite> = Vec::new();
    if m.mixed_plans {
        let versions: Vec<String> = m.plans.iter().map(|p| format!("{} {} ({} runs)", p.plan, p.plan_crc32, p.runs)).collect();
        suites.push(error_suite("merge", "plan checksums", &format!("the runs ran different plan texts: {}", versions.join(", "))));
    }
    for r in &m.runs {
        match &r.suite {
            Some(s) => suites.push(s.clone()),
            None => suites.push(error_suite(&format!("missing run {}", r.dir), "run", r.reason.as_deref().unwrap_or("no run"))),
        }
    }
    junit::document(&suites)
}

/// Refuses to merge into a directory that holds a run's own report.
pub fn check_out(out: &Path) -> Result<(), String> {
    let s = out.join("summary.json");
    if s.is_file() {
        let text = std::fs::read_to_string(&s).unwrap_or_default();
        if !text.contains(MERGE_KIND) {
            return Err(format!("{}: holds the report of a run; give the merge another --out", out.display()));
        }
    }
    Ok(())
}

/// Writes the merged report of `m` into `out`; returns the files written and the
/// problems met (the other files are still written).
pub fn write(m: &Merged, out: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    check_out(out)?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let json = serde_json::to_string_pretty(m).map_err(|e| format!("summary.json: {e}"))?;
    let docs: [(&str, String); 4] = [("merged.csv", merged_csv(m)), ("runs.csv", runs_csv(m)), ("junit.xml", junit_xml(m)), ("summary.json", json + "\n")];
    for (name, text) in docs {
        match write_atomic(out, name, text.as_bytes()) {
            Ok(_) => files.push(name.to_string()),
            Err(e) => problems.push(format!("{}: {e}", out.join(name).display())),
        }
    }
    // Charts of an earlier merge here would be mistaken for this one's.
    let charts = out.join(crate::report::CHARTS_DIR);
    if let Ok(entries) = std::fs::read_dir(&charts) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("merge-") && name.ends_with(".png") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    match super::charts::merge_charts(&charts, m) {
        Ok(paths) => files.extend(paths.iter().filter_map(|p| p.file_name()).map(|f| format!("{}/{}", crate::report::CHARTS_DIR, f.to_string_lossy()))),
        Err(e) => problems.push(format!("merge charts: {e}")),
    }
    Ok((files, problems))
}

/// One line per run that did not pass, for the terminal.
pub fn problem_lines(m: &Merged) -> Vec<String> {
    let mut out: Vec<String> = m
        .runs
        .iter()
        .filter(|r| r.status != Status::Pass)
        .map(|r: &MergedRun| {
            let who = if r.identity.serial.is_empty() { r.dir.clone() } else { format!("{} ({} on {})", r.dir, r.identity.serial, r.identity.host) };
            format!("{}: {}: {}", status_name(r.status), who, r.reason.as_deref().unwrap_or(""))
        })
        .collect();
    if m.mixed_plans {
        let versions: Vec<String> = m.plans.iter().map(|p| format!("{} {} ({} runs)", p.plan, p.plan_crc32, p.runs)).collect();
        out.push(format!("warning: the runs ran different plan texts, their numbers are not comparable: {}", versions.join(", ")));
    }
    out
}
