//! Handing a value from `start` to `run`: [`Handoff`] and [`start_run`].

use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use crate::component::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::latch::lock;

/// A value handed from one call of a component to a later one: put by
/// [`start`](Component::start), taken by [`run`](Component::run).
///
/// `start` acquires what `run` consumes — a bound listener, a connection, a
/// receiver — but both take `&self`. A `Handoff` is the field that carries
/// it across, and its [`take`](Handoff::take) fails with an error that says
/// what went wrong instead of a panic or an `unwrap`.
///
/// For a component made of closures, [`start_run`] passes the value as an
/// argument instead.
///
/// # Examples
///
/// ```
/// use std::net::TcpListener;
/// use lameduck::component::Handoff;
/// use lameduck::{BoxError, Component, Context, Lifecycle};
///
/// #[derive(Default)]
/// struct Server {
///     listener: Handoff<TcpListener>,
/// }
///
/// impl Component for Server {
///     async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
///         // Bind in `start`: a port in use fails the launch, in order.
///         self.listener.put(TcpListener::bind("127.0.0.1:0")?);
///         Ok(())
///     }
///
///     async fn run(&self, cx: &Context) -> Result<(), BoxError> {
///         let listener = self.listener.take()?;
///         let _ = listener; // serve until the stop signal
///         cx.stop_signal().await;
///         Ok(())
///     }
/// }
/// # let lifecycle = Lifecycle::builder().component("http", Server::default()).build()?;
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run())?;
/// # Ok::<(), lameduck::Error>(())
/// ```
pub struct Handoff<T> {
    slot: Mutex<Option<T>>,
}

impl<T> Handoff<T> {
    /// An empty hand-off.
    #[must_use]
    pub const fn new() -> Self {
        Handoff {
            slot: Mutex::new(None),
        }
    }

    /// Stores `value` for the next [`take`](Handoff::take), replacing (and
    /// dropping) a value that was put and never taken.
    pub fn put(&self, value: T) {
        *lock(&self.slot) = Some(value);
    }

    /// Takes the value.
    ///
    /// # Errors
    ///
    /// When no value was put since the last `take`: `start` did not put one,
    /// or the value was taken already.
    pub fn take(&self) -> Result<T, BoxError> {
        lock(&self.slot)
            .take()
            .ok_or_else(|| "nothing to take: the value was never put, or taken already".into())
    }

    /// Whether a value is waiting to be taken.
    pub fn is_empty(&self) -> bool {
        lock(&self.slot).is_none()
    }
}

impl<T> Default for Handoff<T> {
    fn default() -> Self {
        Handoff::new()
    }
}

impl<T> fmt::Debug for Handoff<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff")
            .field("empty", &self.is_empty())
            .finish()
    }
}

/// A component from a `start` closure that acquires a value and a `run`
/// closure that consumes it. Made by [`start_run`].
pub struct StartRun<S, R, T> {
    start: Mutex<Option<S>>,
    run: Mutex<Option<R>>,
    value: Handoff<T>,
}

/// Makes a component whose `start` closure returns a value that its `run`
/// closure receives by value: a listener bound in `start` and served in
/// `run`, with no `Mutex<Option<_>>` in user code.
///
/// `run` is polled only once `start` succeeded, so it always receives the
/// value. Each closure is called at most once; the component stops when its
/// [stop signal](Context::stop_signal) is set, so `run` should return soon
/// after it.
///
/// # Examples
///
/// ```
/// use std::net::TcpListener;
/// use lameduck::{component, BoxError, Lifecycle};
///
/// let server = component::start_run(
///     |_cx| async { Ok::<_, BoxError>(TcpListener::bind("127.0.0.1:0")?) },
///     |listener, cx| async move {
///         let _addr = listener.local_addr()?; // serve until the stop signal
///         cx.stop_signal().await;
///         Ok::<_, BoxError>(())
///     },
/// );
/// let lifecycle = Lifecycle::builder().component("http", server).build()?;
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run())?;
/// # Ok::<(), lameduck::Error>(())
/// ```
pub fn start_run<S, SF, T, R, RF>(start: S, run: R) -> StartRun<S, R, T>
where
    S: FnOnce(Context) -> SF + Send + 'static,
    SF: Future<Output = Result<T, BoxError>> + Send + 'static,
    T: Send + 'static,
    R: FnOnce(T, Context) -> RF + Send + 'static,
    RF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    StartRun {
        start: Mutex::new(Some(start)),
        run: Mutex::new(Some(run)),
        value: Handoff::new(),
    }
}

impl<S, SF, T, R, RF> Component for StartRun<S, R, T>
where
    S: FnOnce(Context) -> SF + Send + 'static,
    SF: Future<Output = Result<T, BoxError>> + Send + 'static,
    T: Send + 'static,
    R: FnOnce(T, Context) -> RF + Send + 'static,
    RF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn start(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let start = lock(&self.start).take();
        let cx = cx.clone();
        async move {
            let start = start.ok_or("start called twice")?;
            self.value.put(start(cx).await?);
            Ok(())
        }
    }

    fn run(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let run = lock(&self.run).take();
        let value = self.value.take();
        let cx = cx.clone();
        async move {
            let run = run.ok_or("run called twice")?;
            run(value?, cx).await
        }
    }
}

impl<S, R, T> fmt::Debug for StartRun<S, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartRun").finish_non_exhaustive()
    }
}
