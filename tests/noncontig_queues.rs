//! I/O queues in physically non-contiguous memory (NVMe 1.4 §4.1.2, §5.3, §5.4): Create
//! I/O CQ/SQ with PC = 0 and a PRP list of the queue's pages in PRP1. The pages here are
//! separate DMA regions (never adjacent) listed out of allocation order, so every page
//! boundary of the queue is a jump in memory.

mod common;

use std::time::Duration;

use common::{Rig, pattern, rig};
use nvplan::metamode::{IoCq, IoSq, MetaError, Prp, PrpList};
use nvplan::nvme::{Cqe, Sqe, Status, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig};

const T: Duration = Duration::from_secs(20);
const PAGE: usize = 4096;

fn sim(mqes: u32) -> Rig {
    rig(SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], max_queue_entries: mqes, ..Default::default() })
}

/// `n` separate pages, and a PRP list naming them in reverse order of allocation.
fn pages(r: &Rig, n: usize) -> (PrpList, Vec<Prp>) {
    let mut v: Vec<Prp> = (0..n).map(|_| Prp::new(&r.ctrl, PAGE).unwrap()).collect();
    v.reverse();
    let list = PrpList::new(&r.ctrl).unwrap();
    for (i, p) in v.iter().enumerate() {
        list.set_buffer(i, p).unwrap();
    }
    (list, v)
}

fn rejected(r: Result<impl std::fmt::Debug, MetaError>) -> Status {
    match r {
        Err(MetaError::Rejected { cqe, .. }) => cqe.status(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn cap_cqr_is_clear() {
    let r = sim(1024);
    assert!(!r.ctrl.cap().cqr(), "CAP.CQR = 0: queues need not be physically contiguous");
}

#[test]
fn writes_and_reads_through_300_entry_queues_over_several_passes() {
    let r = sim(1024);
    let c = &r.ctrl;
    // 300 CQEs: 4800 bytes, 2 pages; 300 SQEs: 19200 bytes, 5 pages.
    let (cql, cqp) = pages(&r, 2);
    let (sql, sqp) = pages(&r, 5);
    let mut cq = IoCq::with_pages(c, 1, 300, &cql, cqp, 0, false).unwrap();
    let mut sq = IoSq::with_pages(c, 1, 300, &sql, sqp, 1, 0).unwrap();
    let batch = 50usize;
    let wbuf = c.dma(batch * 512).unwrap();
    let rbuf = c.dma(batch * 512).unwrap();
    let mut cid = 0u16;
    let mut head = 0u32;
    // 8 rounds of 50 writes and 50 reads: 800 commands, the SQ and CQ wrap twice or more,
    // every phase tag flip and page boundary is crossed.
    for round in 0..8u64 {
        for write in [true, false] {
            let data = pattern(batch * 512, round + 1);
            if write {
                wbuf.write(0, &data);
            }
            let buf = if write { &wbuf } else { &rbuf };
            for k in 0..batch {
                let p = Prp::from_mem(buf.clone(), k * 512, 512);
                sq.rw_prps(write, cid, 1, round * batch as u64 + k as u64, 1, p.addr(), 0).unwrap();
                cid = cid.wrapping_add(1);
                sq.set_tail((sq.tail() + 1) % 300);
            }
            let got = cq.waitdone(batch, T).unwrap();
            for (i, e) in got.iter().enumerate() {
                assert!(e.status().is_success(), "round {round} write {write} #{i}: {e:?}");
                assert_eq!(e.sqid(), 1);
            }
            let mut cids: Vec<u16> = got.iter().map(Cqe::cid).collect();
            cids.sort_unstable();
            assert_eq!(cids, ((cid - batch as u16)..cid).collect::<Vec<_>>());
            assert_eq!(got.last().unwrap().sqhd() as u32, sq.tail(), "SQ head follows the tail");
            head = (head + batch as u32) % 300;
            cq.set_head(head);
            if !write {
                let mut back = vec![0u8; batch * 512];
                rbuf.read(0, &mut back);
                assert_eq!(back, data, "round {round}");
            }
        }
    }
    // The host's view of the queues: slot 299 lies on the last page of each.
    assert_eq!(sq.entry(299).unwrap().opcode(), 2);
    assert!(cq.entry(299).is_ok());
    sq.delete().unwrap();
    cq.delete().unwrap();
}

#[test]
fn a_list_over_two_pages_chains_through_its_last_entry() {
    // 32832 SQEs fill 513 pages: 511 in the first list page, its last entry points to the
    // second list page with the other two (§4.3, as for data).
    let r = sim(65536);
    let c = &r.ctrl;
    let n = 513 * PAGE / 64;
    let mem = c.dma(513 * PAGE).unwrap();
    let mut pg: Vec<Prp> = (0..513).map(|i| Prp::from_mem(mem.clone(), (512 - i) * PAGE, PAGE)).collect();
    let list = PrpList::new(c).unwrap();
    let next = PrpList::new(c).unwrap();
    for (i, p) in pg.iter().take(511).enumerate() {
        list.set_buffer(i, p).unwrap();
    }
    list.chain(511, &next).unwrap();
    next.set_buffer(0, &pg[511]).unwrap();
    next.set_buffer(1, &pg[512]).unwrap();
    let cqn = 4096u32;
    let mut cq = IoCq::new(c, 1, cqn, Prp::new(c, cqn as usize * 16).unwrap()).unwrap();
    let mut sq = IoSq::with_pages(c, 1, n as u32, &list, std::mem::take(&mut pg), 1, 0).unwrap();
    for slot in 0..n {
        let mut f = cmd::flush(1);
        f.set_cid(slot as u16);
        sq.set(slot, &f).unwrap();
    }
    let mut seen = vec![false; n];
    let (mut done, mut head) = (0usize, 0u32);
    while done < n {
        let k = (n - done).min(2048);
        sq.set_tail(((done + k) % n) as u32);
        for e in cq.waitdone(k, T).unwrap() {
            assert!(e.status().is_success(), "{e:?}");
            // CIDs are slot numbers (n < 2^16).
            seen[e.cid() as usize] = true;
        }
        done += k;
        head = (head + k as u32) % cqn;
        cq.set_head(head);
    }
    assert!(seen.iter().all(|&s| s), "every slot, those behind the chain included, was fetched");
    sq.delete().unwrap();
    cq.delete().unwrap();
}

#[test]
fn misaligned_list_entries_and_list_pointer_are_invalid_prp_offset() {
    let r = sim(1024);
    let c = &r.ctrl;
    let want = |s: Status| {
        assert!(s.same_code(Status::INVALID_PRP_OFFSET), "{s:?}");
        assert!(s.dnr());
    };
    // An entry with an offset (§5.3: "the controller should return an error of PRP
    // Offset Invalid").
    let (list, p) = pages(&r, 2);
    list.set(1, p[1].addr() + 0x40).unwrap();
    want(rejected(IoCq::with_pages(c, 1, 300, &list, p.clone(), 0, false)));
    let (sql, sqp) = pages(&r, 5);
    sql.set(3, sqp[3].addr() + 8).unwrap();
    let (okl, okp) = pages(&r, 2);
    let cq = IoCq::with_pages(c, 1, 300, &okl, okp, 0, false).unwrap();
    want(rejected(IoSq::with_pages(c, 1, 300, &sql, sqp.clone(), 1, 0)));
    // The list pointer itself must be page aligned.
    let mut off = PrpList::new(c).unwrap();
    off.set_offset(0x100);
    want(rejected(IoSq::with_pages(c, 2, 300, &off, sqp, 1, 0)));
    // Only the entries the queue needs are read: a bad entry after them is not looked at.
    let (l2, p2) = pages(&r, 5);
    l2.set(5, 0x123).unwrap();
    let sq = IoSq::with_pages(c, 3, 300, &l2, p2, 1, 0).unwrap();
    sq.delete().unwrap();
    // A list outside mapped memory: the controller cannot read it.
    let mut s: Sqe = cmd::create_io_cq(4, 16, 0x42_0000_0000, 0, false);
    s.dw[11] &= !1;
    let e = c.admin_raw(&s, nvplan::driver::DataPtr::None, T).unwrap();
    assert!(e.status().same_code(Status::DATA_TRANSFER_ERROR), "{e:?}");
    cq.delete().unwrap();
}
