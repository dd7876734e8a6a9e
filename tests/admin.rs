//! Admin commands of NVMe 1.4 against the simulated controller, through the driver:
//! queue creation and deletion (§5.3-§5.6), asynchronous events (§5.2), features (§5.21),
//! log pages (§5.14), Identify (§5.15), Format NVM (§5.23), Sanitize (§5.24) and Abort
//! (§5.1). Every expectation is an exact status code, dword or byte.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, rig, rig_with};
use nvplan::driver::{Controller, ControllerOptions, CplKind, DataPtr, QPair, QpairOptions};
use nvplan::nvme::features::{Arbitration, NumberOfQueues, Select, fid};
use nvplan::nvme::identify::cns;
use nvplan::nvme::log::{ErrorLogEntry, async_event, lid};
use nvplan::nvme::regs::{cq_head_doorbell, sq_tail_doorbell};
use nvplan::nvme::sqe::Psdt;
use nvplan::nvme::{Cqe, Sqe, Status, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig};
use nvplan::transport::DmaBuffer;

/// Bound on waiting for a single admin command.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to watch for an event that must not come.
const QUIET: Duration = Duration::from_millis(50);

/// Asynchronous event dword 0 values (Figure 146: type 2:0, information 15:8, log 23:16).
const EVENT_INVALID_DOORBELL_REGISTER: u32 = 0x0001_0000;
const EVENT_INVALID_DOORBELL_VALUE: u32 = 0x0001_0100;
const EVENT_SMART_TEMPERATURE: u32 = 0x0002_0101;

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], ..Default::default() }
}

fn three_namespaces() -> SimConfig {
    SimConfig {
        namespaces: vec![NamespaceConfig::memory(16 << 20, 512), NamespaceConfig::memory(32 << 20, 4096), NamespaceConfig::memory(8 << 20, 512)],
        ..Default::default()
    }
}

/// Runs an admin command without data and returns its completion, whatever the status.
fn raw(ctrl: &Controller, sqe: &Sqe) -> Cqe {
    ctrl.admin_raw(sqe, DataPtr::None, ADMIN_TIMEOUT).expect("the controller completes the command")
}

/// Runs an admin command with a data buffer and returns its completion.
fn raw_data(ctrl: &Controller, sqe: &Sqe, buf: &DmaBuffer) -> Cqe {
    ctrl.admin_raw(sqe, DataPtr::Prp(buf), ADMIN_TIMEOUT).expect("the controller completes the command")
}

/// Asserts the exact status code and the DNR bit of a completion.
#[track_caller]
fn assert_status(cqe: &Cqe, want: Status, dnr: bool) {
    let st = cqe.status();
    assert_eq!(st.code(), want.code(), "status {st}, expected {want}");
    assert_eq!(st.dnr(), dnr, "DNR of {st}");
}

#[track_caller]
fn assert_ok(cqe: &Cqe) {
    assert_status(cqe, Status::SUCCESS, false);
}

/// An I/O queue pair created with raw admin commands, unknown to the driver.
struct RawPair {
    qid: u16,
    entries: u32,
    sq: DmaBuffer,
    cq: DmaBuffer,
}

fn create_raw_pair(ctrl: &Controller, qid: u16, entries: u32) -> RawPair {
    let sq = ctrl.dma((entries as usize * 64).next_multiple_of(4096)).unwrap();
    let cq = ctrl.dma((entries as usize * 16).next_multiple_of(4096)).unwrap();
    assert_ok(&raw(ctrl, &cmd::create_io_cq(qid, entries, cq.iova(), 0, false)));
    assert_ok(&raw(ctrl, &cmd::create_io_sq(qid, entries, sq.iova(), qid, 0)));
    RawPair { qid, entries, sq, cq }
}

/// Polls a raw completion queue slot until its phase tag reads `phase`.
fn wait_raw_cqe(cq: &DmaBuffer, slot: usize, phase: bool) -> Cqe {
    let deadline = Instant::now() + ADMIN_TIMEOUT;
    loop {
        let dw3 = cq.load_u32_acquire(slot * 16 + 12);
        if (dw3 & 1 << 16 != 0) == phase {
            return Cqe { dw: [cq.read_u32(slot * 16), cq.read_u32(slot * 16 + 4), cq.read_u32(slot * 16 + 8), dw3] };
        }
        assert!(Instant::now() < deadline, "no completion in raw CQ slot {slot}");
        std::thread::sleep(Duration::from_micros(100));
    }
}

fn db(ctrl: &Controller, qid: u16) -> usize {
    sq_tail_doorbell(qid, ctrl.cap().dstrd())
}

fn cq_db(ctrl: &Controller, qid: u16) -> usize {
    cq_head_doorbell(qid, ctrl.cap().dstrd())
}

/// Reaps admin completions until `n` asynchronous events arrived (or a bound passed).
fn wait_events(ctrl: &Controller, n: usize) -> Vec<u32> {
    nvplan::metamode::wait_events(ctrl, n, Duration::from_millis(500))
}

/// Reaps admin completions for a while and returns every event that arrived.
fn events_within(ctrl: &Controller, d: Duration) -> Vec<u32> {
    let deadline = Instant::now() + d;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        ctrl.poll_admin();
        got.extend(ctrl.take_events());
        std::thread::sleep(Duration::from_micros(200));
    }
    got
}

fn write_lbas(q: &mut QPair, nsid: u32, lba: u64, data: &[u8], lba_size: usize) {
    let buf = q.controller().dma(data.len()).unwrap();
    buf.write(0, data);
    q.execute_ok(&cmd::write(nsid, lba, (data.len() / lba_size) as u32), DataPtr::Prp(&buf)).unwrap();
}

fn read_lbas(q: &mut QPair, nsid: u32, lba: u64, nlb: usize, lba_size: usize) -> Vec<u8> {
    let buf = q.controller().dma(nlb * lba_size).unwrap();
    buf.fill(0, buf.len(), 0xA5);
    q.execute_ok(&cmd::read(nsid, lba, nlb as u32), DataPtr::Prp(&buf)).unwrap();
    buf.to_vec()
}

// ---------------------------------------------------------------------------------------
// Queue creation and deletion (§5.3, §5.4, §5.5, §5.6)
// ---------------------------------------------------------------------------------------

#[test]
fn create_cq_with_qid_zero_or_above_max_or_existing_is_invalid_queue_identifier() {
    let r = rig(cfg());
    let c = &r.ctrl;
    assert_eq!(c.info().io_queues, NumberOfQueues { sq: 64, cq: 64 });
    let mem = c.dma(4096).unwrap();
    // The admin queue's identifier.
    assert_status(&raw(c, &cmd::create_io_cq(0, 16, mem.iova(), 0, false)), Status::INVALID_QUEUE_ID, true);
    // Above the 64 queues allocated.
    assert_status(&raw(c, &cmd::create_io_cq(65, 16, mem.iova(), 0, false)), Status::INVALID_QUEUE_ID, true);
    assert_status(&raw(c, &cmd::create_io_cq(0xffff, 16, mem.iova(), 0, false)), Status::INVALID_QUEUE_ID, true);
    // The highest allocated identifier is valid, once.
    assert_ok(&raw(c, &cmd::create_io_cq(64, 16, mem.iova(), 0, false)));
    let other = c.dma(4096).unwrap();
    assert_status(&raw(c, &cmd::create_io_cq(64, 16, other.iova(), 0, false)), Status::INVALID_QUEUE_ID, true);
}

#[test]
fn create_queues_above_the_allocated_count_is_invalid_queue_identifier() {
    // Ask for 8 queue pairs: identifiers above what the controller allocated are invalid
    // (the simulator grants the 8 asked for of its 64; a controller may grant more, §5.21.1.7).
    let r = rig_with(cfg(), ControllerOptions { io_queues: 8, ..Default::default() });
    let c = &r.ctrl;
    let granted = NumberOfQueues::from_dword(c.get_features(fid::NUMBER_OF_QUEUES, 0).unwrap());
    assert_eq!(c.info().io_queues, granted);
    if r.is_sim() {
        assert_eq!(granted, NumberOfQueues { sq: 8, cq: 8 });
    }
    let n = u16::try_from(granted.sq.min(granted.cq)).expect("a queue identifier above the allocated ones exists");
    let cq = c.dma(4096).unwrap();
    let sq = c.dma(4096).unwrap();
    assert_status(&raw(c, &cmd::create_io_cq(n + 1, 16, cq.iova(), 0, false)), Status::INVALID_QUEUE_ID, true);
    assert_ok(&raw(c, &cmd::create_io_cq(n, 16, cq.iova(), 0, false)));
    assert_status(&raw(c, &cmd::create_io_sq(n + 1, 16, sq.iova(), n, 0)), Status::INVALID_QUEUE_ID, true);
    assert_ok(&raw(c, &cmd::create_io_sq(n, 16, sq.iova(), n, 0)));
}

#[test]
fn create_cq_with_size_one_or_above_mqes_is_invalid_queue_size() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let max = c.cap().max_queue_entries();
    if r.is_sim() {
        assert_eq!(max, 4096);
    }
    let mem = c.dma(max as usize * 16 + 4096).unwrap();
    // QSIZE 0 (one entry): a queue needs at least two.
    assert_status(&raw(c, &cmd::create_io_cq(40, 1, mem.iova(), 0, false)), Status::INVALID_QUEUE_SIZE, true);
    // CAP.MQES + 2 entries, and QSIZE FFFFh.
    assert_status(&raw(c, &cmd::create_io_cq(40, max + 1, mem.iova(), 0, false)), Status::INVALID_QUEUE_SIZE, true);
    assert_status(&raw(c, &cmd::create_io_cq(40, 65536, mem.iova(), 0, false)), Status::INVALID_QUEUE_SIZE, true);
    // The limits themselves are valid.
    assert_ok(&raw(c, &cmd::create_io_cq(40, max, mem.iova(), 0, false)));
    let small = c.dma(4096).unwrap();
    assert_ok(&raw(c, &cmd::create_io_cq(41, 2, small.iova(), 0, false)));
}

#[test]
fn create_cq_with_unaligned_prp1_is_prp_offset_invalid() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let mem = c.dma(8192).unwrap();
    for off in [4u64, 0x200, 0xffc] {
        assert_status(&raw(c, &cmd::create_io_cq(40, 16, mem.iova() + off, 0, false)), Status::INVALID_PRP_OFFSET, true);
    }
    assert_ok(&raw(c, &cmd::create_io_cq(40, 16, mem.iova() + 4096, 0, false)));
}

#[test]
fn create_cq_with_interrupt_vector_beyond_the_table_is_invalid_interrupt_vector() {
    let r = rig(cfg());
    let c = &r.ctrl;
    assert_eq!(r.sim().config().interrupt_vectors, 65);
    let mem = c.dma(4096).unwrap();
    // MSI-X off: only vector 0 (pin-based interrupts).
    assert_status(&raw(c, &cmd::create_io_cq(40, 16, mem.iova(), 1, true)), Status::INVALID_INTERRUPT_VECTOR, true);
    nvplan::driver::Msix::find(c.transport()).unwrap().unwrap().enable().unwrap();
    for iv in [65u16, 66, 0xffff] {
        assert_status(&raw(c, &cmd::create_io_cq(40, 16, mem.iova(), iv, true)), Status::INVALID_INTERRUPT_VECTOR, true);
    }
    // Vector 64 is the last of the 65 in the table.
    assert_ok(&raw(c, &cmd::create_io_cq(40, 16, mem.iova(), 64, true)));
}

#[test]
fn create_queues_not_physically_contiguous_take_a_prp_list() {
    // CAP.CQR = 0: PC = 0 gives in PRP1 a PRP list of the queue's pages (§5.3, §5.4);
    // an entry with an offset is PRP Offset Invalid.
    let r = rig(cfg());
    let c = &r.ctrl;
    assert!(!c.cap().cqr());
    let list = c.dma(4096).unwrap();
    let page = c.dma(4096).unwrap();
    list.write_u64(0, page.iova() + 0x10);
    let mut s = cmd::create_io_cq(40, 16, list.iova(), 0, false);
    s.dw[11] &= !1;
    assert_status(&raw(c, &s), Status::INVALID_PRP_OFFSET, true);
    list.write_u64(0, page.iova());
    assert_ok(&raw(c, &s));
    let sql = c.dma(4096).unwrap();
    let sqp = c.dma(4096).unwrap();
    sql.write_u64(0, sqp.iova());
    let mut s = cmd::create_io_sq(40, 16, sql.iova(), 40, 0);
    s.dw[11] &= !1;
    assert_ok(&raw(c, &s));
}

#[test]
fn create_sq_on_missing_cq_is_completion_queue_invalid() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let sq = c.dma(4096).unwrap();
    // CQID 0 is the admin completion queue: I/O SQs may not use it.
    assert_status(&raw(c, &cmd::create_io_sq(40, 16, sq.iova(), 0, 0)), Status::CQ_INVALID, true);
    // A CQ that was never created.
    assert_status(&raw(c, &cmd::create_io_sq(40, 16, sq.iova(), 41, 0)), Status::CQ_INVALID, true);
    // A CQ that was created and deleted again.
    let cq = c.dma(4096).unwrap();
    assert_ok(&raw(c, &cmd::create_io_cq(42, 16, cq.iova(), 0, false)));
    assert_ok(&raw(c, &cmd::delete_io_cq(42)));
    assert_status(&raw(c, &cmd::create_io_sq(40, 16, sq.iova(), 42, 0)), Status::CQ_INVALID, true);
}

#[test]
fn create_sq_with_bad_qid_size_or_prp_offset_is_rejected_like_a_cq() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let max = c.cap().max_queue_entries();
    let cq = c.dma(4096).unwrap();
    let sq = c.dma(max as usize * 64 + 4096).unwrap();
    assert_ok(&raw(c, &cmd::create_io_cq(40, 16, cq.iova(), 0, false)));
    assert_status(&raw(c, &cmd::create_io_sq(0, 16, sq.iova(), 40, 0)), Status::INVALID_QUEUE_ID, true);
    assert_status(&raw(c, &cmd::create_io_sq(65, 16, sq.iova(), 40, 0)), Status::INVALID_QUEUE_ID, true);
    assert_status(&raw(c, &cmd::create_io_sq(41, 1, sq.iova(), 40, 0)), Status::INVALID_QUEUE_SIZE, true);
    assert_status(&raw(c, &cmd::create_io_sq(41, max + 1, sq.iova(), 40, 0)), Status::INVALID_QUEUE_SIZE, true);
    assert_status(&raw(c, &cmd::create_io_sq(41, 16, sq.iova() + 0x40, 40, 0)), Status::INVALID_PRP_OFFSET, true);
    assert_ok(&raw(c, &cmd::create_io_sq(41, max, sq.iova(), 40, 0)));
    let other = c.dma(4096).unwrap();
    assert_status(&raw(c, &cmd::create_io_sq(41, 16, other.iova(), 40, 0)), Status::INVALID_QUEUE_ID, true);
}

#[test]
fn created_queues_carry_commands_and_deleted_qids_can_be_created_again() {
    let r = rig(cfg());
    let c = &r.ctrl;
    // Two SQs completing into one CQ, the other pair on its own.
    let p = create_raw_pair(c, 40, 16);
    let sq2 = c.dma(4096).unwrap();
    assert_ok(&raw(c, &cmd::create_io_sq(41, 16, sq2.iova(), 40, 2)));
    let q = create_raw_pair(c, 50, 32);
    assert_eq!((p.entries, q.entries), (16, 32));

    // A Flush through SQ 41 lands in CQ 40 with SQ identifier 41 and head 1.
    let mut flush = cmd::flush(1);
    flush.set_cid(0x1234);
    sq2.write_obj(0, &flush);
    c.transport().write32(db(c, 41), 1);
    let e = wait_raw_cqe(&p.cq, 0, true);
    assert_eq!((e.cid(), e.sqid(), e.sqhd()), (0x1234, 41, 1));
    assert_ok(&e);
    c.transport().write32(cq_db(c, 40), 1);
    // And through SQ 50 into CQ 50.
    flush.set_cid(7);
    q.sq.write_obj(0, &flush);
    c.transport().write32(db(c, q.qid), 1);
    let e = wait_raw_cqe(&q.cq, 0, true);
    assert_eq!((e.cid(), e.sqid(), e.sqhd()), (7, 50, 1));
    assert_ok(&e);
    c.transport().write32(cq_db(c, 50), 1);

    // Delete every SQ before its CQ, then create the same identifiers again.
    for qid in [41, 40, 50] {
        assert_ok(&raw(c, &cmd::delete_io_sq(qid)));
    }
    for qid in [40, 50] {
        assert_ok(&raw(c, &cmd::delete_io_cq(qid)));
    }
    let again = create_raw_pair(c, 40, 64);
    assert_ok(&raw(c, &cmd::create_io_sq(41, 16, sq2.iova(), 40, 0)));
    let q2 = create_raw_pair(c, 50, 16);
    assert_eq!((again.qid, q2.qid), (40, 50));

    // The driver's own queue pairs keep working beside the raw ones.
    let mut qp = c.create_qpair(QpairOptions::default()).unwrap();
    assert_eq!(qp.qid(), 1);
    let data = pattern(4096, 40);
    write_lbas(&mut qp, 1, 0, &data, 512);
    assert!(read_lbas(&mut qp, 1, 0, 8, 512) == data);
}

#[test]
fn delete_cq_with_sq_attached_is_invalid_queue_deletion() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let p = create_raw_pair(c, 40, 16);
    let sq2 = c.dma(4096).unwrap();
    assert_ok(&raw(c, &cmd::create_io_sq(41, 16, sq2.iova(), 40, 0)));
    assert_status(&raw(c, &cmd::delete_io_cq(p.qid)), Status::INVALID_QUEUE_DELETION, true);
    assert_ok(&raw(c, &cmd::delete_io_sq(40)));
    // SQ 41 still completes into CQ 40.
    assert_status(&raw(c, &cmd::delete_io_cq(40)), Status::INVALID_QUEUE_DELETION, true);
    assert_ok(&raw(c, &cmd::delete_io_sq(41)));
    assert_ok(&raw(c, &cmd::delete_io_cq(40)));
}

#[test]
fn delete_of_missing_queue_or_qid_zero_is_invalid_queue_identifier() {
    let r = rig(cfg());
    let c = &r.ctrl;
    for qid in [0u16, 45, 64, 65, 0xffff] {
        assert_status(&raw(c, &cmd::delete_io_sq(qid)), Status::INVALID_QUEUE_ID, true);
        assert_status(&raw(c, &cmd::delete_io_cq(qid)), Status::INVALID_QUEUE_ID, true);
    }
    // A CQ without its SQ, an SQ deleted twice, a CQ deleted twice.
    let _p = create_raw_pair(c, 40, 16);
    assert_status(&raw(c, &cmd::delete_io_sq(41)), Status::INVALID_QUEUE_ID, true);
    assert_ok(&raw(c, &cmd::delete_io_sq(40)));
    assert_status(&raw(c, &cmd::delete_io_sq(40)), Status::INVALID_QUEUE_ID, true);
    assert_ok(&raw(c, &cmd::delete_io_cq(40)));
    assert_status(&raw(c, &cmd::delete_io_cq(40)), Status::INVALID_QUEUE_ID, true);
}

#[test]
fn set_number_of_queues_after_an_io_queue_exists_is_command_sequence_error() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let cq = c.dma(4096).unwrap();
    assert_ok(&raw(c, &cmd::create_io_cq(40, 16, cq.iova(), 0, false)));
    // A completion queue alone is enough.
    let e = raw(c, &cmd::set_features(fid::NUMBER_OF_QUEUES, 0x0003_0003, false));
    assert_status(&e, Status::COMMAND_SEQUENCE_ERROR, true);
    let _p = create_raw_pair(c, 41, 16);
    let e = raw(c, &cmd::set_features(fid::NUMBER_OF_QUEUES, 0x0003_0003, false));
    assert_status(&e, Status::COMMAND_SEQUENCE_ERROR, true);
    // The allocation is unchanged.
    assert_eq!(c.get_features(fid::NUMBER_OF_QUEUES, 0).unwrap(), 0x003f_003f);
}

// ---------------------------------------------------------------------------------------
// Asynchronous events for invalid doorbell writes (§5.2, Figure 146)
// ---------------------------------------------------------------------------------------

#[test]
fn sq_tail_beyond_queue_size_raises_invalid_doorbell_write_value_event() {
    // PyNVMe3 metamode example 2.4: a 16-entry SQ, tail doorbell written with 20.
    let r = rig(cfg());
    let c = &r.ctrl;
    c.submit_aer().unwrap();
    let p = create_raw_pair(c, 40, 16);
    c.transport().write32(db(c, p.qid), 20);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_VALUE]);
    assert_eq!(c.outstanding_aers(), 0);
    // The write was ignored: the tail is still 0, so the next valid write of 1 executes
    // exactly the command in slot 0.
    let mut flush = cmd::flush(1);
    flush.set_cid(0x99);
    p.sq.write_obj(0, &flush);
    c.transport().write32(db(c, p.qid), 1);
    let e = wait_raw_cqe(&p.cq, 0, true);
    assert_eq!((e.cid(), e.sqid(), e.sqhd()), (0x99, 40, 1));
    assert_ok(&e);
    // The tail value equal to the size is already outside the queue.
    c.error_log(1).unwrap();
    c.submit_aer().unwrap();
    c.transport().write32(db(c, p.qid), 16);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_VALUE]);
}

#[test]
fn invalid_doorbell_events_are_masked_until_the_error_log_is_read() {
    let r = rig(cfg());
    let c = &r.ctrl;
    c.submit_aer().unwrap();
    let p = create_raw_pair(c, 40, 16);
    c.transport().write32(db(c, p.qid), 20);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_VALUE]);

    // A second invalid write with a new request outstanding: the error type is masked.
    c.submit_aer().unwrap();
    c.transport().write32(db(c, p.qid), 20);
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new());
    assert_eq!(c.outstanding_aers(), 1);
    // Reading the log with Retain Asynchronous Event set keeps the mask.
    c.get_log_page(lid::ERROR_INFORMATION, 0, 64, true).unwrap();
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new());
    assert_eq!(c.outstanding_aers(), 1);
    // Reading it with RAE clear unmasks the type: the retained event is reported.
    c.get_log_page(lid::ERROR_INFORMATION, 0, 64, false).unwrap();
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_VALUE]);
    assert_eq!(c.outstanding_aers(), 0);

    // Cleared again (through the driver's error log reader), the next invalid write is
    // reported at once.
    c.error_log(4).unwrap();
    c.submit_aer().unwrap();
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new());
    c.transport().write32(db(c, p.qid), 31);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_VALUE]);
}

#[test]
fn doorbell_of_a_queue_that_does_not_exist_raises_invalid_doorbell_register_event() {
    let r = rig(cfg());
    let c = &r.ctrl;
    // An SQ tail doorbell of a queue never created.
    c.submit_aer().unwrap();
    c.transport().write32(db(c, 50), 1);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_REGISTER]);
    // A CQ head doorbell of a queue never created.
    c.error_log(1).unwrap();
    c.submit_aer().unwrap();
    c.transport().write32(cq_db(c, 51), 0);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_REGISTER]);
    // Beyond every queue the controller offers.
    c.error_log(1).unwrap();
    c.submit_aer().unwrap();
    c.transport().write32(db(c, 200), 1);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_REGISTER]);
    // The SQ doorbell of a deleted queue.
    let _p = create_raw_pair(c, 40, 16);
    assert_ok(&raw(c, &cmd::delete_io_sq(40)));
    c.error_log(1).unwrap();
    c.submit_aer().unwrap();
    c.transport().write32(db(c, 40), 1);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_REGISTER]);
}

// ---------------------------------------------------------------------------------------
// Get Features / Set Features (§5.21)
// ---------------------------------------------------------------------------------------

#[test]
fn arbitration_feature_round_trips() {
    let r = rig(cfg());
    let c = &r.ctrl;
    // The simulator's default: burst 2^3, all weights 0 (1 command).
    let default = c.get_features(fid::ARBITRATION, 0).unwrap();
    if r.is_sim() {
        assert_eq!(default, 0x0000_0003);
    }
    let arb = Arbitration { burst: 2, low: 1, medium: 3, high: 7 };
    c.set_arbitration(arb).unwrap();
    assert_eq!(c.get_features(fid::ARBITRATION, 0).unwrap(), 0x0703_0102);
    assert_eq!(Arbitration::from_dword(c.get_features(fid::ARBITRATION, 0).unwrap()), arb);
    // The default is still the default.
    assert_eq!(raw(c, &cmd::get_features(fid::ARBITRATION, Select::Default)).cdw0(), default);
}

#[test]
fn power_state_above_npss_is_invalid_field() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let npss = u32::from(c.identify().npss);
    if r.is_sim() {
        assert_eq!(npss, 4);
    }
    assert_eq!(c.get_features(fid::POWER_MANAGEMENT, 0).unwrap(), 0);
    c.set_features(fid::POWER_MANAGEMENT, npss).unwrap();
    assert_eq!(c.get_features(fid::POWER_MANAGEMENT, 0).unwrap(), npss);
    for ps in [npss + 1, 31] {
        assert_status(&raw(c, &cmd::set_features(fid::POWER_MANAGEMENT, ps, false)), Status::INVALID_FIELD, true);
    }
    assert_eq!(c.get_features(fid::POWER_MANAGEMENT, 0).unwrap(), npss, "a refused value changes nothing");
    c.set_features(fid::POWER_MANAGEMENT, 0).unwrap();
    assert_eq!(c.get_features(fid::POWER_MANAGEMENT, 0).unwrap(), 0);
}

#[test]
fn volatile_write_cache_feature_turns_off_and_on() {
    let r = rig(cfg());
    let c = &r.ctrl;
    assert!(c.identify().vwc_present());
    assert_eq!(c.get_features(fid::VOLATILE_WRITE_CACHE, 0).unwrap(), 1);
    c.set_features(fid::VOLATILE_WRITE_CACHE, 0).unwrap();
    assert_eq!(c.get_features(fid::VOLATILE_WRITE_CACHE, 0).unwrap(), 0);
    // With the cache off a write reaches the media before it completes.
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    write_lbas(&mut q, 1, 0, &pattern(4096, 6), 512);
    assert_eq!(r.sim().unflushed_chunks(1), 0);
    c.set_features(fid::VOLATILE_WRITE_CACHE, 1).unwrap();
    assert_eq!(c.get_features(fid::VOLATILE_WRITE_CACHE, 0).unwrap(), 1);
    write_lbas(&mut q, 1, 64, &pattern(4096, 7), 512);
    assert_eq!(r.sim().unflushed_chunks(1), 1);
}

#[test]
fn number_of_queues_reports_the_allocated_counts_zeros_based() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let got = c.get_features(fid::NUMBER_OF_QUEUES, 0).unwrap();
    assert_eq!(NumberOfQueues::from_dword(got), c.info().io_queues, "Get Features returns what Set Features allocated");
    let r3 = rig_with(cfg(), ControllerOptions { io_queues: 3, ..Default::default() });
    let got3 = r3.ctrl.get_features(fid::NUMBER_OF_QUEUES, 0).unwrap();
    assert_eq!(NumberOfQueues::from_dword(got3), r3.ctrl.info().io_queues);
    if r.is_sim() {
        assert_eq!(got, 0x003f_003f);
        assert_eq!(NumberOfQueues::from_dword(got), NumberOfQueues { sq: 64, cq: 64 });
        assert_eq!(got3, 0x0002_0002);
    }
    drop(r3);
    // 65535 queues (FFFFh, 0's based) is not a valid request.
    let r = rig(cfg());
    assert_status(&raw(&r.ctrl, &cmd::set_features(fid::NUMBER_OF_QUEUES, 0xffff_ffff, false)), Status::INVALID_FIELD, true);
}

#[test]
fn temperature_threshold_below_composite_temperature_raises_smart_event_and_critical_warning() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let t = u32::from(c.smart_log().unwrap().temperature_k());
    if r.is_sim() {
        assert_eq!(t, 310);
    }
    assert_eq!(c.smart_log().unwrap().critical_warning(), 0);
    assert_eq!(c.get_features(fid::TEMPERATURE_THRESHOLD, 0).unwrap(), u32::from(c.identify().wctemp));
    // Report temperature critical warnings (Asynchronous Event Configuration bit 1).
    c.set_features(fid::ASYNC_EVENT_CONFIG, 1 << 1).unwrap();
    assert_eq!(c.get_features(fid::ASYNC_EVENT_CONFIG, 0).unwrap(), 1 << 1);
    c.submit_aer().unwrap();
    // An over temperature threshold 10 K below the temperature the controller reports.
    c.set_features(fid::TEMPERATURE_THRESHOLD, t - 10).unwrap();
    assert_eq!(wait_events(c, 1), vec![EVENT_SMART_TEMPERATURE]);
    assert_eq!(c.get_features(fid::TEMPERATURE_THRESHOLD, 0).unwrap(), t - 10);
    assert_eq!(c.smart_log().unwrap().critical_warning(), 1 << 1);
    // Back above the temperature: the warning clears.
    c.set_features(fid::TEMPERATURE_THRESHOLD, t + 33).unwrap();
    assert_eq!(c.smart_log().unwrap().critical_warning(), 0);
    // An under temperature threshold (THSEL 01b) at or above the temperature alarms too.
    c.submit_aer().unwrap();
    c.set_features(fid::TEMPERATURE_THRESHOLD, 1 << 20 | (t + 5)).unwrap();
    assert_eq!(wait_events(c, 1), vec![EVENT_SMART_TEMPERATURE]);
    assert_eq!(c.get_features(fid::TEMPERATURE_THRESHOLD, 1 << 20).unwrap(), t + 5);
    assert_eq!(c.smart_log().unwrap().critical_warning(), 1 << 1);
}

/// Asynchronous Event Configuration (FID 0Bh): with a SMART / Health Critical Warnings
/// bit cleared, no asynchronous event is sent when that critical warning becomes set.
#[test]
fn temperature_event_is_not_sent_while_async_event_configuration_disables_it() {
    let r = rig(cfg());
    let c = &r.ctrl;
    c.set_features(fid::ASYNC_EVENT_CONFIG, 0).unwrap();
    c.submit_aer().unwrap();
    c.set_features(fid::TEMPERATURE_THRESHOLD, 300).unwrap();
    assert_eq!(c.smart_log().unwrap().critical_warning(), 1 << 1, "the warning itself is reported");
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new(), "but no event is sent for it");
    assert_eq!(c.outstanding_aers(), 1);
}

#[test]
fn set_features_with_save_is_feature_identifier_not_saveable() {
    let r = rig(cfg());
    let c = &r.ctrl;
    for f in [fid::ARBITRATION, fid::POWER_MANAGEMENT, fid::VOLATILE_WRITE_CACHE, fid::TEMPERATURE_THRESHOLD] {
        let before = c.get_features(f, 0).unwrap();
        assert_status(&raw(c, &cmd::set_features(f, 1, true)), Status::FEATURE_NOT_SAVEABLE, true);
        assert_eq!(c.get_features(f, 0).unwrap(), before, "FID {f:#x} unchanged");
    }
}

#[test]
fn unknown_feature_identifier_is_invalid_field() {
    let r = rig(cfg());
    let c = &r.ctrl;
    // Reserved FIDs and LBA Range Type, which the controller does not implement.
    for f in [0x00u8, fid::LBA_RANGE_TYPE, 0x7f, 0xc0] {
        assert_status(&raw(c, &cmd::set_features(f, 0, false)), Status::INVALID_FIELD, true);
        assert_status(&raw(c, &cmd::get_features(f, Select::Current)), Status::INVALID_FIELD, true);
    }
    // Reserved select values.
    assert_status(&raw(c, &cmd::get_features(fid::ARBITRATION, Select::Reserved(4))), Status::INVALID_FIELD, true);
}

#[test]
fn get_features_capabilities_reports_changeable_not_saveable() {
    let r = rig(cfg());
    let c = &r.ctrl;
    for f in [fid::ARBITRATION, fid::POWER_MANAGEMENT, fid::TEMPERATURE_THRESHOLD, fid::VOLATILE_WRITE_CACHE, fid::NUMBER_OF_QUEUES] {
        let e = raw(c, &cmd::get_features(f, Select::Capabilities));
        assert_ok(&e);
        // Bit 0 saveable, bit 1 namespace specific, bit 2 changeable.
        assert_eq!(e.cdw0(), 0b100, "FID {f:#x}");
    }
}

// ---------------------------------------------------------------------------------------
// Get Log Page (§5.14)
// ---------------------------------------------------------------------------------------

/// Brings a Data Units counter to a multiple of 1000 units of 512 bytes, the state fresh
/// counters are in: the count is reported in thousands, rounded up (NVMe 1.4 §5.14.1.2),
/// so one unit at a time until it moves (1000k + 1 units), then 999 more. The LBAs used
/// are 3000 and up, away from the tests' own.
fn align_data_units(q: &mut QPair, write: bool) {
    let c = q.controller().clone();
    let units = || if write { smart_counts(&c).1 } else { smart_counts(&c).0 };
    let io = |q: &mut QPair, n: usize| {
        if write {
            write_lbas(q, 1, 3000, &pattern(n * 512, 78), 512);
        } else {
            read_lbas(q, 1, 3000, n, 512);
        }
    };
    let start = units();
    let moved = (0..1000).any(|_| {
        io(q, 1);
        units() != start
    });
    assert!(moved, "1000 units did not move the Data Units counter");
    io(q, 999);
}

/// Data units read and written, host read and write commands (SMART / Health log).
type SmartCounts = (u128, u128, u128, u128);

fn smart_counts(c: &Controller) -> SmartCounts {
    let s = c.smart_log().unwrap();
    (s.data_units_read(), s.data_units_written(), s.host_read_commands(), s.host_write_commands())
}

/// The counts since `base`.
fn smart_since(c: &Controller, base: SmartCounts) -> SmartCounts {
    let now = smart_counts(c);
    (now.0 - base.0, now.1 - base.1, now.2 - base.2, now.3 - base.3)
}

#[test]
fn smart_data_units_and_command_counts_follow_host_io() {
    let r = rig(cfg());
    let c = &r.ctrl;
    if r.is_sim() {
        assert_eq!(smart_counts(c), (0, 0, 0, 0));
    }
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    align_data_units(&mut q, true);
    align_data_units(&mut q, false);
    let base = smart_counts(c);
    // 4 x 250 LBAs of 512 bytes: exactly 1000 units, one data unit.
    for i in 0..4u64 {
        write_lbas(&mut q, 1, i * 250, &pattern(250 * 512, i), 512);
    }
    assert_eq!(smart_since(c, base), (0, 1, 0, 4));
    // One more unit: 1001 units round up to 2 data units.
    write_lbas(&mut q, 1, 1000, &pattern(512, 9), 512);
    assert_eq!(smart_since(c, base), (0, 2, 0, 5));
    // Reads: 1 unit rounds up to 1; 1000 units are still 1; 1001 are 2.
    read_lbas(&mut q, 1, 0, 1, 512);
    assert_eq!(smart_since(c, base), (1, 2, 1, 5));
    read_lbas(&mut q, 1, 1, 999, 512);
    assert_eq!(smart_since(c, base), (1, 2, 2, 5));
    read_lbas(&mut q, 1, 0, 1, 512);
    assert_eq!(smart_since(c, base), (2, 2, 3, 5));
}

/// SMART / Health: logical blocks read as part of Compare and Read operations are
/// included in Data Units Read.
#[test]
fn smart_data_units_read_include_compared_blocks() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    let data = pattern(250 * 512, 3);
    let buf = c.dma(data.len()).unwrap();
    buf.write(0, &data);
    q.execute_ok(&cmd::write(1, 0, 250), DataPtr::Prp(&buf)).unwrap();
    align_data_units(&mut q, false);
    let base = smart_counts(c);
    for _ in 0..4 {
        q.execute_ok(&cmd::compare(1, 0, 250), DataPtr::Prp(&buf)).unwrap();
    }
    let (units, _, reads, _) = smart_since(c, base);
    assert_eq!(reads, 4, "Compare commands count as host read commands");
    assert_eq!(units, 1, "1000 compared 512-byte units are one data unit read");
}

#[test]
fn error_information_log_records_failed_commands_newest_first() {
    let r = rig(cfg());
    let c = &r.ctrl;
    assert_eq!(c.error_log(4).unwrap(), Vec::<ErrorLogEntry>::new());
    // An admin command failure.
    let a = raw(c, &cmd::identify(0x7f, 0));
    assert_status(&a, Status::INVALID_FIELD, true);
    // An I/O command failure.
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    let nlba = c.namespace(1).unwrap().nlba();
    let buf = c.dma(1024).unwrap();
    let io = q.execute(&cmd::read(1, nlba - 1, 2), DataPtr::Prp(&buf)).unwrap();
    assert_eq!(io.kind, CplKind::Device);
    assert_status(&io.cqe, Status::LBA_OUT_OF_RANGE, true);

    let log = c.error_log(4).unwrap();
    assert_eq!(log.len(), 2);
    let (newest, oldest) = (log[0], log[1]);
    assert_eq!(oldest.error_count, 1);
    assert_eq!((oldest.sqid, oldest.cid), (0, a.cid()));
    assert_eq!(oldest.status >> 1, Status::INVALID_FIELD.with_dnr(true).raw());
    assert_eq!(newest.error_count, 2);
    assert_eq!((newest.sqid, newest.cid), (q.qid(), io.cid()));
    assert_eq!(newest.status >> 1, Status::LBA_OUT_OF_RANGE.with_dnr(true).raw());
    assert_eq!((newest.nsid, newest.lba), (1, nlba - 1));
    assert_eq!(c.smart_log().unwrap().error_log_entries(), 2);
    // The same entries from a byte offset of one entry.
    let buf = c.dma(64).unwrap();
    assert_ok(&raw_data(c, &cmd::get_log_page(lid::ERROR_INFORMATION, 0, 64, false, 64), &buf));
    assert_eq!(ErrorLogEntry::from_bytes(&buf.to_vec()), oldest);
}

/// An Error Information log entry holds the Status Field in bits 15:1 of Status
/// Information and the Phase Tag posted for the command in bit 0.
#[test]
fn error_log_status_information_carries_the_completion_phase_tag() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let a = raw(c, &cmd::identify(0x7f, 0));
    assert_status(&a, Status::INVALID_FIELD, true);
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    let io = q.execute(&cmd::read(9, 0, 1), DataPtr::None).unwrap();
    assert_status(&io.cqe, Status::INVALID_NAMESPACE, true);
    assert!(a.phase() && io.cqe.phase(), "first pass through both queues: phase 1");
    let log = c.error_log(2).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!((log[1].sqid, log[1].cid), (0, a.cid()));
    assert_eq!(log[1].status, Status::INVALID_FIELD.with_dnr(true).raw() << 1 | 1);
    assert_eq!((log[0].sqid, log[0].cid), (q.qid(), io.cid()));
    assert_eq!(log[0].status, Status::INVALID_NAMESPACE.with_dnr(true).raw() << 1 | 1);
}

#[test]
fn unknown_log_page_identifier_is_invalid_log_page() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let buf = c.dma(4096).unwrap();
    // 7Fh and BFh are reserved (NVMe 1.4 Figure 191); the simulator also lacks the Changed
    // Namespace List page.
    let mut lids = vec![0x7f, 0xbf];
    if r.is_sim() {
        lids.push(lid::CHANGED_NAMESPACES);
    }
    for l in lids {
        assert_status(&raw_data(c, &cmd::get_log_page(l, 0, 512, false, 0), &buf), Status::INVALID_LOG_PAGE, true);
    }
    // A supported page is not.
    assert_ok(&raw_data(c, &cmd::get_log_page(lid::SMART_HEALTH, u32::MAX, 512, false, 0), &buf));
}

#[test]
fn commands_supported_and_effects_log_matches_what_the_controller_accepts() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let log = c.get_log_page(lid::COMMANDS_EFFECTS, 0, 4096, false).unwrap();
    let admin = |op: u8| u32::from_le_bytes(log[op as usize * 4..op as usize * 4 + 4].try_into().unwrap());
    let io = |op: u8| u32::from_le_bytes(log[1024 + op as usize * 4..1024 + op as usize * 4 + 4].try_into().unwrap());
    // CSUPP (bit 0); LBCC (bit 1) for commands that change logical block content.
    assert_eq!(admin(0x06) & 1, 1, "Identify");
    assert_eq!(admin(0x02) & 1, 1, "Get Log Page");
    assert_eq!(io(0x02) & 0b11, 1, "Read");
    assert_eq!(io(0x01) & 0b11, 0b11, "Write");
    if r.is_sim() {
        assert_eq!((admin(0x06), io(0x02), io(0x01)), (1, 1, 0b11));
        // Firmware Commit: CSUPP | CCC (activation changes Identify Controller FR).
        assert_eq!(admin(0x10), 1 | 1 << 4, "Firmware Commit");
        assert_eq!(admin(0x11), 1, "Firmware Image Download");
        assert_eq!(admin(0x14), 1, "Device Self-test");
        assert_eq!(io(0x0d), 0, "Reservation Register");
    }
    // Every admin opcode the log does not mark supported is refused as such.
    let mut refused = 0;
    for op in 0..=255u8 {
        if admin(op) & 1 == 0 {
            assert_status(&raw(c, &Sqe::new(op, 0)), Status::INVALID_OPCODE, true);
            refused += 1;
        }
    }
    if r.is_sim() {
        assert_eq!(refused, 256 - 15);
    }
}

// ---------------------------------------------------------------------------------------
// Identify (§5.15)
// ---------------------------------------------------------------------------------------

fn nsid_list(page: &[u8]) -> Vec<u32> {
    page.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).take_while(|&n| n != 0).collect()
}

#[test]
fn active_namespace_list_lists_nsids_above_the_given_one() {
    let r = rig(three_namespaces());
    let c = &r.ctrl;
    let active: Vec<u32> = if r.is_sim() {
        assert_eq!(c.identify().nn, 3);
        vec![1, 2, 3]
    } else {
        c.info().namespaces.iter().map(|n| n.nsid).collect()
    };
    let buf = c.dma(4096).unwrap();
    let starts = [0u32, 1, 2, 3, 1000];
    for (start, want) in starts.iter().map(|&s| (s, active.iter().copied().filter(|&n| n > s).collect::<Vec<u32>>())) {
        buf.fill(0, 4096, 0xff);
        assert_ok(&raw_data(c, &cmd::identify(cns::ACTIVE_NS_LIST, start), &buf));
        let page = buf.to_vec();
        assert_eq!(nsid_list(&page), want, "starting after NSID {start}");
        assert!(page[want.len() * 4..].iter().all(|&b| b == 0), "the rest of the list is zero");
    }
    for nsid in [0xffff_fffe, 0xffff_ffff] {
        assert_status(&raw_data(c, &cmd::identify(cns::ACTIVE_NS_LIST, nsid), &buf), Status::INVALID_NAMESPACE, true);
    }
    if r.is_sim() {
        let info = c.info();
        assert_eq!(info.namespaces.iter().map(|n| n.nsid).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(info.namespaces.iter().map(|n| n.lba_size()).collect::<Vec<_>>(), vec![512, 4096, 512]);
    }
}

#[test]
fn namespace_descriptors_carry_eui64_and_nguid() {
    let r = rig(three_namespaces());
    let c = &r.ctrl;
    let buf = c.dma(4096).unwrap();
    let mut seen = Vec::new();
    for nsid in 1..=3u32 {
        buf.fill(0, 4096, 0xff);
        assert_ok(&raw_data(c, &cmd::identify(cns::NS_DESCRIPTORS, nsid), &buf));
        let d = buf.to_vec();
        let id = c.namespace(nsid).unwrap().id;
        // Descriptors (NVMe 1.4 Figure 249): NIDT, NIDL, two reserved bytes, NIDL bytes.
        let mut descs = Vec::new();
        let mut at = 0;
        while at + 4 <= d.len() && d[at] != 0 {
            let (nidt, nidl) = (d[at], d[at + 1] as usize);
            let want = match nidt {
                1 => 8,
                2 | 3 => 16,
                4 => 1,
                t => panic!("NSID {nsid}: unknown NIDT {t} at byte {at}"),
            };
            assert_eq!(nidl, want, "NSID {nsid}: NIDL of NIDT {nidt}");
            let v = d[at + 4..at + 4 + nidl].to_vec();
            match nidt {
                1 => assert_eq!(v, id.eui64, "NSID {nsid}: EUI-64 as in Identify Namespace"),
                2 => assert_eq!(v, id.nguid, "NSID {nsid}: NGUID as in Identify Namespace"),
                _ => {}
            }
            descs.push((nidt, v));
            at += 4 + nidl;
        }
        assert!(d[at..].iter().all(|&b| b == 0), "NSID {nsid}: the list ends with zeroes after byte {at}");
        let ids: Vec<_> = descs.into_iter().filter(|(t, _)| *t <= 3).collect();
        assert!(!ids.is_empty(), "NSID {nsid}: no EUI-64, NGUID or UUID in {:02x?}", &d[..48]);
        if r.is_sim() {
            // The simulator's list: NIDT 1 (IEEE EUI-64), then NIDT 2 (NGUID), then the end.
            assert_eq!(ids, vec![(1, id.eui64.to_vec()), (2, id.nguid.to_vec())]);
            assert_ne!(id.eui64, [0; 8]);
            assert_ne!(id.nguid, [0; 16]);
        }
        seen.extend(ids);
    }
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "identifiers are unique per namespace");
    let beyond = c.identify().nn + 1;
    assert_status(&raw_data(c, &cmd::identify(cns::NS_DESCRIPTORS, beyond), &buf), Status::INVALID_NAMESPACE, true);
}

#[test]
fn identify_with_unknown_cns_is_invalid_field() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let buf = c.dma(4096).unwrap();
    // 04h, 7Fh and FFh are reserved (NVMe 1.4 Figure 244); 10h and 13h are namespace
    // management lists, which the simulator does not implement.
    let mut values = vec![0x04u8, 0x7f, 0xff];
    if r.is_sim() {
        values.extend([0x10, 0x13]);
    }
    for cns in values {
        assert_status(&raw_data(c, &cmd::identify(cns, 0), &buf), Status::INVALID_FIELD, true);
    }
}

#[test]
fn identify_namespace_zero_or_beyond_nn_is_invalid_namespace() {
    let r = rig(three_namespaces());
    let c = &r.ctrl;
    let buf = c.dma(4096).unwrap();
    let nn = c.identify().nn;
    for nsid in [0u32, nn + 1, nn + 997, 0xffff_fffe] {
        assert_status(&raw_data(c, &cmd::identify(cns::NAMESPACE, nsid), &buf), Status::INVALID_NAMESPACE, true);
    }
    // The last active namespace answers.
    let last = if r.is_sim() { 3 } else { 1 };
    assert_ok(&raw_data(c, &cmd::identify(cns::NAMESPACE, last), &buf));
    let id = nvplan::nvme::IdentifyNamespace::from_bytes(&buf.to_vec());
    assert_eq!(id.nsze, c.namespace(last).unwrap().nlba());
    if r.is_sim() {
        assert_eq!(id.nsze, (8 << 20) / 512);
    }
}

// ---------------------------------------------------------------------------------------
// Format NVM (§5.23) and Sanitize (§5.24)
// ---------------------------------------------------------------------------------------

#[test]
fn format_to_4k_lba_format_changes_lba_size_and_erases_only_that_namespace() {
    let r = rig(three_namespaces());
    let c = &r.ctrl;
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    let d1 = pattern(8192, 1);
    let d3 = pattern(8192, 2);
    write_lbas(&mut q, 1, 0, &d1, 512);
    write_lbas(&mut q, 3, 0, &d3, 512);
    let id = c.namespace(1).unwrap().id;
    let find = |size: usize| id.lbaf[..=id.nlbaf as usize].iter().position(|f| f.data_size() == size && f.ms == 0).expect("LBA format") as u8;
    let (f512, f4k) = (find(512), find(4096));
    let bytes = c.namespace(1).unwrap().nlba() * 512;

    c.format(1, f4k, 0).unwrap();
    let ns = c.namespace(1).unwrap();
    assert_eq!((ns.lba_size(), ns.id.flbas & 0xf, ns.nlba()), (4096, f4k, bytes / 4096));
    assert!(read_lbas(&mut q, 1, 0, 2, 4096).iter().all(|&b| b == 0), "formatted blocks read zeroes");
    let ns3 = c.namespace(3).unwrap();
    assert_eq!(ns3.lba_size(), 512);
    assert!(read_lbas(&mut q, 3, 0, 16, 512) == d3, "the other namespace keeps its data");
    // 4 KiB blocks move 4 KiB per LBA.
    let d5 = pattern(8192, 3);
    write_lbas(&mut q, 1, 5, &d5, 4096);
    assert!(read_lbas(&mut q, 1, 5, 2, 4096) == d5);

    // Back to 512 bytes.
    c.format(1, f512, 0).unwrap();
    assert_eq!(c.namespace(1).unwrap().lba_size(), 512);
    assert_eq!(c.namespace(1).unwrap().nlba(), bytes / 512);
    if r.is_sim() {
        assert_eq!((f512, f4k, bytes), (0, 1, 16 << 20));
    }
}

#[test]
fn format_with_unsupported_lba_format_is_invalid_format() {
    let r = rig(cfg());
    let c = &r.ctrl;
    // Formats 0..=NLBAF exist (NLBAF is zero-based); the ones above do not.
    let nlbaf = c.namespace(1).unwrap().id.nlbaf;
    if r.is_sim() {
        assert_eq!(nlbaf, 1);
    }
    for lbaf in [nlbaf + 1, nlbaf + 4, 15].into_iter().filter(|&f| f <= 15) {
        assert_status(&raw(c, &cmd::format_nvm(1, lbaf, 0)), Status::INVALID_FORMAT, true);
    }
    // Cryptographic erase (SES 010b) only where FNA bit 2 says it is supported, as the
    // simulator does; SES 011b and above are reserved (NVMe 1.4 Figure 319).
    let crypto = c.identify().fna & 1 << 2 != 0;
    assert!(!r.is_sim() || crypto);
    if crypto {
        assert_status(&raw(c, &cmd::format_nvm(1, 0, 2)), Status::SUCCESS, false);
    } else {
        assert_status(&raw(c, &cmd::format_nvm(1, 0, 2)), Status::INVALID_FIELD, true);
    }
    assert_status(&raw(c, &cmd::format_nvm(1, 0, 3)), Status::INVALID_FIELD, true);
    assert_status(&raw(c, &cmd::format_nvm(c.identify().nn + 1, 0, 0)), Status::INVALID_NAMESPACE, true);
    let lba = c.namespace(1).unwrap().lba_size();
    assert_eq!(lba, 512, "a refused format changes nothing");
}

#[test]
fn sanitize_block_erase_erases_every_namespace_and_reports_completion() {
    let cfg = SimConfig { namespaces: vec![NamespaceConfig::memory(16 << 20, 512), NamespaceConfig::memory(16 << 20, 4096)], ..Default::default() };
    let r = rig(cfg);
    let c = &r.ctrl;
    assert_eq!(c.identify().sanicap & 0b111, 0b010, "block erase only");
    let status = c.get_log_page(lid::SANITIZE_STATUS, 0, 512, false).unwrap();
    // SPROG FFFFh (not in progress), SSTAT: never sanitized, and Global Data Erased (bit 8)
    // because nothing was written since manufacture (Figure 211).
    assert_eq!((&status[0..2], &status[2..4]), (&[0xff, 0xff][..], &[0, 1][..]));
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    write_lbas(&mut q, 1, 10, &pattern(4096, 1), 512);
    write_lbas(&mut q, 2, 10, &pattern(8192, 2), 4096);
    q.execute_ok(&cmd::flush(u32::MAX), DataPtr::None).unwrap();

    assert_ok(&raw(c, &cmd::sanitize(2)));
    // The operation runs on after the command completed (§8.15): in progress first.
    let status = c.get_log_page(lid::SANITIZE_STATUS, 0, 512, false).unwrap();
    if r.is_sim() {
        assert_eq!(u16::from_le_bytes([status[2], status[3]]) & 0x7, 2, "SSTAT: in progress");
        assert!(u16::from_le_bytes([status[0], status[1]]) < 0xffff, "SPROG: how far it got");
    }
    wait_sanitized(c);
    assert!(read_lbas(&mut q, 1, 10, 8, 512).iter().all(|&b| b == 0));
    assert!(read_lbas(&mut q, 2, 10, 2, 4096).iter().all(|&b| b == 0));
    let status = c.get_log_page(lid::SANITIZE_STATUS, 0, 512, false).unwrap();
    assert_eq!(u16::from_le_bytes([status[0], status[1]]), 0xffff, "SPROG: no sanitize in progress");
    assert_eq!(u16::from_le_bytes([status[2], status[3]]) & 0x7, 1, "SSTAT: the last sanitize completed successfully");
    assert_eq!(u32::from_le_bytes(status[4..8].try_into().unwrap()), 2, "SCDW10 of the sanitize");
    // Namespaces keep their format.
    assert_eq!(c.namespace(2).unwrap().lba_size(), 4096);
}

/// Waits (10 s at most) until the Sanitize Status log says no sanitize is in progress.
fn wait_sanitized(c: &Controller) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let p = c.get_log_page(lid::SANITIZE_STATUS, 0, 512, false).unwrap();
        if u16::from_le_bytes([p[2], p[3]]) & 0x7 != 2 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "sanitize still in progress after 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A sanitize runs on after its command (a second one is Sanitize In Progress) and its
/// end is announced with the Sanitize Operation Completed event (Figure 146).
#[test]
fn sanitize_completion_raises_its_event_and_a_second_sanitize_waits() {
    let r = rig(cfg());
    let c = &r.ctrl;
    c.submit_aer().unwrap();
    assert_ok(&raw(c, &cmd::sanitize(2)));
    if r.is_sim() {
        assert_status(&raw(c, &cmd::sanitize(2)), Status::SANITIZE_IN_PROGRESS, false);
    }
    wait_sanitized(c);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut events = Vec::new();
    while events.is_empty() && Instant::now() < deadline {
        c.poll_admin();
        events = c.take_events();
    }
    assert_eq!(events, vec![async_event::dword0(async_event::TYPE_IO_COMMAND_SPECIFIC, async_event::SANITIZE_COMPLETED, lid::SANITIZE_STATUS)]);
}

/// Sanitize Status log SSTAT bit 8 (Global Data Erased) is set while no user data has
/// been written since the most recent successful sanitize operation.
#[test]
fn sanitize_status_reports_global_data_erased_until_the_next_write() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    write_lbas(&mut q, 1, 0, &pattern(4096, 8), 512);
    assert_ok(&raw(c, &cmd::sanitize(2)));
    wait_sanitized(c);
    let sstat = |c: &Controller| {
        let p = c.get_log_page(lid::SANITIZE_STATUS, 0, 512, false).unwrap();
        u16::from_le_bytes([p[2], p[3]])
    };
    read_lbas(&mut q, 1, 0, 8, 512);
    assert_eq!(sstat(c), 1 << 8 | 1, "completed, nothing written since: Global Data Erased");
    write_lbas(&mut q, 1, 0, &pattern(512, 9), 512);
    assert_eq!(sstat(c), 1, "completed, user data written since");
}

#[test]
fn sanitize_with_unsupported_action_is_invalid_field() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    let data = pattern(4096, 5);
    write_lbas(&mut q, 1, 0, &data, 512);
    // 0, 5-7 reserved; 3 overwrite and 4 crypto erase not supported by SANICAP.
    for action in [0u8, 3, 4, 5, 6, 7] {
        assert_status(&raw(c, &cmd::sanitize(action)), Status::INVALID_FIELD, true);
    }
    assert!(read_lbas(&mut q, 1, 0, 8, 512) == data, "a refused sanitize erases nothing");
    let status = c.get_log_page(lid::SANITIZE_STATUS, 0, 512, false).unwrap();
    assert_eq!(&status[2..4], &[0, 0]);
}

// ---------------------------------------------------------------------------------------
// Abort (§5.1)
// ---------------------------------------------------------------------------------------

#[test]
fn abort_of_an_outstanding_aer_completes_the_request_and_reports_it_aborted() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let cid = c.submit_aer().unwrap();
    assert_eq!(c.outstanding_aers(), 1);
    let a = raw(c, &cmd::abort(0, cid));
    assert_ok(&a);
    assert_eq!(a.cdw0() & 1, 0, "dword 0 bit 0 clear: the command was aborted");
    // The request completed (its completion preceded the Abort's) with an error status:
    // the driver forgot it and recorded no event. The driver does not expose the status
    // of a failed request; the controller posts Command Abort Requested (00/07).
    assert_eq!(c.outstanding_aers(), 0);
    assert_eq!(c.take_events(), Vec::<u32>::new());
    // The controller no longer holds it: an event waits for the next request.
    c.transport().write32(db(c, 50), 1);
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new());
    // Aborting the same CID again finds nothing.
    assert_eq!(raw(c, &cmd::abort(0, cid)).cdw0() & 1, 1);
    c.submit_aer().unwrap();
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_REGISTER]);
}

#[test]
fn abort_of_an_unknown_command_reports_not_aborted() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let q = c.create_qpair(QpairOptions::default()).unwrap();
    for (sqid, cid) in [(0u16, 0x4321u16), (q.qid(), 5), (q.qid(), 0xffff), (45, 0)] {
        let a = raw(c, &cmd::abort(sqid, cid));
        assert_ok(&a);
        assert_eq!(a.cdw0() & 1, 1, "SQID {sqid} CID {cid:#x}: dword 0 bit 0 set, not aborted");
    }
}

#[test]
fn abort_of_a_slow_read_completes_it_with_command_abort_requested() {
    let mut cfg = cfg();
    cfg.latency.set_io(0x02, Duration::from_millis(300), Duration::ZERO);
    let r = rig(cfg);
    let c = &r.ctrl;
    let mut q = c.create_qpair(QpairOptions::default()).unwrap();
    let buf = c.dma(512).unwrap();
    let reads = r.sim().stats().host_reads;
    let start = Instant::now();
    let cid = q.submit(&cmd::read(1, 0, 1), DataPtr::Prp(&buf), 77).unwrap();
    q.ring();
    // Wait until the controller holds the read (executed, completion not yet due).
    while r.sim().stats().host_reads == reads {
        assert!(start.elapsed() < Duration::from_millis(200), "the read was not fetched");
        std::thread::sleep(Duration::from_micros(100));
    }
    let a = raw(c, &cmd::abort(q.qid(), cid));
    assert_ok(&a);
    assert_eq!(a.cdw0() & 1, 0, "dword 0 bit 0 clear: the read was aborted");
    let mut got = None;
    while got.is_none() && start.elapsed() < Duration::from_millis(280) {
        q.poll(usize::MAX, |cpl| got = Some(*cpl));
    }
    let cpl = got.expect("the aborted read completes before its 300 ms latency");
    assert!(start.elapsed() < Duration::from_millis(280));
    assert_eq!((cpl.kind, cpl.cid(), cpl.ctx), (CplKind::Device, cid, 77));
    assert_eq!(cpl.cqe.sqid(), q.qid());
    assert_eq!(cpl.status().code(), Status::ABORT_REQUESTED.code());
    // Nothing else arrives for it, and the queue still works.
    assert_eq!(q.outstanding(), 0);
    assert_eq!(raw(c, &cmd::abort(q.qid(), cid)).cdw0() & 1, 1, "already completed");
    let wbuf = c.dma(512).unwrap();
    q.execute_ok(&cmd::write(1, 0, 1), DataPtr::Prp(&wbuf)).unwrap();
    assert_eq!(q.spurious_completions(), 0);
}

// ---------------------------------------------------------------------------------------
// Asynchronous Event Request limit (§5.2) and data pointers of admin commands (§4.2)
// ---------------------------------------------------------------------------------------

#[test]
fn aer_beyond_aerl_plus_one_is_asynchronous_event_request_limit_exceeded() {
    let r = rig(cfg());
    let c = &r.ctrl;
    assert_eq!(c.identify().aerl, 3);
    for _ in 0..4 {
        c.submit_aer().unwrap();
    }
    // Let the controller take all four.
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new());
    let e = c.admin_raw(&cmd::async_event_request(), DataPtr::None, Duration::from_millis(500)).expect("the fifth request completes at once");
    assert_eq!(e.status().code(), Status::AER_LIMIT_EXCEEDED.code());
    assert_eq!(c.outstanding_aers(), 4);
    // The four still report events.
    c.transport().write32(db(c, 50), 1);
    assert_eq!(wait_events(c, 1), vec![EVENT_INVALID_DOORBELL_REGISTER]);
    assert_eq!(c.outstanding_aers(), 3);
    // With one slot free a new request is accepted (it stays outstanding).
    c.submit_aer().unwrap();
    assert_eq!(events_within(c, QUIET), Vec::<u32>::new());
    assert_eq!(c.outstanding_aers(), 4);
}

#[test]
fn admin_command_with_sgl_data_pointer_is_invalid_field() {
    let r = rig(cfg());
    let c = &r.ctrl;
    let buf = c.dma(4096).unwrap();
    for psdt in [Psdt::SglContiguousMeta, Psdt::SglMetaSgl, Psdt::Reserved] {
        let mut s = cmd::identify(cns::CONTROLLER, 0);
        s.set_psdt(psdt);
        buf.fill(0, 4096, 0);
        assert_status(&raw_data(c, &s, &buf), Status::INVALID_FIELD, true);
        assert!(buf.to_vec().iter().all(|&b| b == 0), "{psdt:?}: no data transferred");
        let mut s = cmd::get_features(fid::ARBITRATION, Select::Current);
        s.set_psdt(psdt);
        assert_status(&raw(c, &s), Status::INVALID_FIELD, true);
    }
    // The same command with PRPs works.
    assert_ok(&raw_data(c, &cmd::identify(cns::CONTROLLER, 0), &buf));
    assert_eq!(nvplan::nvme::IdentifyController::from_bytes(&buf.to_vec()).serial(), c.identify().serial());
}
