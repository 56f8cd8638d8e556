//! Quickstart: three components launched in order, one gated by a readiness
//! check that passes on its third attempt; a stop is requested after a
//! moment, they stop in reverse order, and the timeline is printed.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example 01_quickstart
//! ```
//!
//! It ends by itself in well under a second. Set `RUST_LOG=debug` to see
//! every step the library logs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lameduck::{Backoff, BoxError, Component, ComponentOptions, Context, Lifecycle, Readiness};

/// A database pool that needs a few tries before it answers.
struct Database {
    probes: AtomicU32,
}

impl Component for Database {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        println!("{}: connecting", cx.name());
        Ok(())
    }

    async fn ready(&self, cx: &Context) -> Result<bool, BoxError> {
        let n = self.probes.fetch_add(1, Ordering::SeqCst) + 1;
        println!("{}: readiness probe {n}", cx.name());
        Ok(n >= 3)
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        println!("{}: closing the pool", cx.name());
        Ok(())
    }
}

/// A cache warmed at start.
struct Cache;

impl Component for Cache {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        futures_timer::Delay::new(Duration::from_millis(20)).await;
        println!("{}: warmed", cx.name());
        Ok(())
    }
}

/// A server that serves until its turn to stop.
struct Server;

impl Component for Server {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        println!("{}: serving", cx.name());
        cx.stop_signal().await;
        println!("{}: finishing in-flight requests", cx.name());
        futures_timer::Delay::new(Duration::from_millis(30)).await;
        Ok(())
    }
}

fn main() -> Result<(), lameduck::Error> {
    let lifecycle = Lifecycle::builder()
        .shutdown_timeout(Duration::from_secs(5))
        .lame_duck(Duration::from_millis(100))
        .component_with(
            "database",
            Database {
                probes: AtomicU32::new(0),
            },
            ComponentOptions::new().readiness(
                Readiness::new()
                    .attempts(5)
                    .backoff(Backoff::constant(Duration::from_millis(25))),
            ),
        )
        .component("cache", Cache)
        .component("server", Server)
        .stop_hook("goodbye", |_cx| async {
            println!("stop hook: bye");
            Ok::<_, BoxError>(())
        })
        .build()?;

    let handle = lifecycle.handle();
    std::thread::spawn(move || {
        futures::executor::block_on(handle.ready());
        println!("-- every component is ready; requesting a stop in 200 ms");
        std::thread::sleep(Duration::from_millis(200));
        handle.request_shutdown(None);
    });

    let report = lifecycle.run_blocking()?;
    println!("\n{report}");
    Ok(())
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 01_quickstart | head -1`) it prints nothing more
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
