//! YAML plans: model, loading with exact error locations, validation.

pub mod model;
pub mod yaml;

pub use model::{Plan, schema};
