//! Promises the documentation makes that once broke under faults, extreme
//! inputs or odd executors: each test is named after what it guards.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::executor::block_on;
use lameduck::{ComponentOptions, ComponentState, ErrorKind, Lifecycle, Step};

/// A close that never finishes must not hold a forced shutdown for its own
/// close budget: every remaining `close` runs at once, bounded together by
/// the force budget, and the remaining stop hooks likewise.
#[test]
fn forced_stop_closes_every_hanging_component_at_once_within_the_force_budget() {
    let log = Log::new();
    let hanging = || ComponentOptions::new().close_timeout(Duration::from_secs(5));
    let lc = Lifecycle::builder()
        .shutdown_timeout(Duration::from_secs(30))
        .force_timeout(ms(300))
        .component_with(
            "a",
            probe(&log, "a").run(Act::Hang).close(Act::Hang),
            hanging(),
        )
        .component_with(
            "b",
            probe(&log, "b").run(Act::Hang).close(Act::Hang),
            hanging(),
        )
        .component_with(
            "c",
            probe(&log, "c")
                .run(Act::Hang)
                .stop(Act::Hang)
                .close(Act::Hang),
            hanging(),
        )
        .stop_hook("h1", hook(&log, "h1", Act::Hang))
        .stop_hook("h2", hook(&log, "h2", Act::Hang))
        .build()
        .unwrap();
    let handle = lc.handle();
    let forced_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let forcer = {
        let (log, handle, forced_at) = (log.clone(), handle.clone(), forced_at.clone());
        std::thread::spawn(move || {
            block_on(handle.ready());
            handle.request_shutdown(None);
            log.wait_for("stop c");
            *forced_at.lock().unwrap() = Some(Instant::now());
            handle.force_shutdown()
        })
    };
    let (out, _) = run(lc);
    let returned = Instant::now();
    assert!(forcer.join().unwrap());
    let after_force = returned - forced_at.lock().unwrap().unwrap();
    // one force budget (300 ms) for the closes and the hooks together, plus
    // a generous margin; before, each close took its 5 s in turn
    assert!(after_force < ms(1500), "{after_force:?}");
    let err = expect_err(out);
    for name in ["a", "b", "c"] {
        let e = find(&err, name, Step::Close);
        assert_eq!(e.kind(), ErrorKind::TimedOut, "{e:#}");
        assert!(e.budget().unwrap() <= ms(300), "{e:#}");
        assert!(log.has(&format!("close {name}")));
        assert!(log.has(&format!("cancel run {name}")));
    }
    for name in ["h1", "h2"] {
        assert_eq!(find(&err, name, Step::Hook).kind(), ErrorKind::TimedOut);
    }
    // the closes began together, not one after another
    let report = handle.report();
    let at: Vec<Duration> = ["a", "b", "c"]
        .iter()
        .map(|n| report.component(n).unwrap().close_at.unwrap())
        .collect();
    let spread = at
        .iter()
        .max()
        .unwrap()
        .saturating_sub(*at.iter().min().unwrap());
    assert!(spread < ms(100), "{at:?}");
    for name in ["a", "b", "c"] {
        assert_eq!(
            report.component(name).unwrap().state,
            ComponentState::Closed
        );
    }
}

/// The force budget at zero polls each close once: synchronous clean-up
/// completes, the rest is abandoned at once.
#[test]
fn force_budget_zero_polls_each_close_once() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .force_timeout(Duration::ZERO)
        .component("a", probe(&log, "a").run(Act::Hang))
        .component(
            "b",
            probe(&log, "b")
                .run(Act::Hang)
                .stop(Act::Hang)
                .close(Act::Hang),
        )
        .build()
        .unwrap();
    let forcer = force_on(&log, &lc.handle(), "stop b");
    let (out, took) = run(lc);
    assert!(forcer.join().unwrap());
    assert!(took < ms(2000), "{took:?}");
    let err = expect_err(out);
    assert_eq!(find(&err, "b", Step::Close).kind(), ErrorKind::TimedOut);
    // `a`'s close completes on its first poll
    assert!(log.has("close-end a"));
    assert!(all_errors(&err).iter().all(|e| e.component() != Some("a")));
}

/// A lifecycle whose launch failed was never routed to: it skips the lame
/// duck instead of serving nothing for the whole period.
#[test]
fn failed_launch_skips_the_lame_duck() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .lame_duck(Duration::from_secs(3))
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b").start(Act::Fail))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    assert_eq!(
        find(&expect_err(out), "b", Step::Start).kind(),
        ErrorKind::Failed
    );
    assert!(took < ms(1500), "{took:?}");
    assert_eq!(log.count("stop-end a"), 1);
}

/// A shutdown requested before the lifecycle was ever ready skips it too.
#[test]
fn stop_during_launch_skips_the_lame_duck() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .lame_duck(Duration::from_secs(3))
        .component("a", probe(&log, "a").ready(Act::Hang))
        .build()
        .unwrap();
    let stopper = stop_on(&log, &lc.handle(), "ready a");
    let (out, took) = run(lc);
    assert!(stopper.join().unwrap());
    expect_ok(out);
    assert!(took < ms(1500), "{took:?}");
}

/// An executor that drops the task it was handed (as a runtime shutting
/// down does) must not make `run` panic: the component gets an error.
#[test]
fn spawner_that_drops_its_task_is_an_error_of_the_component() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .spawner(drop)
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    assert!(took < ms(2000), "{took:?}");
    let err = expect_err(out);
    assert_eq!(err.kind(), ErrorKind::Dropped);
    assert!(err.is_dropped());
    assert_eq!(err.component(), Some("a"));
    assert_eq!(err.step(), Some(Step::Run));
    assert_eq!(
        err.to_string(),
        "`a` lost in run: its task was dropped by the executor"
    );
    assert!(!log.has("start b"), "the launch stopped at the failure");
}

/// A `run` on its own task that panics just after its stop budget ran out
/// (its task busy in that very poll when the lifecycle closes it) must still
/// reach the result.
#[test]
fn spawned_run_panicking_as_its_stop_budget_runs_out_reaches_the_result() {
    struct LateBloomer;
    impl lameduck::Component for LateBloomer {
        async fn run(&self, cx: &lameduck::Context) -> Result<(), lameduck::BoxError> {
            cx.stop_signal().await;
            // Busy in this poll past the 20 ms stop budget, then panics.
            std::thread::sleep(ms(40));
            panic!("late panic");
        }
    }
    let lc = Lifecycle::builder()
        .spawner(|task| {
            std::thread::spawn(move || block_on(task));
        })
        .component_with(
            "late",
            LateBloomer,
            ComponentOptions::new().stop_timeout(ms(20)),
        )
        .build()
        .unwrap();
    let handle = lc.handle();
    let stopper = stop_when_ready(&handle);
    let (out, took) = run(lc);
    assert!(stopper.join().unwrap());
    assert!(took < ms(2000), "{took:?}");
    let err = expect_err(out);
    let timeout = find(&err, "late", Step::Stop);
    assert!(timeout.is_timeout(), "{err:#}");
    let panic = find(&err, "late", Step::Run);
    assert_eq!(panic.panic_message(), Some("late panic"), "{err:#}");
}

/// A user part whose `Drop` reads the lifecycle through a handle, as a
/// part that logs its final state might.
struct ReportsOnDrop {
    handle: std::sync::Arc<std::sync::OnceLock<lameduck::Handle>>,
    dropped: std::sync::mpsc::Sender<usize>,
}

impl Drop for ReportsOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.handle.get() {
            let _ = self.dropped.send(h.report().components().len());
        }
    }
}

impl lameduck::HealthChecker for ReportsOnDrop {
    async fn check(&self) -> lameduck::Health {
        lameduck::Health::Healthy
    }
}

impl lameduck::Drainer for ReportsOnDrop {
    async fn drain(&self, _cx: &lameduck::Context) -> Result<(), lameduck::BoxError> {
        Ok(())
    }
}

impl lameduck::Component for ReportsOnDrop {}

/// Runs `f` on a thread; panics if it does not finish within [`LIMIT`]
/// (a deadlocked thread is left behind).
fn within(f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(LIMIT)
        .expect("deadlock: user Drop code ran under the library's locks");
}

fn reentrant() -> (
    std::sync::Arc<std::sync::OnceLock<lameduck::Handle>>,
    std::sync::mpsc::Sender<usize>,
    std::sync::mpsc::Receiver<usize>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    (Default::default(), tx, rx)
}

#[test]
fn a_health_checks_drop_may_use_the_handle() {
    let (slot, tx, rx) = reentrant();
    let part = ReportsOnDrop {
        handle: slot.clone(),
        dropped: tx,
    };
    let lc = Lifecycle::builder()
        .health_check("k", part)
        .build()
        .unwrap();
    let _ = slot.set(lc.handle());
    lc.handle().request_shutdown(None);
    within(move || {
        block_on(lc.run()).unwrap();
    });
    assert_eq!(rx.recv_timeout(LIMIT), Ok(0));
}

#[test]
fn a_drainers_and_a_hooks_drop_may_use_the_handle_when_the_lifecycle_is_dropped_unrun() {
    let (slot, tx, rx) = reentrant();
    let drainer = ReportsOnDrop {
        handle: slot.clone(),
        dropped: tx.clone(),
    };
    let captured = ReportsOnDrop {
        handle: slot.clone(),
        dropped: tx,
    };
    let lc = Lifecycle::builder()
        .drainer("d", drainer)
        .stop_hook("h", move |_cx| async move {
            drop(captured);
            Ok(())
        })
        .build()
        .unwrap();
    let _ = slot.set(lc.handle());
    within(move || drop(lc));
    assert_eq!(rx.recv_timeout(LIMIT), Ok(0));
    assert_eq!(rx.recv_timeout(LIMIT), Ok(0));
}

#[test]
fn a_refused_components_drop_may_use_the_handle() {
    let (slot, tx, rx) = reentrant();
    let lc = Lifecycle::builder()
        .component("a", probe(&Log::new(), "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let _ = slot.set(handle.clone());
    within(move || {
        let refused = ReportsOnDrop {
            handle: slot,
            dropped: tx,
        };
        let err = handle.add_component("a", refused).unwrap_err();
        assert!(err.is_config(), "{err}");
        drop(lc);
    });
    assert_eq!(rx.recv_timeout(LIMIT), Ok(1));
}

/// A component added while running is not serving yet: readiness fails
/// until it is ready, then passes again.
#[test]
fn a_component_added_while_running_keeps_readiness_failing_until_ready() {
    use lameduck::Probe;
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let gate = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (handle, gate, log) = (handle.clone(), gate.clone(), log.clone());
        std::thread::spawn(move || {
            let probes = handle.probes();
            assert!(block_on(handle.ready()));
            assert!(block_on(probes.check(Probe::Readiness)).is_passing());
            // readiness answers `Ok(false)` until the gate opens
            handle
                .add_component("late", GatedReady(gate.clone()))
                .unwrap();
            std::thread::sleep(ms(50));
            let report = block_on(probes.check(Probe::Readiness));
            let during = (
                report.is_passing(),
                handle.is_ready(),
                report
                    .get("launch")
                    .map(|c| c.health().is_some_and(|h| h.is_passing())),
            );
            gate.store(true, std::sync::atomic::Ordering::SeqCst);
            let t0 = Instant::now();
            while !block_on(probes.check(Probe::Readiness)).is_passing() && t0.elapsed() < LIMIT {
                std::thread::sleep(ms(5));
            }
            let after = (
                block_on(probes.check(Probe::Readiness)).is_passing(),
                handle.is_ready(),
            );
            drop(log);
            handle.request_shutdown(None);
            (during, after)
        })
    };
    expect_ok(run(lc).0);
    let (during, after) = checker.join().unwrap();
    assert_eq!(during, (false, false, Some(false)));
    assert_eq!(after, (true, true));
}

/// Ready once its gate opens.
struct GatedReady(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl lameduck::Component for GatedReady {
    async fn ready(&self, _cx: &lameduck::Context) -> Result<bool, lameduck::BoxError> {
        Ok(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}
