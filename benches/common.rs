//! Shared pieces of nvplan's benchmarks: fio as the reference, run in the same process
//! so both numbers come from the same machine state.
#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

/// Benchmark duration: `NVPLAN_BENCH_SECS` (default 5 s).
pub fn duration() -> Duration {
    Duration::from_secs_f64(std::env::var("NVPLAN_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5.0))
}

/// CPUs for the simulator's threads: `NVPLAN_BENCH_SIM_CPUS` (a CPU list, or `any` to
/// leave them unpinned), by default every CPU this process may use but 0, where the
/// worker and fio's job run, so the kernel cannot wake a simulator thread there (seen in
/// `ps` during this bench). None (unpinned) on a machine of one CPU.
pub fn sim_cpus() -> Vec<usize> {
    match std::env::var("NVPLAN_BENCH_SIM_CPUS") {
        Ok(v) if v == "any" => Vec::new(),
        Ok(v) => nvplan::util::cpus::parse_cpus(&v).expect("NVPLAN_BENCH_SIM_CPUS: a CPU list (0,2,4-7) or `any`"),
        Err(_) => nvplan::util::cpus::host_cpus().into_iter().filter(|&c| c != 0).collect(),
    }
}

/// The CPUs of [`sim_cpus`] as a report says them.
pub fn sim_cpus_text() -> String {
    let c = sim_cpus();
    if c.is_empty() { "simulator unpinned".into() } else { format!("simulator on CPU {}", nvplan::util::cpus::cpu_list_text(&c)) }
}

/// Round trip of one cache line between CPU `a` and CPU `b`, in nanoseconds: two threads
/// pinned there pass a counter back and forth for `dur`. The worker and the simulator
/// talk through such lines (queue entries, doorbells), fio's null engine does not; on a
/// virtual machine the figure changes with where the host runs its virtual CPUs (on a
/// 2-core AMD EPYC VM, 60-130 ns in one placement and 320-550 ns in another, where the
/// simulator's never-written reads ran at half speed). None when either CPU cannot be used.
pub fn core_round_trip_ns(a: usize, b: usize, dur: Duration) -> Option<f64> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let line = Arc::new((AtomicU64::new(0), AtomicBool::new(false)));
    let other = line.clone();
    let echo = std::thread::spawn(move || {
        nvplan::util::cpus::pin_current(&[b]).ok()?;
        // Answers every odd value with the next even one until told to stop.
        while !other.1.load(Ordering::Relaxed) {
            let v = other.0.load(Ordering::Acquire);
            if v % 2 == 1 {
                other.0.store(v + 1, Ordering::Release);
            }
            std::hint::spin_loop();
        }
        Some(())
    });
    let mine = std::thread::spawn(move || {
        let trips = || {
            nvplan::util::cpus::pin_current(&[a]).ok()?;
            let t0 = std::time::Instant::now();
            let mut trips = 0u64;
            while t0.elapsed() < dur {
                for _ in 0..256 {
                    let v = line.0.load(Ordering::Acquire);
                    line.0.store(v + 1, Ordering::Release);
                    let t1 = std::time::Instant::now();
                    while line.0.load(Ordering::Acquire) != v + 2 {
                        if t1.elapsed() > Duration::from_secs(1) {
                            return None;
                        }
                        std::hint::spin_loop();
                    }
                }
                trips += 256;
            }
            Some(t0.elapsed().as_secs_f64() * 1e9 / trips as f64)
        };
        let ns = trips();
        line.1.store(true, Ordering::Relaxed);
        ns
    });
    let ns = mine.join().ok().flatten();
    echo.join().ok().flatten().and(ns)
}

/// [`core_round_trip_ns`] between CPU 0 (the worker's) and the simulator's first CPU, for
/// `dur`; None on a machine of one CPU.
pub fn worker_sim_round_trip_ns(dur: Duration) -> Option<f64> {
    let sim = sim_cpus().first().copied().or_else(|| nvplan::util::cpus::host_cpus().into_iter().find(|&c| c != 0))?;
    core_round_trip_ns(0, sim, dur)
}

/// Runs `f` between two probes of the worker-simulator round trip (each `probe` long) and
/// returns its result with the round trips just before and after, in nanoseconds.
pub fn around<T>(probe: Duration, f: impl FnOnce() -> T) -> (T, Option<(f64, f64)>) {
    let before = worker_sim_round_trip_ns(probe);
    let r = f();
    (r, before.zip(worker_sim_round_trip_ns(probe)))
}

/// The round trips of [`around`] as a report line carries them: ` [before/after ns]`.
pub fn trip_tag(trip: Option<(f64, f64)>) -> String {
    trip.map_or(String::new(), |(a, b)| format!(" [{a:.0}/{b:.0} ns]"))
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
