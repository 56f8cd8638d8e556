//! [`Handle`]: the lifecycle seen from anywhere.

mod admission;
mod shared;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::future::join_all;

use crate::cause::ShutdownCause;
use crate::error::{BoxError, Error, ErrorKind};
use crate::health::check::run_check;
use crate::latch::{Latch, lock};
use crate::logging::event;
use crate::machine::Transition;
use crate::phase::Phase;
use crate::phase::Step;
use crate::report::Report;

pub(crate) use admission::Admission;
pub(crate) use shared::Shared;

/// A cheap, cloneable handle on a [`Lifecycle`](crate::Lifecycle), usable
/// from any thread: request a stop, wait for phases, read health and the
/// report, register parts while the lifecycle runs.
///
/// # Examples
///
/// ```
/// use lameduck::Lifecycle;
///
/// let lifecycle = Lifecycle::builder().build().unwrap();
/// let handle = lifecycle.handle();
/// std::thread::spawn(move || {
///     futures::executor::block_on(handle.ready());
///     handle.request_shutdown(None);
/// });
/// futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    /// Requests shutdown, with an optional error as its cause.
    ///
    /// Returns `true` if this call began the shutdown, `false` if it was
    /// already under way. The first cause stays the primary error; an error
    /// carried by a later request is attached to the result (see
    /// [`Error::others`]), unless [`Lifecycle::run`](crate::Lifecycle::run)
    /// has already returned. Callable from any thread, before or during
    /// `run`.
    pub fn request_shutdown(&self, error: Option<BoxError>) -> bool {
        let cause = ShutdownCause::Requested {
            with_error: error.is_some(),
        };
        let error = error.map(|e| {
            Error::new(ErrorKind::Requested)
                .with_step(Step::Request)
                .with_phase(self.phase())
                .with_source(e)
        });
        self.shared.begin_shutdown(error, cause)
    }

    /// Forces the shutdown: the rest of the lame-duck period and every
    /// graceful wait are skipped, and every remaining component's `close`
    /// is called at once, all of them bounded together by the
    /// [force budget](crate::LifecycleBuilder::force_timeout); then
    /// everything is dropped. Begins the shutdown if it has not begun.
    ///
    /// Returns `true` if this call forced it; `false` if the shutdown was
    /// already forced or the lifecycle has stopped.
    pub fn force_shutdown(&self) -> bool {
        let before = self.phase();
        if before == Phase::Stopped {
            return false;
        }
        self.shared.begin_shutdown(None, ShutdownCause::Forced);
        let forced = {
            let mut st = lock(&self.shared.state);
            // Under the lock the runner takes the errors under, after it
            // marked the lifecycle stopped: a force either lands in the
            // result or reports that it came too late (the phase machine
            // refuses to force a stopped lifecycle, or one forced already).
            let forced = self.shared.machine.apply(Transition::Force);
            if forced.is_some() {
                st.errors.push(
                    Error::new(ErrorKind::Forced)
                        .with_step(Step::Shutdown)
                        .with_phase(before),
                );
            }
            forced
        };
        if forced.is_none() {
            return false;
        }
        self.shared.machine.wake(forced);
        event!(target: "lameduck", warn, {}, "shutdown forced: graceful waits skipped");
        true
    }

    /// Why the shutdown began: `None` until it has. The first cause stays;
    /// see [`ShutdownCause`].
    ///
    /// # Examples
    ///
    /// ```
    /// use lameduck::{Lifecycle, ShutdownCause};
    ///
    /// let lifecycle = Lifecycle::builder().build().unwrap();
    /// let handle = lifecycle.handle();
    /// assert_eq!(handle.shutdown_cause(), None);
    /// handle.request_shutdown(None);
    /// handle.force_shutdown(); // the shutdown was already under way
    /// assert_eq!(
    ///     handle.shutdown_cause(),
    ///     Some(ShutdownCause::Requested { with_error: false })
    /// );
    /// # lifecycle.run_blocking().unwrap_err();
    /// ```
    pub fn shutdown_cause(&self) -> Option<ShutdownCause> {
        self.shared.machine.cause()
    }

    /// Whether shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.machine.state().is_shutting_down()
    }

    /// Resolves when shutdown is requested.
    pub fn shutting_down(&self) -> Latch {
        self.shared.shutdown.clone()
    }

    /// Former name of [`Handle::request_shutdown`].
    #[deprecated(since = "0.1.0", note = "renamed to `request_shutdown`")]
    pub fn request_stop(&self, error: Option<BoxError>) -> bool {
        self.request_shutdown(error)
    }

    /// Former name of [`Handle::force_shutdown`].
    #[deprecated(since = "0.1.0", note = "renamed to `force_shutdown`")]
    pub fn force_stop(&self) -> bool {
        self.force_shutdown()
    }

    /// Former name of [`Handle::shutting_down`].
    #[deprecated(since = "0.1.0", note = "renamed to `shutting_down`")]
    pub fn stopping(&self) -> Latch {
        self.shutting_down()
    }

    /// Resolves when [`Lifecycle::run`](crate::Lifecycle::run) has finished
    /// (or was dropped).
    pub fn stopped(&self) -> Latch {
        self.shared.stopped.clone()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.shared.phase()
    }

    /// Resolves to `true` once every component is ready (the lifecycle is
    /// *running*), or to `false` if shutdown begins first or the lifecycle
    /// stops without one (its `run` future dropped, or never run).
    ///
    /// It marks the end of the launch and resolves once: a component added
    /// later does not undo it; [`Handle::is_ready`] and the `launch` check
    /// follow such components too.
    pub fn ready(&self) -> Ready {
        Ready {
            ready: self.shared.ready.clone(),
            shutdown: self.shared.shutdown.clone(),
            stopped: self.shared.stopped.clone(),
        }
    }

    /// Whether every component has been launched and is ready, and shutdown
    /// has not begun. A component added while running makes it `false`
    /// until that component is ready, like the built-in `launch` check.
    pub fn is_ready(&self) -> bool {
        self.shared.machine.is_ready()
    }

    /// The aggregated health: `false` once shutdown has begun (or the
    /// lifecycle has stopped), `true` with no checkers, otherwise `true` when
    /// no check is unhealthy (degraded passes). Checks run concurrently.
    ///
    /// Every registered check counts, whatever its probes or criticality,
    /// and runs as it is: the probes' timeout, caching and flap damping
    /// ([`CheckOptions`](crate::CheckOptions)) do not apply, and the built-in `ping`, `launch`
    /// and `shutdown` checks are not part of it. For a probe's verdict use
    /// [`Handle::probes`].
    ///
    /// The returned future is `Send` and cancel-safe.
    pub fn is_healthy(&self) -> impl Future<Output = bool> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            // A lifecycle can also stop without a shutdown (its `run` dropped,
            // or never run): nothing serves then either.
            let stopped = |s: &Shared| s.machine.state().is_over();
            if stopped(&shared) {
                return false;
            }
            // The raw checks, without the probes' timeouts, caching or flap
            // damping; the built-in checks are not entries and do not count.
            let checks = shared.health.entries();
            join_all(checks.iter().map(|e| run_check(e.checker())))
                .await
                .iter()
                .all(|h| h.is_passing())
                && !stopped(&shared)
        }
    }

    /// A snapshot of the timeline so far.
    pub fn report(&self) -> Report {
        let mut st = lock(&self.shared.state);
        let (state, moments) = self.shared.machine.snapshot();
        Report::new(
            self.shared.epoch,
            state.phase(),
            &moments,
            st.records.share(),
        )
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("phase", &self.phase())
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Handle::ready`].
///
/// # Cancel safety
///
/// Cancel-safe: dropping it loses nothing.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Ready {
    ready: Latch,
    shutdown: Latch,
    // A lifecycle can stop without a shutdown (its `run` dropped, or never
    // run): a waiter must not hang then either.
    stopped: Latch,
}

impl Future for Ready {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<bool> {
        if Pin::new(&mut self.ready).poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        if Pin::new(&mut self.shutdown).poll(cx).is_ready()
            || Pin::new(&mut self.stopped).poll(cx).is_ready()
        {
            // Readiness may have landed between the two polls.
            return Poll::Ready(self.ready.is_set());
        }
        Poll::Pending
    }
}
