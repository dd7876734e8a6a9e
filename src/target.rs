//! Opening the controller a run names: the simulator, or a PCIe function through VFIO.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::devices;
use crate::driver::{Controller, ControllerOptions};
use crate::plan::Target;
use crate::transport::sim::SimTransport;
use crate::transport::vfio::{VfioOptions, VfioTransport};
use crate::transport::{AddressSpace, SharedTransport};

/// The file-system root sysfs is read under: `$NVPLAN_SYSFS_ROOT`, else `/`.
pub fn sysfs_root() -> PathBuf {
    std::env::var_os("NVPLAN_SYSFS_ROOT").map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// Opens a transport to `target`. Errors are one line naming the target and the fix.
pub fn open(target: &Target) -> Result<SharedTransport, String> {
    match target {
        Target::Sim(cfg) => Ok(Arc::new(SimTransport::new(cfg.clone()).map_err(|e| format!("sim: {e}"))?)),
        Target::Vfio(text) => open_vfio(&sysfs_root(), text),
    }
}

/// Opens the function `text` names: a PCI address, or an NVMe serial number. sysfs knows
/// the serial only of functions the kernel's nvme driver holds, so for one bound to
/// vfio-pci each such function is opened in turn and asked (Identify Controller).
pub fn open_vfio(root: &Path, text: &str) -> Result<SharedTransport, String> {
    open_vfio_in(root, text, None)
}

/// Like [`open_vfio`]; with `memory`, the function takes its DMA memory from that address
/// space, shared with other devices and buffers (see [`VfioTransport::open_in`]).
pub fn open_vfio_in(root: &Path, text: &str, memory: Option<&AddressSpace>) -> Result<SharedTransport, String> {
    let open = |addr: &str| {
        let opts = VfioOptions::at(root, addr);
        match memory {
            Some(m) => VfioTransport::open_in(&opts, m),
            None => VfioTransport::open(&opts),
        }
    };
    let fail = |e: &dyn std::fmt::Display| format!("vfio:{text}: {e}");
    match devices::resolve(root, text) {
        Ok(addr) => Ok(Arc::new(open(&addr).map_err(|e| e.to_string())?)),
        Err(devices::DevicesError::NotFound { .. }) => {
            let funcs = devices::scan(root).map_err(|e| fail(&e))?;
            let on_vfio: Vec<&str> = funcs.iter().filter(|f| f.driver.as_deref() == Some("vfio-pci")).map(|f| f.address.as_str()).collect();
            let mut hits: Vec<(&str, SharedTransport)> = Vec::new();
            for &addr in &on_vfio {
                let Ok(t) = open(addr) else { continue };
                let t: SharedTransport = Arc::new(t);
                let serial = Controller::new(t.clone(), ControllerOptions::default()).map(|c| c.info().id.serial());
                if serial.is_ok_and(|s| s.trim() == text.trim()) {
                    hits.push((addr, t));
                }
            }
            match hits.len() {
                0 => Err(fail(&format!(
                    "no NVMe function has this address or serial number ({} bound to vfio-pci were asked; `nvplan devices` lists them)",
                    on_vfio.len()
                ))),
                1 => Ok(hits.pop().expect("one hit").1),
                _ => Err(fail(&format!("this serial number is on {}: name one by its PCI address", hits.iter().map(|h| h.0).collect::<Vec<_>>().join(", ")))),
            }
        }
        Err(e) => Err(fail(&e)),
    }
}
