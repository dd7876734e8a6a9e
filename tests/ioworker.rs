//! Every example of the I/O worker's parameters, outputs and return values (PyNVMe3's
//! `ioworker`), each pinned by what it does to the simulated controller: the commands it
//! sends (the command log, the controller's own checks), what lands on the media, and the
//! statistics it returns.
//!
//! Error codes not covered here: -4 (the worker runs 30 s past its time) needs a device
//! that stops answering for half a minute, which no test here should wait for; -5 (DMA
//! buffer allocation) cannot fail on the simulator's host memory in a test of sensible
//! size; -10 (illegal sector size) needs an LBA format with metadata or below 512 bytes,
//! which the simulator does not offer (its LBA formats are 512 and 4096 bytes, no
//! metadata).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{host_commands, host_commands_since, rig, rig_with, short_timeout};
use nvplan::driver::{ArbitrationMechanism, ControllerOptions, Namespace, QpairOptions};
use nvplan::ioworker::stats::CmdlogEntry;
use nvplan::ioworker::{IoSize, IoWorkerConfig, IoWorkerResult, SeqIo, code};
use nvplan::nvme::Status;
use nvplan::sim::{FaultAction, FaultRule, NamespaceConfig, SimConfig};

const READ: u8 = 0x02;
const WRITE: u8 = 0x01;
const DSM: u8 = 0x09;
const LBA: usize = 512;

/// A simulator with one namespace of `capacity` bytes in 512-byte LBAs.
fn sim(capacity: u64) -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(capacity, LBA as u32)], ..Default::default() }
}

fn small() -> SimConfig {
    sim(64 << 20)
}

fn run(ns: &Namespace, c: IoWorkerConfig) -> IoWorkerResult {
    ns.ioworker(c).expect("a valid configuration").run()
}

#[track_caller]
fn assert_clean(res: &IoWorkerResult) {
    assert_eq!(res.error, code::SUCCESS, "{:?}", res.error_message);
    assert_eq!(res.error_count, 0, "{res:?}");
    assert_eq!(res.miscompare_count, 0, "{res:?}");
}

fn cmdlog(res: &IoWorkerResult) -> &[CmdlogEntry] {
    res.cmdlog.as_deref().expect("output_cmdlog_list was given")
}

fn op_count(res: &IoWorkerResult, op: u8) -> u64 {
    res.op_counts.iter().find(|o| o.0 == op).map_or(0, |o| o.1)
}

fn share(n: u64, total: u64) -> f64 {
    n as f64 / total as f64
}

/// `|share - expected| <= tol`, with a readable message.
#[track_caller]
fn assert_share(what: &str, n: u64, total: u64, expected: f64, tol: f64) {
    let s = share(n, total);
    assert!((s - expected).abs() <= tol, "{what}: {n} of {total} = {s:.4}, expected {expected} ± {tol}");
}

fn wall(res: &IoWorkerResult) -> SystemTime {
    UNIX_EPOCH + Duration::new(res.test_start_sec, res.test_start_nsec)
}

// ----- io_size, lba_align, io_count, lba_count -----

#[test]
fn io_count_10000_sends_exactly_10000_ios() {
    let r = rig(small());
    let before = host_commands(&r.ctrl);
    let ns = r.ctrl.namespace(1).unwrap();
    // lba_align 8: random I/O near the namespace end is never cut short.
    let res = run(&ns, IoWorkerConfig { io_size: IoSize::Fixed(8), lba_align: vec![8], io_count: 10_000, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count(), 10_000);
    assert_eq!((res.io_count_read, res.io_count_nonread, res.io_count_write), (10_000, 0, 0));
    assert_eq!(res.lba_count_read, 80_000, "io_size 8: 8 LBAs per I/O");
    assert_eq!(host_commands_since(&r.ctrl, before).0, 10_000, "the controller saw exactly 10000 reads");
}

#[test]
fn io_size_fixed_list_and_weighted_follow_their_weights() {
    let r = rig(sim(1 << 30));
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 20_000u64;
    let sizes = |res: &IoWorkerResult| {
        let mut m: HashMap<u32, u64> = HashMap::new();
        for e in cmdlog(res) {
            *m.entry(e.nlb).or_default() += 1;
        }
        m
    };
    // 4 KiB-aligned starts: an 8-LBA I/O never runs into the namespace end.
    let c = |io_size| IoWorkerConfig { io_size, lba_align: vec![8], io_count: n, output_cmdlog_list: n as usize, ..Default::default() };

    let res = run(&ns, c(IoSize::Fixed(8)));
    assert_clean(&res);
    assert_eq!(sizes(&res), HashMap::from([(8, n)]));

    // 4K/8K/128K with equal weight (a larger I/O near the namespace end is truncated,
    // which happens to about 1 in 8000 of them at most).
    let res = run(&ns, c(IoSize::List(vec![8, 16, 256])));
    assert_clean(&res);
    let m = sizes(&res);
    for s in [8, 16, 256] {
        assert_share(&format!("io_size {s}"), m[&s], n, 1.0 / 3.0, 0.02);
    }
    assert_eq!(m.values().sum::<u64>(), n, "{m:?}");

    // 50 % 4K, 25 % 8K, 25 % 128K.
    let res = run(&ns, c(IoSize::Weighted(vec![(8, 50), (16, 25), (256, 25)])));
    assert_clean(&res);
    let m = sizes(&res);
    assert_share("io_size 8", m[&8], n, 0.50, 0.02);
    assert_share("io_size 16", m[&16], n, 0.25, 0.02);
    assert_share("io_size 256", m[&256], n, 0.25, 0.02);
    let lbas: u64 = cmdlog(&res).iter().map(|e| e.nlb as u64).sum();
    assert_eq!(res.lba_count_read, lbas, "lba_count_read counts the LBAs of every read");
}

#[test]
fn lba_align_puts_every_starting_lba_on_a_multiple() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 5000;
    // 4 KiB random reads starting on 4 KiB boundaries; region_start 3 is aligned up to 8.
    let res = run(
        &ns,
        IoWorkerConfig {
            io_size: IoSize::Fixed(8),
            lba_align: vec![8],
            lba_random: 100,
            region_start: vec![3],
            io_count: n,
            output_cmdlog_list: n as usize,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    assert_eq!(log.len(), n as usize);
    assert!(log.iter().all(|e| e.slba % 8 == 0 && e.slba >= 8 && e.nlb == 8), "{:?}", log.iter().find(|e| e.slba % 8 != 0 || e.slba < 8));
    // Without alignment, most starts are not multiples of 8 (the control).
    let res = run(&ns, IoWorkerConfig { io_size: IoSize::Fixed(8), io_count: n, output_cmdlog_list: n as usize, ..Default::default() });
    assert!(cmdlog(&res).iter().filter(|e| e.slba % 8 != 0).count() > n as usize / 2);
}

#[test]
fn lba_align_list_aligns_each_size_separately() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 4000;
    let res = run(
        &ns,
        IoWorkerConfig { io_size: IoSize::List(vec![8, 64]), lba_align: vec![8, 64], io_count: n, output_cmdlog_list: n as usize, ..Default::default() },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    assert!(log.iter().all(|e| e.slba % e.nlb as u64 == 0), "{:?}", log.iter().find(|e| e.slba % e.nlb as u64 != 0));
    // The 8-LBA I/Os are not all on 64-LBA boundaries: each size has its own alignment.
    assert!(log.iter().any(|e| e.nlb == 8 && e.slba % 64 != 0));
}

#[test]
fn lba_count_stops_at_exactly_that_many_lbas_before_time() {
    let r = rig(sim(256 << 20));
    let ns = r.ctrl.namespace(1).unwrap();
    // 64 MiB of LBAs plus 3: not a multiple of either size, so the last I/O is cut short.
    let lba_count = (64 << 20) / LBA as u64 + 3;
    let t = Instant::now();
    let res = run(
        &ns,
        IoWorkerConfig {
            io_size: IoSize::Weighted(vec![(8, 60), (128, 40)]),
            lba_align: vec![8],
            lba_random: 100,
            read_percentage: 70,
            lba_count,
            time: Some(Duration::from_secs(600)),
            output_cmdlog_list: 1 << 16,
            ..Default::default()
        },
    );
    assert_clean(&res);
    assert_eq!(res.lba_count_read + res.lba_count_nonread, lba_count);
    assert_eq!(res.lba_count_nonread, res.lba_count_write);
    assert!(t.elapsed() < Duration::from_secs(60), "lba_count, not time, ended the run");
    let log = cmdlog(&res);
    assert_eq!(log.len() as u64, res.io_count());
    assert_eq!(log.iter().map(|e| e.nlb as u64).sum::<u64>(), lba_count);
    // Every I/O is 8 or 128 LBAs, or truncated at the namespace end (a multiple of 8, as
    // starts are 8-aligned), except one: the I/O cut short to reach lba_count exactly.
    let nsze = ns.nlba();
    assert!(log.iter().all(|e| e.nlb == 8 || e.nlb == 128 || e.slba + e.nlb as u64 == nsze || e.nlb % 8 == 3), "{log:?}");
    let cut: Vec<_> = log.iter().filter(|e| e.nlb % 8 != 0).collect();
    assert!(cut.len() == 1 && cut[0].nlb < 128, "only the last I/O is cut short: {cut:?}");
    assert_share("reads", res.io_count_read, res.io_count(), 0.7, 0.03);
}

// ----- lba_random, lba_start, lba_step -----

/// How many entries of a qdepth-1 command log continue the sequential cursor (starting at
/// `start`, advancing by `nlb`); random ones hit the cursor with odds of 1 in the
/// namespace size.
fn sequential_entries(log: &[CmdlogEntry], start: u64) -> u64 {
    let mut cursor = start;
    let mut n = 0;
    for e in log {
        if e.slba == cursor {
            n += 1;
            cursor += e.nlb as u64;
        }
    }
    n
}

#[test]
fn lba_random_false_is_sequential_and_50_mixes_half_and_half() {
    let r = rig(sim(1 << 30));
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 10_000u64;
    let c = |lba_random| IoWorkerConfig { lba_random, qdepth: 1, io_count: n, output_cmdlog_list: n as usize, ..Default::default() };
    let res = run(&ns, c(0));
    assert_clean(&res);
    let slbas: Vec<u64> = cmdlog(&res).iter().map(|e| e.slba).collect();
    assert_eq!(slbas, (0..n).map(|i| i * 8).collect::<Vec<_>>());

    let res = run(&ns, c(50));
    assert_clean(&res);
    assert_share("sequential I/Os", sequential_entries(cmdlog(&res), 0), n, 0.5, 0.02);

    let res = run(&ns, c(100));
    assert!(sequential_entries(cmdlog(&res), 0) <= 2, "fully random I/O does not walk the cursor");
}

#[test]
fn lba_start_and_region_start_set_the_first_sequential_lba() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let first = |c: IoWorkerConfig| {
        let res = run(&ns, IoWorkerConfig { lba_random: 0, io_count: 3, qdepth: 1, output_cmdlog_list: 3, ..c });
        assert_clean(&res);
        cmdlog(&res).iter().map(|e| e.slba).collect::<Vec<_>>()
    };
    assert_eq!(first(IoWorkerConfig::default()), vec![0, 8, 16]);
    assert_eq!(first(IoWorkerConfig { region_start: vec![0x10], ..Default::default() }), vec![0x10, 0x18, 0x20]);
    assert_eq!(first(IoWorkerConfig { lba_start: Some(1000), ..Default::default() }), vec![1000, 1008, 1016]);
    // A start below region_start becomes region_start.
    assert_eq!(first(IoWorkerConfig { lba_start: Some(5), region_start: vec![0x10], ..Default::default() }), vec![0x10, 0x18, 0x20]);
}

#[test]
fn lba_step_minus_1_reads_lba_10_down_to_1() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(
        &ns,
        IoWorkerConfig {
            lba_random: 0,
            io_size: IoSize::Fixed(1),
            lba_start: Some(10),
            lba_step: Some(-1),
            io_count: 10,
            // One at a time: the log lists completions, and a controller may complete
            // outstanding commands in any order.
            qdepth: 1,
            output_cmdlog_list: 10,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    assert_eq!(log.iter().map(|e| e.slba).collect::<Vec<_>>(), (1..=10).rev().collect::<Vec<u64>>());
    assert!(log.iter().all(|e| e.nlb == 1 && e.opcode == READ && e.status == 0));
}

#[test]
fn lba_step_0_repeats_one_lba() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(
        &ns,
        IoWorkerConfig {
            lba_random: 0,
            lba_start: Some(100),
            lba_step: Some(0),
            read_percentage: 50,
            io_count: 500,
            output_cmdlog_list: 500,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    assert_eq!(log.len(), 500);
    assert!(log.iter().all(|e| e.slba == 100 && e.nlb == 8), "{:?}", log.iter().find(|e| e.slba != 100));
    assert!(res.io_count_write > 100 && res.io_count_read > 100, "reads and writes of the same LBAs verify: {res:?}");
}

#[test]
fn lba_step_16_with_io_size_8_leaves_8_lba_gaps_on_the_media() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    common::fresh_lbas(&r, 1, 0, 160);
    let res = run(
        &ns,
        IoWorkerConfig {
            io_size: IoSize::Fixed(8),
            lba_random: 0,
            lba_step: Some(16),
            read_percentage: 0,
            io_count: 10,
            output_cmdlog_list: 10,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let mut slbas: Vec<u64> = cmdlog(&res).iter().map(|e| e.slba).collect();
    slbas.sort_unstable();
    assert_eq!(slbas, (0..10).map(|i| i * 16).collect::<Vec<u64>>());
    // On the media: 8 written LBAs, 8 untouched (zero) LBAs, and so on.
    let media = common::media(&r, 1, 0, 160 * LBA);
    for (lba, block) in media.chunks(LBA).enumerate() {
        let written = block.iter().any(|&b| b != 0);
        assert_eq!(written, lba % 16 < 8, "LBA {lba}");
    }
}

/// The starting LBAs of a sequential read run with `qdepth` 1 (sent and completed in
/// order).
fn sequence(ns: &Namespace, io_size: u32, lba_start: Option<u64>, step: i64, io_count: u64) -> Vec<u64> {
    let res = run(
        ns,
        IoWorkerConfig {
            io_size: IoSize::Fixed(io_size),
            lba_random: 0,
            lba_start,
            lba_step: Some(step),
            io_count,
            qdepth: 1,
            output_cmdlog_list: io_count as usize,
            ..Default::default()
        },
    );
    assert_clean(&res);
    cmdlog(&res).iter().map(|e| e.slba).collect()
}

#[test]
fn lba_step_matches_pynvme_unit_tests() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    // io_size 1, 10 I/Os: step 2 ends at 18, step 5 at 45, step 1 at 9.
    assert_eq!(sequence(&ns, 1, None, 2, 10), (0..10).map(|i| i * 2).collect::<Vec<u64>>());
    assert_eq!(*sequence(&ns, 1, None, 5, 10).last().unwrap(), 45);
    assert_eq!(*sequence(&ns, 1, None, 1, 10).last().unwrap(), 9);
    // io_size 3, step 1: overlapping I/Os, the last ten are 10..19.
    assert_eq!(sequence(&ns, 3, None, 1, 20)[10..], (10..20).collect::<Vec<u64>>()[..]);
    // io_size 8, step 0, lba_start 10: every I/O at 10.
    assert!(sequence(&ns, 8, Some(10), 0, 10).iter().all(|&l| l == 10));
    // io_size 1, step -1, lba_start 100: 100, 99, ..., 91.
    assert_eq!(sequence(&ns, 1, Some(100), -1, 10), (91..=100).rev().collect::<Vec<u64>>());
    // io_size 8, step -4, lba_start 100: the k-th I/O at 100 - 4k; the last ten 60 ... 24.
    let v = sequence(&ns, 8, Some(100), -4, 20);
    assert_eq!(v, (0..20).map(|k| 100 - 4 * k).collect::<Vec<u64>>());
    assert_eq!((v[10], v[19]), (60, 24));
}

#[test]
fn lba_step_below_the_region_start_continues_at_the_region_top() {
    // A documented deviation: PyNVMe's cursor wraps through 2^64 back to region_start;
    // nvplan continues downward from the top of the region.
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(
        &ns,
        IoWorkerConfig {
            io_size: IoSize::Fixed(1),
            lba_random: 0,
            lba_start: Some(1),
            lba_step: Some(-1),
            region_end: vec![100],
            io_count: 4,
            qdepth: 1,
            output_cmdlog_list: 4,
            ..Default::default()
        },
    );
    assert_clean(&res);
    assert_eq!(cmdlog(&res).iter().map(|e| e.slba).collect::<Vec<_>>(), vec![1, 0, 99, 98]);
}

// ----- start_time -----

#[test]
fn start_time_delays_the_first_io() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let delay = Duration::from_millis(500);
    let (t0, w0) = (Instant::now(), SystemTime::now());
    let res = run(&ns, IoWorkerConfig { start_time: Some(t0 + delay), io_count: 100, ..Default::default() });
    let took = t0.elapsed();
    assert_clean(&res);
    assert_eq!(res.io_count(), 100);
    assert!(took >= delay, "returned after {took:?}");
    // test_start_* is the wall-clock time the I/O started: at the start time, not before.
    let started = wall(&res).duration_since(w0).expect("after the call");
    assert!(started >= delay - Duration::from_millis(2) && started < delay + Duration::from_millis(200), "I/O started {started:?} after the call");
}

#[test]
fn start_time_then_time_runs_the_full_time_after_the_start() {
    // PyNVMe's example: start_time 10 s ahead and time 10 s; each worker idles until the
    // start time and then runs for its time. The time (and the command log's and the
    // pacing's clock) count from the start of the I/O, not from start().
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let t0 = Instant::now();
    let res = run(
        &ns,
        IoWorkerConfig { start_time: Some(t0 + Duration::from_millis(500)), time: Some(Duration::from_secs(1)), output_cmdlog_list: 1, ..Default::default() },
    );
    let took = t0.elapsed();
    assert_clean(&res);
    assert!(took >= Duration::from_millis(1500), "500 ms idle + 1 s of I/O, but returned after {took:?}");
    assert!((1000..1300).contains(&res.mseconds), "mseconds {} is the I/O time", res.mseconds);
    let last = cmdlog(&res)[0];
    assert!((900_000..1_300_000).contains(&last.time_sent_us), "the last I/O went out {} µs after the I/O start", last.time_sent_us);
}

#[test]
fn workers_given_the_same_start_time_begin_together() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let target = Instant::now() + Duration::from_millis(400);
    let w0 = SystemTime::now();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let c = IoWorkerConfig {
                start_time: Some(target),
                io_count: 2000,
                region_start: vec![i * 0x8000],
                region_end: vec![(i + 1) * 0x8000],
                ..Default::default()
            };
            ns.ioworker(c).unwrap().start()
        })
        .collect();
    let results: Vec<IoWorkerResult> = workers.into_iter().map(|w| w.close()).collect();
    let starts: Vec<SystemTime> = results.iter().map(wall).collect();
    for res in &results {
        assert_clean(res);
        assert_eq!(res.io_count(), 2000);
    }
    let first = *starts.iter().min().unwrap();
    let last = *starts.iter().max().unwrap();
    let spread = last.duration_since(first).unwrap();
    // Each worker sleeps until the same instant; only the scheduler's wake-up latency
    // (on a loaded two-core host, a few ms) separates them.
    assert!(spread < Duration::from_millis(25), "starts spread over {spread:?}");
    assert!(first.duration_since(w0).unwrap() >= Duration::from_millis(395), "no worker starts early");
}

// ----- read_percentage, op_percentage, sgl_percentage -----

#[test]
fn read_percentage_50_gives_half_reads_and_half_writes() {
    let r = rig(small());
    let before = host_commands(&r.ctrl);
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 20_000;
    let res = run(&ns, IoWorkerConfig { read_percentage: 50, lba_align: vec![8], io_count: n, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count(), n);
    assert_share("reads", res.io_count_read, n, 0.5, 0.02);
    assert_eq!(res.io_count_write, res.io_count_nonread, "the other half are writes");
    assert_eq!((res.lba_count_read, res.lba_count_write), (res.io_count_read * 8, res.io_count_write * 8));
    assert_eq!(host_commands_since(&r.ctrl, before), (res.io_count_read, res.io_count_write), "as the controller counted");
}

fn op_mix(ops: Vec<(u8, f64)>) {
    let r = rig(small());
    let before = host_commands(&r.ctrl);
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 20_000;
    let res = run(&ns, IoWorkerConfig { op_percentage: Some(ops.clone()), io_size: IoSize::Fixed(8), io_count: n, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count(), n);
    assert_eq!(res.op_counts.iter().map(|o| o.1).sum::<u64>(), n);
    for (op, pct) in ops {
        assert_share(&format!("opcode {op}"), op_count(&res, op), n, pct / 100.0, 0.02);
    }
    assert_eq!(res.io_count_read, op_count(&res, READ));
    assert_eq!(res.io_count_write, op_count(&res, WRITE));
    assert_eq!(res.io_count_nonread, op_count(&res, WRITE) + op_count(&res, DSM));
    assert_eq!(host_commands_since(&r.ctrl, before), (res.io_count_read, res.io_count_write));
}

#[test]
fn op_percentage_read_write_deallocate_40_30_30() {
    op_mix(vec![(READ, 40.0), (WRITE, 30.0), (DSM, 30.0)]);
}

#[test]
fn op_percentage_with_decimals_33_34_33_33_33_33() {
    op_mix(vec![(READ, 33.34), (WRITE, 33.33), (DSM, 33.33)]);
}

#[test]
fn sgl_percentage_50_sends_half_the_commands_with_an_sgl() {
    // A controller without SGL support fails every command whose PSDT selects an SGL with
    // Invalid Field and executes the PRP ones: the failures count the SGL commands.
    let r = rig(SimConfig { sgl: false, ..small() });
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 20_000;
    let c = |sgl_percentage| IoWorkerConfig { sgl_percentage, read_percentage: 50, io_count: n, exit_on_error: false, ..Default::default() };
    let res = run(&ns, c(50));
    assert_eq!(res.error, code::IO_CMD_ERROR, "{:?}", res.error_message);
    assert_eq!(res.io_count(), n, "exit_on_error false: the run goes on");
    assert_share("SGL commands", res.error_count, n, 0.5, 0.02);
    assert_eq!(Status::from_dw3(res.error_cpl[3]).code(), Status::INVALID_FIELD.code());
    assert_eq!(res.miscompare_count, 0, "reads that succeeded verify");

    assert_clean(&run(&ns, c(0)));
    let res = run(&ns, c(100));
    assert_eq!(res.error_count, n, "sgl_percentage 100: every command uses an SGL");

    // On a controller with SGL support every command succeeds.
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, c(100));
    assert_clean(&res);
    assert_eq!(res.io_count(), n);
}

#[test]
fn error_cmd_is_the_submission_queue_entry_with_its_data_pointer() {
    // PyNVMe's error_cmd is the SQE that was sent (e.g. PRP1 in dwords 6-7 of the seed's
    // example); here an SGL command: PSDT 01b in CDW0 and the SGL descriptor in 6-9.
    let r = rig(SimConfig { sgl: false, ..small() });
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, IoWorkerConfig { sgl_percentage: 100, io_size: IoSize::Fixed(8), io_count: 10, ..Default::default() });
    assert_eq!(res.error, code::IO_CMD_ERROR, "{:?}", res.error_message);
    let cmd = res.error_cmd;
    assert_eq!(cmd[0] & 0xff, READ as u32);
    assert_eq!(cmd[1], 1, "NSID");
    assert_eq!(cmd[12] & 0xffff, 7, "NLB 0-based");
    assert_eq!((cmd[0] >> 14) & 3, 1, "PSDT: an SGL for the data: {cmd:x?}");
    assert_ne!(cmd[6] as u64 | (cmd[7] as u64) << 32, 0, "SGL1 address: {cmd:x?}");
    assert_eq!(cmd[8], 8 * LBA as u32, "SGL1 length: {cmd:x?}");
}

// ----- qdepth, qprio -----

/// Most commands outstanding at once, from the command log's send and completion times.
fn max_outstanding(log: &[CmdlogEntry]) -> i64 {
    let mut ev: Vec<(u64, i64)> = log.iter().flat_map(|e| [(e.time_sent_us, 1), (e.time_cplt_us, -1)]).collect();
    // At the same µs a completion comes first: its slot is reused only after it.
    ev.sort_unstable();
    let (mut now, mut max) = (0i64, 0i64);
    for (_, d) in ev {
        now += d;
        max = max.max(now);
    }
    max
}

#[test]
fn qdepth_127_keeps_127_commands_outstanding_on_a_128_entry_queue() {
    let mut cfg = SimConfig { max_queue_entries: 128, ..small() };
    cfg.latency.set_io(READ, Duration::from_millis(3), Duration::ZERO);
    let r = rig(cfg);
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 127 * 4;
    let res = run(&ns, IoWorkerConfig { qdepth: 127, io_count: n, output_cmdlog_list: n as usize, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count(), n);
    assert_eq!(max_outstanding(cmdlog(&res)), 127);
    // The queue needs qdepth + 1 entries: CAP.MQES + 1 (128 on this simulator) is the limit.
    let entries = r.ctrl.cap().max_queue_entries();
    if r.is_sim() {
        assert_eq!(entries, 128);
    }
    let e = ns.ioworker(IoWorkerConfig { qdepth: entries, io_count: n, ..Default::default() }).unwrap_err();
    assert_eq!(e.field, "qdepth");
    // The default qdepth is 63.
    let res = run(&ns, IoWorkerConfig { io_count: n, output_cmdlog_list: n as usize, ..Default::default() });
    assert_eq!(max_outstanding(cmdlog(&res)), 63);
}

#[test]
fn qprio_runs_every_priority_class_under_weighted_round_robin() {
    // The arbitration itself is the controller's (tests/nvm_commands.rs); here each class
    // is accepted by Create I/O SQ and carries I/O.
    let r = rig_with(small(), ControllerOptions { arbitration: ArbitrationMechanism::WeightedRoundRobin, ..Default::default() });
    let ns = r.ctrl.namespace(1).unwrap();
    for qprio in 0..=3 {
        let res = run(&ns, IoWorkerConfig { qprio, io_count: 1000, ..Default::default() });
        assert_clean(&res);
        assert_eq!(res.io_count(), 1000, "qprio {qprio}");
    }
    let e = ns.ioworker(IoWorkerConfig { qprio: 4, io_count: 1000, ..Default::default() }).unwrap_err();
    assert_eq!(e.field, "qprio");
}

// ----- region_start, region_end -----

#[test]
fn region_start_0x10_keeps_random_io_above_it() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 5000;
    let res = run(&ns, IoWorkerConfig { region_start: vec![0x10], lba_random: 100, io_count: n, output_cmdlog_list: n as usize, ..Default::default() });
    assert_clean(&res);
    let log = cmdlog(&res);
    assert!(log.iter().all(|e| e.slba >= 0x10 && e.slba + e.nlb as u64 <= ns.nlba()));
    assert!(log.iter().any(|e| e.slba < 0x1000) && log.iter().any(|e| e.slba > ns.nlba() / 2), "spread over the region");
}

#[test]
fn region_0x10_to_0x100_holds_every_io() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    common::fresh_lbas(&r, 1, 0, 0x200);
    let n = 5000;
    let res = run(
        &ns,
        IoWorkerConfig {
            region_start: vec![0x10],
            region_end: vec![0x100],
            read_percentage: 50,
            io_count: n,
            output_cmdlog_list: n as usize,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    assert!(log.iter().all(|e| e.slba >= 0x10 && e.slba + e.nlb as u64 <= 0x100), "{:?}", log.iter().find(|e| e.slba < 0x10 || e.slba + e.nlb as u64 > 0x100));
    assert!(log.iter().any(|e| e.slba == 0x10) && log.iter().any(|e| e.slba + e.nlb as u64 == 0x100), "both ends are reached");
    // Nothing was written outside the region.
    let media = common::media(&r, 1, 0, 0x200 * LBA);
    assert!(media[..0x10 * LBA].iter().chain(&media[0x100 * LBA..]).all(|&b| b == 0));
}

#[test]
fn two_regions_both_get_io_and_nothing_leaves_them() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 5000u64;
    let res = run(
        &ns,
        IoWorkerConfig {
            region_start: vec![0x10, 0x1010],
            region_end: vec![0x100, 0x1100],
            read_percentage: 50,
            io_count: n,
            output_cmdlog_list: n as usize,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    let inside = |e: &&CmdlogEntry, s: u64, end: u64| e.slba >= s && e.slba + e.nlb as u64 <= end;
    let a = log.iter().filter(|e| inside(e, 0x10, 0x100)).count() as u64;
    let b = log.iter().filter(|e| inside(e, 0x1010, 0x1100)).count() as u64;
    assert_eq!(a + b, n, "every I/O lies inside one region");
    // The regions are the same size: each gets about half.
    assert_share("first region", a, n, 0.5, 0.04);
}

#[test]
fn one_sequential_pass_covers_the_region_exactly_once() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    // No time, io_count or lba_count: sequential, fixed io_size and region_end mean one pass.
    let res = run(&ns, IoWorkerConfig { lba_random: 0, io_size: IoSize::Fixed(8), region_end: vec![77], output_cmdlog_list: 100, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count(), 10);
    let mut log: Vec<(u64, u32)> = cmdlog(&res).iter().map(|e| (e.slba, e.nlb)).collect();
    log.sort_unstable();
    assert_eq!(log.last(), Some(&(72, 5)));
    let mut seen = [0u32; 77];
    for (s, n) in log {
        for l in s..s + n as u64 {
            seen[l as usize] += 1;
        }
    }
    assert_eq!(seen, [1; 77], "every LBA of [0, 77) exactly once");
    assert_eq!(res.lba_count_read, 77);
}

#[test]
fn full_disk_sequential_read_is_one_pass() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let nsze = ns.nlba();
    let before = host_commands(&r.ctrl);
    let res = run(&ns, IoWorkerConfig { lba_random: 0, io_size: IoSize::Fixed(8), read_percentage: 100, region_end: vec![nsze], ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count(), nsze / 8);
    assert_eq!(res.lba_count_read, nsze);
    assert_eq!(host_commands_since(&r.ctrl, before), (nsze / 8, 0), "reads as the controller counted them");
}

// ----- iops, io_flags -----

#[test]
fn iops_12345_paces_every_second() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, IoWorkerConfig { iops: 12345, time: Some(Duration::from_secs(3)), output_io_per_second: true, ..Default::default() });
    assert_clean(&res);
    let ps = res.io_per_second.clone().unwrap();
    assert_eq!(ps.len(), 3, "{ps:?}");
    // Within 1 % each second. Two allowances, both for the host rather than the pacing:
    // the first second also absorbs the worker's start (thread, queue pair, the first
    // touches of the simulator's media and of the verification table), so it gets 2 %;
    // and a stall of the worker thread (preempted on a loaded host) delays I/Os, which
    // the pacing then catches up (as PyNVMe's does), moving them into the next second:
    // a second may then be off by up to 2 % if it and a neighbour together are within
    // 0.5 % of two seconds' worth, i.e. the I/Os were moved, not lost or added.
    const ONE: u64 = 12345;
    assert!(ps[0].abs_diff(ONE) <= 2 * ONE / 100, "{ps:?}");
    for i in 1..ps.len() {
        let moved = |j: usize| ps.get(j).is_some_and(|&n| (ps[i] + n).abs_diff(2 * ONE) <= ONE / 100);
        let ok = ps[i].abs_diff(ONE) <= ONE / 100 || (ps[i].abs_diff(ONE) <= 2 * ONE / 100 && (moved(i - 1) || moved(i + 1)));
        assert!(ok, "second {i}: {ps:?}");
    }
    assert!(res.io_count() <= 3 * 12345 + 1, "never ahead of the schedule: {}", res.io_count());
    assert!(res.io_count() >= 3 * 12345 - 370, "{}", res.io_count());
    assert!(res.iops_consistency.unwrap() > 0.97, "{:?}", res.iops_consistency);
}

#[test]
fn io_flags_fua_makes_every_write_durable() {
    let c = |io_flags| IoWorkerConfig { io_flags, read_percentage: 0, region_end: vec![4096], io_count: 2000, ..Default::default() };
    // FUA (CDW12 bit 30): no write stays in the volatile write cache.
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, c(0x4000));
    assert_clean(&res);
    assert_eq!(res.io_count_write, 2000);
    assert_eq!(r.sim().unflushed_chunks(1), 0);
    // Without it, writes sit in the cache until a flush.
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    assert_clean(&run(&ns, c(0)));
    assert!(r.sim().unflushed_chunks(1) > 100, "{}", r.sim().unflushed_chunks(1));
}

#[test]
fn io_flags_show_in_cdw12_of_the_failing_command() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    r.sim().inject(FaultRule::io(WRITE, 1, FaultAction::Fail(Status::INTERNAL_ERROR)));
    let res = run(&ns, IoWorkerConfig { io_flags: 0x4000, read_percentage: 0, io_count: 100, ..Default::default() });
    assert_eq!(res.error, code::IO_CMD_ERROR, "{:?}", res.error_message);
    assert_eq!(res.error_cmd[0] & 0xff, WRITE as u32);
    assert_eq!(res.error_cmd[12] >> 16, 0x4000);
    assert_eq!(res.error_cmd[12] & 0xffff, 7);
    assert_eq!(Status::from_dw3(res.error_cpl[3]).code(), Status::INTERNAL_ERROR.code());
    assert_eq!(res.error_cpl[3] & 0xffff, res.error_cmd[0] >> 16, "the completion's CID is the command's");
}

// ----- distribution, ptype/pvalue, io_sequence -----

#[test]
fn jedec_distribution_puts_half_the_io_in_the_first_5_percent() {
    let r = rig(sim(1 << 30));
    let ns = r.ctrl.namespace(1).unwrap();
    let nsze = ns.nlba();
    let mut distribution = vec![1000u32; 5];
    distribution.extend([200; 15]);
    distribution.extend([25; 80]);
    let sizes = vec![(1, 4), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (8, 67), (16, 10), (32, 7), (64, 3), (128, 3)];
    let n = 20_000u64;
    let res = run(
        &ns,
        IoWorkerConfig {
            io_size: IoSize::Weighted(sizes),
            lba_random: 100,
            qdepth: 128,
            distribution: Some(distribution),
            read_percentage: 0,
            ptype: 0xBEEF,
            pvalue: 100,
            io_count: n,
            output_cmdlog_list: n as usize,
            ..Default::default()
        },
    );
    assert_clean(&res);
    let log = cmdlog(&res);
    let section = nsze / 100;
    let first5 = log.iter().filter(|e| e.slba < 5 * section).count() as u64;
    let next15 = log.iter().filter(|e| e.slba >= 5 * section && e.slba < 20 * section).count() as u64;
    assert_share("first 5 %", first5, n, 0.5, 0.02);
    assert_share("next 15 %", next15, n, 0.3, 0.02);
    assert_share("8-LBA I/Os", log.iter().filter(|e| e.nlb == 8).count() as u64, n, 0.67, 0.02);
}

#[test]
fn ptype_32_pattern_is_on_the_media_without_verification() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    // One write pass over LBAs 0..64; verify_disable: the blocks carry nothing but the
    // pattern.
    common::fresh_lbas(&r, 1, 64, 1);
    let res = run(
        &ns,
        IoWorkerConfig { ptype: 32, pvalue: 0x5a5a_5a5a, read_percentage: 0, lba_random: 0, region_end: vec![64], verify_disable: true, ..Default::default() },
    );
    assert_clean(&res);
    assert_eq!(res.io_count_write, 8);
    let media = common::media(&r, 1, 0, 65 * LBA);
    assert!(media[..64 * LBA].iter().all(|&b| b == 0x5a));
    assert!(media[64 * LBA..].iter().all(|&b| b == 0), "LBA 64 is outside the region");

    // A value that is not a repeated byte shows the dword order: little endian.
    let res = run(
        &ns,
        IoWorkerConfig { ptype: 32, pvalue: 0x1234_5678, read_percentage: 0, lba_random: 0, region_end: vec![64], verify_disable: true, ..Default::default() },
    );
    assert_clean(&res);
    let media = common::media(&r, 1, 0, 64 * LBA);
    assert!(media.chunks(4).all(|d| d == [0x78, 0x56, 0x34, 0x12]));
}

#[test]
fn ptype_32_pattern_fills_all_but_the_head_and_trailer_with_verification() {
    // With verification each written LBA starts with its LBA number (8 bytes, where
    // PyNVMe's scripts find it) and ends in a 32-byte trailer (the LBA number again, the
    // write's serial number, generation and a CRC): the bytes between carry the pattern.
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, IoWorkerConfig { ptype: 32, pvalue: 0x5a5a_5a5a, read_percentage: 0, lba_random: 0, region_end: vec![64], ..Default::default() });
    assert_clean(&res);
    let media = common::media(&r, 1, 0, 64 * LBA);
    for (lba, block) in media.chunks(LBA).enumerate() {
        assert_eq!(u64::from_le_bytes(block[..8].try_into().unwrap()), lba as u64, "the head names LBA {lba}");
        assert!(block[8..LBA - 32].iter().all(|&b| b == 0x5a), "LBA {lba}");
        assert_eq!(u64::from_le_bytes(block[LBA - 32..LBA - 24].try_into().unwrap()), lba as u64, "the trailer names LBA {lba}");
    }
    // And they read back verified.
    let res = run(&ns, IoWorkerConfig { lba_random: 0, region_end: vec![64], ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.lba_count_read, 64);
}

#[test]
fn io_sequence_sends_each_entry_at_its_time_then_ends() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let seq = vec![SeqIo { slba: 0, nlb: 1, opcode: READ, time_sent_us: 0 }, SeqIo { slba: 0, nlb: 1, opcode: WRITE, time_sent_us: 1_000_000 }];
    common::fresh_lbas(&r, 1, 0, 1);
    let t = Instant::now();
    let res = run(&ns, IoWorkerConfig { io_sequence: Some(seq), ptype: 0, pvalue: 0, output_cmdlog_list: 10, ..Default::default() });
    let took = t.elapsed();
    assert_clean(&res);
    assert_eq!((res.io_count_read, res.io_count_write), (1, 1));
    let log = cmdlog(&res);
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].slba, log[0].nlb, log[0].opcode), (0, 1, READ));
    assert_eq!((log[1].slba, log[1].nlb, log[1].opcode), (0, 1, WRITE));
    assert!(log[0].time_sent_us < 100_000, "{:?}", log[0]);
    assert!(log[1].time_sent_us >= 1_000_000 && log[1].time_sent_us < 1_200_000, "{:?}", log[1]);
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(1500), "ends after the last entry: {took:?}");
    assert!((1000..1300).contains(&res.mseconds), "{}", res.mseconds);
    // ptype 0, pvalue 0: zeroes (and the trailer, which names LBA 0).
    let block = common::media(&r, 1, 0, LBA);
    assert!(block[..LBA - 32].iter().all(|&b| b == 0));
    assert_eq!(u64::from_le_bytes(block[LBA - 32..LBA - 24].try_into().unwrap()), 0, "the trailer names LBA 0");
}

// ----- slow_latency, exit_on_error, verify_disable, cpu_id -----

#[test]
fn slow_latency_counts_slow_io_without_stopping_the_run() {
    let mut cfg = small();
    cfg.latency.set_io(READ, Duration::from_millis(5), Duration::ZERO);
    let r = rig(cfg);
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, IoWorkerConfig { slow_latency: Duration::from_millis(1), qdepth: 8, io_count: 100, ..Default::default() });
    assert_eq!(res.error, code::SLOW_IO, "{:?}", res.error_message);
    assert_eq!(res.io_count(), 100, "a slow I/O does not stop the run");
    assert_eq!(res.slow_io_count, 100);
    assert_eq!(res.error_count, 0);
    assert!(res.latency_average_us >= 5000 && res.latency_max_us >= 5000, "{res:?}");
    // The seed's example: 2 s is far above anything here.
    let res = run(&ns, IoWorkerConfig { io_size: IoSize::Fixed(128), slow_latency: Duration::from_secs(2), qdepth: 8, io_count: 100, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.slow_io_count, 0);
}

#[test]
fn exit_on_error_true_stops_at_the_first_failure() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    // The 10th read fails.
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::Fail(Status::INTERNAL_ERROR)).after(9));
    let res = run(&ns, IoWorkerConfig { exit_on_error: true, io_count: 10_000, ..Default::default() });
    assert_eq!(res.error, code::IO_CMD_ERROR, "{:?}", res.error_message);
    assert_eq!(res.error_count, 1);
    // Only what was outstanding when the failure came in completes after it (qdepth 63).
    assert!(res.io_count() >= 10 && res.io_count() <= 9 + 63, "{}", res.io_count());
    assert_eq!(Status::from_dw3(res.error_cpl[3]).code(), Status::INTERNAL_ERROR.code());
    assert_eq!(res.error_cmd[0] & 0xff, READ as u32);
    assert!(res.error_message.as_deref().unwrap().contains("Internal Error"), "{:?}", res.error_message);
}

#[test]
fn exit_on_error_false_runs_to_io_count() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::Fail(Status::INTERNAL_ERROR)).after(9));
    let res = run(&ns, IoWorkerConfig { exit_on_error: false, io_count: 2000, ..Default::default() });
    assert_eq!(res.error, code::IO_CMD_ERROR, "the first error is still reported: {:?}", res.error_message);
    assert_eq!(res.io_count(), 2000);
    assert_eq!(res.error_count, 1);
}

#[test]
fn verify_disable_skips_checking_reads() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    // Write LBAs 0..64 once with verification, so their contents are known.
    assert_clean(&run(&ns, IoWorkerConfig { read_percentage: 0, lba_random: 0, region_end: vec![64], ..Default::default() }));
    let read = |verify_disable| IoWorkerConfig {
        io_size: IoSize::Fixed(8),
        lba_align: vec![8],
        lba_random: 100,
        region_end: vec![64],
        qdepth: 1,
        io_count: 20,
        verify_disable,
        ..Default::default()
    };
    // The drive returns a flipped byte: unnoticed without verification ...
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::CorruptRead { offset: 100 }));
    assert_clean(&run(&ns, read(true)));
    assert!(r.sim().pending_faults().is_empty(), "the corrupted read happened");
    // ... and caught with it: 07/81.
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::CorruptRead { offset: 100 }));
    let res = run(&ns, read(false));
    assert_eq!(res.error, code::IO_CMD_ERROR, "{:?}", res.error_message);
    assert_eq!(Status::from_dw3(res.error_cpl[3]).code(), Status::HOST_MISCOMPARE.code());
    assert_eq!(res.miscompare_count, 1);
}

/// The CPUs a thread may run on, as /proc writes them (`0-1`, `0`, `2,4-7`).
fn allowed_cpus(status_path: &std::path::Path) -> String {
    let status = std::fs::read_to_string(status_path).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim).unwrap_or_default().to_string()
}

#[test]
fn cpu_id_pins_the_worker_thread() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    // CPU 0 where this process may use it (the seed's example), else its first CPU.
    let mine = allowed_cpus("/proc/self/status".as_ref());
    let cpu: usize = mine.split([',', '-']).next().and_then(|c| c.parse().ok()).expect("a CPU list");
    let w = ns.ioworker(IoWorkerConfig { cpu_id: Some(cpu), time: Some(Duration::from_millis(1500)), ..Default::default() }).unwrap().start();
    std::thread::sleep(Duration::from_millis(300));
    // The worker's thread (its name is cut to 15 characters in /proc) may run on that CPU
    // only; the process (and every other thread) on all of its CPUs.
    let mut pinned = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == "nvplan-ioworker" && allowed_cpus(&task.path().join("status")) == cpu.to_string() {
            pinned += 1;
        }
    }
    let res = w.close();
    assert_clean(&res);
    if mine == cpu.to_string() {
        // A process with a single CPU: pinned and unpinned threads look the same.
        assert!(pinned >= 1);
    } else {
        assert_eq!(pinned, 1, "one worker thread allowed on CPU {cpu} only (the process may use {mine})");
    }
}

#[test]
fn cpu_id_that_does_not_exist_fails_init() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, IoWorkerConfig { cpu_id: Some(100_000), io_count: 100, ..Default::default() });
    assert_eq!(res.error, code::INIT_FAIL);
    assert!(res.error_message.as_deref().unwrap_or_default().contains("cpu_id"), "{:?}", res.error_message);
    assert_eq!(res.io_count(), 0);
    // The namespace is usable afterwards.
    assert_clean(&run(&ns, IoWorkerConfig { io_count: 100, ..Default::default() }));
}

// ----- time and the outputs -----

#[test]
fn time_1_runs_about_one_second() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let t = Instant::now();
    let res = run(&ns, IoWorkerConfig { io_size: IoSize::Fixed(8), time: Some(Duration::from_secs(1)), output_io_per_second: true, ..Default::default() });
    let took = t.elapsed();
    assert_clean(&res);
    assert!((1000..1250).contains(&res.mseconds), "{}", res.mseconds);
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(1500), "{took:?}");
    let ps = res.io_per_second.clone().unwrap();
    assert_eq!(ps.len(), 1);
    assert!(ps[0] > 1000 && ps[0] <= res.io_count(), "{ps:?} {}", res.io_count());
    assert_eq!(res.iops_consistency, Some(1.0), "one second: the slowest is the mean");
}

/// The 1 µs bucket at which the running count of the distribution reaches `target`.
fn bucket_of(d: &[u32], target: u64) -> u64 {
    let mut cum = 0u64;
    for (i, &x) in d.iter().enumerate() {
        cum += x as u64;
        if cum >= target {
            return i as u64;
        }
    }
    d.len() as u64 - 1
}

/// Where PyNVMe's `find_percentile_latency` puts percentile `k` (the bucket reaching
/// `total * k // 100` completions), and the bucket of the next completion: histograms
/// that round the count up land there.
fn pynvme_percentile(d: &[u32], k: f64) -> (u64, u64) {
    let total: u64 = d.iter().map(|&x| x as u64).sum();
    let target = (total as f64 * k / 100.0).floor() as u64;
    (bucket_of(d, target), bucket_of(d, (target + 1).min(total)))
}

#[test]
fn output_percentile_latency_fills_the_percentiles_and_the_distribution() {
    let mut cfg = small();
    cfg.latency.set_io(READ, Duration::from_micros(300), Duration::ZERO);
    let r = rig(cfg);
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 2000;
    let res = run(&ns, IoWorkerConfig { output_percentile_latency: vec![99.0, 99.9, 99.999], qdepth: 16, io_count: n, ..Default::default() });
    assert_clean(&res);
    let p = res.percentile_latency.clone().unwrap();
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![99.0, 99.9, 99.999]);
    assert!(p.windows(2).all(|w| w[0].1 <= w[1].1), "{p:?}");
    let d = res.latency_distribution.as_ref().unwrap();
    assert_eq!(d.len(), 1_000_000);
    assert_eq!(d.iter().map(|&x| x as u64).sum::<u64>(), n, "one count per completion");
    assert_eq!(d[..300].iter().map(|&x| x as u64).sum::<u64>(), 0, "nothing faster than the 300 µs the controller takes");
    // Each percentile is PyNVMe's walk over the 1 µs distribution, to within the latency
    // histogram's precision (three significant digits).
    for &(k, us) in &p {
        let (lo, hi) = pynvme_percentile(d, k);
        let tol = 1 + hi / 1000;
        assert!(us >= 300 && us + tol >= lo && us <= hi + tol, "{k}: {us} µs, the distribution says {lo}..={hi} µs");
    }
    // Without the parameter: neither.
    let res = run(&ns, IoWorkerConfig { io_count: 100, ..Default::default() });
    assert!(res.percentile_latency.is_none() && res.latency_distribution.is_none());
}

#[test]
fn output_percentile_latency_opcode_9_tracks_only_deallocate() {
    let mut cfg = small();
    cfg.latency.set_io(DSM, Duration::from_micros(400), Duration::ZERO);
    let r = rig(cfg);
    let ns = r.ctrl.namespace(1).unwrap();
    let n = 3000;
    let c = |opcode| IoWorkerConfig {
        op_percentage: Some(vec![(READ, 40.0), (DSM, 30.0), (WRITE, 30.0)]),
        output_percentile_latency: vec![99.0, 99.9, 99.999],
        output_percentile_latency_opcode: opcode,
        io_count: n,
        ..Default::default()
    };
    let res = run(&ns, c(Some(DSM)));
    assert_clean(&res);
    let dsm = op_count(&res, DSM);
    assert_share("DSM", dsm, n, 0.3, 0.04);
    let d = res.latency_distribution.as_ref().unwrap();
    assert_eq!(d.iter().map(|&x| x as u64).sum::<u64>(), dsm, "only Dataset Management completions");
    assert_eq!(d[..400].iter().map(|&x| x as u64).sum::<u64>(), 0, "every DSM takes 400 µs or more");
    assert!(res.percentile_latency.as_ref().unwrap().iter().all(|x| x.1 >= 400));
    assert!(res.latency_average_us >= 400, "the average is of DSM commands too: {res:?}");
    // All opcodes: the reads and writes (no added latency) are in it as well.
    let res = run(&ns, c(None));
    assert_clean(&res);
    let d = res.latency_distribution.as_ref().unwrap();
    assert_eq!(d.iter().map(|&x| x as u64).sum::<u64>(), n, "every opcode counted");
    // Reads and writes have no added latency: some finish under 400 µs (on a loaded host
    // not necessarily most of them).
    assert!(d[..400].iter().map(|&x| x as u64).sum::<u64>() > 0);
}

#[test]
fn output_cmdlog_list_keeps_the_last_n_commands() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = run(&ns, IoWorkerConfig { lba_random: 0, io_size: IoSize::Fixed(8), qdepth: 1, io_count: 1000, output_cmdlog_list: 100, ..Default::default() });
    assert_clean(&res);
    let log = cmdlog(&res);
    assert_eq!(log.len(), 100);
    // The last 100 of 1000 sequential reads, oldest first.
    assert_eq!(log.iter().map(|e| e.slba).collect::<Vec<_>>(), (900..1000).map(|i| i * 8).collect::<Vec<u64>>());
    for e in log {
        assert_eq!((e.nlb, e.opcode, e.status), (8, READ, 0));
        assert!(e.time_sent_us <= e.time_cplt_us && e.time_cplt_us <= res.mseconds * 1000 + 1000, "{e:?}");
    }
    assert!(log.windows(2).all(|w| w[0].time_cplt_us <= w[1].time_sent_us), "qdepth 1: one after the other");
    // Without the parameter: no log.
    assert!(run(&ns, IoWorkerConfig { io_count: 10, ..Default::default() }).cmdlog.is_none());
}

#[test]
fn cmdlog_error_only_keeps_only_failed_commands() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    r.sim().inject(FaultRule::io(READ, 3, FaultAction::Fail(Status::INTERNAL_ERROR)).after(100));
    let res = run(&ns, IoWorkerConfig { exit_on_error: false, io_count: 2000, output_cmdlog_list: 100, cmdlog_error_only: true, ..Default::default() });
    assert_eq!(res.error, code::IO_CMD_ERROR);
    assert_eq!((res.io_count(), res.error_count), (2000, 3));
    let log = cmdlog(&res);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(log.iter().all(|e| e.status == Status::INTERNAL_ERROR.code() && e.opcode == READ), "{log:?}");
}

#[test]
fn return_values_of_a_clean_run() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let now = SystemTime::now();
    let res = run(&ns, IoWorkerConfig { read_percentage: 50, lba_align: vec![8], io_count: 10_000, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.io_count_read + res.io_count_nonread, 10_000);
    assert_eq!(res.io_count_write, res.io_count_nonread);
    assert_eq!((res.lba_count_read, res.lba_count_nonread, res.lba_count_write), (8 * res.io_count_read, 8 * res.io_count_write, 8 * res.io_count_write));
    assert!(res.mseconds > 0 && res.mseconds < 20_000, "{}", res.mseconds);
    assert!(res.latency_max_us >= res.latency_average_us && res.latency_max_us > 0, "{res:?}");
    assert!((0.0..=1.0).contains(&res.cpu_usage) && res.cpu_usage > 0.0, "{}", res.cpu_usage);
    let started = wall(&res);
    assert!(started >= now - Duration::from_millis(1) && started.duration_since(now).unwrap() < Duration::from_secs(2), "test_start {started:?}");
    assert!(res.test_start_nsec < 1_000_000_000);
    assert_eq!((res.error_cmd, res.error_cpl), ([0; 16], [0; 4]));
    assert!(res.error_message.is_none());
    assert_eq!(res.slow_io_count, 0);
    // Outputs that were not asked for stay empty.
    assert!(res.io_per_second.is_none() && res.iops_consistency.is_none() && res.cmdlog.is_none());
    assert!(res.iops() > 0.0);
}

#[test]
fn successive_workers_leave_nothing_behind_on_the_controller() {
    // Each worker deletes its queue pair after returning its result. The controller must
    // execute exactly the commands the workers sent: nothing from the ring of a queue
    // being deleted, or stale writes would land on LBAs the next worker verifies.
    let r = rig(small());
    let before = host_commands(&r.ctrl);
    let ns = r.ctrl.namespace(1).unwrap();
    let (mut reads, mut writes) = (0, 0);
    for seed in 0..60 {
        let res = run(&ns, IoWorkerConfig { read_percentage: 50, region_end: vec![2048], io_count: 300, seed, ..Default::default() });
        assert_clean(&res);
        reads += res.io_count_read;
        writes += res.io_count_write;
    }
    // The last worker's queue pair is deleted shortly after its result.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(host_commands_since(&r.ctrl, before), (reads, writes), "commands executed vs commands the workers sent");
    // Everything written reads back as the verification table expects.
    assert_clean(&run(&ns, IoWorkerConfig { lba_random: 0, region_end: vec![2048], ..Default::default() }));
}

// ----- error codes -----

#[test]
fn error_minus_2_io_size_above_mdts() {
    // MDTS 5: 32 pages of 4 KiB = 128 KiB; 512 LBAs of 512 bytes are 256 KiB.
    let r = rig(SimConfig { mdts: 5, ..small() });
    let before = host_commands(&r.ctrl);
    let ns = r.ctrl.namespace(1).unwrap();
    let fit = (r.ctrl.info().max_transfer / ns.lba_size()) as u32;
    if r.is_sim() {
        assert_eq!(fit, 256);
    }
    let res = run(&ns, IoWorkerConfig { io_size: IoSize::Fixed(2 * fit), io_count: 10, ..Default::default() });
    assert_eq!(res.error, code::IO_SIZE_ABOVE_MDTS, "{:?}", res.error_message);
    assert!(res.error_message.as_deref().unwrap().contains("MDTS"), "{:?}", res.error_message);
    assert_eq!(res.io_count(), 0);
    assert_eq!(host_commands_since(&r.ctrl, before).0, 0);
    // MDTS itself fits.
    let res = run(&ns, IoWorkerConfig { io_size: IoSize::Fixed(fit), io_count: 10, ..Default::default() });
    assert_clean(&res);
    assert_eq!(res.lba_count_read, 10 * fit as u64);
}

#[test]
fn error_minus_9_when_no_queue_pair_can_be_created() {
    let r = rig(SimConfig { max_io_queues: 1, ..small() });
    let ns = r.ctrl.namespace(1).unwrap();
    // Take every queue pair the controller allocated (the simulator's one, or all of a drive's).
    let mut held = Vec::new();
    while let Ok(q) = r.ctrl.create_qpair(QpairOptions::default()) {
        held.push(q);
        assert!(held.len() <= 65535, "queue pairs beyond any controller's count");
    }
    assert_eq!(held.len(), r.ctrl.info().io_queues.sq.min(r.ctrl.info().io_queues.cq) as usize);
    let res = run(&ns, IoWorkerConfig { io_count: 100, ..Default::default() });
    assert_eq!(res.error, code::CREATE_QPAIR, "{:?}", res.error_message);
    assert_eq!(res.io_count(), 0);
    drop(held);
    assert_clean(&run(&ns, IoWorkerConfig { io_count: 100, ..Default::default() }));
}

#[test]
fn error_minus_7_when_stopped_mid_run_with_partial_counts() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let w = ns.ioworker(IoWorkerConfig { read_percentage: 50, time: Some(Duration::from_secs(30)), ..Default::default() }).unwrap().start();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    w.stop();
    let res = w.close();
    assert!(t.elapsed() < Duration::from_secs(1), "returned after {:?}", t.elapsed());
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    assert!(res.io_count() > 100, "{}", res.io_count());
    assert_eq!(res.io_count(), res.io_count_read + res.io_count_nonread);
    assert!(res.mseconds >= 250 && res.mseconds < 1500, "{}", res.mseconds);
    assert_eq!(res.miscompare_count, 0);
}

/// Starts a worker on `r`'s namespace 1, resets the controller `after` into its run, and
/// returns its result and how long it took to end from the reset.
fn reset_during(r: &common::Rig, cfg: IoWorkerConfig, after: Duration) -> (IoWorkerResult, Duration) {
    let w = r.ctrl.namespace(1).unwrap().ioworker(cfg).unwrap().start();
    std::thread::sleep(after);
    let t = Instant::now();
    r.ctrl.reset().unwrap();
    let res = w.close();
    (res, t.elapsed())
}

#[test]
fn error_minus_7_when_the_controller_is_reset_during_io() {
    let r = rig(small());
    let ns = r.ctrl.namespace(1).unwrap();
    let cfg = IoWorkerConfig { io_size: IoSize::Fixed(8), time: Some(Duration::from_secs(10)), ..Default::default() };
    let (res, took) = reset_during(&r, cfg, Duration::from_millis(300));
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    assert!(res.io_count() > 100);
    // After the reset, a new worker runs normally.
    assert_clean(&run(&ns, IoWorkerConfig { io_count: 1000, ..Default::default() }));
}

#[test]
fn error_minus_7_when_a_reset_finds_nothing_in_flight() {
    // At 5 IOPS the worker has nothing outstanding almost all the time, so the reset
    // aborts none of its commands; it ends at the reset all the same.
    let r = rig(small());
    let cfg = IoWorkerConfig { iops: 5, qdepth: 1, time: Some(Duration::from_secs(10)), ..Default::default() };
    let (res, took) = reset_during(&r, cfg, Duration::from_millis(500));
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    let m = res.error_message.unwrap();
    assert!(m.contains("with no command in flight by a reset or power loss") || res.aborted_by_reset == 1, "{m}");
}

#[test]
fn a_worker_sends_nothing_it_held_back_once_a_reset_took_its_commands() {
    // Writes over 8 positions at qdepth 63: most I/Os wait for the LBA locks of others.
    // The reset aborts what is in flight; the ones waiting must not go to a queue that
    // is gone (each would come back aborted too, and the count would pass qdepth).
    let r = rig(small());
    let cfg = IoWorkerConfig {
        io_size: IoSize::Fixed(8),
        read_percentage: 0,
        region_end: vec![64],
        qdepth: 63,
        time: Some(Duration::from_secs(10)),
        output_cmdlog_list: 1000,
        ..Default::default()
    };
    let (res, _) = reset_during(&r, cfg, Duration::from_millis(300));
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    // At most the commands in flight; none when the reset came as all had completed (the
    // worker sends nothing from the reset's start), which its message then says.
    let m = res.error_message.clone().unwrap_or_default();
    assert!(res.aborted_by_reset <= 63 && (res.aborted_by_reset >= 1 || m.contains("with no command in flight")), "{} aborted: {m}", res.aborted_by_reset);
    assert_eq!(cmdlog(&res).iter().filter(|e| e.status == 0x7fff).count() as u64, res.aborted_by_reset);
}

#[test]
fn error_minus_3_when_a_command_never_completes() {
    let r = rig_with(small(), short_timeout());
    let ns = r.ctrl.namespace(1).unwrap();
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::DropCompletion).after(4));
    let t = Instant::now();
    let res = run(&ns, IoWorkerConfig { time: Some(Duration::from_secs(20)), output_cmdlog_list: 16, cmdlog_error_only: true, ..Default::default() });
    assert_eq!(res.error, code::IO_TIMEOUT, "{:?}", res.error_message);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(3), "the timeout, not time, ended the run: {took:?}");
    assert_eq!(res.error_count, 1);
    assert_eq!((res.error_cpl[0], res.error_cpl[3] >> 16), (u32::MAX, 0xffff), "no completion came: {:x?}", res.error_cpl);
    let log = cmdlog(&res);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, 0x7fff);
    assert!(log[0].time_cplt_us - log[0].time_sent_us >= 500_000, "{:?}", log[0]);
}

// ----- validation -----

#[test]
fn invalid_configurations_are_refused_before_the_run() {
    let r = rig(SimConfig { max_queue_entries: 256, ..small() });
    let ns = r.ctrl.namespace(1).unwrap();
    let base = || IoWorkerConfig { io_count: 100, ..Default::default() };
    let refused = |c: IoWorkerConfig| ns.ioworker(c).unwrap_err();

    let e = refused(IoWorkerConfig { op_percentage: Some(vec![(READ, 50.0), (WRITE, 40.0)]), ..base() });
    assert_eq!(e.field, "op_percentage");
    assert!(e.message.contains("90.00"), "{e}");
    let e = refused(IoWorkerConfig { op_percentage: Some(vec![(READ, 33.3), (WRITE, 33.3), (DSM, 33.3)]), ..base() });
    assert_eq!(e.field, "op_percentage");
    assert_eq!(refused(IoWorkerConfig { read_percentage: 101, ..base() }).field, "read_percentage");
    assert_eq!(refused(IoWorkerConfig { sgl_percentage: 101, ..base() }).field, "sgl_percentage");
    assert_eq!(refused(IoWorkerConfig { lba_random: 101, ..base() }).field, "lba_random");

    let mut jedec = vec![1000u32; 5];
    jedec.extend([200; 15]);
    jedec.extend([25; 80]);
    let e = refused(IoWorkerConfig { distribution: Some(jedec[..99].to_vec()), ..base() });
    assert_eq!(e.field, "distribution");
    assert!(e.message.contains("99 buckets"), "{e}");
    let mut off = jedec.clone();
    off[99] -= 1;
    let e = refused(IoWorkerConfig { distribution: Some(off), ..base() });
    assert!(e.field == "distribution" && e.message.contains("9999"), "{e}");
    assert!(ns.ioworker(IoWorkerConfig { distribution: Some(jedec.clone()), ..base() }).is_ok());
    assert_eq!(refused(IoWorkerConfig { distribution: Some(jedec), region_end: vec![1000], ..base() }).field, "distribution");

    assert_eq!(refused(IoWorkerConfig { region_start: vec![0x100], region_end: vec![0x100], ..base() }).field, "region_start");
    assert_eq!(refused(IoWorkerConfig { region_start: vec![0x200], region_end: vec![0x100], ..base() }).field, "region_start");
    assert_eq!(refused(IoWorkerConfig { region_start: vec![0, 10], region_end: vec![5], ..base() }).field, "region_end");
    assert_eq!(refused(IoWorkerConfig { region_start: vec![ns.nlba()], ..base() }).field, "region_start");

    // No stop condition: no time, io_count or lba_count, and not a single sequential pass.
    let e = refused(IoWorkerConfig::default());
    assert_eq!(e.field, "time");
    assert_eq!(refused(IoWorkerConfig { lba_random: 0, ..Default::default() }).field, "time");
    assert_eq!(refused(IoWorkerConfig { lba_random: 0, io_size: IoSize::List(vec![8, 16]), region_end: vec![100], ..Default::default() }).field, "time");

    // qdepth + 1 entries must fit the controller's queues (CAP.MQES + 1, 256 on this simulator).
    let entries = r.ctrl.cap().max_queue_entries();
    if r.is_sim() {
        assert_eq!(entries, 256);
    }
    let e = refused(IoWorkerConfig { qdepth: entries, ..base() });
    assert!(e.field == "qdepth" && e.message.contains("CAP.MQES"), "{e}");
    assert!(ns.ioworker(IoWorkerConfig { qdepth: entries - 1, ..base() }).is_ok());
    assert_eq!(refused(IoWorkerConfig { qdepth: 0, ..base() }).field, "qdepth");

    assert_eq!(refused(IoWorkerConfig { io_size: IoSize::Fixed(0), ..base() }).field, "io_size");
    assert_eq!(refused(IoWorkerConfig { io_size: IoSize::List(vec![8, 16]), lba_align: vec![8, 8, 8], ..base() }).field, "lba_align");
    assert_eq!(refused(IoWorkerConfig { output_percentile_latency: vec![100.0], ..base() }).field, "output_percentile_latency");
    assert_eq!(refused(IoWorkerConfig { ptype: 7, ..base() }).field, "ptype");
    assert_eq!(refused(IoWorkerConfig { io_sequence: Some(vec![]), ..base() }).field, "io_sequence");
    let beyond = SeqIo { slba: ns.nlba(), nlb: 1, opcode: READ, time_sent_us: 0 };
    assert_eq!(refused(IoWorkerConfig { io_sequence: Some(vec![beyond]), ..base() }).field, "io_sequence");
}
