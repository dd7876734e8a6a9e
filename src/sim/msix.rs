//! The MSI-X table and Pending Bit Array in BAR0, and message delivery (PCI Local Bus 3.0
//! §6.8.2). A message is a 32-bit memory write of the vector's Message Data to its Message
//! Address, made through the device's DMA view like any other write to host memory.
//!
//! NVMe 1.4 §7.5.1.1: a completion posted to a CQ with IEN = 1 signals its IV. Interrupt
//! Coalescing (Set Features 08h, §5.21.1.8) holds an I/O vector's signal until THR + 1
//! completions aggregated or TIME x 100 µs passed since the first of them; TIME 0 means no
//! delay, so nothing is held. Vectors with Coalescing Disable (Feature 09h) and the admin
//! queue's signal at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::dma::DmaView;

/// Bytes per table entry: Message Address, Message Upper Address, Message Data, Vector
/// Control (§6.8.2.6-§6.8.2.9).
const ENTRY: usize = 16;
/// Vector Control: Mask Bit; its reset value is 1 (§6.8.2.9).
const MASK: u32 = 1;

/// Message Control (in configuration space): MSI-X Enable and Function Mask (§6.8.2.3).
pub(crate) const CTRL_ENABLE: u16 = 1 << 15;
/// Message Control: Function Mask.
pub(crate) const CTRL_FUNCTION_MASK: u16 = 1 << 14;

/// A message to send: address and data.
type Message = (u64, u32);

/// The function's MSI-X state.
pub(crate) struct Msix {
    table: usize,
    pba: usize,
    vectors: usize,
    /// MSI-X Enable, mirrored from configuration space so completions on a function that
    /// never enabled MSI-X cost one load.
    enabled: AtomicBool,
    /// Interrupt Coalescing: THR (7:0), TIME (15:8).
    coalescing: AtomicU32,
    /// Earliest aggregation deadline (ns on the simulator's clock), u64::MAX if none.
    next_due: AtomicU64,
    state: Mutex<State>,
}

/// Completions aggregated on a vector, and when its signal is due.
#[derive(Clone, Copy, Default)]
struct Agg {
    count: u32,
    due: Option<u64>,
}

struct State {
    enabled: bool,
    function_mask: bool,
    /// `[address lo, address hi, data, vector control]` per vector.
    entries: Vec<[u32; 4]>,
    pending: Vec<u64>,
    agg: Vec<Agg>,
    /// Coalescing Disable per vector (Feature 09h).
    no_coalescing: Vec<bool>,
}

impl State {
    fn reset(vectors: usize) -> Self {
        State {
            enabled: false,
            function_mask: false,
            entries: vec![[0, 0, 0, MASK]; vectors],
            pending: vec![0; vectors.div_ceil(64)],
            agg: vec![Agg::default(); vectors],
            no_coalescing: vec![false; vectors],
        }
    }

    fn message(&self, v: usize) -> Message {
        let e = &self.entries[v];
        ((e[1] as u64) << 32 | e[0] as u64, e[2])
    }

    /// Sends vector `v`'s message (into `out`), or sets its pending bit while masked.
    fn fire(&mut self, v: usize, out: &mut Vec<Message>) {
        if self.function_mask || self.entries[v][3] & MASK != 0 {
            self.set_pending(v, true);
        } else {
            out.push(self.message(v));
        }
    }

    fn is_pending(&self, v: usize) -> bool {
        self.pending[v / 64] & 1 << (v % 64) != 0
    }

    fn set_pending(&mut self, v: usize, on: bool) {
        if on {
            self.pending[v / 64] |= 1 << (v % 64);
        } else {
            self.pending[v / 64] &= !(1 << (v % 64));
        }
    }

    /// Pending messages of unmasked vectors, their bits cleared (§6.8.2.10: the function
    /// sends a pending message once the vector and the function are unmasked).
    fn take_deliverable(&mut self, out: &mut Vec<Message>) {
        if !self.enabled || self.function_mask {
            return;
        }
        for v in 0..self.entries.len() {
            if self.is_pending(v) && self.entries[v][3] & MASK == 0 {
                self.set_pending(v, false);
                out.push(self.message(v));
            }
        }
    }
}

impl Msix {
    /// `vectors` table entries at BAR0 offset `table`, the PBA at `pba`, in reset state.
    pub(crate) fn new(vectors: usize, table: usize, pba: usize) -> Self {
        Msix {
            table,
            pba,
            vectors,
            enabled: AtomicBool::new(false),
            coalescing: AtomicU32::new(0),
            next_due: AtomicU64::new(u64::MAX),
            state: Mutex::new(State::reset(vectors)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Function reset or power-on: every vector masked, address and data zero, nothing
    /// pending; Enable and Function Mask follow configuration space (`control`).
    pub(crate) fn reset(&self, control: u16) {
        *self.lock() = State::reset(self.vectors);
        self.reset_features();
        self.set_control(control, None);
    }

    /// Controller reset: Features 08h and 09h back to their defaults, nothing aggregated.
    pub(crate) fn reset_features(&self) {
        let mut s = self.lock();
        s.agg.fill(Agg::default());
        s.no_coalescing.fill(false);
        self.coalescing.store(0, Ordering::Relaxed);
        self.next_due.store(u64::MAX, Ordering::Release);
    }

    /// Whether MSI-X Enable is set.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Set Features 08h: THR (7:0), TIME (15:8).
    pub(crate) fn set_coalescing(&self, v: u32) {
        self.coalescing.store(v & 0xffff, Ordering::Relaxed);
    }

    /// Set Features 09h: Coalescing Disable of vector `iv`.
    pub(crate) fn set_coalescing_disable(&self, iv: u16, cd: bool) {
        if let Some(c) = self.lock().no_coalescing.get_mut(iv as usize) {
            *c = cd;
        }
    }

    /// Whether `off` (4-byte aligned) falls in the table or the PBA.
    pub(crate) fn claims(&self, off: usize) -> bool {
        (self.table..self.table + self.vectors * ENTRY).contains(&off) || (self.pba..self.pba + self.vectors.div_ceil(64) * 8).contains(&off)
    }

    /// A 32-bit read of the table or the PBA (§6.8.2.10: the PBA is read-only).
    pub(crate) fn read32(&self, off: usize) -> u32 {
        let s = self.lock();
        if off >= self.pba {
            let w = (off - self.pba) / 4;
            return (s.pending[w / 2] >> (32 * (w % 2))) as u32;
        }
        let i = off - self.table;
        s.entries[i / ENTRY][i % ENTRY / 4]
    }

    /// A 32-bit write of the table; writes to the PBA are ignored. Unmasking a vector with
    /// its pending bit set sends the message (through `view`, made only if needed).
    pub(crate) fn write32(&self, off: usize, v: u32, view: impl FnOnce() -> DmaView) {
        if off >= self.pba {
            return;
        }
        let i = off - self.table;
        let (vec, word) = (i / ENTRY, i % ENTRY / 4);
        let mut out = Vec::new();
        {
            let mut s = self.lock();
            // Message Address bits 1:0 are hardwired to zero (DWORD aligned); Vector Control
            // bits 31:1 are reserved and read as zero.
            s.entries[vec][word] = match word {
                0 => v & !3,
                3 => v & MASK,
                _ => v,
            };
            if word == 3 {
                s.take_deliverable(&mut out);
            }
        }
        if !out.is_empty() {
            send(&view(), &out);
        }
    }

    /// Message Control changed in configuration space (or the function was reset, `view`
    /// None: nothing can be pending then).
    pub(crate) fn set_control(&self, control: u16, view: Option<&dyn Fn() -> DmaView>) {
        let mut out = Vec::new();
        {
            let mut s = self.lock();
            s.enabled = control & CTRL_ENABLE != 0;
            s.function_mask = control & CTRL_FUNCTION_MASK != 0;
            self.enabled.store(s.enabled, Ordering::Release);
            s.take_deliverable(&mut out);
        }
        if let Some(view) = view
            && !out.is_empty()
        {
            send(&view(), &out);
        }
    }

    /// Signals vector `iv` for one completion: sends its message, or sets its pending bit
    /// while it or the function is masked. Nothing while MSI-X is disabled (INTx is not
    /// modelled). `io`: an I/O queue's completion, subject to coalescing at time `now`.
    #[inline]
    pub(crate) fn signal(&self, iv: u16, view: &DmaView, io: bool, now: impl FnOnce() -> u64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let v = iv as usize;
        let mut out = Vec::new();
        {
            let mut s = self.lock();
            if !s.enabled || v >= s.entries.len() {
                return;
            }
            let c = self.coalescing.load(Ordering::Relaxed);
            let (thr, time_ns) = ((c & 0xff) + 1, (c >> 8 & 0xff) as u64 * 100_000);
            if io && time_ns > 0 && !s.no_coalescing[v] {
                let a = &mut s.agg[v];
                a.count += 1;
                if a.count < thr {
                    if a.due.is_none() {
                        let due = now() + time_ns;
                        a.due = Some(due);
                        self.next_due.fetch_min(due, Ordering::AcqRel);
                    }
                    return;
                }
                *a = Agg::default();
            }
            s.fire(v, &mut out);
        }
        send(view, &out);
    }

    /// The earliest aggregation deadline, if any.
    #[inline]
    pub(crate) fn next_due(&self) -> Option<u64> {
        Some(self.next_due.load(Ordering::Acquire)).filter(|&d| d != u64::MAX)
    }

    /// Signals the vectors whose aggregation time has passed at `now`.
    pub(crate) fn fire_due(&self, now: u64, view: &DmaView) {
        if self.next_due.load(Ordering::Acquire) > now {
            return;
        }
        let mut out = Vec::new();
        {
            let mut s = self.lock();
            let mut next = u64::MAX;
            for v in 0..s.agg.len() {
                match s.agg[v].due {
                    Some(d) if d <= now => {
                        s.agg[v] = Agg::default();
                        if s.enabled {
                            s.fire(v, &mut out);
                        }
                    }
                    Some(d) => next = next.min(d),
                    None => {}
                }
            }
            self.next_due.store(next, Ordering::Release);
        }
        send(view, &out);
    }
}

/// Writes each message's data to its address. A message to memory the device cannot
/// reach is dropped (on hardware the IOMMU would fault it).
fn send(view: &DmaView, msgs: &[Message]) {
    for &(addr, data) in msgs {
        let _ = view.write_u32_release(addr, data);
    }
}
