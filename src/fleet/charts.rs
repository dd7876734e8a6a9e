//! The merged report's charts: the merge's groups handed to the report's chart drawing.

use std::path::{Path, PathBuf};

use super::merge::Merged;
use crate::report::charts::{ChartError, GroupSeries, merge_charts as draw};

/// One chart per phase run label with each drive model and firmware's summed IOPS and QoS
/// curve (see [`draw`]).
pub fn merge_charts(dir: &Path, m: &Merged) -> Result<Vec<PathBuf>, ChartError> {
    let phases: Vec<(String, Vec<GroupSeries>)> = m
        .totals
        .iter()
        .map(|t| {
            let groups = m
                .groups
                .iter()
                .filter_map(|g| {
                    let a = g.phases.iter().find(|a| a.label == t.label)?;
                    Some(GroupSeries {
                        name: format!("{} {}", g.model, g.firmware),
                        runs: a.runs,
                        iops: a.iops,
                        mbps: a.mbps,
                        curve: a.curve.clone(),
                        max_us: a.latency_us.iter().find(|x| x.0 >= 100.0).map(|x| x.1),
                    })
                })
                .collect();
            (t.label.clone(), groups)
        })
        .collect();
    draw(dir, &phases)
}
