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
/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: `_IO(VFIO_TYPE, VFIO_BASE + 12)` (on a device fd).
const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: libc::c_ulong = 0x3B70;
/// `VFIO_DEVICE_PCI_HOT_RESET`: `_IO(VFIO_TYPE, VFIO_BASE + 13)`.
const VFIO_DEVICE_PCI_HOT_RESET: libc::c_ulong = 0x3B71;
/// `vfio_pci_hot_reset_info.flags`: entries carry device ids (iommufd), not group ids.
const VFIO_PCI_HOT_RESET_FLAG_DEV_ID: u32 = 1;
/// `VFIO_IOMMU_GET_INFO`: `_IO(VFIO_TYPE, VFIO_BASE + 12)` (on a container fd).
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
    /// The function's sysfs directory, its address, and the file-system root above it.
    sysfs: PathBuf,
    address: String,
    root: PathBuf,
    bar: Bar,
    /// The function; taken (and so released) when the kernel asks for it back.
    device: Arc<Mutex<Option<VfioDevice>>>,
    /// The IOMMU container; a new one each time the function is opened again.
    container: Mutex<Option<Arc<VfioContainer>>>,
    /// Registers read all ones: the kernel took the function back, or its power is cut.
    gone: Arc<AtomicBool>,
    /// Between [`Transport::detach_for_power_off`] and [`Transport::attach_after_power_on`]:
    /// a request from the kernel for the function is expected then.
    detached: Arc<AtomicBool>,
    memory: Memory,
    watcher: Mutex<Option<Watcher>>,
    /// Offset of Link Control (PCI Express capability + 10h), which vfio-pci gives its user
    /// no write access to: writes to it go through sysfs.
    lnkctl: Option<usize>,
    /// Stand-ins for the sysfs directory the device is opened through (see [`Handles`]).
    handles: Handles,
}

/// Directories that stand in for the function's sysfs directory when vfio-ioctls opens it:
/// named after the function, with an `iommu_group` link naming the group it is in at that
/// open. vfio-ioctls reads that link again when the device drops, after it closes the
/// device's file; by then a hot-plug removal, which waits only for that file, may have
/// taken the function's own link away, and the crate would panic. A stand-in's link stays
/// until the transport drops.
struct Handles {
    base: PathBuf,
    made: std::sync::atomic::AtomicUsize,
}

impl Handles {
    fn new() -> Handles {
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("nvplan-vfio-{}-{n}", std::process::id()));
        // Left by an earlier process with this process ID (after a reboot, or a crash):
        // its links would stand in the way of ours.
        let _ = std::fs::remove_dir_all(&base);
        Handles { base, made: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// A stand-in for `sysfs` (a function's directory) as it is now.
    fn make(&self, sysfs: &Path) -> io::Result<PathBuf> {
        let group = std::fs::read_link(sysfs.join("iommu_group"))?;
        let name = sysfs.file_name().ok_or_else(|| io::Error::other("no function address in the sysfs path"))?;
        let dir = self.base.join(self.made.fetch_add(1, Ordering::Relaxed).to_string()).join(name);
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::symlink(group, dir.join("iommu_group"))?;
        Ok(dir)
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Opens the function at `sysfs` through a stand-in directory made by `handles`; `what`
/// says what was attempted, for the error.
fn open_device(handles: &Handles, sysfs: &Path, container: Arc<VfioContainer>, what: &str) -> Result<VfioDevice, TransportError> {
    let path = handles.make(sysfs).map_err(|e| os_err(format!("{what}: {} (no IOMMU group: is the IOMMU on?)", sysfs.join("iommu_group").display()), e))?;
    VfioDevice::new(&path, container, false).map_err(|e| vfio_err(what, e))
}

/// The thread waiting for the kernel's device-request notification.
struct Watcher {
    efd: Arc<EventFd>,
    closing: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Watcher {
    fn stop(self) {
        self.closing.store(true, Ordering::Release);
        let _ = self.efd.write(1);
        let _ = self.handle.join();
    }
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
        let handles = Handles::new();
        let device = open_device(
            &handles,
            &opts.sysfs,
            container.clone(),
            &format!("{name}: opening the function through VFIO (is every function of its IOMMU group bound to vfio-pci, and is /dev/vfio/<group> yours?)"),
        )?;
        enable_bus_master(&device, &name)?;
        let bar = map_bar0(&device, &name)?;
        let ranges = iova_ranges(&container).map_err(|e| os_err(format!("{name}: VFIO_IOMMU_GET_INFO"), e))?;
        let gone = Arc::new(AtomicBool::new(false));
        let container_for_reopen = container.clone();
        let memory = match memory {
            None => Memory::Pool(Arc::new(Pool::new(container, ranges))),
            Some(space) => {
                let mapper = Arc::new(ContainerMapper { container, ranges, gone: gone.clone(), name: name.clone() });
                let sub = space.subscribe(mapper)?;
                Memory::Space(space.clone(), Mutex::new(Some(sub)))
            }
        };
        let lnkctl = {
            let mut b = [0u8; 256];
            device.region_read(VFIO_PCI_CONFIG_REGION_INDEX, &mut b, 0);
            cap_in(&b, super::pci::cap_id::PCI_EXPRESS).map(|c| c + super::pci::EXP_LNKCTL)
        };
        let device = Arc::new(Mutex::new(Some(device)));
        let root = opts.sysfs.ancestors().nth(5).map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let t = VfioTransport {
            name,
            sysfs: opts.sysfs.clone(),
            address: addr,
            root,
            bar,
            device,
            container: Mutex::new(Some(container_for_reopen)),
            gone,
            detached: Arc::new(AtomicBool::new(false)),
            memory,
            watcher: Mutex::new(None),
            lnkctl,
            handles,
        };
        *t.watcher.lock().unwrap_or_else(|e| e.into_inner()) = t.watch_requests();
        Ok(t)
    }

    /// Registers an eventfd for the device-request interrupt and starts a thread waiting on
    /// it. `None` where the kernel offers no request channel (the removal then waits for
    /// the process to close the device).
    fn watch_requests(&self) -> Option<Watcher> {
        let efd = Arc::new(EventFd::new(0).ok()?);
        {
            let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
            dev.as_ref()?.enable_irq(VFIO_PCI_REQ_IRQ_INDEX, vec![&efd]).ok()?;
        }
        let closing = Arc::new(AtomicBool::new(false));
        let (e, c, device, gone, detached) = (efd.clone(), closing.clone(), self.device.clone(), self.gone.clone(), self.detached.clone());
        let (bar_ptr, bar_len, name) = (self.bar.ptr.as_ptr() as usize, self.bar.len, self.name.clone());
        let handle = std::thread::Builder::new()
            .name("vfio-request".into())
            .spawn(move || {
                // Blocks until the kernel signals a request, or the transport wakes it to close.
                let _ = e.read();
                if c.load(Ordering::Acquire) {
                    return;
                }
                // While power is cut on purpose, the hot-plug driver removing the function is
                // expected: no message then.
                if !detached.load(Ordering::Acquire) {
                    eprintln!("nvplan: {name}: the kernel asks for the device back (unplug or unbind); releasing it");
                }
                gone.store(true, Ordering::Release);
                // SAFETY: `bar_ptr..+bar_len` is this transport's BAR mapping, which lives
                // (as the mapping or its stand-in) until the transport drops, after this
                // thread is joined.
                unsafe { replace_bar(bar_ptr as *mut u8, bar_len) };
                drop(device.lock().unwrap_or_else(|e| e.into_inner()).take());
            })
            .ok()?;
        Some(Watcher { efd, closing, handle })
    }

    fn stop_watcher(&self) {
        let w = self.watcher.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = w {
            w.stop();
        }
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
        self.stop_watcher();
        // The BAR mapping goes before the device, or the group cannot leave the container.
        self.bar.map.take();
        drop(self.device.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

impl Transport for VfioTransport {
    fn describe(&self) -> String {
        self.name.clone()
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
                let d = self.held(&dev)?;
                // SAFETY: VFIO_DEVICE_RESET takes no argument; the fd is the open device.
                let rc = unsafe { libc::ioctl(d.as_raw_fd(), VFIO_DEVICE_RESET as _) };
                if rc != 0 {
                    return Err(os_err(format!("{}: VFIO_DEVICE_RESET (function level reset)", self.name), io::Error::last_os_error()));
                }
                // The PCI core restores config space after the reset; check bus mastering.
                enable_bus_master(d, &self.name)
            }
            ResetKind::Hot => {
                let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
                let d = self.held(&dev)?;
                self.hot_reset(d)?;
                // The PCI core saved and restored the bus's functions around the reset.
                enable_bus_master(d, &self.name)
            }
            ResetKind::LinkDisable => self.link_disable(),
        }
    }

    fn pci_address(&self) -> Option<String> {
        Some(self.address.clone())
    }

    fn bar_unavailable(&self) {
        // SAFETY: the BAR mapping (or its stand-in) lives until the transport drops; a
        // register access meanwhile reads the all-ones stand-in.
        unsafe { replace_bar(self.bar.ptr.as_ptr(), self.bar.len) };
    }

    fn bar_available(&self) -> Result<(), TransportError> {
        let dev = self.device.lock().unwrap_or_else(|e| e.into_inner());
        remap_bar0(self.held(&dev)?, &self.name, self.bar.ptr, self.bar.len)
    }

    /// Registers read all ones from now on and nothing touches the function; the device
    /// stays open, so a switch outside the kernel (relay, Quarch, suspend) finds it where it
    /// was, and a hot-plug driver that removes the function gets it at once (the request
    /// watcher lets go).
    fn detach_for_power_off(&self) -> Result<(), TransportError> {
        self.detached.store(true, Ordering::Release);
        self.gone.store(true, Ordering::Release);
        // SAFETY: the BAR mapping (or its stand-in) lives until the transport drops; a late
        // register access reads the all-ones stand-in.
        unsafe { replace_bar(self.bar.ptr.as_ptr(), self.bar.len) };
        Ok(())
    }

    /// Waits for the function to answer configuration reads (`<sysfs>/config`, read by the
    /// kernel from the device: vfio-pci keeps a copy of the Vendor ID), gives it back to
    /// vfio-pci if it came back as a new device (a hot-plug driver re-enumerated it, and the
    /// kernel's nvme driver may have taken it), closes the old device file (vfio-pci then
    /// restores the configuration it saved at open: BARs, Command) and opens it again: bus
    /// mastering, BAR0 at the same address, every DMA mapping again.
    fn attach_after_power_on(&self, timeout: Duration) -> Result<Duration, TransportError> {
        let start = Instant::now();
        loop {
            if let Some(id) = physical_vendor_id(&self.sysfs)
                && id != 0xffff
                && id != 0
            {
                break;
            }
            if start.elapsed() >= timeout {
                return Err(TransportError::InvalidState(format!(
                    "{}: the function did not answer within {} ms of power on ({}/config absent or its Vendor ID reads FFFFh): the link did not come up, or the function came back at another address; raise the switch's ready= if the drive needs longer",
                    self.name,
                    timeout.as_millis(),
                    self.sysfs.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop_watcher();
        drop(self.device.lock().unwrap_or_else(|e| e.into_inner()).take());
        // The old container goes, with any group it still holds open: a group file kept
        // open keeps its group (and the group's number) alive in the kernel.
        match &self.memory {
            Memory::Space(_, sub) => drop(sub.lock().unwrap_or_else(|e| e.into_inner()).take()),
            Memory::Pool(pool) => pool.leave_container(),
        }
        self.container.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The kernel probes a new function as it appears; a driver that binds between
        // nvplan's look and its bind is unbound on the next round.
        for round in 0..3 {
            let driver = crate::devices::link_name(&self.sysfs.join("driver"));
            if driver.as_deref() == Some("vfio-pci") {
                break;
            }
            if round == 2 {
                return Err(TransportError::InvalidState(format!(
                    "{}: came back with {}, and stays there after two binds to vfio-pci",
                    self.name,
                    driver.as_deref().unwrap_or("no driver")
                )));
            }
            crate::devices::bind(&self.root, std::slice::from_ref(&self.address), false).map_err(|e| {
                TransportError::InvalidState(format!(
                    "{}: came back with {}; giving it to vfio-pci failed: {e}",
                    self.name,
                    driver.as_deref().unwrap_or("no driver")
                ))
            })?;
        }
        // A container of its own each time: a failed open leaves its group cached in the
        // container it was tried in (vfio-ioctls keeps it), and the old container's
        // mappings went with its group anyway. The group's device node may lag the bind by
        // a moment.
        let mut made = Instant::now();
        let mut bound = Instant::now();
        let (device, container) = loop {
            let group = group_of(&self.sysfs);
            let node = group.map(|g| Path::new("/dev/vfio").join(g.to_string()));
            let class = group.map(|g| self.root.join("sys/class/vfio").join(g.to_string()));
            let lost = node.as_ref().is_some_and(|n| !n.exists()) && class.as_ref().is_some_and(|c| c.exists());
            let what = format!(
                "{}: opening the function again after power on (IOMMU group {}{})",
                self.name,
                group.map_or("none".to_string(), |g| g.to_string()),
                if lost { ": the kernel has the VFIO group, but devtmpfs made no /dev/vfio node for it" } else { "" }
            );
            let container = VfioContainer::new(None).map(Arc::new).map_err(|e| vfio_err(format!("{}: opening /dev/vfio/vfio", self.name), e))?;
            match open_device(&self.handles, &self.sysfs, container.clone(), &what) {
                Ok(d) => break (d, container),
                Err(_) if start.elapsed() < timeout => {
                    // devtmpfs can lose the node of a group that took the number (and minor)
                    // an old group just gave up: the old node's removal overtakes the new
                    // one's creation. The kernel still has the group, so its node is made
                    // as udev would make it, from the class device's numbers.
                    if lost && made.elapsed() > Duration::from_millis(200) {
                        if let (Some(g), Some(n)) = (group, node.as_ref()) {
                            make_group_node(&self.root, g, n);
                        }
                        made = Instant::now();
                    }
                    // A hot-plug driver may enumerate the function once more after the
                    // bind (the link went down and up again): the new device has no
                    // driver, or the kernel's nvme driver, and is given to vfio-pci again.
                    if bound.elapsed() > Duration::from_millis(200) {
                        if crate::devices::link_name(&self.sysfs.join("driver")).as_deref() != Some("vfio-pci") {
                            let _ = crate::devices::bind(&self.root, std::slice::from_ref(&self.address), false);
                        }
                        bound = Instant::now();
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    // What the kernel shows now, for whoever reads the report.
                    let driver = crate::devices::link_name(&self.sysfs.join("driver"));
                    let nodes: Vec<String> =
                        std::fs::read_dir("/dev/vfio").map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
                    return Err(TransportError::InvalidState(format!(
                        "{e} (after {} ms; driver {}, {} {}, /dev/vfio holds [{}])",
                        start.elapsed().as_millis(),
                        driver.as_deref().unwrap_or("none"),
                        class.as_ref().map_or("no group".into(), |c| c.display().to_string()),
                        if class.as_ref().is_some_and(|c| c.exists()) { "exists" } else { "absent" },
                        nodes.join(" ")
                    )));
                }
            }
        };
        *self.container.lock().unwrap_or_else(|e| e.into_inner()) = Some(container.clone());
        enable_bus_master(&device, &self.name)?;
        remap_bar0(&device, &self.name, self.bar.ptr, self.bar.len)?;
        *self.device.lock().unwrap_or_else(|e| e.into_inner()) = Some(device);
        self.gone.store(false, Ordering::Release);
        match &self.memory {
            Memory::Pool(pool) => pool.remap(container.clone()).map_err(|e| os_err(format!("{}: mapping the DMA pool again", self.name), e))?,
            Memory::Space(space, sub) => {
                let ranges = iova_ranges(&container).unwrap_or_else(|_| vec![(0, (1 << 39) - 1)]);
                let mapper = Arc::new(ContainerMapper { container: container.clone(), ranges, gone: self.gone.clone(), name: self.name.clone() });
                *sub.lock().unwrap_or_else(|e| e.into_inner()) = Some(space.subscribe(mapper)?);
            }
        }
        self.detached.store(false, Ordering::Release);
        *self.watcher.lock().unwrap_or_else(|e| e.into_inner()) = self.watch_requests();
        Ok(start.elapsed())
    }

    fn close(&self) {
        self.release();
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
    /// BARs read back as vfio-pci presents them. Link Control (ASPM) is read-only to a
    /// vfio-pci user, so bytes of it are written through `<sysfs>/config` (root only).
    fn config_write(&self, offset: usize, data: &[u8]) -> Result<(), TransportError> {
        self.config_rw(offset, data.len(), |fd, done, at| {
            // SAFETY: `data[done..]` is valid for reads of `data.len() - done` bytes.
            unsafe { libc::pwrite(fd, data[done..].as_ptr().cast(), data.len() - done, at) }
        })?;
        if let Some(l) = self.lnkctl {
            let (lo, hi) = (offset.max(l), (offset + data.len()).min(l + 2));
            if lo < hi {
                let path = self.sysfs.join("config");
                let wrote = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &data[lo - offset..hi - offset], lo as u64));
                wrote.map_err(|e| {
                    os_err(format!("{}: writing Link Control through {} (vfio-pci does not let its user write it; root may)", self.name, path.display()), e)
                })?;
            }
        }
        Ok(())
    }
}

impl VfioTransport {
    /// The open device, or an error saying it is gone.
    fn held<'a>(&self, dev: &'a Option<VfioDevice>) -> Result<&'a VfioDevice, TransportError> {
        dev.as_ref().ok_or_else(|| TransportError::InvalidState(format!("{}: the device is gone", self.name)))
    }

    /// Secondary bus reset through `VFIO_DEVICE_PCI_HOT_RESET`: the kernel resets the bus
    /// below the upstream bridge, so every function there is reset; vfio-pci allows it only
    /// when the caller holds the IOMMU group of each (their group fds prove it).
    fn hot_reset(&self, d: &VfioDevice) -> Result<(), TransportError> {
        let fd = d.as_raw_fd();
        // vfio_pci_hot_reset_info: argsz, flags, count, then 8 bytes per device (group or
        // device id, segment, bus, devfn).
        let mut info = vec![0u32; 3];
        info[0] = 12;
        // SAFETY: `info` holds the 12-byte header argsz announces; the kernel writes at most
        // argsz bytes (here: only `count`, then fails with ENOSPC).
        let rc = unsafe { libc::ioctl(fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO as _, info.as_mut_ptr()) };
        let err = io::Error::last_os_error();
        if rc != 0 && err.raw_os_error() != Some(libc::ENOSPC) {
            let hint = if err.raw_os_error() == Some(libc::ENODEV) { " (no bus or slot reset is possible for this function)" } else { "" };
            return Err(os_err(format!("{}: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO{hint}", self.name), err));
        }
        let count = info[2] as usize;
        let mut info = vec![0u32; 3 + 2 * count];
        info[0] = (info.len() * 4) as u32;
        // SAFETY: as above, with room for `count` entries.
        if unsafe { libc::ioctl(fd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO as _, info.as_mut_ptr()) } != 0 {
            return Err(os_err(format!("{}: VFIO_DEVICE_GET_PCI_HOT_RESET_INFO", self.name), io::Error::last_os_error()));
        }
        if info[1] & VFIO_PCI_HOT_RESET_FLAG_DEV_ID != 0 {
            return Err(TransportError::Unsupported { what: "hot reset of a function opened through iommufd", transport: "vfio" });
        }
        let own = group_of(&self.sysfs).ok_or_else(|| TransportError::InvalidState(format!("{}: no IOMMU group in sysfs", self.name)))?;
        for k in 0..info[2] as usize {
            let (group, loc) = (info[3 + 2 * k], info[4 + 2 * k]);
            if group != own {
                let (seg, bus, devfn) = (loc & 0xffff, (loc >> 16) & 0xff, loc >> 24);
                return Err(TransportError::InvalidState(format!(
                    "{}: a hot reset would also reset {seg:04x}:{bus:02x}:{:02x}.{} (IOMMU group {group}), which nvplan does not hold",
                    self.name,
                    devfn >> 3,
                    devfn & 7
                )));
            }
        }
        let group_fd =
            group_fd(own).ok_or_else(|| TransportError::InvalidState(format!("{}: the file of IOMMU group {own} is not open in this process", self.name)))?;
        // vfio_pci_hot_reset: argsz, flags, count, group fds.
        let req: [i32; 4] = [16, 0, 1, group_fd];
        // SAFETY: `req` is a 16-byte vfio_pci_hot_reset with one group fd; the kernel only
        // reads it.
        if unsafe { libc::ioctl(fd, VFIO_DEVICE_PCI_HOT_RESET as _, req.as_ptr()) } != 0 {
            let err = io::Error::last_os_error();
            // ENOTTY: the kernel has no way to reset the bus or slot (a slot under ACPI hot-plug, a
            // bridge that may not be reset).
            let hint = if err.raw_os_error() == Some(libc::ENOTTY) { " (the kernel offers no bus or slot reset here; use reset: flr)" } else { "" };
            return Err(os_err(format!("{}: VFIO_DEVICE_PCI_HOT_RESET (secondary bus reset){hint}", self.name), err));
        }
        Ok(())
    }

    /// Sets Link Disable in the upstream port's Link Control (through its sysfs
    /// configuration file, root only), holds it, clears it, and takes the function back as
    /// after power on: the link down reset it (PCIe Base 4.0 §6.6.1).
    fn link_disable(&self) -> Result<(), TransportError> {
        let real = std::fs::canonicalize(&self.sysfs).map_err(|e| os_err(format!("{}: {}", self.name, self.sysfs.display()), e))?;
        let parent = real.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).filter(|n| n.matches(':').count() == 2);
        let Some(parent) = parent else {
            return Err(TransportError::InvalidState(format!(
                "{}: no upstream port above it in sysfs (a root complex integrated function has no link to disable)",
                self.name
            )));
        };
        let path = self.root.join("sys/bus/pci/devices").join(&parent).join("config");
        let io_err = |e: io::Error| os_err(format!("{}: upstream port {parent}: {} (root only)", self.name, path.display()), e);
        let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io_err)?;
        let mut cfg = [0u8; 256];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut cfg, 0).map_err(io_err)?;
        let exp = cap_in(&cfg, super::pci::cap_id::PCI_EXPRESS)
            .ok_or_else(|| TransportError::InvalidState(format!("{}: the upstream port {parent} has no PCI Express capability", self.name)))?;
        let at = (exp + super::pci::EXP_LNKCTL) as u64;
        let read16 = |f: &std::fs::File| -> Result<u16, TransportError> {
            let mut b = [0u8; 2];
            std::os::unix::fs::FileExt::read_exact_at(f, &mut b, at).map_err(io_err)?;
            Ok(u16::from_le_bytes(b))
        };
        let write16 = |f: &std::fs::File, v: u16| std::os::unix::fs::FileExt::write_all_at(f, &v.to_le_bytes(), at).map_err(io_err);
        let before = read16(&f)?;
        self.detach_for_power_off()?;
        write16(&f, before | super::pci::LNKCTL_LINK_DISABLE)?;
        let held = read16(&f)?;
        // Hold the link down long enough for the function to see it (PCIe Base 4.0 §6.6.1
        // gives 1 ms for a hot reset; a link disable is held longer).
        std::thread::sleep(Duration::from_millis(20));
        write16(&f, before & !super::pci::LNKCTL_LINK_DISABLE)?;
        if held & super::pci::LNKCTL_LINK_DISABLE == 0 {
            // Nothing happened to the function: it is used as it was.
            self.bar_available()?;
            self.gone.store(false, Ordering::Release);
            self.detached.store(false, Ordering::Release);
            return Err(TransportError::InvalidState(format!(
                "{}: the upstream port {parent} ignores Link Disable (Link Control reads {held:#06x} after writing {:#06x})",
                self.name,
                before | super::pci::LNKCTL_LINK_DISABLE
            )));
        }
        // 100 ms after the link trains before configuration requests (PCIe Base 4.0 §6.6.1).
        std::thread::sleep(Duration::from_millis(100));
        self.attach_after_power_on(Duration::from_secs(10)).map(drop)
    }

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

/// The Vendor ID as the device answers it (`<sysfs>/config` is read by the kernel from the
/// device; vfio-pci's region keeps a copy), or `None` while the function is not there.
fn physical_vendor_id(sysfs: &Path) -> Option<u16> {
    let mut b = [0u8; 2];
    let f = std::fs::File::open(sysfs.join("config")).ok()?;
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, 0).ok()?;
    Some(u16::from_le_bytes(b))
}

/// The function's IOMMU group number.
fn group_of(sysfs: &Path) -> Option<u32> {
    std::fs::read_link(sysfs.join("iommu_group")).ok()?.file_name()?.to_str()?.parse().ok()
}

/// Makes the character device `node` of VFIO group `group` from the numbers the kernel
/// gives in `sys/class/vfio/<group>/dev`; errors are left to the open that follows.
fn make_group_node(root: &Path, group: u32, node: &Path) {
    let Ok(dev) = std::fs::read_to_string(root.join("sys/class/vfio").join(group.to_string()).join("dev")) else { return };
    let Some((Ok(major), Ok(minor))) = dev.trim().split_once(':').map(|(a, b)| (a.parse::<u32>(), b.parse::<u32>())) else { return };
    let Ok(path) = std::ffi::CString::new(node.as_os_str().as_encoded_bytes()) else { return };
    // SAFETY: `path` is a NUL-terminated string that outlives the call; mknod reads only it.
    let _ = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(major, minor)) };
}

/// The descriptor of `/dev/vfio/<group>` this process holds (vfio-ioctls opens it and
/// offers no handle to it).
fn group_fd(group: u32) -> Option<i32> {
    let want = Path::new("/dev/vfio").join(group.to_string());
    std::fs::read_dir("/proc/self/fd").ok()?.flatten().find_map(|e| {
        let fd: i32 = e.file_name().to_str()?.parse().ok()?;
        (std::fs::read_link(e.path()).ok()? == want).then_some(fd)
    })
}

/// Offset of capability `id` in the first 256 bytes of a configuration space (bounded
/// walk, as [`super::pci::cap_offset`]).
fn cap_in(cfg: &[u8; 256], id: u8) -> Option<usize> {
    if u16::from_le_bytes([cfg[6], cfg[7]]) & super::pci::STATUS_CAP_LIST == 0 {
        return None;
    }
    let mut at = (cfg[super::pci::CAPABILITIES_POINTER] & !3) as usize;
    for _ in 0..48 {
        if !(0x40..0xff).contains(&at) {
            return None;
        }
        if cfg[at] == id {
            return Some(at);
        }
        at = (cfg[at + 1] & !3) as usize;
    }
    None
}

/// Maps BAR0 of the device over the transport's BAR range, in place (a device opened anew
/// after power on, or the same one back in D0).
fn remap_bar0(dev: &VfioDevice, name: &str, ptr: NonNull<u8>, len: usize) -> Result<(), TransportError> {
    let i = VFIO_PCI_BAR0_REGION_INDEX;
    let mut have = dev.get_region_size(i) as usize;
    for cap in dev.get_region_caps(i) {
        if let VfioRegionInfoCap::SparseMmap(s) = cap {
            have = s.areas.iter().find(|a| a.offset == 0).map_or(0, |a| a.size as usize);
        }
    }
    if dev.get_region_flags(i) & VFIO_REGION_INFO_FLAG_MMAP == 0 || have < len {
        return Err(TransportError::InvalidState(format!("{name}: BAR0's mappable part is now {have} bytes, {len} before")));
    }
    // SAFETY: `ptr..ptr+len` is the transport's BAR range (the old mapping or its all-ones
    // stand-in), never accessed through references; MAP_FIXED replaces it in place with the
    // new device's BAR0, the same size.
    let p = unsafe {
        libc::mmap(
            ptr.as_ptr().cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            dev.as_raw_fd(),
            dev.get_region_offset(i) as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_err(format!("{name}: mapping BAR0 again"), io::Error::last_os_error()));
    }
    Ok(())
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
    state: Mutex<PoolState>,
}

struct PoolState {
    /// The container the chunks are mapped into (replaced when the function is opened
    /// again after power on; none in between).
    container: Option<Arc<VfioContainer>>,
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
        Pool { state: Mutex::new(PoolState { container: Some(container), ranges, next, chunks: Vec::new() }) }
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
        let container = st.container.as_ref().ok_or_else(|| io::Error::other("the function is not open (its power was cut)"))?;
        // SAFETY: the mapping is ours and lives in the chunk until the pool drops, after
        // which it is unmapped from the IOMMU before being freed.
        unsafe { container.vfio_dma_map(iova, size, map.as_mut_ptr()) }
            .map_err(|e| io::Error::other(format!("VFIO_IOMMU_MAP_DMA of {size} bytes at IOVA {iova:#x}: {e}{}", memlock_hint(&e))))?;
        st.next = iova + size as u64;
        Ok(Chunk { map, iova, free: BTreeMap::from([(0, size)]) })
    }

    /// Maps every chunk into `container`, the function's container from now on (it was
    /// opened anew after power on).
    fn remap(&self, container: Arc<VfioContainer>) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for c in &st.chunks {
            // SAFETY: the chunk's mapping lives until the pool drops, which unmaps it from the
            // IOMMU first.
            match unsafe { container.vfio_dma_map(c.iova, c.map.len(), c.map.as_mut_ptr()) } {
                Ok(()) => {}
                Err(vfio_ioctls::VfioError::IommuDmaMap(e)) if e.errno() == libc::EEXIST => {}
                Err(e) => return Err(io::Error::other(format!("VFIO_IOMMU_MAP_DMA of {} bytes at IOVA {:#x}: {e}{}", c.map.len(), c.iova, memlock_hint(&e)))),
            }
        }
        st.container = Some(container);
        Ok(())
    }

    /// Lets go of the container (the function is being opened anew).
    fn leave_container(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).container.take();
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
            if let Some(container) = &st.container {
                let _ = container.vfio_dma_unmap(c.iova, c.map.len());
            }
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
