//! What a verifying writer puts in each LBA, and how a read checks it (see the parent
//! module): the LBA number at the head, a trailer with the CRC, and a body from a pattern
//! pool.

use serde::Serialize;

use super::{GEN_FIRST, GEN_LAST, HEAD, TRAILER, UNCORRECTABLE, UNKNOWN, VerifyTable, ZEROES, is_gen};
use crate::util::rng::Rng;

/// Marker byte of a trailer.
const MAGIC: u8 = 0xA5;
/// Bytes of each pattern pool.
const POOL_BYTES: usize = 4 << 20;

/// A data pattern, generated once and shared by every worker that uses it.
#[derive(Debug)]
pub struct PatternPool {
    /// Index in the table's registry (written into trailers).
    pub id: u16,
    /// Pattern type.
    pub ptype: u32,
    /// Pattern value.
    pub pvalue: u32,
    lba_size: usize,
    data: Vec<u8>,
    /// CRC-32 of the body (all but the head and the trailer) of each LBA-sized slice.
    body_crc: Vec<u32>,
}

impl PatternPool {
    pub(super) fn new(id: u16, ptype: u32, pvalue: u32, lba_size: usize) -> Self {
        let mut data = vec![0u8; POOL_BYTES.max(lba_size)];
        fill_pattern(ptype, pvalue, lba_size, &mut data);
        let body_crc = data.chunks_exact(lba_size).map(|c| crc32fast::hash(&c[HEAD..lba_size - TRAILER])).collect();
        PatternPool { id, ptype, pvalue, lba_size, data, body_crc }
    }
    /// LBA-sized slices in the pool.
    pub fn slots(&self) -> usize {
        self.body_crc.len()
    }
    /// The LBA-sized slice `k` (pattern only, no trailer).
    pub fn slice(&self, k: usize) -> &[u8] {
        &self.data[k * self.lba_size..(k + 1) * self.lba_size]
    }
}

/// Fills `buf` with a PyNVMe pattern: `ptype` 0 (zeroes, or all ones if `pvalue` is not
/// 0), 32 (`pvalue` repeated as a little-endian dword), 0xBEEF (the first `pvalue` % of
/// every LBA random, the rest zero: `pvalue` sets the compressibility; the random bytes
/// are the same on every run), 0x1234 / 0x4321 (16-bit counter counting up / down from
/// `pvalue`).
pub fn fill_pattern(ptype: u32, pvalue: u32, lba_size: usize, buf: &mut [u8]) {
    match ptype {
        0 => buf.fill(if pvalue == 0 { 0 } else { 0xff }),
        32 => {
            let b = pvalue.to_le_bytes();
            for (i, x) in buf.iter_mut().enumerate() {
                *x = b[i % 4];
            }
        }
        0x1234 | 0x4321 => {
            let mut v = pvalue as u16;
            for c in buf.chunks_mut(2) {
                let b = v.to_le_bytes();
                c.copy_from_slice(&b[..c.len()]);
                v = if ptype == 0x1234 { v.wrapping_add(1) } else { v.wrapping_sub(1) };
            }
        }
        _ => {
            // Seeded by the pattern value so the pool is the same on every run.
            let mut rng = Rng::new(0xBEEF_0000 + pvalue as u64);
            let random = lba_size * pvalue.min(100) as usize / 100;
            for lba in buf.chunks_mut(lba_size) {
                let n = random.min(lba.len());
                rng.fill(&mut lba[..n]);
                lba[n..].fill(0);
            }
        }
    }
}

/// Why a block read back does not match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MiscompareKind {
    /// The block's CRC does not match: bytes were corrupted.
    Corrupted,
    /// A valid block of another LBA: a misdirected write (or read).
    WrongLba,
    /// A valid block of this LBA from another write: a lost or stale write.
    Stale,
    /// Zeroes were expected (after Write Zeroes or deallocation).
    NotZero,
    /// The LBA was made uncorrectable, but the read succeeded.
    UncorrectableReadable,
    /// No recognisable block where one was expected (e.g. zeroes or foreign data).
    Unrecognized,
}

/// A miscompare, with what was expected and what was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Miscompare {
    /// The LBA.
    pub lba: u64,
    /// What kind.
    pub kind: MiscompareKind,
    /// The state the table expected (generation, or 0/1/2 for unknown/zeroes/uncorrectable).
    pub expected: u8,
    /// Generation found in the block's trailer.
    pub found_gen: Option<u8>,
    /// LBA found in the block's trailer.
    pub found_lba: Option<u64>,
    /// Serial number of the write that produced the block found (worker << 48 | count).
    pub found_serial: Option<u64>,
    /// First byte of the block that differs from what was expected.
    pub first_diff: Option<usize>,
}

/// Writes the head (the LBA number) and the trailer of one LBA in a write buffer whose
/// body is pool slice `k`.
///
/// # Safety
/// `block` must point to `pool.lba_size` writable bytes of a buffer no command is using.
#[inline]
pub unsafe fn stamp(block: *mut u8, lba: u64, serial: u64, pool: &PatternPool, k: usize, gen_: u8) {
    let l = pool.lba_size;
    // SAFETY: caller guarantees `l` (at least 512) writable bytes at `block`.
    unsafe { std::ptr::copy_nonoverlapping(lba.to_le_bytes().as_ptr(), block, HEAD) };
    let mut t = [0u8; TRAILER];
    t[0..8].copy_from_slice(&lba.to_le_bytes());
    t[8..16].copy_from_slice(&serial.to_le_bytes());
    t[16..20].copy_from_slice(&(k as u32).to_le_bytes());
    t[20..22].copy_from_slice(&pool.id.to_le_bytes());
    t[22] = gen_;
    t[23] = MAGIC;
    let mut h = crc32fast::Hasher::new_with_initial_len(pool.body_crc[k], (l - TRAILER - HEAD) as u64);
    h.update(&t[..TRAILER - 4]);
    let crc = h.finalize();
    t[TRAILER - 4..].copy_from_slice(&crc.to_le_bytes());
    // SAFETY: caller guarantees `l` writable bytes at `block`.
    unsafe { std::ptr::copy_nonoverlapping(t.as_ptr(), block.add(l - TRAILER), TRAILER) };
}

struct Trailer {
    lba: u64,
    serial: u64,
    k: u32,
    pattern: u16,
    gen_: u8,
    magic: u8,
    crc: u32,
}

fn trailer(block: &[u8]) -> Trailer {
    let t = &block[block.len() - TRAILER..];
    let u64_at = |o: usize| u64::from_le_bytes(t[o..o + 8].try_into().expect("8 bytes"));
    Trailer {
        lba: u64_at(0),
        serial: u64_at(8),
        k: u32::from_le_bytes(t[16..20].try_into().expect("4 bytes")),
        pattern: u16::from_le_bytes([t[20], t[21]]),
        gen_: t[22],
        magic: t[23],
        crc: u32::from_le_bytes(t[TRAILER - 4..].try_into().expect("4 bytes")),
    }
}

/// Checks one block read back from `lba` against the state `expected`.
pub fn check(table: &VerifyTable, block: &[u8], lba: u64, expected: u8) -> Result<(), Miscompare> {
    let mis = |kind, t: Option<&Trailer>, first_diff| Miscompare {
        lba,
        kind,
        expected,
        found_gen: t.map(|t| t.gen_),
        found_lba: t.map(|t| t.lba),
        found_serial: t.map(|t| t.serial),
        first_diff,
    };
    match expected {
        UNKNOWN => Ok(()),
        ZEROES => match block.iter().position(|&b| b != 0) {
            None => Ok(()),
            Some(i) => Err(mis(MiscompareKind::NotZero, None, Some(i))),
        },
        UNCORRECTABLE => Err(mis(MiscompareKind::UncorrectableReadable, None, None)),
        GEN_FIRST..=GEN_LAST => {
            let t = trailer(block);
            let crc_ok = crc_matches(table, block, &t);
            if !crc_ok {
                if t.magic != MAGIC {
                    let first = expected_block(table, lba, expected, None).and_then(|e| first_diff(&e, block));
                    return Err(mis(MiscompareKind::Unrecognized, None, first));
                }
                let first = expected_block(table, lba, expected, Some(&t)).and_then(|e| first_diff(&e, block));
                return Err(mis(MiscompareKind::Corrupted, Some(&t), first));
            }
            if t.lba != lba {
                return Err(mis(MiscompareKind::WrongLba, Some(&t), Some(block.len() - TRAILER)));
            }
            if t.gen_ != expected {
                return Err(mis(MiscompareKind::Stale, Some(&t), Some(block.len() - TRAILER + 22)));
            }
            if let Some(i) = first_diff(&block[..HEAD], &lba.to_le_bytes()) {
                return Err(mis(MiscompareKind::Corrupted, Some(&t), Some(i)));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Whether the trailer's CRC covers the block. A body equal to the pool slice the trailer
/// names (the usual case) needs no hashing: its CRC is the pool's, extended by the
/// trailer, as `stamp` computed it. Comparing is several times cheaper than hashing 4 KiB
/// and says no less.
#[inline]
fn crc_matches(table: &VerifyTable, block: &[u8], t: &Trailer) -> bool {
    let l = block.len();
    if let Some(pool) = table.recent_pattern(t.pattern)
        && pool.lba_size == l
        && (t.k as usize) < pool.slots()
        && block[HEAD..l - TRAILER] == pool.slice(t.k as usize)[HEAD..l - TRAILER]
    {
        let mut h = crc32fast::Hasher::new_with_initial_len(pool.body_crc[t.k as usize], (l - TRAILER - HEAD) as u64);
        h.update(&block[l - TRAILER..l - 4]);
        return h.finalize() == t.crc;
    }
    crc32fast::hash(&block[HEAD..l - 4]) == t.crc
}

/// The state a block read from `lba` shows: zeroes, or a valid block of this LBA with its
/// generation; `None` for anything else.
pub fn observed(block: &[u8], lba: u64) -> Option<u8> {
    if block.iter().all(|&b| b == 0) {
        return Some(ZEROES);
    }
    let t = trailer(block);
    let valid =
        t.magic == MAGIC && t.lba == lba && is_gen(t.gen_) && block[..HEAD] == lba.to_le_bytes() && crc32fast::hash(&block[HEAD..block.len() - 4]) == t.crc;
    valid.then_some(t.gen_)
}

/// The block a write of generation `gen_` to `lba` produced, rebuilt from the pattern
/// pool the found trailer names (when it is plausible); without a trailer, unknown.
fn expected_block(table: &VerifyTable, lba: u64, gen_: u8, found: Option<&Trailer>) -> Option<Vec<u8>> {
    let t = found?;
    let pool = table.pattern_by_id(t.pattern)?;
    let k = t.k as usize;
    if k >= pool.slots() {
        return None;
    }
    let mut b = pool.slice(k).to_vec();
    // SAFETY: `b` is a private buffer of `lba_size` bytes.
    unsafe { stamp(b.as_mut_ptr(), lba, t.serial, &pool, k, gen_) };
    Some(b)
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    fn written(table: &VerifyTable, lba: u64, gen_: u8) -> Vec<u8> {
        let pool = table.pattern(0xBEEF, 100);
        let mut b = pool.slice(3).to_vec();
        // SAFETY: `b` is a private buffer of one LBA.
        unsafe { stamp(b.as_mut_ptr(), lba, 77, &pool, 3, gen_) };
        b
    }

    #[test]
    fn a_stamped_block_verifies_and_every_fault_is_named() {
        let t = VerifyTable::new(1000, 512, true).unwrap();
        let b = written(&t, 10, 5);
        assert_eq!(check(&t, &b, 10, 5), Ok(()));
        let mut c = b.clone();
        c[100] ^= 1;
        let e = check(&t, &c, 10, 5).unwrap_err();
        assert_eq!((e.kind, e.first_diff), (MiscompareKind::Corrupted, Some(100)));
        assert_eq!(check(&t, &written(&t, 11, 5), 10, 5).unwrap_err().kind, MiscompareKind::WrongLba);
        let e = check(&t, &written(&t, 10, 4), 10, 5).unwrap_err();
        assert_eq!((e.kind, e.found_gen), (MiscompareKind::Stale, Some(4)));
        assert_eq!(check(&t, &[0u8; 512], 10, 5).unwrap_err().kind, MiscompareKind::Unrecognized);
        assert_eq!(check(&t, &b, 10, ZEROES).unwrap_err().kind, MiscompareKind::NotZero);
        assert_eq!(check(&t, &[0u8; 512], 10, ZEROES), Ok(()));
        assert_eq!(check(&t, &b, 10, UNCORRECTABLE).unwrap_err().kind, MiscompareKind::UncorrectableReadable);
        assert_eq!(check(&t, &c, 10, UNKNOWN), Ok(()));
    }

    #[test]
    fn patterns_fill_as_pynvme_describes() {
        let mut b = [0u8; 8];
        fill_pattern(32, 0x5a5a_1234, 512, &mut b);
        assert_eq!(b, [0x34, 0x12, 0x5a, 0x5a, 0x34, 0x12, 0x5a, 0x5a]);
        fill_pattern(0, 1, 512, &mut b);
        assert_eq!(b, [0xff; 8]);
        let mut b = vec![0u8; 1024];
        fill_pattern(0xBEEF, 50, 512, &mut b);
        assert!(b[256..512].iter().all(|&x| x == 0) && b[..256].iter().any(|&x| x != 0));
        let mut c = [0u8; 6];
        fill_pattern(0x1234, 7, 512, &mut c);
        assert_eq!(c, [7, 0, 8, 0, 9, 0]);
    }
}
