//! Shutdown: lame duck, then stop (or close) components in reverse launch
//! order, then the drainers, then the stop hooks.

use std::task::Poll;
use std::time::{Duration, Instant};

use futures::future::FutureExt;

use super::drive::{Driven, Interrupt};
use super::{Runner, budget_of, deadline_after};
use crate::context::Context;
use crate::drain::DynDrainer;
use crate::error::{Error, ErrorKind, Step};
use crate::handle::Named;
use crate::lifecycle::Phase;
use crate::report::ComponentState;
use crate::signal::lock;

/// The state a component moves to in the drain, unless it already failed:
/// the report must keep that it did.
fn unless_failed(now: ComponentState, next: ComponentState) -> ComponentState {
    if now == ComponentState::Failed {
        now
    } else {
        next
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Runner {
    pub(super) async fn shut_down(&mut self) {
        let shared = self.handle.shared.clone();
        let begun = lock(&shared.state).shutdown_at.unwrap_or_else(Instant::now);
        let deadline = deadline_after(begun, Some(self.config.shutdown_timeout));

        shared.set_phase(Phase::LameDuck);
        let lame_duck_end = earliest(deadline_after(begun, Some(self.config.lame_duck)), deadline);
        if self.config.lame_duck > Duration::ZERO && !shared.force.is_set() {
            log::info!(target: "lameduck", "lame duck for {:?}", self.config.lame_duck);
            self.drive(lame_duck_end, Interrupt::Force, |_, _| Poll::<()>::Pending)
                .await;
        }

        shared.set_phase(Phase::Draining);
        let order: Vec<usize> = self.launched.iter().rev().copied().collect();
        for index in order {
            self.stop_one(index, deadline).await;
        }

        shared.set_phase(Phase::Flushing);
        let drainers = std::mem::take(&mut lock(&shared.state).drainers);
        self.run_parts(drainers, deadline, Step::Drain).await;

        shared.set_phase(Phase::Stopping);
        let mut hooks = std::mem::take(&mut lock(&shared.state).hooks);
        hooks.reverse();
        self.run_parts(hooks, deadline, Step::Hook).await;
    }

    /// Runs drainers or stop hooks one at a time, each bounded by the
    /// shutdown deadline (polled once if it has passed or the shutdown is
    /// forced).
    async fn run_parts(
        &mut self,
        parts: Vec<Named<dyn DynDrainer>>,
        deadline: Option<Instant>,
        step: Step,
    ) {
        let shared = self.handle.shared.clone();
        for (name, part) in parts {
            let forced = shared.force.is_set();
            if forced && step == Step::Drain {
                // A force skips the flush, including what a force interrupted.
                log::warn!(target: "lameduck", "forced: skipping drainer `{name}`");
                continue;
            }
            let t0 = Instant::now();
            // Once forced, a stop hook is polled exactly once: synchronous
            // clean-up completes, any wait is abandoned.
            let (bound, interrupt) = if forced {
                (Some(t0), Interrupt::Never)
            } else {
                (deadline, Interrupt::Force)
            };
            let cx = Context {
                name: name.clone(),
                stop: shared.force.clone(),
                handle: self.handle.clone(),
                deadline: bound,
            };
            let mut fut = part.drain(cx);
            let outcome = self
                .drive(bound, interrupt, |_, cx| fut.poll_unpin(cx))
                .await;
            drop(fut);
            let error = match outcome {
                Driven::Done(Ok(())) => {
                    log::info!(target: "lameduck", "{step} `{name}` done in {:?}", t0.elapsed());
                    None
                }
                Driven::Done(Err(e)) => Some(e),
                Driven::TimedOut => {
                    Some(Error::new(ErrorKind::TimedOut).with_budget(budget_of(bound, t0)))
                }
                Driven::Interrupted => Some(Error::new(ErrorKind::Forced)),
            };
            if let Some(e) = error {
                self.record(&name, e, step);
            }
        }
    }

    /// Drain one component: set its stop signal, call `stop`, wait for `run`
    /// to end, all within its budget; past it, close it.
    async fn stop_one(&mut self, index: usize, deadline: Option<Instant>) {
        let shared = self.handle.shared.clone();
        let name = self.slots[index].name.clone();
        let options = self.slots[index].options;
        let t0 = Instant::now();
        let at = self.since_epoch(t0);
        self.update(index, |r| {
            r.state = unless_failed(r.state, ComponentState::Stopping);
            r.stop_at = Some(at);
        });
        log::debug!(target: "lameduck", "stopping `{name}`");
        self.slots[index].stop.set();

        let bound = earliest(deadline_after(t0, options.stop_timeout), deadline);
        let graceful = !shared.force.is_set() && options.stop_timeout != Some(Duration::ZERO);
        let mut stopped = false;
        if graceful {
            let mut stop = self.slots[index]
                .component
                .clone()
                .stop(self.context(index, bound));
            let outcome = self
                .drive(bound, Interrupt::Force, |_, cx| stop.poll_unpin(cx))
                .await;
            drop(stop);
            let mut timed_out = false;
            match outcome {
                Driven::Done(Ok(())) => {}
                Driven::Done(Err(e)) => self.record(&name, e, Step::Stop),
                Driven::TimedOut => timed_out = true,
                Driven::Interrupted => {}
            }
            if !timed_out && !shared.force.is_set() {
                match self
                    .drive(bound, Interrupt::Force, |s, _| {
                        if s.slots[index].run_done {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        }
                    })
                    .await
                {
                    Driven::Done(()) => stopped = true,
                    Driven::TimedOut => timed_out = true,
                    Driven::Interrupted => {}
                }
            }
            if timed_out {
                let e = Error::new(ErrorKind::TimedOut).with_budget(budget_of(bound, t0));
                self.record(&name, e, Step::Stop);
            }
        }
        if stopped {
            let took = t0.elapsed();
            log::info!(target: "lameduck", "stopped `{name}` in {took:?}");
            self.update(index, |r| {
                r.state = unless_failed(r.state, ComponentState::Stopped);
                r.stop_took = Some(took);
            });
        } else {
            self.close_one(index, deadline).await;
        }
    }

    async fn close_one(&mut self, index: usize, deadline: Option<Instant>) {
        let name = self.slots[index].name.clone();
        let options = self.slots[index].options;
        let t0 = Instant::now();
        let at = self.since_epoch(t0);
        self.update(index, |r| r.close_at = Some(at));
        log::warn!(target: "lameduck", "closing `{name}`");
        let bound = earliest(deadline_after(t0, Some(options.close_timeout)), deadline);
        let mut close = self.slots[index]
            .component
            .clone()
            .close(self.context(index, bound));
        let outcome = self
            .drive(bound, Interrupt::Never, |_, cx| close.poll_unpin(cx))
            .await;
        drop(close);
        let error = match outcome {
            Driven::Done(Ok(())) => None,
            Driven::Done(Err(e)) => Some(e),
            Driven::TimedOut | Driven::Interrupted => {
                Some(Error::new(ErrorKind::TimedOut).with_budget(budget_of(bound, t0)))
            }
        };
        if let Some(e) = error {
            self.record(&name, e, Step::Close);
        }
        if let Some(abort) = self.slots[index].abort.take() {
            abort.abort();
        }
        let took = t0.elapsed();
        log::info!(target: "lameduck", "closed `{name}` in {took:?}");
        self.update(index, |r| {
            r.state = unless_failed(r.state, ComponentState::Closed);
            r.close_took = Some(took);
        });
    }
}
