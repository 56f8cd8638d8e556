//! The answering half of the event loop: a request handed to the checks,
//! refusals, the answers the checks' side gives back, and writing what the
//! socket did not take at once.

use std::net::Shutdown;
use std::sync::Arc;

use mio::{Interest, Token};

use super::{EventLoop, LINGER, Step};
use crate::admin::conn::{Conn, Io, Request, State};
use crate::admin::shared::{Answer, Claim, Job};
use crate::admin::wire;
use crate::health::{ProbeRequest, ProbeResponse};
use crate::latch::lock;

impl EventLoop {
    /// Hands a complete request to the checks (`consumed`: its bytes in the
    /// buffer; what follows is the next request).
    pub(super) fn dispatch(&mut self, slot: usize, req: Request, consumed: usize) {
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
        let from_background = match &self.background {
            Some(probes) if !stopping && self.shared.is_alive() => probes.respond_from_background(
                ProbeRequest::new(&req.method, &req.target).accept(&req.accept),
            ),
            _ => None,
        };
        if let Some(resp) = from_background {
            self.respond(slot, &resp);
            return;
        }
        let Some(conn) = self.conn(slot) else {
            return;
        };
        if conn.twin.is_none() {
            conn.twin = socket2::SockRef::from(&conn.stream)
                .try_clone()
                .ok()
                .map(|s| Arc::new(std::net::TcpStream::from(s)));
        }
        let stream = conn.twin.clone();
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
        if stopping || self.jobs.unbounded_send(job).is_err() {
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
    pub(super) fn refuse(&mut self, slot: usize, status: u16, body: &str) {
        if let Some(conn) = self.conn(slot) {
            conn.keep_alive = false;
            conn.head = false;
            conn.pending = None;
        }
        self.respond(slot, &ProbeResponse::bad_request(status, body));
    }

    pub(super) fn respond(&mut self, slot: usize, resp: &ProbeResponse) {
        let Some(conn) = self.conn(slot) else {
            return;
        };
        conn.out = wire::response_bytes(resp, conn.head, conn.keep_alive);
        conn.written = 0;
        conn.state = State::Writing;
        self.set_deadline(slot, self.options.write_timeout);
    }

    pub(super) fn take_replies(&mut self) {
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

    /// An awaited connection whose answer the checks' side has written
    /// whole and shut (no reply comes for it) lingers; any other waits.
    pub(super) fn check_sent(&mut self, slot: usize) -> Step {
        let sent = self
            .conn(slot)
            .and_then(|c| c.claim.as_ref())
            .is_some_and(|c| c.answer() == Answer::Sent);
        if sent {
            self.sent(slot);
        }
        Step::Blocked
    }

    /// Takes back an awaited connection whose answer the checks' side has
    /// written whole, and shut: it lingers.
    pub(super) fn sent(&mut self, slot: usize) {
        if let Some(conn) = self.conn(slot) {
            conn.shut = true;
        }
        self.answered(slot, Vec::new(), 0, false);
    }

    /// Frees the places of the awaited connections whose answers the
    /// checks' side is writing: they close once written, and their clients,
    /// who may have their answers already, may be opening their next
    /// connections, which must not find them counted. Those whose answers
    /// are written whole are taken back.
    pub(super) fn settle_sent(&mut self) {
        for (id, slot) in std::mem::take(&mut self.waiting) {
            let Some(conn) = self
                .conn(slot)
                .filter(|c| c.id == id && c.state == State::Waiting)
            else {
                continue;
            };
            match conn.claim.as_ref().map(|c| c.answer()) {
                Some(Answer::Sent) => self.sent(slot),
                Some(Answer::Writing) => {
                    if std::mem::replace(&mut conn.counted, false) {
                        self.active -= 1;
                    }
                }
                _ => self.waiting.push((id, slot)),
            }
        }
    }

    pub(super) fn write(&mut self, slot: usize) -> Step {
        let keep_alive_idle = self.options.keep_alive;
        let header_timeout = self.options.header_timeout;
        // The connection borrowed apart from the poll, to watch it.
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return Step::Close;
        };
        match conn.flush() {
            Io::Done => {}
            Io::Blocked if conn.writable => return Step::Blocked,
            // Not watched yet: it will be, for writing too.
            Io::Blocked if !conn.watched => {
                conn.writable = true;
                return Step::Blocked;
            }
            Io::Blocked => {
                conn.writable = true;
                let interest = Interest::READABLE | Interest::WRITABLE;
                return match self.poll.registry().reregister(
                    &mut conn.stream,
                    Token(slot),
                    interest,
                ) {
                    Ok(()) => Step::Blocked,
                    Err(_) => Step::Close,
                };
            }
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
        if !std::mem::replace(&mut conn.shut, true) {
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
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

    pub(super) fn linger(&mut self, slot: usize) -> Step {
        match self.conn(slot).map(Conn::drain) {
            Some(Io::Blocked) => Step::Blocked,
            _ => Step::Close,
        }
    }
}
