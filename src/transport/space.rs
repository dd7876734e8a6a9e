//! One IOVA space for every device of a process, the way physical memory is one address
//! space for every device of a machine.
//!
//! An [`AddressSpace`] hands out DMA buffers, each at an IOVA of its own that never changes
//! and is never reused. Devices reach the buffers through it: the simulator translates
//! through its table of regions (what an IOMMU does for a real device), and a transport
//! behind a real IOMMU subscribes with a [`DmaMapper`] (VFIO: `VFIO_IOMMU_MAP_DMA` into its
//! container), which maps every region that exists at the region's own IOVA and then every
//! new one, and unmaps each when it is freed or when the subscription ends. A buffer
//! allocated before a device is opened, or used with several devices in turn, so reaches
//! each of them at its one address.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use super::TransportError;
use super::dma::{DmaBuffer, DmaOwner, HostMemory};

/// First IOVA handed out: 64 GiB. Deliberately far from any host virtual address, so a
/// driver that passes a pointer instead of an IOVA gets a Data Transfer Error (or an IOMMU
/// fault) rather than luck, and inside the 39-bit aperture of the smallest Intel VT-d
/// units (QEMU's `intel-iommu` default, `aw-bits=39`: 512 GiB), above the MSI window
/// (`0xFEE0_0000`) and the low IOVAs some platforms reserve.
pub const IOVA_BASE: u64 = 0x0000_0010_0000_0000;
/// Unmapped gap after every region, so an overrun faults instead of reaching a neighbour.
const IOVA_GUARD: u64 = 1 << 20;

/// A device's IOMMU, as an address space drives it: map host memory at an IOVA, unmap it.
pub trait DmaMapper: Send + Sync {
    /// Maps `len` bytes of host memory at `ptr` (page aligned, a multiple of 4 KiB) at
    /// `iova`. The memory stays valid until [`DmaMapper::unmap`] of the same range returns.
    fn map(&self, iova: u64, ptr: std::ptr::NonNull<u8>, len: usize) -> std::io::Result<()>;
    /// Unmaps what [`DmaMapper::map`] mapped at `iova`; errors are the mapper's to report.
    fn unmap(&self, iova: u64, len: usize);
}

/// One allocation of the space: host memory at an IOVA.
pub(crate) struct Region {
    pub(crate) iova: u64,
    pub(crate) len: usize,
    pub(crate) mem: HostMemory,
}

struct State {
    next_iova: u64,
    next_id: u64,
    /// Mappers subscribed, each with the id its [`Subscription`] removes it by.
    mappers: Vec<(u64, Arc<dyn DmaMapper>)>,
}

/// The shared part of an [`AddressSpace`].
pub(crate) struct Space {
    /// Regions sorted by IOVA; replaced as a whole on every change, so readers (the
    /// simulator's threads) take a snapshot and never block the host.
    pub(crate) table: RwLock<Arc<Vec<Arc<Region>>>>,
    /// Bumped on every change of `table`.
    pub(crate) generation: AtomicU64,
    /// Serialises changes of the table with the mapping calls they make.
    state: Mutex<State>,
}

/// Host memory as devices reach it: DMA buffers at IOVAs of one space, shared by every
/// device opened in it (simulators through [`crate::sim::Simulator::new_in`], VFIO
/// functions through [`crate::transport::vfio::VfioTransport::open_in`]). Cheap to clone.
#[derive(Clone)]
pub struct AddressSpace(pub(crate) Arc<Space>);

impl Default for AddressSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddressSpace")
    }
}

/// Keeps a region in the table (and mapped in every subscriber) while a buffer over it
/// lives; holds the space, so the space outlives its buffers.
struct Mapping {
    region: Arc<Region>,
    space: Arc<Space>,
}

impl DmaOwner for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unmapped from every device before `region` (and its memory) can go.
        self.space.remove(&self.region);
    }
}

/// A mapper's subscription to an [`AddressSpace`]; dropping it unmaps every region from it.
pub struct Subscription {
    space: Weak<Space>,
    id: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subscription({})", self.id)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(space) = self.space.upgrade() {
            space.unsubscribe(self.id);
        }
    }
}

impl AddressSpace {
    /// An empty address space whose IOVAs start at [`IOVA_BASE`].
    pub fn new() -> Self {
        Self::with_base(IOVA_BASE)
    }

    /// An empty address space whose IOVAs start at `base` (rounded up to 2 MiB).
    pub fn with_base(base: u64) -> Self {
        let state = State { next_iova: base.next_multiple_of(1 << 21), next_id: 0, mappers: Vec::new() };
        AddressSpace(Arc::new(Space { table: RwLock::new(Arc::new(Vec::new())), generation: AtomicU64::new(1), state: Mutex::new(state) }))
    }

    /// Allocates zeroed, page-aligned memory at a fresh IOVA and maps it into every
    /// subscribed device. Fails (mapping nothing) when a device cannot map it.
    pub fn alloc(&self, len: usize) -> Result<DmaBuffer, TransportError> {
        self.0.alloc(len)
    }

    /// Subscribes `mapper`: maps every region of the space into it now, every new region
    /// when it is allocated, and unmaps each region when it is freed, until the returned
    /// subscription drops (which unmaps all). Fails, with nothing left mapped, when a
    /// region cannot be mapped.
    pub fn subscribe(&self, mapper: Arc<dyn DmaMapper>) -> Result<Subscription, TransportError> {
        let mut st = lock(&self.0.state);
        let regions = self.0.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        for (i, r) in regions.iter().enumerate() {
            if let Err(source) = mapper.map(r.iova, r.mem.ptr(), r.len) {
                for r in &regions[..i] {
                    mapper.unmap(r.iova, r.len);
                }
                return Err(TransportError::DmaAlloc { len: r.len, source });
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        st.mappers.push((id, mapper));
        Ok(Subscription { space: Arc::downgrade(&self.0), id })
    }

    /// Number of regions (live allocations) in the space.
    pub fn regions(&self) -> usize {
        self.0.table.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Space {
    fn alloc(self: &Arc<Self>, len: usize) -> Result<DmaBuffer, TransportError> {
        let mem = HostMemory::new(len).map_err(|source| TransportError::DmaAlloc { len, source })?;
        let mapped = mem.len();
        let ptr = mem.ptr();
        let mut st = lock(&self.state);
        let iova = st.next_iova;
        for (i, (_, m)) in st.mappers.iter().enumerate() {
            if let Err(source) = m.map(iova, ptr, mapped) {
                for (_, m) in &st.mappers[..i] {
                    m.unmap(iova, mapped);
                }
                return Err(TransportError::DmaAlloc { len, source });
            }
        }
        st.next_iova = iova + (mapped as u64).next_multiple_of(1 << 21) + IOVA_GUARD;
        let region = Arc::new(Region { iova, len: mapped, mem });
        {
            let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<Arc<Region>> = t.as_ref().clone();
            let pos = v.partition_point(|r| r.iova < iova);
            v.insert(pos, region.clone());
            *t = Arc::new(v);
            self.generation.fetch_add(1, Ordering::Release);
        }
        drop(st);
        let owner = Arc::new(Mapping { region, space: self.clone() });
        // SAFETY: `ptr` points to `mapped >= len` bytes of a private anonymous mapping
        // owned by `region`, which `owner` keeps alive; nothing references it by Rust
        // reference.
        Ok(unsafe { DmaBuffer::from_raw(ptr, len, iova, owner) })
    }

    fn remove(&self, region: &Region) {
        let st = lock(&self.state);
        {
            let mut t = self.table.write().unwrap_or_else(|e| e.into_inner());
            let mut v: Vec<Arc<Region>> = t.as_ref().clone();
            v.retain(|r| r.iova != region.iova);
            *t = Arc::new(v);
            self.generation.fetch_add(1, Ordering::Release);
        }
        for (_, m) in &st.mappers {
            m.unmap(region.iova, region.len);
        }
    }

    fn unsubscribe(&self, id: u64) {
        let mut st = lock(&self.state);
        let Some(i) = st.mappers.iter().position(|(k, _)| *k == id) else { return };
        let (_, m) = st.mappers.remove(i);
        let regions = self.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        for r in regions.iter() {
            m.unmap(r.iova, r.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An IOMMU that records its mappings and checks them: no double map, no unmap of
    /// what is not mapped, and the memory is readable while mapped.
    #[derive(Default)]
    struct Recorder {
        maps: Mutex<BTreeMap<u64, usize>>,
        fail_above: Option<u64>,
    }

    impl DmaMapper for Recorder {
        fn map(&self, iova: u64, ptr: std::ptr::NonNull<u8>, len: usize) -> std::io::Result<()> {
            if self.fail_above.is_some_and(|a| iova + len as u64 > a) {
                return Err(std::io::Error::other("outside the aperture"));
            }
            assert_eq!(ptr.as_ptr() as usize % 4096, 0);
            assert_eq!(len % 4096, 0);
            // SAFETY: the space promises `len` bytes at `ptr` while mapped.
            let _ = unsafe { std::ptr::read_volatile(ptr.as_ptr().add(len - 1)) };
            assert!(self.maps.lock().unwrap().insert(iova, len).is_none(), "{iova:#x} mapped twice");
            Ok(())
        }
        fn unmap(&self, iova: u64, len: usize) {
            assert_eq!(self.maps.lock().unwrap().remove(&iova), Some(len), "{iova:#x} unmapped but not mapped");
        }
    }

    #[test]
    fn a_subscriber_sees_regions_made_before_and_after_it_and_loses_them_on_free() {
        let space = AddressSpace::new();
        let early = space.alloc(4096).unwrap();
        let rec = Arc::new(Recorder::default());
        let sub = space.subscribe(rec.clone()).unwrap();
        assert_eq!(rec.maps.lock().unwrap().keys().copied().collect::<Vec<_>>(), vec![early.iova()]);
        let late = space.alloc(3 << 20).unwrap();
        assert_eq!(rec.maps.lock().unwrap().get(&late.iova()), Some(&(3 << 20)));
        assert!(early.iova() >= IOVA_BASE && late.iova() > early.iova());
        // A slice keeps the region mapped; the last handle unmaps it.
        let part = late.slice(4096, 4096);
        drop(late);
        assert_eq!(rec.maps.lock().unwrap().len(), 2);
        drop(part);
        assert_eq!(rec.maps.lock().unwrap().len(), 1);
        drop(sub);
        assert!(rec.maps.lock().unwrap().is_empty());
        // Without subscribers a free unmaps nothing (the recorder would panic).
        drop(early);
        assert_eq!(space.regions(), 0);
    }

    #[test]
    fn two_subscribers_map_the_same_iovas() {
        let space = AddressSpace::new();
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let _sa = space.subscribe(a.clone()).unwrap();
        let buf = space.alloc(512).unwrap();
        let _sb = space.subscribe(b.clone()).unwrap();
        assert_eq!(*a.maps.lock().unwrap(), *b.maps.lock().unwrap());
        assert_eq!(a.maps.lock().unwrap().get(&buf.iova()), Some(&4096));
    }

    #[test]
    fn a_region_a_subscriber_cannot_map_fails_everywhere() {
        let space = AddressSpace::with_base(1 << 30);
        let ok = Arc::new(Recorder::default());
        let small = Arc::new(Recorder { fail_above: Some((1 << 30) + (8 << 20)), ..Default::default() });
        let _s1 = space.subscribe(ok.clone()).unwrap();
        let _s2 = space.subscribe(small.clone()).unwrap();
        let first = space.alloc(4096).unwrap();
        assert_eq!(first.iova(), 1 << 30);
        let e = space.alloc(16 << 20).unwrap_err();
        assert!(e.to_string().contains("outside the aperture"), "{e}");
        // Nothing of the failed allocation stays mapped anywhere, nor in the table.
        assert_eq!(ok.maps.lock().unwrap().len(), 1);
        assert_eq!(small.maps.lock().unwrap().len(), 1);
        assert_eq!(space.regions(), 1);
        // A subscriber that cannot map an existing region is refused, with nothing mapped.
        let tiny = Arc::new(Recorder { fail_above: Some(1 << 30), ..Default::default() });
        assert!(space.subscribe(tiny.clone()).is_err());
        assert!(tiny.maps.lock().unwrap().is_empty());
    }

    #[test]
    fn the_space_outlives_its_handle_while_buffers_live() {
        let space = AddressSpace::new();
        let rec = Arc::new(Recorder::default());
        let sub = space.subscribe(rec.clone()).unwrap();
        let buf = space.alloc(4096).unwrap();
        drop(space);
        buf.write_u32(0, 7);
        assert_eq!(buf.read_u32(0), 7);
        drop(buf);
        assert!(rec.maps.lock().unwrap().is_empty());
        drop(sub);
    }
}
