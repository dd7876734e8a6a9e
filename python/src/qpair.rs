//! `Qpair`: an I/O queue pair commands are sent to now and reaped by `waitdone()`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use nvplan::driver::{DataPtr, Msix, QPair, QpairOptions};
use nvplan::ioworker::direct::DirectLbas;
use nvplan::nvme::Sqe;
use nvplan::transport::DmaBuffer;
use pyo3::exceptions::PyAssertionError;
use pyo3::prelude::*;

use crate::QpairCreationError;
use crate::completion::{self, Pending, WaitGuard, deliver};
use crate::controller::Controller;

/// An I/O queue pair: `Qpair(nvme, depth, prio=0, ien=True, iv=0xffff)`; up to
/// `depth - 1` commands can be outstanding.
#[pyclass(module = "nvme", subclass)]
pub struct Qpair {
    ctrl: Py<Controller>,
    qp: Mutex<Option<QPair>>,
    pending: Mutex<HashMap<u64, Pending>>,
    qid: u16,
    next_ctx: AtomicU64,
    latest_cid: AtomicU16,
    latest_latency_us: AtomicU64,
    /// The CQ's interrupt vector (ien=True).
    irq: Option<u16>,
    /// The vector pointed at a word of its own, set up by the first `msix_*` call.
    msix: Mutex<Option<(Msix, DmaBuffer)>>,
}

/// Message data the vector writes.
const MSIX_DATA: u32 = 1;

impl Qpair {
    /// Sends an I/O command now; `waitdone()` delivers its completion.
    pub(crate) fn send(
        &self,
        sqe: &Sqe,
        data: Option<(u64, usize)>,
        buf: Option<&Bound<'_, PyAny>>,
        cb: Option<Py<PyAny>>,
        lbas: Option<DirectLbas>,
    ) -> PyResult<()> {
        let ctx = self.next_ctx.fetch_add(1, Ordering::Relaxed);
        let data = match data {
            Some((iova, len)) if len > 0 => DataPtr::PrpAt { iova, len },
            _ => DataPtr::None,
        };
        let mut g = self.qp.lock().unwrap_or_else(|e| e.into_inner());
        let qp = g.as_mut().ok_or_else(|| PyAssertionError::new_err("the qpair was deleted"))?;
        // On a refused submission `lbas` is dropped here, releasing them unchanged.
        let cid = qp.submit(sqe, data, ctx).map_err(|e| PyAssertionError::new_err(format!("error in submitting io commands: {e}")))?;
        qp.ring();
        drop(g);
        self.latest_cid.store(cid, Ordering::Relaxed);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(ctx, Pending { cb, _buf: buf.map(|b| b.clone().unbind()), aer: false, lbas });
        Ok(())
    }

    /// Masks the vector before its message word is freed: a later queue on the same
    /// vector must not write into memory that has been handed out again.
    fn release_msix(&self) {
        if let (Some((m, _word)), Some(iv)) = (self.msix.lock().unwrap_or_else(|e| e.into_inner()).take(), self.irq) {
            let _ = m.mask(iv);
        }
    }

    /// The vector's MSI-X entry and message word, set up on first use: the vector writes
    /// `MSIX_DATA` to the word, MSI-X enabled on the function.
    fn with_msix<T>(&self, py: Python<'_>, f: impl FnOnce(&Msix, u16, &DmaBuffer) -> Result<T, nvplan::driver::DriverError>) -> PyResult<T> {
        let iv = self.irq.ok_or_else(|| PyAssertionError::new_err("the qpair was created with ien=False: it has no interrupt"))?;
        let err = |e: nvplan::driver::DriverError| PyAssertionError::new_err(format!("MSI-X: {e}"));
        let mut g = self.msix.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            let c = self.ctrl.bind(py).borrow();
            let m = Msix::find(c.transport()).map_err(err)?.ok_or_else(|| PyAssertionError::new_err("the function has no MSI-X capability"))?;
            let word = c.drv.dma(4096).map_err(err)?;
            m.program(iv, word.iova(), MSIX_DATA).map_err(err)?;
            m.enable().map_err(err)?;
            *g = Some((m, word));
        }
        let (m, word) = g.as_ref().expect("set up above");
        f(m, iv, word).map_err(err)
    }
}

impl Drop for Qpair {
    fn drop(&mut self) {
        self.release_msix();
    }
}

#[pymethods]
impl Qpair {
    #[new]
    #[pyo3(signature = (nvme, depth, prio=0, ien=true, iv=0xffff))]
    fn new(py: Python<'_>, nvme: Py<Controller>, depth: u32, prio: u8, ien: bool, iv: u32) -> PyResult<Self> {
        // PyNVMe: iv 0xffff is the queue's ID with interrupts on, vector 0 with them off.
        let iv = match iv {
            0xffff if ien => None,
            0xffff => Some(0),
            v => Some(u16::try_from(v).map_err(|_| PyAssertionError::new_err(format!("iv {v} is larger than 0xffff")))?),
        };
        if !(2..=1024).contains(&depth) {
            return Err(PyAssertionError::new_err("qdepth should be in [2, 1024]"));
        }
        let c = nvme.bind(py).borrow();
        if depth > c.drv.cap().max_queue_entries() {
            return Err(PyAssertionError::new_err("qpair depth is larger than specification"));
        }
        let drv = c.drv.clone();
        let timeout = Duration::from_millis(c.timeout_ms());
        drop(c);
        let mut qp = py
            .detach(move || drv.create_qpair(QpairOptions { entries: depth, prio, ien, iv }))
            .map_err(|e| QpairCreationError::new_err(format!("qpair create fail: {e}")))?;
        qp.set_timeout(timeout);
        let qid = qp.qid();
        let irq = qp.interrupt_vector();
        Ok(Qpair {
            ctrl: nvme,
            qp: Mutex::new(Some(qp)),
            pending: Mutex::new(HashMap::new()),
            qid,
            next_ctx: AtomicU64::new(1),
            latest_cid: AtomicU16::new(0),
            latest_latency_us: AtomicU64::new(0),
            irq,
            msix: Mutex::new(None),
        })
    }

    fn __repr__(&self) -> String {
        format!("<qpair: {}>", self.qid)
    }

    /// Submission queue ID.
    #[getter]
    fn sqid(&self) -> u16 {
        self.qid
    }

    /// CID of the command sent last.
    #[getter]
    fn latest_cid(&self) -> u16 {
        self.latest_cid.load(Ordering::Relaxed)
    }

    /// Latency of the command completed last, µs.
    #[getter]
    fn latest_latency(&self) -> u64 {
        self.latest_latency_us.load(Ordering::Relaxed)
    }

    /// Reaps exactly `expected` completions, running their callbacks; returns dword 0 of
    /// the last.
    #[pyo3(signature = (expected=1))]
    fn waitdone(&self, py: Python<'_>, expected: u32) -> PyResult<u32> {
        let _g = WaitGuard::enter()?;
        let timeout_ms = self.ctrl.bind(py).borrow().timeout_ms();
        let deadline = completion::waitdone_deadline(timeout_ms);
        if let Some(qp) = self.qp.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            qp.set_timeout(Duration::from_millis(timeout_ms));
        }
        let mut reaped = 0u32;
        while reaped < expected {
            let want = (expected - reaped) as usize;
            let qp = &self.qp;
            let got = completion::poll_until(py, deadline, || {
                let mut v = Vec::new();
                if let Some(q) = qp.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    q.poll(want, |c| v.push(*c));
                }
                v
            })?;
            if got.is_empty() {
                return Err(completion::waitdone_timeout());
            }
            for c in got {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&c.ctx);
                self.latest_latency_us.store(c.submitted.elapsed().as_micros() as u64, Ordering::Relaxed);
                // Released before the callback, which may send a command on the same LBAs.
                if let Some(l) = p.as_mut().and_then(|p| p.lbas.take()) {
                    l.finish(completion::outcome(&c));
                }
                deliver(py, &c, p.as_ref().and_then(|p| p.cb.as_ref()), self.qid)?;
                reaped += 1;
            }
        }
        Ok(completion::latest_cdw0())
    }

    /// Deletes the queues on the controller (SQ, then CQ); a second call does nothing.
    fn delete(&self, py: Python<'_>) {
        let qp = self.qp.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.detach(move || drop(qp));
        self.release_msix();
    }

    /// Zeroes the word the queue's MSI-X vector writes.
    fn msix_clear(&self, py: Python<'_>) -> PyResult<()> {
        self.with_msix(py, |_, _, w| {
            w.store_u32_release(0, 0);
            Ok(())
        })
    }

    /// Whether the queue's vector has sent a message since `msix_clear()`.
    fn msix_isset(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_msix(py, |_, _, w| Ok(w.load_u32_acquire(0) != 0))
    }

    /// Masks the queue's vector: completions set its pending bit instead.
    fn msix_mask(&self, py: Python<'_>) -> PyResult<()> {
        self.with_msix(py, |m, iv, _| m.mask(iv))
    }

    /// Unmasks the queue's vector; a pending message is sent then.
    fn msix_unmask(&self, py: Python<'_>) -> PyResult<()> {
        self.with_msix(py, |m, iv, _| m.unmask(iv))
    }

    /// Logs the most recent commands (kept for compatibility).
    #[pyo3(signature = (count=0))]
    fn cmdlog(&self, count: usize) {
        let _ = count;
    }
}
