//! Feature `tower`: the probes as a tower service (axum, hyper 1.x), and
//! `LameDuckLayer` (requests in flight; `Connection: close` once shutdown
//! begins, so keep-alive clients move off before the drain).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use lameduck::tower::LameDuckLayer;
use lameduck::{BoxError, Component, Context, Health, Lifecycle, check_fn, component};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tower_service::Service;

/// One HTTP/1.1 exchange on a kept-alive connection: status, whether the
/// server asked to close, body.
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    path: &str,
) -> std::io::Result<(u16, bool, String)> {
    conn.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .await?;
    let mut line = String::new();
    if conn.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status = line
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let (mut length, mut close) = (0usize, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v
                .trim()
                .parse()
                .map_err(|_| std::io::ErrorKind::InvalidData)?;
        }
        if header == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await?;
    Ok((status, close, String::from_utf8_lossy(&body).into_owned()))
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut conn = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let (status, _, body) = exchange(&mut conn, path).await.unwrap();
    (status, body)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn probes_mount_in_axum_with_one_call_and_serve_every_path() {
    runtime().block_on(async {
        let lifecycle = Lifecycle::builder()
            .health_check("db", check_fn(|| async { Health::Healthy }))
            .build()
            .unwrap();
        let handle = lifecycle.handle();
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "app" }))
            .fallback_service(handle.probes().service());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let run = tokio::spawn(lifecycle.run());
        handle.ready().await;

        assert_eq!(get(addr, "/").await, (200, "app".into()));
        for path in ["/livez", "/readyz", "/startupz", "/healthz"] {
            assert_eq!(get(addr, path).await, (200, "ok".into()), "{path}");
        }
        for path in [
            "/readyz/db",
            "/healthz/db",
            "/readyz/shutdown",
            "/livez/ping",
        ] {
            assert_eq!(get(addr, path).await, (200, "ok".into()), "{path}");
        }
        let (status, body) = get(addr, "/readyz?verbose").await;
        assert_eq!(status, 200);
        assert!(body.contains("[+]db ok") && body.ends_with("readyz check passed\n"));
        assert_eq!(get(addr, "/readyz/nope").await.0, 404);
        assert_eq!(get(addr, "/nothing-here").await.0, 404);

        handle.request_shutdown(None);
        let (status, body) = get(addr, "/readyz").await;
        assert_eq!(status, 500);
        assert!(body.contains("[-]shutdown failed"), "{body}");
        assert_eq!(get(addr, "/livez").await, (200, "ok".into()));
        run.await.unwrap().unwrap();
        server.abort();
    });
}

#[test]
fn probes_serve_hyper_directly() {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    runtime().block_on(async {
        let lifecycle = Lifecycle::builder().build().unwrap();
        let handle = lifecycle.handle();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TowerToHyperService::new(handle.probes().service());
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
        });
        assert_eq!(get(addr, "/livez/ping").await, (200, "ok".into()));
        server.await.unwrap().unwrap();
    });
}

/// An inner service whose response stays pending until `release` is set.
#[derive(Clone)]
struct Held {
    release: Arc<AtomicBool>,
}

struct HeldFuture(Arc<AtomicBool>);

impl Future for HeldFuture {
    type Output = Result<http::Response<String>, Infallible>;
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        if self.0.load(Ordering::SeqCst) {
            Poll::Ready(Ok(http::Response::new("ok".into())))
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Service<http::Request<()>> for Held {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = HeldFuture;
    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _req: http::Request<()>) -> HeldFuture {
        HeldFuture(self.release.clone())
    }
}

#[test]
fn the_layer_counts_requests_and_closes_http1_connections_once_shutdown_begins() {
    use tower_layer::Layer;
    let lifecycle = Lifecycle::builder().build().unwrap();
    let handle = lifecycle.handle();
    let layer = LameDuckLayer::new(&handle);
    let tracker = layer.tracker().clone();
    let release = Arc::new(AtomicBool::new(true));
    let mut svc = layer.layer(Held {
        release: release.clone(),
    });
    let call = |svc: &mut lameduck::tower::LameDuck<Held>, version| {
        let mut req = http::Request::new(());
        *req.version_mut() = version;
        futures::executor::block_on(svc.call(req)).unwrap()
    };

    let before = call(&mut svc, http::Version::HTTP_11);
    assert!(before.headers().get("connection").is_none());

    release.store(false, Ordering::SeqCst);
    let pending = svc.call(http::Request::new(()));
    assert_eq!(tracker.requests(), 1, "counted while in flight");
    release.store(true, Ordering::SeqCst);
    futures::executor::block_on(pending).unwrap();
    assert!(tracker.is_idle());

    handle.request_shutdown(None);
    for version in [http::Version::HTTP_10, http::Version::HTTP_11] {
        let resp = call(&mut svc, version);
        assert_eq!(resp.headers()["connection"], "close", "{version:?}");
    }
    let h2 = call(&mut svc, http::Version::HTTP_2);
    assert!(
        h2.headers().get("connection").is_none(),
        "no connection header in HTTP/2"
    );
}

/// Counts the connections open on the server under test.
struct CountingListener {
    inner: tokio::net::TcpListener,
    open: Arc<AtomicUsize>,
}

struct Counted {
    io: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl axum::serve::Listener for CountingListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        loop {
            if let Ok((io, addr)) = self.inner.accept().await {
                self.open.fetch_add(1, Ordering::SeqCst);
                let open = self.open.clone();
                return (Counted { io, open }, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// Registered after the server, so stopped first: its `stop` marks the
/// start of the drain, when the server stops accepting.
struct DrainStart {
    open: Arc<AtomicUsize>,
    at_drain: Arc<AtomicUsize>,
}

impl Component for DrainStart {
    async fn stop(&self, _cx: &Context) -> Result<(), BoxError> {
        self.at_drain
            .store(self.open.load(Ordering::SeqCst), Ordering::SeqCst);
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Load {
    ok: AtomicUsize,
    failed: AtomicUsize,
    closes_from_primary: AtomicUsize,
}

struct Outcome {
    load: Arc<Load>,
    open_at_drain: usize,
}

const CLIENTS: usize = 8;
const LAME_DUCK: Duration = Duration::from_millis(500);

/// Keep-alive clients behind a load balancer that sends new connections
/// to the lameduck server while it is ready and to a backup otherwise.
/// Shutdown comes from a real SIGTERM when `sigterm`, else `request_shutdown`.
fn keep_alive_clients_across_shutdown(with_layer: bool, sigterm: bool) -> Outcome {
    let rt = runtime();
    rt.block_on(async move {
        let open = Arc::new(AtomicUsize::new(0));
        let at_drain = Arc::new(AtomicUsize::new(usize::MAX));
        let primary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let primary_addr = primary.local_addr().unwrap();
        let backup = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backup_addr = backup.local_addr().unwrap();
        let backup_server = tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::get(|| async { "backup" }));
            axum::serve(backup, app).await
        });

        let mut builder = Lifecycle::builder()
            .lame_duck(LAME_DUCK)
            .shutdown_timeout(Duration::from_secs(10));
        if sigterm {
            builder = builder.signals(lameduck::Signals::new());
        }
        let lifecycle = builder.build().unwrap();
        let handle = lifecycle.handle();
        let mut app = axum::Router::new().route("/", axum::routing::get(|| async { "primary" }));
        if with_layer {
            app = app.layer(LameDuckLayer::new(&handle));
        }
        let listener = CountingListener {
            inner: primary,
            open: open.clone(),
        };
        handle
            .add_component(
                "http",
                component::start_run(
                    |_cx| async { Ok::<_, BoxError>(listener) },
                    |listener, cx| async move {
                        axum::serve(listener, app)
                            .with_graceful_shutdown(cx.stop_signal())
                            .await?;
                        Ok::<_, BoxError>(())
                    },
                ),
            )
            .unwrap();
        handle
            .add_component(
                "drain-start",
                DrainStart {
                    open: open.clone(),
                    at_drain: at_drain.clone(),
                },
            )
            .unwrap();
        let run = tokio::spawn(lifecycle.run());
        handle.ready().await;

        let load = Arc::new(Load::default());
        let done = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (load, done, handle) = (load.clone(), done.clone(), handle.clone());
                tokio::spawn(async move {
                    let mut conn: Option<(BufReader<TcpStream>, bool)> = None;
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                        let (stream, on_primary) = match conn.as_mut() {
                            Some(c) => c,
                            None => {
                                let on_primary = handle.is_ready();
                                let addr = if on_primary {
                                    primary_addr
                                } else {
                                    backup_addr
                                };
                                match TcpStream::connect(addr).await {
                                    Ok(s) => conn.insert((BufReader::new(s), on_primary)),
                                    Err(_) => {
                                        load.failed.fetch_add(1, Ordering::SeqCst);
                                        continue;
                                    }
                                }
                            }
                        };
                        match exchange(stream, "/").await {
                            Ok((200, close, _)) => {
                                load.ok.fetch_add(1, Ordering::SeqCst);
                                if close {
                                    if *on_primary {
                                        load.closes_from_primary.fetch_add(1, Ordering::SeqCst);
                                    }
                                    conn = None;
                                }
                            }
                            _ => {
                                load.failed.fetch_add(1, Ordering::SeqCst);
                                conn = None;
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();

        tokio::time::sleep(Duration::from_millis(300)).await;
        if sigterm {
            #[cfg(unix)]
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::TERM,
            );
        } else {
            handle.request_shutdown(None);
        }
        let report = tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .expect("the lifecycle stops")
            .unwrap();
        report.expect("a clean stop");
        // Keep the load on (now all on the backup) for a moment longer.
        tokio::time::sleep(Duration::from_millis(200)).await;
        done.store(true, Ordering::SeqCst);
        for c in clients {
            c.await.unwrap();
        }
        backup_server.abort();
        Outcome {
            load,
            open_at_drain: at_drain.load(Ordering::SeqCst),
        }
    })
}

#[cfg(unix)]
#[test]
fn keep_alive_clients_across_sigterm_see_no_failure_and_leave_before_the_drain() {
    let out = keep_alive_clients_across_shutdown(true, true);
    eprintln!(
        "with LameDuckLayer: {:?}, connections open at drain start: {}",
        out.load, out.open_at_drain
    );
    assert_eq!(out.load.failed.load(Ordering::SeqCst), 0, "{:?}", out.load);
    assert_eq!(
        out.open_at_drain, 0,
        "every keep-alive client had moved off before the drain"
    );
    assert!(
        out.load.closes_from_primary.load(Ordering::SeqCst) >= 1,
        "clients were told to close during the lame duck"
    );
    assert!(
        out.load.ok.load(Ordering::SeqCst) > CLIENTS * 10,
        "{:?}",
        out.load
    );
}

#[test]
fn without_the_layer_keep_alive_clients_are_still_connected_when_the_drain_starts() {
    let out = keep_alive_clients_across_shutdown(false, false);
    eprintln!(
        "without LameDuckLayer: {:?}, connections open at drain start: {}",
        out.load, out.open_at_drain
    );
    assert!(
        out.open_at_drain > 0 && out.open_at_drain != usize::MAX,
        "keep-alive clients stay on the process through the lame duck: {}",
        out.open_at_drain
    );
    assert_eq!(out.load.closes_from_primary.load(Ordering::SeqCst), 0);
}
