//! Reports: pure functions from results to files.

use std::path::{Path, PathBuf};

use crate::exec::Summary;

/// Writes `dir/summary.json` (through a temporary file, so a reader never sees half of
/// it); returns its path.
pub fn write_summary(dir: &Path, s: &Summary) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("summary.json");
    let tmp = dir.join(".summary.json.tmp");
    let json = serde_json::to_string_pretty(s).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json + "\n")?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
