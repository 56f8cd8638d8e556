//! [`LifecycleBuilder`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::order::LaunchOrder;
use super::parts::Parts;
use super::runner::{Runner, Spawner};
use super::watchdog::Watchdog;
use super::{ComponentOptions, Lifecycle};
use crate::component::Component;
use crate::context::Context;
use crate::drain::{Drainer, drainer_fn};
use crate::error::{BoxError, Error};
use crate::handle::{Handle, Shared};
use crate::health::{CheckOptions, HealthChecker};
use crate::latch::lock;

mod staged;

use self::staged::{Part, Staged};

/// Builds a [`Lifecycle`]. Made by [`Lifecycle::builder`].
///
/// Components launch in the order they are added, unless
/// [`ComponentOptions::depends_on`] names their dependencies: each then
/// launches after them. Invalid options, duplicate names, unknown
/// dependencies and dependency cycles are reported by
/// [`build`](LifecycleBuilder::build).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::{drainer_fn, BoxError, Component, ComponentOptions, Lifecycle, Readiness};
///
/// struct Db;
/// impl Component for Db {}
/// struct Api;
/// impl Component for Api {}
///
/// let lifecycle = Lifecycle::builder()
///     .shutdown_timeout(Duration::from_secs(20))
///     .lame_duck(Duration::from_secs(5))
///     .component("db", Db)
///     .component_with(
///         "api",
///         Api,
///         ComponentOptions::new().readiness(Readiness::new().attempts(20)),
///     )
///     .drainer("outbox", drainer_fn(|_cx| async { Ok::<_, BoxError>(()) }))
///     .stop_hook("flush-logs", |_cx| async { Ok::<_, BoxError>(()) })
///     .build()
///     .unwrap();
/// # drop(lifecycle);
/// ```
#[must_use = "a builder does nothing until built"]
pub struct LifecycleBuilder {
    // Boxed whole: the builder moves on every call, as one pointer.
    staged: Box<Staged>,
}

impl LifecycleBuilder {
    pub(crate) fn new() -> Self {
        LifecycleBuilder {
            staged: Box::default(),
        }
    }

    /// The bound on the whole shutdown, from the request to the return of
    /// [`Lifecycle::run`], lame-duck period included. Default 30 s.
    ///
    /// Zero means no graceful time at all: no lame duck, and each
    /// component's `stop`, the wait for its `run`, its `close`, each drainer
    /// and each stop hook is polled once; whatever does not finish on that
    /// poll is abandoned (its future dropped) and recorded as a timeout.
    /// [`Duration::MAX`] (or any timeout too long for the clock) means no
    /// bound: only the per-component budgets and a forced shutdown end the
    /// waits.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.staged.config.shutdown_timeout = timeout;
        self
    }

    /// The budget of a forced shutdown ([`Handle::force_shutdown`](crate::Handle::force_shutdown)
    /// or a second signal): from the moment the force is seen, every
    /// remaining component's `close` and every remaining stop hook run at
    /// once, all bounded together by this budget, and [`Lifecycle::run`]
    /// returns. Default 1 s.
    ///
    /// Zero polls each of them once: what completes synchronously completes,
    /// any wait is abandoned. [`Duration::MAX`] leaves them bounded by the
    /// shutdown timeout and each component's close timeout only.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use lameduck::Lifecycle;
    ///
    /// let lifecycle = Lifecycle::builder()
    ///     .force_timeout(Duration::from_millis(200))
    ///     .build()
    ///     .unwrap();
    /// # drop(lifecycle);
    /// ```
    pub fn force_timeout(mut self, budget: Duration) -> Self {
        self.staged.config.force_timeout = budget;
        self
    }

    /// How long readiness fails while every component keeps serving, before
    /// the drain begins, so that load balancers stop sending traffic first.
    /// Default zero; behind a Kubernetes Service, a few seconds. Capped by
    /// the shutdown timeout; [`Duration::MAX`] lasts until then.
    ///
    /// Skipped when the lifecycle never became ready (its launch failed or
    /// was stopped): no load balancer routes to it. A forced shutdown cuts it
    /// short.
    pub fn lame_duck(mut self, period: Duration) -> Self {
        self.staged.config.lame_duck = period;
        self
    }

    /// Adds a component with default [`ComponentOptions`].
    pub fn component<C: Component>(mut self, name: impl Into<String>, component: C) -> Self {
        // Made an `Arc<str>` at once: the `String` is freed while its memory
        // is fresh for the allocator, before the next name is made.
        let name: Arc<str> = name.into().into();
        self.staged.add_component(name, Box::new(component), None);
        self
    }

    /// Adds a component with options.
    pub fn component_with<C: Component>(
        mut self,
        name: impl Into<String>,
        component: C,
        options: ComponentOptions,
    ) -> Self {
        // Made an `Arc<str>` at once: the `String` is freed while its memory
        // is fresh for the allocator, before the next name is made.
        let name: Arc<str> = name.into().into();
        self.staged
            .add_component(name, Box::new(component), Some(options));
        self
    }

    /// Appends a drainer: drainers run in the flush phase, in order.
    pub fn drainer<D: Drainer>(mut self, name: impl Into<String>, drainer: D) -> Self {
        self.staged
            .add_drainer(name.into(), Arc::new(drainer), false);
        self
    }

    /// Prepends a drainer: it runs before every drainer added so far.
    pub fn prepend_drainer<D: Drainer>(mut self, name: impl Into<String>, drainer: D) -> Self {
        self.staged
            .add_drainer(name.into(), Arc::new(drainer), true);
        self
    }

    /// Adds a health check, aggregated by
    /// [`Handle::is_healthy`](crate::Handle::is_healthy).
    pub fn health_check<H: HealthChecker>(self, name: impl Into<String>, check: H) -> Self {
        self.health_check_with(name, check, CheckOptions::default())
    }

    /// Adds a health check with options: the probes it belongs to
    /// (readiness by default), criticality, timeout, caching, interval and
    /// flap damping. See [`Handle::probes`](crate::Handle::probes).
    pub fn health_check_with<H: HealthChecker>(
        mut self,
        name: impl Into<String>,
        check: H,
        options: CheckOptions,
    ) -> Self {
        self.staged
            .add_check(name.into().into(), Arc::new(check), options);
        self
    }

    /// Adds a stop hook, run in the last phase. Hooks run in reverse order
    /// of registration, each bounded by what is left of the shutdown timeout.
    pub fn stop_hook<F, Fut>(mut self, name: impl Into<String>, hook: F) -> Self
    where
        F: FnOnce(Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.staged
            .parts
            .push(Part::Hook(name.into().into(), Arc::new(drainer_fn(hook))));
        self
    }

    /// Arms a hard-exit watchdog: if shutdown has not finished `timeout`
    /// after it began, a dedicated thread ends the process with
    /// `std::process::exit(code)`. This covers a component that blocks its
    /// thread, which no future-based timeout can interrupt.
    ///
    /// Choose `timeout` above the shutdown timeout. Zero is a configuration
    /// error (it would end the process the instant shutdown begins); a
    /// timeout too long for the clock, such as [`Duration::MAX`], never
    /// fires.
    pub fn watchdog(mut self, timeout: Duration, code: i32) -> Self {
        self.staged.watchdog = Some((timeout, code));
        self
    }

    /// Shuts the lifecycle down on signals: by default the first SIGINT or
    /// SIGTERM (Ctrl-C on Windows) requests a stop — lame duck, drain, flush,
    /// stop — and any later one forces it. See [`Signals`](crate::Signals)
    /// and the [`signals`](crate::signals) module for the rules, custom
    /// paths and what happens to each signal's default action.
    ///
    /// The listener starts in [`build`](LifecycleBuilder::build), so a
    /// signal that arrives before [`Lifecycle::run`] is polled is not lost
    /// (`run` then goes straight to shutdown), and stops when the lifecycle
    /// stops.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use lameduck::{Lifecycle, Signals};
    ///
    /// let lifecycle = Lifecycle::builder()
    ///     .lame_duck(Duration::from_secs(3))
    ///     .signals(Signals::new())
    ///     .build()?;
    /// let outcome = lifecycle.run_blocking(); // until SIGINT or SIGTERM
    /// let code: std::process::ExitCode = lameduck::exit_code(&outcome);
    /// # let _ = code;
    /// # Ok::<(), lameduck::Error>(())
    /// ```
    #[cfg(feature = "signals")]
    #[cfg_attr(docsrs, doc(cfg(feature = "signals")))]
    pub fn signals(mut self, signals: crate::signals::Signals) -> Self {
        self.staged.signals = Some(signals);
        self
    }

    /// Puts each component's `run` on its own task, through `spawn`, instead
    /// of polling it inside [`Lifecycle::run`]. The lifecycle keeps a handle
    /// that cancels the task when dropped.
    ///
    /// Only `run` goes there: `start`, `ready`, `stop` and `close` are
    /// always called on the task that polls [`Lifecycle::run`], which then
    /// shares each component with its `run`'s task (one allocation more per
    /// component).
    ///
    /// An executor that drops such a task before `run` finished (a runtime
    /// shutting down) makes it an error of that component, of kind
    /// [`Dropped`](crate::ErrorKind::Dropped), and starts the shutdown. A
    /// `run` that ends, or panics, on its own task just as the lifecycle
    /// closes it still reaches the result: `Lifecycle::run` waits for a task
    /// caught in the middle of a poll, within the shutdown's bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # let rt = tokio::runtime::Runtime::new().unwrap();
    /// # rt.block_on(async {
    /// let lifecycle = lameduck::Lifecycle::builder()
    ///     .spawner(|task| {
    ///         tokio::spawn(task);
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # lifecycle.handle().request_shutdown(None);
    /// # lifecycle.run().await.unwrap();
    /// # });
    /// ```
    pub fn spawner<S>(mut self, spawn: S) -> Self
    where
        S: Fn(BoxFuture<'static, ()>) + Send + Sync + 'static,
    {
        self.staged.config.spawner = Some(Spawner(Arc::new(spawn)));
        self
    }

    /// Builds the lifecycle.
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error naming the part for a
    /// duplicate name (within components, drainers, health checks or stop
    /// hooks) or an invalid option such as zero readiness attempts; a
    /// `Config` error for an invalid name (empty, or with a control
    /// character or `/`) or a zero watchdog timeout; once every component
    /// passed those, a `Config` error naming the component for a dependency
    /// no component has, or naming the whole cycle (`a -> b -> a`).
    pub fn build(self) -> Result<Lifecycle, Error> {
        let (parts, rx) = Parts::new();
        let handle = Handle {
            shared: Arc::new(Shared::new(Box::new(parts))),
        };
        let staged = *self.staged;
        let mut parts = staged.parts;
        if let Some((before, _)) = &staged.refused {
            parts.truncate(*before);
        }
        let components = parts
            .iter()
            .filter(|p| matches!(p, Part::Component(..)))
            .count();
        handle.reserve(components, parts.len() - components);
        let named = parts.iter().any(|p| match p {
            Part::Component(_, dependencies) => dependencies.is_some(),
            Part::Hook(..) => false,
        });
        let mut order = LaunchOrder::new(&handle, components, named);
        let mut admission = handle.admission();
        for part in parts {
            match part {
                Part::Component(reg, dependencies) => {
                    order.push(&mut admission, reg, dependencies)?;
                }
                Part::Hook(name, h) => admission.hook(name, h)?,
            }
        }
        drop(admission);
        if let Some((_, e)) = staged.refused {
            return Err(e);
        }
        let initial = order.admit()?;
        // Nobody else holds the handle yet: no shutdown can have begun.
        Parts::of(&handle.shared).lists().drainers = staged.drainers;
        handle.shared.health.install(staged.checks);
        if staged
            .watchdog
            .is_some_and(|(timeout, _)| timeout.is_zero())
        {
            return Err(Error::config("watchdog timeout must not be zero"));
        }
        // Last fallible step, so a failed build leaves no listener behind.
        #[cfg(feature = "signals")]
        if let Some(signals) = &staged.signals {
            signals.listen(&handle)?.detach();
        }
        if let Some((timeout, code)) = staged.watchdog {
            *lock(&handle.shared.watchdog) = Watchdog::spawn(timeout, code);
        }
        let runner = Runner::new(handle.clone(), staged.config, rx, initial);
        Ok(Lifecycle { handle, runner })
    }
}

impl fmt::Debug for LifecycleBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleBuilder")
            .field("shutdown_timeout", &self.staged.config.shutdown_timeout)
            .field("force_timeout", &self.staged.config.force_timeout)
            .field("lame_duck", &self.staged.config.lame_duck)
            .field(
                "parts",
                &(self.staged.parts.len() + self.staged.drainers.len() + self.staged.checks.len()),
            )
            .finish_non_exhaustive()
    }
}
