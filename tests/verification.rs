//! Data verification catches what a bad drive does (the simulator's fault injection) and
//! raises no false alarm when the drive is good.

mod common;

use std::time::Duration;

use common::rig;
use nvplan::driver::Namespace;
use nvplan::ioworker::verify::MiscompareKind;
use nvplan::ioworker::{IoSize, IoWorkerConfig, IoWorkerResult, SeqIo, code};
use nvplan::nvme::Status;
use nvplan::sim::{FaultAction, FaultRule, NamespaceConfig, SimConfig};

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], ..Default::default() }
}

/// Sends exactly these I/Os, one after the other.
fn run_seq(ns: &Namespace, ios: &[(u64, u32, u8)]) -> IoWorkerResult {
    let seq: Vec<SeqIo> = ios.iter().map(|&(slba, nlb, opcode)| SeqIo { slba, nlb, opcode, time_sent_us: 0 }).collect();
    ns.ioworker(IoWorkerConfig { io_sequence: Some(seq), qdepth: 1, exit_on_error: false, ..Default::default() }).unwrap().run()
}

/// Writes LBAs `0..n` once, sequentially.
fn fill(ns: &Namespace, n: u64) {
    let c = IoWorkerConfig { lba_random: 0, read_percentage: 0, io_size: IoSize::Fixed(8), region_end: vec![n], ..Default::default() };
    let r = ns.ioworker(c).unwrap().run();
    assert_eq!(r.error, 0, "{:?}", r.error_message);
}

fn only_miscompare(r: &IoWorkerResult) -> nvplan::ioworker::verify::Miscompare {
    assert_eq!(r.error, code::IO_CMD_ERROR, "{:?}", r.error_message);
    assert_eq!(Status::from_dw3(r.error_cpl[3]).code(), Status::HOST_MISCOMPARE.code(), "a miscompare completes with 07/81");
    r.miscompares[0].clone()
}

#[test]
fn verification_catches_a_corrupted_read_and_names_the_byte() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    fill(&ns, 64);
    r.sim().inject(FaultRule::io(2, 1, FaultAction::CorruptRead { offset: 512 + 100 }));
    let res = run_seq(&ns, &[(8, 8, 2)]);
    let m = only_miscompare(&res);
    assert_eq!((m.lba, m.kind, m.first_diff), (9, MiscompareKind::Corrupted, Some(100)));
    assert_eq!(res.miscompare_count, 1);
    assert!(res.error_message.as_deref().unwrap().contains("first differing byte at offset 100"), "{:?}", res.error_message);
    // The media is fine: a second read verifies.
    assert_eq!(run_seq(&ns, &[(8, 8, 2)]).error, 0);
}

#[test]
fn verification_catches_a_lost_write() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    fill(&ns, 64);
    r.sim().inject(FaultRule::io(1, 1, FaultAction::LoseWrite));
    assert_eq!(run_seq(&ns, &[(16, 8, 1)]).error, 0, "the device acknowledged the write");
    let res = run_seq(&ns, &[(16, 8, 2)]);
    let m = only_miscompare(&res);
    assert_eq!((m.lba, m.kind, m.found_lba), (16, MiscompareKind::Stale, Some(16)));
    assert_eq!(m.found_gen.map(|g| g + 1), Some(m.expected), "found the previous generation");
    assert_eq!(res.miscompare_count, 8);
}

#[test]
fn verification_catches_a_write_stored_at_the_wrong_lba() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    fill(&ns, 64);
    r.sim().inject(FaultRule::io(1, 1, FaultAction::MisdirectWrite { lba_offset: 32 }));
    assert_eq!(run_seq(&ns, &[(8, 8, 1)]).error, 0);
    // The data meant for LBA 8.. sits at LBA 40..: a valid block of another LBA.
    let res = run_seq(&ns, &[(40, 8, 2)]);
    let m = only_miscompare(&res);
    assert_eq!((m.lba, m.kind, m.found_lba), (40, MiscompareKind::WrongLba, Some(8)));
    // And LBA 8.. still holds the old generation.
    assert_eq!(only_miscompare(&run_seq(&ns, &[(8, 8, 2)])).kind, MiscompareKind::Stale);
}

#[test]
fn verification_catches_an_uncorrectable_lba_that_suddenly_reads_fine() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    fill(&ns, 64);
    let res = run_seq(&ns, &[(10, 4, 0x04), (10, 4, 2), (12, 1, 0x0c)]);
    assert_eq!(res.error, 0, "failing reads of uncorrectable LBAs are expected: {:?}", res.error_message);
    assert_eq!(res.expected_errors, 2);
    r.sim().heal_uncorrectable(1, 10, 4);
    let m = only_miscompare(&run_seq(&ns, &[(8, 8, 2)]));
    assert_eq!((m.lba, m.kind), (10, MiscompareKind::UncorrectableReadable));
}

#[test]
fn failed_write_keeps_the_old_state_and_zeroes_deallocate_and_format_clear_it() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    fill(&ns, 64);
    r.sim().inject(FaultRule::io(1, 1, FaultAction::Fail(Status::WRITE_FAULT)));
    let res = run_seq(&ns, &[(0, 8, 1), (0, 8, 2)]);
    assert_eq!(res.error, code::IO_CMD_ERROR);
    assert_eq!((res.error_count, res.miscompare_count), (1, 0), "the read after the failed write verifies against the old data");
    // Write Zeroes and deallocation: afterwards reads must be zeroes (DLFEAT says so).
    let res = run_seq(&ns, &[(16, 8, 0x08), (16, 8, 2), (24, 8, 0x09), (24, 8, 2)]);
    assert_eq!(res.error, 0, "{:?}", res.error_message);
    // A drive that forgets a deallocation is caught.
    r.sim().inject(FaultRule::io(0x09, 1, FaultAction::Fail(Status::SUCCESS)));
    let m = only_miscompare(&run_seq(&ns, &[(32, 8, 0x09), (32, 8, 2)]));
    assert_eq!((m.lba, m.kind), (32, MiscompareKind::NotZero));
    // After Format NVM the old generations are forgotten: nothing to miscompare.
    r.ctrl.format(1, 0, 0).unwrap();
    assert_eq!(run_seq(&ns, &[(0, 64, 2)]).error, 0);
}

#[test]
fn workers_sharing_a_region_verify_correctly_together() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    let c = IoWorkerConfig { time: Some(Duration::from_secs(2)), read_percentage: 50, region_end: vec![256], qdepth: 32, ..Default::default() };
    let ws: Vec<_> = (0..3).map(|i| ns.ioworker(IoWorkerConfig { seed: i, ..c.clone() }).unwrap().start()).collect();
    for w in ws {
        let res = w.close();
        assert_eq!((res.error, res.miscompare_count), (0, 0), "{:?}", res.error_message);
        assert!(res.io_count_read > 100 && res.io_count_write > 100, "read {} write {}", res.io_count_read, res.io_count_write);
    }
}

#[test]
fn a_worker_waiting_for_lbas_another_worker_holds_sends_once_they_are_released() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    r.sim().inject(FaultRule::io(1, 1, FaultAction::Delay(Duration::from_millis(500))));
    let seq = |opcode| Some(vec![SeqIo { slba: 0, nlb: 8, opcode, time_sent_us: 0 }]);
    let writer = ns.ioworker(IoWorkerConfig { io_sequence: seq(1), qdepth: 1, ..Default::default() }).unwrap().start();
    // The write has run (its completion is 500 ms away): its LBAs are locked until then.
    let t = std::time::Instant::now();
    while r.sim().stats().host_writes == 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "the write was never executed");
        std::thread::yield_now();
    }
    // The read waits for the write's LBA locks; only the writer's completion releases them.
    let reader = ns.ioworker(IoWorkerConfig { io_sequence: seq(2), qdepth: 1, time: Some(Duration::from_secs(5)), ..Default::default() }).unwrap().run();
    assert_eq!((reader.error, reader.io_count_read, reader.miscompare_count), (0, 1, 0), "{:?}", reader.error_message);
    assert!(reader.mseconds < 4000, "sent when the write completed, not at the end of its time: {} ms", reader.mseconds);
    assert_eq!(writer.close().error, 0);
}

#[test]
fn a_worker_writing_without_verification_is_kept_apart_from_verifying_ones() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    let v = ns.ioworker(IoWorkerConfig { time: Some(Duration::from_millis(500)), ..Default::default() }).unwrap().start();
    let blind = ns.ioworker(IoWorkerConfig { io_count: 100, read_percentage: 0, verify_disable: true, ..Default::default() }).unwrap().run();
    assert_eq!(blind.error, code::INIT_FAIL);
    assert!(blind.error_message.unwrap().contains("verify"));
    assert_eq!(v.close().error, 0);
}

/// Mixed random read, write, deallocate and write zeroes at queue depth 127 with several
/// workers over the same LBAs (`NVPLAN_SOAK_SECS`, default 60): no false alarm.
#[test]
fn no_false_alarm_in_a_minute_of_mixed_io_with_several_workers() {
    let secs: u64 = std::env::var("NVPLAN_SOAK_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let r = rig(SimConfig { namespaces: vec![NamespaceConfig::memory(1 << 30, 512)], ..Default::default() });
    let ns = r.ctrl.namespace(1).unwrap();
    let c = IoWorkerConfig {
        time: Some(Duration::from_secs(secs)),
        qdepth: 127,
        io_size: IoSize::Weighted(vec![(1, 10), (8, 60), (64, 20), (256, 10)]),
        op_percentage: Some(vec![(2, 40.0), (1, 30.0), (0x09, 15.0), (0x08, 15.0)]),
        region_end: vec![1 << 16],
        ..Default::default()
    };
    let ws: Vec<_> = (0..3).map(|i| ns.ioworker(IoWorkerConfig { seed: 100 + i, ..c.clone() }).unwrap().start()).collect();
    let mut total = 0;
    for w in ws {
        let res = w.close();
        assert_eq!((res.error, res.error_count, res.miscompare_count), (0, 0, 0), "{:?}", res.error_message);
        for op in [1u8, 2, 8, 9] {
            assert!(res.op_counts.iter().any(|&(o, n)| o == op && n > 100), "opcode {op} ran: {:?}", res.op_counts);
        }
        total += res.io_count();
    }
    println!("{total} I/Os verified by 3 workers in {secs} s");
}
