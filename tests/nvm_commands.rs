//! NVM command set behaviour of the simulated controller, seen through the host driver:
//! Write Zeroes, Dataset Management, Write Uncorrectable, Compare, Verify, Flush and FUA;
//! every fault injection action; the latency model; completion queue wrap-around under
//! load; weighted round robin; 4 KiB LBAs with several namespaces; file-backed media.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Rig, media, pattern, rig, rig_with};
use nvplan::driver::{ArbitrationMechanism, Completion, ControllerOptions, CplKind, DataPtr, QPair, QpairOptions};
use nvplan::nvme::features::{Arbitration, fid};
use nvplan::nvme::identify::{DeallocatedRead, oncs};
use nvplan::nvme::opcode::{AdminOpcode, NvmOpcode};
use nvplan::nvme::{Status, cmd};
use nvplan::sim::{Backing, FaultAction, FaultRule, NamespaceConfig, SimConfig};

const LBA: usize = 512;
const READ: u8 = 0x02;
const WRITE: u8 = 0x01;

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], ..Default::default() }
}

/// Status type and code of a completion the controller posted (CRD, More and DNR masked).
fn code(c: &Completion) -> Status {
    assert_eq!(c.kind, CplKind::Device, "the controller posted a completion");
    Status::from_raw(c.status().code())
}

/// A queue pair with byte-level helpers over one namespace at a time.
struct Io {
    q: QPair,
}

impl Io {
    fn new(r: &Rig) -> Io {
        Io { q: r.ctrl.create_qpair(QpairOptions::default()).unwrap() }
    }

    fn lba_size(&self, nsid: u32) -> usize {
        self.q.controller().namespace(nsid).unwrap().lba_size()
    }

    fn run(&mut self, sqe: &nvplan::nvme::Sqe, data: &[u8]) -> Completion {
        if data.is_empty() {
            return self.q.execute(sqe, DataPtr::None).unwrap();
        }
        let buf = self.q.controller().dma(data.len()).unwrap();
        buf.write(0, data);
        self.q.execute(sqe, DataPtr::Prp(&buf)).unwrap()
    }

    fn write_ns(&mut self, nsid: u32, lba: u64, data: &[u8]) {
        let nlb = (data.len() / self.lba_size(nsid)) as u32;
        let c = self.run(&cmd::write(nsid, lba, nlb), data);
        assert_eq!(code(&c), Status::SUCCESS, "write of {nlb} LBAs at {lba} to namespace {nsid}");
    }

    fn write(&mut self, lba: u64, data: &[u8]) {
        self.write_ns(1, lba, data);
    }

    /// Reads `nlb` LBAs; the data, or the failing status.
    fn try_read_ns(&mut self, nsid: u32, lba: u64, nlb: usize) -> Result<Vec<u8>, Status> {
        let buf = self.q.controller().dma(nlb * self.lba_size(nsid)).unwrap();
        let c = self.q.execute(&cmd::read(nsid, lba, nlb as u32), DataPtr::Prp(&buf)).unwrap();
        match code(&c) {
            Status::SUCCESS => Ok(buf.to_vec()),
            st => Err(st),
        }
    }

    fn read_ns(&mut self, nsid: u32, lba: u64, nlb: usize) -> Vec<u8> {
        self.try_read_ns(nsid, lba, nlb).unwrap_or_else(|st| panic!("read of {nlb} LBAs at {lba} of namespace {nsid} failed: {st}"))
    }

    fn try_read(&mut self, lba: u64, nlb: usize) -> Result<Vec<u8>, Status> {
        self.try_read_ns(1, lba, nlb)
    }

    fn read(&mut self, lba: u64, nlb: usize) -> Vec<u8> {
        self.read_ns(1, lba, nlb)
    }

    fn no_data(&mut self, sqe: &nvplan::nvme::Sqe) -> Completion {
        self.run(sqe, &[])
    }

    fn deallocate(&mut self, nsid: u32, ranges: &[(u64, u32)]) -> Completion {
        let list: Vec<u8> = ranges.iter().flat_map(|&(slba, nlb)| cmd::dsm_range(slba, nlb)).collect();
        self.run(&cmd::dsm_deallocate(nsid, ranges.len() as u32), &list)
    }
}

fn zeroes(nlb: usize) -> Vec<u8> {
    vec![0u8; nlb * LBA]
}

// ----- Write Zeroes and deallocation -----

#[test]
fn write_zeroes_clears_exactly_the_range_and_dlfeat_reports_zeroes() {
    let r = rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    assert_eq!(ns.id.dlfeat & 0b111, 0b001, "DLFEAT bits 2:0: deallocated blocks read 00h");
    assert_eq!(ns.id.deallocated_read_value(), DeallocatedRead::Zeroes);
    let want = oncs::COMPARE | oncs::WRITE_UNCORRECTABLE | oncs::DSM | oncs::WRITE_ZEROES | oncs::VERIFY;
    assert_eq!(r.ctrl.identify().oncs & want, want, "ONCS advertises the commands tested here");

    let mut io = Io::new(&r);
    let data = pattern(64 * LBA, 1);
    io.write(0, &data);
    // Partial 4 KiB pages at both ends (LBAs 3..15) and a run of whole pages (24..56).
    assert_eq!(code(&io.no_data(&cmd::write_zeroes(1, 3, 12))), Status::SUCCESS);
    assert_eq!(code(&io.no_data(&cmd::write_zeroes(1, 24, 32))), Status::SUCCESS);
    let got = io.read(0, 64);
    for lba in 0..64usize {
        let zeroed = (3..15).contains(&lba) || (24..56).contains(&lba);
        let want = if zeroed { &zeroes(1)[..] } else { &data[lba * LBA..(lba + 1) * LBA] };
        assert!(got[lba * LBA..(lba + 1) * LBA] == *want, "LBA {lba} (zeroed: {zeroed})");
    }
    assert!(media(&r, 1, 3, 12 * LBA) == zeroes(12), "the media holds zeroes");

    let nlba = ns.nlba();
    let c = io.no_data(&cmd::write_zeroes(1, nlba - 1, 2));
    assert_eq!(code(&c), Status::LBA_OUT_OF_RANGE);
    assert!(c.status().dnr());
}

#[test]
fn deallocated_and_never_written_lbas_read_zeroes_and_ranges_are_bounds_checked() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let nlba = r.ctrl.namespace(1).unwrap().nlba();
    let data = pattern(128 * LBA, 2);
    io.write(0, &data);
    // Never-written blocks read as DLFEAT says.
    assert_eq!(io.read(nlba - 8, 8), zeroes(8));
    assert_eq!(io.read(100_000, 16), zeroes(16));

    // Three ranges in one command, one of them page-aligned, one a single LBA.
    let c = io.deallocate(1, &[(8, 8), (40, 3), (64, 32)]);
    assert_eq!(code(&c), Status::SUCCESS);
    let got = io.read(0, 128);
    for lba in 0..128usize {
        let gone = (8..16).contains(&lba) || (40..43).contains(&lba) || (64..96).contains(&lba);
        let want = if gone { &zeroes(1)[..] } else { &data[lba * LBA..(lba + 1) * LBA] };
        assert!(got[lba * LBA..(lba + 1) * LBA] == *want, "LBA {lba} (deallocated: {gone})");
    }

    // A range past the end, alone or next to a valid one.
    for ranges in [&[(nlba - 4, 5)][..], &[(0, 1), (nlba, 1)][..], &[(u64::MAX, 1)][..]] {
        let c = io.deallocate(1, ranges);
        assert_eq!(code(&c), Status::LBA_OUT_OF_RANGE, "ranges {ranges:?}");
        assert!(c.status().dnr());
    }
    // The last LBA itself is in range.
    assert_eq!(code(&io.deallocate(1, &[(nlba - 1, 1)])), Status::SUCCESS);
    let c = io.deallocate(5, &[(0, 1)]);
    assert_eq!(code(&c), Status::INVALID_NAMESPACE);
}

// ----- Write Uncorrectable -----

#[test]
fn write_uncorrectable_fails_reads_and_verify_until_rewritten_zeroed_deallocated_or_healed() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let data = pattern(32 * LBA, 3);
    io.write(0, &data);
    let lba_data = |lba: usize| data[lba * LBA..(lba + 1) * LBA].to_vec();
    let media_errors = |r: &Rig| r.ctrl.smart_log().unwrap().media_errors();
    let before = media_errors(&r);

    assert_eq!(code(&io.no_data(&cmd::write_uncorrectable(1, 10, 4))), Status::SUCCESS);
    let mut failures = 0u128;
    for lba in 10..14u64 {
        assert_eq!(io.try_read(lba, 1), Err(Status::UNRECOVERED_READ_ERROR), "LBA {lba}");
        failures += 1;
    }
    // Any overlap fails the whole read; Verify and Compare fail the same way.
    assert_eq!(io.try_read(8, 3), Err(Status::UNRECOVERED_READ_ERROR));
    assert_eq!(io.try_read(13, 4), Err(Status::UNRECOVERED_READ_ERROR));
    assert_eq!(code(&io.no_data(&cmd::verify(1, 10, 4))), Status::UNRECOVERED_READ_ERROR);
    assert_eq!(code(&io.no_data(&cmd::verify(1, 0, 11))), Status::UNRECOVERED_READ_ERROR);
    assert_eq!(code(&io.run(&cmd::compare(1, 12, 1), &lba_data(12))), Status::UNRECOVERED_READ_ERROR);
    failures += 5;
    // Neighbours read and verify fine.
    assert_eq!(io.read(9, 1), lba_data(9));
    assert_eq!(io.read(14, 1), lba_data(14));
    assert_eq!(io.read(0, 10), data[..10 * LBA].to_vec());
    assert_eq!(code(&io.no_data(&cmd::verify(1, 14, 18))), Status::SUCCESS);
    assert_eq!(media_errors(&r) - before, failures, "SMART counts every unrecovered read error");

    // Rewriting LBA 10 clears its mark only.
    let fresh = pattern(LBA, 33);
    io.write(10, &fresh);
    assert_eq!(io.read(10, 1), fresh);
    assert_eq!(io.try_read(11, 1), Err(Status::UNRECOVERED_READ_ERROR));
    // Write Zeroes clears LBA 11, deallocation LBA 12.
    assert_eq!(code(&io.no_data(&cmd::write_zeroes(1, 11, 1))), Status::SUCCESS);
    assert_eq!(io.read(11, 1), zeroes(1));
    assert_eq!(code(&io.deallocate(1, &[(12, 1)])), Status::SUCCESS);
    assert_eq!(io.read(12, 1), zeroes(1));
    // LBA 13 is still marked until the drive "forgets" it: then the old data reads back.
    assert_eq!(io.try_read(13, 1), Err(Status::UNRECOVERED_READ_ERROR));
    r.sim().heal_uncorrectable(1, 13, 1);
    assert_eq!(io.read(13, 1), lba_data(13));
    assert_eq!(code(&io.no_data(&cmd::verify(1, 0, 32))), Status::SUCCESS);
    assert_eq!(media_errors(&r) - before, failures + 2);

    let nlba = r.ctrl.namespace(1).unwrap().nlba();
    assert_eq!(code(&io.no_data(&cmd::write_uncorrectable(1, nlba, 1))), Status::LBA_OUT_OF_RANGE);
}

// ----- Compare, Verify, Flush -----

#[test]
fn compare_succeeds_on_equal_data_and_fails_on_one_different_byte() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let data = pattern(8 * LBA, 4);
    io.write(100, &data);
    assert_eq!(code(&io.run(&cmd::compare(1, 100, 8), &data)), Status::SUCCESS);
    assert_eq!(code(&io.run(&cmd::compare(1, 102, 2), &data[2 * LBA..4 * LBA])), Status::SUCCESS);
    for at in [0usize, 1, LBA * 4 + 17, 8 * LBA - 1] {
        let mut other = data.clone();
        other[at] ^= 0x01;
        let c = io.run(&cmd::compare(1, 100, 8), &other);
        assert_eq!(code(&c), Status::COMPARE_FAILURE, "byte {at} differs");
        assert_eq!((c.status().sct(), c.status().sc()), (0x2, 0x85));
    }
    // Never-written blocks compare equal to zeroes (a real drive's may hold an earlier
    // run's data: they are zeroed first there).
    if !r.is_sim() {
        assert_eq!(code(&io.no_data(&cmd::write_zeroes(1, 5000, 2))), Status::SUCCESS);
    }
    assert_eq!(code(&io.run(&cmd::compare(1, 5000, 2), &zeroes(2))), Status::SUCCESS);
    assert_eq!(code(&io.run(&cmd::compare(1, 100, 1), &zeroes(1))), Status::COMPARE_FAILURE);
}

#[test]
fn verify_succeeds_on_written_data_and_rejects_ranges_beyond_the_namespace() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    io.write(0, &pattern(16 * LBA, 5));
    assert_eq!(code(&io.no_data(&cmd::verify(1, 0, 16))), Status::SUCCESS);
    let nlba = r.ctrl.namespace(1).unwrap().nlba();
    assert_eq!(code(&io.no_data(&cmd::verify(1, nlba - 1, 1))), Status::SUCCESS);
    for (slba, nlb) in [(nlba - 1, 2), (nlba, 1), (u64::MAX, 1)] {
        let c = io.no_data(&cmd::verify(1, slba, nlb));
        assert_eq!(code(&c), Status::LBA_OUT_OF_RANGE, "verify {nlb} at {slba}");
        assert!(c.status().dnr());
    }
    let beyond = r.ctrl.identify().nn + 1;
    assert_eq!(code(&io.no_data(&cmd::verify(beyond, 0, 1))), Status::INVALID_NAMESPACE);
}

#[test]
fn flush_accepts_all_namespaces_and_valid_nsids_and_rejects_invalid_ones() {
    let r = rig(SimConfig { namespaces: vec![NamespaceConfig::memory(16 << 20, 512), NamespaceConfig::memory(16 << 20, 512)], ..cfg() });
    let mut io = Io::new(&r);
    io.write_ns(1, 0, &pattern(LBA, 6));
    io.write_ns(2, 0, &pattern(LBA, 7));
    assert_eq!((r.sim().unflushed_chunks(1), r.sim().unflushed_chunks(2)), (1, 1));
    assert_eq!(code(&io.no_data(&cmd::flush(2))), Status::SUCCESS);
    assert_eq!((r.sim().unflushed_chunks(1), r.sim().unflushed_chunks(2)), (1, 0), "Flush of NSID 2 leaves namespace 1 alone");
    io.write_ns(2, 0, &pattern(LBA, 8));
    assert_eq!(code(&io.no_data(&cmd::flush(u32::MAX))), Status::SUCCESS);
    assert_eq!((r.sim().unflushed_chunks(1), r.sim().unflushed_chunks(2)), (0, 0), "Flush of FFFFFFFFh flushes every namespace");
    for nsid in [9, 3] {
        let c = io.no_data(&cmd::flush(nsid));
        assert_eq!(code(&c), Status::INVALID_NAMESPACE, "NSID {nsid}");
        assert!(c.status().dnr());
    }
}

#[test]
fn fua_write_sets_cdw12_bit_30_and_leaves_nothing_unflushed() {
    let mut sqe = cmd::write(1, 0, 8);
    sqe.set_io_flags(cmd::IO_FLAG_FUA);
    assert_eq!(sqe.dw[12], 1 << 30 | 7);
    assert!(sqe.fua());

    let r = rig(cfg());
    assert!(r.ctrl.identify().vwc_present(), "the default configuration has a volatile write cache");
    let mut io = Io::new(&r);
    // A plain write is cached until Flush.
    io.write(64, &pattern(16 * LBA, 10));
    assert_eq!(r.sim().unflushed_chunks(1), 2);
    assert_eq!(code(&io.no_data(&cmd::flush(1))), Status::SUCCESS);
    assert_eq!(r.sim().unflushed_chunks(1), 0);

    // FUA next to a cached write in the same 4 KiB chunk: the chunk still holds the
    // unflushed plain write.
    io.write(0, &pattern(LBA, 11));
    let fua_data = pattern(LBA, 12);
    let mut one = cmd::write(1, 1, 1);
    one.set_io_flags(cmd::IO_FLAG_FUA);
    assert_eq!(code(&io.run(&one, &fua_data)), Status::SUCCESS);
    assert_eq!(media(&r, 1, 1, LBA), fua_data);
    assert_eq!(r.sim().unflushed_chunks(1), 1);
    assert_eq!(code(&io.no_data(&cmd::flush(1))), Status::SUCCESS);
    assert_eq!(r.sim().unflushed_chunks(1), 0);

    // FUA into chunks with no cached writes leaves nothing to flush.
    let mut sqe = cmd::write(1, 200, 8);
    sqe.set_io_flags(cmd::IO_FLAG_FUA);
    let data = pattern(8 * LBA, 9);
    assert_eq!(code(&io.run(&sqe, &data)), Status::SUCCESS);
    assert_eq!(media(&r, 1, 200, 8 * LBA), data);
    assert_eq!(r.sim().unflushed_chunks(1), 0, "a FUA write is durable when it completes");
}

// ----- Fault injection -----

#[test]
fn fault_fail_returns_the_injected_status_for_exactly_count_commands() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let data = pattern(LBA, 11);
    io.write(7, &data);
    let injected = Status::INTERNAL_ERROR.with_dnr(true);
    r.sim().inject(FaultRule::io(READ, 2, FaultAction::Fail(injected)));
    // Other opcodes are not caught.
    assert_eq!(code(&io.no_data(&cmd::verify(1, 7, 1))), Status::SUCCESS);
    for i in 0..2 {
        let buf = r.ctrl.dma(LBA).unwrap();
        let c = io.q.execute(&cmd::read(1, 7, 1), DataPtr::Prp(&buf)).unwrap();
        assert_eq!(c.status(), injected, "read {i} carries the injected status, DNR included");
        assert_eq!(buf.to_vec(), vec![0u8; LBA], "the failed read moved no data");
    }
    assert!(r.sim().pending_faults().is_empty(), "the rule is used up");
    assert_eq!(io.read(7, 1), data);
    assert_eq!(io.read(7, 1), data);

    // A failed write is not executed.
    r.sim().inject(FaultRule::io(WRITE, 1, FaultAction::Fail(Status::WRITE_FAULT)));
    let c = io.run(&cmd::write(1, 7, 1), &pattern(LBA, 12));
    assert_eq!(code(&c), Status::WRITE_FAULT);
    assert_eq!(io.read(7, 1), data);
}

#[test]
fn fault_after_lets_n_matching_commands_pass_first() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    r.sim().inject(FaultRule::io(READ, 2, FaultAction::Fail(Status::UNRECOVERED_READ_ERROR)).after(3));
    let results: Vec<bool> = (0..7).map(|_| io.try_read(0, 1).is_ok()).collect();
    assert_eq!(results, [true, true, true, false, false, true, true]);
    // Writes in between do not count towards the skip.
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::Fail(Status::DATA_TRANSFER_ERROR)).after(1));
    io.write(0, &pattern(LBA, 13));
    io.write(1, &pattern(LBA, 14));
    assert!(io.try_read(0, 1).is_ok());
    assert_eq!(io.try_read(0, 1), Err(Status::DATA_TRANSFER_ERROR));
    assert!(io.try_read(0, 1).is_ok());
}

#[test]
fn fault_drop_completion_is_reported_timed_out_by_the_driver() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let data = pattern(LBA, 15);
    let timeout = Duration::from_millis(200);
    io.q.set_timeout(timeout);
    r.sim().inject(FaultRule::io(WRITE, 1, FaultAction::DropCompletion));
    let buf = r.ctrl.dma(LBA).unwrap();
    buf.write(0, &data);
    let start = Instant::now();
    let cid = io.q.submit(&cmd::write(1, 3, 1), DataPtr::Prp(&buf), 77).unwrap();
    io.q.ring();
    let mut got = Vec::new();
    while got.is_empty() && start.elapsed() < Duration::from_secs(2) {
        io.q.poll(16, |c| got.push(*c));
        std::thread::yield_now();
    }
    let waited = start.elapsed();
    assert_eq!(got.len(), 1);
    let c = got[0];
    assert_eq!(c.kind, CplKind::TimedOut);
    assert_eq!((c.cid(), c.ctx, c.opcode), (cid, 77, WRITE));
    assert!(!c.is_success());
    assert!(waited >= timeout && waited < timeout + Duration::from_millis(500), "reported after {waited:?}");
    assert_eq!(io.q.outstanding(), 0);
    // The command itself was executed; only its completion went missing.
    assert_eq!(media(&r, 1, 3, LBA), data);
    // The queue keeps working.
    assert_eq!(io.read(3, 1), data);
    assert_eq!(io.q.spurious_completions(), 0);
}

#[test]
fn fault_corrupt_read_flips_one_byte_of_one_transfer_only() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let data = pattern(4 * LBA, 16);
    io.write(20, &data);
    let offset = 1000;
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::CorruptRead { offset }));
    let got = io.read(20, 4);
    let diff: Vec<usize> = (0..data.len()).filter(|&i| got[i] != data[i]).collect();
    assert_eq!(diff, [offset]);
    assert_eq!(got[offset], !data[offset], "every bit of the byte is flipped");
    assert_eq!(io.read(20, 4), data, "the next read is clean");
    assert_eq!(media(&r, 1, 20, 4 * LBA), data, "the media is untouched");
}

#[test]
fn fault_lose_write_acknowledges_but_keeps_the_old_content() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let old = pattern(2 * LBA, 17);
    io.write(50, &old);
    r.sim().inject(FaultRule::io(WRITE, 1, FaultAction::LoseWrite));
    io.write(50, &pattern(2 * LBA, 18));
    assert_eq!(media(&r, 1, 50, 2 * LBA), old);
    assert_eq!(io.read(50, 2), old);
    // Only one write is lost.
    let new = pattern(2 * LBA, 19);
    io.write(50, &new);
    assert_eq!(media(&r, 1, 50, 2 * LBA), new);
}

#[test]
fn fault_misdirect_write_lands_at_the_offset_lba_and_leaves_the_addressed_one() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let old = pattern(4 * LBA, 20);
    io.write(200, &old);
    let new = pattern(4 * LBA, 21);
    r.sim().inject(FaultRule::io(WRITE, 1, FaultAction::MisdirectWrite { lba_offset: 1000 }));
    io.write(200, &new);
    assert_eq!(media(&r, 1, 200, 4 * LBA), old, "the addressed LBAs are unchanged");
    assert_eq!(media(&r, 1, 1200, 4 * LBA), new, "the data landed 1000 LBAs away");
    assert_eq!(io.read(200, 4), old);
    assert_eq!(io.read(1200, 4), new);
    // Backwards.
    r.sim().inject(FaultRule::io(WRITE, 1, FaultAction::MisdirectWrite { lba_offset: -100 }));
    let third = pattern(LBA, 22);
    io.write(300, &third);
    assert_eq!(io.read(200, 1), third);
    assert_eq!(io.read(300, 1), zeroes(1));
}

#[test]
fn fault_delay_holds_the_completion_back_at_least_that_long() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let d = Duration::from_millis(60);
    r.sim().inject(FaultRule::io(READ, 1, FaultAction::Delay(d)));
    let t = Instant::now();
    assert_eq!(io.read(0, 1), zeroes(1));
    let delayed = t.elapsed();
    assert!(delayed >= d, "completed after {delayed:?}");
    assert!(delayed < d + Duration::from_millis(500), "completed after {delayed:?}");
    let t = Instant::now();
    io.read(0, 1);
    assert!(t.elapsed() < d, "the next read is not delayed ({:?})", t.elapsed());
}

#[test]
fn fatal_error_sets_cfs_stops_completions_and_reset_recovers() {
    let r = rig(cfg());
    let mut io = Io::new(&r);
    let data = pattern(LBA, 23);
    io.write(0, &data);
    assert!(!r.ctrl.csts().cfs());
    r.sim().raise_fatal();
    let csts = r.ctrl.csts();
    assert!(csts.cfs(), "CSTS.CFS reads 1 ({:#x})", csts.0);

    io.q.set_timeout(Duration::from_millis(200));
    let buf = r.ctrl.dma(LBA).unwrap();
    let start = Instant::now();
    let c = io.q.execute(&cmd::read(1, 0, 1), DataPtr::Prp(&buf)).unwrap();
    assert_eq!(c.kind, CplKind::Aborted, "a failed controller completes nothing; the driver gives up");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(buf.to_vec(), zeroes(1), "nothing was transferred");

    r.ctrl.reset().unwrap();
    let csts = r.ctrl.csts();
    assert!(csts.rdy() && !csts.cfs(), "ready with CFS clear after reset ({:#x})", csts.0);
    assert!(!io.q.is_valid());
    drop(io);
    let mut io = Io::new(&r);
    assert_eq!(io.read(0, 1), data);
}

#[test]
fn commands_submitted_after_a_fatal_error_are_never_executed() {
    // A processing thread that keeps polling for a while after each command.
    let r = rig(SimConfig { idle_spin: Duration::from_millis(2), ..cfg() });
    let before = pattern(LBA, 40);
    let after = pattern(LBA, 41);
    let (wbuf, fbuf) = (r.ctrl.dma(LBA).unwrap(), r.ctrl.dma(LBA).unwrap());
    wbuf.write(0, &before);
    fbuf.write(0, &after);
    // The write right before the fatal error leaves the processing thread busy polling,
    // the moment a stale view of the controller state would let a command through.
    for round in 0..40 {
        let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
        // The write before the error may wait for the CPU on a loaded host; the one after
        // it is expected to go unanswered, so its wait is short.
        q.set_timeout(Duration::from_secs(5));
        q.execute_ok(&cmd::write(1, 0, 1), DataPtr::Prp(&wbuf)).unwrap();
        q.set_timeout(Duration::from_millis(10));
        r.sim().raise_fatal();
        let c = q.execute(&cmd::write(1, 0, 1), DataPtr::Prp(&fbuf)).unwrap();
        assert_eq!(c.kind, CplKind::Aborted, "round {round}: completed with {:?} after CSTS.CFS was set", c.status());
        assert_eq!(media(&r, 1, 0, LBA), before, "round {round}: a write submitted after the fatal error was executed");
        r.ctrl.reset().unwrap();
        assert!(!q.is_valid());
    }
}

#[test]
fn admin_fault_fails_get_features_with_the_injected_status() {
    let r = rig(cfg());
    let before = r.ctrl.get_features(fid::ARBITRATION, 0).unwrap();
    r.sim().inject(FaultRule::admin(AdminOpcode::GetFeatures.code(), 1, FaultAction::Fail(Status::INTERNAL_ERROR)));
    // Other admin commands pass.
    r.ctrl.smart_log().unwrap();
    let e = r.ctrl.get_features(fid::ARBITRATION, 0).unwrap_err();
    assert_eq!(e.status(), Some(Status::INTERNAL_ERROR));
    assert_eq!(r.ctrl.get_features(fid::ARBITRATION, 0).unwrap(), before);
    // I/O rules do not catch admin commands and vice versa.
    r.sim().inject(FaultRule::io(AdminOpcode::GetFeatures.code(), 1, FaultAction::Fail(Status::INTERNAL_ERROR)));
    assert_eq!(r.ctrl.get_features(fid::ARBITRATION, 0).unwrap(), before);
    r.sim().clear_faults();
}

// ----- Latency model -----

#[test]
fn latency_model_delays_reads_by_the_fixed_part_and_leaves_writes_fast() {
    let mut c = cfg();
    let fixed = Duration::from_millis(20);
    c.latency.set_io(NvmOpcode::Read.code(), fixed, Duration::ZERO);
    let r = rig(c);
    let mut io = Io::new(&r);
    let data = pattern(LBA, 24);
    let mut writes = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        io.write(i, &data);
        writes.push(t.elapsed());
    }
    writes.sort();
    assert!(writes[2] < Duration::from_millis(10), "writes have no latency: {writes:?}");
    for _ in 0..3 {
        let t = Instant::now();
        assert_eq!(io.read(0, 1), data);
        let took = t.elapsed();
        assert!(took >= fixed && took < fixed + Duration::from_millis(200), "read took {took:?}");
    }
}

#[test]
fn latency_jitter_varies_completions_within_fixed_plus_jitter() {
    let mut c = cfg();
    let (fixed, jitter) = (Duration::from_millis(4), Duration::from_millis(10));
    c.latency.set_io(NvmOpcode::Read.code(), fixed, jitter);
    let r = rig(c);
    let mut io = Io::new(&r);
    let mut took = Vec::new();
    for _ in 0..24 {
        let t = Instant::now();
        io.read(0, 1);
        took.push(t.elapsed());
    }
    took.sort();
    let (min, max) = (took[0], took[took.len() - 1]);
    assert!(min >= fixed, "{took:?}");
    assert!(max < fixed + jitter + Duration::from_millis(100), "{took:?}");
    assert!(max - min >= Duration::from_millis(3), "completions vary: {took:?}");
}

// ----- Completion queue wrap-around -----

#[test]
fn full_completion_queue_delivers_each_completion_exactly_once() {
    let mut c = cfg();
    c.latency.set_io(NvmOpcode::Read.code(), Duration::from_millis(2), Duration::from_millis(1));
    let r = rig(c);
    let mut q = r.ctrl.create_qpair(QpairOptions { entries: 4, prio: 0, ..Default::default() }).unwrap();
    let bufs: Vec<_> = (0..3).map(|_| r.ctrl.dma(LBA).unwrap()).collect();
    let mut seen = vec![0u32; 64];
    let mut ctx = 0u64;
    // Rounds of three commands (every CQ slot the host can have in use) left unreaped
    // until all are posted: the CQ is full each time and its phase flips many times.
    for round in 0..6 {
        for b in &bufs {
            q.submit(&cmd::read(1, ctx, 1), DataPtr::Prp(b), ctx).unwrap();
            ctx += 1;
        }
        assert_eq!(q.free_slots(), 0);
        q.ring();
        std::thread::sleep(Duration::from_millis(40));
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(1);
        while n < 3 && Instant::now() < deadline {
            n += q.poll(usize::MAX, |c| {
                assert!(c.is_success(), "{:?}", c.status());
                seen[c.ctx as usize] += 1;
            });
        }
        assert_eq!(n, 3, "round {round}");
        assert_eq!(q.outstanding(), 0);
    }
    // Then keep the queue full, reaping one completion at a time.
    let total = 48u64;
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(2);
    while done < total - 18 && Instant::now() < deadline {
        while q.free_slots() > 0 && ctx < total {
            q.submit(&cmd::read(1, ctx, 1), DataPtr::Prp(&bufs[0]), ctx).unwrap();
            ctx += 1;
        }
        q.ring();
        done += q.poll(1, |c| {
            assert!(c.is_success());
            seen[c.ctx as usize] += 1;
        }) as u64;
    }
    assert_eq!(ctx, total);
    assert_eq!(seen[..total as usize], vec![1u32; total as usize][..], "every command completed exactly once");
    assert_eq!(seen[total as usize..].iter().sum::<u32>(), 0);
    assert_eq!(q.spurious_completions(), 0);
    assert_eq!(q.outstanding(), 0);
}

// ----- Weighted round robin -----

#[test]
fn weighted_round_robin_serves_urgent_and_low_priority_queues() {
    let opts = ControllerOptions { arbitration: ArbitrationMechanism::WeightedRoundRobin, ..Default::default() };
    let r = rig_with(cfg(), opts);
    assert_eq!(r.ctrl.cap().ams() & 1, 1, "CAP.AMS advertises weighted round robin");
    assert_eq!(r.ctrl.cc().ams(), 1, "CC.AMS selects weighted round robin with urgent class");
    let arb = Arbitration { burst: 2, low: 1, medium: 3, high: 7 };
    r.ctrl.set_arbitration(arb).unwrap();
    assert_eq!(Arbitration::from_dword(r.ctrl.get_features(fid::ARBITRATION, 0).unwrap()), arb);

    let mut urgent = r.ctrl.create_qpair(QpairOptions { entries: 32, prio: 0, ..Default::default() }).unwrap();
    let mut low = r.ctrl.create_qpair(QpairOptions { entries: 32, prio: 3, ..Default::default() }).unwrap();
    let data = pattern(LBA, 25);
    let wbuf = r.ctrl.dma(LBA).unwrap();
    wbuf.write(0, &data);
    urgent.execute_ok(&cmd::write(1, 0, 1), DataPtr::Prp(&wbuf)).unwrap();
    low.execute_ok(&cmd::write(1, 1, 1), DataPtr::Prp(&wbuf)).unwrap();

    let ubufs: Vec<_> = (0..20).map(|_| r.ctrl.dma(LBA).unwrap()).collect();
    let lbufs: Vec<_> = (0..20).map(|_| r.ctrl.dma(LBA).unwrap()).collect();
    for rounds in 0..3 {
        for (i, b) in lbufs.iter().enumerate() {
            low.submit(&cmd::read(1, 1, 1), DataPtr::Prp(b), i as u64).unwrap();
        }
        for (i, b) in ubufs.iter().enumerate() {
            urgent.submit(&cmd::read(1, 0, 1), DataPtr::Prp(b), i as u64).unwrap();
        }
        low.ring();
        urgent.ring();
        let (mut nu, mut nl) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(2);
        while (nu < 20 || nl < 20) && Instant::now() < deadline {
            nu += urgent.poll(usize::MAX, |c| assert!(c.is_success()));
            nl += low.poll(usize::MAX, |c| assert!(c.is_success()));
        }
        assert_eq!((nu, nl), (20, 20), "round {rounds}: both classes make progress");
    }
    assert!(ubufs.iter().all(|b| b.to_vec() == data));
    assert!(lbufs.iter().all(|b| b.to_vec() == data));
    assert_eq!(urgent.spurious_completions() + low.spurious_completions(), 0);
}

// ----- LBA sizes and namespaces -----

#[test]
fn namespaces_are_isolated_and_4k_lbas_count_in_4096_byte_blocks() {
    let r = rig(SimConfig { namespaces: vec![NamespaceConfig::memory(16 << 20, 512), NamespaceConfig::memory(16 << 20, 4096)], ..cfg() });
    let (ns1, ns2) = (r.ctrl.namespace(1).unwrap(), r.ctrl.namespace(2).unwrap());
    assert_eq!((ns1.lba_size(), ns2.lba_size()), (512, 4096));
    if r.is_sim() {
        assert_eq!((ns1.nlba(), ns2.nlba()), ((16 << 20) / 512, (16 << 20) / 4096));
        assert_eq!(ns2.id.format_index(), 1);
        assert!(r.ctrl.namespace(3).is_none());
    }

    let mut io = Io::new(&r);
    // The first 40 KiB of both start as zeroes (a real drive's may hold an earlier run's data).
    assert_eq!(code(&io.no_data(&cmd::write_zeroes(1, 0, 80))), Status::SUCCESS);
    assert_eq!(code(&io.no_data(&cmd::write_zeroes(2, 0, 10))), Status::SUCCESS);
    let data = pattern(3 * 4096, 26);
    io.write_ns(2, 5, &data);
    // LBA 5 of a 4 KiB namespace is byte 20480; three LBAs are 12 KiB.
    if r.is_sim() {
        let raw = media(&r, 2, 0, 10 * 4096);
        assert!(raw[5 * 4096..8 * 4096] == data[..]);
        assert!(raw[..5 * 4096].iter().chain(&raw[8 * 4096..]).all(|&b| b == 0));
    }
    assert_eq!(io.read_ns(2, 0, 10)[..5 * 4096], vec![0u8; 5 * 4096][..]);
    assert_eq!(io.read_ns(2, 6, 1), data[4096..8192].to_vec());
    // Nothing shows up in namespace 1, neither at the same LBAs nor at the same bytes.
    assert_eq!(io.read_ns(1, 5, 3), zeroes(3));
    assert_eq!(io.read_ns(1, 40, 24), zeroes(24));
    if r.is_sim() {
        assert_eq!(media(&r, 1, 0, 10 * 4096), vec![0u8; 10 * 4096]);
    }
    // And the other way round.
    let one = pattern(8 * LBA, 27);
    io.write_ns(1, 40, &one);
    assert_eq!(io.read_ns(2, 5, 3), data);
    assert_eq!(io.read_ns(1, 40, 8), one);

    // Bounds in 4 KiB units, for every LBA-range command.
    let last = ns2.nlba() - 1;
    io.write_ns(2, last, &pattern(4096, 28));
    assert_eq!(io.try_read_ns(2, last, 2), Err(Status::LBA_OUT_OF_RANGE));
    assert_eq!(code(&io.no_data(&cmd::write_zeroes(2, last, 1))), Status::SUCCESS);
    assert_eq!(io.read_ns(2, last, 1), vec![0u8; 4096]);
    assert_eq!(code(&io.no_data(&cmd::verify(2, last, 2))), Status::LBA_OUT_OF_RANGE);
    assert_eq!(code(&io.deallocate(2, &[(5, 1)])), Status::SUCCESS);
    assert_eq!(io.read_ns(2, 5, 3)[..4096], [0u8; 4096]);
    assert_eq!(io.read_ns(2, 5, 3)[4096..], data[4096..]);
    // A 512-byte namespace LBA that is in range for namespace 1 is out of range for 2.
    assert_eq!(io.try_read_ns(2, ns2.nlba(), 1), Err(Status::LBA_OUT_OF_RANGE));
    assert!(io.try_read_ns(1, ns2.nlba(), 1).is_ok());
}

// ----- File-backed media -----

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn file_backed_namespace_keeps_flushed_data_across_simulator_instances() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let file = TempFile(std::env::temp_dir().join(format!("nvplan-nvm-{}-{nanos}.img", std::process::id())));
    let ns = NamespaceConfig { capacity: 8 << 20, lba_size: 512, backing: Backing::File(file.0.clone()) };
    let c = SimConfig { namespaces: vec![ns], ..cfg() };
    let data = pattern(16 * LBA, 29);
    let last = (8 << 20) / LBA as u64 - 1;
    {
        let r = rig(c.clone());
        let mut io = Io::new(&r);
        io.write(1000, &data);
        io.write(last, &data[..LBA]);
        assert_eq!(code(&io.no_data(&cmd::flush(1))), Status::SUCCESS);
        assert_eq!(r.sim().unflushed_chunks(1), 0);
    }
    assert_eq!(std::fs::metadata(&file.0).unwrap().len(), 8 << 20);
    let r = rig(c);
    let mut io = Io::new(&r);
    assert_eq!(io.read(1000, 16), data);
    assert_eq!(io.read(last, 1), data[..LBA].to_vec());
    assert_eq!(io.read(0, 8), zeroes(8));
    drop(io);
    drop(r);
    drop(file);
}
