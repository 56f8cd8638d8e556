//! The launch order of the builder's components.
//!
//! The runner launches components one at a time, in the order they are
//! admitted, and stops them in reverse. Admitting them in an order where
//! every component comes after its dependencies makes that launch respect
//! the dependencies, and the reverse stop too: a component stops only
//! after every component that depends on it.
//!
//! The order is the graph's, taken one component at a time: of the
//! components whose dependencies are all launched, the earliest registered
//! goes next. With the default graph (each component depends on the one
//! registered before it) that is registration order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use super::ComponentOptions;
use crate::component::DynComponent;
use crate::error::Error;
use crate::graph::Graph;
use crate::handle::{Handle, Registration};
use crate::names::{NameIndex, validate_name};

/// The builder's components, validated in the order they were added, and
/// their dependency graph by registration index.
pub(super) struct LaunchOrder {
    components: Vec<(Arc<str>, Arc<dyn DynComponent>, ComponentOptions)>,
    index: NameIndex,
    graph: Graph,
}

impl LaunchOrder {
    pub(super) fn with_capacity(components: usize) -> Self {
        let mut index = NameIndex::default();
        index.reserve(components);
        LaunchOrder {
            components: Vec::with_capacity(components),
            index,
            graph: Graph::default(),
        }
    }

    /// Adds a component, refusing an invalid name or option and a
    /// duplicate name, as registration does: errors come in the order of
    /// the builder's calls. Dependency names are resolved by
    /// [`admit`](LaunchOrder::admit), once every component is known.
    pub(super) fn push(
        &mut self,
        name: Arc<str>,
        component: Arc<dyn DynComponent>,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        validate_name(&name, "component")?;
        options.validate(&name)?;
        let components = &self.components;
        let at = components.len() as u32;
        if self
            .index
            .insert(&name, at, |i| &components[i as usize].0)
            .is_err()
        {
            return Err(Error::config("duplicate component name").with_component(&name));
        }
        self.graph.add(options.dependencies());
        self.components.push((name, component, options));
        Ok(())
    }

    /// Links the dependencies and admits every component to `handle` in
    /// launch order: what the runner is handed.
    ///
    /// # Errors
    ///
    /// A `Config` error naming the component for an unknown dependency
    /// name, or naming the whole cycle (`a -> b -> a`) for a cycle.
    pub(super) fn admit(self, handle: &Handle) -> Result<Vec<Registration>, Error> {
        let LaunchOrder {
            components,
            index,
            mut graph,
        } = self;
        let name_at = |i: u32| &*components[i as usize].0;
        graph.link(|n| index.get(n, name_at), name_at)?;
        let order = launch_order(&mut graph);
        // Each component's dependencies as admitted: `None` where "the one
        // before" still means the same component, so that the default
        // graph costs no names.
        let mut deps: Vec<Option<Vec<Arc<str>>>> = Vec::with_capacity(order.len());
        for (at, &node) in order.iter().enumerate() {
            let before = at.checked_sub(1).map(|b| order[b]);
            let same_previous = before == node.checked_sub(1);
            deps.push(
                if components[node as usize].2.dependencies().is_none() && same_previous {
                    None
                } else {
                    let names = graph
                        .dependencies(node)
                        .map(|d| components[d as usize].0.clone());
                    Some(names.collect())
                },
            );
        }
        let mut components: Vec<_> = components.into_iter().map(Some).collect();
        let mut initial = Vec::with_capacity(order.len());
        for node in order {
            if let Some((name, component, options)) = components[node as usize].take() {
                initial.push(handle.admit_component(name, component, &options)?);
            }
        }
        handle.link_admitted(deps.iter().map(Option::as_deref))?;
        Ok(initial)
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
