//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use nvplan::driver::{Controller, ControllerOptions, DataPtr, QpairOptions};
use nvplan::nvme::cmd;
use nvplan::sim::{SimConfig, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

/// A driver brought up on a simulator, or, when `NVPLAN_TEST_TARGET` names real
/// controllers (`vfio:0000:01:00.0,vfio:0000:02:00.0`), on the first of them that
/// [`fits`] the simulator configuration (else the first whose namespace 1 has its LBA
/// size): the rest of the configuration is not used, and a test that reaches into the
/// simulator fails (tests/qemu/sim-only.txt lists those the QEMU harness leaves out, with
/// why). `NVPLAN_TEST_POWER` gives the real controller a power switch (the text of
/// `--power`), for the tests that cut power.
pub struct Rig {
    sim: Option<Arc<Simulator>>,
    pub ctrl: Controller,
}

impl Rig {
    /// Whether the driver runs on a simulator (false on a real controller).
    pub fn is_sim(&self) -> bool {
        self.sim.is_some()
    }

    /// The simulator behind the driver (statistics, fault injection, power).
    pub fn sim(&self) -> &Arc<Simulator> {
        self.sim.as_ref().expect("this test needs the simulator's internals; NVPLAN_TEST_TARGET names a real controller")
    }
}

/// The real controller the tests run on instead of simulators, if any.
pub fn hardware_target() -> Option<String> {
    std::env::var("NVPLAN_TEST_TARGET").ok().filter(|t| !t.is_empty() && t != "sim")
}

/// A real controller's transport, opened once per test process: a VFIO group opens only
/// once at a time, and a test that failed may leave a worker thread holding its driver.
/// Each test brings the controller up afresh (Controller::new resets it).
fn opened(target: &str) -> SharedTransport {
    static OPEN: std::sync::Mutex<Vec<(String, SharedTransport)>> = std::sync::Mutex::new(Vec::new());
    let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, t)) = open.iter().find(|(n, _)| n == target) {
        return t.clone();
    }
    let parsed = nvplan::plan::parse_target(target).expect("NVPLAN_TEST_TARGET is a list of targets");
    let t = nvplan::target::open(&parsed).expect("the test target opens");
    open.push((target.to_string(), t.clone()));
    t
}

pub fn rig(cfg: SimConfig) -> Rig {
    rig_with(cfg, ControllerOptions::default())
}

/// Whether a real controller has what a test's simulator configuration asks of it: its
/// namespaces begin with the configured ones' LBA sizes, in order, and, where the
/// configuration has no MDTS, neither has the controller.
fn fits(ctrl: &Controller, cfg: &SimConfig) -> bool {
    let want: Vec<usize> = cfg.namespaces.iter().map(|n| n.lba_size as usize).collect();
    let have: Vec<usize> = ctrl.info().namespaces.iter().map(|n| n.lba_size()).collect();
    have.starts_with(&want) && (cfg.mdts != 0 || ctrl.identify().mdts == 0)
}

/// The switch `NVPLAN_TEST_POWER` declares for the real controller `t`, if any.
fn declared_switch(t: &SharedTransport) -> Option<nvplan::power::SharedSwitch> {
    let text = std::env::var("NVPLAN_TEST_POWER").ok().filter(|p| !p.is_empty())?;
    let spec = nvplan::power::SwitchSpec::parse(&text).expect("NVPLAN_TEST_POWER is a power switch, as --power takes it");
    let ctx = nvplan::power::SwitchContext { root: nvplan::target::sysfs_root(), address: t.pci_address() };
    Some(spec.open(&ctx).expect("the power switch of NVPLAN_TEST_POWER opens"))
}

pub fn rig_with(cfg: SimConfig, opts: ControllerOptions) -> Rig {
    let rig = rig_inner(cfg, opts);
    if !rig.is_sim() {
        rig.ctrl.set_power_switch(declared_switch(rig.ctrl.transport()));
    }
    rig
}

fn rig_inner(cfg: SimConfig, opts: ControllerOptions) -> Rig {
    if let Some(list) = hardware_target() {
        let want = cfg.namespaces.first().map_or(512, |n| n.lba_size as usize);
        let mut fallback = None;
        for t in list.split(',') {
            let ctrl = Controller::new(opened(t), opts.clone()).expect("controller comes up");
            if fits(&ctrl, &cfg) {
                return Rig { sim: None, ctrl };
            }
            if fallback.is_none() && ctrl.namespace(1).is_some_and(|n| n.lba_size() == want) {
                fallback = Some(ctrl);
            }
        }
        let Some(ctrl) = fallback else { panic!("no controller in NVPLAN_TEST_TARGET={list} has {want}-byte LBAs in namespace 1") };
        return Rig { sim: None, ctrl };
    }
    let sim = Simulator::new(cfg).expect("simulator starts");
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let ctrl = Controller::new(t, opts).expect("controller comes up");
    Rig { sim: Some(sim), ctrl }
}

pub fn short_timeout() -> ControllerOptions {
    ControllerOptions { command_timeout: Duration::from_millis(500), ..Default::default() }
}

/// Host read and write commands as the controller counts them (SMART / Health
/// Information log, NVMe 1.4 §5.14.1.2): the same check on the simulator and on a drive.
pub fn host_commands(ctrl: &Controller) -> (u64, u64) {
    let s = ctrl.smart_log().expect("SMART log");
    (s.host_read_commands() as u64, s.host_write_commands() as u64)
}

/// What the controller counted since `before` (from [`host_commands`]).
pub fn host_commands_since(ctrl: &Controller, before: (u64, u64)) -> (u64, u64) {
    let now = host_commands(ctrl);
    (now.0 - before.0, now.1 - before.1)
}

/// `len` bytes of namespace `nsid` from LBA `lba`: the simulator's media as stored, or a
/// real controller's as they read back through a queue pair of the test's own.
pub fn media(r: &Rig, nsid: u32, lba: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    if let Some(sim) = &r.sim {
        sim.peek_media(nsid, lba, &mut v);
        return v;
    }
    let lba_size = r.ctrl.namespace(nsid).expect("namespace").lba_size();
    let step = (r.ctrl.info().max_transfer / lba_size * lba_size).min(len);
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).expect("queue pair");
    let buf = r.ctrl.dma(step).expect("DMA buffer");
    for (i, chunk) in v.chunks_mut(step).enumerate() {
        let at = lba + (i * step / lba_size) as u64;
        let part = buf.slice(0, chunk.len());
        q.execute_ok(&cmd::read(nsid, at, (chunk.len() / lba_size) as u32), DataPtr::Prp(&part)).expect("read");
        part.read(0, chunk);
    }
    v
}

/// Makes LBAs a test expects never written read zeroes: on a real controller earlier tests
/// and runs leave data behind, so they get a Write Zeroes (NVMe 1.4 §6.16); a simulator's
/// media start zeroed and are left as they are.
pub fn fresh_lbas(r: &Rig, nsid: u32, lba: u64, nlb: u64) {
    if r.is_sim() {
        return;
    }
    // NLB is a 0's based 16-bit field: 65536 LBAs a command.
    const MAX_NLB: u64 = 1 << 16;
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).expect("queue pair");
    for at in (lba..lba + nlb).step_by(MAX_NLB as usize) {
        let n = (lba + nlb - at).min(MAX_NLB) as u32;
        q.execute_ok(&cmd::write_zeroes(nsid, at, n), DataPtr::None).expect("Write Zeroes");
    }
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut r = nvplan::util::rng::Rng::new(seed);
    let mut v = vec![0u8; len];
    r.fill(&mut v);
    v
}

impl Drop for Rig {
    fn drop(&mut self) {
        let Some(sim) = &self.sim else { return };
        let p = sim.panics();
        if !std::thread::panicking() {
            assert!(p.is_empty(), "simulator threads panicked: {p:?}");
        }
    }
}
