//! A component's cell: the slot through which the runner commands the
//! component's one future ("start now", "stop now", "close now", …) and
//! reads what it did ("started", "ready", "`run` ended", …), and the waker
//! that puts the cell on the runner's ready queue, so the runner polls only
//! the cells that were woken.
//!
//! A cell holds no schedule: which component starts, stops or closes when
//! is the runner's choice. Any number of cells can be in any step at once.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Wake;
use std::time::Instant;

use futures::future::{Aborted, BoxFuture};
use futures::task::AtomicWaker;

use crate::component::CallResult;
use crate::context::Context;
use crate::latch::lock;

/// Puts a component's `run` on a task of the user's executor.
#[derive(Clone)]
pub(crate) struct Spawner(pub(crate) Arc<dyn Fn(BoxFuture<'static, ()>) + Send + Sync>);

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Spawner")
    }
}

/// What the runner tells a component's future to do.
pub(crate) enum Cmd {
    /// Call `start`.
    Start(Context),
    /// Call `ready` once (one readiness attempt).
    Ready(Context),
    /// Put `run` in flight: polled by the component's future, or on a task
    /// of its own through the spawner, with the flag that tells whether
    /// that task is inside a poll of it.
    Run(Context, Option<(Spawner, Arc<AtomicBool>)>),
    /// Call `stop`.
    Stop(Context),
    /// Call `close`, bounded by `until` (a budget counted from `t0`).
    Close {
        cx: Context,
        until: Option<Instant>,
        t0: Instant,
    },
    /// Drop the call in flight (it timed out, or the runner gave up on it).
    Abandon,
}

/// How a call ended.
pub(crate) enum Done {
    Unit(CallResult<()>),
    Ready(CallResult<bool>),
}

/// How a component's `run` ended.
pub(crate) enum RunExit {
    /// It returned (or panicked: caught into an error).
    Done(CallResult<()>),
    /// The lifecycle aborted it.
    Aborted,
    /// The executor dropped its task before it finished.
    Dropped,
}

/// What a `run` on its own task sends back.
pub(crate) type SpawnedOutput = Result<CallResult<()>, Aborted>;

/// The cells woken since the runner last looked, and the runner's waker.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    woken: Mutex<Vec<usize>>,
    runner: AtomicWaker,
}

impl ReadyQueue {
    /// Registers the runner's waker, then takes the cells woken so far.
    pub(crate) fn take(&self, runner: &std::task::Waker) -> Vec<usize> {
        self.runner.register(runner);
        std::mem::take(&mut *lock(&self.woken))
    }

    /// Whether a cell was woken since the last [`ReadyQueue::take`].
    pub(crate) fn is_empty(&self) -> bool {
        lock(&self.woken).is_empty()
    }
}

/// The commands in, the results out.
#[derive(Default)]
pub(crate) struct Io {
    pub(crate) cmd: Option<Cmd>,
    pub(crate) done: Option<Done>,
    pub(crate) run_end: Option<RunExit>,
    /// The context of `run`, from its command until its first poll.
    pub(crate) run_cx: Option<Context>,
}

/// One component's cell. Its waker queues it for the runner.
pub(crate) struct Cell {
    index: usize,
    queued: AtomicBool,
    queue: Arc<ReadyQueue>,
    io: Mutex<Io>,
}

impl Cell {
    pub(crate) fn new(index: usize, queue: Arc<ReadyQueue>) -> Self {
        Cell {
            index,
            queued: AtomicBool::new(false),
            queue,
            io: Mutex::new(Io::default()),
        }
    }

    pub(crate) fn io(&self) -> MutexGuard<'_, Io> {
        lock(&self.io)
    }

    /// Called by the runner right before it polls the cell: a wake during
    /// that poll queues the cell again.
    pub(crate) fn dequeue(&self) {
        self.queued.store(false, Ordering::SeqCst);
    }
}

impl Wake for Cell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::SeqCst) {
            lock(&self.queue.woken).push(self.index);
            self.queue.runner.wake();
        }
    }
}
