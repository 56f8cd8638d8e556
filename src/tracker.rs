//! [`Tracker`]: counts requests and tasks in flight, so that a component's
//! `stop` can wait for them, on any runtime; its guards and futures.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_timer::Delay;

use crate::latch::{Latch, lock};

/// Counts the requests and tasks a component has in flight, so that its
/// [`stop`](crate::Component::stop) can wait for them within a budget.
///
/// A [`request`](Tracker::request) or a [`task`](Tracker::task) returns a
/// guard that counts until dropped; [`track`](Tracker::track) wraps a future
/// so that it counts while it lives. [`wait`](Tracker::wait) resolves once
/// nothing is in flight, or fails when its budget runs out. `Tracker` is a
/// cheap clone of shared counters, `Send` and `Sync`, and needs no runtime:
/// it works the same under tokio, smol, async-std or
/// `futures::executor`.
///
/// The model, in a component: keep accepting while the lifecycle is in lame
/// duck; when the component's turn to stop comes, stop accepting *first*,
/// then wait for the tracker. A request that starts after `wait` resolved is
/// counted again and can make a later `wait` pend: waiting only means "idle
/// now".
///
/// With the `tower` feature, `tower::LameDuckLayer` counts every request of
/// an HTTP service through a tracker.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use lameduck::{BoxError, Component, Context, Tracker};
///
/// struct Worker {
///     tracker: Tracker,
/// }
///
/// impl Component for Worker {
///     async fn run(&self, cx: &Context) -> Result<(), BoxError> {
///         // Each job holds a guard while it runs: here, one that never ends
///         // on its own would be spawned on your runtime.
///         let _job = self.tracker.task();
///         cx.stop_signal().await;
///         Ok(())
///     }
///
///     async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
///         // Stop taking work, then give what is in flight the stop budget,
///         // less a tenth: the tracker's error, which names what is still
///         // in flight, then arrives before the budget runs out and the
///         // call is cancelled with a plain timeout.
///         let budget = cx.remaining().map_or(Duration::from_secs(30), |r| r - r / 10);
///         self.tracker.wait(budget).await?;
///         Ok(())
///     }
/// }
/// # let lifecycle = lameduck::Lifecycle::builder()
/// #     .component("worker", Worker { tracker: Tracker::new() })
/// #     .build()?;
/// # lifecycle.handle().request_shutdown(None);
/// # futures::executor::block_on(lifecycle.run())?;
/// # Ok::<(), lameduck::Error>(())
/// ```
///
/// # Comparison to `tokio_util::task::TaskTracker`
///
/// `TaskTracker` spawns and waits on tokio only, and waits without a
/// deadline once closed. `Tracker` spawns nothing (wrap a future with
/// [`track`](Tracker::track) and spawn it on any runtime), counts requests
/// apart from tasks, and [`wait`](Tracker::wait) takes the budget a stop
/// has left and says what was still in flight when it ran out.
#[derive(Clone, Default)]
pub struct Tracker {
    inner: Arc<Mutex<Counts>>,
}

#[derive(Default)]
struct Counts {
    requests: usize,
    tasks: usize,
    /// Set while nothing is in flight; replaced by a fresh one when work
    /// starts again.
    idle: Option<Latch>,
}

impl Counts {
    fn total(&self) -> usize {
        self.requests + self.tasks
    }

    fn idle(&mut self) -> Latch {
        self.idle
            .get_or_insert_with(|| {
                let idle = Latch::new();
                idle.set();
                idle
            })
            .clone()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Task,
}

impl Tracker {
    /// A tracker with nothing in flight.
    #[must_use]
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Counts one request until the guard is dropped.
    #[must_use = "the request is counted only while the guard lives"]
    pub fn request(&self) -> RequestGuard {
        RequestGuard {
            _counted: self.enter(Kind::Request),
        }
    }

    /// Counts one task until the guard is dropped.
    #[must_use = "the task is counted only while the guard lives"]
    pub fn task(&self) -> TaskGuard {
        TaskGuard {
            _counted: self.enter(Kind::Task),
        }
    }

    /// Wraps `future` so that it counts as a task from now until it
    /// completes or is dropped. Spawn the result on any runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = lameduck::Tracker::new();
    /// let job = tracker.track(async { 2 + 2 });
    /// assert_eq!(tracker.tasks(), 1);
    /// assert_eq!(futures::executor::block_on(job), 4);
    /// assert_eq!(tracker.tasks(), 0);
    /// ```
    pub fn track<F: Future>(&self, future: F) -> Tracked<F> {
        Tracked {
            future: Box::pin(future),
            guard: Some(self.task()),
        }
    }

    /// Resolves once nothing is in flight, or fails with [`Outstanding`]
    /// when `budget` runs out first. A zero budget checks once;
    /// `Duration::MAX` waits without a deadline.
    ///
    /// # Errors
    ///
    /// [`Outstanding`], naming what was still in flight.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future loses nothing.
    #[must_use = "futures do nothing unless polled"]
    pub fn wait(&self, budget: Duration) -> Wait {
        let deadline = Instant::now().checked_add(budget);
        Wait {
            tracker: self.clone(),
            idle: lock(&self.inner).idle(),
            delay: deadline.map(|_| Delay::new(budget)),
            budget,
        }
    }

    /// Requests in flight.
    pub fn requests(&self) -> usize {
        lock(&self.inner).requests
    }

    /// Tasks in flight.
    pub fn tasks(&self) -> usize {
        lock(&self.inner).tasks
    }

    /// Whether nothing is in flight.
    pub fn is_idle(&self) -> bool {
        lock(&self.inner).total() == 0
    }

    fn enter(&self, kind: Kind) -> Guard {
        let mut counts = lock(&self.inner);
        if counts.total() == 0 {
            counts.idle = Some(Latch::new());
        }
        match kind {
            Kind::Request => counts.requests += 1,
            Kind::Task => counts.tasks += 1,
        }
        Guard {
            tracker: self.clone(),
            kind,
        }
    }
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = lock(&self.inner);
        f.debug_struct("Tracker")
            .field("requests", &counts.requests)
            .field("tasks", &counts.tasks)
            .finish()
    }
}

struct Guard {
    tracker: Tracker,
    kind: Kind,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let idle = {
            let mut counts = lock(&self.tracker.inner);
            match self.kind {
                Kind::Request => counts.requests -= 1,
                Kind::Task => counts.tasks -= 1,
            }
            (counts.total() == 0).then(|| counts.idle())
        };
        // Wake outside the lock: a waiter may start new work at once.
        if let Some(idle) = idle {
            idle.set();
        }
    }
}

/// One request counted by a [`Tracker`] until dropped.
pub struct RequestGuard {
    _counted: Guard,
}

impl fmt::Debug for RequestGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestGuard").finish_non_exhaustive()
    }
}

/// One task counted by a [`Tracker`] until dropped.
pub struct TaskGuard {
    _counted: Guard,
}

impl fmt::Debug for TaskGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGuard").finish_non_exhaustive()
    }
}

/// A future counted as a task by a [`Tracker`] while it lives. Made by
/// [`Tracker::track`].
#[must_use = "futures do nothing unless polled"]
pub struct Tracked<F> {
    future: Pin<Box<F>>,
    guard: Option<TaskGuard>,
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = self.future.as_mut().poll(cx);
        if out.is_ready() {
            // Counted until complete, not until the wrapper is dropped.
            self.guard = None;
        }
        out
    }
}

impl<F> fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("done", &self.guard.is_none())
            .finish_non_exhaustive()
    }
}

/// The future of [`Tracker::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct Wait {
    tracker: Tracker,
    idle: Latch,
    delay: Option<Delay>,
    budget: Duration,
}

impl Future for Wait {
    type Output = Result<(), Outstanding>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if Pin::new(&mut this.idle).poll(cx).is_ready() {
            // Idle for a moment; work may have started again since.
            if this.tracker.is_idle() {
                return Poll::Ready(Ok(()));
            }
            this.idle = lock(&this.tracker.inner).idle();
            if Pin::new(&mut this.idle).poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
        }
        let expired = match &mut this.delay {
            Some(delay) => Pin::new(delay).poll(cx).is_ready(),
            None => false,
        };
        if !expired {
            return Poll::Pending;
        }
        let counts = lock(&this.tracker.inner);
        Poll::Ready(Err(Outstanding {
            requests: counts.requests,
            tasks: counts.tasks,
            budget: this.budget,
        }))
    }
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("tracker", &self.tracker)
            .field("budget", &self.budget)
            .finish()
    }
}

/// What was still in flight when a [`Tracker::wait`] ran out of budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outstanding {
    requests: usize,
    tasks: usize,
    budget: Duration,
}

impl Outstanding {
    /// Requests still in flight.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Tasks still in flight.
    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// The budget that ran out.
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

impl fmt::Display for Outstanding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} request(s) and {} task(s) still in flight after {:?}",
            self.requests, self.tasks, self.budget
        )
    }
}

impl StdError for Outstanding {}
