//! The simulator's storage and write-cache model under one I/O worker: 4 KiB, qdepth 63,
//! write cache on (the default), verification on unless said otherwise, next to fio's
//! null engine (`--verify=crc32c` for writes) measured in the same run.
//!
//! `cargo bench --bench sim_storage` (`NVPLAN_BENCH_SECS` sets each run, 5 s by default;
//! `NVPLAN_BENCH_MAX_REGION` caps the largest region, 8 GiB by default;
//! `NVPLAN_BENCH_ONLY=overwrite,read,first,mixed,flushes` runs only those parts). Measured:
//!
//! - random overwrites of a written region, 64 MiB to 8 GiB;
//! - first writes, in random order, into never-written space;
//! - random reads of written blocks, verification on and off;
//! - 50 % random read/write over a 1 GiB region of a 1 GiB and of a 64 TiB namespace;
//! - random writes with a Flush among every 100 commands (fio's `fsync=99`) over the
//!   largest region, verification on and off: a Flush must cost the same however much
//!   written data is not yet durable;
//! - resident memory per byte the host wrote, and the verification table's bytes per LBA
//!   touched.
//!
//! Each line carries the round trip of a cache line between the worker's CPU and the
//! simulator's just before and after its run (`common::core_round_trip_ns`): where a
//! virtual machine's host places its vCPUs changes the simulator's speed by up to 2×.

mod common;

use std::sync::Arc;
use std::time::Duration;

use nvplan::driver::{Controller, ControllerOptions, Namespace};
use nvplan::ioworker::verify::VerifyTable;
use nvplan::ioworker::{IoSize, IoWorkerConfig, IoWorkerResult, SeqIo};
use nvplan::sim::{NamespaceConfig, SimConfig, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// A result: what was measured, IOPS, and the reference it is set against.
type Line<'a> = (String, f64, Option<(&'a str, f64)>);

struct Drive {
    sim: Arc<Simulator>,
    ctrl: Controller,
    ns: Namespace,
}

fn drive(capacity: u64) -> Drive {
    let cfg = SimConfig { namespaces: vec![NamespaceConfig::memory(capacity, 512)], cpus: common::sim_cpus(), ..Default::default() };
    assert!(cfg.write_cache, "the default simulator has a write cache");
    let sim = Simulator::new(cfg).expect("simulator");
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let ctrl = Controller::new(t, ControllerOptions::default()).expect("bring-up");
    let ns = ctrl.namespace(1).expect("namespace 1");
    Drive { sim, ctrl, ns }
}

/// Bytes of the namespace's verification table.
fn table_bytes(d: &Drive) -> usize {
    d.ctrl.attachments::<VerifyTable>().first().map_or(0, |(_, t)| t.table_bytes())
}

/// One Flush through an ioworker (it makes the table's unflushed LBAs durable).
fn flush(ns: &Namespace) {
    let seq = vec![SeqIo { slba: 0, nlb: 1, opcode: 0x00, time_sent_us: 0 }];
    let r = ns.ioworker(IoWorkerConfig { io_sequence: Some(seq), qdepth: 1, ..Default::default() }).unwrap().run();
    assert_eq!(r.error, 0, "{:?}", r.error_message);
}

/// 4 KiB random I/O over `[start, start + bytes)` for `secs` (or `count` I/Os).
fn random(ns: &Namespace, secs: Option<Duration>, count: u64, read: u8, verify: bool, start: u64, bytes: u64) -> IoWorkerResult {
    random_with(ns, secs, count, read, verify, start, bytes, None)
}

/// [`random`] with an opcode mix instead of a read percentage.
#[allow(clippy::too_many_arguments)]
fn random_with(
    ns: &Namespace,
    secs: Option<Duration>,
    count: u64,
    read: u8,
    verify: bool,
    start: u64,
    bytes: u64,
    ops: Option<Vec<(u8, f64)>>,
) -> IoWorkerResult {
    let c = IoWorkerConfig {
        op_percentage: ops,
        time: secs,
        io_count: count,
        io_size: IoSize::Fixed(8),
        lba_align: vec![8],
        qdepth: 63,
        read_percentage: read,
        verify_disable: !verify,
        region_start: vec![start / 512],
        region_end: vec![(start + bytes) / 512],
        cpu_id: Some(0),
        ..Default::default()
    };
    let (r, trip) = common::around(TRIP_PROBE, || ns.ioworker(c).expect("valid configuration").run());
    assert_eq!((r.error, r.miscompare_count), (0, 0), "{:?}", r.error_message);
    LAST_TRIP.set(trip);
    r
}

const TRIP_PROBE: Duration = Duration::from_millis(100);

thread_local! {
    /// Cache-line round trips (ns) between the worker's CPU and the simulator's just
    /// before and just after the last measured run.
    static LAST_TRIP: std::cell::Cell<Option<(f64, f64)>> = const { std::cell::Cell::new(None) };
}

/// `name` with the round trips around the run just measured: the simulator's speed
/// follows them on a machine whose virtual CPUs move (see `common::core_round_trip_ns`).
fn tagged(name: String) -> String {
    name + &common::trip_tag(LAST_TRIP.get())
}

/// Writes `[0, bytes)` once, sequentially, with verification (every LBA gets a generation).
fn fill(ns: &Namespace, bytes: u64) {
    let c = IoWorkerConfig {
        lba_random: 0,
        read_percentage: 0,
        io_size: IoSize::Fixed(256),
        qdepth: 16,
        region_end: vec![bytes / 512],
        io_count: bytes / (256 * 512),
        ..Default::default()
    };
    let r = ns.ioworker(c).unwrap().run();
    assert_eq!(r.error, 0, "{:?}", r.error_message);
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
}

fn size(b: u64) -> String {
    if b >= TIB {
        format!("{} TiB", b / TIB)
    } else if b >= GIB {
        format!("{} GiB", b / GIB)
    } else {
        format!("{} MiB", b >> 20)
    }
}

fn main() {
    let secs = common::duration();
    let max_region: u64 = std::env::var("NVPLAN_BENCH_MAX_REGION").ok().and_then(|v| v.parse().ok()).unwrap_or(8 * GIB);
    let trip_start = common::worker_sim_round_trip_ns(TRIP_PROBE);
    let fio_w = common::fio_null_qd63(secs, &common::FIO_VERIFIED_WRITES);
    let fio_r = common::fio_null_qd63(secs, &["--rw=randread"]);
    let fw = fio_w.as_ref().ok().map(|f| ("fio null randwrite crc32c", *f));
    let fr = fio_r.as_ref().ok().map(|f| ("fio null randread", *f));
    let mut lines: Vec<Line> = Vec::new();
    let only = std::env::var("NVPLAN_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    let mut memory = Vec::new();
    let mut read_ratio = None;

    // Overwrites of written regions, one drive large enough for the largest.
    if part("overwrite") || part("read") {
        let rss0 = rss();
        let d = drive(max_region);
        fill(&d.ns, max_region);
        let filled = rss().saturating_sub(rss0);
        let media_filled = d.sim.stats().media_bytes;
        memory.push(format!("resident memory (process): {:.2} bytes per byte written by the fill of {}", filled as f64 / max_region as f64, size(max_region)));
        memory.push(format!("simulator media memory: {:.3} bytes per byte written by the fill", media_filled as f64 / max_region as f64));
        let lbas = (max_region / 512) as f64;
        memory.push(format!("verification table after the fill (unflushed): {:.3} bytes per LBA written", table_bytes(&d) as f64 / lbas));
        let mut region = 64 << 20;
        while part("overwrite") && region <= max_region {
            let r = random(&d.ns, Some(secs), 0, 0, true, 0, region);
            lines.push((tagged(format!("random overwrite, {} written region", size(region))), r.iops(), fw));
            region *= 4;
            if region > max_region && region / 4 != max_region {
                region = max_region;
            }
        }
        if part("read") {
            let r = random(&d.ns, Some(secs), 0, 100, true, 0, GIB.min(max_region));
            let read_on = r.iops();
            lines.push((tagged("random read of written blocks, verify on".into()), read_on, fr));
            let r = random(&d.ns, Some(secs), 0, 100, false, 0, GIB.min(max_region));
            let read_off = r.iops();
            read_ratio = Some(read_on / read_off);
            lines.push((tagged("random read of written blocks, verify off".into()), read_off, fr));
            let r = random(&d.ns, Some(secs), 0, 100, true, 0, max_region);
            lines.push((tagged(format!("random read of written blocks, {}, verify on", size(max_region))), r.iops(), fr));
        }
        let lbas = (max_region / 512) as f64;
        memory.push(format!("verification table after the overwrites (unflushed): {:.3} bytes per LBA written", table_bytes(&d) as f64 / lbas));
        flush(&d.ns);
        let flushed = table_bytes(&d);
        memory.push(format!("verification table after a flush: {:.3} bytes per LBA written", flushed as f64 / lbas));
        // Overwrites of flushed data into the cache: each LBA may show its durable state or
        // a newer one until the next flush, so both are kept.
        let region = GIB.min(max_region);
        random(&d.ns, Some(secs), 0, 0, true, 0, region);
        memory.push(format!(
            "verification table after overwrites of flushed data over {} (unflushed): {:.3} bytes more per LBA of that region",
            size(region),
            table_bytes(&d).saturating_sub(flushed) as f64 / (region / 512) as f64
        ));
        assert!(d.sim.panics().is_empty());
        drop(d);
    }

    // First writes: a fresh 64 TiB namespace, random 4 KiB writes over an 8 GiB region
    // (the count keeps every write a first one, nearly) and over the whole namespace.
    if part("first") {
        let d = drive(64 * TIB);
        let count = (max_region / 4096 / 4).min(2_000_000);
        let rss1 = rss();
        let r = random(&d.ns, None, count, 0, true, 0, max_region);
        let (table1, lbas1) = (table_bytes(&d), r.io_count_write * 8);
        lines.push((tagged(format!("first writes, random over {}", size(max_region))), r.iops(), fw));
        memory.push(format!("resident memory (process): {:.2} bytes per byte of first writes", rss().saturating_sub(rss1) as f64 / (count * 4096) as f64));
        memory.push(format!(
            "simulator media memory: {:.3} bytes per byte of first writes (data and cache images)",
            d.sim.stats().media_bytes as f64 / (count * 4096) as f64
        ));
        memory.push(format!(
            "verification table after first writes over {}: {:.2} bytes per LBA written ({:.3} per LBA of the region)",
            size(max_region),
            table1 as f64 / lbas1 as f64,
            table1 as f64 / (max_region / 512) as f64
        ));
        let (rss2, media2) = (rss(), d.sim.stats().media_bytes);
        let r = random(&d.ns, None, count / 4, 0, true, 0, 64 * TIB);
        let table2 = table_bytes(&d) - table1;
        lines.push((tagged("first writes, random over 64 TiB".into()), r.iops(), fw));
        let bytes = (count / 4 * 4096) as f64;
        memory.push(format!(
            "first writes scattered over 64 TiB: resident memory {:.2} bytes per byte written, simulator media {:.3}",
            rss().saturating_sub(rss2) as f64 / bytes,
            d.sim.stats().media_bytes.saturating_sub(media2) as f64 / bytes
        ));
        memory.push(format!(
            "verification table after first writes scattered over 64 TiB: {:.0} bytes per 4 KiB write ({:.1} per LBA written)",
            table2 as f64 / r.io_count_write as f64,
            table2 as f64 / (r.io_count_write * 8) as f64
        ));
        assert!(d.sim.panics().is_empty());
        drop(d);
    }

    // Writes with flushes among them, after a fill that left the whole region undurable: the
    // first Flush makes it durable; each later one covers what was written since the last.
    if part("flushes") {
        let d = drive(max_region);
        fill(&d.ns, max_region);
        // Unmeasured: enough writes to fill the write cache once, so that no measured run
        // is the first to fault in the cache's memory.
        random(&d.ns, None, 300_000, 0, false, 0, max_region);
        let ops = || Some(vec![(0x01, 99.0), (0x00, 1.0)]);
        let off = random_with(&d.ns, Some(secs), 0, 0, false, 0, max_region, ops());
        let off_name = tagged(format!("random write + 1 % flush over {}, verify off", size(max_region)));
        let on = random_with(&d.ns, Some(secs), 0, 0, true, 0, max_region, ops());
        lines.push((tagged(format!("random write + 1 % flush over {}, verify on", size(max_region))), on.iops(), fw));
        lines.push((off_name, off.iops(), fw));
        let plain_off = random(&d.ns, Some(secs), 0, 0, false, 0, max_region);
        let plain_off_name = tagged(format!("random write, no flush, over {}, verify off", size(max_region)));
        let plain = random(&d.ns, Some(secs), 0, 0, true, 0, max_region);
        lines.push((tagged(format!("random write, no flush, over {}, verify on", size(max_region))), plain.iops(), fw));
        lines.push((plain_off_name, plain_off.iops(), fw));
        memory.push(format!("writes with 1 % flushes, verify on / verify off: {:.2}", on.iops() / off.iops()));
        assert!(d.sim.panics().is_empty());
        drop(d);
    }

    // 50 % read/write over 1 GiB: the namespace's size must not matter. This machine's
    // speed drifts between runs of seconds, so the two sizes alternate (ABBA...) and each
    // gives the median of its runs.
    let mut mixed = None;
    if part("mixed") {
        let rounds: usize = std::env::var("NVPLAN_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
        let mut runs = [Vec::new(), Vec::new()];
        let mut trips = Vec::new();
        for i in 0..2 * rounds {
            let which = (i + i / 2) % 2;
            let d = drive([GIB, 64 * TIB][which]);
            runs[which].push(random(&d.ns, Some(secs), 0, 50, true, 0, GIB).iops());
            trips.extend(LAST_TRIP.get().map(|(a, b)| a.max(b)));
            assert!(d.sim.panics().is_empty());
        }
        if let Some(worst) = trips.iter().copied().reduce(f64::max) {
            memory.push(format!("50% read/write runs: cache-line round trip at most {worst:.0} ns around each"));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (small, large) = (median(&mut runs[0]), median(&mut runs[1]));
        lines.push((format!("50% read/write over 1 GiB, 1 GiB namespace (median of {rounds})"), small, fw));
        lines.push((format!("50% read/write over 1 GiB, 64 TiB namespace (median of {rounds})"), large, fw));
        mixed = Some((small, large, runs));
    }

    println!(
        "simulator storage: one worker, 4 KiB random, qdepth 63, write cache on, worker on CPU 0, {} ({:.1} s runs; {})",
        common::sim_cpus_text(),
        secs.as_secs_f64(),
        common::fio_version()
    );
    if let (Some(a), Some(b)) = (trip_start, common::worker_sim_round_trip_ns(TRIP_PROBE)) {
        println!("cache line round trip between the worker's CPU and the simulator's: {a:.0} ns at the start, {b:.0} ns at the end");
    }
    if let Some((n, f)) = fw {
        common::report(n, f, None);
    }
    if let Some((n, f)) = fr {
        common::report(n, f, None);
    }
    for (name, iops, reference) in &lines {
        common::report(name, *iops, *reference);
    }
    if let Some(r) = read_ratio {
        println!("verified read / unverified read of written blocks: {r:.2}");
    }
    if let Some((small, large, runs)) = mixed {
        let k = |v: &[f64]| v.iter().map(|x| format!("{:.0}k", x / 1e3)).collect::<Vec<_>>().join(" ");
        println!("50% read/write, 64 TiB namespace / 1 GiB namespace: {:.2} (runs, sorted: {} | {})", large / small, k(&runs[0]), k(&runs[1]));
    }
    for m in memory {
        println!("{m}");
    }
    for e in [fio_w.err(), fio_r.err()].into_iter().flatten() {
        println!("(no fio reference: {e})");
    }
}
