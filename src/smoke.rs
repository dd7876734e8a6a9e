//! The built-in smoke workload: a short, self-checking run against a controller that
//! exercises the driver end to end and leaves a small report.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::driver::{Controller, DataPtr, DriverError, QpairOptions, SglSegment};
use crate::nvme::cmd;
use crate::util::rng::Rng;

/// A command builder for one LBA range.
type Builder = fn(u32, u64, u32) -> crate::nvme::Sqe;

/// What the smoke workload measured.
#[derive(Debug, Serialize)]
pub struct SmokeReport {
    /// Transport description.
    pub target: String,
    /// Identify Controller model, serial and firmware.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Firmware revision.
    pub firmware: String,
    /// LBA size of namespace 1.
    pub lba_size: usize,
    /// Write commands completed.
    pub writes: u64,
    /// Read commands completed and verified.
    pub reads: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Commands that used SGLs.
    pub sgl_commands: u64,
    /// Reads whose data differed from what was written.
    pub miscompares: u64,
    /// Commands that failed.
    pub errors: u64,
    /// Seconds the I/O phases took.
    pub seconds: f64,
    /// Whether the controller's SMART data counted the host commands.
    pub smart_host_writes: u128,
    /// Outcome: "pass" or "fail".
    pub outcome: String,
}

/// Writes `total` bytes of random data in mixed sizes at queue depth 32 (PRP and, where
/// the controller supports them, SGLs), reads everything back and compares.
pub fn run(ctrl: &Controller, total: u64, seed: u64) -> Result<SmokeReport, DriverError> {
    let ns = ctrl.namespace(1).ok_or_else(|| DriverError::InvalidArgument("the controller has no namespace 1".into()))?;
    let lba = ns.lba_size();
    let max_lbas = (ctrl.info().max_transfer / lba).clamp(1, 64) as u64;
    let region = (total / lba as u64).min(ns.nlba());
    let sgl = ctrl.identify().sgl_supported();
    let mut q = ctrl.create_qpair(QpairOptions { entries: 33, prio: 0, ..Default::default() })?;
    let slot_bytes = max_lbas as usize * lba;
    let pool = ctrl.dma(32 * slot_bytes)?;
    let mut rng = Rng::new(seed);
    let mut report = SmokeReport {
        target: ctrl.transport().describe(),
        model: ctrl.identify().model(),
        serial: ctrl.identify().serial(),
        firmware: ctrl.identify().firmware(),
        lba_size: lba,
        writes: 0,
        reads: 0,
        bytes_written: 0,
        sgl_commands: 0,
        miscompares: 0,
        errors: 0,
        seconds: 0.0,
        smart_host_writes: 0,
        outcome: String::new(),
    };
    // Extents covering the region once, in random sizes.
    let mut extents = Vec::new();
    let mut at = 0u64;
    while at < region {
        let n = (1 + rng.below(max_lbas)).min(region - at);
        extents.push((at, n));
        at += n;
    }
    let mut data = vec![0u8; region as usize * lba];
    rng.fill(&mut data);
    let start = Instant::now();
    let passes: [(bool, Builder); 2] = [(true, cmd::write), (false, cmd::read)];
    for (writing, pass) in passes {
        let mut next = 0usize;
        let mut free: Vec<usize> = (0..32).collect();
        let mut inflight = vec![(0u64, 0u64); 32];
        let deadline = Instant::now() + Duration::from_secs(60);
        while next < extents.len() || free.len() < 32 {
            while next < extents.len()
                && let Some(slot) = free.pop()
            {
                let (slba, n) = extents[next];
                next += 1;
                let len = n as usize * lba;
                let buf = pool.slice(slot * slot_bytes, len);
                if writing {
                    buf.write(0, &data[slba as usize * lba..slba as usize * lba + len]);
                }
                inflight[slot] = (slba, n);
                let use_sgl = sgl && rng.below(2) == 0;
                let sqe = pass(1, slba, n as u32);
                let r = if use_sgl && n > 1 {
                    // Split in two descriptors to exercise a segment list.
                    let half = (n as usize / 2) * lba;
                    let segs = [
                        SglSegment::Data { iova: buf.iova(), len: half as u32 },
                        SglSegment::Data { iova: buf.iova() + half as u64, len: (len - half) as u32 },
                    ];
                    q.submit(&sqe, DataPtr::SglList { segs: &segs, per_segment: 256 }, slot as u64)
                } else if use_sgl {
                    q.submit(&sqe, DataPtr::Sgl(&buf), slot as u64)
                } else {
                    q.submit(&sqe, DataPtr::Prp(&buf), slot as u64)
                };
                r.map_err(|source| DriverError::Submit { what: "smoke I/O", source })?;
                report.sgl_commands += use_sgl as u64;
            }
            q.ring();
            q.poll(32, |c| {
                let slot = c.ctx as usize;
                let (slba, n) = inflight[slot];
                if !c.is_success() {
                    report.errors += 1;
                } else if writing {
                    report.writes += 1;
                    report.bytes_written += n * lba as u64;
                } else {
                    report.reads += 1;
                    let len = n as usize * lba;
                    let got = pool.slice(slot * slot_bytes, len).to_vec();
                    if got[..] != data[slba as usize * lba..slba as usize * lba + len] {
                        report.miscompares += 1;
                    }
                }
                free.push(slot);
            });
            if Instant::now() > deadline {
                return Err(DriverError::InvalidArgument("smoke workload made no progress for 60 s".into()));
            }
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    report.smart_host_writes = ctrl.smart_log()?.host_write_commands();
    let ok = report.miscompares == 0 && report.errors == 0 && report.reads == extents.len() as u64;
    report.outcome = if ok { "pass" } else { "fail" }.into();
    Ok(report)
}
