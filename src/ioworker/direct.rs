//! Commands a script sends itself, outside the workers (a plan's admin event, a Python
//! `read` or `write`): they hold their LBAs in the verification state of the namespace
//! from submission to completion, so no worker uses them meanwhile, and on completion the
//! state records what they did. A worker that later reads those LBAs then expects what
//! the command left instead of reporting a miscompare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::verify::{self, Landing, VerifyTable};
use crate::driver::Controller;
use crate::transport::DmaBuffer;

/// How a command held by [`DirectLbas`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The controller reported success.
    Success,
    /// The controller reported a failure: a failed command changed nothing (NVMe 1.4
    /// §4.6.1.2.1), except Write Uncorrectable, whose LBAs are then unknown.
    Failed,
    /// No completion (reset, power loss, timeout): it may or may not have happened.
    Unknown,
}

/// LBAs of one command held in the verification tables of its namespace.
#[must_use = "dropping the holder releases the LBAs unchanged; call finish"]
pub struct DirectLbas {
    held: Vec<(Arc<VerifyTable>, u64, u64)>,
    opcode: u8,
}

impl std::fmt::Debug for DirectLbas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectLbas").field("opcode", &self.opcode).field("ranges", &self.held.iter().map(|h| (h.1, h.2)).collect::<Vec<_>>()).finish()
    }
}

/// Opcodes whose LBAs a direct command holds: Write, Read, Write Uncorrectable, Compare,
/// Write Zeroes, Dataset Management, Verify.
pub fn holds_lbas(opcode: u8) -> bool {
    matches!(opcode, 0x01 | 0x02 | 0x04 | 0x05 | 0x08 | 0x09 | 0x0c)
}

impl DirectLbas {
    /// Holds `ranges` (start LBA, count) of namespace `nsid` for a command of `opcode`,
    /// waiting up to `wait` for workers to release them. Namespaces no verifying worker
    /// has run on have no table and need nothing held.
    pub fn hold(ctrl: &Controller, nsid: u32, opcode: u8, ranges: &[(u64, u32)], wait: Duration) -> Result<DirectLbas, String> {
        // What workers must learn of even before one ran (they skip uncorrectable LBAs and
        // expect zeroes): Write Uncorrectable, Write Zeroes, deallocation make the table.
        if matches!(opcode, 0x04 | 0x08 | 0x09)
            && let Some(ns) = ctrl.namespace(nsid)
        {
            let t = super::worker::table_of(&ns).map_err(|e| format!("cannot allocate the verification table for {} LBAs: {e}", ns.nlba()))?;
            t.sync_epoch(ctrl.data_epoch());
        }
        let tables: Vec<Arc<VerifyTable>> = ctrl.attachments::<VerifyTable>().into_iter().filter(|(k, _)| *k as u32 == nsid).map(|(_, t)| t).collect();
        let mut held = DirectLbas { held: Vec::new(), opcode };
        let deadline = Instant::now() + wait;
        for t in &tables {
            for &(slba, nlb) in ranges {
                let n = (nlb as u64).min(t.nlba().saturating_sub(slba));
                if n == 0 {
                    continue;
                }
                while !t.try_lock(slba, n) {
                    if Instant::now() >= deadline {
                        // `held` releases what it took when dropped.
                        return Err(format!("LBAs {slba:#x}+{nlb} stayed in use by I/O workers for {} ms", wait.as_millis()));
                    }
                    std::thread::yield_now();
                }
                held.held.push((t.clone(), slba, n));
            }
        }
        Ok(held)
    }

    /// Releases the LBAs, recording what the command left in them.
    pub fn finish(mut self, outcome: Outcome) {
        let held = std::mem::take(&mut self.held);
        for (t, lba, n) in held {
            let landing = match outcome {
                Outcome::Unknown => Landing::Maybe,
                _ if t.volatile() => Landing::Volatile,
                _ => Landing::Durable,
            };
            let new = match (self.opcode, outcome) {
                // Reads change nothing.
                (0x02 | 0x05 | 0x0c, _) => None,
                // Write Uncorrectable: marked when it succeeded, unknown when it may have
                // partly happened.
                (0x04, Outcome::Success) => Some(verify::UNCORRECTABLE),
                (0x04, _) => Some(verify::UNKNOWN),
                (_, Outcome::Failed) => None,
                (0x08, Outcome::Success) => Some(verify::ZEROES),
                (0x09, Outcome::Success) if t.dealloc_zeroes => Some(verify::ZEROES),
                // A script's own data (the workers' stamp is gone), or what may or may not
                // have happened: anything may be read.
                _ => Some(verify::UNKNOWN),
            };
            match new {
                Some(v) => t.unlock_write(lba, n, |_, _| v, landing, || false),
                None => t.unlock_range(lba, n, |_, _| None),
            }
        }
    }
}

impl Drop for DirectLbas {
    fn drop(&mut self) {
        for (t, lba, n) in self.held.drain(..) {
            t.unlock_range(lba, n, |_, _| None);
        }
    }
}

/// Write token of the next LBA written by a script (PyNVMe's convention, see [`stamp`]):
/// a count of the LBAs this process wrote, the workers' included.
static TOKEN: AtomicU64 = AtomicU64::new(1);

/// Counts `lbas` written by an I/O worker in the token sequence (a worker carries its own
/// write serial in its verification trailer, not a token; the count keeps a script's
/// tokens telling how much was written between two of its writes).
pub fn advance_token(lbas: u64) {
    TOKEN.fetch_add(lbas, Ordering::Relaxed);
}

/// Stamps `nlb` LBAs of `lba_size` bytes at `offset` of `buf` as PyNVMe's driver does
/// before a script's Write: the LBA number in the first 8 bytes and a write token that
/// grows by one per LBA in the last 8, so data read back tells where and when it was
/// written. Returns the first token.
pub fn stamp(buf: &DmaBuffer, offset: usize, lba: u64, nlb: u32, lba_size: usize) -> u64 {
    let first = TOKEN.fetch_add(nlb as u64, Ordering::Relaxed);
    for i in 0..nlb as usize {
        let at = offset + i * lba_size;
        if at + lba_size > buf.len() || lba_size < 16 {
            break;
        }
        buf.write_u64(at, lba + i as u64);
        buf.write_u64(at + lba_size - 8, first + i as u64);
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::ControllerOptions;
    use crate::sim::SimConfig;
    use crate::transport::sim::SimTransport;

    fn ctrl_with_table() -> (Controller, Arc<VerifyTable>) {
        let t: crate::transport::SharedTransport = Arc::new(SimTransport::new(SimConfig::default()).unwrap());
        let c = Controller::new(t, ControllerOptions::default()).unwrap();
        let table = c.attachment::<VerifyTable, std::io::Error>(1, || VerifyTable::new(1024, 512, true)).unwrap();
        (c, table)
    }

    #[test]
    fn a_direct_write_leaves_its_lbas_unknown_and_uncorrectable_marks_them() {
        let (c, t) = ctrl_with_table();
        t.try_lock(10, 2);
        t.unlock_range(10, 2, |_, _| Some(verify::GEN_FIRST));
        DirectLbas::hold(&c, 1, 0x01, &[(10, 1)], Duration::ZERO).unwrap().finish(Outcome::Success);
        assert_eq!((t.state(10), t.state(11)), (verify::UNKNOWN, verify::GEN_FIRST));
        DirectLbas::hold(&c, 1, 0x04, &[(11, 1)], Duration::ZERO).unwrap().finish(Outcome::Success);
        assert_eq!(t.state(11), verify::UNCORRECTABLE);
        DirectLbas::hold(&c, 1, 0x08, &[(11, 1)], Duration::ZERO).unwrap().finish(Outcome::Failed);
        assert_eq!(t.state(11), verify::UNCORRECTABLE, "a failed Write Zeroes changes nothing");
        DirectLbas::hold(&c, 1, 0x08, &[(11, 1)], Duration::ZERO).unwrap().finish(Outcome::Success);
        assert_eq!(t.state(11), verify::ZEROES);
    }

    #[test]
    fn held_lbas_are_refused_to_others_until_released() {
        let (c, t) = ctrl_with_table();
        let h = DirectLbas::hold(&c, 1, 0x02, &[(0, 8)], Duration::ZERO).unwrap();
        assert!(!t.try_lock(7, 1));
        assert!(DirectLbas::hold(&c, 1, 0x01, &[(4, 1)], Duration::from_millis(5)).is_err());
        drop(h);
        assert!(t.try_lock(7, 1));
    }

    #[test]
    fn stamp_puts_the_lba_first_and_a_growing_token_last() {
        let (c, _) = ctrl_with_table();
        let b = c.dma(4096).unwrap();
        let t0 = stamp(&b, 0, 0x5aa5, 2, 512);
        assert_eq!((b.read_u64(0), b.read_u64(512)), (0x5aa5, 0x5aa6));
        assert_eq!((b.read_u64(504), b.read_u64(1016)), (t0, t0 + 1));
        assert!(stamp(&b, 0, 0, 1, 512) >= t0 + 2);
    }
}
