//! Restarts (`ComponentOptions::restart`): a component whose `run` fails
//! after it was ready is stopped, started and readied again while the rest
//! keeps running, within its budget; on every runtime and with the
//! spawner. The budget's own rules are unit-tested with the policy.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, ComponentState, Context, Error, Handle,
    Lifecycle, ProbeRequest, Report, Restart, Step,
};

// ------------------------------------------------------------ test parts

/// A component whose `run` fails (or panics) its first `fails` times, a
/// few milliseconds after it begins; from the start number `hang_ready_from`
/// on, its readiness check never answers. Logs `start`, `ready`, `run`,
/// `run-failed`, `run-end`, `stop` and `close` with its name.
struct Flaky {
    name: String,
    log: Log,
    fails: u32,
    panics: bool,
    hang_start_from: u32,
    fail_start_from: u32,
    hang_ready_from: u32,
    starts: AtomicU32,
    runs: AtomicU32,
}

fn flaky(log: &Log, name: &str, fails: u32) -> Flaky {
    Flaky {
        name: name.to_owned(),
        log: log.clone(),
        fails,
        panics: false,
        hang_start_from: u32::MAX,
        fail_start_from: u32::MAX,
        hang_ready_from: u32::MAX,
        starts: AtomicU32::new(0),
        runs: AtomicU32::new(0),
    }
}

impl Flaky {
    /// Panics where it would return its error.
    fn panicking(mut self) -> Self {
        self.panics = true;
        self
    }

    /// From its `start`-th start on, that start never returns.
    fn hanging_start_from(mut self, start: u32) -> Self {
        self.hang_start_from = start;
        self
    }

    /// From its `start`-th start on, that start fails.
    fn failing_start_from(mut self, start: u32) -> Self {
        self.fail_start_from = start;
        self
    }

    /// From its `start`-th start on, its readiness check never answers.
    fn hanging_ready_from(mut self, start: u32) -> Self {
        self.hang_ready_from = start;
        self
    }
}

impl Component for Flaky {
    async fn start(&self, _: &Context) -> Result<(), BoxError> {
        let n = self.starts.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.push(format!("start {}", self.name));
        if n >= self.hang_start_from {
            futures::future::pending::<()>().await;
        }
        if n >= self.fail_start_from {
            return Err(format!("{} cannot start again", self.name).into());
        }
        Ok(())
    }

    async fn ready(&self, _: &Context) -> Result<bool, BoxError> {
        self.log.push(format!("ready {}", self.name));
        if self.starts.load(Ordering::SeqCst) >= self.hang_ready_from {
            futures::future::pending::<()>().await;
        }
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.push(format!("run {}", self.name));
        if n <= self.fails {
            sleep(ms(5)).await;
            self.log.push(format!("run-failed {}", self.name));
            if self.panics {
                panic!("{} broke", self.name);
            }
            return Err(format!("{} broke", self.name).into());
        }
        cx.stop_signal().await;
        self.log.push(format!("run-end {}", self.name));
        Ok(())
    }

    async fn stop(&self, _: &Context) -> Result<(), BoxError> {
        self.log.push(format!("stop {}", self.name));
        Ok(())
    }

    async fn close(&self, _: &Context) -> Result<(), BoxError> {
        self.log.push(format!("close {}", self.name));
        Ok(())
    }
}

/// Logs, from `t0`, when each life's `start` begins and its readiness
/// answers; its first `run` fails after `fail_after`, later ones run until
/// stopped.
struct Timed {
    t0: Instant,
    fail_after: Duration,
    runs: AtomicU32,
    stops: AtomicU32,
    starts: Mutex<Vec<Duration>>,
    readies: Mutex<Vec<Duration>>,
}

impl Timed {
    fn new(t0: Instant, fail_after: Duration) -> Arc<Self> {
        Arc::new(Timed {
            t0,
            fail_after,
            runs: AtomicU32::new(0),
            stops: AtomicU32::new(0),
            starts: Mutex::new(Vec::new()),
            readies: Mutex::new(Vec::new()),
        })
    }
}

struct Shared(Arc<Timed>);

impl Component for Shared {
    async fn start(&self, _: &Context) -> Result<(), BoxError> {
        self.0.starts.lock().unwrap().push(self.0.t0.elapsed());
        Ok(())
    }

    async fn ready(&self, _: &Context) -> Result<bool, BoxError> {
        self.0.readies.lock().unwrap().push(self.0.t0.elapsed());
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        if self.0.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            sleep(self.0.fail_after).await;
            return Err("broke".into());
        }
        cx.stop_signal().await;
        Ok(())
    }

    async fn stop(&self, _: &Context) -> Result<(), BoxError> {
        self.0.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Whose `run` fails once the whole lifecycle is launched.
struct FailsWhenLaunched {
    name: &'static str,
    log: Log,
}

fn fails_when_launched(log: &Log, name: &'static str) -> FailsWhenLaunched {
    FailsWhenLaunched {
        name,
        log: log.clone(),
    }
}

impl Component for FailsWhenLaunched {
    async fn start(&self, _: &Context) -> Result<(), BoxError> {
        self.log.push(format!("start {}", self.name));
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        cx.handle().ready().await;
        Err(format!("{} broke", self.name).into())
    }

    async fn stop(&self, _: &Context) -> Result<(), BoxError> {
        self.log.push(format!("stop {}", self.name));
        Ok(())
    }

    async fn close(&self, _: &Context) -> Result<(), BoxError> {
        self.log.push(format!("close {}", self.name));
        Ok(())
    }
}

/// Fails its first `fails` runs, each with its own number, as soon as it
/// is ready.
struct Numbered {
    fails: u32,
    runs: AtomicU32,
}

impl Component for Numbered {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fails {
            // Once ready (the only component, so once the lifecycle is):
            // a failure before would end the launch.
            while !cx.handle().is_ready() {
                sleep(ms(1)).await;
            }
            return Err(format!("failure #{n}").into());
        }
        cx.stop_signal().await;
        Ok(())
    }
}

/// When the shutdown begins around the restart of [`FailsInRestart`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    /// Never during the restart: requested once it recovered.
    After,
    /// Requested by the test while the failing call waits for a gate,
    /// which the test opens right after (in the same poll): the call
    /// fails once shutdown has begun, and the runner reads its failure
    /// only then.
    WhileItWaits,
    /// Requested by the failing call itself, just before it fails.
    FromTheCall,
}

/// `flaky`: its first `run` fails once it is ready, and the call of the
/// restart named `call` fails as `shutdown` says: its `stop` panics, or,
/// with `call == "close"`, its stop hangs past a 10 ms budget and its
/// `close` returns an error. Later stops and closes succeed.
struct FailsInRestart {
    log: Log,
    call: &'static str,
    shutdown: Shutdown,
    gate: futures::future::Shared<futures::channel::oneshot::Receiver<()>>,
    runs: AtomicU32,
    stops: AtomicU32,
    closes: AtomicU32,
}

impl FailsInRestart {
    /// The restart's failing call, once it is this call.
    async fn fail(&self, cx: &Context) {
        match self.shutdown {
            Shutdown::After => {}
            Shutdown::WhileItWaits => {
                let _ = self.gate.clone().await;
            }
            Shutdown::FromTheCall => {
                cx.request_shutdown(None);
            }
        }
    }
}

impl Component for FailsInRestart {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            while !cx.handle().is_ready() {
                sleep(ms(1)).await;
            }
            return Err("flaky broke".into());
        }
        cx.stop_signal().await;
        Ok(())
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        self.log.push("stop flaky");
        if self.stops.fetch_add(1, Ordering::SeqCst) > 0 {
            return Ok(());
        }
        if self.call == "close" {
            futures::future::pending::<()>().await;
        }
        self.fail(cx).await;
        panic!("flaky stop broke");
    }

    async fn close(&self, cx: &Context) -> Result<(), BoxError> {
        self.log.push("close flaky");
        if self.closes.fetch_add(1, Ordering::SeqCst) > 0 {
            return Ok(());
        }
        self.fail(cx).await;
        Err("flaky close broke".into())
    }
}

// ---------------------------------------------------------------- setups

/// Restarts on failure as `restart` says.
fn restarting(restart: Restart) -> ComponentOptions {
    ComponentOptions::new().restart(restart)
}

/// Restarts on failure after `backoff`, within the default budget.
fn restarts_after(backoff: Duration) -> Restart {
    Restart::on_failure().backoff(Backoff::constant(backoff))
}

/// Up to `max` restarts a minute, 10 ms apart.
fn fast_restarts(max: u32) -> ComponentOptions {
    restarting(restarts_after(ms(10)).limit(max, Duration::from_secs(60)))
}

/// `component` alone, under its own name.
fn alone(component: Flaky, options: ComponentOptions) -> Lifecycle {
    Lifecycle::builder()
        .component_with(component.name.clone(), component, options)
        .build()
        .unwrap()
}

/// `component` between `db` (its dependency) and `api` (its dependent),
/// in the default chain.
fn between_db_and_api(log: &Log, component: Flaky, options: ComponentOptions) -> Lifecycle {
    Lifecycle::builder()
        .component("db", probe(log, "db"))
        .component_with(component.name.clone(), component, options)
        .component("api", probe(log, "api"))
        .build()
        .unwrap()
}

/// `flaky` alone: its first run fails, and once restarted its readiness
/// check never answers.
fn hangs_once_restarted(log: &Log) -> Lifecycle {
    alone(
        flaky(log, "flaky", 1).hanging_ready_from(2),
        fast_restarts(3),
    )
}

/// `a`, restarting after `a_backoff`, and `b`, depending on `a` and
/// restarting at once; the first run of `a` fails after 20 ms, that of `b`
/// after 40 ms.
fn a_and_its_dependent_b(a_backoff: Duration) -> (Lifecycle, Arc<Timed>, Arc<Timed>) {
    let t0 = Instant::now();
    let a = Timed::new(t0, ms(20));
    let b = Timed::new(t0, ms(40));
    let lc = Lifecycle::builder()
        .component_with(
            "a",
            Shared(a.clone()),
            restarting(restarts_after(a_backoff)),
        )
        .component_with(
            "b",
            Shared(b.clone()),
            restarting(restarts_after(Duration::ZERO)).depends_on(["a"]),
        )
        .build()
        .unwrap();
    (lc, a, b)
}

// ------------------------------------------------------------------ runs

/// Runs `lifecycle` beside `watch`, which gets its handle once it is
/// ready; once `watch` returns, requests a clean shutdown. Both within
/// [`LIMIT`]: the run's result and what `watch` returned.
async fn run_watched<T>(
    lifecycle: Lifecycle,
    watch: impl AsyncFnOnce(&Handle) -> T,
) -> (Result<Report, Error>, T) {
    let handle = lifecycle.handle();
    let watcher = async move {
        assert!(handle.ready().await, "never ready");
        let out = watch(&handle).await;
        handle.request_shutdown(None);
        out
    };
    bounded(futures::future::join(lifecycle.run(), watcher)).await
}

/// Runs `lifecycle` until, once it was ready, `done` holds of its handle;
/// then shuts it down cleanly.
async fn run_until(lifecycle: Lifecycle, done: impl Fn(&Handle) -> bool) -> Result<Report, Error> {
    run_watched(lifecycle, async |h| until(h, done).await)
        .await
        .0
}

/// Runs `lifecycle`, which must fail by itself, to its end: its error.
async fn run_to_failure(lifecycle: Lifecycle) -> Error {
    bounded(lifecycle.run()).await.unwrap_err()
}

/// Waits, within [`LIMIT`], until `f` holds of `handle`.
async fn until(handle: &Handle, f: impl Fn(&Handle) -> bool) {
    bounded(async {
        while !f(handle) {
            sleep(ms(2)).await;
        }
    })
    .await;
}

fn restarts(handle: &Handle, name: &str) -> u32 {
    handle.report().component(name).map_or(0, |c| c.restarts())
}

fn state(handle: &Handle, name: &str) -> Option<ComponentState> {
    handle.report().component(name).map(|c| c.state)
}

/// Whether `name` has restarted `n` times and is ready again, and so is
/// the lifecycle.
fn recovered(handle: &Handle, name: &str, n: u32) -> bool {
    restarts(handle, name) == n
        && state(handle, name) == Some(ComponentState::Ready)
        && handle.is_ready()
}

/// Runs `flaky` ([`FailsInRestart`]) alone, its restart's `call` failing
/// as `shutdown` says; the run's result and the log.
async fn run_failing_in_restart(
    call: &'static str,
    shutdown: Shutdown,
) -> (Result<Report, Error>, Log) {
    let log = Log::new();
    let (open, gate) = futures::channel::oneshot::channel();
    let component = FailsInRestart {
        log: log.clone(),
        call,
        shutdown,
        gate: futures::FutureExt::shared(gate),
        runs: AtomicU32::new(0),
        stops: AtomicU32::new(0),
        closes: AtomicU32::new(0),
    };
    let mut options = fast_restarts(3);
    if call == "close" {
        options = options.stop_timeout(ms(10));
    }
    let lc = Lifecycle::builder()
        .component_with("flaky", component, options)
        .build()
        .unwrap();
    let handle = lc.handle();
    let watch = async {
        match shutdown {
            Shutdown::After => {
                until(&handle, |h| recovered(h, "flaky", 1)).await;
                handle.request_shutdown(None);
            }
            Shutdown::WhileItWaits => {
                until(&handle, |_| log.has(&format!("{call} flaky"))).await;
                // No await in between: the runner sees both at once.
                handle.request_shutdown(None);
                let _ = open.send(());
            }
            Shutdown::FromTheCall => {}
        }
    };
    let (out, ()) = bounded(futures::future::join(lc.run(), watch)).await;
    (out, log)
}

/// The restart's `call` failed once shutdown had begun: that failure is
/// the run's one error, named `step`, and nothing is stopped or closed
/// again.
fn assert_failure_returned(out: Result<Report, Error>, log: &Log, call: &str, step: Step) {
    let err = expect_err(out);
    let all = all_errors(&err);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(err.component(), Some("flaky"), "{err:#}");
    assert_eq!(err.step(), Some(step), "{err:#}");
    if step == Step::Stop {
        assert_eq!(err.panic_message(), Some("flaky stop broke"), "{err:#}");
    } else {
        assert!(chain(&err).contains("flaky close broke"), "{err:#}");
    }
    let events = log.events();
    assert_eq!(log.count(&format!("{call} flaky")), 1, "{events:?}");
    assert_eq!(log.count("stop flaky"), 1, "{events:?}");
    let report = err.report().expect("a report");
    assert_eq!(report.component("flaky").unwrap().restarts(), 1, "{report}");
}

// ------------------------------------------------------------ scenarios

mod scenarios {
    use super::*;

    /// Fails twice, restarts twice and recovers: the lifecycle keeps
    /// running, its dependent is not restarted, the report counts the
    /// restarts and keeps both failures, and the run ends cleanly.
    pub async fn a_failed_run_restarts_and_recovers() {
        let log = Log::new();
        let lc = between_db_and_api(&log, flaky(&log, "flaky", 2), fast_restarts(5));
        let report = run_until(lc, |h| recovered(h, "flaky", 2))
            .await
            .expect("a clean run: recovered failures are no errors");
        let flaky = report.component("flaky").unwrap();
        assert_eq!(flaky.restarts(), 2);
        assert_eq!(flaky.failures().len(), 2);
        assert!(
            flaky.failures()[0].error.contains("flaky broke"),
            "{:?}",
            flaky.failures()
        );
        assert_eq!(flaky.state, ComponentState::Stopped);
        let events = log.events();
        assert_eq!(log.count("start flaky"), 3, "{events:?}");
        // Stopped after each failure, and once at the end.
        assert_eq!(log.count("stop flaky"), 3, "{events:?}");
        assert_eq!(log.count("start api"), 1, "{events:?}");
        assert_eq!(log.count("stop api"), 1, "{events:?}");
        assert_eq!(log.count("start db"), 1, "{events:?}");
        assert!(!events.iter().any(|e| e.starts_with("close")), "{events:?}");
        // Each restart: the failure, then the stop, then the new start; the
        // final stop only once its dependent has stopped.
        let own: Vec<String> = log
            .only(&["start", "run-failed", "stop"])
            .into_iter()
            .filter(|e| e.ends_with(" flaky"))
            .collect();
        assert_eq!(
            own,
            [
                "start flaky",
                "run-failed flaky",
                "stop flaky",
                "start flaky",
                "run-failed flaky",
                "stop flaky",
                "start flaky",
                "stop flaky",
            ]
        );
        assert!(
            log.last_pos("stop flaky") > log.pos("stop-end api"),
            "{events:?}"
        );
        assert_eq!(report.component("api").unwrap().restarts(), 0);
        // Printed, the report says so under its table.
        let table = report.to_string();
        let notes: Vec<&str> = table.lines().filter(|l| l.contains("restarted")).collect();
        assert_eq!(notes.len(), 1, "{table}");
        assert!(
            notes[0].starts_with("flaky restarted 2 times; latest failure at ")
                && notes[0].ends_with("flaky broke"),
            "{table}"
        );
    }

    /// While it restarts, the lifecycle is not ready (the `launch` check
    /// fails); once it is ready again, it is.
    pub async fn readiness_fails_while_restarting() {
        let log = Log::new();
        let restart = restarts_after(ms(200)).limit(1, Duration::from_secs(60));
        let lc = alone(flaky(&log, "flaky", 1), restarting(restart));
        let (out, ()) = run_watched(lc, async |h| {
            until(h, |h| state(h, "flaky") == Some(ComponentState::Restarting)).await;
            assert!(!h.is_ready());
            until(h, Handle::is_ready).await;
            assert_eq!(state(h, "flaky"), Some(ComponentState::Ready));
        })
        .await;
        assert_eq!(out.unwrap().component("flaky").unwrap().restarts(), 1);
    }

    /// The failure after the budget is spent shuts the lifecycle down, with
    /// an error that names the component and says so; a panic keeps its
    /// message, without the budget's note.
    pub async fn an_exhausted_budget_shuts_down() {
        let log = Log::new();
        let broken = flaky(&log, "broken", u32::MAX).panicking();
        let lc = Lifecycle::builder()
            .component("db", probe(&log, "db"))
            .component_with("broken", broken, fast_restarts(2))
            .build()
            .unwrap();
        let err = run_to_failure(lc).await;
        assert_eq!(err.component(), Some("broken"), "{err}");
        assert_eq!(err.step(), Some(Step::Run));
        assert!(err.is_panic(), "{err}");
        // The panic's own message: the budget's note is the error's.
        assert_eq!(err.panic_message(), Some("broken broke"), "{err}");
        assert!(
            err.to_string()
                .contains("restart budget exhausted: 2 restarts within 60s"),
            "{err}"
        );
        assert_eq!(log.count("start broken"), 3);
        assert_eq!(log.count("stop db"), 1);
        let record = err.report().unwrap().component("broken").unwrap().clone();
        assert_eq!(record.restarts(), 2);
        assert_eq!(record.failures().len(), 2);
    }

    /// `Restart::never()` (the default) and a limit of zero: the first
    /// failure shuts down, as without a policy.
    pub async fn never_and_zero_restarts_shut_down_at_once() {
        for restart in [Restart::never(), Restart::on_failure().limit(0, ms(100))] {
            let log = Log::new();
            let err = run_to_failure(alone(flaky(&log, "broken", 1), restarting(restart))).await;
            assert_eq!(err.component(), Some("broken"));
            assert!(!err.to_string().contains("restart budget"), "{err}");
            assert_eq!(log.count("start broken"), 1);
            let record = err.report().unwrap().component("broken").unwrap().clone();
            assert_eq!(record.restarts(), 0);
        }
    }

    /// A shutdown during a restart's backoff: the component, already
    /// stopped, is not started again nor stopped twice; the rest stops as
    /// usual.
    pub async fn shutdown_during_the_backoff() {
        let log = Log::new();
        let restart = restarts_after(Duration::from_secs(30));
        let lc = between_db_and_api(&log, flaky(&log, "flaky", 1), restarting(restart));
        run_until(lc, |_| log.has("stop flaky"))
            .await
            .expect("a clean run");
        let events = log.events();
        assert_eq!(log.count("start flaky"), 1, "{events:?}");
        assert_eq!(log.count("stop flaky"), 1, "{events:?}");
        assert_eq!(log.count("stop api"), 1, "{events:?}");
        assert_eq!(log.count("stop db"), 1, "{events:?}");
        log.assert_before("stop-end api", "stop db");
    }

    /// A shutdown while the restarted component waits to be ready: its
    /// readiness wait is cancelled and it is stopped once more, as any
    /// started component.
    pub async fn shutdown_during_the_readiness_of_a_restart() {
        let log = Log::new();
        run_until(hangs_once_restarted(&log), |_| {
            log.count("ready flaky") >= 2
        })
        .await
        .expect("a clean run");
        let events = log.events();
        assert_eq!(log.count("start flaky"), 2, "{events:?}");
        assert_eq!(log.count("stop flaky"), 2, "{events:?}");
        assert_eq!(log.count("run-end flaky"), 1, "{events:?}");
    }

    /// A shutdown while the restarted component's `start` runs: that start
    /// is cancelled, and the component, which ran and was stopped after
    /// its failure, reads stopped (not pending, as one that never ran);
    /// it is not stopped again.
    pub async fn shutdown_during_the_start_of_a_restart() {
        let log = Log::new();
        let lc = alone(
            flaky(&log, "flaky", 1).hanging_start_from(2),
            fast_restarts(3),
        );
        let report = run_until(lc, |_| log.count("start flaky") >= 2)
            .await
            .expect("a clean run");
        let events = log.events();
        assert_eq!(log.count("start flaky"), 2, "{events:?}");
        assert_eq!(log.count("stop flaky"), 1, "{events:?}");
        let flaky = report.component("flaky").unwrap();
        assert_eq!(flaky.state, ComponentState::Stopped, "{report}");
        assert_eq!(flaky.restarts(), 1, "{report}");
    }

    /// `flaky` restarts, and the `start` of its new life fails, which
    /// begins the shutdown; `hold`'s stop never returns, so the drain is
    /// still going when the shutdown is forced. The force closes `hold`
    /// but not `flaky`: its new life never started, and its last one was
    /// stopped by its restart.
    pub async fn a_force_does_not_close_a_relaunch_that_never_started() {
        let log = Log::new();
        let independent = || ComponentOptions::new().depends_on(Vec::<&str>::new());
        let lc = Lifecycle::builder()
            .component_with("hold", probe(&log, "hold").stop(Act::Hang), independent())
            .component_with(
                "flaky",
                flaky(&log, "flaky", 1).failing_start_from(2),
                ComponentOptions::new()
                    .depends_on(Vec::<&str>::new())
                    .restart(restarts_after(ms(10)).limit(3, Duration::from_secs(60))),
            )
            .build()
            .unwrap();
        let handle = lc.handle();
        let force = async {
            while !log.has("stop hold") {
                sleep(ms(2)).await;
            }
            handle.force_shutdown();
        };
        let (out, ()) = bounded(futures::future::join(lc.run(), force)).await;
        let err = out.expect_err("the failed start");
        let events = log.events();
        assert_eq!(err.component(), Some("flaky"), "{err}");
        assert_eq!(err.step(), Some(Step::Start), "{err}");
        assert_eq!(log.count("start flaky"), 2, "{events:?}");
        assert_eq!(log.count("stop flaky"), 1, "its restart's: {events:?}");
        assert_eq!(log.count("close flaky"), 0, "{events:?}");
        assert_eq!(log.count("close hold"), 1, "{events:?}");
        let report = err.report().expect("a report");
        let flaky = report.component("flaky").unwrap();
        assert_eq!(flaky.state, ComponentState::Failed, "{report}");
        assert_eq!(flaky.close_at, None, "{report}");
    }

    /// `a` (restart on failure) and `b` (no policy) fail in the same poll
    /// of the runner, `a` first: `a` is granted a restart whose stop is
    /// not issued yet when `b`'s failure begins the shutdown. The shutdown
    /// still stops `a`: every started component is stopped (or closed)
    /// once per start.
    pub async fn restart_cancelled_before_its_stop_still_stops() {
        let independent = || ComponentOptions::new().depends_on(Vec::<&str>::new());
        for round in 0..20 {
            let log = Log::new();
            let lc = Lifecycle::builder()
                .component_with(
                    "a",
                    fails_when_launched(&log, "a"),
                    independent().restart(restarts_after(ms(50))),
                )
                .component_with("b", fails_when_launched(&log, "b"), independent())
                .build()
                .unwrap();
            let err = run_to_failure(lc).await;
            assert_eq!(err.component(), Some("b"), "round {round}: {err}");
            let events = log.events();
            assert_eq!(log.count("stop b"), 1, "round {round}: {events:?}");
            assert_eq!(
                log.count("stop a") + log.count("close a"),
                log.count("start a"),
                "round {round}: {events:?}"
            );
        }
    }

    /// `b` depends on `a`; both restart on failure. `a`'s `run` fails
    /// first and waits a long backoff; `b`'s fails meanwhile with no
    /// backoff. `b` starts again only once `a` is ready again: a component
    /// never starts before its dependencies are ready, a relaunch included.
    pub async fn restart_waits_for_dependencies() {
        let (lc, a, b) = a_and_its_dependent_b(ms(150));
        run_until(lc, |h| {
            restarts(h, "a") == 1 && restarts(h, "b") == 1 && h.is_ready()
        })
        .await
        .expect("a clean run");
        let a_ready = a.readies.lock().unwrap()[1];
        let b_start = b.starts.lock().unwrap()[1];
        assert!(
            b_start >= a_ready,
            "`b` started again at {b_start:?}, before its dependency `a` was ready again at {a_ready:?}"
        );
    }

    /// A shutdown while a restarted component waits for its dependency to
    /// be ready again: it is not started again nor stopped twice, and
    /// reads stopped (it was, after its failure), not pending.
    pub async fn shutdown_while_a_relaunch_waits_for_a_dependency() {
        let (lc, a, b) = a_and_its_dependent_b(Duration::from_secs(30));
        let (out, ()) = run_watched(lc, async |h| {
            until(h, |h| {
                restarts(h, "b") == 1 && b.stops.load(Ordering::SeqCst) == 1
            })
            .await;
            // Time for a wrongly relaunched `b` to start.
            sleep(ms(20)).await;
        })
        .await;
        let report = out.expect("a clean run");
        for (name, timed) in [("a", &a), ("b", &b)] {
            let row = report.component(name).unwrap();
            assert_eq!(row.state, ComponentState::Stopped, "{row:?}");
            assert_eq!(row.restarts(), 1, "{row:?}");
            assert_eq!(timed.starts.lock().unwrap().len(), 1, "{name}");
            assert_eq!(timed.stops.load(Ordering::SeqCst), 1, "{name}");
        }
    }

    /// A restart's stop that fails while the restart goes on is logged,
    /// not an error: the component starts again and the run ends cleanly.
    /// So is a close after the restart's stop overran.
    pub async fn a_restarts_failed_stop_or_close_before_shutdown_is_logged() {
        for call in ["stop", "close"] {
            let (out, log) = run_failing_in_restart(call, Shutdown::After).await;
            let report = expect_ok(out);
            assert_eq!(report.component("flaky").unwrap().restarts(), 1);
            assert_eq!(log.count("stop flaky"), 2, "{:?}", log.events());
        }
    }

    /// The shutdown begins while a restart's stop waits; the stop then
    /// panics. The component is not started again, so that stop was its
    /// last: its panic is returned, as a drain's stop's would be.
    pub async fn a_restarts_stop_failing_once_shutdown_began_is_returned() {
        let (out, log) = run_failing_in_restart("stop", Shutdown::WhileItWaits).await;
        assert_failure_returned(out, &log, "stop", Step::Stop);
    }

    /// As above, the stop beginning the shutdown itself: its failure is
    /// read as the call ends, the shutdown already begun.
    pub async fn a_restarts_stop_failing_after_requesting_shutdown_is_returned() {
        let (out, log) = run_failing_in_restart("stop", Shutdown::FromTheCall).await;
        assert_failure_returned(out, &log, "stop", Step::Stop);
    }

    /// The close of a restart whose stop overran, failing once the
    /// shutdown began (while it waited, or begun by itself): returned.
    pub async fn a_restarts_close_failing_once_shutdown_began_is_returned() {
        for shutdown in [Shutdown::WhileItWaits, Shutdown::FromTheCall] {
            let (out, log) = run_failing_in_restart("close", shutdown).await;
            assert_failure_returned(out, &log, "close", Step::Close);
        }
    }

    /// A restarted component's report row carries its latest life's
    /// stamps: started again and not ready yet, it shows no `ready_at`,
    /// run end, stop or close of the life before; its failure and restart
    /// count stay.
    pub async fn report_stamps_are_the_latest_lifes() {
        let log = Log::new();
        let (out, ()) = run_watched(hangs_once_restarted(&log), async |h| {
            until(h, |_| log.count("ready flaky") >= 2).await;
            let report = h.report();
            let row = report.component("flaky").unwrap();
            assert_eq!(row.restarts(), 1);
            assert_eq!(row.failures().len(), 1);
            assert_eq!(row.state, ComponentState::Started);
            let start = row.start_at.expect("started again");
            assert!(start >= row.failures()[0].at, "{row:?}");
            assert!(row.start_took.is_some(), "{row:?}");
            assert_eq!(row.attempts, 1, "{row:?}");
            assert_eq!(row.ready_at, None, "an earlier life's: {row:?}");
            assert_eq!(row.run_ended_at, None, "an earlier life's: {row:?}");
            assert_eq!(row.stop_at, None, "an earlier life's: {row:?}");
            assert_eq!(row.stop_took, None, "an earlier life's: {row:?}");
            assert_eq!(row.close_at, None, "an earlier life's: {row:?}");
        })
        .await;
        let report = out.expect("a clean run");
        let row = report.component("flaky").unwrap();
        assert_eq!(row.ready_at, None, "{row:?}");
        assert!(row.stop_at >= row.start_at, "{row:?}");
    }
}

// ---------------------------------------------------------------- runtimes

use common::runtimes::{on_every_runtime, tokio_multi_thread};

on_every_runtime!(
    a_failed_run_restarts_and_recovers,
    readiness_fails_while_restarting,
    an_exhausted_budget_shuts_down,
    never_and_zero_restarts_shut_down_at_once,
    shutdown_during_the_backoff,
    shutdown_during_the_readiness_of_a_restart,
    shutdown_during_the_start_of_a_restart,
    a_force_does_not_close_a_relaunch_that_never_started,
    restart_cancelled_before_its_stop_still_stops,
    restart_waits_for_dependencies,
    shutdown_while_a_relaunch_waits_for_a_dependency,
    report_stamps_are_the_latest_lifes,
    a_restarts_failed_stop_or_close_before_shutdown_is_logged,
    a_restarts_stop_failing_once_shutdown_began_is_returned,
    a_restarts_stop_failing_after_requesting_shutdown_is_returned,
    a_restarts_close_failing_once_shutdown_began_is_returned,
);

/// With a spawner `run` is on its own task: it is spawned again on each
/// restart.
#[test]
fn restarts_with_the_spawner() {
    tokio_multi_thread(|| async {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .spawner(|task| drop(tokio::spawn(task)))
            .component_with("flaky", flaky(&log, "flaky", 2), fast_restarts(5))
            .build()
            .unwrap();
        let report = run_until(lc, |h| recovered(h, "flaky", 2)).await.unwrap();
        assert_eq!(report.component("flaky").unwrap().restarts(), 2);
        assert_eq!(log.count("run flaky"), 3);
    });
}

// ------------------------------------------------- options at their edges

#[test]
fn a_zero_window_or_a_bad_jitter_is_a_config_error() {
    let log = Log::new();
    for restart in [
        Restart::on_failure().limit(3, Duration::ZERO),
        Restart::on_failure().backoff(Backoff::constant(ms(1)).jitter(1.5)),
        Restart::on_failure().backoff(Backoff::constant(ms(1)).jitter(f64::NAN)),
    ] {
        let err = Lifecycle::builder()
            .component_with("c", probe(&log, "c"), restarting(restart))
            .build()
            .unwrap_err();
        assert!(err.is_config(), "{err}");
        assert_eq!(err.component(), Some("c"));
        let handle = Lifecycle::builder().build().unwrap().handle();
        let err = handle
            .add_component_with("c", probe(&log, "c"), restarting(restart))
            .unwrap_err();
        assert!(err.is_config(), "{err}");
    }
}

/// The largest budget and a backoff of zero (restart at once) are valid,
/// as is a full jitter.
#[test]
fn the_largest_budget_and_a_zero_backoff_restart_at_once() {
    let log = Log::new();
    let restart = Restart::on_failure()
        .limit(u32::MAX, Duration::MAX)
        .backoff(Backoff::constant(Duration::ZERO).jitter(1.0));
    let lc = alone(flaky(&log, "flaky", 3), restarting(restart));
    let report = futures::executor::block_on(run_until(lc, |h| recovered(h, "flaky", 3)));
    assert_eq!(report.unwrap().component("flaky").unwrap().restarts(), 3);
}

/// Runs a component failing `fails` times under `restart` until it is
/// ready again (or the lifecycle ends), then shuts down.
fn numbered(fails: u32, restart: Restart) -> Result<Report, Error> {
    let component = Numbered {
        fails,
        runs: AtomicU32::new(0),
    };
    let lc = Lifecycle::builder()
        .component_with("n", component, restarting(restart))
        .build()
        .unwrap();
    futures::executor::block_on(run_until(lc, |h| {
        h.is_shutting_down()
            || (restarts(h, "n") == fails && state(h, "n") == Some(ComponentState::Ready))
    }))
}

/// A large budget spent over a long life keeps the report small: every
/// restart is counted, only the latest failures are kept, oldest first;
/// none without a failure.
#[test]
fn only_the_latest_failures_are_kept() {
    let every = |max| {
        Restart::on_failure()
            .limit(max, Duration::MAX)
            .backoff(Backoff::constant(Duration::ZERO))
    };
    let kept = lameduck::KEPT_FAILURES as u32;
    for fails in [0, 1, kept, kept + 1, 3 * kept] {
        let report = numbered(fails, every(u32::MAX)).expect("recovered");
        let row = report.component("n").unwrap();
        assert_eq!(row.restarts(), fails);
        let messages: Vec<&str> = row.failures().iter().map(|f| f.error.as_str()).collect();
        let first = fails.saturating_sub(kept) + 1;
        let want: Vec<String> = (first..=fails).map(|n| format!("failure #{n}")).collect();
        assert_eq!(messages.len(), want.len(), "{messages:?}");
        for (got, want) in messages.iter().zip(&want) {
            assert!(got.ends_with(want.as_str()), "{got:?} is not {want:?}");
        }
        assert!(row.failures().windows(2).all(|w| w[0].at <= w[1].at));
    }
}

/// A budget without a window (`Duration::MAX`) reads as such in the
/// error, not as a count of seconds.
#[test]
fn an_exhausted_budget_without_a_window_reads_plainly() {
    let restart = Restart::on_failure()
        .limit(1, Duration::MAX)
        .backoff(Backoff::constant(Duration::ZERO));
    let err = numbered(2, restart).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("restart budget exhausted: 1 restart within the lifetime"),
        "{text}"
    );
    assert!(!text.contains("18446744073709551615"), "{text}");
}

#[test]
fn debug_lifecycle_shows_restarts_and_failures() {
    let log = Log::new();
    let lc = alone(flaky(&log, "flaky", 1), fast_restarts(5));
    let probes = lc.handle().probes().debug_lifecycle(true);
    let (out, response) = futures::executor::block_on(run_watched(lc, async |h| {
        until(h, |h| recovered(h, "flaky", 1)).await;
        probes
            .respond(ProbeRequest::new("GET", "/debug/lifecycle"))
            .await
    }));
    out.unwrap();
    let json: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    let flaky = &json["components"][0];
    assert_eq!(flaky["restarts"], 1);
    let failures = flaky["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1);
    let error = failures[0]["error"].as_str().unwrap();
    assert!(
        error.contains("`flaky` failed in run: flaky broke"),
        "{error}"
    );
    assert!(failures[0]["at_ms"].as_f64().is_some());
}
