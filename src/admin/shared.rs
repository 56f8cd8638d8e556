//! What the event loop and the component's `run` future share: the queue
//! of answers and the waker that tells the loop to take them, the stop
//! flag, and the request handed to the checks.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use super::conn::response_bytes;
use crate::health::{ProbeRequest, Probes};
use crate::latch::lock;

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

/// An answer for the loop: the bytes the checks' side has already written
/// (all of them, unless the socket was full) and what is left to do.
pub(super) struct Reply {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) request: u64,
    /// The answer on the wire.
    pub(super) out: Vec<u8>,
    /// How much of `out` is written.
    pub(super) written: usize,
    /// Whether the answer keeps the connection open.
    pub(super) keep_alive: bool,
}

/// Where the answer to an awaited request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Nobody has taken the request yet.
    Open,
    /// The loop has (a late answer, or the connection closed).
    Loop,
    /// The checks' side has handed its answer to the loop to write: it
    /// keeps the connection open.
    Handed,
    /// The checks' side is writing it, and the connection then closes.
    Writing,
    /// The checks' side has written it whole and shut the connection.
    Sent,
}

/// Who answers a request: the first to take it. The checks' side takes it
/// to write the answer (or to hand it over); the loop, to answer `503` when
/// the checks are late or to close the connection. Whoever comes second
/// leaves the socket alone.
#[derive(Debug, Default)]
pub(super) struct Claim(AtomicU8);

impl Claim {
    const ORDER: [Answer; 5] = [
        Answer::Open,
        Answer::Loop,
        Answer::Handed,
        Answer::Writing,
        Answer::Sent,
    ];

    /// Takes the request for the loop: `Ok` if first, else where the answer
    /// is.
    pub(super) fn take(&self) -> Result<(), Answer> {
        self.take_for(Answer::Loop)
    }

    fn take_for(&self, who: Answer) -> Result<(), Answer> {
        self.0
            .compare_exchange(
                Answer::Open as u8,
                who as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(drop)
            .map_err(|s| Self::ORDER[usize::from(s)])
    }

    pub(super) fn answer(&self) -> Answer {
        Self::ORDER[usize::from(self.0.load(Ordering::Acquire))]
    }
}

/// A parsed request waiting for the checks.
pub(super) struct Job {
    pub(super) slot: usize,
    pub(super) id: u64,
    pub(super) request: u64,
    pub(super) method: String,
    pub(super) target: String,
    pub(super) accept: String,
    pub(super) head: bool,
    pub(super) keep_alive: bool,
    /// The connection's socket (a duplicate descriptor, non-blocking as the
    /// loop's) if the answer closes it, or `None`: then the loop writes the
    /// whole answer.
    pub(super) stream: Option<TcpStream>,
    pub(super) claim: Arc<Claim>,
    pub(super) shared: Arc<Shared>,
}

impl Job {
    /// Runs the checks and writes the answer, then hands the connection back
    /// to the loop.
    ///
    /// An answer that closes the connection (the kubelet's probes) is
    /// written here, on the checks' thread, without blocking: the client
    /// has it without waiting for the loop's thread to wake up, which costs
    /// as much as the rest of a request on a busy machine. What the socket
    /// does not take at once, the loop writes. A kept-alive connection's
    /// answer is the loop's to write: the loop must have it back, ready for
    /// the next request, before the client can see the answer.
    pub(super) fn answer(self, probes: &Probes) -> impl Future<Output = ()> + Send + 'static {
        let fut =
            probes.respond(ProbeRequest::new(&self.method, &self.target).accept(&self.accept));
        async move {
            let response = fut.await;
            let keep_alive = self.keep_alive && !self.shared.stopping.load(Ordering::Acquire);
            let stream = self.stream.filter(|_| !keep_alive);
            let how = if stream.is_some() {
                Answer::Writing
            } else {
                Answer::Handed
            };
            if self.claim.take_for(how).is_err() {
                // The loop has answered or closed the connection.
                return;
            }
            let out = response_bytes(&response, self.head, keep_alive);
            let mut written = 0;
            if let Some(mut stream) = stream {
                while written < out.len() {
                    match stream.write(&out[written..]) {
                        Ok(0) => break,
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Full or failed: the loop finds out which.
                        Err(_) => break,
                    }
                }
                if written == out.len() {
                    self.claim.0.store(Answer::Sent as u8, Ordering::Release);
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
            let first = {
                let mut replies = lock(&self.shared.replies);
                replies.push(Reply {
                    slot: self.slot,
                    id: self.id,
                    request: self.request,
                    out,
                    written,
                    keep_alive,
                });
                replies.len() == 1
            };
            // Answers queued behind another are taken with it: one wake.
            if first {
                let _ = self.shared.waker.wake();
            }
        }
    }
}
