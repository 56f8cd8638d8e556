//! Stopping: once shutdown begins, which started node may stop next
//! (reverse dependency order), and a node reported stopped.

use super::{Graph, State};

impl Graph {
    /// Nothing starts any more; started nodes stop in reverse dependency
    /// order from now on. Queued starts are dropped: never started.
    pub(crate) fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        self.startable.clear();
        for node in (0..self.linked).rev() {
            self.step();
            self.queue_stop_if_free(node);
        }
    }

    /// The next started node that may stop: every node that depends on it
    /// has stopped. The caller must stop it and report
    /// [`set_stopped`](Graph::set_stopped).
    pub(crate) fn next_stoppable(&mut self) -> Option<u32> {
        // Skips a node reported stopped while it was queued.
        loop {
            let node = self.stoppable.pop_front()?;
            if self.live[node as usize].state == State::Stopping {
                return Some(node);
            }
        }
    }

    /// `node` has stopped, or its start failed: it holds its dependencies
    /// no more; during shutdown, those now free are queued to stop.
    /// Ignored unless `node` was started and not stopped, so that a second
    /// report changes nothing.
    pub(crate) fn set_stopped(&mut self, node: u32) {
        if !self.live[node as usize].state.holds() {
            return;
        }
        // Not ready any more: what has not started waits for it.
        self.set_unready(node);
        self.live[node as usize].state = State::Stopped;
        for k in 0..self.dep_count(node) {
            self.step();
            let dep = self.dep_at(node, k);
            self.live[dep as usize].holders -= 1;
            if self.shutting_down {
                self.queue_stop_if_free(dep);
            }
        }
    }

    fn queue_stop_if_free(&mut self, node: u32) {
        let l = &mut self.live[node as usize];
        if l.holders == 0 && matches!(l.state, State::Started | State::Ready) {
            l.state = State::Stopping;
            self.stoppable.push_back(node);
        }
    }
}
