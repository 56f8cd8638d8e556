//! Signals: a service that runs until SIGINT or SIGTERM, goes lame duck
//! (readiness fails, requests are still served), drains its components in
//! reverse order, flushes, runs its stop hooks, and exits with the mapped
//! code: 0 when clean, 130 when a second signal forced the shutdown.
//!
//! Run it, then press Ctrl-C (twice to force) or `kill -TERM <pid>`:
//!
//! ```text
//! cargo run --example 02_signals -- --lame-duck-ms 2000
//! curl http://127.0.0.1:<port>/readyz      # 200, then 503 in lame duck
//! curl http://127.0.0.1:<port>/slow?ms=1500
//! ```
//!
//! Options (each also read from the environment variable in brackets):
//!
//! * `--port N` [`PORT`]: the HTTP port on 127.0.0.1; 0 (default) picks one.
//! * `--lame-duck-ms N` [`LAME_DUCK_MS`]: the lame-duck period (default 1000).
//! * `--shutdown-timeout-ms N`: the bound on the whole shutdown (default 10000).
//! * `--db-stop-ms N`: how long the database takes to close (default 0).
//! * `--runtime tokio|smol|futures`: what drives the lifecycle (default futures).
//! * `--signals LIST`: the signals that stop it, replacing INT,TERM
//!   (for example `USR1` or `HUP,TERM`).
//!
//! The HTTP component is a tiny HTTP/1.1 server on std threads, so it works
//! under any runtime: `/` answers `ok`, `/slow?ms=N` answers after N ms,
//! `/readyz` answers 200 while the lifecycle is ready and 503 once shutdown
//! began.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lameduck::{BoxError, Component, Context, Handle, Lifecycle, SignalKind, Signals, drainer_fn};

/// Prints every line to stdout, so the phases read in order.
struct Logger(OnceLock<Instant>);

static LOGGER: Logger = Logger(OnceLock::new());

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let ms = self.0.get_or_init(Instant::now).elapsed().as_millis();
            println!("{ms:>6} ms [{}] {}", r.target(), r.args());
        }
    }
    fn flush(&self) {}
}

struct Options {
    port: u16,
    lame_duck: Duration,
    shutdown_timeout: Duration,
    db_stop: Duration,
    runtime: String,
    signals: Option<Vec<SignalKind>>,
}

fn parse() -> Result<Options, String> {
    let env_ms = |name: &str, default: u64| -> Result<u64, String> {
        std::env::var(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name}: not a number"))
        })
    };
    let mut o = Options {
        port: env_ms("PORT", 0)? as u16,
        lame_duck: Duration::from_millis(env_ms("LAME_DUCK_MS", 1000)?),
        shutdown_timeout: Duration::from_secs(10),
        db_stop: Duration::ZERO,
        runtime: "futures".into(),
        signals: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let ms = || -> Result<Duration, String> {
            value
                .parse()
                .map(Duration::from_millis)
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--port" => o.port = value.parse().map_err(|_| "--port: not a port")?,
            "--lame-duck-ms" => o.lame_duck = ms()?,
            "--shutdown-timeout-ms" => o.shutdown_timeout = ms()?,
            "--db-stop-ms" => o.db_stop = ms()?,
            "--runtime" => o.runtime = value,
            "--signals" => {
                let kinds = value
                    .split(',')
                    .map(signal_kind)
                    .collect::<Result<_, _>>()?;
                o.signals = Some(kinds);
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn signal_kind(name: &str) -> Result<SignalKind, String> {
    Ok(match name.trim_start_matches("SIG") {
        "INT" => SignalKind::interrupt(),
        "TERM" => SignalKind::terminate(),
        #[cfg(unix)]
        "HUP" => SignalKind::hangup(),
        #[cfg(unix)]
        "USR1" => SignalKind::user_defined1(),
        #[cfg(unix)]
        "USR2" => SignalKind::user_defined2(),
        _ => return Err(format!("unknown signal {name}")),
    })
}

/// A database pool that takes a while to close.
struct Database {
    stop_takes: Duration,
}

impl Component for Database {
    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        futures_timer::Delay::new(self.stop_takes).await;
        println!("drain: {} closed", cx.name());
        Ok(())
    }
}

/// A tiny HTTP server: an accept thread and a thread per connection.
struct Http {
    port: u16,
    bound: Arc<AtomicU16>,
    closing: Arc<AtomicBool>,
    acceptor_done: Arc<AtomicBool>,
    in_flight: Arc<AtomicUsize>,
}

impl Component for Http {
    async fn start(&self, cx: &Context) -> Result<(), BoxError> {
        let listener = TcpListener::bind(("127.0.0.1", self.port))?;
        listener.set_nonblocking(true)?;
        self.bound
            .store(listener.local_addr()?.port(), Ordering::SeqCst);
        let (closing, done) = (self.closing.clone(), self.acceptor_done.clone());
        let in_flight = self.in_flight.clone();
        let handle = cx.handle().clone();
        std::thread::spawn(move || {
            while !closing.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let (in_flight, handle) = (in_flight.clone(), handle.clone());
                        std::thread::spawn(move || {
                            let _ = serve(stream, &handle);
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener); // from here on, the port refuses connections
            done.store(true, Ordering::SeqCst);
        });
        Ok(())
    }

    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        cx.shutdown_signal().await;
        println!("lame duck: readiness fails, {} still serving", cx.name());
        cx.stop_signal().await;
        while !(self.acceptor_done.load(Ordering::SeqCst)
            && self.in_flight.load(Ordering::SeqCst) == 0)
        {
            futures_timer::Delay::new(Duration::from_millis(5)).await;
        }
        println!("drain: {} stopped, every request answered", cx.name());
        Ok(())
    }

    async fn stop(&self, cx: &Context) -> Result<(), BoxError> {
        self.closing.store(true, Ordering::SeqCst);
        let n = self.in_flight.load(Ordering::SeqCst);
        println!(
            "drain: {} stops accepting, {n} request(s) in flight",
            cx.name()
        );
        Ok(())
    }

    async fn close(&self, cx: &Context) -> Result<(), BoxError> {
        self.closing.store(true, Ordering::SeqCst);
        println!("close: {} abandons its requests", cx.name());
        Ok(())
    }
}

fn serve(stream: TcpStream, handle: &Handle) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let (status, body) = if path == "/readyz" {
        if handle.is_ready() {
            ("200 OK", "ok\n")
        } else {
            ("503 Service Unavailable", "shutting down\n")
        }
    } else if let Some(ms) = path.strip_prefix("/slow?ms=") {
        std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        ("200 OK", "slow ok\n")
    } else {
        ("200 OK", "ok\n")
    };
    let mut out = &stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn main() -> ExitCode {
    LOGGER.0.get_or_init(Instant::now);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("02_signals: {e}");
            return ExitCode::from(2);
        }
    };

    let signals = match o.signals {
        Some(kinds) => Signals::only(kinds),
        None => Signals::new(),
    };
    let bound = Arc::new(AtomicU16::new(0));
    let built = Lifecycle::builder()
        .lame_duck(o.lame_duck)
        .shutdown_timeout(o.shutdown_timeout)
        .signals(signals)
        .component(
            "database",
            Database {
                stop_takes: o.db_stop,
            },
        )
        .component(
            "http",
            Http {
                port: o.port,
                bound: bound.clone(),
                closing: Arc::default(),
                acceptor_done: Arc::default(),
                in_flight: Arc::default(),
            },
        )
        .drainer(
            "outbox",
            drainer_fn(|cx: Context| async move {
                println!("flush: {} sent", cx.name());
                Ok::<_, BoxError>(())
            }),
        )
        .stop_hook("logs", |cx| async move {
            println!("stop: {} flushed", cx.name());
            Ok::<_, BoxError>(())
        })
        .build();
    let lifecycle = match built {
        Ok(l) => l,
        Err(e) => {
            eprintln!("02_signals: {e}");
            return ExitCode::FAILURE;
        }
    };

    let handle = lifecycle.handle();
    let runtime = o.runtime.clone();
    std::thread::spawn(move || {
        if futures::executor::block_on(handle.ready()) {
            let port = bound.load(Ordering::SeqCst);
            let pid = std::process::id();
            println!("ready: http=127.0.0.1:{port} pid={pid} runtime={runtime}");
        }
    });

    let outcome = match o.runtime.as_str() {
        "futures" => lifecycle.run_blocking(),
        "smol" => smol::block_on(lifecycle.run()),
        "tokio" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(lifecycle.run()),
        other => {
            eprintln!("02_signals: unknown runtime {other}");
            return ExitCode::from(2);
        }
    };
    match &outcome {
        Ok(_) => println!("exit: clean shutdown"),
        Err(e) if e.is_forced() => println!("exit: forced: {e}"),
        Err(e) => println!("exit: error: {e}"),
    }
    lameduck::exit_code(&outcome)
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 02_signals | head -1`) it prints nothing more
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
