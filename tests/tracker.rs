//! `Tracker`: request and task guards, `track`, and `wait` with a budget,
//! alone and from a component's `stop`, on several runtimes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use lameduck::{BoxError, Component, ComponentOptions, Context, Lifecycle, Tracker};

const GENEROUS: Duration = Duration::from_secs(5);

#[test]
fn an_idle_tracker_is_waited_at_once_even_with_no_budget() {
    let tracker = Tracker::new();
    assert!(tracker.is_idle());
    block_on(tracker.wait(Duration::ZERO)).unwrap();
    block_on(tracker.wait(Duration::MAX)).unwrap();
}

#[test]
fn guards_count_until_dropped() {
    let tracker = Tracker::new();
    let r1 = tracker.request();
    let r2 = tracker.request();
    let t1 = tracker.task();
    assert_eq!((tracker.requests(), tracker.tasks()), (2, 1));
    assert!(!tracker.is_idle());
    assert_eq!(format!("{tracker:?}"), "Tracker { requests: 2, tasks: 1 }");
    drop(r1);
    drop(t1);
    assert_eq!((tracker.requests(), tracker.tasks()), (1, 0));
    let clone = tracker.clone();
    drop(r2);
    assert!(clone.is_idle(), "clones share the counts");
}

#[test]
fn wait_resolves_when_the_last_guard_drops() {
    let tracker = Tracker::new();
    let request = tracker.request();
    let task = tracker.task();
    let t0 = Instant::now();
    let dropper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        drop(request);
        thread::sleep(Duration::from_millis(30));
        drop(task);
    });
    block_on(tracker.wait(GENEROUS)).unwrap();
    let took = t0.elapsed();
    dropper.join().unwrap();
    assert!(
        took >= Duration::from_millis(55),
        "waited for both: {took:?}"
    );
    assert!(took < GENEROUS, "{took:?}");
}

#[test]
fn wait_fails_with_what_is_outstanding_when_the_budget_runs_out() {
    let tracker = Tracker::new();
    let _request = tracker.request();
    let _tasks = [tracker.task(), tracker.task()];
    let t0 = Instant::now();
    let out = block_on(tracker.wait(Duration::from_millis(50))).unwrap_err();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < GENEROUS,
        "{took:?}"
    );
    assert_eq!((out.requests(), out.tasks()), (1, 2));
    assert_eq!(out.budget(), Duration::from_millis(50));
    assert_eq!(
        out.to_string(),
        "1 request(s) and 2 task(s) still in flight after 50ms"
    );
    let boxed: BoxError = out.into();
    assert!(boxed.to_string().contains("still in flight"));
}

#[test]
fn a_zero_budget_checks_once() {
    let tracker = Tracker::new();
    let _request = tracker.request();
    let t0 = Instant::now();
    let out = block_on(tracker.wait(Duration::ZERO)).unwrap_err();
    assert!(t0.elapsed() < GENEROUS);
    assert_eq!(out.requests(), 1);
}

#[test]
fn an_unbounded_wait_has_no_deadline_and_does_not_panic() {
    let tracker = Tracker::new();
    let task = tracker.task();
    let dropper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        drop(task);
    });
    block_on(tracker.wait(Duration::MAX)).unwrap();
    dropper.join().unwrap();
}

#[test]
fn work_that_starts_again_makes_a_new_wait_pend() {
    let tracker = Tracker::new();
    drop(tracker.request());
    block_on(tracker.wait(Duration::ZERO)).unwrap();
    let _again = tracker.request();
    assert!(block_on(tracker.wait(Duration::from_millis(10))).is_err());
}

#[test]
fn a_tracked_future_counts_until_it_completes_or_is_dropped() {
    let tracker = Tracker::new();
    let done = tracker.track(async { 7 });
    let never = tracker.track(futures::future::pending::<()>());
    assert_eq!(tracker.tasks(), 2);
    assert_eq!(block_on(done), 7);
    assert_eq!(tracker.tasks(), 1);
    drop(never);
    assert!(tracker.is_idle());
}

#[test]
fn guards_from_many_threads_never_lose_a_wakeup() {
    let tracker = Tracker::new();
    for round in 0..50 {
        let workers: Vec<_> = (0..4)
            .map(|i| {
                let guard = tracker.request();
                let tracker = tracker.clone();
                thread::spawn(move || {
                    for _ in 0..(round % 7) {
                        drop(tracker.task());
                    }
                    if i % 2 == 0 {
                        thread::yield_now();
                    }
                    drop(guard);
                })
            })
            .collect();
        block_on(tracker.wait(GENEROUS)).expect("every guard dropped");
        for w in workers {
            w.join().unwrap();
        }
        assert!(tracker.is_idle());
    }
}

/// A component that serves "requests" counted by its tracker and, in
/// `stop`, waits for the ones in flight within its stop budget.
struct Server {
    tracker: Tracker,
    finished: Arc<AtomicBool>,
    request_takes: Duration,
}

impl Component for Server {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        // One request arrives just before this component's turn to stop.
        let guard = self.tracker.request();
        let finished = self.finished.clone();
        let takes = self.request_takes;
        thread::spawn(move || {
            thread::sleep(takes);
            finished.store(true, Ordering::SeqCst);
            drop(guard);
        });
        cx.stop_signal().await;
        Ok(())
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        // As documented: a tenth of the budget left for the tracker's error.
        let budget = cx.remaining().map_or(Duration::MAX, |r| r - r / 10);
        self.tracker.wait(budget).await?;
        Ok(())
    }
}

fn run_server(
    request_takes: Duration,
    stop_timeout: Duration,
) -> (Result<(), lameduck::Error>, bool) {
    let finished = Arc::new(AtomicBool::new(false));
    let lifecycle = Lifecycle::builder()
        .component_with(
            "http",
            Server {
                tracker: Tracker::new(),
                finished: finished.clone(),
                request_takes,
            },
            ComponentOptions::new().stop_timeout(stop_timeout),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let stopper = thread::spawn(move || {
        block_on(handle.ready());
        handle.request_shutdown(None);
    });
    let result = block_on(lifecycle.run()).map(|_| ());
    stopper.join().unwrap();
    (result, finished.load(Ordering::SeqCst))
}

#[test]
fn stop_waits_for_the_request_in_flight() {
    let t0 = Instant::now();
    let (result, finished) = run_server(Duration::from_millis(100), GENEROUS);
    result.unwrap();
    assert!(finished, "run returned only after the request finished");
    assert!(t0.elapsed() < GENEROUS);
}

#[test]
fn stop_reports_what_is_in_flight_when_its_budget_runs_out() {
    let (result, finished) = run_server(Duration::from_secs(3), Duration::from_millis(400));
    let err = result.unwrap_err();
    assert!(!finished);
    assert_eq!(err.component(), Some("http"));
    let all = format!("{err:#}");
    assert!(
        all.contains("1 request(s) and 0 task(s) still in flight"),
        "{all}"
    );
}

#[test]
fn tracked_tasks_spawned_on_tokio_smol_and_async_std_are_waited_for() {
    async fn job(flag: Arc<AtomicBool>) {
        futures_timer::Delay::new(Duration::from_millis(30)).await;
        flag.store(true, Ordering::SeqCst);
    }
    let tracker = Tracker::new();
    let flags: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(tracker.track(job(flags[0].clone())));
    smol::spawn(tracker.track(job(flags[1].clone()))).detach();
    async_std::task::spawn(tracker.track(job(flags[2].clone())));
    assert_eq!(tracker.tasks(), 3);

    block_on(tracker.wait(GENEROUS)).unwrap();
    for flag in &flags {
        assert!(flag.load(Ordering::SeqCst));
    }
}
