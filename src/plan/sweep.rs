//! Sweeps: one run of a phase per combination of worker parameter values.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::model::{WorkerSpec, worker_fields};
use super::yaml::Seg;

/// Most runs (repeat x sweep combinations) one phase, and one plan, may expand to
/// ([`super::bounds`]).
pub const MAX_RUNS: u64 = 10_000;

/// Worker parameters a sweep may vary (all but the worker's identity and expectations).
pub(crate) static SWEEPABLE: LazyLock<Vec<String>> =
    LazyLock::new(|| worker_fields().into_iter().filter(|f| !matches!(f.as_str(), "name" | "expect" | "seed")).collect());

/// One combination of sweep values: parameter -> (value, path of the value in the plan).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Combo {
    pub values: BTreeMap<String, (Value, Vec<Seg>)>,
}

impl Combo {
    /// The values alone.
    pub(crate) fn plain(&self) -> BTreeMap<String, Value> {
        self.values.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
    }
}

/// Number of combinations, saturating.
pub(crate) fn count(sweep: Option<&BTreeMap<String, Vec<Value>>>) -> u64 {
    sweep.into_iter().flatten().fold(1u64, |n, (_, v)| n.saturating_mul(v.len() as u64))
}

/// The cartesian product of the sweep lists in key order (the last key varies fastest);
/// one empty combination without a sweep.
pub(crate) fn combinations(sweep: Option<&BTreeMap<String, Vec<Value>>>, phase_path: &[Seg]) -> Vec<Combo> {
    let mut out = vec![Combo::default()];
    for (k, values) in sweep.into_iter().flatten() {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for c in &out {
            for (j, v) in values.iter().enumerate() {
                let mut path = phase_path.to_vec();
                path.extend([Seg::Key("sweep".into()), Seg::Key(k.clone()), Seg::Index(j)]);
                let mut c = c.clone();
                c.values.insert(k.clone(), (v.clone(), path));
                next.push(c);
            }
        }
        out = next;
    }
    out
}

/// A sweep value as it appears in a run's label (`io_size=8`, `time=30s`).
pub(crate) fn label_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a worker's parameters are written: swept ones at their sweep value, the others in
/// the worker.
#[derive(Clone, Debug)]
pub(crate) struct Where<'a> {
    pub worker: Vec<Seg>,
    pub combo: &'a Combo,
}

impl Where<'_> {
    /// Path of parameter `field`, then `rest` inside its value.
    pub(crate) fn path(&self, field: &str, rest: &[Seg]) -> Vec<Seg> {
        let mut p = match self.combo.values.get(field) {
            Some((_, p)) => p.clone(),
            None => {
                let mut p = self.worker.clone();
                p.push(Seg::Key(field.into()));
                p
            }
        };
        p.extend_from_slice(rest);
        p
    }
}

/// The worker with the combination's values in place of its own.
pub(crate) fn apply(w: &WorkerSpec, combo: &Combo) -> Result<WorkerSpec, String> {
    if combo.values.is_empty() {
        return Ok(w.clone());
    }
    let mut json = serde_json::to_value(w).map_err(|e| e.to_string())?;
    if let Value::Object(m) = &mut json {
        for (k, (v, _)) in &combo.values {
            m.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn combinations_are_the_product_in_key_order() {
        let sweep: BTreeMap<String, Vec<Value>> =
            [("read_percentage".to_string(), vec![json!(0), json!(100)]), ("io_size".to_string(), vec![json!(8), json!("4KiB"), json!(256)])].into();
        let c = combinations(Some(&sweep), &[Seg::Key("phases".into()), Seg::Index(2)]);
        assert_eq!(c.len(), 6);
        assert_eq!(count(Some(&sweep)), 6);
        let labels: Vec<String> = c.iter().map(|c| c.values.iter().map(|(k, v)| format!("{k}={}", label_value(&v.0))).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(
            labels,
            [
                "io_size=8 read_percentage=0",
                "io_size=8 read_percentage=100",
                "io_size=4KiB read_percentage=0",
                "io_size=4KiB read_percentage=100",
                "io_size=256 read_percentage=0",
                "io_size=256 read_percentage=100"
            ]
        );
        assert_eq!(
            c[3].values["io_size"].1,
            vec![Seg::Key("phases".into()), Seg::Index(2), Seg::Key("sweep".into()), Seg::Key("io_size".into()), Seg::Index(1)]
        );
        assert_eq!(combinations(None, &[]), vec![Combo::default()]);
    }

    #[test]
    fn applied_values_replace_the_workers_own_and_errors_point_at_them() {
        let w = WorkerSpec { qdepth: Some(8), time: Some(super::super::model::DurationValue::Seconds(1.0)), ..Default::default() };
        let combo = Combo { values: [("qdepth".to_string(), (json!(32), vec![Seg::Key("s".into())]))].into() };
        assert_eq!(apply(&w, &combo).unwrap().qdepth, Some(32));
        let at = Where { worker: vec![Seg::Key("w".into())], combo: &combo };
        assert_eq!(at.path("qdepth", &[]), vec![Seg::Key("s".into())]);
        assert_eq!(at.path("time", &[]), vec![Seg::Key("w".into()), Seg::Key("time".into())]);
        assert!(!SWEEPABLE.contains(&"seed".to_string()) && SWEEPABLE.contains(&"io_size".to_string()));
    }
}
