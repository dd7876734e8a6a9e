//! `Subsystem`: power and NVM subsystem reset of the controller's drive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nvplan::power::{PowerError, PowerSwitch, SharedSwitch, SwitchContext, SwitchSpec};
use pyo3::prelude::*;

use crate::NvmeShutdownStatusTimeoutError;
use crate::controller::Controller;
use crate::pcie::Pcie;

/// The NVM subsystem of a controller: `Subsystem(nvme, poweron_cb=None, poweroff_cb=None,
/// power=None)`. Power goes through the script's functions when it gives them, else through
/// the switch `power` names (text as `nvplan run --power` takes it: `slot`,
/// `command:off=...,on=...`, `quarch:HOST`, `suspend`), else the controller's own (the
/// simulator's). Whichever switches it, the same library code lets go of the function
/// before power goes and takes it back after (VFIO: BAR0, bus mastering, DMA mappings).
#[pyclass(module = "nvme", subclass)]
pub struct Subsystem {
    ctrl: Py<Controller>,
    callbacks: Option<SharedSwitch>,
}

fn err(e: impl std::fmt::Display) -> PyErr {
    crate::NvmeEnumerateError::new_err(e.to_string())
}

/// The script's poweron/poweroff functions as a switch.
#[derive(Debug)]
struct Callbacks {
    on: Option<Py<PyAny>>,
    off: Option<Py<PyAny>>,
}

impl Callbacks {
    fn call(&self, f: &Option<Py<PyAny>>, what: &str) -> Result<(), PowerError> {
        let Some(f) = f else { return Err(PowerError::new(self.describe(), format!("no {what} function was given to Subsystem()"))) };
        Python::attach(|py| f.call0(py).map(drop).map_err(|e| PowerError::new(self.describe(), format!("{what}: {e}"))))
    }
}

impl PowerSwitch for Callbacks {
    fn describe(&self) -> String {
        "the script's poweron/poweroff functions".into()
    }
    fn off(&self) -> Result<(), PowerError> {
        self.call(&self.off, "poweroff_cb")
    }
    fn on(&self) -> Result<(), PowerError> {
        self.call(&self.on, "poweron_cb")
    }
}

impl Subsystem {
    /// The switch power goes through: the script's functions, else the controller's.
    fn switch(&self, py: Python<'_>) -> PyResult<SharedSwitch> {
        if let Some(c) = &self.callbacks {
            return Ok(c.clone());
        }
        let drv = self.ctrl.bind(py).borrow().drv.clone();
        drv.power_switch().ok_or_else(|| {
            err(format!(
                "{} has no power switch: give Subsystem(nvme0, power=\"slot\") (or command:..., quarch:HOST, suspend), or poweron_cb and poweroff_cb",
                drv.transport().describe()
            ))
        })
    }
}

#[pymethods]
impl Subsystem {
    #[new]
    #[pyo3(signature = (nvme, poweron_cb=None, poweroff_cb=None, power=None))]
    fn new(py: Python<'_>, nvme: Py<Controller>, poweron_cb: Option<Py<PyAny>>, poweroff_cb: Option<Py<PyAny>>, power: Option<&str>) -> PyResult<Self> {
        if let Some(text) = power {
            let spec = SwitchSpec::parse(text).map_err(err)?;
            let drv = nvme.bind(py).borrow().drv.clone();
            let ctx = SwitchContext { root: nvplan::target::sysfs_root(), address: drv.transport().pci_address() };
            let sw = if matches!(spec, SwitchSpec::Sim) {
                drv.transport().power_switch().ok_or_else(|| err("power=\"sim\": this is not a simulator"))?
            } else {
                spec.open(&ctx).map_err(err)?
            };
            drv.set_power_switch(Some(sw));
        }
        let callbacks: Option<SharedSwitch> =
            (poweron_cb.is_some() || poweroff_cb.is_some()).then(|| Arc::new(Callbacks { on: poweron_cb, off: poweroff_cb }) as SharedSwitch);
        Ok(Subsystem { ctrl: nvme, callbacks })
    }

    /// Removes power without shutdown notification (a dirty power loss).
    fn poweroff(&self, py: Python<'_>) -> PyResult<bool> {
        let sw = self.switch(py)?;
        let drv = self.ctrl.bind(py).borrow().drv.clone();
        py.detach(move || drv.power_off_with(sw.as_ref(), true)).map_err(err)?;
        Ok(true)
    }

    /// Restores power and waits for the function; the controller must be reset
    /// (`nvme0.reset()`) afterwards.
    fn poweron(&self, py: Python<'_>) -> PyResult<bool> {
        let sw = self.switch(py)?;
        let drv = self.ctrl.bind(py).borrow().drv.clone();
        py.detach(move || drv.restore_power_with(sw.as_ref())).map_err(err)?;
        Ok(true)
    }

    /// Power off (dirty), `sec` seconds without power, power on (a suspend switch does both
    /// in one step); the controller must be reset afterwards.
    #[pyo3(signature = (sec=10))]
    fn power_cycle(&self, py: Python<'_>, sec: u64) -> PyResult<bool> {
        let sw = self.switch(py)?;
        let drv = self.ctrl.bind(py).borrow().drv.clone();
        py.detach(move || drv.cycle_power_with(sw.as_ref(), true, Duration::from_secs(sec))).map_err(err)?;
        Ok(true)
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
