//! Device self-test (NVMe 1.4 §5.8 command, §8.11 operations) and the Device Self-test log
//! page (§5.14.1.6).
//!
//! A test runs in the background for a fixed time (`SimConfig::self_test_short` and
//! `self_test_extended`) and always passes. Its progress is a function of the clock, so the
//! controller settles it whenever it is observed (the log page, the next Device Self-test
//! command, a reset) rather than on a timer: what the host sees is the same.
//! A Controller Level Reset aborts a short test (result 2h, §8.11.1); an extended test
//! carries on through it (§8.11.2). Format NVM (4h) and Sanitize (9h) abort a running test.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::nvme::Status;

/// Self-test Code: short, extended, abort (Figure 159).
const SHORT: u8 = 0x1;
const EXTENDED: u8 = 0x2;
const ABORT: u8 = 0xF;

/// Self-test result codes (Figure 206, bits 3:0).
const RESULT_ABORTED_BY_COMMAND: u8 = 0x1;
const RESULT_ABORTED_BY_RESET: u8 = 0x2;
const RESULT_ABORTED_BY_FORMAT: u8 = 0x4;
pub(crate) const RESULT_ABORTED_BY_SANITIZE: u8 = 0x9;

/// Result entries the log keeps.
const ENTRIES: usize = 20;
/// Bytes of one Self-test Result Data Structure.
const ENTRY_BYTES: usize = 28;
/// Bytes of the log page.
pub(crate) const LOG_BYTES: usize = 4 + ENTRIES * ENTRY_BYTES;

struct Running {
    code: u8,
    nsid: u32,
    start: Instant,
    duration: Duration,
}

/// Device self-test state of the controller.
#[derive(Default)]
pub(crate) struct SelfTest {
    running: Option<Running>,
    /// Result data structures, newest first.
    results: VecDeque<[u8; ENTRY_BYTES]>,
}

impl SelfTest {
    /// Settles a test whose time is up: it completed without error at its end time.
    pub(crate) fn poll(&mut self, now: Instant, power_on_hours: u64) {
        if let Some(r) = &self.running
            && now.duration_since(r.start) >= r.duration
        {
            self.finish(0, power_on_hours);
        }
    }

    /// The Device Self-test command: `nsid` was checked by the caller.
    pub(crate) fn command(&mut self, code: u8, nsid: u32, durations: (Duration, Duration), now: Instant, power_on_hours: u64) -> Result<(), Status> {
        self.poll(now, power_on_hours);
        match code {
            SHORT | EXTENDED => {
                if self.running.is_some() {
                    return Err(Status::SELF_TEST_IN_PROGRESS.with_dnr(true));
                }
                let duration = if code == SHORT { durations.0 } else { durations.1 };
                self.running = Some(Running { code, nsid, start: now, duration });
                Ok(())
            }
            // Aborting when nothing runs completes successfully and changes nothing.
            ABORT => {
                self.abort(RESULT_ABORTED_BY_COMMAND, power_on_hours);
                Ok(())
            }
            _ => Err(Status::INVALID_FIELD.with_dnr(true)),
        }
    }

    /// Aborts a running test with `result`.
    pub(crate) fn abort(&mut self, result: u8, power_on_hours: u64) {
        if self.running.is_some() {
            self.finish(result, power_on_hours);
        }
    }

    /// Format NVM: aborts a running test that includes namespaces (NSID not 0).
    pub(crate) fn abort_for_format(&mut self, power_on_hours: u64) {
        if self.running.as_ref().is_some_and(|r| r.nsid != 0) {
            self.finish(RESULT_ABORTED_BY_FORMAT, power_on_hours);
        }
    }

    /// A Controller Level Reset: a short test is aborted, an extended one carries on.
    pub(crate) fn controller_reset(&mut self, now: Instant, power_on_hours: u64) {
        self.poll(now, power_on_hours);
        if self.running.as_ref().is_some_and(|r| r.code == SHORT) {
            self.finish(RESULT_ABORTED_BY_RESET, power_on_hours);
        }
    }

    /// The log page (Figure 205): current operation, its completion, results newest first;
    /// unused entries have result Fh.
    pub(crate) fn log(&mut self, now: Instant, power_on_hours: u64) -> Vec<u8> {
        self.poll(now, power_on_hours);
        let mut v = vec![0u8; LOG_BYTES];
        if let Some(r) = &self.running {
            v[0] = r.code;
            let done = now.duration_since(r.start).as_secs_f64() / r.duration.as_secs_f64().max(1e-9);
            v[1] = ((done * 100.0) as u8).min(99);
        }
        for i in 0..ENTRIES {
            let at = 4 + i * ENTRY_BYTES;
            match self.results.get(i) {
                Some(e) => v[at..at + ENTRY_BYTES].copy_from_slice(e),
                None => v[at] = 0xF,
            }
        }
        v
    }

    fn finish(&mut self, result: u8, power_on_hours: u64) {
        let Some(r) = self.running.take() else { return };
        let mut e = [0u8; ENTRY_BYTES];
        // Device Self-test Status: the operation (7:4) and its result (3:0).
        e[0] = r.code << 4 | result;
        // No segment failed, so no diagnostic field (NSID, LBA, status) is valid.
        e[4..12].copy_from_slice(&power_on_hours.to_le_bytes());
        if self.results.len() == ENTRIES {
            self.results.pop_back();
        }
        self.results.push_front(e);
    }
}
