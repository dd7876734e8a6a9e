//! QD1 synchronous 4 KiB reads (submit, ring, poll until done) against the simulated
//! controller through the Rust API: the reference for the same loop run from Python
//! (`benches/python_front.py`, which runs this bench and prints both).
//!
//! `cargo bench --bench qd1` (`NVPLAN_BENCH_SECS` sets the run time, default 5 s).

mod common;

use std::sync::Arc;
use std::time::Instant;

use nvplan::driver::{Controller, ControllerOptions, DataPtr, QpairOptions};
use nvplan::nvme::cmd;
use nvplan::sim::SimConfig;
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

fn main() {
    let secs = common::duration();
    let t: SharedTransport = Arc::new(SimTransport::new(SimConfig::default()).expect("simulator"));
    let ctrl = Controller::new(t, ControllerOptions::default()).expect("bring-up");
    let mut q = ctrl.create_qpair(QpairOptions { entries: 1024, prio: 0, ..Default::default() }).expect("qpair");
    let buf = ctrl.dma(4096).expect("buffer");
    let (iova, len) = (buf.iova(), 4096);
    let mut n = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        for _ in 0..1000 {
            let sqe = cmd::read(1, n % 1024 * 8, 8);
            q.submit(&sqe, DataPtr::PrpAt { iova, len }, n).expect("submit");
            q.ring();
            let mut ok = false;
            while q.poll(1, |c| ok = c.is_success()) == 0 {}
            assert!(ok, "read failed");
            n += 1;
        }
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    println!("QD1 read 4 KiB, Rust API: {per_s:.0} commands/s, {:.2} us/command", 1e6 / per_s);
}
