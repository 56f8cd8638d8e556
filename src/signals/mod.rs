//! Shutdown on SIGINT and SIGTERM (Ctrl-C on Windows): lame duck on the
//! first signal, a forced shutdown on the second.
//!
//! # The rules
//!
//! * **What listens.** [`LifecycleBuilder::signals`](crate::LifecycleBuilder::signals)
//!   starts a listener when the lifecycle is built. It is a dedicated thread
//!   named `lameduck-signal`, blocked on signal-hook's self-pipe: no async
//!   runtime is involved, so the same code works under tokio, smol,
//!   async-std or `futures::executor::block_on`.
//! * **Which signals.** SIGINT and SIGTERM by default; on Windows, Ctrl-C
//!   (SIGINT) and SIGTERM. [`Signals::only`] *replaces* the set, like the Go
//!   `lameduck` package's `Signals` option.
//! * **First signal**: the shutdown begins, as with
//!   [`Handle::request_shutdown(None)`](Handle::request_shutdown), with the signal
//!   as its [cause](crate::ShutdownCause::Signal): the lame-duck period
//!   first (readiness fails at once while every component keeps serving),
//!   then drain → flush → stop.
//! * **Any later signal**: [`Handle::force_shutdown`]. The rest of the lame-duck
//!   period and every graceful wait are skipped, running components are
//!   closed and dropped, and [`Lifecycle::run`](crate::Lifecycle::run)
//!   returns promptly with an [`ErrorKind::Forced`](crate::ErrorKind::Forced)
//!   error. Signals are counted, not shutdowns: a SIGTERM that arrives while
//!   a shutdown caused by something else is under way still gets a graceful
//!   stop.
//! * **Custom path.** [`Signals::on_signal`] replaces both rules with your
//!   own function, like GoFastr's `RunWithSignalsUsing`.
//! * **When it stops.** The listener stops when the lifecycle stops
//!   ([`Handle::stopped`]): before [`run`](crate::Lifecycle::run) returns,
//!   the signals' default actions are back; then the thread exits and its
//!   handlers are unregistered. A lifecycle that is built but never run
//!   keeps no thread busy: the listener waits, holding no reference to it,
//!   and on the next signal gives the signal its default action and exits.
//!
//! # Default actions
//!
//! While a lifecycle listens for a signal, that signal no longer has its
//! default action: SIGTERM does **not** kill the process, it starts the
//! graceful shutdown. Signals outside the set keep their default action
//! throughout: with `Signals::only([SignalKind::user_defined1()])`, SIGTERM
//! still kills the process at once. Once no lifecycle listens for it any more, the signal's
//! default action comes back (signal-hook cannot uninstall its handler; this
//! module asks it to emulate the default action instead), so a program that
//! goes on after its lifecycle stopped can still be interrupted.
//!
//! SIGKILL, SIGSTOP, SIGILL, SIGFPE and SIGSEGV cannot be listened for:
//! asking for them is a [`Config`](crate::ErrorKind::Config) error.
//!
//! # Defaults that matter here
//!
//! | setting | default | Go references |
//! |---|---|---|
//! | [lame-duck period](crate::LifecycleBuilder::lame_duck) | zero | 3 s (`lameduck`) |
//! | [shutdown timeout](crate::LifecycleBuilder::shutdown_timeout), lame duck included | 30 s | 30 s (GoFastr drain, servicegroup) |
//!
//! Behind a load balancer or a Kubernetes Service, set the lame-duck period
//! to a few seconds and keep the shutdown timeout below the pod's
//! `terminationGracePeriodSeconds`.
//!
//! # Exit codes
//!
//! [`exit_code`](crate::exit_code) maps the outcome of `run` to the process
//! exit code: 0 for a clean shutdown, 1 for an error, 130 for a forced one.
//!
//! # Examples
//!
//! A service that runs until SIGINT or SIGTERM:
//!
//! ```no_run
//! use std::time::Duration;
//! use lameduck::{Component, Lifecycle, Signals};
//!
//! struct Server;
//! impl Component for Server {}
//!
//! fn main() -> std::process::ExitCode {
//!     let lifecycle = Lifecycle::builder()
//!         .lame_duck(Duration::from_secs(3))
//!         .signals(Signals::new())
//!         .component("server", Server)
//!         .build()
//!         .expect("valid configuration");
//!     let outcome = lifecycle.run_blocking();
//!     if let Err(e) = &outcome {
//!         eprintln!("{e}");
//!     }
//!     lameduck::exit_code(&outcome)
//! }
//! ```
//!
//! A custom shutdown path: SIGHUP is logged, SIGTERM stops at once.
//!
//! ```
//! # #[cfg(unix)] {
//! use lameduck::{Lifecycle, SignalKind, Signals};
//!
//! let signals = Signals::only([SignalKind::hangup(), SignalKind::terminate()])
//!     .on_signal(|kind, handle| {
//!         if kind == SignalKind::hangup() {
//!             log::info!("reloading");
//!         } else {
//!             handle.force_shutdown();
//!         }
//!     });
//! let lifecycle = Lifecycle::builder().signals(signals).build().unwrap();
//! # lifecycle.handle().request_shutdown(None);
//! # lifecycle.run_blocking().unwrap();
//! # }
//! ```

mod claim;
#[cfg(unix)]
#[path = "unix.rs"]
mod imp;
#[cfg(windows)]
#[path = "windows.rs"]
mod imp;
mod kind;

use std::ffi::c_int;
use std::fmt;
use std::sync::{Arc, Weak};

pub use kind::SignalKind;

use crate::error::Error;
use crate::handle::{Handle, Shared};
use crate::logging::event;

type OnSignal = dyn Fn(SignalKind, &Handle) + Send + Sync;

/// Which signals shut a lifecycle down, and what a signal does. Given to
/// [`LifecycleBuilder::signals`](crate::LifecycleBuilder::signals).
///
/// See the [module documentation](self) for the rules.
///
/// # Examples
///
/// ```
/// # #[cfg(unix)] {
/// use lameduck::{Lifecycle, SignalKind, Signals};
///
/// // SIGUSR1 starts the shutdown; SIGTERM keeps its default action.
/// let lifecycle = Lifecycle::builder()
///     .signals(Signals::only([SignalKind::user_defined1()]))
///     .build()
///     .unwrap();
/// # lifecycle.handle().request_shutdown(None);
/// # lifecycle.run_blocking().unwrap();
/// # }
/// ```
#[derive(Clone)]
pub struct Signals {
    kinds: Vec<SignalKind>,
    on_signal: Option<Arc<OnSignal>>,
}

impl Signals {
    /// SIGINT and SIGTERM (on Windows: Ctrl-C and SIGTERM), with the default
    /// path: the first signal requests a stop, any later one forces it.
    pub fn new() -> Self {
        Signals::only([SignalKind::interrupt(), SignalKind::terminate()])
    }

    /// Exactly these signals, replacing the default set. Signals left out
    /// keep their default action.
    pub fn only(kinds: impl IntoIterator<Item = SignalKind>) -> Self {
        let mut kinds: Vec<SignalKind> = kinds.into_iter().collect();
        kinds.sort_unstable();
        kinds.dedup();
        Signals {
            kinds,
            on_signal: None,
        }
    }

    /// Replaces the default path: `f` is called, on the listener thread,
    /// for every signal in the set, with the lifecycle's handle. It decides
    /// what happens, typically [`Handle::request_shutdown`] or
    /// [`Handle::force_shutdown`]. Keep it short: the next signal waits for it.
    ///
    /// The default path is, in effect:
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicUsize, Ordering};
    /// # let seen = AtomicUsize::new(0);
    /// # let _f = |_kind: lameduck::SignalKind, handle: &lameduck::Handle| {
    /// if seen.fetch_add(1, Ordering::SeqCst) == 0 {
    ///     handle.request_shutdown(None);
    /// } else {
    ///     handle.force_shutdown();
    /// }
    /// # };
    /// ```
    pub fn on_signal<F>(mut self, f: F) -> Self
    where
        F: Fn(SignalKind, &Handle) + Send + Sync + 'static,
    {
        self.on_signal = Some(Arc::new(f));
        self
    }

    /// The signals in the set, in numeric order.
    pub fn kinds(&self) -> &[SignalKind] {
        &self.kinds
    }

    /// Starts listening for `handle`'s lifecycle now. The listener stops
    /// when the lifecycle stops or when the returned [`Listener`] is
    /// dropped, whichever comes first.
    ///
    /// [`LifecycleBuilder::signals`](crate::LifecycleBuilder::signals) does
    /// this for you; call it yourself to start or stop listening at another
    /// time.
    ///
    /// # Errors
    ///
    /// A [`Config`](crate::ErrorKind::Config) error for a signal that cannot
    /// be listened for (SIGKILL, SIGSTOP, SIGILL, SIGFPE, SIGSEGV, or an
    /// unknown number), or if the operating system refuses the handler.
    pub fn listen(&self, handle: &Handle) -> Result<Listener, Error> {
        imp::spawn(self, handle)
    }
}

impl Default for Signals {
    fn default() -> Self {
        Signals::new()
    }
}

impl fmt::Debug for Signals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signals")
            .field("kinds", &self.kinds)
            .field("on_signal", &self.on_signal.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// A running signal listener. Made by [`Signals::listen`].
///
/// It stops when its lifecycle stops; dropping it stops it earlier and
/// waits for the listener thread to exit.
#[must_use = "dropping a Listener stops listening"]
pub struct Listener {
    closer: imp::Closer,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Lets the listener live until its lifecycle stops.
    pub(crate) fn detach(mut self) {
        self.thread = None;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.closer.close();
            // The thread never panics on its own; a panic in a user
            // `on_signal` has already been reported by the panic hook.
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

/// What the listener thread does with one signal. Returns `false` once the
/// lifecycle is gone.
fn dispatch(raw: c_int, count: &mut usize, signals: &Signals, shared: &Weak<Shared>) -> bool {
    let Some(shared) = shared.upgrade() else {
        return false;
    };
    let handle = Handle { shared };
    let kind = SignalKind(raw);
    *count += 1;
    match &signals.on_signal {
        Some(f) => {
            event!(target: "lameduck", info, {}, "received {kind}");
            // A panicking handler must not take the listener down with it:
            // the signals would stay taken over and answered by no one.
            let call = std::panic::AssertUnwindSafe(|| f(kind, &handle));
            if let Err(payload) = std::panic::catch_unwind(call) {
                let message = crate::error::panic_message(&*payload);
                event!(target: "lameduck", error, { error = message }, "the on_signal handler panicked on {kind}: {message}");
            }
        }
        None if *count == 1 => {
            // One event, not two: the shutdown logs its cause, "shutting
            // down: received SIGTERM".
            let began = handle
                .shared
                .begin_shutdown(None, crate::ShutdownCause::Signal(kind));
            if !began {
                event!(target: "lameduck", info, {}, "received {kind}: the shutdown is already under way");
            }
        }
        None => {
            event!(target: "lameduck", warn, {}, "received {kind} again: forcing the shutdown");
            handle.force_shutdown();
        }
    }
    true
}

/// Refuses the signals signal-hook would panic on.
fn check(kinds: &[SignalKind]) -> Result<(), Error> {
    for kind in kinds {
        // signal-hook's iterator holds signals below 128.
        if kind.0 <= 0 || kind.0 >= 128 || signal_hook::consts::FORBIDDEN.contains(&kind.0) {
            return Err(Error::config(format!("{kind} cannot be listened for")));
        }
    }
    Ok(())
}
