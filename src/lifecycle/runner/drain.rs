//! Drain: stop the started components in reverse dependency order. A
//! component stops once every component that depends on it has stopped;
//! independent ones stop at once, each bounded by its stop budget and all
//! by the shutdown deadline. A stop that overruns its budget closes its
//! component. A force ends the drain: what it interrupted, and every
//! component not yet stopped, is closed at once (in `shutdown`).
//!
//! Like the launch, one flat loop: each pass begins the stops the graph
//! allows and moves each component in its stop one step on.

use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures_timer::Delay;

use super::cells::unit;
use super::drive::{Driven, Interrupt};
use super::launch::Moved;
use super::shutdown::InFlight;
use super::shutdown::unless_failed;
use super::{Runner, budget_of, deadline_after, earliest};
use crate::error::{Error, ErrorKind};
use crate::graph::Graph;
use crate::latch::lock;
use crate::logging::{event, ms};
use crate::phase::Step;
use crate::report::ComponentState;

/// A component in its stop.
pub(super) struct Stopper {
    index: usize,
    t0: Instant,
    /// `t0` as a report stamp: the stop's duration is the difference of
    /// its two stamps.
    at: Duration,
    /// The end of its stop budget.
    bound: Option<Instant>,
    step: StopStep,
    /// Armed only once the stop does not end on its first poll.
    timer: Option<Delay>,
}

enum StopStep {
    /// Its stop command, issued: its `stop` call, then the wait for its
    /// `run` to end, walked by its future.
    Stop,
    /// Waiting for its `run` to end, its `stop` having failed.
    Run,
    /// Its `close` call.
    Close(InFlight),
}

impl Stopper {
    /// Whether the stop budget has run out; arms its timer otherwise.
    fn expired(&mut self, cx: &mut TaskContext<'_>) -> bool {
        super::expired(self.bound, &mut self.timer, cx)
    }
}

impl Runner {
    /// Stops every started component, as the graph allows. A force ends
    /// it: what was in its stop and every component not yet stopped are
    /// handed back with their `close` to make, all at once.
    pub(super) async fn drain(&mut self, deadline: Option<Instant>) -> Vec<InFlight> {
        {
            let mut st = lock(&self.handle.shared.state);
            st.graph.begin_shutdown();
            take_stoppable(&mut st.graph, &mut self.stoppable);
        }
        let outcome = self
            .drive(None, Interrupt::Force, |s, cx| s.poll_drain(cx, deadline))
            .await;
        let mut forced = Vec::new();
        if let Driven::Done(()) = outcome {
            return forced;
        }
        for s in std::mem::take(&mut self.stopping) {
            let index = s.index;
            match s.step {
                StopStep::Stop => {
                    match self.slots[index].cell.take_done().map(unit) {
                        Some(Err(e)) => {
                            let name = self.slots[index].name.clone();
                            self.record(&name, e, Step::Stop);
                        }
                        Some(Ok(())) => {}
                        None => self.abandon(index),
                    }
                    forced.push(self.begin_close(index, deadline));
                }
                StopStep::Run => forced.push(self.begin_close(index, deadline)),
                StopStep::Close(call) => forced.push(call),
            }
        }
        self.stoppable.clear();
        for k in (0..self.launched.len()).rev() {
            let index = self.launched[k];
            if !self.slots[index].stopping {
                self.mark_stopping(index);
                forced.push(self.begin_close(index, deadline));
            }
        }
        forced
    }

    /// One pass of the drain. Ready once nothing is left to stop.
    fn poll_drain(&mut self, cx: &mut TaskContext<'_>, deadline: Option<Instant>) -> Poll<()> {
        let force = self.handle.shared.force.clone();
        // What the stops begun in a pass let stop goes here, to be begun
        // in the next pass (with what a force held back). Drained rather
        // than consumed, and the two buffers swapped: a stop costs no
        // allocation.
        let mut next = Vec::new();
        loop {
            let mut moved = false;
            let mut stoppable = std::mem::replace(&mut self.stoppable, next);
            for index in stoppable.drain(..) {
                if force.is_set() {
                    self.stoppable.push(index);
                } else {
                    self.begin_stop(index, cx, deadline);
                    moved = true;
                }
            }
            // Drained: the buffer for the next pass.
            next = stoppable;
            // Stops that do not end in their first poll only (a pass that
            // finds none has nothing to take apart).
            if !self.stopping.is_empty() {
                let mut stopping = std::mem::take(&mut self.stopping);
                stopping.retain_mut(|s| {
                    if force.is_set() {
                        return true;
                    }
                    self.advance_stop(s, cx, deadline).keep(&mut moved)
                });
                stopping.append(&mut self.stopping);
                self.stopping = stopping;
            }
            if !moved || force.is_set() {
                break;
            }
        }
        if self.stopping.is_empty() && self.stoppable.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Begins a component's stop: its stop latch set and its stop command
    /// issued, or its `close` at once with a stop budget of zero. The
    /// component's future is polled at once, not on the wake the latch
    /// brings: a stop that ends in that poll (`stop` returned, `run` ended
    /// as asked) is over, its report row written once.
    fn begin_stop(&mut self, index: usize, cx: &mut TaskContext<'_>, deadline: Option<Instant>) {
        let stop_timeout = self.slots[index].options.stop_timeout;
        if stop_timeout == Some(Duration::ZERO) || self.slots[index].close_only {
            let (t0, at) = self.mark_stopping(index);
            let bound = earliest(deadline_after(t0, stop_timeout), deadline);
            let step = StopStep::Close(self.begin_close(index, deadline));
            let s = Stopper {
                index,
                t0,
                at,
                bound,
                step,
                timer: None,
            };
            return self.go_on(s, cx, deadline);
        }
        // With the default chain, the clock read that ended the stop
        // before: its stamp is worked out already.
        let (t0, at) = self.stamp();
        let bound = earliest(deadline_after(t0, stop_timeout), deadline);
        self.announce_stop(index);
        let stop = self.stop_deadline(bound);
        let slot = &self.slots[index];
        slot.cell.put_stop(stop);
        slot.cell.set_stop(&slot.stop);
        self.poll_only(index);
        // Nothing to record of a `run` that ended cleanly when asked to
        // (before `stop` was called), but its stamp, written with the
        // stop's: both ends taken at once.
        if self.slots[index].cell.take_stopped_ok() {
            self.slots[index].run_done = true;
            self.stopped(index, at, true);
            return;
        }
        // Otherwise an end of `run` is recorded as any is.
        if let Some(end) = self.run_end_now(index) {
            self.on_run_end(index, end);
        }
        // Not over in its first poll: the report says so meanwhile.
        self.update(index, |r| {
            r.state = unless_failed(r.state, ComponentState::Stopping);
            r.stop_at = Some(at);
        });
        let s = Stopper {
            index,
            t0,
            at,
            bound,
            step: StopStep::Stop,
            timer: None,
        };
        self.go_on(s, cx, deadline);
    }

    /// Takes a stop just begun one step on at once (what its first poll
    /// brought is read before any other stop is issued), and keeps it if
    /// it is not over.
    fn go_on(&mut self, mut s: Stopper, cx: &mut TaskContext<'_>, deadline: Option<Instant>) {
        if self.advance_stop(&mut s, cx, deadline) != Moved::Done {
            self.stopping.push(s);
        }
    }

    /// Moves a component in its stop one step on, if it can.
    fn advance_stop(
        &mut self,
        s: &mut Stopper,
        cx: &mut TaskContext<'_>,
        deadline: Option<Instant>,
    ) -> Moved {
        let index = s.index;
        match s.step {
            StopStep::Stop => {
                if let Some(done) = self.slots[index].cell.take_done() {
                    if let Err(e) = unit(done) {
                        let name = self.slots[index].name.clone();
                        self.record(&name, e, Step::Stop);
                    }
                    // `Ok`: its `run` ended too, recorded before (or, in
                    // the same poll, right after) the stop's end.
                    s.step = StopStep::Run;
                    return match self.advance_stop(s, cx, deadline) {
                        Moved::No => Moved::On,
                        moved => moved,
                    };
                }
                if !s.expired(cx) {
                    return Moved::No;
                }
                self.abandon(index);
                self.stop_overran(s, deadline);
                Moved::On
            }
            StopStep::Run => {
                // A `run` that ended in the poll that ended `stop` is read
                // after it.
                self.flush_deferred();
                if self.slots[index].run_done {
                    self.stopped(index, s.at, false);
                    return Moved::Done;
                }
                if !s.expired(cx) {
                    return Moved::No;
                }
                self.stop_overran(s, deadline);
                Moved::On
            }
            StopStep::Close(ref mut call) => match self.poll_call(call, cx) {
                Poll::Ready(result) => {
                    self.end_close(call, result);
                    // Its `run` is dropped before anything else stops.
                    if self.slots[index].cell.is_queued() {
                        self.poll_cell(index);
                    }
                    self.released(index);
                    Moved::Done
                }
                Poll::Pending => Moved::No,
            },
        }
    }

    /// A stop overran its budget: an error, and the component's `close`.
    fn stop_overran(&mut self, s: &mut Stopper, deadline: Option<Instant>) {
        let name = self.slots[s.index].name.clone();
        let e = Error::new(ErrorKind::TimedOut).with_budget(budget_of(s.bound, s.t0));
        self.record(&name, e, Step::Stop);
        s.step = StopStep::Close(self.begin_close(s.index, deadline));
    }

    /// A component's `run` ended within its stop budget. `whole`: its stop
    /// ended in the poll that began it, whose report row is written now
    /// only, with the stamp of its `run`'s end. `at`: the stamp of the
    /// stop's beginning; its duration is the difference of the two stamps
    /// (both counted from the epoch, so the same as of the two instants),
    /// and the end's stamp is the next stop's beginning with the default
    /// chain.
    fn stopped(&mut self, index: usize, at: Duration, whole: bool) {
        let (_, end) = self.stamp();
        let took = end.saturating_sub(at);
        let stop_at = if whole { Some(at) } else { None };
        let name = &self.slots[index].name;
        event!(info, { component = name, step = Step::Stop, elapsed_ms = ms(took) }, "stopped `{name}` in {took:?}");
        let mut st = lock(&self.handle.shared.state);
        if let Some(r) = st.records.get_mut(index) {
            r.state = unless_failed(r.state, ComponentState::Stopped);
            r.stop_took = Some(took);
            if let Some(at) = stop_at {
                r.stop_at = Some(at);
                // The same clock read as `took`'s end.
                r.run_ended_at = Some(end);
            }
        }
        st.graph.set_stopped(index as u32);
        take_stoppable(&mut st.graph, &mut self.stoppable);
    }

    /// A stop command's deadline, as its offset from the epoch.
    pub(super) fn stop_deadline(&mut self, bound: Option<Instant>) -> Option<Duration> {
        let bound = bound?;
        Some(match self.stop_bound {
            Some((at, offset)) if at == bound => offset,
            _ => {
                let offset = self.since_epoch(bound);
                self.stop_bound = Some((bound, offset));
                offset
            }
        })
    }

    /// A component is stopped or closed: those it depends on may stop once
    /// nothing else holds them.
    fn released(&mut self, index: usize) {
        let mut st = lock(&self.handle.shared.state);
        st.graph.set_stopped(index as u32);
        take_stoppable(&mut st.graph, &mut self.stoppable);
    }
}

/// Takes what the graph lets stop: the latest registered first.
fn take_stoppable(graph: &mut Graph, into: &mut Vec<usize>) {
    let from = into.len();
    while let Some(node) = graph.next_stoppable() {
        into.push(node as usize);
    }
    // One at a time with the default chain: nothing to order.
    if into.len() - from > 1 {
        into[from..].sort_unstable_by(|a, b| b.cmp(a));
    }
}
