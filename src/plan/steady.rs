//! Checks of a phase's `steady_state`, and the tracked cell among its sweep combinations.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::PlanError;
use super::load::LoadedPlan;
use super::model::{ExpectSpec, PhaseSpec, TrackSpec};
use super::sweep::{self, Combo, label_value};
use super::yaml::Seg;
use crate::exec::STANDARD_PERCENTILES;

fn key(k: &str) -> Seg {
    Seg::Key(k.into())
}

fn join(a: &[Seg], b: &[Seg]) -> Vec<Seg> {
    [a, b].concat()
}

/// Two sweep values name the same cell when they label alike, spaces aside (`4KiB`,
/// `4 KiB`; `0`, `"0"`).
fn same(a: &Value, b: &Value) -> bool {
    let n = |v: &Value| label_value(v).chars().filter(|c| !c.is_whitespace()).collect::<String>();
    a == b || n(a) == n(b)
}

/// Index of the tracked cell among `combos` (0 without a sweep), if the cell names one.
pub(crate) fn cell_index(cell: Option<&BTreeMap<String, Value>>, combos: &[Combo]) -> Option<usize> {
    let Some(cell) = cell else { return (combos.len() == 1).then_some(0) };
    combos.iter().position(|c| c.values.len() == cell.len() && cell.iter().all(|(k, v)| c.values.get(k).is_some_and(|(s, _)| same(s, v))))
}

/// The errors of a phase's `steady_state` and of expectations of it, each at the field.
pub(crate) fn check(lp: &LoadedPlan, ph: &PhaseSpec, path: &[Seg]) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let spath = join(path, &[key("steady_state")]);
    for (j, w) in ph.ioworkers.iter().enumerate() {
        if w.expect.as_ref().is_some_and(|e: &ExpectSpec| e.steady_state.is_some()) {
            errors.push(lp.error(
                &join(path, &[key("ioworkers"), Seg::Index(j), key("expect"), key("steady_state")]),
                "steady_state",
                "steady state is the phase's: move this expectation to the phase's expect",
            ));
        }
    }
    let Some(ss) = &ph.steady_state else {
        if ph.expect.as_ref().is_some_and(|e| e.steady_state.is_some()) {
            errors.push(lp.error(
                &join(path, &[key("expect"), key("steady_state")]),
                "steady_state",
                "this phase does not run until steady state; give it `steady_state: {track: iops, ...}`, or leave this expectation out",
            ));
        }
        return errors;
    };
    let mut err = |p: &[Seg], field: &str, m: String| errors.push(lp.error(p, field, m));
    if ph.repeat.is_some() {
        err(&join(path, &[key("repeat")]), "repeat", "a phase with steady_state runs in rounds until steady (at most max_rounds): leave repeat out".into());
    }
    if ph.ioworkers.is_empty() {
        err(&spath, "steady_state", "steady state tracks what ioworkers measure; this phase has none: give it ioworkers".into());
    }
    let rule = ss.rule();
    if rule.window < 2 {
        err(&join(&spath, &[key("window")]), "window", format!("{} round(s) give no line to judge the slope by; use at least 2 (PTS: 5)", rule.window));
    } else if rule.max_rounds < rule.window {
        err(
            &join(&spath, &[key("max_rounds")]),
            "max_rounds",
            format!("{} rounds never fill the measurement window of {}: use at least {} (PTS: 25)", rule.max_rounds, rule.window, rule.window),
        );
    }
    for (f, v) in [("range", ss.range), ("slope", ss.slope)] {
        if let Some(v) = v
            && !(v > 0.0 && v.is_finite())
        {
            err(&join(&spath, &[key(f)]), f, format!("{v} % is no limit; give a percentage of the window average above 0 (PTS: range 20, slope 10)"));
        }
    }
    if let TrackSpec::Percentile { latency_us: p } = ss.track {
        let tp = join(&spath, &[key("track"), key("latency_us")]);
        let asked = ph.ioworkers.iter().any(|w| w.output_percentile_latency.iter().flatten().any(|&a| a == p));
        if !(p > 0.0 && p < 100.0) {
            err(&tp, "latency_us", format!("percentile {p} is not strictly between 0 and 100 (for the maximum, track latency_max_us)"));
        } else if !STANDARD_PERCENTILES.contains(&p) && !asked {
            err(
                &tp,
                "latency_us",
                format!("percentile {p} is not measured: add it to the workers' output_percentile_latency, or track one of 50, 90, 99, 99.9, 99.99, 99.999"),
            );
        }
    }
    // The cell: one value of every sweep key.
    let cpath = join(&spath, &[key("cell")]);
    match (&ph.sweep, &ss.cell) {
        (None, Some(_)) => err(&cpath, "cell", "this phase has no sweep, so it has one cell: leave cell out".into()),
        (Some(sw), None) if sweep::count(Some(sw)) > 1 => {
            err(&spath, "cell", format!("the phase's sweep makes {} cells: name the tracked one, e.g. cell: {{{}}}", sweep::count(Some(sw)), example(sw)))
        }
        (Some(sw), Some(cell)) => {
            for (k, v) in cell {
                let Some(values) = sw.get(k) else {
                    let keys = sw.keys().cloned().collect::<Vec<_>>().join(", ");
                    errors.push(lp.key_error(&cpath, k, k, format!("`{k}` is not swept in this phase; the cell gives a value of each of: {keys}")));
                    continue;
                };
                if !values.iter().any(|s| same(s, v)) {
                    let list = values.iter().map(label_value).collect::<Vec<_>>().join(", ");
                    errors.push(lp.error(&join(&cpath, &[key(k)]), k, format!("{} is not one of the sweep's values of {k}: {list}", label_value(v))));
                }
            }
            for k in sw.keys().filter(|k| !cell.contains_key(*k)) {
                errors.push(lp.error(&cpath, "cell", format!("the cell needs a value of `{k}` too (the sweep varies it)")));
            }
        }
        _ => {}
    }
    errors
}

fn example(sw: &BTreeMap<String, Vec<Value>>) -> String {
    sw.iter().filter_map(|(k, v)| Some(format!("{k}: {}", label_value(v.first()?)))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use crate::plan::load_str;

    fn errors(doc: &str) -> Vec<String> {
        match load_str("p.yaml", doc) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    const PHASE: &str = "name: t\nphases:\n  - name: iops\n    sweep: {io_size: [4KiB, 8KiB], read_percentage: [0, 100]}\n    ioworkers: [{time: 1}]\n";

    #[test]
    fn a_cell_names_one_value_of_every_sweep_key() {
        let ok = format!("{PHASE}    steady_state: {{track: iops, cell: {{io_size: 4 KiB, read_percentage: 0}}}}\n");
        assert_eq!(errors(&ok), Vec::<String>::new());
        let e = errors(&format!("{PHASE}    steady_state: {{track: iops, cell: {{io_size: 16KiB, qdepth: 4}}}}\n"));
        assert_eq!(
            e,
            [
                "p.yaml:6:39: cell: the cell needs a value of `read_percentage` too (the sweep varies it)",
                "p.yaml:6:49: io_size: 16KiB is not one of the sweep's values of io_size: 4KiB, 8KiB",
                "p.yaml:6:56: qdepth: `qdepth` is not swept in this phase; the cell gives a value of each of: io_size, read_percentage",
            ]
        );
        let e = errors(&format!("{PHASE}    steady_state: {{track: iops}}\n"));
        assert_eq!(e, ["p.yaml:6:19: cell: the phase's sweep makes 4 cells: name the tracked one, e.g. cell: {io_size: 4KiB, read_percentage: 0}"]);
    }

    #[test]
    fn window_rounds_limits_and_repeat_are_checked_where_written() {
        let doc = "name: t\nphases:\n  - name: a\n    repeat: 3\n    ioworkers: [{time: 1}]\n    steady_state: {track: {latency_us: 99.5}, window: 4, max_rounds: 3, range: 0}\n    expect: {steady_state: true}\n  - name: b\n    ioworkers: [{time: 1, expect: {steady_state: true}}]\n    expect: {steady_state: false}\n";
        let e = errors(doc);
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(e[0].starts_with("p.yaml:4:13: repeat: a phase with steady_state runs in rounds"), "{e:?}");
        assert!(e[1].starts_with("p.yaml:6:40: latency_us: percentile 99.5 is not measured"), "{e:?}");
        assert!(e[2].starts_with("p.yaml:6:70: max_rounds: 3 rounds never fill the measurement window of 4"), "{e:?}");
        assert!(e[3].starts_with("p.yaml:6:80: range: 0 % is no limit"), "{e:?}");
        assert!(e[4].starts_with("p.yaml:9:50: steady_state: steady state is the phase's"), "{e:?}");
        assert!(e[5].starts_with("p.yaml:10:28: steady_state: this phase does not run until steady state"), "{e:?}");
    }
}
