//! The `metamode:` section of a phase: named DMA buffers and a list of raw queue steps
//! (create queues, write SQEs, ring doorbells, wait for and check CQEs, check buffers and
//! asynchronous events), run in order by [`crate::exec`]. The steps and their fields are
//! those of PyNVMe3's metamode classes (`../metamode`).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::PlanError;
use super::load::LoadedPlan;
use super::model::{AdminSpec, DurationValue};
use super::units::{duration, parse_status};
use super::yaml::Seg;

/// Bytes: a number, or a number with a unit (`4KiB`, `160`, `0x1000`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Bytes {
    /// Bytes.
    Count(u64),
    /// With a unit.
    Text(String),
}

impl Bytes {
    /// The number of bytes.
    pub fn get(&self) -> Result<u64, String> {
        match self {
            Bytes::Count(n) => Ok(*n),
            Bytes::Text(t) => crate::util::units::parse_size(t),
        }
    }
}

/// Where a data pointer points: a named buffer (its address plus offset) or a raw address
/// (one outside mapped memory, say).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Target {
    /// Address.
    Address(u64),
    /// Buffer name.
    Buffer(String),
}

/// One SGL descriptor of a segment buffer (§4.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SglSpec {
    /// Data Block over a buffer (its length unless `len` is given).
    DataBlock(Target),
    /// Bit Bucket of this many bytes.
    BitBucket(u32),
    /// Segment: the descriptors of a segment buffer, the last of which may chain on.
    Segment(String),
    /// Last Segment: the descriptors of a segment buffer.
    LastSegment(String),
}

/// A named DMA buffer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BufferSpec {
    /// Bytes of memory (default 4 KiB; rounded up to whole pages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Bytes>,
    /// Offset presented in data pointers (PRP offset), any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Bytes a transfer through the buffer covers (default: size less offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<Bytes>,
    /// Data pattern (0, 32, 0xBEEF, 0x1234, 0x4321; default zeroes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptype: Option<u32>,
    /// Pattern value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvalue: Option<u32>,
    /// Makes the buffer a PRP list: its entries, from `offset` (buffer names or raw
    /// addresses; a list name chains lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prp_list: Option<Vec<Target>>,
    /// Makes the buffer an SGL segment: its descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgl: Option<Vec<SglSpec>>,
}

/// Create I/O Completion Queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCq {
    /// Queue id.
    pub id: u16,
    /// Entries.
    pub entries: u32,
    /// Queue memory (a buffer name).
    pub buffer: String,
    /// Interrupt vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iv: Option<u16>,
    /// Interrupts enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ien: Option<bool>,
    /// Status the command must complete with, `SCT/SC` (default 00/00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<String>,
}

/// Create I/O Submission Queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSq {
    /// Queue id.
    pub id: u16,
    /// Entries.
    pub entries: u32,
    /// Queue memory (a buffer name).
    pub buffer: String,
    /// The CQ it completes into (any id).
    pub cq: u16,
    /// Priority class (0 urgent .. 3 low).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prio: Option<u8>,
    /// Status the command must complete with (default 00/00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<String>,
}

/// Delete a queue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteQueue {
    /// Queue id.
    pub id: u16,
    /// Status the command must complete with (default 00/00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<String>,
}

/// An SQE with every field, written into an SQ slot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqeSpec {
    /// The SQ (a queue created by an earlier step).
    pub sq: u16,
    /// Slot (default: the slot the tail doorbell points at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Opcode.
    pub opcode: u8,
    /// Namespace (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
    /// Command identifier (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<u16>,
    /// Fused operation (CDW0 bits 9:8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse: Option<u8>,
    /// PRP or SGL (CDW0 bits 15:14; default 0, or 1 with `sgl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psdt: Option<u8>,
    /// Metadata pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mptr: Option<u64>,
    /// PRP entry 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prp1: Option<Target>,
    /// PRP entry 2 (a buffer, a PRP list or an address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prp2: Option<Target>,
    /// SGL descriptor in DPTR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgl: Option<SglSpec>,
    /// CDW2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw2: Option<u32>,
    /// CDW3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw3: Option<u32>,
    /// CDW10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw10: Option<u32>,
    /// CDW11.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw11: Option<u32>,
    /// CDW12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw12: Option<u32>,
    /// CDW13.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw13: Option<u32>,
    /// CDW14.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw14: Option<u32>,
    /// CDW15.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw15: Option<u32>,
}

/// A Read or Write of LBAs through one buffer (PRP1), placed at the tail slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IoSpec {
    /// The SQ.
    pub sq: u16,
    /// Command identifier (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<u16>,
    /// Namespace (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nsid: Option<u32>,
    /// Starting LBA (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba: Option<u64>,
    /// LBAs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lba_count: Option<u32>,
    /// The data buffer.
    pub buffer: String,
}

/// A doorbell write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoorbellSpec {
    /// Queue id (any, one never created included).
    pub id: u16,
    /// The value, any (one beyond the queue included).
    pub value: u32,
}

/// Waits for the phase tag of a CQ slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitPbit {
    /// The CQ.
    pub cq: u16,
    /// Slot.
    pub slot: u32,
    /// Expected phase tag, 0 or 1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<u8>,
    /// How long (default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
}

/// Waits for the next completions of a CQ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Waitdone {
    /// The CQ.
    pub cq: u16,
    /// Completions (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// How long (default 10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
}

/// What a CQE must hold; fields left out are not checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectCqe {
    /// The CQ.
    pub cq: u16,
    /// Slot.
    pub slot: u32,
    /// Status `SCT/SC` in hex (`00/00`, `01/01`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Command identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<u16>,
    /// SQ identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqid: Option<u16>,
    /// SQ head pointer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqhd: Option<u16>,
    /// Phase tag, 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<u8>,
    /// Dword 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdw0: Option<u32>,
    /// Do Not Retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnr: Option<bool>,
    /// More.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<bool>,
}

/// Bytes of a buffer: written by a step, or checked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BufferBytes {
    /// The buffer.
    pub buffer: String,
    /// From its start (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// Text (UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
    /// Checks only: the same as this buffer's bytes at the same place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
    /// Checks with `same_as`: where in that buffer (default: `at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u64>,
    /// Checks with `same_as`: bytes to compare (default: the buffer's length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub len: Option<u64>,
}

/// An asynchronous event that must arrive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectAer {
    /// Dword 0 of the AER completion: type, information, log page (e.g. 0x10100, an invalid
    /// doorbell write value).
    pub value: u32,
    /// How long (default 1 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationValue>,
}

/// One metamode step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MetaStep {
    /// Create an I/O CQ.
    CreateCq(CreateCq),
    /// Create an I/O SQ.
    CreateSq(CreateSq),
    /// Delete an I/O SQ.
    DeleteSq(DeleteQueue),
    /// Delete an I/O CQ.
    DeleteCq(DeleteQueue),
    /// Write an SQE into an SQ slot.
    Sqe(SqeSpec),
    /// Place a Read at the tail slot.
    Read(IoSpec),
    /// Place a Write at the tail slot.
    Write(IoSpec),
    /// Write the SQ tail doorbell.
    SqTail(DoorbellSpec),
    /// Write the CQ head doorbell.
    CqHead(DoorbellSpec),
    /// Wait for a phase tag.
    WaitPbit(WaitPbit),
    /// Wait for completions.
    Waitdone(Waitdone),
    /// Check a CQE.
    ExpectCqe(ExpectCqe),
    /// Write bytes into a buffer.
    WriteBuffer(BufferBytes),
    /// Check bytes of a buffer.
    ExpectBuffer(BufferBytes),
    /// Send an Asynchronous Event Request.
    Aer(AerSpec),
    /// Check that an asynchronous event arrives.
    ExpectAer(ExpectAer),
    /// Send an admin command (as events do).
    Admin(AdminSpec),
    /// Wait (scaled by `--time-scale`).
    Sleep(DurationValue),
}

/// An Asynchronous Event Request (no fields: `aer: {}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AerSpec {}

/// A phase's metamode section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetamodeSpec {
    /// Named DMA buffers: queue memory, data, PRP lists, SGL segments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub buffers: BTreeMap<String, BufferSpec>,
    /// The steps, in order.
    pub steps: Vec<MetaStep>,
}

/// Default wait of `wait_pbit` and `waitdone` (PyNVMe's 10 s).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

impl MetaStep {
    /// The step's name in reports (`create_cq`, `expect_cqe`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            MetaStep::CreateCq(_) => "create_cq",
            MetaStep::CreateSq(_) => "create_sq",
            MetaStep::DeleteSq(_) => "delete_sq",
            MetaStep::DeleteCq(_) => "delete_cq",
            MetaStep::Sqe(_) => "sqe",
            MetaStep::Read(_) => "read",
            MetaStep::Write(_) => "write",
            MetaStep::SqTail(_) => "sq_tail",
            MetaStep::CqHead(_) => "cq_head",
            MetaStep::WaitPbit(_) => "wait_pbit",
            MetaStep::Waitdone(_) => "waitdone",
            MetaStep::ExpectCqe(_) => "expect_cqe",
            MetaStep::WriteBuffer(_) => "write_buffer",
            MetaStep::ExpectBuffer(_) => "expect_buffer",
            MetaStep::Aer(_) => "aer",
            MetaStep::ExpectAer(_) => "expect_aer",
            MetaStep::Admin(_) => "admin",
            MetaStep::Sleep(_) => "sleep",
        }
    }
}

/// Checks a metamode section: buffer sizes and names, queues used before they are
/// created, statuses and durations. `path` is the section's place in the plan.
pub(crate) fn check(lp: &LoadedPlan, m: &MetamodeSpec, path: &[Seg]) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let at = |extra: &[Seg]| -> Vec<Seg> { [path, extra].concat() };
    let k = |s: &str| Seg::Key(s.into());
    for (name, b) in &m.buffers {
        let bp = at(&[k("buffers"), k(name)]);
        let size = match b.size.as_ref().map_or(Ok(4096), Bytes::get) {
            Ok(s) if s > 0 && s <= 1 << 30 => s,
            Ok(s) => {
                errors.push(lp.error(&[bp.as_slice(), &[k("size")]].concat(), "size", format!("{s} bytes; a buffer holds 1 byte to 1 GiB")));
                continue;
            }
            Err(e) => {
                errors.push(lp.error(&[bp.as_slice(), &[k("size")]].concat(), "size", e));
                continue;
            }
        };
        if let Some(Err(e)) = b.length.as_ref().map(Bytes::get) {
            errors.push(lp.error(&[bp.as_slice(), &[k("length")]].concat(), "length", e));
        }
        if b.prp_list.is_some() && b.sgl.is_some() {
            errors.push(lp.error(&bp, "sgl", "a buffer is a PRP list or an SGL segment, not both"));
        }
        let off = b.offset.unwrap_or(0);
        if let Some(list) = &b.prp_list {
            if off + list.len() as u64 * 8 > size {
                errors.push(lp.error(
                    &[bp.as_slice(), &[k("prp_list")]].concat(),
                    "prp_list",
                    format!("{} entries from offset {off} need {} bytes; the buffer has {size}: make it larger", list.len(), off + list.len() as u64 * 8),
                ));
            }
            for (i, t) in list.iter().enumerate() {
                if let Target::Buffer(n) = t
                    && !m.buffers.contains_key(n)
                {
                    errors.push(lp.error(&[bp.as_slice(), &[k("prp_list"), Seg::Index(i)]].concat(), "prp_list", unknown(n, m)));
                }
            }
        }
        if let Some(sgl) = &b.sgl {
            if sgl.len() as u64 * 16 > size {
                errors.push(lp.error(
                    &[bp.as_slice(), &[k("sgl")]].concat(),
                    "sgl",
                    format!("{} descriptors need {} bytes; the buffer has {size}", sgl.len(), sgl.len() * 16),
                ));
            }
            for (i, d) in sgl.iter().enumerate() {
                if let Some(e) = sgl_error(d, m) {
                    errors.push(lp.error(&[bp.as_slice(), &[k("sgl"), Seg::Index(i)]].concat(), "sgl", e));
                }
            }
        }
    }
    let (mut cqs, mut sqs) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
    let buffer = |n: &str, field: &str, sp: &[Seg], errors: &mut Vec<PlanError>| {
        if !m.buffers.contains_key(n) {
            errors.push(lp.error(&[sp, &[k(field)]].concat(), field, unknown(n, m)));
        }
    };
    let status = |s: &Option<String>, field: &str, sp: &[Seg], errors: &mut Vec<PlanError>| {
        if let Some(Err(e)) = s.as_deref().map(parse_status) {
            errors.push(lp.error(&[sp, &[k(field)]].concat(), field, e));
        }
    };
    let dur = |d: &Option<DurationValue>, sp: &[Seg], errors: &mut Vec<PlanError>| {
        if let Some(Err(e)) = d.as_ref().map(duration) {
            errors.push(lp.error(&[sp, &[k("timeout")]].concat(), "timeout", e));
        }
    };
    for (i, s) in m.steps.iter().enumerate() {
        let sp = at(&[k("steps"), Seg::Index(i), k(s.kind())]);
        // A step on a queue no earlier step created: `what` is "SQ" or "CQ".
        let need = |what: &str, id: u16, made: &std::collections::BTreeSet<u16>, errors: &mut Vec<PlanError>| {
            if !made.contains(&id) {
                let field = what.to_lowercase();
                let message = format!("{what} {id} is not created by an earlier step; add a create_{field} step before this one");
                errors.push(lp.error(&[sp.as_slice(), &[k(&field)]].concat(), &field, message));
            }
        };
        match s {
            MetaStep::CreateCq(c) => {
                buffer(&c.buffer, "buffer", &sp, &mut errors);
                status(&c.expect_status, "expect_status", &sp, &mut errors);
                if c.expect_status.as_deref().is_none_or(|x| parse_status(x) == Ok((0, 0))) {
                    cqs.insert(c.id);
                }
            }
            MetaStep::CreateSq(c) => {
                buffer(&c.buffer, "buffer", &sp, &mut errors);
                status(&c.expect_status, "expect_status", &sp, &mut errors);
                if c.expect_status.as_deref().is_none_or(|x| parse_status(x) == Ok((0, 0))) {
                    sqs.insert(c.id);
                }
            }
            MetaStep::DeleteSq(d) => {
                status(&d.expect_status, "expect_status", &sp, &mut errors);
                sqs.remove(&d.id);
            }
            MetaStep::DeleteCq(d) => {
                status(&d.expect_status, "expect_status", &sp, &mut errors);
                if d.expect_status.as_deref().is_none_or(|x| parse_status(x) == Ok((0, 0))) {
                    cqs.remove(&d.id);
                }
            }
            MetaStep::Sqe(q) => {
                need("SQ", q.sq, &sqs, &mut errors);
                for (t, f) in [(&q.prp1, "prp1"), (&q.prp2, "prp2")] {
                    if let Some(Target::Buffer(n)) = t {
                        buffer(n, f, &sp, &mut errors);
                    }
                }
                if let Some(e) = q.sgl.as_ref().and_then(|d| sgl_error(d, m)) {
                    errors.push(lp.error(&[sp.as_slice(), &[k("sgl")]].concat(), "sgl", e));
                }
            }
            MetaStep::Read(io) | MetaStep::Write(io) => {
                need("SQ", io.sq, &sqs, &mut errors);
                buffer(&io.buffer, "buffer", &sp, &mut errors);
            }
            MetaStep::WaitPbit(w) => {
                need("CQ", w.cq, &cqs, &mut errors);
                dur(&w.timeout, &sp, &mut errors);
            }
            MetaStep::Waitdone(w) => {
                need("CQ", w.cq, &cqs, &mut errors);
                dur(&w.timeout, &sp, &mut errors);
            }
            MetaStep::ExpectCqe(e) => {
                need("CQ", e.cq, &cqs, &mut errors);
                status(&e.status, "status", &sp, &mut errors);
            }
            MetaStep::WriteBuffer(b) | MetaStep::ExpectBuffer(b) => {
                buffer(&b.buffer, "buffer", &sp, &mut errors);
                if let Some(o) = &b.same_as {
                    buffer(o, "same_as", &sp, &mut errors);
                }
                let given = [b.text.is_some(), b.bytes.is_some(), b.same_as.is_some()].iter().filter(|x| **x).count();
                let writes = matches!(s, MetaStep::WriteBuffer(_));
                if given != 1 || (writes && b.same_as.is_some()) {
                    let what = if writes { "text or bytes" } else { "text, bytes or same_as" };
                    errors.push(lp.error(&sp, "text", format!("give exactly one of {what}")));
                }
            }
            MetaStep::ExpectAer(a) => dur(&a.timeout, &sp, &mut errors),
            MetaStep::Sleep(d) => {
                if let Err(e) = duration(d) {
                    errors.push(lp.error(&sp, "sleep", e));
                }
            }
            MetaStep::SqTail(_) | MetaStep::CqHead(_) | MetaStep::Aer(_) | MetaStep::Admin(_) => {}
        }
    }
    errors
}

fn unknown(n: &str, m: &MetamodeSpec) -> String {
    let names: Vec<&str> = m.buffers.keys().map(String::as_str).collect();
    if names.is_empty() {
        format!("no buffer `{n}`; declare it under metamode.buffers")
    } else {
        format!("no buffer `{n}`; the buffers are {}", names.join(", "))
    }
}

fn sgl_error(d: &SglSpec, m: &MetamodeSpec) -> Option<String> {
    let name = match d {
        SglSpec::DataBlock(Target::Buffer(n)) => n,
        SglSpec::Segment(n) | SglSpec::LastSegment(n) => {
            return match m.buffers.get(n) {
                None => Some(unknown(n, m)),
                Some(b) if b.sgl.is_none() => Some(format!("buffer `{n}` has no sgl descriptors; a segment must point to one that has")),
                _ => None,
            };
        }
        _ => return None,
    };
    (!m.buffers.contains_key(name)).then(|| unknown(name, m))
}
