//! Test parts that act out a [`Scenario`] and write what happens to an
//! event log, and the driver that runs one scenario.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::{self, Either};
use futures_timer::Delay;
use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, Context, Drainer, Error, ErrorKind, Handle,
    Health, HealthChecker, Lifecycle, Readiness, Report, Restart,
};

use crate::model::{
    Act, Action, CheckKind, CheckSpec, CompSpec, DrainSpec, HookSpec, RestartSpec, Scenario,
    SpawnerFault,
};

/// Every injected panic message starts with this; the panic hook keeps
/// them off stderr.
pub const INJECTED: &str = "injected panic: ";

/// Silences injected panics (thousands per run); every other panic is
/// printed as usual.
pub fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let injected = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s.starts_with(INJECTED));
            if !injected {
                default(info);
            }
        }));
    });
}

/// A user method (or part) an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S {
    Start,
    Ready,
    Run,
    Stop,
    Close,
    Drain,
    Hook,
}

impl S {
    pub fn step(self) -> lameduck::Step {
        use lameduck::Step;
        match self {
            S::Start => Step::Start,
            S::Ready => Step::Ready,
            S::Run => Step::Run,
            S::Stop => Step::Stop,
            S::Close => Step::Close,
            S::Drain => Step::Drain,
            S::Hook => Step::Hook,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Component,
    Drainer { prepend: bool },
    Check,
    Hook,
}

#[derive(Debug, Clone)]
pub enum What {
    /// A user call began; whether shutdown had begun at that moment.
    Begin(S, bool),
    /// It returned `Ok` (for `ready`: `Ok(true)`).
    Ok(S),
    /// `ready` returned `Ok(false)`.
    NotReady,
    Fail(S, String),
    Panic(S, String),
    /// It was dropped before it finished (cancelled).
    Dropped(S),
    RequestBegin(Option<String>),
    /// Whether the request began the shutdown, and whether the lifecycle
    /// had stopped when it returned (its error may then be absent).
    RequestEnd(bool, bool),
    ForceBegin,
    ForceEnd(bool),
    Registered {
        kind: Kind,
        ok: bool,
        shutting_down_before: bool,
        refused: Option<ErrorKind>,
    },
    /// `Lifecycle::run` returned.
    RunReturned,
    /// A breach seen on the spot (readiness true after shutdown…).
    Violation(&'static str, String),
}

#[derive(Debug, Clone)]
pub struct Ev {
    pub at: Duration,
    pub who: String,
    pub what: What,
}

pub struct Log {
    /// Set for scenarios whose parts' `Drop` reads the lifecycle.
    handle: Mutex<Option<Handle>>,
    t0: Instant,
    events: Mutex<Vec<Ev>>,
    live_calls: AtomicUsize,
    live_components: AtomicUsize,
    live_parts: AtomicUsize,
}

impl Log {
    fn new() -> Arc<Log> {
        Arc::new(Log {
            handle: Mutex::new(None),
            t0: Instant::now(),
            events: Mutex::new(Vec::new()),
            live_calls: AtomicUsize::new(0),
            live_components: AtomicUsize::new(0),
            live_parts: AtomicUsize::new(0),
        })
    }

    pub fn push(&self, who: &str, what: What) {
        let mut events = self.events.lock().unwrap();
        // Stamped under the lock: the log's order, which the checks read as
        // the order things happened in, is then the order of its stamps. A
        // stamp taken before the lock let a thread preempted in between
        // file an earlier event after a later one.
        let at = self.t0.elapsed();
        events.push(Ev {
            at,
            who: who.to_owned(),
            what,
        });
    }
}

/// Counts a live component (or drainer, hook, check) until dropped.
struct PartGuard {
    log: Arc<Log>,
    component: bool,
}

impl PartGuard {
    fn new(log: &Arc<Log>, component: bool) -> Self {
        let counter = if component {
            &log.live_components
        } else {
            &log.live_parts
        };
        counter.fetch_add(1, Ordering::SeqCst);
        PartGuard {
            log: log.clone(),
            component,
        }
    }
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        // A part that logs its final state: re-enters the library from its
        // `Drop`, wherever the library drops it.
        let handle = self.log.handle.lock().unwrap().clone();
        if let Some(h) = handle {
            let _ = (h.report(), h.is_ready(), h.phase(), h.is_shutting_down());
        }
        let counter = if self.component {
            &self.log.live_components
        } else {
            &self.log.live_parts
        };
        counter.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Logs a call's beginning and end, and counts it live until dropped.
struct CallGuard<'a> {
    log: &'a Arc<Log>,
    who: &'a str,
    s: S,
    /// For `run`: which life of the component it belongs to (from 1), so
    /// each life's failure reads differently.
    life: Option<usize>,
    done: bool,
}

impl<'a> CallGuard<'a> {
    fn new(log: &'a Arc<Log>, who: &'a str, s: S, shutting_down: bool) -> Self {
        log.live_calls.fetch_add(1, Ordering::SeqCst);
        log.push(who, What::Begin(s, shutting_down));
        CallGuard {
            log,
            who,
            s,
            life: None,
            done: false,
        }
    }

    fn label(&self) -> String {
        match self.life {
            Some(n) => format!("{} {:?}#{n}", self.who, self.s),
            None => format!("{} {:?}", self.who, self.s),
        }
    }

    fn finish(&mut self, what: What) {
        self.log.push(self.who, what);
        self.done = true;
    }

    /// Acts out `act` after the call's own wait.
    async fn act(mut self, act: Act) -> Result<(), BoxError> {
        let s = self.s;
        match act {
            Act::Ok => {}
            Act::Sleep(ms) => Delay::new(Duration::from_millis(ms)).await,
            Act::Fail => {
                let msg = format!("{} failed", self.label());
                self.finish(What::Fail(s, msg.clone()));
                return Err(msg.into());
            }
            Act::Panic => {
                let msg = format!("{INJECTED}{}", self.label());
                self.finish(What::Panic(s, msg.clone()));
                std::panic::panic_any(msg);
            }
            Act::Hang => future::pending::<()>().await,
        }
        self.finish(What::Ok(s));
        Ok(())
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.log.push(self.who, What::Dropped(self.s));
        }
        self.log.live_calls.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct TestComponent {
    spec: CompSpec,
    log: Arc<Log>,
    answers: AtomicUsize,
    /// `run` calls so far: the lives it has begun.
    lives: AtomicUsize,
    _live: PartGuard,
}

impl TestComponent {
    fn new(spec: CompSpec, log: &Arc<Log>) -> Self {
        TestComponent {
            spec,
            log: log.clone(),
            answers: AtomicUsize::new(0),
            lives: AtomicUsize::new(0),
            _live: PartGuard::new(log, true),
        }
    }
}

/// Logs a breach if readiness or health pass once shutdown has begun.
async fn expect_not_ready(log: &Arc<Log>, who: &str, handle: &Handle) {
    if handle.is_ready() {
        log.push(
            who,
            What::Violation("ready-during-shutdown", "is_ready() true".into()),
        );
    }
    if handle.is_healthy().await {
        log.push(
            who,
            What::Violation("healthy-during-shutdown", "is_healthy() true".into()),
        );
    }
}

impl Component for TestComponent {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        let g = CallGuard::new(&self.log, &self.spec.name, S::Start, cx.is_shutting_down());
        g.act(self.spec.start).await
    }

    async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
        let mut g = CallGuard::new(&self.log, &self.spec.name, S::Ready, cx.is_shutting_down());
        if self.answers.fetch_add(1, Ordering::SeqCst) < self.spec.not_ready as usize {
            g.finish(What::NotReady);
            return Ok(false);
        }
        g.act(self.spec.ready).await.map(|()| true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let mut g = CallGuard::new(&self.log, &self.spec.name, S::Run, cx.is_shutting_down());
        let life = self.lives.fetch_add(1, Ordering::SeqCst) + 1;
        g.life = Some(life);
        if let Some(&act) = self.spec.flaky.get(life - 1) {
            // A flaky life: fails after a while, unless asked to stop first.
            let delay = Delay::new(Duration::from_millis(self.spec.flaky_ms));
            return match future::select(cx.stop_signal(), delay).await {
                Either::Left(((), _)) => g.act(Act::Ok).await,
                Either::Right(((), _)) => g.act(act).await,
            };
        }
        let run = self.spec.run;
        let delay = || Delay::new(Duration::from_millis(run.delay_ms));
        if run.until_stop {
            cx.stop_signal().await;
            delay().await;
        } else if let Either::Left(((), _)) = future::select(cx.stop_signal(), delay()).await {
            // Asked to stop before the delay: end now.
            return g
                .act(if run.then == Act::Hang {
                    Act::Hang
                } else {
                    Act::Ok
                })
                .await;
        }
        g.act(run.then).await
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        let g = CallGuard::new(&self.log, &self.spec.name, S::Stop, cx.is_shutting_down());
        if cx.is_shutting_down() {
            expect_not_ready(&self.log, &self.spec.name, cx.handle()).await;
        } else if cx.handle().is_ready() {
            // Stopped for a restart: the `launch` check fails meanwhile.
            self.log.push(
                &self.spec.name,
                What::Violation("ready-during-restart", "is_ready() true".into()),
            );
        }
        g.act(self.spec.stop).await
    }

    async fn close(&self, cx: &Context) -> Result<(), BoxError> {
        let g = CallGuard::new(&self.log, &self.spec.name, S::Close, cx.is_shutting_down());
        g.act(self.spec.close).await
    }
}

struct TestDrainer {
    spec: DrainSpec,
    log: Arc<Log>,
    _live: PartGuard,
}

impl Drainer for TestDrainer {
    async fn drain(&self, cx: &Context) -> Result<(), BoxError> {
        let g = CallGuard::new(&self.log, &self.spec.name, S::Drain, cx.is_shutting_down());
        expect_not_ready(&self.log, &self.spec.name, cx.handle()).await;
        g.act(self.spec.act).await
    }
}

fn hook(
    spec: HookSpec,
    log: &Arc<Log>,
) -> impl FnOnce(Context) -> futures::future::BoxFuture<'static, Result<(), BoxError>> + Send + 'static
{
    let live = PartGuard::new(log, false);
    let log = log.clone();
    move |cx: Context| {
        Box::pin(async move {
            let _live = live;
            let g = CallGuard::new(&log, &spec.name, S::Hook, cx.is_shutting_down());
            g.act(spec.act).await
        })
    }
}

struct TestCheck {
    spec: CheckSpec,
    _live: PartGuard,
}

impl HealthChecker for TestCheck {
    async fn check(&self) -> Health {
        match self.spec.kind {
            CheckKind::Healthy => Health::Healthy,
            CheckKind::Degraded => Health::Degraded("degraded".into()),
            CheckKind::Unhealthy => Health::Unhealthy("unhealthy".into()),
            CheckKind::Panic => std::panic::panic_any(format!("{INJECTED}{}", self.spec.name)),
            CheckKind::Sleep(ms) => {
                Delay::new(Duration::from_millis(ms)).await;
                Health::Healthy
            }
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn options(c: &CompSpec) -> ComponentOptions {
    let backoff = if c.backoff_exp {
        Backoff::exponential(ms(c.backoff_ms), ms(10))
    } else {
        Backoff::constant(ms(c.backoff_ms))
    };
    let mut o = ComponentOptions::new()
        .start_timeout(ms(c.start_timeout_ms))
        .close_timeout(ms(c.close_timeout_ms))
        .readiness(
            Readiness::new()
                .attempts(c.attempts)
                .backoff(backoff)
                .attempt_timeout(ms(c.attempt_timeout_ms)),
        );
    if let Some(t) = c.stop_timeout_ms {
        o = o.stop_timeout(ms(t));
    }
    if let Some(deps) = &c.deps {
        o = o.depends_on(deps.iter().map(String::as_str));
    }
    if let Some(r) = &c.restart {
        o = o.restart(restart(r));
    }
    o
}

fn restart(r: &RestartSpec) -> Restart {
    if r.never {
        return Restart::never();
    }
    let base = ms(r.backoff_ms);
    let backoff = if r.backoff_exp {
        Backoff::exponential(base, base * 4)
    } else {
        Backoff::constant(base)
    };
    let window = match r.window_ms {
        u64::MAX => Duration::MAX,
        w => ms(w),
    };
    Restart::on_failure()
        .limit(r.max, window)
        .backoff(backoff.jitter(r.jitter))
}

/// After a stop request returned, readiness and health must fail.
fn expect_not_ready_now(log: &Arc<Log>, who: &str, handle: &Handle) {
    if handle.is_ready() {
        log.push(
            who,
            What::Violation("ready-after-stop-request", "is_ready() true".into()),
        );
    }
    if futures::executor::block_on(handle.is_healthy()) {
        log.push(
            who,
            What::Violation("healthy-after-stop-request", "is_healthy() true".into()),
        );
    }
}

fn registered(
    log: &Arc<Log>,
    handle: &Handle,
    name: &str,
    kind: Kind,
    sd: bool,
    r: Result<(), Error>,
) {
    if let Err(e) = &r {
        if e.is_shutting_down() && handle.report().shutdown_at().is_none() {
            log.push(
                name,
                What::Violation("refused-before-shutdown", format!("{e}")),
            );
        }
    }
    log.push(
        name,
        What::Registered {
            kind,
            ok: r.is_ok(),
            shutting_down_before: sd,
            refused: r.err().map(|e| e.kind()),
        },
    );
}

fn perform(log: &Arc<Log>, who: &str, handle: &Handle, action: Action) {
    match action {
        Action::Stop(msg) => {
            log.push(who, What::RequestBegin(msg.clone()));
            let r = handle.request_shutdown(msg.map(BoxError::from));
            let stopped = handle.phase() == lameduck::Phase::Stopped;
            log.push(who, What::RequestEnd(r, stopped));
            expect_not_ready_now(log, who, handle);
        }
        Action::Force => {
            log.push(who, What::ForceBegin);
            let r = handle.force_shutdown();
            log.push(who, What::ForceEnd(r));
            expect_not_ready_now(log, who, handle);
        }
        Action::AddComponent(spec) => {
            let sd = handle.is_shutting_down();
            let name = spec.name.clone();
            let opts = options(&spec);
            let r = handle.add_component_with(&name, TestComponent::new(*spec, log), opts);
            registered(log, handle, &name, Kind::Component, sd, r);
        }
        Action::AddDrainer(spec) => {
            let sd = handle.is_shutting_down();
            let name = spec.name.clone();
            let prepend = spec.prepend;
            let d = TestDrainer {
                spec,
                log: log.clone(),
                _live: PartGuard::new(log, false),
            };
            let r = if prepend {
                handle.prepend_drainer(&name, d)
            } else {
                handle.add_drainer(&name, d)
            };
            registered(log, handle, &name, Kind::Drainer { prepend }, sd, r);
        }
        Action::AddCheck(spec) => {
            let sd = handle.is_shutting_down();
            let name = spec.name.clone();
            let c = TestCheck {
                spec,
                _live: PartGuard::new(log, false),
            };
            let r = handle.add_health_check(&name, c);
            registered(log, handle, &name, Kind::Check, sd, r);
        }
        Action::AddHook(spec) => {
            let sd = handle.is_shutting_down();
            let name = spec.name.clone();
            let r = handle.add_stop_hook(&name, hook(spec, log));
            registered(log, handle, &name, Kind::Hook, sd, r);
        }
        Action::Probe => {
            let sd = handle.is_shutting_down();
            if handle.is_ready() && sd {
                log.push(
                    who,
                    What::Violation("ready-during-shutdown", "probe: is_ready() true".into()),
                );
            }
            let sd = handle.is_shutting_down();
            if futures::executor::block_on(handle.is_healthy()) && sd {
                log.push(
                    who,
                    What::Violation("healthy-during-shutdown", "probe: is_healthy() true".into()),
                );
            }
            // `ready()` resolves `false` only once shutdown has begun. Waited
            // for boundedly: with budgets too long for the clock, a launch
            // may wait for the stop request this very thread sends next.
            let ready = futures::executor::block_on(future::select(
                handle.ready(),
                Delay::new(Duration::from_millis(500)),
            ));
            if matches!(ready, Either::Left((false, _))) && !handle.is_shutting_down() {
                log.push(
                    who,
                    What::Violation("ready-false-while-running", "ready() resolved false".into()),
                );
            }
            let report = handle.report();
            if sd && report.shutdown_at().is_none() {
                log.push(
                    who,
                    What::Violation("report-without-shutdown", "report: no shutdown_at".into()),
                );
            }
        }
    }
}

/// What running one scenario produced.
pub struct Outcome {
    pub result: Result<Report, Error>,
    pub events: Vec<Ev>,
    /// User calls still alive when `run` returned (with a spawner: soon
    /// after).
    pub live_calls: usize,
    /// Components and other parts still alive once `run` returned and
    /// every helper thread finished (one handle still held).
    pub live_components: usize,
    pub live_parts: usize,
    /// From the shutdown request (per the report) to `run` returning.
    pub shutdown_to_return: Option<Duration>,
    pub report: Report,
}

/// Puts a future on a task of the runtime under test.
pub type SpawnFn = fn(futures::future::BoxFuture<'static, ()>);

/// Runs `sc` to the end: builds the lifecycle, starts the helper threads,
/// drives `run`, waits for the threads. `spawn` is used when `sc.spawner`.
pub async fn run_case(sc: Arc<Scenario>, spawn: Option<SpawnFn>) -> Outcome {
    let log = Log::new();
    let mut b = Lifecycle::builder()
        .shutdown_timeout(ms(sc.shutdown_timeout_ms))
        .lame_duck(ms(sc.lame_duck_ms));
    b = b.force_timeout(ms(sc.force_timeout_ms));
    if sc.spawner {
        let spawn = spawn.expect("a spawner for a spawner scenario");
        b = match sc.spawner_fault {
            SpawnerFault::None => b.spawner(spawn),
            SpawnerFault::DropEvery(n) => {
                let count = AtomicU64::new(0);
                b.spawner(move |task| {
                    if count.fetch_add(1, Ordering::SeqCst) % n == n - 1 {
                        drop(task);
                    } else {
                        spawn(task);
                    }
                })
            }
            SpawnerFault::Delay(d) => b.spawner(move |task| {
                spawn(Box::pin(async move {
                    Delay::new(ms(d)).await;
                    task.await;
                }));
            }),
        };
    }
    for c in &sc.components {
        b = b.component_with(&c.name, TestComponent::new(c.clone(), &log), options(c));
    }
    for d in &sc.drainers {
        let drainer = TestDrainer {
            spec: d.clone(),
            log: log.clone(),
            _live: PartGuard::new(&log, false),
        };
        b = if d.prepend {
            b.prepend_drainer(&d.name, drainer)
        } else {
            b.drainer(&d.name, drainer)
        };
    }
    for h in &sc.hooks {
        b = b.stop_hook(&h.name, hook(h.clone(), &log));
    }
    for c in &sc.checks {
        let check = TestCheck {
            spec: c.clone(),
            _live: PartGuard::new(&log, false),
        };
        b = b.health_check(&c.name, check);
    }
    let t_build = Instant::now();
    let lifecycle = b.build().expect("a generated scenario is valid");
    let handle = lifecycle.handle();
    if sc.reentrant_drops {
        *log.handle.lock().unwrap() = Some(handle.clone());
    }
    let t0 = Instant::now();
    let mut done = Vec::new();
    for (i, actions) in sc.threads.iter().enumerate() {
        let (tx, rx) = oneshot::channel::<()>();
        let handle = handle.clone();
        let log = log.clone();
        let actions = actions.clone();
        std::thread::spawn(move || {
            let who = format!("thread{i}");
            for (at, action) in actions {
                let when = t0 + ms(at);
                let now = Instant::now();
                if when > now {
                    std::thread::sleep(when - now);
                }
                perform(&log, &who, &handle, action);
            }
            drop(handle);
            drop(log);
            let _ = tx.send(());
        });
        done.push(rx);
    }
    let result = lifecycle.run().await;
    let t_end = Instant::now();
    log.push("lifecycle", What::RunReturned);
    if sc.spawner {
        // A spawned `run` is dropped by its own task, soon after its handle.
        let until = Instant::now() + Duration::from_secs(2);
        while log.live_calls.load(Ordering::SeqCst) != 0 && Instant::now() < until {
            Delay::new(ms(1)).await;
        }
    }
    let live_calls = log.live_calls.load(Ordering::SeqCst);
    for rx in done {
        let _ = rx.await;
    }
    // The log's handle would keep the lifecycle's state alive.
    log.handle.lock().unwrap().take();
    if sc.spawner {
        // A spawned task drops its `run` (its calls first, then the
        // component it holds) on its executor's thread, soon after `run`
        // returned: the two counters do not fall at the same instant.
        let until = Instant::now() + Duration::from_secs(2);
        while log.live_components.load(Ordering::SeqCst) != 0 && Instant::now() < until {
            Delay::new(ms(1)).await;
        }
    }
    let live_components = log.live_components.load(Ordering::SeqCst);
    let live_parts = log.live_parts.load(Ordering::SeqCst);
    let report = handle.report();
    let shutdown_to_return = report
        .shutdown_at()
        .map(|at| t_end.saturating_duration_since(t_build + at));
    drop(handle);
    let events = log.events.lock().unwrap().clone();
    Outcome {
        result,
        events,
        live_calls,
        live_components,
        live_parts,
        shutdown_to_return,
        report,
    }
}
