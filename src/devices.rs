//! NVMe functions in sysfs, and moving them between the kernel's nvme driver and vfio-pci
//! (`nvplan devices`, `nvplan bind`, `nvplan unbind`).
//!
//! Every function takes the root of the file system it reads (`/` on a real host) so that
//! tests run against fake trees. Only `sys/` and `proc/` under the root are read; writes go
//! to `driver_override`, `driver/unbind` and `sys/bus/pci/drivers_probe`.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// PCI class code of an NVM Express I/O controller (mass storage, NVM, NVMe).
pub const NVME_CLASS: u32 = 0x010802;
/// PCI-to-PCI bridges (class 0x0604xx): their driver, pcieport, manages its own DMA, so a
/// bridge in a group does not stop vfio-pci from using it.
const BRIDGE_CLASS: u32 = 0x0604;
const PCI_DEVICES: &str = "sys/bus/pci/devices";
const IOMMU_GROUPS: &str = "sys/kernel/iommu_groups";
const VFIO_PCI: &str = "vfio-pci";
const NVME: &str = "nvme";

/// One PCI function of class [`NVME_CLASS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvmeFunction {
    /// PCI address, `0000:01:00.0`.
    pub address: String,
    /// Vendor id, hex without `0x` (`144d`).
    pub vendor: String,
    /// Device id, hex without `0x`.
    pub device: String,
    /// Model number; only known while the kernel's nvme driver holds the function.
    pub model: Option<String>,
    /// Serial number; only known while the kernel's nvme driver holds the function.
    pub serial: Option<String>,
    /// The driver bound now (`nvme`, `vfio-pci`), if any.
    pub driver: Option<String>,
    /// The driver named in `driver_override`, if any.
    pub driver_override: Option<String>,
    /// IOMMU group number; none when the IOMMU is off.
    pub iommu_group: Option<String>,
    /// The kernel's controllers on this function (`nvme0`).
    pub controllers: Vec<String>,
    /// Its block devices: namespaces and their partitions (`nvme0n1`, `nvme0n1p1`).
    pub block_devices: Vec<String>,
    /// The other functions of its IOMMU group.
    pub group_peers: Vec<PciPeer>,
    /// Why taking it away from the host would hurt; empty when nothing uses it.
    pub in_use: Vec<Use>,
}

/// Another PCI function in the same IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciPeer {
    /// PCI address.
    pub address: String,
    /// Class code, hex without `0x` (`010802`), when readable.
    pub class: Option<String>,
    /// The driver bound now, if any.
    pub driver: Option<String>,
}

impl PciPeer {
    fn is_bridge(&self) -> bool {
        self.class.as_deref().and_then(|c| u32::from_str_radix(c, 16).ok()).is_some_and(|c| c >> 8 == BRIDGE_CLASS)
    }
}

impl fmt::Display for PciPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (class {}, driver {})", self.address, self.class.as_deref().unwrap_or("?"), self.driver.as_deref().unwrap_or("none"))
    }
}

/// How a function is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UseKind {
    /// A block device holds the root file system.
    RootFs,
    /// A block device is mounted.
    Mount,
    /// A block device is swap.
    Swap,
    /// A block device is held by another one (device-mapper, LVM, RAID).
    Holder,
    /// A process has the function's VFIO group or device open.
    Vfio,
}

/// One use of a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Use {
    /// What kind of use.
    pub kind: UseKind,
    /// The block device (`nvme0n1p2`) or VFIO file (`/dev/vfio/7`) in use.
    pub device: String,
    /// The mount point, the holder, or the process.
    pub detail: String,
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d, x) = (&self.device, &self.detail);
        match self.kind {
            UseKind::RootFs => write!(f, "{d} holds the root file system"),
            UseKind::Mount => write!(f, "{d} is mounted on {x}"),
            UseKind::Swap => write!(f, "{d} is swap"),
            UseKind::Holder => write!(f, "{d} is held by {x}"),
            UseKind::Vfio => write!(f, "{d} is open by {x}"),
        }
    }
}

/// One write to a sysfs file, in the order made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysfsWrite {
    /// The file written.
    pub path: PathBuf,
    /// What was written.
    pub value: String,
}

/// What `bind` or `unbind` did to one function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// PCI address.
    pub address: String,
    /// The driver before.
    pub from: Option<String>,
    /// The driver after probing, read back from sysfs.
    pub to: Option<String>,
    /// The driver asked for (`vfio-pci` or `nvme`).
    pub wanted: String,
    /// The writes made, in order; empty when the function was already there.
    pub writes: Vec<SysfsWrite>,
}

/// Why a scan, a bind or an unbind did not happen. Every message names the device, what is
/// wrong and the fix.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    /// Neither an address of an existing function nor a serial number of one.
    #[error("{text}: no PCI function has this address or NVMe serial number (addresses look like 0000:01:00.0 or 01:00.0; `nvplan devices` lists them)")]
    NotFound {
        /// What was given.
        text: String,
    },
    /// A serial number on several functions (a dual-port drive).
    #[error("{text}: this serial number is on {addrs}: name one by its PCI address")]
    Ambiguous {
        /// The serial number given.
        text: String,
        /// The functions with it.
        addrs: String,
    },
    /// Not an NVMe function; refused even with --force.
    #[error(
        "{addr}: class {class} is not an NVMe controller (0x010802): nvplan moves NVMe functions only, even with --force; use `nvplan devices` to find them"
    )]
    NotNvme {
        /// PCI address.
        addr: String,
        /// Its class code.
        class: String,
    },
    /// Mounted, swap, root file system, held or open.
    #[error("{addr}: in use: {uses}; unmount it (swapoff, stop the holder or the process) first, or pass --force to take it from the host anyway")]
    InUse {
        /// PCI address.
        addr: String,
        /// The uses, joined.
        uses: String,
    },
    /// Shares an IOMMU group with a function not named.
    #[error("{addr}: shares IOMMU group {group} with {peers}; {fix}, or pass --force")]
    GroupShared {
        /// PCI address.
        addr: String,
        /// The group.
        group: String,
        /// The functions in the way, joined.
        peers: String,
        /// What to do.
        fix: String,
    },
    /// No IOMMU groups at all.
    #[error("{addr}: the IOMMU is off ({path} is missing or empty): boot with intel_iommu=on (or amd_iommu=on) iommu=pt")]
    IommuOff {
        /// PCI addresses.
        addr: String,
        /// The groups directory.
        path: PathBuf,
    },
    /// The IOMMU is on but the function has no group.
    #[error("{addr}: has no IOMMU group ({path} is missing) although the IOMMU is on: vfio-pci cannot take it; check the firmware's VT-d/AMD-Vi setting")]
    NoGroup {
        /// PCI address.
        addr: String,
        /// The missing link.
        path: PathBuf,
    },
    /// A driver to move to is not loaded.
    #[error("{addr}: the {driver} driver is not loaded ({path} is missing): run `modprobe {driver}`")]
    DriverMissing {
        /// PCI addresses.
        addr: String,
        /// `vfio-pci` or `nvme`.
        driver: String,
        /// The driver's directory.
        path: PathBuf,
    },
    /// EACCES or EPERM on a sysfs write.
    #[error("{addr}: cannot write {value:?} to {path}: permission denied: run as root (sudo nvplan ...)")]
    PermissionDenied {
        /// PCI address.
        addr: String,
        /// The file.
        path: PathBuf,
        /// What was to be written.
        value: String,
    },
    /// Another failed sysfs write.
    #[error("{addr}: cannot write {value:?} to {path}: {source}")]
    Write {
        /// PCI address.
        addr: String,
        /// The file.
        path: PathBuf,
        /// What was to be written.
        value: String,
        /// The error.
        source: io::Error,
    },
    /// A file or directory that must be readable is not.
    #[error("cannot read {path}: {source} (are sysfs and procfs mounted?)")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Several of the above, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<DevicesError>),
}

impl DevicesError {
    /// The command's exit code: 2 for a refusal or bad input, 1 for a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::PermissionDenied { .. } | Self::Write { .. } | Self::Read { .. } => 1,
            Self::Many(v) => v.iter().map(Self::exit_code).min().unwrap_or(2),
            _ => 2,
        }
    }

    fn all(mut v: Vec<DevicesError>) -> Self {
        if v.len() == 1 { v.remove(0) } else { Self::Many(v) }
    }
}

/// Whether the IOMMU is on: `sys/kernel/iommu_groups` has at least one group.
pub fn iommu_on(root: &Path) -> bool {
    fs::read_dir(root.join(IOMMU_GROUPS)).is_ok_and(|mut d| d.next().is_some())
}

/// Whether a PCI driver is loaded (`sys/bus/pci/drivers/NAME` exists).
pub fn driver_loaded(root: &Path, name: &str) -> bool {
    driver_dir(root, name).is_dir()
}

fn driver_dir(root: &Path, name: &str) -> PathBuf {
    root.join("sys/bus/pci/drivers").join(name)
}

/// Every NVMe function under `ROOT/sys/bus/pci/devices`, by address.
pub fn scan(root: &Path) -> Result<Vec<NvmeFunction>, DevicesError> {
    let host = HostUse::read(root)?;
    let mut out = Vec::new();
    for addr in pci_addresses(root)? {
        if read_class(&root.join(PCI_DEVICES).join(&addr)) == Some(NVME_CLASS) {
            out.push(function(root, &addr, &host));
        }
    }
    Ok(out)
}

/// The PCI address meant by `text`: a full address (`0000:01:00.0`), a short one
/// (`01:00.0`, domain 0000) or an NVMe serial number. The function must exist.
pub fn resolve(root: &Path, text: &str) -> Result<String, DevicesError> {
    resolve_in(root, text, &scan(root)?)
}

fn resolve_in(root: &Path, text: &str, functions: &[NvmeFunction]) -> Result<String, DevicesError> {
    let t = text.trim();
    if let Some(addr) = parse_address(t) {
        return if root.join(PCI_DEVICES).join(&addr).exists() { Ok(addr) } else { Err(DevicesError::NotFound { text: text.into() }) };
    }
    let hits: Vec<&str> = functions.iter().filter(|f| f.serial.as_deref() == Some(t)).map(|f| f.address.as_str()).collect();
    match hits[..] {
        [one] => Ok(one.into()),
        [] => Err(DevicesError::NotFound { text: text.into() }),
        _ => Err(DevicesError::Ambiguous { text: text.into(), addrs: hits.join(", ") }),
    }
}

/// `DDDD:BB:DD.F` or `BB:DD.F` (hex), lower-cased, with the domain.
fn parse_address(t: &str) -> Option<String> {
    let t = t.to_ascii_lowercase();
    let parts: Vec<&str> = t.split(':').collect();
    let (domain, bus, devfn) = match parts[..] {
        [d, b, df] => (d, b, df),
        [b, df] => ("0000", b, df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
    (hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && matches!(func.as_bytes(), [b'0'..=b'7'])).then(|| format!("{domain}:{bus}:{devfn}"))
}

/// Moves the functions to vfio-pci: `driver_override` ← `vfio-pci`, `driver/unbind` ←
/// address (when bound), `drivers_probe` ← address. Refuses (all or nothing, before any
/// write) functions in use or sharing their IOMMU group with a function neither named nor
/// already free, unless `force`; refuses always a function that is not NVMe or does not
/// exist, and when the IOMMU is off or vfio-pci is not loaded.
pub fn bind(root: &Path, addrs: &[String], force: bool) -> Result<Vec<Moved>, DevicesError> {
    switch(root, addrs, force, VFIO_PCI)
}

/// Moves the functions back to the kernel's nvme driver: `driver_override` ← `\n`,
/// `driver/unbind` ← address (when bound), `drivers_probe` ← address. The same refusals
/// as [`bind`], except the IOMMU; the group check is against functions left on vfio-pci.
pub fn unbind(root: &Path, addrs: &[String], force: bool) -> Result<Vec<Moved>, DevicesError> {
    switch(root, addrs, force, NVME)
}

fn switch(root: &Path, texts: &[String], force: bool, wanted: &str) -> Result<Vec<Moved>, DevicesError> {
    let functions = scan(root)?;
    let mut problems = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    for t in texts {
        match resolve_in(root, t, &functions) {
            Ok(a) if !addrs.contains(&a) => addrs.push(a),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    let mut chosen = Vec::new();
    for a in &addrs {
        match functions.iter().find(|f| &f.address == a) {
            Some(f) => chosen.push(f),
            None => {
                let class = read_class(&root.join(PCI_DEVICES).join(a)).map_or_else(|| "unknown".into(), |c| format!("0x{c:06x}"));
                problems.push(DevicesError::NotNvme { addr: a.clone(), class });
            }
        }
    }
    let moving: Vec<&&NvmeFunction> = chosen.iter().filter(|f| f.driver.as_deref() != Some(wanted)).collect();
    let joined = moving.iter().map(|f| f.address.as_str()).collect::<Vec<_>>().join(", ");
    if !moving.is_empty() {
        if wanted == VFIO_PCI && !iommu_on(root) {
            problems.push(DevicesError::IommuOff { addr: joined.clone(), path: root.join(IOMMU_GROUPS) });
        }
        if !driver_loaded(root, wanted) {
            problems.push(DevicesError::DriverMissing { addr: joined, driver: wanted.into(), path: driver_dir(root, wanted) });
        }
    }
    for f in &moving {
        if wanted == VFIO_PCI && f.iommu_group.is_none() && iommu_on(root) {
            problems.push(DevicesError::NoGroup { addr: f.address.clone(), path: root.join(PCI_DEVICES).join(&f.address).join("iommu_group") });
        }
        if force {
            continue;
        }
        if !f.in_use.is_empty() {
            let uses = f.in_use.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            problems.push(DevicesError::InUse { addr: f.address.clone(), uses });
        }
        if let Some(e) = group_problem(f, &addrs, wanted) {
            problems.push(e);
        }
    }
    if !problems.is_empty() {
        return Err(DevicesError::all(problems));
    }
    let mut out = Vec::new();
    for f in chosen {
        let dev = root.join(PCI_DEVICES).join(&f.address);
        let mut writes = Vec::new();
        if f.driver.as_deref() != Some(wanted) {
            // The override makes the next probe pick `wanted` whatever the id tables say.
            let over = if wanted == VFIO_PCI { VFIO_PCI.to_string() } else { "\n".to_string() };
            write_sysfs(&f.address, &dev.join("driver_override"), &over, &mut writes)?;
            if f.driver.is_some() {
                write_sysfs(&f.address, &dev.join("driver/unbind"), &f.address, &mut writes)?;
            }
            write_sysfs(&f.address, &root.join("sys/bus/pci/drivers_probe"), &f.address, &mut writes)?;
        } else if wanted == NVME && f.driver_override.is_some() {
            // Already on nvme: only the stale override would surprise the next probe.
            write_sysfs(&f.address, &dev.join("driver_override"), "\n", &mut writes)?;
        }
        out.push(Moved { address: f.address.clone(), from: f.driver.clone(), to: link_name(&dev.join("driver")), wanted: wanted.into(), writes });
    }
    Ok(out)
}

/// vfio-pci can use a group only when no function in it is left on a host driver;
/// moving one back to nvme spoils the group for the functions that stay on vfio-pci.
fn group_problem(f: &NvmeFunction, named: &[String], wanted: &str) -> Option<DevicesError> {
    let group = f.iommu_group.as_ref()?;
    let blocking: Vec<&PciPeer> = f
        .group_peers
        .iter()
        .filter(|p| !named.contains(&p.address) && !p.is_bridge())
        .filter(|p| if wanted == VFIO_PCI { p.driver.as_deref().is_some_and(|d| d != VFIO_PCI) } else { p.driver.as_deref() == Some(VFIO_PCI) })
        .collect();
    if blocking.is_empty() {
        return None;
    }
    let list: Vec<&str> = blocking.iter().map(|p| p.address.as_str()).collect();
    let cmd = if wanted == VFIO_PCI { "bind" } else { "unbind" };
    let fix = if wanted == VFIO_PCI {
        format!(
            "vfio-pci takes whole groups: name them too (`nvplan bind {} {}`) when they are NVMe functions, move them to vfio-pci yourself",
            f.address,
            list.join(" ")
        )
    } else {
        format!("they stay on vfio-pci and lose the group: name them too (`nvplan {cmd} {} {}`)", f.address, list.join(" "))
    };
    Some(DevicesError::GroupShared {
        addr: f.address.clone(),
        group: group.clone(),
        peers: blocking.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        fix,
    })
}

/// One `write(2)` per file, as sysfs wants.
fn write_sysfs(addr: &str, path: &Path, value: &str, log: &mut Vec<SysfsWrite>) -> Result<(), DevicesError> {
    let r = fs::OpenOptions::new().write(true).truncate(true).open(path).and_then(|mut f| f.write_all(value.as_bytes()));
    match r {
        Ok(()) => {
            log.push(SysfsWrite { path: path.to_path_buf(), value: value.into() });
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(DevicesError::PermissionDenied { addr: addr.into(), path: path.to_path_buf(), value: value.into() })
        }
        Err(source) => Err(DevicesError::Write { addr: addr.into(), path: path.to_path_buf(), value: value.into(), source }),
    }
}

fn pci_addresses(root: &Path) -> Result<Vec<String>, DevicesError> {
    let dir = root.join(PCI_DEVICES);
    let rd = fs::read_dir(&dir).map_err(|source| DevicesError::Read { path: dir.clone(), source })?;
    let mut v: Vec<String> = rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    Ok(v)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn read_hex(path: &Path) -> Option<u32> {
    let s = read_trimmed(path)?;
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn read_class(dev: &Path) -> Option<u32> {
    read_hex(&dev.join("class"))
}

/// The basename of a symlink's target (`driver`, `iommu_group`).
pub(crate) fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path).ok()?.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn dir_names(path: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(path).map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default();
    v.sort();
    v
}

fn split_digits(s: &str) -> Option<(&str, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    (n > 0).then(|| s.split_at(n))
}

/// The disk named by an entry of a controller's directory: `nvme0n1` itself, or a
/// multipath path device `nvme0c1n1`, whose disk is `nvme0n1`.
fn disk_of_entry(entry: &str) -> Option<String> {
    let (subsys, rest) = split_digits(entry.strip_prefix("nvme")?)?;
    let rest = match rest.strip_prefix('c') {
        Some(r) => split_digits(r)?.1,
        None => rest,
    };
    let (ns, tail) = split_digits(rest.strip_prefix('n')?)?;
    tail.is_empty().then(|| format!("nvme{subsys}n{ns}"))
}

/// The namespaces' disks of controller `ctrl`, as named in `sys/block`.
fn disks(root: &Path, ctrl_dir: &Path, ctrl: &str) -> BTreeSet<String> {
    let listed: BTreeSet<String> = dir_names(ctrl_dir).iter().filter_map(|e| disk_of_entry(e)).collect();
    if !listed.is_empty() {
        return listed;
    }
    // Without entries in the controller's directory, fall back to the naming rule nvmeXnY.
    let prefix = format!("{ctrl}n");
    dir_names(&root.join("sys/block"))
        .into_iter()
        .filter(|d| d.strip_prefix(&prefix).is_some_and(|r| !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit())))
        .collect()
}

/// A block device: name and its directory under `sys/block`.
struct Block {
    name: String,
    dir: PathBuf,
}

fn blocks(root: &Path, disk: &str) -> Vec<Block> {
    let dir = root.join("sys/block").join(disk);
    let prefix = format!("{disk}p");
    let mut v = vec![Block { name: disk.into(), dir: dir.clone() }];
    for p in dir_names(&dir) {
        if p.strip_prefix(&prefix).is_some_and(|r| !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit())) {
            v.push(Block { dir: dir.join(&p), name: p });
        }
    }
    v
}

fn function(root: &Path, addr: &str, host: &HostUse) -> NvmeFunction {
    let dev = root.join(PCI_DEVICES).join(addr);
    let id = |f: &str| read_hex(&dev.join(f)).map_or_else(|| "?".into(), |v| format!("{v:04x}"));
    let driver = link_name(&dev.join("driver"));
    let driver_override = read_trimmed(&dev.join("driver_override")).filter(|s| !s.is_empty() && s != "(null)");
    let iommu_group = link_name(&dev.join("iommu_group"));
    let controllers: Vec<String> =
        dir_names(&dev.join("nvme")).into_iter().filter(|c| c.strip_prefix("nvme").and_then(split_digits).is_some_and(|(_, r)| r.is_empty())).collect();
    let info = |file: &str| controllers.iter().find_map(|c| read_trimmed(&dev.join("nvme").join(c).join(file))).filter(|s| !s.is_empty());
    let (model, serial) = (info("model"), info("serial"));
    let mut blks = Vec::new();
    for c in &controllers {
        for d in disks(root, &dev.join("nvme").join(c), c) {
            blks.extend(blocks(root, &d));
        }
    }
    let mut in_use = host.uses(&blks);
    for b in &blks {
        for h in dir_names(&b.dir.join("holders")) {
            in_use.push(Use { kind: UseKind::Holder, device: b.name.clone(), detail: h });
        }
    }
    let mut vfio_files: Vec<String> = iommu_group.iter().map(|g| format!("/dev/vfio/{g}")).collect();
    vfio_files.extend(dir_names(&dev.join("vfio-dev")).into_iter().map(|v| format!("/dev/vfio/devices/{v}")));
    for (file, who) in &host.open_vfio {
        if vfio_files.contains(file) {
            in_use.push(Use { kind: UseKind::Vfio, device: file.clone(), detail: who.clone() });
        }
    }
    let group_peers = iommu_group
        .as_ref()
        .map(|g| {
            dir_names(&root.join(IOMMU_GROUPS).join(g).join("devices"))
                .into_iter()
                .filter(|p| p != addr)
                .map(|p| {
                    let pd = root.join(PCI_DEVICES).join(&p);
                    PciPeer { class: read_class(&pd).map(|c| format!("{c:06x}")), driver: link_name(&pd.join("driver")), address: p }
                })
                .collect()
        })
        .unwrap_or_default();
    NvmeFunction {
        address: addr.into(),
        vendor: id("vendor"),
        device: id("device"),
        model,
        serial,
        driver,
        driver_override,
        iommu_group,
        controllers,
        block_devices: blks.into_iter().map(|b| b.name).collect(),
        group_peers,
        in_use,
    }
}

/// A mounted file system.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    source: String,
    dev: Option<String>,
    point: String,
}

/// Mounts, swaps and open VFIO files of the host, read once per scan.
struct HostUse {
    mounts: Vec<Mount>,
    swaps: Vec<String>,
    /// (`/dev/vfio/7`, `process 1234 (qemu)`).
    open_vfio: BTreeSet<(String, String)>,
}

impl HostUse {
    fn read(root: &Path) -> Result<Self, DevicesError> {
        let info = root.join("proc/self/mountinfo");
        let mounts = match fs::read_to_string(&info) {
            Ok(s) => parse_mountinfo(&s),
            Err(_) => {
                // Without mountinfo (an old or fake /proc), /proc/mounts; no mounts list at all
                // would make every device look unused, so that is an error.
                let m = root.join("proc/mounts");
                parse_mounts(&fs::read_to_string(&m).map_err(|source| DevicesError::Read { path: m, source })?)
            }
        };
        // A kernel without swap support has no /proc/swaps.
        let swaps = fs::read_to_string(root.join("proc/swaps")).map(|s| parse_swaps(&s)).unwrap_or_default();
        Ok(Self { mounts, swaps, open_vfio: open_vfio(root) })
    }

    fn uses(&self, blks: &[Block]) -> Vec<Use> {
        let devs: Vec<Option<String>> = blks.iter().map(|b| read_trimmed(&b.dir.join("dev"))).collect();
        let mut v = Vec::new();
        for m in &self.mounts {
            let by_name = m.source.strip_prefix("/dev/").and_then(|s| blks.iter().position(|b| b.name == s));
            // The device number catches sources the kernel names `/dev/root`.
            let by_dev = || m.dev.as_ref().and_then(|d| devs.iter().position(|x| x.as_ref() == Some(d)));
            if let Some(i) = by_name.or_else(by_dev) {
                let kind = if m.point == "/" { UseKind::RootFs } else { UseKind::Mount };
                v.push(Use { kind, device: blks[i].name.clone(), detail: m.point.clone() });
            }
        }
        for s in &self.swaps {
            let base = s.rsplit('/').next().unwrap_or(s);
            if let Some(b) = blks.iter().find(|b| b.name == base) {
                v.push(Use { kind: UseKind::Swap, device: b.name.clone(), detail: s.clone() });
            }
        }
        v
    }
}

/// Files under `/dev/vfio` open by any process; others' fds are unreadable unless root,
/// so this sees only what it may.
fn open_vfio(root: &Path) -> BTreeSet<(String, String)> {
    let mut v = BTreeSet::new();
    for pid in dir_names(&root.join("proc")).into_iter().filter(|p| p.bytes().all(|c| c.is_ascii_digit())) {
        let pdir = root.join("proc").join(&pid);
        for fd in dir_names(&pdir.join("fd")) {
            let Ok(t) = fs::read_link(pdir.join("fd").join(&fd)) else { continue };
            let t = t.to_string_lossy().into_owned();
            if t.starts_with("/dev/vfio/") {
                let comm = read_trimmed(&pdir.join("comm")).unwrap_or_default();
                v.insert((t, format!("process {pid} ({comm})")));
            }
        }
    }
    v
}

/// Undoes the octal escapes (`\040` for a space) of /proc/mounts, mountinfo and swaps.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
fn parse_mountinfo(s: &str) -> Vec<Mount> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let sep = f.iter().skip(6).position(|x| *x == "-")? + 6;
            Some(Mount { source: unescape(f.get(sep + 2)?), dev: Some(f.get(2)?.to_string()), point: unescape(f.get(4)?) })
        })
        .collect()
}

/// `SOURCE POINT FSTYPE OPTIONS 0 0`.
fn parse_mounts(s: &str) -> Vec<Mount> {
    s.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(Mount { source: unescape(f.next()?), dev: None, point: unescape(f.next()?) })
        })
        .collect()
}

/// `Filename Type Size Used Priority`, after a header line.
fn parse_swaps(s: &str) -> Vec<String> {
    s.lines().skip(1).filter_map(|l| l.split_whitespace().next().map(unescape)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_addresses_parse_full_and_short_forms() {
        assert_eq!(parse_address("0000:01:00.0").as_deref(), Some("0000:01:00.0"));
        assert_eq!(parse_address("01:00.0").as_deref(), Some("0000:01:00.0"));
        assert_eq!(parse_address("0001:AF:1f.7").as_deref(), Some("0001:af:1f.7"));
        for bad in ["S5GXNF0R123456", "01:00", "1:00.0", "01:00.8", "0000:01:00.0:1", "00g0:01:00.0"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn devices_mountinfo_gives_source_device_and_mount_point() {
        let s = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n\
                 30 22 259:1 / /boot\\040efi rw shared:5 master:2 - vfat /dev/nvme0n1p1 rw\n\
                 31 22 0:26 / /proc rw - proc proc rw\n";
        let m = parse_mountinfo(s);
        assert_eq!(m[0], Mount { source: "/dev/root".into(), dev: Some("259:2".into()), point: "/".into() });
        assert_eq!(m[1], Mount { source: "/dev/nvme0n1p1".into(), dev: Some("259:1".into()), point: "/boot efi".into() });
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn devices_proc_mounts_and_swaps_parse() {
        let m = parse_mounts("/dev/nvme1n1 /mnt/a\\040b xfs rw 0 0\n");
        assert_eq!(m, vec![Mount { source: "/dev/nvme1n1".into(), dev: None, point: "/mnt/a b".into() }]);
        let s = parse_swaps("Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p3 partition 8388604 0 -2\n/swap\\040file file 10 0 -3\n");
        assert_eq!(s, vec!["/dev/nvme0n1p3".to_string(), "/swap file".to_string()]);
    }

    #[test]
    fn devices_multipath_path_devices_name_their_disk() {
        assert_eq!(disk_of_entry("nvme0n1").as_deref(), Some("nvme0n1"));
        assert_eq!(disk_of_entry("nvme2c3n1").as_deref(), Some("nvme2n1"));
        for not in ["model", "nvme0", "nvme0n1p1", "nvme0cn1", "nvme0n"] {
            assert_eq!(disk_of_entry(not), None, "{not}");
        }
    }

    #[test]
    fn devices_exit_codes_tell_refusals_from_failures() {
        let refused = DevicesError::NotFound { text: "x".into() };
        let failed = DevicesError::PermissionDenied { addr: "a".into(), path: "p".into(), value: "v".into() };
        assert_eq!(refused.exit_code(), 2);
        assert_eq!(failed.exit_code(), 1);
        assert_eq!(DevicesError::Many(vec![DevicesError::NotFound { text: "y".into() }, failed]).exit_code(), 1);
    }
}
