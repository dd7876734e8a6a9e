//! `Subsystem`: power and NVM subsystem reset of the controller's drive.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::NvmeShutdownStatusTimeoutError;
use crate::controller::Controller;
use crate::pcie::Pcie;

/// The NVM subsystem of a controller: `Subsystem(nvme, poweron_cb=None, poweroff_cb=None)`.
/// Without callbacks power goes through the transport (the simulator's switch); with
/// them, the script's functions switch it.
#[pyclass(module = "nvme", subclass)]
pub struct Subsystem {
    ctrl: Py<Controller>,
    poweron_cb: Option<Py<PyAny>>,
    poweroff_cb: Option<Py<PyAny>>,
}

fn err(e: impl std::fmt::Display) -> PyErr {
    crate::NvmeEnumerateError::new_err(e.to_string())
}

#[pymethods]
impl Subsystem {
    #[new]
    #[pyo3(signature = (nvme, poweron_cb=None, poweroff_cb=None))]
    fn new(nvme: Py<Controller>, poweron_cb: Option<Py<PyAny>>, poweroff_cb: Option<Py<PyAny>>) -> Self {
        Subsystem { ctrl: nvme, poweron_cb, poweroff_cb }
    }

    /// Removes power without shutdown notification (a dirty power loss).
    fn poweroff(&self, py: Python<'_>) -> PyResult<bool> {
        if let Some(f) = &self.poweroff_cb {
            f.call0(py)?;
            return Ok(true);
        }
        let drv = self.ctrl.bind(py).borrow().drv.clone();
        py.detach(move || drv.power_off(true)).map_err(err)?;
        Ok(true)
    }

    /// Restores power; the controller must be reset (`nvme0.reset()`) afterwards.
    fn poweron(&self, py: Python<'_>) -> PyResult<bool> {
        if let Some(f) = &self.poweron_cb {
            f.call0(py)?;
            return Ok(true);
        }
        let t = self.ctrl.bind(py).borrow().transport().clone();
        py.detach(move || t.power_on()).map_err(err)?;
        Ok(true)
    }

    /// Power off, `sec` seconds without power, power on (the controller must be reset
    /// afterwards).
    #[pyo3(signature = (sec=10))]
    fn power_cycle(&self, py: Python<'_>, sec: u64) -> PyResult<bool> {
        self.poweroff(py)?;
        py.detach(|| std::thread::sleep(Duration::from_secs(sec)));
        self.poweron(py)
    }

    /// NVM Subsystem Reset (NSSR); false when CAP.NSSRS says the controller has none.
    fn reset(&self, py: Python<'_>) -> PyResult<bool> {
        let c = self.ctrl.bind(py).borrow();
        if !c.drv.cap().nssrs() {
            return Ok(false);
        }
        c.drv.begin_reset();
        c.transport().write32(nvplan::nvme::regs::offset::NSSR, nvplan::nvme::regs::NSSR_RESET_VALUE);
        Ok(true)
    }

    /// Shutdown notification (CC.SHN normal, or abrupt), waiting for CSTS.SHST complete.
    #[pyo3(signature = (abrupt=false))]
    fn shutdown_notify(&self, py: Python<'_>, abrupt: bool) -> PyResult<()> {
        let t = self.ctrl.bind(py).borrow().transport().clone();
        py.detach(move || {
            let cc = t.read32(nvplan::nvme::regs::offset::CC);
            t.write32(nvplan::nvme::regs::offset::CC, (cc & !0xc000) | if abrupt { 0x8000 } else { 0x4000 });
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if t.read32(nvplan::nvme::regs::offset::CSTS) & 0xc == 0x8 {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(())
        })
        .map_err(|_| NvmeShutdownStatusTimeoutError::new_err("csts.shst timeout"))
    }

    /// The PCIe function of the subsystem's controller.
    #[getter]
    fn pcie(&self, py: Python<'_>) -> Py<Pcie> {
        self.ctrl.bind(py).borrow().pcie.clone_ref(py)
    }
}
