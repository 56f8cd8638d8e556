//! Shutdown: lame duck, then stop (or close) components in reverse launch
//! order, then the drainers and the stop hooks (in `flush`). A forced
//! shutdown closes every remaining component at once, bounded together by
//! the force budget.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt};

use super::drive::Interrupt;
use super::{Runner, budget_of, deadline_after, earliest};
use crate::component::CallResult;
use crate::error::{Error, ErrorKind};
use crate::lifecycle::cell::Cmd;
use crate::lifecycle::parts::Parts;
use crate::logging::{event, ms};
use crate::phase::Phase;
use crate::phase::Step;
use crate::report::ComponentState;

/// The state a component moves to in the drain, unless it already failed:
/// the report must keep that it did.
pub(super) fn unless_failed(now: ComponentState, next: ComponentState) -> ComponentState {
    if now == ComponentState::Failed {
        now
    } else {
        next
    }
}

/// A user call in flight during a forced shutdown: a `close` or a hook.
pub(super) struct InFlight {
    /// The component's index, for a `close`.
    pub(super) index: Option<usize>,
    pub(super) name: Arc<str>,
    pub(super) t0: Instant,
    pub(super) call: Call,
}

/// How a call in flight is made.
pub(super) enum Call {
    /// By a component's future: the command, until it is issued.
    Cell(Option<Cmd>),
    /// A future of its own (a hook).
    Own(BoxFuture<'static, CallResult<()>>),
}

impl Runner {
    pub(super) async fn shut_down(&mut self) {
        // Every stamp of the shutdown comes after the request.
        self.clock_moved();
        let shared = self.handle.shared.clone();
        let begun = shared.shutdown_at().unwrap_or_else(Instant::now);
        let deadline = deadline_after(begun, Some(self.config.shutdown_timeout));

        shared.set_phase(Phase::LameDuck);
        let lame_duck_end = earliest(deadline_after(begun, Some(self.config.lame_duck)), deadline);
        // A lifecycle that never became ready was never routed to: there is
        // no traffic to turn away first.
        if self.config.lame_duck > Duration::ZERO && !shared.force.is_set() && shared.ready.is_set()
        {
            event!(
                info,
                { phase = Phase::LameDuck },
                "lame duck for {:?}",
                self.config.lame_duck
            );
            self.drive(lame_duck_end, Interrupt::Force, |_, _| Poll::<()>::Pending)
                .await;
        }

        shared.set_phase(Phase::Draining);
        let forced = self.drain(deadline).await;
        if shared.force.is_set() {
            self.close_forced(forced, deadline).await;
        }

        shared.set_phase(Phase::Flushing);
        let drainers = std::mem::take(&mut Parts::of(&shared).lists().drainers);
        self.run_drainers(drainers.into(), deadline).await;

        shared.set_phase(Phase::Stopping);
        let mut hooks = std::mem::take(&mut Parts::of(&shared).lists().hooks);
        hooks.reverse();
        self.run_hooks(hooks, deadline).await;
    }

    /// When a forced shutdown must be over: the force budget from the
    /// moment the runner first saw the force, capped by the shutdown
    /// deadline.
    pub(super) fn force_bound(&mut self, deadline: Option<Instant>) -> Option<Instant> {
        let budget = self.config.force_timeout;
        let end = *self
            .force_deadline
            .get_or_insert_with(|| deadline_after(Instant::now(), Some(budget)));
        earliest(end, deadline)
    }

    /// Drives calls in flight at once, until all are done or `bound`
    /// passes, handing each result to `done` as it comes (so errors keep
    /// the order they happened in); those still going time out.
    pub(super) async fn finish_all(
        &mut self,
        calls: Vec<InFlight>,
        bound: Option<Instant>,
        done: fn(&mut Self, &InFlight, CallResult<()>),
    ) {
        let mut calls: Vec<Option<InFlight>> = calls.into_iter().map(Some).collect();
        let _ = self
            .drive(bound, Interrupt::Never, |s, cx| {
                let mut all = true;
                for slot in calls.iter_mut() {
                    if let Some(call) = slot {
                        match s.poll_call(call, cx) {
                            Poll::Ready(out) => {
                                done(s, call, out);
                                *slot = None;
                            }
                            Poll::Pending => all = false,
                        }
                    }
                }
                if all { Poll::Ready(()) } else { Poll::Pending }
            })
            .await;
        for call in calls.into_iter().flatten() {
            let e = Error::new(ErrorKind::TimedOut).with_budget(budget_of(bound, call.t0));
            done(self, &call, Err(e));
            if let (Some(index), Call::Cell(None)) = (call.index, &call.call) {
                self.abandon(index);
            }
        }
    }

    /// Polls a call in flight; a component's is issued on its first poll.
    pub(super) fn poll_call(
        &mut self,
        call: &mut InFlight,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<CallResult<()>> {
        match (&mut call.call, call.index) {
            (Call::Cell(cmd), Some(index)) => self.step_unit(index, cmd),
            (Call::Own(fut), _) => fut.poll_unpin(cx),
            (Call::Cell(_), None) => Poll::Ready(Ok(())),
        }
    }

    /// Marks a component stopping in the report and sets its stop signal.
    /// Returns when, as an instant and as its report stamp.
    pub(super) fn mark_stopping(&mut self, index: usize) -> (Instant, Duration) {
        let (t0, at) = self.stamp();
        self.update(index, |r| {
            r.state = unless_failed(r.state, ComponentState::Stopping);
            r.stop_at = Some(at);
        });
        self.announce_stop(index);
        self.slots[index].stop.set();
        (t0, at)
    }

    /// Logs that a component's stop begins, and marks it stopping.
    pub(super) fn announce_stop(&mut self, index: usize) {
        let name = &self.slots[index].name;
        event!(debug, { component = name, step = Step::Stop }, "stopping `{name}`");
        self.slots[index].stopping = true;
    }

    /// Calls a component's `close`, bounded by its close timeout and the
    /// shutdown deadline, and records when.
    pub(super) fn begin_close(&mut self, index: usize, deadline: Option<Instant>) -> InFlight {
        let name = self.slots[index].name.clone();
        let close_timeout = self.slots[index].options.close_timeout;
        // Once forced, the force budget bounds it too.
        let deadline = if self.handle.shared.force.is_set() {
            self.force_bound(deadline)
        } else {
            deadline
        };
        let t0 = Instant::now();
        let at = self.since_epoch(t0);
        self.update(index, |r| r.close_at = Some(at));
        event!(warn, { component = name, step = Step::Close }, "closing `{name}`");
        let bound = earliest(deadline_after(t0, Some(close_timeout)), deadline);
        let cx = self.context(index, bound);
        InFlight {
            index: Some(index),
            name,
            t0,
            call: Call::Cell(Some(Cmd::Close { cx, t0 })),
        }
    }

    /// Finishes every forced close at once, bounded together by the force
    /// budget.
    async fn close_forced(&mut self, closing: Vec<InFlight>, deadline: Option<Instant>) {
        if closing.is_empty() {
            return;
        }
        let bound = self.force_bound(deadline);
        self.finish_all(closing, bound, Self::end_close).await;
    }

    /// Records a close's result, drops the component's `run` and updates the
    /// report.
    pub(super) fn end_close(&mut self, call: &InFlight, result: CallResult<()>) {
        let Some(index) = call.index else {
            return;
        };
        if let Err(e) = result {
            self.record(&call.name, e, Step::Close);
        }
        let slot = &mut self.slots[index];
        if !slot.run_aborted {
            slot.run_aborted = true;
            slot.stop.abort();
        }
        let took = call.t0.elapsed();
        let name = &call.name;
        event!(info, { component = name, step = Step::Close, elapsed_ms = ms(took) }, "closed `{name}` in {took:?}");
        self.update(index, |r| {
            r.state = unless_failed(r.state, ComponentState::Closed);
            r.close_took = Some(took);
        });
    }
}
