//! The launch order of the builder's components.
//!
//! The runner launches components as the dependency graph allows, but
//! the graph, the report and the runner's slots all number components in
//! the order they are admitted: admitting them so that every component
//! comes after its dependencies keeps that numbering a launch order (the
//! report lists them so, and a dependency always has a smaller number
//! than what depends on it).
//!
//! The order is the graph's, taken one component at a time: of the
//! components whose dependencies are all launched, the earliest registered
//! goes next. With the default graph (each component depends on the one
//! registered before it) that is registration order: unless a component
//! names its dependencies, the builder's components are admitted as they
//! come, and only linked at the end.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::parts::Registration;
use crate::error::Error;
use crate::graph::Graph;
use crate::handle::{Admission, Handle};
use crate::names::NameIndex;

/// The builder's components on their way to the runner.
pub(super) struct LaunchOrder<'h> {
    handle: &'h Handle,
    /// Admitted so far, in launch order.
    admitted: Vec<Registration>,
    /// `None` while no component names its dependencies: the graph is the
    /// default chain, whose order is registration order, so each component
    /// is admitted as it comes, as it always was.
    staged: Option<Staged>,
}

/// The names a component depends on, `None` for the one added before it.
type Dependencies = Option<Arc<[Box<str>]>>;

/// Components validated in the order they were added, and their
/// dependency graph by registration index.
struct Staged {
    components: Vec<(Registration, Dependencies)>,
    index: NameIndex,
    graph: Graph,
}

impl<'h> LaunchOrder<'h> {
    /// Ready for `components` components; `named` says whether any of them
    /// names its dependencies.
    pub(super) fn new(handle: &'h Handle, components: usize, named: bool) -> Self {
        let staged = named.then(|| {
            let mut index = NameIndex::default();
            index.reserve(components);
            Staged {
                components: Vec::with_capacity(components),
                index,
                graph: Graph::default(),
            }
        });
        LaunchOrder {
            handle,
            admitted: Vec::with_capacity(if named { 0 } else { components }),
            staged,
        }
    }

    /// Adds a component, its name and options validated already, refusing
    /// a duplicate name, as registration does: errors come in the order of
    /// the builder's calls. Dependency names are resolved by
    /// [`admit`](LaunchOrder::admit), once every component is known.
    #[inline]
    pub(super) fn push(
        &mut self,
        admission: &mut Admission<'_>,
        registration: Registration,
        dependencies: Dependencies,
    ) -> Result<(), Error> {
        let Some(staged) = &mut self.staged else {
            let registration = admission.component(registration)?;
            self.admitted.push(registration);
            return Ok(());
        };
        let components = &staged.components;
        let at = components.len() as u32;
        let name = &registration.name;
        if staged
            .index
            .insert(name, at, |i| &components[i as usize].0.name)
            .is_err()
        {
            return Err(Error::config("duplicate component name").with_component(name));
        }
        staged.graph.add(dependencies.as_deref());
        staged.components.push((registration, dependencies));
        Ok(())
    }

    /// Links the dependencies and admits every component to the handle in
    /// launch order: what the runner is handed.
    ///
    /// # Errors
    ///
    /// A `Config` error naming the component for an unknown dependency
    /// name, or naming the whole cycle (`a -> b -> a`) for a cycle.
    pub(super) fn admit(self) -> Result<Vec<Registration>, Error> {
        let LaunchOrder {
            handle,
            mut admitted,
            staged,
        } = self;
        let Some(Staged {
            components,
            index,
            mut graph,
        }) = staged
        else {
            handle.link_admitted(admitted.iter().map(|_| None))?;
            return Ok(admitted);
        };
        let name_at = |i: u32| &*components[i as usize].0.name;
        graph.link(|n| index.get(n, name_at), name_at)?;
        let order = launch_order(&mut graph);
        // Each component's dependencies as admitted: `None` where "the one
        // before" still means the same component.
        let mut deps: Vec<Option<Vec<Arc<str>>>> = Vec::with_capacity(order.len());
        for (at, &node) in order.iter().enumerate() {
            let before = at.checked_sub(1).map(|b| order[b]);
            let same_previous = before == node.checked_sub(1);
            deps.push(if components[node as usize].1.is_none() && same_previous {
                None
            } else {
                let names = graph
                    .dependencies(node)
                    .map(|d| components[d as usize].0.name.clone());
                Some(names.collect())
            });
        }
        let mut components: Vec<_> = components.into_iter().map(Some).collect();
        admitted.reserve(order.len());
        let mut admission = handle.admission();
        for node in order {
            if let Some((registration, _)) = components[node as usize].take() {
                admitted.push(admission.component(registration)?);
            }
        }
        drop(admission);
        handle.link_admitted(deps.iter().map(Option::as_deref))?;
        Ok(admitted)
    }
}

/// Every node of a linked graph without cycles, each after its
/// dependencies: of those whose dependencies came already, the smallest.
fn launch_order(graph: &mut Graph) -> Vec<u32> {
    let mut order = Vec::with_capacity(graph.len() as usize);
    let mut startable = BinaryHeap::new();
    loop {
        while let Some(node) = graph.next_startable() {
            startable.push(Reverse(node));
        }
        let Some(Reverse(node)) = startable.pop() else {
            return order;
        };
        graph.set_ready(node);
        order.push(node);
    }
}
