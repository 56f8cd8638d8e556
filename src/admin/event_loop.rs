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
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

mod answers;
mod deadlines;
mod limits;

use super::conn::{self, Conn, Io, Parse, Request, State};
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
/// After a failed `accept` (out of descriptors), when to try again.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// The shortest time between two warnings about failing `accept`s.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// What the buffer gave.
enum Got {
    Refuse(u16, &'static str),
    /// A request, and the bytes it took.
    Request(Request, usize),
    /// Headers announcing a body: read it.
    Body,
}

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

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // Out of descriptors: try again shortly rather than spin,
                    // and say so once in a while rather than each time.
                    let now = Instant::now();
                    if self
                        .accept_warned
                        .is_none_or(|t| now - t >= ACCEPT_WARN_EVERY)
                    {
                        self.accept_warned = Some(now);
                        event!(target: "lameduck", warn, { error = e }, "admin server: accept failed: {e}");
                    }
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, stream: TcpStream) {
        let max = self.options.max_connections;
        if self.total >= max.saturating_mul(2) {
            self.shed_lingering();
        }
        if self.active >= max {
            self.take_replies();
            self.settle_sent();
        }
        let counted = if self.active < max {
            true
        } else if let Some(victim) = self.victim() {
            self.close(victim);
            true
        } else if self.total - self.active < max {
            false
        } else {
            // Both the connections and the answers to refused ones are
            // full: nothing more can be afforded.
            return;
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let id = self.next_id;
        self.next_id += 1;
        self.conns[slot] = Some(Conn::new(stream, id, counted));
        self.total += 1;
        if counted {
            self.active += 1;
            self.enqueue(id, slot);
            self.set_deadline(slot, self.options.header_timeout);
        } else {
            self.refuse(slot, 503, "503 too many connections");
        }
        self.shared.open.store(self.total, Ordering::Relaxed);
        // A request already in the socket (a prober writes it right after
        // connecting) goes to the checks first; watching the socket and
        // setting its options happen while they run.
        self.drive(slot);
        self.watch(slot, id);
    }

    /// Registers a new connection with the poll (reading, and writing if a
    /// write already found it full). Readiness that came before is reported
    /// at registration: nothing is missed.
    fn watch(&mut self, slot: usize, id: u64) {
        let Some(conn) = self
            .conns
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|c| c.id == id)
        else {
            return;
        };
        let _ = conn.stream.set_nodelay(true);
        let interest = if conn.writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        match self
            .poll
            .registry()
            .register(&mut conn.stream, Token(slot), interest)
        {
            Ok(()) => conn.watched = true,
            Err(e) => {
                event!(target: "lameduck", warn, { error = e }, "admin server: cannot watch a connection: {e}");
                self.close(slot);
            }
        }
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

    fn read_request(&mut self, slot: usize) -> Step {
        let max = self.options.max_request_bytes;
        let keep_alive = self.options.keep_alive_enabled();
        let mut scanned = 0;
        loop {
            let Some(conn) = self.conn(slot) else {
                return Step::Close;
            };
            let got = match conn.state {
                State::Head if conn.buf.len() >= max || conn::may_end(&conn.buf, scanned) => {
                    match conn::parse(&conn.buf, max, keep_alive) {
                        Parse::Partial => None,
                        Parse::Refuse(status, body) => Some(Got::Refuse(status, body)),
                        Parse::Done(req) if req.body == 0 => {
                            let len = req.len;
                            Some(Got::Request(req, len))
                        }
                        Parse::Done(req) => {
                            match req.len.checked_add(req.body).filter(|end| *end <= max) {
                                None => Some(Got::Refuse(413, "413 content too large")),
                                Some(end) => {
                                    conn.state = State::Body { end };
                                    conn.pending = Some(req);
                                    Some(Got::Body)
                                }
                            }
                        }
                    }
                }
                State::Body { end } if conn.buf.len() >= end => Some(match conn.pending.take() {
                    Some(req) => Got::Request(req, end),
                    None => Got::Refuse(400, "400 bad request"),
                }),
                _ => None,
            };
            match got {
                Some(Got::Refuse(status, body)) => {
                    self.refuse(slot, status, body);
                    return Step::Again;
                }
                Some(Got::Request(req, consumed)) => {
                    self.dispatch(slot, req, consumed);
                    return Step::Again;
                }
                Some(Got::Body) => {
                    self.set_deadline(slot, self.options.body_timeout);
                    continue;
                }
                None => {}
            }
            let Some(conn) = self.conn(slot) else {
                return Step::Close;
            };
            scanned = conn.buf.len();
            // The first byte of a keep-alive connection's next request ends
            // its idle time and starts its header deadline.
            let next_request = scanned == 0 && conn.served > 0;
            match conn.fill(max) {
                Io::Done if next_request => self.set_deadline(slot, self.options.header_timeout),
                Io::Done => {}
                Io::Blocked => return Step::Blocked,
                Io::Closed => return Step::Close,
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
