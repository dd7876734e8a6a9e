//! The SNIA PTS steps of a phase: `purge` (an admin command at the phase start),
//! `precondition` (a worker of sequential writes over the active range) and
//! `active_range` (the region of workers that give none). Each becomes what the phase
//! would hold written out, so the executor runs them like any event or worker.

use super::error::PlanError;
use super::limits::Limits;
use super::load::LoadedPlan;
use super::model::{AdminCommand, AdminSpec, DurationValue, EventSpec, IoSizeSpec, LbaValue, PhaseSpec, PurgeMethod, RandomSpec, WorkerSpec};
use super::units::to_lbas;
use super::yaml::Seg;

fn key(k: &str) -> Seg {
    Seg::Key(k.into())
}

fn join(a: &[Seg], b: &[Seg]) -> Vec<Seg> {
    [a, b].concat()
}

/// Name of the preconditioning worker.
pub const PRECONDITION: &str = "precondition";

/// Order in which `purge: auto` picks (SNIA PTS 2.0.2 §3 accepts any method that returns
/// the drive to its state fresh out of the box).
const AUTO_ORDER: [PurgeMethod; 5] =
    [PurgeMethod::SanitizeBlock, PurgeMethod::SanitizeCrypto, PurgeMethod::SanitizeOverwrite, PurgeMethod::FormatUserData, PurgeMethod::FormatCrypto];

/// The name of a method as plans write it.
pub fn purge_name(m: PurgeMethod) -> String {
    serde_json::to_value(m).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Errors of the steps that need no controller: amounts and percentages in range, and a
/// phase whose workers are written with `precondition` under another name.
pub(crate) fn check(lp: &LoadedPlan, ph: &PhaseSpec, path: &[Seg]) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let pct = |v: Option<f64>, p: Vec<Seg>, errors: &mut Vec<PlanError>| {
        if let Some(x) = v
            && !(x > 0.0 && x <= 100.0)
        {
            errors.push(lp.error(&p, "active_range", format!("{x} % of the namespace; give more than 0 and at most 100")));
        }
    };
    pct(ph.active_range, join(path, &[key("active_range")]), &mut errors);
    if let Some(pc) = &ph.precondition {
        let pp = join(path, &[key("precondition")]);
        pct(pc.active_range, join(&pp, &[key("active_range")]), &mut errors);
        if let Some(a) = pc.amount
            && !(a > 0.0 && a <= 100.0)
        {
            errors.push(lp.error(&join(&pp, &[key("amount")]), "amount", format!("{a} times the active range; give more than 0 and at most 100 (PTS: 2)")));
        }
        if ph.ioworkers.iter().any(|w| w.name.as_deref() == Some(PRECONDITION)) {
            errors.push(lp.error(&pp, "precondition", format!("the phase has a worker named `{PRECONDITION}` already; rename it")));
        }
        if ph.steady_state.is_some() {
            errors.push(lp.error(&pp, "precondition", "preconditioning in every round is no preconditioning: give it a phase of its own before the rounds"));
        }
    }
    if ph.purge.is_some() && ph.steady_state.is_some() {
        errors.push(lp.error(&join(path, &[key("purge")]), "purge", "a purge in every round undoes the rounds: give it a phase of its own before them"));
    }
    errors
}

/// The phase with its steps written out for `limits`: the purge as an event at 0, the
/// preconditioning worker appended, the active range as `region_end` of the workers
/// without a region.
pub(crate) fn written_out(lp: &LoadedPlan, limits: &Limits, ph: &PhaseSpec, path: &[Seg]) -> Result<PhaseSpec, Vec<PlanError>> {
    let mut out = ph.clone();
    let mut errors = Vec::new();
    if let Some(m) = ph.purge {
        match purge_event(limits, m) {
            Ok(e) => out.events.insert(0, e),
            Err(msg) => errors.push(lp.error(&join(path, &[key("purge")]), "purge", msg)),
        }
    }
    let range = |nsid: u32, pct: Option<f64>| -> Option<u64> {
        let &(nsze, _) = limits.namespaces.get(&nsid)?;
        Some(((nsze as f64 * pct.unwrap_or(100.0) / 100.0).floor() as u64).max(1))
    };
    if let Some(pct) = ph.active_range {
        for w in &mut out.ioworkers {
            if w.region_start.is_none()
                && w.region_end.is_none()
                && w.io_sequence.is_none()
                && let Some(end) = range(w.nsid.unwrap_or(1), Some(pct))
            {
                w.region_end = Some(super::model::OneOrMany::One(LbaValue::Lbas(end)));
            }
        }
    }
    if let Some(pc) = &ph.precondition {
        let nsid = pc.nsid.unwrap_or(1);
        let io_size = pc.io_size.clone().unwrap_or(LbaValue::Text("128KiB".into()));
        match (range(nsid, pc.active_range), limits.namespaces.get(&nsid)) {
            (Some(end), Some(&(_, lba))) => {
                // Whole writes only: the range rounded down to the write size, written
                // `amount` times over.
                let size = to_lbas(&io_size, lba).unwrap_or(1).max(1);
                let end = (end / size).max(1) * size;
                let count = ((end as f64 * pc.amount.unwrap_or(2.0)) / size as f64).ceil() as u64 * size;
                out.ioworkers.push(WorkerSpec {
                    name: Some(PRECONDITION.into()),
                    nsid: Some(nsid),
                    io_size: Some(IoSizeSpec::One(io_size)),
                    lba_random: Some(RandomSpec::Flag(false)),
                    read_percentage: Some(0),
                    qdepth: Some(pc.qdepth.unwrap_or(32)),
                    region_end: Some(super::model::OneOrMany::One(LbaValue::Lbas(end))),
                    lba_count: Some(LbaValue::Lbas(count)),
                    ..WorkerSpec::default()
                });
            }
            _ => {
                let have = limits.namespaces.keys().map(u32::to_string).collect::<Vec<_>>().join(", ");
                errors.push(lp.error(
                    &join(path, &[key("precondition")]),
                    "nsid",
                    format!("namespace {nsid} does not exist; the controller has namespace(s) {have}"),
                ));
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The admin command that purges by `m` on this controller.
fn purge_event(limits: &Limits, m: PurgeMethod) -> Result<EventSpec, String> {
    let chosen = match m {
        PurgeMethod::Auto => AUTO_ORDER
            .into_iter()
            .find(|x| limits.purge.contains(x))
            .ok_or("the controller offers neither Sanitize nor Format NVM (SANICAP, OACS): purge it by other means and leave purge out")?,
        m if limits.purge.contains(&m) => m,
        m => {
            let have = limits.purge.iter().map(|x| purge_name(*x)).collect::<Vec<_>>().join(", ");
            return Err(format!("the controller does not support {} (Identify SANICAP, OACS, FNA); use auto or one of: {have}", purge_name(m)));
        }
    };
    let mut a = AdminSpec {
        command: AdminCommand::Sanitize,
        nsid: None,
        cns: None,
        lid: None,
        len: None,
        fid: None,
        value: None,
        sel: None,
        lbaf: None,
        ses: None,
        action: None,
        ranges: None,
        opcode: None,
        cdw10: None,
        cdw11: None,
        cdw12: None,
        cdw13: None,
        cdw14: None,
        cdw15: None,
        data_len: None,
        expect_status: None,
    };
    match chosen {
        PurgeMethod::SanitizeBlock => a.action = Some(2),
        PurgeMethod::SanitizeOverwrite => a.action = Some(3),
        PurgeMethod::SanitizeCrypto => a.action = Some(4),
        PurgeMethod::FormatUserData | PurgeMethod::FormatCrypto => {
            // Namespace 1 (the one the PTS workers use), keeping its LBA format.
            a.command = AdminCommand::Format;
            a.nsid = Some(1);
            a.lbaf = Some(limits.lbaf.get(&1).copied().unwrap_or(0));
            a.ses = Some(if chosen == PurgeMethod::FormatCrypto { 2 } else { 1 });
        }
        PurgeMethod::Auto => unreachable!("auto was resolved above"),
    }
    Ok(EventSpec {
        at: DurationValue::Seconds(0.0),
        name: Some(format!("purge: {}", purge_name(chosen))),
        reset: None,
        power_cycle: None,
        pcie: None,
        admin: Some(a),
        allow_failure: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{expand, load_str};
    use crate::sim::SimConfig;

    fn limits() -> Limits {
        Limits::from_sim(&SimConfig::parse_options("ns=64MiB,lba=4096").unwrap())
    }

    #[test]
    fn purge_auto_picks_sanitize_block_erase_on_the_simulator_and_names_it() {
        let p = load_str("p.yaml", "name: t\nphases:\n  - {name: purge, purge: auto}\n  - {name: f, purge: format_crypto}\n").unwrap();
        let runs = expand(&p, &limits(), None, 1.0).unwrap();
        assert_eq!(runs[0].events[0].name, "purge: sanitize_block");
        let crate::plan::EventAction::Admin(a) = &runs[1].events[0].action else { panic!() };
        assert_eq!((a.command, a.ses, a.lbaf), (AdminCommand::Format, Some(2), Some(1)), "4096-byte LBAs are format 1, kept");
    }

    #[test]
    fn an_unsupported_purge_is_an_error_that_lists_the_supported_ones() {
        let p = load_str("p.yaml", "name: t\nphases:\n  - {name: purge, purge: sanitize_crypto}\n").unwrap();
        let e = expand(&p, &limits(), None, 1.0).unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "p.yaml:3:26: purge: the controller does not support sanitize_crypto (Identify SANICAP, OACS, FNA); use auto or one of: sanitize_block, format_user_data, format_crypto"
        );
    }

    #[test]
    fn preconditioning_writes_the_active_range_amount_times_in_whole_writes() {
        let doc = "name: t\nphases:\n  - name: pre\n    precondition: {amount: 2, active_range: 50}\n  - name: test\n    active_range: 25\n    ioworkers: [{time: 1}, {time: 1, region_end: 8}]\n";
        let runs = expand(&load_str("p.yaml", doc).unwrap(), &limits(), None, 1.0).unwrap();
        // 64 MiB of 4 KiB LBAs: 16384; half of it is 8192 LBAs, 256 writes of 32 LBAs.
        let w = &runs[0].workers[0];
        assert_eq!(w.name, "precondition");
        assert_eq!((w.config.region_end.clone(), w.config.lba_count, w.config.lba_random, w.config.read_percentage), (vec![8192], 16384, 0, 0));
        assert_eq!(runs[1].workers[0].config.region_end, vec![4096], "a quarter for the test");
        assert_eq!(runs[1].workers[1].config.region_end, vec![8], "a worker's own region stays");
    }

    #[test]
    fn steps_that_make_no_sense_are_errors_where_written() {
        let doc = "name: t\nphases:\n  - name: a\n    active_range: 0\n    purge: auto\n    precondition: {amount: -1}\n    ioworkers: [{time: 1}]\n    steady_state: {track: iops}\n";
        let e: Vec<String> = load_str("p.yaml", doc).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("p.yaml:4:19: active_range: 0 % of the namespace"), "{e:?}");
        assert!(e[1].starts_with("p.yaml:5:12: purge: a purge in every round undoes the rounds"), "{e:?}");
        assert!(e[2].starts_with("p.yaml:6:19: precondition: preconditioning in every round"), "{e:?}");
        assert!(e[3].starts_with("p.yaml:6:28: amount: -1 times the active range"), "{e:?}");
    }
}
