//! Engine bugs found by the fault-injection generator (`tests/faults.rs`)
//! that need a thread paused at an exact point inside the engine. The pause
//! comes from a `log` logger: `begin_shutdown` logs "shutdown requested"
//! once it has claimed the shutdown, so a logger that blocks there holds a
//! `request_shutdown` call at that point, deterministically. (When these bugs
//! were found, the shutdown signal was set only after that log line.)
//!
//! The engine now raises the shutdown signal under the same lock, before
//! the logger runs, so the pause lands *after* the signal: these tests
//! check that nothing is observable in between any more.

use std::cell::Cell;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lameduck::{BoxError, Component, Context, Handle, Lifecycle};

thread_local! {
    /// Set on the one thread whose "shutdown requested" log must block.
    static PAUSE_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Tells the test the request is paused, then waits to be released.
struct Gate {
    entered: mpsc::Sender<()>,
    release: Mutex<mpsc::Receiver<()>>,
}

static GATE: OnceLock<Mutex<Option<Gate>>> = OnceLock::new();

/// The gate is global: the tests in this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

struct PausingLogger;

impl log::Log for PausingLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let wanted = PAUSE_HERE.with(Cell::get)
            && record.args().to_string().starts_with("shutdown requested");
        if !wanted {
            return;
        }
        let gate = GATE.get().unwrap().lock().unwrap().take();
        if let Some(gate) = gate {
            gate.entered.send(()).unwrap();
            let _ = gate
                .release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(5));
        }
    }

    fn flush(&self) {}
}

/// Starts `handle.request_shutdown(None)` on a thread and returns once that call
/// has claimed the shutdown but not yet set the shutdown signal. Send on the
/// returned sender to let it finish.
fn request_stop_paused_before_signal(
    handle: Handle,
) -> (mpsc::Sender<()>, std::thread::JoinHandle<bool>) {
    static LOGGER: PausingLogger = PausingLogger;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    *GATE.get_or_init(|| Mutex::new(None)).lock().unwrap() = Some(Gate {
        entered: entered_tx,
        release: Mutex::new(release_rx),
    });
    let t = std::thread::spawn(move || {
        PAUSE_HERE.with(|p| p.set(true));
        handle.request_shutdown(None)
    });
    entered_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("request_shutdown reached the pause point");
    (release_tx, t)
}

/// A launch failure while a `request_shutdown` from another thread is half-way
/// through `begin_shutdown`: the runner's own `begin_shutdown` returns
/// `false` (shutdown already claimed), `launch_and_serve` then checks the
/// shutdown *signal*, which is not set yet, and launches the next component
/// although its predecessor never became ready and shutdown had begun.
///
/// Seen in the generator as `start-before-ready` (e.g. seed 0x4000000002a
/// under futures::executor: `c0` panicked in `ready`, `c1` and `c2` were
/// started anyway).
#[test]
fn no_launch_after_a_failure_racing_a_stop_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    /// Starts once let go, then fails its readiness check.
    struct First {
        began: mpsc::Sender<()>,
        go: async_channel::Receiver<()>,
    }
    impl Component for First {
        async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
            self.began.send(()).unwrap();
            self.go.recv().await?;
            Ok(())
        }
        async fn ready(&self, _cx: &Context) -> Result<bool, BoxError> {
            Err("not ready".into())
        }
    }
    struct Second(Arc<Mutex<bool>>);
    impl Component for Second {
        async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
            *self.0.lock().unwrap() = true;
            Ok(())
        }
    }
    let (began_tx, began_rx) = mpsc::channel();
    let (go_tx, go_rx) = async_channel::bounded(1);
    let second_started = Arc::new(Mutex::new(false));
    let lifecycle = Lifecycle::builder()
        .component(
            "first",
            First {
                began: began_tx,
                go: go_rx,
            },
        )
        .component("second", Second(second_started.clone()))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || futures::executor::block_on(lifecycle.run()));
    began_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    // Shutdown claimed (the request will return `true`), not yet signalled.
    let (release, requester) = request_stop_paused_before_signal(handle);
    // With the fix, `first.start` is cancelled by the shutdown signal, so
    // its `go` receiver may already be gone.
    let _ = go_tx.try_send(());
    // The runner decides at once whether to launch `second`; the request is
    // let go later, so a runner that waits for the signal still ends.
    std::thread::sleep(Duration::from_millis(300));
    release.send(()).unwrap();
    assert!(requester.join().unwrap());
    let result = runner.join().unwrap();
    if let Err(err) = &result {
        assert_eq!(err.component(), Some("first"), "{err}");
    }
    assert!(
        !*second_started.lock().unwrap(),
        "`second` was started although `first` failed its readiness check and shutdown had begun"
    );
}

/// In the same window, a registration is refused with `ShuttingDown` while
/// `is_ready()` still says `true`: readiness must fail from the moment the
/// shutdown has begun, and the shutdown has begun when registrations are
/// refused. (`begin_shutdown` sets `shutdown_at` under the lock but the
/// shutdown signal, which `is_ready`/`is_healthy`/`is_shutting_down` read,
/// only after releasing it.)
#[test]
fn readiness_fails_once_registration_is_refused() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    struct Idle;
    impl Component for Idle {}
    let lifecycle = Lifecycle::builder()
        .component("idle", Idle)
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let (run_tx, run_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = run_tx.send(futures::executor::block_on(lifecycle.run()));
    });
    assert!(futures::executor::block_on(handle.ready()));
    let (release, requester) = request_stop_paused_before_signal(handle.clone());
    let refused = handle.add_component("late", Idle).unwrap_err();
    let ready = handle.is_ready();
    let healthy = futures::executor::block_on(handle.is_healthy());
    release.send(()).unwrap();
    assert!(requester.join().unwrap());
    run_rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert!(refused.is_shutting_down(), "{refused}");
    assert!(!ready, "is_ready() true although registrations are refused");
    assert!(
        !healthy,
        "is_healthy() true although registrations are refused"
    );
}
