//! PCI configuration space of the simulated function: a type-0 header (PCI Local Bus 3.0
//! §6.1-§6.2), the PCI Power Management capability (PCI PM 1.2 §3.2), MSI-X (PCI Local
//! Bus 3.0 §6.8.2) and the PCI Express capability (PCIe Base 4.0 §7.5.3), and an empty
//! extended capability list (PCIe Base 4.0 §7.6.3: a zero header at 100h).
//!
//! Every byte has a write mask; a write changes only writable bits, so read-only fields
//! ignore writes as hardware does. The model decides what a write means (D-state change,
//! Function Level Reset, memory decoding); the simulator carries it out.

use crate::transport::pci::{self, cap_id};

/// Bytes of (extended) configuration space.
pub(crate) const CONFIG_SIZE: usize = 4096;

/// PCI Vendor ID of the simulated function. 1234h is the placeholder emulators use (QEMU's
/// standard VGA is 1234:1111); no NVMe vendor owns it, so nothing keys a quirk on it.
/// QEMU's NVMe controller is 1B36:0010 (Red Hat).
pub(crate) const VENDOR_ID: u16 = 0x1234;
/// PCI Device ID ("NV").
pub(crate) const DEVICE_ID: u16 = 0x4E56;
/// Subsystem ID.
pub(crate) const SUBSYSTEM_ID: u16 = 0x0001;
const REVISION: u8 = 0x01;

// Where the capabilities sit.
const PM: usize = 0x40;
const MSIX: usize = 0x50;
const PCIE: usize = 0x60;

/// What a configuration write asks of the device beyond storing bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WriteEffect {
    /// PMCSR D3hot -> D0 with No_Soft_Reset = 0, or Initiate Function Level Reset: the
    /// function resets internally (PCI PM 1.2 §5.4.1 "D0 Uninitialized"; PCIe 4.0 §6.6.2).
    pub(crate) reset: bool,
}

/// The configuration space and its write masks.
pub(crate) struct ConfigSpace {
    bytes: Box<[u8; CONFIG_SIZE]>,
    wmask: Box<[u8; CONFIG_SIZE]>,
}

impl ConfigSpace {
    /// Power-on contents for a function whose BAR0 spans `bar_bytes` (a power of two) and
    /// that has `vectors` MSI-X vectors with the table at `msix_table` and the pending bit
    /// array at `msix_pba` in BAR0.
    ///
    /// The Command register comes up with Memory Space and Bus Master enabled, as the
    /// platform's enumeration leaves an NVMe function before a driver opens it.
    pub(crate) fn new(bar_bytes: u64, vectors: u16, msix_table: u32, msix_pba: u32) -> Self {
        let mut c = ConfigSpace { bytes: Box::new([0; CONFIG_SIZE]), wmask: Box::new([0; CONFIG_SIZE]) };
        c.set16(pci::VENDOR_ID, VENDOR_ID);
        c.set16(pci::DEVICE_ID, DEVICE_ID);
        c.set16(pci::COMMAND, pci::COMMAND_MEMORY | pci::COMMAND_MASTER);
        // Memory Space, Bus Master, Parity Error Response, SERR# Enable, INTx Disable.
        c.mask16(pci::COMMAND, pci::COMMAND_MEMORY | pci::COMMAND_MASTER | 1 << 6 | 1 << 8 | pci::COMMAND_INTX_DISABLE);
        // Status: Capabilities List (bit 4); the error bits are never set.
        c.set16(pci::STATUS, pci::STATUS_CAP_LIST);
        c.bytes[pci::REVISION_ID] = REVISION;
        // Class code 01_08_02h: mass storage, non-volatile memory, NVM Express (bytes 9-11
        // are the programming interface, subclass, base class).
        c.bytes[pci::CLASS_PROG..pci::CLASS_PROG + 3].copy_from_slice(&[0x02, 0x08, 0x01]);
        c.bytes[pci::CACHE_LINE_SIZE] = 0;
        c.wmask[pci::CACHE_LINE_SIZE] = 0xff;
        c.bytes[pci::HEADER_TYPE] = 0x00;
        // BAR0/1: 64-bit non-prefetchable memory (bits 2:1 = 10b). Size bits read back as
        // zero, which is how software sizes the BAR by writing all ones (§6.2.5.1).
        let base = 0xFE00_0000u64 & !(bar_bytes - 1);
        c.set32(pci::BAR0, base as u32 | 0b0100);
        c.set32(pci::BAR0 + 4, (base >> 32) as u32);
        c.mask32(pci::BAR0, !(bar_bytes as u32).wrapping_sub(1) & !0xf);
        c.mask32(pci::BAR0 + 4, if bar_bytes > 1 << 32 { !((bar_bytes >> 32) as u32 - 1) } else { u32::MAX });
        c.set16(pci::SUBSYSTEM_VENDOR_ID, VENDOR_ID);
        c.set16(pci::SUBSYSTEM_ID, SUBSYSTEM_ID);
        c.bytes[pci::CAPABILITIES_POINTER] = PM as u8;
        c.wmask[pci::INTERRUPT_LINE] = 0xff;
        c.bytes[pci::INTERRUPT_PIN] = 1;

        // PCI Power Management (PCI PM 1.2 §3.2): version 011b (1.2); no D1/D2, no PME.
        c.cap_header(PM, cap_id::POWER_MANAGEMENT, MSIX);
        c.set16(PM + pci::PM_PMC, 0b011);
        // PMCSR: PowerState (1:0) writable; No_Soft_Reset (bit 3) = 0, like most NVMe SSDs:
        // D3hot -> D0 resets the function internally.
        c.mask16(PM + pci::PM_PMCSR, pci::PMCSR_STATE_MASK);

        // MSI-X (PCI Local Bus 3.0 §6.8.2): table and PBA in BAR0 (BIR 0) after the
        // doorbells; Enable and Function Mask are writable (the simulator's `msix` acts on
        // them).
        c.cap_header(MSIX, cap_id::MSIX, PCIE);
        c.set16(MSIX + 2, vectors.clamp(1, 2048) - 1);
        c.mask16(MSIX + 2, 1 << 14 | 1 << 15);
        c.set32(MSIX + 4, msix_table);
        c.set32(MSIX + 8, msix_pba);

        // PCI Express capability, version 2, endpoint (PCIe Base 4.0 §7.5.3).
        c.cap_header(PCIE, cap_id::PCI_EXPRESS, 0);
        c.set16(PCIE + 2, 0x0002);
        // Device Capabilities: Max_Payload_Size 512 B (010b), Role-Based Error Reporting
        // (bit 15), Function Level Reset Capability (bit 28).
        c.set32(PCIE + pci::EXP_DEVCAP, 0b010 | 1 << 15 | 1 << 28);
        // Device Control: error reporting enables (3:0), Relaxed Ordering (4), MPS (7:5),
        // Extended Tag (8), Aux Power PM (10), No Snoop (11), Max_Read_Request (14:12).
        // Bit 15 (Initiate FLR) always reads 0; writing 1 starts the reset.
        c.set16(PCIE + pci::EXP_DEVCTL, 1 << 4 | 1 << 11 | 0b010 << 12);
        c.mask16(PCIE + pci::EXP_DEVCTL, 0x7fff & !(1 << 9));
        // Link Capabilities: 8 GT/s (3), x4, ASPM L0s and L1 supported (11:10 = 11b), L0s
        // exit latency 1-2 µs (100b), L1 exit 8-16 µs (100b), ASPM Optionality Compliance.
        c.set32(PCIE + pci::EXP_LNKCAP, 3 | 4 << 4 | pci::LNKCAP_ASPM_L0S_L1 | 0b100 << 12 | 0b100 << 15 | 1 << 22);
        // Link Control: ASPM Control (1:0), Common Clock Configuration (6), Extended Synch
        // (7) are writable and only recorded: the simulated link has no power states.
        c.mask16(PCIE + pci::EXP_LNKCTL, pci::LNKCTL_ASPM_MASK | 1 << 6 | 1 << 7);
        // Link Status: 8 GT/s, x4, Slot Clock Configuration.
        c.set16(PCIE + pci::EXP_LNKSTA, 3 | 4 << 4 | 1 << 12);
        // Device Capabilities 2: completion timeout ranges A-D, timeout disable.
        c.set32(PCIE + 0x24, 0x1f);
        c.mask16(PCIE + 0x28, 0x1f);
        // Link Capabilities 2: 2.5, 5 and 8 GT/s; Link Control 2: Target Link Speed 8 GT/s.
        c.set32(PCIE + 0x2c, 0b1110);
        c.set16(PCIE + 0x30, 3);
        c.mask16(PCIE + 0x30, 0xf);
        c
    }

    /// Copies `buf.len()` bytes from `off`; the caller checked the range.
    pub(crate) fn read(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[off..off + buf.len()]);
    }

    /// Stores the writable bits of `data` at `off` and says what the write asks for.
    pub(crate) fn write(&mut self, off: usize, data: &[u8]) -> WriteEffect {
        let before = self.power_state();
        let devctl = PCIE + pci::EXP_DEVCTL;
        // Initiate Function Level Reset is bit 15 of Device Control (byte devctl + 1, bit 7).
        let flr = (off..off + data.len()).contains(&(devctl + 1)) && data[devctl + 1 - off] & 0x80 != 0;
        let pmcsr = PM + pci::PM_PMCSR;
        let requested = (off..off + data.len()).contains(&pmcsr).then(|| (data[pmcsr - off] & 3) as u16);
        for (i, &b) in data.iter().enumerate() {
            let m = self.wmask[off + i];
            self.bytes[off + i] = (self.bytes[off + i] & !m) | (b & m);
        }
        // D1 and D2 are not supported: such a write completes and is discarded, the state
        // does not change (PCI PM 1.2 §3.2.4, PowerState).
        if let Some(s) = requested
            && (s == 1 || s == 2)
        {
            self.set_power_state(before);
        }
        let after = self.power_state();
        let no_soft_reset = self.get16(pmcsr) & pci::PMCSR_NO_SOFT_RESET != 0;
        WriteEffect { reset: flr || (before == pci::D3HOT && after == 0 && !no_soft_reset) }
    }

    /// Whether BAR0 answers memory requests: only in D0 (PCI PM 1.2 §5.3.1.4: in D3hot a
    /// function responds to configuration accesses only) and with Memory Space enabled.
    pub(crate) fn bar_enabled(&self) -> bool {
        self.power_state() == 0 && self.get16(pci::COMMAND) & pci::COMMAND_MEMORY != 0
    }

    /// After a Function Level Reset the function is in D0. The rest stays as it was: the
    /// host restores what the reset cleared (Linux saves and restores config space around
    /// a reset it issues, vfio-pci included), so to the host it looks unchanged.
    pub(crate) fn after_function_reset(&mut self) {
        self.set_power_state(0);
    }

    /// MSI-X Message Control (Enable, Function Mask; PCI Local Bus 3.0 §6.8.2.3).
    pub(crate) fn msix_control(&self) -> u16 {
        self.get16(MSIX + 2)
    }

    fn power_state(&self) -> u16 {
        self.get16(PM + pci::PM_PMCSR) & pci::PMCSR_STATE_MASK
    }

    fn set_power_state(&mut self, s: u16) {
        let v = (self.get16(PM + pci::PM_PMCSR) & !pci::PMCSR_STATE_MASK) | s;
        self.set16(PM + pci::PM_PMCSR, v);
    }

    fn cap_header(&mut self, at: usize, id: u8, next: usize) {
        self.bytes[at] = id;
        self.bytes[at + 1] = next as u8;
    }

    fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.bytes[off], self.bytes[off + 1]])
    }
    fn set16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn set32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn mask16(&mut self, off: usize, m: u16) {
        self.wmask[off..off + 2].copy_from_slice(&m.to_le_bytes());
    }
    fn mask32(&mut self, off: usize, m: u32) {
        self.wmask[off..off + 4].copy_from_slice(&m.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ConfigSpace {
        ConfigSpace::new(0x4000, 65, 0x2000, 0x3000)
    }

    #[test]
    fn bar0_sizing_reads_back_the_size_mask() {
        let mut c = space();
        c.write(pci::BAR0, &u32::MAX.to_le_bytes());
        let mut b = [0u8; 4];
        c.read(pci::BAR0, &mut b);
        assert_eq!(u32::from_le_bytes(b), !(0x4000 - 1) | 0b0100);
    }

    #[test]
    fn unsupported_d_states_are_discarded_and_d3hot_to_d0_resets() {
        let mut c = space();
        assert_eq!(c.write(PM + pci::PM_PMCSR, &[1, 0]), WriteEffect::default());
        assert_eq!(c.power_state(), 0);
        c.write(PM + pci::PM_PMCSR, &[3, 0]);
        assert!(!c.bar_enabled());
        assert!(c.write(PM + pci::PM_PMCSR, &[0, 0]).reset);
        assert!(c.bar_enabled());
    }

    #[test]
    fn initiate_flr_reads_zero_and_requests_a_reset() {
        let mut c = space();
        let at = PCIE + pci::EXP_DEVCTL;
        assert!(c.write(at, &[0x10, 0xa8]).reset);
        let mut b = [0u8; 2];
        c.read(at, &mut b);
        assert_eq!(u16::from_le_bytes(b) & 0x8000, 0);
    }
}
