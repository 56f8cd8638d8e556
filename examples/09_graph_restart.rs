//! A dependency graph with a flaky part: `db` and `cache` start together,
//! `queue` once `db` is ready, `api` once both `cache` and `queue` are.
//! `queue`'s `run` fails twice; under its restart policy it is stopped,
//! started and readied again each time while `api` keeps serving, then
//! recovers. The timeline shows it, then the report counts the restarts
//! and keeps each failure.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example 09_graph_restart
//! ```
//!
//! It ends by itself in well under a second.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use lameduck::{
    Backoff, BoxError, Component, ComponentOptions, Context, Lifecycle, Readiness, Restart,
};

/// Prints what a part does, stamped from the start of the program.
fn say(t0: Instant, cx: &Context, what: &str) {
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    println!("{ms:>6.1} ms  {:<6} {what}", cx.name());
}

/// A part that takes `warmup` to be ready, then serves until stopped.
struct Part {
    t0: Instant,
    warmup: Duration,
}

impl Component for Part {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        say(self.t0, cx, "start");
        Ok(())
    }

    async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
        futures_timer::Delay::new(self.warmup).await;
        say(self.t0, cx, "ready");
        Ok(true)
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        cx.stop_signal().await;
        Ok(())
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        say(self.t0, cx, "stop");
        Ok(())
    }
}

/// A queue consumer whose connection drops twice shortly after it starts.
struct Queue {
    t0: Instant,
    runs: AtomicU32,
}

impl Component for Queue {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        say(self.t0, cx, "start (connect)");
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= 2 {
            futures_timer::Delay::new(Duration::from_millis(30)).await;
            say(self.t0, cx, &format!("connection lost (run {n} fails)"));
            return Err("connection reset by peer".into());
        }
        say(self.t0, cx, &format!("consuming (run {n})"));
        cx.stop_signal().await;
        Ok(())
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        say(self.t0, cx, "stop");
        Ok(())
    }
}

fn main() {
    let t0 = Instant::now();
    let part = |ms| Part {
        t0,
        warmup: Duration::from_millis(ms),
    };
    let restart = Restart::on_failure()
        .limit(5, Duration::from_secs(60))
        .backoff(
            Backoff::exponential(Duration::from_millis(20), Duration::from_secs(1)).jitter(0.5),
        );
    let lifecycle = Lifecycle::builder()
        .component_with("db", part(20), ComponentOptions::new().depends_on([]))
        .component_with("cache", part(10), ComponentOptions::new().depends_on([]))
        .component_with(
            "queue",
            Queue {
                t0,
                runs: AtomicU32::new(0),
            },
            ComponentOptions::new()
                .depends_on(["db"])
                .restart(restart)
                .readiness(Readiness::new()),
        )
        .component_with(
            "api",
            part(5),
            ComponentOptions::new().depends_on(["cache", "queue"]),
        )
        .build()
        .expect("a valid graph");
    let handle = lifecycle.handle();

    let watcher = async {
        handle.ready().await;
        println!(
            "{:>6.1} ms  every component is ready",
            t0.elapsed().as_secs_f64() * 1e3
        );
        // Serving throughout; stop once `queue` has recovered.
        loop {
            let recovered = handle
                .report()
                .component("queue")
                .is_some_and(|c| c.restarts() == 2);
            if recovered && handle.is_ready() {
                break;
            }
            futures_timer::Delay::new(Duration::from_millis(5)).await;
        }
        println!(
            "{:>6.1} ms  `queue` recovered: stopping",
            t0.elapsed().as_secs_f64() * 1e3
        );
        handle.request_shutdown(None);
    };
    let (report, ()) = futures::executor::block_on(futures::future::join(lifecycle.run(), watcher));
    let report = report.expect("a clean run: recovered failures are no errors");

    println!();
    println!("{report}");
    // The table notes the latest failure; the record keeps each one.
    let queue = report.component("queue").expect("registered");
    println!(
        "the {} failures `queue` was restarted after:",
        queue.restarts()
    );
    for failure in queue.failures() {
        println!("  at {:.1?}: {}", failure.at, failure.error);
    }
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 09_graph_restart | head -1`) it prints nothing more
/// instead of panicking.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        match writeln!(std::io::stdout(), $($arg)*) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            written => written.expect("printing to stdout"),
        }
    }};
}
use println;
