//! Random register writes and random commands thrown at the simulated controller: it must
//! never panic, and afterwards the driver must still bring it up and move data.
//!
//! Every case is derived from a seed printed on failure, so a failing case replays with
//! `NVPLAN_FUZZ_SEED=<seed> cargo test --test sim_fuzz`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use nvplan::driver::{Controller, ControllerOptions, DataPtr, QpairOptions};
use nvplan::nvme::regs::{self, Aqa, Cc, NSSR_RESET_VALUE, offset};
use nvplan::nvme::sgl::SglDescriptor;
use nvplan::nvme::{Sqe, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig, Simulator};
use nvplan::transport::sim::SimTransport;
use nvplan::transport::{DmaBuffer, SharedTransport, Transport};
use nvplan::util::rng::Rng;

const ADMIN_ENTRIES: u32 = 32;
const IO_ENTRIES: u32 = 64;
const IOQ: u16 = 1;
const STEPS: usize = 300;

struct Chaos {
    rng: Rng,
    t: Arc<SimTransport>,
    asq: DmaBuffer,
    acq: DmaBuffer,
    iosq: DmaBuffer,
    iocq: DmaBuffer,
    data: DmaBuffer,
    admin_tail: u32,
    io_tail: u32,
    io_head: u32,
    io_phase: bool,
}

impl Chaos {
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.rng.below(v.len() as u64) as usize]
    }

    /// An address that is sometimes valid, sometimes just outside, sometimes garbage.
    fn addr(&mut self) -> u64 {
        match self.rng.below(6) {
            0 => self.rng.next_u64(),
            1 => self.data.iova() + self.data.len() as u64 - self.rng.below(64),
            2 => self.data.iova() + (self.rng.below(self.data.len() as u64) & !3),
            _ => self.data.iova() + self.rng.below(16) * 4096,
        }
    }

    fn enable(&mut self) {
        let t = &self.t;
        t.write32(offset::CC, 0);
        t.write32(offset::AQA, Aqa(0).with_asqs(ADMIN_ENTRIES as u16 - 1).with_acqs(ADMIN_ENTRIES as u16 - 1).0);
        t.write64(offset::ASQ, self.asq.iova());
        t.write64(offset::ACQ, self.acq.iova());
        t.write32(offset::CC, Cc(0).with_iosqes(6).with_iocqes(4).with_en(true).0);
        self.asq.fill(0, self.asq.len(), 0);
        self.acq.fill(0, self.acq.len(), 0);
        self.iocq.fill(0, self.iocq.len(), 0);
        self.admin_tail = 0;
        self.io_tail = 0;
        self.io_head = 0;
        self.io_phase = true;
        let start = Instant::now();
        while !regs::Csts(t.read32(offset::CSTS)).rdy() && start.elapsed() < Duration::from_secs(1) {}
        // A valid I/O queue pair, so random I/O commands reach the NVM command set.
        let create = [cmd::create_io_cq(IOQ, IO_ENTRIES, self.iocq.iova(), 0, false), cmd::create_io_sq(IOQ, IO_ENTRIES, self.iosq.iova(), IOQ, 0)];
        for c in create {
            self.admin(c);
        }
    }

    fn admin(&mut self, mut sqe: Sqe) {
        sqe.set_cid(self.admin_tail as u16);
        self.asq.write_obj(self.admin_tail as usize * 64, &sqe);
        self.admin_tail = (self.admin_tail + 1) % ADMIN_ENTRIES;
        self.t.write32(regs::sq_tail_doorbell(0, 0), self.admin_tail);
        std::thread::sleep(Duration::from_micros(200));
    }

    fn random_sqe(&mut self, admin: bool) -> Sqe {
        let ops: &[u8] = if admin {
            &[0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x80, 0x84, 0x10, 0xc3]
        } else {
            &[0, 1, 2, 4, 5, 8, 9, 0x0c, 0x0d, 0x7f, 0x99]
        };
        let op = if self.rng.below(10) == 0 { self.rng.next_u32() as u8 } else { self.pick(ops) };
        let nsid = self.pick(&[1u32, 1, 1, 2, 0, u32::MAX, 7]);
        let mut s = Sqe::new(op, nsid);
        for dw in 2..16 {
            if self.rng.below(3) == 0 {
                s.dw[dw] = self.rng.next_u32();
            }
        }
        // Mostly small, in-range I/O so commands get deep into execution.
        if self.rng.below(3) != 0 {
            s.set_slba(self.rng.below(1 << 15));
            s.set_nlb(1 + self.rng.below(300) as u32);
            s.dw[13] = 0;
        }
        if admin && self.rng.below(2) == 0 {
            s.dw[10] = (s.dw[10] & 0xffff_0000) | self.rng.below(8) as u32;
            s.dw[11] &= 0xffff;
        }
        s.set_prp1(self.addr());
        s.set_prp2(self.addr());
        if !admin && self.rng.below(2) == 0 {
            // A well-formed command, so execution paths past validation are reached too.
            let op = self.pick(&[0u8, 1, 1, 2, 2, 2, 4, 5, 8, 9, 0x0c]);
            s = Sqe::new(op, self.pick(&[1u32, 1, 2]));
            s.set_slba(self.rng.below(2048));
            s.set_nlb(1 + self.rng.below(64) as u32);
            s.set_prp1(self.data.iova() + self.rng.below(64) * 4096 + self.rng.below(4) * 4 * (self.rng.below(2)));
            s.set_prp2(self.data.iova() + (64 + self.rng.below(64)) * 4096);
            if op == 9 {
                s.dw[10] = self.rng.below(4) as u32;
                s.dw[11] = 4;
            }
            if self.rng.below(4) == 0 {
                s.set_io_flags(self.rng.next_u32() as u16);
            }
        }
        if self.rng.below(4) == 0 {
            s.set_psdt(nvplan::nvme::sqe::Psdt::from_bits(self.rng.below(4) as u8));
            // An SGL segment of random descriptors in the data buffer.
            let seg = self.data.iova() + 8 * 4096;
            for i in 0..8 {
                let d = SglDescriptor { addr: self.addr(), len: self.rng.below(8192) as u32, rsvd: [0; 3], id: (self.rng.below(6) as u8) << 4 };
                self.data.write_obj(8 * 4096 + i * 16, &d);
            }
            let first = match self.rng.below(3) {
                0 => SglDescriptor::last_segment(seg, 1 + self.rng.below(8) as u32),
                1 => SglDescriptor::segment(seg, 1 + self.rng.below(8) as u32),
                _ => SglDescriptor::data_block(self.addr(), self.rng.below(1 << 20) as u32),
            };
            s.set_sgl1(first);
        }
        s
    }

    fn step(&mut self) {
        let t = self.t.clone();
        match self.rng.below(200) {
            // Random register write anywhere in (and beyond) BAR0.
            0..=4 => {
                let off = self.rng.below(0x2000) as usize & !if self.rng.below(4) == 0 { 0 } else { 3 };
                t.write32(off, self.rng.next_u32());
            }
            5 => t.write32(offset::CC, self.rng.next_u32()),
            6 => t.write32(offset::NSSR, if self.rng.below(2) == 0 { NSSR_RESET_VALUE } else { self.rng.next_u32() }),
            7 => t.write64(offset::ASQ, self.addr()),
            8..=9 => self.enable(),
            // Doorbells of existing and non-existing queues, valid and invalid values.
            10..=14 => {
                let qid = self.rng.below(70) as u16;
                let cq = self.rng.below(2) == 1;
                t.write32(if cq { regs::cq_head_doorbell(qid, 0) } else { regs::sq_tail_doorbell(qid, 0) }, self.rng.below(80) as u32);
            }
            15..=44 => {
                let s = self.random_sqe(true);
                self.admin(s);
            }
            _ => {
                let s = self.random_sqe(false);
                self.iosq.write_obj(self.io_tail as usize * 64, &s);
                self.io_tail = (self.io_tail + 1) % IO_ENTRIES;
                t.write32(regs::sq_tail_doorbell(IOQ, 0), self.io_tail);
                // Consume completions like a host would, now and then with a wrong head.
                std::thread::sleep(Duration::from_micros(20));
                while (self.iocq.read_u32(self.io_head as usize * 16 + 12) & (1 << 16) != 0) == self.io_phase {
                    self.io_head = (self.io_head + 1) % IO_ENTRIES;
                    if self.io_head == 0 {
                        self.io_phase = !self.io_phase;
                    }
                }
                let head = if self.rng.below(50) == 0 { self.rng.below(IO_ENTRIES as u64) as u32 } else { self.io_head };
                t.write32(regs::cq_head_doorbell(IOQ, 0), head);
            }
        }
    }
}

fn run_case(seed: u64, steps: usize) {
    // Vary the controller's shape with the seed: threads, latency, SGL, write cache.
    let mut cfg = SimConfig {
        namespaces: vec![NamespaceConfig::memory(16 << 20, 512), NamespaceConfig::memory(16 << 20, 4096)],
        write_cache_capacity: 1 << 20,
        idle_spin: Duration::from_micros(5),
        io_threads: if seed % 4 == 1 { 2 } else { 1 },
        sgl: seed % 5 != 3,
        write_cache: seed % 7 != 4,
        seed,
        ..Default::default()
    };
    if seed % 3 == 2 {
        for op in [1u8, 2, 8] {
            cfg.latency.set_io(op, Duration::from_micros(20), Duration::from_micros(50));
        }
    }
    let sim = Simulator::new(cfg).unwrap();
    let t = Arc::new(SimTransport::attach(sim.clone()));
    let mut c = Chaos {
        rng: Rng::new(seed),
        asq: t.dma_alloc(ADMIN_ENTRIES as usize * 64).unwrap(),
        acq: t.dma_alloc(ADMIN_ENTRIES as usize * 16).unwrap(),
        iosq: t.dma_alloc(IO_ENTRIES as usize * 64).unwrap(),
        iocq: t.dma_alloc(IO_ENTRIES as usize * 16).unwrap(),
        data: t.dma_alloc(1 << 20).unwrap(),
        t: t.clone(),
        admin_tail: 0,
        io_tail: 0,
        io_head: 0,
        io_phase: true,
    };
    // Pages 64..128 of the data buffer hold PRP lists of valid page addresses.
    for p in 64..128usize {
        for e in 0..512usize {
            c.data.write_u64(p * 4096 + e * 8, c.data.iova() + ((p * 7 + e) % 64) as u64 * 4096);
        }
    }
    c.enable();
    for _ in 0..steps {
        c.step();
        assert!(sim.panics().is_empty(), "seed {seed}: simulator panicked: {:?}", sim.panics());
    }
    // Whatever state the chaos left, the driver brings the controller back and it works.
    let shared: SharedTransport = t.clone();
    let opts = ControllerOptions { command_timeout: Duration::from_secs(2), ..Default::default() };
    let ctrl = Controller::new(shared, opts).unwrap_or_else(|e| panic!("seed {seed}: bring-up after chaos failed: {e}"));
    let mut q = ctrl.create_qpair(QpairOptions::default()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let buf = ctrl.dma(4096).unwrap();
    let data = common::pattern(4096, seed);
    buf.write(0, &data);
    let lba_size = ctrl.namespace(1).unwrap().lba_size();
    let nlb = (4096 / lba_size) as u32;
    q.execute_ok(&cmd::write(1, 10, nlb), DataPtr::Prp(&buf)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    buf.fill(0, 4096, 0);
    q.execute_ok(&cmd::read(1, 10, nlb), DataPtr::Prp(&buf)).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert!(buf.to_vec() == data, "seed {seed}: data mismatch after chaos");
    assert!(sim.panics().is_empty(), "seed {seed}: {:?}", sim.panics());
}

#[test]
fn random_register_writes_and_commands_never_panic_the_simulator_and_it_keeps_answering() {
    if let Ok(seed) = std::env::var("NVPLAN_FUZZ_SEED") {
        run_case(seed.parse().expect("NVPLAN_FUZZ_SEED is a number"), STEPS);
        return;
    }
    let cases: u64 = std::env::var("NVPLAN_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    for seed in 1..=cases {
        run_case(seed, STEPS);
    }
}
