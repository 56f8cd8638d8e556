//! lameduck with actix-web: the probes served through the framework-agnostic
//! `Probes::respond` (actix-web has its own `http` types, so
//! `respond_http` and the tower service do not apply), a lame duck during
//! which keep-alive clients are told to close, and a graceful stop driven by
//! the lifecycle.
//!
//! **`HttpServer::disable_signals()` is required.** Without it actix-web
//! installs its own SIGINT/SIGTERM handlers and stops accepting the moment
//! SIGTERM arrives — while lameduck is still in its lame duck, telling load
//! balancers to move away — and the process still reports a clean exit.
//! With it, lameduck owns the signals and stops the server in its turn,
//! through `ServerHandle::stop(true)`.
//!
//! ```text
//! ADDR=127.0.0.1:3001 cargo run -p lameduck-integrations --bin actix
//! curl localhost:3001/readyz/ping; kill -TERM <pid>
//! ```

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::http::{ConnectionType, StatusCode};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use lameduck::component::Handoff;
use lameduck::{BoxError, Component, Context, Handle, Lifecycle, ProbeRequest, Probes, Signals};

/// Any path the application does not route: the probes answer it (`404`
/// for what is not a probe).
async fn probes(req: HttpRequest, probes: web::Data<Probes>) -> HttpResponse {
    let accept = req.headers().get("accept").and_then(|v| v.to_str().ok());
    let request = ProbeRequest::new(req.method().as_str(), req.path())
        .query(req.query_string())
        .accept(accept.unwrap_or(""));
    let (status, headers, body) = probes.respond(request).await.into_parts();
    let mut response = HttpResponse::build(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in headers {
        response.insert_header((name, value));
    }
    response.body(body)
}

struct Http {
    addr: String,
    /// What `addr` bound to: the port the system chose for port 0.
    bound: OnceLock<Vec<SocketAddr>>,
    lifecycle: Handle,
    server: Handoff<Server>,
    stop: OnceLock<ServerHandle>,
}

impl Component for Http {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        let lifecycle = self.lifecycle.clone();
        let probes_data = web::Data::new(lifecycle.probes());
        let server = HttpServer::new(move || {
            let lifecycle = lifecycle.clone();
            App::new()
                .app_data(probes_data.clone())
                // Server-side lame duck: from the start of shutdown, every
                // response closes its keep-alive connection.
                .wrap_fn(move |req, srv| {
                    let response = srv.call(req);
                    let lifecycle = lifecycle.clone();
                    async move {
                        let mut response = response.await?;
                        if lifecycle.is_shutting_down() {
                            let head = response.response_mut().head_mut();
                            head.set_connection_type(ConnectionType::Close);
                        }
                        Ok(response)
                    }
                })
                .route("/", web::get().to(|| async { "hello\n" }))
                .default_service(web::to(probes))
        })
        .disable_signals() // lameduck owns SIGTERM: see the note at the top
        .workers(2)
        .shutdown_timeout(10)
        .bind(&self.addr)?;
        let _ = self.bound.set(server.addrs());
        let server = server.run();
        let _ = self.stop.set(server.handle());
        self.server.put(server);
        Ok(())
    }

    async fn run(&self, _cx: &Context) -> Result<(), BoxError> {
        let bound = self.bound.get().map(|addrs| {
            let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            addrs.join(", ")
        });
        println!("serving on {}", bound.as_deref().unwrap_or(&self.addr));
        self.server.take()?.await?;
        Ok(())
    }

    async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
        if let Some(server) = self.stop.get() {
            server.stop(true).await; // stop accepting, finish what is in flight
        }
        Ok(())
    }
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(15))
        .signals(Signals::new())
        // A task per component on actix's system thread.
        .spawner(|task| {
            actix_web::rt::spawn(task);
        })
        .build()
        .expect("valid configuration");
    let http = Http {
        addr,
        bound: OnceLock::new(),
        lifecycle: lifecycle.handle(),
        server: Handoff::new(),
        stop: OnceLock::new(),
    };
    lifecycle
        .handle()
        .add_component("http", http)
        .expect("not stopping yet");
    let result = lifecycle.run().await;
    if let Err(e) = &result {
        eprintln!("{e:#}");
    }
    lameduck::exit_code(&result)
}
