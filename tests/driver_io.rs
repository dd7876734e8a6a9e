//! Data round trips through the driver and the simulated controller: every data pointer
//! shape (PRP with offsets, lists across pages and chained lists, SGL blocks, segment
//! chains and bit buckets) and every transfer size up to MDTS returns identical data.

mod common;

use common::{pattern, rig};
use nvplan::driver::{DataPtr, QpairOptions, SglSegment};
use nvplan::nvme::identify::cns;
use nvplan::nvme::{Status, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig};

fn cfg_512() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], mdts: 5, ..Default::default() }
}

#[test]
fn controller_comes_up_and_identifies_namespaces() {
    let r = rig(SimConfig { namespaces: vec![NamespaceConfig::memory(1 << 30, 512), NamespaceConfig::memory(4 << 40, 4096)], ..Default::default() });
    let info = r.ctrl.info();
    assert!(r.ctrl.csts().rdy());
    // What the driver decoded is what the controller's own Identify data says (NVMe 1.4
    // Figures 247 and 245): serial (bytes 4..24), MDTS in CAP.MPSMIN pages (byte 77), and
    // per namespace NSZE (bytes 0..8) and the LBADS of the format FLBAS selects.
    let buf = r.ctrl.dma(4096).unwrap();
    r.ctrl.admin_data(&cmd::identify(cns::CONTROLLER, 0), &buf).unwrap();
    let raw = buf.to_vec();
    assert_eq!(info.id.serial(), String::from_utf8_lossy(&raw[4..24]).trim_end());
    let mdts = match raw[77] {
        0 => usize::MAX,
        m => r.ctrl.cap().min_page_size() << m,
    };
    assert_eq!(info.max_transfer, mdts.min(r.ctrl.options().max_transfer));
    assert!(info.namespaces.len() >= 2);
    for ns in &info.namespaces {
        r.ctrl.admin_data(&cmd::identify(cns::NAMESPACE, ns.nsid), &buf).unwrap();
        let raw = buf.to_vec();
        let lbaf = (raw[26] & 0xf) as usize;
        assert_eq!(ns.nlba(), u64::from_le_bytes(raw[0..8].try_into().unwrap()), "NSID {}", ns.nsid);
        assert_eq!(ns.lba_size(), 1 << raw[128 + 4 * lbaf + 2], "NSID {}", ns.nsid);
    }
    assert_eq!(info.namespaces[0].lba_size(), 512);
    assert_eq!(info.namespaces[1].lba_size(), 4096);
    if r.is_sim() {
        assert_eq!(info.id.serial(), "NVPLANSIM0001");
        assert_eq!(info.namespaces.len(), 2);
        assert_eq!(info.namespaces[0].nlba(), (1 << 30) / 512);
        assert_eq!(info.namespaces[1].nlba(), (4u64 << 40) / 4096);
        assert_eq!(info.max_transfer, 512 << 10);
    }
}

#[test]
fn write_read_compare_round_trip_from_one_lba_to_mdts_through_prp() {
    let r = rig(cfg_512());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let mdts_lbas = (r.ctrl.info().max_transfer / 512) as u32;
    if r.is_sim() {
        assert_eq!(mdts_lbas, 256, "MDTS 5");
    }
    let wbuf = r.ctrl.dma(mdts_lbas as usize * 512).unwrap();
    let rbuf = r.ctrl.dma(mdts_lbas as usize * 512).unwrap();
    let mut lba = 0u64;
    for nlb in [1u32, 2, 7, 8, 9, 16, 31, 64, 127, 128, 200, 255, 256, mdts_lbas].into_iter().filter(|&n| n <= mdts_lbas) {
        let len = nlb as usize * 512;
        let data = pattern(len, nlb as u64);
        wbuf.write(0, &data);
        let w = wbuf.slice(0, len);
        let rd = rbuf.slice(0, len);
        q.execute_ok(&cmd::write(1, lba, nlb), DataPtr::Prp(&w)).unwrap();
        rbuf.fill(0, rbuf.len(), 0);
        q.execute_ok(&cmd::read(1, lba, nlb), DataPtr::Prp(&rd)).unwrap();
        assert_eq!(rd.to_vec(), data, "nlb {nlb}");
        q.execute_ok(&cmd::compare(1, lba, nlb), DataPtr::Prp(&w)).unwrap();
        lba += nlb as u64;
    }
}

#[test]
fn transfer_above_mdts_is_invalid_field() {
    // The driver prepares for more than MDTS, so the controller is the one to refuse.
    let r = common::rig_with(cfg_512(), nvplan::driver::ControllerOptions { max_transfer: 8 << 20, ..Default::default() });
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let over = (r.ctrl.info().max_transfer / 512) as u32 + 1;
    let buf = r.ctrl.dma(over as usize * 512).unwrap();
    let c = q.execute(&cmd::read(1, 0, over), DataPtr::Prp(&buf)).unwrap();
    assert_eq!(c.status().code(), Status::INVALID_FIELD.code());
    assert!(c.status().dnr());
}

#[test]
fn unaligned_first_prp_and_lists_crossing_pages_return_identical_data() {
    let r = rig(cfg_512());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let big = r.ctrl.dma(512 << 10).unwrap();
    for (off, nlb) in [(4usize, 1u32), (0x200, 8), (0xffc, 16), (0x10, 255), (0x804, 100)] {
        let len = nlb as usize * 512;
        let data = pattern(len, off as u64);
        let w = big.slice(off, len);
        w.write(0, &data);
        q.execute_ok(&cmd::write(1, 1000, nlb), DataPtr::Prp(&w)).unwrap();
        let rd = big.slice(256 << 10 | off, len);
        q.execute_ok(&cmd::read(1, 1000, nlb), DataPtr::Prp(&rd)).unwrap();
        assert_eq!(rd.to_vec(), data, "offset {off:#x} nlb {nlb}");
    }
}

#[test]
fn byte_aligned_prp1_is_refused_by_driver_and_by_controller() {
    let r = rig(cfg_512());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let buf = r.ctrl.dma(8192).unwrap();
    let odd = buf.slice(1, 512);
    assert!(matches!(q.submit(&cmd::read(1, 0, 1), DataPtr::Prp(&odd), 0), Err(nvplan::driver::SubmitError::Misaligned { .. })));
    // Raw pointers reach the controller as given: it answers PRP Offset Invalid (§4.3).
    let c = q.execute(&cmd::read(1, 0, 1), DataPtr::Raw { prp1: buf.iova() + 2, prp2: 0 }).unwrap();
    assert_eq!(c.status().code(), Status::INVALID_PRP_OFFSET.code());
    // A pointer outside mapped memory is a data transfer error, not a crash.
    let c = q.execute(&cmd::read(1, 0, 1), DataPtr::Raw { prp1: 0xdead_0000, prp2: 0 }).unwrap();
    assert_eq!(c.status().code(), Status::DATA_TRANSFER_ERROR.code());
}

#[test]
fn chained_prp_lists_carry_transfers_beyond_one_list_page() {
    // No MDTS: 3 MiB at an offset into a page needs 768 list entries, more than the 511
    // of one list page and its chain pointer (§4.3).
    let cfg = SimConfig { namespaces: vec![NamespaceConfig::memory(16 << 20, 512)], mdts: 0, ..Default::default() };
    let r = common::rig_with(cfg, nvplan::driver::ControllerOptions { max_transfer: 8 << 20, ..Default::default() });
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let len = 3 << 20;
    let w = r.ctrl.dma(len + 4096).unwrap().slice(0x40, len);
    let data = pattern(len, 99);
    w.write(0, &data);
    q.execute_ok(&cmd::write(1, 3, (len / 512) as u32), DataPtr::Prp(&w)).unwrap();
    let rd = r.ctrl.dma(len).unwrap();
    q.execute_ok(&cmd::read(1, 3, (len / 512) as u32), DataPtr::Prp(&rd)).unwrap();
    assert!(rd.to_vec() == data);
}

#[test]
fn sgl_data_blocks_segment_chains_and_bit_buckets_return_identical_data() {
    let r = rig(cfg_512());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let data = pattern(64 * 512, 5);
    let w = r.ctrl.dma(64 * 512).unwrap();
    w.write(0, &data);
    // One data block descriptor.
    q.execute_ok(&cmd::write(1, 50, 64), DataPtr::Sgl(&w)).unwrap();
    let rd = r.ctrl.dma(64 * 512).unwrap();
    q.execute_ok(&cmd::read(1, 50, 64), DataPtr::Sgl(&rd)).unwrap();
    assert!(rd.to_vec() == data);
    // 64 scattered 512-byte pieces in segments of 5 descriptors: a chain of 16 segments.
    let scattered = r.ctrl.dma(64 * 4096).unwrap();
    let segs: Vec<SglSegment> = (0..64).map(|i| SglSegment::Data { iova: scattered.iova() + i * 4096 + 8 * i, len: 512 }).collect();
    q.execute_ok(&cmd::read(1, 50, 64), DataPtr::SglList { segs: &segs, per_segment: 5 }).unwrap();
    for i in 0..64usize {
        let mut piece = vec![0u8; 512];
        scattered.read(i * 4096 + 8 * i, &mut piece);
        assert_eq!(piece, data[i * 512..(i + 1) * 512], "piece {i}");
    }
    // Write through the chain, read back contiguously.
    let data2 = pattern(64 * 512, 6);
    for i in 0..64usize {
        scattered.write(i * 4096 + 8 * i, &data2[i * 512..(i + 1) * 512]);
    }
    q.execute_ok(&cmd::write(1, 50, 64), DataPtr::SglList { segs: &segs, per_segment: 256 }).unwrap();
    q.execute_ok(&cmd::read(1, 50, 64), DataPtr::Prp(&rd)).unwrap();
    assert!(rd.to_vec() == data2);
    // Bit buckets discard the middle of a read.
    let out = r.ctrl.dma(2 * 512).unwrap();
    let segs =
        [SglSegment::Data { iova: out.iova(), len: 512 }, SglSegment::BitBucket { len: 62 * 512 }, SglSegment::Data { iova: out.iova() + 512, len: 512 }];
    q.execute_ok(&cmd::read(1, 50, 64), DataPtr::SglList { segs: &segs, per_segment: 256 }).unwrap();
    assert_eq!(out.to_vec()[..512], data2[..512]);
    assert_eq!(out.to_vec()[512..], data2[63 * 512..]);
}

#[test]
fn sgl_is_refused_with_invalid_field_when_the_controller_lacks_it() {
    let r = rig(SimConfig { sgl: false, ..cfg_512() });
    assert!(!r.ctrl.identify().sgl_supported());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let b = r.ctrl.dma(512).unwrap();
    let c = q.execute(&cmd::read(1, 0, 1), DataPtr::Sgl(&b)).unwrap();
    assert_eq!(c.status().code(), Status::INVALID_FIELD.code());
}

#[test]
fn lba_out_of_range_and_invalid_namespace_are_reported() {
    let r = rig(cfg_512());
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let nlba = r.ctrl.namespace(1).unwrap().nlba();
    let b = r.ctrl.dma(4096).unwrap();
    let c = q.execute(&cmd::read(1, nlba - 1, 2), DataPtr::Prp(&b)).unwrap();
    assert_eq!(c.status().code(), Status::LBA_OUT_OF_RANGE.code());
    // An NSID above NN (an inactive one at or below it is Invalid Field instead).
    let c = q.execute(&cmd::read(r.ctrl.identify().nn + 1, 0, 1), DataPtr::Prp(&b)).unwrap();
    assert_eq!(c.status().code(), Status::INVALID_NAMESPACE.code());
    let c = q.execute(&nvplan::nvme::Sqe::new(0x7f, 1), DataPtr::None).unwrap();
    assert_eq!(c.status().code(), Status::INVALID_OPCODE.code());
}
