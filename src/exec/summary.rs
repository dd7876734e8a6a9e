//! What a run leaves: the outcome of the plan, of each phase run, event, worker and
//! expectation. Serialised as `summary.json`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::ioworker::IoWorkerResult;

/// Outcome of a plan, phase, worker, event or check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything expected happened.
    Pass,
    /// Something did not.
    Fail,
    /// Stopped by Ctrl-C or SIGTERM before the end.
    Interrupted,
    /// Not run (an earlier failure or an interrupt).
    Skipped,
    /// The run has not ended: it is still going, or the process ended before it could
    /// say how the run ended (killed, crashed, the host lost power). Only a plan's
    /// outcome is ever this, in a summary written before the run's end.
    Incomplete,
}

impl Outcome {
    /// `Pass` when `ok`, else `Fail`.
    pub fn of(ok: bool) -> Outcome {
        if ok { Outcome::Pass } else { Outcome::Fail }
    }
}

/// One checked expectation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Check {
    /// What was checked: `errors`, `iops_min`, `latency_us[99.9]`, `error`, ...
    pub what: String,
    /// The expected value, as written in the plan (or the default).
    pub expected: String,
    /// What the run gave.
    pub actual: String,
    /// Met or not.
    pub pass: bool,
}

/// One ioworker of a phase run: the seed's result fields and the outputs it asked for.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// Name (from the plan, or w0, w1, ...).
    pub name: String,
    /// Namespace.
    pub nsid: u32,
    /// CPU the worker thread ran on.
    pub cpu_id: Option<usize>,
    /// Pass or fail of this worker's checks.
    pub outcome: Outcome,
    /// I/Os outstanding (qdepth).
    #[serde(default)]
    pub qdepth: u32,
    /// The LBA region(s) the worker used, `[start, end)`; the end is capped to the
    /// namespace.
    #[serde(default)]
    pub regions: Vec<(u64, u64)>,
    /// Start of the worker's I/O, seconds from the phase start.
    #[serde(default)]
    pub start_s: f64,
    /// Latency percentiles and histogram by opcode class, for reports.
    #[serde(default)]
    pub latency: Vec<Latency>,
    /// The checks of this worker.
    pub checks: Vec<Check>,
    /// I/Os per second over the worker's run time.
    pub iops: f64,
    /// Throughput, MB/s (10^6 bytes) of data read and written.
    pub mbps: f64,
    /// The worker's result (seed field names).
    #[serde(flatten)]
    pub result: IoWorkerResult,
}

/// One timed event of a phase run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventSummary {
    /// Name (from the plan, or the kind).
    pub name: String,
    /// `reset`, `power_cycle` or `admin`.
    pub kind: String,
    /// What it did, e.g. `controller`, `dirty, off 1s`, `get_log_page lid=2`.
    pub detail: String,
    /// Planned time from the phase start, seconds.
    pub planned_s: f64,
    /// Time it was fired, seconds from the phase start.
    pub actual_s: f64,
    /// `actual - planned`, milliseconds.
    pub late_ms: f64,
    /// How long the action took, milliseconds.
    pub duration_ms: f64,
    /// Status of the command, `SCT/SC` (admin commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Dword 0 of the completion (admin commands).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cdw0: Option<u32>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A failure does not fail the phase.
    pub allow_failure: bool,
    /// Pass, fail or skipped (the phase ended or was interrupted first).
    pub outcome: Outcome,
}

/// One run of a phase (a phase runs `repeat` × sweep combinations times).
#[derive(Debug, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Unique label of this run (with repeat and sweep values).
    pub label: String,
    /// Repeat index, from 0.
    pub repeat: u32,
    /// Sweep values of this run.
    pub sweep: std::collections::BTreeMap<String, serde_json::Value>,
    /// Outcome of the run.
    pub outcome: Outcome,
    /// Seconds from the start of the plan to the start of this run.
    pub start_s: f64,
    /// Length of the run, seconds.
    pub seconds: f64,
    /// Planned length (the longest worker's start delay and time), seconds.
    #[serde(default)]
    pub planned_s: Option<f64>,
    /// Phase-level checks (over all workers).
    pub checks: Vec<Check>,
    /// Events, in time order.
    pub events: Vec<EventSummary>,
    /// Workers, in plan order.
    pub workers: Vec<WorkerSummary>,
    /// Metamode steps, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metamode: Vec<super::metamode::StepSummary>,
    /// The PTS page the phase asked for (`write_saturation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_page: Option<crate::plan::model::ReportPage>,
}

/// A whole run of a plan. `outcome` and `complete` come first in `summary.json`: a reader
/// sees at once whether the run passed and whether it ended.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Outcome of the plan: `incomplete` in a summary written while the run goes on
    /// (until a phase run fails: then `fail`), so that a run that never ends never says
    /// `pass`.
    pub outcome: Outcome,
    /// Every phase run ran: false while the run goes on, when it was interrupted or could
    /// not go on, and when the process died.
    #[serde(default)]
    pub complete: bool,
    /// Why the run could not go on, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Which run this is, where and on what it ran: every record that leaves the run
    /// carries it, so that results merged from many hosts keep their origin.
    #[serde(default)]
    pub identity: Identity,
    /// Plan name.
    pub plan: String,
    /// Plan file.
    pub file: String,
    /// Plan description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed the I/O streams were derived from.
    pub seed: u64,
    /// Factor applied to every duration of the plan.
    pub time_scale: f64,
    /// The controller: transport, model, serial, firmware.
    pub target: String,
    /// The controller's identity, once it came up.
    #[serde(default)]
    pub device: Option<Device>,
    /// Percentiles the plan asked for besides the standard set (reports list them).
    #[serde(default)]
    pub percentiles: Vec<f64>,
    /// Start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Length of the run so far, seconds.
    pub seconds: f64,
    /// Phase runs, in order.
    pub phases: Vec<PhaseSummary>,
    /// The rounds of each phase that runs until steady state (SNIA PTS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steady_state: Vec<super::steady::SteadyStateSummary>,
}

impl Summary {
    /// The summary of `plan` as it starts now on `target`: incomplete, no phase run yet.
    pub fn start(plan: &crate::plan::LoadedPlan, seed: u64, time_scale: f64, target: String) -> Summary {
        let started_unix = std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let host = crate::util::hostname();
        Summary {
            identity: Identity {
                run_id: format!("{host}-{started_unix}-{}", std::process::id()),
                host,
                plan: plan.plan.name.clone(),
                plan_crc32: format!("{:08x}", plan.crc32),
                nvplan_version: env!("CARGO_PKG_VERSION").into(),
                ..Identity::default()
            },
            plan: plan.plan.name.clone(),
            file: plan.file.clone(),
            description: plan.plan.description.clone(),
            seed,
            time_scale,
            target,
            started_unix,
            seconds: 0.0,
            device: None,
            percentiles: Vec::new(),
            outcome: Outcome::Incomplete,
            complete: false,
            error: None,
            phases: Vec::new(),
            steady_state: Vec::new(),
        }
    }
}

/// The identity of a run: the columns every CSV row of it starts with, the fields a merge
/// groups and labels runs by.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// Unique name of the run: `<host>-<start, Unix seconds>-<process id>`.
    pub run_id: String,
    /// Host name of the machine that ran it.
    pub host: String,
    /// Drive serial number (empty until the controller came up).
    pub serial: String,
    /// Drive model number.
    pub model: String,
    /// Drive firmware revision.
    pub firmware: String,
    /// PCI address of the drive (empty for the simulator).
    pub pci_address: String,
    /// Plan name.
    pub plan: String,
    /// CRC-32 of the plan file's text, hex: runs of edited plans differ here.
    pub plan_crc32: String,
    /// nvplan's version.
    pub nvplan_version: String,
}

impl Identity {
    /// Names of the fields, in CSV column order.
    pub const COLUMNS: [&'static str; 9] = ["run_id", "host", "serial", "model", "firmware", "pci_address", "plan", "plan_crc32", "nvplan_version"];

    /// The fields, in [`Identity::COLUMNS`] order.
    pub fn values(&self) -> [&str; 9] {
        [&self.run_id, &self.host, &self.serial, &self.model, &self.firmware, &self.pci_address, &self.plan, &self.plan_crc32, &self.nvplan_version]
    }
}

/// The controller a run drove.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Transport, e.g. `simulator` or a PCI address.
    pub transport: String,
    /// Model number (Identify Controller MN).
    pub model: String,
    /// Serial number (SN).
    pub serial: String,
    /// Firmware revision (FR).
    pub firmware: String,
    /// PCI vendor id (VID).
    pub vid: u16,
    /// Namespaces (NN).
    pub namespaces: u32,
}

/// The percentiles every report lists (100 is the maximum).
pub const STANDARD_PERCENTILES: [f64; 7] = [50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 100.0];

/// Histogram buckets per decade of latency; bucket `k` starts at 0.1 µs × 10^(k/20).
const BUCKETS_PER_DECADE: f64 = 20.0;
const BUCKET_BASE_NS: f64 = 100.0;

/// Latency of one opcode class of a worker: the numbers behind the latency CSVs and
/// charts, kept in `summary.json` so that reports can be drawn again from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// `read`, `write`, `other` or `all`.
    pub class: String,
    /// Completions.
    pub count: u64,
    /// Mean, µs.
    pub mean_us: f64,
    /// `(percentile, µs)`: the standard set and those the plan asked for; 100 is the
    /// maximum.
    pub percentiles: Vec<(f64, f64)>,
    /// `(percentile, µs)` from 0 to 99.999 in steps of an eighth of a nine: the QoS curve.
    pub curve: Vec<(f64, f64)>,
    /// `(lower µs, upper µs, count)` of the non-empty log-spaced buckets (20 a decade).
    pub histogram: Vec<(f64, f64, u64)>,
}

/// Lower bound of histogram bucket `k`, µs.
pub fn bucket_lower_us(k: i32) -> f64 {
    BUCKET_BASE_NS * 10f64.powf(k as f64 / BUCKETS_PER_DECADE) / 1000.0
}

fn round_us(ns: f64) -> f64 {
    (ns / 10.0).round() / 100.0
}

impl Latency {
    /// Summarises `h` (nanoseconds) for `class`, with the standard percentiles and
    /// `asked`; `None` when nothing was recorded.
    pub fn of(class: &str, h: &Histogram<u64>, asked: &[f64]) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let at = |p: f64| -> f64 {
            if p >= 100.0 {
                return round_us(h.max() as f64);
            }
            // The histogram answers with the top of a bucket; report its middle.
            round_us(h.median_equivalent(h.value_at_quantile(p / 100.0)) as f64)
        };
        let mut ps: Vec<f64> = STANDARD_PERCENTILES.iter().chain(asked).copied().filter(|p| (0.0..=100.0).contains(p)).collect();
        ps.sort_by(f64::total_cmp);
        ps.dedup();
        let curve = curve_percentiles().into_iter().map(|p| (p, at(p)));
        let mut buckets: std::collections::BTreeMap<i32, u64> = Default::default();
        for v in h.iter_recorded() {
            let ns = h.median_equivalent(v.value_iterated_to()).max(1) as f64;
            let k = ((ns / BUCKET_BASE_NS).log10() * BUCKETS_PER_DECADE).floor() as i32;
            *buckets.entry(k).or_default() += v.count_at_value();
        }
        Some(Latency {
            class: class.into(),
            count: h.len(),
            mean_us: round_us(h.mean()),
            percentiles: ps.iter().map(|&p| (p, at(p))).collect(),
            curve: curve.collect(),
            histogram: buckets.into_iter().map(|(k, n)| (round3(bucket_lower_us(k)), round3(bucket_lower_us(k + 1)), n)).collect(),
        })
    }

    /// The classes of a worker result that saw completions, then `all` of them together.
    pub fn of_result(r: &crate::ioworker::IoWorkerResult, asked: &[f64]) -> Vec<Latency> {
        let mut out = Vec::new();
        let mut all: Option<Histogram<u64>> = None;
        for (class, h) in crate::ioworker::CLASSES.iter().zip(&r.class_histograms) {
            let Some(h) = h else { continue };
            if let Some(l) = Latency::of(class, h, asked) {
                out.push(l);
                match &mut all {
                    None => all = Some(h.clone()),
                    Some(a) => {
                        let _ = a.add(h);
                    }
                }
            }
        }
        if let Some(a) = all.and_then(|a| Latency::of("all", &a, asked)) {
            out.push(a);
        }
        out
    }
}

/// The percentiles of [`Latency::curve`]: 0 to 99.999 in steps of an eighth of a nine.
pub fn curve_percentiles() -> Vec<f64> {
    (0..=40).map(|k| (100.0 * (1.0 - 10f64.powf(-(k as f64) / 8.0)) * 1e6).round() / 1e6).collect()
}

/// Percentiles `ps` (100 = the maximum) of several workers' latencies together, from their
/// histogram buckets added up (see [`LatencySum`]).
pub fn merged_percentiles(lats: &[&Latency], ps: &[f64]) -> Vec<(f64, f64)> {
    let mut sum = LatencySum::default();
    for l in lats {
        sum.add(l);
    }
    sum.percentiles(ps)
}

/// Latencies of many workers (of many runs) added up from their histogram buckets: the
/// bounds are fixed, so equal lower bounds are one bucket and the sum is exact. Percentiles
/// of the sum are interpolated within a bucket on the log scale, as precise as a bucket
/// (12 %); the maximum is the largest of the maxima added. Never an average of
/// percentiles.
#[derive(Clone, Debug, Default)]
pub struct LatencySum {
    buckets: std::collections::BTreeMap<i64, (f64, f64, u64)>,
    max_us: Option<f64>,
}

impl LatencySum {
    /// Adds the buckets and the maximum of `l`.
    pub fn add(&mut self, l: &Latency) {
        for &(lo, hi, n) in &l.histogram {
            if lo.is_finite() && hi.is_finite() && lo > 0.0 && hi > lo && n > 0 {
                self.buckets.entry((lo * 1000.0).round() as i64).or_insert((lo, hi, 0)).2 += n;
            }
        }
        if let Some(&(_, max)) = l.percentiles.iter().find(|x| x.0 >= 100.0)
            && max.is_finite()
        {
            self.max_us = Some(self.max_us.map_or(max, |m| m.max(max)));
        }
    }

    /// Adds everything `other` holds.
    pub fn merge(&mut self, other: &LatencySum) {
        for (&k, &(lo, hi, n)) in &other.buckets {
            self.buckets.entry(k).or_insert((lo, hi, 0)).2 += n;
        }
        if let Some(m) = other.max_us {
            self.max_us = Some(self.max_us.map_or(m, |x| x.max(m)));
        }
    }

    /// Completions counted.
    pub fn count(&self) -> u64 {
        self.buckets.values().map(|b| b.2).sum()
    }

    /// The buckets, `(lower µs, upper µs, count)`, in order.
    pub fn histogram(&self) -> Vec<(f64, f64, u64)> {
        self.buckets.values().copied().collect()
    }

    /// `(percentile, µs)` for each of `ps`; empty when nothing was added.
    pub fn percentiles(&self, ps: &[f64]) -> Vec<(f64, f64)> {
        let total = self.count();
        if total == 0 {
            return Vec::new();
        }
        ps.iter()
            .map(|&p| {
                if p >= 100.0
                    && let Some(max) = self.max_us
                {
                    return (p, max);
                }
                let target = p / 100.0 * total as f64;
                let mut cum = 0.0;
                let mut us = self.buckets.values().last().map_or(0.0, |b| b.1);
                for &(lo, hi, n) in self.buckets.values() {
                    if cum + n as f64 >= target {
                        let frac = ((target - cum) / n as f64).clamp(0.0, 1.0);
                        us = lo * (hi / lo).powf(frac);
                        break;
                    }
                    cum += n as f64;
                }
                // A bucket's upper part may lie above the largest latency seen.
                (p, round_us(self.max_us.map_or(us, |m| us.min(m)) * 1000.0))
            })
            .collect()
    }
}

fn round3(us: f64) -> f64 {
    (us * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values_ns: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for &v in values_ns {
            h.record(v).unwrap();
        }
        h
    }

    #[test]
    fn latency_lists_standard_and_asked_percentiles_with_max_last() {
        let h = hist(&(1..=1000).map(|i| i * 1000).collect::<Vec<_>>());
        let l = Latency::of("read", &h, &[99.5, 50.0]).unwrap();
        let ps: Vec<f64> = l.percentiles.iter().map(|p| p.0).collect();
        assert_eq!(ps, vec![50.0, 90.0, 99.0, 99.5, 99.9, 99.99, 99.999, 100.0]);
        // Within the histogram's 0.1 %.
        assert!((l.percentiles[0].1 - 500.0).abs() <= 0.5, "{:?}", l.percentiles[0]);
        assert!((l.percentiles.last().unwrap().1 - 1000.0).abs() <= 1.0, "{:?}", l.percentiles.last());
        assert_eq!(l.count, 1000);
        assert_eq!(l.curve.len(), 41);
        assert_eq!(l.curve[8].0, 90.0);
        assert_eq!(l.curve[40].0, 99.999);
    }

    #[test]
    fn latency_histogram_buckets_hold_every_completion_in_log_spaced_bounds() {
        let h = hist(&[1_000, 1_050, 10_000, 10_000, 2_000_000]);
        let l = Latency::of("write", &h, &[]).unwrap();
        assert_eq!(l.histogram.iter().map(|b| b.2).sum::<u64>(), 5);
        // 1 µs and 1.05 µs share the bucket [1, 1.122) µs; 10 µs starts a bucket.
        assert_eq!(l.histogram[0], (1.0, 1.122, 2));
        assert_eq!(l.histogram[1], (10.0, 11.22, 2));
        for b in &l.histogram {
            assert!(b.0 < b.1 && (b.1 / b.0 - 10f64.powf(0.05)).abs() < 1e-3, "{b:?}");
        }
    }

    #[test]
    fn merged_percentiles_of_two_workers_lie_within_a_bucket_of_the_exact_ones() {
        let fast: Vec<u64> = (1..=1000).map(|i| i * 100).collect();
        let slow: Vec<u64> = (1..=1000).map(|i| 100_000 + i * 900).collect();
        let (a, b) = (Latency::of("all", &hist(&fast), &[]).unwrap(), Latency::of("all", &hist(&slow), &[]).unwrap());
        let both = Latency::of("all", &hist(&[fast, slow].concat()), &[]).unwrap();
        let m = merged_percentiles(&[&a, &b], &[50.0, 99.0, 100.0]);
        for (&(p, got), want) in m.iter().zip([both.percentiles[0].1, both.percentiles[2].1, both.percentiles[6].1]) {
            assert!((got / want - 1.0).abs() < 0.13, "p{p}: {got} vs {want}");
        }
        assert_eq!(m[2].1, b.percentiles[6].1, "the maximum is exact");
        assert!(merged_percentiles(&[], &[50.0]).is_empty());
    }

    #[test]
    fn empty_histogram_gives_no_latency() {
        assert!(Latency::of("read", &hist(&[]), &[]).is_none());
    }
}
