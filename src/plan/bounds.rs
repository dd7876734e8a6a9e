//! How large a plan may be. A plan comes from version control, a colleague or a generator;
//! loading it must take bounded time and memory whatever it holds, so every dimension that
//! could grow without end has a limit, checked while the plan is read and expanded (never
//! after building the whole thing). Real plans stay far below each of them
//! (docs/plans.md, "Limits").

use super::error::PlanError;
use super::load::LoadedPlan;
use super::sweep;
use super::yaml::Seg;

/// Largest plan file, bytes (a plan's `plan.resolved.yaml`, one phase per run, must load
/// again: at the limits on runs below it is about 6 MiB).
pub const MAX_PLAN_BYTES: usize = 8 << 20;
/// Most nodes (scalars, lists, mappings) in the plan once its aliases are expanded.
pub const MAX_NODES: usize = 150_000;
/// Most nodes that aliases may add, all aliases together: an alias copies the node its
/// anchor names, so a few lines could otherwise describe billions of nodes.
pub const MAX_ALIAS_NODES: usize = 100_000;
/// Most bytes of text (scalars and keys) that aliases may add, all aliases together.
pub const MAX_ALIAS_BYTES: usize = 1 << 20;
/// Deepest nesting of lists and mappings (the document itself is level 1).
pub const MAX_DEPTH: usize = 64;
/// Most phases in a plan: as many as phase runs, for `plan.resolved.yaml` writes one phase
/// per run.
pub const MAX_PHASES: usize = MAX_PHASE_RUNS as usize;
/// Most ioworkers in one phase.
pub const MAX_WORKERS: usize = 1024;
/// Most phase runs in a plan: every phase's repeat x sweep combinations, added up.
pub const MAX_PHASE_RUNS: u64 = sweep::MAX_RUNS;
/// Most workers a plan runs, added up over its phase runs (each is a thread, a queue
/// pair and about 1.5 KB of configuration).
pub const MAX_WORKER_RUNS: u64 = 30_000;
/// Most nodes that repeats and sweeps add to a plan: every run of a phase after its first
/// is a copy of it (workers, events, metamode steps; not its sweep lists), so a phase of
/// many nodes run many times holds their product.
pub const MAX_RUN_NODES: u64 = 100_000;

/// `n` with thousands separated, for messages about limits.
pub(crate) fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
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
        errors.push(lp.key_error(
            &[],
            "phases",
            "phases",
            format!("{} phases; a plan holds at most {}: split it into several plans", count(phases.len() as u64), count(MAX_PHASES as u64)),
        ));
        return errors;
    }
    let (mut runs, mut worker_runs, mut run_nodes) = (0u64, 0u64, 0u64);
    for (i, ph) in phases.iter().enumerate() {
        let path = [key("phases"), Seg::Index(i)];
        if ph.ioworkers.len() > MAX_WORKERS {
            errors.push(lp.key_error(
                &path,
                "ioworkers",
                "ioworkers",
                format!(
                    "{} ioworkers in phase `{}`; a phase runs at most {}: spread them over several phases",
                    count(ph.ioworkers.len() as u64),
                    ph.name,
                    count(MAX_WORKERS as u64)
                ),
            ));
            return errors;
        }
        let n = sweep::count(ph.sweep.as_ref()).saturating_mul(u64::from(ph.repeat.unwrap_or(1)));
        let at = if ph.sweep.is_some() { "sweep" } else { "repeat" };
        runs = runs.saturating_add(n);
        if runs > MAX_PHASE_RUNS {
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
            return errors;
        }
        worker_runs = worker_runs.saturating_add(n.saturating_mul(ph.ioworkers.len() as u64));
        if worker_runs > MAX_WORKER_RUNS {
            errors.push(lp.key_error(
                &path,
                "ioworkers",
                "ioworkers",
                format!(
                    "this phase brings the plan to {} worker runs (ioworkers x runs, over all phases); a plan runs at most {}: split the plan into several plans",
                    count(worker_runs),
                    count(MAX_WORKER_RUNS)
                ),
            ));
            return errors;
        }
        // What each run copies: the phase as written, less its sweep lists.
        let nodes = |p: &[Seg]| lp.tree_at(p).map_or(0, |n| n.size()) as u64;
        let per_run = nodes(&path) - nodes(&[key("phases"), Seg::Index(i), key("sweep")]);
        run_nodes = run_nodes.saturating_add(n.saturating_sub(1).saturating_mul(per_run));
        if run_nodes > MAX_RUN_NODES {
            errors.push(lp.key_error(
                &path,
                at,
                at,
                format!(
                    "the runs of this phase add {} copies of its {} nodes, bringing what repeats and sweeps add to {}; they may add at most {} nodes to a plan: run fewer repeats or sweep values, or split the plan",
                    count(n - 1),
                    count(per_run),
                    count(run_nodes),
                    count(MAX_RUN_NODES)
                ),
            ));
            return errors;
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load_str;

    fn first_error(doc: &str) -> String {
        load_str("p.yaml", doc).map(|_| ()).unwrap_err()[0].to_string()
    }

    fn phase(i: usize, rest: &str) -> String {
        format!("  - {{name: p{i}, ioworkers: [{{time: 1}}]{rest}}}\n")
    }

    #[test]
    fn more_phases_than_the_limit_is_an_error_at_the_first_too_many() {
        let doc = format!("name: t\nphases:\n{}", (0..=MAX_PHASES).map(|i| phase(i, "")).collect::<String>());
        assert_eq!(first_error(&doc), "p.yaml:2:1: phases: 10,001 phases; a plan holds at most 10,000: split it into several plans");
        let doc = format!("name: t\nphases:\n{}", (0..MAX_PHASES).map(|i| phase(i, "")).collect::<String>());
        assert!(load_str("p.yaml", &doc).is_ok());
    }

    #[test]
    fn more_workers_in_a_phase_than_the_limit_is_an_error_at_the_first_too_many() {
        let w: String = (0..=MAX_WORKERS).map(|i| format!("      - {{name: w{i}, time: 1}}\n")).collect();
        let doc = format!("name: t\nphases:\n  - name: a\n    ioworkers:\n{w}");
        assert_eq!(first_error(&doc), "p.yaml:4:5: ioworkers: 1,025 ioworkers in phase `a`; a phase runs at most 1,024: spread them over several phases");
    }

    #[test]
    fn phase_runs_past_the_limit_are_an_error_at_the_phase_that_passes_it() {
        let doc = format!("name: t\nphases:\n{}{}", phase(0, ", repeat: 6000"), phase(1, ", repeat: 4001"));
        assert_eq!(
            first_error(&doc),
            "p.yaml:4:40: repeat: this phase brings the plan to 10,001 phase runs (repeat x sweep combinations); a plan runs at most 10,000: split the plan into several plans"
        );
        let doc =
            "name: t\nphases:\n  - name: a\n    sweep: {qdepth: [1, 2, 3], read_percentage: [0, 50]}\n    repeat: 4294967295\n    ioworkers: [{time: 1}]\n";
        assert_eq!(
            first_error(doc),
            "p.yaml:4:5: sweep: 25,769,803,770 runs of this phase (repeat x sweep combinations); a plan runs at most 10,000: split the phase"
        );
    }

    #[test]
    fn worker_runs_past_the_limit_are_an_error_at_the_phase_that_passes_it() {
        let w: String = (0..6).map(|i| format!("      - {{name: w{i}, time: 1}}\n")).collect();
        let doc = format!("name: t\nphases:\n  - name: a\n    repeat: 10000\n    ioworkers:\n{w}");
        assert_eq!(
            first_error(&doc),
            "p.yaml:5:5: ioworkers: this phase brings the plan to 60,000 worker runs (ioworkers x runs, over all phases); a plan runs at most 30,000: split the plan into several plans"
        );
    }

    #[test]
    fn a_large_phase_run_many_times_is_an_error_at_its_repeat() {
        let seq: Vec<String> = (0..1000).map(|i| format!("[{i}, 1, 2, 0]")).collect();
        let doc = format!("name: t\nphases:\n  - name: a\n    repeat: 40\n    ioworkers: [{{io_sequence: [{}]}}]\n", seq.join(", "));
        assert_eq!(
            first_error(&doc),
            "p.yaml:4:5: repeat: the runs of this phase add 39 copies of its 5,010 nodes, bringing what repeats and sweeps add to 195,390; they may add at most 100,000 nodes to a plan: run fewer repeats or sweep values, or split the plan"
        );
        assert!(load_str("p.yaml", &doc.replace("repeat: 40", "repeat: 20")).is_ok(), "19 copies add 95,190 nodes");
    }

    #[test]
    fn counts_are_written_with_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_111_111_111), "1,111,111,111");
        assert_eq!(count(u64::MAX), "18,446,744,073,709,551,615");
    }
}
