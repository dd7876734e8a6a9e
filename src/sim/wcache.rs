//! The volatile write cache, kept as an undo log: a write goes to the media at once, and
//! the first unflushed write to a 4 KiB chunk keeps the chunk's durable content (an image
//! in the arena, or nothing for a chunk whose durable content is zeroes). Flush and FUA
//! make data durable (NVMe 2.0 §5.15, §6.15 FUA); a dirty power loss puts the images
//! back, so exactly the unflushed writes disappear.
//!
//! A full cache writes back its oldest chunks, one for each new one, as a drive drains
//! its buffer: the cost of a write does not depend on how much is cached.

use std::collections::{HashMap, VecDeque};

use foldhash::fast::FixedState;

use super::store::{Arena, Slot};

#[derive(Default)]
pub(crate) struct WriteCache {
    /// Durable content of every chunk written since it was last made durable.
    undo: HashMap<u64, Option<Slot>, FixedState>,
    /// The same chunks, oldest first: the order of write-back.
    order: VecDeque<u64>,
}

impl WriteCache {
    /// Number of chunks holding unflushed writes.
    pub(crate) fn len(&self) -> usize {
        self.undo.len()
    }

    /// Whether the chunk's durable content is already kept.
    #[inline]
    pub(crate) fn holds(&self, chunk: u64) -> bool {
        self.undo.contains_key(&chunk)
    }

    /// Keeps `image` as the chunk's durable content (`None`: zeroes).
    #[inline]
    pub(crate) fn keep(&mut self, chunk: u64, image: Option<Slot>) {
        self.undo.insert(chunk, image);
        self.order.push_back(chunk);
    }

    /// The kept durable content of a chunk, to update with a FUA write.
    #[inline]
    pub(crate) fn image_mut(&mut self, chunk: u64) -> Option<&mut Option<Slot>> {
        self.undo.get_mut(&chunk)
    }

    /// Chunks in `first..=last` whose durable content is kept.
    pub(crate) fn held_in(&self, first: u64, last: u64) -> Vec<u64> {
        self.undo.keys().copied().filter(|c| (first..=last).contains(c)).collect()
    }

    /// Makes room for `chunks` more chunks in a cache of `capacity` chunks by writing back
    /// the oldest. Returns false when `chunks` alone exceed the cache: everything is
    /// written back and the write goes through, durable at once.
    pub(crate) fn make_room(&mut self, chunks: usize, capacity: usize, arena: &Arena) -> bool {
        if chunks > capacity {
            self.write_back(arena);
            return false;
        }
        while self.undo.len() + chunks > capacity {
            let Some(c) = self.order.pop_front() else { break };
            if let Some(Some(img)) = self.undo.remove(&c) {
                arena.free([img]);
            }
        }
        true
    }

    /// Makes every cached write durable (Flush, cache disabled, clean shutdown).
    pub(crate) fn write_back(&mut self, arena: &Arena) {
        arena.free(self.undo.drain().filter_map(|(_, img)| img));
        self.order.clear();
    }

    /// Takes every kept image out, for a power loss to put back.
    pub(crate) fn take(&mut self) -> Vec<(u64, Option<Slot>)> {
        self.order.clear();
        self.undo.drain().collect()
    }

    /// Forgets the log without touching its images (the arena is being cleared).
    pub(crate) fn forget(&mut self) {
        self.undo.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_writes_back_its_oldest_chunks_first() {
        let a = Arena::new(1 << 30);
        let mut c = WriteCache::default();
        for chunk in 0..4 {
            assert!(c.make_room(1, 4, &a));
            c.keep(chunk, a.alloc_any());
        }
        assert!(c.make_room(2, 4, &a));
        assert!(!c.holds(0) && !c.holds(1) && c.holds(2) && c.holds(3));
        assert_eq!(a.bytes_in_use(), 2 * 4096);
    }

    #[test]
    fn a_write_larger_than_the_cache_goes_through() {
        let a = Arena::new(1 << 30);
        let mut c = WriteCache::default();
        c.keep(7, a.alloc_any());
        assert!(!c.make_room(5, 4, &a));
        assert_eq!(c.len(), 0);
        assert_eq!(a.bytes_in_use(), 0);
    }
}
