//! The I/O worker: PyNVMe3's ioworker, parameter for parameter, with verification of every
//! LBA and statistics, running on its own thread and queue pair.

pub mod config;
pub mod direct;
pub(crate) mod generator;
pub(crate) mod lba_map;
pub mod result;
pub mod stats;
pub mod verify;
mod worker;

pub use config::{ConfigError, IoSize, IoWorkerConfig, OnReset, SeqIo};
pub use generator::Io;
pub use result::{IoWorkerResult, code};
pub use stats::{CLASSES, Timeseries};
pub use worker::{IoWorker, Live, RunningWorker, StartGate, available_cpus};

/// Runs `f`, something that makes written data durable (a Flush of namespace `nsid`, all
/// namespaces for `None` or 0xFFFFFFFF, or a shutdown), and records its effect in the
/// verification state of those namespaces when it succeeds. What it covers is fixed
/// before it starts (NVMe 2.0 §5.15: writes completed before the Flush was submitted).
pub fn with_flush<R, E>(ctrl: &crate::driver::Controller, nsid: Option<u32>, f: impl FnOnce() -> Result<R, E>) -> Result<R, E> {
    let all = nsid.is_none_or(|n| n == u32::MAX);
    let tables: Vec<_> = ctrl.attachments::<verify::VerifyTable>().into_iter().filter(|(k, _)| all || Some(*k as u32) == nsid).map(|(_, t)| t).collect();
    let tickets: Vec<_> = tables.iter().map(|t| t.flush_begin()).collect();
    let r = f();
    if r.is_ok() {
        for (t, ticket) in tables.iter().zip(tickets) {
            t.flush_done(ticket);
        }
    }
    r
}

/// Runs `f`, a Dataset Management (deallocate) of `ranges` of namespace `nsid` sent
/// outside the workers, with those LBAs held in the verification state so that no worker
/// uses them meanwhile; afterwards they read as deallocated blocks do when `ok` says it
/// succeeded (zeroes or unknown, per Identify Namespace DLFEAT), as unknown if not. Waits
/// up to `wait` for workers to release the LBAs.
pub fn deallocating<R>(
    ctrl: &crate::driver::Controller,
    nsid: u32,
    ranges: &[(u64, u32)],
    wait: std::time::Duration,
    f: impl FnOnce() -> R,
    ok: impl Fn(&R) -> bool,
) -> Result<R, String> {
    let held = direct::DirectLbas::hold(ctrl, nsid, 0x09, ranges, wait)?;
    let r = f();
    held.finish(if ok(&r) { direct::Outcome::Success } else { direct::Outcome::Unknown });
    Ok(r)
}
