//! The worker's life: start, stop from outside, a device that stops answering, stalls,
//! and the shape of its result.

mod common;

use std::time::{Duration, Instant};

use nvplan::ioworker::{IoWorkerConfig, code};
use nvplan::sim::{FaultAction, FaultRule, NamespaceConfig, SimConfig};

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(64 << 20, 512)], ..Default::default() }
}

#[test]
fn external_stop_returns_promptly_even_when_the_device_never_answers_again() {
    let r = common::rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    let w =
        ns.ioworker(IoWorkerConfig { time: Some(Duration::from_secs(30)), read_percentage: 50, region_end: vec![4096], ..Default::default() }).unwrap().start();
    std::thread::sleep(Duration::from_millis(300));
    // The drive loses power under the worker: nothing it has outstanding will complete.
    r.sim().power_off(true);
    let t = Instant::now();
    w.stop();
    let res = w.close();
    assert!(t.elapsed() < Duration::from_secs(1), "returned after {:?}", t.elapsed());
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    assert!(res.io_count() > 1000, "partial counts are kept: {}", res.io_count());
    // The worker's clock starts on its own thread, a little after `start()` returns.
    assert!(res.mseconds >= 250 && res.mseconds < 2000, "{}", res.mseconds);
}

/// Runs a worker for 300 ms, takes its queue pair away with `cut`, and returns the error
/// message of the worker, which ends by itself.
fn aborted_message(r: &common::Rig, cut: impl FnOnce()) -> String {
    let ns = r.ctrl.namespace(1).unwrap();
    let mut w =
        ns.ioworker(IoWorkerConfig { time: Some(Duration::from_secs(30)), read_percentage: 50, region_end: vec![4096], ..Default::default() }).unwrap().start();
    std::thread::sleep(Duration::from_millis(300));
    cut();
    let res = w.wait_timeout(Duration::from_secs(5)).expect("the worker ends when its commands are aborted");
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    res.error_message.unwrap()
}

#[test]
fn aborted_io_says_whether_the_controller_still_answers() {
    let r = common::rig(cfg());
    // The message names an aborted command, or, where the reset found none in flight,
    // says so; either way it ends with why.
    let m = aborted_message(&r, || r.ctrl.reset().unwrap());
    assert!(m.ends_with("by a reset or power loss"), "{m}");
    // Powered off (or removed), the function's registers read all ones.
    let m = aborted_message(&r, || r.ctrl.power_off(true).unwrap());
    assert!(m.contains(": the controller no longer answers (its registers read FFFFFFFFh"), "{m}");
}

#[test]
fn io_per_second_stays_aligned_to_wall_seconds_when_the_device_stalls() {
    let r = common::rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    // At 1000 IOPS, I/Os 1500..1510 each take 2 s: qdepth 8 fills with stalled commands,
    // so nothing completes for about 2 s after t = 1.5 s.
    r.sim().inject(FaultRule::io(2, 10, FaultAction::Delay(Duration::from_secs(2))).after(1500));
    let c =
        IoWorkerConfig { time: Some(Duration::from_secs(5)), iops: 1000, qdepth: 8, region_end: vec![4096], output_io_per_second: true, ..Default::default() };
    let res = ns.ioworker(c).unwrap().run();
    assert_eq!(res.error, code::SLOW_IO, "2 s is above the 1 s slow_latency: {:?}", res.error_message);
    let ps = res.io_per_second.as_deref().unwrap();
    assert_eq!(ps.len(), 5, "{ps:?}");
    assert!((990..=1010).contains(&ps[0]), "{ps:?}");
    assert!(ps[2] < 100, "the stalled second shows the stall, not a shifted count: {ps:?}");
    // The schedule catches up after the stall: the total is still about 5000.
    let total: u64 = ps.iter().sum();
    assert!((4900..=5010).contains(&total), "{ps:?} {:?} {} {}", res.error_message, res.mseconds, res.io_count());
    assert!(res.iops_consistency.unwrap() < 0.2);
}

#[test]
fn result_serialises_with_the_seed_field_names() {
    let r = common::rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    let res = ns.ioworker(IoWorkerConfig { io_count: 100, output_percentile_latency: vec![99.0, 99.9], ..Default::default() }).unwrap().run();
    let v = serde_json::to_value(&res).unwrap();
    for k in [
        "io_count_read",
        "io_count_nonread",
        "io_count_write",
        "mseconds",
        "latency_max_us",
        "latency_average_us",
        "error",
        "error_cmd",
        "error_cpl",
        "cpu_usage",
        "latency_distribution",
        "lba_count_read",
        "lba_count_nonread",
        "lba_count_write",
        "test_start_sec",
        "test_start_nsec",
        "percentile_latency",
    ] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    assert_eq!(v["io_count_read"], 100);
    assert_eq!(v["error_cmd"].as_array().unwrap().len(), 16);
    assert!(v.get("histogram").is_none(), "the histogram stays out of JSON");
}

#[test]
fn configuration_errors_name_the_parameter_and_the_fix() {
    let r = common::rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    let e = ns.ioworker(IoWorkerConfig { read_percentage: 120, time: Some(Duration::from_secs(1)), ..Default::default() }).unwrap_err();
    assert_eq!(e.field, "read_percentage");
    let e = ns.ioworker(IoWorkerConfig::default()).unwrap_err();
    assert_eq!(e.field, "time");
    assert!(e.to_string().contains("give time, io_count or lba_count"), "{e}");
    let e = ns.ioworker(IoWorkerConfig { qdepth: 4096, io_count: 10_000, ..Default::default() }).unwrap_err();
    assert!(e.to_string().contains("CAP.MQES"), "{e}");
}

#[test]
fn on_reset_resume_keeps_running_through_a_controller_reset() {
    let r = common::rig(cfg());
    let ns = r.ctrl.namespace(1).unwrap();
    let c = IoWorkerConfig {
        time: Some(Duration::from_secs(2)),
        read_percentage: 50,
        region_end: vec![4096],
        on_reset: nvplan::ioworker::OnReset::Resume,
        ..Default::default()
    };
    let w = ns.ioworker(c.clone()).unwrap().start();
    std::thread::sleep(Duration::from_millis(700));
    r.ctrl.reset().unwrap();
    let res = w.close();
    assert_eq!((res.error, res.miscompare_count, res.resumes), (0, 0, 1), "{:?}", res.error_message);
    assert!(res.mseconds >= 1900, "ran to its own stop condition: {}", res.mseconds);
    // The default stops at the reset, as PyNVMe does.
    let w = ns.ioworker(IoWorkerConfig { on_reset: nvplan::ioworker::OnReset::Stop, ..c }).unwrap().start();
    std::thread::sleep(Duration::from_millis(300));
    r.ctrl.reset().unwrap();
    let res = w.close();
    assert_eq!(res.error, code::TERMINATED, "{:?}", res.error_message);
    assert!(res.mseconds < 1500);
}
