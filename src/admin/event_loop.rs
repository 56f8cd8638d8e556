//! The admin server's one thread: an event loop over non-blocking sockets
//! (`mio`), with a deadline per connection. Requests go to the component's
//! `run` future through a queue; it runs the checks and writes the answers,
//! and gives back through another queue and a waker the connections that
//! stay open or whose answers the socket did not take whole.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedSender;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

mod accept;
mod answers;
mod deadlines;
mod limits;
mod read;

use super::conn::{Conn, State};
use super::options::AdminOptions;
use super::shared::{Job, Shared};
use crate::health::Probes;
use crate::logging::event;

const LISTENER: Token = Token(usize::MAX);
pub(super) const WAKER: Token = Token(usize::MAX - 1);

/// How long an answered connection is read before it is closed anyway.
const LINGER: Duration = Duration::from_millis(500);
/// Once the server stops, how long any connection may still take.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// What a step of a connection's state machine left it at.
enum Step {
    /// State changed: run the machine again.
    Again,
    /// Waiting for the socket or for the checks.
    Blocked,
    Close,
}

pub(super) struct EventLoop {
    poll: Poll,
    listener: Option<TcpListener>,
    shared: Arc<Shared>,
    jobs: UnboundedSender<Job>,
    /// The probes, when the loop may answer those that run no check.
    background: Option<Probes>,
    options: AdminOptions,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Connections counted against the limit.
    active: usize,
    /// Every connection, lingering and rejected ones included.
    total: usize,
    /// Counted connections in accept order (see `victim`).
    order: VecDeque<(u64, usize)>,
    /// Lingering connections, oldest first (see `shed_lingering`).
    lingering: VecDeque<(u64, usize)>,
    /// Connections awaiting their answers (see `settle_sent`).
    waiting: Vec<(u64, usize)>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_id: u64,
    next_request: u64,
    accept_retry: Option<Instant>,
    accept_warned: Option<Instant>,
}

impl EventLoop {
    pub(super) fn new(
        poll: Poll,
        mut listener: TcpListener,
        shared: Arc<Shared>,
        jobs: UnboundedSender<Job>,
        background: Option<Probes>,
        options: AdminOptions,
    ) -> io::Result<Self> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            shared,
            jobs,
            background,
            options,
            conns: Vec::new(),
            free: Vec::new(),
            active: 0,
            total: 0,
            order: VecDeque::new(),
            lingering: VecDeque::new(),
            waiting: Vec::new(),
            timers: BinaryHeap::new(),
            next_id: 1,
            next_request: 1,
            accept_retry: None,
            accept_warned: None,
        })
    }

    /// Serves until stopped and every connection is done.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let wake = match (self.timers.peek(), self.accept_retry) {
                (Some(Reverse((t, ..))), Some(r)) => Some((*t).min(r)),
                (Some(Reverse((t, ..))), None) => Some(*t),
                (None, r) => r,
            };
            let timeout = wake.map(|t| t.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                event!(target: "lameduck", error, { error = e }, "admin server: the event loop failed: {e}");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(slot) => self.drive(slot),
                }
            }
            self.take_replies();
            if self.shared.stopping.load(Ordering::Acquire) && self.listener.is_some() {
                self.begin_stop();
            }
            let now = Instant::now();
            self.fire_timers(now);
            if self.accept_retry.is_some_and(|t| t <= now) {
                self.accept_retry = None;
                self.accept();
            }
            if self.listener.is_none() && self.total == 0 {
                break;
            }
        }
        event!(target: "lameduck", debug, {}, "admin server: stopped");
    }

    fn conn(&mut self, slot: usize) -> Option<&mut Conn> {
        self.conns.get_mut(slot).and_then(Option::as_mut)
    }

    fn close(&mut self, slot: usize) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        // Checks still running: their answer must not go to a socket given
        // up. (If they have taken it already, their answer is complete in
        // the socket before their descriptor closes it.)
        if let Some(claim) = conn.claim.take() {
            let _ = claim.take();
        }
        // Deregistered explicitly: the checks' side may still hold a
        // duplicate, which would keep it in the poll.
        if conn.watched {
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
        if conn.counted {
            self.active -= 1;
        }
        self.total -= 1;
        self.free.push(slot);
        self.shared.open.store(self.total, Ordering::Relaxed);
    }

    /// Runs a connection's state machine as far as its socket allows.
    fn drive(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.conn(slot) else {
                return;
            };
            let step = match conn.state {
                State::Head | State::Body { .. } => self.read_request(slot),
                State::Waiting => self.check_sent(slot),
                State::Writing => self.write(slot),
                State::Lingering => self.linger(slot),
            };
            match step {
                Step::Again => {}
                Step::Blocked => return,
                Step::Close => {
                    self.close(slot);
                    return;
                }
            }
        }
    }

    /// Stops accepting (the port closes at once), answers `503` to requests
    /// not yet read, lets answers in progress finish, and bounds everything
    /// by a short grace.
    fn begin_stop(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let grace = Instant::now() + STOP_GRACE;
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conn(slot) else {
                continue;
            };
            conn.keep_alive = false;
            match conn.state {
                State::Head if conn.buf.is_empty() && conn.served > 0 => self.close(slot),
                State::Head | State::Body { .. } => {
                    self.refuse(slot, 503, "503 shutting down");
                    self.drive(slot);
                }
                _ => {}
            }
            if let Some(conn) = self.conn(slot) {
                if conn.deadline.is_none_or(|d| d > grace) {
                    let left = grace.saturating_duration_since(Instant::now());
                    self.set_deadline(slot, left);
                }
            }
        }
    }
}
