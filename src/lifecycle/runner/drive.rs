//! The one polling loop: a goal, the woken component cells (and through
//! them every `run`), an interrupting flag and a deadline.

use std::future::poll_fn;
use std::sync::atomic::{Ordering, fence};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures::future::FutureExt;
use futures_timer::Delay;

use super::{Runner, SPAWNED_RUN_GRACE};
use crate::cause::{RunEnd, ShutdownCause};
use crate::error::{Error, ErrorKind};
use crate::latch::Latch;
use crate::lifecycle::cell::RunExit;
use crate::logging::event;
use crate::phase::Step;

/// What stops a [`Runner::drive`] early.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Interrupt {
    /// A shutdown request (during launch and running).
    Shutdown,
    /// A forced shutdown (during the graceful steps of shutdown).
    Force,
    /// Nothing: only the deadline bounds it.
    Never,
}

pub(super) enum Driven<T> {
    Done(T),
    TimedOut,
    Interrupted,
}

impl Runner {
    /// Records the end of a component's `run`. Any end starts shutdown.
    pub(super) fn on_run_end(&mut self, index: usize, end: RunExit) {
        let slot = &mut self.slots[index];
        slot.run_done = true;
        let name = slot.name.clone();
        let ready = slot.ready;
        let asked = slot.stop.is_set();
        let aborted = slot.run_aborted;
        let restarts = slot.restart.is_some();
        let (_, at) = self.stamp();
        self.update(index, |r| r.run_ended_at = Some(at));
        let shared = &self.handle.shared;
        match end {
            RunExit::Aborted => {}
            // An executor may drop the tasks it holds once the lifecycle
            // aborted them (a runtime shutting down): nothing was lost.
            RunExit::Dropped if aborted => {}
            RunExit::Dropped => {
                let e = Error::new(ErrorKind::Dropped);
                if ready {
                    self.fail(index, e, Step::Run);
                } else {
                    self.fail_launch(index, e, Step::Run);
                }
            }
            RunExit::Done(Err(e)) if ready && !shared.shutdown.is_set() && restarts => {
                self.on_failure(index, e);
            }
            RunExit::Done(Err(e)) => self.fail(index, e, Step::Run),
            RunExit::Done(Ok(())) if !ready && !shared.shutdown.is_set() => {
                self.fail_launch(index, Error::new(ErrorKind::Exited), Step::Run);
            }
            RunExit::Done(Ok(())) if !shared.shutdown.is_set() => {
                let cause = ShutdownCause::RunEnded {
                    component: name,
                    end: RunEnd::Returned,
                };
                shared.begin_shutdown(None, cause);
            }
            RunExit::Done(Ok(())) if !asked => {
                event!(info, { component = name, step = Step::Run }, "`{name}` finished running during shutdown");
            }
            RunExit::Done(Ok(())) => {}
        }
    }

    /// Reads how every `run` still in flight ended, once shutdown is over.
    /// Those polled here were aborted and report at once. One on its own
    /// task reports when its executor next polls it; it is only waited for
    /// if that task was busy in a poll of `run` when it was aborted (that
    /// poll may end with a result, a panic included, which must not be
    /// lost), and then until the shutdown's own bound, or a short grace if
    /// that has passed.
    pub(super) async fn collect_runs(&mut self, bound: Option<Instant>) {
        if !self.slots.iter().any(|s| s.run_started && !s.run_done) {
            return;
        }
        // Pairs with the fence in `spawned_run`: every abort happened before.
        fence(Ordering::SeqCst);
        let bound = match (bound, Instant::now().checked_add(SPAWNED_RUN_GRACE)) {
            (Some(b), Some(g)) => Some(b.max(g)),
            _ => None,
        };
        let _ = self
            .drive(bound, Interrupt::Never, |s, cx| {
                // Read before polling the runs: a task seen idle has sent
                // whatever its last poll produced.
                let busy = s.slots.iter().any(|slot| {
                    !slot.run_done && slot.busy.as_ref().is_some_and(|b| b.load(Ordering::SeqCst))
                });
                s.poll_cells(cx);
                if busy { Poll::Pending } else { Poll::Ready(()) }
            })
            .await;
    }

    /// The flag behind `interrupt`, if any.
    fn interrupt_latch(&self, interrupt: Interrupt) -> Option<Latch> {
        match interrupt {
            Interrupt::Shutdown => Some(self.handle.shared.shutdown.clone()),
            Interrupt::Force => Some(self.handle.shared.force.clone()),
            Interrupt::Never => None,
        }
    }

    /// Whether `interrupt` has fired.
    fn interrupted(&self, interrupt: Interrupt) -> bool {
        match interrupt {
            Interrupt::Shutdown => self.handle.shared.shutdown.is_set(),
            Interrupt::Force => self.handle.shared.force.is_set(),
            Interrupt::Never => false,
        }
    }

    /// Polls `goal` until it is ready, while polling the woken cells. Gives up
    /// when `interrupt` fires (checked before the goal is polled) or
    /// `deadline` passes (a deadline already past still polls the goal
    /// once).
    pub(super) async fn drive<T>(
        &mut self,
        deadline: Option<Instant>,
        interrupt: Interrupt,
        mut goal: impl FnMut(&mut Self, &mut TaskContext<'_>) -> Poll<T>,
    ) -> Driven<T> {
        // The interrupt is read as a flag first; its waker is registered
        // only if the goal is still pending, so a call that completes on its
        // first poll never touches the flag's waiter list.
        let mut signal: Option<Latch> = None;
        // Most calls finish on their first poll: only arm a timer when one
        // does not.
        let mut timer: Option<Delay> = None;
        poll_fn(|cx| {
            // The runner may have waited since its last poll.
            self.clock_moved();
            self.poll_cells(cx);
            // The interrupt first: once shutdown has begun, no `start`,
            // `ready` or registration may be polled even once.
            if self.interrupted(interrupt) {
                return Poll::Ready(Driven::Interrupted);
            }
            if let Poll::Ready(v) = goal(self, cx) {
                return Poll::Ready(Driven::Done(v));
            }
            if signal.is_none() {
                signal = self.interrupt_latch(interrupt);
            }
            if let Some(s) = signal.as_mut() {
                if s.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Driven::Interrupted);
                }
            }
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Poll::Ready(Driven::TimedOut);
                }
                let t = timer.get_or_insert_with(|| Delay::new(deadline - now));
                if t.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Driven::TimedOut);
                }
            }
            Poll::Pending
        })
        .await
    }
}
