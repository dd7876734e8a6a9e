//! An NVMe controller in software, for running nvplan without a drive.
//!
//! It behaves like hardware: it runs on its own threads and sees only what a PCIe
//! controller sees — register and doorbell writes, and host memory reached by IOVA through
//! DMA. The admin queue, the controller state machine (CC/CSTS), features, log pages and
//! asynchronous events run on a controller thread; I/O queues run on one or more I/O
//! threads, each owning the completion queues assigned to it and every submission queue
//! that completes into them. Host mistakes get NVMe status codes, an asynchronous event or
//! CSTS.CFS — never a panic of the host.

mod admin;
pub mod config;
mod controller;
pub(crate) mod dma;
pub mod fault;
mod firmware;
mod io;
pub(crate) mod msix;
pub(crate) mod namespace;
pub(crate) mod pcie;
pub(crate) mod queue;
pub(crate) mod regs;
mod selftest;
mod store;
mod wcache;

pub use config::{Backing, Latency, LatencyModel, NamespaceConfig, SimConfig};
pub use fault::{FaultAction, FaultQueue, FaultRule};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::nvme::log::{ErrorLogEntry, async_event, lid};
use crate::nvme::regs::{self as nregs, Cap, Vs, offset};
use crate::nvme::status::Status;
use crate::transport::space::Space;
use crate::transport::{DmaBuffer, TransportError};
use fault::Faults;
use namespace::Namespace;
use regs::{Registers, Waker};

/// Errors creating a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is not one the simulator can model.
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    /// Namespace media could not be created.
    #[error("namespace {nsid}: cannot create media: {source}")]
    Media {
        /// Namespace.
        nsid: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A processing thread could not be started.
    #[error("cannot start simulator thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Counters kept by each processing thread (relaxed atomics, summed on demand).
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) commands: AtomicU64,
    pub(crate) host_reads: AtomicU64,
    pub(crate) host_writes: AtomicU64,
    pub(crate) sgl_commands: AtomicU64,
    pub(crate) read_512: AtomicU64,
    pub(crate) written_512: AtomicU64,
    pub(crate) media_errors: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Asynchronous events waiting for an Asynchronous Event Request command.
#[derive(Default)]
pub(crate) struct Events {
    pub(crate) pending: VecDeque<u32>,
}

/// The Error Information log (newest last).
#[derive(Default)]
pub(crate) struct ErrorLog {
    pub(crate) entries: VecDeque<ErrorLogEntry>,
    pub(crate) count: u64,
}

/// Entries the Error Information log keeps (Identify ELPE + 1).
pub(crate) const ERROR_LOG_ENTRIES: usize = 64;

pub(crate) enum CtrlMsg {
    PowerOff { dirty: bool, ack: SyncSender<()> },
    PowerOn { ack: SyncSender<()> },
    FunctionReset { ack: SyncSender<()> },
}

/// State shared by the MMIO path and every processing thread.
pub(crate) struct Shared {
    pub(crate) cfg: SimConfig,
    pub(crate) regs: Registers,
    pub(crate) dma: Arc<Space>,
    pub(crate) namespaces: Vec<Arc<Namespace>>,
    pub(crate) faults: Faults,
    pub(crate) events: Mutex<Events>,
    pub(crate) errors: Mutex<ErrorLog>,
    /// Index 0: controller thread; 1..: I/O threads.
    pub(crate) counters: Vec<Arc<Counters>>,
    /// A fatal condition (CSTS.CFS): processing stops until a reset.
    pub(crate) fatal: AtomicBool,
    pub(crate) stop: AtomicBool,
    /// User data was written since the last sanitize (clears Sanitize Status GDE).
    pub(crate) written: AtomicBool,
    /// Memory page size latched from CC.MPS at enable.
    pub(crate) page_size: AtomicUsize,
    /// Index 0: controller thread; 1..: I/O threads.
    pub(crate) wakers: Vec<Waker>,
    /// Messages queued for each I/O thread (index 1..).
    pub(crate) msg_counts: Vec<AtomicUsize>,
    pub(crate) ctrl_tx: Mutex<Sender<CtrlMsg>>,
    pub(crate) panics: Mutex<Vec<String>>,
    pub(crate) epoch: Instant,
    /// PCI configuration space (accessed from the host's thread).
    pub(crate) pcie: Mutex<pcie::ConfigSpace>,
    /// MSI-X table, PBA and delivery.
    pub(crate) msix: msix::Msix,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Queues an asynchronous event and wakes the controller thread to deliver it.
    pub(crate) fn raise_event(&self, ty: u8, info: u8, log_page: u8) {
        let dw0 = async_event::dword0(ty, info, log_page);
        {
            let mut e = lock(&self.events);
            // One outstanding event of each kind is enough; the log page holds details.
            if !e.pending.contains(&dw0) && e.pending.len() < 64 {
                e.pending.push_back(dw0);
            }
        }
        self.wakers[0].force_wake();
    }

    /// Records a failed command in the Error Information log;
    /// `phase` is the phase tag of the completion queue slot the completion goes to.
    pub(crate) fn log_error(&self, sqid: u16, cid: u16, status: Status, phase: bool, lba: u64, nsid: u32) {
        let mut log = lock(&self.errors);
        log.count += 1;
        let entry = ErrorLogEntry {
            error_count: log.count,
            sqid,
            cid,
            status: status.raw() << 1 | phase as u16,
            param_error_location: 0xffff,
            lba,
            nsid,
            ..Default::default()
        };
        if log.entries.len() == ERROR_LOG_ENTRIES {
            log.entries.pop_front();
        }
        log.entries.push_back(entry);
    }

    /// Notes that user data changed (the first time only touches the shared flag).
    #[inline]
    pub(crate) fn note_write(&self) {
        if !self.written.load(Ordering::Relaxed) {
            self.written.store(true, Ordering::Relaxed);
        }
    }

    /// Enters the fatal state (CSTS.CFS = 1).
    pub(crate) fn set_fatal(&self) {
        self.fatal.store(true, Ordering::SeqCst);
        self.regs.update_csts(|c| c.with_cfs(true));
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn ctrl_call(&self, make: impl FnOnce(SyncSender<()>) -> CtrlMsg) {
        let (tx, rx) = mpsc::sync_channel(1);
        if lock(&self.ctrl_tx).send(make(tx)).is_ok() {
            self.wakers[0].force_wake();
            let _ = rx.recv();
        }
    }
}

/// Host memory as simulated controllers reach it (moved to the transport layer, where a
/// VFIO function can share it too; the name stays here for the simulator's users).
pub use crate::transport::space::AddressSpace;

/// The simulated controller. Dropping it stops its threads.
pub struct Simulator {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// Totals the simulator keeps for diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Commands fetched from every queue.
    pub commands: u64,
    /// Read commands executed.
    pub host_reads: u64,
    /// Write commands executed.
    pub host_writes: u64,
    /// I/O commands whose data pointer was an SGL (PSDT 01b or 10b) the controller mapped.
    pub sgl_commands: u64,
    /// Register writes that had no effect.
    pub ignored_writes: u64,
    /// Bytes of memory the media hold: written data and the write cache's images.
    pub media_bytes: u64,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("serial", &self.shared.cfg.serial).field("powered", &self.is_powered()).finish_non_exhaustive()
    }
}

impl Simulator {
    /// Builds the controller and starts its threads. It comes up powered and disabled.
    pub fn new(cfg: SimConfig) -> Result<Arc<Simulator>, SimError> {
        Self::new_in(cfg, &AddressSpace::new())
    }

    /// Like [`Simulator::new`], with DMA through `memory`, which other simulators may
    /// share: the way controllers in one machine see one physical address space, so a
    /// buffer allocated once reaches every one of them at the same address.
    pub fn new_in(cfg: SimConfig, memory: &AddressSpace) -> Result<Arc<Simulator>, SimError> {
        cfg.validate().map_err(SimError::Config)?;
        let max_qid = cfg.max_io_queues;
        let cap = Cap(0)
            .with_mqes((cfg.max_queue_entries - 1) as u16)
            // CQR = 0: I/O queues may be in non-contiguous pages (PC = 0, §4.1.2).
            .with_cqr(false)
            .with_ams(1)
            .with_to(cfg.cap_timeout)
            .with_dstrd(cfg.doorbell_stride)
            .with_nssrs(true)
            .with_css(1)
            .with_mpsmin(0)
            .with_mpsmax(4);
        let vs = Vs(0).with_mjr(1).with_mnr(4);
        let concurrent = cfg.io_threads > 1;
        let mut namespaces = Vec::new();
        for (i, nc) in cfg.namespaces.iter().enumerate() {
            let nsid = i as u32 + 1;
            let cache = cfg.write_cache.then_some(cfg.write_cache_capacity);
            let ns = Namespace::new(nsid, nc, cache, concurrent, &cfg.serial).map_err(|source| SimError::Media { nsid, source })?;
            namespaces.push(Arc::new(ns));
        }
        let threads_n = cfg.io_threads;
        let (ctrl_tx, ctrl_rx) = mpsc::channel();
        let regs = Registers::new(cap, vs, max_qid);
        let (config_space, msix) = new_config_space(regs.bar_size, cfg.interrupt_vectors);
        let shared = Arc::new(Shared {
            regs,
            pcie: Mutex::new(config_space),
            msix,
            dma: memory.0.clone(),
            namespaces,
            faults: Faults::default(),
            events: Mutex::new(Events::default()),
            errors: Mutex::new(ErrorLog::default()),
            counters: (0..=threads_n).map(|_| Arc::new(Counters::default())).collect(),
            fatal: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            written: AtomicBool::new(false),
            page_size: AtomicUsize::new(4096),
            wakers: (0..=threads_n).map(|_| Waker::default()).collect(),
            msg_counts: (0..=threads_n).map(|_| AtomicUsize::new(0)).collect(),
            ctrl_tx: Mutex::new(ctrl_tx),
            panics: Mutex::new(Vec::new()),
            epoch: Instant::now(),
            cfg,
        });
        let mut handles = Vec::new();
        let mut io_tx = Vec::new();
        for t in 1..=threads_n {
            let (tx, rx): (Sender<io::IoMsg>, Receiver<io::IoMsg>) = mpsc::channel();
            io_tx.push(tx);
            let sh = shared.clone();
            handles.push(spawn(format!("nvplan-sim-io{t}"), shared.clone(), move || io::IoThread::new(t, sh, rx).run())?);
        }
        let sh = shared.clone();
        handles.push(spawn("nvplan-sim-ctrl".into(), shared.clone(), move || controller::ControllerThread::new(sh, ctrl_rx, io_tx).run())?);
        let sim = Arc::new(Simulator { shared, threads: Mutex::new(handles) });
        // On an error the simulator drops here, which stops and joins its threads.
        sim.pin_threads()?;
        Ok(sim)
    }

    /// Pins the I/O threads to one CPU of `cpus` each, in turn, and the controller thread
    /// to all of them: a device's own cores, which the host's pinned workers do not share.
    fn pin_threads(&self) -> Result<(), SimError> {
        use crate::util::cpus::cpu_list_text;
        let cpus = &self.shared.cfg.cpus;
        if cpus.is_empty() {
            return Ok(());
        }
        let threads = lock(&self.threads);
        let io = self.shared.cfg.io_threads;
        for (i, h) in threads.iter().enumerate() {
            let mine = if i < io { std::slice::from_ref(&cpus[i % cpus.len()]) } else { &cpus[..] };
            crate::util::cpus::pin_thread(h, mine).map_err(|e| {
                let name = h.thread().name().unwrap_or("a simulator thread");
                let (list, host) = (cpu_list_text(mine), cpu_list_text(&crate::util::cpus::host_cpus()));
                SimError::Config(format!("cpus: cannot run {name} on CPU {list} ({e}); this process may run on CPUs {host}"))
            })?;
        }
        Ok(())
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Bytes of BAR0 the registers and doorbells take (BAR0 as configuration space sizes
    /// it is the power of two that also holds the MSI-X table and pending bit array).
    pub fn bar_size(&self) -> usize {
        self.shared.regs.bar_size
    }

    /// A 32-bit register read, as the host's load from BAR0.
    pub fn mmio_read32(&self, off: usize) -> u32 {
        let r = &self.shared.regs;
        // Off, in D3hot or with memory decoding disabled, a read finds no device.
        if !r.powered.load(Ordering::Acquire) || r.bar_blocked.load(Ordering::Acquire) {
            return u32::MAX;
        }
        if off & 3 == 0 && self.shared.msix.claims(off) {
            return self.shared.msix.read32(off);
        }
        match off {
            offset::CAP => r.cap.0 as u32,
            0x04 => (r.cap.0 >> 32) as u32,
            offset::VS => r.vs.0,
            offset::INTMS | offset::INTMC => r.intms.load(Ordering::Acquire),
            offset::CC => r.cc.load(Ordering::Acquire),
            offset::CSTS => r.csts.load(Ordering::Acquire),
            offset::AQA => r.aqa.load(Ordering::Acquire),
            offset::ASQ => r.asq[0].load(Ordering::Acquire),
            0x2C => r.asq[1].load(Ordering::Acquire),
            offset::ACQ => r.acq[0].load(Ordering::Acquire),
            0x34 => r.acq[1].load(Ordering::Acquire),
            // NSSR reads as zero; doorbells are write-only; the rest is reserved.
            _ => 0,
        }
    }

    /// A 32-bit register write, as the host's store to BAR0. Doorbell writes are checked
    /// here, the way a controller checks them on arrival: a write to a doorbell of a queue
    /// that does not exist, or of a value outside the queue, is ignored and raises an
    /// error asynchronous event (§5.2, Figure 146).
    pub fn mmio_write32(&self, off: usize, v: u32) {
        let sh = &self.shared;
        let r = &sh.regs;
        if r.powered.load(Ordering::Acquire) && !r.bar_blocked.load(Ordering::Acquire) && off & 3 == 0 && sh.msix.claims(off) {
            sh.msix.write32(off, v, || dma::view(&sh.dma));
            return;
        }
        if !r.powered.load(Ordering::Acquire) || r.bar_blocked.load(Ordering::Acquire) || off & 3 != 0 || off >= r.bar_size {
            r.ignored_writes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if off >= offset::DOORBELLS {
            let Some((qid, is_cq)) = nregs::decode_doorbell(off, r.cap.dstrd()) else {
                r.ignored_writes.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if qid as usize * 2 + 1 >= r.doorbells.len() {
                sh.raise_event(async_event::TYPE_ERROR, async_event::ERROR_INVALID_DOORBELL_REGISTER, lid::ERROR_INFORMATION);
                return;
            }
            let d = r.doorbell(qid, is_cq);
            let size = d.size.load(Ordering::Acquire);
            if size == 0 {
                sh.raise_event(async_event::TYPE_ERROR, async_event::ERROR_INVALID_DOORBELL_REGISTER, lid::ERROR_INFORMATION);
            } else if v >= size {
                sh.raise_event(async_event::TYPE_ERROR, async_event::ERROR_INVALID_DOORBELL_VALUE, lid::ERROR_INFORMATION);
            } else {
                let owner = d.owner.load(Ordering::Relaxed) as usize;
                if is_cq && owner != 0 {
                    // An I/O thread (every owner but the controller thread, 0) needs a CQ's
                    // head only while completions wait for room, and then it never sleeps
                    // long (`IoThread::run`): no wake, so no full barrier on every poll.
                    r.doorbell_value(qid, is_cq).store(v, Ordering::Release);
                } else {
                    // SeqCst, not Release: the store must not pass the load of the owner's
                    // sleeping flag in `wake`, or a thread going to sleep could miss it.
                    r.doorbell_value(qid, is_cq).store(v, Ordering::SeqCst);
                    sh.wakers[owner].wake();
                }
            }
            return;
        }
        match off {
            offset::CC | offset::NSSR => {
                r.push_ctrl_write(off, v);
                sh.wakers[0].force_wake();
            }
            offset::AQA => r.aqa.store(v & 0x0fff_0fff, Ordering::Release),
            offset::ASQ => r.asq[0].store(v, Ordering::Release),
            0x2C => r.asq[1].store(v, Ordering::Release),
            offset::ACQ => r.acq[0].store(v, Ordering::Release),
            0x34 => r.acq[1].store(v, Ordering::Release),
            offset::INTMS => {
                r.intms.fetch_or(v, Ordering::AcqRel);
            }
            offset::INTMC => {
                r.intms.fetch_and(!v, Ordering::AcqRel);
            }
            _ => {
                r.ignored_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Allocates DMA memory mapped into the controller's IOVA space.
    pub fn dma_alloc(&self, len: usize) -> Result<DmaBuffer, TransportError> {
        AddressSpace(self.shared.dma.clone()).alloc(len)
    }

    /// Removes power. `dirty`: no shutdown, so unflushed writes in the volatile write
    /// cache are lost. Commands in flight never complete. Returns once the device is off.
    pub fn power_off(&self, dirty: bool) {
        self.shared.regs.powered.store(false, Ordering::SeqCst);
        self.shared.ctrl_call(|ack| CtrlMsg::PowerOff { dirty, ack });
    }

    /// Restores power: registers and configuration space at their reset values,
    /// controller disabled.
    pub fn power_on(&self) {
        if !self.is_powered() {
            let (c, _) = new_config_space(self.shared.regs.bar_size, self.shared.cfg.interrupt_vectors);
            self.shared.regs.bar_blocked.store(!c.bar_enabled(), Ordering::SeqCst);
            self.shared.msix.reset(c.msix_control());
            *lock(&self.shared.pcie) = c;
        }
        self.shared.ctrl_call(|ack| CtrlMsg::PowerOn { ack });
    }

    /// Whether the device has power.
    pub fn is_powered(&self) -> bool {
        self.shared.regs.powered.load(Ordering::Acquire)
    }

    /// PCIe Function Level Reset: controller reset plus registers back to reset values;
    /// the function is in D0 afterwards.
    pub fn function_reset(&self) {
        self.shared.ctrl_call(|ack| CtrlMsg::FunctionReset { ack });
        let mut c = lock(&self.shared.pcie);
        c.after_function_reset();
        // The MSI-X table is function state: back to reset, every vector masked.
        self.shared.msix.reset(c.msix_control());
        self.shared.regs.bar_blocked.store(!c.bar_enabled(), Ordering::SeqCst);
    }

    /// Reads PCI configuration space, as the host's configuration read. A device without
    /// power answers all ones.
    pub fn config_read(&self, off: usize, buf: &mut [u8]) -> Result<(), TransportError> {
        crate::transport::pci::check_range(off, buf.len(), pcie::CONFIG_SIZE)?;
        if !self.is_powered() {
            buf.fill(0xff);
            return Ok(());
        }
        lock(&self.shared.pcie).read(off, buf);
        Ok(())
    }

    /// Writes PCI configuration space, as the host's configuration write. D3hot -> D0
    /// (No_Soft_Reset = 0) and Initiate Function Level Reset reset the function before this
    /// returns: the controller is back in its power-on register state (CC.EN = 0, no
    /// queues), media contents are kept (PCI PM 1.2 §5.4.1; PCIe Base 4.0 §6.6.2).
    pub fn config_write(&self, off: usize, data: &[u8]) -> Result<(), TransportError> {
        crate::transport::pci::check_range(off, data.len(), pcie::CONFIG_SIZE)?;
        if !self.is_powered() {
            return Ok(());
        }
        let (effect, enabled, control) = {
            let mut c = lock(&self.shared.pcie);
            let e = c.write(off, data);
            (e, c.bar_enabled(), c.msix_control())
        };
        if effect.reset {
            self.function_reset();
        } else {
            self.shared.regs.bar_blocked.store(!enabled, Ordering::SeqCst);
            // Clearing Function Mask (or setting Enable) sends what is pending (§6.8.2.3).
            let dma = &self.shared.dma;
            self.shared.msix.set_control(control, Some(&|| dma::view(dma)));
        }
        Ok(())
    }

    /// Arms a fault injection rule.
    pub fn inject(&self, rule: FaultRule) {
        self.shared.faults.inject(rule);
    }

    /// Disarms every fault injection rule.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Rules not yet used up.
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        self.shared.faults.pending()
    }

    /// Raises a fatal controller error now (CSTS.CFS = 1); processing stops until reset.
    pub fn raise_fatal(&self) {
        self.shared.set_fatal();
    }

    /// Forgets Write Uncorrectable marks, as a faulty drive might: the blocks read again.
    pub fn heal_uncorrectable(&self, nsid: u32, lba: u64, nlb: u64) {
        if let Some(ns) = self.namespace(nsid) {
            ns.clear_uncorrectable(lba, nlb);
        }
    }

    /// Copies raw media content starting at `lba` (what is stored, bypassing commands).
    pub fn peek_media(&self, nsid: u32, lba: u64, dst: &mut [u8]) {
        if let Some(ns) = self.namespace(nsid) {
            ns.peek(lba, dst);
        }
    }

    /// 4 KiB chunks of namespace `nsid` holding writes not yet flushed.
    pub fn unflushed_chunks(&self, nsid: u32) -> usize {
        self.namespace(nsid).map_or(0, |n| n.dirty_chunks())
    }

    fn namespace(&self, nsid: u32) -> Option<&Arc<Namespace>> {
        self.shared.namespaces.get((nsid as usize).checked_sub(1)?)
    }

    /// Panics caught in processing threads (a bug in the simulator if not empty).
    pub fn panics(&self) -> Vec<String> {
        lock(&self.shared.panics).clone()
    }

    /// Totals.
    pub fn stats(&self) -> SimStats {
        let mut s = SimStats { ignored_writes: self.shared.regs.ignored_writes.load(Ordering::Relaxed), ..Default::default() };
        for c in &self.shared.counters {
            s.commands += c.commands.load(Ordering::Relaxed);
            s.host_reads += c.host_reads.load(Ordering::Relaxed);
            s.host_writes += c.host_writes.load(Ordering::Relaxed);
            s.sgl_commands += c.sgl_commands.load(Ordering::Relaxed);
        }
        s.media_bytes = self.shared.namespaces.iter().map(|n| n.memory_in_use()).sum();
        s
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for w in &self.shared.wakers {
            w.force_wake();
        }
        for h in lock(&self.threads).drain(..) {
            let _ = h.join();
        }
    }
}

/// Configuration space for a function whose registers and doorbells take `regs_bytes` of
/// BAR0: the MSI-X table follows them, then the pending bit array, and BAR0 is the power
/// of two that holds all three.
fn new_config_space(regs_bytes: usize, vectors: u16) -> (pcie::ConfigSpace, msix::Msix) {
    let vectors = vectors.clamp(1, 2048) as usize;
    let table = regs_bytes.next_multiple_of(4096);
    let pba = (table + vectors * 16).next_multiple_of(4096);
    let bar = (pba + vectors.div_ceil(64) * 8).next_power_of_two();
    (pcie::ConfigSpace::new(bar as u64, vectors as u16, table as u32, pba as u32), msix::Msix::new(vectors, table, pba))
}

fn spawn(name: String, shared: Arc<Shared>, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, SimError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
            if let Err(p) = r {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                lock(&shared.panics).push(format!("{name}: {msg}"));
                // A device whose firmware crashed reports a fatal status.
                shared.set_fatal();
            }
        })
        .map_err(SimError::Thread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::cpus::{host_cpus, parse_cpus};

    /// The CPU sets of this process's threads named `name` (other tests' simulators run
    /// threads of the same names).
    fn cpu_sets_of(name: &str) -> Vec<Vec<usize>> {
        let tasks = std::fs::read_dir("/proc/self/task").unwrap().flatten();
        tasks
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .filter_map(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").and_then(|v| parse_cpus(v).ok())))
            .collect()
    }

    #[test]
    fn cpus_pin_each_io_thread_to_one_cpu_in_turn() {
        let host = host_cpus();
        let (first, last) = (host[0], *host.last().unwrap());
        let sim = Simulator::new(SimConfig { cpus: vec![first, last], io_threads: 3, ..SimConfig::default() }).unwrap();
        let mut both = vec![first, last];
        both.dedup();
        // A thread names itself when it starts, which may be after `new` returns.
        let pinned = |name: &str, want: &[usize]| {
            let t0 = Instant::now();
            while t0.elapsed() < std::time::Duration::from_secs(5) {
                if cpu_sets_of(name).iter().any(|s| s == want) {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            false
        };
        assert!(pinned("nvplan-sim-io1", &[first]));
        assert!(pinned("nvplan-sim-io2", &[last]));
        assert!(pinned("nvplan-sim-io3", &[first]), "round robin");
        assert!(pinned("nvplan-sim-ctrl", &both), "{:?}", cpu_sets_of("nvplan-sim-ctrl"));
        drop(sim);
    }

    #[test]
    fn cpus_the_process_may_not_use_are_refused_by_name() {
        let outside = (0..1024).find(|c| !host_cpus().contains(c)).unwrap();
        let e = Simulator::new(SimConfig { cpus: vec![outside], ..SimConfig::default() }).unwrap_err().to_string();
        assert!(e.contains(&format!("cannot run nvplan-sim-io1 on CPU {outside}")) && e.contains("this process may run on CPUs"), "{e}");
        let e = Simulator::new(SimConfig { cpus: vec![4096], ..SimConfig::default() }).unwrap_err().to_string();
        assert!(e.contains("CPU 4096 for the simulator's threads is beyond"), "{e}");
    }
}
