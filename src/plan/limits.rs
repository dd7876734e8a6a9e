//! What a controller offers, for the checks that depend on the device, and the target a
//! plan runs on.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::PlanError;
use super::load::LoadedPlan;
use super::model::{PurgeMethod, SimSpec, TargetSpec};
use super::units::{duration, opcode};
use super::yaml::Seg;
use crate::driver::{Controller, ControllerOptions};
use crate::ioworker::available_cpus;
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
        Some(TargetSpec::Sim { sim }) => from_spec(plan, sim).map(Target::Sim),
    }
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
}
