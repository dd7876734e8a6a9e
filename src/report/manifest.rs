//! `manifest.json`: what produced a report. The nvplan version and command line, the
//! plan (and a checksum of its text), the drive's identity, the host, seed, start and end,
//! whether the run ended, and every file of the report.

use serde::{Deserialize, Serialize};

use crate::exec::{Device, Outcome, Summary};

/// The host a run ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    /// Host name.
    pub hostname: String,
    /// Operating system (`PRETTY_NAME` of os-release).
    pub os: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU model.
    pub cpu: String,
    /// CPUs online.
    pub cpus: usize,
    /// Memory, bytes.
    pub memory_bytes: u64,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

impl Host {
    /// This host, from /proc and /etc (empty fields where they cannot be read).
    pub fn this() -> Host {
        let os = read("/etc/os-release")
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
            .unwrap_or_else(|| std::env::consts::OS.into());
        let cpu = read("/proc/cpuinfo")
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())))
            .unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())))
            .map_or(0, |kb| kb * 1024);
        Host {
            hostname: crate::util::hostname(),
            os,
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_default(),
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
        }
    }
}

/// The plan a report came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PlanRef {
    /// Plan name.
    pub name: String,
    /// Plan file as given.
    pub file: String,
    /// CRC-32 of the plan file's bytes, to tell edited plans apart.
    pub crc32: Option<String>,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// nvplan's version.
    pub nvplan_version: String,
    /// The command line.
    pub command: Vec<String>,
    /// The plan.
    pub plan: PlanRef,
    /// Seed of the I/O streams.
    pub seed: u64,
    /// Factor applied to every duration of the plan.
    pub time_scale: f64,
    /// The target as described by its transport.
    pub target: String,
    /// The controller's identity (Identify Controller), when it came up.
    pub device: Option<Device>,
    /// The host.
    pub host: Host,
    /// Start, RFC 3339 UTC.
    pub started: String,
    /// End, RFC 3339 UTC (`None` while running, or if the process died).
    pub ended: Option<String>,
    /// Seconds run.
    pub seconds: f64,
    /// Every phase run of the plan ran. `false` means the files hold what was measured
    /// up to the last phase run that ended: the run was interrupted, could not go on, is
    /// still running (`ended` is `None`) or died.
    pub complete: bool,
    /// Outcome so far.
    pub outcome: Outcome,
    /// Every file of the report, relative to its directory.
    pub files: Vec<String>,
}

impl Manifest {
    /// The manifest of `s`, with the host and the files given.
    /// `ended`: the run is over (the files are final).
    pub fn of(s: &Summary, command: &[String], plan_crc32: Option<u32>, host: &Host, files: Vec<String>, ended: bool) -> Manifest {
        Manifest {
            nvplan_version: env!("CARGO_PKG_VERSION").into(),
            command: command.to_vec(),
            plan: PlanRef { name: s.plan.clone(), file: s.file.clone(), crc32: plan_crc32.map(|c| format!("{c:08x}")) },
            seed: s.seed,
            time_scale: s.time_scale,
            target: s.target.clone(),
            device: s.device.clone(),
            host: host.clone(),
            started: rfc3339(s.started_unix),
            ended: ended.then(|| rfc3339(s.started_unix + s.seconds.round() as u64)),
            seconds: s.seconds,
            complete: s.complete,
            outcome: s.outcome,
            files,
        }
    }
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`2026-12-01T16:38:18Z`).
pub fn rfc3339(unix: u64) -> String {
    let (days, secs) = (unix / 86_400, unix % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_gives_the_utc_calendar_date() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_143_098), "2026-12-01T16:38:18Z");
    }

    #[test]
    fn host_names_this_machine() {
        let h = Host::this();
        assert!(h.cpus >= 1);
        assert!(!h.kernel.is_empty());
    }
}
