//! What a script sees of a completion: its callback, the `ERROR status` warning, the
//! value `waitdone()` returns. Shared by the admin queue and I/O queue pairs.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nvplan::driver::{Completion, CplKind};
use nvplan::ioworker::direct::{DirectLbas, Outcome};
use pyo3::exceptions::{PyAssertionError, PyTimeoutError, PyTypeError, PyUserWarning};
use pyo3::prelude::*;

/// Dword 0 of the last completion any queue delivered: what `waitdone()` returns.
static LATEST_CDW0: AtomicU32 = AtomicU32::new(0);
/// Set while a `waitdone()` runs, so one called from a callback is refused.
static IN_WAITDONE: AtomicBool = AtomicBool::new(false);

pub(crate) fn latest_cdw0() -> u32 {
    LATEST_CDW0.load(Ordering::Relaxed)
}

/// A command sent from Python and not yet delivered.
pub(crate) struct Pending {
    pub(crate) cb: Option<Py<PyAny>>,
    /// The data buffer, kept alive until the command completes.
    pub(crate) _buf: Option<Py<PyAny>>,
    /// An Asynchronous Event Request (delivered but not counted by `waitdone`).
    pub(crate) aer: bool,
    /// The LBAs the command holds in the verification state until it completes.
    pub(crate) lbas: Option<DirectLbas>,
}

/// How the library's verification state should take a completion.
pub(crate) fn outcome(c: &Completion) -> Outcome {
    match c.kind {
        CplKind::Device if c.cqe.status().is_success() => Outcome::Success,
        CplKind::Device => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

/// Issues a `UserWarning`.
pub(crate) fn warn(py: Python<'_>, msg: &str) -> PyResult<()> {
    let c = CString::new(msg.replace('\0', " ")).expect("no NUL");
    PyErr::warn(py, &py.get_type::<PyUserWarning>(), &c, 1)
}

/// Status field of dword 3 as PyNVMe's callbacks get it: bits 31:16 (phase tag in bit 0).
pub(crate) fn status1(c: &Completion) -> u16 {
    (c.cqe.dw[3] >> 16) as u16
}

/// (SCT, SC) of a completion.
pub(crate) fn sct_sc(c: &Completion) -> (u8, u8) {
    let s = status1(c);
    (((s >> 9) & 7) as u8, ((s >> 1) & 0xff) as u8)
}

/// Delivers one completion: the callback first (with the CQE's four dwords, or with
/// `(cdw0, status1)` when it takes two arguments), then a warning for a failed command.
pub(crate) fn deliver(py: Python<'_>, c: &Completion, cb: Option<&Py<PyAny>>, qid: u16) -> PyResult<()> {
    LATEST_CDW0.store(c.cqe.dw[0], Ordering::Relaxed);
    if c.kind == CplKind::TimedOut {
        warn(py, &format!("drive timeout: qpair: {qid}, cid: {}", c.cid()))?;
    }
    if let Some(cb) = cb {
        let dw = c.cqe.dw;
        let r = match cb.call1(py, ((dw[0], dw[1], dw[2], dw[3]),)) {
            Err(e) if e.is_instance_of::<PyTypeError>(py) => cb.call1(py, (dw[0], status1(c))),
            r => r,
        };
        if let Err(e) = r {
            if e.is_instance_of::<PyAssertionError>(py) {
                warn(py, &format!("ASSERT: {}", e.value(py)))?;
            } else if e.is_instance_of::<PyTypeError>(py) {
                warn(py, &format!("callback: {}", e.value(py)))?;
            } else {
                e.write_unraisable(py, Some(cb.bind(py)));
            }
        }
    }
    let (sct, sc) = sct_sc(c);
    if c.kind != CplKind::Aborted && (sct != 0 || sc != 0) {
        warn(py, &format!("ERROR status: {sct:02x}/{sc:02x}"))?;
    }
    Ok(())
}

/// Marks a `waitdone()` running until dropped; refuses one inside another.
pub(crate) struct WaitGuard;

impl WaitGuard {
    pub(crate) fn enter() -> PyResult<WaitGuard> {
        if IN_WAITDONE.swap(true, Ordering::AcqRel) {
            return Err(PyAssertionError::new_err("cannot re-entry waitdone() functions which may be caused by waitdone in callback functions"));
        }
        Ok(WaitGuard)
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        IN_WAITDONE.store(false, Ordering::Release);
    }
}

/// How long `waitdone()` waits for completions before it gives up: the command timeout
/// plus 20 s, as PyNVMe.
pub(crate) fn waitdone_deadline(timeout_ms: u64) -> Instant {
    Instant::now() + Duration::from_secs(timeout_ms / 1000 + 20)
}

pub(crate) fn waitdone_timeout() -> PyErr {
    PyTimeoutError::new_err("pynvme timeout in driver")
}

/// Polls `poll` without the GIL until it returns completions or `deadline` passes;
/// Python signals (Ctrl-C) are checked between rounds.
pub(crate) fn poll_until<T: Send>(py: Python<'_>, deadline: Instant, mut poll: impl FnMut() -> Vec<T> + Send) -> PyResult<Vec<T>> {
    // A few polls with the GIL held first: a fast command completes within microseconds,
    // less than releasing and taking back the GIL costs.
    for _ in 0..64 {
        let got = poll();
        if !got.is_empty() {
            return Ok(got);
        }
        std::hint::spin_loop();
    }
    loop {
        let (got, expired) = py.detach(|| {
            let round = Instant::now() + Duration::from_millis(50);
            let mut spins = 0u32;
            loop {
                let got = poll();
                if !got.is_empty() {
                    return (got, false);
                }
                let now = Instant::now();
                if now >= deadline {
                    return (got, true);
                }
                if now >= round {
                    return (got, false);
                }
                spins += 1;
                if spins > 2000 {
                    std::thread::sleep(Duration::from_micros(20));
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        if !got.is_empty() || expired {
            return Ok(got);
        }
        py.check_signals()?;
    }
}
