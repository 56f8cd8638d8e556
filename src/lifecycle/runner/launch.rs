//! Launch: start each component in order, put its `run` in flight, wait
//! for it to be ready; then serve registrations until shutdown.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Poll, Waker};
use std::time::Instant;

use futures::stream::StreamExt;

use super::cells::{readiness, unit};
use super::drive::{Driven, Interrupt};
use super::{Runner, Slot, deadline_after};
use crate::error::{Error, ErrorKind};
use crate::latch::Latch;
use crate::lifecycle::cell::{Cell, Cmd};
use crate::lifecycle::parts::Registration;
use crate::logging::{event, ms};
use crate::phase::Step;
use crate::report::ComponentState;

impl Runner {
    /// Launches every registered component in order, then serves dynamic
    /// registrations, until shutdown is requested.
    pub(super) async fn launch_and_serve(&mut self) {
        let shared = self.handle.shared.clone();
        loop {
            let next = match self.initial.next().or_else(|| self.take_registration()) {
                found @ Some(_) => found,
                None => {
                    if !shared.ready.is_set() {
                        if !shared.mark_ready() {
                            return;
                        }
                        event!(info, {}, "every component is ready");
                    }
                    match self
                        .drive(None, Interrupt::Shutdown, |this, cx| {
                            this.register_rx.poll_next_unpin(cx)
                        })
                        .await
                    {
                        Driven::Done(reg) => reg,
                        Driven::TimedOut | Driven::Interrupted => None,
                    }
                }
            };
            match next {
                Some(reg) => self.launch_one(reg).await,
                None => return,
            }
            if shared.shutdown.is_set() {
                return;
            }
        }
    }

    async fn launch_one(&mut self, reg: Registration) {
        let index = self.slots.len();
        let cell = Arc::new(Cell::new(index, self.queue.clone()));
        let spawned = self.config.spawner.is_some();
        self.slots.push(Slot {
            name: reg.name,
            options: reg.options,
            stop: Latch::hosted(cell.clone()),
            task: Some(reg.component.launch(cell.clone(), spawned)),
            waker: Waker::from(cell.clone()),
            cell,
            run_aborted: false,
            busy: None,
            run_started: false,
            run_done: false,
            ready: false,
        });
        let name = self.slots[index].name.clone();
        let options = self.slots[index].options;

        let t0 = self.now();
        event!(debug, { component = name, step = Step::Start }, "starting `{name}`");
        let at = self.since_epoch(t0);
        self.update(index, |r| {
            r.state = ComponentState::Starting;
            r.start_at = Some(at);
        });
        let deadline = deadline_after(t0, options.start_timeout);
        let mut start = Some(Cmd::Start(self.context(index, deadline)));
        let outcome = self
            .drive(deadline, Interrupt::Shutdown, |s, _| {
                s.step_unit(index, &mut start)
            })
            .await;
        let outcome = self.settle(index, start.is_none(), outcome, unit);
        match outcome {
            Driven::Done(Ok(())) => {}
            Driven::Done(Err(e)) => return self.fail_launch(index, e, Step::Start),
            Driven::TimedOut => {
                let budget = options.start_timeout.unwrap_or_default();
                let e = Error::new(ErrorKind::TimedOut).with_budget(budget);
                return self.fail_launch(index, e, Step::Start);
            }
            Driven::Interrupted => {
                event!(info, { component = name, step = Step::Start }, "start of `{name}` cancelled by shutdown");
                self.update(index, |r| r.state = ComponentState::Pending);
                return;
            }
        }
        let took = self.now().saturating_duration_since(t0);
        event!(info, { component = name, step = Step::Start, elapsed_ms = ms(took) }, "started `{name}` in {took:?}");
        // The first readiness attempt is counted here, under the same lock
        // round trip: nothing awaits in between.
        self.update(index, |r| {
            r.state = ComponentState::Started;
            r.start_took = Some(took);
            r.attempts = 1;
        });
        self.launched.push(index);
        self.spawn_run(index);
        self.await_ready(index, t0).await;
    }

    fn spawn_run(&mut self, index: usize) {
        let cx = self.context(index, None);
        let spawn = self.config.spawner.clone().map(|spawner| {
            let busy = Arc::new(AtomicBool::new(false));
            self.slots[index].busy = Some(busy.clone());
            (spawner, busy)
        });
        self.slots[index].run_started = true;
        self.command(index, Cmd::Run(cx, spawn));
    }

    async fn await_ready(&mut self, index: usize, t0: Instant) {
        let name = self.slots[index].name.clone();
        let policy = self.slots[index].options.readiness;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                self.update(index, |r| r.attempts = attempt);
            }
            // No clock read without a per-attempt budget.
            let deadline = policy
                .timeout()
                .and_then(|budget| deadline_after(Instant::now(), Some(budget)));
            let mut ready = Some(Cmd::Ready(self.context(index, deadline)));
            let outcome = self
                .drive(deadline, Interrupt::Shutdown, |s, _| {
                    s.step(index, &mut ready).map(readiness)
                })
                .await;
            let outcome = self.settle(index, ready.is_none(), outcome, readiness);
            match outcome {
                Driven::Done(Ok(true)) => break,
                Driven::Done(Ok(false)) if attempt >= policy.max_attempts() => {
                    let e = Error::new(ErrorKind::NotReady)
                        .with_detail(format!("not ready after {attempt} attempts"));
                    return self.fail_launch(index, e, Step::Ready);
                }
                Driven::Done(Ok(false)) => {
                    let wait = policy.backoff_policy().delay(attempt);
                    event!(debug, { component = name, step = Step::Ready }, "`{name}` not ready (attempt {attempt}), retrying in {wait:?}");
                    let until = deadline_after(Instant::now(), Some(wait));
                    if let Driven::Interrupted = self
                        .drive(until, Interrupt::Shutdown, |_, _| Poll::<()>::Pending)
                        .await
                    {
                        return;
                    }
                }
                Driven::Done(Err(e)) => return self.fail_launch(index, e, Step::Ready),
                Driven::TimedOut => {
                    let budget = policy.timeout().unwrap_or_default();
                    let e = Error::new(ErrorKind::TimedOut)
                        .with_budget(budget)
                        .with_detail(format!("attempt {attempt}"));
                    return self.fail_launch(index, e, Step::Ready);
                }
                Driven::Interrupted => {
                    event!(info, { component = name, step = Step::Ready }, "readiness wait of `{name}` cancelled by shutdown");
                    return;
                }
            }
        }
        self.slots[index].ready = true;
        self.handle.shared.machine.settle();
        let now = self.now();
        let at = self.since_epoch(now);
        event!(
            info,
            { component = name, step = Step::Ready, elapsed_ms = ms(now - t0) },
            "`{name}` ready after {:?} ({attempt} attempt{})",
            now - t0,
            if attempt == 1 { "" } else { "s" }
        );
        self.update(index, |r| {
            r.state = ComponentState::Ready;
            r.ready_at = Some(at);
        });
    }
}
