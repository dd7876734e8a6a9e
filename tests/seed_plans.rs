//! The seed's examples (PyNVMe3 IO models 1.1, 1.2 and 1.4) as plans under `plans/seed/`,
//! run end to end, shortened, each pinned by the same effect its Rust ioworker test
//! (`tests/ioworker.rs`) checks: the commands sent (command log), what the simulated
//! controller saw, what landed on the media, and the returned statistics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use nvplan::exec::{self, Outcome, Summary};
use nvplan::ioworker::stats::CmdlogEntry;
use nvplan::ioworker::{IoWorkerResult, code};
use nvplan::plan;
use nvplan::sim::{FaultAction, FaultRule, SimConfig, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

const READ: u8 = 0x02;
const WRITE: u8 = 0x01;
const DSM: u8 = 0x09;

fn seed_plan(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/seed").join(format!("{name}.yaml"))
}

/// Runs `plans/seed/NAME.yaml` with every duration times `scale` on the plan's simulator
/// (changed by `tweak`, prepared by `before`), and returns the summary and the simulator.
fn run_with(name: &str, scale: f64, tweak: impl FnOnce(&mut SimConfig), before: impl FnOnce(&Simulator)) -> (Summary, Arc<Simulator>) {
    let p = plan::load(&seed_plan(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let mut cfg = plan::sim_config(&p, None).expect("the plan's target");
    tweak(&mut cfg);
    let sim = Simulator::new(cfg).expect("the simulator starts");
    before(&sim);
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let stop = AtomicBool::new(false);
    let s = exec::run_plan(&p, Ok(t), None, scale, &stop, &mut |_: &exec::Summary| {});
    assert!(s.error.is_none(), "{name}: {:?}", s.error);
    (s, sim)
}

fn run(name: &str, scale: f64) -> (Summary, Arc<Simulator>) {
    let (s, sim) = run_with(name, scale, |_| {}, |_| {});
    assert_eq!(s.outcome, Outcome::Pass, "{name}: {}", failures(&s));
    (s, sim)
}

fn failures(s: &Summary) -> String {
    let mut v = Vec::new();
    for p in &s.phases {
        for c in p.checks.iter().chain(p.workers.iter().flat_map(|w| &w.checks)).filter(|c| !c.pass) {
            v.push(format!("{}: {} expected {}, got {}", p.label, c.what, c.expected, c.actual));
        }
    }
    v.join("; ")
}

/// The result of the only worker of phase run `label`.
fn worker<'a>(s: &'a Summary, label: &str) -> &'a IoWorkerResult {
    let p = s.phases.iter().find(|p| p.label == label).unwrap_or_else(|| panic!("no phase run {label}"));
    &p.workers[0].result
}

fn cmdlog<'a>(s: &'a Summary, label: &str) -> &'a [CmdlogEntry] {
    worker(s, label).cmdlog.as_deref().expect("the plan asks for output_cmdlog_list")
}

fn op_count(r: &IoWorkerResult, op: u8) -> u64 {
    r.op_counts.iter().find(|o| o.0 == op).map_or(0, |o| o.1)
}

#[track_caller]
fn assert_share(what: &str, n: u64, total: u64, expected: f64, tol: f64) {
    let got = n as f64 / total as f64;
    assert!((got - expected).abs() <= tol, "{what}: {got:.3} of {total}, expected {expected} ± {tol}");
}

fn size_shares(log: &[CmdlogEntry]) -> HashMap<u32, u64> {
    let mut m = HashMap::new();
    for e in log {
        *m.entry(e.nlb).or_insert(0) += 1;
    }
    m
}

#[test]
fn every_seed_plan_has_a_test_here() {
    let src = std::fs::read_to_string(file!()).expect("this file");
    for e in std::fs::read_dir(seed_plan("x").parent().unwrap()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(src.contains(&format!("\"{name}\"")), "plans/seed/{name}.yaml has no test in tests/seed_plans.rs");
    }
}

#[test]
fn io_size_fixed_list_and_weighted_follow_their_weights() {
    let (s, _) = run("io_size", 0.1);
    // A random start in the namespace's last 7 LBAs is cut at its end (1 GiB of 512-byte
    // LBAs); every other command is 8 LBAs.
    assert!(cmdlog(&s, "fixed").iter().all(|e| e.nlb == 8 || e.slba + e.nlb as u64 == 1 << 21));
    let log = cmdlog(&s, "list");
    let m = size_shares(log);
    for sz in [8, 16, 256] {
        assert_share(&format!("io_size {sz}"), m[&sz], log.len() as u64, 1.0 / 3.0, 0.04);
    }
    let log = cmdlog(&s, "weighted");
    let m = size_shares(log);
    assert_share("io_size 8", m[&8], log.len() as u64, 0.50, 0.04);
    assert_share("io_size 16", m[&16], log.len() as u64, 0.25, 0.04);
    assert_share("io_size 256", m[&256], log.len() as u64, 0.25, 0.04);
}

#[test]
fn lba_align_8_starts_every_io_on_a_4k_boundary() {
    let (s, _) = run("lba_align", 0.1);
    let log = cmdlog(&s, "aligned-4k");
    assert!(log.len() > 1000);
    assert!(log.iter().all(|e| e.slba % 8 == 0 && e.nlb == 8));
}

#[test]
fn time_5_runs_five_seconds_scaled() {
    let (s, _) = run("time", 0.2);
    let ms = worker(&s, "five-seconds").mseconds;
    assert!((1000..1150).contains(&ms), "time 5 s × 0.2 ran {ms} ms");
}

#[test]
fn io_count_10000_sends_exactly_10000_ios() {
    let (s, _) = run("io_count", 1.0);
    let r = worker(&s, "ten-thousand");
    assert_eq!((r.io_count_read, r.io_count_nonread), (10_000, 0));
}

#[test]
fn lba_count_one_gib_stops_at_exactly_that_many_lbas() {
    let (s, _) = run("lba_count", 0.1);
    let r = worker(&s, "one-gib");
    assert_eq!(r.lba_count_read + r.lba_count_nonread, (1 << 30) / 512);
    assert_share("reads", r.io_count_read, r.io_count(), 0.70, 0.03);
    assert!(r.mseconds < 60_000, "stopped by lba_count, not by the time limit");
}

/// Commands that start where another one of the log ended: the sequential ones, in
/// whatever order they completed (a random start next to a logged command is rare).
fn sequential(log: &[CmdlogEntry]) -> usize {
    let ends: std::collections::HashSet<u64> = log.iter().map(|e| e.slba + e.nlb as u64).collect();
    log.iter().filter(|e| ends.contains(&e.slba)).count()
}

#[test]
fn lba_random_false_is_sequential_and_50_is_half_random() {
    let (s, _) = run("lba_random", 0.1);
    let log = cmdlog(&s, "sequential");
    // The walk starts again at LBA 0 once it reaches the namespace's end, within the log
    // in some runs.
    let wraps = log.iter().filter(|e| e.slba == 0).count();
    assert!(sequential(log) + wraps >= log.len() - 1, "every command but the oldest follows another");
    let log = cmdlog(&s, "half-random");
    assert_share("sequential commands", sequential(log) as u64, log.len() as u64, 0.5, 0.03);
}

#[test]
fn lba_step_gaps_walks_down_and_repeats() {
    let (s, _) = run("lba_step", 0.1);
    let log = cmdlog(&s, "gap");
    assert!(log.windows(2).all(|w| w[1].slba == w[0].slba + 16 || w[1].slba < w[0].slba), "4 KiB reads 8 KiB apart");
    let down: Vec<u64> = cmdlog(&s, "reverse").iter().map(|e| e.slba).collect();
    assert_eq!(down, (1..=10).rev().collect::<Vec<u64>>(), "LBA 10 down to 1");
    let log = cmdlog(&s, "repeat");
    assert!(log.len() > 100 && log.iter().all(|e| e.slba == 100));
}

#[test]
fn start_time_holds_five_workers_back_then_starts_them_together() {
    let (s, _) = run("start_time", 0.1);
    let p = &s.phases[0];
    let starts: Vec<f64> = p.workers.iter().map(|w| w.result.test_start_sec as f64 + w.result.test_start_nsec as f64 * 1e-9).collect();
    let (first, last) = starts.iter().fold((f64::MAX, 0f64), |(a, b), &t| (a.min(t), b.max(t)));
    // Each worker sleeps until the same instant; only the scheduler's wake-up latency (on
    // a loaded two-core host, a few ms) separates them.
    assert!(last - first < 0.025, "five workers started within {:.1} ms", (last - first) * 1e3);
    let phase_start = s.started_unix as f64 + p.start_s;
    assert!(first - phase_start >= 0.99, "start_time 10 s × 0.1: the first I/O {:.3} s after the phase start", first - phase_start);
    for w in &p.workers {
        assert!(w.result.io_count_read > 0 && (950..1100).contains(&w.result.mseconds), "{}: {} ms", w.name, w.result.mseconds);
    }
}

#[test]
fn read_percentage_50_gives_half_reads_and_half_writes() {
    let (s, _) = run("read_percentage", 0.1);
    let r = worker(&s, "half");
    assert_share("reads", r.io_count_read, r.io_count(), 0.5, 0.02);
    assert_eq!(r.io_count_write, r.io_count_nonread);
}

#[test]
fn op_percentage_mixes_reads_writes_and_deallocations() {
    let (s, _) = run("op_percentage", 0.1);
    for label in ["integer", "decimal"] {
        let r = worker(&s, label);
        let (read, write) = if label == "integer" { (0.40, 0.30) } else { (0.3334, 0.3333) };
        assert_share("reads", op_count(r, READ), r.io_count(), read, 0.02);
        assert_share("writes", op_count(r, WRITE), r.io_count(), write, 0.02);
        assert_share("deallocations", op_count(r, DSM), r.io_count(), 1.0 - read - write, 0.02);
    }
}

#[test]
fn sgl_percentage_50_sends_half_the_commands_with_an_sgl() {
    let (s, sim) = run("sgl_percentage", 0.1);
    let r = worker(&s, "half-sgl");
    assert_share("SGL commands seen by the controller", sim.stats().sgl_commands, r.io_count(), 0.5, 0.03);
}

#[test]
fn qdepth_127_keeps_127_commands_outstanding() {
    let (s, _) = run("qdepth", 0.1);
    let log = cmdlog(&s, "qd127");
    let mut edges: Vec<(u64, i64)> = log.iter().flat_map(|e| [(e.time_sent_us, 1), (e.time_cplt_us, -1)]).collect();
    edges.sort_by_key(|&(t, d)| (t, d));
    let (mut n, mut max) = (0i64, 0i64);
    for (_, d) in edges {
        n += d;
        max = max.max(n);
    }
    // The log starts with commands in flight whose submission it no longer holds.
    assert!((120..=127).contains(&max), "at most {max} outstanding");
}

#[test]
fn qprio_0_runs_clean() {
    let (s, _) = run("qprio", 0.1);
    assert!(worker(&s, "prio0").io_count() > 1000);
}

#[test]
fn region_start_0x10_keeps_random_io_above_it() {
    let (s, _) = run("region_start", 0.1);
    let log = cmdlog(&s, "from-0x10");
    assert!(log.iter().all(|e| e.slba >= 0x10));
    assert!(log.iter().any(|e| e.slba > 1 << 20), "spread over the namespace");
}

#[test]
fn region_end_keeps_io_inside_one_or_two_regions() {
    let (s, _) = run("region_end", 0.1);
    assert!(cmdlog(&s, "one-region").iter().all(|e| e.slba >= 0x10 && e.slba + e.nlb as u64 <= 0x100));
    let log = cmdlog(&s, "two-regions");
    let inside = |a: u64, b: u64| log.iter().filter(|e| e.slba >= a && e.slba + e.nlb as u64 <= b).count();
    let (r1, r2) = (inside(0x10, 0x100), inside(0x1010, 0x1100));
    assert_eq!(r1 + r2, log.len(), "nothing outside the two regions");
    assert!(r1 > 100 && r2 > 100, "both regions get I/O: {r1} and {r2}");
}

#[test]
fn iops_12345_paces_every_second() {
    let (s, _) = run("iops", 0.6);
    let r = worker(&s, "paced");
    let per_s = r.io_per_second.as_deref().expect("output_io_per_second");
    assert_eq!(per_s.len(), 3);
    // As in the ioworker test: within 2 % each second (a stalled worker thread catches up in
    // the next second), never ahead of the schedule overall.
    const ONE: u64 = 12345;
    assert!(per_s.iter().all(|n| n.abs_diff(ONE) <= 2 * ONE / 100), "{per_s:?}");
    let ahead = ONE * (r.mseconds + 1) / 1000 + 1;
    assert!(r.io_count() <= ahead && r.io_count() >= 3 * ONE - 370, "{} I/Os in {} ms", r.io_count(), r.mseconds);
}

#[test]
fn io_flags_fua_leaves_nothing_in_the_write_cache() {
    let (s, sim) = run("io_flags", 0.1);
    assert!(worker(&s, "fua-writes").io_count_write > 1000);
    assert!(sim.config().write_cache);
    assert_eq!(sim.unflushed_chunks(1), 0, "every write was FUA: durable at completion");
}

#[test]
fn jedec_distribution_puts_half_the_io_in_the_first_5_percent() {
    let (s, sim) = run("distribution", 1.0);
    let log = cmdlog(&s, "jedec");
    let nlba = sim.config().namespaces[0].capacity / 512;
    let in_range = |a: f64, b: f64| log.iter().filter(|e| (e.slba as f64) >= a * nlba as f64 && (e.slba as f64) < b * nlba as f64).count() as u64;
    let n = log.len() as u64;
    assert_share("first 5 %", in_range(0.0, 0.05), n, 0.50, 0.02);
    assert_share("5-20 %", in_range(0.05, 0.20), n, 0.30, 0.02);
    assert_share("last 80 %", in_range(0.20, 1.0), n, 0.20, 0.02);
    assert_share("4 KiB", size_shares(log)[&8], n, 0.67, 0.02);
}

#[test]
fn ptype_32_puts_the_dword_on_the_media() {
    let (s, sim) = run("ptype_pvalue", 0.1);
    let r = worker(&s, "dword-pattern");
    assert!(r.io_count_write > 1000);
    // Find a written LBA: random writes of 8 LBAs over 1 GiB; look at the first hundred.
    let mut b = vec![0u8; 512];
    let hit = (0..2_097_152u64).step_by(8).take(20_000).find(|&l| {
        sim.peek_media(1, l, &mut b);
        b[8] != 0
    });
    let l = hit.expect("some LBA was written");
    sim.peek_media(1, l, &mut b);
    // With verification the first 8 bytes are the LBA number and the last 32 the trailer.
    assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), l, "LBA {l:#x} names itself");
    assert!(b[8..480].iter().all(|&x| x == 0x5a), "LBA {l:#x}: {:02x?}", &b[..16]);
}

#[test]
fn io_sequence_sends_each_entry_at_its_time() {
    let (s, _) = run("io_sequence", 0.5);
    let log = cmdlog(&s, "read-then-write");
    assert_eq!(log.iter().map(|e| (e.slba, e.nlb, e.opcode)).collect::<Vec<_>>(), vec![(0, 1, READ), (0, 1, WRITE)]);
    // Each at its time after the start, never early: the first may itself go out a few
    // microseconds late, so the gap between them is not the measure.
    assert!(log[0].time_sent_us < 20_000, "the first at once: {} µs", log[0].time_sent_us);
    assert!((500_000..520_000).contains(&log[1].time_sent_us), "1 s × 0.5: the second at {} µs", log[1].time_sent_us);
}

#[test]
fn slow_latency_2s_counts_no_slow_io_on_a_fast_device() {
    let (s, _) = run("slow_latency", 0.1);
    let r = worker(&s, "two-seconds");
    assert_eq!((r.slow_io_count, r.error), (0, code::SUCCESS));
    // With every read taking longer than the limit, each is counted and reported, and the
    // run goes on to its time (PyNVMe warns; it does not stop).
    let (s, _) = run_with("slow_latency", 0.1, |c| c.latency.set_io(READ, std::time::Duration::from_millis(2100), std::time::Duration::ZERO), |_| {});
    let r = worker(&s, "two-seconds");
    assert_eq!(r.error, code::SLOW_IO, "{:?}", r.error_message);
    assert!(r.slow_io_count > 0 && r.slow_io_count == r.io_count_read);
}

#[test]
fn exit_on_error_true_stops_at_the_first_failure() {
    let (s, _) = run("exit_on_error", 0.1);
    assert!(worker(&s, "stop-at-first").io_count() > 1000);
    // The 100th read fails: the worker stops there.
    let (s, _) = run_with(
        "exit_on_error",
        0.1,
        |_| {},
        |sim| sim.inject(FaultRule { skip: 99, ..FaultRule::io(READ, 1, FaultAction::Fail(nvplan::nvme::Status::INTERNAL_ERROR)) }),
    );
    assert_eq!(s.outcome, Outcome::Fail);
    let r = worker(&s, "stop-at-first");
    assert_eq!((r.error, r.error_count), (code::IO_CMD_ERROR, 1));
    assert!(r.io_count() < 100 + 64, "stopped with at most a queue's worth after the failure: {}", r.io_count());
}

#[test]
fn verify_disable_reads_corrupted_data_without_a_miscompare() {
    let (s, _) = run_with("verify_disable", 0.1, |_| {}, |sim| sim.inject(FaultRule::io(READ, 1000, FaultAction::CorruptRead { offset: 7 })));
    assert_eq!(s.outcome, Outcome::Pass, "{}", failures(&s));
    let r = worker(&s, "unverified");
    assert_eq!(r.miscompare_count, 0);
    assert!(r.io_count_read > 1000);
}

#[test]
fn cpu_id_1_pins_the_worker_to_core_1() {
    let (s, _) = run("cpu_id", 0.1);
    assert_eq!(s.phases[0].workers[0].cpu_id, Some(1));
    assert!(worker(&s, "performance").io_count_read > 1000);
}

#[test]
fn output_io_per_second_has_one_count_per_second() {
    let (s, _) = run("output_io_per_second", 0.4);
    let r = worker(&s, "per-second");
    let v = r.io_per_second.as_deref().expect("io_per_second");
    assert_eq!(v.len(), 2);
    assert!(v.iter().sum::<u64>() <= r.io_count() && v.iter().all(|&n| n > 1000));
}

#[test]
fn output_percentile_latency_fills_the_percentiles_and_tracks_one_opcode() {
    let (s, _) = run("output_percentile_latency", 0.1);
    let r = worker(&s, "percentiles");
    let p = r.percentile_latency.as_deref().expect("percentile_latency");
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![99.0, 99.9, 99.999]);
    assert!(p.windows(2).all(|w| w[0].1 <= w[1].1) && p[0].1 > 0);
    let d = r.latency_distribution.as_deref().expect("latency_distribution");
    assert_eq!(d.iter().map(|&n| n as u64).sum::<u64>(), r.io_count());
    let r = worker(&s, "deallocate-only");
    let d = r.latency_distribution.as_deref().expect("latency_distribution");
    assert_eq!(d.iter().map(|&n| n as u64).sum::<u64>(), op_count(r, DSM), "only opcode 9 counted");
}

#[test]
fn output_cmdlog_list_keeps_the_last_1000_commands_before_the_power_loss() {
    // 2 s of 128 KiB I/O before the loss: well over 1000 commands even on a loaded host.
    let (s, _) = run("output_cmdlog_list", 0.4);
    let r = worker(&s, "power-cycle-dirty");
    assert_eq!(r.error, code::TERMINATED, "the power loss ends the worker, as in PyNVMe");
    let log = r.cmdlog.as_deref().expect("cmdlog");
    assert_eq!(log.len(), 1000);
    assert!(log.iter().all(|e| e.nlb == 256 && e.slba % 256 == 0));
    assert!(log.iter().any(|e| e.status == 0x7fff), "the commands the loss took away are in it");
    let ev = &s.phases[0].events[0];
    assert!((ev.actual_s - 2.0).abs() < 0.01, "power off at {} s", ev.actual_s);
}

#[test]
fn full_disk_sequential_read_is_one_pass() {
    let (s, _) = run("full_disk_read", 1.0);
    let r = worker(&s, "one-pass");
    assert_eq!((r.io_count_read, r.lba_count_read), ((256 << 20) / 4096, (256 << 20) / 512));
}

#[test]
fn full_disk_random_write_runs_its_hour_scaled() {
    let (s, _) = run("full_disk_random_write", 0.0005);
    let r = worker(&s, "one-hour");
    assert!(r.io_count_write > 1000 && r.io_count_read == 0);
    assert!((1800..2000).contains(&r.mseconds), "3600 s × 0.0005: {} ms", r.mseconds);
}

#[test]
fn reset_during_io_ends_the_worker_at_the_reset() {
    let (s, _) = run("reset_during_io", 0.1);
    let r = worker(&s, "reset");
    assert_eq!(r.error, code::TERMINATED);
    assert!((480..700).contains(&r.mseconds), "reset at 5 s × 0.1, worker ended after {} ms", r.mseconds);
    let ev = &s.phases[0].events[0];
    assert_eq!((ev.kind.as_str(), ev.outcome), ("reset", Outcome::Pass));
}
