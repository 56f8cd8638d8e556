//! What each call of a launch leads to: a started component's `run` put
//! in flight and its readiness checked, attempt after attempt; a ready
//! one lets what depends on it start.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::Runner;
use super::cells::{readiness, unit};
use super::deadline_after;
use super::launch::{LaunchStep, Launching, Moved, take_startable};
use crate::component::CallResult;
use crate::error::{Error, ErrorKind};
use crate::latch::lock;
use crate::lifecycle::cell::{Cmd, Done};
use crate::logging::{event, ms};
use crate::phase::Step;
use crate::report::ComponentState;

impl Runner {
    /// Readiness attempt number `attempt`, to be issued.
    pub(super) fn next_attempt(&mut self, l: &mut Launching, attempt: u32) {
        if attempt > 1 {
            self.update(l.index, |r| r.attempts = attempt);
        }
        // No clock read without a per-attempt budget.
        let policy = self.slots[l.index].options.readiness;
        let deadline = policy
            .timeout()
            .and_then(|budget| deadline_after(Instant::now(), Some(budget)));
        *l = Launching::new(l.index, l.t0, LaunchStep::Ready(attempt), deadline);
    }

    /// What the end of a component's `start` or readiness attempt leads to.
    pub(super) fn call_ended(&mut self, l: &mut Launching, done: Done) -> Moved {
        let index = l.index;
        match l.step {
            LaunchStep::Start => match unit(done) {
                Ok(()) => {
                    self.started(l);
                    Moved::On
                }
                Err(e) => {
                    self.start_failed(index, e);
                    Moved::Done
                }
            },
            LaunchStep::Ready(attempt) => self.checked(l, attempt, readiness(done)),
            _ => Moved::No,
        }
    }

    /// A component's `start` failed: it never started, and holds its
    /// dependencies no more.
    pub(super) fn start_failed(&mut self, index: usize, e: Error) {
        self.fail_launch(index, e, Step::Start);
        lock(&self.handle.shared.state)
            .graph
            .set_stopped(index as u32);
    }

    /// A component's `start` returned: `run` goes in flight, and the first
    /// readiness attempt is next.
    pub(super) fn started(&mut self, l: &mut Launching) {
        let index = l.index;
        let name = self.slots[index].name.clone();
        let took = self.now().saturating_duration_since(l.t0);
        event!(info, { component = name, step = Step::Start, elapsed_ms = ms(took) }, "started `{name}` in {took:?}");
        // The first readiness attempt is counted here, under the same lock
        // round trip.
        self.update(index, |r| {
            r.state = ComponentState::Started;
            r.start_took = Some(took);
            r.attempts = 1;
        });
        // Once, whatever its restarts: the order a force closes in.
        if self.slots[index]
            .restart
            .as_ref()
            .is_none_or(|r| r.restarts() == 0)
        {
            self.launched.push(index);
        }
        self.spawn_run(index);
        self.next_attempt(l, 1);
    }

    pub(super) fn spawn_run(&mut self, index: usize) {
        let cx = self.context(index, None);
        let spawn = self.config.spawner.clone().map(|spawner| {
            let busy = Arc::new(AtomicBool::new(false));
            self.slots[index].busy = Some(busy.clone());
            (spawner, busy)
        });
        self.slots[index].run_started = true;
        self.command(index, Cmd::Run(cx, spawn));
    }

    /// What a readiness attempt's answer leads to.
    pub(super) fn checked(
        &mut self,
        l: &mut Launching,
        attempt: u32,
        out: CallResult<bool>,
    ) -> Moved {
        let index = l.index;
        let policy = self.slots[index].options.readiness;
        match out {
            Ok(true) => {
                self.became_ready(index, l.t0, attempt);
                Moved::Done
            }
            Ok(false) if attempt >= policy.max_attempts() => {
                let e = Error::new(ErrorKind::NotReady)
                    .with_detail(format!("not ready after {attempt} attempts"));
                self.fail_launch(index, e, Step::Ready);
                Moved::Done
            }
            Ok(false) => {
                let name = &self.slots[index].name;
                let wait = policy.backoff_policy().delay(attempt);
                event!(debug, { component = name, step = Step::Ready }, "`{name}` not ready (attempt {attempt}), retrying in {wait:?}");
                let until = deadline_after(Instant::now(), Some(wait));
                *l = Launching::new(index, l.t0, LaunchStep::Backoff(attempt), until);
                Moved::On
            }
            Err(e) => {
                self.fail_launch(index, e, Step::Ready);
                Moved::Done
            }
        }
    }

    /// A component is ready: those that depend on it may start once their
    /// other dependencies are ready too.
    pub(super) fn became_ready(&mut self, index: usize, t0: Instant, attempt: u32) {
        self.slots[index].ready = true;
        self.unready -= 1;
        self.handle.shared.machine.settle();
        let name = self.slots[index].name.clone();
        let now = self.now();
        let at = self.since_epoch(now);
        event!(
            info,
            { component = name, step = Step::Ready, elapsed_ms = ms(now - t0) },
            "`{name}` ready after {:?} ({attempt} attempt{})",
            now - t0,
            if attempt == 1 { "" } else { "s" }
        );
        let mut st = lock(&self.handle.shared.state);
        if let Some(r) = st.records.get_mut(index) {
            r.state = ComponentState::Ready;
            r.ready_at = Some(at);
        }
        st.graph.set_ready(index as u32);
        take_startable(&mut st.graph, &mut self.startable);
    }
}
