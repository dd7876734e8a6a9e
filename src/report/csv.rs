//! The CSV files of a run, as text. Each has a header row; numbers are plain (no units,
//! fixed decimals), one file per kind of data so that a spreadsheet or pandas reads it
//! without reshaping. The formats are pinned by snapshot tests.

use std::collections::BTreeSet;

use crate::exec::{Identity, PhaseSummary, Summary, WorkerSummary};
use crate::ioworker::code;
use crate::nvme::NvmOpcode;

/// A CSV document under construction; the rows of a run's files start with the run's
/// identity.
pub(crate) struct Doc {
    w: csv::Writer<Vec<u8>>,
    prefix: Vec<String>,
}

impl Doc {
    pub(crate) fn new(header: &[&str]) -> Doc {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        // Writing to memory cannot fail.
        let _ = w.write_record(header);
        Doc { w, prefix: Vec::new() }
    }
    /// A file of the run `s`: the identity columns first ([`Identity::COLUMNS`]).
    fn run(s: &Summary, header: &[&str]) -> Doc {
        let full: Vec<&str> = Identity::COLUMNS.iter().copied().chain(header.iter().copied()).collect();
        let mut d = Doc::new(&full);
        d.prefix = s.identity.values().map(String::from).to_vec();
        d
    }
    pub(crate) fn row<I: IntoIterator<Item = String>>(&mut self, fields: I) {
        let _ = self.w.write_record(self.prefix.iter().cloned().chain(fields).collect::<Vec<_>>());
    }
    pub(crate) fn finish(self) -> String {
        let bytes = self.w.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

/// `x` with `d` decimals; non-finite values as empty fields.
pub(crate) fn num(x: f64, d: usize) -> String {
    if x.is_finite() { format!("{x:.d$}") } else { String::new() }
}

/// A percentile as written in reports: `99.9`, `max` for 100.
pub fn percentile_name(p: f64) -> String {
    if p >= 100.0 { "max".into() } else { format!("{p}") }
}

fn sweep_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The sweep keys of every phase run, sorted (one column each in `workers.csv`).
fn sweep_keys(s: &Summary) -> Vec<String> {
    s.phases.iter().flat_map(|p| p.sweep.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
}

fn phase_cols(i: usize, p: &PhaseSummary) -> [String; 2] {
    [i.to_string(), p.label.clone()]
}

fn each_worker(s: &Summary) -> impl Iterator<Item = (usize, &PhaseSummary, &WorkerSummary)> {
    s.phases.iter().enumerate().flat_map(|(i, p)| p.workers.iter().map(move |w| (i, p, w)))
}

fn hex_words(w: &[u32]) -> String {
    w.iter().map(|x| format!("{x:08x}")).collect::<Vec<_>>().join(" ")
}

/// `workers.csv`: one row per phase run × worker with every result field.
pub fn workers(s: &Summary) -> String {
    let keys = sweep_keys(s);
    let mut header: Vec<String> = ["phase_index", "phase", "name", "repeat"].map(String::from).to_vec();
    header.extend(keys.iter().map(|k| format!("sweep.{k}")));
    header.extend(
        [
            "phase_outcome",
            "worker",
            "nsid",
            "cpu_id",
            "outcome",
            "start_s",
            "iops",
            "mbps",
            "io_count_read",
            "io_count_nonread",
            "io_count_write",
            "mseconds",
            "latency_max_us",
            "latency_average_us",
            "error",
            "error_name",
            "error_message",
            "cpu_usage",
            "lba_count_read",
            "lba_count_nonread",
            "lba_count_write",
            "test_start_sec",
            "test_start_nsec",
            "iops_consistency",
            "error_count",
            "expected_errors",
            "slow_io_count",
            "resumes",
            "aborted_by_reset",
            "lbas_reverted",
            "miscompare_count",
            "op_counts",
            "percentile_latency",
            "error_cmd",
            "error_cpl",
            "failed_checks",
        ]
        .map(String::from),
    );
    let mut d = Doc::run(s, &header.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, p, w) in each_worker(s) {
        let r = &w.result;
        let mut row = vec![i.to_string(), p.label.clone(), p.name.clone(), p.repeat.to_string()];
        row.extend(keys.iter().map(|k| p.sweep.get(k).map(sweep_text).unwrap_or_default()));
        let failed: Vec<String> = w.checks.iter().filter(|c| !c.pass).map(|c| format!("{}: expected {}, got {}", c.what, c.expected, c.actual)).collect();
        row.extend([
            outcome(p.outcome),
            w.name.clone(),
            w.nsid.to_string(),
            w.cpu_id.map(|c| c.to_string()).unwrap_or_default(),
            outcome(w.outcome),
            num(w.start_s, 6),
            num(w.iops, 1),
            num(w.mbps, 3),
            r.io_count_read.to_string(),
            r.io_count_nonread.to_string(),
            r.io_count_write.to_string(),
            r.mseconds.to_string(),
            r.latency_max_us.to_string(),
            r.latency_average_us.to_string(),
            r.error.to_string(),
            code::name(r.error).into(),
            r.error_message.clone().unwrap_or_default(),
            num(r.cpu_usage, 4),
            r.lba_count_read.to_string(),
            r.lba_count_nonread.to_string(),
            r.lba_count_write.to_string(),
            r.test_start_sec.to_string(),
            r.test_start_nsec.to_string(),
            r.iops_consistency.map(|c| num(c, 4)).unwrap_or_default(),
            r.error_count.to_string(),
            r.expected_errors.to_string(),
            r.slow_io_count.to_string(),
            r.resumes.to_string(),
            r.aborted_by_reset.to_string(),
            r.lbas_reverted.to_string(),
            r.miscompare_count.to_string(),
            r.op_counts.iter().map(|(o, n)| format!("{}={n}", NvmOpcode::from(*o).name())).collect::<Vec<_>>().join(" "),
            r.percentile_latency.as_ref().map(|v| v.iter().map(|(p, us)| format!("{p}={us}")).collect::<Vec<_>>().join(" ")).unwrap_or_default(),
            if r.error == 0 { String::new() } else { hex_words(&r.error_cmd) },
            if r.error == 0 { String::new() } else { hex_words(&r.error_cpl) },
            failed.join("; "),
        ]);
        d.row(row);
    }
    d.finish()
}

pub(crate) fn outcome(o: crate::exec::Outcome) -> String {
    serde_json::to_value(o).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

/// `io_per_second.csv`: I/Os, IOPS and MB/s of each worker per interval of its
/// timeseries, timed from the phase start. The interval (`interval_s`) keeps a run to
/// about 600 rows: 1 s for a 10-minute run, 10 ms for a 6-second one.
pub fn io_per_second(s: &Summary) -> String {
    let mut d = Doc::run(s, &["phase_index", "phase", "worker", "second", "interval_s", "ios", "iops", "mbps"]);
    for (i, p, w) in each_worker(s) {
        let Some(ts) = &w.result.timeseries else { continue };
        let iv = ts.interval_ms as f64 / 1000.0;
        for (k, (&n, &b)) in ts.ios.iter().zip(&ts.bytes).enumerate() {
            let [a, b_] = phase_cols(i, p);
            d.row([a, b_, w.name.clone(), num(w.start_s + k as f64 * iv, 3), num(iv, 3), n.to_string(), num(n as f64 / iv, 1), num(b as f64 / 1e6 / iv, 3)]);
        }
    }
    d.finish()
}

/// `latency_percentiles.csv`: the standard percentiles and those the plan asked for, per
/// worker and opcode class.
pub fn latency_percentiles(s: &Summary) -> String {
    let mut d = Doc::run(s, &["phase_index", "phase", "worker", "class", "count", "percentile", "latency_us"]);
    for (i, p, w) in each_worker(s) {
        for l in &w.latency {
            for &(pc, us) in &l.percentiles {
                let [a, b] = phase_cols(i, p);
                d.row([a, b, w.name.clone(), l.class.clone(), l.count.to_string(), percentile_name(pc), num(us, 2)]);
            }
        }
    }
    d.finish()
}

/// `latency_histogram.csv`: the non-empty log-spaced latency buckets (20 a decade), per
/// worker and opcode class.
pub fn latency_histogram(s: &Summary) -> String {
    let mut d = Doc::run(s, &["phase_index", "phase", "worker", "class", "lower_us", "upper_us", "count"]);
    for (i, p, w) in each_worker(s) {
        for l in &w.latency {
            for &(lo, hi, n) in &l.histogram {
                let [a, b] = phase_cols(i, p);
                d.row([a, b, w.name.clone(), l.class.clone(), num(lo, 3), num(hi, 3), n.to_string()]);
            }
        }
    }
    d.finish()
}

/// `events.csv`: every timed event, planned and actual times from the phase start.
pub fn events(s: &Summary) -> String {
    let mut d = Doc::run(
        s,
        &[
            "phase_index",
            "phase",
            "event",
            "kind",
            "detail",
            "planned_s",
            "actual_s",
            "late_ms",
            "duration_ms",
            "status",
            "cdw0",
            "allow_failure",
            "outcome",
            "error",
        ],
    );
    for (i, p) in s.phases.iter().enumerate() {
        for e in &p.events {
            let fired = e.outcome != crate::exec::Outcome::Skipped;
            let [a, b] = phase_cols(i, p);
            d.row([
                a,
                b,
                e.name.clone(),
                e.kind.clone(),
                e.detail.clone(),
                num(e.planned_s, 6),
                if fired { num(e.actual_s, 6) } else { String::new() },
                if fired { num(e.late_ms, 3) } else { String::new() },
                if fired { num(e.duration_ms, 3) } else { String::new() },
                e.status.clone().unwrap_or_default(),
                e.cdw0.map(|c| format!("{c:#010x}")).unwrap_or_default(),
                e.allow_failure.to_string(),
                outcome(e.outcome),
                e.error.clone().unwrap_or_default(),
            ]);
        }
    }
    d.finish()
}

/// `cmdlog.csv`: the command logs workers asked for (`output_cmdlog_list`); `None` when
/// no worker kept one.
pub fn cmdlog(s: &Summary) -> Option<String> {
    if !each_worker(s).any(|(_, _, w)| w.result.cmdlog.is_some()) {
        return None;
    }
    let mut d =
        Doc::run(s, &["phase_index", "phase", "worker", "index", "slba", "nlb", "opcode", "command", "time_sent_us", "time_cplt_us", "latency_us", "status"]);
    for (i, p, w) in each_worker(s) {
        for (k, c) in w.result.cmdlog.iter().flatten().enumerate() {
            let [a, b] = phase_cols(i, p);
            d.row([
                a,
                b,
                w.name.clone(),
                k.to_string(),
                c.slba.to_string(),
                c.nlb.to_string(),
                format!("{:#04x}", c.opcode),
                NvmOpcode::from(c.opcode).name().into(),
                c.time_sent_us.to_string(),
                c.time_cplt_us.to_string(),
                c.time_cplt_us.saturating_sub(c.time_sent_us).to_string(),
                format!("{:02x}/{:02x}", c.status >> 8, c.status & 0xff),
            ]);
        }
    }
    Some(d.finish())
}

/// `metamode.csv`: every metamode step, with expected and actual values; `None` when no
/// phase run had steps.
pub fn metamode(s: &Summary) -> Option<String> {
    if s.phases.iter().all(|p| p.metamode.is_empty()) {
        return None;
    }
    let mut d = Doc::run(s, &["phase_index", "phase", "index", "step", "detail", "outcome", "expected", "actual", "error", "duration_ms"]);
    for (i, p) in s.phases.iter().enumerate() {
        for m in &p.metamode {
            let [a, b] = phase_cols(i, p);
            d.row([
                a,
                b,
                m.index.to_string(),
                m.step.clone(),
                m.detail.clone(),
                outcome(m.outcome),
                m.expected.clone().unwrap_or_default(),
                m.actual.clone().unwrap_or_default(),
                m.error.clone().unwrap_or_default(),
                num(m.duration_ms, 3),
            ]);
        }
    }
    Some(d.finish())
}

/// `comparison.csv` of `nvplan report DIR...`: one row per phase run × run, with total
/// IOPS and MB/s and the latency percentiles of all workers together.
pub fn comparison(runs: &[(String, &Summary)]) -> String {
    use super::{COMPARED_PERCENTILES, PhaseTotals};
    let mut header: Vec<String> = ["phase", "run", "plan", "model", "serial", "firmware", "outcome", "iops", "mbps"].map(String::from).to_vec();
    header.extend(COMPARED_PERCENTILES.iter().map(|&q| format!("latency_us_{}", percentile_name(q))));
    let mut d = Doc::new(&header.iter().map(String::as_str).collect::<Vec<_>>());
    for (label, s) in runs {
        let dev = s.device.clone().unwrap_or_default();
        for p in s.phases.iter().filter(|p| p.outcome != crate::exec::Outcome::Skipped) {
            let t = PhaseTotals::of(p);
            let mut row = vec![
                p.label.clone(),
                label.clone(),
                s.plan.clone(),
                dev.model.clone(),
                dev.serial.clone(),
                dev.firmware.clone(),
                outcome(p.outcome),
                num(t.iops, 1),
                num(t.mbps, 3),
            ];
            row.extend(COMPARED_PERCENTILES.iter().map(|&q| t.latency_us.iter().find(|x| x.0 == q).map(|x| num(x.1, 2)).unwrap_or_default()));
            d.row(row);
        }
    }
    d.finish()
}
