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
    pub(crate) base: u64,
    pub(crate) size: u32,
    pub(crate) head: u32,
    pub(crate) cqid: u16,
    /// Queue priority class (0 urgent, 1 high, 2 medium, 3 low).
    pub(crate) prio: u8,
    host: RingCache,
}

/// The host address of a whole ring, translated once per DMA view generation (kept as an
/// address so queue state can move between threads; it is only used with the view it came
/// from, which keeps the mapping alive).
#[derive(Default)]
pub(crate) struct RingCache(Option<(u64, usize)>);

impl RingCache {
    #[inline]
    fn get(&mut self, view: &DmaView, base: u64, bytes: usize) -> Option<NonNull<u8>> {
        match self.0 {
            Some((g, p)) if g == view.generation() => NonNull::new(p as *mut u8),
            _ => {
                let p = view.translate(base, bytes)?;
                self.0 = Some((view.generation(), p.as_ptr() as usize));
                Some(p)
            }
        }
    }
}

impl SqState {
    pub(crate) fn new(qid: u16, base: u64, size: u32, cqid: u16, prio: u8) -> Self {
        SqState { qid, base, size, head: 0, cqid, prio, host: RingCache::default() }
    }
}

impl SqState {
    /// The host's tail, from the doorbell.
    #[inline]
    pub(crate) fn tail(&self, regs: &Registers) -> u32 {
        regs.doorbell(self.qid, false).value.load(Ordering::Acquire)
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
        let ring = self.host.get(view, self.base, self.size as usize * SQE_BYTES as usize)?;
        let mut sqe = Sqe::default();
        // SAFETY: the whole ring is mapped (translated above, for this view generation) and
        // `head < size`; the host wrote the entry before the tail doorbell we acquired.
        unsafe {
            std::ptr::copy_nonoverlapping(ring.as_ptr().add(self.head as usize * SQE_BYTES as usize), (&mut sqe as *mut Sqe).cast::<u8>(), SQE_BYTES as usize)
        };
        self.head = (self.head + 1) % self.size;
        Some(sqe)
    }
}

/// A completion queue.
pub(crate) struct CqState {
    pub(crate) qid: u16,
    pub(crate) base: u64,
    pub(crate) size: u32,
    pub(crate) tail: u32,
    pub(crate) phase: bool,
    /// Completions waiting for the host to free CQ entries.
    pub(crate) overflow: VecDeque<Cqe>,
    /// Interrupt vector, when interrupts are enabled (IEN; the admin CQ always, vector 0).
    pub(crate) irq: Option<u16>,
    host: RingCache,
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
    pub(crate) fn new(qid: u16, base: u64, size: u32) -> Self {
        // The first pass through a zeroed queue uses phase 1 (§4.6).
        CqState { qid, base, size, tail: 0, phase: true, overflow: VecDeque::new(), irq: None, host: RingCache::default() }
    }

    /// The same queue, signalling vector `irq` (None: IEN = 0).
    pub(crate) fn with_irq(mut self, irq: Option<u16>) -> Self {
        self.irq = irq;
        self
    }

    /// Whether the next entry would overwrite one the host has not consumed.
    #[inline]
    pub(crate) fn is_full(&self, regs: &Registers) -> bool {
        (self.tail + 1) % self.size == regs.doorbell(self.qid, true).value.load(Ordering::Acquire)
    }

    /// Writes a completion at the tail: dwords 0-2 first, then dword 3 with the phase tag
    /// as a release store, so the host never sees the tag before the entry.
    #[inline]
    pub(crate) fn post(&mut self, view: &DmaView, regs: &Registers, cqe: &Cqe) -> Result<(), PostError> {
        if self.is_full(regs) {
            return Err(PostError::Full);
        }
        let ring = self.host.get(view, self.base, self.size as usize * CQE_BYTES as usize).ok_or(PostError::Unmapped)?;
        // SAFETY: `tail < size`, inside the translated ring.
        let p = unsafe { ring.add(self.tail as usize * CQE_BYTES as usize) };
        let dw3 = cqe.with_phase(self.phase).dw[3];
        let words = p.as_ptr().cast::<u32>();
        // SAFETY: `p` is an entry of the mapped ring; queue bases are page aligned, so each
        // dword is aligned. The host reads dword 3 with an
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
