//! Small helpers shared by several layers.

pub mod cpus;
pub mod rng;
pub mod units;

/// This machine's host name (empty when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}
