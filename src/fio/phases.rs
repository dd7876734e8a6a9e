//! Jobs into phases: a `stonewall` (or the first job of a later file) starts a phase, a
//! `wait_for` puts its job in a phase after its waitee's; a job's `verify` adds a read-back
//! phase after its own, `end_fsync` a flush; latency profiling becomes a sweep.

use super::build::{Built, Field, Latency, SimShape, Val, Worker, plain};
use super::job::{Job, Report};
use super::jobfile::Loc;
use super::values::plan_bytes;
use super::{Device, MAX_WORKERS};

/// A phase of the plan.
#[derive(Clone, Debug)]
pub(crate) struct PhaseOut {
    pub name: String,
    /// The job sections it comes from.
    pub from: Vec<Loc>,
    /// Workers with their job's index.
    pub workers: Vec<(usize, Worker)>,
    /// Namespaces to flush at the phase's start.
    pub flush: Vec<(u32, Loc)>,
    pub sweep: Option<Latency>,
    /// Why the phase is there, when it is not a job's.
    pub why: Option<String>,
}

/// The plan before it is written.
#[derive(Clone, Debug)]
pub(crate) struct PlanOut {
    pub name: String,
    pub description: Vec<String>,
    pub phases: Vec<PhaseOut>,
    pub sim: Option<SimShape>,
    pub target: Option<String>,
}

/// Read-back I/O size: large enough to be quick, within every transfer limit nvplan meets.
const READ_BACK: u64 = 128 << 10;

pub(crate) fn plan(jobs: &[Job], built: Built, device: &Device, name: &str, report: &mut Report) -> Option<PlanOut> {
    if jobs.is_empty() {
        return None;
    }
    // Group (stonewall) and level (wait_for chain within the group) of every job.
    let mut place: Vec<(usize, usize)> = Vec::with_capacity(jobs.len());
    let mut group = 0;
    for (i, job) in jobs.iter().enumerate() {
        if i > 0 && (job.file_stonewall || job.flag("stonewall", report) == Some(true)) {
            group += 1;
        }
        let mut level = 0;
        if let Some(w) = job.text("wait_for").map(str::trim).filter(|w| !w.is_empty()) {
            let found: Vec<usize> = (0..i).filter(|&k| jobs[k].name == w).collect();
            match found.as_slice() {
                [] => report.refuse(job.at("wait_for"), "wait_for", format!("no job named `{w}` before this one; fio waits only for jobs defined earlier")),
                [k] => {
                    if place[*k].0 == group {
                        level = place[*k].1 + 1;
                        let companions: Vec<&str> = (0..i).filter(|&j| place[j] == place[*k] && j != *k).map(|j| jobs[j].name.as_str()).collect();
                        if !companions.is_empty() {
                            report.warn(
                                job.at("wait_for"),
                                "wait_for",
                                format!("the job starts in the phase after `{w}`'s, so it also waits for {}", companions.join(", ")),
                            );
                        }
                    }
                }
                _ => report.refuse(
                    job.at("wait_for"),
                    "wait_for",
                    format!("{} jobs are named `{w}`; fio needs the job waited for to have a unique name", found.len()),
                ),
            }
        }
        place.push((group, level));
    }
    let mut phases: Vec<PhaseOut> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut unique = |base: &str| {
        let mut n = base.to_string();
        let mut k = 2;
        while names.contains(&n) {
            n = format!("{base}-{k}");
            k += 1;
        }
        names.push(n.clone());
        n
    };
    let cap = match device {
        Device::Given { limits, .. } => limits.max_transfer as u64,
        Device::Simulator => u64::MAX,
    };
    let mut jobs_out = built.jobs;
    let mut readers = 0usize;
    for g in 0..=group {
        let levels = place.iter().filter(|p| p.0 == g).map(|p| p.1).max();
        let Some(levels) = levels else { continue };
        let mut verify: Vec<(usize, Worker)> = Vec::new();
        let mut flush: Vec<(u32, Loc)> = Vec::new();
        let mut last_name = String::new();
        for l in 0..=levels {
            let members: Vec<usize> = (0..jobs.len()).filter(|&i| place[i] == (g, l)).collect();
            if members.is_empty() {
                continue;
            }
            let mut ph = PhaseOut {
                name: unique(&jobs[members[0]].name),
                from: members.iter().map(|&i| jobs[i].at).collect(),
                workers: Vec::new(),
                flush: Vec::new(),
                sweep: None,
                why: None,
            };
            let mut seen: Vec<String> = Vec::new();
            for &i in &members {
                let jo = &mut jobs_out[i];
                for mut w in std::mem::take(&mut jo.workers) {
                    let mut n = w.name.clone();
                    let mut k = 2;
                    while seen.contains(&n) {
                        n = format!("{}-{k}", w.name);
                        k += 1;
                    }
                    w.name = n.clone();
                    seen.push(n);
                    if jo.verify.is_some() && w.writes && !verify.iter().any(|v| v.1.region == w.region) {
                        verify.push((i, w.clone()));
                    }
                    if let Some(at) = jo.flush
                        && !flush.iter().any(|f| f.0 == w.region.nsid)
                    {
                        flush.push((w.region.nsid, at));
                    }
                    ph.workers.push((i, w));
                }
            }
            sweep(&mut ph, jobs, &members, &jobs_out, report);
            last_name = ph.name.clone();
            phases.push(ph);
        }
        if !flush.is_empty() {
            phases.push(PhaseOut {
                name: unique(&format!("{last_name}-flush")),
                from: Vec::new(),
                workers: Vec::new(),
                flush,
                sweep: None,
                why: Some("end_fsync: a flush after the jobs".into()),
            });
        }
        if !verify.is_empty() {
            readers += verify.len();
            let workers = verify.into_iter().map(|(i, w)| (i, reader(w, READ_BACK.min(cap)))).collect();
            phases.push(PhaseOut {
                name: unique(&format!("{last_name}-verify")),
                from: Vec::new(),
                workers,
                flush: Vec::new(),
                sweep: None,
                why: Some("verify: fio reads back what the jobs wrote; nvplan checks every LBA it reads".into()),
            });
        }
    }
    if readers + phases.iter().map(|p| p.workers.len()).sum::<usize>() > MAX_WORKERS * 2 {
        report.refuse(jobs[0].at, "numjobs", format!("more than {MAX_WORKERS} workers"));
    }
    let mut description = vec![format!("Imported from {} by nvplan import-fio.", report.file_name(jobs[0].at))];
    for j in jobs {
        if let Some(d) = j.text("description").filter(|d| !d.trim().is_empty()) {
            let d = d.trim().trim_matches('"').to_string();
            if !description.contains(&d) {
                description.push(d);
            }
        }
    }
    let target = match device {
        Device::Given { target, .. } => Some(target.clone()),
        Device::Simulator => None,
    };
    Some(PlanOut { name: name.to_string(), description, phases, sim: built.sim, target })
}

/// A job's latency profiling: the phase runs once per queue depth for the window.
fn sweep(ph: &mut PhaseOut, jobs: &[Job], members: &[usize], out: &[super::build::JobOut], report: &mut Report) {
    let lat: Vec<&Latency> = members.iter().filter_map(|&i| out[i].latency.as_ref()).collect();
    let Some(first) = lat.first() else { return };
    if lat.len() != members.len() {
        report.refuse(
            first.at,
            "latency_target",
            "the sweep over queue depths would change the other jobs of the phase too: give them the same latency_target, or a stonewall",
        );
        return;
    }
    for (_, w) in &mut ph.workers {
        w.fields.retain(|f| !matches!(f.key, "time" | "lba_count" | "io_count"));
        w.fields.push(Field {
            key: "time",
            val: plain(super::build::fmt_time(first.window)),
            from: jobs.iter().filter_map(|j| j.get("latency_window").map(|o| o.at)).take(1).collect(),
            default: None,
        });
        let target = Val::Map(vec![(first.percentile.to_string(), plain(first.target_us))]);
        w.fields.retain(|f| f.key != "expect");
        w.fields.push(Field { key: "expect", val: Val::Map(vec![("latency_us".into(), target)]), from: vec![first.at], default: None });
    }
    ph.sweep = Some((*first).clone());
}

/// A sequential read of what `w` wrote: one pass over its region.
fn reader(w: Worker, size: u64) -> Worker {
    let r = w.region;
    let mut fields = Vec::new();
    let f = |key, val| Field { key, val, from: Vec::new(), default: None };
    if r.nsid != 1 {
        fields.push(f("nsid", plain(r.nsid)));
    }
    fields.push(f("io_size", plain(plan_bytes(size))));
    fields.push(f("lba_random", plain("false")));
    fields.push(f("read_percentage", plain(100)));
    fields.push(f("qdepth", plain(w.qdepth.min(256))));
    if !r.whole {
        if r.start > 0 {
            fields.push(f("region_start", plain(plan_bytes(r.start))));
        }
        fields.push(f("region_end", plain(plan_bytes(r.end))));
    }
    fields.push(f("lba_count", plain(plan_bytes(r.end - r.start))));
    Worker { name: format!("{}-verify", w.name), clone: 0, fields, region: r, writes: false, qdepth: w.qdepth, numjobs: None }
}
