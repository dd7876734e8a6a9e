//! `nvplan import-fio`: job files written for the suite under `tests/fio/cases/` import to
//! the plans next to them (`NVPLAN_BLESS=1` rewrites those after a deliberate change: read
//! the diff), options that cannot be expressed fail the import with their lines, zoned
//! distributions import exactly, random and mutated job files never make it panic, and an
//! imported job file runs on the simulator.

use std::path::{Path, PathBuf};
use std::process::Command;

use nvplan::fio::{self, Device, HostValues, Imported, Note, Options};
use nvplan::plan::{self, model::IoSizeSpec};
use nvplan::util::rng::Rng;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The host the expected plans were written on.
fn host() -> HostValues {
    HostValues { pagesize: 4096, mb_memory: 16384, ncpus: 8 }
}

fn env(v: &str) -> Option<String> {
    match v {
        "SIZE" => Some("32m".into()),
        "DEPTH" => Some("4".into()),
        "BS" => Some("16k".into()),
        _ => None,
    }
}

/// A simulator target with its limits, as `--target` gives the import.
fn given(target: &str) -> Device {
    let Ok(plan::Target::Sim(cfg)) = plan::parse_target(target) else { panic!("{target} is a simulator target") };
    Device::Given { target: target.into(), limits: plan::Limits::from_sim(&cfg) }
}

/// Imports files named relative to the crate root (as the expected plans name them).
fn import_with(files: &[&str], device: Device) -> Result<Imported, Vec<Note>> {
    let prev = std::env::current_dir().unwrap();
    assert_eq!(prev.canonicalize().unwrap(), root().canonicalize().unwrap(), "tests run in the crate root");
    let paths: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    fio::import(&paths, &Options { device, env: &env, host: host() })
}

fn import(files: &[&str]) -> Result<Imported, Vec<Note>> {
    import_with(files, Device::Simulator)
}

/// Writes a job file under the test's temporary directory.
fn job_file(name: &str, text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fio");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

fn refused(text: &str) -> Vec<String> {
    let f = job_file("refused.fio", text);
    match import(&[&f]) {
        Ok(i) => panic!("imported:\n{}", i.yaml),
        Err(e) => e.iter().map(|n| format!("{}: {}: {}", n.line, n.option, n.message)).collect(),
    }
}

fn loaded(yaml: &str) -> plan::LoadedPlan {
    plan::load_str("imported.yaml", yaml).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"))
}

#[test]
fn every_case_imports_to_its_expected_plan() {
    let dir = root().join("tests/fio/cases");
    let mut cases: Vec<(String, Vec<String>)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            let stem = n.strip_suffix(".fio")?.to_string();
            (!stem.starts_with("multi-")).then(|| (stem.clone(), vec![format!("tests/fio/cases/{n}")]))
        })
        .collect();
    cases.push(("multi".into(), vec!["tests/fio/cases/multi-a.fio".into(), "tests/fio/cases/multi-b.fio".into()]));
    cases.sort();
    assert!(cases.len() >= 12, "{cases:?}");
    let bless = std::env::var_os("NVPLAN_BLESS").is_some();
    let mut wrong = Vec::new();
    for (stem, files) in &cases {
        // `; target: T` on the first line imports for that target.
        let first = std::fs::read_to_string(root().join(&files[0])).unwrap();
        let device = first.lines().next().and_then(|l| l.strip_prefix("; target: ")).map_or(Device::Simulator, |t| given(t.trim()));
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        let got = match import_with(&names, device) {
            Ok(i) => i.yaml,
            Err(e) => panic!("{stem}: {}", e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
        };
        let path = dir.join(format!("{stem}.yaml"));
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            wrong.push(format!("{stem}: the import differs from {}:\n{got}", path.display()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

fn worker<'a>(p: &'a plan::LoadedPlan, name: &str) -> &'a plan::model::WorkerSpec {
    p.plan.phases.iter().flat_map(|ph| &ph.ioworkers).find(|w| w.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no worker {name}"))
}

fn weights(w: &plan::model::WorkerSpec) -> Vec<(String, u32)> {
    match &w.io_size {
        Some(IoSizeSpec::Weighted(m)) => m.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bssplit_per_direction_splits_sizes_by_op() {
    let p = loaded(&import(&["tests/fio/cases/sizes.fio"]).unwrap().yaml);
    assert_eq!(weights(worker(&p, "split-by-op-read")), [("4KiB".into(), 60), ("64KiB".into(), 40)]);
    let w = worker(&p, "split-by-op-write");
    assert_eq!(w.io_size, Some(IoSizeSpec::One(plan::model::LbaValue::Text("8KiB".into()))));
    let t = worker(&p, "bs-by-op-trim");
    assert_eq!(t.io_size, Some(IoSizeSpec::One(plan::model::LbaValue::Text("64KiB".into()))), "bs=8k,16k,64k: trims take the third");
}

#[test]
fn a_mixed_job_whose_directions_differ_in_size_is_refused_with_the_fix() {
    let e = refused("[mix]\nfilename=/dev/nvme0n1\nrw=randrw\nsize=8m\nbssplit=4k/50:8k/50,64k\n");
    assert_eq!(
        e,
        ["5: bssplit: reads use 4k/50:8k/50 and writes use 64k; an ioworker has one io_size for all its I/O: split the job into one job per direction"]
    );
    let e = refused("[mix]\nfilename=/dev/nvme0n1\nrw=randrw\nsize=8m\nbs=4k,8k\n");
    assert!(e[0].starts_with("5: bs: reads use 4k and writes use 8k"), "{e:?}");
}

#[test]
fn jesd219_zones_mixes_and_clones_carry_over() {
    let text = "[JESD219]\nioengine=libaio\ndirect=1\nrw=randrw\nnorandommap\nrwmixread=40\niodepth=256\nnumjobs=4\n\
        bssplit=512/4:1024/1:1536/1:2048/1:2560/1:3072/1:3584/1:4k/67:8k/10:16k/7:32k/3:64k/3\nblockalign=4k\n\
        random_distribution=zoned:50/5:30/15:20/80\nfilename=/dev/nvme0n1\n";
    let f = job_file("jesd219.fio", text);
    let p = loaded(&import(&[&f]).unwrap().yaml);
    let reference = plan::load(&root().join("plans/jedec-enterprise-endurance.yaml")).unwrap();
    let endurance = worker(&reference, "jesd219");
    let ws: Vec<_> = p.plan.phases[0].ioworkers.iter().collect();
    assert_eq!(ws.len(), 4);
    for w in ws {
        assert_eq!(w.distribution, endurance.distribution, "the zones are the reference plan's buckets");
        assert_eq!(w.io_size, endurance.io_size, "the same size mix");
        assert_eq!(w.read_percentage, Some(40));
        assert_eq!(w.qdepth, Some(256));
    }
}

#[test]
fn options_that_would_change_the_test_are_refused_with_their_lines() {
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\nthinktime=100\nrw=trimwrite\nexitall\n");
    assert_eq!(
        e,
        [
            "4: thinktime: cannot be expressed: a pause after I/Os has no equivalent (iops paces instead)",
            "5: rw: rw=trimwrite writes each block right after trimming it; an ioworker picks every I/O on its own: use a trim job, then a write job with stonewall",
            "6: exitall: cannot be expressed: ends every job when the first one ends; nvplan workers end on their own",
        ]
    );
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\nrw=write\nverify=pattern\nverify_pattern=%o\n");
    assert!(e[0].starts_with("6: verify_pattern: %o (each block's offset) has no equivalent"), "{e:?}");
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\nrw=write\nbuffer_pattern=\"abc\"\n");
    assert!(e[0].contains("a 3-byte pattern"), "{e:?}");
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\nrw=randread:8\n");
    assert!(e[0].contains("runs of 8 I/Os at each random offset"), "{e:?}");
    let e = refused("[a]\nioengine=net\nfilename=/dev/nvme0n1\nsize=8m\n");
    assert!(e[0].starts_with("2: ioengine: ioengine=net does no block I/O"), "{e:?}");
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\niodeph=4\n");
    assert_eq!(e, ["4: iodeph: unknown fio option `iodeph`; did you mean `iodepth`?"]);
}

#[test]
fn mistakes_in_job_files_name_file_line_and_fix() {
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\nrw=randread\nrandom_distribution=zoned:50/10:30/20\n");
    assert_eq!(e, ["5: random_distribution: the zones' accesses add up to 80%; fio wants exactly 100%"]);
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\nbs=4kib\n");
    assert!(
        e[0].starts_with("4: bs: the block size is 4000 bytes, not a whole number of 512-byte LBAs (with fio's default kb_base=1024, KiB means 1000"),
        "{e:?}"
    );
    let e = refused("[a]\nfilename=/dev/nvme0n1\ntime_based\n");
    assert_eq!(e, ["3: time_based: time_based without runtime runs until stopped; give runtime="]);
    let e = refused("[a]\nfilename=data.bin\nrw=write\n");
    assert_eq!(e, ["1: size: fio needs a size for the file `data.bin` it would create; give size="]);
    let e = refused("bs=4k\n[a]\n");
    assert_eq!(e, ["1: section: `bs=4k` comes before any [section]; fio options belong to a job or [global]"]);
    let e = refused("[a]\nfilename=/dev/nvme0n1\nsize=8m\n[b]\nfilename=/dev/nvme1n1\nsize=8m\n");
    assert!(e[0].contains("a second NVMe controller"), "{e:?}");
}

#[test]
fn limits_of_a_given_target_refuse_what_it_cannot_do() {
    let f = job_file("big.fio", "[a]\nfilename=/dev/nvme0n1\nioengine=libaio\nrw=read\nbs=1m\niodepth=300\nsize=8m\n");
    let e = import_with(&[&f], given("sim:ns=1GiB,mdts=5,mqes=256")).unwrap_err();
    let msgs: Vec<String> = e.iter().map(|n| format!("{}: {}", n.option, n.message)).collect();
    assert_eq!(
        msgs,
        [
            "bs: 1MiB is larger than the controller's largest transfer (128KiB); nvplan sends each I/O as one command",
            "iodepth: iodepth=300 needs a queue of 301 entries; the controller's largest is 256",
        ]
    );
    // The simulator chosen by the import grows to fit instead.
    let ok = import(&[&f]).unwrap();
    assert!(ok.yaml.contains("mdts: 8"), "{}", ok.yaml);
}

/// Bucket weights of the first worker's distribution.
fn distribution(yaml: &str) -> Vec<u32> {
    loaded(yaml).plan.phases[0].ioworkers[0].distribution.clone().unwrap_or_else(|| panic!("no distribution:\n{yaml}"))
}

#[test]
fn zoned_distributions_import_exactly() {
    let cases: u64 = std::env::var("NVPLAN_FIO_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed: u64 = std::env::var("NVPLAN_FIO_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(219);
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        // Zones: accesses summing to 100, sizes in whole percents summing to at most 100.
        let n = 1 + rng.below(8) as usize;
        let mut access = vec![0u32; n];
        for _ in 0..100 {
            access[rng.below(n as u64) as usize] += 1;
        }
        let mut sizes = vec![1u64; n];
        let budget = rng.below(101 - n as u64);
        for _ in 0..budget {
            sizes[rng.below(n as u64) as usize] += 1;
        }
        let abs = rng.below(2) == 1;
        // zoned_abs on a 1000 MiB namespace: 1 % is 10 MiB.
        let spec: Vec<String> = access.iter().zip(&sizes).map(|(a, s)| if abs { format!("{a}/{}m", s * 10) } else { format!("{a}/{s}") }).collect();
        let kind = if abs { "zoned_abs" } else { "zoned" };
        let text = format!("[z]\nfilename=/dev/nvme0n1\nrw=randread\nnorandommap\ntime_based\nruntime=1\nrandom_distribution={kind}:{}\n", spec.join(":"));
        let f = job_file("zoned.fio", &text);
        let imported = import_with(&[&f], if abs { given("sim:ns=1000MiB") } else { Device::Simulator })
            .unwrap_or_else(|e| panic!("case {case} (NVPLAN_FIO_SEED={seed}): {text}\n{e:?}"));
        let w = distribution(&imported.yaml);
        assert!(!imported.warnings.iter().any(|n| n.option == "random_distribution"), "case {case}: {:?}", imported.warnings);
        let mut at = 0usize;
        for (a, s) in access.iter().zip(&sizes) {
            let zone = &w[at..at + *s as usize];
            assert_eq!(zone.iter().sum::<u32>(), a * 100, "case {case}: {text}: zone {a}/{s} at {at}");
            let (lo, hi) = (zone.iter().min().unwrap(), zone.iter().max().unwrap());
            assert!(hi - lo <= 1, "case {case}: a zone's buckets are even: {zone:?}");
            at += *s as usize;
        }
        assert!(w[at..].iter().all(|&x| x == 0), "case {case}: nothing beyond the zones");
    }
}

/// Job-file text from fragments, options of the table and values of every kind.
fn random_job_file(rng: &mut Rng, corpus: &[String]) -> String {
    const VALUES: &[&str] = &[
        "",
        "0",
        "1",
        "4k",
        "4kib",
        "1m",
        "50%",
        "101%",
        "-1",
        "0x10",
        "4k-128k",
        "4k/50:8k/50",
        "4k/60,8k",
        "zoned:50/5:30/15:20/80",
        "zoned_abs:50/1m:50/",
        "zipf:1.2",
        "pareto:0.5:0.3",
        "normal:200",
        "randrw",
        "write:-8k",
        "randread:4",
        "/dev/nvme0n1",
        "/dev/ng1n3",
        "a:b",
        "${HOME}",
        "$ncpus",
        "(1+",
        "((((((((((1))))))))))",
        "99999999999999999999",
        "1.5g",
        "0,2-3",
        "\"abc\"",
        "0xdeadbeef",
        "%o",
        "10m",
        "1d",
        "18446744073709551615",
    ];
    let names: Vec<&str> = fio::options::OPTIONS.iter().map(|o| o.name).collect();
    let mut lines: Vec<String> = match rng.below(3) {
        0 => corpus[rng.below(corpus.len() as u64) as usize].lines().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    for _ in 0..rng.below(40) {
        let line = match rng.below(10) {
            0 => format!("[{}]", ["global", "a", "b", "", "global2"][rng.below(5) as usize]),
            1 => "include nothing-here.fio".into(),
            2 => names[rng.below(names.len() as u64) as usize].to_string(),
            _ => format!("{}={}", names[rng.below(names.len() as u64) as usize], VALUES[rng.below(VALUES.len() as u64) as usize]),
        };
        let at = rng.below(lines.len() as u64 + 1) as usize;
        lines.insert(at, line);
    }
    // Mutations: drop, duplicate or cut lines, flip bytes, swap a value.
    for _ in 0..rng.below(6) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len() as u64) as usize;
        match rng.below(5) {
            4 => {
                if let Some((k, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{k}={}", VALUES[rng.below(VALUES.len() as u64) as usize]);
                }
            }
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(i, lines[i].clone()),
            2 => {
                let cut = rng.below(lines[i].len() as u64 + 1) as usize;
                let s: String = lines[i].chars().take(cut).collect();
                lines[i] = s;
            }
            _ => {
                let mut b = lines[i].clone().into_bytes();
                if !b.is_empty() {
                    let k = rng.below(b.len() as u64) as usize;
                    b[k] = b"=[]:,/-%#;\\ x0\t"[rng.below(15) as usize];
                }
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
        }
    }
    lines.join("\n")
}

#[test]
fn random_and_mutated_job_files_never_make_the_importer_panic() {
    let cases: u64 = std::env::var("NVPLAN_FIO_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let seed: u64 = std::env::var("NVPLAN_FIO_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let dir = root().join("tests/fio/cases");
    let corpus: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "fio").then(|| std::fs::read_to_string(p).unwrap())
        })
        .collect();
    let mut rng = Rng::new(seed);
    let (mut ok, mut refused) = (0, 0);
    for case in 0..cases {
        let text = random_job_file(&mut rng, &corpus);
        let f = job_file("random.fio", &text);
        let r = std::panic::catch_unwind(|| import(&[&f]));
        match r {
            Ok(Ok(i)) => {
                ok += 1;
                // Whatever imports is a valid plan.
                loaded(&i.yaml);
            }
            Ok(Err(e)) => {
                refused += 1;
                assert!(!e.is_empty() && e.iter().all(|n| !n.message.is_empty()), "case {case}: an empty refusal");
            }
            Err(_) => panic!("case {case} (NVPLAN_FIO_SEED={seed}) panicked on:\n{text}"),
        }
    }
    assert!(ok > 0 && refused > 0, "the generator reaches both outcomes: {ok} imported, {refused} refused");
}

fn nvplan(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nvplan")).args(args).current_dir(root()).output().expect("nvplan runs")
}

#[test]
fn the_command_writes_the_plan_warns_on_stderr_and_exits_2_on_refusal() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fio-cli.yaml");
    let o = nvplan(&["import-fio", "tests/fio/cases/basic.fio", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nvplan: warning: tests/fio/cases/basic.fio:7: ioengine: ioengine=io_uring"), "{err}");
    let v = nvplan(&["validate", out.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stderr));
    let f = job_file("cli-refused.fio", "[a]\nfilename=/dev/nvme0n1\nsize=8m\nthinktime=10\nflow=2\n");
    let o = nvplan(&["import-fio", &f]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "no plan on refusal");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cli-refused.fio:4: thinktime: cannot be expressed") && err.ends_with("not imported; fix or remove: thinktime, flow\n"), "{err}");
}

#[test]
fn an_imported_job_file_runs_on_the_simulator() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fio-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let plan_path = dir.join("run.yaml");
    let o = nvplan(&["import-fio", "tests/fio/run.fio", "--out", plan_path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.join("report");
    let o = nvplan(&["run", plan_path.to_str().unwrap(), "--out", out.to_str().unwrap(), "--time-scale", "0.5", "-q"]);
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let failing: Vec<String> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["workers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|w| w["outcome"] != "pass")
                .map(move |w| format!("{} {}: {} {}", p["name"], w["name"], w["error"], w["error_message"]))
        })
        .collect();
    assert_eq!(o.status.code(), Some(0), "{}\n{}\n{failing:?}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(s["outcome"], "pass");
    let phases: Vec<(&str, usize)> =
        s["phases"].as_array().unwrap().iter().map(|p| (p["name"].as_str().unwrap(), p["workers"].as_array().unwrap().len())).collect();
    assert_eq!(phases, [("fill", 1), ("fill-verify", 1), ("mixed", 2), ("read", 1), ("read-flush", 0)]);
    let verify = &s["phases"][1]["workers"][0];
    assert_eq!(verify["lba_count_read"], (16u64 << 20) / 512, "the read-back reads all the fill wrote");
    assert_eq!(verify["miscompare_count"], 0);
    let mixed = &s["phases"][2]["workers"][0];
    assert!(mixed["io_count_read"].as_u64().unwrap() > 0 && mixed["io_count_write"].as_u64().unwrap() > 0, "{mixed}");
}
