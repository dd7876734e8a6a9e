//! The campaign commands of the command line: several targets at once, `nvplan slurm`,
//! `nvplan kube` and `nvplan report --merge`. Each checks its input and calls the library
//! (`nvplan::fleet`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use nvplan::{exec, plan, report};

use crate::STOP;

/// `nvplan run PLAN... --target T1 --target T2 ...`: the plans are checked for every
/// target, each drive gets CPUs for the most workers a phase run of the plans has, and the
/// drives run at once, a process each; the merged report decides the exit code.
pub fn run_fleet(plans: &[PathBuf], targets: &[String], out: Option<&Path>, seed: Option<u64>, time_scale: f64, share_cores: bool) -> ExitCode {
    let mut need = vec![0usize; targets.len()];
    let mut invalid = false;
    let mut names = Vec::new();
    for path in plans {
        let p = match plan::load(path) {
            Ok(p) => p,
            Err(errors) => {
                invalid = true;
                errors.iter().for_each(|e| eprintln!("{e}"));
                continue;
            }
        };
        names.push(p.plan.name.clone());
        for (t, n) in targets.iter().zip(need.iter_mut()) {
            if let Err(e) = plan::parse_target(t) {
                eprintln!("nvplan: --target {t}: {e}");
                invalid = true;
                continue;
            }
            // Workers are counted against the simulator's limits: a drive is opened by its
            // own process only, which checks the plan against the drive itself.
            let expanded = plan::sim_config(&p, Some(t)).map_err(|e| vec![e]).and_then(|cfg| plan::expand(&p, &plan::Limits::from_sim(&cfg), seed, time_scale));
            match expanded {
                Ok(runs) => *n = (*n).max(runs.iter().map(|r| r.workers.len()).max().unwrap_or(1)),
                Err(errors) if t.starts_with("sim") => {
                    invalid = true;
                    errors.iter().for_each(|e| eprintln!("{e}"));
                }
                Err(_) => *n = (*n).max(p.plan.phases.iter().map(|ph| ph.ioworkers.len()).max().unwrap_or(1)),
            }
        }
    }
    if invalid {
        return ExitCode::from(2);
    }
    let out = match (out, names.as_slice()) {
        (Some(o), _) => o.to_path_buf(),
        (None, [one]) => Path::new("reports").join(one),
        (None, _) => PathBuf::from("reports/fleet"),
    };
    let drives = match nvplan::fleet::local::drives(targets, &need, &out, share_cores) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("nvplan: {e}");
            return ExitCode::from(2);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("nvplan: cannot find the nvplan executable to start the drives' runs with: {e}");
            return ExitCode::from(2);
        }
    };
    let _ = ctrlc::set_handler(|| {
        STOP.store(true, Ordering::SeqCst);
        eprintln!("nvplan: interrupted; asking every drive's run to stop and write its report");
    });
    let f = nvplan::fleet::local::FleetRun { exe, plans, drives, seed, time_scale, out: out.clone() };
    match nvplan::fleet::local::run(&f, &STOP, &mut std::io::stdout()) {
        Ok((_, m, problems)) => merge_summary(&m, &problems, &out),
        Err(e) => {
            eprintln!("nvplan: {e}");
            ExitCode::from(2)
        }
    }
}

/// What `nvplan slurm` was given besides the plans.
pub struct SlurmOpts {
    pub drives: usize,
    pub results: PathBuf,
    pub drive_list: Option<PathBuf>,
    pub max_parallel: Option<usize>,
    pub partition: Option<String>,
    pub time_limit: Option<String>,
    pub time_scale: f64,
    pub seed: Option<u64>,
    pub nvplan: Option<PathBuf>,
}

/// `nvplan slurm`: checks the plans, writes the campaign's scripts, prints how to submit.
pub fn slurm_cmd(plans: &[PathBuf], o: SlurmOpts) -> ExitCode {
    if o.drives == 0 {
        eprintln!("nvplan: --drives 0: a campaign needs at least one drive");
        return ExitCode::from(2);
    }
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut workers = 1;
    let mut names = Vec::new();
    for path in plans {
        // Checked against the simulator: the drives themselves are only seen by the tasks.
        match plan::load(path).and_then(|p| {
            let cfg = plan::sim_config(&p, None).map_err(|e| vec![e])?;
            plan::expand(&p, &plan::Limits::from_sim(&cfg), o.seed, o.time_scale).map(|r| (p, r))
        }) {
            Ok((p, runs)) => {
                workers = workers.max(runs.iter().map(|r| r.workers.len()).max().unwrap_or(1));
                names.push(p.plan.name.clone());
            }
            Err(errors) => {
                errors.iter().for_each(|e| eprintln!("{e}"));
                return ExitCode::from(2);
            }
        }
    }
    let nvplan_exe = match o.nvplan.map_or_else(std::env::current_exe, Ok) {
        Ok(p) => abs(&p),
        Err(e) => {
            eprintln!("nvplan: cannot find this executable, give --nvplan: {e}");
            return ExitCode::from(2);
        }
    };
    let c = nvplan::fleet::slurm::Campaign {
        plans: plans.iter().map(|p| abs(p)).collect(),
        drives: o.drives,
        results: abs(&o.results),
        nvplan: nvplan_exe,
        drive_list: o.drive_list.map(|l| abs(&l)),
        cpus_per_task: workers,
        max_parallel: o.max_parallel,
        partition: o.partition,
        time_limit: o.time_limit,
        time_scale: o.time_scale,
        seed: o.seed,
        name: format!("nvplan-{}", names.join("-")),
    };
    match c.write() {
        Ok(submit) => {
            let cpus = if workers == 1 { "1 CPU".to_string() } else { format!("{workers} CPUs") };
            println!("{}: {} tasks, {cpus} and one nvme GRES each; merged report in {}", submit.display(), c.drives, c.results.join("merged").display());
            println!("submit: sh {}", submit.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nvplan: {e}");
            ExitCode::from(2)
        }
    }
}

/// What `nvplan kube` was given besides the plan and the output directory.
pub struct KubeOpts {
    pub drives: usize,
    pub image: String,
    pub results_claim: String,
    pub name: Option<String>,
    pub namespace: String,
    pub resource: String,
    pub parallelism: Option<usize>,
    pub time_scale: f64,
}

/// `nvplan kube`: checks the plan, writes the campaign's manifests.
pub fn kube_cmd(path: &Path, out: &Path, o: KubeOpts) -> ExitCode {
    let checked = plan::load(path).and_then(|p| {
        let cfg = plan::sim_config(&p, None).map_err(|e| vec![e])?;
        plan::expand(&p, &plan::Limits::from_sim(&cfg), None, o.time_scale).map(|r| (p, r))
    });
    let (p, runs) = match checked {
        Ok(x) => x,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("nvplan: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let file = path.file_name().map_or_else(|| "plan.yaml".into(), |f| f.to_string_lossy().into_owned());
    let c = nvplan::fleet::kube::KubeCampaign {
        name: o.name.unwrap_or_else(|| report::charts::slug(&p.plan.name)),
        namespace: o.namespace,
        plan: (file, text),
        drives: o.drives,
        parallelism: o.parallelism.unwrap_or(o.drives),
        image: o.image,
        resource: o.resource,
        results_claim: o.results_claim,
        cpus: runs.iter().map(|r| r.workers.len()).max().unwrap_or(1),
        time_scale: o.time_scale,
    };
    if let Err(e) = c.check() {
        eprintln!("nvplan: {e}");
        return ExitCode::from(2);
    }
    for (name, yaml) in c.manifests() {
        match report::write_atomic(out, name, yaml.as_bytes()) {
            Ok(p) => println!("{}", p.display()),
            Err(e) => {
                eprintln!("nvplan: {}: {e}", out.join(name).display());
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}

/// `nvplan report --merge`: the merged report, a line per run that did not pass; 0 when
/// every run passed, 1 when one failed, did not end or is missing, 2 when the output
/// directory cannot take the report.
pub fn merge_cmd(dirs: &[PathBuf], out: Option<&Path>) -> ExitCode {
    let out = out.map_or_else(|| PathBuf::from("reports/merged"), Path::to_path_buf);
    match nvplan::fleet::merge_report(dirs, &out) {
        Ok((m, problems)) => merge_summary(&m, &problems, &out),
        Err(e) => {
            eprintln!("nvplan: {e}");
            ExitCode::from(2)
        }
    }
}

/// Prints what a merge found; the exit code it calls for.
fn merge_summary(m: &nvplan::fleet::Merged, problems: &[String], out: &Path) -> ExitCode {
    for l in nvplan::fleet::output::problem_lines(m) {
        eprintln!("nvplan: {l}");
    }
    for p in problems {
        eprintln!("nvplan: report: {p}");
    }
    let c = &m.counts;
    println!("{} runs merged: {} passed, {} failed, {} incomplete, {} missing -> {}", m.runs.len(), c.pass, c.failed, c.incomplete, c.missing, out.display());
    if m.outcome == exec::Outcome::Pass && problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
