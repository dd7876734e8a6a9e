//! What an I/O worker returns: PyNVMe3's fields, names and error codes, plus nvplan's
//! verification details.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stats::{CmdlogEntry, Timeseries};
use super::verify::Miscompare;

/// The error codes of PyNVMe3's ioworker.
pub mod code {
    /// No error.
    pub const SUCCESS: i32 = 0;
    /// Initialisation failed (bad core, unusable verification state, ...).
    pub const INIT_FAIL: i32 = -1;
    /// The largest I/O is larger than MDTS.
    pub const IO_SIZE_ABOVE_MDTS: i32 = -2;
    /// An I/O did not complete within the driver's command timeout.
    pub const IO_TIMEOUT: i32 = -3;
    /// The worker ran 30 s past its time without draining.
    pub const WORKER_TIMEOUT: i32 = -4;
    /// The DMA buffer pool could not be allocated.
    pub const BUFFER_ALLOC: i32 = -5;
    /// An I/O completed with an error status (or failed verification: 07/81).
    pub const IO_CMD_ERROR: i32 = -6;
    /// The worker was stopped from outside, or its commands were aborted by a reset or
    /// power loss.
    pub const TERMINATED: i32 = -7;
    /// An I/O took longer than `slow_latency`.
    pub const SLOW_IO: i32 = -8;
    /// The worker's queue pair could not be created.
    pub const CREATE_QPAIR: i32 = -9;
    /// The namespace's LBA format is not one the worker can verify (metadata, size).
    pub const ILLEGAL_SECTOR_SIZE: i32 = -10;

    /// The seed's name of an error code.
    pub fn name(code: i32) -> &'static str {
        match code {
            0 => "Success",
            -1 => "Init Fail",
            -2 => "IO Size is Larger than MDTS",
            -3 => "IO Timeout",
            -4 => "IOWorker Timeout",
            -5 => "Buffer Pool Alloc Fail",
            -6 => "IO Cmd Error",
            -7 => "Sudden Terminated",
            -8 => "Slow IO",
            -9 => "Create Qpair Fail",
            -10 => "Illegal Sector Size",
            _ => "Unknown",
        }
    }
}

/// The result of one worker run.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IoWorkerResult {
    /// Read commands completed (errors included).
    pub io_count_read: u64,
    /// All other commands completed.
    pub io_count_nonread: u64,
    /// Write commands completed.
    pub io_count_write: u64,
    /// Duration of the run in milliseconds.
    pub mseconds: u64,
    /// Largest latency, µs.
    pub latency_max_us: u64,
    /// Mean latency, µs (0 when nothing completed).
    pub latency_average_us: u64,
    /// Error code (see [`code`]); the first error, except that a slow I/O (-8) gives way
    /// to a later command error.
    pub error: i32,
    /// What the error code means, with details.
    pub error_message: Option<String>,
    /// The 16 dwords of the command that failed first.
    pub error_cmd: [u32; 16],
    /// The 4 dwords of its completion (07/81 for a miscompare; all ones when none came).
    pub error_cpl: [u32; 4],
    /// Share of the run's wall time the worker spent working rather than waiting (0..1).
    pub cpu_usage: f64,
    /// Completions per 1 µs of latency up to 1 s (last bucket: 1 s and above); only with
    /// `output_percentile_latency`. In `summary.json` only the non-zero buckets, as
    /// `[µs, count]` pairs.
    #[serde(with = "sparse")]
    pub latency_distribution: Option<Vec<u32>>,
    /// LBAs read.
    pub lba_count_read: u64,
    /// LBAs of all other commands.
    pub lba_count_nonread: u64,
    /// LBAs written.
    pub lba_count_write: u64,
    /// Start of the I/O, seconds since the Unix epoch.
    pub test_start_sec: u64,
    /// Start of the I/O, nanoseconds within the second.
    pub test_start_nsec: u32,
    /// Completions in each full second; only with `output_io_per_second`.
    pub io_per_second: Option<Vec<u64>>,
    /// Slowest second (99.9th percentile of seconds) over the mean; with `io_per_second`.
    pub iops_consistency: Option<f64>,
    /// `(percentile, latency µs)` for each requested percentile.
    pub percentile_latency: Option<Vec<(f64, u64)>>,
    /// The last commands, oldest first; only with `output_cmdlog_list`.
    pub cmdlog: Option<Vec<CmdlogEntry>>,
    /// Completions per opcode, as `(opcode, count)` (PyNVMe writes these back into
    /// `op_percentage`).
    pub op_counts: Vec<(u8, u64)>,
    /// Commands that failed, errors after the first and miscompares included (not those a
    /// reset or power loss aborted: see `aborted_by_reset`).
    pub error_count: u64,
    /// Failures the verification state predicted (a read of an LBA made uncorrectable).
    pub expected_errors: u64,
    /// Commands slower than `slow_latency`.
    pub slow_io_count: u64,
    /// Times the worker came back after a reset or power loss (`on_reset: resume`).
    pub resumes: u64,
    /// Commands a reset or power loss aborted (the worker stopped there, or went on with
    /// `on_reset: resume`).
    pub aborted_by_reset: u64,
    /// LBAs read back after a power loss or an interrupted write that showed an older
    /// state than the newest write: data the drive was allowed to lose, and lost.
    pub lbas_reverted: u64,
    /// Blocks that failed verification.
    pub miscompare_count: u64,
    /// The first miscompares (at most 16), with what was expected and found.
    pub miscompares: Vec<Miscompare>,
    /// Completions and bytes over time, for reports.
    pub timeseries: Option<Timeseries>,
    /// Latency histogram in nanoseconds (the tracked opcodes), for reports.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
    /// Latency histograms in nanoseconds by opcode class (read, write, other), for
    /// reports.
    #[serde(skip)]
    pub class_histograms: [Option<Histogram<u64>>; 3],
}

/// A mostly-zero distribution as `[index, count]` pairs of its non-zero entries (a million
/// 1 µs buckets would otherwise make every summary megabytes long).
mod sparse {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ioworker::stats::DISTRIBUTION_BUCKETS;

    pub fn serialize<S: Serializer>(v: &Option<Vec<u32>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            // Blocks of zeroes are skipped a block at a time (an OR the compiler vectorises):
            // summaries are rewritten after every phase run.
            Some(d) => s.collect_seq(
                d.chunks(64)
                    .enumerate()
                    .filter(|(_, c)| c.iter().fold(0, |a, &b| a | b) != 0)
                    .flat_map(|(k, c)| c.iter().enumerate().filter(|(_, n)| **n > 0).map(move |(j, n)| (k * 64 + j, *n))),
            ),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u32>>, D::Error> {
        let pairs: Option<Vec<(usize, u32)>> = Option::deserialize(d)?;
        Ok(pairs.map(|p| {
            let mut v = vec![0u32; DISTRIBUTION_BUCKETS];
            for (i, n) in p {
                if let Some(x) = v.get_mut(i) {
                    *x = n;
                }
            }
            v
        }))
    }
}

impl IoWorkerResult {
    /// I/Os completed.
    pub fn io_count(&self) -> u64 {
        self.io_count_read + self.io_count_nonread
    }
    /// Mean I/Os per second over the run.
    pub fn iops(&self) -> f64 {
        if self.mseconds == 0 { 0.0 } else { self.io_count() as f64 * 1000.0 / self.mseconds as f64 }
    }
}

impl std::fmt::Debug for IoWorkerResult {
    // Leaves out the bulky histogram and distribution.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoWorkerResult")
            .field("io_count_read", &self.io_count_read)
            .field("io_count_nonread", &self.io_count_nonread)
            .field("io_count_write", &self.io_count_write)
            .field("mseconds", &self.mseconds)
            .field("latency_max_us", &self.latency_max_us)
            .field("latency_average_us", &self.latency_average_us)
            .field("error", &self.error)
            .field("error_message", &self.error_message)
            .field("cpu_usage", &self.cpu_usage)
            .field("lba_count_read", &self.lba_count_read)
            .field("lba_count_nonread", &self.lba_count_nonread)
            .field("lba_count_write", &self.lba_count_write)
            .field("error_count", &self.error_count)
            .field("expected_errors", &self.expected_errors)
            .field("miscompare_count", &self.miscompare_count)
            .field("miscompares", &self.miscompares)
            .finish_non_exhaustive()
    }
}
