//! One byte per LBA (its state), and a second (its durable lower bound) only where one is
//! needed, held only where LBAs were touched.
//!
//! A flat table of one byte per LBA costs a 4 KiB page for every write scattered over
//! a large namespace: 1 byte of table per byte written. This is a tree instead, four
//! loads deep: a root entry per 2^18 LBAs (2 MiB for 64 TiB of 512-byte LBAs, touched a
//! page at a time), nodes of 64 entries, and leaves of 64 LBAs: 64 state bytes, a cache
//! line. Lower bounds live in a second arena at the same offsets as their states, touched
//! only where bounds are written, so the states of a dense region stay as compact as a flat
//! table's. A write scattered into an untouched part of a namespace takes 592 bytes (two
//! nodes, a held-leaf word each, and its states); a dense region takes 1 byte per LBA and
//! 1/16 of that in nodes (1/512 in held-leaf words), and 1 byte more per LBA where bounds
//! are written.
//!
//! **Fresh leaves.** A leaf is *fresh* until something other than a write into a volatile
//! write cache changes it: every LBA of a fresh leaf with a known state got it from such a
//! write and was never made durable, so its bound is "unknown" (it may show anything after
//! a power loss) and needs no byte. Filling a namespace with the cache on thus takes no
//! bounds at all. Whoever first needs a leaf's bounds written out *spoils* it: it marks the
//! leaf spoiling, writes the implied bounds out, then marks it spoiled; a writer that finds
//! a leaf spoiling waits for the mark. Two bits per leaf, in words of 32 leaves.
//!
//! Nodes and leaves are cut from two arenas reserved for the whole namespace and never
//! given back while the table lives, so a reference into them stays valid; forgetting
//! everything zeroes the leaves in place and keeps the tree. Entries are claimed with a
//! compare-and-swap to [`BUSY`] before their node is cut, so no node is cut twice.
//!
//! The lowest level's span (4096 LBAs) is the *chunk* of the lower-bound bookkeeping:
//! the node entry that points to it has a flag bit saying the chunk holds bounds, and a
//! word beside its node has a bit per leaf saying which of its leaves are *held* (may hold
//! bounds), so a Flush visits the leaves written since the last one, not every chunk's
//! 4096 LBAs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapRaw, UncheckedAdvice};

/// LBAs per leaf.
const LEAF_SHIFT: u32 = 6;
pub const LEAF_LBAS: u64 = 1 << LEAF_SHIFT;
/// Entries per node.
const FAN_SHIFT: u32 = 6;
/// LBAs under one entry of the upper nodes (and one chunk).
pub const CHUNK_SHIFT: u32 = LEAF_SHIFT + FAN_SHIFT;
/// LBAs under one root entry.
const ROOT_SHIFT: u32 = CHUNK_SHIFT + FAN_SHIFT;
/// Bytes of a leaf (the states; the bounds take as many in their own arena).
const LEAF_BYTES: usize = 1 << LEAF_SHIFT;
/// Bytes of a node.
const NODE_BYTES: usize = 4 << FAN_SHIFT;
const MASK: u64 = (1 << FAN_SHIFT) - 1;
/// An entry whose piece is being cut (masked like the entry).
const BUSY: u32 = u32::MAX;
/// Flag of a chunk's entry: the chunk holds lower bounds. Node numbers stay below it.
const FLAG: u32 = 0x8000_0000;
/// Entry masks: a chunk's entry holds its flag, the others only a number.
const NUMBER: u32 = u32::MAX;
const CHUNK_NUMBER: u32 = !FLAG;
/// The most LBAs a table covers: leaf numbers are 32 bits, below [`BUSY`].
pub const MAX_LBAS: u64 = (u32::MAX as u64 - 1) << LEAF_SHIFT;
/// Leaf marks: a spoil has begun / has ended (two bits per leaf).
const SPOILING: u64 = 1;
const SPOILED: u64 = 2;
/// Leaves per word of marks.
const MARKS_PER_WORD: u32 = 32;
/// Bytes of a page of bounds, as counted.
const PAGE: usize = 4096;

/// One arena of equal pieces, numbered from 1 (0 is "none").
struct Arena {
    map: MmapRaw,
    piece: usize,
    next: AtomicU32,
    cap: u32,
}

impl Arena {
    fn new(pieces: u64, piece: usize) -> std::io::Result<Self> {
        let map = sparse((pieces + 1) as usize * piece)?;
        Ok(Arena { map, piece, next: AtomicU32::new(1), cap: (pieces + 1) as u32 })
    }

    /// A fresh, zeroed piece.
    fn cut(&self) -> u32 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // Every entry is claimed before its piece is cut, so the arenas hold one piece per
        // entry the namespace can have.
        assert!(n < self.cap, "verification table arena overrun");
        // The piece's first access is a write (of the zero it holds), so that a page never
        // touched gets its own zeroed page at once. A read first maps the shared zero page
        // and the write after it copies that page and flushes the TLB of every CPU the
        // process runs on: a walk into a new node did that, 8 % of a run of first writes
        // scattered over 64 TiB in interrupts between the two cores.
        // SAFETY: piece `n` is inside the mapping (`n < cap`), aligned for a u32, only
        // accessed atomically, and not yet in any entry, so no one else uses it.
        unsafe { AtomicU32::from_ptr(self.at(n).cast::<u32>()) }.store(0, Ordering::Relaxed);
        n
    }

    #[inline]
    fn at(&self, n: u32) -> *mut u8 {
        debug_assert!(n != 0 && n < self.cap);
        // SAFETY: pieces below `cap` are inside the mapping (sized in `new`); callers only
        // pass numbers read from entries, which hold only numbers `cut` returned.
        unsafe { self.map.as_mut_ptr().add(n as usize * self.piece) }
    }

    /// Bytes of pieces cut so far.
    fn used(&self) -> usize {
        (self.next.load(Ordering::Relaxed) as usize - 1) * self.piece
    }
}

fn sparse(len: usize) -> std::io::Result<MmapRaw> {
    Ok(MmapRaw::from(memmap2::MmapOptions::new().len(len.max(8)).no_reserve_swap().map_anon()?))
}

/// The per-LBA bytes of one namespace.
pub struct LbaMap {
    root: MmapRaw,
    roots: u64,
    nodes: Arena,
    leaves: Arena,
    /// The lower bounds of leaf `n` at the offset of its states in `leaves`.
    bounds: MmapRaw,
    /// Two bits per leaf number ([`SPOILING`], [`SPOILED`]).
    marks: MmapRaw,
    /// A bit per page of `bounds` ever written (for [`LbaMap::bytes`]: a read maps the
    /// shared zero page, which takes no memory but counts as resident to `mincore`).
    bound_pages: MmapRaw,
    /// A word per node number: for a chunk's node, a bit per leaf that is held.
    held: MmapRaw,
}

impl LbaMap {
    /// A map for `nlba` LBAs, all bytes zero. Refuses more than [`MAX_LBAS`].
    pub fn new(nlba: u64) -> std::io::Result<Self> {
        if nlba > MAX_LBAS {
            return Err(std::io::Error::other(format!(
                "{nlba} LBAs are more than the verification table holds ({MAX_LBAS}); format the namespace with larger LBAs or set verify_disable"
            )));
        }
        let roots = nlba.max(1).div_ceil(1 << ROOT_SHIFT);
        let chunks = nlba.max(1).div_ceil(1 << CHUNK_SHIFT);
        let leaves = Arena::new(nlba.max(1).div_ceil(1 << LEAF_SHIFT), LEAF_BYTES)?;
        let marks = sparse((leaves.cap / MARKS_PER_WORD + 1) as usize * 8)?;
        let bound_pages = sparse((leaves.map.len() / PAGE / 64 + 1) * 8)?;
        let nodes = Arena::new(roots + chunks, NODE_BYTES)?;
        Ok(LbaMap {
            root: sparse(roots as usize * 4)?,
            roots,
            held: sparse(nodes.cap as usize * 8)?,
            nodes,
            bounds: sparse(leaves.map.len())?,
            leaves,
            marks,
            bound_pages,
        })
    }

    #[inline]
    fn root_entry(&self, lba: u64) -> &AtomicU32 {
        let i = lba >> ROOT_SHIFT;
        assert!(i < self.roots, "LBA {lba:#x} beyond the table");
        // SAFETY: `roots` aligned u32 entries are inside the mapping; only accessed
        // atomically; it lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.root.as_mut_ptr().cast::<u32>().add(i as usize)) }
    }

    #[inline]
    fn node_entry(&self, node: u32, i: u64) -> &AtomicU32 {
        // SAFETY: a node is NODE_BYTES of u32 entries and `i` < 64; pieces are only
        // accessed atomically and live as long as `self`.
        unsafe { AtomicU32::from_ptr(self.nodes.at(node).cast::<u32>().add(i as usize)) }
    }

    /// The piece an entry (holding `mask`'s bits) points to; `None` where there is none
    /// yet (or it is being cut: it is zero then).
    #[inline]
    fn look(e: &AtomicU32, mask: u32) -> Option<u32> {
        let v = e.load(Ordering::Acquire) & mask;
        (v != 0 && v != BUSY & mask).then_some(v)
    }

    /// The piece an entry points to, cut from `arena` on first use.
    #[inline(always)]
    fn get(e: &AtomicU32, mask: u32, arena: &Arena) -> u32 {
        Self::look(e, mask).unwrap_or_else(|| Self::get_cold(e, mask, arena))
    }

    /// [`LbaMap::get`] where the piece is missing or being cut.
    #[cold]
    #[inline(never)]
    fn get_cold(e: &AtomicU32, mask: u32, arena: &Arena) -> u32 {
        loop {
            let v = e.load(Ordering::Acquire) & mask;
            if v != 0 && v != BUSY & mask {
                return v;
            }
            // The flag is never set on an entry without a piece, so a free entry is 0.
            if v == 0 && e.compare_exchange(0, BUSY & mask, Ordering::Acquire, Ordering::Acquire).is_ok() {
                let n = arena.cut();
                e.store(n, Ordering::Release);
                return n;
            }
            std::hint::spin_loop();
        }
    }

    /// The entry of the chunk holding `lba`, if its path exists.
    #[inline]
    fn chunk_entry(&self, lba: u64) -> Option<&AtomicU32> {
        let mid = Self::look(self.root_entry(lba), NUMBER)?;
        Some(self.node_entry(mid, lba >> CHUNK_SHIFT & MASK))
    }

    #[inline]
    fn leaf(&self, lba: u64) -> Option<*mut u8> {
        let low = Self::look(self.chunk_entry(lba)?, CHUNK_NUMBER)?;
        let leaf = Self::look(self.node_entry(low, lba >> LEAF_SHIFT & MASK), NUMBER)?;
        Some(self.leaves.at(leaf))
    }

    /// The entry of the chunk holding `lba`, its root's node made on first use.
    #[inline(always)]
    fn chunk_entry_or_cut(&self, lba: u64) -> &AtomicU32 {
        let mid = Self::get(self.root_entry(lba), NUMBER, &self.nodes);
        self.node_entry(mid, lba >> CHUNK_SHIFT & MASK)
    }

    #[inline(always)]
    fn leaf_or_cut(&self, lba: u64) -> *mut u8 {
        let low = Self::get(self.chunk_entry_or_cut(lba), CHUNK_NUMBER, &self.nodes);
        let leaf = Self::get(self.node_entry(low, lba >> LEAF_SHIFT & MASK), NUMBER, &self.leaves);
        self.leaves.at(leaf)
    }

    /// The state word of `lba` in `leaf`.
    #[inline]
    fn word_in(&self, leaf: *mut u8, lba: u64) -> &AtomicU64 {
        // SAFETY: `leaf` is a LEAF_BYTES piece, 8-byte aligned, and the word is inside it.
        // Pieces are not unmapped while the map lives, and the map outlives every reference
        // its callers hold (they borrow it); only accessed atomically.
        unsafe { AtomicU64::from_ptr(leaf.add(((lba & ((1 << LEAF_SHIFT) - 1)) & !7) as usize).cast::<u64>()) }
    }

    /// The state word of LBAs `8k..8k+8` holding `lba`, made on first use.
    #[inline]
    pub fn state_word(&self, lba: u64) -> &AtomicU64 {
        self.word_in(self.leaf_or_cut(lba), lba)
    }

    /// The state word holding `lba`, if it was ever made (else every byte is zero).
    #[inline]
    pub fn state_word_if(&self, lba: u64) -> Option<&AtomicU64> {
        self.leaf(lba).map(|l| self.word_in(l, lba))
    }

    /// The lower-bound word of the LBAs whose state word is `state`.
    #[inline]
    pub fn lo_beside<'a>(&'a self, state: &'a AtomicU64) -> &'a AtomicU64 {
        let off = state.as_ptr() as usize - self.leaves.map.as_mut_ptr() as usize;
        // SAFETY: every state word is in the `leaves` arena, so its offset there is a word
        // of `bounds`, a mapping as long; only accessed atomically.
        unsafe { AtomicU64::from_ptr(self.bounds.as_mut_ptr().add(off).cast::<u64>()) }
    }

    /// Starts loading, owned, the lower-bound word beside state word `state` if its leaf
    /// is spoiled (its writes will update bounds there); a fresh leaf's bounds are implied
    /// and not touched. A hint only: the mark is read without waiting for a spoil.
    #[inline]
    pub fn prefetch_bound(&self, state: &AtomicU64) {
        let (w, sh) = self.marks_of(self.leaf_of(state));
        if w.load(Ordering::Relaxed) >> sh & 3 != 0 {
            crate::util::prefetch(self.lo_beside(state).as_ptr().cast::<u8>(), true);
        }
    }

    /// The word and bit of the page bitmap for lower-bound word `lo`.
    #[inline]
    fn page_bit(&self, lo: &AtomicU64) -> (&AtomicU64, u64) {
        let page = (lo.as_ptr() as usize - self.bounds.as_mut_ptr() as usize) / PAGE;
        // SAFETY: a bit per page of `bounds`, sized in `new`; only accessed atomically; it
        // lives as long as `self`.
        let w = unsafe { AtomicU64::from_ptr(self.bound_pages.as_mut_ptr().cast::<u64>().add(page / 64)) };
        (w, 1u64 << (page % 64))
    }

    /// Records that lower-bound word `lo` was written (for [`LbaMap::bytes`]).
    #[inline]
    pub fn wrote_bound(&self, lo: &AtomicU64) {
        let (w, bit) = self.page_bit(lo);
        if w.load(Ordering::Relaxed) & bit == 0 {
            w.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Lower-bound word `lo`, read only where its page was ever written: a read of a page
    /// never written maps the zero page, and the first bound written there would then
    /// copy it and flush the TLB of every CPU. A bound written by a writer that has not
    /// yet set the page's bit may read as none: a flush that misses it keeps the LBA
    /// undurable, and a leaf held for it is held again by that writer after the bit.
    #[inline]
    pub fn read_bound(&self, lo: &AtomicU64) -> u64 {
        let (w, bit) = self.page_bit(lo);
        if w.load(Ordering::Acquire) & bit == 0 { 0 } else { lo.load(Ordering::SeqCst) }
    }

    /// The lower-bound word holding `lba`, made on first use.
    #[inline]
    pub fn lo_word(&self, lba: u64) -> &AtomicU64 {
        self.lo_beside(self.state_word(lba))
    }

    /// The lower-bound word holding `lba`, if it was ever made.
    #[inline]
    pub fn lo_word_if(&self, lba: u64) -> Option<&AtomicU64> {
        self.state_word_if(lba).map(|w| self.lo_beside(w))
    }

    /// The word of held-leaf bits of the chunk whose node is `low`.
    #[inline]
    fn held_word(&self, low: u32) -> &AtomicU64 {
        debug_assert!(low != 0 && low < self.nodes.cap);
        // SAFETY: a word per node number below `cap` (sized in `new`); only accessed
        // atomically; it lives as long as `self`.
        unsafe { AtomicU64::from_ptr(self.held.as_mut_ptr().cast::<u64>().add(low as usize)) }
    }

    /// The held-leaf word of the chunk holding `lba` and the bit of its leaf, if the
    /// chunk's node exists.
    #[inline]
    fn held_bit(&self, lba: u64) -> Option<(&AtomicU64, u64)> {
        let low = Self::look(self.chunk_entry(lba)?, CHUNK_NUMBER)?;
        Some((self.held_word(low), 1 << (lba >> LEAF_SHIFT & MASK)))
    }

    /// Marks the leaf holding `lba` as held (it may hold bounds), and says whether its chunk
    /// is flagged, looked at after the mark (see [`LbaMap::flag`]) from the entry the mark
    /// was found by. Its state word must have been made. SeqCst, after the bound it
    /// records: see [`LbaMap::release`].
    #[inline]
    pub fn hold(&self, lba: u64) -> bool {
        let e = self.chunk_entry(lba).expect("a held leaf's path exists");
        let low = Self::look(e, CHUNK_NUMBER).expect("a held leaf's path exists");
        let (w, bit) = (self.held_word(low), 1 << (lba >> LEAF_SHIFT & MASK));
        if w.load(Ordering::SeqCst) & bit == 0 {
            w.fetch_or(bit, Ordering::SeqCst);
        }
        e.load(Ordering::SeqCst) & FLAG != 0
    }

    /// Unmarks the leaf holding `lba` when `empty()` says, after the unmarking, that it
    /// holds no bounds; marks it again if not. A writer records its bound before it looks
    /// at the mark ([`LbaMap::hold`]), so either `empty()` sees the bound or the writer sees
    /// the leaf unmarked and marks it. True if the leaf stays unmarked.
    pub fn release(&self, lba: u64, empty: impl Fn() -> bool) -> bool {
        let Some((w, bit)) = self.held_bit(lba) else { return true };
        if w.load(Ordering::SeqCst) & bit == 0 {
            return true;
        }
        // A first look spares a leaf that still holds bounds two atomic writes.
        if !empty() {
            return false;
        }
        w.fetch_and(!bit, Ordering::SeqCst);
        if empty() {
            return true;
        }
        w.fetch_or(bit, Ordering::SeqCst);
        false
    }

    /// Whether any leaf of chunk `chunk` is held.
    #[inline]
    pub fn chunk_held(&self, chunk: u64) -> bool {
        self.held_bit(chunk << CHUNK_SHIFT).is_some_and(|(w, _)| w.load(Ordering::SeqCst) != 0)
    }

    /// Calls `f(first_lba, state word, lower-bound word, fresh)` for every word of the held
    /// leaves of chunk `chunk` (see [`LbaMap::hold`]); `fresh`: its leaf is (see
    /// [`LbaMap::fresh`]).
    pub fn each_word(&self, chunk: u64, mut f: impl FnMut(u64, &AtomicU64, &AtomicU64, bool)) {
        let base = chunk << CHUNK_SHIFT;
        let Some(low) = self.chunk_entry(base).and_then(|e| Self::look(e, CHUNK_NUMBER)) else { return };
        let mut held = self.held_word(low).load(Ordering::SeqCst);
        while held != 0 {
            let i = u64::from(held.trailing_zeros());
            held &= held - 1;
            if let Some(leaf) = Self::look(self.node_entry(low, i), NUMBER) {
                let (first, at) = (base + (i << LEAF_SHIFT), self.leaves.at(leaf));
                let fresh = self.fresh_leaf(leaf);
                for w in (0..1u64 << LEAF_SHIFT).step_by(8) {
                    let states = self.word_in(at, w);
                    f(first + w, states, self.lo_beside(states), fresh);
                }
            }
        }
    }

    /// The words of the leaf holding `lba`, whose state word is `state`: (the word's first
    /// LBA, state word, lower-bound word).
    pub fn leaf_words<'a>(&'a self, lba: u64, state: &'a AtomicU64) -> impl Iterator<Item = (u64, &'a AtomicU64, &'a AtomicU64)> + 'a {
        let (at, first) = (self.leaves.at(self.leaf_of(state)), lba & !(LEAF_LBAS - 1));
        (0..LEAF_LBAS).step_by(8).map(move |w| {
            let states = self.word_in(at, w);
            (first + w, states, self.lo_beside(states))
        })
    }

    /// The number of the leaf holding state word `state`.
    #[inline]
    fn leaf_of(&self, state: &AtomicU64) -> u32 {
        ((state.as_ptr() as usize - self.leaves.map.as_mut_ptr() as usize) / LEAF_BYTES) as u32
    }

    /// The word of marks of leaf `leaf`, and the shift of its two bits there.
    #[inline]
    fn marks_of(&self, leaf: u32) -> (&AtomicU64, u32) {
        debug_assert!(leaf < self.leaves.cap);
        // SAFETY: the mapping holds a word per MARKS_PER_WORD leaf numbers below `cap`
        // (sized in `new`); only accessed atomically; it lives as long as `self`.
        let w = unsafe { AtomicU64::from_ptr(self.marks.as_mut_ptr().cast::<u64>().add((leaf / MARKS_PER_WORD) as usize)) };
        (w, leaf % MARKS_PER_WORD * 2)
    }

    /// Whether leaf `leaf` is fresh; waits out a spoil under way.
    #[inline]
    fn fresh_leaf(&self, leaf: u32) -> bool {
        let (w, sh) = self.marks_of(leaf);
        loop {
            // SeqCst: a writer's look here is ordered after its store of the table's
            // "bounds in use" flag, which a spoiler reads after marking (see `spoil`).
            match w.load(Ordering::SeqCst) >> sh & 3 {
                0 => return true,
                SPOILING => std::hint::spin_loop(),
                _ => return false,
            }
        }
    }

    /// Whether the leaf holding state word `state` is fresh (see the module docs); waits
    /// out a spoil under way.
    #[inline]
    pub fn fresh(&self, state: &AtomicU64) -> bool {
        self.fresh_leaf(self.leaf_of(state))
    }

    /// Spoils the leaf holding state word `state`: the first caller runs `write_out` (which
    /// writes the bounds the leaf's freshness implied) between its two marks; any other
    /// waits until that is done. Nothing if the leaf was spoiled before. True if this call
    /// ran `write_out`.
    pub fn spoil(&self, state: &AtomicU64, write_out: impl FnOnce()) -> bool {
        let leaf = self.leaf_of(state);
        let (w, sh) = self.marks_of(leaf);
        if w.load(Ordering::SeqCst) >> sh & SPOILED != 0 {
            return false;
        }
        if w.fetch_or(SPOILING << sh, Ordering::SeqCst) >> sh & SPOILING == 0 {
            write_out();
            w.fetch_or(SPOILED << sh, Ordering::SeqCst);
            true
        } else {
            // It returns once the mark says spoiled.
            self.fresh_leaf(leaf);
            false
        }
    }

    /// Whether chunk `chunk` is flagged as holding lower bounds.
    #[inline]
    pub fn flagged(&self, chunk: u64) -> bool {
        self.chunk_entry(chunk << CHUNK_SHIFT).is_some_and(|e| e.load(Ordering::SeqCst) & FLAG != 0)
    }

    /// Flags chunk `chunk`; true if this call set the flag.
    pub fn flag(&self, chunk: u64) -> bool {
        let e = self.chunk_entry_or_cut(chunk << CHUNK_SHIFT);
        // A chunk holding bounds has its node already; this makes sure of it, as a flag
        // on an entry without a node would read as a node being cut.
        Self::get(e, CHUNK_NUMBER, &self.nodes);
        e.fetch_or(FLAG, Ordering::SeqCst) & FLAG == 0
    }

    /// Clears the flag of chunk `chunk`.
    pub fn unflag(&self, chunk: u64) {
        if let Some(e) = self.chunk_entry(chunk << CHUNK_SHIFT) {
            e.fetch_and(!FLAG, Ordering::SeqCst);
        }
    }

    /// Every flagged chunk, in order.
    pub fn flagged_chunks(&self) -> Vec<u64> {
        let mut v = Vec::new();
        self.each_chunk_entry(|c, e| {
            if e.load(Ordering::SeqCst) & FLAG != 0 {
                v.push(c);
            }
        });
        v
    }

    fn each_chunk_entry(&self, mut f: impl FnMut(u64, &AtomicU32)) {
        for r in 0..self.roots {
            if let Some(mid) = Self::look(self.root_entry(r << ROOT_SHIFT), NUMBER) {
                for i in 0..1u64 << FAN_SHIFT {
                    f(r << FAN_SHIFT | i, self.node_entry(mid, i));
                }
            }
        }
    }

    /// Every byte zero again; the tree stays. The caller makes sure nobody holds a lock.
    pub fn clear(&self) {
        // SAFETY: DONTNEED on a private anonymous mapping makes it read as zero; the
        // mapping stays, so references into it stay valid.
        let _ = unsafe { self.leaves.map.unchecked_advise(UncheckedAdvice::DontNeed) };
        // SAFETY: as above.
        let _ = unsafe { self.bounds.unchecked_advise(UncheckedAdvice::DontNeed) };
        // SAFETY: as above; every leaf is fresh again.
        let _ = unsafe { self.marks.unchecked_advise(UncheckedAdvice::DontNeed) };
        // SAFETY: as above; the pages of bounds are gone.
        let _ = unsafe { self.bound_pages.unchecked_advise(UncheckedAdvice::DontNeed) };
        // SAFETY: as above; no leaf holds bounds.
        let _ = unsafe { self.held.unchecked_advise(UncheckedAdvice::DontNeed) };
        self.each_chunk_entry(|_, e| {
            e.fetch_and(!FLAG, Ordering::SeqCst);
        });
    }

    /// Bytes of table in memory: nodes, states and leaf marks made so far, and the pages
    /// of bounds written (the root is at most 1/2^16 of `nlba`).
    pub fn bytes(&self) -> usize {
        let leaves = self.leaves.next.load(Ordering::Relaxed) as usize;
        let marks = (leaves / MARKS_PER_WORD as usize + 1) * 8;
        let words = leaves * LEAF_BYTES / PAGE / 64 + 1;
        // SAFETY: `words` words are inside the mapping (sized in `new` for every leaf);
        // only read atomically.
        let word = |i: usize| unsafe { AtomicU64::from_ptr(self.bound_pages.as_mut_ptr().cast::<u64>().add(i)) };
        let written: usize = (0..words).map(|i| word(i).load(Ordering::Relaxed).count_ones() as usize).sum();
        // A held-leaf word per node cut, counted whether or not its page was touched.
        let held = self.nodes.used() / NODE_BYTES * 8;
        self.nodes.used() + held + self.leaves.used() + marks + words * 8 + written * PAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of leaf marks, of the bitmap of bound pages and of held-leaf words.
    fn fixed(m: &LbaMap) -> usize {
        let leaves = m.leaves.next.load(Ordering::Relaxed) as usize;
        (leaves / MARKS_PER_WORD as usize + 1) * 8 + (leaves * LEAF_BYTES / PAGE / 64 + 1) * 8 + m.nodes.used() / NODE_BYTES * 8
    }

    #[test]
    fn untouched_lbas_read_zero_and_take_no_memory() {
        let m = LbaMap::new(1 << 30).unwrap();
        assert!(m.state_word_if(12345).is_none());
        assert!(m.lo_word_if(1 << 29).is_none());
        assert_eq!(m.bytes(), fixed(&m), "a word of leaf marks and one of bound pages");
        assert!(m.flagged_chunks().is_empty());
    }

    #[test]
    fn state_and_bound_of_an_lba_are_separate_bytes_at_one_offset() {
        let m = LbaMap::new(1000).unwrap();
        m.state_word(77).store(0x11, Ordering::SeqCst);
        m.lo_word(77).store(0x22, Ordering::SeqCst);
        m.wrote_bound(m.lo_word(77));
        assert_eq!(m.state_word_if(72).unwrap().load(Ordering::SeqCst), 0x11);
        assert_eq!(m.lo_word_if(79).unwrap().load(Ordering::SeqCst), 0x22);
        assert!(m.state_word_if(80).is_none() || m.state_word_if(80).unwrap().load(Ordering::SeqCst) == 0);
        // Bounds are counted by the page.
        assert_eq!(m.bytes(), 2 * NODE_BYTES + LEAF_BYTES + PAGE + fixed(&m));
    }

    /// Whether the page of `p` is mapped (the zero page included).
    fn mapped(p: *const u8) -> bool {
        let page = (p as usize) & !(PAGE - 1);
        let mut v = 0u8;
        // SAFETY: `page` is page-aligned and inside a live mapping; `v` holds the one byte
        // mincore writes for one page.
        let r = unsafe { libc::mincore(page as *mut libc::c_void, PAGE, &mut v) };
        assert_eq!(r, 0, "mincore");
        v & 1 != 0
    }

    #[test]
    fn reading_a_bound_of_a_page_never_written_maps_nothing() {
        let m = LbaMap::new(1 << 20).unwrap();
        m.state_word(4096).store(0x11, Ordering::SeqCst);
        let lo = m.lo_word(4096);
        assert_eq!(m.read_bound(lo), 0);
        assert!(!mapped(lo.as_ptr().cast()), "a plain load would map the zero page, and the first bound written there would copy it");
        lo.store(0x22, Ordering::SeqCst);
        m.wrote_bound(lo);
        assert_eq!(m.read_bound(lo), 0x22);
    }

    #[test]
    fn a_scattered_touch_takes_two_nodes_and_a_leaf() {
        // 64 TiB of 512-byte LBAs; 1000 touches 2^27 LBAs apart.
        let m = LbaMap::new(1 << 37).unwrap();
        for i in 0..1000u64 {
            m.state_word(i << 27).fetch_or(1, Ordering::SeqCst);
        }
        assert_eq!(m.bytes(), 1000 * (2 * NODE_BYTES + LEAF_BYTES) + fixed(&m));
        assert!(fixed(&m) <= 1000 / 4 + 16 + 2000 * 8, "two bits per leaf, a bit per page of bounds, a word per node");
        assert!((0..1000u64).all(|i| m.state_word_if(i << 27).unwrap().load(Ordering::SeqCst) == 1));
    }

    #[test]
    fn a_dense_region_takes_a_byte_per_lba_a_sixteenth_more_in_nodes_and_a_byte_per_bound() {
        let m = LbaMap::new(1 << 22).unwrap();
        for l in (0..1u64 << 22).step_by(8) {
            m.state_word(l).store(u64::MAX, Ordering::Relaxed);
        }
        let nodes = ((1 << 22 >> ROOT_SHIFT) + (1 << 22 >> CHUNK_SHIFT)) * NODE_BYTES;
        assert_eq!(m.bytes(), (1 << 22) + nodes + fixed(&m));
        assert!(nodes <= (1 << 22) / 16 + 16 * NODE_BYTES);
        for l in (0..1u64 << 21).step_by(8) {
            m.lo_word(l).store(1, Ordering::Relaxed);
            m.wrote_bound(m.lo_word(l));
        }
        // Leaf numbers start at 1: half the leaves' bounds straddle one more page.
        assert_eq!(m.bytes(), (1 << 22) + (1 << 21) + PAGE + nodes + fixed(&m));
    }

    #[test]
    fn racing_threads_cut_each_node_once() {
        let m = LbaMap::new(1 << 24).unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let m = &m;
                s.spawn(move || {
                    for l in (0..1u64 << 20).step_by(64) {
                        m.state_word(l).fetch_or(1 << (t * 8), Ordering::SeqCst);
                    }
                });
            }
        });
        let leaves = (1 << 20) / 64;
        assert_eq!(m.leaves.used(), leaves * LEAF_BYTES);
        assert!((0..1u64 << 20).step_by(64).all(|l| m.state_word_if(l).unwrap().load(Ordering::SeqCst) == 0x0101_0101));
    }

    #[test]
    fn flags_mark_chunks_and_clearing_zeroes_leaves_but_keeps_the_tree() {
        let m = LbaMap::new(1 << 30).unwrap();
        m.lo_word(5 << CHUNK_SHIFT).store(3, Ordering::SeqCst);
        m.lo_word(900 << CHUNK_SHIFT).store(3, Ordering::SeqCst);
        assert!(m.flag(5) && !m.flag(5) && m.flag(900));
        assert_eq!(m.flagged_chunks(), vec![5, 900]);
        let mut seen = 0;
        m.each_word(900, |l, _, w, _| {
            if w.load(Ordering::SeqCst) != 0 {
                assert_eq!(l, 900 << CHUNK_SHIFT);
                seen += 1;
            }
        });
        assert_eq!(seen, 0, "no leaf of chunk 900 is held");
        m.hold(900 << CHUNK_SHIFT);
        assert!(m.chunk_held(900) && !m.chunk_held(5));
        m.each_word(900, |l, _, w, _| {
            if w.load(Ordering::SeqCst) != 0 {
                assert_eq!(l, 900 << CHUNK_SHIFT);
                seen += 1;
            }
        });
        assert_eq!(seen, 1);
        assert!(!m.release(900 << CHUNK_SHIFT, || false), "a leaf with bounds stays held");
        assert!(m.chunk_held(900));
        assert!(m.release(900 << CHUNK_SHIFT, || true));
        assert!(!m.chunk_held(900));
        m.unflag(5);
        assert_eq!(m.flagged_chunks(), vec![900]);
        let before = m.bytes();
        m.clear();
        assert!(m.flagged_chunks().is_empty());
        assert_eq!(m.lo_word_if(900 << CHUNK_SHIFT).unwrap().load(Ordering::SeqCst), 0);
        assert_eq!(m.bytes(), before);
    }

    #[test]
    fn more_lbas_than_leaf_numbers_are_refused_with_the_fix() {
        let e = LbaMap::new(MAX_LBAS + 1).err().unwrap().to_string();
        assert!(e.contains("verify_disable"), "{e}");
    }
}
