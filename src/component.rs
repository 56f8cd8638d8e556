//! The [`Component`] trait and its closure adapters.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::FutureExt;

use crate::context::Context;
use crate::error::{BoxError, Error, ErrorKind, panic_message};

mod adapters;
mod handoff;

pub use adapters::{Serve, StartStop, serve, start_stop};
pub use handoff::{Handoff, StartRun, start_run};

/// A part of a service that is started, runs, and is stopped.
///
/// Implement it on your own type with plain `async fn`; every method has a
/// default, so implement only what the part needs. The lifecycle calls:
///
/// 1. [`start`](Component::start) once, bounded by the start timeout;
/// 2. [`run`](Component::run), polled from the moment `start` succeeded until
///    it returns — it runs *concurrently* with the other calls;
/// 3. [`ready`](Component::ready) until it returns `Ok(true)`, under the
///    component's [`Readiness`](crate::Readiness) policy;
/// 4. on shutdown, when the component's turn comes (reverse launch order):
///    its [stop signal](Context::stop_signal) is set, [`stop`](Component::stop)
///    is called, and the lifecycle waits for `run` to return;
/// 5. [`close`](Component::close) only if step 4 overran its budget or the
///    shutdown was forced; then the `run` future is dropped.
///
/// Methods take `&self` because `run` is in flight while the others are
/// called: keep mutable state behind a `Mutex` or atomics, and hand what
/// `start` acquires to `run` through a [`Handoff`] (or build the component
/// with [`start_run`]). `Arc<C>` and `Box<C>` are components too, so one
/// value can be registered as a component and as a
/// [health check](crate::HealthChecker).
///
/// A panic in any method is caught and becomes an [`Error`] that keeps the
/// panic message.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use lameduck::{BoxError, Component, Context};
///
/// #[derive(Default)]
/// struct Cache {
///     warm: AtomicBool,
/// }
///
/// impl Component for Cache {
///     async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
///         self.warm.store(true, Ordering::SeqCst);
///         Ok(())
///     }
///
///     async fn ready(&self, _cx: &Context) -> Result<bool, BoxError> {
///         Ok(self.warm.load(Ordering::SeqCst))
///     }
///     // `run` defaults to waiting for the stop signal; `stop` and `close`
///     // default to doing nothing.
/// }
/// # let lifecycle = lameduck::Lifecycle::builder().component("cache", Cache::default()).build().unwrap();
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
pub trait Component: Send + Sync + 'static {
    /// Acquires what the component needs (connect, bind, spawn…).
    ///
    /// `run` is polled only after `start` returned `Ok`. If `start` fails, times
    /// out or is cancelled by a shutdown request, the component counts as never
    /// started: neither `stop` nor `close` will be called.
    ///
    /// The default does nothing.
    fn start(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = cx;
        async { Ok(()) }
    }

    /// The readiness check: `Ok(true)` when the component can take work,
    /// `Ok(false)` to be asked again after the backoff, `Err` to fail at once.
    ///
    /// The default is ready as soon as `start` returned.
    fn ready(&self, cx: &Context) -> impl Future<Output = Result<bool, BoxError>> + Send {
        let _ = cx;
        async { Ok(true) }
    }

    /// The component's work. When it returns — `Ok`, `Err` or panic — the
    /// lifecycle shuts down. It should return soon after the
    /// [stop signal](Context::stop_signal) is set or `stop` is called.
    ///
    /// The default waits for the stop signal.
    fn run(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let stop = cx.stop_signal();
        async move {
            stop.await;
            Ok(())
        }
    }

    /// Asks the component to stop gracefully: stop accepting, finish what is
    /// in flight, make `run` return. Called once, bounded by the stop timeout
    /// together with the wait for `run` to end.
    ///
    /// The default does nothing (the stop signal is set anyway).
    fn stop(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = cx;
        async { Ok(()) }
    }

    /// Stops the component forcefully, after a stop overran its budget or the
    /// shutdown was forced. The `run` future is dropped right after.
    ///
    /// The default does nothing (dropping `run` is the forceful part).
    fn close(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = cx;
        async { Ok(()) }
    }
}

/// Forwards to the shared component, so one value can be registered as a
/// component and kept (or registered as a health check or drainer) too.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use lameduck::{BoxError, Component, Context, Health, HealthChecker, Lifecycle};
///
/// #[derive(Default)]
/// struct Db {
///     connected: AtomicBool,
/// }
/// impl Component for Db {
///     async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
///         self.connected.store(true, Ordering::SeqCst);
///         Ok(())
///     }
/// }
/// impl HealthChecker for Db {
///     async fn check(&self) -> Health {
///         match self.connected.load(Ordering::SeqCst) {
///             true => Health::Healthy,
///             false => Health::Unhealthy("not connected".into()),
///         }
///     }
/// }
///
/// let db = Arc::new(Db::default());
/// let lifecycle = Lifecycle::builder()
///     .component("db", db.clone())
///     .health_check("db", db)
///     .build()?;
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run())?;
/// # Ok::<(), lameduck::Error>(())
/// ```
impl<T: Component> Component for Arc<T> {
    fn start(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::start(self, cx)
    }
    fn ready(&self, cx: &Context) -> impl Future<Output = Result<bool, BoxError>> + Send {
        T::ready(self, cx)
    }
    fn run(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::run(self, cx)
    }
    fn stop(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::stop(self, cx)
    }
    fn close(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::close(self, cx)
    }
}

/// Forwards to the boxed component.
impl<T: Component> Component for Box<T> {
    fn start(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::start(self, cx)
    }
    fn ready(&self, cx: &Context) -> impl Future<Output = Result<bool, BoxError>> + Send {
        T::ready(self, cx)
    }
    fn run(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::run(self, cx)
    }
    fn stop(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::stop(self, cx)
    }
    fn close(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::close(self, cx)
    }
}

/// The outcome of one user call, panics included.
pub(crate) type CallResult<T> = Result<T, Error>;

/// Runs a user future, turning `Err` and panics into [`Error`]s.
/// (A combinator rather than an `async fn`, which would keep the future
/// twice in its state.)
pub(crate) fn guard<T>(
    fut: impl Future<Output = Result<T, BoxError>>,
) -> impl Future<Output = CallResult<T>> {
    AssertUnwindSafe(fut).catch_unwind().map(settle)
}

/// A user call's end, returned or panicked, as its [`CallResult`].
pub(crate) fn settle<T>(out: std::thread::Result<Result<T, BoxError>>) -> CallResult<T> {
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::new(ErrorKind::Failed).with_source(e)),
        Err(payload) => Err(Error::new(ErrorKind::Panicked).with_detail(panic_message(&*payload))),
    }
}
