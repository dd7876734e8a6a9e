//! `ioworker()`: PyNVMe3's I/O worker, run by nvplan's own (a thread of this process
//! with its own queue pair); arguments checked as PyNVMe checks them, outputs written
//! back into the caller's list and dict arguments.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nvplan::ioworker::{IoSize, IoWorkerConfig, IoWorkerResult, RunningWorker, SeqIo, code};
use pyo3::exceptions::{PyAssertionError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyRange, PyTuple};

use crate::completion::warn;
use crate::namespace::Namespace;

/// Seed of the next worker when Python's `random` is not consulted.
static SEED: AtomicU64 = AtomicU64::new(0);

pub(crate) fn set_seed(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
}

enum State {
    Ready(Box<IoWorkerConfig>),
    Running(RunningWorker),
    Done,
}

/// Output arguments to fill in when the worker ends.
struct Outputs {
    io_per_second: Option<Py<PyList>>,
    percentile: Option<Py<PyDict>>,
    cmdlog: Option<Py<PyList>>,
    op_percentage: Option<Py<PyDict>>,
}

/// An I/O worker: `start()`, `close()` (returns the result), `running`, and `with`.
#[pyclass(module = "nvme")]
pub struct IoWorker {
    ns: nvplan::driver::Namespace,
    state: Mutex<State>,
    out: Outputs,
    finished: Mutex<Option<IoWorkerResult>>,
    /// I/Os per second of the ended worker, when `output_io_per_second` was given.
    per_second: Mutex<Option<Vec<u64>>>,
}

fn assert_that(ok: bool, msg: &str) -> PyResult<()> {
    if ok { Ok(()) } else { Err(PyAssertionError::new_err(msg.to_string())) }
}

fn get<'py, T: FromPyObjectOwned<'py>>(kw: Option<&Bound<'py, PyDict>>, key: &str) -> PyResult<Option<T>> {
    match kw.map(|k| k.get_item(key)).transpose()?.flatten() {
        Some(v) if !v.is_none() => {
            // A whole float (1e6, 10.0) counts where an int is due, as in PyNVMe.
            let v = match v.cast::<pyo3::types::PyFloat>() {
                Ok(f) if f.value().fract() == 0.0 => match v.extract::<T>() {
                    Ok(t) => return Ok(Some(t)),
                    Err(_) => (f.value() as i64).into_pyobject(v.py())?.into_any(),
                },
                _ => v,
            };
            Ok(Some(v.extract::<T>().map_err(|e| {
                let e: PyErr = e.into();
                PyTypeError::new_err(format!("ioworker {key}: {e}"))
            })?))
        }
        _ => Ok(None),
    }
}

fn get_any<'py>(kw: Option<&Bound<'py, PyDict>>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(kw.map(|k| k.get_item(key)).transpose()?.flatten().filter(|v| !v.is_none()))
}

const KNOWN: &[&str] = &[
    "io_size",
    "lba_step",
    "lba_align",
    "lba_random",
    "read_percentage",
    "op_percentage",
    "time",
    "qdepth",
    "region_start",
    "region_end",
    "iops",
    "io_count",
    "lba_count",
    "lba_start",
    "qprio",
    "distribution",
    "ptype",
    "pvalue",
    "io_sequence",
    "fw_debug",
    "output_io_per_second",
    "output_percentile_latency",
    "output_percentile_latency_opcode",
    "output_cmdlog_list",
    "cmdlog_error_only",
    "sgl_percentage",
    "io_flags",
    "cpu_id",
    "start_time",
    "exit_on_error",
    "verify_disable",
    "slow_latency",
    "qpair",
];

fn io_size_of(v: &Bound<'_, PyAny>) -> PyResult<IoSize> {
    if let Ok(n) = v.extract::<u32>() {
        return Ok(IoSize::Fixed(n));
    }
    if let Ok(d) = v.cast::<PyDict>() {
        let mut w = Vec::new();
        for (k, x) in d.iter() {
            w.push((k.extract::<u32>()?, x.extract::<u32>()?));
        }
        return Ok(IoSize::Weighted(w));
    }
    if v.cast::<PyRange>().is_ok() || v.cast::<PyList>().is_ok() || v.cast::<PyTuple>().is_ok() {
        let l: Vec<u32> = v.try_iter()?.map(|x| x?.extract::<u32>()).collect::<PyResult<_>>()?;
        return Ok(IoSize::List(l));
    }
    Err(PyTypeError::new_err("io_size: an int, a list, a range or a dict {size: weight}"))
}

impl IoWorker {
    pub(crate) fn new(ns: &Bound<'_, Namespace>, kw: Option<&Bound<'_, PyDict>>) -> PyResult<IoWorker> {
        let py = ns.py();
        if let Some(k) = kw {
            for key in k.keys() {
                let key: String = key.extract()?;
                if !KNOWN.contains(&key.as_str()) {
                    return Err(PyTypeError::new_err(format!("ioworker() got an unexpected keyword argument '{key}'")));
                }
            }
        }
        let dns = ns.borrow().driver_ns(py)?;
        let mqes = dns.controller().cap().max_queue_entries();
        let mut c = IoWorkerConfig::default();

        let qdepth: u32 = get(kw, "qdepth")?.unwrap_or(64);
        assert_that((2..=1024).contains(&qdepth), "qdepth should be in [2, 1024]")?;
        assert_that(qdepth <= mqes, "qdepth is larger than specification")?;
        // One region, or several as lists (PyNVMe3).
        let starts: Vec<u64> = match get_any(kw, "region_start")? {
            None => vec![0],
            Some(v) => v.extract::<u64>().map(|n| vec![n]).or_else(|_| v.extract())?,
        };
        let ends: Vec<u64> = match get_any(kw, "region_end")? {
            None => vec![u64::MAX; starts.len()],
            Some(v) => v.extract::<u64>().map(|n| vec![n]).or_else(|_| v.extract())?,
        };
        assert_that(!starts.is_empty() && starts.len() == ends.len(), "region_start and region_end need the same number of regions")?;
        for (s, e) in starts.iter().zip(&ends) {
            assert_that(s < e, "region end is not included")?;
        }
        let (region_start, region_end) = (starts[0], ends[0]);
        let time: f64 = get(kw, "time")?.unwrap_or(0.0);
        assert_that(time <= 1000.0 * 3600.0, "worker needs a rest :)")?;
        let read_percentage: u32 = get(kw, "read_percentage")?.unwrap_or(100);
        assert_that(read_percentage <= 100, "read percentage is less than 100")?;
        let iops: u64 = get(kw, "iops")?.unwrap_or(0);
        assert_that(iops == 0 || iops >= qdepth as u64, "iops must be larger than qdepth")?;
        let op = get_any(kw, "op_percentage")?;
        if let Some(op) = &op {
            let d = op.cast::<PyDict>()?;
            let mut v = Vec::new();
            let mut sum = 0.0;
            for (k, x) in d.iter() {
                let p: f64 = x.extract()?;
                sum += p;
                v.push((k.extract::<u8>()?, p));
            }
            assert_that((sum - 100.0).abs() < 0.005, "op_percentage definition error")?;
            c.op_percentage = Some(v);
        }
        let lba_random = match get_any(kw, "lba_random")? {
            None => 100,
            Some(v) if v.is_instance_of::<pyo3::types::PyBool>() => {
                if v.extract::<bool>()? {
                    100
                } else {
                    0
                }
            }
            Some(v) => {
                let n: i64 = v.extract().map_err(|_| PyAssertionError::new_err("lba_random is a percentage, int"))?;
                assert_that((0..=100).contains(&n), "lba_random is a percentage, 0-100")?;
                n as u8
            }
        };
        let io_size_arg = get_any(kw, "io_size")?;
        let mut io_size = match &io_size_arg {
            None => IoSize::Fixed(8),
            Some(v) => io_size_of(v)?,
        };
        let mut io_count: u64 = get(kw, "io_count")?.unwrap_or(0);
        let io_sequence = get_any(kw, "io_sequence")?;
        let span = starts.iter().zip(&ends).map(|(s, e)| e - s).min().unwrap_or(0);
        if lba_random == 0 && matches!(io_size, IoSize::Fixed(_)) && region_end != u64::MAX && starts.len() == 1 {
            if time == 0.0 && io_count == 0 {
                io_count = span.div_ceil(io_size.max() as u64);
            }
        } else {
            assert_that(!(io_sequence.is_none() && time == 0.0 && io_count == 0), "when to stop the ioworker?")?;
        }
        match &mut io_size {
            IoSize::Fixed(n) => *n = (*n as u64).min(span) as u32,
            other => assert_that((other.max() as u64) < span, "region is smaller than IO")?,
        }
        for (s, _) in io_size.weighted() {
            assert_that(s != 0, "io_size cannot be 0")?;
        }
        if let Some(step) = get::<i64>(kw, "lba_step")? {
            assert_that(step > -0x8000 && step < 0x8000, "io size or step is too large")?;
            c.lba_step = Some(step);
        }
        if let Some(a) = get_any(kw, "lba_align")? {
            let v: Vec<u32> = if let Ok(n) = a.extract::<u32>() { vec![n] } else { a.extract()? };
            assert_that(!v.contains(&0), "lba_align cannot be 0")?;
            c.lba_align = v;
        }
        if let Some(seq) = &io_sequence {
            let mut v = Vec::new();
            for item in seq.try_iter()? {
                // PyNVMe3's order (the seed): (slba, nlb, opcode, time_sent_us).
                let (slba, nlb, opcode, time_sent_us): (u64, u32, u8, u64) = item?.extract()?;
                v.push(SeqIo { slba, nlb, opcode, time_sent_us });
            }
            c.io_sequence = Some(v);
        }
        if let Some(d) = get::<Vec<u32>>(kw, "distribution")? {
            c.distribution = Some(d);
        }
        c.io_size = io_size;
        c.time = (time > 0.0).then(|| Duration::from_secs_f64(time));
        c.io_count = io_count;
        c.lba_count = get(kw, "lba_count")?.unwrap_or(0);
        c.lba_random = lba_random;
        c.lba_start = get::<u64>(kw, "lba_start")?.map(|l| l.max(region_start));
        c.read_percentage = read_percentage as u8;
        c.sgl_percentage = get(kw, "sgl_percentage")?.unwrap_or(0);
        // PyNVMe's qdepth is the size of the worker's queue: one entry stays empty, so
        // 64 (the default) keeps 63 I/Os outstanding, as PyNVMe3's default does.
        c.qdepth = qdepth - 1;
        c.qprio = get(kw, "qprio")?.unwrap_or(0);
        c.region_start = starts;
        c.region_end = ends;
        c.iops = iops;
        c.io_flags = get(kw, "io_flags")?.unwrap_or(0);
        c.ptype = get(kw, "ptype")?.unwrap_or(0xbeef);
        c.pvalue = get(kw, "pvalue")?.unwrap_or(100);
        c.cpu_id = get(kw, "cpu_id")?;
        c.exit_on_error = get(kw, "exit_on_error")?.unwrap_or(true);
        c.verify_disable = get(kw, "verify_disable")?.unwrap_or(false);
        c.cmdlog_error_only = get(kw, "cmdlog_error_only")?.unwrap_or(false);
        c.output_percentile_latency_opcode = get(kw, "output_percentile_latency_opcode")?;
        // Without a start time a worker begins on the second 100 ms boundary from now, as
        // PyNVMe's do: workers started together (`with a, b:`) begin I/O together.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let st = get::<f64>(kw, "start_time")?.unwrap_or((now * 10.0).ceil() / 10.0 + 0.1);
        c.start_time = Some(Instant::now() + Duration::from_secs_f64((st - now).max(0.0)));
        if let Some(s) = get::<f64>(kw, "slow_latency")? {
            c.slow_latency = Duration::from_secs_f64(s.max(0.0) / 1e6);
        }
        let io_per_second = get_any(kw, "output_io_per_second")?.map(|v| v.cast_into::<PyList>()).transpose()?.map(Bound::unbind);
        c.output_io_per_second = io_per_second.is_some();
        let percentile = get_any(kw, "output_percentile_latency")?.map(|v| v.cast_into::<PyDict>()).transpose()?;
        if let Some(p) = &percentile {
            for k in p.keys() {
                let k: f64 = k.extract()?;
                assert_that(k > 0.0 && k < 100.0, "percentile should be in (0, 100)")?;
                c.output_percentile_latency.push(k);
            }
        }
        let cmdlog = get_any(kw, "output_cmdlog_list")?.map(|v| v.cast_into::<PyList>()).transpose()?;
        if let Some(l) = &cmdlog {
            c.output_cmdlog_list = l.len();
        }
        // Seeded from Python's `random`, so `srand()` makes a script's workers repeat.
        let r: f64 = py.import("random")?.call_method0("random")?.extract()?;
        c.seed = (r * u32::MAX as f64) as u64 ^ SEED.load(Ordering::Relaxed) << 32;
        Ok(IoWorker {
            ns: dns,
            state: Mutex::new(State::Ready(Box::new(c))),
            out: Outputs {
                io_per_second,
                percentile: percentile.map(Bound::unbind),
                cmdlog: cmdlog.map(Bound::unbind),
                op_percentage: op.map(|o| o.cast_into::<PyDict>().map(Bound::unbind)).transpose()?,
            },
            finished: Mutex::new(None),
            per_second: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fills the output arguments and builds the result PyNVMe returns.
    fn result(&self, py: Python<'_>, r: &IoWorkerResult) -> PyResult<Py<PyAny>> {
        let d = PyDict::new(py);
        d.set_item("io_count_read", r.io_count_read)?;
        d.set_item("io_count_nonread", r.io_count_nonread)?;
        d.set_item("io_count_write", r.io_count_write)?;
        d.set_item("mseconds", r.mseconds)?;
        d.set_item("latency_max_us", r.latency_max_us)?;
        d.set_item("latency_average_us", r.latency_average_us)?;
        d.set_item("error", device_status(r))?;
        d.set_item("host_error", r.error)?;
        d.set_item("cpu_usage", r.cpu_usage)?;
        d.set_item("lba_count_read", r.lba_count_read)?;
        d.set_item("lba_count_nonread", r.lba_count_nonread)?;
        d.set_item("lba_count_write", r.lba_count_write)?;
        d.set_item("test_start_sec", r.test_start_sec)?;
        d.set_item("test_start_nsec", r.test_start_nsec)?;
        d.set_item("miscompare_count", r.miscompare_count)?;
        if let Some(c) = r.iops_consistency {
            d.set_item("iops_consistency", c)?;
        }
        if let Some(l) = &r.latency_distribution {
            d.set_item("latency_distribution", l.clone())?;
        }
        if let (Some(out), Some(v)) = (&self.out.io_per_second, &r.io_per_second) {
            *self.per_second.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.iter().copied().take((r.mseconds / 1000) as usize).collect());
            let out = out.bind(py);
            for &x in v.iter().take((r.mseconds / 1000) as usize) {
                out.append(x)?;
            }
        }
        if let (Some(out), Some(v)) = (&self.out.percentile, &r.percentile_latency) {
            let out = out.bind(py);
            for (k, us) in v {
                out.set_item(*k, *us)?;
            }
        }
        if let (Some(out), Some(v)) = (&self.out.cmdlog, &r.cmdlog) {
            // Oldest first; slots never used stay at the front as zeroes. PyNVMe lists the
            // commands it sent and reaped: those a reset or power loss caught (status
            // 7FFFh, no completion) are in nvplan's report, not here.
            let v: Vec<_> = v.iter().filter(|e| e.status != 0x7fff).collect();
            let out = out.bind(py);
            let n = out.len();
            let pad = n.saturating_sub(v.len());
            for i in 0..pad {
                out.set_item(i, (0, 0, 0, 0, 0, 0))?;
            }
            for (i, e) in v.iter().rev().take(n).rev().enumerate() {
                out.set_item(pad + i, (e.slba, e.nlb, e.opcode, e.time_sent_us, e.time_cplt_us, e.status))?;
            }
        }
        if let Some(out) = &self.out.op_percentage {
            let out = out.bind(py);
            for (op, n) in &r.op_counts {
                out.set_item(*op, *n)?;
            }
        }
        Ok(py.import("nvplan._result")?.getattr("Result")?.call1((d,))?.unbind())
    }
}

/// First failing status as PyNVMe reports it: SCT << 8 | SC, 0 when none.
fn device_status(r: &IoWorkerResult) -> u32 {
    let dw3 = r.error_cpl[3];
    if r.error_count == 0 && r.miscompare_count == 0 { 0 } else { (dw3 >> 17) & 0x7ff }
}

#[pymethods]
impl IoWorker {
    /// Starts the worker; returns it.
    fn start(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        let py = slf.py();
        let mut st = slf.lock();
        if let State::Ready(cfg) = std::mem::replace(&mut *st, State::Done) {
            let ns = slf.ns.clone();
            match py.detach(move || ns.ioworker(*cfg).map(|w| w.start())) {
                Ok(w) => *st = State::Running(w),
                Err(e) => {
                    drop(st);
                    let r = IoWorkerResult { error: code::INIT_FAIL, error_message: Some(format!("init fail: {e}")), ..IoWorkerResult::default() };
                    *slf.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    return Ok(slf);
                }
            }
        }
        drop(st);
        Ok(slf)
    }

    /// Waits for the worker to end; returns its result (with attribute access).
    fn close(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let st = std::mem::replace(&mut *self.lock(), State::Done);
        let r = match st {
            State::Running(w) => py.detach(move || w.close()),
            State::Ready(cfg) => {
                let ns = self.ns.clone();
                match py.detach(move || ns.ioworker(*cfg).map(|w| w.run())) {
                    Ok(r) => r,
                    Err(e) => IoWorkerResult { error: code::INIT_FAIL, error_message: Some(format!("init fail: {e}")), ..IoWorkerResult::default() },
                }
            }
            State::Done => match self.finished.lock().unwrap_or_else(|e| e.into_inner()).take() {
                Some(r) => r,
                None => return Err(PyAssertionError::new_err("the ioworker was closed already")),
            },
        };
        // A worker stopped by a reset or power event ends quietly, as PyNVMe's.
        if r.error != 0 && r.error != code::TERMINATED {
            warn(py, &format!("ioworker host ERROR {}: {}", r.error, r.error_message.as_deref().unwrap_or(code::name(r.error))))?;
        }
        let st = device_status(&r);
        if st != 0 {
            warn(py, &format!("ioworker device respond an ERROR status: {:02x}/{:02x}", (st >> 8) & 7, st & 0xff))?;
        }
        self.result(py, &r)
    }

    /// True until the worker has ended (also before `start()`, as PyNVMe).
    #[getter]
    fn running(&self) -> bool {
        let running = match &mut *self.lock() {
            State::Ready(_) => true,
            State::Running(w) => match w.wait_timeout(Duration::ZERO) {
                None => true,
                Some(r) => {
                    *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                    false
                }
            },
            State::Done => false,
        };
        if !running && matches!(&*self.lock(), State::Running(_)) {
            *self.lock() = State::Done;
        }
        running
    }

    /// A per-second count at the `slowest_percentage` point (slowest first) over the
    /// mean: how steady the worker's IOPS were (needs `output_io_per_second`).
    #[pyo3(signature = (slowest_percentage=99.9))]
    fn iops_consistency(&self, slowest_percentage: f64) -> PyResult<f64> {
        let g = self.per_second.lock().unwrap_or_else(|e| e.into_inner());
        let v = g.as_ref().ok_or_else(|| PyAssertionError::new_err("iops consistency data is not collected"))?;
        assert_that(slowest_percentage > 0.0, "the percentage must be larger than 0")?;
        assert_that(slowest_percentage < 100.0, "the percentage must be smaller than 100")?;
        nvplan::ioworker::stats::iops_consistency(v, slowest_percentage).ok_or_else(|| PyAssertionError::new_err("output list is empty"))
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        Self::start(slf)
    }

    #[pyo3(signature = (exc_type=None, exc_value=None, traceback=None))]
    fn __exit__(&self, py: Python<'_>, exc_type: Option<Py<PyAny>>, exc_value: Option<Py<PyAny>>, traceback: Option<Py<PyAny>>) -> PyResult<bool> {
        let _ = (exc_type, traceback);
        let r = self.close(py);
        if let Some(e) = exc_value {
            return Err(PyAssertionError::new_err(format!("ioworker exits with exception: {}", e.bind(py))));
        }
        r.map(|_| true)
    }
}
