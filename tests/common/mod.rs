//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use nvplan::driver::{Controller, ControllerOptions};
use nvplan::sim::{SimConfig, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

/// A driver brought up on a simulator, or, when `NVPLAN_TEST_TARGET` names real
/// controllers (`vfio:0000:01:00.0,vfio:0000:02:00.0`), on the first of them whose first
/// namespace has the LBA size the simulator configuration asks for: the rest of the
/// configuration is not used, and a test that reaches into the simulator fails
/// (tests/qemu/sim-only.txt lists those the QEMU harness leaves out, with why).
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

pub fn rig_with(cfg: SimConfig, opts: ControllerOptions) -> Rig {
    if let Some(list) = hardware_target() {
        let want = cfg.namespaces.first().map_or(512, |n| n.lba_size as usize);
        for t in list.split(',') {
            let tr = opened(t);
            let ctrl = Controller::new(tr, opts.clone()).expect("controller comes up");
            if ctrl.namespace(1).is_some_and(|n| n.lba_size() == want) {
                return Rig { sim: None, ctrl };
            }
        }
        panic!("no controller in NVPLAN_TEST_TARGET={list} has {want}-byte LBAs in namespace 1");
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
