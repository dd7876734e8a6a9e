//! The plan as written in YAML: serde types with a JSON Schema (schemars). Parameter names
//! are the seed's; values with units may be written with them (`30s`, `4KiB`, `1GiB`) or as
//! the seed's plain numbers (seconds, LBAs).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A duration: seconds as a number (`10`, `0.5`), or a number with a unit (`30s`, `500ms`,
/// `2min`, `1h`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    /// Seconds.
    Seconds(f64),
    /// With a unit.
    Text(String),
}

impl JsonSchema for DurationValue {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Seconds as a number, or a number with a unit: ns, us, ms, s, min, h (e.g. 30s, 500ms).",
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9][0-9_]*(\\.[0-9]+)?\\s*(ns|us|µs|ms|s|sec|m|min|h)?\\s*$"}
            ]
        })
    }
}

/// An amount of LBAs: a number of LBAs (`8`, `0x100000`), or bytes with a unit (`4KiB`,
/// `1GiB`, `1GB`) converted with the namespace's LBA size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LbaValue {
    /// LBAs.
    Lbas(u64),
    /// Bytes with a unit, or a hexadecimal LBA count written as a string.
    Text(String),
}

impl JsonSchema for LbaValue {
    fn schema_name() -> Cow<'static, str> {
        "Lbas".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "LBAs as a number, or bytes with a unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB; K/M/G/T are binary) converted with the namespace's LBA size.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*(0[xX][0-9a-fA-F_]+|[0-9][0-9_]*\\s*([bB]|[kKmMgGtT]([iI][bB])?|[kKmMgGtT][bB])?)\\s*$"}
            ]
        })
    }
}

/// CPUs: one number (`1`), a list (`[1, 3]`) or the kernel's notation (`"2,4-7"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CpusValue {
    /// One CPU.
    One(usize),
    /// A list of CPUs.
    Many(Vec<usize>),
    /// A CPU list in the kernel's notation.
    Text(String),
}

/// One value or a list of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several values.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    /// As a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// `io_size`: one size, a list (equal weights), or `{size: weight}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IoSizeSpec {
    /// One size.
    One(LbaValue),
    /// Sizes of equal weight.
    List(Vec<LbaValue>),
    /// `{size: weight}`; the size may carry a unit (`4KiB: 67`).
    Weighted(BTreeMap<String, u32>),
}

/// `lba_random`: true (100 %), false (0 %), or a percentage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RandomSpec {
    /// All random or all sequential.
    Flag(bool),
    /// Percentage of random I/Os.
    Percent(u8),
}

/// What a worker does when a reset or power loss takes its queue pair away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnResetSpec {
    /// Stop with error -7 (PyNVMe's behaviour; the default).
    Stop,
    /// Wait for the controller, create a new queue pair, continue to the own stop condition.
    Resume,
}

/// Pass/fail expectations, for a phase (over all its workers) or one worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// Failed commands (miscompares included), exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// Status of the first failure, `SCT/SC` in hex (e.g. `02/81`): expect a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_status: Option<String>,
    /// The worker error code (0, -1 ... -10), e.g. -7 for workers stopped by a reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i32>,
    /// Smallest acceptable I/Os per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops_min: Option<f64>,
    /// Smallest acceptable throughput, MB/s (10^6 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbps_min: Option<f64>,
    /// Largest acceptable latency in µs at each percentile, e.g. `{99.9: 2000}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<BTreeMap<String, f64>>,
    /// A phase with `steady_state`: whether its rounds reach steady state (true) or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<bool>,
}

/// One I/O worker: PyNVMe3's ioworker parameters, with their names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// Name of the worker in reports (default: w0, w1, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace to run on (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
    /// Size of each I/O: LBAs, bytes with a unit, a list, or `{size: weight}` (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_size: Option<IoSizeSpec>,
    /// Alignment of the starting LBA: one value, or one per io_size entry (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba_align: Option<OneOrMany<LbaValue>>,
    /// Run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<DurationValue>,
    /// Number of I/Os to send (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_count: Option<u64>,
    /// LBAs to transfer before stopping (0: no limit); bytes with a unit are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba_count: Option<LbaValue>,
    /// Share of random I/Os: true, false, or a percentage (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba_random: Option<RandomSpec>,
    /// First LBA of sequential I/O (default region_start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba_start: Option<LbaValue>,
    /// Step between sequential I/Os in LBAs; negative walks down, 0 repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba_step: Option<i64>,
    /// Delay from the start of the phase before the first I/O; workers with the same
    /// start_time begin together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DurationValue>,
    /// Percentage of reads, the rest writes (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_percentage: Option<u8>,
    /// Opcode mix `{opcode: percentage}`, two decimals, summing to 100. Opcodes as numbers or
    /// names (read, write, flush, write_uncorrectable, compare, write_zeroes, dsm, verify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_percentage: Option<BTreeMap<String, f64>>,
    /// Percentage of I/Os using SGLs (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgl_percentage: Option<u8>,
    /// I/Os outstanding; the queue has qdepth + 1 entries (default 63).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdepth: Option<u32>,
    /// SQ priority class for weighted round robin, 0-3 (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qprio: Option<u8>,
    /// Region start(s), inclusive (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_start: Option<OneOrMany<LbaValue>>,
    /// Region end(s), exclusive (default: end of the namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_end: Option<OneOrMany<LbaValue>>,
    /// Most I/Os per second (0: as fast as possible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u64>,
    /// Upper 16 bits of CDW12 of every I/O (0x4000: FUA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_flags: Option<u16>,
    /// 100 weights summing to 10000: share of I/O per 1 % of the LBA space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Vec<u32>>,
    /// Data pattern type: 0, 32, 0xBEEF, 0x1234, 0x4321 (default 0xBEEF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptype: Option<u32>,
    /// Data pattern value (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvalue: Option<u32>,
    /// Exact I/Os: `[slba, nlb, opcode, time_sent_us]` each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_sequence: Option<Vec<(u64, u32, u8, u64)>>,
    /// Latency above which an I/O is slow: microseconds as in the seed (`2000000`), or a
    /// number with a unit (`2s`) (default 1 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_latency: Option<DurationValue>,
    /// Stop at the first failure (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_on_error: Option<bool>,
    /// Do not verify data (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_disable: Option<bool>,
    /// CPU core to pin the worker to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_id: Option<usize>,
    /// Record I/Os per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_io_per_second: Option<bool>,
    /// Latency percentiles to report, e.g. [99, 99.9, 99.999].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_percentile_latency: Option<Vec<f64>>,
    /// Opcode whose latency is tracked (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_percentile_latency_opcode: Option<u8>,
    /// Keep the last N commands in the command log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cmdlog_list: Option<usize>,
    /// Log only failed commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdlog_error_only: Option<bool>,
    /// Seed of this worker's I/O stream (default: derived from the plan's seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// On a reset or power loss: stop (default) or resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reset: Option<OnResetSpec>,
    /// Expectations for this worker alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectSpec>,
}

/// Which reset an event performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResetSpec {
    /// Controller reset: CC.EN 1 -> 0 -> 1.
    Controller,
    /// NVM Subsystem Reset (NSSR).
    Subsystem,
    /// PCIe Function Level Reset (as `flr`).
    Pcie,
    /// PCIe Function Level Reset.
    Flr,
    /// PCIe hot reset: Secondary Bus Reset of the upstream bridge.
    PcieHot,
    /// The upstream port disables the link and enables it again.
    LinkDisable,
}

/// A PCI power management state an event puts the function in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DState {
    /// Fully on.
    D0,
    /// Off but for configuration accesses; back to D0 after `hold`.
    D3hot,
}

/// ASPM Control of the function's Link Control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AspmSpec {
    /// ASPM disabled.
    #[serde(rename = "off")]
    Off,
    /// L0s entry enabled.
    L0s,
    /// L1 entry enabled.
    L1,
    /// L0s and L1 entry enabled.
    #[serde(rename = "L0s_L1")]
    L0sL1,
}

/// A PCIe power management change: one of `power_state` or `aspm`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PcieSpec {
    /// D-state through the PM capability's PMCSR. D3hot is held for `hold`, then the
    /// function returns to D0 and the controller is brought up again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<DState>,
    /// How long D3hot lasts (default 100ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<DurationValue>,
    /// ASPM Control of the function's Link Control: off, L0s, L1 or L0s_L1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aspm: Option<AspmSpec>,
}

/// A power cycle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerCycleSpec {
    /// Without shutdown notification, so unflushed writes may be lost (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<bool>,
    /// How long power stays off (default 1 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<DurationValue>,
}

/// Admin commands an event can send by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AdminCommand {
    /// Identify (cns, nsid).
    Identify,
    /// Get Log Page (lid, len, nsid).
    GetLogPage,
    /// Get Features (fid, sel).
    GetFeatures,
    /// Set Features (fid, value).
    SetFeatures,
    /// Format NVM (nsid, lbaf, ses).
    Format,
    /// Flush (nsid; default all namespaces).
    Flush,
    /// Dataset Management deallocate (nsid, ranges).
    Dsm,
    /// Sanitize (action; default 2, block erase).
    Sanitize,
    /// Any command: opcode, nsid, cdw10-cdw15, data_len (admin queue).
    Raw,
}

/// An admin command sent by an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// The command.
    pub command: AdminCommand,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
    /// Identify CNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cns: Option<u8>,
    /// Log page identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<u8>,
    /// Bytes of log page to read (default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u32>,
    /// Feature identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<u8>,
    /// Set Features value (CDW11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u32>,
    /// Get Features select (0 current, 1 default, 2 saved, 3 capabilities).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sel: Option<u8>,
    /// Format NVM LBA format index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lbaf: Option<u8>,
    /// Format NVM secure erase setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ses: Option<u8>,
    /// Sanitize action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<u8>,
    /// DSM ranges `[slba, nlb]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<(u64, u32)>>,
    /// Raw command opcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcode: Option<u8>,
    /// Raw command CDW10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw10: Option<u32>,
    /// Raw command CDW11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw11: Option<u32>,
    /// Raw command CDW12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw12: Option<u32>,
    /// Raw command CDW13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw13: Option<u32>,
    /// Raw command CDW14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw14: Option<u32>,
    /// Raw command CDW15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw15: Option<u32>,
    /// Raw command data buffer bytes (PRP), for commands that transfer data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_len: Option<u32>,
    /// Status the command must complete with, `SCT/SC` in hex (default 00/00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<String>,
}

/// Something that happens at a time during a phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// When, from the start of the phase.
    pub at: DurationValue,
    /// Name in reports (default: the kind of event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A reset: controller, subsystem, flr (or pcie), pcie_hot or link_disable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetSpec>,
    /// A power cycle, through the target's power switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_cycle: Option<PowerCycleSpec>,
    /// A PCIe power management change: D-state or ASPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcie: Option<PcieSpec>,
    /// An admin command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminSpec>,
    /// A failure of this event does not fail the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_failure: Option<bool>,
}

/// A phase: workers running together, events during them, expectations after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// Name of the phase.
    pub name: String,
    /// Run the phase this many times (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<u32>,
    /// One run per combination of these worker parameters' values, e.g.
    /// `{io_size: [8, 256], read_percentage: [0, 100]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<BTreeMap<String, Vec<serde_json::Value>>>,
    /// The I/O workers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ioworkers: Vec<WorkerSpec>,
    /// Timed events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventSpec>,
    /// Expectations over all workers of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<ExpectSpec>,
    /// Raw queue steps (PyNVMe3 metamode), run in order alongside the workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metamode: Option<super::metamode::MetamodeSpec>,
    /// Repeat the phase in rounds until a tracking variable is steady (SNIA PTS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steady_state: Option<SteadyStateSpec>,
    /// Purge the drive at the start of the phase (SNIA PTS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge: Option<PurgeMethod>,
    /// Workload-independent preconditioning: one more worker of sequential writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition: Option<PreconditionSpec>,
    /// Share of the namespace the workers use, % from LBA 0 (default 100), for workers
    /// that give no region of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_range: Option<f64>,
    /// A SNIA PTS report page of this phase besides the steady-state ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_page: Option<ReportPage>,
}

/// SNIA PTS report pages a phase can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportPage {
    /// Write Saturation: IOPS against time and against the total data written.
    WriteSaturation,
}

impl PhaseSpec {
    /// Times the phase (all its sweep combinations) runs at most: `repeat`, or the
    /// steady-state rounds.
    pub fn rounds(&self) -> u32 {
        match &self.steady_state {
            Some(s) => s.rule().max_rounds,
            None => self.repeat.unwrap_or(1),
        }
    }
}

/// A value of a round that steady state tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackMetric {
    /// I/Os per second (all workers of the cell together).
    Iops,
    /// MB/s, 10^6 bytes (all workers of the cell together).
    Mbps,
    /// Average latency, µs (over all the cell's I/Os).
    LatencyMeanUs,
    /// Largest latency, µs.
    LatencyMaxUs,
}

/// What steady state tracks: `iops`, `mbps`, `latency_mean_us`, `latency_max_us`, or a
/// latency percentile `{latency_us: 99.999}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TrackSpec {
    /// A named value.
    Metric(TrackMetric),
    /// A latency percentile, µs (the largest of the cell's workers).
    Percentile {
        /// The percentile, strictly between 0 and 100.
        latency_us: f64,
    },
}

/// Rounds until steady state (SNIA PTS 2.0.2): the phase, every sweep combination of it
/// being one round, runs again until the tracking variable of one cell is steady over a
/// measurement window, or `max_rounds` rounds ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteadyStateSpec {
    /// The tracking variable.
    pub track: TrackSpec,
    /// The tracked cell: one value for every sweep key, e.g. `{io_size: 4KiB,
    /// read_percentage: 0}` (leave out for a phase without sweep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<BTreeMap<String, serde_json::Value>>,
    /// Rounds in the measurement window (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u32>,
    /// Largest range of the window's values, % of their average (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<f64>,
    /// Largest change of the least-squares line across the window, % of the average
    /// (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope: Option<f64>,
    /// Rounds after which the phase stops, steady or not (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rounds: Option<u32>,
}

impl SteadyStateSpec {
    /// The rule with the defaults filled in.
    pub fn rule(&self) -> crate::exec::steady::Rule {
        let d = crate::exec::steady::Rule::default();
        crate::exec::steady::Rule {
            window: self.window.unwrap_or(d.window),
            range_pct: self.range.unwrap_or(d.range_pct),
            slope_pct: self.slope.unwrap_or(d.slope_pct),
            max_rounds: self.max_rounds.unwrap_or(d.max_rounds),
        }
    }
}

/// How a phase purges the drive (SNIA PTS 2.0.2 §3: the device is returned to its state
/// fresh out of the box before a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurgeMethod {
    /// The first the controller supports, in the order of this list.
    Auto,
    /// Sanitize, block erase (SANICAP bit 1).
    SanitizeBlock,
    /// Sanitize, crypto erase (SANICAP bit 0).
    SanitizeCrypto,
    /// Sanitize, overwrite (SANICAP bit 2).
    SanitizeOverwrite,
    /// Format NVM with user data erase (SES 1), keeping the LBA format.
    FormatUserData,
    /// Format NVM with cryptographic erase (SES 2; FNA bit 2), keeping the LBA format.
    FormatCrypto,
}

/// Workload-independent preconditioning (SNIA PTS): sequential writes over the active
/// range, a multiple of its size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreconditionSpec {
    /// Times the active range is written (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    /// Size of each write (default 128KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_size: Option<LbaValue>,
    /// Writes outstanding (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qdepth: Option<u32>,
    /// Share of the namespace written, % from LBA 0 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_range: Option<f64>,
    /// Namespace (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
}

/// The simulated controller a plan runs on (everything optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimSpec {
    /// Namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<SimNamespaceSpec>>,
    /// MDTS (2^mdts 4 KiB pages per command; 0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdts: Option<u8>,
    /// Number of I/O queue pairs offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u16>,
    /// Largest queue size in entries (CAP.MQES + 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_entries: Option<u32>,
    /// SGL support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgl: Option<bool>,
    /// Volatile write cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_cache: Option<bool>,
    /// I/O processing threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// CPUs the processing threads run on (one each for the I/O threads, in turn): keep
    /// them off the CPUs of pinned workers (`cpu_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<CpusValue>,
    /// Fixed latency per command kind: `{read: 80us, write: 20us}` (also flush, dsm,
    /// write_zeroes, ... or opcodes as numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<BTreeMap<String, DurationValue>>,
    /// Uniform random latency added to each command, upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<DurationValue>,
    /// Garbage collection: write latency that rises with the data written since the last
    /// purge (Format NVM, Sanitize), from fresh out of the box to a steady level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<SimGcSpec>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// The simulator's garbage collection model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimGcSpec {
    /// Extra write latency at the steady level, e.g. `400us`.
    pub latency: DurationValue,
    /// Namespace capacities written since the purge before writes slow down (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<f64>,
    /// Capacities written after that until the steady level (default 2; 0: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<f64>,
}

/// A namespace of the simulated controller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimNamespaceSpec {
    /// Capacity in bytes with a unit, e.g. `1GiB`, `4TiB`.
    pub size: String,
    /// LBA size: 512 or 4096 (default 512).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba: Option<u32>,
}

/// Where a plan runs by default (`--target` overrides it, with its switch).
// Read once per plan; boxing the configuration would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TargetSpec {
    /// As on the command line: `sim`, `sim:ns=1GiB,lba=4096`, `vfio:0000:01:00.0`.
    Text(String),
    /// The simulated controller or a drive, described, with its power switch.
    Described {
        /// The simulated controller's configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sim: Option<SimSpec>,
        /// A drive bound to vfio-pci: its PCI address or serial number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vfio: Option<String>,
        /// What cuts the drive's power (docs/power.md): text as `--power` takes it
        /// (`command:off=CMD,on=CMD`, `slot`, `quarch:HOST`, `suspend`), or a mapping.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        power: Option<PowerValue>,
    },
}

/// A power switch: text as `--power` takes it, or a mapping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PowerValue {
    /// `KIND[:OPTIONS]`, e.g. `command:off=relay 3 off,on=relay 3 on`.
    Text(String),
    /// The same, as a mapping.
    Map(PowerSpec),
}

/// Kinds of power switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PowerKind {
    /// The simulated controller's own.
    Sim,
    /// User commands (off, on, status).
    Command,
    /// PCIe slot power through the kernel's hot-plug driver.
    Slot,
    /// A Quarch power module over TCP.
    Quarch,
    /// Host suspend to RAM with an RTC wake-up.
    Suspend,
}

/// A power switch as a mapping; the fields a kind does not take are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PowerSpec {
    /// Which switch.
    pub kind: PowerKind,
    /// command: the command that cuts power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off: Option<String>,
    /// command: the command that restores power.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// command: a command that prints on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// slot: the slot's name under /sys/bus/pci/slots (default: found from the drive's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// quarch: the module's host name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// quarch: TCP port (9760, or 23 for telnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// quarch: the module's port on an array controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<u32>,
    /// suspend: the RTC that wakes the host (default rtc0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtc: Option<String>,
    /// command, quarch: longest one command may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
    /// Longest the drive may take to answer again after power on (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<DurationValue>,
}

/// A plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Name of the plan.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seed of every worker's I/O stream: same plan, same seed, same I/O (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Default target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetSpec>,
    /// The phases, run in order.
    pub phases: Vec<PhaseSpec>,
}

/// The JSON Schema of plans (draft-07, which editors' YAML language servers validate).
pub fn schema() -> serde_json::Value {
    let gen_ = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut s = gen_.into_root_schema_for::<Plan>();
    s.insert("$id".into(), "https://nvplan.dev/schema/plan.schema.json".into());
    s.insert("title".into(), "nvplan plan".into());
    let mut v = serde_json::to_value(&s).expect("schemas serialise");
    bound_integers(&mut v);
    v
}

/// Gives every integer of a fixed width the range of its type, so that a value the typed
/// plan cannot hold (`qdepth: 4294967296`) is found by the schema, at its position, rather
/// than by deserialisation, which cannot say where it is.
fn bound_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let range: Option<(Value, Value)> = match m.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((0.into(), u8::MAX.into())),
                Some("uint16") => Some((0.into(), u16::MAX.into())),
                Some("uint32") => Some((0.into(), u32::MAX.into())),
                Some("uint64") | Some("uint") => Some((0.into(), u64::MAX.into())),
                Some("int8") => Some((i8::MIN.into(), i8::MAX.into())),
                Some("int16") => Some((i16::MIN.into(), i16::MAX.into())),
                Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                Some("int64") | Some("int") => Some((i64::MIN.into(), i64::MAX.into())),
                _ => None,
            };
            if let Some((lo, hi)) = range {
                m.entry("minimum").or_insert(lo);
                m.entry("maximum").or_insert(hi);
            }
            m.values_mut().for_each(bound_integers);
        }
        Value::Array(a) => a.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Names of every worker parameter (the keys a sweep may use).
pub fn worker_fields() -> Vec<String> {
    let s = schemars::generate::SchemaSettings::draft07().into_generator().into_root_schema_for::<WorkerSpec>();
    let v = serde_json::to_value(&s).expect("schemas serialise");
    v["properties"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}
