//! MSI-X (PCI Local Bus 3.0 §6.8.2; NVMe 1.4 §7.5): a completion on a CQ created with
//! IEN = 1 writes its vector's message to host memory; a masked vector sets its pending
//! bit instead and sends on unmask; IEN = 0 or MSI-X disabled send nothing.
//! Simulator only: with vfio-pci the kernel owns the MSI-X table (not in the QEMU suites).

mod common;

use std::time::{Duration, Instant};

use common::rig;
use nvplan::driver::{DataPtr, Msix, QPair, QpairOptions};
use nvplan::nvme::cmd;
use nvplan::sim::{NamespaceConfig, SimConfig};
use nvplan::transport::DmaBuffer;

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(16 << 20, 512)], ..Default::default() }
}

const DATA: u32 = 0x5a5a_0001;

fn read(q: &mut QPair) {
    let buf = q.controller().dma(512).unwrap();
    q.execute_ok(&cmd::read(1, 0, 1), DataPtr::Prp(&buf)).unwrap();
}

/// The message word once it is non-zero, or 0 after `within`.
fn wait_word(w: &DmaBuffer, within: Duration) -> u32 {
    let start = Instant::now();
    loop {
        let v = w.load_u32_acquire(0);
        if v != 0 || start.elapsed() >= within {
            return v;
        }
        std::thread::yield_now();
    }
}

/// A queue pair with the driver's default vector (its queue ID with MSI-X enabled, 0
/// without), and that vector pointed at a fresh word.
fn setup(ien: bool, enable: bool) -> (common::Rig, QPair, Msix, DmaBuffer) {
    let r = rig(cfg());
    let m = Msix::find(r.ctrl.transport()).unwrap().expect("the function has MSI-X");
    if enable {
        m.enable().unwrap();
    }
    let q = r.ctrl.create_qpair(QpairOptions { entries: 8, ien, iv: None, ..Default::default() }).unwrap();
    let word = r.ctrl.dma(4096).unwrap();
    m.program(q.interrupt_vector().unwrap_or(q.qid()), word.iova(), DATA).unwrap();
    (r, q, m, word)
}

#[test]
fn table_reads_back_and_comes_out_of_reset_masked() {
    let r = rig(cfg());
    let m = Msix::find(r.ctrl.transport()).unwrap().unwrap();
    assert_eq!(m.vectors(), r.sim().config().interrupt_vectors);
    assert!(!m.is_enabled().unwrap());
    for v in 0..m.vectors() {
        assert!(m.is_masked(v).unwrap(), "vector {v}: Mask Bit resets to 1 (§6.8.2.9)");
        assert!(!m.is_pending(v).unwrap());
    }
    m.program(3, 0x1234_5678_9abc, 7).unwrap();
    assert!(!m.is_masked(3).unwrap());
    assert!(m.program(m.vectors(), 0x1000, 1).is_err());
    // A function reset puts the table back: every vector masked.
    r.sim().function_reset();
    assert!(m.is_masked(3).unwrap());
}

#[test]
fn completion_on_an_ien_cq_writes_the_message() {
    let (_r, mut q, m, word) = setup(true, true);
    assert_eq!(q.interrupt_vector(), Some(q.qid()));
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_secs(2)), DATA);
    assert!(!m.is_pending(q.qid()).unwrap());
    word.store_u32_release(0, 0);
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_secs(2)), DATA, "every completion signals");
}

#[test]
fn masked_vector_sets_the_pending_bit_and_unmask_delivers() {
    let (_r, mut q, m, word) = setup(true, true);
    let v = q.qid();
    m.mask(v).unwrap();
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_millis(100)), 0, "a masked vector sends nothing");
    assert!(m.is_pending(v).unwrap(), "its pending bit is set (§6.8.2.10)");
    m.unmask(v).unwrap();
    assert_eq!(wait_word(&word, Duration::from_secs(2)), DATA, "unmasking sends the pending message");
    assert!(!m.is_pending(v).unwrap(), "and clears the bit");
}

#[test]
fn function_mask_holds_messages_pending_until_cleared() {
    let (_r, mut q, m, word) = setup(true, true);
    m.set_function_mask(true).unwrap();
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_millis(100)), 0);
    assert!(m.is_pending(q.qid()).unwrap());
    m.set_function_mask(false).unwrap();
    assert_eq!(wait_word(&word, Duration::from_secs(2)), DATA);
    assert!(!m.is_pending(q.qid()).unwrap());
}

#[test]
fn cq_with_ien_clear_writes_nothing() {
    let (_r, mut q, m, word) = setup(false, true);
    assert_eq!(q.interrupt_vector(), None);
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_millis(100)), 0);
    assert!(!m.is_pending(q.qid()).unwrap());
}

#[test]
fn msix_disabled_writes_nothing() {
    let (_r, mut q, m, word) = setup(true, false);
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_millis(100)), 0);
    assert!(!m.is_pending(q.qid()).unwrap());
}

#[test]
fn admin_completions_signal_vector_zero() {
    let r = rig(cfg());
    let m = Msix::find(r.ctrl.transport()).unwrap().unwrap();
    let word = r.ctrl.dma(4096).unwrap();
    m.program(0, word.iova(), DATA).unwrap();
    m.enable().unwrap();
    r.ctrl.smart_log().unwrap();
    assert_eq!(wait_word(&word, Duration::from_secs(2)), DATA);
}

#[test]
fn create_cq_with_a_vector_beyond_the_table_is_invalid_interrupt_vector() {
    let r = rig(cfg());
    let vectors = r.sim().config().interrupt_vectors;
    let e = r.ctrl.create_qpair(QpairOptions { entries: 8, ien: true, iv: Some(vectors), ..Default::default() }).unwrap_err();
    assert_eq!(e.status().map(|s| (s.sct(), s.sc())), Some((1, 8)), "{e}");
}

/// NVMe 2.0 Base §5.5 (IV): without MSI-X (pin-based interrupts) only vector 0 exists.
#[test]
fn create_cq_with_a_nonzero_vector_while_msix_is_disabled_is_invalid_interrupt_vector() {
    let r = rig(cfg());
    let e = r.ctrl.create_qpair(QpairOptions { entries: 8, ien: true, iv: Some(1), ..Default::default() }).unwrap_err();
    assert_eq!(e.status().map(|s| (s.sct(), s.sc())), Some((1, 8)), "{e}");
}

#[test]
fn default_vector_is_the_queue_id_only_while_msix_is_enabled() {
    let r = rig(cfg());
    let q = r.ctrl.create_qpair(QpairOptions { entries: 8, ien: true, iv: None, ..Default::default() }).unwrap();
    assert_eq!(q.interrupt_vector(), Some(0), "MSI-X disabled: vector 0");
    Msix::find(r.ctrl.transport()).unwrap().unwrap().enable().unwrap();
    let q2 = r.ctrl.create_qpair(QpairOptions { entries: 8, ien: true, iv: None, ..Default::default() }).unwrap();
    assert_eq!(q2.interrupt_vector(), Some(q2.qid()));
}

#[test]
fn sim_queues_option_gives_a_vector_per_queue() {
    let c = SimConfig::parse_options("queues=128").unwrap();
    assert_eq!(c.interrupt_vectors, 129);
    let c = SimConfig::parse_options("queues=4096").unwrap();
    assert_eq!(c.interrupt_vectors, 2048, "MSI-X has at most 2048 vectors");
    assert_eq!(SimConfig::parse_options("queues=16").unwrap().interrupt_vectors, 65);
}

/// Interrupt Coalescing (Feature 08h, NVMe 1.4 §5.21.1.8): THR 1 (two completions) and
/// TIME 255 (25.5 ms).
const COALESCE: u32 = 1 | 255 << 8;

#[test]
fn coalescing_holds_one_completion_until_the_aggregation_time() {
    let (r, mut q, _m, word) = setup(true, true);
    r.ctrl.set_features(0x08, COALESCE).unwrap();
    let start = Instant::now();
    read(&mut q);
    assert_eq!(word.load_u32_acquire(0), 0, "held: one completion is below the threshold");
    assert_eq!(wait_word(&word, Duration::from_secs(2)), DATA, "sent when the aggregation time passes");
    assert!(start.elapsed() >= Duration::from_millis(25), "after {:?}", start.elapsed());
}

#[test]
fn coalescing_sends_at_the_threshold_and_not_for_disabled_vectors() {
    let (r, mut q, _m, word) = setup(true, true);
    r.ctrl.set_features(0x08, COALESCE).unwrap();
    read(&mut q);
    assert_eq!(word.load_u32_acquire(0), 0);
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_millis(20)), DATA, "the second completion reaches THR + 1");
    // Coalescing Disable (Feature 09h bit 16) on the vector: every completion signals.
    word.store_u32_release(0, 0);
    r.ctrl.set_features(0x09, q.qid() as u32 | 1 << 16).unwrap();
    read(&mut q);
    assert_eq!(wait_word(&word, Duration::from_millis(20)), DATA);
}
