//! What a run leaves: the outcome of the plan, of each phase run, event, worker and
//! expectation. Serialised as `summary.json`.

use serde::Serialize;

use crate::ioworker::IoWorkerResult;

/// Outcome of a plan, phase, worker, event or check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
}

impl Outcome {
    /// `Pass` when `ok`, else `Fail`.
    pub fn of(ok: bool) -> Outcome {
        if ok { Outcome::Pass } else { Outcome::Fail }
    }
}

/// One checked expectation.
#[derive(Clone, Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub struct WorkerSummary {
    /// Name (from the plan, or w0, w1, ...).
    pub name: String,
    /// Namespace.
    pub nsid: u32,
    /// CPU the worker thread ran on.
    pub cpu_id: Option<usize>,
    /// Pass or fail of this worker's checks.
    pub outcome: Outcome,
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
#[derive(Clone, Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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
    /// Phase-level checks (over all workers).
    pub checks: Vec<Check>,
    /// Events, in time order.
    pub events: Vec<EventSummary>,
    /// Workers, in plan order.
    pub workers: Vec<WorkerSummary>,
}

/// A whole run of a plan.
#[derive(Debug, Serialize)]
pub struct Summary {
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
    /// Start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Length of the run so far, seconds.
    pub seconds: f64,
    /// Outcome of the plan.
    pub outcome: Outcome,
    /// Why the run could not go on, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Phase runs, in order.
    pub phases: Vec<PhaseSummary>,
}

impl Summary {
    /// The summary of `plan` as it starts now on `target`: passing, no phase run yet.
    pub fn start(plan: &crate::plan::LoadedPlan, seed: u64, time_scale: f64, target: String) -> Summary {
        Summary {
            plan: plan.plan.name.clone(),
            file: plan.file.clone(),
            description: plan.plan.description.clone(),
            seed,
            time_scale,
            target,
            started_unix: std::time::SystemTime::now().duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            seconds: 0.0,
            outcome: Outcome::Pass,
            error: None,
            phases: Vec::new(),
        }
    }
}
