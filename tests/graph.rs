//! Dependencies between components: the launch and stop order
//! `ComponentOptions::depends_on` gives, on every runtime and with the
//! spawner, and where dependencies show (report, `/debug/lifecycle`). The
//! errors are in `graph_errors.rs`.

mod common;

use common::*;
use lameduck::{ComponentOptions, ComponentState, Handle, Lifecycle, ProbeRequest, Report};

fn deps<const N: usize>(names: [&str; N]) -> ComponentOptions {
    ComponentOptions::new().depends_on(names)
}

fn order(report: &Report) -> Vec<&str> {
    report.components().iter().map(|c| &*c.name).collect()
}

fn dependencies<'r>(report: &'r Report, name: &str) -> Vec<&'r str> {
    let c = report.component(name).expect("registered");
    c.dependencies().iter().map(|d| &**d).collect()
}

/// Every component started only once each of its dependencies was ready,
/// and each dependency stopped only once the component's `run` had ended
/// and its `stop` returned.
fn assert_order_respected(log: &Log, report: &Report) {
    for c in report.components() {
        for d in c.dependencies() {
            log.assert_before(&format!("ready-end {d}"), &format!("start {}", c.name));
            log.assert_before(&format!("run-end {}", c.name), &format!("stop {d}"));
            log.assert_before(&format!("stop-end {}", c.name), &format!("stop {d}"));
        }
    }
}

/// Runs `lifecycle`, requests a stop once it is ready, and returns its
/// report.
async fn run_until_ready(lifecycle: Lifecycle) -> Report {
    let handle = lifecycle.handle();
    let stopper = async move {
        assert!(handle.ready().await, "never ready");
        handle.request_shutdown(None);
    };
    let (out, ()) = bounded(futures::future::join(lifecycle.run(), stopper)).await;
    out.expect("a clean run")
}

/// Waits until `name` is ready, within [`LIMIT`].
async fn ready(handle: &Handle, name: &str) {
    bounded(async {
        while handle.report().component(name).map(|c| c.state) != Some(ComponentState::Ready) {
            sleep(ms(2)).await;
        }
    })
    .await;
}

// ------------------------------------------------------------ scenarios

mod scenarios {
    use super::*;

    /// Registered top first: the launch order comes from the graph;
    /// whatever may start starts at once, the earliest registered first.
    pub async fn diamond_and_forward_references() {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .component_with("top", probe(&log, "top"), deps(["left", "right", "left"]))
            .component_with("left", probe(&log, "left").not_ready_for(2), deps(["base"]))
            .component_with("right", probe(&log, "right"), deps(["base"]))
            .component_with("base", probe(&log, "base"), deps([]))
            .component_with("free", probe(&log, "free"), deps([]))
            .build()
            .unwrap();
        let report = run_until_ready(lc).await;
        assert_eq!(order(&report), ["base", "left", "right", "top", "free"]);
        assert_eq!(dependencies(&report, "top"), ["left", "right"]);
        assert_eq!(dependencies(&report, "left"), ["base"]);
        assert!(dependencies(&report, "base").is_empty());
        assert!(dependencies(&report, "free").is_empty());
        assert_order_respected(&log, &report);
        // `base` and `free` depend on nothing: both start at once; `left`
        // and `right` once `base` is ready; `top` last.
        let starts = log.only(&["start"]);
        assert_eq!(
            starts,
            [
                "start base",
                "start free",
                "start left",
                "start right",
                "start top"
            ]
        );
        let stops = log.only(&["stop"]);
        assert_eq!(
            stops,
            [
                "stop free",
                "stop top",
                "stop right",
                "stop left",
                "stop base"
            ]
        );
        for c in report.components() {
            assert_eq!(c.state, ComponentState::Stopped, "{}", c.name);
        }
    }

    /// Without `depends_on`, each component depends on the one before:
    /// strict registration order, as always.
    pub async fn default_chain_is_registration_order() {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .component("c", probe(&log, "c"))
            .component("a", probe(&log, "a").not_ready_for(1))
            .component("b", probe(&log, "b"))
            .build()
            .unwrap();
        let report = run_until_ready(lc).await;
        assert_eq!(order(&report), ["c", "a", "b"]);
        assert!(dependencies(&report, "c").is_empty());
        assert_eq!(dependencies(&report, "a"), ["c"]);
        assert_eq!(dependencies(&report, "b"), ["a"]);
        // `a` answers "not ready" once, so two of its readiness calls end.
        let steps = log.only(&["start", "ready-end", "stop", "stop-end"]);
        assert_eq!(
            steps,
            [
                "start c",
                "ready-end c",
                "start a",
                "ready-end a",
                "ready-end a",
                "start b",
                "ready-end b",
                "stop b",
                "stop-end b",
                "stop a",
                "stop-end a",
                "stop c",
                "stop-end c",
            ]
        );
    }

    /// A component registered while running may name any registered
    /// component; an unknown name admits nothing.
    pub async fn dynamic_registration_depends_on_running_components() {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .component_with("b", probe(&log, "b"), deps(["a"]))
            .component_with("a", probe(&log, "a"), deps([]))
            .build()
            .unwrap();
        let handle = lc.handle();
        let adder = {
            let (handle, log) = (handle.clone(), log.clone());
            async move {
                assert!(handle.ready().await);
                let err = handle
                    .add_component_with("late", probe(&log, "late"), deps(["a", "nope"]))
                    .unwrap_err();
                assert!(err.is_config(), "{err}");
                assert_eq!(err.component(), Some("late"));
                let err = handle
                    .add_component_with("late", probe(&log, "late"), deps(["late"]))
                    .unwrap_err();
                assert!(err.to_string().contains("late -> late"), "{err}");
                assert!(handle.report().component("late").is_none());
                // By default: the one launched last (`b`), not the one
                // registered last (`a`).
                handle.add_component("tail", probe(&log, "tail")).unwrap();
                // The name is still free, and the refused ones never ran.
                handle
                    .add_component_with("late", probe(&log, "late"), deps(["a", "a"]))
                    .unwrap();
                handle.add_component("last", probe(&log, "last")).unwrap();
                ready(&handle, "last").await;
                let report = handle.report();
                assert_eq!(order(&report), ["a", "b", "tail", "late", "last"]);
                assert_eq!(dependencies(&report, "tail"), ["b"]);
                assert_eq!(dependencies(&report, "late"), ["a"]);
                assert_eq!(dependencies(&report, "last"), ["late"]);
                handle.request_shutdown(None);
            }
        };
        let (out, ()) = bounded(futures::future::join(lc.run(), adder)).await;
        let report = out.unwrap();
        assert_eq!(log.count("start late"), 1, "{:?}", log.events());
        assert_order_respected(&log, &report);
        // Nothing depends on `last` or `tail`: both stop at once, the
        // latest registered first; `a` holds out until `b` and `late` stop.
        let stops = log.only(&["stop"]);
        assert_eq!(stops[..2], ["stop last", "stop tail"]);
        assert_eq!(stops.len(), 5, "{stops:?}");
        assert_eq!(stops[4], "stop a");
    }

    /// A component that depends on one whose start fails never starts.
    pub async fn a_failed_dependency_keeps_its_dependents_unstarted() {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .component_with("api", probe(&log, "api"), deps(["db"]))
            .component_with("db", probe(&log, "db").start(Act::Fail), deps([]))
            .build()
            .unwrap();
        let err = bounded(lc.run()).await.unwrap_err();
        assert_eq!(err.component(), Some("db"), "{err}");
        assert!(!log.has("start api"), "{:?}", log.events());
        let report = err.report().expect("the report").clone();
        assert_eq!(order(&report), ["db", "api"]);
        assert_eq!(
            report.component("api").unwrap().state,
            ComponentState::Pending
        );
    }

    /// At the other end of the count: one component depending on many
    /// starts after all of them and stops before any.
    pub async fn one_component_may_depend_on_every_other() {
        const N: usize = 200;
        let log = Log::new();
        let names: Vec<String> = (0..N).map(|i| format!("p{i}")).collect();
        let mut builder = Lifecycle::builder().component_with(
            "hub",
            probe(&log, "hub"),
            ComponentOptions::new().depends_on(names.iter().rev().map(String::as_str)),
        );
        for name in &names {
            builder = builder.component_with(name.as_str(), probe(&log, name), deps([]));
        }
        let report = run_until_ready(builder.build().unwrap()).await;
        assert_eq!(order(&report).last(), Some(&"hub"));
        assert_eq!(dependencies(&report, "hub").len(), N);
        assert_eq!(dependencies(&report, "hub")[0], format!("p{}", N - 1));
        assert_order_respected(&log, &report);
    }
}

// ---------------------------------------------------------------- runtimes

use common::runtimes::{on_every_runtime, tokio_multi_thread};

on_every_runtime!(
    diamond_and_forward_references,
    default_chain_is_registration_order,
    dynamic_registration_depends_on_running_components,
    a_failed_dependency_keeps_its_dependents_unstarted,
    one_component_may_depend_on_every_other,
);

/// With a spawner each `run` is on its own task; the order holds the same.
#[test]
fn the_order_holds_with_the_spawner() {
    tokio_multi_thread(|| async {
        let log = Log::new();
        let lc = Lifecycle::builder()
            .spawner(|task| drop(tokio::spawn(task)))
            .component_with("top", probe(&log, "top"), deps(["mid", "base"]))
            .component_with("mid", probe(&log, "mid").not_ready_for(2), deps(["base"]))
            .component_with("base", probe(&log, "base"), deps([]))
            .build()
            .unwrap();
        let report = run_until_ready(lc).await;
        assert_eq!(order(&report), ["base", "mid", "top"]);
        assert_order_respected(&log, &report);
    });
}

// ------------------------------------------------------- where it shows

#[test]
fn debug_lifecycle_lists_each_components_dependencies() {
    let log = Log::new();
    let lc = Lifecycle::builder()
        .component("db", probe(&log, "db"))
        .component_with("api", probe(&log, "api"), deps(["cache", "db"]))
        .component_with("cache", probe(&log, "cache"), deps(["db"]))
        .component("worker", probe(&log, "worker"))
        .build()
        .unwrap();
    let handle = lc.handle();
    let probes = handle.probes().debug_lifecycle(true);
    let response =
        futures::executor::block_on(probes.respond(ProbeRequest::new("GET", "/debug/lifecycle")));
    let json: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    let components = json["components"].as_array().unwrap();
    let listed: Vec<(&str, Vec<&str>)> = components
        .iter()
        .map(|c| {
            let deps = c["dependencies"].as_array().unwrap();
            let deps = deps.iter().map(|d| d.as_str().unwrap()).collect();
            (c["name"].as_str().unwrap(), deps)
        })
        .collect();
    // Launch order; `worker` depends on `cache`, registered just before it.
    assert_eq!(
        listed,
        [
            ("db", vec![]),
            ("cache", vec!["db"]),
            ("api", vec!["cache", "db"]),
            ("worker", vec!["cache"]),
        ]
    );
    handle.request_shutdown(None);
    lc.run_blocking().unwrap();
}
