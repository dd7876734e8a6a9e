//! A job's clones as ioworkers: every worker parameter with the fio lines it comes from.

use std::collections::BTreeMap;
use std::time::Duration;

use super::dist;
use super::job::{self, Dirs, Job, Report};
use super::jobfile::Loc;
use super::region::{self, Layout, Needs, Region, Storage};
use super::sizes::{self, Sizes};
use super::values::{self, plan_bytes};
use super::{Device, MAX_WORKERS, options};

/// A YAML value as the plan writes it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    /// A plain scalar: a number, `true`, `4KiB`, `12h`.
    Plain(String),
    List(Vec<Val>),
    Map(Vec<(String, Val)>),
}

pub(crate) fn plain(s: impl ToString) -> Val {
    Val::Plain(s.to_string())
}

/// One worker parameter and where it comes from.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    pub key: &'static str,
    pub val: Val,
    /// The fio lines, or what fio does without them.
    pub from: Vec<Loc>,
    pub default: Option<&'static str>,
}

/// One ioworker: a clone of a job.
#[derive(Clone, Debug)]
pub(crate) struct Worker {
    pub name: String,
    pub clone: u32,
    pub fields: Vec<Field>,
    pub region: Region,
    pub writes: bool,
    pub qdepth: u32,
    /// `numjobs`, for the comment on the clones.
    pub numjobs: Option<Loc>,
}

/// fio's latency profiling: the deepest queue that meets a latency target.
#[derive(Clone, Debug)]
pub(crate) struct Latency {
    pub target_us: f64,
    pub percentile: f64,
    pub window: Duration,
    pub max_depth: u32,
    pub at: Loc,
}

/// A job's workers and what follows them.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobOut {
    pub workers: Vec<Worker>,
    /// `verify`: a read-back phase after the job's phase.
    pub verify: Option<Loc>,
    /// `end_fsync`/`fsync_on_close`: a flush after the job's phase.
    pub flush: Option<Loc>,
    pub latency: Option<Latency>,
}

/// The simulator a plan runs on when no target is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimShape {
    pub namespaces: Vec<u64>,
    pub mdts: Option<u8>,
    pub queue_entries: Option<u32>,
}

/// Every job's workers, and the simulator they need.
#[derive(Clone, Debug)]
pub(crate) struct Built {
    pub jobs: Vec<JobOut>,
    pub sim: Option<SimShape>,
}

/// The namespaces and limits workers are built against.
#[derive(Clone, Debug)]
struct Dev {
    /// nsid -> (bytes, LBA size); for the simulator, any nsid is `fallback`.
    ns: BTreeMap<u32, (u64, u64)>,
    fallback: Option<(u64, u64)>,
    max_transfer: u64,
    max_queue_entries: u32,
    cpus: usize,
    sim: bool,
}

impl Dev {
    fn namespace(&self, nsid: u32) -> Option<(u64, u64)> {
        self.ns.get(&nsid).copied().or(self.fallback)
    }
}

/// Largest transfer nvplan's driver prepares for (its default `max_transfer`).
const DRIVER_MAX_TRANSFER: u64 = 2 << 20;
const GIB: u64 = 1 << 30;
/// The simulator's largest namespace.
const SIM_MAX_NS: u64 = 64 << 40;
/// Most namespaces the import gives the simulator.
const SIM_MAX_NSID: u32 = 64;

/// Builds the workers: a first pass finds what the jobs address (files, namespaces), the
/// second builds against the device (sized from the first when it is the simulator).
pub(crate) fn build(jobs: &[Job], device: &Device, host_cpus: usize, report: &mut Report) -> Built {
    let sim_dev = |sizes: BTreeMap<u32, (u64, u64)>, fallback| Dev {
        ns: sizes,
        fallback,
        max_transfer: DRIVER_MAX_TRANSFER,
        max_queue_entries: 65536,
        cpus: host_cpus,
        sim: true,
    };
    let given = match device {
        Device::Given { limits, .. } => Some(Dev {
            ns: limits.namespaces.iter().map(|(&n, &(nlba, l))| (n, (nlba.saturating_mul(l as u64), l as u64))).collect(),
            fallback: None,
            max_transfer: limits.max_transfer.min(usize::MAX >> 1) as u64,
            max_queue_entries: limits.max_queue_entries,
            cpus: host_cpus,
            sim: false,
        }),
        Device::Simulator => None,
    };
    let first = given.clone().unwrap_or_else(|| sim_dev(BTreeMap::new(), Some((GIB, 512))));
    let mut scratch = Report::new(Vec::new());
    let mut needs = Needs::default();
    let _ = pass(jobs, &first, &Layout::default(), &mut scratch, &mut needs);
    let mut order: Vec<(String, u64)> = Vec::new();
    for (n, end) in &needs.files {
        match order.iter_mut().find(|o| &o.0 == n) {
            Some(o) => o.1 = o.1.max(*end),
            None => order.push((n.clone(), *end)),
        }
    }
    let layout = Layout::new(&order);
    let dev = match given {
        Some(d) => d,
        None => {
            let mut want = needs.device.clone();
            let e = want.entry(1).or_default();
            *e = (*e).max(layout.end());
            // Beyond what the simulator holds, the second pass refuses the job.
            let top = want.keys().max().copied().unwrap_or(1).min(SIM_MAX_NSID);
            let size = |n| want.get(&n).copied().unwrap_or(0).clamp(GIB, SIM_MAX_NS).div_ceil(1 << 20) * (1 << 20);
            let sizes = (1..=top).map(|n| (n, (size(n), 512))).collect();
            sim_dev(sizes, None)
        }
    };
    let mut needs = Needs::default();
    let out = pass(jobs, &dev, &layout, report, &mut needs);
    let sim = dev.sim.then(|| {
        let biggest = out.iter().flat_map(|j| &j.workers).map(max_size).max().unwrap_or(0);
        let mdts = (7u8..=9).find(|m| 4096u64 << m >= biggest).filter(|&m| m > 7);
        let depth = out.iter().flat_map(|j| &j.workers).map(|w| w.qdepth).max().unwrap_or(1);
        SimShape { namespaces: dev.ns.values().map(|v| v.0).collect(), mdts, queue_entries: (depth >= 4096).then_some(depth.saturating_add(1)) }
    });
    Built { jobs: out, sim }
}

fn max_size(w: &Worker) -> u64 {
    w.fields.iter().find(|f| f.key == "io_size").map_or(0, |f| match &f.val {
        Val::Plain(s) => parse_plan_bytes(s),
        Val::Map(m) => m.iter().map(|(k, _)| parse_plan_bytes(k)).max().unwrap_or(0),
        Val::List(l) => l.iter().map(|v| if let Val::Plain(s) = v { parse_plan_bytes(s) } else { 0 }).max().unwrap_or(0),
    })
}

fn parse_plan_bytes(s: &str) -> u64 {
    crate::util::units::parse_size(s).unwrap_or(0)
}

fn pass(jobs: &[Job], dev: &Dev, layout: &Layout, report: &mut Report, needs: &mut Needs) -> Vec<JobOut> {
    let mut total = 0usize;
    let mut controllers: BTreeMap<u32, Loc> = BTreeMap::new();
    let mut out = Vec::new();
    for job in jobs {
        let n = job.parse("numjobs", report, |v| values::count(v, job.kb_base)).unwrap_or(1);
        if n == 0 {
            report.refuse(job.at("numjobs"), "numjobs", "0 clones: the job would not run; leave the job out instead");
        }
        total = total.saturating_add(n as usize);
        if total > MAX_WORKERS {
            report.refuse(job.at("numjobs"), "numjobs", format!("more than {MAX_WORKERS} workers in all (jobs x numjobs); split the job file"));
            out.push(JobOut::default());
            continue;
        }
        let mut jo = JobOut::default();
        for clone in 0..n as u32 {
            if let Some(w) = worker(job, clone, n > 1, dev, layout, report, needs, &mut controllers) {
                jo.workers.push(w);
            }
        }
        finish_job(job, &mut jo, report);
        out.push(jo);
    }
    out
}

/// What follows the job: read-back, flush, latency profiling.
fn finish_job(job: &Job, jo: &mut JobOut, report: &mut Report) {
    let verify = match job.text("verify").map(|v| v.trim().to_ascii_lowercase()) {
        Some(v) => !matches!(v.as_str(), "0" | "none" | "null"),
        None => job.get("verify_pattern").is_some(),
    };
    let writes = jo.workers.iter().any(|w| w.writes);
    if verify && job.flag("do_verify", report) != Some(false) {
        if writes {
            jo.verify = Some(job.at(if job.get("verify").is_some() { "verify" } else { "verify_pattern" }));
        } else {
            report.warn(job.at("verify"), "verify", "nvplan verifies what the plan itself wrote; data from before the run reads as unknown and is not checked");
        }
    }
    if job.flag("end_fsync", report) == Some(true) || job.flag("fsync_on_close", report) == Some(true) {
        jo.flush = Some(job.at(if job.get("end_fsync").is_some() { "end_fsync" } else { "fsync_on_close" }));
    }
    if let Some(t) = job.parse("latency_target", report, |v| values::time(v, Duration::from_micros(1))) {
        let window = job.parse("latency_window", report, |v| values::time(v, Duration::from_micros(1))).unwrap_or(Duration::ZERO);
        let percentile = job.parse("latency_percentile", report, values::float_list).and_then(|v| v.first().copied()).unwrap_or(100.0);
        if window.is_zero() {
            report.refuse(job.at("latency_target"), "latency_target", "needs latency_window: the time each queue depth is measured");
            return;
        }
        // nvplan's percentiles are strictly below 100: fio's 100 (every I/O) is 99.999.
        let percentile = if percentile >= 100.0 { 99.999 } else { percentile };
        let max_depth = jo.workers.iter().map(|w| w.qdepth).max().unwrap_or(1);
        jo.latency = Some(Latency { target_us: t.as_secs_f64() * 1e6, percentile, window, max_depth, at: job.at("latency_target") });
        report.warn(
            job.at("latency_target"),
            "latency_target",
            format!("fio searches for the deepest queue that meets it; the plan measures qdepth 1, 2, 4 ... {max_depth} for {} each and expects the {percentile} percentile under {} us: the deepest passing run is fio's answer, to a power of two", crate::plan::units::fmt_duration(window), t.as_micros()),
        );
    }
}

/// What `rw` asks for.
struct Rw {
    dirs: Dirs,
    random: bool,
    /// `:N` on sequential I/O: bytes added to the offset after each I/O (negative walks
    /// backwards).
    skip: i64,
}

fn rw(job: &Job, report: &mut Report) -> Option<Rw> {
    let text = job.text("rw").unwrap_or("read").trim().to_string();
    if text.is_empty() {
        report.refuse(job.at("rw"), "rw", "rw is empty (an environment variable that is not set?)");
        return None;
    }
    let (word, postfix) = match text.split_once(':') {
        Some((w, p)) => (w.trim(), Some(p.trim())),
        None => (text.as_str(), None),
    };
    let (dirs, random) = match word {
        "read" => ([true, false, false], false),
        "write" => ([false, true, false], false),
        "trim" => ([false, false, true], false),
        "randread" => ([true, false, false], true),
        "randwrite" => ([false, true, false], true),
        "randtrim" => ([false, false, true], true),
        "rw" | "readwrite" => ([true, true, false], false),
        "randrw" => ([true, true, false], true),
        "trimwrite" | "randtrimwrite" => {
            report.refuse(job.at("rw"), "rw", format!("rw={word} writes each block right after trimming it; an ioworker picks every I/O on its own: use a trim job, then a write job with stonewall"));
            return None;
        }
        _ => {
            report.refuse(
                job.at("rw"),
                "rw",
                format!("`{word}` is not one of fio's rw values (read, write, trim, randread, randwrite, randtrim, rw, randrw, trimwrite, randtrimwrite)"),
            );
            return None;
        }
    };
    let mut skip = 0;
    if let Some(p) = postfix.filter(|p| !p.is_empty()) {
        let (neg, digits) = match p.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, p.strip_prefix('+').unwrap_or(p)),
        };
        let n = match values::bytes(digits, job.kb_base) {
            Ok(n) => n.min(i64::MAX as u64) as i64,
            Err(m) => {
                report.refuse(job.at("rw"), "rw", m);
                return None;
            }
        };
        if random && (n > 1 || neg) {
            report.refuse(job.at("rw"), "rw", format!("rw={text}: runs of {n} I/Os at each random offset have no equivalent"));
            return None;
        }
        if !random {
            skip = if neg { -n } else { n };
        }
    }
    Some(Rw { dirs, random, skip })
}

struct W<'a> {
    fields: Vec<Field>,
    job: &'a Job,
}

impl W<'_> {
    fn set(&mut self, key: &'static str, val: Val, from: &[&str]) {
        let from: Vec<Loc> = from.iter().filter_map(|n| self.job.get(n).map(|o| o.at)).collect();
        self.fields.push(Field { key, val, from, default: None });
    }
    fn set_at(&mut self, key: &'static str, val: Val, from: Vec<Loc>, default: Option<&'static str>) {
        self.fields.push(Field { key, val, from, default });
    }
}

/// `n` bytes as the plan writes them, when they are whole LBAs.
fn lbas_ok(job: &Job, report: &mut Report, option: &str, what: &str, n: u64, lba: u64) -> bool {
    if n.is_multiple_of(lba) {
        return true;
    }
    let hint = if option == "bs" || option == "bssplit" || option == "bsrange" {
        " (with fio's default kb_base=1024, KiB means 1000 bytes: write 4k for 4096)"
    } else {
        ""
    };
    report.refuse(job.at(option), option, format!("{what} is {n} bytes, not a whole number of {lba}-byte LBAs{hint}"));
    false
}

#[allow(clippy::too_many_arguments)]
fn worker(
    job: &Job,
    clone: u32,
    several: bool,
    dev: &Dev,
    layout: &Layout,
    report: &mut Report,
    needs: &mut Needs,
    ctrls: &mut BTreeMap<u32, Loc>,
) -> Option<Worker> {
    let engine = job.text("ioengine").unwrap_or("psync").trim().to_string();
    let Some(asynchronous) = options::engine(&engine) else {
        report.refuse(
            job.at("ioengine"),
            "ioengine",
            format!("ioengine={engine} does no block I/O nvplan can carry (it runs NVMe commands from user space only)"),
        );
        return None;
    };
    let rw = rw(job, report)?;
    let st = region::storage(job, clone, report)?;
    let nsid = match &st {
        Storage::Device { nsid, controller } => {
            if let Some(c) = controller {
                let first = *ctrls.entry(*c).or_insert(job.at("filename"));
                if ctrls.len() > 1 {
                    report.refuse(job.at("filename"), "filename", format!("a second NVMe controller (the first is named at line {}); a plan runs on one controller: import each controller's jobs on their own", first.line));
                }
            }
            *nsid
        }
        Storage::File(_) => 1,
    };
    if dev.fallback.is_some() && nsid > SIM_MAX_NSID {
        report.refuse(job.at("filename"), "filename", format!("namespace {nsid}: the simulator the import sets up has at most {SIM_MAX_NSID}; give --target"));
        return None;
    }
    let Some((ns_bytes, lba)) = dev.namespace(nsid) else {
        report.refuse(job.at("filename"), "filename", format!("the target has no namespace {nsid}"));
        return None;
    };
    let (sizes, size_opt) = sizes::sizes(job, rw.dirs, report)?;
    let reg = region::region(job, clone, &st, nsid, ns_bytes, sizes.min(), layout, dev.fallback.is_some(), needs, report)?;
    if reg.end > ns_bytes && dev.fallback.is_none() {
        let most = if dev.sim { ", as large as the simulator makes one" } else { "" };
        report.refuse(job.at("size"), "size", format!("the region ends at {}, beyond namespace {nsid} ({}{most})", plan_bytes(reg.end), plan_bytes(ns_bytes)));
        return None;
    }
    if let Storage::File(f) = &st
        && rw.dirs[0]
    {
        report.warn(
            job.at("filename"),
            "filename",
            format!("fio lays out (writes) the file `{f}` before a job reads it, when it is new; the plan reads the region as it is"),
        );
    }
    let mut w = W { fields: Vec::new(), job };
    let name = if several { format!("{}.{clone}", job.name) } else { job.name.clone() };
    if nsid != 1 {
        w.set("nsid", plain(nsid), &["filename", "xnvme_dev_nsid"]);
    }
    // Sizes and alignment.
    let mut size_ok = true;
    let sval = match &sizes {
        Sizes::Fixed(b) => {
            size_ok &= lbas_ok(job, report, size_opt, "the block size", *b, lba);
            plain(plan_bytes(*b))
        }
        Sizes::Weighted(v) => {
            for (b, _) in v {
                size_ok &= lbas_ok(job, report, size_opt, &format!("block size {b}"), *b, lba);
            }
            if size_opt == "bsrange" {
                Val::List(v.iter().map(|s| plain(plan_bytes(s.0))).collect())
            } else {
                Val::Map(v.iter().map(|s| (plan_bytes(s.0), plain(s.1))).collect())
            }
        }
    };
    let equal_weights = matches!(&sizes, Sizes::Weighted(v) if v.iter().all(|s| s.1 == v[0].1));
    let sval = match sval {
        // A list means equal weights; a range with a short last size needs its weights.
        Val::List(_) if !equal_weights => Val::Map(match &sizes {
            Sizes::Weighted(v) => v.iter().map(|s| (plan_bytes(s.0), plain(s.1))).collect(),
            Sizes::Fixed(_) => Vec::new(),
        }),
        v => v,
    };
    if sizes.max() > dev.max_transfer {
        report.refuse(
            job.at(size_opt),
            size_opt,
            format!(
                "{} is larger than the controller's largest transfer ({}); nvplan sends each I/O as one command",
                plan_bytes(sizes.max()),
                plan_bytes(dev.max_transfer)
            ),
        );
        size_ok = false;
    }
    if job.get(size_opt).is_some() {
        w.set("io_size", sval, &[size_opt]);
    } else {
        w.set_at("io_size", sval, Vec::new(), Some("bs=4k"));
    }
    let pct_random =
        if rw.random { job::per_direction(job, "percentage_random", rw.dirs, report, Some(100u8), values::percent).unwrap_or(Some(100)) } else { Some(0) };
    let pct_random = pct_random.unwrap_or(100);
    if pct_random > 0 {
        let ba = job::per_direction(job, "ba", rw.dirs, report, None, |t| values::bytes(t, job.kb_base)).flatten();
        let align = ba.unwrap_or(sizes.min());
        if align == 0 || !lbas_ok(job, report, "ba", "the alignment", align, lba) {
            size_ok = false;
        }
        if ba.is_some() {
            w.set("lba_align", plain(plan_bytes(align)), &["ba"]);
        } else {
            w.set_at("lba_align", plain(plan_bytes(align)), w.job.get(size_opt).map(|o| vec![o.at]).unwrap_or_default(), Some("ba = the smallest block size"));
        }
        if align > 0 && reg.start % align != 0 {
            report.warn(
                job.at("offset"),
                "offset",
                "fio aligns random offsets from the start of the region, nvplan from LBA 0; the region does not start on the alignment",
            );
        }
    }
    let lr = match pct_random {
        100 => plain("true"),
        0 => plain("false"),
        p => plain(p),
    };
    w.set("lba_random", lr, &["rw", "percentage_random", "norandommap"]);
    if rw.random && job.get("norandommap").is_none() && job.get("ba").is_none() && job.text("random_distribution").is_none_or(|d| d.trim() == "random") {
        let lfsr = job.text("random_generator").is_some_and(|g| g.trim() == "lfsr");
        let (opt, what) = if lfsr {
            ("random_generator", "random_generator=lfsr touches every block once per pass")
        } else {
            ("rw", "fio's random map touches every block of the region once per pass")
        };
        report.warn(
            job.at(opt),
            opt,
            format!("{what}; nvplan picks each offset independently, as with norandommap (after one pass about 63 % of the blocks are touched, some twice)"),
        );
    }
    if !rw.random && rw.dirs[0] && rw.dirs[1] {
        report.warn(
            job.at("rw"),
            "rw",
            "fio keeps a sequential position per direction (reads and writes each walk the region from its start); an ioworker walks one position for both",
        );
    }
    let kernel = matches!(engine.as_str(), "libaio" | "io_uring" | "sync" | "psync" | "vsync" | "pvsync" | "pvsync2" | "posixaio" | "mmap");
    let direct = job.flag("direct", report).unwrap_or(false) && job.flag("buffered", report) != Some(true);
    if kernel && !direct {
        let o = if job.get("buffered").is_some() { "buffered" } else { "direct" };
        report.warn(job.at(o), o, "fio went through the page cache (direct=0 is its default); nvplan's I/O always reaches the device");
    }
    super::ops::mix(job, &rw.dirs, &mut w.fields, report);
    // Queue depth.
    let depth = job.parse("iodepth", report, |v| values::count(v, job.kb_base)).unwrap_or(1).clamp(1, u32::MAX as u64) as u32;
    let qdepth = if asynchronous { depth } else { 1 };
    if !asynchronous && depth > 1 {
        report.warn(
            job.at("iodepth"),
            "iodepth",
            format!("ioengine={engine} is synchronous: fio keeps one I/O in flight whatever iodepth says, and so does the plan"),
        );
    }
    if qdepth as u64 + 1 > dev.max_queue_entries as u64 {
        report.refuse(
            job.at("iodepth"),
            "iodepth",
            format!("iodepth={qdepth} needs a queue of {} entries; the controller's largest is {}", qdepth as u64 + 1, dev.max_queue_entries),
        );
    }
    let from = if job.get("iodepth").is_some() && asynchronous { vec![job.at("iodepth")] } else { job.get("ioengine").map(|o| vec![o.at]).unwrap_or_default() };
    w.set_at("qdepth", plain(qdepth), from, job.get("iodepth").is_none().then_some("iodepth=1"));
    if job.get("ioengine").is_some() {
        let what = if matches!(engine.as_str(), "null" | "cpp_null") {
            "fio's null engine does no I/O; the plan does it, on its target"
        } else {
            "nvplan sends the commands itself, from user space (the plan's target)"
        };
        report.warn(job.at("ioengine"), "ioengine", format!("ioengine={engine}: {what}"));
    }
    // Region, amount, time.
    stop_and_region(job, &rw, &sizes, &reg, lba, &mut w, report);
    super::ops::extras(job, &rw.dirs, &sizes, clone, dev.cpus, &mut w.fields, report);
    if let Some(weights) = dist::from_job(job, rw.dirs, &reg, ns_bytes, lba, sizes.min(), pct_random, report) {
        if !reg.whole {
            // The distribution covers the namespace: the region is in its weights.
            w.fields.retain(|f| f.key != "region_start" && f.key != "region_end");
        }
        w.set("distribution", Val::List(weights.iter().map(plain).collect()), &["random_distribution"]);
    }
    if !size_ok {
        return None;
    }
    Some(Worker { name, clone, fields: w.fields, region: reg, writes: rw.dirs[1] || rw.dirs[2], qdepth, numjobs: job.get("numjobs").map(|o| o.at) })
}

/// `region_start`/`region_end`, and when the worker stops.
fn stop_and_region(job: &Job, rw: &Rw, sizes: &Sizes, reg: &Region, lba: u64, w: &mut W, report: &mut Report) {
    let src = region::sources(job);
    if !reg.whole {
        for (key, v) in [("region_start", reg.start), ("region_end", reg.end)] {
            if key == "region_start" && v == 0 {
                continue;
            }
            if v % lba != 0 {
                report.refuse(
                    job.at("offset"),
                    "offset",
                    format!("the region's {} at byte {v} is not on a {lba}-byte LBA", if key == "region_start" { "start" } else { "end" }),
                );
            }
            w.set_at(key, plain(plan_bytes(v)), src.clone(), None);
        }
    }
    let time_based = job.flag("time_based", report) == Some(true);
    let runtime = job.parse("runtime", report, |v| values::time(v, Duration::from_secs(1)));
    let ramp = job.parse("ramp_time", report, |v| values::time(v, Duration::from_secs(1))).unwrap_or_default();
    if !ramp.is_zero() {
        report.warn(job.at("ramp_time"), "ramp_time", "the worker runs the ramp too, but nvplan's measurements include it");
    }
    let number_ios = job.parse("number_ios", report, |v| values::count(v, job.kb_base)).filter(|&n| n > 0);
    let mut time_from = vec![];
    for n in ["runtime", "time_based", "ramp_time"] {
        if let Some(o) = job.get(n) {
            time_from.push(o.at);
        }
    }
    if time_based {
        match runtime {
            Some(t) if !t.is_zero() => w.set_at("time", plain(fmt_time(t + ramp)), time_from.clone(), None),
            _ => report.refuse(job.at("time_based"), "time_based", "time_based without runtime runs until stopped; give runtime="),
        }
    } else {
        if let Some(t) = runtime.filter(|t| !t.is_zero()) {
            w.set_at("time", plain(fmt_time(t + ramp)), time_from.clone(), None);
        }
        let fill = job.flag("fill_device", report) == Some(true);
        let amount = if fill { reg.end - reg.start } else { reg.amount };
        if rw.skip > 0 {
            // Holes: fio stops at the end of the region, so count the I/Os of the passes.
            let stride = sizes.max().saturating_add(rw.skip as u64);
            let per_pass = (reg.end - reg.start).div_ceil(stride);
            let passes = (reg.amount / (reg.end - reg.start).max(1)).max(1);
            let ios = per_pass.saturating_mul(passes);
            let n = number_ios.map_or(ios, |n| n.min(ios));
            w.set_at("io_count", plain(n), src.clone(), None);
        } else {
            let lbas = amount / lba;
            if amount % lba != 0 {
                report.warn(job.at("io_size"), "io_size", format!("{amount} bytes is not whole LBAs; the worker stops after {lbas} LBAs"));
            }
            let val = if amount % lba == 0 { plain(plan_bytes(amount)) } else { plain(lbas) };
            let default = (job.get("size").is_none() && job.get("io_size").is_none() && job.get("filesize").is_none()).then_some("size = the whole device");
            w.set_at("lba_count", val, src.clone(), default);
        }
    }
    if rw.skip != 0 {
        let step = match sizes {
            Sizes::Fixed(b) => {
                let s = i64::try_from(*b).ok().and_then(|b| b.checked_add(rw.skip));
                s.filter(|s| s % lba as i64 == 0).map(|s| (s / lba as i64, *b))
            }
            Sizes::Weighted(_) => None,
        };
        match step {
            Some((s, b)) => {
                if s < 0 {
                    // fio's first I/O is at the start, then it wraps to the end and walks down.
                    w.set("lba_start", plain(plan_bytes(reg.end.saturating_sub(b).max(reg.start))), &["rw"]);
                    report.warn(job.at("rw"), "rw", "fio reads the region's first block first and then walks down from its end; the plan starts at the end");
                }
                w.set("lba_step", plain(s), &["rw"]);
            }
            None => report.refuse(job.at("rw"), "rw", "an offset step needs one block size and a step of whole LBAs"),
        }
    }
    if let Some(n) = number_ios
        && (time_based || rw.skip <= 0)
    {
        w.set("io_count", plain(n), &["number_ios"]);
    }
    if let Some(d) = job.parse("startdelay", report, |v| match v.split_once(['-', ':']) {
        Some((a, b)) => {
            let (a, b) = (values::time(a, Duration::from_secs(1))?, values::time(b, Duration::from_secs(1))?);
            Ok(((a + b) / 2, true))
        }
        None => Ok((values::time(v, Duration::from_secs(1))?, false)),
    }) {
        if d.1 {
            report.warn(job.at("startdelay"), "startdelay", "fio draws a delay from the range for each clone; the plan takes its middle");
        }
        if !d.0.is_zero() {
            w.set("start_time", plain(fmt_time(d.0)), &["startdelay"]);
        }
    }
}

/// A duration as the plan writes it.
pub(crate) fn fmt_time(d: Duration) -> String {
    let us = d.as_micros();
    if us.is_multiple_of(3_600_000_000) && us > 0 {
        format!("{}h", us / 3_600_000_000)
    } else if us.is_multiple_of(60_000_000) && us > 0 {
        format!("{}min", us / 60_000_000)
    } else if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1000) {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}
