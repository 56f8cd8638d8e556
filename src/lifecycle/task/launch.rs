//! A component's launch, walked by its own future on one command: `start`
//! within its timeout, `run` put in flight once it returned, then the
//! readiness attempts, each within its timeout, with the backoff between
//! them. Only the end of the whole launch goes back to the runner: ready,
//! or the step it failed in and why.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::time::{Duration, Instant};

use super::call::{Owner, call, to_make};
use super::run::{Running, put_in_flight};
use super::step::{Bound, Shutdown, step};
use crate::component::{CallResult, Component};
use crate::context::Context;
use crate::error::{Error, ErrorKind};
use crate::latch::lock;
use crate::lifecycle::cell::{Cell, Launch, Launched};
use crate::lifecycle::options::Readiness;
use crate::logging::{event, ms};
use crate::phase::Step;
use crate::report::ComponentState;

/// Walks a component's launch. `None` if the runner gave up on it (the
/// call in flight is dropped without another poll).
///
/// An `async` block rather than an `async fn`, which would keep its
/// arguments twice; the plan is read in place, not taken apart, and no
/// instant but `start`'s duration is kept across a wait: this future
/// sizes the component's.
#[allow(clippy::manual_async_fn)]
pub(super) fn launch<'a, 'b, C, R>(
    owner: &'a impl Owner<C>,
    plan: &'a mut Launch,
    local_run: impl FnOnce(Context) -> R + 'a,
    running: &'a mut Running<'b, R>,
) -> impl Future<Output = Option<Launched>> + 'a
where
    C: Component,
    R: Future<Output = CallResult<()>> + 'a,
    'b: 'a,
{
    async move {
        // Its fields are reached through `plan` as they are needed: one
        // reference kept in this future rather than one per field.
        let cx = &mut plan.cx;
        // Taken apart at once: nothing of it stays in this future.
        if let Err(e) = {
            let slot = pin!(to_make(|| Component::start(owner.get(), cx)));
            let gate = Shutdown(&cx.handle.shared.machine);
            // Made in the call, not bound to a name: a value with a name
            // would be kept across every wait of this future.
            step(
                call(&cx.name, "start", slot),
                gate,
                true,
                cx.deadline.map(|until| Bound {
                    until,
                    t0: plan.t0,
                    attempt: None,
                }),
                running,
            )
            .await?
        } {
            return failed(None, 0, Step::Start, e);
        }
        let took = Instant::now().saturating_duration_since(plan.t0);
        {
            let name = &cx.name;
            event!(info, { component = name, step = Step::Start, elapsed_ms = ms(took) }, "started `{name}` in {took:?}");
        }
        running.cell.set_started();
        let mut run_cx = cx.clone();
        run_cx.deadline = None;
        let busy = plan.busy.take();
        put_in_flight(owner, run_cx, busy, local_run, running);
        // The report row says `Started` (with its attempts) once the launch
        // waits: a launch that ends in the poll it began in is written once,
        // by the runner.
        let mut noted = false;
        let mut attempt = 1;
        loop {
            if attempt > 1 {
                note_started(cx, running.cell, took, attempt);
                noted = true;
            }
            // The first attempt's budget counts from the end of `start`,
            // an instant known without reading the clock again; without a
            // budget, no instant is needed.
            // In a block: the attempt is gone before the backoff, which
            // may then share its room in this future.
            let out = {
                let bound = attempt_bound(cx, &plan.budgets.readiness, plan.t0, took, attempt);
                let slot = pin!(to_make(|| Component::ready(owner.get(), cx)));
                let gate = Shutdown(&cx.handle.shared.machine);
                let cell = running.cell;
                let mut fut = step(call(&cx.name, "ready", slot), gate, true, bound, running);
                // The step moved into the closure that polls it (it is
                // `Unpin`), not pinned beside it and reached through a
                // pointer; the rest borrowed.
                let (noted, cx, took, attempt) = (&mut noted, &*cx, &took, &attempt);
                poll_fn(move |t| {
                    let p = Pin::new(&mut fut).poll(t);
                    if p.is_pending() && !*noted {
                        *noted = true;
                        note_started(cx, cell, *took, *attempt);
                    }
                    p
                })
                .await?
            };
            match out {
                Ok(true) => {
                    return Some(Launched {
                        start_took: Some(took),
                        attempts: attempt,
                        end: Ok(Instant::now()),
                    });
                }
                Ok(false) if attempt >= plan.budgets.readiness.max_attempts() => {
                    let e = Error::new(ErrorKind::NotReady)
                        .with_detail(format!("not ready after {attempt} attempts"));
                    return failed(Some(took), attempt, Step::Ready, e);
                }
                Ok(false) => {
                    let wait = plan.budgets.readiness.backoff_policy().delay(attempt);
                    let name = &cx.name;
                    event!(debug, { component = name, step = Step::Ready }, "`{name}` not ready (attempt {attempt}), retrying in {wait:?}");
                    if !noted {
                        noted = true;
                        note_started(cx, running.cell, took, attempt);
                    }
                    if !wait.is_zero() {
                        let fut = pin!(async {
                            crate::timer::sleep(wait).await;
                            Ok::<_, Error>(())
                        });
                        let gate = Shutdown(&cx.handle.shared.machine);
                        let _slept = step(fut, gate, true, None, running).await?;
                    }
                    attempt += 1;
                }
                Err(e) => return failed(Some(took), attempt, Step::Ready, e),
            }
        }
    }
}

/// A readiness attempt's deadline, set in its context, and its bound.
fn attempt_bound(
    cx: &mut Context,
    readiness: &Readiness,
    t0: Instant,
    took: Duration,
    attempt: u32,
) -> Option<Bound> {
    let Some(budget) = readiness.timeout() else {
        cx.deadline = None;
        return None;
    };
    let from = match attempt {
        1 => t0.checked_add(took).unwrap_or_else(Instant::now),
        _ => Instant::now(),
    };
    cx.deadline = crate::timer::after(from, budget);
    cx.deadline.map(|until| Bound {
        until,
        t0: from,
        attempt: Some(attempt),
    })
}

/// How a launch that failed in `step` ended.
fn failed(start_took: Option<Duration>, attempts: u32, step: Step, e: Error) -> Option<Launched> {
    Some(Launched {
        start_took,
        attempts,
        end: Err((step, e)),
    })
}

/// Writes a started component's report row, while its launch waits.
fn note_started(cx: &Context, cell: &Cell, took: Duration, attempts: u32) {
    if let Some(r) = lock(&cx.handle.shared.state).records.get_mut(cell.index()) {
        if r.state != ComponentState::Failed {
            r.state = ComponentState::Started;
        }
        r.start_took = Some(took);
        r.attempts = attempts;
    }
}
