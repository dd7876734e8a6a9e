//! `nvplan devices`, `bind` and `unbind` against fake sysfs/procfs trees.
//!
//! In a fake tree the files the kernel reacts to (driver_override, unbind, drivers_probe)
//! are plain files: the tests check what was written to them, and the driver link stays
//! where it was because no kernel moves it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use nvplan::devices::{self, DevicesError, UseKind};

/// A fake root with sys/ and proc/.
struct Fake {
    root: PathBuf,
}

impl Fake {
    /// An empty host: IOMMU on (one unrelated group), nvme and vfio-pci loaded, an overlay
    /// root file system, no swap.
    fn new(name: &str) -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("devices").join(name);
        let _ = fs::remove_dir_all(&root);
        for d in
            ["sys/bus/pci/devices", "sys/bus/pci/drivers/nvme", "sys/bus/pci/drivers/vfio-pci", "sys/block", "sys/kernel/iommu_groups/0/devices", "proc/self"]
        {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for drv in ["nvme", "vfio-pci"] {
            fs::write(root.join("sys/bus/pci/drivers").join(drv).join("unbind"), "").unwrap();
        }
        fs::write(root.join("sys/bus/pci/drivers_probe"), "").unwrap();
        fs::write(root.join("proc/self/mountinfo"), "21 1 0:30 / / rw - overlay overlay rw\n").unwrap();
        fs::write(root.join("proc/swaps"), "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n").unwrap();
        Fake { root }
    }

    fn dev(&self, addr: &str) -> PathBuf {
        self.root.join("sys/bus/pci/devices").join(addr)
    }

    /// A PCI function with its class, bound to `driver`, in IOMMU group `group`.
    fn pci(&self, addr: &str, class: &str, driver: Option<&str>, group: Option<u32>) -> &Self {
        let d = self.dev(addr);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("class"), format!("{class}\n")).unwrap();
        fs::write(d.join("vendor"), "0x144d\n").unwrap();
        fs::write(d.join("device"), "0xa80a\n").unwrap();
        fs::write(d.join("driver_override"), "(null)\n").unwrap();
        if let Some(drv) = driver {
            let dd = self.root.join("sys/bus/pci/drivers").join(drv);
            fs::create_dir_all(&dd).unwrap();
            fs::write(dd.join("unbind"), "").unwrap();
            symlink(format!("../../../../bus/pci/drivers/{drv}"), d.join("driver")).unwrap();
        }
        if let Some(g) = group {
            let gd = self.root.join(format!("sys/kernel/iommu_groups/{g}/devices"));
            fs::create_dir_all(&gd).unwrap();
            symlink(format!("../../../../bus/pci/devices/{addr}"), gd.join(addr)).unwrap();
            symlink(format!("../../../../kernel/iommu_groups/{g}"), d.join("iommu_group")).unwrap();
        }
        self
    }

    /// An NVMe function on the nvme driver with controller `ctrl`.
    fn nvme(&self, addr: &str, ctrl: &str, serial: &str, group: Option<u32>) -> &Self {
        self.pci(addr, "0x010802", Some("nvme"), group);
        let c = self.dev(addr).join("nvme").join(ctrl);
        fs::create_dir_all(&c).unwrap();
        fs::write(c.join("model"), "Samsung SSD 980 PRO 1TB                 \n").unwrap();
        fs::write(c.join("serial"), format!("{serial}      \n")).unwrap();
        self
    }

    /// A namespace disk `sys/block/DISK` with device number `dev` and partitions
    /// (name, device number).
    fn disk(&self, disk: &str, dev: &str, parts: &[(&str, &str)]) -> &Self {
        let d = self.root.join("sys/block").join(disk);
        fs::create_dir_all(d.join("holders")).unwrap();
        fs::write(d.join("dev"), format!("{dev}\n")).unwrap();
        for (p, pdev) in parts {
            fs::create_dir_all(d.join(p).join("holders")).unwrap();
            fs::write(d.join(p).join("dev"), format!("{pdev}\n")).unwrap();
            fs::write(d.join(p).join("partition"), "1\n").unwrap();
        }
        self
    }

    fn mount(&self, source: &str, dev: &str, point: &str) -> &Self {
        let p = self.root.join("proc/self/mountinfo");
        let mut s = fs::read_to_string(&p).unwrap();
        s += &format!("40 21 {dev} / {point} rw,relatime shared:7 - ext4 {source} rw\n");
        fs::write(p, s).unwrap();
        self
    }

    fn swap(&self, path: &str) -> &Self {
        let p = self.root.join("proc/swaps");
        let mut s = fs::read_to_string(&p).unwrap();
        s += &format!("{path}                          partition\t8388604\t\t0\t\t-2\n");
        fs::write(p, s).unwrap();
        self
    }

    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.root.join(rel)).unwrap()
    }
}

fn addrs(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn devices_lists_only_nvme_class_functions() {
    let f = Fake::new("lists_only_nvme");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).pci("0000:00:1f.2", "0x010601", Some("ahci"), Some(3)).pci(
        "0000:02:00.0",
        "0x010802",
        Some("vfio-pci"),
        Some(8),
    );
    let all = devices::scan(&f.root).unwrap();
    let a: Vec<&str> = all.iter().map(|d| d.address.as_str()).collect();
    assert_eq!(a, ["0000:01:00.0", "0000:02:00.0"]);
    let d = &all[0];
    assert_eq!((d.vendor.as_str(), d.device.as_str()), ("144d", "a80a"));
    assert_eq!(d.model.as_deref(), Some("Samsung SSD 980 PRO 1TB"));
    assert_eq!(d.serial.as_deref(), Some("S1"));
    assert_eq!(d.driver.as_deref(), Some("nvme"));
    assert_eq!(d.iommu_group.as_deref(), Some("7"));
    // On vfio-pci the kernel has no controller, so no model or serial.
    assert_eq!((all[1].driver.as_deref(), all[1].model.as_deref(), all[1].serial.as_deref()), (Some("vfio-pci"), None, None));
}

#[test]
fn devices_reports_the_root_file_system_holder() {
    let f = Fake::new("root_fs");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[("nvme0n1p1", "259:1"), ("nvme0n1p2", "259:2")]);
    // The kernel often names the root's source /dev/root: the device number says which.
    f.mount("/dev/root", "259:2", "/").mount("/dev/nvme0n1p1", "259:1", "/boot/efi");
    let d = &devices::scan(&f.root).unwrap()[0];
    assert_eq!(d.block_devices, ["nvme0n1", "nvme0n1p1", "nvme0n1p2"]);
    let uses: Vec<(UseKind, &str, &str)> = d.in_use.iter().map(|u| (u.kind, u.device.as_str(), u.detail.as_str())).collect();
    assert_eq!(uses, [(UseKind::RootFs, "nvme0n1p2", "/"), (UseKind::Mount, "nvme0n1p1", "/boot/efi")]);
}

#[test]
fn bind_refuses_a_device_with_a_mounted_partition() {
    let f = Fake::new("mounted_partition");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[("nvme0n1p1", "259:1")]).mount("/dev/nvme0n1p1", "259:1", "/data");
    let e = devices::bind(&f.root, &addrs(&["01:00.0"]), false).unwrap_err();
    assert!(matches!(e, DevicesError::InUse { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("0000:01:00.0") && m.contains("nvme0n1p1 is mounted on /data") && m.contains("--force"), "{m}");
    assert_eq!(e.exit_code(), 2);
    assert_eq!(f.read("sys/bus/pci/devices/0000:01:00.0/driver_override"), "(null)\n", "nothing written when refused");
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "");
    devices::bind(&f.root, &addrs(&["01:00.0"]), true).unwrap();
    assert_eq!(f.read("sys/bus/pci/devices/0000:01:00.0/driver_override"), "vfio-pci");
}

#[test]
fn swap_on_a_namespace_blocks_bind_without_force() {
    let f = Fake::new("swap");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[]).swap("/dev/nvme0n1");
    let e = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap_err();
    assert!(e.to_string().contains("nvme0n1 is swap"), "{e}");
    assert!(devices::bind(&f.root, &addrs(&["0000:01:00.0"]), true).is_ok());
}

#[test]
fn a_device_mapper_holder_blocks_bind() {
    let f = Fake::new("holder");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[("nvme0n1p2", "259:2")]);
    fs::create_dir_all(f.root.join("sys/block/nvme0n1/nvme0n1p2/holders/dm-0")).unwrap();
    let e = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap_err();
    assert!(e.to_string().contains("nvme0n1p2 is held by dm-0"), "{e}");
}

#[test]
fn other_controllers_block_devices_do_not_count() {
    let f = Fake::new("other_controller");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).nvme("0000:02:00.0", "nvme1", "S2", Some(8));
    f.disk("nvme0n1", "259:0", &[]).disk("nvme1n1", "259:5", &[]).disk("nvme10n1", "259:9", &[]).mount("/dev/nvme1n1", "259:5", "/srv");
    let all = devices::scan(&f.root).unwrap();
    assert_eq!(all[0].block_devices, ["nvme0n1"]);
    assert!(all[0].in_use.is_empty());
    assert_eq!(all[1].block_devices, ["nvme1n1"], "nvme10n1 is not nvme1's");
    assert_eq!(all[1].in_use.len(), 1);
}

#[test]
fn bind_writes_driver_override_then_unbind_then_probe() {
    let f = Fake::new("bind_writes");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[]);
    let moved = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap();
    let w: Vec<(String, &str)> = moved[0].writes.iter().map(|w| (w.path.strip_prefix(&f.root).unwrap().display().to_string(), w.value.as_str())).collect();
    assert_eq!(
        w,
        [
            ("sys/bus/pci/devices/0000:01:00.0/driver_override".to_string(), "vfio-pci"),
            ("sys/bus/pci/devices/0000:01:00.0/driver/unbind".to_string(), "0000:01:00.0"),
            ("sys/bus/pci/drivers_probe".to_string(), "0000:01:00.0"),
        ]
    );
    assert_eq!(f.read("sys/bus/pci/devices/0000:01:00.0/driver_override"), "vfio-pci");
    // driver/unbind is the nvme driver's unbind file, through the symlink.
    assert_eq!(f.read("sys/bus/pci/drivers/nvme/unbind"), "0000:01:00.0");
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "0000:01:00.0");
    assert_eq!(moved[0].from.as_deref(), Some("nvme"));
    // No kernel here to move the link.
    assert_eq!(moved[0].to.as_deref(), Some("nvme"));
}

#[test]
fn bind_of_an_unbound_function_skips_unbind() {
    let f = Fake::new("unbound");
    f.pci("0000:01:00.0", "0x010802", None, Some(7));
    let moved = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap();
    assert_eq!(moved[0].writes.len(), 2);
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "0000:01:00.0");
}

#[test]
fn unbind_clears_the_override_unbinds_from_vfio_and_probes() {
    let f = Fake::new("unbind_writes");
    f.pci("0000:01:00.0", "0x010802", Some("vfio-pci"), Some(7));
    fs::write(f.dev("0000:01:00.0").join("driver_override"), "vfio-pci\n").unwrap();
    let moved = devices::unbind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap();
    let values: Vec<&str> = moved[0].writes.iter().map(|w| w.value.as_str()).collect();
    assert_eq!(values, ["\n", "0000:01:00.0", "0000:01:00.0"]);
    assert_eq!(f.read("sys/bus/pci/devices/0000:01:00.0/driver_override"), "\n");
    assert_eq!(f.read("sys/bus/pci/drivers/vfio-pci/unbind"), "0000:01:00.0");
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "0000:01:00.0");
}

#[test]
fn a_function_already_there_is_left_alone() {
    let f = Fake::new("already");
    f.pci("0000:01:00.0", "0x010802", Some("vfio-pci"), Some(7));
    let moved = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap();
    assert!(moved[0].writes.is_empty());
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "");
}

#[test]
fn bind_refuses_a_device_sharing_its_iommu_group_unless_named() {
    let f = Fake::new("shared_group");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).nvme("0000:01:00.1", "nvme1", "S2", Some(7));
    // A bridge in the group (on pcieport) does not count.
    f.pci("0000:00:1c.0", "0x060400", Some("pcieport"), Some(7));
    let e = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap_err();
    assert!(matches!(e, DevicesError::GroupShared { .. }), "{e}");
    let m = e.to_string();
    assert!(m.contains("0000:01:00.0: shares IOMMU group 7 with 0000:01:00.1") && !m.contains("00:1c.0 (") && m.contains("--force"), "{m}");
    assert!(m.contains("nvplan bind 0000:01:00.0 0000:01:00.1"), "{m}");
    let moved = devices::bind(&f.root, &addrs(&["0000:01:00.0", "S2"]), false).unwrap();
    assert_eq!(moved.len(), 2);
    assert_eq!(f.read("sys/bus/pci/devices/0000:01:00.1/driver_override"), "vfio-pci");
}

#[test]
fn a_group_peer_already_on_vfio_does_not_block_bind_but_blocks_unbind() {
    let f = Fake::new("peer_on_vfio");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).pci("0000:01:00.1", "0x010802", Some("vfio-pci"), Some(7));
    devices::bind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap();
    let f = Fake::new("peer_on_vfio_unbind");
    f.pci("0000:01:00.0", "0x010802", Some("vfio-pci"), Some(7)).pci("0000:01:00.1", "0x010802", Some("vfio-pci"), Some(7));
    let e = devices::unbind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap_err();
    assert!(e.to_string().contains("stay on vfio-pci"), "{e}");
    devices::unbind(&f.root, &addrs(&["0000:01:00.0", "0000:01:00.1"]), false).unwrap();
}

#[test]
fn iommu_off_is_reported_with_the_fix() {
    let f = Fake::new("iommu_off");
    f.nvme("0000:01:00.0", "nvme0", "S1", None);
    fs::remove_dir_all(f.root.join("sys/kernel/iommu_groups/0")).unwrap();
    let e = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), true).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("0000:01:00.0: the IOMMU is off") && m.contains("intel_iommu=on (or amd_iommu=on) iommu=pt"), "{m}");
    assert_eq!(e.exit_code(), 2);
    assert!(!devices::iommu_on(&f.root));
    assert_eq!(devices::scan(&f.root).unwrap()[0].iommu_group, None);
}

#[test]
fn vfio_pci_not_loaded_says_modprobe() {
    let f = Fake::new("no_vfio");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7));
    fs::remove_dir_all(f.root.join("sys/bus/pci/drivers/vfio-pci")).unwrap();
    let m = devices::bind(&f.root, &addrs(&["0000:01:00.0"]), true).unwrap_err().to_string();
    assert!(m.contains("0000:01:00.0: the vfio-pci driver is not loaded") && m.contains("modprobe vfio-pci"), "{m}");
}

#[test]
fn address_may_be_short_or_a_serial() {
    let f = Fake::new("resolve");
    f.nvme("0000:01:00.0", "nvme0", "S5GXNF0R123456A", Some(7)).pci("0000:03:00.0", "0x020000", Some("igb"), Some(9));
    assert_eq!(devices::resolve(&f.root, "0000:01:00.0").unwrap(), "0000:01:00.0");
    assert_eq!(devices::resolve(&f.root, "01:00.0").unwrap(), "0000:01:00.0");
    assert_eq!(devices::resolve(&f.root, "S5GXNF0R123456A").unwrap(), "0000:01:00.0");
    let e = devices::resolve(&f.root, "05:00.0").unwrap_err();
    assert!(matches!(e, DevicesError::NotFound { .. }) && e.to_string().contains("05:00.0"), "{e}");
    assert!(devices::resolve(&f.root, "NOSUCHSERIAL").is_err());
}

#[test]
fn a_function_that_is_not_nvme_is_refused_even_with_force() {
    let f = Fake::new("not_nvme");
    f.pci("0000:03:00.0", "0x020000", Some("igb"), Some(9));
    let e = devices::bind(&f.root, &addrs(&["03:00.0"]), true).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("0000:03:00.0: class 0x020000 is not an NVMe controller") && m.contains("even with --force"), "{m}");
    assert_eq!(f.read("sys/bus/pci/devices/0000:03:00.0/driver_override"), "(null)\n");
    let e = devices::unbind(&f.root, &addrs(&["9999:00:00.0"]), true).unwrap_err();
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn an_open_vfio_group_counts_as_in_use() {
    let f = Fake::new("vfio_open");
    f.pci("0000:01:00.0", "0x010802", Some("vfio-pci"), Some(7));
    let fd = f.root.join("proc/4242/fd");
    fs::create_dir_all(&fd).unwrap();
    fs::write(f.root.join("proc/4242/comm"), "qemu\n").unwrap();
    symlink("/dev/vfio/7", fd.join("5")).unwrap();
    let e = devices::unbind(&f.root, &addrs(&["0000:01:00.0"]), false).unwrap_err();
    assert!(e.to_string().contains("/dev/vfio/7 is open by process 4242 (qemu)"), "{e}");
}

fn nvplan(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nvplan"));
    c.env("NVPLAN_SYSFS_ROOT", root);
    c
}

#[test]
fn cli_devices_json_lists_the_functions() {
    let f = Fake::new("cli_json");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[]).mount("/dev/nvme0n1", "259:0", "/");
    let o = Command::new(env!("CARGO_BIN_EXE_nvplan")).args(["devices", "--json", "--sysfs-root"]).arg(&f.root).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["iommu_on"], true);
    assert_eq!(v["functions"][0]["address"], "0000:01:00.0");
    assert_eq!(v["functions"][0]["serial"], "S1");
    assert_eq!(v["functions"][0]["in_use"][0]["kind"], "root_fs");
    let o = nvplan(&f.root).arg("devices").output().unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.starts_with("ADDRESS") && table.contains("0000:01:00.0  144d:a80a  nvme") && table.contains("nvme0n1 holds the root file system"), "{table}");
}

#[test]
fn cli_bind_refused_exits_2_naming_the_device_and_force() {
    let f = Fake::new("cli_refused");
    f.nvme("0000:01:00.0", "nvme0", "S1", Some(7)).disk("nvme0n1", "259:0", &[("nvme0n1p1", "259:1")]).mount("/dev/nvme0n1p1", "259:1", "/data");
    let o = nvplan(&f.root).args(["bind", "01:00.0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("0000:01:00.0") && err.contains("--force") && err.contains("/data"), "{err}");
    // Forced, the writes happen; the fake's link does not move, which the command reports.
    let o = nvplan(&f.root).args(["bind", "--force", "01:00.0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("rather than vfio-pci"));
    assert_eq!(f.read("sys/bus/pci/drivers_probe"), "0000:01:00.0");
}

#[test]
fn vfio_all_selects_every_nvme_function_on_vfio_pci() {
    let f = Fake::new("vfio-all");
    f.pci("0000:02:00.0", "0x010802", Some("vfio-pci"), Some(2)).pci("0000:01:00.0", "0x010802", Some("vfio-pci"), Some(1));
    f.nvme("0000:03:00.0", "nvme0", "S3", Some(3)).pci("0000:04:00.0", "0x030000", Some("vfio-pci"), Some(4));
    let t = nvplan::fleet::local::expand_targets(&["vfio:all".into(), "sim".into()], &f.root).unwrap();
    assert_eq!(t, ["vfio:0000:01:00.0", "vfio:0000:02:00.0", "sim"], "NVMe functions on vfio-pci only, by address");
    let none = Fake::new("vfio-none");
    none.nvme("0000:03:00.0", "nvme0", "S3", Some(3));
    let e = nvplan::fleet::local::expand_targets(&["vfio:all".into()], &none.root).unwrap_err();
    assert!(e.contains("no NVMe function is bound to vfio-pci (1 found)") && e.contains("nvplan bind"), "{e}");
}
