//! Durability: the durable lower bound of each LBA written since its last flush, and what
//! a Flush, a power loss and an interrupted command do to it (see the parent module).

use std::sync::atomic::{AtomicU64, Ordering};

use super::super::lba_map::{CHUNK_SHIFT, LEAF_LBAS};
use super::{GEN_FIRST, GEN_LAST, LOCK, UNKNOWN, VerifyTable, is_gen, next_gen};

/// LBAs per flag of the chunks with a durable lower bound.
const CHUNK: u64 = 1 << CHUNK_SHIFT;
/// Most chunks remembered in a list; beyond it, the map is scanned instead.
const LOG_CAP: usize = 1 << 20;
/// Lower-bound byte: none recorded (the expected state is durable).
const LO_NONE: u8 = 0;
/// Lower-bound flag: the LBA may hold any state from the bound to the expected one.
pub(super) const LO_AMBIG: u8 = 0x80;

#[inline]
fn lo_enc(state: u8) -> u8 {
    state + 1
}
#[inline]
pub(super) fn lo_state(b: u8) -> u8 {
    (b & !LO_AMBIG).wrapping_sub(1)
}
/// The bound byte a fresh leaf implies for an LBA in state `state`: "unknown" where the
/// state is known (it came from a write into the cache), none where it is not.
#[inline]
fn implied_lo(state: u8) -> u8 {
    if state == UNKNOWN { LO_NONE } else { lo_enc(UNKNOWN) }
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
    /// Held leaves without a bound (their bounds went since they were marked).
    empty: Vec<u64>,
    chunks: Vec<u64>,
}

impl FlushTicket {
    /// Bytes it holds.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        use std::mem::size_of_val;
        size_of_val(self.fresh.as_slice()) + size_of_val(self.written.as_slice()) + size_of_val(self.empty.as_slice()) + size_of_val(self.chunks.as_slice())
    }
}

#[derive(Default)]
pub(super) struct DirtyLog {
    chunks: Vec<u64>,
    overflow: bool,
}

impl VerifyTable {
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

    /// Records that the leaves and chunks of `lba..lba+n` hold lower bounds (after the
    /// bounds themselves: see [`LbaMap::release`](super::super::lba_map::LbaMap::release)).
    fn mark_dirty(&self, lba: u64, n: u64) {
        // Every chunk of the range has a leaf in it: one walk per leaf marks both.
        let mut l = lba & !(LEAF_LBAS - 1);
        while l < lba + n {
            let (flagged, c) = (self.lbas.hold(l), l / CHUNK);
            l += LEAF_LBAS;
            if !flagged && self.lbas.flag(c) {
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

    /// Calls `f(first lba, state word, lower-bound word, fresh)` for every word of the held
    /// leaves of `chunk`, with the bounds written or implied by a fresh leaf (`fresh`).
    fn each_lo_word(&self, chunk: u64, mut f: impl FnMut(u64, u64, u64, bool)) {
        self.lbas.each_word(chunk, |w, states, word, fresh| {
            let st = states.load(Ordering::Acquire);
            // A fresh leaf has no bytes written (they are written out when it is spoiled).
            let v =
                if fresh { (0..8u64).fold(0, |v, i| v | u64::from(implied_lo((st >> (i * 8)) as u8 & !LOCK)) << (i * 8)) } else { self.lbas.read_bound(word) };
            f(w, st, v, fresh);
        });
    }

    /// Calls `f(lba, lo byte, state, fresh)` for every LBA of `chunk` with a lower bound,
    /// written or implied by a fresh leaf (`fresh`).
    fn each_lo(&self, chunk: u64, mut f: impl FnMut(u64, u8, u8, bool)) {
        self.each_lo_word(chunk, |w, st, v, fresh| {
            if v == 0 {
                return;
            }
            for i in 0..8u64 {
                let b = (v >> (i * 8)) as u8;
                if b != LO_NONE && w + i < self.nlba {
                    f(w + i, b, (st >> (i * 8)) as u8 & !LOCK, fresh);
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
            // The leaf is spoiled from the walk that unlocks it, not from a second one.
            let spoil = |w, sw: &AtomicU64| {
                if self.lbas.fresh(sw) {
                    self.spoil(w, sw, durable_spoil);
                }
            };
            return self.unlock_words(lba, n, |l, old| Some(value(l, old)), spoil);
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
            // Once set it stays set (until the table is cleared): a load spares every write
            // into the cache a store to a line all workers read.
            if !self.lo_active.load(Ordering::Relaxed) {
                self.lo_active.store(true, Ordering::SeqCst);
            }
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
        let (fresh_leaves, written, empty) = (&mut t.fresh, &mut t.written, &mut t.empty);
        let mut done = |leaf| match leaf {
            Some((first, _, _, lo)) if lo == [LO_NONE; LEAF_LBAS as usize] => empty.push(first),
            Some((first, true, states, _)) => fresh_leaves.push((first, states)),
            Some((first, false, states, lo)) => written.push((first, states, lo)),
            None => {}
        };
        for &c in &t.chunks {
            self.each_lo_word(c, |w, st, v, fresh| {
                let first = w & !(LEAF_LBAS - 1);
                if leaf.is_some_and(|x| x.0 != first) {
                    done(leaf.take());
                }
                let x = leaf.get_or_insert((first, fresh, [UNKNOWN; LEAF_LBAS as usize], [LO_NONE; LEAF_LBAS as usize]));
                for i in 0..8u64 {
                    let (state, b) = ((st >> (i * 8)) as u8 & !LOCK, (v >> (i * 8)) as u8);
                    if b != LO_NONE && b & LO_AMBIG == 0 && w + i < self.nlba {
                        x.2[(w + i - first) as usize] = state;
                        x.3[(w + i - first) as usize] = b;
                    }
                }
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
        // A power loss recorded now must find every leaf and chunk that holds bounds (see
        // `power_lost`), so the marks change under the gate.
        let _gate = self.chunk_gate.lock().unwrap_or_else(|e| e.into_inner());
        for (first, states) in &t.fresh {
            let sw = self.word(*first);
            // Still fresh: an LBA this flush made durable (unlocked, as it was at
            // submission) needs no bound; the others keep the "unknown" one implied, and
            // that is all. Not read again, so no page of bounds is touched for them.
            let then = |l: u64| states[(l - first) as usize];
            if !(self.lbas.fresh(sw) && self.spoil(*first, sw, |l, b| b != 0 && (b & LOCK != 0 || then(l) != b))) {
                self.flushed_leaf(*first, sw, states, &states.map(implied_lo));
            }
            self.release_leaf(*first, sw);
        }
        for (first, states, lo) in &t.written {
            let sw = self.word(*first);
            self.flushed_leaf(*first, sw, states, lo);
            self.release_leaf(*first, sw);
        }
        for &first in &t.empty {
            self.release_leaf(first, self.word(first));
        }
        for &c in &t.chunks {
            // Only a chunk without held leaves is cleared; a leaf held between the look and
            // the clear is found by the second look, which sets the bit again.
            if self.lbas.chunk_held(c) {
                continue;
            }
            self.lbas.unflag(c);
            if self.lbas.chunk_held(c) {
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

    /// Unmarks the leaf from `first` (state word `sw`) as held if it holds no bounds now; a
    /// leaf still fresh implies its bounds and stays held. Under the gate.
    fn release_leaf(&self, first: u64, sw: &AtomicU64) {
        if !self.lbas.fresh(sw) {
            self.lbas.release(first, || self.lbas.leaf_words(first, sw).all(|(_, _, lo)| self.lbas.read_bound(lo) == 0));
        }
    }

    /// [`VerifyTable::flush_done`] for the LBAs of the leaf from `first` (its first state
    /// word `leaf`) that had bound byte `lo` and state `states` when the flush was submitted.
    fn flushed_leaf(&self, first: u64, leaf: &AtomicU64, states: &[u8; LEAF_LBAS as usize], lo: &[u8; LEAF_LBAS as usize]) {
        for (w, sw, lw) in self.lbas.leaf_words(first, leaf) {
            let offs = (w - first) as usize..(w - first) as usize + 8;
            if lo[offs.clone()].iter().all(|&b| b == LO_NONE) {
                continue;
            }
            let mask = offs.clone().filter(|&o| lo[o] != LO_NONE).fold(0u64, |m, o| m | 0xff << ((o as u64 & 7) * 8));
            let locks = mask & 0x8080_8080_8080_8080;
            // The LBAs not in use are locked as `try_lock` does, all in one compare-and-swap,
            // and unlocked keeping their states; `cur` has their states meanwhile.
            let (mut cur, mut got) = (sw.load(Ordering::Relaxed), 0);
            while locks & !cur != 0 {
                match sw.compare_exchange_weak(cur, cur | (locks & !cur), Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => {
                        got = locks & !cur;
                        break;
                    }
                    Err(actual) => cur = actual,
                }
            }
            self.update_lo_word(lw, w, mask, |l, b| {
                let (o, sh) = ((l - first) as usize, (l & 7) * 8);
                let (v, b0) = (states[o], lo[o]);
                let same = got >> sh & u64::from(LOCK) != 0 && (cur >> sh) as u8 & !LOCK == v;
                if b & !LO_AMBIG != b0 {
                    b
                } else if same && b == b0 {
                    LO_NONE
                } else if lo_state(b0) == UNKNOWN {
                    // Writes that lose the order leave this bound as it was: no telling
                    // whether one ran since the flush was submitted.
                    b
                } else {
                    lo_enc(v) | (b & LO_AMBIG)
                }
            });
            if got != 0 {
                sw.fetch_and(!got, Ordering::Release);
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
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

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
        // 592 bytes per scattered write (0.14 per byte written): two nodes, a leaf and a
        // held-leaf word per node; and two bits of leaf marks.
        let bytes = 2000 * 592 + 2000 / 4;
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

    /// Words a Flush would visit in chunk 0 (those of its held leaves).
    fn held_words(t: &VerifyTable) -> usize {
        let mut n = 0;
        t.lbas.each_word(0, |_, _, _, _| n += 1);
        n
    }

    #[test]
    fn a_flush_leaves_held_only_the_leaves_written_while_it_ran() {
        let t = VerifyTable::new(1 << 20, 512, true).unwrap();
        t.set_volatile(true);
        write_range(&t, 0, 4096, Landing::Volatile);
        assert_eq!(held_words(&t), 512, "every leaf of the chunk holds bounds");
        let ticket = t.flush_begin();
        write_range(&t, 100, 1, Landing::Volatile);
        t.flush_done(ticket);
        assert_eq!(t.undurable_lbas(), 1);
        assert_eq!(held_words(&t), 8, "the next Flush visits one leaf, not the chunk's 64");
        t.flush_done(t.flush_begin());
        assert_eq!((held_words(&t), t.lbas.flagged(0)), (0, false));
    }

    #[test]
    fn a_leaf_whose_bounds_a_durable_write_removed_is_released_by_the_next_flush() {
        let t = VerifyTable::new(1 << 20, 512, true).unwrap();
        t.set_volatile(true);
        write_range(&t, 0, 64, Landing::Volatile);
        t.flush_done(t.flush_begin());
        write_range(&t, 5, 1, Landing::Volatile);
        assert_eq!((t.undurable_lbas(), held_words(&t)), (1, 8));
        write_range(&t, 5, 1, Landing::Durable);
        assert_eq!((t.undurable_lbas(), held_words(&t)), (0, 8), "held until a Flush looks");
        t.flush_done(t.flush_begin());
        assert_eq!((held_words(&t), t.lbas.flagged(0)), (0, false));
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
    fn racing_flushes_and_cached_writes_keep_every_flushed_state_possible() {
        // Three writers write their own LBAs into the cache at random while a fourth thread
        // flushes over and over; leaves are held and released under them. After a power
        // loss, each LBA must accept the state of its last write that completed before the
        // last Flush was submitted, and an LBA written only before it must be durable.
        // (Submission here is the span of `flush_begin`: writes overlapping it may or may
        // not be covered, so their LBAs are left out.)
        use std::sync::atomic::AtomicU64 as Seq;
        const N: u64 = 1 << 9;
        for round in 0..24u64 {
            let t = VerifyTable::new(N, 512, true).unwrap();
            t.set_volatile(true);
            let clock = Seq::new(0);
            let last_flush = [Seq::new(0), Seq::new(0)];
            let stop = std::sync::atomic::AtomicBool::new(false);
            // Per LBA, its writes: (clock before, clock after, state before, state after).
            let logs: Vec<Vec<(u64, u64, u8, u8)>> = std::thread::scope(|s| {
                let (t, clock, last_flush, stop) = (&t, &clock, &last_flush, &stop);
                // Stops the flusher however the writers end.
                struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
                impl Drop for Stop<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let flusher = s.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let b = clock.fetch_add(1, Ordering::SeqCst);
                        let ticket = t.flush_begin();
                        let e = clock.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                        t.flush_done(ticket);
                        last_flush[0].store(b, Ordering::SeqCst);
                        last_flush[1].store(e, Ordering::SeqCst);
                    }
                });
                let writers: Vec<_> = (0..3u64)
                    .map(|k| {
                        s.spawn(move || {
                            let mut log = Vec::new();
                            let mut x = round * 7 + k + 1;
                            for _ in 0..20_000 {
                                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                                let l = (x >> 33) % (N / 3) * 3 + k;
                                let before = clock.fetch_add(1, Ordering::SeqCst);
                                let old = t.state(l);
                                // A Flush completing locks the LBAs it looks at for a moment.
                                while !t.try_lock_first(l, 1) {
                                    std::hint::spin_loop();
                                }
                                t.unlock_write(l, 1, |_, old| next_gen(old), Landing::Volatile, || false);
                                log.push((l, before, clock.fetch_add(1, Ordering::SeqCst), old, t.state(l)));
                            }
                            log
                        })
                    })
                    .collect();
                let logs: Vec<_> = {
                    let _stop = Stop(stop);
                    writers.into_iter().map(|w| w.join().unwrap()).collect()
                };
                flusher.join().unwrap();
                let mut per = vec![Vec::new(); N as usize];
                for (l, b, a, old, new) in logs.into_iter().flatten() {
                    per[l as usize].push((b, a, old, new));
                }
                per
            });
            let (b, e) = (last_flush[0].load(Ordering::SeqCst), last_flush[1].load(Ordering::SeqCst));
            t.power_lost(1);
            for (l, writes) in logs.iter().enumerate() {
                let (l, cur) = (l as u64, t.state(l as u64));
                if writes.iter().any(|w| w.1 > b && w.0 < e) {
                    continue;
                }
                let durable = writes.iter().rfind(|w| w.1 < b).map_or(UNKNOWN, |w| w.3);
                if writes.iter().all(|w| w.1 < b) {
                    assert!(!t.ambiguous(l), "round {round}, LBA {l}: flushed and not written since");
                    assert_eq!(cur, durable);
                } else if durable != UNKNOWN {
                    // As a read after the power loss checks it.
                    let accepted = (durable == cur && !t.ambiguous(l)) || t.may_show(l, cur, durable);
                    assert!(accepted, "round {round}, LBA {l}: its flushed state {durable} (now {cur})");
                }
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
