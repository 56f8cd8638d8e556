//! Registration through the builder and the handle, and bad input: nothing
//! panics, nothing hangs.

mod common;

use std::time::Duration;

use common::*;
use futures::executor::block_on;
use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, ComponentState, Context, ErrorKind, Lifecycle,
    Readiness, Step,
};

#[test]
fn component_added_through_handle_while_running_is_launched_and_stopped_first() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let adder = {
        let (log, handle) = (log.clone(), handle.clone());
        std::thread::spawn(move || {
            assert!(block_on(handle.ready()));
            handle
                .add_component("late", probe(&log, "late").not_ready_for(1))
                .unwrap();
            let t0 = std::time::Instant::now();
            while handle.report().component("late").map(|c| c.state) != Some(ComponentState::Ready)
            {
                assert!(
                    t0.elapsed() < LIMIT,
                    "`late` never ready: {:?}",
                    log.events()
                );
                std::thread::sleep(ms(2));
            }
            handle.request_shutdown(None);
        })
    };
    let report = expect_ok(run(lc).0);
    adder.join().unwrap();

    assert_eq!(log.only(&["start"]), ["start a", "start b", "start late"]);
    assert_eq!(log.only(&["stop"]), ["stop late", "stop b", "stop a"]);
    let late = report.component("late").unwrap();
    assert_eq!(late.state, ComponentState::Stopped);
    assert_eq!(late.attempts, 2);
}

/// Registers another component from inside its own `start`.
struct Spawns(Log);

impl Component for Spawns {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        self.0.push("start s");
        cx.handle().add_component("dyn", probe(&self.0, "dyn"))?;
        Ok(())
    }
}

#[test]
fn component_added_during_launch_launches_after_those_registered() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("s", Spawns(log.clone()))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, _, ready) = run_until_ready(lc);
    let report = expect_ok(out);
    assert!(ready);
    // `Handle::ready` waits for the dynamic component too
    assert_eq!(
        report.component("dyn").unwrap().state,
        ComponentState::Stopped
    );
    assert!(log.has("ready-end dyn"));
    assert_eq!(log.only(&["start"]), ["start s", "start b", "start dyn"]);
    assert_eq!(log.only(&["stop"]), ["stop dyn", "stop b"]);
    let names: Vec<_> = report.components().iter().map(|c| &*c.name).collect();
    assert_eq!(names, ["s", "b", "dyn"]);
}

#[test]
fn drainers_hooks_and_checks_added_through_handle_take_part() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .drainer("d1", drain(&log, "d1", Act::Ok))
        .stop_hook("h1", hook(&log, "h1", Act::Ok))
        .build()
        .unwrap();
    let handle = lc.handle();
    let adder = {
        let (log, handle) = (log.clone(), handle.clone());
        std::thread::spawn(move || {
            block_on(handle.ready());
            handle
                .add_drainer("d2", drain(&log, "d2", Act::Ok))
                .unwrap();
            handle
                .prepend_drainer("d0", drain(&log, "d0", Act::Ok))
                .unwrap();
            handle
                .add_stop_hook("h2", hook(&log, "h2", Act::Ok))
                .unwrap();
            handle.add_health_check("fine", AlwaysHealthy).unwrap();
            assert!(block_on(handle.is_healthy()));
            handle.request_shutdown(None);
        })
    };
    expect_ok(run(lc).0);
    adder.join().unwrap();
    assert_eq!(log.only(&["drain"]), ["drain d0", "drain d1", "drain d2"]);
    assert_eq!(log.only(&["hook"]), ["hook h2", "hook h1"]);
}

#[test]
fn registration_after_shutdown_is_refused_with_shutting_down() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    // before `run` is even polled
    assert!(handle.request_shutdown(None));
    let err = handle.add_component("x", probe(&log, "x")).unwrap_err();
    assert!(err.is_shutting_down());
    assert_eq!(err.step(), Some(Step::Register));
    assert_eq!(err.to_string(), "refused: the lifecycle is shutting down");
    assert!(
        handle
            .add_drainer("d", drain(&log, "d", Act::Ok))
            .unwrap_err()
            .is_shutting_down()
    );
    assert!(
        handle
            .add_stop_hook("h", hook(&log, "h", Act::Ok))
            .unwrap_err()
            .is_shutting_down()
    );
    assert!(
        handle
            .add_health_check("c", AlwaysHealthy)
            .unwrap_err()
            .is_shutting_down()
    );
    let report = expect_ok(run(lc).0);
    assert_eq!(report.components().len(), 1);
    assert!(!log.has("start x") && !log.has("drain d") && !log.has("hook h"));
}

#[test]
fn registration_from_a_stop_method_is_refused() {
    struct Registers(std::sync::Arc<std::sync::Mutex<Option<ErrorKind>>>);
    impl Component for Registers {
        async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
            let r = cx.handle().add_component("x", Fine2);
            *self.0.lock().unwrap() = r.err().map(|e| e.kind());
            Ok(())
        }
    }
    struct Fine2;
    impl Component for Fine2 {}

    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let lc = Lifecycle::builder()
        .component("r", Registers(seen.clone()))
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);
    assert_eq!(*seen.lock().unwrap(), Some(ErrorKind::ShuttingDown));
    assert_eq!(report.components().len(), 1);
}

#[test]
fn duplicate_names_are_config_errors() {
    let log = Log::new();
    let dup_component = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("a", probe(&log, "a2"))
        .build()
        .unwrap_err();
    let dup_drainer = Lifecycle::builder()
        .drainer("d", drain(&log, "d", Act::Ok))
        .prepend_drainer("d", drain(&log, "d", Act::Ok))
        .build()
        .unwrap_err();
    let dup_hook = Lifecycle::builder()
        .stop_hook("h", hook(&log, "h", Act::Ok))
        .stop_hook("h", hook(&log, "h", Act::Ok))
        .build()
        .unwrap_err();
    let dup_check = Lifecycle::builder()
        .health_check("c", AlwaysHealthy)
        .health_check("c", AlwaysHealthy)
        .build()
        .unwrap_err();
    for (err, name) in [
        (dup_component, "a"),
        (dup_drainer, "d"),
        (dup_hook, "h"),
        (dup_check, "c"),
    ] {
        assert!(err.is_config(), "{err}");
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(err.component(), Some(name));
        assert_eq!(err.step(), Some(Step::Register));
        assert!(err.to_string().contains("duplicate"), "{err}");
    }
}

#[test]
fn duplicate_names_through_handle_are_config_errors_and_change_nothing() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .drainer("d", drain(&log, "d", Act::Ok))
        .stop_hook("h", hook(&log, "h", Act::Ok))
        .health_check("c", AlwaysHealthy)
        .build()
        .unwrap();
    let h = lc.handle();
    assert!(
        h.add_component("a", probe(&log, "a2"))
            .unwrap_err()
            .is_config()
    );
    assert!(
        h.add_drainer("d", drain(&log, "d2", Act::Ok))
            .unwrap_err()
            .is_config()
    );
    assert!(
        h.prepend_drainer("d", drain(&log, "d3", Act::Ok))
            .unwrap_err()
            .is_config()
    );
    assert!(
        h.add_stop_hook("h", hook(&log, "h2", Act::Ok))
            .unwrap_err()
            .is_config()
    );
    assert!(
        h.add_health_check("c", AlwaysHealthy)
            .unwrap_err()
            .is_config()
    );
    h.request_shutdown(None);
    let report = expect_ok(run(lc).0);
    assert_eq!(report.components().len(), 1);
    assert_eq!(log.only(&["drain", "hook"]), ["drain d", "hook h"]);
}

#[test]
fn build_reports_the_first_refused_registration_in_call_order() {
    let log = Log::new();
    // A check refused before an invalid component: the check's error.
    let err = Lifecycle::builder()
        .health_check("c", AlwaysHealthy)
        .health_check("c", AlwaysHealthy)
        .component("", probe(&log, "empty"))
        .build()
        .unwrap_err();
    assert_eq!(err.component(), Some("c"), "{err}");
    // An invalid component before a refused drainer: the component's.
    let err = Lifecycle::builder()
        .component_with(
            "z",
            probe(&log, "z"),
            ComponentOptions::new().start_timeout(Duration::ZERO),
        )
        .drainer("d", drain(&log, "d", Act::Ok))
        .prepend_drainer("d", drain(&log, "d", Act::Ok))
        .build()
        .unwrap_err();
    assert_eq!(err.component(), Some("z"), "{err}");
    // A refused drainer before a refused check: the drainer's.
    let err = Lifecycle::builder()
        .drainer("d", drain(&log, "d", Act::Ok))
        .drainer("d/1", drain(&log, "d", Act::Ok))
        .health_check("c", AlwaysHealthy)
        .health_check("c", AlwaysHealthy)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("drainer"), "{err}");
}

#[test]
fn the_same_name_in_different_kinds_of_part_is_allowed() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("x", probe(&log, "x"))
        .drainer("x", drain(&log, "x", Act::Ok))
        .stop_hook("x", hook(&log, "x", Act::Ok))
        .health_check("x", AlwaysHealthy)
        .build();
    assert!(lc.is_ok());
}

#[test]
fn zero_attempts_and_zero_timeouts_are_config_errors() {
    let bad = [
        (
            ComponentOptions::new().readiness(Readiness::new().attempts(0)),
            "attempts",
        ),
        (
            ComponentOptions::new().readiness(Readiness::new().attempt_timeout(Duration::ZERO)),
            "attempt timeout",
        ),
        (
            ComponentOptions::new().start_timeout(Duration::ZERO),
            "start timeout",
        ),
    ];
    for (options, what) in bad {
        let log = Log::new();
        let err = Lifecycle::builder()
            .component_with("z", probe(&log, "z"), options.clone())
            .build()
            .unwrap_err();
        assert!(err.is_config(), "{what}: {err}");
        assert_eq!(err.component(), Some("z"));
        assert!(err.to_string().contains(what), "{err}");

        // through the handle: refused, nothing registered
        let lc = Lifecycle::builder().build().unwrap();
        let h = lc.handle();
        let err = h
            .add_component_with("z", probe(&log, "z"), options)
            .unwrap_err();
        assert!(err.is_config(), "{what}: {err}");
        // the name is still free
        h.add_component("z", probe(&log, "z")).unwrap();
        assert_eq!(h.report().components().len(), 1);
    }
}

#[test]
fn backoff_jitter_outside_zero_to_one_is_a_config_error() {
    for bad in [-0.5, 1.01, 20.0, f64::NAN, f64::INFINITY] {
        let options = ComponentOptions::new()
            .readiness(Readiness::new().backoff(Backoff::constant(ms(5)).jitter(bad)));
        let log = Log::new();
        let err = Lifecycle::builder()
            .component_with("z", probe(&log, "z"), options.clone())
            .build()
            .unwrap_err();
        assert!(err.is_config(), "{bad}: {err}");
        assert_eq!(err.component(), Some("z"));
        assert!(err.to_string().contains("jitter"), "{err}");

        let lc = Lifecycle::builder().build().unwrap();
        let err = lc
            .handle()
            .add_component_with("z", probe(&log, "z"), options)
            .unwrap_err();
        assert!(err.is_config(), "{bad}: {err}");
        assert!(lc.handle().report().components().is_empty());
    }
    for good in [0.0, 0.5, 1.0] {
        let options = ComponentOptions::new()
            .readiness(Readiness::new().backoff(Backoff::constant(ms(5)).jitter(good)));
        let log = Log::new();
        let lc = Lifecycle::builder()
            .component_with("z", probe(&log, "z"), options)
            .build();
        assert!(lc.is_ok(), "{good}");
    }
}

#[test]
fn duration_max_budgets_never_panic() {
    let log = Log::new();
    let max = Duration::MAX;
    let opts = ComponentOptions::new()
        .start_timeout(max)
        .stop_timeout(max)
        .close_timeout(max)
        .readiness(
            Readiness::new()
                .attempts(u32::MAX)
                .attempt_timeout(max)
                .backoff(Backoff::exponential(max, max)),
        );
    let lc = Lifecycle::builder()
        .shutdown_timeout(max)
        .watchdog(max, 99)
        .component_with("a", probe(&log, "a").not_ready_for(1), opts.clone())
        .component_with("b", probe(&log, "b"), opts)
        .drainer("d", drain(&log, "d", Act::Ok))
        .build()
        .unwrap();
    let handle = lc.handle();
    // `a` waits out a `Duration::MAX` backoff: only a stop ends it
    let stopper = {
        let log = log.clone();
        std::thread::spawn(move || {
            log.wait_for("ready-end a");
            std::thread::sleep(ms(20));
            handle.request_shutdown(None)
        })
    };
    let (out, took) = run(lc);
    assert!(stopper.join().unwrap());
    let report = expect_ok(out);
    assert!(!log.has("start b"));
    assert_eq!(log.count("stop a"), 1);
    assert_eq!(
        report.component("a").unwrap().state,
        ComponentState::Stopped
    );
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn duration_max_lame_duck_ends_with_force_stop() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(Duration::MAX)
        .lame_duck(Duration::MAX)
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let forcer = std::thread::spawn(move || {
        block_on(handle.ready());
        handle.request_shutdown(None);
        std::thread::sleep(ms(50));
        handle.force_shutdown()
    });
    let (out, took) = run(lc);
    assert!(forcer.join().unwrap());
    assert!(expect_err(out).is_forced());
    assert_eq!(log.count("close a"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn huge_but_representable_budgets_never_panic() {
    let log = Log::new();
    let huge = Duration::from_secs(u64::MAX / 4);
    let lc = Lifecycle::builder()
        .shutdown_timeout(huge)
        .lame_duck(ms(20))
        .component_with(
            "a",
            probe(&log, "a").not_ready_for(1),
            ComponentOptions::new()
                .start_timeout(huge)
                .stop_timeout(huge)
                .close_timeout(huge)
                .readiness(
                    Readiness::new()
                        .attempt_timeout(huge)
                        .backoff(Backoff::constant(ms(5))),
                ),
        )
        .build()
        .unwrap();
    let (out, _, ready) = run_until_ready(lc);
    expect_ok(out);
    assert!(ready);
}

#[test]
fn backoff_delay_never_panics() {
    let b = Backoff::exponential(Duration::MAX, Duration::MAX);
    assert_eq!(b.delay(u32::MAX), Duration::MAX);
    let b = Backoff::exponential(ms(10), ms(1000));
    assert_eq!(b.delay(0), ms(10));
    assert_eq!(b.delay(40), ms(1000));
    assert_eq!(Backoff::constant(ms(3)).delay(u32::MAX), ms(3));
}

#[test]
fn zero_shutdown_timeout_returns_at_once_and_closes_hanging_components() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(Duration::ZERO)
        .lame_duck(ms(10_000))
        .component("a", probe(&log, "a").stop(Act::Hang).close(Act::Hang))
        .drainer("d", drain(&log, "d", Act::Hang))
        .build()
        .unwrap();
    let (out, took, _) = run_until_ready(lc);
    let err = expect_err(out);
    assert!(find(&err, "a", Step::Stop).is_timeout());
    assert_eq!(log.count("close a"), 1);
    assert!(took < ms(1000), "{took:?}");
}

#[test]
fn empty_lifecycle_and_odd_call_orders_do_not_panic_or_hang() {
    // nothing registered
    let lc = Lifecycle::builder().build().unwrap();
    let (out, _, ready) = run_until_ready(lc);
    expect_ok(out);
    assert!(ready);

    // force before run, then the usual calls after it returned
    let lc = Lifecycle::builder()
        .component("a", probe(&Log::new(), "a"))
        .build()
        .unwrap();
    let h = lc.handle();
    assert!(h.force_shutdown());
    assert!(!h.force_shutdown());
    let err = expect_err(run(lc).0);
    assert!(err.is_forced());
    assert!(!h.request_shutdown(Some("late".into())));
    assert!(!h.force_shutdown());
    assert!(!block_on(h.ready()));
    block_on(h.stopped());
    block_on(h.shutting_down());
    assert!(!block_on(h.is_healthy()));

    // a lifecycle dropped without running: the handle still answers
    let lc = Lifecycle::builder()
        .component("a", probe(&Log::new(), "a"))
        .build()
        .unwrap();
    let h = lc.handle();
    drop(lc);
    assert!(h.request_shutdown(None));
    assert_eq!(h.report().components().len(), 1);

    // an empty name is refused, not a panic
    let err = Lifecycle::builder()
        .component("", probe(&Log::new(), "empty"))
        .build()
        .unwrap_err();
    assert!(err.is_config(), "{err}");
}

#[test]
fn dropping_the_run_future_marks_the_lifecycle_stopped() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let h = lc.handle();
    let mut fut = Box::pin(lc.run());
    // poll once: `a` starts, is ready, and runs
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(h.is_ready());
    drop(fut);
    block_on(h.stopped());
    assert_eq!(h.phase(), lameduck::Phase::Stopped);
    assert!(log.has("cancel run a"));
    assert!(!log.has("stop a"));
}

use std::future::Future as _;

/// Regression: with a lifecycle dropped before `run` was ever polled,
/// `Handle::stopped` never resolved.
#[test]
fn regression_stopped_hung_when_the_lifecycle_was_dropped_unrun() {
    let lc = Lifecycle::builder()
        .component("a", probe(&Log::new(), "a"))
        .build()
        .unwrap();
    let h = lc.handle();
    drop(lc);
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = h.clone();
    std::thread::spawn(move || {
        block_on(waiter.stopped());
        let _ = tx.send(());
    });
    rx.recv_timeout(ms(2000))
        .expect("Handle::stopped did not resolve");
    assert_eq!(h.phase(), lameduck::Phase::Stopped);
    assert!(h.add_component("b", probe(&Log::new(), "b")).is_err());
}

/// Regression: once the lifecycle had stopped without a shutdown (its `run`
/// future dropped, or never run), drainers, hooks and health checks were
/// still accepted, into a lifecycle that would never call them.
#[test]
fn regression_registration_accepted_after_the_lifecycle_stopped_without_shutdown() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let h = lc.handle();
    drop(lc);
    assert_eq!(h.phase(), lameduck::Phase::Stopped);
    assert!(!h.is_shutting_down());
    let refused = [
        h.add_component("c", probe(&log, "c")),
        h.add_drainer("d", drain(&log, "d", Act::Ok)),
        h.prepend_drainer("p", drain(&log, "p", Act::Ok)),
        h.add_stop_hook("h", hook(&log, "h", Act::Ok)),
        h.add_health_check("k", AlwaysHealthy),
    ];
    for r in refused {
        let err = r.unwrap_err();
        assert!(err.is_shutting_down(), "{err}");
    }
}

/// Regression: `Handle::ready` waited for readiness or a shutdown only, so
/// it hung forever once the lifecycle stopped without either (its `run`
/// future dropped during the launch, or the lifecycle dropped unrun).
#[test]
fn regression_handle_ready_hung_when_the_lifecycle_stopped_during_launch() {
    let lc = Lifecycle::builder()
        .component("a", probe(&Log::new(), "a").start(Act::Hang))
        .build()
        .unwrap();
    let h = lc.handle();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = h.clone();
    std::thread::spawn(move || {
        let _ = tx.send(block_on(waiter.ready()));
    });
    let mut fut = Box::pin(lc.run());
    let waker = futures::task::noop_waker();
    assert!(
        fut.as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
            .is_pending()
    );
    drop(fut);
    let ready = rx
        .recv_timeout(ms(2000))
        .expect("Handle::ready did not resolve");
    assert!(!ready);

    let unrun = Lifecycle::builder().build().unwrap();
    let h = unrun.handle();
    drop(unrun);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(block_on(h.ready()));
    });
    assert!(
        !rx.recv_timeout(ms(2000))
            .expect("Handle::ready did not resolve")
    );
}

/// The builder validates a component as it is added, but `build` still
/// reports the first error in the order of the calls, whichever the kind:
/// a duplicate, an invalid name, an invalid option, a duplicate drainer.
#[test]
fn builder_errors_come_in_the_order_of_the_calls() {
    struct Noop;
    impl Component for Noop {}
    let zero_attempts = || ComponentOptions::new().readiness(Readiness::new().attempts(0));
    let drainer = || lameduck::drainer_fn(|_cx| async { Ok::<_, BoxError>(()) });
    let message = |b: lameduck::LifecycleBuilder| b.build().unwrap_err().to_string();

    let dup_first = Lifecycle::builder()
        .component("a", Noop)
        .component("a", Noop)
        .component("x/y", Noop);
    assert!(message(dup_first).contains("duplicate component name"));

    let invalid_first = Lifecycle::builder()
        .component("a", Noop)
        .component("x/y", Noop)
        .component("a", Noop);
    assert!(message(invalid_first).contains("invalid component name \"x/y\""));

    let option_first = Lifecycle::builder()
        .drainer("d", drainer())
        .component_with("a", Noop, zero_attempts())
        .drainer("d", drainer());
    assert!(message(option_first).contains("readiness attempts must be at least 1"));

    let drainer_first = Lifecycle::builder()
        .drainer("d", drainer())
        .drainer("d", drainer())
        .component_with("a", Noop, zero_attempts())
        .component("", Noop);
    assert!(message(drainer_first).contains("duplicate drainer name"));

    let hook_first = Lifecycle::builder()
        .stop_hook("h", |_cx| async { Ok::<_, BoxError>(()) })
        .stop_hook("h", |_cx| async { Ok::<_, BoxError>(()) })
        .component("", Noop);
    assert!(message(hook_first).contains("duplicate stop hook name"));
}
