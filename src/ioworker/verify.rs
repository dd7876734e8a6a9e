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
//!
//! Here: the table's states, locks and pattern pools; `durable`: the lower bounds, flushes
//! and power losses; `block`: what a written LBA holds and how a read checks it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::lba_map::{LEAF_LBAS, LbaMap};

mod block;
mod durable;

pub use block::{Miscompare, MiscompareKind, PatternPool, check, fill_pattern, observed, stamp};
use durable::{DirtyLog, LO_AMBIG, lo_state};
pub use durable::{FlushTicket, Landing, possible};

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
/// Pattern pools a read's check finds without a lock (plans use a handful).
const RECENT_POOLS: usize = 16;

#[inline]
fn is_gen(v: u8) -> bool {
    (GEN_FIRST..=GEN_LAST).contains(&v)
}

/// The generation after `v` (a write over a non-generation state starts at GEN_FIRST).
#[inline]
pub fn next_gen(v: u8) -> u8 {
    if (GEN_FIRST..GEN_LAST).contains(&v) { v + 1 } else { GEN_FIRST }
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
        self.lock_words(lba, n, true, false, None)
    }

    /// [`VerifyTable::try_lock`] for an I/O's first try: each word is taken at once. One
    /// ownership request instead of a shared read and an upgrade; and where the table's
    /// page was never touched (a sparse namespace), a write fault gives it a zeroed page,
    /// where a read first would map the zero page and then copy it on the write, flushing
    /// the TLB of every CPU the process runs on.
    #[inline]
    pub fn try_lock_first(&self, lba: u64, n: u64) -> bool {
        self.lock_words(lba, n, false, false, None)
    }

    /// [`VerifyTable::try_lock_first`] (`first`) or [`VerifyTable::try_lock`] that also
    /// gives the states the LBAs hold (their bounds are not read), from the words the lock
    /// took: a writer needs them and they hold still while it holds the lock. `write`: the
    /// command changes the data, so its completion will update bounds where its leaves
    /// hold them; their lines are asked for now, while the command is in flight (a miss at
    /// completion held back every write over flushed data).
    #[inline]
    pub fn try_lock_states(&self, lba: u64, n: u64, first: bool, write: bool, out: &mut Vec<LbaState>) -> bool {
        out.clear();
        self.lock_words(lba, n, !first, write, Some(out))
    }

    #[inline]
    fn lock_words(&self, lba: u64, n: u64, look_first: bool, write: bool, mut out: Option<&mut Vec<LbaState>>) -> bool {
        let bounds = write && self.lo_active.load(Ordering::Relaxed);
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
            // A leaf's bounds are one line: asked for once, from its first word in range.
            if bounds && (w <= lba || w % LEAF_LBAS == 0) {
                self.lbas.prefetch_bound(word);
            }
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
        self.unlock_words(lba, n, value, |_, _| {});
    }

    /// [`VerifyTable::unlock_range`] that first calls `before(first_lba, state word)` for
    /// each word, from the walk that unlocks it.
    #[inline]
    fn unlock_words(&self, lba: u64, n: u64, value: impl Fn(u64, u8) -> Option<u8>, mut before: impl FnMut(u64, &AtomicU64)) {
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
            before(w, word);
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn blind_writers_and_verifiers_exclude_each_other() {
        let t = VerifyTable::new(100, 512, true).unwrap();
        t.join(true, false).unwrap();
        assert_eq!(t.join(false, true), Err(TableBusy::Verifier));
        t.join(false, false).unwrap();
        t.leave(true, false);
        t.join(false, true).unwrap();
        assert_eq!(t.join(true, false), Err(TableBusy::BlindWriter));
    }
}
