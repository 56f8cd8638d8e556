//! DESIGN §3, result: rules 18–19, and the report's table.

mod common;

use common::*;
use lameduck::{ComponentOptions, ComponentState, ErrorKind, Lifecycle, Phase, Step};

#[test]
fn rule_18_first_error_is_primary_with_others_attached_naming_component_and_phase() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a").stop(Act::Fail))
        .component("b", probe(&log, "b").run(Act::After(ms(30), &Act::Fail)))
        .drainer("d", drain(&log, "d", Act::Fail))
        .stop_hook("h", hook(&log, "h", Act::Fail))
        .build()
        .unwrap();
    let err = expect_err(run(lc).0);

    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.component(), Some("b"));
    assert_eq!(err.step(), Some(Step::Run));
    assert_eq!(err.phase(), Some(Phase::Running));
    let others: Vec<_> = err
        .others()
        .iter()
        .map(|e| (e.component(), e.step(), e.phase()))
        .collect();
    assert_eq!(
        others,
        [
            (Some("a"), Some(Step::Stop), Some(Phase::Draining)),
            (Some("d"), Some(Step::Drain), Some(Phase::Flushing)),
            (Some("h"), Some(Step::Hook), Some(Phase::Stopping)),
        ]
    );
    for e in err.others() {
        assert!(e.is_failed());
        assert!(e.others().is_empty(), "only the primary carries others");
    }
    let text = err.to_string();
    assert_eq!(text, "`b` failed in run (and 3 more)");
    assert_eq!(err.others()[0].to_string(), "`a` failed in stop");
    // the user's error is the source
    let source = std::error::Error::source(&err).expect("source");
    assert_eq!(source.to_string(), "run b failed");
    assert_eq!(
        format!("{err:#}"),
        "`b` failed in run: run b failed\n\
         `a` failed in stop: stop a failed\n\
         `d` failed in drain: drain d failed\n\
         `h` failed in stop hook: hook h failed"
    );
}

/// What `anyhow`'s `{:#}` prints: the error, then each source, joined by `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[test]
fn rule_18_an_error_chain_names_the_users_error_once() {
    struct Full;
    impl lameduck::Component for Full {
        async fn start(&self, _cx: &lameduck::Context) -> Result<(), lameduck::BoxError> {
            Err(std::io::Error::other("disk full").into())
        }
    }
    let lc = Lifecycle::builder().component("db", Full).build().unwrap();
    let err = expect_err(run(lc).0);
    assert_eq!(chain(&err), "`db` failed in start: disk full");
    assert_eq!(format!("{err:#}"), "`db` failed in start: disk full");
    assert_eq!(chain(&err).matches("disk full").count(), 1);
}

#[test]
fn rule_18_every_error_and_the_report_are_reachable_from_the_error() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a").stop(Act::Fail))
        .component("b", probe(&log, "b").run(Act::After(ms(30), &Act::Fail)))
        .build()
        .unwrap();
    let err = expect_err(run(lc).0);
    let names: Vec<_> = err.iter().map(|e| e.component()).collect();
    assert_eq!(names, [Some("b"), Some("a")]);
    assert_eq!(err.iter().len(), 2);
    assert_eq!((&err).into_iter().count(), 2);
    let report = err.report().expect("a failed run's report");
    assert_eq!(report.phase(), Phase::Stopped);
    assert_eq!(report.components().len(), 2);
    assert_eq!(
        report.component("a").map(|c| c.state),
        Some(ComponentState::Stopped)
    );
    // only the primary error carries the report
    assert!(err.others()[0].report().is_none());
}

#[test]
fn rule_18_success_when_nothing_failed() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .drainer("d", drain(&log, "d", Act::Ok))
        .stop_hook("h", hook(&log, "h", Act::Ok))
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);
    assert_eq!(report.phase(), Phase::Stopped);
}

#[test]
fn rule_18_panics_keep_their_message() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a").stop(Act::Panic))
        .component("b", probe(&log, "b").run(Act::After(ms(30), &Act::Panic)))
        .component_with(
            "c",
            probe(&log, "c").run(Act::Hang).close(Act::Panic),
            ComponentOptions::new().stop_timeout(ms(0)),
        )
        .drainer("d", drain(&log, "d", Act::Panic))
        .stop_hook("h", hook(&log, "h", Act::Panic))
        .build()
        .unwrap();
    let err = expect_err(run(lc).0);

    assert!(err.is_panic());
    assert_eq!(err.panic_message(), Some("run b panicked"));
    assert!(
        err.to_string()
            .contains("`b` panicked in run: run b panicked"),
        "{err}"
    );
    for (name, step, message) in [
        ("a", Step::Stop, "stop a panicked"),
        ("c", Step::Close, "close c panicked"),
        ("d", Step::Drain, "drain d panicked"),
        ("h", Step::Hook, "hook h panicked"),
    ] {
        let e = find(&err, name, step);
        assert_eq!(e.kind(), ErrorKind::Panicked);
        assert_eq!(e.panic_message(), Some(message));
        assert!(e.to_string().contains(message), "{e}");
    }
}

#[test]
fn rule_18_panics_in_start_and_ready_keep_their_message() {
    for (act_start, act_ready, step, message) in [
        (Act::Panic, Act::Ok, Step::Start, "start a panicked"),
        (Act::Ok, Act::Panic, Step::Ready, "ready a panicked"),
    ] {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .component("a", probe(&log, "a").start(act_start).ready(act_ready))
            .build()
            .unwrap();
        let err = expect_err(run(lc).0);
        assert_eq!(err.step(), Some(step));
        assert_eq!(err.component(), Some("a"));
        assert_eq!(err.phase(), Some(Phase::Launching));
        assert_eq!(err.panic_message(), Some(message));
    }
}

#[test]
fn rule_18_a_panic_before_a_call_returns_its_future_is_that_steps_error() {
    use lameduck::{BoxError, Component, Context};
    use std::future::Future;

    /// Each method panics when called, before it returns a future.
    struct Eager(Step);
    impl Component for Eager {
        #[allow(clippy::manual_async_fn)]
        fn start(&self, _cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
            assert!(self.0 != Step::Start, "start panicked when called");
            async { Ok(()) }
        }
        #[allow(clippy::manual_async_fn)]
        fn stop(&self, _cx: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
            assert!(self.0 != Step::Stop, "stop panicked when called");
            async { Ok(()) }
        }
    }
    for step in [Step::Start, Step::Stop] {
        let lc = Lifecycle::builder()
            .component("eager", Eager(step))
            .build()
            .unwrap();
        let h = lc.handle();
        // Stops once launched; a failed launch stops it anyway.
        std::thread::spawn(move || {
            futures::executor::block_on(h.ready());
            h.request_shutdown(None);
        });
        let err = expect_err(lc.run_blocking());
        assert!(err.is_panic(), "{err}");
        assert_eq!(err.step(), Some(step));
        assert_eq!(err.component(), Some("eager"));
    }
}

#[test]
fn rule_18_non_string_panic_payload_is_reported() {
    struct Odd;
    impl lameduck::Component for Odd {
        async fn start(&self, _cx: &lameduck::Context) -> Result<(), lameduck::BoxError> {
            std::panic::panic_any(42_u32)
        }
    }
    let lc = Lifecycle::builder().component("odd", Odd).build().unwrap();
    let err = expect_err(run(lc).0);
    assert!(err.is_panic());
    assert!(err.panic_message().is_some());
}

#[test]
fn rule_19_report_records_start_ready_stop_close_times_and_durations() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with(
            "a",
            probe(&log, "a")
                .start(Act::sleep(ms(20)))
                .not_ready_for(1)
                .stop(Act::sleep(ms(20))),
            ComponentOptions::new()
                .readiness(lameduck::Readiness::new().backoff(lameduck::Backoff::constant(ms(5)))),
        )
        .component_with(
            "b",
            probe(&log, "b").stop(Act::Hang).close(Act::sleep(ms(10))),
            ComponentOptions::new().stop_timeout(ms(50)),
        )
        .build()
        .unwrap();
    let handle = lc.handle();
    let err = expect_err(run_until_ready(lc).0);
    assert!(find(&err, "b", Step::Stop).is_timeout());

    // `run` returned an error, so the final report is read from the handle
    let report = handle.report();
    let a = report.component("a").unwrap();
    assert_eq!(a.state, ComponentState::Stopped);
    assert!(a.start_took.unwrap() >= ms(20));
    assert_eq!(a.attempts, 2);
    assert!(a.ready_at.unwrap() >= a.start_at.unwrap() + a.start_took.unwrap());
    assert!(a.stop_at.unwrap() >= a.ready_at.unwrap());
    assert!(a.stop_took.unwrap() >= ms(20));
    assert!(a.run_ended_at.is_some());
    assert_eq!((a.close_at, a.close_took), (None, None));

    let b = report.component("b").unwrap();
    assert_eq!(b.state, ComponentState::Closed);
    assert!(b.start_at.unwrap() >= a.ready_at.unwrap());
    // b stops first (reverse order), then is closed after its 50 ms budget
    assert!(b.stop_at.unwrap() <= a.stop_at.unwrap());
    assert!(b.close_at.unwrap() >= b.stop_at.unwrap() + ms(50));
    assert!(b.close_took.unwrap() >= ms(10));
    assert_eq!(b.stop_took, None, "not stopped gracefully");

    let shutdown_at = report.shutdown_at().unwrap();
    assert!(shutdown_at >= b.ready_at.unwrap());
    assert!(report.elapsed() >= a.stop_at.unwrap() + a.stop_took.unwrap());
    assert_eq!(report.phase(), Phase::Stopped);
}

#[test]
fn rule_19_report_display_table_has_a_row_per_component() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("database", probe(&log, "database"))
        .component_with(
            "a-rather-long-component-name",
            probe(&log, "long").ready(Act::Hang).stop(Act::Hang),
            ComponentOptions::new()
                .stop_timeout(ms(20))
                .readiness(lameduck::Readiness::new().no_attempt_timeout()),
        )
        .component("never", probe(&log, "never"))
        .build()
        .unwrap();
    let handle = lc.handle();
    // `never` is not reached: stop during the second one's readiness wait
    let stopper = stop_on(&log, &handle, "ready long");
    let _ = run(lc);
    stopper.join().unwrap();
    let report = handle.report();
    let table = report.to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("lifecycle stopped after"), "{table}");
    assert!(lines[0].contains("shutdown requested at"), "{table}");
    for column in [
        "component",
        "state",
        "start ms",
        "ready ms",
        "stop ms",
        "close ms",
    ] {
        assert!(lines[1].contains(column), "{table}");
    }
    assert_eq!(lines.len(), 2 + 3, "{table}");
    let row = |name: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
    };
    assert!(row("database ").contains("stopped"), "{table}");
    let long = row("a-rather-long-component-name ");
    assert!(long.contains("closed"), "{table}");
    let never = row("never ");
    assert!(never.contains("pending"), "{table}");
    assert!(
        never.contains(" - "),
        "times absent for a component never started:\n{table}"
    );
    // columns line up: every row as wide as the header
    let width = lines[1].len();
    assert!(lines[2..].iter().all(|l| l.len() == width), "{table}");
}

#[test]
fn rule_19_handle_report_is_a_snapshot_while_running() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let snap = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            futures::executor::block_on(handle.ready());
            let report = handle.report();
            handle.request_shutdown(None);
            report
        })
    };
    let last = expect_ok(run(lc).0);
    let report = snap.join().unwrap();
    assert_eq!(report.phase(), Phase::Running);
    assert_eq!(report.shutdown_at(), None);
    for c in report.components() {
        assert_eq!(c.state, ComponentState::Ready);
        assert!(c.ready_at.is_some() && c.stop_at.is_none());
    }
    assert_eq!(last.phase(), Phase::Stopped);
    assert_eq!(handle.report().components(), last.components());
}

/// Regression: a component whose readiness failed, or whose `run` ended
/// before it was ready, was reported as `stopped` (or `closed`) once the
/// drain had stopped it: the report lost that it failed, against
/// `ComponentState::Failed` ("start or readiness failed, or run ended
/// before ready").
#[test]
fn regression_report_lost_the_failed_state_of_a_component_stopped_afterwards() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("ok", probe(&log, "ok"))
        .component_with(
            "unready",
            probe(&log, "unready").ready(Act::Fail),
            ComponentOptions::new(),
        )
        .build()
        .unwrap();
    let h = lc.handle();
    expect_err(run(lc).0);
    let report = h.report();
    let unready = report.component("unready").unwrap();
    assert_eq!(unready.state, ComponentState::Failed, "\n{report}");
    assert!(unready.stop_at.is_some() && unready.stop_took.is_some());
    assert_eq!(
        report.component("ok").unwrap().state,
        ComponentState::Stopped
    );

    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with(
            "exited",
            probe(&log, "exited").run(Act::Ok).ready(Act::Hang),
            ComponentOptions::new().readiness(lameduck::Readiness::new().no_attempt_timeout()),
        )
        .build()
        .unwrap();
    let h = lc.handle();
    assert_eq!(expect_err(run(lc).0).kind(), ErrorKind::Exited);
    let report = h.report();
    assert_eq!(
        report.component("exited").unwrap().state,
        ComponentState::Failed,
        "\n{report}"
    );
}
