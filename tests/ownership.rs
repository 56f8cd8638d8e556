//! Sharing parts: `Arc` and `Box` forward every call; `Handoff` and
//! `start_run` carry a value from `start` to `run`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::executor::block_on;
use lameduck::component::{self, Handoff};
use lameduck::{BoxError, Component, Context, Drainer, Health, HealthChecker, Lifecycle};

/// Records every call made on it, in order.
#[derive(Default)]
struct Probe {
    calls: Mutex<Vec<&'static str>>,
    drained: AtomicUsize,
}

impl Probe {
    fn log(&self, call: &'static str) {
        self.calls.lock().unwrap().push(call);
    }
    fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }
}

impl Component for Probe {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        self.log("start");
        Ok(())
    }
    async fn ready(&self, _cx: &Context) -> Result<bool, BoxError> {
        self.log("ready");
        Ok(true)
    }
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        self.log("run");
        cx.stop_signal().await;
        Ok(())
    }
    async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
        self.log("stop");
        Ok(())
    }
}

impl Drainer for Probe {
    async fn drain(&self, _cx: &Context) -> Result<(), BoxError> {
        self.drained.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl HealthChecker for Probe {
    async fn check(&self) -> Health {
        // Healthy only once started through the lifecycle: proves the check
        // and the component are the same value.
        if self.calls().contains(&"start") {
            Health::Healthy
        } else {
            Health::Unhealthy("not started".into())
        }
    }
}

/// A component that overruns its stop, so `close` is called.
#[derive(Default)]
struct Stubborn {
    closed: AtomicUsize,
}

impl Component for Stubborn {
    async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
        futures::future::pending::<()>().await;
        Ok(())
    }
    async fn close(&self, _cx: &Context) -> Result<(), BoxError> {
        self.closed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn arc_is_a_component_a_drainer_and_a_health_check_on_one_value() {
    let shared = Arc::new(Probe::default());
    let lifecycle = Lifecycle::builder()
        .component("db", shared.clone())
        .drainer("db", shared.clone())
        .health_check("db", shared.clone())
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    assert!(
        !block_on(handle.is_healthy()),
        "the check sees the value before start"
    );
    let checker = handle.clone();
    let (healthy_tx, healthy_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        block_on(checker.ready());
        healthy_tx.send(block_on(checker.is_healthy())).unwrap();
        checker.request_shutdown(None);
    });
    block_on(lifecycle.run()).unwrap();
    waiter.join().unwrap();
    assert!(
        healthy_rx.recv().unwrap(),
        "the health check saw the component's start"
    );
    let calls = shared.calls();
    assert_eq!(&calls[..1], ["start"]);
    assert!(calls.contains(&"ready") && calls.contains(&"run"));
    assert_eq!(calls.last(), Some(&"stop"));
    assert_eq!(shared.drained.load(Ordering::SeqCst), 1);
}

#[test]
fn box_forwards_every_call_including_close() {
    let shared = Arc::new(Probe::default());
    let stubborn = Arc::new(Stubborn::default());
    let lifecycle = Lifecycle::builder()
        .component("boxed", Box::new(shared.clone()))
        .component_with(
            "stubborn",
            Box::new(stubborn.clone()),
            lameduck::ComponentOptions::new().stop_timeout(std::time::Duration::from_millis(20)),
        )
        .drainer("boxed", Box::new(shared.clone()))
        .health_check("boxed", Box::new(shared.clone()))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let stopper = std::thread::spawn(move || {
        block_on(handle.ready());
        assert!(block_on(handle.is_healthy()));
        handle.request_shutdown(None);
    });
    let err = block_on(lifecycle.run()).unwrap_err();
    stopper.join().unwrap();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.component(), Some("stubborn"));
    assert_eq!(stubborn.closed.load(Ordering::SeqCst), 1);
    let mut calls = shared.calls();
    calls[1..3].sort(); // `run` is polled concurrently with `ready`
    assert_eq!(calls, ["start", "ready", "run", "stop"]);
    assert_eq!(shared.drained.load(Ordering::SeqCst), 1);
}

#[derive(Default)]
struct Server {
    listener: Handoff<std::net::TcpListener>,
    served_on: Mutex<Option<std::net::SocketAddr>>,
}

impl Component for Server {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        self.listener
            .put(std::net::TcpListener::bind("127.0.0.1:0")?);
        Ok(())
    }
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let listener = self.listener.take()?;
        *self.served_on.lock().unwrap() = Some(listener.local_addr()?);
        cx.stop_signal().await;
        Ok(())
    }
}

#[test]
fn handoff_carries_the_value_from_start_to_run() {
    let server = Arc::new(Server::default());
    let lifecycle = Lifecycle::builder()
        .component("http", server.clone())
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let stopper = std::thread::spawn(move || {
        block_on(handle.ready());
        handle.request_shutdown(None);
    });
    block_on(lifecycle.run()).unwrap();
    stopper.join().unwrap();
    let addr = server
        .served_on
        .lock()
        .unwrap()
        .expect("run took the listener");
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    assert!(server.listener.is_empty(), "taken, not copied");
}

#[test]
fn handoff_take_without_put_is_an_error_not_a_panic() {
    let slot: Handoff<u32> = Handoff::default();
    assert!(slot.is_empty());
    let err = slot.take().unwrap_err();
    assert!(err.to_string().contains("nothing to take"), "{err}");
    slot.put(1);
    slot.put(2); // replaces a value never taken
    assert!(!slot.is_empty());
    assert_eq!(slot.take().unwrap(), 2);
    assert!(slot.take().is_err(), "a second take fails");
    assert_eq!(format!("{slot:?}"), "Handoff { empty: true }");
}

#[test]
fn a_run_that_finds_nothing_handed_fails_the_lifecycle_with_that_error() {
    struct Forgetful(Handoff<u8>);
    impl Component for Forgetful {
        async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
            self.0.take()?;
            Ok(())
        }
    }
    let lifecycle = Lifecycle::builder()
        .component("forgetful", Forgetful(Handoff::new()))
        .build()
        .unwrap();
    let err = block_on(lifecycle.run()).unwrap_err();
    assert_eq!(err.component(), Some("forgetful"));
    assert!(format!("{err:#}").contains("nothing to take"), "{err:#}");
}

#[test]
fn start_run_passes_the_started_value_to_run() {
    let seen = Arc::new(Mutex::new(None));
    let seen_in_run = seen.clone();
    let lifecycle = Lifecycle::builder()
        .component(
            "http",
            component::start_run(
                |cx| async move { Ok::<_, BoxError>(format!("bound by {}", cx.name())) },
                move |value: String, cx| async move {
                    *seen_in_run.lock().unwrap() = Some(value);
                    cx.stop_signal().await;
                    Ok::<_, BoxError>(())
                },
            ),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let stopper = std::thread::spawn(move || {
        block_on(handle.ready());
        handle.request_shutdown(None);
    });
    block_on(lifecycle.run()).unwrap();
    stopper.join().unwrap();
    assert_eq!(seen.lock().unwrap().as_deref(), Some("bound by http"));
}

#[test]
fn start_run_whose_start_fails_never_runs() {
    let ran = Arc::new(AtomicUsize::new(0));
    let ran_in_run = ran.clone();
    let lifecycle = Lifecycle::builder()
        .component(
            "http",
            component::start_run(
                |_cx| async { Err::<u8, BoxError>("port in use".into()) },
                move |_value, _cx| async move {
                    ran_in_run.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(())
                },
            ),
        )
        .build()
        .unwrap();
    let err = block_on(lifecycle.run()).unwrap_err();
    assert_eq!(err.component(), Some("http"));
    assert!(format!("{err:#}").contains("port in use"), "{err:#}");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_component_that_keeps_its_own_stop_latch_is_still_dropped() {
    use lameduck::Latch;
    use std::sync::atomic::{AtomicBool, Ordering};

    static DROPPED: AtomicBool = AtomicBool::new(false);
    struct Keeper(Mutex<Option<Latch>>);
    impl Component for Keeper {
        async fn start(&self, cx: &Context) -> Result<(), BoxError> {
            *self.0.lock().unwrap() = Some(cx.stop_signal());
            Ok(())
        }
    }
    impl Drop for Keeper {
        fn drop(&mut self) {
            DROPPED.store(true, Ordering::SeqCst);
        }
    }
    let lc = Lifecycle::builder()
        .component("keeper", Keeper(Mutex::new(None)))
        .build()
        .unwrap();
    let h = lc.handle();
    std::thread::spawn(move || {
        futures::executor::block_on(h.ready());
        h.request_shutdown(None);
    });
    lc.run_blocking().unwrap();
    assert!(
        DROPPED.load(Ordering::SeqCst),
        "the component outlived its lifecycle"
    );
}
