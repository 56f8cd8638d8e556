//! The [`Step`] that drives a component's call while `run` keeps being
//! polled, with its gate and its deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures::future::FutureExt;
use futures_timer::Delay;

use super::run::Running;
use crate::component::CallResult;
use crate::error::{Error, ErrorKind};
use crate::latch::Latch;
use crate::machine::PhaseMachine;

/// What stops a call from being polled once it is set: the shutdown for a
/// launch's calls, the force for a stop, nothing for a close.
pub(super) trait Gate: Copy + Unpin {
    fn is_set(self) -> bool;
}

impl Gate for Option<&Latch> {
    #[inline]
    fn is_set(self) -> bool {
        self.is_some_and(Latch::is_set)
    }
}

/// The shutdown, read from the phase machine as one load rather than
/// through its latch (a gate of the machine, asked through a dynamic
/// call): asked on every poll of a launch's calls.
#[derive(Clone, Copy)]
pub(super) struct Shutdown<'a>(pub(super) &'a PhaseMachine);

impl Gate for Shutdown<'_> {
    #[inline]
    fn is_set(self) -> bool {
        self.0.state().is_shutting_down()
    }
}

/// A call's deadline, the instant its budget is counted from, and the
/// readiness attempt it is, if one: what its timeout error says.
#[derive(Clone, Copy)]
pub(super) struct Bound {
    pub(super) until: Instant,
    pub(super) t0: Instant,
    pub(super) attempt: Option<u32>,
}

/// Drives one call while `run` keeps being polled. `None` if the runner
/// gave up on the call (it is dropped without another poll). A `launching`
/// call is not polled in the poll that ends `run`. Once `gate`
/// is set (the shutdown for a launch call, the force for `stop`) the call
/// is not polled again: the runner gives up on it when it sees the same
/// flag. With a `bound` (a deadline and the instant its budget is counted
/// from), the call times out past it; a deadline already past still polls
/// it once.
pub(super) fn step<'a, 'b, T, F, R, G>(
    fut: F,
    gate: G,
    launching: bool,
    bound: Option<Bound>,
    run: &'a mut Running<'b, R>,
) -> Step<'a, 'b, F, R, G>
where
    F: Future<Output = CallResult<T>> + Unpin,
    R: Future<Output = CallResult<()>>,
    G: Gate,
{
    Step {
        fut,
        gate,
        launching,
        bound,
        run,
        timer: None,
    }
}

/// The future of [`step`]: a plain struct, smaller than an `async fn`
/// that would keep its arguments and the closure borrowing them.
pub(super) struct Step<'a, 'b, F, R, G> {
    /// `Unpin`: a call, which keeps its future in a slot pinned by the
    /// caller, or a pinned reference.
    fut: F,
    gate: G,
    launching: bool,
    bound: Option<Bound>,
    /// `run`'s parts, reached through one reference: 16 B less in every
    /// step of a launch than one reference to each.
    run: &'a mut Running<'b, R>,
    /// Most calls finish on their first poll: a timer only for one that
    /// does not.
    timer: Option<Delay>,
}

impl<T, F, R, G> Future for Step<'_, '_, F, R, G>
where
    F: Future<Output = CallResult<T>> + Unpin,
    R: Future<Output = CallResult<()>>,
    G: Gate,
{
    type Output = Option<CallResult<T>>;

    fn poll(self: Pin<&mut Self>, t: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // Every field is a reference, a pinned reference or `Unpin`.
        let this = self.get_mut();
        // Matched rather than tested with `is_some`: the empty slot, as
        // most polls find it, then calls no drop.
        if let Some(cmd) = this.run.cell.take_cmd() {
            drop(cmd);
            return Poll::Ready(None);
        }
        if this.run.poll(t) && this.launching {
            // Let the runner see that `run` ended (which fails a launch)
            // before the call goes on.
            t.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.gate.is_set() {
            return Poll::Pending;
        }
        if let Poll::Ready(out) = this.fut.poll_unpin(t) {
            return Poll::Ready(Some(out));
        }
        if let Some(bound) = this.bound {
            let now = Instant::now();
            let timer = match bound.until.checked_duration_since(now) {
                Some(left) if !left.is_zero() => this.timer.get_or_insert_with(|| Delay::new(left)),
                _ => return Poll::Ready(Some(Err(timed_out(bound)))),
            };
            if timer.poll_unpin(t).is_ready() {
                return Poll::Ready(Some(Err(timed_out(bound))));
            }
        }
        Poll::Pending
    }
}

fn timed_out(bound: Bound) -> Error {
    let e = Error::new(ErrorKind::TimedOut)
        .with_budget(bound.until.saturating_duration_since(bound.t0));
    match bound.attempt {
        Some(attempt) => e.with_detail(format!("attempt {attempt}")),
        None => e,
    }
}
