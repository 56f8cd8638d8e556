//! Health checks: [`HealthChecker`], [`Health`], and their aggregation.

mod check;

pub(crate) use check::{DynHealthChecker, run_check};
pub use check::{Health, HealthChecker};
