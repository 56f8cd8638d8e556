//! lameduck with tonic: the standard gRPC health service
//! (`grpc.health.v1.Health`, through tonic-health) reports `NOT_SERVING`
//! from the moment shutdown begins — the gRPC form of a failing readiness
//! probe — while the server keeps serving through the lame duck; then the
//! server stops gracefully in its turn.
//!
//! ```text
//! ADDR=127.0.0.1:50051 cargo run -p lameduck-integrations --bin tonic_health
//! ADDR=127.0.0.1:50051 cargo run -p lameduck-integrations --bin grpc_health_check
//! kill -TERM <pid>   # within a second: grpc_health_check prints NOT_SERVING
//! ```

use std::time::Duration;

use lameduck::{BoxError, Lifecycle, Signals, component};
use tonic_health::ServingStatus;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(10))
        .signals(Signals::new())
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build()
        .expect("valid configuration");
    let grpc = component::start_run(
        |_cx| async move { Ok::<_, BoxError>(tokio::net::TcpListener::bind(addr).await?) },
        |listener, cx| async move {
            let (reporter, health) = tonic_health::server::health_reporter();
            // "" is the whole server, as Kubernetes' gRPC probe asks by default.
            reporter
                .set_service_status("", ServingStatus::Serving)
                .await;
            let shutdown = cx.shutdown_signal();
            tokio::spawn(async move {
                shutdown.await; // the start of the lame duck, not our turn to stop
                reporter
                    .set_service_status("", ServingStatus::NotServing)
                    .await;
            });
            println!("serving gRPC on {}", listener.local_addr()?);
            let incoming = tokio_stream_incoming(listener);
            tonic::transport::Server::builder()
                .add_service(health)
                .serve_with_incoming_shutdown(incoming, cx.stop_signal())
                .await?;
            Ok(())
        },
    );
    lifecycle
        .handle()
        .add_component("grpc", grpc)
        .expect("not stopping yet");
    let result = lifecycle.run().await;
    if let Err(e) = &result {
        eprintln!("{e:#}");
    }
    lameduck::exit_code(&result)
}

/// The accepted connections of `listener`, as tonic takes them.
fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let conn = listener.accept().await.map(|(stream, _)| stream);
        Some((conn, listener))
    })
}
