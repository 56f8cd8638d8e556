//! The runner's clock: deadlines, and the readings behind report stamps
//! (one read of the clock shared by every stamp taken before the next
//! poll of a cell or of the runner).

use std::task::Context as TaskContext;
use std::time::{Duration, Instant};

use super::Runner;

/// Whether `deadline` has passed; arms `timer` for it otherwise (only
/// then: a step that ends on its first poll costs no timer).
pub(super) fn expired(
    deadline: Option<Instant>,
    timer: &mut Option<futures_timer::Delay>,
    cx: &mut TaskContext<'_>,
) -> bool {
    use futures::future::FutureExt as _;
    let Some(deadline) = deadline else {
        return false;
    };
    let now = Instant::now();
    if now >= deadline {
        return true;
    }
    let timer = timer.get_or_insert_with(|| futures_timer::Delay::new(deadline - now));
    timer.poll_unpin(cx).is_ready()
}

pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `from + budget`; `None` without a budget or for one too long for the
/// clock (no deadline).
pub(super) fn deadline_after(from: Instant, budget: Option<Duration>) -> Option<Instant> {
    budget.and_then(|b| crate::timer::after(from, b))
}

/// The budget a call had, from `from` to `bound` (zero without a bound,
/// where no timeout can happen anyway).
pub(super) fn budget_of(bound: Option<Instant>, from: Instant) -> Duration {
    bound.map_or(Duration::ZERO, |b| b.saturating_duration_since(from))
}

impl Runner {
    /// The instant for a report stamp: the clock, read at most once between
    /// two polls of a cell or of the runner.
    pub(super) fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }

    /// Forgets the last clock read: time may have passed since.
    pub(super) fn clock_moved(&mut self) {
        self.now = None;
        self.stamp = None;
    }

    /// [`Runner::now`] and its report stamp, the offset from the epoch
    /// worked out once per clock read.
    pub(super) fn stamp(&mut self) -> (Instant, Duration) {
        let now = self.now();
        let epoch = self.handle.shared.epoch;
        let at = *self
            .stamp
            .get_or_insert_with(|| now.saturating_duration_since(epoch));
        (now, at)
    }

    /// Takes a reading made in the cell poll that just ended, and its
    /// stamp, as the runner's until the next poll.
    pub(super) fn adopt_clock(&mut self, now: Instant, at: Duration) {
        self.now = Some(now);
        self.stamp = Some(at);
    }

    pub(super) fn since_epoch(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.handle.shared.epoch)
    }
}
