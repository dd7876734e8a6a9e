//! PNG charts (placeholder until the drawing code lands).

use std::path::{Path, PathBuf};

use crate::exec::Summary;

/// What can go wrong drawing a chart.
pub type ChartError = Box<dyn std::error::Error + Send + Sync>;

/// Charts of phase run `i`.
pub fn phase_charts(_dir: &Path, _s: &Summary, _i: usize) -> Result<Vec<PathBuf>, ChartError> {
    Ok(Vec::new())
}

/// Sweep matrices.
pub fn sweep_charts(_dir: &Path, _s: &Summary) -> Result<Vec<PathBuf>, ChartError> {
    Ok(Vec::new())
}

/// Comparisons.
pub fn comparison_charts(_dir: &Path, _runs: &[(String, &Summary)]) -> Result<Vec<PathBuf>, ChartError> {
    Ok(Vec::new())
}
