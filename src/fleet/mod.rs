//! Fleets: one plan on many drives. A run stays one plan on one drive; everything here
//! composes runs and merges their result directories, never reaching into a run.
//!
//! - [`merge`]: reads run directories (from any hosts) into one [`merge::Merged`]: every
//!   run with its origin, sums over all runs and by drive model and firmware.
//! - [`output`]: the merged report's files.
//! - [`local`]: several drives of one host, a process each, with CPUs of their own.
//! - [`slurm`]: campaigns as Slurm job arrays, and the drive of a task's allocation.
//! - [`kube`]: campaigns as Kubernetes Indexed Jobs.

pub mod charts;
pub mod kube;
pub mod local;
pub mod merge;
pub mod output;
pub mod slurm;

pub use merge::{Merged, Status, merge};

use std::path::{Path, PathBuf};

/// `nvplan report --merge`: merges the runs in `dirs` and writes the merged report into
/// `out`. Returns the merge and the problems met writing it; an error when `out` cannot
/// take it.
pub fn merge_report(dirs: &[PathBuf], out: &Path) -> Result<(Merged, Vec<String>), String> {
    let m = merge(dirs);
    let (_, problems) = output::write(&m, out)?;
    Ok((m, problems))
}
