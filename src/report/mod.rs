//! Reports: the files a run leaves in its output directory, drawn from its [`Summary`].
//!
//! | file | what |
//! |---|---|
//! | `summary.json` | everything measured (also the input of `nvplan report`) |
//! | `manifest.json` | version, command, plan, drive, host, seed, start, end, `complete`, files |
//! | `plan.resolved.yaml` | the plan as it ran: one phase per run, seeds written out |
//! | `workers.csv`, `io_per_second.csv`, `latency_percentiles.csv`, `latency_histogram.csv`, `events.csv`, `cmdlog.csv`, `metamode.csv` | the data, one file per kind ([`csv`]) |
//! | `junit.xml` | one test case per phase run × expectation ([`junit`]) |
//! | `charts/*.png` | latency histogram, QoS percentiles, IOPS over time per phase run; sweep matrices ([`charts`]) |
//!
//! Every file is written to a temporary name and renamed, so a reader never sees half a
//! file. The report is rewritten after every phase run: a run that fails, is interrupted
//! or dies leaves what was measured so far, with `complete: false` in the manifest and
//! the summary until the run has ended.

pub mod charts;
pub mod csv;
pub mod junit;
pub mod manifest;
pub mod pts;
pub mod wsat;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::exec::Summary;
use manifest::{Host, Manifest};

/// Subdirectory of the charts.
pub const CHARTS_DIR: &str = "charts";
/// Marks a directory a run is writing into.
const LOCK: &str = ".nvplan.lock";
/// The files nvplan writes at the top of a report directory (besides `charts/`).
const OWN_FILES: [&str; 13] = [
    "summary.json",
    "manifest.json",
    "plan.resolved.yaml",
    "workers.csv",
    "io_per_second.csv",
    "latency_percentiles.csv",
    "latency_histogram.csv",
    "events.csv",
    "cmdlog.csv",
    "metamode.csv",
    "junit.xml",
    "comparison.csv",
    "comparison.json",
];

/// Writes `dir/name` through a temporary file in the same directory, so that a reader
/// never sees half of it.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// How often the report is rewritten inside the rounds of a steady-state phase.
pub const ROUND_WRITE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes `dir/summary.json` atomically; returns its path.
pub fn write_summary(dir: &Path, s: &Summary) -> std::io::Result<PathBuf> {
    let json = serde_json::to_string_pretty(s).map_err(std::io::Error::other)?;
    write_atomic(dir, "summary.json", (json + "\n").as_bytes())
}

/// Reads `dir/summary.json`.
pub fn read_summary(dir: &Path) -> Result<Summary, String> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        if text.get(..200).unwrap_or(&text).contains(crate::fleet::merge::MERGE_KIND) {
            format!("{}: a merged report (`nvplan report --merge`), not a run's: give the run directories", path.display())
        } else {
            format!("{}:{}:{}: {e}: not a summary nvplan wrote", path.display(), e.line(), e.column())
        }
    })
}

fn read_manifest(dir: &Path) -> Option<Manifest> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).ok()?).ok()
}

/// A file name of a report that is safe to delete: relative, inside the directory.
fn own_relative(name: &str) -> bool {
    let p = Path::new(name);
    p.is_relative() && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Removes the files of an earlier report in `dir` (those its manifest lists, nvplan's
/// own names, and its charts); other files stay. Returns what it replaced.
fn clear_previous(dir: &Path) -> std::io::Result<Option<String>> {
    let old = read_manifest(dir);
    if old.is_none() && !OWN_FILES.iter().any(|f| dir.join(f).exists()) {
        return Ok(None);
    }
    let mut names: BTreeSet<String> = OWN_FILES.iter().map(|s| s.to_string()).collect();
    if let Some(m) = &old {
        names.extend(m.files.iter().filter(|f| own_relative(f)).cloned());
    }
    for n in &names {
        match std::fs::remove_file(dir.join(n)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let charts = dir.join(CHARTS_DIR);
    if let Ok(entries) = std::fs::read_dir(&charts) {
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "png") {
                std::fs::remove_file(e.path())?;
            }
        }
        let _ = std::fs::remove_dir(&charts);
    }
    Ok(Some(match old {
        Some(m) => format!("replaced the report of an earlier run of {} (started {}) in {}", m.plan.name, m.started, dir.display()),
        None => format!("replaced an earlier report in {}", dir.display()),
    }))
}

/// This boot of the machine (Linux's boot ID), if the kernel says.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Takes `dir` for one run: fails when another live nvplan process writes there. The lock
/// holds the process ID and the boot ID: a lock left by a run that was killed, read on a
/// later boot (a directory shared with a virtual machine, a disk moved), names a process
/// that is gone, whatever runs under its number now.
fn lock(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(LOCK);
    let boot = boot_id();
    if let Ok(text) = std::fs::read_to_string(&path) {
        let mut words = text.split_whitespace();
        if let Some(pid) = words.next().and_then(|p| p.parse::<u32>().ok())
            && pid != std::process::id()
            && Path::new(&format!("/proc/{pid}")).exists()
            && words.next().is_none_or(|b| boot.as_deref().is_none_or(|now| now == b))
        {
            return Err(format!("{}: another nvplan run (process {pid}) is writing this report; give this run another --out", dir.display()));
        }
    }
    std::fs::write(&path, format!("{} {}\n", std::process::id(), boot.unwrap_or_default())).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Where a run's report goes, and what is written there so far.
#[derive(Debug)]
pub struct Report {
    dir: PathBuf,
    command: Vec<String>,
    plan_crc32: Option<u32>,
    host: Host,
    files: BTreeSet<String>,
    charts: Vec<String>,
    charted: usize,
    lock: Option<PathBuf>,
    /// Files that could not be drawn or written (the others still are).
    pub problems: Vec<String>,
    /// When the files were last brought up to date.
    written: Option<std::time::Instant>,
}

impl Report {
    /// Takes `dir` for a new run of the plan in `plan_file` started by `command`: an
    /// earlier report there is removed (the returned note says so), so two runs never
    /// mix; a directory another live run writes to is refused.
    pub fn create(dir: &Path, command: Vec<String>, plan_file: Option<&Path>) -> Result<(Report, Option<String>), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let lock = lock(dir)?;
        let note = clear_previous(dir).map_err(|e| format!("{}: cannot remove the earlier report: {e}", dir.display()))?;
        let plan_crc32 = plan_file.and_then(|p| std::fs::read(p).ok()).map(|b| crc32fast::hash(&b));
        let r = Report {
            dir: dir.to_path_buf(),
            command,
            plan_crc32,
            host: Host::this(),
            files: BTreeSet::new(),
            charts: Vec::new(),
            charted: 0,
            lock: Some(lock),
            problems: Vec::new(),
            written: None,
        };
        Ok((r, note))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn put(&mut self, name: &str, bytes: &[u8]) {
        match write_atomic(&self.dir, name, bytes) {
            Ok(_) => {
                self.files.insert(name.to_string());
            }
            Err(e) => self.problems.push(format!("{}: {e}", self.dir.join(name).display())),
        }
    }

    /// Writes `plan.resolved.yaml`.
    pub fn resolved_plan(&mut self, plan: &crate::plan::Plan, note: &str) {
        match serde_saphyr::to_string(plan) {
            Ok(y) => {
                let text = format!("# {note}\n{y}");
                self.put("plan.resolved.yaml", text.as_bytes());
            }
            Err(e) => self.problems.push(format!("plan.resolved.yaml: {e}")),
        }
    }

    fn add_charts(&mut self, r: Result<Vec<PathBuf>, charts::ChartError>, what: &str) {
        match r {
            Ok(paths) => {
                for p in paths {
                    let rel = format!("{CHARTS_DIR}/{}", p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
                    self.files.insert(rel.clone());
                    if !self.charts.contains(&rel) {
                        self.charts.push(rel);
                    }
                }
            }
            Err(e) => self.problems.push(format!("charts of {what}: {e}")),
        }
    }

    /// Brings every file up to `s`: charts of the phase runs not drawn yet, the summary,
    /// the CSVs, the JUnit file, and last the manifest (a reader that sees a manifest sees
    /// the files it lists).
    ///
    /// Inside the rounds of a steady-state phase (hundreds of short phase runs in a
    /// shortened PTS test) the files are brought up to date at most every
    /// [`ROUND_WRITE_EVERY`]: rewriting them after each run would cost more than the runs.
    pub fn update(&mut self, s: &Summary) {
        let in_rounds = s.phases.last().is_some_and(|p| s.steady_state.iter().any(|r| r.phase == p.name && !r.done && p.outcome == crate::exec::Outcome::Pass));
        if in_rounds && self.written.is_some_and(|t| t.elapsed() < ROUND_WRITE_EVERY) {
            return;
        }
        self.written = Some(std::time::Instant::now());
        self.write(s, false);
    }

    fn write(&mut self, s: &Summary, ended: bool) {
        let chart_dir = self.dir.join(CHARTS_DIR);
        while self.charted < s.phases.len() {
            let i = self.charted;
            // The rounds of a steady-state phase are drawn together by the PTS pages, not
            // one run at a time (25 rounds of 56 cells would be 4200 charts).
            let round = s.steady_state.iter().any(|r| r.phase == s.phases[i].name);
            if s.phases[i].outcome != crate::exec::Outcome::Skipped && !round {
                let r = charts::phase_charts(&chart_dir, s, i);
                self.add_charts(r, &s.phases[i].label);
            }
            self.charted += 1;
        }
        if ended {
            let r = charts::sweep_charts(&chart_dir, s);
            self.add_charts(r, "the sweeps");
            match pts::pages(&self.dir, &chart_dir, s).and_then(|mut v| {
                v.extend(wsat::pages(&self.dir, &chart_dir, s)?);
                Ok(v)
            }) {
                Ok(paths) => {
                    let (pages, charts): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(|p| p.extension().is_some_and(|e| e == "html"));
                    self.add_charts(Ok(charts), "the PTS pages");
                    for p in pages {
                        self.files.insert(p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default());
                    }
                }
                Err(e) => self.problems.push(format!("PTS pages: {e}")),
            }
        }
        match write_summary(&self.dir, s) {
            Ok(_) => {
                self.files.insert("summary.json".into());
            }
            Err(e) => self.problems.push(format!("{}: {e}", self.dir.join("summary.json").display())),
        }
        self.put("workers.csv", csv::workers(s).as_bytes());
        self.put("io_per_second.csv", csv::io_per_second(s).as_bytes());
        self.put("latency_percentiles.csv", csv::latency_percentiles(s).as_bytes());
        self.put("latency_histogram.csv", csv::latency_histogram(s).as_bytes());
        self.put("events.csv", csv::events(s).as_bytes());
        if let Some(c) = csv::cmdlog(s) {
            self.put("cmdlog.csv", c.as_bytes());
        }
        if let Some(c) = csv::metamode(s) {
            self.put("metamode.csv", c.as_bytes());
        }
        let charts = self.charts.clone();
        self.put("junit.xml", junit::junit(s, &charts).as_bytes());
        let mut files: Vec<String> = self.files.iter().cloned().collect();
        files.push("manifest.json".into());
        let m = Manifest::of(s, &self.command, self.plan_crc32, &self.host, files, ended);
        match serde_json::to_string_pretty(&m) {
            Ok(j) => self.put("manifest.json", (j + "\n").as_bytes()),
            Err(e) => self.problems.push(format!("manifest.json: {e}")),
        }
    }

    /// Writes the final report of `s` and releases the directory.
    pub fn finish(mut self, s: &Summary) -> Vec<String> {
        self.write(s, true);
        if let Some(l) = self.lock.take() {
            let _ = std::fs::remove_file(l);
        }
        std::mem::take(&mut self.problems)
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(l) = self.lock.take() {
            let _ = std::fs::remove_file(l);
        }
    }
}

/// `nvplan report DIR --out OUT`: draws the CSVs, JUnit file and charts of the run in
/// `dir` again from its `summary.json` into `out` (which may be `dir`), keeping the
/// run's manifest details.
pub fn rerender(dir: &Path, out: &Path) -> Result<Vec<String>, String> {
    let s = read_summary(dir)?;
    let old = read_manifest(dir);
    let resolved = std::fs::read(dir.join("plan.resolved.yaml")).ok();
    // Drawing in place removes the old files first: keep the summary safe until the new
    // one is written.
    let keep = dir.join(".summary.json.kept");
    std::fs::copy(dir.join("summary.json"), &keep).map_err(|e| format!("{}: {e}", keep.display()))?;
    let (mut r, _) = Report::create(out, old.as_ref().map(|m| m.command.clone()).unwrap_or_default(), None)?;
    if let Some(m) = old {
        r.plan_crc32 = m.plan.crc32.and_then(|c| u32::from_str_radix(&c, 16).ok());
        r.host = m.host;
    }
    if let Some(y) = resolved {
        r.put("plan.resolved.yaml", &y);
    }
    let problems = r.finish(&s);
    if problems.is_empty() {
        let _ = std::fs::remove_file(&keep);
    }
    Ok(problems)
}

/// Phase-level numbers of one run for comparisons: total IOPS and MB/s, and latency
/// percentiles of all workers together.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseTotals {
    /// Sum of the workers' IOPS.
    pub iops: f64,
    /// Sum of the workers' MB/s.
    pub mbps: f64,
    /// `(percentile, µs)` for 50, 99, 99.9, 99.99 and the maximum.
    pub latency_us: Vec<(f64, f64)>,
}

/// The percentiles of [`PhaseTotals`].
pub const COMPARED_PERCENTILES: [f64; 5] = [50.0, 99.0, 99.9, 99.99, 100.0];

impl PhaseTotals {
    /// Totals of a phase run. With one worker the percentiles are its own; with several,
    /// they come from the workers' histogram buckets added up (to a bucket's width,
    /// 12 %; the maximum is exact).
    pub fn of(p: &crate::exec::PhaseSummary) -> PhaseTotals {
        let all: Vec<&crate::exec::Latency> = p.workers.iter().filter_map(|w| w.latency.iter().find(|l| l.class == "all")).collect();
        let latency_us = if all.len() == 1 {
            COMPARED_PERCENTILES.iter().filter_map(|&q| all[0].percentiles.iter().find(|x| x.0 == q).copied()).collect()
        } else {
            crate::exec::summary::merged_percentiles(&all, &COMPARED_PERCENTILES)
        };
        PhaseTotals { iops: p.workers.iter().map(|w| w.iops).sum(), mbps: p.workers.iter().map(|w| w.mbps).sum(), latency_us }
    }
}

/// `nvplan report DIR DIR...`: comparison charts (one per phase run label found in more
/// than one run) and `comparison.csv` in `out`. Runs are labelled by their directory
/// names.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<Vec<String>, String> {
    let mut runs = Vec::new();
    for d in dirs {
        runs.push((d.clone(), read_summary(d)?));
    }
    let names: Vec<String> = dirs.iter().map(|d| d.file_name().map_or_else(|| d.display().to_string(), |f| f.to_string_lossy().into_owned())).collect();
    let unique = names.iter().collect::<BTreeSet<_>>().len() == names.len();
    let labelled: Vec<(String, &Summary)> = runs.iter().zip(&names).map(|((d, s), n)| (if unique { n.clone() } else { d.display().to_string() }, s)).collect();
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let lock = lock(out)?;
    let _ = clear_previous(out);
    let mut problems = Vec::new();
    let mut files = Vec::new();
    let text = csv::comparison(&labelled);
    match write_atomic(out, "comparison.csv", text.as_bytes()) {
        Ok(_) => files.push("comparison.csv".to_string()),
        Err(e) => problems.push(format!("comparison.csv: {e}")),
    }
    match charts::comparison_charts(&out.join(CHARTS_DIR), &labelled) {
        Ok(paths) => files.extend(paths.iter().filter_map(|p| p.file_name()).map(|f| format!("{CHARTS_DIR}/{}", f.to_string_lossy()))),
        Err(e) => problems.push(format!("comparison charts: {e}")),
    }
    let m = serde_json::json!({
        "nvplan_version": env!("CARGO_PKG_VERSION"),
        "comparison_of": dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>(),
        "files": files,
    });
    let _ = write_atomic(out, "comparison.json", format!("{m:#}\n").as_bytes());
    let _ = std::fs::remove_file(lock);
    Ok(problems)
}
