//! Power switches: what cuts and restores a drive's power. One trait, one implementation
//! per kind of lab equipment; the executor's power events and the Python front's
//! `Subsystem` call it and never know which one it is.
//!
//! | kind | how |
//! |---|---|
//! | `sim` | the simulated controller's own switch |
//! | `command` | user commands for off, on and (optionally) status, each with a timeout |
//! | `slot` | PCIe slot power through the kernel's hot-plug driver (`/sys/bus/pci/slots/<n>/power`) |
//! | `quarch` | a Quarch power module over its SCPI text protocol on TCP |
//! | `suspend` | host suspend to RAM with an RTC wake-up |
//!
//! A switch is written as text, on the command line (`--power`) or in a plan's `target:`:
//! `KIND[:OPTIONS]`, options as `key=value` separated by commas (see [`SwitchSpec::parse`]).
//! docs/power.md has an example for each.

pub mod command;
pub mod quarch;
pub mod sim;
pub mod slot;
pub mod suspend;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a function may take to answer configuration reads again after power returns,
/// unless the switch says otherwise (`ready=`). A drive needs up to 1 s after power is
/// stable before its link trains (PCIe CEM 4.0 §2.2: PERST# is held 100 ms; the link is up
/// within 100 ms after that); hot-plug drivers add a second of their own.
pub const DEFAULT_READY: Duration = Duration::from_secs(30);

/// A switch failed to do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{switch}: {message}")]
pub struct PowerError {
    /// The switch, as [`PowerSwitch::describe`] gives it.
    pub switch: String,
    /// What went wrong and, where it can be told, how to fix it.
    pub message: String,
}

impl PowerError {
    /// An error of the switch described by `switch`.
    pub fn new(switch: impl Into<String>, message: impl Into<String>) -> PowerError {
        PowerError { switch: switch.into(), message: message.into() }
    }
}

/// Something that cuts and restores a drive's power.
pub trait PowerSwitch: Send + Sync + std::fmt::Debug {
    /// A short description for logs and reports (`command`, `slot 3`, `quarch 10.0.0.5:9760`).
    fn describe(&self) -> String;

    /// Removes power; returns once the switch says it is off.
    fn off(&self) -> Result<(), PowerError>;

    /// Restores power; returns once the switch says it is on (the drive may still be
    /// training its link: see [`PowerSwitch::ready_timeout`]).
    fn on(&self) -> Result<(), PowerError>;

    /// Whether power is on, where the switch can tell (`None` where it cannot).
    fn is_on(&self) -> Result<Option<bool>, PowerError> {
        Ok(None)
    }

    /// Off, `off` without power, on. A switch that cannot hold power off on its own
    /// (suspend to RAM wakes by itself) does all of it in one step.
    fn cycle(&self, off: Duration) -> Result<(), PowerError> {
        self.off()?;
        std::thread::sleep(off);
        self.on()
    }

    /// How long the drive's function may take to answer again after [`PowerSwitch::on`].
    fn ready_timeout(&self) -> Duration {
        DEFAULT_READY
    }
}

/// A shared switch.
pub type SharedSwitch = Arc<dyn PowerSwitch>;

/// A switch as written, before it is opened.
#[derive(Clone, Debug, PartialEq)]
pub enum SwitchSpec {
    /// The simulated controller's own switch.
    Sim,
    /// User commands.
    Command(command::CommandSpec),
    /// PCIe slot power.
    Slot(slot::SlotSpec),
    /// A Quarch power module.
    Quarch(quarch::QuarchSpec),
    /// Suspend to RAM.
    Suspend(suspend::SuspendSpec),
}

/// Where a switch is opened: the file-system root sysfs is read under, and the drive's PCI
/// address where it has one.
#[derive(Clone, Debug)]
pub struct SwitchContext {
    /// `/`, or a tree with a fake `sys/` for tests.
    pub root: PathBuf,
    /// The drive's PCI function address (`0000:01:00.0`), if it is a PCI function.
    pub address: Option<String>,
}

/// The syntax, for error messages.
pub const SYNTAX: &str = "sim | command:off=CMD,on=CMD[,status=CMD][,timeout=30s] | slot[:NAME] | quarch:HOST[:PORT][,module=N] | suspend[:rtc=rtc0]; any of them may add ready=DURATION";

/// How to declare a switch, for plans refused for lacking one.
pub const HOW_TO_DECLARE: &str = "declare one with the target, in the plan (`target: {vfio: 0000:01:00.0, power: \"command:off=relay 3 off,on=relay 3 on\"}`) or on the command line (`--power command:off=CMD,on=CMD`, `--power slot`, `--power quarch:HOST`, `--power suspend`); docs/power.md shows each";

impl SwitchSpec {
    /// Parses `KIND[:OPTIONS]`: options are `key=value` pairs separated by commas, and a
    /// value may hold commas and `=` (a comma ends a value only where `key=` follows with a
    /// key the kind knows). A first option without `key=` is the kind's main value: the
    /// slot's name, the Quarch module's `HOST[:PORT]`.
    pub fn parse(text: &str) -> Result<SwitchSpec, String> {
        let t = text.trim();
        let (kind, rest) = t.split_once(':').map_or((t, ""), |(k, r)| (k.trim(), r));
        let known: &[&str] = match kind {
            "sim" => &["ready"],
            "command" => &["off", "on", "status", "timeout", "ready"],
            "slot" => &["name", "ready"],
            "quarch" => &["host", "port", "module", "timeout", "ready"],
            "suspend" => &["rtc", "ready"],
            "" => return Err(format!("empty power switch; write one of: {SYNTAX}")),
            other => return Err(format!("unknown power switch `{other}`; write one of: {SYNTAX}")),
        };
        let opts = Options::parse(kind, rest, known)?;
        let ready = opts.duration("ready")?.unwrap_or(DEFAULT_READY);
        Ok(match kind {
            "sim" => SwitchSpec::Sim,
            "command" => SwitchSpec::Command(command::CommandSpec::from_options(&opts, ready)?),
            "slot" => SwitchSpec::Slot(slot::SlotSpec { name: opts.main_or("name").map(str::to_string), ready }),
            "quarch" => SwitchSpec::Quarch(quarch::QuarchSpec::from_options(&opts, ready)?),
            _ => SwitchSpec::Suspend(suspend::SuspendSpec { rtc: opts.get("rtc").unwrap_or("rtc0").to_string(), ready }),
        })
    }

    /// The kind, as written.
    pub fn kind(&self) -> &'static str {
        match self {
            SwitchSpec::Sim => "sim",
            SwitchSpec::Command(_) => "command",
            SwitchSpec::Slot(_) => "slot",
            SwitchSpec::Quarch(_) => "quarch",
            SwitchSpec::Suspend(_) => "suspend",
        }
    }

    /// Opens the switch for the drive `ctx` describes. The simulator's switch is not opened
    /// here: it belongs to the simulator (see [`crate::transport::Transport::power_switch`]).
    pub fn open(&self, ctx: &SwitchContext) -> Result<SharedSwitch, String> {
        Ok(match self {
            SwitchSpec::Sim => return Err("the `sim` switch powers the simulated controller only; a drive needs command, slot, quarch or suspend".into()),
            SwitchSpec::Command(c) => Arc::new(command::CommandSwitch::new(c.clone(), ctx.address.clone())),
            SwitchSpec::Slot(s) => Arc::new(slot::SlotSwitch::open(s, ctx)?),
            SwitchSpec::Quarch(q) => Arc::new(quarch::QuarchSwitch::new(q.clone())),
            SwitchSpec::Suspend(s) => Arc::new(suspend::SuspendSwitch::new(s.clone(), &ctx.root)),
        })
    }
}

/// `key=value` options of a switch.
#[derive(Debug, Default)]
pub(crate) struct Options {
    kind: String,
    main: Option<String>,
    pairs: Vec<(String, String)>,
}

impl Options {
    fn parse(kind: &str, text: &str, known: &[&str]) -> Result<Options, String> {
        let mut o = Options { kind: kind.to_string(), ..Options::default() };
        if text.trim().is_empty() {
            return Ok(o);
        }
        // Split at commas followed by `key=`: for commands only a key the kind knows (a
        // command may hold `,R2=0`), for the others any lower-case word.
        let is_key = |k: &str| if kind == "command" { known.contains(&k) } else { !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') };
        let mut parts: Vec<String> = vec![String::new()];
        let mut rest = text;
        while let Some(i) = rest.find(',') {
            let (head, tail) = (&rest[..i], &rest[i + 1..]);
            parts.last_mut().expect("never empty").push_str(head);
            let starts_key = tail.split_once('=').is_some_and(|(k, _)| is_key(k.trim()));
            if starts_key {
                parts.push(String::new());
            } else {
                parts.last_mut().expect("never empty").push(',');
            }
            rest = tail;
        }
        parts.last_mut().expect("never empty").push_str(rest);
        for (i, p) in parts.iter().enumerate() {
            match p.split_once('=') {
                Some((k, v)) if known.contains(&k.trim()) => {
                    let k = k.trim();
                    if o.pairs.iter().any(|(have, _)| have == k) {
                        return Err(format!("{kind}: `{k}=` is given twice"));
                    }
                    o.pairs.push((k.to_string(), v.trim().to_string()));
                }
                _ if i == 0 && !p.trim().is_empty() => o.main = Some(p.trim().to_string()),
                Some((k, _)) => return Err(format!("{kind}: unknown option `{}`; {kind} takes {}", k.trim(), known.join("=, ") + "=")),
                None => return Err(format!("{kind}: `{}` is not an option; write key=value ({} )", p.trim(), known.join("=, ") + "=")),
            }
        }
        Ok(o)
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.pairs.iter().find(|(have, _)| have == k).map(|(_, v)| v.as_str())
    }

    /// The main value, or `key=`.
    pub(crate) fn main_or(&self, k: &str) -> Option<&str> {
        self.main.as_deref().or_else(|| self.get(k))
    }

    pub(crate) fn main(&self) -> Option<&str> {
        self.main.as_deref()
    }

    pub(crate) fn duration(&self, k: &str) -> Result<Option<Duration>, String> {
        self.get(k).map(|v| parse_duration(v).map_err(|m| format!("{}: {k}={v}: {m}", self.kind))).transpose()
    }
}

/// `30s`, `500ms`, `2min`, or plain seconds.
pub(crate) fn parse_duration(v: &str) -> Result<Duration, String> {
    crate::plan::units::duration(&crate::plan::model::DurationValue::Text(v.to_string()))
}

/// The last `n` characters of `s`, trimmed: what a report keeps of a command's output.
pub(crate) fn tail(s: &str, n: usize) -> String {
    let t = s.trim();
    let count = t.chars().count();
    if count <= n { t.to_string() } else { format!("...{}", t.chars().skip(count - n).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_values_keep_commas_and_equals_signs() {
        let s = SwitchSpec::parse("command:off=usbrelay R1=0,R2=0,on=usbrelay R1=1,status=relay state 1,timeout=5s").unwrap();
        let SwitchSpec::Command(c) = s else { panic!("a command switch") };
        assert_eq!(c.off, "usbrelay R1=0,R2=0");
        assert_eq!(c.on, "usbrelay R1=1");
        assert_eq!(c.status.as_deref(), Some("relay state 1"));
        assert_eq!(c.timeout, Duration::from_secs(5));
    }

    #[test]
    fn every_kind_parses_with_its_main_value() {
        assert_eq!(SwitchSpec::parse("sim").unwrap(), SwitchSpec::Sim);
        let SwitchSpec::Slot(s) = SwitchSpec::parse("slot:3,ready=1min").unwrap() else { panic!() };
        assert_eq!((s.name.as_deref(), s.ready), (Some("3"), Duration::from_secs(60)));
        let SwitchSpec::Slot(s) = SwitchSpec::parse("slot").unwrap() else { panic!() };
        assert_eq!(s.name, None);
        let SwitchSpec::Quarch(q) = SwitchSpec::parse("quarch:10.0.0.5:23,module=2").unwrap() else { panic!() };
        assert_eq!((q.host.as_str(), q.port, q.module), ("10.0.0.5", 23, Some(2)));
        let SwitchSpec::Suspend(s) = SwitchSpec::parse("suspend").unwrap() else { panic!() };
        assert_eq!(s.rtc, "rtc0");
    }

    #[test]
    fn mistakes_are_named_with_what_is_accepted() {
        let e = SwitchSpec::parse("relay:on=x").unwrap_err();
        assert!(e.contains("unknown power switch `relay`") && e.contains("command:off=CMD"), "{e}");
        let e = SwitchSpec::parse("command:on=x").unwrap_err();
        assert!(e.contains("off="), "{e}");
        let e = SwitchSpec::parse("slot:3,speed=fast").unwrap_err();
        assert!(e.contains("`speed=fast`") || e.contains("speed"), "{e}");
        let e = SwitchSpec::parse("quarch:host=x,timeout=soon").unwrap_err();
        assert!(e.contains("timeout=soon"), "{e}");
        let e = SwitchSpec::parse("command:off=a,on=b,off=c").unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn tail_keeps_the_end_of_long_output() {
        assert_eq!(tail("  short \n", 10), "short");
        assert_eq!(tail("abcdefghij", 3), "...hij");
    }
}
