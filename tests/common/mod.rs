//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use nvplan::driver::{Controller, ControllerOptions};
use nvplan::sim::{SimConfig, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;

/// A simulator and a driver brought up on it.
pub struct Rig {
    pub sim: Arc<Simulator>,
    pub ctrl: Controller,
}

pub fn rig(cfg: SimConfig) -> Rig {
    rig_with(cfg, ControllerOptions::default())
}

pub fn rig_with(cfg: SimConfig, opts: ControllerOptions) -> Rig {
    let sim = Simulator::new(cfg).expect("simulator starts");
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let ctrl = Controller::new(t, opts).expect("controller comes up");
    Rig { sim, ctrl }
}

pub fn short_timeout() -> ControllerOptions {
    ControllerOptions { command_timeout: Duration::from_millis(500), ..Default::default() }
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
        let p = self.sim.panics();
        if !std::thread::panicking() {
            assert!(p.is_empty(), "simulator threads panicked: {p:?}");
        }
    }
}
