//! Admission: how components, drainers, checks and stop hooks join a
//! lifecycle, from the builder or from a handle while it runs — names
//! validated and claimed, report rows added, and what a running lifecycle
//! must launch sent to its runner.

use std::sync::{Arc, MutexGuard};

use super::Handle;
use super::shared::{self, Shared, claim, validate_name};
use crate::component::Component;
use crate::drain::{Drainer, DynDrainer, drainer_fn};
use crate::error::{BoxError, Error};
use crate::graph::Graph;
use crate::health::{CheckOptions, DynHealthChecker, Entry, HealthChecker, Probes};
use crate::latch::lock;
use crate::lifecycle::ComponentOptions;
use crate::lifecycle::parts::{Parts, Registration};
use crate::lifecycle::task::DynComponent;
use crate::report::{ComponentRecord, Dependencies};

impl Handle {
    /// Registers a component while the lifecycle runs, with default
    /// options. It is launched after those already registered, and stopped
    /// before them; by default it depends on the component launched last,
    /// and it may [depend](ComponentOptions::depends_on) on any registered
    /// component. Until it is ready, the built-in `launch` readiness check
    /// fails and [`Handle::is_ready`] is `false`.
    ///
    /// # Errors
    ///
    /// A [`ShuttingDown`](crate::ErrorKind::ShuttingDown) error once shutdown has
    /// begun, a [`Config`](crate::ErrorKind::Config) error for a duplicate name, an
    /// invalid name (empty, or with a control character or `/`), an
    /// invalid option, or a dependency that no registered component has or
    /// that names the component itself; either way nothing changes.
    pub fn add_component<C: Component>(
        &self,
        name: impl Into<String>,
        component: C,
    ) -> Result<(), Error> {
        self.add_component_with(name, component, ComponentOptions::default())
    }

    /// Registers a component with options. See [`Handle::add_component`].
    pub fn add_component_with<C: Component>(
        &self,
        name: impl Into<String>,
        component: C,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        self.insert_component(name.into().into(), Box::new(component), options)
    }

    pub(crate) fn insert_component(
        &self,
        name: Arc<str>,
        component: Box<dyn DynComponent>,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let mut guard = lock(&self.shared.state);
        let st = &mut *guard;
        // A refused component is dropped after the lock is released: its
        // `Drop` may call back into a handle.
        if let Err(e) = admit(&self.shared, st, &name, &options) {
            drop(guard);
            drop(component);
            return Err(e);
        }
        if let Err(e) = link_last(st, options.dependencies()) {
            forget_last(st);
            self.shared.machine.settle();
            drop(guard);
            drop(component);
            return Err(e);
        }
        let registration = Registration {
            name,
            component,
            options: options.budgets(),
            restart: options.restart_budget(),
        };
        // Sent under the lock, so the runner receives components in the
        // order of their records, and none after shutdown began.
        let parts = Parts::of(&self.shared);
        if let Err(refused) = parts.register_tx.unbounded_send(registration) {
            // The runner is gone (its channel closed): undo the admission.
            st.graph.remove_last();
            forget_last(st);
            self.shared.machine.settle();
            drop(guard);
            drop(refused);
            return Err(Error::shutting_down());
        }
        Ok(())
    }

    /// Makes room for more parts, so a large builder does not rehash the
    /// name sets and grow the lists as it goes.
    pub(crate) fn reserve(&self, components: usize, hooks: usize) {
        let mut st = lock(&self.shared.state);
        st.component_index.reserve(components);
        st.records.reserve(components);
        st.hook_names.reserve(hooks);
        Parts::of(&self.shared).lists().hooks.reserve(hooks);
    }

    /// The builder's parts admitted in the order of its calls, under one
    /// lock of the state rather than one a part.
    pub(crate) fn admission(&self) -> Admission<'_> {
        Admission {
            shared: &self.shared,
            st: lock(&self.shared.state),
        }
    }

    /// Links the components admitted from the builder, all at once:
    /// `deps` gives each one's dependencies in launch order (`None`: the
    /// one launched just before), by name.
    ///
    /// # Errors
    ///
    /// A `Config` error for an unknown name or a cycle; the builder has
    /// refused both already, in the order it was given.
    pub(crate) fn link_admitted<'d>(
        &self,
        deps: impl Iterator<Item = Option<&'d [Arc<str>]>>,
    ) -> Result<(), Error> {
        let mut guard = lock(&self.shared.state);
        let st = &mut *guard;
        let first = st.graph.len();
        st.graph.reserve(deps.size_hint().0);
        for d in deps {
            st.graph.add(d);
        }
        let (index, records) = (&st.component_index, &st.records);
        let name_at = |i: u32| &*records[i as usize].name;
        st.graph.link(|n| index.get(n, name_at), name_at)?;
        // The rows borrowed for writing once, not once a row.
        let records = &mut *st.records;
        for node in first..st.graph.len() {
            record_dependencies(&st.graph, records, node);
        }
        Ok(())
    }

    /// Appends a drainer (it runs after those already registered).
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn add_drainer<D: Drainer>(
        &self,
        name: impl Into<String>,
        drainer: D,
    ) -> Result<(), Error> {
        self.insert_drainer(name.into().into(), Arc::new(drainer), false)
    }

    /// Prepends a drainer (it runs before those already registered).
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn prepend_drainer<D: Drainer>(
        &self,
        name: impl Into<String>,
        drainer: D,
    ) -> Result<(), Error> {
        self.insert_drainer(name.into().into(), Arc::new(drainer), true)
    }

    pub(crate) fn insert_drainer(
        &self,
        name: Arc<str>,
        drainer: Arc<dyn DynDrainer>,
        front: bool,
    ) -> Result<(), Error> {
        let st = lock(&self.shared.state);
        self.shared.refuse_if_shutting_down(&st)?;
        let refused = Parts::of(&self.shared)
            .lists()
            .drainers
            .push((name, drainer), front);
        drop(st);
        // A refused drainer is dropped here, after the lock: its `Drop` may
        // use a handle.
        refused.map_err(|(e, _drainer)| e)
    }

    /// Registers a health check.
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn add_health_check<H: HealthChecker>(
        &self,
        name: impl Into<String>,
        check: H,
    ) -> Result<(), Error> {
        self.insert_check(name.into().into(), Arc::new(check), CheckOptions::default())
    }

    /// Registers a health check with options: its probes, criticality,
    /// timeout, caching, interval and flap damping.
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`]; also a [`Config`](crate::ErrorKind::Config)
    /// error for a name the library's built-in checks use (`ping`, `launch`,
    /// `shutdown`) or an invalid option.
    pub fn add_health_check_with<H: HealthChecker>(
        &self,
        name: impl Into<String>,
        check: H,
        options: CheckOptions,
    ) -> Result<(), Error> {
        self.insert_check(name.into().into(), Arc::new(check), options)
    }

    pub(crate) fn insert_check(
        &self,
        name: Arc<str>,
        check: Arc<dyn DynHealthChecker>,
        options: CheckOptions,
    ) -> Result<(), Error> {
        let entry = Entry::checked(name.clone(), check, options)?;
        let st = lock(&self.shared.state);
        self.shared.refuse_if_shutting_down(&st)?;
        // Under the state lock, so no check lands after shutdown began.
        let refused = self.shared.health.try_push(entry);
        drop(st);
        match refused {
            Ok(()) => Ok(()),
            // Dropped here, after the lock: its `Drop` may use a handle.
            Err(entry) => {
                drop(entry);
                Err(Error::config("duplicate health check name").with_component(&name))
            }
        }
    }

    /// The Kubernetes probes of this lifecycle: evaluate them, or answer
    /// `/livez`, `/readyz`, `/startupz` and `/healthz` requests from any
    /// HTTP server.
    pub fn probes(&self) -> Probes {
        Probes::new(self.clone())
    }

    /// Registers a stop hook: a closure run in the last phase, after the
    /// drainers. Hooks run in reverse registration order.
    ///
    /// # Errors
    ///
    /// As [`Handle::add_component`].
    pub fn add_stop_hook<F, Fut>(&self, name: impl Into<String>, hook: F) -> Result<(), Error>
    where
        F: FnOnce(crate::Context) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.insert_hook(name.into().into(), Arc::new(drainer_fn(hook)))
    }

    pub(crate) fn insert_hook(
        &self,
        name: Arc<str>,
        hook: Arc<dyn DynDrainer>,
    ) -> Result<(), Error> {
        // A refused hook is dropped after the lock is released (arguments
        // outlive locals): its `Drop` may call back into a handle.
        let mut st = lock(&self.shared.state);
        claim_hook(&self.shared, &mut st, &name)?;
        Parts::of(&self.shared).lists().hooks.push((name, hook));
        Ok(())
    }
}

/// The state locked for admissions from the builder: see
/// [`Handle::admission`]. Nobody else holds the handle yet, and no part
/// can hold it, so what is refused may be dropped under the lock.
pub(crate) struct Admission<'h> {
    shared: &'h Shared,
    st: MutexGuard<'h, shared::State>,
}

impl Admission<'_> {
    /// Admits a component registered on the builder, which validated its
    /// name and options as it was added: its name claimed and its report
    /// row added like any other, but handed straight to the runner rather
    /// than sent through the registration channel.
    #[inline]
    pub(crate) fn component(&mut self, reg: Registration) -> Result<Registration, Error> {
        record(self.shared, &mut self.st, &reg.name).map(|()| reg)
    }

    /// Adds a stop hook, as [`Handle::add_stop_hook`]. One refused is
    /// dropped under the lock: no hook of the builder's can hold this
    /// lifecycle's handle, made by the same `build`.
    pub(crate) fn hook(&mut self, name: Arc<str>, hook: Arc<dyn DynDrainer>) -> Result<(), Error> {
        claim_hook(self.shared, &mut self.st, &name)?;
        Parts::of(self.shared).lists().hooks.push((name, hook));
        Ok(())
    }
}

/// Claims a stop hook's name, unless shutdown has begun.
fn claim_hook(shared: &Shared, st: &mut shared::State, name: &Arc<str>) -> Result<(), Error> {
    shared.refuse_if_shutting_down(st)?;
    claim(&mut st.hook_names, name, "stop hook")
}

/// Validates a component, claims its name and adds its report row: what
/// every registration does, from the builder or a handle. Its dependencies
/// are linked apart: from the builder, all at once.
fn admit(
    shared: &Shared,
    st: &mut shared::State,
    name: &Arc<str>,
    options: &ComponentOptions,
) -> Result<(), Error> {
    validate_name(name, "component")?;
    options.validate(name)?;
    shared.refuse_if_shutting_down(st)?;
    record(shared, st, name)
}

/// Claims a valid component's name and adds its report row.
fn record(shared: &Shared, st: &mut shared::State, name: &Arc<str>) -> Result<(), Error> {
    let records = &st.records;
    let at = records.len() as u32;
    if st
        .component_index
        .insert(name, at, |i| &records[i as usize].name)
        .is_err()
    {
        return Err(Error::config("duplicate component name").with_component(name));
    }
    st.records.push(ComponentRecord::new(name.clone()));
    shared.machine.admit();
    Ok(())
}

/// Links the component admitted last, registered while running: it may
/// depend on any component registered before it. On error nothing is
/// linked.
fn link_last(st: &mut shared::State, deps: Option<&[Box<str>]>) -> Result<(), Error> {
    let node = st.graph.add(deps);
    let (index, records) = (&st.component_index, &st.records);
    let name_at = |i: u32| &*records[i as usize].name;
    st.graph.link(|n| index.get(n, name_at), name_at)?;
    record_dependencies(&st.graph, &mut st.records, node);
    Ok(())
}

/// Forgets the component admitted last: its name and its report row.
fn forget_last(st: &mut shared::State) {
    let records = &st.records;
    if let Some(last) = records.last() {
        st.component_index
            .remove(&last.name, |i| &records[i as usize].name);
    }
    st.records.pop();
}

/// Copies a linked component's dependencies into its report row, by name.
/// One name, the default chain's, costs no allocation.
fn record_dependencies(graph: &Graph, records: &mut [ComponentRecord], node: u32) {
    let name = |dep: u32| records[dep as usize].name.clone();
    let mut deps = graph.dependencies(node);
    let dependencies = match (deps.next(), deps.next()) {
        (None, _) => Dependencies::List(None),
        (Some(only), None) => Dependencies::One(name(only)),
        (Some(a), Some(b)) => {
            let all = [a, b].into_iter().chain(deps).map(name).collect();
            Dependencies::List(Some(Arc::new(all)))
        }
    };
    records[node as usize].dependencies = dependencies;
}
