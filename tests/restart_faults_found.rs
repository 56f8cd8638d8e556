//! Engine bugs in restarts found by the fault generator (`tests/faults.rs`),
//! each reduced to a small test. They are ignored so the suite stays green
//! until the engine is fixed; `cargo test --test restart_faults_found --
//! --ignored` shows them fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use futures_timer::Delay;
use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, Context, Handle, Lifecycle, Restart,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Asks for shutdown after `after`, from another thread.
fn stop_after(handle: Handle, after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        handle.request_shutdown(None);
    });
}

/// Logs when each life's `start` begins and `ready` answers, from `t0`.
struct Timed {
    t0: Instant,
    fail_after: Option<Duration>,
    runs: AtomicU32,
    starts: Mutex<Vec<Duration>>,
    readies: Mutex<Vec<Duration>>,
}

impl Timed {
    fn new(t0: Instant, fail_after: Option<Duration>) -> Arc<Self> {
        Arc::new(Timed {
            t0,
            fail_after,
            runs: AtomicU32::new(0),
            starts: Mutex::new(Vec::new()),
            readies: Mutex::new(Vec::new()),
        })
    }
}

struct Shared(Arc<Timed>);

impl Component for Shared {
    async fn start(&self, _: &Context) -> Result<(), BoxError> {
        self.0.starts.lock().unwrap().push(self.0.t0.elapsed());
        Ok(())
    }

    async fn ready(&self, _: &Context) -> Result<bool, BoxError> {
        self.0.readies.lock().unwrap().push(self.0.t0.elapsed());
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let first = self.0.runs.fetch_add(1, Ordering::SeqCst) == 0;
        if let (true, Some(after)) = (first, self.0.fail_after) {
            Delay::new(after).await;
            return Err("broke".into());
        }
        cx.stop_signal().await;
        Ok(())
    }
}

/// `b` depends on `a`; both restart on failure. `a`'s `run` fails at
/// 20 ms and waits a 150 ms backoff; `b`'s fails at 40 ms with no backoff.
/// `b` is launched again at once — while `a` is still waiting, not ready —
/// although a component is never to be started before its dependencies
/// are ready (the relaunch skips the graph's gate).
#[test]
#[ignore = "engine bug: a restarting component is started again while a dependency is not ready"]
fn restart_waits_for_dependencies() {
    let t0 = Instant::now();
    let a = Timed::new(t0, Some(ms(20)));
    let b = Timed::new(t0, Some(ms(40)));
    let lifecycle = Lifecycle::builder()
        .component_with(
            "a",
            Shared(a.clone()),
            ComponentOptions::new()
                .restart(Restart::on_failure().backoff(Backoff::constant(ms(150)))),
        )
        .component_with(
            "b",
            Shared(b.clone()),
            ComponentOptions::new()
                .depends_on(["a"])
                .restart(Restart::on_failure().backoff(Backoff::constant(Duration::ZERO))),
        )
        .build()
        .unwrap();
    stop_after(lifecycle.handle(), ms(600));
    let report = block_on(lifecycle.run()).unwrap();
    assert_eq!(report.component("a").unwrap().restarts(), 1);
    assert_eq!(report.component("b").unwrap().restarts(), 1);
    let a_ready = a.readies.lock().unwrap()[1];
    let b_start = b.starts.lock().unwrap()[1];
    assert!(
        b_start > a_ready,
        "`b` started again at {b_start:?}, before its dependency `a` was ready again at {a_ready:?}"
    );
}

/// Fails its first `run`; from its second start on, its readiness check
/// never answers.
struct ReadyOnce {
    runs: AtomicU32,
    readies: AtomicU32,
}

impl Component for ReadyOnce {
    async fn ready(&self, _: &Context) -> Result<bool, BoxError> {
        if self.readies.fetch_add(1, Ordering::SeqCst) > 0 {
            futures::future::pending::<()>().await;
        }
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        if self.runs.fetch_add(1, Ordering::SeqCst) == 0 {
            Delay::new(ms(10)).await;
            return Err("broke".into());
        }
        cx.stop_signal().await;
        Ok(())
    }
}

/// The report's stamps are "those of its latest start", but a relaunch
/// resets only `start_at`: a component restarted and not ready yet shows
/// the `ready_at` of its earlier life, before its latest start (the same
/// for `start_took`, `attempts`, `run_ended_at`, `stop_at`, `close_at`).
#[test]
#[ignore = "engine bug: after a restart the report keeps the earlier life's ready_at"]
fn report_stamps_are_the_latest_lifes() {
    let lifecycle = Lifecycle::builder()
        .component_with(
            "a",
            ReadyOnce {
                runs: AtomicU32::new(0),
                readies: AtomicU32::new(0),
            },
            ComponentOptions::new()
                .restart(Restart::on_failure().backoff(Backoff::constant(Duration::ZERO))),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    stop_after(handle.clone(), ms(300));
    let _ = block_on(lifecycle.run());
    let report = handle.report();
    let a = report.component("a").unwrap();
    assert_eq!(a.restarts(), 1);
    let start = a.start_at.expect("started");
    if let Some(ready) = a.ready_at {
        assert!(
            ready >= start,
            "ready at {ready:?}, before its latest start at {start:?}: an earlier life's stamp"
        );
    }
}
