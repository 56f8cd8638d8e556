//! Ground types: where a lifecycle is ([`Phase`]) and which call an error
//! happened in ([`Step`]). They import nothing else from the crate, so
//! errors, reports and the engine can all name them.

use std::fmt;

/// Where a lifecycle is. Phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// Built, `run` not yet polled.
    Created = 0,
    /// Starting components in order and waiting for each to be ready.
    Launching = 1,
    /// Every component is ready.
    Running = 2,
    /// Shutdown requested: readiness fails, everything keeps serving.
    LameDuck = 3,
    /// Stopping components in reverse launch order.
    Draining = 4,
    /// Running drainers.
    Flushing = 5,
    /// Running stop hooks.
    Stopping = 6,
    /// Done: [`Lifecycle::run`](crate::Lifecycle::run) has returned.
    Stopped = 7,
}

impl Phase {
    pub(crate) fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Created,
            1 => Phase::Launching,
            2 => Phase::Running,
            3 => Phase::LameDuck,
            4 => Phase::Draining,
            5 => Phase::Flushing,
            6 => Phase::Stopping,
            _ => Phase::Stopped,
        }
    }

    /// The phase's name in lower case, as logged and reported.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Created => "created",
            Phase::Launching => "launching",
            Phase::Running => "running",
            Phase::LameDuck => "lame duck",
            Phase::Draining => "draining",
            Phase::Flushing => "flushing",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The user method (or lifecycle step) an [`Error`](crate::Error) happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// [`Component::start`](crate::Component::start).
    Start,
    /// [`Component::ready`](crate::Component::ready), the readiness gate.
    Ready,
    /// [`Component::run`](crate::Component::run).
    Run,
    /// [`Component::stop`](crate::Component::stop), or waiting for `run` to
    /// end after it.
    Stop,
    /// [`Component::close`](crate::Component::close).
    Close,
    /// [`Drainer::drain`](crate::Drainer::drain), the flush phase.
    Drain,
    /// A stop hook.
    Hook,
    /// A shutdown requested through [`Handle::request_shutdown`](crate::Handle::request_shutdown).
    Request,
    /// Building the lifecycle or registering a part.
    Register,
    /// The shutdown as a whole (a forced shutdown).
    Shutdown,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Start => "start",
            Step::Ready => "ready",
            Step::Run => "run",
            Step::Stop => "stop",
            Step::Close => "close",
            Step::Drain => "drain",
            Step::Hook => "stop hook",
            Step::Request => "stop request",
            Step::Register => "register",
            Step::Shutdown => "shutdown",
        })
    }
}
