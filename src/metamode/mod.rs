//! Metamode: I/O queues, commands, data pointers and doorbells under the test's own
//! control, as in PyNVMe3's metamode. The test creates queues with the ids, sizes,
//! memory and CQ mapping it chooses, writes whole SQEs into slots, rings doorbells with any
//! value (invalid ones included), and reads CQEs straight from queue memory. Nothing is
//! checked or fixed up on the way: a command the controller rejects comes back with its
//! status, a doorbell value outside the queue is written as it is.
//!
//! ```no_run
//! # use nvplan::metamode::{IoCq, IoSq, Prp};
//! # use nvplan::nvme::Sqe;
//! # fn t(ctrl: &nvplan::driver::Controller) -> Result<(), nvplan::metamode::MetaError> {
//! let mut cq = IoCq::new(ctrl, 1, 10, Prp::new(ctrl, 10 * 16)?)?; // IOCQ(nvme0, 1, 10, PRP(10*16))
//! let mut sq = IoSq::new(ctrl, 1, 10, Prp::new(ctrl, 10 * 64)?, &cq)?; // IOSQ(..., cq=cq)
//! let buf = Prp::new(ctrl, 4096)?;
//! let mut cmd = Sqe::new(2, 1); // SQE(2, 1)
//! cmd.set_cid(0);
//! cmd.set_prp1(buf.addr()); // cmd.prp1 = buf
//! sq.set(0, &cmd)?; // sq[0] = cmd
//! sq.set_tail(1); // sq.tail = 1
//! let head = cq.head() as usize;
//! cq.wait_pbit(head, true, std::time::Duration::from_secs(10))?;
//! cq.set_head(1); // cq.head = 1
//! println!("{}", cq.entry(0)?.status());
//! # Ok(()) }
//! ```
//!
//! Queues are deleted with [`IoSq::delete`] and [`IoCq::delete`]; one dropped without it
//! is deleted then, best effort, so that its id is free again. Memory a command points to
//! must live until the command completes: a buffer dropped early is unmapped, and the
//! controller's transfer fails (the simulator answers with a Data Transfer Error).

use std::time::{Duration, Instant};

use crate::driver::{Controller, DataPtr, DriverError};
use crate::ioworker::verify::fill_pattern;
use crate::nvme::regs::{cq_head_doorbell, sq_tail_doorbell};
use crate::nvme::sgl::{DESCRIPTOR_BYTES, SglDescriptor};
use crate::nvme::{Cqe, Sqe, cmd};
use crate::transport::DmaBuffer;

/// How long admin commands of metamode (create, delete) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// PRP list pages (§4.3): 512 entries of 8 bytes.
pub const PRP_LIST_BYTES: usize = 4096;

/// What can go wrong in metamode.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The driver could not send or complete an admin command, or allocate memory.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The controller completed a queue creation or deletion with an error status.
    #[error("{what}: the controller answered {} ({cqe:?})", cqe.status())]
    Rejected {
        /// The command.
        what: String,
        /// Its completion.
        cqe: Cqe,
    },
    /// No CQE with the expected phase tag arrived in time.
    #[error("CQ {qid}: {what} within {timeout:?}")]
    Timeout {
        /// The completion queue.
        qid: u16,
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
    },
    /// A slot, entry or byte range outside the memory behind an object.
    #[error("{0}")]
    OutOfRange(String),
}

/// A data buffer in DMA memory: PyNVMe's `PRP`/`Buffer`. `addr()` (the IOVA plus
/// `offset`) is what a data pointer presents, so an offset makes an unaligned PRP.
#[derive(Debug, Clone)]
pub struct Prp {
    mem: DmaBuffer,
    offset: usize,
    size: usize,
}

impl Prp {
    /// `size` zeroed bytes, page-aligned.
    pub fn new(ctrl: &Controller, size: usize) -> Result<Prp, MetaError> {
        let mem = ctrl.dma(size.max(1).next_multiple_of(4096))?;
        Ok(Prp { mem, offset: 0, size })
    }

    /// Over memory the caller already holds (a Python `Buffer`, shared host memory): the
    /// data pointer presents `mem`'s IOVA plus `offset`, transfers `size` bytes.
    pub fn from_mem(mem: DmaBuffer, offset: usize, size: usize) -> Prp {
        Prp { mem, offset, size }
    }

    /// `size` bytes filled with a PyNVMe pattern (`ptype` 0, 32, 0xBEEF, 0x1234, 0x4321).
    pub fn with_pattern(ctrl: &Controller, size: usize, ptype: u32, pvalue: u32) -> Result<Prp, MetaError> {
        let p = Prp::new(ctrl, size)?;
        p.fill_pattern(ptype, pvalue);
        Ok(p)
    }

    /// Fills the whole buffer (from its start, offset ignored) with a PyNVMe pattern.
    pub fn fill_pattern(&self, ptype: u32, pvalue: u32) {
        let mut v = vec![0u8; self.mem.len()];
        fill_pattern(ptype, pvalue, 512, &mut v);
        self.mem.write(0, &v);
    }

    /// The IOVA a data pointer presents: the buffer's start plus its offset.
    pub fn addr(&self) -> u64 {
        self.mem.iova() + self.offset as u64
    }
    /// The offset presented in PRP/SGL entries.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Sets the offset (any value, odd ones included).
    pub fn set_offset(&mut self, offset: usize) {
        self.offset = offset;
    }
    /// The size the test means to transfer (for [`Prp::data`] and SGL lengths).
    pub fn size(&self) -> usize {
        self.size
    }
    /// Sets the size.
    pub fn set_size(&mut self, size: usize) {
        self.size = size;
    }
    /// Bytes of memory behind the buffer (whole pages).
    pub fn capacity(&self) -> usize {
        self.mem.len()
    }

    fn range(&self, at: usize, len: usize) -> Result<(), MetaError> {
        if at.checked_add(len).is_none_or(|end| end > self.mem.len()) {
            return Err(MetaError::OutOfRange(format!("bytes {at}..{} of a {}-byte buffer", at.saturating_add(len), self.mem.len())));
        }
        Ok(())
    }

    /// Writes `bytes` at `at` from the buffer's start (`buf[10:21] = b'hello world'`).
    pub fn write(&self, at: usize, bytes: &[u8]) -> Result<(), MetaError> {
        self.range(at, bytes.len())?;
        self.mem.write(at, bytes);
        Ok(())
    }
    /// Reads `len` bytes at `at` from the buffer's start.
    pub fn read(&self, at: usize, len: usize) -> Result<Vec<u8>, MetaError> {
        self.range(at, len)?;
        let mut v = vec![0; len];
        self.mem.read(at, &mut v);
        Ok(v)
    }
    /// The `size` bytes from `offset`: what a transfer through `addr()` reads or writes.
    pub fn data(&self) -> Result<Vec<u8>, MetaError> {
        self.read(self.offset, self.size)
    }
    /// An SGL Data Block descriptor over `size` bytes at `addr()`.
    pub fn data_block(&self) -> SglDescriptor {
        SglDescriptor::data_block(self.addr(), self.size as u32)
    }
    /// The DMA memory.
    pub fn mem(&self) -> &DmaBuffer {
        &self.mem
    }
}

/// A PRP list (§4.3): a page of 8-byte entries at an offset of the test's choosing. The
/// last entry of a list may point to another list to chain them (§4.3, Figure 107).
#[derive(Debug, Clone)]
pub struct PrpList {
    page: Prp,
}

impl PrpList {
    /// An empty list page.
    pub fn new(ctrl: &Controller) -> Result<PrpList, MetaError> {
        Ok(PrpList { page: Prp::new(ctrl, PRP_LIST_BYTES)? })
    }
    /// A list in the memory of `page` (its offset is where the list starts).
    pub fn from_prp(page: Prp) -> PrpList {
        PrpList { page }
    }
    /// The IOVA of the list (page plus offset), for PRP2 or a chaining entry.
    pub fn addr(&self) -> u64 {
        self.page.addr()
    }
    /// Sets where in the page the list starts (the seed's `prp_list.offset = 0x20`).
    pub fn set_offset(&mut self, offset: usize) {
        self.page.set_offset(offset);
    }
    /// Entry `i` (any address, unaligned ones included).
    pub fn set(&self, i: usize, addr: u64) -> Result<(), MetaError> {
        self.page.write(self.page.offset + i * 8, &addr.to_le_bytes())
    }
    /// Entry `i` points to `buf` (`prp_list[i] = PRP()`).
    pub fn set_buffer(&self, i: usize, buf: &Prp) -> Result<(), MetaError> {
        self.set(i, buf.addr())
    }
    /// Entry `i` points to the next list of a chain.
    pub fn chain(&self, i: usize, next: &PrpList) -> Result<(), MetaError> {
        self.set(i, next.addr())
    }
    /// Entry `i` as written.
    pub fn get(&self, i: usize) -> Result<u64, MetaError> {
        let b = self.page.read(self.page.offset + i * 8, 8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
}

/// An SGL segment (§4.4): descriptors in DMA memory, pointed to by a Segment or Last
/// Segment descriptor.
#[derive(Debug, Clone)]
pub struct SglSegment {
    mem: Prp,
}

impl SglSegment {
    /// Room for `descriptors` descriptors.
    pub fn new(ctrl: &Controller, descriptors: usize) -> Result<SglSegment, MetaError> {
        Ok(SglSegment { mem: Prp::new(ctrl, descriptors * DESCRIPTOR_BYTES)? })
    }
    /// A segment in the memory of `mem` (from its start).
    pub fn from_prp(mem: Prp) -> SglSegment {
        SglSegment { mem }
    }
    /// Descriptor `i`.
    pub fn set(&self, i: usize, d: SglDescriptor) -> Result<(), MetaError> {
        let mut b = [0u8; DESCRIPTOR_BYTES];
        for (k, dw) in d.to_dwords().iter().enumerate() {
            b[k * 4..k * 4 + 4].copy_from_slice(&dw.to_le_bytes());
        }
        self.mem.write(i * DESCRIPTOR_BYTES, &b)
    }
    /// A Segment descriptor for the first `count` descriptors (the last may chain on).
    pub fn segment(&self, count: usize) -> SglDescriptor {
        SglDescriptor::segment(self.mem.addr(), count as u32)
    }
    /// A Last Segment descriptor for the first `count` descriptors.
    pub fn last_segment(&self, count: usize) -> SglDescriptor {
        SglDescriptor::last_segment(self.mem.addr(), count as u32)
    }
}

/// Sends a metamode admin command (create or delete): its completion, or the error.
fn admin(ctrl: &Controller, what: &str, sqe: &Sqe) -> Result<Cqe, MetaError> {
    let cqe = ctrl.admin_raw(sqe, DataPtr::None, ADMIN_TIMEOUT)?;
    if cqe.status().is_success() { Ok(cqe) } else { Err(MetaError::Rejected { what: what.into(), cqe }) }
}

/// Doorbell offsets follow CAP.DSTRD (§3.1.24), so they are right on any controller.
fn doorbell(ctrl: &Controller, qid: u16, cq: bool) -> usize {
    let d = ctrl.cap().dstrd();
    if cq { cq_head_doorbell(qid, d) } else { sq_tail_doorbell(qid, d) }
}

/// A queue the controller holds for the test: its id, kept from the driver's queue pairs,
/// and the command that deletes it (sent on drop when the test did not).
#[derive(Debug)]
struct Held {
    ctrl: Controller,
    qid: u16,
    reserved: bool,
    live: bool,
    what: &'static str,
    delete: fn(u16) -> Sqe,
}

impl Held {
    /// The queue `qid` as the controller created it (`reserved`: its id was taken here).
    fn new(ctrl: &Controller, qid: u16, reserved: bool, what: &'static str, delete: fn(u16) -> Sqe) -> Held {
        Held { ctrl: ctrl.clone(), qid, reserved, live: true, what, delete }
    }

    /// Deletes the queue; the controller's answer, error status included.
    fn delete(&mut self) -> Result<Cqe, MetaError> {
        self.live = false;
        let r = admin(&self.ctrl, self.what, &(self.delete)(self.qid));
        self.release();
        r
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.reserved) {
            self.ctrl.free_qid(self.qid);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.live && self.ctrl.is_ready() {
            let _ = self.ctrl.admin_raw(&(self.delete)(self.qid), DataPtr::None, ADMIN_TIMEOUT);
        }
        self.release();
    }
}

/// Takes `qid` and sends the creation command; on an error status the id is given back.
fn create(ctrl: &Controller, qid: u16, what: &str, sqe: &Sqe) -> Result<bool, MetaError> {
    let reserved = ctrl.reserve_qid(qid);
    match admin(ctrl, what, sqe) {
        Ok(_) => Ok(reserved),
        Err(e) => {
            if reserved {
                ctrl.free_qid(qid);
            }
            Err(e)
        }
    }
}

/// An I/O completion queue created by the test (Create I/O Completion Queue, §5.3).
#[derive(Debug)]
pub struct IoCq {
    entries: u32,
    mem: Prp,
    /// The queue's pages when it is not physically contiguous (`mem` is then the list).
    pages: Vec<Prp>,
    head: u32,
    // The next slot `waitdone` looks at and the phase it expects there.
    reap: (usize, bool),
    held: Held,
}

impl IoCq {
    /// `IOCQ(nvme0, qid, entries, prp1)`: physically contiguous, no interrupts.
    pub fn new(ctrl: &Controller, qid: u16, entries: u32, mem: Prp) -> Result<IoCq, MetaError> {
        IoCq::with_sqe(ctrl, qid, entries, mem, cmd::create_io_cq(qid, entries, 0, 0, false))
    }

    /// With the interrupt vector and enable bit of the test's choosing.
    pub fn with_interrupts(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, iv: u16, ien: bool) -> Result<IoCq, MetaError> {
        IoCq::with_sqe(ctrl, qid, entries, mem, cmd::create_io_cq(qid, entries, 0, iv, ien))
    }

    /// `IOCQ(nvme0, qid, qsize, prp1, pc, iv, ien)` with every field of the command the
    /// test's: `pc` false asks for a queue that is not physically contiguous (`mem` is
    /// then a PRP list, §5.3, and entries are read from `mem` itself: see [`IoCq::with_pages`]);
    /// a controller with CAP.CQR set refuses it (Invalid Field).
    pub fn create(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, pc: bool, iv: u16, ien: bool) -> Result<IoCq, MetaError> {
        let mut sqe = cmd::create_io_cq(qid, entries, 0, iv, ien);
        sqe.dw[11] = (sqe.dw[11] & !1) | pc as u32;
        IoCq::with_sqe(ctrl, qid, entries, mem, sqe)
    }

    /// From a Create I/O CQ command the test shaped itself (PRP1 is set to `mem.addr()`).
    pub fn with_sqe(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, mut sqe: Sqe) -> Result<IoCq, MetaError> {
        sqe.set_prp1(mem.addr());
        let reserved = create(ctrl, qid, "Create I/O Completion Queue", &sqe)?;
        let held = Held::new(ctrl, qid, reserved, "Delete I/O Completion Queue", cmd::delete_io_cq);
        Ok(IoCq { entries, mem, pages: Vec::new(), head: 0, reap: (0, true), held })
    }

    /// A queue that is not physically contiguous (PC = 0, §5.3): `list` (PRP1) names
    /// `pages` in order, 4 KiB of entries each (the last one maybe in part); `cq[i]` reads
    /// slot `i` from the page it falls in.
    pub fn with_pages(ctrl: &Controller, qid: u16, entries: u32, list: &PrpList, pages: Vec<Prp>, iv: u16, ien: bool) -> Result<IoCq, MetaError> {
        let mut cq = IoCq::create(ctrl, qid, entries, list.page.clone(), false, iv, ien)?;
        cq.pages = pages;
        Ok(cq)
    }

    /// Queue id.
    pub fn id(&self) -> u16 {
        self.held.qid
    }
    /// Entries the queue was created with.
    pub fn entries(&self) -> u32 {
        self.entries
    }
    /// Its memory.
    pub fn mem(&self) -> &Prp {
        &self.mem
    }

    /// CQE `slot` as it is in queue memory now (`cq[i]`).
    pub fn entry(&self, slot: usize) -> Result<Cqe, MetaError> {
        let (p, at) = locate(&self.mem, &self.pages, slot, 16)?;
        let m = &p.mem;
        // Dword 3 (phase tag) first, with acquire: the rest of the entry is read after it.
        let dw3 = m.load_u32_acquire(at + 12);
        Ok(Cqe { dw: [m.read_u32(at), m.read_u32(at + 4), m.read_u32(at + 8), dw3] })
    }

    /// The head doorbell value last written.
    pub fn head(&self) -> u32 {
        self.head
    }
    /// Writes the head doorbell (`cq.head = v`), any value.
    pub fn set_head(&mut self, v: u32) {
        self.head = v;
        ring_cq_head(&self.held.ctrl, self.held.qid, v);
    }

    /// Waits until the phase tag of CQE `slot` reads `phase`; returns the CQE. The next
    /// `waitdone` starts after this slot.
    pub fn wait_pbit(&mut self, slot: usize, phase: bool, timeout: Duration) -> Result<Cqe, MetaError> {
        let e = self.poll_pbit(slot, phase, timeout)?;
        self.reap = self.after(slot, phase);
        Ok(e)
    }

    /// The slot after `slot` and the phase tag expected there (it inverts on every pass
    /// through the queue, §4.6).
    fn after(&self, slot: usize, phase: bool) -> (usize, bool) {
        if slot + 1 >= self.entries as usize { (0, !phase) } else { (slot + 1, phase) }
    }

    fn poll_pbit(&self, slot: usize, phase: bool, timeout: Duration) -> Result<Cqe, MetaError> {
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let e = self.entry(slot)?;
            if e.phase() == phase {
                return Ok(e);
            }
            if Instant::now() >= deadline {
                return Err(MetaError::Timeout { qid: self.held.qid, what: format!("no phase tag {} in slot {slot}", phase as u8), timeout });
            }
            spins += 1;
            if spins > 1000 {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Waits for the next `n` completions, following slots and phase tags from the last
    /// one seen by `waitdone` or `wait_pbit` (slot 0, phase 1 at first), and returns them.
    /// It does not write the head doorbell: that stays the test's (`cq.head = ...`).
    pub fn waitdone(&mut self, n: usize, timeout: Duration) -> Result<Vec<Cqe>, MetaError> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (slot, phase) = self.reap;
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self.poll_pbit(slot, phase, left).map_err(|_| MetaError::Timeout {
                qid: self.held.qid,
                what: format!("{} of {n} completions (waiting at slot {slot} for phase {})", out.len(), phase as u8),
                timeout,
            })?;
            out.push(e);
            self.reap = self.after(slot, phase);
        }
        Ok(out)
    }

    /// Delete I/O Completion Queue (§5.5); the controller's answer, error status included.
    pub fn delete(mut self) -> Result<Cqe, MetaError> {
        self.held.delete()
    }
}

/// An I/O submission queue created by the test (Create I/O Submission Queue, §5.4).
#[derive(Debug)]
pub struct IoSq {
    entries: u32,
    cqid: u16,
    mem: Prp,
    /// The queue's pages when it is not physically contiguous (`mem` is then the list).
    pages: Vec<Prp>,
    tail: u32,
    held: Held,
}

impl IoSq {
    /// `IOSQ(nvme0, qid, entries, prp1, cq=cq)`: physically contiguous, urgent priority.
    pub fn new(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, cq: &IoCq) -> Result<IoSq, MetaError> {
        IoSq::to_cq(ctrl, qid, entries, mem, cq.id())
    }

    /// Completing into the CQ with id `cqid`, whichever it is (an id of no queue too).
    pub fn to_cq(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, cqid: u16) -> Result<IoSq, MetaError> {
        IoSq::with_sqe(ctrl, qid, entries, mem, cqid, cmd::create_io_sq(qid, entries, 0, cqid, 0))
    }

    /// `IOSQ(nvme0, qid, qsize, prp1, cqid, pc, qprio, nvmsetid)`: every field of Create
    /// I/O Submission Queue the test's (`pc` false: `mem` is a PRP list, §5.4; QPRIO in
    /// CDW11 bits 2:1, NVM Set Identifier in CDW12 bits 15:0).
    #[allow(clippy::too_many_arguments)]
    pub fn create(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, cqid: u16, pc: bool, qprio: u8, nvmsetid: u16) -> Result<IoSq, MetaError> {
        let mut sqe = cmd::create_io_sq(qid, entries, 0, cqid, qprio);
        sqe.dw[11] = (sqe.dw[11] & !1) | pc as u32;
        sqe.dw[12] = nvmsetid as u32;
        IoSq::with_sqe(ctrl, qid, entries, mem, cqid, sqe)
    }

    /// From a Create I/O SQ command the test shaped itself (PRP1 is set to `mem.addr()`).
    pub fn with_sqe(ctrl: &Controller, qid: u16, entries: u32, mem: Prp, cqid: u16, mut sqe: Sqe) -> Result<IoSq, MetaError> {
        sqe.set_prp1(mem.addr());
        let reserved = create(ctrl, qid, "Create I/O Submission Queue", &sqe)?;
        let held = Held::new(ctrl, qid, reserved, "Delete I/O Submission Queue", cmd::delete_io_sq);
        Ok(IoSq { entries, cqid, mem, pages: Vec::new(), tail: 0, held })
    }

    /// A queue that is not physically contiguous (PC = 0, §5.4): `list` (PRP1) names
    /// `pages` in order, 4 KiB of entries each; `sq[i]` writes slot `i` into its page.
    pub fn with_pages(ctrl: &Controller, qid: u16, entries: u32, list: &PrpList, pages: Vec<Prp>, cqid: u16, qprio: u8) -> Result<IoSq, MetaError> {
        let mut sq = IoSq::create(ctrl, qid, entries, list.page.clone(), cqid, false, qprio, 0)?;
        sq.pages = pages;
        Ok(sq)
    }

    /// Queue id.
    pub fn id(&self) -> u16 {
        self.held.qid
    }
    /// The CQ it completes into.
    pub fn cqid(&self) -> u16 {
        self.cqid
    }
    /// Entries the queue was created with.
    pub fn entries(&self) -> u32 {
        self.entries
    }

    /// Writes `sqe` into `slot` (`sq[i] = cmd`), as it is.
    pub fn set(&self, slot: usize, sqe: &Sqe) -> Result<(), MetaError> {
        let (p, at) = locate(&self.mem, &self.pages, slot, 64)?;
        p.mem.write_obj(at, sqe);
        Ok(())
    }
    /// The SQE in `slot`.
    pub fn entry(&self, slot: usize) -> Result<Sqe, MetaError> {
        let (p, at) = locate(&self.mem, &self.pages, slot, 64)?;
        Ok(p.mem.read_obj(at))
    }

    /// The tail doorbell value last written.
    pub fn tail(&self) -> u32 {
        self.tail
    }
    /// Writes the tail doorbell (`sq.tail = v`), any value.
    pub fn set_tail(&mut self, v: u32) {
        self.tail = v;
        ring_sq_tail(&self.held.ctrl, self.held.qid, v);
    }

    /// Places `sqe` in the slot the tail doorbell points at (the next command the
    /// controller will fetch), without ringing; returns it.
    pub fn send(&self, sqe: Sqe) -> Result<Sqe, MetaError> {
        self.set(self.tail as usize, &sqe)?;
        Ok(sqe)
    }
    /// `sq.read(cid, nsid, lba, lba_count, prp1)`: a Read of `count` LBAs into `buf`
    /// (PRP1 only), placed at the tail slot.
    pub fn read(&self, cid: u16, nsid: u32, lba: u64, count: u32, buf: &Prp) -> Result<Sqe, MetaError> {
        self.send(with(cmd::read(nsid, lba, count), cid, buf))
    }
    /// `sq.write(cid, nsid, lba, lba_count, prp1)`: a Write of `count` LBAs from `buf`.
    pub fn write(&self, cid: u16, nsid: u32, lba: u64, count: u32, buf: &Prp) -> Result<Sqe, MetaError> {
        self.send(with(cmd::write(nsid, lba, count), cid, buf))
    }
    /// A Read or Write (`write`) of `count` LBAs with PRP1 and PRP2 as given (any
    /// addresses: a PRP list for PRP2, unaligned ones), placed at the tail slot without
    /// ringing: PyNVMe3's `sq.read/write(cid, nsid, lba, lba_count, prp1=, prp2=)`.
    #[allow(clippy::too_many_arguments)]
    pub fn rw_prps(&self, write: bool, cid: u16, nsid: u32, lba: u64, count: u32, prp1: u64, prp2: u64) -> Result<Sqe, MetaError> {
        let mut s = if write { cmd::write(nsid, lba, count) } else { cmd::read(nsid, lba, count) };
        s.set_cid(cid);
        s.set_prp1(prp1);
        s.set_prp2(prp2);
        self.send(s)
    }
    /// `sq.flush(cid, nsid)`.
    pub fn flush(&self, cid: u16, nsid: u32) -> Result<Sqe, MetaError> {
        let mut s = cmd::flush(nsid);
        s.set_cid(cid);
        self.send(s)
    }

    /// Delete I/O Submission Queue (§5.6); the controller's answer, error status included.
    pub fn delete(mut self) -> Result<Cqe, MetaError> {
        self.held.delete()
    }
}

/// The buffer and byte offset of queue entry `slot` of `size` bytes: in `mem` from its
/// offset, or in `pages` (4 KiB of entries each, from each page's offset) when not empty.
fn locate<'a>(mem: &'a Prp, pages: &'a [Prp], slot: usize, size: usize) -> Result<(&'a Prp, usize), MetaError> {
    let off = slot * size;
    let (p, at) = if pages.is_empty() {
        (mem, mem.offset + off)
    } else {
        let p = pages.get(off / PRP_LIST_BYTES).ok_or_else(|| MetaError::OutOfRange(format!("slot {slot}: beyond the {} pages of the queue", pages.len())))?;
        (p, p.offset + off % PRP_LIST_BYTES)
    };
    p.range(at, size)?;
    Ok((p, at))
}

fn with(mut s: Sqe, cid: u16, buf: &Prp) -> Sqe {
    s.set_cid(cid);
    s.set_prp1(buf.addr());
    s
}

/// Writes the tail doorbell of SQ `qid`, whether or not such a queue exists (for the
/// Invalid Doorbell Register event, §5.2).
pub fn ring_sq_tail(ctrl: &Controller, qid: u16, value: u32) {
    ctrl.transport().write32(doorbell(ctrl, qid, false), value);
}

/// Writes the head doorbell of CQ `qid`, whether or not such a queue exists.
pub fn ring_cq_head(ctrl: &Controller, qid: u16, value: u32) {
    ctrl.transport().write32(doorbell(ctrl, qid, true), value);
}

/// Deletes SQ `qid` by id, whether or not this process created it; the controller's
/// answer.
pub fn delete_sq(ctrl: &Controller, qid: u16) -> Result<Cqe, MetaError> {
    admin(ctrl, "Delete I/O Submission Queue", &cmd::delete_io_sq(qid))
}

/// Deletes CQ `qid` by id; the controller's answer.
pub fn delete_cq(ctrl: &Controller, qid: u16) -> Result<Cqe, MetaError> {
    admin(ctrl, "Delete I/O Completion Queue", &cmd::delete_io_cq(qid))
}

/// Sends an Asynchronous Event Request (`nvme0.aer()`); its CID.
pub fn aer(ctrl: &Controller) -> Result<u16, MetaError> {
    Ok(ctrl.submit_aer()?)
}

/// Waits up to `timeout` for `n` asynchronous events (dword 0 of their completions:
/// type, information, log page, §5.2).
pub fn wait_events(ctrl: &Controller, n: usize, timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        ctrl.poll_admin();
        got.extend(ctrl.take_events());
        if got.len() >= n || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
