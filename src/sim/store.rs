//! Memory for the simulated media: 4 KiB chunks carved from pre-faulted 2 MiB slabs, and a
//! sparse index from a namespace's chunk numbers to them.
//!
//! A drive's FTL maps logical blocks to wherever it put them; so does this store. A chunk
//! exists only once written (unwritten chunks read as zeroes, what Identify Namespace
//! DLFEAT reports), chunks of any LBA land next to each other in slabs, and a slab is
//! faulted in once, as a whole (a huge page where the kernel has one). So the cost of a
//! lookup or of a first write depends neither on the namespace's size nor on where in it
//! the write lands, and memory follows what was written, not what was addressed. A
//! mapping as large as the namespace, faulted in page by page, did neither: a first
//! write cost a page fault, and a read before it mapped the zero page, so the write then
//! paid a copy-on-write with a TLB shootdown of every CPU the process ran on.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use memmap2::{Advice, MmapMut};

/// Bytes of one chunk: the unit of allocation, of the write cache and of the index.
pub(crate) const CHUNK: usize = 4096;
const SLAB_SHIFT: u32 = 9;
/// Chunks per slab (2 MiB: one huge page).
const SLAB_CHUNKS: usize = 1 << SLAB_SHIFT;

/// One allocated chunk of memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot(u32);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Default)]
struct ArenaInner {
    slabs: Vec<MmapMut>,
    free: Vec<Slot>,
    /// Slots below this were handed out at least once; the ones above are still zero.
    next: u32,
}

/// Chunk memory: slots in slabs that are never unmapped while the arena is in use, so a
/// slot's address stays valid from its allocation to its release.
pub(crate) struct Arena {
    /// Slab base addresses, published once the slab is mapped.
    bases: Box<[AtomicPtr<u8>]>,
    inner: Mutex<ArenaInner>,
    in_use: AtomicUsize,
}

impl Arena {
    /// An arena that can hold at most `bytes`.
    pub(crate) fn new(bytes: u64) -> Self {
        let slabs = bytes.div_ceil((SLAB_CHUNKS * CHUNK) as u64).clamp(1, u32::MAX as u64 >> SLAB_SHIFT) as usize;
        Arena { bases: (0..slabs).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect(), inner: Mutex::default(), in_use: AtomicUsize::new(0) }
    }

    /// A slot holding zeroes, or `None` when the arena is full.
    pub(crate) fn alloc_zeroed(&self) -> Option<Slot> {
        let (s, dirty) = self.alloc()?;
        if dirty {
            // SAFETY: a freshly allocated slot belongs to the caller alone.
            unsafe { std::ptr::write_bytes(self.ptr(s), 0, CHUNK) };
        }
        Some(s)
    }

    /// A slot whose content is undefined (the caller overwrites all of it), or `None` when
    /// the arena is full.
    pub(crate) fn alloc_any(&self) -> Option<Slot> {
        self.alloc().map(|(s, _)| s)
    }

    /// A slot and whether it may hold old data.
    fn alloc(&self) -> Option<(Slot, bool)> {
        let mut a = lock(&self.inner);
        if let Some(s) = a.free.pop() {
            self.in_use.fetch_add(1, Ordering::Relaxed);
            return Some((s, true));
        }
        let s = a.next;
        let slab = (s >> SLAB_SHIFT) as usize;
        if slab == a.slabs.len() {
            if slab >= self.bases.len() {
                return None;
            }
            let m = new_slab().ok()?;
            self.bases[slab].store(m.as_ptr().cast_mut(), Ordering::Release);
            a.slabs.push(m);
        }
        a.next += 1;
        self.in_use.fetch_add(1, Ordering::Relaxed);
        Some((Slot(s), false))
    }

    /// Gives slots back.
    pub(crate) fn free(&self, slots: impl IntoIterator<Item = Slot>) {
        let mut a = lock(&self.inner);
        let before = a.free.len();
        a.free.extend(slots);
        self.in_use.fetch_sub(a.free.len() - before, Ordering::Relaxed);
    }

    /// Address of a slot's first byte.
    #[inline]
    pub(crate) fn ptr(&self, s: Slot) -> *mut u8 {
        let base = self.bases[(s.0 >> SLAB_SHIFT) as usize].load(Ordering::Acquire);
        base.wrapping_add((s.0 as usize & (SLAB_CHUNKS - 1)) * CHUNK)
    }

    /// Bytes held by allocated slots.
    pub(crate) fn bytes_in_use(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed) as u64 * CHUNK as u64
    }

    /// Releases every slab. The caller guarantees that no slot is in use any more.
    pub(crate) fn clear(&self) {
        let mut a = lock(&self.inner);
        for b in &self.bases[..a.slabs.len()] {
            b.store(std::ptr::null_mut(), Ordering::Release);
        }
        *a = ArenaInner::default();
        self.in_use.store(0, Ordering::Relaxed);
    }
}

/// A 2 MiB slab, faulted in now (as a huge page where possible) so that no I/O pays a
/// page fault later.
fn new_slab() -> std::io::Result<MmapMut> {
    let mut m = memmap2::MmapOptions::new().len(SLAB_CHUNKS * CHUNK).map_anon()?;
    // Both are hints: a kernel without them still gives working memory.
    let _ = m.advise(Advice::HugePage);
    if m.advise(Advice::PopulateWrite).is_err() {
        for p in m.chunks_mut(4096) {
            p[0] = 0;
        }
    }
    Ok(m)
}

/// Chunks per index leaf (512 KiB of the namespace, 512 bytes of index).
const LEAF_SHIFT: u32 = 7;
const LEAF_CHUNKS: usize = 1 << LEAF_SHIFT;
/// Leaves per node (64 MiB of the namespace, 1 KiB of index).
const NODE_SHIFT: u32 = 7;
const NODE_LEAVES: usize = 1 << NODE_SHIFT;

/// Slot numbers plus one of a leaf's chunks (0: never written).
type Leaf = [AtomicU32; LEAF_CHUNKS];
/// Leaves of 64 MiB of the namespace.
type Node = [AtomicPtr<Leaf>; NODE_LEAVES];
const LEAF_BYTES: usize = std::mem::size_of::<Leaf>();
const NODE_BYTES: usize = std::mem::size_of::<Node>();
// Both tile a slot exactly, so a piece never straddles two slots and stays aligned.
const _: () = assert!(CHUNK.is_multiple_of(LEAF_BYTES) && CHUNK.is_multiple_of(NODE_BYTES) && NODE_BYTES != LEAF_BYTES);

/// The index has no memory left: this machine's is full.
#[derive(Debug)]
pub(crate) struct IndexFull;

/// Part of an index slot: `at` bytes into slot `slot`.
#[derive(Clone, Copy)]
struct Piece {
    slot: Slot,
    at: u16,
}

#[derive(Default)]
struct Owners {
    /// Root entries that hold a node.
    nodes: Vec<usize>,
    /// Leaves, by number (chunk >> LEAF_SHIFT).
    leaves: Vec<(u64, Piece)>,
    /// The slots nodes (0) and leaves (1) are being cut from, and how much of each is used
    /// (apart, so that neither leaves a gap to align the other).
    carving: [Option<Piece>; 2],
}

/// The sparse map of a namespace's chunks to slots, a radix tree of three levels: a root
/// with a pointer per 64 MiB of the namespace (8 MiB for 64 TiB, allocated and written at
/// once), nodes of 1 KiB with a pointer per 512 KiB, and leaves of 512 bytes with the
/// slot numbers of 128 chunks. Nodes and leaves are cut from slots of the index's own
/// arena, created on first write: pre-faulted memory, so a write into a new part of the
/// namespace pays no page fault, and a read never creates anything. A lookup is three
/// loads without a lock. Small nodes and leaves keep the index's memory near the data's
/// even for writes scattered over the whole namespace, where each may need a leaf (and a
/// node) of its own: 1.5 KiB at most per 4 KiB chunk, where leaves and nodes of a slot
/// each took 8 KiB. (A table reserved for the whole namespace and faulted in on use made
/// a first write to its untouched pages pay a copy-on-write of the zero page, with a TLB
/// shootdown of every CPU.)
///
/// A chunk is changed only by the thread holding its range lock (`namespace`), so
/// entries need no compare-and-swap; nodes and leaves are created under a lock, since
/// neighbours may race for the same one.
pub(crate) struct ChunkIndex {
    root: Box<[AtomicPtr<Node>]>,
    arena: Arena,
    owners: Mutex<Owners>,
}

impl ChunkIndex {
    /// An index for a namespace of `capacity` bytes, its memory bounded by `limit`.
    pub(crate) fn new(capacity: u64, limit: u64) -> Self {
        let leaves = capacity.div_ceil(CHUNK as u64).div_ceil(LEAF_CHUNKS as u64);
        let nodes = leaves.div_ceil(NODE_LEAVES as u64).max(1);
        let root = (0..nodes).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect();
        let bytes = (leaves * LEAF_BYTES as u64 + nodes * NODE_BYTES as u64).next_multiple_of(CHUNK as u64);
        ChunkIndex { root, arena: Arena::new(bytes.min(limit)), owners: Mutex::default() }
    }

    #[inline]
    fn node(&self, chunk: u64) -> Option<&Node> {
        let p = self.root.get((chunk >> (LEAF_SHIFT + NODE_SHIFT)) as usize)?.load(Ordering::Acquire);
        // SAFETY: a non-null root entry points to a zero-initialised, NODE_BYTES-aligned
        // piece of a slot of `self.arena` (a valid Node) that stays allocated until
        // `clear`, which the caller runs with no other access in flight.
        unsafe { p.as_ref() }
    }

    #[inline]
    fn leaf(&self, chunk: u64) -> Option<&Leaf> {
        let p = self.node(chunk)?[(chunk >> LEAF_SHIFT) as usize & (NODE_LEAVES - 1)].load(Ordering::Acquire);
        // SAFETY: as for nodes: a zero-initialised piece of `self.arena` until `clear`.
        unsafe { p.as_ref() }
    }

    /// Address of a piece.
    fn piece_ptr(&self, p: Piece) -> *mut u8 {
        self.arena.ptr(p.slot).wrapping_add(p.at as usize)
    }

    /// A node's or a leaf's `bytes` of zeroes, cut from the current slot for its kind or
    /// a new one (both sizes divide a slot, so pieces stay aligned to their size).
    fn carve(&self, owners: &mut Owners, bytes: usize) -> Result<Piece, IndexFull> {
        let cut = &mut owners.carving[usize::from(bytes == LEAF_BYTES)];
        let piece = match *cut {
            Some(c) if c.at as usize + bytes <= CHUNK => c,
            _ => Piece { slot: self.arena.alloc_zeroed().ok_or(IndexFull)?, at: 0 },
        };
        *cut = Some(Piece { slot: piece.slot, at: piece.at + bytes as u16 });
        Ok(piece)
    }

    fn leaf_or_new(&self, chunk: u64) -> Result<&Leaf, IndexFull> {
        if let Some(l) = self.leaf(chunk) {
            return Ok(l);
        }
        let mut owners = lock(&self.owners);
        // Created by another thread between the look and the lock?
        if let Some(l) = self.leaf(chunk) {
            return Ok(l);
        }
        let r = (chunk >> (LEAF_SHIFT + NODE_SHIFT)) as usize;
        let node = match self.node(chunk) {
            Some(n) => n,
            None => {
                let piece = self.carve(&mut owners, NODE_BYTES)?;
                let p = self.piece_ptr(piece).cast::<Node>();
                owners.nodes.push(r);
                self.root[r].store(p, Ordering::Release);
                // SAFETY: a zeroed piece is a valid Node (null pointers), aligned to its size.
                unsafe { &*p }
            }
        };
        let piece = self.carve(&mut owners, LEAF_BYTES)?;
        let p = self.piece_ptr(piece).cast::<Leaf>();
        owners.leaves.push((chunk >> LEAF_SHIFT, piece));
        node[(chunk >> LEAF_SHIFT) as usize & (NODE_LEAVES - 1)].store(p, Ordering::Release);
        // SAFETY: a zeroed piece is a valid Leaf (no chunk written), aligned to its size.
        Ok(unsafe { &*p })
    }

    #[inline]
    fn entry(leaf: &Leaf, chunk: u64) -> &AtomicU32 {
        &leaf[chunk as usize & (LEAF_CHUNKS - 1)]
    }

    /// Where a chunk's entry is, if its leaf exists (for a prefetch).
    #[inline]
    pub(crate) fn entry_ptr(&self, chunk: u64) -> Option<*const u8> {
        self.leaf(chunk).map(|l| Self::entry(l, chunk).as_ptr().cast_const().cast::<u8>())
    }

    /// The slot of a chunk, if it was written.
    #[inline]
    pub(crate) fn get(&self, chunk: u64) -> Option<Slot> {
        let v = Self::entry(self.leaf(chunk)?, chunk).load(Ordering::Acquire);
        v.checked_sub(1).map(Slot)
    }

    /// The slot of a chunk, allocating one by `alloc` when it has none (`None` when an
    /// allocation fails).
    #[inline]
    pub(crate) fn get_or_alloc(&self, chunk: u64, alloc: impl FnOnce() -> Option<Slot>) -> Option<Slot> {
        let e = Self::entry(self.leaf_or_new(chunk).ok()?, chunk);
        if let Some(s) = e.load(Ordering::Acquire).checked_sub(1) {
            return Some(Slot(s));
        }
        let s = alloc()?;
        e.store(s.0 + 1, Ordering::Release);
        Some(s)
    }

    /// Maps a chunk to `slot` (or unmaps it); returns what it had. Fails only when a
    /// chunk never written before needs index memory and there is none.
    #[inline]
    pub(crate) fn set(&self, chunk: u64, slot: Option<Slot>) -> Result<Option<Slot>, IndexFull> {
        let leaf = match (slot, self.leaf(chunk)) {
            (_, Some(l)) => l,
            (None, None) => return Ok(None),
            (Some(_), None) => self.leaf_or_new(chunk)?,
        };
        Ok(Self::entry(leaf, chunk).swap(slot.map_or(0, |s| s.0 + 1), Ordering::AcqRel).checked_sub(1).map(Slot))
    }

    /// Written chunks in `first..=last`, ascending (for ranges far larger than what is
    /// stored, where walking the range would take longer than the leaves).
    pub(crate) fn written_in(&self, first: u64, last: u64) -> Vec<u64> {
        let owners = lock(&self.owners);
        let mut out = Vec::new();
        for &(i, s) in owners.leaves.iter() {
            let base = i << LEAF_SHIFT;
            if base > last || base + LEAF_CHUNKS as u64 <= first {
                continue;
            }
            // SAFETY: a leaf's piece stays a valid Leaf until `clear`.
            let leaf = unsafe { &*self.piece_ptr(s).cast::<Leaf>() };
            for (k, e) in leaf.iter().enumerate() {
                let c = base + k as u64;
                if (first..=last).contains(&c) && e.load(Ordering::Acquire) != 0 {
                    out.push(c);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Bytes of index memory.
    pub(crate) fn bytes_in_use(&self) -> u64 {
        self.arena.bytes_in_use()
    }

    /// Forgets every chunk. The caller guarantees that no other access is in flight.
    pub(crate) fn clear(&self) {
        let mut owners = lock(&self.owners);
        for &r in owners.nodes.iter() {
            self.root[r].store(std::ptr::null_mut(), Ordering::Release);
        }
        *owners = Owners::default();
        self.arena.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_slots_are_reused_and_zeroed_on_request() {
        let a = Arena::new(1 << 30);
        let s = a.alloc_zeroed().unwrap();
        // SAFETY: the slot is ours and CHUNK bytes long.
        unsafe { std::ptr::write_bytes(a.ptr(s), 0xEE, CHUNK) };
        a.free([s]);
        assert_eq!(a.bytes_in_use(), 0);
        let t = a.alloc_zeroed().unwrap();
        assert_eq!(t, s);
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(a.ptr(t), CHUNK) };
        assert!(bytes.iter().all(|b| *b == 0));
        assert_eq!(a.bytes_in_use(), CHUNK as u64);
    }

    #[test]
    fn arena_refuses_beyond_its_capacity() {
        let a = Arena::new(1);
        let n = (0..SLAB_CHUNKS + 1).filter_map(|_| a.alloc_any()).count();
        assert_eq!(n, SLAB_CHUNKS);
    }

    #[test]
    fn slots_of_different_slabs_do_not_overlap() {
        let a = Arena::new(64 << 20);
        let slots: Vec<_> = (0..3 * SLAB_CHUNKS).map(|_| a.alloc_any().unwrap()).collect();
        let mut addrs: Vec<usize> = slots.iter().map(|s| a.ptr(*s) as usize).collect();
        addrs.sort();
        assert!(addrs.windows(2).all(|w| w[1] - w[0] >= CHUNK));
    }

    #[test]
    fn scattered_writes_take_a_node_and_a_leaf_of_index_each_not_a_slot() {
        let a = Arena::new(1 << 30);
        let ix = ChunkIndex::new(64 << 40, 1 << 30);
        // Each chunk in a 64 MiB stretch of its own: a node and a leaf each.
        let n = 1000u64;
        let chunk = |i: u64| i * (64 << 20) / CHUNK as u64 + i % 7;
        for i in 0..n {
            ix.get_or_alloc(chunk(i), || a.alloc_any()).unwrap();
        }
        assert!((0..n).all(|i| ix.get(chunk(i)).is_some()));
        assert_eq!(ix.get(chunk(3) + 1), None);
        let per_chunk = (NODE_BYTES + LEAF_BYTES) as u64;
        assert!(ix.bytes_in_use() <= n * per_chunk + 2 * CHUNK as u64, "{} bytes", ix.bytes_in_use());
        assert_eq!(ix.written_in(0, u64::MAX).len(), n as usize);
    }

    #[test]
    fn index_finds_only_written_chunks_in_a_range() {
        let a = Arena::new(1 << 30);
        let ix = ChunkIndex::new(1 << 45, 1 << 30);
        for c in [3u64, 17, 1 << 30, 99] {
            ix.get_or_alloc(c, || a.alloc_any()).unwrap();
        }
        let w = ix.written_in(10, 1 << 31);
        assert_eq!(w, vec![17, 99, 1 << 30]);
        assert!(ix.set(17, None).unwrap().is_some());
        assert_eq!(ix.get(17), None);
        assert_eq!(ix.written_in(0, u64::MAX).len(), 3);
    }
}
