//! Plan validation end to end: every invalid plan under tests/plans/invalid names its
//! mistake at `file:line:col: field:`, valid plans expand as written, and no mangled plan
//! makes the loader panic.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nvplan::ioworker::{IoSize, OnReset};
use nvplan::plan::bounds::{MAX_NODES, MAX_PLAN_BYTES, MAX_RUN_NODES, MAX_WORKER_RUNS};
use nvplan::plan::model::ResetSpec;
use nvplan::plan::yaml::Seg;
use nvplan::plan::{EventAction, Limits, expand, load, load_bytes, load_str, resolved, sim_config};
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
        // Some plans are hostile on purpose: not UTF-8, a byte-order mark first, CR line ends.
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let header = text
            .trim_start_matches('\u{feff}')
            .split(['\r', '\n'])
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

/// The first error line of `nvplan validate` on `text` written to a file named `name`, and
/// the file's path.
fn validate_text(name: &str, text: &[u8]) -> (String, PathBuf) {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let o = nvplan().arg("validate").arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{name}: {}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or_default().to_string();
    (err, path)
}

#[test]
fn crlf_cr_and_a_byte_order_mark_load_as_the_plain_plan_does() {
    let text = std::fs::read_to_string(dir("valid").join("sweep-and-repeat.yaml")).unwrap();
    let limits = Limits::from_sim(&SimConfig::parse_options("ns=1GiB,lba=4096,mdts=5").unwrap());
    let runs = |t: &str| format!("{:?}", expand(&load_str("p.yaml", t).unwrap(), &limits, None, 1.0).unwrap());
    let plain = runs(&text);
    for (what, t) in [("CR LF", text.replace('\n', "\r\n")), ("CR", text.replace('\n', "\r")), ("BOM", format!("\u{feff}{text}"))] {
        assert_eq!(runs(&t), plain, "{what}: the same runs");
        // The same mistake is found on the same line and column.
        let bad = t.replacen("qdepth: 16", "qdepth: 0", 1);
        let e = load_str("p.yaml", &bad).unwrap_err();
        assert_eq!(e[0].to_string(), "p.yaml:12:17: qdepth: 0 I/Os outstanding; give at least 1", "{what}");
    }
}

#[test]
fn a_plan_past_the_size_limit_stops_where_it_passes_it_and_a_file_without_end_is_not_read_to_its_end() {
    let line = format!("# {}\n", "x".repeat(1021));
    let text = format!("name: big\n{}", line.repeat(MAX_PLAN_BYTES / line.len() + 1));
    let (err, path) = validate_text("big.yaml", text.as_bytes());
    let at = MAX_PLAN_BYTES - 10;
    let want = format!("{}:{}:{}: file: the plan goes past 8,388,608 bytes here", path.display(), 2 + at / line.len(), 1 + at % line.len());
    assert!(err.starts_with(&want), "{err}\nwanted {want}");
    let o = nvplan().args(["validate", "/dev/zero"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("/dev/zero:1:8388609: file: the plan goes past 8,388,608 bytes here"), "{err}");
}

#[test]
fn a_list_past_the_node_limit_stops_at_the_limit() {
    let text = format!("name: long\nphases: [{}]\n", vec!["{}"; MAX_NODES].join(","));
    let (err, path) = validate_text("long-list.yaml", text.as_bytes());
    // Mapping, two keys, `long`, the list: the 149,996th item is the node past the limit.
    let col = 10 + 3 * (MAX_NODES - 5);
    assert!(err.starts_with(&format!("{}:2:{col}: phases: the plan has more than 150,000 nodes", path.display())), "{err}");
}

#[test]
fn nesting_far_past_the_depth_limit_is_an_error_and_no_stack_overflow() {
    for (name, text) in [
        ("deep-flow.yaml", format!("name: deep\nphases: {}{}\n", "[".repeat(100_000), "]".repeat(100_000))),
        ("deep-block.yaml", format!("name: deep\nphases:\n{}", (0..2000).map(|i| format!("{}- \n", " ".repeat(i * 2))).collect::<String>())),
        ("deep-map.yaml", format!("name: deep\nphases: {}x{}\n", "{a: ".repeat(100_000), "}".repeat(100_000))),
    ] {
        let (err, _) = validate_text(name, text.as_bytes());
        assert!(err.contains(": lists and mappings nest more than 64 levels deep here"), "{name}: {err}");
    }
}

#[test]
fn workers_and_phases_made_by_aliases_stop_at_their_limits() {
    let workers = format!("name: many workers\nphases:\n  - name: a\n    ioworkers: [&w {{time: 1}}{}]\n", ", *w".repeat(1024));
    let (err, path) = validate_text("many-workers.yaml", workers.as_bytes());
    assert_eq!(err, format!("{}:4:5: ioworkers: 1,025 ioworkers in phase `a`; a phase runs at most 1,024: spread them over several phases", path.display()));
    let phases = format!("name: many phases\nphases: [&p {{name: a, ioworkers: [{{time: 1}}]}}{}]\n", ", *p".repeat(10_000));
    let (err, path) = validate_text("many-phases.yaml", phases.as_bytes());
    assert_eq!(err, format!("{}:2:1: phases: 10,001 phases; a plan holds at most 10,000: split it into several plans", path.display()));
}

#[test]
fn past_100_errors_the_last_line_counts_the_rest() {
    let o = nvplan().arg("validate").arg(dir("invalid").join("many-errors.yaml")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 101, "{err}");
    assert!(lines[100].ends_with(": plan: 50 more errors from here on are not shown; fix the first 100 and validate again"), "{}", lines[100]);
}

#[test]
fn invalid_utf8_is_an_error_at_the_byte_not_at_the_start() {
    let e = load_bytes("p.yaml", b"name: t\nphases:\n  - name: \xc3\x28\n").unwrap_err();
    assert_eq!(e[0].to_string(), "p.yaml:3:11: file: byte 0xc3 (offset 26) is not UTF-8 text; save the plan as UTF-8");
    let e = load_bytes("p.yaml", b"name: caf\xc3").unwrap_err();
    assert_eq!((e[0].line, e[0].col), (1, 10), "a character cut off at the end");
}

/// `plan.resolved.yaml` writes one phase per run: a plan at the limits on runs gives one
/// that is still within the limits on plans, so it loads again.
#[test]
fn the_resolved_plan_of_a_plan_at_the_run_limits_loads_again() {
    let workers: String = (0..4).map(|i| format!("      - {{name: w{i}, time: 1, io_size: 8, read_percentage: 50}}\n")).collect();
    let text = format!(
        "name: at the limits\nphases:\n  - name: matrix\n    sweep: {{qdepth: [{}], lba_random: [{}]}}\n    ioworkers:\n{workers}",
        (1..=50).map(|q| q.to_string()).collect::<Vec<_>>().join(", "),
        (1..=45).map(|q| q.to_string()).collect::<Vec<_>>().join(", ")
    );
    let plan = load_str("p.yaml", &text).unwrap();
    let runs = expand(&plan, &Limits::from_sim(&SimConfig::default()), None, 1.0).unwrap();
    let worker_runs: usize = runs.iter().map(|r| r.workers.len()).sum();
    assert_eq!((runs.len(), worker_runs), (2250, 9_000));
    assert!(worker_runs <= MAX_WORKER_RUNS as usize);
    let phase = plan.tree.child(&Seg::Key("phases".into())).and_then(|p| p.child(&Seg::Index(0))).unwrap();
    let sweep = phase.child(&Seg::Key("sweep".into())).unwrap();
    let copied = 2249 * (phase.size() - sweep.size()) as u64;
    assert!((MAX_RUN_NODES * 8 / 10..=MAX_RUN_NODES).contains(&copied), "near the limit on what runs add: {copied}");
    let doc = serde_saphyr::to_string(&resolved(&plan, &runs, 1)).unwrap();
    let again = load_str("resolved.yaml", &doc).unwrap_or_else(|e| panic!("{}", e[0]));
    assert_eq!(again.plan.phases.len(), 2250);
}

#[test]
fn a_key_of_megabytes_is_quoted_short() {
    let text = format!("name: t\nphases:\n  - name: a\n    ioworkers:\n      - time: 1\n        ? {}\n        : 1\n", "q".repeat(2 << 20));
    let (err, path) = validate_text("long-key.yaml", text.as_bytes());
    let q = format!("{}...", "q".repeat(57));
    assert_eq!(err, format!("{}:6:11: {q}: unknown parameter `{q}`; docs/plans.md lists the ioworker parameters", path.display()));
}
