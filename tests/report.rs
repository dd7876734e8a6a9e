//! Reports: the CSV and JUnit formats pinned by snapshots of a fixture run
//! (`tests/report/summary.json`, from `tests/report/fixture.yaml`), JUnit parsed back,
//! charts decoded, earlier reports replaced rather than mixed, `nvplan report` drawing a
//! run again and comparing runs, and a real run leaving every file its manifest lists.
//!
//! `UPDATE_SNAPSHOTS=1 cargo test --release --test report` rewrites the snapshots.

mod report_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use nvplan::exec::{Outcome, Summary};
use nvplan::report::{self, Report, csv, junit, manifest::Manifest};
use report_common::check_png;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report").join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fixture() -> Summary {
    report::read_summary(&root().join("tests/report")).expect("the fixture reads")
}

/// The fixture as if interrupted in its last phase run, before a skipped one.
fn interrupted_fixture() -> Summary {
    let mut s = fixture();
    s.outcome = Outcome::Interrupted;
    s.complete = false;
    let last = s.phases.last_mut().unwrap();
    last.outcome = Outcome::Interrupted;
    let skipped = nvplan::exec::PhaseSummary {
        name: "after".into(),
        label: "after".into(),
        repeat: 0,
        sweep: Default::default(),
        outcome: Outcome::Skipped,
        start_s: s.seconds,
        seconds: 0.0,
        planned_s: None,
        checks: vec![],
        events: vec![],
        workers: vec![],
        metamode: vec![],
        report_page: None,
    };
    s.phases.push(skipped);
    s
}

/// Compares `actual` with `tests/report/snapshots/NAME`, showing the first line that
/// differs.
fn snapshot(name: &str, actual: &str) {
    let path = root().join("tests/report/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it", path.display()));
    if expected == actual {
        return;
    }
    let (mut e, mut a) = (expected.lines(), actual.lines());
    for line in 1.. {
        match (e.next(), a.next()) {
            (None, None) => break,
            (x, y) if x != y => panic!("{name} differs from its snapshot at line {line}:\n  snapshot: {x:?}\n  now:      {y:?}"),
            _ => {}
        }
    }
    panic!("{name}: line endings differ from the snapshot");
}

#[test]
fn workers_csv_matches_its_snapshot() {
    snapshot("workers.csv", &csv::workers(&fixture()));
}

#[test]
fn io_per_second_csv_matches_its_snapshot() {
    snapshot("io_per_second.csv", &csv::io_per_second(&fixture()));
}

#[test]
fn latency_percentiles_csv_matches_its_snapshot() {
    snapshot("latency_percentiles.csv", &csv::latency_percentiles(&fixture()));
}

#[test]
fn latency_histogram_csv_matches_its_snapshot() {
    snapshot("latency_histogram.csv", &csv::latency_histogram(&fixture()));
}

#[test]
fn events_csv_matches_its_snapshot() {
    snapshot("events.csv", &csv::events(&fixture()));
}

#[test]
fn cmdlog_csv_matches_its_snapshot() {
    snapshot("cmdlog.csv", &csv::cmdlog(&fixture()).expect("the fill worker kept a command log"));
}

#[test]
fn junit_matches_its_snapshot() {
    snapshot("junit.xml", &junit::junit(&fixture(), &["charts/00-fill-iops.png".into()]));
}

#[test]
fn junit_of_an_interrupted_run_matches_its_snapshot() {
    snapshot("junit-interrupted.xml", &junit::junit(&interrupted_fixture(), &[]));
}

#[test]
fn cmdlog_csv_is_absent_when_no_worker_kept_a_log() {
    let mut s = fixture();
    s.phases.iter_mut().flat_map(|p| &mut p.workers).for_each(|w| w.result.cmdlog = None);
    assert!(csv::cmdlog(&s).is_none());
}

#[test]
fn every_csv_row_has_a_field_for_each_header_column() {
    let s = fixture();
    let docs = [
        ("workers", csv::workers(&s), 7),
        ("io_per_second", csv::io_per_second(&s), 60),
        ("latency_percentiles", csv::latency_percentiles(&s), 50),
        ("latency_histogram", csv::latency_histogram(&s), 50),
        ("events", csv::events(&s), 3),
    ];
    for (name, text, min_rows) in docs {
        let mut r = ::csv::Reader::from_reader(text.as_bytes());
        let cols = r.headers().unwrap().len();
        let rows: Vec<_> = r.records().map(|x| x.unwrap_or_else(|e| panic!("{name}: {e}"))).collect();
        assert!(rows.len() >= min_rows, "{name}: {} rows", rows.len());
        assert!(rows.iter().all(|x| x.len() == cols), "{name}");
    }
}

#[test]
fn every_csv_row_of_a_run_starts_with_its_identity() {
    let s = fixture();
    let want =
        ["qual-host-1796145016-4242", "qual-host", "NVPLANSIM0001", "nvplan simulated NVMe controller", "0.1.0", "", "report-fixture", "47982f03", "0.1.0"];
    let docs = [csv::workers(&s), csv::io_per_second(&s), csv::latency_percentiles(&s), csv::latency_histogram(&s), csv::events(&s), csv::cmdlog(&s).unwrap()];
    for text in docs {
        let mut r = ::csv::Reader::from_reader(text.as_bytes());
        let h: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(h[..9], nvplan::exec::Identity::COLUMNS.map(String::from));
        let mut rows = 0;
        for row in r.records().map(Result::unwrap) {
            assert_eq!(row.iter().take(9).collect::<Vec<_>>(), want);
            rows += 1;
        }
        assert!(rows > 0, "{}", h.join(","));
    }
}

#[test]
fn workers_csv_has_a_column_per_sweep_key() {
    let text = csv::workers(&fixture());
    let mut r = ::csv::Reader::from_reader(text.as_bytes());
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap_or_else(|| panic!("column {n}"));
    let (io, rp, name) = (col("sweep.io_size"), col("sweep.read_percentage"), col("name"));
    let rows: Vec<_> = r.records().map(Result::unwrap).collect();
    let matrix: Vec<(String, String)> = rows.iter().filter(|x| &x[name] == "matrix").map(|x| (x[io].to_string(), x[rp].to_string())).collect();
    assert_eq!(matrix, [("4KiB", "100"), ("4KiB", "0"), ("16KiB", "100"), ("16KiB", "0")].map(|(a, b)| (a.to_string(), b.to_string())));
    assert!(rows.iter().filter(|x| &x[name] != "matrix").all(|x| x[io].is_empty()));
}

/// A test case read back from JUnit XML.
#[derive(Debug, Default)]
struct Case {
    name: String,
    classname: String,
    failure: Option<String>,
    error: Option<String>,
    skipped: bool,
}

/// Parses JUnit XML with a general XML parser: the suite's attributes and its cases.
fn parse_junit(xml: &str) -> (std::collections::HashMap<String, String>, Vec<Case>) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let attrs = |e: &quick_xml::events::BytesStart<'_>| -> std::collections::HashMap<String, String> {
        e.attributes()
            .map(|a| a.expect("well-formed attribute"))
            .map(|a| (String::from_utf8_lossy(a.key.as_ref()).into_owned(), a.unescape_value().unwrap().into_owned()))
            .collect()
    };
    let (mut suite, mut cases) = (Default::default(), Vec::new());
    let mut open: Option<Case> = None;
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => suite = attrs(&e),
            Event::Start(e) if e.name().as_ref() == b"testcase" => {
                let a = attrs(&e);
                open = Some(Case { name: a["name"].clone(), classname: a["classname"].clone(), ..Default::default() });
            }
            Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let a = attrs(&e);
                cases.push(Case { name: a["name"].clone(), classname: a["classname"].clone(), ..Default::default() });
            }
            Event::Start(e) | Event::Empty(e) if matches!(e.name().as_ref(), b"failure" | b"error" | b"skipped") => {
                let a = attrs(&e);
                let c = open.as_mut().expect("inside a test case");
                match e.name().as_ref() {
                    b"failure" => c.failure = Some(a["message"].clone()),
                    b"error" => c.error = Some(a["message"].clone()),
                    _ => c.skipped = true,
                }
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => cases.push(open.take().unwrap()),
            _ => {}
        }
    }
    (suite, cases)
}

#[test]
fn junit_parses_back_with_a_case_per_expectation_and_failures_that_say_expected_and_measured() {
    let s = fixture();
    let (suite, cases) = parse_junit(&junit::junit(&s, &[]));
    let checks: usize = s.phases.iter().map(|p| p.checks.len() + p.workers.iter().map(|w| w.checks.len()).sum::<usize>()).sum();
    let events: usize = s.phases.iter().map(|p| p.events.len()).sum();
    assert_eq!(cases.len(), checks + events);
    assert_eq!(suite["tests"], cases.len().to_string());
    let failed: Vec<&Case> = cases.iter().filter(|c| c.failure.is_some()).collect();
    assert_eq!(suite["failures"], failed.len().to_string());
    assert_eq!(failed.len(), 1, "only b's iops_min fails (bad-feature's failure is allowed)");
    assert_eq!(failed[0].name, "events / b: iops_min");
    let msg = failed[0].failure.as_deref().unwrap();
    let measured = &s.phases[5].workers[1].checks.iter().find(|c| c.what == "iops_min").unwrap().actual;
    assert!(msg.contains("expected 100000000") && msg.contains(&format!("measured {measured}")), "{msg}");
    // Every sweep point is its own test case; names are unique (GitLab keeps the first of
    // duplicates); the drive's serial is in the class name.
    assert!(cases.iter().any(|c| c.name == "matrix io_size=16KiB read_percentage=0 / rnd: error"));
    assert_eq!(cases.iter().map(|c| &c.name).collect::<BTreeSet<_>>().len(), cases.len());
    assert!(cases.iter().all(|c| c.classname == "report-fixture.NVPLANSIM0001"));
}

#[test]
fn junit_of_an_interrupted_run_reports_an_error_and_the_skipped_phase() {
    let (suite, cases) = parse_junit(&junit::junit(&interrupted_fixture(), &[]));
    let run = cases.iter().find(|c| c.name == "run: complete").expect("a case for the run");
    assert!(run.error.as_deref().unwrap().contains("interrupted"), "{run:?}");
    assert!(cases.iter().any(|c| c.name == "events: complete" && c.error.is_some()));
    assert!(cases.iter().any(|c| c.name == "after" && c.skipped));
    assert_eq!(suite["errors"], "2");
    assert_eq!(suite["skipped"], "1");
}

#[test]
fn junit_escapes_markup_and_drops_characters_xml_forbids() {
    assert_eq!(junit::escape("a<b & \"c\" 'd'>\u{1}\te"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;\te");
    let mut s = fixture();
    s.phases[0].checks[0].what = "<odd> & \u{7} \"name\"".into();
    let (_, cases) = parse_junit(&junit::junit(&s, &[]));
    assert_eq!(cases[0].name, "fill: <odd> &  \"name\"");
}

fn manifest(dir: &Path) -> Manifest {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json")).expect("a manifest")
}

/// Writes the fixture's report into `dir` as a run would.
fn write_fixture_report(dir: &Path) -> Vec<String> {
    let (r, _) = Report::create(dir, vec!["nvplan".into(), "test".into()], None).unwrap();
    r.finish(&fixture())
}

#[test]
fn charts_of_every_phase_run_decode_as_nonblank_pngs() {
    let dir = out_dir("charts");
    let problems = write_fixture_report(&dir);
    assert!(problems.is_empty(), "{problems:?}");
    let m = manifest(&dir);
    let charts: Vec<&String> = m.files.iter().filter(|f| f.ends_with(".png")).collect();
    // Three charts per phase run (histogram, percentiles, IOPS) and the sweep matrix.
    assert_eq!(charts.len(), 3 * 6 + 1, "{charts:?}");
    for c in charts {
        check_png(&dir.join(c), (800, 400));
    }
}

#[test]
fn an_earlier_report_in_the_directory_is_replaced_not_mixed() {
    let dir = out_dir("replace");
    write_fixture_report(&dir);
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("charts/99-stale-iops.png"), "old").unwrap();
    let (r, note) = Report::create(&dir, vec![], None).unwrap();
    let note = note.expect("says it replaced something");
    assert!(note.contains("report-fixture"), "{note}");
    for gone in ["summary.json", "manifest.json", "workers.csv", "junit.xml", "charts/99-stale-iops.png", "charts/00-fill-iops.png"] {
        assert!(!dir.join(gone).exists(), "{gone} is left from the earlier run");
    }
    assert_eq!(std::fs::read_to_string(dir.join("notes.txt")).unwrap(), "mine", "files nvplan did not write stay");
    drop(r);
    assert!(!dir.join(".nvplan.lock").exists());
}

#[test]
fn a_directory_another_live_run_writes_to_is_refused() {
    let dir = out_dir("locked");
    std::fs::create_dir_all(&dir).unwrap();
    // Process 1 is always alive.
    std::fs::write(dir.join(".nvplan.lock"), "1\n").unwrap();
    let e = Report::create(&dir, vec![], None).unwrap_err();
    assert!(e.contains("another nvplan run (process 1)") && e.contains("--out"), "{e}");
    // A lock left by a process that is gone is taken over.
    std::fs::write(dir.join(".nvplan.lock"), "4194304\n").unwrap();
    assert!(Report::create(&dir, vec![], None).is_ok());
}

#[test]
fn a_lock_written_on_another_boot_is_taken_over_though_its_process_number_lives() {
    let dir = out_dir("locked-other-boot");
    std::fs::create_dir_all(&dir).unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    // Process 1 lives on every boot: only the boot ID tells the lock is stale.
    std::fs::write(dir.join(".nvplan.lock"), format!("1 {}\n", boot.trim())).unwrap();
    assert!(Report::create(&dir, vec![], None).is_err(), "same boot, live process: refused");
    std::fs::write(dir.join(".nvplan.lock"), "1 00000000-0000-0000-0000-000000000000\n").unwrap();
    let r = Report::create(&dir, vec![], None).expect("a lock of another boot is stale");
    let mine = std::fs::read_to_string(dir.join(".nvplan.lock")).unwrap();
    assert_eq!(mine.trim(), format!("{} {}", std::process::id(), boot.trim()));
    drop(r);
}

fn nvplan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nvplan")).args(args).output().expect("nvplan runs")
}

#[test]
fn report_command_draws_a_run_again_with_the_same_csvs() {
    let (a, b) = (out_dir("rerender-a"), out_dir("rerender-b"));
    write_fixture_report(&a);
    let o = nvplan(&["report", a.to_str().unwrap(), "--out", b.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["workers.csv", "io_per_second.csv", "latency_percentiles.csv", "latency_histogram.csv", "events.csv", "cmdlog.csv", "junit.xml"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert_eq!(ma.files, mb.files);
    assert_eq!(ma.command, mb.command, "the run's command line is kept");
    // In place, too.
    let o = nvplan(&["report", a.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(manifest(&a).files, ma.files);
}

#[test]
fn report_command_compares_runs_side_by_side() {
    let (a, b, out) = (out_dir("cmp-fw1"), out_dir("cmp-fw2"), out_dir("cmp-out"));
    write_fixture_report(&a);
    // A second "drive": same phases, half the IOPS.
    let mut s = fixture();
    s.phases.iter_mut().flat_map(|p| &mut p.workers).for_each(|w| w.iops /= 2.0);
    let (r, _) = Report::create(&b, vec![], None).unwrap();
    r.finish(&s);
    let o = nvplan(&["report", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(out.join("comparison.csv")).unwrap();
    let mut rd = ::csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<_> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 12, "6 phase runs × 2 runs");
    let iops = |run: &str| -> f64 { rows.iter().find(|x| &x[0] == "fill" && &x[1] == run).unwrap()[7].parse().unwrap() };
    assert!((iops("cmp-fw1") / iops("cmp-fw2") - 2.0).abs() < 0.01);
    let charts: Vec<PathBuf> = std::fs::read_dir(out.join("charts")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(charts.len(), 6, "one comparison chart per phase run label: {charts:?}");
    for c in &charts {
        check_png(c, (800, 400));
    }
}

#[test]
fn report_command_names_a_directory_without_a_summary() {
    let dir = out_dir("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let o = nvplan(&["report", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("summary.json") && e.contains(dir.to_str().unwrap()), "{e}");
}

#[test]
fn a_plan_run_leaves_every_file_its_manifest_lists_and_a_plan_that_runs_the_same_io() {
    let dir = out_dir("run");
    let plan = root().join("tests/report/fixture.yaml");
    let o = nvplan(&["run", plan.to_str().unwrap(), "--out", dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "b's impossible iops_min fails the run");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1, "--quiet prints the final line only");
    let m = manifest(&dir);
    assert!(m.complete && m.ended.is_some());
    assert_eq!(m.outcome, Outcome::Fail);
    assert_eq!(m.device.as_ref().unwrap().serial, "NVPLANSIM0001");
    assert!(m.plan.crc32.is_some() && !m.host.kernel.is_empty());
    // The run's identity: the drive, this host, the plan's checksum as the manifest has it.
    let id = report::read_summary(&dir).unwrap().identity;
    assert_eq!((id.serial.as_str(), id.model.as_str(), id.firmware.as_str()), ("NVPLANSIM0001", "nvplan simulated NVMe controller", "0.1.0"));
    assert_eq!((id.host.as_str(), id.plan.as_str(), id.pci_address.as_str()), (m.host.hostname.as_str(), "report-fixture", ""));
    assert_eq!(Some(id.plan_crc32.clone()), m.plan.crc32);
    assert!(id.run_id.starts_with(&format!("{}-", m.host.hostname)) && id.nvplan_version == m.nvplan_version, "{id:?}");
    let listed: BTreeSet<&str> = m.files.iter().map(String::as_str).collect();
    for f in [
        "summary.json",
        "manifest.json",
        "plan.resolved.yaml",
        "workers.csv",
        "io_per_second.csv",
        "latency_percentiles.csv",
        "latency_histogram.csv",
        "events.csv",
        "cmdlog.csv",
        "junit.xml",
    ] {
        assert!(listed.contains(f), "{f} is not listed");
    }
    for f in &m.files {
        assert!(dir.join(f).is_file(), "{f} is listed but not there");
    }
    assert!(!dir.join(".nvplan.lock").exists());
    // The resolved plan is a plan: one phase per run, with the seeds that ran.
    let original = nvplan::plan::load(&plan).unwrap();
    let resolved = nvplan::plan::load(&dir.join("plan.resolved.yaml")).unwrap();
    let limits = nvplan::plan::Limits::from_sim(&nvplan::plan::sim_config(&original, None).unwrap());
    let a = nvplan::plan::expand(&original, &limits, None, 1.0).unwrap();
    let b = nvplan::plan::expand(&resolved, &limits, None, 1.0).unwrap();
    assert_eq!(resolved.plan.phases.len(), a.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.label, y.name);
        for (wx, wy) in x.workers.iter().zip(&y.workers) {
            assert_eq!(format!("{:?}", wx.config), format!("{:?}", wy.config), "{}", x.label);
        }
    }
}
