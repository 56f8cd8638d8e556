//! The queue of woken cells the runner polls.

use std::sync::Mutex;

use futures::task::AtomicWaker;

use crate::latch::lock;

/// The cells woken since the runner last looked, and the runner's waker.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    woken: Mutex<Vec<usize>>,
    runner: AtomicWaker,
}

impl ReadyQueue {
    /// Registers the runner's waker, then moves the cells woken so far
    /// into `batch` (emptied first), leaving the queue its old buffer.
    pub(crate) fn take(&self, runner: &std::task::Waker, batch: &mut Vec<usize>) {
        self.runner.register(runner);
        batch.clear();
        std::mem::swap(&mut *lock(&self.woken), batch);
    }

    /// Puts back cells taken and not polled: they are still marked
    /// queued, so nothing else puts them back.
    pub(crate) fn requeue(&self, cells: &[usize]) {
        if !cells.is_empty() {
            lock(&self.woken).extend_from_slice(cells);
        }
    }

    /// Queues a woken cell and wakes the runner.
    pub(super) fn push(&self, index: usize) {
        lock(&self.woken).push(index);
        self.runner.wake();
    }

    /// Whether a cell was woken since the last [`ReadyQueue::take`].
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.woken).is_empty()
    }
}
