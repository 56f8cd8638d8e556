//! The [`HealthChecker`] trait and the [`Health`] it reports.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use crate::error::panic_message;

/// The result of one health check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Health {
    /// Everything is fine.
    Healthy,
    /// Working, but impaired; the probe still passes, with a warning.
    Degraded(String),
    /// Not working; a critical check in this state fails the probe.
    Unhealthy(String),
}

impl Health {
    /// Whether the check passes (healthy or degraded).
    pub fn is_passing(&self) -> bool {
        !matches!(self, Health::Unhealthy(_))
    }

    /// Whether the check is fully healthy.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy)
    }

    /// The reason given for a degraded or unhealthy result.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Degraded(r) | Health::Unhealthy(r) => Some(r),
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Degraded(r) => write!(f, "degraded: {r}"),
            Health::Unhealthy(r) => write!(f, "unhealthy: {r}"),
        }
    }
}

/// A health check, aggregated by the lifecycle into
/// [`Handle::is_healthy`](crate::Handle::is_healthy).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use lameduck::{Health, HealthChecker};
///
/// struct QueueDepth(AtomicUsize);
/// impl HealthChecker for QueueDepth {
///     async fn check(&self) -> Health {
///         match self.0.load(Ordering::Relaxed) {
///             0..=999 => Health::Healthy,
///             n @ 1000..=9999 => Health::Degraded(format!("{n} queued")),
///             n => Health::Unhealthy(format!("{n} queued")),
///         }
///     }
/// }
/// let lifecycle = lameduck::Lifecycle::builder()
///     .health_check("queue", QueueDepth(AtomicUsize::new(5)))
///     .build()
///     .unwrap();
/// assert!(futures::executor::block_on(lifecycle.handle().is_healthy()));
/// ```
pub trait HealthChecker: Send + Sync + 'static {
    /// Reports the current health. A panic counts as unhealthy.
    fn check(&self) -> impl Future<Output = Health> + Send;
}

/// Forwards to the shared checker, so the value a check inspects can also be
/// registered as a component.
impl<T: HealthChecker> HealthChecker for Arc<T> {
    fn check(&self) -> impl Future<Output = Health> + Send {
        T::check(self)
    }
}

/// Forwards to the boxed checker.
impl<T: HealthChecker> HealthChecker for Box<T> {
    fn check(&self) -> impl Future<Output = Health> + Send {
        T::check(self)
    }
}

pub(crate) trait DynHealthChecker: Send + Sync {
    fn check(self: Arc<Self>) -> BoxFuture<'static, Health>;
}

impl<H: HealthChecker> DynHealthChecker for H {
    fn check(self: Arc<Self>) -> BoxFuture<'static, Health> {
        Box::pin(async move { HealthChecker::check(&*self).await })
    }
}

/// Runs one check, turning a panic into an unhealthy result.
pub(crate) async fn run_check(checker: Arc<dyn DynHealthChecker>) -> Health {
    match AssertUnwindSafe(checker.check()).catch_unwind().await {
        Ok(h) => h,
        Err(p) => Health::Unhealthy(format!("check panicked: {}", panic_message(&*p))),
    }
}

/// A [`HealthChecker`] made from a closure that returns a future. Made by
/// [`check_fn`].
pub struct FnCheck<F>(F);

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck").finish_non_exhaustive()
    }
}

/// Makes a [`HealthChecker`] from a closure.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use lameduck::{check_fn, Health};
///
/// let connected = Arc::new(AtomicBool::new(true));
/// let check = check_fn(move || {
///     let up = connected.load(Ordering::Relaxed);
///     async move {
///         if up { Health::Healthy } else { Health::Unhealthy("disconnected".into()) }
///     }
/// });
/// # let _ = check;
/// ```
pub fn check_fn<F, Fut>(f: F) -> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Health> + Send,
{
    FnCheck(f)
}

impl<F, Fut> HealthChecker for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Health> + Send,
{
    fn check(&self) -> impl Future<Output = Health> + Send {
        (self.0)()
    }
}
