//! Several drives from one host: `nvplan run PLAN --target T1 --target T2 ...` runs the
//! plans on every drive at once, each drive in a process of its own (a drive that fails,
//! hangs or dies takes nothing else with it) with CPUs of its own, into a directory of its
//! own; the merged report over them is rewritten whenever a drive's run ends.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use crate::util::cpus::{host_cpus, parse_cpus};

/// A drive of a fleet run: its target and where its runs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drive {
    /// The `--target` text.
    pub target: String,
    /// Directory of its runs, under the fleet's output directory.
    pub dir: PathBuf,
    /// CPUs its workers are pinned to.
    pub cpus: Vec<usize>,
}

/// Directory name of each target: its text made file-name safe (`sim:serial=A` gives
/// `sim-serial-a`), a suffix `-2`, `-3` ... where two would be the same.
pub fn dir_names(targets: &[String]) -> Vec<String> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    targets
        .iter()
        .map(|t| {
            let base = crate::report::charts::slug(t);
            let mut name = base.clone();
            let mut k = 2;
            while !seen.insert(name.clone()) {
                name = format!("{base}-{k}");
                k += 1;
            }
            name
        })
        .collect()
}

/// Splits `cpus` into disjoint sets, `need[d]` CPUs for drive `d`, in order. Not enough
/// CPUs is an error that says how many are needed and what to do, unless `share` (the
/// drives then take the CPUs in turn, sharing them).
pub fn assign_cpus(need: &[usize], cpus: &[usize], share: bool) -> Result<Vec<Vec<usize>>, String> {
    let total: usize = need.iter().sum();
    if cpus.is_empty() {
        return Err("no CPU to run on".into());
    }
    if total > cpus.len() && !share {
        let each: Vec<String> = need.iter().map(usize::to_string).collect();
        return Err(format!(
            "{} drives need {total} CPUs for their workers ({}: a CPU per worker, none shared between drives) and this host has {}: run fewer drives at once, or give --share-cores to let drives share CPUs (their numbers then disturb each other)",
            need.len(),
            each.join(" + "),
            cpus.len()
        ));
    }
    let mut next = 0;
    Ok(need
        .iter()
        .map(|&n| {
            (0..n.max(1))
                .map(|_| {
                    let c = cpus[next % cpus.len()];
                    next += 1;
                    c
                })
                .collect()
        })
        .collect())
}

/// The targets of a list file: one a line; blank lines and `#` comments are skipped.
pub fn target_list(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(String::from).collect())
}

/// `--target` values with the selectors expanded: `list:FILE` is every target of the file
/// ([`target_list`]), `vfio:all` every NVMe function bound to vfio-pci (under the sysfs
/// root `root`); other targets stay as they are.
pub fn expand_targets(targets: &[String], root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for t in targets {
        if let Some(file) = t.strip_prefix("list:") {
            let listed = target_list(Path::new(file)).map_err(|e| format!("--target {t}: {e}"))?;
            if listed.is_empty() {
                return Err(format!("--target {t}: the list names no target (a target per line, e.g. vfio:0000:01:00.0 or sim:serial=A)"));
            }
            out.extend(listed);
        } else if t == "vfio:all" {
            let funcs = crate::devices::scan(root).map_err(|e| format!("--target {t}: {e}"))?;
            let on_vfio: Vec<String> = funcs.iter().filter(|f| f.driver.as_deref() == Some("vfio-pci")).map(|f| format!("vfio:{}", f.address)).collect();
            if on_vfio.is_empty() {
                return Err(format!("--target {t}: no NVMe function is bound to vfio-pci ({} found); move them with `nvplan bind ADDR...`", funcs.len()));
            }
            out.extend(on_vfio);
        } else {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// What a fleet run is asked to do.
#[derive(Debug)]
pub struct FleetRun<'a> {
    /// The nvplan executable each drive's process runs.
    pub exe: PathBuf,
    /// Plan files.
    pub plans: &'a [PathBuf],
    /// The drives.
    pub drives: Vec<Drive>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--time-scale`.
    pub time_scale: f64,
    /// Output directory: a directory per drive and the merged report.
    pub out: PathBuf,
}

/// How each drive's process ended.
#[derive(Debug)]
pub struct DriveEnd {
    /// The drive.
    pub drive: Drive,
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
}

fn args_of(f: &FleetRun<'_>, d: &Drive) -> Vec<String> {
    let mut a = vec!["run".to_string()];
    a.extend(f.plans.iter().map(|p| p.display().to_string()));
    a.extend(["--target".into(), d.target.clone(), "--out".into(), d.dir.display().to_string()]);
    a.extend(["--cpus".into(), d.cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(","), "--quiet".into()]);
    a.extend(["--time-scale".into(), f.time_scale.to_string()]);
    if let Some(s) = f.seed {
        a.extend(["--seed".into(), s.to_string()]);
    }
    a
}

/// Asks a drive's process to stop and write its report (SIGTERM).
fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is a
        // child we have not reaped yet, so the id cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Runs every drive in its own process (its output in `<drive dir>.log`), tells `log` of
/// each start and end, and rewrites the merged report in `out` each time a drive's run
/// ends. `stop` set (Ctrl-C, SIGTERM) asks every drive to stop and write its report.
/// Returns how each process ended, in drive order, the final merge and the problems met
/// writing it.
pub fn run(f: &FleetRun<'_>, stop: &AtomicBool, log: &mut dyn Write) -> Result<(Vec<DriveEnd>, super::Merged, Vec<String>), String> {
    // Found out now rather than after the drives ran.
    super::output::check_out(&f.out)?;
    std::fs::create_dir_all(&f.out).map_err(|e| format!("{}: {e}", f.out.display()))?;
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut ends: Vec<Option<DriveEnd>> = f.drives.iter().map(|_| None).collect();
    for (i, d) in f.drives.iter().enumerate() {
        let log_path = d.dir.with_extension("log");
        let file = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let err = file.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut cmd = Command::new(&f.exe);
        // A process group of its own: a Ctrl-C on the terminal reaches this process, which
        // passes it on once, rather than every drive at once.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        match cmd.args(args_of(f, d)).stdin(Stdio::null()).stdout(file).stderr(err).spawn() {
            Ok(child) => {
                let _ = writeln!(log, "drive {i} ({}): process {} -> {} (log {})", d.target, child.id(), d.dir.display(), log_path.display());
                running.push((i, child));
            }
            Err(e) => {
                let _ = writeln!(log, "drive {i} ({}): cannot start {}: {e}", d.target, f.exe.display());
                ends[i] = Some(DriveEnd { drive: d.clone(), code: None, signal: None });
            }
        }
    }
    let dirs: Vec<PathBuf> = f.drives.iter().map(|d| d.dir.clone()).collect();
    let mut stopping = false;
    while !running.is_empty() {
        if stop.load(Ordering::SeqCst) && !stopping {
            stopping = true;
            running.iter().for_each(|(_, c)| terminate(c));
        }
        let mut ended = false;
        let mut k = 0;
        while k < running.len() {
            match running[k].1.try_wait() {
                Ok(Some(status)) => {
                    let (i, _) = running.swap_remove(k);
                    use std::os::unix::process::ExitStatusExt;
                    let end = DriveEnd { drive: f.drives[i].clone(), code: status.code(), signal: status.signal() };
                    let how = match (end.code, end.signal) {
                        (Some(c), _) => format!("exit code {c}"),
                        (None, Some(s)) => format!("ended by signal {s}"),
                        _ => "ended".into(),
                    };
                    let _ = writeln!(log, "drive {i} ({}): {how}", end.drive.target);
                    ends[i] = Some(end);
                    ended = true;
                }
                Ok(None) => k += 1,
                Err(e) => {
                    let _ = writeln!(log, "drive {} ({}): cannot wait for its process: {e}", running[k].0, f.drives[running[k].0].target);
                    k += 1;
                }
            }
        }
        // The merged report stays current: a drive that hangs shows as incomplete while
        // the others are already there.
        if ended {
            let _ = super::merge_report(&dirs, &f.out);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (merged, problems) = super::merge_report(&dirs, &f.out)?;
    let ends = ends.into_iter().zip(&f.drives).map(|(e, d)| e.unwrap_or(DriveEnd { drive: d.clone(), code: None, signal: None })).collect();
    Ok((ends, merged, problems))
}

/// The drives of a fleet run on `targets` into `out`, each with the CPUs for `need[d]`
/// workers (see [`assign_cpus`]).
pub fn drives(targets: &[String], need: &[usize], out: &Path, share: bool) -> Result<Vec<Drive>, String> {
    let cpus = assign_cpus(need, &host_cpus(), share)?;
    Ok(dir_names(targets).into_iter().zip(targets).zip(cpus).map(|((name, t), cpus)| Drive { target: t.clone(), dir: out.join(name), cpus }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_get_disjoint_cpus_and_too_few_are_refused_unless_shared() {
        assert_eq!(assign_cpus(&[2, 1, 1], &[0, 1, 2, 3], false).unwrap(), vec![vec![0, 1], vec![2], vec![3]]);
        let e = assign_cpus(&[1, 1, 1, 1], &[0, 1], false).unwrap_err();
        assert!(
            e.starts_with("4 drives need 4 CPUs for their workers (1 + 1 + 1 + 1: a CPU per worker")
                && e.contains("this host has 2")
                && e.contains("--share-cores"),
            "{e}"
        );
        assert_eq!(assign_cpus(&[1, 1, 1, 1], &[4, 5], true).unwrap(), vec![vec![4], vec![5], vec![4], vec![5]]);
    }

    #[test]
    fn drive_directories_are_file_name_safe_and_distinct() {
        let t: Vec<String> = ["sim:serial=A", "sim", "sim", "vfio:0000:01:00.0"].map(String::from).to_vec();
        assert_eq!(dir_names(&t), ["sim-serial-a", "sim", "sim-2", "vfio-0000-01-00-0"]);
    }
}
