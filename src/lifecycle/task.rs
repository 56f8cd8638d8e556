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
use futures::future::{Aborted, BoxFuture, FutureExt, lazy};
use futures_timer::Delay;

use super::cell::{Cell, Cmd, Done, RunExit, SpawnedOutput};
use crate::component::{CallResult, Component, guard};
use crate::context::Context;
use crate::error::{BoxError, Error, ErrorKind};
use crate::latch::{Abortable, Latch};
use crate::logging::in_span;

/// A type-erased [`Component`] waiting to be launched.
pub(crate) trait DynComponent: Send + Sync {
    /// Moves the component into its one future, commanded through `cell`.
    /// The future never ends: the runner drops it (and the component with
    /// it) when it is done with the component. `spawned`: `run` will be
    /// put on a task of its own, which must share the component.
    fn launch(self: Box<Self>, cell: Arc<Cell>, spawned: bool) -> BoxFuture<'static, ()>;
}

impl<C: Component> DynComponent for C {
    fn launch(self: Box<Self>, cell: Arc<Cell>, spawned: bool) -> BoxFuture<'static, ()> {
        if spawned {
            Box::pin(component_task(Arc::new(*self), cell))
        } else {
            Box::pin(component_task(Inline(*self), cell))
        }
    }
}

/// How a component's future holds the component: in place, or shared with
/// the task its `run` is spawned on.
trait Owner<C>: Send + Sync + 'static {
    fn get(&self) -> &C;
    /// The component as a spawned `run` can hold it, if it can.
    fn share(&self) -> Option<Arc<C>>;
}

struct Inline<C>(C);

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
fn call<T, F>(
    name: &str,
    step: &'static str,
    f: impl FnOnce() -> F,
) -> impl Future<Output = CallResult<T>>
where
    F: Future<Output = Result<T, BoxError>>,
{
    in_span(guard(lazy(move |_| f()).flatten()), name, step)
}

/// Which call a command makes.
#[derive(Clone, Copy)]
enum Call {
    Start,
    Ready,
    Stop,
    Close,
}

async fn component_task<C: Component>(owner: impl Owner<C>, cell: Arc<Cell>) {
    let c = owner.get();
    let cell = &*cell;
    // `run` when it is polled here, with its context: in this future rather
    // than in the cell; put in flight again on a restart.
    let mut local = pin!(None);
    let mut run = RunSlot::Idle;
    loop {
        let cmd = poll_fn(|t| {
            if poll_run(&mut run, local.as_mut(), cell, t) && cell.has_readiness_cmd() {
                // Let the runner see that `run` ended (which fails a launch)
                // before a readiness attempt is made.
                t.waker().wake_by_ref();
                return Poll::Pending;
            }
            match cell.take_cmd() {
                Some(cmd) => Poll::Ready(cmd),
                None => Poll::Pending,
            }
        })
        .await;
        // The command is moved whole (not taken apart in place), so it is
        // not kept alive, and sized into this future, beside the call.
        let (which, cx, bound) = match into_call(cmd) {
            Ok(call) => call,
            Err(Cmd::Run(cx, spawn)) => {
                match (spawn, owner.share()) {
                    (Some((spawner, busy)), Some(shared)) => {
                        let stop = cx.stop.clone();
                        let fut: BoxFuture<'static, CallResult<()>> = Box::pin(async move {
                            let c = &*shared;
                            call(&cx.name, "run", || Component::run(c, &cx)).await
                        });
                        let (tx, rx) = oneshot::channel();
                        (spawner.0)(Box::pin(spawned_run(stop.abortable(fut), busy, tx)));
                        run = RunSlot::Spawned(rx);
                    }
                    // Launched without a spawner: polled here.
                    _ => {
                        run = RunSlot::Local(cx.stop.clone());
                        local.set(Some(local_run(c, cx)));
                    }
                }
                cell.set_due();
                continue;
            }
            // `Abandon` with no call in flight: as for a call given up on.
            Err(_) => {
                if matches!(run, RunSlot::Local(_) | RunSlot::Spawned(_)) {
                    yield_once().await;
                }
                continue;
            }
        };
        let cx = &cx;
        let local = local.as_mut();
        let done = match which {
            Call::Start => {
                let fut = pin!(call(&cx.name, "start", || Component::start(c, cx)));
                let gate = Some(&cx.handle.shared.shutdown);
                step(fut, gate, true, None, &mut run, local, cell)
                    .await
                    .map(Done::Unit)
            }
            Call::Ready => {
                let fut = pin!(call(&cx.name, "ready", || Component::ready(c, cx)));
                let gate = Some(&cx.handle.shared.shutdown);
                step(fut, gate, true, None, &mut run, local, cell)
                    .await
                    .map(Done::Ready)
            }
            Call::Stop => {
                let fut = pin!(call(&cx.name, "stop", || Component::stop(c, cx)));
                let gate = Some(&cx.handle.shared.force);
                step(fut, gate, false, None, &mut run, local, cell)
                    .await
                    .map(Done::Unit)
            }
            Call::Close => {
                let fut = pin!(call(&cx.name, "close", || Component::close(c, cx)));
                step(fut, None, false, bound, &mut run, local, cell)
                    .await
                    .map(Done::Unit)
            }
        };
        match done {
            Some(done) => cell.put_done(done),
            // A call given up on: `run` is polled again only on the
            // runner's next pass over woken cells, as if the call had
            // never been in this poll.
            None if matches!(run, RunSlot::Local(_) | RunSlot::Spawned(_)) => {
                yield_once().await;
            }
            None => {}
        }
    }
}

/// `run`, polled in the component's own future.
async fn local_run<C: Component>(c: &C, cx: Context) -> CallResult<()> {
    call(&cx.name, "run", || Component::run(c, &cx)).await
}

/// A deadline, and the instant its budget is counted from.
type Bound = (Instant, Instant);

/// The call a command makes, with its context and bound; the command
/// itself if it makes none (`Run`, `Abandon`).
fn into_call(cmd: Cmd) -> Result<(Call, Context, Option<Bound>), Cmd> {
    match cmd {
        Cmd::Start(cx) => Ok((Call::Start, cx, None)),
        Cmd::Ready(cx) => Ok((Call::Ready, cx, None)),
        Cmd::Stop(cx) => Ok((Call::Stop, cx, None)),
        Cmd::Close { cx, until, t0 } => Ok((Call::Close, cx, until.map(|until| (until, t0)))),
        cmd @ (Cmd::Run(..) | Cmd::Abandon) => Err(cmd),
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
/// gave up on the call (it is dropped without another poll). A `launching`
/// call is not polled in the poll that ends `run`. Once `gate`
/// is set (the shutdown for a launch call, the force for `stop`) the call
/// is not polled again: the runner gives up on it when it sees the same
/// flag. With a `bound` (a deadline and the instant its budget is counted
/// from), the call times out past it; a deadline already past still polls
/// it once.
fn step<'a, T, F, R>(
    fut: Pin<&'a mut F>,
    gate: Option<&'a Latch>,
    launching: bool,
    bound: Option<Bound>,
    run: &'a mut RunSlot,
    local: Pin<&'a mut Option<R>>,
    cell: &'a Cell,
) -> Step<'a, F, R>
where
    F: Future<Output = CallResult<T>>,
    R: Future<Output = CallResult<()>>,
{
    Step {
        fut,
        gate,
        launching,
        bound,
        run,
        local,
        cell,
        timer: None,
    }
}

/// The future of [`step`]: a plain struct, smaller than an `async fn`
/// that would keep its arguments and the closure borrowing them.
struct Step<'a, F, R> {
    fut: Pin<&'a mut F>,
    gate: Option<&'a Latch>,
    launching: bool,
    bound: Option<Bound>,
    run: &'a mut RunSlot,
    local: Pin<&'a mut Option<R>>,
    cell: &'a Cell,
    /// Most calls finish on their first poll: a timer only for one that
    /// does not.
    timer: Option<Delay>,
}

impl<T, F, R> Future for Step<'_, F, R>
where
    F: Future<Output = CallResult<T>>,
    R: Future<Output = CallResult<()>>,
{
    type Output = Option<CallResult<T>>;

    fn poll(self: Pin<&mut Self>, t: &mut TaskContext<'_>) -> Poll<Self::Output> {
        // Every field is a reference, a pinned reference or `Unpin`.
        let this = self.get_mut();
        if this.cell.take_cmd().is_some() {
            return Poll::Ready(None);
        }
        if poll_run(this.run, this.local.as_mut(), this.cell, t) && this.launching {
            // Let the runner see that `run` ended (which fails a launch)
            // before the call goes on.
            t.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.gate.is_some_and(Latch::is_set) {
            return Poll::Pending;
        }
        if let Poll::Ready(out) = this.fut.as_mut().poll(t) {
            return Poll::Ready(Some(out));
        }
        if let Some((until, t0)) = this.bound {
            let now = Instant::now();
            let timer = match until.checked_duration_since(now) {
                Some(left) if !left.is_zero() => this.timer.get_or_insert_with(|| Delay::new(left)),
                _ => return Poll::Ready(Some(Err(timed_out(until, t0)))),
            };
            if timer.poll_unpin(t).is_ready() {
                return Poll::Ready(Some(Err(timed_out(until, t0))));
            }
        }
        Poll::Pending
    }
}

fn timed_out(until: Instant, t0: Instant) -> Error {
    Error::new(ErrorKind::TimedOut).with_budget(until.saturating_duration_since(t0))
}

/// Polls `run` if it is in flight and was woken (or never polled), and
/// records how it ended. Returns whether it ended in this poll.
fn poll_run<R: Future<Output = CallResult<()>>>(
    run: &mut RunSlot,
    mut local: Pin<&mut Option<R>>,
    cell: &Cell,
    t: &mut TaskContext<'_>,
) -> bool {
    if matches!(run, RunSlot::Idle | RunSlot::Ended) || !cell.take_due() {
        return false;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::cell::ReadyQueue;

    struct Noop;
    impl Component for Noop {}

    /// A component's future and cell are kept for its whole life: their
    /// size is most of what a running component costs. The bounds leave
    /// some room for compiler changes; the layout they replaced (a command
    /// kept beside the call it made, `run`'s context in the cell) was 784
    /// and 352 bytes.
    #[test]
    fn a_components_future_and_cell_stay_small() {
        let cell = Arc::new(Cell::new(0, Arc::new(ReadyQueue::default())));
        let fut = component_task(Inline(Noop), cell);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 640, "the future of a no-op component is {size} B");
        let size = std::mem::size_of::<Cell>();
        assert!(size <= 300, "a cell is {size} B");
    }
}
