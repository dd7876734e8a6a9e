//! DMA memory: host memory the controller reads and writes by IOVA.
//!
//! A controller may write such memory at any time while a command that references it is
//! outstanding, so no Rust reference ever points into it: every access goes through raw
//! pointers, copying in or out, or through explicit volatile and atomic loads and stores.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::nvme::pod::{self, Pod};

/// Keeps a DMA mapping alive; dropping the last owner unmaps and frees it.
pub trait DmaOwner: Send + Sync {}

/// A range of DMA memory: host pointer, IOVA and length.
///
/// Clones and sub-ranges ([`DmaBuffer::slice`]) share the mapping, which is released when
/// the last of them is dropped.
#[derive(Clone)]
pub struct DmaBuffer {
    ptr: NonNull<u8>,
    len: usize,
    iova: u64,
    owner: Arc<dyn DmaOwner>,
}

// SAFETY: `DmaBuffer` is a handle to memory shared with a device. It never hands out
// references into that memory; all accesses are raw-pointer copies or atomics whose
// ordering against the device is established by doorbell writes (release) and completion
// phase-tag loads (acquire). Moving or sharing the handle between threads is therefore
// no less sound than the device's own concurrent access.
unsafe impl Send for DmaBuffer {}
// SAFETY: see `Send`: methods take `&self` and perform only raw copies and atomics.
unsafe impl Sync for DmaBuffer {}

impl std::fmt::Debug for DmaBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DmaBuffer{{iova={:#x} len={:#x}}}", self.iova, self.len)
    }
}

impl DmaBuffer {
    /// Wraps a mapping. The transport guarantees `ptr..ptr+len` stays mapped and valid for
    /// reads and writes at IOVA `iova..iova+len` while `owner` lives.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as `owner` (or
    /// any clone of it) is alive, and must not be accessed through Rust references.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize, iova: u64, owner: Arc<dyn DmaOwner>) -> Self {
        DmaBuffer { ptr, len, iova, owner }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// IOVA of the first byte: what goes into PRP entries and SGL descriptors.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Host pointer to the first byte, for code that must read or write in place (for
    /// example data verification over a completed read). Never turn it into a reference
    /// while the device may access the memory.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// A sub-range sharing this mapping.
    ///
    /// # Panics
    /// If `offset + len` exceeds the buffer: a programming error in the caller.
    pub fn slice(&self, offset: usize, len: usize) -> DmaBuffer {
        assert!(offset.checked_add(len).is_some_and(|e| e <= self.len), "DMA slice {offset:#x}+{len:#x} outside {self:?}");
        DmaBuffer {
            // SAFETY: `offset <= self.len`, so the result stays inside (or one past) the
            // mapping that `self.ptr` points into.
            ptr: unsafe { NonNull::new_unchecked(self.ptr.as_ptr().add(offset)) },
            len,
            iova: self.iova + offset as u64,
            owner: self.owner.clone(),
        }
    }

    fn check(&self, offset: usize, len: usize) {
        assert!(offset.checked_add(len).is_some_and(|e| e <= self.len), "DMA access {offset:#x}+{len:#x} outside {self:?}");
    }

    /// Copies bytes out of the buffer.
    pub fn read(&self, offset: usize, dst: &mut [u8]) {
        self.check(offset, dst.len());
        // SAFETY: bounds checked above; the source is DMA memory accessed by raw copy and
        // `dst` is ordinary host memory, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies bytes into the buffer.
    pub fn write(&self, offset: usize, src: &[u8]) {
        self.check(offset, src.len());
        // SAFETY: bounds checked above; distinct memories, raw copy into DMA memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(offset), src.len()) }
    }

    /// Sets `len` bytes from `offset` to `byte`.
    pub fn fill(&self, offset: usize, len: usize, byte: u8) {
        self.check(offset, len);
        // SAFETY: bounds checked above.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(offset), byte, len) }
    }

    /// Copies the whole buffer into a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len];
        self.read(0, &mut v);
        v
    }

    /// Reads a spec structure (e.g. an SQE or an Identify page) at `offset`.
    pub fn read_obj<T: Pod>(&self, offset: usize) -> T {
        let mut v = pod::zeroed::<T>();
        self.read(offset, pod::as_bytes_mut(&mut v));
        v
    }

    /// Writes a spec structure at `offset`.
    pub fn write_obj<T: Pod>(&self, offset: usize, v: &T) {
        self.write(offset, pod::as_bytes(v));
    }

    /// Volatile little-endian 32-bit read.
    pub fn read_u32(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        // SAFETY: bounds checked; unaligned read through a raw pointer, no reference made.
        u32::from_le_bytes(unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(offset).cast::<[u8; 4]>()) })
    }

    /// Volatile little-endian 32-bit write.
    pub fn write_u32(&self, offset: usize, v: u32) {
        self.check(offset, 4);
        // SAFETY: bounds checked; raw volatile write of 4 bytes.
        unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(offset).cast::<[u8; 4]>(), v.to_le_bytes()) }
    }

    /// Volatile little-endian 64-bit read.
    pub fn read_u64(&self, offset: usize) -> u64 {
        self.check(offset, 8);
        // SAFETY: bounds checked; raw volatile read of 8 bytes.
        u64::from_le_bytes(unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(offset).cast::<[u8; 8]>()) })
    }

    /// Volatile little-endian 64-bit write.
    pub fn write_u64(&self, offset: usize, v: u64) {
        self.check(offset, 8);
        // SAFETY: bounds checked; raw volatile write of 8 bytes.
        unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(offset).cast::<[u8; 8]>(), v.to_le_bytes()) }
    }

    /// Acquire load of an aligned 32-bit word: how the host polls a completion's phase
    /// tag, so that the rest of the entry is read after the device wrote it.
    pub fn load_u32_acquire(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        let p = self.ptr.as_ptr().wrapping_add(offset).cast::<u32>();
        assert!(p.is_aligned(), "atomic DMA access at unaligned offset {offset:#x}");
        // SAFETY: in bounds and aligned; `AtomicU32` has the layout of `u32`, and the
        // device's concurrent stores are exactly what an atomic view is for. The
        // reference lives only for this load.
        unsafe { AtomicU32::from_ptr(p) }.load(Ordering::Acquire)
    }

    /// Release store of an aligned 32-bit word: how a device model publishes a completion's
    /// last dword (with the phase tag) after the rest of the entry.
    pub fn store_u32_release(&self, offset: usize, v: u32) {
        self.check(offset, 4);
        let p = self.ptr.as_ptr().wrapping_add(offset).cast::<u32>();
        assert!(p.is_aligned(), "atomic DMA access at unaligned offset {offset:#x}");
        // SAFETY: as in `load_u32_acquire`.
        unsafe { AtomicU32::from_ptr(p) }.store(v, Ordering::Release)
    }
}

/// Anonymous, zeroed, page-aligned host memory for DMA, unmapped when dropped.
#[derive(Debug)]
pub struct HostMemory {
    map: memmap2::MmapRaw,
}

impl HostMemory {
    /// Maps `len` bytes (rounded up to 4 KiB) of zeroed anonymous memory.
    pub fn new(len: usize) -> std::io::Result<HostMemory> {
        let len = len.max(1).next_multiple_of(4096);
        let map = memmap2::MmapOptions::new().len(len).map_anon()?;
        Ok(HostMemory { map: map.into() })
    }
    /// Start of the mapping.
    pub fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null")
    }
    /// Length of the mapping.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Whether the mapping is empty (never: mappings are at least one page).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}
