//! Shutdown on SIGINT and SIGTERM (Ctrl-C on Windows): lame duck on the
//! first signal, a forced stop on the second.
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
//! * **First signal**: [`Handle::request_stop(None)`](Handle::request_stop).
//!   Shutdown begins with the lame-duck period (DESIGN rule 9): readiness
//!   fails at once while every component keeps serving; then drain →
//!   flush → stop.
//! * **Any later signal**: [`Handle::force_stop`]. The rest of the lame-duck
//!   period and every graceful wait are skipped, running components are
//!   closed and dropped, and [`Lifecycle::run`](crate::Lifecycle::run)
//!   returns promptly with an [`ErrorKind::Forced`]
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
//!             handle.force_stop();
//!         }
//!     });
//! let lifecycle = Lifecycle::builder().signals(signals).build().unwrap();
//! # lifecycle.handle().request_stop(None);
//! # lifecycle.run_blocking().unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ffi::c_int;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::error::{Error, ErrorKind, Step};
use crate::handle::{Handle, Shared};
use crate::lifecycle::Phase;
use crate::signal::lock;

/// An operating-system signal a [`Signals`] set can hold.
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
pub struct SignalKind(c_int);

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
/// # lifecycle.handle().request_stop(None);
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
    /// what happens, typically [`Handle::request_stop`] or
    /// [`Handle::force_stop`]. Keep it short: the next signal waits for it.
    ///
    /// The default path is, in effect:
    ///
    /// ```
    /// # use std::sync::atomic::{AtomicUsize, Ordering};
    /// # let seen = AtomicUsize::new(0);
    /// # let _f = |_kind: lameduck::SignalKind, handle: &lameduck::Handle| {
    /// if seen.fetch_add(1, Ordering::SeqCst) == 0 {
    ///     handle.request_stop(None);
    /// } else {
    ///     handle.force_stop();
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
            log::info!(target: "lameduck", "received {kind}");
            // A panicking handler must not take the listener down with it:
            // the signals would stay taken over and answered by no one.
            let call = std::panic::AssertUnwindSafe(|| f(kind, &handle));
            if std::panic::catch_unwind(call).is_err() {
                log::error!(target: "lameduck", "the on_signal handler panicked on {kind}");
            }
        }
        None if *count == 1 => {
            log::info!(target: "lameduck", "received {kind}: shutting down");
            handle.request_stop(None);
        }
        None => {
            log::warn!(target: "lameduck", "received {kind} again: forcing the shutdown");
            force_stop(&handle);
        }
    }
    true
}

/// [`Handle::force_stop`] with the `Forced` error recorded *before* the
/// force flag is set.
///
/// `Handle::force_stop` sets the flag first and records the error after
/// logging it; a runner with little left to do can finish in between and
/// `run` then returns `Ok`, losing the "forced" outcome and its exit code
/// (test `engine_force_stop_records_forced_before_run_returns`). Once the
/// engine records first, this becomes `handle.force_stop()`.
fn force_stop(handle: &Handle) {
    let shared = &handle.shared;
    let phase = handle.phase();
    shared.begin_shutdown(None, "forced stop");
    if shared.force.is_set() {
        return;
    }
    if phase < Phase::Stopped {
        shared.record(
            Error::new(ErrorKind::Forced)
                .with_step(Step::Shutdown)
                .with_phase(phase),
        );
    }
    if shared.force.set() {
        log::warn!(target: "lameduck", "shutdown forced");
    }
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

/// Which signals some listener has taken over, process-wide, and the
/// switch that gives each its default action back once none listens.
struct Taken {
    listeners: usize,
    restore_default: Arc<AtomicBool>,
}

static TAKEN: Mutex<BTreeMap<c_int, Taken>> = Mutex::new(BTreeMap::new());

/// One listener's claim on its signals: while it is held, their default
/// action is off. Released once, by whoever gets there first (the
/// lifecycle stopping, the listener thread ending, or drop).
struct Claim {
    kinds: Vec<SignalKind>,
    released: AtomicBool,
}

impl Claim {
    fn take(kinds: &[SignalKind]) -> Result<Arc<Claim>, Error> {
        let mut claim = Claim {
            kinds: Vec::with_capacity(kinds.len()),
            released: AtomicBool::new(false),
        };
        let mut taken = lock(&TAKEN);
        for kind in kinds {
            let entry = match taken.entry(kind.0) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => {
                    let flag = Arc::new(AtomicBool::new(false));
                    // Registered once per signal for the life of the
                    // process; it acts only while the flag is set.
                    if let Err(e) =
                        signal_hook::flag::register_conditional_default(kind.0, flag.clone())
                    {
                        drop(taken); // `claim` gives back what it took
                        return Err(Error::config(format!("cannot listen for {kind}: {e}")));
                    }
                    v.insert(Taken {
                        listeners: 0,
                        restore_default: flag,
                    })
                }
            };
            entry.listeners += 1;
            entry.restore_default.store(false, Ordering::SeqCst);
            claim.kinds.push(*kind);
        }
        Ok(Arc::new(claim))
    }

    /// Ends the claim; a signal no listener holds any more gets its default
    /// action back. Returns those signals (none if already released).
    fn release(&self) -> Vec<SignalKind> {
        if self.released.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        let mut taken = lock(&TAKEN);
        let mut freed = Vec::new();
        for kind in &self.kinds {
            if let Some(t) = taken.get_mut(&kind.0) {
                t.listeners = t.listeners.saturating_sub(1);
                if t.listeners == 0 {
                    t.restore_default.store(true, Ordering::SeqCst);
                    freed.push(*kind);
                }
            }
        }
        freed
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(unix)]
mod imp {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Weak};
    use std::task::{Context, Poll};

    use futures::task::ArcWake;

    use super::{Claim, Listener, Signals, check, dispatch};
    use crate::error::Error;
    use crate::handle::{Handle, Shared};

    pub(super) type Closer = signal_hook::iterator::Handle;

    /// Runs when the lifecycle's `stopped` signal fires, on the thread that
    /// finishes `run`, before `run` returns: gives the default actions back
    /// and closes the self-pipe, which ends the listener thread.
    ///
    /// It holds no `Signal`: it is dropped under the lock of the signal's
    /// waker list, and dropping the last clone of a `Signal` wakes that
    /// same list.
    struct OnStopped {
        closer: Closer,
        claim: Arc<Claim>,
        shared: Weak<Shared>,
    }

    impl OnStopped {
        fn fire(&self) {
            self.claim.release();
            self.closer.close();
        }
    }

    impl ArcWake for OnStopped {
        fn wake_by_ref(this: &Arc<Self>) {
            if let Some(shared) = this.shared.upgrade() {
                if shared.stopped.is_set() {
                    this.fire();
                }
            }
        }
    }

    pub(super) fn spawn(signals: &Signals, handle: &Handle) -> Result<Listener, Error> {
        check(&signals.kinds)?;
        let raws: Vec<i32> = signals.kinds.iter().map(|k| k.0).collect();
        let claim = Claim::take(&signals.kinds)?;
        let mut source = signal_hook::iterator::Signals::new(&raws)
            .map_err(|e| Error::config(format!("cannot listen for signals: {e}")))?;
        let closer = source.handle();

        // No thread waits for the lifecycle to stop: its `stopped` signal
        // wakes `OnStopped`. The polled future must live as long as the
        // registration, so the listener thread owns it.
        let mut stopped = handle.stopped();
        let shared = Arc::downgrade(&handle.shared);
        let on_stopped = Arc::new(OnStopped {
            closer: closer.clone(),
            claim: claim.clone(),
            shared: shared.clone(),
        });
        let waker = futures::task::waker(on_stopped.clone());
        if let Poll::Ready(()) = Pin::new(&mut stopped).poll(&mut Context::from_waker(&waker)) {
            on_stopped.fire();
        }

        let signals = signals.clone();
        let thread = std::thread::Builder::new()
            .name("lameduck-signal".into())
            .spawn(move || {
                let _stopped = stopped;
                let mut count = 0;
                let mut orphan = None;
                for raw in source.forever() {
                    if !dispatch(raw, &mut count, &signals, &shared) {
                        orphan = Some(raw);
                        break;
                    }
                }
                // Default actions come back before the handlers go, so no
                // signal falls between the two.
                let freed = claim.release();
                drop(source);
                log::debug!(target: "lameduck", "signal listener stopped");
                if let Some(raw) = orphan {
                    // The lifecycle was dropped without running: the signal
                    // does what it would have done without us.
                    if freed.iter().any(|k| k.0 == raw) {
                        let _ = signal_hook::low_level::emulate_default_handler(raw);
                    }
                }
            });
        // If the thread did not start, dropping its closure released the claim.
        let thread = thread
            .map_err(|e| Error::config(format!("cannot start the signal listener thread: {e}")))?;
        Ok(Listener {
            closer,
            thread: Some(thread),
        })
    }
}

#[cfg(windows)]
mod imp {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{Claim, Listener, Signals, check, dispatch};
    use crate::error::Error;
    use crate::handle::Handle;

    /// Windows has no self-pipe: the thread polls flags set by the handler.
    #[derive(Clone)]
    pub(super) struct Closer(Arc<AtomicBool>);

    impl Closer {
        pub(super) fn close(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    const POLL: Duration = Duration::from_millis(20);

    /// Handlers that unregister when dropped.
    struct Flags(Vec<(i32, Arc<AtomicBool>, signal_hook::SigId)>);

    impl Drop for Flags {
        fn drop(&mut self) {
            for (_, _, id) in &self.0 {
                signal_hook::low_level::unregister(*id);
            }
        }
    }

    pub(super) fn spawn(signals: &Signals, handle: &Handle) -> Result<Listener, Error> {
        check(&signals.kinds)?;
        let claim = Claim::take(&signals.kinds)?;
        let mut flags = Flags(Vec::new());
        for kind in &signals.kinds {
            let flag = Arc::new(AtomicBool::new(false));
            let id = signal_hook::flag::register(kind.0, flag.clone())
                .map_err(|e| Error::config(format!("cannot listen for {kind}: {e}")))?;
            flags.0.push((kind.0, flag, id));
        }
        let closer = Closer(Arc::new(AtomicBool::new(false)));
        let closed = closer.clone();
        let stopped = handle.stopped();
        let shared = Arc::downgrade(&handle.shared);
        let signals = signals.clone();
        let thread = std::thread::Builder::new()
            .name("lameduck-signal".into())
            .spawn(move || {
                let mut count = 0;
                'listen: while !closed.0.load(Ordering::SeqCst) && !stopped.is_set() {
                    std::thread::sleep(POLL);
                    for (raw, flag, _) in &flags.0 {
                        if flag.swap(false, Ordering::SeqCst)
                            && !dispatch(*raw, &mut count, &signals, &shared)
                        {
                            break 'listen;
                        }
                    }
                }
                claim.release();
                drop(flags);
            });
        let thread = thread
            .map_err(|e| Error::config(format!("cannot start the signal listener thread: {e}")))?;
        Ok(Listener {
            closer,
            thread: Some(thread),
        })
    }
}
