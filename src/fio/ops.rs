//! What a worker sends and how: the opcode mix (rw, rwmixread, write_mode, fsync), rates,
//! FUA, data patterns, error handling, percentiles, CPUs and seeds.

use std::time::Duration;

use super::build::{Field, Val, fmt_time, plain};
use super::dist::quantize;
use super::job::{DIR_NAMES, Dirs, Job, Report};
use super::sizes::Sizes;
use super::values;

fn field(job: &Job, key: &'static str, val: Val, from: &[&str]) -> Field {
    Field { key, val, from: from.iter().filter_map(|n| job.get(n).map(|o| o.at)).collect(), default: None }
}

/// The share of reads among reads and writes: the later of rwmixread and rwmixwrite.
fn read_share(job: &Job, report: &mut Report) -> u8 {
    let r = job.parse("rwmixread", report, values::percent);
    let w = job.parse("rwmixwrite", report, values::percent);
    match (r, w) {
        (Some(r), Some(w)) if job.pos("rwmixwrite") > job.pos("rwmixread") => {
            if r + w != 100 {
                report.warn(
                    job.at("rwmixwrite"),
                    "rwmixwrite",
                    format!("rwmixread={r} and rwmixwrite={w} do not add up to 100; the later one wins, as in fio"),
                );
            }
            100 - w
        }
        (Some(r), _) => r,
        (None, Some(w)) => 100 - w,
        (None, None) => 50,
    }
}

/// `read_percentage` or `op_percentage`.
pub(crate) fn mix(job: &Job, dirs: &Dirs, fields: &mut Vec<Field>, report: &mut Report) {
    let both = dirs[0] && dirs[1];
    if !both {
        for n in ["rwmixread", "rwmixwrite"] {
            if job.get(n).is_some() {
                report.warn(job.at(n), n, "ignored: the job does not mix reads and writes");
            }
        }
    }
    let r = if both {
        read_share(job, report) as f64 / 100.0
    } else if dirs[0] {
        1.0
    } else {
        0.0
    };
    let wop = match job.text("write_mode").map(|m| m.trim().to_string()) {
        None => "write",
        Some(m) => match m.as_str() {
            "write" => "write",
            "zeroes" => "write_zeroes",
            "uncor" => "write_uncorrectable",
            "verify" => "verify",
            _ => {
                report.refuse(job.at("write_mode"), "write_mode", format!("`{m}` is not write, zeroes, uncor or verify"));
                "write"
            }
        },
    };
    let sync = ["fsync", "fdatasync"].iter().filter_map(|n| job.parse(n, report, |v| values::count(v, job.kb_base)).filter(|&x| x > 0).map(|x| (x, *n))).min();
    let mut from = vec!["rw", "rwmixread", "rwmixwrite"];
    let mut ops: Vec<(&str, f64)> = Vec::new();
    if dirs[2] {
        ops.push(("dsm", 1.0));
    } else {
        if r > 0.0 {
            ops.push(("read", r));
        }
        if dirs[1] && r < 1.0 {
            ops.push((wop, 1.0 - r));
            if wop != "write" {
                from.push("write_mode");
            }
            if let Some((n, name)) = sync {
                ops.push(("flush", (1.0 - r) / n as f64));
                from.push(name);
                report.warn(
                    job.at(name),
                    name,
                    format!("one flush per {n} writes on average, picked at random and queued with the I/O; fio waits for a sync after every {n} writes"),
                );
            }
        }
    }
    if !dirs[1]
        && let Some((_, name)) = sync
    {
        report.warn(job.at(name), name, "ignored: the job does not write");
    }
    if ops.len() <= 2 && ops.iter().all(|o| o.0 == "read" || o.0 == "write") {
        fields.push(field(job, "read_percentage", plain((r * 100.0).round() as u8), &from));
        return;
    }
    let mass: Vec<f64> = ops.iter().map(|o| o.1).collect();
    let hundredths = quantize(&mass);
    let map = ops.iter().zip(hundredths).map(|(o, h)| (o.0.to_string(), plain(fmt_hundredths(h)))).collect();
    fields.push(field(job, "op_percentage", Val::Map(map), &from));
}

fn fmt_hundredths(h: u32) -> String {
    if h.is_multiple_of(100) {
        format!("{}", h / 100)
    } else if h.is_multiple_of(10) {
        format!("{}.{}", h / 100, h % 100 / 10)
    } else {
        format!("{}.{:02}", h / 100, h % 100)
    }
}

/// Shares of the directions in a job's I/O (for rates given per direction).
fn shares(job: &Job, dirs: &Dirs, report: &mut Report) -> [f64; 3] {
    if dirs[0] && dirs[1] {
        let r = read_share(job, report) as f64 / 100.0;
        [r, 1.0 - r, 0.0]
    } else {
        [dirs[0], dirs[1], dirs[2]].map(|d| if d { 1.0 } else { 0.0 })
    }
}

/// Per-direction values of a rate option for the job's directions (`None` where a
/// direction has none).
fn rates(job: &Job, name: &str, dirs: &Dirs, report: &mut Report) -> Option<[Option<u64>; 3]> {
    let o = job.get(name)?;
    let parts = values::per_direction(o.value.as_deref().unwrap_or(""));
    let mut out = [None; 3];
    for d in (0..3).filter(|&d| dirs[d]) {
        if let Some(t) = &parts[d] {
            match values::count(t, job.kb_base) {
                Ok(v) if v > 0 => out[d] = Some(v),
                Ok(_) => {}
                Err(m) => report.refuse(o.at, name, m),
            }
        }
    }
    Some(out)
}

/// The total rate that keeps every direction at or under its own: the tightest of
/// rate/share.
fn total_rate(r: [Option<u64>; 3], share: [f64; 3], per_io: [f64; 3]) -> Option<f64> {
    (0..3).filter_map(|d| Some(r[d]? as f64 / per_io[d] / share[d].max(1e-9))).reduce(f64::min)
}

pub(crate) fn extras(job: &Job, dirs: &Dirs, sizes: &Sizes, clone: u32, cpus: usize, fields: &mut Vec<Field>, report: &mut Report) {
    let share = shares(job, dirs, report);
    let mixed = dirs.iter().filter(|d| **d).count() > 1;
    // Rates.
    let by_iops = rates(job, "rate_iops", dirs, report).and_then(|r| total_rate(r, share, [1.0; 3]));
    let by_bytes = rates(job, "rate", dirs, report).and_then(|r| total_rate(r, share, [sizes.mean(); 3]));
    if let Some(iops) = [by_iops, by_bytes].into_iter().flatten().reduce(f64::min) {
        let iops = iops.round().max(1.0) as u64;
        let from: Vec<&str> = ["rate_iops", "rate"].into_iter().filter(|n| job.get(n).is_some()).collect();
        if by_bytes.is_some() && matches!(sizes, Sizes::Weighted(_)) {
            report.warn(job.at("rate"), "rate", "bytes per second over mixed sizes: the plan paces I/Os at the rate of the average size");
        }
        if mixed {
            report.warn(job.at(from[0]), from[0], format!("fio limits each direction on its own; the plan limits the worker to {iops} I/Os per second, which keeps each direction at or under its limit at this mix"));
        }
        fields.push(field(job, "iops", plain(iops), &from));
    }
    // FUA.
    let sync = job.text("sync").map(|s| s.trim().to_ascii_lowercase());
    let sync_on = sync.as_deref().is_some_and(|s| !matches!(s, "0" | "none" | ""));
    let fua_dirs = [job.flag("readfua", report) == Some(true) && dirs[0], (sync_on || job.flag("writefua", report) == Some(true)) && dirs[1], false];
    if fua_dirs.iter().any(|d| *d) {
        let from: Vec<&str> = ["sync", "readfua", "writefua"].into_iter().filter(|n| job.get(n).is_some()).collect();
        if (0..3).any(|d| dirs[d] && !fua_dirs[d]) {
            let d = (0..3).find(|&d| dirs[d] && !fua_dirs[d]).unwrap_or(0);
            report.warn(job.at(from[0]), from[0], format!("io_flags sets FUA on every I/O of the worker, {} too", DIR_NAMES[d]));
        }
        fields.push(field(job, "io_flags", plain("0x4000"), &from));
    } else if sync_on {
        report.warn(job.at("sync"), "sync", "ignored: the job does not write");
    }
    pattern(job, dirs, fields, report);
    // Errors.
    let coe = job.text("continue_on_error").map(|v| v.trim().to_ascii_lowercase());
    if coe.as_deref().is_some_and(|v| !matches!(v, "none" | "0")) || job.get("ignore_error").is_some() {
        let n = if job.get("ignore_error").is_some() { "ignore_error" } else { "continue_on_error" };
        if !(n == "continue_on_error" && matches!(coe.as_deref(), Some("all" | "1"))) {
            report.warn(job.at(n), n, "the worker goes on after every error, whatever its kind");
        }
        fields.push(field(job, "exit_on_error", plain("false"), &[n]));
    }
    if let Some(p) = job.parse("percentile_list", report, values::float_list) {
        let p: Vec<Val> = p.into_iter().filter(|x| *x > 0.0 && *x < 100.0).map(plain).collect();
        if !p.is_empty() {
            fields.push(field(job, "output_percentile_latency", Val::List(p), &["percentile_list"]));
        }
    }
    if let Some(t) = job.parse("max_latency", report, |v| values::time(v, Duration::from_micros(1))).filter(|t| !t.is_zero()) {
        report.warn(job.at("max_latency"), "max_latency", "an I/O slower than this is a slow I/O (error -8) in the worker, as fio's job fails with ETIMEDOUT");
        fields.push(field(job, "slow_latency", plain(fmt_time(t)), &["max_latency"]));
    }
    cpu(job, clone, cpus, fields, report);
    if let Some(s) = job.parse("randseed", report, |v| values::count(v, 1024)) {
        fields.push(field(job, "seed", plain(s.wrapping_add(clone as u64)), &["randseed"]));
    }
    if job.flag("randrepeat", report) == Some(false) && job.get("randseed").is_none() {
        report.warn(
            job.at("randrepeat"),
            "randrepeat",
            "fio seeds from the system on every run; an nvplan run repeats for its seed: run with --seed N to vary it",
        );
    }
    // Rates the run must reach.
    let mut expect: Vec<(String, Val)> = Vec::new();
    let mut from = Vec::new();
    if let Some(r) = rates(job, "rate_iops_min", dirs, report) {
        let sum = r.iter().flatten().fold(0u64, |a, &b| a.saturating_add(b));
        if sum > 0 {
            expect.push(("iops_min".into(), plain(sum)));
            from.push("rate_iops_min");
            report.warn(
                job.at("rate_iops_min"),
                "rate_iops_min",
                "fio ends the job when a rate cycle falls short; the plan fails the worker when its average falls short",
            );
        }
    }
    if let Some(r) = rates(job, "rate_min", dirs, report) {
        let sum = r.iter().flatten().fold(0u64, |a, &b| a.saturating_add(b));
        if sum > 0 {
            expect.push(("mbps_min".into(), plain(sum as f64 / 1e6)));
            from.push("rate_min");
            report.warn(
                job.at("rate_min"),
                "rate_min",
                "fio ends the job when a rate cycle falls short; the plan fails the worker when its average falls short",
            );
        }
    }
    if !expect.is_empty() {
        fields.push(field(job, "expect", Val::Map(expect), &from));
    }
}

/// `cpus_allowed`/`cpumask` and the policy: one core per clone.
fn cpu(job: &Job, clone: u32, host_cpus: usize, fields: &mut Vec<Field>, report: &mut Report) {
    let list = if job.pos("cpus_allowed") >= job.pos("cpumask") {
        job.parse("cpus_allowed", report, crate::util::cpus::parse_cpus)
    } else {
        job.parse("cpumask", report, |v| {
            let m = values::count(v, 1024)?;
            let l: Vec<usize> = (0..64).filter(|b| m >> b & 1 == 1).collect();
            if l.is_empty() { Err("the mask names no CPU".into()) } else { Ok(l) }
        })
    };
    let Some(list) = list else { return };
    let opt = if job.pos("cpus_allowed") >= job.pos("cpumask") { "cpus_allowed" } else { "cpumask" };
    let split = job.text("cpus_allowed_policy").is_some_and(|p| p.trim() == "split");
    let c = list[clone as usize % list.len()];
    if list.len() > 1 && !split {
        report.warn(job.at(opt), opt, "fio lets the job run on any CPU of the set; the plan pins each clone to one of them in turn");
    }
    if c >= host_cpus {
        report.warn(job.at(opt), opt, format!("CPU {c} is beyond this host's {host_cpus} CPUs: the plan validates only on a host that has it"));
    }
    fields.push(field(job, "cpu_id", plain(c), &[opt, "cpus_allowed_policy"]));
}

/// The data a job writes: `ptype`/`pvalue`.
fn pattern(job: &Job, dirs: &Dirs, fields: &mut Vec<Field>, report: &mut Report) {
    let source = ["verify_pattern", "buffer_pattern"].into_iter().find(|n| job.get(n).is_some());
    let written = dirs[1];
    let set = |fields: &mut Vec<Field>, t: u32, v: String, from: &str| {
        fields.push(field(job, "ptype", plain(if t == 0xBEEF { "0xBEEF".into() } else { t.to_string() }), &[from]));
        fields.push(field(job, "pvalue", plain(v), &[from]));
    };
    if let Some(n) = source {
        let Some(bytes) = job.parse(n, report, pattern_bytes) else { return };
        if !written {
            report.warn(job.at(n), n, "ignored: the job does not write");
            return;
        }
        let (t, v) = if bytes.iter().all(|&b| b == 0) {
            (0, "0".to_string())
        } else if bytes.iter().all(|&b| b == 0xff) {
            (0, "1".to_string())
        } else if 4 % bytes.len() == 0 {
            let word: Vec<u8> = bytes.iter().cycle().take(4).copied().collect();
            (32, format!("{:#010x}", u32::from_le_bytes([word[0], word[1], word[2], word[3]])))
        } else {
            report.refuse(job.at(n), n, format!("a {}-byte pattern; nvplan repeats patterns of 1, 2 or 4 bytes (ptype 32)", bytes.len()));
            return;
        };
        report.warn(job.at(n), n, "the pattern fills every written LBA but its first 8 bytes (the LBA number) and last 32 (nvplan's check of the data)");
        set(fields, t, v, n);
    } else if job.flag("zero_buffers", report) == Some(true) && written {
        set(fields, 0, "0".into(), "zero_buffers");
    } else if let Some(c) = job.parse("buffer_compress_percentage", report, values::percent).filter(|_| written) {
        report.warn(job.at("buffer_compress_percentage"), "buffer_compress_percentage", format!("the first {}% of every LBA random, the rest zeroes", 100 - c));
        set(fields, 0xBEEF, (100 - c).to_string(), "buffer_compress_percentage");
    }
}

/// fio's pattern syntax: `0x` hex bytes in order, decimal numbers as little-endian bytes,
/// `"strings"`; files and `%o` are refused.
pub(crate) fn pattern_bytes(t: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut s = t.trim();
    while !s.is_empty() {
        if let Some(rest) = s.strip_prefix('"') {
            let end = rest.find('"').ok_or("a string pattern needs its closing \"")?;
            out.extend_from_slice(&rest.as_bytes()[..end]);
            s = &rest[end + 1..];
        } else if s.starts_with('\'') {
            return Err("a pattern read from a file: nvplan cannot repeat a file's contents".into());
        } else if s.starts_with('%') {
            return Err("%o (each block's offset) has no equivalent; nvplan writes each LBA's number in its first 8 bytes anyway".into());
        } else if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            let n = h.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(h.len());
            let digits = &h[..n];
            if digits.is_empty() {
                return Err("0x without hex digits".into());
            }
            let padded = if digits.len() % 2 == 1 { format!("0{digits}") } else { digits.to_string() };
            for i in (0..padded.len()).step_by(2) {
                out.push(u8::from_str_radix(&padded[i..i + 2], 16).map_err(|e| e.to_string())?);
            }
            s = &h[n..];
        } else {
            let n = s.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-'))).map_or(s.len(), |x| x.0);
            let v: i64 = s[..n].parse().map_err(|_| format!("`{s}` is not a pattern (0x hex, a number or a \"string\")"))?;
            if v < i32::MIN as i64 || v > i32::MAX as i64 {
                return Err(format!("{v} is outside fio's 32-bit range for decimal patterns"));
            }
            let mut u = v as i32 as u32;
            if u == 0 {
                out.push(0);
            }
            while u != 0 {
                out.push((u & 0xff) as u8);
                u >>= 8;
            }
            s = &s[n..];
        }
        if out.len() > 4096 {
            return Err("a pattern longer than 4096 bytes".into());
        }
    }
    if out.is_empty() {
        return Err("an empty pattern".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_read_as_fio_writes_them() {
        assert_eq!(pattern_bytes("0xdeadface"), Ok(vec![0xde, 0xad, 0xfa, 0xce]));
        assert_eq!(pattern_bytes("0xAA"), Ok(vec![0xaa]));
        assert_eq!(pattern_bytes("-12"), Ok(vec![0xf4, 0xff, 0xff, 0xff]));
        assert_eq!(pattern_bytes("258"), Ok(vec![2, 1]));
        assert_eq!(pattern_bytes("\"ab\"0x01"), Ok(vec![b'a', b'b', 1]));
        assert!(pattern_bytes("'file'").is_err());
        assert!(pattern_bytes("%o").is_err());
    }

    #[test]
    fn hundredths_print_without_trailing_zeros() {
        assert_eq!(fmt_hundredths(5000), "50");
        assert_eq!(fmt_hundredths(9697), "96.97");
        assert_eq!(fmt_hundredths(3330), "33.3");
        assert_eq!(fmt_hundredths(5), "0.05");
    }

    #[test]
    fn a_mixed_rate_is_the_tightest_direction_over_its_share() {
        assert_eq!(total_rate([Some(100), Some(100), None], [0.5, 0.5, 0.0], [1.0; 3]), Some(200.0));
        let r = total_rate([Some(100), None, None], [0.7, 0.3, 0.0], [1.0; 3]).unwrap();
        assert!((r - 142.857).abs() < 0.01);
    }
}
