//! Power loss, resets and shutdown: what survives, what is lost, and how the driver
//! reports commands that will never complete.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, rig, rig_with, short_timeout};
use nvplan::driver::{CplKind, DataPtr, QPair, QpairOptions};
use nvplan::nvme::regs::{Cc, ShutdownStatus, offset};
use nvplan::nvme::{Status, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig};

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], ..Default::default() }
}

fn write(q: &mut QPair, lba: u64, data: &[u8], fua: bool) {
    let buf = q.controller().dma(data.len()).unwrap();
    buf.write(0, data);
    let mut sqe = cmd::write(1, lba, (data.len() / 512) as u32);
    if fua {
        sqe.set_io_flags(cmd::IO_FLAG_FUA);
    }
    q.execute_ok(&sqe, DataPtr::Prp(&buf)).unwrap();
}

fn read(q: &mut QPair, lba: u64, nlb: usize) -> Vec<u8> {
    let buf = q.controller().dma(nlb * 512).unwrap();
    q.execute_ok(&cmd::read(1, lba, nlb as u32), DataPtr::Prp(&buf)).unwrap();
    buf.to_vec()
}

#[test]
fn dirty_power_cycle_loses_unflushed_writes_and_keeps_flushed_and_fua_writes() {
    let r = rig(cfg());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let flushed = pattern(8 * 512, 1);
    let fua = pattern(8 * 512, 2);
    let overwritten = pattern(8 * 512, 3);
    let lost = pattern(8 * 512, 4);
    write(&mut q, 0, &flushed, false);
    write(&mut q, 64, &flushed, false);
    let dealloc = r.ctrl.dma(16).unwrap();
    dealloc.write(0, &cmd::dsm_range(0, 8));
    q.execute_ok(&cmd::dsm_deallocate(1, 1), DataPtr::Prp(&dealloc)).unwrap();
    q.execute_ok(&cmd::flush(1), DataPtr::None).unwrap();
    write(&mut q, 128, &fua, true);
    write(&mut q, 64, &overwritten, false); // unflushed overwrite of flushed data
    write(&mut q, 256, &lost, false); // unflushed, the LBAs were never written before

    r.ctrl.power_off(true).unwrap();
    assert!(r.ctrl.csts().is_all_ones(), "registers read all ones without power");
    r.ctrl.power_on().unwrap();
    assert!(!q.is_valid(), "queue pairs do not survive a power cycle");
    drop(q);
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();

    assert!(read(&mut q, 64, 8) == flushed, "flushed data survives; the unflushed overwrite is gone");
    assert!(read(&mut q, 128, 8) == fua, "FUA data survives");
    assert_eq!(read(&mut q, 256, 8), vec![0u8; 8 * 512], "unflushed data to never-written LBAs is gone");
    // Deallocated (and flushed) and never-written LBAs read as DLFEAT says: zeroes.
    assert_eq!(r.ctrl.namespace(1).unwrap().id.deallocated_read_value(), nvplan::nvme::identify::DeallocatedRead::Zeroes);
    assert_eq!(read(&mut q, 0, 8), vec![0u8; 8 * 512]);
    assert_eq!(read(&mut q, 10_000, 8), vec![0u8; 8 * 512]);
    let smart = r.ctrl.smart_log().unwrap();
    assert_eq!(smart.power_cycles(), 2);
    assert_eq!(smart.unsafe_shutdowns(), 1);
}

#[test]
fn clean_power_cycle_and_shutdown_keep_cached_writes() {
    let r = rig(cfg());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let a = pattern(4 * 512, 10);
    write(&mut q, 8, &a, false);
    drop(q);
    r.ctrl.power_off(false).unwrap();
    r.ctrl.power_on().unwrap();
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 8, 4) == a);

    // A normal shutdown writes the cache back, so even a dirty power loss after it loses
    // nothing and does not count as an unsafe shutdown.
    let b = pattern(4 * 512, 11);
    write(&mut q, 8, &b, false);
    drop(q);
    r.ctrl.shutdown().unwrap();
    assert_eq!(r.ctrl.csts().shst(), ShutdownStatus::Complete);
    r.ctrl.power_off(true).unwrap();
    r.ctrl.power_on().unwrap();
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 8, 4) == b);
    assert_eq!(r.ctrl.smart_log().unwrap().unsafe_shutdowns(), 0);
}

#[test]
fn without_a_write_cache_every_write_survives_a_dirty_power_loss() {
    let r = rig(SimConfig { write_cache: false, ..cfg() });
    assert!(!r.ctrl.identify().vwc_present());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let a = pattern(8 * 512, 12);
    write(&mut q, 40, &a, false);
    drop(q);
    r.ctrl.power_off(true).unwrap();
    r.ctrl.power_on().unwrap();
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 40, 8) == a);
}

/// Submits `n` reads that the controller holds for `latency` before completing.
fn submit_slow_reads(q: &mut QPair, n: usize) -> nvplan::transport::DmaBuffer {
    let buf = q.controller().dma(n * 512).unwrap();
    for i in 0..n {
        q.submit(&cmd::read(1, i as u64, 1), DataPtr::Prp(&buf.slice(i * 512, 512)), i as u64).unwrap();
    }
    q.ring();
    buf
}

fn slow_reads_cfg() -> SimConfig {
    let mut c = cfg();
    c.latency.set_io(2, Duration::from_millis(100), Duration::ZERO);
    c
}

#[test]
fn cc_en_cleared_mid_io_drops_commands_and_driver_reports_them_aborted_within_timeout() {
    let r = rig_with(slow_reads_cfg(), short_timeout());
    let mut q = r.ctrl.create_qpair(QpairOptions { entries: 32, prio: 0, ..Default::default() }).unwrap();
    let _buf = submit_slow_reads(&mut q, 16);
    // Someone else clears CC.EN behind the driver's back.
    let t = r.ctrl.transport();
    t.write32(offset::CC, Cc(t.read32(offset::CC)).with_en(false).0);
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < 16 && start.elapsed() < Duration::from_secs(3) {
        q.poll(usize::MAX, |c| got.push((c.ctx, c.kind)));
    }
    let waited = start.elapsed();
    assert_eq!(got.len(), 16, "every outstanding command is reported");
    assert!(got.iter().all(|&(_, k)| k == CplKind::Aborted), "{got:?}");
    let timeout = r.ctrl.options().command_timeout;
    assert!(waited >= timeout - Duration::from_millis(150) && waited < timeout + Duration::from_millis(600), "reported after {waited:?}");
    let mut ctx: Vec<u64> = got.iter().map(|g| g.0).collect();
    ctx.sort();
    assert_eq!(ctx, (0..16).collect::<Vec<_>>());
    // The controller comes back ready after a reset; a new queue pair works.
    drop(q);
    r.ctrl.reset().unwrap();
    assert!(r.ctrl.csts().rdy());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 0, 1).len() == 512);
}

#[test]
fn driver_reset_reports_outstanding_commands_aborted_at_once() {
    let r = rig(slow_reads_cfg());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let _buf = submit_slow_reads(&mut q, 8);
    r.ctrl.reset().unwrap();
    let mut kinds = Vec::new();
    q.poll(usize::MAX, |c| kinds.push(c.kind));
    assert_eq!(kinds, vec![CplKind::Aborted; 8]);
    assert_eq!(q.outstanding(), 0);
    assert!(matches!(q.execute(&cmd::flush(1), DataPtr::None), Err(nvplan::driver::DriverError::QpairGone { .. })));
}

#[test]
fn commands_are_reported_aborted_only_once_the_controller_has_stopped() {
    let r = rig(slow_reads_cfg());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let _buf = submit_slow_reads(&mut q, 8);
    // A reset has begun, but CC.EN is still set: the reads may still write their buffers,
    // so none is given back, though each completes on the controller meanwhile.
    r.ctrl.begin_reset();
    let mut kinds = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(300) {
        q.poll(usize::MAX, |c| kinds.push(c.kind));
    }
    assert_eq!((kinds.len(), q.outstanding()), (0, 8), "{kinds:?}");
    // Disabled by whoever began the reset: CSTS.RDY = 0 says the controller has stopped.
    let t = r.ctrl.transport();
    t.write32(offset::CC, Cc(t.read32(offset::CC)).with_en(false).0);
    let start = Instant::now();
    while r.ctrl.csts().rdy() && start.elapsed() < Duration::from_secs(2) {}
    q.poll(usize::MAX, |c| kinds.push(c.kind));
    assert_eq!(kinds, vec![CplKind::Aborted; 8]);
    r.ctrl.reset().unwrap();
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 0, 1).len() == 512);
}

#[test]
fn timed_out_command_is_reported_while_controller_keeps_running() {
    let mut c = cfg();
    c.latency.set_io(2, Duration::from_secs(2), Duration::ZERO);
    let r = rig_with(c, short_timeout());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let _buf = submit_slow_reads(&mut q, 1);
    let start = Instant::now();
    let mut kind = None;
    while kind.is_none() && start.elapsed() < Duration::from_secs(2) {
        q.poll(usize::MAX, |c| kind = Some((c.kind, c.status())));
    }
    let (kind, status) = kind.expect("reported");
    assert_eq!(kind, CplKind::TimedOut);
    assert_eq!(status.raw(), 0x7fff, "synthetic completions read all ones");
    // The late answer frees the CID without a second report.
    std::thread::sleep(Duration::from_millis(1600));
    let mut late = 0;
    q.poll(usize::MAX, |_| late += 1);
    assert_eq!(late, 0);
    assert_eq!(q.free_slots(), 63);
    assert!(r.ctrl.csts().rdy());
}

#[test]
fn subsystem_reset_sets_nssro_keeps_data_and_comes_back_ready() {
    let r = rig(cfg());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let a = pattern(512, 20);
    write(&mut q, 3, &a, true);
    r.ctrl.subsystem_reset().unwrap();
    assert!(r.ctrl.csts().nssro());
    assert!(r.ctrl.csts().rdy());
    assert!(!q.is_valid());
    drop(q);
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 3, 1) == a);
}

#[test]
fn function_level_reset_returns_registers_to_reset_values_and_keeps_data() {
    let r = rig(cfg());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let a = pattern(512, 21);
    write(&mut q, 5, &a, true);
    drop(q);
    r.ctrl.function_reset().unwrap();
    assert!(r.ctrl.csts().rdy());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    assert!(read(&mut q, 5, 1) == a);
}

#[test]
fn bad_admin_queue_configuration_raises_cfs_and_a_reset_clears_it() {
    let r = rig(cfg());
    let t = r.ctrl.transport();
    let cc = Cc(t.read32(offset::CC));
    t.write32(offset::CC, cc.with_en(false).0);
    while nvplan::nvme::regs::Csts(t.read32(offset::CSTS)).rdy() {}
    // ASQ not page aligned: the controller cannot report that any other way (§7.6.1).
    t.write64(offset::ASQ, 0x1_0000_0800);
    t.write32(offset::CC, cc.with_en(true).0);
    let start = Instant::now();
    while !r.ctrl.csts().cfs() && start.elapsed() < Duration::from_secs(1) {}
    assert!(r.ctrl.csts().cfs());
    assert!(!r.ctrl.csts().rdy());
    r.ctrl.reset().unwrap();
    assert!(!r.ctrl.csts().cfs());
    assert!(r.ctrl.csts().rdy());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let c = q.execute(&cmd::read(1, 0, 1), DataPtr::Prp(&r.ctrl.dma(512).unwrap())).unwrap();
    assert_eq!(c.status(), Status::SUCCESS);
}
