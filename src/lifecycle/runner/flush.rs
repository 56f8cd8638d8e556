//! Flush and stop: the drainers one at a time, then the stop hooks in
//! reverse registration order; a force skips the drainers and runs the
//! remaining hooks at once, bounded together by the force budget.

use std::sync::Arc;
use std::time::Instant;

use futures::future::FutureExt;

use super::drive::{Driven, Interrupt};
use super::shutdown::{Call, InFlight};
use super::{Runner, budget_of};
use crate::context::Context;
use crate::drain::DynDrainer;
use crate::error::{Error, ErrorKind};
use crate::logging::{event, ms};
use crate::names::Named;
use crate::phase::Step;

impl Runner {
    /// Runs the drainers one at a time, each bounded by the shutdown
    /// deadline. A force skips them, the one it interrupts included.
    pub(super) async fn run_drainers(
        &mut self,
        parts: Vec<Named<dyn DynDrainer>>,
        deadline: Option<Instant>,
    ) {
        let shared = self.handle.shared.clone();
        for (name, part) in parts {
            if shared.force.is_set() {
                event!(warn, { component = name, step = Step::Drain }, "forced: skipping drainer `{name}`");
                continue;
            }
            let t0 = Instant::now();
            let mut fut = part.drain(self.part_context(&name, deadline), "drain");
            let outcome = self
                .drive(deadline, Interrupt::Force, |_, cx| fut.poll_unpin(cx))
                .await;
            drop(fut);
            if let Some(e) = finished(&name, Step::Drain, "drain", t0, deadline, outcome) {
                self.record(&name, e, Step::Drain);
            }
        }
    }

    /// Runs the stop hooks one at a time, each bounded by the shutdown
    /// deadline. Once forced, the one in flight and every remaining one run
    /// at once, bounded together by the force budget.
    pub(super) async fn run_hooks(
        &mut self,
        hooks: Vec<Named<dyn DynDrainer>>,
        deadline: Option<Instant>,
    ) {
        let shared = self.handle.shared.clone();
        let mut forced = Vec::new();
        let mut rest = hooks.into_iter();
        for (name, hook) in rest.by_ref() {
            let t0 = Instant::now();
            if shared.force.is_set() {
                let bound = self.force_bound(deadline);
                let fut = hook.drain(self.part_context(&name, bound), "hook");
                forced.push(InFlight {
                    index: None,
                    name,
                    t0,
                    call: Call::Own(fut),
                });
                break;
            }
            let mut fut = hook.drain(self.part_context(&name, deadline), "hook");
            let outcome = self
                .drive(deadline, Interrupt::Force, |_, cx| fut.poll_unpin(cx))
                .await;
            if matches!(outcome, Driven::Interrupted) {
                forced.push(InFlight {
                    index: None,
                    name,
                    t0,
                    call: Call::Own(fut),
                });
                break;
            }
            drop(fut);
            if let Some(e) = finished(&name, Step::Hook, "stop hook", t0, deadline, outcome) {
                self.record(&name, e, Step::Hook);
            }
        }
        if forced.is_empty() {
            return;
        }
        let bound = self.force_bound(deadline);
        for (name, hook) in rest {
            let fut = hook.drain(self.part_context(&name, bound), "hook");
            forced.push(InFlight {
                index: None,
                name,
                t0: Instant::now(),
                call: Call::Own(fut),
            });
        }
        self.finish_all(forced, bound, |s, call, result| {
            if let Err(e) = result {
                s.record(&call.name, e, Step::Hook);
            }
        })
        .await;
    }

    /// The context of a drainer or hook: its stop signal is the force.
    fn part_context(&self, name: &Arc<str>, deadline: Option<Instant>) -> Context {
        Context {
            name: name.clone(),
            stop: self.handle.shared.force.clone(),
            handle: self.handle.clone(),
            deadline,
        }
    }
}

/// How a drainer or stop hook call that was driven to its end went: success
/// is logged, anything else is the error to record (a force is `Forced`).
fn finished(
    name: &str,
    step: Step,
    what: &str,
    t0: Instant,
    deadline: Option<Instant>,
    outcome: Driven<Result<(), Error>>,
) -> Option<Error> {
    match outcome {
        Driven::Done(Ok(())) => {
            let took = t0.elapsed();
            event!(info, { component = name, step = step, elapsed_ms = ms(took) }, "{what} `{name}` done in {took:?}");
            None
        }
        Driven::Done(Err(e)) => Some(e),
        Driven::TimedOut => {
            Some(Error::new(ErrorKind::TimedOut).with_budget(budget_of(deadline, t0)))
        }
        Driven::Interrupted => Some(Error::new(ErrorKind::Forced)),
    }
}
