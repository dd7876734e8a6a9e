//! The controller thread: the CC/CSTS state machine (NVMe 1.4 §7.6), resets and power,
//! the admin queue with its commands (§5), features, log pages and asynchronous events.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use super::dma::{self, DmaView, Seg};
use super::fault::{FaultAction, FaultQueue};
use super::firmware::{self, Firmware};
use super::io::IoMsg;
use super::queue::{CQE_BYTES, CqState, QueueMem, SQE_BYTES, SqState};
use super::regs::Idle;
use super::selftest::{self, SelfTest};
use super::{CtrlMsg, Shared, lock};
use crate::nvme::features::{Arbitration, NumberOfQueues, Select, fid};
use crate::nvme::identify::{IdentifyController, IdentifyNamespace, LbaFormat, cns, oacs, oncs, set_ascii_field, sgls};
use crate::nvme::log::{GetLogPage, SmartLog, async_event, data_units, lid};
use crate::nvme::opcode::{AdminOpcode, NvmOpcode};
use crate::nvme::regs::{Cc, Csts, ShutdownNotification, offset};
use crate::nvme::sqe::Psdt;
use crate::nvme::{Cqe, Sqe, Status};

/// Arbitration feature value after reset: burst of 8, all weights 1.
pub(crate) const DEFAULT_ARBITRATION: Arbitration = Arbitration { burst: 3, low: 0, medium: 0, high: 0 };
/// Composite temperature the simulated controller reports, Kelvin.
const TEMPERATURE_K: u16 = 310;
/// Warning and critical composite temperature thresholds, Kelvin.
const WCTEMP: u16 = 343;
const CCTEMP: u16 = 358;
/// Asynchronous Event Request Limit, 0's based.
const AERL: u8 = 3;
/// Number of power states, 0's based.
const NPSS: u8 = 4;

/// Admin opcodes the controller implements; everything else is Invalid Command Opcode.
const ADMIN_SUPPORTED: &[AdminOpcode] = &[
    AdminOpcode::DeleteIoSq,
    AdminOpcode::CreateIoSq,
    AdminOpcode::GetLogPage,
    AdminOpcode::DeleteIoCq,
    AdminOpcode::CreateIoCq,
    AdminOpcode::Identify,
    AdminOpcode::Abort,
    AdminOpcode::SetFeatures,
    AdminOpcode::GetFeatures,
    AdminOpcode::AsyncEventRequest,
    AdminOpcode::FirmwareCommit,
    AdminOpcode::FirmwareDownload,
    AdminOpcode::DeviceSelfTest,
    AdminOpcode::FormatNvm,
    AdminOpcode::Sanitize,
];
/// NVM opcodes the I/O threads implement.
const IO_SUPPORTED: &[NvmOpcode] = &[
    NvmOpcode::Flush,
    NvmOpcode::Write,
    NvmOpcode::Read,
    NvmOpcode::WriteUncorrectable,
    NvmOpcode::Compare,
    NvmOpcode::WriteZeroes,
    NvmOpcode::DatasetManagement,
    NvmOpcode::Verify,
];

/// Current feature values (§5.21.1).
#[derive(Clone)]
struct Features {
    arbitration: Arbitration,
    power_state: u32,
    temp_over: u16,
    temp_under: u16,
    error_recovery: u32,
    irq_coalescing: u32,
    irq_vector_config: u32,
    write_atomicity: u32,
    async_event_config: u32,
    timestamp: Option<(u64, Instant)>,
    queues: NumberOfQueues,
    /// Number of Queues was set since the last reset: the allocation is fixed (§5.21.1.7).
    queues_set: bool,
}

impl Features {
    fn defaults(max_queues: u16) -> Self {
        Features {
            arbitration: DEFAULT_ARBITRATION,
            power_state: 0,
            temp_over: WCTEMP,
            temp_under: 0,
            error_recovery: 0,
            irq_coalescing: 0,
            irq_vector_config: 0,
            write_atomicity: 0,
            async_event_config: 0,
            timestamp: None,
            queues: NumberOfQueues { sq: max_queues as u32, cq: max_queues as u32 },
            queues_set: false,
        }
    }
}

pub(crate) struct ControllerThread {
    sh: Arc<Shared>,
    rx: Receiver<CtrlMsg>,
    io_tx: Vec<Sender<IoMsg>>,
    view: DmaView,
    last_cc: Cc,
    enabled: bool,
    ready_at: Option<Instant>,
    asq: Option<SqState>,
    acq: Option<CqState>,
    /// I/O SQs: qid -> (owner thread, cqid).
    sqs: HashMap<u16, (usize, u16)>,
    /// I/O CQs: qid -> (owner thread, SQs attached).
    cqs: HashMap<u16, (usize, u32)>,
    feat: Features,
    aers: VecDeque<u16>,
    /// Event types (bit per type) reported and not yet cleared by reading their log page.
    masked: u8,
    admin_pending: Vec<(Instant, Cqe)>,
    segs: Vec<Seg>,
    id_ctrl: IdentifyController,
    clean_shutdown: bool,
    power_cycles: u64,
    unsafe_shutdowns: u64,
    powered_since: Instant,
    powered_before: Duration,
    sanitize_status: u16,
    sanitize_cdw10: u32,
    /// A sanitize operation in progress: when it started and when it completes.
    sanitize_run: Option<(Instant, Instant)>,
    fw: Firmware,
    selftest: SelfTest,
}

impl ControllerThread {
    pub(crate) fn new(sh: Arc<Shared>, rx: Receiver<CtrlMsg>, io_tx: Vec<Sender<IoMsg>>) -> Self {
        let id_ctrl = identify_controller(&sh);
        let id_ctrl_fr = id_ctrl.fr;
        ControllerThread {
            view: dma::view(&sh.dma),
            feat: Features::defaults(sh.cfg.max_io_queues),
            sh,
            rx,
            io_tx,
            last_cc: Cc(0),
            enabled: false,
            ready_at: None,
            asq: None,
            acq: None,
            sqs: HashMap::new(),
            cqs: HashMap::new(),
            aers: VecDeque::new(),
            masked: 0,
            admin_pending: Vec::new(),
            segs: Vec::new(),
            id_ctrl,
            clean_shutdown: false,
            power_cycles: 1,
            unsafe_shutdowns: 0,
            powered_since: Instant::now(),
            powered_before: Duration::ZERO,
            sanitize_status: 0,
            sanitize_cdw10: 0,
            sanitize_run: None,
            fw: Firmware::new(id_ctrl_fr),
            selftest: SelfTest::default(),
        }
    }

    pub(crate) fn run(mut self) {
        self.sh.wakers[0].register_current();
        let mut idle = Idle::new(self.sh.cfg.idle_spin);
        loop {
            if self.sh.stop.load(Ordering::Relaxed) {
                return;
            }
            let mut work = self.handle_msgs();
            if self.sh.regs.powered.load(Ordering::Acquire) {
                work += self.check_registers();
                if self.enabled && self.ready_at.is_none() && !self.sh.fatal.load(Ordering::Acquire) {
                    work += self.post_due();
                    work += self.process_admin();
                    work += self.sanitize_progress();
                    work += self.deliver_events();
                }
            }
            if !idle.should_sleep(work) {
                continue;
            }
            let now = Instant::now();
            let mut timeout = Duration::from_millis(50);
            if let Some(t) = self.ready_at {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if let Some(t) = self.admin_pending.iter().map(|p| p.0).min() {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            if let Some((_, t)) = self.sanitize_run {
                timeout = timeout.min(t.saturating_duration_since(now));
            }
            let sh = self.sh.clone();
            sh.wakers[0].sleep(timeout, || self.has_work());
        }
    }

    fn has_work(&self) -> bool {
        let r = &self.sh.regs;
        if r.ctrl_writes_pending() || self.sh.stop.load(Ordering::SeqCst) {
            return true;
        }
        if let Some(sq) = &self.asq
            && sq.has_work(r)
        {
            return true;
        }
        !self.aers.is_empty() && !lock(&self.sh.events).pending.is_empty()
    }

    fn handle_msgs(&mut self) -> usize {
        let mut n = 0;
        while let Ok(m) = self.rx.try_recv() {
            n += 1;
            match m {
                CtrlMsg::PowerOff { dirty, ack } => {
                    self.controller_reset();
                    for ns in &self.sh.namespaces {
                        ns.power_loss(dirty);
                    }
                    if dirty && !self.clean_shutdown {
                        self.unsafe_shutdowns += 1;
                    }
                    self.powered_before += self.powered_since.elapsed();
                    let _ = ack.send(());
                }
                CtrlMsg::PowerOn { ack } => {
                    if !self.sh.regs.powered.load(Ordering::Acquire) {
                        self.sh.regs.reset_to_power_on();
                        self.last_cc = Cc(0);
                        self.power_cycles += 1;
                        self.clean_shutdown = false;
                        self.powered_since = Instant::now();
                        self.sh.regs.powered.store(true, Ordering::SeqCst);
                    }
                    let _ = ack.send(());
                }
                CtrlMsg::FunctionReset { ack } => {
                    self.controller_reset();
                    self.sh.regs.reset_to_power_on();
                    self.last_cc = Cc(0);
                    let _ = ack.send(());
                }
            }
        }
        n
    }

    fn send_io(&self, thread: usize, msg: IoMsg) {
        self.sh.msg_counts[thread].fetch_add(1, Ordering::SeqCst);
        if self.io_tx[thread - 1].send(msg).is_err() {
            self.sh.msg_counts[thread].fetch_sub(1, Ordering::SeqCst);
        }
        self.sh.wakers[thread].force_wake();
    }

    /// Sends a message that carries an acknowledgement and waits for it.
    fn call_io(&self, thread: usize, make: impl FnOnce(mpsc::SyncSender<()>) -> IoMsg) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send_io(thread, make(tx));
        let _ = rx.recv();
    }

    fn io_threads(&self) -> std::ops::RangeInclusive<usize> {
        1..=self.io_tx.len()
    }

    fn check_registers(&mut self) -> usize {
        let mut work = 0;
        for (off, v) in self.sh.regs.take_ctrl_writes() {
            work += 1;
            if off == offset::NSSR {
                self.subsystem_reset();
                continue;
            }
            let cc = Cc(v);
            if cc != self.last_cc {
                let old = std::mem::replace(&mut self.last_cc, cc);
                self.cc_changed(old, cc);
            }
        }
        if let Some(t) = self.ready_at
            && Instant::now() >= t
        {
            self.ready_at = None;
            self.sh.regs.update_csts(|c| c.with_rdy(true));
            work += 1;
        }
        work
    }

    fn cc_changed(&mut self, old: Cc, new: Cc) {
        if new.en() && !old.en() {
            self.enable(new);
        } else if !new.en() && old.en() {
            // CC.EN 1 -> 0: controller reset (§7.3.2); admin queue registers survive.
            self.controller_reset();
        } else if new.en() && new.shn() != ShutdownNotification::None && old.shn() == ShutdownNotification::None {
            self.shutdown();
        }
    }

    /// CC.EN 0 -> 1: checks the admin queue and page size settings (§7.6.1); a bad
    /// configuration is reported as CSTS.CFS, as hardware has no other way to say it.
    fn enable(&mut self, cc: Cc) {
        let r = &self.sh.regs;
        let cap = r.cap;
        let (aqa, asq, acq) = (r.aqa(), r.asq(), r.acq());
        let page = cc.page_size() as u64;
        let css_ok = cc.css() == 0 && cap.css() & 1 != 0;
        let ams_ok = cc.ams() == 0 || (cc.ams() == 1 && cap.ams() & 1 != 0);
        let ok = cc.mps() >= cap.mpsmin()
            && cc.mps() <= cap.mpsmax()
            && css_ok
            && ams_ok
            && aqa.asqs() >= 1
            && aqa.acqs() >= 1
            && asq != 0
            && acq != 0
            && asq.is_multiple_of(page)
            && acq.is_multiple_of(page);
        if !ok {
            self.sh.set_fatal();
            return;
        }
        self.sh.page_size.store(page as usize, Ordering::SeqCst);
        let (sqs, cqs) = (aqa.asqs() as u32 + 1, aqa.acqs() as u32 + 1);
        self.asq = Some(SqState::new(0, QueueMem::Contig(asq), sqs, 0, 0));
        // The admin CQ always signals vector 0 (NVMe 1.4 §7.5.1.1).
        self.acq = Some(CqState::new(0, QueueMem::Contig(acq), cqs).with_irq(Some(0)));
        r.open_doorbell(0, false, sqs, 0);
        r.open_doorbell(0, true, cqs, 0);
        for t in self.io_threads() {
            self.send_io(t, IoMsg::Arbitration { ams: cc.ams(), arb: self.feat.arbitration });
        }
        self.enabled = true;
        let delay = self.sh.cfg.ready_delay;
        if delay.is_zero() {
            r.update_csts(|c| c.with_rdy(true));
        } else {
            self.ready_at = Some(Instant::now() + delay);
        }
    }

    /// Controller reset: I/O queues are deleted and commands in flight are dropped
    /// without completion; features return to their defaults.
    fn controller_reset(&mut self) {
        for t in self.io_threads() {
            self.call_io(t, |ack| IoMsg::Reset { ack });
        }
        self.sqs.clear();
        self.cqs.clear();
        self.aers.clear();
        self.admin_pending.clear();
        self.asq = None;
        self.acq = None;
        self.masked = 0;
        lock(&self.sh.events).pending.clear();
        self.sh.regs.clear_doorbells();
        self.sh.fatal.store(false, Ordering::SeqCst);
        self.enabled = false;
        self.ready_at = None;
        self.sh.regs.update_csts(|c| Csts(0).with_nssro(c.nssro()));
        self.feat = Features::defaults(self.sh.cfg.max_io_queues);
        self.sh.msix.reset_features();
        // A Controller Level Reset activates a committed firmware image (§5.12) and aborts
        // a short device self-test (§8.11.1).
        if self.fw.controller_reset() {
            self.id_ctrl.fr = self.fw.running();
        }
        let poh = self.power_on_hours();
        self.selftest.controller_reset(Instant::now(), poh);
        for ns in &self.sh.namespaces {
            if self.sh.cfg.write_cache && !ns.cache_enabled() {
                ns.set_cache_enabled(true);
            }
        }
    }

    /// CC.SHN: write the cache back and report shutdown complete (§7.6.2).
    fn shutdown(&mut self) {
        self.sh.regs.update_csts(|c| c.with_shst_raw(1));
        for ns in &self.sh.namespaces {
            ns.flush();
        }
        self.clean_shutdown = true;
        self.sh.regs.update_csts(|c| c.with_shst_raw(2));
    }

    /// NVM Subsystem Reset (§7.3.1): like a power cycle for the controller's state, but
    /// data and the write cache are kept; CSTS.NSSRO reports it. The registers were reset
    /// when NSSR was written; CC writes after it are still queued and apply on top.
    fn subsystem_reset(&mut self) {
        self.controller_reset();
        self.sh.regs.update_csts(|_| Csts(0).with_nssro(true));
        self.last_cc = Cc(0);
    }

    fn post_admin(&mut self, cqe: Cqe) {
        if let Some(cq) = self.acq.as_mut() {
            match cq.post_or_queue(&self.view, &self.sh.regs, cqe) {
                Ok(true) => self.sh.msix.signal(0, &self.view, false, || 0),
                Ok(false) => {}
                Err(_) => self.sh.set_fatal(),
            }
        }
    }

    fn post_due(&mut self) -> usize {
        let mut n = 0;
        if let Some(cq) = self.acq.as_mut()
            && !cq.overflow.is_empty()
        {
            match cq.drain_overflow(&self.view, &self.sh.regs) {
                Ok(k) => {
                    n += k;
                    if k > 0 {
                        self.sh.msix.signal(0, &self.view, false, || 0);
                    }
                }
                Err(_) => self.sh.set_fatal(),
            }
        }
        if self.admin_pending.is_empty() {
            return n;
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.admin_pending).into_iter().partition(|p| p.0 <= now);
        self.admin_pending = later;
        for (_, cqe) in due {
            self.post_admin(cqe);
            n += 1;
        }
        n
    }

    fn process_admin(&mut self) -> usize {
        let Some(mut sq) = self.asq.take() else { return 0 };
        let mut n = 0;
        while n < 16 && sq.has_work(&self.sh.regs) {
            // Mappings made before the doorbell write are visible after its acquire load.
            self.view.refresh();
            let Some(sqe) = sq.fetch(&self.view) else {
                self.sh.set_fatal();
                break;
            };
            n += 1;
            super::Counters::add(&self.sh.counters[0].commands, 1);
            let fault = self.sh.faults.take(FaultQueue::Admin, &sqe);
            let result = match fault {
                Some(FaultAction::Fail(st)) => Some((st, 0)),
                _ => self.admin_command(&sqe),
            };
            let Some((status, dw0)) = result else { continue };
            if !status.is_success() {
                let phase = self.acq.as_ref().is_none_or(|c| c.phase);
                self.sh.log_error(0, sqe.cid(), status, phase, 0, sqe.nsid());
            }
            let cqe = Cqe::new(dw0, sq.head as u16, 0, sqe.cid(), status);
            let latency = self.sh.cfg.latency.admin;
            let mut delay = latency.fixed + latency.jitter / 2;
            if AdminOpcode::from(sqe.opcode()) == AdminOpcode::FormatNvm && status.is_success() && (sqe.dw[10] >> 9) & 7 != 0 {
                delay += self.sh.cfg.format_erase;
            }
            match fault {
                Some(FaultAction::DropCompletion) => continue,
                Some(FaultAction::Delay(d)) => delay += d,
                _ => {}
            }
            if delay.is_zero() {
                self.post_admin(cqe);
            } else {
                self.admin_pending.push((Instant::now() + delay, cqe));
            }
        }
        self.asq = Some(sq);
        n
    }

    /// Completes outstanding Asynchronous Event Requests with pending, unmasked events.
    fn deliver_events(&mut self) -> usize {
        let mut n = 0;
        while !self.aers.is_empty() {
            let dw0 = {
                let mut ev = lock(&self.sh.events);
                let masked = self.masked;
                let Some(pos) = ev.pending.iter().position(|&d| masked & (1 << (d & 7)) == 0) else { break };
                ev.pending.remove(pos).expect("position is in range")
            };
            let cid = self.aers.pop_front().expect("not empty");
            self.masked |= 1 << (dw0 & 7);
            let sqhd = self.asq.as_ref().map_or(0, |s| s.head as u16);
            self.post_admin(Cqe::new(dw0, sqhd, 0, cid, Status::SUCCESS));
            n += 1;
        }
        n
    }

    // ----- data transfer for admin commands (PRP only, §4.2) -----

    fn page(&self) -> usize {
        self.sh.page_size.load(Ordering::Relaxed)
    }

    fn send_data(&mut self, sqe: &Sqe, data: &[u8]) -> Result<(), Status> {
        let page = self.page();
        self.view.map_prp(sqe.prp1(), sqe.prp2(), data.len(), page, &mut self.segs)?;
        // SAFETY: the segments map `data.len()` bytes of host memory.
        unsafe { dma::scatter(&self.segs, data.as_ptr(), data.len()) };
        Ok(())
    }

    fn receive_data(&mut self, sqe: &Sqe, len: usize) -> Result<Vec<u8>, Status> {
        let page = self.page();
        self.view.map_prp(sqe.prp1(), sqe.prp2(), len, page, &mut self.segs)?;
        let mut v = vec![0u8; len];
        // SAFETY: the segments map `len` bytes; `v` holds `len` bytes.
        unsafe { dma::gather(&self.segs, v.as_mut_ptr(), len) };
        Ok(v)
    }

    /// Executes an admin command. `None`: no completion now (Asynchronous Event Request).
    fn admin_command(&mut self, sqe: &Sqe) -> Option<(Status, u32)> {
        if sqe.psdt() != Psdt::Prp || sqe.fuse() != 0 {
            return Some((Status::INVALID_FIELD.with_dnr(true), 0));
        }
        let op = AdminOpcode::from(sqe.opcode());
        let r = match op {
            AdminOpcode::DeleteIoSq => self.delete_sq(sqe),
            AdminOpcode::CreateIoSq => self.create_sq(sqe),
            AdminOpcode::GetLogPage => self.get_log_page(sqe),
            AdminOpcode::DeleteIoCq => self.delete_cq(sqe),
            AdminOpcode::CreateIoCq => self.create_cq(sqe),
            AdminOpcode::Identify => self.identify(sqe),
            AdminOpcode::Abort => self.abort(sqe),
            AdminOpcode::SetFeatures => self.set_features(sqe),
            AdminOpcode::GetFeatures => self.get_features(sqe),
            AdminOpcode::AsyncEventRequest => {
                if self.aers.len() > AERL as usize {
                    Err(Status::AER_LIMIT_EXCEEDED)
                } else {
                    self.aers.push_back(sqe.cid());
                    return None;
                }
            }
            AdminOpcode::FirmwareDownload => self.firmware_download(sqe),
            AdminOpcode::FirmwareCommit => self.fw.commit(sqe.dw[10]).map(|()| 0),
            AdminOpcode::DeviceSelfTest => self.device_self_test(sqe),
            AdminOpcode::FormatNvm => self.format(sqe),
            AdminOpcode::Sanitize => self.sanitize(sqe),
            _ => Err(Status::INVALID_OPCODE.with_dnr(true)),
        };
        Some(match r {
            Ok(dw0) => (Status::SUCCESS, dw0),
            Err(st) => (st, 0),
        })
    }

    // ----- queue management (§5.3, §5.4, §5.5, §5.6) -----

    fn create_cq(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let qid = sqe.dw[10] as u16;
        let size = (sqe.dw[10] >> 16) + 1;
        let (pc, ien, iv) = (sqe.dw[11] & 1 != 0, sqe.dw[11] & 2 != 0, (sqe.dw[11] >> 16) as u16);
        let dnr = |s: Status| s.with_dnr(true);
        if qid == 0 || qid as u32 > self.feat.queues.cq || self.cqs.contains_key(&qid) {
            return Err(dnr(Status::INVALID_QUEUE_ID));
        }
        if size < 2 || size > self.sh.regs.cap.max_queue_entries() {
            return Err(dnr(Status::INVALID_QUEUE_SIZE));
        }
        if !sqe.prp1().is_multiple_of(self.page() as u64) {
            return Err(dnr(Status::INVALID_PRP_OFFSET));
        }
        // NVMe 2.0 Base §5.5 (IV): with pin-based interrupts (MSI-X disabled; MSI is not
        // offered) only vector 0 exists.
        if iv >= self.sh.cfg.interrupt_vectors || (iv != 0 && !self.sh.msix.enabled()) {
            return Err(dnr(Status::INVALID_INTERRUPT_VECTOR));
        }
        if self.last_cc.iocqes() != 4 {
            return Err(dnr(Status::INVALID_FIELD));
        }
        let mem = self.queue_mem(sqe.prp1(), pc, size as usize * CQE_BYTES as usize)?;
        let owner = 1 + qid as usize % self.io_tx.len();
        self.sh.regs.open_doorbell(qid, true, size, owner as u32);
        self.send_io(owner, IoMsg::AddCq(CqState::new(qid, mem, size).with_irq(ien.then_some(iv))));
        self.cqs.insert(qid, (owner, 0));
        Ok(0)
    }

    fn create_sq(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let qid = sqe.dw[10] as u16;
        let size = (sqe.dw[10] >> 16) + 1;
        let (pc, prio, cqid) = (sqe.dw[11] & 1 != 0, ((sqe.dw[11] >> 1) & 3) as u8, (sqe.dw[11] >> 16) as u16);
        let dnr = |s: Status| s.with_dnr(true);
        if cqid == 0 || !self.cqs.contains_key(&cqid) {
            return Err(dnr(Status::CQ_INVALID));
        }
        if qid == 0 || qid as u32 > self.feat.queues.sq || self.sqs.contains_key(&qid) {
            return Err(dnr(Status::INVALID_QUEUE_ID));
        }
        if size < 2 || size > self.sh.regs.cap.max_queue_entries() {
            return Err(dnr(Status::INVALID_QUEUE_SIZE));
        }
        if !sqe.prp1().is_multiple_of(self.page() as u64) {
            return Err(dnr(Status::INVALID_PRP_OFFSET));
        }
        if self.last_cc.iosqes() != 6 {
            return Err(dnr(Status::INVALID_FIELD));
        }
        let mem = self.queue_mem(sqe.prp1(), pc, size as usize * SQE_BYTES as usize)?;
        let entry = self.cqs.get_mut(&cqid).expect("checked above");
        entry.1 += 1;
        let owner = entry.0;
        self.sh.regs.open_doorbell(qid, false, size, owner as u32);
        self.send_io(owner, IoMsg::AddSq(SqState::new(qid, mem, size, cqid, prio)));
        self.sqs.insert(qid, (owner, cqid));
        Ok(0)
    }

    /// I/O queue memory from PRP1 (§4.1.2): contiguous, or (PC = 0, CAP.CQR = 0) a PRP
    /// list of its pages, read once here; the host keeps it unchanged while the queue lives.
    fn queue_mem(&mut self, prp1: u64, pc: bool, bytes: usize) -> Result<QueueMem, Status> {
        if pc {
            return Ok(QueueMem::Contig(prp1));
        }
        self.view.refresh();
        let page = self.page();
        let pages = self.view.queue_pages(prp1, bytes, page)?;
        Ok(QueueMem::Pages { pages, shift: page.trailing_zeros() })
    }

    fn delete_sq(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let qid = sqe.dw[10] as u16;
        let Some((owner, cqid)) = (qid != 0).then(|| self.sqs.get(&qid).copied()).flatten() else {
            return Err(Status::INVALID_QUEUE_ID.with_dnr(true));
        };
        self.sh.regs.close_doorbell(qid, false);
        self.call_io(owner, |ack| IoMsg::DeleteSq { qid, ack });
        self.sqs.remove(&qid);
        if let Some(c) = self.cqs.get_mut(&cqid) {
            c.1 -= 1;
        }
        Ok(0)
    }

    fn delete_cq(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let qid = sqe.dw[10] as u16;
        let Some((owner, nsq)) = (qid != 0).then(|| self.cqs.get(&qid).copied()).flatten() else {
            return Err(Status::INVALID_QUEUE_ID.with_dnr(true));
        };
        if nsq > 0 {
            return Err(Status::INVALID_QUEUE_DELETION.with_dnr(true));
        }
        self.sh.regs.close_doorbell(qid, true);
        self.call_io(owner, |ack| IoMsg::DeleteCq { qid, ack });
        self.cqs.remove(&qid);
        Ok(0)
    }

    fn abort(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let (sqid, cid) = (sqe.dw[10] as u16, (sqe.dw[10] >> 16) as u16);
        // Completion dword 0 bit 0: 0 = the command was aborted, 1 = it was not.
        if sqid == 0 {
            if let Some(pos) = self.aers.iter().position(|&c| c == cid) {
                self.aers.remove(pos);
                let sqhd = self.asq.as_ref().map_or(0, |s| s.head as u16);
                self.post_admin(Cqe::new(0, sqhd, 0, cid, Status::ABORT_REQUESTED));
                return Ok(0);
            }
            return Ok(1);
        }
        let Some(&(owner, _)) = self.sqs.get(&sqid) else { return Ok(1) };
        let (tx, rx) = mpsc::sync_channel(1);
        self.send_io(owner, IoMsg::Abort { sqid, cid, reply: tx });
        Ok(if rx.recv().unwrap_or(false) { 0 } else { 1 })
    }

    // ----- Identify (§5.15) -----

    fn identify(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let cns = sqe.dw[10] as u8;
        let nsid = sqe.nsid();
        let mut page = vec![0u8; 4096];
        match cns {
            cns::CONTROLLER => page.copy_from_slice(self.id_ctrl.as_bytes()),
            cns::NAMESPACE => {
                let ns = self.ns(nsid)?;
                page.copy_from_slice(identify_namespace(ns).as_bytes());
            }
            cns::ACTIVE_NS_LIST => {
                if nsid >= 0xFFFF_FFFE {
                    return Err(Status::INVALID_NAMESPACE.with_dnr(true));
                }
                let ids = (1..=self.sh.namespaces.len() as u32).filter(|&n| n > nsid).take(1024);
                for (i, n) in ids.enumerate() {
                    page[i * 4..i * 4 + 4].copy_from_slice(&n.to_le_bytes());
                }
            }
            cns::NS_DESCRIPTORS => {
                let ns = self.ns(nsid)?;
                // Type 1: IEEE EUI-64 (8 bytes); type 2: NGUID (16 bytes) (Figure 252).
                page[..4].copy_from_slice(&[1, 8, 0, 0]);
                page[4..12].copy_from_slice(&ns.eui64);
                page[12..16].copy_from_slice(&[2, 16, 0, 0]);
                page[16..32].copy_from_slice(&ns.nguid);
            }
            _ => return Err(Status::INVALID_FIELD.with_dnr(true)),
        }
        self.send_data(sqe, &page)?;
        Ok(0)
    }

    fn ns(&self, nsid: u32) -> Result<&super::namespace::Namespace, Status> {
        self.sh.namespaces.get((nsid as usize).wrapping_sub(1)).map(|n| n.as_ref()).ok_or(Status::INVALID_NAMESPACE.with_dnr(true))
    }

    // ----- Get Log Page (§5.14) -----

    fn get_log_page(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let g = GetLogPage::from_cdws(sqe.dw[10], sqe.dw[11], sqe.dw[12], sqe.dw[13]);
        if !g.offset.is_multiple_of(4) {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let (data, event_type): (Vec<u8>, Option<u8>) = match g.lid {
            lid::ERROR_INFORMATION => {
                let log = lock(&self.sh.errors);
                let mut v = Vec::with_capacity(super::ERROR_LOG_ENTRIES * 64);
                for e in log.entries.iter().rev() {
                    v.extend_from_slice(e.as_bytes());
                }
                v.resize(super::ERROR_LOG_ENTRIES * 64, 0);
                (v, Some(async_event::TYPE_ERROR))
            }
            lid::SMART_HEALTH => (self.smart_log().raw.to_vec(), Some(async_event::TYPE_SMART)),
            lid::FIRMWARE_SLOT => (self.fw.slot_log(), None),
            lid::SELF_TEST => {
                let poh = self.power_on_hours();
                (self.selftest.log(Instant::now(), poh), None)
            }
            lid::COMMANDS_EFFECTS => (commands_effects(), None),
            lid::SANITIZE_STATUS => {
                let mut v = vec![0u8; 512];
                // SPROG: the fraction done (of 65536) while in progress, FFFFh otherwise.
                let sprog = match self.sanitize_run {
                    Some((start, end)) => {
                        let total = end.saturating_duration_since(start).as_secs_f64().max(1e-9);
                        (start.elapsed().as_secs_f64() / total * 65536.0).min(65535.0) as u16
                    }
                    None => 0xFFFF,
                };
                v[0..2].copy_from_slice(&sprog.to_le_bytes());
                // SSTAT: status in bits 2:0; Global Data Erased (bit 8) while no user data
                // was written since manufacture or the last sanitize.
                let gde = (!self.sh.written.load(Ordering::Relaxed) as u16) << 8;
                v[2..4].copy_from_slice(&(self.sanitize_status | gde).to_le_bytes());
                v[4..8].copy_from_slice(&self.sanitize_cdw10.to_le_bytes());
                (v, Some(async_event::TYPE_IO_COMMAND_SPECIFIC))
            }
            _ => return Err(Status::INVALID_LOG_PAGE.with_dnr(true)),
        };
        if g.offset > data.len() as u64 {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let len = g.dwords as usize * 4;
        if len > self.max_admin_transfer() {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let mut out = vec![0u8; len];
        let avail = &data[g.offset as usize..];
        let n = avail.len().min(len);
        out[..n].copy_from_slice(&avail[..n]);
        self.send_data(sqe, &out)?;
        if let Some(t) = event_type
            && !g.rae
        {
            // Reading the log page clears the event and unmasks its type (§5.2).
            self.masked &= !(1 << t);
            self.sh.wakers[0].force_wake();
        }
        Ok(0)
    }

    /// MDTS bounds every data transfer, admin ones included (QEMU checks it too); without
    /// MDTS the simulator still refuses admin transfers above 16 MiB.
    fn max_admin_transfer(&self) -> usize {
        if self.sh.cfg.mdts == 0 { 16 << 20 } else { 4096usize << self.sh.cfg.mdts }
    }

    fn power_on_hours(&self) -> u64 {
        (self.powered_before + self.powered_since.elapsed()).as_secs() / 3600
    }

    // ----- Firmware Image Download (§5.11) and Device Self-test (§5.8); see firmware.rs
    // and selftest.rs -----

    fn firmware_download(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let at = self.fw.check_download(sqe.dw[10] as u64 + 1, sqe.dw[11] as u64)?;
        if at.len() > self.max_admin_transfer() {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let data = self.receive_data(sqe, at.len())?;
        self.fw.store(at, &data);
        Ok(0)
    }

    fn device_self_test(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let nsid = sqe.nsid();
        if nsid != 0 && nsid != u32::MAX {
            self.ns(nsid)?;
        }
        let durations = (self.sh.cfg.self_test_short, self.sh.cfg.self_test_extended);
        let poh = self.power_on_hours();
        self.selftest.command(sqe.dw[10] as u8 & 0xf, nsid, durations, Instant::now(), poh)?;
        Ok(0)
    }

    /// Composite temperature at or beyond a threshold (an under-temperature threshold of 0
    /// is never reached).
    fn temperature_alarm(&self) -> bool {
        TEMPERATURE_K >= self.feat.temp_over || TEMPERATURE_K <= self.feat.temp_under
    }

    fn smart_log(&self) -> SmartLog {
        let mut s = SmartLog::zeroed();
        let (mut reads, mut writes, mut r512, mut w512, mut media) = (0u128, 0u128, 0u128, 0u128, 0u128);
        for c in &self.sh.counters {
            reads += c.host_reads.load(Ordering::Relaxed) as u128;
            writes += c.host_writes.load(Ordering::Relaxed) as u128;
            r512 += c.read_512.load(Ordering::Relaxed) as u128;
            w512 += c.written_512.load(Ordering::Relaxed) as u128;
            media += c.media_errors.load(Ordering::Relaxed) as u128;
        }
        let mut warning = 0u8;
        if self.temperature_alarm() {
            warning |= 1 << 1;
        }
        s.set_critical_warning(warning);
        s.set_temperature_k(TEMPERATURE_K);
        s.set_available_spare(100, 10);
        s.set_data_units_read(data_units(r512));
        s.set_data_units_written(data_units(w512));
        s.set_host_read_commands(reads);
        s.set_host_write_commands(writes);
        s.set_power_cycles(self.power_cycles as u128);
        s.set_power_on_hours(self.power_on_hours() as u128);
        s.set_unsafe_shutdowns(self.unsafe_shutdowns as u128);
        s.set_media_errors(media);
        s.set_error_log_entries(lock(&self.sh.errors).count as u128);
        s
    }

    // ----- Features (§5.21) -----

    fn set_features(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let f = sqe.dw[10] as u8;
        let save = sqe.dw[10] & (1 << 31) != 0;
        let v = sqe.dw[11];
        if save {
            return Err(Status::FEATURE_NOT_SAVEABLE.with_dnr(true));
        }
        let invalid = Status::INVALID_FIELD.with_dnr(true);
        match f {
            fid::ARBITRATION => {
                self.feat.arbitration = Arbitration::from_dword(v);
                for t in self.io_threads() {
                    self.send_io(t, IoMsg::Arbitration { ams: self.last_cc.ams(), arb: self.feat.arbitration });
                }
            }
            fid::POWER_MANAGEMENT => {
                if v & 0x1f > NPSS as u32 {
                    return Err(invalid);
                }
                self.feat.power_state = v & 0xff;
            }
            fid::TEMPERATURE_THRESHOLD => {
                let (th, sel, kind) = (v as u16, (v >> 16) & 0xf, (v >> 20) & 3);
                if sel != 0 || kind > 1 {
                    return Err(invalid);
                }
                if kind == 0 {
                    self.feat.temp_over = th;
                } else {
                    self.feat.temp_under = th;
                }
                // Reported only when Asynchronous Event Configuration enables temperature
                // warnings (bit 1, Figure 291).
                if self.temperature_alarm() && self.feat.async_event_config & (1 << 1) != 0 {
                    // SMART / Health status: temperature threshold (Figure 146).
                    self.sh.raise_event(async_event::TYPE_SMART, 0x01, lid::SMART_HEALTH);
                }
            }
            fid::ERROR_RECOVERY => self.feat.error_recovery = v,
            fid::VOLATILE_WRITE_CACHE => {
                if !self.sh.cfg.write_cache {
                    return Err(invalid);
                }
                for ns in &self.sh.namespaces {
                    ns.set_cache_enabled(v & 1 != 0);
                }
            }
            fid::NUMBER_OF_QUEUES => {
                if !self.sqs.is_empty() || !self.cqs.is_empty() {
                    return Err(Status::COMMAND_SEQUENCE_ERROR.with_dnr(true));
                }
                if v & 0xffff == 0xffff || v >> 16 == 0xffff {
                    return Err(invalid);
                }
                // "The value allocated shall not change between resets": the first request
                // after a reset decides, later ones report the same allocation.
                if !self.feat.queues_set {
                    let req = NumberOfQueues::from_dword(v);
                    let max = self.sh.cfg.max_io_queues as u32;
                    self.feat.queues = NumberOfQueues { sq: req.sq.min(max), cq: req.cq.min(max) };
                    self.feat.queues_set = true;
                }
                return Ok(self.feat.queues.to_dword());
            }
            fid::INTERRUPT_COALESCING => {
                self.feat.irq_coalescing = v & 0xffff;
                self.sh.msix.set_coalescing(v);
            }
            fid::INTERRUPT_VECTOR_CONFIG => {
                if v & 0xffff >= self.sh.cfg.interrupt_vectors as u32 {
                    return Err(invalid);
                }
                self.feat.irq_vector_config = v;
                self.sh.msix.set_coalescing_disable(v as u16, v & 1 << 16 != 0);
            }
            fid::WRITE_ATOMICITY => self.feat.write_atomicity = v & 1,
            fid::ASYNC_EVENT_CONFIG => self.feat.async_event_config = v,
            fid::TIMESTAMP => {
                let d = self.receive_data(sqe, 8)?;
                let ms = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], 0, 0]);
                self.feat.timestamp = Some((ms, Instant::now()));
            }
            _ => return Err(invalid),
        }
        Ok(0)
    }

    fn feature_value(&self, f: u8, feat: &Features) -> Option<u32> {
        Some(match f {
            fid::ARBITRATION => feat.arbitration.to_dword(),
            fid::POWER_MANAGEMENT => feat.power_state,
            fid::TEMPERATURE_THRESHOLD => feat.temp_over as u32,
            fid::ERROR_RECOVERY => feat.error_recovery,
            fid::VOLATILE_WRITE_CACHE if self.sh.cfg.write_cache => self.sh.namespaces[0].cache_enabled() as u32,
            fid::NUMBER_OF_QUEUES => feat.queues.to_dword(),
            fid::INTERRUPT_COALESCING => feat.irq_coalescing,
            fid::INTERRUPT_VECTOR_CONFIG => feat.irq_vector_config,
            fid::WRITE_ATOMICITY => feat.write_atomicity,
            fid::ASYNC_EVENT_CONFIG => feat.async_event_config,
            fid::TIMESTAMP => 0,
            _ => return None,
        })
    }

    fn get_features(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let f = sqe.dw[10] as u8;
        let invalid = Status::INVALID_FIELD.with_dnr(true);
        let defaults = Features::defaults(self.sh.cfg.max_io_queues);
        let v = match Select::from_cdw10(sqe.dw[10]) {
            Select::Current => self.feature_value(f, &self.feat),
            Select::Default | Select::Saved => {
                if f == fid::VOLATILE_WRITE_CACHE && self.sh.cfg.write_cache {
                    Some(1)
                } else {
                    self.feature_value(f, &defaults)
                }
            }
            // Capabilities: changeable (bit 2), not saveable, not namespace specific.
            Select::Capabilities => self.feature_value(f, &defaults).map(|_| 1 << 2),
            Select::Reserved(_) => None,
        }
        .ok_or(invalid)?;
        if f == fid::TEMPERATURE_THRESHOLD && (sqe.dw[11] >> 20) & 3 == 1 {
            return Ok(self.feat.temp_under as u32);
        }
        if f == fid::TIMESTAMP && matches!(Select::from_cdw10(sqe.dw[10]), Select::Current) {
            let (base, at) = self.feat.timestamp.unwrap_or((0, self.powered_since));
            let ms = base + at.elapsed().as_millis() as u64;
            let mut d = ms.to_le_bytes();
            // Byte 6: Synch = 0, Timestamp Origin = 001b when set by Set Features.
            d[6] = if self.feat.timestamp.is_some() { 1 << 1 } else { 0 };
            d[7] = 0;
            self.send_data(sqe, &d)?;
        }
        Ok(v)
    }

    // ----- Format NVM (§5.23) and Sanitize (§5.24) -----

    fn pause_io(&self) -> Vec<Sender<()>> {
        let mut resumers = Vec::new();
        for t in self.io_threads() {
            let (rtx, rrx) = mpsc::channel();
            self.call_io(t, |ack| IoMsg::Pause { ack, resume: rrx });
            resumers.push(rtx);
        }
        resumers
    }

    fn format(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let c = sqe.dw[10];
        let (lbaf, pi, ses) = ((c & 0xf) as usize, (c >> 5) & 7, (c >> 9) & 7);
        let id = identify_namespace(&self.sh.namespaces[0]);
        if lbaf > id.nlbaf as usize || pi != 0 {
            return Err(Status::INVALID_FORMAT.with_dnr(true));
        }
        // User data erase and cryptographic erase (FNA bit 2): the simulator's media holds
        // no key, so both leave the blocks reading as deallocated.
        if ses > 2 {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let targets: Vec<usize> = match sqe.nsid() {
            u32::MAX => (0..self.sh.namespaces.len()).collect(),
            n if n >= 1 && (n as usize) <= self.sh.namespaces.len() => vec![n as usize - 1],
            _ => return Err(Status::INVALID_NAMESPACE.with_dnr(true)),
        };
        let lbads = id.lbaf[lbaf].lbads as u32;
        let resume = self.pause_io();
        for i in targets {
            self.sh.namespaces[i].erase(lbads);
        }
        drop(resume);
        let poh = self.power_on_hours();
        self.selftest.abort_for_format(poh);
        Ok(0)
    }

    fn sanitize(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        if self.sanitize_run.is_some() {
            return Err(Status::SANITIZE_IN_PROGRESS);
        }
        match sqe.dw[10] & 7 {
            // Exit Failure Mode: nothing failed, nothing to do.
            1 => Ok(0),
            // Block Erase (the only action SANICAP advertises).
            2 => {
                let resume = self.pause_io();
                for ns in &self.sh.namespaces {
                    ns.erase(ns.lba_shift());
                }
                drop(resume);
                // The command completes at once and the operation goes on in the
                // background (§8.15): in progress (SSTAT 2) until `sanitize_time` passed,
                // across resets and power cycles, as a drive resumes it.
                self.sanitize_status = 2;
                let now = Instant::now();
                self.sanitize_run = Some((now, now + self.sh.cfg.sanitize_time));
                self.sh.written.store(false, Ordering::Relaxed);
                self.sanitize_cdw10 = sqe.dw[10];
                let poh = self.power_on_hours();
                self.selftest.abort(selftest::RESULT_ABORTED_BY_SANITIZE, poh);
                Ok(0)
            }
            _ => Err(Status::INVALID_FIELD.with_dnr(true)),
        }
    }

    /// Completes a sanitize operation whose time has come: SSTAT 1, and the Sanitize
    /// Operation Completed event (NVMe 1.4 Figure 146: I/O command specific status, log
    /// page 81h).
    fn sanitize_progress(&mut self) -> usize {
        match self.sanitize_run {
            Some((_, end)) if Instant::now() >= end => {
                self.sanitize_run = None;
                self.sanitize_status = 1;
                self.sh.raise_event(async_event::TYPE_IO_COMMAND_SPECIFIC, async_event::SANITIZE_COMPLETED, lid::SANITIZE_STATUS);
                1
            }
            _ => 0,
        }
    }
}

/// Identify Controller data of the simulated controller.
fn identify_controller(sh: &Shared) -> IdentifyController {
    let cfg = &sh.cfg;
    let mut id = IdentifyController::zeroed();
    // The PCI IDs of the function's configuration space (Figure 247).
    (id.vid, id.ssvid) = (super::pcie::VENDOR_ID, super::pcie::VENDOR_ID);
    set_ascii_field(&mut id.sn, &cfg.serial);
    set_ascii_field(&mut id.mn, &cfg.model);
    set_ascii_field(&mut id.fr, env!("CARGO_PKG_VERSION"));
    id.rab = 3;
    id.mdts = cfg.mdts;
    id.ver = sh.regs.vs.0;
    id.cntrltype = 1;
    id.oacs = oacs::FORMAT | oacs::FIRMWARE | oacs::SELF_TEST;
    id.acl = 3;
    id.aerl = AERL;
    id.frmw = Firmware::frmw();
    id.fwug = firmware::FWUG;
    // Extended Device Self-test Time in minutes, rounded up; one test at a time (DSTO).
    id.edstt = cfg.self_test_extended.as_secs().div_ceil(60).max(1) as u16;
    id.dsto = 1;
    // Commands Supported and Effects log; extended Get Log Page (offsets, 32-bit NUMD).
    id.lpa = 1 << 1 | 1 << 2;
    id.elpe = (super::ERROR_LOG_ENTRIES - 1) as u8;
    id.npss = NPSS;
    // Cryptographic erase is supported as a secure erase of Format NVM.
    id.fna = 1 << 2;
    id.wctemp = WCTEMP;
    id.cctemp = CCTEMP;
    id.sanicap = 1 << 1;
    id.sqes = 0x66;
    id.cqes = 0x44;
    id.maxcmd = 0;
    id.nn = sh.namespaces.len() as u32;
    // Save/Select (bit 4): Get Features select values; no feature is saveable.
    id.oncs = oncs::COMPARE | oncs::WRITE_UNCORRECTABLE | oncs::DSM | oncs::WRITE_ZEROES | oncs::FEATURES_SAVE_SELECT | oncs::TIMESTAMP | oncs::VERIFY;
    id.vwc = if cfg.write_cache { 0b111 } else { 0 };
    if cfg.sgl {
        id.sgls = sgls::SUPPORTED_NO_ALIGN | if cfg.sgl_bit_bucket { sgls::BIT_BUCKET } else { 0 };
    }
    let nqn = format!("nqn.2026-11.io.nvplan:sim:{}", cfg.serial);
    let n = nqn.len().min(255);
    id.subnqn[..n].copy_from_slice(&nqn.as_bytes()[..n]);
    // Power states as a client SSD has them: 0-2 operational (25 W, 12 W, 5 W; MP in
    // centiwatts), 3-4 non-operational (NOPS, §5.15.2.1 Figure 248) at 50 mW and 5 mW with
    // longer entry and exit latencies (µs). The simulator runs the same in each.
    let states = [(2500u16, 0u32, 0u32, false), (1200, 100, 100, false), (500, 1000, 1000, false), (500, 5000, 10_000, true), (50, 10_000, 45_000, true)];
    for (i, (mp, enlat, exlat, nops)) in states.into_iter().enumerate() {
        let d = &mut id.psd[i];
        d[0..2].copy_from_slice(&mp.to_le_bytes());
        // MXPS (bit 0 of byte 3): MP of non-operational states is in 0.0001 W units.
        d[3] = if nops { 0b11 } else { 0 };
        d[4..8].copy_from_slice(&enlat.to_le_bytes());
        d[8..12].copy_from_slice(&exlat.to_le_bytes());
        d[12] = i as u8;
        d[13] = i as u8;
        d[14] = i as u8;
        d[15] = i as u8;
    }
    id
}

/// Identify Namespace data of one namespace in its current format.
fn identify_namespace(ns: &super::namespace::Namespace) -> IdentifyNamespace {
    let mut id = IdentifyNamespace::zeroed();
    let nlba = ns.nlba();
    id.nsze = nlba;
    id.ncap = nlba;
    id.nuse = nlba;
    id.nlbaf = 1;
    id.lbaf[0] = LbaFormat::new(9);
    id.lbaf[1] = LbaFormat { rp: 0, ..LbaFormat::new(12) };
    id.flbas = if ns.lba_shift() == 12 { 1 } else { 0 };
    // Deallocated blocks read as zeroes; Write Zeroes may deallocate.
    id.dlfeat = 0x01 | 1 << 3;
    id.nvmcap[..8].copy_from_slice(&ns.capacity().to_le_bytes());
    id.nguid = ns.nguid;
    id.eui64 = ns.eui64;
    id
}

/// Commands Supported and Effects log (§5.14.1.5), built from the tables that gate
/// dispatch, so what is reported and what is accepted cannot disagree.
fn commands_effects() -> Vec<u8> {
    let mut v = vec![0u8; 4096];
    let mut set = |base: usize, op: u8, bits: u32| v[base + op as usize * 4..base + op as usize * 4 + 4].copy_from_slice(&bits.to_le_bytes());
    for &op in ADMIN_SUPPORTED {
        let bits = match op {
            // CSUPP | LBCC | NCC, and no concurrent commands to the namespace (CSE = 001b).
            AdminOpcode::FormatNvm | AdminOpcode::Sanitize => 1 | 1 << 1 | 1 << 2 | 1 << 16,
            // CSUPP | CCC: an activated image changes Identify Controller (FR).
            AdminOpcode::FirmwareCommit => 1 | 1 << 4,
            _ => 1,
        };
        set(0, op.code(), bits);
    }
    for &op in IO_SUPPORTED {
        let changes = matches!(op, NvmOpcode::Write | NvmOpcode::WriteZeroes | NvmOpcode::WriteUncorrectable | NvmOpcode::DatasetManagement);
        set(1024, op.code(), 1 | (changes as u32) << 1);
    }
    v
}
