//! Launch: start each component in order, put its `run` in flight, wait
//! for it to be ready; then serve registrations until shutdown.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::Poll;
use std::time::Instant;

use futures::channel::oneshot;
use futures::future::{Either, FutureExt};
use futures::stream::StreamExt;

use super::drive::{Driven, Interrupt};
use super::{LocalRun, RunTask, Runner, Slot, SpawnedOutput, deadline_after};
use crate::error::{Error, ErrorKind};
use crate::latch::Latch;
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
        self.slots.push(Slot {
            name: reg.name,
            component: reg.component,
            options: reg.options,
            stop: Latch::new(),
            run_aborted: false,
            busy: None,
            run_done: false,
            ready: false,
        });
        let name = self.slots[index].name.clone();
        let options = self.slots[index].options;

        let t0 = Instant::now();
        event!(debug, { component = name, step = Step::Start }, "starting `{name}`");
        let at = self.since_epoch(t0);
        self.update(index, |r| {
            r.state = ComponentState::Starting;
            r.start_at = Some(at);
        });
        let deadline = deadline_after(t0, options.start_timeout);
        let mut start = self.slots[index]
            .component
            .clone()
            .start(self.context(index, deadline));
        match self
            .drive(deadline, Interrupt::Shutdown, |_, cx| start.poll_unpin(cx))
            .await
        {
            Driven::Done(Ok(())) => {}
            Driven::Done(Err(e)) => return self.fail_launch(index, e, Step::Start),
            Driven::TimedOut => {
                drop(start);
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
        drop(start);
        let took = t0.elapsed();
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
        let run = self.slots[index]
            .component
            .clone()
            .run(self.context(index, None));
        let run = self.slots[index].stop.abortable(run);
        let fut = match &self.config.spawner {
            None => Either::Left(run),
            Some(spawner) => {
                let (tx, rx) = oneshot::channel();
                let busy = Arc::new(AtomicBool::new(false));
                self.slots[index].busy = Some(busy.clone());
                (spawner.0)(Box::pin(spawned_run(run, busy, tx)));
                Either::Right(rx)
            }
        };
        self.runs.push(RunTask { index, fut });
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
            let mut ready = self.slots[index]
                .component
                .clone()
                .ready(self.context(index, deadline));
            let outcome = self
                .drive(deadline, Interrupt::Shutdown, |_, cx| ready.poll_unpin(cx))
                .await;
            drop(ready);
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
        self.handle
            .shared
            .launching
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let now = Instant::now();
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

/// A component's `run` on its own task: sends how it ended to the runner.
///
/// `busy` is true while the task is inside a poll of `run` and until the
/// result of that poll is sent, so the runner, once it has aborted `run`,
/// knows whether a result may still come: a `run` that was not busy will
/// only see the abort from now on.
async fn spawned_run(mut run: LocalRun, busy: Arc<AtomicBool>, tx: oneshot::Sender<SpawnedOutput>) {
    let mut tx = Some(tx);
    poll_fn(|cx| {
        busy.store(true, Ordering::SeqCst);
        // Pairs with the fence in `Runner::collect_runs`: either this poll
        // sees the abort, or the runner sees this task busy.
        fence(Ordering::SeqCst);
        let done = match run.poll_unpin(cx) {
            Poll::Ready(out) => {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(out);
                }
                true
            }
            // Ends early once the runner is gone (the receiver dropped):
            // nobody is left to read the result.
            Poll::Pending => tx.as_mut().is_none_or(|tx| tx.poll_canceled(cx).is_ready()),
        };
        busy.store(false, Ordering::SeqCst);
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
}
