//! The runner: the one future that drives launch, run and shutdown.
//!
//! Everything happens on the task that polls [`Runner::run`]. Every user
//! call is an owned boxed future; [`Runner::drive`] polls one such goal
//! while it keeps polling every component's `run`, watches for the
//! interrupting signal and enforces the deadline.

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use futures::future::{
    AbortHandle, Aborted, BoxFuture, Either, FutureExt, RemoteHandle, abortable,
};
use futures::stream::{FuturesUnordered, StreamExt};
use futures_timer::Delay;

use crate::component::{CallResult, DynComponent};
use crate::context::Context;
use crate::drain::DynDrainer;
use crate::error::{Error, ErrorKind, Step};
use crate::handle::{Handle, Named, Registration};
use crate::lifecycle::{ComponentOptions, Phase};
use crate::report::{ComponentRecord, ComponentState, Report};
use crate::signal::{Signal, lock};

/// Puts a component's `run` on a task of the user's executor.
#[derive(Clone)]
pub(crate) struct Spawner(pub(crate) Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>);

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) shutdown_timeout: Duration,
    pub(crate) lame_duck: Duration,
    pub(crate) spawner: Option<Spawner>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shutdown_timeout: Duration::from_secs(30),
            lame_duck: Duration::ZERO,
            spawner: None,
        }
    }
}

struct Slot {
    name: Arc<str>,
    component: Arc<dyn DynComponent>,
    options: ComponentOptions,
    stop: Signal,
    abort: Option<AbortHandle>,
    run_done: bool,
    ready: bool,
}

type RunOutput = Result<CallResult<()>, Aborted>;
type LocalRun = futures::future::Abortable<BoxFuture<'static, CallResult<()>>>;

/// One component's `run`, polled in place or through a spawned task.
struct RunTask {
    index: usize,
    fut: Either<LocalRun, RemoteHandle<RunOutput>>,
}

impl Future for RunTask {
    type Output = (usize, RunOutput);

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let index = self.index;
        self.fut.poll_unpin(cx).map(|out| (index, out))
    }
}

/// What stops a [`Runner::drive`] early.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    /// A shutdown request (during launch and running).
    Shutdown,
    /// A forced shutdown (during the graceful steps of shutdown).
    Force,
    /// Nothing: only the deadline bounds it.
    Never,
}

enum Driven<T> {
    Done(T),
    TimedOut,
    Interrupted,
}

pub(crate) struct Runner {
    handle: Handle,
    config: Config,
    register_rx: async_channel::Receiver<Registration>,
    /// Components registered on the builder, launched before any that
    /// arrive through `register_rx`.
    initial: std::vec::IntoIter<Registration>,
    slots: Vec<Slot>,
    launched: Vec<usize>,
    runs: FuturesUnordered<RunTask>,
    /// Held from construction, so that a lifecycle dropped without ever
    /// being run still resolves `Handle::stopped` and disarms the watchdog.
    guard: Option<StoppedGuard>,
}

impl Drop for Runner {
    /// Components registered but never launched must not outlive the
    /// runner, whether `run` returned or was dropped: they sit in the
    /// channel, whose sender every handle keeps alive.
    fn drop(&mut self) {
        self.register_rx.close();
        while self.register_rx.try_recv().is_ok() {}
    }
}

/// Marks the lifecycle stopped however `run` ends, dropped included.
struct StoppedGuard(Handle);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        let shared = &self.0.shared;
        shared.set_phase(Phase::Stopped);
        {
            // Break any cycle through user parts that hold a handle.
            let mut st = lock(&shared.state);
            shared.health.clear();
            st.drainers.clear();
            st.hooks.clear();
        }
        if let Some(w) = lock(&shared.watchdog).take() {
            w.done();
        }
        shared.stopped.set();
    }
}

fn deadline_after(from: Instant, budget: Option<Duration>) -> Option<Instant> {
    budget.and_then(|b| from.checked_add(b))
}

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
    pub(crate) fn new(
        handle: Handle,
        config: Config,
        register_rx: async_channel::Receiver<Registration>,
        initial: Vec<Registration>,
    ) -> Self {
        Runner {
            guard: Some(StoppedGuard(handle.clone())),
            handle,
            config,
            register_rx,
            slots: Vec::with_capacity(initial.len()),
            launched: Vec::with_capacity(initial.len()),
            initial: initial.into_iter(),
            runs: FuturesUnordered::new(),
        }
    }

    pub(crate) async fn run(mut self) -> Result<Report, Error> {
        let shared = self.handle.shared.clone();
        let guard = self.guard.take();
        if !shared.shutdown.is_set() {
            shared.set_phase(Phase::Launching);
            self.launch_and_serve().await;
        }
        self.shut_down().await;
        // Every started component has been stopped or closed; drop what is
        // left of their futures before reporting.
        self.runs = FuturesUnordered::new();
        drop(guard);

        let report = self.handle.report();
        let mut errors = std::mem::take(&mut lock(&shared.state).errors).into_iter();
        log::info!(
            target: "lameduck",
            "lifecycle stopped after {:?}",
            report.elapsed()
        );
        match errors.next() {
            None => Ok(report),
            Some(first) => Err(first.with_others(errors.collect())),
        }
    }

    /// Launches every registered component in order, then serves dynamic
    /// registrations, until shutdown is requested.
    async fn launch_and_serve(&mut self) {
        let shared = self.handle.shared.clone();
        loop {
            let next = match self
                .initial
                .next()
                .map_or_else(|| self.register_rx.try_recv(), Ok)
            {
                Ok(reg) => Some(reg),
                Err(_) => {
                    if !shared.ready.is_set() {
                        if !shared.mark_ready() {
                            return;
                        }
                        log::info!(target: "lameduck", "every component is ready");
                    }
                    let mut rx = std::pin::pin!(self.register_rx.clone());
                    match self
                        .drive(None, Interrupt::Shutdown, |_, cx| rx.poll_next_unpin(cx))
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

    fn context(&self, index: usize, deadline: Option<Instant>) -> Context {
        let slot = &self.slots[index];
        Context {
            name: slot.name.clone(),
            stop: slot.stop.clone(),
            handle: self.handle.clone(),
            deadline,
        }
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut ComponentRecord)) {
        if let Some(r) = lock(&self.handle.shared.state).records.get_mut(index) {
            f(r);
        }
    }

    fn since_epoch(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.handle.shared.epoch)
    }

    /// Records a component's error and begins shutdown.
    fn fail(&self, index: usize, error: Error, step: Step) {
        let name = self.slots[index].name.clone();
        let error = error
            .with_component(&name)
            .with_step(step)
            .with_phase(self.handle.phase());
        let shared = &self.handle.shared;
        shared.record(error);
        shared.begin_shutdown(None, &format!("`{name}` failed in {step}"));
    }

    async fn launch_one(&mut self, reg: Registration) {
        let index = self.slots.len();
        self.slots.push(Slot {
            name: reg.name,
            component: reg.component,
            options: reg.options,
            stop: Signal::new(),
            abort: None,
            run_done: false,
            ready: false,
        });
        let name = self.slots[index].name.clone();
        let options = self.slots[index].options;

        let t0 = Instant::now();
        log::debug!(target: "lameduck", "starting `{name}`");
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
            Driven::Done(Err(e)) => {
                self.update(index, |r| r.state = ComponentState::Failed);
                return self.fail(index, e, Step::Start);
            }
            Driven::TimedOut => {
                drop(start);
                self.update(index, |r| r.state = ComponentState::Failed);
                let budget = options.start_timeout.unwrap_or_default();
                return self.fail(
                    index,
                    Error::new(ErrorKind::TimedOut).with_budget(budget),
                    Step::Start,
                );
            }
            Driven::Interrupted => {
                log::info!(target: "lameduck", "start of `{name}` cancelled by shutdown");
                self.update(index, |r| r.state = ComponentState::Pending);
                return;
            }
        }
        drop(start);
        let took = t0.elapsed();
        log::info!(target: "lameduck", "started `{name}` in {took:?}");
        self.update(index, |r| {
            r.state = ComponentState::Started;
            r.start_took = Some(took);
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
        let (run, abort) = abortable(run);
        self.slots[index].abort = Some(abort);
        let fut = match &self.config.spawner {
            None => Either::Left(run),
            Some(spawner) => {
                let (remote, handle) = run.remote_handle();
                (spawner.0)(Box::pin(remote));
                Either::Right(handle)
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
            self.update(index, |r| r.attempts = attempt);
            let deadline = deadline_after(Instant::now(), policy.timeout());
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
                    self.update(index, |r| r.state = ComponentState::Failed);
                    let e = Error::new(ErrorKind::NotReady)
                        .with_detail(format!("not ready after {attempt} attempts"));
                    return self.fail(index, e, Step::Ready);
                }
                Driven::Done(Ok(false)) => {
                    let wait = policy.backoff_policy().delay(attempt);
                    log::debug!(target: "lameduck", "`{name}` not ready (attempt {attempt}), retrying in {wait:?}");
                    let until = deadline_after(Instant::now(), Some(wait));
                    if let Driven::Interrupted = self
                        .drive(until, Interrupt::Shutdown, |_, _| Poll::<()>::Pending)
                        .await
                    {
                        return;
                    }
                }
                Driven::Done(Err(e)) => {
                    self.update(index, |r| r.state = ComponentState::Failed);
                    return self.fail(index, e, Step::Ready);
                }
                Driven::TimedOut => {
                    self.update(index, |r| r.state = ComponentState::Failed);
                    let budget = policy.timeout().unwrap_or_default();
                    let e = Error::new(ErrorKind::TimedOut)
                        .with_budget(budget)
                        .with_detail(format!("attempt {attempt}"));
                    return self.fail(index, e, Step::Ready);
                }
                Driven::Interrupted => {
                    log::info!(target: "lameduck", "readiness wait of `{name}` cancelled by shutdown");
                    return;
                }
            }
        }
        self.slots[index].ready = true;
        let now = Instant::now();
        let at = self.since_epoch(now);
        log::info!(
            target: "lameduck",
            "`{name}` ready after {:?} ({attempt} attempt{})",
            now - t0,
            if attempt == 1 { "" } else { "s" }
        );
        self.update(index, |r| {
            r.state = ComponentState::Ready;
            r.ready_at = Some(at);
        });
    }

    /// Records the end of a component's `run`. Any end starts shutdown.
    fn on_run_end(&mut self, index: usize, out: RunOutput) {
        let slot = &mut self.slots[index];
        slot.run_done = true;
        let name = slot.name.clone();
        let ready = slot.ready;
        let asked = slot.stop.is_set();
        let at = self.since_epoch(Instant::now());
        self.update(index, |r| r.run_ended_at = Some(at));
        let shared = &self.handle.shared;
        match out {
            Err(Aborted) => {}
            Ok(Err(e)) => self.fail(index, e, Step::Run),
            Ok(Ok(())) if !ready && !shared.shutdown.is_set() => {
                self.update(index, |r| r.state = ComponentState::Failed);
                self.fail(index, Error::new(ErrorKind::Exited), Step::Run);
            }
            Ok(Ok(())) if !shared.shutdown.is_set() => {
                log::info!(target: "lameduck", "`{name}` finished running");
                shared.begin_shutdown(None, &format!("`{name}` finished running"));
            }
            Ok(Ok(())) if !asked => {
                log::info!(target: "lameduck", "`{name}` finished running during shutdown");
            }
            Ok(Ok(())) => {}
        }
    }

    /// Polls `goal` until it is ready, while polling every `run`. Gives up
    /// when `interrupt` fires (checked before the goal is polled) or
    /// `deadline` passes (a deadline already past still polls the goal
    /// once).
    async fn drive<T>(
        &mut self,
        deadline: Option<Instant>,
        interrupt: Interrupt,
        mut goal: impl FnMut(&mut Self, &mut TaskContext<'_>) -> Poll<T>,
    ) -> Driven<T> {
        let mut signal = match interrupt {
            Interrupt::Shutdown => Some(self.handle.shared.shutdown.clone()),
            Interrupt::Force => Some(self.handle.shared.force.clone()),
            Interrupt::Never => None,
        };
        // Most calls finish on their first poll: only arm a timer when one
        // does not.
        let mut timer: Option<Delay> = None;
        poll_fn(|cx| {
            while let Poll::Ready(Some((index, out))) = self.runs.poll_next_unpin(cx) {
                self.on_run_end(index, out);
            }
            // The interrupt first: once shutdown has begun, no `start`,
            // `ready` or registration may be polled even once.
            if let Some(s) = signal.as_mut() {
                if s.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Driven::Interrupted);
                }
            }
            if let Poll::Ready(v) = goal(self, cx) {
                return Poll::Ready(Driven::Done(v));
            }
            if let Some(deadline) = deadline {
                let now = Instant::now();
                if now >= deadline {
                    return Poll::Ready(Driven::TimedOut);
                }
                let t = timer.get_or_insert_with(|| Delay::new(deadline - now));
                if t.poll_unpin(cx).is_ready() {
                    return Poll::Ready(Driven::TimedOut);
                }
            }
            Poll::Pending
        })
        .await
    }

    async fn shut_down(&mut self) {
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
                Driven::TimedOut => Some(
                    Error::new(ErrorKind::TimedOut)
                        .with_budget(bound.map_or(Duration::ZERO, |b| b - t0)),
                ),
                Driven::Interrupted => Some(Error::new(ErrorKind::Forced)),
            };
            if let Some(e) = error {
                shared.record(
                    e.with_component(&name)
                        .with_step(step)
                        .with_phase(shared.phase()),
                );
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
        let budget = bound.map_or(Duration::ZERO, |b| b.saturating_duration_since(t0));
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
                Driven::Done(Err(e)) => shared.record(
                    e.with_component(&name)
                        .with_step(Step::Stop)
                        .with_phase(Phase::Draining),
                ),
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
                shared.record(
                    Error::new(ErrorKind::TimedOut)
                        .with_budget(budget)
                        .with_component(&name)
                        .with_step(Step::Stop)
                        .with_phase(Phase::Draining),
                );
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
        let shared = self.handle.shared.clone();
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
            Driven::TimedOut | Driven::Interrupted => Some(
                Error::new(ErrorKind::TimedOut)
                    .with_budget(bound.map_or(Duration::ZERO, |b| b.saturating_duration_since(t0))),
            ),
        };
        if let Some(e) = error {
            shared.record(
                e.with_component(&name)
                    .with_step(Step::Close)
                    .with_phase(Phase::Draining),
            );
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
