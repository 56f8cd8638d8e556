//! What every call of a component goes through: made on its first poll,
//! inside its panic guard and its span; and how a component's future holds
//! the component it calls.

use std::future::Future;
use std::sync::Arc;

use futures::future::{FutureExt, lazy};

use crate::component::{CallResult, Component, guard};
use crate::error::BoxError;
use crate::lifecycle::cell::Spawner;
use crate::logging::in_span;

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
