//! The `nvplan` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use nvplan::driver::{Controller, ControllerOptions};
use nvplan::plan;
use nvplan::sim::SimConfig;
use nvplan::transport::SharedTransport;
use nvplan::transport::sim::SimTransport;
use nvplan::util::units::parse_size;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Smoke { target, out, size, seed } => smoke(&target, &out, &size, seed),
        Cmd::Validate { plans, target } => return validate(&plans, target.as_deref()),
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
