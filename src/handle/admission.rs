//! Admission: how components, drainers, checks and stop hooks join a
//! lifecycle, from the builder or from a handle while it runs — names
//! validated and claimed, report rows added, and what a running lifecycle
//! must launch sent to its runner.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Handle;
use super::shared::{self, Shared, claim, validate_name};
use crate::component::Component;
use crate::drain::{Drainer, DynDrainer, drainer_fn};
use crate::error::{BoxError, Error};
use crate::health::{CheckOptions, DynHealthChecker, Entry, HealthChecker, Probes};
use crate::latch::lock;
use crate::lifecycle::options::ComponentOptions;
use crate::lifecycle::parts::{Parts, Registration};
use crate::lifecycle::task::DynComponent;
use crate::report::ComponentRecord;

impl Handle {
    /// Registers a component while the lifecycle runs, with default
    /// options. It is launched after those already registered, and stopped
    /// before them. Until it is ready, the built-in `launch` readiness check
    /// fails and [`Handle::is_ready`] is `false`.
    ///
    /// # Errors
    ///
    /// A [`ShuttingDown`](crate::ErrorKind::ShuttingDown) error once shutdown has
    /// begun, a [`Config`](crate::ErrorKind::Config) error for a duplicate name, an
    /// invalid name (empty, or with a control character or `/`) or an
    /// invalid option; either way nothing changes.
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
        let mut st = lock(&self.shared.state);
        if let Err(e) = admit(&self.shared, &mut st, &name, options) {
            // A refused component is dropped after the lock is released:
            // its `Drop` may call back into a handle.
            drop(st);
            drop(component);
            return Err(e);
        }
        let registration = Registration {
            name,
            component,
            options,
        };
        // Sent under the lock, so the runner receives components in the
        // order of their records, and none after shutdown began.
        let parts = Parts::of(&self.shared);
        if let Err(refused) = parts.register_tx.unbounded_send(registration) {
            // The runner is gone (its channel closed): undo the admission.
            let refused = refused.into_inner();
            st.component_names.remove(&refused.name);
            st.records.pop();
            self.shared.launching.fetch_sub(1, Ordering::AcqRel);
            drop(st);
            drop(refused);
            return Err(Error::shutting_down());
        }
        Ok(())
    }

    /// Makes room for more parts, so a large builder does not rehash the
    /// name sets and grow the lists as it goes.
    pub(crate) fn reserve(&self, components: usize, hooks: usize) {
        let mut st = lock(&self.shared.state);
        st.component_names.reserve(components);
        st.records.reserve(components);
        st.hook_names.reserve(hooks);
        Parts::of(&self.shared).lists().hooks.reserve(hooks);
    }

    /// Admits a component registered on the builder: validated and recorded
    /// like any other, but handed straight to the runner rather than sent
    /// through the registration channel.
    pub(crate) fn admit_component(
        &self,
        name: Arc<str>,
        component: Box<dyn DynComponent>,
        options: ComponentOptions,
    ) -> Result<Registration, Error> {
        let mut st = lock(&self.shared.state);
        let admitted = admit(&self.shared, &mut st, &name, options);
        drop(st);
        admitted.map(|()| Registration {
            name,
            component,
            options,
        })
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
        let mut st = lock(&self.shared.state);
        self.shared.refuse_if_shutting_down(&st)?;
        claim(&mut st.hook_names, &name, "stop hook")?;
        Parts::of(&self.shared).lists().hooks.push((name, hook));
        Ok(())
    }
}

/// Validates a component, claims its name and adds its report row: what
/// every registration does, from the builder or a handle.
fn admit(
    shared: &Shared,
    st: &mut shared::State,
    name: &Arc<str>,
    options: ComponentOptions,
) -> Result<(), Error> {
    validate_name(name, "component")?;
    options.validate(name)?;
    shared.refuse_if_shutting_down(st)?;
    claim(&mut st.component_names, name, "component")?;
    st.records.push(ComponentRecord::new(name.clone()));
    shared.launching.fetch_add(1, Ordering::AcqRel);
    Ok(())
}
