//! CPU lists: the kernel's notation (`0,2,4-7`), the CPUs this process may run on, and
//! pinning threads to them.

/// Highest CPU number a list may name (bounds what a list can make us allocate).
const MAX_CPU: usize = 65535;

/// Parses a CPU list: `0,2,4-7` (the kernel's notation, fio's `cpus_allowed`, `--cpus`).
pub fn parse_cpus(text: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= MAX_CPU)
                .ok_or_else(|| format!("`{s}` is not a CPU number from 0 to {MAX_CPU} (write e.g. 0,2,4-7)"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("the range {part} runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
        if out.len() > MAX_CPU + 1 {
            return Err(format!("more than {} CPUs", MAX_CPU + 1));
        }
    }
    if out.is_empty() {
        return Err("no CPU given".into());
    }
    Ok(out)
}

/// `cpus` in the kernel's notation (`0,2,4-7`), as [`parse_cpus`] reads it back: runs of
/// consecutive CPUs become ranges.
pub fn cpu_list_text(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}-{}", cpus[i], cpus[j]) } else { cpus[i].to_string() });
        i = j + 1;
    }
    parts.join(",")
}

/// The CPUs this process may run on, in order.
pub fn host_cpus() -> Vec<usize> {
    // The affinity list in /proc names the CPUs a job scheduler left us.
    let allowed = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string())))
        .and_then(|v| parse_cpus(&v).ok());
    allowed.unwrap_or_else(|| (0..crate::ioworker::available_cpus()).collect())
}

/// The affinity mask of `cpus`.
fn cpu_set(cpus: &[usize]) -> std::io::Result<libc::cpu_set_t> {
    let limit = libc::CPU_SETSIZE as usize;
    if let Some(c) = cpus.iter().find(|&&c| c >= limit) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("CPU {c} is beyond the {limit} CPUs this host can address")));
    }
    // SAFETY: `cpu_set_t` is plain data (a bit array) for which all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        // SAFETY: CPU_SET writes bit `c` of `set`, below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    Ok(set)
}

/// Pins the calling thread to `cpus`.
pub fn pin_current(cpus: &[usize]) -> std::io::Result<()> {
    let set = cpu_set(cpus)?;
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of `set`, which lives
    // across the call; thread 0 is the caller.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Pins the thread behind `handle`, still running, to `cpus`.
pub fn pin_thread<T>(handle: &std::thread::JoinHandle<T>, cpus: &[usize]) -> std::io::Result<()> {
    use std::os::unix::thread::JoinHandleExt;
    let set = cpu_set(cpus)?;
    // SAFETY: the handle is not joined, so its pthread_t names a live (or zombie, not yet
    // reclaimed) thread; the call reads `size_of::<cpu_set_t>()` bytes of `set`.
    let r = unsafe { libc::pthread_setaffinity_np(handle.as_pthread_t(), std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 { Err(std::io::Error::from_raw_os_error(r)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_like_the_kernels() {
        assert_eq!(parse_cpus("0,2,4-6").unwrap(), vec![0, 2, 4, 5, 6]);
        assert!(parse_cpus("3-1").unwrap_err().contains("backwards"));
        assert!(parse_cpus("a").unwrap_err().contains("`a` is not a CPU number"));
        assert_eq!(parse_cpus("0,5,8-10"), Ok(vec![0, 5, 8, 9, 10]));
        // A range is bounded: a hostile list cannot make a huge allocation.
        assert!(parse_cpus("0-18446744073709551615").unwrap_err().contains("from 0 to 65535"));
        assert!(!host_cpus().is_empty());
    }

    #[test]
    fn cpu_lists_print_in_the_kernels_notation_and_read_back() {
        assert_eq!(cpu_list_text(&[0, 2, 4, 5, 6, 7]), "0,2,4-7");
        assert_eq!(cpu_list_text(&[3]), "3");
        assert_eq!(cpu_list_text(&[]), "");
        for l in [vec![0, 1], vec![1, 3, 4, 9], vec![5, 6, 7, 8]] {
            assert_eq!(parse_cpus(&cpu_list_text(&l)).unwrap(), l);
        }
    }
}
