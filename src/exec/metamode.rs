//! Runs a phase's `metamode:` steps in order on the controller, through
//! [`crate::metamode`]. A step that fails ends the sequence (later steps build on it) and
//! the rest are reported skipped; every step's outcome, with expected next to actual,
//! goes into the summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Outcome;
use crate::driver::Controller;
use crate::metamode::{IoCq, IoSq, MetaError, Prp, PrpList, SglSegment, aer, delete_cq, delete_sq, ring_cq_head, ring_sq_tail, wait_events};
use crate::nvme::sgl::SglDescriptor;
use crate::nvme::sqe::Psdt;
use crate::nvme::{Cqe, Sqe};
use crate::plan::metamode::{BufferBytes, DEFAULT_WAIT, ExpectCqe, MetaStep, MetamodeSpec, SglSpec, Target};
use crate::plan::units::{duration, parse_status};
use crate::plan::{EventAction, EventRun};

/// One metamode step of a phase run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepSummary {
    /// Place in the list, from 0.
    pub index: usize,
    /// `create_cq`, `sqe`, `expect_cqe`, ...
    pub step: String,
    /// What it did.
    pub detail: String,
    /// Pass, fail, or skipped (an earlier step failed, or the run was interrupted).
    pub outcome: Outcome,
    /// What the step expected, for checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What there was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, milliseconds.
    pub duration_ms: f64,
}

/// What a step did, or why it failed.
struct Done {
    detail: String,
    expected: Option<String>,
    actual: Option<String>,
    error: Option<String>,
}

fn done(detail: String) -> Result<Done, Done> {
    Ok(Done { detail, expected: None, actual: None, error: None })
}

fn fail(detail: String, error: impl Into<String>) -> Done {
    Done { detail, expected: None, actual: None, error: Some(error.into()) }
}

/// Buffers, queues and events of one run of the steps.
struct State<'a> {
    ctrl: &'a Controller,
    bufs: BTreeMap<String, Prp>,
    cqs: BTreeMap<u16, IoCq>,
    sqs: BTreeMap<u16, IoSq>,
    events: Vec<u32>,
}

impl Drop for State<'_> {
    // SQs go before the CQs they complete into (§5.5).
    fn drop(&mut self) {
        self.sqs.clear();
        self.cqs.clear();
    }
}

fn addr(st: &State<'_>, t: &Target) -> u64 {
    match t {
        Target::Address(a) => *a,
        Target::Buffer(n) => st.bufs.get(n).map_or(0, Prp::addr),
    }
}

fn descriptor(st: &State<'_>, spec: &MetamodeSpec, d: &SglSpec) -> SglDescriptor {
    let count = |n: &str| spec.buffers.get(n).and_then(|b| b.sgl.as_ref()).map_or(0, Vec::len) as u32;
    match d {
        SglSpec::DataBlock(Target::Buffer(n)) => st.bufs.get(n).map_or(SglDescriptor::data_block(0, 0), Prp::data_block),
        SglSpec::DataBlock(Target::Address(a)) => SglDescriptor::data_block(*a, 4096),
        SglSpec::BitBucket(len) => SglDescriptor::bit_bucket(*len),
        SglSpec::Segment(n) => SglDescriptor::segment(addr(st, &Target::Buffer(n.clone())), count(n)),
        SglSpec::LastSegment(n) => SglDescriptor::last_segment(addr(st, &Target::Buffer(n.clone())), count(n)),
    }
}

/// Allocates the buffers (patterns, offsets, lengths), then fills PRP lists and SGL
/// segments with the addresses of the others.
fn buffers<'a>(ctrl: &'a Controller, spec: &MetamodeSpec) -> Result<State<'a>, MetaError> {
    let mut st = State { ctrl, bufs: BTreeMap::new(), cqs: BTreeMap::new(), sqs: BTreeMap::new(), events: Vec::new() };
    for (name, b) in &spec.buffers {
        let size = b.size.as_ref().map_or(Ok(4096), |s| s.get()).unwrap_or(4096) as usize;
        let mut p = match b.ptype {
            Some(t) => Prp::with_pattern(ctrl, size, t, b.pvalue.unwrap_or(0))?,
            None => Prp::new(ctrl, size)?,
        };
        let off = b.offset.unwrap_or(0) as usize;
        p.set_offset(off);
        p.set_size(b.length.as_ref().and_then(|l| l.get().ok()).map_or(size.saturating_sub(off), |l| l as usize));
        st.bufs.insert(name.clone(), p);
    }
    for (name, b) in &spec.buffers {
        let p = &st.bufs[name];
        if let Some(list) = &b.prp_list {
            let mut l = PrpList::from_prp(p.clone());
            l.set_offset(p.offset());
            for (i, t) in list.iter().enumerate() {
                l.set(i, addr(&st, t))?;
            }
        }
        if let Some(sgl) = &b.sgl {
            let seg = SglSegment::from_prp(p.clone());
            for (i, d) in sgl.iter().enumerate() {
                seg.set(i, descriptor(&st, spec, d))?;
            }
        }
    }
    Ok(st)
}

/// Runs the steps; `time_scale` shortens `sleep` steps (waits keep their bounds).
pub fn run(ctrl: &Controller, spec: &MetamodeSpec, time_scale: f64, stop: &AtomicBool) -> Vec<StepSummary> {
    let mut out: Vec<StepSummary> = Vec::new();
    let skipped = |i: usize, s: &MetaStep| StepSummary {
        index: i,
        step: s.kind().into(),
        detail: String::new(),
        outcome: Outcome::Skipped,
        expected: None,
        actual: None,
        error: None,
        duration_ms: 0.0,
    };
    let mut st = match buffers(ctrl, spec) {
        Ok(s) => s,
        Err(e) => {
            out.extend(spec.steps.iter().enumerate().map(|(i, s)| StepSummary {
                error: Some(format!("buffers: {e}")),
                outcome: Outcome::Fail,
                ..skipped(i, s)
            }));
            return out;
        }
    };
    let mut failed = false;
    for (i, s) in spec.steps.iter().enumerate() {
        if failed || stop.load(Ordering::Acquire) {
            out.push(skipped(i, s));
            continue;
        }
        let t = Instant::now();
        let r = step(&mut st, spec, s, time_scale, stop);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let (outcome, d) = match r {
            Ok(d) => (Outcome::Pass, d),
            Err(d) => {
                failed = true;
                (Outcome::Fail, d)
            }
        };
        out.push(StepSummary {
            index: i,
            step: s.kind().into(),
            detail: d.detail,
            outcome,
            expected: d.expected,
            actual: d.actual,
            error: d.error,
            duration_ms: ms,
        });
    }
    out
}

fn wait(d: &Option<crate::plan::model::DurationValue>, default: Duration) -> Duration {
    d.as_ref().and_then(|d| duration(d).ok()).unwrap_or(default)
}

/// Compares a completion with the status a creation or deletion step expects.
fn expect_status(detail: String, want: &Option<String>, r: Result<Cqe, MetaError>) -> Result<Done, Done> {
    let (sct, sc) = want.as_deref().and_then(|w| parse_status(w).ok()).unwrap_or((0, 0));
    let want_text = format!("{sct:02x}/{sc:02x}");
    let got = match r {
        Ok(c) => c,
        Err(MetaError::Rejected { cqe, .. }) => cqe,
        Err(e) => return Err(fail(detail, e.to_string())),
    };
    let st = got.status();
    if st.sct() == sct && st.sc() == sc {
        Ok(Done { detail, expected: Some(want_text), actual: Some(st.code_text()), error: None })
    } else {
        Err(Done {
            detail,
            error: Some(format!("expected status {want_text}, got {st} ({got:?})")),
            expected: Some(want_text),
            actual: Some(format!("{got:?}")),
        })
    }
}

fn step(st: &mut State<'_>, spec: &MetamodeSpec, s: &MetaStep, time_scale: f64, stop: &AtomicBool) -> Result<Done, Done> {
    let ctrl = st.ctrl;
    match s {
        MetaStep::CreateCq(c) => {
            let detail = format!("CQ {}, {} entries, memory {}", c.id, c.entries, c.buffer);
            let mem = st.bufs[&c.buffer].clone();
            let r = IoCq::with_interrupts(ctrl, c.id, c.entries, mem, c.iv.unwrap_or(0), c.ien.unwrap_or(false));
            let r = match r {
                Ok(q) => {
                    st.cqs.insert(c.id, q);
                    Ok(Cqe::default())
                }
                Err(e) => Err(e),
            };
            expect_status(detail, &c.expect_status, r)
        }
        MetaStep::CreateSq(c) => {
            let detail = format!("SQ {}, {} entries, memory {}, into CQ {}", c.id, c.entries, c.buffer, c.cq);
            let mem = st.bufs[&c.buffer].clone();
            let sqe = crate::nvme::cmd::create_io_sq(c.id, c.entries, 0, c.cq, c.prio.unwrap_or(0));
            let r = match IoSq::with_sqe(ctrl, c.id, c.entries, mem, c.cq, sqe) {
                Ok(q) => {
                    st.sqs.insert(c.id, q);
                    Ok(Cqe::default())
                }
                Err(e) => Err(e),
            };
            expect_status(detail, &c.expect_status, r)
        }
        MetaStep::DeleteSq(d) => {
            let detail = format!("SQ {}", d.id);
            let r = match st.sqs.remove(&d.id) {
                Some(q) => q.delete(),
                None => delete_sq(ctrl, d.id),
            };
            expect_status(detail, &d.expect_status, r)
        }
        MetaStep::DeleteCq(d) => {
            let detail = format!("CQ {}", d.id);
            let r = match st.cqs.remove(&d.id) {
                Some(q) => q.delete(),
                None => delete_cq(ctrl, d.id),
            };
            expect_status(detail, &d.expect_status, r)
        }
        MetaStep::Sqe(q) => {
            let mut e = Sqe::new(q.opcode, q.nsid.unwrap_or(1));
            e.set_cid(q.cid.unwrap_or(0));
            e.set_fuse(q.fuse.unwrap_or(0));
            if let Some(m) = q.mptr {
                e.set_mptr(m);
            }
            if let Some(t) = &q.prp1 {
                e.set_prp1(addr(st, t));
            }
            if let Some(t) = &q.prp2 {
                e.set_prp2(addr(st, t));
            }
            let mut psdt = q.psdt.unwrap_or(0);
            if let Some(d) = &q.sgl {
                e.set_sgl1(descriptor(st, spec, d));
                psdt = q.psdt.unwrap_or(1);
            }
            e.set_psdt(Psdt::from_bits(psdt));
            for (i, v) in [(2, q.cdw2), (3, q.cdw3), (10, q.cdw10), (11, q.cdw11), (12, q.cdw12), (13, q.cdw13), (14, q.cdw14), (15, q.cdw15)] {
                if let Some(v) = v {
                    e.dw[i] = v;
                }
            }
            let sq = &st.sqs[&q.sq];
            let slot = q.slot.unwrap_or(sq.tail());
            let detail = format!("SQ {} slot {slot}: opcode {:#04x}, cid {}, nsid {}", q.sq, q.opcode, e.cid(), e.nsid());
            match sq.set(slot as usize, &e) {
                Ok(()) => done(detail),
                Err(err) => Err(fail(detail, err.to_string())),
            }
        }
        MetaStep::Read(io) | MetaStep::Write(io) => {
            let sq = &st.sqs[&io.sq];
            let buf = &st.bufs[&io.buffer];
            let (cid, nsid, lba, n) = (io.cid.unwrap_or(0), io.nsid.unwrap_or(1), io.lba.unwrap_or(0), io.lba_count.unwrap_or(1));
            let detail = format!("SQ {} slot {}: {} cid {cid}, nsid {nsid}, LBA {lba} x{n}, buffer {}", io.sq, sq.tail(), s.kind(), io.buffer);
            let r = if matches!(s, MetaStep::Read(_)) { sq.read(cid, nsid, lba, n, buf) } else { sq.write(cid, nsid, lba, n, buf) };
            match r {
                Ok(_) => done(detail),
                Err(err) => Err(fail(detail, err.to_string())),
            }
        }
        MetaStep::SqTail(d) => {
            match st.sqs.get_mut(&d.id) {
                Some(q) => q.set_tail(d.value),
                None => ring_sq_tail(ctrl, d.id, d.value),
            }
            done(format!("SQ {} tail doorbell = {}", d.id, d.value))
        }
        MetaStep::CqHead(d) => {
            match st.cqs.get_mut(&d.id) {
                Some(q) => q.set_head(d.value),
                None => ring_cq_head(ctrl, d.id, d.value),
            }
            done(format!("CQ {} head doorbell = {}", d.id, d.value))
        }
        MetaStep::WaitPbit(w) => {
            let phase = w.phase.unwrap_or(1) != 0;
            let detail = format!("CQ {} slot {} phase {}", w.cq, w.slot, phase as u8);
            match st.cqs.get_mut(&w.cq).map(|q| q.wait_pbit(w.slot as usize, phase, wait(&w.timeout, DEFAULT_WAIT))) {
                None => Err(fail(detail, "no such CQ")),
                Some(Ok(c)) => Ok(Done { detail, expected: None, actual: Some(format!("{c:?}")), error: None }),
                Some(Err(e)) => Err(fail(detail, e.to_string())),
            }
        }
        MetaStep::Waitdone(w) => {
            let n = w.count.unwrap_or(1) as usize;
            let detail = format!("CQ {}: {n} completion(s)", w.cq);
            match st.cqs.get_mut(&w.cq).map(|q| q.waitdone(n, wait(&w.timeout, DEFAULT_WAIT))) {
                Some(Ok(v)) => {
                    let statuses: Vec<String> = v.iter().map(|c| format!("cid {} {}", c.cid(), c.status().code_text())).collect();
                    Ok(Done { detail, expected: None, actual: Some(statuses.join(", ")), error: None })
                }
                Some(Err(e)) => Err(fail(detail, e.to_string())),
                None => Err(fail(detail, "no such CQ")),
            }
        }
        MetaStep::ExpectCqe(e) => expect_cqe(st, e),
        MetaStep::WriteBuffer(b) => {
            let detail = format!("{} at {}", b.buffer, b.at.unwrap_or(0));
            let bytes = b.text.as_ref().map(|t| t.as_bytes().to_vec()).or_else(|| b.bytes.clone()).unwrap_or_default();
            match st.bufs[&b.buffer].write(b.at.unwrap_or(0) as usize, &bytes) {
                Ok(()) => done(format!("{detail}: {} bytes", bytes.len())),
                Err(e) => Err(fail(detail, e.to_string())),
            }
        }
        MetaStep::ExpectBuffer(b) => expect_buffer(st, b),
        MetaStep::Aer(_) => match aer(ctrl) {
            Ok(cid) => done(format!("Asynchronous Event Request, cid {cid}")),
            Err(e) => Err(fail("Asynchronous Event Request".into(), e.to_string())),
        },
        MetaStep::ExpectAer(a) => {
            let detail = format!("event {:#x}", a.value);
            let deadline = Instant::now() + wait(&a.timeout, Duration::from_secs(1));
            loop {
                if let Some(p) = st.events.iter().position(|&v| v == a.value) {
                    st.events.remove(p);
                    return Ok(Done { detail, expected: Some(format!("{:#x}", a.value)), actual: Some(format!("{:#x}", a.value)), error: None });
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    let seen: Vec<String> = st.events.iter().map(|v| format!("{v:#x}")).collect();
                    let actual = if seen.is_empty() { "no event".to_string() } else { seen.join(", ") };
                    return Err(Done {
                        detail,
                        error: Some(format!("expected event {:#x}, got {actual}", a.value)),
                        expected: Some(format!("{:#x}", a.value)),
                        actual: Some(actual),
                    });
                }
                st.events.extend(wait_events(ctrl, 1, left.min(Duration::from_millis(20))));
            }
        }
        MetaStep::Admin(a) => {
            let ev = EventRun { at: Duration::ZERO, name: "admin".into(), action: EventAction::Admin(a.clone()), allow_failure: false, path: Vec::new() };
            let (_, detail) = super::events::describe(&ev);
            let d = super::events::perform(ctrl, &ev);
            st.events.extend(ctrl.take_events());
            let r = Done { detail, expected: None, actual: d.status.clone(), error: d.error.clone() };
            if d.ok { Ok(r) } else { Err(r) }
        }
        MetaStep::Sleep(d) => {
            let t = duration(d).unwrap_or_default().mul_f64(time_scale);
            let end = Instant::now() + t;
            while Instant::now() < end && !stop.load(Ordering::Acquire) {
                std::thread::sleep((end - Instant::now()).min(Duration::from_millis(10)));
            }
            done(format!("{} ms", t.as_millis()))
        }
    }
}

fn expect_cqe(st: &State<'_>, e: &ExpectCqe) -> Result<Done, Done> {
    let detail = format!("CQ {} slot {}", e.cq, e.slot);
    let c = match st.cqs[&e.cq].entry(e.slot as usize) {
        Ok(c) => c,
        Err(err) => return Err(fail(detail, err.to_string())),
    };
    let mut want = Vec::new();
    let mut wrong = Vec::new();
    let mut check = |name: &str, w: String, got: String| {
        if w != got {
            wrong.push(format!("{name} {got}"));
        }
        want.push(format!("{name} {w}"));
    };
    if let Some(s) = &e.status {
        let (sct, sc) = parse_status(s).unwrap_or((0, 0));
        check("status", format!("{sct:02x}/{sc:02x}"), c.status().code_text());
    }
    if let Some(v) = e.cid {
        check("cid", v.to_string(), c.cid().to_string());
    }
    if let Some(v) = e.sqid {
        check("sqid", v.to_string(), c.sqid().to_string());
    }
    if let Some(v) = e.sqhd {
        check("sqhd", v.to_string(), c.sqhd().to_string());
    }
    if let Some(v) = e.phase {
        check("phase", ((v != 0) as u8).to_string(), (c.phase() as u8).to_string());
    }
    if let Some(v) = e.cdw0 {
        check("cdw0", format!("{v:#x}"), format!("{:#x}", c.cdw0()));
    }
    if let Some(v) = e.dnr {
        check("dnr", v.to_string(), c.dnr().to_string());
    }
    if let Some(v) = e.more {
        check("more", v.to_string(), c.more().to_string());
    }
    let expected = Some(want.join(", "));
    let actual = Some(format!("{c:?}"));
    if wrong.is_empty() {
        Ok(Done { detail, expected, actual, error: None })
    } else {
        let error = Some(format!("expected CQE {}; got {} in {c:?}", want.join(", "), wrong.join(", ")));
        Err(Done { detail, expected, actual, error })
    }
}

fn hex(b: &[u8]) -> String {
    let shown: Vec<String> = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
    if b.len() > 32 { format!("{} ... ({} bytes)", shown.join(" "), b.len()) } else { shown.join(" ") }
}

fn expect_buffer(st: &State<'_>, b: &BufferBytes) -> Result<Done, Done> {
    let at = b.at.unwrap_or(0) as usize;
    let buf = &st.bufs[&b.buffer];
    let (want, what) = match (&b.text, &b.bytes, &b.same_as) {
        (Some(t), _, _) => (Ok(t.as_bytes().to_vec()), format!("{t:?}")),
        (_, Some(v), _) => (Ok(v.clone()), hex(v)),
        (_, _, Some(o)) => {
            let len = b.len.map_or(buf.size(), |l| l as usize);
            let from = b.from.map_or(at, |f| f as usize);
            (st.bufs[o].read(from, len), format!("{o}[{from}..{}]", from + len))
        }
        _ => return Err(fail(b.buffer.clone(), "nothing to compare")),
    };
    let detail = format!("{}[{at}..] = {what}", b.buffer);
    let want = match want {
        Ok(w) => w,
        Err(e) => return Err(fail(detail, e.to_string())),
    };
    match buf.read(at, want.len()) {
        Ok(got) if got == want => Ok(Done { detail, expected: Some(hex(&want)), actual: Some(hex(&got)), error: None }),
        Ok(got) => {
            let first = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
            let error = Some(format!("{} differs from byte {} on: expected {}, got {}", b.buffer, at + first, hex(&want[first..]), hex(&got[first..])));
            Err(Done { detail, expected: Some(hex(&want)), actual: Some(hex(&got)), error })
        }
        Err(e) => Err(fail(detail, e.to_string())),
    }
}
