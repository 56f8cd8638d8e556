//! The listener on Unix: a thread blocked on signal-hook's self-pipe.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures::task::ArcWake;

use super::claim::Claim;
use super::{Listener, Signals, check, dispatch};
use crate::error::Error;
use crate::handle::{Handle, Shared};
use crate::logging::event;

pub(super) type Closer = signal_hook::iterator::Handle;

/// Runs when the lifecycle's `stopped` signal fires, on the thread that
/// finishes `run`, before `run` returns: gives the default actions back
/// and closes the self-pipe, which ends the listener thread.
///
/// It holds no `Latch`: it is dropped under the lock of the signal's
/// waker list, and dropping the last clone of a `Latch` wakes that
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
            event!(target: "lameduck", debug, {}, "signal listener stopped");
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
