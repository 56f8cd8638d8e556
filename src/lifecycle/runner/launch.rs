//! Launch: start each component once every component it depends on is
//! ready, put its `run` in flight, wait for it to be ready; every
//! component whose dependencies are ready is launched at once. Then serve
//! registrations until shutdown.
//!
//! One flat loop does it all: each pass takes the registrations that
//! arrived, starts what the graph says may start, and moves each component
//! in launch one step on (its call ended, its deadline passed, its backoff
//! is over). A component's own sequence — `start` within its timeout, then
//! readiness attempts with their timeout and backoff — is the same whatever
//! else launches beside it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures::stream::StreamExt as _;
use futures_timer::Delay;

use super::drive::Interrupt;
pub(super) use super::outcomes::take_startable;
use super::shutdown::InFlight;
use super::{Runner, Slot, deadline_after};
use crate::latch::{Latch, lock};
use crate::lifecycle::cell::{Cell, Cmd, Launch};
use crate::lifecycle::parts::Registration;
use crate::logging::event;
use crate::phase::Step;
use crate::report::ComponentState;

/// A component in launch: where it stands, and the deadline of that step.
pub(super) struct Launching {
    pub(super) index: usize,
    /// When its `start` was issued, as its report stamps it (since the
    /// lifecycle's epoch): how long its launch took is counted from it
    /// without another difference of clock readings.
    pub(super) start_at: Duration,
    pub(super) step: LaunchStep,
    /// Whether the call of this step was issued.
    pub(super) issued: bool,
    /// The end of the call's budget or of the backoff.
    pub(super) deadline: Option<Instant>,
    /// Armed only once a step does not end on its first poll.
    pub(super) timer: Option<Delay>,
    /// For a restart: the wait before the component starts again, and its
    /// `close` if its stop overran.
    pub(super) restart: Option<Box<Restarting>>,
}

/// What a component being restarted carries through its stop.
pub(super) struct Restarting {
    pub(super) wait: Duration,
    pub(super) close: Option<InFlight>,
    /// Whether its `stop` was called (not with a stop budget of zero).
    pub(super) stop_called: bool,
}

#[derive(Clone, Copy)]
pub(super) enum LaunchStep {
    /// Its launch: `start`, then readiness, walked by its own future.
    Launch,
    /// A restart: its `stop` call (its `run` failed).
    Restop,
    /// A restart: its `close`, the stop having overrun.
    Reclose,
    /// A restart: the wait before it starts again.
    Rewait,
}

/// What one look at a component in launch came to.
#[derive(PartialEq, Eq)]
pub(super) enum Moved {
    No,
    On,
    Done,
}

impl Moved {
    /// For a `retain_mut` over the entries in progress: whether to keep
    /// this one, noting in `moved` whether it moved.
    pub(super) fn keep(self, moved: &mut bool) -> bool {
        *moved |= !matches!(self, Moved::No);
        !matches!(self, Moved::Done)
    }
}

impl Launching {
    pub(super) fn new(index: usize, step: LaunchStep, deadline: Option<Instant>) -> Self {
        Launching {
            index,
            start_at: Duration::ZERO,
            step,
            issued: false,
            deadline,
            timer: None,
            restart: None,
        }
    }

    /// Whether the step's deadline has passed; arms its timer otherwise.
    pub(super) fn expired(&mut self, cx: &mut TaskContext<'_>) -> bool {
        super::expired(self.deadline, &mut self.timer, cx)
    }
}

impl Runner {
    /// Launches every registered component, each once its dependencies
    /// are ready, then serves dynamic registrations, until shutdown is
    /// requested; what is in launch then is cancelled.
    pub(super) async fn launch_and_serve(&mut self) {
        while let Some(reg) = self.initial.next() {
            self.add_slot(reg);
        }
        let _ = self
            .drive(None, Interrupt::Shutdown, |s, cx| s.poll_launch(cx))
            .await;
        self.cancel_launch();
    }

    /// A component registered, waiting for the graph to let it start.
    fn add_slot(&mut self, reg: Registration) {
        let index = self.slots.len();
        let cell = Arc::new(Cell::new(index, self.queue.clone()));
        self.slots.push(Slot {
            name: reg.name,
            options: reg.options,
            stop: Latch::hosted(cell.clone()),
            task: Some(
                reg.component
                    .launch(cell.clone(), self.config.spawner.clone()),
            ),
            cell,
            run_aborted: false,
            busy: None,
            run_started: false,
            run_done: false,
            ready: false,
            stopping: false,
            close_only: false,
            restart: reg.restart,
        });
        self.unready += 1;
        self.graph_moved = true;
    }

    /// One pass of the launch: registrations, starts, each component in
    /// launch moved on, until nothing moves. Ready only if registrations
    /// can no longer come, or shutdown began as every component was ready.
    fn poll_launch(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        let shared = self.handle.shared.clone();
        // The phase as one load, not through the shutdown latch's gate: a
        // `start` or `ready` may begin the shutdown, so it is read again
        // before each step, but cheaply.
        let shutting_down = || shared.machine.state().is_shutting_down();
        // Whether the runner's waker is registered on the channel in this
        // poll: a poll of it that found nothing did so, and the waker stays
        // until a registration wakes it, so the passes after it only look,
        // without registering it again. (A poll that found a registration
        // registered nothing.)
        let mut registered = false;
        loop {
            loop {
                let next = if registered {
                    self.look_for_registration()
                } else {
                    let next = self.register_rx.poll_next_unpin(cx);
                    registered = next.is_pending();
                    next
                };
                match next {
                    Poll::Ready(Some(reg)) => self.add_slot(reg),
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }
            if std::mem::take(&mut self.graph_moved) {
                let mut st = lock(&shared.state);
                take_startable(&mut st.graph, &mut self.startable);
            }
            let mut moved = false;
            // Drained rather than consumed: the buffer is kept, so a start
            // costs no allocation.
            let mut startable = std::mem::take(&mut self.startable);
            for index in startable.drain(..) {
                if shutting_down() {
                    self.startable.push(index);
                    continue;
                }
                self.begin_start(index);
                moved = true;
            }
            startable.append(&mut self.startable);
            self.startable = startable;
            let mut launching = std::mem::take(&mut self.launching);
            launching.retain_mut(|l| {
                if shutting_down() {
                    return true;
                }
                self.advance(l, cx).keep(&mut moved)
            });
            launching.append(&mut self.launching);
            self.launching = launching;
            if !moved || shutting_down() {
                break;
            }
        }
        if self.launching.is_empty() && self.unready == 0 && !shared.machine.state().was_ready() {
            if !shared.mark_ready() {
                return Poll::Ready(());
            }
            event!(info, {}, "every component is ready");
        }
        Poll::Pending
    }

    /// Begins the launch of a component the graph let start. Its
    /// registration was sent before the graph linked it.
    fn begin_start(&mut self, index: usize) {
        while self.slots.len() <= index {
            match self.take_registration() {
                Some(reg) => self.add_slot(reg),
                None => return,
            }
        }
        // Stamped when its start is issued.
        let l = Launching::new(index, LaunchStep::Launch, None);
        self.launching.push(l);
    }

    /// Issues a component's launch: a new life, whose report stamps
    /// replace those of the life before (its failures stay). Not issued,
    /// and handed back to the graph, if a dependency stopped being ready
    /// since the graph let it start.
    fn issue_launch(&mut self, l: &mut Launching) -> bool {
        let index = l.index;
        if self.restarted
            && !lock(&self.handle.shared.state)
                .graph
                .still_startable(index as u32)
        {
            return false;
        }
        // Right after the end of the launch before it (the default chain),
        // the clock read that ended it.
        let (t0, at) = self.stamp();
        let name = &self.slots[index].name;
        event!(debug, { component = name, step = Step::Start }, "starting `{name}`");
        self.update(index, |r| {
            r.state = ComponentState::Starting;
            r.start_at = Some(at);
            r.start_took = None;
            r.ready_at = None;
            r.attempts = 0;
            r.run_ended_at = None;
            r.stop_at = None;
            r.stop_took = None;
            r.close_at = None;
            r.close_took = None;
        });
        l.start_at = at;
        l.issued = true;
        let slot = &self.slots[index];
        let deadline = deadline_after(t0, slot.options.start_timeout);
        let busy = self.config.spawner.is_some().then(|| {
            let busy = Arc::new(AtomicBool::new(false));
            self.slots[index].busy = Some(busy.clone());
            busy
        });
        let budgets = self.slots[index].options.clone();
        let cx = self.context(index, deadline);
        self.command(
            index,
            Cmd::Launch(Launch {
                cx,
                t0,
                busy,
                budgets,
            }),
        );
        true
    }

    /// Moves a component in launch one step on, if it can.
    fn advance(&mut self, l: &mut Launching, cx: &mut TaskContext<'_>) -> Moved {
        let index = l.index;
        match l.step {
            LaunchStep::Launch if !l.issued => {
                // The end of a `run` held back behind a call's end comes
                // before the next call.
                self.flush_deferred();
                if self.handle.shared.machine.state().is_shutting_down() {
                    return Moved::No;
                }
                if !self.issue_launch(l) {
                    return Moved::Done;
                }
                // Issuing it polled its cell, and no other since: a launch
                // that ended in that poll ended with the runner's latest
                // view of the clock.
                match self.slots[index].cell.take_done() {
                    Some(done) => self.launch_ended(l, done, true),
                    None => Moved::On,
                }
            }
            LaunchStep::Restop | LaunchStep::Reclose | LaunchStep::Rewait => {
                self.advance_restart(l, cx)
            }
            LaunchStep::Launch => match self.slots[index].cell.take_done() {
                Some(done) => self.launch_ended(l, done, false),
                None => Moved::No,
            },
        }
    }

    /// Shutdown began: a call that ended before the runner saw it still
    /// counts; every other call in flight is given up on, and components
    /// the graph let start but that did not are never started.
    fn cancel_launch(&mut self) {
        for mut l in std::mem::take(&mut self.launching) {
            let index = l.index;
            if matches!(
                l.step,
                LaunchStep::Restop | LaunchStep::Reclose | LaunchStep::Rewait
            ) {
                self.cancel_restart(l);
                continue;
            }
            let done = if l.issued {
                self.slots[index].cell.take_done()
            } else {
                None
            };
            if let Some(done) = done {
                // Ended before the runner saw the shutdown: it counts.
                self.launch_ended(&mut l, done, false);
                continue;
            }
            if l.issued {
                self.abandon(index);
            }
            let name = self.slots[index].name.clone();
            if l.issued && self.slots[index].cell.take_started() {
                // Started: stopped in the drain as any started component.
                self.started(index);
                event!(info, { component = name, step = Step::Ready }, "readiness wait of `{name}` cancelled by shutdown");
                continue;
            }
            event!(info, { component = name, step = Step::Start }, "start of `{name}` cancelled by shutdown");
            // A relaunch, its start called or not: the component ran,
            // and was stopped after its failure.
            let relaunch = self.slots[index]
                .restart
                .as_ref()
                .is_some_and(|r| r.restarts() > 0);
            let state = if relaunch {
                ComponentState::Stopped
            } else {
                ComponentState::Pending
            };
            self.update(index, |r| r.state = state);
            self.slots[index].stopping = true;
            lock(&self.handle.shared.state)
                .graph
                .set_stopped(index as u32);
        }
        let never = std::mem::take(&mut self.startable);
        if !never.is_empty() {
            let mut st = lock(&self.handle.shared.state);
            for index in never {
                st.graph.set_stopped(index as u32);
            }
        }
        if self.restarted {
            self.restarts_cancelled();
        }
    }

    /// Shutdown began: a component stopped for a restart and waiting to
    /// start again never does; it reads stopped, and nothing stops it
    /// twice.
    fn restarts_cancelled(&mut self) {
        let mut guard = lock(&self.handle.shared.state);
        let st = &mut *guard;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(r) = st.records.get_mut(index) else {
                break;
            };
            if r.state == ComponentState::Restarting && !st.graph.is_up(index as u32) {
                r.state = ComponentState::Stopped;
                slot.stopping = true;
            }
        }
    }
}
