//! Dependencies that cannot be: invalid and unknown names, cycles. Each is
//! a `Config` error naming the component, and nothing starts.

mod common;

use common::*;
use lameduck::{ComponentOptions, Error, Lifecycle};

fn deps<const N: usize>(names: [&str; N]) -> ComponentOptions {
    ComponentOptions::new().depends_on(names)
}

fn config_error(build: Result<Lifecycle, Error>) -> Error {
    let err = build.expect_err("a configuration error");
    assert!(err.is_config(), "{err}");
    err
}

#[test]
fn an_unknown_dependency_is_a_config_error_naming_both_and_nothing_starts() {
    let log = Log::new();
    let err = config_error(
        Lifecycle::builder()
            .component("a", probe(&log, "a"))
            .component_with("b", probe(&log, "b"), deps(["a", "nope"]))
            .build(),
    );
    assert_eq!(err.component(), Some("b"));
    assert!(err.to_string().contains("\"nope\""), "{err}");
    assert!(log.only(&["start"]).is_empty(), "{:?}", log.events());
}

#[test]
fn a_cycle_is_a_config_error_naming_the_whole_cycle() {
    let log = Log::new();
    let err = config_error(
        Lifecycle::builder()
            .component("x", probe(&log, "x"))
            .component_with("a", probe(&log, "a"), deps(["b"]))
            .component_with("b", probe(&log, "b"), deps(["c", "x"]))
            .component_with("c", probe(&log, "c"), deps(["a"]))
            .build(),
    );
    assert!(err.to_string().contains("a -> b -> c -> a"), "{err}");
    assert_eq!(err.component(), Some("a"));

    // Through the default chain: `b` depends on `a`, registered before it.
    let err = config_error(
        Lifecycle::builder()
            .component_with("a", probe(&log, "a"), deps(["b"]))
            .component("b", probe(&log, "b"))
            .build(),
    );
    assert!(err.to_string().contains("a -> b -> a"), "{err}");

    let err = config_error(
        Lifecycle::builder()
            .component_with("self", probe(&log, "self"), deps(["self"]))
            .build(),
    );
    assert!(err.to_string().contains("self -> self"), "{err}");
    assert!(log.only(&["start"]).is_empty(), "{:?}", log.events());
}

#[test]
fn an_invalid_dependency_name_is_a_config_error_naming_the_component() {
    let log = Log::new();
    for bad in ["", "a/b", "line\nbreak", "\u{7f}"] {
        let err = config_error(
            Lifecycle::builder()
                .component("a", probe(&log, "a"))
                .component_with("b", probe(&log, "b"), deps([bad]))
                .build(),
        );
        assert_eq!(err.component(), Some("b"), "{bad:?}: {err}");
        assert!(err.to_string().contains("dependency name"), "{err}");

        let lc = Lifecycle::builder()
            .component("a", probe(&log, "a"))
            .build()
            .unwrap();
        let err = lc
            .handle()
            .add_component_with("b", probe(&log, "b"), deps([bad]))
            .unwrap_err();
        assert!(err.is_config(), "{err}");
        assert_eq!(err.component(), Some("b"), "{bad:?}: {err}");
        assert!(lc.handle().report().component("b").is_none());
    }
}

#[test]
fn component_errors_come_in_call_order_before_dependency_errors() {
    let log = Log::new();
    let err = config_error(
        Lifecycle::builder()
            .component_with("a", probe(&log, "a"), deps(["nope"]))
            .component("b", probe(&log, "b"))
            .component("b", probe(&log, "b2"))
            .build(),
    );
    assert!(
        err.to_string().contains("duplicate component name"),
        "{err}"
    );
    assert_eq!(err.component(), Some("b"));
}
