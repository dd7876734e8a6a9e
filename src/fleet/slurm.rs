//! Campaigns on Slurm: drives are generic resources (GRES `nvme`, one `File=` per drive),
//! a job array runs the plan once per drive, a dependent job merges the results.
//!
//! - [`Campaign::scripts`] writes the batch scripts (`nvplan slurm`).
//! - [`resolve_target`] is the task side: `--target slurm` (or `slurm:LIST`) becomes the
//!   target of the drive Slurm allocated to the task. Slurm exports no variable for a GRES
//!   other than GPUs, so the index comes from `scontrol show job -d` (`GRES=nvme:1(IDX:2)`),
//!   and the node's drive list (a target per line, in gres.conf's `File=` order) names the
//!   drive at that index.

use std::path::{Path, PathBuf};

/// The drive list used when `--target slurm` names none.
pub const DEFAULT_DRIVE_LIST: &str = "/etc/nvplan/drives";

/// Whether `text` asks for the drive of the Slurm allocation.
pub fn is_slurm(text: &str) -> bool {
    text == "slurm" || text.starts_with("slurm:")
}

/// The GRES indexes of `gres` (e.g. `nvme`) allocated to a job, from the output of
/// `scontrol show job -d`: `GRES=nvme:1(IDX:2)`, `GRES=gpu:1(IDX:0),nvme:sim:2(IDX:0-1)`.
pub fn gres_indexes(scontrol: &str, gres: &str) -> Result<Vec<usize>, String> {
    for line in scontrol.lines() {
        let Some(at) = line.find("GRES=") else { continue };
        // Only the per-node detail line has indexes; the job's request line has none.
        let spec = &line[at + 5..];
        let spec = spec.split_whitespace().next().unwrap_or("");
        let mut rest = spec;
        while let Some(pos) = rest.find(&format!("{gres}:")) {
            let preceded_ok = pos == 0 || rest[..pos].ends_with(',');
            let tail = &rest[pos..];
            let Some(open) = tail.find("(IDX:") else { break };
            let close = tail[open..].find(')').map(|c| open + c).ok_or_else(|| format!("scontrol: `{spec}`: an index list without its `)`"))?;
            if preceded_ok {
                let list = &tail[open + 5..close];
                if list.trim().is_empty() {
                    return Err(format!(
                        "Slurm allocated no {gres} to this job (`{spec}`): with the default resource selection a job gets the whole node but no GRES index; set SelectType=select/cons_tres and SelectTypeParameters=CR_Core in slurm.conf"
                    ));
                }
                return super::local::parse_cpus(list).map_err(|_| format!("scontrol: `{spec}`: `{list}` is not an index list"));
            }
            rest = &tail[close..];
        }
    }
    Err(format!("scontrol shows no {gres} allocated to this job: submit it with --gres={gres}:1 (`nvplan slurm` writes such a script)"))
}

/// The targets of a drive list (see [`super::local::target_list`]), in the order of
/// gres.conf's nvme `File=` entries.
pub fn drive_list(path: &Path) -> Result<Vec<String>, String> {
    super::local::target_list(path)
        .map_err(|e| format!("{e} (the drive list: a target per line, e.g. vfio:0000:01:00.0, in the order of the nvme File= entries of gres.conf)"))
}

/// The target of GRES index `index` in the drive list at `path`.
pub fn target_at(path: &Path, index: usize) -> Result<String, String> {
    let drives = drive_list(path)?;
    drives.get(index).cloned().ok_or_else(|| {
        format!(
            "{}: lists {} drives, but Slurm allocated nvme index {index}: list a target for every nvme File= of gres.conf, in the same order",
            path.display(),
            drives.len()
        )
    })
}

/// The CPUs allocated to a job on its node, from `scontrol show job -d`
/// (`Nodes=n1 CPU_IDs=0-1 ...`); `None` when it does not say.
pub fn cpu_ids(scontrol: &str) -> Option<Vec<usize>> {
    let at = scontrol.find("CPU_IDs=")?;
    let list = scontrol[at + 8..].split_whitespace().next()?;
    super::local::parse_cpus(list).ok()
}

/// What Slurm gave a task: the drive's target and the CPUs its workers run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The target of the allocated drive.
    pub target: String,
    /// The allocated CPUs this process may run on (all it may run on when Slurm's CPU
    /// numbers are not this host's).
    pub cpus: Vec<usize>,
}

/// `slurm` or `slurm:LIST` as the drive allocated to this Slurm job: its index from
/// `scontrol show job -d $SLURM_JOB_ID`, its target from LIST (default `$NVPLAN_DRIVES`,
/// else [`DEFAULT_DRIVE_LIST`]). `None` for any other target text.
pub fn allocation(text: &str) -> Result<Option<Allocation>, String> {
    if !is_slurm(text) {
        return Ok(None);
    }
    let list = match text.strip_prefix("slurm:") {
        Some(l) if !l.is_empty() => PathBuf::from(l),
        _ => std::env::var_os("NVPLAN_DRIVES").map_or_else(|| PathBuf::from(DEFAULT_DRIVE_LIST), PathBuf::from),
    };
    let job = std::env::var("SLURM_JOB_ID").map_err(|_| {
        format!("--target {text}: not inside a Slurm job (SLURM_JOB_ID is not set); submit the run with sbatch, e.g. the scripts `nvplan slurm` writes")
    })?;
    let out = std::process::Command::new("scontrol")
        .args(["show", "job", "-d", &job])
        .output()
        .map_err(|e| format!("--target {text}: cannot run scontrol (is Slurm's client on this node's PATH?): {e}"))?;
    if !out.status.success() {
        return Err(format!("--target {text}: scontrol show job -d {job}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let shown = String::from_utf8_lossy(&out.stdout);
    let idx = gres_indexes(&shown, "nvme").map_err(|e| format!("--target {text}: job {job}: {e}"))?;
    let target = target_at(&list, idx[0]).map_err(|e| format!("--target {text}: {e}"))?;
    // Without Slurm's affinity plugin every task may run anywhere: pin to what it was given.
    let allowed = super::local::host_cpus();
    let given: Vec<usize> = cpu_ids(&shown).unwrap_or_default().into_iter().filter(|c| allowed.contains(c)).collect();
    Ok(Some(Allocation { target, cpus: if given.is_empty() { allowed } else { given } }))
}

/// The target text of [`allocation`] for `slurm` targets; any other text as it is.
pub fn resolve_target(text: &str) -> Result<String, String> {
    Ok(allocation(text)?.map_or_else(|| text.to_string(), |a| a.target))
}

/// A campaign: the plans on `drives` drives as a Slurm job array, then a merge.
#[derive(Clone, Debug)]
pub struct Campaign {
    /// Plan files (absolute: the tasks run elsewhere).
    pub plans: Vec<PathBuf>,
    /// Array tasks: one per drive.
    pub drives: usize,
    /// Shared directory of the results: `task-N/` per task, `merged/`, `logs/`.
    pub results: PathBuf,
    /// The nvplan executable on the nodes.
    pub nvplan: PathBuf,
    /// The drive list on the nodes (`None`: `$NVPLAN_DRIVES` or the default).
    pub drive_list: Option<PathBuf>,
    /// CPUs per task: the most workers a phase run of the plans has.
    pub cpus_per_task: usize,
    /// Tasks running at once (`%M` of `--array`), if limited.
    pub max_parallel: Option<usize>,
    /// Partition.
    pub partition: Option<String>,
    /// Time limit of a task (`--time`).
    pub time_limit: Option<String>,
    /// `--time-scale` of the runs.
    pub time_scale: f64,
    /// `--seed` of the runs.
    pub seed: Option<u64>,
    /// Job name.
    pub name: String,
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

impl Campaign {
    /// The files of the campaign, `(name, text)`: `campaign.sbatch` (the array: a task per
    /// drive), `merge.sbatch` (the merge, every task's directory named so that a task that
    /// left nothing is reported missing) and `submit.sh` (submits both, the merge after the
    /// array whatever its tasks' ends; `submit.sh --wait` waits for the merge and exits
    /// with its code).
    pub fn scripts(&self) -> Vec<(&'static str, String)> {
        let q = |p: &Path| sh_quote(&p.display().to_string());
        let results = q(&self.results);
        let nvplan = q(&self.nvplan);
        let last = self.drives.saturating_sub(1);
        let mut head = vec![
            "#!/bin/bash".to_string(),
            format!(
                "# {}: {} on {} drives, a task per drive (written by `nvplan slurm`)",
                self.name,
                self.plans.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" "),
                self.drives
            ),
            format!("#SBATCH --job-name={}", sh_quote(&self.name)),
            format!("#SBATCH --array=0-{last}{}", self.max_parallel.map(|m| format!("%{m}")).unwrap_or_default()),
            "#SBATCH --gres=nvme:1".into(),
            "#SBATCH --ntasks=1".into(),
            format!("#SBATCH --cpus-per-task={}", self.cpus_per_task.max(1)),
            format!("#SBATCH --output={}/logs/task-%a.log", self.results.display()),
        ];
        if let Some(p) = &self.partition {
            head.push(format!("#SBATCH --partition={p}"));
        }
        if let Some(t) = &self.time_limit {
            head.push(format!("#SBATCH --time={t}"));
        }
        let target = match &self.drive_list {
            Some(l) => format!("slurm:{}", l.display()),
            None => "slurm".into(),
        };
        let mut run = vec![nvplan.clone(), "run".into()];
        run.extend(self.plans.iter().map(|p| q(p)));
        run.extend(["--target".into(), sh_quote(&target), "--out".into(), format!("{results}/task-\"$SLURM_ARRAY_TASK_ID\""), "--quiet".into()]);
        if self.time_scale != 1.0 {
            run.extend(["--time-scale".into(), self.time_scale.to_string()]);
        }
        if let Some(s) = self.seed {
            run.extend(["--seed".into(), s.to_string()]);
        }
        let campaign = format!("{}\n\nexec {}\n", head.join("\n"), run.join(" "));
        let merge = [
            "#!/bin/bash".to_string(),
            format!("# {}: the merged report of the campaign's {} tasks (written by `nvplan slurm`)", self.name, self.drives),
            format!("#SBATCH --job-name={}", sh_quote(&format!("{}-merge", self.name))),
            "#SBATCH --ntasks=1".into(),
            "#SBATCH --cpus-per-task=1".into(),
            format!("#SBATCH --output={}/logs/merge.log", self.results.display()),
            String::new(),
            format!("exec {nvplan} report --merge {results}/task-{{0..{last}}} --out {results}/merged"),
        ]
        .join("\n")
            + "\n";
        let submit = format!(
            "#!/bin/sh\n# Submits the campaign's job array, then its merge after every task ended (written by `nvplan slurm`).\n# --wait: wait for the merge and exit with its code (0: every drive passed).\nset -e\nmkdir -p {results}/logs\narray=$(sbatch --parsable {results}/campaign.sbatch)\necho \"campaign: job array $array, {} tasks -> {}/task-N\"\nif [ \"${{1:-}}\" = --wait ]; then\n    echo \"merge: after $array -> {}/merged\"\n    exec sbatch --wait --quiet --dependency=afterany:\"$array\" {results}/merge.sbatch\nfi\nmerge=$(sbatch --parsable --dependency=afterany:\"$array\" {results}/merge.sbatch)\necho \"merge: job $merge -> {}/merged\"\n",
            self.drives,
            self.results.display(),
            self.results.display(),
            self.results.display()
        );
        vec![("campaign.sbatch", campaign), ("merge.sbatch", merge), ("submit.sh", submit)]
    }

    /// Writes [`Campaign::scripts`] into the results directory (and creates `logs/`);
    /// returns the path of `submit.sh`.
    pub fn write(&self) -> Result<PathBuf, String> {
        std::fs::create_dir_all(self.results.join("logs")).map_err(|e| format!("{}: {e}", self.results.display()))?;
        for (name, text) in self.scripts() {
            let path = crate::report::write_atomic(&self.results, name, text.as_bytes()).map_err(|e| format!("{}: {e}", self.results.join(name).display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(self.results.join("submit.sh"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nvme_index_is_read_from_scontrols_node_line() {
        let out = "JobId=12 ArrayJobId=9 ArrayTaskId=3 JobName=qual\n   TresPerNode=gres:nvme:1\n     Nodes=n1 CPU_IDs=1 Mem=0 GRES=nvme:1(IDX:2)\n   MinCPUsNode=1\n";
        assert_eq!(gres_indexes(out, "nvme").unwrap(), vec![2]);
        assert_eq!(cpu_ids(out), Some(vec![1]));
        let typed = "     Nodes=n1 CPU_IDs=0-1 Mem=0 GRES=gpu:a100:1(IDX:0),nvme:pm1733:2(IDX:1,3)\n";
        assert_eq!(gres_indexes(typed, "nvme").unwrap(), vec![1, 3]);
        assert_eq!(gres_indexes("     Nodes=n1 GRES=nvme:2(IDX:0-1)\n", "nvme").unwrap(), vec![0, 1]);
        let e = gres_indexes("     Nodes=n1 CPU_IDs=0-1 Mem=0 GRES=nvme:0(IDX:)\n", "nvme").unwrap_err();
        assert!(e.contains("select/cons_tres"), "{e}");
        let e = gres_indexes("     Nodes=n1 CPU_IDs=0 GRES=gpu:1(IDX:0)\n", "nvme").unwrap_err();
        assert!(e.contains("--gres=nvme:1"), "{e}");
    }

    #[test]
    fn a_drive_list_maps_indexes_to_targets_and_says_when_it_is_short() {
        let dir = std::env::temp_dir().join(format!("nvplan-drives-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let list = dir.join("drives");
        std::fs::write(&list, "# gres.conf File=/dev/vfio/[12-13]\nvfio:0000:01:00.0\n\nvfio:0000:02:00.0  # second\n").unwrap();
        assert_eq!(target_at(&list, 1).unwrap(), "vfio:0000:02:00.0");
        let e = target_at(&list, 2).unwrap_err();
        assert!(e.contains("lists 2 drives, but Slurm allocated nvme index 2"), "{e}");
        assert!(drive_list(&dir.join("none")).unwrap_err().contains("a target per line"));
        assert_eq!(resolve_target("sim:serial=A").unwrap(), "sim:serial=A");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn campaign_scripts_run_an_array_of_one_task_per_drive_and_merge_every_task() {
        let c = Campaign {
            plans: vec![PathBuf::from("/plans/qual.yaml")],
            drives: 24,
            results: PathBuf::from("/shared/qual 1"),
            nvplan: PathBuf::from("/opt/nvplan/bin/nvplan"),
            drive_list: None,
            cpus_per_task: 4,
            max_parallel: Some(8),
            partition: Some("nvme".into()),
            time_limit: None,
            time_scale: 1.0,
            seed: Some(3),
            name: "qual".into(),
        };
        let s = c.scripts();
        let (campaign, merge, submit) = (&s[0].1, &s[1].1, &s[2].1);
        for line in [
            "#SBATCH --array=0-23%8",
            "#SBATCH --gres=nvme:1",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --partition=nvme",
            "#SBATCH --output=/shared/qual 1/logs/task-%a.log",
        ] {
            assert!(campaign.lines().any(|l| l == line), "{line} in\n{campaign}");
        }
        assert!(
            campaign.ends_with(
                "exec /opt/nvplan/bin/nvplan run /plans/qual.yaml --target slurm --out '/shared/qual 1'/task-\"$SLURM_ARRAY_TASK_ID\" --quiet --seed 3\n"
            ),
            "{campaign}"
        );
        assert!(merge.ends_with("exec /opt/nvplan/bin/nvplan report --merge '/shared/qual 1'/task-{0..23} --out '/shared/qual 1'/merged\n"), "{merge}");
        assert!(submit.contains("--dependency=afterany:\"$array\""), "{submit}");
    }
}
