//! Components made of closures: [`serve`] (a run and a shutdown) and
//! [`start_stop`] (a start and a stop).

use std::fmt;
use std::future::Future;
use std::sync::Mutex;

use super::Component;
use crate::context::Context;
use crate::error::BoxError;
use crate::latch::lock;

/// A closure the adapters call at most once.
struct OnceFn<F>(Mutex<Option<F>>);

impl<F> OnceFn<F> {
    fn new(f: F) -> Self {
        OnceFn(Mutex::new(Some(f)))
    }

    /// Calls the closure the first time; any later call fails with `again`,
    /// or succeeds doing nothing when `again` is `None`.
    fn call<Fut>(
        &self,
        cx: &Context,
        again: Option<&'static str>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send + use<F, Fut>
    where
        F: FnOnce(Context) -> Fut + Send,
        Fut: Future<Output = Result<(), BoxError>> + Send,
    {
        let f = lock(&self.0).take();
        let cx = cx.clone();
        async move {
            match (f, again) {
                (Some(f), _) => f(cx).await,
                (None, Some(again)) => Err(again.into()),
                (None, None) => Ok(()),
            }
        }
    }
}

/// A component from a blocking `serve` future plus a separate `shutdown`,
/// the shape of an HTTP server. Made by [`serve`].
pub struct Serve<R, S> {
    serve: OnceFn<R>,
    shutdown: OnceFn<S>,
}

/// Makes a component from a `serve` closure, whose future runs until the
/// service stops (it becomes [`Component::run`]), and a `shutdown` closure
/// that makes it stop gracefully (it becomes [`Component::stop`]).
///
/// This is launch-control's run/shutdown pair: the shape of an HTTP server's
/// `serve` and `shutdown`. Each closure is called at most once.
///
/// # Examples
///
/// ```
/// use lameduck::{component, BoxError, Lifecycle};
///
/// let (tx, rx) = async_channel::bounded::<()>(1);
/// let server = component::serve(
///     move |_cx| async move {
///         let _ = rx.recv().await; // serve until told to shut down
///         Ok::<_, BoxError>(())
///     },
///     move |_cx| async move {
///         tx.close();
///         Ok::<_, BoxError>(())
///     },
/// );
/// let lifecycle = Lifecycle::builder().component("http", server).build().unwrap();
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
pub fn serve<R, RF, S, SF>(serve: R, shutdown: S) -> Serve<R, S>
where
    R: FnOnce(Context) -> RF + Send + 'static,
    RF: Future<Output = Result<(), BoxError>> + Send + 'static,
    S: FnOnce(Context) -> SF + Send + 'static,
    SF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    Serve {
        serve: OnceFn::new(serve),
        shutdown: OnceFn::new(shutdown),
    }
}

impl<R, RF, S, SF> Component for Serve<R, S>
where
    R: FnOnce(Context) -> RF + Send + 'static,
    RF: Future<Output = Result<(), BoxError>> + Send + 'static,
    S: FnOnce(Context) -> SF + Send + 'static,
    SF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn run(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.serve.call(cx, Some("serve called twice"))
    }

    fn stop(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.shutdown.call(cx, None)
    }
}

impl<R, S> fmt::Debug for Serve<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve").finish_non_exhaustive()
    }
}

/// A component from a `start` and a `stop` closure, the shape of a client
/// that connects and disconnects. Made by [`start_stop`].
pub struct StartStop<A, B> {
    start: OnceFn<A>,
    stop: OnceFn<B>,
}

/// Makes a component from a `start` closure and a `stop` closure; its `run`
/// waits for the stop signal.
///
/// This is launch-control's start/stop pair. Each closure is called at most
/// once; `stop` only if `start` succeeded.
///
/// # Examples
///
/// ```
/// use lameduck::{component, BoxError, Lifecycle};
///
/// let client = component::start_stop(
///     |_cx| async { /* connect */ Ok::<_, BoxError>(()) },
///     |_cx| async { /* disconnect */ Ok::<_, BoxError>(()) },
/// );
/// let lifecycle = Lifecycle::builder().component("client", client).build().unwrap();
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
pub fn start_stop<A, AF, B, BF>(start: A, stop: B) -> StartStop<A, B>
where
    A: FnOnce(Context) -> AF + Send + 'static,
    AF: Future<Output = Result<(), BoxError>> + Send + 'static,
    B: FnOnce(Context) -> BF + Send + 'static,
    BF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    StartStop {
        start: OnceFn::new(start),
        stop: OnceFn::new(stop),
    }
}

impl<A, AF, B, BF> Component for StartStop<A, B>
where
    A: FnOnce(Context) -> AF + Send + 'static,
    AF: Future<Output = Result<(), BoxError>> + Send + 'static,
    B: FnOnce(Context) -> BF + Send + 'static,
    BF: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn start(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.start.call(cx, Some("start called twice"))
    }

    fn stop(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.stop.call(cx, None)
    }
}

impl<A, B> fmt::Debug for StartStop<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartStop").finish_non_exhaustive()
    }
}
