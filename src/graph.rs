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
mod start;
mod stop;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod overlap_tests;
#[cfg(test)]
mod scaling_tests;
#[cfg(test)]
mod tests;
