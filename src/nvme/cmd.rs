//! Builders for the commands nvplan sends, named after the specification. They fill the
//! command dwords only; data pointers and the command identifier are the driver's job.

use super::features::Select;
use super::log::GetLogPage;
use super::opcode::{AdminOpcode, NvmOpcode};
use super::sqe::Sqe;

/// Force Unit Access flag in the upper half of CDW12 (bit 30).
pub const IO_FLAG_FUA: u16 = 1 << 14;
/// Limited Retry flag in the upper half of CDW12 (bit 31).
pub const IO_FLAG_LIMITED_RETRY: u16 = 1 << 15;

fn admin(op: AdminOpcode, nsid: u32) -> Sqe {
    Sqe::new(op.code(), nsid)
}

fn lba_cmd(op: NvmOpcode, nsid: u32, slba: u64, nlb: u32) -> Sqe {
    let mut s = Sqe::new(op.code(), nsid);
    s.set_slba(slba);
    s.set_nlb(nlb);
    s
}

/// Identify (§5.15) with the given CNS.
pub fn identify(cns: u8, nsid: u32) -> Sqe {
    let mut s = admin(AdminOpcode::Identify, nsid);
    s.dw[10] = cns as u32;
    s
}

/// Get Log Page (§5.14) of `bytes` bytes from `offset`.
pub fn get_log_page(lid: u8, nsid: u32, bytes: usize, rae: bool, offset: u64) -> Sqe {
    let mut s = admin(AdminOpcode::GetLogPage, nsid);
    let c = GetLogPage::to_cdws(lid, bytes, rae, offset);
    s.dw[10..14].copy_from_slice(&c);
    s
}

/// Set Features (§5.21) with CDW11 = `value`.
pub fn set_features(fid: u8, value: u32, save: bool) -> Sqe {
    let mut s = admin(AdminOpcode::SetFeatures, 0);
    s.dw[10] = fid as u32 | (save as u32) << 31;
    s.dw[11] = value;
    s
}

/// Get Features (§5.21) with a select value.
pub fn get_features(fid: u8, sel: Select) -> Sqe {
    let mut s = admin(AdminOpcode::GetFeatures, 0);
    let sel = match sel {
        Select::Current => 0,
        Select::Default => 1,
        Select::Saved => 2,
        Select::Capabilities => 3,
        Select::Reserved(v) => v as u32,
    };
    s.dw[10] = fid as u32 | sel << 8;
    s
}

/// Create I/O Completion Queue (§5.3): physically contiguous at `prp1`.
pub fn create_io_cq(qid: u16, entries: u32, prp1: u64, iv: u16, ien: bool) -> Sqe {
    let mut s = admin(AdminOpcode::CreateIoCq, 0);
    s.set_prp1(prp1);
    s.dw[10] = qid as u32 | (entries.wrapping_sub(1) & 0xffff) << 16;
    s.dw[11] = 1 | (ien as u32) << 1 | (iv as u32) << 16;
    s
}

/// Create I/O Submission Queue (§5.4): physically contiguous at `prp1`, completing into
/// `cqid`, with priority class `prio` (0 urgent .. 3 low).
pub fn create_io_sq(qid: u16, entries: u32, prp1: u64, cqid: u16, prio: u8) -> Sqe {
    let mut s = admin(AdminOpcode::CreateIoSq, 0);
    s.set_prp1(prp1);
    s.dw[10] = qid as u32 | (entries.wrapping_sub(1) & 0xffff) << 16;
    s.dw[11] = 1 | ((prio as u32) & 3) << 1 | (cqid as u32) << 16;
    s
}

/// Delete I/O Submission Queue (§5.6).
pub fn delete_io_sq(qid: u16) -> Sqe {
    let mut s = admin(AdminOpcode::DeleteIoSq, 0);
    s.dw[10] = qid as u32;
    s
}

/// Delete I/O Completion Queue (§5.5).
pub fn delete_io_cq(qid: u16) -> Sqe {
    let mut s = admin(AdminOpcode::DeleteIoCq, 0);
    s.dw[10] = qid as u32;
    s
}

/// Abort (§5.1) of command `cid` on `sqid`.
pub fn abort(sqid: u16, cid: u16) -> Sqe {
    let mut s = admin(AdminOpcode::Abort, 0);
    s.dw[10] = sqid as u32 | (cid as u32) << 16;
    s
}

/// Asynchronous Event Request (§5.2).
pub fn async_event_request() -> Sqe {
    admin(AdminOpcode::AsyncEventRequest, 0)
}

/// Format NVM (§5.23): LBA format index and Secure Erase Settings.
pub fn format_nvm(nsid: u32, lbaf: u8, ses: u8) -> Sqe {
    let mut s = admin(AdminOpcode::FormatNvm, nsid);
    s.dw[10] = (lbaf as u32 & 0xf) | (ses as u32 & 7) << 9;
    s
}

/// Sanitize (§5.24) with the given action (2: block erase).
pub fn sanitize(action: u8) -> Sqe {
    let mut s = admin(AdminOpcode::Sanitize, 0);
    s.dw[10] = action as u32 & 7;
    s
}

/// Firmware Image Download (§5.11): `dwords` dwords (at least 1) at dword `offset` of the image.
pub fn firmware_download(dwords: u32, offset: u32) -> Sqe {
    let mut s = admin(AdminOpcode::FirmwareDownload, 0);
    s.dw[10] = dwords.saturating_sub(1);
    s.dw[11] = offset;
    s
}

/// Firmware Commit (§5.12): firmware slot (0: the controller chooses) and commit action.
pub fn firmware_commit(slot: u8, action: u8) -> Sqe {
    let mut s = admin(AdminOpcode::FirmwareCommit, 0);
    s.dw[10] = (slot as u32 & 7) | (action as u32 & 7) << 3;
    s
}

/// Device Self-test (§5.8): Self-test Code 1h short, 2h extended, Fh abort.
pub fn device_self_test(nsid: u32, code: u8) -> Sqe {
    let mut s = admin(AdminOpcode::DeviceSelfTest, nsid);
    s.dw[10] = code as u32 & 0xf;
    s
}

/// Read (§6.9).
pub fn read(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_cmd(NvmOpcode::Read, nsid, slba, nlb)
}

/// Write (§6.15).
pub fn write(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_cmd(NvmOpcode::Write, nsid, slba, nlb)
}

/// Compare (§6.2).
pub fn compare(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_cmd(NvmOpcode::Compare, nsid, slba, nlb)
}

/// Write Zeroes (§6.17).
pub fn write_zeroes(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_cmd(NvmOpcode::WriteZeroes, nsid, slba, nlb)
}

/// Write Uncorrectable (§6.16).
pub fn write_uncorrectable(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_cmd(NvmOpcode::WriteUncorrectable, nsid, slba, nlb)
}

/// Verify (NVM Command Set §3.3.4).
pub fn verify(nsid: u32, slba: u64, nlb: u32) -> Sqe {
    lba_cmd(NvmOpcode::Verify, nsid, slba, nlb)
}

/// Flush (§6.8); NSID FFFFFFFFh flushes every namespace.
pub fn flush(nsid: u32) -> Sqe {
    Sqe::new(NvmOpcode::Flush.code(), nsid)
}

/// Dataset Management (§6.7) over `ranges` ranges (the range list is the data buffer),
/// with the Deallocate attribute.
pub fn dsm_deallocate(nsid: u32, ranges: u32) -> Sqe {
    let mut s = Sqe::new(NvmOpcode::DatasetManagement.code(), nsid);
    s.dw[10] = ranges.wrapping_sub(1) & 0xff;
    s.dw[11] = 1 << 2;
    s
}

/// Encodes one Dataset Management range (16 bytes, Figure 364).
pub fn dsm_range(slba: u64, nlb: u32) -> [u8; 16] {
    let mut r = [0u8; 16];
    r[4..8].copy_from_slice(&nlb.to_le_bytes());
    r[8..16].copy_from_slice(&slba.to_le_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_creation_dwords_follow_spec() {
        let cq = create_io_cq(3, 128, 0x1000, 0, false);
        assert_eq!(cq.dw[10], 3 | 127 << 16);
        assert_eq!(cq.dw[11], 1);
        let sq = create_io_sq(3, 128, 0x2000, 3, 2);
        assert_eq!(sq.dw[11], 1 | 2 << 1 | 3 << 16);
        assert_eq!(sq.opcode(), 0x01);
    }

    #[test]
    fn io_builders_set_lba_and_zero_based_count() {
        let r = read(1, 0x1_0000_0000, 8);
        assert_eq!((r.dw[10], r.dw[11], r.dw[12]), (0, 1, 7));
        let d = dsm_deallocate(1, 2);
        assert_eq!((d.dw[10], d.dw[11]), (1, 4));
        assert_eq!(&dsm_range(5, 9)[4..8], &9u32.to_le_bytes());
        assert_eq!(format_nvm(1, 1, 1).dw[10], 1 | 1 << 9);
    }
}
