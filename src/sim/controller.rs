//! The controller thread: the CC/CSTS state machine (NVMe 1.4 §7.6), resets and power,
//! the admin queue and its dispatch, I/O queue creation and deletion (§5), feature values
//! and asynchronous events. The admin commands' own handlers are in `admin.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use super::admin::identify_controller;
use super::dma::{self, DmaView, Seg};
use super::fault::{FaultAction, FaultQueue};
use super::firmware::Firmware;
use super::io::IoMsg;
use super::queue::{CQE_BYTES, CqState, QueueMem, SQE_BYTES, SqState};
use super::regs::Idle;
use super::selftest::SelfTest;
use super::{CtrlMsg, Shared, lock};
use crate::nvme::features::{Arbitration, NumberOfQueues};
use crate::nvme::identify::IdentifyController;
use crate::nvme::opcode::AdminOpcode;
use crate::nvme::regs::{Cc, Csts, ShutdownNotification, offset};
use crate::nvme::sqe::Psdt;
use crate::nvme::{Cqe, Sqe, Status};

/// Arbitration feature value after reset: burst of 8, all weights 1.
pub(crate) const DEFAULT_ARBITRATION: Arbitration = Arbitration { burst: 3, low: 0, medium: 0, high: 0 };
/// Warning and critical composite temperature thresholds, Kelvin.
pub(super) const WCTEMP: u16 = 343;
pub(super) const CCTEMP: u16 = 358;
/// Asynchronous Event Request Limit, 0's based.
pub(super) const AERL: u8 = 3;

/// Current feature values (§5.21.1).
#[derive(Clone)]
pub(super) struct Features {
    pub(super) arbitration: Arbitration,
    pub(super) power_state: u32,
    pub(super) temp_over: u16,
    pub(super) temp_under: u16,
    pub(super) error_recovery: u32,
    pub(super) irq_coalescing: u32,
    pub(super) irq_vector_config: u32,
    pub(super) write_atomicity: u32,
    pub(super) async_event_config: u32,
    pub(super) timestamp: Option<(u64, Instant)>,
    pub(super) queues: NumberOfQueues,
    /// Number of Queues was set since the last reset: the allocation is fixed (§5.21.1.7).
    pub(super) queues_set: bool,
}

impl Features {
    pub(super) fn defaults(max_queues: u16) -> Self {
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
    pub(super) sh: Arc<Shared>,
    rx: Receiver<CtrlMsg>,
    io_tx: Vec<Sender<IoMsg>>,
    view: DmaView,
    pub(super) last_cc: Cc,
    enabled: bool,
    ready_at: Option<Instant>,
    asq: Option<SqState>,
    acq: Option<CqState>,
    /// I/O SQs: qid -> (owner thread, cqid).
    pub(super) sqs: HashMap<u16, (usize, u16)>,
    /// I/O CQs: qid -> (owner thread, SQs attached).
    pub(super) cqs: HashMap<u16, (usize, u32)>,
    pub(super) feat: Features,
    aers: VecDeque<u16>,
    /// Event types (bit per type) reported and not yet cleared by reading their log page.
    pub(super) masked: u8,
    admin_pending: Vec<(Instant, Cqe)>,
    segs: Vec<Seg>,
    pub(super) id_ctrl: IdentifyController,
    clean_shutdown: bool,
    pub(super) power_cycles: u64,
    pub(super) unsafe_shutdowns: u64,
    pub(super) powered_since: Instant,
    pub(super) powered_before: Duration,
    pub(super) sanitize_status: u16,
    pub(super) sanitize_cdw10: u32,
    /// A sanitize operation in progress: when it started and when it completes.
    pub(super) sanitize_run: Option<(Instant, Instant)>,
    pub(super) fw: Firmware,
    pub(super) selftest: SelfTest,
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

    pub(super) fn send_io(&self, thread: usize, msg: IoMsg) {
        self.sh.msg_counts[thread].fetch_add(1, Ordering::SeqCst);
        if self.io_tx[thread - 1].send(msg).is_err() {
            self.sh.msg_counts[thread].fetch_sub(1, Ordering::SeqCst);
        }
        self.sh.wakers[thread].force_wake();
    }

    /// Sends a message that carries an acknowledgement and waits for it.
    pub(super) fn call_io(&self, thread: usize, make: impl FnOnce(mpsc::SyncSender<()>) -> IoMsg) {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send_io(thread, make(tx));
        let _ = rx.recv();
    }

    pub(super) fn io_threads(&self) -> std::ops::RangeInclusive<usize> {
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

    pub(super) fn send_data(&mut self, sqe: &Sqe, data: &[u8]) -> Result<(), Status> {
        let page = self.page();
        self.view.map_prp(sqe.prp1(), sqe.prp2(), data.len(), page, &mut self.segs)?;
        // SAFETY: the segments map `data.len()` bytes of host memory.
        unsafe { dma::scatter(&self.segs, data.as_ptr(), data.len()) };
        Ok(())
    }

    pub(super) fn receive_data(&mut self, sqe: &Sqe, len: usize) -> Result<Vec<u8>, Status> {
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
}
