//! What a controller offers, for the checks that depend on the device, and the target a
//! plan runs on.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::PlanError;
use super::load::LoadedPlan;
use super::model::{CpusValue, PowerKind, PowerSpec, PowerValue, PurgeMethod, SimSpec, TargetSpec};
use super::units::{duration, opcode};
use super::yaml::Seg;
use crate::driver::{Controller, ControllerOptions};
use crate::ioworker::available_cpus;
use crate::power::{SwitchSpec, command, quarch, slot, suspend};
use crate::sim::SimConfig;
use crate::sim::config::{GcModel, Latency, NamespaceConfig};
use crate::util::units::parse_size;

/// What the controller offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Active namespaces: NSID -> (size in LBAs, LBA size in bytes).
    pub namespaces: BTreeMap<u32, (u64, usize)>,
    /// Largest transfer of one command in bytes (MDTS, capped by what the driver prepares
    /// for); `usize::MAX` when unlimited.
    pub max_transfer: usize,
    /// Largest queue in entries (CAP.MQES + 1).
    pub max_queue_entries: u32,
    /// I/O queue pairs the controller grants.
    pub io_queues: u32,
    /// SGLs supported for NVM commands.
    pub sgl: bool,
    /// Host CPUs a worker can be pinned to.
    pub cpus: usize,
    /// Purge methods the controller supports (Identify SANICAP, OACS, FNA).
    pub purge: Vec<PurgeMethod>,
    /// Index of each namespace's LBA format (FLBAS), which a Format purge keeps.
    pub lbaf: BTreeMap<u32, u8>,
    /// The power switch power_cycle events use (its description), if the target has one.
    pub power_switch: Option<String>,
}

impl Limits {
    /// The limits a simulated controller of this configuration will show the driver (with
    /// default bring-up options), without starting it.
    pub fn from_sim(cfg: &SimConfig) -> Limits {
        let namespaces = cfg.namespaces.iter().enumerate().map(|(i, ns)| (i as u32 + 1, (ns.capacity / ns.lba_size as u64, ns.lba_size as usize))).collect();
        let mdts = if cfg.mdts == 0 { usize::MAX } else { 4096usize.checked_shl(cfg.mdts as u32).unwrap_or(usize::MAX) };
        Limits {
            namespaces,
            max_transfer: mdts.min(ControllerOptions::default().max_transfer),
            max_queue_entries: cfg.max_queue_entries,
            io_queues: cfg.max_io_queues as u32,
            sgl: cfg.sgl,
            cpus: available_cpus(),
            // As the simulated controller's Identify says (SANICAP block erase; Format
            // with user data or cryptographic erase).
            purge: vec![PurgeMethod::SanitizeBlock, PurgeMethod::FormatUserData, PurgeMethod::FormatCrypto],
            lbaf: cfg.namespaces.iter().enumerate().map(|(i, ns)| (i as u32 + 1, u8::from(ns.lba_size == 4096))).collect(),
            power_switch: Some("simulator".into()),
        }
    }

    /// The limits of a controller that is up.
    pub fn from_controller(ctrl: &Controller) -> Limits {
        let info = ctrl.info();
        Limits {
            namespaces: info.namespaces.iter().map(|n| (n.nsid, (n.nlba(), n.lba_size()))).collect(),
            max_transfer: if info.max_transfer == 0 { usize::MAX } else { info.max_transfer },
            max_queue_entries: ctrl.cap().max_queue_entries(),
            io_queues: info.io_queues.sq.min(info.io_queues.cq),
            sgl: info.id.sgl_supported(),
            cpus: available_cpus(),
            purge: purge_methods(info.id.sanicap, info.id.oacs, info.id.fna),
            lbaf: info.namespaces.iter().map(|n| (n.nsid, n.id.flbas & 0xf)).collect(),
            power_switch: ctrl.power_switch().map(|s| s.describe()),
        }
    }
}

/// The purge methods of a controller with these Identify Controller fields.
pub fn purge_methods(sanicap: u32, oacs: u16, fna: u8) -> Vec<PurgeMethod> {
    let mut v = Vec::new();
    for (bit, m) in [(1, PurgeMethod::SanitizeBlock), (0, PurgeMethod::SanitizeCrypto), (2, PurgeMethod::SanitizeOverwrite)] {
        if sanicap & 1 << bit != 0 {
            v.push(m);
        }
    }
    if oacs & crate::nvme::identify::oacs::FORMAT != 0 {
        v.push(PurgeMethod::FormatUserData);
        if fna & 1 << 2 != 0 {
            v.push(PurgeMethod::FormatCrypto);
        }
    }
    v
}

/// The controller a plan runs on.
// Built once per plan; boxing the configuration would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The embedded simulated controller, so configured.
    Sim(SimConfig),
    /// A PCIe function bound to vfio-pci: its address (`0000:01:00.0`, `01:00.0`) or an
    /// NVMe serial number, as written.
    Vfio(String),
}

/// Parses a target as written on the command line: `sim`, `sim:<options>` or
/// `vfio:<PCI address or serial number>`.
pub fn parse_target(text: &str) -> Result<Target, String> {
    let t = text.trim();
    match t.split_once(':') {
        Some(("sim", opts)) => SimConfig::parse_options(opts).map(Target::Sim),
        None if t == "sim" => SimConfig::parse_options("").map(Target::Sim),
        Some(("vfio", dev)) if !dev.trim().is_empty() => Ok(Target::Vfio(dev.trim().to_string())),
        Some(("vfio", _)) => Err(format!("target `{t}`: name the function, e.g. vfio:0000:01:00.0 or vfio:<serial> (`nvplan devices` lists them)")),
        _ => Err(format!("unknown target `{t}`; use `sim`, `sim:<options>` (e.g. sim:ns=1GiB,lba=4096) or `vfio:<PCI address or serial>`")),
    }
}

/// The controller a plan runs on: `--target` text wins over the plan's `target:`; without
/// either, the default simulator.
pub fn target(plan: &LoadedPlan, cli_target: Option<&str>) -> Result<Target, PlanError> {
    if let Some(t) = cli_target {
        return parse_target(t).map_err(|message| PlanError { file: plan.file.clone(), line: 1, col: 1, field: "--target".into(), message });
    }
    let path = [Seg::Key("target".into())];
    match &plan.plan.target {
        None => Ok(Target::Sim(SimConfig::default())),
        Some(TargetSpec::Text(t)) => parse_target(t).map_err(|m| plan.error(&path, "target", m)),
        Some(TargetSpec::Described { sim: Some(sim), vfio: None, .. }) => from_spec(plan, sim).map(Target::Sim),
        Some(TargetSpec::Described { sim: None, vfio: Some(v), .. }) => {
            parse_target(&format!("vfio:{v}")).map_err(|m| plan.error(&[path[0].clone(), Seg::Key("vfio".into())], "vfio", m))
        }
        Some(TargetSpec::Described { sim: Some(_), vfio: Some(_), .. }) => {
            Err(plan.key_error(&path, "vfio", "vfio", "a target is the simulator or a drive: give sim: or vfio:, not both"))
        }
        Some(TargetSpec::Described { sim: None, vfio: None, .. }) => {
            Err(plan.error(&path, "target", "a described target names what it is: {sim: {...}} or {vfio: 0000:01:00.0}, with power: if its power is switched"))
        }
    }
}

/// The power switch of the target a plan runs on: `--power` text wins; else the plan's
/// `target: {..., power: ...}`, unless `--target` replaced that target (a switch belongs to
/// its drive). `None`: the simulator's own switch for a simulated target, no switch for a
/// drive.
pub fn power(plan: &LoadedPlan, target: &Target, cli_target: Option<&str>, cli_power: Option<&str>) -> Result<Option<SwitchSpec>, PlanError> {
    let spec = if let Some(p) = cli_power {
        let cli = |message: String| PlanError { file: plan.file.clone(), line: 1, col: 1, field: "--power".into(), message };
        Some((SwitchSpec::parse(p).map_err(cli)?, vec![]))
    } else if cli_target.is_some() {
        None
    } else {
        match &plan.plan.target {
            Some(TargetSpec::Described { power: Some(v), .. }) => {
                let path = vec![Seg::Key("target".into()), Seg::Key("power".into())];
                let s = match v {
                    PowerValue::Text(t) => SwitchSpec::parse(t).map_err(|m| plan.error(&path, "power", m))?,
                    PowerValue::Map(m) => switch_from_map(plan, m, &path)?,
                };
                Some((s, path))
            }
            _ => None,
        }
    };
    let Some((s, path)) = spec else { return Ok(None) };
    let err = |m: String| {
        if path.is_empty() {
            PlanError { file: plan.file.clone(), line: 1, col: 1, field: "--power".into(), message: m }
        } else {
            plan.error(&path, "power", m)
        }
    };
    match (target, &s) {
        (Target::Sim(_), SwitchSpec::Sim) => Ok(None),
        (Target::Sim(_), other) => {
            Err(err(format!("the simulator has its own power switch; a {} switch is for a drive (vfio:): leave power: out, or write power: sim", other.kind())))
        }
        (Target::Vfio(_), SwitchSpec::Sim) => {
            Err(err("`sim` is the simulator's own switch; a drive needs command, slot, quarch or suspend (docs/power.md)".into()))
        }
        (Target::Vfio(_), _) => Ok(Some(s)),
    }
}

/// A switch written as a mapping; a field its kind does not take is refused where it is.
fn switch_from_map(plan: &LoadedPlan, m: &PowerSpec, path: &[Seg]) -> Result<SwitchSpec, PlanError> {
    let at = |field: &str, msg: String| {
        let mut p = path.to_vec();
        p.push(Seg::Key(field.into()));
        plan.error(&p, field, msg)
    };
    let kind = match m.kind {
        PowerKind::Sim => "sim",
        PowerKind::Command => "command",
        PowerKind::Slot => "slot",
        PowerKind::Quarch => "quarch",
        PowerKind::Suspend => "suspend",
    };
    let takes: &[&str] = match m.kind {
        PowerKind::Sim => &["ready"],
        PowerKind::Command => &["off", "on", "status", "timeout", "ready"],
        PowerKind::Slot => &["slot", "ready"],
        PowerKind::Quarch => &["host", "port", "module", "timeout", "ready"],
        PowerKind::Suspend => &["rtc", "ready"],
    };
    let given = [
        ("off", m.off.is_some()),
        ("on", m.on.is_some()),
        ("status", m.status.is_some()),
        ("slot", m.slot.is_some()),
        ("host", m.host.is_some()),
        ("port", m.port.is_some()),
        ("module", m.module.is_some()),
        ("rtc", m.rtc.is_some()),
        ("timeout", m.timeout.is_some()),
        ("ready", m.ready.is_some()),
    ];
    if let Some((f, _)) = given.iter().find(|(f, g)| *g && !takes.contains(f)) {
        return Err(at(f, format!("a {kind} switch takes no {f}; it takes {}", takes.join(", "))));
    }
    let dur = |field: &str, v: &Option<super::model::DurationValue>| v.as_ref().map(|d| duration(d).map_err(|e| at(field, e))).transpose();
    let ready = dur("ready", &m.ready)?.unwrap_or(crate::power::DEFAULT_READY);
    let need = |field: &str, v: &Option<String>, example: &str| {
        v.clone()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| plan.key_error(path, "kind", field, format!("a {kind} switch needs {field}: (e.g. {field}: {example})")))
    };
    Ok(match m.kind {
        PowerKind::Sim => SwitchSpec::Sim,
        PowerKind::Command => SwitchSpec::Command(command::CommandSpec {
            off: need("off", &m.off, "\"relay 3 off\"")?,
            on: need("on", &m.on, "\"relay 3 on\"")?,
            status: m.status.clone(),
            timeout: dur("timeout", &m.timeout)?.unwrap_or(command::DEFAULT_TIMEOUT),
            ready,
        }),
        PowerKind::Slot => SwitchSpec::Slot(slot::SlotSpec { name: m.slot.clone(), ready }),
        PowerKind::Quarch => SwitchSpec::Quarch(quarch::QuarchSpec::new(
            need("host", &m.host, "192.168.1.50")?,
            m.port.unwrap_or(quarch::FRAMED_PORT),
            m.module,
            dur("timeout", &m.timeout)?.unwrap_or(quarch::DEFAULT_TIMEOUT),
            ready,
        )),
        PowerKind::Suspend => SwitchSpec::Suspend(suspend::SuspendSpec { rtc: m.rtc.clone().unwrap_or_else(|| "rtc0".into()), ready }),
    })
}

/// The simulated controller a plan runs on (see [`target`]); for a VFIO target, the
/// default simulator (only the target's text is checked then: the device's own limits
/// come from the device).
pub fn sim_config(plan: &LoadedPlan, cli_target: Option<&str>) -> Result<SimConfig, PlanError> {
    Ok(match target(plan, cli_target)? {
        Target::Sim(c) => c,
        Target::Vfio(_) => SimConfig::default(),
    })
}

/// I/O opcodes a sim-wide latency or jitter applies to (as `sim:latency=`).
const IO_OPCODES: [u8; 8] = [0x00, 0x01, 0x02, 0x04, 0x05, 0x08, 0x09, 0x0c];

fn from_spec(plan: &LoadedPlan, sim: &SimSpec) -> Result<SimConfig, PlanError> {
    let base = [Seg::Key("target".into()), Seg::Key("sim".into())];
    let at = |rest: &[Seg], field: &str, m: String| {
        let mut p = base.to_vec();
        p.extend_from_slice(rest);
        plan.error(&p, field, m)
    };
    let key = |k: &str| Seg::Key(k.into());
    let mut cfg = SimConfig::default();
    if let Some(list) = &sim.namespaces {
        if list.is_empty() {
            return Err(at(&[key("namespaces")], "namespaces", "no namespaces; give at least one, e.g. [{size: 1GiB}]".into()));
        }
        cfg.namespaces.clear();
        for (i, ns) in list.iter().enumerate() {
            let here = [key("namespaces"), Seg::Index(i)];
            let size = parse_size(&ns.size).map_err(|m| at(&[here[0].clone(), here[1].clone(), key("size")], "size", m))?;
            let lba = ns.lba.unwrap_or(512);
            if lba != 512 && lba != 4096 {
                return Err(at(&[here[0].clone(), here[1].clone(), key("lba")], "lba", format!("LBA size {lba}; the simulator offers 512 and 4096")));
            }
            if !(8192..=64 << 40).contains(&size) {
                return Err(at(
                    &[here[0].clone(), here[1].clone(), key("size")],
                    "size",
                    format!("{size} bytes; the simulator's namespaces hold 8 KiB to 64 TiB"),
                ));
            }
            cfg.namespaces.push(NamespaceConfig::memory(size, lba));
        }
    }
    if let Some(m) = sim.mdts {
        if m > 16 {
            return Err(at(&[key("mdts")], "mdts", format!("{m} is above 16 (2^16 pages of 4 KiB per command); use 0 for no limit")));
        }
        cfg.mdts = m;
    }
    if let Some(q) = sim.queues {
        if q == 0 || q == u16::MAX {
            return Err(at(&[key("queues")], "queues", format!("{q} I/O queue pairs; the simulator offers 1 to 65534")));
        }
        cfg.max_io_queues = q;
    }
    if let Some(e) = sim.queue_entries {
        if !(2..=65536).contains(&e) {
            return Err(at(&[key("queue_entries")], "queue_entries", format!("{e} entries; a queue holds 2 to 65536")));
        }
        cfg.max_queue_entries = e;
    }
    if let Some(t) = sim.threads {
        if !(1..=64).contains(&t) {
            return Err(at(&[key("threads")], "threads", format!("{t} threads; use 1 to 64")));
        }
        cfg.io_threads = t;
    }
    if let Some(c) = &sim.cpus {
        let list = match c {
            CpusValue::One(c) => Ok(vec![*c]),
            CpusValue::Many(l) if l.is_empty() => Err("an empty list; name at least one CPU, e.g. [1]".to_string()),
            CpusValue::Many(l) => Ok(l.clone()),
            CpusValue::Text(t) => crate::util::cpus::parse_cpus(t),
        }
        .map_err(|m| at(&[key("cpus")], "cpus", m))?;
        let host = crate::util::cpus::host_cpus();
        if let Some(c) = list.iter().find(|c| !host.contains(c)) {
            let host = crate::util::cpus::cpu_list_text(&host);
            return Err(at(&[key("cpus")], "cpus", format!("CPU {c} is not one this process may run on; use some of {host}")));
        }
        cfg.cpus = list;
    }
    if let Some(s) = sim.sgl {
        cfg.sgl = s;
    }
    if let Some(w) = sim.write_cache {
        cfg.write_cache = w;
    }
    if let Some(s) = &sim.serial {
        cfg.serial = s.clone();
    }
    let jitter = match &sim.jitter {
        Some(j) => duration(j).map_err(|m| at(&[key("jitter")], "jitter", m))?,
        None => Duration::ZERO,
    };
    let mut fixed: BTreeMap<u8, Duration> = BTreeMap::new();
    for (name, d) in sim.latency.iter().flatten() {
        let op = opcode(name).map_err(|m| plan.key_error(&[base[0].clone(), base[1].clone(), key("latency")], name, "latency", m))?;
        let d = duration(d).map_err(|m| at(&[key("latency"), key(name)], "latency", m))?;
        fixed.insert(op, d);
    }
    for op in IO_OPCODES.iter().copied().chain(fixed.keys().copied()) {
        let f = fixed.get(&op).copied().unwrap_or_default();
        if f != Duration::ZERO || jitter != Duration::ZERO {
            cfg.latency.io[op as usize] = Latency { fixed: f, jitter };
        }
    }
    if let Some(gc) = &sim.gc {
        let latency = duration(&gc.latency).map_err(|m| at(&[key("gc"), key("latency")], "latency", m))?;
        let pct = |f: &str, v: Option<f64>, default: u32| match v {
            None => Ok(default),
            Some(x) if x.is_finite() && (0.0..=1000.0).contains(&x) => Ok((x * 100.0).round() as u32),
            Some(x) => Err(at(&[key("gc"), key(f)], f, format!("{x} namespace capacities; give 0 to 1000 (e.g. 1 for one full write of the namespace)"))),
        };
        cfg.gc = Some(GcModel { latency, after_pct: pct("after", gc.after, 100)?, span_pct: pct("span", gc.span, 200)? });
    }
    cfg.validate().map_err(|m| plan.error(&base, "sim", m))?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(doc: &str) -> LoadedPlan {
        super::super::load_str("p.yaml", doc).unwrap()
    }

    #[test]
    fn sim_limits_follow_the_configuration() {
        let cfg = SimConfig::parse_options("ns=1GiB,lba=4096,ns=1MiB,lba=512,mdts=5,mqes=256,queues=4,sgl=off").unwrap();
        let l = Limits::from_sim(&cfg);
        assert_eq!(l.namespaces.get(&1), Some(&(1 << 18, 4096)));
        assert_eq!(l.namespaces.get(&2), Some(&(2048, 512)));
        assert_eq!(l.max_transfer, 128 << 10);
        assert_eq!((l.max_queue_entries, l.io_queues, l.sgl), (256, 4, false));
        let unlimited = Limits::from_sim(&SimConfig { mdts: 0, ..SimConfig::default() });
        assert_eq!(unlimited.max_transfer, ControllerOptions::default().max_transfer, "the driver's own cap applies");
    }

    #[test]
    fn command_line_target_wins_over_the_plan() {
        let p = plan("name: t\ntarget: sim:ns=2GiB\nphases: [{name: a, events: [{at: 0, reset: controller}]}]\n");
        assert_eq!(sim_config(&p, None).unwrap().namespaces[0].capacity, 2 << 30);
        assert_eq!(sim_config(&p, Some("sim:ns=4GiB")).unwrap().namespaces[0].capacity, 4 << 30);
        let e = sim_config(&p, Some("sim:nss=4GiB")).unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("--target", 1));
        assert!(parse_target("nvme0").unwrap_err().contains("unknown target"));
        assert_eq!(target(&p, Some("vfio:01:00.0")).unwrap(), Target::Vfio("01:00.0".into()));
        assert!(parse_target("vfio:").unwrap_err().contains("name the function"));
    }

    #[test]
    fn a_described_sim_target_becomes_its_configuration() {
        let p = plan(
            "name: t\ntarget:\n  sim:\n    namespaces: [{size: 1GiB, lba: 4096}, {size: 64MiB}]\n    mdts: 3\n    queues: 2\n    queue_entries: 64\n    sgl: false\n    latency: {read: 80us, 0x01: 20us}\n    jitter: 5us\nphases: [{name: a, events: [{at: 0, reset: controller}]}]\n",
        );
        let c = sim_config(&p, None).unwrap();
        assert_eq!(c.namespaces, vec![NamespaceConfig::memory(1 << 30, 4096), NamespaceConfig::memory(64 << 20, 512)]);
        assert_eq!((c.mdts, c.max_io_queues, c.max_queue_entries, c.sgl), (3, 2, 64, false));
        assert_eq!(c.latency.io[2], Latency { fixed: Duration::from_micros(80), jitter: Duration::from_micros(5) });
        assert_eq!(c.latency.io[1].fixed, Duration::from_micros(20));
        assert_eq!(c.latency.io[0].jitter, Duration::from_micros(5), "jitter applies to every I/O opcode");
    }

    #[test]
    fn sim_cpus_in_a_plan_are_numbers_lists_or_kernel_notation_of_usable_cpus() {
        let with = |v: &str| {
            let doc = format!("name: t\ntarget:\n  sim:\n    cpus: {v}\nphases: [{{name: a, events: [{{at: 0, reset: controller}}]}}]\n");
            super::super::load_str("p.yaml", &doc).map_err(|e| e[0].clone()).and_then(|p| sim_config(&p, None))
        };
        let c0 = crate::util::cpus::host_cpus()[0];
        assert_eq!(with(&c0.to_string()).unwrap().cpus, vec![c0]);
        assert_eq!(with(&format!("[{c0}]")).unwrap().cpus, vec![c0]);
        assert_eq!(with(&format!("\"{c0}-{c0}\"")).unwrap().cpus, vec![c0]);
        let e = with("100000").unwrap_err();
        assert_eq!((e.field.as_str(), e.line), ("cpus", 4));
        assert!(e.message.contains("CPU 100000 is not one this process may run on"), "{}", e.message);
        assert!(with("[]").unwrap_err().message.contains("name at least one CPU"));
        assert!(with("\"3-1\"").unwrap_err().message.contains("backwards"));
    }
}
