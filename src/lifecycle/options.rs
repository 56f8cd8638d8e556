//! Per-component options: timeouts, the readiness policy and dependencies.

mod backoff;
pub(crate) mod component;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use backoff::Backoff;

use crate::error::Error;

/// The readiness policy of a component: how often and how long
/// [`Component::ready`](crate::Component::ready) is asked.
///
/// The default asks up to 10 times, backing off exponentially from 10 ms to
/// 1 s, with 5 s for each attempt.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::{Backoff, Readiness};
///
/// let policy = Readiness::new()
///     .attempts(30)
///     .backoff(Backoff::constant(Duration::from_millis(100)))
///     .attempt_timeout(Duration::from_secs(1));
/// assert_eq!(policy.max_attempts(), 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    attempts: u32,
    backoff: Backoff,
    attempt_timeout: Option<Duration>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            attempts: 10,
            backoff: Backoff::exponential(Duration::from_millis(10), Duration::from_secs(1)),
            attempt_timeout: Some(Duration::from_secs(5)),
        }
    }
}

impl Readiness {
    /// The default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most times `ready` is asked before the component fails with a
    /// not-ready error. Must be at least 1.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The wait between attempts. A [jitter](Backoff::jitter) outside
    /// 0..=1 is a configuration error.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The budget of each attempt; an attempt that overruns it is cancelled
    /// and fails the launch. Zero is a configuration error; a budget too
    /// long for the clock, such as [`Duration::MAX`], means no timeout.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// Lets each attempt take as long as it likes.
    pub fn no_attempt_timeout(mut self) -> Self {
        self.attempt_timeout = None;
        self
    }

    /// The most attempts.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// The backoff between attempts.
    pub fn backoff_policy(&self) -> Backoff {
        self.backoff
    }

    /// The budget of each attempt, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.attempt_timeout
    }
}

/// The engine's part of a component's options: its budgets and readiness
/// policy, read on every call into the component, so `Copy` and small.
/// Users set it through the public
/// [`ComponentOptions`](component::ComponentOptions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budgets {
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) readiness: Readiness,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            start_timeout: None,
            stop_timeout: None,
            close_timeout: Duration::from_secs(5),
            readiness: Readiness::default(),
        }
    }
}

/// A component's [`Budgets`] as the engine keeps them, in its registration,
/// its runner slot and its launch command: nothing for the defaults, which
/// most components keep, and a shared pointer otherwise, so that a running
/// component holds one word for them, not a copy of every budget.
#[derive(Clone, Default)]
pub(crate) struct Kept(Option<Arc<Budgets>>);

impl Kept {
    pub(crate) fn new(budgets: Budgets) -> Self {
        if budgets == Budgets::default() {
            Kept(None)
        } else {
            Kept(Some(Arc::new(budgets)))
        }
    }
}

impl std::ops::Deref for Kept {
    type Target = Budgets;

    fn deref(&self) -> &Budgets {
        static DEFAULT: OnceLock<Budgets> = OnceLock::new();
        match &self.0 {
            Some(budgets) => budgets,
            None => DEFAULT.get_or_init(Budgets::default),
        }
    }
}

impl Budgets {
    pub(crate) fn validate(&self, name: &str) -> Result<(), Error> {
        if self.readiness.attempts == 0 {
            return Err(Error::config("readiness attempts must be at least 1").with_component(name));
        }
        if self.readiness.attempt_timeout == Some(Duration::ZERO) {
            return Err(
                Error::config("readiness attempt timeout must not be zero").with_component(name)
            );
        }
        if let Err(detail) = self.readiness.backoff.validate() {
            return Err(Error::config(format!("readiness {detail}")).with_component(name));
        }
        if self.start_timeout == Some(Duration::ZERO) {
            return Err(Error::config("start timeout must not be zero").with_component(name));
        }
        Ok(())
    }
}
