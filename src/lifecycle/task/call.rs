//! What every call of a component goes through: made on its first poll,
//! inside its panic guard and its span; and how a component's future holds
//! the component it calls.

use std::future::Future;
use std::sync::Arc;

use futures::future::{FutureExt, lazy};

use crate::component::{CallResult, Component, guard};
use crate::error::BoxError;
use crate::logging::in_span;

/// How a component's future holds the component: in place, or shared with
/// the task its `run` is spawned on.
pub(super) trait Owner<C>: Send + Sync + 'static {
    fn get(&self) -> &C;
    /// The component as a spawned `run` can hold it, if it can.
    fn share(&self) -> Option<Arc<C>>;
}

pub(super) struct Inline<C>(pub(super) C);

impl<C: Component> Owner<C> for Inline<C> {
    fn get(&self) -> &C {
        &self.0
    }
    fn share(&self) -> Option<Arc<C>> {
        None
    }
}

impl<C: Component> Owner<C> for Arc<C> {
    fn get(&self) -> &C {
        self
    }
    fn share(&self) -> Option<Arc<C>> {
        Some(self.clone())
    }
}

/// A user call: made on its first poll, inside the panic guard and the
/// call's span, so nothing of it runs outside either.
pub(super) fn call<T, F>(
    name: &str,
    step: &'static str,
    f: impl FnOnce() -> F,
) -> impl Future<Output = CallResult<T>>
where
    F: Future<Output = Result<T, BoxError>>,
{
    in_span(guard(lazy(move |_| f()).flatten()), name, step)
}
