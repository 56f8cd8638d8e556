//! A complete service: a public HTTP server (axum on tokio), the admin
//! server with the Kubernetes probes on loopback, a background worker, and a
//! queue drainer that flushes what the requests left behind.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example 03_service
//! ```
//!
//! With no arguments it runs a whole lifecycle by itself and exits 0 in
//! about three seconds: it launches (the probes fail until every component
//! is ready), serves a few requests of its own, receives a simulated
//! SIGTERM, goes lame duck (readiness fails at once while the public port
//! keeps serving), drains in reverse order, flushes the queue, and prints
//! the timeline.
//!
//! ```text
//! cargo run --example 03_service -- --serve
//! ```
//!
//! serves until Ctrl-C (a second Ctrl-C forces the shutdown). Then try
//! `curl -i localhost:9901/readyz?verbose` and `curl localhost:9901/debug/lifecycle`.
//!
//! Ports: `--port N` or `PORT` for the public server (default 8080 with
//! `--serve`, any free port otherwise), `--admin-port N` or `ADMIN_PORT` for
//! the admin server (default 9901 with `--serve`, any free port otherwise).
//! Port 0 picks a free port.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use lameduck::admin::AdminServer;
use lameduck::{
    BoxError, CheckOptions, Component, ComponentOptions, Context, Drainer, Health, HealthChecker,
    Lifecycle, Probe,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Events the requests queue up; the drainer flushes them on the way out.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<Vec<String>>>);

/// The public API.
struct Public {
    listener: Mutex<Option<std::net::TcpListener>>,
    queue: Queue,
}

impl Component for Public {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let std = self.listener.lock().unwrap().take().ok_or("run twice")?;
        std.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std)?;
        let app = axum::Router::new()
            .route("/", get(|| async { "hello from lameduck\n" }))
            .route("/order", get(order))
            .layer(axum::middleware::from_fn(request_timeout))
            .with_state(self.queue.clone());
        println!(
            "{}: serving on http://{}",
            cx.name(),
            listener.local_addr()?
        );
        // On our turn to stop: stop accepting, finish what is in flight. The
        // lifecycle bounds the wait with the stop timeout.
        axum::serve(listener, app)
            .with_graceful_shutdown(cx.stop_signal())
            .await?;
        println!("{}: in-flight requests finished", cx.name());
        Ok(())
    }
}

async fn order(State(queue): State<Queue>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.0.lock().unwrap().push("order placed".into());
    "order queued\n"
}

/// No request runs longer than 10 s: a slow client or a stuck handler
/// cannot hold a connection (and the drain) forever.
async fn request_timeout(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, StatusCode> {
    tokio::time::timeout(Duration::from_secs(10), next.run(req))
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)
}

/// Background work: ticks until its turn to stop, recording when it last
/// ticked (milliseconds since `epoch`).
struct Worker {
    epoch: Instant,
    last_tick: Arc<AtomicU64>,
}

impl Component for Worker {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let mut stop = cx.stop_signal();
        let mut ticks = 0u64;
        loop {
            ticks += 1;
            let now = self.epoch.elapsed().as_millis() as u64;
            self.last_tick.store(now, Ordering::Relaxed);
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        println!("{}: stopped after {ticks} ticks", cx.name());
        Ok(())
    }
}

/// The worker is healthy while it ticks.
struct WorkerAlive {
    epoch: Instant,
    last_tick: Arc<AtomicU64>,
}

impl HealthChecker for WorkerAlive {
    async fn check(&self) -> Health {
        let since =
            self.epoch.elapsed().as_millis() as u64 - self.last_tick.load(Ordering::Relaxed);
        match since {
            0..=500 => Health::Healthy,
            ms => Health::Degraded(format!("no tick for {ms} ms")),
        }
    }
}

/// A database pool that takes a moment to connect.
struct Database;

impl Component for Database {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("{}: connected", cx.name());
        Ok(())
    }
}

/// Flushes the queued events once every component has stopped.
struct QueueDrainer(Queue);

impl Drainer for QueueDrainer {
    async fn drain(&self, cx: &Context) -> Result<(), BoxError> {
        let events = std::mem::take(&mut *self.0.0.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
        println!("{}: flushed {} queued events", cx.name(), events.len());
        Ok(())
    }
}

struct Args {
    serve: bool,
    port: u16,
    admin_port: u16,
}

fn args() -> Result<Args, BoxError> {
    let mut argv = std::env::args().skip(1);
    let mut serve = false;
    let mut port = std::env::var("PORT").ok();
    let mut admin_port = std::env::var("ADMIN_PORT").ok();
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--serve" => serve = true,
            "--port" => port = argv.next(),
            "--admin-port" => admin_port = argv.next(),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let (default_port, default_admin) = if serve { (8080, 9901) } else { (0, 0) };
    Ok(Args {
        serve,
        port: port.map_or(Ok(default_port), |p| p.parse())?,
        admin_port: admin_port.map_or(Ok(default_admin), |p| p.parse())?,
    })
}

/// A tiny HTTP/1.1 client, enough for the demo's own requests.
async fn fetch(addr: SocketAddr, path: &str) -> String {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    match tokio::time::timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(r)) => {
            let status = r.get(9..12).unwrap_or("???").to_owned();
            let body = r.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
            format!("{status} {}", body.trim_end().replace('\n', "\n        "))
        }
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = args()?;
    let host = if args.serve { "0.0.0.0" } else { "127.0.0.1" };
    let public = std::net::TcpListener::bind((host, args.port))?;
    let public_addr: SocketAddr = ([127, 0, 0, 1], public.local_addr()?.port()).into();
    let admin = AdminServer::loopback(args.admin_port)?;
    let admin_addr = admin.local_addr();
    let queue = Queue::default();
    let epoch = Instant::now();
    let last_tick = Arc::new(AtomicU64::new(0));

    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_millis(if args.serve { 5000 } else { 600 }))
        .shutdown_timeout(Duration::from_secs(25))
        // First: its probes answer during the whole launch and drain.
        .component("admin", admin)
        .component("database", Database)
        .component(
            "worker",
            Worker {
                epoch,
                last_tick: last_tick.clone(),
            },
        )
        .component_with(
            "public",
            Public {
                listener: Mutex::new(Some(public)),
                queue: queue.clone(),
            },
            ComponentOptions::new().stop_timeout(Duration::from_secs(10)),
        )
        .drainer("queue", QueueDrainer(queue.clone()))
        .health_check_with(
            "worker",
            WorkerAlive { epoch, last_tick },
            CheckOptions::new()
                .probes([Probe::Liveness, Probe::Readiness])
                .critical(false),
        )
        .build()?;
    let handle = lifecycle.handle();
    println!("admin: probes on http://{admin_addr}/readyz?verbose");
    let run = tokio::spawn(lifecycle.run());

    if args.serve {
        println!("serving until Ctrl-C");
        tokio::signal::ctrl_c().await?;
        println!("\nCtrl-C: lame duck (Ctrl-C again to force)");
        handle.request_stop(None);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                handle.force_stop();
            }
        });
    } else {
        tokio::time::sleep(Duration::from_millis(50)).await;
        println!(
            "-- launching:  GET /readyz   {}",
            fetch(admin_addr, "/readyz").await
        );
        handle.ready().await;
        println!(
            "-- running:    GET /readyz?verbose\n        {}",
            fetch(admin_addr, "/readyz?verbose").await
        );
        for path in ["/", "/order", "/order"] {
            println!(
                "-- request:    GET {path:<10} {}",
                fetch(public_addr, path).await
            );
        }
        println!("-- simulated SIGTERM");
        handle.request_stop(None);
        println!(
            "-- lame duck:  GET /readyz   {}",
            fetch(admin_addr, "/readyz").await
        );
        println!(
            "-- lame duck:  GET /livez    {}",
            fetch(admin_addr, "/livez").await
        );
        println!(
            "-- lame duck:  GET /order    {}",
            fetch(public_addr, "/order").await
        );
    }

    let report = run.await??;
    println!("\n{report}");
    Ok(())
}
