//! The `nvplan` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use nvplan::driver::{Controller, ControllerOptions};
use nvplan::sim::SimConfig;
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;
use nvplan::util::units::parse_size;
use nvplan::{exec, plan, report};

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
        /// Controller to run against: `sim` or `sim:<options>` (e.g. `sim:ns=4TiB,lba=4096`).
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
        /// Controller to check against (overrides the plans' `target:`): `sim` or
        /// `sim:<options>`.
        #[arg(long)]
        target: Option<String>,
    },
    /// Runs plans: phases of ioworkers with timed events, checked against their
    /// expectations; leaves OUT/summary.json (OUT/<plan name>/summary.json for several
    /// plans). Exit code 0 when every expectation is met, 1 when a run failed, an
    /// expectation was not met or the run was interrupted, 2 for an invalid plan.
    Run {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
        /// Controller to run on (overrides the plans' `target:`): `sim` or `sim:<options>`.
        #[arg(long)]
        target: Option<String>,
        /// Output directory (default: reports/<plan name>, or reports/ for several plans).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seed of every I/O stream (overrides the plans' `seed:`).
        #[arg(long)]
        seed: Option<u64>,
        /// Multiplies every duration of the plans (time, start_time, event times, power
        /// off time): 0.01 turns a 10-minute plan into a 6-second smoke test.
        #[arg(long, default_value_t = 1.0)]
        time_scale: f64,
    },
    /// Prints the JSON Schema of plans (for editors and CI).
    Schema,
}

fn open(target: &str) -> Result<SharedTransport, String> {
    let opts = match target.split_once(':') {
        Some(("sim", o)) => o,
        None if target == "sim" => "",
        _ => return Err(format!("--target {target}: unknown target (this build drives `sim` or `sim:<options>`)")),
    };
    let cfg = SimConfig::parse_options(opts).map_err(|e| format!("--target {target}: {e}"))?;
    Ok(Arc::new(SimTransport::new(cfg).map_err(|e| format!("--target {target}: {e}"))?))
}

fn smoke(target: &str, out: &std::path::Path, size: &str, seed: u64) -> Result<bool, String> {
    let total = parse_size(size).map_err(|e| format!("--size: {e}"))?;
    let t = open(target)?;
    let ctrl = Controller::new(t, ControllerOptions::default()).map_err(|e| format!("{target}: {e}"))?;
    let report = nvplan::smoke::run(&ctrl, total, seed).map_err(|e| format!("{target}: {e}"))?;
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("summary.json");
    let tmp = out.join(".summary.json.tmp");
    let json = serde_json::to_string_pretty(&report).expect("report serialises");
    std::fs::write(&tmp, json + "\n").and_then(|_| std::fs::rename(&tmp, &path)).map_err(|e| format!("{}: {e}", path.display()))?;
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
fn validate(plans: &[PathBuf], target: Option<&str>) -> ExitCode {
    if let Some(t) = target
        && let Err(e) = plan::parse_target(t)
    {
        eprintln!("nvplan: --target {t}: {e}");
        return ExitCode::from(2);
    }
    let mut all_ok = true;
    for path in plans {
        let checked = plan::load(path).and_then(|p| {
            let cfg = plan::sim_config(&p, target).map_err(|e| vec![e])?;
            let runs = plan::expand(&p, &plan::Limits::from_sim(&cfg), None, 1.0)?;
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

/// Ctrl-C / SIGTERM: the first asks the run to stop and still write its report; a second
/// one ends the process at once.
static STOP: AtomicBool = AtomicBool::new(false);

fn run(plans: &[PathBuf], target: Option<&str>, out: Option<&Path>, seed: Option<u64>, time_scale: f64) -> ExitCode {
    // Every plan is checked before anything runs.
    let mut loaded = Vec::new();
    let mut invalid = false;
    for path in plans {
        let checked = plan::load(path).and_then(|p| {
            let cfg = plan::sim_config(&p, target).map_err(|e| vec![e])?;
            plan::expand(&p, &plan::Limits::from_sim(&cfg), seed, time_scale)?;
            Ok((p, cfg))
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
    let mut all_pass = true;
    for (p, cfg) in &loaded {
        let dir = match (out, several) {
            (Some(o), false) => o.to_path_buf(),
            (Some(o), true) => o.join(&p.plan.name),
            (None, _) => Path::new("reports").join(&p.plan.name),
        };
        let summary = run_one(p, cfg, seed, time_scale, &dir);
        all_pass &= summary.outcome == exec::Outcome::Pass;
        if let Some(e) = &summary.error {
            eprintln!("nvplan: {}: {e}", p.file);
        }
        match report::write_summary(&dir, &summary) {
            Ok(path) => println!("{}: {:?} in {:.1} s -> {}", p.plan.name, summary.outcome, summary.seconds, path.display()),
            Err(e) => {
                eprintln!("nvplan: cannot write the report to {}: {e}", dir.display());
                all_pass = false;
            }
        }
        if STOP.load(Ordering::SeqCst) {
            break;
        }
    }
    if all_pass { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// Runs one plan on a fresh controller; a controller that cannot start still gives a
/// summary (outcome fail, with the error).
fn run_one(p: &plan::LoadedPlan, cfg: &SimConfig, seed: Option<u64>, time_scale: f64, dir: &Path) -> exec::Summary {
    let transport = SimTransport::new(cfg.clone()).map(|t| Arc::new(t) as SharedTransport).map_err(|e| e.to_string());
    exec::run_plan(p, transport, seed, time_scale, &STOP, |s: &exec::Summary| {
        if let Some(ph) = s.phases.last() {
            let ios: u64 = ph.workers.iter().map(|w| w.result.io_count()).sum();
            let errors: u64 = ph.workers.iter().map(|w| w.result.error_count).sum();
            println!("  {}: {:?} ({:.1} s, {ios} I/Os, {errors} errors)", ph.label, ph.outcome, ph.seconds);
            for c in ph.checks.iter().chain(ph.workers.iter().flat_map(|w| &w.checks)).filter(|c| !c.pass) {
                println!("    expected {} {}, got {}", c.what, c.expected, c.actual);
            }
            for e in ph.events.iter().filter(|e| e.outcome == exec::Outcome::Fail) {
                println!("    event {} failed: {}", e.name, e.error.as_deref().unwrap_or("?"));
            }
        }
        // Keep what was measured on disk as the run goes.
        let _ = report::write_summary(dir, s);
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Smoke { target, out, size, seed } => smoke(&target, &out, &size, seed),
        Cmd::Validate { plans, target } => return validate(&plans, target.as_deref()),
        Cmd::Run { plans, target, out, seed, time_scale } => return run(&plans, target.as_deref(), out.as_deref(), seed, time_scale),
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
