//! Per-component options: timeouts and the readiness policy.

mod backoff;

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

/// Options for one component: timeouts and readiness.
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
///     .readiness(Readiness::new().attempts(3));
/// assert_ne!(opts, ComponentOptions::default());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentOptions {
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) readiness: Readiness,
}

impl Default for ComponentOptions {
    fn default() -> Self {
        ComponentOptions {
            start_timeout: None,
            stop_timeout: None,
            close_timeout: Duration::from_secs(5),
            readiness: Readiness::default(),
        }
    }
}

impl ComponentOptions {
    /// Defaults: no start timeout, stop bounded only by the shutdown
    /// timeout, 5 s to close, the default [`Readiness`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The budget of `start`. Zero is a configuration error; a budget too
    /// long for the clock, such as [`Duration::MAX`], means no timeout.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }

    /// The budget of `stop` plus the wait for `run` to end. Past it the
    /// component is closed. Zero means "close at once, skip the graceful
    /// stop"; [`Duration::MAX`] leaves only the shutdown timeout.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = Some(timeout);
        self
    }

    /// The budget of `close` (default 5 s), further capped by the shutdown
    /// deadline and, once forced, the force budget. Zero polls `close` once:
    /// what completes synchronously completes, the rest is a timeout.
    /// [`Duration::MAX`] leaves only those caps.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The readiness policy.
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

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
