//! One submission/completion queue pair in host memory: the ring arithmetic, phase tags,
//! command identifiers, data-pointer construction and batched doorbells (NVMe 1.4 §4.1,
//! §4.3, §4.4, §4.6). Used for the admin queue and for every I/O queue pair.

use std::time::{Duration, Instant};

use crate::nvme::prp::{self, Prp2Use};
use crate::nvme::regs::{self, Csts};
use crate::nvme::sgl::{DESCRIPTOR_BYTES, SglDescriptor};
use crate::nvme::sqe::Psdt;
use crate::nvme::{Cqe, Sqe, Status};
use crate::transport::{DmaBuffer, SharedTransport, TransportError};

const SQE_BYTES: usize = 64;
const CQE_BYTES: usize = 16;
/// How many entries past the tail the submission path asks for an SQ line ahead of use.
const SQ_AHEAD: u32 = 8;

/// One descriptor of a scatter-gather list given to [`DataPtr::SglList`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SglSegment {
    /// A block of host memory.
    Data {
        /// IOVA of the block.
        iova: u64,
        /// Length in bytes.
        len: u32,
    },
    /// Read data to discard.
    BitBucket {
        /// Length in bytes.
        len: u32,
    },
}

/// How a command's data is described to the controller.
#[derive(Clone, Copy, Debug)]
pub enum DataPtr<'a> {
    /// No data.
    None,
    /// PRP1/PRP2 (and a PRP list when needed) over one buffer, which may start at any
    /// dword-aligned offset.
    Prp(&'a DmaBuffer),
    /// One SGL Data Block descriptor over the buffer.
    Sgl(&'a DmaBuffer),
    /// A list of SGL descriptors placed in segments of at most `per_segment` descriptors,
    /// chained with Segment descriptors and ended by a Last Segment descriptor.
    SglList {
        /// The data descriptors.
        segs: &'a [SglSegment],
        /// Descriptors per segment (2 to 256 for a 4 KiB page); smaller values force
        /// longer chains.
        per_segment: usize,
    },
    /// Like [`DataPtr::Prp`], over `len` bytes at `iova` of a buffer the caller keeps
    /// mapped until the command completes (saves building a buffer view per command).
    PrpAt {
        /// IOVA of the first byte (dword aligned).
        iova: u64,
        /// Bytes.
        len: usize,
    },
    /// Like [`DataPtr::Sgl`], over `len` bytes at `iova` (see [`DataPtr::PrpAt`]).
    SglAt {
        /// IOVA of the first byte.
        iova: u64,
        /// Bytes.
        len: usize,
    },
    /// PRP1 and PRP2 exactly as given.
    Raw {
        /// PRP entry 1.
        prp1: u64,
        /// PRP entry 2.
        prp2: u64,
    },
}

/// How a command left the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CplKind {
    /// The controller posted a completion entry.
    Device,
    /// No completion within the command timeout while the controller kept running; the
    /// entry is synthetic.
    TimedOut,
    /// The controller was reset, disabled, failed or lost power while the command was
    /// outstanding: it will never complete. The entry is synthetic.
    Aborted,
}

/// A completed (or given up) command.
#[derive(Clone, Copy, Debug)]
pub struct Completion {
    /// The completion entry (for synthetic completions: all ones but for the CID).
    pub cqe: Cqe,
    /// The caller's context value given at submission.
    pub ctx: u64,
    /// When the command was submitted.
    pub submitted: Instant,
    /// Opcode of the command.
    pub opcode: u8,
    /// Where the completion came from.
    pub kind: CplKind,
}

impl Completion {
    /// Status of the command; synthetic completions read as all ones.
    pub fn status(&self) -> Status {
        self.cqe.status()
    }
    /// Command identifier.
    pub fn cid(&self) -> u16 {
        self.cqe.cid()
    }
    /// Whether the controller reported success.
    pub fn is_success(&self) -> bool {
        self.kind == CplKind::Device && self.cqe.status().is_success()
    }
}

/// Why a command could not be submitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubmitError {
    /// Every command identifier is in use (entries - 1 commands outstanding).
    #[error("queue {qid} is full: {outstanding} commands outstanding")]
    Full {
        /// Queue.
        qid: u16,
        /// Outstanding commands.
        outstanding: u32,
    },
    /// A PRP entry must be dword aligned.
    #[error("data buffer at IOVA {iova:#x} is not dword aligned, as PRP entries must be")]
    Misaligned {
        /// IOVA of the buffer.
        iova: u64,
    },
    /// The data needs more PRP list or SGL segment pages than the queue reserves.
    #[error("transfer of {len} bytes needs more list pages than the queue reserves ({pages} per command)")]
    TooLarge {
        /// Bytes.
        len: usize,
        /// Pages reserved per command.
        pages: usize,
    },
    /// An SGL list needs at least one descriptor and segments of 2 or more.
    #[error("invalid SGL list: {0}")]
    InvalidSgl(&'static str),
}

#[derive(Clone, Copy)]
struct Slot {
    busy: bool,
    given_up: bool,
    /// Subject to the command timeout (not so for Asynchronous Event Requests).
    timed: bool,
    opcode: u8,
    ctx: u64,
    submitted: Instant,
    /// Dword 0 and dwords 6..9 as placed in the ring (PSDT and data pointer), so a
    /// failing command can be reported exactly as it was sent.
    dptr: [u32; 5],
}

/// A queue pair's memory and host-side state.
pub struct QueueCore {
    transport: SharedTransport,
    qid: u16,
    entries: u32,
    sq: DmaBuffer,
    cq: DmaBuffer,
    lists: DmaBuffer,
    list_pages: usize,
    page: usize,
    sq_tail: u32,
    rung_tail: u32,
    sq_head: u32,
    cq_head: u32,
    phase: bool,
    sq_db: usize,
    cq_db: usize,
    last_cq_db: u32,
    slots: Box<[Slot]>,
    free: Vec<u16>,
    outstanding: u32,
    timeout: Duration,
    empty_polls: u32,
    spurious: u64,
}

impl std::fmt::Debug for QueueCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueCore")
            .field("qid", &self.qid)
            .field("entries", &self.entries)
            .field("sq_tail", &self.sq_tail)
            .field("cq_head", &self.cq_head)
            .field("phase", &self.phase)
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl QueueCore {
    /// Allocates zeroed queue memory for `entries` entries and `list_pages` PRP/SGL list
    /// pages per command identifier.
    pub fn new(
        transport: SharedTransport,
        qid: u16,
        entries: u32,
        page: usize,
        list_pages: usize,
        dstrd: u8,
        timeout: Duration,
    ) -> Result<Self, TransportError> {
        let sq = transport.dma_alloc((entries as usize * SQE_BYTES).next_multiple_of(page))?;
        let cq = transport.dma_alloc((entries as usize * CQE_BYTES).next_multiple_of(page))?;
        let lists = transport.dma_alloc(entries as usize * list_pages * page)?;
        let now = Instant::now();
        Ok(QueueCore {
            transport,
            qid,
            entries,
            sq,
            cq,
            lists,
            list_pages,
            page,
            sq_tail: 0,
            rung_tail: 0,
            sq_head: 0,
            cq_head: 0,
            phase: true,
            sq_db: regs::sq_tail_doorbell(qid, dstrd),
            cq_db: regs::cq_head_doorbell(qid, dstrd),
            last_cq_db: 0,
            slots: vec![Slot { busy: false, given_up: false, timed: true, opcode: 0, ctx: 0, submitted: now, dptr: [0; 5] }; entries as usize]
                .into_boxed_slice(),
            // CIDs 0..entries-1 (one fewer than entries, so the SQ can never overflow),
            // handed out from the top as SPDK's trackers are: scripts written against
            // SPDK-based tools abort recent commands by such CIDs.
            free: (0..entries as u16 - 1).collect(),
            outstanding: 0,
            timeout,
            empty_polls: 0,
            spurious: 0,
        })
    }

    /// Forgets every command and empties both rings (after a controller reset).
    pub fn reset(&mut self) {
        self.sq.fill(0, self.sq.len(), 0);
        self.cq.fill(0, self.cq.len(), 0);
        self.sq_tail = 0;
        self.rung_tail = 0;
        self.sq_head = 0;
        self.cq_head = 0;
        self.last_cq_db = 0;
        self.phase = true;
        for s in self.slots.iter_mut() {
            s.busy = false;
            s.given_up = false;
        }
        self.free = (0..self.entries as u16 - 1).collect();
        self.outstanding = 0;
    }

    /// Queue identifier.
    pub fn qid(&self) -> u16 {
        self.qid
    }
    /// Entries in each ring.
    pub fn entries(&self) -> u32 {
        self.entries
    }
    /// Commands submitted and not yet completed (or given up).
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }
    /// Commands that can still be submitted.
    pub fn free_slots(&self) -> usize {
        self.free.len()
    }
    /// The submission ring.
    pub fn sq_memory(&self) -> &DmaBuffer {
        &self.sq
    }
    /// The completion ring.
    pub fn cq_memory(&self) -> &DmaBuffer {
        &self.cq
    }
    /// SQ head as last reported by the controller (CQE.SQHD).
    pub fn sq_head(&self) -> u32 {
        self.sq_head
    }
    /// Completions whose CID was not outstanding.
    pub fn spurious_completions(&self) -> u64 {
        self.spurious
    }
    /// The per-command timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Changes the per-command timeout.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
    }

    /// Places a command in the submission ring (the doorbell is written by [`ring`]).
    /// Fills in the CID and the data pointer; returns the CID.
    ///
    /// [`ring`]: QueueCore::ring
    #[inline]
    pub fn submit(&mut self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64) -> Result<u16, SubmitError> {
        self.submit_with(sqe, data, ctx, true, Instant::now())
    }

    /// Like [`QueueCore::submit`], with the submission time given by the caller (one clock
    /// read for a batch of submissions instead of one per command).
    #[inline]
    pub fn submit_at(&mut self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64, now: Instant) -> Result<u16, SubmitError> {
        self.submit_with(sqe, data, ctx, true, now)
    }

    /// Like [`QueueCore::submit`], for a command that may stay outstanding indefinitely
    /// (an Asynchronous Event Request): it never times out.
    pub fn submit_untimed(&mut self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64) -> Result<u16, SubmitError> {
        self.submit_with(sqe, data, ctx, false, Instant::now())
    }

    #[inline]
    fn submit_with(&mut self, sqe: &Sqe, data: DataPtr<'_>, ctx: u64, timed: bool, now: Instant) -> Result<u16, SubmitError> {
        let Some(cid) = self.free.pop() else {
            return Err(SubmitError::Full { qid: self.qid, outstanding: self.outstanding });
        };
        let mut cmd = *sqe;
        cmd.set_cid(cid);
        if let Err(e) = self.fill_data(&mut cmd, cid, data) {
            self.free.push(cid);
            return Err(e);
        }
        let dptr = [cmd.dw[0], cmd.dw[6], cmd.dw[7], cmd.dw[8], cmd.dw[9]];
        self.slots[cid as usize] = Slot { busy: true, given_up: false, timed, opcode: cmd.opcode(), ctx, submitted: now, dptr };
        self.sq.write_obj(self.sq_tail as usize * SQE_BYTES, &cmd);
        self.sq_tail = (self.sq_tail + 1) % self.entries;
        // The entry SQ_AHEAD places on was last read by the controller, which keeps a copy
        // of its line: ask for the line owned now, so that the store into it does not hold
        // up every store after it (stores leave the core in order).
        if self.entries > SQ_AHEAD {
            // sq_tail < entries and SQ_AHEAD < entries: one subtraction wraps, no division.
            let mut ahead = self.sq_tail + SQ_AHEAD;
            if ahead >= self.entries {
                ahead -= self.entries;
            }
            crate::util::prefetch(self.sq.as_ptr().wrapping_add(ahead as usize * SQE_BYTES), true);
        }
        self.outstanding += 1;
        Ok(cid)
    }

    /// Dword 0 and dwords 6..9 (PSDT and data pointer) of the command last submitted
    /// with `cid`, as it was placed in the submission queue.
    pub fn sent_dptr(&self, cid: u16) -> [u32; 5] {
        self.slots.get(cid as usize).map_or([0; 5], |s| s.dptr)
    }

    /// Writes the SQ tail doorbell if commands were placed since the last write.
    #[inline]
    pub fn ring(&mut self) {
        if self.sq_tail != self.rung_tail {
            self.transport.write32(self.sq_db, self.sq_tail);
            self.rung_tail = self.sq_tail;
        }
    }

    fn list_base(&self, cid: u16) -> usize {
        cid as usize * self.list_pages * self.page
    }

    fn fill_data(&mut self, cmd: &mut Sqe, cid: u16, data: DataPtr<'_>) -> Result<(), SubmitError> {
        match data {
            DataPtr::None => {}
            DataPtr::Raw { prp1, prp2 } => {
                cmd.set_prp1(prp1);
                cmd.set_prp2(prp2);
            }
            DataPtr::Prp(buf) => self.fill_prp(cmd, cid, buf.iova(), buf.len())?,
            DataPtr::PrpAt { iova, len } => self.fill_prp(cmd, cid, iova, len)?,
            DataPtr::Sgl(buf) => {
                cmd.set_psdt(Psdt::SglContiguousMeta);
                cmd.set_sgl1(SglDescriptor::data_block(buf.iova(), buf.len() as u32));
            }
            DataPtr::SglAt { iova, len } => {
                cmd.set_psdt(Psdt::SglContiguousMeta);
                cmd.set_sgl1(SglDescriptor::data_block(iova, len as u32));
            }
            DataPtr::SglList { segs, per_segment } => self.fill_sgl(cmd, cid, segs, per_segment)?,
        }
        Ok(())
    }

    fn fill_prp(&mut self, cmd: &mut Sqe, cid: u16, iova: u64, len: usize) -> Result<(), SubmitError> {
        if !prp::is_dword_aligned(iova) {
            return Err(SubmitError::Misaligned { iova });
        }
        let page = self.page;
        cmd.set_prp1(iova);
        let next_page = iova - prp::page_offset(iova, page) as u64 + page as u64;
        match prp::prp2_use(iova, len, page) {
            Prp2Use::Unused => cmd.set_prp2(0),
            Prp2Use::DataPage => cmd.set_prp2(next_page),
            Prp2Use::List { entries } => {
                if prp::list_pages_needed(entries, 0, page) > self.list_pages {
                    return Err(SubmitError::TooLarge { len, pages: self.list_pages });
                }
                let base = self.list_base(cid);
                let per_page = page / prp::ENTRY_BYTES;
                let (mut list_page, mut slot) = (0usize, 0usize);
                for k in 0..entries {
                    if slot == per_page - 1 && entries - k > 1 {
                        // Last slot of a full list page: chain to the next page (§4.3).
                        let next = self.lists.iova() + (base + (list_page + 1) * page) as u64;
                        self.lists.write_u64(base + list_page * page + slot * 8, next);
                        list_page += 1;
                        slot = 0;
                    }
                    self.lists.write_u64(base + list_page * page + slot * 8, next_page + (k * page) as u64);
                    slot += 1;
                }
                cmd.set_prp2(self.lists.iova() + base as u64);
            }
        }
        Ok(())
    }

    fn fill_sgl(&mut self, cmd: &mut Sqe, cid: u16, segs: &[SglSegment], per_segment: usize) -> Result<(), SubmitError> {
        let desc = |s: &SglSegment| match *s {
            SglSegment::Data { iova, len } => SglDescriptor::data_block(iova, len),
            SglSegment::BitBucket { len } => SglDescriptor::bit_bucket(len),
        };
        cmd.set_psdt(Psdt::SglContiguousMeta);
        let per_page = self.page / DESCRIPTOR_BYTES;
        let per_segment = per_segment.min(per_page);
        match segs.len() {
            0 => return Err(SubmitError::InvalidSgl("no descriptors")),
            1 => {
                cmd.set_sgl1(desc(&segs[0]));
                return Ok(());
            }
            _ if per_segment < 2 => return Err(SubmitError::InvalidSgl("segments need room for at least 2 descriptors")),
            _ => {}
        }
        // Segment k holds up to per_segment descriptors; all but the last end with a
        // pointer to the next segment, which is a Last Segment descriptor for the final one.
        // Segments are packed one after another in the command's list pages.
        let mut chunks = Vec::new();
        let mut rest = segs;
        while rest.len() > per_segment {
            let (a, b) = rest.split_at(per_segment - 1);
            chunks.push(a);
            rest = b;
        }
        chunks.push(rest);
        let total = segs.len() + chunks.len() - 1;
        if total * DESCRIPTOR_BYTES > self.list_pages * self.page {
            return Err(SubmitError::TooLarge { len: total * DESCRIPTOR_BYTES, pages: self.list_pages });
        }
        let base = self.list_base(cid);
        let mut starts = Vec::with_capacity(chunks.len());
        let mut at = base;
        for (k, c) in chunks.iter().enumerate() {
            starts.push(at);
            at += (c.len() + usize::from(k + 1 < chunks.len())) * DESCRIPTOR_BYTES;
        }
        let pointer = |k: usize| {
            let n = (chunks[k].len() + usize::from(k + 1 < chunks.len())) as u32;
            let iova = self.lists.iova() + starts[k] as u64;
            if k + 1 == chunks.len() { SglDescriptor::last_segment(iova, n) } else { SglDescriptor::segment(iova, n) }
        };
        for (k, chunk) in chunks.iter().enumerate() {
            for (i, s) in chunk.iter().enumerate() {
                self.lists.write_obj(starts[k] + i * DESCRIPTOR_BYTES, &desc(s));
            }
            if k + 1 < chunks.len() {
                self.lists.write_obj(starts[k] + chunk.len() * DESCRIPTOR_BYTES, &pointer(k + 1));
            }
        }
        cmd.set_sgl1(pointer(0));
        Ok(())
    }

    /// Reaps up to `max` completions, calling `f` for each, and writes the CQ head
    /// doorbell once. Also gives up on commands older than the timeout (checked every
    /// few empty polls). Returns the number of completions delivered.
    #[inline]
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(&Completion)) -> usize {
        let mut n = 0;
        while n < max {
            let off = self.cq_head as usize * CQE_BYTES;
            let dw3 = self.cq.load_u32_acquire(off + 12);
            if (dw3 & (1 << 16) != 0) != self.phase {
                break;
            }
            let cqe = Cqe { dw: [self.cq.read_u32(off), self.cq.read_u32(off + 4), self.cq.read_u32(off + 8), dw3] };
            self.cq_head += 1;
            if self.cq_head == self.entries {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
            self.sq_head = cqe.sqhd() as u32;
            let cid = cqe.cid() as usize;
            match self.slots.get_mut(cid) {
                Some(s) if s.busy => {
                    s.busy = false;
                    self.free.push(cid as u16);
                    if s.given_up {
                        // Already reported as timed out; the late answer frees the CID.
                        continue;
                    }
                    self.outstanding -= 1;
                    let c = Completion { cqe, ctx: s.ctx, submitted: s.submitted, opcode: s.opcode, kind: CplKind::Device };
                    f(&c);
                    n += 1;
                }
                _ => self.spurious += 1,
            }
        }
        if self.cq_db_dirty() {
            self.transport.write32(self.cq_db, self.cq_head);
            self.last_cq_db = self.cq_head;
        }
        if n == 0 && self.outstanding > 0 {
            self.empty_polls += 1;
            if self.empty_polls >= 256 {
                self.empty_polls = 0;
                n += self.expire(Instant::now(), &mut f);
            }
        }
        n
    }

    fn cq_db_dirty(&self) -> bool {
        self.cq_head != self.last_cq_db
    }

    /// Reports commands older than the timeout: as [`CplKind::Aborted`] when CSTS shows
    /// the controller is no longer running (disabled, fatal or gone), else as
    /// [`CplKind::TimedOut`].
    pub fn expire(&mut self, now: Instant, mut f: impl FnMut(&Completion)) -> usize {
        let mut n = 0;
        let mut kind = None;
        for cid in 0..self.slots.len() {
            let s = &mut self.slots[cid];
            if s.busy && !s.given_up && s.timed && now.duration_since(s.submitted) >= self.timeout {
                let kind = *kind.get_or_insert_with(|| {
                    let csts = Csts(self.transport.read32(regs::offset::CSTS));
                    if csts.halted() { CplKind::Aborted } else { CplKind::TimedOut }
                });
                s.given_up = true;
                self.outstanding -= 1;
                let c = Completion { cqe: synthetic(self.qid, cid as u16), ctx: s.ctx, submitted: s.submitted, opcode: s.opcode, kind };
                f(&c);
                n += 1;
            }
        }
        n
    }

    /// Stops waiting for one command: its CID stays reserved until the controller answers
    /// (if ever), and no completion will be delivered for it.
    pub fn give_up(&mut self, cid: u16) {
        if let Some(s) = self.slots.get_mut(cid as usize)
            && s.busy
            && !s.given_up
        {
            s.given_up = true;
            self.outstanding -= 1;
        }
    }

    /// Reports every outstanding command as [`CplKind::Aborted`] and frees all CIDs
    /// (the controller was reset: nothing will complete).
    pub fn abort_all(&mut self, mut f: impl FnMut(&Completion)) -> usize {
        let mut n = 0;
        for cid in 0..self.slots.len() {
            let s = &mut self.slots[cid];
            if s.busy && !s.given_up {
                let c = Completion { cqe: synthetic(self.qid, cid as u16), ctx: s.ctx, submitted: s.submitted, opcode: s.opcode, kind: CplKind::Aborted };
                f(&c);
                n += 1;
            }
        }
        self.reset();
        n
    }
}

/// The completion entry nvplan reports for a command the controller never completed:
/// every bit set except the CID (the convention PyNVMe uses for driver timeouts).
fn synthetic(qid: u16, cid: u16) -> Cqe {
    Cqe { dw: [u32::MAX, u32::MAX, 0xffff | (qid as u32) << 16, 0xffff_0000 | cid as u32] }
}
