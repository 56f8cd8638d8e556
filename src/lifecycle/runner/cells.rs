//! How the runner talks to the components' cells: polling the woken ones,
//! issuing a command and reading how the call it started ended.

use std::task::{Context as TaskContext, Poll};

use super::Runner;
use crate::component::CallResult;
use crate::lifecycle::cell::{Cmd, Done, RunExit};

impl Runner {
    /// Polls a component's future with its cell's waker, and records the
    /// end of its `run` if that came (then returns `true`).
    pub(super) fn poll_cell(&mut self, index: usize) -> bool {
        match self.poll_task(index) {
            Some(end) => {
                self.on_run_end(index, end);
                true
            }
            None => false,
        }
    }

    /// Polls a component's future with its cell's waker; returns the end
    /// of its `run` if that came and is to be recorded now (one that came
    /// after the end of a call waits for it to be read).
    pub(super) fn poll_task(&mut self, index: usize) -> Option<RunExit> {
        self.poll_only(index);
        self.run_end_now(index)
    }

    /// Polls a component's future with its cell's waker, and nothing else.
    pub(super) fn poll_only(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        slot.cell.dequeue();
        if let Some(task) = slot.task.as_mut() {
            let waker = futures::task::waker_ref(&slot.cell);
            let _ = task.as_mut().poll(&mut TaskContext::from_waker(&waker));
        }
        // The component's code may have taken any time.
        self.clock_moved();
    }

    /// The end of a component's `run` after a poll, as [`Runner::poll_task`]
    /// returns it.
    pub(super) fn run_end_now(&mut self, index: usize) -> Option<RunExit> {
        let slot = &self.slots[index];
        if slot.cell.run_end_is_late() {
            // The call ended first: its end must be read first.
            self.deferred.push(index);
            None
        } else {
            slot.cell.take_run_end()
        }
    }

    /// Polls the cells woken since the last pass; those woken during it
    /// wait for the next one.
    pub(super) fn poll_cells(&mut self, cx: &mut TaskContext<'_>) {
        self.flush_deferred();
        let mut batch = std::mem::take(&mut self.batch);
        self.queue.take(cx.waker(), &mut batch);
        for (k, &index) in batch.iter().enumerate() {
            // A cell polled since it was queued (by a command) has nothing
            // new; it may be queued again by now, and is polled then.
            if self.slots[index].cell.is_queued() {
                let _ = self.poll_cell(index);
                // A call's end is read before any other cell is polled, so
                // errors keep the order they happened in: the rest wait.
                if self.slots[index].cell.has_done() {
                    self.queue.requeue(&batch[k + 1..]);
                    break;
                }
            }
        }
        self.batch = batch;
        if !self.queue.is_empty() {
            cx.waker().wake_by_ref();
        }
    }

    /// Records the ends of `run` held back behind the end of a call.
    pub(super) fn flush_deferred(&mut self) {
        for i in 0..self.deferred.len() {
            let index = self.deferred[i];
            let end = self.slots[index].cell.take_run_end();
            if let Some(end) = end {
                self.on_run_end(index, end);
            }
        }
        self.deferred.clear();
    }

    /// Tells a component's future what to do, and polls it at once. A
    /// future that first has the end of its `run` to report (a launch does
    /// not go on in the poll that ends `run`) is polled again, still now,
    /// unless its call already ended.
    pub(super) fn command(&mut self, index: usize, cmd: Cmd) {
        self.slots[index].cell.put_cmd(cmd);
        // `run` ends once: a second poll at most.
        if self.poll_cell(index) && !self.slots[index].cell.has_done() {
            self.poll_cell(index);
        }
    }

    /// Drops the call in flight of a component, if any.
    pub(super) fn abandon(&mut self, index: usize) {
        self.command(index, Cmd::Abandon);
    }

    /// Issues `cmd` (on the first call) and tells whether the call it
    /// started has ended.
    pub(super) fn step(&mut self, index: usize, cmd: &mut Option<Cmd>) -> Poll<Done> {
        if let Some(cmd) = cmd.take() {
            self.command(index, cmd);
        }
        match self.slots[index].cell.take_done() {
            Some(done) => Poll::Ready(done),
            None => Poll::Pending,
        }
    }

    /// [`Runner::step`] for a call without a value.
    pub(super) fn step_unit(
        &mut self,
        index: usize,
        cmd: &mut Option<Cmd>,
    ) -> Poll<CallResult<()>> {
        self.step(index, cmd).map(unit)
    }
}

/// The result of a call without a value.
pub(super) fn unit(done: Done) -> CallResult<()> {
    match done {
        Done::Unit(out) => out,
        Done::Launch(l) => l.end.map(drop).map_err(|(_, e)| e),
    }
}
