//! The I/O worker: PyNVMe3's ioworker, parameter for parameter, with verification of every
//! LBA and statistics, running on its own thread and queue pair.

pub mod config;
pub(crate) mod generator;
pub mod result;
pub mod stats;
pub mod verify;
mod worker;

pub use config::{ConfigError, IoSize, IoWorkerConfig, OnReset, SeqIo};
pub use generator::Io;
pub use result::{IoWorkerResult, code};
pub use worker::{IoWorker, Live, RunningWorker, available_cpus};
