//! Data verification of every LBA.
//!
//! **Per-LBA state: one byte.** An 8 TB namespace of 512-byte LBAs has 15.6 G LBAs; at
//! PyNVMe's 4 bytes per LBA that is 62 GB of host memory (the failure of pynvme issue
//! #81), at one byte it is 15.6 GB, which an ordinary server has. The byte holds a lock
//! bit (bit 7) and a value: 0 unknown (never written by a verifying worker, or written
//! without verification: anything is accepted), 1 zeroes (after Write Zeroes, or a
//! deallocation when DLFEAT says deallocated blocks read zeroes), 2 uncorrectable
//! (after Write Uncorrectable: a read must fail), 127 reserved, and 3..=126 the
//! *generation* of the last write, which advances by one with every write of the LBA.
//! The table is a tree (`lba_map`) that holds bytes only where LBAs were touched.
//!
//! **Each written LBA carries its own proof.** The first 8 bytes of every LBA are its
//! number (PyNVMe's place for it) and the last 32 bytes are a
//! trailer: the LBA number, the writer's serial number of the write, where in the
//! pattern pool the rest of the block came from, the pattern, the generation, a magic
//! byte, and a CRC-32 of the rest of the block. A read checks the CRC and the head (catch corruption), the
//! LBA (catches misdirected writes) and the generation against the table (catches lost
//! writes and stale data); since the block body is a known slice of a pattern pool, a
//! miscompare names the first byte that differs.
//!
//! **LBA locks.** A worker locks every LBA of an I/O at submission (an atomic OR of bit
//! 7) and unlocks at completion, so reads and writes of the same LBAs never overlap, in
//! one worker or across workers sharing the namespace: they verify correctly together.
//! An I/O whose LBAs are locked waits and is retried.
//!
//! **Durability.** With a volatile write cache (Identify VWC, Set Features 06h) a
//! completed write is only durable after a Flush that was submitted after it completed
//! (NVMe 2.0 §5.15 Flush; FUA writes are durable at completion). A power loss without
//! shutdown may take every write since back to what was durable. So each LBA written
//! since its last flush has a second byte, its *durable lower bound*: the oldest state
//! the LBA may show after a power loss. After such a loss (and for writes that were in
//! flight at a reset or power loss: they may or may not have happened) the LBA is
//! *ambiguous*: a read may find any state from the lower bound to the expected one, in
//! write order; it settles the LBA to what it found. Anything else is a miscompare, so
//! data lost although it was flushed is caught. The second byte lives in sparse memory
//! next to the state, zero except where LBAs are written while a write cache is on or a
//! command is interrupted; a flag per 4096 LBAs finds them again. Where it would only say
//! "unknown" for every written LBA of a leaf of 64 (a leaf only ever written into the
//! cache, never flushed: filling a namespace), it is implied instead of written, so
//! such a region takes one byte per LBA (see `lba_map`, fresh leaves).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::lba_map::{CHUNK_SHIFT, LEAF_LBAS, LbaMap};

use crate::util::rng::Rng;

/// Bytes at the end of each LBA holding the verification trailer.
pub const TRAILER: usize = 32;
/// Bytes at the start of each written LBA holding its LBA number, where PyNVMe's scripts
/// look for it; checked by comparison, so the CRC covers the rest.
pub const HEAD: usize = 8;
/// Lock bit of a state byte.
const LOCK: u8 = 0x80;
/// State: nothing known.
pub const UNKNOWN: u8 = 0;
/// State: reads return zeroes.
pub const ZEROES: u8 = 1;
/// State: reads fail with Unrecovered Read Error.
pub const UNCORRECTABLE: u8 = 2;
/// First write generation.
pub const GEN_FIRST: u8 = 3;
/// Last write generation (the next one is [`GEN_FIRST`] again).
pub const GEN_LAST: u8 = 126;
/// Marker byte of a trailer.
const MAGIC: u8 = 0xA5;
/// Bytes of each pattern pool.
const POOL_BYTES: usize = 4 << 20;
/// Pattern pools a read's check finds without a lock (plans use a handful).
const RECENT_POOLS: usize = 16;
/// LBAs per flag of the chunks with a durable lower bound.
const CHUNK: u64 = 1 << CHUNK_SHIFT;
/// Most chunks remembered in a list; beyond it, the map is scanned instead.
const LOG_CAP: usize = 1 << 20;
/// Lower-bound byte: none recorded (the expected state is durable).
const LO_NONE: u8 = 0;
/// Lower-bound flag: the LBA may hold any state from the bound to the expected one.
const LO_AMBIG: u8 = 0x80;

#[inline]
fn lo_enc(state: u8) -> u8 {
    state + 1
}
#[inline]
fn lo_state(b: u8) -> u8 {
    (b & !LO_AMBIG).wrapping_sub(1)
}
#[inline]
fn is_gen(v: u8) -> bool {
    (GEN_FIRST..=GEN_LAST).contains(&v)
}

/// Whether an LBA whose durable lower bound is `lo` and whose expected state is `cur` may
/// show `x`: the states written between them are generations in write order (anything
/// else made the bound unknown, see [`next_lo`]).
pub fn possible(lo: u8, cur: u8, x: u8) -> bool {
    if lo == UNKNOWN || cur == UNKNOWN || x == lo || x == cur {
        return true;
    }
    if !is_gen(cur) || !is_gen(x) {
        return false;
    }
    let start = if is_gen(lo) { next_gen(lo) } else { GEN_FIRST };
    if start <= cur { (start..=cur).contains(&x) } else { x >= start || x <= cur }
}

/// How a data-changing command ended, for durability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Landing {
    /// Completed and durable (FUA, or no volatile write cache).
    Durable,
    /// Completed into a volatile write cache: durable after the next flush.
    Volatile,
    /// Never completed (reset, power loss, timeout): it may or may not have happened.
    Maybe,
}

/// The durable lower-bound byte after a command moved an LBA from `old` to `new`.
fn next_lo(lo: u8, old: u8, new: u8, landing: Landing) -> u8 {
    if new == UNKNOWN || landing == Landing::Durable {
        return LO_NONE;
    }
    let base = if lo == LO_NONE {
        lo_enc(old)
    } else if !is_gen(old) || !is_gen(new) {
        // A non-generation state between the bound and the newest: the order is lost.
        lo_enc(UNKNOWN)
    } else if new == wrap_point(lo_state(lo)) {
        // The generations written since the bound went all the way round: any of them
        // may be the durable one, and the ring can no longer say which came first.
        lo_enc(UNKNOWN)
    } else {
        lo & !LO_AMBIG
    };
    if landing == Landing::Maybe { base | LO_AMBIG } else { base }
}

/// The generation whose write makes the states since a bound `lo` cover the whole ring
/// (the bound itself for a generation, else the last generation: the first write after a
/// non-generation state is [`GEN_FIRST`]).
fn wrap_point(lo: u8) -> u8 {
    if is_gen(lo) { lo } else { GEN_LAST }
}

/// What a flush covers: the LBAs with a lower bound when it was submitted, a leaf at a
/// time, with their states then (and their bound bytes then; 0: none, or ambiguous). A
/// leaf's worth of states, not an entry per LBA: a flush after a fill of 8 GiB took 16
/// bytes per LBA, 268 MB, for the length of the flush.
#[derive(Debug, Default)]
pub struct FlushTicket {
    /// Fresh leaves: their bounds were the implied "unknown".
    fresh: Vec<(u64, [u8; LEAF_LBAS as usize])>,
    written: Vec<(u64, [u8; LEAF_LBAS as usize], [u8; LEAF_LBAS as usize])>,
    chunks: Vec<u64>,
}

impl FlushTicket {
    /// Bytes it holds.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(self.fresh.as_slice()) + size_of_val(self.written.as_slice()) + size_of_val(self.chunks.as_slice())
    }
}

#[derive(Default)]
struct DirtyLog {
    chunks: Vec<u64>,
    overflow: bool,
}

/// The generation after `v` (a write over a non-generation state starts at GEN_FIRST).
#[inline]
pub fn next_gen(v: u8) -> u8 {
    if (GEN_FIRST..GEN_LAST).contains(&v) { v + 1 } else { GEN_FIRST }
}

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
    fn new(id: u16, ptype: u32, pvalue: u32, lba_size: usize) -> Self {
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

/// What the table says of one LBA, read by [`VerifyTable::states`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LbaState {
    /// The expected state.
    pub state: u8,
    lo: u8,
}

impl LbaState {
    /// Appends the LBAs of `mask` (a byte each) in a word of states and one of bounds.
    #[inline]
    fn push_word(out: &mut Vec<LbaState>, mask: u64, states: u64, lo: u64) {
        for i in 0..8 {
            if mask >> (i * 8) & 0xff != 0 {
                out.push(LbaState { state: (states >> (i * 8)) as u8 & !LOCK, lo: (lo >> (i * 8)) as u8 });
            }
        }
    }

    /// Whether the LBA may hold one of several states (see [`VerifyTable::ambiguous`]).
    #[inline]
    pub fn ambiguous(&self) -> bool {
        self.lo & LO_AMBIG != 0
    }
    /// Whether a read of it may show `found` (see [`VerifyTable::may_show`]).
    #[inline]
    pub fn may_show(&self, found: u8) -> bool {
        self.ambiguous() && possible(lo_state(self.lo), self.state, found)
    }
}

/// The per-namespace verification state, shared by every worker on the namespace.
pub struct VerifyTable {
    nlba: u64,
    lba_size: usize,
    /// State and durable lower bound per LBA (see the module docs), and the chunks that
    /// have bounds.
    lbas: LbaMap,
    /// Deallocated blocks read as zeroes (Identify Namespace DLFEAT).
    pub dealloc_zeroes: bool,
    patterns: Mutex<Vec<Arc<PatternPool>>>,
    /// The first pools again, found without a lock by every read's check.
    recent: [std::sync::OnceLock<Arc<PatternPool>>; RECENT_POOLS],
    /// Workers verifying / writing without verification, now.
    verifiers: AtomicUsize,
    blind_writers: AtomicUsize,
    /// The chunks with bounds, while they are few.
    log: Mutex<DirtyLog>,
    /// Writes land in a volatile write cache.
    volatile: AtomicBool,
    /// Some LBA has a lower bound.
    lo_active: AtomicBool,
    /// Power losses already applied.
    power_seen: Mutex<u64>,
    /// Held while a flush clears chunk bits and while a power loss walks the chunks.
    chunk_gate: Mutex<()>,
    /// The controller's data epoch the contents are valid for.
    epoch: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for VerifyTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyTable").field("nlba", &self.nlba).field("lba_size", &self.lba_size).finish_non_exhaustive()
    }
}

/// Why a worker may not use the table now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableBusy {
    /// A worker with `verify_disable` writes to the namespace.
    #[error(
        "a worker with verify_disable is writing to this namespace, so its data cannot be verified; run verifying workers after it, or disable verification for all"
    )]
    BlindWriter,
    /// A verifying worker runs on the namespace.
    #[error(
        "a verifying worker runs on this namespace; a worker with verify_disable that writes would make its data unverifiable: run it afterwards or disable verification for all"
    )]
    Verifier,
}

impl VerifyTable {
    /// A table for `nlba` LBAs of `lba_size` bytes, all unknown.
    pub fn new(nlba: u64, lba_size: usize, dealloc_zeroes: bool) -> std::io::Result<Self> {
        Ok(VerifyTable {
            nlba,
            lba_size,
            lbas: LbaMap::new(nlba)?,
            dealloc_zeroes,
            patterns: Mutex::new(Vec::new()),
            recent: Default::default(),
            verifiers: AtomicUsize::new(0),
            blind_writers: AtomicUsize::new(0),
            log: Mutex::new(DirtyLog::default()),
            volatile: AtomicBool::new(false),
            lo_active: AtomicBool::new(false),
            power_seen: Mutex::new(0),
            chunk_gate: Mutex::new(()),
            epoch: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// LBAs covered.
    pub fn nlba(&self) -> u64 {
        self.nlba
    }
    /// LBA size the table was made for.
    pub fn lba_size(&self) -> usize {
        self.lba_size
    }

    /// The 64-bit word holding the states of LBAs `8k..8k+8`, made on first use (all
    /// accesses to the table are 64-bit atomics, so they never mix sizes).
    #[inline]
    fn word(&self, lba: u64) -> &AtomicU64 {
        assert!(lba < self.nlba, "LBA {lba:#x} beyond the table");
        self.lbas.state_word(lba)
    }

    /// The state of an LBA (value bits only).
    #[inline]
    pub fn state(&self, lba: u64) -> u8 {
        assert!(lba < self.nlba, "LBA {lba:#x} beyond the table");
        self.lbas.state_word_if(lba).map_or(0, |w| (w.load(Ordering::Acquire) >> ((lba & 7) * 8)) as u8 & !LOCK)
    }

    /// The states of `lba..lba+n` into `out`, each with its lower bound: a walk of the
    /// table per 8 LBAs, where [`VerifyTable::state`] walks it per LBA.
    #[inline]
    pub fn states(&self, lba: u64, n: u64, out: &mut Vec<LbaState>) {
        assert!(lba + n <= self.nlba, "LBAs {lba:#x}+{n} beyond the table");
        out.clear();
        let bounds = self.lo_active.load(Ordering::Relaxed);
        Self::for_words(lba, n, |w, mask| {
            let (s, lo) = match self.lbas.state_word_if(w) {
                Some(sw) => (sw.load(Ordering::Acquire), if bounds { self.lbas.lo_beside(sw).load(Ordering::SeqCst) } else { 0 }),
                None => (0, 0),
            };
            LbaState::push_word(out, mask, s, lo);
            true
        });
    }

    /// Bytes of table made so far (the states and bounds of touched LBAs, and their
    /// nodes).
    pub fn table_bytes(&self) -> usize {
        self.lbas.bytes()
    }

    /// Calls `f(first_lba, byte_mask)` for each word `lba..lba+n` touches.
    #[inline]
    fn for_words(lba: u64, n: u64, mut f: impl FnMut(u64, u64) -> bool) -> bool {
        let end = lba + n;
        let mut l = lba;
        while l < end {
            let first = l & 7;
            let count = (8 - first).min(end - l);
            let mask = if count == 8 { u64::MAX } else { ((1u64 << (count * 8)) - 1) << (first * 8) };
            if !f(l & !7, mask) {
                return false;
            }
            l += count;
        }
        true
    }

    /// Locks `lba..lba+n`; on a conflict releases what it took and returns false. For
    /// an I/O that waits and tries again: each word is looked at before it is taken, as a
    /// failed read-modify-write would still take the cache line from the lock's holder.
    #[inline]
    pub fn try_lock(&self, lba: u64, n: u64) -> bool {
        self.lock_words(lba, n, true, None)
    }

    /// [`VerifyTable::try_lock`] for an I/O's first try: each word is taken at once. One
    /// ownership request instead of a shared read and an upgrade; and where the table's
    /// page was never touched (a sparse namespace), a write fault gives it a zeroed page,
    /// where a read first would map the zero page and then copy it on the write, flushing
    /// the TLB of every CPU the process runs on.
    #[inline]
    pub fn try_lock_first(&self, lba: u64, n: u64) -> bool {
        self.lock_words(lba, n, false, None)
    }

    /// [`VerifyTable::try_lock_first`] (`first`) or [`VerifyTable::try_lock`] that also
    /// gives the states the LBAs hold (their bounds are not read), from the words the lock
    /// took: a writer needs them and they hold still while it holds the lock.
    #[inline]
    pub fn try_lock_states(&self, lba: u64, n: u64, first: bool, out: &mut Vec<LbaState>) -> bool {
        out.clear();
        self.lock_words(lba, n, !first, Some(out))
    }

    #[inline]
    fn lock_words(&self, lba: u64, n: u64, look_first: bool, mut out: Option<&mut Vec<LbaState>>) -> bool {
        const LOCKS: u64 = 0x8080_8080_8080_8080;
        let mut taken: u64 = 0;
        let ok = Self::for_words(lba, n, |w, mask| {
            let bits = LOCKS & mask;
            let word = self.word(w);
            if look_first && word.load(Ordering::Relaxed) & bits != 0 {
                return false;
            }
            let old = word.fetch_or(bits, Ordering::Acquire);
            if old & bits != 0 {
                // Give back the bits this call set in this word.
                word.fetch_and(!(bits & !old), Ordering::Release);
                return false;
            }
            taken = w + 8;
            if let Some(out) = out.as_deref_mut() {
                LbaState::push_word(out, mask, old, 0);
            }
            true
        });
        if !ok && taken > lba {
            Self::for_words(lba, taken.min(lba + n) - lba, |w, mask| {
                self.word(w).fetch_and(!(LOCKS & mask), Ordering::Release);
                true
            });
        }
        ok
    }

    /// Unlocks `lba..lba+n`, setting each LBA's state to `value(lba, old)` (`None` keeps
    /// it).
    #[inline]
    pub fn unlock_range(&self, lba: u64, n: u64, value: impl Fn(u64, u8) -> Option<u8>) {
        Self::for_words(lba, n, |w, mask| {
            let new_word = |cur: u64| {
                let mut v = cur;
                for i in 0..8u64 {
                    let sh = i * 8;
                    if mask >> sh & 0xff == 0 {
                        continue;
                    }
                    let old = (cur >> sh) as u8 & !LOCK;
                    let b = value(w + i, old).unwrap_or(old) & !LOCK;
                    v = (v & !(0xff << sh)) | (b as u64) << sh;
                }
                v
            };
            let word = self.word(w);
            if mask == u64::MAX {
                // Every byte is ours (locked): nobody else changes them.
                word.store(new_word(word.load(Ordering::Acquire)), Ordering::Release);
            } else {
                let _ = word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| Some(new_word(cur)));
            }
            true
        });
    }

    /// Unlocks one LBA, setting its state to `value` (or keeping it with `None`).
    #[inline]
    pub fn unlock(&self, lba: u64, value: Option<u8>) {
        self.unlock_range(lba, 1, |_, _| value);
    }

    /// The 64-bit word of lower-bound bytes of LBAs `8k..8k+8`, made on first use.
    #[inline]
    fn lo_word(&self, lba: u64) -> &AtomicU64 {
        assert!(lba < self.nlba, "LBA {lba:#x} beyond the table");
        self.lbas.lo_word(lba)
    }

    #[inline]
    fn chunk_dirty(&self, chunk: u64) -> bool {
        self.lbas.flagged(chunk)
    }

    /// Records that chunks of `lba..lba+n` hold lower bounds.
    fn mark_dirty(&self, lba: u64, n: u64) {
        for c in lba / CHUNK..=(lba + n - 1) / CHUNK {
            if self.chunk_dirty(c) {
                continue;
            }
            if self.lbas.flag(c) {
                let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
                if log.chunks.len() < LOG_CAP {
                    log.chunks.push(c);
                } else {
                    log.overflow = true;
                }
            }
        }
    }

    /// Chunks that hold lower bounds now.
    fn dirty_chunks(&self) -> Vec<u64> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if !log.overflow {
            let mut v: Vec<u64> = log.chunks.iter().copied().filter(|&c| self.chunk_dirty(c)).collect();
            v.sort_unstable();
            v.dedup();
            return v;
        }
        drop(log);
        self.lbas.flagged_chunks()
    }

    /// Calls `f(lba, lo byte, state, fresh)` for every LBA of `chunk` with a lower bound,
    /// written or implied by a fresh leaf (`fresh`).
    fn each_lo(&self, chunk: u64, mut f: impl FnMut(u64, u8, u8, bool)) {
        self.lbas.each_word(chunk, |w, states, word, fresh| {
            // A fresh leaf has no bytes written (they are written out when it is spoiled).
            let v = if fresh { 0 } else { word.load(Ordering::SeqCst) };
            if v != 0 || fresh {
                let st = states.load(Ordering::Acquire);
                for i in 0..8u64 {
                    let state = (st >> (i * 8)) as u8 & !LOCK;
                    let b = if fresh && state != UNKNOWN { lo_enc(UNKNOWN) } else { (v >> (i * 8)) as u8 };
                    if b != LO_NONE && w + i < self.nlba {
                        f(w + i, b, state, fresh);
                    }
                }
            }
        });
    }

    /// Ends the freshness of the leaf holding `lba` (state word `sw`): writes out the
    /// "unknown" bound it implied for each LBA whose state byte `b` (lock bit included)
    /// `needs(lba, b)`. Only while bounds are in use: before, no write went into a
    /// cache, so nothing was implied. True if this call wrote them out.
    fn spoil(&self, lba: u64, sw: &AtomicU64, needs: impl Fn(u64, u8) -> bool) -> bool {
        self.lbas.spoil(sw, || {
            // SeqCst and after the leaf's mark: a volatile writer stores the flag before it
            // looks at the mark, so either it sees the mark or this sees the flag.
            if !self.lo_active.load(Ordering::SeqCst) {
                return;
            }
            for (w, states, lo) in self.lbas.leaf_words(lba, sw) {
                let st = states.load(Ordering::Acquire);
                let mask = (0..8u64).filter(|&i| needs(w + i, (st >> (i * 8)) as u8)).fold(0, |m, i| m | 0xff << (i * 8));
                if mask != 0 {
                    self.update_lo_word(lo, w, mask, |_, b| if b == LO_NONE { lo_enc(UNKNOWN) } else { b });
                }
            }
        })
    }

    /// Spoils the fresh leaves of `lba..lba+n` (see [`VerifyTable::spoil`]).
    fn spoil_range(&self, lba: u64, n: u64, needs: impl Fn(u64, u8) -> bool) {
        let mut l = lba & !(LEAF_LBAS - 1);
        while l < lba + n {
            let sw = self.word(l);
            if self.lbas.fresh(sw) {
                self.spoil(l, sw, &needs);
            }
            l += LEAF_LBAS;
        }
    }

    /// Sets the lower-bound bytes of `lba..lba+n` to `f(lba, byte)`.
    fn update_lo(&self, lba: u64, n: u64, mut f: impl FnMut(u64, u8) -> u8) {
        Self::for_words(lba, n, |w, mask| {
            self.update_lo_word(self.lo_word(w), w, mask, &mut f);
            true
        });
    }

    /// Sets the bytes of `mask` in the lower-bound word of LBAs `w..w+8` to `f(lba, byte)`.
    #[inline]
    fn update_lo_word(&self, word: &AtomicU64, w: u64, mask: u64, mut f: impl FnMut(u64, u8) -> u8) {
        let mut new_word = |cur: u64| {
            let mut v = cur;
            for i in 0..8u64 {
                let sh = i * 8;
                if mask >> sh & 0xff != 0 {
                    v = (v & !(0xff << sh)) | (f(w + i, (cur >> sh) as u8) as u64) << sh;
                }
            }
            v
        };
        // Most words hold no bound yet: a compare-and-swap from none first saves a read.
        // A word that would not change is not written: a write of a bound page never
        // touched would give it memory.
        let (mut cur, mut seen) = (u64::from(LO_NONE) * 0x0101_0101_0101_0101, false);
        loop {
            let new = new_word(cur);
            if new == cur {
                if seen {
                    break;
                }
                let actual = word.load(Ordering::SeqCst);
                if actual == cur {
                    break;
                }
                (cur, seen) = (actual, true);
                continue;
            }
            match word.compare_exchange_weak(cur, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    self.lbas.wrote_bound(word);
                    break;
                }
                Err(actual) => (cur, seen) = (actual, true),
            }
        }
    }

    /// The lower-bound byte of one LBA.
    #[inline]
    fn lo_byte(&self, lba: u64) -> u8 {
        assert!(lba < self.nlba, "LBA {lba:#x} beyond the table");
        self.lbas.lo_word_if(lba).map_or(LO_NONE, |w| (w.load(Ordering::SeqCst) >> ((lba & 7) * 8)) as u8)
    }

    /// Whether writes land in a volatile write cache (set by workers from the controller's
    /// Volatile Write Cache feature).
    pub fn set_volatile(&self, v: bool) {
        self.volatile.store(v, Ordering::SeqCst);
    }
    /// See [`VerifyTable::set_volatile`].
    pub fn volatile(&self) -> bool {
        self.volatile.load(Ordering::Relaxed)
    }

    /// Unlocks `lba..lba+n` after a data-changing command: each LBA's state becomes
    /// `value(lba, old)` and its durable lower bound follows `landing`. `lost()` says
    /// whether power was lost without shutdown since the completion was seen; it is asked
    /// after the bounds are recorded and before the LBAs are unlocked, so a loss is either
    /// seen here or applied by [`VerifyTable::power_lost`] to the recorded bounds.
    pub fn unlock_write(&self, lba: u64, n: u64, value: impl Fn(u64, u8) -> u8, landing: Landing, lost: impl Fn() -> bool) {
        let own = |l: u64| (lba..lba + n).contains(&l);
        // A durable write ends a leaf's freshness; it needs no bound of its own.
        let durable_spoil = |l: u64, b: u8| b != 0 && !own(l);
        // Callers pass Volatile only when the cache is volatile.
        if landing == Landing::Durable && !self.lo_active.load(Ordering::Relaxed) {
            self.spoil_range(lba, n, durable_spoil);
            return self.unlock_range(lba, n, |l, old| Some(value(l, old)));
        }
        let volatile = landing == Landing::Volatile;
        if volatile && !self.lo_active.load(Ordering::SeqCst) {
            // Before any look at a leaf's freshness (see `spoil`).
            self.lo_active.store(true, Ordering::SeqCst);
        }
        let mut any = false;
        Self::for_words(lba, n, |w, mask| {
            // The LBAs of `mask` are locked by the caller: their states hold still.
            let sw = self.word(w);
            let states = sw.load(Ordering::Acquire);
            if self.lbas.fresh(sw) {
                if volatile {
                    // The bound a fresh leaf implies ("unknown") is what this write leaves.
                    any |= (0..8u64).any(|i| mask >> (i * 8) & 0xff != 0 && value(w + i, (states >> (i * 8)) as u8 & !LOCK) != UNKNOWN);
                    return true;
                }
                // An interrupted write's own LBAs need the bound they had written out.
                self.spoil(w, sw, |l, b| if landing == Landing::Durable { durable_spoil(l, b) } else { b != 0 });
            }
            self.update_lo_word(self.lbas.lo_beside(sw), w, mask, |l, lo| {
                let old = (states >> ((l - w) * 8)) as u8 & !LOCK;
                let b = next_lo(lo, old, value(l, old), landing);
                any |= b != LO_NONE;
                b
            });
            true
        });
        if any {
            self.lo_active.store(true, Ordering::SeqCst);
            self.mark_dirty(lba, n);
            if lost() {
                self.spoil_range(lba, n, |_, b| b != 0);
                self.update_lo(lba, n, |_, b| if b == LO_NONE { b } else { b | LO_AMBIG });
            }
        }
        self.unlock_range(lba, n, |l, old| Some(value(l, old)));
    }

    /// For a locked LBA that may hold one of several states: whether the block's state
    /// `found` is one of them (then [`VerifyTable::settle`] it).
    #[inline]
    pub fn ambiguous(&self, lba: u64) -> bool {
        // The byte itself, not the chunk map: a flush completing elsewhere may clear and set
        // the chunk's bit again while this LBA stays ambiguous.
        self.lo_active.load(Ordering::Relaxed) && self.lo_byte(lba) & LO_AMBIG != 0
    }

    /// Whether a read of the ambiguous LBA `lba` (expected state `cur`) may show `found`.
    pub fn may_show(&self, lba: u64, cur: u8, found: u8) -> bool {
        self.ambiguous(lba) && possible(lo_state(self.lo_byte(lba)), cur, found)
    }

    /// A read of the locked, ambiguous LBA found state `found`: the LBA is no longer
    /// ambiguous. Its bound stays (what was read may still be in a write cache). The
    /// caller sets the state to `found` when it unlocks.
    pub fn settle(&self, lba: u64, found: u8) {
        self.update_lo(lba, 1, |_, b| {
            if b & LO_AMBIG == 0 {
                return b;
            }
            if lo_state(b) == found { LO_NONE } else { b & !LO_AMBIG }
        });
    }

    /// Call before a Flush is submitted: what it will make durable.
    pub fn flush_begin(&self) -> FlushTicket {
        if !self.lo_active.load(Ordering::SeqCst) {
            return FlushTicket::default();
        }
        let mut t = FlushTicket { chunks: self.dirty_chunks(), ..Default::default() };
        // The leaf being gathered: first LBA, fresh, states, bounds.
        let mut leaf = None::<(u64, bool, [u8; LEAF_LBAS as usize], [u8; LEAF_LBAS as usize])>;
        let (fresh_leaves, written) = (&mut t.fresh, &mut t.written);
        let mut done = |leaf| match leaf {
            Some((first, true, states, _)) => fresh_leaves.push((first, states)),
            Some((first, false, states, lo)) => written.push((first, states, lo)),
            None => {}
        };
        for &c in &t.chunks {
            self.each_lo(c, |l, b, state, fresh| {
                if b & LO_AMBIG != 0 {
                    return;
                }
                let first = l & !(LEAF_LBAS - 1);
                if leaf.is_some_and(|x| x.0 != first) {
                    done(leaf.take());
                }
                let x = leaf.get_or_insert((first, fresh, [UNKNOWN; LEAF_LBAS as usize], [LO_NONE; LEAF_LBAS as usize]));
                x.2[(l - first) as usize] = state;
                x.3[(l - first) as usize] = b;
            });
        }
        done(leaf);
        t
    }

    /// Call when that Flush completed successfully: the state each LBA had when it was
    /// submitted is durable (it came from a command completed before). An LBA not written
    /// since has no bound any more; one written since (or in use now) gets that state as
    /// its bound, so that bounds of LBAs that are always being written keep moving up.
    /// A bound that changed meanwhile (a durable write, a lost order) is left as it is.
    pub fn flush_done(&self, t: FlushTicket) {
        for (first, states) in &t.fresh {
            let sw = self.word(*first);
            // Still fresh: an LBA this flush made durable (unlocked, as it was at
            // submission) needs no bound; the others keep the "unknown" one implied, and
            // that is all. Not read again, so no page of bounds is touched for them.
            let then = |l: u64| states[(l - first) as usize];
            if self.lbas.fresh(sw) && self.spoil(*first, sw, |l, b| b != 0 && (b & LOCK != 0 || then(l) != b)) {
                continue;
            }
            let lo = states.map(|s| if s == UNKNOWN { LO_NONE } else { lo_enc(UNKNOWN) });
            self.flushed_leaf(*first, states, &lo);
        }
        for (first, states, lo) in &t.written {
            self.flushed_leaf(*first, states, lo);
        }
        // A power loss recorded now must find every chunk that holds bounds (see
        // `power_lost`), so the bits change under the gate.
        let _gate = self.chunk_gate.lock().unwrap_or_else(|e| e.into_inner());
        for &c in &t.chunks {
            // Only a chunk without bounds is cleared; a bound recorded between the look and
            // the clear is found by the second look, which sets the bit again.
            let holds = |c| {
                let mut left = false;
                self.each_lo(c, |_, _, _, _| left = true);
                left
            };
            if holds(c) {
                continue;
            }
            self.lbas.unflag(c);
            if holds(c) {
                self.lbas.flag(c);
            }
        }
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if !log.overflow {
            let mut v: Vec<u64> = log.chunks.iter().copied().filter(|&c| self.chunk_dirty(c)).collect();
            v.sort_unstable();
            v.dedup();
            log.chunks = v;
        }
    }

    /// [`VerifyTable::flush_done`] for the LBAs of the leaf from `first` that had bound byte
    /// `lo` and state `states` when the flush was submitted.
    fn flushed_leaf(&self, first: u64, states: &[u8; LEAF_LBAS as usize], lo: &[u8; LEAF_LBAS as usize]) {
        for w in (first..first + LEAF_LBAS).step_by(8) {
            let offs = (w - first) as usize..(w - first) as usize + 8;
            if lo[offs.clone()].iter().all(|&b| b == LO_NONE) {
                continue;
            }
            let sw = self.word(w);
            let lw = self.lbas.lo_beside(sw);
            for o in offs.filter(|&o| lo[o] != LO_NONE) {
                let (v, b0, sh) = (states[o], lo[o], (o as u64 & 7) * 8);
                let lock = u64::from(LOCK) << sh;
                // Locked as `try_lock` does, and unlocked keeping the state.
                let unused = sw.load(Ordering::Relaxed) & lock == 0 && sw.fetch_or(lock, Ordering::Acquire) & lock == 0;
                let same = unused && (sw.load(Ordering::Acquire) >> sh) as u8 & !LOCK == v;
                self.update_lo_word(lw, w, 0xff << sh, |_, b| {
                    if b & !LO_AMBIG != b0 {
                        b
                    } else if same && b == b0 {
                        LO_NONE
                    } else if lo_state(b0) == UNKNOWN {
                        // Writes that lose the order leave this bound as it was: no
                        // telling whether one ran since the flush was submitted.
                        b
                    } else {
                        lo_enc(v) | (b & LO_AMBIG)
                    }
                });
                if unused {
                    sw.fetch_and(!lock, Ordering::Release);
                }
            }
        }
    }

    /// Power was lost without shutdown (`count`: the controller's count of such losses):
    /// every LBA with a lower bound becomes ambiguous. Idempotent per count.
    pub fn power_lost(&self, count: u64) {
        let mut seen = self.power_seen.lock().unwrap_or_else(|e| e.into_inner());
        if *seen >= count {
            return;
        }
        *seen = count;
        let _gate = self.chunk_gate.lock().unwrap_or_else(|e| e.into_inner());
        for c in self.dirty_chunks() {
            let mut fresh = Vec::new();
            self.lbas.each_word(c, |w, _, _, f| {
                if f && w % LEAF_LBAS == 0 {
                    fresh.push(w);
                }
            });
            for w in fresh {
                self.spoil(w, self.word(w), |_, b| b != 0);
            }
            let mut lbas = Vec::new();
            self.each_lo(c, |l, b, _, _| {
                if b & LO_AMBIG == 0 {
                    lbas.push(l);
                }
            });
            for l in lbas {
                self.update_lo(l, 1, |_, b| if b == LO_NONE { b } else { b | LO_AMBIG });
            }
        }
    }

    /// LBAs that have a durable lower bound (for tests and reports).
    pub fn undurable_lbas(&self) -> u64 {
        let mut n = 0;
        for c in self.dirty_chunks() {
            self.each_lo(c, |_, _, _, _| n += 1);
        }
        n
    }

    /// Forgets everything: every LBA becomes unknown (after Format, Sanitize, or writes
    /// without verification).
    pub fn invalidate(&self) {
        // Zero is unknown, unlocked, no bound. Callers only invalidate when no worker holds
        // locks.
        self.lbas.clear();
        *self.log.lock().unwrap_or_else(|e| e.into_inner()) = DirtyLog::default();
        self.lo_active.store(false, Ordering::SeqCst);
    }

    /// Forgets everything if the controller erased data since the table was last used.
    pub fn sync_epoch(&self, epoch: u64) {
        if self.epoch.swap(epoch, Ordering::AcqRel) != epoch {
            self.invalidate();
        }
    }

    /// The pool for a pattern, created on first use.
    pub fn pattern(&self, ptype: u32, pvalue: u32) -> Arc<PatternPool> {
        let mut p = self.patterns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(x) = p.iter().find(|x| x.ptype == ptype && x.pvalue == pvalue) {
            return x.clone();
        }
        let pool = Arc::new(PatternPool::new(p.len() as u16, ptype, pvalue, self.lba_size));
        if let Some(r) = self.recent.get(p.len()) {
            let _ = r.set(pool.clone());
        }
        p.push(pool.clone());
        pool
    }

    fn pattern_by_id(&self, id: u16) -> Option<Arc<PatternPool>> {
        self.patterns.lock().unwrap_or_else(|e| e.into_inner()).get(id as usize).cloned()
    }

    /// One of the first pools, without a lock.
    #[inline]
    fn recent_pattern(&self, id: u16) -> Option<&PatternPool> {
        self.recent.get(id as usize)?.get().map(|p| &**p)
    }

    /// Registers a worker; `blind_writer`: writes without verification.
    pub fn join(&self, verifying: bool, blind_writer: bool) -> Result<(), TableBusy> {
        if verifying {
            if self.blind_writers.load(Ordering::Acquire) > 0 {
                return Err(TableBusy::BlindWriter);
            }
            self.verifiers.fetch_add(1, Ordering::AcqRel);
        } else if blind_writer {
            if self.verifiers.load(Ordering::Acquire) > 0 {
                return Err(TableBusy::Verifier);
            }
            self.blind_writers.fetch_add(1, Ordering::AcqRel);
            // Whatever it writes is unknown from now on.
            self.invalidate();
        }
        Ok(())
    }

    /// Unregisters a worker registered with the same arguments.
    pub fn leave(&self, verifying: bool, blind_writer: bool) {
        if verifying {
            self.verifiers.fetch_sub(1, Ordering::AcqRel);
        } else if blind_writer {
            self.blind_writers.fetch_sub(1, Ordering::AcqRel);
        }
    }
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

    /// Completes a write of `lba` the way a worker does.
    fn write(t: &VerifyTable, lba: u64, landing: Landing) -> u8 {
        assert!(t.try_lock(lba, 1));
        let g = next_gen(t.state(lba));
        t.unlock_write(lba, 1, |_, old| next_gen(old), landing, || false);
        g
    }

    /// A read of `lba` that found `found`: accepted (and settled) or not.
    fn read(t: &VerifyTable, lba: u64, found: u8) -> bool {
        let cur = t.state(lba);
        if found == cur && !t.ambiguous(lba) {
            return true;
        }
        if !t.may_show(lba, cur, found) {
            return false;
        }
        assert!(t.try_lock(lba, 1));
        t.settle(lba, found);
        t.unlock(lba, Some(found));
        true
    }

    #[test]
    fn possible_states_run_from_the_bound_to_the_newest_in_write_order() {
        assert!(possible(5, 8, 5) && possible(5, 8, 6) && possible(5, 8, 8));
        assert!(!possible(5, 8, 4) && !possible(5, 8, 9));
        // Generations wrap from GEN_LAST to GEN_FIRST.
        assert!(possible(GEN_LAST - 1, GEN_FIRST + 1, GEN_LAST) && possible(GEN_LAST - 1, GEN_FIRST + 1, GEN_FIRST));
        assert!(!possible(GEN_LAST - 1, GEN_FIRST + 1, 50));
        // From zeroes, the first write made GEN_FIRST.
        assert!(possible(ZEROES, GEN_FIRST + 2, ZEROES) && possible(ZEROES, GEN_FIRST + 2, GEN_FIRST) && !possible(ZEROES, GEN_FIRST + 2, 90));
        // A generation then zeroes: only those two.
        assert!(possible(7, ZEROES, 7) && possible(7, ZEROES, ZEROES) && !possible(7, ZEROES, 6));
        assert!(possible(UNKNOWN, 9, 77) && possible(9, UNKNOWN, 77));
    }

    #[test]
    fn unflushed_writes_may_revert_after_a_power_loss_flushed_ones_may_not() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        let g1 = write(&t, 10, Landing::Volatile);
        let ticket = t.flush_begin();
        t.flush_done(ticket);
        assert_eq!(t.undurable_lbas(), 0, "the flush made LBA 10 durable");
        let g2 = write(&t, 10, Landing::Volatile);
        let g3 = write(&t, 10, Landing::Volatile);
        let _ = write(&t, 11, Landing::Volatile);
        // Before a power loss, only the newest is right.
        assert!(!read(&t, 10, g2) && !read(&t, 10, g1));
        t.power_lost(1);
        assert!(t.ambiguous(10) && t.ambiguous(11));
        assert!(!read(&t, 10, next_gen(g1).wrapping_sub(2)), "older than the flushed generation");
        assert!(read(&t, 10, g2), "an unflushed write may be lost");
        assert_eq!((t.state(10), t.ambiguous(10)), (g2, false), "settled to what was found");
        assert!(!read(&t, 10, g3), "settled: the newer write is gone");
        assert!(read(&t, 11, 77), "LBA 11 held unverified data before its only write: anything goes");
    }

    #[test]
    fn writes_scattered_over_64_tib_take_two_nodes_and_a_leaf_of_table_each() {
        // 64 TiB of 512-byte LBAs; 4 KiB writes 2 GiB apart, into a write cache (their
        // bounds are implied by fresh leaves). A flat table took a page of states and one
        // of bounds.
        let t = VerifyTable::new(1 << 37, 512, true).unwrap();
        t.set_volatile(true);
        for i in 0..2000u64 {
            let l = i << 22;
            assert!(t.try_lock_first(l, 8));
            t.unlock_write(l, 8, |_, old| next_gen(old), Landing::Volatile, || false);
        }
        assert_eq!(t.undurable_lbas(), 2000 * 8);
        // 576 bytes per scattered write (0.14 per byte written) and two bits of leaf marks.
        let bytes = 2000 * 576 + 2000 / 4;
        assert!((bytes..bytes + 16).contains(&t.table_bytes()), "{}", t.table_bytes());
        // Reads of untouched LBAs take nothing.
        for l in [(5 << 22) + 1000, 1 << 36] {
            assert_eq!((t.state(l), t.ambiguous(l)), (UNKNOWN, false));
        }
        assert!((bytes..bytes + 16).contains(&t.table_bytes()));
        t.flush_done(t.flush_begin());
        assert_eq!(t.undurable_lbas(), 0);
        assert!((bytes..bytes + 16).contains(&t.table_bytes()), "the flush wrote no bound");
    }

    /// Writes `lba..lba+n` once each, with `landing`.
    fn write_range(t: &VerifyTable, lba: u64, n: u64, landing: Landing) {
        assert!(t.try_lock_first(lba, n));
        t.unlock_write(lba, n, |_, old| next_gen(old), landing, || false);
    }

    #[test]
    fn a_region_filled_into_a_write_cache_takes_one_byte_per_lba_until_a_power_loss() {
        let n = 1u64 << 20;
        let t = VerifyTable::new(n, 512, true).unwrap();
        t.set_volatile(true);
        for l in (0..n).step_by(8) {
            write_range(&t, l, 8, Landing::Volatile);
        }
        // And overwritten, still unflushed: the bound stays "unknown".
        for l in (0..n).step_by(64) {
            write_range(&t, l, 8, Landing::Volatile);
        }
        assert_eq!(t.undurable_lbas(), n);
        let bytes = t.table_bytes() as f64 / n as f64;
        assert!(bytes < 1.07, "{bytes} bytes per LBA: 1 and a sixteenth in nodes");
        // A power loss writes the bounds out: every LBA may show anything now.
        t.power_lost(1);
        assert!(t.ambiguous(0) && t.ambiguous(n - 1) && t.ambiguous(12345));
        assert!(read(&t, 12345, 77) && read(&t, 0, GEN_FIRST + 5));
        assert!(t.table_bytes() as f64 / n as f64 > 2.0);
    }

    #[test]
    fn a_flush_ticket_holds_a_leaf_of_states_not_an_entry_per_lba() {
        let n = 1u64 << 20;
        let t = VerifyTable::new(n, 512, true).unwrap();
        t.set_volatile(true);
        for l in (0..n).step_by(8) {
            write_range(&t, l, 8, Landing::Volatile);
        }
        let ticket = t.flush_begin();
        assert_eq!((ticket.fresh.len() as u64, ticket.written.len()), (n / LEAF_LBAS, 0));
        assert!(ticket.bytes() as f64 / (n as f64) < 1.2, "{} bytes", ticket.bytes());
        t.flush_done(ticket);
        // Overwritten after the flush: bounds written, two bytes per LBA in the ticket.
        for l in (0..n).step_by(8) {
            write_range(&t, l, 8, Landing::Volatile);
        }
        let ticket = t.flush_begin();
        assert_eq!((ticket.fresh.len(), ticket.written.len() as u64), (0, n / LEAF_LBAS));
        assert!(ticket.bytes() as f64 / (n as f64) < 2.2, "{} bytes", ticket.bytes());
        t.flush_done(ticket);
        assert_eq!(t.undurable_lbas(), 0);
    }

    #[test]
    fn a_flush_makes_a_fresh_leaf_durable_without_writing_bounds() {
        let t = VerifyTable::new(1 << 16, 512, true).unwrap();
        t.set_volatile(true);
        for l in (0..4096).step_by(8) {
            write_range(&t, l, 8, Landing::Volatile);
        }
        let ticket = t.flush_begin();
        // Written while the flush ran: stays undurable, its bound still "unknown".
        write_range(&t, 5, 1, Landing::Volatile);
        // Locked (in flight) while the flush completes.
        assert!(t.try_lock(9, 1));
        let before = t.table_bytes();
        t.flush_done(ticket);
        t.unlock(9, None);
        assert_eq!(t.undurable_lbas(), 2);
        assert_eq!(t.table_bytes(), before + 4096, "one page of bounds, for the two LBAs left undurable");
        t.power_lost(1);
        assert!(t.ambiguous(5) && t.ambiguous(9) && !t.ambiguous(4) && !t.ambiguous(10));
        assert!(read(&t, 5, 99) && !read(&t, 4, 99), "LBA 4 was flushed");
    }

    #[test]
    fn a_durable_write_into_a_fresh_leaf_keeps_its_neighbours_undurable() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        write_range(&t, 0, 8, Landing::Volatile);
        let g = t.state(8);
        write_range(&t, 8, 8, Landing::Durable);
        write_range(&t, 16, 8, Landing::Volatile);
        assert_eq!(t.undurable_lbas(), 16);
        t.power_lost(1);
        assert!(t.ambiguous(3) && t.ambiguous(20) && !t.ambiguous(8));
        assert!(read(&t, 3, 50) && read(&t, 20, 60));
        assert!(!read(&t, 8, g) && read(&t, 8, next_gen(g)), "a durable write may not revert");
    }

    #[test]
    fn an_interrupted_write_over_an_unflushed_one_in_a_fresh_leaf_may_show_anything() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        let g1 = write(&t, 7, Landing::Volatile);
        let g2 = write(&t, 7, Landing::Maybe);
        assert!(t.ambiguous(7));
        assert!(read(&t, 7, 90) || (g1, g2) == (90, 90), "the first write was never durable: anything");
    }

    #[test]
    fn racing_durable_and_cached_writes_in_one_leaf_keep_every_bound() {
        // Threads write their own LBAs of the same leaves, half into the cache and half
        // durably, so leaves are spoiled while cached writes into them complete. After a
        // power loss, exactly the cached LBAs may revert.
        for round in 0..50 {
            let t = VerifyTable::new(1 << 14, 512, true).unwrap();
            t.set_volatile(true);
            std::thread::scope(|s| {
                for k in 0..4u64 {
                    let t = &t;
                    s.spawn(move || {
                        let landing = if (k + round) % 2 == 0 { Landing::Volatile } else { Landing::Durable };
                        for l in (k..1 << 14).step_by(4) {
                            write_range(t, l, 1, landing);
                        }
                    });
                }
            });
            t.power_lost(1);
            for l in 0..1u64 << 14 {
                let cached = (l % 4 + round) % 2 == 0;
                assert_eq!(t.ambiguous(l), cached, "round {round}, LBA {l}");
            }
        }
    }

    #[test]
    fn bounds_are_found_by_scanning_the_chunk_flags_once_the_list_is_full() {
        let t = VerifyTable::new(1 << 30, 512, true).unwrap();
        t.set_volatile(true);
        t.log.lock().unwrap().overflow = true;
        let g = write(&t, 3 << 20, Landing::Volatile);
        let _ = write(&t, 7 << 25, Landing::Volatile);
        assert_eq!(t.undurable_lbas(), 2);
        t.power_lost(1);
        assert!(t.ambiguous(3 << 20) && t.ambiguous(7 << 25));
        assert!(read(&t, 3 << 20, g));
        t.flush_done(t.flush_begin());
        assert_eq!(t.undurable_lbas(), 1, "the settled LBA keeps its bound until a flush; the other is still ambiguous");
        assert!(t.lbas.flagged_chunks().contains(&(7 << 25 >> CHUNK_SHIFT)));
    }

    #[test]
    fn fua_and_non_volatile_writes_are_durable_at_completion() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        let g = write(&t, 3, Landing::Volatile);
        let g2 = write(&t, 3, Landing::Durable);
        t.power_lost(1);
        assert!(!t.ambiguous(3));
        assert!(!read(&t, 3, g) && read(&t, 3, g2));
    }

    #[test]
    fn an_interrupted_write_may_or_may_not_have_happened() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        let g1 = write(&t, 7, Landing::Durable);
        let g2 = write(&t, 7, Landing::Maybe);
        assert!(t.ambiguous(7), "no power loss needed: a reset aborted it");
        assert!(read(&t, 7, g1));
        // The settled state is the base of the next generation.
        let g3 = write(&t, 7, Landing::Durable);
        assert_eq!(g3, g2);
        assert!(!t.ambiguous(7) && read(&t, 7, g3) && !read(&t, 7, g1));
    }

    #[test]
    fn writes_completed_after_a_flush_was_submitted_stay_undurable() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        let g1 = write(&t, 600, Landing::Volatile);
        let ticket = t.flush_begin();
        let _g2 = write(&t, 600, Landing::Volatile);
        t.flush_done(ticket);
        assert_eq!(t.undurable_lbas(), 1);
        t.power_lost(1);
        assert!(read(&t, 600, g1), "the flush did not cover the second write");
    }

    #[test]
    fn a_flush_moves_the_bound_of_an_lba_written_during_it_to_its_state_at_submission() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        let _ = write(&t, 600, Landing::Durable);
        let g0 = write(&t, 600, Landing::Volatile);
        let g1 = write(&t, 600, Landing::Volatile);
        let ticket = t.flush_begin();
        let g2 = write(&t, 600, Landing::Volatile);
        t.flush_done(ticket);
        t.power_lost(1);
        assert!(!read(&t, 600, g0), "g1 was flushed: the older g0 may not come back");
        assert!(read(&t, 600, g1) || read(&t, 600, g2));
    }

    #[test]
    fn a_flush_leaves_a_bound_that_changed_while_it_ran() {
        for first in [Landing::Durable, Landing::Volatile] {
            // A bound that is a generation (after a durable write) or unknown (the first
            // write of an LBA never written with verification).
            let t = VerifyTable::new(4096, 512, true).unwrap();
            t.set_volatile(true);
            let _ = write(&t, 9, first);
            let _ = write(&t, 9, Landing::Volatile);
            let ticket = t.flush_begin();
            // Zeroes, then a generation: the order since the bound is lost.
            assert!(t.try_lock(9, 1));
            t.unlock_write(9, 1, |_, _| ZEROES, Landing::Volatile, || false);
            let _ = write(&t, 9, Landing::Volatile);
            t.flush_done(ticket);
            t.power_lost(1);
            assert!(read(&t, 9, ZEROES), "{first:?}: zeroes written during the flush may be what survived");
        }
    }

    #[test]
    fn generations_wrapping_past_the_bound_accept_any_generation() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        let _ = write(&t, 3, Landing::Durable);
        let gens: Vec<u8> = (0..200).map(|_| write(&t, 3, Landing::Volatile)).collect();
        t.power_lost(1);
        // More writes than generations since the durable one: the generation after the
        // newest was written too (123 writes earlier), outside the ring from the bound to
        // the newest, and may be what survived.
        let older = next_gen(gens[199]);
        assert_eq!(older, gens[199 - 123]);
        assert!(read(&t, 3, older));
        // Fewer than a ring's worth: the order still holds.
        let u0 = write(&t, 4, Landing::Durable);
        let us: Vec<u8> = (0..100).map(|_| write(&t, 4, Landing::Volatile)).collect();
        t.power_lost(2);
        assert!(!read(&t, 4, next_gen(us[99])), "never written since the durable one");
        assert!(read(&t, 4, u0) && t.state(4) == u0);
    }

    #[test]
    fn a_write_that_brings_the_ring_back_to_the_bound_loses_the_order() {
        // Bound g, then GEN_LAST - GEN_FIRST writes: the next generation is g again.
        let lo = lo_enc(10);
        let mut b = lo;
        let mut cur = 10;
        for _ in 0..(GEN_LAST - GEN_FIRST + 1) {
            let new = next_gen(cur);
            b = next_lo(b, cur, new, Landing::Volatile);
            cur = new;
        }
        assert_eq!(cur, 10);
        assert_eq!(b, lo_enc(UNKNOWN));
        assert_eq!(next_lo(lo, 10, 11, Landing::Volatile), lo, "one write keeps the bound");
    }

    #[test]
    fn a_loss_seen_while_completing_makes_the_write_ambiguous() {
        let t = VerifyTable::new(4096, 512, true).unwrap();
        t.set_volatile(true);
        assert!(t.try_lock(5, 1));
        t.unlock_write(5, 1, |_, old| next_gen(old), Landing::Volatile, || true);
        assert!(t.ambiguous(5), "power went after the completion was polled");
        t.power_lost(1);
        t.power_lost(1);
        assert!(t.ambiguous(5));
    }

    #[test]
    fn locks_conflict_and_release() {
        let t = VerifyTable::new(100, 512, true).unwrap();
        assert!(t.try_lock(10, 8));
        assert!(!t.try_lock(17, 2), "overlaps LBA 17");
        assert!(t.try_lock(18, 2), "the failed attempt released LBA 18");
        for l in 10..18 {
            t.unlock(l, Some(next_gen(t.state(l))));
        }
        assert_eq!(t.state(12), GEN_FIRST);
        assert!(t.try_lock(10, 8));
    }

    #[test]
    fn first_tries_lock_as_retries_do_and_release_on_conflict() {
        let t = VerifyTable::new(100, 512, true).unwrap();
        assert!(t.try_lock_first(10, 8));
        assert!(!t.try_lock_first(17, 2), "overlaps LBA 17");
        assert!(!t.try_lock(17, 2), "overlaps LBA 17");
        assert!(t.try_lock_first(18, 2), "the failed attempt released LBA 18");
        t.unlock_range(10, 8, |_, _| Some(GEN_FIRST));
        assert!(t.try_lock(17, 1));
        assert_eq!(t.state(17), GEN_FIRST);
    }

    #[test]
    fn word_locks_span_partial_words_and_release_on_conflict() {
        let t = VerifyTable::new(64, 512, true).unwrap();
        assert!(t.try_lock(5, 1));
        // 2..20 spans a partial word, a full word and a partial word; LBA 5 conflicts,
        // so nothing of it stays locked.
        assert!(!t.try_lock(2, 18));
        assert!(t.try_lock(2, 3) && t.try_lock(6, 14), "the failed attempt released everything it took");
        // A conflict in a later word releases the earlier, fully locked word too.
        assert!(t.try_lock(40, 1));
        assert!(!t.try_lock(24, 20));
        assert!(t.try_lock(24, 16));
        t.unlock_range(24, 16, |l, old| Some(if l % 2 == 0 { next_gen(old) } else { old }));
        assert_eq!((t.state(24), t.state(25), t.state(39)), (GEN_FIRST, UNKNOWN, UNKNOWN));
        assert!(t.try_lock(24, 16), "unlocked");
    }

    #[test]
    fn generations_cycle_through_their_range() {
        assert_eq!(next_gen(UNKNOWN), GEN_FIRST);
        assert_eq!(next_gen(ZEROES), GEN_FIRST);
        assert_eq!(next_gen(GEN_FIRST), GEN_FIRST + 1);
        assert_eq!(next_gen(GEN_LAST), GEN_FIRST);
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

    #[test]
    fn blind_writers_and_verifiers_exclude_each_other() {
        let t = VerifyTable::new(100, 512, true).unwrap();
        t.join(true, false).unwrap();
        assert_eq!(t.join(false, true), Err(TableBusy::Verifier));
        t.join(false, false).unwrap();
        t.leave(true, false);
        t.join(false, true).unwrap();
        assert_eq!(t.join(true, false), Err(TableBusy::BlindWriter));
    }

    #[test]
    fn an_ambiguous_lba_stays_ambiguous_while_a_flush_of_its_chunk_completes() {
        // After a power loss LBA 10 may show generation 3 or 4. A flush completing meanwhile
        // (its ticket covers LBA 11 of the same chunk) must never make LBA 10 look settled,
        // not even for a moment: a reader that looked then would call the old data stale.
        let t = Arc::new(VerifyTable::new(4096, 512, true).unwrap());
        t.set_volatile(true);
        write(&t, 10, Landing::Durable);
        write(&t, 10, Landing::Volatile);
        t.power_lost(1);
        assert!(t.ambiguous(10));
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (t, stop) = (t.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rounds = 0u32;
                while !stop.load(Ordering::Relaxed) || rounds < 1000 {
                    write(&t, 11, Landing::Volatile);
                    let ticket = t.flush_begin();
                    t.flush_done(ticket);
                    rounds += 1;
                }
                rounds
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut looks = 0u64;
        while std::time::Instant::now() < deadline {
            assert!(t.ambiguous(10) && t.may_show(10, 4, 3), "LBA 10 looked settled during a flush, after {looks} looks");
            looks += 1;
        }
        stop.store(true, Ordering::Relaxed);
        flusher.join().unwrap();
        assert!(t.ambiguous(10));
    }

    #[test]
    fn a_power_loss_during_a_flush_makes_every_unflushed_lba_ambiguous() {
        // A power loss recorded while a flush completes must still reach every LBA that
        // flush did not cover.
        for round in 0..200u64 {
            let t = Arc::new(VerifyTable::new(4096, 512, true).unwrap());
            t.set_volatile(true);
            write(&t, 10, Landing::Volatile);
            let ticket = t.flush_begin();
            write(&t, 11, Landing::Volatile);
            write(&t, 10, Landing::Volatile);
            let flusher = {
                let t = t.clone();
                std::thread::spawn(move || t.flush_done(ticket))
            };
            t.power_lost(round + 1);
            flusher.join().unwrap();
            // LBA 11 was written after the flush was submitted; LBA 10 was written again.
            assert!(t.ambiguous(11) && t.may_show(11, t.state(11), UNKNOWN), "round {round}: LBA 11 not ambiguous");
            assert!(t.ambiguous(10), "round {round}: LBA 10 not ambiguous");
        }
    }
}
