//! Small helpers shared by several layers.

pub mod cpus;
pub mod rng;
pub mod units;

/// Asks the CPU to bring the cache line at `p` in ahead of a load (`write`: ahead of a
/// store or a locked read-modify-write, so the line comes in owned).
#[inline]
pub fn prefetch(p: *const u8, write: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};
        if write { _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>()) } else { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, write);
}

/// This machine's host name (empty when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}
