//! The [`Drainer`] trait: work for the flush phase.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::component::{CallResult, guard};
use crate::context::Context;
use crate::error::BoxError;
use crate::latch::lock;
use crate::logging::in_span;

/// Work done in the flush phase, after every component has stopped: flush a
/// queue, commit offsets, upload the last batch of metrics.
///
/// Drainers run one at a time, in their order: [appended] ones at the end,
/// [prepended] ones at the front. Each is bounded by what is left of the
/// shutdown timeout. A panic is caught and becomes an error.
///
/// [appended]: crate::LifecycleBuilder::drainer
/// [prepended]: crate::LifecycleBuilder::prepend_drainer
///
/// # Examples
///
/// ```
/// use lameduck::{BoxError, Context, Drainer};
///
/// struct Outbox;
/// impl Drainer for Outbox {
///     async fn drain(&self, cx: &Context) -> Result<(), BoxError> {
///         log::info!("{}: flushing, {:?} left", cx.name(), cx.remaining());
///         Ok(())
///     }
/// }
/// # let lifecycle = lameduck::Lifecycle::builder().drainer("outbox", Outbox).build().unwrap();
/// # lifecycle.handle().request_stop(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
pub trait Drainer: Send + Sync + 'static {
    /// Flushes what the part holds. Called once.
    fn drain(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Forwards to the shared drainer, so a component can hold the queue the
/// drainer flushes.
impl<T: Drainer> Drainer for Arc<T> {
    fn drain(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::drain(self, cx)
    }
}

/// Forwards to the boxed drainer.
impl<T: Drainer> Drainer for Box<T> {
    fn drain(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        T::drain(self, cx)
    }
}

pub(crate) trait DynDrainer: Send + Sync {
    /// `step` names the call in its span: a drainer's or a stop hook's.
    fn drain(
        self: Arc<Self>,
        cx: Context,
        step: &'static str,
    ) -> BoxFuture<'static, CallResult<()>>;
}

impl<D: Drainer> DynDrainer for D {
    fn drain(
        self: Arc<Self>,
        cx: Context,
        step: &'static str,
    ) -> BoxFuture<'static, CallResult<()>> {
        let name = cx.name.clone();
        let call = async move { guard(Drainer::drain(&*self, &cx)).await };
        Box::pin(in_span(call, &name, step))
    }
}

/// A [`Drainer`] made from a closure by [`drainer_fn`].
pub struct FnDrainer<F> {
    f: Mutex<Option<F>>,
}

/// Makes a [`Drainer`] from a closure, called at most once.
///
/// # Examples
///
/// ```
/// use lameduck::{drainer_fn, BoxError, Lifecycle};
///
/// let lifecycle = Lifecycle::builder()
///     .drainer("outbox", drainer_fn(|_cx| async { Ok::<_, BoxError>(()) }))
///     .build()
///     .unwrap();
/// # drop(lifecycle);
/// ```
pub fn drainer_fn<F, Fut>(f: F) -> FnDrainer<F>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    FnDrainer {
        f: Mutex::new(Some(f)),
    }
}

impl<F, Fut> Drainer for FnDrainer<F>
where
    F: FnOnce(Context) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    fn drain(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        let f = lock(&self.f).take();
        let cx = cx.clone();
        async move {
            match f {
                Some(f) => f(cx).await,
                None => Ok(()),
            }
        }
    }
}

impl<F> fmt::Debug for FnDrainer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnDrainer").finish_non_exhaustive()
    }
}
