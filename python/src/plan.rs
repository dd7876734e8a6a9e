//! `nvplan.run_plan`: a YAML plan run from Python, its summary returned as a dict.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Runs the plan at `path` on `target` (the plan's own, else the simulator; `slurm` for
/// the drive of the Slurm job it runs in) and returns its summary (`summary.json`'s
/// content) as a dict.
#[pyfunction]
#[pyo3(signature = (path, target=None, seed=None, time_scale=1.0))]
pub(crate) fn run_plan(py: Python<'_>, path: PathBuf, target: Option<String>, seed: Option<u64>, time_scale: f64) -> PyResult<Py<PyAny>> {
    let json = py.detach(move || -> Result<String, String> {
        let p = nvplan::plan::load(&path).map_err(|es| es.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))?;
        let target = target.map(|t| nvplan::fleet::slurm::resolve_target(&t)).transpose()?;
        let t = nvplan::plan::target(&p, target.as_deref()).map_err(|e| e.to_string())?;
        let stop = AtomicBool::new(false);
        let s = nvplan::exec::run_plan(&p, nvplan::target::open(&t), seed, time_scale, &stop, &mut |_: &nvplan::exec::Summary| {});
        serde_json::to_string(&s).map_err(|e| e.to_string())
    });
    let json = json.map_err(PyValueError::new_err)?;
    Ok(py.import("json")?.call_method1("loads", (json,))?.unbind())
}
