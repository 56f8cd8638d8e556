//! The probes mounted in an axum router (tokio) with one call, through the
//! `tower` feature: `/livez`, `/readyz`, `/startupz`, `/healthz` and their
//! per-check paths served next to the application's own routes.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example 05_axum_probes --features tower
//! ```
//!
//! It starts, asks its own probes a few questions, stops, and exits 0.

use std::time::Duration;

use axum::routing::get;
use lameduck::{BoxError, CheckOptions, Health, Lifecycle, check_fn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn fetch(addr: std::net::SocketAddr, path: &str) -> Result<String, BoxError> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    let status = out.get(9..12).unwrap_or("???").to_owned();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok(format!("{status}\n{body}"))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let lifecycle = Lifecycle::builder()
        // Readiness fails for this long before anything stops, so that load
        // balancers stop routing here first.
        .lame_duck(Duration::from_millis(300))
        .health_check_with(
            "database",
            check_fn(|| async { Health::Healthy }),
            CheckOptions::new().timeout(Duration::from_millis(200)),
        )
        .health_check(
            "cache",
            check_fn(|| async { Health::Degraded("warming up".into()) }),
        )
        .build()?;
    let handle = lifecycle.handle();
    let probes = handle.probes().show_reasons(true);

    let app = axum::Router::new()
        .route("/", get(|| async { "hello\n" }))
        // Every probe and per-check path; any other path gets the probes' 404.
        .fallback_service(probes.service());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stopped = handle.stopped();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
    });

    println!(
        "before launch, GET /readyz:\n{}",
        fetch(addr, "/readyz").await?
    );
    let run = tokio::spawn(lifecycle.run());
    handle.ready().await;
    println!(
        "running, GET /readyz?verbose:\n{}",
        fetch(addr, "/readyz?verbose").await?
    );
    println!(
        "GET /readyz/database:\n{}\n",
        fetch(addr, "/readyz/database").await?
    );
    handle.request_shutdown(None);
    println!("stopping, GET /readyz:\n{}", fetch(addr, "/readyz").await?);
    run.await??;
    server.await??;
    Ok(())
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 05_axum_probes | head -1`) it prints nothing more
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
