//! The transport to a real PCIe NVMe function bound to `vfio-pci`.
//!
//! BAR0 is mapped into the process and accessed with 32-bit volatile loads and stores
//! only. DMA memory comes from one pool of anonymous memory mapped into the IOMMU in a few
//! large chunks, at IOVAs taken from the ranges the IOMMU reports (not IOVA = VA: a
//! 39-bit IOMMU cannot reach user addresses). A watcher thread listens for the kernel's
//! device-request notification (unplug, unbind): the function is then released at once so
//! the removal does not hang, and registers read all ones from then on, which the driver
//! treats as a device that is gone.
//!
//! Opened with [`VfioTransport::open_in`], the function takes its DMA memory from an
//! [`AddressSpace`] instead of a pool of its own: every region of the space, made before the
//! function was opened or after, is mapped into its container at the region's own IOVA, so
//! buffers shared by several devices (the Python front's) reach each of them.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vfio_bindings::bindings::vfio::{VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_REQ_IRQ_INDEX, VFIO_REGION_INFO_FLAG_MMAP};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioRegionInfoCap};
use vmm_sys_util::eventfd::EventFd;

use super::dma::DmaOwner;
use super::space::{AddressSpace, DmaMapper, Subscription};
use super::{DmaBuffer, ResetKind, Transport, TransportError};
use crate::nvme::regs::offset;

/// `VFIO_DEVICE_RESET`: `_IO(VFIO_TYPE, VFIO_BASE + 11)`.
const VFIO_DEVICE_RESET: libc::c_ulong = 0x3B6F;
/// `VFIO_IOMMU_GET_INFO`: `_IO(VFIO_TYPE, VFIO_BASE + 12)`.
const VFIO_IOMMU_GET_INFO: libc::c_ulong = 0x3B70;
/// `vfio_iommu_type1_info.flags`: the capability chain is present.
const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;
/// Capability id of the valid IOVA ranges (Linux 5.4 and later).
const CAP_IOVA_RANGE: u16 = 1;

/// PCI Command register (PCI Local Bus 3.0 §6.2.2) and the bits nvplan sets: Memory Space,
/// Bus Master, INTx Disable (the driver polls).
const PCI_COMMAND: u64 = 4;
const PCI_COMMAND_MEMORY: u16 = 1 << 1;
const PCI_COMMAND_MASTER: u16 = 1 << 2;
const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// IOMMU page granularity of pool chunks and allocations.
const PAGE: usize = 4096;
/// Size of a pool chunk; larger allocations get a chunk of their own.
const CHUNK: usize = 64 << 20;
/// IOVAs below this are left alone (some platforms reserve low addresses).
const IOVA_FLOOR: u64 = 1 << 32;

/// Where a function is and how to open it.
#[derive(Clone, Debug)]
pub struct VfioOptions {
    /// sysfs directory of the function, ending in its full address.
    pub sysfs: PathBuf,
}

impl VfioOptions {
    /// The function at PCI address `addr` (`0000:01:00.0`) under the file-system root
    /// `root` (`/`, or a tree with a fake `sys/` for tests).
    pub fn at(root: &Path, addr: &str) -> VfioOptions {
        VfioOptions { sysfs: root.join("sys/bus/pci/devices").join(addr) }
    }
}

fn os_err(what: impl Into<String>, source: io::Error) -> TransportError {
    TransportError::Io { what: what.into(), source }
}

fn vfio_err(what: impl Into<String>, e: vfio_ioctls::VfioError) -> TransportError {
    TransportError::Io { what: what.into(), source: io::Error::other(e.to_string()) }
}

/// BAR0, mapped. Replaced by an all-ones anonymous page range when the device goes away,
/// so late readers never fault.
struct Bar {
    ptr: NonNull<u8>,
    len: usize,
    map: Option<memmap2::MmapRaw>,
}

/// A PCIe NVMe function driven through VFIO.
pub struct VfioTransport {
    name: String,
    bar: Bar,
    /// The function; taken (and so released) when the kernel asks for it back.
    device: Arc<Mutex<Option<VfioDevice>>>,
    gone: Arc<AtomicBool>,
    memory: Memory,
    watcher: Option<(Arc<EventFd>, Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

// SAFETY: the BAR pointer refers to a shared device mapping that lives as long as the
// transport; all accesses through it are 32-bit volatile loads and stores, which the device
// serialises itself. Everything else is behind `Arc`, `Mutex` or atomics.
unsafe impl Send for VfioTransport {}
// SAFETY: see `Send`: `&self` methods only do volatile MMIO or lock.
unsafe impl Sync for VfioTransport {}

/// Where a function's DMA memory comes from.
enum Memory {
    /// A pool of its own.
    Pool(Arc<Pool>),
    /// A shared address space, mapped into the container while the subscription lives.
    Space(AddressSpace, Mutex<Option<Subscription>>),
}

impl std::fmt::Debug for VfioTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VfioTransport({})", self.name)
    }
}

impl VfioTransport {
    /// Opens the function: group and container, bus mastering, BAR0, the DMA pool and the
    /// device-request watcher. The function must be bound to `vfio-pci` (`nvplan bind`).
    pub fn open(opts: &VfioOptions) -> Result<VfioTransport, TransportError> {
        Self::open_with(opts, None)
    }

    /// Like [`VfioTransport::open`], with every DMA allocation (queues, PRP lists, data
    /// buffers) taken from `memory`, whose every region, existing or to come, is mapped into
    /// the function's IOMMU container at its own IOVA while the transport lives. Fails when
    /// a region lies outside the IOVA ranges the IOMMU accepts, or cannot be pinned
    /// (`ulimit -l`).
    pub fn open_in(opts: &VfioOptions, memory: &AddressSpace) -> Result<VfioTransport, TransportError> {
        Self::open_with(opts, Some(memory))
    }

    fn open_with(opts: &VfioOptions, memory: Option<&AddressSpace>) -> Result<VfioTransport, TransportError> {
        let addr = opts.sysfs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = format!("vfio:{addr}");
        let driver = std::fs::read_link(opts.sysfs.join("driver")).ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        if !opts.sysfs.exists() {
            return Err(TransportError::InvalidState(format!("{name}: no PCI function at {} (`nvplan devices` lists them)", opts.sysfs.display())));
        }
        if driver.as_deref() != Some("vfio-pci") {
            let now = driver.map_or("no driver".to_string(), |d| format!("driver {d}"));
            return Err(TransportError::InvalidState(format!("{name}: the function has {now}, not vfio-pci; run `nvplan bind {addr}` first")));
        }
        let container = Arc::new(VfioContainer::new(None).map_err(|e| vfio_err(format!("{name}: opening /dev/vfio/vfio"), e))?);
        let device = VfioDevice::new(&opts.sysfs, container.clone(), false).map_err(|e| {
            vfio_err(
                format!("{name}: opening the function through VFIO (is every function of its IOMMU group bound to vfio-pci, and is /dev/vfio/<group> yours?)"),
                e,
            )
        })?;
        enable_bus_master(&device, &name)?;
        let bar = map_bar0(&device, &name)?;
        let ranges = iova_ranges(&container).map_err(|e| os_err(format!("{name}: VFIO_IOMMU_GET_INFO"), e))?;
        let gone = Arc::new(AtomicBool::new(false));
        let memory = match memory {
            None => Memory::Pool(Arc::new(Pool::new(container, ranges))),
            Some(space) => {
                let mapper = Arc::new(ContainerMapper { container, ranges, gone: gone.clone(), name: name.clone() });
                let sub = space.subscribe(mapper)?;
                Memory::Space(space.clone(), Mutex::new(Some(sub)))
            }
        };
        let device = Arc::new(Mutex::new(Some(device)));
        let mut t = VfioTransport { name, bar, device, gone, memory, watcher: None };
        t.watcher = t.watch_requests();
        Ok(t)
    }

    /// Registers an eventfd for the device-request interrupt and starts a thread waiting on
    /// it. `None` where the kernel offers no request channel (the removal then waits for
    /// the process to close the device).
    fn watch_requests(&self) -> Option<(Arc<EventFd>, Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
        let efd = Arc::new(EventFd::new(0).ok()?);
        {
            let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
            dev.as_ref()?.enable_irq(VFIO_PCI_REQ_IRQ_INDEX, vec![&efd]).ok()?;
        }
        let closing = Arc::new(AtomicBool::new(false));
        let (e, c, device, gone) = (efd.clone(), closing.clone(), self.device.clone(), self.gone.clone());
        let (bar_ptr, bar_len, name) = (self.bar.ptr.as_ptr() as usize, self.bar.len, self.name.clone());
        let h = std::thread::Builder::new()
            .name("vfio-request".into())
            .spawn(move || {
                // Blocks until the kernel signals a request, or the transport wakes it to close.
                let _ = e.read();
                if c.load(Ordering::Acquire) {
                    return;
                }
                eprintln!("nvplan: {name}: the kernel asks for the device back (unplug or unbind); releasing it");
                gone.store(true, Ordering::Release);
                // SAFETY: `bar_ptr..+bar_len` is this transport's BAR mapping, which lives
                // (as the mapping or its stand-in) until the transport drops, after this
                // thread is joined.
                unsafe { replace_bar(bar_ptr as *mut u8, bar_len) };
                drop(device.lock().unwrap_or_else(|e| e.into_inner()).take());
            })
            .ok()?;
        Some((efd, closing, h))
    }

    /// Shuts the controller down and releases the function at once, though handles to the
    /// transport remain (see [`Transport::close`]). Idempotent.
    fn release(&self) {
        if self.device.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            return;
        }
        if !self.is_gone() {
            self.quiesce();
        }
        self.gone.store(true, Ordering::Release);
        if let Memory::Space(_, sub) = &self.memory {
            sub.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        // SAFETY: the BAR mapping (or its stand-in) lives until the transport drops; a late
        // register access reads the all-ones stand-in.
        unsafe { replace_bar(self.bar.ptr.as_ptr(), self.bar.len) };
        drop(self.device.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Whether the kernel took the device back.
    pub fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }

    /// Orderly shutdown (§7.6.2) then disable, so the controller stops all DMA before its
    /// memory is unmapped.
    fn quiesce(&self) {
        let cc = self.read32(offset::CC);
        if cc == u32::MAX || cc & 1 == 0 {
            return;
        }
        let timeout = Duration::from_millis(500 * ((self.read64(offset::CAP) >> 24) & 0xff).max(1));
        self.write32(offset::CC, (cc & !(3 << 14)) | 1 << 14);
        let t = Instant::now();
        while self.read32(offset::CSTS) >> 2 & 3 != 2 && t.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.write32(offset::CC, self.read32(offset::CC) & !1);
        let t = Instant::now();
        while self.read32(offset::CSTS) & 1 != 0 && t.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[cold]
    fn slow_read32(&self, off: usize) -> u32 {
        let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let Some(d) = dev.as_ref() else { return u32::MAX };
        let mut b = [0xffu8; 4];
        d.region_read(VFIO_PCI_BAR0_REGION_INDEX, &mut b, off as u64);
        u32::from_le_bytes(b)
    }

    #[cold]
    fn slow_write32(&self, off: usize, v: u32) {
        let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = dev.as_ref() {
            d.region_write(VFIO_PCI_BAR0_REGION_INDEX, &v.to_le_bytes(), off as u64);
        }
    }
}

impl Drop for VfioTransport {
    fn drop(&mut self) {
        if !self.is_gone() {
            self.quiesce();
        }
        // The controller stopped DMA: the shared space's regions leave the container (a
        // pool is unmapped when its last buffer drops).
        if let Memory::Space(_, sub) = &self.memory {
            sub.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        if let Some((efd, closing, h)) = self.watcher.take() {
            closing.store(true, Ordering::Release);
            let _ = efd.write(1);
            let _ = h.join();
        }
        // The BAR mapping goes before the device, or the group cannot leave the container.
        self.bar.map.take();
        drop(self.device.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

impl Transport for VfioTransport {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn pci_address(&self) -> Option<String> {
        self.name.strip_prefix("vfio:").map(String::from)
    }

    #[inline]
    fn read32(&self, off: usize) -> u32 {
        if off + 4 > self.bar.len || !off.is_multiple_of(4) {
            return self.slow_read32(off);
        }
        // SAFETY: in bounds and aligned inside the BAR0 mapping (or its all-ones stand-in),
        // which lives as long as `self`; a 32-bit volatile load, never a reference.
        unsafe { std::ptr::read_volatile(self.bar.ptr.as_ptr().add(off).cast::<u32>()) }
    }

    #[inline]
    fn write32(&self, off: usize, value: u32) {
        // Queue entries written to DMA memory must be visible before the doorbell.
        std::sync::atomic::fence(Ordering::SeqCst);
        if off + 4 > self.bar.len || !off.is_multiple_of(4) {
            return self.slow_write32(off, value);
        }
        // SAFETY: as in `read32`: an aligned 32-bit volatile store inside the mapping.
        unsafe { std::ptr::write_volatile(self.bar.ptr.as_ptr().add(off).cast::<u32>(), value) }
    }

    fn dma_alloc(&self, len: usize) -> Result<DmaBuffer, TransportError> {
        match &self.memory {
            Memory::Pool(pool) => pool.alloc(len),
            Memory::Space(space, _) => space.alloc(len),
        }
    }

    fn reset(&self, kind: ResetKind) -> Result<(), TransportError> {
        match kind {
            ResetKind::Function => {
                let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
                let Some(d) = dev.as_ref() else {
                    return Err(TransportError::InvalidState(format!("{}: the device is gone", self.name)));
                };
                // SAFETY: VFIO_DEVICE_RESET takes no argument; the fd is the open device.
                let rc = unsafe { libc::ioctl(d.as_raw_fd(), VFIO_DEVICE_RESET as _) };
                if rc != 0 {
                    return Err(os_err(format!("{}: VFIO_DEVICE_RESET (function level reset)", self.name), io::Error::last_os_error()));
                }
                // The PCI core restores config space after the reset; check bus mastering.
                enable_bus_master(d, &self.name)
            }
        }
    }

    fn close(&self) {
        self.release();
    }

    fn power_off(&self, _dirty: bool) -> Result<(), TransportError> {
        Err(TransportError::Unsupported {
            what: "power off (a VFIO function has no power switch; power loss runs on the simulator, or on QEMU by killing it as tests/qemu does)",
            transport: "vfio",
        })
    }

    fn power_on(&self) -> Result<(), TransportError> {
        Err(TransportError::Unsupported { what: "power on", transport: "vfio" })
    }

    fn host_owns_msix(&self) -> bool {
        false
    }

    fn config_read(&self, offset: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        self.config_rw(offset, buf.len(), |fd, done, at| {
            // SAFETY: `buf[done..]` is valid for writes of `buf.len() - done` bytes.
            unsafe { libc::pread(fd, buf[done..].as_mut_ptr().cast(), buf.len() - done, at) }
        })
    }

    /// vfio-pci virtualises parts of configuration space: a PMCSR write goes through the
    /// kernel's power-state handling (which restores config space after D3hot -> D0), and
    /// BARs read back as vfio-pci presents them.
    fn config_write(&self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        self.config_rw(offset, data.len(), |fd, done, at| {
            // SAFETY: `data[done..]` is valid for reads of `data.len() - done` bytes.
            unsafe { libc::pwrite(fd, data[done..].as_ptr().cast(), data.len() - done, at) }
        })
    }
}

impl VfioTransport {
    /// Transfers `len` bytes of the VFIO configuration region at `offset` with `op`
    /// (`pread`/`pwrite` on the device fd: the region is not mappable), retrying short ones.
    fn config_rw(&self, offset: usize, len: usize, mut op: impl FnMut(i32, usize, libc::off_t) -> isize) -> Result<(), TransportError> {
        let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let Some(d) = dev.as_ref() else {
            return Err(TransportError::InvalidState(format!("{}: the device is gone", self.name)));
        };
        let size = d.get_region_size(VFIO_PCI_CONFIG_REGION_INDEX) as usize;
        super::pci::check_range(offset, len, size)?;
        let base = d.get_region_offset(VFIO_PCI_CONFIG_REGION_INDEX) as usize + offset;
        let mut done = 0;
        while done < len {
            let n = op(d.as_raw_fd(), done, (base + done) as libc::off_t);
            if n <= 0 {
                let e = if n == 0 { io::Error::from(io::ErrorKind::UnexpectedEof) } else { io::Error::last_os_error() };
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(os_err(format!("{}: PCI configuration access at {:#x}", self.name, offset + done), e));
            }
            done += n as usize;
        }
        Ok(())
    }
}

/// Replaces BAR0's mapping by anonymous all-ones memory in place, so concurrent readers see
/// a device that is gone rather than fault, and the device file has no mapping left (a
/// group whose device is still mapped cannot leave its container).
///
/// # Safety
/// `ptr..ptr+len` must be the transport's BAR mapping (or its stand-in), never accessed
/// through references.
unsafe fn replace_bar(ptr: *mut u8, len: usize) {
    // SAFETY: per the contract, the range is ours; a MAP_FIXED anonymous mapping replaces
    // it atomically, and the fill writes only inside the new mapping.
    unsafe {
        let p = libc::mmap(ptr.cast(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if p != libc::MAP_FAILED {
            std::ptr::write_bytes(p.cast::<u8>(), 0xff, len);
        }
    }
}

/// Sets Memory Space, Bus Master and INTx Disable in the Command register and reads it back.
fn enable_bus_master(dev: &VfioDevice, name: &str) -> Result<(), TransportError> {
    let mut b = [0u8; 2];
    dev.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut b, PCI_COMMAND);
    let want = u16::from_le_bytes(b) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
    dev.region_write(VFIO_PCI_CONFIG_REGION_INDEX, &want.to_le_bytes(), PCI_COMMAND);
    dev.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut b, PCI_COMMAND);
    let got = u16::from_le_bytes(b);
    if got & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER) != PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER {
        return Err(TransportError::InvalidState(format!("{name}: bus mastering did not stick (PCI command register {got:#06x} after writing {want:#06x})")));
    }
    Ok(())
}

/// Maps the part of BAR0 that may be mapped: the whole region, or the sparse area that
/// starts at offset 0 (the registers and doorbells; an MSI-X table after them stays out).
fn map_bar0(dev: &VfioDevice, name: &str) -> Result<Bar, TransportError> {
    let i = VFIO_PCI_BAR0_REGION_INDEX;
    if dev.get_region_flags(i) & VFIO_REGION_INFO_FLAG_MMAP == 0 {
        return Err(TransportError::InvalidState(format!("{name}: BAR0 cannot be mapped (vfio-pci offers no mmap for it)")));
    }
    let mut len = dev.get_region_size(i) as usize;
    for cap in dev.get_region_caps(i) {
        if let VfioRegionInfoCap::SparseMmap(s) = cap {
            len = s.areas.iter().find(|a| a.offset == 0).map_or(0, |a| a.size as usize);
        }
    }
    if len < 0x1000 + 8 {
        return Err(TransportError::InvalidState(format!(
            "{name}: BAR0's mappable part is {len} bytes, too small for the NVMe registers and the admin doorbells"
        )));
    }
    let map = memmap2::MmapOptions::new().offset(dev.get_region_offset(i)).len(len).map_raw(dev).map_err(|e| os_err(format!("{name}: mapping BAR0"), e))?;
    let _ = map.advise(memmap2::Advice::DontFork);
    let ptr = NonNull::new(map.as_mut_ptr()).expect("mmap never returns null");
    Ok(Bar { ptr, len, map: Some(map) })
}

/// The IOVA ranges the IOMMU accepts, from `VFIO_IOMMU_GET_INFO`'s capability chain;
/// without the capability (Linux before 5.4), the 39-bit range every VT-d unit offers.
fn iova_ranges(container: &VfioContainer) -> io::Result<Vec<(u64, u64)>> {
    let fd = container.as_raw_fd();
    let mut buf = vec![0u64; 3];
    let info = |buf: &mut Vec<u64>| -> io::Result<()> {
        let argsz = (buf.len() * 8) as u32;
        buf[0] = argsz as u64; // argsz in the low half, flags 0
        // SAFETY: `buf` holds `argsz` bytes starting with a `vfio_iommu_type1_info`
        // header; the kernel writes at most `argsz` bytes into it.
        let rc = unsafe { libc::ioctl(fd, VFIO_IOMMU_GET_INFO as _, buf.as_mut_ptr()) };
        if rc != 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    };
    info(&mut buf)?;
    let need = (buf[0] & 0xffff_ffff) as usize;
    if need > buf.len() * 8 {
        buf = vec![0u64; need.div_ceil(8)];
        info(&mut buf)?;
    }
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_le_bytes()).collect();
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().expect("8 bytes"));
    let flags = u32_at(4);
    let mut ranges = Vec::new();
    if flags & VFIO_IOMMU_INFO_CAPS != 0 {
        let mut off = u32_at(16) as usize;
        while off != 0 && off + 16 <= bytes.len() {
            if u16_at(off) == CAP_IOVA_RANGE {
                let n = u32_at(off + 8) as usize;
                for k in 0..n {
                    let at = off + 16 + k * 16;
                    if at + 16 <= bytes.len() {
                        ranges.push((u64_at(at), u64_at(at + 8)));
                    }
                }
            }
            off = u32_at(off + 4) as usize;
        }
    }
    if ranges.is_empty() {
        ranges.push((0, (1 << 39) - 1));
    }
    Ok(ranges)
}

/// A function's IOMMU container as an [`AddressSpace`] maps into it.
struct ContainerMapper {
    container: Arc<VfioContainer>,
    /// Valid IOVA ranges, inclusive ends.
    ranges: Vec<(u64, u64)>,
    /// Set when the kernel took the function back: its container maps nothing any more,
    /// and allocations must still succeed.
    gone: Arc<AtomicBool>,
    name: String,
}

impl DmaMapper for ContainerMapper {
    fn map(&self, iova: u64, ptr: NonNull<u8>, len: usize) -> io::Result<()> {
        if self.gone.load(Ordering::Acquire) {
            return Ok(());
        }
        if !in_ranges(&self.ranges, iova, len) {
            let last = iova.saturating_add(len as u64 - 1);
            let have: Vec<String> = self.ranges.iter().map(|r| format!("{:#x}-{:#x}", r.0, r.1)).collect();
            return Err(io::Error::other(format!(
                "{}: IOVA {iova:#x}-{last:#x} lies outside the ranges the IOMMU accepts ({}; an Intel VT-d unit with a 39-bit address width ends at 0x7fffffffff)",
                self.name,
                have.join(", ")
            )));
        }
        // SAFETY: the address space keeps `ptr..ptr+len` (anonymous memory, page aligned)
        // alive until it calls `unmap` for this range, which it does before freeing it; the
        // device only reaches it through the IOMMU mapping made here.
        match unsafe { self.container.vfio_dma_map(iova, len, ptr.as_ptr()) } {
            Ok(()) => Ok(()),
            // Removed while mapping: nothing to map into any more.
            Err(_) if self.gone.load(Ordering::Acquire) => Ok(()),
            Err(e) => Err(io::Error::other(format!("{}: VFIO_IOMMU_MAP_DMA of {len} bytes at IOVA {iova:#x}: {e}{}", self.name, memlock_hint(&e)))),
        }
    }

    fn unmap(&self, iova: u64, len: usize) {
        // Fails harmlessly when the device already left the container (its mappings went
        // with it).
        let _ = self.container.vfio_dma_unmap(iova, len);
    }
}

/// Whether `len` bytes at `iova` lie inside one of the IOMMU's valid ranges (inclusive ends).
fn in_ranges(ranges: &[(u64, u64)], iova: u64, len: usize) -> bool {
    let Some(last) = iova.checked_add((len as u64).saturating_sub(1)) else { return false };
    ranges.iter().any(|r| iova >= r.0 && last <= r.1)
}

/// ENOMEM from MAP_DMA is RLIMIT_MEMLOCK (pinned pages are charged to it).
fn memlock_hint(e: &vfio_ioctls::VfioError) -> &'static str {
    if matches!(e, vfio_ioctls::VfioError::IommuDmaMap(s) if s.errno() == libc::ENOMEM) { " (raise the locked-memory limit: ulimit -l)" } else { "" }
}

/// DMA memory for one function: chunks of anonymous memory, each mapped into the IOMMU
/// once, sub-allocated at page granularity.
struct Pool {
    container: Arc<VfioContainer>,
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Valid IOVA ranges, inclusive ends.
    ranges: Vec<(u64, u64)>,
    /// Next IOVA to hand out.
    next: u64,
    chunks: Vec<Chunk>,
}

struct Chunk {
    map: memmap2::MmapRaw,
    iova: u64,
    /// Free page runs: offset -> length.
    free: BTreeMap<usize, usize>,
}

impl Pool {
    fn new(container: Arc<VfioContainer>, ranges: Vec<(u64, u64)>) -> Pool {
        let next = ranges.iter().map(|r| r.0.max(IOVA_FLOOR)).find(|&s| ranges.iter().any(|r| s >= r.0 && s < r.1)).unwrap_or(ranges[0].0);
        Pool { container, state: Mutex::new(PoolState { ranges, next, chunks: Vec::new() }) }
    }

    fn alloc(self: &Arc<Self>, len: usize) -> Result<DmaBuffer, TransportError> {
        let want = len.max(1).next_multiple_of(PAGE);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let found = st.chunks.iter_mut().enumerate().find_map(|(i, c)| take(&mut c.free, want).map(|o| (i, o)));
        let (chunk, off) = match found {
            Some(f) => f,
            None => {
                let size = want.max(CHUNK).next_multiple_of(2 << 20);
                let c = self.new_chunk(&mut st, size).map_err(|source| TransportError::DmaAlloc { len, source })?;
                st.chunks.push(c);
                let i = st.chunks.len() - 1;
                let o = take(&mut st.chunks[i].free, want).expect("a new chunk fits the allocation");
                (i, o)
            }
        };
        let c = &st.chunks[chunk];
        // SAFETY: `off + want` lies inside the chunk's mapping, which the pool keeps until
        // it drops; the allocation owner below keeps the pool alive.
        let ptr = unsafe { NonNull::new_unchecked(c.map.as_mut_ptr().add(off)) };
        // SAFETY: the range was free, so no one else uses it; zeroing by raw write.
        unsafe { std::ptr::write_bytes(ptr.as_ptr(), 0, want) };
        let iova = c.iova + off as u64;
        let owner = Arc::new(Allocation { pool: self.clone(), chunk, off, len: want });
        // SAFETY: `ptr..ptr+len` is valid while `owner` lives (it returns the range to the
        // pool only when dropped) and is never accessed through references.
        Ok(unsafe { DmaBuffer::from_raw(ptr, len, iova, owner) })
    }

    fn new_chunk(&self, st: &mut PoolState, size: usize) -> io::Result<Chunk> {
        let align = 2u64 << 20;
        let mut iova = st.next.next_multiple_of(align);
        if !st.ranges.iter().any(|r| iova >= r.0 && iova + size as u64 - 1 <= r.1) {
            iova = st
                .ranges
                .iter()
                .map(|r| r.0.max(iova).next_multiple_of(align))
                .find(|&s| st.ranges.iter().any(|r| s >= r.0 && s + size as u64 - 1 <= r.1))
                .ok_or_else(|| io::Error::other("no IOVA space left in the IOMMU's ranges"))?;
        }
        let map: memmap2::MmapRaw = memmap2::MmapOptions::new().len(size).populate().map_anon()?.into();
        let _ = map.advise(memmap2::Advice::DontFork);
        // SAFETY: the mapping is ours and lives in the chunk until the pool drops, after
        // which it is unmapped from the IOMMU before being freed.
        unsafe { self.container.vfio_dma_map(iova, size, map.as_mut_ptr()) }
            .map_err(|e| io::Error::other(format!("VFIO_IOMMU_MAP_DMA of {size} bytes at IOVA {iova:#x}: {e}{}", memlock_hint(&e))))?;
        st.next = iova + size as u64;
        Ok(Chunk { map, iova, free: BTreeMap::from([(0, size)]) })
    }

    fn release(&self, chunk: usize, off: usize, len: usize) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        give_back(&mut st.chunks[chunk].free, off, len);
    }
}

/// Returns a run to a free list, merged with its free neighbours.
fn give_back(free: &mut BTreeMap<usize, usize>, off: usize, len: usize) {
    let (mut start, mut len) = (off, len);
    if let Some((&p, &pl)) = free.range(..off).next_back()
        && p + pl == off
    {
        free.remove(&p);
        start = p;
        len += pl;
    }
    if let Some(nl) = free.remove(&(start + len)) {
        len += nl;
    }
    free.insert(start, len);
}

/// First fit from a free list; returns the offset.
fn take(free: &mut BTreeMap<usize, usize>, want: usize) -> Option<usize> {
    let (&off, &len) = free.iter().find(|&(_, &l)| l >= want)?;
    free.remove(&off);
    if len > want {
        free.insert(off + want, len - want);
    }
    Some(off)
}

impl Drop for Pool {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for c in &st.chunks {
            // Fails harmlessly when the device already left the container (its mappings
            // went with it).
            let _ = self.container.vfio_dma_unmap(c.iova, c.map.len());
        }
    }
}

/// One allocation; returns its pages to the pool when the last buffer over it drops.
struct Allocation {
    pool: Arc<Pool>,
    chunk: usize,
    off: usize,
    len: usize,
}

impl DmaOwner for Allocation {}

impl Drop for Allocation {
    fn drop(&mut self) {
        self.pool.release(self.chunk, self.off, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::{give_back, in_ranges, take};
    use crate::transport::space::IOVA_BASE;
    use std::collections::BTreeMap;

    #[test]
    fn the_shared_space_fits_a_39_bit_iommu_around_the_msi_window() {
        // What a 39-bit VT-d unit (QEMU's intel-iommu default) reports through VFIO.
        let vtd39 = [(0, 0xfedf_ffff), (0xfef0_0000, (1 << 39) - 1)];
        assert!(in_ranges(&vtd39, IOVA_BASE, 64 << 20));
        assert!(in_ranges(&vtd39, (1 << 39) - 4096, 4096));
        assert!(!in_ranges(&vtd39, (1 << 39) - 4096, 8192));
        assert!(!in_ranges(&vtd39, 0xfee0_0000, 4096));
        assert!(!in_ranges(&vtd39, u64::MAX - 4095, 8192));
    }

    #[test]
    fn first_fit_splits_the_run_it_takes() {
        let mut f = BTreeMap::from([(0, 4096), (8192, 16384)]);
        assert_eq!(take(&mut f, 8192), Some(8192));
        assert_eq!(f, BTreeMap::from([(0, 4096), (16384, 8192)]));
        assert_eq!(take(&mut f, 65536), None);
    }

    #[test]
    fn freed_runs_merge_with_both_neighbours() {
        let mut f = BTreeMap::from([(0, 4096), (8192, 4096)]);
        give_back(&mut f, 4096, 4096);
        assert_eq!(f, BTreeMap::from([(0, 12288)]));
        give_back(&mut f, 16384, 4096);
        assert_eq!(f, BTreeMap::from([(0, 12288), (16384, 4096)]));
    }
}
