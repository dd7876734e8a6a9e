//! Scatter Gather List descriptors (NVMe 1.4 §4.4).

use super::pod::Pod;

/// SGL descriptor type, the upper nibble of byte 15 (Figure 116).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SglType {
    /// 0h: SGL Data Block.
    DataBlock,
    /// 1h: SGL Bit Bucket (read data is discarded).
    BitBucket,
    /// 2h: SGL Segment: points to the next segment of descriptors.
    Segment,
    /// 3h: SGL Last Segment: points to the last segment (no further Segment descriptors).
    LastSegment,
    /// 4h: Keyed SGL Data Block (fabrics only).
    KeyedDataBlock,
    /// 5h: Transport SGL Data Block (fabrics only).
    TransportDataBlock,
    /// Fh: Vendor Specific.
    VendorSpecific,
    /// Reserved types.
    Reserved(u8),
}

impl SglType {
    /// Decodes the type nibble.
    pub const fn from_nibble(v: u8) -> SglType {
        match v & 0xf {
            0 => SglType::DataBlock,
            1 => SglType::BitBucket,
            2 => SglType::Segment,
            3 => SglType::LastSegment,
            4 => SglType::KeyedDataBlock,
            5 => SglType::TransportDataBlock,
            0xf => SglType::VendorSpecific,
            r => SglType::Reserved(r),
        }
    }
    /// The type nibble.
    pub const fn nibble(self) -> u8 {
        match self {
            SglType::DataBlock => 0,
            SglType::BitBucket => 1,
            SglType::Segment => 2,
            SglType::LastSegment => 3,
            SglType::KeyedDataBlock => 4,
            SglType::TransportDataBlock => 5,
            SglType::VendorSpecific => 0xf,
            SglType::Reserved(r) => r & 0xf,
        }
    }
}

/// A 16-byte SGL descriptor: address, length, 3 reserved bytes, and the identifier byte
/// (type in bits 7:4, sub type in bits 3:0; sub type 0 = address).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug, Hash)]
pub struct SglDescriptor {
    /// Address (IOVA) of the data block or segment; unused for a bit bucket.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Reserved bytes 12-14.
    pub rsvd: [u8; 3],
    /// SGL Identifier: type << 4 | sub type.
    pub id: u8,
}

const _: () = assert!(std::mem::size_of::<SglDescriptor>() == 16);
// SAFETY: `repr(C)` u64, u32, [u8; 3], u8 with size asserted to be 16 (no padding).
unsafe impl Pod for SglDescriptor {}

/// Bytes per SGL descriptor.
pub const DESCRIPTOR_BYTES: usize = 16;

impl SglDescriptor {
    /// A descriptor of the given type with sub type 0 (address).
    pub const fn new(ty: SglType, addr: u64, len: u32) -> Self {
        SglDescriptor { addr, len, rsvd: [0; 3], id: ty.nibble() << 4 }
    }
    /// Data Block descriptor.
    pub const fn data_block(addr: u64, len: u32) -> Self {
        Self::new(SglType::DataBlock, addr, len)
    }
    /// Bit Bucket descriptor: `len` bytes of read data are discarded.
    pub const fn bit_bucket(len: u32) -> Self {
        Self::new(SglType::BitBucket, 0, len)
    }
    /// Segment descriptor: `count` descriptors at `addr`, the last of which may chain on.
    pub const fn segment(addr: u64, count: u32) -> Self {
        Self::new(SglType::Segment, addr, count * DESCRIPTOR_BYTES as u32)
    }
    /// Last Segment descriptor: `count` descriptors at `addr`, none of them a segment.
    pub const fn last_segment(addr: u64, count: u32) -> Self {
        Self::new(SglType::LastSegment, addr, count * DESCRIPTOR_BYTES as u32)
    }
    /// Descriptor type.
    pub const fn ty(&self) -> SglType {
        SglType::from_nibble(self.id >> 4)
    }
    /// Descriptor sub type.
    pub const fn subtype(&self) -> u8 {
        self.id & 0xf
    }
    /// As the four dwords it occupies in a command's DPTR.
    pub const fn to_dwords(&self) -> [u32; 4] {
        [
            self.addr as u32,
            (self.addr >> 32) as u32,
            self.len,
            self.rsvd[0] as u32 | (self.rsvd[1] as u32) << 8 | (self.rsvd[2] as u32) << 16 | (self.id as u32) << 24,
        ]
    }
    /// From the four dwords of a command's DPTR.
    pub const fn from_dwords(d: [u32; 4]) -> Self {
        SglDescriptor { addr: d[0] as u64 | (d[1] as u64) << 32, len: d[2], rsvd: [d[3] as u8, (d[3] >> 8) as u8, (d[3] >> 16) as u8], id: (d[3] >> 24) as u8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgl_descriptor_identifier_is_byte_15() {
        let d = SglDescriptor::last_segment(0x1234_5678_9000, 3);
        let bytes = crate::nvme::pod::as_bytes(&d);
        assert_eq!(bytes[15], 0x30);
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 48);
        assert_eq!(SglDescriptor::from_dwords(d.to_dwords()), d);
        assert_eq!(d.ty(), SglType::LastSegment);
        assert_eq!(SglDescriptor::bit_bucket(512).ty(), SglType::BitBucket);
        assert_eq!(SglType::from_nibble(9), SglType::Reserved(9));
    }
}
