//! Firmware Image Download and Firmware Commit (NVMe 1.4 §5.11, §5.12) with the Firmware
//! Slot Information log (§5.14.1.3), and Device Self-test (§5.8) with its log (§5.14.1.6).
//! Exact statuses; what a real controller may differ in is asked of it (Identify FRMW,
//! OACS), and commits that would change a drive's firmware run on the simulator only.

mod common;

use std::time::{Duration, Instant};

use common::rig;
use nvplan::driver::{Controller, DataPtr};
use nvplan::nvme::identify::{cns, oacs};
use nvplan::nvme::log::lid;
use nvplan::nvme::{Cqe, IdentifyController, Sqe, Status, cmd};
use nvplan::sim::{NamespaceConfig, SimConfig};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

fn cfg() -> SimConfig {
    SimConfig {
        namespaces: vec![NamespaceConfig::memory(16 << 20, 512)],
        self_test_short: Duration::from_millis(300),
        self_test_extended: Duration::from_secs(2),
        ..Default::default()
    }
}

fn raw(c: &Controller, sqe: &Sqe) -> Cqe {
    c.admin_raw(sqe, DataPtr::None, ADMIN_TIMEOUT).expect("the controller completes the command")
}

#[track_caller]
fn assert_status(cqe: &Cqe, want: Status) {
    assert_eq!(cqe.status().code(), want.code(), "status {}, expected {want}", cqe.status());
}

/// Downloads `data` (a multiple of 4 bytes) at byte offset `at` of the image.
fn download(c: &Controller, data: &[u8], at: usize) -> Cqe {
    let buf = c.dma(data.len().next_multiple_of(4096)).unwrap();
    buf.write(0, data);
    c.admin_raw(&cmd::firmware_download((data.len() / 4) as u32, (at / 4) as u32), DataPtr::Prp(&buf), ADMIN_TIMEOUT).unwrap()
}

fn image(revision: &[u8; 8], len: usize) -> Vec<u8> {
    let mut v = common::pattern(len, 5);
    v[..8].copy_from_slice(revision);
    v
}

/// Firmware Revision as Identify Controller reports it now (not the driver's cached copy).
fn firmware_revision(c: &Controller) -> [u8; 8] {
    let buf = c.dma(4096).unwrap();
    c.admin_data(&cmd::identify(cns::CONTROLLER, 0), &buf).unwrap();
    IdentifyController::from_bytes(&buf.to_vec()).fr
}

fn slot_log(c: &Controller) -> Vec<u8> {
    c.get_log_page(lid::FIRMWARE_SLOT, 0, 512, false).unwrap()
}

fn self_test_log(c: &Controller) -> Vec<u8> {
    c.get_log_page(lid::SELF_TEST, 0, 564, false).unwrap()
}

/// Waits until no device self-test runs (log byte 0 = 0), within `limit`.
fn wait_self_test_done(c: &Controller, limit: Duration) -> Vec<u8> {
    let t0 = Instant::now();
    loop {
        let log = self_test_log(c);
        if log[0] == 0 {
            return log;
        }
        assert!(t0.elapsed() < limit, "the self-test still runs after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn identify_advertises_firmware_commands_and_device_self_test() {
    let r = rig(cfg());
    let id = r.ctrl.identify();
    if r.is_sim() {
        assert_ne!(id.oacs & oacs::FIRMWARE, 0);
        assert_ne!(id.oacs & oacs::SELF_TEST, 0);
        assert_eq!(id.frmw, 0b0111, "three slots, slot 1 read-only, no activation without reset");
        assert_eq!(id.fwug, 1, "4 KiB");
        assert_eq!(id.edstt, 1, "an extended test takes at most a minute");
    }
    // The slot log names the active slot, whose revision is Identify FR.
    let log = slot_log(&r.ctrl);
    let active = (log[0] & 7) as usize;
    assert!((1..=7).contains(&active));
    assert_eq!(log[8 * active..8 * active + 8], id.fr);
}

#[test]
fn commit_without_a_downloaded_image_is_invalid_firmware_image() {
    let r = rig(cfg());
    if r.ctrl.identify().oacs & oacs::FIRMWARE == 0 {
        return;
    }
    let slots = (r.ctrl.identify().frmw >> 1) & 7;
    let slot = if slots > 1 { 2 } else { 1 };
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(slot, 1)), Status::INVALID_FIRMWARE_IMAGE);
    assert!(raw(&r.ctrl, &cmd::firmware_commit(slot, 1)).status().dnr());
}

#[test]
fn commit_to_a_slot_beyond_frmw_is_invalid_firmware_slot() {
    let r = rig(cfg());
    let id = r.ctrl.identify();
    let slots = (id.frmw >> 1) & 7;
    if id.oacs & oacs::FIRMWARE == 0 || slots == 7 {
        return;
    }
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(slots + 1, 2)), Status::INVALID_FIRMWARE_SLOT);
}

#[test]
fn overlapping_download_is_overlapping_range_and_misaligned_offset_is_invalid_field() {
    let r = rig(cfg());
    if !r.is_sim() {
        return; // A drive may accept a re-sent range (nvme-cli has --ignore-ovr for those that do not).
    }
    let img = image(b"OVERLAP1", 16384);
    assert_status(&download(&r.ctrl, &img[4096..12288], 4096), Status::SUCCESS);
    assert_status(&download(&r.ctrl, &img[..8192], 0), Status::OVERLAPPING_RANGE);
    assert_status(&download(&r.ctrl, &img[8192..12288], 8192), Status::OVERLAPPING_RANGE);
    assert_status(&download(&r.ctrl, &img[..4096], 1024), Status::INVALID_FIELD);
    // The refused pieces changed nothing: the rest completes the image.
    assert_status(&download(&r.ctrl, &img[..4096], 0), Status::SUCCESS);
    assert_status(&download(&r.ctrl, &img[12288..], 12288), Status::SUCCESS);
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(2, 0)), Status::SUCCESS);
    assert_eq!(&slot_log(&r.ctrl)[16..24], b"OVERLAP1");
}

#[test]
fn image_with_a_hole_is_invalid_firmware_image() {
    let r = rig(cfg());
    if !r.is_sim() {
        return;
    }
    let img = image(b"HOLEHOLE", 12288);
    assert_status(&download(&r.ctrl, &img[..4096], 0), Status::SUCCESS);
    assert_status(&download(&r.ctrl, &img[8192..], 8192), Status::SUCCESS);
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(2, 1)), Status::INVALID_FIRMWARE_IMAGE);
}

#[test]
fn replacing_read_only_slot_1_is_invalid_firmware_slot() {
    let r = rig(cfg());
    if !r.is_sim() {
        return;
    }
    assert_status(&download(&r.ctrl, &image(b"SLOTONE1", 4096), 0), Status::SUCCESS);
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(1, 0)), Status::INVALID_FIRMWARE_SLOT);
    // Activating what slot 1 holds is allowed.
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(1, 2)), Status::SUCCESS);
}

#[test]
fn committed_image_activates_at_the_next_controller_reset() {
    let r = rig(cfg());
    if !r.is_sim() {
        return;
    }
    let c = &r.ctrl;
    let old = firmware_revision(c);
    let img = image(b"NEWFW001", 3 * 4096 + 100);
    // Out of order, the last piece shorter than the granularity.
    assert_status(&download(c, &img[8192..], 8192), Status::SUCCESS);
    assert_status(&download(c, &img[..8192], 0), Status::SUCCESS);
    // Slot 0: the controller chooses (the first empty writable slot, 2).
    assert_status(&raw(c, &cmd::firmware_commit(0, 1)), Status::SUCCESS);
    let log = slot_log(c);
    assert_eq!(log[0], 1 | 2 << 4, "slot 1 active, slot 2 activates at the next reset");
    assert_eq!(&log[16..24], b"NEWFW001");
    assert_eq!(firmware_revision(c), old, "nothing changes before the reset");
    c.reset().unwrap();
    assert_eq!(&firmware_revision(c), b"NEWFW001");
    assert_eq!(slot_log(c)[0], 2, "slot 2 active, nothing pending");
    // Slot 1 can be activated again; a Function Level Reset is a Controller Level Reset too.
    assert_status(&raw(c, &cmd::firmware_commit(1, 2)), Status::SUCCESS);
    c.function_reset().unwrap();
    assert_eq!(firmware_revision(c), old);
}

#[test]
fn activate_immediately_commits_and_reports_controller_level_reset_required() {
    let r = rig(cfg());
    if !r.is_sim() {
        return;
    }
    let c = &r.ctrl;
    assert_status(&download(c, &[0xa5u8; 8192], 0), Status::SUCCESS);
    let cqe = raw(c, &cmd::firmware_commit(3, 3));
    assert_status(&cqe, Status::FW_NEEDS_RESET);
    assert!(!cqe.status().dnr());
    assert_eq!(slot_log(c)[0], 1 | 3 << 4);
    // Not printable ASCII: the revision is derived from the image.
    let rev: [u8; 8] = slot_log(c)[24..32].try_into().unwrap();
    assert!(rev.starts_with(b"FW") && rev.iter().all(u8::is_ascii_graphic), "{rev:?}");
    c.subsystem_reset().unwrap();
    assert_eq!(firmware_revision(c), rev);
    // The image was consumed by the commit and downloads do not survive a reset.
    assert_status(&raw(c, &cmd::firmware_commit(2, 1)), Status::INVALID_FIRMWARE_IMAGE);
}

#[test]
fn uncommitted_pieces_are_discarded_by_a_controller_reset() {
    let r = rig(cfg());
    if !r.is_sim() {
        return;
    }
    assert_status(&download(&r.ctrl, &image(b"LOSTLOST", 4096), 0), Status::SUCCESS);
    r.ctrl.reset().unwrap();
    assert_status(&raw(&r.ctrl, &cmd::firmware_commit(2, 0)), Status::INVALID_FIRMWARE_IMAGE);
}

#[test]
fn short_self_test_progresses_completes_and_logs_newest_first() {
    let r = rig(cfg());
    let c = &r.ctrl;
    if c.identify().oacs & oacs::SELF_TEST == 0 {
        return;
    }
    wait_self_test_done(c, Duration::from_secs(150));
    let before = self_test_log(c);
    assert_status(&raw(c, &cmd::device_self_test(0, 1)), Status::SUCCESS);
    let log = self_test_log(c);
    assert_eq!(log[0], 1, "a short test runs");
    assert!(log[1] < 100);
    // A second test while one runs.
    assert_status(&raw(c, &cmd::device_self_test(0, 1)), Status::SELF_TEST_IN_PROGRESS);
    assert_status(&raw(c, &cmd::device_self_test(u32::MAX, 2)), Status::SELF_TEST_IN_PROGRESS);
    let log = wait_self_test_done(c, Duration::from_secs(150));
    assert_eq!(log[4], 0x10, "newest entry: short test (1h), completed without error (0h)");
    assert_eq!(log[4 + 28..4 + 28 * 20], before[4..4 + 28 * 19], "earlier results moved down one entry");
    if r.is_sim() {
        assert!(log[4 + 28..].chunks(28).all(|e| e[0] == 0x0f), "unused entries read Fh");
    }
}

#[test]
fn extended_self_test_completion_grows_and_abort_logs_result_1h() {
    let r = rig(cfg());
    if !r.is_sim() {
        return; // An extended test on a drive takes EDSTT minutes.
    }
    let c = &r.ctrl;
    assert_status(&raw(c, &cmd::device_self_test(1, 2)), Status::SUCCESS);
    std::thread::sleep(Duration::from_millis(300));
    let a = self_test_log(c);
    std::thread::sleep(Duration::from_millis(400));
    let b = self_test_log(c);
    assert_eq!((a[0], b[0]), (2, 2));
    assert!(a[1] >= 10 && b[1] > a[1] && b[1] < 100, "completion {}% then {}%", a[1], b[1]);
    // An extended test carries on through a Controller Level Reset.
    c.reset().unwrap();
    assert_eq!(self_test_log(c)[0], 2);
    assert_status(&raw(c, &cmd::device_self_test(1, 0xf)), Status::SUCCESS);
    let log = self_test_log(c);
    assert_eq!(log[0], 0);
    assert_eq!(log[4], 0x21, "extended test (2h) aborted by a Device Self-test command (1h)");
    // Abort with nothing running succeeds and logs nothing.
    assert_status(&raw(c, &cmd::device_self_test(0, 0xf)), Status::SUCCESS);
    assert_eq!(self_test_log(c)[4 + 28], 0x0f);
}

#[test]
fn short_self_test_is_aborted_by_a_controller_reset() {
    let r = rig(cfg());
    if !r.is_sim() {
        return;
    }
    assert_status(&raw(&r.ctrl, &cmd::device_self_test(u32::MAX, 1)), Status::SUCCESS);
    r.ctrl.reset().unwrap();
    let log = self_test_log(&r.ctrl);
    assert_eq!((log[0], log[4]), (0, 0x12), "short test (1h) aborted by a Controller Level Reset (2h)");
}

#[test]
fn self_test_namespace_must_be_0_all_or_an_active_namespace() {
    let r = rig(cfg());
    let c = &r.ctrl;
    if c.identify().oacs & oacs::SELF_TEST == 0 {
        return;
    }
    wait_self_test_done(c, Duration::from_secs(150));
    let nn = c.identify().nn;
    assert_status(&raw(c, &cmd::device_self_test(nn + 1, 1)), Status::INVALID_NAMESPACE);
    for nsid in [0, 1, u32::MAX] {
        assert_status(&raw(c, &cmd::device_self_test(nsid, 1)), Status::SUCCESS);
        assert_status(&raw(c, &cmd::device_self_test(nsid, 0xf)), Status::SUCCESS);
    }
    // Reserved Self-test Codes.
    assert_status(&raw(c, &cmd::device_self_test(0, 3)), Status::INVALID_FIELD);
}
