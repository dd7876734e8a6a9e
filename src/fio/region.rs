//! Where a job's I/O lands: fio's files and devices as namespaces and regions, and how
//! much I/O it does. A `/dev/nvmeXnY` (or `/dev/ngXnY`) is namespace Y; every other file is
//! a region of namespace 1, each file its own, laid out one after another, so jobs that
//! share a file share a region and jobs with their own files do not.

use std::collections::BTreeMap;

use super::job::{Job, Report};
use super::jobfile::Loc;
use super::values::{self, Amount};

/// What a job's `filename` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    /// An NVMe namespace (or another block device, read as namespace 1): the whole of it.
    Device { nsid: u32, controller: Option<u32> },
    /// A file fio would create or use, keyed by its name.
    File(String),
}

/// Reads `filename` (or fio's made-up name for the clone's own file).
pub(crate) fn storage(job: &Job, clone: u32, report: &mut Report) -> Option<Storage> {
    let opt = if job.get("filename").is_none() && job.get("libblkio_path").is_some() { "libblkio_path" } else { "filename" };
    let at = job.at(opt);
    let nsid_opt = job.parse("xnvme_dev_nsid", report, |v| v.trim().parse::<u32>().map_err(|_| format!("`{v}` is not a namespace ID")));
    // libblkio's path is one path (a PCI function's sysfs directory has colons).
    let names = match (job.text("filename"), job.text("libblkio_path")) {
        (Some(f), _) => split_files(f),
        (None, Some(p)) => vec![p.trim().to_string()],
        // fio's own name for a job's file: jobname.clone.filenumber.
        (None, None) => return Some(Storage::File(format!("{}.{clone}.0", job.name))),
    };
    if names.len() != 1 {
        report.refuse(at, opt, format!("{} files in one job; an ioworker runs on one region: give each file its own job", names.len()));
        return None;
    }
    let f = names[0].as_str();
    let dev = |c: &str, n: &str| Some((c.parse::<u32>().ok()?, n.parse::<u32>().ok()?));
    for prefix in ["/dev/nvme", "/dev/ng"] {
        if let Some(rest) = f.strip_prefix(prefix)
            && let Some((c, n)) = rest.split_once('n')
        {
            if n.contains('p') && dev(c, n.split('p').next().unwrap_or("")).is_some() {
                report.refuse(
                    at,
                    "filename",
                    format!("{f} is a partition, whose place on the namespace the import cannot know; use the namespace with offset= and size="),
                );
                return None;
            }
            if let Some((c, n)) = dev(c, n) {
                if n == 0 {
                    report.refuse(at, opt, format!("{f}: namespace IDs start at 1"));
                    return None;
                }
                return Some(Storage::Device { nsid: nsid_opt.unwrap_or(n), controller: Some(c) });
            }
        }
    }
    if f.contains("traddr=") {
        // SPDK's plugin: `trtype=PCIe traddr=0000.01.00.0 ns=1`.
        let ns = f.split_whitespace().find_map(|w| w.strip_prefix("ns=")).and_then(|n| n.parse().ok()).unwrap_or(1);
        return Some(Storage::Device { nsid: nsid_opt.unwrap_or(ns), controller: None });
    }
    if f.starts_with("/dev/") || f.starts_with("/sys/bus/pci/devices/") || is_pci_address(f) {
        if !f.starts_with("/dev/") || nsid_opt.is_none() {
            report.warn(at, opt, format!("{f} is not an NVMe namespace; the plan runs on namespace {} of its target", nsid_opt.unwrap_or(1)));
        }
        return Some(Storage::Device { nsid: nsid_opt.unwrap_or(1), controller: None });
    }
    Some(Storage::File(f.to_string()))
}

fn is_pci_address(f: &str) -> bool {
    let f = f.replace('\\', "");
    let parts: Vec<&str> = f.split([':', '.']).collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// fio's `a:b` file lists, with `\:` for a colon in a name.
fn split_files(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&':') => {
                out.last_mut().expect("one name").push(':');
                chars.next();
            }
            ':' => out.push(String::new()),
            c => out.last_mut().expect("one name").push(c),
        }
    }
    out.retain(|n| !n.trim().is_empty());
    out
}

/// A clone's region and amount of I/O, in bytes of its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub nsid: u32,
    pub start: u64,
    pub end: u64,
    /// Bytes of I/O before the job ends (size or io_size, times loops).
    pub amount: u64,
    /// The region is the whole namespace.
    pub whole: bool,
}

/// Where files lie on namespace 1, and their lengths (found in a first pass).
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    pub files: BTreeMap<String, (u64, u64)>,
}

impl Layout {
    /// Files one after another from LBA 0, each starting on a MiB.
    pub(crate) fn new(order: &[(String, u64)]) -> Layout {
        let mut files = BTreeMap::new();
        let mut at = 0u64;
        for (name, len) in order {
            if files.contains_key(name) {
                continue;
            }
            files.insert(name.clone(), (at, *len));
            at = at.saturating_add(*len).div_ceil(1 << 20).saturating_mul(1 << 20);
        }
        Layout { files }
    }

    /// End of the last file.
    pub(crate) fn end(&self) -> u64 {
        self.files.values().map(|(b, l)| b.saturating_add(*l)).max().unwrap_or(0)
    }
}

/// What a region needs from the namespace, for sizing the simulator (first pass).
#[derive(Clone, Debug, Default)]
pub(crate) struct Needs {
    /// Largest end of a device region, per namespace.
    pub device: BTreeMap<u32, u64>,
    /// Files in order of first use, with the length their jobs address.
    pub files: Vec<(String, u64)>,
}

/// Resolves offset, size, io_size, filesize, offset_increment and loops for one clone.
/// `ns_bytes` is the namespace's size; `min_bs` aligns percentages as fio does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn region(
    job: &Job,
    clone: u32,
    st: &Storage,
    nsid: u32,
    ns_bytes: u64,
    min_bs: u64,
    layout: &Layout,
    grow: bool,
    needs: &mut Needs,
    report: &mut Report,
) -> Option<Region> {
    let kb = job.kb_base;
    let size = job.parse("size", report, |v| values::size(v, kb));
    let offset = job.parse("offset", report, |v| values::size(v, kb));
    let increment = job.parse("offset_increment", report, |v| values::size(v, kb));
    let io_size = job.parse("io_size", report, |v| values::size(v, kb));
    let filesize = job.parse("filesize", report, |v| {
        if v.contains(['-', ':']) {
            Err("a range of file sizes (one per file, at random) has no equivalent; give one size".into())
        } else {
            values::bytes(v, kb)
        }
    });
    let align = job.parse("offset_align", report, |v| values::bytes(v, kb)).filter(|&a| a > 0).unwrap_or(min_bs.max(1));
    let loops = job.parse("loops", report, |v| values::count(v, kb)).unwrap_or(1).max(1);
    let percent_ok = |p: u64, name: &str, report: &mut Report| {
        // fio reads 0% as not given.
        if p > 100 {
            report.refuse(job.at(name), name, format!("{p}% is not a percentage fio takes (0 to 100)"));
        }
        p > 0 && p <= 100
    };
    // The file or device whose size percentages are of.
    let (base, real) = match st {
        Storage::Device { .. } => (0, ns_bytes),
        Storage::File(name) => {
            for (o, n) in [(size, "size"), (offset, "offset"), (increment, "offset_increment")] {
                if let Some(Amount::Percent(_)) = o {
                    report.refuse(job.at(n), n, format!("a percentage of the file `{name}`, which fio would create: give bytes"));
                    return None;
                }
            }
            layout.files.get(name).copied().unwrap_or((0, ns_bytes))
        }
    };
    let ceil_align = |x: u64| x.div_ceil(align).saturating_mul(align);
    let inc = match increment {
        Some(Amount::Bytes(b)) => b,
        Some(Amount::Percent(p)) if percent_ok(p, "offset_increment", report) => ceil_align(real / 100 * p + real % 100 * p / 100),
        _ => 0,
    };
    let mut start = match offset {
        Some(Amount::Bytes(b)) => b,
        Some(Amount::Percent(p)) if percent_ok(p, "offset", report) => (real as u128 * p as u128 / 100) as u64,
        _ => 0,
    };
    start = start.saturating_add(inc.saturating_mul(clone as u64));
    if matches!(offset, Some(Amount::Percent(_))) || matches!(increment, Some(Amount::Percent(_))) {
        start = ceil_align(start);
    }
    let file_len = match (st, filesize) {
        (Storage::File(_), Some(fs)) => Some(fs),
        _ => None,
    };
    let len = match (size, file_len) {
        (_, Some(fs)) => fs.saturating_sub(start),
        (Some(Amount::Bytes(b)), None) => b,
        (Some(Amount::Percent(p)), None) if percent_ok(p, "size", report) => {
            let l = ((real as u128 * p as u128 / 100) as u64).min(real.saturating_sub(start));
            l - l % min_bs.max(1)
        }
        // A file another job gives a size: fio uses the file as it finds it.
        (None, None) if matches!(st, Storage::File(n) if layout.files.contains_key(n)) => real.saturating_sub(start),
        (None, None) if matches!(st, Storage::File(_)) => {
            if let Storage::File(n) = st {
                report.refuse(job.at, "size", format!("fio needs a size for the file `{n}` it would create; give size="));
            }
            return None;
        }
        // Sizing the simulator: a region past its provisional end still needs room.
        _ if grow && start >= real => match io_size {
            Some(Amount::Bytes(b)) if b > 0 => b,
            _ => 1 << 30,
        },
        _ => real.saturating_sub(start),
    };
    if len == 0 {
        report.refuse(job.at("size"), "size", "the region is empty (offset at or beyond the end of the namespace, or size 0)");
        return None;
    }
    let end = start.saturating_add(len);
    match st {
        Storage::Device { .. } => {
            let e = needs.device.entry(nsid).or_default();
            *e = (*e).max(end);
        }
        Storage::File(n) => needs.files.push((n.clone(), end)),
    }
    // fio's amount: io_size, else size when a filesize set the region, else the region.
    let amount = match (io_size, size, file_len) {
        (Some(Amount::Bytes(b)), ..) => b,
        (Some(Amount::Percent(p)), ..) if percent_ok(p, "io_size", report) => (len as u128 * p as u128 / 100) as u64,
        (None, Some(Amount::Bytes(b)), Some(_)) => b,
        _ => len,
    };
    let (start, end) = (base.saturating_add(start), base.saturating_add(end));
    Some(Region { nsid, start, end, amount: amount.saturating_mul(loops), whole: start == 0 && end == ns_bytes })
}

/// The `Loc` of whichever of the region options is written, for comments.
pub(crate) fn sources(job: &Job) -> Vec<Loc> {
    ["filename", "size", "offset", "offset_increment", "filesize", "io_size", "loops"].iter().filter_map(|n| job.get(n).map(|o| o.at)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_colons_stay_in_file_names() {
        assert_eq!(split_files("/dev/sda:/dev/sdb"), ["/dev/sda", "/dev/sdb"]);
        assert_eq!(split_files("F\\:\\file"), ["F:\\file"]);
        assert!(is_pci_address("0000\\:01\\:00.0"));
        assert!(!is_pci_address("/tmp/file"));
    }

    #[test]
    fn files_are_laid_out_one_after_another_on_mib_boundaries() {
        let l = Layout::new(&[("a".into(), 1000), ("b".into(), 3 << 20), ("a".into(), 5)]);
        assert_eq!(l.files["a"], (0, 1000));
        assert_eq!(l.files["b"], (1 << 20, 3 << 20));
        assert_eq!(l.end(), 4 << 20);
    }
}
