//! Completion Queue Entry (16 bytes, NVMe 1.4 §4.6).

use super::pod::Pod;
use super::status::Status;

/// A 16-byte completion queue entry, as 4 little-endian dwords.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Cqe {
    /// Completion dwords 0 to 3.
    pub dw: [u32; 4],
}

const _: () = assert!(std::mem::size_of::<Cqe>() == 16);
// SAFETY: `Cqe` is `repr(C)` over `[u32; 4]`: no padding, every bit pattern valid.
unsafe impl Pod for Cqe {}

impl Cqe {
    /// Builds an entry (phase tag clear).
    pub const fn new(cdw0: u32, sqhd: u16, sqid: u16, cid: u16, status: Status) -> Cqe {
        Cqe { dw: [cdw0, 0, sqhd as u32 | (sqid as u32) << 16, cid as u32 | (status.raw() as u32) << 17] }
    }
    /// Command-specific result (DW0).
    pub const fn cdw0(&self) -> u32 {
        self.dw[0]
    }
    /// Command-specific DW1.
    pub const fn cdw1(&self) -> u32 {
        self.dw[1]
    }
    /// SQ Head Pointer (DW2 bits 15:0).
    pub const fn sqhd(&self) -> u16 {
        self.dw[2] as u16
    }
    /// SQ Identifier (DW2 bits 31:16).
    pub const fn sqid(&self) -> u16 {
        (self.dw[2] >> 16) as u16
    }
    /// Command Identifier (DW3 bits 15:0).
    pub const fn cid(&self) -> u16 {
        self.dw[3] as u16
    }
    /// Phase Tag (DW3 bit 16).
    pub const fn phase(&self) -> bool {
        self.dw[3] & (1 << 16) != 0
    }
    /// Returns a copy with the phase tag set to `p`.
    pub const fn with_phase(mut self, p: bool) -> Cqe {
        self.dw[3] = (self.dw[3] & !(1 << 16)) | ((p as u32) << 16);
        self
    }
    /// Status Field (DW3 bits 31:17).
    pub const fn status(&self) -> Status {
        Status::from_dw3(self.dw[3])
    }
    /// Status Code.
    pub const fn sc(&self) -> u8 {
        self.status().sc()
    }
    /// Status Code Type.
    pub const fn sct(&self) -> u8 {
        self.status().sct()
    }
    /// Command Retry Delay.
    pub const fn crd(&self) -> u8 {
        self.status().crd()
    }
    /// More.
    pub const fn more(&self) -> bool {
        self.status().more()
    }
    /// Do Not Retry.
    pub const fn dnr(&self) -> bool {
        self.status().dnr()
    }
}

impl std::fmt::Debug for Cqe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cqe{{cid={} sqid={} sqhd={} p={} status={} cdw0={:#x} dw=[{:08x} {:08x} {:08x} {:08x}]}}",
            self.cid(),
            self.sqid(),
            self.sqhd(),
            self.phase() as u8,
            self.status(),
            self.cdw0(),
            self.dw[0],
            self.dw[1],
            self.dw[2],
            self.dw[3]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cqe_fields_land_in_spec_bits() {
        let st = Status::new(1, 0x02).with_dnr(true);
        let c = Cqe::new(7, 5, 3, 0x1234, st).with_phase(true);
        assert_eq!(c.dw[2], 0x0003_0005);
        assert_eq!(c.dw[3], 0x1234 | 1 << 16 | 0x02 << 17 | 1 << 25 | 1 << 31);
        assert_eq!(c.sct(), 1);
        assert_eq!(c.sc(), 2);
        assert!(c.dnr());
        assert!(c.phase());
        assert!(!c.with_phase(false).phase());
        assert_eq!(c.with_phase(false).status(), st);
    }
}
