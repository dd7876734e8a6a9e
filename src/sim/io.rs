//! I/O processing threads: arbitration over the submission queues a thread owns, NVM
//! command execution (NVM Command Set 1.0 / NVMe 1.4 §6), and completion posting with the
//! latency model.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::Duration;

use super::dma::{DmaView, Seg, SglCaps, seg_len};
use super::fault::{FaultAction, FaultQueue};
use super::namespace::Namespace;
use super::queue::{CqState, SqState};
use super::regs::Idle;
use super::{Counters, Shared};
use crate::nvme::features::Arbitration;
use crate::nvme::opcode::{DataDirection, NvmOpcode};
use crate::nvme::sqe::Psdt;
use crate::nvme::{Cqe, Sqe, Status};
use crate::util::rng::Rng;

pub(crate) enum IoMsg {
    AddCq(CqState),
    AddSq(SqState),
    DeleteSq {
        qid: u16,
        ack: SyncSender<()>,
    },
    DeleteCq {
        qid: u16,
        ack: SyncSender<()>,
    },
    /// Controller reset or power loss: drop every queue and everything in flight.
    Reset {
        ack: SyncSender<()>,
    },
    /// Stop processing until `resume` yields (Format NVM, Sanitize).
    Pause {
        ack: SyncSender<()>,
        resume: Receiver<()>,
    },
    Abort {
        sqid: u16,
        cid: u16,
        reply: SyncSender<bool>,
    },
    Arbitration {
        ams: u8,
        arb: Arbitration,
    },
}

/// A completion waiting for its latency to pass.
struct Pending {
    due: u64,
    seq: u64,
    sqid: u16,
    cqid: u16,
    cqe: Cqe,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(o.due, o.seq))
    }
}

/// When a command's completion is posted.
enum Post {
    Now,
    At(u64),
    Never,
}

/// The result of executing one command.
struct Outcome {
    status: Status,
    dw0: u32,
    post: Post,
}

impl Outcome {
    fn done(status: Status) -> Self {
        Outcome { status, dw0: 0, post: Post::Now }
    }
}

/// Per-thread execution context: everything a command needs except the queues.
struct Exec {
    shared: Arc<Shared>,
    view: DmaView,
    segs: Vec<Seg>,
    scratch: Vec<u8>,
    rng: Rng,
    counters: Arc<Counters>,
    sgl_caps: SglCaps,
    max_transfer: Option<usize>,
    zero_latency: bool,
    /// Garbage collection's extra latency for the write being executed.
    gc_delay: u64,
}

/// How long an I/O thread with completions waiting for CQ room sleeps before it reads the
/// head doorbells again (the host's writes of them wake no one).
const OVERFLOW_RECHECK: Duration = Duration::from_micros(50);

pub(crate) struct IoThread {
    idx: usize,
    rx: Receiver<IoMsg>,
    exec: Exec,
    sqs: Vec<SqState>,
    cqs: Vec<Option<CqState>>,
    /// The ids of the CQs in `cqs`: the loop looks at these, not at every id there may be.
    cq_ids: Vec<u16>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    rr_next: usize,
    ams: u8,
    arb: Arbitration,
}

impl IoThread {
    pub(crate) fn new(idx: usize, shared: Arc<Shared>, rx: Receiver<IoMsg>) -> Self {
        let cfg = &shared.cfg;
        let exec = Exec {
            view: super::dma::view(&shared.dma),
            segs: Vec::with_capacity(64),
            scratch: Vec::new(),
            rng: Rng::stream(cfg.seed, idx as u64),
            counters: shared.counters[idx].clone(),
            sgl_caps: SglCaps { bit_bucket: cfg.sgl_bit_bucket, excess_length: false },
            max_transfer: (cfg.mdts != 0).then(|| 4096usize << cfg.mdts),
            zero_latency: cfg.latency.io.iter().all(|l| *l == Default::default()) && cfg.gc.is_none(),
            gc_delay: 0,
            shared: shared.clone(),
        };
        IoThread {
            idx,
            rx,
            exec,
            sqs: Vec::new(),
            cqs: (0..=cfg.max_io_queues).map(|_| None).collect(),
            cq_ids: Vec::new(),
            pending: BinaryHeap::new(),
            seq: 0,
            rr_next: 0,
            ams: 0,
            arb: super::controller::DEFAULT_ARBITRATION,
        }
    }

    fn shared(&self) -> &Shared {
        &self.exec.shared
    }

    pub(crate) fn run(mut self) {
        self.shared().wakers[self.idx].register_current();
        let mut idle = Idle::new(self.shared().cfg.idle_spin);
        loop {
            if self.shared().stop.load(Ordering::Relaxed) {
                return;
            }
            let mut work = self.handle_msgs();
            if !self.shared().fatal.load(Ordering::Relaxed) {
                work += self.post_due();
                work += self.process();
            }
            if !idle.should_sleep(work) {
                continue;
            }
            let due = self.pending.peek().map(|Reverse(p)| p.due).into_iter().chain(self.shared().msix.next_due()).min();
            let mut timeout = match due {
                Some(due) => Duration::from_nanos(due.saturating_sub(self.shared().now_ns())).min(Duration::from_millis(10)),
                None => Duration::from_millis(100),
            };
            if self.owned_cqs().any(|c| !c.overflow.is_empty()) {
                // Completions wait for the host to move a CQ's head, which wakes no one.
                timeout = timeout.min(OVERFLOW_RECHECK);
            }
            let shared = self.exec.shared.clone();
            shared.wakers[self.idx].sleep(timeout, || self.has_work());
        }
    }

    fn owned_cqs(&self) -> impl Iterator<Item = &CqState> {
        self.cq_ids.iter().filter_map(|&q| self.cqs[q as usize].as_ref())
    }

    /// Whether anything would be done if the loop ran now (checked before sleeping).
    fn has_work(&self) -> bool {
        let sh = self.shared();
        if sh.msg_counts[self.idx].load(Ordering::SeqCst) > 0 || sh.stop.load(Ordering::SeqCst) {
            return true;
        }
        if sh.fatal.load(Ordering::SeqCst) {
            return false;
        }
        self.sqs.iter().any(|s| s.has_work(&sh.regs)) || self.owned_cqs().any(|c| !c.overflow.is_empty() && !c.is_full(&sh.regs))
    }

    fn handle_msgs(&mut self) -> usize {
        // The count goes up before a message is sent: a load is cheaper than the channel's
        // try_recv, which this loop would otherwise run between every run of commands.
        if self.shared().msg_counts[self.idx].load(Ordering::Acquire) == 0 {
            return 0;
        }
        let mut n = 0;
        while let Ok(msg) = self.rx.try_recv() {
            self.shared().msg_counts[self.idx].fetch_sub(1, Ordering::SeqCst);
            n += 1;
            match msg {
                IoMsg::AddCq(cq) => {
                    let q = cq.qid;
                    self.cqs[q as usize] = Some(cq);
                    if !self.cq_ids.contains(&q) {
                        self.cq_ids.push(q);
                    }
                }
                IoMsg::AddSq(sq) => {
                    self.sqs.push(sq);
                    // Urgent first, then high, medium, low (stable within a class).
                    let ams = self.ams;
                    self.sqs.sort_by_key(|s| if ams == 1 { s.prio } else { 0 });
                }
                IoMsg::DeleteSq { qid, ack } => {
                    self.delete_sq(qid);
                    let _ = ack.send(());
                }
                IoMsg::DeleteCq { qid, ack } => {
                    self.cqs[qid as usize] = None;
                    self.cq_ids.retain(|&q| q != qid);
                    let _ = ack.send(());
                }
                IoMsg::Reset { ack } => {
                    self.sqs.clear();
                    self.cqs.iter_mut().for_each(|c| *c = None);
                    self.cq_ids.clear();
                    self.pending.clear();
                    let _ = ack.send(());
                }
                IoMsg::Pause { ack, resume } => {
                    let _ = ack.send(());
                    let _ = resume.recv();
                }
                IoMsg::Abort { sqid, cid, reply } => {
                    let found = self.abort(sqid, cid);
                    let _ = reply.send(found);
                }
                IoMsg::Arbitration { ams, arb } => {
                    self.ams = ams;
                    self.arb = arb;
                    self.sqs.sort_by_key(|s| if ams == 1 { s.prio } else { 0 });
                }
            }
        }
        n
    }

    /// Delete I/O SQ: commands of the queue that have not completed are completed with
    /// Command Aborted due to SQ Deletion before the queue goes (§5.6).
    fn delete_sq(&mut self, qid: u16) {
        let Some(pos) = self.sqs.iter().position(|s| s.qid == qid) else { return };
        let sq = self.sqs.remove(pos);
        let mut keep = BinaryHeap::new();
        for Reverse(mut p) in std::mem::take(&mut self.pending) {
            if p.sqid == qid {
                p.cqe = Cqe::new(0, sq.head as u16, qid, p.cqe.cid(), Status::ABORTED_SQ_DELETION);
                self.post(p.cqid, p.cqe);
            } else {
                keep.push(Reverse(p));
            }
        }
        self.pending = keep;
    }

    fn abort(&mut self, sqid: u16, cid: u16) -> bool {
        let mut found = false;
        let mut keep = BinaryHeap::new();
        for Reverse(mut p) in std::mem::take(&mut self.pending) {
            if !found && p.sqid == sqid && p.cqe.cid() == cid {
                found = true;
                p.cqe = Cqe::new(0, p.cqe.sqhd(), sqid, cid, Status::ABORT_REQUESTED);
                self.post(p.cqid, p.cqe);
            } else {
                keep.push(Reverse(p));
            }
        }
        self.pending = keep;
        found
    }

    fn post(&mut self, cqid: u16, cqe: Cqe) {
        let Exec { shared, view, .. } = &self.exec;
        if let Some(cq) = self.cqs[cqid as usize].as_mut() {
            match cq.post_or_queue(view, &shared.regs, cqe) {
                Ok(true) => {
                    if let Some(iv) = cq.irq {
                        shared.msix.signal(iv, view, true, || shared.now_ns());
                    }
                }
                Ok(false) => {}
                Err(_) => shared.set_fatal(),
            }
        }
    }

    fn post_due(&mut self) -> usize {
        let mut n = 0;
        let Exec { shared, view, .. } = &self.exec;
        if shared.msix.next_due().is_some() {
            shared.msix.fire_due(shared.now_ns(), view);
        }
        for &q in &self.cq_ids {
            let Some(cq) = self.cqs[q as usize].as_mut() else { continue };
            if !cq.overflow.is_empty() {
                match cq.drain_overflow(view, &shared.regs) {
                    Ok(k) => {
                        n += k;
                        if let Some(iv) = cq.irq {
                            for _ in 0..k {
                                shared.msix.signal(iv, view, true, || shared.now_ns());
                            }
                        }
                    }
                    Err(_) => shared.set_fatal(),
                }
            }
        }
        if self.pending.is_empty() {
            return n;
        }
        let now = shared.now_ns();
        while let Some(Reverse(p)) = self.pending.peek() {
            if p.due > now {
                break;
            }
            let Reverse(p) = self.pending.pop().expect("peeked");
            // SQHD reports the head at the time the completion is posted.
            let sqhd = self.sqs.iter().find(|s| s.qid == p.sqid).map_or(p.cqe.sqhd(), |s| s.head as u16);
            let mut cqe = p.cqe;
            cqe.dw[2] = sqhd as u32 | (p.sqid as u32) << 16;
            self.post(p.cqid, cqe);
            n += 1;
        }
        n
    }

    /// Commands a queue of this priority class may start per arbitration round (§4.13).
    fn budget(&self, prio: u8) -> usize {
        let burst = if self.arb.burst >= 7 { 64 } else { 1usize << self.arb.burst };
        if self.ams != 1 {
            return burst;
        }
        match prio {
            0 => burst,
            1 => burst * (self.arb.high as usize + 1),
            2 => burst * (self.arb.medium as usize + 1),
            _ => burst * (self.arb.low as usize + 1),
        }
    }

    /// One arbitration round over the owned submission queues.
    fn process(&mut self) -> usize {
        let n = self.sqs.len();
        if n == 0 || !self.sqs.iter().any(|s| s.has_work(&self.exec.shared.regs)) {
            return 0;
        }
        let mut done = 0;
        // `self.exec.shared` is borrowed where it is used, not cloned: the clone and drop
        // of the Arc were two locked instructions per round, each waiting for the stores of
        // the data just sent to the host.
        // Round robin starts one queue later each round; with WRR the queues are sorted
        // by class, so urgent queues are always served first.
        let start = if self.ams == 1 { 0 } else { self.rr_next % n };
        self.rr_next = self.rr_next.wrapping_add(1);
        for k in 0..n {
            let i = (start + k) % n;
            let budget = self.budget(self.sqs[i].prio);
            let cqid = self.sqs[i].cqid as usize;
            let mut taken = 0;
            // The tail is read once per run of commands, not per command: every read of
            // the doorbell takes its cache line from the host that writes it.
            let mut tail = self.sqs[i].head;
            while taken < budget {
                let Some(cq) = self.cqs[cqid].as_ref() else { break };
                if !cq.overflow.is_empty() {
                    break;
                }
                let sq = &mut self.sqs[i];
                if sq.head == tail {
                    tail = sq.tail(&self.exec.shared.regs);
                    if sq.head == tail {
                        break;
                    }
                }
                // A fatal error raised before the host rang is visible after the doorbell's
                // acquire load: from then on nothing more is executed.
                if self.exec.shared.fatal.load(Ordering::Acquire) {
                    return done;
                }
                // After the doorbell's acquire load: mappings the host made before ringing
                // are visible now, not necessarily at the top of the loop.
                self.exec.view.refresh();
                let Some(sqe) = sq.fetch(&self.exec.view) else {
                    self.exec.shared.set_fatal();
                    return done;
                };
                let (sqid, sqhd) = (sq.qid, sq.head as u16);
                // Start loading the next command's data while this one executes, and the
                // index entry of the one after it (so the next data prefetch does not wait
                // for it), as a drive's controller pipelines its fetches.
                if sq.head != tail
                    && let Some(next) = sq.peek_target(&self.exec.view, 0)
                {
                    self.exec.prefetch(next, false);
                    if (sq.head + 1) % sq.size != tail
                        && let Some(after) = sq.peek_target(&self.exec.view, 1)
                    {
                        self.exec.prefetch(after, true);
                    }
                }
                Counters::add(&self.exec.counters.commands, 1);
                // The phase tag of the slot the completion goes to (exact when it is posted
                // at once; with latency or a full queue it may land one pass later).
                let phase = self.cqs[cqid].as_ref().is_none_or(|c| c.phase);
                let out = self.exec.execute(&sqe, sqid, phase);
                let cqe = Cqe::new(out.dw0, sqhd, sqid, sqe.cid(), out.status);
                match out.post {
                    Post::Now => self.post(cqid as u16, cqe),
                    Post::At(due) => {
                        self.seq += 1;
                        self.pending.push(Reverse(Pending { due, seq: self.seq, sqid, cqid: cqid as u16, cqe }));
                    }
                    Post::Never => {}
                }
                taken += 1;
            }
            done += taken;
        }
        done
    }
}

impl Exec {
    /// Warms the caches for a read that is about to run: its data, or only where the
    /// index keeps its place (`index_only`, for one further off).
    #[inline]
    fn prefetch(&self, (opcode, nsid, slba): (u8, u32, u64), index_only: bool) {
        if opcode == NvmOpcode::Read.code()
            && let Some(ns) = self.shared.namespaces.get((nsid as usize).wrapping_sub(1))
        {
            if index_only { ns.prefetch_index(slba) } else { ns.prefetch(slba) }
        }
    }

    fn execute(&mut self, sqe: &Sqe, sqid: u16, phase: bool) -> Outcome {
        let fault = self.shared.faults.take(FaultQueue::Io, sqe);
        if let Some(FaultAction::Fail(st)) = fault {
            return self.finish(sqe, sqid, phase, Outcome::done(st), None);
        }
        let out = self.dispatch(sqe, fault);
        self.finish(sqe, sqid, phase, out, fault)
    }

    fn finish(&mut self, sqe: &Sqe, sqid: u16, phase: bool, mut out: Outcome, fault: Option<FaultAction>) -> Outcome {
        let gc = std::mem::take(&mut self.gc_delay);
        let st = out.status;
        if !st.is_success() && !st.same_code(Status::ABORT_REQUESTED) {
            self.shared.log_error(sqid, sqe.cid(), st, phase, sqe.slba(), sqe.nsid());
            if st.same_code(Status::UNRECOVERED_READ_ERROR) {
                Counters::add(&self.counters.media_errors, 1);
            }
        }
        let extra = match fault {
            Some(FaultAction::DropCompletion) => {
                out.post = Post::Never;
                return out;
            }
            Some(FaultAction::Delay(d)) => d.as_nanos() as u64,
            _ => 0,
        } + gc;
        if !self.zero_latency || extra > 0 {
            let l = self.shared.cfg.latency.io[sqe.opcode() as usize];
            let jitter = l.jitter.as_nanos() as u64;
            let delay = l.fixed.as_nanos() as u64 + if jitter > 0 { self.rng.below(jitter + 1) } else { 0 } + extra;
            if delay > 0 {
                out.post = Post::At(self.shared.now_ns() + delay);
            }
        }
        out
    }

    fn ns_index(&self, nsid: u32) -> Result<usize, Status> {
        let i = (nsid as usize).wrapping_sub(1);
        if i < self.shared.namespaces.len() { Ok(i) } else { Err(Status::INVALID_NAMESPACE.with_dnr(true)) }
    }

    fn dispatch(&mut self, sqe: &Sqe, fault: Option<FaultAction>) -> Outcome {
        let op = NvmOpcode::from(sqe.opcode());
        let r = match op {
            NvmOpcode::Flush => self.flush(sqe, fault),
            NvmOpcode::Read => self.read(sqe, fault),
            NvmOpcode::Write => self.write(sqe, fault),
            NvmOpcode::Compare => self.compare(sqe),
            NvmOpcode::WriteZeroes => self.write_zeroes(sqe),
            NvmOpcode::WriteUncorrectable => self.write_uncorrectable(sqe),
            NvmOpcode::DatasetManagement => self.dsm(sqe),
            NvmOpcode::Verify => self.verify(sqe),
            _ => Err(Status::INVALID_OPCODE.with_dnr(true)),
        };
        match r {
            Ok(()) => Outcome::done(Status::SUCCESS),
            Err(st) => Outcome::done(st),
        }
    }

    /// Namespace, starting LBA and block count of an LBA-range command, bounds checked.
    fn range(&self, sqe: &Sqe) -> Result<(&Namespace, u64, u64), Status> {
        let ns = &self.shared.namespaces[self.ns_index(sqe.nsid())?];
        let (lba, nlb) = (sqe.slba(), sqe.nlb() as u64);
        if !ns.in_range(lba, nlb) {
            return Err(Status::LBA_OUT_OF_RANGE.with_dnr(true));
        }
        Ok((ns, lba, nlb))
    }

    /// Checks MDTS (§5.15.2.1, Identify MDTS), then the LBA range, then maps the data
    /// pointer of a data-transfer command. Returns the namespace index, LBA, count and
    /// transfer length.
    fn prepare_transfer(&mut self, sqe: &Sqe, dir: DataDirection) -> Result<(usize, u64, u64, usize), Status> {
        let i = self.ns_index(sqe.nsid())?;
        let ns = &self.shared.namespaces[i];
        let len = (sqe.nlb() as usize) << ns.lba_shift();
        if self.max_transfer.is_some_and(|m| len > m) {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let (lba, nlb) = (sqe.slba(), sqe.nlb() as u64);
        if !ns.in_range(lba, nlb) {
            return Err(Status::LBA_OUT_OF_RANGE.with_dnr(true));
        }
        self.map_data(sqe, len, dir)?;
        Ok((i, lba, nlb, len))
    }

    /// Maps the command's data pointer for `len` bytes into `self.segs`.
    fn map_data(&mut self, sqe: &Sqe, len: usize, dir: DataDirection) -> Result<(), Status> {
        match sqe.psdt() {
            Psdt::Prp => {
                let page = self.shared.page_size.load(Ordering::Relaxed);
                self.view.map_prp(sqe.prp1(), sqe.prp2(), len, page, &mut self.segs)
            }
            Psdt::SglContiguousMeta | Psdt::SglMetaSgl if self.shared.cfg.sgl => {
                Counters::add(&self.counters.sgl_commands, 1);
                self.view.map_sgl(sqe.sgl1(), len, dir, self.sgl_caps, &mut self.segs)
            }
            // SGLs not supported (Identify SGLS = 0), or the reserved encoding.
            _ => Err(Status::INVALID_FIELD.with_dnr(true)),
        }
    }

    fn flush(&mut self, sqe: &Sqe, fault: Option<FaultAction>) -> Result<(), Status> {
        if fault == Some(FaultAction::IgnoreFlush) {
            return Ok(());
        }
        if sqe.nsid() == u32::MAX {
            self.shared.namespaces.iter().for_each(|n| n.flush());
        } else {
            self.shared.namespaces[self.ns_index(sqe.nsid())?].flush();
        }
        Ok(())
    }

    fn read(&mut self, sqe: &Sqe, fault: Option<FaultAction>) -> Result<(), Status> {
        let (i, lba, nlb, len) = self.prepare_transfer(sqe, DataDirection::ControllerToHost)?;
        self.shared.namespaces[i].read(lba, nlb, &self.segs)?;
        if let Some(FaultAction::CorruptRead { offset }) = fault {
            corrupt(&self.segs, offset);
        }
        Counters::add(&self.counters.host_reads, 1);
        Counters::add(&self.counters.read_512, (len / 512) as u64);
        Ok(())
    }

    fn write(&mut self, sqe: &Sqe, fault: Option<FaultAction>) -> Result<(), Status> {
        let (i, lba, nlb, len) = self.prepare_transfer(sqe, DataDirection::HostToController)?;
        let ns = &self.shared.namespaces[i];
        match fault {
            Some(FaultAction::LoseWrite) => {}
            Some(FaultAction::MisdirectWrite { lba_offset }) => {
                let max = ns.nlba().saturating_sub(nlb);
                let target = (lba as i64).saturating_add(lba_offset).clamp(0, max as i64) as u64;
                ns.poke(target, &self.segs, len)?;
            }
            _ => ns.write(lba, nlb, &self.segs, sqe.fua())?,
        }
        // The count is shared by every I/O thread: kept only where the model reads it.
        if let Some(gc) = &self.shared.cfg.gc {
            let written = ns.note_written(len as u64);
            self.gc_delay = gc.extra(written, ns.capacity()).as_nanos() as u64;
        }
        Counters::add(&self.counters.host_writes, 1);
        Counters::add(&self.counters.written_512, (len / 512) as u64);
        self.shared.note_write();
        Ok(())
    }

    fn compare(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let (i, lba, nlb, len) = self.prepare_transfer(sqe, DataDirection::HostToController)?;
        // SMART counts blocks read by Compare as read data (Figure 196, Data Units Read).
        Counters::add(&self.counters.host_reads, 1);
        Counters::add(&self.counters.read_512, (len / 512) as u64);
        if self.shared.namespaces[i].compare(lba, nlb, &self.segs, &mut self.scratch)? { Ok(()) } else { Err(Status::COMPARE_FAILURE) }
    }

    fn write_zeroes(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let (ns, lba, nlb) = self.range(sqe)?;
        ns.zero(lba, nlb, sqe.fua())?;
        self.shared.note_write();
        Ok(())
    }

    fn write_uncorrectable(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let (ns, lba, nlb) = self.range(sqe)?;
        ns.mark_uncorrectable(lba, nlb);
        self.shared.note_write();
        Ok(())
    }

    fn verify(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let (ns, lba, nlb) = self.range(sqe)?;
        if ns.any_uncorrectable(lba, nlb) { Err(Status::UNRECOVERED_READ_ERROR) } else { Ok(()) }
    }

    /// Dataset Management (§6.7): ranges of {context attributes, length, starting LBA};
    /// with the Deallocate attribute they read as zeroes afterwards (DLFEAT).
    fn dsm(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let i = self.ns_index(sqe.nsid())?;
        let nr = (sqe.dw[10] & 0xff) as usize + 1;
        let deallocate = sqe.dw[11] & (1 << 2) != 0;
        let len = nr * 16;
        self.map_data(sqe, len, DataDirection::HostToController)?;
        self.scratch.clear();
        self.scratch.resize(len, 0);
        if seg_len(&self.segs) < len {
            return Err(Status::DATA_TRANSFER_ERROR);
        }
        // SAFETY: the segments map `len` bytes; `scratch` holds `len` bytes.
        unsafe { super::dma::gather(&self.segs, self.scratch.as_mut_ptr(), len) };
        let ranges: Vec<(u64, u64)> = self
            .scratch
            .chunks_exact(16)
            .map(|r| (u64::from_le_bytes(r[8..16].try_into().expect("8 bytes")), u32::from_le_bytes(r[4..8].try_into().expect("4 bytes")) as u64))
            .collect();
        let ns = &self.shared.namespaces[i];
        if ranges.iter().any(|&(lba, nlb)| !ns.in_range(lba, nlb)) {
            return Err(Status::LBA_OUT_OF_RANGE.with_dnr(true));
        }
        if deallocate {
            self.shared.note_write();
            for (lba, nlb) in ranges {
                if nlb > 0 {
                    ns.zero(lba, nlb, false)?;
                }
            }
        }
        Ok(())
    }
}

/// Flips every bit of the byte at `offset` of a transfer (fault injection).
fn corrupt(segs: &[Seg], mut offset: usize) {
    for s in segs {
        if offset < s.len {
            if let Some(p) = s.ptr {
                // SAFETY: `offset < s.len`, inside a translated host segment.
                unsafe {
                    let b = p.as_ptr().add(offset);
                    b.write(!b.read());
                }
            }
            return;
        }
        offset -= s.len;
    }
}
