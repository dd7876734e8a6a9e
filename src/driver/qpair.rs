//! I/O queue pairs: one SQ and one CQ with the same ID, owned by one thread.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::controller::{Controller, check, list_pages_for};
use super::error::DriverError;
use super::queue::{Completion, CplKind, DataPtr, QueueCore, SubmitError};
use crate::nvme::opcode::NvmOpcode;
use crate::nvme::{Cqe, Sqe, cmd};

/// How to create a queue pair.
#[derive(Clone, Copy, Debug)]
pub struct QpairOptions {
    /// Entries per queue; up to `entries - 1` commands can be outstanding.
    pub entries: u32,
    /// SQ priority class for weighted round robin (0 urgent, 1 high, 2 medium, 3 low).
    pub prio: u8,
    /// Interrupts Enabled (IEN) of the CQ: completions signal `iv` (NVMe 1.4 §5.3). Off by
    /// default: the driver polls.
    pub ien: bool,
    /// Interrupt Vector (IV) of the CQ; None: the queue's ID while MSI-X is enabled, else 0.
    pub iv: Option<u16>,
}

impl Default for QpairOptions {
    fn default() -> Self {
        QpairOptions { entries: 64, prio: 0, ien: false, iv: Some(0) }
    }
}

/// An I/O queue pair. Submission and completion are lock-free and allocation-free; the
/// pair belongs to one thread at a time. Dropping it deletes the queues on the controller.
pub struct QPair {
    ctrl: Controller,
    core: QueueCore,
    generation: u64,
    /// The CQ's interrupt vector, when IEN = 1.
    irq: Option<u16>,
}

impl std::fmt::Debug for QPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QPair").field("core", &self.core).field("generation", &self.generation).finish()
    }
}

impl QPair {
    pub(crate) fn create(ctrl: &Controller, opts: QpairOptions) -> Result<QPair, DriverError> {
        let cap = ctrl.cap();
        // QPRIO only counts under weighted round robin (NVMe 1.4 §4.13, §5.4): asked for
        // under round robin it would be silently ignored, so the request is refused.
        if opts.prio != 0 && ctrl.cc().ams() == 0 {
            return Err(DriverError::InvalidArgument(format!(
                "queue priority {} has no effect under round robin arbitration (CC.AMS = 000b); bring the controller up with weighted round robin",
                opts.prio
            )));
        }
        if opts.entries < 2 || opts.entries > cap.max_queue_entries() {
            return Err(DriverError::InvalidArgument(format!("queue entries {} outside 2..={} (CAP.MQES + 1)", opts.entries, cap.max_queue_entries())));
        }
        let info = ctrl.info();
        let qid = ctrl.alloc_qid().ok_or(DriverError::NoQueueId(info.io_queues.sq.min(info.io_queues.cq)))?;
        let generation = ctrl.generation();
        let page = ctrl.page_size();
        let pages = list_pages_for(info.max_transfer, page);
        let iv = opts.iv.unwrap_or_else(|| super::msix::default_vector(ctrl.transport().as_ref(), qid));
        let build = || -> Result<QueueCore, DriverError> {
            let core = QueueCore::new(ctrl.transport().clone(), qid, opts.entries, page, pages, cap.dstrd(), ctrl.options().command_timeout)?;
            ctrl.admin(&cmd::create_io_cq(qid, opts.entries, core.cq_memory().iova(), iv, opts.ien))?;
            if let Err(e) = ctrl.admin(&cmd::create_io_sq(qid, opts.entries, core.sq_memory().iova(), qid, opts.prio)) {
                let _ = ctrl.admin(&cmd::delete_io_cq(qid));
                return Err(e);
            }
            Ok(core)
        };
        match build() {
            Ok(core) => Ok(QPair { ctrl: ctrl.clone(), core, generation, irq: opts.ien.then_some(iv) }),
            Err(e) => {
                ctrl.free_qid(qid);
                Err(e)
            }
        }
    }

    /// Queue ID.
    pub fn qid(&self) -> u16 {
        self.core.qid()
    }
    /// The CQ's interrupt vector if it was created with interrupts enabled.
    pub fn interrupt_vector(&self) -> Option<u16> {
        self.irq
    }
    /// Entries per queue.
    pub fn entries(&self) -> u32 {
        self.core.entries()
    }
    /// Commands outstanding.
    pub fn outstanding(&self) -> u32 {
        self.core.outstanding()
    }
    /// Commands that can still be submitted.
    pub fn free_slots(&self) -> usize {
        self.core.free_slots()
    }
    /// The controller the pair belongs to.
    pub fn controller(&self) -> &Controller {
        &self.ctrl
    }
    /// The per-command timeout.
    pub fn set_timeout(&mut self, t: Duration) {
        self.core.set_timeout(t);
    }
    /// The controller generation the pair was created in.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// Whether the controller still has this pair (no reset or power cycle since).
    pub fn is_valid(&self) -> bool {
        self.ctrl.inner.generation.load(Ordering::Acquire) == self.generation
    }
    /// Completions whose CID was not outstanding (a controller bug if not zero).
    pub fn spurious_completions(&self) -> u64 {
        self.core.spurious_completions()
    }

    /// Places a command in the SQ (doorbell written by [`QPair::ring`]); returns its CID.
    #[inline]
    pub fn submit(&mut self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64) -> Result<u16, SubmitError> {
        self.core.submit(sqe, data, ctx)
    }

    /// Like [`QPair::submit`], with the submission time given by the caller.
    #[inline]
    pub fn submit_at(&mut self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64, now: std::time::Instant) -> Result<u16, SubmitError> {
        self.core.submit_at(sqe, data, ctx, now)
    }

    /// Dword 0 and dwords 6..9 (PSDT, data pointer) of the command last sent with `cid`.
    #[inline]
    pub fn sent_dptr(&self, cid: u16) -> [u32; 5] {
        self.core.sent_dptr(cid)
    }

    /// Writes the SQ tail doorbell once for everything submitted since the last ring.
    #[inline]
    pub fn ring(&mut self) {
        self.core.ring();
    }

    /// Reaps up to `max` completions; commands outstanding past the timeout are reported
    /// as timed out. Once a reset or power loss has begun, every outstanding command is
    /// reported aborted as soon as the controller has stopped, and not before: until then
    /// it may still move their data, so their buffers are not the host's again yet (a
    /// controller with CC.EN = 0 processes no command once CSTS.RDY = 0, §7.3.2). Nothing
    /// is reaped meanwhile: the pair's doorbells are not written during a reset.
    #[inline]
    pub fn poll(&mut self, max: usize, f: impl FnMut(&Completion)) -> usize {
        if !self.is_valid() {
            return if self.controller_stopped() { self.core.abort_all(f) } else { 0 };
        }
        self.core.poll(max, f)
    }

    /// Whether the controller no longer processes this pair's commands: stopped by the
    /// driver since the pair's generation, or, reset by someone else, halted.
    fn controller_stopped(&self) -> bool {
        self.ctrl.stopped_since(self.generation) || self.ctrl.csts().halted()
    }

    /// Submits one command, rings, and waits for its completion.
    pub fn execute(&mut self, sqe: &Sqe, data: DataPtr<'_>) -> Result<Completion, DriverError> {
        let what = NvmOpcode::from(sqe.opcode()).name();
        if !self.is_valid() {
            return Err(DriverError::QpairGone { qid: self.qid() });
        }
        let cid = self.core.submit(sqe, data, u64::MAX).map_err(|source| DriverError::Submit { what, source })?;
        self.core.ring();
        let mut mine = None;
        let deadline = Instant::now() + self.core.timeout() + Duration::from_millis(100);
        loop {
            self.poll(usize::MAX, |c| {
                if c.cid() == cid {
                    mine = Some(*c);
                }
            });
            if let Some(c) = mine {
                return Ok(c);
            }
            if Instant::now() > deadline {
                return Err(DriverError::CommandTimeout { what, cid, after: self.core.timeout() });
            }
            std::hint::spin_loop();
        }
    }

    /// Like [`QPair::execute`], but a failing status or a timeout is an error.
    pub fn execute_ok(&mut self, sqe: &Sqe, data: DataPtr<'_>) -> Result<Cqe, DriverError> {
        let what = NvmOpcode::from(sqe.opcode()).name();
        let c = self.execute(sqe, data)?;
        match c.kind {
            CplKind::Device => check(what, c.cqe),
            CplKind::TimedOut => Err(DriverError::CommandTimeout { what, cid: c.cid(), after: self.core.timeout() }),
            CplKind::Aborted => Err(DriverError::QpairGone { qid: self.qid() }),
        }
    }
}

impl Drop for QPair {
    fn drop(&mut self) {
        let csts = self.ctrl.csts();
        if self.is_valid() && csts.rdy() && !csts.cfs() && !csts.is_all_ones() {
            // Delete SQ before CQ (§5.5); failures only mean the controller is gone.
            let _ = self.ctrl.admin(&cmd::delete_io_sq(self.qid()));
            let _ = self.ctrl.admin(&cmd::delete_io_cq(self.qid()));
            self.ctrl.free_qid(self.qid());
        }
    }
}
