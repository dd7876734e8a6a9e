//! `Controller`: registers, the admin queue with commands sent now and reaped by
//! `waitdone()`, identify data, resets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nvplan::driver::{Controller as Driver, ControllerOptions, CplKind, DataPtr, Msix};
use nvplan::nvme::{AdminOpcode, Sqe};
use nvplan::transport::SharedTransport;
use pyo3::exceptions::{PyAssertionError, PySystemError};
use pyo3::prelude::*;

use crate::NvmeEnumerateError;
use crate::buffer::{Buffer, data_value};
use crate::completion::{self, Pending, WaitGuard, deliver, sct_sc, warn};
use crate::pcie::Pcie;

/// PyNVMe's default command timeout, ms.
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

struct AdminState {
    pending: HashMap<u64, Pending>,
    latest_cid: u16,
    latest_latency_us: u64,
    /// Callback of the Asynchronous Event Requests sent again after each event.
    aer_cb: Option<Py<PyAny>>,
}

/// An NVMe controller: `Controller(pcie, nvme_init_func=None)`. Without an init function
/// the driver brings it up (CC.EN, admin queue, identify, queue count) and sends one
/// Asynchronous Event Request; with one, the script does (see `init_adminq`, `init_ns`,
/// `init_queues`).
#[pyclass(module = "nvme", subclass)]
pub struct Controller {
    pub(crate) pcie: Py<Pcie>,
    pub(crate) drv: Driver,
    state: Mutex<AdminState>,
    timeout_ms: AtomicU64,
    next_ctx: AtomicU64,
    init_func: Mutex<Option<Py<PyAny>>>,
}

fn enumerate_err(e: impl std::fmt::Display) -> PyErr {
    NvmeEnumerateError::new_err(format!("fail to create the controller: {e}"))
}

impl Controller {
    fn lock(&self) -> std::sync::MutexGuard<'_, AdminState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn transport(&self) -> &SharedTransport {
        self.drv.transport()
    }

    pub(crate) fn timeout_ms(&self) -> u64 {
        self.timeout_ms.load(Ordering::Relaxed)
    }

    /// Sends an admin command now; `waitdone()` delivers its completion.
    pub(crate) fn send(&self, sqe: Sqe, buf: Option<&Bound<'_, PyAny>>, cb: Option<Py<PyAny>>, aer: bool) -> PyResult<()> {
        let range = match buf {
            Some(b) => Some(b.cast::<Buffer>()?.borrow().data_range()),
            None => None,
        };
        let data = match range {
            Some((iova, _)) if AdminOpcode::from(sqe.opcode()).prp1_only() => DataPtr::Raw { prp1: iova, prp2: 0 },
            Some((iova, len)) if len > 0 => DataPtr::PrpAt { iova, len },
            _ => DataPtr::None,
        };
        let ctx = self.next_ctx.fetch_add(1, Ordering::Relaxed);
        let cid = self.drv.admin_submit(&sqe, data, ctx, !aer).map_err(|e| PyAssertionError::new_err(format!("error in submitting admin commands: {e}")))?;
        let mut st = self.lock();
        st.latest_cid = cid;
        st.pending.insert(ctx, Pending { cb, _buf: buf.map(|b| b.clone().unbind()), aer, lbas: None });
        Ok(())
    }

    fn send_aer(&self, py: Python<'_>) -> PyResult<()> {
        let cb = self.lock().aer_cb.as_ref().map(|c| c.clone_ref(py));
        self.send(nvplan::nvme::cmd::async_event_request(), None, cb, true)
    }

    /// Runs an admin command with a data buffer of `len` bytes and waits for it (for
    /// `id_data` and the like); a failed status is warned, as `waitdone()` would.
    pub(crate) fn run_sync(&self, py: Python<'_>, sqe: Sqe, len: usize) -> PyResult<Vec<u8>> {
        let d = self.drv.dma(len.max(4096)).map_err(|e| PyAssertionError::new_err(e.to_string()))?;
        let timeout = Duration::from_millis(self.timeout_ms());
        let drv = self.drv.clone();
        let d2 = d.clone();
        let cqe = py.detach(move || drv.admin_raw(&sqe, DataPtr::Prp(&d2), timeout)).map_err(|e| PyAssertionError::new_err(e.to_string()))?;
        if !cqe.status().is_success() {
            warn(py, &format!("ERROR status: {}", cqe.status().code_text()))?;
        }
        let mut v = d.to_vec();
        v.truncate(len);
        Ok(v)
    }

    pub(crate) fn identify_data(&self, py: Python<'_>, nsid: u32, cns: u8, cntid: u16, csi: u8, nvmsetid: u16) -> PyResult<Vec<u8>> {
        let mut sqe = nvplan::nvme::cmd::identify(cns, nsid);
        sqe.dw[10] = (cntid as u32) << 16 | cns as u32;
        sqe.dw[11] = (csi as u32) << 24 | nvmsetid as u32;
        self.run_sync(py, sqe, 4096)
    }

    /// Whether the Commands Supported and Effects log (05h) lists `opcode` (256 and up:
    /// I/O commands).
    pub(crate) fn supports_opcode(&self, py: Python<'_>, opcode: u32) -> PyResult<bool> {
        let log = self.run_sync(py, nvplan::nvme::cmd::get_log_page(0x05, 0, 4096, false, 0), 4096)?;
        let i = opcode as usize * 4;
        Ok(log.get(i..i + 4).is_some_and(|b| b.iter().any(|&x| x != 0)))
    }

    fn default_init(&self, py: Python<'_>) -> PyResult<()> {
        let drv = self.drv.clone();
        py.detach(move || drv.reset()).map_err(enumerate_err)?;
        self.send_aer(py)
    }

    fn run_init(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.borrow();
        // PyNVMe brings MSI-X up with the controller, so each I/O queue gets its own vector
        // (every vector stays masked until a qpair's `msix_*` methods program it). Where the
        // kernel owns the table (vfio-pci) MSI-X stays off and queues use vector 0.
        if let Ok(Some(m)) = Msix::find(this.transport()) {
            m.enable().map_err(enumerate_err)?;
        }
        this.lock().pending.clear();
        let f = this.init_func.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|f| f.clone_ref(py));
        match f {
            None => this.default_init(py),
            Some(f) => {
                drop(this);
                slf.borrow().drv.begin_reset();
                f.call1(py, (slf,))?;
                slf.borrow().drv.mark_ready();
                Ok(())
            }
        }
    }
}

#[pymethods]
impl Controller {
    #[new]
    #[pyo3(signature = (pcie, nvme_init_func=None))]
    fn new(py: Python<'_>, pcie: Py<Pcie>, nvme_init_func: Option<Py<PyAny>>) -> PyResult<Self> {
        let t = pcie.bind(py).borrow().transport()?;
        let opts = ControllerOptions { admin_entries: 128, command_timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS), ..ControllerOptions::default() };
        let drv = Driver::unconfigured(t, opts).map_err(enumerate_err)?;
        let init = match nvme_init_func {
            Some(f) if f.bind(py).is_callable() => Some(f),
            Some(f) if f.bind(py).is_truthy()? => {
                // `True`: the controller is up already (another handle brought it up).
                drv.identify_all().map_err(enumerate_err)?;
                let q = drv.get_features(0x07, 0).map_err(enumerate_err)?;
                drv.grant_io_queues(q);
                drv.mark_ready();
                return Ok(Self::build(pcie, drv, None));
            }
            _ => None,
        };
        Ok(Self::build(pcie, drv, init))
    }

    /// Brings the controller up: by the driver, or by the script's init function.
    /// Called by the `nvme` module's constructor.
    fn _init(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.borrow().drv.is_ready() {
            return Ok(());
        }
        Self::run_init(slf)
    }

    /// A 32-bit register of BAR0.
    fn __getitem__(&self, offset: usize) -> PyResult<u32> {
        if !offset.is_multiple_of(4) {
            return Err(PyAssertionError::new_err("only support 4-byte aligned NVMe register read"));
        }
        let v = self.transport().read32(offset);
        if v == u32::MAX {
            return Err(PySystemError::new_err(format!("register {offset:#x} reads FFFFFFFFh: the controller does not answer")));
        }
        Ok(v)
    }

    fn __setitem__(&self, offset: usize, value: u32) -> PyResult<()> {
        if !offset.is_multiple_of(4) {
            return Err(PyAssertionError::new_err("only support 4-byte aligned NVMe register write"));
        }
        self.transport().write32(offset, value);
        Ok(())
    }

    /// Controller Capabilities (64 bits).
    #[getter]
    fn cap(&self) -> u64 {
        self.transport().read64(0)
    }

    /// Largest transfer per command in bytes (MDTS; 1 MiB at most, as PyNVMe).
    #[getter]
    fn mdts(&self) -> u64 {
        let mps = 1u64 << (12 + (self.drv.cap().0 >> 48 & 0xf));
        match self.drv.identify().mdts {
            0 => 1 << 20,
            n => (mps << n).min(1 << 20),
        }
    }

    /// Command timeout in ms (default 10000).
    #[getter]
    fn get_timeout(&self) -> u64 {
        self.timeout_ms()
    }

    #[setter]
    fn set_timeout(&self, ms: u64) {
        self.timeout_ms.store(ms, Ordering::Relaxed);
        self.drv.set_admin_timeout(Duration::from_millis(ms));
    }

    /// CID of the admin command sent last.
    #[getter]
    fn latest_cid(&self) -> u16 {
        self.lock().latest_cid
    }

    /// Latency of the admin command completed last, µs.
    #[getter]
    fn latest_latency(&self) -> u64 {
        self.lock().latest_latency_us
    }

    /// The PCIe address (or target) the controller was opened at.
    #[getter]
    fn addr(&self, py: Python<'_>) -> String {
        self.pcie.bind(py).borrow().addr().to_string()
    }

    /// Reaps `expected` admin completions (Asynchronous Event Requests do not count),
    /// running their callbacks; returns dword 0 of the last completion.
    #[pyo3(signature = (expected=1))]
    fn waitdone(&self, py: Python<'_>, expected: u32) -> PyResult<u32> {
        let _g = WaitGuard::enter()?;
        let deadline = completion::waitdone_deadline(self.timeout_ms());
        let mut reaped = 0;
        while reaped < expected {
            let drv = &self.drv;
            let got = completion::poll_until(py, deadline, || {
                let mut v = Vec::new();
                drv.admin_reap(|c| v.push(*c));
                v
            })?;
            if got.is_empty() {
                return Err(completion::waitdone_timeout());
            }
            for c in got {
                let Some(p) = self.lock().pending.remove(&c.ctx) else { continue };
                self.lock().latest_latency_us = c.submitted.elapsed().as_micros() as u64;
                if p.aer {
                    let (sct, sc) = sct_sc(&c);
                    let event = c.kind == CplKind::Device && sct == 0 && sc == 0;
                    if event {
                        warn(py, &format!("AER notification is triggered: {:#x}", c.cqe.dw[0]))?;
                    }
                    // Aborted because the queue went away (00/08): not the script's concern.
                    if c.kind == CplKind::Device && !(sct == 0 && sc == 8) {
                        deliver(py, &c, p.cb.as_ref(), 0)?;
                    }
                    if event {
                        self.send_aer(py)?;
                    }
                } else {
                    deliver(py, &c, p.cb.as_ref(), 0)?;
                    reaped += 1;
                }
            }
        }
        Ok(completion::latest_cdw0())
    }

    /// Controller reset (CC.EN) and bring-up again, by the driver or the init function.
    fn reset(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::run_init(slf)
    }

    /// Programs the admin queue registers (AQA, ASQ, ACQ) for a script's own bring-up.
    fn init_adminq(&self) -> i32 {
        self.drv.init_admin_queue();
        0
    }

    /// Identifies the controller and its namespaces (script bring-up).
    fn init_ns(&self, py: Python<'_>) -> PyResult<i32> {
        let drv = self.drv.clone();
        Ok(match py.detach(move || drv.identify_all()) {
            Ok(()) => 0,
            Err(_) => -1,
        })
    }

    /// Records the I/O queues granted: dword 0 of Get/Set Features (Number of Queues).
    fn init_queues(&self, cdw0: u32) {
        self.drv.grant_io_queues(cdw0);
    }

    /// Identify (06h) into `buf`.
    #[pyo3(signature = (buf, nsid=0, cns=1, cntid=0, csi=0, nvmsetid=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn identify<'py>(
        slf: &Bound<'py, Self>,
        buf: &Bound<'py, PyAny>,
        nsid: u32,
        cns: u8,
        cntid: u16,
        csi: u8,
        nvmsetid: u16,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        if buf.len()? < 4096 {
            return Err(PyAssertionError::new_err("identify needs a buffer of 4096 bytes or more"));
        }
        let mut sqe = nvplan::nvme::cmd::identify(cns, nsid);
        sqe.dw[10] = (cntid as u32) << 16 | cns as u32;
        sqe.dw[11] = (csi as u32) << 24 | nvmsetid as u32;
        slf.borrow().send(sqe, Some(buf), cb, false)?;
        Ok(slf.clone())
    }

    /// Identify data bytes `byte_begin..=byte_end` (int, or `type=str`).
    #[pyo3(signature = (byte_end, byte_begin=None, r#type=None, nsid=0, cns=1, cntid=0, csi=0, nvmsetid=0))]
    #[allow(clippy::too_many_arguments)]
    fn id_data(
        &self,
        py: Python<'_>,
        byte_end: usize,
        byte_begin: Option<usize>,
        r#type: Option<&Bound<'_, PyAny>>,
        nsid: u32,
        cns: u8,
        cntid: u16,
        csi: u8,
        nvmsetid: u16,
    ) -> PyResult<Py<PyAny>> {
        let d = self.identify_data(py, nsid, cns, cntid, csi, nvmsetid)?;
        let begin = byte_begin.unwrap_or(byte_end);
        if begin > byte_end || byte_end >= d.len() {
            return Err(PyAssertionError::new_err(format!("identify bytes {begin}..={byte_end} outside 0..4096")));
        }
        data_value(py, &d[begin..=byte_end], r#type)
    }

    /// Get Features (0Ah).
    #[pyo3(signature = (fid, sel=0, buf=None, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn getfeatures<'py>(
        slf: &Bound<'py, Self>,
        fid: u8,
        sel: u8,
        buf: Option<&Bound<'py, PyAny>>,
        cdw11: u32,
        cdw12: u32,
        cdw13: u32,
        cdw14: u32,
        cdw15: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let sqe = raw(0x0a, 1, [(sel as u32) << 8 | fid as u32, cdw11, cdw12, cdw13, cdw14, cdw15]);
        slf.borrow().send(sqe, buf, cb, false)?;
        Ok(slf.clone())
    }

    /// Set Features (09h).
    #[pyo3(signature = (fid, sv=0, buf=None, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn setfeatures<'py>(
        slf: &Bound<'py, Self>,
        fid: u8,
        sv: u8,
        buf: Option<&Bound<'py, PyAny>>,
        cdw11: u32,
        cdw12: u32,
        cdw13: u32,
        cdw14: u32,
        cdw15: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let sqe = raw(0x09, u32::MAX, [(sv as u32 & 1) << 31 | fid as u32, cdw11, cdw12, cdw13, cdw14, cdw15]);
        slf.borrow().send(sqe, buf, cb, false)?;
        Ok(slf.clone())
    }

    /// Get Log Page (02h) of `size` bytes (the buffer's length by default) from `offset`.
    #[pyo3(signature = (lid, buf, size=None, offset=0, nsid=0xffff_ffff, cb=None))]
    fn getlogpage<'py>(
        slf: &Bound<'py, Self>,
        lid: u8,
        buf: &Bound<'py, PyAny>,
        size: Option<usize>,
        offset: u64,
        nsid: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let size = match size {
            Some(s) => s,
            None => buf.len()?,
        };
        if !size.is_multiple_of(4) {
            return Err(PyAssertionError::new_err("size must be dword aligned"));
        }
        if !offset.is_multiple_of(4) {
            return Err(PyAssertionError::new_err("offset must be dword aligned"));
        }
        let numd = (size / 4).saturating_sub(1) as u32;
        let sqe = raw(0x02, nsid, [(numd & 0xffff) << 16 | lid as u32, numd >> 16, offset as u32, (offset >> 32) as u32, 0, 0]);
        slf.borrow().send(sqe, Some(buf), cb, false)?;
        Ok(slf.clone())
    }

    /// Abort (08h) of command `cid` in queue `sqid`.
    #[pyo3(signature = (cid, sqid=0, cb=None))]
    fn abort<'py>(slf: &Bound<'py, Self>, cid: u16, sqid: u16, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        slf.borrow().send(raw(0x08, 0, [(cid as u32) << 16 | sqid as u32, 0, 0, 0, 0, 0]), None, cb, false)?;
        Ok(slf.clone())
    }

    /// Asynchronous Event Request (0Ch); `cb` also serves the requests sent again after
    /// each event.
    #[pyo3(signature = (cb=None))]
    fn aer<'py>(slf: &Bound<'py, Self>, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        let py = slf.py();
        let this = slf.borrow();
        if let Some(c) = &cb {
            this.lock().aer_cb = Some(c.clone_ref(py));
        }
        this.send(nvplan::nvme::cmd::async_event_request(), None, cb, true)?;
        Ok(slf.clone())
    }

    /// Format NVM (80h).
    #[pyo3(signature = (lbaf=0, ses=0, nsid=1, cb=None))]
    fn format<'py>(slf: &Bound<'py, Self>, lbaf: u8, ses: u8, nsid: u32, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        if ses >= 8 {
            return Err(PyAssertionError::new_err("invalid format ses"));
        }
        if lbaf >= 16 {
            return Err(PyAssertionError::new_err("invalid format lbaf"));
        }
        let this = slf.borrow();
        this.drv.data_erased();
        this.send(raw(0x80, nsid, [(ses as u32) << 9 | lbaf as u32, 0, 0, 0, 0, 0]), None, cb, false)?;
        Ok(slf.clone())
    }

    /// Sanitize (84h).
    #[pyo3(signature = (option=2, pattern=0, cb=None))]
    fn sanitize<'py>(slf: &Bound<'py, Self>, option: u32, pattern: u32, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        let this = slf.borrow();
        this.drv.data_erased();
        this.send(raw(0x84, 0, [option, pattern, 0, 0, 0, 0]), None, cb, false)?;
        Ok(slf.clone())
    }

    /// Device Self-test (14h).
    #[pyo3(signature = (stc=1, nsid=0xffff_ffff, cb=None))]
    fn dst<'py>(slf: &Bound<'py, Self>, stc: u32, nsid: u32, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        slf.borrow().send(raw(0x14, nsid, [stc, 0, 0, 0, 0, 0]), None, cb, false)?;
        Ok(slf.clone())
    }

    /// Firmware Image Download (11h) of `size` bytes (the buffer's length) at `offset`.
    #[pyo3(signature = (buf, offset, size=None, cb=None))]
    fn fw_download<'py>(slf: &Bound<'py, Self>, buf: &Bound<'py, PyAny>, offset: u32, size: Option<u32>, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        let size = match size {
            Some(s) => s,
            None => buf.len()? as u32,
        };
        slf.borrow().send(raw(0x11, 0, [(size >> 2).wrapping_sub(1), offset >> 2, 0, 0, 0, 0]), Some(buf), cb, false)?;
        Ok(slf.clone())
    }

    /// Firmware Commit (10h).
    #[pyo3(signature = (slot, action, cb=None))]
    fn fw_commit<'py>(slf: &Bound<'py, Self>, slot: u8, action: u8, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Self>> {
        if slot >= 8 {
            return Err(PyAssertionError::new_err(format!("invalid fw slot: {slot}")));
        }
        if action >= 8 {
            return Err(PyAssertionError::new_err(format!("invalid fw commit action: {action}")));
        }
        slf.borrow().send(raw(0x10, 0, [(action as u32) << 3 | slot as u32, 0, 0, 0, 0, 0]), None, cb, false)?;
        Ok(slf.clone())
    }

    /// Any admin command: `opcode` is dword 0 (opcode, FUSE, PSDT; the CID is the
    /// driver's).
    #[pyo3(signature = (opcode, buf=None, nsid=0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn send_cmd<'py>(
        slf: &Bound<'py, Self>,
        opcode: u32,
        buf: Option<&Bound<'py, PyAny>>,
        nsid: u32,
        cdw10: u32,
        cdw11: u32,
        cdw12: u32,
        cdw13: u32,
        cdw14: u32,
        cdw15: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let mut sqe = raw(0, nsid, [cdw10, cdw11, cdw12, cdw13, cdw14, cdw15]);
        sqe.dw[0] = opcode & 0xffff;
        let this = slf.borrow();
        if matches!(opcode & 0xff, 0x80 | 0x84) {
            this.drv.data_erased();
        }
        this.send(sqe, buf, cb, false)?;
        Ok(slf.clone())
    }

    /// Whether the controller supports `opcode` (admin below 256, I/O from 256), by the
    /// Commands Supported and Effects log.
    fn supports(&self, py: Python<'_>, opcode: u32) -> PyResult<bool> {
        if opcode >= 512 {
            return Err(PyAssertionError::new_err("opcode must be below 512"));
        }
        self.supports_opcode(py, opcode)
    }

    /// Logs the admin queue's most recent commands (kept for compatibility; nvplan's
    /// driver keeps no per-queue command log).
    #[pyo3(signature = (count=0))]
    fn cmdlog(&self, count: usize) {
        let _ = count;
    }
}

impl Controller {
    fn build(pcie: Py<Pcie>, drv: Driver, init_func: Option<Py<PyAny>>) -> Self {
        Controller {
            pcie,
            drv,
            state: Mutex::new(AdminState { pending: HashMap::new(), latest_cid: 0, latest_latency_us: 0, aer_cb: None }),
            timeout_ms: AtomicU64::new(DEFAULT_TIMEOUT_MS),
            next_ctx: AtomicU64::new(1),
            init_func: Mutex::new(init_func),
        }
    }
}

/// An SQE with opcode, NSID and dwords 10 to 15.
pub(crate) fn raw(opcode: u8, nsid: u32, cdw: [u32; 6]) -> Sqe {
    let mut s = Sqe { dw: [0; 16] };
    s.dw[0] = opcode as u32;
    s.dw[1] = nsid;
    s.dw[10..16].copy_from_slice(&cdw);
    s
}
