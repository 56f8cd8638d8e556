//! [`Probes`]: runs the checks of a probe and aggregates them into a
//! [`ProbeReport`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::check::Health;
use super::options::Probe;
use super::registry::Entry;
use super::results::{CheckResult, ProbeReport};
use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::handle::Handle;

/// The probes of one lifecycle: evaluates them, and answers HTTP-shaped
/// requests for them in the Kubernetes apiserver format. Made by
/// [`Handle::probes`].
///
/// Cheap to clone. Every method can be called from any thread, before,
/// during and after [`Lifecycle::run`](crate::Lifecycle::run).
///
/// # Examples
///
/// ```
/// use lameduck::{Lifecycle, Probe, ProbeRequest};
///
/// let lifecycle = Lifecycle::builder().build().unwrap();
/// let probes = lifecycle.handle().probes();
///
/// // Not launched yet: readiness fails, liveness passes.
/// let report = futures::executor::block_on(probes.check(Probe::Readiness));
/// assert!(!report.is_passing());
/// let live = futures::executor::block_on(probes.respond(ProbeRequest::new("GET", "/livez")));
/// assert_eq!((live.status(), live.body()), (200, "ok"));
/// ```
#[derive(Clone)]
pub struct Probes {
    pub(crate) handle: Handle,
    pub(crate) show_reasons: bool,
    pub(crate) failure_status: u16,
    pub(crate) debug: bool,
}

/// The status of a failing probe unless configured: the apiserver's.
pub(crate) const DEFAULT_FAILURE_STATUS: u16 = 500;

/// Which checks a request selects: one probe, or every check (`/healthz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Probe(Probe),
    All,
}

impl Target {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Probe(p) => p.as_str(),
            Target::All => "healthz",
        }
    }

    /// Its slot in the failure log.
    pub(crate) fn index(self) -> usize {
        match self {
            Target::Probe(p) => Probe::ALL.iter().position(|q| *q == p).unwrap_or(0),
            Target::All => Probe::ALL.len(),
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Target> {
        match name {
            "healthz" => Some(Target::All),
            _ => Probe::ALL
                .into_iter()
                .find(|p| p.as_str() == name)
                .map(Target::Probe),
        }
    }

    fn has_launch(self) -> bool {
        matches!(
            self,
            Target::All | Target::Probe(Probe::Readiness) | Target::Probe(Probe::Startup)
        )
    }

    fn has_shutdown(self) -> bool {
        matches!(self, Target::All | Target::Probe(Probe::Readiness))
    }

    fn has(self, entry: &Entry) -> bool {
        match self {
            Target::All => true,
            Target::Probe(p) => entry.options.belongs_to(p),
        }
    }
}

enum Source {
    Ping,
    Launch,
    Shutdown,
    User(Arc<Entry>),
}

impl Source {
    fn name(&self) -> &str {
        match self {
            Source::Ping => "ping",
            Source::Launch => "launch",
            Source::Shutdown => "shutdown",
            Source::User(e) => &e.name,
        }
    }
}

impl Probes {
    pub(crate) fn new(handle: Handle) -> Self {
        Probes {
            handle,
            show_reasons: false,
            failure_status: DEFAULT_FAILURE_STATUS,
            debug: false,
        }
    }

    /// Shows failure and warning reasons in responses instead of
    /// `reason withheld` (default off: probe endpoints are often public, and
    /// reasons can reveal internals). Reasons are always logged at debug
    /// level.
    pub fn show_reasons(mut self, show: bool) -> Self {
        self.show_reasons = show;
        self
    }

    /// The status of a failing probe: 500 by default, what the Kubernetes
    /// apiserver sends; 503 is the other common choice. Any status from 400
    /// to 599 is kept (the kubelet counts 200 to 399 as a pass); any other
    /// value is replaced by 500.
    ///
    /// # Examples
    ///
    /// ```
    /// let lifecycle = lameduck::Lifecycle::builder().build().unwrap();
    /// let probes = lifecycle.handle().probes().failure_status(503);
    /// let req = lameduck::ProbeRequest::new("GET", "/readyz"); // not launched yet
    /// let resp = futures::executor::block_on(probes.respond(req));
    /// assert_eq!(resp.status(), 503);
    /// ```
    pub fn failure_status(mut self, status: u16) -> Self {
        self.failure_status = if (400..=599).contains(&status) {
            status
        } else {
            DEFAULT_FAILURE_STATUS
        };
        self
    }

    /// Also serves `GET /debug/lifecycle`: a JSON snapshot of the phase and
    /// every component's state and timings (default off; the
    /// [admin server](crate::admin) turns it on).
    pub fn debug_lifecycle(mut self, serve: bool) -> Self {
        self.debug = serve;
        self
    }

    /// Runs the checks of `probe` concurrently, each within its timeout, and
    /// aggregates them.
    ///
    /// The future is `Send` and cancel-safe: a check run it started goes on
    /// for other probes that share it, or is restarted later.
    pub fn check(&self, probe: Probe) -> impl Future<Output = ProbeReport> + Send + use<> {
        self.evaluate(Target::Probe(probe), None, Vec::new(), false)
    }

    /// Every check of every probe, as `/healthz` runs them.
    pub fn check_all(&self) -> impl Future<Output = ProbeReport> + Send + use<> {
        self.evaluate(Target::All, None, Vec::new(), false)
    }

    /// Whether `target` has a check named `name`.
    pub(crate) fn has_check(&self, target: Target, name: &str) -> bool {
        self.sources(target).iter().any(|s| s.name() == name)
    }

    fn sources(&self, target: Target) -> Vec<Source> {
        let mut out = vec![Source::Ping];
        if target.has_launch() {
            out.push(Source::Launch);
        }
        if target.has_shutdown() {
            out.push(Source::Shutdown);
        }
        out.extend(
            self.handle
                .shared
                .health
                .entries()
                .into_iter()
                .filter(|e| target.has(e))
                .map(Source::User),
        );
        out
    }

    /// Whether evaluating `target` (its check `only`, or all but
    /// `exclude`) runs no check: each it selects is built in or refreshed
    /// in the background by a running driver, so its result is read.
    #[cfg(feature = "admin")]
    pub(crate) fn is_background(
        &self,
        target: Target,
        only: Option<&str>,
        exclude: &[String],
    ) -> bool {
        self.handle.shared.health.has_driver()
            && self.sources(target).iter().all(|s| match s {
                Source::User(e) => {
                    e.options.interval.is_some()
                        || only.is_some_and(|o| o != &*e.name)
                        || exclude.iter().any(|x| **x == *e.name)
                }
                _ => true,
            })
    }

    /// Runs (or reads) the checks of `target`. `background`: read every
    /// check refreshed in the background, even if its driver has stopped
    /// (then its result goes stale and fails), never running it here.
    pub(crate) fn evaluate(
        &self,
        target: Target,
        only: Option<String>,
        exclude: Vec<String>,
        background: bool,
    ) -> impl Future<Output = ProbeReport> + Send + use<> {
        let mut sources = self.sources(target);
        if let Some(only) = &only {
            sources.retain(|s| s.name() == only);
        }
        let mut unmatched: Vec<String> = exclude
            .iter()
            .filter(|x| !sources.iter().any(|s| s.name() == x.as_str()))
            .cloned()
            .collect();
        unmatched.sort();
        unmatched.dedup();
        let shared = self.handle.shared.clone();
        let background = background || shared.health.has_driver();
        let runs: Vec<_> = sources
            .into_iter()
            .map(|source| {
                let excluded = exclude.iter().any(|x| x == source.name());
                let shared = shared.clone();
                async move {
                    let name: Arc<str> = match &source {
                        Source::User(e) => e.name.clone(),
                        _ => source.name().into(),
                    };
                    let critical = match &source {
                        Source::User(e) => e.options.critical,
                        _ => true,
                    };
                    if excluded {
                        return CheckResult::new(name, None, critical, Duration::ZERO);
                    }
                    let t0 = Instant::now();
                    let health = match source {
                        Source::Ping => Health::Healthy,
                        Source::Launch if shared.is_launched() => Health::Healthy,
                        Source::Launch => Health::Unhealthy("launch not complete".into()),
                        Source::Shutdown if shared.machine.state().is_shutting_down() => {
                            Health::Unhealthy("shutting down".into())
                        }
                        Source::Shutdown => Health::Healthy,
                        Source::User(e) => {
                            let o = e.evaluate(background).await;
                            return CheckResult::new(name, Some(o.health), critical, o.took);
                        }
                    };
                    CheckResult::new(name, Some(health), critical, t0.elapsed())
                }
            })
            .collect();
        async move {
            ProbeReport {
                name: target.name(),
                checks: join_all(runs).await,
                unmatched,
            }
        }
    }
}

impl fmt::Debug for Probes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probes")
            .field("show_reasons", &self.show_reasons)
            .field("failure_status", &self.failure_status)
            .field("debug_lifecycle", &self.debug)
            .finish_non_exhaustive()
    }
}

/// A component that runs background health checks (those registered with
/// an [interval](crate::CheckOptions::interval)) until it is stopped.
/// Register it first, so that it runs from the start of the launch to the
/// end of the drain. The [admin server](crate::admin) does this itself.
#[derive(Debug, Default)]
pub struct HealthMonitor {
    _private: (),
}

impl HealthMonitor {
    /// A monitor for the lifecycle it is registered with.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Component for HealthMonitor {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let registry = cx.handle().shared.health.clone();
        registry.drive(cx.stop_signal()).await;
        Ok(())
    }
}
