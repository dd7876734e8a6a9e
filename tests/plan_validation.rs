//! Plan validation end to end: every invalid plan under tests/plans/invalid names its
//! mistake at `file:line:col: field:`, valid plans expand as written, and no mangled plan
//! makes the loader panic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nvplan::ioworker::{IoSize, OnReset};
use nvplan::plan::model::ResetSpec;
use nvplan::plan::{EventAction, Limits, expand, load, load_str, sim_config};
use nvplan::sim::SimConfig;
use nvplan::util::rng::Rng;

fn nvplan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nvplan"))
}

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans").join(kind)
}

/// `(path, "LINE:COL: FIELD:")` from each invalid plan's `# expect: LINE:COL FIELD` line.
fn invalid_plans() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir("invalid")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let header = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{}: first line must be `# expect: LINE:COL FIELD`", path.display()));
        let (pos, field) = header.trim().split_once(' ').unwrap_or_else(|| panic!("{}: bad expect line `{header}`", path.display()));
        out.push((path, format!("{pos}: {field}:")));
    }
    out.sort();
    out
}

#[test]
fn there_are_at_least_35_invalid_plans() {
    assert!(invalid_plans().len() >= 35, "{} invalid plans", invalid_plans().len());
}

#[test]
fn each_invalid_plan_exits_2_and_reports_its_mistake_first() {
    for (path, expected) in invalid_plans() {
        let o = nvplan().arg("validate").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", path.display());
        let want = format!("{}:{expected}", path.display());
        assert!(err.lines().next().is_some_and(|l| l.starts_with(&want)), "{}: expected a first line starting `{want}`, got:\n{err}", path.display());
        assert!(o.stdout.is_empty(), "{}: nothing on stdout for an invalid plan", path.display());
    }
}

#[test]
fn validating_all_invalid_plans_at_once_reports_every_plans_errors() {
    let plans = invalid_plans();
    let o = nvplan().arg("validate").args(plans.iter().map(|p| &p.0)).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    for (path, expected) in &plans {
        let want = format!("{}:{expected}", path.display());
        assert!(err.lines().any(|l| l.starts_with(&want)), "missing `{want}` in:\n{err}");
    }
    // One plan with three mistakes reports all three.
    assert_eq!(err.lines().filter(|l| l.contains("op-percentage-three-decimals.yaml:")).count(), 3, "{err}");
}

#[test]
fn valid_and_invalid_plans_together_exit_2_and_the_valid_one_is_reported_ok() {
    let valid = dir("valid").join("sweep-and-repeat.yaml");
    let invalid = dir("invalid").join("qdepth-zero.yaml");
    let o = nvplan().arg("validate").arg(&valid).arg(&invalid).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out, format!("{}: ok (7 phase runs, 13 workers)\n", valid.display()));
}

#[test]
fn valid_plan_exits_0() {
    let valid = dir("valid").join("sweep-and-repeat.yaml");
    let o = nvplan().arg("validate").arg(&valid).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty());
}

#[test]
fn command_line_target_overrides_the_plans_target() {
    let valid = dir("valid").join("sweep-and-repeat.yaml");
    // The plan's own target allows 4096-entry queues; this one 256.
    let o = nvplan().args(["validate", "--target", "sim:ns=1GiB,lba=4096,mdts=5,mqes=256"]).arg(&valid).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("sweep-and-repeat.yaml:27:17: qdepth: 1023 needs a queue of 1024 entries; the controller allows 256 (CAP.MQES+1): use at most 255"),
        "{err}"
    );
}

#[test]
fn bad_command_lines_exit_2() {
    let o = nvplan().args(["validate", "--target", "sim:lba=520"]).arg(dir("valid").join("sweep-and-repeat.yaml")).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("512 and 4096"));
    assert_eq!(nvplan().arg("validate").output().unwrap().status.code(), Some(2), "no plan given");
    assert_eq!(nvplan().args(["validate", "--nope", "x.yaml"]).output().unwrap().status.code(), Some(2));
    let o = nvplan().args(["validate", "/nonexistent/plan.yaml"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("/nonexistent/plan.yaml:1:1: file: cannot read the plan"));
}

#[test]
fn valid_plan_expands_into_repeat_times_sweep_runs_with_units_converted_and_time_scaled() {
    let plan = load(&dir("valid").join("sweep-and-repeat.yaml")).unwrap();
    let limits = Limits::from_sim(&sim_config(&plan, None).unwrap());
    let runs = expand(&plan, &limits, None, 0.5).unwrap();
    let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "precondition",
            "writes-with-reset#1 io_size=1",
            "writes-with-reset#1 io_size=4KiB",
            "writes-with-reset#1 io_size=16",
            "writes-with-reset#2 io_size=1",
            "writes-with-reset#2 io_size=4KiB",
            "writes-with-reset#2 io_size=16",
        ]
    );
    // 4096-byte LBAs: 128 KiB is 32 LBAs, 64 MiB 16384; a single sequential pass.
    let fill = &runs[0].workers[0].config;
    assert_eq!(fill.io_size, IoSize::Fixed(32));
    assert_eq!((fill.region_end.clone(), fill.lba_random, fill.time), (vec![16384], 0, None));
    assert_eq!(runs[0].duration, None);
    let r = &runs[5];
    assert_eq!((r.phase, r.name.as_str(), r.repeat_index), (1, "writes-with-reset", 1));
    assert_eq!(r.sweep.get("io_size"), Some(&serde_json::json!("4KiB")));
    let (writer, mixer) = (&r.workers[0], &r.workers[1]);
    assert_eq!((writer.name.as_str(), mixer.name.as_str()), ("writer", "mixer"));
    assert_eq!(writer.config.io_size, IoSize::Fixed(1), "the sweep value replaces io_size in every worker");
    assert_eq!(mixer.config.io_size, IoSize::Fixed(1));
    assert_eq!(writer.config.on_reset, OnReset::Resume);
    assert_eq!(mixer.config.op_percentage, Some(vec![(9, 9.5), (2, 60.0), (1, 30.5)]));
    // Time scale 0.5: every duration halves.
    assert_eq!(writer.config.time, Some(Duration::from_secs(5)));
    assert_eq!((mixer.config.time, mixer.start_delay), (Some(Duration::from_secs(4)), Duration::from_millis(500)));
    assert_eq!(r.duration, Some(Duration::from_secs(5)));
    let events: Vec<(Duration, &str)> = r.events.iter().map(|e| (e.at, e.name.as_str())).collect();
    assert_eq!(events, [(Duration::from_secs(1), "power_cycle"), (Duration::from_millis(1500), "get_log_page"), (Duration::from_millis(2500), "reset")]);
    assert_eq!(r.events[0].action, EventAction::PowerCycle { dirty: true, off: Duration::from_millis(250) });
    assert_eq!(r.events[2].action, EventAction::Reset(ResetSpec::Controller));
    assert_eq!(r.expect.as_ref().and_then(|e| e.errors), Some(0));
}

#[test]
fn seeds_are_derived_per_run_and_worker_and_repeatable() {
    let plan = load(&dir("valid").join("sweep-and-repeat.yaml")).unwrap();
    let limits = Limits::from_sim(&sim_config(&plan, None).unwrap());
    let seeds =
        |seed| expand(&plan, &limits, seed, 1.0).unwrap().iter().flat_map(|r| r.workers.iter().map(|w| w.config.seed).collect::<Vec<_>>()).collect::<Vec<_>>();
    let a = seeds(None);
    let configs = || {
        format!("{:?}", expand(&plan, &limits, None, 1.0).unwrap().iter().map(|r| r.workers.iter().map(|w| &w.config).collect::<Vec<_>>()).collect::<Vec<_>>())
    };
    assert_eq!(configs(), configs(), "same plan, same seed, identical worker configurations");
    assert_eq!(a, seeds(Some(7)), "the plan's seed is 7");
    assert_ne!(a, seeds(Some(8)), "--seed overrides the plan's");
    // The mixer's own seed wins; the writers' differ run to run.
    let writers: Vec<u64> = a.iter().skip(1).step_by(2).copied().collect();
    let mixers: Vec<u64> = a.iter().skip(2).step_by(2).copied().collect();
    assert!(mixers.iter().all(|&s| s == 42));
    let mut distinct = writers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), writers.len(), "{writers:?}");
}

/// A few hundred damaged copies of the valid plan: characters deleted or doubled, values
/// swapped for others (huge, negative, zero, text), lines dropped or swapped.
#[test]
fn mangled_plans_never_make_loading_or_expansion_panic() {
    let text = std::fs::read_to_string(dir("valid").join("sweep-and-repeat.yaml")).unwrap();
    let limits = Limits::from_sim(&SimConfig::parse_options("ns=1MiB,lba=4096,mdts=2,mqes=64,queues=2,sgl=off").unwrap());
    let big = Limits::from_sim(&SimConfig::default());
    let values = [
        "0",
        "-1",
        "1e999",
        "18446744073709551615",
        "4294967296",
        "0x",
        "abc",
        "[]",
        "{}",
        "~",
        "\"\"",
        "100%",
        "1.5",
        "65537",
        "9999999h",
        "-0.5s",
        "[1, [2]]",
    ];
    let mut rng = Rng::new(0x5eed);
    let mut r = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    for i in 0..500 {
        let mut t: Vec<char> = text.chars().collect();
        for _ in 0..1 + r(3) {
            match r(8) {
                0 if !t.is_empty() => {
                    let at = r(t.len());
                    t.remove(at);
                }
                1 if !t.is_empty() => {
                    let at = r(t.len());
                    t.insert(at, t[at]);
                }
                2..=5 => {
                    // Replace the token after a `: ` with another value.
                    let s: String = t.iter().collect();
                    let spots: Vec<usize> = s.match_indices(": ").map(|m| m.0 + 2).collect();
                    if let Some(&at) = spots.get(r(spots.len())) {
                        let end = s[at..].find([',', '}', '\n', ']']).map_or(s.len(), |e| at + e);
                        let v = values[r(values.len())];
                        t = format!("{}{v}{}", &s[..at], &s[end..]).chars().collect();
                    }
                }
                6 => {
                    let mut lines: Vec<String> = t.iter().collect::<String>().lines().map(str::to_string).collect();
                    if lines.len() > 1 {
                        let (a, b) = (r(lines.len()), r(lines.len()));
                        lines.swap(a, b);
                    }
                    t = lines.join("\n").chars().collect();
                }
                _ => {
                    let mut lines: Vec<String> = t.iter().collect::<String>().lines().map(str::to_string).collect();
                    if !lines.is_empty() {
                        let at = r(lines.len());
                        lines.remove(at);
                    }
                    t = lines.join("\n").chars().collect();
                }
            }
        }
        let variant: String = t.into_iter().collect();
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(p) = load_str("mangled.yaml", &variant) {
                let _ = expand(&p, &limits, None, 1.0);
                let _ = expand(&p, &big, Some(3), 0.01);
                let _ = sim_config(&p, None).map(|c| Limits::from_sim(&c));
            }
        });
        assert!(outcome.is_ok(), "variant {i} panicked:\n{variant}");
    }
}
