//! Charts of a merged report: per phase run label, the runs of each drive model and
//! firmware together: their IOPS summed (bars) and the QoS curve of their histograms added
//! up.

use super::*;

/// The runs of one drive model and firmware, for one phase run label.
#[derive(Clone, Debug)]
pub struct GroupSeries {
    /// `MODEL FIRMWARE`.
    pub name: String,
    /// Runs in the group.
    pub runs: usize,
    /// IOPS summed over its runs.
    pub iops: f64,
    /// MB/s summed over its runs.
    pub mbps: f64,
    /// `(percentile, µs)` of the group's histograms added up, 0 to 99.999.
    pub curve: Vec<(f64, f64)>,
    /// Largest latency, µs.
    pub max_us: Option<f64>,
}

/// Draws `merge-NN-<label>.png` into `dir` for each `(label, groups)`: summed IOPS and
/// MB/s by group on the left, the groups' QoS curves on the right. A label without data
/// is left out.
pub fn merge_charts(dir: &Path, phases: &[(String, Vec<GroupSeries>)]) -> Result<Vec<PathBuf>, ChartError> {
    let mut out = Vec::new();
    for (label, groups) in phases {
        if groups.is_empty() || groups.iter().all(|g| !g.iops.is_finite() || g.iops <= 0.0) && groups.iter().all(|g| curve_points(&g.curve).is_empty()) {
            continue;
        }
        let runs: usize = groups.iter().map(|g| g.runs).sum();
        let file = format!("merge-{:02}-{}.png", out.len(), slug(label));
        let title = format!("{label}: {runs} runs by drive model and firmware");
        let sub = "IOPS and MB/s summed over the runs; latency from their histograms added up".to_string();
        out.push(save(dir, &file, (1800, HEIGHT), |root| {
            let area = frame(root, &title, &sub)?;
            let (w, _) = area.dim_in_pixel();
            let (left, right) = area.split_horizontally(w * 2 / 5);
            draw_group_bars(&left, groups)?;
            let curves: Vec<Curve> = groups
                .iter()
                .enumerate()
                .map(|(k, g)| {
                    let label = match g.max_us {
                        Some(m) if m.is_finite() && m > 0.0 => format!("{} (max {})", g.name, dur_us(m)),
                        _ => g.name.clone(),
                    };
                    Curve { label, color: color(k), mark: Mark::Thick, points: curve_points(&g.curve) }
                })
                .filter(|c| !c.points.is_empty())
                .collect();
            draw_qos(&right, &curves, None)
        })?);
    }
    Ok(out)
}

/// Horizontal bars of summed IOPS, one per group, labelled with its runs and MB/s.
fn draw_group_bars(area: &Area, groups: &[GroupSeries]) -> Result<(), ChartError> {
    let labels: Vec<String> = groups.iter().rev().map(|g| format!("{} ({} run{})", g.name, g.runs, if g.runs == 1 { "" } else { "s" })).collect();
    let mut widest = 0;
    for l in &labels {
        widest = widest.max(area.estimate_text_size(l, &text(14))?.0);
    }
    let label_w = (widest + 16).min(area.dim_in_pixel().0 / 2);
    let max = groups.iter().map(|g| g.iops).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(110)
        .x_label_area_size(52)
        .y_label_area_size(label_w)
        .build_cartesian_2d(zero_range(max), category_axis(labels.len()))?;
    style_mesh!(chart.configure_mesh())
        .label_style(text(14))
        .disable_y_mesh()
        .x_desc("IOPS, summed over the runs")
        .x_label_formatter(&|v| si(*v, 4))
        .y_label_formatter(&|v| category(&labels, *v))
        .draw()?;
    let right = Pos::new(HPos::Left, VPos::Center);
    let n = groups.len();
    for (i, g) in groups.iter().enumerate() {
        let (y, v) = ((n - 1 - i) as f64, if g.iops.is_finite() { g.iops } else { 0.0 });
        chart.draw_series(std::iter::once(Rectangle::new([(0.0, y - 0.35), (v, y + 0.35)], color(i).filled())))?;
        let note = format!("{} · {} MB/s", si(v, 3), num(g.mbps, 3));
        chart.draw_series(std::iter::once(EmptyElement::at((v, y)) + Text::new(note, (5, 0), text(13).pos(right))))?;
    }
    Ok(())
}
