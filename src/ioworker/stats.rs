//! Per-worker statistics: a nanosecond latency histogram, PyNVMe's 1 µs latency
//! distribution, completions per second, and the command log.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies recorded up to one hour, three significant digits (0.1 % error).
const MAX_NS: u64 = 3_600_000_000_000;
/// Buckets of `latency_distribution`: 1 µs each, the last one collecting ≥ 1 s.
pub const DISTRIBUTION_BUCKETS: usize = 1_000_000;

/// One command of the command log, in PyNVMe3's tuple order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdlogEntry {
    /// Starting LBA.
    pub slba: u64,
    /// Number of LBAs.
    pub nlb: u32,
    /// Opcode.
    pub opcode: u8,
    /// Submission time, µs after the worker started.
    pub time_sent_us: u64,
    /// Completion time, µs after the worker started.
    pub time_cplt_us: u64,
    /// Status field: SCT << 8 | SC (0 = success; 0x7fff = no completion).
    pub status: u16,
}

/// Opcode classes of the per-class latency histograms: reads, writes, everything else.
pub const CLASSES: [&str; 3] = ["read", "write", "other"];

/// Class index of an opcode in [`CLASSES`].
#[inline]
pub fn class_of(opcode: u8) -> usize {
    match opcode {
        0x02 => 0,
        0x01 => 1,
        _ => 2,
    }
}

/// Completions and bytes per fixed interval since the worker started: the I/O-over-time
/// series of the reports. Unlike `io_per_second` it is always kept, includes the last
/// partial interval, and its interval suits the run's length.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeseries {
    /// Length of one interval, milliseconds.
    pub interval_ms: u64,
    /// Completions in each interval.
    pub ios: Vec<u64>,
    /// Bytes read and written in each interval.
    pub bytes: Vec<u64>,
    /// When set, the series never grows past this many intervals: it halves itself by
    /// doubling the interval (for runs whose length is not known up front).
    #[serde(skip)]
    pub max_len: usize,
    /// Index and end (ns from the start) of the interval the last completion fell in:
    /// completions come in time order, so most find their interval without a division.
    #[serde(skip)]
    cur: (usize, u64),
}

impl Timeseries {
    /// An empty series whose interval keeps a run of `planned` to at most about 600
    /// samples (1 ms at least). When the length is not known, the interval starts at 1 ms
    /// and doubles whenever the series would pass 1200 samples.
    pub fn for_run(planned: Option<Duration>) -> Timeseries {
        const STEPS_MS: [u64; 16] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 300_000];
        let (interval_ms, max_len) = match planned {
            None => (1, 1200),
            Some(t) => {
                let want = (t.as_millis() as u64).div_ceil(600);
                (STEPS_MS.iter().copied().find(|&s| s >= want).unwrap_or(600_000), 0)
            }
        };
        Timeseries { interval_ms, ios: Vec::new(), bytes: Vec::new(), max_len, cur: (0, interval_ms * 1_000_000) }
    }

    /// A series of `interval_ms` intervals with these counts (for series read or built
    /// elsewhere: reports, tests).
    pub fn new(interval_ms: u64, ios: Vec<u64>, bytes: Vec<u64>) -> Timeseries {
        let cur = (ios.len().saturating_sub(1), ios.len().max(1) as u64 * interval_ms * 1_000_000);
        Timeseries { interval_ms, ios, bytes, max_len: 0, cur }
    }

    /// Doubles the interval: each pair of intervals becomes one.
    fn coarsen(&mut self) {
        let pairs = |v: &[u64]| v.chunks(2).map(|c| c.iter().sum()).collect::<Vec<u64>>();
        self.ios = pairs(&self.ios);
        self.bytes = pairs(&self.bytes);
        self.interval_ms *= 2;
        let i = self.cur.0 / 2;
        self.cur = (i, (i as u64 + 1) * self.interval_ms * 1_000_000);
    }

    /// For a series of a run whose length was not known: coarser intervals until they
    /// hold 10 completions on average (or 40 intervals are left), so that a chart of a
    /// short run shows its rate rather than single completions.
    pub fn settle(&mut self) {
        if self.max_len == 0 {
            return;
        }
        while self.ios.len() > 40 && self.ios.iter().sum::<u64>() < 10 * self.ios.len() as u64 {
            self.coarsen();
        }
    }

    #[inline]
    fn add(&mut self, since_start_ns: u64, bytes: u64) {
        let (mut i, end) = self.cur;
        let start = end.saturating_sub(self.interval_ms * 1_000_000);
        if since_start_ns >= end || since_start_ns < start {
            i = (since_start_ns / (self.interval_ms * 1_000_000)) as usize;
            while self.max_len > 0 && i >= self.max_len {
                self.coarsen();
                i = (since_start_ns / (self.interval_ms * 1_000_000)) as usize;
            }
            self.cur = (i, (i as u64 + 1) * self.interval_ms * 1_000_000);
        }
        if self.ios.len() <= i {
            self.ios.resize(i + 1, 0);
            self.bytes.resize(i + 1, 0);
        }
        self.ios[i] += 1;
        self.bytes[i] += bytes;
    }
}

/// The statistics a worker accumulates.
pub(crate) struct Stats {
    /// Latency of the tracked opcode, only when `only_opcode` is set (otherwise the
    /// classes together are the histogram: one record per completion, not two).
    pub hist: Option<Histogram<u64>>,
    /// Latency by opcode class ([`CLASSES`]), every opcode included.
    pub class_hist: [Histogram<u64>; 3],
    pub series: Timeseries,
    pub distribution: Option<Vec<u32>>,
    pub per_second: Option<Vec<u64>>,
    pub cmdlog: Option<Ring>,
    pub cmdlog_errors_only: bool,
    pub only_opcode: Option<u8>,
    pub latency_max_ns: u64,
    pub latency_sum_ns: u128,
    pub latency_n: u64,
}

/// A ring of the last N command log entries.
pub(crate) struct Ring {
    buf: Vec<CmdlogEntry>,
    next: usize,
    full: bool,
}

impl Ring {
    fn new(n: usize) -> Self {
        Ring { buf: Vec::with_capacity(n), next: 0, full: false }
    }
    fn push(&mut self, e: CmdlogEntry) {
        let cap = self.buf.capacity();
        if cap == 0 {
            return;
        }
        if self.buf.len() < cap {
            self.buf.push(e);
        } else {
            self.buf[self.next] = e;
            self.full = true;
        }
        self.next = (self.next + 1) % cap;
    }
    /// Oldest first.
    pub fn to_vec(&self) -> Vec<CmdlogEntry> {
        if !self.full {
            return self.buf.clone();
        }
        let mut v = self.buf[self.next..].to_vec();
        v.extend_from_slice(&self.buf[..self.next]);
        v
    }
}

impl Stats {
    pub fn new(distribution: bool, per_second: Option<Duration>, cmdlog: usize, errors_only: bool, only_opcode: Option<u8>, planned: Option<Duration>) -> Self {
        let h = || Histogram::new_with_bounds(1, MAX_NS, 3).expect("valid histogram bounds");
        Stats {
            hist: only_opcode.map(|_| h()),
            class_hist: [h(), h(), h()],
            series: Timeseries::for_run(planned),
            distribution: distribution.then(|| vec![0u32; DISTRIBUTION_BUCKETS]),
            per_second: per_second.map(|t| Vec::with_capacity(t.as_secs() as usize + 2)),
            cmdlog: (cmdlog > 0).then(|| Ring::new(cmdlog)),
            cmdlog_errors_only: errors_only,
            only_opcode,
            latency_max_ns: 0,
            latency_sum_ns: 0,
            latency_n: 0,
        }
    }

    /// Records one completion `since_start_ns` after the worker started, moving `bytes`:
    /// its latency (if the opcode is tracked), its second and its interval.
    #[inline]
    pub fn record(&mut self, opcode: u8, latency_ns: u64, since_start_ns: u64, bytes: u64) {
        let ns = latency_ns.clamp(1, MAX_NS);
        self.series.add(since_start_ns, bytes);
        self.class_hist[class_of(opcode)].record(ns).expect("clamped into the histogram's range");
        if let Some(ps) = &mut self.per_second {
            let s = (since_start_ns / 1_000_000_000) as usize;
            if ps.len() <= s {
                ps.resize(s + 1, 0);
            }
            ps[s] += 1;
        }
        if let Some(o) = self.only_opcode {
            if o != opcode {
                return;
            }
            if let Some(h) = &mut self.hist {
                h.record(ns).expect("clamped into the histogram's range");
            }
        }
        self.latency_max_ns = self.latency_max_ns.max(latency_ns);
        self.latency_sum_ns += latency_ns as u128;
        self.latency_n += 1;
        if let Some(d) = &mut self.distribution {
            d[((latency_ns / 1000) as usize).min(DISTRIBUTION_BUCKETS - 1)] += 1;
        }
    }

    /// Adds a command to the log (unless only errors are logged and it succeeded).
    #[inline]
    pub fn log(&mut self, e: CmdlogEntry) {
        if let Some(r) = &mut self.cmdlog
            && (!self.cmdlog_errors_only || e.status != 0)
        {
            r.push(e);
        }
    }

    /// The latency histogram of the tracked opcodes (all of them unless `only_opcode`).
    pub fn latency_hist(&self) -> Histogram<u64> {
        match &self.hist {
            Some(h) => h.clone(),
            None => {
                let mut all = self.class_hist[0].clone();
                for h in &self.class_hist[1..] {
                    all.add(h).expect("histograms of the same bounds");
                }
                all
            }
        }
    }
}

/// Latency at percentile `p` (0 < p < 100) of `h`, µs.
pub fn percentile_us(h: &Histogram<u64>, p: f64) -> u64 {
    if h.is_empty() {
        return 0;
    }
    // The histogram answers with the top of the bucket; report its middle, rounded.
    let v = h.value_at_quantile(p / 100.0);
    (h.median_equivalent(v) + 500) / 1000
}

impl Stats {}

/// PyNVMe's `iops_consistency`: the per-second count at `slowest_percentage` (counts sorted
/// from fastest to slowest) divided by the mean count.
pub fn iops_consistency(per_second: &[u64], slowest_percentage: f64) -> Option<f64> {
    if per_second.is_empty() {
        return None;
    }
    let mut v = per_second.to_vec();
    v.sort_unstable_by(|a, b| b.cmp(a));
    let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
    if mean == 0.0 {
        return None;
    }
    let i = ((v.len() as f64 * slowest_percentage / 100.0) as usize).min(v.len() - 1);
    Some(v[i] as f64 / mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdlog_ring_keeps_the_last_n_oldest_first() {
        let mut r = Ring::new(3);
        let e = |n: u64| CmdlogEntry { slba: n, nlb: 1, opcode: 2, time_sent_us: 0, time_cplt_us: 0, status: 0 };
        for n in 0..5 {
            r.push(e(n));
        }
        assert_eq!(r.to_vec().iter().map(|x| x.slba).collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn percentiles_and_distribution_follow_the_recorded_latencies() {
        let mut s = Stats::new(true, Some(Duration::from_secs(2)), 0, false, None, Some(Duration::from_secs(2)));
        for i in 1..=1000u64 {
            s.record(2, i * 1000, i / 600 * 1_000_000_000, 4096);
        }
        let h = s.latency_hist();
        assert_eq!(percentile_us(&h, 50.0), 500);
        assert!((989..=991).contains(&percentile_us(&h, 99.0)));
        let d = s.distribution.as_ref().unwrap();
        assert_eq!(d[10], 1);
        assert_eq!(d.iter().map(|&x| x as u64).sum::<u64>(), 1000);
        assert_eq!(s.per_second.as_ref().unwrap(), &vec![599, 401]);
        assert_eq!(s.latency_max_ns, 1_000_000);
    }

    #[test]
    fn opcode_filter_keeps_other_opcodes_out_of_latency_stats() {
        let mut s = Stats::new(false, None, 0, false, Some(9), None);
        s.record(2, 5000, 0, 512);
        s.record(9, 7000, 0, 0);
        assert_eq!((s.latency_n, s.latency_max_ns), (1, 7000));
        // The per-class histograms keep every opcode.
        assert_eq!((s.class_hist[0].len(), s.class_hist[2].len()), (1, 1));
    }

    #[test]
    fn timeseries_interval_keeps_runs_to_about_600_samples() {
        let ms = |t: Option<u64>| Timeseries::for_run(t.map(Duration::from_millis)).interval_ms;
        assert_eq!(ms(None), 1);
        assert_eq!(ms(Some(60)), 1);
        assert_eq!(ms(Some(6_000)), 10);
        assert_eq!(ms(Some(600_000)), 1000);
        assert_eq!(ms(Some(86_400_000)), 300_000);
    }

    #[test]
    fn timeseries_counts_ios_and_bytes_per_interval_with_the_partial_last_one() {
        let mut s = Stats::new(false, None, 0, false, None, Some(Duration::from_millis(600)));
        assert_eq!(s.series.interval_ms, 1);
        for ns in [0, 999_999, 1_000_000, 3_500_000] {
            s.record(1, 10_000, ns, 4096);
        }
        assert_eq!(s.series.ios, vec![2, 1, 0, 1]);
        assert_eq!(s.series.bytes, vec![8192, 4096, 0, 4096]);
        assert_eq!(s.class_hist[1].len(), 4);
    }

    #[test]
    fn timeseries_of_a_run_of_unknown_length_doubles_its_interval_past_1200_samples() {
        let mut t = Timeseries::for_run(None);
        for ms in 0..1200u64 {
            t.add(ms * 1_000_000, 10);
        }
        assert_eq!((t.interval_ms, t.ios.len()), (1, 1200));
        t.add(1200 * 1_000_000, 10);
        assert_eq!((t.interval_ms, t.ios.len()), (2, 601));
        assert_eq!((t.ios[0], t.ios[599], t.ios[600]), (2, 2, 1));
        assert_eq!(t.bytes.iter().sum::<u64>(), 12010);
        // A long gap coarsens as often as needed.
        t.add(10_000 * 1_000_000, 10);
        assert_eq!(t.interval_ms, 16);
        assert_eq!(t.ios.iter().sum::<u64>(), 1202);
    }

    #[test]
    fn timeseries_of_a_short_slow_run_settles_on_intervals_of_ten_completions() {
        let mut t = Timeseries::for_run(None);
        // 1.3 completions a millisecond for 400 ms.
        for k in 0..520u64 {
            t.add(k * 400_000_000 / 520, 4096);
        }
        t.settle();
        assert_eq!(t.interval_ms, 8);
        assert!(t.ios.len() == 50 && t.ios.iter().sum::<u64>() == 520);
        // A timed run's series is left as it is.
        let mut timed = Timeseries::for_run(Some(Duration::from_millis(400)));
        timed.add(0, 1);
        timed.settle();
        assert_eq!(timed.interval_ms, 1);
    }

    #[test]
    fn consistency_is_slowest_over_mean() {
        assert_eq!(iops_consistency(&[100, 100, 100, 50], 99.9), Some(50.0 / 87.5));
        assert_eq!(iops_consistency(&[], 99.9), None);
    }
}
