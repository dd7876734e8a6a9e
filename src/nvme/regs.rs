//! Controller registers in BAR0 (NVMe 1.4 §3.1) and the doorbell layout (§3.1.24, §3.1.25).

use super::bitfield;

/// Byte offsets of the controller registers in BAR0 (NVMe 1.4 Figure 78).
pub mod offset {
    /// Controller Capabilities, 64-bit.
    pub const CAP: usize = 0x00;
    /// Version.
    pub const VS: usize = 0x08;
    /// Interrupt Mask Set.
    pub const INTMS: usize = 0x0C;
    /// Interrupt Mask Clear.
    pub const INTMC: usize = 0x10;
    /// Controller Configuration.
    pub const CC: usize = 0x14;
    /// Controller Status.
    pub const CSTS: usize = 0x1C;
    /// NVM Subsystem Reset.
    pub const NSSR: usize = 0x20;
    /// Admin Queue Attributes.
    pub const AQA: usize = 0x24;
    /// Admin Submission Queue base address, 64-bit.
    pub const ASQ: usize = 0x28;
    /// Admin Completion Queue base address, 64-bit.
    pub const ACQ: usize = 0x30;
    /// Controller Memory Buffer Location.
    pub const CMBLOC: usize = 0x38;
    /// Controller Memory Buffer Size.
    pub const CMBSZ: usize = 0x3C;
    /// First doorbell (SQ 0 tail).
    pub const DOORBELLS: usize = 0x1000;
}

/// The value whose write to NSSR starts an NVM Subsystem Reset ("NVMe", §3.1.7).
pub const NSSR_RESET_VALUE: u32 = 0x4E56_4D65;

/// Offset of the Submission Queue `qid` Tail Doorbell (§3.1.24).
pub const fn sq_tail_doorbell(qid: u16, dstrd: u8) -> usize {
    offset::DOORBELLS + (2 * qid as usize) * (4usize << dstrd)
}

/// Offset of the Completion Queue `qid` Head Doorbell (§3.1.25).
pub const fn cq_head_doorbell(qid: u16, dstrd: u8) -> usize {
    offset::DOORBELLS + (2 * qid as usize + 1) * (4usize << dstrd)
}

/// Which doorbell an offset in BAR0 addresses, if any: `(qid, is_completion_queue)`.
pub const fn decode_doorbell(off: usize, dstrd: u8) -> Option<(u16, bool)> {
    if off < offset::DOORBELLS {
        return None;
    }
    let shift = 2 + dstrd as u32;
    let rel = off - offset::DOORBELLS;
    if rel & ((1 << shift) - 1) != 0 || rel >> shift > 2 * u16::MAX as usize + 1 {
        return None;
    }
    let idx = rel >> shift;
    Some(((idx / 2) as u16, idx % 2 == 1))
}

/// Controller Capabilities (CAP, §3.1.1).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Cap(pub u64);

impl Cap {
    bitfield!(u64; /// Maximum Queue Entries Supported, 0's based.
        mqes, with_mqes: u16, 0, 16);
    bitfield!(u64; /// Contiguous Queues Required.
        cqr, with_cqr: bool, 16);
    bitfield!(u64; /// Arbitration Mechanism Supported (bit 0: WRR with urgent, bit 1: vendor).
        ams, with_ams: u8, 17, 2);
    bitfield!(u64; /// Timeout, in 500 ms units: worst-case time to CSTS.RDY.
        to, with_to: u8, 24, 8);
    bitfield!(u64; /// Doorbell Stride: doorbells are `4 << DSTRD` bytes apart.
        dstrd, with_dstrd: u8, 32, 4);
    bitfield!(u64; /// NVM Subsystem Reset Supported.
        nssrs, with_nssrs: bool, 36);
    bitfield!(u64; /// Command Sets Supported (bit 0: NVM, bit 6: I/O command sets, bit 7: admin only).
        css, with_css: u8, 37, 8);
    bitfield!(u64; /// Boot Partition Support.
        bps, with_bps: bool, 45);
    bitfield!(u64; /// Memory Page Size Minimum: `2 ^ (12 + MPSMIN)` bytes.
        mpsmin, with_mpsmin: u8, 48, 4);
    bitfield!(u64; /// Memory Page Size Maximum: `2 ^ (12 + MPSMAX)` bytes.
        mpsmax, with_mpsmax: u8, 52, 4);
    bitfield!(u64; /// Persistent Memory Region Supported.
        pmrs, with_pmrs: bool, 56);
    bitfield!(u64; /// Controller Memory Buffer Supported.
        cmbs, with_cmbs: bool, 57);

    /// Largest queue size in entries (MQES + 1).
    pub const fn max_queue_entries(self) -> u32 {
        self.mqes() as u32 + 1
    }

    /// CAP.TO in milliseconds (0 is read as 500 ms, the smallest the field can express).
    pub const fn timeout_ms(self) -> u64 {
        let to = self.to() as u64;
        if to == 0 { 500 } else { to * 500 }
    }

    /// Smallest memory page size in bytes.
    pub const fn min_page_size(self) -> usize {
        1usize << (12 + self.mpsmin())
    }
}

/// Version (VS, §3.1.2).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Vs(pub u32);

impl Vs {
    bitfield!(u32; /// Tertiary version.
        ter, with_ter: u8, 0, 8);
    bitfield!(u32; /// Minor version.
        mnr, with_mnr: u8, 8, 8);
    bitfield!(u32; /// Major version.
        mjr, with_mjr: u16, 16, 16);
}

impl std::fmt::Display for Vs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.mjr(), self.mnr(), self.ter())
    }
}

/// Shutdown Notification in CC.SHN (§3.1.5).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownNotification {
    /// No notification; no effect.
    None,
    /// Normal shutdown notification.
    Normal,
    /// Abrupt shutdown notification.
    Abrupt,
}

/// Shutdown Status in CSTS.SHST (§3.1.6).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownStatus {
    /// Normal operation.
    Normal,
    /// Shutdown processing occurring.
    Occurring,
    /// Shutdown processing complete.
    Complete,
    /// Reserved encoding (11b).
    Reserved,
}

/// Controller Configuration (CC, §3.1.5).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Cc(pub u32);

impl Cc {
    bitfield!(u32; /// Enable.
        en, with_en: bool, 0);
    bitfield!(u32; /// I/O Command Set Selected (000b: NVM).
        css, with_css: u8, 4, 3);
    bitfield!(u32; /// Memory Page Size: `2 ^ (12 + MPS)` bytes.
        mps, with_mps: u8, 7, 4);
    bitfield!(u32; /// Arbitration Mechanism Selected (000b RR, 001b WRR with urgent).
        ams, with_ams: u8, 11, 3);
    bitfield!(u32; /// Shutdown Notification, raw.
        shn_raw, with_shn_raw: u8, 14, 2);
    bitfield!(u32; /// I/O Submission Queue Entry Size: `2 ^ IOSQES` bytes.
        iosqes, with_iosqes: u8, 16, 4);
    bitfield!(u32; /// I/O Completion Queue Entry Size: `2 ^ IOCQES` bytes.
        iocqes, with_iocqes: u8, 20, 4);

    /// Shutdown Notification.
    pub const fn shn(self) -> ShutdownNotification {
        match self.shn_raw() {
            0 => ShutdownNotification::None,
            1 => ShutdownNotification::Normal,
            _ => ShutdownNotification::Abrupt,
        }
    }

    /// Memory page size in bytes.
    pub const fn page_size(self) -> usize {
        1usize << (12 + self.mps())
    }
}

/// Controller Status (CSTS, §3.1.6).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Csts(pub u32);

impl Csts {
    bitfield!(u32; /// Ready.
        rdy, with_rdy: bool, 0);
    bitfield!(u32; /// Controller Fatal Status.
        cfs, with_cfs: bool, 1);
    bitfield!(u32; /// Shutdown Status, raw.
        shst_raw, with_shst_raw: u8, 2, 2);
    bitfield!(u32; /// NVM Subsystem Reset Occurred.
        nssro, with_nssro: bool, 4);
    bitfield!(u32; /// Processing Paused.
        pp, with_pp: bool, 5);

    /// Shutdown Status.
    pub const fn shst(self) -> ShutdownStatus {
        match self.shst_raw() {
            0 => ShutdownStatus::Normal,
            1 => ShutdownStatus::Occurring,
            2 => ShutdownStatus::Complete,
            _ => ShutdownStatus::Reserved,
        }
    }

    /// All ones: what a read returns when the function is gone or powered off.
    pub const fn is_all_ones(self) -> bool {
        self.0 == u32::MAX
    }

    /// The controller processes no command: not ready (disabled, or its reset under way),
    /// failed (CFS), or gone.
    pub const fn halted(self) -> bool {
        self.is_all_ones() || self.cfs() || !self.rdy()
    }
}

/// Admin Queue Attributes (AQA, §3.1.8).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Aqa(pub u32);

impl Aqa {
    bitfield!(u32; /// Admin Submission Queue Size, 0's based.
        asqs, with_asqs: u16, 0, 12);
    bitfield!(u32; /// Admin Completion Queue Size, 0's based.
        acqs, with_acqs: u16, 16, 12);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fields_decode_qemu_value() {
        // CAP as read from QEMU's NVMe controller.
        let cap = Cap(0x0040_1820_0f01_07ff);
        assert_eq!(cap.mqes(), 0x7ff);
        assert!(cap.cqr());
        assert_eq!(cap.to(), 0x0f);
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.dstrd(), 0);
        assert_eq!(cap.css(), 0xc1, "NVM, I/O command sets, admin only");
        assert_eq!(cap.mpsmin(), 0);
        assert_eq!(cap.mpsmax(), 4);
    }

    #[test]
    fn cc_setters_round_trip_and_mask_excess_bits() {
        let cc = Cc(0).with_en(true).with_iosqes(6).with_iocqes(4).with_mps(0).with_shn_raw(1);
        assert_eq!(cc.0, 0x0046_4001);
        assert_eq!(cc.shn(), ShutdownNotification::Normal);
        assert_eq!(Cc(0).with_css(0xff).css(), 7);
        assert!(!cc.with_en(false).en());
    }

    #[test]
    fn doorbell_offsets_follow_dstrd() {
        assert_eq!(sq_tail_doorbell(0, 0), 0x1000);
        assert_eq!(cq_head_doorbell(0, 0), 0x1004);
        assert_eq!(sq_tail_doorbell(1, 0), 0x1008);
        assert_eq!(cq_head_doorbell(3, 2), 0x1000 + 7 * 16);
        assert_eq!(decode_doorbell(0x1000 + 7 * 16, 2), Some((3, true)));
        assert_eq!(decode_doorbell(0x1002, 0), None);
        assert_eq!(decode_doorbell(0x0fff, 0), None);
    }
}
