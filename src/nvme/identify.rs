//! Identify data structures (NVMe 1.4 §5.15.2): Identify Controller (CNS 01h, Figure 247)
//! and Identify Namespace (CNS 00h, Figure 249), laid out at their spec offsets.

use super::pod::{self, Pod};

/// Controller or Namespace Structure values of Identify CDW10 (Figure 244).
pub mod cns {
    /// Identify Namespace data structure for the NSID.
    pub const NAMESPACE: u8 = 0x00;
    /// Identify Controller data structure.
    pub const CONTROLLER: u8 = 0x01;
    /// Active Namespace ID list (NSIDs greater than CDW1.NSID).
    pub const ACTIVE_NS_LIST: u8 = 0x02;
    /// Namespace Identification Descriptor list.
    pub const NS_DESCRIPTORS: u8 = 0x03;
}

/// Optional NVM commands supported (ONCS bits, Figure 247 byte 520).
pub mod oncs {
    /// Compare.
    pub const COMPARE: u16 = 1 << 0;
    /// Write Uncorrectable.
    pub const WRITE_UNCORRECTABLE: u16 = 1 << 1;
    /// Dataset Management.
    pub const DSM: u16 = 1 << 2;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u16 = 1 << 3;
    /// Save and Select fields of Set/Get Features.
    pub const FEATURES_SAVE_SELECT: u16 = 1 << 4;
    /// Reservations.
    pub const RESERVATIONS: u16 = 1 << 5;
    /// Timestamp feature.
    pub const TIMESTAMP: u16 = 1 << 6;
    /// Verify.
    pub const VERIFY: u16 = 1 << 7;
}

/// Optional admin commands supported (OACS bits, byte 256).
pub mod oacs {
    /// Security Send/Receive.
    pub const SECURITY: u16 = 1 << 0;
    /// Format NVM.
    pub const FORMAT: u16 = 1 << 1;
    /// Firmware Commit / Image Download.
    pub const FIRMWARE: u16 = 1 << 2;
    /// Namespace Management.
    pub const NS_MANAGEMENT: u16 = 1 << 3;
    /// Device Self-test.
    pub const SELF_TEST: u16 = 1 << 4;
    /// Directives.
    pub const DIRECTIVES: u16 = 1 << 5;
    /// Doorbell Buffer Config.
    pub const DOORBELL_BUFFER_CONFIG: u16 = 1 << 8;
}

/// SGL support bits (SGLS, byte 536).
pub mod sgls {
    /// Bits 1:0 = 01b: SGLs supported, no alignment or granularity requirement.
    pub const SUPPORTED_NO_ALIGN: u32 = 0b01;
    /// Bits 1:0 = 10b: SGLs supported with dword alignment and granularity.
    pub const SUPPORTED_DWORD_ALIGN: u32 = 0b10;
    /// Mask of the support field.
    pub const SUPPORT_MASK: u32 = 0b11;
    /// SGL Bit Bucket descriptor supported.
    pub const BIT_BUCKET: u32 = 1 << 16;
    /// A byte-aligned contiguous physical buffer of metadata in MPTR is supported.
    pub const MPTR_CONTIGUOUS: u32 = 1 << 17;
    /// SGL length larger than the data to transfer is supported.
    pub const EXCESS_LENGTH: u32 = 1 << 18;
}

/// Identify Controller data structure (4096 bytes; Figure 247).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyController {
    /// PCI Vendor ID.
    pub vid: u16,
    /// PCI Subsystem Vendor ID.
    pub ssvid: u16,
    /// Serial Number, ASCII, space padded.
    pub sn: [u8; 20],
    /// Model Number, ASCII, space padded.
    pub mn: [u8; 40],
    /// Firmware Revision, ASCII, space padded.
    pub fr: [u8; 8],
    /// Recommended Arbitration Burst.
    pub rab: u8,
    /// IEEE OUI Identifier.
    pub ieee: [u8; 3],
    /// Controller Multi-Path I/O and Namespace Sharing Capabilities.
    pub cmic: u8,
    /// Maximum Data Transfer Size: `2 ^ MDTS` units of CAP.MPSMIN; 0 means no limit.
    pub mdts: u8,
    /// Controller ID.
    pub cntlid: u16,
    /// Version (same encoding as the VS register).
    pub ver: u32,
    /// RTD3 Resume Latency, µs.
    pub rtd3r: u32,
    /// RTD3 Entry Latency, µs.
    pub rtd3e: u32,
    /// Optional Asynchronous Events Supported.
    pub oaes: u32,
    /// Controller Attributes.
    pub ctratt: u32,
    /// Read Recovery Levels Supported.
    pub rrls: u16,
    /// Reserved (102-110).
    pub rsvd102: [u8; 9],
    /// Controller Type (1: I/O controller).
    pub cntrltype: u8,
    /// FRU Globally Unique Identifier.
    pub fguid: [u8; 16],
    /// Command Retry Delay Times 1-3, 100 ms units.
    pub crdt: [u16; 3],
    /// Reserved (134-239).
    pub rsvd134: [u8; 106],
    /// NVMe Management Interface (240-255).
    pub nvmemi: [u8; 16],
    /// Optional Admin Command Support (see [`oacs`]).
    pub oacs: u16,
    /// Abort Command Limit, 0's based.
    pub acl: u8,
    /// Asynchronous Event Request Limit, 0's based.
    pub aerl: u8,
    /// Firmware Updates.
    pub frmw: u8,
    /// Log Page Attributes.
    pub lpa: u8,
    /// Error Log Page Entries, 0's based.
    pub elpe: u8,
    /// Number of Power States Support, 0's based.
    pub npss: u8,
    /// Admin Vendor Specific Command Configuration.
    pub avscc: u8,
    /// Autonomous Power State Transition Attributes.
    pub apsta: u8,
    /// Warning Composite Temperature Threshold, Kelvin.
    pub wctemp: u16,
    /// Critical Composite Temperature Threshold, Kelvin.
    pub cctemp: u16,
    /// Maximum Time for Firmware Activation, 100 ms units.
    pub mtfa: u16,
    /// Host Memory Buffer Preferred Size.
    pub hmpre: u32,
    /// Host Memory Buffer Minimum Size.
    pub hmmin: u32,
    /// Total NVM Capacity, bytes (128-bit).
    pub tnvmcap: [u8; 16],
    /// Unallocated NVM Capacity, bytes (128-bit).
    pub unvmcap: [u8; 16],
    /// Replay Protected Memory Block Support.
    pub rpmbs: u32,
    /// Extended Device Self-test Time, minutes.
    pub edstt: u16,
    /// Device Self-test Options.
    pub dsto: u8,
    /// Firmware Update Granularity.
    pub fwug: u8,
    /// Keep Alive Support.
    pub kas: u16,
    /// Host Controlled Thermal Management Attributes.
    pub hctma: u16,
    /// Minimum Thermal Management Temperature.
    pub mntmt: u16,
    /// Maximum Thermal Management Temperature.
    pub mxtmt: u16,
    /// Sanitize Capabilities.
    pub sanicap: u32,
    /// Host Memory Buffer Minimum Descriptor Entry Size.
    pub hmminds: u32,
    /// Host Memory Maximum Descriptors Entries.
    pub hmmaxd: u16,
    /// NVM Set Identifier Maximum.
    pub nsetidmax: u16,
    /// Endurance Group Identifier Maximum.
    pub endgidmax: u16,
    /// ANA Transition Time.
    pub anatt: u8,
    /// Asymmetric Namespace Access Capabilities.
    pub anacap: u8,
    /// ANA Group Identifier Maximum.
    pub anagrpmax: u32,
    /// Number of ANA Group Identifiers.
    pub nanagrpid: u32,
    /// Persistent Event Log Size.
    pub pels: u32,
    /// Reserved (356-511).
    pub rsvd356: [u8; 156],
    /// Submission Queue Entry Size: bits 3:0 required, 7:4 maximum (log2 bytes).
    pub sqes: u8,
    /// Completion Queue Entry Size: bits 3:0 required, 7:4 maximum (log2 bytes).
    pub cqes: u8,
    /// Maximum Outstanding Commands.
    pub maxcmd: u16,
    /// Number of Namespaces (largest valid NSID).
    pub nn: u32,
    /// Optional NVM Command Support (see [`oncs`]).
    pub oncs: u16,
    /// Fused Operation Support.
    pub fuses: u16,
    /// Format NVM Attributes.
    pub fna: u8,
    /// Volatile Write Cache: bit 0 present.
    pub vwc: u8,
    /// Atomic Write Unit Normal, 0's based LBAs.
    pub awun: u16,
    /// Atomic Write Unit Power Fail, 0's based LBAs.
    pub awupf: u16,
    /// NVM Vendor Specific Command Configuration.
    pub nvscc: u8,
    /// Namespace Write Protection Capabilities.
    pub nwpc: u8,
    /// Atomic Compare & Write Unit.
    pub acwu: u16,
    /// Reserved (534-535).
    pub rsvd534: u16,
    /// SGL Support (see [`sgls`]).
    pub sgls: u32,
    /// Maximum Number of Allowed Namespaces.
    pub mnan: u32,
    /// Reserved (544-767).
    pub rsvd544: [u8; 224],
    /// NVM Subsystem NVMe Qualified Name, UTF-8, NUL padded.
    pub subnqn: [u8; 256],
    /// Reserved (1024-1791).
    pub rsvd1024: [u8; 768],
    /// NVMe over Fabrics (1792-2047).
    pub nvmof: [u8; 256],
    /// Power State Descriptors 0-31, 32 bytes each.
    pub psd: [[u8; 32]; 32],
    /// Vendor Specific (3072-4095).
    pub vs: [u8; 1024],
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<IdentifyController>() == 4096);
    assert!(offset_of!(IdentifyController, sn) == 4);
    assert!(offset_of!(IdentifyController, mn) == 24);
    assert!(offset_of!(IdentifyController, fr) == 64);
    assert!(offset_of!(IdentifyController, mdts) == 77);
    assert!(offset_of!(IdentifyController, cntlid) == 78);
    assert!(offset_of!(IdentifyController, ver) == 80);
    assert!(offset_of!(IdentifyController, ctratt) == 96);
    assert!(offset_of!(IdentifyController, cntrltype) == 111);
    assert!(offset_of!(IdentifyController, crdt) == 128);
    assert!(offset_of!(IdentifyController, oacs) == 256);
    assert!(offset_of!(IdentifyController, elpe) == 262);
    assert!(offset_of!(IdentifyController, wctemp) == 266);
    assert!(offset_of!(IdentifyController, tnvmcap) == 280);
    assert!(offset_of!(IdentifyController, sanicap) == 328);
    assert!(offset_of!(IdentifyController, pels) == 352);
    assert!(offset_of!(IdentifyController, sqes) == 512);
    assert!(offset_of!(IdentifyController, cqes) == 513);
    assert!(offset_of!(IdentifyController, maxcmd) == 514);
    assert!(offset_of!(IdentifyController, nn) == 516);
    assert!(offset_of!(IdentifyController, oncs) == 520);
    assert!(offset_of!(IdentifyController, vwc) == 525);
    assert!(offset_of!(IdentifyController, awupf) == 528);
    assert!(offset_of!(IdentifyController, sgls) == 536);
    assert!(offset_of!(IdentifyController, subnqn) == 768);
    assert!(offset_of!(IdentifyController, psd) == 2048);
    assert!(offset_of!(IdentifyController, vs) == 3072);
};
// SAFETY: `repr(C)`, integers and integer arrays only, size asserted to be exactly the sum
// of the fields (no padding), every bit pattern valid.
unsafe impl Pod for IdentifyController {}

/// ASCII text of a space- or NUL-padded identify string.
pub fn ascii_field(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).trim_end_matches([' ', '\0']).to_string()
}

/// Fills a space-padded ASCII identify string (truncating).
pub fn set_ascii_field(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    let n = s.len().min(dst.len());
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

impl IdentifyController {
    /// All zero.
    pub fn zeroed() -> Self {
        pod::zeroed()
    }
    /// From the 4096 bytes an Identify (CNS 01h) returned.
    pub fn from_bytes(b: &[u8]) -> Self {
        pod::from_bytes(b)
    }
    /// The 4096 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        pod::as_bytes(self)
    }
    /// Serial number, trimmed.
    pub fn serial(&self) -> String {
        ascii_field(&self.sn)
    }
    /// Model number, trimmed.
    pub fn model(&self) -> String {
        ascii_field(&self.mn)
    }
    /// Firmware revision, trimmed.
    pub fn firmware(&self) -> String {
        ascii_field(&self.fr)
    }
    /// Maximum data transfer size in bytes given CAP.MPSMIN's page size; `None` = no limit.
    pub fn max_transfer_bytes(&self, min_page_size: usize) -> Option<usize> {
        if self.mdts == 0 { None } else { Some(min_page_size << self.mdts) }
    }
    /// Whether SGLs are supported for NVM commands.
    pub fn sgl_supported(&self) -> bool {
        self.sgls & sgls::SUPPORT_MASK != 0
    }
    /// Whether a volatile write cache is present.
    pub fn vwc_present(&self) -> bool {
        self.vwc & 1 != 0
    }
}

impl std::fmt::Debug for IdentifyController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyController")
            .field("vid", &format_args!("{:#06x}", self.vid))
            .field("sn", &self.serial())
            .field("mn", &self.model())
            .field("fr", &self.firmware())
            .field("mdts", &self.mdts)
            .field("nn", &self.nn)
            .field("oncs", &format_args!("{:#x}", self.oncs))
            .field("sgls", &format_args!("{:#x}", self.sgls))
            .field("vwc", &self.vwc)
            .finish_non_exhaustive()
    }
}

/// LBA Format descriptor (Figure 250).
#[repr(C)]
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct LbaFormat {
    /// Metadata Size, bytes per LBA.
    pub ms: u16,
    /// LBA Data Size, log2 bytes (9 = 512 B, 12 = 4 KiB); 0 means the format is not available.
    pub lbads: u8,
    /// Relative Performance in bits 1:0.
    pub rp: u8,
}

impl LbaFormat {
    /// A format of `2^lbads`-byte LBAs without metadata.
    pub const fn new(lbads: u8) -> Self {
        LbaFormat { ms: 0, lbads, rp: 0 }
    }
    /// LBA data size in bytes.
    pub const fn data_size(&self) -> usize {
        1usize << self.lbads
    }
}

/// Identify Namespace data structure (4096 bytes; Figure 249).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyNamespace {
    /// Namespace Size, LBAs.
    pub nsze: u64,
    /// Namespace Capacity, LBAs.
    pub ncap: u64,
    /// Namespace Utilization, LBAs.
    pub nuse: u64,
    /// Namespace Features (bit 0 thin provisioning, bit 2 DAE in error log).
    pub nsfeat: u8,
    /// Number of LBA Formats, 0's based.
    pub nlbaf: u8,
    /// Formatted LBA Size: bits 3:0 format index, bit 4 metadata at end of LBA.
    pub flbas: u8,
    /// Metadata Capabilities.
    pub mc: u8,
    /// End-to-end Data Protection Capabilities.
    pub dpc: u8,
    /// End-to-end Data Protection Type Settings.
    pub dps: u8,
    /// Namespace Multi-path I/O and Namespace Sharing Capabilities.
    pub nmic: u8,
    /// Reservation Capabilities.
    pub rescap: u8,
    /// Format Progress Indicator.
    pub fpi: u8,
    /// Deallocate Logical Block Features: bits 2:0 what a deallocated LBA reads as
    /// (001b zeroes, 010b all ones), bit 3 Write Zeroes may deallocate.
    pub dlfeat: u8,
    /// Namespace Atomic Write Unit Normal.
    pub nawun: u16,
    /// Namespace Atomic Write Unit Power Fail.
    pub nawupf: u16,
    /// Namespace Atomic Compare & Write Unit.
    pub nacwu: u16,
    /// Namespace Atomic Boundary Size Normal.
    pub nabsn: u16,
    /// Namespace Atomic Boundary Offset.
    pub nabo: u16,
    /// Namespace Atomic Boundary Size Power Fail.
    pub nabspf: u16,
    /// Namespace Optimal I/O Boundary.
    pub noiob: u16,
    /// NVM Capacity, bytes (128-bit).
    pub nvmcap: [u8; 16],
    /// Namespace Preferred Write Granularity.
    pub npwg: u16,
    /// Namespace Preferred Write Alignment.
    pub npwa: u16,
    /// Namespace Preferred Deallocate Granularity.
    pub npdg: u16,
    /// Namespace Preferred Deallocate Alignment.
    pub npda: u16,
    /// Namespace Optimal Write Size.
    pub nows: u16,
    /// Reserved (74-91).
    pub rsvd74: [u8; 18],
    /// ANA Group Identifier.
    pub anagrpid: u32,
    /// Reserved (96-98).
    pub rsvd96: [u8; 3],
    /// Namespace Attributes.
    pub nsattr: u8,
    /// NVM Set Identifier.
    pub nvmsetid: u16,
    /// Endurance Group Identifier.
    pub endgid: u16,
    /// Namespace Globally Unique Identifier.
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier.
    pub eui64: [u8; 8],
    /// LBA Format 0-15 Support.
    pub lbaf: [LbaFormat; 16],
    /// Reserved (192-383).
    pub rsvd192: [u8; 192],
    /// Vendor Specific (384-4095).
    pub vs: [u8; 3712],
}

const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(size_of::<LbaFormat>() == 4);
    assert!(size_of::<IdentifyNamespace>() == 4096);
    assert!(offset_of!(IdentifyNamespace, nuse) == 16);
    assert!(offset_of!(IdentifyNamespace, nlbaf) == 25);
    assert!(offset_of!(IdentifyNamespace, flbas) == 26);
    assert!(offset_of!(IdentifyNamespace, dlfeat) == 33);
    assert!(offset_of!(IdentifyNamespace, nvmcap) == 48);
    assert!(offset_of!(IdentifyNamespace, anagrpid) == 92);
    assert!(offset_of!(IdentifyNamespace, nsattr) == 99);
    assert!(offset_of!(IdentifyNamespace, nguid) == 104);
    assert!(offset_of!(IdentifyNamespace, eui64) == 120);
    assert!(offset_of!(IdentifyNamespace, lbaf) == 128);
    assert!(offset_of!(IdentifyNamespace, vs) == 384);
};
// SAFETY: `LbaFormat` is `repr(C)` over u16, u8, u8 with size asserted to be 4 (no padding).
unsafe impl Pod for LbaFormat {}
// SAFETY: `repr(C)`, integers, integer arrays and `LbaFormat` (itself Pod) only; size
// asserted to be the sum of the fields; every bit pattern valid.
unsafe impl Pod for IdentifyNamespace {}

impl IdentifyNamespace {
    /// All zero.
    pub fn zeroed() -> Self {
        pod::zeroed()
    }
    /// From the 4096 bytes an Identify (CNS 00h) returned.
    pub fn from_bytes(b: &[u8]) -> Self {
        pod::from_bytes(b)
    }
    /// The 4096 bytes.
    pub fn as_bytes(&self) -> &[u8] {
        pod::as_bytes(self)
    }
    /// Index of the LBA format in use (FLBAS bits 3:0).
    pub fn format_index(&self) -> usize {
        (self.flbas & 0x0f) as usize
    }
    /// The LBA format in use.
    pub fn current_format(&self) -> LbaFormat {
        self.lbaf[self.format_index()]
    }
    /// LBA data size in bytes of the format in use.
    pub fn lba_size(&self) -> usize {
        self.current_format().data_size()
    }
    /// What a deallocated or never-written LBA reads as (DLFEAT bits 2:0).
    pub fn deallocated_read_value(&self) -> DeallocatedRead {
        match self.dlfeat & 7 {
            1 => DeallocatedRead::Zeroes,
            2 => DeallocatedRead::Ones,
            _ => DeallocatedRead::NotReported,
        }
    }
}

impl std::fmt::Debug for IdentifyNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyNamespace")
            .field("nsze", &self.nsze)
            .field("ncap", &self.ncap)
            .field("nuse", &self.nuse)
            .field("nlbaf", &self.nlbaf)
            .field("flbas", &self.flbas)
            .field("lba_size", &self.lba_size())
            .field("dlfeat", &self.dlfeat)
            .finish_non_exhaustive()
    }
}

/// What reading a deallocated logical block returns (DLFEAT).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DeallocatedRead {
    /// Not reported: the host may not assume anything.
    NotReported,
    /// All bytes 00h.
    Zeroes,
    /// All bytes FFh.
    Ones,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_controller_fields_sit_at_spec_offsets() {
        let mut id = IdentifyController::zeroed();
        id.mdts = 5;
        id.nn = 0x0102_0304;
        id.sgls = sgls::SUPPORTED_NO_ALIGN | sgls::BIT_BUCKET;
        set_ascii_field(&mut id.sn, "SN123");
        let b = id.as_bytes();
        assert_eq!(b[77], 5);
        assert_eq!(&b[516..520], &[4, 3, 2, 1]);
        assert_eq!(b[536], 1);
        assert_eq!(b[538], 1);
        assert_eq!(&b[4..10], b"SN123 ");
        let back = IdentifyController::from_bytes(b);
        assert_eq!(back.serial(), "SN123");
        assert_eq!(back.max_transfer_bytes(4096), Some(128 * 1024));
        assert!(back.sgl_supported());
    }

    #[test]
    fn identify_namespace_lba_format_decodes() {
        let mut ns = IdentifyNamespace::zeroed();
        ns.nlbaf = 1;
        ns.lbaf[0] = LbaFormat::new(9);
        ns.lbaf[1] = LbaFormat::new(12);
        ns.flbas = 1;
        ns.dlfeat = 0x09;
        assert_eq!(ns.lba_size(), 4096);
        assert_eq!(ns.as_bytes()[128 + 4 + 2], 12);
        assert_eq!(ns.deallocated_read_value(), DeallocatedRead::Zeroes);
    }
}
