//! A component's one future: boxed once when the component is launched, it
//! makes every call of the component as its [cell](super::cell) commands.
//! On one "launch" command it walks `start`, puts `run` in flight, and asks
//! `ready` attempt after attempt, with their timeouts and backoff (see
//! `launch`), and reports back only how the launch ended; on one "stop"
//! command it calls `stop` and waits for `run` to end (see `stop`), and
//! reports back once; on "close" it makes that call and reports its end.
//!
//! Every call is panic-guarded on its own, so a panic is caught in the
//! poll it happens in and attributed to the call in progress. `run` is
//! polled in the same future as the other calls, unless a spawner puts it
//! on a task of the user's executor: then only `run` (made abortable, and
//! reporting its end through a channel) runs there; `start`, `ready`,
//! `stop` and `close` always run on the task that drives the lifecycle.

mod call;
mod launch;
mod run;
mod step;
mod stop;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use futures::future::BoxFuture;

use self::call::{Inline, Owner, Spawned, call, to_make};
use self::launch::launch;
use self::run::{RunSlot, Running, local_run};
use self::step::{Bound, step};
use self::stop::stop;
use super::cell::{Cell, Cmd, Done, Spawner};
use crate::component::Component;
use crate::latch::Latch;

/// A type-erased [`Component`] waiting to be launched.
pub(crate) trait DynComponent: Send + Sync {
    /// Moves the component into its one future, commanded through `cell`.
    /// The future never ends: the runner drops it (and the component with
    /// it) when it is done with the component. With a `spawner`, `run` is
    /// put on a task of its own, which must share the component.
    fn launch(self: Box<Self>, cell: Arc<Cell>, spawner: Option<Spawner>)
    -> BoxFuture<'static, ()>;
}

impl<C: Component> DynComponent for C {
    fn launch(
        self: Box<Self>,
        cell: Arc<Cell>,
        spawner: Option<Spawner>,
    ) -> BoxFuture<'static, ()> {
        match spawner {
            Some(spawner) => {
                let owner = Spawned {
                    c: Arc::new(*self),
                    spawner,
                };
                Box::pin(component_task(owner, cell))
            }
            None => Box::pin(component_task(Inline(*self), cell)),
        }
    }
}

/// An `async` block rather than an `async fn`, which would keep its
/// arguments twice.
#[allow(clippy::manual_async_fn)]
fn component_task<C: Component>(owner: impl Owner<C>, cell: Arc<Cell>) -> impl Future<Output = ()> {
    async move {
        let c = owner.get();
        let cell = &*cell;
        // `run` when it is polled here, with its context: in this future rather
        // than in the cell; put in flight again on a restart.
        let mut running = Running {
            slot: RunSlot::Idle,
            local: pin!(None),
            cell,
        };
        // The last launch or close command, kept once its call ended: its
        // context is the one a stop is given (its deadline the stop's), so
        // a stop clones none. In the room a command takes anyway, and
        // replaced by the next launch or close.
        let mut held: Option<Cmd> = None;
        loop {
            // A call's end in a block of its own: gone before the yield
            // below, so it takes no room beside it in this future.
            let given_up = {
                // Borrowed by the call it makes, not taken apart: one
                // command in this future, whatever the call (the one just
                // taken is gone at the end of this statement, moved or
                // dropped, and takes no room across the call's waits).
                let cmd = match poll_fn(|t| {
                    running.poll(t);
                    match cell.take_cmd() {
                        Some(cmd) => Poll::Ready(cmd),
                        None => Poll::Pending,
                    }
                })
                .await
                {
                    Cmd::Stop(deadline) => Err(deadline),
                    Cmd::Abandon => Ok(None),
                    cmd => Ok(Some(held.insert(cmd))),
                };
                let done = match cmd {
                    Ok(Some(Cmd::Launch(plan))) => {
                        let run_here = |cx| local_run(c, cx);
                        launch(&owner, plan, run_here, &mut running)
                            .await
                            .map(Done::Launch)
                    }
                    Err(deadline) => match held.as_mut().and_then(Cmd::context) {
                        Some(cx) => {
                            let epoch = cx.handle.shared.epoch;
                            // The exact instant: the offset is the runner's
                            // difference of the two.
                            cx.deadline = deadline.map(|d| epoch + d);
                            stop(c, cx, &mut running).await.map(Done::Unit)
                        }
                        // Never: a stop follows the launch of the same
                        // component. As a stop given up on.
                        None => None,
                    },
                    Ok(Some(Cmd::Close { cx, t0 })) => {
                        let cx = &*cx;
                        let slot = pin!(to_make(|| Component::close(c, cx)));
                        let bound = cx.deadline.map(|until| Bound {
                            until,
                            t0: *t0,
                            attempt: None,
                        });
                        step(
                            call(&cx.name, "close", slot),
                            None::<&Latch>,
                            false,
                            bound,
                            &mut running,
                        )
                        .await
                        .map(Done::Unit)
                    }
                    // `Abandon` with no call in flight: as for a call given up on.
                    Ok(_) => None,
                };
                match done {
                    Some(done) => {
                        cell.put_done(done);
                        false
                    }
                    None => true,
                }
            };
            // A call given up on: `run` is polled again only on the
            // runner's next pass over woken cells, as if the call had
            // never been in this poll.
            if given_up && running.slot.is_running() {
                yield_once().await;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::cell::ReadyQueue;

    struct Noop;
    impl Component for Noop {}

    /// A component's future and cell are kept for its whole life: their
    /// size is most of what a running component costs. The bounds leave
    /// some room for compiler changes. The future is sized for its launch,
    /// which holds `start` or a readiness attempt beside `run` and the
    /// launch command (its context): 664 bytes (720 before the launch kept
    /// one reference to its command and one to `run`'s parts, and polled
    /// its attempt in place; 728 before each call became one future), 880
    /// when the launch became
    /// one command (the policy kept for the component's whole life, the
    /// spawner in every command, a call's end kept beside the yield after
    /// a call given up on). Waiting for a command, it uses 407 of them.
    /// The cell, 312 bytes, is mostly its command slot (104) and its stop
    /// latch (112).
    #[test]
    fn a_components_future_and_cell_stay_small() {
        let cell = Arc::new(Cell::new(0, Arc::new(ReadyQueue::default())));
        let fut = component_task(Inline(Noop), cell);
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 680, "the future of a no-op component is {size} B");
        let size = std::mem::size_of::<Cell>();
        assert!(size <= 320, "a cell is {size} B");
    }
}
