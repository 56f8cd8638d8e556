//! The timeline of a lifecycle: when each component started, became ready,
//! stopped or was closed.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cause::ShutdownCause;
use crate::machine::Moments;
use crate::phase::Phase;

mod index;

use self::index::NameIndex;

/// Where a component's life ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ComponentState {
    /// Registered, not started (yet, or ever: shutdown came first).
    Pending,
    /// `start` in progress.
    Starting,
    /// `start` succeeded; waiting for readiness.
    Started,
    /// Ready and running.
    Ready,
    /// `start` or readiness failed, or `run` ended before ready.
    Failed,
    /// Being stopped.
    Stopping,
    /// Stopped gracefully.
    Stopped,
    /// Closed forcefully.
    Closed,
    /// Its `run` failed and it is being stopped, waiting, started or
    /// readied again under its [restart policy](crate::Restart).
    Restarting,
}

impl ComponentState {
    fn as_str(self) -> &'static str {
        match self {
            ComponentState::Pending => "pending",
            ComponentState::Starting => "starting",
            ComponentState::Started => "started",
            ComponentState::Ready => "ready",
            ComponentState::Failed => "failed",
            ComponentState::Stopping => "stopping",
            ComponentState::Stopped => "stopped",
            ComponentState::Closed => "closed",
            ComponentState::Restarting => "restarting",
        }
    }
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One component's timeline. Instants are offsets from the creation of the
/// lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComponentRecord {
    /// The component's name.
    pub name: Arc<str>,
    /// Where it is now.
    pub state: ComponentState,
    /// When `start` was called.
    pub start_at: Option<Duration>,
    /// How long `start` took.
    pub start_took: Option<Duration>,
    /// When it became ready.
    pub ready_at: Option<Duration>,
    /// How many readiness attempts it took.
    pub attempts: u32,
    /// When its `run` ended.
    pub run_ended_at: Option<Duration>,
    /// When its stop began.
    pub stop_at: Option<Duration>,
    /// How long the graceful stop took (stop plus the wait for `run`).
    pub stop_took: Option<Duration>,
    /// When `close` was called, if it was.
    pub close_at: Option<Duration>,
    /// How long `close` took.
    pub close_took: Option<Duration>,
    /// Behind one pointer: most components never fail, and a report row
    /// stays small (and cheap to copy into a report).
    pub(crate) failures: Option<Arc<Failures>>,
    pub(crate) dependencies: Dependencies,
}

/// How many of a component's latest [failures](ComponentRecord::failures)
/// its report row keeps; [`restarts`](ComponentRecord::restarts) counts
/// them all.
pub const KEPT_FAILURES: usize = 16;

/// The failures a component was restarted after: how many, and the
/// latest [`KEPT_FAILURES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Failures {
    count: u32,
    latest: Vec<RunFailure>,
}

impl Failures {
    /// One more failure, the oldest kept one dropped past the limit.
    pub(crate) fn push(&mut self, failure: RunFailure) {
        self.count = self.count.saturating_add(1);
        if self.latest.len() == KEPT_FAILURES {
            self.latest.remove(0);
        }
        self.latest.push(failure);
    }
}

/// A failure of a component's `run` that it was restarted after.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFailure {
    /// When `run` ended, from the creation of the lifecycle.
    pub at: Duration,
    /// The error, as displayed with its causes (`{:#}`).
    pub error: String,
}

/// The names a component depends on; one name (the default chain's
/// previous component, most often) needs no allocation of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Dependencies {
    One(Arc<str>),
    List(Option<Arc<Vec<Arc<str>>>>),
}

impl ComponentRecord {
    pub(crate) fn new(name: Arc<str>) -> Self {
        ComponentRecord {
            name,
            state: ComponentState::Pending,
            start_at: None,
            start_took: None,
            ready_at: None,
            attempts: 0,
            run_ended_at: None,
            stop_at: None,
            stop_took: None,
            close_at: None,
            close_took: None,
            failures: None,
            dependencies: Dependencies::List(None),
        }
    }

    /// How many times it was restarted after its `run` failed (see
    /// [`Restart`](crate::Restart)), all counted, though only the latest
    /// [failures](Self::failures) are kept. Its stamps are those of its
    /// latest start.
    pub fn restarts(&self) -> u32 {
        self.failures.as_ref().map_or(0, |f| f.count)
    }

    /// The latest failures of its `run` that it was restarted after,
    /// oldest first: at most [`KEPT_FAILURES`], so that a large budget
    /// spent over a long life keeps the report small (empty without a
    /// [restart policy](crate::Restart)).
    pub fn failures(&self) -> &[RunFailure] {
        self.failures
            .as_deref()
            .map_or(&[], |f| f.latest.as_slice())
    }

    /// The components this one depends on, in the order named: those given
    /// to [`ComponentOptions::depends_on`](crate::ComponentOptions::depends_on),
    /// each once, or else the component registered just before it (none for
    /// the first; for a component registered while running, the one
    /// launched last). Empty for a component without dependencies.
    pub fn dependencies(&self) -> &[Arc<str>] {
        match &self.dependencies {
            Dependencies::One(name) => std::slice::from_ref(name),
            Dependencies::List(list) => list.as_deref().map_or(&[], Vec::as_slice),
        }
    }
}

/// The timeline of a lifecycle, returned by
/// [`Lifecycle::run`](crate::Lifecycle::run) and snapshotted by
/// [`Handle::report`](crate::Handle::report). Its `Display` is a table,
/// with a line under it for each component that
/// [restarted](ComponentRecord::restarts) (its latest failure).
///
/// # Examples
///
/// ```
/// use lameduck::Lifecycle;
///
/// struct Noop;
/// impl lameduck::Component for Noop {}
///
/// let lifecycle = Lifecycle::builder().component("noop", Noop).build().unwrap();
/// lifecycle.handle().request_shutdown(None);
/// let report = futures::executor::block_on(lifecycle.run()).unwrap();
/// println!("{report}");
/// assert_eq!(report.components().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    phase: Phase,
    elapsed: Duration,
    shutdown_at: Option<Duration>,
    cause: Option<ShutdownCause>,
    components: Arc<Vec<ComponentRecord>>,
    by_name: NameIndex,
}

/// The report rows as the lifecycle keeps them: its own while no report
/// holds them, so that writing a row checks nothing; shared with the
/// reports taken of it otherwise. Taking a report copies no row (the rows
/// move into a shared allocation), and the lifecycle copies the rows only
/// when it writes to them while an earlier report still holds them; the
/// first write after every such report is dropped takes them back. The
/// final report of a run shares the rows the lifecycle keeps, which
/// `Handle::report` gives out from then on.
pub(crate) enum Records {
    Own(Vec<ComponentRecord>),
    Shared(Arc<Vec<ComponentRecord>>),
}

impl Records {
    /// The rows, to hand to a report: shared from now on.
    pub(crate) fn share(&mut self) -> Arc<Vec<ComponentRecord>> {
        let rows = match std::mem::take(self) {
            Records::Own(rows) => Arc::new(rows),
            Records::Shared(rows) => rows,
        };
        *self = Records::Shared(Arc::clone(&rows));
        rows
    }

    /// The rows to write to, taken back (copied if a report still holds
    /// them) when they were shared.
    #[cold]
    fn take_back(&mut self) -> &mut Vec<ComponentRecord> {
        *self = Records::Own(match std::mem::take(self) {
            Records::Own(rows) => rows,
            Records::Shared(rows) => Arc::unwrap_or_clone(rows),
        });
        match self {
            Records::Own(rows) => rows,
            Records::Shared(_) => unreachable!("the rows were just taken back"),
        }
    }
}

impl Default for Records {
    fn default() -> Self {
        Records::Own(Vec::new())
    }
}

impl std::ops::Deref for Records {
    type Target = Vec<ComponentRecord>;

    #[inline]
    fn deref(&self) -> &Vec<ComponentRecord> {
        match self {
            Records::Own(rows) => rows,
            Records::Shared(rows) => rows,
        }
    }
}

/// A write checks nothing while the rows are the lifecycle's own.
impl std::ops::DerefMut for Records {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<ComponentRecord> {
        match self {
            Records::Own(rows) => rows,
            Records::Shared(_) => self.take_back(),
        }
    }
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

impl Report {
    /// The report of a lifecycle born at `epoch`, in `phase`, from what
    /// its phase machine recorded.
    pub(crate) fn new(
        epoch: Instant,
        phase: Phase,
        moments: &Moments,
        components: impl Into<Arc<Vec<ComponentRecord>>>,
    ) -> Self {
        Report {
            phase,
            elapsed: epoch.elapsed(),
            shutdown_at: moments
                .shutdown_at()
                .map(|t| t.saturating_duration_since(epoch)),
            cause: moments.cause().cloned(),
            components: components.into(),
            by_name: NameIndex::default(),
        }
    }

    /// The phase when the report was taken.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Time from the creation of the lifecycle to the report.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// When shutdown was requested, as an offset.
    pub fn shutdown_at(&self) -> Option<Duration> {
        self.shutdown_at
    }

    /// Why the shutdown began, if it has. See [`ShutdownCause`].
    pub fn shutdown_cause(&self) -> Option<&ShutdownCause> {
        self.cause.as_ref()
    }

    /// Every component, in launch order: registration order unless
    /// [dependencies](crate::ComponentOptions::depends_on) asked otherwise.
    pub fn components(&self) -> &[ComponentRecord] {
        &self.components
    }

    /// One component by name. Constant time on average: a large report
    /// indexes its components by name on the first look-up.
    pub fn component(&self, name: &str) -> Option<&ComponentRecord> {
        self.by_name
            .find(&self.components, name)
            .map(|i| &self.components[i])
    }
}

mod table;

#[cfg(test)]
mod tests;
