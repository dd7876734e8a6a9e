//! The `slot` switch: PCIe slot power through the kernel's hot-plug driver (pciehp, or
//! acpiphp), `/sys/bus/pci/slots/<n>/power` (PCIe Base 4.0 §6.7.1.8, Power Controller
//! Control in Slot Control). Writing 0 makes the kernel remove the slot's functions (the
//! VFIO transport lets go of its own when the kernel asks) and then turn the power
//! controller off; writing 1 turns it on and enumerates what answers. The slot is found
//! from the drive's address: `/sys/bus/pci/slots/*/address` holds `domain:bus:device`.
//!
//! The slot must be hot-plug capable with a power controller (Slot Capabilities: Power
//! Controller Present), and the process must be root.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{PowerError, PowerSwitch, SwitchContext};

/// A `slot` switch as written.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotSpec {
    /// The slot's name under `/sys/bus/pci/slots/` (default: found from the drive's address).
    pub name: Option<String>,
    /// Longest the function may take to answer after power on.
    pub ready: Duration,
}

/// A hot-plug slot's power control.
#[derive(Debug)]
pub struct SlotSwitch {
    name: String,
    dir: PathBuf,
    ready: Duration,
}

/// The slot directory whose `address` is the function's `domain:bus:device`.
pub fn find_slot(root: &Path, function: &str) -> Result<Option<(String, PathBuf)>, String> {
    let want = function.rsplit_once('.').map_or(function, |(d, _)| d);
    let slots = root.join("sys/bus/pci/slots");
    let entries = match std::fs::read_dir(&slots) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", slots.display())),
    };
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let addr = std::fs::read_to_string(e.path().join("address")).unwrap_or_default();
        if addr.trim().eq_ignore_ascii_case(want) {
            found.push((e.file_name().to_string_lossy().into_owned(), e.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().next())
}

impl SlotSwitch {
    /// The slot `spec` names, or the one holding the function `ctx.address`.
    pub fn open(spec: &SlotSpec, ctx: &SwitchContext) -> Result<SlotSwitch, String> {
        let slots = ctx.root.join("sys/bus/pci/slots");
        let (name, dir) = match (&spec.name, &ctx.address) {
            (Some(n), _) => (n.clone(), slots.join(n)),
            (None, Some(a)) => find_slot(&ctx.root, a)?.ok_or_else(|| {
                format!(
                    "slot: no slot under {} holds {a} (no `address` file there reads {}): the drive is not in a hot-plug slot the kernel knows, or its hot-plug driver (pciehp) is not loaded; name the slot (slot:NAME) or use another switch",
                    slots.display(),
                    a.rsplit_once('.').map_or(a.as_str(), |(d, _)| d)
                )
            })?,
            (None, None) => return Err("slot: the target is not a PCI function; name the slot (slot:NAME)".into()),
        };
        if !dir.join("power").exists() {
            return Err(format!(
                "slot {name}: {} does not exist: the slot has no power controller the kernel can switch (Slot Capabilities: Power Controller Present = 0), or no hot-plug driver holds it",
                dir.join("power").display()
            ));
        }
        Ok(SlotSwitch { name, dir, ready: spec.ready })
    }

    fn write(&self, v: &str) -> Result<(), PowerError> {
        let path = self.dir.join("power");
        std::fs::write(&path, v).map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(libc::EACCES) | Some(libc::EPERM) => " (run as root)",
                Some(libc::ENODEV) if v == "1" => " (no card present: nothing answers in the slot; a QEMU root port drops its device when its power is cut)",
                _ => "",
            };
            PowerError::new(self.describe(), format!("writing {v} to {}: {e}{hint}", path.display()))
        })
    }
}

impl PowerSwitch for SlotSwitch {
    fn describe(&self) -> String {
        format!("slot {}", self.name)
    }

    fn off(&self) -> Result<(), PowerError> {
        self.write("0")
    }

    fn on(&self) -> Result<(), PowerError> {
        self.write("1")
    }

    fn is_on(&self) -> Result<Option<bool>, PowerError> {
        let path = self.dir.join("power");
        let v = std::fs::read_to_string(&path).map_err(|e| PowerError::new(self.describe(), format!("{}: {e}", path.display())))?;
        Ok(match v.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        })
    }

    fn ready_timeout(&self) -> Duration {
        self.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PathBuf {
        let root = std::env::temp_dir().join(format!("nvplan-slot-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&root);
        for (n, a) in [("1", "0000:00:1f"), ("7", "0000:03:00")] {
            let d = root.join("sys/bus/pci/slots").join(n);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("address"), format!("{a}\n")).unwrap();
            std::fs::write(d.join("power"), "1\n").unwrap();
        }
        root
    }

    #[test]
    fn the_slot_is_found_from_the_functions_address_and_switched_through_its_power_file() {
        let root = tree();
        let s = SlotSwitch::open(
            &SlotSpec { name: None, ready: Duration::from_secs(1) },
            &SwitchContext { root: root.clone(), address: Some("0000:03:00.0".into()) },
        )
        .unwrap();
        assert_eq!(s.describe(), "slot 7");
        s.off().unwrap();
        assert_eq!(std::fs::read_to_string(root.join("sys/bus/pci/slots/7/power")).unwrap(), "0");
        assert_eq!(s.is_on().unwrap(), Some(false));
        s.on().unwrap();
        assert_eq!(s.is_on().unwrap(), Some(true));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_function_in_no_slot_is_refused_with_what_to_do() {
        let root = tree();
        let e = SlotSwitch::open(
            &SlotSpec { name: None, ready: Duration::from_secs(1) },
            &SwitchContext { root: root.clone(), address: Some("0000:05:00.0".into()) },
        )
        .unwrap_err();
        assert!(e.contains("no slot") && e.contains("0000:05:00") && e.contains("slot:NAME"), "{e}");
        let e = SlotSwitch::open(&SlotSpec { name: Some("9".into()), ready: Duration::from_secs(1) }, &SwitchContext { root: root.clone(), address: None })
            .unwrap_err();
        assert!(e.contains("power controller"), "{e}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
