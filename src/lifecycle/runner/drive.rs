//! The one polling loop: a goal, every component's `run`, an interrupting
//! signal and a deadline.

use std::future::poll_fn;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use futures::future::{Aborted, FutureExt};
use futures::stream::StreamExt;
use futures_timer::Delay;

use super::{RunOutput, Runner};
use crate::cause::{RunEnd, ShutdownCause};
use crate::error::{Error, ErrorKind, Step};

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
    fn on_run_end(&mut self, index: usize, out: RunOutput) {
        let slot = &mut self.slots[index];
        slot.run_done = true;
        let name = slot.name.clone();
        let ready = slot.ready;
        let asked = slot.stop.is_set();
        let at = self.since_epoch(Instant::now());
        self.update(index, |r| r.run_ended_at = Some(at));
        let shared = &self.handle.shared;
        match out {
            Err(Aborted) => {}
            Ok(Err(e)) => self.fail(index, e, Step::Run),
            Ok(Ok(())) if !ready && !shared.shutdown.is_set() => {
                self.fail_launch(index, Error::new(ErrorKind::Exited), Step::Run);
            }
            Ok(Ok(())) if !shared.shutdown.is_set() => {
                let end = RunEnd::Returned;
                let cause = ShutdownCause::RunEnded {
                    component: name,
                    end,
                };
                shared.begin_shutdown(None, cause);
            }
            Ok(Ok(())) if !asked => {
                log::info!(target: "lameduck", "`{name}` finished running during shutdown");
            }
            Ok(Ok(())) => {}
        }
    }

    /// Polls `goal` until it is ready, while polling every `run`. Gives up
    /// when `interrupt` fires (checked before the goal is polled) or
    /// `deadline` passes (a deadline already past still polls the goal
    /// once).
    pub(super) async fn drive<T>(
        &mut self,
        deadline: Option<Instant>,
        interrupt: Interrupt,
        mut goal: impl FnMut(&mut Self, &mut TaskContext<'_>) -> Poll<T>,
    ) -> Driven<T> {
        let mut signal = match interrupt {
            Interrupt::Shutdown => Some(self.handle.shared.shutdown.clone()),
            Interrupt::Force => Some(self.handle.shared.force.clone()),
            Interrupt::Never => None,
        };
        // Most calls finish on their first poll: only arm a timer when one
        // does not.
        let mut timer: Option<Delay> = None;
        poll_fn(|cx| {
            while let Poll::Ready(Some((index, out))) = self.runs.poll_next_unpin(cx) {
                self.on_run_end(index, out);
            }
            // The interrupt first: once shutdown has begun, no `start`,
            // `ready` or registration may be polled even once.
            if let Some(s) = signal.as_mut() {
                if s.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Driven::Interrupted);
                }
            }
            if let Poll::Ready(v) = goal(self, cx) {
                return Poll::Ready(Driven::Done(v));
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
