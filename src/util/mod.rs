//! Small helpers shared by several layers.

pub mod cpus;
pub mod rng;
pub mod units;

/// Whether the CPU has PREFETCHW (CPUID 8000_0001h, ECX bit 8: PRFCHW).
#[cfg(target_arch = "x86_64")]
static PRFCHW: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| std::arch::x86_64::__cpuid(0x8000_0001).ecx >> 8 & 1 == 1);

/// Asks the CPU to bring the cache line at `p` in ahead of a load (`write`: ahead of a
/// store or a locked read-modify-write, so the line comes in owned).
#[inline]
pub fn prefetch(p: *const u8, write: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address, and writes
    // nothing; PREFETCHW runs only where CPUID says the CPU has it. It is written out
    // because `_mm_prefetch::<_MM_HINT_ET0>` becomes a read prefetch (PREFETCHT0) unless
    // the build targets PRFCHW, which x86-64's baseline lacks.
    unsafe {
        if write && *PRFCHW {
            std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags, readonly));
        } else {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, write);
}

/// This machine's host name (empty when it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn prfchw_detection_agrees_with_the_kernel() {
        // The kernel names PRFCHW `3dnowprefetch` in /proc/cpuinfo.
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else { return };
        let flags = info.lines().find(|l| l.starts_with("flags")).unwrap_or_default();
        assert_eq!(*super::PRFCHW, flags.split_whitespace().any(|f| f == "3dnowprefetch"));
    }

    #[test]
    fn prefetch_never_faults_whatever_the_address() {
        for p in [std::ptr::null::<u8>(), std::ptr::dangling::<u8>(), usize::MAX as *const u8, 0xdead_0000 as *const u8] {
            super::prefetch(p, false);
            super::prefetch(p, true);
        }
    }
}
