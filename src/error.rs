//! The crate's one error type.

use std::sync::Arc;
use std::time::Duration;

use crate::phase::{Phase, Step};
use crate::report::Report;

mod display;

/// A boxed error: what user code returns from [`Component`](crate::Component),
/// [`Drainer`](crate::Drainer) and stop-hook methods.
///
/// Any `std::error::Error + Send + Sync`, a `String` or a `&str` converts into
/// it with `?` or `.into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, without the details. See [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A user method returned an error.
    Failed,
    /// A user method panicked; the message is kept.
    Panicked,
    /// A call overran its budget and was cancelled.
    TimedOut,
    /// The readiness check did not pass within its attempts.
    NotReady,
    /// A component's `run` ended before the component was ready.
    Exited,
    /// A stop was requested with an error.
    Requested,
    /// The lifecycle is shutting down (or has stopped): the registration was
    /// refused and nothing changed.
    ShuttingDown,
    /// An option or registration is invalid (zero attempts, duplicate name…).
    Config,
    /// The shutdown was forced: graceful waits were skipped.
    Forced,
    /// A component's `run` was on its own task (see
    /// [`LifecycleBuilder::spawner`](crate::LifecycleBuilder::spawner)) and
    /// the executor dropped that task before it finished, as a runtime
    /// does when it shuts down.
    Dropped,
}

/// An error from the lifecycle, naming the component (or drainer, hook) and
/// the step it happened in.
///
/// The error returned by [`Lifecycle::run`](crate::Lifecycle::run) is the
/// *primary* error, the first one recorded; every later error is attached
/// and reachable through [`Error::others`] (or [`Error::iter`], primary
/// first), and the run's [`Report`] through [`Error::report`].
///
/// # Display and source
///
/// `Display` shows the error's own message (which part, which step, what
/// kind, and the panic message or the budget); the user's error it wraps is
/// not repeated there but returned by [`source`](std::error::Error::source),
/// so error reporters such as `anyhow` print each cause once. The alternate
/// form `{:#}` prints everything: every error of the run, one per line, each
/// followed by its chain of sources.
///
/// # Examples
///
/// ```
/// use lameduck::{Component, Context, BoxError, Lifecycle};
///
/// struct Broken;
/// impl Component for Broken {
///     async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
///         Err("no database".into())
///     }
/// }
///
/// let err = futures::executor::block_on(
///     Lifecycle::builder().component("db", Broken).build().unwrap().run(),
/// )
/// .unwrap_err();
/// assert_eq!(err.component(), Some("db"));
/// assert_eq!(err.step(), Some(lameduck::Step::Start));
/// assert!(err.is_failed());
/// assert_eq!(err.to_string(), "`db` failed in start");
/// assert_eq!(format!("{err:#}"), "`db` failed in start: no database");
/// let source = std::error::Error::source(&err).unwrap();
/// assert_eq!(source.to_string(), "no database");
/// assert!(err.report().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    component: Option<String>,
    step: Option<Step>,
    phase: Option<Phase>,
    budget: Option<Duration>,
    detail: Option<String>,
    /// What the engine adds about the error's consequence (a spent restart
    /// budget), kept apart from `detail`, which may be a panic's message.
    note: Option<String>,
    source: Option<BoxError>,
    others: Vec<Error>,
    report: Option<Report>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                component: None,
                step: None,
                phase: None,
                budget: None,
                detail: None,
                note: None,
                source: None,
                others: Vec::new(),
                report: None,
            }),
        }
    }

    /// The inner data, owned: errors are built before they are shared, so
    /// this is a move; a shared one is copied (its source as text).
    fn into_inner(self) -> Inner {
        Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            kind: shared.kind,
            component: shared.component.clone(),
            step: shared.step,
            phase: shared.phase,
            budget: shared.budget,
            detail: shared.detail.clone(),
            note: shared.note.clone(),
            source: shared.source.as_ref().map(|s| s.to_string().into()),
            others: shared.others.clone(),
            report: shared.report.clone(),
        })
    }

    fn map(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = self.into_inner();
        f(&mut inner);
        Error {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn with_component(self, name: &str) -> Self {
        self.map(|i| i.component = Some(name.to_owned()))
    }

    pub(crate) fn with_step(self, step: Step) -> Self {
        self.map(|i| i.step = Some(step))
    }

    pub(crate) fn with_phase(self, phase: Phase) -> Self {
        self.map(|i| i.phase = Some(phase))
    }

    pub(crate) fn with_budget(self, budget: Duration) -> Self {
        self.map(|i| i.budget = Some(budget))
    }

    pub(crate) fn with_detail(self, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        self.map(|i| i.detail = Some(detail))
    }

    /// A note shown after the error's detail, in parentheses; it never
    /// changes [`panic_message`](Error::panic_message).
    pub(crate) fn with_note(self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.map(|i| i.note = Some(note))
    }

    pub(crate) fn with_source(self, source: BoxError) -> Self {
        self.map(|i| i.source = Some(source))
    }

    pub(crate) fn with_others(self, others: Vec<Error>) -> Self {
        self.map(|i| i.others = others)
    }

    pub(crate) fn with_report(self, report: Report) -> Self {
        self.map(|i| i.report = Some(report))
    }

    pub(crate) fn config(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config)
            .with_step(Step::Register)
            .with_detail(detail)
    }

    pub(crate) fn shutting_down() -> Self {
        Error::new(ErrorKind::ShuttingDown).with_step(Step::Register)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The name of the component, drainer or stop hook, if the error belongs
    /// to one.
    pub fn component(&self) -> Option<&str> {
        self.inner.component.as_deref()
    }

    /// The method or step the error happened in.
    pub fn step(&self) -> Option<Step> {
        self.inner.step
    }

    /// The lifecycle phase the error happened in.
    pub fn phase(&self) -> Option<Phase> {
        self.inner.phase
    }

    /// For a timeout, the budget that was overrun.
    pub fn budget(&self) -> Option<Duration> {
        self.inner.budget
    }

    /// The panic message, for an error of kind [`ErrorKind::Panicked`].
    pub fn panic_message(&self) -> Option<&str> {
        match self.inner.kind {
            ErrorKind::Panicked => self.inner.detail.as_deref(),
            _ => None,
        }
    }

    /// Every error recorded after this one, in the order they happened.
    ///
    /// Only the primary error returned by
    /// [`Lifecycle::run`](crate::Lifecycle::run) has any.
    pub fn others(&self) -> &[Error] {
        &self.inner.others
    }

    /// This error, then every attached one, in the order they happened.
    ///
    /// # Examples
    ///
    /// ```
    /// use lameduck::Lifecycle;
    ///
    /// let lifecycle = Lifecycle::builder().build().unwrap();
    /// let handle = lifecycle.handle();
    /// handle.request_shutdown(Some("deploy".into()));
    /// handle.request_shutdown(Some("second thoughts".into()));
    /// let err = futures::executor::block_on(lifecycle.run()).unwrap_err();
    /// let causes: Vec<String> = err
    ///     .iter()
    ///     .map(|e| std::error::Error::source(e).unwrap().to_string())
    ///     .collect();
    /// assert_eq!(causes, ["deploy", "second thoughts"]);
    /// ```
    pub fn iter(&self) -> Errors<'_> {
        Errors {
            first: Some(self),
            others: self.inner.others.iter(),
        }
    }

    /// The report of the run this error ended, for the error returned by
    /// [`Lifecycle::run`](crate::Lifecycle::run): what a successful run
    /// returns, so a failed run's timeline can be printed too.
    pub fn report(&self) -> Option<&Report> {
        self.inner.report.as_ref()
    }

    /// Whether a user method returned an error.
    pub fn is_failed(&self) -> bool {
        self.inner.kind == ErrorKind::Failed
    }

    /// Whether a user method panicked.
    pub fn is_panic(&self) -> bool {
        self.inner.kind == ErrorKind::Panicked
    }

    /// Whether a call overran its budget.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::TimedOut
    }

    /// Whether a readiness check ran out of attempts.
    pub fn is_not_ready(&self) -> bool {
        self.inner.kind == ErrorKind::NotReady
    }

    /// Whether a registration was refused because shutdown had begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.kind == ErrorKind::ShuttingDown
    }

    /// Whether an option or registration was invalid.
    pub fn is_config(&self) -> bool {
        self.inner.kind == ErrorKind::Config
    }

    /// Whether the shutdown was forced.
    pub fn is_forced(&self) -> bool {
        self.inner.kind == ErrorKind::Forced
    }

    /// Whether a component's `run` task was dropped by its executor.
    pub fn is_dropped(&self) -> bool {
        self.inner.kind == ErrorKind::Dropped
    }

    /// Whether the error came from a shutdown requested with an error.
    pub fn is_requested(&self) -> bool {
        self.inner.kind == ErrorKind::Requested
    }
}

/// The iterator returned by [`Error::iter`]: the error itself, then every
/// attached error.
#[derive(Debug, Clone)]
#[must_use = "iterators do nothing unless consumed"]
pub struct Errors<'a> {
    first: Option<&'a Error>,
    others: std::slice::Iter<'a, Error>,
}

impl<'a> Iterator for Errors<'a> {
    type Item = &'a Error;

    fn next(&mut self) -> Option<&'a Error> {
        self.first.take().or_else(|| self.others.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.first.is_some()) + self.others.len();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Errors<'_> {}

impl<'a> IntoIterator for &'a Error {
    type Item = &'a Error;
    type IntoIter = Errors<'a>;

    fn into_iter(self) -> Errors<'a> {
        self.iter()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Turns a caught panic payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
