//! A component's stop, walked by its own future on one command: `stop`,
//! then the wait for `run` to end. Only how the stop ended goes back to
//! the runner: stopped (`stop` returned and `run` ended), or `stop`'s
//! error, at once, so that it keeps its place among the run's errors (the
//! runner then waits for `run` itself). The budget is the runner's: it
//! gives up on a stop that overruns it, the wait for `run` included.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use super::call::{call, to_make};
use super::run::Running;
use super::step::step;
use crate::component::{CallResult, Component};
use crate::context::Context;

/// Walks a component's stop. `None` if the runner gave up on it (the call
/// in flight, or the wait, is dropped without another poll; `run` stays).
///
/// An `async` block rather than an `async fn`, which would keep its
/// arguments twice.
#[allow(clippy::manual_async_fn)]
pub(super) fn stop<'a, 'b, C, R>(
    c: &'a C,
    cx: &'a Context,
    running: &'a mut Running<'b, R>,
) -> impl Future<Output = Option<CallResult<()>>> + 'a
where
    C: Component,
    R: Future<Output = CallResult<()>> + 'a,
    'b: 'a,
{
    async move {
        // In a block: the call is gone before the wait.
        let stopped = {
            let slot = pin!(to_make(|| Component::stop(c, cx)));
            // Once forced, the runner closes the component instead.
            let gate = Some(&cx.handle.shared.force);
            step(call(&cx.name, "stop", slot), gate, false, None, running).await?
        };
        // A `run` that ended by now (most end in the poll that follows
        // their stop latch, before `stop` is called) leaves nothing to
        // wait for. No command to look for either: the step looked in
        // this very poll, and the runner puts one only between polls.
        if stopped.is_err() || !running.slot.is_running() {
            return Some(stopped);
        }
        poll_fn(|t| {
            if running.cell.take_cmd().is_some() {
                return Poll::Ready(None);
            }
            running.poll(t);
            if running.slot.is_running() {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(())))
            }
        })
        .await
    }
}
