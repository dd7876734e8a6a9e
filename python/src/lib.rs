//! The Python front of nvplan: a thin binding (PyO3) over the same library the command
//! line uses. `nvme` (the PyNVMe-compatible module, in `pysrc/nvme`) and `nvplan` re-export
//! these classes; the NVMe behaviour itself lives in the `nvplan` crate.

use pyo3::prelude::*;

mod buffer;
mod completion;
mod controller;
mod ioworker;
mod metamode;
mod namespace;
mod pcie;
mod plan;
mod qpair;
mod subsystem;

pyo3::create_exception!(nvme, NvmeEnumerateError, pyo3::exceptions::PyException, "The controller could not be opened or brought up.");
pyo3::create_exception!(nvme, NvmeDeletionError, pyo3::exceptions::PyException, "The controller could not be closed.");
pyo3::create_exception!(nvme, QpairCreationError, pyo3::exceptions::PyException, "An I/O queue pair could not be created.");
pyo3::create_exception!(nvme, QpairDeletionError, pyo3::exceptions::PyException, "An I/O queue pair could not be deleted.");
pyo3::create_exception!(nvme, NamespaceCreationError, pyo3::exceptions::PyException, "A namespace could not be opened.");
pyo3::create_exception!(nvme, NamespaceDeletionError, pyo3::exceptions::PyException, "A namespace could not be closed.");
pyo3::create_exception!(nvme, NvmeShutdownStatusTimeoutError, pyo3::exceptions::PyException, "CSTS.SHST did not report shutdown complete in time.");

/// Seeds the random numbers of nvplan's I/O workers started from Python (and, in the
/// `nvme` module, Python's own `random`).
#[pyfunction]
fn srand(seed: u64) {
    ioworker::set_seed(seed);
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<buffer::Buffer>()?;
    m.add_class::<pcie::Pcie>()?;
    m.add_class::<controller::Controller>()?;
    m.add_class::<namespace::Namespace>()?;
    m.add_class::<qpair::Qpair>()?;
    m.add_class::<subsystem::Subsystem>()?;
    m.add_class::<ioworker::IoWorker>()?;
    m.add_class::<metamode::Prp>()?;
    m.add_class::<metamode::PrpList>()?;
    m.add_class::<metamode::PySqe>()?;
    m.add_class::<metamode::PyCqe>()?;
    m.add_class::<metamode::PyIoCq>()?;
    m.add_class::<metamode::PyIoSq>()?;
    m.add_function(wrap_pyfunction!(srand, m)?)?;
    m.add_function(wrap_pyfunction!(plan::run_plan, m)?)?;
    m.add("NvmeEnumerateError", py.get_type::<NvmeEnumerateError>())?;
    m.add("NvmeDeletionError", py.get_type::<NvmeDeletionError>())?;
    m.add("QpairCreationError", py.get_type::<QpairCreationError>())?;
    m.add("QpairDeletionError", py.get_type::<QpairDeletionError>())?;
    m.add("NamespaceCreationError", py.get_type::<NamespaceCreationError>())?;
    m.add("NamespaceDeletionError", py.get_type::<NamespaceDeletionError>())?;
    m.add("NvmeShutdownStatusTimeoutError", py.get_type::<NvmeShutdownStatusTimeoutError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
