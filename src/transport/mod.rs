//! The one boundary between the host driver and the hardware it drives.
//!
//! A [`Transport`] gives 32-bit register access to BAR0 (doorbells included), DMA memory
//! the controller can reach by IOVA, and the reset and power hooks that live outside the
//! NVMe register set. The driver talks to every controller through it and never learns
//! which implementation it has: [`sim::SimTransport`] (the embedded simulated controller)
//! or a PCIe function bound to vfio-pci ([`vfio::VfioTransport`]). Both also expose the
//! function's PCI configuration space.

pub mod dma;
pub mod pci;
pub mod sim;
pub mod space;
pub mod vfio;

pub use dma::DmaBuffer;
pub use space::AddressSpace;

use std::sync::Arc;

/// Errors of the transport layer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// DMA memory could not be allocated or mapped.
    #[error("DMA allocation of {len} bytes failed: {source}")]
    DmaAlloc {
        /// Bytes requested.
        len: usize,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The operation does not exist on this transport.
    #[error("{what} is not supported by the {transport} transport")]
    Unsupported {
        /// The operation.
        what: &'static str,
        /// The transport's name.
        transport: &'static str,
    },
    /// The operation was refused in the current state.
    #[error("{0}")]
    InvalidState(String),
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Resets that happen outside the NVMe register set.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ResetKind {
    /// PCIe Function Level Reset: the controller returns to its power-on register state;
    /// media contents survive.
    Function,
}

/// Access to one NVMe controller: registers, DMA memory, out-of-band reset and power.
///
/// Register offsets are BAR0 byte offsets (see [`crate::nvme::regs::offset`]). All
/// accesses are 32 bits wide, as NVMe requires of doorbells and as some controllers
/// require of every register; 64-bit registers are written low dword first.
pub trait Transport: Send + Sync {
    /// A short description for logs and reports (`sim`, `vfio:0000:01:00.0`).
    fn describe(&self) -> String;

    /// The PCI address of the function behind the transport, when it is one.
    fn pci_address(&self) -> Option<String> {
        None
    }

    /// Reads a 32-bit register.
    fn read32(&self, offset: usize) -> u32;

    /// Writes a 32-bit register or doorbell. The write is ordered after every earlier
    /// store to DMA memory made by the calling thread (release semantics), so a doorbell
    /// write publishes the queue entries before it.
    fn write32(&self, offset: usize, value: u32);

    /// Reads a 64-bit register as two 32-bit reads, low dword first.
    fn read64(&self, offset: usize) -> u64 {
        let lo = self.read32(offset) as u64;
        let hi = self.read32(offset + 4) as u64;
        lo | hi << 32
    }

    /// Writes a 64-bit register as two 32-bit writes, low dword first.
    fn write64(&self, offset: usize, value: u64) {
        self.write32(offset, value as u32);
        self.write32(offset + 4, (value >> 32) as u32);
    }

    /// Allocates zeroed, page-aligned memory the controller can reach by IOVA.
    fn dma_alloc(&self, len: usize) -> Result<DmaBuffer, TransportError>;

    /// Performs a reset outside the NVMe register set.
    fn reset(&self, kind: ResetKind) -> Result<(), TransportError>;

    /// Removes power. `dirty`: without shutdown, so a volatile write cache loses what was
    /// not flushed. Registers read all ones until [`Transport::power_on`].
    fn power_off(&self, dirty: bool) -> Result<(), TransportError>;

    /// Restores power; the controller comes up disabled (CC.EN = 0).
    fn power_on(&self) -> Result<(), TransportError>;

    /// Reads `buf.len()` bytes of the function's PCI configuration space at `offset`
    /// (4 KiB of extended configuration space; see [`pci`] for offsets and capability walks).
    fn config_read(&self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        let _ = (offset, buf);
        Err(TransportError::Unsupported { what: "PCI configuration space access", transport: "this" })
    }

    /// Writes `data` to the function's PCI configuration space at `offset`. Read-only bits
    /// keep their values; writes with side effects (PMCSR power state, Initiate Function
    /// Level Reset) take effect before this returns.
    fn config_write(&self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        let _ = (offset, data);
        Err(TransportError::Unsupported { what: "PCI configuration space access", transport: "this" })
    }

    /// Whether the host may program the function's MSI-X table in BAR0 itself. vfio-pci
    /// owns the table (it is virtualised, writes to it are dropped) and enables MSI-X only
    /// through its own interrupt ioctls, so a VFIO transport says no.
    fn host_owns_msix(&self) -> bool {
        true
    }

    /// Gives the device back now, though handles to the transport may live on (a script's
    /// controller objects): a real function is shut down and released, so another process,
    /// or the next `open` of the same function, can have it; its registers read all ones
    /// from then on, which the driver treats as a device that is gone. The default does
    /// nothing (a simulator stops when its last handle drops).
    fn close(&self) {}
}

/// A shared transport handle.
pub type SharedTransport = Arc<dyn Transport>;
