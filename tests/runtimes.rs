//! The runtime-agnostic proof: one scenario suite, run unchanged under tokio
//! (current-thread and multi-thread), smol, async-std and
//! `futures::executor::block_on`.
//!
//! Every scenario is a plain `async fn` that uses nothing but `lameduck`,
//! `futures` and `futures-timer`; the macro at the bottom generates one
//! `#[test]` per (runtime × scenario), named `<runtime>__<scenario>`.
#![allow(non_snake_case)] // test names read `<runtime>__<scenario>`

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture};
use futures_timer::Delay;
use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, Context, ErrorKind, Lifecycle, Readiness, Step,
};

// ---------------------------------------------------------------- runtimes

use common::runtimes::*;

// ------------------------------------------------------------- test parts

/// An ordered log of what the components did.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn take(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Counts live values: incremented on creation, decremented on drop.
#[derive(Clone, Default)]
struct Live(Arc<AtomicUsize>);

struct LiveGuard(Arc<AtomicUsize>);

impl Live {
    fn guard(&self) -> LiveGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.0.clone())
    }
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A component that logs each call and behaves well.
struct Logged(Log);

impl Component for Logged {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        self.0.push(format!("start {}", cx.name()));
        Ok(())
    }
    async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
        self.0.push(format!("ready {}", cx.name()));
        Ok(true)
    }
    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        self.0.push(format!("stop {}", cx.name()));
        Ok(())
    }
    async fn close(&self, cx: &Context) -> Result<(), BoxError> {
        self.0.push(format!("close {}", cx.name()));
        Ok(())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits, runtime-agnostically, until `cond` holds (bounded).
async fn eventually(mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < until, "condition not met within 5 s");
        Delay::new(ms(1)).await;
    }
}

// -------------------------------------------------------------- scenarios

mod scenarios {
    use super::*;

    /// Runs the lifecycle, requesting a stop once every component is ready
    /// (which it must become).
    async fn run_until_ready(lifecycle: Lifecycle) -> Result<lameduck::Report, lameduck::Error> {
        let handle = lifecycle.handle();
        let (res, ()) = future::join(lifecycle.run(), async {
            assert!(handle.ready().await);
            handle.request_shutdown(None);
        })
        .await;
        res
    }

    /// Components start in registration order, each after its predecessor
    /// is ready.
    pub(super) async fn ordered_start() {
        let log = Log::default();
        let lifecycle = Lifecycle::builder()
            .component("a", Logged(log.clone()))
            .component("b", Logged(log.clone()))
            .component("c", Logged(log.clone()))
            .build()
            .unwrap();
        let res = run_until_ready(lifecycle).await;
        res.unwrap();
        assert_eq!(
            log.take()[..6],
            [
                "start a", "ready a", "start b", "ready b", "start c", "ready c"
            ]
        );
    }

    /// Components stop in reverse launch order, each once, none closed.
    pub(super) async fn reverse_stop() {
        let log = Log::default();
        let lifecycle = Lifecycle::builder()
            .component("a", Logged(log.clone()))
            .component("b", Logged(log.clone()))
            .component("c", Logged(log.clone()))
            .build()
            .unwrap();
        let res = run_until_ready(lifecycle).await;
        let report = res.unwrap();
        let stops: Vec<_> = log
            .take()
            .into_iter()
            .filter(|l| l.starts_with("stop") || l.starts_with("close"))
            .collect();
        assert_eq!(stops, ["stop c", "stop b", "stop a"]);
        assert!(
            report
                .components()
                .iter()
                .all(|c| c.state == lameduck::ComponentState::Stopped)
        );
    }

    /// `Ok(false)` twice, then `Ok(true)`: three attempts, with the backoff
    /// between them.
    pub(super) async fn readiness_retry() {
        struct Flaky(AtomicUsize, Mutex<Vec<Instant>>);
        impl Component for Flaky {
            async fn ready(&self, _cx: &Context) -> Result<bool, BoxError> {
                self.1.lock().unwrap().push(Instant::now());
                Ok(self.0.fetch_add(1, Ordering::SeqCst) >= 2)
            }
        }
        let flaky = Arc::new(Flaky(AtomicUsize::new(0), Mutex::new(Vec::new())));
        struct Shared(Arc<Flaky>);
        impl Component for Shared {
            async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
                self.0.ready(cx).await
            }
        }
        let lifecycle = Lifecycle::builder()
            .component_with(
                "flaky",
                Shared(flaky.clone()),
                ComponentOptions::new().readiness(
                    Readiness::new()
                        .attempts(5)
                        .backoff(Backoff::constant(ms(20))),
                ),
            )
            .build()
            .unwrap();
        let res = run_until_ready(lifecycle).await;
        let report = res.unwrap();
        assert_eq!(report.component("flaky").unwrap().attempts, 3);
        let at = flaky.1.lock().unwrap().clone();
        assert_eq!(at.len(), 3);
        for pair in at.windows(2) {
            assert!(pair[1] - pair[0] >= ms(20), "backoff not honoured: {at:?}");
        }
    }

    /// A stop that hangs past its budget: `close` is called, the error names
    /// component, step and budget, and the `run` future is dropped.
    pub(super) async fn timeout_abandonment() {
        struct Stuck {
            closed: Arc<AtomicBool>,
            runs: Live,
        }
        impl Component for Stuck {
            fn run(&self, _cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
                let guard = self.runs.guard();
                async move {
                    let _guard = guard;
                    future::pending::<()>().await;
                    Ok(())
                }
            }
            async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
                future::pending::<()>().await;
                Ok(())
            }
            async fn close(&self, _cx: &Context) -> Result<(), BoxError> {
                self.closed.store(true, Ordering::SeqCst);
                Ok(())
            }
        }
        let closed = Arc::new(AtomicBool::new(false));
        let runs = Live::default();
        let lifecycle = Lifecycle::builder()
            .shutdown_timeout(Duration::from_secs(10))
            .component_with(
                "stuck",
                Stuck {
                    closed: closed.clone(),
                    runs: runs.clone(),
                },
                ComponentOptions::new().stop_timeout(ms(50)),
            )
            .build()
            .unwrap();
        let handle = lifecycle.handle();
        let t0 = Instant::now();
        let (res, ()) = future::join(lifecycle.run(), async {
            assert!(handle.ready().await);
            assert_eq!(runs.count(), 1, "run is being polled");
            handle.request_shutdown(None);
        })
        .await;
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let err = res.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert_eq!(err.component(), Some("stuck"));
        assert_eq!(err.step(), Some(Step::Stop));
        assert_eq!(err.budget(), Some(ms(50)));
        assert!(closed.load(Ordering::SeqCst), "close was not called");
        assert_eq!(runs.count(), 0, "the run future was not dropped");
    }

    /// A panic in `run` becomes the error, message kept.
    pub(super) async fn panic_message_kept() {
        struct Boom;
        impl Component for Boom {
            async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
                Delay::new(ms(5)).await;
                panic!("boom at {}", 42);
            }
        }
        let res = Lifecycle::builder()
            .component("boom", Boom)
            .build()
            .unwrap()
            .run()
            .await;
        let err = res.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.component(), Some("boom"));
        assert_eq!(err.step(), Some(Step::Run));
        assert_eq!(err.panic_message(), Some("boom at 42"));
    }

    /// The first error is primary; later ones are attached, in order.
    pub(super) async fn first_error() {
        struct FailsRun;
        impl Component for FailsRun {
            async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
                Delay::new(ms(5)).await;
                Err("run broke".into())
            }
        }
        struct FailsStop;
        impl Component for FailsStop {
            async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
                Err("stop broke".into())
            }
        }
        let res = Lifecycle::builder()
            .component("first", FailsStop)
            .component("second", FailsRun)
            .stop_hook("hook", |_cx| async {
                Err::<(), BoxError>("hook broke".into())
            })
            .build()
            .unwrap()
            .run()
            .await;
        let err = res.unwrap_err();
        assert_eq!(err.component(), Some("second"));
        assert_eq!(err.step(), Some(Step::Run));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("run broke"), "{err:#}");
        let others: Vec<_> = err
            .others()
            .iter()
            .map(|e| (e.component().unwrap().to_owned(), e.step().unwrap()))
            .collect();
        assert_eq!(
            others,
            [
                ("first".to_owned(), Step::Stop),
                ("hook".to_owned(), Step::Hook)
            ]
        );
    }

    /// A component added through the handle while running is launched after
    /// the others and stopped before them; after shutdown, registration is
    /// refused with `ShuttingDown`.
    pub(super) async fn dynamic_registration() {
        let log = Log::default();
        let lifecycle = Lifecycle::builder()
            .component("a", Logged(log.clone()))
            .build()
            .unwrap();
        let handle = lifecycle.handle();
        let (res, ()) = future::join(lifecycle.run(), async {
            assert!(handle.ready().await);
            handle.add_component("late", Logged(log.clone())).unwrap();
            let l = log.clone();
            eventually(move || l.take().iter().any(|e| e == "ready late")).await;
            handle.request_shutdown(None);
            let err = handle
                .add_component("too-late", Logged(log.clone()))
                .unwrap_err();
            assert!(err.is_shutting_down(), "{err}");
            assert_eq!(err.kind(), ErrorKind::ShuttingDown);
        })
        .await;
        res.unwrap();
        assert_eq!(
            log.take(),
            [
                "start a",
                "ready a",
                "start late",
                "ready late",
                "stop late",
                "stop a"
            ]
        );
        let err = handle
            .add_component("after-run", Logged(log.clone()))
            .unwrap_err();
        assert!(err.is_shutting_down());
    }
}

/// The spawner scenario: each `run` on its own task of the given executor.
async fn spawner_scenario(spawn: fn(BoxFuture<'static, ()>)) {
    let log = Log::default();
    let runs = Live::default();
    struct Spawned(Log, Live);
    impl Component for Spawned {
        fn run(&self, cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
            let guard = self.1.guard();
            let log = self.0.clone();
            let stop = cx.stop_signal();
            let name = cx.name().to_owned();
            async move {
                let _guard = guard;
                log.push(format!("run {name}"));
                stop.await;
                log.push(format!("run {name} ends"));
                Ok(())
            }
        }
        async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
            self.0.push(format!("stop {}", cx.name()));
            Ok(())
        }
    }
    let lifecycle = Lifecycle::builder()
        .spawner(spawn)
        .component("a", Spawned(log.clone(), runs.clone()))
        .component("b", Spawned(log.clone(), runs.clone()))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let (res, ()) = future::join(lifecycle.run(), async {
        assert!(handle.ready().await);
        let l = log.clone();
        eventually(move || l.take().len() == 2).await;
        handle.request_shutdown(None);
    })
    .await;
    res.unwrap();
    let events = log.take();
    let at = |e: &str| {
        events
            .iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("no `{e}` in {events:?}"))
    };
    // b stops (and its run ends) before a is asked to stop.
    assert!(at("stop b") < at("stop a"), "{events:?}");
    assert!(at("run b ends") < at("stop a"), "{events:?}");
    assert!(at("run b ends") < at("run a ends"), "{events:?}");
    assert_eq!(events.len(), 6, "{events:?}");
    // The run futures ended on their own tasks; dropping them may lag.
    let r = runs.clone();
    eventually(move || r.count() == 0).await;
}

#[test]
fn tokio_multi_thread__spawner() {
    tokio_multi_thread(|| {
        spawner_scenario(|task| {
            tokio::spawn(task);
        })
    });
}

#[test]
fn tokio_current_thread__spawner() {
    tokio_current_thread(|| {
        spawner_scenario(|task| {
            tokio::spawn(task);
        })
    });
}

#[test]
fn smol__spawner() {
    smol(|| {
        spawner_scenario(|task| {
            smol::spawn(task).detach();
        })
    });
}

/// One `#[test]` per runtime for a scenario: `<runtime>__<scenario>`.
macro_rules! on_every_runtime {
    ($scenario:ident: $($runtime:ident => $test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $runtime(scenarios::$scenario);
            }
        )*
    };
}

macro_rules! suite {
    ($($scenario:ident { $($runtime:ident => $test:ident),* $(,)? })*) => {
        $( on_every_runtime!($scenario: $($runtime => $test),*); )*
    };
}

suite! {
    ordered_start {
        tokio_current_thread => tokio_current_thread__ordered_start,
        tokio_multi_thread => tokio_multi_thread__ordered_start,
        smol => smol__ordered_start,
        async_std => async_std__ordered_start,
        block_on => block_on__ordered_start,
    }
    reverse_stop {
        tokio_current_thread => tokio_current_thread__reverse_stop,
        tokio_multi_thread => tokio_multi_thread__reverse_stop,
        smol => smol__reverse_stop,
        async_std => async_std__reverse_stop,
        block_on => block_on__reverse_stop,
    }
    readiness_retry {
        tokio_current_thread => tokio_current_thread__readiness_retry,
        tokio_multi_thread => tokio_multi_thread__readiness_retry,
        smol => smol__readiness_retry,
        async_std => async_std__readiness_retry,
        block_on => block_on__readiness_retry,
    }
    timeout_abandonment {
        tokio_current_thread => tokio_current_thread__timeout_abandonment,
        tokio_multi_thread => tokio_multi_thread__timeout_abandonment,
        smol => smol__timeout_abandonment,
        async_std => async_std__timeout_abandonment,
        block_on => block_on__timeout_abandonment,
    }
    panic_message_kept {
        tokio_current_thread => tokio_current_thread__panic_message_kept,
        tokio_multi_thread => tokio_multi_thread__panic_message_kept,
        smol => smol__panic_message_kept,
        async_std => async_std__panic_message_kept,
        block_on => block_on__panic_message_kept,
    }
    first_error {
        tokio_current_thread => tokio_current_thread__first_error,
        tokio_multi_thread => tokio_multi_thread__first_error,
        smol => smol__first_error,
        async_std => async_std__first_error,
        block_on => block_on__first_error,
    }
    dynamic_registration {
        tokio_current_thread => tokio_current_thread__dynamic_registration,
        tokio_multi_thread => tokio_multi_thread__dynamic_registration,
        smol => smol__dynamic_registration,
        async_std => async_std__dynamic_registration,
        block_on => block_on__dynamic_registration,
    }
}
