//! 4 KiB random-read IOPS of one polling thread against the simulated controller at zero
//! latency, through the real driver, next to `fio --ioengine=null` with the same block
//! size and queue depth measured in the same run.
//!
//! `cargo bench --bench sim_randread` (set `NVPLAN_BENCH_SECS` to change the 5 s runs).
//! Two runs: over never-written blocks (the simulator copies from the zero page, the
//! best case) and over 1 GiB of written blocks (copies from memory, as a drive serves
//! data it holds).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nvplan::driver::{Controller, ControllerOptions, DataPtr, QPair, QpairOptions};
use nvplan::nvme::cmd;
use nvplan::sim::{NamespaceConfig, SimConfig, Simulator};
use nvplan::transport::sim::SimTransport;
use nvplan::transport::{DmaBuffer, SharedTransport};
use nvplan::util::rng::Rng;

const QD: usize = 64;
const REGION: u64 = 1 << 30;

/// Random 4 KiB reads at QD64 for `secs`; returns IOPS. Every completion must succeed.
fn run(q: &mut QPair, bufs: &[DmaBuffer], secs: Duration) -> f64 {
    let nlba4k = REGION / 4096;
    let mut rng = Rng::new(1);
    let mut done = 0u64;
    let mut failed = 0u64;
    let mut free: Vec<usize> = (0..QD).collect();
    let start = Instant::now();
    let mut next_check = 0u64;
    loop {
        while let Some(i) = free.pop() {
            let lba = rng.below(nlba4k) * 8;
            q.submit(&cmd::read(1, lba, 8), DataPtr::Prp(&bufs[i]), i as u64).expect("submit");
        }
        q.ring();
        q.poll(QD, |c| {
            failed += !c.is_success() as u64;
            free.push(c.ctx as usize);
            done += 1;
        });
        if done >= next_check {
            if start.elapsed() >= secs {
                break;
            }
            next_check = done + 100_000;
        }
    }
    let iops = done as f64 / start.elapsed().as_secs_f64();
    // Let the last commands finish so the next run starts with an idle queue.
    while free.len() < QD {
        q.poll(QD, |c| free.push(c.ctx as usize));
    }
    assert_eq!(failed, 0, "reads failed");
    iops
}

fn main() {
    let secs = common::duration();
    let runtime = format!("--runtime={}", secs.as_secs_f64().ceil() as u64);
    let fio =
        common::fio_iops(&["--name=null", "--ioengine=null", "--rw=randread", "--bs=4k", "--iodepth=64", "--size=1g", "--time_based", "--numjobs=1", &runtime]);

    let cfg = SimConfig { namespaces: vec![NamespaceConfig::memory(REGION, 512)], write_cache: false, ..Default::default() };
    let sim = Simulator::new(cfg).expect("simulator");
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let ctrl = Controller::new(t, ControllerOptions::default()).expect("bring-up");
    let mut q = ctrl.create_qpair(QpairOptions { entries: QD as u32 + 1, prio: 0, ..Default::default() }).expect("qpair");
    let pool = ctrl.dma(QD * 4096).expect("buffers");
    let bufs: Vec<_> = (0..QD).map(|i| pool.slice(i * 4096, 4096)).collect();

    // Touch the region once so no run pays first-touch page faults.
    let big = ctrl.dma(512 << 10).unwrap();
    for lba in (0..REGION / 512).step_by(1024) {
        q.execute_ok(&cmd::read(1, lba, 1024), DataPtr::Prp(&big)).unwrap();
    }
    let unwritten = run(&mut q, &bufs, secs);
    let mut fill = Rng::new(2);
    let mut data = vec![0u8; 512 << 10];
    for lba in (0..REGION / 512).step_by(1024) {
        fill.fill(&mut data);
        big.write(0, &data);
        q.execute_ok(&cmd::write(1, lba, 1024), DataPtr::Prp(&big)).unwrap();
    }
    let written = run(&mut q, &bufs, secs);

    println!("4 KiB random read, QD{QD}, one polling thread ({:.1} s each; {})", secs.as_secs_f64(), common::fio_version());
    let reference = fio.as_ref().ok().map(|f| ("fio null", *f));
    if let Some((_, f)) = reference {
        common::report("fio --ioengine=null --rw=randread --bs=4k", f, None);
    }
    common::report("nvplan -> sim, blocks never written", unwritten, reference);
    common::report("nvplan -> sim, 1 GiB of written blocks", written, reference);
    if let Err(e) = &fio {
        println!("(no fio reference: {e})");
    }
    assert_eq!(q.spurious_completions(), 0);
    assert!(sim.panics().is_empty());
}
