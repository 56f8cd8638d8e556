//! A component's one future: boxed once when the component is launched, it
//! makes every call of the component as its [cell](super::cell) commands —
//! `start`, each readiness attempt, `run` alongside the others, `stop`,
//! `close` — and reports each end back through the cell.
//!
//! Every call is panic-guarded on its own, so a panic is caught in the
//! poll it happens in and attributed to the call in progress. `run` is
//! polled in the same future as the other calls, unless a spawner puts it
//! on a task of the user's executor: then only `run` (made abortable, and
//! reporting its end through a channel) runs there; `start`, `ready`,
//! `stop` and `close` always run on the task that drives the lifecycle.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures::channel::oneshot;
use futures::future::{Aborted, BoxFuture, FutureExt};
use futures_timer::Delay;

use super::cell::{Cell, Cmd, Done, RunExit, SpawnedOutput};
use crate::component::{CallResult, Component, guard};
use crate::error::{BoxError, Error, ErrorKind};
use crate::latch::{Abortable, Latch};
use crate::logging::in_span;

/// A type-erased [`Component`]: what the lifecycle holds, and the maker of
/// its one future.
pub(crate) trait DynComponent: Send + Sync {
    /// The component's future, commanded through `cell`. It never ends:
    /// the runner drops it when it is done with the component.
    fn task(self: Arc<Self>, cell: Arc<Cell>) -> BoxFuture<'static, ()>;
}

impl<C: Component> DynComponent for C {
    fn task(self: Arc<Self>, cell: Arc<Cell>) -> BoxFuture<'static, ()> {
        Box::pin(component_task(self, cell))
    }
}

/// Where a component's `run` is.
enum RunSlot {
    /// Not started.
    Idle,
    /// Polled here; the latch carries its abort.
    Local(Latch),
    /// On its own task, which reports how it ended.
    Spawned(oneshot::Receiver<SpawnedOutput>),
    /// Ended (or aborted, or dropped).
    Ended,
}

/// A user call: made on its first poll, inside the panic guard and the
/// call's span, so nothing of it runs outside either.
async fn call<T, F>(name: &str, step: &'static str, f: impl FnOnce() -> F) -> CallResult<T>
where
    F: Future<Output = Result<T, BoxError>>,
{
    in_span(guard(async move { f().await }), name, step).await
}

async fn component_task<C: Component>(c: Arc<C>, cell: Arc<Cell>) {
    let local = async {
        let cx = cell.io().run_cx.take();
        match cx {
            Some(cx) => call(&cx.name.clone(), "run", || Component::run(&*c, &cx)).await,
            None => Ok(()),
        }
    };
    let mut local = pin!(Some(local));
    let mut run = RunSlot::Idle;
    loop {
        let cmd = poll_fn(|t| {
            if poll_run(&mut run, local.as_mut(), &cell, t) {
                // Let the runner see that `run` ended before a command is
                // carried out.
                t.waker().wake_by_ref();
                return Poll::Pending;
            }
            match cell.io().cmd.take() {
                Some(cmd) => Poll::Ready(cmd),
                None => Poll::Pending,
            }
        })
        .await;
        let done = match cmd {
            Cmd::Abandon => None,
            Cmd::Run(cx, None) => {
                run = RunSlot::Local(cx.stop.clone());
                cell.io().run_cx = Some(cx);
                continue;
            }
            Cmd::Run(cx, Some((spawner, busy))) => {
                let stop = cx.stop.clone();
                let c = c.clone();
                let fut: BoxFuture<'static, CallResult<()>> = Box::pin(async move {
                    call(&cx.name.clone(), "run", || Component::run(&*c, &cx)).await
                });
                let (tx, rx) = oneshot::channel();
                (spawner.0)(Box::pin(spawned_run(stop.abortable(fut), busy, tx)));
                run = RunSlot::Spawned(rx);
                continue;
            }
            Cmd::Start(cx) => {
                let fut = call(&cx.name, "start", || Component::start(&*c, &cx));
                let gate = Some(&cx.handle.shared.shutdown);
                step(fut, gate, None, &mut run, &mut local, &cell)
                    .await
                    .map(Done::Unit)
            }
            Cmd::Ready(cx) => {
                let fut = call(&cx.name, "ready", || Component::ready(&*c, &cx));
                let gate = Some(&cx.handle.shared.shutdown);
                step(fut, gate, None, &mut run, &mut local, &cell)
                    .await
                    .map(Done::Ready)
            }
            Cmd::Stop(cx) => {
                let fut = call(&cx.name, "stop", || Component::stop(&*c, &cx));
                let gate = Some(&cx.handle.shared.force);
                step(fut, gate, None, &mut run, &mut local, &cell)
                    .await
                    .map(Done::Unit)
            }
            Cmd::Close { cx, until, t0 } => {
                let fut = call(&cx.name, "close", || Component::close(&*c, &cx));
                let bound = until.map(|until| (until, t0));
                step(fut, None, bound, &mut run, &mut local, &cell)
                    .await
                    .map(Done::Unit)
            }
        };
        let in_flight = matches!(run, RunSlot::Local(_) | RunSlot::Spawned(_));
        // `None`: a call given up on, dropped.
        if let Some(done) = done {
            cell.io().done = Some(done);
        }
        // `run` is polled again only on the runner's next pass over woken
        // cells: the runner reads how the call ended (or drops it) first,
        // so that what happened first is recorded first.
        if in_flight {
            yield_once().await;
        }
    }
}

/// Returns `Pending` once, waking itself.
async fn yield_once() {
    let mut yielded = false;
    poll_fn(|t| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            t.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Drives one call while `run` keeps being polled. `None` if the runner
/// gave up on the call (it is dropped without another poll). Once `gate`
/// is set (the shutdown for a launch call, the force for `stop`) the call
/// is not polled again: the runner gives up on it when it sees the same
/// flag. With a `bound` (a deadline and the instant its budget is counted
/// from), the call times out past it; a deadline already past still polls
/// it once.
async fn step<T, F, R>(
    fut: F,
    gate: Option<&Latch>,
    bound: Option<(Instant, Instant)>,
    run: &mut RunSlot,
    local: &mut Pin<&mut Option<R>>,
    cell: &Cell,
) -> Option<CallResult<T>>
where
    F: Future<Output = CallResult<T>>,
    R: Future<Output = CallResult<()>>,
{
    let mut fut = pin!(fut);
    // Most calls finish on their first poll: a timer only for one that
    // does not.
    let mut timer: Option<Delay> = None;
    poll_fn(|t| {
        if cell.io().cmd.take().is_some() {
            return Poll::Ready(None);
        }
        if poll_run(run, local.as_mut(), cell, t) {
            // Let the runner see that `run` ended before the call goes on.
            t.waker().wake_by_ref();
            return Poll::Pending;
        }
        if gate.is_some_and(Latch::is_set) {
            return Poll::Pending;
        }
        if let Poll::Ready(out) = fut.as_mut().poll(t) {
            return Poll::Ready(Some(out));
        }
        if let Some((until, t0)) = bound {
            let now = Instant::now();
            let timer = match until.checked_duration_since(now) {
                Some(left) if !left.is_zero() => timer.get_or_insert_with(|| Delay::new(left)),
                _ => return Poll::Ready(Some(Err(timed_out(until, t0)))),
            };
            if timer.poll_unpin(t).is_ready() {
                return Poll::Ready(Some(Err(timed_out(until, t0))));
            }
        }
        Poll::Pending
    })
    .await
}

fn timed_out(until: Instant, t0: Instant) -> Error {
    Error::new(ErrorKind::TimedOut).with_budget(until.saturating_duration_since(t0))
}

/// Polls `run` if it is in flight, and records how it ended. Returns
/// whether it ended in this poll.
fn poll_run<R: Future<Output = CallResult<()>>>(
    run: &mut RunSlot,
    mut local: Pin<&mut Option<R>>,
    cell: &Cell,
    t: &mut TaskContext<'_>,
) -> bool {
    let exit = match run {
        RunSlot::Idle | RunSlot::Ended => return false,
        // As `futures`' `Abortable`: the abort is checked before the poll,
        // and again after its waker is registered, so it is never missed.
        RunSlot::Local(stop) => {
            if stop.is_aborted() {
                RunExit::Aborted
            } else {
                match local.as_mut().as_pin_mut().map(|f| f.poll(t)) {
                    Some(Poll::Ready(out)) => RunExit::Done(out),
                    Some(Poll::Pending) => {
                        stop.on_abort(t.waker());
                        if !stop.is_aborted() {
                            return false;
                        }
                        RunExit::Aborted
                    }
                    None => RunExit::Aborted,
                }
            }
        }
        RunSlot::Spawned(rx) => match rx.poll_unpin(t) {
            Poll::Pending => return false,
            Poll::Ready(Ok(Ok(out))) => RunExit::Done(out),
            Poll::Ready(Ok(Err(Aborted))) => RunExit::Aborted,
            Poll::Ready(Err(oneshot::Canceled)) => RunExit::Dropped,
        },
    };
    local.set(None);
    *run = RunSlot::Ended;
    cell.io().run_end = Some(exit);
    true
}

/// A component's `run` on its own task: sends how it ended to the runner.
///
/// `busy` is true while the task is inside a poll of `run` and until the
/// result of that poll is sent, so the runner, once it has aborted `run`,
/// knows whether a result may still come: a `run` that was not busy will
/// only see the abort from now on.
async fn spawned_run(
    mut run: Abortable<BoxFuture<'static, CallResult<()>>>,
    busy: Arc<AtomicBool>,
    tx: oneshot::Sender<SpawnedOutput>,
) {
    let mut tx = Some(tx);
    poll_fn(|cx| {
        busy.store(true, Ordering::SeqCst);
        // Pairs with the fence in `Runner::collect_runs`: either this poll
        // sees the abort, or the runner sees this task busy.
        fence(Ordering::SeqCst);
        let done = match run.poll_unpin(cx) {
            Poll::Ready(out) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(out);
                }
                true
            }
            // Ends early once the runner is gone (the receiver dropped):
            // nobody is left to read the result.
            Poll::Pending => tx.as_mut().is_none_or(|tx| tx.poll_canceled(cx).is_ready()),
        };
        busy.store(false, Ordering::SeqCst);
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
}
