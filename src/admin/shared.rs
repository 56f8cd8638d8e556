//! What the event loop and the component's `run` future share: the queue
//! of answers and the waker that tells the loop to take them, the stop
//! flag, the runtime's heartbeat, and the request handed to the checks.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::Waker;

use super::wire::response_bytes;
use crate::health::{ProbeRequest, Probes};
use crate::latch::lock;

/// What the loop and the component share.
pub(super) struct Shared {
    pub(super) waker: Waker,
    pub(super) replies: Mutex<Vec<Reply>>,
    pub(super) stopping: AtomicBool,
    /// Sockets open, for `Debug`.
    pub(super) open: AtomicUsize,
    /// When the component's `run` future was last polled, in nanoseconds
    /// since `epoch` (0: never): the runtime's heartbeat.
    beat: AtomicU64,
    epoch: Instant,
}

/// How often the `run` future beats, when answers may come from the loop.
pub(super) const BEAT: Duration = Duration::from_millis(250);
/// How old the last beat may be for the loop to answer for the runtime.
const ALIVE: Duration = Duration::from_secs(1);

impl Shared {
    pub(super) fn new(waker: Waker) -> Self {
        Shared {
            waker,
            replies: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            beat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// The runtime is polling the component's `run` future now.
    pub(super) fn beat(&self) {
        let nanos = self.epoch.elapsed().as_nanos().max(1);
        self.beat
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Release);
    }

    /// Whether the runtime has polled the `run` future within [`ALIVE`].
    pub(super) fn is_alive(&self) -> bool {
        match self.beat.load(Ordering::Acquire) {
            0 => false,
            last => {
                let since = self
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(last));
                since <= ALIVE
            }
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
    /// The checks' side is writing it, and the connection stays open: the
    /// loop takes the connection back from the reply.
    Kept,
    /// The checks' side is writing it, and the connection then closes.
    Writing,
    /// The checks' side has written it whole and shuts the connection: no
    /// reply comes, the loop finds this when the connection next stirs
    /// (the client closing it) or when it looks for room.
    Sent,
}

/// Who answers a request: the first to take it. The checks' side takes it
/// to write the answer; the loop, to answer `503` when the checks are late
/// or to close the connection. Whoever comes second leaves the socket
/// alone.
#[derive(Debug, Default)]
pub(super) struct Claim(AtomicU8);

impl Claim {
    const ORDER: [Answer; 5] = [
        Answer::Open,
        Answer::Loop,
        Answer::Kept,
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
    /// loop's), or `None` if it could not be duplicated: then the loop
    /// writes the whole answer.
    pub(super) stream: Option<Arc<TcpStream>>,
    pub(super) claim: Arc<Claim>,
    pub(super) shared: Arc<Shared>,
}

impl Job {
    /// Runs the checks and writes the answer, then hands the connection back
    /// to the loop.
    ///
    /// The answer is written here, on the checks' thread, without blocking:
    /// the client has it without waiting for the loop's thread to wake up,
    /// a cross-thread hop that costs as much as the checks. What the socket
    /// does not take at once, the loop writes. An answer that closes the
    /// connection (the kubelet's probes) is followed by our side's shutdown
    /// and needs no reply: the loop learns it from the claim. A kept-alive
    /// connection goes back to the loop with a reply; until the loop has
    /// it, a next request the client sends waits in the socket.
    pub(super) fn answer(self, probes: &Probes) -> impl Future<Output = ()> + Send + 'static {
        let fut =
            probes.respond(ProbeRequest::new(&self.method, &self.target).accept(&self.accept));
        async move {
            let response = fut.await;
            let keep_alive = self.keep_alive && !self.shared.stopping.load(Ordering::Acquire);
            let how = if keep_alive {
                Answer::Kept
            } else {
                Answer::Writing
            };
            if self.claim.take_for(how).is_err() {
                // The loop has answered or closed the connection.
                return;
            }
            let out = response_bytes(&response, self.head, keep_alive);
            // A kept-alive answer is written under the replies' lock and
            // handed back before it is released: a client that has read the
            // answer and opens another connection finds the loop, which
            // takes the replies before refusing anyone, knowing this one
            // idle (and so evictable), not still answering.
            let held = keep_alive.then(|| lock(&self.shared.replies));
            let written = match &self.stream {
                Some(stream) => write_some(stream, &out, !keep_alive),
                None => 0,
            };
            if !keep_alive && written == out.len() {
                // Marked before the shutdown: once the client has the FIN it
                // may close, and the loop, woken by that, must find the
                // answer sent. (Its own copy of the socket closing first
                // sends nothing while ours is open.)
                self.claim.0.store(Answer::Sent as u8, Ordering::Release);
                if let Some(stream) = &self.stream {
                    let _ = stream.shutdown(Shutdown::Write);
                }
                return;
            }
            let first = {
                let mut replies = held.unwrap_or_else(|| lock(&self.shared.replies));
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

/// Writes what the non-blocking socket takes of `out` at once; how much.
/// `last`: our side shuts the connection right after, so on Linux the
/// bytes are held back (`MSG_MORE`) to leave in one segment with the
/// shutdown's FIN, and the client wakes once for the answer and its end
/// rather than twice.
fn write_some(stream: &TcpStream, out: &[u8], last: bool) -> usize {
    let mut written = 0;
    while written < out.len() {
        match send(stream, &out[written..], last) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Full or failed: the loop finds out which.
            Err(_) => break,
        }
    }
    written
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send(stream: &TcpStream, buf: &[u8], last: bool) -> io::Result<usize> {
    // Linux's ABI (`include/linux/socket.h`). `MSG_NOSIGNAL` as the
    // standard library's writes: a client gone is an error, not a SIGPIPE.
    const MSG_NOSIGNAL: i32 = 0x4000;
    const MSG_MORE: i32 = 0x8000;
    let flags = if last {
        MSG_NOSIGNAL | MSG_MORE
    } else {
        MSG_NOSIGNAL
    };
    socket2::SockRef::from(stream).send_with_flags(buf, flags)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send(mut stream: &TcpStream, buf: &[u8], _last: bool) -> io::Result<usize> {
    io::Write::write(&mut stream, buf)
}
