//! The host driver: controller bring-up and reset, admin commands, I/O queue pairs with
//! PRP and SGL construction, polled completions and command timeouts. It reaches the
//! controller only through a [`Transport`](crate::transport::Transport) and never knows
//! which one.

mod controller;
mod error;
mod msix;
mod qpair;
mod queue;

pub use controller::{ArbitrationMechanism, Controller, ControllerInfo, ControllerOptions, Namespace, NamespaceInfo, PowerCycleTimes};
pub use error::DriverError;
pub use msix::Msix;
pub use qpair::{QPair, QpairOptions};
pub use queue::{Completion, CplKind, DataPtr, QueueCore, SglSegment, SubmitError};
