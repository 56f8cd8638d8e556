//! [`Handle`]: the lifecycle seen from anywhere.

mod shared;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};

use futures::future::join_all;

use crate::cause::ShutdownCause;
use crate::component::{Component, DynComponent};
use crate::drain::{Drainer, DynDrainer, drainer_fn};
use crate::error::{BoxError, Error, ErrorKind};
use crate::health::{CheckOptions, DynHealthChecker, Entry, HealthChecker, Probes, run_check};
use crate::latch::{Latch, lock};
use crate::lifecycle::options::ComponentOptions;
use crate::logging::event;
use crate::phase::Phase;
use crate::phase::Step;
use crate::report::{ComponentRecord, Report};

pub(crate) use shared::{Named, Registration, Shared, claim, validate_name};

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
///     handle.request_stop(None);
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
    pub fn request_stop(&self, error: Option<BoxError>) -> bool {
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
    pub fn force_stop(&self) -> bool {
        let before = self.phase();
        if before == Phase::Stopped {
            return false;
        }
        self.shared.begin_shutdown(None, ShutdownCause::Forced);
        let forced = {
            let mut st = lock(&self.shared.state);
            // Checked under the lock the runner takes the errors under, after
            // it marked the lifecycle stopped: a force either lands in the
            // result or reports that it came too late.
            if self.shared.force.is_set() || self.phase() == Phase::Stopped {
                false
            } else {
                // Recorded before the signal is set: the runner, once woken
                // by it, may finish at once and must find the error.
                st.errors.push(
                    Error::new(ErrorKind::Forced)
                        .with_step(Step::Shutdown)
                        .with_phase(before),
                );
                self.shared.force.raise()
            }
        };
        if forced {
            self.shared.force.wake();
            event!(target: "lameduck", warn, {}, "shutdown forced: graceful waits skipped");
        }
        forced
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
    /// handle.request_stop(None);
    /// handle.force_stop(); // the shutdown was already under way
    /// assert_eq!(
    ///     handle.shutdown_cause(),
    ///     Some(ShutdownCause::Requested { with_error: false })
    /// );
    /// # lifecycle.run_blocking().unwrap_err();
    /// ```
    pub fn shutdown_cause(&self) -> Option<ShutdownCause> {
        lock(&self.shared.state).cause.clone()
    }

    /// Whether shutdown has been requested.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_set()
    }

    /// Resolves when shutdown is requested.
    pub fn stopping(&self) -> Latch {
        self.shared.shutdown.clone()
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
        self.shared.is_launched() && !self.shared.shutdown.is_set()
    }

    /// The aggregated health: `false` once shutdown has begun (or the
    /// lifecycle has stopped), `true` with no checkers, otherwise `true` when
    /// no check is unhealthy (degraded passes). Checks run concurrently.
    ///
    /// Every registered check counts, whatever its probes or criticality,
    /// and runs as it is: the probes' timeout, caching and flap damping
    /// ([`CheckOptions`]) do not apply, and the built-in `ping`, `launch`
    /// and `shutdown` checks are not part of it. For a probe's verdict use
    /// [`Handle::probes`].
    ///
    /// The returned future is `Send` and cancel-safe.
    pub fn is_healthy(&self) -> impl Future<Output = bool> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            // A lifecycle can also stop without a shutdown (its `run` dropped,
            // or never run): nothing serves then either.
            let stopped = |s: &Shared| s.shutdown.is_set() || s.phase() == Phase::Stopped;
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
        let st = lock(&self.shared.state);
        Report::new(
            self.shared.epoch,
            st.shutdown_at,
            st.cause.clone(),
            st.records.clone(),
            self.phase(),
        )
    }

    /// Registers a component while the lifecycle runs, with default
    /// options. It is launched after those already registered, and stopped
    /// before them. Until it is ready, the built-in `launch` readiness check
    /// fails and [`Handle::is_ready`] is `false`.
    ///
    /// # Errors
    ///
    /// A [`ShuttingDown`](ErrorKind::ShuttingDown) error once shutdown has
    /// begun, a [`Config`](ErrorKind::Config) error for a duplicate name, an
    /// invalid name (empty, or with a control character or `/`) or an
    /// invalid option; either way nothing changes.
    pub fn add_component<C: Component>(
        &self,
        name: impl Into<String>,
        component: C,
    ) -> Result<(), Error> {
        self.add_component_with(name, component, ComponentOptions::default())
    }

    /// Registers a component with options. See [`Handle::add_component`].
    pub fn add_component_with<C: Component>(
        &self,
        name: impl Into<String>,
        component: C,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        self.insert_component(name.into().into(), Arc::new(component), options)
    }

    pub(crate) fn insert_component(
        &self,
        name: Arc<str>,
        component: Arc<dyn DynComponent>,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let mut st = lock(&self.shared.state);
        // A refused component is dropped by the caller, after the lock is
        // released: its `Drop` may call back into a handle.
        let registration = admit(&self.shared, &mut st, name, &component, options)?;
        // Sent under the lock, so the runner receives components in the
        // order of their records, and none after shutdown began.
        if let Err(refused) = self.shared.register_tx.unbounded_send(registration) {
            // The runner is gone (its channel closed): undo the admission.
            let refused = refused.into_inner();
            st.component_names.remove(&refused.name);
            st.records.pop();
            self.shared.launching.fetch_sub(1, Ordering::AcqRel);
            drop(st);
            drop(refused);
            return Err(Error::shutting_down());
        }
        Ok(())
    }

    /// Makes room for more parts, so a large builder does not rehash the
    /// name sets and grow the lists as it goes.
    pub(crate) fn reserve(&self, components: usize, hooks: usize) {
        let mut st = lock(&self.shared.state);
        st.component_names.reserve(components);
        st.records.reserve(components);
        st.hook_names.reserve(hooks);
        st.hooks.reserve(hooks);
    }

    /// Admits a component registered on the builder: validated and recorded
    /// like any other, but handed straight to the runner rather than sent
    /// through the registration channel.
    pub(crate) fn admit_component(
        &self,
        name: Arc<str>,
        component: Arc<dyn DynComponent>,
        options: ComponentOptions,
    ) -> Result<Registration, Error> {
        let mut st = lock(&self.shared.state);
        let admitted = admit(&self.shared, &mut st, name, &component, options);
        drop(st);
        admitted
    }

    /// Appends a drainer (it runs after those already registered).
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn add_drainer<D: Drainer>(
        &self,
        name: impl Into<String>,
        drainer: D,
    ) -> Result<(), Error> {
        self.insert_drainer(name.into().into(), Arc::new(drainer), false)
    }

    /// Prepends a drainer (it runs before those already registered).
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn prepend_drainer<D: Drainer>(
        &self,
        name: impl Into<String>,
        drainer: D,
    ) -> Result<(), Error> {
        self.insert_drainer(name.into().into(), Arc::new(drainer), true)
    }

    pub(crate) fn insert_drainer(
        &self,
        name: Arc<str>,
        drainer: Arc<dyn DynDrainer>,
        front: bool,
    ) -> Result<(), Error> {
        let mut st = lock(&self.shared.state);
        self.shared.refuse_if_shutting_down(&st)?;
        let refused = st.drainers.push((name, drainer), front);
        drop(st);
        // A refused drainer is dropped here, after the lock: its `Drop` may
        // use a handle.
        refused.map_err(|(e, _drainer)| e)
    }

    /// Registers a health check.
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn add_health_check<H: HealthChecker>(
        &self,
        name: impl Into<String>,
        check: H,
    ) -> Result<(), Error> {
        self.insert_check(name.into().into(), Arc::new(check), CheckOptions::default())
    }

    /// Registers a health check with options: its probes, criticality,
    /// timeout, caching, interval and flap damping.
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`]; also a [`Config`](ErrorKind::Config)
    /// error for a name the library's built-in checks use (`ping`, `launch`,
    /// `shutdown`) or an invalid option.
    pub fn add_health_check_with<H: HealthChecker>(
        &self,
        name: impl Into<String>,
        check: H,
        options: CheckOptions,
    ) -> Result<(), Error> {
        self.insert_check(name.into().into(), Arc::new(check), options)
    }

    pub(crate) fn insert_check(
        &self,
        name: Arc<str>,
        check: Arc<dyn DynHealthChecker>,
        options: CheckOptions,
    ) -> Result<(), Error> {
        let entry = Entry::checked(name.clone(), check, options)?;
        let st = lock(&self.shared.state);
        self.shared.refuse_if_shutting_down(&st)?;
        // Under the state lock, so no check lands after shutdown began.
        let refused = self.shared.health.try_push(entry);
        drop(st);
        match refused {
            Ok(()) => Ok(()),
            // Dropped here, after the lock: its `Drop` may use a handle.
            Err(entry) => {
                drop(entry);
                Err(Error::config("duplicate health check name").with_component(&name))
            }
        }
    }

    /// The Kubernetes probes of this lifecycle: evaluate them, or answer
    /// `/livez`, `/readyz`, `/startupz` and `/healthz` requests from any
    /// HTTP server.
    pub fn probes(&self) -> Probes {
        Probes::new(self.clone())
    }

    /// Registers a stop hook: a closure run in the last phase, after the
    /// drainers. Hooks run in reverse registration order.
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn add_stop_hook<F, Fut>(&self, name: impl Into<String>, hook: F) -> Result<(), Error>
    where
        F: FnOnce(crate::Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.insert_hook(name.into().into(), Arc::new(drainer_fn(hook)))
    }

    pub(crate) fn insert_hook(
        &self,
        name: Arc<str>,
        hook: Arc<dyn DynDrainer>,
    ) -> Result<(), Error> {
        let mut st = lock(&self.shared.state);
        self.shared.refuse_if_shutting_down(&st)?;
        claim(&mut st.hook_names, &name, "stop hook")?;
        st.hooks.push((name, hook));
        Ok(())
    }
}

/// Validates a component, claims its name and adds its report row: what
/// every registration does, from the builder or a handle.
fn admit(
    shared: &Shared,
    st: &mut shared::State,
    name: Arc<str>,
    component: &Arc<dyn DynComponent>,
    options: ComponentOptions,
) -> Result<Registration, Error> {
    validate_name(&name, "component")?;
    options.validate(&name)?;
    shared.refuse_if_shutting_down(st)?;
    claim(&mut st.component_names, &name, "component")?;
    st.records.push(ComponentRecord::new(name.clone()));
    shared.launching.fetch_add(1, Ordering::AcqRel);
    Ok(Registration {
        name,
        component: component.clone(),
        options,
    })
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
