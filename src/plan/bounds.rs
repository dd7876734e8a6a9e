//! How large a plan may be. A plan comes from version control, a colleague or a generator;
//! loading it must take bounded time and memory whatever it holds, so every dimension that
//! could grow without end has a limit, checked while the plan is read and expanded (never
//! after building the whole thing). Real plans stay far below each of them
//! (docs/plans.md, "Limits").

use super::error::PlanError;
use super::load::LoadedPlan;
use super::sweep;
use super::yaml::Seg;

/// Largest plan file, bytes.
pub const MAX_PLAN_BYTES: usize = 8 << 20;
/// Most nodes (scalars, lists, mappings) in the plan once its aliases are expanded.
pub const MAX_NODES: usize = 500_000;
/// Most nodes that aliases may add, all aliases together: an alias copies the node its
/// anchor names, so a few lines could otherwise describe billions of nodes.
pub const MAX_ALIAS_NODES: usize = 100_000;
/// Most bytes of text (scalars and keys) that aliases may add, all aliases together.
pub const MAX_ALIAS_BYTES: usize = 1 << 20;
/// Deepest nesting of lists and mappings (the document itself is level 1).
pub const MAX_DEPTH: usize = 64;
/// Most phases in a plan.
pub const MAX_PHASES: usize = 10_000;
/// Most ioworkers in one phase.
pub const MAX_WORKERS: usize = 1024;
/// Most phase runs in a plan: every phase's repeat x sweep combinations, added up.
pub const MAX_PHASE_RUNS: u64 = sweep::MAX_RUNS;
/// Most workers a plan runs, added up over its phase runs.
pub const MAX_WORKER_RUNS: u64 = 1_000_000;

/// `n` with thousands separated, for messages about limits.
pub(crate) fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn key(k: &str) -> Seg {
    Seg::Key(k.into())
}

/// The limits on the plan's shape: phases, workers, and the runs its sweeps and repeats
/// expand to, counted without expanding them. Later checks unroll sweeps; they may only
/// run once this finds nothing.
pub(crate) fn check(lp: &LoadedPlan) -> Vec<PlanError> {
    let mut errors = Vec::new();
    let phases = &lp.plan.phases;
    if phases.len() > MAX_PHASES {
        errors.push(lp.error(
            &[key("phases"), Seg::Index(MAX_PHASES)],
            "phases",
            format!("{} phases; a plan holds at most {}: split it into several plans", count(phases.len() as u64), count(MAX_PHASES as u64)),
        ));
        return errors;
    }
    let (mut runs, mut worker_runs) = (0u64, 0u64);
    for (i, ph) in phases.iter().enumerate() {
        let path = [key("phases"), Seg::Index(i)];
        if ph.ioworkers.len() > MAX_WORKERS {
            errors.push(lp.error(
                &[key("phases"), Seg::Index(i), key("ioworkers"), Seg::Index(MAX_WORKERS)],
                "ioworkers",
                format!(
                    "{} ioworkers in phase `{}`; a phase runs at most {}: spread them over several phases",
                    count(ph.ioworkers.len() as u64),
                    ph.name,
                    count(MAX_WORKERS as u64)
                ),
            ));
            continue;
        }
        let n = sweep::count(ph.sweep.as_ref()).saturating_mul(u64::from(ph.repeat.unwrap_or(1)));
        let at = if ph.sweep.is_some() { "sweep" } else { "repeat" };
        let before = runs;
        runs = runs.saturating_add(n);
        if runs > MAX_PHASE_RUNS && before <= MAX_PHASE_RUNS {
            let message = if n > MAX_PHASE_RUNS {
                format!("{} runs of this phase (repeat x sweep combinations); a plan runs at most {}: split the phase", count(n), count(MAX_PHASE_RUNS))
            } else {
                format!(
                    "this phase brings the plan to {} phase runs (repeat x sweep combinations); a plan runs at most {}: split the plan into several plans",
                    count(runs),
                    count(MAX_PHASE_RUNS)
                )
            };
            errors.push(lp.key_error(&path, at, at, message));
        }
        let before = worker_runs;
        worker_runs = worker_runs.saturating_add(n.saturating_mul(ph.ioworkers.len() as u64));
        if worker_runs > MAX_WORKER_RUNS && before <= MAX_WORKER_RUNS && runs <= MAX_PHASE_RUNS {
            errors.push(lp.key_error(
                &path,
                "ioworkers",
                "ioworkers",
                format!(
                    "this phase brings the plan to {} worker runs (ioworkers x repeat x sweep combinations, over all phases); a plan runs at most {}: split the plan into several plans",
                    count(worker_runs),
                    count(MAX_WORKER_RUNS)
                ),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_written_with_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_111_111_111), "1,111,111,111");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }
}
