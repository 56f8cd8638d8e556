//! What a probe found: [`ProbeReport`], a [`CheckResult`] per check, and
//! their [`CheckStatus`].

use std::sync::Arc;
use std::time::Duration;

use super::check::Health;

/// How a check or a probe came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CheckStatus {
    /// Healthy.
    Pass,
    /// Passing with a warning: degraded, or a non-critical check failing.
    Warn,
    /// Failing: a critical check unhealthy.
    Fail,
    /// Not run: excluded by the request.
    Excluded,
}

impl CheckStatus {
    /// `pass`, `warn`, `fail` or `excluded`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            CheckStatus::Excluded => "excluded",
        }
    }
}

/// The result of one check within a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    name: Arc<str>,
    health: Option<Health>,
    critical: bool,
    took: Duration,
}

impl CheckResult {
    pub(super) fn new(
        name: Arc<str>,
        health: Option<Health>,
        critical: bool,
        took: Duration,
    ) -> Self {
        CheckResult {
            name,
            health,
            critical,
            took,
        }
    }

    /// The check's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the check reported; `None` when it was excluded.
    pub fn health(&self) -> Option<&Health> {
        self.health.as_ref()
    }

    /// Whether a failure of this check fails the probe.
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// How long the check took (zero for a cached or background result read).
    pub fn duration(&self) -> Duration {
        self.took
    }

    /// The check's status within the probe.
    pub fn status(&self) -> CheckStatus {
        match &self.health {
            None => CheckStatus::Excluded,
            Some(Health::Healthy) => CheckStatus::Pass,
            Some(Health::Degraded(_)) => CheckStatus::Warn,
            Some(Health::Unhealthy(_)) if self.critical => CheckStatus::Fail,
            Some(Health::Unhealthy(_)) => CheckStatus::Warn,
        }
    }
}

/// The aggregated result of a probe. Made by [`Probes::check`](super::Probes::check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub(crate) name: &'static str,
    pub(crate) checks: Vec<CheckResult>,
    pub(crate) unmatched: Vec<String>,
}

impl ProbeReport {
    /// The probe's name: `livez`, `readyz`, `startupz` or `healthz`.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Every check, built-in ones first, then in registration order.
    pub fn checks(&self) -> &[CheckResult] {
        &self.checks
    }

    /// One check by name.
    pub fn get(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name() == name)
    }

    /// `Fail` if a critical check failed, else `Warn` if any check warned,
    /// else `Pass`.
    pub fn status(&self) -> CheckStatus {
        let mut status = CheckStatus::Pass;
        for c in &self.checks {
            match c.status() {
                CheckStatus::Fail => return CheckStatus::Fail,
                CheckStatus::Warn => status = CheckStatus::Warn,
                _ => {}
            }
        }
        status
    }

    /// Whether the probe passes (with or without warnings).
    pub fn is_passing(&self) -> bool {
        self.status() != CheckStatus::Fail
    }
}
