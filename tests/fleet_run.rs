//! Several drives from one host: `nvplan run PLAN --target T1 --target T2 ...` runs the
//! plan on every simulated drive at once, a process and CPUs each, and merges them; a
//! drive whose process is killed is incomplete in the merge and the others are intact.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nvplan::exec::Outcome;
use nvplan::fleet::{self, Status};
use nvplan::report;

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fleet-run").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A plan of `workers` workers running `seconds` each, written into `dir`.
fn plan(dir: &Path, workers: usize, seconds: f64) -> PathBuf {
    let mut text = String::from("name: fleet-test\nphases:\n  - name: rw\n    ioworkers:\n");
    for _ in 0..workers {
        text.push_str(&format!("      - {{io_size: 4KiB, read_percentage: 50, region_end: 16MiB, time: {seconds}s}}\n"));
    }
    text.push_str("    expect: {errors: 0}\n");
    let p = dir.join("plan.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn nvplan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nvplan"))
}

#[test]
fn four_targets_run_four_drives_and_a_killed_drive_is_incomplete_in_the_merge() {
    let base = out_dir("four");
    let plan = plan(&base, 1, 4.0);
    let out = base.join("out");
    let mut cmd = nvplan();
    cmd.args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--share-cores"]);
    for s in ["A", "B", "C", "D"] {
        cmd.args(["--target", &format!("sim:serial={s}")]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // "drive 1 (sim:serial=B): process PID -> DIR (log ...)"
    let mut victim = None;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let l = lines.next().unwrap().unwrap();
        seen.push(l.clone());
        if l.starts_with("drive 1 (sim:serial=B): process ") {
            victim = l.split_whitespace().nth(4).map(String::from);
        }
    }
    let pid = victim.unwrap_or_else(|| panic!("no start line of drive 1: {seen:?}"));
    // Killed while it runs: after it wrote its first summary, long before its 4 s end.
    let first = out.join("sim-serial-b/summary.json");
    let t = Instant::now();
    while !first.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(first.exists(), "drive B never wrote its summary");
    let killed = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{rest:?}\n{stderr}");
    assert!(rest.iter().any(|l| l == "drive 1 (sim:serial=B): ended by signal 9"), "{rest:?}");
    assert!(rest.last().unwrap().starts_with("4 runs merged: 3 passed, 0 failed, 1 incomplete, 0 missing"), "{rest:?}");
    assert!(stderr.contains("incomplete: ") && stderr.contains("(B on "), "{stderr}");
    // The merge on disk: four runs, four drives, B incomplete, the others whole.
    let m = fleet::merge(std::slice::from_ref(&out));
    let got: Vec<(&str, Status)> = m.runs.iter().map(|r| (r.identity.serial.as_str(), r.status)).collect();
    assert_eq!(got, [("A", Status::Pass), ("B", Status::Incomplete), ("C", Status::Pass), ("D", Status::Pass)]);
    let ids: std::collections::BTreeSet<&str> = m.runs.iter().map(|r| r.identity.run_id.as_str()).collect();
    assert_eq!(ids.len(), 4, "a run id each");
    for s in ["a", "c", "d"] {
        let run = report::read_summary(&out.join(format!("sim-serial-{s}"))).unwrap();
        assert_eq!((run.outcome, run.complete, run.phases.len()), (Outcome::Pass, true, 1), "drive {s}");
        assert!(run.phases[0].workers[0].iops > 0.0);
    }
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(written["counts"]["incomplete"], 1);
    let sum: f64 = m.runs.iter().flat_map(|r| &r.phases).map(|p| p.iops).sum();
    let total = m.totals.iter().find(|t| t.label == "rw").unwrap();
    assert!((total.iops - sum).abs() < 1e-6 * sum, "{} vs {sum}", total.iops);
    assert_eq!(total.runs, 3, "B ended no phase run");
}

#[test]
fn each_drive_of_a_list_runs_on_cpus_of_its_own() {
    let cpus = fleet::local::host_cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: one CPU, nothing to split");
        return;
    }
    let base = out_dir("cpus");
    let plan = plan(&base, 1, 0.3);
    let out = base.join("out");
    // The drives from a list file.
    let list = base.join("drives");
    std::fs::write(&list, "# two simulated drives\nsim:serial=X\n\nsim:serial=Y  # the second\n").unwrap();
    let o = nvplan().args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--target", &format!("list:{}", list.display())]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let cpu = |d: &str| report::read_summary(&out.join(d)).unwrap().phases[0].workers[0].cpu_id;
    assert_eq!((cpu("sim-serial-x"), cpu("sim-serial-y")), (Some(cpus[0]), Some(cpus[1])));
}

#[test]
fn more_workers_than_cpus_are_refused_before_anything_runs() {
    let base = out_dir("refused");
    let n = fleet::local::host_cpus().len();
    let plan = plan(&base, n, 0.1);
    let out = base.join("out");
    let o = nvplan()
        .args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--target", "sim:serial=X", "--target", "sim:serial=Y"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains(&format!("2 drives need {} CPUs", 2 * n)) && e.contains("--share-cores"), "{e}");
    assert!(!out.exists(), "nothing ran");
    // A target that names nothing is refused before anything runs, too.
    let o = nvplan().args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--target", "sim:serial=X", "--target", "nvme0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--target nvme0: unknown target `nvme0`"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.exists(), "nothing ran");
}

#[test]
fn slurm_writes_a_campaign_and_its_task_side_needs_a_slurm_job() {
    let base = out_dir("slurm");
    let plan = plan(&base, 3, 1.0);
    let results = base.join("results");
    let o = nvplan().args(["slurm", plan.to_str().unwrap(), "--drives", "5", "--results", results.to_str().unwrap(), "--max-parallel", "2"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let campaign = std::fs::read_to_string(results.join("campaign.sbatch")).unwrap();
    assert!(campaign.contains("#SBATCH --array=0-4%2\n") && campaign.contains("#SBATCH --cpus-per-task=3\n"), "{campaign}");
    assert!(campaign.contains(&format!(" run {} --target slurm ", plan.display())), "{campaign}");
    let merge = std::fs::read_to_string(results.join("merge.sbatch")).unwrap();
    assert!(merge.contains(&format!("report --merge {}/task-{{0..4}} --out {}/merged", results.display(), results.display())), "{merge}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(results.join("submit.sh")).unwrap().permissions().mode() & 0o111, 0o111);
    assert!(results.join("logs").is_dir());
    // The task side outside a Slurm job: a clear error, nothing run.
    let o = nvplan()
        .args(["run", plan.to_str().unwrap(), "--target", "slurm", "--out", base.join("task").to_str().unwrap()])
        .env_remove("SLURM_JOB_ID")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not inside a Slurm job (SLURM_JOB_ID is not set)"), "{}", String::from_utf8_lossy(&o.stderr));
    // An invalid plan is refused before any script is written.
    let bad = base.join("bad.yaml");
    std::fs::write(&bad, "name: bad\nphases: [{name: a, ioworkers: [{qdepth: 0}]}]\n").unwrap();
    let o = nvplan().args(["slurm", bad.to_str().unwrap(), "--drives", "2", "--results", base.join("bad").to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.yaml:2:41: qdepth: 0"), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!base.join("bad").exists());
}

/// The YAML documents of a manifest file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n").map(|d| serde_saphyr::from_str::<serde_json::Value>(d).unwrap_or_else(|e| panic!("{}: {e}\n{d}", path.display()))).collect()
}

#[test]
fn kube_writes_an_indexed_job_of_a_pod_per_drive_and_a_merge_of_every_index() {
    let base = out_dir("kube");
    let plan = plan(&base, 2, 1.0);
    let out = base.join("manifests");
    let args = [
        "kube",
        plan.to_str().unwrap(),
        "--drives",
        "12",
        "--image",
        "registry.example/nvplan:1",
        "--results-claim",
        "qual",
        "--out",
        out.to_str().unwrap(),
        "--parallelism",
        "4",
    ];
    let o = nvplan().args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let docs = yaml_docs(&out.join("campaign.yaml"));
    let (cm, job) = (&docs[0], &docs[1]);
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["data"]["plan.yaml"].as_str().unwrap(), std::fs::read_to_string(&plan).unwrap(), "the plan as written");
    let spec = &job["spec"];
    assert_eq!(
        (job["kind"].as_str(), spec["completionMode"].as_str(), spec["completions"].as_u64(), spec["parallelism"].as_u64()),
        (Some("Job"), Some("Indexed"), Some(12), Some(4))
    );
    assert_eq!((spec["backoffLimitPerIndex"].as_u64(), spec["maxFailedIndexes"].as_u64()), (Some(0), Some(12)), "a failed drive fails its index alone");
    let c = &spec["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"]["limits"]["nvplan.io/nvme"], "1");
    assert_eq!(c["resources"]["limits"]["cpu"], "2", "a CPU per worker");
    assert_eq!(
        c["args"][0],
        "exec nvplan run /plan/plan.yaml --target \"vfio:$PCIDEVICE_NVPLAN_IO_NVME\" --out \"/results/task-$JOB_COMPLETION_INDEX\" --quiet"
    );
    assert_eq!(spec["template"]["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"], "qual");
    let merge = &yaml_docs(&out.join("merge.yaml"))[0];
    assert_eq!(
        merge["spec"]["template"]["spec"]["containers"][0]["args"][0],
        "exec nvplan report --merge $(seq -f /results/task-%g 0 11) --out /results/merged"
    );
    let plugin = &yaml_docs(&out.join("device-plugin.yaml"))[0];
    let cfg: serde_json::Value = serde_json::from_str(plugin["data"]["config.json"].as_str().unwrap()).unwrap();
    let r = &cfg["resourceList"][0];
    assert_eq!(
        (r["resourcePrefix"].as_str(), r["resourceName"].as_str(), r["selectors"]["drivers"][0].as_str()),
        (Some("nvplan.io"), Some("nvme"), Some("vfio-pci"))
    );
    // A name Kubernetes would refuse is refused here.
    let mut bad = args.to_vec();
    bad.extend(["--name", "Qual_1"]);
    let o = nvplan().args(bad).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--name Qual_1: Kubernetes wants a DNS label"));
}

#[test]
fn sigterm_to_a_fleet_run_stops_every_drive_with_its_report_written() {
    let base = out_dir("sigterm");
    let plan = plan(&base, 1, 20.0);
    let out = base.join("out");
    let child = nvplan()
        .args(["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap(), "--share-cores", "--target", "sim:serial=P", "--target", "sim:serial=Q"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let firsts = [out.join("sim-serial-p/summary.json"), out.join("sim-serial-q/summary.json")];
    let t = Instant::now();
    while !firsts.iter().all(|f| f.exists()) && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(15), "stopped long before the plan's 20 s");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let m = fleet::merge(std::slice::from_ref(&out));
    assert_eq!((m.counts.incomplete, m.runs.len()), (2, 2));
    for d in ["sim-serial-p", "sim-serial-q"] {
        let s = report::read_summary(&out.join(d)).unwrap();
        assert_eq!((s.outcome, s.complete), (Outcome::Interrupted, false), "{d}");
        assert!(s.phases[0].workers[0].result.io_count() > 0, "{d}: what it measured is kept");
    }
}
