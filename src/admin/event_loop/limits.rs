//! How many connections the loop holds: which one a newcomer over the limit
//! replaces, and which lingering one goes when there are too many.

use super::EventLoop;
use crate::admin::conn::{Conn, State};

/// The counted connection an accept-order entry names, if it is still
/// there.
fn live(conns: &[Option<Conn>], (id, slot): (u64, usize)) -> Option<&Conn> {
    conns
        .get(slot)
        .and_then(Option::as_ref)
        .filter(|c| c.id == id && c.counted)
}

impl EventLoop {
    /// The connection a newcomer over the limit replaces: the oldest that
    /// has not completed a request, else the oldest idle keep-alive one.
    ///
    /// `order` holds the counted connections in accept order, with stale
    /// entries (closed, or lingering since) dropped as they are met: under
    /// a slowloris crowd the front entry is the victim, so a newcomer costs
    /// O(1), not a scan of every connection.
    pub(super) fn victim(&mut self) -> Option<usize> {
        while let Some(&front) = self.order.front() {
            if live(&self.conns, front).is_some() {
                break;
            }
            self.order.pop_front();
        }
        let mut idle = None;
        for &(id, slot) in &self.order {
            match live(&self.conns, (id, slot)).and_then(Conn::eviction_rank) {
                Some(0) => return Some(slot),
                Some(_) if idle.is_none() => idle = Some(slot),
                _ => {}
            }
        }
        idle
    }

    /// Closes the connection that has lingered longest: answered clients
    /// that neither read nor close must not hold sockets without bound.
    pub(super) fn shed_lingering(&mut self) {
        while let Some((id, slot)) = self.lingering.pop_front() {
            let lingers = self
                .conns
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.id == id && c.state == State::Lingering);
            if lingers {
                self.close(slot);
                return;
            }
        }
    }

    /// Remembers a counted connection's place in the accept order, and
    /// drops stale entries once they outnumber the live ones.
    pub(super) fn enqueue(&mut self, id: u64, slot: usize) {
        self.order.push_back((id, slot));
        if self.order.len() > 2 * self.active + 64 {
            let conns = &self.conns;
            self.order.retain(|&entry| live(conns, entry).is_some());
        }
    }

    /// Remembers a connection's place among the lingering ones, and drops
    /// stale entries once they outnumber the live ones.
    pub(super) fn remember_lingering(&mut self, id: u64, slot: usize) {
        self.lingering.push_back((id, slot));
        if self.lingering.len() > 2 * self.total + 64 {
            let conns = &self.conns;
            self.lingering.retain(|&(id, slot)| {
                conns
                    .get(slot)
                    .and_then(Option::as_ref)
                    .is_some_and(|c| c.id == id && c.state == State::Lingering)
            });
        }
    }
}
