//! A gRPC health client for the `tonic_health` example: asks
//! `grpc.health.v1.Health/Check` for the whole server and prints the status
//! (`SERVING`, `NOT_SERVING`); exits 1 if it cannot ask.
//!
//! ```text
//! ADDR=127.0.0.1:50051 cargo run -p lameduck-integrations --bin grpc_health_check
//! ```

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let ask = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let request = HealthCheckRequest {
            service: String::new(),
        };
        let status = HealthClient::new(channel).check(request).await?;
        Ok::<_, Box<dyn std::error::Error>>(status.into_inner().status().as_str_name())
    };
    match ask.await {
        Ok(status) => {
            println!("{status}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("health check failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
