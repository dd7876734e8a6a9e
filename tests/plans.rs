//! Plans run end to end through the `nvplan run` command line: every reference plan under
//! `plans/` (shortened with `--time-scale`), exit codes, `summary.json`, interrupts, and
//! the same commands for the same seed. The seed's examples under `plans/seed/` run in
//! `tests/seed_plans.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use nvplan::exec::{self, Outcome, Summary};
use nvplan::ioworker::stats::CmdlogEntry;
use nvplan::plan;
use nvplan::sim::{FaultAction, FaultRule, Simulator};
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;
use serde_json::Value;

mod report_common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plans").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Plans run one at a time: each keeps its own threads busy, and timing expectations
/// (latency percentiles, event times) are about the plan, not about its neighbours.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn nvplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nvplan")).args(args).output().expect("nvplan runs")
}

/// `nvplan run tests/plans/run/NAME.yaml --out DIR`: the output and the output directory.
fn run_test_plan(name: &str) -> (Output, PathBuf) {
    let out = out_dir(name);
    let plan = root().join("tests/plans/run").join(format!("{name}.yaml"));
    (nvplan(&["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()]), out)
}

fn summary(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json was written");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The reference plans and the time scale that makes each a test of a few seconds.
const REFERENCE: &[(&str, f64)] = &[
    ("quickstart.yaml", 0.1),
    ("jedec-enterprise-endurance.yaml", 0.0001),
    ("snia-iops-matrix.yaml", 0.005),
    ("snia-pts-iops.yaml", 0.0005),
    ("snia-pts-throughput.yaml", 0.005),
    ("snia-pts-latency.yaml", 0.001),
    ("snia-pts-write-saturation.yaml", 0.0005),
    ("power-cycle-dirty.yaml", 0.05),
    ("reset-during-io.yaml", 0.05),
    ("pcie-resets-and-power-states.yaml", 0.25),
];

/// Runs `plans/NAME` shortened and checks that it passes, exits 0 and leaves a summary in
/// which every phase passed and every event fired on time.
fn run_reference(name: &str) -> Value {
    run_reference_on(name, None).0
}

/// As [`run_reference`], on `target` instead of the plan's own when given; also the output
/// directory.
fn run_reference_on(name: &str, target: Option<&str>) -> (Value, PathBuf) {
    let _one = serial();
    let &(_, scale) = REFERENCE.iter().find(|r| r.0 == name).expect("listed in REFERENCE");
    let out = out_dir(&format!("{name}{}", target.map_or(String::new(), |t| format!("-{t}"))));
    let plan = root().join("plans").join(name);
    let scale = scale.to_string();
    let mut args = vec!["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--time-scale", &scale];
    if let Some(t) = target {
        args.extend(["--target", t]);
    }
    let o = nvplan(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{name}: {stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    assert_eq!(s["outcome"], "pass");
    assert_eq!(s["time_scale"].as_f64(), Some(scale.parse().unwrap()));
    let mut late = Vec::new();
    for p in s["phases"].as_array().unwrap() {
        assert_eq!(p["outcome"], "pass", "{}", p["label"]);
        // Events run one after the other: one due while the previous one still runs (a
        // power cycle's bring-up does not shrink with the time scale) is due when that ends.
        let mut free_s = 0.0f64;
        for e in p["events"].as_array().unwrap() {
            assert_eq!(e["outcome"], "pass", "{}: {}", p["label"], e["name"]);
            let (planned, actual) = (e["planned_s"].as_f64().unwrap(), e["actual_s"].as_f64().unwrap());
            late.push((actual - planned.max(free_s)).abs() * 1e3);
            free_s = actual + e["duration_ms"].as_f64().unwrap() / 1e3;
        }
    }
    // Events fire on time (±10 ms); a loaded two-core host may deschedule the timeline
    // thread now and then, so one in twenty may be later, none by 100 ms.
    let on_time = late.iter().filter(|&&l| l <= 10.0).count();
    assert!(on_time * 20 >= late.len() * 19, "{name}: {on_time} of {} events within 10 ms: {late:?}", late.len());
    assert!(late.iter().all(|&l| l < 100.0), "{name}: {late:?}");
    (s, out)
}

#[test]
fn every_reference_plan_is_run_here() {
    for e in std::fs::read_dir(root().join("plans")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(REFERENCE.iter().any(|r| r.0 == name), "plans/{name} is not run by tests/plans.rs");
        }
    }
    let src = std::fs::read_to_string(file!()).unwrap();
    for (name, _) in REFERENCE {
        let called = [format!("run_reference(\"{name}\")"), format!("run_reference_on(\"{name}\", None)")];
        assert!(called.iter().any(|c| src.contains(c.as_str())), "{name} has no test");
    }
}

#[test]
fn quickstart_passes_and_verifies_everything_it_read() {
    let s = run_reference("quickstart.yaml");
    let mixed = &s["phases"][1];
    assert_eq!(mixed["events"][0]["kind"], "reset");
    for w in mixed["workers"].as_array().unwrap() {
        assert!(w["resumes"].as_u64().unwrap() >= 1, "{}: on_reset resume came back", w["name"]);
        assert_eq!(w["miscompare_count"], 0);
    }
    assert!(mixed["workers"][0]["io_per_second"].is_array());
    assert_eq!(mixed["workers"][0]["percentile_latency"].as_array().unwrap().len(), 3);
}

#[test]
fn jedec_endurance_passes() {
    let s = run_reference("jedec-enterprise-endurance.yaml");
    let w = &s["phases"][1]["workers"][0];
    assert!(w["io_count_write"].as_u64().unwrap() > 1000);
}

#[test]
fn snia_matrix_runs_every_cell() {
    let s = run_reference("snia-iops-matrix.yaml");
    let cells: Vec<&Value> = s["phases"].as_array().unwrap().iter().filter(|p| p["name"] == "iops").collect();
    assert_eq!(cells.len(), 56, "8 block sizes × 7 mixes");
    assert_eq!(cells[0]["sweep"]["io_size"], "512B");
}

/// The steady-state record of phase `phase`.
fn steady<'a>(s: &'a Value, phase: &str) -> &'a Value {
    s["steady_state"].as_array().unwrap().iter().find(|r| r["phase"] == phase).expect("the phase ran in rounds")
}

#[test]
fn snia_pts_iops_reaches_steady_state_only_after_garbage_collection_slowed_writes() {
    let (s, out) = run_reference_on("snia-pts-iops.yaml", None);
    let ss = steady(&s, "iops");
    let series: Vec<f64> = ss["series"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let reached = ss["reached"].as_u64().expect("steady state reached") as usize;
    assert_eq!(series.len(), reached, "no round runs after steady state");
    assert_eq!(s["phases"].as_array().unwrap().iter().filter(|p| p["name"] == "iops").count(), 56 * reached, "56 cells a round");
    // The GC model slows writes from 2 to 10 capacities written since the purge (the
    // precondition writes 2): find the round in which the slowdown was complete.
    let cap = 256u64 << 20;
    let (mut written, mut ramp_done) = (0u64, None);
    for p in s["phases"].as_array().unwrap() {
        written += p["workers"].as_array().unwrap().iter().map(|w| w["lba_count_write"].as_u64().unwrap() * 512).sum::<u64>();
        if p["name"] == "iops" && ramp_done.is_none() && written >= 10 * cap {
            ramp_done = Some(p["repeat"].as_u64().unwrap() as usize + 1);
        }
    }
    let ramp_done = ramp_done.expect("the rounds wrote past the slowdown");
    assert!(reached > ramp_done, "steady in round {reached}, the slowdown ended in round {ramp_done}: {series:?}");
    let avg = ss["window"]["average"].as_f64().unwrap();
    assert!(series[0] > 1.5 * avg, "fresh out of the box is faster than steady state: {series:?}");
    // GC adds 4 ms to 4 ms writes at 32 outstanding: 8000 IOPS fall to 4000.
    assert!((3400.0..4600.0).contains(&avg), "{avg}");
    assert_eq!(ss["checks"][0]["pass"], true);
    pts_report_is_there(&out, "iops");
    // The plan as it ran holds the rounds that ran, one phase each.
    let resolved = plan::load(&out.join("plan.resolved.yaml")).expect("the resolved plan loads");
    assert_eq!(resolved.plan.phases.len(), s["phases"].as_array().unwrap().len());
}

#[test]
fn snia_pts_iops_without_garbage_collection_is_steady_in_the_fifth_round() {
    let (s, _) = run_reference_on("snia-pts-iops.yaml", Some("sim:ns=256MiB,mdts=8,latency=4ms"));
    let ss = steady(&s, "iops");
    let series: Vec<f64> = ss["series"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let reached = ss["reached"].as_u64().expect("steady state reached");
    if reached != 5 {
        // Only a round the host stalled (a loaded two-core machine) may delay the verdict:
        // then a round of the first window is off the median by more than the range.
        let mut sorted = series.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        assert!(series[..5].iter().any(|v| (v - median).abs() > 0.2 * median), "steady in round {reached}, not 5, with no stall: {series:?}");
    }
    // Without garbage collection every round runs at the 4 ms latency: 8000 IOPS at 32.
    assert!(series.iter().filter(|&&v| v > 6500.0).count() * 5 >= series.len() * 4, "{series:?}");
}

#[test]
fn snia_pts_throughput_reaches_steady_state_for_both_block_sizes() {
    let (s, out) = run_reference_on("snia-pts-throughput.yaml", None);
    for phase in ["seq-128k", "seq-1024k"] {
        let ss = steady(&s, phase);
        assert!(ss["reached"].as_u64().is_some(), "{phase}: {ss}");
        assert_eq!(ss["track"], "mbps");
        pts_report_is_there(&out, phase);
    }
    // Purge, preconditioning and rounds of each block size, in that order.
    let names: Vec<&str> = s["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["purge-128k", "precondition-128k", "seq-128k"]);
    assert_eq!(s["phases"][0]["events"][0]["name"], "purge: sanitize_block", "the simulator's first purge method");
    // Preconditioning wrote the namespace twice over in 128 KiB writes.
    let pre = &s["phases"][1]["workers"][0];
    assert_eq!((pre["name"].as_str(), pre["lba_count_write"].as_u64()), (Some("precondition"), Some(2 * (128 << 20) / 512)));
}

#[test]
fn snia_pts_latency_tracks_the_average_write_latency_at_one_outstanding_io() {
    let (s, out) = run_reference_on("snia-pts-latency.yaml", None);
    let ss = steady(&s, "latency");
    let reached = ss["reached"].as_u64().expect("steady") as usize;
    assert_eq!(ss["track"], "latency_mean_us");
    // 1 ms writes: the average is that plus the host's share.
    let avg = ss["window"]["average"].as_f64().unwrap();
    assert!((1000.0..1500.0).contains(&avg), "{avg}");
    let cells: Vec<&Value> = s["phases"].as_array().unwrap().iter().filter(|p| p["name"] == "latency").collect();
    assert_eq!(cells.len(), 9 * reached);
    let all = cells[0]["workers"][0]["latency"].as_array().unwrap().iter().find(|l| l["class"] == "all").unwrap();
    assert!(all["percentiles"].as_array().unwrap().iter().any(|p| p[0] == 99.999));
    pts_report_is_there(&out, "latency");
}

#[test]
fn snia_pts_write_saturation_writes_four_capacities_and_slows_down() {
    let (s, out) = run_reference_on("snia-pts-write-saturation.yaml", None);
    let w = &s["phases"][1]["workers"][0];
    assert_eq!(w["lba_count_write"].as_u64().unwrap() * 512, 4 * (64 << 20), "stopped after four capacities");
    let ts = &w["timeseries"];
    let ios: Vec<f64> = ts["ios"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let n = ios.len();
    assert!(n >= 8, "{ts}");
    // Fastest interval fresh out of the box against the median once saturated (the last,
    // partial interval left out).
    let first = ios[..n / 4].iter().copied().fold(0.0, f64::max);
    let mut late = ios[n / 2..n - 1].to_vec();
    late.sort_by(f64::total_cmp);
    let last = late[late.len() / 2];
    assert!(first > 1.5 * last, "fresh out of the box {first} vs saturated {last} per interval: {ios:?}");
    assert!(out.join("charts/01-wsat-iops.png").exists(), "IOPS over time is drawn");
    pts_report_is_there(&out, "wsat");
}

/// The PTS report page of `phase`: one HTML file with its charts inside.
fn pts_report_is_there(out: &Path, phase: &str) {
    let page = out.join(format!("pts-{phase}.html"));
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    assert!(html.contains("data:image/png;base64,"), "charts are inside the page");
    assert!(!html.contains("src=\"charts/"), "nothing outside the page");
}

#[test]
fn power_cycle_dirty_50_times_loses_nothing_flushed() {
    let s = run_reference("power-cycle-dirty.yaml");
    let losses: Vec<&Value> = s["phases"].as_array().unwrap().iter().filter(|p| p["name"] == "power-loss").collect();
    assert_eq!(losses.len(), 50);
    let mut reverted = 0;
    let mut missed: Vec<String> = Vec::new();
    for p in &losses {
        for w in p["workers"].as_array().unwrap() {
            assert_eq!(w["miscompare_count"], 0, "{}", p["label"]);
            if w["resumes"].as_u64().unwrap() == 0 {
                missed.push(format!("{} {}", p["label"], w["name"]));
            }
            reverted += w["lbas_reverted"].as_u64().unwrap();
        }
    }
    // A worker resumes when it next looks at its queue pair; on a host short of CPU that
    // can come after its (shortened) time is up. Most of the 100 must resume.
    assert!(missed.len() <= 5, "workers that did not resume after the power cycle: {missed:?}");
    assert!(reverted > 0, "unflushed writes were lost and read back as older data, as allowed");
}

#[test]
fn reset_during_io_passes_every_sweep_point() {
    let s = run_reference("reset-during-io.yaml");
    assert_eq!(s["phases"].as_array().unwrap().len(), 7, "fill, then 3 repeats × 2 sizes");
}

/// A plan of `plans/` with `repeat: 50` cut to `repeats`, on the simulator `sim`.
fn power_cycle_plan(repeats: u32) -> plan::LoadedPlan {
    let text = std::fs::read_to_string(root().join("plans/power-cycle-dirty.yaml")).unwrap();
    plan::load_str("power-cycle-dirty.yaml", &text.replace("repeat: 50", &format!("repeat: {repeats}"))).unwrap()
}

fn run_on(p: &plan::LoadedPlan, sim: &Arc<Simulator>, seed: Option<u64>, scale: f64) -> Summary {
    let t: SharedTransport = Arc::new(SimTransport::attach(sim.clone()));
    let stop = AtomicBool::new(false);
    exec::run_plan(p, Ok(t), seed, scale, &stop, &mut |_: &exec::Summary| {})
}

#[test]
fn a_drive_that_acknowledges_flushes_without_doing_them_fails_the_power_cycle_plan() {
    let _one = serial();
    let p = power_cycle_plan(2);
    let sim = Simulator::new(plan::sim_config(&p, None).unwrap()).unwrap();
    sim.inject(FaultRule::io(0x00, u32::MAX, FaultAction::IgnoreFlush));
    let s = run_on(&p, &sim, None, 0.1);
    assert_eq!(s.outcome, Outcome::Fail);
    let mis: Vec<_> = s.phases.iter().flat_map(|p| &p.workers).flat_map(|w| &w.result.miscompares).collect();
    assert!(!mis.is_empty(), "data the drive said was flushed came back older");
}

fn cmdlog<'a>(s: &'a Summary, worker: &str) -> &'a [CmdlogEntry] {
    let w = s.phases[0].workers.iter().find(|w| w.name == worker).expect("the worker");
    w.result.cmdlog.as_deref().expect("the plan asks for a command log")
}

/// The commands of a log: in order for a worker at queue depth 1, as a sorted list for
/// one whose commands complete in whatever order the device finishes them.
fn commands(log: &[CmdlogEntry], ordered: bool) -> Vec<(u64, u32, u8, u16)> {
    let mut v: Vec<_> = log.iter().map(|e| (e.slba, e.nlb, e.opcode, e.status)).collect();
    if !ordered {
        v.sort_unstable();
    }
    v
}

#[test]
fn same_plan_and_seed_give_the_same_cmdlog_twice() {
    let _one = serial();
    let p = plan::load(&root().join("tests/plans/run/same-seed.yaml")).unwrap();
    let run = |seed| {
        let sim = Simulator::new(plan::sim_config(&p, None).unwrap()).unwrap();
        let s = run_on(&p, &sim, seed, 1.0);
        assert_eq!(s.outcome, Outcome::Pass);
        s
    };
    let (a, b, other) = (run(None), run(None), run(Some(43)));
    for (w, ordered) in [("random", false), ("walk", true)] {
        let (la, lb) = (cmdlog(&a, w), cmdlog(&b, w));
        assert_eq!(la.len(), if w == "random" { 20_000 } else { 5_000 });
        assert!(commands(la, ordered) == commands(lb, ordered), "{w}: the same seed sent other commands");
        assert!(commands(la, ordered) != commands(cmdlog(&other, w), ordered), "{w}: another seed sent the same commands");
    }
}

#[test]
fn an_unmet_expectation_exits_1_and_the_summary_says_what_was_expected_and_measured() {
    let _one = serial();
    let (o, out) = run_test_plan("unmet-expectation");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("expected iops_min 1000000000, got"), "{stdout}");
    let s = summary(&out);
    assert_eq!(s["outcome"], "fail");
    let check = &s["phases"][0]["checks"][0];
    assert_eq!((check["what"].as_str(), check["expected"].as_str(), check["pass"].as_bool()), (Some("iops_min"), Some("1000000000"), Some(false)));
    assert!(check["actual"].as_str().unwrap().parse::<f64>().unwrap() > 1000.0);
    assert_eq!(s["phases"][1]["outcome"], "pass", "later phases still run");
}

#[test]
fn invalid_plans_exit_2_before_anything_runs() {
    let out = out_dir("invalid");
    let bad = root().join("tests/plans/invalid/qdepth-too-large.yaml");
    let good = root().join("tests/plans/run/unmet-expectation.yaml");
    let o = nvplan(&["run", good.to_str().unwrap(), bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("qdepth-too-large.yaml:"));
    assert!(!out.exists(), "nothing ran");
}

#[test]
fn sigterm_drains_the_workers_and_leaves_an_interrupted_summary() {
    let _one = serial();
    let out = out_dir("sigterm");
    let plan = root().join("tests/plans/run/long.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nvplan"))
        .args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: sends a signal to the child this test started and still owns.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let t = Instant::now();
    let status = child.wait().unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "drained in {:?}", t.elapsed());
    assert_eq!(status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(s["outcome"], "interrupted");
    assert_eq!(s["complete"], false);
    says_at_the_top(&out, "interrupted", false);
    let p = &s["phases"][0];
    assert_eq!(p["outcome"], "interrupted");
    let w = &p["workers"][0];
    assert!(w["io_count_read"].as_u64().unwrap() > 1000, "what was measured is kept");
    assert!(w["io_per_second"].as_array().unwrap().len() >= 2);
    assert_eq!(p["events"][0]["outcome"], "skipped", "the reset at 30 s never came");
    assert_eq!(s["phases"][1]["outcome"], "skipped");
    interrupted_report_is_complete_so_far(&out);
}

/// `summary.json` begins with the run's outcome and whether it ended.
fn says_at_the_top(out: &Path, outcome: &str, complete: bool) {
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let head = format!("{{\n  \"outcome\": \"{outcome}\",\n  \"complete\": {complete},\n");
    assert!(text.starts_with(&head), "summary.json begins:\n{}", &text[..text.len().min(120)]);
}

/// Waits (30 s at most) until `out/summary.json` lists `phases` phase runs.
fn wait_for_phases(out: &Path, phases: usize) {
    let t = Instant::now();
    loop {
        let listed = std::fs::read_to_string(out.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|s| s["phases"].as_array().map(Vec::len));
        if listed == Some(phases) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no summary with {phases} phase runs in {}", out.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL: the process ends at once, without a word.
fn kill(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_killed_outright_leaves_a_summary_that_says_incomplete_never_pass() {
    let _one = serial();
    let spawn = |plan: &str, out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_nvplan"))
            .args(["run", root().join("tests/plans/run").join(plan).to_str().unwrap(), "--out", out.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Killed in its first phase run: the summary written as the run started.
    let out = out_dir("killed-first");
    let mut child = spawn("long.yaml", &out);
    wait_for_phases(&out, 0);
    std::thread::sleep(Duration::from_millis(300));
    kill(&mut child);
    says_at_the_top(&out, "incomplete", false);
    // Killed after a phase run that passed: still not `pass`.
    let out = out_dir("killed-second");
    let mut child = spawn("pass-then-long.yaml", &out);
    wait_for_phases(&out, 1);
    kill(&mut child);
    says_at_the_top(&out, "incomplete", false);
    let s = summary(&out);
    assert_eq!((s["phases"][0]["label"].as_str(), s["phases"][0]["outcome"].as_str()), (Some("quick"), Some("pass")));
    let m: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!((m["outcome"].as_str(), m["complete"].as_bool(), m["ended"].is_null()), (Some("incomplete"), Some(false), true));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("incomplete: the run had not ended when this report was written"), "{junit}");
}

#[test]
fn a_worker_that_fails_half_way_fails_the_run_and_later_phases_still_run() {
    let _one = serial();
    let (o, out) = run_test_plan("worker-fails");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    says_at_the_top(&out, "fail", true);
    let s = summary(&out);
    let p = &s["phases"][0];
    assert_eq!(p["outcome"], "fail");
    let w = &p["workers"][0];
    assert_eq!((w["outcome"].as_str(), w["error"].as_i64()), (Some("fail"), Some(-6)));
    assert!(w["error_message"].as_str().unwrap().contains("00/01 Invalid Command Opcode"), "{w}");
    let sent = w["io_count_read"].as_u64().unwrap() + w["io_count_nonread"].as_u64().unwrap();
    assert!((101..200).contains(&sent), "it stopped at the refused command, not at the end of its 200: {sent}");
    assert!(w["mseconds"].as_u64().unwrap() < 1000, "half-way through its one second: {}", w["mseconds"]);
    assert_eq!(s["phases"][1]["outcome"], "pass", "the next phase still ran");
}

/// Every summary a run hands its observer before its end says `incomplete` (or `fail`,
/// once a phase run failed), and `complete: false`; only the final one says `pass`.
#[test]
fn summaries_before_the_end_of_a_run_never_say_pass() {
    let _one = serial();
    struct Seen(Vec<(Outcome, bool, usize)>);
    impl exec::Observer for Seen {
        fn started(&mut self, s: &Summary) {
            self.0.push((s.outcome, s.complete, s.phases.len()));
        }
        fn phase_done(&mut self, s: &Summary) {
            self.0.push((s.outcome, s.complete, s.phases.len()));
        }
    }
    let p = plan::load_str(
        "p.yaml",
        "name: t\ntarget: sim:ns=64MiB\nphases:\n  - {name: a, ioworkers: [{io_count: 100}]}\n  - {name: b, ioworkers: [{io_count: 100}], expect: {iops_min: 1e12}}\n  - {name: c, ioworkers: [{io_count: 100}]}\n",
    )
    .unwrap();
    let sim = Simulator::new(plan::sim_config(&p, None).unwrap()).unwrap();
    let t: SharedTransport = Arc::new(SimTransport::attach(sim));
    let mut seen = Seen(Vec::new());
    let s = exec::run_plan(&p, Ok(t), None, 1.0, &AtomicBool::new(false), &mut seen);
    use Outcome::{Fail, Incomplete};
    assert_eq!(seen.0, [(Incomplete, false, 0), (Incomplete, false, 1), (Fail, false, 2), (Fail, false, 3)]);
    assert_eq!((s.outcome, s.complete), (Fail, true));
}

/// The report of an interrupted run: every file its manifest lists, marked incomplete,
/// with the interrupted phase's data in the CSVs, JUnit and charts.
fn interrupted_report_is_complete_so_far(out: &Path) {
    let m: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!((m["complete"].as_bool(), m["outcome"].as_str()), (Some(false), Some("interrupted")));
    assert!(m["ended"].is_string(), "the run ended, interrupted");
    let files: Vec<&str> = m["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    for f in &files {
        assert!(out.join(f).is_file(), "{f} is listed but missing");
    }
    let rows = |name: &str| -> Vec<::csv::StringRecord> {
        let text = std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        ::csv::Reader::from_reader(text.as_bytes()).records().map(|r| r.unwrap()).collect()
    };
    // Every row starts with the run's identity columns.
    let id = nvplan::exec::Identity::COLUMNS.len();
    let w = rows("workers.csv");
    assert_eq!((w.len(), &w[0][id + 1], &w[0][id + 4]), (1, "minute", "interrupted"), "the interrupted phase's worker");
    let ts = rows("io_per_second.csv");
    assert!(ts.len() >= 2 && ts.iter().all(|r| &r[id + 1] == "minute"), "{} samples", ts.len());
    assert!(!rows("latency_percentiles.csv").is_empty() && !rows("latency_histogram.csv").is_empty());
    let ev = rows("events.csv");
    assert_eq!((&ev[0][id + 2], &ev[0][id + 12]), ("reset", "skipped"));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"run: complete\"") && junit.contains("interrupted after"), "{junit}");
    assert!(junit.contains("<skipped message="), "the phase never reached");
    let charts: Vec<&&str> = files.iter().filter(|f| f.ends_with(".png")).collect();
    assert_eq!(charts.len(), 3, "the interrupted phase's histogram, percentiles and IOPS: {charts:?}");
    for c in charts {
        report_common::check_png(&out.join(c), (800, 400));
    }
}

#[test]
fn pcie_resets_and_d3hot_under_io_read_back_pmcsr_and_lose_no_data() {
    let s = run_reference("pcie-resets-and-power-states.yaml");
    let p = &s["phases"][1];
    let details: Vec<&str> = p["events"].as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap()).collect();
    assert_eq!(details[0], "flr");
    assert_eq!(details[1], "pcie_hot");
    assert_eq!(details[2], "D3hot for 50 ms, then D0; PMCSR reads 0x0003 in D3hot, 0x0000 back in D0");
    for w in p["workers"].as_array().unwrap() {
        assert_eq!(w["resumes"], 3, "{}: FLR, hot reset and D3hot each took its queue away", w["name"]);
        assert_eq!(w["miscompare_count"], 0);
    }
}

#[test]
fn aspm_and_link_disable_events_report_link_control_as_read_back() {
    let _one = serial();
    let (o, out) = run_test_plan("pcie-link-and-aspm");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let s = summary(&out);
    let ev: Vec<String> = s["phases"][0]["events"].as_array().unwrap().iter().map(|e| e["detail"].as_str().unwrap().to_string()).collect();
    assert_eq!(ev[0], "ASPM L1; ASPM off -> L1: Link Control reads 0x0002");
    assert_eq!(ev[1], "link_disable");
    assert_eq!(ev[2], "ASPM L0s and L1; ASPM L1 -> L0s and L1: Link Control reads 0x0003");
    assert_eq!(ev[3], "ASPM off; ASPM L0s and L1 -> off: Link Control reads 0x0000");
    assert_eq!(ev[4], "D0; PMCSR reads 0x0000");
    assert_eq!(s["phases"][0]["workers"][0]["resumes"], 1, "the link down reset the controller once");
}

#[test]
fn every_kind_of_event_fires_under_io_and_the_data_still_verifies() {
    let _one = serial();
    let (o, out) = run_test_plan("events");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    let s = summary(&out);
    let p = &s["phases"][1];
    let ev = |name: &str| p["events"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("event {name}")).clone();
    for e in p["events"].as_array().unwrap() {
        assert_eq!(e["outcome"], "pass", "{e}");
    }
    assert_eq!(ev("get_log_page")["status"], "00/00");
    assert_ne!(ev("queues")["cdw0"], 0, "Number of Queues reports what was allocated");
    assert_eq!(ev("cache-state")["cdw0"], 0, "the write cache was turned off");
    assert_eq!(ev("bad-feature")["status"], "00/02", "Invalid Field, as expected");
    assert_eq!((p["events"][10]["name"].as_str(), p["events"][10]["detail"].as_str()), (Some("reset"), Some("subsystem")));
    assert_eq!(p["events"][11]["detail"], "pcie");
    let cycle = ev("dirty-cycle")["detail"].as_str().unwrap().to_string();
    assert!(cycle.starts_with("dirty, off 100 ms; simulator: off and on ") && cycle.contains("ms from power on to ready"), "{cycle}");
    let w = &p["workers"][0];
    assert_eq!(w["resumes"], 4, "subsystem reset, PCIe reset and two power cycles");
    assert_eq!(w["miscompare_count"], 0);
    assert_eq!(s["phases"][2]["events"].as_array().unwrap().len(), 2);
    assert_eq!(s["phases"][3]["outcome"], "pass", "the read-back after Format and Sanitize");
}
