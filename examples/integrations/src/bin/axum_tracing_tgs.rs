//! The service of `axum_tracing`, written on tokio-graceful-shutdown for
//! comparison: one route, `/livez` and `/readyz` (readiness fails once
//! shutdown begins), a one-second lame duck on SIGTERM, a graceful stop.
//! What lameduck adds on top is absent here: per-check probe paths and the
//! Kubernetes format, readiness gated on the launch, `Connection: close`
//! during the lame duck, exit codes.
//!
//! ```text
//! ADDR=127.0.0.1:3000 cargo run -p lameduck-integrations --bin axum_tracing_tgs
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::{Router, http::StatusCode, routing::get};
use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

#[path = "../quiet_stdout.rs"]
mod quiet_stdout;
use quiet_stdout::Stdout;

async fn http(s: &mut SubsystemHandle, addr: String) -> Result<(), std::io::Error> {
    let stopping = Arc::new(AtomicBool::new(false));
    let readiness = stopping.clone();
    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || async move {
                match readiness.load(Ordering::SeqCst) {
                    true => (StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
                    false => (StatusCode::OK, "ok"),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving");
    let shutdown = s.create_cancellation_token();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            stopping.store(true, Ordering::SeqCst); // lame duck: still serving
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_writer(|| Stdout).init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    Toplevel::new(async move |s: &mut SubsystemHandle| {
        s.start(SubsystemBuilder::new(
            "http",
            async move |s: &mut SubsystemHandle| http(s, addr).await,
        ));
    })
    .catch_signals()
    .handle_shutdown_requests(Duration::from_secs(10))
    .await
    .map_err(Into::into)
}
