//! Growing the graph: adding nodes, linking a batch (resolving dependency
//! names, refusing cycles); and undoing the link of the last node.

use std::collections::HashSet;

use super::{END, Graph, Link, Live, PREVIOUS, Pending, Shape, State};
use crate::error::Error;

/// Up to this many names, duplicates are found by comparing each pair.
const SMALL: usize = 16;

impl Graph {
    /// Makes room for `additional` more nodes.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.shapes.reserve(additional);
        self.live.reserve(additional);
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
                Some(cycle) => Err(cycle_error(&cycle, &name_at)),
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

    /// Removes the last node, which the last [`link`](Graph::link) linked
    /// alone and which has not started: an admission undone.
    pub(crate) fn remove_last(&mut self) {
        let Some(node) = self.len().checked_sub(1) else {
            return;
        };
        let shape = self.shapes[node as usize];
        if shape.len != PREVIOUS {
            // Its links were pushed last, one per dependency in order, each
            // becoming the head of that dependency's list.
            for k in (0..shape.len).rev() {
                let dep = self.deps[(shape.at + k) as usize];
                if let Some(link) = self.links.pop() {
                    self.shapes[dep as usize].dependents = link.next;
                }
            }
            self.deps.truncate(shape.at as usize);
        }
        self.shapes.pop();
        self.live.pop();
        self.linked = self.linked.min(node);
        if self.startable.back() == Some(&node) {
            self.startable.pop_back();
        }
    }

    /// Resolves the pending names into `deps`, node by node.
    fn resolve<'n>(
        &mut self,
        lookup: &impl Fn(&str) -> Option<u32>,
        name_at: &impl Fn(u32) -> &'n str,
    ) -> Result<(), Error> {
        let mut seen = HashSet::new();
        for p in &self.pending {
            let at = self.deps.len();
            let many = p.ends.len() > SMALL;
            seen.clear();
            let mut start = match p.ends.start {
                0 => 0,
                i => self.name_ends[i - 1],
            };
            for &end in &self.name_ends[p.ends.clone()] {
                self.step();
                let name = &self.pending_names[start..end];
                start = end;
                let dep = match lookup(name) {
                    Some(dep) if dep < self.len() => dep,
                    _ => {
                        let detail = format!("depends on unknown component {name:?}");
                        return Err(Error::config(detail).with_component(name_at(p.node)));
                    }
                };
                let repeated = if many {
                    !seen.insert(dep)
                } else {
                    self.deps[at..].contains(&dep)
                };
                if !repeated {
                    self.deps.push(dep);
                }
            }
            let s = &mut self.shapes[p.node as usize];
            s.at = at as u32;
            s.len = (self.deps.len() - at) as u32;
        }
        Ok(())
    }

    /// A cycle among the nodes being linked, if any, each node depending
    /// on the next and the last on the first, starting from its earliest
    /// node. Depth first, without recursion: O(nodes + edges) of the batch.
    fn find_cycle(&self) -> Option<Vec<u32>> {
        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let first = self.linked;
        let mut mark = vec![NEW; (self.len() - first) as usize];
        // (node, how many of its dependencies were followed)
        let mut stack: Vec<(u32, u32)> = Vec::new();
        for root in first..self.len() {
            if mark[(root - first) as usize] != NEW {
                continue;
            }
            mark[(root - first) as usize] = OPEN;
            stack.push((root, 0));
            while let Some(top) = stack.last_mut() {
                self.step();
                let (node, followed) = *top;
                if followed == self.dep_count(node) {
                    mark[(node - first) as usize] = DONE;
                    stack.pop();
                    continue;
                }
                top.1 += 1;
                let dep = self.dep_at(node, followed);
                if dep < first {
                    continue;
                }
                match mark[(dep - first) as usize] {
                    NEW => {
                        mark[(dep - first) as usize] = OPEN;
                        stack.push((dep, 0));
                    }
                    OPEN => {
                        let from = stack.iter().rposition(|&(n, _)| n == dep)?;
                        let mut cycle: Vec<u32> = stack[from..].iter().map(|&(n, _)| n).collect();
                        let earliest = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
                        cycle.rotate_left(earliest);
                        return Some(cycle);
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

/// The error for `cycle`: `a -> b -> c -> a`, read "depends on".
fn cycle_error<'n>(cycle: &[u32], name_at: &impl Fn(u32) -> &'n str) -> Error {
    let names: Vec<&str> = cycle
        .iter()
        .chain(&cycle[..1])
        .map(|&n| name_at(n))
        .collect();
    Error::config(format!("dependency cycle: {}", names.join(" -> "))).with_component(names[0])
}
