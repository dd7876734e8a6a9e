//! The simulated controller's own switch: power leaves the simulator at once, so a
//! volatile write cache loses what was not flushed (a normal shutdown before it writes the
//! cache back: the driver sends one for a clean power cycle).

use std::sync::Arc;

use super::{PowerError, PowerSwitch};
use crate::sim::Simulator;

/// Cuts and restores the simulator's power.
#[derive(Debug)]
pub struct SimSwitch {
    sim: Arc<Simulator>,
}

impl SimSwitch {
    /// The switch of `sim`.
    pub fn new(sim: Arc<Simulator>) -> SimSwitch {
        SimSwitch { sim }
    }
}

impl PowerSwitch for SimSwitch {
    fn describe(&self) -> String {
        "simulator".into()
    }

    fn off(&self) -> Result<(), PowerError> {
        self.sim.power_off(true);
        Ok(())
    }

    fn on(&self) -> Result<(), PowerError> {
        self.sim.power_on();
        Ok(())
    }

    fn is_on(&self) -> Result<Option<bool>, PowerError> {
        Ok(Some(self.sim.is_powered()))
    }
}
