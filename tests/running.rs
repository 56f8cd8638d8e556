//! DESIGN §3, running: rules 6–8.

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::*;
use futures::executor::block_on;
use lameduck::{BoxError, Component, Context, ErrorKind, Lifecycle, Phase, Step};

/// Records, from inside its readiness check, what the handle says.
struct SeesLaunch(Arc<Mutex<Vec<(bool, Phase)>>>);

impl Component for SeesLaunch {
    async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
        let h = cx.handle();
        self.0.lock().unwrap().push((h.is_ready(), h.phase()));
        Ok(true)
    }
}

#[test]
fn rule_06_handle_ready_resolves_once_every_component_is_ready() {
    let log = Log::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a").ready(Act::sleep(ms(30))))
        .component("b", probe(&log, "b").ready(Act::sleep(ms(30))))
        .component("last", SeesLaunch(seen.clone()))
        .build()
        .unwrap();
    let handle = lc.handle();
    assert!(!handle.is_ready());
    let observer = {
        let (log, handle) = (log.clone(), handle.clone());
        std::thread::spawn(move || {
            let ready = block_on(handle.ready());
            // every component was ready by then, and the launch check passes
            let all_ready = log.has("ready-end a") && log.has("ready-end b");
            let state = (ready, all_ready, handle.is_ready(), handle.phase());
            handle.request_shutdown(None);
            state
        })
    };
    expect_ok(run(lc).0);
    let (ready, all_ready, is_ready, phase) = observer.join().unwrap();
    assert!(ready && all_ready && is_ready);
    assert_eq!(phase, Phase::Running);
    // during the last readiness check the launch check was still failing
    assert_eq!(*seen.lock().unwrap(), [(false, Phase::Launching)]);
    // once shutdown begins the launch is over but readiness fails
    assert!(!handle.is_ready());
}

#[test]
fn rule_06_handle_ready_resolves_false_when_shutdown_comes_first() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a").start(Act::Fail))
        .build()
        .unwrap();
    let handle = lc.handle();
    let waiter = std::thread::spawn(move || block_on(handle.ready()));
    expect_err(run(lc).0);
    assert!(!waiter.join().unwrap());
}

#[test]
fn rule_07_run_returning_ok_starts_shutdown_without_error() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b").run(Act::sleep(ms(50))))
        .build()
        .unwrap();
    let handle = lc.handle();
    let (out, took) = run(lc);
    let report = expect_ok(out);
    assert!(handle.is_shutting_down());
    assert!(report.shutdown_at().is_some());
    log.assert_before("run-end b", "stop a");
    assert_eq!(log.count("stop a"), 1);
    assert_eq!(log.count("stop b"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_07_run_returning_err_starts_shutdown_with_an_error() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b").run(Act::After(ms(50), &Act::Fail)))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.component(), Some("b"));
    assert_eq!(err.step(), Some(Step::Run));
    assert_eq!(err.phase(), Some(Phase::Running));
    assert!(chain(&err).contains("run b failed"), "{err:#}");
    assert!(err.others().is_empty(), "{:#?}", err.others());
    assert_eq!(log.count("stop a"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_07_run_panic_starts_shutdown_and_keeps_its_message() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("b", probe(&log, "b").run(Act::After(ms(50), &Act::Panic)))
        .build()
        .unwrap();
    let (out, took) = run(lc);
    let err = expect_err(out);
    assert!(err.is_panic());
    assert_eq!(err.component(), Some("b"));
    assert_eq!(err.step(), Some(Step::Run));
    assert_eq!(err.panic_message(), Some("run b panicked"));
    assert_eq!(log.count("stop a"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_08_request_stop_from_another_thread_starts_shutdown() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let requester = std::thread::spawn(move || {
        block_on(handle.ready());
        let first = handle.request_shutdown(None);
        let again = handle.request_shutdown(None);
        (first, again)
    });
    let (out, took) = run(lc);
    expect_ok(out);
    assert_eq!(requester.join().unwrap(), (true, false));
    assert_eq!(log.count("stop a"), 1);
    assert!(took < ms(2000), "{took:?}");
}

#[test]
fn rule_08_first_requested_error_wins_and_later_errors_are_attached() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        // a slow stop keeps the lifecycle up while the later requests land
        .component("a", probe(&log, "a").stop(Act::sleep(ms(500))))
        .build()
        .unwrap();
    let handle = lc.handle();
    let requester = std::thread::spawn(move || {
        block_on(handle.ready());
        [
            handle.request_shutdown(Some("first".into())),
            handle.request_shutdown(Some("second".into())),
            handle.request_shutdown(None),
        ]
    });
    let err = expect_err(run(lc).0);
    assert_eq!(requester.join().unwrap(), [true, false, false]);
    assert!(err.is_requested());
    assert_eq!(err.step(), Some(Step::Request));
    assert_eq!(err.phase(), Some(Phase::Running));
    assert_eq!(
        chain(&err),
        "shutdown requested with an error (and 1 more): first"
    );
    // the later error is attached, the later request without one adds nothing
    let others: Vec<String> = err.others().iter().map(chain).collect();
    assert_eq!(others, ["shutdown requested with an error: second"]);
    assert!(err.others()[0].is_requested());
}

#[test]
fn rule_08_request_after_a_component_error_is_attached() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        // a slow stop keeps the lifecycle up while the late request lands
        .component("a", probe(&log, "a").stop(Act::sleep(ms(500))))
        .component("b", probe(&log, "b").run(Act::After(ms(30), &Act::Fail)))
        .build()
        .unwrap();
    let handle = lc.handle();
    let late = std::thread::spawn(move || {
        block_on(handle.shutting_down());
        handle.request_shutdown(Some("late".into()))
    });
    let err = expect_err(run(lc).0);
    assert!(!late.join().unwrap());
    assert_eq!(err.component(), Some("b"));
    let requested: Vec<String> = err
        .others()
        .iter()
        .filter(|e| e.is_requested())
        .map(chain)
        .collect();
    assert_eq!(requested, ["shutdown requested with an error: late"]);
}

/// Asks for a stop with an error from inside its own `run`.
struct GivesUp;

impl Component for GivesUp {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        sleep(ms(20)).await;
        assert!(cx.request_shutdown(Some("disk full".into())));
        assert!(!cx.request_shutdown(None));
        cx.stop_signal().await;
        Ok(())
    }
}

#[test]
fn rule_08_request_stop_from_inside_a_component() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("a", probe(&log, "a"))
        .component("g", GivesUp)
        .build()
        .unwrap();
    let err = expect_err(run(lc).0);
    assert!(err.is_requested());
    assert_eq!(chain(&err), "shutdown requested with an error: disk full");
    assert!(err.others().is_empty(), "{:#?}", err.others());
    assert_eq!(log.count("stop a"), 1);
}

#[test]
fn rule_08_concurrent_requests_exactly_one_wins() {
    const N: usize = 8;
    let log = Log::new();
    let lc = Lifecycle::builder()
        // a slow stop keeps the lifecycle up while every request lands
        .component("a", probe(&log, "a").stop(Act::sleep(ms(500))))
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(N));
    let threads: Vec<_> = (0..N)
        .map(|i| {
            let (handle, barrier) = (lc.handle(), barrier.clone());
            std::thread::spawn(move || {
                block_on(handle.ready());
                barrier.wait();
                handle.request_shutdown(Some(format!("request {i}").into()))
            })
        })
        .collect();
    let err = expect_err(run(lc).0);
    let wins: Vec<usize> = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .enumerate()
        .filter_map(|(i, won)| won.then_some(i))
        .collect();
    assert_eq!(wins.len(), 1, "{wins:?}");
    assert!(err.is_requested());
    assert!(
        chain(&err).ends_with(&format!(": request {}", wins[0])),
        "{err:#}"
    );
    // every losing request's error is attached, none lost
    let mut carried: Vec<String> = all_errors(&err)
        .iter()
        .map(|e| std::error::Error::source(e).unwrap().to_string())
        .collect();
    carried.sort();
    let mut sent: Vec<String> = (0..N).map(|i| format!("request {i}")).collect();
    sent.sort();
    assert_eq!(carried, sent);
    assert_eq!(log.count("stop a"), 1);
}

/// Regression: the runner set the `Running` phase with a plain store, so a
/// `request_shutdown` that landed just after the last readiness check (and had
/// already moved the phase to `LameDuck`) was overwritten: the phase went
/// back to `Running` although shutdown had begun.
#[test]
fn regression_phase_went_back_to_running_after_a_racing_stop_request() {
    use lameduck::ComponentState;
    for round in 0..1000 {
        let lc = Lifecycle::builder()
            .component("a", probe(&Log::new(), "a"))
            .build()
            .unwrap();
        let h = lc.handle();
        let requester = std::thread::spawn(move || {
            // request as the launch completes, then watch the phase
            while h.report().component("a").map(|c| c.state) != Some(ComponentState::Ready) {
                std::hint::spin_loop();
            }
            assert!(h.request_shutdown(None));
            (0..2000).map(|_| h.phase()).min().unwrap()
        });
        expect_ok(run(lc).0);
        let lowest = requester.join().unwrap();
        assert!(
            lowest >= Phase::LameDuck,
            "round {round}: phase went back to {lowest:?}"
        );
    }
}

/// A lifecycle can stop without a shutdown request (dropped unrun, or its
/// `run` future dropped): it serves nothing then, so health must not pass.
#[test]
fn is_healthy_is_false_once_the_lifecycle_stopped_without_a_shutdown() {
    struct Fine;
    impl lameduck::HealthChecker for Fine {
        async fn check(&self) -> lameduck::Health {
            lameduck::Health::Healthy
        }
    }
    let lifecycle = Lifecycle::builder()
        .health_check("fine", Fine)
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    assert!(block_on(handle.is_healthy()), "healthy while built");
    drop(lifecycle);
    assert!(!handle.is_shutting_down(), "no shutdown was requested");
    assert!(
        !block_on(handle.is_healthy()),
        "a stopped lifecycle is not healthy"
    );
}
