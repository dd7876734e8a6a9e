//! Submission and completion queues as the controller sees them (NVMe 1.4 §4.1): rings in
//! host memory addressed by IOVA, with the controller's own head (SQ) or tail and phase
//! (CQ), and the host's values read from the doorbells.

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use super::dma::DmaView;
use super::regs::Registers;
use crate::nvme::{Cqe, Sqe};

/// Bytes per submission queue entry (CC.IOSQES = 6).
pub(crate) const SQE_BYTES: u64 = 64;
/// Bytes per completion queue entry (CC.IOCQES = 4).
pub(crate) const CQE_BYTES: u64 = 16;

/// A submission queue.
pub(crate) struct SqState {
    pub(crate) qid: u16,
    pub(crate) size: u32,
    pub(crate) head: u32,
    pub(crate) cqid: u16,
    /// Queue priority class (0 urgent, 1 high, 2 medium, 3 low).
    pub(crate) prio: u8,
    host: Ring,
}

/// Where a queue's entries are in host memory (NVMe 1.4 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueMem {
    /// Physically contiguous from this IOVA (PC = 1, and the admin queues).
    Contig(u64),
    /// Page by page (PC = 0): the IOVAs of the PRP list's entries, each `1 << shift` bytes
    /// (CC.MPS at creation), in queue order. Entries never straddle a page.
    Pages { pages: Box<[u64]>, shift: u32 },
}

/// Host addresses of a queue's memory, translated once per DMA view generation (kept as
/// addresses so queue state can move between threads; only used with the view they came
/// from, which keeps the mapping alive): one for a contiguous ring, one per page otherwise.
pub(crate) struct Ring {
    mem: QueueMem,
    /// Generation `ptrs` was translated in; 0 (no view has it): not translated.
    generation: u64,
    ptrs: Box<[usize]>,
}

impl Ring {
    fn new(mem: QueueMem) -> Self {
        let n = match &mem {
            QueueMem::Contig(_) => 1,
            QueueMem::Pages { pages, .. } => pages.len(),
        };
        Ring { mem, generation: 0, ptrs: vec![0; n].into_boxed_slice() }
    }

    /// Host address of entry `slot` of `entry` bytes in a ring of `bytes`; `None` if any
    /// part of the queue memory is unmapped.
    #[inline]
    fn slot(&mut self, view: &DmaView, slot: u32, entry: u64, bytes: usize) -> Option<NonNull<u8>> {
        if self.generation != view.generation() {
            self.translate(view, bytes)?;
        }
        let off = slot as usize * entry as usize;
        let p = match &self.mem {
            QueueMem::Contig(_) => self.ptrs[0] + off,
            QueueMem::Pages { shift, .. } => self.ptrs[off >> shift] + (off & ((1 << shift) - 1)),
        };
        NonNull::new(p as *mut u8)
    }

    #[cold]
    fn translate(&mut self, view: &DmaView, bytes: usize) -> Option<()> {
        self.generation = 0;
        match &self.mem {
            QueueMem::Contig(base) => self.ptrs[0] = view.translate(*base, bytes)?.as_ptr() as usize,
            QueueMem::Pages { pages, shift } => {
                for (i, (iova, p)) in pages.iter().zip(self.ptrs.iter_mut()).enumerate() {
                    // The last page may be used only in part.
                    let len = bytes.saturating_sub(i << shift).min(1 << shift);
                    *p = view.translate(*iova, len)?.as_ptr() as usize;
                }
            }
        }
        self.generation = view.generation();
        Some(())
    }
}

impl SqState {
    pub(crate) fn new(qid: u16, mem: QueueMem, size: u32, cqid: u16, prio: u8) -> Self {
        SqState { qid, size, head: 0, cqid, prio, host: Ring::new(mem) }
    }
}

impl SqState {
    /// The host's tail, from the doorbell.
    #[inline]
    pub(crate) fn tail(&self, regs: &Registers) -> u32 {
        regs.doorbell_value(self.qid, false).load(Ordering::Acquire)
    }

    /// Whether commands are waiting.
    #[inline]
    pub(crate) fn has_work(&self, regs: &Registers) -> bool {
        self.tail(regs) != self.head
    }

    /// Fetches the entry at the head and advances it. `None`: the entry is not in mapped
    /// memory (the controller then reports a fatal status, as a real one would).
    #[inline]
    pub(crate) fn fetch(&mut self, view: &DmaView) -> Option<Sqe> {
        let p = self.host.slot(view, self.head, SQE_BYTES, self.size as usize * SQE_BYTES as usize)?;
        let mut sqe = Sqe::default();
        // SAFETY: `p` is entry `head < size` of the queue memory, all of it translated for
        // this view generation; the host wrote it before the tail doorbell we acquired.
        unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), (&mut sqe as *mut Sqe).cast::<u8>(), SQE_BYTES as usize) };
        self.head = (self.head + 1) % self.size;
        Some(sqe)
    }

    /// Opcode, NSID and starting LBA (CDW0 bits 7:0, NSID, CDW10-11) of the entry `ahead`
    /// places past the head, without consuming it: what a prefetch for it needs, read
    /// without copying the rest. The caller knows the host rang for it.
    #[inline]
    pub(crate) fn peek_target(&mut self, view: &DmaView, ahead: u32) -> Option<(u8, u32, u64)> {
        let p = self.host.slot(view, (self.head + ahead) % self.size, SQE_BYTES, self.size as usize * SQE_BYTES as usize)?;
        let dw = p.as_ptr().cast::<u32>();
        // SAFETY: as in `fetch`: entry `head + ahead` of translated queue memory (64 bytes,
        // dword aligned as queue memory is), written by the host before the doorbell just
        // acquired.
        let (dw0, nsid, lo, hi) = unsafe { (dw.read(), dw.add(1).read(), dw.add(10).read(), dw.add(11).read()) };
        Some((dw0 as u8, nsid, (hi as u64) << 32 | lo as u64))
    }
}

/// A completion queue.
pub(crate) struct CqState {
    pub(crate) qid: u16,
    pub(crate) size: u32,
    pub(crate) tail: u32,
    pub(crate) phase: bool,
    /// The head the host last wrote, as last read from its doorbell: read again only when
    /// the queue looks full by it (the host's head only moves towards the tail, so a stale
    /// head never makes a full queue look free). Every read of the doorbell takes its cache
    /// line from the host, which writes it with every poll.
    head_seen: u32,
    /// Completions waiting for the host to free CQ entries.
    pub(crate) overflow: VecDeque<Cqe>,
    /// Interrupt vector, when interrupts are enabled (IEN; the admin CQ always, vector 0).
    pub(crate) irq: Option<u16>,
    host: Ring,
}

/// Why a completion could not be written.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PostError {
    /// The host has not consumed enough entries yet.
    Full,
    /// The queue memory is not mapped.
    Unmapped,
}

impl CqState {
    pub(crate) fn new(qid: u16, mem: QueueMem, size: u32) -> Self {
        // The first pass through a zeroed queue uses phase 1 (§4.6).
        CqState { qid, size, tail: 0, phase: true, head_seen: 0, overflow: VecDeque::new(), irq: None, host: Ring::new(mem) }
    }

    /// The same queue, signalling vector `irq` (None: IEN = 0).
    pub(crate) fn with_irq(mut self, irq: Option<u16>) -> Self {
        self.irq = irq;
        self
    }

    /// Whether the next entry would overwrite one the host has not consumed.
    #[inline]
    pub(crate) fn is_full(&self, regs: &Registers) -> bool {
        self.full_at(regs.doorbell_value(self.qid, true).load(Ordering::Acquire))
    }

    /// Whether the queue is full with the host's head at `head` (NVMe 1.4 §4.1.2).
    #[inline]
    fn full_at(&self, head: u32) -> bool {
        (self.tail + 1) % self.size == head
    }

    /// Writes a completion at the tail: dwords 0-2 first, then dword 3 with the phase tag
    /// as a release store, so the host never sees the tag before the entry.
    #[inline]
    pub(crate) fn post(&mut self, view: &DmaView, regs: &Registers, cqe: &Cqe) -> Result<(), PostError> {
        if self.full_at(self.head_seen) {
            self.head_seen = regs.doorbell_value(self.qid, true).load(Ordering::Acquire);
            if self.full_at(self.head_seen) {
                return Err(PostError::Full);
            }
        }
        let p = self.host.slot(view, self.tail, CQE_BYTES, self.size as usize * CQE_BYTES as usize).ok_or(PostError::Unmapped)?;
        let dw3 = cqe.with_phase(self.phase).dw[3];
        let words = p.as_ptr().cast::<u32>();
        // SAFETY: `p` is entry `tail < size` of the translated queue memory; queue pages
        // are page aligned, so each dword is aligned. The host reads dword 3 with an
        // acquire load and the rest only after seeing a new phase tag.
        unsafe {
            words.write_volatile(cqe.dw[0]);
            words.add(1).write_volatile(cqe.dw[1]);
            words.add(2).write_volatile(cqe.dw[2]);
            std::sync::atomic::AtomicU32::from_ptr(words.add(3)).store(dw3, Ordering::Release);
        }
        self.tail += 1;
        if self.tail == self.size {
            self.tail = 0;
            self.phase = !self.phase;
        }
        Ok(())
    }

    /// Posts queued completions while space allows; returns how many were posted.
    pub(crate) fn drain_overflow(&mut self, view: &DmaView, regs: &Registers) -> Result<usize, PostError> {
        let mut n = 0;
        while let Some(c) = self.overflow.front().copied() {
            match self.post(view, regs, &c) {
                Ok(()) => {
                    self.overflow.pop_front();
                    n += 1;
                }
                Err(PostError::Full) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Posts now (Ok(true)), or queues the completion until the host frees an entry
    /// (Ok(false)).
    pub(crate) fn post_or_queue(&mut self, view: &DmaView, regs: &Registers, cqe: Cqe) -> Result<bool, PostError> {
        if !self.overflow.is_empty() {
            self.overflow.push_back(cqe);
            return Ok(false);
        }
        match self.post(view, regs, &cqe) {
            Ok(()) => Ok(true),
            Err(PostError::Full) => {
                self.overflow.push_back(cqe);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
