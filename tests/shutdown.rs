//! DESIGN §3, shutdown: rules 9–17.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use common::*;
use futures::executor::block_on;
use lameduck::{
    BoxError, Component, ComponentOptions, ComponentState, Context, ErrorKind, Lifecycle, Phase,
    Step, component,
};

/// Serves (counts ticks) until its stop signal.
struct Ticker {
    ticks: Arc<AtomicU32>,
    log: Log,
}

impl Component for Ticker {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let stop = cx.stop_signal();
        while !stop.is_set() {
            self.ticks.fetch_add(1, Ordering::SeqCst);
            sleep(ms(5)).await;
        }
        Ok(())
    }

    async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
        self.log.push("stop t");
        Ok(())
    }
}

#[test]
fn rule_09_lame_duck_fails_readiness_while_components_keep_serving() {
    let log = Log::new();
    let ticks = Arc::new(AtomicU32::new(0));
    let lc = Lifecycle::builder()
        .lame_duck(ms(300))
        .shutdown_timeout(ms(5000))
        .component(
            "t",
            Ticker {
                ticks: ticks.clone(),
                log: log.clone(),
            },
        )
        .health_check("always", AlwaysHealthy)
        .build()
        .unwrap();
    let handle = lc.handle();
    let observer = {
        let (log, handle, ticks) = (log.clone(), handle.clone(), ticks.clone());
        std::thread::spawn(move || {
            assert!(block_on(handle.ready()));
            assert!(handle.is_ready());
            assert!(block_on(handle.is_healthy()));
            handle.request_shutdown(None);
            std::thread::sleep(ms(50));
            assert_eq!(handle.phase(), Phase::LameDuck);
            assert!(!handle.is_ready(), "readiness fails at once");
            assert!(!block_on(handle.is_healthy()));
            let before = ticks.load(Ordering::SeqCst);
            std::thread::sleep(ms(100));
            let after = ticks.load(Ordering::SeqCst);
            assert!(after > before, "still serving: {before} -> {after}");
            assert!(!log.has("stop t"), "nothing stopped during lame duck");
        })
    };
    let report = expect_ok(run(lc).0);
    observer.join().unwrap();

    let t = report.component("t").unwrap();
    let waited = t.stop_at.unwrap() - report.shutdown_at().unwrap();
    assert!(
        waited >= ms(290),
        "drain began {waited:?} after the request"
    );
    assert_eq!(t.state, ComponentState::Stopped);
}

#[test]
fn rule_10_drain_stops_in_reverse_launch_order_one_at_a_time() {
    let log = Log::new();
    // each run takes 30 ms to wind down after its stop signal
    let slow = |name| {
        probe(&log, name)
            .run(Act::After(ms(0), &Act::UntilStop))
            .stop(Act::sleep(ms(30)))
    };
    let lc = Lifecycle::builder()
        .component("a", slow("a"))
        .component("b", slow("b"))
        .component("c", slow("c"))
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);

    assert_eq!(log.only(&["stop"]), ["stop c", "stop b", "stop a"]);
    // one at a time: c is fully stopped (stop returned, run ended) before b
    for (first, next) in [("c", "b"), ("b", "a")] {
        log.assert_before(&format!("stop-end {first}"), &format!("stop {next}"));
        log.assert_before(&format!("run-end {first}"), &format!("stop {next}"));
        // the next one's stop signal is set only on its turn
        log.assert_before(&format!("stop-end {first}"), &format!("run-end {next}"));
    }
    for name in ["a", "b", "c"] {
        assert_eq!(
            report.component(name).unwrap().state,
            ComponentState::Stopped
        );
        assert!(!log.has(&format!("close {name}")));
    }
}

#[test]
fn rule_10_stopping_calls_stop_and_waits_for_run_to_end() {
    let log = Log::new();
    let (tx, rx) = async_channel::bounded::<()>(1);
    let server = {
        let log = log.clone();
        let log2 = log.clone();
        component::serve(
            move |_cx| async move {
                // ends only when `stop` (the shutdown closure) has run
                let _ = rx.recv().await;
                sleep(ms(40)).await;
                log.push("run-end server");
                Ok::<_, BoxError>(())
            },
            move |_cx| async move {
                log2.push("stop server");
                tx.close();
                Ok::<_, BoxError>(())
            },
        )
    };
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("server", server)
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);

    log.assert_before("stop server", "run-end server");
    log.assert_before("run-end server", "stop a");
    let s = report.component("server").unwrap();
    assert_eq!(s.state, ComponentState::Stopped);
    assert!(s.stop_took.unwrap() >= ms(40));
}

/// Reads the report from inside its `stop`, once that has waited.
struct ReadsReportInStop {
    seen: Arc<std::sync::Mutex<Option<lameduck::ComponentRecord>>>,
}

impl Component for ReadsReportInStop {
    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        sleep(ms(20)).await;
        let report = cx.handle().report();
        *self.seen.lock().unwrap() = report.component("slow").cloned();
        Ok(())
    }
}

#[test]
fn rule_10_a_report_read_during_a_stop_that_waits_says_stopping() {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let lc = Lifecycle::builder()
        .component("slow", ReadsReportInStop { seen: seen.clone() })
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);

    let during = seen.lock().unwrap().take().expect("`stop` read the report");
    assert_eq!(during.state, ComponentState::Stopping);
    let after = report.component("slow").unwrap();
    assert_eq!(during.stop_at, after.stop_at);
    assert!(during.stop_at.is_some());
    assert_eq!(during.stop_took, None);
    assert_eq!(after.state, ComponentState::Stopped);
    assert!(after.stop_took.unwrap() >= ms(20));
}

#[test]
fn rule_10_a_stop_that_ends_at_once_is_stamped_whole() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);

    assert_eq!(log.only(&["stop"]), ["stop b", "stop a"]);
    for name in ["a", "b"] {
        let r = report.component(name).unwrap();
        assert_eq!(r.state, ComponentState::Stopped, "{name}");
        let (at, took, ended) = (
            r.stop_at.unwrap(),
            r.stop_took.unwrap(),
            r.run_ended_at.unwrap(),
        );
        assert!(at <= ended && ended <= at + took, "{name}: {r:?}");
    }
    let (a, b) = (
        report.component("a").unwrap(),
        report.component("b").unwrap(),
    );
    // `a` stops only once `b` has.
    assert!(b.stop_at.unwrap() + b.stop_took.unwrap() <= a.stop_at.unwrap());
}

#[test]
fn rule_10_only_components_whose_start_succeeded_are_stopped() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b").start(Act::Fail))
        .component("c", probe(&log, "c"))
        .build()
        .unwrap();
    let err = expect_err(run(lc).0);
    assert_eq!(
        (err.component(), err.step()),
        (Some("b"), Some(Step::Start))
    );
    assert_eq!(log.only(&["stop", "close"]), ["stop a"]);
}

#[test]
fn rule_11_stop_overrun_calls_close_and_names_component_phase_budget() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(5000))
        .component("a", probe(&log, "a"))
        .component_with(
            "b",
            // ignores its stop signal, and `stop` never returns
            probe(&log, "b").run(Act::Hang).stop(Act::Hang),
            ComponentOptions::new().stop_timeout(ms(100)),
        )
        .build()
        .unwrap();
    let (out, took, _) = run_until_ready(lc);
    let err = expect_err(out);

    assert!(err.is_timeout());
    assert_eq!(err.component(), Some("b"));
    assert_eq!(err.step(), Some(Step::Stop));
    assert_eq!(err.phase(), Some(Phase::Draining));
    assert_eq!(err.budget(), Some(ms(100)));
    assert!(
        err.to_string()
            .contains("`b` timed out in stop after 100ms"),
        "{err}"
    );
    assert!(err.others().is_empty(), "{:#?}", err.others());
    // closed, its futures dropped at once, and shutdown went on
    assert_eq!(log.count("close b"), 1);
    log.assert_before("cancel stop b", "close b");
    log.assert_before("cancel run b", "stop a");
    assert_eq!(log.count("stop a"), 1);
    assert!(!log.has("close a"));
    assert!(took >= ms(100) && took < ms(2000), "{took:?}");
}

#[test]
fn rule_11_run_not_ending_after_stop_is_closed_and_dropped() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component_with(
            "b",
            probe(&log, "b").run(Act::Hang),
            ComponentOptions::new().stop_timeout(ms(100)),
        )
        .build()
        .unwrap();
    let (out, took, _) = run_until_ready(lc);
    let err = expect_err(out);

    assert!(err.is_timeout());
    assert_eq!((err.component(), err.step()), (Some("b"), Some(Step::Stop)));
    assert_eq!(err.budget(), Some(ms(100)));
    assert!(log.has("stop-end b"));
    log.assert_before("close b", "cancel run b");
    log.assert_before("cancel run b", "stop a");
    assert!(took >= ms(100) && took < ms(2000), "{took:?}");
}

#[test]
fn rule_11_stop_timeout_zero_closes_at_once() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with(
            "a",
            probe(&log, "a").run(Act::Hang),
            ComponentOptions::new().stop_timeout(ms(0)),
        )
        .build()
        .unwrap();
    let (out, took, _) = run_until_ready(lc);
    let report = expect_ok(out);
    assert!(!log.has("stop a"));
    assert_eq!(log.count("close a"), 1);
    assert!(log.has("cancel run a"));
    assert_eq!(report.component("a").unwrap().state, ComponentState::Closed);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_11_close_is_bounded_by_its_own_budget() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(5000))
        .component("a", probe(&log, "a"))
        .component_with(
            "b",
            probe(&log, "b").run(Act::Hang).close(Act::Hang),
            ComponentOptions::new()
                .stop_timeout(ms(50))
                .close_timeout(ms(80)),
        )
        .build()
        .unwrap();
    let (out, took, _) = run_until_ready(lc);
    let err = expect_err(out);
    assert_eq!(find(&err, "b", Step::Stop).budget(), Some(ms(50)));
    let close = find(&err, "b", Step::Close);
    assert!(close.is_timeout());
    assert_eq!(close.budget(), Some(ms(80)));
    assert_eq!(close.phase(), Some(Phase::Draining));
    assert!(log.has("cancel close b"));
    assert_eq!(log.count("stop-end a"), 1, "shutdown went on");
    assert!(took >= ms(130) && took < ms(2000), "{took:?}");
}

#[test]
fn rule_12_drainers_run_in_order_append_at_end_prepend_at_front() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .drainer("d1", drain(&log, "d1", Act::sleep(ms(20))))
        .prepend_drainer("d0", drain(&log, "d0", Act::sleep(ms(20))))
        .drainer("d2", drain(&log, "d2", Act::Ok))
        .prepend_drainer("dm", drain(&log, "dm", Act::Ok))
        .build()
        .unwrap();
    expect_ok(run_until_ready(lc).0);

    assert_eq!(
        log.only(&["drain"]),
        ["drain dm", "drain d0", "drain d1", "drain d2"]
    );
    // after every component stopped, one at a time
    log.assert_before("stop-end a", "drain dm");
    log.assert_before("drain-end d0", "drain d1");
    log.assert_before("drain-end d1", "drain d2");
}

#[test]
fn rule_12_each_drainer_is_bounded_by_the_remaining_budget() {
    let log = Log::new();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let budget_probe = {
        let seen = seen.clone();
        lameduck::drainer_fn(move |cx: Context| async move {
            *seen.lock().unwrap() = cx.remaining();
            Ok::<_, BoxError>(())
        })
    };
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(300))
        .component("a", probe(&log, "a"))
        .drainer("remaining", budget_probe)
        .drainer("stuck", drain(&log, "stuck", Act::Hang))
        .drainer("after", drain(&log, "after", Act::Ok))
        .build()
        .unwrap();
    let handle = lc.handle();
    let (out, _, _) = run_until_ready(lc);
    let err = expect_err(out);

    let left = seen.lock().unwrap().expect("a drainer has a deadline");
    assert!(left <= ms(300), "{left:?}");
    let e = find(&err, "stuck", Step::Drain);
    assert!(e.is_timeout());
    assert_eq!(e.phase(), Some(Phase::Flushing));
    assert!(log.has("cancel drain stuck"));
    // the next drainer still runs (polled once, it finishes at once)
    assert_eq!(log.count("drain-end after"), 1);
    let report = handle.report();
    let shutdown_took = report.elapsed() - report.shutdown_at().unwrap();
    assert!(
        shutdown_took >= ms(300) && shutdown_took < ms(1500),
        "{shutdown_took:?}"
    );
}

#[test]
fn rule_13_stop_hooks_run_in_reverse_registration_order() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .drainer("d", drain(&log, "d", Act::Ok))
        .stop_hook("h1", hook(&log, "h1", Act::Ok))
        .stop_hook("h2", hook(&log, "h2", Act::sleep(ms(20))))
        .stop_hook("h3", hook(&log, "h3", Act::Ok))
        .build()
        .unwrap();
    expect_ok(run_until_ready(lc).0);

    assert_eq!(log.only(&["hook"]), ["hook h3", "hook h2", "hook h1"]);
    log.assert_before("drain-end d", "hook h3");
    log.assert_before("hook-end h2", "hook h1");
}

#[test]
fn rule_14_errors_in_every_step_are_recorded_and_shutdown_continues() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(5000))
        .component("a", probe(&log, "a").stop(Act::Fail))
        .component_with(
            "b",
            probe(&log, "b").stop(Act::Hang).close(Act::Fail),
            ComponentOptions::new().stop_timeout(ms(50)),
        )
        .component("c", probe(&log, "c").run(Act::After(ms(30), &Act::Fail)))
        .drainer("d1", drain(&log, "d1", Act::Fail))
        .drainer("d2", drain(&log, "d2", Act::Panic))
        .drainer("d3", drain(&log, "d3", Act::Ok))
        .stop_hook("h1", hook(&log, "h1", Act::Ok))
        .stop_hook("h2", hook(&log, "h2", Act::Fail))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);

    assert_eq!((err.component(), err.step()), (Some("c"), Some(Step::Run)));
    assert!(find(&err, "b", Step::Stop).is_timeout());
    assert!(find(&err, "b", Step::Close).is_failed());
    assert!(find(&err, "a", Step::Stop).is_failed());
    assert!(find(&err, "d1", Step::Drain).is_failed());
    assert!(find(&err, "d2", Step::Drain).is_panic());
    assert!(find(&err, "h2", Step::Hook).is_failed());
    assert_eq!(all_errors(&err).len(), 7, "{:#?}", all_errors(&err));
    // every step went on
    for event in ["drain-end d3", "hook-end h1", "stop a", "stop b", "stop c"] {
        assert_eq!(log.count(event), 1, "{event} in {:?}", log.events());
    }
    assert_eq!(log.only(&["close"]), ["close b"]);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_14_every_started_component_is_stopped_exactly_once() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        // its run ends first and triggers shutdown; it is still stopped once
        .component("b", probe(&log, "b").run(Act::sleep(ms(30))))
        .component_with(
            "c",
            probe(&log, "c").run(Act::Hang),
            ComponentOptions::new().stop_timeout(ms(30)),
        )
        .component("d", probe(&log, "d").stop(Act::Panic))
        .build()
        .unwrap();
    let handle = lc.handle();
    // more requests while shutting down change nothing
    let noise = std::thread::spawn(move || {
        block_on(handle.shutting_down());
        for _ in 0..3 {
            handle.request_shutdown(None);
            std::thread::sleep(ms(5));
        }
    });
    let err = expect_err(run(lc).0);
    noise.join().unwrap();
    assert!(find(&err, "d", Step::Stop).is_panic());
    for name in ["a", "b", "c", "d"] {
        assert_eq!(log.count(&format!("stop {name}")), 1, "{:?}", log.events());
        assert_eq!(log.count(&format!("run {name}")), 1);
    }
    assert_eq!(log.only(&["close"]), ["close c"]);
}

#[test]
fn rule_15_shutdown_is_bounded_when_every_component_hangs() {
    let log = Log::new();
    let stuck = |name| {
        probe(&log, name)
            .run(Act::Hang)
            .stop(Act::Hang)
            .close(Act::Hang)
    };
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(200))
        .component("a", stuck("a"))
        .component("b", stuck("b"))
        .component("c", stuck("c"))
        .drainer("d", drain(&log, "d", Act::Hang))
        .stop_hook("h", hook(&log, "h", Act::Hang))
        .build()
        .unwrap();
    let handle = lc.handle();
    let run_fut = lc.run();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(block_on(run_fut));
    });
    assert!(block_on(handle.ready()));
    let t0 = Instant::now();
    handle.request_shutdown(None);
    let out = rx.recv_timeout(ms(5000)).expect("run() did not return");
    let took = t0.elapsed();
    let err = expect_err(out);

    assert!(took >= ms(200) && took < ms(1500), "shutdown took {took:?}");
    for name in ["a", "b", "c"] {
        assert!(find(&err, name, Step::Stop).is_timeout());
        assert!(find(&err, name, Step::Close).is_timeout());
        assert_eq!(log.count(&format!("stop {name}")), 1);
        assert_eq!(log.count(&format!("close {name}")), 1);
        assert!(log.has(&format!("cancel run {name}")));
    }
    assert!(find(&err, "d", Step::Drain).is_timeout());
    assert!(find(&err, "h", Step::Hook).is_timeout());
}

#[test]
fn rule_15_lame_duck_counts_against_the_shutdown_timeout() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .lame_duck(ms(10_000))
        .shutdown_timeout(ms(200))
        .component("a", probe(&log, "a").stop(Act::Hang).close(Act::Hang))
        .build()
        .unwrap();
    let (out, took, _) = run_until_ready(lc);
    let err = expect_err(out);
    assert!(took >= ms(200) && took < ms(1500), "{took:?}");
    assert!(find(&err, "a", Step::Stop).is_timeout());
}

#[test]
fn rule_16_force_stop_during_lame_duck_returns_promptly_and_closes_components() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .lame_duck(ms(10_000))
        .shutdown_timeout(ms(30_000))
        // runs that ignore their stop signal: only dropping ends them
        .component("a", probe(&log, "a").run(Act::Hang))
        .component("b", probe(&log, "b").run(Act::Hang))
        .drainer("d", drain(&log, "d", Act::Ok))
        .stop_hook("h", hook(&log, "h", Act::Ok))
        .build()
        .unwrap();
    let handle = lc.handle();
    let forcer = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            block_on(handle.ready());
            handle.request_shutdown(None);
            std::thread::sleep(ms(100));
            let forced = handle.force_shutdown();
            (forced, handle.force_shutdown())
        })
    };
    let (out, took) = run(lc);
    assert_eq!(
        forcer.join().unwrap(),
        (true, false),
        "a second force is a no-op"
    );
    let err = expect_err(out);

    assert!(took < ms(2000), "{took:?}");
    assert!(err.is_forced());
    assert_eq!(err.kind(), ErrorKind::Forced);
    assert_eq!(err.step(), Some(Step::Shutdown));
    assert_eq!(err.phase(), Some(Phase::LameDuck));
    // graceful stop skipped: closed and dropped, in reverse order
    assert_eq!(log.only(&["stop", "close"]), ["close b", "close a"]);
    assert!(log.has("cancel run a") && log.has("cancel run b"));
    let report = handle.report();
    for name in ["a", "b"] {
        assert_eq!(
            report.component(name).unwrap().state,
            ComponentState::Closed
        );
    }
    assert!(!log.has("drain d"), "drainers are skipped when forced");
    assert_eq!(log.count("hook-end h"), 1, "hooks still run");
}

#[test]
fn rule_16_force_stop_during_a_graceful_stop_skips_to_close() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(30_000))
        .component("a", probe(&log, "a"))
        .component_with(
            "b",
            probe(&log, "b").stop(Act::Hang),
            ComponentOptions::new().stop_timeout(ms(10_000)),
        )
        .build()
        .unwrap();
    let handle = lc.handle();
    let forcer = force_on(&log, &handle, "stop b");
    let (out, took) = run(lc);
    assert!(forcer.join().unwrap());
    let err = expect_err(out);
    assert!(took < ms(2000), "{took:?}");
    assert!(all_errors(&err).iter().any(|e| e.is_forced()));
    assert!(log.has("cancel stop b"));
    assert_eq!(
        log.only(&["stop", "close"]),
        ["stop b", "close b", "close a"]
    );
}

#[test]
fn rule_16_force_stop_during_flush_interrupts_the_drainer_and_skips_the_rest() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(30_000))
        .component("a", probe(&log, "a"))
        .drainer("d1", drain(&log, "d1", Act::Hang))
        .drainer("d2", drain(&log, "d2", Act::Ok))
        .stop_hook("h", hook(&log, "h", Act::Ok))
        .build()
        .unwrap();
    let handle = lc.handle();
    let forcer = force_on(&log, &handle, "drain d1");
    let (out, took) = run(lc);
    assert!(forcer.join().unwrap());
    let err = expect_err(out);
    assert!(took < ms(2000), "{took:?}");
    assert_eq!(find(&err, "d1", Step::Drain).kind(), ErrorKind::Forced);
    assert!(log.has("cancel drain d1"));
    assert_eq!(log.count("hook-end h"), 1);
    assert_eq!(log.count("stop-end a"), 1, "stopped gracefully before");
}

#[test]
fn rule_17_registration_after_shutdown_began_is_refused_and_changes_nothing() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .lame_duck(ms(100))
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let registrar = {
        let (log, handle) = (log.clone(), handle.clone());
        std::thread::spawn(move || {
            block_on(handle.ready());
            handle.request_shutdown(None);
            let refused = [
                handle.add_component("late", probe(&log, "late")),
                handle.add_drainer("late-d", drain(&log, "late-d", Act::Ok)),
                handle.prepend_drainer("late-p", drain(&log, "late-p", Act::Ok)),
                handle.add_stop_hook("late-h", hook(&log, "late-h", Act::Ok)),
                handle.add_health_check("late-c", AlwaysHealthy),
            ];
            refused.map(|r| r.unwrap_err())
        })
    };
    let report = expect_ok(run(lc).0);
    for err in registrar.join().unwrap() {
        assert!(err.is_shutting_down(), "{err}");
        assert_eq!(err.kind(), ErrorKind::ShuttingDown);
        assert_eq!(err.step(), Some(Step::Register));
    }
    assert_eq!(report.components().len(), 1);
    // the refused parts were dropped, never called
    assert!(
        !log.events()
            .iter()
            .any(|e| e.contains("late") && !e.starts_with("drop ")),
        "{:?}",
        log.events()
    );
    // and after `run` returned
    let err = handle
        .add_component("later", probe(&log, "later"))
        .unwrap_err();
    assert!(err.is_shutting_down());
    assert_eq!(handle.report().components().len(), 1);
}

/// Widens the window between `force_shutdown` setting the force signal and
/// recording its error: logging from the thread named `slow-forcer` sleeps.
struct SlowForcerLogger;

impl log::Log for SlowForcerLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, _: &log::Record<'_>) {
        if std::thread::current().name() == Some("slow-forcer") {
            std::thread::sleep(ms(100));
        }
    }
    fn flush(&self) {}
}

/// Regression: `force_shutdown` set the force signal before recording its
/// `Forced` error, so a runner that finished in that window returned `Ok`
/// and the error was lost.
#[test]
fn regression_forced_error_lost_when_shutdown_finished_before_it_was_recorded() {
    static LOGGER: SlowForcerLogger = SlowForcerLogger;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let lc = Lifecycle::builder()
        .lame_duck(ms(60_000))
        .component("a", probe(&Log::new(), "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let forcer = std::thread::Builder::new()
        .name("slow-forcer".into())
        .spawn(move || {
            assert!(block_on(handle.ready()));
            assert!(handle.request_shutdown(None));
            std::thread::sleep(ms(20));
            handle.force_shutdown()
        })
        .unwrap();
    let (out, took) = run(lc);
    assert!(forcer.join().unwrap());
    assert!(took < ms(2000), "{took:?}");
    assert!(expect_err(out).is_forced());
}

/// What a `stop` was given: its context's deadline, name and whether its
/// stop signal was set, and when it was called.
type Seen = (Option<Instant>, String, bool, Instant);

/// Records what its `stop` is given.
struct StopSeen {
    seen: Arc<std::sync::Mutex<Option<Seen>>>,
}

impl Component for StopSeen {
    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        let seen = (
            cx.deadline(),
            cx.name().to_owned(),
            cx.stop_signal().is_set(),
            Instant::now(),
        );
        *self.seen.lock().unwrap() = Some(seen);
        Ok(())
    }
}

/// A stop's context has the stop's own deadline (its stop budget, or the
/// shutdown's deadline without one), the component's name and its stop
/// signal, set; not the launch's deadline.
#[test]
fn a_stops_context_has_its_own_deadline_name_and_signal() {
    let budgeted = Arc::new(std::sync::Mutex::new(None));
    let unbudgeted = Arc::new(std::sync::Mutex::new(None));
    let lc = Lifecycle::builder()
        .shutdown_timeout(ms(60_000))
        .component_with(
            "budgeted",
            StopSeen {
                seen: budgeted.clone(),
            },
            ComponentOptions::new()
                .start_timeout(ms(1_000))
                .stop_timeout(ms(3_000)),
        )
        .component_with(
            "unbudgeted",
            StopSeen {
                seen: unbudgeted.clone(),
            },
            ComponentOptions::new().start_timeout(ms(1_000)),
        )
        .build()
        .unwrap();
    let before = Instant::now();
    let (out, _, ready) = run_until_ready(lc);
    let after = Instant::now();
    assert!(ready);
    assert_eq!(out.unwrap().components().len(), 2);

    let (deadline, name, signalled, at) = budgeted.lock().unwrap().take().unwrap();
    assert_eq!(name, "budgeted");
    assert!(signalled);
    let deadline = deadline.expect("a stop budget gives a deadline");
    // Counted from the stop's beginning, just before `stop` was called:
    // neither the start's 1 s nor the shutdown's 60 s.
    assert!(
        deadline > at + ms(2_000) && deadline <= at + ms(3_000),
        "{:?} after the call",
        deadline - at
    );

    let (deadline, name, signalled, _) = unbudgeted.lock().unwrap().take().unwrap();
    assert_eq!(name, "unbudgeted");
    assert!(signalled);
    let deadline = deadline.expect("the shutdown's deadline bounds a stop without a budget");
    // The shutdown was requested between `before` and `after`.
    assert!(
        deadline >= before + ms(60_000) && deadline <= after + ms(60_000),
        "{:?} after the run began",
        deadline - before
    );
}
