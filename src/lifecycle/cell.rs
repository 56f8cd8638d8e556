//! A component's cell: the slot through which the runner commands the
//! component's one future ("start now", "stop now", "close now", …) and
//! reads what it did ("started", "ready", "`run` ended", …), and the waker
//! that puts the cell on the runner's ready queue, so the runner polls only
//! the cells that were woken.
//!
//! A cell holds no schedule: which component starts, stops or closes when
//! is the runner's choice. Any number of cells can be in any step at once.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::task::ArcWake;

use crate::latch::{Host, Latch, LatchState, lock};

mod messages;
mod queue;

pub(crate) use self::messages::{Cmd, Done, Launch, Launched, RunExit, SpawnedOutput, Spawner};
pub(crate) use self::queue::ReadyQueue;

/// The commands in, the results out.
#[derive(Default)]
struct Io {
    cmd: Option<Cmd>,
    done: Option<Done>,
    run_end: Option<RunExit>,
}

/// Bits of [`Cell::has`]: which of [`Io`]'s slots is filled.
const CMD: u8 = 1;
const DONE: u8 = 2;
const RUN_END: u8 = 4;
/// `run` ended after a call's end was put, in the same poll: the runner
/// must read the call's end first.
const LATE: u8 = 8;
/// The launch in flight got past its `start`.
const STARTED: u8 = 16;
/// The call's end is `Ok(())`, held in the bit alone, not in [`Io`]: the
/// end of most stops and closes.
const DONE_OK: u8 = 32;
/// `run` returned `Ok(())`, held in the bit alone: the end of most runs.
const RUN_OK: u8 = 64;
/// The command is a stop, whose deadline is in [`Cell::stop_deadline`],
/// not in [`Io`] (with [`CMD`]).
const STOP: u8 = 128;
/// No deadline, in [`Cell::stop_deadline`].
const NO_DEADLINE: u64 = u64::MAX;

/// One component's cell: what the runner and the component's future share.
/// Its waker queues it for the runner. It holds the component's stop latch
/// too, in the same allocation. It never holds the component: a component
/// that keeps its stop latch must not keep itself alive.
pub(crate) struct Cell {
    /// Four bytes, beside the flags: room for `stop_deadline` without a
    /// larger cell.
    index: u32,
    queued: AtomicBool,
    /// Set by every wake: `run` is polled again only after one, not on
    /// every poll a command brings.
    due: AtomicBool,
    queue: Arc<ReadyQueue>,
    /// Which slots of `io` are filled: most polls find them empty and
    /// need no lock.
    has: AtomicU8,
    io: Mutex<Io>,
    /// A stop command's deadline, in nanoseconds from the epoch
    /// ([`NO_DEADLINE`]: none), put and taken without the lock.
    stop_deadline: AtomicU64,
    pub(crate) stop: LatchState,
}

impl Cell {
    pub(crate) fn new(index: usize, queue: Arc<ReadyQueue>) -> Self {
        Cell {
            // Each component takes over a kilobyte: 2^32 of them would not
            // fit in memory.
            index: u32::try_from(index).expect("fewer than 2^32 components"),
            queued: AtomicBool::new(false),
            due: AtomicBool::new(false),
            queue,
            has: AtomicU8::new(0),
            io: Mutex::new(Io::default()),
            stop_deadline: AtomicU64::new(NO_DEADLINE),
            stop: LatchState::default(),
        }
    }

    /// The component's index: its report row's.
    pub(crate) fn index(&self) -> usize {
        self.index as usize
    }

    /// Puts a command, in place of any not taken yet.
    ///
    /// Commands are put by the runner and taken by the component's future,
    /// which only the runner polls (a spawned `run` takes none): a put and
    /// a take never overlap, so the bits' two steps here and in
    /// [`Cell::take_cmd`] need not be one.
    pub(crate) fn put_cmd(&self, value: Cmd) {
        lock(&self.io).cmd = Some(value);
        if self.has.fetch_or(CMD, Ordering::AcqRel) & STOP != 0 {
            self.has.fetch_and(!STOP, Ordering::AcqRel);
        }
    }

    /// Puts a stop command (its deadline's offset from the epoch) without
    /// the lock, unless another command waits to be taken (it is dropped
    /// in its place, under the lock) or the deadline does not fit.
    pub(crate) fn put_stop(&self, deadline: Option<Duration>) {
        let nanos = match deadline {
            None => Some(NO_DEADLINE),
            Some(d) => u64::try_from(d.as_nanos())
                .ok()
                .filter(|&n| n != NO_DEADLINE),
        };
        match nanos {
            Some(n) if self.has.load(Ordering::Acquire) & CMD == 0 => {
                self.stop_deadline.store(n, Ordering::Relaxed);
                // Its release makes the deadline visible with the bit.
                self.has.fetch_or(CMD | STOP, Ordering::AcqRel);
            }
            _ => self.put_cmd(Cmd::Stop(deadline)),
        }
    }

    /// Empty without a lock when nothing was put: that check is inlined
    /// where it is asked, on every poll, and only a filled slot costs a
    /// call.
    #[inline]
    pub(crate) fn take_cmd(&self) -> Option<Cmd> {
        if self.has.load(Ordering::Acquire) & CMD == 0 {
            return None;
        }
        self.take_filled_cmd()
    }

    /// Takes the command put: a stop put without the lock is read from its
    /// bit and its deadline.
    #[inline(never)]
    fn take_filled_cmd(&self) -> Option<Cmd> {
        if self.has.load(Ordering::Acquire) & STOP != 0 {
            let nanos = self.stop_deadline.load(Ordering::Relaxed);
            self.has.fetch_and(!(CMD | STOP), Ordering::AcqRel);
            let deadline = (nanos != NO_DEADLINE).then(|| Duration::from_nanos(nanos));
            return Some(Cmd::Stop(deadline));
        }
        self.take_filled(|io| io.cmd.take(), CMD)
    }

    /// Takes what a filled slot of [`Io`] holds, and clears its bit.
    #[inline(never)]
    fn take_filled<T>(&self, take: impl FnOnce(&mut Io) -> Option<T>, bit: u8) -> Option<T> {
        let value = take(&mut lock(&self.io));
        self.has.fetch_and(!bit, Ordering::AcqRel);
        value
    }

    /// Puts a call's end; an `Ok(())` needs no lock.
    pub(crate) fn put_done(&self, value: Done) {
        if matches!(value, Done::Unit(Ok(()))) {
            self.has.fetch_or(DONE | DONE_OK, Ordering::AcqRel);
            return;
        }
        lock(&self.io).done = Some(value);
        self.has.fetch_or(DONE, Ordering::AcqRel);
    }

    /// Empty without a lock when nothing was put, or `Ok(())`.
    pub(crate) fn take_done(&self) -> Option<Done> {
        let has = self.has.load(Ordering::Acquire);
        if has & DONE == 0 {
            return None;
        }
        if has & DONE_OK != 0 {
            self.has.fetch_and(!(DONE | DONE_OK), Ordering::AcqRel);
            return Some(Done::Unit(Ok(())));
        }
        let value = lock(&self.io).done.take();
        self.has.fetch_and(!DONE, Ordering::AcqRel);
        value
    }

    /// Puts how `run` ended; an `Ok(())` needs no lock.
    pub(crate) fn put_run_end(&self, value: RunExit) {
        let late = if self.has_done() { LATE } else { 0 };
        if matches!(value, RunExit::Done(Ok(()))) {
            self.has.fetch_or(RUN_END | RUN_OK | late, Ordering::AcqRel);
            return;
        }
        lock(&self.io).run_end = Some(value);
        self.has.fetch_or(RUN_END | late, Ordering::AcqRel);
    }

    /// Empty without a lock when nothing was put, or `Ok(())`.
    pub(crate) fn take_run_end(&self) -> Option<RunExit> {
        let has = self.has.load(Ordering::Acquire);
        if has & RUN_END == 0 {
            return None;
        }
        if has & RUN_OK != 0 {
            self.has
                .fetch_and(!(RUN_END | RUN_OK | LATE), Ordering::AcqRel);
            return Some(RunExit::Done(Ok(())));
        }
        let value = lock(&self.io).run_end.take();
        self.has.fetch_and(!(RUN_END | LATE), Ordering::AcqRel);
        value
    }

    /// Takes a stop that ended whole in one poll: `run` returned `Ok(())`
    /// and then the call `Ok(())`, in that order; leaves anything else in
    /// place. One write for the two ends.
    pub(crate) fn take_stopped_ok(&self) -> bool {
        const WHOLE: u8 = RUN_END | RUN_OK | DONE | DONE_OK;
        if self.has.load(Ordering::Acquire) & (WHOLE | LATE) != WHOLE {
            return false;
        }
        self.has.fetch_and(!WHOLE, Ordering::AcqRel);
        true
    }

    /// Whether `run` ended after the call's end that waits to be read.
    pub(crate) fn run_end_is_late(&self) -> bool {
        let has = self.has.load(Ordering::Acquire);
        has & LATE != 0 && has & DONE != 0
    }

    /// Marks the component started: its launch's `start` returned `Ok`.
    pub(crate) fn set_started(&self) {
        self.has.fetch_or(STARTED, Ordering::AcqRel);
    }

    /// Whether the launch in flight got past its `start`; clears it.
    pub(crate) fn take_started(&self) -> bool {
        self.has.fetch_and(!STARTED, Ordering::AcqRel) & STARTED != 0
    }

    /// Whether the cell was woken and not polled since.
    pub(crate) fn is_queued(&self) -> bool {
        self.queued.load(Ordering::SeqCst)
    }

    /// Whether a call's end waits to be read.
    pub(crate) fn has_done(&self) -> bool {
        self.has.load(Ordering::Acquire) & DONE != 0
    }

    /// Empties every slot and drops the wakers registered on the stop
    /// latch. A command left in its slot holds the cell
    /// (through the stop latch), and so does a waker registered on the
    /// latch (the cell's own, from `run`): cycles the runner breaks when
    /// it drops the component. Dropped after the lock.
    pub(crate) fn clear(&self) {
        drop(self.take_cmd());
        self.stop.release_wakers();
    }

    /// Whether the cell was woken since `run` was last polled (or `run`
    /// was just put in flight); clears it.
    ///
    /// Read first, and swapped only if set: a swap that reads `false`
    /// writes the `false` already there, so the load alone is the same
    /// answer, without the write most polls would otherwise make.
    #[inline]
    pub(crate) fn take_due(&self) -> bool {
        self.due.load(Ordering::SeqCst) && self.due.swap(false, Ordering::SeqCst)
    }

    /// Makes `run` due for a poll.
    pub(crate) fn set_due(&self) {
        self.due.store(true, Ordering::SeqCst);
    }

    /// Sets the component's stop latch, for the runner about to poll the
    /// cell: a waiter that would wake this cell (its `run`, idle on the
    /// latch) is not woken, which would only queue the cell for a poll
    /// that comes anyway; `run` is made due instead. Other waiters are
    /// woken.
    pub(crate) fn set_stop(self: &Arc<Self>, stop: &Latch) {
        let own = futures::task::waker_ref(self);
        if stop.set_polled_by(&own) {
            self.set_due();
        }
    }

    /// Called by the runner right before it polls the cell: a wake during
    /// that poll queues the cell again. A cell found not queued is not
    /// written to: a wake from now on queues it, and it is polled again.
    #[inline]
    pub(crate) fn dequeue(&self) {
        if self.queued.load(Ordering::SeqCst) {
            self.queued.store(false, Ordering::SeqCst);
        }
    }
}

impl Cell {
    /// What the cell's waker does: queue the cell, once, and wake the
    /// runner.
    pub(crate) fn wake(&self) {
        self.due.store(true, Ordering::SeqCst);
        if !self.queued.swap(true, Ordering::SeqCst) {
            self.queue.push(self.index as usize);
        }
    }
}

/// `futures`' rather than `std`'s `Wake`: the runner polls a cell with a
/// waker borrowed from its `Arc`, and keeps no waker per component.
impl ArcWake for Cell {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        Cell::wake(arc_self);
    }
}

impl Host for Cell {
    fn latch_state(&self) -> &LatchState {
        &self.stop
    }
}

#[cfg(test)]
mod tests;
