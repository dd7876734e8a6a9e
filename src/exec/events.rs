//! Timed events: resets, power cycles and admin commands, performed on the controller
//! while the workers run.

use std::time::{Duration, Instant};

use crate::driver::{Controller, DataPtr, DriverError, QpairOptions};
use crate::ioworker;
use crate::nvme::cmd;
use crate::nvme::features::Select;
use crate::nvme::{Cqe, Sqe};
use crate::plan::model::{AdminCommand, AdminSpec, ResetSpec};
use crate::plan::units::parse_status;
use crate::plan::{EventAction, EventRun, PcieAction};
use crate::transport::{ResetKind, pci};

/// What performing an event gave.
#[derive(Debug, Default)]
pub struct Done {
    /// It did what it was meant to (and the status was the expected one).
    pub ok: bool,
    /// Status of the command, `SCT/SC`.
    pub status: Option<String>,
    /// Completion dword 0.
    pub cdw0: Option<u32>,
    /// What went wrong.
    pub error: Option<String>,
    /// What it measured or read back, added to the event's description in reports.
    pub detail: Option<String>,
    /// How long it took.
    pub took: Duration,
}

/// The kind of an event and a short description of it.
pub fn describe(e: &EventRun) -> (&'static str, String) {
    match &e.action {
        EventAction::Reset(r) => ("reset", serde_json::to_value(r).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()),
        EventAction::PowerCycle { dirty, off } => ("power_cycle", format!("{}, off {} ms", if *dirty { "dirty" } else { "clean" }, off.as_millis())),
        EventAction::Pcie(PcieAction::PowerState { state: 3, hold }) => ("pcie", format!("D3hot for {} ms, then D0", hold.as_millis())),
        EventAction::Pcie(PcieAction::PowerState { state, .. }) => ("pcie", format!("D{state}")),
        EventAction::Pcie(PcieAction::Aspm(c)) => ("pcie", format!("ASPM {}", pci::aspm_name(*c))),
        EventAction::Admin(a) => ("admin", admin_detail(a)),
    }
}

fn admin_detail(a: &AdminSpec) -> String {
    let mut s = serde_json::to_value(a.command).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    let fields: [(&str, Option<u64>); 9] = [
        ("nsid", a.nsid.map(u64::from)),
        ("cns", a.cns.map(u64::from)),
        ("lid", a.lid.map(u64::from)),
        ("fid", a.fid.map(u64::from)),
        ("value", a.value.map(u64::from)),
        ("sel", a.sel.map(u64::from)),
        ("lbaf", a.lbaf.map(u64::from)),
        ("action", a.action.map(u64::from)),
        ("opcode", a.opcode.map(u64::from)),
    ];
    for (k, v) in fields {
        if let Some(v) = v {
            s += &format!(" {k}={v:#x}");
        }
    }
    s
}

/// Performs one event.
pub fn perform(ctrl: &Controller, e: &EventRun) -> Done {
    let t = Instant::now();
    let mut d = match &e.action {
        EventAction::Reset(r) => outcome(match r {
            ResetSpec::Controller => ctrl.reset(),
            ResetSpec::Subsystem => ctrl.subsystem_reset(),
            ResetSpec::Pcie | ResetSpec::Flr => ctrl.pcie_reset(ResetKind::Function),
            ResetSpec::PcieHot => ctrl.pcie_reset(ResetKind::Hot),
            ResetSpec::LinkDisable => ctrl.pcie_reset(ResetKind::LinkDisable),
        }),
        EventAction::PowerCycle { dirty, off } => match power_cycle(ctrl, *dirty, *off) {
            Ok(detail) => Done { ok: true, detail: Some(detail), ..Done::default() },
            Err(e) => Done { ok: false, error: Some(e.to_string()), ..Done::default() },
        },
        EventAction::Pcie(p) => match pcie(ctrl, *p) {
            Ok(detail) => Done { ok: true, detail: Some(detail), ..Done::default() },
            Err((e, detail)) => Done { ok: false, error: Some(e), detail, ..Done::default() },
        },
        EventAction::Admin(a) => admin(ctrl, a),
    };
    d.took = t.elapsed();
    d
}

fn outcome(r: Result<(), DriverError>) -> Done {
    match r {
        Ok(()) => Done { ok: true, ..Done::default() },
        Err(e) => Done { ok: false, error: Some(e.to_string()), ..Done::default() },
    }
}

/// Power off through the target's switch (after a shutdown and its write-back when clean),
/// wait, power on, controller up; says how long each part took.
fn power_cycle(ctrl: &Controller, dirty: bool, off: Duration) -> Result<String, DriverError> {
    if !dirty {
        // A normal shutdown writes the volatile cache back (NVMe 2.0 §3.6.3).
        ioworker::with_flush(ctrl, None, || ctrl.shutdown())?;
    }
    let switch = ctrl.power_switch().map_or_else(|| "no switch".to_string(), |s| s.describe());
    let t = ctrl.power_cycle(dirty, off)?;
    Ok(format!(
        "{switch}: off and on {:.0} ms, function back {:.0} ms after on, controller ready {:.0} ms later ({:.0} ms from power on to ready)",
        ms(t.switched),
        ms(t.function_back),
        ms(t.controller_ready),
        ms(t.on_to_ready())
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A D-state or ASPM change through configuration space, with the values read back. D3hot
/// stops the controller (a function in D3hot answers configuration accesses only, PCI PM
/// 1.2 §5.3.1.4), so it is a reset for the workers: they see their queues gone, and the
/// controller is brought up again after D0.
fn pcie(ctrl: &Controller, p: PcieAction) -> Result<String, (String, Option<String>)> {
    let t = ctrl.transport().clone();
    let t = t.as_ref();
    let fail = |e: &dyn std::fmt::Display| (e.to_string(), None);
    match p {
        PcieAction::Aspm(c) => {
            let before = pci::aspm(t).map_err(|e| fail(&e))?;
            let lnkctl = pci::set_aspm(t, c).map_err(|e| fail(&e))?;
            let detail = format!("ASPM {} -> {}: Link Control reads {lnkctl:#06x}", pci::aspm_name(before), pci::aspm_name(lnkctl as u8));
            if lnkctl & pci::LNKCTL_ASPM_MASK != c as u16 {
                return Err((format!("ASPM Control did not take {c} (Link Control reads {lnkctl:#06x})"), Some(detail)));
            }
            Ok(detail)
        }
        PcieAction::PowerState { state, hold } => {
            if state != 3 {
                let pmcsr = pci::set_power_state(t, state).map_err(|e| fail(&e))?;
                return if pmcsr & pci::PMCSR_STATE_MASK == state as u16 {
                    Ok(format!("PMCSR reads {pmcsr:#06x}"))
                } else {
                    Err((format!("PowerState did not take D{state}: PMCSR reads {pmcsr:#06x}"), None))
                };
            }
            ctrl.begin_reset();
            let in_d3 = pci::set_power_state(t, 3).map_err(|e| fail(&e))?;
            std::thread::sleep(hold);
            let in_d0 = pci::set_power_state(t, 0).map_err(|e| fail(&e))?;
            let detail = format!("PMCSR reads {in_d3:#06x} in D3hot, {in_d0:#06x} back in D0");
            if in_d3 & pci::PMCSR_STATE_MASK != 3 || in_d0 & pci::PMCSR_STATE_MASK != 0 {
                let _ = ctrl.reset();
                return Err(("PowerState did not follow D0 -> D3hot -> D0".into(), Some(detail)));
            }
            ctrl.reset().map_err(|e| (format!("the controller did not come back after D3hot: {e}"), Some(detail.clone())))?;
            Ok(detail)
        }
    }
}

/// The expected status of an admin event (default success).
fn expected_status(a: &AdminSpec) -> Result<(u8, u8), String> {
    a.expect_status.as_deref().map_or(Ok((0, 0)), parse_status)
}

fn admin(ctrl: &Controller, a: &AdminSpec) -> Done {
    let expect = match expected_status(a) {
        Ok(s) => s,
        Err(e) => return Done { error: Some(e), ..Done::default() },
    };
    let r = match a.command {
        AdminCommand::Flush | AdminCommand::Dsm => io_command(ctrl, a),
        _ => admin_command(ctrl, a),
    };
    match r {
        Ok(cqe) => {
            let st = cqe.status();
            let ok = (st.sct(), st.sc()) == expect;
            let error = (!ok).then(|| format!("completed with {st}, expected {:02x}/{:02x}", expect.0, expect.1));
            Done { ok, status: Some(st.code_text()), cdw0: Some(cqe.cdw0()), error, detail: None, took: Duration::ZERO }
        }
        Err(e) => Done { error: Some(e), ..Done::default() },
    }
}

/// An admin command: its completion whatever the status.
fn admin_command(ctrl: &Controller, a: &AdminSpec) -> Result<Cqe, String> {
    let nsid = a.nsid.unwrap_or(0);
    let timeout = ctrl.options().command_timeout;
    let long = timeout.max(Duration::from_secs(60));
    let (sqe, data_len, erases, wait) = match a.command {
        AdminCommand::Identify => (cmd::identify(a.cns.unwrap_or(1), nsid), 4096, false, timeout),
        AdminCommand::GetLogPage => {
            let len = a.len.unwrap_or(512) as usize;
            (cmd::get_log_page(a.lid.unwrap_or(0), if nsid == 0 { u32::MAX } else { nsid }, len, false, 0), len, false, timeout)
        }
        AdminCommand::GetFeatures => (cmd::get_features(a.fid.unwrap_or(0), Select::from_cdw10((a.sel.unwrap_or(0) as u32) << 8)), 0, false, timeout),
        AdminCommand::SetFeatures => (cmd::set_features(a.fid.unwrap_or(0), a.value.unwrap_or(0), false), 0, false, timeout),
        AdminCommand::Format => (cmd::format_nvm(if nsid == 0 { u32::MAX } else { nsid }, a.lbaf.unwrap_or(0), a.ses.unwrap_or(0)), 0, true, long),
        AdminCommand::Sanitize => (cmd::sanitize(a.action.unwrap_or(2)), 0, true, long),
        AdminCommand::Raw => {
            let mut s = Sqe::new(a.opcode.unwrap_or(0), nsid);
            for (i, v) in [a.cdw10, a.cdw11, a.cdw12, a.cdw13, a.cdw14, a.cdw15].into_iter().enumerate() {
                s.dw[10 + i] = v.unwrap_or(0);
            }
            // Format NVM and Sanitize erase user data.
            let erases = matches!(a.opcode, Some(0x80 | 0x84));
            (s, a.data_len.unwrap_or(0) as usize, erases, if erases { long } else { timeout })
        }
        AdminCommand::Flush | AdminCommand::Dsm => return io_command(ctrl, a),
    };
    let buf = if data_len > 0 { Some(ctrl.dma(data_len.next_multiple_of(4096)).map_err(|e| e.to_string())?) } else { None };
    let data = buf.as_ref().map_or(DataPtr::None, DataPtr::Prp);
    let r = ctrl.admin_raw(&sqe, data, wait).map_err(|e| e.to_string());
    if erases {
        ctrl.data_erased();
    }
    r
}

/// Flush and Dataset Management go through an I/O queue pair of their own.
fn io_command(ctrl: &Controller, a: &AdminSpec) -> Result<Cqe, String> {
    let mut q = ctrl
        .create_qpair(QpairOptions { entries: 2, prio: 0, ..Default::default() })
        .map_err(|e| format!("cannot create a queue pair for the command: {e}"))?;
    let run = |q: &mut crate::driver::QPair, sqe: &Sqe, data: DataPtr<'_>| q.execute(sqe, data).map(|c| c.cqe).map_err(|e| e.to_string());
    match a.command {
        AdminCommand::Flush => {
            let nsid = a.nsid.unwrap_or(u32::MAX);
            let scope = (nsid != u32::MAX).then_some(nsid);
            // Only a successful flush makes data durable: a failing status is an Err here.
            let r = ioworker::with_flush(ctrl, scope, || match run(&mut q, &cmd::flush(nsid), DataPtr::None) {
                Ok(c) if c.status().is_success() => Ok(c),
                Ok(c) => Err(Ok(c)),
                Err(e) => Err(Err(e)),
            });
            r.or_else(|e| e)
        }
        _ => {
            let nsid = a.nsid.unwrap_or(1);
            let ranges = a.ranges.clone().unwrap_or_default();
            let buf = ctrl.dma(4096).map_err(|e| e.to_string())?;
            for (i, &(slba, nlb)) in ranges.iter().enumerate() {
                buf.write(i * 16, &cmd::dsm_range(slba, nlb));
            }
            let sqe = cmd::dsm_deallocate(nsid, ranges.len() as u32);
            ioworker::deallocating(
                ctrl,
                nsid,
                &ranges,
                Duration::from_secs(5),
                || run(&mut q, &sqe, DataPtr::Prp(&buf)),
                |r| r.as_ref().is_ok_and(|c| c.status().is_success()),
            )?
        }
    }
}
