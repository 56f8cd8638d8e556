//! [`Probe`] and [`CheckOptions`]: which probes a check belongs to and how
//! it is run.

use std::fmt;
use std::time::Duration;

use crate::error::Error;

/// The default budget of one check: half the kubelet's default 1 s probe
/// timeout, so that a probe with a hanging check still answers in time.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// A Kubernetes probe: a group of named checks served at one path.
///
/// | probe | path | built-in checks |
/// |---|---|---|
/// | [`Liveness`](Probe::Liveness) | `/livez` | `ping` |
/// | [`Readiness`](Probe::Readiness) | `/readyz` | `ping`, `launch`, `shutdown` |
/// | [`Startup`](Probe::Startup) | `/startupz` | `ping`, `launch` |
///
/// `/healthz` (deprecated in Kubernetes, kept for load balancers) runs every
/// check of every probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Probe {
    /// Is the process alive? Fails only when restarting it would help: no
    /// dependency checks by default.
    Liveness,
    /// Should traffic come here? Fails during launch (and while a component
    /// added since is launching) and from the moment shutdown is requested
    /// (lame duck).
    Readiness,
    /// Has the service finished launching? Passes once every component is
    /// ready.
    Startup,
}

impl Probe {
    /// Every probe.
    pub const ALL: [Probe; 3] = [Probe::Liveness, Probe::Readiness, Probe::Startup];

    /// The probe's name, which is also its path: `livez`, `readyz` or
    /// `startupz`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Probe::Liveness => "livez",
            Probe::Readiness => "readyz",
            Probe::Startup => "startupz",
        }
    }

    pub(crate) fn bit(self) -> u8 {
        match self {
            Probe::Liveness => 1,
            Probe::Readiness => 2,
            Probe::Startup => 4,
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a health check is registered: its probes, whether it is critical,
/// its timeout, caching, background interval and flap damping.
///
/// The defaults: readiness only, critical, [`DEFAULT_CHECK_TIMEOUT`]
/// (500 ms), no caching, run on demand, status changes at the first
/// differing result.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::{check_fn, CheckOptions, Health, Lifecycle, Probe};
///
/// let lifecycle = Lifecycle::builder()
///     .health_check_with(
///         "disk",
///         check_fn(|| async { Health::Healthy }),
///         CheckOptions::new()
///             .probes([Probe::Liveness, Probe::Readiness])
///             .timeout(Duration::from_millis(200))
///             .cache(Duration::from_secs(1))
///             .fail_after(3),
///     )
///     .build()
///     .unwrap();
/// # drop(lifecycle);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOptions {
    pub(crate) probes: u8,
    pub(crate) critical: bool,
    pub(crate) timeout: Duration,
    pub(crate) cache: Duration,
    pub(crate) interval: Option<Duration>,
    pub(crate) fail_after: u32,
    pub(crate) pass_after: u32,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            probes: Probe::Readiness.bit(),
            critical: true,
            timeout: DEFAULT_CHECK_TIMEOUT,
            cache: Duration::ZERO,
            interval: None,
            fail_after: 1,
            pass_after: 1,
        }
    }
}

impl CheckOptions {
    /// The defaults (see the type's documentation).
    pub fn new() -> Self {
        Self::default()
    }

    /// The probes this check belongs to, replacing the default (readiness).
    /// An empty set leaves the check in `/healthz` and its own path only.
    pub fn probes(mut self, probes: impl IntoIterator<Item = Probe>) -> Self {
        self.probes = probes.into_iter().fold(0, |acc, p| acc | p.bit());
        self
    }

    /// Whether an unhealthy result fails the probe (default `true`). A
    /// non-critical check that fails only adds a warning.
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// The budget of one run; past it the check is unhealthy, "timed out
    /// after …". Default 500 ms. Zero is a configuration error; a budget too
    /// long for the clock, such as [`Duration::MAX`], means no timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reuses a result for this long (default zero: every probe runs the
    /// check, but concurrent probes always share one run in flight).
    /// [`Duration::MAX`] keeps the first result for good.
    pub fn cache(mut self, ttl: Duration) -> Self {
        self.cache = ttl;
        self
    }

    /// Runs the check in the background every `interval` instead of on
    /// demand; probes read the last result. Until the first result, and
    /// once the last one is older than twice the interval plus the timeout
    /// (stale), the check counts as unhealthy.
    ///
    /// Background runs are driven by the [admin server](crate::admin) or a
    /// [`HealthMonitor`](crate::HealthMonitor) component. Without either,
    /// the check runs on demand with its results cached for `interval`.
    ///
    /// Zero is a configuration error. An interval too long for the clock,
    /// such as [`Duration::MAX`], runs the check once in the background and
    /// keeps that result (it never goes stale).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Flap damping: a passing check is reported unhealthy only after this
    /// many consecutive failing runs (default 1). Until then the failure is
    /// reported as degraded. Zero is a configuration error.
    pub fn fail_after(mut self, runs: u32) -> Self {
        self.fail_after = runs;
        self
    }

    /// Flap damping: a failing check is reported passing again only after
    /// this many consecutive passing runs (default 1). Zero is a
    /// configuration error.
    pub fn pass_after(mut self, runs: u32) -> Self {
        self.pass_after = runs;
        self
    }

    pub(crate) fn belongs_to(&self, probe: Probe) -> bool {
        self.probes & probe.bit() != 0
    }

    pub(crate) fn validate(&self, name: &str) -> Result<(), Error> {
        let bad = if self.timeout.is_zero() {
            Some("zero health check timeout")
        } else if self.fail_after == 0 || self.pass_after == 0 {
            Some("zero flap-damping run count")
        } else if self.interval.is_some_and(|i| i.is_zero()) {
            Some("zero health check interval")
        } else {
            None
        };
        match bad {
            Some(detail) => Err(Error::config(detail).with_component(name)),
            None => Ok(()),
        }
    }
}
