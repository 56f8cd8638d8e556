//! Launch and shutdown by the dependency graph: components whose
//! dependencies are ready start at once, components nothing running
//! depends on stop at once, and the order still holds — on every runtime
//! and with the spawner. Overlap is asserted with counters of calls in
//! flight, not with time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use lameduck::{
    BoxError, Component, ComponentOptions, ComponentState, Context, Lifecycle, LifecycleBuilder,
    Report,
};

/// Calls in flight, and the most seen at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }

    fn exit(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

/// How long a [`Part`]'s readiness check or stop takes.
#[derive(Clone, Copy)]
enum Wait {
    /// This long.
    For(Duration),
    /// Until this many calls of the same kind were in flight at once
    /// (an error after [`MEET_LIMIT`]: they never overlapped).
    Meet(usize),
}

const MEET_LIMIT: Duration = Duration::from_secs(3);

impl Wait {
    async fn wait(self, gauge: &Gauge) -> Result<(), BoxError> {
        gauge.enter();
        let out = match self {
            Wait::For(d) => {
                sleep(d).await;
                Ok(())
            }
            Wait::Meet(n) => {
                let t0 = Instant::now();
                loop {
                    if gauge.max() >= n {
                        break Ok(());
                    }
                    if t0.elapsed() > MEET_LIMIT {
                        break Err(format!("only {} of {n} at once", gauge.max()).into());
                    }
                    sleep(ms(1)).await;
                }
            }
        };
        gauge.exit();
        out
    }
}

/// What every [`Part`] of a lifecycle shares.
#[derive(Clone)]
struct Shared {
    log: Log,
    ready: Arc<Gauge>,
    stop: Arc<Gauge>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            log: Log::new(),
            ready: Arc::default(),
            stop: Arc::default(),
        }
    }

    fn part(&self, name: &str, ready: Wait, stop: Wait) -> Part {
        Part {
            name: name.to_owned(),
            shared: self.clone(),
            ready,
            stop,
        }
    }
}

/// A component whose readiness check and stop are counted by the gauges;
/// logs `start`, `ready-end`, `run-end`, `stop`, `stop-end` with its name.
struct Part {
    name: String,
    shared: Shared,
    ready: Wait,
    stop: Wait,
}

impl Component for Part {
    async fn start(&self, _: &Context) -> Result<(), BoxError> {
        self.shared.log.push(format!("start {}", self.name));
        Ok(())
    }

    async fn ready(&self, _: &Context) -> Result<bool, BoxError> {
        self.ready.wait(&self.shared.ready).await?;
        self.shared.log.push(format!("ready-end {}", self.name));
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        cx.stop_signal().await;
        self.shared.log.push(format!("run-end {}", self.name));
        Ok(())
    }

    async fn stop(&self, _: &Context) -> Result<(), BoxError> {
        self.shared.log.push(format!("stop {}", self.name));
        self.stop.wait(&self.shared.stop).await?;
        self.shared.log.push(format!("stop-end {}", self.name));
        Ok(())
    }
}

fn deps<'a>(names: impl IntoIterator<Item = &'a String>) -> ComponentOptions {
    ComponentOptions::new().depends_on(names.into_iter().map(String::as_str))
}

/// Every component started only once each of its dependencies was ready,
/// and each dependency stopped only once the component's `run` had ended
/// and its `stop` returned.
fn assert_order_respected(log: &Log, report: &Report) {
    for c in report.components() {
        for d in c.dependencies() {
            log.assert_before(&format!("ready-end {d}"), &format!("start {}", c.name));
            log.assert_before(&format!("run-end {}", c.name), &format!("stop {d}"));
            log.assert_before(&format!("stop-end {}", c.name), &format!("stop {d}"));
        }
    }
}

/// Runs `lifecycle` until it is ready, then shuts it down: how long the
/// launch took, and the result.
async fn launch_then_stop(lifecycle: Lifecycle) -> (Duration, Report) {
    let handle = lifecycle.handle();
    let t0 = Instant::now();
    let stopper = async move {
        assert!(handle.ready().await, "never ready");
        let took = t0.elapsed();
        handle.request_shutdown(None);
        took
    };
    let (out, took) = bounded(futures::future::join(lifecycle.run(), stopper)).await;
    (took, out.expect("a clean run"))
}

/// `layers` layers of `width` components, each depending on every
/// component of the layer below.
fn layered(
    shared: &Shared,
    mut builder: LifecycleBuilder,
    layers: usize,
    width: usize,
    ready: Wait,
    stop: Wait,
) -> LifecycleBuilder {
    let mut below: Vec<String> = Vec::new();
    for layer in 0..layers {
        let names: Vec<String> = (0..width).map(|i| format!("l{layer}c{i}")).collect();
        for name in &names {
            let part = shared.part(name, ready, stop);
            builder = builder.component_with(name.as_str(), part, deps(&below));
        }
        below = names;
    }
    builder
}

// ------------------------------------------------------------ scenarios

mod scenarios {
    use super::*;

    /// Components that depend on nothing are all in their readiness check
    /// at once, and all in their stop at once.
    pub async fn independent_components_overlap() {
        const N: usize = 8;
        let shared = Shared::new();
        let builder = layered(
            &shared,
            Lifecycle::builder(),
            1,
            N,
            Wait::Meet(N),
            Wait::Meet(N),
        );
        let (_, report) = launch_then_stop(builder.build().unwrap()).await;
        assert_eq!(shared.ready.max(), N);
        assert_eq!(shared.stop.max(), N);
        for c in report.components() {
            assert_eq!(c.state, ComponentState::Stopped, "{}", c.name);
        }
    }

    /// The target: 100 components in 10 layers of 10, each
    /// readiness check taking 50 ms, launch in about 10 x 50 ms, far from
    /// the 5 s one at a time would take; no component starts before its
    /// dependencies are ready or stops while a dependent runs; a layer
    /// stops all at once.
    pub async fn ten_layers_of_ten_launch_layer_by_layer() {
        let shared = Shared::new();
        let builder = layered(
            &shared,
            Lifecycle::builder(),
            10,
            10,
            Wait::For(ms(50)),
            Wait::Meet(10),
        );
        let (took, report) = launch_then_stop(builder.build().unwrap()).await;
        assert!(took < Duration::from_millis(2500), "launch took {took:?}");
        // Never two layers in readiness at once: each waits for the one
        // below to be ready.
        assert!(shared.ready.max() <= 10, "{}", shared.ready.max());
        assert_eq!(shared.stop.max(), 10);
        assert_order_respected(&shared.log, &report);
        for c in report.components() {
            assert_eq!(shared.log.count(&format!("stop {}", c.name)), 1);
        }
    }

    /// The first launch failure shuts everything down: a start in flight
    /// is cancelled (its component never started, never stopped), what
    /// depends on the failed component never starts, and every component
    /// that started is stopped exactly once.
    pub async fn a_failure_stops_everything_started_once() {
        let log = Log::new();
        let on = |names: &[&str]| ComponentOptions::new().depends_on(names.iter().copied());
        let lc = Lifecycle::builder()
            .component_with("base", probe(&log, "base"), on(&[]))
            .component_with(
                "flaky",
                probe(&log, "flaky").ready(Act::After(ms(20), &Act::Fail)),
                on(&["base"]),
            )
            .component_with(
                "slow",
                probe(&log, "slow").start(Act::sleep(ms(2000))),
                on(&["base"]),
            )
            .component_with("fine", probe(&log, "fine"), on(&["base"]))
            .component_with("top", probe(&log, "top"), on(&["flaky", "slow", "fine"]))
            .build()
            .unwrap();
        let err = bounded(lc.run()).await.unwrap_err();
        assert_eq!(err.component(), Some("flaky"), "{err}");
        let events = log.events();
        assert!(!log.has("start top"), "{events:?}");
        assert!(log.has("cancel start slow"), "{events:?}");
        assert!(!log.has("stop slow"), "{events:?}");
        for name in ["base", "flaky", "fine"] {
            assert_eq!(log.count(&format!("stop {name}")), 1, "{name}: {events:?}");
        }
        assert!(!events.iter().any(|e| e.starts_with("close")), "{events:?}");
        log.assert_before("stop-end fine", "stop base");
        log.assert_before("stop-end flaky", "stop base");
        let report = err.report().expect("the report");
        let state = |name| report.component(name).unwrap().state;
        assert_eq!(state("slow"), ComponentState::Pending);
        assert_eq!(state("top"), ComponentState::Pending);
        assert_eq!(state("flaky"), ComponentState::Failed);
        assert_eq!(state("fine"), ComponentState::Stopped);
    }

    /// Components registered while running that name a running one are
    /// launched together.
    pub async fn dynamic_registration_beside_a_launch() {
        let shared = Shared::new();
        let none: [&String; 0] = [];
        let lc = Lifecycle::builder()
            .component_with(
                "db",
                shared.part("db", Wait::For(ms(0)), Wait::For(ms(0))),
                deps(none),
            )
            .build()
            .unwrap();
        let handle = lc.handle();
        let adder = {
            let (handle, shared) = (handle.clone(), shared.clone());
            async move {
                assert!(handle.ready().await);
                let db = String::from("db");
                let meet = |name: &str| shared.part(name, Wait::Meet(2), Wait::For(ms(0)));
                handle
                    .add_component_with("queue", meet("queue"), deps([&db]))
                    .unwrap();
                handle
                    .add_component_with("cache", meet("cache"), deps([&db]))
                    .unwrap();
                bounded(async {
                    while !handle.is_ready() {
                        sleep(ms(2)).await;
                    }
                })
                .await;
                handle.request_shutdown(None);
            }
        };
        let (out, ()) = bounded(futures::future::join(lc.run(), adder)).await;
        let report = out.unwrap();
        assert_eq!(shared.ready.max(), 2);
        assert_order_respected(&shared.log, &report);
    }
}

// ---------------------------------------------------------------- runtimes

use common::runtimes::{on_every_runtime, tokio_multi_thread};

on_every_runtime!(
    independent_components_overlap,
    ten_layers_of_ten_launch_layer_by_layer,
    a_failure_stops_everything_started_once,
    dynamic_registration_beside_a_launch,
);

/// With a spawner each `run` is on its own task; layers still launch and
/// stop together, in order.
#[test]
fn layers_overlap_with_the_spawner() {
    tokio_multi_thread(|| async {
        let shared = Shared::new();
        let builder = Lifecycle::builder().spawner(|task| drop(tokio::spawn(task)));
        let builder = layered(&shared, builder, 3, 4, Wait::Meet(4), Wait::Meet(4));
        let (_, report) = launch_then_stop(builder.build().unwrap()).await;
        assert_eq!(shared.ready.max(), 4);
        assert_eq!(shared.stop.max(), 4);
        assert_order_respected(&shared.log, &report);
    });
}
