//! Connection deadlines: a heap of `(deadline, slot, id)` with at most one
//! live entry per connection, and what a passed deadline means in each
//! state.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use super::EventLoop;
use crate::admin::conn::State;
use crate::admin::options::deadline;
use crate::admin::shared::Answer;
use crate::health::ProbeResponse;

impl EventLoop {
    pub(super) fn set_deadline(&mut self, slot: usize, timeout: Duration) {
        let now = Instant::now();
        let Some(conn) = self.conn(slot) else {
            return;
        };
        conn.deadline = deadline(now, timeout);
        if let Some(d) = conn.deadline {
            if conn.queued.is_none_or(|q| d < q) {
                conn.queued = Some(d);
                let id = conn.id;
                self.timers.push(Reverse((d, slot, id)));
            }
        }
    }

    pub(super) fn fire_timers(&mut self, now: Instant) {
        while let Some(&Reverse((t, slot, id))) = self.timers.peek() {
            if t > now {
                return;
            }
            self.timers.pop();
            let Some(conn) = self
                .conn(slot)
                .filter(|c| c.id == id && c.queued == Some(t))
            else {
                continue;
            };
            conn.queued = None;
            match conn.deadline {
                Some(d) if d <= now => {
                    self.expire(slot);
                    self.drive(slot);
                }
                Some(d) => {
                    conn.queued = Some(d);
                    self.timers.push(Reverse((d, slot, id)));
                }
                None => {}
            }
        }
    }

    fn expire(&mut self, slot: usize) {
        let Some(conn) = self.conn(slot) else {
            return;
        };
        match conn.state {
            // Idle: nothing to answer.
            State::Head if conn.buf.is_empty() => self.close(slot),
            State::Head | State::Body { .. } => self.refuse(slot, 408, "408 request timeout"),
            State::Waiting => match conn.claim.take().map_or(Ok(()), |c| c.take()) {
                Ok(()) | Err(Answer::Open | Answer::Loop) => {
                    conn.keep_alive = false;
                    conn.awaiting = 0;
                    let resp = ProbeResponse::bad_request(503, "503 checks did not answer in time");
                    self.respond(slot, &resp);
                }
                // The answer came just in time.
                Err(Answer::Sent) => self.sent(slot),
                // Being written: what the client gets is the checks' side's
                // to finish.
                Err(Answer::Writing | Answer::Kept) => self.close(slot),
            },
            State::Writing | State::Lingering => self.close(slot),
        }
    }
}
