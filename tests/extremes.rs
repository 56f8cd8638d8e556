//! Every public `Duration` setter at `ZERO` and at `MAX`, and every kind of
//! name at its edges: each gets a clear configuration error or does what
//! its documentation says, never a panic or a hang.

mod common;

use std::time::Duration;

use common::*;
use futures::executor::block_on;
use lameduck::{
    Backoff, CheckOptions, ComponentOptions, Health, HealthChecker, HealthMonitor, Lifecycle,
    LifecycleBuilder, Probe, Readiness, Step,
};

const MAX: Duration = Duration::MAX;
const ZERO: Duration = Duration::ZERO;

/// What a case expects.
enum Expect {
    /// `build()` fails with a configuration error.
    Config,
    /// The run ends, within the bound, and passes the check.
    Runs(
        Duration,
        fn(&Log, Result<lameduck::Report, lameduck::Error>),
    ),
}

fn b() -> LifecycleBuilder {
    Lifecycle::builder()
}

/// The builder with one component `c`.
fn one(
    _log: &Log,
    b: LifecycleBuilder,
    c: common::Probe,
    opts: ComponentOptions,
) -> LifecycleBuilder {
    b.component_with("c", c, opts)
}

fn ok(_: &Log, out: Result<lameduck::Report, lameduck::Error>) {
    expect_ok(out);
}

struct Fine;
impl HealthChecker for Fine {
    async fn check(&self) -> Health {
        Health::Healthy
    }
}

fn case(name: &str, log: &Log, b: LifecycleBuilder, expect: Expect) {
    match (b.build(), expect) {
        (Err(e), Expect::Config) => assert!(e.is_config(), "{name}: {e:#}"),
        (Ok(_), Expect::Config) => panic!("{name}: built, expected a configuration error"),
        (Err(e), Expect::Runs(..)) => panic!("{name}: {e:#}"),
        (Ok(lc), Expect::Runs(bound, check)) => {
            let handle = lc.handle();
            let stopper = std::thread::spawn(move || {
                let t0 = std::time::Instant::now();
                while !handle.is_ready() && t0.elapsed() < ms(100) {
                    std::thread::sleep(ms(2));
                }
                // the probes answer, whatever the check options
                let probes = handle.probes();
                for p in Probe::ALL {
                    let _ = block_on(probes.check(p));
                }
                handle.request_shutdown(None);
            });
            let (out, took) = run(lc);
            stopper.join().unwrap();
            assert!(took < bound, "{name}: took {took:?}");
            check(log, out);
        }
    }
}

#[test]
fn every_duration_setter_at_zero_and_at_max() {
    type Case = (&'static str, Box<dyn Fn(&Log) -> LifecycleBuilder>, Expect);
    let cases: Vec<Case> = vec![
        // the whole shutdown: zero polls each step once
        (
            "shutdown_timeout(ZERO)",
            Box::new(|log| {
                one(
                    log,
                    b().shutdown_timeout(ZERO),
                    probe(log, "c").stop(Act::Hang),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), |log, out| {
                let err = expect_err(out);
                assert!(find(&err, "c", Step::Stop).is_timeout());
                assert!(log.has("close-end c"), "close polled once");
            }),
        ),
        (
            "shutdown_timeout(MAX)",
            Box::new(|log| {
                one(
                    log,
                    b().shutdown_timeout(MAX),
                    probe(log, "c"),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "force_timeout(ZERO)",
            Box::new(|log| {
                one(
                    log,
                    b().force_timeout(ZERO),
                    probe(log, "c"),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "force_timeout(MAX)",
            Box::new(|log| {
                one(
                    log,
                    b().force_timeout(MAX),
                    probe(log, "c"),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "lame_duck(ZERO)",
            Box::new(|log| {
                one(
                    log,
                    b().lame_duck(ZERO),
                    probe(log, "c"),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        // capped by the shutdown timeout
        (
            "lame_duck(MAX)",
            Box::new(|log| {
                one(
                    log,
                    b().lame_duck(MAX).shutdown_timeout(ms(200)),
                    probe(log, "c"),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), |log, out| {
                // the lame duck took the whole budget; `stop`, polled once
                // past the deadline, finished on that poll
                let report = expect_ok(out);
                assert!(report.elapsed() >= ms(200), "{report}");
                assert!(log.has("stop-end c"));
            }),
        ),
        (
            "watchdog(ZERO)",
            Box::new(|_| b().watchdog(ZERO, 3)),
            Expect::Config,
        ),
        // never fires: this test process survives its shutdown
        (
            "watchdog(MAX)",
            Box::new(|log| {
                one(
                    log,
                    b().watchdog(MAX, 3),
                    probe(log, "c"),
                    ComponentOptions::new(),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        // retries at once
        (
            "Backoff::constant(ZERO)",
            Box::new(|log| {
                let r = Readiness::new().backoff(Backoff::constant(ZERO));
                one(
                    log,
                    b(),
                    probe(log, "c").not_ready_for(3),
                    ComponentOptions::new().readiness(r),
                )
            }),
            Expect::Runs(ms(2000), |log, out| {
                expect_ok(out);
                assert_eq!(log.count("ready c"), 4);
            }),
        ),
        // waits until the shutdown
        (
            "Backoff::constant(MAX)",
            Box::new(|_| {
                let r = Readiness::new().backoff(Backoff::constant(MAX));
                b().component_with(
                    "c",
                    probe(&Log::new(), "c").not_ready_for(u32::MAX),
                    ComponentOptions::new().readiness(r),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "Backoff::exponential(ZERO, ZERO)",
            Box::new(|log| {
                let r = Readiness::new().backoff(Backoff::exponential(ZERO, ZERO));
                one(
                    log,
                    b(),
                    probe(log, "c").not_ready_for(3),
                    ComponentOptions::new().readiness(r),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "Backoff::exponential(MAX, MAX)",
            Box::new(|_| {
                let r = Readiness::new().backoff(Backoff::exponential(MAX, MAX));
                b().component_with(
                    "c",
                    probe(&Log::new(), "c").not_ready_for(u32::MAX),
                    ComponentOptions::new().readiness(r),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "Readiness::attempt_timeout(ZERO)",
            Box::new(|log| {
                let r = Readiness::new().attempt_timeout(ZERO);
                one(
                    log,
                    b(),
                    probe(log, "c"),
                    ComponentOptions::new().readiness(r),
                )
            }),
            Expect::Config,
        ),
        (
            "Readiness::attempt_timeout(MAX)",
            Box::new(|log| {
                let r = Readiness::new().attempt_timeout(MAX);
                one(
                    log,
                    b(),
                    probe(log, "c"),
                    ComponentOptions::new().readiness(r),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "start_timeout(ZERO)",
            Box::new(|log| {
                one(
                    log,
                    b(),
                    probe(log, "c"),
                    ComponentOptions::new().start_timeout(ZERO),
                )
            }),
            Expect::Config,
        ),
        (
            "start_timeout(MAX)",
            Box::new(|log| {
                one(
                    log,
                    b(),
                    probe(log, "c"),
                    ComponentOptions::new().start_timeout(MAX),
                )
            }),
            Expect::Runs(ms(2000), ok),
        ),
        // close at once, no graceful stop
        (
            "stop_timeout(ZERO)",
            Box::new(|log| {
                one(
                    log,
                    b(),
                    probe(log, "c"),
                    ComponentOptions::new().stop_timeout(ZERO),
                )
            }),
            Expect::Runs(ms(2000), |log, out| {
                expect_ok(out);
                assert!(!log.has("stop c") && log.has("close-end c"));
            }),
        ),
        (
            "stop_timeout(MAX)",
            Box::new(|log| {
                one(
                    log,
                    b(),
                    probe(log, "c"),
                    ComponentOptions::new().stop_timeout(MAX),
                )
            }),
            Expect::Runs(ms(2000), |log, out| {
                expect_ok(out);
                assert!(log.has("stop-end c") && !log.has("close c"));
            }),
        ),
        // polled once
        (
            "close_timeout(ZERO)",
            Box::new(|log| {
                let opts = ComponentOptions::new()
                    .stop_timeout(ZERO)
                    .close_timeout(ZERO);
                one(log, b(), probe(log, "c").close(Act::Hang), opts)
            }),
            Expect::Runs(ms(2000), |_, out| {
                assert!(find(&expect_err(out), "c", Step::Close).is_timeout());
            }),
        ),
        (
            "close_timeout(MAX)",
            Box::new(|log| {
                let opts = ComponentOptions::new()
                    .stop_timeout(ZERO)
                    .close_timeout(MAX);
                one(log, b(), probe(log, "c"), opts)
            }),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "CheckOptions::timeout(ZERO)",
            Box::new(|_| b().health_check_with("k", Fine, CheckOptions::new().timeout(ZERO))),
            Expect::Config,
        ),
        (
            "CheckOptions::timeout(MAX)",
            Box::new(|_| b().health_check_with("k", Fine, CheckOptions::new().timeout(MAX))),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "CheckOptions::cache(ZERO)",
            Box::new(|_| b().health_check_with("k", Fine, CheckOptions::new().cache(ZERO))),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "CheckOptions::cache(MAX)",
            Box::new(|_| b().health_check_with("k", Fine, CheckOptions::new().cache(MAX))),
            Expect::Runs(ms(2000), ok),
        ),
        (
            "CheckOptions::interval(ZERO)",
            Box::new(|_| b().health_check_with("k", Fine, CheckOptions::new().interval(ZERO))),
            Expect::Config,
        ),
        // driven in the background: runs once, never goes stale
        (
            "CheckOptions::interval(MAX)",
            Box::new(|_| {
                b().component("monitor", HealthMonitor::new())
                    .health_check_with("k", Fine, CheckOptions::new().interval(MAX).timeout(MAX))
            }),
            Expect::Runs(ms(2000), ok),
        ),
    ];
    for (name, make, expect) in cases {
        let log = Log::new();
        case(name, &log, make(&log), expect);
    }
}

#[test]
fn a_check_with_a_max_interval_and_timeout_reports_its_one_result() {
    let lc = Lifecycle::builder()
        .component("monitor", HealthMonitor::new())
        .health_check_with("k", Fine, CheckOptions::new().interval(MAX).timeout(MAX))
        .build()
        .unwrap();
    let handle = lc.handle();
    let checker = std::thread::spawn(move || {
        assert!(block_on(handle.ready()));
        let probes = handle.probes();
        let t0 = std::time::Instant::now();
        let mut passing = false;
        while !passing && t0.elapsed() < LIMIT {
            passing = block_on(probes.check(Probe::Readiness)).is_passing();
            std::thread::sleep(ms(5));
        }
        handle.request_shutdown(None);
        passing
    });
    expect_ok(run(lc).0);
    assert!(checker.join().unwrap(), "the background result never came");
}

#[test]
fn names_empty_or_with_control_characters_or_a_slash_are_refused() {
    for bad in ["", "a\nb", "a/b", "\u{7f}", "tab\there", "/"] {
        let errs = [
            Lifecycle::builder()
                .component(bad, probe(&Log::new(), "c"))
                .build()
                .err(),
            Lifecycle::builder()
                .drainer(bad, drain(&Log::new(), "d", Act::Ok))
                .build()
                .err(),
            Lifecycle::builder()
                .prepend_drainer(bad, drain(&Log::new(), "d", Act::Ok))
                .build()
                .err(),
            Lifecycle::builder()
                .stop_hook(bad, hook(&Log::new(), "h", Act::Ok))
                .build()
                .err(),
            Lifecycle::builder().health_check(bad, Fine).build().err(),
        ];
        for (i, e) in errs.into_iter().enumerate() {
            let e = e.unwrap_or_else(|| panic!("{bad:?} accepted by builder part {i}"));
            assert!(e.is_config(), "{bad:?}: {e}");
            assert_eq!(e.component(), None);
            // printed escaped: no raw control character reaches a log line
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        // and from a handle, while running
        let lc = Lifecycle::builder().build().unwrap();
        let h = lc.handle();
        assert!(
            h.add_component(bad, probe(&Log::new(), "c"))
                .unwrap_err()
                .is_config()
        );
        assert!(
            h.add_drainer(bad, drain(&Log::new(), "d", Act::Ok))
                .unwrap_err()
                .is_config()
        );
        assert!(
            h.prepend_drainer(bad, drain(&Log::new(), "d", Act::Ok))
                .unwrap_err()
                .is_config()
        );
        assert!(
            h.add_stop_hook(bad, hook(&Log::new(), "h", Act::Ok))
                .unwrap_err()
                .is_config()
        );
        assert!(h.add_health_check(bad, Fine).unwrap_err().is_config());
        assert_eq!(h.report().components().len(), 0, "nothing changed");
    }
    // anything else printable is a name
    let lc = Lifecycle::builder()
        .component("db: primary (eu-west) ✓", probe(&Log::new(), "c"))
        .health_check("k.8-s_ok", Fine)
        .build()
        .unwrap();
    lc.handle().request_shutdown(None);
    expect_ok(run(lc).0);
}

#[test]
fn force_stop_after_the_lifecycle_stopped_returns_false() {
    let lc = Lifecycle::builder()
        .component("c", probe(&Log::new(), "c"))
        .build()
        .unwrap();
    let h = lc.handle();
    h.request_shutdown(None);
    expect_ok(run(lc).0);
    assert!(!h.force_shutdown());
    assert!(!h.request_shutdown(Some("too late".into())));
}
