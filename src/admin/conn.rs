//! One connection of the admin server: its state, its request as parsed by
//! `httparse`, and the bytes of its answer.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;

use super::shared::Claim;

const MAX_HEADERS: usize = 32;
/// How much a lingering client may still send before it is cut off.
const LINGER_BYTES: usize = 256 * 1024;

/// Where a connection is in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Reading a request's line and headers (or idle between keep-alive
    /// requests, with nothing buffered).
    Head,
    /// Reading the body announced by the headers, up to `end` bytes of the
    /// buffer.
    Body { end: usize },
    /// The checks are running; their side writes the answer.
    Waiting,
    /// Writing the answer.
    Writing,
    /// Answered and our side closed: reading (and dropping) what the client
    /// still sends, so the close is never a reset that destroys the answer.
    Lingering,
}

/// A connection and everything the event loop knows about it.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    /// A duplicate of the socket for the checks' side to write answers
    /// with, made at the first request.
    pub(super) twin: Option<Arc<std::net::TcpStream>>,
    /// Unique for the server's life, in accept order: the oldest connection
    /// has the smallest id.
    pub(super) id: u64,
    pub(super) state: State,
    pub(super) deadline: Option<Instant>,
    /// The earliest deadline this connection has in the timer heap.
    pub(super) queued: Option<Instant>,
    pub(super) buf: Vec<u8>,
    /// The request being read when its body is awaited.
    pub(super) pending: Option<Request>,
    pub(super) out: Vec<u8>,
    pub(super) written: usize,
    /// Requests answered on this connection.
    pub(super) served: u64,
    /// The request whose answer is awaited (0: none).
    pub(super) awaiting: u64,
    /// While awaited: who writes the answer.
    pub(super) claim: Option<Arc<Claim>>,
    pub(super) keep_alive: bool,
    pub(super) head: bool,
    pub(super) lingered: usize,
    /// Our side is shut (by the checks' side, after its answer).
    pub(super) shut: bool,
    /// Watched for room to write, not only for bytes to read: only once a
    /// write has found the socket full, so that no connection wakes the
    /// loop each time its client acknowledges bytes.
    pub(super) writable: bool,
    /// Registered with the poll.
    pub(super) watched: bool,
    /// Counted against `max_connections` (not lingering, not rejected).
    pub(super) counted: bool,
}

impl Conn {
    pub(super) fn new(stream: TcpStream, id: u64, counted: bool) -> Self {
        Conn {
            stream,
            twin: None,
            id,
            state: State::Head,
            deadline: None,
            queued: None,
            buf: Vec::new(),
            pending: None,
            out: Vec::new(),
            written: 0,
            served: 0,
            awaiting: 0,
            claim: None,
            keep_alive: false,
            head: false,
            lingered: 0,
            shut: false,
            writable: false,
            watched: false,
            counted,
        }
    }

    /// Whether a newcomer may take this connection's place, and how
    /// willingly: `Some(0)` for one that has not completed a request,
    /// `Some(1)` for an idle keep-alive one, `None` for one that is busy.
    pub(super) fn eviction_rank(&self) -> Option<u8> {
        match self.state {
            State::Head | State::Body { .. } if self.served == 0 => Some(0),
            State::Head if self.buf.is_empty() => Some(1),
            State::Head | State::Body { .. } => Some(0),
            _ => None,
        }
    }
}

/// How a socket operation ended.
pub(super) enum Io {
    /// Done: bytes read, or everything written.
    Done,
    /// The socket would block: wait for its next event.
    Blocked,
    /// The peer closed, or the socket failed: close it.
    Closed,
}

impl Conn {
    /// Reads once into the buffer, never past `max + 1` bytes (one more
    /// than a request may have, to tell "too large" from "exactly full").
    pub(super) fn fill(&mut self, max: usize) -> Io {
        let mut chunk = [0u8; 4096];
        let room = (max + 1)
            .saturating_sub(self.buf.len())
            .clamp(1, chunk.len());
        loop {
            return match self.stream.read(&mut chunk[..room]) {
                Ok(0) => Io::Closed,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    Io::Done
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Io::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => Io::Closed,
            };
        }
    }

    /// Writes what is left of the answer.
    pub(super) fn flush(&mut self) -> Io {
        while self.written < self.out.len() {
            match self.stream.write(&self.out[self.written..]) {
                Ok(0) => return Io::Closed,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Io::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Io::Closed,
            }
        }
        Io::Done
    }

    /// Reads and drops what a lingering client still sends, until it
    /// closes (`Closed`: close ours) or has sent too much (`Closed` too).
    pub(super) fn drain(&mut self) -> Io {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return Io::Closed,
                Ok(n) => {
                    self.lingered += n;
                    if self.lingered > LINGER_BYTES {
                        return Io::Closed;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Io::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Io::Closed,
            }
        }
    }
}

/// A complete request's head, as the probes need it.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) method: String,
    pub(super) target: String,
    pub(super) accept: String,
    pub(super) keep_alive: bool,
    /// The `Content-Length` announced.
    pub(super) body: usize,
    /// Bytes of the request line and headers.
    pub(super) len: usize,
}

/// What the buffer holds so far.
pub(super) enum Parse {
    Partial,
    Done(Request),
    /// Answer with this status and body, then close.
    Refuse(u16, &'static str),
}

/// Whether the bytes from `from` on may end a request's head: parsing waits
/// for an empty line, so a client sending a byte at a time costs a scan of
/// that byte, not a parse of the whole buffer.
pub(super) fn may_end(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    buf.get(start..)
        .is_some_and(|tail| tail.windows(2).any(|w| w == b"\n\n" || w == b"\n\r"))
}

/// Parses a request's head. `keep_alive_allowed`: whether the server keeps
/// connections open at all.
pub(super) fn parse(buf: &[u8], max: usize, keep_alive_allowed: bool) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= max => {
            return Parse::Refuse(431, "431 request header fields too large");
        }
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parse::Refuse(431, "431 request header fields too large");
        }
        Err(_) => return Parse::Refuse(400, "400 bad request"),
    };
    let mut accept = Vec::new();
    let (mut close, mut keep) = (false, false);
    let mut body: Option<usize> = None;
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default();
        if h.name.eq_ignore_ascii_case("accept") {
            accept.push(value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            // Two different lengths, or one that is not a number, is the
            // start of request smuggling: refused.
            match (value.trim().parse::<usize>(), body) {
                (Ok(n), None) => body = Some(n),
                (Ok(n), Some(m)) if n == m => {}
                _ => return Parse::Refuse(400, "400 bad request"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Probes have no body; a chunked one is not worth a parser.
            return Parse::Refuse(400, "400 bad request");
        }
    }
    let version = req.version.unwrap_or(0);
    Parse::Done(Request {
        method: req.method.unwrap_or("GET").to_owned(),
        target: req.path.unwrap_or("/").to_owned(),
        accept: accept.join(","),
        keep_alive: keep_alive_allowed && if version == 1 { !close } else { keep },
        body: body.unwrap_or(0),
        len,
    })
}
