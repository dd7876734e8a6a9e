//! The admin commands' handlers (NVMe 1.4 §5), run on the controller thread: Identify,
//! Get Log Page, Set and Get Features, Firmware Image Download, Device Self-test, the SMART
//! / Health log, Format NVM and Sanitize, with the Identify data and the Commands Supported
//! and Effects log they report. Dispatch and queue management are in `controller.rs`.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::time::Instant;

use super::controller::{AERL, CCTEMP, ControllerThread, Features, WCTEMP};
use super::firmware::{self, Firmware};
use super::io::IoMsg;
use super::selftest;
use super::{Shared, lock};
use crate::nvme::features::{Arbitration, NumberOfQueues, Select, fid};
use crate::nvme::identify::{IdentifyController, IdentifyNamespace, LbaFormat, cns, oacs, oncs, set_ascii_field, sgls};
use crate::nvme::log::{GetLogPage, SmartLog, async_event, data_units, lid};
use crate::nvme::opcode::{AdminOpcode, NvmOpcode};
use crate::nvme::{Sqe, Status};

/// Composite temperature the simulated controller reports, Kelvin.
const TEMPERATURE_K: u16 = 310;
/// Number of power states, 0's based.
const NPSS: u8 = 4;

/// Admin opcodes the controller implements; everything else is Invalid Command Opcode.
const ADMIN_SUPPORTED: &[AdminOpcode] = &[
    AdminOpcode::DeleteIoSq,
    AdminOpcode::CreateIoSq,
    AdminOpcode::GetLogPage,
    AdminOpcode::DeleteIoCq,
    AdminOpcode::CreateIoCq,
    AdminOpcode::Identify,
    AdminOpcode::Abort,
    AdminOpcode::SetFeatures,
    AdminOpcode::GetFeatures,
    AdminOpcode::AsyncEventRequest,
    AdminOpcode::FirmwareCommit,
    AdminOpcode::FirmwareDownload,
    AdminOpcode::DeviceSelfTest,
    AdminOpcode::FormatNvm,
    AdminOpcode::Sanitize,
];
/// NVM opcodes the I/O threads implement.
const IO_SUPPORTED: &[NvmOpcode] = &[
    NvmOpcode::Flush,
    NvmOpcode::Write,
    NvmOpcode::Read,
    NvmOpcode::WriteUncorrectable,
    NvmOpcode::Compare,
    NvmOpcode::WriteZeroes,
    NvmOpcode::DatasetManagement,
    NvmOpcode::Verify,
];

impl ControllerThread {
    // ----- Identify (§5.15) -----

    pub(super) fn identify(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let cns = sqe.dw[10] as u8;
        let nsid = sqe.nsid();
        let mut page = vec![0u8; 4096];
        match cns {
            cns::CONTROLLER => page.copy_from_slice(self.id_ctrl.as_bytes()),
            cns::NAMESPACE => {
                let ns = self.ns(nsid)?;
                page.copy_from_slice(identify_namespace(ns).as_bytes());
            }
            cns::ACTIVE_NS_LIST => {
                if nsid >= 0xFFFF_FFFE {
                    return Err(Status::INVALID_NAMESPACE.with_dnr(true));
                }
                let ids = (1..=self.sh.namespaces.len() as u32).filter(|&n| n > nsid).take(1024);
                for (i, n) in ids.enumerate() {
                    page[i * 4..i * 4 + 4].copy_from_slice(&n.to_le_bytes());
                }
            }
            cns::NS_DESCRIPTORS => {
                let ns = self.ns(nsid)?;
                // Type 1: IEEE EUI-64 (8 bytes); type 2: NGUID (16 bytes) (Figure 252).
                page[..4].copy_from_slice(&[1, 8, 0, 0]);
                page[4..12].copy_from_slice(&ns.eui64);
                page[12..16].copy_from_slice(&[2, 16, 0, 0]);
                page[16..32].copy_from_slice(&ns.nguid);
            }
            _ => return Err(Status::INVALID_FIELD.with_dnr(true)),
        }
        self.send_data(sqe, &page)?;
        Ok(0)
    }

    fn ns(&self, nsid: u32) -> Result<&super::namespace::Namespace, Status> {
        self.sh.namespaces.get((nsid as usize).wrapping_sub(1)).map(|n| n.as_ref()).ok_or(Status::INVALID_NAMESPACE.with_dnr(true))
    }

    // ----- Get Log Page (§5.14) -----

    pub(super) fn get_log_page(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let g = GetLogPage::from_cdws(sqe.dw[10], sqe.dw[11], sqe.dw[12], sqe.dw[13]);
        if !g.offset.is_multiple_of(4) {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let (data, event_type): (Vec<u8>, Option<u8>) = match g.lid {
            lid::ERROR_INFORMATION => {
                let log = lock(&self.sh.errors);
                let mut v = Vec::with_capacity(super::ERROR_LOG_ENTRIES * 64);
                for e in log.entries.iter().rev() {
                    v.extend_from_slice(e.as_bytes());
                }
                v.resize(super::ERROR_LOG_ENTRIES * 64, 0);
                (v, Some(async_event::TYPE_ERROR))
            }
            lid::SMART_HEALTH => (self.smart_log().raw.to_vec(), Some(async_event::TYPE_SMART)),
            lid::FIRMWARE_SLOT => (self.fw.slot_log(), None),
            lid::SELF_TEST => {
                let poh = self.power_on_hours();
                (self.selftest.log(Instant::now(), poh), None)
            }
            lid::COMMANDS_EFFECTS => (commands_effects(), None),
            lid::SANITIZE_STATUS => {
                let mut v = vec![0u8; 512];
                // SPROG: the fraction done (of 65536) while in progress, FFFFh otherwise.
                let sprog = match self.sanitize_run {
                    Some((start, end)) => {
                        let total = end.saturating_duration_since(start).as_secs_f64().max(1e-9);
                        (start.elapsed().as_secs_f64() / total * 65536.0).min(65535.0) as u16
                    }
                    None => 0xFFFF,
                };
                v[0..2].copy_from_slice(&sprog.to_le_bytes());
                // SSTAT: status in bits 2:0; Global Data Erased (bit 8) while no user data
                // was written since manufacture or the last sanitize.
                let gde = (!self.sh.written.load(Ordering::Relaxed) as u16) << 8;
                v[2..4].copy_from_slice(&(self.sanitize_status | gde).to_le_bytes());
                v[4..8].copy_from_slice(&self.sanitize_cdw10.to_le_bytes());
                (v, Some(async_event::TYPE_IO_COMMAND_SPECIFIC))
            }
            _ => return Err(Status::INVALID_LOG_PAGE.with_dnr(true)),
        };
        if g.offset > data.len() as u64 {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let len = g.dwords as usize * 4;
        if len > self.max_admin_transfer() {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let mut out = vec![0u8; len];
        let avail = &data[g.offset as usize..];
        let n = avail.len().min(len);
        out[..n].copy_from_slice(&avail[..n]);
        self.send_data(sqe, &out)?;
        if let Some(t) = event_type
            && !g.rae
        {
            // Reading the log page clears the event and unmasks its type (§5.2).
            self.masked &= !(1 << t);
            self.sh.wakers[0].force_wake();
        }
        Ok(0)
    }

    /// MDTS bounds every data transfer, admin ones included (QEMU checks it too); without
    /// MDTS the simulator still refuses admin transfers above 16 MiB.
    fn max_admin_transfer(&self) -> usize {
        if self.sh.cfg.mdts == 0 { 16 << 20 } else { 4096usize << self.sh.cfg.mdts }
    }

    pub(super) fn power_on_hours(&self) -> u64 {
        (self.powered_before + self.powered_since.elapsed()).as_secs() / 3600
    }

    // ----- Firmware Image Download (§5.11) and Device Self-test (§5.8); see firmware.rs
    // and selftest.rs -----

    pub(super) fn firmware_download(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let at = self.fw.check_download(sqe.dw[10] as u64 + 1, sqe.dw[11] as u64)?;
        if at.len() > self.max_admin_transfer() {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let data = self.receive_data(sqe, at.len())?;
        self.fw.store(at, &data);
        Ok(0)
    }

    pub(super) fn device_self_test(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let nsid = sqe.nsid();
        if nsid != 0 && nsid != u32::MAX {
            self.ns(nsid)?;
        }
        let durations = (self.sh.cfg.self_test_short, self.sh.cfg.self_test_extended);
        let poh = self.power_on_hours();
        self.selftest.command(sqe.dw[10] as u8 & 0xf, nsid, durations, Instant::now(), poh)?;
        Ok(0)
    }

    /// Composite temperature at or beyond a threshold (an under-temperature threshold of 0
    /// is never reached).
    fn temperature_alarm(&self) -> bool {
        TEMPERATURE_K >= self.feat.temp_over || TEMPERATURE_K <= self.feat.temp_under
    }

    fn smart_log(&self) -> SmartLog {
        let mut s = SmartLog::zeroed();
        let (mut reads, mut writes, mut r512, mut w512, mut media) = (0u128, 0u128, 0u128, 0u128, 0u128);
        for c in &self.sh.counters {
            reads += c.host_reads.load(Ordering::Relaxed) as u128;
            writes += c.host_writes.load(Ordering::Relaxed) as u128;
            r512 += c.read_512.load(Ordering::Relaxed) as u128;
            w512 += c.written_512.load(Ordering::Relaxed) as u128;
            media += c.media_errors.load(Ordering::Relaxed) as u128;
        }
        let mut warning = 0u8;
        if self.temperature_alarm() {
            warning |= 1 << 1;
        }
        s.set_critical_warning(warning);
        s.set_temperature_k(TEMPERATURE_K);
        s.set_available_spare(100, 10);
        s.set_data_units_read(data_units(r512));
        s.set_data_units_written(data_units(w512));
        s.set_host_read_commands(reads);
        s.set_host_write_commands(writes);
        s.set_power_cycles(self.power_cycles as u128);
        s.set_power_on_hours(self.power_on_hours() as u128);
        s.set_unsafe_shutdowns(self.unsafe_shutdowns as u128);
        s.set_media_errors(media);
        s.set_error_log_entries(lock(&self.sh.errors).count as u128);
        s
    }

    // ----- Features (§5.21) -----

    pub(super) fn set_features(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let f = sqe.dw[10] as u8;
        let save = sqe.dw[10] & (1 << 31) != 0;
        let v = sqe.dw[11];
        if save {
            return Err(Status::FEATURE_NOT_SAVEABLE.with_dnr(true));
        }
        let invalid = Status::INVALID_FIELD.with_dnr(true);
        match f {
            fid::ARBITRATION => {
                self.feat.arbitration = Arbitration::from_dword(v);
                for t in self.io_threads() {
                    self.send_io(t, IoMsg::Arbitration { ams: self.last_cc.ams(), arb: self.feat.arbitration });
                }
            }
            fid::POWER_MANAGEMENT => {
                if v & 0x1f > NPSS as u32 {
                    return Err(invalid);
                }
                self.feat.power_state = v & 0xff;
            }
            fid::TEMPERATURE_THRESHOLD => {
                let (th, sel, kind) = (v as u16, (v >> 16) & 0xf, (v >> 20) & 3);
                if sel != 0 || kind > 1 {
                    return Err(invalid);
                }
                if kind == 0 {
                    self.feat.temp_over = th;
                } else {
                    self.feat.temp_under = th;
                }
                // Reported only when Asynchronous Event Configuration enables temperature
                // warnings (bit 1, Figure 291).
                if self.temperature_alarm() && self.feat.async_event_config & (1 << 1) != 0 {
                    // SMART / Health status: temperature threshold (Figure 146).
                    self.sh.raise_event(async_event::TYPE_SMART, 0x01, lid::SMART_HEALTH);
                }
            }
            fid::ERROR_RECOVERY => self.feat.error_recovery = v,
            fid::VOLATILE_WRITE_CACHE => {
                if !self.sh.cfg.write_cache {
                    return Err(invalid);
                }
                for ns in &self.sh.namespaces {
                    ns.set_cache_enabled(v & 1 != 0);
                }
            }
            fid::NUMBER_OF_QUEUES => {
                if !self.sqs.is_empty() || !self.cqs.is_empty() {
                    return Err(Status::COMMAND_SEQUENCE_ERROR.with_dnr(true));
                }
                if v & 0xffff == 0xffff || v >> 16 == 0xffff {
                    return Err(invalid);
                }
                // "The value allocated shall not change between resets": the first request
                // after a reset decides, later ones report the same allocation.
                if !self.feat.queues_set {
                    let req = NumberOfQueues::from_dword(v);
                    let max = self.sh.cfg.max_io_queues as u32;
                    self.feat.queues = NumberOfQueues { sq: req.sq.min(max), cq: req.cq.min(max) };
                    self.feat.queues_set = true;
                }
                return Ok(self.feat.queues.to_dword());
            }
            fid::INTERRUPT_COALESCING => {
                self.feat.irq_coalescing = v & 0xffff;
                self.sh.msix.set_coalescing(v);
            }
            fid::INTERRUPT_VECTOR_CONFIG => {
                if v & 0xffff >= self.sh.cfg.interrupt_vectors as u32 {
                    return Err(invalid);
                }
                self.feat.irq_vector_config = v;
                self.sh.msix.set_coalescing_disable(v as u16, v & 1 << 16 != 0);
            }
            fid::WRITE_ATOMICITY => self.feat.write_atomicity = v & 1,
            fid::ASYNC_EVENT_CONFIG => self.feat.async_event_config = v,
            fid::TIMESTAMP => {
                let d = self.receive_data(sqe, 8)?;
                let ms = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], 0, 0]);
                self.feat.timestamp = Some((ms, Instant::now()));
            }
            _ => return Err(invalid),
        }
        Ok(0)
    }

    fn feature_value(&self, f: u8, feat: &Features) -> Option<u32> {
        Some(match f {
            fid::ARBITRATION => feat.arbitration.to_dword(),
            fid::POWER_MANAGEMENT => feat.power_state,
            fid::TEMPERATURE_THRESHOLD => feat.temp_over as u32,
            fid::ERROR_RECOVERY => feat.error_recovery,
            fid::VOLATILE_WRITE_CACHE if self.sh.cfg.write_cache => self.sh.namespaces[0].cache_enabled() as u32,
            fid::NUMBER_OF_QUEUES => feat.queues.to_dword(),
            fid::INTERRUPT_COALESCING => feat.irq_coalescing,
            fid::INTERRUPT_VECTOR_CONFIG => feat.irq_vector_config,
            fid::WRITE_ATOMICITY => feat.write_atomicity,
            fid::ASYNC_EVENT_CONFIG => feat.async_event_config,
            fid::TIMESTAMP => 0,
            _ => return None,
        })
    }

    pub(super) fn get_features(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let f = sqe.dw[10] as u8;
        let invalid = Status::INVALID_FIELD.with_dnr(true);
        let defaults = Features::defaults(self.sh.cfg.max_io_queues);
        let v = match Select::from_cdw10(sqe.dw[10]) {
            Select::Current => self.feature_value(f, &self.feat),
            Select::Default | Select::Saved => {
                if f == fid::VOLATILE_WRITE_CACHE && self.sh.cfg.write_cache {
                    Some(1)
                } else {
                    self.feature_value(f, &defaults)
                }
            }
            // Capabilities: changeable (bit 2), not saveable, not namespace specific.
            Select::Capabilities => self.feature_value(f, &defaults).map(|_| 1 << 2),
            Select::Reserved(_) => None,
        }
        .ok_or(invalid)?;
        if f == fid::TEMPERATURE_THRESHOLD && (sqe.dw[11] >> 20) & 3 == 1 {
            return Ok(self.feat.temp_under as u32);
        }
        if f == fid::TIMESTAMP && matches!(Select::from_cdw10(sqe.dw[10]), Select::Current) {
            let (base, at) = self.feat.timestamp.unwrap_or((0, self.powered_since));
            let ms = base + at.elapsed().as_millis() as u64;
            let mut d = ms.to_le_bytes();
            // Byte 6: Synch = 0, Timestamp Origin = 001b when set by Set Features.
            d[6] = if self.feat.timestamp.is_some() { 1 << 1 } else { 0 };
            d[7] = 0;
            self.send_data(sqe, &d)?;
        }
        Ok(v)
    }

    // ----- Format NVM (§5.23) and Sanitize (§5.24) -----

    fn pause_io(&self) -> Vec<Sender<()>> {
        let mut resumers = Vec::new();
        for t in self.io_threads() {
            let (rtx, rrx) = mpsc::channel();
            self.call_io(t, |ack| IoMsg::Pause { ack, resume: rrx });
            resumers.push(rtx);
        }
        resumers
    }

    pub(super) fn format(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        let c = sqe.dw[10];
        let (lbaf, pi, ses) = ((c & 0xf) as usize, (c >> 5) & 7, (c >> 9) & 7);
        let id = identify_namespace(&self.sh.namespaces[0]);
        if lbaf > id.nlbaf as usize || pi != 0 {
            return Err(Status::INVALID_FORMAT.with_dnr(true));
        }
        // User data erase and cryptographic erase (FNA bit 2): the simulator's media holds
        // no key, so both leave the blocks reading as deallocated.
        if ses > 2 {
            return Err(Status::INVALID_FIELD.with_dnr(true));
        }
        let targets: Vec<usize> = match sqe.nsid() {
            u32::MAX => (0..self.sh.namespaces.len()).collect(),
            n if n >= 1 && (n as usize) <= self.sh.namespaces.len() => vec![n as usize - 1],
            _ => return Err(Status::INVALID_NAMESPACE.with_dnr(true)),
        };
        let lbads = id.lbaf[lbaf].lbads as u32;
        let resume = self.pause_io();
        for i in targets {
            self.sh.namespaces[i].erase(lbads);
        }
        drop(resume);
        let poh = self.power_on_hours();
        self.selftest.abort_for_format(poh);
        Ok(0)
    }

    pub(super) fn sanitize(&mut self, sqe: &Sqe) -> Result<u32, Status> {
        if self.sanitize_run.is_some() {
            return Err(Status::SANITIZE_IN_PROGRESS);
        }
        match sqe.dw[10] & 7 {
            // Exit Failure Mode: nothing failed, nothing to do.
            1 => Ok(0),
            // Block Erase (the only action SANICAP advertises).
            2 => {
                let resume = self.pause_io();
                for ns in &self.sh.namespaces {
                    ns.erase(ns.lba_shift());
                }
                drop(resume);
                // The command completes at once and the operation goes on in the
                // background (§8.15): in progress (SSTAT 2) until `sanitize_time` passed,
                // across resets and power cycles, as a drive resumes it.
                self.sanitize_status = 2;
                let now = Instant::now();
                self.sanitize_run = Some((now, now + self.sh.cfg.sanitize_time));
                self.sh.written.store(false, Ordering::Relaxed);
                self.sanitize_cdw10 = sqe.dw[10];
                let poh = self.power_on_hours();
                self.selftest.abort(selftest::RESULT_ABORTED_BY_SANITIZE, poh);
                Ok(0)
            }
            _ => Err(Status::INVALID_FIELD.with_dnr(true)),
        }
    }

    /// Completes a sanitize operation whose time has come: SSTAT 1, and the Sanitize
    /// Operation Completed event (NVMe 1.4 Figure 146: I/O command specific status, log
    /// page 81h).
    pub(super) fn sanitize_progress(&mut self) -> usize {
        match self.sanitize_run {
            Some((_, end)) if Instant::now() >= end => {
                self.sanitize_run = None;
                self.sanitize_status = 1;
                self.sh.raise_event(async_event::TYPE_IO_COMMAND_SPECIFIC, async_event::SANITIZE_COMPLETED, lid::SANITIZE_STATUS);
                1
            }
            _ => 0,
        }
    }
}

/// Identify Controller data of the simulated controller.
pub(super) fn identify_controller(sh: &Shared) -> IdentifyController {
    let cfg = &sh.cfg;
    let mut id = IdentifyController::zeroed();
    // The PCI IDs of the function's configuration space (Figure 247).
    (id.vid, id.ssvid) = (super::pcie::VENDOR_ID, super::pcie::VENDOR_ID);
    set_ascii_field(&mut id.sn, &cfg.serial);
    set_ascii_field(&mut id.mn, &cfg.model);
    set_ascii_field(&mut id.fr, env!("CARGO_PKG_VERSION"));
    id.rab = 3;
    id.mdts = cfg.mdts;
    id.ver = sh.regs.vs.0;
    id.cntrltype = 1;
    id.oacs = oacs::FORMAT | oacs::FIRMWARE | oacs::SELF_TEST;
    id.acl = 3;
    id.aerl = AERL;
    id.frmw = Firmware::frmw();
    id.fwug = firmware::FWUG;
    // Extended Device Self-test Time in minutes, rounded up; one test at a time (DSTO).
    id.edstt = cfg.self_test_extended.as_secs().div_ceil(60).max(1) as u16;
    id.dsto = 1;
    // Commands Supported and Effects log; extended Get Log Page (offsets, 32-bit NUMD).
    id.lpa = 1 << 1 | 1 << 2;
    id.elpe = (super::ERROR_LOG_ENTRIES - 1) as u8;
    id.npss = NPSS;
    // Cryptographic erase is supported as a secure erase of Format NVM.
    id.fna = 1 << 2;
    id.wctemp = WCTEMP;
    id.cctemp = CCTEMP;
    id.sanicap = 1 << 1;
    id.sqes = 0x66;
    id.cqes = 0x44;
    id.maxcmd = 0;
    id.nn = sh.namespaces.len() as u32;
    // Save/Select (bit 4): Get Features select values; no feature is saveable.
    id.oncs = oncs::COMPARE | oncs::WRITE_UNCORRECTABLE | oncs::DSM | oncs::WRITE_ZEROES | oncs::FEATURES_SAVE_SELECT | oncs::TIMESTAMP | oncs::VERIFY;
    id.vwc = if cfg.write_cache { 0b111 } else { 0 };
    if cfg.sgl {
        id.sgls = sgls::SUPPORTED_NO_ALIGN | if cfg.sgl_bit_bucket { sgls::BIT_BUCKET } else { 0 };
    }
    let nqn = format!("nqn.2026-11.io.nvplan:sim:{}", cfg.serial);
    let n = nqn.len().min(255);
    id.subnqn[..n].copy_from_slice(&nqn.as_bytes()[..n]);
    // Power states as a client SSD has them: 0-2 operational (25 W, 12 W, 5 W; MP in
    // centiwatts), 3-4 non-operational (NOPS, §5.15.2.1 Figure 248) at 50 mW and 5 mW with
    // longer entry and exit latencies (µs). The simulator runs the same in each.
    let states = [(2500u16, 0u32, 0u32, false), (1200, 100, 100, false), (500, 1000, 1000, false), (500, 5000, 10_000, true), (50, 10_000, 45_000, true)];
    for (i, (mp, enlat, exlat, nops)) in states.into_iter().enumerate() {
        let d = &mut id.psd[i];
        d[0..2].copy_from_slice(&mp.to_le_bytes());
        // MXPS (bit 0 of byte 3): MP of non-operational states is in 0.0001 W units.
        d[3] = if nops { 0b11 } else { 0 };
        d[4..8].copy_from_slice(&enlat.to_le_bytes());
        d[8..12].copy_from_slice(&exlat.to_le_bytes());
        d[12] = i as u8;
        d[13] = i as u8;
        d[14] = i as u8;
        d[15] = i as u8;
    }
    id
}

/// Identify Namespace data of one namespace in its current format.
fn identify_namespace(ns: &super::namespace::Namespace) -> IdentifyNamespace {
    let mut id = IdentifyNamespace::zeroed();
    let nlba = ns.nlba();
    id.nsze = nlba;
    id.ncap = nlba;
    id.nuse = nlba;
    id.nlbaf = 1;
    id.lbaf[0] = LbaFormat::new(9);
    id.lbaf[1] = LbaFormat { rp: 0, ..LbaFormat::new(12) };
    id.flbas = if ns.lba_shift() == 12 { 1 } else { 0 };
    // Deallocated blocks read as zeroes; Write Zeroes may deallocate.
    id.dlfeat = 0x01 | 1 << 3;
    id.nvmcap[..8].copy_from_slice(&ns.capacity().to_le_bytes());
    id.nguid = ns.nguid;
    id.eui64 = ns.eui64;
    id
}

/// Commands Supported and Effects log (§5.14.1.5), built from the tables that gate
/// dispatch, so what is reported and what is accepted cannot disagree.
fn commands_effects() -> Vec<u8> {
    let mut v = vec![0u8; 4096];
    let mut set = |base: usize, op: u8, bits: u32| v[base + op as usize * 4..base + op as usize * 4 + 4].copy_from_slice(&bits.to_le_bytes());
    for &op in ADMIN_SUPPORTED {
        let bits = match op {
            // CSUPP | LBCC | NCC, and no concurrent commands to the namespace (CSE = 001b).
            AdminOpcode::FormatNvm | AdminOpcode::Sanitize => 1 | 1 << 1 | 1 << 2 | 1 << 16,
            // CSUPP | CCC: an activated image changes Identify Controller (FR).
            AdminOpcode::FirmwareCommit => 1 | 1 << 4,
            _ => 1,
        };
        set(0, op.code(), bits);
    }
    for &op in IO_SUPPORTED {
        let changes = matches!(op, NvmOpcode::Write | NvmOpcode::WriteZeroes | NvmOpcode::WriteUncorrectable | NvmOpcode::DatasetManagement);
        set(1024, op.code(), 1 | (changes as u32) << 1);
    }
    v
}
