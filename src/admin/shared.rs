//! What the event loop and the component's `run` future share: the queue
//! of answers and the waker that tells the loop to take them, the stop
//! flag, and the request handed to the checks.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mio::Waker;

use crate::health::{ProbeRequest, ProbeResponse, Probes};
use crate::signal::lock;

/// What the loop and the component share.
pub(super) struct Shared {
    pub(super) waker: Waker,
    pub(super) replies: Mutex<Vec<Reply>>,
    pub(super) stopping: AtomicBool,
    /// Sockets open, for `Debug`.
    pub(super) open: AtomicUsize,
}

impl Shared {
    pub(super) fn new(waker: Waker) -> Self {
        Shared {
            waker,
            replies: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            open: AtomicUsize::new(0),
        }
    }

    /// Tells the loop to stop accepting and to finish.
    pub(super) fn stop(&self) {
        if !self.stopping.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

pub(super) struct Reply {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) request: u64,
    pub(super) response: ProbeResponse,
}

/// A parsed request waiting for the checks.
pub(super) struct Job {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) request: u64,
    pub(super) method: String,
    pub(super) target: String,
    pub(super) accept: String,
    pub(super) shared: std::sync::Arc<Shared>,
}

impl Job {
    /// Runs the checks and hands the answer back to the loop.
    pub(super) fn answer(self, probes: &Probes) -> impl Future<Output = ()> + Send + 'static {
        let fut =
            probes.respond(ProbeRequest::new(&self.method, &self.target).accept(&self.accept));
        async move {
            let response = fut.await;
            lock(&self.shared.replies).push(Reply {
                slot: self.slot,
                id: self.id,
                request: self.request,
                response,
            });
            let _ = self.shared.waker.wake();
        }
    }
}
