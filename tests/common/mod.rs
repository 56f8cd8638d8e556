//! Shared helpers for the rule tests: an event log, a configurable test
//! component, drainers and hooks that log, and a bounded runner.
#![allow(dead_code)] // each test file uses its own subset

pub mod runtimes;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures_timer::Delay;
use lameduck::{
    BoxError, Component, Context, Drainer, Error, Handle, Health, HealthChecker, Lifecycle, Report,
    Step,
};

/// The bound every lifecycle in these tests must finish within.
pub const LIMIT: Duration = Duration::from_secs(5);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub async fn sleep(d: Duration) {
    Delay::new(d).await;
}

/// Panics if `fut` takes longer than [`LIMIT`]: an async test's bound, on
/// whatever runtime drives it.
pub async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    let limit = std::pin::pin!(sleep(LIMIT));
    match futures::future::select(std::pin::pin!(fut), limit).await {
        futures::future::Either::Left((out, _)) => out,
        futures::future::Either::Right(((), _)) => panic!("not done within {LIMIT:?}"),
    }
}

/// An ordered log of events such as `start a`, `ready a`, `stop a`.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The events whose first word is one of `kinds`, in order.
    pub fn only(&self, kinds: &[&str]) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| kinds.contains(&e.split(' ').next().unwrap_or("")))
            .collect()
    }

    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }

    pub fn has(&self, event: &str) -> bool {
        self.count(event) > 0
    }

    /// Index of the first occurrence; panics (showing the log) if absent.
    pub fn pos(&self, event: &str) -> usize {
        let events = self.events();
        events
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("`{event}` not in {events:?}"))
    }

    /// Index of the last occurrence; panics if absent.
    pub fn last_pos(&self, event: &str) -> usize {
        let events = self.events();
        events
            .iter()
            .rposition(|e| e == event)
            .unwrap_or_else(|| panic!("`{event}` not in {events:?}"))
    }

    pub fn assert_before(&self, a: &str, b: &str) {
        assert!(
            self.last_pos(a) < self.pos(b),
            "expected every `{a}` before `{b}` in {:?}",
            self.events()
        );
    }

    /// Waits (on this thread) until `event` is logged; panics after `LIMIT`.
    pub fn wait_for(&self, event: &str) {
        let t0 = Instant::now();
        while !self.has(event) {
            assert!(
                t0.elapsed() < LIMIT,
                "`{event}` never logged: {:?}",
                self.events()
            );
            std::thread::sleep(ms(2));
        }
    }
}

/// What a test component's method does.
#[derive(Debug, Clone, Copy)]
pub enum Act {
    /// Return `Ok` at once.
    Ok,
    /// Return an error `"<method> <name> failed"`.
    Fail,
    /// Panic with `"<method> <name> panicked"`.
    Panic,
    /// Never finish (pending forever, not blocking the thread).
    Hang,
    /// Wait for the component's stop signal, then return `Ok`.
    UntilStop,
    /// Block the thread for this long, then return `Ok`.
    Block(Duration),
    /// Sleep (asynchronously) this long, then do the second act.
    After(Duration, &'static Act),
}

impl Act {
    pub const fn sleep(d: Duration) -> Act {
        Act::After(d, &Act::Ok)
    }
}

/// Performs `act` for `method` of `name`.
pub async fn perform(act: Act, method: &str, name: &str, cx: &Context) -> Result<(), BoxError> {
    let mut act = act;
    loop {
        match act {
            Act::Ok => return Ok(()),
            Act::Fail => return Err(format!("{method} {name} failed").into()),
            Act::Panic => panic!("{method} {name} panicked"),
            Act::Hang => futures::future::pending::<()>().await,
            Act::UntilStop => {
                cx.stop_signal().await;
                return Ok(());
            }
            Act::Block(d) => {
                std::thread::sleep(d);
                return Ok(());
            }
            Act::After(d, next) => {
                sleep(d).await;
                act = *next;
            }
        }
    }
}

/// Logs `cancel <what>` if dropped before `done`, `panic <what>` if
/// dropped by a panic.
struct Watch {
    log: Log,
    what: String,
    done: bool,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.log.push(format!("panic {}", self.what));
        } else if !self.done {
            self.log.push(format!("cancel {}", self.what));
        }
    }
}

/// Logs `<method> <name>` on entry, `<method>-end <name>` on return and
/// `cancel <method> <name>` if dropped unfinished.
pub async fn traced<T>(log: &Log, method: &str, name: &str, fut: impl Future<Output = T>) -> T {
    log.push(format!("{method} {name}"));
    let mut watch = Watch {
        log: log.clone(),
        what: format!("{method} {name}"),
        done: false,
    };
    let out = fut.await;
    watch.done = true;
    log.push(format!("{method}-end {name}"));
    out
}

/// A test component: each method's behaviour is set by an [`Act`]. Logs
/// every call (see [`traced`]) and `drop <name>` when dropped.
pub struct Probe {
    name: String,
    log: Log,
    start: Act,
    ready: Act,
    not_ready_for: u32,
    run: Act,
    stop: Act,
    close: Act,
    ready_calls: AtomicU32,
}

/// A probe named `name` that starts, is ready, runs until its stop signal,
/// stops and closes fine.
pub fn probe(log: &Log, name: &str) -> Probe {
    Probe {
        name: name.to_owned(),
        log: log.clone(),
        start: Act::Ok,
        ready: Act::Ok,
        not_ready_for: 0,
        run: Act::UntilStop,
        stop: Act::Ok,
        close: Act::Ok,
        ready_calls: AtomicU32::new(0),
    }
}

impl Probe {
    pub fn start(mut self, act: Act) -> Self {
        self.start = act;
        self
    }
    /// What `ready` does once it stops answering `Ok(false)`; `Ok` means
    /// `Ok(true)`.
    pub fn ready(mut self, act: Act) -> Self {
        self.ready = act;
        self
    }
    /// `ready` answers `Ok(false)` this many times first.
    pub fn not_ready_for(mut self, n: u32) -> Self {
        self.not_ready_for = n;
        self
    }
    pub fn run(mut self, act: Act) -> Self {
        self.run = act;
        self
    }
    pub fn stop(mut self, act: Act) -> Self {
        self.stop = act;
        self
    }
    pub fn close(mut self, act: Act) -> Self {
        self.close = act;
        self
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.log.push(format!("drop {}", self.name));
    }
}

impl Component for Probe {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        let f = perform(self.start, "start", &self.name, cx);
        traced(&self.log, "start", &self.name, f).await
    }

    async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
        let n = self.ready_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let not_ready = n <= self.not_ready_for;
        let f = async {
            if not_ready {
                Ok(false)
            } else {
                perform(self.ready, "ready", &self.name, cx)
                    .await
                    .map(|()| true)
            }
        };
        traced(&self.log, "ready", &self.name, f).await
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let f = perform(self.run, "run", &self.name, cx);
        traced(&self.log, "run", &self.name, f).await
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        let f = perform(self.stop, "stop", &self.name, cx);
        traced(&self.log, "stop", &self.name, f).await
    }

    async fn close(&self, cx: &Context) -> Result<(), BoxError> {
        let f = perform(self.close, "close", &self.name, cx);
        traced(&self.log, "close", &self.name, f).await
    }
}

/// A health check that always passes.
pub struct AlwaysHealthy;

impl HealthChecker for AlwaysHealthy {
    async fn check(&self) -> Health {
        Health::Healthy
    }
}

/// A drainer that logs `drain <name>` and does `act`.
pub struct Drain {
    name: String,
    log: Log,
    act: Act,
}

pub fn drain(log: &Log, name: &str, act: Act) -> Drain {
    Drain {
        name: name.to_owned(),
        log: log.clone(),
        act,
    }
}

impl Drainer for Drain {
    async fn drain(&self, cx: &Context) -> Result<(), BoxError> {
        let f = perform(self.act, "drain", &self.name, cx);
        traced(&self.log, "drain", &self.name, f).await
    }
}

/// A stop hook that logs `hook <name>` and does `act`.
pub fn hook(
    log: &Log,
    name: &str,
    act: Act,
) -> impl FnOnce(Context) -> futures::future::BoxFuture<'static, Result<(), BoxError>> + Send + 'static
{
    let log = log.clone();
    let name = name.to_owned();
    move |cx: Context| {
        Box::pin(async move {
            let f = perform(act, "hook", &name, &cx);
            traced(&log, "hook", &name, f).await
        })
    }
}

/// Runs the lifecycle on its own thread with `block_on`; panics if it has
/// not returned within `limit`. Returns the result and the time it took.
pub fn run_within(lifecycle: Lifecycle, limit: Duration) -> (Result<Report, Error>, Duration) {
    let run = lifecycle.run();
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let out = block_on(run);
        let _ = tx.send((out, t0.elapsed()));
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("lifecycle did not return within {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("lifecycle run panicked"),
    }
}

/// [`run_within`] with the default [`LIMIT`].
pub fn run(lifecycle: Lifecycle) -> (Result<Report, Error>, Duration) {
    run_within(lifecycle, LIMIT)
}

/// Requests a stop (without an error) as soon as every component is ready.
pub fn stop_when_ready(handle: &Handle) -> std::thread::JoinHandle<bool> {
    let handle = handle.clone();
    std::thread::spawn(move || {
        let ready = block_on(handle.ready());
        handle.request_shutdown(None);
        ready
    })
}

/// Runs the lifecycle ([`run`]), requesting a stop as soon as every
/// component is ready ([`stop_when_ready`]). Returns the result, the time it
/// took, and whether every component was ready.
pub fn run_until_ready(lifecycle: Lifecycle) -> (Result<Report, Error>, Duration, bool) {
    let stopper = stop_when_ready(&lifecycle.handle());
    let (out, took) = run(lifecycle);
    let ready = stopper.join().unwrap();
    (out, took, ready)
}

/// Requests a stop (without an error) once `event` is logged. The thread
/// returns what `request_shutdown` returned.
pub fn stop_on(log: &Log, handle: &Handle, event: &str) -> std::thread::JoinHandle<bool> {
    let (log, handle, event) = (log.clone(), handle.clone(), event.to_owned());
    std::thread::spawn(move || {
        log.wait_for(&event);
        handle.request_shutdown(None)
    })
}

/// Once every component is ready, requests a stop, waits until `event` is
/// logged, then forces the shutdown. The thread returns what `force_shutdown`
/// returned.
pub fn force_on(log: &Log, handle: &Handle, event: &str) -> std::thread::JoinHandle<bool> {
    let (log, handle, event) = (log.clone(), handle.clone(), event.to_owned());
    std::thread::spawn(move || {
        block_on(handle.ready());
        handle.request_shutdown(None);
        log.wait_for(&event);
        handle.force_shutdown()
    })
}

/// Runs `f` on another thread after `delay`.
pub fn after(delay: Duration, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        f();
    })
}

/// One error and its chain of sources, joined by `: `, as error reporters
/// print it.
pub fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The primary error followed by every attached one.
pub fn all_errors(error: &Error) -> Vec<Error> {
    std::iter::once(error.clone())
        .chain(error.others().iter().cloned())
        .collect()
}

/// The one error about `component` in `step`; panics if there is not
/// exactly one.
pub fn find(error: &Error, component: &str, step: Step) -> Error {
    let all = all_errors(error);
    let found: Vec<_> = all
        .iter()
        .filter(|e| e.component() == Some(component) && e.step() == Some(step))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one error for `{component}` in {step}, got {all:#?}"
    );
    found[0].clone()
}

/// The error, or a panic naming the report that came back instead.
pub fn expect_err(out: Result<Report, Error>) -> Error {
    match out {
        Ok(report) => panic!("expected an error, got Ok:\n{report}"),
        Err(e) => e,
    }
}

/// The report, or a panic showing every error.
pub fn expect_ok(out: Result<Report, Error>) -> Report {
    match out {
        Ok(report) => report,
        Err(e) => panic!("expected Ok, got {:#?}", all_errors(&e)),
    }
}
