//! Probes: membership, aggregation, the Kubernetes apiserver format, JSON,
//! timeouts, caching, flap damping, background checks, and readiness across
//! the lifecycle. Driven with `futures::executor::block_on`: no runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use lameduck::{
    BoxError, CheckOptions, CheckStatus, Component, Context, Handle, Health, HealthMonitor,
    Lifecycle, Probe, ProbeRequest, ProbeResponse, Probes, check_fn,
};

fn get(probes: &Probes, target: &str) -> ProbeResponse {
    block_on(probes.respond(ProbeRequest::new("GET", target)))
}

fn healthy() -> impl lameduck::HealthChecker {
    check_fn(|| async { Health::Healthy })
}

fn unhealthy(reason: &'static str) -> impl lameduck::HealthChecker {
    check_fn(move || async move { Health::Unhealthy(reason.into()) })
}

fn degraded(reason: &'static str) -> impl lameduck::HealthChecker {
    check_fn(move || async move { Health::Degraded(reason.into()) })
}

const TEXT_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
];

fn assert_text(resp: &ProbeResponse, status: u16, body: &str) {
    assert_eq!(resp.body(), body);
    assert_eq!(resp.status(), status);
    let headers: Vec<(&str, &str)> = resp
        .headers()
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    assert_eq!(headers, TEXT_HEADERS);
}

/// A lifecycle whose launch has finished (ready), with the given checks, and
/// a thread driving it until the returned handle requests a stop.
fn running(build: impl FnOnce(lameduck::LifecycleBuilder) -> lameduck::LifecycleBuilder) -> Handle {
    let lifecycle = build(Lifecycle::builder()).build().unwrap();
    let handle = lifecycle.handle();
    std::thread::spawn(move || lifecycle.run_blocking());
    assert!(block_on(handle.ready()));
    handle
}

#[test]
fn liveness_passes_with_no_checks_plain_and_verbose() {
    let lifecycle = Lifecycle::builder().build().unwrap();
    let probes = lifecycle.handle().probes();
    assert_text(&get(&probes, "/livez"), 200, "ok");
    assert_text(
        &get(&probes, "/livez?verbose"),
        200,
        "[+]ping ok\nlivez check passed\n",
    );
    assert_text(
        &get(&probes, "/livez?verbose=1"),
        200,
        "[+]ping ok\nlivez check passed\n",
    );
}

#[test]
fn readiness_fails_before_launch_with_detail() {
    let lifecycle = Lifecycle::builder().build().unwrap();
    let probes = lifecycle.handle().probes();
    let body =
        "[+]ping ok\n[-]launch failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n";
    assert_text(&get(&probes, "/readyz"), 500, body);
    assert_text(&get(&probes, "/readyz?verbose"), 500, body);
    assert_text(
        &get(&probes, "/startupz"),
        500,
        "[+]ping ok\n[-]launch failed: reason withheld\nstartupz check failed\n",
    );
}

#[test]
fn warnings_pass_and_critical_failure_fails() {
    let handle = running(|b| {
        b.health_check("db", healthy())
            .health_check("cache", degraded("slow"))
            .health_check_with(
                "audit",
                unhealthy("down"),
                CheckOptions::new().critical(false),
            )
    });
    let probes = handle.probes();
    assert_text(&get(&probes, "/readyz"), 200, "ok");
    assert_text(
        &get(&probes, "/readyz?verbose"),
        200,
        "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[+]db ok\n\
         [+]cache degraded: reason withheld\n\
         [+]audit failed (non-critical): reason withheld\nreadyz check passed\n",
    );
    let report = block_on(probes.check(Probe::Readiness));
    assert_eq!(report.status(), CheckStatus::Warn);
    assert!(report.is_passing());
    // Liveness runs no dependency check by default.
    assert_text(
        &get(&probes, "/livez?verbose"),
        200,
        "[+]ping ok\nlivez check passed\n",
    );
    handle.request_shutdown(None);
}

#[test]
fn failing_critical_check_withholds_or_shows_reason() {
    let handle = running(|b| {
        b.health_check("db", unhealthy("connection refused"))
            .health_check("queue", healthy())
    });
    let withheld = "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[-]db failed: reason withheld\n\
                    [+]queue ok\nreadyz check failed\n";
    assert_text(&get(&handle.probes(), "/readyz"), 500, withheld);
    let shown = handle.probes().show_reasons(true);
    assert_text(
        &get(&shown, "/readyz"),
        500,
        "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[-]db failed: connection refused\n\
         [+]queue ok\nreadyz check failed\n",
    );
    let configured = handle.probes().failure_status(503);
    assert_text(&get(&configured, "/readyz"), 503, withheld);
    // Only client and server error codes can mean "failed" to a kubelet.
    for not_a_failure in [0, 200, 302, 399, 600, u16::MAX] {
        let probes = handle.probes().failure_status(not_a_failure);
        assert_eq!(get(&probes, "/readyz").status(), 500, "{not_a_failure}");
    }
    assert_eq!(
        get(&handle.probes().failure_status(418), "/readyz").status(),
        418
    );
    handle.request_shutdown(None);
}

#[test]
fn exclude_is_repeatable_and_warns_on_unknown_names() {
    let handle = running(|b| {
        b.health_check("db", unhealthy("down"))
            .health_check("queue", healthy())
    });
    let probes = handle.probes();
    assert_text(&get(&probes, "/readyz?exclude=db"), 200, "ok");
    assert_text(
        &get(
            &probes,
            "/readyz?verbose&exclude=db&exclude=zeta&exclude=alpha&exclude=alpha",
        ),
        200,
        "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[+]db excluded: ok\n[+]queue ok\n\
         warn: some health checks cannot be excluded: no matches for \"alpha\",\"zeta\"\n\
         readyz check passed\n",
    );
    // On failure the warning comes before the verdict too.
    assert_text(
        &get(&probes, "/readyz?exclude=queue&exclude=nope"),
        500,
        "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[-]db failed: reason withheld\n\
         [+]queue excluded: ok\n\
         warn: some health checks cannot be excluded: no matches for \"nope\"\n\
         readyz check failed\n",
    );
    handle.request_shutdown(None);
}

#[test]
fn per_check_paths() {
    let handle = running(|b| {
        b.health_check("db", unhealthy("down")).health_check_with(
            "disk",
            healthy(),
            CheckOptions::new().probes([Probe::Liveness, Probe::Readiness]),
        )
    });
    let probes = handle.probes();
    assert_text(&get(&probes, "/readyz/disk"), 200, "ok");
    // The apiserver's per-check handler ignores the query.
    assert_text(&get(&probes, "/readyz/disk?verbose"), 200, "ok");
    assert_text(&get(&probes, "/readyz/disk?format=json"), 200, "ok");
    assert_text(
        &get(&probes, "/readyz/db"),
        500,
        "internal server error: reason withheld\n",
    );
    assert_text(
        &get(&probes, "/readyz/db?exclude=db"),
        500,
        "internal server error: reason withheld\n",
    );
    assert_text(
        &get(&probes.clone().show_reasons(true), "/readyz/db?verbose"),
        500,
        "internal server error: down\n",
    );
    assert_text(
        &get(&probes.clone().failure_status(503), "/readyz/db"),
        503,
        "internal server error: reason withheld\n",
    );
    assert_text(&get(&probes, "/livez/disk"), 200, "ok");
    assert_text(&get(&probes, "/readyz/shutdown"), 200, "ok");
    // db is not a liveness check; unknown names and paths are not found.
    assert_text(&get(&probes, "/livez/db"), 404, "404 page not found\n");
    assert_text(&get(&probes, "/readyz/nope"), 404, "404 page not found\n");
    assert_text(
        &get(&probes, "/readyz/nope?exclude=nope"),
        404,
        "404 page not found\n",
    );
    assert_text(&get(&probes, "/metrics"), 404, "404 page not found\n");
    // /healthz runs everything.
    assert_text(
        &get(&probes, "/healthz"),
        500,
        "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[-]db failed: reason withheld\n[+]disk ok\n\
         healthz check failed\n",
    );
    handle.request_shutdown(None);
}

/// The cases of the apiserver's `healthz_test.go` (`testMultipleChecks`:
/// a `ping` check, plus a `bad` one failing with "this will fail"), byte
/// for byte, on `/livez`, then the per-check and exclude edge cases.
#[test]
fn apiserver_golden_cases() {
    let with_bad = Lifecycle::builder()
        .health_check_with(
            "bad",
            unhealthy("this will fail"),
            CheckOptions::new().probes([Probe::Liveness]),
        )
        .build()
        .unwrap();
    let without_bad = Lifecycle::builder().build().unwrap();
    let cases: [(&str, &str, u16, bool); 11] = [
        ("?verbose", "[+]ping ok\nlivez check passed\n", 200, false),
        ("?exclude=dontexist", "ok", 200, false),
        ("?exclude=bad", "ok", 200, true),
        (
            "?verbose=true&exclude=bad",
            "[+]ping ok\n[+]bad excluded: ok\nlivez check passed\n",
            200,
            true,
        ),
        (
            "?verbose=true&exclude=dontexist",
            "[+]ping ok\nwarn: some health checks cannot be excluded: no matches for \"dontexist\"\n\
             livez check passed\n",
            200,
            false,
        ),
        ("/ping", "ok", 200, false),
        ("", "ok", 200, false),
        (
            "?verbose",
            "[+]ping ok\n[-]bad failed: reason withheld\nlivez check failed\n",
            500,
            true,
        ),
        ("/ping", "ok", 200, true),
        ("/bad", "internal server error: this will fail\n", 500, true),
        (
            "",
            "[+]ping ok\n[-]bad failed: reason withheld\nlivez check failed\n",
            500,
            true,
        ),
    ];
    for (i, (suffix, body, status, bad)) in cases.into_iter().enumerate() {
        let lifecycle = if bad { &with_bad } else { &without_bad };
        // The apiserver shows the reason on per-check paths; the root
        // paths always withhold it.
        let probes = lifecycle.handle().probes().show_reasons(true);
        let probes = if suffix.starts_with('?') || suffix.is_empty() {
            lifecycle.handle().probes()
        } else {
            probes
        };
        let resp = get(&probes, &format!("/livez{suffix}"));
        assert_eq!(
            (resp.status(), resp.body()),
            (status, body),
            "case {i}: {suffix:?}"
        );
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    }
    let probes = with_bad.handle().probes();
    for (target, status, body) in [
        // Reasons withheld by default, the query ignored.
        (
            "/livez/bad",
            500,
            "internal server error: reason withheld\n",
        ),
        (
            "/livez/bad?exclude=bad",
            500,
            "internal server error: reason withheld\n",
        ),
        ("/livez/ping?verbose", 200, "ok"),
        // Unknown checks are not found, excluded or not.
        ("/livez/nope", 404, "404 page not found\n"),
        ("/livez/nope?exclude=nope", 404, "404 page not found\n"),
        // Repeated and duplicate excludes.
        (
            "/livez?exclude=bad&exclude=bad&exclude=x&exclude=x",
            200,
            "ok",
        ),
        (
            "/livez?verbose&exclude=bad&exclude=x&exclude=ping",
            200,
            "[+]ping excluded: ok\n[+]bad excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for \"x\"\nlivez check passed\n",
        ),
    ] {
        let resp = get(&probes, target);
        assert_eq!((resp.status(), resp.body()), (status, body), "{target}");
    }
}

#[test]
fn accept_honours_quality_values() {
    let lifecycle = Lifecycle::builder().build().unwrap();
    let probes = lifecycle.handle().probes();
    let kind = |accept: &str| {
        let resp = block_on(probes.respond(ProbeRequest::new("GET", "/livez").accept(accept)));
        resp.header("content-type").unwrap_or_default().to_owned()
    };
    let json = "application/json";
    let text = "text/plain; charset=utf-8";
    for (accept, want) in [
        ("", text),
        ("*/*", text),
        ("application/json", json),
        ("Application/JSON", json),
        ("text/html, application/json;q=0.9", json),
        ("application/json;q=0", text),
        ("application/json; q=0.0", text),
        ("application/json;q=0.5, text/plain", text),
        ("text/plain;q=0.2, application/json;q=0.8", json),
        ("text/*;q=0.9, application/json;q=0.5", text),
        ("application/json, text/plain", text),
        ("application/json;q=abc", text),
        ("application/json;q=7", text),
        ("application/jsonx", text),
        (",,;;q=,application/json", json),
    ] {
        assert_eq!(kind(accept), want, "Accept: {accept}");
    }
}

#[test]
fn head_has_no_body_and_other_methods_get_405() {
    let lifecycle = Lifecycle::builder().build().unwrap();
    let probes = lifecycle.handle().probes();
    let head = block_on(probes.respond(ProbeRequest::new("HEAD", "/livez")));
    assert_text(&head, 200, "");
    let head = block_on(probes.respond(ProbeRequest::new("HEAD", "/readyz")));
    assert_text(&head, 500, "");
    let post = block_on(probes.respond(ProbeRequest::new("POST", "/livez")));
    assert_eq!(post.status(), 405);
    assert_eq!(post.body(), "405 method not allowed\n");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(post.header("cache-control"), Some("no-store"));
}

#[test]
fn json_on_request() {
    let handle = running(|b| {
        b.health_check("db", unhealthy("down"))
            .health_check("cache", degraded("slow"))
    });
    let probes = handle.probes();
    let by_query = get(&probes, "/readyz?format=json&exclude=nope");
    let by_accept =
        block_on(probes.respond(
            ProbeRequest::new("GET", "/readyz").accept("text/html, application/json;q=0.9"),
        ));
    for resp in [&by_query, &by_accept] {
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        let v: serde_json::Value = serde_json::from_str(resp.body()).unwrap();
        assert_eq!(v["probe"], "readyz");
        assert_eq!(v["status"], "fail");
        let checks = v["checks"].as_array().unwrap();
        let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ping", "launch", "shutdown", "db", "cache"]);
        assert_eq!(checks[3]["status"], "fail");
        assert_eq!(checks[3]["reason"], "reason withheld");
        assert_eq!(checks[4]["status"], "warn");
        assert_eq!(checks[0]["critical"], true);
        assert!(checks[3]["duration_ms"].is_number());
        assert!(checks[0].get("reason").is_none());
    }
    let v: serde_json::Value = serde_json::from_str(by_query.body()).unwrap();
    assert_eq!(v["unmatched_excludes"], serde_json::json!(["nope"]));
    let shown = get(&probes.clone().show_reasons(true), "/readyz?format=json");
    let v: serde_json::Value = serde_json::from_str(shown.body()).unwrap();
    assert_eq!(v["checks"][3]["reason"], "down");
    handle.request_shutdown(None);
}

#[test]
fn hanging_check_times_out_within_budget() {
    let handle = running(|b| {
        b.health_check_with(
            "hang",
            check_fn(futures::future::pending::<Health>),
            CheckOptions::new().timeout(Duration::from_millis(100)),
        )
        .health_check("db", healthy())
    });
    let probes = handle.probes().show_reasons(true);
    let t0 = Instant::now();
    let resp = get(&probes, "/readyz");
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_secs(1), "probe took {took:?}");
    assert_text(
        &resp,
        500,
        "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[-]hang failed: timed out after 100ms\n\
         [+]db ok\nreadyz check failed\n",
    );
    // The default timeout is well under the kubelet's 1 s.
    let handle2 = running(|b| b.health_check("hang", check_fn(futures::future::pending::<Health>)));
    let t0 = Instant::now();
    let resp = get(&handle2.probes().show_reasons(true), "/readyz/hang");
    assert!(
        t0.elapsed() < Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        resp.body(),
        "internal server error: timed out after 500ms\n"
    );
    handle.request_shutdown(None);
    handle2.request_shutdown(None);
}

#[test]
fn panicking_check_is_unhealthy() {
    let handle = running(|b| b.health_check("boom", check_fn(|| async { panic!("kaboom") })));
    let resp = get(&handle.probes().show_reasons(true), "/readyz/boom");
    assert_eq!(resp.status(), 500);
    assert!(
        resp.body()
            .starts_with("internal server error: check panicked: kaboom"),
        "{}",
        resp.body()
    );
    handle.request_shutdown(None);
}

fn counting(runs: Arc<AtomicU32>, delay: Duration) -> impl lameduck::HealthChecker {
    check_fn(move || {
        runs.fetch_add(1, Ordering::SeqCst);
        async move {
            futures_timer::Delay::new(delay).await;
            Health::Healthy
        }
    })
}

#[test]
fn concurrent_probes_share_one_run_in_flight() {
    let runs = Arc::new(AtomicU32::new(0));
    let handle =
        running(|b| b.health_check("slow", counting(runs.clone(), Duration::from_millis(150))));
    let probes = handle.probes();
    let all = futures::future::join_all((0..10).map(|_| probes.check(Probe::Readiness)));
    let reports = block_on(all);
    assert!(reports.iter().all(|r| r.is_passing()));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // No cache: the next probe runs it again.
    block_on(probes.check(Probe::Readiness));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    handle.request_shutdown(None);
}

#[test]
fn cached_result_is_reused_within_ttl() {
    let runs = Arc::new(AtomicU32::new(0));
    let handle = running(|b| {
        b.health_check_with(
            "cached",
            counting(runs.clone(), Duration::ZERO),
            CheckOptions::new().cache(Duration::from_millis(300)),
        )
    });
    let probes = handle.probes();
    for _ in 0..5 {
        assert!(block_on(probes.check(Probe::Readiness)).is_passing());
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(350));
    block_on(probes.check(Probe::Readiness));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    handle.request_shutdown(None);
}

#[test]
fn flap_damping_needs_consecutive_results() {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let handle = running(|b| {
        b.health_check_with(
            "flappy",
            check_fn(move || {
                let ok = flag.load(Ordering::SeqCst);
                async move {
                    if ok {
                        Health::Healthy
                    } else {
                        Health::Unhealthy("down".into())
                    }
                }
            }),
            CheckOptions::new().fail_after(3).pass_after(2),
        )
    });
    let probes = handle.probes().show_reasons(true);
    let status = || {
        block_on(probes.check(Probe::Readiness))
            .get("flappy")
            .unwrap()
            .status()
    };
    assert_eq!(status(), CheckStatus::Pass);
    up.store(false, Ordering::SeqCst);
    assert_eq!(status(), CheckStatus::Warn);
    let verbose = get(&probes, "/readyz?verbose");
    assert!(
        verbose
            .body()
            .contains("\n[+]flappy degraded: down (failure 2 of 3 before failing)\n"),
        "{}",
        verbose.body()
    );
    assert_eq!(status(), CheckStatus::Fail);
    assert_eq!(status(), CheckStatus::Fail);
    up.store(true, Ordering::SeqCst);
    assert_eq!(status(), CheckStatus::Fail);
    assert_eq!(status(), CheckStatus::Pass);
    // One failure after recovery is damped again.
    up.store(false, Ordering::SeqCst);
    assert_eq!(status(), CheckStatus::Warn);
    handle.request_shutdown(None);
}

#[test]
fn background_check_fails_until_first_result_then_reads_last() {
    let runs = Arc::new(AtomicU32::new(0));
    let lifecycle = Lifecycle::builder()
        .component("monitor", HealthMonitor::new())
        .health_check_with(
            "bg",
            counting(runs.clone(), Duration::from_millis(100)),
            CheckOptions::new().interval(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let probes = handle.probes().show_reasons(true);
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    assert!(block_on(handle.ready()));
    // The first run takes 100 ms: until then, no result.
    assert_eq!(
        get(&probes, "/readyz/bg").body(),
        "internal server error: no result yet\n"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while get(&probes, "/readyz/bg").status() != 200 {
        assert!(Instant::now() < deadline, "background check never passed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Probes read the last result: they do not run the check.
    let before = runs.load(Ordering::SeqCst);
    let t0 = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&probes, "/readyz/bg").status(), 200);
    }
    assert!(t0.elapsed() < Duration::from_millis(100 * 20));
    assert!(runs.load(Ordering::SeqCst) <= before + (t0.elapsed().as_millis() as u32 / 50) + 2);
    // The driver starts the next run once the first is recorded, but a
    // stop raised before its next poll cancels that: on a loaded machine,
    // give it a bounded moment before stopping.
    let deadline = Instant::now() + Duration::from_secs(2);
    while runs.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.request_shutdown(None);
    runner.join().unwrap().unwrap();
    // Refreshed on its interval while it ran.
    assert!(runs.load(Ordering::SeqCst) >= 2);
}

#[test]
fn background_check_without_a_driver_runs_on_demand_cached() {
    let runs = Arc::new(AtomicU32::new(0));
    let handle = running(|b| {
        b.health_check_with(
            "bg",
            counting(runs.clone(), Duration::ZERO),
            CheckOptions::new().interval(Duration::from_secs(60)),
        )
    });
    for _ in 0..3 {
        assert_eq!(get(&handle.probes(), "/readyz/bg").status(), 200);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    handle.request_shutdown(None);
}

#[test]
fn invalid_registrations_are_config_errors() {
    for name in ["ping", "launch", "shutdown"] {
        let err = Lifecycle::builder()
            .health_check(name, healthy())
            .build()
            .unwrap_err();
        assert!(err.is_config(), "{name}: {err}");
    }
    let err = Lifecycle::builder()
        .health_check_with("x", healthy(), CheckOptions::new().timeout(Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(err.is_config());
    let err = Lifecycle::builder()
        .health_check_with("x", healthy(), CheckOptions::new().fail_after(0))
        .build()
        .unwrap_err();
    assert!(err.is_config());
    let lifecycle = Lifecycle::builder().build().unwrap();
    let handle = lifecycle.handle();
    handle
        .add_health_check_with("late", healthy(), CheckOptions::new())
        .unwrap();
    assert!(
        handle
            .add_health_check("late", healthy())
            .unwrap_err()
            .is_config()
    );
    handle.request_shutdown(None);
    assert!(
        handle
            .add_health_check_with("later", healthy(), CheckOptions::new())
            .unwrap_err()
            .is_shutting_down()
    );
}

/// Serves until its stop signal; records whether it served during lame duck.
struct Slow {
    start: Duration,
}

impl Component for Slow {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        futures_timer::Delay::new(self.start).await;
        Ok(())
    }
}

#[test]
fn readiness_follows_the_lifecycle_and_liveness_always_passes() {
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_millis(400))
        .shutdown_timeout(Duration::from_secs(5))
        .component(
            "slow",
            Slow {
                start: Duration::from_millis(300),
            },
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let probes = handle.probes();
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    // During launch.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(get(&probes, "/readyz").status(), 500);
    assert_eq!(get(&probes, "/startupz").status(), 500);
    assert_eq!(get(&probes, "/livez").status(), 200);
    assert!(block_on(handle.ready()));
    assert_eq!(get(&probes, "/readyz").status(), 200);
    assert_eq!(get(&probes, "/startupz").status(), 200);
    // Shutdown: readiness fails at once (well within 50 ms), liveness passes.
    let t0 = Instant::now();
    handle.request_shutdown(None);
    let resp = get(&probes, "/readyz");
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        resp.body(),
        "[+]ping ok\n[+]launch ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n"
    );
    assert_eq!(get(&probes, "/livez").status(), 200);
    assert_eq!(get(&probes, "/startupz").status(), 200);
    runner.join().unwrap().unwrap();
    assert_eq!(get(&probes, "/livez").status(), 200);
    assert_eq!(get(&probes, "/readyz").status(), 500);
}

#[cfg(feature = "http")]
#[test]
fn http_request_maps_to_http_response() {
    let lifecycle = Lifecycle::builder().build().unwrap();
    let probes = lifecycle.handle().probes();
    let req = http::Request::get("/readyz?verbose").body(()).unwrap();
    let resp = block_on(probes.respond_http(&req));
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(
        resp.body(),
        "[+]ping ok\n[-]launch failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n"
    );
    let req = http::Request::get("/livez")
        .header("accept", "application/json")
        .body(())
        .unwrap();
    let resp = block_on(probes.respond_http(&req));
    assert_eq!(resp.headers()["content-type"], "application/json");
    let req = http::Request::delete("/livez").body(()).unwrap();
    let resp = block_on(probes.respond_http(&req));
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
}

/// Blocks the thread that drives the lifecycle for a while, starving every
/// future polled there, the background driver included.
struct Blocker;

impl Component for Blocker {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        futures_timer::Delay::new(Duration::from_millis(150)).await;
        std::thread::sleep(Duration::from_millis(600));
        cx.stop_signal().await;
        Ok(())
    }
}

#[test]
fn background_result_goes_stale_when_the_driver_starves() {
    let lifecycle = Lifecycle::builder()
        .component("monitor", HealthMonitor::new())
        .component("blocker", Blocker)
        .health_check_with(
            "bg",
            healthy(),
            CheckOptions::new()
                .interval(Duration::from_millis(20))
                .timeout(Duration::from_millis(50)),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let probes = handle.probes().show_reasons(true);
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    assert!(block_on(handle.ready()));
    let deadline = Instant::now() + Duration::from_secs(2);
    let stale = loop {
        let resp = get(&probes, "/readyz/bg");
        if resp
            .body()
            .starts_with("internal server error: stale: last result ")
        {
            break resp;
        }
        assert!(Instant::now() < deadline, "never stale: {}", resp.body());
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(stale.status(), 500);
    // Once the driver runs again, fresh results pass.
    let deadline = Instant::now() + Duration::from_secs(3);
    while get(&probes, "/readyz/bg").status() != 200 {
        assert!(Instant::now() < deadline, "never fresh again");
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.request_shutdown(None);
    runner.join().unwrap().unwrap();
}

/// Every `lameduck` log line of this test binary.
static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "lameduck"
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

#[test]
fn failing_probe_is_logged_with_its_checks_rate_limited() {
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Info);
    let handle = running(|b| {
        b.health_check("logged_db", unhealthy("refused"))
            .health_check("logged_ok", healthy())
    });
    let probes = handle.probes();
    for _ in 0..5 {
        assert_eq!(get(&probes, "/readyz").status(), 500);
    }
    assert_eq!(get(&probes, "/readyz/logged_db").status(), 500);
    assert_eq!(get(&probes, "/healthz").status(), 500);
    let lines: Vec<String> = LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("logged_db"))
        .cloned()
        .collect();
    // One line for readyz (the four repeats within ten seconds left out),
    // one for healthz; per-check paths are not logged, as in the apiserver.
    assert_eq!(
        lines,
        [
            "readyz check failed: logged_db; [-]logged_db failed: refused",
            "healthz check failed: logged_db; [-]logged_db failed: refused",
        ]
    );
    handle.request_shutdown(None);
}
