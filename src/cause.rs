//! [`ShutdownCause`]: why a lifecycle's shutdown began.

use std::fmt;
use std::sync::Arc;

use crate::phase::Step;

/// Why a lifecycle's shutdown began: the first thing that asked for it.
///
/// Only the first cause counts: whatever asks for a shutdown already under
/// way changes nothing here (an error it carries is still attached to the
/// result). The cause is logged when the shutdown begins
/// (`shutdown requested: …`, target `lameduck`) and can be read from
/// [`Handle::shutdown_cause`](crate::Handle::shutdown_cause) and
/// [`Report::shutdown_cause`](crate::Report::shutdown_cause). Its `Display`
/// is the text of that log line.
///
/// # Examples
///
/// ```
/// use lameduck::{Lifecycle, ShutdownCause};
///
/// let lifecycle = Lifecycle::builder().build().unwrap();
/// lifecycle.handle().request_shutdown(None);
/// let report = lifecycle.run_blocking().unwrap();
/// let cause = report.shutdown_cause().unwrap();
/// assert_eq!(cause, &ShutdownCause::Requested { with_error: false });
/// assert_eq!(cause.to_string(), "shutdown requested through a handle");
/// // A service can tell an operator's stop from a crash:
/// let crashed = matches!(
///     cause,
///     ShutdownCause::LaunchFailed { .. } | ShutdownCause::RunEnded { .. }
/// );
/// assert!(!crashed);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShutdownCause {
    /// An operating-system signal, taken by the default path of
    /// [`Signals`](crate::Signals). A custom
    /// [`on_signal`](crate::Signals::on_signal) decides for itself, through
    /// the handle: its stops are [`Requested`](ShutdownCause::Requested).
    #[cfg(feature = "signals")]
    #[cfg_attr(docsrs, doc(cfg(feature = "signals")))]
    Signal(crate::SignalKind),
    /// [`Handle::request_shutdown`](crate::Handle::request_shutdown).
    Requested {
        /// Whether the request carried an error (then the primary error of
        /// the result, unless an earlier error was recorded).
        with_error: bool,
    },
    /// [`Handle::force_shutdown`](crate::Handle::force_shutdown), before anything
    /// else had begun the shutdown.
    Forced,
    /// A ready component's `run` ended.
    RunEnded {
        /// The component.
        component: Arc<str>,
        /// How its `run` ended.
        end: RunEnd,
    },
    /// A component's launch failed: its `start` or readiness check failed
    /// or timed out, or its `run` ended before it was ready.
    LaunchFailed {
        /// The component.
        component: Arc<str>,
        /// Where it failed: [`Step::Start`], [`Step::Ready`] or
        /// [`Step::Run`].
        step: Step,
    },
    /// A zero-downtime upgrade: the new process said it was ready, and this
    /// one hands over to it.
    #[cfg(all(unix, feature = "upgrade"))]
    #[cfg_attr(docsrs, doc(cfg(all(unix, feature = "upgrade"))))]
    Upgraded {
        /// The new process.
        pid: u32,
    },
}

/// How a component's `run` ended. See [`ShutdownCause::RunEnded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunEnd {
    /// It returned `Ok`: a cause of shutdown, not an error.
    Returned,
    /// It returned an error.
    Failed,
    /// It panicked.
    Panicked,
}

impl fmt::Display for ShutdownCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "signals")]
            ShutdownCause::Signal(kind) => write!(f, "received {kind}"),
            ShutdownCause::Requested { with_error: false } => {
                f.write_str("shutdown requested through a handle")
            }
            ShutdownCause::Requested { with_error: true } => {
                f.write_str("shutdown requested through a handle, with an error")
            }
            ShutdownCause::Forced => f.write_str("forced shutdown"),
            ShutdownCause::RunEnded { component, end } => match end {
                RunEnd::Returned => write!(f, "`{component}` finished running"),
                RunEnd::Failed => write!(f, "`{component}` failed in run"),
                RunEnd::Panicked => write!(f, "`{component}` panicked in run"),
            },
            ShutdownCause::LaunchFailed { component, step } => {
                write!(f, "`{component}` failed to launch in {step}")
            }
            #[cfg(all(unix, feature = "upgrade"))]
            ShutdownCause::Upgraded { pid } => {
                write!(f, "upgrade: new process {pid} took over")
            }
        }
    }
}
