//! Metamode from Rust: each example of PyNVMe3's IO models section 2 (the read flow by hand
//! and with the helper, 2.1 a PRP list with offsets, 2.2 three SQs on one CQ, 2.3
//! conflicting CIDs, 2.4 an invalid doorbell raising an asynchronous event), then what
//! users of raw queues ask for: phase tags over several passes, SQ head wrap, queues of
//! two entries, a CQ shared by more SQs than it has entries, reserved fields, and PRPs
//! outside mapped memory.

mod common;

use std::time::Duration;

use common::{Rig, pattern, rig};
use nvplan::metamode::{IoCq, IoSq, MetaError, Prp, PrpList, SglSegment, aer, wait_events};
use nvplan::nvme::sgl::SglDescriptor;
use nvplan::nvme::sqe::Psdt;
use nvplan::nvme::{Cqe, Sqe, Status, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig};

const T: Duration = Duration::from_secs(5);
/// Asynchronous event: error, Invalid Doorbell Write Value, Error Information log (§5.2).
const EVENT_INVALID_DOORBELL_VALUE: u32 = 0x0001_0100;

fn sim(lba: u32) -> Rig {
    rig(SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, lba)], ..Default::default() })
}

/// `cq = IOCQ(nvme0, id, n, PRP(n*16)); sq = IOSQ(nvme0, id, n, PRP(n*64), cq=cq)`.
fn pair(r: &Rig, id: u16, n: u32) -> (IoCq, IoSq) {
    let c = &r.ctrl;
    let cq = IoCq::new(c, id, n, Prp::new(c, n as usize * 16).unwrap()).unwrap();
    let sq = IoSq::new(c, id, n, Prp::new(c, n as usize * 64).unwrap(), &cq).unwrap();
    (cq, sq)
}

/// Writes `data` at `lba` through the driver's own queue pair, for reads to find.
fn put(r: &Rig, lba: u64, data: &[u8]) {
    let ns = r.ctrl.namespace(1).unwrap();
    let buf = r.ctrl.dma(data.len()).unwrap();
    buf.write(0, data);
    let mut q = r.ctrl.create_qpair(Default::default()).unwrap();
    let nlb = (data.len() / ns.lba_size()) as u32;
    q.execute_ok(&cmd::write(1, lba, nlb), nvplan::driver::DataPtr::Prp(&buf)).unwrap();
}

fn ok(e: &Cqe) {
    assert!(e.status().is_success(), "{e:?}");
}

#[test]
fn seed_read_flow_by_hand_reads_lba_0_through_a_hand_written_sqe() {
    let r = sim(512);
    let data = pattern(512, 1);
    put(&r, 0, &data);
    let (mut cq, mut sq) = pair(&r, 1, 10);
    // Step 1: the host writes the command into an SQ entry.
    let mut cmd_read = Sqe::new(2, 1);
    cmd_read.set_cid(0);
    let buf = Prp::new(&r.ctrl, 4096).unwrap();
    cmd_read.set_prp1(buf.addr());
    sq.set(0, &cmd_read).unwrap();
    // Step 2: the SQ tail doorbell.
    sq.set_tail(1);
    // Step 7: the completion; step 8: the CQ head doorbell.
    let e = cq.wait_pbit(cq.head() as usize, true, T).unwrap();
    cq.set_head(1);
    ok(&e);
    assert_eq!(cq.entry(0).unwrap(), e);
    assert_eq!((e.cid(), e.sqid(), e.sqhd()), (0, 1, 1));
    assert_eq!(buf.read(0, 512).unwrap(), data);
    sq.delete().unwrap();
    cq.delete().unwrap();
}

#[test]
fn seed_read_helper_and_waitdone_give_the_same_completion() {
    let r = sim(512);
    let data = pattern(512, 2);
    put(&r, 0, &data);
    let (mut cq, mut sq) = pair(&r, 1, 10);
    let buf = Prp::new(&r.ctrl, 4096).unwrap();
    let sqe = sq.read(0, 1, 0, 1, &buf).unwrap();
    assert_eq!((sqe.opcode(), sqe.cid(), sqe.prp1()), (2, 0, buf.addr()));
    assert_eq!(sq.entry(0).unwrap(), sqe, "placed at the tail slot, not yet rung");
    sq.set_tail(1);
    let done = cq.waitdone(1, T).unwrap();
    cq.set_head(1);
    ok(&done[0]);
    assert_eq!(cq.entry(0).unwrap().status(), Status::SUCCESS);
    assert_eq!(buf.read(0, 512).unwrap(), data);
}

#[test]
fn seed_2_1_prp_list_with_offsets_scatters_the_read_where_the_entries_point() {
    let r = sim(4096);
    let data = pattern(8192, 3);
    put(&r, 0, &data);
    let (mut cq, mut sq) = pair(&r, 1, 10);
    // PRP1 at offset 0x10, the list at offset 0x20 with 8 entries of patterned pages.
    let mut buf = Prp::with_pattern(&r.ctrl, 4096, 32, 0xffff_ffff).unwrap();
    buf.set_offset(0x10);
    buf.set_size(4096 - 0x10);
    let mut list = PrpList::new(&r.ctrl).unwrap();
    list.set_offset(0x20);
    let pages: Vec<Prp> = (0..8).map(|_| Prp::with_pattern(&r.ctrl, 4096, 32, 0xffff_ffff).unwrap()).collect();
    for (i, p) in pages.iter().enumerate() {
        list.set_buffer(i, p).unwrap();
    }
    let mut c = Sqe::new(2, 1);
    c.set_prp1(buf.addr());
    c.set_prp2(list.addr());
    c.dw[12] = 1; // two LBAs: 8 KiB
    sq.set(0, &c).unwrap();
    sq.set_tail(1);
    let e = cq.wait_pbit(0, true, T).unwrap();
    cq.set_head(1);
    ok(&e);
    // 4080 bytes land after PRP1's offset, the rest in the first two listed pages.
    assert_eq!(buf.data().unwrap(), data[..4080]);
    assert_eq!(pages[0].read(0, 4096).unwrap(), data[4080..8176]);
    assert_eq!(pages[1].read(0, 16).unwrap(), data[8176..]);
    assert_eq!(pages[1].read(16, 4).unwrap(), [0xff; 4], "nothing past the transfer");
    assert_eq!(buf.read(0, 0x10).unwrap(), [0xff; 0x10], "nothing before PRP1's offset");
}

#[test]
fn seed_2_2_three_sqs_on_one_cq_complete_in_the_order_they_are_rung() {
    let r = sim(512);
    let c = &r.ctrl;
    let mut cq = IoCq::new(c, 1, 10, Prp::new(c, 160).unwrap()).unwrap();
    let mut sq1 = IoSq::new(c, 1, 10, Prp::new(c, 640).unwrap(), &cq).unwrap();
    let mut sq2 = IoSq::new(c, 2, 10, Prp::new(c, 640).unwrap(), &cq).unwrap();
    let mut sq3 = IoSq::new(c, 3, 10, Prp::new(c, 640).unwrap(), &cq).unwrap();
    let mut cmd_write = Sqe::new(1, 1);
    cmd_write.set_cid(1);
    cmd_write.dw[12] = 1 << 30; // FUA
    let buf2 = Prp::new(c, 4096).unwrap();
    buf2.write(10, b"hello world").unwrap();
    cmd_write.set_prp1(buf2.addr());
    let (buf1, buf3) = (Prp::new(c, 4096).unwrap(), Prp::new(c, 4096).unwrap());
    let mut cmd_read1 = Sqe::new(2, 1);
    cmd_read1.set_prp1(buf1.addr());
    cmd_read1.set_cid(2);
    let mut cmd_read2 = Sqe::new(2, 1);
    cmd_read2.set_prp1(buf3.addr());
    cmd_read2.set_cid(3);
    sq1.set(0, &cmd_write).unwrap();
    sq2.set(0, &cmd_read1).unwrap();
    sq3.set(0, &cmd_read2).unwrap();
    sq1.set_tail(1);
    cq.wait_pbit(cq.head() as usize, true, T).unwrap();
    cq.set_head(1);
    sq2.set_tail(1);
    cq.wait_pbit(cq.head() as usize, true, T).unwrap();
    cq.set_head(2);
    sq3.set_tail(1);
    cq.wait_pbit(cq.head() as usize, true, T).unwrap();
    cq.set_head(3);
    let got: Vec<(u16, u16, u16)> = (0..3).map(|i| cq.entry(i).unwrap()).inspect(ok).map(|e| (e.sqid(), e.cid(), e.sqhd())).collect();
    assert_eq!(got, [(1, 1, 1), (2, 2, 1), (3, 3, 1)]);
    for b in [&buf1, &buf3] {
        assert_eq!(b.read(10, 11).unwrap(), b"hello world");
    }
}

#[test]
fn seed_2_3_two_commands_with_the_same_cid_both_complete_with_that_cid() {
    let r = sim(512);
    let (mut cq, mut sq) = pair(&r, 1, 10);
    let (buf1, buf2) = (Prp::new(&r.ctrl, 4096).unwrap(), Prp::new(&r.ctrl, 4096).unwrap());
    for (slot, buf) in [&buf1, &buf2].into_iter().enumerate() {
        let mut c = Sqe::new(2, 1);
        c.set_prp1(buf.addr());
        c.set_cid(1);
        sq.set(slot, &c).unwrap();
    }
    sq.set_tail(2);
    let e = cq.wait_pbit(1, true, T).unwrap();
    cq.set_head(2);
    // The simulator executes both (the specification leaves a duplicate CID to the host's
    // care, §4.2): the second completion names CID 1 and slot 1's SQ head.
    ok(&e);
    assert_eq!((e.cid(), e.sqhd()), (1, 2));
    assert_eq!(cq.entry(0).unwrap().cid(), 1);
}

#[test]
fn seed_2_4_sq_tail_beyond_the_queue_raises_an_invalid_doorbell_event() {
    let r = sim(512);
    let c = &r.ctrl;
    aer(c).unwrap();
    let cq = IoCq::new(c, 4, 16, Prp::new(c, 16 * 16).unwrap()).unwrap();
    let mut sq = IoSq::to_cq(c, 4, 16, Prp::new(c, 16 * 64).unwrap(), cq.id()).unwrap();
    sq.set_tail(20);
    assert_eq!(wait_events(c, 1, Duration::from_millis(500)), [EVENT_INVALID_DOORBELL_VALUE]);
    // Get Features (Number of Queues) still works, and reading the error log clears the
    // event (§5.2).
    c.get_features(7, 0).unwrap();
    c.error_log(1).unwrap();
    // The event is unmasked again: the next invalid value raises another.
    aer(c).unwrap();
    sq.set_tail(17);
    assert_eq!(wait_events(c, 1, Duration::from_millis(500)), [EVENT_INVALID_DOORBELL_VALUE]);
    sq.delete().unwrap();
    cq.delete().unwrap();
}

#[test]
fn phase_tag_inverts_on_every_pass_through_the_cq() {
    let r = sim(512);
    let (mut cq, mut sq) = pair(&r, 1, 3);
    // Seven flushes through a 3-entry CQ: passes with phase 1, 0, 1.
    for i in 0..7u32 {
        sq.flush(i as u16, 1).unwrap();
        sq.set_tail((sq.tail() + 1) % 3);
        let slot = (i % 3) as usize;
        let phase = (i / 3) % 2 == 0;
        let e = cq.wait_pbit(slot, phase, T).unwrap();
        assert_eq!((e.cid(), e.phase()), (i as u16, phase), "completion {i}");
        cq.set_head((i + 1) % 3);
    }
}

#[test]
fn sq_head_in_completions_wraps_with_the_queue() {
    let r = sim(512);
    let (mut cq, mut sq) = pair(&r, 1, 4);
    let mut heads = Vec::new();
    for i in 0..6u16 {
        sq.flush(i, 1).unwrap();
        sq.set_tail((sq.tail() + 1) % 4);
        let e = cq.waitdone(1, T).unwrap()[0];
        cq.set_head((cq.head() + 1) % 4);
        heads.push(e.sqhd());
    }
    assert_eq!(heads, [1, 2, 3, 0, 1, 2]);
}

#[test]
fn queues_of_the_minimum_size_two_carry_one_command_at_a_time() {
    let r = sim(512);
    let (mut cq, mut sq) = pair(&r, 1, 2);
    for i in 0..4u16 {
        sq.flush(i, 1).unwrap();
        sq.set_tail((sq.tail() + 1) % 2);
        let e = cq.waitdone(1, T).unwrap()[0];
        ok(&e);
        assert_eq!(e.cid(), i);
        cq.set_head((cq.head() + 1) % 2);
    }
    // A queue of one entry is refused: Invalid Queue Size (§5.3).
    let c = &r.ctrl;
    match IoCq::new(c, 2, 1, Prp::new(c, 16).unwrap()) {
        Err(MetaError::Rejected { cqe, .. }) => assert!(cqe.status().same_code(Status::INVALID_QUEUE_SIZE), "{cqe:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cq_shared_by_more_sqs_than_entries_holds_completions_until_the_head_moves() {
    let r = sim(512);
    let c = &r.ctrl;
    // Two CQ entries hold one completion (a full queue keeps one slot empty, §4.1).
    let mut cq = IoCq::new(c, 1, 2, Prp::new(c, 32).unwrap()).unwrap();
    let mut sqs: Vec<IoSq> = (1..=3).map(|q| IoSq::new(c, q, 2, Prp::new(c, 128).unwrap(), &cq).unwrap()).collect();
    for (i, sq) in sqs.iter_mut().enumerate() {
        sq.flush(i as u16, 1).unwrap();
        sq.set_tail(1);
    }
    let first = cq.waitdone(1, T).unwrap()[0];
    // The CQ is full until the head doorbell frees the slot.
    std::thread::sleep(Duration::from_millis(20));
    assert!(!cq.entry(1).unwrap().phase(), "no second completion into a full CQ");
    let mut sqids = vec![first.sqid()];
    for _ in 0..2 {
        cq.set_head((cq.head() + 1) % 2);
        sqids.push(cq.waitdone(1, T).unwrap()[0].sqid());
    }
    sqids.sort();
    assert_eq!(sqids, [1, 2, 3]);
}

#[test]
fn reserved_fields_set_in_an_sqe_are_ignored_by_the_controller() {
    let r = sim(512);
    let data = pattern(512, 4);
    put(&r, 7, &data);
    let (mut cq, mut sq) = pair(&r, 1, 4);
    let buf = Prp::new(&r.ctrl, 4096).unwrap();
    let mut c = sq.read(5, 1, 7, 1, &buf).unwrap();
    c.dw[2] = 0xdead_beef; // CDW2-3 are reserved for Read (§6.9)
    c.dw[0] |= 0b1111 << 10; // CDW0 bits 13:10 are reserved
    sq.set(0, &c).unwrap();
    sq.set_tail(1);
    let e = cq.waitdone(1, T).unwrap()[0];
    cq.set_head(1);
    ok(&e);
    assert_eq!(buf.read(0, 512).unwrap(), data);
}

#[test]
fn prp_outside_mapped_memory_completes_with_data_transfer_error() {
    let r = sim(512);
    let (mut cq, mut sq) = pair(&r, 1, 4);
    let mut c = Sqe::new(2, 1);
    c.set_cid(9);
    c.set_prp1(0x7fff_0000_0000);
    sq.set(0, &c).unwrap();
    sq.set_tail(1);
    let e = cq.waitdone(1, T).unwrap()[0];
    cq.set_head(1);
    assert_eq!((e.cid(), e.status()), (9, Status::DATA_TRANSFER_ERROR), "{e:?}");
    // The controller goes on.
    let buf = Prp::new(&r.ctrl, 512).unwrap();
    sq.read(10, 1, 0, 1, &buf).unwrap();
    sq.set_tail(2);
    ok(&cq.waitdone(1, T).unwrap()[0]);
}

#[test]
fn hand_built_sgl_segments_chain_to_a_last_segment_with_a_bit_bucket() {
    let r = sim(512);
    let data = pattern(2048, 5);
    put(&r, 0, &data);
    let (mut cq, mut sq) = pair(&r, 1, 4);
    let c = &r.ctrl;
    let (a, b) = (Prp::new(c, 512).unwrap(), Prp::new(c, 1024).unwrap());
    // Segment: [data 512 → a, segment → last]; last: [bit bucket 512, data 1024 → b].
    let (seg, last) = (SglSegment::new(c, 2).unwrap(), SglSegment::new(c, 2).unwrap());
    last.set(0, SglDescriptor::bit_bucket(512)).unwrap();
    last.set(1, SglDescriptor::data_block(b.addr(), 1024)).unwrap();
    seg.set(0, SglDescriptor::data_block(a.addr(), 512)).unwrap();
    seg.set(1, last.last_segment(2)).unwrap();
    let mut s = cmd::read(1, 0, 4);
    s.set_cid(3);
    s.set_psdt(Psdt::SglContiguousMeta);
    s.set_sgl1(seg.segment(2));
    sq.set(0, &s).unwrap();
    sq.set_tail(1);
    let e = cq.waitdone(1, T).unwrap()[0];
    cq.set_head(1);
    ok(&e);
    assert_eq!(a.read(0, 512).unwrap(), data[..512]);
    assert_eq!(b.read(0, 1024).unwrap(), data[1024..], "the bit bucket skipped LBA 1");
}

#[test]
fn metamode_queue_ids_are_kept_from_the_drivers_queue_pairs_until_deleted() {
    let r = sim(512);
    let c = &r.ctrl;
    let (cq, sq) = pair(&r, 1, 4);
    let q = c.create_qpair(Default::default()).unwrap();
    assert_ne!(q.qid(), 1, "the driver's queue pair takes another id");
    drop(q);
    sq.delete().unwrap();
    cq.delete().unwrap();
    let q = c.create_qpair(Default::default()).unwrap();
    assert_eq!(q.qid(), 1, "free again");
}

#[test]
fn creating_a_queue_with_an_id_in_use_returns_the_controllers_error() {
    let r = sim(512);
    let c = &r.ctrl;
    let (cq, _sq) = pair(&r, 1, 4);
    match IoCq::new(c, 1, 4, Prp::new(c, 64).unwrap()) {
        Err(MetaError::Rejected { cqe, .. }) => assert!(cqe.status().same_code(Status::INVALID_QUEUE_ID), "{cqe:?}"),
        other => panic!("{other:?}"),
    }
    // Deleting a CQ that an SQ still uses is refused (§5.5): Invalid Queue Deletion.
    match cq.delete() {
        Err(MetaError::Rejected { cqe, .. }) => assert!(cqe.status().same_code(Status::INVALID_QUEUE_DELETION), "{cqe:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn waitdone_times_out_naming_what_it_waited_for() {
    let r = sim(512);
    let (mut cq, _sq) = pair(&r, 1, 4);
    let e = cq.waitdone(1, Duration::from_millis(20)).unwrap_err();
    assert!(e.to_string().contains("0 of 1 completions"), "{e}");
}

#[test]
fn prp_lists_chain_through_the_last_entry_of_a_page() {
    // A list that starts 16 bytes before the end of its page holds two entries. A transfer
    // of four pages needs three after PRP1, more than fit: the first entry points to data,
    // the page's last entry to the next list, which holds the other two (§4.3).
    let r = sim(4096);
    let data = pattern(4 * 4096, 6);
    put(&r, 0, &data);
    let (mut cq, mut sq) = pair(&r, 1, 4);
    let c = &r.ctrl;
    let first = Prp::new(c, 4096).unwrap();
    let pages: Vec<Prp> = (0..3).map(|_| Prp::new(c, 4096).unwrap()).collect();
    let mut list = PrpList::new(c).unwrap();
    list.set_offset(4096 - 16);
    let next = PrpList::new(c).unwrap();
    list.set_buffer(0, &pages[0]).unwrap();
    list.chain(1, &next).unwrap();
    next.set_buffer(0, &pages[1]).unwrap();
    next.set_buffer(1, &pages[2]).unwrap();
    assert_eq!(list.get(1).unwrap(), next.addr());
    let mut s = cmd::read(1, 0, 4);
    s.set_cid(7);
    s.set_prp1(first.addr());
    s.set_prp2(list.addr());
    sq.set(0, &s).unwrap();
    sq.set_tail(1);
    let e = cq.waitdone(1, T).unwrap()[0];
    cq.set_head(1);
    ok(&e);
    assert!(first.read(0, 4096).unwrap() == data[..4096], "PRP1");
    for (k, p) in pages.iter().enumerate() {
        assert!(p.read(0, 4096).unwrap() == data[(k + 1) * 4096..(k + 2) * 4096], "page {} of the transfer", k + 1);
    }
}

#[test]
fn queues_over_memory_the_test_holds_with_every_create_field_and_both_prps() {
    // As the Python front does: the queue and data memory is the caller's (a `Buffer`),
    // the Create commands carry PC, QPRIO and NVMSETID as given, Read carries PRP1 and PRP2.
    let r = sim(512);
    let c = &r.ctrl;
    let data = pattern(4096, 7);
    put(&r, 0, &data);
    let cq_mem = c.dma(4096).unwrap();
    let mut cq = IoCq::create(c, 2, 4, Prp::from_mem(cq_mem.clone(), 0, 64), true, 0, false).unwrap();
    let mut sq = IoSq::create(c, 2, 4, Prp::from_mem(c.dma(4096).unwrap(), 0, 256), cq.id(), true, 2, 0).unwrap();
    // A transfer of 8 LBAs from 0x800 into the first page runs into the second: PRP2.
    let page = c.dma(8192).unwrap();
    let first = Prp::from_mem(page.clone(), 0x800, 4096 - 0x800);
    let second = Prp::from_mem(page.slice(4096, 4096), 0, 4096);
    let s = sq.rw_prps(false, 7, 1, 0, 8, first.addr(), second.addr()).unwrap();
    assert_eq!((s.cid(), s.nlb(), s.prp1()), (7, 8, first.addr()));
    sq.set_tail(1);
    let e = cq.wait_pbit(0, true, T).unwrap();
    cq.set_head(1);
    ok(&e);
    assert_eq!(e.cid(), 7);
    let mut got = vec![0u8; 4096];
    page.read(0x800, &mut got);
    assert_eq!(got, data);
    // The CQE is in the caller's memory.
    assert_eq!(cq_mem.read_u32(12) as u16, 7);
    // A queue that is not physically contiguous: PRP1 is a list of its pages (CAP.CQR = 0,
    // §5.3); tests/noncontig_queues.rs does I/O through such queues.
    let list = PrpList::new(c).unwrap();
    let qpage = Prp::new(c, 4096).unwrap();
    list.set_buffer(0, &qpage).unwrap();
    IoCq::with_pages(c, 3, 4, &list, vec![qpage], 0, false).unwrap().delete().unwrap();
    sq.delete().unwrap();
    cq.delete().unwrap();
}
