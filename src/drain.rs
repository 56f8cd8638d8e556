//! The [`Drainer`] trait: work for the flush phase.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::component::{CallResult, guard};
use crate::context::Context;
use crate::error::{BoxError, Error};
use crate::latch::lock;
use crate::logging::in_span;
use crate::names::{NameIndex, Named, validate_name};

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
/// # lifecycle.handle().request_shutdown(None);
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

/// The registered drainers. Prepending and appending are pushes onto two
/// lists; the run order (the last prepended first, then those appended, in
/// order) is laid out once, when they are taken.
#[derive(Default)]
pub(crate) struct Drainers {
    /// Prepended, in the order added.
    front: Chunked,
    back: Chunked,
    /// Positions tagged with their list: `FRONT` set for `front`.
    index: NameIndex,
}

const FRONT: u32 = 1 << 31;

impl Drainers {
    /// Adds a drainer at the front (run before those added so far) or the
    /// back, unless its name is invalid or taken: then the error, and the
    /// drainer handed back for the caller to drop outside its locks.
    pub(crate) fn push(
        &mut self,
        part: Named<dyn DynDrainer>,
        front: bool,
    ) -> Result<(), (Error, Named<dyn DynDrainer>)> {
        if let Err(e) = validate_name(&part.0, "drainer") {
            return Err((e, part));
        }
        let list = if front { &self.front } else { &self.back };
        let tag = match u32::try_from(list.len) {
            Ok(at) if at < FRONT => at | if front { FRONT } else { 0 },
            _ => return Err((Error::config("too many drainers"), part)),
        };
        let (fronts, backs) = (&self.front, &self.back);
        let name_at = |tag: u32| {
            let list = if tag & FRONT == 0 { backs } else { fronts };
            list.name((tag & !FRONT) as usize)
        };
        if self.index.insert(&part.0, tag, name_at).is_err() {
            let e = Error::config("duplicate drainer name").with_component(&part.0);
            return Err((e, part));
        }
        if front {
            self.front.push(part);
        } else {
            self.back.push(part);
        }
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.front.len + self.back.len
    }
}

/// The drainers in run order.
impl From<Drainers> for Vec<Named<dyn DynDrainer>> {
    fn from(drainers: Drainers) -> Self {
        let mut all = Vec::with_capacity(drainers.len());
        for chunk in drainers.front.chunks.into_iter().rev() {
            all.extend(chunk.into_iter().rev());
        }
        for chunk in drainers.back.chunks {
            all.extend(chunk);
        }
        all
    }
}

/// A list that grows by whole chunks once past the first, so growing never
/// moves what it holds: at 100,000 drainers a doubling vector copies each
/// one about twice more, out of cache.
#[derive(Default)]
struct Chunked {
    chunks: Vec<Vec<Named<dyn DynDrainer>>>,
    len: usize,
}

const CHUNK: usize = 1024;

impl Chunked {
    fn push(&mut self, part: Named<dyn DynDrainer>) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(part),
            // The first chunk grows as a vector does: few drainers stay cheap.
            None => self.chunks.push(vec![part]),
            Some(_) => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(part);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    fn name(&self, at: usize) -> &str {
        &self.chunks[at / CHUNK][at % CHUNK].0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    #[test]
    fn drainers_run_in_the_order_a_deque_would_give_and_names_stay_unique() {
        let noop: Arc<dyn DynDrainer> = Arc::new(drainer_fn(|_cx| async { Ok::<_, BoxError>(()) }));
        let mut drainers = Drainers::default();
        let mut model = VecDeque::new();
        // Enough for both lists to span several chunks.
        let n = 3 * CHUNK + 7;
        for i in 0..n {
            let name = format!("d{i}");
            // Prepend on every third, append otherwise.
            let front = i % 3 == 0;
            assert!(
                drainers
                    .push((name.as_str().into(), noop.clone()), front)
                    .is_ok()
            );
            if front {
                model.push_front(name);
            } else {
                model.push_back(name);
            }
            let (e, _) = drainers
                .push((format!("d{}", i / 2).into(), noop.clone()), !front)
                .unwrap_err();
            assert!(e.to_string().contains("duplicate"), "{e}");
        }
        assert_eq!(drainers.len(), n);
        let order: Vec<String> = Vec::from(drainers)
            .into_iter()
            .map(|(name, _)| name.to_string())
            .collect();
        assert_eq!(order, Vec::from(model));
    }
}
