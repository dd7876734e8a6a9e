//! The executor: runs the phase runs of a plan on a controller. Workers of a phase start
//! together (each on its own thread, pinned, with its own queue pair), events fire on a
//! timeline measured from the phase start, expectations decide the outcome. An interrupt
//! drains the workers and still returns everything measured.

pub mod events;
pub mod expect;
pub mod metamode;
pub mod steady;
pub mod summary;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::driver::{Controller, ControllerOptions};
use crate::ioworker::{IoWorkerResult, OnReset, RunningWorker, StartGate, code};
use crate::plan::{EventRun, LoadedPlan, PhaseRun};
use crate::power::SharedSwitch;
use crate::transport::SharedTransport;

pub use steady::SteadyStateSummary;
pub use summary::{Check, Device, EventSummary, Identity, Latency, Outcome, PhaseSummary, STANDARD_PERCENTILES, Summary, WorkerSummary};

/// What a running plan tells its caller: progress displays and report writers.
pub trait Observer {
    /// The run starts: `summary` holds no phase run yet (outcome `incomplete`).
    fn started(&mut self, _summary: &Summary) {}
    /// Phase run `index` of `total` starts.
    fn phase_started(&mut self, _run: &PhaseRun, _index: usize, _total: usize) {}
    /// A few times a second while a phase runs.
    fn live(&mut self, _live: &LiveStatus<'_>) {}
    /// A phase run ended; `summary` holds every phase run so far.
    fn phase_done(&mut self, _summary: &Summary) {}
}

/// A closure observes the ends of phase runs.
impl<F: FnMut(&Summary)> Observer for F {
    fn phase_done(&mut self, summary: &Summary) {
        self(summary)
    }
}

/// The state of the running phase.
#[derive(Debug)]
pub struct LiveStatus<'a> {
    /// Label of the phase run.
    pub label: &'a str,
    /// Seconds since the phase started.
    pub elapsed_s: f64,
    /// Planned length, seconds, when every worker has a time.
    pub planned_s: Option<f64>,
    /// Commands completed so far by the phase's workers.
    pub ios: u64,
    /// Commands failed so far.
    pub errors: u64,
}

/// How often the observer hears of a running phase.
const LIVE_EVERY: Duration = Duration::from_millis(200);

/// How often waiting loops look at the interrupt flag.
const TICK: Duration = Duration::from_millis(10);
/// Time between opening the start gate and the phase start, for the workers to wake up.
const GATE_LEAD: Duration = Duration::from_millis(5);

/// What a run needs besides the plan.
#[derive(Debug)]
pub struct RunOptions<'a> {
    /// Seed the I/O streams were derived from (reported).
    pub seed: u64,
    /// Factor applied to every duration (reported).
    pub time_scale: f64,
    /// Set to stop the run (Ctrl-C, SIGTERM): workers are stopped, pending events
    /// skipped, and the summary is marked interrupted.
    pub stop: &'a AtomicBool,
    /// The CPUs this run's workers are pinned to: worker `i` (or the worker with `cpu_id:
    /// i`) to `cpus[i % len]`. Empty: every CPU of the host, worker `i` on CPU `i`. Runs of
    /// several drives on one host get disjoint sets.
    pub cpus: &'a [usize],
}

/// Runs a loaded plan from the start on the controller behind `transport`: brings it up,
/// expands the plan against the controller's own limits (with `seed` overriding the
/// plan's), and runs every phase. A target that is not there or does not come up gives a
/// failed summary that says why, never no summary.
pub fn run_plan(
    plan: &LoadedPlan,
    transport: Result<SharedTransport, String>,
    seed: Option<u64>,
    time_scale: f64,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Summary {
    run_plan_on(plan, transport, None, (seed, time_scale), &[], stop, observer)
}

/// [`run_plan`] with the drive's power switch (`None`: the transport's own, if any).
pub fn run_plan_with(
    plan: &LoadedPlan,
    transport: Result<SharedTransport, String>,
    switch: Option<SharedSwitch>,
    seed: Option<u64>,
    time_scale: f64,
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Summary {
    run_plan_on(plan, transport, switch, (seed, time_scale), &[], stop, observer)
}

/// [`run_plan_with`] with the workers pinned to `cpus` (see [`RunOptions::cpus`]).
pub fn run_plan_on(
    plan: &LoadedPlan,
    transport: Result<SharedTransport, String>,
    switch: Option<SharedSwitch>,
    (seed, time_scale): (Option<u64>, f64),
    cpus: &[usize],
    stop: &AtomicBool,
    observer: &mut dyn Observer,
) -> Summary {
    let seed_used = seed.or(plan.plan.seed).unwrap_or(1);
    let failed = |e: String| Summary { outcome: Outcome::Fail, error: Some(e), ..Summary::start(plan, seed_used, time_scale, "not connected".into()) };
    let transport = match transport {
        Ok(t) => t,
        Err(e) => return failed(format!("the target does not start: {e}")),
    };
    let ctrl = match Controller::new(transport, ControllerOptions::default()) {
        Ok(c) => c,
        Err(e) => return failed(format!("the controller does not come up: {e}")),
    };
    ctrl.set_power_switch(switch);
    // The controller's own limits are the final word.
    let runs = match crate::plan::expand(plan, &crate::plan::Limits::from_controller(&ctrl), seed, time_scale) {
        Ok(r) => r,
        Err(errors) => return failed(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")),
    };
    run(plan, &runs, &ctrl, &RunOptions { seed: seed_used, time_scale, stop, cpus }, observer)
}

/// Runs every phase run in order on `ctrl`; the observer hears of each phase run's start,
/// progress and end (with the summary so far, to keep a report on disk even if the
/// process dies later).
pub fn run(plan: &LoadedPlan, runs: &[PhaseRun], ctrl: &Controller, opts: &RunOptions<'_>, observer: &mut dyn Observer) -> Summary {
    let started = Instant::now();
    let id = ctrl.identify();
    let target = format!("{}, model {}, firmware {}", ctrl.transport().describe(), id.model(), id.firmware());
    let mut s = Summary::start(plan, opts.seed, opts.time_scale, target);
    s.identity.serial = id.serial();
    s.identity.model = id.model();
    s.identity.firmware = id.firmware();
    s.identity.pci_address = ctrl.transport().pci_address().unwrap_or_default();
    s.device = Some(Device {
        transport: ctrl.transport().describe(),
        model: id.model(),
        serial: id.serial(),
        firmware: id.firmware(),
        vid: id.vid,
        namespaces: id.nn,
    });
    let mut asked: Vec<f64> = runs.iter().flat_map(|r| &r.workers).flat_map(|w| w.config.output_percentile_latency.iter().copied()).collect();
    asked.sort_by(f64::total_cmp);
    asked.dedup();
    s.percentiles = asked.into_iter().filter(|p| !STANDARD_PERCENTILES.contains(p)).collect();
    // Until the run ends the summary says `incomplete`, or `fail` once a phase run failed:
    // the last one written is all that is left of a run whose process dies.
    let mut verdict = Outcome::Pass;
    s.outcome = Outcome::Incomplete;
    observer.started(&s);
    // Phases whose rounds ended: their remaining rounds are not run.
    let mut rounds_over = std::collections::BTreeSet::new();
    for (i, pr) in runs.iter().enumerate() {
        if pr.steady.is_some() && rounds_over.contains(&pr.phase) {
            continue;
        }
        if opts.stop.load(Ordering::Acquire) {
            s.phases.push(skipped(pr, started.elapsed().as_secs_f64()));
            continue;
        }
        observer.phase_started(pr, i, runs.len());
        let mut p = run_phase(ctrl, pr, started, opts, &s.percentiles, observer);
        if let Some(st) = &pr.steady
            && round(&mut s.steady_state, pr, st, &mut p)
        {
            rounds_over.insert(pr.phase);
        }
        if p.outcome != Outcome::Pass && verdict == Outcome::Pass {
            verdict = if p.outcome == Outcome::Interrupted { Outcome::Interrupted } else { Outcome::Fail };
        }
        s.phases.push(p);
        s.outcome = if verdict == Outcome::Pass { Outcome::Incomplete } else { verdict };
        s.seconds = started.elapsed().as_secs_f64();
        observer.phase_done(&s);
    }
    let interrupted = opts.stop.load(Ordering::Acquire);
    s.outcome = if interrupted { Outcome::Interrupted } else { verdict };
    s.seconds = started.elapsed().as_secs_f64();
    s.complete = !interrupted;
    s
}

/// Records a run of a steady-state phase: its tracking variable, and at the end of a round
/// the verdict. True when the rounds are over (steady, or `max_rounds` run); then the
/// phase's expectation of steady state is checked and lands on this run.
fn round(all: &mut Vec<steady::SteadyStateSummary>, pr: &PhaseRun, st: &crate::plan::SteadyRun, p: &mut PhaseSummary) -> bool {
    let rule = st.spec.rule();
    let k = match all.iter().position(|x| x.phase == pr.name) {
        Some(k) => k,
        None => {
            all.push(steady::SteadyStateSummary {
                phase: pr.name.clone(),
                cell: st.cell.clone(),
                track: steady::track_name(&st.spec.track),
                rule,
                series: Vec::new(),
                reached: None,
                done: false,
                window: None,
                checks: Vec::new(),
            });
            all.len() - 1
        }
    };
    let e = &mut all[k];
    if st.tracked {
        e.series.push(steady::track_value(p, &st.spec.track));
    }
    if !st.round_end || p.outcome == Outcome::Interrupted {
        return false;
    }
    let v = steady::judge(&e.series, &rule);
    (e.reached, e.window) = (v.reached, v.window);
    e.done = e.reached.is_some() || pr.repeat_index + 1 >= rule.max_rounds;
    if e.done
        && let Some(want) = pr.expect.as_ref().and_then(|x| x.steady_state)
    {
        let actual = match e.reached {
            Some(r) => format!("reached in round {r}"),
            None => format!("not reached in {} rounds", e.series.len()),
        };
        let c = Check { what: "steady_state".into(), expected: if want { "reached" } else { "not reached" }.into(), actual, pass: want == e.reached.is_some() };
        if !c.pass {
            p.outcome = Outcome::Fail;
        }
        e.checks.push(c.clone());
        p.checks.push(c);
    }
    e.done
}

/// The summary of a run that stopped on a panic of its own: the last summary written
/// (`last`, else an empty one), failed and incomplete, with the panic's message.
pub fn crashed(plan: &LoadedPlan, last: Option<Summary>, seed: Option<u64>, time_scale: f64, panic: &(dyn std::any::Any + Send)) -> Summary {
    let mut s = last.unwrap_or_else(|| Summary::start(plan, seed.or(plan.plan.seed).unwrap_or(1), time_scale, "not connected".into()));
    s.outcome = Outcome::Fail;
    s.complete = false;
    s.error = Some(format!("nvplan stopped on an internal error ({}); the phase runs listed are those that ended before it", panic_message(panic)));
    s
}

/// The message a panic carried.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "no message".into())
}

/// The event timeline stopped on a panic: one failed event says so.
fn crashed_timeline(p: &(dyn std::any::Any + Send)) -> EventSummary {
    EventSummary {
        name: "timeline".into(),
        kind: "timeline".into(),
        detail: String::new(),
        planned_s: 0.0,
        actual_s: 0.0,
        late_ms: 0.0,
        duration_ms: 0.0,
        status: None,
        cdw0: None,
        error: Some(format!("the event timeline stopped on an internal error ({}); what its events did is unknown", panic_message(p))),
        allow_failure: false,
        outcome: Outcome::Fail,
    }
}

/// The metamode steps stopped on a panic: one failed step says so.
fn crashed_step(p: &(dyn std::any::Any + Send)) -> metamode::StepSummary {
    metamode::StepSummary {
        index: 0,
        step: "metamode".into(),
        detail: String::new(),
        outcome: Outcome::Fail,
        expected: None,
        actual: None,
        error: Some(format!("the metamode steps stopped on an internal error ({}); what they did is unknown", panic_message(p))),
        duration_ms: 0.0,
    }
}

fn skipped(pr: &PhaseRun, start_s: f64) -> PhaseSummary {
    PhaseSummary {
        name: pr.name.clone(),
        label: pr.label.clone(),
        repeat: pr.repeat_index,
        sweep: pr.sweep.clone(),
        outcome: Outcome::Skipped,
        start_s,
        seconds: 0.0,
        planned_s: pr.duration.map(|d| d.as_secs_f64()),
        checks: Vec::new(),
        events: Vec::new(),
        workers: Vec::new(),
        metamode: Vec::new(),
        report_page: pr.report_page,
    }
}

/// A worker of the phase: running, or a result already (it could not start).
enum Slot {
    Running(RunningWorker),
    Done(Box<IoWorkerResult>),
}

fn failed_start(msg: String) -> IoWorkerResult {
    IoWorkerResult { error: code::INIT_FAIL, error_message: Some(msg), ..Default::default() }
}

fn run_phase(ctrl: &Controller, pr: &PhaseRun, plan_start: Instant, opts: &RunOptions<'_>, asked: &[f64], observer: &mut dyn Observer) -> PhaseSummary {
    let (stop, time_scale) = (opts.stop, opts.time_scale);
    let start_s = plan_start.elapsed().as_secs_f64();
    let gate = Arc::new(StartGate::default());
    // Worker i on the i-th CPU this process may run on (a container's or a job's cpuset).
    let allowed = crate::util::cpus::host_cpus();
    let mut slots = Vec::new();
    let mut cpu_ids = Vec::new();
    for (i, w) in pr.workers.iter().enumerate() {
        let mut cfg = w.config.clone();
        // Every worker thread is pinned: to its cpu_id, or one core each in turn; within
        // the run's own CPUs when it has some.
        cfg.cpu_id = Some(match opts.cpus {
            [] => cfg.cpu_id.unwrap_or(allowed[i % allowed.len()]),
            set => set[cfg.cpu_id.unwrap_or(i) % set.len()],
        });
        cpu_ids.push(cfg.cpu_id);
        let slot = match ctrl.namespace(w.nsid) {
            None => Slot::Done(Box::new(failed_start(format!("the controller has no namespace {}", w.nsid)))),
            Some(ns) => match ns.ioworker(cfg) {
                Ok(iow) => Slot::Running(iow.gated(gate.clone(), w.start_delay).start()),
                Err(e) => Slot::Done(Box::new(failed_start(e.to_string()))),
            },
        };
        slots.push(slot);
    }
    // Every worker is ready (queue pair, buffers): start the clock.
    let t0 = Instant::now() + GATE_LEAD;
    let t0_unix = std::time::SystemTime::now() + GATE_LEAD;
    gate.open(t0);
    let cancel = Arc::new(AtomicBool::new(false));
    let (fired, steps): (Vec<EventSummary>, Vec<metamode::StepSummary>) = std::thread::scope(|sc| {
        let events = sc.spawn(|| timeline(ctrl, &pr.events, t0, &cancel, stop));
        let steps = pr.metamode.as_ref().map(|m| sc.spawn(move || metamode::run(ctrl, m, time_scale, stop)));
        let mut last_live = Instant::now();
        wait_workers(&mut slots, stop, &mut |slots| {
            if last_live.elapsed() < LIVE_EVERY {
                return;
            }
            last_live = Instant::now();
            let (mut ios, mut errors) = (0, 0);
            for s in slots {
                match s {
                    Slot::Running(w) => {
                        ios += w.live().ios.load(Ordering::Relaxed);
                        errors += w.live().errors.load(Ordering::Relaxed);
                    }
                    Slot::Done(r) => {
                        ios += r.io_count();
                        errors += r.error_count;
                    }
                }
            }
            let elapsed_s = Instant::now().saturating_duration_since(t0).as_secs_f64();
            observer.live(&LiveStatus { label: &pr.label, elapsed_s, planned_s: pr.duration.map(|d| d.as_secs_f64()), ios, errors });
        });
        // Events after the last worker still run (unless interrupted).
        loop {
            if events.is_finished() {
                break;
            }
            if stop.load(Ordering::Acquire) {
                cancel.store(true, Ordering::Release);
            }
            std::thread::sleep(TICK);
        }
        // A thread that panicked leaves a failure in the report, never a silent gap.
        let steps = steps.map(|h| h.join().unwrap_or_else(|p| vec![crashed_step(&*p)])).unwrap_or_default();
        (events.join().unwrap_or_else(|p| vec![crashed_timeline(&*p)]), steps)
    });
    let seconds = t0.elapsed().as_secs_f64();
    let results: Vec<IoWorkerResult> = slots
        .into_iter()
        .map(|s| match s {
            Slot::Done(r) => *r,
            Slot::Running(w) => w.close(),
        })
        .collect();
    // A worker stopped by a planned reset or power loss (on_reset: stop) did what the
    // plan asked.
    let stopping =
        fired.iter().find(|e| (e.kind == "reset" || e.kind == "power_cycle" || e.kind == "pcie") && e.outcome != Outcome::Skipped).map(|e| e.name.clone());
    let mut workers = Vec::new();
    for ((w, r), cpu) in pr.workers.iter().zip(results).zip(cpu_ids) {
        let lba_size = ctrl.namespace(w.nsid).map_or(512, |n| n.lba_size());
        let m = expect::Measured { result: &r, lba_size };
        let stopped_by = stopping.as_deref().filter(|_| w.config.on_reset == OnReset::Stop);
        let checks = expect::worker(&m, w.expect.as_ref(), stopped_by);
        let (iops, mbps) = (r.iops(), m.mbps());
        let io_start = std::time::UNIX_EPOCH + Duration::new(r.test_start_sec, r.test_start_nsec);
        let start_s = if r.test_start_sec == 0 { 0.0 } else { io_start.duration_since(t0_unix).map_or(0.0, |d| d.as_secs_f64()) };
        let nsze = ctrl.namespace(w.nsid).map_or(u64::MAX, |n| n.nlba());
        workers.push(WorkerSummary {
            name: w.name.clone(),
            nsid: w.nsid,
            qdepth: w.config.qdepth,
            regions: w.config.region_start.iter().zip(&w.config.region_end).map(|(&s, &e)| (s, e.min(nsze))).collect(),
            cpu_id: cpu,
            outcome: Outcome::of(checks.iter().all(|c| c.pass)),
            start_s,
            latency: Latency::of_result(&r, asked),
            checks,
            iops,
            mbps,
            result: r,
        });
    }
    let checks = match &pr.expect {
        Some(e) => {
            let ms: Vec<expect::Measured<'_>> = workers
                .iter()
                .zip(&pr.workers)
                .map(|(ws, w)| expect::Measured { result: &ws.result, lba_size: ctrl.namespace(w.nsid).map_or(512, |n| n.lba_size()) })
                .collect();
            expect::phase(&ms, e)
        }
        None => Vec::new(),
    };
    let ok = checks.iter().all(|c| c.pass)
        && workers.iter().all(|w| w.outcome == Outcome::Pass)
        && fired.iter().all(|e| e.outcome != Outcome::Fail || e.allow_failure)
        && steps.iter().all(|s| s.outcome != Outcome::Fail);
    let outcome = if stop.load(Ordering::Acquire) { Outcome::Interrupted } else { Outcome::of(ok) };
    PhaseSummary {
        name: pr.name.clone(),
        label: pr.label.clone(),
        repeat: pr.repeat_index,
        sweep: pr.sweep.clone(),
        outcome,
        start_s,
        seconds,
        planned_s: pr.duration.map(|d| d.as_secs_f64()),
        checks,
        events: fired,
        workers,
        metamode: steps,
        report_page: pr.report_page,
    }
}

/// Waits for every worker, stopping them all when asked to; `tick` sees them every
/// turn.
fn wait_workers(slots: &mut [Slot], stop: &AtomicBool, tick: &mut dyn FnMut(&[Slot])) {
    let mut stopped = false;
    loop {
        tick(slots);
        let mut running = false;
        for s in slots.iter_mut() {
            if let Slot::Running(w) = s {
                match w.wait_timeout(Duration::ZERO) {
                    Some(r) => *s = Slot::Done(Box::new(r)),
                    None => running = true,
                }
            }
        }
        if !running {
            return;
        }
        if !stopped && stop.load(Ordering::Acquire) {
            stopped = true;
            for s in slots.iter() {
                if let Slot::Running(w) = s {
                    w.stop();
                }
            }
        }
        std::thread::sleep(TICK);
    }
}

/// Fires the events at their times from `t0` (sleeping, then spinning the last
/// millisecond so the firing time is accurate), and records when each really fired.
fn timeline(ctrl: &Controller, evs: &[EventRun], t0: Instant, cancel: &AtomicBool, stop: &AtomicBool) -> Vec<EventSummary> {
    let mut out = Vec::new();
    for e in evs {
        let (kind, detail) = events::describe(e);
        let due = t0 + e.at;
        let mut summary = EventSummary {
            name: e.name.clone(),
            kind: kind.into(),
            detail,
            planned_s: e.at.as_secs_f64(),
            actual_s: 0.0,
            late_ms: 0.0,
            duration_ms: 0.0,
            status: None,
            cdw0: None,
            error: None,
            allow_failure: e.allow_failure,
            outcome: Outcome::Skipped,
        };
        let halted = || cancel.load(Ordering::Acquire) || stop.load(Ordering::Acquire);
        loop {
            let now = Instant::now();
            if halted() || now >= due {
                break;
            }
            let left = due - now;
            if left > Duration::from_millis(2) {
                std::thread::sleep((left - Duration::from_millis(1)).min(TICK));
            } else {
                std::hint::spin_loop();
            }
        }
        if halted() {
            out.push(summary);
            continue;
        }
        let fired = Instant::now();
        let done = events::perform(ctrl, e);
        summary.actual_s = (fired - t0).as_secs_f64();
        summary.late_ms = (summary.actual_s - summary.planned_s) * 1000.0;
        summary.duration_ms = done.took.as_secs_f64() * 1000.0;
        summary.status = done.status;
        summary.cdw0 = done.cdw0;
        summary.error = done.error;
        if let Some(d) = done.detail {
            summary.detail = format!("{}; {d}", summary.detail);
        }
        summary.outcome = Outcome::of(done.ok);
        out.push(summary);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_gives_a_failed_incomplete_summary_with_its_message() {
        let plan = crate::plan::load_str("p.yaml", "name: t\nphases: [{name: a, ioworkers: [{io_count: 1}]}]\n").unwrap();
        let payload: Box<dyn std::any::Any + Send> = Box::new(String::from("index out of bounds"));
        let s = crashed(&plan, None, Some(5), 1.0, &*payload);
        assert_eq!((s.outcome, s.complete, s.seed, s.phases.len()), (Outcome::Fail, false, 5, 0));
        assert_eq!(s.error.as_deref(), Some("nvplan stopped on an internal error (index out of bounds); the phase runs listed are those that ended before it"));
        let mut last = Summary::start(&plan, 1, 1.0, "sim".into());
        last.phases.push(skipped(&crate::plan::expand(&plan, &crate::plan::Limits::from_sim(&Default::default()), None, 1.0).unwrap()[0], 0.0));
        let s = crashed(&plan, Some(last), None, 1.0, &*payload);
        assert_eq!((s.outcome, s.phases.len(), s.target.as_str()), (Outcome::Fail, 1, "sim"), "what was written before is kept");
    }

    #[test]
    fn a_thread_that_panicked_leaves_a_failed_event_or_step() {
        let p = std::thread::spawn(|| panic!("timeline {}", 7)).join().unwrap_err();
        let e = crashed_timeline(&*p);
        assert_eq!(e.outcome, Outcome::Fail);
        assert!(!e.allow_failure);
        assert_eq!(e.error.as_deref(), Some("the event timeline stopped on an internal error (timeline 7); what its events did is unknown"));
        let p = std::thread::spawn(|| panic!("step")).join().unwrap_err();
        let m = crashed_step(&*p);
        assert_eq!((m.outcome, m.error.as_deref()), (Outcome::Fail, Some("the metamode steps stopped on an internal error (step); what they did is unknown")));
    }
}
