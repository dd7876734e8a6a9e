//! Errors of the host driver.

use std::time::Duration;

use super::queue::SubmitError;
use crate::nvme::{Cqe, Status};
use crate::transport::TransportError;

/// What can go wrong driving a controller.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Registers read all ones: the function is gone, powered off or in reset.
    #[error("the controller does not respond (registers read FFFFFFFFh): removed, powered off or in reset")]
    DeviceGone,
    /// CSTS.CFS is set.
    #[error("the controller reports a fatal error (CSTS.CFS = 1); reset it to continue")]
    ControllerFatal,
    /// CSTS.RDY is clear while the driver expected a running controller.
    #[error("the controller is not ready (CSTS = {csts:#010x}): it was disabled or reset behind the driver; reset it to continue")]
    NotReady {
        /// CSTS as read.
        csts: u32,
    },
    /// CSTS did not reach the expected state within CAP.TO.
    #[error("timed out after {} ms (CAP.TO) waiting for {what}; CSTS = {csts:#010x}", waited.as_millis())]
    ReadyTimeout {
        /// The awaited condition.
        what: &'static str,
        /// Last CSTS value read.
        csts: u32,
        /// Time waited.
        waited: Duration,
    },
    /// A command completed with an error status.
    #[error("{what} failed with status {status}")]
    Command {
        /// The command.
        what: String,
        /// Its status.
        status: Status,
        /// Its completion entry.
        cqe: Cqe,
    },
    /// A command did not complete in time.
    #[error("{what} (CID {cid}) did not complete within {} ms", after.as_millis())]
    CommandTimeout {
        /// The command.
        what: &'static str,
        /// Its CID.
        cid: u16,
        /// The timeout.
        after: Duration,
    },
    /// A command could not be submitted.
    #[error("cannot submit {what}: {source}")]
    Submit {
        /// The command.
        what: &'static str,
        /// Why.
        #[source]
        source: SubmitError,
    },
    /// The queue pair was invalidated by a reset or power cycle.
    #[error("queue pair {qid} no longer exists on the controller (it was reset or power cycled); create a new one")]
    QpairGone {
        /// Queue ID.
        qid: u16,
    },
    /// Every I/O queue ID the controller allocated is in use.
    #[error("no free I/O queue ID: the controller allocated {0} queue pairs and all are in use")]
    NoQueueId(u32),
    /// A power switch failed.
    #[error("power switch: {0}")]
    Power(String),
    /// A caller passed a value the driver cannot use.
    #[error("{0}")]
    InvalidArgument(String),
}

impl DriverError {
    /// The NVMe status of a failed command, if this error carries one.
    pub fn status(&self) -> Option<Status> {
        match self {
            DriverError::Command { status, .. } => Some(*status),
            _ => None,
        }
    }
}
