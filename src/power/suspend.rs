//! The `suspend` switch: the host suspends to RAM (ACPI S3) and an RTC alarm wakes it, as
//! PyNVMe's `Subsystem.power_cycle` does. In S3 the platform removes main power from the
//! PCIe slots (Vaux at most remains: PCIe CEM 4.0 §2.3), so the drive loses power; the
//! kernel restores the function's configuration space on resume. Power cannot be held off
//! by itself: off and on are one step ([`PowerSwitch::cycle`]), of at least 2 s (the RTC
//! alarm has a resolution of one second).
//!
//! Writes `+N` to `/sys/class/rtc/<rtc>/wakealarm` and `mem` to `/sys/power/state`, which
//! returns after the wake-up; the process must be root. `/sys/power/mem_sleep` chooses
//! between S3 (`deep`) and suspend-to-idle (`s2idle`, which keeps the slots powered): the
//! switch refuses to run unless it says `[deep]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{PowerError, PowerSwitch};

/// Shortest time asleep.
const MIN_SLEEP: Duration = Duration::from_secs(2);

/// A `suspend` switch as written.
#[derive(Clone, Debug, PartialEq)]
pub struct SuspendSpec {
    /// The RTC that wakes the host (`rtc0`).
    pub rtc: String,
    /// Longest the function may take to answer after resume.
    pub ready: Duration,
}

/// Suspend to RAM with an RTC wake-up.
#[derive(Debug)]
pub struct SuspendSwitch {
    spec: SuspendSpec,
    sys: PathBuf,
}

impl SuspendSwitch {
    /// The switch, with sysfs under `root`.
    pub fn new(spec: SuspendSpec, root: &Path) -> SuspendSwitch {
        SuspendSwitch { spec, sys: root.join("sys") }
    }

    fn err(&self, m: impl Into<String>) -> PowerError {
        PowerError::new(self.describe(), m)
    }

    fn write(&self, path: &Path, v: &str) -> Result<(), PowerError> {
        std::fs::write(path, v).map_err(|e| {
            let root = if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) { " (run as root)" } else { "" };
            self.err(format!("writing {v} to {}: {e}{root}", path.display()))
        })
    }
}

impl PowerSwitch for SuspendSwitch {
    fn describe(&self) -> String {
        format!("suspend to RAM, woken by {}", self.spec.rtc)
    }

    fn off(&self) -> Result<(), PowerError> {
        Err(self.err("suspend to RAM cannot hold power off by itself: it powers off and on in one step (a power_cycle event, or Subsystem.power_cycle())"))
    }

    fn on(&self) -> Result<(), PowerError> {
        Err(self.err("suspend to RAM cannot hold power off by itself: it powers off and on in one step (a power_cycle event, or Subsystem.power_cycle())"))
    }

    fn cycle(&self, off: Duration) -> Result<(), PowerError> {
        let state = self.sys.join("power/state");
        let states = std::fs::read_to_string(&state).map_err(|e| self.err(format!("{}: {e}", state.display())))?;
        if !states.split_whitespace().any(|s| s == "mem") {
            return Err(self.err(format!("the kernel offers no suspend to RAM ({} lists `{}`)", state.display(), states.trim())));
        }
        let mem_sleep = self.sys.join("power/mem_sleep");
        if let Ok(m) = std::fs::read_to_string(&mem_sleep)
            && !m.contains("[deep]")
        {
            return Err(self.err(format!(
                "{} is `{}`: suspend-to-idle keeps the slots powered; write deep to it (S3) to cut the drive's power",
                mem_sleep.display(),
                m.trim()
            )));
        }
        let alarm = self.sys.join("class/rtc").join(&self.spec.rtc).join("wakealarm");
        let secs = off.max(MIN_SLEEP).as_secs_f64().ceil() as u64;
        // An alarm already set must be cleared before a new one is accepted.
        self.write(&alarm, "0")?;
        self.write(&alarm, &format!("+{secs}"))?;
        self.write(&state, "mem")
    }

    fn ready_timeout(&self) -> Duration {
        self.spec.ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(mem_sleep: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("nvplan-suspend-{}-{mem_sleep}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("sys/power")).unwrap();
        std::fs::create_dir_all(root.join("sys/class/rtc/rtc0")).unwrap();
        std::fs::write(root.join("sys/power/state"), "freeze mem disk\n").unwrap();
        std::fs::write(root.join("sys/power/mem_sleep"), format!("{mem_sleep}\n")).unwrap();
        std::fs::write(root.join("sys/class/rtc/rtc0/wakealarm"), "").unwrap();
        root
    }

    #[test]
    fn a_cycle_sets_the_wake_alarm_then_suspends_to_ram_for_at_least_two_seconds() {
        let root = tree("s2idle [deep]");
        let s = SuspendSwitch::new(SuspendSpec { rtc: "rtc0".into(), ready: Duration::from_secs(5) }, &root);
        s.cycle(Duration::from_millis(200)).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("sys/class/rtc/rtc0/wakealarm")).unwrap(), "+2");
        assert_eq!(std::fs::read_to_string(root.join("sys/power/state")).unwrap(), "mem");
        s.cycle(Duration::from_millis(4500)).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("sys/class/rtc/rtc0/wakealarm")).unwrap(), "+5");
        assert!(s.off().unwrap_err().message.contains("one step"));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn suspend_to_idle_is_refused_because_it_keeps_the_slots_powered() {
        let root = tree("[s2idle] deep");
        let s = SuspendSwitch::new(SuspendSpec { rtc: "rtc0".into(), ready: Duration::from_secs(5) }, &root);
        let e = s.cycle(Duration::from_secs(1)).unwrap_err();
        assert!(e.message.contains("write deep"), "{e}");
        assert_eq!(std::fs::read_to_string(root.join("sys/power/state")).unwrap(), "freeze mem disk\n");
        let _ = std::fs::remove_dir_all(&root);
    }
}
