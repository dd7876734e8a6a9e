//! Expansion of a checked plan for one controller: units converted with the namespace's LBA
//! size, the device's limits checked, repeats and sweeps unrolled into runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::check::lba_random;
use super::error::{PlanError, tidy};
use super::limits::Limits;
use super::load::LoadedPlan;
use super::model::{AdminSpec, EventSpec, ExpectSpec, IoSizeSpec, LbaValue, OnResetSpec, OneOrMany, PhaseSpec, Plan, ResetSpec, WorkerSpec};
use super::sweep::{self, Combo, Where, label_value};
use super::units::{bytes, duration, lbas, opcode, scale, to_lbas};
use super::yaml::Seg;
use crate::ioworker::{IoSize, IoWorkerConfig, OnReset, SeqIo};
use crate::util::rng::SplitMix64;

/// One run of a phase: a repeat, with one combination of sweep values.
#[derive(Clone, Debug)]
pub struct PhaseRun {
    /// Index of the phase in the plan.
    pub phase: usize,
    /// Name of the phase.
    pub name: String,
    /// Unique among the plan's runs: the name, with `#N` for repeats and `key=value` for
    /// sweeps (`writes#2 io_size=8`).
    pub label: String,
    /// 0-based repeat.
    pub repeat_index: u32,
    /// This run's sweep values.
    pub sweep: BTreeMap<String, Value>,
    /// The workers, in plan order.
    pub workers: Vec<WorkerRun>,
    /// The events, by `at`.
    pub events: Vec<EventRun>,
    /// Expectations over all workers.
    pub expect: Option<ExpectSpec>,
    /// `max(start_delay + time)` over the workers when every one has a time.
    pub duration: Option<Duration>,
    /// Metamode steps.
    pub metamode: Option<super::metamode::MetamodeSpec>,
    /// Rounds until steady state, when the phase runs so.
    pub steady: Option<SteadyRun>,
    /// The PTS page the phase asks for (`report_page`).
    pub report_page: Option<super::model::ReportPage>,
}

/// The place of a run in the rounds of a steady-state phase.
#[derive(Clone, Debug)]
pub struct SteadyRun {
    /// The rule and what it tracks.
    pub spec: super::model::SteadyStateSpec,
    /// This run is the tracked cell of its round.
    pub tracked: bool,
    /// This run ends its round: steady state is judged after it.
    pub round_end: bool,
    /// Label of the tracked cell (its sweep values), for reports.
    pub cell: String,
}

/// One worker of a run.
#[derive(Clone, Debug)]
pub struct WorkerRun {
    /// Name as given, or `w0`, `w1`, ...
    pub name: String,
    /// The worker as written, with this run's sweep values and seed in place.
    pub spec: WorkerSpec,
    /// Namespace.
    pub nsid: u32,
    /// Parameters in the worker's terms (LBAs, durations scaled, seed derived);
    /// `start_time` is `None`: the executor starts the worker `start_delay` after the phase.
    pub config: IoWorkerConfig,
    /// Delay from the start of the phase (`start_time`, scaled).
    pub start_delay: Duration,
    /// Expectations of this worker.
    pub expect: Option<ExpectSpec>,
    /// Where the worker is written, for errors found while it runs.
    pub path: Vec<Seg>,
}

/// A timed event of a run.
#[derive(Clone, Debug)]
pub struct EventRun {
    /// From the start of the phase (scaled).
    pub at: Duration,
    /// Name in reports: as given, or the kind of event.
    pub name: String,
    /// What happens.
    pub action: EventAction,
    /// A failure of the event does not fail the phase.
    pub allow_failure: bool,
    /// Where the event is written.
    pub path: Vec<Seg>,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq)]
pub enum EventAction {
    /// A reset.
    Reset(ResetSpec),
    /// A power cycle; `dirty` skips the shutdown notification.
    PowerCycle {
        /// No shutdown notification first.
        dirty: bool,
        /// How long power stays off (scaled).
        off: Duration,
    },
    /// A PCIe power management change.
    Pcie(PcieAction),
    /// An admin command.
    Admin(AdminSpec),
}

/// What a `pcie` event changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcieAction {
    /// D-state: 0 (D0), or 3 (D3hot) held for `hold` (scaled), then D0 again.
    PowerState {
        /// PowerState.
        state: u8,
        /// How long D3hot lasts.
        hold: Duration,
    },
    /// ASPM Control value (0 off, 1 L0s, 2 L1, 3 both).
    Aspm(u8),
}

/// The seed of one worker of one run, mixed from the plan's seed and the worker's place
/// (a worker's own `seed:` wins over it).
pub fn derive_seed(plan_seed: u64, phase: usize, run: usize, worker: usize) -> u64 {
    let mut h = SplitMix64::new(plan_seed).next_u64();
    for v in [phase as u64, run as u64, worker as u64] {
        h = SplitMix64::new(h ^ v).next_u64();
    }
    h
}

/// Checks the plan against the controller's limits and unrolls it into runs; every error
/// of the plan at once. `seed` overrides the plan's (default 1); `time_scale` multiplies
/// every duration (time, start_time, event times, power-off times, io_sequence send times).
pub fn expand(plan: &LoadedPlan, limits: &Limits, seed: Option<u64>, time_scale: f64) -> Result<Vec<PhaseRun>, Vec<PlanError>> {
    if !(time_scale.is_finite() && time_scale > 0.0) {
        return Err(vec![plan.error(&[], "time_scale", format!("{time_scale} is not a positive factor"))]);
    }
    let plan_seed = seed.or(plan.plan.seed).unwrap_or(1);
    let mut errors = Vec::new();
    let mut runs = Vec::new();
    for (p, ph) in plan.plan.phases.iter().enumerate() {
        let path = vec![Seg::Key("phases".into()), Seg::Index(p)];
        match expand_phase(plan, limits, ph, p, &path, plan_seed, time_scale) {
            Ok(r) => runs.extend(r),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(runs)
    } else {
        tidy(&mut errors);
        Err(errors)
    }
}

fn expand_phase(
    lp: &LoadedPlan,
    limits: &Limits,
    ph: &PhaseSpec,
    p: usize,
    path: &[Seg],
    plan_seed: u64,
    time_scale: f64,
) -> Result<Vec<PhaseRun>, Vec<PlanError>> {
    let written = super::pts::written_out(lp, limits, ph, path)?;
    let ph = &written;
    let mut errors = Vec::new();
    if ph.ioworkers.len() > limits.io_queues as usize {
        errors.push(lp.key_error(
            path,
            "ioworkers",
            "ioworkers",
            format!(
                "{} workers need {} I/O queue pairs; the controller grants {}: run at most that many workers in a phase",
                ph.ioworkers.len(),
                ph.ioworkers.len(),
                limits.io_queues
            ),
        ));
    }
    let runs = sweep::count(ph.sweep.as_ref()).saturating_mul(ph.rounds() as u64);
    if runs > sweep::MAX_RUNS {
        errors.push(lp.error(path, "repeat", format!("{runs} runs of this phase; at most {}: split the phase", sweep::MAX_RUNS)));
        return Err(errors);
    }
    let events = events(ph, path, time_scale);
    if limits.power_switch.is_none() {
        errors.extend(events.iter().filter_map(|e| switchless(lp, e)));
    }
    let combos = sweep::combinations(ph.sweep.as_ref(), path);
    let tracked = ph.steady_state.as_ref().and_then(|s| super::steady::cell_index(s.cell.as_ref(), &combos));
    let n_combos = combos.len();
    // Workers of each combination; repeats only change seeds.
    let mut built: Vec<(Combo, Vec<WorkerRun>)> = Vec::new();
    for combo in combos {
        let mut workers = Vec::new();
        for (j, w) in ph.ioworkers.iter().enumerate() {
            let at = Where { worker: [path, &[Seg::Key("ioworkers".into()), Seg::Index(j)]].concat(), combo: &combo };
            let w = match sweep::apply(w, &combo) {
                Ok(w) => w,
                Err(m) => {
                    errors.push(lp.error(&at.worker, "sweep", m));
                    continue;
                }
            };
            match worker(lp, limits, &w, &at, time_scale) {
                Ok((nsid, config, start_delay)) => workers.push(WorkerRun {
                    name: w.name.clone().unwrap_or_else(|| format!("w{j}")),
                    spec: w.clone(),
                    nsid,
                    config,
                    start_delay,
                    expect: w.expect.clone(),
                    path: at.worker.clone(),
                }),
                Err(e) => errors.extend(e),
            }
        }
        built.push((combo, workers));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let repeat = ph.rounds().max(1);
    let mut runs = Vec::new();
    for r in 0..repeat {
        // The last round takes the workers built rather than a copy: a plan near the limits
        // on runs holds one set of them, not two.
        let round = if r + 1 == repeat { std::mem::take(&mut built) } else { built.clone() };
        for (c, (combo, workers)) in round.into_iter().enumerate() {
            let k = runs.len();
            let steady = ph.steady_state.as_ref().map(|spec| SteadyRun {
                spec: spec.clone(),
                tracked: Some(c) == tracked,
                round_end: c + 1 == n_combos,
                cell: tracked.and_then(|t| combos_label(ph, t)).unwrap_or_default(),
            });
            let mut label = ph.name.clone();
            if repeat > 1 {
                label += &format!("#{}", r + 1);
            }
            for (key, (v, _)) in &combo.values {
                label += &format!(" {key}={}", label_value(v));
            }
            let workers: Vec<WorkerRun> = workers
                .into_iter()
                .enumerate()
                .map(|(j, mut w)| {
                    w.config.seed = ph.ioworkers[j].seed.unwrap_or_else(|| derive_seed(plan_seed, p, k, j));
                    w.spec.seed = Some(w.config.seed);
                    w
                })
                .collect();
            let duration = if workers.is_empty() {
                None
            } else {
                workers.iter().map(|w| w.config.time.map(|t| w.start_delay + t)).collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max())
            };
            runs.push(PhaseRun {
                phase: p,
                name: ph.name.clone(),
                label,
                repeat_index: r,
                sweep: combo.plain(),
                workers,
                events: events.clone(),
                expect: ph.expect.clone(),
                duration,
                metamode: ph.metamode.clone(),
                steady,
                report_page: ph.report_page,
            });
        }
    }
    Ok(runs)
}

/// `key=value ...` of combination `i` of the phase's sweep.
fn combos_label(ph: &PhaseSpec, i: usize) -> Option<String> {
    let c = sweep::combinations(ph.sweep.as_ref(), &[]).into_iter().nth(i)?;
    Some(c.values.iter().map(|(k, (v, _))| format!("{k}={}", label_value(v))).collect::<Vec<_>>().join(" "))
}

/// The refusal of a power_cycle event on a target without a power switch.
fn switchless(lp: &LoadedPlan, e: &EventRun) -> Option<PlanError> {
    matches!(e.action, EventAction::PowerCycle { .. }).then(|| {
        lp.key_error(
            &e.path,
            "power_cycle",
            "power_cycle",
            format!("a power cycle needs a power switch, and the target has none: {}", crate::power::HOW_TO_DECLARE),
        )
    })
}

/// Every power_cycle event of the plan, refused: for a drive declared without a power
/// switch, found before the drive is opened.
pub fn power_events_without_switch(lp: &LoadedPlan) -> Vec<PlanError> {
    let mut errors = Vec::new();
    for (p, ph) in lp.plan.phases.iter().enumerate() {
        let path = [Seg::Key("phases".into()), Seg::Index(p)];
        errors.extend(events(ph, &path, 1.0).iter().filter_map(|e| switchless(lp, e)));
    }
    errors
}

fn events(ph: &PhaseSpec, path: &[Seg], time_scale: f64) -> Vec<EventRun> {
    let mut out: Vec<EventRun> =
        ph.events.iter().enumerate().filter_map(|(k, ev)| event(ev, [path, &[Seg::Key("events".into()), Seg::Index(k)]].concat(), time_scale)).collect();
    out.sort_by_key(|e| e.at);
    out
}

fn event(ev: &EventSpec, path: Vec<Seg>, time_scale: f64) -> Option<EventRun> {
    let (name, action) = if let Some(r) = ev.reset {
        ("reset".to_string(), EventAction::Reset(r))
    } else if let Some(pc) = &ev.power_cycle {
        let off = pc.off.as_ref().and_then(|o| duration(o).ok()).unwrap_or(Duration::from_secs(1));
        ("power_cycle".to_string(), EventAction::PowerCycle { dirty: pc.dirty.unwrap_or(true), off: scale(off, time_scale) })
    } else if let Some(p) = &ev.pcie {
        use super::model::{AspmSpec, DState};
        let action = match (p.power_state, p.aspm) {
            (Some(s), _) => {
                let hold = p.hold.as_ref().and_then(|h| duration(h).ok()).unwrap_or(Duration::from_millis(100));
                PcieAction::PowerState { state: if s == DState::D3hot { 3 } else { 0 }, hold: scale(hold, time_scale) }
            }
            (None, Some(a)) => PcieAction::Aspm(match a {
                AspmSpec::Off => 0,
                AspmSpec::L0s => 1,
                AspmSpec::L1 => 2,
                AspmSpec::L0sL1 => 3,
            }),
            (None, None) => return None,
        };
        ("pcie".to_string(), EventAction::Pcie(action))
    } else {
        let a = ev.admin.clone()?;
        let name = serde_json::to_value(a.command).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "admin".into());
        (name, EventAction::Admin(a))
    };
    Some(EventRun {
        at: scale(duration(&ev.at).ok()?, time_scale),
        name: ev.name.clone().unwrap_or(name),
        action,
        allow_failure: ev.allow_failure.unwrap_or(false),
        path,
    })
}

/// One worker: units converted, device limits checked, then the worker's own validation.
fn worker(lp: &LoadedPlan, limits: &Limits, w: &WorkerSpec, at: &Where, time_scale: f64) -> Result<(u32, IoWorkerConfig, Duration), Vec<PlanError>> {
    let mut errors: Vec<PlanError> = Vec::new();
    let mut err = |field: &str, rest: &[Seg], m: String| errors.push(lp.error(&at.path(field, rest), field, m));
    let nsid = w.nsid.unwrap_or(1);
    let Some(&(nsze, lba)) = limits.namespaces.get(&nsid) else {
        let have = limits.namespaces.keys().map(u32::to_string).collect::<Vec<_>>().join(", ");
        err("nsid", &[], format!("namespace {nsid} does not exist; the controller has namespace(s) {have}"));
        return Err(errors);
    };
    let max_lbas = (limits.max_transfer / lba.max(1)) as u64;
    // A size in LBAs, checked against MDTS.
    let size = |err: &mut dyn FnMut(&str, &[Seg], String), v: &LbaValue, rest: &[Seg]| -> Option<u32> {
        let n = match to_lbas(v, lba) {
            Ok(n) => n,
            Err(m) => {
                err("io_size", rest, m);
                return None;
            }
        };
        if n > max_lbas {
            err(
                "io_size",
                rest,
                format!(
                    "{} of {lba} bytes ({}) is above the controller's largest transfer of {} (MDTS): use at most {}",
                    lbas(n),
                    bytes(n.saturating_mul(lba as u64)),
                    bytes(limits.max_transfer as u64),
                    lbas(max_lbas)
                ),
            );
            return None;
        }
        u32::try_from(n).ok()
    };
    let io_size = match &w.io_size {
        None => Some(IoSize::Fixed(8)),
        Some(IoSizeSpec::One(v)) => size(&mut err, v, &[]).map(IoSize::Fixed),
        Some(IoSizeSpec::List(v)) => {
            v.iter().enumerate().map(|(i, s)| size(&mut err, s, &[Seg::Index(i)])).collect::<Vec<_>>().into_iter().collect::<Option<Vec<_>>>().map(IoSize::List)
        }
        Some(IoSizeSpec::Weighted(m)) => {
            let mut out: Vec<(u32, u32)> = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            let mut ok = true;
            for (k, &wt) in m {
                match size(&mut err, &LbaValue::Text(k.clone()), &[Seg::Key(k.clone())]) {
                    Some(n) if !seen.insert(n) => {
                        err("io_size", &[Seg::Key(k.clone())], format!("`{k}` is {} again; give each size once", lbas(n as u64)));
                        ok = false;
                    }
                    Some(n) => out.push((n, wt)),
                    None => ok = false,
                }
            }
            out.sort_unstable();
            ok.then_some(IoSize::Weighted(out))
        }
    };
    let mut lbas_of = |field: &str, rest: &[Seg], v: &LbaValue| match to_lbas(v, lba) {
        Ok(n) => Some(n),
        Err(m) => {
            err(field, rest, m);
            None
        }
    };
    let list = |v: &OneOrMany<LbaValue>, i: usize| if matches!(v, OneOrMany::Many(_)) { vec![Seg::Index(i)] } else { vec![] };
    let mut many = |field: &str, v: &Option<OneOrMany<LbaValue>>| -> Option<Vec<u64>> {
        let v = v.as_ref()?;
        v.to_vec().iter().enumerate().map(|(i, x)| lbas_of(field, &list(v, i), x)).collect::<Vec<_>>().into_iter().collect()
    };
    let lba_align: Vec<u32> = many("lba_align", &w.lba_align).unwrap_or_default().into_iter().map(|a| u32::try_from(a).unwrap_or(u32::MAX)).collect();
    // Written and readable; a value that is not was reported already.
    let (starts, ends) = (many("region_start", &w.region_start), many("region_end", &w.region_end));
    let region_start = starts.clone().unwrap_or_else(|| vec![0]);
    let region_end = ends.clone().unwrap_or_else(|| vec![u64::MAX]);
    let lba_count = w.lba_count.as_ref().and_then(|v| lbas_of("lba_count", &[], v)).unwrap_or(0);
    let lba_start = w.lba_start.as_ref().and_then(|v| lbas_of("lba_start", &[], v));
    if let (Some(v), Some(ends)) = (&w.region_end, &ends) {
        for (i, &e) in ends.iter().enumerate() {
            if e > nsze {
                err(
                    "region_end",
                    &list(v, i),
                    format!("{e:#x} is beyond the end of namespace {nsid} ({nsze:#x} LBAs); use at most {nsze:#x}, or leave region_end out"),
                );
            }
        }
    }
    if let (Some(v), Some(starts)) = (&w.region_start, &starts) {
        for (i, &s) in starts.iter().enumerate() {
            if s >= nsze {
                err("region_start", &list(v, i), format!("{s:#x} is beyond the end of namespace {nsid} ({nsze:#x} LBAs)"));
            }
        }
    }
    if let Some(s) = lba_start
        && s >= nsze
    {
        err("lba_start", &[], format!("{s:#x} is beyond the end of namespace {nsid} ({nsze:#x} LBAs)"));
    }
    let qdepth = w.qdepth.unwrap_or(63);
    if qdepth as u64 + 1 > limits.max_queue_entries as u64 {
        let m = limits.max_queue_entries;
        err(
            "qdepth",
            &[],
            format!("{qdepth} needs a queue of {} entries; the controller allows {m} (CAP.MQES+1): use at most {}", qdepth as u64 + 1, m.saturating_sub(1)),
        );
    }
    if let Some(c) = w.cpu_id
        && c >= limits.cpus
    {
        err("cpu_id", &[], format!("CPU {c} is beyond this host's {} CPUs: use 0 to {}", limits.cpus, limits.cpus.saturating_sub(1)));
    }
    if w.sgl_percentage.unwrap_or(0) > 0 && !limits.sgl {
        err(
            "sgl_percentage",
            &[],
            "the controller does not support SGLs (Identify Controller SGLS is 0): use sgl_percentage: 0, or a target with SGLs (sim:sgl=on)".into(),
        );
    }
    let io_sequence = w.io_sequence.as_ref().map(|seq| {
        seq.iter()
            .enumerate()
            .map(|(i, &(slba, nlb, opcode, t))| {
                if slba.checked_add(nlb as u64).is_none_or(|e| e > nsze) {
                    err("io_sequence", &[Seg::Index(i)], format!("LBAs {slba:#x}+{nlb} leave namespace {nsid} ({nsze:#x} LBAs)"));
                } else if nlb as u64 > max_lbas {
                    err(
                        "io_sequence",
                        &[Seg::Index(i), Seg::Index(1)],
                        format!("{} is above the controller's largest transfer of {} (MDTS)", lbas(nlb as u64), bytes(limits.max_transfer as u64)),
                    );
                }
                SeqIo { slba, nlb, opcode, time_sent_us: (t as f64 * time_scale).round() as u64 }
            })
            .collect::<Vec<_>>()
    });
    let op_percentage = w.op_percentage.as_ref().map(|m| m.iter().filter_map(|(k, &v)| Some((opcode(k).ok()?, v))).collect::<Vec<_>>());
    let dur = |v: &Option<super::model::DurationValue>| v.as_ref().and_then(|d| duration(d).ok());
    let time = dur(&w.time).filter(|t| !t.is_zero()).map(|t| scale(t, time_scale));
    let start_delay = dur(&w.start_time).map(|t| scale(t, time_scale)).unwrap_or_default();
    let Some(io_size) = io_size else { return Err(errors) };
    if !errors.is_empty() {
        return Err(errors);
    }
    let d = IoWorkerConfig::default();
    let config = IoWorkerConfig {
        io_size,
        lba_align,
        time,
        io_count: w.io_count.unwrap_or(0),
        lba_count,
        lba_random: lba_random(w.lba_random.as_ref()).unwrap_or(d.lba_random),
        lba_start,
        lba_step: w.lba_step,
        start_time: None,
        read_percentage: w.read_percentage.unwrap_or(d.read_percentage),
        op_percentage,
        sgl_percentage: w.sgl_percentage.unwrap_or(0),
        qdepth,
        qprio: w.qprio.unwrap_or(0),
        region_start,
        region_end,
        iops: w.iops.unwrap_or(0),
        io_flags: w.io_flags.unwrap_or(0),
        distribution: w.distribution.clone(),
        ptype: w.ptype.unwrap_or(d.ptype),
        pvalue: w.pvalue.unwrap_or(d.pvalue),
        io_sequence,
        slow_latency: w.slow_latency.as_ref().and_then(|v| super::units::slow_latency(v).ok()).unwrap_or(d.slow_latency),
        exit_on_error: w.exit_on_error.unwrap_or(d.exit_on_error),
        verify_disable: w.verify_disable.unwrap_or(false),
        cpu_id: w.cpu_id,
        output_io_per_second: w.output_io_per_second.unwrap_or(false),
        output_percentile_latency: w.output_percentile_latency.clone().unwrap_or_default(),
        output_percentile_latency_opcode: w.output_percentile_latency_opcode,
        output_cmdlog_list: w.output_cmdlog_list.unwrap_or(0),
        cmdlog_error_only: w.cmdlog_error_only.unwrap_or(false),
        seed: 0,
        on_reset: match w.on_reset {
            Some(OnResetSpec::Resume) => OnReset::Resume,
            _ => OnReset::Stop,
        },
    };
    // Everything else the worker itself would refuse, at the parameter it names.
    if let Err(e) = config.resolve(nsze, limits.max_queue_entries) {
        return Err(vec![lp.error(&at.path(e.field, &[]), e.field, e.message)]);
    }
    Ok((nsid, config, start_delay))
}

/// The plan as it ran: one phase per run (repeats and sweeps unrolled, named by their
/// labels), the plan's seed and every worker's own seed written out. Loading it again
/// runs the same I/O.
pub fn resolved(plan: &LoadedPlan, runs: &[PhaseRun], seed: u64) -> Plan {
    let phases = runs
        .iter()
        .map(|r| {
            let ph = &plan.plan.phases[r.phase];
            PhaseSpec {
                name: r.label.clone(),
                repeat: None,
                sweep: None,
                // Every round as a phase of its own: the resolved plan runs them all.
                steady_state: None,
                // The preconditioning worker and the active range are in the workers now.
                precondition: None,
                active_range: None,
                expect: ph.expect.clone().map(|e| ExpectSpec { steady_state: None, ..e }),
                ioworkers: r.workers.iter().map(|w| WorkerSpec { name: Some(w.name.clone()), ..w.spec.clone() }).collect(),
                ..ph.clone()
            }
        })
        .collect();
    Plan { seed: Some(seed), phases, ..plan.plan.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load_str;
    use crate::sim::SimConfig;

    fn limits(opts: &str) -> Limits {
        Limits::from_sim(&SimConfig::parse_options(opts).unwrap())
    }

    fn errors(doc: &str, opts: &str) -> Vec<String> {
        let p = load_str("p.yaml", doc).unwrap();
        expand(&p, &limits(opts), None, 1.0).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn seeds_mix_every_input_and_repeat() {
        let s = derive_seed(1, 0, 0, 0);
        assert_eq!(s, derive_seed(1, 0, 0, 0));
        let others = [derive_seed(2, 0, 0, 0), derive_seed(1, 1, 0, 0), derive_seed(1, 0, 1, 0), derive_seed(1, 0, 0, 1), derive_seed(1, 1, 1, 0)];
        for o in others {
            assert_ne!(s, o);
        }
        assert_ne!(derive_seed(1, 1, 0, 0), derive_seed(1, 0, 1, 0), "the position of a number matters");
    }

    #[test]
    fn device_errors_of_a_sweep_combination_point_at_the_sweep_value() {
        let doc = "name: t\nphases:\n  - name: a\n    sweep:\n      qdepth: [16, 5000]\n      io_size: [4KiB, 6KiB]\n    ioworkers: [{time: 1}]\n";
        assert_eq!(
            errors(doc, "ns=1GiB,lba=4096"),
            [
                "p.yaml:5:20: qdepth: 5000 needs a queue of 5001 entries; the controller allows 4096 (CAP.MQES+1): use at most 4095",
                "p.yaml:6:23: io_size: 6 KiB is not a whole number of 4096-byte LBAs; use 4 KiB (1 LBA) or 8 KiB (2 LBAs)",
            ]
        );
    }

    #[test]
    fn units_convert_with_each_namespaces_lba_size() {
        let doc = "name: t\nphases:\n  - name: a\n    ioworkers:\n      - {nsid: 1, io_size: 4KiB, lba_count: 1MiB, time: 1}\n      - {nsid: 2, io_size: 4KiB, region_end: 1MiB, time: 1}\n";
        let p = load_str("p.yaml", doc).unwrap();
        let runs = expand(&p, &limits("ns=1GiB,lba=4096,ns=1GiB,lba=512"), None, 1.0).unwrap();
        let (a, b) = (&runs[0].workers[0].config, &runs[0].workers[1].config);
        assert_eq!((a.io_size.clone(), a.lba_count), (IoSize::Fixed(1), 256));
        assert_eq!((b.io_size.clone(), b.region_end.clone()), (IoSize::Fixed(8), vec![2048]));
        assert_eq!(runs[0].label, "a", "one run keeps the phase name");
    }

    #[test]
    fn the_workers_own_validation_points_at_the_parameter_it_names() {
        let doc = "name: t\nphases:\n  - name: a\n    ioworkers:\n      - {lba_random: false, io_size: 8, region_end: 100, lba_step: 16}\n";
        let e = errors(doc, "");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("p.yaml:5:68: lba_step: a single pass over the region needs lba_step equal to io_size"), "{e:?}");
    }

    #[test]
    fn queue_count_cpu_sgl_and_namespace_limits_are_checked() {
        let doc = "name: t\nphases:\n  - name: a\n    ioworkers:\n      - {time: 1, sgl_percentage: 10, cpu_id: 1000000}\n      - {time: 1, nsid: 3}\n";
        let e = errors(doc, "queues=1,sgl=off");
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("p.yaml:4:5: ioworkers: 2 workers need 2 I/O queue pairs; the controller grants 1"), "{e:?}");
        assert!(e[1].starts_with("p.yaml:5:35: sgl_percentage: the controller does not support SGLs"), "{e:?}");
        assert!(e[2].starts_with("p.yaml:5:47: cpu_id: CPU 1000000 is beyond this host's"), "{e:?}");
        assert!(e[3].starts_with("p.yaml:6:25: nsid: namespace 3 does not exist; the controller has namespace(s) 1"), "{e:?}");
    }

    #[test]
    fn a_time_scale_that_is_not_positive_is_refused() {
        let p = load_str("p.yaml", "name: t\nphases: [{name: a, ioworkers: [{time: 1}]}]\n").unwrap();
        assert!(expand(&p, &limits(""), None, 0.0).is_err());
        assert!(expand(&p, &limits(""), None, f64::NAN).is_err());
        assert_eq!(expand(&p, &limits(""), None, 2.0).unwrap()[0].duration, Some(Duration::from_secs(2)));
    }
}
