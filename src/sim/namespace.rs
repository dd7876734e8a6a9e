//! A namespace's media: logical blocks in a sparse mapping, the volatile write cache,
//! and blocks marked uncorrectable.
//!
//! Blocks live in one mapping as large as the namespace: anonymous memory reserved
//! without swap (pages exist only once written; unwritten blocks read as zeroes, which is
//! what Identify Namespace DLFEAT reports) or a file. The volatile write cache is kept as
//! an undo log: a write goes to the media at once, and the first unflushed write to a
//! 4 KiB chunk saves the chunk's durable content. Flush and FUA make data durable; a dirty
//! power loss puts the saved content back, so exactly the unflushed writes disappear.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use memmap2::{MmapRaw, UncheckedAdvice};

use super::config::{Backing, NamespaceConfig};
use super::dma::{self, Seg};
use crate::nvme::status::Status;

/// Granularity of the write cache's undo images.
const CHUNK: usize = 4096;
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

#[derive(Default)]
struct WriteCache {
    /// Durable content of every chunk written since the last flush.
    undo: HashMap<u64, Box<[u8]>>,
}

/// One namespace of the simulated controller.
pub(crate) struct Namespace {
    capacity: u64,
    lba_shift: AtomicU32,
    map: MmapRaw,
    file_backed: bool,
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

impl Namespace {
    /// Creates the media. `concurrent`: more than one thread will process I/O.
    pub(crate) fn new(nsid: u32, cfg: &NamespaceConfig, cache: Option<u64>, concurrent: bool, serial: &str) -> std::io::Result<Self> {
        let capacity = cfg.capacity / 4096 * 4096;
        let (map, file_backed) = match &cfg.backing {
            Backing::Memory => (MmapRaw::from(memmap2::MmapOptions::new().len(capacity as usize).no_reserve_swap().map_anon()?), false),
            Backing::File(path) => {
                let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
                if f.metadata()?.len() < capacity {
                    f.set_len(capacity)?;
                }
                (memmap2::MmapOptions::new().len(capacity as usize).map_raw(&f)?, true)
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
            map,
            file_backed,
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

    /// Whether `lba..lba+nlb` lies inside the namespace.
    pub(crate) fn in_range(&self, lba: u64, nlb: u64) -> bool {
        lba.checked_add(nlb).is_some_and(|e| e <= self.nlba())
    }

    fn byte_range(&self, lba: u64, nlb: u64) -> (u64, usize) {
        let s = self.lba_shift();
        (lba << s, (nlb << s) as usize)
    }

    fn media(&self, off: u64) -> *mut u8 {
        debug_assert!(off <= self.capacity);
        self.map.as_mut_ptr().wrapping_add(off as usize)
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

    /// Copies blocks to the host.
    pub(crate) fn read(&self, lba: u64, nlb: u64, segs: &[Seg]) -> Result<(), Status> {
        if self.any_uncorrectable(lba, nlb) {
            return Err(Status::UNRECOVERED_READ_ERROR);
        }
        let (off, len) = self.byte_range(lba, nlb);
        let _g = self.range_lock(off, len);
        // SAFETY: the range is inside the mapping (checked by the caller with `in_range`)
        // and the segments describe `len` bytes of mapped host memory.
        unsafe { dma::scatter(segs, self.media(off), len) };
        Ok(())
    }

    /// Copies blocks from the host.
    pub(crate) fn write(&self, lba: u64, nlb: u64, segs: &[Seg], fua: bool) {
        let (off, len) = self.byte_range(lba, nlb);
        let _g = self.range_lock(off, len);
        let mut cache = self.cache_begin(off, len, fua);
        // SAFETY: range inside the mapping (caller checked), segments map `len` bytes.
        unsafe { dma::gather(segs, self.media(off), len) };
        self.cache_end(&mut cache, off, len, fua);
        drop(cache);
        self.clear_uncorrectable(lba, nlb);
    }

    /// Sets blocks to zero (Write Zeroes, and deallocation since DLFEAT reads zeroes).
    pub(crate) fn zero(&self, lba: u64, nlb: u64, fua: bool) {
        let (off, len) = self.byte_range(lba, nlb);
        let _g = self.range_lock(off, len);
        let mut cache = self.cache_begin(off, len, fua);
        self.zero_media(off, len);
        self.cache_end(&mut cache, off, len, fua);
        drop(cache);
        self.clear_uncorrectable(lba, nlb);
    }

    fn zero_media(&self, off: u64, len: usize) {
        // Whole pages go back to the system; the edges are cleared by hand.
        let page = 4096u64;
        let start = off.next_multiple_of(page);
        let end = (off + len as u64) / page * page;
        let mut released = false;
        if end > start {
            let advice = if self.file_backed { UncheckedAdvice::Remove } else { UncheckedAdvice::DontNeed };
            // SAFETY: the range is page aligned and inside the mapping; nothing holds a
            // reference into it (all media access is by raw pointer under the range lock
            // the caller holds), and both advices make the pages read back as zeroes.
            released = unsafe { self.map.unchecked_advise_range(advice, start as usize, (end - start) as usize) }.is_ok();
        }
        let fill = |from: u64, to: u64| {
            if to > from {
                // SAFETY: `from..to` is inside the mapping.
                unsafe { std::ptr::write_bytes(self.media(from), 0, (to - from) as usize) };
            }
        };
        if released {
            fill(off, start.min(off + len as u64));
            fill(end.max(off), off + len as u64);
        } else {
            fill(off, off + len as u64);
        }
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
        let mut tmp = [0u8; 4096];
        for i in (0..len).step_by(tmp.len()) {
            let m = (len - i).min(tmp.len());
            // SAFETY: inside the mapping; `tmp` is local memory of at least `m` bytes.
            unsafe { std::ptr::copy_nonoverlapping(self.media(off + i as u64), tmp.as_mut_ptr(), m) };
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
        // SAFETY: `off..off+n` is inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(self.media(off), dst.as_mut_ptr(), n) };
    }

    /// Writes raw media bytes at an LBA offset (fault injection: misdirected write).
    pub(crate) fn poke(&self, lba: u64, segs: &[Seg], len: usize) {
        let off = lba << self.lba_shift();
        let n = (len as u64).min(self.capacity.saturating_sub(off)) as usize;
        let _g = self.range_lock(off, n);
        // SAFETY: `off..off+n` is inside the mapping; segments map at least `n` bytes.
        unsafe { dma::gather(segs, self.media(off), n) };
    }

    /// Saves the durable content of the chunks a write is about to change. A FUA write is
    /// durable itself, so it saves nothing new; it only updates images already saved (in
    /// `cache_end`).
    fn cache_begin(&self, off: u64, len: usize, fua: bool) -> Option<MutexGuard<'_, WriteCache>> {
        if !self.cache_enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut c = lock(&self.cache);
        if fua {
            return Some(c);
        }
        let first = off / CHUNK as u64;
        let last = (off + len as u64 - 1) / CHUNK as u64;
        let chunks = (last - first + 1) as usize;
        if c.undo.len() + chunks > self.cache_chunks {
            // Cache full: the device writes everything back on its own.
            c.undo.clear();
        }
        if chunks > self.cache_chunks {
            // Larger than the whole cache: written through, durable at once.
            return None;
        }

        for chunk in first..=last {
            c.undo.entry(chunk).or_insert_with(|| {
                let mut img = vec![0u8; CHUNK].into_boxed_slice();
                let base = chunk * CHUNK as u64;
                let n = (self.capacity - base).min(CHUNK as u64) as usize;
                // SAFETY: `base..base+n` is inside the mapping; `img` is local memory.
                unsafe { std::ptr::copy_nonoverlapping(self.media(base), img.as_mut_ptr(), n) };
                img
            });
        }
        Some(c)
    }

    fn cache_end(&self, cache: &mut Option<MutexGuard<'_, WriteCache>>, off: u64, len: usize, fua: bool) {
        let Some(c) = cache else { return };
        if !fua {
            return;
        }
        // FUA: the new bytes are durable, so they become part of the saved images.
        let end = off + len as u64;
        for chunk in off / CHUNK as u64..=(end - 1) / CHUNK as u64 {
            let base = chunk * CHUNK as u64;
            let (s, e) = (off.max(base), end.min(base + CHUNK as u64));
            if let Some(img) = c.undo.get_mut(&chunk) {
                // SAFETY: `s..e` is inside the mapping and inside this chunk's image.
                unsafe { std::ptr::copy_nonoverlapping(self.media(s), img.as_mut_ptr().add((s - base) as usize), (e - s) as usize) };
            }
        }
    }

    /// Makes every cached write durable (Flush, clean shutdown).
    pub(crate) fn flush(&self) {
        lock(&self.cache).undo.clear();
    }

    /// Number of 4 KiB chunks holding unflushed writes.
    pub(crate) fn dirty_chunks(&self) -> usize {
        lock(&self.cache).undo.len()
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
        if dirty {
            for (chunk, img) in c.undo.drain() {
                let base = chunk * CHUNK as u64;
                let n = (self.capacity - base).min(CHUNK as u64) as usize;
                // SAFETY: inside the mapping; processing threads are stopped.
                unsafe { std::ptr::copy_nonoverlapping(img.as_ptr(), self.media(base), n) };
            }
        }
        c.undo.clear();
    }

    /// Format NVM / Sanitize: every block reads as zero again, marks and cache are gone,
    /// and the LBA size becomes `2^lbads`. Processing threads are paused by the caller.
    pub(crate) fn erase(&self, lbads: u32) {
        self.zero_media(0, self.capacity as usize);
        self.written_since_purge.store(0, Ordering::Relaxed);
        lock(&self.cache).undo.clear();
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

    fn seg_of(v: &mut [u8]) -> [Seg; 1] {
        [Seg { ptr: NonNull::new(v.as_mut_ptr()), len: v.len() }]
    }

    fn read_back(n: &Namespace, lba: u64) -> Vec<u8> {
        let mut out = vec![0u8; 512];
        n.read(lba, 1, &seg_of(&mut out)).unwrap();
        out
    }

    #[test]
    fn dirty_power_loss_drops_exactly_unflushed_writes() {
        let n = ns(true);
        let mut a = vec![0xAA; 512];
        let mut b = vec![0xBB; 512];
        let mut c = vec![0xCC; 512];
        n.write(0, 1, &seg_of(&mut a), false);
        n.flush();
        n.write(0, 1, &seg_of(&mut b), false); // unflushed overwrite of flushed data
        n.write(1, 1, &seg_of(&mut c), true); // FUA into the same chunk
        n.write(100, 1, &seg_of(&mut c), false); // unflushed, never-written before
        n.power_loss(true);
        assert_eq!(read_back(&n, 0), vec![0xAA; 512]);
        assert_eq!(read_back(&n, 1), vec![0xCC; 512]);
        assert_eq!(read_back(&n, 100), vec![0u8; 512]);
    }

    #[test]
    fn clean_power_loss_keeps_cached_writes() {
        let n = ns(true);
        let mut a = vec![0x5A; 512];
        n.write(7, 1, &seg_of(&mut a), false);
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
        n.zero(10, 20, false);
        assert!(!n.any_uncorrectable(0, 100));
    }

    #[test]
    fn zeroing_whole_and_partial_pages_reads_zero() {
        let n = ns(false);
        let mut a = vec![0x11; 512 * 20];
        n.write(0, 20, &seg_of(&mut a), false);
        n.zero(3, 12, false);
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
