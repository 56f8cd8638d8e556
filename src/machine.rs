//! The phase machine: the one record of where a lifecycle is.
//!
//! Every answer about the lifecycle's progress — its [`Phase`], whether
//! shutdown has begun, whether the launch completed, whether the shutdown
//! was forced, whether `run` has stopped — is read from one state byte,
//! never stored a second time. The byte changes only through
//! [`State::after`], the table of legal [`Transition`]s, applied under one
//! lock that also stamps the moment each phase was entered. The futures that
//! wait for these answers are [`Latch`](crate::Latch) gates over the same
//! byte, woken by the transition that opens them.
//!
//! ```text
//! Created ─ Launch ─> Launching ─ Ready ─> Running
//!    └──────────────────┴─────────────────────┴─ Shutdown ─> LameDuck
//! LameDuck ─ Advance ─> Draining ─> Flushing ─> Stopping   (forward only)
//! any of them ─ Stop ─> Stopped (final);  Force: once, while shutting down
//! ```

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::cause::ShutdownCause;
use crate::latch::{Gates, Latch, WaitList, lock};
use crate::phase::Phase;

/// A lifecycle's state in one byte: the last phase it reached while live
/// (never [`Phase::Stopped`]) and three marks. Stopping is a mark rather
/// than a phase so that the phase it stopped in still says whether shutdown
/// had begun.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct State(u8);

const PHASE: u8 = 0b0111;
/// The launch completed: every component was ready at once. Set once.
const READY: u8 = 0b1000;
/// The shutdown was forced.
const FORCED: u8 = 0b1_0000;
/// `run` returned or was dropped, or the lifecycle was dropped unrun.
const STOPPED: u8 = 0b10_0000;

/// A change of [`State`]; [`State::after`] says which are legal where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transition {
    /// `run` is polled: `Created` to `Launching`.
    Launch,
    /// Every component is ready: `Launching` to `Running`, marked ready.
    Ready,
    /// Shutdown begins: from `Created`, `Launching` or `Running` to
    /// `LameDuck`.
    Shutdown,
    /// The shutdown moves on to `Draining`, `Flushing` or `Stopping`,
    /// forward only.
    Advance(Phase),
    /// The shutdown is forced: once, while shutting down.
    Force,
    /// `run` is over. Final: nothing changes after it but the start of a
    /// shutdown that had not begun.
    Stop,
}

/// What a lifecycle can be waited for: each gate, once open, stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Shutdown has begun.
    Shutdown = 0,
    /// The launch completed.
    Ready = 1,
    /// `run` is over.
    Stopped = 2,
    /// The shutdown was forced.
    Forced = 3,
}

const GATES: [Gate; 4] = [Gate::Shutdown, Gate::Ready, Gate::Stopped, Gate::Forced];

impl State {
    const INITIAL: State = State(Phase::Created as u8);

    /// The phase as users see it.
    pub(crate) fn phase(self) -> Phase {
        if self.is_stopped() {
            Phase::Stopped
        } else {
            self.reached()
        }
    }

    /// The last phase reached before stopping.
    fn reached(self) -> Phase {
        Phase::from_u8(self.0 & PHASE)
    }

    /// Whether shutdown has begun (it stays begun once stopped).
    pub(crate) fn is_shutting_down(self) -> bool {
        self.reached() >= Phase::LameDuck
    }

    /// Whether the launch completed (it stays completed through shutdown).
    pub(crate) fn was_ready(self) -> bool {
        self.0 & READY != 0
    }

    /// Whether the shutdown was forced.
    pub(crate) fn is_forced(self) -> bool {
        self.0 & FORCED != 0
    }

    /// Whether `run` is over.
    pub(crate) fn is_stopped(self) -> bool {
        self.0 & STOPPED != 0
    }

    /// Whether the lifecycle has stopped serving: shutdown began, or it
    /// stopped without one (its `run` dropped, or never run).
    pub(crate) fn is_over(self) -> bool {
        self.is_shutting_down() || self.is_stopped()
    }

    fn is_open(self, gate: Gate) -> bool {
        match gate {
            Gate::Shutdown => self.is_shutting_down(),
            Gate::Ready => self.was_ready(),
            Gate::Stopped => self.is_stopped(),
            Gate::Forced => self.is_forced(),
        }
    }

    /// The state after `transition`, or `None` where it is illegal. The
    /// only place a state is made, so no other state is reachable.
    pub(crate) fn after(self, transition: Transition) -> Option<State> {
        use Phase::*;
        // A lifecycle stopped without a shutdown (its `run` dropped, or
        // never run) still takes a request for one: the handle answers as
        // it would have, and the report keeps the cause.
        if self.is_stopped() && transition != Transition::Shutdown {
            return None;
        }
        let reached = self.reached();
        let to = |phase: Phase, mark: u8| Some(State((self.0 & !PHASE) | mark | phase as u8));
        match transition {
            Transition::Launch if reached == Created => to(Launching, 0),
            Transition::Ready if reached == Launching => to(Running, READY),
            Transition::Shutdown if reached < LameDuck => to(LameDuck, 0),
            Transition::Advance(p @ (Draining | Flushing | Stopping))
                if reached >= LameDuck && reached < p =>
            {
                to(p, 0)
            }
            Transition::Force if self.is_shutting_down() && !self.is_forced() => {
                Some(State(self.0 | FORCED))
            }
            Transition::Stop => Some(State(self.0 | STOPPED)),
            _ => None,
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("phase", &self.phase())
            .field("shutting_down", &self.is_shutting_down())
            .field("ready", &self.was_ready())
            .field("forced", &self.is_forced())
            .finish()
    }
}

/// A transition that happened: the states before and after. The gates it
/// opened are woken by [`PhaseMachine::wake`], which the caller runs once
/// it holds no lock (a waker may call back into the lifecycle).
#[derive(Clone, Copy, Debug)]
#[must_use = "the gates it opened must be woken with `PhaseMachine::wake`"]
pub(crate) struct Change {
    pub(crate) from: State,
    pub(crate) to: State,
}

/// What the transitions recorded: the moment each phase was entered, and
/// why the shutdown began.
#[derive(Clone, Debug, Default)]
pub(crate) struct Moments {
    entered: [Option<Instant>; 8],
    cause: Option<ShutdownCause>,
}

impl Moments {
    /// When `phase` was entered, if it was. A shutdown requested after the
    /// stop counts as entering `LameDuck`.
    pub(crate) fn entered(&self, phase: Phase) -> Option<Instant> {
        self.entered[phase as usize]
    }

    /// When shutdown began, if it has.
    pub(crate) fn shutdown_at(&self) -> Option<Instant> {
        self.entered(Phase::LameDuck)
    }

    /// Why shutdown began, if it has.
    pub(crate) fn cause(&self) -> Option<&ShutdownCause> {
        self.cause.as_ref()
    }
}

/// The phase machine of one lifecycle. See the module docs.
pub(crate) struct PhaseMachine {
    /// A [`State`]: read without a lock, written only under `moments`.
    state: AtomicU8,
    /// Components admitted and not yet ready: one added while running keeps
    /// the lifecycle from counting as launched until it is ready. A count,
    /// not a phase: it goes up and down.
    pending: AtomicUsize,
    /// Serializes transitions and holds what they record.
    moments: Mutex<Moments>,
    /// Per [`Gate`], the tasks waiting for it.
    waiters: [WaitList; 4],
}

impl PhaseMachine {
    pub(crate) fn new() -> Self {
        PhaseMachine {
            state: AtomicU8::new(State::INITIAL.0),
            pending: AtomicUsize::new(0),
            moments: Mutex::new(Moments::default()),
            waiters: Default::default(),
        }
    }

    /// A latch set when `gate` opens: a view of the state, storing nothing.
    pub(crate) fn latch(self: &Arc<Self>, gate: Gate) -> Latch {
        Latch::gate(self.clone(), gate as u8)
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        State(self.state.load(Ordering::Acquire))
    }

    /// Applies `transition` if it is legal now; otherwise changes nothing.
    pub(crate) fn apply(&self, transition: Transition) -> Option<Change> {
        self.apply_with(transition, |_| {})
    }

    /// Begins shutdown for `cause`, if it has not begun and `run` is not
    /// over; the first cause stays.
    pub(crate) fn begin_shutdown(&self, cause: ShutdownCause) -> Option<Change> {
        self.apply_with(Transition::Shutdown, |m| m.cause = Some(cause))
    }

    fn apply_with(
        &self,
        transition: Transition,
        record: impl FnOnce(&mut Moments),
    ) -> Option<Change> {
        let mut moments = lock(&self.moments);
        let from = self.state();
        let to = from.after(transition)?;
        let entered = if to.is_stopped() != from.is_stopped() {
            Some(Phase::Stopped)
        } else {
            Some(to.reached()).filter(|&p| p != from.reached())
        };
        if let Some(phase) = entered {
            moments.entered[phase as usize] = Some(Instant::now());
        }
        record(&mut moments);
        // Published last, under the lock: whoever sees the new state and
        // then takes the lock finds its moments.
        self.state.store(to.0, Ordering::Release);
        Some(Change { from, to })
    }

    /// Wakes the waiters of every gate `change` opened.
    pub(crate) fn wake(&self, change: Option<Change>) {
        let Some(Change { from, to }) = change else {
            return;
        };
        for gate in GATES {
            if to.is_open(gate) && !from.is_open(gate) {
                self.waiters[gate as usize].wake();
            }
        }
    }

    /// The state and its moments, taken together.
    pub(crate) fn snapshot(&self) -> (State, Moments) {
        let moments = lock(&self.moments);
        (self.state(), moments.clone())
    }

    /// When shutdown began, if it has.
    pub(crate) fn shutdown_at(&self) -> Option<Instant> {
        lock(&self.moments).shutdown_at()
    }

    /// Why shutdown began, if it has.
    pub(crate) fn cause(&self) -> Option<ShutdownCause> {
        lock(&self.moments).cause.clone()
    }

    /// Counts a component admitted, not yet ready.
    pub(crate) fn admit(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// A component admitted is ready, or its admission was undone.
    pub(crate) fn settle(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether every component admitted so far is ready: the launch
    /// completed, and no component added since is still launching.
    pub(crate) fn is_launched(&self) -> bool {
        self.state().was_ready() && self.pending.load(Ordering::Acquire) == 0
    }

    /// Whether the lifecycle is launched and shutdown has not begun.
    pub(crate) fn is_ready(&self) -> bool {
        let state = self.state();
        state.was_ready() && !state.is_shutting_down() && self.pending.load(Ordering::Acquire) == 0
    }
}

impl Gates for PhaseMachine {
    fn is_open(&self, gate: u8) -> bool {
        self.state().is_open(GATES[usize::from(gate)])
    }

    fn waiters(&self, gate: u8) -> &WaitList {
        &self.waiters[usize::from(gate)]
    }
}

#[cfg(test)]
mod tests;
