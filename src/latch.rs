//! A one-shot broadcast flag: set once, awaited by any number of tasks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::future::Aborted;
use futures::task::AtomicWaker;

mod waiters;

pub(crate) use self::waiters::WaitList;

/// A one-shot notification, such as "this component must stop" or
/// "shutdown was requested".
///
/// A `Latch` is a cheap clone of a shared flag. It is a future that
/// resolves once the flag is set, and stays resolved: awaiting it after the
/// fact returns at once. Every clone sees the same flag.
///
/// # Cancel safety
///
/// Awaiting a `Latch` is cancel-safe: dropping the future loses nothing,
/// and a fresh clone can be awaited later.
///
/// # Examples
///
/// ```
/// # use lameduck::{Component, Context, BoxError};
/// struct Worker;
/// impl Component for Worker {
///     async fn run(&self, cx: &Context) -> Result<(), BoxError> {
///         // Work until asked to stop.
///         cx.stop_signal().await;
///         Ok(())
///     }
/// }
/// # let lifecycle = lameduck::Lifecycle::builder().component("worker", Worker).build().unwrap();
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
pub struct Latch {
    source: Source,
    /// This clone's slot in the waiter list, once it has waited. Four
    /// bytes keep a latch, which each component holds several of, at 32.
    key: Option<u32>,
}

/// What a [`Latch`] watches.
#[derive(Clone)]
enum Source {
    /// A flag of its own (or of its host), set by [`Latch::set`].
    Flag(Arc<dyn Host>),
    /// A gate of a state machine: set when the machine's state says so,
    /// and only by the machine. The latch stores nothing of its own.
    Gate(Arc<dyn Gates>, u8),
}

/// What holds a latch's state: the latch's own allocation, or a larger
/// one it shares (a component's cell holds its stop latch).
pub(crate) trait Host: Send + Sync {
    fn latch_state(&self) -> &LatchState;
}

impl Source {
    fn is_set(&self) -> bool {
        match self {
            Source::Flag(host) => host.latch_state().set.load(Ordering::Acquire),
            Source::Gate(machine, gate) => machine.is_open(*gate),
        }
    }

    fn waiters(&self) -> &WaitList {
        match self {
            Source::Flag(host) => &host.latch_state().waiters,
            Source::Gate(machine, gate) => machine.waiters(*gate),
        }
    }
}

/// A state machine whose states latches can wait for: each gate is a
/// condition on the state that, once true, stays true.
pub(crate) trait Gates: Send + Sync {
    /// Whether `gate` is open.
    fn is_open(&self, gate: u8) -> bool;
    /// Where the waiters of `gate` wait. The machine wakes them with
    /// [`WaitList::wake`] after each change that opens `gate`, and must
    /// make the change visible before it does.
    fn waiters(&self, gate: u8) -> &WaitList;
}

/// The state behind a [`Latch`] and all its clones.
#[derive(Default)]
pub(crate) struct LatchState {
    set: AtomicBool,
    waiters: WaitList,
    /// A second one-shot flag in the same allocation: the abort of what
    /// [`Latch::abortable`] wraps (a component's `run`, beside its stop).
    aborted: AtomicBool,
    abort_waker: AtomicWaker,
}

impl LatchState {
    /// Drops every waker registered on it, without setting it: its host
    /// may be what those wakers wake (a component's cell), a cycle.
    /// A flag that was set kept no waker: setting it took them all, and
    /// a set flag registers none.
    pub(crate) fn release_wakers(&self) {
        if !self.set.load(Ordering::Acquire) {
            let waiters = std::mem::take(&mut *lock(&self.waiters.0));
            drop(waiters);
        }
        drop(self.abort_waker.take());
    }
}

impl Host for LatchState {
    fn latch_state(&self) -> &LatchState {
        self
    }
}

impl Latch {
    pub(crate) fn new() -> Self {
        Latch::hosted(Arc::new(LatchState::default()))
    }

    /// A latch whose state lives in `host`.
    pub(crate) fn hosted(host: Arc<dyn Host>) -> Self {
        Latch {
            source: Source::Flag(host),
            key: None,
        }
    }

    /// A latch set when `gate` of `machine` opens.
    pub(crate) fn gate(machine: Arc<dyn Gates>, gate: u8) -> Self {
        Latch {
            source: Source::Gate(machine, gate),
            key: None,
        }
    }

    /// The flag of a latch made by [`Latch::new`] or [`Latch::hosted`].
    ///
    /// # Panics
    ///
    /// For a gate: only its machine opens it, so setting or aborting it is
    /// a bug in this crate.
    fn st(&self) -> &LatchState {
        match &self.source {
            Source::Flag(host) => host.latch_state(),
            Source::Gate(..) => panic!("a gate opens with its state machine only"),
        }
    }

    fn waiters(&self) -> &WaitList {
        self.source.waiters()
    }

    /// Sets the flag and wakes every waiter. Returns `true` if this call set it.
    pub(crate) fn set(&self) -> bool {
        let raised = self.raise();
        if raised {
            self.wake();
        }
        raised
    }

    /// [`Latch::set`] for a caller about to poll `own`, the task that
    /// waits for it: wakes every other waiter, and tells whether that task
    /// waited (its waker is dropped unwoken, the caller's poll being the
    /// wake). `false` as well if the flag was set already.
    pub(crate) fn set_polled_by(&self, own: &Waker) -> bool {
        self.raise() && self.waiters().wake_all_but(Some(own))
    }

    /// Sets the flag without waking anyone yet: lets a caller make the flag
    /// visible under its own lock and run the wakers after releasing it.
    /// Returns `true` if this call set it; then [`Latch::wake`] must follow.
    pub(crate) fn raise(&self) -> bool {
        !self.st().set.swap(true, Ordering::AcqRel)
    }

    /// Wakes every waiter registered before the flag was raised.
    pub(crate) fn wake(&self) {
        self.st().waiters.wake();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.source.is_set()
    }

    /// Wraps `fut` so that [`Latch::abort`] on any clone of this latch ends
    /// it: like `futures`' `Abortable`, without an allocation of its own.
    pub(crate) fn abortable<F: Future + Unpin>(&self, fut: F) -> Abortable<F> {
        Abortable {
            fut,
            latch: self.clone(),
        }
    }

    /// Whether [`Latch::abort`] was called. A gate is never aborted.
    pub(crate) fn is_aborted(&self) -> bool {
        match &self.source {
            Source::Flag(host) => host.latch_state().aborted.load(Ordering::SeqCst),
            Source::Gate(..) => false,
        }
    }

    /// Wakes `waker` on [`Latch::abort`] (the last one registered). A gate
    /// is never aborted: nothing to register.
    pub(crate) fn on_abort(&self, waker: &std::task::Waker) {
        if let Source::Flag(host) = &self.source {
            host.latch_state().abort_waker.register(waker);
        }
    }

    /// Aborts what [`Latch::abortable`] wrapped: its next poll ends it
    /// without polling it again. Independent of the flag itself.
    pub(crate) fn abort(&self) {
        self.st().aborted.store(true, Ordering::SeqCst);
        self.st().abort_waker.wake();
    }
}

/// A future that a [`Latch::abort`] ends with [`Aborted`].
pub(crate) struct Abortable<F> {
    fut: F,
    latch: Latch,
}

impl<F: Future + Unpin> Future for Abortable<F> {
    type Output = Result<F::Output, Aborted>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // As `futures`' `Abortable`: checked before the poll, and again
        // after the waker is registered, so an abort is never missed.
        if self.latch.is_aborted() {
            return Poll::Ready(Err(Aborted));
        }
        if let Poll::Ready(out) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(Ok(out));
        }
        self.latch.on_abort(cx.waker());
        if self.latch.is_aborted() {
            return Poll::Ready(Err(Aborted));
        }
        Poll::Pending
    }
}

impl Clone for Latch {
    fn clone(&self) -> Self {
        Latch {
            source: self.source.clone(),
            key: None,
        }
    }
}

impl Future for Latch {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_set() {
            return Poll::Ready(());
        }
        // `Latch` is `Unpin`: its fields can be borrowed apart.
        let this = self.get_mut();
        let mut waiters = lock(&this.source.waiters().0);
        // Checked again under the lock: waking takes the waiters under it,
        // after the flag is set, so a waker registered now is either taken
        // by the wake or sees the flag.
        if this.source.is_set() {
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => {
                let slot = waiters.slot(key);
                match slot {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *slot = Some(cx.waker().clone()),
                }
            }
            None => this.key = Some(waiters.insert(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Latch {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            // A flag once set stays set: no lock to take (a gate may close
            // again, and is checked under the lock).
            if matches!(self.source, Source::Flag(_)) && self.is_set() {
                return;
            }
            let mut waiters = lock(&self.waiters().0);
            // Once set, the waiters were taken (or are about to be): there
            // is no slot to free.
            if !self.is_set() {
                waiters.remove(key);
            }
        }
    }
}

impl fmt::Debug for Latch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latch")
            .field("set", &self.is_set())
            .finish()
    }
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent, and user code never runs under these locks.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
