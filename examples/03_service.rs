//! A complete service: a public HTTP server (axum on hyper and tokio), the
//! admin server with the Kubernetes probes on loopback, a background worker,
//! and a queue drainer that flushes what the requests left behind.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example 03_service
//! ```
//!
//! With no arguments it runs a whole lifecycle by itself and exits 0 in
//! about a second: it launches (the probes fail until every component is
//! ready), serves a few requests of its own, asks its handle to stop (what
//! the first SIGTERM does), goes lame duck (readiness fails at once while
//! the public port keeps serving), drains in reverse order, flushes the
//! queue, and prints the timeline.
//!
//! ```text
//! cargo run --example 03_service -- --serve
//! ```
//!
//! serves until SIGINT or SIGTERM (Ctrl-C, `kill`, `docker stop`, systemd,
//! Kubernetes), the path production takes:
//!
//! 1. the log says `shutting down: received SIGTERM`; the lame-duck
//!    period begins (5 s): `/readyz` answers 500 so load balancers stop
//!    sending traffic, while the public port keeps serving;
//! 2. drain: the public server stops accepting, finishes the requests in
//!    flight (at most 10 s), then the worker and the database stop;
//! 3. flush: the queue drainer sends what the requests queued;
//! 4. the timeline is printed and the process exits 0.
//!
//! A second signal forces the shutdown: the remaining waits are skipped and
//! the process exits 130. Any error exits 1. Meanwhile try
//! `curl -i localhost:9901/readyz?verbose` and
//! `curl localhost:9901/debug/lifecycle`.
//!
//! The public server has the timeouts a service facing the internet needs:
//! a client must send a request's whole header within 5 s (a slow or idle
//! client is disconnected, whether it trickles bytes or sends nothing, and
//! an idle keep-alive connection is closed), a handler must answer within
//! 10 s (503 otherwise), and headers are limited to 64 KiB.
//!
//! Options (each also read from the environment variable in brackets):
//!
//! * `--host ADDR` [`HOST`]: the public server's address (default 0.0.0.0
//!   with `--serve`, 127.0.0.1 otherwise). The admin server is always on
//!   loopback.
//! * `--port N` [`PORT`]: the public port (default 8080 with `--serve`, any
//!   free port otherwise; 0 picks one).
//! * `--admin-port N` [`ADMIN_PORT`]: the admin port (default 9901 with
//!   `--serve`, any free port otherwise; 0 picks one).
//! * `--lame-duck-ms N`: the lame-duck period (default 5000 with `--serve`,
//!   600 otherwise).
//! * `--header-read-timeout-ms N`: the header-read timeout (default 5000).
//!
//! `GET /order?ms=N` takes N ms (at most 5000) to place an order: a slow
//! request to watch the drain wait for.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use lameduck::admin::AdminServer;
use lameduck::{
    BoxError, CheckOptions, Component, ComponentOptions, Context, Drainer, Health, HealthChecker,
    Lifecycle, Probe, Signals,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Events the requests queue up; the drainer flushes them on the way out.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<Vec<String>>>);

/// The public API.
struct Public {
    listener: Mutex<Option<std::net::TcpListener>>,
    queue: Queue,
    timeouts: Timeouts,
}

/// What a public server sets against slow or stuck clients.
#[derive(Clone, Copy)]
struct Timeouts {
    /// A client must send a request's whole header within this, from the
    /// moment the server waits for it: slowloris clients, silent ones and
    /// idle keep-alive connections are all cut off.
    header_read: Duration,
    /// A handler must answer within this.
    request: Duration,
}

impl Component for Public {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let std = self.listener.lock().unwrap().take().ok_or("run twice")?;
        std.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std)?;
        let request = self.timeouts.request;
        let app = axum::Router::new()
            .route("/", get(|| async { "hello from lameduck\n" }))
            .route("/order", get(order))
            .layer(axum::middleware::from_fn(move |req, next| {
                request_timeout(request, req, next)
            }))
            .with_state(self.queue.clone());
        // axum::serve has no timeouts: hyper's connection builder does.
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.timeouts.header_read)
            .max_buf_size(64 * 1024);
        println!(
            "{}: serving on http://{}",
            cx.name(),
            listener.local_addr()?
        );
        let graceful = GracefulShutdown::new();
        // Connections live in this set: if the lifecycle gives up on the
        // drain and drops this future, they are closed with it.
        let mut connections = tokio::task::JoinSet::new();
        let mut stop = cx.stop_signal();
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => break,
                Some(_) = connections.join_next() => {}
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        // Out of descriptors, or a connection reset before
                        // it was accepted: keep serving the others.
                        Err(e) => {
                            eprintln!("{}: accept: {e}", cx.name());
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let service = TowerToHyperService::new(app.clone());
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    connections.spawn(graceful.watch(conn));
                }
            }
        }
        // Our turn to stop: refuse new connections, let each open one finish
        // its request in flight, close the idle ones. The lifecycle bounds
        // the wait with the stop timeout.
        drop(listener);
        graceful.shutdown().await;
        println!("{}: in-flight requests finished", cx.name());
        Ok(())
    }
}

/// Places an order; `?ms=N` makes it take N ms (at most 5000).
async fn order(State(queue): State<Queue>, uri: Uri) -> &'static str {
    let ms = uri
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(20u64)
        .min(5000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    queue.0.lock().unwrap().push("order placed".into());
    "order queued\n"
}

/// A slow handler or a stuck one cannot hold a connection (and the drain)
/// forever.
async fn request_timeout(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, StatusCode> {
    tokio::time::timeout(limit, next.run(req))
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

/// Prints the library's log lines, so the shutdown reads in order.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            println!("[{}] {}", r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

struct Args {
    serve: bool,
    host: String,
    port: u16,
    admin_port: u16,
    lame_duck: Duration,
    header_read: Duration,
}

fn args() -> Result<Args, BoxError> {
    let mut argv = std::env::args().skip(1);
    let mut serve = false;
    let mut host = std::env::var("HOST").ok();
    let mut port = std::env::var("PORT").ok();
    let mut admin_port = std::env::var("ADMIN_PORT").ok();
    let mut lame_duck = None;
    let mut header_read = None;
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--serve" => serve = true,
            "--host" => host = argv.next(),
            "--port" => port = argv.next(),
            "--admin-port" => admin_port = argv.next(),
            "--lame-duck-ms" => lame_duck = argv.next(),
            "--header-read-timeout-ms" => header_read = argv.next(),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let ms = |v: Option<String>, default: u64| -> Result<Duration, BoxError> {
        Ok(Duration::from_millis(v.map_or(Ok(default), |v| v.parse())?))
    };
    let (default_port, default_admin) = if serve { (8080, 9901) } else { (0, 0) };
    let default_host = if serve { "0.0.0.0" } else { "127.0.0.1" };
    Ok(Args {
        serve,
        host: host.unwrap_or_else(|| default_host.into()),
        port: port.map_or(Ok(default_port), |p| p.parse())?,
        admin_port: admin_port.map_or(Ok(default_admin), |p| p.parse())?,
        lame_duck: ms(lame_duck, if serve { 5000 } else { 600 })?,
        header_read: ms(header_read, 5000)?,
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
async fn main() -> ExitCode {
    let _ = log::set_logger(&Logger);
    log::set_max_level(log::LevelFilter::Info);
    let outcome = match args() {
        Ok(args) => service(args).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("03_service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn service(args: Args) -> Result<ExitCode, BoxError> {
    let public = std::net::TcpListener::bind((args.host.as_str(), args.port))?;
    let public_addr = public.local_addr()?;
    let admin = AdminServer::loopback(args.admin_port)?;
    let admin_addr = admin.local_addr();
    let queue = Queue::default();
    let epoch = Instant::now();
    let last_tick = Arc::new(AtomicU64::new(0));

    let lifecycle = Lifecycle::builder()
        .lame_duck(args.lame_duck)
        .shutdown_timeout(Duration::from_secs(25))
        // SIGINT and SIGTERM: the first starts the graceful shutdown, a
        // second one forces it.
        .signals(Signals::new())
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
                timeouts: Timeouts {
                    header_read: args.header_read,
                    request: Duration::from_secs(10),
                },
            },
            // The bound on finishing the requests in flight.
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
        if handle.ready().await {
            println!("ready: public=http://{public_addr} admin=http://{admin_addr}");
            println!("serving until SIGINT or SIGTERM (a second one forces the shutdown)");
        }
    } else {
        // The demo talks to its own public port on loopback.
        let public_addr = SocketAddr::from(([127, 0, 0, 1], public_addr.port()));
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
        println!("-- request_shutdown: what the first SIGTERM does");
        handle.request_shutdown(None);
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

    let outcome = run.await?;
    match &outcome {
        Ok(report) => println!("\n{report}"),
        Err(e) => eprintln!("03_service: {e:#}"),
    }
    Ok(lameduck::exit_code(&outcome))
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 03_service | head -1`) it prints nothing more
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
