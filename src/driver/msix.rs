//! MSI-X set-up through any transport (PCI Local Bus 3.0 §6.8.2): the capability in
//! configuration space, the table and the Pending Bit Array in BAR0. A vector is pointed at
//! an IOVA of host memory the caller owns: the device signals it by writing the message
//! data there, which the host sees by polling that word (no operating-system interrupt).
//!
//! With vfio-pci the kernel owns the MSI-X table (it is virtualised, writes to it are
//! dropped), so this module is for transports that expose the table as-is (the simulator).

use super::error::DriverError;
use crate::transport::pci::{self, cap_id};
use crate::transport::{SharedTransport, TransportError};

/// Message Control: MSI-X Enable (§6.8.2.3).
const CTRL_ENABLE: u16 = 1 << 15;
/// Message Control: Function Mask.
const CTRL_FUNCTION_MASK: u16 = 1 << 14;
/// Vector Control: Mask Bit (§6.8.2.9).
const VECTOR_MASKED: u32 = 1;
/// Bytes per table entry.
const ENTRY: usize = 16;

/// A function's MSI-X capability and table.
#[derive(Clone)]
pub struct Msix {
    t: SharedTransport,
    cap: usize,
    table: usize,
    pba: usize,
    vectors: u16,
}

impl std::fmt::Debug for Msix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msix").field("cap", &self.cap).field("table", &self.table).field("pba", &self.pba).field("vectors", &self.vectors).finish()
    }
}

/// The interrupt vector a new I/O completion queue `qid` gets when the caller names none:
/// its own ID (modulo the table size) while MSI-X is enabled, else 0. NVMe 2.0 Base §5.5
/// (Create I/O Completion Queue, IV): with pin-based or single-message MSI interrupts the
/// field shall be 0h, and controllers refuse anything else (Invalid Interrupt Vector).
pub(crate) fn default_vector(t: &dyn crate::transport::Transport, qid: u16) -> u16 {
    let enabled_size = || -> Result<Option<u16>, TransportError> {
        let Some(cap) = pci::cap_offset(t, cap_id::MSIX)? else { return Ok(None) };
        let c = pci::read16(t, cap + 2)?;
        Ok((c & CTRL_ENABLE != 0).then_some((c & 0x7ff) + 1))
    };
    match enabled_size() {
        Ok(Some(vectors)) => qid % vectors,
        _ => 0,
    }
}

impl Msix {
    /// Finds the MSI-X capability; None when the function has none. The table and the
    /// PBA must be in BAR0 (BIR 0), the only BAR a transport maps.
    /// Refused where the transport owns the table ([`crate::transport::Transport::host_owns_msix`]).
    pub fn find(t: &SharedTransport) -> Result<Option<Msix>, DriverError> {
        if !t.host_owns_msix() {
            return Err(DriverError::Transport(TransportError::Unsupported { what: "MSI-X table programming by the host", transport: "vfio-pci" }));
        }
        let Some(cap) = pci::cap_offset(t.as_ref(), cap_id::MSIX)? else { return Ok(None) };
        let vectors = (pci::read16(t.as_ref(), cap + 2)? & 0x7ff) + 1;
        let table = pci::read32(t.as_ref(), cap + 4)?;
        let pba = pci::read32(t.as_ref(), cap + 8)?;
        if table & 7 != 0 || pba & 7 != 0 {
            return Err(DriverError::Transport(TransportError::InvalidState(format!(
                "MSI-X table (BIR {}) or PBA (BIR {}) is not in BAR0",
                table & 7,
                pba & 7
            ))));
        }
        Ok(Some(Msix { t: t.clone(), cap, table: (table & !7) as usize, pba: (pba & !7) as usize, vectors }))
    }

    /// Table Size + 1.
    pub fn vectors(&self) -> u16 {
        self.vectors
    }

    fn control(&self) -> Result<u16, DriverError> {
        Ok(pci::read16(self.t.as_ref(), self.cap + 2)?)
    }

    fn set_control(&self, set: u16, clear: u16) -> Result<(), DriverError> {
        let c = self.control()?;
        Ok(pci::write16(self.t.as_ref(), self.cap + 2, (c | set) & !clear)?)
    }

    /// Sets MSI-X Enable and clears Function Mask. Vectors keep their own mask bits.
    pub fn enable(&self) -> Result<(), DriverError> {
        self.set_control(CTRL_ENABLE, CTRL_FUNCTION_MASK)
    }

    /// Clears MSI-X Enable.
    pub fn disable(&self) -> Result<(), DriverError> {
        self.set_control(0, CTRL_ENABLE)
    }

    /// Whether MSI-X Enable is set.
    pub fn is_enabled(&self) -> Result<bool, DriverError> {
        Ok(self.control()? & CTRL_ENABLE != 0)
    }

    /// Sets or clears Function Mask (masks every vector at once).
    pub fn set_function_mask(&self, masked: bool) -> Result<(), DriverError> {
        if masked { self.set_control(CTRL_FUNCTION_MASK, 0) } else { self.set_control(0, CTRL_FUNCTION_MASK) }
    }

    fn entry(&self, v: u16) -> Result<usize, DriverError> {
        if v >= self.vectors {
            return Err(DriverError::InvalidArgument(format!("MSI-X vector {v} outside 0..{} (Table Size + 1)", self.vectors)));
        }
        Ok(self.table + v as usize * ENTRY)
    }

    /// Points vector `v` at `iova` (DWORD aligned) with message `data`, then unmasks it.
    /// The vector is masked while its address and data change (§6.8.3.5).
    pub fn program(&self, v: u16, iova: u64, data: u32) -> Result<(), DriverError> {
        if !iova.is_multiple_of(4) {
            return Err(DriverError::InvalidArgument(format!("MSI-X message address {iova:#x} is not DWORD aligned")));
        }
        let e = self.entry(v)?;
        self.mask(v)?;
        self.t.write32(e, iova as u32);
        self.t.write32(e + 4, (iova >> 32) as u32);
        self.t.write32(e + 8, data);
        self.unmask(v)
    }

    /// Sets vector `v`'s mask bit: its messages become pending bits.
    pub fn mask(&self, v: u16) -> Result<(), DriverError> {
        let e = self.entry(v)? + 12;
        let c = self.t.read32(e);
        self.t.write32(e, c | VECTOR_MASKED);
        Ok(())
    }

    /// Clears vector `v`'s mask bit; a pending message is sent then.
    pub fn unmask(&self, v: u16) -> Result<(), DriverError> {
        let e = self.entry(v)? + 12;
        let c = self.t.read32(e);
        self.t.write32(e, c & !VECTOR_MASKED);
        Ok(())
    }

    /// Whether vector `v` is masked.
    pub fn is_masked(&self, v: u16) -> Result<bool, DriverError> {
        Ok(self.t.read32(self.entry(v)? + 12) & VECTOR_MASKED != 0)
    }

    /// Whether vector `v`'s pending bit is set.
    pub fn is_pending(&self, v: u16) -> Result<bool, DriverError> {
        self.entry(v)?;
        let w = self.t.read32(self.pba + v as usize / 32 * 4);
        Ok(w & 1 << (v % 32) != 0)
    }
}
