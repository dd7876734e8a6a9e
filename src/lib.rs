//! nvplan: a declarative NVMe SSD workload engine.
//!
//! Layers, bottom up: [`nvme`] (the specification as data), [`transport`] (register,
//! doorbell and DMA access to a controller), [`sim`] (a simulated controller),
//! [`driver`] (the host driver, identical on every transport).

#![warn(missing_docs, missing_debug_implementations)]

pub mod devices;
pub mod driver;
pub mod exec;
pub mod fio;
pub mod fleet;
pub mod ioworker;
pub mod metamode;
pub mod nvme;
pub mod plan;
pub mod power;
pub mod progress;
pub mod report;
pub mod sim;
pub mod smoke;
pub mod target;
pub mod transport;
pub mod util;
