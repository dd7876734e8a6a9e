//! PyNVMe3's metamode: `PRP`, `PRPList`, `SQE`, `CQE`, `IOCQ` and `IOSQ` over the
//! library's `nvplan::metamode` (raw queues in DMA memory, whole SQEs written into slots,
//! doorbells rung with any value, CQEs read from queue memory). This file only converts
//! between Python objects and the library's, and keeps Python references to the memory a
//! command or queue points to so that it outlives them.
//!
//! `sq.read()`/`sq.write()` place a command at the slot the tail doorbell points at and do
//! not ring it: the script writes `sq.tail` (the seed writes `sq.tail = 1` after
//! `sq.read(...)`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use nvplan::driver::Controller as Driver;
use nvplan::metamode::{IoCq, IoSq, MetaError, PRP_LIST_BYTES, PrpList as LibPrpList};
use nvplan::nvme::{Cqe, Sqe};
use pyo3::exceptions::{PyAssertionError, PyIndexError, PyRuntimeError, PyTimeoutError, PyTypeError};
use pyo3::prelude::*;

use crate::QpairCreationError;
use crate::buffer::Buffer;
use crate::completion::warn;
use crate::controller::Controller;

/// Entries of a PRP list page.
const PRP_LIST_ENTRIES: usize = PRP_LIST_BYTES / 8;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn meta_err(e: MetaError) -> PyErr {
    match e {
        MetaError::Timeout { .. } => PyTimeoutError::new_err(e.to_string()),
        MetaError::OutOfRange(_) => PyIndexError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

/// The library controller behind a Python `Controller`.
fn driver(ctrlr: &Bound<'_, PyAny>) -> PyResult<Driver> {
    Ok(ctrlr.cast::<Controller>()?.borrow().drv.clone())
}

/// The address a data pointer presents: a `Buffer`'s `phys_addr` (offset included), or
/// an int as it is (for invalid addresses).
fn addr_of(v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(b) = v.cast::<Buffer>() {
        return Ok(b.borrow().phys_addr());
    }
    v.extract::<u64>().map_err(|_| PyTypeError::new_err("expected a Buffer (PRP, PRPList) or an address"))
}

/// `PRP(size=4096, ptype=0, pvalue=0)`: a `Buffer` used as a data pointer or as queue
/// memory; `offset` makes it unaligned.
#[pyclass(module = "nvme", name = "PRP", extends = Buffer, subclass)]
pub struct Prp;

#[pymethods]
impl Prp {
    #[new]
    #[pyo3(signature = (size=4096, ptype=0, pvalue=0))]
    fn new(size: usize, ptype: u32, pvalue: u32) -> PyResult<PyClassInitializer<Self>> {
        Ok(PyClassInitializer::from(Buffer::alloc(size, "PRP", pvalue, ptype)?).add_subclass(Prp))
    }
}

/// `PRPList()`: a 4 KiB page of 512 PRP entries. `l[i] = prp` writes the PRP's
/// `phys_addr` (offset included) little-endian at entry `i` from the list's own offset and
/// keeps the PRP alive; entry 511 may be another `PRPList` (a chain).
#[pyclass(module = "nvme", name = "PRPList", extends = Prp)]
pub struct PrpList {
    refs: Mutex<HashMap<usize, Py<PyAny>>>,
}

#[pymethods]
impl PrpList {
    #[new]
    fn new() -> PyResult<PyClassInitializer<Self>> {
        let base = PyClassInitializer::from(Buffer::alloc(PRP_LIST_BYTES, "PRPList", 0, 0)?).add_subclass(Prp);
        Ok(base.add_subclass(PrpList { refs: Mutex::new(HashMap::new()) }))
    }

    fn __setitem__(slf: PyRef<'_, Self>, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let buf: &Buffer = slf.as_super().as_super();
        // Bytes and slices stay Buffer indexing; a Buffer value is a list entry.
        let Ok(b) = value.cast::<Buffer>() else { return buf.__setitem__(index, value) };
        let i: usize = index.extract()?;
        if i >= PRP_LIST_ENTRIES {
            return Err(PyAssertionError::new_err(format!("PRP list entry {i} outside 0..{PRP_LIST_ENTRIES}")));
        }
        LibPrpList::from_prp(buf.prp()).set(i, b.borrow().phys_addr()).map_err(meta_err)?;
        lock(&slf.refs).insert(i, b.clone().into_any().unbind());
        Ok(())
    }
}

/// The pages a `PRPList` names from entry 0 until the first unset one, following a
/// `PRPList` in entry 511 (a chain): the memory of a non-contiguous queue (PC = 0).
fn list_pages(list: &Bound<'_, PyAny>, out: &mut Vec<nvplan::metamode::Prp>) -> PyResult<()> {
    let l = list.cast::<PrpList>()?;
    let refs: Vec<Option<Py<PyAny>>> = {
        let b = l.borrow();
        let r = lock(&b.refs);
        (0..PRP_LIST_ENTRIES).map(|i| r.get(&i).map(|o| o.clone_ref(list.py()))).collect()
    };
    for (i, e) in refs.into_iter().enumerate() {
        let Some(e) = e else { break };
        let e = e.into_bound(list.py());
        if i == PRP_LIST_ENTRIES - 1 && e.is_instance_of::<PrpList>() {
            return list_pages(&e, out);
        }
        out.push(e.cast::<Buffer>()?.borrow().prp());
    }
    Ok(())
}

/// `SQE(opcode, nsid)`: a 64-byte command. Dwords by index (`sqe[12] = 1`), fields by
/// name; `prp1`/`prp2` take a Buffer (its `phys_addr`, kept alive) or an address.
#[pyclass(module = "nvme", name = "SQE")]
pub struct PySqe {
    pub(crate) sqe: Sqe,
    refs: Vec<Py<PyAny>>,
}

#[pymethods]
impl PySqe {
    #[new]
    #[pyo3(signature = (opcode=0, nsid=0))]
    fn new(opcode: u8, nsid: u32) -> Self {
        PySqe { sqe: Sqe::new(opcode, nsid), refs: Vec::new() }
    }

    fn __len__(&self) -> usize {
        16
    }
    fn __getitem__(&self, i: usize) -> PyResult<u32> {
        self.sqe.dw.get(i).copied().ok_or_else(|| PyIndexError::new_err(format!("SQE dword {i} outside 0..16")))
    }
    fn __setitem__(&mut self, i: usize, v: u32) -> PyResult<()> {
        let d = self.sqe.dw.get_mut(i).ok_or_else(|| PyIndexError::new_err(format!("SQE dword {i} outside 0..16")))?;
        *d = v;
        Ok(())
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.sqe)
    }

    /// Command Identifier (CDW0 bits 31:16).
    #[getter]
    fn get_cid(&self) -> u16 {
        self.sqe.cid()
    }
    #[setter]
    fn set_cid(&mut self, v: u16) {
        self.sqe.set_cid(v);
    }
    /// Opcode (CDW0 bits 7:0).
    #[getter]
    fn get_opc(&self) -> u8 {
        self.sqe.opcode()
    }
    #[setter]
    fn set_opc(&mut self, v: u8) {
        self.sqe.set_opcode(v);
    }
    /// Same as `opc`.
    #[getter]
    fn get_opcode(&self) -> u8 {
        self.sqe.opcode()
    }
    #[setter]
    fn set_opcode(&mut self, v: u8) {
        self.sqe.set_opcode(v);
    }
    /// Namespace Identifier.
    #[getter]
    fn get_nsid(&self) -> u32 {
        self.sqe.nsid()
    }
    #[setter]
    fn set_nsid(&mut self, v: u32) {
        self.sqe.set_nsid(v);
    }
    /// Metadata Pointer.
    #[getter]
    fn get_mptr(&self) -> u64 {
        self.sqe.mptr()
    }
    #[setter]
    fn set_mptr(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.sqe.set_mptr(addr_of(v)?);
        self.keep(v);
        Ok(())
    }
    /// PRP Entry 1.
    #[getter]
    fn get_prp1(&self) -> u64 {
        self.sqe.prp1()
    }
    #[setter]
    fn set_prp1(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.sqe.set_prp1(addr_of(v)?);
        self.keep(v);
        Ok(())
    }
    /// PRP Entry 2.
    #[getter]
    fn get_prp2(&self) -> u64 {
        self.sqe.prp2()
    }
    #[setter]
    fn set_prp2(&mut self, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.sqe.set_prp2(addr_of(v)?);
        self.keep(v);
        Ok(())
    }
    /// Starting LBA (CDW10-11).
    #[getter]
    fn get_slba(&self) -> u64 {
        self.sqe.slba()
    }
    #[setter]
    fn set_slba(&mut self, v: u64) {
        self.sqe.set_slba(v);
    }
    /// Number of logical blocks, 1-based.
    #[getter]
    fn get_nlb(&self) -> u32 {
        self.sqe.nlb()
    }
    #[setter]
    fn set_nlb(&mut self, v: u32) -> PyResult<()> {
        if !(1..=65536).contains(&v) {
            return Err(PyAssertionError::new_err("nlb is 1-based: 1 to 65536"));
        }
        self.sqe.set_nlb(v);
        Ok(())
    }
}

impl PySqe {
    fn keep(&mut self, v: &Bound<'_, PyAny>) {
        if v.cast::<Buffer>().is_ok() {
            self.refs.push(v.clone().unbind());
        }
    }
}

/// `CQE`: a 16-byte completion as it was in queue memory when read (`cq[i]`).
#[pyclass(module = "nvme", name = "CQE", frozen)]
pub struct PyCqe {
    cqe: Cqe,
}

#[pymethods]
impl PyCqe {
    fn __len__(&self) -> usize {
        4
    }
    fn __getitem__(&self, i: usize) -> PyResult<u32> {
        self.cqe.dw.get(i).copied().ok_or_else(|| PyIndexError::new_err(format!("CQE dword {i} outside 0..4")))
    }
    fn __repr__(&self) -> String {
        format!("{:?}", self.cqe)
    }
    /// Dword 0 (command specific).
    #[getter]
    fn cdw0(&self) -> u32 {
        self.cqe.cdw0()
    }
    /// SQ Head Pointer.
    #[getter]
    fn sqhd(&self) -> u16 {
        self.cqe.sqhd()
    }
    /// SQ Identifier.
    #[getter]
    fn sqid(&self) -> u16 {
        self.cqe.sqid()
    }
    /// Command Identifier.
    #[getter]
    fn cid(&self) -> u16 {
        self.cqe.cid()
    }
    /// Phase Tag (0 or 1).
    #[getter]
    fn p(&self) -> u8 {
        self.cqe.phase() as u8
    }
    /// The 15-bit Status Field (DW3 bits 31:17): SC, SCT, CRD, M, DNR; 0 is success.
    #[getter]
    fn status(&self) -> u16 {
        self.cqe.status().raw()
    }
    /// Status Code.
    #[getter]
    fn sc(&self) -> u8 {
        self.cqe.sc()
    }
    /// Status Code Type.
    #[getter]
    fn sct(&self) -> u8 {
        self.cqe.sct()
    }
    /// Command Retry Delay.
    #[getter]
    fn crd(&self) -> u8 {
        self.cqe.crd()
    }
    /// More.
    #[getter]
    fn m(&self) -> u8 {
        self.cqe.more() as u8
    }
    /// Do Not Retry.
    #[getter]
    fn dnr(&self) -> u8 {
        self.cqe.dnr() as u8
    }
}

/// A queue creation the controller refused: the `ERROR status` warning, as PyNVMe's
/// admin commands give, then `QpairCreationError` (there is no queue to return).
fn rejected(py: Python<'_>, e: MetaError) -> PyErr {
    if let MetaError::Rejected { cqe, .. } = &e
        && let Err(w) = warn(py, &format!("ERROR status: {:02x}/{:02x}", cqe.sct(), cqe.sc()))
    {
        return w;
    }
    QpairCreationError::new_err(e.to_string())
}

/// `IOCQ(ctrlr, qid, qsize, prp1, iv=0, ien=False, pc=None)`: creates I/O CQ `qid` of
/// `qsize` entries in `prp1` (Create I/O CQ with PC=1 for a PRP, PC=0 for a PRPList: the
/// queue is then in the pages the list names; or `pc` as given). `cq[i]` reads CQE `i`; `head` writes the head doorbell.
#[pyclass(module = "nvme", name = "IOCQ")]
pub struct PyIoCq {
    cq: Mutex<Option<IoCq>>,
    qid: u16,
    _mem: Py<PyAny>,
}

impl PyIoCq {
    fn with<T>(&self, f: impl FnOnce(&mut IoCq) -> Result<T, MetaError>) -> PyResult<T> {
        match lock(&self.cq).as_mut() {
            Some(cq) => f(cq).map_err(meta_err),
            None => Err(PyRuntimeError::new_err(format!("IOCQ {} was deleted", self.qid))),
        }
    }
}

#[pymethods]
impl PyIoCq {
    #[new]
    #[pyo3(signature = (ctrlr, qid, qsize, prp1, iv=0, ien=false, pc=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(py: Python<'_>, ctrlr: &Bound<'_, PyAny>, qid: u16, qsize: u32, prp1: &Bound<'_, PyAny>, iv: u16, ien: bool, pc: Option<bool>) -> PyResult<Self> {
        if !(1..=65536).contains(&qsize) {
            return Err(PyAssertionError::new_err("qsize must be 1 to 65536"));
        }
        let drv = driver(ctrlr)?;
        let mem = prp1.cast::<Buffer>()?.borrow().prp();
        let pc = pc.unwrap_or(!prp1.is_instance_of::<PrpList>());
        let cq = if !pc && prp1.is_instance_of::<PrpList>() {
            let mut pages = Vec::new();
            list_pages(prp1, &mut pages)?;
            py.detach(|| IoCq::with_pages(&drv, qid, qsize, &LibPrpList::from_prp(mem), pages, iv, ien))
        } else {
            py.detach(|| IoCq::create(&drv, qid, qsize, mem, pc, iv, ien))
        }
        .map_err(|e| rejected(py, e))?;
        Ok(PyIoCq { cq: Mutex::new(Some(cq)), qid, _mem: prp1.clone().unbind() })
    }

    /// Queue id.
    #[getter]
    fn id(&self) -> u16 {
        self.qid
    }

    /// CQE `i` as it is in queue memory now.
    fn __getitem__(&self, i: usize) -> PyResult<PyCqe> {
        Ok(PyCqe { cqe: self.with(|cq| cq.entry(i))? })
    }

    /// The head doorbell value last written.
    #[getter]
    fn get_head(&self) -> PyResult<u32> {
        self.with(|cq| Ok(cq.head()))
    }
    /// Writes the head doorbell (offset by CAP.DSTRD), any value.
    #[setter]
    fn set_head(&self, v: u32) -> PyResult<()> {
        self.with(|cq| {
            cq.set_head(v);
            Ok(())
        })
    }

    /// Waits until the phase tag of CQE `index` reads `expected`; `TimeoutError` after
    /// `timeout` seconds.
    #[pyo3(signature = (index, expected, timeout=10.0))]
    fn wait_pbit(&self, py: Python<'_>, index: usize, expected: u32, timeout: f64) -> PyResult<PyCqe> {
        let t = Duration::from_secs_f64(timeout.max(0.0));
        let cqe = py.detach(|| self.with(|cq| cq.wait_pbit(index, expected != 0, t)))?;
        Ok(PyCqe { cqe })
    }

    /// Waits for the next `expected` completions (following slots and phase tags from the
    /// last seen); returns dword 0 of the last. The head doorbell stays the script's.
    #[pyo3(signature = (expected=1, timeout=10.0))]
    fn waitdone(&self, py: Python<'_>, expected: usize, timeout: f64) -> PyResult<u32> {
        let t = Duration::from_secs_f64(timeout.max(0.0));
        let got = py.detach(|| self.with(|cq| cq.waitdone(expected, t)))?;
        Ok(got.last().map_or(0, |c| c.cdw0()))
    }

    /// Delete I/O Completion Queue; a refusal is warned (`ERROR status`).
    fn delete(&self, py: Python<'_>) -> PyResult<()> {
        let Some(cq) = lock(&self.cq).take() else { return Ok(()) };
        match py.detach(|| cq.delete()) {
            Ok(_) => Ok(()),
            Err(MetaError::Rejected { cqe, .. }) => warn(py, &format!("ERROR status: {:02x}/{:02x}", cqe.sct(), cqe.sc())),
            Err(e) => Err(meta_err(e)),
        }
    }
}

/// `IOSQ(ctrlr, qid, qsize, prp1, cqid=None, pc=None, qprio=0, nvmsetid=0, cq=None)`:
/// creates I/O SQ `qid` completing into `cq.id` (or `cqid`, or `qid`); PC=0 for a
/// `PRPList` (the queue is then in the pages the list names), PC=1 otherwise. `sq[i] = sqe`
/// writes slot `i`; `tail` writes the tail doorbell with any value.
#[pyclass(module = "nvme", name = "IOSQ")]
pub struct PyIoSq {
    sq: Mutex<Option<IoSq>>,
    qid: u16,
    cqid: u16,
    /// What the command in each slot points to, kept until the slot is written again.
    refs: Mutex<HashMap<usize, Vec<Py<PyAny>>>>,
    _mem: Py<PyAny>,
}

impl PyIoSq {
    fn with<T>(&self, f: impl FnOnce(&mut IoSq) -> Result<T, MetaError>) -> PyResult<T> {
        match lock(&self.sq).as_mut() {
            Some(sq) => f(sq).map_err(meta_err),
            None => Err(PyRuntimeError::new_err(format!("IOSQ {} was deleted", self.qid))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rw(&self, write: bool, cid: u16, nsid: u32, lba: u64, lba_count: u32, prp1: Option<&Bound<'_, PyAny>>, prp2: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let a1 = prp1.map(addr_of).transpose()?.unwrap_or(0);
        let a2 = prp2.map(addr_of).transpose()?.unwrap_or(0);
        let slot = self.with(|sq| {
            sq.rw_prps(write, cid, nsid, lba, lba_count, a1, a2)?;
            Ok(sq.tail() as usize)
        })?;
        let keep = prp1.into_iter().chain(prp2).map(|b| b.clone().unbind()).collect();
        lock(&self.refs).insert(slot, keep);
        Ok(())
    }
}

#[pymethods]
impl PyIoSq {
    #[new]
    #[pyo3(signature = (ctrlr, qid, qsize, prp1, cqid=None, pc=None, qprio=0, nvmsetid=0, cq=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ctrlr: &Bound<'_, PyAny>,
        qid: u16,
        qsize: u32,
        prp1: &Bound<'_, PyAny>,
        cqid: Option<u16>,
        pc: Option<bool>,
        qprio: u8,
        nvmsetid: u16,
        cq: Option<PyRef<'_, PyIoCq>>,
    ) -> PyResult<Self> {
        if !(1..=65536).contains(&qsize) {
            return Err(PyAssertionError::new_err("qsize must be 1 to 65536"));
        }
        let drv = driver(ctrlr)?;
        let mem = prp1.cast::<Buffer>()?.borrow().prp();
        let cqid = cq.map(|c| c.qid).or(cqid).unwrap_or(qid);
        let pc = pc.unwrap_or(!prp1.is_instance_of::<PrpList>());
        let sq = if !pc && prp1.is_instance_of::<PrpList>() && nvmsetid == 0 {
            let mut pages = Vec::new();
            list_pages(prp1, &mut pages)?;
            py.detach(|| IoSq::with_pages(&drv, qid, qsize, &LibPrpList::from_prp(mem), pages, cqid, qprio))
        } else {
            py.detach(|| IoSq::create(&drv, qid, qsize, mem, cqid, pc, qprio, nvmsetid))
        }
        .map_err(|e| rejected(py, e))?;
        Ok(PyIoSq { sq: Mutex::new(Some(sq)), qid, cqid, refs: Mutex::new(HashMap::new()), _mem: prp1.clone().unbind() })
    }

    /// Queue id.
    #[getter]
    fn id(&self) -> u16 {
        self.qid
    }
    /// The CQ it completes into.
    #[getter]
    fn cqid(&self) -> u16 {
        self.cqid
    }

    /// Writes `sqe` (64 bytes, as it is) into slot `i`.
    fn __setitem__(&self, i: usize, sqe: &Bound<'_, PySqe>) -> PyResult<()> {
        let s = sqe.borrow().sqe;
        self.with(|sq| sq.set(i, &s))?;
        lock(&self.refs).insert(i, vec![sqe.clone().into_any().unbind()]);
        Ok(())
    }

    /// The tail doorbell value last written.
    #[getter]
    fn get_tail(&self) -> PyResult<u32> {
        self.with(|sq| Ok(sq.tail()))
    }
    /// Writes the tail doorbell (offset by CAP.DSTRD) with any value, invalid ones too.
    #[setter]
    fn set_tail(&self, v: u32) -> PyResult<()> {
        self.with(|sq| {
            sq.set_tail(v);
            Ok(())
        })
    }

    /// A Read placed at the tail slot; the doorbell is not rung (write `sq.tail`).
    #[pyo3(signature = (cid, nsid, lba, lba_count=1, mptr=None, prp1=None, prp2=None))]
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        cid: u16,
        nsid: u32,
        lba: u64,
        lba_count: u32,
        mptr: Option<&Bound<'_, PyAny>>,
        prp1: Option<&Bound<'_, PyAny>>,
        prp2: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        no_mptr(mptr)?;
        self.rw(false, cid, nsid, lba, lba_count, prp1, prp2)
    }

    /// A Write placed at the tail slot; the doorbell is not rung (write `sq.tail`).
    #[pyo3(signature = (cid, nsid, lba, lba_count=1, mptr=None, prp1=None, prp2=None))]
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        cid: u16,
        nsid: u32,
        lba: u64,
        lba_count: u32,
        mptr: Option<&Bound<'_, PyAny>>,
        prp1: Option<&Bound<'_, PyAny>>,
        prp2: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        no_mptr(mptr)?;
        self.rw(true, cid, nsid, lba, lba_count, prp1, prp2)
    }

    /// Delete I/O Submission Queue; a refusal is warned (`ERROR status`).
    fn delete(&self, py: Python<'_>) -> PyResult<()> {
        let Some(sq) = lock(&self.sq).take() else { return Ok(()) };
        lock(&self.refs).clear();
        match py.detach(|| sq.delete()) {
            Ok(_) => Ok(()),
            Err(MetaError::Rejected { cqe, .. }) => warn(py, &format!("ERROR status: {:02x}/{:02x}", cqe.sct(), cqe.sc())),
            Err(e) => Err(meta_err(e)),
        }
    }
}

fn no_mptr(mptr: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    match mptr {
        Some(m) if !m.is_none() => Err(PyAssertionError::new_err("mptr is not supported by nvplan's IOSQ.read/write yet; set it on an SQE")),
        _ => Ok(()),
    }
}
