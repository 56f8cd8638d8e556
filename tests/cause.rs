//! Why a shutdown began: every cause is recorded where the shutdown begins,
//! logged as what it was, and readable from the handle and the report.
//! (Signals: tests/signals.rs; upgrades: tests/upgrade.rs.)

mod common;

use std::sync::Mutex;
use std::thread::ThreadId;

use common::*;
use lameduck::{Lifecycle, ProbeRequest, RunEnd, ShutdownCause, Step};

/// Every `lameduck` info line, with the thread that logged it: tests run in
/// parallel, and each reads only its own thread's lines.
struct Capture(Mutex<Vec<(ThreadId, String)>>);

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "lameduck"
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = (std::thread::current().id(), r.args().to_string());
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Takes the "shutdown requested" lines this thread logged since the last
/// call (the first call installs the logger).
fn take_lines() -> Vec<String> {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Info);
    let me = std::thread::current().id();
    let mut lines = CAPTURE.0.lock().unwrap_or_else(|e| e.into_inner());
    let (mine, others) = std::mem::take(&mut *lines)
        .into_iter()
        .partition::<Vec<_>, _>(|(t, _)| *t == me);
    *lines = others;
    mine.into_iter()
        .map(|(_, l)| l)
        .filter(|l| l.starts_with("shutdown requested"))
        .collect()
}

/// Runs `lc` on this thread (so its log lines are this thread's) and
/// returns the cause seen by a handle, the report's, and the lines logged
/// since the last [`take_lines`].
fn causes(lc: Lifecycle) -> (Option<ShutdownCause>, Option<ShutdownCause>, Vec<String>) {
    let handle = lc.handle();
    let out = futures::executor::block_on(lc.run());
    let from_report = out.ok().and_then(|r| r.shutdown_cause().cloned());
    (handle.shutdown_cause(), from_report, take_lines())
}

fn run_ending(end: Act) -> Lifecycle {
    let log = Log::new();
    Lifecycle::builder()
        .component("db", probe(&log, "db").run(Act::UntilStop))
        .component("api", probe(&log, "api").run(Act::After(ms(20), leak(end))))
        .build()
        .unwrap()
}

fn leak(act: Act) -> &'static Act {
    Box::leak(Box::new(act))
}

#[test]
fn run_returning_ok_is_the_cause_and_the_report_says_so() {
    take_lines();
    let (handle, report, lines) = causes(run_ending(Act::Ok));
    let want = ShutdownCause::RunEnded {
        component: "api".into(),
        end: RunEnd::Returned,
    };
    assert_eq!(handle.as_ref(), Some(&want));
    assert_eq!(report.as_ref(), Some(&want));
    assert_eq!(lines, ["shutdown requested: `api` finished running"]);
}

#[test]
fn run_failing_and_panicking_say_how_the_run_ended() {
    for (act, end, text) in [
        (Act::Fail, RunEnd::Failed, "`api` failed in run"),
        (Act::Panic, RunEnd::Panicked, "`api` panicked in run"),
    ] {
        take_lines();
        let (handle, report, lines) = causes(run_ending(act));
        let want = ShutdownCause::RunEnded {
            component: "api".into(),
            end,
        };
        assert_eq!(handle, Some(want), "{act:?}");
        assert_eq!(report, None, "{act:?}: the run fails");
        assert_eq!(lines, [format!("shutdown requested: {text}")]);
    }
}

#[test]
fn launch_failures_name_the_component_and_step() {
    let log = Log::new();
    let cases = [
        (probe(&log, "x").start(Act::Fail), Step::Start),
        (probe(&log, "x").ready(Act::Fail), Step::Ready),
        // `run` ends before the component is ready: it never launched.
        (
            probe(&log, "x").run(Act::Ok).ready(Act::sleep(ms(200))),
            Step::Run,
        ),
    ];
    for (component, step) in cases {
        take_lines();
        let lc = Lifecycle::builder()
            .component("x", component)
            .build()
            .unwrap();
        let (handle, _, lines) = causes(lc);
        let want = ShutdownCause::LaunchFailed {
            component: "x".into(),
            step,
        };
        assert_eq!(handle, Some(want), "{step}");
        assert_eq!(
            lines,
            [format!(
                "shutdown requested: `x` failed to launch in {step}"
            )]
        );
    }
}

#[test]
fn handle_requests_say_whether_they_carried_an_error() {
    for with_error in [false, true] {
        take_lines();
        let lc = Lifecycle::builder().build().unwrap();
        let handle = lc.handle();
        handle.request_shutdown(with_error.then(|| "bad config".into()));
        let (cause, report, lines) = causes(lc);
        let want = ShutdownCause::Requested { with_error };
        assert_eq!(cause, Some(want.clone()));
        if !with_error {
            assert_eq!(report, Some(want));
        }
        let text = if with_error {
            "shutdown requested through a handle, with an error"
        } else {
            "shutdown requested through a handle"
        };
        assert_eq!(lines, [format!("shutdown requested: {text}")]);
    }
}

#[test]
fn the_first_cause_stays() {
    take_lines();
    let lc = Lifecycle::builder().build().unwrap();
    let handle = lc.handle();
    assert_eq!(handle.shutdown_cause(), None);
    handle.force_shutdown();
    handle.request_shutdown(Some("later".into()));
    let (cause, _, lines) = causes(lc);
    assert_eq!(cause, Some(ShutdownCause::Forced));
    assert_eq!(lines, ["shutdown requested: forced shutdown"]);
}

#[test]
fn the_report_table_names_the_cause() {
    let lc = Lifecycle::builder().build().unwrap();
    assert_eq!(lc.handle().report().shutdown_cause(), None);
    lc.handle().request_shutdown(None);
    let report = lc.run_blocking().unwrap();
    let table = report.to_string();
    let first = table.lines().next().unwrap();
    assert!(
        first.ends_with("(shutdown requested through a handle)"),
        "{table}"
    );
}

#[test]
fn the_lifecycle_snapshot_names_the_cause() {
    let lc = Lifecycle::builder().build().unwrap();
    let handle = lc.handle();
    let probes = handle.probes().debug_lifecycle(true);
    let snapshot = || {
        let r = futures::executor::block_on(
            probes.respond(ProbeRequest::new("GET", "/debug/lifecycle")),
        );
        serde_json::from_str::<serde_json::Value>(r.body()).unwrap()
    };
    assert!(snapshot()["shutdown_cause"].is_null());
    handle.request_shutdown(None);
    assert_eq!(
        snapshot()["shutdown_cause"],
        "shutdown requested through a handle"
    );
    lc.run_blocking().unwrap();
}
