//! YAML plans: model, loading with exact error locations, static checks, and expansion
//! against a controller's limits into runs.

pub mod bounds;
mod check;
pub mod error;
pub mod expand;
pub mod limits;
pub mod load;
pub mod metamode;
pub mod model;
pub mod pts;
mod steady;
mod sweep;
pub mod units;
pub mod yaml;

pub use error::PlanError;
pub use expand::{EventAction, EventRun, PcieAction, PhaseRun, SteadyRun, WorkerRun, derive_seed, expand, power_events_without_switch, resolved};
pub use limits::{Limits, Target, parse_target, power, sim_config, target};
pub use load::{LoadedPlan, load, load_bytes, load_str};
pub use model::{Plan, schema};
pub use sweep::MAX_RUNS;
pub use units::parse_status;
