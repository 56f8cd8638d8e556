//! API contracts that no behaviour test covers: thread-safety bounds, the
//! normal dependency tree, and the error type's ergonomics.

use std::time::Duration;

use lameduck::{BoxError, Component, Context, Error, Handle, Latch, Lifecycle, Ready, Run};

fn assert_send<T: Send>() {}
fn assert_send_sync<T: Send + Sync>() {}
fn assert_clone<T: Clone>() {}
fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}

#[test]
fn handle_and_futures_are_thread_safe() {
    assert_send_sync::<Handle>();
    assert_clone::<Handle>();
    assert_send::<Run>();
    assert_send::<Ready>();
    assert_send_sync::<Latch>();
    assert_send_sync::<Context>();
    assert_send::<Lifecycle>();
    assert_error::<Error>();
}

/// The one-shot flag's former name still compiles, as a deprecated alias.
#[test]
#[allow(deprecated)]
fn the_former_name_of_latch_still_names_it() {
    fn same(l: Latch) -> lameduck::Signal {
        l
    }
    struct C;
    impl Component for C {}
    let lifecycle = Lifecycle::builder().component("c", C).build().unwrap();
    let stopped = same(lifecycle.handle().shutting_down());
    assert!(!stopped.is_set());
}

#[test]
fn run_future_can_be_spawned_on_a_multi_threaded_runtime() {
    struct C;
    impl Component for C {}
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lifecycle = Lifecycle::builder().component("c", C).build().unwrap();
    let handle = lifecycle.handle();
    let task = rt.spawn(lifecycle.run());
    rt.block_on(async {
        assert!(handle.ready().await);
        handle.request_shutdown(None);
        task.await.unwrap().unwrap();
    });
}

#[test]
fn errors_convert_into_box_error_and_anyhow_style_callers() {
    fn uses_question_mark() -> Result<(), BoxError> {
        struct Broken;
        impl Component for Broken {
            async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
                Err(std::io::Error::other("disk full").into())
            }
        }
        Lifecycle::builder()
            .component("broken", Broken)
            .shutdown_timeout(Duration::from_secs(1))
            .build()?
            .run_blocking()?;
        Ok(())
    }
    let err = uses_question_mark().unwrap_err();
    let err = err.downcast::<Error>().expect("a lameduck error");
    assert_eq!(err.component(), Some("broken"));
    let source = std::error::Error::source(&*err).expect("the user's error is the source");
    assert_eq!(source.to_string(), "disk full");
}

/// The library must run on any executor: no runtime crate may appear in the
/// normal dependency tree, whatever the features. Not `--offline`: on a
/// fresh machine the cache may lack crates that only the tree needs, and
/// cargo fetches them as `cargo test` itself did.
#[test]
fn no_runtime_crate_in_the_normal_dependency_tree() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "-e", "normal", "--prefix", "none", "--all-features"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.starts_with("lameduck "), "unexpected tree: {tree}");
    for runtime in ["tokio", "async-std", "smol", "async-executor", "actix-rt"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(&format!("{runtime} "))),
            "{runtime} is a normal dependency:\n{tree}"
        );
    }
}
