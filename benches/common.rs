//! Shared pieces of nvplan's benchmarks: fio as the reference, run in the same process
//! so both numbers come from the same machine state.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

/// Benchmark duration: `NVPLAN_BENCH_SECS` (default 5 s).
pub fn duration() -> Duration {
    Duration::from_secs_f64(std::env::var("NVPLAN_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0))
}

/// Runs fio with `args` (plus JSON output) and returns the summed read+write IOPS, or why
/// it could not.
pub fn fio_iops(args: &[&str]) -> Result<f64, String> {
    let out = Command::new("fio")
        .args(args)
        .arg("--output-format=json")
        .output()
        .map_err(|e| format!("fio not runnable ({e}); install it with `apt-get install fio`"))?;
    if !out.status.success() {
        return Err(format!("fio failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| format!("fio output is not JSON: {e}"))?;
    let jobs = v["jobs"].as_array().ok_or("fio JSON has no jobs")?;
    Ok(jobs.iter().map(|j| j["read"]["iops"].as_f64().unwrap_or(0.0) + j["write"]["iops"].as_f64().unwrap_or(0.0)).sum())
}

/// IOPS of fio's null engine, one job pinned to CPU 0, 4 KiB at queue depth 63, as long
/// as `secs`, with `extra` options (`--rw=...`): the reference of the one-worker benchmarks.
pub fn fio_null_qd63(secs: Duration, extra: &[&str]) -> Result<f64, String> {
    let runtime = format!("--runtime={}", secs.as_secs_f64().ceil() as u64);
    let base = [
        "--name=null",
        "--ioengine=null",
        "--bs=4k",
        "--iodepth=63",
        "--size=1g",
        "--time_based",
        "--numjobs=1",
        "--norandommap",
        "--cpus_allowed=0",
        &runtime,
    ];
    fio_iops(&[&base[..], extra].concat())
}

/// fio's options for random writes that carry a crc32c to verify, as nvplan's writes do.
pub const FIO_VERIFIED_WRITES: [&str; 4] = ["--rw=randwrite", "--verify=crc32c", "--do_verify=0", "--verify_state_save=0"];

/// fio's version string, for the report.
pub fn fio_version() -> String {
    Command::new("fio").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_else(|_| "fio missing".into())
}

/// Prints one result line: name, IOPS, and the ratio to a reference.
pub fn report(name: &str, iops: f64, reference: Option<(&str, f64)>) {
    match reference {
        Some((rname, r)) if r > 0.0 => println!("{name:<48} {:>12.0} IOPS   {:.2}x {rname}", iops, iops / r),
        _ => println!("{name:<48} {:>12.0} IOPS", iops),
    }
}
