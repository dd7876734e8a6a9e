//! Merging run directories: each run is read once and reduced to its numbers and its
//! latency histograms, so a thousand runs cost what their totals cost. Aggregates are
//! computed from raw values: IOPS, MB/s, bytes and I/Os are summed, percentiles come from
//! the histograms added up ([`LatencySum`]), never from averaged percentiles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::exec::summary::LatencySum;
use crate::exec::{Identity, Outcome, PhaseSummary, STANDARD_PERCENTILES, Summary, WorkerSummary};
use crate::report::junit;

/// What `kind` says at the top of a merged `summary.json`.
pub const MERGE_KIND: &str = "nvplan-merge";

/// How a run ended, as far as the merge can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every phase run ran and every expectation was met.
    Pass,
    /// An expectation was not met, or the run could not go on.
    Failed,
    /// The run did not end: interrupted, killed, still running, or its host died.
    Incomplete,
    /// No readable `summary.json` in the directory.
    Missing,
}

/// One worker of one phase run of one run.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerNumbers {
    /// Worker name.
    pub name: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// I/Os per second.
    pub iops: f64,
    /// MB/s (10^6 bytes).
    pub mbps: f64,
    /// Bytes read and written.
    pub bytes: u64,
    /// Commands completed.
    pub ios: u64,
    /// Commands failed.
    pub errors: u64,
    /// `(percentile, µs)` of all its commands: the standard set, 100 is the maximum.
    pub latency_us: Vec<(f64, f64)>,
}

/// One phase run of one run: its workers and their sums.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseNumbers {
    /// Label of the phase run.
    pub label: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Sum of the workers' IOPS.
    pub iops: f64,
    /// Sum of the workers' MB/s.
    pub mbps: f64,
    /// Sum of the workers' bytes.
    pub bytes: u64,
    /// Sum of the workers' completed commands.
    pub ios: u64,
    /// Sum of the workers' failed commands.
    pub errors: u64,
    /// Percentiles of the workers' histograms added up.
    pub latency_us: Vec<(f64, f64)>,
    /// The workers, in plan order.
    pub workers: Vec<WorkerNumbers>,
    #[serde(skip)]
    latency: LatencySum,
}

/// One run in a merge: where it came from and what it measured.
#[derive(Clone, Debug, Serialize)]
pub struct MergedRun {
    /// The run directory as given.
    pub dir: String,
    /// Who ran it where (empty for a missing run).
    pub identity: Identity,
    /// How it ended.
    pub status: Status,
    /// The run's own outcome (none for a missing run).
    pub outcome: Option<Outcome>,
    /// Every phase run ran.
    pub complete: bool,
    /// Why it failed, did not end or is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Seconds it ran.
    pub seconds: f64,
    /// Its phase runs, in order.
    pub phases: Vec<PhaseNumbers>,
    /// Its JUnit suite.
    #[serde(skip)]
    pub suite: Option<junit::Suite>,
}

/// A phase run summed over several runs.
#[derive(Clone, Debug, Serialize)]
pub struct Aggregate {
    /// Label of the phase run.
    pub label: String,
    /// Runs that ran it.
    pub runs: usize,
    /// Sum of the runs' IOPS.
    pub iops: f64,
    /// Sum of the runs' MB/s.
    pub mbps: f64,
    /// Sum of the runs' bytes.
    pub bytes: u64,
    /// Sum of the runs' completed commands.
    pub ios: u64,
    /// Sum of the runs' failed commands.
    pub errors: u64,
    /// Percentiles of every worker's histogram added up: the standard set, 100 is the
    /// maximum.
    pub latency_us: Vec<(f64, f64)>,
    /// The QoS curve of the same histogram: `(percentile, µs)` from 0 to 99.999.
    pub curve: Vec<(f64, f64)>,
    #[serde(skip)]
    latency: LatencySum,
}

impl Aggregate {
    fn new(label: &str) -> Aggregate {
        Aggregate {
            label: label.into(),
            runs: 0,
            iops: 0.0,
            mbps: 0.0,
            bytes: 0,
            ios: 0,
            errors: 0,
            latency_us: Vec::new(),
            curve: Vec::new(),
            latency: LatencySum::default(),
        }
    }
    fn add(&mut self, p: &PhaseNumbers) {
        self.runs += 1;
        self.iops += p.iops;
        self.mbps += p.mbps;
        self.bytes += p.bytes;
        self.ios += p.ios;
        self.errors += p.errors;
        self.latency.merge(&p.latency);
    }
    fn finish(&mut self) {
        self.latency_us = self.latency.percentiles(&STANDARD_PERCENTILES);
        self.curve = self.latency.percentiles(&crate::exec::summary::curve_percentiles());
    }
}

/// The runs of one drive model and firmware revision.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// Model number.
    pub model: String,
    /// Firmware revision.
    pub firmware: String,
    /// Runs in the group.
    pub runs: usize,
    /// Its phase runs summed, by label.
    pub phases: Vec<Aggregate>,
}

/// A plan checksum and the runs of it.
#[derive(Clone, Debug, Serialize)]
pub struct PlanVersion {
    /// Plan name.
    pub plan: String,
    /// CRC-32 of the plan's text.
    pub plan_crc32: String,
    /// Runs of it.
    pub runs: usize,
}

/// Runs by how they ended.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// Runs that passed.
    pub pass: usize,
    /// Runs that failed.
    pub failed: usize,
    /// Runs that did not end.
    pub incomplete: usize,
    /// Directories without a readable run.
    pub missing: usize,
}

/// The merge of many runs: `summary.json` of a merged report.
#[derive(Clone, Debug, Serialize)]
pub struct Merged {
    /// Always [`MERGE_KIND`]: tells a merged summary from a run's.
    pub kind: &'static str,
    /// `pass` when every run passed; `fail` when a run failed; else `incomplete`.
    pub outcome: Outcome,
    /// Runs by how they ended.
    pub counts: Counts,
    /// The plans merged, by name and checksum of their text.
    pub plans: Vec<PlanVersion>,
    /// The runs ran more than one plan text (different plans, or edited copies of one):
    /// their numbers are not comparable.
    pub mixed_plans: bool,
    /// nvplan's version that merged.
    pub nvplan_version: String,
    /// Every phase run summed over all runs, by label.
    pub totals: Vec<Aggregate>,
    /// The same by drive model and firmware.
    pub groups: Vec<Group>,
    /// Every run, in a fixed order: plan, model, firmware, host, serial, run id, directory;
    /// missing runs last.
    pub runs: Vec<MergedRun>,
}

/// The directories of `dirs` that hold runs: a directory with a run's `summary.json` is a
/// run; one with a merged summary or none is searched (three levels down at most) for
/// runs; one without any is reported as missing.
pub fn run_dirs(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in dirs {
        let before = out.len();
        find_runs(d, 3, &mut out);
        if out.len() == before {
            out.push(d.clone());
        }
    }
    out
}

fn is_merged_summary(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 128];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains(MERGE_KIND)
}

fn find_runs(d: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let s = d.join("summary.json");
    if s.is_file() && !is_merged_summary(&s) {
        out.push(d.to_path_buf());
        return;
    }
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(d) else { return };
    let mut subs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    subs.sort();
    for s in subs {
        find_runs(&s, depth - 1, out);
    }
}

/// How a run with this summary ended.
pub fn status_of(s: &Summary) -> Status {
    match s.outcome {
        Outcome::Fail => Status::Failed,
        Outcome::Pass if s.complete => Status::Pass,
        _ => Status::Incomplete,
    }
}

fn worker_numbers(w: &WorkerSummary) -> (WorkerNumbers, LatencySum) {
    let mut sum = LatencySum::default();
    if let Some(all) = w.latency.iter().find(|l| l.class == "all") {
        sum.add(all);
    }
    let r = &w.result;
    // The timeseries counts bytes exactly; without one, MB/s over the run time does.
    let bytes = r.timeseries.as_ref().map_or((w.mbps * 1e3 * r.mseconds as f64).round() as u64, |t| t.bytes.iter().sum());
    let latency_us = w
        .latency
        .iter()
        .find(|l| l.class == "all")
        .map(|l| l.percentiles.iter().filter(|p| STANDARD_PERCENTILES.contains(&p.0)).copied().collect())
        .unwrap_or_default();
    let n = WorkerNumbers { name: w.name.clone(), outcome: w.outcome, iops: w.iops, mbps: w.mbps, bytes, ios: r.io_count(), errors: r.error_count, latency_us };
    (n, sum)
}

fn phase_numbers(p: &PhaseSummary) -> PhaseNumbers {
    let mut n = PhaseNumbers {
        label: p.label.clone(),
        outcome: p.outcome,
        iops: 0.0,
        mbps: 0.0,
        bytes: 0,
        ios: 0,
        errors: 0,
        latency_us: Vec::new(),
        workers: Vec::new(),
        latency: LatencySum::default(),
    };
    for w in &p.workers {
        let (wn, sum) = worker_numbers(w);
        n.iops += wn.iops;
        n.mbps += wn.mbps;
        n.bytes += wn.bytes;
        n.ios += wn.ios;
        n.errors += wn.errors;
        n.latency.merge(&sum);
        n.workers.push(wn);
    }
    n.latency_us = n.latency.percentiles(&STANDARD_PERCENTILES);
    n
}

/// Why a run that did not pass did not.
fn reason(s: &Summary, status: Status) -> Option<String> {
    if let Some(e) = &s.error {
        return Some(e.clone());
    }
    match status {
        Status::Pass | Status::Missing => None,
        Status::Incomplete if s.outcome == Outcome::Interrupted => Some("interrupted".into()),
        Status::Incomplete => Some(format!("the run did not end (killed, still running, or its host stopped); {} phase runs ended before", s.phases.len())),
        Status::Failed => {
            let failed: Vec<String> = s
                .phases
                .iter()
                .filter(|p| p.outcome == Outcome::Fail)
                .flat_map(|p| {
                    let checks = p.checks.iter().chain(p.workers.iter().flat_map(|w| &w.checks)).filter(|c| !c.pass);
                    checks.map(move |c| format!("{}: {}: expected {}, measured {}", p.label, c.what, c.expected, c.actual))
                })
                .collect();
            Some(if failed.is_empty() { "a phase run failed".into() } else { failed.join("; ") })
        }
    }
}

/// Reads the run in `dir`: its numbers, or a missing run that says what is wrong and how
/// to fix it.
pub fn read_run(dir: &Path) -> MergedRun {
    let shown = dir.display().to_string();
    let missing = |reason: String| MergedRun {
        dir: shown.clone(),
        identity: Identity::default(),
        status: Status::Missing,
        outcome: None,
        complete: false,
        reason: Some(reason),
        seconds: 0.0,
        phases: Vec::new(),
        suite: None,
    };
    if !dir.is_dir() {
        return missing("no such directory (the run never started, or its results are elsewhere)".into());
    }
    if !dir.join("summary.json").is_file() {
        return missing("no summary.json (the run never started, or was killed before it wrote one)".into());
    }
    let s = match crate::report::read_summary(dir) {
        Ok(s) => s,
        Err(e) => return missing(format!("{e}; leave the directory out of the merge, or run the plan into it again")),
    };
    let status = status_of(&s);
    let mut identity = s.identity.clone();
    // Summaries written before runs carried an identity still name their drive and plan.
    if identity.plan.is_empty() {
        identity.plan = s.plan.clone();
    }
    if let (true, Some(d)) = (identity.serial.is_empty(), &s.device) {
        (identity.serial, identity.model, identity.firmware) = (d.serial.clone(), d.model.clone(), d.firmware.clone());
    }
    let charts: Vec<String> = Vec::new();
    MergedRun {
        dir: shown,
        reason: reason(&s, status),
        identity,
        status,
        outcome: Some(s.outcome),
        complete: s.complete,
        seconds: s.seconds,
        phases: s.phases.iter().filter(|p| p.outcome != Outcome::Skipped).map(phase_numbers).collect(),
        suite: Some(junit::suite(&s, &charts)),
    }
}

fn order_key(r: &MergedRun) -> (bool, &str, &str, &str, &str, &str, &str, &str) {
    let i = &r.identity;
    (r.status == Status::Missing, &i.plan, &i.model, &i.firmware, &i.host, &i.serial, &i.run_id, &r.dir)
}

/// Merges the runs in `dirs` (see [`run_dirs`]): every run with its origin, every phase
/// run summed over all runs and by model and firmware, the plans' checksums compared.
pub fn merge(dirs: &[PathBuf]) -> Merged {
    let mut runs: Vec<MergedRun> = run_dirs(dirs).iter().map(|d| read_run(d)).collect();
    runs.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    from_runs(runs)
}

/// The merge of runs already read, in the order given.
pub fn from_runs(runs: Vec<MergedRun>) -> Merged {
    let mut counts = Counts::default();
    let mut totals: BTreeMap<String, Aggregate> = BTreeMap::new();
    let mut groups: BTreeMap<(String, String), (usize, BTreeMap<String, Aggregate>)> = BTreeMap::new();
    let mut plans: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &runs {
        match r.status {
            Status::Pass => counts.pass += 1,
            Status::Failed => counts.failed += 1,
            Status::Incomplete => counts.incomplete += 1,
            Status::Missing => {
                counts.missing += 1;
                continue;
            }
        }
        *plans.entry((r.identity.plan.clone(), r.identity.plan_crc32.clone())).or_default() += 1;
        let g = groups.entry((r.identity.model.clone(), r.identity.firmware.clone())).or_default();
        g.0 += 1;
        for p in &r.phases {
            totals.entry(p.label.clone()).or_insert_with(|| Aggregate::new(&p.label)).add(p);
            g.1.entry(p.label.clone()).or_insert_with(|| Aggregate::new(&p.label)).add(p);
        }
    }
    let finish = |m: BTreeMap<String, Aggregate>| -> Vec<Aggregate> {
        m.into_values()
            .map(|mut a| {
                a.finish();
                a
            })
            .collect()
    };
    let mixed_plans = plans.len() > 1;
    let outcome = if counts.failed > 0 {
        Outcome::Fail
    } else if counts.incomplete + counts.missing > 0 {
        Outcome::Incomplete
    } else {
        Outcome::Pass
    };
    Merged {
        kind: MERGE_KIND,
        outcome,
        counts,
        plans: plans.into_iter().map(|((plan, plan_crc32), runs)| PlanVersion { plan, plan_crc32, runs }).collect(),
        mixed_plans,
        nvplan_version: env!("CARGO_PKG_VERSION").into(),
        totals: finish(totals),
        groups: groups.into_iter().map(|((model, firmware), (runs, phases))| Group { model, firmware, runs, phases: finish(phases) }).collect(),
        runs,
    }
}
