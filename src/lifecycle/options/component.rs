//! [`ComponentOptions`]: what a user sets for one component.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Budgets, Kept, Readiness};
use crate::error::Error;
use crate::names::validate_name;
use crate::restart::{Budget, Restart};

/// Options for one component: timeouts, readiness, dependencies and
/// restarts.
///
/// Every budget is further capped by what is left of the lifecycle's
/// shutdown timeout once shutdown has begun.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::{ComponentOptions, Readiness};
///
/// let opts = ComponentOptions::new()
///     .start_timeout(Duration::from_secs(10))
///     .stop_timeout(Duration::from_secs(5))
///     .readiness(Readiness::new().attempts(3))
///     .depends_on(["db", "cache"]);
/// assert_ne!(opts, ComponentOptions::default());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ComponentOptions {
    budgets: Budgets,
    /// `None`: the component registered just before.
    dependencies: Option<Arc<[Box<str>]>>,
    /// `None` until set: [`Restart::never`]. Boxed, so that options (kept
    /// per component until the lifecycle is built) stay small.
    restart: Option<Box<Restart>>,
}

impl ComponentOptions {
    /// Defaults: no start timeout, stop bounded only by the shutdown
    /// timeout, 5 s to close, the default [`Readiness`], a dependency on
    /// the component registered just before, and no restart.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The budget of `start`. Zero is a configuration error; a budget too
    /// long for the clock, such as [`Duration::MAX`], means no timeout.
    #[must_use]
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.budgets.start_timeout = Some(timeout);
        self
    }

    /// The budget of `stop` plus the wait for `run` to end. Past it the
    /// component is closed. Zero means "close at once, skip the graceful
    /// stop"; [`Duration::MAX`] leaves only the shutdown timeout.
    #[must_use]
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.budgets.stop_timeout = Some(timeout);
        self
    }

    /// The budget of `close` (default 5 s), further capped by the shutdown
    /// deadline and, once forced, the force budget. Zero polls `close` once:
    /// what completes synchronously completes, the rest is a timeout.
    /// [`Duration::MAX`] leaves only those caps.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.budgets.close_timeout = timeout;
        self
    }

    /// The readiness policy.
    #[must_use]
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.budgets.readiness = readiness;
        self
    }

    /// What happens when the component's `run` fails after it was ready:
    /// by default ([`Restart::never`]) the lifecycle shuts down; with
    /// [`Restart::on_failure`] the component is stopped, started and
    /// readied again, within the policy's budget, while the rest keeps
    /// running. Its [record](crate::ComponentRecord) counts the restarts
    /// and keeps each failure. A failure of the restart's own `stop` or
    /// `close` is logged, or returned as an error of the run if the
    /// shutdown began before it was read (see
    /// [`Restart`](crate::Restart#failures-of-a-restarts-stop)).
    ///
    /// # Errors
    ///
    /// Registering the component fails with a
    /// [`Config`](crate::ErrorKind::Config) error for a restart window of
    /// zero or a backoff jitter outside 0..=1.
    #[must_use]
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = Some(Box::new(restart));
        self
    }

    /// The components this one depends on, by name: it starts only once
    /// each of them is ready, and each of them stops only once it has
    /// stopped.
    ///
    /// Without this call a component depends on the one registered just
    /// before it (none for the first): components start in registration
    /// order and stop in reverse. A component registered while the
    /// lifecycle runs depends by default on the one launched last. `depends_on([])` means no dependency at
    /// all. A name counted twice counts once; a name may be that of a
    /// component registered later on the same builder, and a component
    /// registered while the lifecycle runs may name any component already
    /// registered.
    ///
    /// A component starts once every component it depends on is ready,
    /// and every component whose dependencies are ready starts at once
    /// (each with its own start timeout and readiness policy). On shutdown
    /// a component stops once every component that depends on it has
    /// stopped, independent ones at once, each within its own stop budget.
    /// With the default chain that is one at a time, in registration order
    /// and in reverse. The [report](crate::Report) lists components in an
    /// order where each comes after its dependencies (from the builder,
    /// the earliest registered first among those that could go; a
    /// component registered while running after every other), each with
    /// its dependencies.
    ///
    /// # Errors
    ///
    /// Registering the component (or [`build`](crate::LifecycleBuilder::build))
    /// fails with a [`Config`](crate::ErrorKind::Config) error naming it for
    /// a dependency name that is invalid (empty, or with a control
    /// character or `/`), that no component has, or that closes a cycle
    /// (the error reads `dependency cycle: a -> b -> a`, "a depends on b").
    ///
    /// # Examples
    ///
    /// ```
    /// use lameduck::{Component, ComponentOptions, Lifecycle};
    ///
    /// struct Part;
    /// impl Component for Part {}
    ///
    /// let lifecycle = Lifecycle::builder()
    ///     // Starts after "db", which is registered later.
    ///     .component_with("api", Part, ComponentOptions::new().depends_on(["db"]))
    ///     .component_with("db", Part, ComponentOptions::new().depends_on([]))
    ///     .build()
    ///     .unwrap();
    /// lifecycle.handle().request_shutdown(None);
    /// let report = futures::executor::block_on(lifecycle.run()).unwrap();
    /// let order: Vec<&str> = report.components().iter().map(|c| &*c.name).collect();
    /// assert_eq!(order, ["db", "api"]);
    /// assert_eq!(report.component("api").unwrap().dependencies()[0].as_ref(), "db");
    /// ```
    #[must_use]
    pub fn depends_on<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.dependencies = Some(names.into_iter().map(Box::from).collect());
        self
    }

    /// What the engine reads on each call, as it keeps them.
    pub(crate) fn budgets(&self) -> Kept {
        Kept::new(self.budgets)
    }

    /// The names given to [`depends_on`](ComponentOptions::depends_on),
    /// or `None` for "the component registered just before".
    pub(crate) fn dependencies(&self) -> Option<&[Box<str>]> {
        self.dependencies.as_deref()
    }

    /// The names given to [`depends_on`](ComponentOptions::depends_on),
    /// kept by the builder until it links its components.
    pub(crate) fn into_dependencies(self) -> Option<Arc<[Box<str>]>> {
        self.dependencies
    }

    /// The restart budget the engine keeps for the component, if its
    /// policy ever restarts it.
    pub(crate) fn restart_budget(&self) -> Option<Box<Budget>> {
        let restart = self.restart.as_deref().filter(|r| !r.is_never())?;
        Some(Box::new(Budget::new(*restart)))
    }

    pub(crate) fn validate(&self, name: &str) -> Result<(), Error> {
        self.budgets.validate(name)?;
        if let Some(restart) = &self.restart {
            restart
                .validate()
                .map_err(|detail| Error::config(detail).with_component(name))?;
        }
        for dep in self.dependencies().unwrap_or_default() {
            validate_name(dep, "dependency").map_err(|e| e.with_component(name))?;
        }
        Ok(())
    }
}

/// Every option side by side, as before dependencies were added.
impl fmt::Debug for ComponentOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.budgets;
        f.debug_struct("ComponentOptions")
            .field("start_timeout", &b.start_timeout)
            .field("stop_timeout", &b.stop_timeout)
            .field("close_timeout", &b.close_timeout)
            .field("readiness", &b.readiness)
            .field("dependencies", &self.dependencies())
            .field(
                "restart",
                &self.restart.as_deref().copied().unwrap_or_default(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_every_option_flat() {
        let text = format!("{:?}", ComponentOptions::new().depends_on(["db"]));
        assert!(
            text.starts_with("ComponentOptions { start_timeout: None,"),
            "{text}"
        );
        // The restart policy last, `never` by default: no restart at all.
        assert!(
            text.contains("dependencies: Some([\"db\"]), restart: Restart { max: 0,"),
            "{text}"
        );
        assert!(!text.contains("budgets"), "{text}");
    }
}
