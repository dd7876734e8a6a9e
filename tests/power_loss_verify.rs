//! Verification stays truthful across power loss: data the drive was allowed to lose
//! (unflushed writes in a volatile write cache, writes in flight) may read old or new,
//! anything else is a miscompare, and flushed data must survive.

mod common;

use std::time::Duration;

use common::rig;
use nvplan::driver::Namespace;
use nvplan::ioworker::verify::VerifyTable;
use nvplan::ioworker::{IoSize, IoWorkerConfig, IoWorkerResult, OnReset, SeqIo, code};
use nvplan::sim::{FaultAction, FaultRule, NamespaceConfig, SimConfig};

fn cfg(write_cache: bool) -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], write_cache, ..Default::default() }
}

const REGION: u64 = 8192;

fn pass(ns: &Namespace, read_percentage: u8, io_flags: u16) -> IoWorkerResult {
    let c = IoWorkerConfig { lba_random: 0, read_percentage, io_size: IoSize::Fixed(8), region_end: vec![REGION], io_flags, ..Default::default() };
    ns.ioworker(c).unwrap().run()
}

fn flush(ns: &Namespace) -> IoWorkerResult {
    let seq = vec![SeqIo { slba: 0, nlb: 1, opcode: 0x00, time_sent_us: 0 }];
    ns.ioworker(IoWorkerConfig { io_sequence: Some(seq), qdepth: 1, ..Default::default() }).unwrap().run()
}

fn table(r: &common::Rig) -> std::sync::Arc<VerifyTable> {
    r.ctrl.attachments::<VerifyTable>().pop().expect("a worker made the table").1
}

fn power_cycle(r: &common::Rig) {
    r.ctrl.power_off(true).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    r.ctrl.power_on().unwrap();
}

#[test]
fn unflushed_writes_lost_in_a_power_loss_read_old_without_a_miscompare() {
    let r = rig(cfg(true));
    let ns = r.ctrl.namespace(1).unwrap();
    assert_eq!(pass(&ns, 0, 0).error, 0);
    assert_eq!(flush(&ns).error, 0);
    assert_eq!(table(&r).undurable_lbas(), 0, "the flush made the first pass durable");
    // A second pass, never flushed: the simulator's cache loses it.
    assert_eq!(pass(&ns, 0, 0).error, 0);
    assert_eq!(table(&r).undurable_lbas(), REGION);
    assert!(r.sim().unflushed_chunks(1) > 0);
    power_cycle(&r);
    let res = pass(&ns, 100, 0);
    assert_eq!((res.error, res.miscompare_count), (0, 0), "{:?}", res.error_message);
    assert_eq!(res.lbas_reverted, REGION, "every LBA showed the flushed first pass");
    // Settled by the read: a second read expects exactly what was found.
    let res = pass(&ns, 100, 0);
    assert_eq!((res.error, res.lbas_reverted), (0, 0), "{:?}", res.error_message);
}

#[test]
fn flushed_data_lost_in_a_power_loss_is_a_miscompare() {
    let r = rig(cfg(true));
    let ns = r.ctrl.namespace(1).unwrap();
    assert_eq!(pass(&ns, 0, 0).error, 0);
    // The drive acknowledges the flush but keeps the data in its volatile cache.
    r.sim().inject(FaultRule::io(0x00, 1, FaultAction::IgnoreFlush));
    assert_eq!(flush(&ns).error, 0);
    power_cycle(&r);
    let res = pass(&ns, 100, 0);
    assert_eq!(res.error, code::IO_CMD_ERROR, "{:?}", res.error_message);
    assert!(res.miscompare_count > 0);
    assert_eq!(res.miscompares[0].lba, 0, "the first LBA read is already wrong");
}

#[test]
fn fua_writes_survive_a_power_loss_and_may_not_read_old() {
    let r = rig(cfg(true));
    let ns = r.ctrl.namespace(1).unwrap();
    assert_eq!(pass(&ns, 0, 0).error, 0);
    assert_eq!(flush(&ns).error, 0);
    assert_eq!(pass(&ns, 0, 0x4000).error, 0);
    assert_eq!(table(&r).undurable_lbas(), 0, "FUA writes are durable at completion");
    power_cycle(&r);
    let res = pass(&ns, 100, 0);
    assert_eq!((res.error, res.lbas_reverted), (0, 0), "{:?}", res.error_message);
}

/// Mixed random reads and writes with a dirty power loss in the middle; the worker
/// resumes. Run `rounds` times; returns the LBAs that read old after a loss.
fn mixed_with_power_loss(write_cache: bool, rounds: u64) -> u64 {
    let r = rig(cfg(write_cache));
    let ns = r.ctrl.namespace(1).unwrap();
    let mut reverted = 0;
    for round in 0..rounds {
        let c = IoWorkerConfig {
            time: Some(Duration::from_millis(900)),
            read_percentage: 50,
            io_size: IoSize::List(vec![1, 8, 64]),
            region_end: vec![REGION],
            on_reset: OnReset::Resume,
            seed: round + 1,
            ..Default::default()
        };
        let w = ns.ioworker(c).unwrap().start();
        std::thread::sleep(Duration::from_millis(250 + 37 * round));
        power_cycle(&r);
        let res = w.close();
        assert_eq!((res.error, res.miscompare_count, res.resumes), (0, 0, 1), "round {round}: {:?} {:?}", res.error_message, res.miscompares.first());
        reverted += res.lbas_reverted;
    }
    reverted
}

#[test]
fn dirty_power_loss_under_mixed_io_with_a_write_cache_gives_no_false_miscompare() {
    let reverted = mixed_with_power_loss(true, 6);
    assert!(reverted > 0, "the cache lost writes, and reading them old was accepted");
}

#[test]
fn dirty_power_loss_under_mixed_io_without_a_write_cache_gives_no_false_miscompare() {
    // Only the writes in flight may have been lost.
    mixed_with_power_loss(false, 4);
}

/// Two workers share the region's leaves: one writes through (FUA) at a slow rate, one
/// reads and writes into the cache, and the power is cut under both. The
/// write-through writes end the implied bounds of leaf after leaf while cached writes
/// into them complete; the table must still let exactly the unflushed data revert.
#[test]
fn write_through_and_cached_writers_sharing_leaves_survive_a_dirty_power_loss() {
    const LBAS: u64 = 1 << 16;
    let mut reverted = 0;
    for round in 0..3u64 {
        // A fresh namespace each round: its leaves start with their bounds implied.
        let r = rig(cfg(true));
        let ns = r.ctrl.namespace(1).unwrap();
        let worker = |io_flags, op_percentage, iops, seed| IoWorkerConfig {
            time: Some(Duration::from_millis(700)),
            io_size: IoSize::List(vec![1, 8]),
            region_end: vec![LBAS],
            io_flags,
            op_percentage,
            iops,
            on_reset: OnReset::Resume,
            seed,
            ..Default::default()
        };
        let fua = ns.ioworker(worker(0x4000, Some(vec![(1, 100.0)]), 2000, 2 * round + 1)).unwrap().start();
        let cached = ns.ioworker(worker(0, Some(vec![(1, 60.0), (2, 40.0)]), 0, 2 * round + 2)).unwrap().start();
        std::thread::sleep(Duration::from_millis(200 + 61 * round));
        power_cycle(&r);
        for res in [fua.close(), cached.close()] {
            assert_eq!((res.error, res.miscompare_count, res.resumes), (0, 0, 1), "round {round}: {:?} {:?}", res.error_message, res.miscompares.first());
            reverted += res.lbas_reverted;
        }
        let c = IoWorkerConfig { lba_random: 0, read_percentage: 100, io_size: IoSize::Fixed(64), region_end: vec![LBAS], ..Default::default() };
        let res = ns.ioworker(c).unwrap().run();
        assert_eq!((res.error, res.miscompare_count), (0, 0), "round {round}: {:?} {:?}", res.error_message, res.miscompares.first());
        reverted += res.lbas_reverted;
    }
    assert!(reverted > 0, "the cache lost writes, and reading them old was accepted");
}

/// Flushes among cached writes: each Flush makes durable, and releases, the leaves written
/// before it was submitted while writes go on into others; after the power is cut, data
/// flushed must read back as flushed and only newer data may revert.
#[test]
fn workers_mixing_flushes_into_cached_writes_survive_a_dirty_power_loss() {
    const LBAS: u64 = 1 << 16;
    let mut reverted = 0;
    for round in 0..3u64 {
        let r = rig(cfg(true));
        let ns = r.ctrl.namespace(1).unwrap();
        let worker = |seed| IoWorkerConfig {
            time: Some(Duration::from_millis(700)),
            io_size: IoSize::List(vec![1, 8]),
            region_end: vec![LBAS],
            op_percentage: Some(vec![(1, 57.0), (2, 40.0), (0, 3.0)]),
            on_reset: OnReset::Resume,
            seed,
            ..Default::default()
        };
        let workers = [ns.ioworker(worker(2 * round + 1)).unwrap().start(), ns.ioworker(worker(2 * round + 2)).unwrap().start()];
        std::thread::sleep(Duration::from_millis(200 + 61 * round));
        power_cycle(&r);
        for res in workers.map(|w| w.close()) {
            assert_eq!((res.error, res.miscompare_count, res.resumes), (0, 0, 1), "round {round}: {:?} {:?}", res.error_message, res.miscompares.first());
            reverted += res.lbas_reverted;
        }
        let c = IoWorkerConfig { lba_random: 0, read_percentage: 100, io_size: IoSize::Fixed(64), region_end: vec![LBAS], ..Default::default() };
        let res = ns.ioworker(c).unwrap().run();
        assert_eq!((res.error, res.miscompare_count), (0, 0), "round {round}: {:?} {:?}", res.error_message, res.miscompares.first());
        reverted += res.lbas_reverted;
    }
    assert!(reverted > 0, "the cache lost writes, and reading them old was accepted");
}

/// Workers that start while the power is off wait for the controller when they resume
/// after resets (a phase's event may cut the power while its workers set up), and fail
/// at once when they do not.
#[test]
fn a_worker_started_during_a_power_cycle_waits_for_the_controller_when_it_resumes() {
    let r = rig(cfg(true));
    let ns = r.ctrl.namespace(1).unwrap();
    let worker = |on_reset| IoWorkerConfig { io_count: 2000, region_end: vec![REGION], on_reset, ..Default::default() };
    r.ctrl.power_off(true).unwrap();
    let stops = ns.ioworker(worker(OnReset::Stop)).unwrap().run();
    assert_eq!(stops.error, code::CREATE_QPAIR, "{:?}", stops.error_message);
    let res = std::thread::scope(|s| {
        // Starting waits for the worker's queue pair: power comes back from elsewhere.
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            r.ctrl.power_on().unwrap();
        });
        ns.ioworker(worker(OnReset::Resume)).unwrap().run()
    });
    assert_eq!((res.error, res.io_count()), (0, 2000), "{:?}", res.error_message);
}

#[test]
fn a_resuming_worker_waits_for_a_controller_left_down_no_longer_than_its_run_time() {
    let r = rig(cfg(true));
    let ns = r.ctrl.namespace(1).unwrap();
    // Power stays off, as after a power cycle whose power-on failed.
    r.ctrl.power_off(true).unwrap();
    let c = IoWorkerConfig { time: Some(Duration::from_millis(300)), region_end: vec![REGION], on_reset: OnReset::Resume, ..Default::default() };
    let started = std::time::Instant::now();
    let res = ns.ioworker(c).unwrap().run();
    assert_eq!(res.error, code::CREATE_QPAIR, "{:?}", res.error_message);
    // Bounded by the run time, not by the two minutes a reset under way may take.
    assert!(started.elapsed() < Duration::from_secs(30), "waited {:?}", started.elapsed());
    r.ctrl.power_on().unwrap();
}
