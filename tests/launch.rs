//! DESIGN §3, launch: rules 1–5.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use futures::channel::oneshot;
use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, ComponentState, Context, ErrorKind, Lifecycle,
    Phase, Readiness, Step,
};

fn backoff(wait_ms: u64, attempts: u32) -> ComponentOptions {
    ComponentOptions::new().readiness(
        Readiness::new()
            .attempts(attempts)
            .backoff(Backoff::constant(ms(wait_ms))),
    )
}

#[test]
fn rule_01_components_start_in_registration_order() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b"))
        .component("c", probe(&log, "c"))
        .build()
        .unwrap();
    let (out, _, ready) = run_until_ready(lc);
    expect_ok(out);
    assert!(ready);
    assert_eq!(log.only(&["start"]), ["start a", "start b", "start c"]);
}

#[test]
fn rule_01_next_component_starts_only_after_previous_is_ready() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        // slow start, then two "not yet" answers
        .component_with(
            "a",
            probe(&log, "a").start(Act::sleep(ms(30))).not_ready_for(2),
            backoff(20, 5),
        )
        .component_with(
            "b",
            probe(&log, "b").ready(Act::sleep(ms(30))),
            backoff(1, 5),
        )
        .component("c", probe(&log, "c"))
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);

    assert_eq!(log.count("ready a"), 3);
    log.assert_before("ready-end a", "start b");
    log.assert_before("ready-end b", "start c");
    let (a, b, c) = (
        report.component("a").unwrap(),
        report.component("b").unwrap(),
        report.component("c").unwrap(),
    );
    assert!(b.start_at.unwrap() >= a.ready_at.unwrap());
    assert!(c.start_at.unwrap() >= b.ready_at.unwrap());
}

#[test]
fn rule_02_ready_false_retries_after_backoff_until_true() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with("a", probe(&log, "a").not_ready_for(3), backoff(30, 10))
        .build()
        .unwrap();
    let report = expect_ok(run_until_ready(lc).0);

    assert_eq!(log.count("ready a"), 4);
    let a = report.component("a").unwrap();
    assert_eq!(a.attempts, 4);
    // three backoffs of 30 ms between the first attempt and readiness
    let waited = a.ready_at.unwrap() - a.start_at.unwrap();
    assert!(waited >= ms(90), "ready after {waited:?}");
}

#[test]
fn rule_02_ready_err_fails_at_once() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with("a", probe(&log, "a").ready(Act::Fail), backoff(1, 5))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);

    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.component(), Some("a"));
    assert_eq!(err.step(), Some(Step::Ready));
    assert_eq!(chain(&err), "`a` failed in ready: ready a failed");
    assert_eq!(log.count("ready a"), 1, "an error is not retried");
    assert!(!log.has("start b"));
    // `a` started, so it is stopped; shutdown was quick
    assert_eq!(log.count("stop a"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_02_attempts_exhausted_names_component_and_attempt_count() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with("db", probe(&log, "db").not_ready_for(1000), backoff(1, 3))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let err = expect_err(run(lc).0);

    assert_eq!(err.kind(), ErrorKind::NotReady);
    assert!(err.is_not_ready());
    assert_eq!(err.component(), Some("db"));
    assert_eq!(err.step(), Some(Step::Ready));
    let text = err.to_string();
    assert!(
        text.contains("`db`") && text.contains("3 attempts"),
        "{text}"
    );
    assert_eq!(log.count("ready db"), 3);
    assert!(!log.has("start b"));
}

/// Implements `start` only: no readiness check.
struct StartOnly(Log);

impl Component for StartOnly {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        sleep(ms(20)).await;
        self.0.push("start-end s");
        Ok(())
    }
}

#[test]
fn rule_02_no_readiness_check_means_ready_when_start_returns() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("s", StartOnly(log.clone()))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, _, ready) = run_until_ready(lc);
    let report = expect_ok(out);
    assert!(ready);

    log.assert_before("start-end s", "start b");
    let s = report.component("s").unwrap();
    assert_eq!(s.state, ComponentState::Stopped);
    assert_eq!(s.attempts, 1);
    assert!(s.ready_at.unwrap() >= s.start_at.unwrap() + s.start_took.unwrap());
}

/// `ready` passes only once `run` has been polled and has signalled it, so
/// the launch can only go on if `run` is polled during the readiness wait.
struct NeedsRun {
    log: Log,
    tx: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    rx: futures::lock::Mutex<Option<oneshot::Receiver<()>>>,
    polled_after_ready_began: Arc<AtomicBool>,
}

impl Component for NeedsRun {
    async fn ready(&self, _cx: &Context) -> Result<bool, BoxError> {
        self.log.push("ready n");
        let rx = self.rx.lock().await.take();
        if let Some(rx) = rx {
            rx.await?;
        }
        self.log.push("ready-end n");
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        self.log.push("run n");
        // Wait until the readiness wait is in progress, then release it.
        while !self.log.has("ready n") {
            sleep(ms(5)).await;
        }
        self.polled_after_ready_began.store(true, Ordering::SeqCst);
        self.log.push("run-release n");
        if let Some(tx) = self.tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        cx.stop_signal().await;
        Ok(())
    }
}

#[test]
fn rule_03_run_is_polled_before_and_during_readiness_wait() {
    let log = Log::new();
    let (tx, rx) = oneshot::channel();
    let during = Arc::new(AtomicBool::new(false));
    let opts =
        ComponentOptions::new().readiness(Readiness::new().attempts(1).attempt_timeout(ms(3000)));
    let lc = Lifecycle::builder()
        .component("z", probe(&log, "z"))
        .component_with(
            "n",
            NeedsRun {
                log: log.clone(),
                tx: std::sync::Mutex::new(Some(tx)),
                rx: futures::lock::Mutex::new(Some(rx)),
                polled_after_ready_began: during.clone(),
            },
            opts,
        )
        .build()
        .unwrap();
    let (out, _, ready) = run_until_ready(lc);
    expect_ok(out);
    assert!(ready);

    assert!(during.load(Ordering::SeqCst));
    // polled before the readiness wait began, and during it
    log.assert_before("run n", "ready n");
    log.assert_before("ready n", "run-release n");
    log.assert_before("run-release n", "ready-end n");
}

#[test]
fn rule_03_run_is_polled_only_after_start_succeeded() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a").start(Act::sleep(ms(30))))
        .build()
        .unwrap();
    expect_ok(run_until_ready(lc).0);
    log.assert_before("start-end a", "run a");
    log.assert_before("run a", "ready a");
}

#[test]
fn rule_03_run_ending_before_ready_is_exited_error_and_starts_shutdown() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("z", probe(&log, "z"))
        .component_with(
            "a",
            probe(&log, "a").run(Act::sleep(ms(20))).ready(Act::Hang),
            ComponentOptions::new().readiness(Readiness::new().no_attempt_timeout()),
        )
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);

    assert_eq!(err.kind(), ErrorKind::Exited);
    assert_eq!(err.component(), Some("a"));
    assert_eq!(err.step(), Some(Step::Run));
    assert_eq!(err.phase(), Some(Phase::Launching));
    assert!(err.others().is_empty(), "{:#?}", err.others());
    // the readiness wait was cancelled, the launch stopped, shutdown ran
    assert!(log.has("cancel ready a"), "{:?}", log.events());
    assert!(!log.has("start b"));
    assert_eq!(log.count("stop z"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_03_run_failing_before_ready_is_an_error_and_starts_shutdown() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with(
            "a",
            probe(&log, "a").run(Act::Fail).not_ready_for(1000),
            backoff(10, 1000),
        )
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.component(), Some("a"));
    assert_eq!(err.step(), Some(Step::Run));
    assert!(!log.has("start b"));
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_04_shutdown_during_readiness_wait_cancels_it_and_later_components_never_start() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("z", probe(&log, "z"))
        .component_with(
            "a",
            probe(&log, "a").ready(Act::Hang),
            ComponentOptions::new().readiness(Readiness::new().no_attempt_timeout()),
        )
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let waiter = stop_on(&log, &handle, "ready a");
    let ready = {
        let handle = handle.clone();
        std::thread::spawn(move || futures::executor::block_on(handle.ready()))
    };
    let (out, took) = run(lc);
    let report = expect_ok(out);
    assert!(waiter.join().unwrap());

    assert!(!ready.join().unwrap(), "Handle::ready resolves false");
    assert!(log.has("cancel ready a"), "{:?}", log.events());
    assert!(!log.has("start b"));
    assert_eq!(
        report.component("b").unwrap().state,
        ComponentState::Pending
    );
    // `a` started, so it is stopped, once
    assert_eq!(log.count("stop a"), 1);
    assert_eq!(log.count("stop z"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_04_shutdown_during_backoff_cancels_readiness_wait() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with(
            "a",
            probe(&log, "a").not_ready_for(1000),
            backoff(10_000, 1000),
        )
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let waiter = stop_on(&log, &handle, "ready-end a");
    let (out, took) = run(lc);
    expect_ok(out);
    waiter.join().unwrap();
    assert_eq!(log.count("ready a"), 1);
    assert!(!log.has("start b"));
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_04_shutdown_during_start_cancels_it_and_component_is_never_stopped() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("z", probe(&log, "z"))
        .component("a", probe(&log, "a").start(Act::Hang))
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let waiter = stop_on(&log, &handle, "start a");
    let (out, took) = run(lc);
    let report = expect_ok(out);
    waiter.join().unwrap();

    assert!(log.has("cancel start a"), "{:?}", log.events());
    assert!(!log.has("run a") && !log.has("stop a") && !log.has("close a"));
    assert!(!log.has("start b"));
    assert_eq!(log.count("stop z"), 1);
    assert_eq!(
        report.component("a").unwrap().state,
        ComponentState::Pending
    );
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_04_stop_requested_before_run_starts_nothing() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    assert!(lc.handle().request_shutdown(None));
    let report = expect_ok(run(lc).0);
    assert!(!log.has("start a"));
    assert_eq!(
        report.component("a").unwrap().state,
        ComponentState::Pending
    );
}

#[test]
fn rule_05_start_timeout_is_an_error_naming_budget_and_starts_shutdown() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("z", probe(&log, "z"))
        .component_with(
            "a",
            probe(&log, "a").start(Act::Hang),
            ComponentOptions::new().start_timeout(ms(100)),
        )
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);

    assert!(err.is_timeout());
    assert_eq!(err.component(), Some("a"));
    assert_eq!(err.step(), Some(Step::Start));
    assert_eq!(err.budget(), Some(ms(100)));
    assert!(
        err.to_string().contains("timed out in start after 100ms"),
        "{err}"
    );
    assert!(log.has("cancel start a"));
    assert!(!log.has("stop a") && !log.has("close a"), "never started");
    assert!(!log.has("start b"));
    assert_eq!(log.count("stop z"), 1);
    assert!(took >= ms(100) && took < ms(2000), "{took:?}");
}

#[test]
fn rule_05_readiness_attempt_timeout_is_an_error_and_starts_shutdown() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component_with(
            "a",
            probe(&log, "a").ready(Act::Hang),
            ComponentOptions::new()
                .readiness(Readiness::new().attempts(5).attempt_timeout(ms(100))),
        )
        .component("b", probe(&log, "b"))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);

    assert!(err.is_timeout());
    assert_eq!(err.component(), Some("a"));
    assert_eq!(err.step(), Some(Step::Ready));
    assert_eq!(err.budget(), Some(ms(100)));
    assert_eq!(
        log.count("ready a"),
        1,
        "a timed-out attempt is not retried"
    );
    assert!(log.has("cancel ready a"));
    assert!(!log.has("start b"));
    assert_eq!(log.count("stop a"), 1);
    assert!(took >= ms(100) && took < ms(2000), "{took:?}");
}
