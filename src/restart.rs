//! Restarting a component whose `run` failed: the policy and its budget.
//!
//! The semantics are Erlang/OTP's supervisor intensity and period, the
//! same as systemd's `StartLimitBurst=` within `StartLimitIntervalSec=`:
//! a component may be restarted at most `max` times within any `window`;
//! the failure that would be restart number `max + 1` within a window gives
//! up, and the lifecycle shuts down as it does without a policy. Each
//! restart waits a [`Backoff`] delay first (like systemd's `RestartSec=`),
//! counted from the restarts still within the window: a component that ran
//! quietly for a whole window starts again from the backoff's first delay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::lifecycle::options::Backoff;

/// What to do when a component's `run` fails (returns `Err` or panics)
/// after the component was ready.
///
/// [`Restart::never`] (the default) shuts the lifecycle down, as a failed
/// `run` always has. [`Restart::on_failure`] stops the component (closing
/// it if its stop overruns), then starts and readies it again while the
/// rest keeps running, within a budget: at most 5 restarts within 10 s by
/// default (systemd's defaults), each after a backoff that doubles from
/// 100 ms to 10 s. While it restarts, the components that depend on it
/// keep running (they are not restarted), those not started yet wait for
/// it, and the built-in `launch` readiness check fails until it is ready
/// again. Once the budget is spent, the next failure shuts the lifecycle
/// down, with an error that names the component and says so. A `run` that
/// returns `Ok` is not a failure: it still shuts the lifecycle down, and
/// so does a `run` that fails before the component is ready.
///
/// # Failures of a restart's stop
///
/// The `stop` a restart calls (or the `close` after a stop that
/// overran) may fail too. While the restart goes on, that failure is
/// logged as a warning, not an error of the run: the component starts
/// again. If the shutdown begins before the lifecycle has read how that
/// call ended, the component is not started again, so the call was its
/// last: its failure is returned in the run's errors, naming the
/// component and the step (`stop` or `close`), as a failure in the drain
/// is. A call still running when the lifecycle sees the shutdown is
/// dropped, and the component counts as stopped.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::{Backoff, ComponentOptions, Restart};
///
/// // At most 3 restarts a minute, 1 s apart, each wait shortened by up to
/// // a fifth at random.
/// let restart = Restart::on_failure()
///     .limit(3, Duration::from_secs(60))
///     .backoff(Backoff::constant(Duration::from_secs(1)).jitter(0.2));
/// let options = ComponentOptions::new().restart(restart);
/// assert_eq!(restart.max_restarts(), 3);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    max: u32,
    window: Duration,
    backoff: Backoff,
}

impl Default for Restart {
    fn default() -> Self {
        Restart::never()
    }
}

impl Restart {
    /// No restart: a failed `run` shuts the lifecycle down. The same as
    /// [`on_failure`](Restart::on_failure) with a limit of 0 restarts.
    #[must_use]
    pub fn never() -> Self {
        Restart::on_failure().limit(0, Duration::from_secs(10))
    }

    /// Restart after a failure: at most 5 restarts within 10 s, waiting
    /// 100 ms before the first, doubling up to 10 s.
    #[must_use]
    pub fn on_failure() -> Self {
        Restart {
            max: 5,
            window: Duration::from_secs(10),
            backoff: Backoff::exponential(Duration::from_millis(100), Duration::from_secs(10)),
        }
    }

    /// At most `max_restarts` restarts within any `window`: the failure
    /// that would be one more gives up and shuts the lifecycle down.
    ///
    /// * `max_restarts` 0 never restarts; `u32::MAX` never gives up in
    ///   practice.
    /// * A `window` of zero is a configuration error (it would count
    ///   nothing and never give up); [`Duration::MAX`] counts over the whole
    ///   run, so `max_restarts` is then a lifetime total.
    ///
    /// The budget keeps one instant per restart still within the window.
    /// Since each restart first waits its backoff, a backoff that reaches
    /// `window / max_restarts` spreads restarts so thinly that the budget
    /// is never exhausted: choose the two together.
    #[must_use]
    pub fn limit(mut self, max_restarts: u32, window: Duration) -> Self {
        self.max = max_restarts;
        self.window = window;
        self
    }

    /// The wait before each restart. Its attempt number is the count of
    /// restarts within the window, this one included. A
    /// [jitter](Backoff::jitter) outside 0..=1 is a configuration error.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Whether this policy never restarts.
    pub fn is_never(&self) -> bool {
        self.max == 0
    }

    /// The most restarts within a window.
    pub fn max_restarts(&self) -> u32 {
        self.max
    }

    /// The window restarts are counted in.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The wait before each restart.
    pub fn backoff_policy(&self) -> Backoff {
        self.backoff
    }

    /// Refuses a zero window and a jitter outside 0..=1, for the builder to
    /// report against the component.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.window.is_zero() {
            return Err("restart window must not be zero".to_owned());
        }
        self.backoff.validate().map_err(|e| format!("restart {e}"))
    }
}

/// A window as the error of a spent budget reads it: `within 10s`, or,
/// for a window longer than any process lives (`Duration::MAX`), `within
/// the lifetime`.
pub(crate) struct Within(pub(crate) Duration);

impl std::fmt::Display for Within {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A century: no process runs that long.
        const LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        if self.0 >= LIFETIME {
            f.write_str("within the lifetime")
        } else {
            write!(f, "within {:?}", self.0)
        }
    }
}

/// What to do about one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Restart once `after` has passed; this is restart number `attempt`
    /// within the window.
    Restart { after: Duration, attempt: u32 },
    /// The budget is spent (or the policy never restarts): shut down.
    Exhausted,
}

/// One component's restart budget: the engine reports each failure and is
/// told whether to restart.
#[derive(Debug)]
pub(crate) struct Budget {
    policy: Restart,
    /// Instants of the restarts granted that may still be within the
    /// window, oldest first; never more than `max`.
    recent: VecDeque<Instant>,
    /// Restarts granted over the whole run, for the report.
    total: u64,
}

impl Budget {
    pub(crate) fn new(policy: Restart) -> Self {
        Budget {
            policy,
            recent: VecDeque::new(),
            total: 0,
        }
    }

    /// A failure at `now`: restart (after a delay) if fewer than `max`
    /// restarts were granted within the window before `now`, a restart
    /// granted at `t` counting while `now - t < window`. Instants should
    /// not go backwards; if they do, nothing panics (an earlier instant
    /// counts as within the window).
    pub(crate) fn on_failure(&mut self, now: Instant) -> Verdict {
        let window = self.policy.window;
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) < window {
                break;
            }
            self.recent.pop_front();
        }
        // As u64: a `usize` of 32 bits cannot hold `u32::MAX + 1`.
        if self.recent.len() as u64 >= u64::from(self.policy.max) {
            return Verdict::Exhausted;
        }
        self.recent.push_back(now);
        self.total += 1;
        let attempt = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        Verdict::Restart {
            after: self.policy.backoff.delay(attempt),
            attempt,
        }
    }

    /// The policy it keeps.
    pub(crate) fn policy(&self) -> Restart {
        self.policy
    }

    /// Restarts granted so far.
    pub(crate) fn restarts(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests;
