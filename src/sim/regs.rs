//! The simulated controller's register file and doorbells, shared between the MMIO path
//! (the host's thread) and the controller's processing threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;

use crate::nvme::regs::{Aqa, Cap, Csts, Vs};

/// Wakes a processing thread that may be parked.
#[derive(Default)]
pub(crate) struct Waker {
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Waker {
    /// Registers the calling thread as the one to wake.
    pub(crate) fn register_current(&self) {
        let _ = self.thread.set(std::thread::current());
    }
    /// Wakes the thread if it announced that it is going to sleep.
    #[inline]
    pub(crate) fn wake(&self) {
        // SeqCst pairs with the store in `sleep`: either the sleeper sees our earlier
        // doorbell store when it re-checks for work, or we see its flag and unpark it.
        if self.sleeping.load(Ordering::SeqCst) {
            self.force_wake();
        }
    }
    /// Wakes the thread unconditionally.
    pub(crate) fn force_wake(&self) {
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }
    /// Announces sleep, re-checks for work with `has_work`, and parks for at most `timeout`
    /// unless work appeared.
    pub(crate) fn sleep(&self, timeout: std::time::Duration, has_work: impl FnOnce() -> bool) {
        self.sleeping.store(true, Ordering::SeqCst);
        if !has_work() {
            std::thread::park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

/// When a processing thread with nothing to do stops polling and sleeps.
pub(crate) struct Idle {
    since: Option<std::time::Instant>,
    spin: std::time::Duration,
    /// Empty passes since the clock was last read.
    passes: u32,
}

/// Empty passes between two reads of the clock while spinning: a read costs about as much
/// as a pass, and each delays the look at the doorbells after it.
const PASSES_PER_CLOCK: u32 = 32;

impl Idle {
    pub(crate) fn new(spin: std::time::Duration) -> Self {
        Idle { since: None, spin, passes: 0 }
    }
    /// Records one pass of the loop that did `work` things; true once the thread has been
    /// idle longer than the spin time and should sleep.
    #[inline]
    pub(crate) fn should_sleep(&mut self, work: usize) -> bool {
        if work > 0 {
            self.since = None;
            self.passes = 0;
            return false;
        }
        self.passes += 1;
        if self.since.is_some() && self.passes < PASSES_PER_CLOCK {
            std::hint::spin_loop();
            return false;
        }
        self.passes = 0;
        let now = std::time::Instant::now();
        if now - *self.since.get_or_insert(now) < self.spin {
            std::hint::spin_loop();
            return false;
        }
        true
    }
}

/// What the controller knows of the queue behind one doorbell register. Kept apart from
/// the values the host writes (`Registers::doorbell_values`): the host reads this on every
/// doorbell write, and the processing threads take the written lines from its cache.
#[derive(Default)]
pub(crate) struct Doorbell {
    /// Entries of the queue behind it; 0 when no such queue exists.
    pub(crate) size: AtomicU32,
    /// Index of the processing thread that owns the queue (0: controller thread).
    pub(crate) owner: AtomicU32,
}

/// One doorbell value in a cache line of its own: the host writes a queue's tail and
/// head doorbells at different times from the controller's reads of them (it reads the
/// head only when the CQ looks full), and workers write doorbells of different queues.
/// Sharing a line made each write take it from a reader that did not need it.
#[derive(Default)]
#[repr(align(64))]
struct DoorbellLine(AtomicU32);

/// Register file of BAR0.
pub(crate) struct Registers {
    pub(crate) cap: Cap,
    pub(crate) vs: Vs,
    pub(crate) cc: AtomicU32,
    /// Every CC and NSSR write in arrival order (offset, value), so the controller thread
    /// acts on each transition even when the host writes EN = 0 and EN = 1 in quick
    /// succession, and on a reset and a later enable in the order they happened.
    pub(crate) ctrl_writes: Mutex<VecDeque<(usize, u32)>>,
    pub(crate) csts: AtomicU32,
    pub(crate) aqa: AtomicU32,
    pub(crate) asq: [AtomicU32; 2],
    pub(crate) acq: [AtomicU32; 2],
    pub(crate) intms: AtomicU32,
    /// Doorbells: index `2 * qid` is the SQ tail, `2 * qid + 1` the CQ head.
    pub(crate) doorbells: Box<[Doorbell]>,
    /// Last valid value the host wrote to each doorbell, indexed as `doorbells`, in
    /// cache lines of their own.
    doorbell_values: Box<[DoorbellLine]>,
    /// Whether the device has power.
    pub(crate) powered: AtomicBool,
    /// BAR0 does not decode: the function is in D3hot or Memory Space is disabled.
    pub(crate) bar_blocked: AtomicBool,
    /// Size of BAR0 in bytes.
    pub(crate) bar_size: usize,
    /// Host writes that had no effect (read-only registers, unknown offsets).
    pub(crate) ignored_writes: AtomicU64,
}

impl Registers {
    pub(crate) fn new(cap: Cap, vs: Vs, max_qid: u16) -> Self {
        let stride = 4usize << cap.dstrd();
        let bar_size = (0x1000 + 2 * (max_qid as usize + 1) * stride).next_multiple_of(0x4000);
        Registers {
            cap,
            vs,
            cc: AtomicU32::new(0),
            ctrl_writes: Mutex::new(VecDeque::new()),
            csts: AtomicU32::new(0),
            aqa: AtomicU32::new(0),
            asq: Default::default(),
            acq: Default::default(),
            intms: AtomicU32::new(0),
            doorbells: (0..2 * (max_qid as usize + 1)).map(|_| Doorbell::default()).collect(),
            doorbell_values: (0..2 * (max_qid as usize + 1)).map(|_| DoorbellLine::default()).collect(),
            powered: AtomicBool::new(true),
            bar_blocked: AtomicBool::new(false),
            bar_size,
            ignored_writes: AtomicU64::new(0),
        }
    }

    /// Power-on values: everything the host can write returns to zero.
    pub(crate) fn reset_to_power_on(&self) {
        self.ctrl_writes.lock().unwrap_or_else(|e| e.into_inner()).clear();
        for r in [&self.cc, &self.csts, &self.aqa, &self.intms] {
            r.store(0, Ordering::SeqCst);
        }
        for r in self.asq.iter().chain(self.acq.iter()) {
            r.store(0, Ordering::SeqCst);
        }
        self.clear_doorbells();
    }

    /// Removes every queue from the doorbell table.
    pub(crate) fn clear_doorbells(&self) {
        for d in self.doorbells.iter() {
            d.size.store(0, Ordering::SeqCst);
        }
        for v in self.doorbell_values.iter() {
            v.0.store(0, Ordering::SeqCst);
        }
    }

    /// Records a CC or NSSR write for the controller thread. An NVM Subsystem Reset takes
    /// the registers to their reset values at once, as the write itself does on hardware;
    /// the controller thread then tears down what was running.
    pub(crate) fn push_ctrl_write(&self, off: usize, v: u32) {
        let mut w = self.ctrl_writes.lock().unwrap_or_else(|e| e.into_inner());
        if off == crate::nvme::regs::offset::CC {
            self.cc.store(v, Ordering::Release);
        } else {
            if v != crate::nvme::regs::NSSR_RESET_VALUE || !self.cap.nssrs() {
                return;
            }
            for r in [&self.cc, &self.aqa, &self.intms] {
                r.store(0, Ordering::SeqCst);
            }
            for r in self.asq.iter().chain(self.acq.iter()) {
                r.store(0, Ordering::SeqCst);
            }
            self.csts.store(Csts(0).with_nssro(true).0, Ordering::SeqCst);
        }
        if w.len() < 256 {
            w.push_back((off, v));
        }
    }
    /// CC and NSSR writes not yet acted on, oldest first.
    pub(crate) fn take_ctrl_writes(&self) -> VecDeque<(usize, u32)> {
        std::mem::take(&mut *self.ctrl_writes.lock().unwrap_or_else(|e| e.into_inner()))
    }
    /// Whether CC or NSSR writes are waiting.
    pub(crate) fn ctrl_writes_pending(&self) -> bool {
        !self.ctrl_writes.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }
    pub(crate) fn update_csts(&self, f: impl Fn(Csts) -> Csts) {
        let _ = self.csts.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(f(Csts(v)).0));
    }
    pub(crate) fn aqa(&self) -> Aqa {
        Aqa(self.aqa.load(Ordering::Acquire))
    }
    pub(crate) fn asq(&self) -> u64 {
        self.asq[0].load(Ordering::Acquire) as u64 | (self.asq[1].load(Ordering::Acquire) as u64) << 32
    }
    pub(crate) fn acq(&self) -> u64 {
        self.acq[0].load(Ordering::Acquire) as u64 | (self.acq[1].load(Ordering::Acquire) as u64) << 32
    }
    /// Doorbell slot of a queue.
    pub(crate) fn doorbell(&self, qid: u16, cq: bool) -> &Doorbell {
        &self.doorbells[2 * qid as usize + cq as usize]
    }
    /// The value the host last wrote to a queue's doorbell.
    #[inline]
    pub(crate) fn doorbell_value(&self, qid: u16, cq: bool) -> &AtomicU32 {
        let i = 2 * qid as usize + cq as usize;
        &self.doorbell_values[i].0
    }
    /// Publishes a queue in the doorbell table (value reset to 0).
    pub(crate) fn open_doorbell(&self, qid: u16, cq: bool, size: u32, owner: u32) {
        let d = self.doorbell(qid, cq);
        self.doorbell_value(qid, cq).store(0, Ordering::SeqCst);
        d.owner.store(owner, Ordering::SeqCst);
        d.size.store(size, Ordering::SeqCst);
    }
    /// Removes a queue from the doorbell table.
    pub(crate) fn close_doorbell(&self, qid: u16, cq: bool) {
        let d = self.doorbell(qid, cq);
        // The value stays: the I/O thread may still look at this queue until the
        // deletion reaches it, and a tail of 0 would make it replay stale entries.
        // `open_doorbell` zeroes it for the next queue with this ID.
        d.size.store(0, Ordering::SeqCst);
    }
}
