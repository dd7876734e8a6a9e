//! Controller bring-up, reset, shutdown and admin commands (NVMe 1.4 §7.6).

use std::any::{Any, TypeId};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use super::error::DriverError;
use super::qpair::{QPair, QpairOptions};
use super::queue::{Completion, CplKind, DataPtr, QueueCore};
use crate::nvme::features::{Arbitration, NumberOfQueues, Select, fid};
use crate::nvme::identify::{IdentifyController, IdentifyNamespace, cns};
use crate::nvme::log::{ErrorLogEntry, SmartLog, lid};
use crate::nvme::opcode::AdminOpcode;
use crate::nvme::regs::{Aqa, Cap, Cc, Csts, NSSR_RESET_VALUE, ShutdownStatus, Vs, offset};
use crate::nvme::{Cqe, Sqe, cmd};
use crate::power::{PowerSwitch, SharedSwitch};
use crate::transport::{DmaBuffer, ResetKind, SharedTransport};

/// Arbitration mechanism to select in CC.AMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ArbitrationMechanism {
    /// Round robin.
    #[default]
    RoundRobin,
    /// Weighted round robin with urgent priority class (CAP.AMS bit 0).
    WeightedRoundRobin,
}

/// How the driver brings the controller up.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Admin queue entries (2 to 4096).
    pub admin_entries: u32,
    /// I/O queue pairs to request with Set Features (Number of Queues); 0: as many as
    /// the controller offers.
    pub io_queues: u16,
    /// How long a command may be outstanding before the driver gives up on it.
    pub command_timeout: Duration,
    /// Arbitration mechanism.
    pub arbitration: ArbitrationMechanism,
    /// Largest transfer per command the driver prepares PRP/SGL list pages for (further
    /// capped by MDTS).
    pub max_transfer: usize,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            admin_entries: 64,
            io_queues: 0,
            command_timeout: Duration::from_secs(10),
            arbitration: ArbitrationMechanism::RoundRobin,
            max_transfer: 2 << 20,
        }
    }
}

/// An active namespace as identified at bring-up (data only).
#[derive(Clone, Debug)]
pub struct NamespaceInfo {
    /// Namespace identifier.
    pub nsid: u32,
    /// Identify Namespace data.
    pub id: IdentifyNamespace,
}

impl NamespaceInfo {
    /// LBA data size in bytes.
    pub fn lba_size(&self) -> usize {
        self.id.lba_size()
    }
    /// Size in LBAs (NSZE).
    pub fn nlba(&self) -> u64 {
        self.id.nsze
    }
}

/// A namespace of a controller: its identify data as of the last bring-up or format, and
/// the controller to run I/O workers against.
#[derive(Clone)]
pub struct Namespace {
    /// Namespace identifier.
    pub nsid: u32,
    /// Identify Namespace data.
    pub id: IdentifyNamespace,
    pub(crate) ctrl: Controller,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace").field("nsid", &self.nsid).field("id", &self.id).finish_non_exhaustive()
    }
}

impl Namespace {
    /// LBA data size in bytes.
    pub fn lba_size(&self) -> usize {
        self.id.lba_size()
    }
    /// Size in LBAs (NSZE).
    pub fn nlba(&self) -> u64 {
        self.id.nsze
    }
    /// The controller the namespace belongs to.
    pub fn controller(&self) -> &Controller {
        &self.ctrl
    }
}

/// What the driver learned at bring-up.
#[derive(Clone, Debug)]
pub struct ControllerInfo {
    /// Identify Controller data.
    pub id: IdentifyController,
    /// Active namespaces.
    pub namespaces: Vec<NamespaceInfo>,
    /// I/O queues allocated by the controller.
    pub io_queues: NumberOfQueues,
    /// Largest data transfer per command, bytes.
    pub max_transfer: usize,
}

pub(crate) struct AdminQueue {
    pub(crate) core: QueueCore,
    /// CIDs of outstanding Asynchronous Event Requests.
    aers: Vec<u16>,
    /// CIDs of commands sent with [`Controller::admin_submit`]: their completions belong
    /// to [`Controller::admin_reap`], whoever polls the queue.
    detached: Vec<(u16, u64)>,
    /// Completions of detached commands reaped while waiting for another command.
    reaped: VecDeque<Completion>,
}

impl AdminQueue {
    /// Routes one completion found by any poller: events of the driver's own AERs are
    /// kept for [`Controller::take_events`], detached commands' completions for
    /// [`Controller::admin_reap`].
    fn route(&mut self, c: &Completion, events: &mut Vec<u32>) -> bool {
        if let Some(p) = self.detached.iter().position(|&(d, _)| d == c.cid()) {
            self.detached.swap_remove(p);
            self.reaped.push_back(*c);
            true
        } else if let Some(p) = self.aers.iter().position(|&a| a == c.cid()) {
            self.aers.swap_remove(p);
            if c.kind == CplKind::Device && c.cqe.status().is_success() {
                events.push(c.cqe.cdw0());
            }
            true
        } else {
            false
        }
    }
}

pub(crate) struct Inner {
    pub(crate) transport: SharedTransport,
    pub(crate) cap: Cap,
    pub(crate) vs: Vs,
    pub(crate) page: usize,
    pub(crate) opts: ControllerOptions,
    admin: Mutex<AdminQueue>,
    info: RwLock<ControllerInfo>,
    qids: Mutex<Vec<bool>>,
    /// Incremented by every reset and power cycle; queue pairs of an older generation no
    /// longer exist on the controller.
    pub(crate) generation: AtomicU64,
    /// The generation current when the controller was last seen stopped (CSTS.RDY = 0
    /// after CC.EN was cleared, or its power cut): commands of older generations no longer
    /// touch host memory, so their senders may have it back.
    stopped: AtomicU64,
    /// The controller was brought up and no reset or power loss has begun since.
    ready: std::sync::atomic::AtomicBool,
    /// Incremented whenever the driver erases user data (Format NVM, Sanitize).
    data_epoch: AtomicU64,
    /// Incremented whenever power is removed, before it goes.
    power_losses: AtomicU64,
    events: Mutex<VecDeque<u32>>,
    /// State that upper layers keep per controller (e.g. verification tables).
    attachments: Mutex<HashMap<(TypeId, u64), Arc<dyn Any + Send + Sync>>>,
    /// The power switch declared for the drive; without one, the transport's own.
    power: RwLock<Option<SharedSwitch>>,
}

/// How long each part of a power cycle took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PowerCycleTimes {
    /// From asking the switch for off to its on returning (the time without power, plus
    /// the switch's own time).
    pub switched: Duration,
    /// From power on to the function answering configuration reads, usable again.
    pub function_back: Duration,
    /// From then to the controller ready (CSTS.RDY, identified, queues granted).
    pub controller_ready: Duration,
}

impl PowerCycleTimes {
    /// From power on to the controller ready.
    pub fn on_to_ready(&self) -> Duration {
        self.function_back + self.controller_ready
    }
}

fn power_err(e: crate::power::PowerError) -> DriverError {
    DriverError::Power(e.to_string())
}

/// A controller driven from user space. Cheap to clone; all clones share one admin queue.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("transport", &self.inner.transport.describe()).field("vs", &self.inner.vs.to_string()).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// PRP/SGL list pages to reserve per command for transfers of `max` bytes.
pub(crate) fn list_pages_for(max: usize, page: usize) -> usize {
    crate::nvme::prp::list_pages_needed(max / page + 1, 0, page).max(1)
}

impl Controller {
    /// Brings a controller up (§7.6.1): disable, program the admin queue, enable, wait
    /// for CSTS.RDY within CAP.TO, identify the controller and its namespaces, and request
    /// I/O queues.
    pub fn new(transport: SharedTransport, opts: ControllerOptions) -> Result<Controller, DriverError> {
        let c = Self::build(transport, opts)?;
        c.bring_up()?;
        Ok(c)
    }

    fn build(transport: SharedTransport, opts: ControllerOptions) -> Result<Controller, DriverError> {
        if !(2..=4096).contains(&opts.admin_entries) {
            return Err(DriverError::InvalidArgument(format!("admin queue entries {} outside 2..=4096", opts.admin_entries)));
        }
        let cap = Cap(transport.read64(offset::CAP));
        if cap.0 == u64::MAX {
            return Err(DriverError::DeviceGone);
        }
        let vs = Vs(transport.read32(offset::VS));
        let page = cap.min_page_size().max(4096);
        let admin_entries = opts.admin_entries.min(cap.max_queue_entries());
        let core = QueueCore::new(transport.clone(), 0, admin_entries, page, 1, cap.dstrd(), opts.command_timeout)?;
        let inner = Arc::new(Inner {
            transport,
            cap,
            vs,
            page,
            admin: Mutex::new(AdminQueue { core, aers: Vec::new(), detached: Vec::new(), reaped: VecDeque::new() }),
            info: RwLock::new(ControllerInfo {
                id: IdentifyController::zeroed(),
                namespaces: Vec::new(),
                io_queues: NumberOfQueues { sq: 0, cq: 0 },
                max_transfer: 0,
            }),
            qids: Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            stopped: AtomicU64::new(0),
            ready: std::sync::atomic::AtomicBool::new(false),
            data_epoch: AtomicU64::new(0),
            power_losses: AtomicU64::new(0),
            events: Mutex::new(VecDeque::new()),
            attachments: Mutex::new(HashMap::new()),
            power: RwLock::new(None),
            opts,
        });
        Ok(Controller { inner })
    }

    /// The host side of a controller that is left as it is: no register is touched, so
    /// the caller brings it up step by step (a test script's own initialisation:
    /// [`Controller::init_admin_queue`], CC writes, [`Controller::identify_all`],
    /// [`Controller::grant_io_queues`], [`Controller::mark_ready`]).
    pub fn unconfigured(transport: SharedTransport, opts: ControllerOptions) -> Result<Controller, DriverError> {
        Self::build(transport, opts)
    }

    /// The transport this controller is reached through.
    pub fn transport(&self) -> &SharedTransport {
        &self.inner.transport
    }
    /// Controller Capabilities.
    pub fn cap(&self) -> Cap {
        self.inner.cap
    }
    /// Version register.
    pub fn version(&self) -> Vs {
        self.inner.vs
    }
    /// Memory page size in use (CC.MPS).
    pub fn page_size(&self) -> usize {
        self.inner.page
    }
    /// Bring-up options.
    pub fn options(&self) -> &ControllerOptions {
        &self.inner.opts
    }
    /// What bring-up learned (refreshed by every reset).
    pub fn info(&self) -> ControllerInfo {
        self.inner.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Identify Controller data.
    pub fn identify(&self) -> IdentifyController {
        self.inner.info.read().unwrap_or_else(|e| e.into_inner()).id
    }
    /// An active namespace: a handle for I/O workers and identify data.
    pub fn namespace(&self, nsid: u32) -> Option<Namespace> {
        let info = self.inner.info.read().unwrap_or_else(|e| e.into_inner()).namespaces.iter().find(|n| n.nsid == nsid).cloned()?;
        Some(Namespace { nsid, id: info.id, ctrl: self.clone() })
    }
    /// LBA size of active namespace `nsid` (without copying its identify data).
    pub fn info_lba_size(&self, nsid: u32) -> Option<usize> {
        self.inner.info.read().unwrap_or_else(|e| e.into_inner()).namespaces.iter().find(|n| n.nsid == nsid).map(|n| n.lba_size())
    }

    /// Whether an upper layer keeps state for this controller (e.g. a verification table).
    pub fn has_attachments(&self) -> bool {
        !lock(&self.inner.attachments).is_empty()
    }

    /// Reset generation: changes with every reset, NSSR, and power cycle.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }
    /// Current CSTS.
    pub fn csts(&self) -> Csts {
        Csts(self.inner.transport.read32(offset::CSTS))
    }
    /// Current CC.
    pub fn cc(&self) -> Cc {
        Cc(self.inner.transport.read32(offset::CC))
    }

    fn ready_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.cap.timeout_ms())
    }

    /// Polls CSTS until `cond` holds, within CAP.TO.
    fn wait_csts(&self, what: &'static str, cond: impl Fn(Csts) -> bool) -> Result<Csts, DriverError> {
        let deadline = Instant::now() + self.ready_timeout();
        let mut spins = 0u32;
        loop {
            let c = self.csts();
            if cond(c) {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                return Err(if c.is_all_ones() {
                    DriverError::DeviceGone
                } else {
                    DriverError::ReadyTimeout { what, csts: c.0, waited: self.ready_timeout() }
                });
            }
            spins += 1;
            if spins < 1000 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    /// Clears CC.EN and waits for CSTS.RDY = 0 (§7.6.1 steps 1-2).
    fn disable(&self) -> Result<(), DriverError> {
        let t = &self.inner.transport;
        let cc = self.cc();
        if cc.0 == u32::MAX {
            return Err(DriverError::DeviceGone);
        }
        if cc.en() {
            // Changing EN while RDY lags behind is undefined (§3.1.5): wait for it first.
            self.wait_csts("CSTS.RDY = 1 (or CFS) before clearing CC.EN", |c| c.rdy() || c.cfs())?;
            t.write32(offset::CC, cc.with_en(false).with_shn_raw(0).0);
            // A controller that failed (CFS) may clear CFS with the reset; give it the same
            // time as RDY so a stale CFS is not mistaken for a new failure after enabling.
            match self.wait_csts("CSTS.RDY = 0 and CFS = 0 after clearing CC.EN", |c| !c.rdy() && !c.cfs()) {
                Err(DriverError::ReadyTimeout { csts, .. }) if !Csts(csts).rdy() => {}
                r => {
                    r?;
                }
            }
        }
        self.wait_csts("CSTS.RDY = 0 after clearing CC.EN", |c| !c.rdy())?;
        Ok(())
    }

    /// Disable, program the admin queue, enable, identify, request queues.
    fn bring_up(&self) -> Result<(), DriverError> {
        self.inner.ready.store(false, Ordering::Release);
        self.bring_up_inner()?;
        self.inner.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the controller is up: brought up, and no reset or power loss since.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Marks the start of a reset or power loss: queue pairs of the current generation are
    /// gone from now on. Public for callers that reset the controller through its
    /// registers themselves.
    pub fn begin_reset(&self) {
        self.inner.ready.store(false, Ordering::Release);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that the controller has stopped processing the commands of every
    /// generation before the current one: it was disabled (CSTS.RDY = 0), lost power, or
    /// the attempt to stop it ended without success (waiting longer would not help).
    fn mark_stopped(&self) {
        self.inner.stopped.fetch_max(self.inner.generation.load(Ordering::Acquire), Ordering::AcqRel);
    }

    /// Whether the controller has stopped since queue pairs of `generation` were current,
    /// so that their outstanding commands can be reported aborted and their memory reused.
    pub(crate) fn stopped_since(&self, generation: u64) -> bool {
        self.inner.stopped.load(Ordering::Acquire) > generation
    }

    fn bring_up_inner(&self) -> Result<(), DriverError> {
        let inner = &self.inner;
        let t = &inner.transport;
        let disabled = self.disable();
        self.mark_stopped();
        disabled?;
        self.init_admin_queue();
        let mps = (inner.page.trailing_zeros() - 12) as u8;
        let ams = match inner.opts.arbitration {
            ArbitrationMechanism::RoundRobin => 0,
            ArbitrationMechanism::WeightedRoundRobin if inner.cap.ams() & 1 != 0 => 1,
            ArbitrationMechanism::WeightedRoundRobin => {
                return Err(DriverError::InvalidArgument("the controller does not support weighted round robin (CAP.AMS bit 0 is clear)".into()));
            }
        };
        let cc = Cc(0).with_css(0).with_mps(mps).with_ams(ams).with_iosqes(6).with_iocqes(4).with_en(true);
        t.write32(offset::CC, cc.0);
        let csts = self.wait_csts("CSTS.RDY = 1 after setting CC.EN", |c| c.rdy() || c.cfs())?;
        if csts.cfs() {
            return Err(DriverError::ControllerFatal);
        }
        self.refresh_info()?;
        Ok(())
    }

    /// Empties the admin queue and programs AQA, ASQ and ACQ with it (§7.6.1 step 3);
    /// commands outstanding on it complete as aborted for their senders.
    pub fn init_admin_queue(&self) {
        let t = &self.inner.transport;
        {
            let mut admin = lock(&self.inner.admin);
            admin.core.reset();
            admin.aers.clear();
            // Commands the reset swallowed complete as aborted for whoever sent them.
            let lost = std::mem::take(&mut admin.detached);
            for (cid, ctx) in lost {
                admin.reaped.push_back(Completion {
                    cqe: Cqe { dw: [u32::MAX, u32::MAX, 0xffff, 0xffff_0000 | cid as u32] },
                    ctx,
                    submitted: Instant::now(),
                    opcode: 0,
                    kind: CplKind::Aborted,
                });
            }
            let n = admin.core.entries() as u16 - 1;
            t.write32(offset::AQA, Aqa(0).with_asqs(n).with_acqs(n).0);
            t.write64(offset::ASQ, admin.core.sq_memory().iova());
            t.write64(offset::ACQ, admin.core.cq_memory().iova());
        }
    }

    fn refresh_info(&self) -> Result<(), DriverError> {
        self.identify_all()?;
        let want = match self.inner.opts.io_queues {
            0 => NumberOfQueues { sq: 0xfffe, cq: 0xfffe },
            n => NumberOfQueues { sq: n as u32, cq: n as u32 },
        };
        let got = self.admin(&cmd::set_features(fid::NUMBER_OF_QUEUES, want.to_dword(), false))?;
        self.grant_io_queues(got.cdw0());
        Ok(())
    }

    /// Identifies the controller and its active namespaces (Identify CNS 01h, 02h, 00h)
    /// and keeps what they say; the I/O queue grant is left as it was.
    pub fn identify_all(&self) -> Result<(), DriverError> {
        let buf = self.dma(4096)?;
        self.admin_data(&cmd::identify(cns::CONTROLLER, 0), &buf)?;
        let id = IdentifyController::from_bytes(&buf.to_vec());
        buf.fill(0, 4096, 0);
        self.admin_data(&cmd::identify(cns::ACTIVE_NS_LIST, 0), &buf)?;
        let list = buf.to_vec();
        let mut namespaces = Vec::new();
        for chunk in list.chunks_exact(4) {
            let nsid = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
            if nsid == 0 {
                break;
            }
            buf.fill(0, 4096, 0);
            self.admin_data(&cmd::identify(cns::NAMESPACE, nsid), &buf)?;
            namespaces.push(NamespaceInfo { nsid, id: IdentifyNamespace::from_bytes(&buf.to_vec()) });
        }
        let mdts = id.max_transfer_bytes(self.inner.cap.min_page_size()).unwrap_or(usize::MAX);
        let max_transfer = mdts.min(self.inner.opts.max_transfer);
        let mut info = self.inner.info.write().unwrap_or_else(|e| e.into_inner());
        info.id = id;
        info.namespaces = namespaces;
        info.max_transfer = max_transfer;
        Ok(())
    }

    /// Records the I/O queues the controller granted: dword 0 of its Set Features
    /// (Number of Queues) completion (§5.21.1.7).
    pub fn grant_io_queues(&self, cdw0: u32) {
        let io_queues = NumberOfQueues::from_dword(cdw0);
        let n = io_queues.sq.min(io_queues.cq) as usize;
        *lock(&self.inner.qids) = vec![false; n + 1];
        self.inner.info.write().unwrap_or_else(|e| e.into_inner()).io_queues = io_queues;
    }

    /// Declares a controller brought up by the caller ready for queue pairs and workers.
    /// Its bring-up went through a reset, so commands of earlier generations are over.
    pub fn mark_ready(&self) {
        self.mark_stopped();
        self.inner.ready.store(true, Ordering::Release);
    }

    /// Allocates DMA memory through the transport.
    pub fn dma(&self, len: usize) -> Result<DmaBuffer, DriverError> {
        Ok(self.inner.transport.dma_alloc(len)?)
    }

    /// Runs an admin command without data and waits for it; a failing status is an error.
    pub fn admin(&self, sqe: &Sqe) -> Result<Cqe, DriverError> {
        self.admin_raw(sqe, DataPtr::None, self.inner.opts.command_timeout).and_then(|c| check(admin_name(sqe), c))
    }

    /// Runs an admin command with a data buffer (PRP) and waits for it.
    pub fn admin_data(&self, sqe: &Sqe, buf: &DmaBuffer) -> Result<Cqe, DriverError> {
        self.admin_raw(sqe, DataPtr::Prp(buf), self.inner.opts.command_timeout).and_then(|c| check(admin_name(sqe), c))
    }

    /// Runs an admin command and returns its completion whatever the status. Completions
    /// of Asynchronous Event Requests seen meanwhile are kept for [`Controller::take_events`].
    pub fn admin_raw(&self, sqe: &Sqe, data: DataPtr<'_>, timeout: Duration) -> Result<Cqe, DriverError> {
        let what = AdminOpcode::from(sqe.opcode()).name();
        let mut admin = lock(&self.inner.admin);
        let cid = admin.core.submit(sqe, data, 0).map_err(|e| DriverError::Submit { what, source: e })?;
        admin.core.ring();
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let mut mine = None;
            let mut events = Vec::new();
            let mut found = Vec::new();
            admin.core.poll(usize::MAX, |c| {
                if c.cid() == cid {
                    mine = Some(*c);
                } else {
                    found.push(*c);
                }
            });
            for c in &found {
                admin.route(c, &mut events);
            }
            let core = &mut admin.core;
            if !events.is_empty() {
                lock(&self.inner.events).extend(events);
            }
            if let Some(c) = mine {
                return match c.kind {
                    CplKind::Device => Ok(c.cqe),
                    _ => Err(DriverError::CommandTimeout { what, cid, after: timeout }),
                };
            }
            let now = Instant::now();
            spins += 1;
            // Now and then, and at the deadline, ask the controller whether it still works:
            // a failed, disabled or vanished controller will not answer, so stop waiting.
            if now >= deadline || spins.is_multiple_of(1024) {
                let csts = self.csts();
                let err = if csts.is_all_ones() {
                    Some(DriverError::DeviceGone)
                } else if csts.cfs() {
                    Some(DriverError::ControllerFatal)
                } else if !csts.rdy() {
                    Some(DriverError::NotReady { csts: csts.0 })
                } else if now >= deadline {
                    Some(DriverError::CommandTimeout { what, cid, after: timeout })
                } else {
                    None
                };
                if let Some(e) = err {
                    // Keep the CID reserved in case the controller answers late.
                    core.give_up(cid);
                    return Err(e);
                }
            }
            if spins > 2000 {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Submits an Asynchronous Event Request that stays outstanding until an event.
    pub fn submit_aer(&self) -> Result<u16, DriverError> {
        let mut admin = lock(&self.inner.admin);
        let cid = admin
            .core
            .submit(&cmd::async_event_request(), DataPtr::None, 0)
            .map_err(|e| DriverError::Submit { what: "Asynchronous Event Request", source: e })?;
        admin.aers.push(cid);
        admin.core.ring();
        Ok(cid)
    }

    /// Reaps admin completions without sending anything (delivers pending events).
    pub fn poll_admin(&self) {
        let mut admin = lock(&self.inner.admin);
        let mut events = Vec::new();
        let mut found = Vec::new();
        admin.core.poll(usize::MAX, |c| found.push(*c));
        for c in &found {
            admin.route(c, &mut events);
        }
        lock(&self.inner.events).extend(events);
    }

    /// Submits an admin command without waiting for it (`ctx` comes back in its
    /// completion; `timed`: subject to the command
    /// timeout; an Asynchronous Event Request is not). Its completion, whoever polls the
    /// admin queue, is delivered by [`Controller::admin_reap`] — the way a test script
    /// sends several commands and then waits for them.
    pub fn admin_submit(&self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64, timed: bool) -> Result<u16, DriverError> {
        let what = AdminOpcode::from(sqe.opcode()).name();
        let mut admin = lock(&self.inner.admin);
        let r = if timed { admin.core.submit(sqe, data, ctx) } else { admin.core.submit_untimed(sqe, data, ctx) };
        let cid = r.map_err(|e| DriverError::Submit { what, source: e })?;
        admin.detached.push((cid, ctx));
        admin.core.ring();
        Ok(cid)
    }

    /// Delivers completions of commands sent with [`Controller::admin_submit`], oldest
    /// first, polling the admin queue once; commands past the timeout are delivered as
    /// [`CplKind::TimedOut`]. Returns how many were delivered.
    pub fn admin_reap(&self, mut f: impl FnMut(&Completion)) -> usize {
        let mut admin = lock(&self.inner.admin);
        let mut events = Vec::new();
        let mut found = Vec::new();
        admin.core.poll(usize::MAX, |c| found.push(*c));
        for c in &found {
            admin.route(c, &mut events);
        }
        let done: Vec<Completion> = admin.reaped.drain(..).collect();
        drop(admin);
        if !events.is_empty() {
            lock(&self.inner.events).extend(events);
        }
        for c in &done {
            f(c);
        }
        done.len()
    }

    /// Admin commands sent with [`Controller::admin_submit`] and not yet delivered.
    pub fn admin_pending(&self) -> usize {
        let admin = lock(&self.inner.admin);
        admin.detached.len() + admin.reaped.len()
    }

    /// Changes the admin queue's command timeout.
    pub fn set_admin_timeout(&self, t: Duration) {
        lock(&self.inner.admin).core.set_timeout(t);
    }

    /// Asynchronous event completions (dword 0) received so far, oldest first.
    pub fn take_events(&self) -> Vec<u32> {
        lock(&self.inner.events).drain(..).collect()
    }

    /// Outstanding Asynchronous Event Requests.
    pub fn outstanding_aers(&self) -> usize {
        lock(&self.inner.admin).aers.len()
    }

    /// Reads a log page of `len` bytes.
    pub fn get_log_page(&self, lid: u8, nsid: u32, len: usize, rae: bool) -> Result<Vec<u8>, DriverError> {
        let buf = self.dma(len.next_multiple_of(4).max(4))?;
        self.admin_data(&cmd::get_log_page(lid, nsid, len, rae, 0), &buf)?;
        let mut v = buf.to_vec();
        v.truncate(len);
        Ok(v)
    }

    /// SMART / Health Information (LID 02h), controller-wide.
    pub fn smart_log(&self) -> Result<SmartLog, DriverError> {
        Ok(SmartLog::from_bytes(&self.get_log_page(lid::SMART_HEALTH, u32::MAX, 512, false)?))
    }

    /// Error Information entries (LID 01h), newest first, valid ones only.
    pub fn error_log(&self, entries: usize) -> Result<Vec<ErrorLogEntry>, DriverError> {
        let raw = self.get_log_page(lid::ERROR_INFORMATION, 0, entries * 64, false)?;
        Ok(raw.chunks_exact(64).map(ErrorLogEntry::from_bytes).filter(|e| e.error_count != 0).collect())
    }

    /// Get Features (current value) of `fid`, with CDW11 `cdw11`.
    pub fn get_features(&self, fid: u8, cdw11: u32) -> Result<u32, DriverError> {
        let mut s = cmd::get_features(fid, Select::Current);
        s.dw[11] = cdw11;
        Ok(self.admin(&s)?.cdw0())
    }

    /// Set Features of `fid` to `value` (not saved).
    pub fn set_features(&self, fid: u8, value: u32) -> Result<u32, DriverError> {
        Ok(self.admin(&cmd::set_features(fid, value, false))?.cdw0())
    }

    /// Sets the Arbitration feature (weights for weighted round robin).
    pub fn set_arbitration(&self, arb: Arbitration) -> Result<(), DriverError> {
        self.set_features(fid::ARBITRATION, arb.to_dword()).map(|_| ())
    }

    /// Format NVM of `nsid` (FFFFFFFFh: all) to LBA format `lbaf`, then re-identifies.
    pub fn format(&self, nsid: u32, lbaf: u8, ses: u8) -> Result<(), DriverError> {
        let sqe = cmd::format_nvm(nsid, lbaf, ses);
        let r = self.admin_raw(&sqe, DataPtr::None, self.inner.opts.command_timeout.max(Duration::from_secs(60))).and_then(|c| check(admin_name(&sqe), c));
        self.data_erased();
        r?;
        self.refresh_namespaces()
    }

    /// Sanitize (`action` 2: block erase), waiting for the command to complete.
    pub fn sanitize(&self, action: u8) -> Result<(), DriverError> {
        let sqe = cmd::sanitize(action);
        let r = self.admin_raw(&sqe, DataPtr::None, self.inner.opts.command_timeout.max(Duration::from_secs(60))).and_then(|c| check(admin_name(&sqe), c));
        self.data_erased();
        r.map(|_| ())
    }

    /// Records that user data may have been erased behind the driver's back (a raw Format
    /// NVM or Sanitize): state kept about namespace contents is stale from now on.
    pub fn data_erased(&self) {
        self.inner.data_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Changes whenever user data was erased through this driver (see [`Controller::data_erased`]).
    pub fn data_epoch(&self) -> u64 {
        self.inner.data_epoch.load(Ordering::Acquire)
    }

    /// Power removals so far: data in a volatile write cache that no flush or shutdown
    /// covered may have been lost at each (after a clean shutdown, only writes completed
    /// after it are at risk; a drive may well take them while power is still on).
    pub fn power_losses(&self) -> u64 {
        self.inner.power_losses.load(Ordering::SeqCst)
    }

    /// Per-controller state of an upper layer, keyed by its type and `key`, created by
    /// `init` on first use.
    pub fn attachment<T: Any + Send + Sync, E>(&self, key: u64, init: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let mut a = lock(&self.inner.attachments);
        let k = (TypeId::of::<T>(), key);
        if let Some(v) = a.get(&k)
            && let Ok(t) = v.clone().downcast::<T>()
        {
            return Ok(t);
        }
        let t = Arc::new(init()?);
        a.insert(k, t.clone());
        Ok(t)
    }

    /// Every attachment of type `T`, with its key.
    pub fn attachments<T: Any + Send + Sync>(&self) -> Vec<(u64, Arc<T>)> {
        let a = lock(&self.inner.attachments);
        a.iter().filter(|(k, _)| k.0 == TypeId::of::<T>()).filter_map(|(k, v)| v.clone().downcast::<T>().ok().map(|t| (k.1, t))).collect()
    }

    fn refresh_namespaces(&self) -> Result<(), DriverError> {
        let buf = self.dma(4096)?;
        let nsids: Vec<u32> = self.info().namespaces.iter().map(|n| n.nsid).collect();
        let mut namespaces = Vec::new();
        for nsid in nsids {
            self.admin_data(&cmd::identify(cns::NAMESPACE, nsid), &buf)?;
            namespaces.push(NamespaceInfo { nsid, id: IdentifyNamespace::from_bytes(&buf.to_vec()) });
        }
        self.inner.info.write().unwrap_or_else(|e| e.into_inner()).namespaces = namespaces;
        Ok(())
    }

    /// Controller reset through CC.EN (§7.3.2), then bring-up again. Every queue pair
    /// created before becomes invalid: its outstanding commands are reported aborted.
    pub fn reset(&self) -> Result<(), DriverError> {
        self.begin_reset();
        self.bring_up()
    }

    /// NVM Subsystem Reset through NSSR (§7.3.1), then bring-up again.
    pub fn subsystem_reset(&self) -> Result<(), DriverError> {
        if !self.inner.cap.nssrs() {
            return Err(DriverError::InvalidArgument("the controller does not support NVM Subsystem Reset (CAP.NSSRS = 0)".into()));
        }
        self.begin_reset();
        self.inner.transport.write32(offset::NSSR, NSSR_RESET_VALUE);
        self.wait_csts("CSTS.RDY = 0 after NSSR", |c| !c.rdy())?;
        self.bring_up()
    }

    /// PCIe Function Level Reset through the transport, then bring-up again.
    pub fn function_reset(&self) -> Result<(), DriverError> {
        self.pcie_reset(ResetKind::Function)
    }

    /// A reset outside the NVMe register set (FLR, hot reset, link disable) through the
    /// transport, then bring-up again (also when the reset failed).
    pub fn pcie_reset(&self, kind: ResetKind) -> Result<(), DriverError> {
        self.begin_reset();
        let reset = self.inner.transport.reset(kind);
        // A reset that was refused or did not happen leaves the controller as it was: it
        // is brought up again either way, so the workers can go on.
        let up = self.bring_up();
        reset?;
        up
    }

    /// Declares the drive's power switch (`None`: the transport's own, if it has one).
    pub fn set_power_switch(&self, switch: Option<SharedSwitch>) {
        *self.inner.power.write().unwrap_or_else(|e| e.into_inner()) = switch;
    }

    /// The switch power events use: the one declared, else the transport's own.
    pub fn power_switch(&self) -> Option<SharedSwitch> {
        self.inner.power.read().unwrap_or_else(|e| e.into_inner()).clone().or_else(|| self.inner.transport.power_switch())
    }

    fn switch(&self) -> Result<SharedSwitch, DriverError> {
        self.power_switch()
            .ok_or_else(|| DriverError::InvalidArgument(format!("{} has no power switch; {}", self.inner.transport.describe(), crate::power::HOW_TO_DECLARE)))
    }

    /// Removes power with the drive's switch (`dirty`: without shutdown notification).
    /// Queue pairs become invalid.
    pub fn power_off(&self, dirty: bool) -> Result<(), DriverError> {
        self.power_off_with(self.switch()?.as_ref(), dirty)
    }

    /// Restores power with the drive's switch, waits for the function and brings the
    /// controller up again.
    pub fn power_on(&self) -> Result<(), DriverError> {
        let sw = self.switch()?;
        self.restore_power_with(sw.as_ref())?;
        self.bring_up()
    }

    /// Removes power with `switch`. Clean (`dirty` false): a normal shutdown first, unless
    /// one is complete already, which writes the volatile write cache back (NVMe 2.0
    /// §3.6.3). Then the transport lets go of the function and the switch cuts power.
    pub fn power_off_with(&self, switch: &dyn PowerSwitch, dirty: bool) -> Result<(), DriverError> {
        self.without_power(dirty, || switch.off().map_err(power_err))
    }

    /// What removing power takes: a normal shutdown unless `dirty` or one is complete, the
    /// power loss counted, the function let go, then `cut` (the switch's action). The
    /// controller counts as stopped after it, whether the cut succeeded or not.
    fn without_power(&self, dirty: bool, cut: impl FnOnce() -> Result<(), DriverError>) -> Result<(), DriverError> {
        if !dirty && self.csts().shst() != ShutdownStatus::Complete {
            self.shutdown()?;
        }
        self.lose_power();
        let r = self.inner.transport.detach_for_power_off().map_err(DriverError::from).and_then(|()| cut());
        self.mark_stopped();
        r
    }

    /// Restores power with `switch` and waits (up to the switch's ready time) for the
    /// function to answer and be usable again; the controller stays disabled (bring it up
    /// with [`Controller::reset`]). Returns how long the function took to answer.
    pub fn restore_power_with(&self, switch: &dyn PowerSwitch) -> Result<Duration, DriverError> {
        switch.on().map_err(power_err)?;
        Ok(self.inner.transport.attach_after_power_on(switch.ready_timeout())?)
    }

    /// Power off, `off` without power, power on, controller up again, with `switch`; a
    /// switch that powers off and on in one step (suspend to RAM) does so. Times each part.
    pub fn power_cycle_with(&self, switch: &dyn PowerSwitch, dirty: bool, off: Duration) -> Result<PowerCycleTimes, DriverError> {
        let mut times = self.cycle_power_with(switch, dirty, off)?;
        let t = Instant::now();
        self.bring_up()?;
        times.controller_ready = t.elapsed();
        Ok(times)
    }

    /// [`Controller::power_cycle_with`] but for the bring-up: the controller stays disabled
    /// (PyNVMe's `Subsystem.power_cycle`, after which the script resets the controller).
    pub fn cycle_power_with(&self, switch: &dyn PowerSwitch, dirty: bool, off: Duration) -> Result<PowerCycleTimes, DriverError> {
        let mut switched = Duration::ZERO;
        self.without_power(dirty, || {
            let t = Instant::now();
            let r = switch.cycle(off).map_err(power_err);
            switched = t.elapsed();
            r
        })?;
        let function_back = self.inner.transport.attach_after_power_on(switch.ready_timeout())?;
        Ok(PowerCycleTimes { switched, function_back, controller_ready: Duration::ZERO })
    }

    /// Counts a power loss and ends the queue pairs' generation. Counted even after a clean
    /// shutdown: writes that completed after it are in no flush, and the switch takes them
    /// with it. Counted before power goes, so that anyone who saw a completion before the
    /// loss and checks the count after recording it cannot miss the loss.
    fn lose_power(&self) {
        self.inner.power_losses.fetch_add(1, Ordering::SeqCst);
        self.begin_reset();
    }

    /// Power cycle with the drive's switch (see [`Controller::power_cycle_with`]).
    pub fn power_cycle(&self, dirty: bool, off: Duration) -> Result<PowerCycleTimes, DriverError> {
        self.power_cycle_with(self.switch()?.as_ref(), dirty, off)
    }

    /// Normal shutdown (§7.6.2): CC.SHN = 01b, wait for CSTS.SHST = 10b.
    pub fn shutdown(&self) -> Result<(), DriverError> {
        let cc = self.cc();
        self.inner.transport.write32(offset::CC, cc.with_shn_raw(1).0);
        self.wait_csts("CSTS.SHST = 10b after CC.SHN", |c| c.shst() == ShutdownStatus::Complete)?;
        Ok(())
    }

    /// Creates an I/O queue pair (one CQ and one SQ with the same queue ID).
    pub fn create_qpair(&self, opts: QpairOptions) -> Result<QPair, DriverError> {
        QPair::create(self, opts)
    }

    pub(crate) fn alloc_qid(&self) -> Option<u16> {
        let mut q = lock(&self.inner.qids);
        let i = q.iter().skip(1).position(|used| !used)? + 1;
        q[i] = true;
        Some(i as u16)
    }

    /// Marks `qid` taken (metamode queues choose their own ids, so the driver's queue
    /// pairs keep off them); false when it already was, or is beyond what the controller
    /// granted.
    pub(crate) fn reserve_qid(&self, qid: u16) -> bool {
        match lock(&self.inner.qids).get_mut(qid as usize) {
            Some(used) if qid > 0 && !*used => {
                *used = true;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn free_qid(&self, qid: u16) {
        if let Some(s) = lock(&self.inner.qids).get_mut(qid as usize) {
            *s = false;
        }
    }
}

fn admin_name(sqe: &Sqe) -> &'static str {
    AdminOpcode::from(sqe.opcode()).name()
}

/// Turns a failing completion into an error naming the command.
pub(crate) fn check(what: &str, cqe: Cqe) -> Result<Cqe, DriverError> {
    if cqe.status().is_success() { Ok(cqe) } else { Err(DriverError::Command { what: what.to_string(), status: cqe.status(), cqe }) }
}
