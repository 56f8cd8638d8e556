//! What the end of a launch leads to: a ready component lets what depends
//! on it start; a failed one begins shutdown.

use std::time::{Duration, Instant};

use super::Runner;
use super::launch::{Launching, Moved};
use crate::error::Error;
use crate::graph::Graph;
use crate::latch::lock;
use crate::lifecycle::cell::{Done, Launched};
use crate::logging::{event, ms};
use crate::phase::Step;
use crate::report::ComponentState;

impl Runner {
    /// What the end of a component's launch leads to. `fresh` if its cell
    /// was the last polled, and that poll ended the launch.
    pub(super) fn launch_ended(&mut self, l: &mut Launching, done: Done, fresh: bool) -> Moved {
        let index = l.index;
        let Done::Launch(launched) = done else {
            return Moved::No;
        };
        if self.slots[index].cell.take_started() {
            self.started(index);
        }
        let Launched {
            start_took,
            attempts,
            end,
        } = launched;
        match end {
            Ok(at) => self.became_ready(index, l.start_at, at, start_took, attempts, fresh),
            Err((Step::Start, e)) => self.start_failed(index, e),
            Err((step, e)) => {
                self.update(index, |r| {
                    r.state = ComponentState::Failed;
                    r.start_took = start_took;
                    r.attempts = attempts;
                });
                self.fail(index, e, step);
            }
        }
        Moved::Done
    }

    /// A component's `start` failed: it never started, and holds its
    /// dependencies no more. Nothing of it is left to stop: a relaunch's
    /// earlier life was stopped by its restart, and a force, which closes
    /// every component launched and not yet stopping, must not close it.
    pub(super) fn start_failed(&mut self, index: usize, e: Error) {
        self.slots[index].stopping = true;
        self.fail_launch(index, e, Step::Start);
        lock(&self.handle.shared.state)
            .graph
            .set_stopped(index as u32);
    }

    /// A component's `start` returned: its `run` is in flight.
    pub(super) fn started(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.run_started = true;
        // Once, whatever its restarts: the order a force closes in.
        if slot.restart.as_ref().is_none_or(|r| r.restarts() == 0) {
            self.launched.push(index);
        }
    }

    /// A component is ready (at `at`, its launch having been issued at
    /// `start_at`, its report stamp): those that depend on it may start
    /// once their other dependencies are ready too. Its report row is
    /// written once, for the whole launch. If `fresh` (no cell was polled
    /// since the one that read `at`), `at` is the runner's reading of the
    /// clock from now on, until the next poll.
    pub(super) fn became_ready(
        &mut self,
        index: usize,
        start_at: Duration,
        at: Instant,
        start_took: Option<Duration>,
        attempts: u32,
        fresh: bool,
    ) {
        self.slots[index].ready = true;
        self.unready -= 1;
        self.handle.shared.machine.settle();
        // Both stamps count from the same epoch, in whole nanoseconds: the
        // difference of the two is the launch's duration, exactly.
        let since = at.saturating_duration_since(self.handle.shared.epoch);
        let took = since.saturating_sub(start_at);
        // The clock read that ended the launch, in the poll that just
        // ended: a launch issued next, before any other poll (the default
        // chain's next), starts there, without reading the clock again.
        if fresh {
            self.adopt_clock(at, since);
        }
        let name = &self.slots[index].name;
        event!(
            info,
            { component = name, step = Step::Ready, elapsed_ms = ms(took) },
            "`{name}` ready after {took:?} ({attempts} attempt{})",
            if attempts == 1 { "" } else { "s" }
        );
        let mut st = lock(&self.handle.shared.state);
        if let Some(r) = st.records.get_mut(index) {
            r.state = ComponentState::Ready;
            r.start_took = start_took;
            r.attempts = attempts;
            r.ready_at = Some(since);
        }
        st.graph.set_ready(index as u32);
        take_startable(&mut st.graph, &mut self.startable);
    }
}

/// Takes what the graph lets start: the earliest registered first.
pub(super) fn take_startable(graph: &mut Graph, into: &mut Vec<usize>) {
    let from = into.len();
    while let Some(node) = graph.next_startable() {
        into.push(node as usize);
    }
    // The default chain lets one start at a time: nothing to sort.
    if into.len() - from > 1 {
        into[from..].sort_unstable();
    }
}
