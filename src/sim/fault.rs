//! Fault injection: rules that make the simulated controller misbehave on purpose, so
//! that the driver's and the ioworker's error handling and data verification can be shown
//! to catch what a bad drive does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::nvme::sqe::Sqe;
use crate::nvme::status::Status;

/// Which queues a rule watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultQueue {
    /// The admin queue.
    Admin,
    /// I/O queues.
    Io,
}

/// What happens to a command a rule catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Complete without executing, with this status.
    Fail(Status),
    /// Execute, but never post the completion.
    DropCompletion,
    /// Read: flip every bit of the byte at this offset of the returned data.
    CorruptRead {
        /// Byte offset within the transfer.
        offset: usize,
    },
    /// Write: acknowledge success without storing the data.
    LoseWrite,
    /// Write: store the data this many LBAs away from where it was addressed (clamped to
    /// the namespace) and leave the addressed LBAs untouched.
    MisdirectWrite {
        /// Signed LBA distance.
        lba_offset: i64,
    },
    /// Flush: report success without writing the cache back (a drive that lies about
    /// durability; a later power loss takes the "flushed" data).
    IgnoreFlush,
    /// Complete normally, this much later than the latency model says.
    Delay(Duration),
}

/// One fault injection rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultRule {
    /// Queue kind the rule watches.
    pub queue: FaultQueue,
    /// Opcode it matches (`None`: every opcode).
    pub opcode: Option<u8>,
    /// Namespace it matches (`None`: every namespace).
    pub nsid: Option<u32>,
    /// Matching commands to let pass before the rule acts.
    pub skip: u32,
    /// Matching commands the rule acts on; the rule is removed afterwards.
    pub count: u32,
    /// The fault.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule for the next `count` I/O commands with `opcode`.
    pub fn io(opcode: u8, count: u32, action: FaultAction) -> Self {
        FaultRule { queue: FaultQueue::Io, opcode: Some(opcode), nsid: None, skip: 0, count, action }
    }
    /// A rule for the next `count` admin commands with `opcode`.
    pub fn admin(opcode: u8, count: u32, action: FaultAction) -> Self {
        FaultRule { queue: FaultQueue::Admin, opcode: Some(opcode), nsid: None, skip: 0, count, action }
    }
    /// Lets `n` matching commands pass first.
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
}

/// The set of armed rules.
#[derive(Default)]
pub(crate) struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    armed: AtomicUsize,
}

impl Faults {
    fn rules(&self) -> MutexGuard<'_, Vec<FaultRule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn inject(&self, rule: FaultRule) {
        let mut r = self.rules();
        if rule.count > 0 {
            r.push(rule);
        }
        self.armed.store(r.len(), Ordering::Release);
    }

    pub(crate) fn clear(&self) {
        self.rules().clear();
        self.armed.store(0, Ordering::Release);
    }

    /// The action for this command, if an armed rule catches it (consuming one use).
    #[inline]
    pub(crate) fn take(&self, queue: FaultQueue, sqe: &Sqe) -> Option<FaultAction> {
        if self.armed.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.take_slow(queue, sqe)
    }

    #[cold]
    fn take_slow(&self, queue: FaultQueue, sqe: &Sqe) -> Option<FaultAction> {
        let mut rules = self.rules();
        let i = rules.iter().position(|r| r.queue == queue && r.opcode.is_none_or(|o| o == sqe.opcode()) && r.nsid.is_none_or(|n| n == sqe.nsid()))?;
        let r = &mut rules[i];
        if r.skip > 0 {
            r.skip -= 1;
            return None;
        }
        let action = r.action;
        r.count -= 1;
        if r.count == 0 {
            rules.remove(i);
        }
        self.armed.store(rules.len(), Ordering::Release);
        Some(action)
    }

    /// Rules still armed.
    pub(crate) fn pending(&self) -> Vec<FaultRule> {
        self.rules().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_skips_then_acts_count_times_then_disarms() {
        let f = Faults::default();
        f.inject(FaultRule::io(2, 2, FaultAction::LoseWrite).after(1));
        let read = Sqe::new(2, 1);
        let write = Sqe::new(1, 1);
        assert_eq!(f.take(FaultQueue::Io, &write), None);
        assert_eq!(f.take(FaultQueue::Admin, &read), None);
        assert_eq!(f.take(FaultQueue::Io, &read), None, "skipped");
        assert_eq!(f.take(FaultQueue::Io, &read), Some(FaultAction::LoseWrite));
        assert_eq!(f.take(FaultQueue::Io, &read), Some(FaultAction::LoseWrite));
        assert_eq!(f.take(FaultQueue::Io, &read), None);
        assert!(f.pending().is_empty());
    }
}
