//! PCI configuration space through the transport (PCI Local Bus 3.0 §6, PCI PM 1.2,
//! PCIe Base 4.0 §7.5.3): the header an NVMe function has, the capability list, write
//! masks, D3hot and its reset back to D0, ASPM control, Function Level Reset.

mod common;

use common::{pattern, rig};
use nvplan::driver::{DataPtr, QpairOptions};
use nvplan::nvme::cmd;
use nvplan::sim::{NamespaceConfig, SimConfig};
use nvplan::transport::Transport;
use nvplan::transport::pci::{self, cap_id};

fn cfg() -> SimConfig {
    SimConfig { namespaces: vec![NamespaceConfig::memory(16 << 20, 512)], ..Default::default() }
}

fn pm_offset(t: &dyn Transport) -> usize {
    pci::cap_offset(t, cap_id::POWER_MANAGEMENT).unwrap().expect("an NVMe function has the PCI Power Management capability")
}

fn exp_offset(t: &dyn Transport) -> usize {
    pci::cap_offset(t, cap_id::PCI_EXPRESS).unwrap().expect("a PCIe function has the PCI Express capability")
}

#[test]
fn header_identifies_an_nvme_function_with_a_64_bit_bar0() {
    let r = rig(cfg());
    let t = r.ctrl.transport().as_ref();
    let mut class = [0u8; 3];
    t.config_read(pci::CLASS_PROG, &mut class).unwrap();
    assert_eq!(class, [0x02, 0x08, 0x01], "prog-if 02h (NVM Express), subclass 08h, class 01h");
    let mut b = [0u8; 1];
    t.config_read(pci::HEADER_TYPE, &mut b).unwrap();
    assert_eq!(b[0] & 0x7f, 0, "type-0 header");
    let vid = pci::read16(t, pci::VENDOR_ID).unwrap();
    assert!(vid != 0xffff && vid != 0);
    // Identify Controller VID and SSVID are the PCI IDs (NVMe 1.4 Figure 247).
    assert_eq!(r.ctrl.identify().vid, vid);
    assert_eq!(r.ctrl.identify().ssvid, pci::read16(t, pci::SUBSYSTEM_VENDOR_ID).unwrap());
    assert_eq!(pci::read32(t, pci::BAR0).unwrap() & 0b111, 0b100, "memory BAR, 64-bit");
    let cmd_reg = pci::read16(t, pci::COMMAND).unwrap();
    assert_eq!(cmd_reg & (pci::COMMAND_MEMORY | pci::COMMAND_MASTER), pci::COMMAND_MEMORY | pci::COMMAND_MASTER);
    if r.is_sim() {
        assert_eq!((vid, pci::read16(t, pci::DEVICE_ID).unwrap()), (0x1234, 0x4e56));
    }
}

#[test]
fn capability_list_has_pm_msix_and_pcie_but_no_agp() {
    let r = rig(cfg());
    let t = r.ctrl.transport().as_ref();
    assert_ne!(pci::read16(t, pci::STATUS).unwrap() & pci::STATUS_CAP_LIST, 0);
    pm_offset(t);
    exp_offset(t);
    assert!(pci::cap_offset(t, cap_id::MSIX).unwrap().is_some());
    assert_eq!(pci::cap_offset(t, cap_id::AGP).unwrap(), None);
    if r.is_sim() {
        assert_eq!(pci::read32(t, pci::EXT_CAP_START).unwrap(), 0, "an empty extended capability list");
        assert_eq!(pci::ext_cap_offset(t, 0x0001).unwrap(), None);
    }
}

#[test]
fn read_only_registers_ignore_writes_and_bar0_sizes_by_writing_all_ones() {
    let r = rig(cfg());
    let t = r.ctrl.transport().as_ref();
    let vid = pci::read16(t, pci::VENDOR_ID).unwrap();
    t.config_write(pci::VENDOR_ID, &[0xaa, 0x55]).unwrap();
    assert_eq!(pci::read16(t, pci::VENDOR_ID).unwrap(), vid);
    let mut class = [0u8; 3];
    t.config_write(pci::CLASS_PROG, &[0, 0, 0]).unwrap();
    t.config_read(pci::CLASS_PROG, &mut class).unwrap();
    assert_eq!(class, [0x02, 0x08, 0x01]);
    if r.is_sim() {
        // vfio-pci virtualises BARs, so the sizing handshake is checked on the simulator.
        let old = pci::read32(t, pci::BAR0).unwrap();
        t.config_write(pci::BAR0, &u32::MAX.to_le_bytes()).unwrap();
        let mask = pci::read32(t, pci::BAR0).unwrap();
        let size = !(mask & !0xf) as usize + 1;
        assert!(size.is_power_of_two() && size >= r.sim().bar_size(), "BAR0 of {size:#x} bytes");
        t.config_write(pci::BAR0, &old.to_le_bytes()).unwrap();
        assert_eq!(pci::read32(t, pci::BAR0).unwrap(), old);
    }
    // Out of range accesses are refused.
    assert!(t.config_read(4095, &mut [0u8; 2]).is_err());
}

#[test]
fn aspm_control_reads_back_every_supported_value() {
    let r = rig(cfg());
    let t = r.ctrl.transport().as_ref();
    let exp = exp_offset(t);
    let support = (pci::read32(t, exp + pci::EXP_LNKCAP).unwrap() & pci::LNKCAP_ASPM_L0S_L1) >> 10;
    if r.is_sim() {
        assert_eq!(support, 0b11, "L0s and L1");
    }
    let ctl = pci::read16(t, exp + pci::EXP_LNKCTL).unwrap();
    for v in (0..4u16).filter(|v| v & !support as u16 == 0) {
        pci::write16(t, exp + pci::EXP_LNKCTL, (ctl & !pci::LNKCTL_ASPM_MASK) | v).unwrap();
        assert_eq!(pci::read16(t, exp + pci::EXP_LNKCTL).unwrap() & pci::LNKCTL_ASPM_MASK, v);
    }
    pci::write16(t, exp + pci::EXP_LNKCTL, ctl).unwrap();
    // The link keeps working whatever ASPM says.
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    q.execute_ok(&cmd::flush(1), DataPtr::None).unwrap();
}

#[test]
fn d3hot_hides_bar0_and_d0_without_no_soft_reset_resets_the_controller_keeping_data() {
    let r = rig(cfg());
    let t = r.ctrl.transport().clone();
    let pm = pm_offset(t.as_ref());
    let pmcsr = pm + pci::PM_PMCSR;
    let data = pattern(4096, 7);
    {
        let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
        let buf = r.ctrl.dma(4096).unwrap();
        buf.write(0, &data);
        q.execute_ok(&cmd::write(1, 100, 8), DataPtr::Prp(&buf)).unwrap();
        q.execute_ok(&cmd::flush(1), DataPtr::None).unwrap();
    }
    assert_eq!(pci::read16(t.as_ref(), pmcsr).unwrap() & pci::PMCSR_STATE_MASK, 0, "D0");
    let no_soft_reset = pci::read16(t.as_ref(), pmcsr).unwrap() & pci::PMCSR_NO_SOFT_RESET != 0;
    if r.is_sim() {
        assert!(!no_soft_reset, "the simulator resets on D3hot -> D0, as most NVMe SSDs");
    }
    pci::write16(t.as_ref(), pmcsr, pci::D3HOT).unwrap();
    assert_eq!(pci::read16(t.as_ref(), pmcsr).unwrap() & pci::PMCSR_STATE_MASK, pci::D3HOT);
    if r.is_sim() {
        // In D3hot only configuration space answers (PCI PM 1.2 §5.3.1.4).
        assert_eq!(t.read32(nvplan::nvme::regs::offset::CSTS), u32::MAX);
        assert_eq!(t.read32(nvplan::nvme::regs::offset::VS), u32::MAX);
    }
    std::thread::sleep(std::time::Duration::from_millis(10));
    pci::write16(t.as_ref(), pmcsr, 0).unwrap();
    // PCI PM 1.2 §5.6.1: 10 ms recovery from D3hot before the function is accessed.
    std::thread::sleep(std::time::Duration::from_millis(10));
    assert_eq!(pci::read16(t.as_ref(), pmcsr).unwrap() & pci::PMCSR_STATE_MASK, 0);
    let cc = nvplan::nvme::regs::Cc(t.read32(nvplan::nvme::regs::offset::CC));
    assert_eq!(cc.en(), no_soft_reset, "CC.EN after D3hot -> D0 (No_Soft_Reset = {no_soft_reset})");
    r.ctrl.reset().unwrap();
    let mut q = r.ctrl.create_qpair(QpairOptions::default()).unwrap();
    let buf = r.ctrl.dma(4096).unwrap();
    q.execute_ok(&cmd::read(1, 100, 8), DataPtr::Prp(&buf)).unwrap();
    assert!(buf.to_vec() == data, "media survive the reset");
}

#[test]
fn unsupported_d1_is_discarded_and_the_function_stays_in_d0() {
    let r = rig(cfg());
    let t = r.ctrl.transport().as_ref();
    let pm = pm_offset(t);
    let pmc = pci::read16(t, pm + pci::PM_PMC).unwrap();
    if pmc & 1 << 9 != 0 {
        return; // D1 supported: nothing to check.
    }
    pci::write16(t, pm + pci::PM_PMCSR, 1).unwrap();
    assert_eq!(pci::read16(t, pm + pci::PM_PMCSR).unwrap() & pci::PMCSR_STATE_MASK, 0);
    assert!(r.ctrl.is_ready());
}

#[test]
fn memory_space_disabled_hides_bar0_until_enabled_again() {
    let r = rig(cfg());
    if !r.is_sim() {
        return; // vfio-pci keeps its own view of the Command register.
    }
    let t = r.ctrl.transport().as_ref();
    let before = pci::read16(t, pci::COMMAND).unwrap();
    pci::write16(t, pci::COMMAND, before & !pci::COMMAND_MEMORY).unwrap();
    assert_eq!(t.read32(nvplan::nvme::regs::offset::VS), u32::MAX);
    pci::write16(t, pci::COMMAND, before).unwrap();
    assert_ne!(t.read32(nvplan::nvme::regs::offset::VS), u32::MAX);
    assert!(r.ctrl.is_ready(), "nothing was reset");
}

#[test]
fn initiate_flr_in_device_control_resets_the_controller() {
    let r = rig(cfg());
    if !r.is_sim() {
        return; // On a real function the kernel owns FLR (the transport's reset).
    }
    let t = r.ctrl.transport().as_ref();
    let exp = exp_offset(t);
    assert_ne!(pci::read32(t, exp + pci::EXP_DEVCAP).unwrap() & 1 << 28, 0, "FLR capable");
    let ctl = pci::read16(t, exp + pci::EXP_DEVCTL).unwrap();
    pci::write16(t, exp + pci::EXP_DEVCTL, ctl | pci::DEVCTL_INITIATE_FLR).unwrap();
    assert_eq!(pci::read16(t, exp + pci::EXP_DEVCTL).unwrap(), ctl, "Initiate FLR reads 0");
    assert!(!nvplan::nvme::regs::Cc(t.read32(nvplan::nvme::regs::offset::CC)).en());
    r.ctrl.reset().unwrap();
    assert!(r.ctrl.is_ready());
}

#[test]
fn configuration_space_reads_all_ones_without_power_and_resets_at_power_on() {
    let r = rig(cfg());
    if !r.is_sim() {
        return; // Power is the simulator's switch.
    }
    let t = r.ctrl.transport().as_ref();
    let exp = exp_offset(t);
    pci::write16(t, exp + pci::EXP_LNKCTL, 0b10).unwrap();
    r.ctrl.power_off(false).unwrap();
    assert_eq!(pci::read16(t, pci::VENDOR_ID).unwrap(), 0xffff);
    r.ctrl.power_on().unwrap();
    assert_eq!(pci::read16(t, exp + pci::EXP_LNKCTL).unwrap() & pci::LNKCTL_ASPM_MASK, 0, "ASPM off after power on");
}
