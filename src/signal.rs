//! A one-shot broadcast flag: set once, awaited by any number of tasks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

/// A one-shot notification, such as "this component must stop" or
/// "shutdown was requested".
///
/// A `Signal` is a cheap clone of a shared flag. It is a future that
/// resolves once the flag is set, and stays resolved: awaiting it after the
/// fact returns at once. Every clone sees the same flag.
///
/// # Cancel safety
///
/// Awaiting a `Signal` is cancel-safe: dropping the future loses nothing,
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
/// # lifecycle.handle().request_stop(None);
/// # futures::executor::block_on(lifecycle.run()).unwrap();
/// ```
#[derive(Clone)]
pub struct Signal {
    inner: Arc<Inner>,
    wait: Shared<oneshot::Receiver<()>>,
}

struct Inner {
    set: AtomicBool,
    sender: Mutex<Option<oneshot::Sender<()>>>,
}

impl Signal {
    pub(crate) fn new() -> Self {
        let (tx, rx) = oneshot::channel();
        Signal {
            inner: Arc::new(Inner {
                set: AtomicBool::new(false),
                sender: Mutex::new(Some(tx)),
            }),
            wait: rx.shared(),
        }
    }

    /// Sets the flag and wakes every waiter. Returns `true` if this call set it.
    pub(crate) fn set(&self) -> bool {
        if self.inner.set.swap(true, Ordering::AcqRel) {
            return false;
        }
        // Dropping the sender completes every clone of the receiver.
        drop(lock(&self.inner.sender).take());
        true
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::Acquire)
    }
}

impl Future for Signal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_set() {
            return Poll::Ready(());
        }
        self.wait.poll_unpin(cx).map(|_| ())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("set", &self.is_set())
            .finish()
    }
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate
/// leaves its data consistent, and user code never runs under these locks.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
