//! Submission Queue Entry (64 bytes, NVMe 1.4 §4.2).

use super::pod::Pod;
use super::sgl::SglDescriptor;

/// How the data pointer of a command is encoded (CDW0.PSDT, §4.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Psdt {
    /// PRP1/PRP2.
    Prp,
    /// SGL in DPTR; MPTR is a contiguous metadata buffer.
    SglContiguousMeta,
    /// SGL in DPTR; MPTR points to an SGL segment.
    SglMetaSgl,
    /// Reserved encoding (11b).
    Reserved,
}

impl Psdt {
    /// The two-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            Psdt::Prp => 0,
            Psdt::SglContiguousMeta => 1,
            Psdt::SglMetaSgl => 2,
            Psdt::Reserved => 3,
        }
    }

    /// Decodes the two-bit field.
    pub const fn from_bits(b: u8) -> Psdt {
        match b & 3 {
            0 => Psdt::Prp,
            1 => Psdt::SglContiguousMeta,
            2 => Psdt::SglMetaSgl,
            _ => Psdt::Reserved,
        }
    }

    /// Whether DPTR holds an SGL descriptor.
    pub const fn is_sgl(self) -> bool {
        matches!(self, Psdt::SglContiguousMeta | Psdt::SglMetaSgl)
    }
}

/// A 64-byte submission queue entry, as 16 little-endian dwords.
///
/// Every dword is public and indexable (`sqe[12] = 1`), so a test can set any field,
/// reserved ones included; the accessors below name the common fields.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Sqe {
    /// Command dwords 0 to 15.
    pub dw: [u32; 16],
}

const _: () = assert!(std::mem::size_of::<Sqe>() == 64);
// SAFETY: `Sqe` is `repr(C)` over `[u32; 16]`: no padding, every bit pattern valid.
unsafe impl Pod for Sqe {}

impl Sqe {
    /// A command with the given opcode and namespace, everything else zero.
    pub const fn new(opcode: u8, nsid: u32) -> Sqe {
        let mut dw = [0u32; 16];
        dw[0] = opcode as u32;
        dw[1] = nsid;
        Sqe { dw }
    }

    /// Opcode (CDW0 bits 7:0).
    pub const fn opcode(&self) -> u8 {
        self.dw[0] as u8
    }
    /// Sets the opcode.
    pub fn set_opcode(&mut self, op: u8) {
        self.dw[0] = (self.dw[0] & !0xff) | op as u32;
    }
    /// Fused operation (CDW0 bits 9:8).
    pub const fn fuse(&self) -> u8 {
        ((self.dw[0] >> 8) & 3) as u8
    }
    /// Sets the fused-operation bits.
    pub fn set_fuse(&mut self, fuse: u8) {
        self.dw[0] = (self.dw[0] & !(3 << 8)) | ((fuse as u32 & 3) << 8);
    }
    /// PRP or SGL for Data Transfer (CDW0 bits 15:14).
    pub const fn psdt(&self) -> Psdt {
        Psdt::from_bits((self.dw[0] >> 14) as u8)
    }
    /// Sets PSDT.
    pub fn set_psdt(&mut self, p: Psdt) {
        self.dw[0] = (self.dw[0] & !(3 << 14)) | ((p.bits() as u32) << 14);
    }
    /// Command Identifier (CDW0 bits 31:16).
    pub const fn cid(&self) -> u16 {
        (self.dw[0] >> 16) as u16
    }
    /// Sets the command identifier.
    pub fn set_cid(&mut self, cid: u16) {
        self.dw[0] = (self.dw[0] & 0xffff) | ((cid as u32) << 16);
    }
    /// Namespace Identifier (CDW1).
    pub const fn nsid(&self) -> u32 {
        self.dw[1]
    }
    /// Sets the namespace identifier.
    pub fn set_nsid(&mut self, nsid: u32) {
        self.dw[1] = nsid;
    }
    /// Metadata Pointer (CDW4-5).
    pub const fn mptr(&self) -> u64 {
        self.dw[4] as u64 | (self.dw[5] as u64) << 32
    }
    /// Sets the metadata pointer.
    pub fn set_mptr(&mut self, v: u64) {
        self.dw[4] = v as u32;
        self.dw[5] = (v >> 32) as u32;
    }
    /// PRP Entry 1 (CDW6-7).
    pub const fn prp1(&self) -> u64 {
        self.dw[6] as u64 | (self.dw[7] as u64) << 32
    }
    /// Sets PRP Entry 1.
    pub fn set_prp1(&mut self, v: u64) {
        self.dw[6] = v as u32;
        self.dw[7] = (v >> 32) as u32;
    }
    /// PRP Entry 2 (CDW8-9).
    pub const fn prp2(&self) -> u64 {
        self.dw[8] as u64 | (self.dw[9] as u64) << 32
    }
    /// Sets PRP Entry 2.
    pub fn set_prp2(&mut self, v: u64) {
        self.dw[8] = v as u32;
        self.dw[9] = (v >> 32) as u32;
    }
    /// SGL Entry 1 (CDW6-9), meaningful when PSDT selects SGLs.
    pub fn sgl1(&self) -> SglDescriptor {
        SglDescriptor::from_dwords([self.dw[6], self.dw[7], self.dw[8], self.dw[9]])
    }
    /// Sets SGL Entry 1 (does not touch PSDT).
    pub fn set_sgl1(&mut self, d: SglDescriptor) {
        self.dw[6..10].copy_from_slice(&d.to_dwords());
    }
    /// Starting LBA of an NVM I/O command (CDW10-11).
    pub const fn slba(&self) -> u64 {
        self.dw[10] as u64 | (self.dw[11] as u64) << 32
    }
    /// Sets the starting LBA.
    pub fn set_slba(&mut self, lba: u64) {
        self.dw[10] = lba as u32;
        self.dw[11] = (lba >> 32) as u32;
    }
    /// Number of logical blocks of an NVM I/O command, 1-based (CDW12 bits 15:0 plus one).
    pub const fn nlb(&self) -> u32 {
        (self.dw[12] & 0xffff) + 1
    }
    /// Sets the number of logical blocks (1 to 65536); the 0's-based value goes to CDW12.
    pub fn set_nlb(&mut self, nlb: u32) {
        debug_assert!((1..=65536).contains(&nlb));
        self.dw[12] = (self.dw[12] & 0xffff_0000) | (nlb.wrapping_sub(1) & 0xffff);
    }
    /// Upper 16 bits of CDW12 (FUA bit 30, Limited Retry bit 31, PRINFO, DTYPE, ...).
    pub const fn io_flags(&self) -> u16 {
        (self.dw[12] >> 16) as u16
    }
    /// Sets the upper 16 bits of CDW12.
    pub fn set_io_flags(&mut self, flags: u16) {
        self.dw[12] = (self.dw[12] & 0xffff) | ((flags as u32) << 16);
    }
    /// Force Unit Access (CDW12 bit 30).
    pub const fn fua(&self) -> bool {
        self.dw[12] & (1 << 30) != 0
    }
}

impl std::ops::Index<usize> for Sqe {
    type Output = u32;
    fn index(&self, i: usize) -> &u32 {
        &self.dw[i]
    }
}

impl std::ops::IndexMut<usize> for Sqe {
    fn index_mut(&mut self, i: usize) -> &mut u32 {
        &mut self.dw[i]
    }
}

impl std::fmt::Debug for Sqe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sqe{{opc={:#04x} cid={} nsid={} psdt={} dw=[", self.opcode(), self.cid(), self.nsid(), self.psdt().bits())?;
        for (i, d) in self.dw.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{d:08x}")?;
        }
        f.write_str("]}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqe_fields_land_in_spec_dwords() {
        let mut s = Sqe::new(0x02, 1);
        s.set_cid(0xbeef);
        s.set_psdt(Psdt::SglContiguousMeta);
        s.set_prp1(0x1_2345_6000);
        s.set_prp2(0x9_0000_0000);
        s.set_slba(0x1_0000_0010);
        s.set_nlb(8);
        s.set_io_flags(0x4000);
        assert_eq!(s.dw[0], 0xbeef_4002);
        assert_eq!(s.dw[6], 0x2345_6000);
        assert_eq!(s.dw[7], 1);
        assert_eq!(s.dw[9], 9);
        assert_eq!(s.dw[10], 0x10);
        assert_eq!(s.dw[11], 1);
        assert_eq!(s.dw[12], 0x4000_0007);
        assert!(s.fua());
        assert_eq!(s.nlb(), 8);
        assert_eq!(s.psdt(), Psdt::SglContiguousMeta);
        s[12] = 1;
        assert_eq!(s.nlb(), 2);
    }

    #[test]
    fn nlb_65536_encodes_as_zero() {
        let mut s = Sqe::new(0x02, 1);
        s.set_nlb(65536);
        assert_eq!(s.dw[12] & 0xffff, 0xffff);
        assert_eq!(s.nlb(), 65536);
        s.set_nlb(1);
        assert_eq!(s.dw[12], 0);
    }
}
