//! `Namespace`: I/O commands on a queue pair, formats, identify data, I/O workers.

use std::time::Duration;

use nvplan::ioworker::direct::{DirectLbas, holds_lbas, stamp};
use nvplan::nvme::{Sqe, cmd};
use pyo3::exceptions::PyAssertionError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::NamespaceCreationError;
use crate::buffer::{Buffer, data_value};
use crate::completion::warn;
use crate::controller::Controller;
use crate::ioworker::IoWorker;
use crate::qpair::Qpair;

/// A namespace of a controller: `Namespace(nvme, nsid=1, nlba_verify=0)`.
#[pyclass(module = "nvme", subclass)]
pub struct Namespace {
    pub(crate) ctrl: Py<Controller>,
    pub(crate) nsid: u32,
}

impl Namespace {
    pub(crate) fn driver_ns(&self, py: Python<'_>) -> PyResult<nvplan::driver::Namespace> {
        self.ctrl.bind(py).borrow().drv.namespace(self.nsid).ok_or_else(|| NamespaceCreationError::new_err(format!("namespace {} is not active", self.nsid)))
    }

    fn lba_size(&self, py: Python<'_>) -> PyResult<usize> {
        // The driver's identify data, without copying the namespace's (4 KiB) of it.
        let c = self.ctrl.bind(py).borrow();
        let info = c.drv.info_lba_size(self.nsid);
        info.ok_or_else(|| NamespaceCreationError::new_err(format!("namespace {} is not active", self.nsid)))
    }

    /// Sends an LBA command with data: `lba_count` LBAs from `lba`, io flags in CDW12's
    /// upper half (as a 32-bit shift, so flags beyond bit 15 vanish as in PyNVMe).
    #[allow(clippy::too_many_arguments)]
    fn rw<'py>(
        &self,
        qpair: &Bound<'py, Qpair>,
        mut sqe: Sqe,
        buf: Option<&Bound<'py, PyAny>>,
        lba: u64,
        lba_count: u32,
        io_flags: u32,
        dw13_15: [u32; 3],
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Qpair>> {
        let py = qpair.py();
        if lba_count > 64 * 1024 {
            return Err(PyAssertionError::new_err("exceed lba count limit"));
        }
        sqe.set_nsid(self.nsid);
        sqe.dw[10] = lba as u32;
        sqe.dw[11] = (lba >> 32) as u32;
        sqe.dw[12] = io_flags.wrapping_shl(16) | lba_count.wrapping_sub(1) & 0xffff;
        sqe.dw[13..16].copy_from_slice(&dw13_15);
        let lba_size = self.lba_size(py)?;
        let data = match buf {
            Some(b) => {
                let b = b.cast::<Buffer>()?.borrow();
                if sqe.opcode() == 0x01 {
                    // PyNVMe's scripts find the LBA and a write token in what they wrote.
                    let (iova, len) = b.data_range_max(lba_count as usize * lba_size);
                    let off = (iova - b.mem.iova()) as usize;
                    stamp(&b.mem, off, lba, (len / lba_size) as u32, lba_size);
                }
                Some(b.data_range_max(lba_count as usize * lba_size))
            }
            None => None,
        };
        let lbas = self.hold(py, sqe.opcode(), &[(lba, lba_count)])?;
        qpair.borrow().send(&sqe, data, buf, cb, lbas)?;
        Ok(qpair.clone())
    }

    /// Holds the LBAs of a command in the verification state until it completes (waiting
    /// up to 2 s for I/O workers that use them).
    fn hold(&self, py: Python<'_>, opcode: u8, ranges: &[(u64, u32)]) -> PyResult<Option<DirectLbas>> {
        if !holds_lbas(opcode) {
            return Ok(None);
        }
        let c = self.ctrl.bind(py).borrow();
        // Without a verification table (no verifying worker ran) nothing is held.
        if !c.drv.has_attachments() && !matches!(opcode, 0x04 | 0x08 | 0x09) {
            return Ok(None);
        }
        let drv = c.drv.clone();
        drop(c);
        let nsid = self.nsid;
        py.detach(|| DirectLbas::hold(&drv, nsid, opcode, ranges, Duration::from_secs(2))).map(Some).map_err(PyAssertionError::new_err)
    }
}

#[pymethods]
impl Namespace {
    #[new]
    #[pyo3(signature = (nvme, nsid=1, nlba_verify=0))]
    fn new(py: Python<'_>, nvme: Py<Controller>, nsid: u32, nlba_verify: u64) -> PyResult<Self> {
        let _ = nlba_verify;
        if nvme.bind(py).borrow().drv.namespace(nsid).is_none() {
            return Err(NamespaceCreationError::new_err(format!("namespace {nsid} is not active on the controller")));
        }
        Ok(Namespace { ctrl: nvme, nsid })
    }

    /// Namespace ID.
    #[getter]
    fn nsid(&self) -> u32 {
        self.nsid
    }

    /// LBA size in bytes.
    #[getter]
    fn sector_size(&self, py: Python<'_>) -> PyResult<usize> {
        self.lba_size(py)
    }

    /// Size in LBAs (NSZE).
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.driver_ns(py)?.nlba())
    }

    /// Turns verification of what I/O workers read on or off; returns whether it can be on.
    #[pyo3(signature = (enable=true))]
    fn verify_enable(&self, enable: bool) -> bool {
        // I/O workers always verify (`verify_disable` turns it off per worker); the table
        // is made as needed, so verification can always be on.
        let _ = enable;
        true
    }

    /// Identify Namespace bytes `byte_begin..=byte_end` (int, or `type=str`).
    #[pyo3(signature = (byte_end, byte_begin=None, r#type=None, cns=0, csi=0, cntid=0))]
    #[allow(clippy::too_many_arguments)]
    fn id_data(
        &self,
        py: Python<'_>,
        byte_end: usize,
        byte_begin: Option<usize>,
        r#type: Option<&Bound<'_, PyAny>>,
        cns: u8,
        csi: u8,
        cntid: u16,
    ) -> PyResult<Py<PyAny>> {
        let d = self.ctrl.bind(py).borrow().identify_data(py, self.nsid, cns, cntid, csi, 0)?;
        let begin = byte_begin.unwrap_or(byte_end);
        if begin > byte_end || byte_end >= d.len() {
            return Err(PyAssertionError::new_err(format!("identify bytes {begin}..={byte_end} outside 0..4096")));
        }
        data_value(py, &d[begin..=byte_end], r#type)
    }

    /// Whether the controller supports I/O command `opcode`.
    fn supports(&self, py: Python<'_>, opcode: u32) -> PyResult<bool> {
        if opcode >= 256 {
            return Err(PyAssertionError::new_err("opcode must be below 256"));
        }
        self.ctrl.bind(py).borrow().supports_opcode(py, 256 + opcode)
    }

    /// Index of the LBA format with this data and metadata size, or None.
    #[pyo3(signature = (data_size=512, meta_size=0))]
    fn get_lba_format(&self, py: Python<'_>, data_size: u32, meta_size: u32) -> PyResult<Option<u8>> {
        let d = self.ctrl.bind(py).borrow().identify_data(py, self.nsid, 0, 0, 0, 0)?;
        let nlbaf = d[25] as usize;
        for i in 0..=nlbaf.min(15) {
            let f = u32::from_le_bytes(d[128 + i * 4..132 + i * 4].try_into().expect("4 bytes"));
            let lbads = (f >> 16) & 0xff;
            if lbads < 32 && 1u32 << lbads == data_size && f & 0xffff == meta_size {
                return Ok(Some(i as u8));
            }
        }
        Ok(None)
    }

    /// Formats the namespace to the LBA format of `data_size`; returns dword 0.
    #[pyo3(signature = (data_size=512, meta_size=0, ses=0))]
    fn format(&self, py: Python<'_>, data_size: u32, meta_size: u32, ses: u8) -> PyResult<u32> {
        let lbaf = self
            .get_lba_format(py, data_size, meta_size)?
            .ok_or_else(|| PyAssertionError::new_err(format!("no LBA format of {data_size} + {meta_size} bytes")))?;
        let drv = self.ctrl.bind(py).borrow().drv.clone();
        let nsid = self.nsid;
        match py.detach(move || drv.format(nsid, lbaf, ses)) {
            Ok(()) => Ok(0),
            Err(nvplan::driver::DriverError::Command { status, .. }) => {
                warn(py, &format!("ERROR status: {:02x}/{:02x}", status.sct(), status.sc()))?;
                Ok(0)
            }
            Err(e) => Err(PyAssertionError::new_err(e.to_string())),
        }
    }

    /// Read (02h) of `lba_count` LBAs into `buf`.
    #[pyo3(signature = (qpair, buf, lba, lba_count=1, io_flags=0, dword13=0, dword14=0, dword15=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn read<'py>(
        &self,
        qpair: &Bound<'py, Qpair>,
        buf: &Bound<'py, PyAny>,
        lba: u64,
        lba_count: u32,
        io_flags: u32,
        dword13: u32,
        dword14: u32,
        dword15: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Qpair>> {
        self.rw(qpair, cmd::read(0, 0, 1), Some(buf), lba, lba_count, io_flags, [dword13, dword14, dword15], cb)
    }

    /// Write (01h) of `lba_count` LBAs from `buf`.
    #[pyo3(signature = (qpair, buf, lba, lba_count=1, io_flags=0, dword13=0, dword14=0, dword15=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn write<'py>(
        &self,
        qpair: &Bound<'py, Qpair>,
        buf: &Bound<'py, PyAny>,
        lba: u64,
        lba_count: u32,
        io_flags: u32,
        dword13: u32,
        dword14: u32,
        dword15: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Qpair>> {
        self.rw(qpair, cmd::write(0, 0, 1), Some(buf), lba, lba_count, io_flags, [dword13, dword14, dword15], cb)
    }

    /// Compare (05h) of `lba_count` LBAs with `buf`.
    #[pyo3(signature = (qpair, buf, lba, lba_count=1, io_flags=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn compare<'py>(
        &self,
        qpair: &Bound<'py, Qpair>,
        buf: &Bound<'py, PyAny>,
        lba: u64,
        lba_count: u32,
        io_flags: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Qpair>> {
        self.rw(qpair, cmd::compare(0, 0, 1), Some(buf), lba, lba_count, io_flags, [0; 3], cb)
    }

    /// Verify (0Ch).
    #[pyo3(signature = (qpair, lba, lba_count=1, io_flags=0, cb=None))]
    fn verify<'py>(&self, qpair: &Bound<'py, Qpair>, lba: u64, lba_count: u32, io_flags: u32, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Qpair>> {
        self.rw(qpair, cmd::verify(0, 0, 1), None, lba, lba_count, io_flags, [0; 3], cb)
    }

    /// Write Zeroes (08h).
    #[pyo3(signature = (qpair, lba, lba_count=1, io_flags=0, cb=None))]
    fn write_zeroes<'py>(&self, qpair: &Bound<'py, Qpair>, lba: u64, lba_count: u32, io_flags: u32, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Qpair>> {
        self.rw(qpair, cmd::write_zeroes(0, 0, 1), None, lba, lba_count, io_flags, [0; 3], cb)
    }

    /// Write Uncorrectable (04h).
    #[pyo3(signature = (qpair, lba, lba_count=1, cb=None))]
    fn write_uncorrectable<'py>(&self, qpair: &Bound<'py, Qpair>, lba: u64, lba_count: u32, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Qpair>> {
        self.rw(qpair, cmd::write_uncorrectable(0, 0, 1), None, lba, lba_count, 0, [0; 3], cb)
    }

    /// Flush (00h).
    #[pyo3(signature = (qpair, cb=None))]
    fn flush<'py>(&self, qpair: &Bound<'py, Qpair>, cb: Option<Py<PyAny>>) -> PyResult<Bound<'py, Qpair>> {
        qpair.borrow().send(&cmd::flush(self.nsid), None, None, cb, None)?;
        Ok(qpair.clone())
    }

    /// Dataset Management (09h) of `range_count` ranges in `buf` (see
    /// `Buffer.set_dsm_range`); attribute 4 deallocates.
    #[pyo3(signature = (qpair, buf, range_count, attribute=4, cb=None))]
    fn dsm<'py>(
        &self,
        py: Python<'py>,
        qpair: &Bound<'py, Qpair>,
        buf: &Bound<'py, PyAny>,
        range_count: u32,
        attribute: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Qpair>> {
        if !(1..=256).contains(&range_count) {
            return Err(PyAssertionError::new_err("range count is 1 to 256"));
        }
        let mut sqe = crate::controller::raw(0x09, self.nsid, [range_count - 1, attribute, 0, 0, 0, 0]);
        sqe.dw[0] = 0x09;
        let b = buf.cast::<Buffer>()?.borrow();
        let data = b.data_range_max(range_count as usize * 16);
        let ranges = dsm_ranges(&b, range_count);
        drop(b);
        let lbas = if attribute & 4 != 0 { self.hold(py, 0x09, &ranges)? } else { None };
        qpair.borrow().send(&sqe, Some(data), Some(buf), cb, lbas)?;
        Ok(qpair.clone())
    }

    /// Any I/O command: `opcode` is dword 0 (opcode, FUSE, PSDT).
    #[pyo3(signature = (opcode, qpair, buf=None, nsid=1, cdw10=0, cdw11=0, cdw12=0, cdw13=0, cdw14=0, cdw15=0, cb=None))]
    #[allow(clippy::too_many_arguments)]
    fn send_cmd<'py>(
        &self,
        py: Python<'py>,
        opcode: u32,
        qpair: &Bound<'py, Qpair>,
        buf: Option<&Bound<'py, PyAny>>,
        nsid: u32,
        cdw10: u32,
        cdw11: u32,
        cdw12: u32,
        cdw13: u32,
        cdw14: u32,
        cdw15: u32,
        cb: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, Qpair>> {
        let mut sqe = crate::controller::raw(0, nsid, [cdw10, cdw11, cdw12, cdw13, cdw14, cdw15]);
        sqe.dw[0] = opcode & 0xffff;
        let data = match buf {
            Some(b) => Some(b.cast::<Buffer>()?.borrow().data_range()),
            None => None,
        };
        let op = (opcode & 0xff) as u8;
        let lbas = if nsid != self.nsid {
            None
        } else if op == 0x09 {
            match buf {
                Some(b) if cdw11 & 4 != 0 => self.hold(py, op, &dsm_ranges(&b.cast::<Buffer>()?.borrow(), (cdw10 & 0xff) + 1))?,
                _ => None,
            }
        } else {
            self.hold(py, op, &[(cdw10 as u64 | (cdw11 as u64) << 32, (cdw12 & 0xffff) + 1)])?
        };
        qpair.borrow().send(&sqe, data, buf, cb, lbas)?;
        Ok(qpair.clone())
    }

    /// An I/O worker on this namespace (not started): PyNVMe3's parameters.
    #[pyo3(signature = (**kwargs))]
    fn ioworker(slf: &Bound<'_, Self>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<IoWorker> {
        IoWorker::new(slf, kwargs)
    }

    /// Nothing to release; kept for compatibility.
    fn close(&self) {}
}

/// The (start LBA, count) of the first `n` Dataset Management ranges in `b` (§6.7, Figure
/// 364: context attributes, length in LBAs, starting LBA).
fn dsm_ranges(b: &Buffer, n: u32) -> Vec<(u64, u32)> {
    let (iova, len) = b.data_range();
    let off = (iova - b.mem.iova()) as usize;
    (0..(n as usize).min(len / 16)).map(|i| (b.mem.read_u64(off + i * 16 + 8), b.mem.read_u32(off + i * 16 + 4))).collect()
}
