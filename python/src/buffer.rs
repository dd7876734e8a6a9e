//! `Buffer`: DMA memory a script fills, sends and reads back, as PyNVMe's.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use nvplan::ioworker::verify::fill_pattern;
use nvplan::transport::AddressSpace;
use nvplan::transport::DmaBuffer;
use pyo3::exceptions::{PyAssertionError, PyIndexError, PyMemoryError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PySlice};

/// The host memory every buffer and every controller (simulated or VFIO) opened from
/// Python share, so that a buffer made before a controller (or used with several in turn)
/// reaches each of them at its one address, as physical memory does.
pub(crate) fn host_memory() -> &'static AddressSpace {
    static MEM: OnceLock<AddressSpace> = OnceLock::new();
    MEM.get_or_init(AddressSpace::new)
}

/// DMA memory for commands: `Buffer(size=4096, name="buffer", pvalue=0, ptype=0)`.
///
/// `size` is what commands transfer (at most the allocation), `offset` where in the
/// allocation they start; `phys_addr` is the address the controller sees (offset
/// included). Indexing reads and writes bytes; subclasses may add attributes.
#[pyclass(module = "nvme", subclass)]
pub struct Buffer {
    pub(crate) mem: DmaBuffer,
    name: String,
    size: AtomicUsize,
    offset: AtomicU32,
}

impl Buffer {
    /// The bytes a command transfers: `size` bytes from `offset`, cut at the allocation's
    /// end (PyNVMe runs past it silently; nvplan transfers what exists).
    pub(crate) fn data_range(&self) -> (u64, usize) {
        let off = (self.offset.load(Ordering::Relaxed) as usize).min(self.mem.len());
        let len = self.size.load(Ordering::Relaxed).min(self.mem.len() - off);
        (self.mem.iova() + off as u64, len)
    }

    /// Like [`Buffer::data_range`], at most `len` bytes.
    pub(crate) fn data_range_max(&self, len: usize) -> (u64, usize) {
        let (iova, n) = self.data_range();
        (iova, n.min(len))
    }

    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.mem.len() as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err(format!("buffer index {i} outside 0..{n}")));
        }
        Ok(j as usize)
    }

    /// A new buffer: `size` bytes filled with pattern `ptype`/`pvalue` (for subclasses).
    pub(crate) fn alloc(size: usize, name: &str, pvalue: u32, ptype: u32) -> PyResult<Buffer> {
        if size == 0 {
            return Err(PyAssertionError::new_err("0 is not valid size"));
        }
        let mem = host_memory().alloc(size).map_err(|e| PyMemoryError::new_err(e.to_string()))?;
        let mut v = vec![0u8; size];
        fill_pattern(ptype, pvalue, size, &mut v);
        mem.write(0, &v);
        Ok(Buffer { mem, name: name.to_string(), size: AtomicUsize::new(size), offset: AtomicU32::new(0) })
    }

    /// The buffer as the library's metamode data pointer: its memory, offset and size.
    pub(crate) fn prp(&self) -> nvplan::metamode::Prp {
        nvplan::metamode::Prp::from_mem(self.mem.clone(), self.offset.load(Ordering::Relaxed) as usize, self.size.load(Ordering::Relaxed))
    }

    fn byte(&self, i: usize) -> u8 {
        let mut b = [0u8];
        self.mem.read(i, &mut b);
        b[0]
    }
}

#[pymethods]
impl Buffer {
    #[new]
    #[pyo3(signature = (size=4096, name="buffer", pvalue=0, ptype=0, *_args, **_kwargs))]
    fn new(
        size: usize,
        name: &str,
        pvalue: u32,
        ptype: u32,
        _args: &Bound<'_, pyo3::types::PyTuple>,
        _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Self> {
        Buffer::alloc(size, name, pvalue, ptype)
    }

    fn __len__(&self) -> usize {
        self.mem.len()
    }

    fn __repr__(&self) -> String {
        format!("<buffer name: {}>", self.name)
    }

    /// Bytes a command transfers (at most the allocation).
    #[getter]
    fn get_size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_size(&self, size: usize) -> PyResult<()> {
        if size > self.mem.len() {
            return Err(PyAssertionError::new_err("cannot be larger than physical size"));
        }
        self.size.store(size, Ordering::Relaxed);
        Ok(())
    }

    /// Where in the allocation commands start (the PRP offset).
    #[getter]
    fn get_offset(&self) -> u32 {
        self.offset.load(Ordering::Relaxed)
    }

    #[setter]
    fn set_offset(&self, offset: u32) {
        self.offset.store(offset, Ordering::Relaxed);
    }

    /// The address the controller reaches the buffer at, offset included.
    #[getter]
    pub(crate) fn phys_addr(&self) -> u64 {
        self.mem.iova() + self.offset.load(Ordering::Relaxed) as u64
    }

    /// The buffer's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: &Bound<'py, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(s) = index.cast::<PySlice>() {
            let ind = s.indices(self.mem.len() as isize)?;
            let bytes = self.mem.to_vec();
            let mut out = Vec::with_capacity(ind.slicelength);
            let mut i = ind.start;
            for _ in 0..ind.slicelength {
                out.push(bytes[i as usize]);
                i += ind.step;
            }
            return Ok(PyBytes::new(py, &out).into_any().unbind());
        }
        let i: isize = index.extract().map_err(|_| PyTypeError::new_err("buffer index must be an int or a slice"))?;
        Ok(self.byte(self.index(i)?).into_pyobject(py)?.into_any().unbind())
    }

    pub(crate) fn __setitem__(&self, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = index.cast::<PySlice>() {
            // As PyNVMe: only the start counts; every element of the value is written.
            let start: Option<isize> = s.getattr("start")?.extract()?;
            let start = self.index(start.unwrap_or(0)).or_else(|e| if self.mem.is_empty() { Ok(0) } else { Err(e) })?;
            let data: Vec<u8> = if let Ok(b) = value.cast::<PyBytes>() { b.as_bytes().to_vec() } else { value.extract()? };
            if start + data.len() > self.mem.len() {
                return Err(PyIndexError::new_err(format!("{} bytes at {start} run past the buffer's {}", data.len(), self.mem.len())));
            }
            self.mem.write(start, &data);
            return Ok(());
        }
        let i: isize = index.extract().map_err(|_| PyTypeError::new_err("buffer index must be an int or a slice"))?;
        let i = self.index(i)?;
        let v: u8 = value.extract()?;
        self.mem.write(i, &[v]);
        Ok(())
    }

    /// Bytes `byte_begin..=byte_end` as a little-endian int, or as text with `type=str`.
    #[pyo3(signature = (byte_end, byte_begin=None, r#type=None))]
    fn data(&self, py: Python<'_>, byte_end: isize, byte_begin: Option<isize>, r#type: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        // As PyNVMe: the bytes of the slice [begin:end+1], Python's negative indices included.
        let n = self.mem.len() as isize;
        let at = |i: isize| if i < 0 { (i + n).max(0) } else { i.min(n) } as usize;
        let (begin, end) = (at(byte_begin.unwrap_or(byte_end)), at(byte_end + 1));
        let mut v = vec![0u8; end.saturating_sub(begin)];
        self.mem.read(begin, &mut v);
        data_value(py, &v, r#type)
    }

    /// A hex dump of the first `size` bytes (all by default).
    #[pyo3(signature = (size=None))]
    fn dump(&self, size: Option<usize>) -> String {
        let n = size.unwrap_or(self.mem.len()).min(self.mem.len());
        let mut v = vec![0u8; n];
        self.mem.read(0, &mut v);
        let mut s = format!("{}\n", self.name);
        for (k, line) in v.chunks(16).enumerate() {
            s.push_str(&format!("{:08x}  ", k * 16));
            for (j, b) in line.iter().enumerate() {
                s.push_str(&format!("{b:02x} "));
                if j == 7 {
                    s.push(' ');
                }
            }
            s.push_str(&"   ".repeat(16 - line.len()));
            s.push(' ');
            s.extend(line.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }));
            s.push('\n');
        }
        s
    }

    /// Writes Dataset Management range `index`: attributes, length in LBAs, start LBA.
    #[pyo3(signature = (index, lba, lba_count, attr=0))]
    fn set_dsm_range(&self, index: usize, lba: u64, lba_count: u32, attr: u32) -> PyResult<()> {
        if (index + 1) * 16 > self.mem.len() {
            return Err(PyIndexError::new_err(format!("range {index} runs past the buffer")));
        }
        let mut r = [0u8; 16];
        r[0..4].copy_from_slice(&attr.to_le_bytes());
        r[4..8].copy_from_slice(&lba_count.to_le_bytes());
        r[8..16].copy_from_slice(&lba.to_le_bytes());
        self.mem.write(index * 16, &r);
        Ok(())
    }
}

/// `bytes` as PyNVMe's `data()` returns them: a little-endian int, or ASCII text with
/// trailing blanks removed when `ty` is `str`.
pub(crate) fn data_value(py: Python<'_>, bytes: &[u8], ty: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    let as_str = match ty {
        None => false,
        Some(t) => {
            if t.is(py.get_type::<pyo3::types::PyString>()) {
                true
            } else if t.is(py.get_type::<pyo3::types::PyInt>()) {
                false
            } else {
                return Err(PyAssertionError::new_err("identify data should be int or str"));
            }
        }
    };
    if as_str {
        let s: String = bytes.iter().map(|&b| b as char).collect();
        return Ok(s.trim_end().into_pyobject(py)?.into_any().unbind());
    }
    let int = py.get_type::<pyo3::types::PyInt>();
    Ok(int.call_method1("from_bytes", (PyBytes::new(py, bytes), "little"))?.unbind())
}
