//! One I/O worker against the simulated controller at zero latency: 4 KiB random reads at
//! qdepth 63 with verification off and on, and 4 KiB random writes with verification on,
//! next to fio's null engine (plain, and with `--verify=crc32c`) measured in the same run.
//!
//! `cargo bench --bench ioworker` (`NVPLAN_BENCH_SECS` sets the length of each run, 5 s by
//! default). The first read runs cover never-written blocks (the simulator copies from the
//! zero page: the worker's own cost shows), with verification off, then on (the default:
//! the worker knows nothing of these blocks, so it compares nothing); the region is then
//! written once, so the other reads return verified blocks from memory, as a drive would.
//! The last run mixes reads and writes over 64 blocks, so most I/Os wait for the LBA locks
//! of others.
//!
//! The never-written read is measured in rounds (`NVPLAN_BENCH_ROUNDS`, 3 by default), each
//! next to a fio run of its own, and reported as the median of the rounds' ratios: on a
//! machine whose speed changes from one minute to the next, a ratio of two runs far apart
//! says more about the machine than about the two programs. Each round also reports the
//! round trip of a cache line between the worker's CPU and the simulator's, just before and
//! after it: the two hand every command across, fio's null engine does not. The other runs
//! carry the same two round trips in their line, as `[before/after ns]`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use nvplan::driver::{Controller, ControllerOptions};
use nvplan::ioworker::{IoSize, IoWorkerConfig, IoWorkerResult};
use nvplan::sim::{NamespaceConfig, SimConfig, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

const REGION_LBAS: u64 = 1 << 21; // 1 GiB of 512-byte LBAs

fn run(ns: &nvplan::driver::Namespace, secs: Duration, read: u8, verify: bool) -> IoWorkerResult {
    run_over(ns, secs, read, verify, REGION_LBAS)
}

fn run_over(ns: &nvplan::driver::Namespace, secs: Duration, read: u8, verify: bool, region: u64) -> IoWorkerResult {
    let c = IoWorkerConfig {
        time: Some(secs),
        io_size: IoSize::Fixed(8),
        lba_align: vec![8],
        qdepth: 63,
        read_percentage: read,
        verify_disable: !verify,
        region_end: vec![region],
        cpu_id: Some(0),
        ..Default::default()
    };
    let r = ns.ioworker(c).expect("valid configuration").run();
    assert_eq!((r.error, r.miscompare_count), (0, 0), "{:?}", r.error_message);
    r
}

/// How long each probe of the worker-simulator round trip runs.
const TRIP_PROBE: Duration = Duration::from_millis(200);

fn main() {
    let secs = common::duration();
    let fio_read = common::fio_null_qd63(secs, &["--rw=randread"]);
    let fio_write_verify = common::fio_null_qd63(secs, &common::FIO_VERIFIED_WRITES);

    let cfg =
        SimConfig { namespaces: vec![NamespaceConfig::memory(REGION_LBAS * 512, 512)], write_cache: false, cpus: common::sim_cpus(), ..Default::default() };
    let sim = Simulator::new(cfg).expect("simulator");
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let ctrl = Controller::new(t, ControllerOptions::default()).expect("bring-up");
    let ns = ctrl.namespace(1).expect("namespace 1");
    // First over never-written blocks: the simulator sends zeroes, so this measures the
    // worker and the simulator's command handling; then over written blocks.
    let rounds: usize = std::env::var("NVPLAN_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    let mut pairs = Vec::new();
    let mut unwritten_plain = IoWorkerResult::default();
    for _ in 0..rounds {
        // Before and after: the placement can change during the run.
        let trip;
        (unwritten_plain, trip) = common::around(TRIP_PROBE, || run(&ns, secs, 100, false));
        if let Ok(f) = common::fio_null_qd63(secs, &["--rw=randread"]) {
            pairs.push((unwritten_plain.iops(), f, unwritten_plain.cpu_usage, trip));
        }
    }
    // Verification on, and nothing to compare: what is left is the LBA locks and a read
    // buffer per slot (the Python front's default, and PyNVMe's tests').
    let (unwritten_verified, t_unwritten_verified) = common::around(TRIP_PROBE, || run(&ns, secs, 100, true));
    // Write the region once (verified generations for every LBA).
    let fill = IoWorkerConfig { lba_random: 0, read_percentage: 0, io_size: IoSize::Fixed(256), region_end: vec![REGION_LBAS], ..Default::default() };
    assert_eq!(ns.ioworker(fill).unwrap().run().error, 0);

    // Each run is tagged with the round trip just before and after it, as in `sim_storage`.
    let (read_plain, t_plain) = common::around(TRIP_PROBE, || run(&ns, secs, 100, false));
    let (read_verified, t_verified) = common::around(TRIP_PROBE, || run(&ns, secs, 100, true));
    let (write_verified, t_write) = common::around(TRIP_PROBE, || run(&ns, secs, 0, true));
    // 64 blocks for 63 slots: nearly every I/O runs into the LBA lock of another one.
    let (contended, t_contended) = common::around(TRIP_PROBE, || run_over(&ns, secs, 50, true, 64 * 8));

    println!(
        "one worker, 4 KiB random, qdepth 63, worker pinned to CPU 0, {} ({:.1} s each; {})",
        common::sim_cpus_text(),
        secs.as_secs_f64(),
        common::fio_version()
    );
    let fr = fio_read.as_ref().ok().map(|f| ("fio null randread", *f));
    let fw = fio_write_verify.as_ref().ok().map(|f| ("fio null randwrite crc32c", *f));
    if let Some((_, f)) = fr {
        common::report("fio --ioengine=null --rw=randread", f, None);
    }
    if let Some((_, f)) = fw {
        common::report("fio --ioengine=null --rw=randwrite --verify=crc32c", f, None);
    }
    if pairs.is_empty() {
        common::report("ioworker randread, verify off, unwritten", unwritten_plain.iops(), fr);
    } else {
        // The round whose ratio is the median, next to its own fio run; then every round.
        let mut ratios: Vec<(f64, f64)> = pairs.iter().map(|&(n, f, _, _)| (n, f)).collect();
        ratios.sort_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
        let (n, f) = ratios[ratios.len() / 2];
        common::report("ioworker randread, verify off, unwritten", n, Some(("fio null randread, median round", f)));
        let each: Vec<String> = pairs
            .iter()
            .map(|(n, f, cpu, trip)| {
                let trip = trip.map_or(String::new(), |(a, b)| format!(", line round trip {a:.0}/{b:.0} ns"));
                format!("{:.1} M / {:.2} M = {:.2} ({:.0} ns per I/O{trip})", n / 1e6, f / 1e6, n / f, cpu / n * 1e9)
            })
            .collect();
        println!("  rounds, ioworker / fio: {}", each.join("; "));
    }
    common::report(&format!("ioworker randread, verify on, unwritten{}", common::trip_tag(t_unwritten_verified)), unwritten_verified.iops(), fr);
    common::report(&format!("ioworker randread, verify off{}", common::trip_tag(t_plain)), read_plain.iops(), fr);
    common::report(&format!("ioworker randread, verify on{}", common::trip_tag(t_verified)), read_verified.iops(), fr);
    common::report(&format!("ioworker randwrite, verify on{}", common::trip_tag(t_write)), write_verified.iops(), fw);
    common::report(&format!("ioworker 50% read, verify on, 64 blocks{}", common::trip_tag(t_contended)), contended.iops(), fw);
    println!(
        "verified read / unverified read (written blocks): {:.2}; cpu_usage {:.2} / {:.2} / {:.2} / {:.2}",
        read_verified.iops() / read_plain.iops(),
        unwritten_plain.cpu_usage,
        read_plain.cpu_usage,
        read_verified.cpu_usage,
        write_verified.cpu_usage
    );
    for e in [fio_read.err(), fio_write_verify.err()].into_iter().flatten() {
        println!("(no fio reference: {e})");
    }
    assert!(sim.panics().is_empty());
}
