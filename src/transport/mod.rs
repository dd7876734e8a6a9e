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

/// Resets that happen outside the NVMe register set. After each the controller is in its
/// power-on register state (CC.EN = 0) and media contents survive; the host restores the
/// function's configuration space, so bus mastering and BAR0 work again when it returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ResetKind {
    /// PCIe Function Level Reset (PCIe Base 4.0 §6.6.2).
    Function,
    /// Hot reset: the Secondary Bus Reset bit of the upstream bridge resets everything
    /// below it (PCIe Base 4.0 §6.6.1, conventional reset; §7.5.1.3.13).
    Hot,
    /// The upstream port disables the link and enables it again (Link Control, Link
    /// Disable, PCIe Base 4.0 §7.5.3.7): a link down is a hot reset to the function below
    /// it (§6.6.1).
    LinkDisable,
}

impl ResetKind {
    /// How the reset is written in plans and reports.
    pub fn name(self) -> &'static str {
        match self {
            ResetKind::Function => "function level reset",
            ResetKind::Hot => "hot reset",
            ResetKind::LinkDisable => "link disable",
        }
    }
}

/// Access to one NVMe controller: registers, DMA memory, out-of-band reset and power.
///
/// Register offsets are BAR0 byte offsets (see [`crate::nvme::regs::offset`]). All
/// accesses are 32 bits wide, as NVMe requires of doorbells and as some controllers
/// require of every register; 64-bit registers are written low dword first.
pub trait Transport: Send + Sync {
    /// A short description for logs and reports (`sim`, `vfio:0000:01:00.0`).
    fn describe(&self) -> String;

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

    /// The transport's own power switch, if it has one (the simulator's); a drive's switch
    /// is declared with its target (see [`crate::power`]).
    fn power_switch(&self) -> Option<crate::power::SharedSwitch> {
        None
    }

    /// The function's PCI address (`0000:01:00.0`), where it is one.
    fn pci_address(&self) -> Option<String> {
        None
    }

    /// BAR0 is about to stop answering for a while (the function goes to D3hot, where it
    /// answers configuration requests only, PCI PM 1.2 §5.3.1.4): register reads give all
    /// ones and writes go nowhere until [`Transport::bar_available`]. (vfio-pci sends
    /// SIGBUS to a process that touches a BAR of a function in D3hot.)
    fn bar_unavailable(&self) {}

    /// BAR0 answers again (the function is back in D0).
    fn bar_available(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Its power is about to be cut: from now on nothing touches the function (register
    /// reads give all ones) until [`Transport::attach_after_power_on`]. The controller is not
    /// shut down here: a dirty power loss is one without shutdown.
    fn detach_for_power_off(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Power is back: waits, up to `timeout`, for the function to answer configuration
    /// reads again, then makes it usable as at open (bus mastering, BAR0, DMA mappings). The
    /// controller comes up disabled (CC.EN = 0). Returns how long the function took to
    /// answer.
    fn attach_after_power_on(&self, timeout: std::time::Duration) -> Result<std::time::Duration, TransportError> {
        let _ = timeout;
        Ok(std::time::Duration::ZERO)
    }

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
