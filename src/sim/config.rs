//! Configuration of the simulated controller.

use std::path::PathBuf;
use std::time::Duration;

use crate::util::units::{parse_duration, parse_size};

/// Where a namespace keeps its logical blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Sparse anonymous memory: only written blocks take memory.
    Memory,
    /// A file, mapped with memmap2 (sparse on file systems that support holes). Contents
    /// persist across runs of nvplan.
    File(PathBuf),
}

/// One namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Capacity in bytes (rounded down to whole LBAs).
    pub capacity: u64,
    /// LBA data size at start: 512 or 4096.
    pub lba_size: u32,
    /// Storage of the blocks.
    pub backing: Backing,
}

impl NamespaceConfig {
    /// A memory-backed namespace.
    pub fn memory(capacity: u64, lba_size: u32) -> Self {
        NamespaceConfig { capacity, lba_size, backing: Backing::Memory }
    }
}

/// Completion latency of one opcode: `fixed` plus a uniform jitter in `0..=jitter`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// Constant part.
    pub fixed: Duration,
    /// Uniform random part, upper bound.
    pub jitter: Duration,
}

/// Per-opcode completion latency; zero for all by default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyModel {
    /// Latency of I/O commands by opcode.
    pub io: [Latency; 256],
    /// Latency of admin commands (all opcodes).
    pub admin: Latency,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel { io: [Latency::default(); 256], admin: Latency::default() }
    }
}

impl LatencyModel {
    /// Whether every latency is zero (completions are posted as soon as commands execute).
    pub fn is_zero(&self) -> bool {
        self.admin == Latency::default() && self.io.iter().all(|l| *l == Latency::default())
    }
    /// Sets the latency of one I/O opcode.
    pub fn set_io(&mut self, opcode: u8, fixed: Duration, jitter: Duration) {
        self.io[opcode as usize] = Latency { fixed, jitter };
    }
}

/// Garbage collection as a flash drive shows it (what the SNIA PTS steady state is
/// about): fresh out of the box every write finds an erased block; once the free blocks
/// are used up, writes wait for blocks to be reclaimed. Modelled as extra write latency
/// that grows linearly with the data written since the last purge (Format NVM, Sanitize):
/// none until `after_pct` % of the namespace was written, all of `latency` once
/// `after_pct + span_pct` % was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcModel {
    /// Extra write latency once garbage collection runs at its steady level.
    pub latency: Duration,
    /// Data written since the purge before writes slow down, % of the namespace.
    pub after_pct: u32,
    /// Data written after that until the steady level, % of the namespace (0: at once).
    pub span_pct: u32,
}

impl Default for GcModel {
    fn default() -> Self {
        GcModel { latency: Duration::ZERO, after_pct: 100, span_pct: 200 }
    }
}

impl GcModel {
    /// Extra latency of a write to a namespace of `capacity` bytes of which `written`
    /// bytes were written since its purge.
    pub fn extra(&self, written: u64, capacity: u64) -> Duration {
        let pct = written as f64 * 100.0 / capacity.max(1) as f64;
        let f = if self.span_pct == 0 {
            if pct >= self.after_pct as f64 { 1.0 } else { 0.0 }
        } else {
            ((pct - self.after_pct as f64) / self.span_pct as f64).clamp(0.0, 1.0)
        };
        self.latency.mul_f64(f)
    }
}

/// Everything that shapes the simulated controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Namespaces, NSID 1 upward.
    pub namespaces: Vec<NamespaceConfig>,
    /// Identify Controller MDTS: `2^mdts` 4 KiB pages per command (0: no limit).
    pub mdts: u8,
    /// Largest I/O queue ID (and number of I/O SQs and CQs) the controller offers.
    pub max_io_queues: u16,
    /// CAP.MQES + 1: the largest queue size in entries (2 to 65536).
    pub max_queue_entries: u32,
    /// SGL support for NVM commands.
    pub sgl: bool,
    /// SGL Bit Bucket descriptor support (with `sgl`).
    pub sgl_bit_bucket: bool,
    /// A volatile write cache is present (and enabled at power on).
    pub write_cache: bool,
    /// Bytes of unflushed writes the cache holds before it writes everything back itself.
    pub write_cache_capacity: u64,
    /// CAP.DSTRD.
    pub doorbell_stride: u8,
    /// CAP.TO in 500 ms units.
    pub cap_timeout: u8,
    /// Time from CC.EN = 1 to CSTS.RDY = 1.
    pub ready_delay: Duration,
    /// Number of interrupt vectors (MSI-X table size) checked by Create I/O CQ.
    pub interrupt_vectors: u16,
    /// Threads that process I/O queues (the admin queue has its own).
    pub io_threads: usize,
    /// CPUs the processing threads run on (empty: wherever the kernel puts them). The
    /// I/O threads take one each, in turn; the controller thread may use all of them.
    pub cpus: Vec<usize>,
    /// How long an idle processing thread polls before it sleeps.
    pub idle_spin: Duration,
    /// Completion latency model.
    pub latency: LatencyModel,
    /// Garbage collection: write latency rising with the data written since a purge.
    pub gc: Option<GcModel>,
    /// Serial number (Identify Controller SN).
    pub serial: String,
    /// Model number (Identify Controller MN).
    pub model: String,
    /// Seed of the controller's own randomness (latency jitter).
    pub seed: u64,
    /// How long a short device self-test runs.
    pub self_test_short: Duration,
    /// How long an extended device self-test runs (Identify EDSTT rounds it up to minutes).
    pub self_test_extended: Duration,
    /// How long a Format NVM with a secure erase (SES 1: user data, 2: cryptographic)
    /// takes to complete; a format without one completes at once.
    pub format_erase: Duration,
    /// How long a sanitize operation runs after its command completed.
    pub sanitize_time: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            namespaces: vec![NamespaceConfig::memory(1 << 30, 512)],
            mdts: 7,
            max_io_queues: 64,
            // PyNVMe's psd.py creates a 4096-entry SQ (CAP.MQES allows up to 65536).
            max_queue_entries: 4096,
            sgl: true,
            sgl_bit_bucket: true,
            write_cache: true,
            write_cache_capacity: 256 << 20,
            doorbell_stride: 0,
            cap_timeout: 20,
            ready_delay: Duration::ZERO,
            interrupt_vectors: 65,
            io_threads: 1,
            cpus: Vec::new(),
            idle_spin: Duration::from_micros(50),
            latency: LatencyModel::default(),
            gc: None,
            serial: "NVPLANSIM0001".into(),
            model: "nvplan simulated NVMe controller".into(),
            seed: 0x5eed,
            self_test_short: Duration::from_millis(300),
            self_test_extended: Duration::from_secs(3),
            format_erase: Duration::from_millis(100),
            sanitize_time: Duration::from_millis(500),
        }
    }
}

impl SimConfig {
    /// Parses the options of a `sim:<options>` target: comma-separated `key=value` pairs.
    ///
    /// Keys: `ns` (capacity of one more namespace, e.g. `ns=4TiB`; repeatable), `lba`
    /// (LBA size of the namespaces given so far without one: 512 or 4096), `file` (back
    /// the last namespace by a file), `mdts`, `queues`, `mqes` (queue entries),
    /// `sgl=on|off`, `bitbucket=on|off`, `vwc=on|off`, `cache` (write cache capacity),
    /// `dstrd`, `threads`, `cpus` (the CPUs of its threads: `cpus=2`, `cpus=2-5`,
    /// `cpus=1+3`), `ready` (ready delay), `latency` (fixed latency of every I/O
    /// opcode, e.g. `80us`), `jitter`, `gc` (garbage collection's extra write latency,
    /// e.g. `400us`), `gc_after` and `gc_span` (% of the namespace written since a purge
    /// before writes slow down, and until they reach the steady level), `serial`, `seed`.
    pub fn parse_options(opts: &str) -> Result<SimConfig, String> {
        let mut cfg = SimConfig { namespaces: Vec::new(), ..SimConfig::default() };
        let mut lba_pending = 0usize;
        let mut latency = Latency::default();
        let onoff = |k: &str, v: &str| match v {
            "on" | "true" | "1" | "yes" => Ok(true),
            "off" | "false" | "0" | "no" => Ok(false),
            _ => Err(format!("sim option `{k}={v}`: expected on or off")),
        };
        for item in opts.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| format!("sim option `{item}`: expected key=value"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|_| format!("sim option `{k}={v}`: expected a number"));
            match k {
                "ns" => {
                    cfg.namespaces.push(NamespaceConfig::memory(parse_size(v).map_err(|e| format!("sim option ns: {e}"))?, 512));
                    lba_pending += 1;
                }
                "lba" => {
                    let l = num(v)? as u32;
                    if l != 512 && l != 4096 {
                        return Err(format!("sim option `lba={v}`: the simulator offers 512 and 4096"));
                    }
                    if cfg.namespaces.is_empty() {
                        cfg.namespaces.push(NamespaceConfig::memory(1 << 30, l));
                    }
                    let n = cfg.namespaces.len();
                    for ns in &mut cfg.namespaces[n - lba_pending.max(1)..] {
                        ns.lba_size = l;
                    }
                    lba_pending = 0;
                }
                "file" => match cfg.namespaces.last_mut() {
                    Some(ns) => ns.backing = Backing::File(PathBuf::from(v)),
                    None => return Err("sim option `file=` must follow an `ns=` option".into()),
                },
                "mdts" => cfg.mdts = u8::try_from(num(v)?).map_err(|_| format!("sim option `mdts={v}` is too large"))?,
                "queues" => {
                    cfg.max_io_queues = u16::try_from(num(v)?).map_err(|_| format!("sim option `queues={v}`: at most 65535"))?;
                    // A vector per I/O queue plus the admin queue's, as far as MSI-X goes
                    // (2048), so a CQ can use its queue ID as its vector.
                    cfg.interrupt_vectors = cfg.interrupt_vectors.max(cfg.max_io_queues.saturating_add(1).min(2048));
                }
                "mqes" => cfg.max_queue_entries = num(v)? as u32,
                "sgl" => cfg.sgl = onoff(k, v)?,
                "bitbucket" => cfg.sgl_bit_bucket = onoff(k, v)?,
                "vwc" => cfg.write_cache = onoff(k, v)?,
                "cache" => cfg.write_cache_capacity = parse_size(v).map_err(|e| format!("sim option cache: {e}"))?,
                "dstrd" => cfg.doorbell_stride = num(v)? as u8,
                "threads" => cfg.io_threads = num(v)? as usize,
                // Commas separate the options, so `+` joins the CPUs of a list.
                "cpus" => cfg.cpus = crate::util::cpus::parse_cpus(&v.replace('+', ",")).map_err(|e| format!("sim option `cpus={v}`: {e}"))?,
                "ready" => cfg.ready_delay = parse_duration(v).map_err(|e| format!("sim option ready: {e}"))?,
                "latency" => latency.fixed = parse_duration(v).map_err(|e| format!("sim option latency: {e}"))?,
                "jitter" => latency.jitter = parse_duration(v).map_err(|e| format!("sim option jitter: {e}"))?,
                "gc" => cfg.gc.get_or_insert_with(GcModel::default).latency = parse_duration(v).map_err(|e| format!("sim option gc: {e}"))?,
                "gc_after" => cfg.gc.get_or_insert_with(GcModel::default).after_pct = num(v)? as u32,
                "gc_span" => cfg.gc.get_or_insert_with(GcModel::default).span_pct = num(v)? as u32,
                "serial" => cfg.serial = v.to_string(),
                "seed" => cfg.seed = num(v)?,
                _ => {
                    return Err(format!(
                        "unknown sim option `{k}` (known: ns, lba, file, mdts, queues, mqes, sgl, bitbucket, vwc, cache, dstrd, threads, cpus, ready, latency, jitter, gc, gc_after, gc_span, serial, seed)"
                    ));
                }
            }
        }
        if cfg.namespaces.is_empty() {
            cfg.namespaces = SimConfig::default().namespaces;
        }
        if latency != Latency::default() {
            for op in [0x00u8, 0x01, 0x02, 0x04, 0x05, 0x08, 0x09, 0x0c] {
                cfg.latency.io[op as usize] = latency;
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the configuration for values the controller cannot model.
    pub fn validate(&self) -> Result<(), String> {
        if self.namespaces.is_empty() {
            return Err("the simulator needs at least one namespace".into());
        }
        for (i, ns) in self.namespaces.iter().enumerate() {
            if ns.lba_size != 512 && ns.lba_size != 4096 {
                return Err(format!("namespace {}: LBA size {} (the simulator offers 512 and 4096)", i + 1, ns.lba_size));
            }
            if ns.capacity < 4096 * 2 {
                return Err(format!("namespace {}: capacity {} is below the minimum of 8 KiB", i + 1, ns.capacity));
            }
            if ns.capacity > 64 << 40 {
                return Err(format!("namespace {}: capacity {} is above the simulator's 64 TiB", i + 1, ns.capacity));
            }
        }
        if !(2..=65536).contains(&self.max_queue_entries) {
            return Err(format!("queue entries {} outside 2..=65536", self.max_queue_entries));
        }
        if self.max_io_queues == 0 || self.max_io_queues == u16::MAX {
            return Err(format!("I/O queues {} outside 1..=65534", self.max_io_queues));
        }
        if self.doorbell_stride > 15 {
            return Err(format!("doorbell stride {} outside 0..=15", self.doorbell_stride));
        }
        if self.io_threads == 0 || self.io_threads > 64 {
            return Err(format!("I/O threads {} outside 1..=64", self.io_threads));
        }
        if self.mdts > 16 {
            return Err(format!("MDTS {} is above 16", self.mdts));
        }
        let limit = libc::CPU_SETSIZE as usize;
        if let Some(c) = self.cpus.iter().find(|&&c| c >= limit) {
            return Err(format!("CPU {c} for the simulator's threads is beyond the {limit} CPUs this host can address"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_options_parse_namespaces_and_switches() {
        let c = SimConfig::parse_options("ns=4TiB,ns=1GiB,lba=4096,mdts=5,sgl=off,vwc=off,latency=80us").unwrap();
        assert_eq!(c.namespaces.len(), 2);
        assert_eq!(c.namespaces[0].capacity, 4 << 40);
        assert_eq!(c.namespaces[0].lba_size, 4096);
        assert_eq!(c.namespaces[1].lba_size, 4096);
        assert_eq!(c.mdts, 5);
        assert!(!c.sgl && !c.write_cache);
        assert_eq!(c.latency.io[2].fixed, Duration::from_micros(80));
        assert_eq!(SimConfig::parse_options("").unwrap().namespaces.len(), 1);
    }

    #[test]
    fn gc_latency_grows_linearly_from_after_to_after_plus_span() {
        let c = SimConfig::parse_options("gc=400us,gc_after=100,gc_span=200").unwrap();
        let gc = c.gc.unwrap();
        let cap = 1000;
        assert_eq!(gc.extra(0, cap), Duration::ZERO, "fresh out of the box");
        assert_eq!(gc.extra(1000, cap), Duration::ZERO, "the first fill finds erased blocks");
        assert_eq!(gc.extra(2000, cap), Duration::from_micros(200), "half way");
        assert_eq!(gc.extra(3000, cap), Duration::from_micros(400));
        assert_eq!(gc.extra(9000, cap), Duration::from_micros(400), "steady level");
        let step = GcModel { span_pct: 0, ..gc };
        assert_eq!((step.extra(999, cap), step.extra(1000, cap)), (Duration::ZERO, Duration::from_micros(400)));
        assert_eq!(SimConfig::parse_options("").unwrap().gc, None, "no garbage collection unless asked");
    }

    #[test]
    fn sim_option_cpus_takes_a_list_joined_by_plus() {
        assert_eq!(SimConfig::parse_options("cpus=1+3,threads=2").unwrap().cpus, vec![1, 3]);
        assert_eq!(SimConfig::parse_options("cpus=2-4").unwrap().cpus, vec![2, 3, 4]);
        assert!(SimConfig::parse_options("").unwrap().cpus.is_empty(), "unpinned unless asked");
        let e = SimConfig::parse_options("cpus=x").unwrap_err();
        assert!(e.starts_with("sim option `cpus=x`: `x` is not a CPU number"), "{e}");
    }

    #[test]
    fn sim_options_reject_unknown_and_bad_values() {
        assert!(SimConfig::parse_options("nope=1").unwrap_err().contains("unknown sim option"));
        assert!(SimConfig::parse_options("lba=520").is_err());
        assert!(SimConfig::parse_options("sgl=maybe").is_err());
        assert!(SimConfig::parse_options("file=/tmp/x").is_err());
    }
}
