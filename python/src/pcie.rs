//! `Pcie`: the function a script opens — the embedded simulator or a drive through VFIO.

use std::sync::Arc;
use std::sync::Mutex;

use nvplan::plan::{Target, parse_target};
use nvplan::transport::sim::SimTransport;
use nvplan::transport::{ResetKind, SharedTransport, pci};
use pyo3::exceptions::{PyAssertionError, PyTypeError};
use pyo3::prelude::*;

use crate::NvmeEnumerateError;
use crate::buffer::host_memory;

/// A PCIe function: `Pcie("sim")` (or `sim:<options>`, the strings `--target` takes)
/// opens a new simulated controller; `Pcie("0000:01:00.0")` a drive bound to vfio-pci.
#[pyclass(module = "nvme", subclass)]
pub struct Pcie {
    pub(crate) transport: Mutex<Option<SharedTransport>>,
    addr: String,
}

impl Pcie {
    pub(crate) fn transport(&self) -> PyResult<SharedTransport> {
        self.transport.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| NvmeEnumerateError::new_err("the PCIe function is closed"))
    }

    fn pcie_reset(&self, py: Python<'_>, kind: ResetKind) -> PyResult<bool> {
        let t = self.transport()?;
        py.detach(|| t.reset(kind)).map_err(|e| NvmeEnumerateError::new_err(e.to_string()))?;
        Ok(true)
    }
}

fn assertion(e: nvplan::transport::TransportError) -> PyErr {
    PyAssertionError::new_err(e.to_string())
}

/// Opens the transport a script's address names. Simulators and VFIO functions alike take
/// their DMA memory from [`host_memory`], where every `Buffer` lives, so a buffer reaches
/// every controller at its `phys_addr`.
fn open(addr: &str) -> Result<SharedTransport, String> {
    let text = if addr == "sim" || addr.starts_with("sim:") || addr.starts_with("vfio:") { addr.to_string() } else { format!("vfio:{addr}") };
    match parse_target(&text)? {
        Target::Sim(cfg) => Ok(Arc::new(SimTransport::new_in(cfg, host_memory()).map_err(|e| format!("sim: {e}"))?)),
        Target::Vfio(a) => {
            let a = if a.matches(':').count() == 1 && a.contains('.') { format!("0000:{a}") } else { a };
            nvplan::target::open_vfio_in(&nvplan::target::sysfs_root(), &a, Some(host_memory()))
        }
    }
}

#[pymethods]
impl Pcie {
    #[new]
    #[pyo3(signature = (addr="sim", port=0))]
    fn new(py: Python<'_>, addr: &str, port: u16) -> PyResult<Self> {
        let _ = port;
        let a = addr.to_string();
        let t = py.detach(move || open(&a)).map_err(|e| NvmeEnumerateError::new_err(format!("fail to create the controller: {e}")))?;
        Ok(Pcie { transport: Mutex::new(Some(t)), addr: addr.to_string() })
    }

    /// The address the function was opened with.
    #[getter]
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// A configuration-space byte, or a list of bytes for a slice.
    fn __getitem__(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let t = self.transport()?;
        if let Ok(s) = index.cast::<pyo3::types::PySlice>() {
            let ind = s.indices(4096)?;
            let mut out = Vec::new();
            let mut i = ind.start;
            for _ in 0..ind.slicelength {
                out.push(config_byte(&t, i as usize)?);
                i += ind.step;
            }
            return Ok(pyo3::types::PyList::new(py, out)?.into_any().unbind());
        }
        let i: usize = index.extract().map_err(|_| PyTypeError::new_err("configuration space index must be an int or a slice"))?;
        Ok(config_byte(&t, i)?.into_pyobject(py)?.into_any().unbind())
    }

    fn __setitem__(&self, index: usize, value: u8) -> PyResult<()> {
        config_write(&self.transport()?, index, &[value])
    }

    /// A little-endian configuration register of `byte_count` bytes (up to 8).
    #[pyo3(signature = (offset, byte_count=4))]
    fn register(&self, offset: usize, byte_count: usize) -> PyResult<u64> {
        if byte_count > 8 {
            return Err(PyAssertionError::new_err("support uptp 8-byte PCIe register access"));
        }
        let t = self.transport()?;
        let mut v = 0u64;
        for k in (0..byte_count).rev() {
            v = v << 8 | config_byte(&t, offset + k)? as u64;
        }
        Ok(v)
    }

    /// Offset of capability `cap_id` in the capability list, or None.
    fn cap_offset(&self, cap_id: u8) -> PyResult<Option<usize>> {
        cap_offset(&self.transport()?, cap_id)
    }

    /// ASPM Control of the PCI Express capability's Link Control (0 off, 1 L0s, 2 L1, 3
    /// both).
    #[getter]
    fn get_aspm(&self) -> PyResult<u8> {
        pci::aspm(self.transport()?.as_ref()).map_err(assertion)
    }

    /// Writes ASPM Control (a state Link Capabilities does not list is refused; through
    /// VFIO, Link Control is written through sysfs, which needs root).
    #[setter]
    fn set_aspm(&self, control: u8) -> PyResult<()> {
        pci::set_aspm(self.transport()?.as_ref(), control).map(drop).map_err(assertion)
    }

    /// PowerState of the Power Management capability's PMCSR (0: D0 to 3: D3hot).
    #[getter]
    fn get_power_state(&self) -> PyResult<u8> {
        pci::power_state(self.transport()?.as_ref()).map_err(assertion)
    }

    /// Writes PowerState and waits the 10 ms a D3hot transition needs (PCI PM 1.2 §5.6.1).
    #[setter]
    fn set_power_state(&self, py: Python<'_>, state: u8) -> PyResult<()> {
        let t = self.transport()?;
        py.detach(|| pci::set_power_state(t.as_ref(), state)).map(drop).map_err(assertion)
    }

    /// Hot reset (Secondary Bus Reset of the upstream bridge), or `rst_fn()` when given;
    /// the controller must be reset (`nvme0.reset()`) afterwards.
    #[pyo3(signature = (rst_fn=None))]
    fn reset(&self, py: Python<'_>, rst_fn: Option<Py<PyAny>>) -> PyResult<bool> {
        if let Some(f) = rst_fn {
            f.call0(py)?;
            return Ok(true);
        }
        self.pcie_reset(py, ResetKind::Hot)
    }

    /// Function Level Reset; the controller must be reset afterwards.
    fn flr(&self, py: Python<'_>) -> PyResult<bool> {
        self.pcie_reset(py, ResetKind::Function)
    }

    /// Closes the function: a drive is shut down and given back at once, even while
    /// controller objects of the script still refer to it (PyNVMe's `pcie` fixture closes
    /// it after each test, and the next test opens it again); a simulator stops once
    /// nothing uses it.
    fn close(&self, py: Python<'_>) {
        if let Some(t) = self.transport.lock().unwrap_or_else(|e| e.into_inner()).take() {
            py.detach(move || t.close());
        }
    }
}

fn config_byte(t: &SharedTransport, off: usize) -> PyResult<u8> {
    let mut b = [0u8];
    t.config_read(off, &mut b).map_err(|e| PyAssertionError::new_err(e.to_string()))?;
    Ok(b[0])
}

fn config_write(t: &SharedTransport, off: usize, data: &[u8]) -> PyResult<()> {
    t.config_write(off, data).map_err(|e| PyAssertionError::new_err(e.to_string()))
}

/// Offset of capability `id` in the capability list, or None.
fn cap_offset(t: &SharedTransport, id: u8) -> PyResult<Option<usize>> {
    nvplan::transport::pci::cap_offset(t.as_ref(), id).map_err(|e| PyAssertionError::new_err(e.to_string()))
}
