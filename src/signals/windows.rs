//! The listener on Windows: a thread polling flags set by the handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::claim::Claim;
use super::{Listener, Signals, check, dispatch};
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
