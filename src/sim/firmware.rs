//! Firmware slots: Firmware Image Download (NVMe 1.4 §5.11), Firmware Commit (§5.12), the
//! Firmware Slot Information log page (§5.14.1.3) and activation at a Controller Level Reset.
//!
//! Choices where the specification leaves room, written down:
//! - Three slots; slot 1 is read-only and holds the simulator's own revision.
//! - FWUG is 4 KiB: OFST must be a multiple of 4 KiB (else Invalid Field); a piece shorter
//!   than that can therefore only end the image.
//! - A piece that overlaps one already downloaded is refused with Overlapping Range (01/14,
//!   Figure 109); pieces may come in any order, and a commit of an image with a hole (or no
//!   image) is Invalid Firmware Image (01/07).
//! - Any image is valid. Its revision is its first 8 bytes when they are printable ASCII,
//!   else `FW` and six hex digits of a hash of the image.
//! - Activation happens at the next Controller Level Reset (CC.EN 1 -> 0, Function Level
//!   Reset, NVM Subsystem Reset, D3hot -> D0, power cycle), which is what commit actions
//!   001b and 010b ask for: they complete successfully. 0Bh and 10h are for images that need
//!   a stronger reset than that, which these never do. Activation without reset (FRMW bit
//!   4) is not supported, so action 011b commits and completes with 01/11 (Firmware
//!   Activation Requires Controller Level Reset): the image activates at the next one.
//! - Downloaded pieces not yet committed are discarded by a Controller Level Reset.
//! - Slots are non-volatile: they survive power cycles.

use std::collections::BTreeMap;

use crate::nvme::Status;

/// Number of firmware slots (1-7).
pub(crate) const SLOTS: u8 = 3;
/// Firmware Update Granularity, 4 KiB units.
pub(crate) const FWUG: u8 = 1;
/// Largest image the controller takes, bytes.
const MAX_IMAGE: usize = 16 << 20;

/// The firmware of the controller: slots, what runs, what a download assembled.
pub(crate) struct Firmware {
    /// Revision in each slot (index 0 is slot 1); `None`: empty.
    slots: [Option<[u8; 8]>; SLOTS as usize],
    /// Slot the running firmware came from (1-based).
    active: u8,
    /// Slot to activate at the next Controller Level Reset.
    next: Option<u8>,
    /// Revision running now (Identify Controller FR).
    running: [u8; 8],
    /// Image pieces downloaded since the last commit or reset.
    image: Vec<u8>,
    /// Downloaded dword ranges: start -> end (exclusive).
    ranges: BTreeMap<u64, u64>,
}

impl Firmware {
    /// Slot 1 holds and runs `revision`.
    pub(crate) fn new(revision: [u8; 8]) -> Self {
        let mut slots = [None; SLOTS as usize];
        slots[0] = Some(revision);
        Firmware { slots, active: 1, next: None, running: revision, image: Vec::new(), ranges: BTreeMap::new() }
    }

    /// Identify Controller FRMW: slot 1 read-only (bit 0), number of slots (3:1); no
    /// activation without reset (bit 4).
    pub(crate) fn frmw() -> u8 {
        SLOTS << 1 | 1
    }

    /// The revision running now.
    pub(crate) fn running(&self) -> [u8; 8] {
        self.running
    }

    /// Checks a Firmware Image Download of `dwords` dwords at dword `offset` before its
    /// data is transferred; returns the byte range it fills.
    pub(crate) fn check_download(&self, dwords: u64, offset: u64) -> Result<std::ops::Range<usize>, Status> {
        let invalid = Status::INVALID_FIELD.with_dnr(true);
        let end = offset + dwords;
        if !(offset * 4).is_multiple_of(FWUG as u64 * 4096) || end * 4 > MAX_IMAGE as u64 {
            return Err(invalid);
        }
        // The nearest range starting before `end` is the only one that can overlap.
        if let Some((_, &e)) = self.ranges.range(..end).next_back()
            && e > offset
        {
            return Err(Status::OVERLAPPING_RANGE.with_dnr(true));
        }
        Ok(offset as usize * 4..end as usize * 4)
    }

    /// Stores a downloaded piece (checked by [`Firmware::check_download`]).
    pub(crate) fn store(&mut self, at: std::ops::Range<usize>, data: &[u8]) {
        if self.image.len() < at.end {
            self.image.resize(at.end, 0);
        }
        self.image[at.clone()].copy_from_slice(data);
        self.ranges.insert(at.start as u64 / 4, at.end as u64 / 4);
    }

    /// Firmware Commit with CDW10; Ok: success, Err: the completion status (01/11 means
    /// committed, activation at the next Controller Level Reset).
    pub(crate) fn commit(&mut self, cdw10: u32) -> Result<(), Status> {
        let (fs, ca, bpid) = ((cdw10 & 7) as u8, ((cdw10 >> 3) & 7) as u8, cdw10 >> 31);
        if ca > 3 || bpid != 0 {
            // Boot partitions (110b, 111b) are not supported; 100b and 101b are reserved.
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        if fs > SLOTS {
            return Err(Status::INVALID_FIRMWARE_SLOT.with_dnr(true));
        }
        let replace = ca != 2;
        let new_image = self.assembled();
        let slot = match fs {
            0 if replace => self.choose_slot(),
            0 => self.next.unwrap_or(self.active),
            s => s,
        };
        if replace && new_image.is_some() && slot == 1 {
            return Err(Status::INVALID_FIRMWARE_SLOT.with_dnr(true));
        }
        match new_image {
            Some(rev) if replace => {
                self.slots[slot as usize - 1] = Some(rev);
                self.image.clear();
                self.ranges.clear();
            }
            // 011b without a new image activates what the slot holds (Figure 111).
            _ if ca == 0 || ca == 1 || self.slots[slot as usize - 1].is_none() => {
                return Err(Status::INVALID_FIRMWARE_IMAGE.with_dnr(true));
            }
            _ => {}
        }
        match ca {
            0 => Ok(()),
            1 | 2 => {
                self.next = Some(slot);
                Ok(())
            }
            _ => {
                self.next = Some(slot);
                Err(Status::FW_NEEDS_RESET)
            }
        }
    }

    /// A Controller Level Reset: the slot chosen for activation becomes the running one and
    /// pieces not committed are dropped. Returns whether the running revision changed.
    pub(crate) fn controller_reset(&mut self) -> bool {
        self.image.clear();
        self.ranges.clear();
        if let Some(s) = self.next.take() {
            self.active = s;
        }
        let rev = self.slots[self.active as usize - 1].unwrap_or(self.running);
        std::mem::replace(&mut self.running, rev) != rev
    }

    /// Firmware Slot Information log page (Figure 200), 512 bytes.
    pub(crate) fn slot_log(&self) -> Vec<u8> {
        let mut v = vec![0u8; 512];
        // AFI: active slot (2:0), slot activated at the next Controller Level Reset (6:4).
        v[0] = self.active | self.next.unwrap_or(0) << 4;
        for (i, s) in self.slots.iter().enumerate() {
            if let Some(rev) = s {
                v[8 + i * 8..16 + i * 8].copy_from_slice(rev);
            }
        }
        v
    }

    /// The revision of the downloaded image if it is complete: dwords 0 to its end without
    /// a hole.
    fn assembled(&self) -> Option<[u8; 8]> {
        let mut at = 0;
        for (&s, &e) in &self.ranges {
            if s != at {
                return None;
            }
            at = e;
        }
        (at > 0).then(|| revision_of(&self.image))
    }

    /// Slot 0 on a replacing commit: the first empty writable slot, else the first writable
    /// one that is not running.
    fn choose_slot(&self) -> u8 {
        let writable = 2..=SLOTS;
        writable.clone().find(|&s| self.slots[s as usize - 1].is_none()).or_else(|| writable.clone().find(|&s| s != self.active)).unwrap_or(SLOTS)
    }
}

/// The revision of an image: its first 8 bytes when printable ASCII, else a hash.
fn revision_of(image: &[u8]) -> [u8; 8] {
    let head = &image[..image.len().min(8)];
    let mut rev = [b' '; 8];
    if head.len() == 8 && head.iter().all(|b| (0x21..0x7f).contains(b)) {
        rev.copy_from_slice(head);
        return rev;
    }
    // FNV-1a: the same image gets the same revision.
    let h = image.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    rev.copy_from_slice(format!("FW{:06X}", h & 0xff_ffff).as_bytes());
    rev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_refused_and_a_hole_makes_the_image_invalid() {
        let mut f = Firmware::new(*b"1.0.0   ");
        let r = f.check_download(1024, 1024).unwrap();
        f.store(r, &[7u8; 4096]);
        assert_eq!(f.check_download(2048, 0).unwrap_err().code(), Status::OVERLAPPING_RANGE.code());
        assert_eq!(f.check_download(1, 1024).unwrap_err().code(), Status::OVERLAPPING_RANGE.code());
        assert_eq!(f.check_download(1, 3).unwrap_err().code(), Status::INVALID_FIELD.code());
        assert_eq!(f.commit(2 | 1 << 3).unwrap_err().code(), Status::INVALID_FIRMWARE_IMAGE.code());
        let r = f.check_download(1024, 0).unwrap();
        let mut piece = vec![0u8; 4096];
        piece[..8].copy_from_slice(b"NEWREV01");
        f.store(r, &piece);
        f.commit(2 | 1 << 3).unwrap();
        assert_eq!(f.slot_log()[0], 1 | 2 << 4);
        assert!(f.controller_reset());
        assert_eq!(&f.running(), b"NEWREV01");
    }
}
