//! The MSI-X table and Pending Bit Array in BAR0, and message delivery (PCI Local Bus 3.0
//! §6.8.2). A message is a 32-bit memory write of the vector's Message Data to its Message
//! Address, made through the device's DMA view like any other write to host memory.
//!
//! NVMe 1.4 §7.5.1.1: a completion posted to a CQ with IEN = 1 signals its IV. Interrupt
//! Coalescing (Set Features 08h) is accepted but not modelled: every completion signals at
//! once. §5.21.1.8 makes THR a "desired minimum" and TIME a "recommended maximum" delay,
//! so signalling at once conforms.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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
    state: Mutex<State>,
}

struct State {
    enabled: bool,
    function_mask: bool,
    /// `[address lo, address hi, data, vector control]` per vector.
    entries: Vec<[u32; 4]>,
    pending: Vec<u64>,
}

impl State {
    fn reset(vectors: usize) -> Self {
        State { enabled: false, function_mask: false, entries: vec![[0, 0, 0, MASK]; vectors], pending: vec![0; vectors.div_ceil(64)] }
    }

    fn message(&self, v: usize) -> Message {
        let e = &self.entries[v];
        ((e[1] as u64) << 32 | e[0] as u64, e[2])
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
        Msix { table, pba, vectors, enabled: AtomicBool::new(false), state: Mutex::new(State::reset(vectors)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Function reset or power-on: every vector masked, address and data zero, nothing
    /// pending; Enable and Function Mask follow configuration space (`control`).
    pub(crate) fn reset(&self, control: u16) {
        *self.lock() = State::reset(self.vectors);
        self.set_control(control, None);
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

    /// Signals vector `iv`: sends its message, or sets its pending bit while it or the
    /// function is masked. Nothing while MSI-X is disabled (INTx is not modelled).
    #[inline]
    pub(crate) fn signal(&self, iv: u16, view: &DmaView) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let v = iv as usize;
        let msg = {
            let mut s = self.lock();
            if !s.enabled || v >= s.entries.len() {
                return;
            }
            if s.function_mask || s.entries[v][3] & MASK != 0 {
                s.set_pending(v, true);
                return;
            }
            s.message(v)
        };
        send(view, &[msg]);
    }
}

/// Writes each message's data to its address. A message to memory the device cannot
/// reach is dropped (on hardware the IOMMU would fault it).
fn send(view: &DmaView, msgs: &[Message]) {
    for &(addr, data) in msgs {
        let _ = view.write_u32_release(addr, data);
    }
}
