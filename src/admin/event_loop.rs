//! The admin server's one thread: an event loop over non-blocking sockets
//! (`mio`), with a deadline per connection. Requests go to the component's
//! `run` future, which runs the checks and sends the answers back through a
//! queue and a waker.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

mod deadlines;
mod limits;

use super::conn::{self, Conn, Io, Parse, Request, State};
use super::options::AdminOptions;
use super::shared::{Answer, Claim, Job, Shared};
use crate::health::ProbeResponse;
use crate::latch::lock;
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
    jobs: async_channel::Sender<Job>,
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
        jobs: async_channel::Sender<Job>,
        options: AdminOptions,
    ) -> io::Result<Self> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            shared,
            jobs,
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
        let _ = stream.set_nodelay(true);
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
        let mut conn = Conn::new(stream, self.next_id, counted);
        self.next_id += 1;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut conn.stream, Token(slot), interest)
        {
            event!(target: "lameduck", warn, { error = e }, "admin server: cannot watch a connection: {e}");
            self.free.push(slot);
            return;
        }
        self.conns[slot] = Some(conn);
        self.total += 1;
        if counted {
            self.active += 1;
            self.enqueue(self.next_id - 1, slot);
            self.set_deadline(slot, self.options.header_timeout);
        } else {
            self.refuse(slot, 503, "503 too many connections");
        }
        self.shared.open.store(self.total, Ordering::Relaxed);
        self.drive(slot);
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
        let _ = self.poll.registry().deregister(&mut conn.stream);
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
                State::Waiting => Step::Blocked,
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

    /// Hands a complete request to the checks (`consumed`: its bytes in the
    /// buffer; what follows is the next request).
    fn dispatch(&mut self, slot: usize, req: Request, consumed: usize) {
        let stopping = self.listener.is_none();
        let request = self.next_request;
        self.next_request += 1;
        let shared = self.shared.clone();
        let Some(conn) = self.conn(slot) else {
            return;
        };
        conn.buf.drain(..consumed.min(conn.buf.len()));
        conn.keep_alive = req.keep_alive && !stopping;
        conn.head = req.method == "HEAD";
        let stream = if conn.keep_alive {
            None
        } else {
            socket2::SockRef::from(&conn.stream)
                .try_clone()
                .ok()
                .map(std::net::TcpStream::from)
        };
        let claim = Arc::new(Claim::default());
        let job = Job {
            slot,
            id: conn.id,
            request,
            head: conn.head,
            keep_alive: conn.keep_alive,
            method: req.method,
            target: req.target,
            accept: req.accept,
            stream,
            claim: claim.clone(),
            shared,
        };
        if stopping || self.jobs.try_send(job).is_err() {
            let resp = ProbeResponse::bad_request(503, "503 shutting down");
            self.respond(slot, &resp);
            return;
        }
        if let Some(conn) = self.conn(slot) {
            conn.state = State::Waiting;
            conn.awaiting = request;
            conn.claim = Some(claim);
            let id = conn.id;
            self.waiting.push((id, slot));
            if self.waiting.len() > 2 * self.active + 64 {
                let conns = &self.conns;
                self.waiting.retain(|&(id, slot)| {
                    conns
                        .get(slot)
                        .and_then(Option::as_ref)
                        .is_some_and(|c| c.id == id && c.state == State::Waiting)
                });
            }
        }
        self.set_deadline(slot, self.options.response_timeout);
    }

    /// Answers with an error and closes.
    fn refuse(&mut self, slot: usize, status: u16, body: &str) {
        if let Some(conn) = self.conn(slot) {
            conn.keep_alive = false;
            conn.head = false;
            conn.pending = None;
        }
        self.respond(slot, &ProbeResponse::bad_request(status, body));
    }

    fn respond(&mut self, slot: usize, resp: &ProbeResponse) {
        let Some(conn) = self.conn(slot) else {
            return;
        };
        conn.out = conn::response_bytes(resp, conn.head, conn.keep_alive);
        conn.written = 0;
        conn.state = State::Writing;
        self.set_deadline(slot, self.options.write_timeout);
    }

    fn take_replies(&mut self) {
        let replies = std::mem::take(&mut *lock(&self.shared.replies));
        for r in replies {
            let awaited = self.conn(r.slot).is_some_and(|c| {
                c.id == r.id && c.state == State::Waiting && c.awaiting == r.request
            });
            if awaited {
                self.answered(r.slot, r.out, r.written, r.keep_alive);
            }
        }
    }

    /// Takes back an awaited connection whose answer is `out`, `written` of
    /// it already written.
    pub(super) fn answered(&mut self, slot: usize, out: Vec<u8>, written: usize, keep_alive: bool) {
        let write_timeout = self.options.write_timeout;
        let Some(conn) = self.conn(slot) else {
            return;
        };
        conn.awaiting = 0;
        conn.claim = None;
        // Stopping after the answer was written: it may say `keep-alive`,
        // the connection closes all the same.
        conn.keep_alive &= keep_alive;
        conn.out = out;
        conn.written = written;
        conn.state = State::Writing;
        self.set_deadline(slot, write_timeout);
        self.drive(slot);
    }

    /// Frees the places of the awaited connections whose answers the
    /// checks' side is writing: they close once written, and their clients,
    /// who may have their answers already, may be opening their next
    /// connections, which must not find them counted. Those whose answers
    /// are written whole are taken back before their replies come.
    fn settle_sent(&mut self) {
        for (id, slot) in std::mem::take(&mut self.waiting) {
            let Some(conn) = self
                .conn(slot)
                .filter(|c| c.id == id && c.state == State::Waiting)
            else {
                continue;
            };
            match conn.claim.as_ref().map(|c| c.answer()) {
                Some(Answer::Sent) => self.answered(slot, Vec::new(), 0, false),
                Some(Answer::Writing) => {
                    if std::mem::replace(&mut conn.counted, false) {
                        self.active -= 1;
                    }
                }
                _ => self.waiting.push((id, slot)),
            }
        }
    }

    fn write(&mut self, slot: usize) -> Step {
        let keep_alive_idle = self.options.keep_alive;
        let header_timeout = self.options.header_timeout;
        let Some(conn) = self.conn(slot) else {
            return Step::Close;
        };
        match conn.flush() {
            Io::Done => {}
            Io::Blocked => return Step::Blocked,
            Io::Closed => return Step::Close,
        }
        conn.served += 1;
        conn.out = Vec::new();
        if conn.keep_alive {
            conn.state = State::Head;
            let idle = conn.buf.is_empty();
            self.set_deadline(
                slot,
                if idle {
                    keep_alive_idle
                } else {
                    header_timeout
                },
            );
            return Step::Again;
        }
        let _ = conn.stream.shutdown(Shutdown::Write);
        conn.state = State::Lingering;
        let id = conn.id;
        conn.buf = Vec::new();
        let was_counted = std::mem::replace(&mut conn.counted, false);
        if was_counted {
            self.active -= 1;
        }
        self.remember_lingering(id, slot);
        self.set_deadline(slot, LINGER);
        Step::Again
    }

    fn linger(&mut self, slot: usize) -> Step {
        match self.conn(slot).map(Conn::drain) {
            Some(Io::Blocked) => Step::Blocked,
            _ => Step::Close,
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
