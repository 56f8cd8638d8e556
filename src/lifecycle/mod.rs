//! The [`Lifecycle`]: its builder, its phases, and the runner that drives it.

mod builder;
pub(crate) mod cell;
pub(crate) mod options;
mod order;
pub(crate) mod parts;
mod runner;
pub(crate) mod task;
pub(crate) mod watchdog;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures::future::BoxFuture;

pub use builder::LifecycleBuilder;
pub use options::component::ComponentOptions;
pub use options::{Backoff, Readiness};

use crate::error::Error;
use crate::handle::Handle;
use crate::report::Report;

/// A service's components, drainers, health checks and stop hooks, and the
/// rules to run them by. Made with [`Lifecycle::builder`], driven by
/// [`Lifecycle::run`].
///
/// See the [crate documentation](crate) for the phase rules.
pub struct Lifecycle {
    handle: Handle,
    runner: runner::Runner,
}

impl Lifecycle {
    /// Starts building a lifecycle.
    pub fn builder() -> LifecycleBuilder {
        LifecycleBuilder::new()
    }

    /// A handle to request a stop, watch phases, read health and register
    /// parts, from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs the lifecycle to the end: launch, run, and — once a stop is
    /// requested or a component's `run` ends — lame duck, drain, flush, stop.
    ///
    /// The future spawns nothing (unless a
    /// [spawner](LifecycleBuilder::spawner) was given): every component's
    /// `run` is polled inside it, so any executor, or
    /// `futures::executor::block_on`, can drive it.
    ///
    /// # Errors
    ///
    /// The first error recorded, with every later one attached (see
    /// [`Error::others`]). A `run` that returns `Ok` is a cause of shutdown,
    /// not an error. A failure a component was
    /// [restarted](crate::Restart) after is kept in its record, not
    /// returned; so is a failure of that restart's `stop` or `close`,
    /// unless the shutdown began before it was read.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe: dropping the future drops every component's `run`
    /// without stopping them. Use [`Handle::request_shutdown`] instead.
    pub fn run(self) -> Run {
        Run {
            inner: Box::pin(self.runner.run()),
        }
    }

    /// Runs the lifecycle on the current thread with
    /// `futures::executor::block_on`, for a synchronous `main`.
    ///
    /// # Errors
    ///
    /// As [`Lifecycle::run`].
    pub fn run_blocking(self) -> Result<Report, Error> {
        futures::executor::block_on(self.run())
    }
}

impl fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lifecycle")
            .field("phase", &self.handle.phase())
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Lifecycle::run`]. It is `Send`.
#[must_use = "futures do nothing unless polled"]
pub struct Run {
    inner: BoxFuture<'static, Result<Report, Error>>,
}

impl Future for Run {
    type Output = Result<Report, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run").finish_non_exhaustive()
    }
}
