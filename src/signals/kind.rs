//! [`SignalKind`]: which operating-system signal.

use std::ffi::c_int;
use std::fmt;

/// An operating-system signal a [`Signals`](super::Signals) set can hold.
///
/// # Examples
///
/// ```
/// use lameduck::SignalKind;
///
/// assert_eq!(SignalKind::terminate().to_string(), "SIGTERM");
/// # #[cfg(unix)]
/// assert_eq!(SignalKind::from_raw(10).as_raw(), 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignalKind(pub(super) c_int);

impl SignalKind {
    /// SIGINT: Ctrl-C in a terminal (and on Windows).
    pub const fn interrupt() -> Self {
        SignalKind(signal_hook::consts::SIGINT)
    }

    /// SIGTERM: what `kill`, systemd and Kubernetes send to stop a process.
    pub const fn terminate() -> Self {
        SignalKind(signal_hook::consts::SIGTERM)
    }

    /// SIGHUP.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub const fn hangup() -> Self {
        SignalKind(signal_hook::consts::SIGHUP)
    }

    /// SIGQUIT.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub const fn quit() -> Self {
        SignalKind(signal_hook::consts::SIGQUIT)
    }

    /// SIGUSR1.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub const fn user_defined1() -> Self {
        SignalKind(signal_hook::consts::SIGUSR1)
    }

    /// SIGUSR2.
    #[cfg(unix)]
    #[cfg_attr(docsrs, doc(cfg(unix)))]
    pub const fn user_defined2() -> Self {
        SignalKind(signal_hook::consts::SIGUSR2)
    }

    /// A signal by its number. Whether it can be listened for is checked
    /// when the listener starts.
    pub const fn from_raw(signum: i32) -> Self {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match signal_hook::low_level::signal_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "signal {}", self.0),
        }
    }
}
