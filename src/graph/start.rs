//! Starting: which node may start next, readiness reported and withdrawn
//! (a restart), and a start handed out taken back.

use super::{Graph, State, dependents_of};

impl Graph {
    /// The next node that may start: every dependency is ready. The caller
    /// must start it and report [`set_ready`](Graph::set_ready) or
    /// [`set_stopped`](Graph::set_stopped).
    pub(crate) fn next_startable(&mut self) -> Option<u32> {
        // An entry goes stale when a dependency stops being ready after it
        // was queued (a restart); it is queued again once that is ready.
        let node = loop {
            let node = self.startable.pop_front()?;
            let l = self.live[node as usize];
            if l.state == State::Waiting && l.unready_deps == 0 {
                break node;
            }
        };
        self.live[node as usize].state = State::Started;
        for k in 0..self.dep_count(node) {
            self.step();
            let dep = self.dep_at(node, k);
            self.live[dep as usize].holders += 1;
        }
        Some(node)
    }

    /// `node` is ready: its dependents whose dependencies are now all ready
    /// are queued to start. Ignored unless `node` was started and not
    /// ready, so that a readiness landing late (queued to stop, stopped)
    /// changes nothing.
    pub(crate) fn set_ready(&mut self, node: u32) {
        if self.live[node as usize].state != State::Started {
            return;
        }
        self.live[node as usize].state = State::Ready;
        for d in dependents_of(&self.shapes, &self.links, self.linked, node) {
            self.step();
            let l = &mut self.live[d as usize];
            l.unready_deps -= 1;
            if l.unready_deps == 0 && l.state == State::Waiting && !self.shutting_down {
                self.startable.push_back(d);
            }
        }
    }

    /// `node` is not ready any more, as while it restarts: its dependents
    /// keep running, those not yet started wait for it again. Ignored
    /// unless `node` was ready.
    pub(crate) fn set_unready(&mut self, node: u32) {
        if self.live[node as usize].state != State::Ready {
            return;
        }
        self.live[node as usize].state = State::Started;
        for d in dependents_of(&self.shapes, &self.links, self.linked, node) {
            self.step();
            self.live[d as usize].unready_deps += 1;
        }
    }

    /// Whether `node`, handed out to start, may still start: every
    /// dependency is ready. If not (one began a restart since), it goes
    /// back to waiting, holds its dependencies no more, and is queued again
    /// once they are all ready.
    pub(crate) fn still_startable(&mut self, node: u32) -> bool {
        let l = self.live[node as usize];
        if l.state != State::Started || l.unready_deps == 0 {
            return true;
        }
        self.unstart(node);
        false
    }

    /// `node`, started and stopped for a restart, is to start again: it
    /// waits for its dependencies like a node never started, and is queued
    /// at once if they are all ready. Ignored unless `node` was started and
    /// not ready.
    pub(crate) fn restart(&mut self, node: u32) {
        if self.live[node as usize].state != State::Started {
            return;
        }
        self.unstart(node);
        if self.live[node as usize].unready_deps == 0 && !self.shutting_down {
            self.startable.push_back(node);
        }
    }

    /// A started node goes back to waiting: it holds its dependencies no
    /// more.
    fn unstart(&mut self, node: u32) {
        self.live[node as usize].state = State::Waiting;
        for k in 0..self.dep_count(node) {
            self.step();
            let dep = self.dep_at(node, k);
            self.live[dep as usize].holders -= 1;
        }
    }
}
