//! What every call of a component goes through: made on its first poll,
//! inside its panic guard and its span; and how a component's future holds
//! the component it calls.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use futures::future::Either;

use crate::component::{CallResult, Component, settle};
use crate::error::BoxError;
use crate::lifecycle::cell::Spawner;
use crate::logging::{in_span, made_in_span};

/// How a component's future holds the component: in place, or shared with
/// the task its `run` is spawned on.
pub(super) trait Owner<C>: Send + Sync + 'static {
    fn get(&self) -> &C;
    /// The component as a spawned `run` can hold it, and the spawner that
    /// puts it on its task, if `run` is spawned.
    fn share(&self) -> Option<(Arc<C>, &Spawner)>;
}

pub(super) struct Inline<C>(pub(super) C);

impl<C: Component> Owner<C> for Inline<C> {
    fn get(&self) -> &C {
        &self.0
    }
    fn share(&self) -> Option<(Arc<C>, &Spawner)> {
        None
    }
}

/// A component whose `run` is spawned: shared with that task, and the
/// spawner kept here rather than sent with every launch.
pub(super) struct Spawned<C> {
    pub(super) c: Arc<C>,
    pub(super) spawner: Spawner,
}

impl<C: Component> Owner<C> for Spawned<C> {
    fn get(&self) -> &C {
        &self.c
    }
    fn share(&self) -> Option<(Arc<C>, &Spawner)> {
        Some((self.c.clone(), &self.spawner))
    }
}

/// A user call: made on its first poll, inside the panic guard and the
/// call's span, so nothing of it runs outside either. The call lives in
/// `slot`, pinned by the caller: first the closure that makes it, then its
/// future, dropped as it ends.
pub(super) fn call<'a, T, M, F>(
    name: &str,
    step: &'static str,
    slot: Pin<&'a mut CallSlot<M, F>>,
) -> impl Future<Output = CallResult<T>> + 'a
where
    M: Fn() -> F + Unpin + 'a,
    F: Future<Output = Result<T, BoxError>>,
{
    in_span(Call { slot }, name, step)
}

/// A call made at once, in the panic guard and its span: for `run`, made
/// by the future that keeps it when that future is first polled, and then
/// awaited in place inside one `catch_unwind` (see [`settled`]), which
/// needs no slot nor a pointer to one.
pub(super) fn made<F>(
    name: &str,
    step: &'static str,
    make: impl FnOnce() -> F,
) -> std::thread::Result<impl Future<Output = F::Output>>
where
    F: Future,
{
    catch_unwind(AssertUnwindSafe(|| made_in_span(name, step, make)))
}

/// A call [`made`], awaited inside one `catch_unwind`, with its end as a
/// [`CallResult`]. A macro for the `return` and the `await`: in the
/// future that keeps the call, not in one of its own.
macro_rules! settled {
    ($made:expr) => {{
        use futures::future::FutureExt as _;
        let fut = match $made {
            Ok(fut) => fut,
            Err(payload) => return crate::component::settle(Err(payload)),
        };
        crate::component::settle(std::panic::AssertUnwindSafe(fut).catch_unwind().await)
    }};
}
pub(super) use settled;

/// Where a call lives: the closure that makes it (`Left`), its future
/// (`Right`), or nothing once it ended.
pub(super) type CallSlot<M, F> = Option<Either<M, F>>;

/// A call not made yet, to pin in its slot.
pub(super) fn to_make<M, F>(make: M) -> CallSlot<M, F> {
    Some(Either::Left(make))
}

/// One future for the whole call, in place of a stack of combinators
/// (`lazy`, `flatten`, `catch_unwind`, `map`) each with its own state and
/// its own poll: it makes the call on its first poll and polls it inside
/// one `catch_unwind`, so a panic in either is the call's.
struct Call<'a, M, F> {
    slot: Pin<&'a mut CallSlot<M, F>>,
}

impl<T, M, F> Future for Call<'_, M, F>
where
    M: Fn() -> F + Unpin,
    F: Future<Output = Result<T, BoxError>>,
{
    type Output = CallResult<T>;

    fn poll(self: Pin<&mut Self>, t: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let slot = &mut self.get_mut().slot;
        let out = catch_unwind(AssertUnwindSafe(|| {
            if let Some(Either::Left(make)) = slot.as_mut().as_pin_mut().map(Either::as_pin_mut) {
                let fut = (Pin::into_inner(make))();
                slot.set(Some(Either::Right(fut)));
            }
            let Some(Either::Right(fut)) = slot.as_mut().as_pin_mut().map(Either::as_pin_mut)
            else {
                panic!("a call polled after it ended");
            };
            let out = fut.poll(t);
            if out.is_ready() {
                // Dropped as it ends, still inside the guard.
                slot.set(None);
            }
            out
        }));
        // A call that panicked stays in its slot, dropped with it.
        match out {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(settle(Ok(out))),
            Err(payload) => Poll::Ready(settle(Err(payload))),
        }
    }
}
