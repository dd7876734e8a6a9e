//! The transport to the embedded simulated controller.

use std::sync::Arc;

use super::{DmaBuffer, ResetKind, Transport, TransportError};
use crate::sim::{AddressSpace, SimConfig, SimError, Simulator};

/// Connects the driver to a [`Simulator`]: register accesses become the simulator's MMIO
/// handler, DMA memory is mapped into its IOVA space.
#[derive(Debug)]
pub struct SimTransport {
    sim: Arc<Simulator>,
}

impl SimTransport {
    /// Starts a simulator with `cfg` and connects to it.
    pub fn new(cfg: SimConfig) -> Result<Self, SimError> {
        Ok(SimTransport { sim: Simulator::new(cfg)? })
    }

    /// Starts a simulator with `cfg` that reaches host memory through `memory` (shared
    /// with other simulators and with buffers allocated from it) and connects to it.
    pub fn new_in(cfg: SimConfig, memory: &AddressSpace) -> Result<Self, SimError> {
        Ok(SimTransport { sim: Simulator::new_in(cfg, memory)? })
    }

    /// Connects to an existing simulator.
    pub fn attach(sim: Arc<Simulator>) -> Self {
        SimTransport { sim }
    }

    /// The simulator behind this transport (for fault injection and inspection).
    pub fn simulator(&self) -> &Arc<Simulator> {
        &self.sim
    }
}

impl Transport for SimTransport {
    fn describe(&self) -> String {
        format!("sim ({} namespace(s), serial {})", self.sim.config().namespaces.len(), self.sim.config().serial)
    }

    #[inline]
    fn read32(&self, offset: usize) -> u32 {
        self.sim.mmio_read32(offset)
    }

    #[inline]
    fn write32(&self, offset: usize, value: u32) {
        self.sim.mmio_write32(offset, value)
    }

    fn dma_alloc(&self, len: usize) -> Result<DmaBuffer, TransportError> {
        self.sim.dma_alloc(len)
    }

    /// Every kind resets the function as an FLR does: a hot reset and a link down are
    /// conventional resets of the whole function (PCIe Base 4.0 §6.6.1), and the host
    /// restores configuration space around them as around an FLR, so the host sees the
    /// same result.
    fn reset(&self, kind: ResetKind) -> Result<(), TransportError> {
        if !self.sim.is_powered() {
            return Err(TransportError::InvalidState(format!("sim: {} without power: the function does not answer", kind.name())));
        }
        self.sim.function_reset();
        Ok(())
    }

    fn power_switch(&self) -> Option<crate::power::SharedSwitch> {
        Some(Arc::new(crate::power::sim::SimSwitch::new(self.sim.clone())))
    }

    fn config_read(&self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        self.sim.config_read(offset, buf)
    }

    fn config_write(&self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        self.sim.config_write(offset, data)
    }
}
