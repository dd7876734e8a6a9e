//! The metamode plans under `plans/metamode/` (PyNVMe3 IO models section 2 and the raw-queue
//! corner cases) run through `nvplan run`: every step passes and is reported. A wrong
//! expectation fails the run with expected and actual CQE; bad metamode sections are
//! refused with their line and column.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use nvplan::exec::{self, Outcome};
use nvplan::plan;
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("metamode").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn nvplan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nvplan")).args(args).output().expect("nvplan runs")
}

/// The plans with a test below.
const PLANS: &[&str] = &["read-flow", "prp-list-offsets", "three-sqs-one-cq", "same-cid", "invalid-doorbell-aer", "raw-queue-corners"];

/// Runs `plans/metamode/NAME.yaml`; checks exit 0, every step passed, and the report's
/// metamode CSV and JUnit cases. Returns the summary.
fn run(name: &str) -> Value {
    let out = out_dir(name);
    let plan = root().join("plans/metamode").join(format!("{name}.yaml"));
    let o = nvplan(&["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(o.status.code(), Some(0), "{name}: {}\n{s:#}", String::from_utf8_lossy(&o.stdout));
    let mut steps = 0;
    for p in s["phases"].as_array().unwrap() {
        for st in p["metamode"].as_array().expect("steps reported") {
            assert_eq!(st["outcome"], "pass", "{name}: {st}");
            steps += 1;
        }
    }
    let csv = std::fs::read_to_string(out.join("metamode.csv")).unwrap();
    assert_eq!(csv.lines().count(), steps + 1, "one row per step");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("metamode") && !junit.contains("<failure"), "{junit}");
    s
}

fn steps(s: &Value, phase: usize) -> Vec<Value> {
    s["phases"][phase]["metamode"].as_array().unwrap().clone()
}

#[test]
fn every_metamode_plan_has_a_test() {
    for e in std::fs::read_dir(root().join("plans/metamode")).unwrap() {
        let p = e.unwrap().path();
        let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(PLANS.contains(&stem.as_str()), "plans/metamode/{stem}.yaml has no test in tests/metamode_plans.rs");
    }
}

#[test]
fn read_flow_plan_reads_back_what_it_wrote_by_hand_and_with_the_helper() {
    let s = run("read-flow");
    let st = steps(&s, 0);
    let cqe = st.iter().find(|x| x["step"] == "expect_cqe" && x["detail"] == "CQ 1 slot 1").unwrap();
    assert!(cqe["actual"].as_str().unwrap().contains("cid=0 sqid=1 sqhd=2 p=1 status=00/00"), "{cqe}");
    assert_eq!(st.iter().filter(|x| x["step"] == "expect_buffer").count(), 2);
}

#[test]
fn prp_list_plan_scatters_through_offsets_and_refuses_an_offset_list_entry() {
    let s = run("prp-list-offsets");
    let st = steps(&s, 0);
    let last = st.iter().rev().find(|x| x["step"] == "expect_cqe").unwrap();
    assert!(last["actual"].as_str().unwrap().contains("status=00/13"), "{last}");
}

#[test]
fn three_sqs_plan_completes_each_sq_into_the_one_cq_in_order() {
    let s = run("three-sqs-one-cq");
    let sqids: Vec<String> = steps(&s, 0).iter().filter(|x| x["step"] == "expect_cqe").map(|x| x["expected"].as_str().unwrap().to_string()).collect();
    assert_eq!(sqids.len(), 3);
    assert!(sqids[2].contains("sqid 3") && sqids[2].contains("cid 3"), "{sqids:?}");
}

#[test]
fn same_cid_plan_sees_both_completions_with_cid_1() {
    let s = run("same-cid");
    let st = steps(&s, 0);
    let second = st.iter().find(|x| x["detail"] == "CQ 1 slot 1").unwrap();
    assert!(second["actual"].as_str().unwrap().contains("cid=1"), "{second}");
}

#[test]
fn invalid_doorbell_plan_raises_the_spec_events() {
    let s = run("invalid-doorbell-aer");
    let aers: Vec<String> = steps(&s, 0).iter().filter(|x| x["step"] == "expect_aer").map(|x| x["actual"].as_str().unwrap().to_string()).collect();
    assert_eq!(aers, ["0x10100", "0x10100", "0x10000"]);
}

#[test]
fn raw_queue_corners_plan_covers_phase_tags_small_queues_reserved_fields_and_bad_prps() {
    let s = run("raw-queue-corners");
    assert_eq!(s["phases"].as_array().unwrap().len(), 3);
    let odd = steps(&s, 2);
    assert!(odd.iter().any(|x| x["actual"].as_str().is_some_and(|a| a.contains("status=00/04"))), "a Data Transfer Error was seen");
}

/// Runs the text of a plan in-process on the simulator.
fn run_text(text: &str) -> exec::Summary {
    let p = plan::load_str("inline.yaml", text).expect("a valid plan");
    let cfg = plan::sim_config(&p, None).unwrap();
    let t: SharedTransport = Arc::new(SimTransport::new(cfg).unwrap());
    let stop = AtomicBool::new(false);
    exec::run_plan(&p, Ok(t), None, 1.0, &stop, &mut |_: &exec::Summary| {})
}

#[test]
fn a_wrong_cqe_expectation_fails_with_expected_and_actual_cqe_and_skips_the_rest() {
    let text = std::fs::read_to_string(root().join("plans/metamode/read-flow.yaml")).unwrap();
    let wrong = text.replace("{cq: 1, slot: 1, status: \"00/00\", cid: 0,", "{cq: 1, slot: 1, status: \"00/00\", cid: 5,");
    assert_ne!(wrong, text);
    let s = run_text(&wrong);
    assert_eq!(s.outcome, Outcome::Fail);
    let st = &s.phases[0].metamode;
    let bad = st.iter().find(|x| x.outcome == Outcome::Fail).expect("a failed step");
    assert_eq!(bad.step, "expect_cqe");
    let e = bad.error.as_deref().unwrap();
    assert!(e.contains("expected CQE status 00/00, cid 5") && e.contains("got cid 0") && e.contains("Cqe{cid=0 sqid=1"), "{e}");
    assert!(st[bad.index + 1..].iter().all(|x| x.outcome == Outcome::Skipped));
    // And in the JUnit file, a failure that says both.
    let junit = nvplan::report::junit::junit(&s, &[]);
    assert!(junit.contains("<failure message=\"step ") && junit.contains("cid 5"), "{junit}");
}

#[test]
fn a_wrong_buffer_or_event_expectation_fails_with_both_values() {
    let text = std::fs::read_to_string(root().join("plans/metamode/three-sqs-one-cq.yaml")).unwrap();
    let s = run_text(&text.replace("{buffer: buf1, at: 10, text: hello world}", "{buffer: buf1, at: 10, text: hello there}"));
    let bad = s.phases[0].metamode.iter().find(|x| x.outcome == Outcome::Fail).unwrap();
    assert!(bad.error.as_deref().unwrap().contains("differs from byte 16"), "{bad:?}");
    let text = std::fs::read_to_string(root().join("plans/metamode/invalid-doorbell-aer.yaml")).unwrap();
    let s = run_text(&text.replacen("{value: 0x10100, timeout: 500ms}", "{value: 0x10000, timeout: 100ms}", 1));
    let bad = s.phases[0].metamode.iter().find(|x| x.outcome == Outcome::Fail).unwrap();
    assert_eq!((bad.expected.as_deref(), bad.actual.as_deref()), (Some("0x10000"), Some("0x10100")));
}

#[test]
fn a_wrong_status_expectation_on_queue_creation_fails() {
    let text = std::fs::read_to_string(root().join("plans/metamode/raw-queue-corners.yaml")).unwrap();
    let s = run_text(&text.replace("expect_status: \"01/02\"", "expect_status: \"00/00\""));
    let bad = s.phases[0].metamode.iter().find(|x| x.outcome == Outcome::Fail).unwrap();
    assert_eq!(bad.step, "create_cq");
    assert!(bad.error.as_deref().unwrap().contains("expected status 00/00, got 01/02"), "{bad:?}");
}

#[test]
fn metamode_sections_with_unknown_buffers_or_queues_are_refused_at_their_line() {
    let text = r#"
name: bad
phases:
  - name: p
    metamode:
      buffers:
        cq_mem: {size: 160}
      steps:
        - create_cq: {id: 1, entries: 10, buffer: cq_memory}
        - sqe: {sq: 3, opcode: 2}
        - expect_cqe: {cq: 1, slot: 0, status: "zero"}
        - write_buffer: {buffer: cq_mem}
"#;
    let errors = plan::load_str("bad.yaml", text).and_then(|p| {
        let cfg = plan::sim_config(&p, None).map_err(|e| vec![e])?;
        plan::expand(&p, &plan::Limits::from_sim(&cfg), None, 1.0).map(|_| ())
    });
    let errors: Vec<String> = errors.unwrap_err().iter().map(|e| e.to_string()).collect();
    let all = errors.join("\n");
    assert!(all.contains("bad.yaml:9:") && all.contains("no buffer `cq_memory`; the buffers are cq_mem"), "{all}");
    assert!(all.contains("bad.yaml:10:") && all.contains("SQ 3 is not created by an earlier step"), "{all}");
    assert!(all.contains("bad.yaml:11:") && all.contains("`zero` is not a status"), "{all}");
    assert!(all.contains("bad.yaml:12:") && all.contains("give exactly one of text or bytes"), "{all}");
    // An unknown step is a schema error at its line.
    let e = plan::load_str("bad.yaml", &text.replace("- sqe: {sq: 3, opcode: 2}", "- ring: {sq: 3}")).unwrap_err();
    assert!(e.iter().any(|x| x.to_string().contains("bad.yaml:10:")), "{e:?}");
}
