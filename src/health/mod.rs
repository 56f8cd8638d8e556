//! Health checks and the Kubernetes probes built from them.
//!
//! Every [`HealthChecker`] is registered under a name with
//! [`CheckOptions`]: the [`Probe`]s it belongs to (readiness by default),
//! whether it is critical, its timeout, caching, background interval and
//! flap damping. [`Probes`] (from [`Handle::probes`](crate::Handle::probes))
//! runs a probe's checks concurrently and answers HTTP-shaped requests in
//! the Kubernetes apiserver format, with no HTTP crate.

pub(crate) mod check;
mod failure_log;
#[cfg(feature = "http")]
mod http;
mod options;
mod probes;
pub(crate) mod registry;
mod render;
mod response;
mod results;
mod within;

pub(crate) use check::DynHealthChecker;
pub use check::{FnCheck, Health, HealthChecker, check_fn};
pub use options::{CheckOptions, DEFAULT_CHECK_TIMEOUT, Probe};
#[cfg(feature = "admin")]
pub(crate) use probes::DEFAULT_FAILURE_STATUS;
pub use probes::{HealthMonitor, Probes};
pub(crate) use registry::{Checks, Entry};
pub use render::ProbeResponse;
pub use response::ProbeRequest;
pub use results::{CheckResult, CheckStatus, ProbeReport};
