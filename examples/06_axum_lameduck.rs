//! The Go `lameduck` package's `Server` contract on a real HTTP server:
//! axum on tokio, shut down by SIGINT/SIGTERM.
//!
//! | Go `lameduck.Server` | here |
//! |---|---|
//! | `Serve()` blocks while serving | [`Component::run`]: `axum::serve(…).with_graceful_shutdown(cx.stop_signal())` |
//! | `Shutdown(ctx)`: stop accepting, finish in-flight requests, bounded by the period | the component's turn in the drain: its stop signal fires, axum stops accepting and waits for open requests; [`Component::stop`] + that wait share the `stop_timeout` budget (the period) |
//! | `Close()` once the period expired | [`Component::close`], then the `run` future is dropped; connections still open are dropped when the runtime shuts down right after |
//! | the error says whether the period expired | `run` returns a [`TimedOut`](lameduck::ErrorKind::TimedOut) error in step `stop` naming `http` and the budget; a clean drain returns `Ok` |
//! | lame duck on SIGINT/SIGTERM | `LifecycleBuilder::lame_duck` + `signals`: `/readyz` answers 503 while `/` still serves |
//!
//! Run it, then press Ctrl-C (twice to force):
//!
//! ```text
//! cargo run --example 06_axum_lameduck -- --lame-duck-ms 2000 --period-ms 3000
//! curl http://127.0.0.1:<port>/slow/2500   # in flight across the shutdown: still 200
//! ```
//!
//! Options: `--port N` (default 0: any free port), `--lame-duck-ms N`
//! (default 1000), `--period-ms N` (the graceful period, default 3000, the
//! Go package's default).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use lameduck::{BoxError, Component, ComponentOptions, Context, Handle, Lifecycle, Signals, Step};

/// An axum server as a lifecycle component.
struct AxumServer {
    port: u16,
    bound: Arc<AtomicU16>,
    listener: Mutex<Option<(tokio::net::TcpListener, Router)>>,
}

impl Component for AxumServer {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await?;
        self.bound
            .store(listener.local_addr()?.port(), Ordering::SeqCst);
        let app = Router::new()
            .route("/", get(|| async { "hello\n" }))
            .route("/slow/{ms}", get(slow))
            .route("/readyz", get(readyz))
            .with_state(cx.handle().clone());
        *self.listener.lock().unwrap() = Some((listener, app));
        Ok(())
    }

    /// Go's `Serve`.
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let (listener, app) = self.listener.lock().unwrap().take().ok_or("not started")?;
        axum::serve(listener, app)
            .with_graceful_shutdown(cx.stop_signal())
            .await?;
        println!("{}: every request answered", cx.name());
        Ok(())
    }

    /// Go's `Shutdown`: the stop signal already told axum to stop accepting
    /// and drain; this only reports the budget.
    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        let period = cx.remaining().unwrap_or_default();
        println!("{}: shutting down, {period:.1?} to finish", cx.name());
        Ok(())
    }

    /// Go's `Close`: the period expired.
    async fn close(&self, cx: &Context) -> Result<(), BoxError> {
        println!("{}: period expired, closing open connections", cx.name());
        Ok(())
    }
}

async fn slow(Path(ms): Path<u64>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "slow hello\n"
}

async fn readyz(State(handle): State<Handle>) -> (StatusCode, &'static str) {
    if handle.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

fn main() -> ExitCode {
    let (mut port, mut lame_duck, mut period) = (0u16, 1000u64, 3000u64);
    let mut args = std::env::args().skip(1);
    while let (Some(flag), Some(value)) = (args.next(), args.next()) {
        let n: u64 = value.parse().expect("a number");
        match flag.as_str() {
            "--port" => port = n as u16,
            "--lame-duck-ms" => lame_duck = n,
            "--period-ms" => period = n,
            _ => panic!("unknown option {flag}"),
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let bound = Arc::new(AtomicU16::new(0));
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_millis(lame_duck))
        .signals(Signals::new())
        .component_with(
            "http",
            AxumServer {
                port,
                bound: bound.clone(),
                listener: Mutex::new(None),
            },
            ComponentOptions::new().stop_timeout(Duration::from_millis(period)),
        )
        .build()
        .expect("a valid configuration");

    let handle = lifecycle.handle();
    runtime.spawn(async move {
        if handle.ready().await {
            let port = bound.load(Ordering::SeqCst);
            println!("ready: http=127.0.0.1:{port} pid={}", std::process::id());
        }
        handle.shutting_down().await;
        println!("lame duck: /readyz answers 503, requests still served");
    });

    let outcome = runtime.block_on(lifecycle.run());
    // Whatever the server did not finish in its period dies with the runtime.
    runtime.shutdown_timeout(Duration::ZERO);

    match &outcome {
        Ok(_) => println!("exit: clean shutdown, period expired: false"),
        Err(e) => {
            let expired = std::iter::once(e)
                .chain(e.others())
                .any(|e| e.is_timeout() && e.step() == Some(Step::Stop));
            println!("exit: {e}, period expired: {expired}");
        }
    }
    lameduck::exit_code(&outcome)
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 06_axum_lameduck | head -1`) it prints nothing more
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
