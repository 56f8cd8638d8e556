//! What the builder's calls add, validated as it comes.

use std::sync::Arc;
use std::time::Duration;

use crate::drain::{Drainers, DynDrainer};
use crate::error::Error;
use crate::health::{CheckOptions, Checks, DynHealthChecker, Entry};
use crate::lifecycle::ComponentOptions;
use crate::lifecycle::options::Kept;
use crate::lifecycle::parts::Registration;
use crate::lifecycle::runner::Config;
use crate::lifecycle::task::DynComponent;
use crate::names::validate_name;

pub(super) enum Part {
    /// Validated as it is added, and kept in the form the runner takes:
    /// `build` only claims its name and links it.
    Component(Registration, Option<Arc<[Box<str>]>>),
    Hook(Arc<str>, Arc<dyn DynDrainer>),
}

/// The builder's settings and what its calls add. Components, drainers
/// and checks are validated and stored as they are added, while each is
/// fresh in cache, and handed over whole by `build`: a large builder then
/// costs the same per part as a small one.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) config: Config,
    pub(super) watchdog: Option<(Duration, i32)>,
    #[cfg(feature = "signals")]
    pub(super) signals: Option<crate::signals::Signals>,
    pub(super) parts: Vec<Part>,
    pub(super) drainers: Drainers,
    pub(super) checks: Checks,
    /// The first component, drainer or check refused, and how many parts
    /// came before it: `build` reports the first error in the order of the
    /// calls.
    pub(super) refused: Option<(usize, Error)>,
}

impl Staged {
    /// Stages a component, its options `None` for the defaults (valid, and
    /// kept as nothing).
    pub(super) fn add_component(
        &mut self,
        name: Arc<str>,
        component: Box<dyn DynComponent>,
        options: Option<ComponentOptions>,
    ) {
        if self.refused.is_some() {
            return;
        }
        // What admission checks first, checked here: `build` then reports
        // this error after those of the parts added before it.
        let valid = validate_name(&name, "component")
            .and_then(|()| options.as_ref().map_or(Ok(()), |o| o.validate(&name)));
        if let Err(e) = valid {
            self.refused = Some((self.parts.len(), e));
            return;
        }
        let mut registration = Registration {
            name,
            component,
            options: Kept::default(),
            restart: None,
        };
        let mut dependencies = None;
        if let Some(options) = options {
            registration.options = options.budgets();
            registration.restart = options.restart_budget();
            dependencies = options.into_dependencies();
        }
        self.parts.push(Part::Component(registration, dependencies));
    }

    pub(super) fn add_drainer(&mut self, name: String, drainer: Arc<dyn DynDrainer>, front: bool) {
        if self.refused.is_some() {
            return;
        }
        if let Err((e, _drainer)) = self.drainers.push((name.into(), drainer), front) {
            self.refused = Some((self.parts.len(), e));
        }
    }

    pub(super) fn add_check(
        &mut self,
        name: Arc<str>,
        check: Arc<dyn DynHealthChecker>,
        options: CheckOptions,
    ) {
        if self.refused.is_some() {
            return;
        }
        let added = Entry::checked(name, check, options).and_then(|entry| {
            self.checks.try_push(entry).map_err(|refused| {
                Error::config("duplicate health check name").with_component(&refused.name)
            })
        });
        if let Err(e) = added {
            self.refused = Some((self.parts.len(), e));
        }
    }
}
