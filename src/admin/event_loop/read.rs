//! Reading a request: the head parsed as soon as it may be complete, a
//! body announced by it read up to the limit, each with its deadline.

use super::{EventLoop, Step};
use crate::admin::conn::{self, Io, Parse, Request, State};

/// What the buffer gave.
enum Got {
    Refuse(u16, &'static str),
    /// A request, and the bytes it took.
    Request(Request, usize),
    /// Headers announcing a body: read it.
    Body,
}

impl EventLoop {
    pub(super) fn read_request(&mut self, slot: usize) -> Step {
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
}
