//! The runner: the one future that drives launch, run and shutdown.
//!
//! Everything happens on the task that polls [`Runner::run`]. Each
//! component is one boxed future (see `lifecycle::task`) behind a cell
//! (see `lifecycle::cell`): the runner tells a cell "start now", "ready
//! now", "stop now", "close now" and reads what came of it; a cell's waker
//! puts it on the runner's ready queue, and the runner polls only the cells
//! that were woken. [`Runner::drive`] waits for one goal (a call's end, a
//! registration, a flag) while it polls the woken cells, watches for the
//! interrupting flag and enforces the deadline.
//!
//! The schedule is the runner's, taken from the dependency graph:
//! [`launch`] starts each component once its dependencies are ready and
//! waits for it to be ready, every component that may start at once;
//! [`drain`] stops each once every component that depends on it has
//! stopped, every component that may stop at once, and closes those that
//! overrun (`shutdown` closes all at once when forced); [`flush`] runs the
//! drainers and the stop hooks. With the default graph, a chain, that is
//! one component at a time, in order, and in reverse order.

mod cells;
mod clock;
mod drain;
mod drive;
mod flush;
mod launch;
mod outcomes;
mod restart;
mod shutdown;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedReceiver;
use futures::future::BoxFuture;

use self::clock::{budget_of, deadline_after, earliest, expired};
pub(crate) use super::cell::Spawner;
use super::cell::{Cell, ReadyQueue};
use crate::cause::{RunEnd, ShutdownCause};
use crate::context::Context;
use crate::error::Error;
use crate::handle::Handle;
use crate::latch::{Latch, lock};
use crate::lifecycle::options::Kept;
use crate::lifecycle::parts::{Parts, Registration};
use crate::logging::{event, ms};
use crate::phase::Phase;
use crate::phase::Step;
use crate::report::{ComponentRecord, ComponentState, Report};

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) shutdown_timeout: Duration,
    pub(crate) force_timeout: Duration,
    pub(crate) lame_duck: Duration,
    pub(crate) spawner: Option<Spawner>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shutdown_timeout: Duration::from_secs(30),
            force_timeout: Duration::from_secs(1),
            lame_duck: Duration::ZERO,
            spawner: None,
        }
    }
}

struct Slot {
    name: Arc<str>,
    options: Kept,
    stop: Latch,
    /// The component's one future, until the runner is done with it.
    task: Option<BoxFuture<'static, ()>>,
    cell: Arc<Cell>,
    /// Whether the lifecycle aborted its `run` (through `stop`).
    run_aborted: bool,
    /// For a `run` on its own task: whether that task is in a poll of it.
    busy: Option<Arc<AtomicBool>>,
    run_started: bool,
    run_done: bool,
    ready: bool,
    /// Whether its stop began.
    stopping: bool,
    /// Its restart's `stop` was called and overran, and the shutdown came
    /// before its `close`: the drain closes it without a second `stop`.
    close_only: bool,
    /// Its restart budget, if its policy ever restarts it.
    restart: Option<Box<crate::restart::Budget>>,
}

impl Drop for Slot {
    /// A command left in the cell holds the cell (through the stop latch):
    /// taken out, and dropped after the cell's lock.
    fn drop(&mut self) {
        self.task = None;
        self.cell.clear();
    }
}

/// How long the runner waits at least, once shutdown is over, for a `run`
/// on its own task that was busy in a poll when it was aborted: whatever
/// that poll ends with (a panic included) must reach the result.
const SPAWNED_RUN_GRACE: Duration = Duration::from_millis(100);

pub(crate) struct Runner {
    handle: Handle,
    config: Config,
    register_rx: UnboundedReceiver<Registration>,
    /// Components registered on the builder, launched before any that
    /// arrive through `register_rx`.
    initial: std::vec::IntoIter<Registration>,
    slots: Vec<Slot>,
    /// The components whose `start` succeeded, in that order.
    launched: Vec<usize>,
    /// The components in launch, in the order they began it.
    launching: Vec<launch::Launching>,
    /// Components the graph let start, not started yet.
    startable: Vec<usize>,
    /// Components registered and not ready yet.
    unready: usize,
    /// Whether components were registered since the graph was last asked
    /// what may start.
    graph_moved: bool,
    /// Whether a component ever began a restart: from then on a start
    /// handed out by the graph is checked again before it is issued, as a
    /// dependency may have stopped being ready in between.
    restarted: bool,
    /// The components in their stop, in the order they began it.
    stopping: Vec<drain::Stopper>,
    /// Components the graph let stop, not stopping yet.
    stoppable: Vec<usize>,
    /// The cells woken since the runner last polled them.
    queue: Arc<ReadyQueue>,
    /// The cells being polled, taken from the queue (buffers swapped, so
    /// waking a cell does not allocate).
    batch: Vec<usize>,
    /// Cells whose `run` ended in the poll that also ended a call: the end
    /// of `run` is recorded once the runner has read the call's.
    deferred: Vec<usize>,
    /// When a forced shutdown must be over: set when the runner first sees
    /// the force.
    force_deadline: Option<Option<Instant>>,
    /// The clock as last read for a report stamp, until user code may have
    /// run (a cell is polled) or the runner may have waited (a new poll):
    /// stamps taken in between share one clock read.
    now: Option<Instant>,
    /// That clock read as a report stamp (its offset from the epoch), once
    /// asked: consecutive stops share it, one's end being the next's
    /// beginning.
    stamp: Option<Duration>,
    /// The last stop deadline given, and its offset from the epoch: the
    /// stops of a drain mostly share one.
    stop_bound: Option<(Instant, Duration)>,
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
        while self.take_registration().is_some() {}
    }
}

impl Runner {
    /// A registration already sent, if any, without waiting.
    fn take_registration(&mut self) -> Option<Registration> {
        match self.look_for_registration() {
            Poll::Ready(reg) => reg,
            Poll::Pending => None,
        }
    }

    /// As a poll of the registrations, but only looks: the runner's waker
    /// registered on the channel stays (a poll with another waker would
    /// replace it, and one with the same waker costs its registration
    /// again).
    // `try_next` is `try_recv` in the newest futures, not in every
    // futures 0.3 this crate accepts.
    #[allow(deprecated)]
    pub(super) fn look_for_registration(&mut self) -> Poll<Option<Registration>> {
        match self.register_rx.try_next() {
            Ok(next) => Poll::Ready(next),
            Err(_) => Poll::Pending,
        }
    }
}

/// Marks the lifecycle stopped however `run` ends, dropped included.
struct StoppedGuard(Handle);

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        let shared = &self.0.shared;
        let stopped = shared.stop();
        // Break any cycle through user parts that hold a handle. They are
        // dropped only once every lock is released: their `Drop` may call
        // back into a handle.
        let checks = shared.health.take();
        let parts = std::mem::take(&mut *Parts::of(shared).lists());
        drop(checks);
        drop(parts);
        if let Some(w) = lock(&shared.watchdog).take() {
            w.done();
        }
        shared.machine.wake(stopped);
    }
}

impl Runner {
    pub(crate) fn new(
        handle: Handle,
        config: Config,
        register_rx: UnboundedReceiver<Registration>,
        initial: Vec<Registration>,
    ) -> Self {
        Runner {
            guard: Some(StoppedGuard(handle.clone())),
            handle,
            config,
            register_rx,
            slots: Vec::with_capacity(initial.len()),
            launched: Vec::with_capacity(initial.len()),
            launching: Vec::new(),
            startable: Vec::new(),
            unready: 0,
            graph_moved: false,
            restarted: false,
            stopping: Vec::new(),
            stoppable: Vec::new(),
            initial: initial.into_iter(),
            queue: Arc::new(ReadyQueue::default()),
            batch: Vec::new(),
            deferred: Vec::new(),
            force_deadline: None,
            now: None,
            stamp: None,
            stop_bound: None,
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
        // Every started component has been stopped or closed. A `run` on its
        // own task may have ended just as it was aborted: read what those
        // tasks report, briefly, then drop what is left before reporting.
        let begun = shared.shutdown_at();
        let deadline = begun.and_then(|b| deadline_after(b, Some(self.config.shutdown_timeout)));
        let bound = match self.force_deadline {
            Some(forced) => earliest(forced, deadline),
            None => deadline,
        };
        self.collect_runs(bound).await;
        for slot in &mut self.slots {
            slot.task = None;
        }
        drop(guard);

        let report = self.handle.report();
        let mut errors = std::mem::take(&mut lock(&shared.state).errors).into_iter();
        let took = report.elapsed();
        event!(info, { phase = Phase::Stopped, elapsed_ms = ms(took) }, "lifecycle stopped after {took:?}");
        match errors.next() {
            None => Ok(report),
            Some(first) => Err(first.with_others(errors.collect()).with_report(report)),
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

    /// Records an error of the named part (component, drainer or hook), in
    /// the step and phase it happened in.
    fn record(&self, name: &str, error: Error, step: Step) {
        let shared = &self.handle.shared;
        shared.record(
            error
                .with_component(name)
                .with_step(step)
                .with_phase(shared.phase()),
        );
    }

    /// Records a component's error and begins shutdown.
    fn fail(&self, index: usize, error: Error, step: Step) {
        let slot = &self.slots[index];
        let name = slot.name.clone();
        let cause = match step {
            Step::Run if slot.ready => ShutdownCause::RunEnded {
                component: name.clone(),
                end: if error.is_panic() {
                    RunEnd::Panicked
                } else {
                    RunEnd::Failed
                },
            },
            step => ShutdownCause::LaunchFailed {
                component: name.clone(),
                step,
            },
        };
        self.record(&name, error, step);
        self.handle.shared.begin_shutdown(None, cause);
    }

    /// [`Runner::fail`] for a component whose launch failed: its report row
    /// says `Failed`, and keeps saying it through the drain.
    fn fail_launch(&self, index: usize, error: Error, step: Step) {
        self.update(index, |r| r.state = ComponentState::Failed);
        self.fail(index, error, step);
    }
}
