//! Parameters of an I/O worker, named and defaulted as PyNVMe3's ioworker, and their
//! validation against the namespace they will run on.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Sizes of I/Os in LBAs (1-based): one size, several with equal weight, or weighted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IoSize {
    /// Every I/O has this many LBAs.
    Fixed(u32),
    /// Equal weight for each size.
    List(Vec<u32>),
    /// `(size, weight)` pairs: `{8: 50, 16: 25, 256: 25}`.
    Weighted(Vec<(u32, u32)>),
}

impl IoSize {
    /// `(size, weight)` pairs in declaration order.
    pub fn weighted(&self) -> Vec<(u32, u32)> {
        match self {
            IoSize::Fixed(n) => vec![(*n, 1)],
            IoSize::List(v) => v.iter().map(|&n| (n, 1)).collect(),
            IoSize::Weighted(v) => v.clone(),
        }
    }
    /// Largest size.
    pub fn max(&self) -> u32 {
        self.weighted().iter().map(|w| w.0).max().unwrap_or(0)
    }
}

/// One entry of `io_sequence`, in the seed's order: starting LBA, number of LBAs, opcode,
/// and when to send it (µs after the worker starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqIo {
    /// Starting LBA.
    pub slba: u64,
    /// Number of LBAs (1-based).
    pub nlb: u32,
    /// Opcode.
    pub opcode: u8,
    /// Send time, µs after the start.
    pub time_sent_us: u64,
}

/// What a worker does when a reset or power loss takes its queue pair away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReset {
    /// Stop with error -7, as PyNVMe's ioworker does.
    #[default]
    Stop,
    /// Wait for the controller to come back, create a new queue pair and go on to the
    /// worker's own stop condition.
    Resume,
}

/// Everything that shapes an I/O worker. Field names, meanings and defaults are PyNVMe3's.
#[derive(Clone, Debug)]
pub struct IoWorkerConfig {
    /// Size of each I/O in LBAs. Default 8.
    pub io_size: IoSize,
    /// Alignment of the starting LBA: one value for all sizes, or one per `io_size` entry.
    /// Empty: 1.
    pub lba_align: Vec<u32>,
    /// Run time. `None`: no time limit.
    pub time: Option<Duration>,
    /// Number of I/Os to send; 0: no limit.
    pub io_count: u64,
    /// Number of LBAs to transfer before stopping; 0: no limit.
    pub lba_count: u64,
    /// Percentage of I/Os with a random starting LBA (true = 100, false = 0). Default 100.
    pub lba_random: u8,
    /// First LBA of sequential I/O. `None`: `region_start`.
    pub lba_start: Option<u64>,
    /// Distance between consecutive sequential I/Os in LBAs (negative walks down, 0
    /// repeats). `None`: the I/O size.
    pub lba_step: Option<i64>,
    /// When to send the first I/O; workers given the same instant start together.
    pub start_time: Option<Instant>,
    /// Percentage of reads; the rest are writes. Default 100. Ignored with `op_percentage`.
    pub read_percentage: u8,
    /// Opcode mix `{opcode: percentage}`; percentages with two decimals summing to 100.00.
    pub op_percentage: Option<Vec<(u8, f64)>>,
    /// Percentage of I/Os whose data pointer is an SGL. Default 0.
    pub sgl_percentage: u8,
    /// I/Os outstanding; the queue has `qdepth + 1` entries. Default 63.
    pub qdepth: u32,
    /// Submission queue priority class for weighted round robin. Default 0.
    pub qprio: u8,
    /// Start of each LBA region (inclusive). Default `[0]`.
    pub region_start: Vec<u64>,
    /// End of each LBA region (exclusive), clamped to the namespace. Default: the end.
    pub region_end: Vec<u64>,
    /// I/Os per second to send at most; 0: as fast as possible.
    pub iops: u64,
    /// Upper 16 bits of CDW12 of every I/O (FUA is 0x4000).
    pub io_flags: u16,
    /// 100 weights summing to 10000: share of I/Os for each 1 % of the LBA space.
    pub distribution: Option<Vec<u32>>,
    /// Data pattern type (0, 32, 0xBEEF, 0x1234, 0x4321). Default 0xBEEF.
    pub ptype: u32,
    /// Data pattern value. Default 100.
    pub pvalue: u32,
    /// Exact I/Os to send instead of generated ones.
    pub io_sequence: Option<Vec<SeqIo>>,
    /// Latency above which an I/O counts as slow. Default 1 s.
    pub slow_latency: Duration,
    /// Stop at the first failed I/O. Default true.
    pub exit_on_error: bool,
    /// Skip data verification for this worker.
    pub verify_disable: bool,
    /// CPU core to pin the worker's thread to.
    pub cpu_id: Option<usize>,
    /// Collect I/O completions per second.
    pub output_io_per_second: bool,
    /// Percentiles to report (e.g. `[99.0, 99.9, 99.999]`), in µs; also enables
    /// `latency_distribution`.
    pub output_percentile_latency: Vec<f64>,
    /// Collect latency statistics of this opcode only.
    pub output_percentile_latency_opcode: Option<u8>,
    /// Keep the last N completed commands.
    pub output_cmdlog_list: usize,
    /// Keep only failed commands in the command log.
    pub cmdlog_error_only: bool,
    /// Seed of address, size and opcode generation.
    pub seed: u64,
    /// Behaviour when a reset or power loss takes the queue pair away.
    pub on_reset: OnReset,
}

impl Default for IoWorkerConfig {
    fn default() -> Self {
        IoWorkerConfig {
            io_size: IoSize::Fixed(8),
            lba_align: Vec::new(),
            time: None,
            io_count: 0,
            lba_count: 0,
            lba_random: 100,
            lba_start: None,
            lba_step: None,
            start_time: None,
            read_percentage: 100,
            op_percentage: None,
            sgl_percentage: 0,
            qdepth: 63,
            qprio: 0,
            region_start: vec![0],
            region_end: vec![u64::MAX],
            iops: 0,
            io_flags: 0,
            distribution: None,
            ptype: 0xBEEF,
            pvalue: 100,
            io_sequence: None,
            slow_latency: Duration::from_secs(1),
            exit_on_error: true,
            verify_disable: false,
            cpu_id: None,
            output_io_per_second: false,
            output_percentile_latency: Vec::new(),
            output_percentile_latency_opcode: None,
            output_cmdlog_list: 0,
            cmdlog_error_only: false,
            seed: 1,
            on_reset: OnReset::Stop,
        }
    }
}

/// A parameter the worker cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// The parameter.
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

fn err<T>(field: &'static str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field, message: message.into() })
}

/// Longest run time PyNVMe accepts (1000 hours).
pub const MAX_TIME: Duration = Duration::from_secs(1000 * 3600);

/// A configuration checked against a namespace and resolved into what the worker runs.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    /// `(size, weight, align)`.
    pub sizes: Vec<(u32, u32, u32)>,
    /// `[start, end)` per region, clamped and aligned.
    pub regions: Vec<(u64, u64)>,
    /// `(opcode, weight in 1/100 %)`, summing to 10000.
    pub ops: Vec<(u8, u32)>,
    /// I/Os to send (0: no limit), after the one-pass rule.
    pub io_count: u64,
    /// LBAs to send (0: no limit).
    pub lba_count: u64,
    /// I/Os outstanding.
    pub qdepth: u32,
}

/// The opcodes `read_percentage` stands for.
const READ: u8 = 0x02;
const WRITE: u8 = 0x01;

impl IoWorkerConfig {
    /// Checks every parameter and resolves defaults against a namespace of `nsze` LBAs
    /// and a controller whose queues hold at most `max_entries` entries.
    pub(crate) fn resolve(&self, nsze: u64, max_entries: u32) -> Result<Resolved, ConfigError> {
        let weighted = self.io_size.weighted();
        if weighted.is_empty() {
            return err("io_size", "no size given; write e.g. io_size: 8");
        }
        for &(n, w) in &weighted {
            if n == 0 {
                return err("io_size", "a size of 0 LBAs; sizes are 1-based LBA counts");
            }
            if n > 0x10000 {
                return err("io_size", format!("{n} LBAs is above 65536, the most one command can carry (CDW12.NLB is 16 bits)"));
            }
            if w == 0 {
                return err("io_size", format!("size {n} has weight 0; remove it or give it a weight"));
            }
        }
        let aligns: Vec<u32> = match self.lba_align.len() {
            0 => vec![1; weighted.len()],
            1 => vec![self.lba_align[0]; weighted.len()],
            n if n == weighted.len() => self.lba_align.clone(),
            n => return err("lba_align", format!("{n} values for {} io_size entries; give one value or one per size", weighted.len())),
        };
        if let Some(a) = aligns.iter().find(|&&a| a == 0 || a > 0x10000) {
            return err("lba_align", format!("{a} is outside 1..=65536"));
        }
        for (field, v) in [("lba_random", self.lba_random), ("read_percentage", self.read_percentage), ("sgl_percentage", self.sgl_percentage)] {
            if v > 100 {
                return err(field, format!("{v} is above 100 (a percentage)"));
            }
        }
        if self.qprio > 3 {
            return err("qprio", format!("{} is outside 0..=3 (urgent, high, medium, low)", self.qprio));
        }
        if self.time.is_some_and(|t| t > MAX_TIME) {
            return err("time", "more than 1000 hours; split the run");
        }
        // Regions.
        if self.region_start.len() != self.region_end.len() {
            return err(
                "region_end",
                format!("{} region_start values but {} region_end values; give one end per start", self.region_start.len(), self.region_end.len()),
            );
        }
        if self.region_start.is_empty() {
            return err("region_start", "no region given");
        }
        let max_align = *aligns.iter().max().expect("non-empty") as u64;
        let mut regions = Vec::new();
        for (i, (&s, &e)) in self.region_start.iter().zip(&self.region_end).enumerate() {
            let end = e.min(nsze);
            let start = s.next_multiple_of(max_align);
            if s >= end {
                return err(
                    "region_start",
                    format!("region {i}: start {s:#x} is not below its end {end:#x} (region_end is exclusive and at most the namespace size {nsze:#x})"),
                );
            }
            if start >= end {
                return err("lba_align", format!("region {i} [{s:#x}, {end:#x}) holds no LBA aligned to {max_align}"));
            }
            regions.push((start, end));
        }
        let max_size = weighted.iter().map(|w| w.0).max().expect("non-empty") as u64;
        if regions.iter().all(|&(s, e)| e - s < max_size) && matches!(self.io_size, IoSize::List(_) | IoSize::Weighted(_)) {
            return err("io_size", format!("every region is smaller than the largest I/O ({max_size} LBAs)"));
        }
        // Opcodes.
        let ops = match &self.op_percentage {
            Some(list) => {
                if list.is_empty() {
                    return err("op_percentage", "empty; give {opcode: percentage} pairs summing to 100");
                }
                let mut ops = Vec::new();
                for &(op, pct) in list {
                    if !(0.0..=100.0).contains(&pct) || !pct.is_finite() {
                        return err("op_percentage", format!("opcode {op:#04x}: {pct} is not a percentage"));
                    }
                    let w = (pct * 100.0).round() as u32;
                    if ((w as f64) / 100.0 - pct).abs() > 1e-9 {
                        return err("op_percentage", format!("opcode {op:#04x}: {pct} has more than two decimals"));
                    }
                    if ops.iter().any(|&(o, _)| o == op) {
                        return err("op_percentage", format!("opcode {op:#04x} is given twice"));
                    }
                    ops.push((op, w));
                }
                let sum: u32 = ops.iter().map(|o| o.1).sum();
                if sum != 10000 {
                    return err("op_percentage", format!("percentages sum to {:.2}, not 100.00", sum as f64 / 100.0));
                }
                ops.retain(|o| o.1 > 0);
                ops
            }
            None => {
                let r = self.read_percentage as u32 * 100;
                let mut ops = Vec::new();
                if r > 0 {
                    ops.push((READ, r));
                }
                if r < 10000 {
                    ops.push((WRITE, 10000 - r));
                }
                ops
            }
        };
        // Distribution (JEDEC-style hot regions).
        if let Some(d) = &self.distribution {
            if d.len() != 100 {
                return err("distribution", format!("{} buckets; give exactly 100 (one per 1 % of the LBA space)", d.len()));
            }
            let sum: u64 = d.iter().map(|&v| v as u64).sum();
            if sum != 10000 {
                return err("distribution", format!("buckets sum to {sum}, not 10000"));
            }
            if self.lba_random != 100 {
                return err("distribution", "needs lba_random: 100 (it places random I/O)");
            }
            if regions.len() != 1 || regions[0] != (0, nsze) {
                return err("distribution", "covers the whole namespace; leave region_start and region_end at their defaults");
            }
        }
        match self.ptype {
            0 | 32 | 0xBEEF | 0x1234 | 0x4321 => {}
            p => return err("ptype", format!("{p:#x} is not a pattern type (0, 32, 0xBEEF, 0x1234, 0x4321)")),
        }
        if self.ptype == 0xBEEF && self.pvalue > 100 {
            return err("pvalue", format!("{} is above 100 (percentage of random bytes for ptype 0xBEEF)", self.pvalue));
        }
        for &p in &self.output_percentile_latency {
            if !(p > 0.0 && p < 100.0) {
                return err("output_percentile_latency", format!("{p} is not a percentile strictly between 0 and 100"));
            }
        }
        if self.output_cmdlog_list > 1 << 20 {
            return err("output_cmdlog_list", "more than 1048576 entries");
        }
        // Stop rules and one pass.
        let mut io_count = self.io_count;
        if let Some(seq) = &self.io_sequence {
            if seq.is_empty() {
                return err("io_sequence", "empty");
            }
            if self.iops != 0 {
                return err("iops", "io_sequence sets its own send times; remove iops");
            }
            for (i, s) in seq.iter().enumerate() {
                if s.nlb == 0 || s.nlb > 0x10000 {
                    return err("io_sequence", format!("entry {i}: {} LBAs outside 1..=65536", s.nlb));
                }
                if s.slba.checked_add(s.nlb as u64).is_none_or(|e| e > nsze) {
                    return err("io_sequence", format!("entry {i}: LBAs {:#x}+{} leave the namespace of {nsze:#x} LBAs", s.slba, s.nlb));
                }
            }
        } else if self.time.is_none() && io_count == 0 && self.lba_count == 0 {
            let fixed = matches!(self.io_size, IoSize::Fixed(_));
            let explicit_end = self.region_end.iter().any(|&e| e != u64::MAX);
            if self.lba_random == 0 && fixed && explicit_end {
                if self.lba_step.is_some_and(|s| s != max_size as i64) {
                    return err("lba_step", "a single pass over the region needs lba_step equal to io_size; or give time or io_count");
                }
                // One pass over the regions (PyNVMe: "fill region one pass").
                io_count = regions.iter().map(|&(s, e)| (e - s).div_ceil(max_size)).sum();
            } else {
                return err(
                    "time",
                    "when should the worker stop? give time, io_count or lba_count (a single sequential pass needs a fixed io_size and region_end)",
                );
            }
        }
        let mut qdepth = self.qdepth;
        if qdepth == 0 {
            return err("qdepth", "0 I/Os outstanding; give at least 1");
        }
        if qdepth >= max_entries {
            return err("qdepth", format!("{qdepth} needs a queue of {} entries; the controller allows {max_entries} (CAP.MQES + 1)", qdepth as u64 + 1));
        }
        if io_count > 0 && io_count < qdepth as u64 {
            qdepth = io_count as u32;
        }
        let sizes = weighted.iter().zip(&aligns).map(|(&(n, w), &a)| (n, w, a)).collect();
        Ok(Resolved { sizes, regions, ops, io_count, lba_count: self.lba_count, qdepth })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> IoWorkerConfig {
        IoWorkerConfig { time: Some(Duration::from_secs(1)), ..Default::default() }
    }

    #[test]
    fn op_percentage_must_sum_to_100_with_two_decimals() {
        let c = IoWorkerConfig { op_percentage: Some(vec![(2, 33.34), (1, 33.33), (9, 33.33)]), ..cfg() };
        assert_eq!(c.resolve(1000, 1024).unwrap().ops, vec![(2, 3334), (1, 3333), (9, 3333)]);
        let c = IoWorkerConfig { op_percentage: Some(vec![(2, 33.3), (1, 33.3), (9, 33.3)]), ..cfg() };
        assert!(c.resolve(1000, 1024).unwrap_err().message.contains("99.90"));
        let c = IoWorkerConfig { op_percentage: Some(vec![(2, 50.005), (1, 49.995)]), ..cfg() };
        assert!(c.resolve(1000, 1024).unwrap_err().message.contains("two decimals"));
    }

    #[test]
    fn read_percentage_becomes_read_and_write_ops() {
        let c = IoWorkerConfig { read_percentage: 70, ..cfg() };
        assert_eq!(c.resolve(1000, 1024).unwrap().ops, vec![(2, 7000), (1, 3000)]);
        let c = IoWorkerConfig { read_percentage: 0, ..cfg() };
        assert_eq!(c.resolve(1000, 1024).unwrap().ops, vec![(1, 10000)]);
    }

    #[test]
    fn one_pass_needs_sequential_fixed_size_and_region_end() {
        let c = IoWorkerConfig { lba_random: 0, region_end: vec![77], ..Default::default() };
        assert_eq!(c.resolve(1000, 1024).unwrap().io_count, 10);
        let c = IoWorkerConfig { lba_random: 0, ..Default::default() };
        assert_eq!(c.resolve(1000, 1024).unwrap_err().field, "time");
        let c = IoWorkerConfig { lba_random: 0, io_size: IoSize::List(vec![8, 16]), region_end: vec![100], ..Default::default() };
        assert_eq!(c.resolve(1000, 1024).unwrap_err().field, "time");
    }

    #[test]
    fn regions_are_clamped_aligned_and_checked() {
        let c = IoWorkerConfig { region_start: vec![0x10, 0x1010], region_end: vec![0x100, 0x1100], lba_align: vec![8], ..cfg() };
        assert_eq!(c.resolve(0x2000, 1024).unwrap().regions, vec![(0x10, 0x100), (0x1010, 0x1100)]);
        let c = IoWorkerConfig { region_start: vec![3], region_end: vec![u64::MAX], lba_align: vec![8], ..cfg() };
        assert_eq!(c.resolve(100, 1024).unwrap().regions, vec![(8, 100)]);
        let c = IoWorkerConfig { region_start: vec![100], region_end: vec![50], ..cfg() };
        assert_eq!(c.resolve(1000, 1024).unwrap_err().field, "region_start");
    }

    #[test]
    fn qdepth_is_bounded_by_the_queue_and_io_count() {
        let c = IoWorkerConfig { qdepth: 1024, ..cfg() };
        assert!(c.resolve(1000, 1024).unwrap_err().message.contains("1025 entries"));
        let c = IoWorkerConfig { qdepth: u32::MAX, ..cfg() };
        assert_eq!(c.resolve(1000, 1024).unwrap_err().field, "qdepth", "no overflow at u32::MAX");
        let c = IoWorkerConfig { qdepth: 63, io_count: 10, ..Default::default() };
        assert_eq!(c.resolve(1000, 1024).unwrap().qdepth, 10);
    }

    #[test]
    fn distribution_needs_100_buckets_summing_to_10000() {
        let mut d = vec![1000u32; 5];
        d.extend([200; 15]);
        d.extend([25; 80]);
        let c = IoWorkerConfig { distribution: Some(d.clone()), ..cfg() };
        assert!(c.resolve(1 << 20, 1024).is_ok());
        d[0] += 1;
        let c = IoWorkerConfig { distribution: Some(d), ..cfg() };
        assert!(c.resolve(1 << 20, 1024).unwrap_err().message.contains("10001"));
    }
}
