//! The hard-exit watchdog: a thread that ends the process if shutdown takes
//! too long, because a component that blocks its thread can stall a future
//! but must never stall a deploy.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::logging::event;

enum Msg {
    Arm,
    Done,
}

pub(crate) struct Watchdog {
    tx: mpsc::Sender<Msg>,
}

impl Watchdog {
    /// Spawns the watchdog thread. It sleeps until shutdown begins, then
    /// exits the process with `code` unless the lifecycle finishes within
    /// `timeout`. Returns `None` (and logs) if the thread cannot be spawned.
    pub(crate) fn spawn(timeout: Duration, code: i32) -> Option<Watchdog> {
        let (tx, rx) = mpsc::channel();
        let spawned = thread::Builder::new()
            .name("lameduck-watchdog".into())
            .spawn(move || watch(&rx, timeout, code));
        match spawned {
            Ok(_) => Some(Watchdog { tx }),
            Err(e) => {
                event!(error, { error = e }, "watchdog thread could not start: {e}");
                None
            }
        }
    }

    pub(crate) fn arm(&self) {
        let _ = self.tx.send(Msg::Arm);
    }

    pub(crate) fn done(&self) {
        let _ = self.tx.send(Msg::Done);
    }
}

fn watch(rx: &mpsc::Receiver<Msg>, timeout: Duration, code: i32) {
    // Until shutdown begins there is nothing to watch.
    if !matches!(rx.recv(), Ok(Msg::Arm)) {
        return;
    }
    let Some(deadline) = crate::timer::after(Instant::now(), timeout) else {
        return;
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Msg::Arm) => continue,
            Ok(Msg::Done) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                event!(
                    error,
                    { elapsed_ms = timeout.as_millis() },
                    "watchdog: shutdown did not finish within {timeout:?}; exiting with code {code}"
                );
                std::process::exit(code);
            }
        }
    }
}
