//! One I/O worker against the simulated controller at zero latency: 4 KiB random reads at
//! qdepth 63 with verification off and on, and 4 KiB random writes with verification on,
//! next to fio's null engine (plain, and with `--verify=crc32c`) measured in the same run.
//!
//! `cargo bench --bench ioworker` (`NVPLAN_BENCH_SECS` sets the length of each run, 5 s by
//! default). The first read run covers never-written blocks (the simulator copies from the
//! zero page: the worker's own cost shows); the region is then written once, so the other
//! reads return verified blocks from memory, as a drive would. The last run mixes reads
//! and writes over 64 blocks, so most I/Os wait for the LBA locks of others.

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

fn main() {
    let secs = common::duration();
    let fio_read = common::fio_null_qd63(secs, &["--rw=randread"]);
    let fio_write_verify = common::fio_null_qd63(secs, &common::FIO_VERIFIED_WRITES);

    let cfg = SimConfig { namespaces: vec![NamespaceConfig::memory(REGION_LBAS * 512, 512)], write_cache: false, ..Default::default() };
    let sim = Simulator::new(cfg).expect("simulator");
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let ctrl = Controller::new(t, ControllerOptions::default()).expect("bring-up");
    let ns = ctrl.namespace(1).expect("namespace 1");
    // First over never-written blocks: the simulator's data copies come from the zero
    // page, so this measures the worker (host side); then over written blocks.
    let unwritten_plain = run(&ns, secs, 100, false);
    // Write the region once (verified generations for every LBA).
    let fill = IoWorkerConfig { lba_random: 0, read_percentage: 0, io_size: IoSize::Fixed(256), region_end: vec![REGION_LBAS], ..Default::default() };
    assert_eq!(ns.ioworker(fill).unwrap().run().error, 0);

    let read_plain = run(&ns, secs, 100, false);
    let read_verified = run(&ns, secs, 100, true);
    let write_verified = run(&ns, secs, 0, true);
    // 64 blocks for 63 slots: nearly every I/O runs into the LBA lock of another one.
    let contended = run_over(&ns, secs, 50, true, 64 * 8);

    println!("one worker, 4 KiB random, qdepth 63, worker pinned to CPU 0 ({:.1} s each; {})", secs.as_secs_f64(), common::fio_version());
    let fr = fio_read.as_ref().ok().map(|f| ("fio null randread", *f));
    let fw = fio_write_verify.as_ref().ok().map(|f| ("fio null randwrite crc32c", *f));
    if let Some((_, f)) = fr {
        common::report("fio --ioengine=null --rw=randread", f, None);
    }
    if let Some((_, f)) = fw {
        common::report("fio --ioengine=null --rw=randwrite --verify=crc32c", f, None);
    }
    common::report("ioworker randread, verify off, unwritten", unwritten_plain.iops(), fr);
    common::report("ioworker randread, verify off", read_plain.iops(), fr);
    common::report("ioworker randread, verify on", read_verified.iops(), fr);
    common::report("ioworker randwrite, verify on", write_verified.iops(), fw);
    common::report("ioworker 50% read, verify on, 64 blocks", contended.iops(), fw);
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
