//! PCI configuration space as data, and the capability walks every transport with a
//! configuration space shares (PCI Local Bus 3.0 §6, PCI PM 1.2 §3, PCIe Base 4.0 §7).

use super::{Transport, TransportError};

/// Type-0 header offsets (PCI Local Bus 3.0 §6.1).
pub const VENDOR_ID: usize = 0x00;
/// Device ID.
pub const DEVICE_ID: usize = 0x02;
/// Command register.
pub const COMMAND: usize = 0x04;
/// Status register.
pub const STATUS: usize = 0x06;
/// Revision ID.
pub const REVISION_ID: usize = 0x08;
/// Class code, programming interface byte (then subclass, base class).
pub const CLASS_PROG: usize = 0x09;
/// Cache Line Size.
pub const CACHE_LINE_SIZE: usize = 0x0C;
/// Header Type.
pub const HEADER_TYPE: usize = 0x0E;
/// Base Address Register 0.
pub const BAR0: usize = 0x10;
/// Subsystem Vendor ID.
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2C;
/// Subsystem ID.
pub const SUBSYSTEM_ID: usize = 0x2E;
/// Capabilities Pointer.
pub const CAPABILITIES_POINTER: usize = 0x34;
/// Interrupt Line.
pub const INTERRUPT_LINE: usize = 0x3C;
/// Interrupt Pin.
pub const INTERRUPT_PIN: usize = 0x3D;
/// Start of the extended capability list (PCIe Base 4.0 §7.6).
pub const EXT_CAP_START: usize = 0x100;
/// Size of PCI Express extended configuration space.
pub const CONFIG_SPACE_SIZE: usize = 4096;

/// Command register: Memory Space Enable.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: Bus Master Enable.
pub const COMMAND_MASTER: u16 = 1 << 2;
/// Command register: Interrupt Disable.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Status register: Capabilities List.
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// Capability IDs (PCI Code and ID Assignment §2).
pub mod cap_id {
    /// PCI Power Management.
    pub const POWER_MANAGEMENT: u8 = 0x01;
    /// AGP (no NVMe function has it).
    pub const AGP: u8 = 0x02;
    /// MSI.
    pub const MSI: u8 = 0x05;
    /// PCI Express.
    pub const PCI_EXPRESS: u8 = 0x10;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
}

/// Power Management Capabilities register, offset in the PM capability.
pub const PM_PMC: usize = 2;
/// Power Management Control/Status register, offset in the PM capability.
pub const PM_PMCSR: usize = 4;
/// PMCSR PowerState field (D0 = 0, D3hot = 3).
pub const PMCSR_STATE_MASK: u16 = 0b11;
/// PMCSR No_Soft_Reset: D3hot -> D0 keeps the function's state.
pub const PMCSR_NO_SOFT_RESET: u16 = 1 << 3;
/// PowerState D3hot.
pub const D3HOT: u16 = 3;

/// Device Capabilities, offset in the PCI Express capability.
pub const EXP_DEVCAP: usize = 0x04;
/// Device Control.
pub const EXP_DEVCTL: usize = 0x08;
/// Device Status.
pub const EXP_DEVSTA: usize = 0x0A;
/// Link Capabilities.
pub const EXP_LNKCAP: usize = 0x0C;
/// Link Control.
pub const EXP_LNKCTL: usize = 0x10;
/// Link Status.
pub const EXP_LNKSTA: usize = 0x12;
/// Link Capabilities: ASPM Support, L0s and L1 (bits 11:10).
pub const LNKCAP_ASPM_L0S_L1: u32 = 0b11 << 10;
/// Link Control: ASPM Control (bits 1:0).
pub const LNKCTL_ASPM_MASK: u16 = 0b11;
/// Link Control: Link Disable (bit 4; in a downstream or root port).
pub const LNKCTL_LINK_DISABLE: u16 = 1 << 4;
/// Device Control: Initiate Function Level Reset.
pub const DEVCTL_INITIATE_FLR: u16 = 1 << 15;

/// Reads a 16-bit configuration register.
pub fn read16(t: &dyn Transport, off: usize) -> Result<u16, TransportError> {
    let mut b = [0u8; 2];
    t.config_read(off, &mut b)?;
    Ok(u16::from_le_bytes(b))
}

/// Reads a 32-bit configuration register.
pub fn read32(t: &dyn Transport, off: usize) -> Result<u32, TransportError> {
    let mut b = [0u8; 4];
    t.config_read(off, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Writes a 16-bit configuration register.
pub fn write16(t: &dyn Transport, off: usize, v: u16) -> Result<(), TransportError> {
    t.config_write(off, &v.to_le_bytes())
}

/// Recovery time after a D3hot transition before the function may be accessed (PCI PM
/// 1.2 §5.6.1, Table 5-6: 10 ms).
pub const D3HOT_RECOVERY: std::time::Duration = std::time::Duration::from_millis(10);

fn need(t: &dyn Transport, id: u8, what: &str) -> Result<usize, TransportError> {
    cap_offset(t, id)?.ok_or_else(|| TransportError::InvalidState(format!("{}: the function has no {what} capability", t.describe())))
}

/// PowerState of the PM capability's PMCSR: 0 (D0) to 3 (D3hot) (PCI PM 1.2 §3.2.4).
pub fn power_state(t: &dyn Transport) -> Result<u8, TransportError> {
    let pm = need(t, cap_id::POWER_MANAGEMENT, "power management")?;
    Ok((read16(t, pm + PM_PMCSR)? & PMCSR_STATE_MASK) as u8)
}

/// Writes PowerState (0: D0, 3: D3hot), waits the recovery time a D3hot transition needs,
/// and returns PMCSR as read back. BAR0 is out of reach from leaving D0 to coming back
/// ([`Transport::bar_unavailable`]). D1 and D2 are refused unless PMC says they are supported.
pub fn set_power_state(t: &dyn Transport, state: u8) -> Result<u16, TransportError> {
    let pm = need(t, cap_id::POWER_MANAGEMENT, "power management")?;
    let pmc = read16(t, pm + PM_PMC)?;
    let supported = match state {
        0 | 3 => true,
        1 => pmc & 1 << 9 != 0,
        2 => pmc & 1 << 10 != 0,
        _ => false,
    };
    if !supported {
        return Err(TransportError::InvalidState(format!("{}: D{state} is not supported (PMC = {pmc:#06x}; D0 and D3hot always are)", t.describe())));
    }
    let before = read16(t, pm + PM_PMCSR)?;
    let was = before & PMCSR_STATE_MASK;
    if was == 0 && state != 0 {
        // Only configuration requests are answered outside D0 (PCI PM 1.2 §5.3.1).
        t.bar_unavailable();
    }
    write16(t, pm + PM_PMCSR, (before & !PMCSR_STATE_MASK) | state as u16)?;
    if state == 3 || was == D3HOT {
        std::thread::sleep(D3HOT_RECOVERY);
    }
    let after = read16(t, pm + PM_PMCSR)?;
    if after & PMCSR_STATE_MASK == 0 && was != 0 {
        t.bar_available()?;
    }
    Ok(after)
}

/// ASPM Control of the PCI Express capability's Link Control (0 off, 1 L0s, 2 L1, 3 both).
pub fn aspm(t: &dyn Transport) -> Result<u8, TransportError> {
    let exp = need(t, cap_id::PCI_EXPRESS, "PCI Express")?;
    Ok((read16(t, exp + EXP_LNKCTL)? & LNKCTL_ASPM_MASK) as u8)
}

/// The ASPM states Link Capabilities says the function supports (bits 11:10, PCIe Base 4.0
/// §7.5.3.6), as an ASPM Control value.
pub fn aspm_supported(t: &dyn Transport) -> Result<u8, TransportError> {
    let exp = need(t, cap_id::PCI_EXPRESS, "PCI Express")?;
    Ok(((read32(t, exp + EXP_LNKCAP)? >> 10) & 3) as u8)
}

/// Writes ASPM Control (0 off, 1 L0s, 2 L1, 3 L0s and L1) and returns Link Control as read
/// back. A state Link Capabilities does not list is refused: software must not enable it
/// (PCIe Base 4.0 §7.5.3.7). This is the function's end of the link only; the upstream
/// port's own Link Control enables its end.
pub fn set_aspm(t: &dyn Transport, control: u8) -> Result<u16, TransportError> {
    if control > 3 {
        return Err(TransportError::InvalidState(format!("ASPM control {control}: it is 0 (off) to 3 (L0s and L1)")));
    }
    let exp = need(t, cap_id::PCI_EXPRESS, "PCI Express")?;
    let supported = aspm_supported(t)?;
    if control & !supported != 0 {
        return Err(TransportError::InvalidState(format!(
            "{}: ASPM {} is not supported: Link Capabilities lists {} (ASPM Support = {supported:02b}b)",
            t.describe(),
            aspm_name(control),
            aspm_name(supported)
        )));
    }
    let before = read16(t, exp + EXP_LNKCTL)?;
    write16(t, exp + EXP_LNKCTL, (before & !LNKCTL_ASPM_MASK) | control as u16)?;
    read16(t, exp + EXP_LNKCTL)
}

/// `off`, `L0s`, `L1`, `L0s and L1`.
pub fn aspm_name(control: u8) -> &'static str {
    match control & 3 {
        0 => "off",
        1 => "L0s",
        2 => "L1",
        _ => "L0s and L1",
    }
}

/// Offset of the first capability with `id` in the capability list, if any. The walk is
/// bounded (48 entries fit in 256 bytes), so a looping list cannot hang it.
pub fn cap_offset(t: &dyn Transport, id: u8) -> Result<Option<usize>, TransportError> {
    if read16(t, STATUS)? & STATUS_CAP_LIST == 0 {
        return Ok(None);
    }
    let mut b = [0u8; 1];
    t.config_read(CAPABILITIES_POINTER, &mut b)?;
    let mut at = (b[0] & !3) as usize;
    for _ in 0..48 {
        if at < 0x40 {
            return Ok(None);
        }
        let header = read16(t, at)?;
        if header as u8 == id {
            return Ok(Some(at));
        }
        at = (header >> 8) as usize & !3;
    }
    Ok(None)
}

/// Offset of the first extended capability with `id` (PCIe Base 4.0 §7.6.3), if any.
pub fn ext_cap_offset(t: &dyn Transport, id: u16) -> Result<Option<usize>, TransportError> {
    let mut at = EXT_CAP_START;
    for _ in 0..(CONFIG_SPACE_SIZE - EXT_CAP_START) / 4 {
        let header = read32(t, at)?;
        // All zeroes: no extended capabilities; all ones: no extended config space.
        if header == 0 || header == u32::MAX {
            return Ok(None);
        }
        if header as u16 == id {
            return Ok(Some(at));
        }
        at = (header >> 20) as usize & !3;
        if at < EXT_CAP_START {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Checks that `len` bytes at `off` lie in configuration space.
pub(crate) fn check_range(off: usize, len: usize, size: usize) -> Result<(), TransportError> {
    if off.checked_add(len).is_none_or(|end| end > size) {
        return Err(TransportError::InvalidState(format!("configuration access of {len} bytes at {off:#x} is outside the {size}-byte configuration space")));
    }
    Ok(())
}
