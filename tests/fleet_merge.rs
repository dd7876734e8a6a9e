//! `nvplan report --merge`: runs from many drives and hosts merged into one report.
//! Sums are of raw values, percentiles come from the histograms added up, the order of
//! everything is fixed, runs that failed, did not end or are missing are listed and make
//! the exit code 1, and runs of different plan texts are flagged.

use std::path::{Path, PathBuf};
use std::process::Command;

use nvplan::exec::{Identity, Outcome, Summary};
use nvplan::fleet::{self, Status};
use nvplan::report;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-merge").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn nvplan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nvplan")).args(args).current_dir(root()).output().unwrap()
}

/// The report fixture as the run of drive `serial` on `host`, with the outcome given.
fn fixture_run(dir: &Path, host: &str, serial: &str, model: &str, firmware: &str, outcome: Outcome, complete: bool) -> Summary {
    let mut s = report::read_summary(&root().join("tests/report")).unwrap();
    s.outcome = outcome;
    s.complete = complete;
    s.identity = Identity {
        run_id: format!("{host}-1-{serial}"),
        host: host.into(),
        serial: serial.into(),
        model: model.into(),
        firmware: firmware.into(),
        ..s.identity.clone()
    };
    report::write_summary(dir, &s).unwrap();
    s
}

fn strs(v: &[&Path]) -> Vec<String> {
    v.iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn merge_sums_iops_and_merges_histograms_for_percentiles() {
    let base = out_dir("sums");
    let plan = root().join("plans/quickstart.yaml");
    let mut dirs = Vec::new();
    for k in 0..3 {
        let d = base.join(format!("run{k}"));
        let o = nvplan(&["run", plan.to_str().unwrap(), "--target", &format!("sim:serial=SUM{k}"), "--out", d.to_str().unwrap(), "--time-scale", "0.05", "-q"]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        dirs.push(d);
    }
    let m = fleet::merge(&dirs);
    assert_eq!((m.outcome, m.counts.pass, m.runs.len()), (Outcome::Pass, 3, 3));
    let runs: Vec<Summary> = dirs.iter().map(|d| report::read_summary(d).unwrap()).collect();
    for t in &m.totals {
        let phases: Vec<_> = runs.iter().flat_map(|s| s.phases.iter().filter(|p| p.label == t.label)).collect();
        assert_eq!(t.runs, 3, "{}", t.label);
        let iops: f64 = phases.iter().flat_map(|p| &p.workers).map(|w| w.iops).sum();
        assert!((t.iops - iops).abs() < 1e-6 * iops.max(1.0), "{}: {} vs {iops}", t.label, t.iops);
        let ios: u64 = phases.iter().flat_map(|p| &p.workers).map(|w| w.result.io_count()).sum();
        let bytes: u64 = phases.iter().flat_map(|p| &p.workers).map(|w| w.result.timeseries.as_ref().unwrap().bytes.iter().sum::<u64>()).sum();
        assert_eq!((t.ios, t.bytes), (ios, bytes), "{}", t.label);
        // Every completion of every run is in the merged histogram; the median lies in
        // the bucket where half of them are counted.
        let mut buckets: std::collections::BTreeMap<i64, (f64, f64, u64)> = Default::default();
        let mut counted = 0;
        for l in phases.iter().flat_map(|p| &p.workers).flat_map(|w| w.latency.iter().filter(|l| l.class == "all")) {
            counted += l.count;
            for &(lo, hi, n) in &l.histogram {
                buckets.entry((lo * 1000.0).round() as i64).or_insert((lo, hi, 0)).2 += n;
            }
        }
        let total: u64 = buckets.values().map(|b| b.2).sum();
        assert_eq!(total, counted, "{}: every timed completion counted once", t.label);
        let mut cum = 0;
        let median_bucket = buckets.values().find(|b| {
            cum += b.2;
            cum * 2 >= total
        });
        let (lo, hi, _) = *median_bucket.unwrap();
        let p50 = t.latency_us.iter().find(|x| x.0 == 50.0).unwrap().1;
        assert!(p50 >= lo - 0.01 && p50 <= hi + 0.01, "{}: p50 {p50} outside [{lo}, {hi}]", t.label);
        let max = phases.iter().flat_map(|p| &p.workers).map(|w| w.result.latency_max_us as f64).fold(0.0, f64::max);
        let merged_max = t.latency_us.last().unwrap();
        assert_eq!(merged_max.0, 100.0);
        // The largest of the runs' maxima, to the histograms' precision (0.1 %).
        assert!((merged_max.1 - max).abs() <= 1.0 + max * 1e-3, "{}: max {} vs {max}", t.label, merged_max.1);
        assert!(t.latency_us.windows(2).all(|w| w[0].1 <= w[1].1), "{}: percentiles rise: {:?}", t.label, t.latency_us);
    }
    // The long CSV's run rows add up to its `all` rows.
    let csv = fleet::output::merged_csv(&m);
    let mut r = ::csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<::csv::StringRecord> = r.records().map(Result::unwrap).collect();
    let fill_iops = |run: &str| -> f64 {
        rows.iter().filter(|x| &x[0] == run && &x[5] == "fill" && &x[6] == "all" && &x[7] == "iops").map(|x| x[8].parse::<f64>().unwrap()).sum()
    };
    let per_run: f64 = m.runs.iter().map(|r| fill_iops(&r.identity.run_id)).sum();
    assert!((fill_iops("all") - per_run).abs() < 0.5, "{} vs {per_run}", fill_iops("all"));
    let serials: Vec<&str> = m.runs.iter().map(|r| r.identity.serial.as_str()).collect();
    assert_eq!(serials, ["SUM0", "SUM1", "SUM2"]);
}

#[test]
fn merge_output_is_the_same_whatever_the_order_of_the_directories() {
    let base = out_dir("order");
    let mut dirs = Vec::new();
    for (k, (host, serial, model, fw)) in [("h2", "B", "M1", "F2"), ("h1", "A", "M1", "F1"), ("h1", "C", "M2", "F1")].into_iter().enumerate() {
        let d = base.join(format!("r{k}"));
        fixture_run(&d, host, serial, model, fw, Outcome::Pass, true);
        dirs.push(d);
    }
    let (a, b) = (base.join("a"), base.join("b"));
    fleet::merge_report(&dirs, &a).unwrap();
    dirs.reverse();
    fleet::merge_report(&dirs, &b).unwrap();
    for f in ["merged.csv", "runs.csv", "junit.xml", "summary.json"] {
        assert_eq!(std::fs::read_to_string(a.join(f)).unwrap(), std::fs::read_to_string(b.join(f)).unwrap(), "{f}");
    }
    let m = fleet::merge(&dirs);
    let order: Vec<&str> = m.runs.iter().map(|r| r.identity.serial.as_str()).collect();
    assert_eq!(order, ["A", "B", "C"], "by model, firmware, host, serial");
    let groups: Vec<(&str, &str, usize)> = m.groups.iter().map(|g| (g.model.as_str(), g.firmware.as_str(), g.runs)).collect();
    assert_eq!(groups, [("M1", "F1", 1), ("M1", "F2", 1), ("M2", "F1", 1)]);
    let charts: Vec<_> = std::fs::read_dir(a.join("charts")).unwrap().flatten().collect();
    assert!(!charts.is_empty(), "a chart per phase run label");
}

#[test]
fn merge_lists_failed_incomplete_and_missing_runs_and_exits_1() {
    let base = out_dir("problems");
    let ok = base.join("ok");
    fixture_run(&ok, "h", "OK", "M", "F", Outcome::Pass, true);
    let failed = base.join("failed");
    fixture_run(&failed, "h", "FAILED", "M", "F", Outcome::Fail, true);
    let killed = base.join("killed");
    fixture_run(&killed, "h", "KILLED", "M", "F", Outcome::Incomplete, false);
    let broken = base.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("summary.json"), "{\"outcome\": \"pass\", \"plan\": ").unwrap();
    let empty = base.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = base.join("merged");
    let mut args = vec!["report".to_string(), "--merge".into()];
    args.extend(strs(&[&ok, &failed, &killed, &broken, &empty, &base.join("never")]));
    args.extend(["--out".into(), out.display().to_string()]);
    let o = nvplan(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("6 runs merged: 1 passed, 1 failed, 1 incomplete, 3 missing"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(stderr.contains("summary.json:1:") && stderr.contains("not a summary nvplan wrote"), "the broken file is named with its position: {stderr}");
    assert!(stderr.contains("iops_min: expected"), "why the failed run failed: {stderr}");
    let mut r = ::csv::Reader::from_reader(std::fs::File::open(out.join("runs.csv")).unwrap());
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let rows: Vec<(String, String)> =
        r.records().map(Result::unwrap).map(|x| (x[col("dir")].rsplit('/').next().unwrap().to_string(), x[col("status")].to_string())).collect();
    let want = [("failed", "failed"), ("killed", "incomplete"), ("ok", "pass"), ("broken", "missing"), ("empty", "missing"), ("never", "missing")];
    assert_eq!(rows, want.map(|(a, b)| (a.to_string(), b.to_string())));
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!((s["kind"].as_str(), s["outcome"].as_str()), (Some("nvplan-merge"), Some("fail")));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testsuite ").count(), 6, "a suite per run");
    assert!(junit.contains("hostname=\"h\"") && junit.contains("missing run"), "{junit}");
    // Well-formed, and the document's totals are its suites' sums.
    let mut r = quick_xml::Reader::from_str(&junit);
    let (mut top, mut suites) = (0, 0);
    loop {
        match r.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) if matches!(e.name().as_ref(), b"testsuites" | b"testsuite") => {
                let tests: usize = e
                    .attributes()
                    .map(Result::unwrap)
                    .find(|a| a.key.as_ref() == b"tests")
                    .map(|a| String::from_utf8_lossy(&a.value).parse().unwrap())
                    .unwrap();
                if e.name().as_ref() == b"testsuites" { top = tests } else { suites += tests }
            }
            _ => {}
        }
    }
    assert!(top > 6 && top == suites, "{top} vs {suites}");
    // A merged summary is not a run's: `nvplan report` on it says so.
    let o = nvplan(&["report", out.to_str().unwrap(), "--out", base.join("redraw").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a merged report"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn merge_flags_runs_of_different_plan_texts() {
    let base = out_dir("mixed");
    let (a, b) = (base.join("a"), base.join("b"));
    fixture_run(&a, "h", "A", "M", "F", Outcome::Pass, true);
    let mut s = fixture_run(&b, "h", "B", "M", "F", Outcome::Pass, true);
    s.identity.plan_crc32 = "0badc0de".into();
    report::write_summary(&b, &s).unwrap();
    let out = base.join("merged");
    let o = nvplan(&["report", "--merge", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "flagged, not failed: both runs passed");
    assert!(String::from_utf8_lossy(&o.stderr).contains("different plan texts"), "{}", String::from_utf8_lossy(&o.stderr));
    let m = fleet::merge(&[a.clone(), b.clone()]);
    assert!(m.mixed_plans);
    assert_eq!(m.plans.iter().map(|p| p.plan_crc32.as_str()).collect::<Vec<_>>(), ["0badc0de", "47982f03"]);
    assert!(std::fs::read_to_string(out.join("junit.xml")).unwrap().contains("name=\"plan checksums\""));
    assert!(!fleet::merge(&[a.clone(), a]).mixed_plans, "one text is not mixed");
}

#[test]
fn merge_finds_runs_below_a_directory_and_refuses_to_write_over_a_run() {
    let base = out_dir("below");
    for k in 0..2 {
        fixture_run(&base.join("campaign").join(format!("task-{k}")), "h", &format!("S{k}"), "M", "F", Outcome::Pass, true);
    }
    let m = fleet::merge(&[base.join("campaign")]);
    assert_eq!((m.runs.len(), m.counts.pass), (2, 2));
    let run = base.join("campaign/task-0");
    let o = nvplan(&["report", "--merge", base.join("campaign").to_str().unwrap(), "--out", run.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds the report of a run"), "{}", String::from_utf8_lossy(&o.stderr));
    // A merged report inside the searched directory is not taken for a run.
    fleet::merge_report(&[base.join("campaign")], &base.join("campaign")).unwrap();
    assert_eq!(fleet::merge(&[base.join("campaign")]).runs.len(), 2);
    assert_eq!(fleet::merge(&[base.join("campaign")]).runs[0].status, Status::Pass);
}
