//! Static checks of a typed plan: everything that needs no device. Every problem is
//! reported at the value it is about; none stops the others from being found.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use super::error::{PlanError, suggest};
use super::load::{LoadedPlan, diagnose_worker_value};
use super::model::{AdminCommand, AdminSpec, EventSpec, ExpectSpec, IoSizeSpec, LbaValue, OneOrMany, PhaseSpec, RandomSpec, TargetSpec, WorkerSpec};
use super::sweep::{self, Combo, MAX_RUNS, SWEEPABLE, Where};
use super::units::{Amount, amount, duration, fmt_duration, opcode, parse_status};
use super::yaml::Seg;

/// Pattern types of the data generator.
pub(crate) const PTYPES: [u32; 5] = [0, 32, 0xBEEF, 0x1234, 0x4321];

/// Every static problem of the plan.
pub(crate) fn check(lp: &LoadedPlan) -> Vec<PlanError> {
    let mut c = Checker { lp, errors: Vec::new() };
    c.plan();
    c.errors
}

fn key(k: &str) -> Seg {
    Seg::Key(k.into())
}

fn join(base: &[Seg], rest: &[Seg]) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.extend_from_slice(rest);
    p
}

/// A stop rule and the phase duration need the worker's `time`; 0 means no limit.
pub(crate) fn worker_time(w: &WorkerSpec) -> Option<Duration> {
    w.time.as_ref().and_then(|t| duration(t).ok()).filter(|t| !t.is_zero())
}

/// `max(start_time + time)` over the workers when every one has a time.
pub(crate) fn phase_duration(workers: &[WorkerSpec]) -> Option<Duration> {
    if workers.is_empty() {
        return None;
    }
    workers
        .iter()
        .map(|w| Some(w.start_time.as_ref().and_then(|s| duration(s).ok()).unwrap_or_default() + worker_time(w)?))
        .collect::<Option<Vec<_>>>()?
        .into_iter()
        .max()
}

struct Checker<'a> {
    lp: &'a LoadedPlan,
    errors: Vec<PlanError>,
}

impl Checker<'_> {
    fn err(&mut self, path: &[Seg], field: &str, message: impl Into<String>) {
        let e = self.lp.error(path, field, message);
        self.errors.push(e);
    }

    fn key_err(&mut self, path: &[Seg], k: &str, field: &str, message: impl Into<String>) {
        let e = self.lp.key_error(path, k, field, message);
        self.errors.push(e);
    }

    fn plan(&mut self) {
        let plan = &self.lp.plan;
        if plan.phases.is_empty() {
            self.err(&[key("phases")], "phases", "no phases; a plan runs at least one");
        }
        if let Some(TargetSpec::Described { .. }) = &plan.target
            && let Some(super::yaml::Kind::Map(m)) = self.lp.tree_at(&[key("target")]).map(|n| &n.kind)
        {
            for (k, ..) in m.iter().filter(|e| !["sim", "vfio", "power"].contains(&e.0.as_str())) {
                self.key_err(
                    &[key("target")],
                    k,
                    k,
                    format!("unknown key `{k}` in target; a described target is {{sim: {{...}}}} or {{vfio: ADDRESS}}, with power: for its switch"),
                );
            }
        }
        if plan.target.is_some() {
            match super::limits::target(self.lp, None) {
                Ok(t) => {
                    if let Err(e) = super::limits::power(self.lp, &t, None, None) {
                        self.errors.push(e);
                    }
                }
                Err(e) => self.errors.push(e),
            }
        }
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for (i, ph) in plan.phases.iter().enumerate() {
            let path = vec![key("phases"), Seg::Index(i)];
            if !names.insert(ph.name.as_str()) {
                self.err(
                    &join(&path, &[key("name")]),
                    "name",
                    format!("phase name `{}` is used twice; phase names must be unique (reports are named after them)", ph.name),
                );
            }
            self.phase(ph, &path);
        }
    }

    fn phase(&mut self, ph: &PhaseSpec, path: &[Seg]) {
        if ph.repeat == Some(0) {
            self.err(&join(path, &[key("repeat")]), "repeat", "0 runs; repeat must be at least 1 (leave it out to run once)");
        }
        if ph.ioworkers.is_empty() && ph.events.is_empty() && ph.metamode.is_none() && ph.purge.is_none() && ph.precondition.is_none() {
            self.err(path, "ioworkers", format!("phase `{}` does nothing; give it ioworkers, events, metamode steps, purge or precondition", ph.name));
        }
        self.errors.extend(super::pts::check(self.lp, ph, path));
        if let Some(m) = &ph.metamode {
            let e = super::metamode::check(self.lp, m, &join(path, &[key("metamode")]));
            self.errors.extend(e);
        }
        let sweep_ok = self.sweep(ph, path);
        self.errors.extend(super::steady::check(self.lp, ph, path));
        let runs = sweep::count(ph.sweep.as_ref()).saturating_mul(ph.rounds() as u64);
        if runs > MAX_RUNS {
            let at = if ph.sweep.is_some() { "sweep" } else { "repeat" };
            self.err(&join(path, &[key(at)]), at, format!("{runs} runs of this phase (repeat x sweep combinations); at most {MAX_RUNS}: split the phase"));
        }
        // Worker names, as reports will show them.
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (j, w) in ph.ioworkers.iter().enumerate() {
            let name = w.name.clone().unwrap_or_else(|| format!("w{j}"));
            if !seen.insert(name.clone()) {
                self.err(
                    &join(path, &[key("ioworkers"), Seg::Index(j), key("name")]),
                    "name",
                    format!("worker name `{name}` is used twice in this phase; give each worker its own name"),
                );
            }
            if let Some(e) = &w.expect {
                self.expect(e, &join(path, &[key("ioworkers"), Seg::Index(j), key("expect")]));
            }
        }
        if let Some(e) = &ph.expect {
            self.expect(e, &join(path, &[key("expect")]));
        }
        for (k, ev) in ph.events.iter().enumerate() {
            self.event(ev, &join(path, &[key("events"), Seg::Index(k)]));
        }
        if !sweep_ok || runs > MAX_RUNS {
            return;
        }
        for combo in sweep::combinations(ph.sweep.as_ref(), path) {
            let mut workers = Vec::new();
            for (j, w) in ph.ioworkers.iter().enumerate() {
                let at = Where { worker: join(path, &[key("ioworkers"), Seg::Index(j)]), combo: &combo };
                match sweep::apply(w, &combo) {
                    Ok(w) => {
                        self.worker(&w, &at);
                        workers.push(w);
                    }
                    Err(m) => self.err(&at.worker, "sweep", m),
                }
            }
            if let Some(d) = phase_duration(&workers) {
                self.events_within(ph, path, d, &combo);
            }
        }
    }

    /// Sweep keys and values; false when a combination could not be built from them.
    fn sweep(&mut self, ph: &PhaseSpec, path: &[Seg]) -> bool {
        let Some(sweep) = &ph.sweep else { return true };
        let spath = join(path, &[key("sweep")]);
        let before = self.errors.len();
        for (k, values) in sweep {
            if !SWEEPABLE.contains(k) {
                let message = match k.as_str() {
                    "name" | "expect" | "seed" => format!("`{k}` cannot be swept; a sweep varies I/O parameters"),
                    _ => match (crate::fio::options::plan_hint(k), suggest(k, SWEEPABLE.iter().map(String::as_str))) {
                        (Some(h), _) => format!("unknown sweep parameter `{k}`: {h}"),
                        (None, Some(s)) => format!("unknown sweep parameter `{k}`; did you mean `{s}`?"),
                        (None, None) => format!("unknown sweep parameter `{k}`; a sweep varies ioworker parameters (docs/plans.md)"),
                    },
                };
                self.key_err(&spath, k, k, message);
                continue;
            }
            let kpath = join(&spath, &[key(k)]);
            if values.is_empty() {
                self.err(&kpath, k, "no values; give at least one, e.g. [8, 256]");
            }
            // Values that label alike (8 and "8") would give two runs of one name.
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for (j, v) in values.iter().enumerate() {
                let vpath = join(&kpath, &[Seg::Index(j)]);
                if v.is_null() {
                    self.err(&vpath, k, "an empty sweep value; give the value to run with");
                    continue;
                }
                if !seen.insert(sweep::label_value(v)) {
                    self.err(&vpath, k, format!("{} is in the sweep twice; each value gives one run", super::load::render(v)));
                }
                let one = serde_json::json!({ k.clone(): v });
                for d in diagnose_worker_value(&one) {
                    // `d.path` starts with the parameter; the value sits at `vpath`.
                    let rest = d.path.get(1..).unwrap_or_default().to_vec();
                    let diag = super::load::Diag { path: rest, ..d };
                    self.errors.push(diag.at(&self.lp.file, &self.lp.tree, &vpath));
                }
            }
        }
        self.errors.len() == before
    }

    fn events_within(&mut self, ph: &PhaseSpec, path: &[Seg], d: Duration, combo: &Combo) {
        for (k, ev) in ph.events.iter().enumerate() {
            if let Ok(at) = duration(&ev.at)
                && at >= d
            {
                let when = if combo.values.is_empty() { String::new() } else { " in this sweep combination".into() };
                self.err(
                    &join(path, &[key("events"), Seg::Index(k), key("at")]),
                    "at",
                    format!(
                        "{} is not before the phase ends at {}{when} (the longest start_time + time of its workers); use less than {}",
                        fmt_duration(at),
                        fmt_duration(d),
                        fmt_duration(d)
                    ),
                );
            }
        }
    }

    fn event(&mut self, ev: &EventSpec, path: &[Seg]) {
        if let Err(m) = duration(&ev.at) {
            self.err(&join(path, &[key("at")]), "at", m);
        }
        let kinds: Vec<&str> =
            [("reset", ev.reset.is_some()), ("power_cycle", ev.power_cycle.is_some()), ("pcie", ev.pcie.is_some()), ("admin", ev.admin.is_some())]
                .iter()
                .filter(|k| k.1)
                .map(|k| k.0)
                .collect();
        match kinds[..] {
            [] => self.err(path, "events", "an event needs one action: reset, power_cycle, pcie or admin"),
            [_] => {}
            [first, second, ..] => self.key_err(
                path,
                second,
                second,
                format!("an event does one thing; this one has both `{first}` and `{second}`: split it into two events (they may have the same `at`)"),
            ),
        }
        if let Some(pc) = &ev.power_cycle
            && let Some(off) = &pc.off
            && let Err(m) = duration(off)
        {
            self.err(&join(path, &[key("power_cycle"), key("off")]), "off", m);
        }
        if let Some(a) = &ev.admin {
            self.admin(a, &join(path, &[key("admin")]));
        }
        if let Some(p) = &ev.pcie {
            let at = join(path, &[key("pcie")]);
            match (p.power_state, p.aspm) {
                (None, None) => self.err(&at, "pcie", "a pcie event sets power_state (D0, D3hot) or aspm (off, L0s, L1, L0s_L1)"),
                (Some(_), Some(_)) => {
                    self.key_err(&at, "aspm", "aspm", "a pcie event does one thing; this one has both power_state and aspm: split it into two events")
                }
                _ => {}
            }
            if let Some(h) = &p.hold {
                if p.power_state != Some(super::model::DState::D3hot) {
                    self.key_err(&at, "hold", "hold", "hold is how long D3hot lasts; it goes with power_state: D3hot");
                } else if let Err(m) = duration(h) {
                    self.err(&join(&at, &[key("hold")]), "hold", m);
                }
            }
        }
    }

    fn admin(&mut self, a: &AdminSpec, path: &[Seg]) {
        use AdminCommand as C;
        let (name, takes): (&str, &[&str]) = match a.command {
            C::Identify => ("identify", &["cns"]),
            C::GetLogPage => ("get_log_page", &["lid", "len"]),
            C::GetFeatures => ("get_features", &["fid", "sel"]),
            C::SetFeatures => ("set_features", &["fid", "value"]),
            C::Format => ("format", &["lbaf", "ses"]),
            C::Flush => ("flush", &[]),
            C::Dsm => ("dsm", &["ranges"]),
            C::Sanitize => ("sanitize", &["action"]),
            C::Raw => ("raw", &["opcode", "cdw10", "cdw11", "cdw12", "cdw13", "cdw14", "cdw15", "data_len"]),
        };
        let needs: &[&str] = match a.command {
            C::GetLogPage => &["lid"],
            C::GetFeatures => &["fid"],
            C::SetFeatures => &["fid", "value"],
            C::Dsm => &["ranges"],
            C::Raw => &["opcode"],
            _ => &[],
        };
        let written: BTreeMap<String, Value> = match serde_json::to_value(a) {
            Ok(Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        for n in needs {
            if !written.contains_key(*n) {
                self.err(path, n, format!("{name} needs `{n}`"));
            }
        }
        for k in written.keys().filter(|k| !matches!(k.as_str(), "command" | "nsid" | "expect_status")) {
            if !takes.contains(&k.as_str()) {
                let takes = if takes.is_empty() { "nothing but nsid".to_string() } else { takes.join(", ") + " and nsid" };
                self.key_err(path, k, k, format!("`{k}` does not apply to {name}, which takes {takes}"));
            }
        }
        let at = |f: &str| join(path, &[key(f)]);
        if let Some(l) = a.len
            && (l == 0 || l % 4 != 0)
        {
            self.err(&at("len"), "len", format!("{l} bytes; a log page is read in dwords: give a multiple of 4, at least 4"));
        }
        if let Some(s) = a.sel
            && s > 3
        {
            self.err(&at("sel"), "sel", format!("{s} is not a select value; use 0 (current), 1 (default), 2 (saved) or 3 (capabilities)"));
        }
        if let Some(l) = a.lbaf
            && l > 15
        {
            self.err(&at("lbaf"), "lbaf", format!("LBA format {l} is above 15"));
        }
        if let Some(s) = a.ses
            && s > 2
        {
            self.err(&at("ses"), "ses", format!("{s} is not a secure erase setting; use 0 (none), 1 (user data erase) or 2 (cryptographic erase)"));
        }
        if let Some(x) = a.action
            && !(1..=4).contains(&x)
        {
            self.err(
                &at("action"),
                "action",
                format!("{x} is not a sanitize action; use 1 (exit failure mode), 2 (block erase), 3 (overwrite) or 4 (crypto erase)"),
            );
        }
        if let Some(r) = &a.ranges {
            if r.is_empty() {
                self.err(&at("ranges"), "ranges", "no ranges; give [slba, nlb] pairs");
            }
            if r.len() > 256 {
                self.err(&at("ranges"), "ranges", format!("{} ranges; one DSM command carries at most 256", r.len()));
            }
            for (i, &(_, nlb)) in r.iter().enumerate() {
                if nlb == 0 {
                    self.err(&join(path, &[key("ranges"), Seg::Index(i), Seg::Index(1)]), "ranges", "a range of 0 LBAs; nlb counts from 1");
                }
            }
        }
        if let Some(s) = &a.expect_status
            && let Err(m) = parse_status(s)
        {
            self.err(&at("expect_status"), "expect_status", m);
        }
    }

    fn expect(&mut self, e: &ExpectSpec, path: &[Seg]) {
        if let Some(s) = &e.error_status
            && let Err(m) = parse_status(s)
        {
            self.err(&join(path, &[key("error_status")]), "error_status", m);
        }
        if let Some(c) = e.error_code
            && !(-10..=0).contains(&c)
        {
            self.err(&join(path, &[key("error_code")]), "error_code", format!("{c} is not a worker error code; they are 0 and -1 to -10"));
        }
        for (f, v) in [("iops_min", e.iops_min), ("mbps_min", e.mbps_min)] {
            if let Some(v) = v
                && (v < 0.0 || v.is_nan())
            {
                self.err(&join(path, &[key(f)]), f, format!("{v} is negative; give a rate of 0 or more"));
            }
        }
        let lpath = join(path, &[key("latency_us")]);
        for (p, v) in e.latency_us.iter().flatten() {
            match p.trim().parse::<f64>() {
                Ok(x) if x > 0.0 && x < 100.0 => {}
                Ok(x) => self.key_err(
                    &lpath,
                    p,
                    "latency_us",
                    format!("percentile {x} is not strictly between 0 and 100; use e.g. 99.9 (100 would be the maximum: use 99.999)"),
                ),
                Err(_) => self.key_err(&lpath, p, "latency_us", format!("`{p}` is not a percentile; write e.g. 99.9: 2000")),
            }
            if *v < 0.0 || v.is_nan() {
                self.err(&join(&lpath, &[key(p)]), "latency_us", format!("{v} µs is negative"));
            }
        }
    }

    /// One worker of one sweep combination.
    fn worker(&mut self, w: &WorkerSpec, at: &Where) {
        let e = |c: &mut Self, field: &str, rest: &[Seg], m: String| c.err(&at.path(field, rest), field, m);
        for (f, v) in [("read_percentage", w.read_percentage), ("sgl_percentage", w.sgl_percentage), ("lba_random", lba_random(w.lba_random.as_ref()))] {
            if let Some(v) = v
                && v > 100
            {
                e(self, f, &[], format!("{v} is above 100 (a percentage)"));
            }
        }
        if let Some(ops) = &w.op_percentage {
            self.op_percentage(ops, at);
        }
        if let Some(d) = &w.distribution {
            if d.len() != 100 {
                e(self, "distribution", &[], format!("{} buckets; give exactly 100 (one per 1 % of the LBA space)", d.len()));
            } else {
                let sum: u64 = d.iter().map(|&v| v as u64).sum();
                if sum != 10000 {
                    e(self, "distribution", &[], format!("buckets sum to {sum}, not 10000 (each bucket holds a share of the I/O in 1/10000)"));
                }
            }
            if lba_random(w.lba_random.as_ref()).is_some_and(|r| r != 100) {
                e(self, "distribution", &[], "places random I/O: it needs lba_random: true (100)".into());
            }
            if w.region_start.is_some() || w.region_end.is_some() {
                e(self, "distribution", &[], "covers the whole namespace; remove region_start and region_end".into());
            }
        }
        self.regions(w, at);
        let sizes = self.io_size(w, at);
        if let Some(OneOrMany::Many(v)) = &w.lba_align
            && v.len() != 1
            && sizes.is_some_and(|n| n != v.len())
        {
            e(self, "lba_align", &[], format!("{} values for {} io_size entries; give one value, or one per size", v.len(), sizes.unwrap_or(1)));
        }
        for (i, a) in w.lba_align.as_ref().map(OneOrMany::to_vec).unwrap_or_default().iter().enumerate() {
            let rest = if matches!(w.lba_align, Some(OneOrMany::Many(_))) { vec![Seg::Index(i)] } else { vec![] };
            match amount(a) {
                Ok(Amount::Lbas(0)) | Ok(Amount::Bytes(0)) => e(self, "lba_align", &rest, "alignment 0; use 1 for no alignment".into()),
                Ok(Amount::Lbas(n)) if n > 0x10000 => e(self, "lba_align", &rest, format!("{n} LBAs is above 65536")),
                Err(m) => e(self, "lba_align", &rest, m),
                _ => {}
            }
        }
        if let Some(q) = w.qprio
            && q > 3
        {
            e(self, "qprio", &[], format!("{q} is not a priority class; use 0 (urgent) to 3 (low)"));
        }
        match w.qdepth {
            Some(0) => e(self, "qdepth", &[], "0 I/Os outstanding; give at least 1".into()),
            Some(q) if q >= 65536 => {
                e(self, "qdepth", &[], format!("{q} needs a queue of {} entries; no NVMe queue holds more than 65536: use at most 65535", q as u64 + 1))
            }
            _ => {}
        }
        let ptype = w.ptype.unwrap_or(0xBEEF);
        if !PTYPES.contains(&ptype) {
            e(self, "ptype", &[], format!("{ptype:#x} is not a pattern type; use 0, 32, 0xBEEF, 0x1234 or 0x4321"));
        } else if ptype == 0xBEEF
            && let Some(p) = w.pvalue
            && p > 100
        {
            e(
                self,
                "pvalue",
                &[],
                format!("{p} is above 100: with ptype 0xBEEF (the default) pvalue is the percentage of random bytes; for a 32-bit pattern set ptype: 32"),
            );
        }
        for f in ["time", "start_time", "slow_latency"] {
            let v = match f {
                "time" => &w.time,
                "start_time" => &w.start_time,
                _ => &w.slow_latency,
            };
            let parse = if f == "slow_latency" { super::units::slow_latency } else { duration };
            if let Some(v) = v
                && let Err(m) = parse(v)
            {
                e(self, f, &[], m);
            }
        }
        for (i, p) in w.output_percentile_latency.iter().flatten().enumerate() {
            if !(*p > 0.0 && *p < 100.0) {
                e(self, "output_percentile_latency", &[Seg::Index(i)], format!("{p} is not a percentile strictly between 0 and 100"));
            }
        }
        if let Some(n) = w.output_cmdlog_list
            && n > 1 << 20
        {
            e(self, "output_cmdlog_list", &[], format!("{n} entries; keep at most 1048576"));
        }
        if let Some(lc) = &w.lba_count
            && let Err(m) = amount(lc)
        {
            e(self, "lba_count", &[], m);
        }
        if let Some(ls) = &w.lba_start
            && let Err(m) = amount(ls)
        {
            e(self, "lba_start", &[], m);
        }
        self.stop_rule(w, at);
    }

    fn stop_rule(&mut self, w: &WorkerSpec, at: &Where) {
        if let Some(seq) = &w.io_sequence {
            if seq.is_empty() {
                self.err(&at.path("io_sequence", &[]), "io_sequence", "no entries; give [slba, nlb, opcode, time_sent_us] lists");
            }
            for (i, &(_, nlb, _, _)) in seq.iter().enumerate() {
                if nlb == 0 || nlb > 0x10000 {
                    self.err(&at.path("io_sequence", &[Seg::Index(i), Seg::Index(1)]), "io_sequence", format!("nlb {nlb} is outside 1..=65536"));
                }
            }
            if w.iops.is_some_and(|i| i > 0) {
                self.err(&at.path("iops", &[]), "iops", "io_sequence sets its own send times; remove iops");
            }
            return;
        }
        let lba_count = w.lba_count.as_ref().and_then(|v| amount(v).ok()).is_some_and(|a| a != Amount::Lbas(0) && a != Amount::Bytes(0));
        let one_pass = lba_random(w.lba_random.as_ref()) == Some(0) && matches!(w.io_size, None | Some(IoSizeSpec::One(_))) && w.region_end.is_some();
        if worker_time(w).is_none() && w.io_count.unwrap_or(0) == 0 && !lba_count && !one_pass {
            self.err(
                &at.path("time", &[]),
                "time",
                "when should the worker stop? give time, io_count or lba_count (a single sequential pass needs lba_random: false, a fixed io_size and region_end)",
            );
        }
    }

    fn op_percentage(&mut self, ops: &BTreeMap<String, f64>, at: &Where) {
        let path = at.path("op_percentage", &[]);
        if ops.is_empty() {
            self.err(&path, "op_percentage", "empty; give {opcode: percentage} pairs summing to 100");
            return;
        }
        let mut seen: BTreeMap<u8, &str> = BTreeMap::new();
        let mut sum: u64 = 0;
        let mut ok = true;
        for (k, &v) in ops {
            match opcode(k) {
                Ok(op) => {
                    if let Some(first) = seen.insert(op, k) {
                        self.key_err(&path, k, "op_percentage", format!("opcode {op:#04x} is given twice (as `{first}` and `{k}`)"));
                        ok = false;
                    }
                }
                Err(m) => {
                    self.key_err(&path, k, "op_percentage", m);
                    ok = false;
                }
            }
            let vpath = join(&path, &[key(k)]);
            if !(0.0..=100.0).contains(&v) {
                self.err(&vpath, "op_percentage", format!("{v} is not a percentage (0 to 100)"));
                ok = false;
                continue;
            }
            let hundredths = (v * 100.0).round();
            if (hundredths / 100.0 - v).abs() > 1e-9 {
                self.err(&vpath, "op_percentage", format!("{v} has more than two decimals; percentages are counted in hundredths"));
                ok = false;
            }
            sum += hundredths as u64;
        }
        if ok && sum != 10000 {
            self.err(&path, "op_percentage", format!("percentages sum to {:.2}, not 100.00; adjust them to add up to exactly 100", sum as f64 / 100.0));
        }
    }

    /// Checks `io_size`; returns the number of sizes.
    fn io_size(&mut self, w: &WorkerSpec, at: &Where) -> Option<usize> {
        let check = |c: &mut Self, v: &LbaValue, path: Vec<Seg>| match amount(v) {
            Ok(Amount::Lbas(0)) | Ok(Amount::Bytes(0)) => c.err(&path, "io_size", "a size of 0; sizes count LBAs from 1"),
            Ok(Amount::Lbas(n)) if n > 0x10000 => c.err(&path, "io_size", format!("{n} LBAs is above 65536, the most one command carries (NLB is 16 bits)")),
            Err(m) => c.err(&path, "io_size", m),
            _ => {}
        };
        match &w.io_size {
            None => Some(1),
            Some(IoSizeSpec::One(v)) => {
                check(self, v, at.path("io_size", &[]));
                Some(1)
            }
            Some(IoSizeSpec::List(v)) => {
                if v.is_empty() {
                    self.err(&at.path("io_size", &[]), "io_size", "no sizes; give at least one, e.g. [8, 256]");
                }
                for (i, s) in v.iter().enumerate() {
                    check(self, s, at.path("io_size", &[Seg::Index(i)]));
                }
                Some(v.len())
            }
            Some(IoSizeSpec::Weighted(m)) => {
                let path = at.path("io_size", &[]);
                if m.is_empty() {
                    self.err(&path, "io_size", "no sizes; give {size: weight} pairs, e.g. {8: 50, 256: 50}");
                }
                for (k, &weight) in m {
                    let v = LbaValue::Text(k.clone());
                    match amount(&v) {
                        Ok(Amount::Lbas(0)) | Ok(Amount::Bytes(0)) => self.key_err(&path, k, "io_size", "a size of 0; sizes count LBAs from 1"),
                        Ok(Amount::Lbas(n)) if n > 0x10000 => {
                            self.key_err(&path, k, "io_size", format!("{n} LBAs is above 65536, the most one command carries"))
                        }
                        Err(m) => self.key_err(&path, k, "io_size", m),
                        _ => {}
                    }
                    if weight == 0 {
                        self.err(&join(&path, &[key(k)]), "io_size", format!("size {k} has weight 0; remove it or give it a weight"));
                    }
                }
                Some(m.len())
            }
        }
    }

    fn regions(&mut self, w: &WorkerSpec, at: &Where) {
        let starts = w.region_start.as_ref().map(OneOrMany::to_vec);
        let ends = w.region_end.as_ref().map(OneOrMany::to_vec);
        let mut empty = false;
        for (f, v) in [("region_start", &starts), ("region_end", &ends)] {
            if v.as_ref().is_some_and(Vec::is_empty) {
                self.err(&at.path(f, &[]), f, "no values; leave it out for the default");
                empty = true;
            }
        }
        if empty {
            return;
        }
        let (ns, ne) = (starts.as_ref().map_or(1, Vec::len), ends.as_ref().map_or(1, Vec::len));
        if ns != ne {
            let f = if ends.is_some() { "region_end" } else { "region_start" };
            self.err(&at.path(f, &[]), f, format!("{ns} region_start values but {ne} region_end values; give one end per start"));
            return;
        }
        let (Some(starts), Some(ends)) = (starts, ends) else { return };
        for (i, (s, e)) in starts.iter().zip(&ends).enumerate() {
            let rest = if matches!(w.region_start, Some(OneOrMany::Many(_))) { vec![Seg::Index(i)] } else { vec![] };
            let (s, e) = match (amount(s), amount(e)) {
                (Ok(Amount::Lbas(s)), Ok(Amount::Lbas(e))) | (Ok(Amount::Bytes(s)), Ok(Amount::Bytes(e))) => (s, e),
                _ => continue,
            };
            if s >= e {
                self.err(
                    &at.path("region_start", &rest),
                    "region_start",
                    format!("region {i}: start {s:#x} is not below its end {e:#x} (region_end is exclusive)"),
                );
            }
        }
    }
}

/// `lba_random` as a percentage.
pub(crate) fn lba_random(r: Option<&RandomSpec>) -> Option<u8> {
    r.map(|r| match r {
        RandomSpec::Flag(true) => 100,
        RandomSpec::Flag(false) => 0,
        RandomSpec::Percent(p) => *p,
    })
}

#[cfg(test)]
mod tests {
    use crate::plan::load_str;

    fn errors(doc: &str) -> Vec<String> {
        load_str("p.yaml", doc).map(|_| Vec::new()).unwrap_or_else(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn events_are_checked_against_each_sweep_combinations_duration() {
        let doc = "name: t\nphases:\n  - name: a\n    sweep: {time: [5, 20]}\n    ioworkers: [{io_size: 8}]\n    events: [{at: 10, reset: controller}]\n";
        assert_eq!(
            errors(doc),
            [
                "p.yaml:6:19: at: 10s is not before the phase ends at 5s in this sweep combination (the longest start_time + time of its workers); use less than 5s"
            ]
        );
        let unknown = "name: t\nphases:\n  - name: a\n    ioworkers: [{io_size: 8, time: 5}, {io_count: 10}]\n    events: [{at: 10, reset: controller}]\n";
        assert_eq!(errors(unknown), Vec::<String>::new(), "a worker without time leaves the end open");
    }

    #[test]
    fn static_errors_in_swept_values_point_at_the_value_and_the_written_one_is_replaced() {
        let doc = "name: t\nphases:\n  - name: a\n    sweep: {read_percentage: [0, 101]}\n    ioworkers: [{io_size: 8, time: 1, read_percentage: 120}]\n";
        assert_eq!(errors(doc), ["p.yaml:4:34: read_percentage: 101 is above 100 (a percentage)"]);
    }

    #[test]
    fn sweep_values_that_would_give_the_same_run_twice_or_nothing_are_refused() {
        let doc = "name: t\nphases:\n  - name: a\n    sweep: {io_size: [8, \"8\", ~], qdpeth: [1]}\n    ioworkers: [{time: 1}]\n";
        assert_eq!(
            errors(doc),
            [
                "p.yaml:4:26: io_size: \"8\" is in the sweep twice; each value gives one run",
                "p.yaml:4:31: io_size: an empty sweep value; give the value to run with",
                "p.yaml:4:35: qdpeth: unknown sweep parameter `qdpeth`; did you mean `qdepth`?",
            ]
        );
    }

    #[test]
    fn admin_commands_need_their_fields_and_take_no_others() {
        let doc = "name: t\nphases:\n  - name: a\n    events:\n      - {at: 0, admin: {command: raw, cdw10: 1}}\n      - {at: 0, admin: {command: flush, fid: 2}}\n      - {at: 0, admin: {command: sanitize, action: 9}}\n";
        assert_eq!(
            errors(doc),
            [
                "p.yaml:5:24: opcode: raw needs `opcode`",
                "p.yaml:6:41: fid: `fid` does not apply to flush, which takes nothing but nsid",
                "p.yaml:7:52: action: 9 is not a sanitize action; use 1 (exit failure mode), 2 (block erase), 3 (overwrite) or 4 (crypto erase)",
            ]
        );
    }

    #[test]
    fn every_problem_of_every_worker_is_reported() {
        let doc = "name: t\nphases:\n  - name: a\n    ioworkers:\n      - {time: 1, qprio: 5, qdepth: 0}\n      - {time: 1, ptype: 7}\n  - name: b\n    repeat: 0\n    ioworkers: [{io_size: 0}]\n";
        let e = errors(doc);
        let fields: Vec<&str> = e.iter().map(|e| e.split(": ").next().unwrap_or_default()).collect();
        assert_eq!(fields, ["p.yaml:5:26", "p.yaml:5:37", "p.yaml:6:26", "p.yaml:8:13", "p.yaml:9:17", "p.yaml:9:27"], "{e:?}");
    }
}
