//! Taking connections in: accepting them (and riding out a shortage of
//! descriptors), counting each against the limit or refusing it, and
//! registering it with the poll.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::EventLoop;
use crate::admin::conn::Conn;
use crate::logging::event;

/// After a failed `accept` (out of descriptors), when to try again.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);
/// The shortest time between two warnings about failing `accept`s.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

impl EventLoop {
    pub(super) fn accept(&mut self) {
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
}
