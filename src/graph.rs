//! The dependency graph of components: which may start, which may stop.
//!
//! Components are nodes by registration index. Each depends on the
//! components it names or, if it names none, on the one registered just
//! before it: the default graph is a chain, the strict registration order.
//! The chain costs no edge storage; only named dependencies take a cell.
//!
//! The graph grows by batches: [`Graph::add`] each component of a batch
//! (the builder's whole list, or one component registered while running),
//! then [`Graph::link`] resolves the names, refuses unknown names and
//! cycles (a refused batch leaves the graph as it was) and queues what may
//! start. Names may point forward within a batch; a batch can only depend
//! on earlier nodes, so a cycle lies within one batch.
//!
//! The scheduler then reports what happens and takes what may follow, each
//! call O(degree) amortised:
//!
//! * [`next_startable`](Graph::next_startable) yields a node once every
//!   dependency is ready; the scheduler must start it, then report it
//!   [`set_ready`](Graph::set_ready), or [`set_stopped`](Graph::set_stopped)
//!   if its start failed. [`set_unready`](Graph::set_unready) holds its
//!   dependents back again (a restart).
//! * Once [`begin_shutdown`](Graph::begin_shutdown) is called nothing more
//!   starts and [`next_stoppable`](Graph::next_stoppable) yields each
//!   started node once every node that depends on it has stopped: reverse
//!   dependency order, independent nodes together.
//!
//! A report that does not apply to a node's state (ready when not started,
//! stopped twice) changes nothing, so a late report cannot start or stop
//! anything twice. Queue entries that went stale are skipped when taken.

use std::collections::VecDeque;

use crate::error::Error;

/// "No cell": the end of a dependents list.
const END: u32 = u32::MAX;
/// A dependency list length meaning "the node registered just before".
const PREVIOUS: u32 = u32::MAX;

/// Where a node's lifecycle stands, as far as order is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Not started: a dependency is not ready, or it is queued to start.
    Waiting,
    /// Handed out to start (or restarting): not ready.
    Started,
    /// Ready.
    Ready,
    /// Queued to stop, or stopping.
    Stopping,
    /// Stopped, or its start failed.
    Stopped,
}

impl State {
    /// Whether the node holds its dependencies up: they may not stop.
    fn holds(self) -> bool {
        matches!(self, State::Started | State::Ready | State::Stopping)
    }
}

/// The fixed part of a node: its edges.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Its dependencies: `deps[at..at + len]`, or the node before it if
    /// `len` is [`PREVIOUS`].
    at: u32,
    len: u32,
    /// Head of its list of named dependents in `links`.
    dependents: u32,
}

/// The moving part of a node.
#[derive(Debug, Clone, Copy)]
struct Live {
    state: State,
    /// Dependencies not ready (kept whatever this node's state).
    unready_deps: u32,
    /// Dependents that hold it (started and not stopped).
    holders: u32,
}

/// One named edge, in the dependency's list of dependents.
#[derive(Debug, Clone, Copy)]
struct Link {
    dependent: u32,
    next: u32,
}

/// Dependency names given to [`Graph::add`], kept until [`Graph::link`].
#[derive(Debug)]
struct Pending {
    node: u32,
    /// Its entries in `name_ends`: each name ends in `pending_names` where
    /// its entry says and starts where the entry before it ends.
    ends: std::ops::Range<usize>,
}

/// The dependency graph. See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    shapes: Vec<Shape>,
    live: Vec<Live>,
    deps: Vec<u32>,
    links: Vec<Link>,
    pending: Vec<Pending>,
    pending_names: String,
    name_ends: Vec<usize>,
    /// Nodes below this index are linked.
    linked: u32,
    startable: VecDeque<u32>,
    stoppable: VecDeque<u32>,
    shutting_down: bool,
    /// Loop iterations, for the test that the work is linear.
    #[cfg(test)]
    steps: std::cell::Cell<u64>,
}

impl Graph {
    /// The number of nodes, linked or not.
    pub(crate) fn len(&self) -> u32 {
        self.shapes.len() as u32
    }

    /// Adds a node, to be linked by the next [`link`](Graph::link): with
    /// `None`, it depends on the node added just before it (none for the
    /// first); with `Some(names)`, on those (none for an empty list;
    /// duplicates count once).
    pub(crate) fn add<S: AsRef<str>>(&mut self, deps: Option<&[S]>) -> u32 {
        let node = self.len();
        let len = match deps {
            None => PREVIOUS,
            Some(names) => {
                let start = self.name_ends.len();
                for name in names {
                    self.pending_names.push_str(name.as_ref());
                    self.name_ends.push(self.pending_names.len());
                }
                if !names.is_empty() {
                    let ends = start..self.name_ends.len();
                    self.pending.push(Pending { node, ends });
                }
                0
            }
        };
        self.shapes.push(Shape {
            at: self.deps.len() as u32,
            len,
            dependents: END,
        });
        self.live.push(Live {
            state: State::Waiting,
            unready_deps: 0,
            holders: 0,
        });
        node
    }

    /// Links the nodes added since the last call: resolves their
    /// dependency names with `lookup` (a name's node, which may be in this
    /// batch), and queues those whose dependencies are all ready (none
    /// once shutdown began: the engine refuses such registrations anyway).
    ///
    /// # Errors
    ///
    /// A name `lookup` does not know, or a cycle: a `Config` error naming
    /// the component (through `name_at`) and the unknown name or the whole
    /// cycle. The batch's nodes are then removed, as if never added.
    pub(crate) fn link<'n>(
        &mut self,
        lookup: impl Fn(&str) -> Option<u32>,
        name_at: impl Fn(u32) -> &'n str,
    ) -> Result<(), Error> {
        // Only resolving grows `deps`: what it holds now is what stays.
        let deps_before = self.deps.len();
        // Without named dependencies the batch only adds to the chain,
        // which closes no cycle.
        let named = !self.pending.is_empty();
        let result = self.resolve(&lookup, &name_at).and_then(|()| {
            match if named { self.find_cycle() } else { None } {
                None => Ok(()),
                Some(cycle) => Err(link::cycle_error(&cycle, &name_at)),
            }
        });
        self.pending.clear();
        self.pending_names.clear();
        self.name_ends.clear();
        if result.is_err() {
            let first = self.linked as usize;
            self.deps.truncate(deps_before);
            self.shapes.truncate(first);
            self.live.truncate(first);
            return result;
        }
        for node in self.linked..self.len() {
            let named = self.shapes[node as usize].len != PREVIOUS;
            let mut unready = 0;
            for k in 0..self.dep_count(node) {
                self.step();
                let dep = self.dep_at(node, k);
                if named {
                    let s = &mut self.shapes[dep as usize];
                    self.links.push(Link {
                        dependent: node,
                        next: s.dependents,
                    });
                    s.dependents = (self.links.len() - 1) as u32;
                }
                unready += u32::from(self.live[dep as usize].state != State::Ready);
            }
            self.live[node as usize].unready_deps = unready;
            if unready == 0 && !self.shutting_down {
                self.startable.push_back(node);
            }
        }
        self.linked = self.len();
        Ok(())
    }

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

    /// The nodes `node` depends on, in the order named, for the report.
    pub(crate) fn dependencies(&self, node: u32) -> impl Iterator<Item = u32> + '_ {
        (0..self.dep_count(node)).map(move |k| self.dep_at(node, k))
    }

    /// Where `node` stands. Only the tests ask: the scheduler learns it
    /// from what the graph yields.
    #[cfg(test)]
    fn state(&self, node: u32) -> State {
        self.live[node as usize].state
    }

    /// Whether `node` holds its dependencies up: started and not stopped.
    pub(crate) fn is_up(&self, node: u32) -> bool {
        self.live[node as usize].state.holds()
    }

    fn dep_count(&self, node: u32) -> u32 {
        match self.shapes[node as usize].len {
            PREVIOUS => u32::from(node > 0),
            len => len,
        }
    }

    /// Dependency number `k` of `node`, `k` below its count.
    fn dep_at(&self, node: u32, k: u32) -> u32 {
        match self.shapes[node as usize] {
            Shape { len: PREVIOUS, .. } => node - 1,
            Shape { at, .. } => self.deps[(at + k) as usize],
        }
    }

    #[cfg(test)]
    fn step(&self) {
        self.steps.set(self.steps.get() + 1);
    }

    #[cfg(not(test))]
    fn step(&self) {}
}

/// The linked nodes that depend on `node`: its named dependents, then the
/// next node if that one depends on "the previous".
fn dependents_of<'g>(
    shapes: &[Shape],
    links: &'g [Link],
    linked: u32,
    node: u32,
) -> impl Iterator<Item = u32> + 'g {
    let next = node + 1;
    let implicit = (next < linked && shapes[next as usize].len == PREVIOUS).then_some(next);
    let mut cell = shapes[node as usize].dependents;
    std::iter::from_fn(move || {
        let link = links.get(cell as usize)?;
        cell = link.next;
        Some(link.dependent)
    })
    .chain(implicit)
}

mod link;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod scaling_tests;
#[cfg(test)]
mod tests;
