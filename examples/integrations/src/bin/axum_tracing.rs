//! A newcomer's axum service with tracing, on lameduck: one route, the
//! Kubernetes probes (every probe and per-check path) in one call, a
//! one-second lame duck on SIGTERM during which keep-alive clients are told
//! to reconnect elsewhere, then a graceful stop and an exit code.
//!
//! `tracing_subscriber::fmt().init()` also forwards lameduck's `log`
//! records to tracing (with `set_global_default` instead, add
//! `tracing_log::LogTracer::init()`).
//!
//! ```text
//! ADDR=127.0.0.1:3000 cargo run -p lameduck-integrations --bin axum_tracing
//! curl localhost:3000/readyz?verbose; kill -TERM <pid>
//! ```
//!
//! `axum_tracing_tgs` is the same service on tokio-graceful-shutdown.

use std::time::Duration;

use axum::{Router, routing::get};
use lameduck::{BoxError, Lifecycle, Signals, component, tower::LameDuckLayer};

#[path = "../quiet_stdout.rs"]
mod quiet_stdout;
use quiet_stdout::Stdout;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt().with_writer(|| Stdout).init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(10))
        .signals(Signals::new())
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .expect("valid configuration");
    let handle = lifecycle.handle();
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(LameDuckLayer::new(&handle))
        .fallback_service(handle.probes().service());
    let http = component::start_run(
        |_cx| async move { Ok::<_, BoxError>(tokio::net::TcpListener::bind(addr).await?) },
        |listener, cx| async move {
            tracing::info!(addr = %listener.local_addr()?, "serving");
            axum::serve(listener, app)
                .with_graceful_shutdown(cx.stop_signal())
                .await?;
            Ok(())
        },
    );
    handle
        .add_component("http", http)
        .expect("not stopping yet");
    let result = lifecycle.run().await;
    if let Err(e) = &result {
        tracing::error!("{e:#}");
    }
    lameduck::exit_code(&result)
}
