//! fio job files as plans (`nvplan import-fio`): fio's job-file format is read, each job
//! becomes ioworkers (one per clone), `stonewall` and `wait_for` become phases, and every
//! option either carries over (exactly, or approximately with a warning), is reported as
//! having no effect on the drive, or fails the import when dropping it would change what
//! the test does. The plan written is checked like `nvplan validate` checks a plan, and
//! carries the job file's line numbers in comments.
//!
//! The option table ([`options`]) is also what plan validation uses to answer a fio word
//! in a plan (`bs`) with the nvplan parameter.

mod build;
mod dist;
mod emit;
mod job;
mod jobfile;
mod ops;
pub mod options;
mod phases;
mod region;
mod sizes;
mod values;

use std::fmt;
use std::path::PathBuf;

pub use jobfile::HostValues;

use crate::plan::Limits;

/// Something the import says about a line of a job file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// The job file (as named on the command line, or the include's path).
    pub file: String,
    /// 1-based line (0 for the file as a whole).
    pub line: usize,
    /// The fio option.
    pub option: String,
    /// What happens to it, or what is wrong and the fix.
    pub message: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.option, self.message)
        } else {
            write!(f, "{}:{}: {}: {}", self.file, self.line, self.option, self.message)
        }
    }
}

/// The controller the plan is for.
#[derive(Clone, Debug)]
pub enum Device {
    /// The simulator, sized by the import to hold what the jobs address (at least 1 GiB,
    /// 512-byte LBAs).
    Simulator,
    /// A target as on the command line (`sim:...`, `vfio:...`) with the limits it shows;
    /// the plan names it, and sizes and percentages are of its namespaces.
    Given {
        /// `--target` as written.
        target: String,
        /// Its namespaces, largest transfer, queues and CPUs.
        limits: Limits,
    },
}

/// What the import needs besides the job files.
pub struct Options<'a> {
    /// The controller.
    pub device: Device,
    /// The environment for `${VAR}`.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Values of `$pagesize`, `$mb_memory`, `$ncpus`.
    pub host: HostValues,
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options").field("device", &self.device).field("host", &self.host).finish_non_exhaustive()
    }
}

/// A plan imported from job files.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The plan, as YAML with comments.
    pub yaml: String,
    /// Options left out or approximated, one note each.
    pub warnings: Vec<Note>,
}

/// Most ioworkers a plan gets from job files (jobs × numjobs, read-back workers included).
pub const MAX_WORKERS: usize = 4096;

/// Imports job files. On failure, every problem: options the plan cannot express (named,
/// with their lines and why) and errors in the job files. Never panics, whatever the input.
pub fn import(files: &[PathBuf], opts: &Options<'_>) -> Result<Imported, Vec<Note>> {
    let read = jobfile::read(files, opts.env, opts.host)?;
    let plan_name =
        files.first().and_then(|p| p.file_stem()).map(|s| s.to_string_lossy().into_owned()).filter(|s| !s.is_empty()).unwrap_or_else(|| "fio".into());
    let mut report = job::Report::new(read.names.clone());
    report.warnings.extend(read.warnings.iter().cloned());
    let jobs: Vec<job::Job> = read.jobs.iter().map(|j| job::Job::new(j, &mut report)).collect();
    let built = build::build(&jobs, &opts.device, opts.host.ncpus as usize, &mut report);
    let plan = phases::plan(&jobs, built, &opts.device, &plan_name, &mut report);
    let (errors, mut warnings) = report.finish();
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(plan) = plan else {
        return Err(vec![Note { file: read.names.first().cloned().unwrap_or_default(), line: 0, option: "file".into(), message: "no jobs to import".into() }]);
    };
    warnings.dedup();
    let sources: emit::Sources =
        read.jobs.iter().flat_map(|j| j.options.iter().map(|o| (o.at, o.written.clone())).chain([(j.at, format!("[{}]", j.section))])).collect();
    let yaml = emit::yaml(&plan, &read.names, &sources, &warnings);
    // The plan must stand on its own: check it as `nvplan validate` would.
    emit::check(&yaml, read.names.first().map_or("", String::as_str), &opts.device)?;
    Ok(Imported { yaml, warnings })
}
