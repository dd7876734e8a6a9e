//! A namespace's media: logical blocks in 4 KiB chunks, the volatile write cache, and
//! blocks marked uncorrectable.
//!
//! Memory-backed media keep written chunks in the arena (`store`), found through a sparse
//! index; unwritten chunks read as zeroes, which is what Identify Namespace DLFEAT
//! reports. File-backed media are the file, mapped whole. The write cache (`wcache`) is
//! an undo log: for memory media the first unflushed write to a chunk moves the chunk's
//! durable content aside and writes a new copy (no data is copied for a whole-chunk
//! write); for a file the durable content is copied into the arena.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use memmap2::{MmapRaw, UncheckedAdvice};

use super::config::{Backing, NamespaceConfig};
use super::dma::{self, Seg, SegCursor};
use super::store::{Arena, CHUNK, ChunkIndex};
use super::wcache::WriteCache;
use crate::nvme::status::Status;

/// Above this many chunks, a zeroing command finds the written ones through the index
/// instead of walking its range (a deallocation of a whole 64 TiB namespace).
const WALK_LIMIT: u64 = 1 << 16;
/// Granularity of the range locks taken when several threads process I/O.
const STRIPE_SHIFT: u32 = 16;
const STRIPES: usize = 1024;

/// Range locks over the media, so that concurrent commands from different processing
/// threads never copy the same bytes at once.
struct StripedLocks {
    locks: Box<[AtomicBool]>,
}

struct StripeGuard<'a> {
    locks: &'a StripedLocks,
    held: [u64; STRIPES / 64],
}

impl StripedLocks {
    fn new() -> Self {
        StripedLocks { locks: (0..STRIPES).map(|_| AtomicBool::new(false)).collect() }
    }

    fn lock(&self, off: u64, len: u64) -> StripeGuard<'_> {
        let mut held = [0u64; STRIPES / 64];
        let first = off >> STRIPE_SHIFT;
        let last = (off + len.max(1) - 1) >> STRIPE_SHIFT;
        if last - first >= STRIPES as u64 {
            held = [u64::MAX; STRIPES / 64];
        } else {
            for s in first..=last {
                let i = (s % STRIPES as u64) as usize;
                held[i / 64] |= 1 << (i % 64);
            }
        }
        // Ascending order: two commands can never wait on each other.
        for (w, bits) in held.iter().enumerate() {
            let mut b = *bits;
            while b != 0 {
                let i = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                while self.locks[i].compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
                    std::hint::spin_loop();
                }
            }
        }
        StripeGuard { locks: self, held }
    }
}

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        for (w, bits) in self.held.iter().enumerate() {
            let mut b = *bits;
            while b != 0 {
                let i = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                self.locks.locks[i].store(false, Ordering::Release);
            }
        }
    }
}

enum Media {
    /// Written chunks in the arena, found through the index.
    Memory(ChunkIndex),
    /// A file, mapped whole (its content outlives the process).
    File(MmapRaw),
}

/// One namespace of the simulated controller.
pub(crate) struct Namespace {
    capacity: u64,
    lba_shift: AtomicU32,
    media: Media,
    /// Chunks of memory media and the write cache's images.
    arena: Arena,
    uncorrectable: Mutex<BTreeMap<u64, u64>>,
    uncorrectable_ranges: AtomicUsize,
    cache: Mutex<WriteCache>,
    cache_enabled: AtomicBool,
    cache_chunks: usize,
    locks: Option<StripedLocks>,
    pub(crate) eui64: [u8; 8],
    pub(crate) nguid: [u8; 16],
    /// Bytes written since the last Format NVM or Sanitize (the garbage collection model).
    written_since_purge: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes of memory this machine has: more than that can never be written to memory media.
fn physical_memory() -> u64 {
    // SAFETY: sysconf only reads system configuration.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    if pages > 0 && size > 0 { pages as u64 * size as u64 } else { u64::MAX }
}

/// The chunk pieces of a byte range: (chunk, offset in the chunk, bytes).
fn pieces(off: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize)> {
    let first = off / CHUNK as u64;
    let last = if len == 0 { first } else { (off + len as u64 - 1) / CHUNK as u64 };
    (first..=last).filter(move |_| len > 0).map(move |c| {
        let (o, n) = piece(off, len, c);
        (c, o, n)
    })
}

/// The piece of chunk `c` that `off..off+len` covers: (offset in the chunk, bytes).
fn piece(off: u64, len: usize, c: u64) -> (usize, usize) {
    let base = c * CHUNK as u64;
    let (s, e) = (off.max(base), (off + len as u64).min(base + CHUNK as u64));
    ((s - base) as usize, (e - s) as usize)
}

fn chunk_count(off: u64, len: usize) -> u64 {
    if len == 0 { 0 } else { (off + len as u64 - 1) / CHUNK as u64 - off / CHUNK as u64 + 1 }
}

/// Lines of a chunk prefetched ahead of its read: the first ones start the hardware's
/// streaming prefetch for the rest. All 64 at once filled the core's line-fill buffers,
/// and the prefetches then stalled the thread (on an Intel Xeon VM, reads of written
/// blocks with verification off went from 1.6 M to 2.0 M IOPS with 8).
const PREFETCH_LINES: usize = 8;

/// When the arena cannot take another chunk: this machine's memory is full.
const FULL: Status = Status::CAPACITY_EXCEEDED;

impl Namespace {
    /// Creates the media. `concurrent`: more than one thread will process I/O.
    pub(crate) fn new(nsid: u32, cfg: &NamespaceConfig, cache: Option<u64>, concurrent: bool, serial: &str) -> std::io::Result<Self> {
        let capacity = cfg.capacity / 4096 * 4096;
        let cache_bytes = cache.unwrap_or(0).max(CHUNK as u64);
        let (media, arena_bytes) = match &cfg.backing {
            Backing::Memory => (Media::Memory(ChunkIndex::new(capacity, physical_memory())), capacity.saturating_add(cache_bytes)),
            Backing::File(path) => {
                let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
                if f.metadata()?.len() < capacity {
                    f.set_len(capacity)?;
                }
                (Media::File(memmap2::MmapOptions::new().len(capacity as usize).map_raw(&f)?), cache_bytes)
            }
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in serial.bytes().chain(nsid.to_le_bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let mut nguid = [0u8; 16];
        nguid[..8].copy_from_slice(&h.to_be_bytes());
        nguid[8..].copy_from_slice(&(h.rotate_left(29) ^ 0x6e76_706c_616e).to_be_bytes());
        Ok(Namespace {
            capacity,
            lba_shift: AtomicU32::new(cfg.lba_size.trailing_zeros()),
            media,
            arena: Arena::new(arena_bytes.min(physical_memory())),
            uncorrectable: Mutex::new(BTreeMap::new()),
            uncorrectable_ranges: AtomicUsize::new(0),
            cache: Mutex::new(WriteCache::default()),
            cache_enabled: AtomicBool::new(cache.is_some()),
            cache_chunks: (cache.unwrap_or(0) as usize / CHUNK).max(1),
            locks: concurrent.then(StripedLocks::new),
            eui64: h.to_be_bytes(),
            nguid,
            written_since_purge: AtomicU64::new(0),
        })
    }

    /// Counts `bytes` written by the host; returns the bytes written since the last purge,
    /// these included.
    pub(crate) fn note_written(&self, bytes: u64) -> u64 {
        self.written_since_purge.fetch_add(bytes, Ordering::Relaxed) + bytes
    }

    /// log2 of the LBA size.
    pub(crate) fn lba_shift(&self) -> u32 {
        self.lba_shift.load(Ordering::Relaxed)
    }
    /// Namespace size in LBAs.
    pub(crate) fn nlba(&self) -> u64 {
        self.capacity >> self.lba_shift()
    }
    /// Capacity in bytes.
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }
    /// Bytes of memory holding data and cache images.
    pub(crate) fn memory_in_use(&self) -> u64 {
        let index = match &self.media {
            Media::Memory(ix) => ix.bytes_in_use(),
            Media::File(_) => 0,
        };
        self.arena.bytes_in_use() + index
    }

    /// Whether `lba..lba+nlb` lies inside the namespace.
    pub(crate) fn in_range(&self, lba: u64, nlb: u64) -> bool {
        lba.checked_add(nlb).is_some_and(|e| e <= self.nlba())
    }

    fn byte_range(&self, lba: u64, nlb: u64) -> (u64, usize) {
        let s = self.lba_shift();
        (lba << s, (nlb << s) as usize)
    }

    /// Address of byte `off` of file media.
    fn mapped(map: &MmapRaw, off: u64) -> *mut u8 {
        map.as_mut_ptr().wrapping_add(off as usize)
    }

    fn range_lock(&self, off: u64, len: usize) -> Option<StripeGuard<'_>> {
        self.locks.as_ref().map(|l| l.lock(off, len as u64))
    }

    /// Whether any LBA of the range is marked uncorrectable.
    pub(crate) fn any_uncorrectable(&self, lba: u64, nlb: u64) -> bool {
        if self.uncorrectable_ranges.load(Ordering::Acquire) == 0 {
            return false;
        }
        let end = lba + nlb;
        let u = lock(&self.uncorrectable);
        u.range(..end).next_back().is_some_and(|(_, &e)| e > lba)
    }

    /// Marks a range uncorrectable (Write Uncorrectable).
    pub(crate) fn mark_uncorrectable(&self, lba: u64, nlb: u64) {
        let mut u = lock(&self.uncorrectable);
        let (mut s, mut e) = (lba, lba + nlb);
        // Merge with overlapping or adjacent ranges.
        let touching: Vec<(u64, u64)> = u.range(..=e).filter(|&(_, &re)| re >= s).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in touching {
            u.remove(&a);
            s = s.min(a);
            e = e.max(b);
        }
        u.insert(s, e);
        self.uncorrectable_ranges.store(u.len(), Ordering::Release);
    }

    /// Clears uncorrectable marks of a range (a successful write, zeroes, deallocate).
    pub(crate) fn clear_uncorrectable(&self, lba: u64, nlb: u64) {
        if self.uncorrectable_ranges.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut u = lock(&self.uncorrectable);
        let end = lba + nlb;
        let touching: Vec<(u64, u64)> = u.range(..end).filter(|&(_, &re)| re > lba).map(|(&a, &b)| (a, b)).collect();
        for (a, b) in touching {
            u.remove(&a);
            if a < lba {
                u.insert(a, lba);
            }
            if b > end {
                u.insert(end, b);
            }
        }
        self.uncorrectable_ranges.store(u.len(), Ordering::Release);
    }

    /// Copies `len` bytes of media at `off` into the segments.
    fn copy_out(&self, off: u64, len: usize, segs: &[Seg]) {
        match &self.media {
            // SAFETY: the range is inside the mapping (callers check `in_range`) and the
            // segments describe `len` bytes of mapped host memory.
            Media::File(map) => unsafe { dma::scatter(segs, Self::mapped(map, off), len) },
            Media::Memory(ix) => {
                let mut cur = SegCursor::new(segs);
                for (c, o, n) in pieces(off, len) {
                    let src = ix.get(c).map(|s| self.arena.ptr(s).wrapping_add(o));
                    // SAFETY: a slot holds CHUNK bytes and `o + n <= CHUNK`; the segments
                    // describe `len` bytes; unwritten chunks send zeroes.
                    unsafe { cur.copy(src, n, true) };
                }
            }
        }
    }

    /// Starts loading the chunk of the block at `lba` into the cache, from the block on,
    /// so that the read that comes next does not wait for its index lookup and cache
    /// misses one after the other (a random 4 KiB read of memory media is mostly that).
    #[inline]
    pub(crate) fn prefetch(&self, lba: u64) {
        let off = lba.checked_shl(self.lba_shift()).unwrap_or(u64::MAX);
        if off >= self.capacity {
            return;
        }
        if let Media::Memory(ix) = &self.media
            && let Some(s) = ix.get(off / CHUNK as u64)
        {
            let from = (off % CHUNK as u64) as usize;
            let p = self.arena.ptr(s);
            for line in (from & !63..CHUNK).step_by(64).take(PREFETCH_LINES) {
                crate::util::prefetch(p.wrapping_add(line), false);
            }
        }
    }

    /// Starts loading the index entry of the block at `lba` (the levels above it are
    /// small and stay cached), for a read two commands ahead.
    #[inline]
    pub(crate) fn prefetch_index(&self, lba: u64) {
        let off = lba.checked_shl(self.lba_shift()).unwrap_or(u64::MAX);
        if off < self.capacity
            && let Media::Memory(ix) = &self.media
            && let Some(e) = ix.entry_ptr(off / CHUNK as u64)
        {
            crate::util::prefetch(e, false);
        }
    }

    /// Copies blocks to the host.
    pub(crate) fn read(&self, lba: u64, nlb: u64, segs: &[Seg]) -> Result<(), Status> {
        if self.any_uncorrectable(lba, nlb) {
            return Err(Status::UNRECOVERED_READ_ERROR);
        }
        let (off, len) = self.byte_range(lba, nlb);
        let _g = self.range_lock(off, len);
        self.copy_out(off, len, segs);
        Ok(())
    }

    /// Copies blocks from the host. Fails only when this machine's memory is full.
    pub(crate) fn write(&self, lba: u64, nlb: u64, segs: &[Seg], fua: bool) -> Result<(), Status> {
        let (off, len) = self.byte_range(lba, nlb);
        let _g = self.range_lock(off, len);
        let mut cache = self.cache_for(off, len, fua);
        let mut cur = SegCursor::new(segs);
        for (c, o, n) in pieces(off, len) {
            let chunk = self.chunk_for_write(c, n < CHUNK, cache.as_deref_mut(), fua)?;
            // SAFETY: `chunk` addresses CHUNK bytes of media and `o + n <= CHUNK`; the
            // segments describe `len` bytes of host memory.
            unsafe { cur.copy(Some(chunk.wrapping_add(o)), n, false) };
            if fua && let Some(w) = cache.as_deref_mut() {
                self.durable_update(w, c, o, n, Some(chunk))?;
            }
        }
        drop(cache);
        self.clear_uncorrectable(lba, nlb);
        Ok(())
    }

    /// The write cache, with room made for a write of `off..off+len`; `None` when writes
    /// are durable at once (no cache, or a write larger than the whole cache).
    fn cache_for(&self, off: u64, len: usize, fua: bool) -> Option<MutexGuard<'_, WriteCache>> {
        if !self.cache_enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut c = lock(&self.cache);
        if fua {
            // Durable itself: it keeps nothing new, only updates images kept already.
            return Some(c);
        }
        c.make_room(chunk_count(off, len) as usize, self.cache_chunks, &self.arena).then_some(c)
    }

    /// The media memory of chunk `c`, about to be written (all of it unless `partial`).
    /// A cached, non-FUA write first keeps the chunk's durable content.
    fn chunk_for_write(&self, c: u64, partial: bool, cache: Option<&mut WriteCache>, fua: bool) -> Result<*mut u8, Status> {
        let keep = cache.filter(|w| !fua && !w.holds(c));
        match &self.media {
            Media::Memory(ix) => {
                let Some(w) = keep else {
                    let alloc = || if partial { self.arena.alloc_zeroed() } else { self.arena.alloc_any() };
                    return ix.get_or_alloc(c, alloc).map(|s| self.arena.ptr(s)).ok_or(FULL);
                };
                // The old slot becomes the durable image; the write goes to a new one.
                let new = self.arena.alloc_any().ok_or(FULL)?;
                let Ok(old) = ix.set(c, Some(new)) else {
                    self.arena.free([new]);
                    return Err(FULL);
                };
                let dst = self.arena.ptr(new);
                if partial {
                    // SAFETY: both slots hold CHUNK bytes; `new` is ours alone.
                    unsafe {
                        match old {
                            Some(o) => std::ptr::copy_nonoverlapping(self.arena.ptr(o), dst, CHUNK),
                            None => std::ptr::write_bytes(dst, 0, CHUNK),
                        }
                    }
                }
                w.keep(c, old);
                Ok(dst)
            }
            Media::File(map) => {
                let base = Self::mapped(map, c * CHUNK as u64);
                if let Some(w) = keep {
                    let img = self.arena.alloc_any().ok_or(FULL)?;
                    // SAFETY: the chunk lies inside the mapping (capacity is a multiple of
                    // CHUNK); the image slot holds CHUNK bytes.
                    unsafe { std::ptr::copy_nonoverlapping(base, self.arena.ptr(img), CHUNK) };
                    w.keep(c, Some(img));
                }
                Ok(base)
            }
        }
    }

    /// A FUA write or zeroing made `o..o+n` of chunk `c` durable: the kept image (if any)
    /// takes the new bytes, copied from `src` (the chunk's media) or zeroes.
    fn durable_update(&self, w: &mut WriteCache, c: u64, o: usize, n: usize, src: Option<*mut u8>) -> Result<(), Status> {
        let Some(img) = w.image_mut(c) else { return Ok(()) };
        let slot = match (*img, src) {
            (Some(s), _) => s,
            // An image of zeroes stays one when zeroes are written.
            (None, None) => return Ok(()),
            (None, Some(_)) => *img.insert(self.arena.alloc_zeroed().ok_or(FULL)?),
        };
        let dst = self.arena.ptr(slot).wrapping_add(o);
        // SAFETY: `o + n <= CHUNK` within both the image slot and the chunk's media.
        unsafe {
            match src {
                Some(s) => std::ptr::copy_nonoverlapping(s.wrapping_add(o), dst, n),
                None => std::ptr::write_bytes(dst, 0, n),
            }
        }
        Ok(())
    }

    /// Sets blocks to zero (Write Zeroes, and deallocation since DLFEAT reads zeroes).
    pub(crate) fn zero(&self, lba: u64, nlb: u64, fua: bool) -> Result<(), Status> {
        let (off, len) = self.byte_range(lba, nlb);
        let _g = self.range_lock(off, len);
        match &self.media {
            Media::File(map) => {
                let mut cache = self.cache_for(off, len, fua);
                if cache.is_some() && !fua {
                    for (c, _, _) in pieces(off, len) {
                        self.chunk_for_write(c, true, cache.as_deref_mut(), fua)?;
                    }
                }
                self.zero_mapped(map, off, len);
                if fua && let Some(w) = cache.as_deref_mut() {
                    for (c, o, n) in pieces(off, len) {
                        self.durable_update(w, c, o, n, None)?;
                    }
                }
            }
            Media::Memory(ix) => self.zero_chunks(ix, off, len, fua)?,
        }
        self.clear_uncorrectable(lba, nlb);
        Ok(())
    }

    /// Zeroing memory media: only written chunks change; whole ones are released.
    fn zero_chunks(&self, ix: &ChunkIndex, off: u64, len: usize, fua: bool) -> Result<(), Status> {
        let count = chunk_count(off, len);
        if count == 0 {
            return Ok(());
        }
        let (first, last) = (off / CHUNK as u64, (off + len as u64 - 1) / CHUNK as u64);
        let written: Vec<u64> = if count > WALK_LIMIT { ix.written_in(first, last) } else { (first..=last).filter(|&c| ix.get(c).is_some()).collect() };
        let mut cache = self.cache_for(off, written.len() * CHUNK, fua);
        let mut released = Vec::new();
        for c in written {
            let (o, n) = piece(off, len, c);
            let Some(cur) = ix.get(c) else { continue };
            let keep = cache.as_deref_mut().filter(|w| !fua && !w.holds(c));
            match (keep, n == CHUNK) {
                (Some(w), true) => {
                    let _ = ix.set(c, None);
                    w.keep(c, Some(cur));
                }
                (Some(w), false) => {
                    let new = self.arena.alloc_any().ok_or(FULL)?;
                    // SAFETY: both slots hold CHUNK bytes; `new` is ours alone.
                    unsafe {
                        std::ptr::copy_nonoverlapping(self.arena.ptr(cur), self.arena.ptr(new), CHUNK);
                        std::ptr::write_bytes(self.arena.ptr(new).add(o), 0, n);
                    }
                    // The chunk is written, so its leaf exists: nothing to allocate.
                    let _ = ix.set(c, Some(new));
                    w.keep(c, Some(cur));
                }
                (None, true) => {
                    let _ = ix.set(c, None);
                    released.push(cur);
                }
                // SAFETY: `o + n <= CHUNK` inside the chunk's slot.
                (None, false) => unsafe { std::ptr::write_bytes(self.arena.ptr(cur).add(o), 0, n) },
            }
        }
        self.arena.free(released);
        if fua && let Some(w) = cache.as_deref_mut() {
            // Images of chunks written since the last flush take the zeroes too, whether
            // or not the chunk holds data now.
            let held = if count > WALK_LIMIT { w.held_in(first, last) } else { (first..=last).collect() };
            for c in held {
                let (o, n) = piece(off, len, c);
                self.durable_update(w, c, o, n, None)?;
            }
        }
        Ok(())
    }

    fn zero_mapped(&self, map: &MmapRaw, off: u64, len: usize) {
        // Whole pages go back to the system; the edges are cleared by hand.
        let page = 4096u64;
        let start = off.next_multiple_of(page);
        let end = (off + len as u64) / page * page;
        let mut released = false;
        if end > start {
            // SAFETY: the range is page aligned and inside the mapping; nothing holds a
            // reference into it (all media access is by raw pointer under the range lock
            // the caller holds), and the advice makes the pages read back as zeroes.
            released = unsafe { map.unchecked_advise_range(UncheckedAdvice::Remove, start as usize, (end - start) as usize) }.is_ok();
        }
        let fill = |from: u64, to: u64| {
            if to > from {
                // SAFETY: `from..to` is inside the mapping.
                unsafe { std::ptr::write_bytes(Self::mapped(map, from), 0, (to - from) as usize) };
            }
        };
        if released {
            fill(off, start.min(off + len as u64));
            fill(end.max(off), off + len as u64);
        } else {
            fill(off, off + len as u64);
        }
    }

    /// Copies media bytes at `off` into `dst`; unwritten chunks give zeroes.
    fn copy_to(&self, off: u64, dst: &mut [u8]) {
        let seg = [Seg { ptr: std::ptr::NonNull::new(dst.as_mut_ptr()), len: dst.len() }];
        self.copy_out(off, dst.len(), &seg);
    }

    /// Compares blocks with host data: `Ok(true)` when equal.
    pub(crate) fn compare(&self, lba: u64, nlb: u64, segs: &[Seg], scratch: &mut Vec<u8>) -> Result<bool, Status> {
        if self.any_uncorrectable(lba, nlb) {
            return Err(Status::UNRECOVERED_READ_ERROR);
        }
        let (off, len) = self.byte_range(lba, nlb);
        scratch.clear();
        scratch.resize(len, 0);
        // SAFETY: segments map `len` bytes; `scratch` holds `len` bytes.
        unsafe { dma::gather(segs, scratch.as_mut_ptr(), len) };
        let _g = self.range_lock(off, len);
        let mut tmp = [0u8; CHUNK];
        for i in (0..len).step_by(CHUNK) {
            let m = (len - i).min(CHUNK);
            self.copy_to(off + i as u64, &mut tmp[..m]);
            if tmp[..m] != scratch[i..i + m] {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Copies raw media bytes (for tests and diagnostics).
    pub(crate) fn peek(&self, lba: u64, dst: &mut [u8]) {
        let off = lba << self.lba_shift();
        let n = (dst.len() as u64).min(self.capacity.saturating_sub(off)) as usize;
        self.copy_to(off, &mut dst[..n]);
    }

    /// Writes raw media bytes at an LBA offset, past the write cache (fault injection: a
    /// misdirected write).
    pub(crate) fn poke(&self, lba: u64, segs: &[Seg], len: usize) -> Result<(), Status> {
        let off = lba << self.lba_shift();
        let n = (len as u64).min(self.capacity.saturating_sub(off)) as usize;
        let _g = self.range_lock(off, n);
        let mut cur = SegCursor::new(segs);
        for (c, o, k) in pieces(off, n) {
            let chunk = self.chunk_for_write(c, k < CHUNK, None, false)?;
            // SAFETY: `chunk` addresses CHUNK bytes of media, `o + k <= CHUNK`; segments map
            // at least `n` bytes.
            unsafe { cur.copy(Some(chunk.wrapping_add(o)), k, false) };
        }
        Ok(())
    }

    /// Makes every cached write durable (Flush, clean shutdown).
    pub(crate) fn flush(&self) {
        lock(&self.cache).write_back(&self.arena);
    }

    /// Number of 4 KiB chunks holding unflushed writes.
    pub(crate) fn dirty_chunks(&self) -> usize {
        lock(&self.cache).len()
    }

    /// Enables or disables the volatile write cache; disabling writes it back.
    pub(crate) fn set_cache_enabled(&self, on: bool) {
        if !on {
            self.flush();
        }
        self.cache_enabled.store(on, Ordering::Relaxed);
    }

    /// Whether the write cache is enabled.
    pub(crate) fn cache_enabled(&self) -> bool {
        self.cache_enabled.load(Ordering::Relaxed)
    }

    /// Power is lost: unflushed writes are undone when `dirty`, written back otherwise.
    pub(crate) fn power_loss(&self, dirty: bool) {
        let mut c = lock(&self.cache);
        if !dirty {
            c.write_back(&self.arena);
            return;
        }
        let mut released = Vec::new();
        for (chunk, img) in c.take() {
            match &self.media {
                // A chunk written since the last flush has its leaf: nothing to allocate.
                Media::Memory(ix) => released.extend(ix.set(chunk, img).ok().flatten()),
                Media::File(map) => {
                    let dst = Self::mapped(map, chunk * CHUNK as u64);
                    // SAFETY: the chunk is inside the mapping, the image holds CHUNK bytes;
                    // processing threads are stopped.
                    unsafe {
                        match img {
                            Some(s) => std::ptr::copy_nonoverlapping(self.arena.ptr(s), dst, CHUNK),
                            None => std::ptr::write_bytes(dst, 0, CHUNK),
                        }
                    }
                    released.extend(img);
                }
            }
        }
        self.arena.free(released);
    }

    /// Format NVM / Sanitize: every block reads as zero again, marks and cache are gone,
    /// and the LBA size becomes `2^lbads`. Processing threads are paused by the caller.
    pub(crate) fn erase(&self, lbads: u32) {
        let mut c = lock(&self.cache);
        match &self.media {
            Media::Memory(ix) => {
                c.forget();
                ix.clear();
                self.arena.clear();
            }
            Media::File(map) => {
                c.write_back(&self.arena);
                self.zero_mapped(map, 0, self.capacity as usize);
            }
        }
        drop(c);
        self.written_since_purge.store(0, Ordering::Relaxed);
        lock(&self.uncorrectable).clear();
        self.uncorrectable_ranges.store(0, Ordering::Release);
        self.lba_shift.store(lbads, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::NonNull;

    fn ns(cache: bool) -> Namespace {
        Namespace::new(1, &NamespaceConfig::memory(1 << 20, 512), cache.then_some(1 << 20), false, "T").unwrap()
    }

    /// A file-backed namespace, its file removed when dropped.
    struct FileNs(Namespace, std::path::PathBuf);
    impl Drop for FileNs {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.1);
        }
    }
    fn file_ns(name: &str) -> FileNs {
        let path = std::env::temp_dir().join(format!("nvplan-ns-{}-{name}.img", std::process::id()));
        let cfg = NamespaceConfig { capacity: 1 << 20, lba_size: 512, backing: Backing::File(path.clone()) };
        FileNs(Namespace::new(1, &cfg, Some(1 << 20), false, "T").unwrap(), path)
    }

    fn write(n: &Namespace, lba: u64, nlb: u64, byte: u8, fua: bool) {
        let mut v = vec![byte; 512 * nlb as usize];
        n.write(lba, nlb, &seg_of(&mut v), fua).unwrap();
    }

    fn seg_of(v: &mut [u8]) -> [Seg; 1] {
        [Seg { ptr: NonNull::new(v.as_mut_ptr()), len: v.len() }]
    }

    fn read_back(n: &Namespace, lba: u64) -> Vec<u8> {
        let mut out = vec![0u8; 512];
        n.read(lba, 1, &seg_of(&mut out)).unwrap();
        out
    }

    fn drops_exactly_unflushed_writes(n: &Namespace) {
        write(n, 0, 1, 0xAA, false);
        n.flush();
        write(n, 0, 1, 0xBB, false); // unflushed overwrite of flushed data
        write(n, 1, 1, 0xCC, true); // FUA into the same chunk
        write(n, 100, 1, 0xCC, false); // unflushed, never-written before
        write(n, 200, 1, 0xDD, false); // unflushed, then made durable by FUA in its chunk
        write(n, 201, 1, 0xEE, true);
        write(n, 300, 16, 0x11, false); // whole chunks, unflushed, one zeroed by FUA
        n.zero(304, 8, true).unwrap();
        n.power_loss(true);
        assert_eq!(read_back(n, 0), vec![0xAA; 512]);
        assert_eq!(read_back(n, 1), vec![0xCC; 512]);
        assert_eq!(read_back(n, 100), vec![0u8; 512]);
        assert_eq!(read_back(n, 200), vec![0u8; 512]);
        assert_eq!(read_back(n, 201), vec![0xEE; 512]);
        for lba in 300..316 {
            assert_eq!(read_back(n, lba), vec![0u8; 512], "lba {lba}");
        }
        assert_eq!(n.dirty_chunks(), 0);
    }

    #[test]
    fn dirty_power_loss_drops_exactly_unflushed_writes() {
        drops_exactly_unflushed_writes(&ns(true));
    }

    #[test]
    fn file_media_drop_exactly_unflushed_writes_too() {
        drops_exactly_unflushed_writes(&file_ns("undo").0);
    }

    #[test]
    fn undone_first_writes_give_their_memory_back() {
        let n = ns(true);
        // One index node and one leaf cover the first 512 KiB, cut from a slot of index
        // memory for nodes and one for leaves; they stay once created.
        let index = 2 * 4096;
        write(&n, 0, 64, 0x42, false);
        assert_eq!(n.memory_in_use(), index + 8 * 4096);
        n.power_loss(true);
        assert_eq!(n.memory_in_use(), index);
        write(&n, 0, 64, 0x42, false);
        n.flush();
        write(&n, 0, 64, 0x43, false);
        assert_eq!(n.memory_in_use(), index + 16 * 4096, "new data and the durable images");
        n.flush();
        assert_eq!(n.memory_in_use(), index + 8 * 4096);
        n.zero(0, 64, false).unwrap();
        n.flush();
        assert_eq!(n.memory_in_use(), index, "deallocated chunks hold no memory");
    }

    #[test]
    fn a_full_cache_keeps_the_newest_writes_volatile_and_the_oldest_durable() {
        let n = Namespace::new(1, &NamespaceConfig::memory(1 << 20, 512), Some(2 * 4096), false, "T").unwrap();
        for (i, b) in [0xA1u8, 0xA2, 0xA3].into_iter().enumerate() {
            write(&n, i as u64 * 8, 8, b, false);
        }
        assert_eq!(n.dirty_chunks(), 2);
        n.power_loss(true);
        assert_eq!(read_back(&n, 0), vec![0xA1; 512], "written back when the cache filled");
        assert_eq!(read_back(&n, 8), vec![0u8; 512]);
        assert_eq!(read_back(&n, 16), vec![0u8; 512]);
    }

    #[test]
    fn deallocating_a_64_tib_namespace_touches_only_what_was_written() {
        let n = Namespace::new(1, &NamespaceConfig::memory(64 << 40, 512), Some(1 << 20), false, "T").unwrap();
        let far = (64u64 << 40) / 512 - 8;
        write(&n, far, 8, 0x77, false);
        write(&n, 12345, 3, 0x78, false);
        let t = std::time::Instant::now();
        n.zero(1, n.nlba() - 1, false).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(read_back(&n, far), vec![0u8; 512]);
        assert_eq!(read_back(&n, 12345), vec![0u8; 512]);
        n.power_loss(true);
        assert_eq!(read_back(&n, far), vec![0u8; 512], "the writes were never flushed");
        write(&n, far, 8, 0x79, false);
        n.flush();
        n.zero(0, n.nlba(), false).unwrap();
        n.power_loss(true);
        assert_eq!(read_back(&n, far), vec![0x79; 512], "the deallocation was never flushed");
    }

    #[test]
    fn a_partial_write_keeps_the_rest_of_its_chunk() {
        for n in [ns(true), ns(false)] {
            write(&n, 0, 8, 0x31, false);
            n.flush();
            write(&n, 3, 1, 0x32, false);
            for lba in 0..8 {
                assert_eq!(read_back(&n, lba), vec![if lba == 3 { 0x32 } else { 0x31 }; 512], "lba {lba}");
            }
        }
    }

    #[test]
    fn clean_power_loss_keeps_cached_writes() {
        let n = ns(true);
        write(&n, 7, 1, 0x5A, false);
        n.power_loss(false);
        assert_eq!(read_back(&n, 7), vec![0x5A; 512]);
    }

    #[test]
    fn uncorrectable_marks_merge_and_clear_by_range() {
        let n = ns(false);
        n.mark_uncorrectable(10, 10);
        n.mark_uncorrectable(20, 5);
        assert!(n.any_uncorrectable(24, 1));
        assert!(!n.any_uncorrectable(25, 100));
        n.clear_uncorrectable(12, 2);
        assert!(!n.any_uncorrectable(12, 2));
        assert!(n.any_uncorrectable(11, 1) && n.any_uncorrectable(14, 1));
        let mut buf = vec![0u8; 512];
        assert_eq!(n.read(15, 1, &seg_of(&mut buf)), Err(Status::UNRECOVERED_READ_ERROR));
        n.zero(10, 20, false).unwrap();
        assert!(!n.any_uncorrectable(0, 100));
    }

    #[test]
    fn zeroing_whole_and_partial_pages_reads_zero() {
        let n = ns(false);
        write(&n, 0, 20, 0x11, false);
        n.zero(3, 12, false).unwrap();
        for lba in 0..20 {
            let expect = if (3..15).contains(&lba) { 0 } else { 0x11 };
            assert_eq!(read_back(&n, lba), vec![expect; 512], "lba {lba}");
        }
    }

    #[test]
    fn concurrent_stripes_cover_wide_ranges() {
        let l = StripedLocks::new();
        let g = l.lock(0, 1 << 40);
        assert!(g.held.iter().all(|w| *w == u64::MAX));
        drop(g);
        let g = l.lock(5 << STRIPE_SHIFT, 1);
        assert_eq!(g.held[0], 1 << 5);
    }
}
