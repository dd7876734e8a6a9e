//! Data written and flushed before a power loss reads back intact after it.
//!
//! On the simulator the whole sequence runs in one process: write, flush, more writes that
//! are never flushed, a dirty power-off, power on, read back. On a real controller
//! (tests/qemu/run.sh) the power loss is QEMU being killed, so the test runs in two
//! processes on the same image files: `NVPLAN_POWER_STAGE=write` writes, flushes, prints
//! `NVPLAN-POWER-FLUSHED` and goes on writing elsewhere until it is killed;
//! `NVPLAN_POWER_STAGE=check` reads back.

mod common;

use common::{hardware_target, pattern, rig};
use nvplan::driver::{Controller, DataPtr, QPair, QpairOptions};
use nvplan::nvme::cmd;
use nvplan::sim::{NamespaceConfig, SimConfig};
use nvplan::transport::DmaBuffer;

/// The flushed region: extents of varied sizes, each with its own data.
const EXTENTS: [(u64, u32); 6] = [(0, 1), (8, 8), (100, 64), (1000, 255), (4096, 128), (20_000, 32)];
/// Where the unflushed writes go: away from every extent.
const SCRATCH: u64 = 100_000;
const SEED: u64 = 0x9051_7e55;

/// The LBA size of namespace 1, a queue pair and a buffer of `lbas` LBAs.
fn io(ctrl: &Controller, lbas: usize) -> (usize, QPair, DmaBuffer) {
    let lba = ctrl.namespace(1).unwrap().lba_size();
    (lba, ctrl.create_qpair(QpairOptions::default()).unwrap(), ctrl.dma(lbas * lba).unwrap())
}

fn write_and_flush(ctrl: &Controller) {
    let (lba, mut q, buf) = io(ctrl, 256);
    for (i, &(slba, nlb)) in EXTENTS.iter().enumerate() {
        let len = nlb as usize * lba;
        buf.write(0, &pattern(len, SEED + i as u64));
        q.execute_ok(&cmd::write(1, slba, nlb), DataPtr::Prp(&buf.slice(0, len))).unwrap();
    }
    q.execute_ok(&cmd::flush(1), DataPtr::None).unwrap();
}

/// Writes that the power loss interrupts: never flushed, never read back.
fn scribble(ctrl: &Controller, rounds: Option<u32>) {
    let (lba, mut q, buf) = io(ctrl, 8);
    buf.write(0, &pattern(8 * lba, 7));
    let mut n = 0u64;
    while rounds.is_none_or(|r| n < r as u64) {
        q.execute_ok(&cmd::write(1, SCRATCH + (n % 1000) * 8, 8), DataPtr::Prp(&buf)).unwrap();
        n += 1;
    }
}

fn check(ctrl: &Controller) {
    let (lba, mut q, buf) = io(ctrl, 256);
    for (i, &(slba, nlb)) in EXTENTS.iter().enumerate() {
        let len = nlb as usize * lba;
        buf.fill(0, buf.len(), 0);
        q.execute_ok(&cmd::read(1, slba, nlb), DataPtr::Prp(&buf.slice(0, len))).unwrap();
        assert!(buf.slice(0, len).to_vec() == pattern(len, SEED + i as u64), "LBAs {slba}..{} lost what was flushed", slba + nlb as u64);
    }
}

#[test]
fn flushed_data_reads_back_intact_after_power_loss() {
    let r = rig(SimConfig { namespaces: vec![NamespaceConfig::memory(1 << 30, 512)], write_cache: true, ..Default::default() });
    match (hardware_target(), std::env::var("NVPLAN_POWER_STAGE").as_deref()) {
        (Some(_), Ok("write")) => {
            write_and_flush(&r.ctrl);
            println!("NVPLAN-POWER-FLUSHED");
            scribble(&r.ctrl, None);
        }
        (Some(_), Ok("check")) => check(&r.ctrl),
        (Some(_), _) => {} // on hardware only as the harness's two stages
        (None, _) => {
            write_and_flush(&r.ctrl);
            scribble(&r.ctrl, Some(200));
            assert!(r.sim().unflushed_chunks(1) > 0, "the scribbles sit in the volatile cache");
            r.ctrl.power_off(true).unwrap();
            r.ctrl.power_on().unwrap();
            check(&r.ctrl);
        }
    }
}
