//! Restarts: a component whose `run` failed after it was ready, under a
//! restart policy, is stopped (closed if its stop overruns), waits its
//! backoff, and is launched again — `start`, then readiness — by the
//! launch loop, while the rest keeps running. Until it is ready again the
//! graph holds back what depends on it and has not started, and the
//! built-in `launch` check fails.

use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use super::Runner;
use super::cells::unit;
use super::deadline_after;
use super::launch::{LaunchStep, Launching, Moved, Restarting, take_startable};
use super::shutdown::Call;
use crate::error::Error;
use crate::latch::{Latch, lock};
use crate::lifecycle::cell::Cmd;
use crate::logging::event;
use crate::phase::Step;
use crate::report::{ComponentState, RunFailure};
use crate::restart::Verdict;

impl Runner {
    /// A component with a restart policy failed in `run` after it was
    /// ready: restart it, or, its budget spent, fail as without a policy.
    pub(super) fn on_failure(&mut self, index: usize, e: Error) {
        let (now, at) = self.stamp();
        let slot = &mut self.slots[index];
        let Some(budget) = slot.restart.as_mut() else {
            return self.fail(index, e, Step::Run);
        };
        let (wait, attempt) = match budget.on_failure(now) {
            Verdict::Restart { after, attempt } => (after, attempt),
            Verdict::Exhausted => {
                let policy = budget.policy();
                let max = policy.max_restarts();
                let note = format!(
                    "restart budget exhausted: {max} restart{} {}",
                    if max == 1 { "" } else { "s" },
                    crate::restart::Within(policy.window())
                );
                return self.fail(index, e.with_note(note), Step::Run);
            }
        };
        slot.ready = false;
        self.restarted = true;
        let name = slot.name.clone();
        let error = format!("{:#}", e.with_component(&name).with_step(Step::Run));
        event!(
            warn,
            { component = name, step = Step::Run },
            "{error}; restarting `{name}` in {wait:?} (restart {attempt} within the window)"
        );
        self.unready += 1;
        self.handle.shared.machine.admit();
        {
            let mut st = lock(&self.handle.shared.state);
            if let Some(r) = st.records.get_mut(index) {
                r.state = ComponentState::Restarting;
                let failures = r.failures.get_or_insert_with(Default::default);
                std::sync::Arc::make_mut(failures).push(RunFailure { at, error });
            }
            st.graph.set_unready(index as u32);
        }
        let mut l = Launching::new(index, LaunchStep::Restop, None);
        l.restart = Some(Box::new(Restarting {
            wait,
            close: None,
            stop_called: false,
        }));
        self.launching.push(l);
    }

    /// Moves a restart one step on: its stop, its close, its wait.
    pub(super) fn advance_restart(&mut self, l: &mut Launching, cx: &mut TaskContext<'_>) -> Moved {
        let index = l.index;
        match l.step {
            LaunchStep::Restop if !l.issued => {
                if self.handle.shared.shutdown.is_set() {
                    // Not issued: the shutdown cancels the restart, and the
                    // drain stops the component after its dependents.
                    return Moved::No;
                }
                l.issued = true;
                let slot = &self.slots[index];
                slot.stop.set();
                let budget = slot
                    .options
                    .stop_timeout
                    .unwrap_or(self.config.shutdown_timeout);
                if budget.is_zero() {
                    self.reclose(l);
                    return Moved::On;
                }
                l.deadline = deadline_after(Instant::now(), Some(budget));
                let stop = Cmd::Stop(self.stop_deadline(l.deadline));
                if let Some(r) = l.restart.as_mut() {
                    r.stop_called = true;
                }
                // Stamped as any stop is: a shutdown that cancels the
                // restart after this stop leaves it the component's last.
                let (_, at) = self.stamp();
                self.update(index, |r| r.stop_at = Some(at));
                self.command(index, stop);
                match self.advance_restart(l, cx) {
                    Moved::No => Moved::On,
                    moved => moved,
                }
            }
            LaunchStep::Restop => {
                if let Some(done) = self.slots[index].cell.take_done() {
                    if let Err(e) = unit(done) {
                        self.restart_call_failed(index, e, Step::Stop);
                    }
                    self.rewait(l);
                    return Moved::On;
                }
                if !l.expired(cx) {
                    return Moved::No;
                }
                self.abandon(index);
                self.reclose(l);
                Moved::On
            }
            LaunchStep::Reclose => {
                let Some(call) = l.restart.as_mut().and_then(|r| r.close.as_mut()) else {
                    return Moved::No;
                };
                let Poll::Ready(result) = self.poll_call(call, cx) else {
                    return Moved::No;
                };
                match result {
                    Ok(()) => {
                        let name = &self.slots[index].name;
                        event!(info, { component = name, step = Step::Close }, "closed `{name}` (restarting)")
                    }
                    Err(e) => self.restart_call_failed(index, e, Step::Close),
                }
                self.rewait(l);
                Moved::On
            }
            LaunchStep::Rewait => {
                if !l.expired(cx) {
                    return Moved::No;
                }
                self.relaunch(l);
                Moved::Done
            }
            _ => Moved::No,
        }
    }

    /// The stop or close of a restart failed. While the restart goes on,
    /// that is logged: the component starts again. Once shutdown has begun
    /// it never does, so that call was the component's last, and its
    /// failure is returned as a drain's would be. The shutdown flag is read
    /// after the call ended: a call that saw the shutdown begun always has
    /// its failure returned.
    fn restart_call_failed(&self, index: usize, e: Error, step: Step) {
        let name = &self.slots[index].name;
        if self.handle.shared.shutdown.is_set() {
            return self.record(name, e, step);
        }
        let e = e.with_component(name).with_step(step);
        event!(warn, { component = name, step = step }, "{e:#} (restarting)");
    }

    /// The stop of a restart overran (or had no budget): close it.
    fn reclose(&mut self, l: &mut Launching) {
        let close = self.begin_close(l.index, None);
        if let Some(r) = l.restart.as_mut() {
            r.close = Some(close);
        }
        l.step = LaunchStep::Reclose;
        l.timer = None;
    }

    /// The component is stopped: its backoff next.
    fn rewait(&mut self, l: &mut Launching) {
        let wait = l.restart.as_ref().map(|r| r.wait).unwrap_or_default();
        l.step = LaunchStep::Rewait;
        l.issued = false;
        l.deadline = deadline_after(Instant::now(), Some(wait));
        l.timer = None;
    }

    /// The wait is over: the component starts again, with a new stop
    /// latch, as if launched for the first time: once every dependency is
    /// ready.
    fn relaunch(&mut self, l: &Launching) {
        let index = l.index;
        let slot = &mut self.slots[index];
        slot.stop = Latch::new();
        slot.run_aborted = false;
        slot.run_started = false;
        slot.run_done = false;
        slot.busy = None;
        let name = slot.name.clone();
        event!(info, { component = name, step = Step::Start }, "restarting `{name}`");
        let mut st = lock(&self.handle.shared.state);
        st.graph.restart(index as u32);
        take_startable(&mut st.graph, &mut self.startable);
    }

    /// Shutdown began during a restart's stop or wait: the component has
    /// stopped (what was left of its stop or close is dropped) and is not
    /// started again; a stop or close that ended unread counts, its failure
    /// returned. One whose stop (or close) was not issued yet is left to
    /// the drain, which stops it.
    pub(super) fn cancel_restart(&mut self, l: Launching) {
        let index = l.index;
        let close_issued = l
            .restart
            .as_ref()
            .and_then(|r| r.close.as_ref())
            .is_some_and(|call| matches!(call.call, Call::Cell(None)));
        let never_called = match l.step {
            LaunchStep::Restop => !l.issued,
            LaunchStep::Reclose => !close_issued,
            _ => false,
        };
        if never_called {
            // Neither its stop nor its close was called: the drain stops
            // it like any started component, after its dependents and
            // before what it depends on. A stop that was called and
            // overran is not called again: the drain closes it instead.
            if l.restart.as_ref().is_some_and(|r| r.stop_called) {
                self.slots[index].close_only = true;
            }
            let name = self.slots[index].name.clone();
            event!(info, { component = name, step = Step::Stop }, "restart of `{name}` cancelled by shutdown before its stop");
            return;
        }
        // A call in flight: its stop, or its close once issued.
        let in_flight = match (l.step, l.restart.and_then(|r| r.close)) {
            (LaunchStep::Restop, _) => l.issued.then_some(Step::Stop),
            (LaunchStep::Reclose, Some(call)) => {
                matches!(call.call, Call::Cell(None)).then_some(Step::Close)
            }
            _ => None,
        };
        if let Some(step) = in_flight {
            match self.slots[index].cell.take_done().map(unit) {
                Some(Err(e)) => self.restart_call_failed(index, e, step),
                Some(Ok(())) => {}
                None => self.abandon(index),
            }
        }
        let name = self.slots[index].name.clone();
        event!(info, { component = name, step = Step::Start }, "restart of `{name}` cancelled by shutdown");
        self.slots[index].stopping = true;
        let mut st = lock(&self.handle.shared.state);
        if let Some(r) = st.records.get_mut(index) {
            r.state = ComponentState::Stopped;
        }
        st.graph.set_stopped(index as u32);
    }
}
