//! A component's `run`: put in flight by its launch, polled in the
//! component's own future or on a task of the user's executor, and its
//! end recorded in the cell.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::{Context as TaskContext, Poll};

use futures::channel::oneshot;
use futures::future::{Aborted, BoxFuture, FutureExt};

use super::call::{Owner, made, settled};
use crate::component::{CallResult, Component};
use crate::context::Context;
use crate::latch::{Abortable, Latch};
use crate::lifecycle::cell::{Cell, RunExit, SpawnedOutput};

/// Where a component's `run` is.
pub(super) enum RunSlot {
    /// Not started.
    Idle,
    /// Polled here; the latch carries its abort.
    Local(Latch),
    /// On its own task, which reports how it ended.
    Spawned(oneshot::Receiver<SpawnedOutput>),
    /// Ended (or aborted, or dropped).
    Ended,
}

impl RunSlot {
    /// Whether `run` is in flight.
    pub(super) fn is_running(&self) -> bool {
        matches!(self, RunSlot::Local(_) | RunSlot::Spawned(_))
    }
}

/// `run` as a component's future keeps it: its slot, its future when it
/// is polled here (pinned by the component's future), and the cell its
/// end is recorded in. A launch and each of its steps reach the three
/// through one reference.
pub(super) struct Running<'a, R> {
    pub(super) slot: RunSlot,
    pub(super) local: Pin<&'a mut Option<R>>,
    pub(super) cell: &'a Cell,
}

impl<R: Future<Output = CallResult<()>>> Running<'_, R> {
    /// [`poll_run`] on these parts.
    #[inline]
    pub(super) fn poll(&mut self, t: &mut TaskContext<'_>) -> bool {
        poll_run(&mut self.slot, self.local.as_mut(), self.cell, t)
    }
}

/// `run`, polled in the component's own future. An `async` block rather
/// than an `async fn`, which would keep the context twice.
#[allow(clippy::manual_async_fn)]
pub(super) fn local_run<C: Component>(
    c: &C,
    cx: Context,
) -> impl Future<Output = CallResult<()>> + '_ {
    async move { settled!(made(&cx.name, "run", || Component::run(c, &cx))) }
}

/// Puts `run` in flight: on its own task through the owner's spawner
/// (sharing the component), or here, made by `local_run`.
pub(super) fn put_in_flight<C: Component, R>(
    owner: &impl Owner<C>,
    cx: Context,
    busy: Option<Arc<AtomicBool>>,
    local_run: impl FnOnce(Context) -> R,
    running: &mut Running<'_, R>,
) {
    let Running {
        slot: run,
        local,
        cell,
    } = running;
    match (busy, owner.share()) {
        (Some(busy), Some((shared, spawner))) => {
            let stop = cx.stop.clone();
            let fut: BoxFuture<'static, CallResult<()>> = Box::pin(async move {
                let c = &*shared;
                settled!(made(&cx.name, "run", || Component::run(c, &cx)))
            });
            let (tx, rx) = oneshot::channel();
            (spawner.0)(Box::pin(spawned_run(stop.abortable(fut), busy, tx)));
            *run = RunSlot::Spawned(rx);
        }
        // Launched without a spawner: polled here.
        _ => {
            *run = RunSlot::Local(cx.stop.clone());
            local.set(Some(local_run(cx)));
        }
    }
    cell.set_due();
}

/// Polls `run` if it is in flight and was woken (or never polled), and
/// records how it ended. Returns whether it ended in this poll.
///
/// Asked on every poll of a component's future and of each step in it:
/// the checks that find nothing to do are inlined there.
#[inline]
fn poll_run<R: Future<Output = CallResult<()>>>(
    run: &mut RunSlot,
    local: Pin<&mut Option<R>>,
    cell: &Cell,
    t: &mut TaskContext<'_>,
) -> bool {
    run.is_running() && cell.take_due() && poll_due_run(run, local, cell, t)
}

/// [`poll_run`] once `run` is in flight and due.
#[inline(never)]
fn poll_due_run<R: Future<Output = CallResult<()>>>(
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
    cell.put_run_end(exit);
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
