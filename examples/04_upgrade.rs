//! Zero-downtime upgrades: an HTTP server that answers with its PID; SIGHUP
//! starts a new process that inherits the listening socket, and the old one
//! drains and exits.
//!
//! ```text
//! cargo run --example 04_upgrade --features upgrade
//! curl localhost:8080/          # pid=1234
//! kill -HUP 1234
//! curl localhost:8080/          # pid=1240
//! ```
//!
//! Paths: `/` answers the PID, `/slow` the same after 1.5 s, `/fds` the
//! number of open descriptors, `/sock` the listening address (and the Unix
//! socket's inode), `/env` whether the hand-over variables are still in its
//! environment. Settings come from `NAME=value` arguments or the
//! environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `DEMO_ADDR` | TCP address (default `127.0.0.1:8080`) |
//! | `DEMO_UNIX` | also listen on this Unix socket path |
//! | `DEMO_PID_FILE` | PID file |
//! | `DEMO_CONTROL` | control socket: `04_upgrade reload` asks for an upgrade on it and exits non-zero when it fails |
//! | `DEMO_GRACE_MS` | grace period for a new process (default 60 s) |
//! | `DEMO_INIT_MS` | pretend initialisation takes this long |
//! | `DEMO_CHDIR` | change the working directory after building the upgrader |
//! | `DEMO_FAIL_FILE` | a new generation reads this file, if present: `exit1`, `panic` or `hang` during init |
//! | `DEMO_TAG` | a word added to every answer |
//! | `DEMO_QUIET` | no log lines |
//! | `DEMO_KEEP_ALIVE` | `1`: serve many requests per connection (see below) |
//! | `DEMO_SHUTDOWN_MS` | the shutdown timeout (default 10 s) |
//!
//! Without `DEMO_KEEP_ALIVE`, every answer closes its connection. With it,
//! connections stay open between requests until the generation's shutdown
//! begins; from then on the next answer on each connection says
//! `Connection: close` and the connection closes right after it, so clients
//! reconnect to the new generation without losing a request. A connection
//! idle at that moment is not closed under the client's feet: the client may
//! be sending its next request already, and closing then would lose it. It
//! is kept until that request comes, and closed only if none comes within
//! nine tenths of the shutdown timeout.
//!
//! With `--features systemd` it also talks to systemd (see `docs/upgrades.md`).

#[cfg(unix)]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    app::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("04_upgrade needs Unix: upgrades hand sockets over by descriptor number");
}

#[cfg(unix)]
mod app {
    use std::error::Error;
    use std::io;
    use std::os::fd::AsFd;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use futures::future::{Either, select};
    use lameduck::upgrade::Upgrader;
    use lameduck::{BoxError, Component, Context, Lifecycle};
    use smol::io::{AsyncReadExt, AsyncWriteExt};

    /// A setting: a `NAME=value` argument, else the environment variable.
    fn env(name: &str) -> Option<String> {
        std::env::args()
            .skip(1)
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn main() -> Result<(), Box<dyn Error>> {
        if std::env::args().nth(1).as_deref() == Some("reload") {
            return reload();
        }
        let started = Instant::now();
        if env("DEMO_QUIET").is_none() {
            log::set_logger(&STDOUT_LOGGER).map_err(|e| e.to_string())?;
            log::set_max_level(log::LevelFilter::Info);
        }

        let mut builder = Upgrader::builder();
        if let Some(path) = env("DEMO_PID_FILE") {
            builder = builder.pid_file(path);
        }
        if let Some(path) = env("DEMO_CONTROL") {
            builder = builder.control_socket(path);
        }
        if let Some(ms) = env("DEMO_GRACE_MS") {
            builder = builder.grace_period(Duration::from_millis(ms.parse()?));
        }
        let upgrader = builder.build()?;
        if upgrader.is_upgraded() {
            misbehave_if_asked();
        }
        if let Some(dir) = env("DEMO_CHDIR") {
            std::env::set_current_dir(dir)?;
        }
        if let Some(ms) = env("DEMO_INIT_MS") {
            std::thread::sleep(Duration::from_millis(ms.parse()?));
        }

        let addr = env("DEMO_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let tcp = upgrader.listen_tcp("http", addr.parse()?)?;
        let sock_info = Arc::new(format!("tcp={}", tcp.local_addr()?));
        let shutdown_timeout = match env("DEMO_SHUTDOWN_MS") {
            Some(ms) => Duration::from_millis(ms.parse()?),
            None => Duration::from_secs(10),
        };
        // A keep-alive connection idle since the shutdown began is closed
        // before the shutdown timeout, so that the generation exits cleanly.
        let keep_alive = env("DEMO_KEEP_ALIVE")
            .is_some_and(|v| v != "0")
            .then(|| shutdown_timeout * 9 / 10);
        let mut lifecycle = Lifecycle::builder()
            .shutdown_timeout(shutdown_timeout)
            .component(
                "http",
                Server::new(
                    smol::net::TcpListener::try_from(tcp)?,
                    sock_info.clone(),
                    keep_alive,
                ),
            );
        if let Some(path) = env("DEMO_UNIX") {
            let unix = upgrader.listen_unix("unix", &path)?;
            let ino = rustix_free_inode(&unix)?;
            let info = Arc::new(format!("{sock_info} unix_ino={ino}"));
            lifecycle = lifecycle.component(
                "unix",
                Server::new(
                    smol::net::unix::UnixListener::try_from(unix)?,
                    info,
                    keep_alive,
                ),
            );
        }
        // SIGTERM (`systemctl stop`) and SIGINT stop it gracefully.
        #[cfg(feature = "signals")]
        {
            lifecycle = lifecycle.signals(lameduck::Signals::new());
        }
        lifecycle = lifecycle.component("upgrade", upgrader.component());
        #[cfg(feature = "systemd")]
        {
            lifecycle = lifecycle.component("systemd", lameduck::systemd::component());
        }
        let lifecycle = lifecycle.build()?;

        let handle = lifecycle.handle();
        std::thread::spawn(move || {
            if futures::executor::block_on(handle.ready()) {
                println!(
                    "ready pid={} init_ms={:.1}",
                    std::process::id(),
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
        });
        let result = smol::block_on(lifecycle.run());
        println!("exit pid={} ok={}", std::process::id(), result.is_ok());
        result?;
        Ok(())
    }

    /// `04_upgrade reload`: asks the running server for an upgrade on its
    /// control socket and exits non-zero unless it succeeded (systemd's
    /// `ExecReload=`).
    fn reload() -> Result<(), Box<dyn Error>> {
        let path = env("DEMO_CONTROL").ok_or("reload needs DEMO_CONTROL")?;
        match lameduck::upgrade::request_upgrade(path) {
            Ok(pid) => {
                println!("upgraded pid={pid}");
                Ok(())
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    }

    /// The inode of a Unix socket: the same across generations when the socket
    /// was handed over rather than bound anew.
    fn rustix_free_inode(l: &std::os::unix::net::UnixListener) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let fd = l.as_fd().try_clone_to_owned()?;
        Ok(std::fs::File::from(fd).metadata()?.ino())
    }

    /// Test hooks: a new generation that fails during init.
    fn misbehave_if_asked() {
        let Some(path) = env("DEMO_FAIL_FILE") else {
            return;
        };
        match std::fs::read_to_string(path).unwrap_or_default().trim() {
            "exit1" => std::process::exit(1),
            "panic" => panic!("asked to panic during init"),
            "hang" => loop {
                std::thread::sleep(Duration::from_secs(60));
            },
            _ => {}
        }
    }

    /// Serves one listener until its turn to stop, then finishes the requests in
    /// flight.
    struct Server<L> {
        listener: L,
        info: Arc<String>,
        /// Keep-alive mode: how long after the shutdown began an idle
        /// connection is closed.
        keep_alive: Option<Duration>,
        /// Connections open: each is waited for by the drain.
        open: Arc<AtomicUsize>,
    }

    impl<L> Server<L> {
        fn new(listener: L, info: Arc<String>, keep_alive: Option<Duration>) -> Self {
            Server {
                listener,
                info,
                keep_alive,
                open: Arc::new(AtomicUsize::new(0)),
            }
        }
    }

    trait Accept: Send + Sync + 'static {
        type Stream: smol::io::AsyncRead + smol::io::AsyncWrite + Send + Unpin + 'static;
        fn accept(&self) -> impl std::future::Future<Output = io::Result<Self::Stream>> + Send;
    }

    impl Accept for smol::net::TcpListener {
        type Stream = smol::net::TcpStream;
        async fn accept(&self) -> io::Result<Self::Stream> {
            smol::net::TcpListener::accept(self).await.map(|(s, _)| s)
        }
    }

    impl Accept for smol::net::unix::UnixListener {
        type Stream = smol::net::unix::UnixStream;
        async fn accept(&self) -> io::Result<Self::Stream> {
            smol::net::unix::UnixListener::accept(self)
                .await
                .map(|(s, _)| s)
        }
    }

    impl<L: Accept> Component for Server<L> {
        async fn run(&self, cx: &Context) -> Result<(), BoxError> {
            loop {
                let accept = pin!(self.listener.accept());
                let stream = match select(accept, cx.stop_signal()).await {
                    Either::Left((stream, _)) => stream?,
                    Either::Right(_) => break,
                };
                let open = self.open.clone();
                open.fetch_add(1, Ordering::SeqCst);
                let info = self.info.clone();
                let (keep_alive, shutdown, draining) =
                    (self.keep_alive, cx.shutdown_signal(), cx.stop_signal());
                smol::spawn(async move {
                    let served = match keep_alive {
                        Some(last_call) => {
                            serve_keep_alive(stream, &info, shutdown, last_call).await
                        }
                        None => serve(stream, &info, draining).await,
                    };
                    if let Err(e) = served {
                        log::warn!("request: {e}");
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                })
                .detach();
            }
            // Drain: the requests in flight finish (the lifecycle bounds how
            // long that may take); connections without one close within a
            // moment (see `serve`), or after their next request
            // (`serve_keep_alive`).
            while self.open.load(Ordering::SeqCst) > 0 {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            Ok(())
        }
    }

    /// One connection. Once the drain begins, a connection that has not sent
    /// a whole request (an idle keep-alive, a slow client) gets a moment to
    /// send one, then is closed: only requests in flight are waited for.
    async fn serve<S>(mut stream: S, info: &str, draining: lameduck::Latch) -> io::Result<()>
    where
        S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
    {
        let mut buf = Vec::new();
        let read = {
            let read = pin!(next_request(&mut stream, &mut buf));
            match select(read, draining).await {
                Either::Left((read, _)) => read,
                // A client that connected just before the drain may not have
                // sent its request yet: a moment for it, then close.
                Either::Right((_, read)) => {
                    let late = smol::Timer::after(Duration::from_millis(250));
                    match select(read, late).await {
                        Either::Left((read, _)) => read,
                        Either::Right(_) => return Ok(()),
                    }
                }
            }
        };
        let Some(request) = read? else {
            return Ok(());
        };
        respond(&mut stream, &request.path, info, true).await
    }

    /// One keep-alive connection: requests one after another, until the
    /// lifecycle's shutdown begins; then the next answer (the one being
    /// written, or the next request's) says `Connection: close` and the
    /// connection closes after it.
    ///
    /// An idle connection is never closed at the start of the drain, as many
    /// servers do: the client may have sent its next request already, which
    /// the close would lose (golang/go#23829: a server closing an idle
    /// keep-alive connection races the client reusing it). Only the server
    /// can end that race, by closing right after an answer that announced
    /// it. A connection still idle `last_call` after the shutdown began is
    /// closed then.
    async fn serve_keep_alive<S>(
        mut stream: S,
        info: &str,
        shutdown: lameduck::Latch,
        last_call: Duration,
    ) -> io::Result<()>
    where
        S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
    {
        let mut last_call = pin!({
            let shutdown = shutdown.clone();
            async move {
                shutdown.await;
                smol::Timer::after(last_call).await;
            }
        });
        let mut buf = Vec::new();
        loop {
            let read = {
                let read = pin!(next_request(&mut stream, &mut buf));
                match select(read, last_call.as_mut()).await {
                    Either::Left((read, _)) => read?,
                    Either::Right(_) => return Ok(()),
                }
            };
            let Some(request) = read else {
                return Ok(());
            };
            let close = request.close || shutdown.is_set();
            respond(&mut stream, &request.path, info, close).await?;
            if close {
                return linger(stream).await;
            }
        }
    }

    /// Closes a connection after its last answer: the write side first, then
    /// whatever the client still sends is read and dropped until it closes
    /// too (within a second). Dropping the socket with unread input would
    /// reset the connection, and a reset can discard the answer before the
    /// client reads it.
    async fn linger<S>(mut stream: S) -> io::Result<()>
    where
        S: smol::io::AsyncRead + smol::io::AsyncWrite + Unpin,
    {
        stream.close().await?;
        let drained = async {
            let mut chunk = [0u8; 1024];
            while stream.read(&mut chunk).await? > 0 {}
            io::Result::Ok(())
        };
        let limit = smol::Timer::after(Duration::from_secs(1));
        match select(pin!(drained), limit).await {
            Either::Left((drained, _)) => drained,
            Either::Right(_) => Ok(()),
        }
    }

    /// A request as far as this server cares.
    struct Request {
        path: String,
        /// The connection must close after the answer: the client asked
        /// for it, speaks HTTP/1.0, or sent a body this server does not read.
        close: bool,
    }

    /// The next request on a connection, or `None` when the client closed or
    /// sent something that is not HTTP. `buf` keeps bytes read past the
    /// request for the next call.
    async fn next_request<S>(stream: &mut S, buf: &mut Vec<u8>) -> io::Result<Option<Request>>
    where
        S: smol::io::AsyncRead + Unpin,
    {
        let mut chunk = [0u8; 1024];
        loop {
            if !buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let header = |name: &str| {
                            req.headers
                                .iter()
                                .find(|h| h.name.eq_ignore_ascii_case(name))
                                .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
                        };
                        let has_body = header("transfer-encoding").is_some()
                            || header("content-length").is_some_and(|l| l.trim() != "0");
                        let asks_close = header("connection")
                            .is_some_and(|c| c.split(',').any(|t| t.trim() == "close"));
                        let request = Request {
                            path: req.path.unwrap_or("/").to_owned(),
                            close: req.version != Some(1) || has_body || asks_close,
                        };
                        buf.drain(..len);
                        return Ok(Some(request));
                    }
                    Ok(httparse::Status::Partial) if buf.len() < 16 * 1024 => {}
                    _ => return Ok(None),
                }
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes the answer to `path`; `close` says the connection closes after
    /// it.
    async fn respond<S>(stream: &mut S, path: &str, info: &str, close: bool) -> io::Result<()>
    where
        S: smol::io::AsyncWrite + Unpin,
    {
        let pid = std::process::id();
        let tag = env("DEMO_TAG")
            .map(|t| format!(" tag={t}"))
            .unwrap_or_default();
        let body = match path {
            "/slow" => {
                smol::Timer::after(Duration::from_millis(1500)).await;
                format!("pid={pid}{tag}\n")
            }
            "/fds" => format!(
                "pid={pid} fds={}\n",
                std::fs::read_dir("/proc/self/fd")?.count()
            ),
            "/sock" => format!("pid={pid} {info}\n"),
            "/env" => {
                let has = |name| match std::env::var_os(name) {
                    Some(_) => "present",
                    None => "absent",
                };
                format!(
                    "pid={pid} upgrade_env={} listen_env={}\n",
                    has("LAMEDUCK_UPGRADE"),
                    has("LISTEN_FDS")
                )
            }
            _ => format!("pid={pid}{tag}\n"),
        };
        let connection = if close { "Connection: close\r\n" } else { "" };
        // One write: a second small one would wait for the client's delayed
        // acknowledgement (Nagle), 40 ms per answer on a kept connection.
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{connection}\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await?;
        Ok(())
    }

    /// A logger that prints to stdout with the PID, so lines from every
    /// generation can be told apart.
    struct StdoutLogger;
    static STDOUT_LOGGER: StdoutLogger = StdoutLogger;

    impl log::Log for StdoutLogger {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::Level::Info
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                println!(
                    "[{}] {} {}: {}",
                    std::process::id(),
                    r.level(),
                    r.target(),
                    r.args()
                );
            }
        }
        fn flush(&self) {}
    }

    /// `println!`, but once the reader of stdout is gone (`cargo run
    /// --example 04_upgrade --features upgrade | head -1`) it prints nothing
    /// more instead of panicking.
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
}
