//! The `nvplan` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use nvplan::driver::{Controller, ControllerOptions};
use nvplan::power::{SharedSwitch, SwitchContext, SwitchSpec};
use nvplan::progress::Progress;
use nvplan::transport::SharedTransport;
use nvplan::util::units::parse_size;
use nvplan::{devices, exec, plan, report};

mod cli {
    pub mod campaign;
}
use cli::campaign::{KubeOpts, SlurmOpts, kube_cmd, merge_cmd, run_fleet, slurm_cmd};

#[derive(Parser)]
#[command(name = "nvplan", version, about = "Declarative NVMe SSD workload engine")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Writes random data in mixed sizes through PRPs and SGLs, reads it back and
    /// verifies every byte; leaves OUT/summary.json.
    Smoke {
        /// Controller to run against: `sim`, `sim:<options>` (e.g. `sim:ns=4TiB,lba=4096`) or
        /// `vfio:<PCI address or serial>` (a function bound with `nvplan bind`).
        #[arg(long, default_value = "sim")]
        target: String,
        /// Output directory.
        #[arg(long, default_value = "reports/smoke")]
        out: PathBuf,
        /// Bytes to write and verify.
        #[arg(long, default_value = "64MiB")]
        size: String,
        /// Seed of the data and sizes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Checks plans against the target without running them: prints every error of every
    /// plan, and `PLAN: ok (...)` for each valid one. Exit code 0 when all are valid, 2
    /// otherwise.
    Validate {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// Controller to check against (overrides the plans' `target:`): `sim`,
        /// `sim:<options>` or `vfio:<PCI address or serial>`.
        #[arg(long)]
        target: Option<String>,
        /// The drive's power switch (overrides the plans' `target: {power: ...}`):
        /// `command:off=CMD,on=CMD[,status=CMD][,timeout=30s]`, `slot[:NAME]`,
        /// `quarch:HOST[:PORT][,module=N]` or `suspend`; docs/power.md.
        #[arg(long, value_name = "SWITCH")]
        power: Option<String>,
    },
    /// Runs plans: phases of ioworkers with timed events, checked against their
    /// expectations; leaves OUT/summary.json (OUT/<plan name>/summary.json for several
    /// plans). Exit code 0 when every expectation is met, 1 when a run failed, an
    /// expectation was not met or the run was interrupted, 2 for an invalid plan.
    Run {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// Controller to run on (overrides the plans' `target:`): `sim`, `sim:<options>` or
        /// `vfio:<PCI address or serial>` (a function bound with `nvplan bind`). Given
        /// several times, the plans run on every drive at once, each in a process of its
        /// own with CPUs of its own, into OUT/<target>/, with a merged report in OUT.
        /// Selectors: `vfio:all` (every NVMe function on vfio-pci), `list:FILE` (a target
        /// per line); `slurm[:FILE]` inside a Slurm job (the drive it was given).
        #[arg(long)]
        target: Vec<String>,
        /// The drive's power switch, for power_cycle events (overrides the plans'
        /// `target: {power: ...}`): `command:off=CMD,on=CMD[,status=CMD][,timeout=30s]`,
        /// `slot[:NAME]`, `quarch:HOST[:PORT][,module=N]` or `suspend`; any may add
        /// `ready=DURATION`. docs/power.md has an example of each. One drive's: not with
        /// several --target.
        #[arg(long, value_name = "SWITCH")]
        power: Option<String>,
        /// Output directory (default: reports/<plan name>, or reports/ for several plans).
        #[arg(long)]
        out: Option<PathBuf>,
        /// CPUs the workers are pinned to, in turn (e.g. 0-3,8): worker i, or the worker
        /// with cpu_id i, on the i-th of them. Default: every CPU, worker i on CPU i.
        #[arg(long, value_name = "LIST")]
        cpus: Option<String>,
        /// With several targets: let drives share CPUs when there are fewer CPUs than
        /// workers of all drives together (their measurements then disturb each other).
        #[arg(long)]
        share_cores: bool,
        /// Seed of every I/O stream (overrides the plans' `seed:`).
        #[arg(long)]
        seed: Option<u64>,
        /// Multiplies every duration of the plans (time, start_time, event times, power
        /// off time): 0.01 turns a 10-minute plan into a 6-second smoke test.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// No progress and no per-phase lines; errors and the final line only. (The live
        /// progress line is off anyway when stderr is not a terminal.)
        #[arg(long, short)]
        quiet: bool,
    },
    /// Draws the CSVs, JUnit file and charts of a run again from its summary.json; given
    /// several result directories (drives, hosts, firmware versions), draws them side by
    /// side: one comparison chart per phase, and comparison.csv. With --merge, merges any
    /// number of runs into one report (exit code 1 when a run failed, did not end or is
    /// missing).
    Report {
        /// Result directories (each with a summary.json; with --merge, also directories
        /// holding run directories).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output directory (default: the run's own directory for one, reports/compare
        /// for several, reports/merged with --merge).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Merge the runs: summary.json with every run and its origin, merged.csv (long
        /// format), runs.csv, junit.xml with a suite per run, charts by model and firmware.
        /// IOPS and bytes are summed, percentiles come from the histograms added up.
        #[arg(long)]
        merge: bool,
    },
    /// Writes the batch scripts of a campaign on Slurm into RESULTS: campaign.sbatch (a job
    /// array, one task per drive, each with --gres=nvme:1 and --target slurm), merge.sbatch
    /// (`report --merge` of every task, into RESULTS/merged) and submit.sh (submits both,
    /// the merge after the array). Prints the command that submits the campaign.
    Slurm {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// Drives, one array task each.
        #[arg(long)]
        drives: usize,
        /// Results directory, shared by the nodes.
        #[arg(long)]
        results: PathBuf,
        /// Drive list on the nodes: a target per line, in the order of gres.conf's nvme
        /// File= entries (default: $NVPLAN_DRIVES, else /etc/nvplan/drives).
        #[arg(long, value_name = "FILE")]
        drive_list: Option<PathBuf>,
        /// Tasks running at once (default: as many as Slurm can place).
        #[arg(long)]
        max_parallel: Option<usize>,
        /// Partition to submit to.
        #[arg(long)]
        partition: Option<String>,
        /// Time limit of a task, in sbatch's format (e.g. 2:00:00).
        #[arg(long)]
        time_limit: Option<String>,
        /// Multiplies every duration of the plans.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
        /// Seed of every I/O stream.
        #[arg(long)]
        seed: Option<u64>,
        /// The nvplan executable on the nodes (default: this one).
        #[arg(long, value_name = "PATH")]
        nvplan: Option<PathBuf>,
    },
    /// Writes the manifests of a campaign on Kubernetes into OUT: campaign.yaml (the plan as
    /// a ConfigMap and an Indexed Job, one pod per drive, each given one drive by the device
    /// plugin and writing /results/task-<index>), merge.yaml (the Job that merges them into
    /// /results/merged) and device-plugin.yaml (the SR-IOV device plugin's configuration).
    Kube {
        /// Plan file.
        plan: PathBuf,
        /// Drives: one pod each.
        #[arg(long)]
        drives: usize,
        /// Container image with nvplan on its PATH.
        #[arg(long)]
        image: String,
        /// PersistentVolumeClaim (ReadWriteMany) mounted at /results in every pod.
        #[arg(long)]
        results_claim: String,
        /// Directory the manifests are written to.
        #[arg(long)]
        out: PathBuf,
        /// Name of the Jobs (default: the plan's name, as a DNS label).
        #[arg(long)]
        name: Option<String>,
        /// Namespace of the Jobs.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The device plugin's resource of a drive.
        #[arg(long, default_value = "nvplan.io/nvme")]
        resource: String,
        /// Pods running at once (default: every drive).
        #[arg(long)]
        parallelism: Option<usize>,
        /// Multiplies every duration of the plan.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Writes a plan equivalent to fio job files: one ioworker per job and clone,
    /// stonewall and wait_for as phases, the job files' lines in comments. Options with no
    /// equivalent are warnings on stderr and comments in the plan; options whose loss would
    /// change the test fail the import (exit code 2), each named with its line. The plan is
    /// checked as `validate` checks one.
    ImportFio {
        /// fio job files (several are read as fio reads them: a stonewall between files).
        #[arg(required = true, value_name = "JOBFILE")]
        jobfiles: Vec<PathBuf>,
        /// Where to write the plan (default: stdout).
        #[arg(long, value_name = "PLAN.yaml")]
        out: Option<PathBuf>,
        /// The controller the plan is for: sizes and percentages are of its namespaces, and
        /// the plan names it (default: the simulator, sized to hold what the jobs address).
        #[arg(long)]
        target: Option<String>,
    },
    /// Prints the JSON Schema of plans (for editors and CI).
    Schema,
    /// Lists the NVMe functions (PCI class 0x010802): address, vendor:device, driver, IOMMU
    /// group, model and serial (while on the nvme driver), what uses them (mounts, swap, the
    /// root file system, device-mapper holders, open VFIO groups), and the other functions of
    /// their IOMMU groups.
    Devices {
        /// JSON for machines instead of the table.
        #[arg(long)]
        json: bool,
        /// Root of the file system whose sys/ and proc/ are read and written (default /, or
        /// $NVPLAN_SYSFS_ROOT): for tests against fake trees.
        #[arg(long, value_name = "DIR")]
        sysfs_root: Option<PathBuf>,
    },
    /// Moves NVMe functions to vfio-pci for nvplan's user-space driver. ADDR is a PCI address
    /// (0000:01:00.0, or 01:00.0 for domain 0000) or a serial number. Refuses, unless --force,
    /// a function in use (mounted, swap, root file system, held) or sharing its IOMMU group
    /// with a function that is not named and not free; refuses always a function that is not
    /// NVMe or does not exist, and when the IOMMU is off or vfio-pci is not loaded. Exit code
    /// 0 when done, 2 when refused, 1 when a write failed (run as root).
    Bind {
        #[command(flatten)]
        functions: Functions,
        /// Take functions that are in use or share their IOMMU group anyway.
        #[arg(long)]
        force: bool,
    },
    /// Gives NVMe functions back to the kernel's nvme driver (clears driver_override, unbinds,
    /// reprobes). The same refusals as `bind`, but no IOMMU needed; the group check is against
    /// functions left on vfio-pci. Exit code 0 when done, 2 when refused, 1 when a write
    /// failed.
    Unbind {
        #[command(flatten)]
        functions: Functions,
        /// Move functions whose IOMMU group stays on vfio-pci, or that are in use, anyway.
        #[arg(long)]
        force: bool,
    },
}

/// The functions `bind` and `unbind` move, and where sysfs is.
#[derive(clap::Args)]
struct Functions {
    /// PCI addresses or serial numbers (name every NVMe function of a shared IOMMU group).
    #[arg(required = true, value_name = "ADDR")]
    addrs: Vec<String>,
    /// Root of the file system whose sys/ and proc/ are read and written (default /, or
    /// $NVPLAN_SYSFS_ROOT): for tests against fake trees.
    #[arg(long, value_name = "DIR")]
    sysfs_root: Option<PathBuf>,
}

fn open(target: &str) -> Result<SharedTransport, String> {
    let t = plan::parse_target(target).map_err(|e| format!("--target {target}: {e}"))?;
    nvplan::target::open(&t)
}

/// A drive opened before its plan runs, with its power switch.
type Opened = (SharedTransport, Option<SharedSwitch>);

/// What plan `p` is checked against before it runs, on target `t` with switch `power`: the
/// simulator's limits from its configuration; a real function is opened and asked, and
/// stays open (with its switch) for the run.
fn limits_of(p: &plan::LoadedPlan, t: &plan::Target, power: Option<&SwitchSpec>) -> Result<(plan::Limits, Option<Opened>), Vec<plan::PlanError>> {
    if matches!(t, plan::Target::Vfio(_)) && power.is_none() {
        let refused = plan::power_events_without_switch(p);
        if !refused.is_empty() {
            return Err(refused);
        }
    }
    let opened = match t {
        plan::Target::Sim(cfg) => return Ok((plan::Limits::from_sim(cfg), None)),
        plan::Target::Vfio(_) => nvplan::target::open(t).and_then(|tr| {
            let switch = match power {
                Some(spec) => {
                    let ctx = SwitchContext { root: nvplan::target::sysfs_root(), address: tr.pci_address() };
                    Some(spec.open(&ctx).map_err(|e| format!("{}: power switch: {e}", tr.describe()))?)
                }
                None => None,
            };
            let ctrl = Controller::new(tr.clone(), ControllerOptions::default()).map_err(|e| format!("{}: {e}", tr.describe()))?;
            ctrl.set_power_switch(switch.clone());
            Ok((plan::Limits::from_controller(&ctrl), Some((tr, switch))))
        }),
    };
    opened.map_err(|message| vec![plan::PlanError { file: p.file.clone(), line: 1, col: 1, field: "target".into(), message }])
}

fn smoke(target: &str, out: &std::path::Path, size: &str, seed: u64) -> Result<bool, String> {
    let total = parse_size(size).map_err(|e| format!("--size: {e}"))?;
    let t = open(target)?;
    let ctrl = Controller::new(t, ControllerOptions::default()).map_err(|e| format!("{target}: {e}"))?;
    let report = nvplan::smoke::run(&ctrl, total, seed).map_err(|e| format!("{target}: {e}"))?;
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    let path = report::write_atomic(out, "summary.json", (json + "\n").as_bytes()).map_err(|e| format!("{}: {e}", out.join("summary.json").display()))?;
    println!(
        "{} {} ({}): wrote {} MiB in {} commands ({} via SGL), read back {} commands, {} miscompares, {} errors, {:.2} s -> {}",
        report.model,
        report.serial,
        report.target,
        report.bytes_written >> 20,
        report.writes,
        report.sgl_commands,
        report.reads,
        report.miscompares,
        report.errors,
        report.seconds,
        report.outcome
    );
    println!("report: {}", path.display());
    Ok(report.outcome == "pass")
}

/// Every error of every plan goes to stderr, one per line; 0 when all plans are valid, 2
/// otherwise.
fn validate(plans: &[PathBuf], target: Option<&str>, power: Option<&str>) -> ExitCode {
    if let Some(t) = target
        && let Err(e) = plan::parse_target(t)
    {
        eprintln!("nvplan: --target {t}: {e}");
        return ExitCode::from(2);
    }
    if let Some(p) = power
        && let Err(e) = SwitchSpec::parse(p)
    {
        eprintln!("nvplan: --power {p}: {e}");
        return ExitCode::from(2);
    }
    let mut all_ok = true;
    for path in plans {
        let checked = plan::load(path).and_then(|p| {
            let t = plan::target(&p, target).map_err(|e| vec![e])?;
            let sw = plan::power(&p, &t, target, power).map_err(|e| vec![e])?;
            let (limits, _) = limits_of(&p, &t, sw.as_ref())?;
            let runs = plan::expand(&p, &limits, None, 1.0)?;
            Ok(runs)
        });
        match checked {
            Ok(runs) => {
                let workers: usize = runs.iter().map(|r| r.workers.len()).sum();
                println!("{}: ok ({} phase runs, {workers} workers)", path.display(), runs.len());
            }
            Err(errors) => {
                all_ok = false;
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
    }
    if all_ok { ExitCode::SUCCESS } else { ExitCode::from(2) }
}

/// `nvplan import-fio`: the plan to stdout or `--out`, warnings and refusals on stderr.
fn import_fio(files: &[PathBuf], out: Option<&Path>, target: Option<&str>) -> ExitCode {
    let device = match target {
        None => nvplan::fio::Device::Simulator,
        Some(t) => {
            let limits = plan::parse_target(t).and_then(|tg| match tg {
                plan::Target::Sim(cfg) => Ok(plan::Limits::from_sim(&cfg)),
                plan::Target::Vfio(_) => nvplan::target::open(&tg).and_then(|tr| {
                    let ctrl = Controller::new(tr.clone(), ControllerOptions::default()).map_err(|e| format!("{}: {e}", tr.describe()))?;
                    Ok(plan::Limits::from_controller(&ctrl))
                }),
            });
            match limits {
                Ok(limits) => nvplan::fio::Device::Given { target: t.to_string(), limits },
                Err(e) => {
                    eprintln!("nvplan: --target {t}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let env = |v: &str| std::env::var(v).ok();
    let opts = nvplan::fio::Options { device, env: &env, host: nvplan::fio::HostValues::here() };
    match nvplan::fio::import(files, &opts) {
        Ok(imported) => {
            for w in &imported.warnings {
                eprintln!("nvplan: warning: {w}");
            }
            match out {
                Some(o) => {
                    if let Err(e) = std::fs::write(o, &imported.yaml) {
                        eprintln!("nvplan: {}: {e}", o.display());
                        return ExitCode::from(2);
                    }
                    println!("{}: written ({} warnings)", o.display(), imported.warnings.len());
                }
                None => print!("{}", imported.yaml),
            }
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("nvplan: {p}");
            }
            let mut named: Vec<&str> = Vec::new();
            for p in &problems {
                if !named.contains(&p.option.as_str()) {
                    named.push(&p.option);
                }
            }
            eprintln!("nvplan: import-fio: not imported; fix or remove: {}", named.join(", "));
            ExitCode::from(2)
        }
    }
}

/// Ctrl-C / SIGTERM: the first asks the run to stop and still write its report; a second
/// one ends the process at once.
static STOP: AtomicBool = AtomicBool::new(false);

fn run(
    plans: &[PathBuf],
    target: Option<&str>,
    power: Option<&str>,
    out: Option<&Path>,
    (seed, time_scale): (Option<u64>, f64),
    quiet: bool,
    cpus: &[usize],
) -> ExitCode {
    // Every plan is checked before anything runs.
    let mut loaded = Vec::new();
    let mut invalid = false;
    for path in plans {
        let checked = plan::load(path).and_then(|p| {
            let t = plan::target(&p, target).map_err(|e| vec![e])?;
            let sw = plan::power(&p, &t, target, power).map_err(|e| vec![e])?;
            let (limits, open) = limits_of(&p, &t, sw.as_ref())?;
            let runs = plan::expand(&p, &limits, seed, time_scale)?;
            Ok((p, (t, open), runs, path.clone()))
        });
        match checked {
            Ok(p) => loaded.push(p),
            Err(errors) => {
                invalid = true;
                errors.iter().for_each(|e| eprintln!("{e}"));
            }
        }
    }
    if invalid {
        return ExitCode::from(2);
    }
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("nvplan: interrupted again; exiting without waiting");
            std::process::exit(130);
        }
        eprintln!("nvplan: interrupted; stopping the workers and writing the report (Ctrl-C again to quit at once)");
    });
    let several = loaded.len() > 1;
    let mut all_ok = true;
    let mut unusable_out = false;
    for (p, (t, open), runs, path) in loaded {
        let p = &p;
        let dir = match (out, several) {
            (Some(o), false) => o.to_path_buf(),
            (Some(o), true) => o.join(&p.plan.name),
            (None, _) => Path::new("reports").join(&p.plan.name),
        };
        let (mut rep, note) = match report::Report::create(&dir, std::env::args().collect(), Some(&path)) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("nvplan: {e}");
                unusable_out = true;
                continue;
            }
        };
        if let Some(n) = note {
            eprintln!("nvplan: {n}");
        }
        let ran_with = format!("the plan {} as it ran: seed {}, --time-scale {time_scale}; durations as written", p.file, seed.or(p.plan.seed).unwrap_or(1));
        rep.resolved_plan(&plan::resolved(p, &runs, seed.or(p.plan.seed).unwrap_or(1)), &ran_with);
        let (transport, switch) = match open {
            Some((tr, sw)) => (Ok(tr), sw),
            None => (nvplan::target::open(&t), None),
        };
        // A panic of nvplan's own still ends in a report that says the run failed.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_one(p, transport, switch, (seed, time_scale), cpus, &mut rep, quiet)));
        let summary = ran.unwrap_or_else(|panic| exec::crashed(p, report::read_summary(rep.dir()).ok(), seed, time_scale, &*panic));
        all_ok &= summary.outcome == exec::Outcome::Pass;
        if let Some(e) = &summary.error {
            eprintln!("nvplan: {}: {e}", p.file);
        }
        // Rounds until steady state stop early: the plan as it ran holds the rounds that ran.
        if runs.iter().any(|r| r.steady.is_some()) {
            let ran: Vec<plan::PhaseRun> = runs.iter().filter(|r| r.steady.is_none() || summary.phases.iter().any(|p| p.label == r.label)).cloned().collect();
            rep.resolved_plan(&plan::resolved(p, &ran, seed.or(p.plan.seed).unwrap_or(1)), &ran_with);
        }
        let problems = rep.finish(&summary);
        for pr in &problems {
            eprintln!("nvplan: report: {pr}");
        }
        all_ok &= problems.is_empty();
        println!("{}: {:?} in {:.1} s -> {}", p.plan.name, summary.outcome, summary.seconds, dir.display());
        if STOP.load(Ordering::SeqCst) {
            break;
        }
    }
    if unusable_out {
        ExitCode::from(2)
    } else if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Shows progress and keeps the report on disk up to date as the run goes.
struct RunObserver<'a> {
    progress: Progress,
    report: &'a mut report::Report,
}

impl exec::Observer for RunObserver<'_> {
    fn started(&mut self, s: &exec::Summary) {
        self.report.update(s);
    }
    fn phase_started(&mut self, run: &plan::PhaseRun, index: usize, total: usize) {
        self.progress.phase_started(run, index, total);
    }
    fn live(&mut self, live: &exec::LiveStatus<'_>) {
        self.progress.live(live);
    }
    fn phase_done(&mut self, s: &exec::Summary) {
        self.progress.phase_done(s);
        self.report.update(s);
    }
}

/// Runs one plan on a fresh controller; a controller that cannot start still gives a
/// summary (outcome fail, with the error).
fn run_one(
    p: &plan::LoadedPlan,
    transport: Result<SharedTransport, String>,
    switch: Option<SharedSwitch>,
    (seed, time_scale): (Option<u64>, f64),
    cpus: &[usize],
    rep: &mut report::Report,
    quiet: bool,
) -> exec::Summary {
    let mut obs = RunObserver { progress: Progress::new(quiet), report: rep };
    let s = exec::run_plan_on(p, transport, switch, (seed, time_scale), cpus, &STOP, &mut obs);
    obs.progress.finish();
    s
}

/// `nvplan report`: one directory is drawn again, several are compared.
fn report_cmd(dirs: &[PathBuf], out: Option<&Path>) -> Result<bool, String> {
    let problems = if dirs.len() == 1 {
        let out = out.unwrap_or(&dirs[0]);
        let p = report::rerender(&dirs[0], out)?;
        println!("{} -> {}", dirs[0].display(), out.display());
        p
    } else {
        let out = out.map_or_else(|| PathBuf::from("reports/compare"), Path::to_path_buf);
        let p = report::compare(dirs, &out)?;
        println!("{} runs compared -> {}", dirs.len(), out.display());
        p
    };
    for p in &problems {
        eprintln!("nvplan: report: {p}");
    }
    Ok(problems.is_empty())
}

/// `--sysfs-root`, else $NVPLAN_SYSFS_ROOT, else `/`.
fn sysfs_root(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(nvplan::target::sysfs_root)
}

fn devices_error(e: &devices::DevicesError) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("nvplan: {line}");
    }
    ExitCode::from(e.exit_code())
}

/// `nvplan devices`: an aligned table, or JSON.
fn devices_cmd(root: &Path, json: bool) -> ExitCode {
    let functions = match devices::scan(root) {
        Ok(f) => f,
        Err(e) => return devices_error(&e),
    };
    let iommu = devices::iommu_on(root);
    let vfio = devices::driver_loaded(root, "vfio-pci");
    if json {
        let v = serde_json::json!({ "iommu_on": iommu, "vfio_pci_loaded": vfio, "functions": functions });
        println!("{}", serde_json::to_string_pretty(&v).expect("devices serialise"));
        return ExitCode::SUCCESS;
    }
    if functions.is_empty() {
        println!("no NVMe functions under {}", root.join("sys/bus/pci/devices").display());
    } else {
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        let none = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
        let mut rows = vec![["ADDRESS", "ID", "DRIVER", "GROUP", "MODEL", "SERIAL", "IN USE"].map(String::from)];
        for f in &functions {
            let uses = if f.in_use.is_empty() { "-".into() } else { f.in_use.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ") };
            rows.push([f.address.clone(), format!("{}:{}", f.vendor, f.device), none(&f.driver), none(&f.iommu_group), dash(&f.model), dash(&f.serial), uses]);
        }
        let widths: Vec<usize> = (0..7).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            println!("{}", line.join("  ").trim_end());
        }
        for f in functions.iter().filter(|f| !f.group_peers.is_empty()) {
            let peers: Vec<String> = f.group_peers.iter().map(ToString::to_string).collect();
            println!("{}: IOMMU group {} also holds {}", f.address, none(&f.iommu_group), peers.join(", "));
        }
    }
    if !iommu {
        println!("note: the IOMMU is off: boot with intel_iommu=on (or amd_iommu=on) iommu=pt");
    } else if !vfio {
        println!("note: vfio-pci is not loaded: run `modprobe vfio-pci`");
    }
    ExitCode::SUCCESS
}

/// `nvplan bind` and `nvplan unbind`: one line per function; 1 when a function did not end
/// up on the driver asked for.
fn move_cmd(root: &Path, addrs: &[String], force: bool, to_vfio: bool) -> ExitCode {
    let r = if to_vfio { devices::bind(root, addrs, force) } else { devices::unbind(root, addrs, force) };
    let moved = match r {
        Ok(m) => m,
        Err(e) => return devices_error(&e),
    };
    let mut ok = true;
    for m in &moved {
        let from = m.from.as_deref().unwrap_or("no driver");
        match m.to.as_deref() {
            _ if m.writes.is_empty() => println!("{}: already on {}", m.address, m.wanted),
            Some(to) if to == m.wanted => println!("{}: {from} -> {to}", m.address),
            to => {
                ok = false;
                eprintln!(
                    "nvplan: {}: wrote driver_override, unbind and drivers_probe, but its driver is {} rather than {}: see `dmesg` for why the probe failed",
                    m.address,
                    to.unwrap_or("none"),
                    m.wanted
                );
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Smoke { target, out, size, seed } => smoke(&target, &out, &size, seed),
        Cmd::Validate { plans, target, power } => return validate(&plans, target.as_deref(), power.as_deref()),
        Cmd::Run { plans, target, power, out, seed, time_scale, quiet, cpus, share_cores } => {
            let cpus = match cpus.as_deref().map(|c| nvplan::fleet::local::parse_cpus(c).map_err(|e| format!("--cpus {c}: {e}"))).transpose() {
                Ok(c) => c.unwrap_or_default(),
                Err(e) => {
                    eprintln!("nvplan: {e}");
                    return ExitCode::from(2);
                }
            };
            let target = match nvplan::fleet::local::expand_targets(&target, &nvplan::target::sysfs_root()) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("nvplan: {e}");
                    return ExitCode::from(2);
                }
            };
            if target.len() > 1 {
                if power.is_some() {
                    // A switch belongs to its drive.
                    eprintln!(
                        "nvplan: --power names the power switch of one drive, and {} targets were given: run a drive that needs a switch in a run of its own",
                        target.len()
                    );
                    return ExitCode::from(2);
                }
                return run_fleet(&plans, &target, out.as_deref(), seed, time_scale, share_cores);
            }
            // The drive a Slurm job was given, on the CPUs it was given.
            let (target, cpus) = match target.first().map(|t| (t, nvplan::fleet::slurm::allocation(t))) {
                Some((_, Ok(Some(a)))) => (Some(a.target), if cpus.is_empty() { a.cpus } else { cpus }),
                Some((t, Ok(None))) => (Some(t.clone()), cpus),
                Some((_, Err(e))) => {
                    eprintln!("nvplan: {e}");
                    return ExitCode::from(2);
                }
                None => (None, cpus),
            };
            return run(&plans, target.as_deref(), power.as_deref(), out.as_deref(), (seed, time_scale), quiet, &cpus);
        }
        Cmd::Report { dirs, out, merge: true } => return merge_cmd(&dirs, out.as_deref()),
        Cmd::Report { dirs, out, merge: false } => report_cmd(&dirs, out.as_deref()),
        Cmd::Devices { json, sysfs_root: r } => return devices_cmd(&sysfs_root(r), json),
        Cmd::Bind { functions: f, force } => return move_cmd(&sysfs_root(f.sysfs_root), &f.addrs, force, true),
        Cmd::Unbind { functions: f, force } => return move_cmd(&sysfs_root(f.sysfs_root), &f.addrs, force, false),
        Cmd::ImportFio { jobfiles, out, target } => return import_fio(&jobfiles, out.as_deref(), target.as_deref()),
        Cmd::Slurm { plans, drives, results, drive_list, max_parallel, partition, time_limit, time_scale, seed, nvplan } => {
            let opts = SlurmOpts { drives, results, drive_list, max_parallel, partition, time_limit, time_scale, seed, nvplan };
            return slurm_cmd(&plans, opts);
        }
        Cmd::Kube { plan, drives, image, results_claim, out, name, namespace, resource, parallelism, time_scale } => {
            let k = KubeOpts { drives, image, results_claim, name, namespace, resource, parallelism, time_scale };
            return kube_cmd(&plan, &out, k);
        }
        Cmd::Schema => {
            println!("{}", serde_json::to_string_pretty(&nvplan::plan::schema()).expect("a schema serialises"));
            Ok(true)
        }
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("nvplan: {e}");
            ExitCode::from(2)
        }
    }
}
